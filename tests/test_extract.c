// test_extract.c — direction extraction on a tiny random model: zero steering is the identity,
// activation-diff and update-mean against brute-force computations in this file, both (and
// the steered logits) against the PyTorch reference, the whole stage on a small run directory
// (results.h5 layout, stored continuations, kept rows, exported files) and its error paths.
#include "testutil.h"
#include "steerclear/extract.h"
#include "steerclear/h5.h"
#include "steerclear/make_model.h"
#include "steerclear/npy.h"
#include "steerclear/rng.h"
#include "steerclear/safetensors.h"
#include "steerclear/search.h"
#include "steerclear/steer.h"
#include "steerclear/tok.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#define N_SEQ 5

static char g_model[4200], g_run[4200], g_train[4200], g_test[4200];

// --- Fixtures ---------------------------------------------------------------------------------

static int make_fixture(const char *tokenizer) {
    const char *tmp = sc_test_tmpdir();
    snprintf(g_model, sizeof g_model, "%s/model", tmp);
    snprintf(g_run, sizeof g_run, "%s/run", tmp);
    snprintf(g_train, sizeof g_train, "%s/train.csv", tmp);
    snprintf(g_test, sizeof g_test, "%s/test.csv", tmp);
    sc_make_model_opts mo;
    memset(&mo, 0, sizeof mo);
    if (sc_make_model_preset("tiny", &mo)) return 0;
    mo.cfg.hidden = 64;
    mo.cfg.n_layers = 3;
    mo.dtype = SC_DTYPE_F32;
    mo.seed = 11;
    mo.tokenizer = tokenizer;
    CHECK_OK(sc_make_model(g_model, &mo));
    CHECK_OK(sc_mkdir_p(g_run));
    const char train[] =
        "category,full_prompt\n"
        "a,\"<|im_start|>user\nTell me about rivers.<|im_end|>\n<|im_start|>assistant\n\"\n"
        "b,\"<|im_start|>user\nWhat is a prime number?<|im_end|>\n<|im_start|>assistant\n\"\n"
        "c,Write one line about the sea.\n";
    const char test[] =
        "category,prompt,full_prompt\n"
        "a,Name a colour.,\"<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n\"\n"
        "b,Count to three.,Count to three.\n";
    sc_test_write(g_train, train, sizeof train - 1);
    sc_test_write(g_test, test, sizeof test - 1);
    return 1;
}

// Two searches in the trainer's layout: 0 shared, 1 per-block; random A and nonzero B.
static void write_searches(const char *path, int L, int C, int bad_shape) {
    sc_h5 *h = NULL;
    CHECK_OK(sc_h5_begin_new(path, &h));
    if (!h) return;
    const int r = 2;
    for (int s = 0; s < 2; s++) {
        int sets = s == 0 ? 1 : L;
        size_t n = (size_t)sets * C * r, nA = (size_t)sets * (C + (bad_shape ? 1 : 0)) * r;
        float *A = malloc(sizeof(float) * nA), *B = malloc(sizeof(float) * n);
        sc_rng_normal(100 + s, 1, 0, A, nA);
        sc_rng_normal(200 + s, 2, 0, B, n);
        char grp[64], obj[96];
        snprintf(grp, sizeof grp, "/searches/%04d", s);
        int64_t dA[3] = {sets, C + (bad_shape ? 1 : 0), r}, dB[3] = {sets, r, C};
        snprintf(obj, sizeof obj, "%s/adapter/A", grp);
        CHECK_OK(sc_h5_write_f32(h, obj, 3, dA, A));
        snprintf(obj, sizeof obj, "%s/adapter/B", grp);
        CHECK_OK(sc_h5_write_f32(h, obj, 3, dB, B));
        CHECK_OK(sc_h5_attr_str(h, grp, "adapter", s == 0 ? "shared" : "per-block"));
        CHECK_OK(sc_h5_attr_i64(h, grp, "rank", r));
        CHECK_OK(sc_h5_attr_f64(h, grp, "scaling", 2.0));
        free(A); free(B);
    }
    CHECK_OK(sc_h5_attr_str(h, "/", "format", "steerclear-results"));
    CHECK_OK(sc_h5_attr_i64(h, "/", "format_version", 1));
    CHECK_OK(sc_h5_attr_str(h, "/", "model", g_model));
    CHECK_OK(sc_h5_attr_i64(h, "/", "n_layers", L));
    CHECK_OK(sc_h5_attr_i64(h, "/", "hidden_size", C));
    CHECK_OK(sc_h5_attr_str(h, "/", "config", "{\"search\": {\"seed\": 77, \"adapter\": \"shared\", \"rank\": 2}}"));
    CHECK_OK(sc_h5_commit(h));
}

// A hook that keeps every block's output: store (L, T, C), after `inner` when given.
typedef struct { const sc_hook *inner; float *store; } keep_ctx;

static sc_status keep_forward(void *user, sc_backend *be, int block, float *h, int T, int C, const sc_batch *b) {
    keep_ctx *k = user;
    if (k->inner) SC_TRY(k->inner->forward(k->inner->user, be, block, h, T, C, b));
    memcpy(k->store + (size_t)block * T * C, h, sizeof(float) * (size_t)T * C);
    return SC_OK;
}

// All block outputs of one sequence: out (L, T, C).
static void hidden_states(const sc_model *m, const sc_hook *inner, const int32_t *ids, int T, float *out) {
    int ss[2] = {0, T};
    sc_batch b = {.n_seq = 1, .seq_start = ss};
    keep_ctx k = {inner, out};
    sc_hook hk = {.user = &k, .forward = keep_forward};
    float *hidden = malloc(sizeof(float) * (size_t)T * m->cfg.hidden);
    CHECK_OK(sc_forward(m, sc_test_backend(), &b, ids, hidden, NULL, &hk, NULL));
    free(hidden);
}

static void write_ids_json(FILE *f, const int32_t *ids, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? "," : "", ids[i]);
    fputc(']', f);
}

// The extract stage on a run directory, with its own stage context (model from the run).
static sc_status extract_in(const char *run, const char *train, const char *test, const sc_extract_opts *o) {
    sc_stage_opts so;
    sc_stage_opts_default(&so);
    so.run_dir = run;
    so.run_mode = SC_RUN_WRITE;
    so.command = "test";
    so.train_csv = train;
    so.test_csv = test;
    so.need_model = 1;
    so.need_train = o->use_train;
    so.need_test = o->use_test;
    sc_stage *stage = NULL;
    sc_status st = sc_stage_open(&so, &stage);
    if (!st) st = sc_extract_run(stage, o);
    sc_stage_free(stage);
    return st;
}

// --- main -------------------------------------------------------------------------------------

int main(void) {
    const char *tokpath = sc_test_env("SC_TOKENIZER", "");
    if (!tokpath[0] || !sc_file_exists(tokpath)) { printf("test_extract: SKIP (no tokenizer at $SC_TOKENIZER)\n"); return 77; }
    if (!make_fixture(tokpath)) return sc_test_finish("test_extract");
    sc_model *m = NULL;
    CHECK_OK(sc_model_load(g_model, 0, -1, sc_test_backend(), &m));
    if (!m) return sc_test_finish("test_extract");
    sc_backend *be = sc_test_backend();
    const int L = m->cfg.n_layers, C = m->cfg.hidden, V = m->cfg.vocab;
    const size_t LC = (size_t)L * C;
    char results[4300];
    snprintf(results, sizeof results, "%s/results.h5", g_run);
    write_searches(results, L, C, 0);

    // token sequences of different lengths
    int32_t *seqs[N_SEQ];
    int lens[N_SEQ] = {7, 3, 12, 1, 9};
    for (int s = 0; s < N_SEQ; s++) {
        seqs[s] = malloc(sizeof(int32_t) * (size_t)lens[s]);
        for (int t = 0; t < lens[s]; t++) {
            uint32_t r[4];
            sc_philox4x32(5, (uint64_t)s, (uint64_t)t, r);
            seqs[s][t] = (int32_t)(r[0] % 150000u);
        }
    }
    int total = 0;
    for (int s = 0; s < N_SEQ; s++) total += lens[s];

    // adapters from the file
    sc_h5 *h = NULL;
    sc_run *rd = NULL;
    sc_adapter *ads[2] = {NULL, NULL};
    CHECK_OK(sc_run_open(g_run, SC_RUN_READ, NULL, &rd));
    int *list = NULL, n_list = 0;
    CHECK_OK(sc_results_list_searches(rd, &list, &n_list));
    CHECK(n_list == 2 && list[0] == 0 && list[1] == 1);
    free(list);
    CHECK_OK(sc_results_load_adapter(rd, be, 0, L, C, &ads[0]));
    CHECK_OK(sc_results_load_adapter(rd, be, 1, L, C, &ads[1]));
    CHECK_ERR(sc_results_load_adapter(rd, be, 3, L, C, &ads[1]), SC_ERR_ARG, "search 3 is not in the file", "/searches/0003");
    sc_run_close(rd);
    if (!ads[0] || !ads[1]) return sc_test_finish("test_extract");
    CHECK(ads[0]->kind == SC_ADAPTER_SHARED && ads[0]->n_sets == 1 && ads[0]->r == 2 && ads[0]->scaling == 2.0f);
    CHECK(ads[1]->kind == SC_ADAPTER_PER_BLOCK && ads[1]->n_sets == L);

    // 1. a zero direction leaves the logits bitwise unchanged
    {
        int T = lens[2];
        int ss[2] = {0, T};
        sc_batch b = {.n_seq = 1, .seq_start = ss};
        float *hid = malloc(sizeof(float) * (size_t)T * C), *lg0 = malloc(sizeof(float) * (size_t)T * V), *lg1 = malloc(sizeof(float) * (size_t)T * V);
        float *zero = calloc(LC, sizeof(float));
        CHECK_OK(sc_forward(m, be, &b, seqs[2], hid, NULL, NULL, NULL));
        CHECK_OK(sc_head(m, be, hid, NULL, T, NULL, lg0));
        sc_steer_variant sv = {.directions = zero, .scale = 4.0f, .first = 0, .last = -1};
        sc_steer st = {.variants = &sv, .n_variants = 1, .n_layers = L};
        sc_hook hk = sc_steer_hook(&st);
        CHECK_OK(sc_forward(m, be, &b, seqs[2], hid, NULL, &hk, NULL));
        CHECK_OK(sc_head(m, be, hid, NULL, T, NULL, lg1));
        CHECK(memcmp(lg0, lg1, sizeof(float) * (size_t)T * V) == 0);
        free(hid); free(lg0); free(lg1); free(zero);
    }

    // 2. activation-diff and update-mean against brute force (one sequence at a time, float
    //    differences of the kept hidden states, means in double)
    float *dirs_ad = malloc(sizeof(float) * 2 * LC), *dirs_um = malloc(sizeof(float) * 2 * LC);
    int64_t ntok = 0;
    CHECK_OK(sc_directions_compute(m, be, ads, 2, SC_DIRECTION_ACTIVATION_DIFF, (const int32_t *const *)seqs, lens, N_SEQ, 2, 0, dirs_ad, &ntok, NULL, NULL));
    CHECK(ntok == total);
    CHECK_OK(sc_directions_compute(m, be, ads, 2, SC_DIRECTION_UPDATE_MEAN, (const int32_t *const *)seqs, lens, N_SEQ, 3, 0, dirs_um, &ntok, NULL, NULL));
    CHECK(ntok == total);
    for (int a = 0; a < 2; a++) {
        double *bf_ad = calloc(LC, sizeof(double)), *bf_um = calloc(LC, sizeof(double));
        sc_hook ah = sc_adapter_hook(ads[a]);
        for (int s = 0; s < N_SEQ; s++) {
            int T = lens[s];
            float *hb = malloc(sizeof(float) * LC * T), *ha = malloc(sizeof(float) * LC * T), *upd = malloc(sizeof(float) * (size_t)T * C);
            hidden_states(m, NULL, seqs[s], T, hb);
            hidden_states(m, &ah, seqs[s], T, ha);
            for (int l = 0; l < L; l++) {
                CHECK_OK(sc_adapter_apply(ads[a], l, hb + (size_t)l * T * C, T, upd, 0));
                for (int t = 0; t < T; t++)
                    for (int c = 0; c < C; c++) {
                        size_t i = ((size_t)l * T + t) * C + c;
                        bf_ad[(size_t)l * C + c] += (double)(ha[i] - hb[i]);
                        bf_um[(size_t)l * C + c] += upd[(size_t)t * C + c];
                    }
            }
            free(hb); free(ha); free(upd);
        }
        double mx = 0;
        for (size_t i = 0; i < LC; i++) { bf_ad[i] /= total; bf_um[i] /= total; if (fabs(bf_ad[i]) > mx) mx = fabs(bf_ad[i]); }
        double e_ad = sc_test_rel_err(dirs_ad + LC * a, bf_ad, LC), e_um = sc_test_rel_err(dirs_um + LC * a, bf_um, LC);
        printf("adapter %d: activation-diff rel err %.3g (max |d| %.3g), update-mean rel err %.3g\n", a, e_ad, mx, e_um);
        CHECKF(mx > 1e-3, "adapter %d: the direction is (nearly) zero, max %g: the test would prove nothing", a, mx);
        CHECKF(e_ad <= 1e-5, "adapter %d: activation-diff rel err %g > 1e-5", a, e_ad);
        CHECKF(e_um <= 1e-5, "adapter %d: update-mean rel err %g > 1e-5", a, e_um);
        free(bf_ad); free(bf_um);
    }
    // the batch size does not matter beyond rounding
    {
        float *d1 = malloc(sizeof(float) * 2 * LC);
        CHECK_OK(sc_directions_compute(m, be, ads, 2, SC_DIRECTION_ACTIVATION_DIFF, (const int32_t *const *)seqs, lens, N_SEQ, 16, 0, d1, &ntok, NULL, NULL));
        double *ref = malloc(sizeof(double) * 2 * LC);
        for (size_t i = 0; i < 2 * LC; i++) ref[i] = dirs_ad[i];
        CHECK(sc_test_rel_err(d1, ref, 2 * LC) <= 1e-5);
        // one adapter per forward pass against both in one (tagged copies of the batch): the same
        // sums up to the products' rounding (the BLAS may sum a row differently with more rows)
        float *d2 = malloc(sizeof(float) * 2 * LC);
        CHECK_OK(sc_directions_compute(m, be, ads, 2, SC_DIRECTION_ACTIVATION_DIFF, (const int32_t *const *)seqs, lens, N_SEQ, 2, 1, d2, &ntok, NULL, NULL));
        CHECK(ntok == total);
        double e12 = sc_test_rel_err(d2, ref, 2 * LC);
        printf("activation-diff, adapters one per pass vs both in one pass: rel diff %.3g\n", e12);
        CHECKF(e12 <= 1e-6, "activation-diff: one adapter per pass differs from two per pass by %g", e12);
        free(d1); free(d2); free(ref);
    }

    // 3. the PyTorch reference: directions (both modes, both adapter kinds) and steered logits
    if (!sc_test_have_torch()) {
        printf("test_extract: PyTorch reference checks skipped (/usr/bin/python3 lacks torch)\n");
    } else {
        char dir[4300], p[4400];
        snprintf(dir, sizeof dir, "%s/ref", sc_test_tmpdir());
        CHECK_OK(sc_mkdir_p(dir));
        int64_t sA0[2] = {C, 2}, sB0[2] = {2, C}, sA1[3] = {L, C, 2}, sB1[3] = {L, 2, C}, sD[2] = {L, C};
        snprintf(p, sizeof p, "%s/A0.npy", dir); CHECK_OK(sc_npy_write_f32(p, ads[0]->A, 2, sA0));
        snprintf(p, sizeof p, "%s/B0.npy", dir); CHECK_OK(sc_npy_write_f32(p, ads[0]->B, 2, sB0));
        snprintf(p, sizeof p, "%s/A1.npy", dir); CHECK_OK(sc_npy_write_f32(p, ads[1]->A, 3, sA1));
        snprintf(p, sizeof p, "%s/B1.npy", dir); CHECK_OK(sc_npy_write_f32(p, ads[1]->B, 3, sB1));
        snprintf(p, sizeof p, "%s/d1.npy", dir); CHECK_OK(sc_npy_write_f32(p, dirs_ad + LC, 2, sD));
        const float steer_scale = 3.0f;
        snprintf(p, sizeof p, "%s/req.json", dir);
        FILE *f = fopen(p, "w");
        fprintf(f, "{\"model\": \"%s\", \"dtype\": \"float64\", \"tasks\": [\n", g_model);
        const char *names[4] = {"ad0", "ad1", "um0", "um1"};
        for (int k = 0; k < 4; k++) {
            fprintf(f, "{\"op\": \"direction\", \"name\": \"%s\", \"mode\": \"%s\", \"seqs\": [", names[k], k < 2 ? "activation-diff" : "update-mean");
            for (int s = 0; s < N_SEQ; s++) { if (s) fputc(',', f); write_ids_json(f, seqs[s], lens[s]); }
            fprintf(f, "], \"adapter\": {\"kind\": \"%s\", \"A\": \"A%d.npy\", \"B\": \"B%d.npy\", \"scaling\": 2.0}},\n",
                    k % 2 ? "per-block" : "shared", k % 2, k % 2);
        }
        fprintf(f, "{\"op\": \"logits\", \"name\": \"lg\", \"ids\": ");
        write_ids_json(f, seqs[0], lens[0]);
        fprintf(f, ", \"steer\": {\"scale\": %g, \"directions\": \"d1.npy\"}}]}\n", (double)steer_scale);
        fclose(f);
        int rc = sc_test_run_ref(p, dir);
        CHECKF(rc == 0, "the PyTorch reference failed (exit %d)", rc);
        for (int k = 0; rc == 0 && k < 4; k++) {
            sc_npy_array arr;
            snprintf(p, sizeof p, "%s/%s.npy", dir, names[k]);
            CHECK_OK(sc_npy_read(p, &arr));
            CHECK(arr.dtype == SC_NPY_F64 && arr.count == LC);
            if (arr.dtype == SC_NPY_F64 && arr.count == LC) {
                const float *ours = (k < 2 ? dirs_ad : dirs_um) + LC * (k % 2);
                double e = sc_test_rel_err(ours, arr.data, LC);
                printf("reference %s: rel err %.3g\n", names[k], e);
                CHECKF(e <= 1e-4, "%s: rel err %g vs the PyTorch reference > 1e-4", names[k], e);
            }
            sc_npy_free(&arr);
        }
        if (rc == 0) {   // steered logits: the same vector through sc_steer_hook
            int T = lens[0];
            int ss[2] = {0, T};
            sc_batch b = {.n_seq = 1, .seq_start = ss};
            float *hid = malloc(sizeof(float) * (size_t)T * C), *lg = malloc(sizeof(float) * (size_t)T * V);
            sc_steer_variant sv = {.directions = dirs_ad + LC, .scale = steer_scale, .first = 0, .last = -1};
            sc_steer st = {.variants = &sv, .n_variants = 1, .n_layers = L};
            sc_hook hk = sc_steer_hook(&st);
            CHECK_OK(sc_forward(m, be, &b, seqs[0], hid, NULL, &hk, NULL));
            CHECK_OK(sc_head(m, be, hid, NULL, T, NULL, lg));
            sc_npy_array arr;
            snprintf(p, sizeof p, "%s/lg.npy", dir);
            CHECK_OK(sc_npy_read(p, &arr));
            CHECK(arr.dtype == SC_NPY_F64 && arr.count == (size_t)T * V);
            if (arr.dtype == SC_NPY_F64 && arr.count == (size_t)T * V) {
                double e = sc_test_rel_err(lg, arr.data, (size_t)T * V);
                printf("reference steered logits: rel err %.3g\n", e);
                CHECKF(e <= 1e-4, "steered logits: rel err %g vs the PyTorch reference > 1e-4", e);
            }
            sc_npy_free(&arr);
            free(hid); free(lg);
        }
    }

    // 4. the whole stage on the run directory
    sc_extract_opts o;
    sc_extract_opts_default(&o);
    o.max_new_tokens = 5;
    o.batch_seqs = 2;
    o.top_k = 0;       // no top-k / top-p: sc_sample_token would sort the whole vocabulary per token
    o.top_p = 1.0f;
    CHECK_OK(extract_in(g_run, g_train, g_test, &o));
    float *D = NULL;
    int32_t *didx = NULL, *vals = NULL, *pset = NULL, *pindex = NULL;
    int64_t *cnt = NULL, *offs = NULL, n_items = 0, dims[SC_H5_MAX_DIMS];
    int nd = 0;
    CHECK_OK(sc_h5_open(results, 0, &h));
    CHECK_OK(sc_h5_read_f32(h, "/directions", &D, &nd, dims));
    CHECK(nd == 3 && dims[0] == 2 && dims[1] == L && dims[2] == C);
    CHECK_OK(sc_h5_read_i32(h, "/direction_searches", &didx, &nd, dims));
    CHECK(nd == 1 && dims[0] == 2 && didx && didx[0] == 0 && didx[1] == 1);
    CHECK_OK(sc_h5_read_i64(h, "/direction_token_counts", &cnt, &nd, dims));
    CHECK_OK(sc_h5_read_ragged_i32(h, "/extract/continuations", &vals, &offs, &n_items));
    CHECK(n_items == 5);
    CHECK_OK(sc_h5_read_i32(h, "/extract/prompt_set", &pset, &nd, dims));
    CHECK_OK(sc_h5_read_i32(h, "/extract/prompt_index", &pindex, &nd, dims));
    char *mode = NULL, *sets = NULL;
    int64_t seed = 0, mnt = 0;
    CHECK_OK(sc_h5_read_attr_str(h, "/directions", "mode", &mode));
    CHECK_OK(sc_h5_read_attr_str(h, "/directions", "sets", &sets));
    CHECK_OK(sc_h5_read_attr_i64(h, "/directions", "seed", &seed));
    CHECK_OK(sc_h5_read_attr_i64(h, "/directions", "max_new_tokens", &mnt));
    CHECK(mode && !strcmp(mode, "activation-diff") && sets && !strcmp(sets, "train,test"));
    CHECK(seed == 77 && mnt == 5);   // the seed defaults to the run config's search seed
    free(mode); free(sets);
    {   // the means the directions come from: adapted - base = direction, row by row
        float *bm = NULL, *am = NULL;
        int32_t *ms = NULL;
        int nb = 0, na = 0, nm = 0;
        int64_t db[SC_H5_MAX_DIMS], da[SC_H5_MAX_DIMS], dm[SC_H5_MAX_DIMS];
        CHECK_OK(sc_h5_read_f32(h, "/extract/base_means", &bm, &nb, db));
        CHECK_OK(sc_h5_read_f32(h, "/extract/adapted_means", &am, &na, da));
        CHECK_OK(sc_h5_read_i32(h, "/extract/mean_searches", &ms, &nm, dm));
        CHECK(nb == 2 && db[0] == L && db[1] == C && na == 3 && da[0] == 2 && ms && ms[0] == 0 && ms[1] == 1);
        if (bm && am && D) {
            double md = 0, mx = 0;
            for (size_t s = 0; s < 2; s++)
                for (size_t i = 0; i < LC; i++) {
                    md = fmax(md, fabs((double)am[s * LC + i] - bm[i] - D[s * LC + i]));
                    mx = fmax(mx, fabs(D[s * LC + i]));
                }
            CHECKF(md <= 1e-5 * (1 + mx), "adapted - base means differ from the directions by %g", md);
        }
        free(bm); free(am); free(ms);
    }
    sc_h5_close(h);
    if (D && cnt && vals && offs && pset && pindex && n_items == 5) {
        // rebuild the sequences from the CSV prompts and the stored continuations
        sc_tokenizer *tok = NULL;
        CHECK_OK(sc_tok_load(tokpath, &tok));
        const char *prompts[5] = {
            "<|im_start|>user\nTell me about rivers.<|im_end|>\n<|im_start|>assistant\n",
            "<|im_start|>user\nWhat is a prime number?<|im_end|>\n<|im_start|>assistant\n",
            "Write one line about the sea.",
            "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n",
            "Count to three."};
        const int want_set[5] = {0, 0, 0, 1, 1}, want_idx[5] = {0, 1, 2, 0, 1};
        int32_t *full[5];
        int flen[5];
        int64_t tot = 0, gen_tok = 0;
        for (int i = 0; i < 5; i++) {
            CHECK(pset[i] == want_set[i] && pindex[i] == want_idx[i]);
            int32_t *pi = NULL;
            size_t np = 0;
            CHECK_OK(sc_tok_encode(tok, prompts[i], strlen(prompts[i]), &pi, &np));
            int ng = (int)(offs[i + 1] - offs[i]);
            CHECK(ng >= 1 && ng <= 5);
            gen_tok += ng;
            full[i] = malloc(sizeof(int32_t) * (np + (size_t)ng));
            memcpy(full[i], pi, sizeof(int32_t) * np);
            memcpy(full[i] + np, vals + offs[i], sizeof(int32_t) * (size_t)ng);
            flen[i] = (int)np + ng;
            tot += flen[i];
            free(pi);
        }
        CHECK(gen_tok > 5);   // sampling produced continuations (not only stop tokens)
        CHECK(cnt[0] == tot && cnt[1] == tot);
        float *again = malloc(sizeof(float) * 2 * LC);
        CHECK_OK(sc_directions_compute(m, be, ads, 2, SC_DIRECTION_ACTIVATION_DIFF, (const int32_t *const *)full, flen, 5, 2, 1, again, &ntok, NULL, NULL));
        CHECK(ntok == tot);
        CHECK(memcmp(again, D, sizeof(float) * 2 * LC) == 0);
        // exported files: safetensors direction.<l> = row l; the GGUF exists
        for (int s = 0; s < 2; s++) {
            char p[4400];
            snprintf(p, sizeof p, "%s/directions/search_%04d.safetensors", g_run, s);
            sc_safetensors *st = NULL;
            CHECK_OK(sc_st_open_file(p, &st));
            for (int l = 0; st && l < L; l++) {
                char name[32];
                snprintf(name, sizeof name, "direction.%d", l);
                const sc_st_tensor *t = sc_st_find(st, name);
                CHECKF(t && t->dtype == SC_DTYPE_F32 && t->ndim == 1 && t->shape[0] == C &&
                       !memcmp(t->data, D + LC * s + (size_t)l * C, sizeof(float) * C), "%s: %s differs from /directions", p, name);
            }
            if (st) CHECK(sc_st_metadata(st, "steerclear.extract_mode") && !strcmp(sc_st_metadata(st, "steerclear.extract_mode"), "activation-diff"));
            sc_st_close(st);
            snprintf(p, sizeof p, "%s/directions/search_%04d.gguf", g_run, s);
            CHECK(sc_file_exists(p));
        }
        // extracting only search 1 again with the same settings keeps row 0 and reproduces row 1
        int only1 = 1;
        o.searches = &only1;
        o.n_searches = 1;
        o.export_files = 0;
        CHECK_OK(extract_in(g_run, g_train, g_test, &o));
        float *D2 = NULL;
        CHECK_OK(sc_h5_open(results, 0, &h));
        CHECK_OK(sc_h5_read_f32(h, "/directions", &D2, &nd, dims));
        sc_h5_close(h);
        CHECK(D2 && memcmp(D2, D, sizeof(float) * 2 * LC) == 0);
        free(D2);
        // update-mean through the stage equals the library call on the same sequences
        o.mode = SC_DIRECTION_UPDATE_MEAN;
        o.searches = NULL;
        o.n_searches = 0;
        CHECK_OK(extract_in(g_run, g_train, g_test, &o));
        CHECK_OK(sc_h5_open(results, 0, &h));
        CHECK_OK(sc_h5_read_f32(h, "/directions", &D2, &nd, dims));
        sc_h5_close(h);
        CHECK_OK(sc_directions_compute(m, be, ads, 2, SC_DIRECTION_UPDATE_MEAN, (const int32_t *const *)full, flen, 5, 2, 0, again, &ntok, NULL, NULL));
        CHECK(D2 && memcmp(D2, again, sizeof(float) * 2 * LC) == 0);
        free(D2);
        free(again);
        for (int i = 0; i < 5; i++) free(full[i]);
        sc_tok_free(tok);
    }
    free(D); free(didx); free(vals); free(pset); free(pindex); free(cnt); free(offs);

    // 5. a results file written by the real trainer (one 1-step search) extracts too
    {
        char run2[4300];
        snprintf(run2, sizeof run2, "%s/run2", sc_test_tmpdir());
        sc_run *r2 = NULL;
        CHECK_OK(sc_run_open(run2, SC_RUN_WRITE, "test", &r2));
        sc_search_config sc;
        sc_search_config_default(&sc);
        sc.searches = 1;
        sc.adapter = SC_ADAPTER_PER_BLOCK;
        sc.prompts_per_search = 2;
        sc.batch_size = 2;
        sc.max_new_tokens = 4;
        sc.seed = 5;
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "search", sc_search_config_to_json(&sc));
        char *cfg_json = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        sc_tokenizer *tok = NULL;
        sc_dataset train = {0};
        CHECK_OK(sc_tok_load(tokpath, &tok));
        CHECK_OK(sc_dataset_load(g_train, SC_DATASET_TRAIN, &train));
        sc_search_run run = {.model = m, .be = be, .tok = tok, .train = &train, .cfg = &sc, .run = r2, .config_json = cfg_json};
        CHECK_OK(sc_search_run_range(&run, 0, -1));
        sc_run_close(r2);
        sc_extract_opts e = o;
        e.mode = SC_DIRECTION_ACTIVATION_DIFF;
        e.max_new_tokens = 3;
        e.export_files = 0;
        CHECK_OK(extract_in(run2, g_train, g_test, &e));
        char res2[4400];
        snprintf(res2, sizeof res2, "%s/results.h5", run2);
        float *D3 = NULL;
        int64_t seed3 = 0;
        CHECK_OK(sc_h5_open(res2, 0, &h));
        CHECK_OK(sc_h5_read_f32(h, "/directions", &D3, &nd, dims));
        CHECK(nd == 3 && dims[0] == 1 && dims[1] == L && dims[2] == C);
        CHECK_OK(sc_h5_read_attr_i64(h, "/directions", "seed", &seed3));
        CHECK(seed3 == 5);
        sc_h5_close(h);
        double mx = 0;
        for (size_t i = 0; D3 && i < LC; i++) if (fabs(D3[i]) > mx) mx = fabs(D3[i]);
        CHECKF(mx > 0 && isfinite(mx), "the trained adapter's direction is zero or not finite (max %g)", mx);
        free(D3);
        free(cfg_json);
        sc_dataset_free(&train);
        sc_tok_free(tok);
    }

    // 6. error paths
    sc_direction_mode dm;
    CHECK_ERR(sc_direction_mode_parse("sideways", &dm), SC_ERR_ARG, "'sideways'", "activation-diff", "update-mean");
    {
        char empty_run[4300];
        snprintf(empty_run, sizeof empty_run, "%s/no_run", sc_test_tmpdir());
        sc_extract_opts e = o;
        CHECK_ERR(extract_in(empty_run, g_train, g_test, &e), SC_ERR_IO, "no_run/results.h5 does not exist", "steerclear search");
        e = o;
        int five = 5;
        e.searches = &five;
        e.n_searches = 1;
        CHECK_ERR(extract_in(g_run, g_train, g_test, &e), SC_ERR_ARG, "search 5 is not finished", "--searches");
        e = o;
        e.use_train = e.use_test = 0;
        CHECK_ERR(extract_in(g_run, g_train, g_test, &e), SC_ERR_ARG, "no prompt set", "--sets");
        e = o;
        CHECK_ERR(extract_in(g_run, g_train, "/nonexistent/test.csv", &e), SC_ERR_IO, "/nonexistent/test.csv");
        int z[1] = {0};
        const int32_t *zs[1] = {seqs[0]};
        float d[1];
        CHECK_ERR(sc_directions_compute(m, be, ads, 1, SC_DIRECTION_ACTIVATION_DIFF, zs, z, 1, 2, 0, d, &ntok, NULL, NULL), SC_ERR_ARG, "sequence 0 is empty");
        // an adapter stored with the wrong shape
        char bad[4300], badres[4400];
        snprintf(bad, sizeof bad, "%s/badrun", sc_test_tmpdir());
        snprintf(badres, sizeof badres, "%s/results.h5", bad);
        sc_run *br = NULL;
        CHECK_OK(sc_run_open(bad, SC_RUN_WRITE, "test", &br));
        write_searches(badres, L, C, 1);
        sc_adapter *x = NULL;
        CHECK_ERR(sc_results_load_adapter(br, be, 0, L, C, &x), SC_ERR_SHAPE, "badrun/results.h5", "/searches/0000/adapter/A", "[1,65,2]", "expected [1,64,2]");
        sc_run_close(br);
    }
    // the command line
    {
        char cmd[24000], errf[4300];
        snprintf(errf, sizeof errf, "%s/cli.err", sc_test_tmpdir());
        const char *bin = sc_test_env("SC_BIN", "");
        if (bin[0]) {
            snprintf(cmd, sizeof cmd, "'%s' extract --run '%s' --mode sideways 2> '%s'", bin, g_run, errf);
            CHECK(system(cmd) != 0);
            char *txt = NULL;
            size_t n = 0;
            CHECK_OK(sc_read_file(errf, &txt, &n));
            CHECK(txt && strstr(txt, "steerclear extract: direction mode 'sideways'"));
            free(txt);
            snprintf(cmd, sizeof cmd, "'%s' extract --searches 3-1 --run '%s' 2> '%s'", bin, g_run, errf);
            CHECK(system(cmd) != 0);
            CHECK_OK(sc_read_file(errf, &txt, &n));
            CHECK(txt && strstr(txt, "--searches '3-1' is not a list"));
            free(txt);
            snprintf(cmd, sizeof cmd, "'%s' extract --run '%s' --train '%s' --test '%s' --sets test --max-new-tokens 2 --top-k 0 --top-p 1 --searches 0 --no-export > /dev/null 2> '%s'",
                     bin, g_run, g_train, g_test, errf);
            CHECK(system(cmd) == 0);
            CHECK_OK(sc_h5_open(results, 0, &h));
            char *sets2 = NULL;
            CHECK_OK(sc_h5_read_attr_str(h, "/directions", "sets", &sets2));
            CHECK(sets2 && !strcmp(sets2, "test"));
            free(sets2);
            sc_h5_close(h);
        }
    }

    for (int s = 0; s < N_SEQ; s++) free(seqs[s]);
    free(dirs_ad); free(dirs_um);
    sc_adapter_free(ads[0]); sc_adapter_free(ads[1]);
    sc_model_free(m);
    return sc_test_finish("test_extract");
}
