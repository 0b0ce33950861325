// test_judging.c — the judge and score stages on evaluation files with planted differences,
// judged by the lexical provider: search 0's adapter and direction outputs both ask questions
// (the direction reproduces the adapter: a high Linearity Score), search 1's adapter asks
// questions but its direction talks about a lighthouse keeper (low), search 2's direction is the
// base model's text (no theme on one side). Checks the batching (one shuffle for both sides,
// fewer outputs than 6 x 16), themes.json, /judge, the ranking in scores.json and /scores, that a
// second judge keeps every answer, that a subset keeps the other searches, and the errors.
#include "testutil.h"
#include "steerclear/judging.h"
#include "steerclear/score.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_PROMPTS 40   // 3 batches of 16: 16, 16, 8

static const char *const words[] = {"river", "stone", "window", "morning", "bread", "letter", "garden", "train", "coat", "lamp",
                                    "market", "field", "kettle", "song", "road", "paper", "chair", "cloud", "door", "spoon"};

// A plain sentence for prompt p, variant v (deterministic, different per p and v).
static void plain(char *out, size_t n, int p, int v) {
    unsigned x = (unsigned)(p * 7919 + v * 104729 + 13);
    int at = snprintf(out, n, "I");
    for (int w = 0; w < 12; w++) {
        x = x * 1103515245u + 12345u;
        at += snprintf(out + at, n - (size_t)at, " %s", words[(x >> 16) % 20]);
    }
    snprintf(out + at, n - (size_t)at, ".");
}

typedef enum { SAME, QUESTIONS, LIGHTHOUSE } planted;

static void add_output(const char *path, planted kind, int variant) {
    cJSON *arr = cJSON_CreateArray();
    char base[256], out[512], prompt[64];
    for (int p = 0; p < N_PROMPTS; p++) {
        plain(base, sizeof base, p, 0);
        plain(out, sizeof out, p, variant);
        size_t at = strlen(out);
        if (kind == QUESTIONS) snprintf(out + at, sizeof out - at, " Why did you go? Are you sure? What now?");
        if (kind == LIGHTHOUSE && p % 4 != 3) snprintf(out + at, sizeof out - at, " The lighthouse keeper waved from the rocks.");
        if (kind == SAME) plain(out, sizeof out, p, 0);
        snprintf(prompt, sizeof prompt, "<|im_start|>A\nprompt %d<|im_end|>", p);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "prompt_id", p + 100);
        cJSON_AddStringToObject(e, "prompt", prompt);
        cJSON_AddStringToObject(e, "original_completion", base);
        cJSON_AddStringToObject(e, "output", out);
        cJSON_AddItemToArray(arr, e);
    }
    char *text = cJSON_Print(arr);
    sc_test_write(path, text, strlen(text));
    free(text);
    cJSON_Delete(arr);
}

static cJSON *read_json(const char *path) {
    char *text = NULL;
    if (sc_read_file(path, &text, NULL)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static const cJSON *search_entry(const cJSON *themes, int s) {
    for (const cJSON *e = cJSON_GetObjectItem(themes, "searches")->child; e; e = e->next)
        if (cJSON_GetObjectItem(e, "search")->valueint == s) return e;
    return NULL;
}

int main(void) {
    const char *tmp = sc_test_tmpdir();
    char run_dir[4200], eval[4300], path[4400];
    snprintf(run_dir, sizeof run_dir, "%s/run", tmp);
    snprintf(eval, sizeof eval, "%s/run/eval", tmp);
    CHECK_OK(sc_mkdir_p(eval));
    const planted adapter[3] = {QUESTIONS, QUESTIONS, QUESTIONS}, direction[3] = {QUESTIONS, LIGHTHOUSE, SAME};
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/adapter_%04d.json", eval, s);
        add_output(path, adapter[s], 1);
        snprintf(path, sizeof path, "%s/direction_%04d_scale_2.json", eval, s);
        add_output(path, direction[s], 2);
    }
    // a search with only its adapter file is left out (with a warning)
    snprintf(path, sizeof path, "%s/adapter_0007.json", eval);
    add_output(path, QUESTIONS, 1);

    sc_judge_config jc;
    sc_judge_config_default(&jc);
    sc_run *run = NULL;
    CHECK_OK(sc_run_open(run_dir, SC_RUN_WRITE, "test", &run));
    sc_judge_opts o = {.seed = 7, .seed_set = 1};
    CHECK_OK(sc_judge_run(run, &jc, &o));

    // themes.json: 3 searches x 2 sides x 3 batches (16, 16, 8); the same prompts in batch k of
    // both sides; every prompt once per side
    snprintf(path, sizeof path, "%s/judge/themes.json", run_dir);
    cJSON *themes = read_json(path);
    CHECK(themes != NULL);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(themes, "searches")) == 3);
    CHECK(search_entry(themes, 7) == NULL);
    for (int s = 0; themes && s < 3; s++) {
        const cJSON *e = search_entry(themes, s);
        CHECK(e != NULL);
        if (!e) continue;
        const cJSON *a = cJSON_GetObjectItem(e, "adapter"), *d = cJSON_GetObjectItem(e, "direction");
        CHECK(cJSON_GetArraySize(a) == 3 && cJSON_GetArraySize(d) == 3);
        int seen[N_PROMPTS] = {0};
        for (int b = 0; b < cJSON_GetArraySize(a); b++) {
            const cJSON *ia = cJSON_GetObjectItem(cJSON_GetArrayItem(a, b), "prompt_ids"), *id = cJSON_GetObjectItem(cJSON_GetArrayItem(d, b), "prompt_ids");
            CHECK(cJSON_Compare(ia, id, 1));
            CHECK(cJSON_GetArraySize(ia) == (b < 2 ? 16 : 8));
            for (const cJSON *v = ia->child; v; v = v->next) if (v->valueint >= 100 && v->valueint < 100 + N_PROMPTS) seen[v->valueint - 100]++;
            CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(a, b), "status")->valuestring, "ok"));
        }
        int once = 1;
        for (int p = 0; p < N_PROMPTS; p++) once &= seen[p] == 1;
        CHECK(once);
    }
    // the shuffle is not the identity and follows the seed
    const cJSON *first_ids = themes ? cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(search_entry(themes, 0), "adapter"), 0), "prompt_ids") : NULL;
    int identity = 1;
    for (int i = 0; first_ids && i < 16; i++) identity &= cJSON_GetArrayItem(first_ids, i)->valueint == 100 + i;
    CHECK(!identity);
    // the planted themes: questions on both sides of search 0, the lighthouse on search 1's
    // direction, none on search 2's direction
    const cJSON *t0 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(search_entry(themes, 0), "direction"), 0), "theme");
    const cJSON *t1 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(search_entry(themes, 1), "direction"), 0), "theme");
    const cJSON *t2 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(search_entry(themes, 2), "direction"), 0), "theme");
    CHECKF(cJSON_IsString(t0) && strstr(t0->valuestring, "question"), "search 0 direction theme: %s", cJSON_IsString(t0) ? t0->valuestring : "null");
    CHECKF(cJSON_IsString(t1) && strstr(t1->valuestring, "lighthouse"), "search 1 direction theme: %s", cJSON_IsString(t1) ? t1->valuestring : "null");
    CHECK(cJSON_IsNull(t2));

    // /judge: 3 embedded themes per side
    int *judged = NULL, n_judged = 0;
    CHECK_OK(sc_results_list_judged(run, &judged, &n_judged));
    CHECK(n_judged == 3);
    free(judged);
    sc_judge_record rec;
    CHECK_OK(sc_results_read_judge(run, 1, &rec));
    // the direction's last batch (8 outputs, the lighthouse in 6) has no theme: not embedded
    CHECK(rec.n[0] == 3 && rec.n[1] == 2 && rec.answered[0] == 3 && rec.answered[1] == 3 && rec.dim > 0);
    CHECK(rec.batch_of[0][2] == 2 && rec.batch_of[1][1] == 1);
    sc_judge_record_free(&rec);
    CHECK_OK(sc_results_read_judge(run, 2, &rec));
    CHECK(rec.n[0] == 3 && rec.n[1] == 0 && rec.answered[1] == 3 && rec.emb[1] == NULL);
    sc_judge_record_free(&rec);

    // score: search 0 first (its two sides say the same), search 1 and 2 below
    CHECK_OK(sc_score_run(run, &jc));
    int *ranked = NULL, n_ranked = 0;
    double *lin = NULL;
    CHECK_OK(sc_results_read_ranking(run, &ranked, &lin, &n_ranked));
    CHECK(n_ranked == 3);
    if (n_ranked == 3) {
        CHECKF(ranked[0] == 0, "best search %d (%.3f)", ranked[0], lin[0]);
        CHECK(lin[0] > 0.9 && lin[0] >= lin[1] && lin[1] >= lin[2]);
        CHECKF(lin[1] < 0.6, "second best %.3f", lin[1]);
        // search 2's direction shows no theme at all: nothing to match, 0 (not "both say nothing": 1)
        CHECKF(ranked[2] == 2 && lin[2] == 0, "last: search %d (%.3f)", ranked[2], lin[2]);
    }
    free(ranked);
    free(lin);
    snprintf(path, sizeof path, "%s/scores.json", run_dir);
    cJSON *scores = read_json(path);
    const cJSON *top = scores ? cJSON_GetArrayItem(cJSON_GetObjectItem(scores, "ranking"), 0) : NULL;
    CHECK(top && cJSON_GetObjectItem(top, "search")->valueint == 0 && cJSON_IsTrue(cJSON_GetObjectItem(top, "faithful")));
    CHECK(top && strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(top, "best"), "adapter_theme")->valuestring, "question"));
    CHECK(top && cJSON_GetArraySize(cJSON_GetObjectItem(top, "matches")) == 3);
    CHECK(scores && !strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(scores, "judge"), "provider")->valuestring, "lexical"));
    cJSON_Delete(scores);
    // the cosine matrix read back is the one scores.json's best pair quotes
    double *S = NULL;
    int na = 0, nb = 0;
    CHECK_OK(sc_results_read_cosine(run, 0, &S, &na, &nb));
    CHECK(na == 3 && nb == 3);
    free(S);

    // a second judge keeps every answer: themes.json's searches are unchanged
    CHECK_OK(sc_judge_run(run, &jc, &o));
    snprintf(path, sizeof path, "%s/judge/themes.json", run_dir);
    cJSON *again = read_json(path);
    CHECK(again && cJSON_Compare(cJSON_GetObjectItem(themes, "searches"), cJSON_GetObjectItem(again, "searches"), 1));
    cJSON_Delete(again);
    // judging a subset keeps the other searches in themes.json and /judge
    const int only1[1] = {1};
    sc_judge_opts o1 = {.seed = 7, .seed_set = 1, .searches = only1, .n_searches = 1};
    CHECK_OK(sc_judge_run(run, &jc, &o1));
    again = read_json(path);
    CHECK(again && cJSON_Compare(cJSON_GetObjectItem(themes, "searches"), cJSON_GetObjectItem(again, "searches"), 1));
    cJSON_Delete(again);
    CHECK_OK(sc_results_list_judged(run, &judged, &n_judged));
    CHECK(n_judged == 3);
    free(judged);
    // a damaged themes.json (a side that is not an array, a batch without its index, a search
    // without its number) is asked again, not trusted and not a crash
    {
        cJSON *bad = read_json(path);
        cJSON *arr = cJSON_GetObjectItem(bad, "searches");
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(arr, 0), "adapter", cJSON_CreateString("oops"));
        cJSON_DeleteItemFromObject(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "direction"), 0), "batch");
        cJSON_DeleteItemFromObject(cJSON_GetArrayItem(arr, 2), "search");
        char *text = cJSON_Print(bad);
        sc_test_write(path, text, strlen(text));
        free(text);
        cJSON_Delete(bad);
        CHECK_OK(sc_judge_run(run, &jc, &o));
        again = read_json(path);
        CHECK(again && cJSON_Compare(cJSON_GetObjectItem(themes, "searches"), cJSON_GetObjectItem(again, "searches"), 1));
        cJSON_Delete(again);
        bad = read_json(path);   // the same settings, "searches" not an array
        cJSON_ReplaceItemInObject(bad, "searches", cJSON_CreateNumber(2));
        text = cJSON_Print(bad);
        sc_test_write(path, text, strlen(text));
        free(text);
        cJSON_Delete(bad);
        CHECK_OK(sc_judge_run(run, &jc, &o));
    }
    // another seed: other batches, all asked again
    sc_judge_opts o2 = {.seed = 8, .seed_set = 1};
    CHECK_OK(sc_judge_run(run, &jc, &o2));
    again = read_json(path);
    CHECK(again && !cJSON_Compare(cJSON_GetObjectItem(themes, "searches"), cJSON_GetObjectItem(again, "searches"), 1));
    cJSON_Delete(again);
    cJSON_Delete(themes);

    // errors: a search without files; outputs that disagree; a folder with nothing to judge
    const int missing[1] = {7};
    sc_judge_opts om = {.searches = missing, .n_searches = 1};
    CHECK_ERR(sc_judge_run(run, &jc, &om), SC_ERR_ARG, "search 7");
    snprintf(path, sizeof path, "%s/direction_0002_scale_2.json", eval);
    sc_test_write(path, "[]", 2);
    CHECK_ERR(sc_judge_run(run, &jc, &o), SC_ERR_FORMAT, "same prompts");
    sc_test_write(path, "{\"a\": 1}", 8);
    CHECK_ERR(sc_judge_run(run, &jc, &o), SC_ERR_FORMAT, "expected a JSON array");
    snprintf(path, sizeof path, "%s/empty", tmp);
    CHECK_OK(sc_mkdir_p(path));
    sc_judge_opts oe = {.outputs_dir = path};
    CHECK_ERR(sc_judge_run(run, &jc, &oe), SC_ERR_ARG, "no evaluation outputs");
    sc_run_close(run);

    // score without a judge: names the command to run
    snprintf(run_dir, sizeof run_dir, "%s/fresh", tmp);
    CHECK_OK(sc_run_open(run_dir, SC_RUN_WRITE, "test", &run));
    CHECK_ERR(sc_score_run(run, &jc), SC_ERR_ARG, "steerclear judge");
    sc_run_close(run);
    return sc_test_finish("test_judging");
}
