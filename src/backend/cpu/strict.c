// strict.c — the CPU backend's strict mode ($SC_CPU_STRICT=1): the CPU backend behaves as a
// device backend would towards its callers. Backend memory is recorded at alloc and every op
// checks that each array it is given (float / double arguments, see backend.h) lies inside a
// live allocation: a host array passed where backend memory belongs (which the plain CPU
// backend accepts, and a GPU would not) fails with a message naming the op and the argument.
// be->separate_memory is set, so the model uploads its vectors as it does for a GPU. The test
// suite runs the engine-level tests in this mode (tests/strict_memory.sh): the GPU's memory
// discipline checked on machines without one. Pinned host memory (op->host_alloc) is recorded
// too: the async copies refuse a host side that is not pinned (a GPU copies pageable memory
// synchronously, and the copy would not overlap) and a device side that is not backend memory.
// Its events behave like a device's that lags: event_query reports a recorded event as passed
// only at the second query after its record (event_wait at once), so callers' code for events
// still pending (the pipeline's overlap of sends with compute) runs on the CPU too; an event not
// made by event_create, or waited for or queried before any record, is refused.
#include "../backend_internal.h"
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct { const char *p; size_t n; } live;

typedef struct { live *b; size_t n, cap; } live_list;

typedef struct sc_cpu_strict {
    const sc_backend_ops *inner;
    sc_backend_ops table;
    live *blocks;
    size_t n, cap;
    live_list pinned;          // op->host_alloc blocks
} strict_state;

static strict_state *st_of(sc_backend *be) { return ((sc_cpu_impl *)be->impl)->strict; }

static sc_status chk(sc_backend *be, const void *p, const char *op, const char *arg) {
    if (!p) return SC_OK;
    const strict_state *s = st_of(be);
    const char *c = p;
    for (size_t i = 0; i < s->n; i++)
        if (c >= s->blocks[i].p && c < s->blocks[i].p + (s->blocks[i].n ? s->blocks[i].n : 1)) return SC_OK;
    return sc_errorf(SC_ERR_INTERNAL, "cpu backend (strict memory, SC_CPU_STRICT=1): %s: argument '%s' (%p) is not backend memory: "
                     "a host array passed where a device backend needs its own memory (allocate it with op->alloc and upload it)",
                     op, arg, p);
}
#define C1(a) SC_TRY(chk(be, a, OPNAME, #a))

static int in_list(const live *b, size_t n, const void *p) {
    const char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c >= b[i].p && c < b[i].p + (b[i].n ? b[i].n : 1)) return 1;
    return 0;
}

// the host side of an async copy: bytes inside one pinned block
static sc_status chk_pinned(sc_backend *be, const void *p, size_t bytes, const char *op, const char *arg) {
    const live_list *l = &st_of(be)->pinned;
    if (bytes == 0 || (in_list(l->b, l->n, p) && in_list(l->b, l->n, (const char *)p + bytes - 1))) return SC_OK;
    return sc_errorf(SC_ERR_INTERNAL, "cpu backend (strict memory, SC_CPU_STRICT=1): %s: argument '%s' (%p, %zu bytes) is not pinned host memory: "
                     "the host side of an asynchronous copy must come from op->host_alloc", op, arg, p, bytes);
}

static sc_status s_host_alloc(sc_backend *be, size_t bytes, const char *what, void **out) {
    strict_state *s = st_of(be);
    live_list *l = &s->pinned;
    SC_TRY(s->inner->host_alloc(be, bytes, what, out));
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        live *nb = realloc(l->b, cap * sizeof *nb);
        if (!nb) { s->inner->host_free(be, *out); *out = NULL; return sc_errorf(SC_ERR_MEM, "strict memory: out of memory"); }
        l->b = nb;
        l->cap = cap;
    }
    l->b[l->n].p = *out;
    l->b[l->n].n = bytes;
    l->n++;
    return SC_OK;
}
static void s_host_free(sc_backend *be, void *p) {
    strict_state *s = st_of(be);
    if (!p) return;
    for (size_t i = 0; i < s->pinned.n; i++)
        if (s->pinned.b[i].p == p) { s->pinned.b[i] = s->pinned.b[--s->pinned.n]; break; }
    s->inner->host_free(be, p);
}

static sc_status s_alloc(sc_backend *be, size_t bytes, const char *what, void **out) {
    strict_state *s = st_of(be);
    SC_TRY(s->inner->alloc(be, bytes, what, out));
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        live *nb = realloc(s->blocks, cap * sizeof *nb);
        if (!nb) { s->inner->free(be, *out); *out = NULL; return sc_errorf(SC_ERR_MEM, "strict memory: out of memory"); }
        s->blocks = nb;
        s->cap = cap;
    }
    s->blocks[s->n].p = *out;
    s->blocks[s->n].n = bytes;
    s->n++;
    return SC_OK;
}
static void s_free(sc_backend *be, void *p) {
    strict_state *s = st_of(be);
    if (!p) return;
    for (size_t i = 0; i < s->n; i++)
        if (s->blocks[i].p == p) { s->blocks[i] = s->blocks[--s->n]; break; }
    s->inner->free(be, p);
}

#define OPNAME "upload"
static sc_status s_upload(sc_backend *be, void *dst, const void *src, size_t n) { C1(dst); return st_of(be)->inner->upload(be, dst, src, n); }
#undef OPNAME
#define OPNAME "download"
static sc_status s_download(sc_backend *be, void *dst, const void *src, size_t n) { C1(src); return st_of(be)->inner->download(be, dst, src, n); }
#undef OPNAME
#define OPNAME "download_async"
static sc_status s_download_async(sc_backend *be, void *dst, const void *src, size_t n) {
    C1(src); SC_TRY(chk_pinned(be, dst, n, OPNAME, "host_dst")); return st_of(be)->inner->download_async(be, dst, src, n);
}
#undef OPNAME
#define OPNAME "upload_async"
static sc_status s_upload_async(sc_backend *be, void *dst, const void *src, size_t n) {
    C1(dst); SC_TRY(chk_pinned(be, src, n, OPNAME, "host_src")); return st_of(be)->inner->upload_async(be, dst, src, n);
}
#undef OPNAME

// events: a recorded event is pending until queried twice or waited for
typedef struct { unsigned magic; int recorded, lag; } strict_event;
#define EVENT_MAGIC 0x5ce7e41u
static sc_status ev_chk(void *ev, const char *op) {
    const strict_event *e = ev;
    if (!e || e->magic != EVENT_MAGIC)
        return sc_errorf(SC_ERR_INTERNAL, "cpu backend (strict memory, SC_CPU_STRICT=1): %s: the event %p was not made by event_create (or was destroyed)", op, ev);
    return SC_OK;
}
static sc_status s_event_create(sc_backend *be, void **ev) {
    (void)be;
    strict_event *e = sc_calloc(1, sizeof *e, "an event");
    if (!e) return SC_ERR_MEM;
    e->magic = EVENT_MAGIC;
    *ev = e;
    return SC_OK;
}
static void s_event_destroy(sc_backend *be, void *ev) {
    (void)be;
    if (!ev) return;
    ((strict_event *)ev)->magic = 0;
    free(ev);
}
static sc_status s_event_record(sc_backend *be, void *ev) {
    SC_TRY(ev_chk(ev, "event_record"));
    strict_event *e = ev;
    e->recorded = 1;
    e->lag = 2;
    return st_of(be)->inner->event_record(be, ev);
}
static sc_status s_event_wait(sc_backend *be, void *ev) {
    (void)be;
    SC_TRY(ev_chk(ev, "event_wait"));
    strict_event *e = ev;
    if (!e->recorded) return sc_errorf(SC_ERR_INTERNAL, "cpu backend (strict memory, SC_CPU_STRICT=1): event_wait: the event was never recorded");
    e->lag = 0;
    return SC_OK;
}
static sc_status s_event_query(sc_backend *be, void *ev, int *done) {
    (void)be;
    SC_TRY(ev_chk(ev, "event_query"));
    strict_event *e = ev;
    if (!e->recorded) return sc_errorf(SC_ERR_INTERNAL, "cpu backend (strict memory, SC_CPU_STRICT=1): event_query: the event was never recorded");
    if (e->lag > 0) e->lag--;
    *done = e->lag == 0;
    return SC_OK;
}
#define OPNAME "copy"
static sc_status s_copy(sc_backend *be, void *dst, const void *src, size_t n) { C1(dst); C1(src); return st_of(be)->inner->copy(be, dst, src, n); }
#undef OPNAME
#define OPNAME "memset"
static sc_status s_memset(sc_backend *be, void *dst, int b, size_t n) { C1(dst); return st_of(be)->inner->memset(be, dst, b, n); }
#undef OPNAME
#define OPNAME "matmul"
static sc_status s_matmul(sc_backend *be, float *out, const float *x, const sc_mat *W, const float *bias, int T) {
    C1(out); C1(x); C1(bias); return st_of(be)->inner->matmul(be, out, x, W, bias, T);
}
#undef OPNAME
#define OPNAME "matmul_dx"
static sc_status s_matmul_dx(sc_backend *be, float *dx, const float *dy, const sc_mat *W, int T, int acc) {
    C1(dx); C1(dy); return st_of(be)->inner->matmul_dx(be, dx, dy, W, T, acc);
}
#undef OPNAME
#define OPNAME "embed"
static sc_status s_embed(sc_backend *be, float *out, const sc_mat *E, const int32_t *ids, int T) { C1(out); return st_of(be)->inner->embed(be, out, E, ids, T); }
#undef OPNAME
#define OPNAME "gather_rows"
static sc_status s_gather(sc_backend *be, float *out, const float *x, const int *rows, int n, int C) { C1(out); C1(x); return st_of(be)->inner->gather_rows(be, out, x, rows, n, C); }
#undef OPNAME
#define OPNAME "scatter_add_rows"
static sc_status s_scatter(sc_backend *be, float *y, const float *x, const int *rows, int n, int C) { C1(y); C1(x); return st_of(be)->inner->scatter_add_rows(be, y, x, rows, n, C); }
#undef OPNAME
#define OPNAME "add"
static sc_status s_add(sc_backend *be, float *y, const float *x, int64_t n) { C1(y); C1(x); return st_of(be)->inner->add(be, y, x, n); }
#undef OPNAME
#define OPNAME "add_row"
static sc_status s_add_row(sc_backend *be, float *h, const float *v, float sc, int T, int C) { C1(h); C1(v); return st_of(be)->inner->add_row(be, h, v, sc, T, C); }
#undef OPNAME
#define OPNAME "col_sum"
static sc_status s_col_sum(sc_backend *be, double *acc, const float *h, int T, int C) { C1(acc); C1(h); return st_of(be)->inner->col_sum(be, acc, h, T, C); }
#undef OPNAME
#define OPNAME "rmsnorm"
static sc_status s_rmsnorm(sc_backend *be, float *out, float *rstd, const float *x, const float *w, int T, int C, float eps) {
    C1(out); C1(rstd); C1(x); C1(w); return st_of(be)->inner->rmsnorm(be, out, rstd, x, w, T, C, eps);
}
#undef OPNAME
#define OPNAME "rmsnorm_backward"
static sc_status s_rmsnorm_bwd(sc_backend *be, float *dx, const float *dout, const float *x, const float *w, const float *rstd, int T, int C, int acc) {
    C1(dx); C1(dout); C1(x); C1(w); C1(rstd); return st_of(be)->inner->rmsnorm_backward(be, dx, dout, x, w, rstd, T, C, acc);
}
#undef OPNAME
#define OPNAME "rope"
static sc_status s_rope(sc_backend *be, float *x, const int *pos, int T, int H, int HD, float th, int inv) { C1(x); return st_of(be)->inner->rope(be, x, pos, T, H, HD, th, inv); }
#undef OPNAME
#define OPNAME "swiglu"
static sc_status s_swiglu(sc_backend *be, float *out, const float *g, const float *u, int64_t n) { C1(out); C1(g); C1(u); return st_of(be)->inner->swiglu(be, out, g, u, n); }
#undef OPNAME
#define OPNAME "swiglu_backward"
static sc_status s_swiglu_bwd(sc_backend *be, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    C1(dg); C1(du); C1(dout); C1(g); C1(u); return st_of(be)->inner->swiglu_backward(be, dg, du, dout, g, u, n);
}
#undef OPNAME
#define OPNAME "kv_write"
static sc_status s_kv_write(sc_backend *be, float *ck, float *cv, const float *k, const float *v, const sc_attn_layout *lay, int KD) {
    C1(ck); C1(cv); C1(k); C1(v); return st_of(be)->inner->kv_write(be, ck, cv, k, v, lay, KD);
}
#undef OPNAME
#define OPNAME "attention"
static sc_status s_attention(sc_backend *be, float *out, float *lse, const float *q, const float *k, const float *v, const sc_attn_layout *lay,
                             int NH, int KVH, int HD) {
    C1(out); C1(lse); C1(q); C1(k); C1(v); return st_of(be)->inner->attention(be, out, lse, q, k, v, lay, NH, KVH, HD);
}
#undef OPNAME
#define OPNAME "attention_backward"
static sc_status s_attention_bwd(sc_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                                 const float *q, const float *k, const float *v, const int *q_start, int n_seq, int NH, int KVH, int HD) {
    C1(dq); C1(dk); C1(dv); C1(dout); C1(out); C1(lse); C1(q); C1(k); C1(v);
    return st_of(be)->inner->attention_backward(be, dq, dk, dv, dout, out, lse, q, k, v, q_start, n_seq, NH, KVH, HD);
}
#undef OPNAME
#define OPNAME "adapter_forward"
static sc_status s_adapter_fwd(sc_backend *be, float *out, const float *h, const float *A, const float *B, int T, int C, int r, float s, int acc) {
    C1(out); C1(h); C1(A); C1(B); return st_of(be)->inner->adapter_forward(be, out, h, A, B, T, C, r, s, acc);
}
#undef OPNAME
#define OPNAME "adapter_backward"
static sc_status s_adapter_bwd(sc_backend *be, float *dh, const float *h, const float *A, const float *B, float *dA, float *dB, int T, int C, int r, float s) {
    C1(dh); C1(h); C1(A); C1(B); C1(dA); C1(dB); return st_of(be)->inner->adapter_backward(be, dh, h, A, B, dA, dB, T, C, r, s);
}
#undef OPNAME
#define OPNAME "divergence_loss"
static sc_status s_loss(sc_backend *be, float *lq, const float *lp, const int32_t *tg, int n, int V, float a, float b, double gs, double *kl, double *nll) {
    C1(lq); C1(lp); return st_of(be)->inner->divergence_loss(be, lq, lp, tg, n, V, a, b, gs, kl, nll);
}
#undef OPNAME
#define OPNAME "adamw"
static sc_status s_adamw(sc_backend *be, float *p, const float *g, float *m, float *v, size_t n, const sc_adamw_opts *o, int step) {
    C1(p); C1(g); C1(m); C1(v); return st_of(be)->inner->adamw(be, p, g, m, v, n, o, step);
}
#undef OPNAME
#define OPNAME "sample"
static sc_status s_sample(sc_backend *be, float *logits, int n, int V, const sc_sampling *s, const float *u, int32_t *ids) {
    C1(logits); return st_of(be)->inner->sample(be, logits, n, V, s, u, ids);
}
#undef OPNAME

void sc_cpu_strict_free(sc_cpu_strict *s) {
    if (!s) return;
    free(s->blocks);
    free(s->pinned.b);
    free(s);
}

sc_status sc_cpu_backend_make_strict(sc_backend *be) {
    strict_state *s = sc_calloc(1, sizeof *s, "strict memory state");
    if (!s) return SC_ERR_MEM;
    s->inner = be->op;
    s->table = *be->op;
    sc_backend_ops *t = &s->table;
    t->alloc = s_alloc; t->free = s_free; t->upload = s_upload; t->download = s_download; t->copy = s_copy; t->memset = s_memset;
    t->event_create = s_event_create; t->event_destroy = s_event_destroy; t->event_record = s_event_record;
    t->event_wait = s_event_wait; t->event_query = s_event_query;
    t->host_alloc = s_host_alloc; t->host_free = s_host_free; t->download_async = s_download_async; t->upload_async = s_upload_async;
    t->matmul = s_matmul; t->matmul_dx = s_matmul_dx; t->embed = s_embed; t->gather_rows = s_gather; t->scatter_add_rows = s_scatter;
    t->add = s_add; t->add_row = s_add_row; t->col_sum = s_col_sum; t->rmsnorm = s_rmsnorm; t->rmsnorm_backward = s_rmsnorm_bwd;
    t->rope = s_rope; t->swiglu = s_swiglu; t->swiglu_backward = s_swiglu_bwd; t->kv_write = s_kv_write; t->attention = s_attention;
    t->attention_backward = s_attention_bwd; t->adapter_forward = s_adapter_fwd; t->adapter_backward = s_adapter_bwd;
    t->divergence_loss = s_loss; t->adamw = s_adamw; t->sample = s_sample;
    ((sc_cpu_impl *)be->impl)->strict = s;
    be->op = &s->table;
    be->separate_memory = 1;
    return SC_OK;
}
