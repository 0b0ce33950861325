// generate.c — greedy / temperature / top-k / top-p sampling and batched generation with a
// KV cache: one prefill of all prompts, then one row per live sequence per step.
#include "steerclear/generate.h"
#include "steerclear/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sc_sample_opts_default(sc_sample_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 128;
    o->temperature = 1.0f;
    o->top_p = 1.0f;
}

void sc_sample_opts_for_tokenizer(sc_sample_opts *o, const sc_tokenizer *tok, int32_t stops[2]) {
    int n = 0;
    if ((stops[n] = sc_tok_id(tok, "<|im_end|>")) >= 0) n++;
    if ((stops[n] = sc_tok_id(tok, "<|endoftext|>")) >= 0) n++;
    o->stop_ids = stops;
    o->n_stop = n;
    o->vocab_limit = sc_tok_vocab_size(tok);
}

typedef struct { float p; int32_t id; } cand;

static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;   // ties: lower id first (deterministic)
}

int32_t sc_sample_token(float *logits, int V, const sc_sample_opts *o, float u) {
    if (o->vocab_limit > 0 && o->vocab_limit < V) V = o->vocab_limit;
    int32_t best = 0;
    for (int v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
    if (o->greedy) return best;
    const float inv_t = 1.0f / (o->temperature > 0 ? o->temperature : 1.0f);
    const float mx = logits[best];
    int k = (o->top_k > 0 && o->top_k < V) ? o->top_k : V;
    int use_sort = k < V || (o->top_p > 0 && o->top_p < 1.0f);
    if (!use_sort) {   // plain softmax sampling over the whole vocabulary
        double sum = 0;
        for (int v = 0; v < V; v++) { logits[v] = expf((logits[v] - mx) * inv_t); sum += logits[v]; }
        double target = u * sum, acc = 0;
        for (int v = 0; v < V; v++) { acc += logits[v]; if (acc > target) return v; }
        return best;
    }
    cand *c = malloc(sizeof(cand) * (size_t)V);
    if (!c) return best;   // out of memory: fall back to greedy rather than fail mid-generation
    if (k < V) {
        // the k best by a min-heap (root = worst kept), O(V log k), then sort only those
        for (int v = 0; v < V; v++) {
            cand x = {(logits[v] - mx) * inv_t, v};
            if (v < k) {
                int i = v;
                c[i] = x;
                while (i > 0 && cand_desc(&c[(i - 1) / 2], &c[i]) < 0) { cand t = c[i]; c[i] = c[(i - 1) / 2]; c[(i - 1) / 2] = t; i = (i - 1) / 2; }
            } else if (cand_desc(&x, &c[0]) < 0) {   // better than the worst kept
                c[0] = x;
                int i = 0;
                for (;;) {
                    int l = 2 * i + 1, r = l + 1, w = i;
                    if (l < k && cand_desc(&c[l], &c[w]) > 0) w = l;
                    if (r < k && cand_desc(&c[r], &c[w]) > 0) w = r;
                    if (w == i) break;
                    cand t = c[i]; c[i] = c[w]; c[w] = t; i = w;
                }
            }
        }
        qsort(c, (size_t)k, sizeof(cand), cand_desc);
    } else {
        for (int v = 0; v < V; v++) { c[v].p = (logits[v] - mx) * inv_t; c[v].id = v; }
        qsort(c, (size_t)V, sizeof(cand), cand_desc);   // descending scaled logits
    }
    double sum = 0;
    for (int i = 0; i < k; i++) { c[i].p = expf(c[i].p); sum += c[i].p; }
    int keep = k;
    if (o->top_p > 0 && o->top_p < 1.0f) {   // smallest prefix whose mass reaches top_p
        double acc = 0;
        for (int i = 0; i < k; i++) {
            acc += c[i].p / sum;
            if (acc >= o->top_p) { keep = i + 1; break; }
        }
        sum = 0;
        for (int i = 0; i < keep; i++) sum += c[i].p;
    }
    double target = u * sum, acc = 0;
    int32_t pick = c[0].id;
    for (int i = 0; i < keep; i++) { acc += c[i].p; if (acc > target) { pick = c[i].id; break; } }
    free(c);
    return pick;
}

static int is_stop(const sc_sample_opts *o, int32_t id) {
    for (int i = 0; i < o->n_stop; i++) if (o->stop_ids[i] == id) return 1;
    return 0;
}

sc_status sc_generate(const sc_model *m, const sc_backend *be, const int32_t *const *prompts, const int *prompt_len,
                      int n, const uint64_t *stream, const int *tag, const sc_sample_opts *o, const sc_hook *hook,
                      sc_gen_out *out) {
    if (!m->has_embed || !m->has_head) return sc_errorf(SC_ERR_INTERNAL, "generate needs the whole model, not the slice [%d,%d)", m->first, m->last);
    const int C = m->cfg.hidden, V = m->cfg.vocab, max_new = o->max_new_tokens;
    int max_prompt = 0, T = 0;
    for (int s = 0; s < n; s++) {
        if (prompt_len[s] <= 0) return sc_errorf(SC_ERR_ARG, "generate: prompt %d is empty", s);
        if (prompt_len[s] > max_prompt) max_prompt = prompt_len[s];
        T += prompt_len[s];
        memset(&out[s], 0, sizeof out[s]);
    }
    sc_kv_cache *cache = NULL;
    SC_TRY(sc_kv_cache_create(m, n, max_prompt + max_new + 1, &cache));
    sc_status st = SC_OK;
    int *seq_start = malloc(sizeof(int) * (size_t)(n + 1)), *pos0 = calloc((size_t)n, sizeof(int));
    int *slot = malloc(sizeof(int) * (size_t)n), *tags = malloc(sizeof(int) * (size_t)n), *rows = malloc(sizeof(int) * (size_t)n);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T);
    float *hidden = malloc(sizeof(float) * (size_t)T * C + 64), *logits = malloc(sizeof(float) * (size_t)n * V + 64);
    int *live = malloc(sizeof(int) * (size_t)n), *len = malloc(sizeof(int) * (size_t)n);
    if (!seq_start || !pos0 || !slot || !tags || !rows || !ids || !hidden || !logits || !live || !len) { st = sc_errorf(SC_ERR_MEM, "out of memory generating for %d prompts", n); goto done; }
    for (int s = 0; s < n; s++) {
        out[s].ids = malloc(sizeof(int32_t) * (size_t)(max_new > 0 ? max_new : 1));
        if (!out[s].ids) { st = sc_errorf(SC_ERR_MEM, "out of memory for generated ids"); goto done; }
    }
    // prefill
    seq_start[0] = 0;
    for (int s = 0; s < n; s++) {
        memcpy(ids + seq_start[s], prompts[s], sizeof(int32_t) * (size_t)prompt_len[s]);
        seq_start[s + 1] = seq_start[s] + prompt_len[s];
        slot[s] = s; tags[s] = tag ? tag[s] : -1; rows[s] = seq_start[s + 1] - 1;
        live[s] = s; len[s] = prompt_len[s];
    }
    int n_live = max_new > 0 ? n : 0;
    sc_batch batch = {.n_seq = n, .seq_start = seq_start, .pos0 = pos0, .slot = slot, .tag = tag ? tags : NULL};
    if (n_live) {
        st = sc_forward(m, be, &batch, ids, hidden, cache, hook, NULL);
        if (st) goto done;
        st = sc_head(m, be, hidden, rows, n, NULL, logits);
        if (st) goto done;
    }
    for (int step = 0; n_live > 0; step++) {
        // sample one token for every live sequence (logits row i belongs to live[i])
        int next_live = 0;
        for (int i = 0; i < n_live; i++) {
            int s = live[i];
            float u = sc_rng_uniform(o->seed, stream ? stream[s] : (uint64_t)s, (uint64_t)step);
            int32_t tok = sc_sample_token(logits + (size_t)i * V, V, o, u);
            out[s].ids[out[s].n++] = tok;
            if (is_stop(o, tok)) out[s].stopped = 1;
            else if (out[s].n < max_new) live[next_live++] = s;
        }
        n_live = next_live;
        if (!n_live) break;
        // one row per live sequence
        for (int i = 0; i < n_live; i++) {
            int s = live[i];
            ids[i] = out[s].ids[out[s].n - 1];
            seq_start[i] = i; pos0[i] = len[s]; slot[i] = s; tags[i] = tag ? tag[s] : -1;
            len[s]++;
        }
        seq_start[n_live] = n_live;
        batch.n_seq = n_live;
        st = sc_forward(m, be, &batch, ids, hidden, cache, hook, NULL);
        if (st) goto done;
        st = sc_head(m, be, hidden, NULL, n_live, NULL, logits);
        if (st) goto done;
    }
done:
    if (st) for (int s = 0; s < n; s++) { free(out[s].ids); out[s].ids = NULL; out[s].n = 0; }
    free(seq_start); free(pos0); free(slot); free(tags); free(rows); free(ids); free(hidden); free(logits); free(live); free(len);
    sc_kv_cache_free(cache);
    return st;
}
