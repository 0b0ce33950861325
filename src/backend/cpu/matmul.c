// matmul.c — CPU matrix products against model weights kept as F32 or BF16 [N, K] (nn.Linear
// layout). F32 goes straight to OpenBLAS. BF16: few rows (decode) use an AVX2 dot product that
// widens BF16 on the fly (decode reads every weight once: half the bytes of F32); many rows
// widen one block of weight rows into a scratch buffer and call sgemm on it.
#include "cpu_internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

// Rows of x at or below which BF16 uses the streaming dot-product path.
#define SC_MATVEC_MAX_ROWS 8
// Floats per widened weight block (4 MiB), a compromise between sgemm efficiency and cache.
#define SC_WIDEN_BLOCK_FLOATS (1u << 20)

static float dot_bf16(const float *x, const uint16_t *w, int64_t K) {
    int64_t k = 0;
    float acc = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; k + 16 <= K; k += 16) {
        __m256i w0 = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + k))), 16);
        __m256i w1 = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + k + 8))), 16);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_castsi256_ps(w0), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), _mm256_castsi256_ps(w1), a1);
    }
    a0 = _mm256_add_ps(a0, a1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    acc = _mm_cvtss_f32(s);
#endif
    for (; k < K; k++) acc += x[k] * sc_bf16_to_f32(w[k]);
    return acc;
}

static void widen_rows(float *dst, const uint16_t *src, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] = sc_bf16_to_f32(src[i]);
}

// Scratch for widening *rows_per_block rows of a BF16 [N, K] matrix at a time.
static float *widen_buffer(int64_t N, int64_t K, int64_t *rows_per_block) {
    int64_t nb = SC_WIDEN_BLOCK_FLOATS / K;
    if (nb < 16) nb = 16;
    if (nb > N) nb = N;
    *rows_per_block = nb;
    return sc_malloc((size_t)(nb * K) * sizeof(float), "widened weight block");
}

static sc_status cpu_matmul(float *out, const float *x, const sc_mat *W, const float *bias, int T) {
    const int64_t N = W->rows, K = W->cols;
    if (T <= 0) return SC_OK;
    if (W->dtype == SC_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)N, (int)K, 1.0f, x, (int)K,
                    (const float *)W->data, (int)K, 0.0f, out, (int)N);
    } else if (W->dtype == SC_DTYPE_BF16) {
        const uint16_t *w = W->data;
        if (T <= SC_MATVEC_MAX_ROWS) {
            #pragma omp parallel for schedule(static)
            for (int64_t n = 0; n < N; n++)
                for (int t = 0; t < T; t++) out[(int64_t)t * N + n] = dot_bf16(x + (int64_t)t * K, w + n * K, K);
        } else {
            int64_t nb;
            float *buf = widen_buffer(N, K, &nb);
            if (!buf) return SC_ERR_MEM;
            for (int64_t n0 = 0; n0 < N; n0 += nb) {
                int64_t rows = N - n0 < nb ? N - n0 : nb;
                widen_rows(buf, w + n0 * K, rows * K);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)rows, (int)K, 1.0f, x, (int)K,
                            buf, (int)K, 0.0f, out + n0, (int)N);
            }
            free(buf);
        }
    } else {
        return sc_errorf(SC_ERR_INTERNAL, "matmul: weight dtype %d is not F32 or BF16", (int)W->dtype);
    }
    if (bias) {
        #pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++) out[(int64_t)t * N + n] += bias[n];
    }
    return SC_OK;
}

static sc_status cpu_matmul_dx(float *dx, const float *dy, const sc_mat *W, int T, int accumulate) {
    const int64_t N = W->rows, K = W->cols;
    if (T <= 0) return SC_OK;
    if (W->dtype == SC_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, (int)K, (int)N, 1.0f, dy, (int)N,
                    (const float *)W->data, (int)K, accumulate ? 1.0f : 0.0f, dx, (int)K);
        return SC_OK;
    }
    if (W->dtype != SC_DTYPE_BF16) return sc_errorf(SC_ERR_INTERNAL, "matmul_dx: weight dtype %d is not F32 or BF16", (int)W->dtype);
    const uint16_t *w = W->data;
    int64_t nb;
    float *buf = widen_buffer(N, K, &nb);
    if (!buf) return SC_ERR_MEM;
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        int64_t rows = N - n0 < nb ? N - n0 : nb;
        widen_rows(buf, w + n0 * K, rows * K);
        float beta = (n0 == 0 && !accumulate) ? 0.0f : 1.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, (int)K, (int)rows, 1.0f, dy + n0, (int)N,
                    buf, (int)K, beta, dx, (int)K);
    }
    free(buf);
    return SC_OK;
}

static void cpu_embed(float *out, const sc_mat *E, const int32_t *ids, int T) {
    const int64_t C = E->cols;
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *o = out + (int64_t)t * C;
        if (E->dtype == SC_DTYPE_F32) memcpy(o, (const float *)E->data + (int64_t)ids[t] * C, (size_t)C * sizeof(float));
        else {
            const uint16_t *e = (const uint16_t *)E->data + (int64_t)ids[t] * C;
            for (int64_t c = 0; c < C; c++) o[c] = sc_bf16_to_f32(e[c]);
        }
    }
}


const sc_backend *sc_backend_cpu(void) {
    static sc_backend be;
    static int ready = 0;
    if (!ready) {
        #pragma omp critical(sc_backend_cpu_init)
        if (!ready) {
            be.name = "cpu";
            be.matmul = cpu_matmul;
            be.matmul_dx = cpu_matmul_dx;
            be.embed = cpu_embed;
            sc_cpu_fill_ops(&be);
            ready = 1;
        }
    }
    return &be;
}
