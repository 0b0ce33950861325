// cpu_kernels.h — the CPU backend's op functions. The files in kernels/ are compiled once per
// instruction set (SC_CPU_ISA = generic, and avx2 on x86-64 with -march=x86-64-v3); each op is
// named sc_cpu_<op>_<isa>, and backend.c builds one op table per instruction set and picks one
// at run time (no -march for the rest of the program: the binary runs on any x86-64 or
// aarch64 machine). This header has no include guard on purpose: backend.c includes it once
// per instruction set, with SC_CPU_ISA defined to each in turn.
#include "steerclear/backend.h"

#include <omp.h>

#ifndef SC_CPU_FN
#define SC_CPU_CAT2(a, b) a##b
#define SC_CPU_CAT(a, b) SC_CPU_CAT2(a, b)
#define SC_CPU_FN(name) SC_CPU_CAT(sc_cpu_##name##_, SC_CPU_ISA)

// Elements of work below which an elementwise or per-row op stays on the calling thread.
#define SC_CPU_PAR_MIN ((int64_t)1 << 14)
// for (int64_t i = 0; i < n; i++) { body }, on every thread when `par` holds and there is more
// than one, else on this one. Not an OpenMP if() clause: a parallel region of one thread (an
// if() that is false, or OMP_NUM_THREADS=1) still builds a team, and libgomp allocates and frees
// that team on every call, so a decode step would allocate.
#define SC_CPU_FOR(par, i, n, ...) do {                              \
    const int64_t sc_n_ = (n);                                        \
    if ((par) && omp_get_max_threads() > 1) {                         \
        _Pragma("omp parallel for schedule(static)")                  \
        for (int64_t i = 0; i < sc_n_; i++) { __VA_ARGS__ }           \
    } else {                                                          \
        for (int64_t i = 0; i < sc_n_; i++) { __VA_ARGS__ }           \
    }                                                                 \
} while (0)
#endif

sc_status SC_CPU_FN(matmul)(sc_backend *be, float *out, const float *x, const sc_mat *W, const float *bias, int T);
sc_status SC_CPU_FN(matmul_dx)(sc_backend *be, float *dx, const float *dy, const sc_mat *W, int T, int accumulate);
sc_status SC_CPU_FN(embed)(sc_backend *be, float *out, const sc_mat *E, const int32_t *ids, int T);
sc_status SC_CPU_FN(gather_rows)(sc_backend *be, float *out, const float *x, const int *rows, int n, int C);
sc_status SC_CPU_FN(scatter_add_rows)(sc_backend *be, float *y, const float *x, const int *rows, int n, int C);
sc_status SC_CPU_FN(add)(sc_backend *be, float *y, const float *x, int64_t n);
sc_status SC_CPU_FN(add_row)(sc_backend *be, float *h, const float *v, float scale, int T, int C);
sc_status SC_CPU_FN(col_sum)(sc_backend *be, double *acc, const float *h, int T, int C);
sc_status SC_CPU_FN(rmsnorm)(sc_backend *be, float *out, float *rstd, const float *x, const float *w, int T, int C, float eps);
sc_status SC_CPU_FN(rmsnorm_backward)(sc_backend *be, float *dx, const float *dout, const float *x, const float *w,
                                      const float *rstd, int T, int C, int accumulate);
sc_status SC_CPU_FN(rope)(sc_backend *be, float *x, const int *pos, int T, int H, int HD, float theta, int inverse);
sc_status SC_CPU_FN(swiglu)(sc_backend *be, float *out, const float *g, const float *u, int64_t n);
sc_status SC_CPU_FN(swiglu_backward)(sc_backend *be, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
sc_status SC_CPU_FN(kv_write)(sc_backend *be, float *ck, float *cv, const float *k, const float *v,
                              const sc_attn_layout *lay, int KD);
sc_status SC_CPU_FN(attention)(sc_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                               const sc_attn_layout *lay, int NH, int KVH, int HD);
sc_status SC_CPU_FN(attention_backward)(sc_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                        const float *lse, const float *q, const float *k, const float *v,
                                        const int *q_start, int n_seq, int NH, int KVH, int HD);
sc_status SC_CPU_FN(adapter_forward)(sc_backend *be, float *out, const float *h, const float *A, const float *B,
                                     int T, int C, int r, float scaling, int accumulate);
sc_status SC_CPU_FN(adapter_backward)(sc_backend *be, float *dh, const float *h, const float *A, const float *B,
                                      float *dA, float *dB, int T, int C, int r, float scaling);
sc_status SC_CPU_FN(divergence_loss)(sc_backend *be, float *lq, const float *lp, const int32_t *targets, int n, int V,
                                     float alpha, float beta, double grad_scale, double *kl, double *nll);
sc_status SC_CPU_FN(adamw)(sc_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                           const sc_adamw_opts *o, int step);
sc_status SC_CPU_FN(sample)(sc_backend *be, float *logits, int n, int V, const sc_sampling *s, const float *u, int32_t *ids);
