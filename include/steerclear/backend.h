// backend.h — the ops the model calls, as a table of function pointers. The CPU backend
// (OpenBLAS + OpenMP) is the reference; a CUDA backend fills the same table with device
// pointers. Backends know nothing about the model: only arrays, shapes and strides.
//
// Shapes use the letters of model.h. All activations are float32, row-major, tokens packed
// (no padding): row t of an [T, X] array is token t of the batch.
#ifndef STEERCLEAR_BACKEND_H
#define STEERCLEAR_BACKEND_H

#include "steerclear/model.h"

// Where each sequence's keys and values live for attention. Sequence b's queries are the
// packed rows [q_start[b], q_start[b+1]) at positions pos0[b] + i; they attend causally to
// key/value rows 0 .. pos0[b] + i of that sequence, found at k_base[b] + j * kv_stride.
typedef struct {
    int n_seq;
    const int *q_start;        // (n_seq + 1)
    const int *pos0;           // (n_seq)
    const float *const *k_base;   // (n_seq) pointers, rows of KVH*HD floats
    const float *const *v_base;   // (n_seq)
    int64_t kv_stride;         // floats between consecutive positions
} sc_attn_layout;

typedef struct sc_backend {
    const char *name;
    // out[T,N] = x[T,K] . W[N,K]^T (+ bias[N] when not NULL)
    sc_status (*matmul)(float *out, const float *x, const sc_mat *W, const float *bias, int T);
    // dx[T,K] (+)= dy[T,N] . W[N,K]; accumulate != 0 adds to dx
    sc_status (*matmul_dx)(float *dx, const float *dy, const sc_mat *W, int T, int accumulate);
    // out = w * x / sqrt(mean(x^2) + eps) per row; rstd[T] saved when not NULL
    void (*rmsnorm)(float *out, float *rstd, const float *x, const float *w, int T, int C, float eps);
    // dx (+)= backward of rmsnorm given dout, x, w, rstd
    void (*rmsnorm_backward)(float *dx, const float *dout, const float *x, const float *w,
                             const float *rstd, int T, int C, int accumulate);
    // rotary embedding in place on x[T, H, HD] at positions pos[T]; inverse = rotate back
    // (the backward of a rotation is the inverse rotation)
    void (*rope)(float *x, const int *pos, int T, int H, int HD, float theta, int inverse);
    // out[T, NH*HD] = causal GQA attention; lse[T, NH] (log-sum-exp of scaled scores) saved when not NULL
    void (*attention)(float *out, float *lse, const float *q, const sc_attn_layout *kv, int NH, int KVH, int HD);
    // backward of attention without a cache (keys = the batch's own rows, pos0 = 0):
    // dq[T,NH*HD], dk/dv[T,KVH*HD] written (not accumulated)
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout, const float *out,
                               const float *lse, const float *q, const float *k, const float *v,
                               const int *q_start, int n_seq, int NH, int KVH, int HD);
    // out[T,I] = silu(g) * u
    void (*swiglu)(float *out, const float *g, const float *u, int64_t n);
    // dg, du from dout, g, u
    void (*swiglu_backward)(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
    // y += x (n floats)
    void (*add)(float *y, const float *x, int64_t n);
    // gather embedding rows: out[T,C] = E[ids[t]]
    void (*embed)(float *out, const sc_mat *E, const int32_t *ids, int T);
} sc_backend;

const sc_backend *sc_backend_cpu(void);

#endif
