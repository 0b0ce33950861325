// quantify_stage.c — the quantify stage (see steerclear/judging.h): the best directions at
// every scale of a sweep on the quantify prompts; question marks and words per output against
// scale; "which response is more TRAIT" judged for base against steered, in both orders.
// Generated texts are kept in RUN_DIR/quantify/outputs_NNNN.json and reused while the settings
// that made them are the same; the judge's HTTP answers are cached, so a rerun costs nothing.
#include "steerclear/monitor.h"
#include "steerclear/judging.h"
#include "steerclear/evaluate.h"
#include "steerclear/score.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// --- Measures of one output ---------------------------------------------------------------------

static int count_questions(const char *s) {
    int n = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '?') n++;
        else if (!strncmp(p, "\xef\xbc\x9f", 3)) { n++; p += 2; }   // U+FF1F FULLWIDTH QUESTION MARK
    }
    return n;
}

static int count_words(const char *s) {
    int n = 0, in = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const int space = isspace(*p);
        n += !space && !in;
        in = !space;
    }
    return n;
}

typedef struct { double mean, sd, se; } moments;

static moments moments_of(const double *v, int n) {
    moments m = {0, 0, 0};
    if (n <= 0) return m;
    for (int i = 0; i < n; i++) m.mean += v[i];
    m.mean /= n;
    if (n > 1) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (v[i] - m.mean) * (v[i] - m.mean);
        m.sd = sqrt(ss / (n - 1));
        m.se = m.sd / sqrt((double)n);
    }
    return m;
}

static cJSON *moments_json(moments m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mean", m.mean);
    cJSON_AddNumberToObject(o, "sd", m.sd);
    cJSON_AddNumberToObject(o, "se", m.se);
    return o;
}

static cJSON *rate_json(int wins, int answers) {
    cJSON *o = cJSON_CreateObject();
    double lo, hi;
    sc_wilson_interval(wins, answers, &lo, &hi);
    cJSON_AddNumberToObject(o, "wins", wins);
    cJSON_AddNumberToObject(o, "answers", answers);
    if (answers > 0) cJSON_AddNumberToObject(o, "rate", (double)wins / answers);
    else cJSON_AddNullToObject(o, "rate");
    cJSON_AddNumberToObject(o, "ci_low", lo);
    cJSON_AddNumberToObject(o, "ci_high", hi);
    return o;
}

// --- One search's outputs -----------------------------------------------------------------------

typedef struct {
    int search;
    double linearity;          // NAN when not scored
    char **text;               // [n_scales][n_prompts]; scale 0 shares the base texts
    int generated;             // 1: generated now; 0: read back from outputs_NNNN.json
} sweep;

static char *scale_key(float scale, char *buf, size_t n) {
    sc_evaluate_scale_name(scale, buf, n);
    return buf;
}

// The outputs of an earlier quantify with the same settings, or 0.
static int load_outputs(const char *path, const cJSON *settings, const sc_quantify_config *qc, int n_p, char **base, sweep *w) {
    char *text = NULL;
    if (!sc_file_exists(path) || sc_read_file(path, &text, NULL) != SC_OK) { sc_error_clear(); return 0; }
    cJSON *doc = cJSON_Parse(text);
    free(text);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "prompts");
    int ok = doc && cJSON_Compare(cJSON_GetObjectItemCaseSensitive(doc, "settings"), settings, 1) && cJSON_GetArraySize(arr) == n_p;
    int p = 0;
    for (const cJSON *e = ok ? arr->child : NULL; e && ok; e = e->next, p++) {
        const cJSON *outs = cJSON_GetObjectItemCaseSensitive(e, "outputs");
        for (int k = 0; k < qc->n_scales && ok; k++) {
            char key[64];
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(outs, scale_key(qc->scales[k], key, sizeof key));
            ok = cJSON_IsString(t) && (w->text[(size_t)k * n_p + p] = sc_strdup(t->valuestring)) != NULL;
        }
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "base");
        if (ok && base && !base[p]) ok = cJSON_IsString(b) && (base[p] = sc_strdup(b->valuestring)) != NULL;
    }
    cJSON_Delete(doc);
    if (!ok)
        for (int i = 0; i < qc->n_scales * n_p; i++) { free(w->text[i]); w->text[i] = NULL; }
    return ok;
}

static sc_status write_outputs(const char *path, cJSON *settings, const sc_quantify_config *qc, const sc_dataset *ds, int n_p,
                               char *const *base, const sweep *w) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "search", w->search);
    cJSON_AddItemToObject(doc, "settings", cJSON_Duplicate(settings, 1));
    cJSON *arr = cJSON_AddArrayToObject(doc, "prompts");
    for (int p = 0; p < n_p; p++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, e);
        cJSON_AddNumberToObject(e, "prompt_id", p);
        cJSON_AddStringToObject(e, "need", ds->items[p].category);
        cJSON_AddStringToObject(e, "prompt", ds->items[p].prompt);
        cJSON_AddStringToObject(e, "base", base[p]);
        cJSON *outs = cJSON_AddObjectToObject(e, "outputs");
        for (int k = 0; k < qc->n_scales; k++) {
            char key[64];
            cJSON_AddStringToObject(outs, scale_key(qc->scales[k], key, sizeof key), w->text[(size_t)k * n_p + p]);
        }
    }
    char *text = cJSON_Print(doc);
    cJSON_Delete(doc);
    if (!text) return sc_errorf(SC_ERR_MEM, "out of memory");
    sc_status st = sc_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

// --- The stage ------------------------------------------------------------------------------------

// The searches to sweep: the given ones, else the `top` best of the ranking.
static sc_status choose(sc_run *run, const sc_quantify_config *qc, const int *searches, int n_searches, sweep **out, int *n) {
    int *ranked = NULL, n_ranked = 0;
    double *lin = NULL;
    sc_status st = sc_results_read_ranking(run, &ranked, &lin, &n_ranked);
    if (st && !searches) return sc_error_wrap(st, "quantify: no search given and no ranking to take the best from: ");
    sc_error_clear();
    const int cnt = searches ? n_searches : (n_ranked < qc->top ? n_ranked : qc->top);
    sweep *w = calloc((size_t)(cnt > 0 ? cnt : 1), sizeof *w);
    if (!w) { free(ranked); free(lin); return sc_errorf(SC_ERR_MEM, "out of memory"); }
    for (int j = 0; j < cnt; j++) {
        w[j].search = searches ? searches[j] : ranked[j];
        w[j].linearity = NAN;
        for (int k = 0; k < n_ranked; k++)
            if (ranked[k] == w[j].search) w[j].linearity = lin[k];
    }
    free(ranked);
    free(lin);
    *out = w;
    *n = cnt;
    return cnt > 0 ? SC_OK : sc_errorf(SC_ERR_ARG, "quantify: the ranking is empty; run `steerclear score` first, or give --searches");
}

static cJSON *settings_json(const sc_stage *stage, const sc_quantify_config *qc, const char *prompts, const sc_evaluate_opts *eo, uint64_t seed) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "model", stage->model_dir);
    cJSON_AddStringToObject(s, "prompts", prompts);
    cJSON *sc = cJSON_AddArrayToObject(s, "scales");
    for (int k = 0; k < qc->n_scales; k++) cJSON_AddItemToArray(sc, cJSON_CreateNumber((double)qc->scales[k]));
    cJSON_AddNumberToObject(s, "max_new_tokens", qc->max_new_tokens);
    cJSON_AddNumberToObject(s, "temperature", (double)eo->temperature);
    cJSON_AddNumberToObject(s, "top_k", eo->top_k);
    cJSON_AddNumberToObject(s, "top_p", (double)eo->top_p);
    cJSON_AddNumberToObject(s, "seed", (double)seed);
    return s;
}

// Generate every sweep that could not be read back, and the base outputs, in one batched pass.
static sc_status generate(sc_stage *stage, const sc_quantify_config *qc, const sc_evaluate_opts *eo, uint64_t seed,
                          int32_t **ptok, const int *plen, int n_p, sweep *w, int n_w, char **base, int need_base) {
    sc_run *run = stage->run;
    sc_backend *be = stage->be;
    const sc_model *m = stage->model;
    const int L = m->cfg.n_layers, C = m->cfg.hidden;
    const size_t LC = (size_t)L * C;
    int n_gen = 0;
    for (int j = 0; j < n_w; j++) n_gen += w[j].generated;
    int n_nonzero = 0;
    for (int k = 0; k < qc->n_scales; k++) n_nonzero += qc->scales[k] != 0;
    const int n_var = 1 + n_gen * n_nonzero;
    if (!need_base && n_var == 1) return SC_OK;
    sc_status st = SC_OK;
    float *D = malloc(sizeof(float) * LC * (size_t)(n_gen > 0 ? n_gen : 1)), *D_dev = NULL;
    sc_eval_variant *var = calloc((size_t)n_var, sizeof *var);
    int *var_w = calloc((size_t)n_var, sizeof *var_w), *var_k = calloc((size_t)n_var, sizeof *var_k);
    uint64_t *streams = malloc(sizeof(uint64_t) * (size_t)n_p);
    sc_gen_out *gen = calloc((size_t)n_var * (size_t)n_p, sizeof *gen);
    if (!D || !var || !var_w || !var_k || !streams || !gen) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    if (n_gen > 0 && (st = sc_backend_alloc_floats(be, LC * (size_t)n_gen, "quantify directions", &D_dev))) goto done;
    var[0] = (sc_eval_variant){.kind = SC_EVAL_BASE};
    int v = 1, g = 0;
    for (int j = 0; j < n_w; j++) {
        if (!w[j].generated) continue;
        if ((st = sc_results_read_direction(run, w[j].search, L, C, D + LC * (size_t)g))) goto done;
        for (int k = 0; k < qc->n_scales; k++) {
            if (qc->scales[k] == 0) continue;
            var[v] = (sc_eval_variant){.kind = SC_EVAL_DIRECTION, .directions = D_dev + LC * (size_t)g, .scale = qc->scales[k]};
            var_w[v] = j;
            var_k[v++] = k;
        }
        g++;
    }
    if (n_gen > 0 && (st = be->op->upload(be, D_dev, D, sizeof(float) * LC * (size_t)n_gen))) goto done;
    for (int p = 0; p < n_p; p++) streams[p] = (uint64_t)p;
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_make(&so, stage->tok, stops, qc->max_new_tokens, eo->temperature, eo->top_k, eo->top_p, seed);
    sc_log(SC_LOG_INFO, "quantify: generating %d searches x %d scales x %d prompts (%d new tokens)", n_gen, n_nonzero, n_p, qc->max_new_tokens);
    if ((st = stage->generate ? stage->generate(stage->generate_ctx, var, n_var, (const int32_t *const *)ptok, plen, n_p, streams, &so, qc->batch_seqs, gen)
                              : sc_evaluate_generate(m, be, var, n_var, (const int32_t *const *)ptok, plen, n_p, streams, &so, qc->batch_seqs, gen))) goto done;
    for (int p = 0; p < n_p && !base[p]; p++)
        if ((st = sc_tok_decode(stage->tok, gen[p].ids, (size_t)gen[p].n, 1, &base[p]))) goto done;
    for (v = 1; v < n_var; v++)
        for (int p = 0; p < n_p; p++)
            if ((st = sc_tok_decode(stage->tok, gen[(size_t)v * n_p + p].ids, (size_t)gen[(size_t)v * n_p + p].n, 1,
                                    &w[var_w[v]].text[(size_t)var_k[v] * n_p + p]))) goto done;
done:
    if (gen) for (int i = 0; i < n_var * n_p; i++) free(gen[i].ids);
    be->op->free(be, D_dev);
    free(D); free(var); free(var_w); free(var_k); free(streams); free(gen);
    return st;
}

sc_status sc_quantify_run(sc_stage *stage, const sc_judge_config *jc, const sc_quantify_config *qc, const int *searches, int n_searches) {
    sc_run *run = stage->run;
    if (!stage->model || !stage->tok) return sc_errorf(SC_ERR_INTERNAL, "quantify: the stage context has no model");
    if (qc->n_scales < 1 || qc->n_traits < 1) return sc_errorf(SC_ERR_ARG, "quantify: needs at least one scale and one trait");
    char prompts[4096], qdir[4200], cache[4300], path[4400];
    SC_TRY(sc_path_resolve(qc->prompts[0] ? qc->prompts : sc_default_dataset("quantify.csv"), NULL, prompts, sizeof prompts));
    SC_TRY(sc_run_path(run, "quantify", qdir, sizeof qdir));
    SC_TRY(sc_mkdir_p(qdir));
    SC_TRY(sc_run_path(run, "judge/cache", cache, sizeof cache));

    sc_evaluate_opts eo;
    sc_evaluate_opts_default(&eo);
    sc_results_meta meta = {0};
    SC_TRY(sc_results_read_meta(run, &meta));
    const uint64_t seed = sc_results_run_seed(meta.config_json);
    sc_results_meta_free(&meta);

    sc_dataset ds = {0};
    sweep *w = NULL;
    int n_w = 0, n_p = 0;
    int32_t **ptok = NULL;
    int *plen = NULL;
    char **base = NULL;
    cJSON *settings = NULL;
    sc_provider *prov = NULL;
    sc_judge_pair *pairs = NULL;
    sc_judge_verdict *verdicts = NULL;
    double *vals = NULL;
    int n_pairs = 0, failed = 0;
    sc_status st = sc_dataset_load(prompts, SC_DATASET_TEST, &ds);
    if (st) goto done;
    n_p = (int)ds.n;
    if ((st = choose(run, qc, searches, n_searches, &w, &n_w))) goto done;
    ptok = calloc((size_t)n_p, sizeof *ptok);
    plen = calloc((size_t)n_p, sizeof *plen);
    base = calloc((size_t)n_p, sizeof *base);
    vals = malloc(sizeof(double) * (size_t)n_p);
    if (!ptok || !plen || !base || !vals) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    if ((st = sc_evaluate_encode(stage->model, stage->tok, &ds, prompts, n_p, qc->max_new_tokens, ptok, plen))) goto done;
    settings = settings_json(stage, qc, prompts, &eo, seed);

    // outputs kept from an earlier quantify, else generated (base once for all)
    int need_base = 1;
    for (int j = 0; j < n_w; j++) {
        if (!(w[j].text = calloc((size_t)qc->n_scales * (size_t)n_p, sizeof(char *)))) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
        snprintf(path, sizeof path, "%s/outputs_%04d.json", qdir, w[j].search);
        w[j].generated = !load_outputs(path, settings, qc, n_p, base, &w[j]);
        if (!w[j].generated) need_base = 0;
    }
    if ((st = generate(stage, qc, &eo, seed, ptok, plen, n_p, w, n_w, base, need_base))) goto done;
    for (int j = 0; j < n_w; j++) {
        for (int k = 0; k < qc->n_scales; k++)
            for (int p = 0; p < n_p && qc->scales[k] == 0; p++)
                if (!w[j].text[(size_t)k * n_p + p] && !(w[j].text[(size_t)k * n_p + p] = sc_strdup(base[p]))) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
        snprintf(path, sizeof path, "%s/outputs_%04d.json", qdir, w[j].search);
        if (w[j].generated && (st = write_outputs(path, settings, qc, &ds, n_p, base, &w[j]))) goto done;
    }

    // pairwise judging: per search, trait, non-zero scale and prompt, both orders
    if ((st = sc_judge_provider_open(jc, cache, &prov))) goto done;
    int n_nonzero = 0;
    for (int k = 0; k < qc->n_scales; k++) n_nonzero += qc->scales[k] != 0;
    const size_t max_pairs = (size_t)n_w * qc->n_traits * n_nonzero * n_p * 2;
    pairs = calloc(max_pairs ? max_pairs : 1, sizeof *pairs);
    verdicts = calloc(max_pairs ? max_pairs : 1, sizeof *verdicts);
    if (!pairs || !verdicts) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int j = 0; j < n_w; j++)
        for (int t = 0; t < qc->n_traits; t++)
            for (int k = 0; k < qc->n_scales; k++) {
                if (qc->scales[k] == 0) continue;
                for (int p = 0; p < n_p; p++) {
                    const char *steered = w[j].text[(size_t)k * n_p + p];
                    pairs[n_pairs++] = (sc_judge_pair){ds.items[p].prompt, base[p], steered, qc->traits[t]};
                    pairs[n_pairs++] = (sc_judge_pair){ds.items[p].prompt, steered, base[p], qc->traits[t]};
                }
            }
    const double t0 = sc_now_seconds();
    const int chunk = 4 * jc->in_flight > 64 ? 4 * jc->in_flight : 64;
    if (n_pairs > 0) sc_monitor_progress("quantify: judging", 0, n_pairs, "comparisons");
    for (int i0 = 0; i0 < n_pairs; i0 += chunk) {
        const int m = n_pairs - i0 < chunk ? n_pairs - i0 : chunk;
        if ((st = prov->op->compare(prov, pairs + i0, m, verdicts + i0))) goto done;
        sc_monitor_progress("quantify: judging", i0 + m, n_pairs, "comparisons");
    }
    for (int i = 0; i < n_pairs; i++) failed += verdicts[i].status != SC_OK;
    sc_log(SC_LOG_INFO, "quantify: %d comparisons by %s (%s) in %.1f s, %d failed", n_pairs, prov->name, prov->model, sc_now_seconds() - t0, failed);

    // search_NNNN.json
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    int at = 0;
    for (int j = 0; j < n_w; j++) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddNumberToObject(doc, "search", w[j].search);
        if (isnan(w[j].linearity)) cJSON_AddNullToObject(doc, "linearity");
        else cJSON_AddNumberToObject(doc, "linearity", w[j].linearity);
        cJSON_AddStringToObject(doc, "date", when);
        cJSON *judge = cJSON_AddObjectToObject(doc, "judge");
        cJSON_AddStringToObject(judge, "provider", prov->name);
        cJSON_AddStringToObject(judge, "model", prov->model);
        cJSON *set = cJSON_Duplicate(settings, 1);
        cJSON *traits = cJSON_AddArrayToObject(set, "traits");
        for (int t = 0; t < qc->n_traits; t++) cJSON_AddItemToArray(traits, cJSON_CreateString(qc->traits[t]));
        cJSON_AddItemToObject(doc, "settings", set);
        cJSON *sweep_arr = cJSON_AddArrayToObject(doc, "sweep");
        // the verdicts of this search in the order they were asked: trait, scale, prompt, order
        const int first = at;
        for (int k = 0; k < qc->n_scales; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToArray(sweep_arr, e);
            cJSON_AddNumberToObject(e, "scale", (double)qc->scales[k]);
            cJSON_AddNumberToObject(e, "outputs", n_p);
            for (int p = 0; p < n_p; p++) vals[p] = count_questions(w[j].text[(size_t)k * n_p + p]);
            cJSON_AddItemToObject(e, "question_marks", moments_json(moments_of(vals, n_p)));
            for (int p = 0; p < n_p; p++) vals[p] = count_words(w[j].text[(size_t)k * n_p + p]);
            cJSON_AddItemToObject(e, "words", moments_json(moments_of(vals, n_p)));
            if (qc->scales[k] == 0) { cJSON_AddNullToObject(e, "traits"); continue; }
            cJSON *tr = cJSON_AddObjectToObject(e, "traits");
            int k_nz = 0;   // index of scale k among the non-zero scales
            for (int q = 0; q < k; q++) k_nz += qc->scales[q] != 0;
            for (int t = 0; t < qc->n_traits; t++) {
                const sc_judge_verdict *vd = verdicts + first + ((size_t)t * n_nonzero + k_nz) * n_p * 2;
                int wins = 0, answers = 0, both = 0, agree = 0;
                for (int p = 0; p < n_p; p++) {
                    const sc_judge_verdict *v0 = &vd[2 * p], *v1 = &vd[2 * p + 1];
                    const int ok0 = v0->status == SC_OK, ok1 = v1->status == SC_OK;
                    const int s0 = ok0 && v0->winner == 1, s1 = ok1 && v1->winner == 0;   // steered preferred
                    wins += s0 + s1;
                    answers += ok0 + ok1;
                    if (ok0 && ok1) { both++; agree += s0 == s1; }
                }
                cJSON *o = rate_json(wins, answers);
                cJSON_AddItemToObject(tr, qc->traits[t], o);
                cJSON_AddNumberToObject(o, "failed", 2 * n_p - answers);
                if (both > 0) cJSON_AddNumberToObject(o, "agree", (double)agree / both);
                else cJSON_AddNullToObject(o, "agree");
                cJSON *by = cJSON_AddObjectToObject(o, "by_need");
                for (int p = 0; p < n_p; p++) {
                    const char *need = ds.items[p].category;
                    if (cJSON_GetObjectItemCaseSensitive(by, need)) continue;
                    int nw = 0, na = 0;
                    for (int q = p; q < n_p; q++) {
                        if (strcmp(ds.items[q].category, need)) continue;
                        const sc_judge_verdict *v0 = &vd[2 * q], *v1 = &vd[2 * q + 1];
                        nw += (v0->status == SC_OK && v0->winner == 1) + (v1->status == SC_OK && v1->winner == 0);
                        na += (v0->status == SC_OK) + (v1->status == SC_OK);
                    }
                    cJSON_AddItemToObject(by, need, rate_json(nw, na));
                }
            }
        }
        at += qc->n_traits * n_nonzero * 2 * n_p;
        char *text = cJSON_Print(doc);
        cJSON_Delete(doc);
        snprintf(path, sizeof path, "%s/search_%04d.json", qdir, w[j].search);
        st = text ? sc_write_file_atomic(path, text, strlen(text)) : sc_errorf(SC_ERR_MEM, "out of memory");
        free(text);
        if (st) goto done;
        sc_log(SC_LOG_INFO, "quantify: search %d: %s", w[j].search, path);
    }
    if (failed) {
        const char *why = NULL;
        for (int i = 0; i < n_pairs && !why; i++) if (verdicts[i].status != SC_OK) why = verdicts[i].error;
        st = sc_errorf(SC_ERR_LIB, "quantify: %d of %d comparisons got no answer (first: %s); they are left out of the win rates; run `steerclear quantify` again to ask them again",
                       failed, n_pairs, why ? why : "unknown");
    }
done:
    for (int i = 0; verdicts && i < n_pairs; i++) free(verdicts[i].error);
    if (ptok) for (int p = 0; p < n_p; p++) free(ptok[p]);
    if (base) for (int p = 0; p < n_p; p++) free(base[p]);
    for (int j = 0; w && j < n_w; j++) {
        for (int i = 0; w[j].text && i < qc->n_scales * n_p; i++) free(w[j].text[i]);
        free(w[j].text);
    }
    free(w); free(ptok); free(plen); free(base); free(pairs); free(verdicts); free(vals);
    cJSON_Delete(settings);
    sc_provider_free(prov);
    sc_dataset_free(&ds);
    return st;
}
