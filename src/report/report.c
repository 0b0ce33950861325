// report.c — the report stage (see steerclear/judging.h): whatever parts of a run exist —
// finished searches (results.h5), judge themes (judge/themes.json, /judge), scores
// (scores.json, /scores), scale sweeps (quantify/search_NNNN.json) — as figures in
// RUN_DIR/report/ and RUN_DIR/report.md, which shows them with tables and names each missing
// part with the command that makes it. Image links are relative (report/NAME.png), so the run
// directory can be moved. Theme texts come from an LLM: they reach report.md only through
// sc_sb_md_text and never reach a figure (text.c).
// Leaves out: drawing (figures.c), writing report.md (markdown.c), the command line (src/cli).
#include "steerclear/judging.h"
#include "steerclear/score.h"
#include "report_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// A run-directory JSON file: NULL (and a reason in `problem`) when absent or unreadable.
static cJSON *load_json(const char *path, char *problem, size_t n) {
    problem[0] = '\0';
    if (!sc_file_exists(path)) return NULL;
    char *text = NULL;
    if (sc_read_file(path, &text, NULL) != SC_OK) {
        snprintf(problem, n, "%s", sc_last_error());
        sc_error_clear();
        return NULL;
    }
    cJSON *doc = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(doc)) {
        snprintf(problem, n, "%s is not a JSON object (cut short or corrupt?)", path);
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

static void report_free(sc_report *r) {
    sc_results_meta_free(&r->meta);
    free(r->searches);
    cJSON_Delete(r->scores);
    cJSON_Delete(r->themes);
    free(r->j_provider); free(r->j_model); free(r->j_embed); free(r->j_date);
    for (int k = 0; k < r->n_ranked; k++) {
        free(r->rk[k].S); free(r->rk[k].row_batch); free(r->rk[k].col_batch); free(r->rk[k].match);
    }
    free(r->rk);
    for (int k = 0; k < r->n_q; k++) sc_rep_quantify_free(&r->q[k]);
    free(r->q);
    sc_sb_free(&r->q_problems);
    sc_figs_free(&r->figs);
    sc_sb_free(&r->md);
}

static char *dup_or_null(const char *s) { return s ? sc_strdup(s) : NULL; }

// --- Gathering ----------------------------------------------------------------------------------

// The judge's settings: from scores.json (what the scores were made from), else /judge, else
// themes.json.
static void gather_judge(sc_report *r) {
    const cJSON *j = jget(r->scores, "judge");
    sc_judge_meta m = {0};
    if (j) {
        r->j_provider = dup_or_null(jstr(j, "provider")); r->j_model = dup_or_null(jstr(j, "model"));
        r->j_embed = dup_or_null(jstr(j, "embed_model")); r->j_date = dup_or_null(jstr(j, "date"));
        r->j_batches = jint(j, "batches", 0); r->j_batch_size = jint(j, "batch_size", 0);
        if (!jnum(j, "scale", &r->j_scale)) r->j_scale = NAN;
        r->judged = 1;
    } else if (sc_results_read_judge_meta(r->run, &m) == SC_OK) {
        r->j_provider = dup_or_null(m.provider); r->j_model = dup_or_null(m.model);
        r->j_embed = dup_or_null(m.embed_model); r->j_date = dup_or_null(m.date);
        r->j_batches = m.batches; r->j_batch_size = m.batch_size; r->j_scale = m.scale;
        r->judged = 1;
        sc_judge_meta_free(&m);
    } else if (r->themes) {
        const cJSON *s = jget(r->themes, "settings");
        r->j_provider = dup_or_null(jstr(s, "provider")); r->j_model = dup_or_null(jstr(s, "model"));
        r->j_embed = dup_or_null(jstr(s, "embed_model")); r->j_date = dup_or_null(jstr(r->themes, "date"));
        r->j_batches = jint(s, "batches", 0); r->j_batch_size = jint(s, "batch_size", 0);
        if (!jnum(s, "scale", &r->j_scale)) r->j_scale = NAN;
        r->judged = 1;
    }
    sc_error_clear();
}

// Row (or column) of a batch in batch_of[0..n), -1 when absent.
static int index_of(const int *batch_of, int n, int batch) {
    for (int i = 0; i < n; i++)
        if (batch_of[i] == batch) return i;
    return -1;
}

// One scored search's heatmap: the cosine matrix from /scores, the theme batches from /judge,
// the matching from scores.json; a reason in k->problem when they do not fit together.
static sc_status gather_heatmap(sc_report *r, sc_rep_ranked *k) {
    sc_judge_record rec = {0};
    int na = 0, nb = 0;
    const int themes_a = jint(k->entry, "adapter_themes", -1), themes_b = jint(k->entry, "direction_themes", -1);
    if (themes_a == 0 || themes_b == 0) {
        snprintf(k->problem, sizeof k->problem, "the judge found no theme in %s outputs, so there is nothing to match (Linearity Score 0)",
                 themes_a == 0 && themes_b == 0 ? "either the adapter's or the direction's" : themes_a == 0 ? "the adapter's" : "the direction's");
        return SC_OK;
    }
    if (sc_results_read_cosine(r->run, k->search, &k->S, &na, &nb) != SC_OK) {
        snprintf(k->problem, sizeof k->problem, "%s", sc_last_error());
        sc_error_clear();
        return SC_OK;
    }
    if (sc_results_read_judge(r->run, k->search, &rec) != SC_OK) {
        snprintf(k->problem, sizeof k->problem, "%s", sc_last_error());
        sc_error_clear();
        return SC_OK;
    }
    if (rec.n[0] != na || rec.n[1] != nb || jint(k->entry, "adapter_themes", na) != na || jint(k->entry, "direction_themes", nb) != nb) {
        snprintf(k->problem, sizeof k->problem, "its scores (%d x %d themes) do not fit its judged themes (%d x %d): the judge ran again after the score; run `steerclear score` again",
                 na, nb, rec.n[0], rec.n[1]);
        sc_judge_record_free(&rec);
        return SC_OK;
    }
    k->na = na;
    k->nb = nb;
    k->row_batch = rec.batch_of[0];
    k->col_batch = rec.batch_of[1];
    rec.batch_of[0] = rec.batch_of[1] = NULL;
    sc_judge_record_free(&rec);
    k->match = malloc(sizeof(int) * (size_t)na);
    if (!k->match) return sc_errorf(SC_ERR_MEM, "out of memory");
    for (int i = 0; i < na; i++) k->match[i] = -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, jget(k->entry, "matches")) {
        const int i = index_of(k->row_batch, na, jint(m, "adapter_batch", -1));
        const int j = index_of(k->col_batch, nb, jint(m, "direction_batch", -1));
        if (i >= 0 && j >= 0) k->match[i] = j;
    }
    return SC_OK;
}

static sc_status gather_ranking(sc_report *r) {
    const cJSON *arr = jget(r->scores, "ranking");
    const int n = cJSON_GetArraySize(arr);
    r->rk = calloc((size_t)(n ? n : 1), sizeof *r->rk);
    if (!r->rk) return sc_errorf(SC_ERR_MEM, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        sc_rep_ranked *k = &r->rk[r->n_ranked];
        k->search = jint(e, "search", -1);
        if (k->search < 0 || !jnum(e, "linearity", &k->linearity)) continue;
        k->entry = e;
        k->rank = r->n_ranked + 1;
        k->faithful = k->linearity >= r->threshold;
        r->n_ranked++;
        SC_TRY(gather_heatmap(r, k));
    }
    return SC_OK;
}

void sc_rep_quantify_free(sc_rep_quantify *q) {
    free(q->date); free(q->provider); free(q->model);
    for (int t = 0; t < q->n_traits; t++) free(q->traits[t]);
    for (int t = 0; t < q->n_needs; t++) free(q->needs[t]);
    free(q->traits); free(q->needs);
    for (int i = 0; i < q->n_points; i++) { free(q->pt[i].trait); free(q->pt[i].need); }
    free(q->pt);
    memset(q, 0, sizeof *q);
}

// Add name to names[*n] unless there; -1 when out of memory.
static int add_name(char ***names, int *n, const char *name) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*names)[i], name)) return 0;
    char **v = realloc(*names, sizeof(char *) * (size_t)(*n + 1));
    if (!v) return -1;
    *names = v;
    if (!(v[*n] = sc_strdup(name))) return -1;
    (*n)++;
    return 0;
}

static int name_index(char **names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

static void read_rate(const cJSON *o, sc_rep_rate *r) {
    r->wins = jint(o, "wins", 0);
    r->answers = jint(o, "answers", 0);
    r->have = r->answers > 0 && r->wins >= 0 && r->wins <= r->answers;
    if (!r->have) return;
    if (!jnum(o, "rate", &r->rate)) r->rate = (double)r->wins / r->answers;
    double lo, hi;
    sc_wilson_interval(r->wins, r->answers, &lo, &hi);
    if (!jnum(o, "ci_low", &r->lo)) r->lo = lo;
    if (!jnum(o, "ci_high", &r->hi)) r->hi = hi;
}

// Read quantify/search_NNNN.json (the format in judging.h). SC_ERR_FORMAT with a message when
// it does not have that shape.
static sc_status quantify_load(const char *path, int search, sc_rep_quantify *q) {
    memset(q, 0, sizeof *q);
    q->search = search;
    char problem[1024];
    cJSON *doc = load_json(path, problem, sizeof problem);
    if (!doc) return sc_errorf(SC_ERR_FORMAT, "%s", problem);
    const cJSON *sweep = jget(doc, "sweep"), *e;
    sc_status st = cJSON_IsArray(sweep) && cJSON_GetArraySize(sweep) > 0
                       ? SC_OK : sc_errorf(SC_ERR_FORMAT, "%s: no \"sweep\" array of scales", path);
    q->have_linearity = jnum(doc, "linearity", &q->linearity);
    q->date = dup_or_null(jstr(doc, "date"));
    q->provider = dup_or_null(jstr(jget(doc, "judge"), "provider"));
    q->model = dup_or_null(jstr(jget(doc, "judge"), "model"));
    static const char *const usual[] = {"low", "medium", "high"};
    for (int i = 0; !st && i < 3; i++) {        // the usual need levels first, in their order
        int used = 0;
        cJSON_ArrayForEach(e, sweep) {
            const cJSON *t;
            cJSON_ArrayForEach(t, jget(e, "traits")) used |= jget(jget(t, "by_need"), usual[i]) != NULL;
        }
        if (used && add_name(&q->needs, &q->n_needs, usual[i])) st = sc_errorf(SC_ERR_MEM, "out of memory");
    }
    const cJSON *names_from = st ? NULL : sweep;
    cJSON_ArrayForEach(e, names_from) {
        const cJSON *t, *nd;
        if (!cJSON_IsNumber(jget(e, "scale"))) { st = sc_errorf(SC_ERR_FORMAT, "%s: a sweep entry has no number \"scale\"", path); break; }
        cJSON_ArrayForEach(t, jget(e, "traits")) {
            if (!t->string || add_name(&q->traits, &q->n_traits, t->string)) { st = sc_errorf(SC_ERR_MEM, "out of memory"); break; }
            cJSON_ArrayForEach(nd, jget(t, "by_need"))
                if (!nd->string || add_name(&q->needs, &q->n_needs, nd->string)) { st = sc_errorf(SC_ERR_MEM, "out of memory"); break; }
        }
    }
    const int np = cJSON_GetArraySize(sweep);
    if (!st && !(q->pt = calloc((size_t)np, sizeof *q->pt))) st = sc_errorf(SC_ERR_MEM, "out of memory");
    const cJSON *points_from = st ? NULL : sweep;
    const size_t n_need_rates = (size_t)q->n_traits * (size_t)q->n_needs;
    cJSON_ArrayForEach(e, points_from) {
        sc_rep_point *p = &q->pt[q->n_points++];
        p->trait = calloc((size_t)(q->n_traits ? q->n_traits : 1), sizeof *p->trait);
        p->need = calloc(n_need_rates ? n_need_rates : 1, sizeof *p->need);
        if (!p->trait || !p->need) { st = sc_errorf(SC_ERR_MEM, "out of memory"); break; }
        p->scale = jget(e, "scale")->valuedouble;
        p->outputs = jint(e, "outputs", 0);
        p->have_qm = jnum(jget(e, "question_marks"), "mean", &p->qm_mean);
        if (p->have_qm && !jnum(jget(e, "question_marks"), "se", &p->qm_se)) p->qm_se = NAN;
        p->have_words = jnum(jget(e, "words"), "mean", &p->words_mean);
        if (p->have_words && !jnum(jget(e, "words"), "se", &p->words_se)) p->words_se = NAN;
        const cJSON *t, *nd;
        cJSON_ArrayForEach(t, jget(e, "traits")) {
            const int ti = name_index(q->traits, q->n_traits, t->string);
            read_rate(t, &p->trait[ti]);
            cJSON_ArrayForEach(nd, jget(t, "by_need")) read_rate(nd, &p->need[ti * q->n_needs + name_index(q->needs, q->n_needs, nd->string)]);
        }
    }
    cJSON_Delete(doc);
    if (st) { sc_rep_quantify_free(q); return st; }
    for (int i = 1; i < q->n_points; i++)       // ascending scale
        for (int k = i; k > 0 && q->pt[k - 1].scale > q->pt[k].scale; k--) {
            sc_rep_point t = q->pt[k]; q->pt[k] = q->pt[k - 1]; q->pt[k - 1] = t;
        }
    return SC_OK;
}

int sc_rep_rank_of(const sc_report *r, int search) {
    for (int k = 0; k < r->n_ranked; k++)
        if (r->rk[k].search == search) return k;
    return r->n_ranked + search;                // unranked ones after, by search
}

static sc_status gather_quantify(sc_report *r) {
    char qdir[4200], path[4500];
    SC_TRY(sc_run_path(r->run, "quantify", qdir, sizeof qdir));
    DIR *d = opendir(qdir);
    if (!d) return SC_OK;
    sc_status st = SC_OK;
    for (struct dirent *e; !st && (e = readdir(d));) {
        int s = -1, end = 0;
        if (sscanf(e->d_name, "search_%d.json%n", &s, &end) != 1 || e->d_name[end] || s < 0) continue;
        sc_rep_quantify *v = realloc(r->q, sizeof *v * (size_t)(r->n_q + 1));
        if (!v) { st = sc_errorf(SC_ERR_MEM, "out of memory"); break; }
        r->q = v;
        snprintf(path, sizeof path, "%s/%s", qdir, e->d_name);
        const sc_status qs = quantify_load(path, s, &r->q[r->n_q]);
        if (qs == SC_OK) { r->n_q++; continue; }
        if (qs == SC_ERR_MEM) { st = qs; break; }
        sc_log(SC_LOG_WARN, "report: quantify/%s left out: %s", e->d_name, sc_last_error());
        sc_sb_printf(&r->q_problems, "- quantify/search\\_%04d.json is left out: ", s);
        sc_sb_md_text(&r->q_problems, sc_last_error(), 600);
        sc_sb_puts(&r->q_problems, "; run `steerclear quantify` again for it.\n");
        sc_error_clear();
    }
    closedir(d);
    for (int i = 0; !st && i < r->n_q; i++) {   // the Linearity Score shown is the current one
        const int k = sc_rep_rank_of(r, r->q[i].search);
        if (k < r->n_ranked) { r->q[i].linearity = r->rk[k].linearity; r->q[i].have_linearity = 1; }
    }
    for (int i = 1; !st && i < r->n_q; i++)     // the report's order: ranked first
        for (int k = i; k > 0 && sc_rep_rank_of(r, r->q[k - 1].search) > sc_rep_rank_of(r, r->q[k].search); k--) {
            sc_rep_quantify t = r->q[k]; r->q[k] = r->q[k - 1]; r->q[k - 1] = t;
        }
    return st;
}

// --- Figures --------------------------------------------------------------------------------------

static sc_status add_figures(sc_report *r) {
    char name[64];
    sc_fig *g = NULL;
    if (r->n_ranked > 0) {
        int *s = malloc(sizeof(int) * (size_t)r->n_ranked);
        double *l = malloc(sizeof(double) * (size_t)r->n_ranked);
        if (!s || !l || !(g = sc_figs_add(&r->figs, "ranking"))) { free(s); free(l); return sc_errorf(SC_ERR_MEM, "out of memory"); }
        for (int k = 0; k < r->n_ranked; k++) { s[k] = r->rk[k].search; l[k] = r->rk[k].linearity; }
        sc_fig_ranking(g, s, l, r->n_ranked, r->threshold);
        free(s);
        free(l);
    }
    for (int k = 0; k < r->n_ranked; k++) {
        const sc_rep_ranked *x = &r->rk[k];
        if (x->problem[0]) continue;
        snprintf(name, sizeof name, "heatmap_%04d", x->search);
        if (!(g = sc_figs_add(&r->figs, name))) return sc_errorf(SC_ERR_MEM, "out of memory");
        sc_fig_heatmap(g, x->search, x->linearity, x->S, x->na, x->nb, x->row_batch, x->col_batch, x->match);
    }
    for (int i = 0; i < r->n_searches; i++) {
        double *loss, *kl, *nll;
        int K;
        if (sc_results_read_steps(r->run, r->searches[i], &loss, &kl, &nll, &K) != SC_OK) {
            sc_log(SC_LOG_WARN, "report: no training curves for search %d: %s", r->searches[i], sc_last_error());
            sc_error_clear();
            continue;
        }
        snprintf(name, sizeof name, "training_%04d", r->searches[i]);
        if (K > 0 && (g = sc_figs_add(&r->figs, name))) sc_fig_training(g, r->searches[i], loss, kl, nll, K);
        free(loss); free(kl); free(nll);
        if (K > 0 && !g) return sc_errorf(SC_ERR_MEM, "out of memory");
    }
    for (int i = 0; i < r->n_q; i++) {
        snprintf(name, sizeof name, "sweep_%04d", r->q[i].search);
        if (!(g = sc_figs_add(&r->figs, name))) return sc_errorf(SC_ERR_MEM, "out of memory");
        sc_fig_sweep(g, &r->q[i]);
        if (r->q[i].n_traits == 0) continue;
        snprintf(name, sizeof name, "traits_%04d", r->q[i].search);
        if (!(g = sc_figs_add(&r->figs, name))) return sc_errorf(SC_ERR_MEM, "out of memory");
        sc_fig_traits(g, &r->q[i]);
    }
    return SC_OK;
}

// Figures of an earlier report that this one does not draw (searches no longer scored, say):
// their PNG, data and script go, so report/ holds only what report.md shows.
static void remove_old_figures(sc_report *r) {
    static const char *const kinds[] = {"heatmap_", "training_", "sweep_", "traits_", "ranking."};
    DIR *d = opendir(r->rdir);
    int removed = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".dat") && strcmp(dot, ".gp"))) continue;
        int ours = 0;
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) ours |= !strncmp(e->d_name, kinds[i], strlen(kinds[i]));
        char name[64];
        if (!ours || (size_t)(dot - e->d_name) >= sizeof name) continue;
        memcpy(name, e->d_name, (size_t)(dot - e->d_name));
        name[dot - e->d_name] = '\0';
        if (sc_figs_find(&r->figs, name)) continue;
        char path[4500];
        snprintf(path, sizeof path, "%s/%s", r->rdir, e->d_name);
        removed += unlink(path) == 0;
    }
    if (d) closedir(d);
    if (removed) sc_log(SC_LOG_INFO, "report: removed %d files of figures an earlier report drew and this one does not", removed);
}

// --- The stage -------------------------------------------------------------------------------------

sc_status sc_report_run(sc_run *run, const sc_judge_config *c) {
    sc_report r = {0};
    r.run = run;
    const double t0 = sc_now_seconds();
    char path[4200], when[32];
    if (!realpath(sc_run_dir(run), r.dir)) snprintf(r.dir, sizeof r.dir, "%s", sc_run_dir(run));
    if (!sc_results_exists(run))
        return sc_errorf(SC_ERR_ARG, "%s/results.h5 does not exist: nothing to report; run `steerclear search --out %s` first "
                         "(then extract, evaluate, judge, score and quantify)", r.dir, r.dir);
    sc_status st = sc_run_path(run, "report", r.rdir, sizeof r.rdir);
    if (!st) st = sc_results_read_meta(run, &r.meta);
    if (!st) st = sc_results_list_searches(run, &r.searches, &r.n_searches);
    if (!st) st = sc_run_path(run, "judge/themes.json", path, sizeof path);
    if (st) goto done;
    r.themes = load_json(path, r.themes_problem, sizeof r.themes_problem);
    if ((st = sc_run_path(run, "scores.json", path, sizeof path))) goto done;
    r.scores = load_json(path, r.scores_problem, sizeof r.scores_problem);
    if (r.scores && !cJSON_IsArray(jget(r.scores, "ranking"))) snprintf(r.scores_problem, sizeof r.scores_problem, "%.900s has no \"ranking\" array", path);
    r.have_scores_threshold = jnum(r.scores, "threshold", &r.scores_threshold);
    r.threshold = c ? c->threshold : r.have_scores_threshold ? r.scores_threshold : 0.83;
    gather_judge(&r);
    if ((st = gather_ranking(&r)) || (st = gather_quantify(&r))) goto done;
    if ((st = sc_mkdir_p(r.rdir)) || (st = add_figures(&r))) goto done;
    remove_old_figures(&r);
    if ((st = sc_figs_render(&r.figs, r.rdir))) goto done;
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    if ((st = sc_rep_write_md(&r, when))) goto done;
    sc_log(SC_LOG_INFO, "report: %d searches (%d scored, %d with sweeps), %d figures (%d drawn, %d up to date, %d missing) in %.1f s; %s/report.md",
           r.n_searches, r.n_ranked, r.n_q, r.figs.n, r.figs.drawn, r.figs.kept, r.figs.failed, sc_now_seconds() - t0, r.dir);
done:
    report_free(&r);
    return st;
}
