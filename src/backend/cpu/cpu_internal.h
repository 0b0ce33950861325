// cpu_internal.h — the CPU backend's private state (be->impl) and its BF16 GEMM path through
// oneDNN (cpu_dnnl.c), shared by cpu.c and cpu_dnnl.c. Not part of the kernels compiled per
// instruction set: oneDNN picks its own kernels at run time.
#ifndef STEERCLEAR_CPU_INTERNAL_H
#define STEERCLEAR_CPU_INTERNAL_H
#include "steerclear/backend.h"

typedef struct sc_cpu_dnnl sc_cpu_dnnl;
typedef struct sc_cpu_strict sc_cpu_strict;

typedef struct {
    int bf16;                       // precision: 1 = GEMMs against BF16 weights round to BF16
    const sc_backend_ops *isa_ops;  // the instruction set's table (F32 GEMMs, few-row BF16 products)
    sc_backend_ops ops;             // the table in use: isa_ops with the BF16 GEMMs in bf16 mode
    sc_cpu_dnnl *dnnl;              // oneDNN engine, stream and cached matmul primitives (bf16 mode)
    sc_cpu_strict *strict;          // strict memory checks ($SC_CPU_STRICT=1, strict.c); NULL: off
} sc_cpu_impl;

// strict.c: wrap the backend's ops (be->op, set last) with memory checks; freed by sc_cpu_strict_free.
sc_status sc_cpu_backend_make_strict(sc_backend *be);
void sc_cpu_strict_free(sc_cpu_strict *s);

// Products of more rows than this go to oneDNN in bf16 mode; fewer stream the BF16 weights
// through the instruction set's kernel (decode: bound by memory, where widening on the fly wins).
// $SC_BF16_MIN_ROWS overrides (measurement).
#define SC_BF16_MIN_ROWS_DEFAULT 4

// Whether this build has oneDNN and this CPU runs its BF16 kernels (AVX-512 BF16 or AMX).
int sc_cpu_dnnl_available(void);
sc_status sc_cpu_dnnl_create(sc_cpu_dnnl **out);
void sc_cpu_dnnl_free(sc_cpu_dnnl *d);
// How many matmul primitives are cached (tests).
int sc_cpu_dnnl_cached(const sc_cpu_dnnl *d);

// The bf16-mode GEMM ops (same contract as op->matmul / op->matmul_dx).
sc_status sc_cpu_matmul_bf16(sc_backend *be, float *out, const float *x, const sc_mat *W, const float *bias, int T);
sc_status sc_cpu_matmul_dx_bf16(sc_backend *be, float *dx, const float *dy, const sc_mat *W, int T, int accumulate);

#endif
