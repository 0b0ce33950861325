// test_lockstep.c — searches that share a pass (sc_search_pass) against the same searches run
// one after another (sc_search_step, searches_per_pass 1: today's trainer, byte for byte the
// checkpoints of the trainer before lock-step), on a tiny random model with the tokenizer:
//  1. 4 searches in one pass (sampling shared, each search's teacher-forced pass its own: the
//     default searches_per_micro_batch 1): the same prompts and sampled tokens (each sequence
//     draws with its own search's seed and step) and bitwise the same losses and adapters after
//     every step;
//  2. a resume with searches at different steps (two of them one step ahead, as after a kill
//     between two checkpoint writes), teacher-forced in micro-batches of 2 searches: those two
//     finish a pass early and drop out, and every search ends as when it ran alone;
//  3. the trainer loop (sc_search_run_range into a run directory): stopped after its first pass
//     with 2 searches per pass (searches 0, 1 at step 2; 2, 3 at step 1: as after a kill between
//     checkpoint writes), resumed with 3 per pass (0, 1 finish and leave, search 3 takes a slot):
//     results.h5 bitwise that of a run with searches_per_pass 1;
//  4. the "searches_per_pass" key ("auto", a count, errors).
// The sampled tokens must be identical everywhere: decoding 8 rows instead of 2 may round the
// logits differently (see below), but a token changes only when its uniform falls within that
// rounding (~1e-7) of a bin edge. With micro-batches of 2 searches the teacher-forced products
// see more rows than alone: bitwise where the machine's matrix products give a row the same
// bits whatever the number of rows in the call (probed below with the model's own matrices);
// otherwise (OpenBLAS chooses its micro-kernels by the row count: rows that fall in an edge tile
// are summed in another order) within a stated tolerance: losses to 1e-5 relative, adapters to
// 1e-4 of their largest entry.
#include "testutil.h"
#include "steerclear/h5.h"
#include "steerclear/make_model.h"
#include "steerclear/results.h"
#include "steerclear/rng.h"
#include "steerclear/search.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

enum { N_SEARCH = 4, N_TRAIN = 8, PL = 12 };

static int32_t g_ids[N_TRAIN][PL];
static const int32_t *g_prompts[N_TRAIN];
static int g_len[N_TRAIN];

// Does a product give each row the same bits whatever the number of rows in the call?
static int rows_independent(const sc_model *m, sc_backend *be) {
    const int Ms[] = {1, 2, 3, 5, 8, 13, 16, 24, 40, 100, 190, 400};
    const int Mmax = 400, K = m->cfg.hidden;
    const sc_mat *mats[] = {&m->blocks[0].q, &m->blocks[0].gate, &m->blocks[0].down, &m->lm_head};
    int same = 1;
    for (size_t w = 0; w < sizeof mats / sizeof mats[0]; w++) {
        const int64_t N = mats[w]->rows, Kw = mats[w]->cols;
        float *x = malloc(sizeof(float) * (size_t)Mmax * Kw), *ref = malloc(sizeof(float) * (size_t)Mmax * N),
              *o = malloc(sizeof(float) * (size_t)Mmax * N);
        sc_rng_normal(11, (uint64_t)w, 0, x, (size_t)Mmax * Kw);
        CHECK_OK(be->op->matmul(be, ref, x, mats[w], NULL, Mmax));
        for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++) {
            CHECK_OK(be->op->matmul(be, o, x, mats[w], NULL, Ms[i]));
            if (memcmp(o, ref, sizeof(float) * (size_t)Ms[i] * N)) same = 0;
        }
        free(x); free(ref); free(o);
    }
    (void)K;
    return same;
}

// The item of state s's next step (prompt order of its seed, epoch 0).
static sc_search_item item_of(const sc_search_config *cfg, sc_search_state *s, int32_t *order, const int32_t **bp, int *bl, int32_t *bi) {
    CHECK_OK(sc_search_prompt_order(cfg, s->seed, N_TRAIN, 0, order));
    const int k = s->steps_done;
    for (int i = 0; i < cfg->batch_size; i++) {
        bi[i] = order[k * cfg->batch_size + i];
        bp[i] = g_prompts[bi[i]];
        bl[i] = g_len[bi[i]];
    }
    return (sc_search_item){.state = s, .prompts = bp, .prompt_len = bl, .prompt_idx = bi, .n = cfg->batch_size};
}

typedef struct { double loss, adapter; int records; } diffs;

// Compare every step record of two runs of one search.
static void compare(const sc_search_state *a, const sc_search_state *b, int exact, diffs *d, const char *what) {
    CHECK(a->steps_done == a->steps_total && b->steps_done == b->steps_total);
    const size_t nA = sc_adapter_numel_A(a->adapter), nB = sc_adapter_numel_B(a->adapter);
    for (int k = 0; k < a->steps_done && k < b->steps_done; k++) {
        const sc_step_record *x = &a->steps[k], *y = &b->steps[k];
        int g = 0, same_tokens = 1;
        for (int i = 0; i < a->batch; i++) {
            CHECKF(x->prompt_idx[i] == y->prompt_idx[i], "%s: search %d step %d: prompt %d differs", what, a->search, k, i);
            CHECKF(x->gen_len[i] == y->gen_len[i], "%s: search %d step %d: sequence %d has %d sampled tokens, alone %d", what, a->search, k, i,
                   y->gen_len[i], x->gen_len[i]);
            g += x->gen_len[i];
        }
        for (int i = 0; i < g && x->gen_len[0] == y->gen_len[0]; i++) same_tokens &= x->gen[i] == y->gen[i];
        CHECKF(same_tokens, "%s: search %d step %d: the sampled tokens differ", what, a->search, k);
        CHECK(x->n_pos == y->n_pos);
        double amax = 0, ad = 0;
        for (size_t i = 0; i < nA + nB; i++) {
            const double u = i < nA ? x->A[i] : x->B[i - nA], v = i < nA ? y->A[i] : y->B[i - nA];
            if (fabs(u) > amax) amax = fabs(u);
            if (fabs(u - v) > ad) ad = fabs(u - v);
        }
        const double ld = fmax(fabs(x->loss - y->loss), fmax(fabs(x->kl - y->kl), fabs(x->nll - y->nll)));
        if (ld > d->loss) d->loss = ld;
        if (ad / (amax > 0 ? amax : 1) > d->adapter) d->adapter = ad / (amax > 0 ? amax : 1);
        d->records++;
        if (exact) {
            CHECKF(x->loss == y->loss && x->kl == y->kl && x->nll == y->nll, "%s: search %d step %d: loss %.17g / %.17g (alone) not bitwise equal",
                   what, a->search, k, y->loss, x->loss);
            CHECKF(ad == 0, "%s: search %d step %d: adapters differ by %g (bitwise expected)", what, a->search, k, ad);
        } else {
            CHECKF(ld <= 1e-5 * fmax(1.0, fabs(x->nll)), "%s: search %d step %d: loss differs by %g", what, a->search, k, ld);
            CHECKF(ad <= 1e-4 * amax, "%s: search %d step %d: adapters differ by %g (largest entry %g)", what, a->search, k, ad, amax);
        }
    }
}


// --- The trainer loop ---------------------------------------------------------------------------

static int g_polls, g_stop_after;
static sc_status stop_after(void *ctx) {
    (void)ctx;
    return ++g_polls >= g_stop_after ? sc_errorf(SC_ERR_INTERRUPTED, "stopped by the test after %d passes", g_polls) : SC_OK;
}

// The tests' searches: N_SEARCH of 3 steps of 2 prompts, a per-block adapter, max_new new tokens
static void lockstep_config(sc_search_config *cfg, int max_new) {
    sc_search_config_default(cfg);
    cfg->searches = N_SEARCH;
    cfg->adapter = SC_ADAPTER_PER_BLOCK;
    cfg->batch_size = 2;
    cfg->prompts_per_search = 6;   // 3 steps
    cfg->max_new_tokens = max_new;
}

static sc_status run_dir(const sc_model *m, const sc_tokenizer *tok, const sc_dataset *train, const char *dir, int per_pass, int resume,
                         int stop) {
    sc_search_config cfg;
    lockstep_config(&cfg, 6);
    cfg.searches_per_pass = per_pass;
    sc_run *r = NULL;
    SC_TRY(sc_run_open(dir, SC_RUN_WRITE, "test", &r));
    g_polls = 0;
    g_stop_after = stop;
    sc_search_run run = {.model = m, .be = sc_test_backend(), .tok = tok, .train = train, .cfg = &cfg, .run = r, .config_json = "{}",
                         .resume = resume, .poll = stop ? stop_after : NULL};
    sc_status st = sc_search_run_range(&run, 0, -1);
    sc_run_close(r);
    return st;
}

static void test_run_range(const sc_model *m, const sc_tokenizer *tok) {
    char csv[4200], ref[4200], res[4200];
    snprintf(csv, sizeof csv, "%s/train.csv", sc_test_tmpdir());
    snprintf(ref, sizeof ref, "%s/ref", sc_test_tmpdir());
    snprintf(res, sizeof res, "%s/res", sc_test_tmpdir());
    const char *text = "category,full_prompt\nx,The cat sat on the mat\nx,Tell me about rivers\ny,How do birds fly?\ny,Write a haiku\n"
                       "z,What is two plus two\nz,Name a colour\nw,Describe the sea in one line\nw,Why is the sky blue?\n";
    sc_test_write(csv, text, strlen(text));
    sc_dataset train = {0};
    CHECK_OK(sc_dataset_load(csv, SC_DATASET_TRAIN, &train));
    CHECK_OK(run_dir(m, tok, &train, ref, 1, 0, 0));
    CHECK_ERR(run_dir(m, tok, &train, res, 2, 0, 1), SC_ERR_INTERRUPTED, "stopped by the test");
    CHECK_ERR(run_dir(m, tok, &train, res, 3, 1, 1), SC_ERR_INTERRUPTED, "stopped by the test");   // 0, 1, 2 at steps 3, 3, 2
    CHECK_OK(run_dir(m, tok, &train, res, 3, 1, 0));   // search 3 joins 2
    for (int s = 0; s < N_SEARCH; s++) {
        char a[4300], b[4300];
        snprintf(a, sizeof a, "%s/results.h5", ref);
        snprintf(b, sizeof b, "%s/results.h5", res);
        const char *names[] = {"adapter/A", "adapter/B", "steps/A", "steps/B", "steps/tokens/values", "steps/prompt_indices"};
        sc_h5 *ha = NULL, *hb = NULL;
        CHECK_OK(sc_h5_open(a, 0, &ha));
        CHECK_OK(sc_h5_open(b, 0, &hb));
        for (size_t k = 0; ha && hb && k < sizeof names / sizeof names[0]; k++) {
            char path[128];
            snprintf(path, sizeof path, "/searches/%04d/%s", s, names[k]);
            int nda = 0, ndb = 0;
            int64_t da[4] = {0}, db[4] = {0};
            void *va = NULL, *vb = NULL;
            size_t bytes = 4;
            if (k < 4) { CHECK_OK(sc_h5_read_f32(ha, path, (float **)&va, &nda, da)); CHECK_OK(sc_h5_read_f32(hb, path, (float **)&vb, &ndb, db)); }
            else { CHECK_OK(sc_h5_read_i32(ha, path, (int32_t **)&va, &nda, da)); CHECK_OK(sc_h5_read_i32(hb, path, (int32_t **)&vb, &ndb, db)); }
            for (int d = 0; d < nda; d++) bytes *= (size_t)da[d];
            CHECKF(va && vb && nda == ndb && !memcmp(da, db, sizeof da) && !memcmp(va, vb, bytes),
                   "search %d: %s differs after a resume with searches at different steps", s, path);
            free(va); free(vb);
        }
        for (int q = 0; ha && hb && q < 3; q++) {   // loss, kl, nll
            const char *nm[] = {"loss", "kl", "nll"};
            char path[128];
            snprintf(path, sizeof path, "/searches/%04d/steps/%s", s, nm[q]);
            double *la = NULL, *lb = NULL;
            int nda = 0, ndb = 0;
            int64_t da[4] = {0}, db[4] = {0};
            CHECK_OK(sc_h5_read_f64(ha, path, &la, &nda, da));
            CHECK_OK(sc_h5_read_f64(hb, path, &lb, &ndb, db));
            CHECKF(la && lb && nda == 1 && da[0] == 3 && db[0] == 3 && !memcmp(la, lb, sizeof(double) * 3), "search %d: %s differs after the resume", s, path);
            free(la); free(lb);
        }
        sc_h5_close(ha); sc_h5_close(hb);
    }
    sc_dataset_free(&train);
}

static void test_config(void) {
    sc_search_config c;
    sc_search_config_default(&c);
    CHECK(c.searches_per_pass == 0 && c.searches_per_micro_batch == 1);
    cJSON *o = cJSON_Parse("{\"searches_per_pass\": 4}");
    CHECK_OK(sc_search_config_from_json(o, "t.json", &c));
    CHECK(c.searches_per_pass == 4);
    cJSON_Delete(o);
    cJSON *j = sc_search_config_to_json(&c);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "searches_per_pass")) == 4);
    cJSON_Delete(j);
    o = cJSON_Parse("{\"searches_per_pass\": \"auto\"}");
    CHECK_OK(sc_search_config_from_json(o, "t.json", &c));
    CHECK(c.searches_per_pass == 0);
    cJSON_Delete(o);
    j = sc_search_config_to_json(&c);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "searches_per_pass")));
    cJSON_Delete(j);
    o = cJSON_Parse("{\"searches_per_micro_batch\": \"auto\"}");
    CHECK_OK(sc_search_config_from_json(o, "t.json", &c));
    CHECK(c.searches_per_micro_batch == 0);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"searches_per_pass\": 0}");
    CHECK_ERR(sc_search_config_from_json(o, "t.json", &c), SC_ERR_ARG, "t.json", "searches_per_pass", "auto");
    cJSON_Delete(o);
    // not a setting that changes results: a checkpoint does not record it
    char *set = sc_search_config_settings(&c);
    CHECK(set && !strstr(set, "searches_per_pass") && !strstr(set, "searches_per_micro_batch"));
    free(set);
}

int main(void) {
    const char *tokpath = sc_test_env("SC_TOKENIZER", "");
    if (!tokpath[0] || !sc_file_exists(tokpath)) { printf("test_lockstep: SKIP (no tokenizer at $SC_TOKENIZER)\n"); return 77; }
    test_config();
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/m", sc_test_tmpdir());
    sc_make_model_opts mo = {0};
    CHECK_OK(sc_make_model_preset("tiny", &mo));
    mo.cfg.n_layers = 2;
    mo.dtype = SC_DTYPE_F32;
    mo.seed = 9;
    mo.tokenizer = tokpath;
    CHECK_OK(sc_make_model(dir, &mo));
    sc_backend *be = sc_test_backend();
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    CHECK_OK(sc_model_load(dir, 0, -1, be, &m));
    CHECK_OK(sc_tok_load(tokpath, &tok));
    if (!m || !tok) return sc_test_finish("test_lockstep");
    for (int i = 0; i < N_TRAIN; i++) {   // random prompts of different lengths
        g_len[i] = PL - i % 5;
        for (int t = 0; t < PL; t++) { uint32_t r[4]; sc_philox4x32(17, (uint64_t)i, (uint64_t)t, r); g_ids[i][t] = (int32_t)(r[0] % 20000u); }
        g_prompts[i] = g_ids[i];
    }
    const int exact = rows_independent(m, be);
    printf("matrix products on this machine: %s\n", exact ? "a row's bits do not depend on the row count: comparing bitwise"
                                                            : "a row's bits depend on the row count (BLAS edge tiles): comparing micro-batches of 2 searches within tolerance");

    sc_search_config cfg;
    lockstep_config(&cfg, 8);
    cfg.loss_chunk = 5;
    CHECK_OK(sc_search_config_validate(&cfg));
    sc_search_run run = {.model = m, .be = be, .tok = tok, .cfg = &cfg};
    const int L = m->cfg.n_layers, C = m->cfg.hidden, B = cfg.batch_size;
    int32_t order[N_TRAIN], bi[N_SEARCH][2];
    const int32_t *bp[N_SEARCH][2];
    int bl[N_SEARCH][2];

    // one after another (searches_per_pass 1)
    sc_search_state *alone[N_SEARCH] = {0}, *ahead[N_SEARCH] = {0};
    sc_search_work *w1 = NULL;
    CHECK_OK(sc_search_work_create(&run, PL, &w1));
    CHECK(w1 && sc_search_work_per_pass(w1) == 1);
    for (int s = 0; s < N_SEARCH && w1; s++) {
        CHECK_OK(sc_search_state_create(be, &cfg, s, L, C, &alone[s]));
        if (!alone[s]) continue;
        while (alone[s]->steps_done < alone[s]->steps_total) {
            sc_search_item it = item_of(&cfg, alone[s], order, bp[0], bl[0], bi[0]);
            CHECK_OK(sc_search_step(&run, w1, alone[s], it.prompts, it.prompt_len, it.prompt_idx, it.n));
            if (alone[s]->steps_done == 1 && s < 2) {   // searches 0 and 1 one step ahead: the resume below
                char *data = NULL;
                size_t len = 0;
                CHECK_OK(sc_search_state_pack(alone[s], &data, &len));
                CHECK_OK(sc_search_state_unpack(data, len, "a packed state", &cfg, be, L, C, &ahead[s]));
                free(data);
            }
        }
    }
    sc_search_work_free(w1);

    // 1. all four in one pass, three passes
    diffs d1 = {0}, d2 = {0};
    sc_search_work *w4 = NULL;
    CHECK_OK(sc_search_work_create_pass(&run, PL, N_SEARCH, 0, &w4));
    CHECK(w4 && sc_search_work_per_pass(w4) == N_SEARCH && sc_search_work_per_micro(w4) == 1);   // searches_per_micro_batch 1
    sc_search_state *tog[N_SEARCH] = {0};
    for (int s = 0; s < N_SEARCH; s++) CHECK_OK(sc_search_state_create(be, &cfg, s, L, C, &tog[s]));
    for (int p = 0; p < 3 && w4; p++) {
        sc_search_item items[N_SEARCH];
        for (int s = 0; s < N_SEARCH; s++) items[s] = item_of(&cfg, tog[s], order, bp[s], bl[s], bi[s]);
        CHECK_OK(sc_search_pass(&run, w4, items, N_SEARCH));
    }
    for (int s = 0; s < N_SEARCH; s++) if (alone[s] && tog[s]) compare(alone[s], tog[s], 1, &d1, "one pass");
    sc_search_work_free(w4);

    // 2. resume with searches at different steps, micro-batches of 2 searches; finished ones drop out
    sc_search_work *wm = NULL;
    CHECK_OK(sc_search_work_create_pass(&run, PL, N_SEARCH, 2, &wm));
    CHECK(wm && sc_search_work_per_micro(wm) == 2);
    sc_search_state *res[N_SEARCH] = {0};
    for (int s = 0; s < N_SEARCH; s++) {
        if (s < 2) res[s] = ahead[s];
        else CHECK_OK(sc_search_state_create(be, &cfg, s, L, C, &res[s]));
    }
    int passes = 0, sizes[8] = {0};
    for (; wm && passes < 8; passes++) {
        sc_search_item items[N_SEARCH];
        int n = 0;
        for (int s = 0; s < N_SEARCH; s++)
            if (res[s] && res[s]->steps_done < res[s]->steps_total) { items[n] = item_of(&cfg, res[s], order, bp[n], bl[n], bi[n]); n++; }
        if (!n) break;
        sizes[passes] = n;
        CHECK_OK(sc_search_pass(&run, wm, items, n));
    }
    CHECKF(passes == 3 && sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 2, "resume: %d passes of %d, %d, %d searches (want 4, 4, 2)", passes,
           sizes[0], sizes[1], sizes[2]);
    for (int s = 0; s < N_SEARCH; s++) if (alone[s] && res[s]) compare(alone[s], res[s], exact, &d2, "resumed at different steps");
    sc_search_work_free(wm);
    printf("one pass of 4 searches vs one after another: %d step records, largest loss difference %.3g, adapters %.3g of their largest entry\n",
           d1.records, d1.loss, d1.adapter);
    printf("resumed at different steps, micro-batches of 2: %d step records, largest loss difference %.3g, adapters %.3g\n", d2.records, d2.loss,
           d2.adapter);
    CHECK(d1.records == N_SEARCH * 3 && d2.records == N_SEARCH * 3);

    // "auto" sizes: all 4 searches per pass and per teacher-forced batch when memory allows, one
    // when the budget leaves no room beyond what is held
    cfg.searches_per_micro_batch = 0;
    sc_search_work *wa = NULL;
    CHECK_OK(sc_search_work_create_pass(&run, PL, N_SEARCH, 0, &wa));
    CHECK(wa && sc_search_work_per_pass(wa) == N_SEARCH && sc_search_work_per_micro(wa) == N_SEARCH);
    sc_search_work_free(wa);
    wa = NULL;
    const size_t budget = be->memory_budget;
    be->memory_budget = be->stats.bytes_live + (1u << 20);
    CHECK_OK(sc_search_work_create_pass(&run, PL, N_SEARCH, 0, &wa));
    CHECK(wa && sc_search_work_per_pass(wa) == 1 && sc_search_work_per_micro(wa) == 1);
    be->memory_budget = budget;
    sc_search_work_free(wa);
    cfg.searches_per_micro_batch = 1;

    // an empty pass and one larger than planned are refused
    CHECK_OK(sc_search_work_create(&run, PL, &w1));
    sc_search_state *f0 = NULL, *f1 = NULL;
    CHECK_OK(sc_search_state_create(be, &cfg, 0, L, C, &f0));
    CHECK_OK(sc_search_state_create(be, &cfg, 1, L, C, &f1));
    if (w1 && f0 && f1) {
        sc_search_item items[2] = {item_of(&cfg, f0, order, bp[0], bl[0], bi[0]), item_of(&cfg, f1, order, bp[1], bl[1], bi[1])};
        CHECK_ERR(sc_search_pass(&run, w1, items, 2), SC_ERR_INTERNAL, "2 searches, planned for 1");
        CHECK_ERR(sc_search_pass(&run, w1, items, 0), SC_ERR_INTERNAL, "0 searches");
        CHECK(f0->steps_done == 0);
    }
    sc_search_state_free(f0);
    sc_search_state_free(f1);
    sc_search_work_free(w1);
    (void)B;
    for (int s = 0; s < N_SEARCH; s++) { sc_search_state_free(alone[s]); sc_search_state_free(tog[s]); sc_search_state_free(res[s]); }
    test_run_range(m, tok);
    sc_tok_free(tok);
    sc_model_free(m);
    return sc_test_finish("test_lockstep");
}
