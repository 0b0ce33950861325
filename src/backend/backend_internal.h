// backend_internal.h — glue between backend.c and the backends it creates.
#ifndef STEERCLEAR_BACKEND_INTERNAL_H
#define STEERCLEAR_BACKEND_INTERNAL_H
#include "steerclear/backend.h"

// Set up be->ws (in the backend's memory, through be->op->alloc) and be->host (heap); the
// backend's op table must be set first.
void sc_backend_init_arenas(sc_backend *be);
sc_status sc_cpu_backend_create(const sc_backend_opts *o, sc_backend **out);
// src/backend/cuda/cuda.c, in builds with SC_HAVE_CUDA (cmake -DSC_CUDA=AUTO|ON)
sc_status sc_cuda_backend_create(const sc_backend_opts *o, sc_backend **out);
// Whether the CPU backend can run bf16 precision here (AVX-512 BF16 CPU, oneDNN in the build).
int sc_cpu_bf16_available(void);

#endif
