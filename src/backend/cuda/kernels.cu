// kernels.cu — the CUDA backend's own kernels (the GEMMs are cuBLASLt's, in cuda.c). Each
// follows its CPU twin in src/backend/cpu/kernels: the same formulas, sums in double where the
// CPU sums in double, column sums in the same row order (bit-identical), AdamW with the CPU's
// rounding step by step (explicit _rn intrinsics, so no fused multiply-add changes a bit).
// Launch helpers return cudaGetLastError() so cuda.c can name the op that failed.
#include "cuda_kernels.h"
#include "sample_select.h"

#include <math.h>

#define WARP 32

static __device__ __forceinline__ float warp_sum_f(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max_f(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
static __device__ double block_sum_d(double v, double *sh) {
    const int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < nw; i++) t += sh[i];   // the same order in every thread
    return t;
}
static __device__ float block_max_f(float v, float *sh) {
    const int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
    v = warp_max_f(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float t = sh[0];
    for (int i = 1; i < nw; i++) t = fmaxf(t, sh[i]);
    return t;
}

static inline unsigned blocks_for(int64_t n, int per) { return (unsigned)((n + per - 1) / per); }
#define LAUNCH_CHECK() return cudaGetLastError()

// --- a plain GEMM for shapes cuBLASLt refuses ---------------------------------------------------

static __device__ __forceinline__ float load_ab(const void *p, int64_t i, int bf16) {
    return bf16 ? __uint_as_float((uint32_t)((const uint16_t *)p)[i] << 16) : ((const float *)p)[i];
}
__global__ void k_gemm_fallback(int ta, int tb, int64_t m, int64_t n, int64_t k, const void *A, int64_t lda, const void *B, int64_t ldb,
                                float *C, int64_t ldc, float beta, int bf16) {
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < m * n; idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = idx % m, j = idx / m;
        float s = 0.0f;
        for (int64_t l = 0; l < k; l++)
            s += load_ab(A, ta ? l + i * lda : i + l * lda, bf16) * load_ab(B, tb ? j + l * ldb : l + j * ldb, bf16);
        float *c = &C[i + j * ldc];
        *c = beta != 0.0f ? s + beta * *c : s;
    }
}
static unsigned grid_1d(int64_t n);
extern "C" cudaError_t sc_cu_gemm_fallback(cudaStream_t s, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *A, int64_t lda,
                                           const void *B, int64_t ldb, float *C, int64_t ldc, float beta, int bf16) {
    if (m <= 0 || n <= 0) return cudaSuccess;
    k_gemm_fallback<<<grid_1d(m * n), 256, 0, s>>>(ta, tb, m, n, k, A, lda, B, ldb, C, ldc, beta, bf16);
    return cudaGetLastError();
}

// --- conversions, rows, elementwise -----------------------------------------------------------

__global__ void k_f32_to_bf16(uint16_t *out, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t u = __float_as_uint(x[i]);
        if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) out[i] = (uint16_t)((u >> 16) | 0x40);
        else out[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);   // round to nearest even
    }
}
static unsigned grid_1d(int64_t n) {
    int64_t b = (n + 255) / 256;
    return (unsigned)(b < 1 ? 1 : b > 65536 ? 65536 : b);
}
extern "C" cudaError_t sc_cu_f32_to_bf16(cudaStream_t s, uint16_t *out, const float *x, int64_t n) {
    if (n <= 0) return cudaSuccess;
    k_f32_to_bf16<<<grid_1d(n), 256, 0, s>>>(out, x, n);
    LAUNCH_CHECK();
}

__global__ void k_add_bias(float *out, const float *bias, int64_t total, int64_t N) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        out[i] += bias[i % N];
}
extern "C" cudaError_t sc_cu_add_bias(cudaStream_t s, float *out, const float *bias, int T, int64_t N) {
    const int64_t total = (int64_t)T * N;
    if (total <= 0) return cudaSuccess;
    k_add_bias<<<grid_1d(total), 256, 0, s>>>(out, bias, total, N);
    LAUNCH_CHECK();
}

__global__ void k_embed(float *out, const void *E, int bf16, const int32_t *ids, int64_t C) {
    const int t = blockIdx.x;
    const int64_t row = (int64_t)ids[t] * C;
    float *o = out + (int64_t)t * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        o[c] = bf16 ? __uint_as_float((uint32_t)((const uint16_t *)E)[row + c] << 16) : ((const float *)E)[row + c];
}
extern "C" cudaError_t sc_cu_embed(cudaStream_t s, float *out, const void *E, int bf16, const int32_t *ids, int T, int64_t C) {
    if (T <= 0) return cudaSuccess;
    k_embed<<<T, 256, 0, s>>>(out, E, bf16, ids, C);
    LAUNCH_CHECK();
}

__global__ void k_gather(float *out, const float *x, const int *rows, int C) {
    const int i = blockIdx.x;
    const float *src = x + (int64_t)rows[i] * C;
    float *dst = out + (int64_t)i * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}
extern "C" cudaError_t sc_cu_gather_rows(cudaStream_t s, float *out, const float *x, const int *rows, int n, int C) {
    if (n <= 0) return cudaSuccess;
    k_gather<<<n, 256, 0, s>>>(out, x, rows, C);
    LAUNCH_CHECK();
}

__global__ void k_scatter_add(float *y, const float *x, const int *rows, int C) {
    const int i = blockIdx.x;
    float *dst = y + (int64_t)rows[i] * C;
    const float *src = x + (int64_t)i * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] += src[c];   // rows are distinct: one writer
}
extern "C" cudaError_t sc_cu_scatter_add_rows(cudaStream_t s, float *y, const float *x, const int *rows, int n, int C) {
    if (n <= 0) return cudaSuccess;
    k_scatter_add<<<n, 256, 0, s>>>(y, x, rows, C);
    LAUNCH_CHECK();
}

__global__ void k_add(float *y, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) y[i] += x[i];
}
extern "C" cudaError_t sc_cu_add(cudaStream_t s, float *y, const float *x, int64_t n) {
    if (n <= 0) return cudaSuccess;
    k_add<<<grid_1d(n), 256, 0, s>>>(y, x, n);
    LAUNCH_CHECK();
}

__global__ void k_add_row(float *h, const float *v, float scale, int64_t total, int C) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        h[i] = __fadd_rn(h[i], __fmul_rn(scale, v[i % C]));   // as the CPU: no fused multiply-add
}
extern "C" cudaError_t sc_cu_add_row(cudaStream_t s, float *h, const float *v, float scale, int T, int C) {
    const int64_t total = (int64_t)T * C;
    if (total <= 0) return cudaSuccess;
    k_add_row<<<grid_1d(total), 256, 0, s>>>(h, v, scale, total, C);
    LAUNCH_CHECK();
}

// one thread per column, rows in order: the CPU's sums exactly
__global__ void k_col_sum(double *acc, const float *h, int T, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double a = acc[c];
    for (int t = 0; t < T; t++) a += h[(int64_t)t * C + c];
    acc[c] = a;
}
extern "C" cudaError_t sc_cu_col_sum(cudaStream_t s, double *acc, const float *h, int T, int C) {
    if (T <= 0 || C <= 0) return cudaSuccess;
    k_col_sum<<<blocks_for(C, 128), 128, 0, s>>>(acc, h, T, C);
    LAUNCH_CHECK();
}

// --- RMSNorm, RoPE, SwiGLU ---------------------------------------------------------------------

__global__ void k_rmsnorm(float *out, float *rstd, const float *x, const float *w, int C, float eps) {
    __shared__ double sh[32];
    const int t = blockIdx.x;
    const float *xr = x + (int64_t)t * C;
    float *o = out + (int64_t)t * C;
    double ss = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ss += (double)xr[c] * xr[c];
    ss = block_sum_d(ss, sh);
    const float r = (float)(1.0 / sqrt(ss / C + eps));
    for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = w[c] * (xr[c] * r);
    if (rstd && threadIdx.x == 0) rstd[t] = r;
}
extern "C" cudaError_t sc_cu_rmsnorm(cudaStream_t s, float *out, float *rstd, const float *x, const float *w, int T, int C, float eps) {
    if (T <= 0) return cudaSuccess;
    k_rmsnorm<<<T, 256, 0, s>>>(out, rstd, x, w, C, eps);
    LAUNCH_CHECK();
}

__global__ void k_rmsnorm_bwd(float *dx, const float *dout, const float *x, const float *w, const float *rstd, int C, int accumulate) {
    __shared__ double sh[32];
    const int t = blockIdx.x;
    const float *xr = x + (int64_t)t * C, *dy = dout + (int64_t)t * C;
    float *d = dx + (int64_t)t * C;
    const float r = rstd[t];
    double dot = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += (double)w[c] * dy[c] * xr[c];
    dot = block_sum_d(dot, sh);
    const float k = (float)(dot / C) * r * r * r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float g = r * w[c] * dy[c] - xr[c] * k;
        d[c] = accumulate ? d[c] + g : g;
    }
}
extern "C" cudaError_t sc_cu_rmsnorm_backward(cudaStream_t s, float *dx, const float *dout, const float *x, const float *w,
                                              const float *rstd, int T, int C, int accumulate) {
    if (T <= 0) return cudaSuccess;
    k_rmsnorm_bwd<<<T, 256, 0, s>>>(dx, dout, x, w, rstd, C, accumulate);
    LAUNCH_CHECK();
}

// one thread per (row, head, pair i): angles in double as on the CPU
__global__ void k_rope(float *x, const int *pos, int64_t total, int H, int HD, double theta, int inverse) {
    const int half = HD / 2;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total; idx += (int64_t)gridDim.x * blockDim.x) {
        const int i = (int)(idx % half);
        const int64_t th = idx / half;   // row * H + head
        const int t = (int)(th / H);
        const double ang = (double)pos[t] * pow(theta, -2.0 * i / HD);
        const float cs = (float)cos(ang), sn = inverse ? -(float)sin(ang) : (float)sin(ang);
        float *v = x + th * HD;
        const float a = v[i], b = v[i + half];
        v[i] = a * cs - b * sn;
        v[i + half] = b * cs + a * sn;
    }
}
extern "C" cudaError_t sc_cu_rope(cudaStream_t s, float *x, const int *pos, int T, int H, int HD, float theta, int inverse) {
    const int64_t total = (int64_t)T * H * (HD / 2);
    if (total <= 0) return cudaSuccess;
    k_rope<<<grid_1d(total), 256, 0, s>>>(x, pos, total, H, HD, (double)theta, inverse);
    LAUNCH_CHECK();
}

__global__ void k_swiglu(float *out, const float *g, const float *u, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float gi = g[i];
        out[i] = gi / (1.0f + expf(-gi)) * u[i];
    }
}
extern "C" cudaError_t sc_cu_swiglu(cudaStream_t s, float *out, const float *g, const float *u, int64_t n) {
    if (n <= 0) return cudaSuccess;
    k_swiglu<<<grid_1d(n), 256, 0, s>>>(out, g, u, n);
    LAUNCH_CHECK();
}

__global__ void k_swiglu_bwd(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float gi = g[i], sg = 1.0f / (1.0f + expf(-gi)), d = dout[i];   // read before dg (may alias dout) is written
        du[i] = d * (gi * sg);
        dg[i] = d * u[i] * sg * (1.0f + gi * (1.0f - sg));
    }
}
extern "C" cudaError_t sc_cu_swiglu_backward(cudaStream_t s, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    if (n <= 0) return cudaSuccess;
    k_swiglu_bwd<<<grid_1d(n), 256, 0, s>>>(dg, du, dout, g, u, n);
    LAUNCH_CHECK();
}

// --- KV cache and attention ---------------------------------------------------------------------

__global__ void k_kv_write(float *ck, float *cv, const float *k, const float *v, const int64_t *dst, int KD) {
    const int r = blockIdx.x;
    const int64_t at = dst[r];
    for (int c = threadIdx.x; c < KD; c += blockDim.x) {
        ck[at + c] = k[(int64_t)r * KD + c];
        cv[at + c] = v[(int64_t)r * KD + c];
    }
}
extern "C" cudaError_t sc_cu_kv_write(cudaStream_t s, float *ck, float *cv, const float *k, const float *v, const int64_t *dst, int n, int KD) {
    if (n <= 0) return cudaSuccess;
    k_kv_write<<<n, 128, 0, s>>>(ck, cv, k, v, dst, KD);
    LAUNCH_CHECK();
}

#define ATT_WARPS 4
#define ATT_MAXD 8   // head dims up to 8 * 32 = 256

// One block per (query row, head); each warp walks every ATT_WARPS-th position with an online
// softmax (running max, sum, weighted values in the lanes: lane holds dims lane + 32 i), and
// the warps' partial results are merged at the end.
__global__ void __launch_bounds__(ATT_WARPS * WARP) k_attention(float *out, float *lse, const float *q, const float *k, const float *v,
                                                                const sc_cu_attn_row *rows, int64_t kv_stride, int NH, int KVH, int HD, float scale) {
    __shared__ float sm_m[ATT_WARPS], sm_l[ATT_WARPS];
    __shared__ float sm_acc[ATT_WARPS][ATT_MAXD * WARP];
    const int item = blockIdx.x, t = item / NH, h = item % NH;
    const int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
    const sc_cu_attn_row row = rows[t];
    const int kh = h / (NH / KVH);
    const float *qv = q + ((int64_t)t * NH + h) * HD;
    const float *kb = k + row.kv_off + (int64_t)kh * HD, *vb = v + row.kv_off + (int64_t)kh * HD;
    float qr[ATT_MAXD], acc[ATT_MAXD];
    #pragma unroll
    for (int i = 0; i < ATT_MAXD; i++) {
        const int d = lane + WARP * i;
        qr[i] = d < HD ? qv[d] : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = w; j < row.n; j += ATT_WARPS) {
        const float *kr = kb + (int64_t)j * kv_stride, *vr = vb + (int64_t)j * kv_stride;
        float part = 0.0f;
        #pragma unroll
        for (int i = 0; i < ATT_MAXD; i++) {
            const int d = lane + WARP * i;
            if (d < HD) part += qr[i] * kr[d];
        }
        const float sc = warp_sum_f(part) * scale;
        const float mn = fmaxf(m, sc), corr = expf(m - mn), p = expf(sc - mn);
        l = l * corr + p;
        #pragma unroll
        for (int i = 0; i < ATT_MAXD; i++) {
            const int d = lane + WARP * i;
            if (d < HD) acc[i] = acc[i] * corr + p * vr[d];
        }
        m = mn;
    }
    if (lane == 0) { sm_m[w] = m; sm_l[w] = l; }
    #pragma unroll
    for (int i = 0; i < ATT_MAXD; i++) sm_acc[w][lane + WARP * i] = acc[i];
    __syncthreads();
    float M = -INFINITY;
    for (int i = 0; i < ATT_WARPS; i++) M = fmaxf(M, sm_m[i]);
    float L = 0.0f, f[ATT_WARPS];
    for (int i = 0; i < ATT_WARPS; i++) { f[i] = sm_m[i] == -INFINITY ? 0.0f : expf(sm_m[i] - M); L += sm_l[i] * f[i]; }
    const float inv = 1.0f / L;
    float *o = out + ((int64_t)t * NH + h) * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float a = 0.0f;
        for (int i = 0; i < ATT_WARPS; i++) a += sm_acc[i][d] * f[i];
        o[d] = a * inv;
    }
    if (lse && threadIdx.x == 0) lse[(int64_t)t * NH + h] = M + logf(L);
}
extern "C" cudaError_t sc_cu_attention(cudaStream_t s, float *out, float *lse, const float *q, const float *k, const float *v,
                                       const sc_cu_attn_row *rows, int T, int64_t kv_stride, int NH, int KVH, int HD) {
    if (T <= 0) return cudaSuccess;
    if (HD > ATT_MAXD * WARP) return cudaErrorInvalidValue;
    k_attention<<<(unsigned)((int64_t)T * NH), ATT_WARPS * WARP, 0, s>>>(out, lse, q, k, v, rows, kv_stride, NH, KVH, HD, 1.0f / sqrtf((float)HD));
    LAUNCH_CHECK();
}

// D[t, h] = dout . out (per row and head): one warp each
__global__ void k_attn_D(float *D, const float *dout, const float *out, int64_t items, int HD) {
    const int64_t item = blockIdx.x * (int64_t)(blockDim.x / WARP) + threadIdx.x / WARP;
    const int lane = threadIdx.x % WARP;
    if (item >= items) return;
    float a = 0.0f;
    for (int d = lane; d < HD; d += WARP) a += dout[item * HD + d] * out[item * HD + d];
    a = warp_sum_f(a);
    if (lane == 0) D[item] = a;
}

// dq of one (row, head): over the positions j <= i of its sequence
__global__ void __launch_bounds__(ATT_WARPS * WARP) k_attn_dq(float *dq, const float *dout, const float *lse, const float *D,
                                                              const float *q, const float *k, const float *v, const sc_cu_attn_row *rows,
                                                              int NH, int KVH, int HD, float scale) {
    __shared__ float sm_acc[ATT_WARPS][ATT_MAXD * WARP];
    const int item = blockIdx.x, t = item / NH, h = item % NH;
    const int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
    const int QD = NH * HD, KD = KVH * HD, kh = h / (NH / KVH);
    const int s0 = rows[t].s0, i = t - s0;
    const float *qv = q + (int64_t)t * QD + (int64_t)h * HD, *dov = dout + (int64_t)t * QD + (int64_t)h * HD;
    const float L = lse[(int64_t)t * NH + h], Dv = D[(int64_t)t * NH + h];
    float qr[ATT_MAXD], dor[ATT_MAXD], acc[ATT_MAXD];
    #pragma unroll
    for (int x = 0; x < ATT_MAXD; x++) {
        const int d = lane + WARP * x;
        qr[x] = d < HD ? qv[d] : 0.0f;
        dor[x] = d < HD ? dov[d] : 0.0f;
        acc[x] = 0.0f;
    }
    for (int j = w; j <= i; j += ATT_WARPS) {
        const float *kr = k + (int64_t)(s0 + j) * KD + (int64_t)kh * HD, *vr = v + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
        float ps = 0.0f, pg = 0.0f;
        #pragma unroll
        for (int x = 0; x < ATT_MAXD; x++) {
            const int d = lane + WARP * x;
            if (d < HD) { ps += qr[x] * kr[d]; pg += dor[x] * vr[d]; }
        }
        const float sc = warp_sum_f(ps), g = warp_sum_f(pg);
        const float p = expf(sc * scale - L), ds = p * (g - Dv) * scale;
        #pragma unroll
        for (int x = 0; x < ATT_MAXD; x++) {
            const int d = lane + WARP * x;
            if (d < HD) acc[x] += ds * kr[d];
        }
    }
    #pragma unroll
    for (int x = 0; x < ATT_MAXD; x++) sm_acc[w][lane + WARP * x] = acc[x];
    __syncthreads();
    float *o = dq + (int64_t)t * QD + (int64_t)h * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float a = 0.0f;
        for (int x = 0; x < ATT_WARPS; x++) a += sm_acc[x][d];
        o[d] = a;
    }
}

// dk, dv of one (key row, kv head): over every query head of the group and rows i >= j
__global__ void __launch_bounds__(ATT_WARPS * WARP) k_attn_dkdv(float *dk, float *dv, const float *dout, const float *lse, const float *D,
                                                                const float *q, const float *k, const float *v, const sc_cu_attn_row *rows,
                                                                int NH, int KVH, int HD, float scale) {
    __shared__ float sm_k[ATT_WARPS][ATT_MAXD * WARP], sm_v[ATT_WARPS][ATT_MAXD * WARP];
    const int item = blockIdx.x, tj = item / KVH, kh = item % KVH;
    const int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
    const int QD = NH * HD, KD = KVH * HD, group = NH / KVH;
    const int s0 = rows[tj].s0, len = rows[tj].n, j = tj - s0, cnt = len - j;   // query rows j .. len-1
    const float *kr = k + (int64_t)tj * KD + (int64_t)kh * HD, *vr = v + (int64_t)tj * KD + (int64_t)kh * HD;
    float kreg[ATT_MAXD], vreg[ATT_MAXD], ak[ATT_MAXD], av[ATT_MAXD];
    #pragma unroll
    for (int x = 0; x < ATT_MAXD; x++) {
        const int d = lane + WARP * x;
        kreg[x] = d < HD ? kr[d] : 0.0f;
        vreg[x] = d < HD ? vr[d] : 0.0f;
        ak[x] = av[x] = 0.0f;
    }
    for (int it = w; it < group * cnt; it += ATT_WARPS) {
        const int h = kh * group + it / cnt, t = s0 + j + it % cnt;
        const float *qv = q + (int64_t)t * QD + (int64_t)h * HD, *dov = dout + (int64_t)t * QD + (int64_t)h * HD;
        float ps = 0.0f, pg = 0.0f;
        #pragma unroll
        for (int x = 0; x < ATT_MAXD; x++) {
            const int d = lane + WARP * x;
            if (d < HD) { ps += qv[d] * kreg[x]; pg += dov[d] * vreg[x]; }
        }
        const float sc = warp_sum_f(ps), g = warp_sum_f(pg);
        const float p = expf(sc * scale - lse[(int64_t)t * NH + h]);
        const float ds = p * (g - D[(int64_t)t * NH + h]) * scale;
        #pragma unroll
        for (int x = 0; x < ATT_MAXD; x++) {
            const int d = lane + WARP * x;
            if (d < HD) { ak[x] += ds * qv[d]; av[x] += p * dov[d]; }
        }
    }
    #pragma unroll
    for (int x = 0; x < ATT_MAXD; x++) { sm_k[w][lane + WARP * x] = ak[x]; sm_v[w][lane + WARP * x] = av[x]; }
    __syncthreads();
    float *ok = dk + (int64_t)tj * KD + (int64_t)kh * HD, *ov = dv + (int64_t)tj * KD + (int64_t)kh * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float a = 0.0f, b = 0.0f;
        for (int x = 0; x < ATT_WARPS; x++) { a += sm_k[x][d]; b += sm_v[x][d]; }
        ok[d] = a;
        ov[d] = b;
    }
}

extern "C" cudaError_t sc_cu_attention_backward(cudaStream_t s, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                                const float *lse, const float *q, const float *k, const float *v,
                                                const sc_cu_attn_row *rows, int T, int NH, int KVH, int HD, float *Dbuf) {
    if (T <= 0) return cudaSuccess;
    if (HD > ATT_MAXD * WARP) return cudaErrorInvalidValue;
    const float scale = 1.0f / sqrtf((float)HD);
    const int64_t items = (int64_t)T * NH;
    k_attn_D<<<blocks_for(items, 8), 8 * WARP, 0, s>>>(Dbuf, dout, out, items, HD);
    k_attn_dq<<<(unsigned)items, ATT_WARPS * WARP, 0, s>>>(dq, dout, lse, Dbuf, q, k, v, rows, NH, KVH, HD, scale);
    k_attn_dkdv<<<(unsigned)((int64_t)T * KVH), ATT_WARPS * WARP, 0, s>>>(dk, dv, dout, lse, Dbuf, q, k, v, rows, NH, KVH, HD, scale);
    LAUNCH_CHECK();
}

// --- the cuDNN attention path: FP32 packed rows <-> BF16 padded [B, S, heads, HD] ---------------------

static __device__ __forceinline__ uint16_t to_bf16(float x) {
    const uint32_t u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);   // NaN stays NaN
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);                   // round to nearest even
}

// one block per padded row
__global__ void k_sdpa_pack(uint16_t *dst, const float *src, const int64_t *src_off, int width) {
    const int64_t r = blockIdx.x, off = src_off[r];
    uint16_t *d = dst + r * width;
    for (int c = threadIdx.x; c < width; c += blockDim.x) d[c] = off >= 0 ? to_bf16(src[off + c]) : (uint16_t)0;
}
extern "C" cudaError_t sc_cu_sdpa_pack(cudaStream_t s, uint16_t *dst, const float *src, const int64_t *src_off, int n_rows, int width) {
    if (n_rows <= 0) return cudaSuccess;
    k_sdpa_pack<<<n_rows, 128, 0, s>>>(dst, src, src_off, width);
    LAUNCH_CHECK();
}

__global__ void k_sdpa_unpack(float *dst, const uint16_t *src, const int *src_row, int width) {
    const int64_t t = blockIdx.x;
    const uint16_t *r = src + (int64_t)src_row[t] * width;
    float *d = dst + t * width;
    for (int c = threadIdx.x; c < width; c += blockDim.x) d[c] = __uint_as_float((uint32_t)r[c] << 16);
}
extern "C" cudaError_t sc_cu_sdpa_unpack(cudaStream_t s, float *dst, const uint16_t *src, const int *src_row, int T, int width) {
    if (T <= 0) return cudaSuccess;
    k_sdpa_unpack<<<T, 128, 0, s>>>(dst, src, src_row, width);
    LAUNCH_CHECK();
}

__global__ void k_sdpa_stats_out(float *lse, const float *stats, const int *src_row, int64_t n, int NH, int S) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t t = i / NH;
    const int h = (int)(i % NH), r = src_row[t], b = r / S, p = r % S;
    lse[i] = stats[((int64_t)b * NH + h) * S + p];
}
extern "C" cudaError_t sc_cu_sdpa_stats_out(cudaStream_t s, float *lse, const float *stats, const int *src_row, int T, int NH, int S) {
    const int64_t n = (int64_t)T * NH;
    if (n <= 0) return cudaSuccess;
    k_sdpa_stats_out<<<blocks_for(n, 256), 256, 0, s>>>(lse, stats, src_row, n, NH, S);
    LAUNCH_CHECK();
}

__global__ void k_sdpa_stats_in(float *stats, const float *lse, const int *row_t, int64_t n, int NH, int S) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;   // (b, h, p)
    if (i >= n) return;
    const int p = (int)(i % S);
    const int64_t bh = i / S;
    const int h = (int)(bh % NH);
    const int64_t b = bh / NH;
    const int t = row_t[b * S + p];
    stats[i] = t >= 0 ? lse[(int64_t)t * NH + h] : 3.402823466e38f;
}
extern "C" cudaError_t sc_cu_sdpa_stats_in(cudaStream_t s, float *stats, const float *lse, const int *row_t, int B, int S, int NH) {
    const int64_t n = (int64_t)B * NH * S;
    if (n <= 0) return cudaSuccess;
    k_sdpa_stats_in<<<blocks_for(n, 256), 256, 0, s>>>(stats, lse, row_t, n, NH, S);
    LAUNCH_CHECK();
}

// --- adapter --------------------------------------------------------------------------------------

__global__ void k_row_norms(float *nrm, const float *u, int C) {
    __shared__ double sh[32];
    const int t = blockIdx.x;
    const float *r = u + (int64_t)t * C;
    double ss = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ss += (double)r[c] * r[c];
    ss = block_sum_d(ss, sh);
    if (threadIdx.x == 0) nrm[t] = (float)sqrt(ss);
}
extern "C" cudaError_t sc_cu_row_norms(cudaStream_t s, float *nrm, const float *u, int T, int C) {
    if (T <= 0) return cudaSuccess;
    k_row_norms<<<T, 256, 0, s>>>(nrm, u, C);
    LAUNCH_CHECK();
}

#define SC_ADAPTER_EPS_F 1e-8f   // adapter.h's SC_ADAPTER_EPS

__global__ void k_adapter_apply(float *out, const float *u, const float *nrm, int64_t total, int C, float scaling, int accumulate) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const float kk = scaling / (nrm[i / C] + SC_ADAPTER_EPS_F);
        out[i] = accumulate ? out[i] + u[i] * kk : u[i] * kk;
    }
}
extern "C" cudaError_t sc_cu_adapter_apply(cudaStream_t s, float *out, const float *u, const float *nrm, int T, int C, float scaling, int accumulate) {
    const int64_t total = (int64_t)T * C;
    if (total <= 0) return cudaSuccess;
    k_adapter_apply<<<grid_1d(total), 256, 0, s>>>(out, u, nrm, total, C, scaling, accumulate);
    LAUNCH_CHECK();
}

__global__ void k_adapter_du(float *du, const float *g, const float *u, const float *nrm, int C, float sc) {
    __shared__ double sh[32];
    const int t = blockIdx.x;
    const float *gr = g + (int64_t)t * C, *ur = u + (int64_t)t * C;
    float *d = du + (int64_t)t * C;
    double gu = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) gu += (double)gr[c] * ur[c];
    gu = block_sum_d(gu, sh);
    const double n = nrm[t], ne = n + SC_ADAPTER_EPS_F;
    const double k1 = sc / ne, k2 = n > 0 ? sc * gu / (n * ne * ne) : 0.0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) d[c] = (float)(k1 * gr[c] - k2 * ur[c]);
}
extern "C" cudaError_t sc_cu_adapter_du(cudaStream_t s, float *du, const float *g, const float *u, const float *nrm, int T, int C, float scaling) {
    if (T <= 0) return cudaSuccess;
    k_adapter_du<<<T, 256, 0, s>>>(du, g, u, nrm, C, scaling);
    LAUNCH_CHECK();
}

// --- divergence loss: one block per row, three passes over the vocabulary, gradient in place -------

__global__ void k_divergence(float *lq, const float *lp, const int32_t *targets, int V, float alpha, float beta, double grad_scale,
                             double *kl, double *nll, int *bad) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    __shared__ double s_nll;
    const int i = blockIdx.x;
    const float *zp = lp + (int64_t)i * V;
    float *zq = lq + (int64_t)i * V;
    float mp = -INFINITY, mq = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) { mp = fmaxf(mp, zp[v]); mq = fmaxf(mq, zq[v]); }
    mp = block_max_f(mp, shf);
    mq = block_max_f(mq, shf);
    double sp = 0, sq = 0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) { sp += exp((double)zp[v] - mp); sq += exp((double)zq[v] - mq); }
    sp = block_sum_d(sp, shd);
    sq = block_sum_d(sq, shd);
    const double lsp = mp + log(sp), lsq = mq + log(sq);
    const int y = targets[i];
    if (threadIdx.x == 0) {
        s_nll = lsq - zq[y];   // before zq is overwritten
        bad[i] = !isfinite(lsp) ? 1 : !isfinite(lsq) ? 2 : 0;
    }
    __syncthreads();
    double k = 0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        const double logp = zp[v] - lsp, logq = zq[v] - lsq;
        const double p = exp(logp), q = exp(logq);
        k += p * (logp - logq);
        const double g = alpha * (p - q) + beta * (q - (v == y ? 1.0 : 0.0));
        zq[v] = (float)(g * grad_scale);
    }
    k = block_sum_d(k, shd);
    if (threadIdx.x == 0) { kl[i] = k; nll[i] = s_nll; }
}
extern "C" cudaError_t sc_cu_divergence_loss(cudaStream_t s, float *lq, const float *lp, const int32_t *targets, int n, int V,
                                             float alpha, float beta, double grad_scale, double *kl, double *nll, int *bad) {
    if (n <= 0) return cudaSuccess;
    k_divergence<<<n, 512, 0, s>>>(lq, lp, targets, V, alpha, beta, grad_scale, kl, nll, bad);
    LAUNCH_CHECK();
}

// --- AdamW: the CPU's operations in its order, each rounded as the CPU rounds it ----------------------

__global__ void k_adamw(float *p, const float *g, float *m, float *v, int64_t n, float lr, float b1, float b2, float eps, float wd,
                        double bc1, double bc2) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float pi = p[i];
        const float gi = g[i];
        pi = __fsub_rn(pi, __fmul_rn(__fmul_rn(lr, wd), pi));
        const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(__fsub_rn(1.0f, b1), gi));
        const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, b2), gi), gi));
        m[i] = mi;
        v[i] = vi;
        const double mh = __ddiv_rn((double)mi, bc1), vh = __ddiv_rn((double)vi, bc2);
        const double step = __ddiv_rn(__dmul_rn((double)lr, mh), __dadd_rn(sqrt(vh), (double)eps));
        p[i] = __fsub_rn(pi, (float)step);
    }
}
extern "C" cudaError_t sc_cu_adamw(cudaStream_t s, float *p, const float *g, float *m, float *v, int64_t n,
                                   float lr, float beta1, float beta2, float eps, float wd, double bc1, double bc2) {
    if (n <= 0) return cudaSuccess;
    k_adamw<<<grid_1d(n), 256, 0, s>>>(p, g, m, v, n, lr, beta1, beta2, eps, wd, bc1, bc2);
    LAUNCH_CHECK();
}

// --- sampling: greedy or plain softmax, one block per row ------------------------------------------
// Each thread owns a contiguous slice of the ids, so the cumulative sum the CPU walks in id order
// is the block's prefix over slices followed by one slice walked in order.

#define SAMPLE_THREADS 1024

__global__ void __launch_bounds__(SAMPLE_THREADS) k_sample(float *logits, int ld, int V, int greedy, float temperature, const float *u,
                                                          int32_t *ids) {
    __shared__ float s_val[SAMPLE_THREADS];
    __shared__ int s_id[SAMPLE_THREADS];
    __shared__ double s_sum[SAMPLE_THREADS + 1];
    __shared__ int s_fin, s_pick;
    const int row = blockIdx.x, tid = threadIdx.x;
    float *l = logits + (int64_t)row * ld;
    const int per = (V + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
    const int a = tid * per < V ? tid * per : V, b = a + per < V ? a + per : V;
    if (tid == 0) s_fin = 1;
    __syncthreads();
    int best = -1, fin = 1;
    float bv = 0.0f;
    for (int x = a; x < b; x++) {
        const float z = l[x];
        fin &= isfinite(z);
        if (best < 0 || z > bv) { best = x; bv = z; }
    }
    if (!fin) s_fin = 0;
    s_val[tid] = bv;
    s_id[tid] = best;
    __syncthreads();
    if (tid == 0) {   // first maximum in id order, as the CPU's scan
        int bi = -1;
        float bm = 0.0f;
        for (int x = 0; x < SAMPLE_THREADS; x++)
            if (s_id[x] >= 0 && (bi < 0 || s_val[x] > bm)) { bi = s_id[x]; bm = s_val[x]; }
        s_pick = bi;
    }
    __syncthreads();
    const int top = s_pick;
    if (!s_fin) { if (tid == 0) ids[row] = -1; return; }
    if (greedy) { if (tid == 0) ids[row] = top; return; }
    const float inv_t = 1.0f / (temperature > 0 ? temperature : 1.0f), mx = l[top];
    __syncthreads();
    double sum = 0;
    for (int x = a; x < b; x++) {
        const float e = (float)exp((double)((l[x] - mx) * inv_t));   // exp rounded once, as glibc's expf on the CPU
        l[x] = e;
        sum += e;
    }
    s_sum[tid + 1] = sum;
    __syncthreads();
    if (tid == 0) {
        s_sum[0] = 0;
        for (int x = 1; x <= SAMPLE_THREADS; x++) s_sum[x] += s_sum[x - 1];   // inclusive prefix
    }
    __syncthreads();
    const double target = (double)u[row] * s_sum[SAMPLE_THREADS];
    if (a < b && s_sum[tid] <= target && target < s_sum[tid + 1]) {   // the crossing is in this slice
        double acc = s_sum[tid];
        int pick = b - 1;
        for (int x = a; x < b; x++) { acc += l[x]; if (acc > target) { pick = x; break; } }
        ids[row] = pick;
    } else if (tid == 0 && !(target < s_sum[SAMPLE_THREADS])) {
        ids[row] = top;   // rounding left the target at the end: the CPU falls back to the best id
    }
}
extern "C" cudaError_t sc_cu_sample(cudaStream_t s, float *logits, int n, int ld, int V, int greedy, float temperature, const float *u, int32_t *ids) {
    if (n <= 0) return cudaSuccess;
    k_sample<<<n, SAMPLE_THREADS, 0, s>>>(logits, ld, V, greedy, temperature, u, ids);
    LAUNCH_CHECK();
}

// --- sampling with top-k / top-p: one block per row, candidates in chunks (sample_select.h) ----------
// A chunk is the next m <= SC_SS_CAP candidates in the CPU's order after a cursor (the last one
// emitted): four radix passes (8 bits each) over the row's order keys find the m-th one, a fifth
// gathers them (the ones at the boundary key by ascending id), a bitonic sort in shared memory
// orders them, and one thread walks them with the CPU's sums (sc_ss_walk). No global scratch.

#define SS_THREADS 1024
#define SS_WARPS (SS_THREADS / WARP)

typedef struct {
    uint32_t key[SC_SS_CAP];
    int32_t id[SC_SS_CAP];
    float p[SC_SS_CAP];
    unsigned hist[SC_SS_DIGITS];
    unsigned wcount[SS_WARPS];
    double red[SS_WARPS];
    float rv[SS_WARPS];
    int ri[SS_WARPS];
    sc_ss_walk_state w;
    uint32_t sel_prefix, cur_key;
    unsigned sel_rem, n;
    int take_all, loaded, err;
    int32_t cur_id;
} ss_shared;

// The m-th candidate after the cursor (has, kc, ic) in the CPU's order: *thr and *need_eq such
// that the candidates after the cursor with key > thr, and the need_eq lowest ids with key ==
// thr, are the m next ones; all that remain (thr 0, need_eq 0: no key is 0) when m or fewer do.
// Every thread of the block calls it and gets the result.
static __device__ void ss_select(ss_shared *s, const float *l, int V, float mx, float inv_t, int has, uint32_t kc, int32_t ic,
                                 unsigned m, uint32_t *thr, unsigned *need_eq) {
    uint32_t prefix = 0;
    unsigned remaining = m;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int d = threadIdx.x; d < SC_SS_DIGITS; d += blockDim.x) s->hist[d] = 0;
        __syncthreads();
        for (int x = threadIdx.x; x < V; x += blockDim.x) {
            const uint32_t k = sc_ss_key(sc_ss_scaled(l[x], mx, inv_t));
            if (!sc_ss_after(has, kc, ic, k, x)) continue;
            if (shift < 24 && (k >> (shift + 8)) != (prefix >> (shift + 8))) continue;   // not in the chosen digits above
            atomicAdd(&s->hist[(k >> shift) & (SC_SS_DIGITS - 1)], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            if (shift == 24) {
                unsigned tot = 0;
                for (int d = 0; d < SC_SS_DIGITS; d++) tot += s->hist[d];
                s->take_all = tot <= m;
            }
            unsigned above;
            const int d = sc_ss_digit(s->hist, remaining, &above);
            s->sel_prefix = prefix | ((uint32_t)d << shift);
            s->sel_rem = remaining - above;
        }
        __syncthreads();
        if (s->take_all) { *thr = 0; *need_eq = 0; return; }
        prefix = s->sel_prefix;
        remaining = s->sel_rem;
    }
    *thr = prefix;
    *need_eq = remaining;
}

// Gather the selection into s->key / s->id (unordered); s->n: how many (more than SC_SS_CAP
// sets s->err). Tiles of blockDim ids in id order, so the ties at thr are ranked by id.
static __device__ void ss_gather(ss_shared *s, const float *l, int V, float mx, float inv_t, int has, uint32_t kc, int32_t ic,
                                 uint32_t thr, unsigned need_eq) {
    const int lane = threadIdx.x % WARP, wid = threadIdx.x / WARP, nw = blockDim.x / WARP;
    if (threadIdx.x == 0) s->n = 0;
    __syncthreads();
    unsigned base = 0;   // ties at thr met in earlier tiles (the same in every thread)
    for (int t0 = 0; t0 < V; t0 += blockDim.x) {
        const int x = t0 + threadIdx.x;
        int gt = 0, eq = 0;
        uint32_t k = 0;
        if (x < V) {
            k = sc_ss_key(sc_ss_scaled(l[x], mx, inv_t));
            if (sc_ss_after(has, kc, ic, k, x)) { gt = k > thr; eq = k == thr; }
        }
        if (gt) {
            const unsigned slot = atomicAdd(&s->n, 1u);
            if (slot < SC_SS_CAP) { s->key[slot] = k; s->id[slot] = x; }
        }
        if (base < need_eq) {   // block-uniform
            const unsigned mask = __ballot_sync(0xffffffffu, eq);
            if (lane == 0) s->wcount[wid] = __popc(mask);
            __syncthreads();
            unsigned rank = base, tot = 0;
            for (int w = 0; w < nw; w++) {
                const unsigned c = s->wcount[w];
                if (w < wid) rank += c;
                tot += c;
            }
            rank += __popc(mask & ((1u << lane) - 1u));
            if (eq && rank < need_eq) {
                const unsigned slot = atomicAdd(&s->n, 1u);
                if (slot < SC_SS_CAP) { s->key[slot] = k; s->id[slot] = x; }
            }
            base += tot;
            __syncthreads();   // before the next tile's counts
        }
    }
    __syncthreads();
    if (threadIdx.x == 0 && s->n > SC_SS_CAP) s->err = 1;
    __syncthreads();
}

// Sort s->key / s->id [0, n) into the CPU's order (bitonic, padded to a power of two with
// (key 0, INT32_MAX), which sorts last) and fill s->p.
static __device__ void ss_sort(ss_shared *s, int n) {
    int P = 2;
    while (P < n) P <<= 1;
    for (int i = n + threadIdx.x; i < P; i += blockDim.x) { s->key[i] = 0; s->id[i] = INT32_MAX; }
    __syncthreads();
    for (int size = 2; size <= P; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < P / 2; i += blockDim.x) {
                const int lo = 2 * i - (i & (stride - 1)), hi = lo + stride;
                const int up = (lo & size) == 0;   // this pair's run is sorted in the CPU's order (else reversed)
                const uint32_t kl = s->key[lo], kh = s->key[hi];
                const int32_t il = s->id[lo], ih = s->id[hi];
                if (up ? sc_ss_before(kh, ih, kl, il) : sc_ss_before(kl, il, kh, ih)) {
                    s->key[lo] = kh; s->id[lo] = ih;
                    s->key[hi] = kl; s->id[hi] = il;
                }
            }
            __syncthreads();
        }
    for (int i = threadIdx.x; i < n; i += blockDim.x) s->p[i] = sc_ss_prob(s->key[i]);
    __syncthreads();
}

__global__ void __launch_bounds__(SS_THREADS) k_sample_sorted(const float *logits, int ld, int V, float inv_t, int top_k, float top_p,
                                                              const float *u, int32_t *ids) {
    __shared__ ss_shared s;
    const int row = blockIdx.x, tid = threadIdx.x, lane = tid % WARP, wid = tid / WARP;
    const float *l = logits + (int64_t)row * ld;
    // finite check and the first maximum in id order (the CPU's scan)
    int fin = 1, bi = -1;
    float bv = 0.0f;
    for (int x = tid; x < V; x += blockDim.x) {
        const float z = l[x];
        fin &= isfinite(z);
        if (bi < 0 || z > bv) { bi = x; bv = z; }
    }
    for (int o = WARP / 2; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) { bv = ov; bi = oi; }
    }
    if (lane == 0) { s.rv[wid] = bv; s.ri[wid] = bi; }
    if (tid == 0) { s.err = 0; s.loaded = -1; s.cur_key = 0; s.cur_id = 0; }
    fin = __syncthreads_and(fin);
    if (!fin) { if (tid == 0) ids[row] = -1; return; }
    if (tid == 0) {
        for (int w = 1; w < SS_WARPS; w++)
            if (s.ri[w] >= 0 && (s.ri[0] < 0 || s.rv[w] > s.rv[0] || (s.rv[w] == s.rv[0] && s.ri[w] < s.ri[0]))) { s.rv[0] = s.rv[w]; s.ri[0] = s.ri[w]; }
    }
    __syncthreads();
    const float mx = l[s.ri[0]];
    const int k = top_k > 0 && top_k < V ? top_k : V;
    const int nucleus = top_p > 0 && top_p < 1.0f;
    double s_k = 0;
    if (nucleus && k > SC_SS_CAP) {   // the k candidates' mass for the nucleus, as a block sum (see sample_select.h)
        uint32_t thr;
        unsigned need_eq;
        ss_select(&s, l, V, mx, inv_t, 0, 0, 0, (unsigned)k, &thr, &need_eq);
        double part = 0;
        for (int x = tid; x < V; x += blockDim.x) {
            const uint32_t key = sc_ss_key(sc_ss_scaled(l[x], mx, inv_t));
            if (key > thr) part += sc_ss_prob(key);
        }
        s_k = block_sum_d(part, s.red);
        if (need_eq) s_k += (double)need_eq * sc_ss_prob(thr);
    }
    if (tid == 0) sc_ss_walk_init(&s.w, k, top_p, u[row], SC_SS_CAP, s_k);
    __syncthreads();
    // each phase walks at most ceil(k / cap) chunks, three phases
    const int max_steps = 3 * ((k + SC_SS_CAP - 1) / SC_SS_CAP) + 3;
    for (int step = 0;; step++) {
        const int j = s.w.next_chunk;
        const int loaded = s.loaded;
        const unsigned m = (unsigned)sc_ss_chunk_len(&s.w);
        const uint32_t kc = s.cur_key;
        const int32_t ic = s.cur_id;
        __syncthreads();   // every thread has read the state before thread 0 changes it
        if (step >= max_steps || (j > 0 && loaded != j && loaded != j - 1)) { if (tid == 0) ids[row] = -2; return; }
        if (loaded != j) {
            uint32_t thr;
            unsigned need_eq;
            ss_select(&s, l, V, mx, inv_t, j > 0, kc, ic, m, &thr, &need_eq);
            ss_gather(&s, l, V, mx, inv_t, j > 0, kc, ic, thr, need_eq);
            if (s.err || s.n != m) { if (tid == 0) ids[row] = -2; return; }
            ss_sort(&s, (int)m);
            if (tid == 0) { s.loaded = j; s.cur_key = s.key[m - 1]; s.cur_id = s.id[m - 1]; }
        }
        if (tid == 0) sc_ss_walk(&s.w, s.p, s.id, (int)s.n);
        __syncthreads();
        if (s.w.phase == 3) break;
    }
    if (tid == 0) ids[row] = s.w.pick;
}
extern "C" cudaError_t sc_cu_sample_sorted(cudaStream_t s, const float *logits, int n, int ld, int V, float inv_t, int top_k, float top_p,
                                           const float *u, int32_t *ids) {
    if (n <= 0) return cudaSuccess;
    k_sample_sorted<<<n, SS_THREADS, 0, s>>>(logits, ld, V, inv_t, top_k, top_p, u, ids);
    LAUNCH_CHECK();
}
