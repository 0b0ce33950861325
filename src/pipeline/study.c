// study.c — `steerclear run` (see steerclear/study.h): the stages in order on one stage context,
// each recorded as finished in RUN_DIR/stages.json once its outputs are written, so a killed or
// preempted job continues with --resume.
//   RUN_DIR/stages.json  {"runs": [{"started", "version", "host", "resumed"}, ...],
//                         "stages": {"search": {"finished", "wall_s", "version"}, ...}}
#include "steerclear/study.h"
#include "steerclear/dist.h"
#include "steerclear/make_model.h"
#include "steerclear/monitor.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void utc_now(char *buf, size_t n) {
    time_t now = time(NULL);
    struct tm tm;
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
}

// RUN_DIR/stages.json, or a fresh record.
static cJSON *stages_load(const char *path) {
    char *text = NULL;
    cJSON *doc = NULL;
    if (sc_file_exists(path) && sc_read_file(path, &text, NULL) == SC_OK) doc = cJSON_Parse(text);
    free(text);
    sc_error_clear();
    if (!cJSON_IsObject(doc)) { cJSON_Delete(doc); doc = cJSON_CreateObject(); }
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "runs"))) {
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "runs");
        cJSON_AddArrayToObject(doc, "runs");
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "stages"))) {
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "stages");
        cJSON_AddObjectToObject(doc, "stages");
    }
    return doc;
}

static sc_status stages_save(const char *path, const cJSON *doc) {
    char *text = cJSON_Print(doc);
    if (!text) return sc_errorf(SC_ERR_MEM, "out of memory");
    sc_status st = sc_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

static int stage_finished(const cJSON *doc, int i) {
    return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "stages"), sc_study_stage_names[i]));
}

// A random model at c->model on first use: made beside it and renamed into place, so two jobs
// starting together never see half a model.
static sc_status make_model_once(const sc_study_config *c) {
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", c->model);
    if (sc_file_exists(cfg) || !c->has_make_model) return SC_OK;
    sc_make_model_opts o;
    memset(&o, 0, sizeof o);
    SC_TRY(sc_make_model_preset(c->make_model.preset, &o));
    o.seed = c->make_model.seed;
    o.tokenizer = c->make_model.tokenizer;
    if (!sc_file_exists(o.tokenizer))
        return sc_errorf(SC_ERR_ARG, "make_model: tokenizer %s not found: run scripts/setup.sh (it fetches the Qwen tokenizer), or set make_model.tokenizer", o.tokenizer);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", c->model, (long)getpid());
    sc_log(SC_LOG_INFO, "make_model: a random %s model (seed %llu) at %s", c->make_model.preset, (unsigned long long)o.seed, c->model);
    sc_status st = sc_make_model(tmp, &o);
    if (!st && rename(tmp, c->model) != 0) {
        if (sc_file_exists(cfg)) sc_log(SC_LOG_INFO, "make_model: another job made %s first; using it", c->model);
        else st = sc_errorf(SC_ERR_IO, "cannot rename %s to %s; check the folder's permissions", tmp, c->model);
    }
    if (sc_file_exists(tmp)) sc_remove_tree(tmp);   // lost the race, or failed: remove our copy
    return st;
}

// One stage on the stage context (the search on every rank of the layout, the rest on rank 0).
static sc_status run_stage(int i, sc_stage *stage, const sc_study_config *c, const char *config_json, const sc_dist *d) {
    switch (i) {
    case 0: {
        sc_search_run r = {.model = stage->model, .be = stage->be, .tok = stage->tok, .train = &stage->train, .cfg = &c->search,
                           .run = stage->run, .model_dir = stage->model_dir, .config_json = config_json, .resume = 1};
        return sc_dist_search(d, &r, c->search.searches);
    }
    case 1: {
        sc_extract_opts o;
        sc_extract_config_opts(&c->extract, &o);
        void *on_pipeline = NULL;   // P > 1: the sums on search group 0's stages
        SC_TRY(sc_dist_extract_opts(d, stage->model, stage->be, &o, &on_pipeline));
        sc_status st = sc_extract_run(stage, &o);
        free(on_pipeline);
        return st;
    }
    case 2: {
        sc_evaluate_opts o;
        sc_evaluate_config_opts(&c->evaluate, &o);
        return sc_evaluate_run(stage, &o);
    }
    case 3: {
        sc_judge_opts o = {0};
        return sc_judge_run(stage->run, &c->judge, &o);
    }
    case 4: return sc_score_run(stage->run, &c->judge);
    case 5: return sc_quantify_run(stage, &c->judge, &c->quantify, NULL, 0);
    default: return sc_report_run(stage->run, &c->judge);
    }
}

static sc_status resolve_run_dir(const sc_study_opts *o, char *run_dir, size_t n) {
    if (o->run_dir) return sc_path_resolve(o->run_dir, NULL, run_dir, n);
    // results/<config file name without .json>
    const char *slash = strrchr(o->config_path, '/'), *name = slash ? slash + 1 : o->config_path;
    char rel[600];
    snprintf(rel, sizeof rel, "results/%.*s", (int)(strlen(name) > 5 && !strcmp(name + strlen(name) - 5, ".json") ? strlen(name) - 5 : strlen(name)), name);
    return sc_path_resolve(rel, NULL, run_dir, n);
}

// What rank 0 tells the others before the stages: go[0] its status so far (they stop unless
// SC_OK), go[1] whether the search stage finished earlier (they have nothing to do).
#define GO_INTS 2

// Ranks other than 0: the search stage of their group, on a stage context that reads the run
// directory (rank 0 made it and wrote its config) and writes only its own searches' checkpoints.
static sc_status study_follower(const sc_study_config *c, const char *run_dir, sc_dist *d) {
    int go[GO_INTS] = {0};
    SC_TRY(sc_dist_bcast_ints(d, go, GO_INTS));
    if (go[0] != SC_OK) return sc_errorf((sc_status)go[0], "rank 0 stopped before the search stage (its message above says why)");
    // with more than one group or stage every rank takes part in the later stages (sc_dist_serve)
    const int serve = sc_dist_serves(d);
    if (go[1] && !serve) return SC_OK;
    sc_stage_opts so;
    sc_stage_opts_default(&so);
    so.run_dir = run_dir;
    so.run_mode = SC_RUN_READ;
    so.command = "run";
    so.model_dir = c->model;
    so.train_csv = c->train;
    so.need_model = so.need_train = 1;
    sc_status st = SC_OK;
    sc_stage *stage = NULL;
    if (d->stages > 1) {   // a pipeline stage loads only its own blocks (rank 0 made the model by now)
        char mcfg[sizeof c->model + 16];
        sc_model_config mc;
        snprintf(mcfg, sizeof mcfg, "%s/config.json", c->model);
        if (!(st = sc_config_load(mcfg, &mc)) && !(st = sc_dist_plan(d, &mc))) {
            so.first = d->first[d->stage];
            so.last = d->last[d->stage];
        }
    }
    if (!st && c->memory_budget[0]) st = sc_parse_size(c->memory_budget, &so.backend.memory_budget);
    // the device and precision of rank 0: the same arithmetic on every rank
    if (!st && c->device[0]) st = sc_device_parse(c->device, "the run's config", &so.backend.device);
    if (c->precision[0]) so.backend.precision = c->precision;
    if (!st) st = sc_stage_open(&so, &stage);
    if (!st && d->stages > 1)
        sc_log(SC_LOG_INFO, "model: blocks [%d, %d) of %d loaded on this rank (pipeline stage %d)", stage->model->first, stage->model->last,
               stage->model->cfg.n_layers, d->stage);
    if (!st) {
        cJSON *resolved = sc_study_config_to_json(c);
        char *config_json = cJSON_Print(resolved);
        sc_search_run r = {.model = stage->model, .be = stage->be, .tok = stage->tok, .train = &stage->train, .cfg = &c->search,
                           .run = stage->run, .model_dir = stage->model_dir, .config_json = config_json, .resume = 1};
        if (!go[1]) st = sc_dist_search(d, &r, c->search.searches);
        free(config_json);
        cJSON_Delete(resolved);
        if (!st && serve) st = sc_dist_serve(d, stage->model, stage->be);
    } else if (d->stages > 1 || (serve && go[1])) {   // its pipeline partners would wait for this stage in a step (or rank 0 in the later stages)
        sc_log(SC_LOG_ERROR, "rank %d (search group %d, pipeline stage %d): %s; aborting the job", d->rank, d->group, d->stage, sc_last_error());
        sc_dist_abort(d, st == SC_ERR_ARG ? 2 : 1);
    } else if (!go[1]) sc_dist_search_abstain(d, c->search.searches, st);   // rank 0 waits for this rank's word
    sc_stage_free(stage);
    return st;
}

static sc_status study_leader(const sc_study_opts *o, const sc_study_config *cp, const char *run_dir, sc_dist *d);

// The layout of the job, ended by sc_study_end once the caller has reported.
static sc_dist study_dist;
static int study_dist_open;

sc_status sc_study_run(const sc_study_opts *o, char *run_dir_out, size_t cap) {
    sc_study_config c;
    if (run_dir_out && cap) run_dir_out[0] = '\0';
    SC_TRY(sc_study_config_load(o->config_path, &c));
    char run_dir[4096];
    SC_TRY(resolve_run_dir(o, run_dir, sizeof run_dir));
    sc_dist *d = &study_dist;
    sc_status st = sc_dist_init(o->stages > 0 ? o->stages : c.stages, d);
    study_dist_open = 1;
    // GPipe micro-batches per step: the config's, else min(batch, 4P), as benchmarks/cost_model.py assumes (a bubble under a fifth)
    d->micro = c.micro_batches > 0 ? c.micro_batches : 4 * d->stages;
    if (d->micro > c.search.batch_size) d->micro = c.search.batch_size;
    if (!st && d->rank == 0) {
        if (run_dir_out) snprintf(run_dir_out, cap, "%s", run_dir);
        st = study_leader(o, &c, run_dir, d);
        sc_dist_serve_end(d);   // the ranks serving the later stages stop waiting for work
    } else if (!st) st = study_follower(&c, run_dir, d);
    return st;
}

int sc_study_rank(void) { return study_dist_open ? study_dist.rank : 0; }

void sc_study_end(void) {
    if (study_dist_open) sc_dist_finalize(&study_dist);
    study_dist_open = 0;
}

static sc_status study_leader(const sc_study_opts *o, const sc_study_config *cp, const char *run_dir, sc_dist *d) {
    const sc_study_config c = *cp;
    cJSON *resolved = sc_study_config_to_json(&c);
    char *config_json = cJSON_Print(resolved);
    char path[4300], saved[4300];
    snprintf(path, sizeof path, "%s/stages.json", run_dir);
    snprintf(saved, sizeof saved, "%s/config.json", run_dir);
    cJSON *stages = stages_load(path);
    sc_stage *stage = NULL;
    sc_status st = config_json ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");

    // an existing run: only with --resume, and only with changes that leave finished stages valid
    char results[4300], ck[4300];
    snprintf(results, sizeof results, "%s/results.h5", run_dir);
    snprintf(ck, sizeof ck, "%s/checkpoints", run_dir);
    const int existing = sc_file_exists(path) || sc_file_exists(results) || sc_file_exists(ck);
    if (!st && existing && !o->resume)
        st = sc_errorf(SC_ERR_ARG, "%s already holds a run; add --resume to continue it, or choose another --out", run_dir);
    if (!st && existing && sc_file_exists(saved)) {
        char *old = NULL, diff[4096];
        if (!(st = sc_read_file(saved, &old, NULL))) {
            const int first = sc_study_config_diff(old, resolved, diff, sizeof diff);
            for (int i = first; i < SC_STUDY_STAGES && !st; i++)
                if (stage_finished(stages, i))
                    st = sc_errorf(SC_ERR_ARG, "%s: --resume with a changed config: %s; this changes the finished stage %s. "
                                   "Resume with the run's config (%s), or start a new run directory",
                                   o->config_path, diff, sc_study_stage_names[first], saved);
            if (!st && diff[0]) sc_log(SC_LOG_INFO, "run: config changed on resume (no finished stage uses it): %s", diff);
        }
        free(old);
    }
    if (!st && (c.judge.provider == SC_JUDGE_GEMINI || c.judge.provider == SC_JUDGE_OPENAI) && !(stage_finished(stages, 3) && stage_finished(stages, 5))) {
        // a missing API key or a refused URL is found now, not after hours of searching
        sc_provider *p = NULL;
        if ((st = sc_judge_provider_open(&c.judge, NULL, &p))) st = sc_error_wrap(SC_ERR_ARG, "%s: the judge: ", o->config_path);
        sc_provider_free(p);
    }
    if (!st) st = make_model_once(&c);
    if (!st) {
        char mcfg[sizeof c.model + 16];
        snprintf(mcfg, sizeof mcfg, "%s/config.json", c.model);
        if (!sc_file_exists(mcfg))
            st = sc_errorf(SC_ERR_ARG, "%s: \"model\": %s is not a model directory (no config.json): point \"model\" at a Hugging Face "
                           "model directory (config.json, *.safetensors, tokenizer.json), or add a \"make_model\" section to make a random one there",
                           o->config_path, c.model);
    }
    sc_stage_opts so;
    sc_stage_opts_default(&so);
    so.run_dir = run_dir;
    so.run_mode = SC_RUN_WRITE | (o->wait ? SC_RUN_WAIT : 0);
    so.command = "run";
    so.model_dir = c.model;
    so.train_csv = c.train;
    so.test_csv = c.test;
    so.need_model = so.need_train = so.need_test = 1;
    if (!st && c.memory_budget[0]) st = sc_parse_size(c.memory_budget, &so.backend.memory_budget);
    if (!st && c.device[0]) st = sc_device_parse(c.device, o->config_path, &so.backend.device);
    if (c.precision[0]) so.backend.precision = c.precision;
    if (!st && d->stages > 1) {   // the stages' block slices by the cost model: rank 0 loads only its own
        char mcfg[sizeof c.model + 16];
        sc_model_config mc;
        snprintf(mcfg, sizeof mcfg, "%s/config.json", c.model);
        if (!(st = sc_config_load(mcfg, &mc)) && !(st = sc_dist_plan(d, &mc))) {
            so.first = d->first[0];
            so.last = d->last[0];
        }
    }
    if (!st) st = sc_stage_open(&so, &stage);
    // P > 1: every generation and the extract sums of the later stages on search group 0's pipeline
    void *on_pipeline = NULL;
    if (!st) st = sc_dist_stage_generate(d, stage, &on_pipeline);
    if (!st && d->stages > 1)
        sc_log(SC_LOG_INFO, "model: blocks [%d, %d) of %d loaded on this rank (pipeline stage 0)", stage->model->first, stage->model->last, stage->model->cfg.n_layers);
    int monitored = 0;
    if (!st && !(st = sc_monitor_open(run_dir, SC_STUDY_STAGES))) monitored = 1;
    if (!st) st = sc_run_write_config(stage->run, config_json);
    if (!st) {
        char when[32];
        utc_now(when, sizeof when);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "started", when);
        cJSON_AddStringToObject(r, "version", sc_version());
        cJSON_AddStringToObject(r, "host", sc_hostname());
        cJSON_AddBoolToObject(r, "resumed", existing);
        // what actually ran ("auto" precision resolves per machine): a result is reproduced with the same
        cJSON_AddStringToObject(r, "backend", stage->be->name);
        cJSON_AddStringToObject(r, "precision", stage->be->precision ? stage->be->precision : "f32");
        cJSON_AddNumberToObject(r, "ranks", d->size);
        cJSON_AddNumberToObject(r, "pipeline_stages", d->stages);
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(stages, "runs"), r);
        st = stages_save(path, stages);
        sc_log(SC_LOG_INFO, "run: %s (steerclear %s on %s), config %s", run_dir, sc_version(), sc_hostname(), o->config_path);
    }
    if (!st) {   // the layout of this job: printed, and RUN_DIR/layout.json (rewritten by every job)
        sc_dist_log_layout(d, stage->model->cfg.n_layers, c.search.searches);
        cJSON *lay = sc_dist_layout_json(d, stage->model->cfg.n_layers, c.search.searches);
        char *text = cJSON_Print(lay), lpath[4300];
        cJSON_Delete(lay);
        if (!text) st = sc_errorf(SC_ERR_MEM, "out of memory");
        if (!st) st = sc_run_path(stage->run, "layout.json", lpath, sizeof lpath);
        if (!st) st = sc_write_file_atomic(lpath, text, strlen(text));
        free(text);
    }
    int go[GO_INTS] = {(int)st, stage_finished(stages, 0)};
    sc_status gst = sc_dist_bcast_ints(d, go, GO_INTS);
    if (!st) st = gst;
    for (int i = 0; i < SC_STUDY_STAGES && !st; i++) {
        const char *name = sc_study_stage_names[i];
        if (stage_finished(stages, i)) { sc_log(SC_LOG_INFO, "== stage %d/%d: %s finished earlier, skipped", i + 1, SC_STUDY_STAGES, name); continue; }
        sc_monitor_stage(name, i);
        const double t0 = sc_now_seconds();
        if ((st = run_stage(i, stage, &c, config_json, d))) break;
        if ((st = sc_check_interrupt(name))) break;   // a signal that arrived as the stage ended
        sc_monitor_fault_point(name, "end");
        const double wall = sc_now_seconds() - t0;
        char when[32];
        utc_now(when, sizeof when);
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "finished", when);
        cJSON_AddNumberToObject(rec, "wall_s", (double)(long)(wall * 10) / 10);
        cJSON_AddStringToObject(rec, "version", sc_version());
        cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(stages, "stages"), name, rec);
        if ((st = stages_save(path, stages))) break;
        sc_monitor_stage_done(name, wall);
    }
    if (monitored) sc_monitor_close(st);
    sc_stage_free(stage);
    free(on_pipeline);
    cJSON_Delete(stages);
    cJSON_Delete(resolved);
    free(config_json);
    return st;
}
