// adapter.c — the divergence adapter's parameters (in backend memory) and the hook that
// applies it through the backend's adapter ops.
#include "steerclear/adapter.h"
#include "steerclear/rng.h"

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

sc_status sc_adapter_create(sc_backend *be, sc_adapter_kind kind, int n_layers, int C, int r, float scaling, sc_adapter **out) {
    *out = NULL;
    if (r <= 0 || C <= 0 || n_layers <= 0) return sc_errorf(SC_ERR_ARG, "adapter: rank %d, hidden %d and layers %d must be positive", r, C, n_layers);
    sc_adapter *a = sc_calloc(1, sizeof *a, "adapter");
    if (!a) return SC_ERR_MEM;
    a->kind = kind; a->n_layers = n_layers; a->C = C; a->r = r; a->scaling = scaling;
    a->n_sets = kind == SC_ADAPTER_SHARED ? 1 : n_layers;
    a->be = be;
    const size_t n = sc_adapter_numel_A(a);   // == numel_B
    sc_status st = sc_backend_alloc_floats(be, 4 * n, "adapter parameters", &a->A);
    if (st) { free(a); return st; }
    a->B = a->A + n; a->dA = a->B + n; a->dB = a->dA + n;
    if ((st = be->op->memset(be, a->A, 0, sizeof(float) * 4 * n))) { sc_adapter_free(a); return st; }
    *out = a;
    return SC_OK;
}

void sc_adapter_free(sc_adapter *a) {
    if (!a) return;
    a->be->op->free(a->be, a->A);
    free(a);
}

sc_status sc_adapter_get(const sc_adapter *a, float *A, float *B) {
    if (A) SC_TRY(a->be->op->download(a->be, A, a->A, sizeof(float) * sc_adapter_numel_A(a)));
    if (B) SC_TRY(a->be->op->download(a->be, B, a->B, sizeof(float) * sc_adapter_numel_B(a)));
    return SC_OK;
}

sc_status sc_adapter_set(sc_adapter *a, const float *A, const float *B) {
    if (A) SC_TRY(a->be->op->upload(a->be, a->A, A, sizeof(float) * sc_adapter_numel_A(a)));
    if (B) SC_TRY(a->be->op->upload(a->be, a->B, B, sizeof(float) * sc_adapter_numel_B(a)));
    return SC_OK;
}

sc_status sc_adapter_init(sc_adapter *a, uint64_t seed) {
    const size_t n = sc_adapter_numel_A(a);
    float *A = malloc(sizeof(float) * n);
    if (!A) return sc_errorf(SC_ERR_MEM, "out of memory initialising an adapter");
    sc_rng_normal(seed, 0x41 /* 'A' */, 0, A, n);
    sc_status st = sc_adapter_set(a, A, NULL);
    free(A);
    if (!st) st = a->be->op->memset(a->be, a->B, 0, sizeof(float) * sc_adapter_numel_B(a));
    if (!st) st = sc_adapter_zero_grad(a);
    return st;
}

sc_status sc_adapter_zero_grad(sc_adapter *a) {
    return a->be->op->memset(a->be, a->dA, 0, sizeof(float) * (sc_adapter_numel_A(a) + sc_adapter_numel_B(a)));
}

static int set_of(const sc_adapter *a, int block) { return a->kind == SC_ADAPTER_SHARED ? 0 : block; }

sc_status sc_adapter_apply(const sc_adapter *a, int block, const float *h, int T, float *update, int accumulate) {
    const size_t set = (size_t)set_of(a, block) * a->C * a->r;
    return a->be->op->adapter_forward(a->be, update, h, a->A + set, a->B + set, T, a->C, a->r, a->scaling, accumulate);
}

static sc_status adapter_forward(void *user, sc_backend *be, int block, float *h, int T, int C, const sc_batch *batch) {
    (void)batch;
    sc_adapter *a = user;
    if (C != a->C) return sc_errorf(SC_ERR_SHAPE, "adapter of hidden size %d applied to hidden size %d", a->C, C);
    if (be != a->be) return sc_errorf(SC_ERR_INTERNAL, "adapter made for another backend");
    return sc_adapter_apply(a, block, h, T, h, 1);
}

sc_status sc_adapter_backward_rows(sc_adapter *a, int block, const float *h, float *dh, int T) {
    const size_t set = (size_t)set_of(a, block) * a->C * a->r;
    return a->be->op->adapter_backward(a->be, dh, h, a->A + set, a->B + set, a->dA + set, a->dB + set, T, a->C, a->r, a->scaling);
}

static sc_status adapter_backward(void *user, sc_backend *be, int block, const float *h, float *dh, int T, int C,
                                  const sc_batch *batch) {
    (void)batch; (void)be;
    sc_adapter *a = user;
    if (C != a->C) return sc_errorf(SC_ERR_SHAPE, "adapter of hidden size %d applied to hidden size %d", a->C, C);
    return sc_adapter_backward_rows(a, block, h, dh, T);
}

sc_hook sc_adapter_hook(sc_adapter *a) {
    sc_hook h = {.user = a, .forward = adapter_forward, .backward = adapter_backward};
    return h;
}

// --- Several adapters in one batch, by sequence tag ---------------------------------------------

// The runs of consecutive sequences with one tag: fn on each run's rows with its adapter.
static sc_status group_runs(const sc_adapter_group *g, sc_backend *be, int block, const float *h, float *dh, float *hout,
                            int T, int C, const sc_batch *batch) {
    if (!batch || !batch->tag) {   // untagged: the single adapter on every row
        if (g->n != 1) return sc_errorf(SC_ERR_INTERNAL, "adapter group of %d adapters applied to an untagged batch", g->n);
        sc_adapter *a = g->adapters[0];
        if (C != a->C || be != a->be) return sc_errorf(SC_ERR_SHAPE, "adapter of hidden size %d applied to hidden size %d (or another backend)", a->C, C);
        return dh ? sc_adapter_backward_rows(a, block, h, dh, T) : sc_adapter_apply(a, block, hout, T, hout, 1);
    }
    for (int i = 0; i < batch->n_seq;) {
        const int t = batch->tag[i];
        int j = i + 1;
        if (t < 0 || t >= g->n) return sc_errorf(SC_ERR_INTERNAL, "adapter group: sequence %d has tag %d but the group has %d adapters", i, t, g->n);
        while (j < batch->n_seq && batch->tag[j] == t) j++;
        sc_adapter *a = g->adapters[t];
        if (C != a->C || be != a->be) return sc_errorf(SC_ERR_SHAPE, "adapter of hidden size %d applied to hidden size %d (or another backend)", a->C, C);
        const int r0 = batch->seq_start[i], rows = batch->seq_start[j] - r0;
        if (rows > 0) {
            if (dh) SC_TRY(sc_adapter_backward_rows(a, block, h + (size_t)r0 * C, dh + (size_t)r0 * C, rows));
            else SC_TRY(sc_adapter_apply(a, block, hout + (size_t)r0 * C, rows, hout + (size_t)r0 * C, 1));
        }
        i = j;
    }
    (void)T;
    return SC_OK;
}

static sc_status group_forward(void *user, sc_backend *be, int block, float *h, int T, int C, const sc_batch *batch) {
    return group_runs(user, be, block, NULL, NULL, h, T, C, batch);
}

static sc_status group_backward(void *user, sc_backend *be, int block, const float *h, float *dh, int T, int C,
                                const sc_batch *batch) {
    return group_runs(user, be, block, h, dh, NULL, T, C, batch);
}

sc_hook sc_adapter_group_hook(sc_adapter_group *g) {
    sc_hook h = {.user = g, .forward = group_forward, .backward = group_backward};
    return h;
}
