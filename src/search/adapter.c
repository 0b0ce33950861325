// adapter.c — forward and backward of the normalised low-rank residual adapter.
//
// Backward, with g = dL/dh', s = scaling, n = ||u||, y = u / (n + eps):
//   du = s * [ g / (n + eps) - u * (g . u) / (n (n + eps)^2) ]   (second term -> 0 as u -> 0)
//   dB += (hA)^T du;  d(hA) = du B^T;  dA += h^T d(hA);  dh = g + d(hA) A^T
#include "steerclear/adapter.h"
#include "steerclear/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *sc_adapter_kind_name(sc_adapter_kind k) { return k == SC_ADAPTER_SHARED ? "shared" : "per-block"; }

sc_status sc_adapter_kind_parse(const char *s, sc_adapter_kind *k) {
    if (!strcmp(s, "shared")) *k = SC_ADAPTER_SHARED;
    else if (!strcmp(s, "per-block")) *k = SC_ADAPTER_PER_BLOCK;
    else return sc_errorf(SC_ERR_ARG, "adapter kind '%s' is not known: use 'shared' or 'per-block'", s);
    return SC_OK;
}

size_t sc_adapter_numel_A(const sc_adapter *a) { return (size_t)a->n_sets * a->C * a->r; }
size_t sc_adapter_numel_B(const sc_adapter *a) { return (size_t)a->n_sets * a->r * a->C; }

sc_status sc_adapter_create(sc_adapter_kind kind, int n_layers, int C, int r, float scaling, sc_adapter **out) {
    if (r <= 0 || C <= 0 || n_layers <= 0) return sc_errorf(SC_ERR_ARG, "adapter: rank %d, hidden %d and layers %d must be positive", r, C, n_layers);
    sc_adapter *a = sc_calloc(1, sizeof *a, "adapter");
    if (!a) return SC_ERR_MEM;
    a->kind = kind; a->n_layers = n_layers; a->C = C; a->r = r; a->scaling = scaling;
    a->n_sets = kind == SC_ADAPTER_SHARED ? 1 : n_layers;
    size_t n = sc_adapter_numel_A(a);
    a->A = calloc(n, sizeof(float)); a->B = calloc(n, sizeof(float));
    a->dA = calloc(n, sizeof(float)); a->dB = calloc(n, sizeof(float));
    if (!a->A || !a->B || !a->dA || !a->dB) { sc_adapter_free(a); return sc_errorf(SC_ERR_MEM, "out of memory for an adapter of %zu parameters", 2 * n); }
    *out = a;
    return SC_OK;
}

void sc_adapter_free(sc_adapter *a) {
    if (!a) return;
    free(a->A); free(a->B); free(a->dA); free(a->dB);
    free(a);
}

void sc_adapter_init(sc_adapter *a, uint64_t seed) {
    sc_rng_normal(seed, 0x41 /* 'A' */, 0, a->A, sc_adapter_numel_A(a));
    memset(a->B, 0, sizeof(float) * sc_adapter_numel_B(a));
    sc_adapter_zero_grad(a);
}

void sc_adapter_zero_grad(sc_adapter *a) {
    memset(a->dA, 0, sizeof(float) * sc_adapter_numel_A(a));
    memset(a->dB, 0, sizeof(float) * sc_adapter_numel_B(a));
}

static int set_of(const sc_adapter *a, int block) { return a->kind == SC_ADAPTER_SHARED ? 0 : block; }

// hA[T,r] = h A;  u[T,C] = hA B;  nrm[T] = ||u||
static void adapter_project(const sc_adapter *a, int set, const float *h, int T, float *hA, float *u, float *nrm) {
    const int C = a->C, r = a->r;
    const float *A = a->A + (size_t)set * C * r, *B = a->B + (size_t)set * r * C;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, r, C, 1.0f, h, C, A, r, 0.0f, hA, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, C, r, 1.0f, hA, r, B, C, 0.0f, u, C);
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)u[(size_t)t * C + c] * u[(size_t)t * C + c];
        nrm[t] = (float)sqrt(ss);
    }
}

sc_status sc_adapter_update(const sc_adapter *a, int block, const float *h, int T, float *update) {
    const int C = a->C;
    float *hA = malloc(sizeof(float) * (size_t)T * a->r + 64), *nrm = malloc(sizeof(float) * (size_t)T + 64);
    if (!hA || !nrm) { free(hA); free(nrm); return sc_errorf(SC_ERR_MEM, "out of memory in the adapter (%d tokens)", T); }
    adapter_project(a, set_of(a, block), h, T, hA, update, nrm);
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float k = a->scaling / (nrm[t] + SC_ADAPTER_EPS);
        for (int c = 0; c < C; c++) update[(size_t)t * C + c] *= k;
    }
    free(hA); free(nrm);
    return SC_OK;
}

static sc_status adapter_forward(void *user, int block, float *h, int T, int C, const sc_batch *batch) {
    (void)batch;
    sc_adapter *a = user;
    if (C != a->C) return sc_errorf(SC_ERR_SHAPE, "adapter of hidden size %d applied to hidden size %d", a->C, C);
    float *upd = malloc(sizeof(float) * (size_t)T * C + 64);
    if (!upd) return sc_errorf(SC_ERR_MEM, "out of memory in the adapter (%d tokens)", T);
    sc_status st = sc_adapter_update(a, block, h, T, upd);
    if (!st) {
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < (int64_t)T * C; i++) h[i] += upd[i];
    }
    free(upd);
    return st;
}

static sc_status adapter_backward(void *user, int block, const float *h, float *dh, int T, int C) {
    sc_adapter *a = user;
    const int r = a->r, set = set_of(a, block);
    float *hA = malloc(sizeof(float) * (size_t)T * r + 64), *u = malloc(sizeof(float) * (size_t)T * C + 64);
    float *nrm = malloc(sizeof(float) * (size_t)T + 64), *du = malloc(sizeof(float) * (size_t)T * C + 64);
    float *dhA = malloc(sizeof(float) * (size_t)T * r + 64);
    if (!hA || !u || !nrm || !du || !dhA) {
        free(hA); free(u); free(nrm); free(du); free(dhA);
        return sc_errorf(SC_ERR_MEM, "out of memory in the adapter backward (%d tokens)", T);
    }
    adapter_project(a, set, h, T, hA, u, nrm);
    const float s = a->scaling;
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const float *g = dh + (size_t)t * C, *ut = u + (size_t)t * C;
        float *d = du + (size_t)t * C;
        double n = nrm[t], ne = n + SC_ADAPTER_EPS, gu = 0;
        for (int c = 0; c < C; c++) gu += (double)g[c] * ut[c];
        double k1 = s / ne, k2 = n > 0 ? s * gu / (n * ne * ne) : 0.0;
        for (int c = 0; c < C; c++) d[c] = (float)(k1 * g[c] - k2 * ut[c]);
    }
    float *A = a->A + (size_t)set * C * r, *B = a->B + (size_t)set * r * C;
    float *dA = a->dA + (size_t)set * C * r, *dB = a->dB + (size_t)set * r * C;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, C, T, 1.0f, hA, r, du, C, 1.0f, dB, C);    // dB += hA^T du
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, r, C, 1.0f, du, C, B, C, 0.0f, dhA, r);   // dhA = du B^T
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, r, T, 1.0f, h, C, dhA, r, 1.0f, dA, r);   // dA += h^T dhA
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, C, r, 1.0f, dhA, r, A, r, 1.0f, dh, C);   // dh += dhA A^T
    free(hA); free(u); free(nrm); free(du); free(dhA);
    return SC_OK;
}

sc_hook sc_adapter_hook(sc_adapter *a) {
    sc_hook h = {.user = a, .forward = adapter_forward, .backward = adapter_backward};
    return h;
}
