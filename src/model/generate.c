// generate.c — batched generation with a KV cache: the host bookkeeping (sc_gen), one block
// slice's run state (sc_gen_stage) and the whole-model generator (see steerclear/generate.h).
// A prefill of all prompts, then one row per live sequence per step. The options that come from
// a tokenizer (stop ids, vocabulary limit) are set in src/tok/chat.c, so that this file needs no
// tokenizer (the GPU-check build has none).
#include "steerclear/generate.h"
#include "steerclear/rng.h"

#include <stdlib.h>
#include <string.h>

void sc_sample_opts_default(sc_sample_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 128;
    o->temperature = 1.0f;
    o->top_p = 1.0f;
}

sc_sampling sc_sample_opts_sampling(const sc_sample_opts *o) {
    sc_sampling s = {.greedy = o->greedy, .temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p,
                     .vocab_limit = o->vocab_limit};
    return s;
}

int32_t sc_sample_token(sc_backend *be, float *logits, int V, const sc_sample_opts *o, float u) {
    sc_sampling s = sc_sample_opts_sampling(o);
    int32_t id = 0;
    if (be->op->sample(be, logits, 1, V, &s, &u, &id)) return -1;
    return id;
}

// --- Host bookkeeping -------------------------------------------------------------------------

struct sc_gen {
    sc_gen_plan plan;
    // the current generation
    int n, max_new, step, n_live;
    const int32_t *stop_ids; int n_stop;
    uint64_t *seed;        // (max_seqs) per prompt (sc_sample_opts.seeds, else seed for all)
    uint64_t *stream;      // (max_seqs)
    int *tag_of;           // (max_seqs) per prompt, -1 = none
    int has_tag;
    int *len;              // (max_seqs) positions filled in each sequence's cache slot
    int *live;             // (max_seqs) prompts still generating, in batch order
    int32_t *out;          // (max_seqs, max_new) generated ids
    int *out_n, *stopped;  // (max_seqs)
    // the next forward pass
    sc_batch batch;
    int *seq_start;        // (max_seqs + 1)
    int *pos0, *slot, *tags, *rows;   // (max_seqs)
    int32_t *ids;          // (max_seqs * max_prompt)
    float *u;              // (max_seqs)
    int prefill;           // the next pass is the prefill (sample rows = last row of each prompt)
};

void sc_gen_free(sc_gen *g) {
    if (!g) return;
    free(g->seed); free(g->stream); free(g->tag_of); free(g->len); free(g->live); free(g->out); free(g->out_n); free(g->stopped);
    free(g->seq_start); free(g->pos0); free(g->slot); free(g->tags); free(g->rows); free(g->ids); free(g->u);
    free(g);
}

sc_status sc_gen_create(const sc_gen_plan *plan, sc_gen **out) {
    *out = NULL;
    if (plan->max_seqs < 1 || plan->max_prompt < 1 || plan->max_new < 0)
        return sc_errorf(SC_ERR_INTERNAL, "generation plan: %d sequences, prompts of %d tokens, %d new tokens", plan->max_seqs, plan->max_prompt, plan->max_new);
    sc_gen *g = sc_calloc(1, sizeof *g, "generation state");
    if (!g) return SC_ERR_MEM;
    g->plan = *plan;
    const size_t S = (size_t)plan->max_seqs;
    g->seed = malloc(sizeof(uint64_t) * S);
    g->stream = malloc(sizeof(uint64_t) * S);
    g->tag_of = malloc(sizeof(int) * S);
    g->len = malloc(sizeof(int) * S);
    g->live = malloc(sizeof(int) * S);
    g->out = malloc(sizeof(int32_t) * S * (size_t)(plan->max_new > 0 ? plan->max_new : 1));
    g->out_n = calloc(S, sizeof(int));
    g->stopped = calloc(S, sizeof(int));
    g->seq_start = malloc(sizeof(int) * (S + 1));
    g->pos0 = malloc(sizeof(int) * S);
    g->slot = malloc(sizeof(int) * S);
    g->tags = malloc(sizeof(int) * S);
    g->rows = malloc(sizeof(int) * S);
    g->ids = malloc(sizeof(int32_t) * S * (size_t)plan->max_prompt);
    g->u = malloc(sizeof(float) * S);
    if (!g->seed || !g->stream || !g->tag_of || !g->len || !g->live || !g->out || !g->out_n || !g->stopped || !g->seq_start ||
        !g->pos0 || !g->slot || !g->tags || !g->rows || !g->ids || !g->u) {
        sc_gen_free(g);
        return sc_errorf(SC_ERR_MEM, "out of memory for the generation state of %zu sequences", S);
    }
    *out = g;
    return SC_OK;
}

// The uniforms of the current step for the sequences about to be sampled.
static void draw_uniforms(sc_gen *g) {
    for (int i = 0; i < g->n_live; i++) g->u[i] = sc_rng_uniform(g->seed[g->live[i]], g->stream[g->live[i]], (uint64_t)g->step);
}

sc_status sc_gen_start(sc_gen *g, const int32_t *const *prompts, const int *prompt_len, int n,
                       const uint64_t *stream, const int *tag, const sc_sample_opts *o) {
    if (n < 1) return sc_errorf(SC_ERR_ARG, "generate: no prompts");
    if (n > g->plan.max_seqs) return sc_errorf(SC_ERR_INTERNAL, "generate: %d prompts, the generator was made for %d", n, g->plan.max_seqs);
    if (o->max_new_tokens < 0 || o->max_new_tokens > g->plan.max_new)
        return sc_errorf(SC_ERR_INTERNAL, "generate: %d new tokens, the generator was made for %d", o->max_new_tokens, g->plan.max_new);
    for (int s = 0; s < n; s++) {
        if (prompt_len[s] <= 0) return sc_errorf(SC_ERR_ARG, "generate: prompt %d is empty", s);
        if (prompt_len[s] > g->plan.max_prompt)
            return sc_errorf(SC_ERR_ARG, "generate: prompt %d has %d tokens, the generator was made for at most %d", s, prompt_len[s], g->plan.max_prompt);
    }
    g->n = n;
    g->max_new = o->max_new_tokens;
    g->stop_ids = o->stop_ids;
    g->n_stop = o->n_stop;
    g->step = 0;
    g->has_tag = tag != NULL;
    g->prefill = 1;
    g->seq_start[0] = 0;
    for (int s = 0; s < n; s++) {
        g->seed[s] = o->seeds ? o->seeds[s] : o->seed;
        g->stream[s] = stream ? stream[s] : (uint64_t)s;
        g->tag_of[s] = tag ? tag[s] : -1;
        g->out_n[s] = 0;
        g->stopped[s] = 0;
        memcpy(g->ids + g->seq_start[s], prompts[s], sizeof(int32_t) * (size_t)prompt_len[s]);
        g->seq_start[s + 1] = g->seq_start[s] + prompt_len[s];
        g->pos0[s] = 0;
        g->slot[s] = s;
        g->tags[s] = g->tag_of[s];
        g->rows[s] = g->seq_start[s + 1] - 1;
        g->live[s] = s;
        g->len[s] = prompt_len[s];
    }
    g->n_live = g->max_new > 0 ? n : 0;
    g->batch = (sc_batch){.n_seq = n, .seq_start = g->seq_start, .pos0 = g->pos0, .slot = g->slot, .tag = g->has_tag ? g->tags : NULL};
    draw_uniforms(g);
    return SC_OK;
}

int sc_gen_done(const sc_gen *g) { return g->n_live == 0; }
const sc_batch *sc_gen_batch(const sc_gen *g) { return &g->batch; }
const int32_t *sc_gen_ids(const sc_gen *g) { return g->ids; }
const int *sc_gen_sample_rows(const sc_gen *g) { return g->prefill ? g->rows : NULL; }
int sc_gen_n_sample(const sc_gen *g) { return g->n_live; }
const float *sc_gen_uniforms(const sc_gen *g) { return g->u; }

static int is_stop(const sc_gen *g, int32_t id) {
    for (int i = 0; i < g->n_stop; i++) if (g->stop_ids[i] == id) return 1;
    return 0;
}

sc_status sc_gen_advance(sc_gen *g, const int32_t *tokens) {
    // record one token per live sequence (tokens[i] belongs to live[i])
    int next_live = 0;
    for (int i = 0; i < g->n_live; i++) {
        const int s = g->live[i];
        const int32_t tok = tokens[i];
        if (tok < 0) return sc_errorf(SC_ERR_INTERNAL, "generate: sampling gave no token for sequence %d", s);
        g->out[(size_t)s * g->plan.max_new + g->out_n[s]++] = tok;
        if (is_stop(g, tok)) g->stopped[s] = 1;
        else if (g->out_n[s] < g->max_new) g->live[next_live++] = s;
    }
    g->n_live = next_live;
    g->step++;
    g->prefill = 0;
    // the next pass: one row per live sequence, at the position after its last one
    for (int i = 0; i < g->n_live; i++) {
        const int s = g->live[i];
        g->ids[i] = g->out[(size_t)s * g->plan.max_new + g->out_n[s] - 1];
        g->seq_start[i] = i;
        g->pos0[i] = g->len[s];
        g->slot[i] = s;
        g->tags[i] = g->tag_of[s];
        g->len[s]++;
    }
    g->seq_start[g->n_live] = g->n_live;
    g->batch.n_seq = g->n_live;
    draw_uniforms(g);
    return SC_OK;
}

const int32_t *sc_gen_output(const sc_gen *g, int s, int *n, int *stopped) {
    if (n) *n = g->out_n[s];
    if (stopped) *stopped = g->stopped[s];
    return g->out + (size_t)s * g->plan.max_new;
}

// --- One block slice --------------------------------------------------------------------------

void sc_gen_stage_free(sc_gen_stage *st) {
    if (!st) return;
    sc_kv_cache_free(st->cache);
    st->be->op->free(st->be, st->hidden);
    st->be->op->free(st->be, st->logits);
    free(st->tokens);
    free(st);
}

sc_status sc_gen_check_context(const sc_model *m, int prompt_len, int max_new, const char *what) {
    const int64_t need = (int64_t)prompt_len + max_new, ctx = m->cfg.max_position;
    if (ctx > 0 && need > ctx)
        return sc_errorf(SC_ERR_ARG, "%s has %d tokens and %d new tokens are asked for: %lld positions, beyond the model's context of %lld "
                         "(max_position_embeddings in %s/config.json); shorten it or ask for fewer new tokens",
                         what, prompt_len, max_new, (long long)need, (long long)ctx, m->dir);
    return SC_OK;
}

sc_status sc_gen_stage_create(const sc_model *m, sc_backend *be, const sc_gen_plan *plan, sc_gen_stage **out) {
    *out = NULL;
    SC_TRY(sc_gen_check_context(m, plan->max_prompt, plan->max_new, "the longest prompt"));
    sc_gen_stage *st = sc_calloc(1, sizeof *st, "generation stage");
    if (!st) return SC_ERR_MEM;
    st->m = m;
    st->be = be;
    st->max_rows = plan->max_seqs * plan->max_prompt;
    sc_status rc = sc_kv_cache_create(m, be, plan->max_seqs, plan->max_prompt + plan->max_new + 1, &st->cache);
    if (!rc) rc = sc_backend_alloc_floats(be, (size_t)st->max_rows * m->cfg.hidden, "generation hidden rows", &st->hidden);
    if (!rc && m->has_head) rc = sc_backend_alloc_floats(be, (size_t)plan->max_seqs * m->cfg.vocab, "generation logits", &st->logits);
    if (!rc && !(st->tokens = malloc(sizeof(int32_t) * (size_t)plan->max_seqs))) rc = sc_errorf(SC_ERR_MEM, "out of memory");
    if (rc) { sc_gen_stage_free(st); return rc; }
    *out = st;
    return SC_OK;
}

sc_status sc_gen_stage_forward(sc_gen_stage *st, const sc_gen *g, const sc_hook *hook) {
    if (sc_gen_done(g)) return SC_OK;
    const sc_batch *b = sc_gen_batch(g);
    if (b->seq_start[b->n_seq] > st->max_rows)
        return sc_errorf(SC_ERR_INTERNAL, "generate: %d rows, the stage was made for %d", b->seq_start[b->n_seq], st->max_rows);
    const int32_t *ids = st->m->has_embed ? sc_gen_ids(g) : NULL;
    if (g->prefill) return sc_forward(st->m, st->be, b, ids, st->hidden, st->cache, hook, NULL);
    return sc_forward_step(st->m, st->be, b, ids, st->hidden, st->cache, hook);   // in a device graph where the backend can
}

sc_status sc_gen_stage_sample(sc_gen_stage *st, const sc_gen *g, const sc_sample_opts *o) {
    if (!st->m->has_head) return sc_errorf(SC_ERR_INTERNAL, "generate: sampling needs the slice holding the head, not [%d,%d)", st->m->first, st->m->last);
    const int n = sc_gen_n_sample(g);
    if (n == 0) return SC_OK;
    SC_TRY(sc_head(st->m, st->be, st->hidden, sc_gen_sample_rows(g), n, NULL, st->logits));
    sc_sampling s = sc_sample_opts_sampling(o);
    return st->be->op->sample(st->be, st->logits, n, st->m->cfg.vocab, &s, sc_gen_uniforms(g), st->tokens);
}

// --- A whole model ----------------------------------------------------------------------------

void sc_generator_free(sc_generator *G) {
    if (!G) return;
    sc_gen_free(G->gen);
    sc_gen_stage_free(G->stage);
    free(G);
}

sc_status sc_generator_create(const sc_model *m, sc_backend *be, const sc_gen_plan *plan, sc_generator **out) {
    *out = NULL;
    if (!m->has_embed || !m->has_head) return sc_errorf(SC_ERR_INTERNAL, "a generator needs the whole model, not the slice [%d,%d)", m->first, m->last);
    sc_generator *G = sc_calloc(1, sizeof *G, "generator");
    if (!G) return SC_ERR_MEM;
    G->plan = *plan;
    sc_status st = sc_gen_create(plan, &G->gen);
    if (!st) st = sc_gen_stage_create(m, be, plan, &G->stage);
    if (st) { sc_generator_free(G); return st; }
    *out = G;
    return SC_OK;
}

sc_status sc_generator_run(sc_generator *G, const int32_t *const *prompts, const int *prompt_len, int n,
                           const uint64_t *stream, const int *tag, const sc_sample_opts *o, const sc_hook *hook) {
    SC_TRY(sc_gen_start(G->gen, prompts, prompt_len, n, stream, tag, o));
    while (!sc_gen_done(G->gen)) {
        SC_TRY(sc_check_interrupt("generating"));
        SC_TRY(sc_gen_stage_forward(G->stage, G->gen, hook));
        SC_TRY(sc_gen_stage_sample(G->stage, G->gen, o));
        SC_TRY(sc_gen_advance(G->gen, G->stage->tokens));
    }
    return SC_OK;
}

sc_status sc_generate(const sc_model *m, sc_backend *be, const int32_t *const *prompts, const int *prompt_len,
                      int n, const uint64_t *stream, const int *tag, const sc_sample_opts *o, const sc_hook *hook,
                      sc_gen_out *out) {
    if (n < 1) return sc_errorf(SC_ERR_ARG, "generate: no prompts");
    for (int s = 0; s < n; s++) {
        char what[64];
        snprintf(what, sizeof what, "prompt %d", s);
        SC_TRY(sc_gen_check_context(m, prompt_len[s], o->max_new_tokens, what));
    }
    sc_gen_plan plan = {.max_seqs = n, .max_prompt = 1, .max_new = o->max_new_tokens > 0 ? o->max_new_tokens : 0};
    for (int s = 0; s < n; s++) {
        memset(&out[s], 0, sizeof out[s]);
        if (prompt_len[s] <= 0) return sc_errorf(SC_ERR_ARG, "generate: prompt %d is empty", s);
        if (prompt_len[s] > plan.max_prompt) plan.max_prompt = prompt_len[s];
    }
    sc_generator *G = NULL;
    SC_TRY(sc_generator_create(m, be, &plan, &G));
    sc_status st = sc_generator_run(G, prompts, prompt_len, n, stream, tag, o, hook);
    for (int s = 0; s < n && !st; s++) {
        int k = 0, stopped = 0;
        const int32_t *ids = sc_gen_output(G->gen, s, &k, &stopped);
        out[s].ids = malloc(sizeof(int32_t) * (size_t)(k > 0 ? k : 1));
        if (!out[s].ids) { st = sc_errorf(SC_ERR_MEM, "out of memory for generated ids"); break; }
        memcpy(out[s].ids, ids, sizeof(int32_t) * (size_t)k);
        out[s].n = k;
        out[s].stopped = stopped;
    }
    if (st) for (int s = 0; s < n; s++) { free(out[s].ids); out[s].ids = NULL; out[s].n = 0; }
    sc_generator_free(G);
    return st;
}
