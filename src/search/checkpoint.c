// checkpoint.c — the search state (adapter and AdamW moments in backend memory, every step's
// record in host memory allocated up front) and the per-search checkpoint: everything needed
// to continue a search bit for bit, rewritten atomically (temporary file + fsync + rename)
// after every optimizer step.
//
// Layout (little-endian), version 2: "SCSRCHK1", u32 version, u32 kind, u32 rank, u32 C,
// u32 L, u32 steps_total, u32 steps_done, u32 batch, u32 search, u64 seed, u64 payload bytes,
// u32 CRC-32C of the payload, u32 settings bytes; the payload: the settings (JSON text: every
// search setting that changes results), then f32 A, B, mA, vA, mB, vB, A0, B0 (each
// n_sets*C*r), then per finished step: f64 loss, kl, nll, i64 n_pos, i32 prompt_idx[batch],
// i32 gen_len[batch], i32 gen[sum], f32 A, B. Version 1 (no CRC, no settings) is still read.
#include "steerclear/search.h"

#include <stdlib.h>
#include <string.h>

#define CKPT_MAGIC "SCSRCHK1"
#define CKPT_VERSION 2u

// --- State --------------------------------------------------------------------------------------

void sc_search_state_free(sc_search_state *s) {
    if (!s) return;
    free(s->settings);
    if (s->adapter) s->adapter->be->op->free(s->adapter->be, s->mA);
    sc_adapter_free(s->adapter);
    free(s->A0);
    free(s->steps);
    free(s->record_mem);
    free(s);
}

// Host storage of every step's record, carved from one block.
static sc_status alloc_records(sc_search_state *s, size_t nA, size_t nB) {
    const size_t b = (size_t)s->batch, g = b * (size_t)(s->max_new > 0 ? s->max_new : 1);
    const size_t ints = 2 * b + g, per = ints * sizeof(int32_t) + (nA + nB) * sizeof(float);
    const size_t n = (size_t)(s->steps_total > 0 ? s->steps_total : 1);
    s->steps = calloc(n, sizeof(sc_step_record));
    s->record_mem = malloc(per * n);
    if (!s->steps || !s->record_mem) return sc_errorf(SC_ERR_MEM, "out of memory for the records of %d steps (%.1f MiB)", s->steps_total, per * n / 1048576.0);
    char *p = s->record_mem;
    for (size_t i = 0; i < n; i++) {
        sc_step_record *r = &s->steps[i];
        float *f = (float *)p;
        r->A = f; r->B = f + nA;
        int32_t *q = (int32_t *)(f + nA + nB);
        r->prompt_idx = q; r->gen_len = q + b; r->gen = q + 2 * b;
        p += per;
    }
    return SC_OK;
}

sc_status sc_search_state_create(sc_backend *be, const sc_search_config *cfg, int search, int n_layers, int C,
                                 sc_search_state **out) {
    *out = NULL;
    sc_search_state *s = sc_calloc(1, sizeof *s, "search state");
    if (!s) return SC_ERR_MEM;
    s->search = search;
    s->steps_total = cfg->prompts_per_search / cfg->batch_size * cfg->epochs;
    s->batch = cfg->batch_size;
    s->max_new = cfg->max_new_tokens;
    s->seed = sc_search_seed(cfg, search);
    sc_status st = sc_adapter_create(be, cfg->adapter, n_layers, C, cfg->rank, cfg->scaling, &s->adapter);
    if (st) { free(s); return st; }
    const size_t nA = sc_adapter_numel_A(s->adapter), nB = sc_adapter_numel_B(s->adapter);
    if (!st) st = sc_adapter_init(s->adapter, s->seed);
    if (!st) st = sc_backend_alloc_floats(be, 2 * (nA + nB), "AdamW moments", &s->mA);
    if (!st) {
        s->vA = s->mA + nA; s->mB = s->vA + nA; s->vB = s->mB + nB;
        st = be->op->memset(be, s->mA, 0, sizeof(float) * 2 * (nA + nB));
    }
    if (!st && !(s->A0 = malloc(sizeof(float) * (nA + nB)))) st = sc_errorf(SC_ERR_MEM, "out of memory");
    if (!st) { s->B0 = s->A0 + nA; st = sc_adapter_get(s->adapter, s->A0, s->B0); }
    if (!st) st = alloc_records(s, nA, nB);
    if (!st && !(s->settings = sc_search_config_settings(cfg))) st = sc_errorf(SC_ERR_MEM, "out of memory");
    if (st) { sc_search_state_free(s); return st; }
    *out = s;
    return SC_OK;
}

// --- Save ---------------------------------------------------------------------------------------

typedef struct { char *p; size_t n, cap; int oom; } wbuf;

static void *grow(wbuf *b, size_t n) {
    if (b->oom) return NULL;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 16;
        while (cap < b->n + n) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return NULL; }
        b->p = q; b->cap = cap;
    }
    void *at = b->p + b->n;
    b->n += n;
    return at;
}
static void put(wbuf *b, const void *src, size_t n) { void *at = grow(b, n); if (at) memcpy(at, src, n); }
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }

sc_status sc_search_state_pack(const sc_search_state *s, char **out, size_t *out_len) {
    *out = NULL; *out_len = 0;
    const sc_adapter *a = s->adapter;
    sc_backend *be = a->be;
    const size_t nA = sc_adapter_numel_A(a), nB = sc_adapter_numel_B(a);
    wbuf b = {0};
    put(&b, CKPT_MAGIC, 8);
    put_u32(&b, CKPT_VERSION); put_u32(&b, (uint32_t)a->kind); put_u32(&b, (uint32_t)a->r);
    put_u32(&b, (uint32_t)a->C); put_u32(&b, (uint32_t)a->n_layers); put_u32(&b, (uint32_t)s->steps_total);
    put_u32(&b, (uint32_t)s->steps_done); put_u32(&b, (uint32_t)s->batch); put_u32(&b, (uint32_t)s->search);
    put_u64(&b, s->seed);
    const size_t payload_at = b.n;
    const uint32_t settings_len = (uint32_t)strlen(s->settings);
    put_u64(&b, 0);            // payload bytes, filled in below
    put_u32(&b, 0);            // CRC-32C of the payload, filled in below
    put_u32(&b, settings_len);
    const size_t body_at = b.n;
    put(&b, s->settings, settings_len);
    // A, B, mA, vA, mB, vB from backend memory, then A0, B0 from the host
    void *A = grow(&b, sizeof(float) * nA), *B = grow(&b, sizeof(float) * nB);
    sc_status st = b.oom ? SC_OK : sc_adapter_get(a, A, B);
    const float *moments[4] = {s->mA, s->vA, s->mB, s->vB};
    for (int i = 0; i < 4 && !st; i++) {
        size_t bytes = sizeof(float) * (i < 2 ? nA : nB);
        void *at = grow(&b, bytes);
        if (at) st = be->op->download(be, at, moments[i], bytes);
    }
    put(&b, s->A0, sizeof(float) * nA);
    put(&b, s->B0, sizeof(float) * nB);
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
    if (st) { free(b.p); return st; }
    if (b.oom) { free(b.p); return sc_errorf(SC_ERR_MEM, "search %d: out of memory building the checkpoint", s->search); }
    const uint64_t payload = b.n - body_at;
    const uint32_t crc = sc_crc32c(0, b.p + body_at, b.n - body_at);
    memcpy(b.p + payload_at, &payload, 8);
    memcpy(b.p + payload_at + 8, &crc, 4);
    *out = b.p;
    *out_len = b.n;
    return SC_OK;
}

sc_status sc_search_checkpoint_save(const char *path, const sc_search_state *s) {
    char *data = NULL;
    size_t len = 0;
    SC_TRY(sc_search_state_pack(s, &data, &len));
    sc_status st = sc_write_file_atomic(path, data, len);
    free(data);
    return st;
}

// --- Load ---------------------------------------------------------------------------------------

typedef struct { const char *p; size_t n, at; } rbuf;
static int get(rbuf *b, void *dst, size_t n) {
    if (b->at + n > b->n) return 0;
    memcpy(dst, b->p + b->at, n);
    b->at += n;
    return 1;
}
static const void *view(rbuf *b, size_t n) {
    if (b->at + n > b->n) return NULL;
    const void *p = b->p + b->at;
    b->at += n;
    return p;
}

sc_status sc_search_checkpoint_load(const char *path, const sc_search_config *cfg, sc_backend *be, int n_layers, int C,
                                    sc_search_state **out) {
    *out = NULL;
    char *data; size_t len;
    SC_TRY(sc_read_file(path, &data, &len));
    sc_status st = sc_search_state_unpack(data, len, path, cfg, be, n_layers, C, out);
    free(data);
    return st;
}

sc_status sc_search_state_unpack(const char *data, size_t len, const char *path, const sc_search_config *cfg, sc_backend *be,
                                 int n_layers, int C, sc_search_state **out) {
    *out = NULL;
    rbuf b = {data, len, 0};
    sc_search_state *s = NULL;
    sc_status st = SC_OK;
    char magic[8];
    uint32_t h[9], crc = 0, settings_len = 0;
    uint64_t seed, payload;
    char *settings = NULL;
    if (!get(&b, magic, 8) || memcmp(magic, CKPT_MAGIC, 8) != 0) { st = sc_errorf(SC_ERR_FORMAT, "%s: not a steerclear search checkpoint (bad magic); delete it to restart this search", path); goto fail; }
    if (!get(&b, h, sizeof h) || !get(&b, &seed, 8) || !get(&b, &payload, 8)) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated header; delete it to restart this search", path); goto fail; }
    if (h[0] != 1 && h[0] != CKPT_VERSION) { st = sc_errorf(SC_ERR_FORMAT, "%s: checkpoint version %u, this build reads 1 and %u; delete it to restart this search", path, h[0], CKPT_VERSION); goto fail; }
    if (h[0] >= 2 && (!get(&b, &crc, 4) || !get(&b, &settings_len, 4))) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated header; delete it to restart this search", path); goto fail; }
    if (payload != len - b.at) { st = sc_errorf(SC_ERR_FORMAT, "%s: file holds %zu payload bytes but its header says %llu (truncated or corrupt); delete it to restart this search", path, len - b.at, (unsigned long long)payload); goto fail; }
    if (h[0] >= 2) {
        const uint32_t got = sc_crc32c(0, data + b.at, len - b.at);
        if (got != crc) { st = sc_errorf(SC_ERR_FORMAT, "%s: checksum mismatch (CRC-32C %08x, the header says %08x): the file is corrupt; delete it to restart this search", path, got, crc); goto fail; }
        if (settings_len > len - b.at || !(settings = malloc((size_t)settings_len + 1))) { st = sc_errorf(SC_ERR_FORMAT, "%s: bad settings length %u", path, settings_len); goto fail; }
        get(&b, settings, settings_len);
        settings[settings_len] = '\0';
    } else {
        sc_log(SC_LOG_WARN, "%s: a version-1 checkpoint (no checksum, no recorded settings): only its sizes and seed are checked", path);
    }
    const int steps_total = cfg->prompts_per_search / cfg->batch_size * cfg->epochs;
    struct { const char *what; long long got, want; } checks[] = {
        {"adapter kind", h[1], cfg->adapter}, {"rank", h[2], cfg->rank}, {"hidden size", h[3], C},
        {"layers", h[4], n_layers}, {"steps", h[5], steps_total}, {"batch size", h[7], cfg->batch_size},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].got != checks[i].want) { st = sc_errorf(SC_ERR_ARG, "%s: %s is %lld in the checkpoint but %lld in this run's config; resume with the same config, or start a new run directory", path, checks[i].what, checks[i].got, checks[i].want); goto fail; }
    if (seed != sc_search_seed(cfg, (int)h[8])) { st = sc_errorf(SC_ERR_ARG, "%s: the checkpoint was made with another seed; resume with the same config, or start a new run directory", path); goto fail; }
    char diff[1024] = "";
    if (settings && sc_search_settings_diff(settings, cfg, diff, sizeof diff)) {
        st = sc_errorf(SC_ERR_ARG, "%s: the checkpoint was made with other settings: %s; resume with the same config, or start a new run directory", path, diff);
        goto fail;
    }
    if ((st = sc_search_state_create(be, cfg, (int)h[8], n_layers, C, &s))) goto fail;
    const size_t nA = sc_adapter_numel_A(s->adapter), nB = sc_adapter_numel_B(s->adapter);
    const float *A = view(&b, sizeof(float) * nA), *B = view(&b, sizeof(float) * nB);
    if (!A || !B) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated adapter state", path); goto fail; }
    if ((st = sc_adapter_set(s->adapter, A, B))) goto fail;
    float *moments[4] = {s->mA, s->vA, s->mB, s->vB};
    for (int i = 0; i < 4; i++) {
        size_t bytes = sizeof(float) * (i < 2 ? nA : nB);
        const void *src = view(&b, bytes);
        if (!src) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated adapter state", path); goto fail; }
        if ((st = be->op->upload(be, moments[i], src, bytes))) goto fail;
    }
    if (!get(&b, s->A0, sizeof(float) * nA) || !get(&b, s->B0, sizeof(float) * nB)) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated adapter state", path); goto fail; }
    const int done = (int)h[6];
    if (done > s->steps_total) { st = sc_errorf(SC_ERR_FORMAT, "%s: %d steps done of %d", path, done, s->steps_total); goto fail; }
    for (int i = 0; i < done; i++) {
        sc_step_record *r = &s->steps[i];
        if (!get(&b, &r->loss, 8) || !get(&b, &r->kl, 8) || !get(&b, &r->nll, 8) || !get(&b, &r->n_pos, 8) ||
            !get(&b, r->prompt_idx, 4 * (size_t)s->batch) || !get(&b, r->gen_len, 4 * (size_t)s->batch)) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated step %d", path, i); goto fail; }
        size_t ng = 0;
        for (int j = 0; j < s->batch; j++) {
            if (r->gen_len[j] < 0 || r->gen_len[j] > s->max_new) {
                st = sc_errorf(SC_ERR_FORMAT, "%s: step %d: %d sampled tokens for one prompt, but max_new_tokens is %d (another config, or a corrupt file)", path, i, r->gen_len[j], s->max_new);
                goto fail;
            }
            ng += (size_t)r->gen_len[j];
        }
        if (!get(&b, r->gen, 4 * ng) || !get(&b, r->A, sizeof(float) * nA) || !get(&b, r->B, sizeof(float) * nB)) { st = sc_errorf(SC_ERR_FORMAT, "%s: truncated step %d", path, i); goto fail; }
        s->steps_done = i + 1;
    }
    if (b.at != len) { st = sc_errorf(SC_ERR_FORMAT, "%s: %zu unexpected bytes after the last step", path, len - b.at); goto fail; }
    free(settings);
    *out = s;
    return SC_OK;
fail:
    free(settings);
    sc_search_state_free(s);
    return st;
}
