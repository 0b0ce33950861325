// test_prompt_sampling.c — which train prompts a search visits in each epoch ("prompt_sampling"):
//  1. the order function: epoch 0 is the same in both modes and the same as before the key
//     existed (a copy of the old draw is the reference); per-search epochs are one set in fresh
//     orders, per-epoch epochs are fresh sets; reproducible from the seed;
//  2. the trainer, 2 epochs: steps/prompt_indices in results.h5 shows the same, and epoch 0's
//     steps (losses, adapters) are bit-identical in both modes;
//  3. a run recorded before the key existed (config and checkpoint without it) resumes with
//     per-epoch sampling and ends bit-identical to a straight per-epoch run; asking it for
//     per-search is refused naming the key.
// Parts 2 and 3 need the tokenizer ($SC_TOKENIZER) and are skipped without it.
#include "testutil.h"
#include "steerclear/h5.h"
#include "steerclear/make_model.h"
#include "steerclear/model.h"
#include "steerclear/results.h"
#include "steerclear/rng.h"
#include "steerclear/search.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdlib.h>

// --- 1. The order function ----------------------------------------------------------------------

// The draw of every epoch before prompt_sampling existed (trainer.c's draw_prompts, copied as
// the reference): old runs and 1-epoch runs must not change.
static void old_draw(uint64_t seed, int n_train, int pps, int epoch, int32_t *out) {
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_train);
    for (int i = 0; i < n_train; i++) perm[i] = i;
    for (int i = n_train - 1; i > 0; i--) {
        uint32_t rr[4];
        sc_philox4x32(seed, 0x50524f4d50ull + (uint64_t)epoch, (uint64_t)i, rr);
        int j = (int)((((uint64_t)rr[0] << 32) | rr[1]) % (uint64_t)(i + 1));
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    memcpy(out, perm, sizeof(int32_t) * (size_t)pps);
    free(perm);
}

static int cmp_i32(const void *a, const void *b) { int32_t x = *(const int32_t *)a, y = *(const int32_t *)b; return (x > y) - (x < y); }

// Whether a[0, n) and b[0, n) hold the same rows (as sets; rows within one are distinct).
static int same_set(const int32_t *a, const int32_t *b, int n) {
    int32_t sa[64], sb[64];
    memcpy(sa, a, sizeof(int32_t) * (size_t)n); memcpy(sb, b, sizeof(int32_t) * (size_t)n);
    qsort(sa, (size_t)n, sizeof(int32_t), cmp_i32); qsort(sb, (size_t)n, sizeof(int32_t), cmp_i32);
    return !memcmp(sa, sb, sizeof(int32_t) * (size_t)n);
}

static int distinct_in_range(const int32_t *a, int n, int n_train) {
    int32_t s[64];
    memcpy(s, a, sizeof(int32_t) * (size_t)n);
    qsort(s, (size_t)n, sizeof(int32_t), cmp_i32);
    for (int i = 0; i < n; i++) if (s[i] < 0 || s[i] >= n_train || (i && s[i] == s[i - 1])) return 0;
    return 1;
}

static void test_order(void) {
    enum { N_TRAIN = 40, PPS = 8, EPOCHS = 4 };
    sc_search_config ps, pe;
    sc_search_config_default(&ps);
    CHECK(ps.prompt_sampling == SC_SAMPLING_PER_SEARCH);   // the study's way is the default
    ps.prompts_per_search = PPS; ps.batch_size = 4; ps.epochs = EPOCHS;
    pe = ps;
    pe.prompt_sampling = SC_SAMPLING_PER_EPOCH;
    const uint64_t seed = sc_search_seed(&ps, 3);
    int32_t a[EPOCHS][PPS], b[EPOCHS][PPS], ref[PPS], again[PPS];
    for (int e = 0; e < EPOCHS; e++) {
        CHECK_OK(sc_search_prompt_order(&ps, seed, N_TRAIN, e, a[e]));
        CHECK_OK(sc_search_prompt_order(&pe, seed, N_TRAIN, e, b[e]));
        CHECK(distinct_in_range(a[e], PPS, N_TRAIN) && distinct_in_range(b[e], PPS, N_TRAIN));
        old_draw(seed, N_TRAIN, PPS, e, ref);
        CHECKF(!memcmp(b[e], ref, sizeof ref), "per-epoch, epoch %d: not the draw runs made before prompt_sampling existed", e);
        CHECK_OK(sc_search_prompt_order(&ps, seed, N_TRAIN, e, again));
        CHECKF(!memcmp(a[e], again, sizeof again), "per-search, epoch %d: not reproducible", e);
    }
    CHECKF(!memcmp(a[0], b[0], sizeof a[0]), "epoch 0 differs between per-search and per-epoch");
    for (int e = 1; e < EPOCHS; e++) {
        CHECKF(same_set(a[e], a[0], PPS), "per-search, epoch %d visits other prompts than epoch 0", e);
        CHECKF(memcmp(a[e], a[e - 1], sizeof a[e]) != 0, "per-search, epoch %d: the same order as epoch %d", e, e - 1);
        CHECKF(!same_set(b[e], b[0], PPS), "per-epoch, epoch %d: the same prompts as epoch 0", e);
    }
    // another search (seed) draws other prompts
    CHECK_OK(sc_search_prompt_order(&ps, sc_search_seed(&ps, 4), N_TRAIN, 0, again));
    CHECK(memcmp(again, a[0], sizeof again) != 0);
    // all of a small train set: every epoch is a permutation of it, in both modes
    ps.prompts_per_search = pe.prompts_per_search = 6;
    CHECK_OK(sc_search_prompt_order(&ps, seed, 6, 2, a[0]));
    CHECK_OK(sc_search_prompt_order(&pe, seed, 6, 2, b[0]));
    CHECK(distinct_in_range(a[0], 6, 6) && distinct_in_range(b[0], 6, 6));
    CHECK_ERR(sc_search_prompt_order(&ps, seed, 5, 0, a[0]), SC_ERR_ARG, "6 prompts per search from a train set of 5");
}

// --- 1b. The key in configs, old records ---------------------------------------------------------

static void test_config(void) {
    sc_search_config c, d;
    sc_search_config_default(&c);
    cJSON *j = sc_search_config_to_json(&c);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "prompt_sampling");
    CHECK(cJSON_IsString(v) && !strcmp(v->valuestring, "per-search"));
    cJSON_Delete(j);
    cJSON *o = cJSON_Parse("{\"prompt_sampling\": \"per-epoch\"}");
    CHECK_OK(sc_search_config_from_json(o, "t.json", &c));
    CHECK(c.prompt_sampling == SC_SAMPLING_PER_EPOCH);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"prompt_sampling\": \"per-step\"}");
    CHECK_ERR(sc_search_config_from_json(o, "t.json", &c), SC_ERR_ARG, "t.json", "prompt_sampling", "\"per-search\", \"per-epoch\"");
    cJSON_Delete(o);
    // a recorded section without the key was made with per-epoch sampling; a new config without
    // it gets the default; a recorded key is kept as recorded
    o = cJSON_Parse("{\"lr\": 0.2}");
    sc_search_config_default(&c); sc_search_config_default(&d);
    CHECK_OK(sc_search_config_from_recorded_json(o, "RUN/config.json", &c));
    CHECK_OK(sc_search_config_from_json(o, "F.json", &d));
    CHECK(c.prompt_sampling == SC_SAMPLING_PER_EPOCH && d.prompt_sampling == SC_SAMPLING_PER_SEARCH && c.lr == 0.2f);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"prompt_sampling\": \"per-search\"}");
    CHECK_OK(sc_search_config_from_recorded_json(o, "RUN/config.json", &c));
    CHECK(c.prompt_sampling == SC_SAMPLING_PER_SEARCH);
    cJSON_Delete(o);
    // the recorded settings --resume checks: a change of the key is refused; an absent key is per-epoch
    sc_search_config_default(&c);
    d = c;
    d.prompt_sampling = SC_SAMPLING_PER_EPOCH;
    char *settings = sc_search_config_settings(&c), diff[1024];
    CHECK(settings && strstr(settings, "\"prompt_sampling\":\"per-search\""));
    CHECK(sc_search_settings_diff(settings, &d, diff, sizeof diff) && strstr(diff, "prompt_sampling (\"per-search\" -> \"per-epoch\")"));
    cJSON *s = cJSON_Parse(settings);
    cJSON_DeleteItemFromObjectCaseSensitive(s, "prompt_sampling");
    char *old = cJSON_PrintUnformatted(s);
    CHECKF(!sc_search_settings_diff(old, &d, diff, sizeof diff), "old settings vs per-epoch: %s", diff);
    CHECK(sc_search_settings_diff(old, &c, diff, sizeof diff) && strstr(diff, "prompt_sampling (\"per-epoch\" -> \"per-search\")"));
    cJSON_Delete(s);
    free(old);
    free(settings);
}

// --- 2, 3. The trainer ---------------------------------------------------------------------------

enum { N_TRAIN = 10, PPS = 4, BATCH = 2, EPOCHS = 2, K = PPS / BATCH * EPOCHS };

typedef struct {
    const sc_model *m;
    const sc_tokenizer *tok;
    const sc_dataset *train;
} fixture;

static void base_config(sc_search_config *c, sc_prompt_sampling mode) {
    sc_search_config_default(c);
    c->searches = 1; c->adapter = SC_ADAPTER_PER_BLOCK;
    c->prompts_per_search = PPS; c->batch_size = BATCH; c->epochs = EPOCHS;
    c->max_new_tokens = 3; c->seed = 7;
    c->prompt_sampling = mode;
}

// The run config as RUN_DIR/config.json records it; without the key when `old`.
static char *config_text(const sc_search_config *c, int old) {
    cJSON *root = cJSON_CreateObject(), *s = sc_search_config_to_json(c);
    if (old) cJSON_DeleteItemFromObjectCaseSensitive(s, "prompt_sampling");
    cJSON_AddItemToObject(root, "search", s);
    char *t = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return t;
}

static sc_status run_search(const fixture *f, const char *dir, const sc_search_config *c, const char *config_json, int resume) {
    sc_run *r = NULL;
    SC_TRY(sc_run_open(dir, SC_RUN_WRITE, "test", &r));
    sc_search_run run = {.model = f->m, .be = sc_test_backend(), .tok = f->tok, .train = f->train, .cfg = c, .run = r,
                         .config_json = config_json, .resume = resume};
    sc_status st = sc_search_run_range(&run, 0, -1);
    sc_run_close(r);
    return st;
}

// What a finished search left in results.h5: everything that must match bit for bit.
typedef struct { int32_t *pidx, *tok; float *A, *B, *sA; double *loss; int64_t n_tok, n_sA; } recorded;

static void read_recorded(const char *dir, recorded *out) {
    memset(out, 0, sizeof *out);
    char path[4300];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    sc_h5 *h = NULL;
    CHECK_OK(sc_h5_open(path, 0, &h));
    if (!h) return;
    int nd = 0;
    int64_t dims[4];
    CHECK_OK(sc_h5_read_i32(h, "/searches/0000/steps/prompt_indices", &out->pidx, &nd, dims));
    CHECKF(out->pidx && nd == 2 && dims[0] == K && dims[1] == BATCH, "%s: steps/prompt_indices is not [%d, %d]", path, K, BATCH);
    CHECK_OK(sc_h5_read_f64(h, "/searches/0000/steps/loss", &out->loss, &nd, dims));
    CHECK_OK(sc_h5_read_f32(h, "/searches/0000/steps/A", &out->sA, &nd, dims));
    out->n_sA = dims[0] * dims[1] * dims[2] * dims[3];
    CHECK_OK(sc_h5_read_f32(h, "/searches/0000/adapter/A", &out->A, &nd, dims));
    CHECK_OK(sc_h5_read_f32(h, "/searches/0000/adapter/B", &out->B, &nd, dims));
    CHECK_OK(sc_h5_read_i32(h, "/searches/0000/steps/tokens/values", &out->tok, &nd, dims));
    out->n_tok = dims[0];
    sc_h5_close(h);
}

static void free_recorded(recorded *r) { free(r->pidx); free(r->tok); free(r->A); free(r->B); free(r->sA); free(r->loss); }

static int same_recorded(const recorded *a, const recorded *b, size_t nA, size_t nB) {
    return a->pidx && b->pidx && a->n_tok == b->n_tok && a->n_sA == b->n_sA &&
           !memcmp(a->pidx, b->pidx, sizeof(int32_t) * K * BATCH) && !memcmp(a->loss, b->loss, sizeof(double) * K) &&
           !memcmp(a->tok, b->tok, sizeof(int32_t) * (size_t)a->n_tok) && !memcmp(a->sA, b->sA, sizeof(float) * (size_t)a->n_sA) &&
           !memcmp(a->A, b->A, sizeof(float) * nA) && !memcmp(a->B, b->B, sizeof(float) * nB);
}

// A log sink that sends SIGINT once the trainer reports optimizer step `stop_at`: the search
// then stops after that (checkpointed) step, as under preemption.
static int stop_at;
static void stop_sink(sc_log_level level, const char *msg, void *user) {
    (void)user;
    char want[32];
    snprintf(want, sizeof want, " step %d/%d ", stop_at, K);
    if (level == SC_LOG_INFO && strstr(msg, want)) raise(SIGINT);
}

static void test_trainer(const fixture *f) {
    const char *tmp = sc_test_tmpdir();
    char d_ps[4200], d_pe[4200], d_old[4200];
    snprintf(d_ps, sizeof d_ps, "%s/per_search", tmp);
    snprintf(d_pe, sizeof d_pe, "%s/per_epoch", tmp);
    snprintf(d_old, sizeof d_old, "%s/old_run", tmp);
    sc_search_config ps, pe;
    base_config(&ps, SC_SAMPLING_PER_SEARCH);
    base_config(&pe, SC_SAMPLING_PER_EPOCH);
    char *t_ps = config_text(&ps, 0), *t_pe = config_text(&pe, 0), *t_old = config_text(&pe, 1);
    CHECK_OK(run_search(f, d_ps, &ps, t_ps, 0));
    CHECK_OK(run_search(f, d_pe, &pe, t_pe, 0));
    recorded rps, rpe;
    read_recorded(d_ps, &rps);
    read_recorded(d_pe, &rpe);
    const int half = PPS;   // prompt rows of one epoch
    if (rps.pidx && rpe.pidx) {
        printf("prompt_indices per-search:");
        for (int i = 0; i < K * BATCH; i++) printf(" %d", rps.pidx[i]);
        printf("\nprompt_indices per-epoch: ");
        for (int i = 0; i < K * BATCH; i++) printf(" %d", rpe.pidx[i]);
        printf("\n");
        CHECK(distinct_in_range(rps.pidx, half, N_TRAIN) && distinct_in_range(rpe.pidx + half, half, N_TRAIN));
        CHECKF(same_set(rps.pidx, rps.pidx + half, half), "per-search: epoch 1 visits other prompts than epoch 0");
        CHECKF(memcmp(rps.pidx, rps.pidx + half, sizeof(int32_t) * half) != 0, "per-search: epoch 1 in epoch 0's order");
        CHECKF(!same_set(rpe.pidx, rpe.pidx + half, half), "per-epoch: epoch 1 visits epoch 0's prompts");
        // epoch 0 is the same in both modes, to the bit
        CHECKF(!memcmp(rps.pidx, rpe.pidx, sizeof(int32_t) * half), "epoch 0's prompts differ between the modes");
        CHECKF(!memcmp(rps.loss, rpe.loss, sizeof(double) * (K / EPOCHS)), "epoch 0's losses differ between the modes");
        CHECKF(!memcmp(rps.sA, rpe.sA, sizeof(float) * (size_t)(rps.n_sA / K * (K / EPOCHS))), "epoch 0's adapters differ between the modes");
        // what results.h5 records is what the order function gives
        int32_t o[PPS];
        for (int e = 0; e < EPOCHS; e++) {
            CHECK_OK(sc_search_prompt_order(&ps, sc_search_seed(&ps, 0), N_TRAIN, e, o));
            CHECK(!memcmp(o, rps.pidx + e * half, sizeof o));
            CHECK_OK(sc_search_prompt_order(&pe, sc_search_seed(&pe, 0), N_TRAIN, e, o));
            CHECK(!memcmp(o, rpe.pidx + e * half, sizeof o));
        }
    }

    // 3. a run made before the key existed, stopped after step 2 of 4
    sc_signals_install();
    stop_at = 2;
    sc_log_set(stop_sink, NULL);
    sc_status st = run_search(f, d_old, &pe, t_old, 0);
    sc_log_set(NULL, NULL);
    sc_interrupt_reset();
    CHECKF(st == SC_ERR_INTERRUPTED, "the stopped run returned %s: %s", sc_status_name(st), sc_last_error());
    // its checkpoint as such a run wrote it: settings without prompt_sampling
    char ckpt[4300];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/search_0000.ckpt", d_old);
    sc_search_state *s = NULL;
    const int L = f->m->cfg.n_layers, C = f->m->cfg.hidden;
    CHECK_OK(sc_search_checkpoint_load(ckpt, &pe, sc_test_backend(), L, C, &s));
    if (s) {
        CHECK(s->steps_done == 2);
        cJSON *o = cJSON_Parse(s->settings);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "prompt_sampling");
        free(s->settings);
        s->settings = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        CHECK_OK(sc_search_checkpoint_save(ckpt, s));
        sc_search_state_free(s);
    }
    char *data = NULL;
    size_t len = 0;
    CHECK_OK(sc_read_file(ckpt, &data, &len));
    CHECK(data && len > 100 && !memmem(data, len, "prompt_sampling", 15) && memmem(data, len, "\"epochs\"", 8));
    free(data);
    // --resume reads the run's config: without the key, the run's sampling is per-epoch
    sc_search_config now;
    sc_search_config_default(&now);
    cJSON *saved = cJSON_Parse(t_old);
    CHECK_OK(sc_search_config_from_recorded_json(cJSON_GetObjectItemCaseSensitive(saved, "search"), "RUN/config.json", &now));
    cJSON_Delete(saved);
    CHECK(now.prompt_sampling == SC_SAMPLING_PER_EPOCH);
    // the saved config accepts it and refuses per-search
    char diff[1024];
    cJSON *res = cJSON_CreateObject();
    cJSON_AddItemToObject(res, "search", sc_search_config_to_json(&now));
    CHECK_OK(sc_search_resume_check(t_old, res, "RUN/config.json", diff, sizeof diff));
    cJSON_Delete(res);
    res = cJSON_CreateObject();
    cJSON_AddItemToObject(res, "search", sc_search_config_to_json(&ps));
    CHECK_ERR(sc_search_resume_check(t_old, res, "RUN/config.json", diff, sizeof diff), SC_ERR_ARG, "search.prompt_sampling (\"per-epoch\" -> \"per-search\")");
    cJSON_Delete(res);
    // so does its checkpoint
    CHECK_ERR(run_search(f, d_old, &ps, t_ps, 1), SC_ERR_ARG, "search_0000.ckpt", "other settings", "prompt_sampling (\"per-epoch\" -> \"per-search\")");
    // resumed with the run's sampling, it ends as the straight per-epoch run did, bit for bit
    char *t_now = config_text(&now, 0);
    CHECK_OK(run_search(f, d_old, &now, t_now, 1));
    recorded rold;
    read_recorded(d_old, &rold);
    sc_search_state *probe = NULL;
    size_t nA = 0, nB = 0;
    if (sc_search_state_create(sc_test_backend(), &pe, 0, L, C, &probe) == SC_OK) {
        nA = sc_adapter_numel_A(probe->adapter); nB = sc_adapter_numel_B(probe->adapter);
        sc_search_state_free(probe);
    }
    CHECKF(nA > 0 && same_recorded(&rold, &rpe, nA, nB), "the resumed old run differs from the straight per-epoch run");
    CHECKF(rold.pidx && !same_recorded(&rold, &rps, nA, nB), "the resumed old run equals the per-search run");
    free_recorded(&rold);
    free_recorded(&rps);
    free_recorded(&rpe);
    free(t_now); free(t_ps); free(t_pe); free(t_old);
}

int main(void) {
    test_order();
    test_config();
    const char *tokpath = sc_test_env("SC_TOKENIZER", "");
    if (!tokpath[0] || !sc_file_exists(tokpath)) {
        printf("test_prompt_sampling: trainer parts skipped (no tokenizer at $SC_TOKENIZER)\n");
        return sc_test_finish("test_prompt_sampling");
    }
    const char *tmp = sc_test_tmpdir();
    char model_dir[4200], train_csv[4200];
    snprintf(model_dir, sizeof model_dir, "%s/model", tmp);
    snprintf(train_csv, sizeof train_csv, "%s/train.csv", tmp);
    sc_make_model_opts mo;
    memset(&mo, 0, sizeof mo);
    CHECK_OK(sc_make_model_preset("tiny", &mo));
    mo.cfg.n_layers = 2;
    mo.dtype = SC_DTYPE_F32;
    mo.seed = 11;
    mo.tokenizer = tokpath;
    CHECK_OK(sc_make_model(model_dir, &mo));
    char csv[2048] = "category,full_prompt\n";
    for (int i = 0; i < N_TRAIN; i++) {
        size_t at = strlen(csv);
        snprintf(csv + at, sizeof csv - at, "c%d,Say something about the number %d.\n", i, i);
    }
    sc_test_write(train_csv, csv, strlen(csv));
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    sc_dataset train = {0};
    CHECK_OK(sc_model_load(model_dir, 0, -1, sc_test_backend(), &m));
    CHECK_OK(sc_tok_load(tokpath, &tok));
    CHECK_OK(sc_dataset_load(train_csv, SC_DATASET_TRAIN, &train));
    if (m && tok && train.n == N_TRAIN) {
        fixture f = {m, tok, &train};
        test_trainer(&f);
    }
    sc_dataset_free(&train);
    sc_tok_free(tok);
    sc_model_free(m);
    return sc_test_finish("test_prompt_sampling");
}
