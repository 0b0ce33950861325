// adapter.c — CPU forward and backward of the normalised low-rank residual adapter
//   u = h A B;  update = s * u / (||u|| + eps)   (A: C x r, B: r x C, norm over C per row)
// Backward, with g = dL/d(h + update), n = ||u||:
//   du = s * [ g / (n + eps) - u * (g . u) / (n (n + eps)^2) ]   (second term -> 0 as u -> 0)
//   dB += (hA)^T du;  d(hA) = du B^T;  dA += h^T d(hA);  dh = g + d(hA) A^T
// The small products go through OpenBLAS; scratch (hA, u, norms) from the workspace.
#include "../cpu_kernels.h"

#include <cblas.h>
#include <math.h>

#define SC_ADAPTER_EPS_F 1e-8f   // adapter.h's SC_ADAPTER_EPS (the study's code)

// hA[T,r] = h A;  u[T,C] = hA B;  nrm[T] = ||u||
static void project(const float *h, const float *A, const float *B, int T, int C, int r, float *hA, float *u, float *nrm) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, r, C, 1.0f, h, C, A, r, 0.0f, hA, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, C, r, 1.0f, hA, r, B, C, 0.0f, u, C);
    SC_CPU_FOR((int64_t)T * C >= SC_CPU_PAR_MIN, t, T,
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)u[(size_t)t * C + c] * u[(size_t)t * C + c];
        nrm[t] = (float)sqrt(ss););
}

sc_status SC_CPU_FN(adapter_forward)(sc_backend *be, float *out, const float *h, const float *A, const float *B,
                                     int T, int C, int r, float scaling, int accumulate) {
    if (T <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    float *hA = SC_ARENA_FLOATS(&be->ws, (size_t)T * r, "adapter h A");
    float *u = SC_ARENA_FLOATS(&be->ws, (size_t)T * C, "adapter update");
    float *nrm = SC_ARENA_FLOATS(&be->ws, T, "adapter norms");
    if (!hA || !u || !nrm) { sc_arena_reset(&be->ws, mk); return SC_ERR_MEM; }
    project(h, A, B, T, C, r, hA, u, nrm);   // every row of h is read before out (maybe h) is written
    SC_CPU_FOR((int64_t)T * C >= SC_CPU_PAR_MIN, t, T,
        const float k = scaling / (nrm[t] + SC_ADAPTER_EPS_F);
        float *o = out + (size_t)t * C;
        const float *ut = u + (size_t)t * C;
        if (accumulate) for (int c = 0; c < C; c++) o[c] += ut[c] * k;
        else for (int c = 0; c < C; c++) o[c] = ut[c] * k;);
    sc_arena_reset(&be->ws, mk);
    return SC_OK;
}

sc_status SC_CPU_FN(adapter_backward)(sc_backend *be, float *dh, const float *h, const float *A, const float *B,
                                      float *dA, float *dB, int T, int C, int r, float scaling) {
    if (T <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    float *hA = SC_ARENA_FLOATS(&be->ws, (size_t)T * r, "adapter h A");
    float *u = SC_ARENA_FLOATS(&be->ws, (size_t)T * C, "adapter update");
    float *nrm = SC_ARENA_FLOATS(&be->ws, T, "adapter norms");
    float *du = SC_ARENA_FLOATS(&be->ws, (size_t)T * C, "adapter du");
    float *dhA = SC_ARENA_FLOATS(&be->ws, (size_t)T * r, "adapter d(hA)");
    if (!hA || !u || !nrm || !du || !dhA) { sc_arena_reset(&be->ws, mk); return SC_ERR_MEM; }
    project(h, A, B, T, C, r, hA, u, nrm);
    const float s = scaling;
    SC_CPU_FOR((int64_t)T * C >= SC_CPU_PAR_MIN, t, T,
        const float *g = dh + (size_t)t * C, *ut = u + (size_t)t * C;
        float *d = du + (size_t)t * C;
        double n = nrm[t], ne = n + SC_ADAPTER_EPS_F, gu = 0;
        for (int c = 0; c < C; c++) gu += (double)g[c] * ut[c];
        double k1 = s / ne, k2 = n > 0 ? s * gu / (n * ne * ne) : 0.0;
        for (int c = 0; c < C; c++) d[c] = (float)(k1 * g[c] - k2 * ut[c]););
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, C, T, 1.0f, hA, r, du, C, 1.0f, dB, C);    // dB += hA^T du
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, r, C, 1.0f, du, C, B, C, 0.0f, dhA, r);   // dhA = du B^T
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, r, T, 1.0f, h, C, dhA, r, 1.0f, dA, r);   // dA += h^T dhA
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, C, r, 1.0f, dhA, r, A, r, 1.0f, dh, C);   // dh += dhA A^T
    sc_arena_reset(&be->ws, mk);
    return SC_OK;
}
