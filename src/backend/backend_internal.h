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
// Attention calls of a CUDA backend by path since it was made ([0] forward, [1] backward):
// through cuDNN's fused attention, or the own kernels; returns the cuDNN version in use, or
// NULL when that path is off (tests/test_cuda_backend.c prints which path ran).
const char *sc_cuda_attention_paths(sc_backend *be, uint64_t sdpa_runs[2], uint64_t own_runs[2]);
// Whether the CPU backend can run bf16 precision here (AVX-512 BF16 CPU, oneDNN in the build).
int sc_cpu_bf16_available(void);

#endif
