// engine.c — Qwen2 blocks forward and backward over a slice [first, last), the head, the KV
// cache and the saved activations. Weights are frozen: backward computes gradients for the
// activations only (adapters get theirs through the hook).
//
// Per block (x: residual stream):
//   a = rmsnorm(x; attn_norm); q,k,v = a Wq^T + bq, ...; rope(q,k); att = attention(q,k,v)
//   x_mid = x + att Wo^T;  m = rmsnorm(x_mid; mlp_norm); g = m Wg^T, u = m Wu^T
//   x_out = x_mid + (silu(g) * u) Wd^T;  then the hook may change x_out.
#include "steerclear/engine.h"

#include <stdlib.h>
#include <string.h>

// --- Saved activations ----------------------------------------------------------------------

typedef struct {
    float *x_in;   // (T, C) block input
    float *a;      // (T, C) attention RMSNorm output
    float *rstd1;  // (T)
    float *q;      // (T, NH*HD) after rope
    float *k;      // (T, KVH*HD) after rope
    float *v;      // (T, KVH*HD)
    float *att;    // (T, NH*HD) attention output before o_proj
    float *lse;    // (T, NH)
    float *x_mid;  // (T, C)
    float *mm;     // (T, C) MLP RMSNorm output
    float *rstd2;  // (T)
    float *g, *u;  // (T, I)
    float *hmid;   // (T, I) silu(g) * u
    float *x_out;  // (T, C) block output before the hook
} block_acts;

struct sc_activations {
    int checkpoint;
    int T, n_seq, first, last;
    int *seq_start, *pos;
    block_acts *blocks;    // (last - first); with checkpointing only x_in is set, plus one scratch
    block_acts scratch;
    size_t bytes;
};

static void block_acts_free(block_acts *b) {
    float **f = (float **)b;
    for (size_t i = 0; i < sizeof *b / sizeof(float *); i++) free(f[i]);
    memset(b, 0, sizeof *b);
}

static sc_status block_acts_alloc(block_acts *b, const sc_model_config *c, int T, int x_in_only, size_t *bytes) {
    const size_t C = c->hidden, QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim, I = c->intermediate;
    struct { float **p; size_t n; } want[] = {
        {&b->x_in, C}, {&b->a, C}, {&b->rstd1, 1}, {&b->q, QD}, {&b->k, KD}, {&b->v, KD}, {&b->att, QD},
        {&b->lse, (size_t)c->n_heads}, {&b->x_mid, C}, {&b->mm, C}, {&b->rstd2, 1}, {&b->g, I}, {&b->u, I},
        {&b->hmid, I}, {&b->x_out, C},
    };
    size_t n_want = x_in_only ? 1 : sizeof want / sizeof want[0];
    for (size_t i = 0; i < n_want; i++) {
        size_t n = want[i].n * (size_t)T;
        *want[i].p = malloc(n * sizeof(float) + 64);
        if (!*want[i].p) { block_acts_free(b); return sc_errorf(SC_ERR_MEM, "out of memory saving activations for %d tokens (%zu floats); lower the batch size or enable activation checkpointing", T, n); }
        *bytes += n * sizeof(float);
    }
    return SC_OK;
}

sc_status sc_activations_create(int checkpoint, sc_activations **out) {
    sc_activations *a = sc_calloc(1, sizeof *a, "activations");
    if (!a) return SC_ERR_MEM;
    a->checkpoint = checkpoint;
    *out = a;
    return SC_OK;
}

static void activations_reset(sc_activations *a) {
    if (a->blocks) for (int i = 0; i < a->last - a->first; i++) block_acts_free(&a->blocks[i]);
    free(a->blocks);
    block_acts_free(&a->scratch);
    free(a->seq_start);
    free(a->pos);
    a->blocks = NULL; a->seq_start = NULL; a->pos = NULL;
    a->bytes = 0; a->T = 0;
}

void sc_activations_free(sc_activations *a) {
    if (!a) return;
    activations_reset(a);
    free(a);
}

size_t sc_activations_bytes(const sc_activations *a) { return a->bytes; }

size_t sc_activations_estimate(const sc_model *m, int T, int checkpoint) {
    const sc_model_config *c = &m->cfg;
    const size_t C = c->hidden, QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    const size_t per_token = 5 * C + 2 * QD + 2 * KD + (size_t)c->n_heads + 3 * (size_t)c->intermediate + 2;   // block_acts
    const size_t nb = (size_t)(m->last - m->first);
    return sizeof(float) * (size_t)T * (checkpoint ? nb * C + per_token : nb * per_token);
}

static sc_status activations_prepare(sc_activations *a, const sc_model *m, const sc_batch *batch, const int *pos) {
    activations_reset(a);
    const int T = batch->seq_start[batch->n_seq], nb = m->last - m->first;
    a->T = T; a->n_seq = batch->n_seq; a->first = m->first; a->last = m->last;
    a->seq_start = malloc(sizeof(int) * (size_t)(batch->n_seq + 1));
    a->pos = malloc(sizeof(int) * (size_t)(T > 0 ? T : 1));
    a->blocks = calloc((size_t)(nb > 0 ? nb : 1), sizeof(block_acts));
    if (!a->seq_start || !a->pos || !a->blocks) return sc_errorf(SC_ERR_MEM, "out of memory saving activations");
    memcpy(a->seq_start, batch->seq_start, sizeof(int) * (size_t)(batch->n_seq + 1));
    memcpy(a->pos, pos, sizeof(int) * (size_t)T);
    for (int i = 0; i < nb; i++) SC_TRY(block_acts_alloc(&a->blocks[i], &m->cfg, T, a->checkpoint, &a->bytes));
    if (a->checkpoint) SC_TRY(block_acts_alloc(&a->scratch, &m->cfg, T, 0, &a->bytes));
    return SC_OK;
}

// --- KV cache -------------------------------------------------------------------------------

sc_status sc_kv_cache_create(const sc_model *m, int n_slots, int max_ctx, sc_kv_cache **out) {
    sc_kv_cache *c = sc_calloc(1, sizeof *c, "KV cache");
    if (!c) return SC_ERR_MEM;
    c->first = m->first; c->last = m->last; c->n_slots = n_slots; c->max_ctx = max_ctx;
    c->kvd = m->cfg.n_kv_heads * m->cfg.head_dim;
    size_t n = (size_t)(m->last - m->first) * n_slots * max_ctx * c->kvd;
    c->k = malloc(n * sizeof(float) + 64);
    c->v = malloc(n * sizeof(float) + 64);
    if (!c->k || !c->v) {
        sc_kv_cache_free(c);
        return sc_errorf(SC_ERR_MEM, "out of memory for a KV cache of %d sequences x %d positions (%.1f MiB); lower the batch size or max-new-tokens",
                         n_slots, max_ctx, 2.0 * n * sizeof(float) / 1048576.0);
    }
    *out = c;
    return SC_OK;
}

void sc_kv_cache_free(sc_kv_cache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c);
}

// --- One block forward ----------------------------------------------------------------------

typedef struct {
    const sc_model *m;
    const sc_backend *be;
    const sc_batch *batch;
    const int *pos;         // (T) per-row positions
    int T;
} run_ctx;

// Computes every intermediate of block l into b (b->x_in already filled); x_out left in b->x_out.
static sc_status block_forward(const run_ctx *r, int l, block_acts *b, sc_kv_cache *cache) {
    const sc_model_config *c = &r->m->cfg;
    const sc_block_weights *w = &r->m->blocks[l];
    const sc_backend *be = r->be;
    const int T = r->T, C = c->hidden, NH = c->n_heads, KVH = c->n_kv_heads, HD = c->head_dim;
    const int KD = KVH * HD;
    be->rmsnorm(b->a, b->rstd1, b->x_in, w->attn_norm, T, C, c->rms_eps);
    SC_TRY(be->matmul(b->q, b->a, &w->q, w->q_bias, T));
    SC_TRY(be->matmul(b->k, b->a, &w->k, w->k_bias, T));
    SC_TRY(be->matmul(b->v, b->a, &w->v, w->v_bias, T));
    be->rope(b->q, r->pos, T, NH, HD, c->rope_theta, 0);
    be->rope(b->k, r->pos, T, KVH, HD, c->rope_theta, 0);

    // where each sequence's keys and values live: the cache slot, or the batch's own rows
    const int n_seq = r->batch->n_seq;
    const float **kb = malloc(sizeof(float *) * 2 * (size_t)n_seq), **vb = kb + n_seq;
    int *zeros = calloc((size_t)n_seq, sizeof(int));
    if (!kb || !zeros) { free(kb); free(zeros); return sc_errorf(SC_ERR_MEM, "out of memory for the attention layout of %d sequences", n_seq); }
    for (int s = 0; s < n_seq; s++) {
        int s0 = r->batch->seq_start[s];
        if (cache) {
            int slot = r->batch->slot ? r->batch->slot[s] : s;
            size_t at = ((size_t)(l - cache->first) * cache->n_slots + (size_t)slot) * cache->max_ctx * KD;
            float *sk = cache->k + at, *sv = cache->v + at;
            int p0 = r->batch->pos0 ? r->batch->pos0[s] : 0, n = r->batch->seq_start[s + 1] - s0;
            memcpy(sk + (size_t)p0 * KD, b->k + (size_t)s0 * KD, sizeof(float) * (size_t)n * KD);
            memcpy(sv + (size_t)p0 * KD, b->v + (size_t)s0 * KD, sizeof(float) * (size_t)n * KD);
            kb[s] = sk; vb[s] = sv;
        } else {
            kb[s] = b->k + (size_t)s0 * KD;
            vb[s] = b->v + (size_t)s0 * KD;
        }
    }
    // without a cache every sequence starts at position 0 (check_batch)
    sc_attn_layout lay = {.n_seq = n_seq, .q_start = r->batch->seq_start, .pos0 = r->batch->pos0 ? r->batch->pos0 : zeros,
                          .k_base = kb, .v_base = vb, .kv_stride = KD};
    be->attention(b->att, b->lse, b->q, &lay, NH, KVH, HD);
    free(kb);
    free(zeros);

    // x_mid = x_in + att Wo^T  (o_proj written into x_mid, then the residual added)
    SC_TRY(be->matmul(b->x_mid, b->att, &w->o, NULL, T));
    be->add(b->x_mid, b->x_in, (int64_t)T * C);
    be->rmsnorm(b->mm, b->rstd2, b->x_mid, w->mlp_norm, T, C, c->rms_eps);
    SC_TRY(be->matmul(b->g, b->mm, &w->gate, NULL, T));
    SC_TRY(be->matmul(b->u, b->mm, &w->up, NULL, T));
    be->swiglu(b->hmid, b->g, b->u, (int64_t)T * c->intermediate);
    SC_TRY(be->matmul(b->x_out, b->hmid, &w->down, NULL, T));
    be->add(b->x_out, b->x_mid, (int64_t)T * C);
    return SC_OK;
}

// Backward of block l: dx [T,C] holds d(x_out) and is replaced by d(x_in). work: scratch.
typedef struct { float *dq, *dk, *dv, *datt, *dmm, *dI1, *dI2, *dmid; } block_grads;

static sc_status block_backward(const run_ctx *r, int l, const block_acts *b, float *dx, block_grads *gr) {
    const sc_model_config *c = &r->m->cfg;
    const sc_block_weights *w = &r->m->blocks[l];
    const sc_backend *be = r->be;
    const int T = r->T, C = c->hidden, NH = c->n_heads, KVH = c->n_kv_heads, HD = c->head_dim;
    const int64_t I = c->intermediate;
    // MLP: x_out = x_mid + down(hmid)
    SC_TRY(be->matmul_dx(gr->dI1, dx, &w->down, T, 0));                 // d hmid (T,I)
    be->swiglu_backward(gr->dI1, gr->dI2, gr->dI1, b->g, b->u, (int64_t)T * I);  // dg in dI1, du in dI2
    SC_TRY(be->matmul_dx(gr->dmm, gr->dI1, &w->gate, T, 0));
    SC_TRY(be->matmul_dx(gr->dmm, gr->dI2, &w->up, T, 1));
    // d x_mid = dx + rmsnorm_backward(dmm)
    memcpy(gr->dmid, dx, sizeof(float) * (size_t)T * C);
    be->rmsnorm_backward(gr->dmid, gr->dmm, b->x_mid, w->mlp_norm, b->rstd2, T, C, 1);
    // attention: x_mid = x_in + o(att)
    SC_TRY(be->matmul_dx(gr->datt, gr->dmid, &w->o, T, 0));
    be->attention_backward(gr->dq, gr->dk, gr->dv, gr->datt, b->att, b->lse, b->q, b->k, b->v,
                           r->batch->seq_start, r->batch->n_seq, NH, KVH, HD);
    be->rope(gr->dq, r->pos, T, NH, HD, c->rope_theta, 1);
    be->rope(gr->dk, r->pos, T, KVH, HD, c->rope_theta, 1);
    SC_TRY(be->matmul_dx(gr->dmm, gr->dq, &w->q, T, 0));                 // d a, reusing dmm
    SC_TRY(be->matmul_dx(gr->dmm, gr->dk, &w->k, T, 1));
    SC_TRY(be->matmul_dx(gr->dmm, gr->dv, &w->v, T, 1));
    memcpy(dx, gr->dmid, sizeof(float) * (size_t)T * C);
    be->rmsnorm_backward(dx, gr->dmm, b->x_in, w->attn_norm, b->rstd1, T, C, 1);
    return SC_OK;
}

// --- Forward over the slice -------------------------------------------------------------------

static sc_status check_batch(const sc_model *m, const sc_batch *batch, const sc_kv_cache *cache) {
    if (batch->n_seq <= 0) return sc_errorf(SC_ERR_ARG, "forward: empty batch");
    for (int s = 0; s < batch->n_seq; s++) {
        int n = batch->seq_start[s + 1] - batch->seq_start[s];
        int p0 = batch->pos0 ? batch->pos0[s] : 0;
        if (n < 0) return sc_errorf(SC_ERR_INTERNAL, "forward: sequence %d has negative length", s);
        if (cache) {
            int slot = batch->slot ? batch->slot[s] : s;
            if (slot < 0 || slot >= cache->n_slots) return sc_errorf(SC_ERR_INTERNAL, "forward: slot %d outside the cache's %d", slot, cache->n_slots);
            if (p0 + n > cache->max_ctx) return sc_errorf(SC_ERR_ARG, "forward: sequence %d needs %d positions but the KV cache holds %d; raise max context", s, p0 + n, cache->max_ctx);
            if (cache->first != m->first || cache->last != m->last) return sc_errorf(SC_ERR_INTERNAL, "forward: KV cache made for another block slice");
        } else if (p0 != 0) {
            return sc_errorf(SC_ERR_INTERNAL, "forward: sequence %d starts at position %d without a KV cache", s, p0);
        }
    }
    return SC_OK;
}

sc_status sc_forward(const sc_model *m, const sc_backend *be, const sc_batch *batch, const int32_t *ids,
                     float *hidden, sc_kv_cache *cache, const sc_hook *hook, sc_activations *save) {
    SC_TRY(check_batch(m, batch, cache));
    if (save && cache) return sc_errorf(SC_ERR_INTERNAL, "forward: saving activations is only supported without a KV cache");
    const sc_model_config *c = &m->cfg;
    const int T = batch->seq_start[batch->n_seq], C = c->hidden;
    int *pos = malloc(sizeof(int) * (size_t)(T > 0 ? T : 1));
    if (!pos) return sc_errorf(SC_ERR_MEM, "out of memory for positions");
    for (int s = 0; s < batch->n_seq; s++)
        for (int t = batch->seq_start[s]; t < batch->seq_start[s + 1]; t++)
            pos[t] = (batch->pos0 ? batch->pos0[s] : 0) + (t - batch->seq_start[s]);

    sc_status st = SC_OK;
    block_acts tmp = {0};
    size_t bytes = 0;
    if (m->has_embed) {
        if (!ids) { st = sc_errorf(SC_ERR_INTERNAL, "forward: the slice starts at block 0 but no token ids were given"); goto done; }
        for (int t = 0; t < T; t++)
            if (ids[t] < 0 || ids[t] >= c->vocab) { st = sc_errorf(SC_ERR_ARG, "forward: token id %d at row %d is outside the vocabulary [0,%d)", ids[t], t, c->vocab); goto done; }
        be->embed(hidden, &m->embed, ids, T);
    }
    if (save) { st = activations_prepare(save, m, batch, pos); if (st) goto done; }
    if (!save || save->checkpoint) { st = block_acts_alloc(&tmp, c, T, 0, &bytes); if (st) goto done; }

    run_ctx r = {.m = m, .be = be, .batch = batch, .pos = pos, .T = T};
    for (int l = m->first; l < m->last; l++) {
        block_acts *b = (save && !save->checkpoint) ? &save->blocks[l - m->first] : &tmp;
        memcpy(b->x_in, hidden, sizeof(float) * (size_t)T * C);
        if (save && save->checkpoint) memcpy(save->blocks[l - m->first].x_in, hidden, sizeof(float) * (size_t)T * C);
        st = block_forward(&r, l, b, cache);
        if (st) goto done;
        memcpy(hidden, b->x_out, sizeof(float) * (size_t)T * C);
        if (hook && hook->forward) { st = hook->forward(hook->user, l, hidden, T, C, batch); if (st) goto done; }
    }
done:
    block_acts_free(&tmp);
    free(pos);
    return st;
}

// --- Backward over the slice ----------------------------------------------------------------

sc_status sc_backward(const sc_model *m, const sc_backend *be, sc_activations *act, const sc_hook *hook, float *dhidden) {
    if (!act || act->T == 0) return sc_errorf(SC_ERR_INTERNAL, "backward: no saved forward pass");
    if (act->first != m->first || act->last != m->last) return sc_errorf(SC_ERR_INTERNAL, "backward: activations saved for another block slice");
    const sc_model_config *c = &m->cfg;
    const int T = act->T;
    const size_t C = c->hidden, QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim, I = c->intermediate;
    block_grads gr = {0};
    float **bufs[] = {&gr.dq, &gr.dk, &gr.dv, &gr.datt, &gr.dmm, &gr.dI1, &gr.dI2, &gr.dmid};
    size_t sizes[] = {QD, KD, KD, QD, C, I, I, C};
    sc_status st = SC_OK;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *bufs[i] = malloc(sizes[i] * (size_t)T * sizeof(float) + 64);
        if (!*bufs[i]) { st = sc_errorf(SC_ERR_MEM, "out of memory for backward scratch (%d tokens)", T); goto done; }
    }
    sc_batch batch = {.n_seq = act->n_seq, .seq_start = act->seq_start};
    run_ctx r = {.m = m, .be = be, .batch = &batch, .pos = act->pos, .T = T};
    for (int l = m->last - 1; l >= m->first; l--) {
        block_acts *b = &act->blocks[l - m->first];
        if (act->checkpoint) {   // recompute the block from its saved input
            memcpy(act->scratch.x_in, b->x_in, sizeof(float) * (size_t)T * C);
            st = block_forward(&r, l, &act->scratch, NULL);
            if (st) goto done;
            b = &act->scratch;
        }
        if (hook && hook->backward) { st = hook->backward(hook->user, l, b->x_out, dhidden, T, (int)C); if (st) goto done; }
        st = block_backward(&r, l, b, dhidden, &gr);
        if (st) goto done;
    }
done:
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]);
    return st;
}

// --- Head -------------------------------------------------------------------------------------

sc_status sc_head(const sc_model *m, const sc_backend *be, const float *hidden, const int *rows, int n,
                  float *rstd, float *logits) {
    if (!m->has_head) return sc_errorf(SC_ERR_INTERNAL, "head: this model slice [%d,%d) does not hold the final norm and LM head", m->first, m->last);
    const int C = m->cfg.hidden;
    float *x = malloc(sizeof(float) * (size_t)n * C + 64), *nrm = malloc(sizeof(float) * (size_t)n * C + 64);
    float *rs = rstd ? rstd : malloc(sizeof(float) * (size_t)n + 64);
    sc_status st = SC_OK;
    if (!x || !nrm || !rs) { st = sc_errorf(SC_ERR_MEM, "out of memory in the LM head (%d rows)", n); goto done; }
    for (int i = 0; i < n; i++) memcpy(x + (size_t)i * C, hidden + (size_t)(rows ? rows[i] : i) * C, sizeof(float) * (size_t)C);
    be->rmsnorm(nrm, rs, x, m->final_norm, n, C, m->cfg.rms_eps);
    if (logits) st = be->matmul(logits, nrm, &m->lm_head, NULL, n);
done:
    free(x);
    free(nrm);
    if (rs != rstd) free(rs);
    return st;
}

sc_status sc_head_backward(const sc_model *m, const sc_backend *be, const float *hidden, const int *rows, int n,
                           const float *rstd, const float *dlogits, float *dhidden) {
    const int C = m->cfg.hidden;
    float *x = malloc(sizeof(float) * (size_t)n * C + 64), *dn = malloc(sizeof(float) * (size_t)n * C + 64);
    float *dx = calloc((size_t)n * C + 16, sizeof(float));
    sc_status st = SC_OK;
    if (!x || !dn || !dx) { st = sc_errorf(SC_ERR_MEM, "out of memory in the LM head backward (%d rows)", n); goto done; }
    for (int i = 0; i < n; i++) memcpy(x + (size_t)i * C, hidden + (size_t)(rows ? rows[i] : i) * C, sizeof(float) * (size_t)C);
    st = be->matmul_dx(dn, dlogits, &m->lm_head, n, 0);
    if (st) goto done;
    be->rmsnorm_backward(dx, dn, x, m->final_norm, rstd, n, C, 0);
    for (int i = 0; i < n; i++) {
        float *d = dhidden + (size_t)(rows ? rows[i] : i) * C;
        for (int j = 0; j < C; j++) d[j] += dx[(size_t)i * C + j];
    }
done:
    free(x); free(dn); free(dx);
    return st;
}
