// matmul.c — CPU matrix products against model weights kept as F32 or BF16 [N, K] (nn.Linear
// layout), and the embedding gather. F32 (or a BF16 matrix's prepared F32 copy) goes straight
// to OpenBLAS. BF16 without a copy: few rows (decode) use a dot product that widens BF16 on the
// fly (decode reads every weight once: half the bytes of F32; AVX2 + FMA where compiled for
// it, plain C otherwise); many rows widen one block of weight rows into workspace scratch and
// call sgemm on it.
#include "../cpu_kernels.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

// Rows of x at or below which BF16 uses the streaming kernel (decode: memory bound).
#define SC_MATVEC_MAX_ROWS 16
// Floats per widened weight block (4 MiB), a compromise between sgemm efficiency and cache.
#define SC_WIDEN_BLOCK_FLOATS (1u << 20)

// out[t, n] for rows t in [0, nt) (nt <= 8) of x against one BF16 weight row: each 8-wide
// slice of the weight row is widened once and used for every x row.
static inline __attribute__((always_inline)) void rows_dot_bf16(float *out, int64_t ldo, const float *x, int64_t K,
                                                                const uint16_t *w, int nt) {
    int64_t k = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 acc[8];
    for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
    for (; k + 8 <= K; k += 8) {
        __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + k))), 16));
        for (int j = 0; j < 8; j++)
            if (j < nt) acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + j * K + k), wv, acc[j]);
    }
    for (int j = 0; j < nt; j++) {
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1));
        s4 = _mm_hadd_ps(s4, s4);
        s4 = _mm_hadd_ps(s4, s4);
        out[j * ldo] = _mm_cvtss_f32(s4);
    }
#else
    for (int j = 0; j < nt; j++) out[j * ldo] = 0.0f;
#endif
    for (; k < K; k++) {
        float wk = sc_bf16_to_f32(w[k]);
        for (int j = 0; j < nt; j++) out[j * ldo] += x[j * K + k] * wk;
    }
}

// One row of x against one BF16 weight row, four independent accumulator chains (a single
// chain would wait on FMA latency: batch-1 decode).
static float dot_bf16(const float *x, const uint16_t *w, int64_t K) {
    int64_t k = 0;
    float acc = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (; k + 32 <= K; k += 32)
        for (int j = 0; j < 4; j++) {
            __m256i wi = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + k + 8 * j))), 16);
            a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8 * j), _mm256_castsi256_ps(wi), a[j]);
        }
    for (; k + 8 <= K; k += 8) {
        __m256i wi = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + k))), 16);
        a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_castsi256_ps(wi), a[0]);
    }
    __m256 s8 = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s4 = _mm_hadd_ps(s4, s4);
    s4 = _mm_hadd_ps(s4, s4);
    acc = _mm_cvtss_f32(s4);
#endif
    for (; k < K; k++) acc += x[k] * sc_bf16_to_f32(w[k]);
    return acc;
}

// out[T, N] = x[T, K] . W[N, K]^T for BF16 W and T <= SC_MATVEC_MAX_ROWS, in blocks of 8 rows.
static void matmul_bf16_rows(float *out, const float *x, const uint16_t *w, int64_t N, int64_t K, int T) {
    if (T == 1) {
        SC_CPU_FOR(1, n, N, out[n] = dot_bf16(x, w + n * K, K););
        return;
    }
    SC_CPU_FOR(1, n, N,
        for (int t0 = 0; t0 < T; t0 += 8) {
            int nt = T - t0 < 8 ? T - t0 : 8;
            float *o = out + (int64_t)t0 * N + n;
            const float *xr = x + (int64_t)t0 * K;
            switch (nt) {   // constant nt per case lets the compiler keep the accumulators in registers
            case 1: rows_dot_bf16(o, N, xr, K, w + n * K, 1); break;
            case 2: rows_dot_bf16(o, N, xr, K, w + n * K, 2); break;
            case 3: rows_dot_bf16(o, N, xr, K, w + n * K, 3); break;
            case 4: rows_dot_bf16(o, N, xr, K, w + n * K, 4); break;
            case 5: rows_dot_bf16(o, N, xr, K, w + n * K, 5); break;
            case 6: rows_dot_bf16(o, N, xr, K, w + n * K, 6); break;
            case 7: rows_dot_bf16(o, N, xr, K, w + n * K, 7); break;
            default: rows_dot_bf16(o, N, xr, K, w + n * K, 8); break;
            }
        });
}

static void widen_rows(float *dst, const uint16_t *src, int64_t n) {
    SC_CPU_FOR(n >= SC_CPU_PAR_MIN, i, n, dst[i] = sc_bf16_to_f32(src[i]););
}

// A product against a BF16 [N, K] matrix without an F32 copy: its rows are widened a block at a
// time into workspace scratch and each block goes to sgemm.
typedef struct {
    const float *x;        // forward: x [T, K]; backward: dy [T, N]
    float *out;            // forward: out [T, N]; backward: dx [T, K]
    int T;
    int64_t N, K;
    int accumulate;
} widened_gemm;

// out[:, n0:n0+rows] = x . block^T
static void gemm_block_forward(const widened_gemm *g, const float *block, int64_t n0, int64_t rows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->T, (int)rows, (int)g->K, 1.0f, g->x, (int)g->K,
                block, (int)g->K, 0.0f, g->out + n0, (int)g->N);
}

// dx (+)= dy[:, n0:n0+rows] . block  (the first block overwrites unless accumulating)
static void gemm_block_dx(const widened_gemm *g, const float *block, int64_t n0, int64_t rows) {
    const float beta = (n0 == 0 && !g->accumulate) ? 0.0f : 1.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->T, (int)g->K, (int)rows, 1.0f, g->x + n0, (int)g->N,
                block, (int)g->K, beta, g->out, (int)g->K);
}

static sc_status for_widened_blocks(sc_backend *be, const sc_mat *W, void (*fn)(const widened_gemm *, const float *, int64_t, int64_t),
                                    const widened_gemm *g) {
    const int64_t N = W->rows, K = W->cols;
    int64_t nb = SC_WIDEN_BLOCK_FLOATS / K;
    if (nb < 16) nb = 16;
    if (nb > N) nb = N;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    float *buf = SC_ARENA_FLOATS(&be->ws, nb * K, "widened weight block");
    if (!buf) return SC_ERR_MEM;
    const uint16_t *w = W->data;
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        const int64_t rows = N - n0 < nb ? N - n0 : nb;
        widen_rows(buf, w + n0 * K, rows * K);
        fn(g, buf, n0, rows);
    }
    sc_arena_reset(&be->ws, mk);
    return SC_OK;
}

static const float *f32_weights(const sc_mat *W) {
    return W->dtype == SC_DTYPE_F32 ? (const float *)W->data : (const float *)W->prepared;
}

sc_status SC_CPU_FN(matmul)(sc_backend *be, float *out, const float *x, const sc_mat *W, const float *bias, int T) {
    const int64_t N = W->rows, K = W->cols;
    if (T <= 0) return SC_OK;
    const float *wf = f32_weights(W);
    if (wf && (W->dtype == SC_DTYPE_F32 || T > SC_MATVEC_MAX_ROWS)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)N, (int)K, 1.0f, x, (int)K,
                    wf, (int)K, 0.0f, out, (int)N);
    } else if (W->dtype == SC_DTYPE_BF16) {
        if (T <= SC_MATVEC_MAX_ROWS) {
            matmul_bf16_rows(out, x, W->data, N, K, T);
        } else {
            widened_gemm ctx = {.x = x, .out = out, .T = T, .N = N, .K = K};
            SC_TRY(for_widened_blocks(be, W, gemm_block_forward, &ctx));
        }
    } else {
        return sc_errorf(SC_ERR_INTERNAL, "matmul: weight dtype %d is not F32 or BF16", (int)W->dtype);
    }
    if (bias) SC_CPU_FOR((int64_t)T * N >= SC_CPU_PAR_MIN, t, T,
        for (int64_t n = 0; n < N; n++) out[t * N + n] += bias[n];);
    return SC_OK;
}

sc_status SC_CPU_FN(matmul_dx)(sc_backend *be, float *dx, const float *dy, const sc_mat *W, int T, int accumulate) {
    const int64_t N = W->rows, K = W->cols;
    if (T <= 0) return SC_OK;
    const float *wf = f32_weights(W);
    if (wf) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, (int)K, (int)N, 1.0f, dy, (int)N,
                    wf, (int)K, accumulate ? 1.0f : 0.0f, dx, (int)K);
        return SC_OK;
    }
    if (W->dtype != SC_DTYPE_BF16) return sc_errorf(SC_ERR_INTERNAL, "matmul_dx: weight dtype %d is not F32 or BF16", (int)W->dtype);
    widened_gemm ctx = {.x = dy, .out = dx, .T = T, .N = N, .K = K, .accumulate = accumulate};
    return for_widened_blocks(be, W, gemm_block_dx, &ctx);
}

sc_status SC_CPU_FN(embed)(sc_backend *be, float *out, const sc_mat *E, const int32_t *ids, int T) {
    (void)be;
    const int64_t C = E->cols;
    SC_CPU_FOR((int64_t)T * C >= SC_CPU_PAR_MIN, t, T,
        float *o = out + t * C;
        if (E->dtype == SC_DTYPE_F32) memcpy(o, (const float *)E->data + (int64_t)ids[t] * C, (size_t)C * sizeof(float));
        else {
            const uint16_t *e = (const uint16_t *)E->data + (int64_t)ids[t] * C;
            for (int64_t c = 0; c < C; c++) o[c] = sc_bf16_to_f32(e[c]);
        });
    return SC_OK;
}
