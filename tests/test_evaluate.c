// test_evaluate.c — the evaluation stage on a tiny random model: many variants in one batch give
// exactly the texts of each variant alone (and of plain sc_generate with the adapter or steering
// hook), the JSON files of a run (names, entries, fields, base = original_completion), the
// command line and the error paths.
#include "testutil.h"
#include "steerclear/evaluate.h"
#include "steerclear/extract.h"
#include "steerclear/h5.h"
#include "steerclear/make_model.h"
#include "steerclear/rng.h"
#include "steerclear/steer.h"
#include "steerclear/tok.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#define N_P 3
#define N_V 6

static char g_model[4200], g_run[4200], g_test[4200];
static const char *g_prompt_col[N_P] = {"Name a colour.", "Count to three.", "Say hello"};
static const char *g_full[N_P] = {
    "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n",
    "Count to three.",
    "<|im_start|>user\nSay hello<|im_end|>\n<|im_start|>assistant\n"};

// Two searches (0 shared, 1 per-block) and /directions with search 1 not extracted (count 0).
static void write_results(const char *path, int L, int C, const float *D, int64_t bad_C) {
    sc_h5 *h = NULL;
    CHECK_OK(sc_h5_begin_new(path, &h));
    if (!h) return;
    for (int s = 0; s < 2; s++) {
        int sets = s == 0 ? 1 : L, r = 2;
        size_t n = (size_t)sets * C * r;
        float *A = malloc(sizeof(float) * n), *B = malloc(sizeof(float) * n);
        sc_rng_normal(300 + s, 1, 0, A, n);
        sc_rng_normal(400 + s, 2, 0, B, n);
        char grp[64], obj[96];
        snprintf(grp, sizeof grp, "/searches/%04d", s);
        int64_t dA[3] = {sets, C, r}, dB[3] = {sets, r, C};
        snprintf(obj, sizeof obj, "%s/adapter/A", grp);
        CHECK_OK(sc_h5_write_f32(h, obj, 3, dA, A));
        snprintf(obj, sizeof obj, "%s/adapter/B", grp);
        CHECK_OK(sc_h5_write_f32(h, obj, 3, dB, B));
        CHECK_OK(sc_h5_attr_str(h, grp, "adapter", s == 0 ? "shared" : "per-block"));
        CHECK_OK(sc_h5_attr_i64(h, grp, "rank", r));
        CHECK_OK(sc_h5_attr_f64(h, grp, "scaling", 2.0));
        free(A); free(B);
    }
    int64_t d3[3] = {2, L, bad_C ? bad_C : C}, d1[1] = {2};
    int32_t idx[2] = {0, 1};
    int64_t cnt[2] = {100, 0};
    float *Dw = calloc((size_t)2 * L * (bad_C ? bad_C : C), sizeof(float));
    if (!bad_C) memcpy(Dw, D, sizeof(float) * 2 * (size_t)L * C);
    CHECK_OK(sc_h5_write_f32(h, "/directions", 3, d3, Dw));
    CHECK_OK(sc_h5_write_i32(h, "/direction_searches", 1, d1, idx));
    CHECK_OK(sc_h5_write_i64(h, "/direction_token_counts", 1, d1, cnt));
    free(Dw);
    CHECK_OK(sc_h5_attr_str(h, "/", "format", "steerclear-results"));
    CHECK_OK(sc_h5_attr_i64(h, "/", "format_version", 1));
    CHECK_OK(sc_h5_attr_str(h, "/", "model", g_model));
    CHECK_OK(sc_h5_attr_i64(h, "/", "n_layers", L));
    CHECK_OK(sc_h5_attr_i64(h, "/", "hidden_size", C));
    CHECK_OK(sc_h5_commit(h));
}

// The evaluate stage on a run directory, with its own stage context (model from the run).
static sc_status evaluate_in(const char *run, const char *test, const sc_evaluate_opts *o) {
    sc_stage_opts so;
    sc_stage_opts_default(&so);
    so.run_dir = run;
    so.test_csv = test;
    so.run_mode = SC_RUN_WRITE;
    so.command = "test";
    so.need_model = so.need_test = 1;
    sc_stage *stage = NULL;
    sc_status st = sc_stage_open(&so, &stage);
    if (!st) st = sc_evaluate_run(stage, o);
    sc_stage_free(stage);
    return st;
}

static int same_out(const sc_gen_out *a, const sc_gen_out *b) {
    return a->n == b->n && a->stopped == b->stopped && !memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)a->n);
}

static void free_outs(sc_gen_out *o, int n) {
    for (int i = 0; i < n; i++) free(o[i].ids);
}

static cJSON *load_json(const char *path) {
    char *text = NULL;
    size_t n = 0;
    if (sc_read_file(path, &text, &n)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int main(void) {
    const char *tokpath = sc_test_env("SC_TOKENIZER", "");
    if (!tokpath[0] || !sc_file_exists(tokpath)) { printf("test_evaluate: SKIP (no tokenizer at $SC_TOKENIZER)\n"); return 77; }
    const char *tmp = sc_test_tmpdir();
    snprintf(g_model, sizeof g_model, "%s/model", tmp);
    snprintf(g_run, sizeof g_run, "%s/run", tmp);
    snprintf(g_test, sizeof g_test, "%s/test.csv", tmp);
    sc_make_model_opts mo;
    memset(&mo, 0, sizeof mo);
    CHECK_OK(sc_make_model_preset("tiny", &mo));
    mo.cfg.hidden = 64;
    mo.cfg.n_layers = 3;
    mo.dtype = SC_DTYPE_F32;
    mo.seed = 21;
    mo.tokenizer = tokpath;
    CHECK_OK(sc_make_model(g_model, &mo));
    CHECK_OK(sc_mkdir_p(g_run));
    char csv[2048];
    int at = snprintf(csv, sizeof csv, "category,prompt,full_prompt\n");
    for (int p = 0; p < N_P; p++) at += snprintf(csv + at, sizeof csv - (size_t)at, "c%d,%s,\"%s\"\n", p, g_prompt_col[p], g_full[p]);
    sc_test_write(g_test, csv, (size_t)at);

    sc_backend *be = sc_test_backend();
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    CHECK_OK(sc_model_load(g_model, 0, -1, sc_test_backend(), &m));
    CHECK_OK(sc_tok_load(tokpath, &tok));
    if (!m || !tok) return sc_test_finish("test_evaluate");
    const int L = m->cfg.n_layers, C = m->cfg.hidden;
    const size_t LC = (size_t)L * C;
    float *D = malloc(sizeof(float) * 2 * LC);
    sc_rng_normal(500, 3, 0, D, 2 * LC);
    for (size_t i = 0; i < 2 * LC; i++) D[i] *= 0.5f;
    char results[4300];
    snprintf(results, sizeof results, "%s/results.h5", g_run);
    write_results(results, L, C, D, 0);
    sc_adapter *ads[2] = {NULL, NULL};
    sc_run *rd = NULL;
    CHECK_OK(sc_run_open(g_run, SC_RUN_READ, NULL, &rd));
    CHECK_OK(sc_results_load_adapter(rd, be, 0, L, C, &ads[0]));
    CHECK_OK(sc_results_load_adapter(rd, be, 1, L, C, &ads[1]));
    sc_run_close(rd);
    if (!ads[0] || !ads[1]) return sc_test_finish("test_evaluate");

    int32_t *pt[N_P];
    int pl[N_P];
    for (int p = 0; p < N_P; p++) {
        size_t n = 0;
        CHECK_OK(sc_tok_encode(tok, g_full[p], strlen(g_full[p]), &pt[p], &n));
        pl[p] = (int)n;
    }
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_default(&so);
    sc_sample_opts_for_tokenizer(&so, tok, stops);   // as the evaluate stage does
    so.max_new_tokens = 6;
    so.temperature = 0.7f;
    so.top_k = 0;
    so.top_p = 1.0f;
    so.seed = 9;

    // 1. all variants in one batch == each variant alone == chunks crossing variants
    const sc_eval_variant var[N_V] = {
        {.kind = SC_EVAL_BASE},
        {.kind = SC_EVAL_ADAPTER, .adapter = ads[0]},
        {.kind = SC_EVAL_DIRECTION, .directions = D, .scale = 2.0f},
        {.kind = SC_EVAL_ADAPTER, .adapter = ads[1]},
        {.kind = SC_EVAL_DIRECTION, .directions = D + LC, .scale = 0.5f},
        {.kind = SC_EVAL_DIRECTION, .directions = D, .scale = -4.0f},
    };
    const uint64_t streams[N_P] = {0, 1, 2};
    sc_gen_out all[N_V * N_P], chunked[N_V * N_P], alone[N_P];
    CHECK_OK(sc_evaluate_generate(m, be, var, N_V, (const int32_t *const *)pt, pl, N_P, streams, &so, 64, all));
    CHECK_OK(sc_evaluate_generate(m, be, var, N_V, (const int32_t *const *)pt, pl, N_P, NULL, &so, 4, chunked));
    int differs_from_base = 0;
    for (int v = 0; v < N_V; v++) {
        CHECK_OK(sc_evaluate_generate(m, be, &var[v], 1, (const int32_t *const *)pt, pl, N_P, streams, &so, 64, alone));
        for (int p = 0; p < N_P; p++) {
            CHECKF(same_out(&all[v * N_P + p], &alone[p]), "variant %d prompt %d: batched with all variants != alone", v, p);
            CHECKF(same_out(&all[v * N_P + p], &chunked[v * N_P + p]), "variant %d prompt %d: one batch != chunks of 4", v, p);
            CHECK(all[v * N_P + p].n >= 1 && all[v * N_P + p].n <= so.max_new_tokens);
            if (v > 0 && !same_out(&all[v * N_P + p], &all[p])) differs_from_base++;
        }
        // independent of the tagged hook: plain sc_generate with the variant's own hook
        sc_gen_out ref[N_P];
        sc_steer_variant sv = {.directions = var[v].directions, .scale = var[v].scale, .first = 0, .last = -1};
        sc_steer st = {.variants = &sv, .n_variants = 1, .n_layers = L};
        sc_hook hk = var[v].kind == SC_EVAL_ADAPTER ? sc_adapter_hook(var[v].adapter) : sc_steer_hook(&st);
        CHECK_OK(sc_generate(m, be, (const int32_t *const *)pt, pl, N_P, streams, NULL, &so, var[v].kind == SC_EVAL_BASE ? NULL : &hk, ref));
        for (int p = 0; p < N_P; p++) CHECKF(same_out(&all[v * N_P + p], &ref[p]), "variant %d prompt %d: differs from sc_generate with its own hook", v, p);
        free_outs(ref, N_P);
        free_outs(alone, N_P);
    }
    CHECKF(differs_from_base >= 3, "only %d steered outputs differ from the base model's", differs_from_base);
    free_outs(chunked, N_V * N_P);

    // 2. the stage: files, entries, fields
    sc_evaluate_opts o;
    sc_evaluate_opts_default(&o);
    const float scales[2] = {2.0f, 0.5f};
    o.scales = scales;
    o.n_scales = 2;
    o.max_new_tokens = 6;
    o.seed = 9;
    o.seed_set = 1;
    o.limit = 2;
    o.top_k = 0;
    o.top_p = 1.0f;
    o.batch_seqs = 5;
    CHECK_OK(evaluate_in(g_run, g_test, &o));
    const char *files[5] = {"base", "adapter_0000", "adapter_0001", "direction_0000_scale_2", "direction_0000_scale_0.5"};
    const int file_var[5] = {0, 1, 3, 2, -1};   // index into `all` (same seed, streams and prompts)
    char path[4400];
    cJSON *base = NULL;
    for (int f = 0; f < 5; f++) {
        snprintf(path, sizeof path, "%s/eval/%s.json", g_run, files[f]);
        cJSON *j = load_json(path);
        CHECKF(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 2, "%s: not an array of 2 entries", path);
        if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2) { cJSON_Delete(j); continue; }
        if (f == 0) base = j;
        for (int i = 0; i < 2; i++) {
            const cJSON *e = cJSON_GetArrayItem(j, i);
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "prompt_id");
            CHECK(cJSON_IsNumber(id) && id->valueint == i);
            CHECK(cJSON_GetArraySize(e) == 4);
            const char *prompt = jstr(e, "prompt"), *orig = jstr(e, "original_completion"), *out = jstr(e, "output");
            CHECK(prompt && !strcmp(prompt, g_prompt_col[i]));
            CHECK(orig && out);
            const char *base_out = jstr(cJSON_GetArrayItem(base, i), "output");
            CHECKF(orig && base_out && !strcmp(orig, base_out), "%s entry %d: original_completion is not base.json's output", files[f], i);
            if (f == 0) CHECK(orig && out && !strcmp(orig, out));
            if (file_var[f] >= 0 && out) {   // the text is the decoded batched continuation
                char *want = NULL;
                const sc_gen_out *g = &all[file_var[f] * N_P + i];
                for (int k = 0; k < g->n; k++) CHECK(g->ids[k] < sc_tok_vocab_size(tok));   // only decodable ids are drawn
                CHECK_OK(sc_tok_decode(tok, g->ids, (size_t)g->n, 1, &want));
                CHECKF(want && !strcmp(want, out), "%s entry %d: '%s' != '%s'", files[f], i, out, want ? want : "");
                free(want);
            }
        }
        if (f) cJSON_Delete(j);
    }
    cJSON_Delete(base);
    snprintf(path, sizeof path, "%s/eval/direction_0001_scale_2.json", g_run);
    CHECK(!sc_file_exists(path));   // search 1 has no extracted direction (token count 0)
    char sname[32];
    sc_evaluate_scale_name(2.0f, sname, sizeof sname); CHECK(!strcmp(sname, "2"));
    sc_evaluate_scale_name(0.5f, sname, sizeof sname); CHECK(!strcmp(sname, "0.5"));
    sc_evaluate_scale_name(-4.0f, sname, sizeof sname); CHECK(!strcmp(sname, "-4"));

    // 3. error paths
    {
        sc_eval_hook *eh = NULL;
        CHECK_OK(sc_eval_hook_create(var, N_V, L, &eh));
        sc_hook hk = sc_eval_hook_get(eh);
        int ss[2] = {0, 1}, tag[1] = {7};
        sc_batch b = {.n_seq = 1, .seq_start = ss, .tag = tag};
        float hrow[64] = {0};
        CHECK_ERR(hk.forward(hk.user, be, 0, hrow, 1, C, &b), SC_ERR_INTERNAL, "variant tag 7", "6 variants");
        sc_eval_hook_free(eh);
        const sc_eval_variant nodir = {.kind = SC_EVAL_DIRECTION, .scale = 1.0f};
        CHECK_ERR(sc_eval_hook_create(&nodir, 1, L, &eh), SC_ERR_ARG, "variant 0 is a direction without a vector");
        sc_gen_out g[1];
        CHECK_ERR(sc_evaluate_generate(m, be, var, 1, (const int32_t *const *)pt, pl, 1, NULL, &so, 0, g), SC_ERR_ARG, "batch of 0 sequences");
        sc_evaluate_opts e = o;
        char norun[4300];
        snprintf(norun, sizeof norun, "%s/none", tmp);
        CHECK_ERR(evaluate_in(norun, g_test, &e), SC_ERR_IO, "none/results.h5 does not exist");
        e = o;
        int four = 4;
        e.searches = &four;
        e.n_searches = 1;
        CHECK_ERR(evaluate_in(g_run, g_test, &e), SC_ERR_ARG, "search 4 is not finished");
        e = o;
        CHECK_ERR(evaluate_in(g_run, "/nonexistent/t.csv", &e), SC_ERR_IO, "/nonexistent/t.csv");
        char badrun[4300], badres[4400];
        snprintf(badrun, sizeof badrun, "%s/badrun", tmp);
        snprintf(badres, sizeof badres, "%s/results.h5", badrun);
        CHECK_OK(sc_mkdir_p(badrun));
        write_results(badres, L, C, D, C + 2);
        e = o;
        CHECK_ERR(evaluate_in(badrun, g_test, &e), SC_ERR_SHAPE, "/directions has shape [2,3,66]", "expected [S,3,64]", "steerclear extract");
    }

    // 4. the command line
    const char *bin = sc_test_env("SC_BIN", "");
    if (bin[0]) {
        char cmd[24000], errf[4300], *txt = NULL;
        size_t n = 0;
        snprintf(errf, sizeof errf, "%s/cli.err", tmp);
        snprintf(cmd, sizeof cmd, "'%s' evaluate --run '%s' --scales 2,x 2> '%s'", bin, g_run, errf);
        CHECK(system(cmd) != 0);
        CHECK_OK(sc_read_file(errf, &txt, &n));
        CHECK(txt && strstr(txt, "steerclear evaluate: --scales '2,x' is not a comma-separated list"));
        free(txt);
        snprintf(cmd, sizeof cmd, "'%s' evaluate --test '%s' 2> '%s'", bin, g_test, errf);
        CHECK(system(cmd) != 0);
        CHECK_OK(sc_read_file(errf, &txt, &n));
        CHECK(txt && strstr(txt, "--run RUN_DIR is required"));
        free(txt);
        snprintf(cmd, sizeof cmd, "'%s' evaluate --run '%s' --test '%s' --limit 1 --max-new-tokens 2 --top-k 0 --top-p 1 --no-adapters --scales 1.5 --searches 0 > /dev/null 2> '%s'",
                 bin, g_run, g_test, errf);
        CHECK(system(cmd) == 0);
        snprintf(path, sizeof path, "%s/eval/direction_0000_scale_1.5.json", g_run);
        cJSON *j = load_json(path);
        CHECK(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1);
        cJSON_Delete(j);
    }

    free_outs(all, N_V * N_P);
    for (int p = 0; p < N_P; p++) free(pt[p]);
    free(D);
    sc_adapter_free(ads[0]); sc_adapter_free(ads[1]);
    sc_tok_free(tok);
    sc_model_free(m);
    return sc_test_finish("test_evaluate");
}
