// cuda_kernels.h — the CUDA backend's kernels (kernels.cu), each behind a C launcher that
// enqueues it on the backend's stream and returns the launch status. cuda.c (plain C) does
// the op table, memory, cuBLASLt and the staging of host index arrays; every pointer here is
// device memory. Shapes and numerics follow the CPU twin of each op (src/backend/cpu/kernels).
#ifndef STEERCLEAR_CUDA_KERNELS_H
#define STEERCLEAR_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Per query row of an attention call (built on the host from sc_attn_layout).
typedef struct {
    int64_t kv_off;   // float offset of position 0 of the row's sequence in k and v
    int n;            // positions attended (pos0 + i + 1)
    int s0;           // backward: first row of the sequence; forward: unused
} sc_cu_attn_row;

// Column-major D[m,n] = op(A) op(B) + beta D with plain loops (A, B BF16 when bf16, else FP32;
// sums in FP32): the fallback for shapes cuBLASLt has no algorithm for (odd leading dimensions)
cudaError_t sc_cu_gemm_fallback(cudaStream_t s, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *A, int64_t lda,
                                const void *B, int64_t ldb, float *C, int64_t ldc, float beta, int bf16);
cudaError_t sc_cu_f32_to_bf16(cudaStream_t s, uint16_t *out, const float *x, int64_t n);
cudaError_t sc_cu_add_bias(cudaStream_t s, float *out, const float *bias, int T, int64_t N);
cudaError_t sc_cu_embed(cudaStream_t s, float *out, const void *E, int bf16, const int32_t *ids, int T, int64_t C);
cudaError_t sc_cu_gather_rows(cudaStream_t s, float *out, const float *x, const int *rows, int n, int C);
cudaError_t sc_cu_scatter_add_rows(cudaStream_t s, float *y, const float *x, const int *rows, int n, int C);
cudaError_t sc_cu_add(cudaStream_t s, float *y, const float *x, int64_t n);
cudaError_t sc_cu_add_row(cudaStream_t s, float *h, const float *v, float scale, int T, int C);
cudaError_t sc_cu_col_sum(cudaStream_t s, double *acc, const float *h, int T, int C);
cudaError_t sc_cu_rmsnorm(cudaStream_t s, float *out, float *rstd, const float *x, const float *w, int T, int C, float eps);
cudaError_t sc_cu_rmsnorm_backward(cudaStream_t s, float *dx, const float *dout, const float *x, const float *w,
                                   const float *rstd, int T, int C, int accumulate);
cudaError_t sc_cu_rope(cudaStream_t s, float *x, const int *pos, int T, int H, int HD, float theta, int inverse);
cudaError_t sc_cu_swiglu(cudaStream_t s, float *out, const float *g, const float *u, int64_t n);
cudaError_t sc_cu_swiglu_backward(cudaStream_t s, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
// row r of k and v [n, KD] goes to ck/cv + dst[r]
cudaError_t sc_cu_kv_write(cudaStream_t s, float *ck, float *cv, const float *k, const float *v, const int64_t *dst, int n, int KD);
cudaError_t sc_cu_attention(cudaStream_t s, float *out, float *lse, const float *q, const float *k, const float *v,
                            const sc_cu_attn_row *rows, int T, int64_t kv_stride, int NH, int KVH, int HD);
// rows[t].s0 / .n: the sequence's first row and length (own rows, kv_stride = KVH*HD); Dbuf [T*NH] scratch
cudaError_t sc_cu_attention_backward(cudaStream_t s, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                     const float *lse, const float *q, const float *k, const float *v,
                                     const sc_cu_attn_row *rows, int T, int NH, int KVH, int HD, float *Dbuf);
// The cuDNN attention path (sdpa.c): padded row r of dst [rows, width] (BF16) = src + src_off[r]
// (FP32), or zeros where src_off[r] < 0
cudaError_t sc_cu_sdpa_pack(cudaStream_t s, uint16_t *dst, const float *src, const int64_t *src_off, int n_rows, int width);
// dst row t [T, width] (FP32) = padded row src_row[t] of src (BF16)
cudaError_t sc_cu_sdpa_unpack(cudaStream_t s, float *dst, const uint16_t *src, const int *src_row, int T, int width);
// lse[t, h] = stats[b, h, p] where src_row[t] = b * S + p
cudaError_t sc_cu_sdpa_stats_out(cudaStream_t s, float *lse, const float *stats, const int *src_row, int T, int NH, int S);
// stats[b, h, p] = lse[row_t[b * S + p], h], or FLT_MAX for a padding row (row_t < 0: its
// probabilities exp(score - stats) are then 0)
cudaError_t sc_cu_sdpa_stats_in(cudaStream_t s, float *stats, const float *lse, const int *row_t, int B, int S, int NH);
// nrm[t] = ||u[t,:]|| (sums in double)
cudaError_t sc_cu_row_norms(cudaStream_t s, float *nrm, const float *u, int T, int C);
// out[t,:] (+)= u[t,:] * scaling / (nrm[t] + eps)
cudaError_t sc_cu_adapter_apply(cudaStream_t s, float *out, const float *u, const float *nrm, int T, int C, float scaling, int accumulate);
// du = s * [g / (n + eps) - u (g.u) / (n (n + eps)^2)]
cudaError_t sc_cu_adapter_du(cudaStream_t s, float *du, const float *g, const float *u, const float *nrm, int T, int C, float scaling);
// per row: kl, nll (double) and bad (1: P not finite, 2: Q not finite); lq replaced by the gradient
cudaError_t sc_cu_divergence_loss(cudaStream_t s, float *lq, const float *lp, const int32_t *targets, int n, int V,
                                  float alpha, float beta, double grad_scale, double *kl, double *nll, int *bad);
cudaError_t sc_cu_adamw(cudaStream_t s, float *p, const float *g, float *m, float *v, int64_t n,
                        float lr, float beta1, float beta2, float eps, float wd, double bc1, double bc2);
// greedy (temperature <= 0 meaning argmax) or plain softmax sampling per row over the first V
// ids; ids[i] = -1 when the row is not finite
cudaError_t sc_cu_sample(cudaStream_t s, float *logits, int n, int ld, int V, int greedy, float temperature, const float *u, int32_t *ids);
// top-k / top-p sampling per row over the first V ids (k = top_k when in (0, V), else V;
// top_p in (0, 1) turns the nucleus on; inv_t = 1 / temperature as the CPU computes it), the
// CPU sampler's order and sums (sample_select.h); the logits are not modified. ids[i] = -1 when
// the row is not finite, -2 when the kernel's own checks failed (a bug: the host reports it)
cudaError_t sc_cu_sample_sorted(cudaStream_t s, const float *logits, int n, int ld, int V, float inv_t, int top_k, float top_p,
                                const float *u, int32_t *ids);

#ifdef __cplusplus
}
#endif
#endif
