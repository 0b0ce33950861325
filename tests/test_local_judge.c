// test_local_judge.c — the `local` judge provider (src/judge/local.c) on tiny random models, and
// the answer checks it shares with the HTTP providers (judge_prompts.h):
//  1. parsing without a model: good, fenced, chatty (object inside text), broken and
//     schema-breaking answers for themes and verdicts; the object span helper;
//  2. construction errors name the directory and the fix (no directory, a missing one, one
//     without tokenizer.json, a chat template that is not ChatML); names come from the
//     directory or config's "_name_or_path";
//  3. themes: a random model answers garbage, so every batch fails with a message about JSON and
//     the repair turn, after exactly two answers per batch (counted from the provider's debug
//     log); a batch whose prompt is longer than the model's context fails alone, unasked, and
//     so does one holding invalid UTF-8; compare likewise;
//  4. embeddings: unit vectors of the embedding model's hidden size, equal to a host reference
//     (final RMSNorm of sc_forward's rows, mean, L2 norm); identical texts give bitwise equal
//     vectors within a call, across calls and whatever the other texts of the call; an empty
//     text is an error naming its index; a separate embedding model directory is used for
//     embeddings only.
#include "testutil.h"
#include "steerclear/engine.h"
#include "steerclear/judge.h"
#include "steerclear/judge_prompts.h"
#include "steerclear/make_model.h"
#include "steerclear/tok.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

// ---------------------------------------------------------------------------------------
// 1. Parsing

static void test_parse(void) {
    sc_judge_item it[3] = {{.prompt_id = 4}, {.prompt_id = 9}, {.prompt_id = 12}};
    sc_judge_batch b = {.items = it, .n = 3};
    sc_judge_theme t;
    CHECK_OK(sc_judge_parse_theme("{\"reasoning\":\"r\",\"theme\":\"replies in French\",\"prompts\":[12,4]}", &b, "unit", &t));
    CHECK(t.status == SC_OK && t.theme && !strcmp(t.theme, "replies in French") && t.n_prompts == 2 && t.prompts[0] == 4 && t.prompts[1] == 12);
    CHECK(t.reasoning && !strcmp(t.reasoning, "r"));
    sc_judge_theme_free(&t);
    CHECK_OK(sc_judge_parse_theme("  ```json\n{\"reasoning\":\"r\",\"theme\":null,\"prompts\":[]}\n```\n", &b, "unit", &t));
    CHECK(t.theme == NULL && t.n_prompts == 0);
    sc_judge_theme_free(&t);
    CHECK_ERR(sc_judge_parse_theme("The theme is French.", &b, "unit", &t), SC_ERR_FORMAT, "not valid JSON", "The theme is French.");
    CHECK(t.theme == NULL && t.prompts == NULL && t.reasoning == NULL);
    CHECK_ERR(sc_judge_parse_theme("{\"reasoning\":\"r\",\"theme\":\"x\",\"prompts\":[4", &b, "unit", &t), SC_ERR_FORMAT, "not valid JSON");
    CHECK_ERR(sc_judge_parse_theme("{\"reasoning\":\"r\",\"theme\":3,\"prompts\":[]}", &b, "unit", &t), SC_ERR_FORMAT, "neither a string nor null");
    CHECK_ERR(sc_judge_parse_theme("{\"theme\":\"x\",\"prompts\":[]}", &b, "unit", &t), SC_ERR_FORMAT, "\"reasoning\" is missing");
    CHECK_ERR(sc_judge_parse_theme("", &b, "unit", &t), SC_ERR_FORMAT, "not valid JSON");
    // a chatty answer: the object inside it parses, the whole text does not
    const char *chatty = "Sure! Here is my answer:\n{\"reasoning\":\"r\",\"theme\":\"ocean\",\"prompts\":[9]}\nHope this helps.";
    CHECK_ERR(sc_judge_parse_theme(chatty, &b, "unit", &t), SC_ERR_FORMAT, "not valid JSON");
    size_t len = 0;
    const char *obj = sc_judge_answer_object(chatty, &len);
    CHECK(obj && len > 2 && obj[0] == '{' && obj[len - 1] == '}');
    if (obj) {
        char buf[256];
        snprintf(buf, sizeof buf, "%.*s", (int)len, obj);
        CHECK_OK(sc_judge_parse_theme(buf, &b, "unit", &t));
        CHECK(t.theme && !strcmp(t.theme, "ocean") && t.n_prompts == 1 && t.prompts[0] == 9);
        sc_judge_theme_free(&t);
    }
    CHECK(sc_judge_answer_object("no braces", &len) == NULL && len == 0);
    CHECK(sc_judge_answer_object("} backwards {", &len) == NULL);

    sc_judge_verdict v;
    CHECK_OK(sc_judge_parse_verdict("```\n{\"reasoning\":\"r\",\"more\":\"A\"}\n```", &v));
    CHECK(v.status == SC_OK && v.winner == 0);
    CHECK_ERR(sc_judge_parse_verdict("{\"reasoning\":\"r\"}", &v), SC_ERR_FORMAT, "\"more\" is missing");
    CHECK_ERR(sc_judge_parse_verdict("B", &v), SC_ERR_FORMAT, "not valid JSON");

    // the prompts render with the batch in them, through the shared loader
    sc_judge_prompts pr;
    CHECK_OK(sc_judge_prompts_load(NULL, &pr));
    sc_judge_item items[1] = {{.prompt_id = 7, .prompt = "P<|im_end|>", .original = "O", .output = "X"}};
    sc_judge_batch one = {.items = items, .n = 1};
    char *sys = NULL, *usr = NULL;
    CHECK_OK(sc_judge_prompts_theme(&pr, &one, &sys, &usr));
    CHECK(sys && usr && strstr(usr, "<item id=\"7\">") && strstr(usr, "P<|im_end|>") && !strstr(usr, "{{items}}"));
    free(sys); free(usr);
    sc_judge_pair pair = {.prompt = "q", .a = "first", .b = "second", .trait = "kind"};
    CHECK_OK(sc_judge_prompts_compare(&pr, &pair, &sys, &usr));
    CHECK(usr && strstr(usr, "first") && strstr(usr, "second") && strstr(usr, "kind") && !strstr(usr, "{{"));
    free(sys); free(usr);
    sc_judge_prompts_release(&pr);
    CHECK_ERR(sc_judge_prompts_load("/nonexistent-prompts", &pr), SC_ERR_IO, "/nonexistent-prompts/judge_theme.txt");

    // an excerpt never ends inside a UTF-8 character (it is quoted back to the model in the
    // repair turn, and the tokenizer refuses invalid UTF-8)
    char ex[64];
    sc_judge_excerpt("ab\xc3\xa9\xc3\xa9\xc3\xa9", 5, ex, sizeof ex);
    CHECKF(!strcmp(ex, "ab\xc3\xa9..."), "excerpt '%s'", ex);
    sc_judge_excerpt("ab\xe4\xb8\xad\xe6\x96\x87", 4, ex, sizeof ex);
    CHECKF(!strcmp(ex, "ab..."), "excerpt '%s'", ex);
    sc_judge_excerpt("abcdef", 3, ex, sizeof ex);
    CHECK(!strcmp(ex, "abc..."));
}

// ---------------------------------------------------------------------------------------
// A log sink counting the provider's per-answer debug lines ("local themes: batch 0 (...):
// answer 1: ...").

enum { MAX_COUNTED = 8 };
static int g_answers[2][MAX_COUNTED];   // [themes, compare][batch or pair]

static void count_log(sc_log_level level, const char *msg, void *user) {
    (void)user;
    int kind = -1, i = -1, a = 0;
    const char *p;
    if ((p = strstr(msg, "local themes: batch "))) { kind = 0; i = atoi(p + 20); }
    else if ((p = strstr(msg, "local compare: pair "))) { kind = 1; i = atoi(p + 20); }
    const char *ans = strstr(msg, ": answer ");
    if (kind >= 0 && ans && sscanf(ans, ": answer %d", &a) == 1 && i >= 0 && i < MAX_COUNTED) g_answers[kind][i]++;
    if (level >= SC_LOG_WARN || getenv("SC_TEST_VERBOSE")) fprintf(stderr, "%s\n", msg);
}

static char *repeat(const char *word, int n) {
    size_t wl = strlen(word);
    char *s = malloc(wl * (size_t)n + 1);
    for (int i = 0; i < n; i++) memcpy(s + wl * (size_t)i, word, wl);
    s[wl * (size_t)n] = '\0';
    return s;
}

// ---------------------------------------------------------------------------------------
// 4. Embedding reference: sc_forward, then the final RMSNorm, mean and L2 norm in double on the host.

static void reference_embedding(const char *dir, const char *tokpath, const char *text, double *out, int *C_out) {
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    *C_out = 0;
    CHECK_OK(sc_model_load(dir, 0, -1, sc_test_backend(), &m));
    CHECK_OK(sc_tok_load(tokpath, &tok));
    int32_t *ids = NULL;
    size_t n = 0;
    if (m && tok) CHECK_OK(sc_tok_encode(tok, text, strlen(text), &ids, &n));
    if (m && tok && n > 0) {
        const int C = m->cfg.hidden, T = (int)n;
        float *h = malloc(sizeof *h * (size_t)T * C);
        int ss[2] = {0, T};
        sc_batch b = {.n_seq = 1, .seq_start = ss};
        CHECK_OK(sc_forward(m, sc_test_backend(), &b, ids, h, NULL, NULL, NULL));
        for (int c = 0; c < C; c++) out[c] = 0;
        for (int t = 0; t < T; t++) {
            double ss2 = 0;
            for (int c = 0; c < C; c++) ss2 += (double)h[t * C + c] * h[t * C + c];
            const double r = 1.0 / sqrt(ss2 / C + m->cfg.rms_eps);
            for (int c = 0; c < C; c++) out[c] += m->final_norm[c] * h[t * C + c] * r / T;
        }
        double nn = 0;
        for (int c = 0; c < C; c++) nn += out[c] * out[c];
        for (int c = 0; c < C; c++) out[c] /= sqrt(nn);
        *C_out = C;
        free(h);
    }
    free(ids);
    sc_tok_free(tok);
    sc_model_free(m);
}

static void test_embed(sc_provider *p, const char *dir, const char *tokpath, int C) {
    const char *texts[] = {"hello world", "The cat sat on the mat.", "hello world", "é 中文 😀"};
    float *v = NULL;
    int dim = 0;
    CHECK_OK(p->op->embed(p, texts, 4, &v, &dim));
    CHECK(v && dim == C);
    if (!v || dim != C) return;
    for (int i = 0; i < 4; i++) {
        double nn = 0;
        for (int c = 0; c < C; c++) nn += (double)v[i * C + c] * v[i * C + c];
        CHECK_NEAR(sqrt(nn), 1.0, 1e-5);
    }
    CHECK(!memcmp(v, v + 2 * C, sizeof *v * (size_t)C));   // identical text: cosine 1, bitwise
    CHECK(memcmp(v, v + C, sizeof *v * (size_t)C));
    double ref[512];
    int rc = 0;
    reference_embedding(dir, tokpath, texts[1], ref, &rc);
    CHECK(rc == C);
    if (rc == C) {
        double dmax = 0;
        for (int c = 0; c < C; c++) dmax = fmax(dmax, fabs(v[C + c] - ref[c]));
        CHECKF(dmax < 1e-5, "the embedding differs from the host reference by %.3g", dmax);
    }
    // the same text in another call, alone or among other texts: the same bits
    const char *one[] = {"The cat sat on the mat."};
    const char *mixed[] = {"something else entirely, and longer than the rest of these texts", "hello world", "x",
                           "The cat sat on the mat.", "é 中文 😀"};
    float *w = NULL, *u = NULL;
    int dw = 0, du = 0;
    CHECK_OK(p->op->embed(p, one, 1, &w, &dw));
    CHECK_OK(p->op->embed(p, mixed, 5, &u, &du));
    CHECK(w && dw == C && !memcmp(w, v + C, sizeof *v * (size_t)C));
    CHECK(u && du == C && !memcmp(u + C, v, sizeof *v * (size_t)C) && !memcmp(u + 3 * C, v + C, sizeof *v * (size_t)C) &&
          !memcmp(u + 4 * C, v + 3 * C, sizeof *v * (size_t)C));
    free(w); free(u); free(v);
    const char *bad[] = {"fine", ""};
    float *z = (float *)1;
    CHECK_ERR(p->op->embed(p, bad, 2, &z, &dim), SC_ERR_ARG, "text 1 is empty");
    CHECK(z == NULL && dim == 0);
}

// ---------------------------------------------------------------------------------------

static void make(const char *dir, const char *tokpath, int hidden, int max_position, uint64_t seed) {
    sc_make_model_opts mo;
    memset(&mo, 0, sizeof mo);
    CHECK_OK(sc_make_model_preset("tiny", &mo));
    mo.cfg.hidden = hidden;
    mo.cfg.head_dim = hidden / mo.cfg.n_heads;
    mo.cfg.n_layers = 2;
    mo.cfg.max_position = max_position;
    mo.dtype = SC_DTYPE_BF16;   // decoding reads the 152k-row tied LM head every step: half the bytes of F32
    mo.seed = seed;
    mo.tokenizer = tokpath;
    CHECK_OK(sc_make_model(dir, &mo));
}

int main(void) {
    const char *tokpath = sc_test_env("SC_TOKENIZER", "");
    if (!tokpath[0] || !sc_file_exists(tokpath)) { printf("test_local_judge: SKIP (no tokenizer at $SC_TOKENIZER)\n"); return 77; }
    sc_log_set(count_log, NULL);
    sc_log_set_level(SC_LOG_DEBUG);
    double t0 = sc_now_seconds();
    test_parse();

    // 2. construction errors
    const char *tmp = sc_test_tmpdir();
    char dir[4200], edir[4200], notok[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/judge-model", tmp);
    snprintf(edir, sizeof edir, "%s/embedder", tmp);
    snprintf(notok, sizeof notok, "%s/no-tokenizer", tmp);
    sc_provider *p = NULL;
    CHECK_ERR(sc_provider_local(NULL, NULL, &p), SC_ERR_ARG, "judge.local_model");
    CHECK_ERR(sc_provider_local("/nonexistent/model", NULL, &p), SC_ERR_ARG, "/nonexistent/model", "does not exist");
    CHECK_OK(sc_mkdir_p(notok));
    CHECK_ERR(sc_provider_local(notok, NULL, &p), SC_ERR_ARG, "no-tokenizer has no tokenizer.json", "download it");
    CHECK(p == NULL);

    // models: the judge (context 4096 positions) and a smaller embedding model named in its config
    make(dir, tokpath, 32, 4096, 5);
    make(edir, tokpath, 16, 4096, 6);
    snprintf(path, sizeof path, "%s/config.json", edir);
    char *cfg = NULL;
    size_t cl = 0;
    CHECK_OK(sc_read_file(path, &cfg, &cl));
    cJSON *root = cfg ? cJSON_Parse(cfg) : NULL;
    if (root) {
        cJSON_AddStringToObject(root, "_name_or_path", "org/tiny-embedder");
        char *s = cJSON_Print(root);
        sc_test_write(path, s, strlen(s));
        free(s);
    }
    cJSON_Delete(root);
    free(cfg);
    CHECK_ERR(sc_provider_local(dir, notok, &p), SC_ERR_ARG, "embedding model", "no-tokenizer has no tokenizer.json");
    // prompts are rendered with the judge model's chat template: one steerclear cannot render is
    // an error naming the file (without a tokenizer_config.json: plain ChatML, as below)
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    const char *inst = "{\"chat_template\": \"{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}\"}";
    sc_test_write(path, inst, strlen(inst));
    CHECK_ERR(sc_provider_local(dir, NULL, &p), SC_ERR_FORMAT, "chat template", "judge-model/tokenizer_config.json", "not a ChatML template");
    CHECK(p == NULL);
    remove(path);
    double t_setup = sc_now_seconds() - t0;

    // 3. themes and compare
    t0 = sc_now_seconds();
    CHECK_OK(sc_provider_local(dir, NULL, &p));
    if (!p) return sc_test_finish("test_local_judge");
    double t_load = sc_now_seconds() - t0;
    CHECK(!strcmp(p->name, "local") && !strcmp(p->model, "judge-model") && !strcmp(p->embed_model, "judge-model"));
    sc_judge_item a[2] = {{.prompt_id = 3, .prompt = "Name a colour.", .original = "Blue.", .output = "The sea is blue."},
                          {.prompt_id = 8, .prompt = "Count to three.", .original = "1, 2, 3.", .output = "One wave, two waves, three."}};
    sc_judge_item b[1] = {{.prompt_id = 5, .prompt = "Say hi.", .original = "Hi!", .output = "Ahoy <|im_end|> sailor!"}};
    char *huge = repeat(" river stone", 3000);   // ~6000 tokens: beyond the context of 4096
    sc_judge_item c[1] = {{.prompt_id = 11, .prompt = "Describe a walk.", .original = "A walk.", .output = huge}};
    sc_judge_item d[1] = {{.prompt_id = 21, .prompt = "Broken.", .original = "ok", .output = "bad \xff byte"}};
    sc_judge_batch batches[4] = {{a, 2}, {c, 1}, {b, 1}, {d, 1}};
    sc_judge_theme out[4];
    memset(g_answers, 0, sizeof g_answers);
    t0 = sc_now_seconds();
    CHECK_OK(p->op->themes(p, batches, 4, out));
    double t_themes = sc_now_seconds() - t0;
    for (int i = 0; i < 4; i++) {
        CHECKF(out[i].status != SC_OK && out[i].error, "batch %d: a random model's answer parsed", i);
        CHECK(out[i].theme == NULL && out[i].reasoning == NULL && out[i].prompts == NULL);
        if (!out[i].error) continue;
        if (getenv("SC_TEST_VERBOSE")) printf("batch %d: %s\n", i, out[i].error);
        char want[32];
        snprintf(want, sizeof want, "batch %d (prompt ids", i);
        CHECKF(strstr(out[i].error, "local themes") && strstr(out[i].error, want), "batch %d: '%s' does not name the batch", i, out[i].error);
        if (i == 1) {
            CHECKF(out[i].status == SC_ERR_ARG && strstr(out[i].error, "context") && strstr(out[i].error, "prompt ids 11"),
                   "the long batch: '%s'", out[i].error);
        } else if (i == 3) {
            CHECKF(out[i].status == SC_ERR_FORMAT && strstr(out[i].error, "UTF-8"), "the batch with invalid UTF-8: '%s'", out[i].error);
        } else {
            CHECKF(out[i].status == SC_ERR_FORMAT && strstr(out[i].error, "JSON") && strstr(out[i].error, "repair turn") &&
                   strstr(out[i].error, "first answer"), "batch %d: '%s'", i, out[i].error);
        }
    }
    CHECKF(g_answers[0][0] == 2 && g_answers[0][2] == 2, "answers per batch: %d, %d (want 2 each: the answer and the repair)",
           g_answers[0][0], g_answers[0][2]);
    CHECKF(g_answers[0][1] == 0 && g_answers[0][3] == 0, "batches that cannot be asked were asked %d and %d times", g_answers[0][1],
           g_answers[0][3]);
    for (int i = 0; i < 4; i++) sc_judge_theme_free(&out[i]);
    sc_judge_batch empty = {a, 0};
    CHECK_ERR(p->op->themes(p, &empty, 1, out), SC_ERR_ARG, "batch 0 has no items");

    sc_judge_pair pairs[1] = {{.prompt = "Say hi.", .a = "Hello, friend!", .b = "Go away.", .trait = "friendly"}};
    sc_judge_verdict vd[1];
    t0 = sc_now_seconds();
    CHECK_OK(p->op->compare(p, pairs, 1, vd));
    double t_compare = sc_now_seconds() - t0;
    CHECKF(vd[0].status == SC_ERR_FORMAT && vd[0].error && strstr(vd[0].error, "local compare: pair 0") && strstr(vd[0].error, "JSON"),
           "compare: %s", vd[0].error ? vd[0].error : "(no error)");
    CHECK(g_answers[1][0] == 2);
    free(vd[0].error);

    // 4. embeddings with the judge model itself
    t0 = sc_now_seconds();
    test_embed(p, dir, tokpath, 32);
    double t_embed = sc_now_seconds() - t0;
    sc_provider_free(p);
    p = NULL;
    // a separate embedding model: its hidden size, its name from config.json
    CHECK_OK(sc_provider_local(dir, edir, &p));
    if (p) {
        CHECK(!strcmp(p->model, "judge-model") && !strcmp(p->embed_model, "org/tiny-embedder"));
        test_embed(p, edir, tokpath, 16);
        sc_provider_free(p);
    }
    free(huge);
    sc_log_set(NULL, NULL);
    printf("test_local_judge: setup %.2f s, load %.2f s, themes %.2f s, compare %.2f s, embed %.2f s\n", t_setup, t_load, t_themes, t_compare,
           t_embed);
    return sc_test_finish("test_local_judge");
}
