// score_stage.c — the score stage (see steerclear/judging.h): per judged search the cosine
// matrix of its adapter themes against its direction themes, the Hungarian matching, the
// Linearity Score; the ranking into results.h5 /scores and RUN_DIR/scores.json (with the
// matched themes' text from judge/themes.json, so the ranking reads without the HDF5 file).
// Leaves out: judging (judge_stage.c); figures (report.c).
#include "steerclear/judging.h"
#include "steerclear/score.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// The judged theme of (search, side, batch) in themes.json.
static const char *theme_text(const cJSON *themes, int search, int side, int batch) {
    static const char *const side_name[2] = {"adapter", "direction"};
    for (const cJSON *e = cJSON_GetObjectItemCaseSensitive(themes, "searches") ? cJSON_GetObjectItemCaseSensitive(themes, "searches")->child : NULL; e; e = e->next) {
        const cJSON *sv = cJSON_GetObjectItemCaseSensitive(e, "search");
        if (!cJSON_IsNumber(sv) || sv->valueint != search) continue;
        for (const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, side_name[side]) ? cJSON_GetObjectItemCaseSensitive(e, side_name[side])->child : NULL; t; t = t->next) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(t, "batch"), *th = cJSON_GetObjectItemCaseSensitive(t, "theme");
            if (cJSON_IsNumber(b) && b->valueint == batch) return cJSON_IsString(th) ? th->valuestring : "(no theme)";
        }
    }
    return "(not in judge/themes.json)";
}

static cJSON *pair_json(const cJSON *themes, const sc_judge_record *r, int a, int b, double cosine) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "cosine", cosine);
    cJSON_AddNumberToObject(o, "adapter_batch", r->batch_of[0][a]);
    cJSON_AddNumberToObject(o, "direction_batch", r->batch_of[1][b]);
    cJSON_AddStringToObject(o, "adapter_theme", theme_text(themes, r->search, 0, r->batch_of[0][a]));
    cJSON_AddStringToObject(o, "direction_theme", theme_text(themes, r->search, 1, r->batch_of[1][b]));
    return o;
}

sc_status sc_score_run(sc_run *run, const sc_judge_config *c) {
    int *searches = NULL, n = 0;
    char path[4200];
    SC_TRY(sc_run_path(run, "results.h5", path, sizeof path));
    if (!sc_results_exists(run)) return sc_errorf(SC_ERR_ARG, "%s does not exist: nothing was judged; run `steerclear judge` first", path);
    SC_TRY(sc_results_list_judged(run, &searches, &n));
    sc_judge_meta meta = {0};
    sc_judge_record *rec = calloc((size_t)(n > 0 ? n : 1), sizeof *rec);
    sc_score_record *score = calloc((size_t)(n > 0 ? n : 1), sizeof *score);
    double **cos = calloc((size_t)(n > 0 ? n : 1), sizeof *cos);
    int **match = calloc((size_t)(n > 0 ? n : 1), sizeof *match);
    int *ranking = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    cJSON *themes = NULL, *doc = NULL;
    char *text = NULL;
    int n_scored = 0;
    sc_status st = rec && score && cos && match && ranking ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
    if (!st) st = sc_results_read_judge_meta(run, &meta);
    if (!st) st = sc_run_path(run, "judge/themes.json", path, sizeof path);
    if (!st && sc_read_file(path, &text, NULL) == SC_OK) themes = cJSON_Parse(text);
    sc_error_clear();
    free(text);
    text = NULL;
    for (int k = 0; !st && k < n; k++) {
        sc_judge_record *r = &rec[n_scored];
        if ((st = sc_results_read_judge(run, searches[k], r))) break;
        if (r->answered[0] == 0 || r->answered[1] == 0) {
            sc_log(SC_LOG_WARN, "search %d: no %s batch was answered: it is left out of the ranking; run `steerclear judge` again to ask the failed batches",
                   r->search, r->answered[0] == 0 ? "adapter" : "direction");
            sc_judge_record_free(r);
            continue;
        }
        sc_score_record *sr = &score[n_scored];
        *sr = (sc_score_record){.search = r->search, .na = r->n[0], .nb = r->n[1], .answered_a = r->answered[0], .answered_b = r->answered[1],
                                .best_a = -1, .best_b = -1, .worst_a = -1, .worst_b = -1};
        if (r->n[0] > 0 && r->n[1] > 0) {
            cos[n_scored] = malloc(sizeof(double) * (size_t)r->n[0] * (size_t)r->n[1]);
            match[n_scored] = malloc(sizeof(int) * (size_t)r->n[0]);
            if (!cos[n_scored] || !match[n_scored]) { st = sc_errorf(SC_ERR_MEM, "out of memory"); break; }
            sc_cosine_matrix(r->emb[0], r->n[0], r->emb[1], r->n[1], r->dim, cos[n_scored]);
            sc_linearity lin;
            if ((st = sc_linearity_score(cos[n_scored], r->n[0], r->n[1], match[n_scored], &lin))) break;
            // batches answered with no theme count 0: divide by the larger number of answered batches
            const int most = r->n[0] > r->n[1] ? r->n[0] : r->n[1];
            const int batches = r->answered[0] > r->answered[1] ? r->answered[0] : r->answered[1];
            sr->cosine = cos[n_scored];
            sr->match = match[n_scored];
            sr->score = lin.score * most / (batches > most ? batches : most);
            sr->best = lin.best; sr->worst = lin.worst;
            sr->best_a = lin.best_a; sr->best_b = lin.best_b; sr->worst_a = lin.worst_a; sr->worst_b = lin.worst_b;
        }
        n_scored++;
    }
    if (!st && n_scored == 0) st = sc_errorf(SC_ERR_ARG, "no judged search has themes on both sides; run `steerclear judge` (again)");
    if (st) goto done;

    // ranking: best first, ties by search index
    for (int k = 0; k < n_scored; k++) ranking[k] = k;
    for (int i = 1; i < n_scored; i++)
        for (int k = i; k > 0; k--) {
            const sc_score_record *x = &score[ranking[k - 1]], *y = &score[ranking[k]];
            if (x->score > y->score || (x->score == y->score && x->search < y->search)) break;
            int t = ranking[k]; ranking[k] = ranking[k - 1]; ranking[k - 1] = t;
        }
    int *ranked_search = malloc(sizeof(int) * (size_t)n_scored);
    if (!ranked_search) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int k = 0; k < n_scored; k++) ranked_search[k] = score[ranking[k]].search;
    st = sc_results_write_scores(run, score, n_scored, ranked_search, c->threshold);
    free(ranked_search);
    if (st) goto done;

    // scores.json
    doc = cJSON_CreateObject();
    cJSON *judge = cJSON_AddObjectToObject(doc, "judge");
    cJSON_AddStringToObject(judge, "provider", meta.provider);
    cJSON_AddStringToObject(judge, "model", meta.model);
    cJSON_AddStringToObject(judge, "embed_model", meta.embed_model);
    cJSON_AddStringToObject(judge, "date", meta.date);
    cJSON_AddNumberToObject(judge, "batches", meta.batches);
    cJSON_AddNumberToObject(judge, "batch_size", meta.batch_size);
    cJSON_AddNumberToObject(judge, "scale", (double)meta.scale);
    char thr[32];
    snprintf(thr, sizeof thr, "%.6g", (double)c->threshold);   // 0.83, not the float's 0.8299999833
    cJSON_AddNumberToObject(doc, "threshold", strtod(thr, NULL));
    cJSON *arr = cJSON_AddArrayToObject(doc, "ranking");
    int faithful = 0;
    for (int k = 0; k < n_scored; k++) {
        const sc_score_record *s = &score[ranking[k]];
        const sc_judge_record *r = &rec[ranking[k]];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, e);
        cJSON_AddNumberToObject(e, "rank", k + 1);
        cJSON_AddNumberToObject(e, "search", s->search);
        cJSON_AddNumberToObject(e, "linearity", s->score);
        cJSON_AddBoolToObject(e, "faithful", s->score >= (double)c->threshold);
        faithful += s->score >= (double)c->threshold;
        cJSON_AddNumberToObject(e, "adapter_themes", s->na);
        cJSON_AddNumberToObject(e, "direction_themes", s->nb);
        cJSON_AddNumberToObject(e, "adapter_batches", s->answered_a);
        cJSON_AddNumberToObject(e, "direction_batches", s->answered_b);
        if (s->best_a >= 0) {
            cJSON_AddItemToObject(e, "best", pair_json(themes, r, s->best_a, s->best_b, s->best));
            cJSON_AddItemToObject(e, "worst", pair_json(themes, r, s->worst_a, s->worst_b, s->worst));
        } else {
            cJSON_AddNullToObject(e, "best");
            cJSON_AddNullToObject(e, "worst");
        }
        cJSON *m = cJSON_AddArrayToObject(e, "matches");
        for (int i = 0; i < s->na && s->nb > 0; i++)
            if (s->match[i] >= 0) cJSON_AddItemToArray(m, pair_json(themes, r, i, s->match[i], s->cosine[(size_t)i * (size_t)s->nb + (size_t)s->match[i]]));
    }
    if (!(text = cJSON_Print(doc))) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    if ((st = sc_run_path(run, "scores.json", path, sizeof path))) goto done;
    if ((st = sc_write_file_atomic(path, text, strlen(text)))) goto done;
    sc_log(SC_LOG_INFO, "score: %d searches ranked, %d at or above the threshold %.2f; best: search %d (%.3f); %s",
           n_scored, faithful, (double)c->threshold, score[ranking[0]].search, score[ranking[0]].score, path);
done:
    for (int k = 0; k < n; k++) {
        if (rec) sc_judge_record_free(&rec[k]);
        if (cos) free(cos[k]);
        if (match) free(match[k]);
    }
    free(rec); free(score); free(cos); free(match); free(ranking); free(searches); free(text);
    cJSON_Delete(themes);
    cJSON_Delete(doc);
    sc_judge_meta_free(&meta);
    return st;
}
