// checkpoint.c — the per-search checkpoint: everything needed to continue a search bit for
// bit, rewritten atomically (temporary file + fsync + rename) after every optimizer step.
//
// Layout (little-endian): "SCSRCHK1", u32 version, u32 kind, u32 rank, u32 C, u32 L,
// u32 steps_total, u32 steps_done, u32 batch, u32 search, u64 seed, u64 payload bytes;
// then f32 A, B, mA, vA, mB, vB, A0, B0 (each n_sets*C*r); then per finished step:
// f64 loss, kl, nll, i64 n_pos, i32 prompt_idx[batch], i32 gen_len[batch], i32 gen[sum],
// f32 A, B.
#include "steerclear/search.h"

#include <stdlib.h>
#include <string.h>

#define CKPT_MAGIC "SCSRCHK1"
#define CKPT_VERSION 1u

typedef struct { char *p; size_t n, cap; int oom; } wbuf;

static void put(wbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 16;
        while (cap < b->n + n) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q; b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }

void sc_search_state_free(sc_search_state *s) {
    if (!s) return;
    sc_adapter_free(s->adapter);
    free(s->mA); free(s->vA); free(s->mB); free(s->vB); free(s->A0); free(s->B0);
    for (int i = 0; i < s->steps_done; i++) {
        free(s->steps[i].prompt_idx); free(s->steps[i].gen_len); free(s->steps[i].gen);
        free(s->steps[i].A); free(s->steps[i].B);
    }
    free(s->steps);
    free(s);
}

sc_status sc_search_checkpoint_save(const char *path, const sc_search_state *s) {
    const sc_adapter *a = s->adapter;
    const size_t nA = sc_adapter_numel_A(a), nB = sc_adapter_numel_B(a);
    wbuf b = {0};
    put(&b, CKPT_MAGIC, 8);
    put_u32(&b, CKPT_VERSION); put_u32(&b, (uint32_t)a->kind); put_u32(&b, (uint32_t)a->r);
    put_u32(&b, (uint32_t)a->C); put_u32(&b, (uint32_t)a->n_layers); put_u32(&b, (uint32_t)s->steps_total);
    put_u32(&b, (uint32_t)s->steps_done); put_u32(&b, (uint32_t)s->batch); put_u32(&b, (uint32_t)s->search);
    put_u64(&b, s->seed);
    size_t payload_at = b.n;
    put_u64(&b, 0);
    const float *arrays[] = {a->A, a->B, s->mA, s->vA, s->mB, s->vB, s->A0, s->B0};
    for (int i = 0; i < 8; i++) put(&b, arrays[i], sizeof(float) * (i % 2 == 0 ? nA : nB));
    for (int i = 0; i < s->steps_done; i++) {
        const sc_step_record *r = &s->steps[i];
        put(&b, &r->loss, 8); put(&b, &r->kl, 8); put(&b, &r->nll, 8); put(&b, &r->n_pos, 8);
        put(&b, r->prompt_idx, 4 * (size_t)s->batch);
        put(&b, r->gen_len, 4 * (size_t)s->batch);
        size_t ng = 0;
        for (int j = 0; j < s->batch; j++) ng += (size_t)r->gen_len[j];
        put(&b, r->gen, 4 * ng);
        put(&b, r->A, sizeof(float) * nA);
        put(&b, r->B, sizeof(float) * nB);
    }
    if (b.oom) { free(b.p); return sc_errorf(SC_ERR_MEM, "%s: out of memory building the checkpoint", path); }
    uint64_t payload = b.n - payload_at - 8;
    memcpy(b.p + payload_at, &payload, 8);
    sc_status st = sc_write_file_atomic(path, b.p, b.n);
    free(b.p);
    return st;
}

typedef struct { const char *p; size_t n, at; } rbuf;
static int get(rbuf *b, void *dst, size_t n) {
    if (b->at + n > b->n) return 0;
    memcpy(dst, b->p + b->at, n);
    b->at += n;
    return 1;
}

sc_status sc_search_checkpoint_load(const char *path, const sc_search_config *cfg, int n_layers, int C,
                                    sc_search_state **out) {
    char *data; size_t len;
    SC_TRY(sc_read_file(path, &data, &len));
    rbuf b = {data, len, 0};
    sc_search_state *s = NULL;
    sc_status st = SC_OK;
    char magic[8];
    uint32_t h[9];
    uint64_t seed, payload;
    if (!get(&b, magic, 8) || memcmp(magic, CKPT_MAGIC, 8) != 0) { st = sc_errorf(SC_ERR_FORMAT, "%s: not a steerclear search checkpoint (bad magic); delete it to restart this search", path); goto fail; }
    if (!get(&b, h, sizeof h) || !get(&b, &seed, 8) || !get(&b, &payload, 8)) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated header; delete it to restart this search", path); goto fail; }
    if (h[0] != CKPT_VERSION) { st = sc_errorf(SC_ERR_FORMAT, "%s: checkpoint version %u, this build reads %u", path, h[0], CKPT_VERSION); goto fail; }
    if (payload != len - b.at) { st = sc_errorf(SC_ERR_FORMAT, "%s: file holds %zu payload bytes but its header says %llu (truncated or corrupt); delete it to restart this search", path, len - b.at, (unsigned long long)payload); goto fail; }
    const int steps_total = cfg->prompts_per_search / cfg->batch_size * cfg->epochs;
    struct { const char *what; long long got, want; } checks[] = {
        {"adapter kind", h[1], cfg->adapter}, {"rank", h[2], cfg->rank}, {"hidden size", h[3], C},
        {"layers", h[4], n_layers}, {"steps", h[5], steps_total}, {"batch size", h[7], cfg->batch_size},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].got != checks[i].want) { st = sc_errorf(SC_ERR_ARG, "%s: %s is %lld in the checkpoint but %lld in this run's config; resume with the same config, or start a new run directory", path, checks[i].what, checks[i].got, checks[i].want); goto fail; }
    if (seed != sc_search_seed(cfg, (int)h[8])) { st = sc_errorf(SC_ERR_ARG, "%s: the checkpoint was made with another seed; resume with the same config, or start a new run directory", path); goto fail; }
    s = sc_calloc(1, sizeof *s, "search state");
    if (!s) { st = SC_ERR_MEM; goto fail; }
    s->search = (int)h[8]; s->steps_total = (int)h[5]; s->steps_done = 0; s->batch = (int)h[7]; s->seed = seed;
    if ((st = sc_adapter_create(cfg->adapter, n_layers, C, cfg->rank, cfg->scaling, &s->adapter))) goto fail;
    const size_t nA = sc_adapter_numel_A(s->adapter), nB = sc_adapter_numel_B(s->adapter);
    float **arrays[] = {&s->adapter->A, &s->adapter->B, &s->mA, &s->vA, &s->mB, &s->vB, &s->A0, &s->B0};
    for (int i = 0; i < 8; i++) {
        size_t n = i % 2 == 0 ? nA : nB;
        if (i >= 2) { *arrays[i] = malloc(sizeof(float) * n); if (!*arrays[i]) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto fail; } }
        if (!get(&b, *arrays[i], sizeof(float) * n)) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated adapter state", path); goto fail; }
    }
    int done = (int)h[6];
    s->steps = calloc((size_t)(s->steps_total > 0 ? s->steps_total : 1), sizeof(sc_step_record));
    if (!s->steps || done > s->steps_total) { st = sc_errorf(SC_ERR_FORMAT, "%s: %d steps done of %d", path, done, s->steps_total); goto fail; }
    for (int i = 0; i < done; i++) {
        sc_step_record *r = &s->steps[i];
        s->steps_done = i + 1;   // so that free() releases this record too
        r->prompt_idx = malloc(4 * (size_t)s->batch); r->gen_len = malloc(4 * (size_t)s->batch);
        r->A = malloc(sizeof(float) * nA); r->B = malloc(sizeof(float) * nB);
        if (!r->prompt_idx || !r->gen_len || !r->A || !r->B) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto fail; }
        if (!get(&b, &r->loss, 8) || !get(&b, &r->kl, 8) || !get(&b, &r->nll, 8) || !get(&b, &r->n_pos, 8) ||
            !get(&b, r->prompt_idx, 4 * (size_t)s->batch) || !get(&b, r->gen_len, 4 * (size_t)s->batch)) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated step %d", path, i); goto fail; }
        size_t ng = 0;
        for (int j = 0; j < s->batch; j++) {
            if (r->gen_len[j] < 0 || r->gen_len[j] > 1 << 20) { st = sc_errorf(SC_ERR_FORMAT, "%s: step %d: bad token count", path, i); goto fail; }
            ng += (size_t)r->gen_len[j];
        }
        r->gen = malloc(4 * (ng ? ng : 1));
        if (!r->gen) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto fail; }
        if (!get(&b, r->gen, 4 * ng) || !get(&b, r->A, sizeof(float) * nA) || !get(&b, r->B, sizeof(float) * nB)) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated step %d", path, i); goto fail; }
    }
    if (b.at != len) { st = sc_errorf(SC_ERR_FORMAT, "%s: %zu unexpected bytes after the last step", path, len - b.at); goto fail; }
    free(data);
    *out = s;
    return SC_OK;
fail:
    free(data);
    sc_search_state_free(s);
    return st;
}
