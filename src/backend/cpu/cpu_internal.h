// cpu_internal.h — glue between the CPU backend's files.
#ifndef STEERCLEAR_CPU_INTERNAL_H
#define STEERCLEAR_CPU_INTERNAL_H
#include "steerclear/backend.h"
void sc_cpu_fill_ops(sc_backend *be);
#endif
