/* cblas.h (GPU-check shim) — the one BLAS routine the CPU backend calls (row-major SGEMM) and
 * openblas_get_config, implemented by blas_shim.c with plain loops, for the GPU-check build on
 * machines without OpenBLAS: the CPU backend is then only the slow reference of the parity test.
 * The normal build links OpenBLAS; this file is never on its include path. */
#ifndef SC_CBLAS_SHIM_H
#define SC_CBLAS_SHIM_H

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };
typedef enum CBLAS_ORDER CBLAS_ORDER;
typedef enum CBLAS_TRANSPOSE CBLAS_TRANSPOSE;

void cblas_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
char *openblas_get_config(void);

#endif
