// blas_shim.c — SGEMM with plain loops (OpenMP over rows of C) for the GPU-check build without
// OpenBLAS (shim/cblas.h). Column-major calls are turned into the row-major product of the
// transposes. Sums in float, k in order.
#include <cblas.h>

#include <stddef.h>

static void rm_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc) {
    #pragma omp parallel for schedule(static) if ((long long)M * N * K > (1 << 16))
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++) {
                const float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                const float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = alpha * s + (beta == 0.0f ? 0.0f : beta * *c);
        }
    }
}

void cblas_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    const int at = ta != CblasNoTrans, bt = tb != CblasNoTrans;
    if (order == CblasRowMajor) rm_sgemm(at, bt, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else rm_sgemm(bt, at, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);   // C^T = op(B)^T op(A)^T
}

char *openblas_get_config(void) {
    static char name[] = "none (GPU-check build: plain-loop SGEMM, benchmarks/gpu/shim)";
    return name;
}
