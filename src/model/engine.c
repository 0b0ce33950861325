// engine.c — Qwen2 and Qwen3 blocks forward and backward over a slice [first, last), the head,
// the KV cache and the saved activations. Weights are frozen: backward computes gradients for the
// activations only (adapters get theirs through the hook). Every operation on activations is
// a backend op; this file only lays out buffers and sequences the ops.
//
// Per block (x: residual stream):
//   a = rmsnorm(x; attn_norm); q,k,v = a Wq^T + bq, ...; rope(q,k); att = attention(q,k,v)
//   (qwen3: no biases unless attention_bias, and before rope q and k are RMS-normalised per
//   head, q = rmsnorm(q_pre; q_norm) over rows of HD, i.e. [T*NH, HD], likewise k over [T*KVH, HD])
//   x_mid = x + att Wo^T;  m = rmsnorm(x_mid; mlp_norm); g = m Wg^T, u = m Wu^T
//   x_out = x_mid + (silu(g) * u) Wd^T;  then the hook may change x_out.
#include "steerclear/engine.h"

#include <stdlib.h>
#include <string.h>

// --- Per-block buffers ------------------------------------------------------------------------

typedef struct {
    float *x_in;   // (T, C) block input
    float *a;      // (T, C) attention RMSNorm output
    float *rstd1;  // (T)
    float *q;      // (T, NH*HD) after (q norm and) rope
    float *k;      // (T, KVH*HD) after (k norm and) rope
    float *v;      // (T, KVH*HD)
    float *q_pre;  // (T, NH*HD) q projection before the per-head norm (qwen3; else empty)
    float *k_pre;  // (T, KVH*HD) (qwen3; else empty)
    float *rstd_q; // (T, NH)  (qwen3; else empty)
    float *rstd_k; // (T, KVH) (qwen3; else empty)
    float *att;    // (T, NH*HD) attention output before o_proj
    float *lse;    // (T, NH)
    float *x_mid;  // (T, C)
    float *mm;     // (T, C) MLP RMSNorm output
    float *rstd2;  // (T)
    float *g, *u;  // (T, I)
    float *hmid;   // (T, I) silu(g) * u
    float *x_out;  // (T, C) block output before the hook
} block_acts;

#define N_BLOCK_ACTS (sizeof(block_acts) / sizeof(float *))

// Floats per token of each block_acts field, in field order.
static void block_acts_widths(const sc_model_config *c, size_t w[N_BLOCK_ACTS]) {
    const size_t C = c->hidden, QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim, I = c->intermediate;
    const size_t qk = sc_config_has_qk_norm(c) ? 1 : 0, NH = c->n_heads, KVH = c->n_kv_heads;
    const size_t widths[N_BLOCK_ACTS] = {C, C, 1, QD, KD, KD, qk * QD, qk * KD, qk * NH, qk * KVH, QD, NH, C, C, 1, I, I, I, C};
    memcpy(w, widths, sizeof widths);
}

// Floats of a block_acts for T tokens (64-byte aligned fields), all fields or x_in only.
static size_t block_acts_floats(const sc_model_config *c, int T, int x_in_only) {
    size_t w[N_BLOCK_ACTS], n = 0;
    block_acts_widths(c, w);
    for (size_t i = 0; i < (x_in_only ? 1 : N_BLOCK_ACTS); i++) n += (w[i] * (size_t)T + 15) / 16 * 16;
    return n;
}

// Point the fields of b into `mem` (block_acts_floats(c, T, x_in_only) floats).
static float *block_acts_layout(block_acts *b, const sc_model_config *c, int T, int x_in_only, float *mem) {
    size_t w[N_BLOCK_ACTS];
    block_acts_widths(c, w);
    float **f = (float **)b;
    memset(b, 0, sizeof *b);
    for (size_t i = 0; i < (x_in_only ? 1 : N_BLOCK_ACTS); i++) { f[i] = mem; mem += (w[i] * (size_t)T + 15) / 16 * 16; }
    return mem;
}

// dq_pre, dk_pre: gradients w.r.t. the projections before the per-head q/k norm (qwen3; else empty)
typedef struct { float *dq, *dk, *dv, *datt, *dmm, *dI1, *dI2, *dmid, *dq_pre, *dk_pre; } block_grads;

#define N_BLOCK_GRADS (sizeof(block_grads) / sizeof(float *))

static void block_grads_widths(const sc_model_config *c, size_t w[N_BLOCK_GRADS]) {
    const size_t C = c->hidden, QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim, I = c->intermediate;
    const size_t qk = sc_config_has_qk_norm(c) ? 1 : 0;
    const size_t widths[N_BLOCK_GRADS] = {QD, KD, KD, QD, C, I, I, C, qk * QD, qk * KD};
    memcpy(w, widths, sizeof widths);
}

static size_t block_grads_floats(const sc_model_config *c, int T) {
    size_t w[N_BLOCK_GRADS], n = 0;
    block_grads_widths(c, w);
    for (size_t i = 0; i < N_BLOCK_GRADS; i++) n += (w[i] * (size_t)T + 15) / 16 * 16;
    return n;
}

static void block_grads_layout(block_grads *g, const sc_model_config *c, int T, float *mem) {
    size_t w[N_BLOCK_GRADS];
    block_grads_widths(c, w);
    float **f = (float **)g;
    for (size_t i = 0; i < N_BLOCK_GRADS; i++) { f[i] = mem; mem += (w[i] * (size_t)T + 15) / 16 * 16; }
}

// --- Saved activations ----------------------------------------------------------------------

struct sc_activations {
    const sc_model *m;
    sc_backend *be;
    int checkpoint;
    int cap_T, cap_seqs;       // what the buffers hold
    int T, n_seq;              // the saved pass
    int *seq_start, *pos, *tag;   // host: (cap_seqs + 1), (cap_T), (cap_seqs)
    int has_tag;
    block_acts *blocks;        // (last - first); with checkpointing only x_in is set
    block_acts scratch;        // checkpointing: the block being recomputed
    float *mem;                // backend memory behind blocks and scratch
    size_t bytes;
};

size_t sc_activations_estimate(const sc_model *m, int T, int checkpoint) {
    const size_t nb = (size_t)(m->last - m->first);
    return sizeof(float) * (checkpoint ? nb * block_acts_floats(&m->cfg, T, 1) + block_acts_floats(&m->cfg, T, 0)
                                       : nb * block_acts_floats(&m->cfg, T, 0));
}

size_t sc_forward_workspace_estimate(const sc_model *m, int T) {
    // a block's intermediates (forward without saving, or recomputation) + backward grads +
    // attention scores per thread (bounded by the context) + matmul widening (4 MiB)
    size_t ctx = (size_t)(m->cfg.max_position > 0 ? m->cfg.max_position : T);
    return sizeof(float) * (block_acts_floats(&m->cfg, T, 0) + block_grads_floats(&m->cfg, T) + 64 * ctx + (1u << 20)) + (1u << 16);
}

void sc_activations_free(sc_activations *a) {
    if (!a) return;
    if (a->be) a->be->op->free(a->be, a->mem);
    free(a->blocks); free(a->seq_start); free(a->pos); free(a->tag);
    free(a);
}

size_t sc_activations_bytes(const sc_activations *a) { return a->bytes; }

// (Re)size for T tokens in n_seq sequences.
static sc_status activations_reserve(sc_activations *a, int T, int n_seq) {
    if (T <= a->cap_T && n_seq <= a->cap_seqs && a->mem) return SC_OK;
    const sc_model *m = a->m;
    const int nb = m->last - m->first;
    int cap_T = T > a->cap_T ? T : a->cap_T, cap_s = n_seq > a->cap_seqs ? n_seq : a->cap_seqs;
    if (a->mem) sc_log(SC_LOG_DEBUG, "activations: growing from %d to %d tokens (plan the largest batch to avoid this)", a->cap_T, cap_T);
    a->be->op->free(a->be, a->mem);
    a->mem = NULL;
    free(a->seq_start); free(a->pos); free(a->tag);
    a->seq_start = malloc(sizeof(int) * (size_t)(cap_s + 1));
    a->tag = malloc(sizeof(int) * (size_t)cap_s);
    a->pos = malloc(sizeof(int) * (size_t)cap_T);
    if (!a->blocks) a->blocks = calloc((size_t)(nb > 0 ? nb : 1), sizeof(block_acts));
    if (!a->seq_start || !a->pos || !a->tag || !a->blocks) return sc_errorf(SC_ERR_MEM, "out of memory for the activation layout");
    const size_t per_block = block_acts_floats(&m->cfg, cap_T, a->checkpoint);
    const size_t total = (size_t)nb * per_block + (a->checkpoint ? block_acts_floats(&m->cfg, cap_T, 0) : 0);
    sc_status st = sc_backend_alloc_floats(a->be, total, "saved activations", &a->mem);
    if (st) return sc_error_wrap(st, "saving activations for %d tokens: lower the batch size or enable activation checkpointing: ", cap_T);
    float *p = a->mem;
    for (int i = 0; i < nb; i++) p = block_acts_layout(&a->blocks[i], &m->cfg, cap_T, a->checkpoint, p);
    if (a->checkpoint) block_acts_layout(&a->scratch, &m->cfg, cap_T, 0, p);
    a->cap_T = cap_T;
    a->cap_seqs = cap_s;
    a->bytes = total * sizeof(float);
    return SC_OK;
}

sc_status sc_activations_create(const sc_model *m, sc_backend *be, int max_T, int max_seqs, int checkpoint,
                                sc_activations **out) {
    *out = NULL;
    sc_activations *a = sc_calloc(1, sizeof *a, "activations");
    if (!a) return SC_ERR_MEM;
    a->m = m;
    a->be = be;
    a->checkpoint = checkpoint;
    sc_status st = max_T > 0 ? activations_reserve(a, max_T, max_seqs > 0 ? max_seqs : 1) : SC_OK;
    if (st) { sc_activations_free(a); return st; }
    *out = a;
    return SC_OK;
}

// --- KV cache -------------------------------------------------------------------------------

sc_status sc_kv_cache_create(const sc_model *m, sc_backend *be, int n_slots, int max_ctx, sc_kv_cache **out) {
    *out = NULL;
    if (n_slots < 1 || max_ctx < 1) return sc_errorf(SC_ERR_INTERNAL, "KV cache of %d slots x %d positions", n_slots, max_ctx);
    sc_kv_cache *c = sc_calloc(1, sizeof *c, "KV cache");
    if (!c) return SC_ERR_MEM;
    c->first = m->first; c->last = m->last; c->n_slots = n_slots; c->max_ctx = max_ctx;
    c->kvd = m->cfg.n_kv_heads * m->cfg.head_dim;
    c->be = be;
    size_t n = (size_t)(m->last - m->first) * n_slots * max_ctx * c->kvd;
    sc_status st = sc_backend_alloc_floats(be, n ? n : 1, "KV cache keys", &c->k);
    if (!st) st = sc_backend_alloc_floats(be, n ? n : 1, "KV cache values", &c->v);
    if (st) {
        sc_kv_cache_free(c);
        return sc_error_wrap(st, "a KV cache of %d sequences x %d positions (%.1f MiB): lower the batch size or max-new-tokens: ",
                             n_slots, max_ctx, 2.0 * n * sizeof(float) / 1048576.0);
    }
    *out = c;
    return SC_OK;
}

void sc_kv_cache_free(sc_kv_cache *c) {
    if (!c) return;
    c->be->op->free(c->be, c->k);
    c->be->op->free(c->be, c->v);
    free(c);
}

// --- One block forward ----------------------------------------------------------------------

typedef struct {
    const sc_model *m;
    sc_backend *be;
    const sc_batch *batch;
    const int *pos;         // (T) per-row positions (host)
    const int *pos0;        // (n_seq) host
    int64_t *kv_off;        // (n_seq) host scratch
    int T;
} run_ctx;

// Computes every intermediate of block l into b (b->x_in already filled); x_out left in b->x_out.
static sc_status block_forward(const run_ctx *r, int l, block_acts *b, sc_kv_cache *cache) {
    const sc_model_config *c = &r->m->cfg;
    const sc_block_weights *w = &r->m->blocks[l];
    sc_backend *be = r->be;
    const sc_backend_ops *op = be->op;
    const int T = r->T, C = c->hidden, NH = c->n_heads, KVH = c->n_kv_heads, HD = c->head_dim;
    const int KD = KVH * HD, qk_norm = sc_config_has_qk_norm(c);
    SC_TRY(op->rmsnorm(be, b->a, b->rstd1, b->x_in, w->attn_norm, T, C, c->rms_eps));
    // biases are NULL when the config has none (qwen3); with q/k norms the projections go to
    // q_pre/k_pre (kept for backward) and the norms write q and k
    SC_TRY(op->matmul(be, qk_norm ? b->q_pre : b->q, b->a, &w->q, w->q_bias, T));
    SC_TRY(op->matmul(be, qk_norm ? b->k_pre : b->k, b->a, &w->k, w->k_bias, T));
    SC_TRY(op->matmul(be, b->v, b->a, &w->v, w->v_bias, T));
    if (qk_norm) {   // per head: rows of HD
        SC_TRY(op->rmsnorm(be, b->q, b->rstd_q, b->q_pre, w->q_norm, T * NH, HD, c->rms_eps));
        SC_TRY(op->rmsnorm(be, b->k, b->rstd_k, b->k_pre, w->k_norm, T * KVH, HD, c->rms_eps));
    }
    SC_TRY(op->rope(be, b->q, r->pos, T, NH, HD, c->rope_theta, 0));
    SC_TRY(op->rope(be, b->k, r->pos, T, KVH, HD, c->rope_theta, 0));

    // where each sequence's keys and values live: its cache slot, or the batch's own rows
    const int n_seq = r->batch->n_seq;
    sc_attn_layout lay = {.n_seq = n_seq, .q_start = r->batch->seq_start, .pos0 = r->pos0, .kv_off = r->kv_off, .kv_stride = KD};
    const float *kk = b->k, *vv = b->v;
    if (cache) {
        for (int s = 0; s < n_seq; s++) {
            int slot = r->batch->slot ? r->batch->slot[s] : s;
            r->kv_off[s] = ((int64_t)(l - cache->first) * cache->n_slots + slot) * cache->max_ctx * KD;
        }
        SC_TRY(op->kv_write(be, cache->k, cache->v, b->k, b->v, &lay, KD));
        kk = cache->k; vv = cache->v;
    } else {
        for (int s = 0; s < n_seq; s++) r->kv_off[s] = (int64_t)r->batch->seq_start[s] * KD;
    }
    SC_TRY(op->attention(be, b->att, b->lse, b->q, kk, vv, &lay, NH, KVH, HD));

    // x_mid = x_in + att Wo^T  (o_proj written into x_mid, then the residual added)
    SC_TRY(op->matmul(be, b->x_mid, b->att, &w->o, NULL, T));
    SC_TRY(op->add(be, b->x_mid, b->x_in, (int64_t)T * C));
    SC_TRY(op->rmsnorm(be, b->mm, b->rstd2, b->x_mid, w->mlp_norm, T, C, c->rms_eps));
    SC_TRY(op->matmul(be, b->g, b->mm, &w->gate, NULL, T));
    SC_TRY(op->matmul(be, b->u, b->mm, &w->up, NULL, T));
    SC_TRY(op->swiglu(be, b->hmid, b->g, b->u, (int64_t)T * c->intermediate));
    SC_TRY(op->matmul(be, b->x_out, b->hmid, &w->down, NULL, T));
    SC_TRY(op->add(be, b->x_out, b->x_mid, (int64_t)T * C));
    return SC_OK;
}

// Backward of block l: dx [T,C] holds d(x_out) and is replaced by d(x_in).
static sc_status block_backward(const run_ctx *r, int l, const block_acts *b, float *dx, block_grads *gr) {
    const sc_model_config *c = &r->m->cfg;
    const sc_block_weights *w = &r->m->blocks[l];
    sc_backend *be = r->be;
    const sc_backend_ops *op = be->op;
    const int T = r->T, C = c->hidden, NH = c->n_heads, KVH = c->n_kv_heads, HD = c->head_dim;
    const int64_t I = c->intermediate;
    // MLP: x_out = x_mid + down(hmid)
    SC_TRY(op->matmul_dx(be, gr->dI1, dx, &w->down, T, 0));                 // d hmid (T,I)
    SC_TRY(op->swiglu_backward(be, gr->dI1, gr->dI2, gr->dI1, b->g, b->u, (int64_t)T * I));  // dg in dI1, du in dI2
    SC_TRY(op->matmul_dx(be, gr->dmm, gr->dI1, &w->gate, T, 0));
    SC_TRY(op->matmul_dx(be, gr->dmm, gr->dI2, &w->up, T, 1));
    // d x_mid = dx + rmsnorm_backward(dmm)
    SC_TRY(op->copy(be, gr->dmid, dx, sizeof(float) * (size_t)T * C));
    SC_TRY(op->rmsnorm_backward(be, gr->dmid, gr->dmm, b->x_mid, w->mlp_norm, b->rstd2, T, C, 1));
    // attention: x_mid = x_in + o(att)
    SC_TRY(op->matmul_dx(be, gr->datt, gr->dmid, &w->o, T, 0));
    SC_TRY(op->attention_backward(be, gr->dq, gr->dk, gr->dv, gr->datt, b->att, b->lse, b->q, b->k, b->v,
                                  r->batch->seq_start, r->batch->n_seq, NH, KVH, HD));
    SC_TRY(op->rope(be, gr->dq, r->pos, T, NH, HD, c->rope_theta, 1));
    SC_TRY(op->rope(be, gr->dk, r->pos, T, KVH, HD, c->rope_theta, 1));
    const float *dq = gr->dq, *dk = gr->dk;   // w.r.t. the projections' outputs
    if (sc_config_has_qk_norm(c)) {           // through the per-head norms
        SC_TRY(op->rmsnorm_backward(be, gr->dq_pre, gr->dq, b->q_pre, w->q_norm, b->rstd_q, T * NH, HD, 0));
        SC_TRY(op->rmsnorm_backward(be, gr->dk_pre, gr->dk, b->k_pre, w->k_norm, b->rstd_k, T * KVH, HD, 0));
        dq = gr->dq_pre;
        dk = gr->dk_pre;
    }
    SC_TRY(op->matmul_dx(be, gr->dmm, dq, &w->q, T, 0));                     // d a, reusing dmm
    SC_TRY(op->matmul_dx(be, gr->dmm, dk, &w->k, T, 1));
    SC_TRY(op->matmul_dx(be, gr->dmm, gr->dv, &w->v, T, 1));
    SC_TRY(op->copy(be, dx, gr->dmid, sizeof(float) * (size_t)T * C));
    SC_TRY(op->rmsnorm_backward(be, dx, gr->dmm, b->x_in, w->attn_norm, b->rstd1, T, C, 1));
    return SC_OK;
}

// --- Forward over the slice -------------------------------------------------------------------

static sc_status check_batch(const sc_model *m, const sc_batch *batch, const sc_kv_cache *cache) {
    if (batch->n_seq <= 0) return sc_errorf(SC_ERR_ARG, "forward: empty batch");
    const int ctx = m->cfg.max_position;
    if (cache && (cache->first != m->first || cache->last != m->last))
        return sc_errorf(SC_ERR_INTERNAL, "forward: KV cache made for blocks [%d,%d), the model slice is [%d,%d)", cache->first, cache->last, m->first, m->last);
    for (int s = 0; s < batch->n_seq; s++) {
        int n = batch->seq_start[s + 1] - batch->seq_start[s];
        int p0 = batch->pos0 ? batch->pos0[s] : 0;
        if (n < 0) return sc_errorf(SC_ERR_INTERNAL, "forward: sequence %d has negative length", s);
        if (ctx > 0 && (int64_t)p0 + n > ctx)
            return sc_errorf(SC_ERR_ARG, "%s: sequence %d needs %lld positions, beyond the model's context of %d (max_position_embeddings); shorten it",
                             m->dir, s, (long long)p0 + n, ctx);
        if (cache) {
            int slot = batch->slot ? batch->slot[s] : s;
            if (slot < 0 || slot >= cache->n_slots) return sc_errorf(SC_ERR_INTERNAL, "forward: slot %d outside the cache's %d", slot, cache->n_slots);
            if (p0 < 0 || p0 + n > cache->max_ctx) return sc_errorf(SC_ERR_ARG, "forward: sequence %d needs %d positions but the KV cache holds %d; raise max context", s, p0 + n, cache->max_ctx);
        } else if (p0 != 0) {
            return sc_errorf(SC_ERR_INTERNAL, "forward: sequence %d starts at position %d without a KV cache", s, p0);
        }
    }
    return SC_OK;
}

// Host scratch shared by forward and backward: positions per row and per sequence, KV offsets.
static sc_status run_ctx_init(run_ctx *r, const sc_model *m, sc_backend *be, const sc_batch *batch) {
    const int T = batch->seq_start[batch->n_seq], n = batch->n_seq;
    int *pos = SC_ARENA_INTS(&be->host, T > 0 ? T : 1, "positions");
    int *pos0 = SC_ARENA_INTS(&be->host, n, "sequence positions");
    int64_t *kv_off = sc_arena_alloc(&be->host, sizeof(int64_t) * (size_t)n, "KV offsets");
    if (!pos || !pos0 || !kv_off) return SC_ERR_MEM;
    for (int s = 0; s < n; s++) {
        pos0[s] = batch->pos0 ? batch->pos0[s] : 0;
        for (int t = batch->seq_start[s]; t < batch->seq_start[s + 1]; t++) pos[t] = pos0[s] + (t - batch->seq_start[s]);
    }
    *r = (run_ctx){.m = m, .be = be, .batch = batch, .pos = pos, .pos0 = pos0, .kv_off = kv_off, .T = T};
    return SC_OK;
}

static sc_status forward_blocks(const sc_model *m, sc_backend *be, const sc_batch *batch, const int32_t *ids,
                                float *hidden, sc_kv_cache *cache, const sc_hook *hook, sc_activations *save) {
    const sc_model_config *c = &m->cfg;
    const int T = batch->seq_start[batch->n_seq], C = c->hidden;
    const size_t row_bytes = sizeof(float) * (size_t)T * C;
    run_ctx r;
    SC_TRY(run_ctx_init(&r, m, be, batch));
    if (m->has_embed) {
        if (!ids) return sc_errorf(SC_ERR_INTERNAL, "forward: the slice starts at block 0 but no token ids were given");
        for (int t = 0; t < T; t++)
            if (ids[t] < 0 || ids[t] >= c->vocab) return sc_errorf(SC_ERR_ARG, "forward: token id %d at row %d is outside the vocabulary [0,%d)", ids[t], t, c->vocab);
        SC_TRY(be->op->embed(be, hidden, &m->embed, ids, T));
    }
    block_acts tmp;
    if (save) {
        SC_TRY(activations_reserve(save, T, batch->n_seq));
        save->T = T;
        save->n_seq = batch->n_seq;
        memcpy(save->seq_start, batch->seq_start, sizeof(int) * (size_t)(batch->n_seq + 1));
        memcpy(save->pos, r.pos, sizeof(int) * (size_t)T);
        save->has_tag = batch->tag != NULL;
        if (batch->tag) memcpy(save->tag, batch->tag, sizeof(int) * (size_t)batch->n_seq);
    }
    if (!save || save->checkpoint) {
        float *mem = SC_ARENA_FLOATS(&be->ws, block_acts_floats(c, T, 0), "a block's intermediates");
        if (!mem) return SC_ERR_MEM;
        block_acts_layout(&tmp, c, T, 0, mem);
    }
    for (int l = m->first; l < m->last; l++) {
        SC_TRY(sc_check_interrupt("running the model"));
        block_acts *b = (save && !save->checkpoint) ? &save->blocks[l - m->first] : &tmp;
        SC_TRY(be->op->copy(be, b->x_in, hidden, row_bytes));
        if (save && save->checkpoint) SC_TRY(be->op->copy(be, save->blocks[l - m->first].x_in, hidden, row_bytes));
        SC_TRY(block_forward(&r, l, b, cache));
        SC_TRY(be->op->copy(be, hidden, b->x_out, row_bytes));
        if (hook && hook->forward) SC_TRY(hook->forward(hook->user, be, l, hidden, T, C, batch));
    }
    return SC_OK;
}

sc_status sc_forward(const sc_model *m, sc_backend *be, const sc_batch *batch, const int32_t *ids,
                     float *hidden, sc_kv_cache *cache, const sc_hook *hook, sc_activations *save) {
    SC_TRY(check_batch(m, batch, cache));
    if (save && cache) return sc_errorf(SC_ERR_INTERNAL, "forward: saving activations is only supported without a KV cache");
    if (save && (save->m->first != m->first || save->m->last != m->last)) return sc_errorf(SC_ERR_INTERNAL, "forward: activations made for another block slice");
    sc_arena_mark mw = sc_arena_mark_get(&be->ws), mh = sc_arena_mark_get(&be->host);
    sc_status st = forward_blocks(m, be, batch, ids, hidden, cache, hook, save);
    sc_arena_reset(&be->ws, mw);
    sc_arena_reset(&be->host, mh);
    return st;
}

sc_status sc_forward_step(const sc_model *m, sc_backend *be, const sc_batch *batch, const int32_t *ids,
                          float *hidden, sc_kv_cache *cache, const sc_hook *hook) {
    if (be->op->graph_begin && be->op->graph_begin(be)) {   // nothing of a failed recording has run
        const sc_status st = be->op->graph_end(be, sc_forward(m, be, batch, ids, hidden, cache, hook, NULL));
        if (st == SC_OK || st == SC_ERR_INTERRUPTED) return st;
        sc_error_clear();
    }
    return sc_forward(m, be, batch, ids, hidden, cache, hook, NULL);
}

// --- Backward over the slice ----------------------------------------------------------------

static sc_status backward_blocks(const sc_model *m, sc_backend *be, sc_activations *act, const sc_hook *hook, float *dhidden) {
    const sc_model_config *c = &m->cfg;
    const int T = act->T, C = c->hidden;
    float *mem = SC_ARENA_FLOATS(&be->ws, block_grads_floats(c, T), "backward scratch");
    if (!mem) return SC_ERR_MEM;
    block_grads gr;
    block_grads_layout(&gr, c, T, mem);
    sc_batch batch = {.n_seq = act->n_seq, .seq_start = act->seq_start, .tag = act->has_tag ? act->tag : NULL};
    run_ctx r;
    SC_TRY(run_ctx_init(&r, m, be, &batch));
    for (int l = m->last - 1; l >= m->first; l--) {
        SC_TRY(sc_check_interrupt("running the backward pass"));
        block_acts *b = &act->blocks[l - m->first];
        if (act->checkpoint) {   // recompute the block from its saved input
            SC_TRY(be->op->copy(be, act->scratch.x_in, b->x_in, sizeof(float) * (size_t)T * C));
            SC_TRY(block_forward(&r, l, &act->scratch, NULL));
            b = &act->scratch;
        }
        if (hook && hook->backward) SC_TRY(hook->backward(hook->user, be, l, b->x_out, dhidden, T, C, &batch));
        SC_TRY(block_backward(&r, l, b, dhidden, &gr));
    }
    return SC_OK;
}

sc_status sc_backward(const sc_model *m, sc_backend *be, sc_activations *act, const sc_hook *hook, float *dhidden) {
    if (!act || act->T == 0) return sc_errorf(SC_ERR_INTERNAL, "backward: no saved forward pass");
    if (act->m->first != m->first || act->m->last != m->last) return sc_errorf(SC_ERR_INTERNAL, "backward: activations saved for another block slice");
    sc_arena_mark mw = sc_arena_mark_get(&be->ws), mh = sc_arena_mark_get(&be->host);
    sc_status st = backward_blocks(m, be, act, hook, dhidden);
    sc_arena_reset(&be->ws, mw);
    sc_arena_reset(&be->host, mh);
    return st;
}

// --- Head -------------------------------------------------------------------------------------

// x[n,C] = the chosen rows of hidden (all of them when rows is NULL: no copy)
static const float *head_rows(sc_backend *be, const float *hidden, const int *rows, int n, int C, sc_status *st) {
    if (!rows) return hidden;
    float *x = SC_ARENA_FLOATS(&be->ws, (size_t)n * C, "head rows");
    if (!x) { *st = SC_ERR_MEM; return NULL; }
    *st = be->op->gather_rows(be, x, hidden, rows, n, C);
    return *st ? NULL : x;
}

static sc_status head_forward(const sc_model *m, sc_backend *be, const float *hidden, const int *rows, int n,
                              float *rstd, float *logits) {
    const int C = m->cfg.hidden;
    sc_status st = SC_OK;
    const float *x = head_rows(be, hidden, rows, n, C, &st);
    if (!x) return st;
    float *nrm = SC_ARENA_FLOATS(&be->ws, (size_t)n * C, "head norm");
    float *rs = rstd ? rstd : SC_ARENA_FLOATS(&be->ws, n, "head rstd");
    if (!nrm || !rs) return SC_ERR_MEM;
    SC_TRY(be->op->rmsnorm(be, nrm, rs, x, m->final_norm, n, C, m->cfg.rms_eps));
    if (logits && !m->lm_head.data)
        return sc_errorf(SC_ERR_ARG, "%s was loaded without its LM head (for hidden states only): it cannot make logits", m->dir);
    if (logits) SC_TRY(be->op->matmul(be, logits, nrm, &m->lm_head, NULL, n));
    return SC_OK;
}

sc_status sc_head(const sc_model *m, sc_backend *be, const float *hidden, const int *rows, int n,
                  float *rstd, float *logits) {
    if (!m->has_head) return sc_errorf(SC_ERR_INTERNAL, "head: this model slice [%d,%d) does not hold the final norm and LM head", m->first, m->last);
    if (n <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    sc_status st = head_forward(m, be, hidden, rows, n, rstd, logits);
    sc_arena_reset(&be->ws, mk);
    return st;
}

static sc_status head_backward(const sc_model *m, sc_backend *be, const float *hidden, const int *rows, int n,
                               const float *rstd, const float *dlogits, float *dhidden) {
    const int C = m->cfg.hidden;
    sc_status st = SC_OK;
    const float *x = head_rows(be, hidden, rows, n, C, &st);
    if (!x) return st;
    float *dn = SC_ARENA_FLOATS(&be->ws, (size_t)n * C, "head backward");
    if (!dn) return SC_ERR_MEM;
    SC_TRY(be->op->matmul_dx(be, dn, dlogits, &m->lm_head, n, 0));
    if (!rows) return be->op->rmsnorm_backward(be, dhidden, dn, x, m->final_norm, rstd, n, C, 1);
    float *dx = SC_ARENA_FLOATS(&be->ws, (size_t)n * C, "head backward rows");
    if (!dx) return SC_ERR_MEM;
    SC_TRY(be->op->rmsnorm_backward(be, dx, dn, x, m->final_norm, rstd, n, C, 0));
    return be->op->scatter_add_rows(be, dhidden, dx, rows, n, C);
}

sc_status sc_head_backward(const sc_model *m, sc_backend *be, const float *hidden, const int *rows, int n,
                           const float *rstd, const float *dlogits, float *dhidden) {
    if (!m->has_head) return sc_errorf(SC_ERR_INTERNAL, "head backward: this model slice [%d,%d) does not hold the head", m->first, m->last);
    if (n <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    sc_status st = head_backward(m, be, hidden, rows, n, rstd, dlogits, dhidden);
    sc_arena_reset(&be->ws, mk);
    return st;
}
