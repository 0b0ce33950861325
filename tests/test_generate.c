// test_generate.c — sampling and batched generation:
//  - the same seed gives the same text whatever the batch size or the order of the prompts
//    (each prompt's draws come from its own RNG stream);
//  - top-k 1 and a tiny top-p are greedy; temperature sampling follows the softmax;
//  - a random model made by make-model does not greedily repeat one token;
//  - the KV-cache path gives the same logits as a full forward.
#include "testutil.h"
#include "steerclear/generate.h"
#include "steerclear/make_model.h"
#include "steerclear/rng.h"

#include <stdlib.h>

static void test_sampler(void) {
    float base[5] = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f}, l[5];
    sc_sample_opts o;
    sc_sample_opts_default(&o);
    o.top_k = 1;
    for (int i = 0; i < 20; i++) { memcpy(l, base, sizeof l); CHECK(sc_sample_token(sc_test_backend(), l, 5, &o, i / 20.0f) == 1); }
    o.top_k = 0; o.top_p = 1e-3f;
    for (int i = 0; i < 20; i++) { memcpy(l, base, sizeof l); CHECK(sc_sample_token(sc_test_backend(), l, 5, &o, i / 20.0f) == 1); }
    // top-k 2: only ids 1 and 2 ever come out, in the softmax ratio e^3 : e^2.5
    o.top_k = 2; o.top_p = 1.0f;
    int count[5] = {0};
    for (int i = 0; i < 4000; i++) { memcpy(l, base, sizeof l); count[sc_sample_token(sc_test_backend(), l, 5, &o, sc_rng_uniform(1, 2, (uint64_t)i))]++; }
    CHECK(count[0] == 0 && count[3] == 0 && count[4] == 0);
    double want = 1.0 / (1.0 + exp(-0.5));   // P(id 1) within {1, 2}
    CHECK_NEAR(count[1] / 4000.0, want, 0.03);
    // a vocabulary limit: ids at or above it are never drawn, even the best one
    o.top_k = 0; o.vocab_limit = 1;
    for (int i = 0; i < 10; i++) { memcpy(l, base, sizeof l); CHECK(sc_sample_token(sc_test_backend(), l, 5, &o, i / 10.0f) == 0); }
    o.vocab_limit = 0;
    // plain temperature sampling over the whole vocabulary
    o.top_k = 0; o.temperature = 2.0f;
    memset(count, 0, sizeof count);
    for (int i = 0; i < 8000; i++) { memcpy(l, base, sizeof l); count[sc_sample_token(sc_test_backend(), l, 5, &o, sc_rng_uniform(3, 4, (uint64_t)i))]++; }
    double z = 0;
    for (int v = 0; v < 5; v++) z += exp(base[v] / 2.0);
    for (int v = 0; v < 5; v++) CHECK_NEAR(count[v] / 8000.0, exp(base[v] / 2.0) / z, 0.02);
}

int main(void) {
    test_sampler();
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/m", sc_test_tmpdir());
    sc_make_model_opts mo = {0};
    CHECK_OK(sc_make_model_preset("tiny", &mo));
    mo.cfg.vocab = 4096;
    mo.seed = 21;
    CHECK_OK(sc_make_model(dir, &mo));
    sc_model *m = NULL;
    CHECK_OK(sc_model_load(dir, 0, -1, sc_test_backend(), &m));
    if (!m) return sc_test_finish("test_generate");
    sc_backend *be = sc_test_backend();
    enum { NP = 4 };
    int32_t pr[NP][12];
    int len[NP] = {3, 9, 6, 12};
    const int32_t *pp[NP];
    for (int p = 0; p < NP; p++) {
        for (int i = 0; i < len[p]; i++) pr[p][i] = (int32_t)((p * 131 + i * 17 + 5) % 4096);
        pp[p] = pr[p];
    }
    sc_sample_opts o;
    sc_sample_opts_default(&o);
    o.max_new_tokens = 20; o.temperature = 0.8f; o.top_k = 50; o.top_p = 0.95f; o.seed = 77;
    int32_t stop = 17;
    o.stop_ids = &stop; o.n_stop = 1;
    uint64_t streams[NP] = {10, 11, 12, 13};
    sc_gen_out all[NP], one, rev[NP];
    CHECK_OK(sc_generate(m, be, pp, len, NP, streams, NULL, &o, NULL, all));
    // one at a time
    for (int p = 0; p < NP; p++) {
        CHECK_OK(sc_generate(m, be, &pp[p], &len[p], 1, &streams[p], NULL, &o, NULL, &one));
        CHECKF(one.n == all[p].n && !memcmp(one.ids, all[p].ids, sizeof(int32_t) * (size_t)one.n), "prompt %d: batch of 1 differs from batch of %d", p, NP);
        free(one.ids);
    }
    // reversed order
    const int32_t *rp[NP];
    int rl[NP];
    uint64_t rs[NP];
    for (int p = 0; p < NP; p++) { rp[p] = pp[NP - 1 - p]; rl[p] = len[NP - 1 - p]; rs[p] = streams[NP - 1 - p]; }
    CHECK_OK(sc_generate(m, be, rp, rl, NP, rs, NULL, &o, NULL, rev));
    for (int p = 0; p < NP; p++) {
        const sc_gen_out *a = &all[p], *b = &rev[NP - 1 - p];
        CHECKF(a->n == b->n && !memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)a->n), "prompt %d: reversed batch order changed the text", p);
        CHECKF(a->n == o.max_new_tokens || (a->stopped && a->ids[a->n - 1] == stop), "prompt %d: ended early without a stop token", p);
        free(rev[NP - 1 - p].ids);
    }
    // a pipeline of two block slices, each with its own KV cache, generates the same tokens as
    // the whole model: stage 0 runs blocks [0, k), hands its hidden rows to stage 1, which runs
    // [k, L), samples, and both advance the same bookkeeping
    for (int k = 1; k < m->cfg.n_layers; k++) {
        sc_model *s0 = NULL, *s1 = NULL;
        CHECK_OK(sc_model_load(dir, 0, k, be, &s0));
        CHECK_OK(sc_model_load(dir, k, -1, be, &s1));
        if (!s0 || !s1) { sc_model_free(s0); sc_model_free(s1); break; }
        CHECK(s0->has_embed && !s0->has_head && !s1->has_embed && s1->has_head);
        sc_gen_plan plan = {.max_seqs = NP, .max_prompt = 12, .max_new = o.max_new_tokens};
        sc_gen *g = NULL;
        sc_gen_stage *st0 = NULL, *st1 = NULL;
        CHECK_OK(sc_gen_create(&plan, &g));
        CHECK_OK(sc_gen_stage_create(s0, be, &plan, &st0));
        CHECK_OK(sc_gen_stage_create(s1, be, &plan, &st1));
        CHECK(st0 && !st0->logits && st0->cache->first == 0 && st0->cache->last == k);
        CHECK_OK(sc_gen_start(g, pp, len, NP, streams, NULL, &o));
        while (g && st0 && st1 && !sc_gen_done(g)) {
            const int rows = sc_gen_batch(g)->seq_start[sc_gen_batch(g)->n_seq];
            if (sc_gen_stage_forward(st0, g, NULL)) break;
            memcpy(st1->hidden, st0->hidden, sizeof(float) * (size_t)rows * m->cfg.hidden);   // "send" to stage 1
            if (sc_gen_stage_forward(st1, g, NULL) || sc_gen_stage_sample(st1, g, &o) || sc_gen_advance(g, st1->tokens)) break;
        }
        CHECK(g && sc_gen_done(g));
        for (int p = 0; g && p < NP; p++) {
            int n = 0, stopped = 0;
            const int32_t *ids = sc_gen_output(g, p, &n, &stopped);
            CHECKF(n == all[p].n && stopped == all[p].stopped && !memcmp(ids, all[p].ids, sizeof(int32_t) * (size_t)n),
                   "prompt %d: a pipeline split at block %d generates other tokens than the whole model", p, k);
        }
        CHECK_ERR(sc_gen_stage_sample(st0, g, &o), SC_ERR_INTERNAL, "needs the slice holding the head");
        sc_gen_stage_free(st0); sc_gen_stage_free(st1); sc_gen_free(g);
        sc_model_free(s0); sc_model_free(s1);
    }
    for (int p = 0; p < NP; p++) free(all[p].ids);

    // greedy from a random model is not one token repeated
    o.greedy = 1; o.n_stop = 0; o.max_new_tokens = 32;
    CHECK_OK(sc_generate(m, be, pp, len, 1, NULL, NULL, &o, NULL, &one));
    int distinct = 0;
    for (int i = 0; i < one.n; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= one.ids[j] == one.ids[i];
        distinct += !seen;
    }
    CHECKF(one.n == 32 && distinct >= 4, "greedy generation is degenerate: %d distinct tokens in %d", distinct, one.n);
    free(one.ids);

    // KV cache: prefill 5 tokens then 4 single steps == one full forward of 9 tokens
    const int C = m->cfg.hidden, V = m->cfg.vocab;
    sc_kv_cache *cache = NULL;
    CHECK_OK(sc_kv_cache_create(m, be, 1, 16, &cache));
    float *h = malloc(sizeof(float) * 9 * (size_t)C), *lg = malloc(sizeof(float) * 9 * (size_t)V), *lc = malloc(sizeof(float) * (size_t)V);
    int ss[2] = {0, 9};
    sc_batch full = {.n_seq = 1, .seq_start = ss};
    CHECK_OK(sc_forward(m, be, &full, pr[1], h, NULL, NULL, NULL));
    CHECK_OK(sc_head(m, be, h, NULL, 9, NULL, lg));
    int s5[2] = {0, 5}, p0 = 0;
    sc_batch pre = {.n_seq = 1, .seq_start = s5, .pos0 = &p0};
    CHECK_OK(sc_forward(m, be, &pre, pr[1], h, cache, NULL, NULL));
    double md = 0;
    for (int t = 5; t < 9; t++) {
        int s1[2] = {0, 1}, pos = t;
        sc_batch step = {.n_seq = 1, .seq_start = s1, .pos0 = &pos};
        CHECK_OK(sc_forward(m, be, &step, &pr[1][t], h, cache, NULL, NULL));
        CHECK_OK(sc_head(m, be, h, NULL, 1, NULL, lc));
        for (int v = 0; v < V; v++) md = fmax(md, fabs(lc[v] - lg[(size_t)t * V + v]));
    }
    CHECKF(md < 1e-4, "KV-cache logits differ from a full forward by %g", md);
    // a sequence longer than the cache is an error, not an overflow
    int big[2] = {0, 20};
    sc_batch toolong = {.n_seq = 1, .seq_start = big, .pos0 = &p0};
    int32_t ids20[20] = {0};
    float *h20 = malloc(sizeof(float) * 20 * (size_t)C);
    CHECK_ERR(sc_forward(m, be, &toolong, ids20, h20, cache, NULL, NULL), SC_ERR_ARG, "KV cache holds 16");
    free(h20); free(h); free(lg); free(lc);
    sc_kv_cache_free(cache);
    sc_model_free(m);
    return sc_test_finish("test_generate");
}
