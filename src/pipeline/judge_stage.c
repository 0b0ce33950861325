// judge_stage.c — the judge stage (see steerclear/judging.h): evaluation files to batches, the
// provider's themes (answers already in RUN_DIR/judge/themes.json with the same settings are
// kept), then one embedding call over every theme of the run; themes.json and results.h5 /judge.
// Leaves out: judging base.json against itself (the base model is the reference side).
#include "steerclear/monitor.h"
#include "steerclear/judging.h"
#include "steerclear/evaluate.h"
#include "steerclear/json.h"
#include "steerclear/rng.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// --- Evaluation files -----------------------------------------------------------------------------

typedef struct {
    char *path;
    cJSON *root;               // owns the strings the items point to
    sc_judge_item *items;
    int n;
} outputs;

static void outputs_free(outputs *o) {
    free(o->path);
    cJSON_Delete(o->root);
    free(o->items);
    memset(o, 0, sizeof *o);
}

static const char *field_str(const cJSON *e, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// [{prompt_id, prompt, original_completion, output}, ...] (the study's shape)
static sc_status outputs_load(const char *path, outputs *o) {
    memset(o, 0, sizeof *o);
    char *text = NULL;
    SC_TRY(sc_read_file(path, &text, NULL));
    o->root = cJSON_Parse(text);
    free(text);
    o->path = sc_strdup(path);
    if (!o->path) { outputs_free(o); return SC_ERR_MEM; }
    if (!cJSON_IsArray(o->root)) { outputs_free(o); return sc_errorf(SC_ERR_FORMAT, "%s: expected a JSON array of {prompt_id, prompt, original_completion, output}", path); }
    o->n = cJSON_GetArraySize(o->root);
    o->items = calloc((size_t)(o->n ? o->n : 1), sizeof *o->items);
    if (!o->items) { outputs_free(o); return sc_errorf(SC_ERR_MEM, "out of memory"); }
    int i = 0;
    for (const cJSON *e = o->root->child; e; e = e->next, i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "prompt_id");
        sc_judge_item *it = &o->items[i];
        it->prompt = field_str(e, "prompt");
        it->original = field_str(e, "original_completion");
        it->output = field_str(e, "output");
        if (!cJSON_IsNumber(id) || id->valuedouble != (double)(int)id->valuedouble || !it->prompt || !it->original || !it->output) {
            sc_status st = sc_errorf(SC_ERR_FORMAT, "%s: entry %d needs an integer prompt_id and the strings prompt, original_completion and output", path, i);
            outputs_free(o);
            return st;
        }
        it->prompt_id = id->valueint;
    }
    return SC_OK;
}

// --- Jobs: one per search -----------------------------------------------------------------------

typedef struct {
    int search;
    outputs side[2];           // 0: the adapter's outputs, 1: the direction's
    sc_judge_item *ordered[2]; // the items in the shuffled order
    int n_batches;
    sc_judge_theme *themes[2]; // (n_batches) per side
} job;

static void job_free(job *j) {
    for (int s = 0; s < 2; s++) {
        outputs_free(&j->side[s]);
        free(j->ordered[s]);
        for (int b = 0; j->themes[s] && b < j->n_batches; b++) sc_judge_theme_free(&j->themes[s][b]);
        free(j->themes[s]);
    }
}

static const char *const side_name[2] = {"adapter", "direction"};

// The searches that have both files in `dir`, ascending.
static sc_status find_searches(const char *dir, const sc_judge_config *c, int **out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return sc_errorf(SC_ERR_IO, "%s: cannot list the evaluation outputs: run `steerclear evaluate` first, or give --outputs DIR", dir);
    int cap = 16, cnt = 0;
    int *v = malloc(sizeof(int) * (size_t)cap);
    char scale[64], path[4400];
    sc_evaluate_scale_name(c->scale, scale, sizeof scale);
    for (struct dirent *e; v && (e = readdir(d));) {
        int s = -1, end = 0;
        if (sscanf(e->d_name, "adapter_%d.json%n", &s, &end) != 1 || e->d_name[end] || s < 0) continue;
        snprintf(path, sizeof path, "%s/direction_%04d_scale_%s.json", dir, s, scale);
        if (!sc_file_exists(path)) { sc_log(SC_LOG_WARN, "search %d: no %s: only searches with both outputs are judged", s, path); continue; }
        if (cnt == cap) { int *nv = realloc(v, sizeof(int) * (size_t)(cap *= 2)); if (!nv) { free(v); v = NULL; break; } v = nv; }
        v[cnt++] = s;
    }
    closedir(d);
    if (!v) return sc_errorf(SC_ERR_MEM, "out of memory");
    for (int i = 1; i < cnt; i++) for (int k = i; k > 0 && v[k - 1] > v[k]; k--) { int t = v[k]; v[k] = v[k - 1]; v[k - 1] = t; }
    *out = v;
    *n = cnt;
    return SC_OK;
}

static sc_status job_load(job *j, const char *dir, int search, const sc_judge_config *c, uint64_t seed) {
    memset(j, 0, sizeof *j);
    j->search = search;
    char path[4400], scale[64];
    sc_evaluate_scale_name(c->scale, scale, sizeof scale);
    snprintf(path, sizeof path, "%s/adapter_%04d.json", dir, search);
    SC_TRY(outputs_load(path, &j->side[0]));
    snprintf(path, sizeof path, "%s/direction_%04d_scale_%s.json", dir, search, scale);
    SC_TRY(outputs_load(path, &j->side[1]));
    const int n = j->side[0].n;
    if (j->side[1].n != n) return sc_errorf(SC_ERR_FORMAT, "%s has %d outputs but %s has %d: both must cover the same prompts", j->side[0].path, n, path, j->side[1].n);
    for (int i = 0; i < n; i++)
        if (j->side[0].items[i].prompt_id != j->side[1].items[i].prompt_id)
            return sc_errorf(SC_ERR_FORMAT, "%s and %s: entry %d is prompt %d in one and %d in the other", j->side[0].path, path, i,
                             j->side[0].items[i].prompt_id, j->side[1].items[i].prompt_id);
    // one shuffle (Fisher-Yates on the run's seed) for both sides: batch k holds the same prompts
    int *perm = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!perm) return sc_errorf(SC_ERR_MEM, "out of memory");
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        uint32_t r[4];
        sc_philox4x32(seed, 0x4a55444745ull /* "JUDGE" */, (uint64_t)i, r);
        int k = (int)((((uint64_t)r[0] << 32) | r[1]) % (uint64_t)(i + 1));
        int t = perm[i]; perm[i] = perm[k]; perm[k] = t;
    }
    for (int s = 0; s < 2; s++) {
        j->ordered[s] = malloc(sizeof(sc_judge_item) * (size_t)(n > 0 ? n : 1));
        if (!j->ordered[s]) { free(perm); return sc_errorf(SC_ERR_MEM, "out of memory"); }
        for (int i = 0; i < n; i++) j->ordered[s][i] = j->side[s].items[perm[i]];
    }
    free(perm);
    j->n_batches = n == 0 ? 0 : (n + c->batch_size - 1) / c->batch_size;
    if (j->n_batches > c->batches) j->n_batches = c->batches;
    for (int s = 0; s < 2; s++)
        if (!(j->themes[s] = calloc((size_t)(j->n_batches ? j->n_batches : 1), sizeof(sc_judge_theme)))) return sc_errorf(SC_ERR_MEM, "out of memory");
    return SC_OK;
}

static sc_judge_batch job_batch(const job *j, int side, int b, int batch_size) {
    const int n = j->side[0].n, first = b * batch_size;
    sc_judge_batch bt = {j->ordered[side] + first, n - first < batch_size ? n - first : batch_size};
    return bt;
}

// --- themes.json -------------------------------------------------------------------------------

static cJSON *settings_json(const sc_judge_config *c, const sc_provider *p, uint64_t seed, const char *dir) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "provider", p->name);
    cJSON_AddStringToObject(s, "model", p->model);
    cJSON_AddStringToObject(s, "embed_model", p->embed_model);
    cJSON_AddNumberToObject(s, "batches", c->batches);
    cJSON_AddNumberToObject(s, "batch_size", c->batch_size);
    cJSON_AddNumberToObject(s, "scale", (double)c->scale);
    cJSON_AddNumberToObject(s, "seed", (double)seed);
    cJSON_AddStringToObject(s, "outputs", dir);
    return s;
}

static cJSON *ints_json(const int *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *theme_json(const sc_judge_theme *t, const sc_judge_batch *b, int index) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "batch", index);
    cJSON *ids = cJSON_AddArrayToObject(o, "prompt_ids");
    for (int i = 0; i < b->n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(b->items[i].prompt_id));
    cJSON_AddStringToObject(o, "status", t->status == SC_OK ? "ok" : "failed");
    if (t->status != SC_OK) cJSON_AddStringToObject(o, "error", t->error ? t->error : sc_status_name(t->status));
    else {
        if (t->theme) cJSON_AddStringToObject(o, "theme", t->theme);
        else cJSON_AddNullToObject(o, "theme");
        if (t->reasoning) cJSON_AddStringToObject(o, "reasoning", t->reasoning);
        cJSON_AddItemToObject(o, "prompts", ints_json(t->prompts, t->n_prompts));
    }
    return o;
}

// An answer from an earlier themes.json for the same batch (same prompts, in order), or 0.
static int reuse_theme(const cJSON *old_side, int b, const sc_judge_batch *bt, sc_judge_theme *t) {
    const cJSON *e = cJSON_GetArrayItem(old_side, b);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(e, "prompt_ids");
    const char *status = field_str(e, "status");
    if (!status || strcmp(status, "ok") || cJSON_GetArraySize(ids) != bt->n) return 0;
    int i = 0;
    for (const cJSON *v = ids->child; v; v = v->next, i++)
        if (!cJSON_IsNumber(v) || v->valueint != bt->items[i].prompt_id) return 0;
    const cJSON *theme = cJSON_GetObjectItemCaseSensitive(e, "theme"), *prompts = cJSON_GetObjectItemCaseSensitive(e, "prompts");
    memset(t, 0, sizeof *t);
    if (cJSON_IsString(theme) && !(t->theme = sc_strdup(theme->valuestring))) return 0;
    if (field_str(e, "reasoning")) t->reasoning = sc_strdup(field_str(e, "reasoning"));
    t->n_prompts = cJSON_GetArraySize(prompts);
    t->prompts = malloc(sizeof(int) * (size_t)(t->n_prompts ? t->n_prompts : 1));
    if (!t->prompts) { sc_judge_theme_free(t); return 0; }
    i = 0;
    for (const cJSON *v = prompts ? prompts->child : NULL; v; v = v->next) t->prompts[i++] = v->valueint;
    t->status = SC_OK;
    return 1;
}

// A search entry of an earlier themes.json that can be kept: an integer search and, per side, an
// array of batches each with an integer "batch" and a "status" (a hand-edited or damaged file is
// asked again rather than trusted).
static int entry_ok(const cJSON *e) {
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(e, "search");
    if (!cJSON_IsObject(e) || !sc_json_is_int(sv, 0, SC_MAX_SEARCH_INDEX - 1)) return 0;
    for (int s = 0; s < 2; s++) {
        const cJSON *side = cJSON_GetObjectItemCaseSensitive(e, side_name[s]);
        if (!cJSON_IsArray(side)) return 0;
        for (const cJSON *t = side->child; t; t = t->next)
            if (!cJSON_IsObject(t) || !sc_json_is_int(cJSON_GetObjectItemCaseSensitive(t, "batch"), 0, 1e6) || !field_str(t, "status")) return 0;
    }
    return 1;
}

// The searches array of an earlier themes.json made with the same settings, else NULL.
static const cJSON *old_searches(const cJSON *old, int same) {
    const cJSON *a = same ? cJSON_GetObjectItemCaseSensitive(old, "searches") : NULL;
    return cJSON_IsArray(a) ? a : NULL;
}

// --- The stage ------------------------------------------------------------------------------------

// Insert search entry e into arr keeping ascending "search".
static void add_sorted(cJSON *arr, cJSON *e) {
    const int s = cJSON_GetObjectItemCaseSensitive(e, "search")->valueint;
    int at = 0;
    for (const cJSON *x = arr->child; x; x = x->next, at++)
        if (cJSON_GetObjectItemCaseSensitive(x, "search")->valueint > s) break;
    if (at < cJSON_GetArraySize(arr)) cJSON_InsertItemInArray(arr, at, e);
    else cJSON_AddItemToArray(arr, e);
}

// One embedding call over every theme in themes.json (the lexical provider's TF-IDF
// needs the whole corpus in one call; HTTP answers come from the cache), then /judge.
static sc_status embed_and_record(sc_run *run, sc_provider *p, const sc_judge_config *c, const cJSON *doc, const char *when) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "searches");
    const int n = cJSON_GetArraySize(arr);
    int total = 0;
    for (const cJSON *e = arr->child; e; e = e->next)
        for (int s = 0; s < 2; s++) total += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e, side_name[s]));
    const char **texts = malloc(sizeof(char *) * (size_t)(total > 0 ? total : 1));
    int *batch = malloc(sizeof(int) * (size_t)(total > 0 ? total : 1));
    sc_judge_record *rec = calloc((size_t)(n > 0 ? n : 1), sizeof *rec);
    float *vecs = NULL;
    int n_text = 0, dim = 0;
    sc_status st = texts && batch && rec ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
    int k = 0;
    for (const cJSON *e = st ? NULL : arr->child; e; e = e->next, k++) {
        rec[k].search = cJSON_GetObjectItemCaseSensitive(e, "search")->valueint;
        for (int s = 0; s < 2; s++)
            for (const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, side_name[s])->child; t; t = t->next) {
                const char *status = field_str(t, "status");
                if (!status || strcmp(status, "ok")) continue;
                rec[k].answered[s]++;
                const char *theme = field_str(t, "theme");
                if (!theme) continue;   // no theme: not embedded, counts 0 in the score
                texts[n_text] = theme;
                batch[n_text++] = cJSON_GetObjectItemCaseSensitive(t, "batch")->valueint;
                rec[k].n[s]++;
            }
    }
    if (!st && n_text > 0 && (st = p->op->embed(p, texts, n_text, &vecs, &dim))) sc_error_wrap(st, "judge: embedding the themes: ");
    if (!st) {
        int at = 0;
        for (k = 0; k < n; k++)
            for (int s = 0; s < 2; s++) {
                rec[k].dim = dim;
                rec[k].emb[s] = vecs ? vecs + (size_t)at * (size_t)dim : NULL;
                rec[k].batch_of[s] = batch + at;
                at += rec[k].n[s];
            }
        sc_judge_meta jm = {.provider = p->name, .model = p->model, .embed_model = p->embed_model, .date = when,
                            .batches = c->batches, .batch_size = c->batch_size, .scale = c->scale};
        st = sc_results_write_judge(run, &jm, rec, n);
    }
    free(texts); free(batch); free(rec); free(vecs);
    return st;
}

sc_status sc_judge_run(sc_run *run, const sc_judge_config *c, const sc_judge_opts *o) {
    char dir[4096], jdir[4200], cache[4300], tpath[4300];
    sc_status st = SC_OK;
    if (o->outputs_dir) SC_TRY(sc_path_resolve(o->outputs_dir, NULL, dir, sizeof dir));
    else SC_TRY(sc_run_path(run, "eval", dir, sizeof dir));
    SC_TRY(sc_run_path(run, "judge", jdir, sizeof jdir));
    SC_TRY(sc_mkdir_p(jdir));
    snprintf(cache, sizeof cache, "%s/cache", jdir);
    snprintf(tpath, sizeof tpath, "%s/themes.json", jdir);
    uint64_t seed = o->seed;
    if (!o->seed_set) {
        sc_results_meta meta = {0};
        char *config = NULL;
        if (sc_results_exists(run) && sc_results_read_meta(run, &meta) == SC_OK) seed = sc_results_run_seed(meta.config_json);
        else if (sc_run_read_config(run, &config) == SC_OK) seed = sc_results_run_seed(config);
        else seed = sc_results_run_seed(NULL);
        sc_error_clear();
        sc_results_meta_free(&meta);
        free(config);
    }

    int *found = NULL, n_found = 0;
    job *jobs = NULL;
    int n_jobs = 0;
    sc_provider *p = NULL;
    sc_judge_batch *batches = NULL;
    sc_judge_theme *answers = NULL;
    int *slot_job = NULL, *slot_side = NULL, *slot_batch = NULL;
    cJSON *old = NULL, *doc = NULL;
    char *text = NULL;
    cJSON *settings = NULL;
    int n_ask = 0, total = 0, kept = 0, failed = 0;
    char when[32] = "";
    if ((st = find_searches(dir, c, &found, &n_found))) goto done;
    const int n_want = o->searches ? o->n_searches : n_found;
    jobs = calloc((size_t)(n_want ? n_want : 1), sizeof *jobs);
    if (!jobs) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int k = 0; k < n_want; k++) {
        const int s = o->searches ? o->searches[k] : found[k];
        int ok = 0;
        for (int i = 0; i < n_found; i++) ok |= found[i] == s;
        if (!ok) { st = sc_errorf(SC_ERR_ARG, "%s: search %d has no adapter_%04d.json and direction file to judge; run `steerclear evaluate` for it", dir, s, s); goto done; }
        if ((st = job_load(&jobs[n_jobs++], dir, s, c, seed))) goto done;
    }
    if (n_jobs == 0) { st = sc_errorf(SC_ERR_ARG, "%s: no evaluation outputs to judge (adapter_NNNN.json with direction_NNNN_scale_*.json); run `steerclear evaluate` first", dir); goto done; }
    if ((st = sc_judge_provider_open(c, cache, &p))) goto done;

    // answers kept from an earlier judge with the same settings
    settings = settings_json(c, p, seed, dir);
    if (sc_file_exists(tpath) && sc_read_file(tpath, &text, NULL) == SC_OK) old = cJSON_Parse(text);
    free(text);
    text = NULL;
    sc_error_clear();
    const int same = old && cJSON_Compare(cJSON_GetObjectItemCaseSensitive(old, "settings"), settings, 1);
    for (int k = 0; k < n_jobs; k++) total += 2 * jobs[k].n_batches;
    batches = calloc((size_t)(total ? total : 1), sizeof *batches);
    answers = calloc((size_t)(total ? total : 1), sizeof *answers);
    slot_job = malloc(sizeof(int) * (size_t)(total ? total : 1));
    slot_side = malloc(sizeof(int) * (size_t)(total ? total : 1));
    slot_batch = malloc(sizeof(int) * (size_t)(total ? total : 1));
    if (!batches || !answers || !slot_job || !slot_side || !slot_batch) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int k = 0; k < n_jobs; k++) {
        const cJSON *old_search = NULL;
        for (const cJSON *e = old_searches(old, same) ? old_searches(old, same)->child : NULL; e; e = e->next)
            if (entry_ok(e) && cJSON_GetObjectItemCaseSensitive(e, "search")->valueint == jobs[k].search) old_search = e;
        for (int s = 0; s < 2; s++)
            for (int b = 0; b < jobs[k].n_batches; b++) {
                const sc_judge_batch bt = job_batch(&jobs[k], s, b, c->batch_size);
                if (old_search && reuse_theme(cJSON_GetObjectItemCaseSensitive(old_search, side_name[s]), b, &bt, &jobs[k].themes[s][b])) { kept++; continue; }
                batches[n_ask] = bt;
                slot_job[n_ask] = k; slot_side[n_ask] = s; slot_batch[n_ask] = b;
                n_ask++;
            }
    }
    const double t0 = sc_now_seconds();
    sc_log(SC_LOG_INFO, "judge: %d searches, %d batches (%d answered before), provider %s (%s)", n_jobs, total, kept, p->name, p->model);
    // in chunks (several times the in-flight cap, so requests still overlap) for progress lines
    const int chunk = 4 * c->in_flight > 32 ? 4 * c->in_flight : 32;
    if (n_ask > 0) sc_monitor_progress("judge", 0, n_ask, "batches");
    for (int i0 = 0; i0 < n_ask; i0 += chunk) {
        const int m = n_ask - i0 < chunk ? n_ask - i0 : chunk;
        if ((st = p->op->themes(p, batches + i0, m, answers + i0))) goto done;
        sc_monitor_progress("judge", i0 + m, n_ask, "batches");
    }
    for (int i = 0; i < n_ask; i++) {
        jobs[slot_job[i]].themes[slot_side[i]][slot_batch[i]] = answers[i];
        memset(&answers[i], 0, sizeof answers[i]);
        failed += jobs[slot_job[i]].themes[slot_side[i]][slot_batch[i]].status != SC_OK;
    }
    sc_log(SC_LOG_INFO, "judge: %d themes in %.1f s (%d failed%s)", n_ask, sc_now_seconds() - t0, failed,
           failed ? ": they are recorded in judge/themes.json and asked again by the next `steerclear judge`" : "");

    // themes.json: every answer (and every failure) with the batches' prompts
    doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "settings", settings);
    settings = NULL;
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    cJSON_AddStringToObject(doc, "date", when);
    cJSON *arr = cJSON_AddArrayToObject(doc, "searches");
    for (int k = 0; k < n_jobs; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "search", jobs[k].search);
        cJSON_AddStringToObject(e, "adapter_file", jobs[k].side[0].path);
        cJSON_AddStringToObject(e, "direction_file", jobs[k].side[1].path);
        for (int s = 0; s < 2; s++) {
            cJSON *side = cJSON_AddArrayToObject(e, side_name[s]);
            for (int b = 0; b < jobs[k].n_batches; b++) {
                const sc_judge_batch bt = job_batch(&jobs[k], s, b, c->batch_size);
                cJSON_AddItemToArray(side, theme_json(&jobs[k].themes[s][b], &bt, b));
            }
        }
        add_sorted(arr, e);
    }
    // searches judged before with the same settings and not asked about now stay
    for (const cJSON *e = old_searches(old, same) ? old_searches(old, same)->child : NULL; e; e = e->next) {
        if (!entry_ok(e)) continue;
        const int s = cJSON_GetObjectItemCaseSensitive(e, "search")->valueint;
        int now_judged = 0, already = 0;
        for (int k = 0; k < n_jobs; k++) now_judged |= jobs[k].search == s;
        for (const cJSON *x = arr->child; x; x = x->next) already |= cJSON_GetObjectItemCaseSensitive(x, "search")->valueint == s;
        if (!now_judged && !already) add_sorted(arr, cJSON_Duplicate(e, 1));
    }
    if (!(text = cJSON_Print(doc))) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    if ((st = sc_write_file_atomic(tpath, text, strlen(text)))) goto done;
    st = embed_and_record(run, p, c, doc, when);
    if (!st && failed) st = sc_errorf(SC_ERR_LIB, "judge: %d of %d batches got no answer (see the errors in %s); run `steerclear judge` again to ask them again", failed, n_ask, tpath);
done:
    cJSON_Delete(settings);
    if (jobs) for (int k = 0; k < n_jobs; k++) job_free(&jobs[k]);
    for (int i = 0; answers && i < n_ask; i++) sc_judge_theme_free(&answers[i]);
    free(jobs); free(found); free(batches); free(answers); free(slot_job); free(slot_side); free(slot_batch);
    free(text);
    cJSON_Delete(old);
    cJSON_Delete(doc);
    sc_provider_free(p);
    return st;
}
