// study_config.c — the config of `steerclear run` (see steerclear/study.h): one file with every
// stage's section, read through the settings tables; the resolved form; which stage a change
// of it would make stale.
#include "steerclear/study.h"
#include "steerclear/json.h"
#include "steerclear/settings.h"
#include "steerclear/stage.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const sc_study_stage_names[SC_STUDY_STAGES] = {"search", "extract", "evaluate", "judge", "score", "quantify", "report"};

static const char *const mode_names[] = {"activation-diff", "update-mean", NULL};
static const char *const prompt_set_names[] = {"train,test", "train", "test", NULL};

#define E(f) offsetof(sc_extract_config, f)
static const sc_key extract_keys[] = {
    {"mode", SC_KEY_ENUM, E(mode), 0, 0, 0, 0, mode_names},
    {"prompts", SC_KEY_ENUM, E(prompts), 0, 0, 0, 0, prompt_set_names},
    {"max_new_tokens", SC_KEY_INT, E(max_new_tokens), 1, 1 << 20, 0, 0, NULL},
    {"temperature", SC_KEY_FLOAT, E(temperature), 1e-6, 1e6, 0, 0, NULL},
    {"top_k", SC_KEY_INT, E(top_k), 0, INT_MAX, 0, 0, NULL},
    {"top_p", SC_KEY_FLOAT, E(top_p), 1e-6, 1, 0, 0, NULL},
    {"batch_seqs", SC_KEY_INT, E(batch_seqs), 1, 1 << 16, 0, 0, NULL},
};
#undef E
#define V(f) offsetof(sc_evaluate_config, f)
static const sc_key evaluate_keys[] = {
    {"scales", SC_KEY_FLOATS, V(scales), -1e6, 1e6, 16, V(n_scales), NULL},
    {"max_new_tokens", SC_KEY_INT, V(max_new_tokens), 1, 1 << 20, 0, 0, NULL},
    {"temperature", SC_KEY_FLOAT, V(temperature), 1e-6, 1e6, 0, 0, NULL},
    {"top_k", SC_KEY_INT, V(top_k), 0, INT_MAX, 0, 0, NULL},
    {"top_p", SC_KEY_FLOAT, V(top_p), 1e-6, 1, 0, 0, NULL},
    {"limit", SC_KEY_INT, V(limit), 0, INT_MAX, 0, 0, NULL},
    {"batch_seqs", SC_KEY_INT, V(batch_seqs), 1, 1 << 16, 0, 0, NULL},
};
#undef V
#define M(f) offsetof(sc_make_model_config, f)
static const sc_key make_model_keys[] = {
    {"preset", SC_KEY_STRING, M(preset), 0, 0, sizeof(((sc_make_model_config *)0)->preset), 0, NULL},
    {"seed", SC_KEY_U64, M(seed), 0, 0, 0, 0, NULL},
    {"tokenizer", SC_KEY_STRING, M(tokenizer), 0, 0, sizeof(((sc_make_model_config *)0)->tokenizer), 0, NULL},
};
#undef M
#define N_OF(a) (sizeof(a) / sizeof(a[0]))

void sc_study_config_default(sc_study_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->make_model.preset, sizeof c->make_model.preset, "tiny");
    c->make_model.seed = 1;
    sc_search_config_default(&c->search);
    sc_extract_opts eo;
    sc_extract_opts_default(&eo);
    c->extract = (sc_extract_config){.mode = eo.mode, .prompts = 0, .max_new_tokens = eo.max_new_tokens, .temperature = eo.temperature,
                                     .top_k = eo.top_k, .top_p = eo.top_p, .batch_seqs = eo.batch_seqs};
    sc_evaluate_opts vo;
    sc_evaluate_opts_default(&vo);
    c->evaluate = (sc_evaluate_config){.scales = {2}, .n_scales = 1, .max_new_tokens = vo.max_new_tokens, .temperature = vo.temperature,
                                       .top_k = vo.top_k, .top_p = vo.top_p, .limit = 0, .batch_seqs = vo.batch_seqs};
    sc_judge_config_default(&c->judge);
    sc_quantify_config_default(&c->quantify);
}

void sc_extract_config_opts(const sc_extract_config *c, sc_extract_opts *o) {
    sc_extract_opts_default(o);
    o->mode = (sc_direction_mode)c->mode;
    o->use_train = c->prompts != 2;
    o->use_test = c->prompts != 1;
    o->max_new_tokens = c->max_new_tokens;
    o->temperature = c->temperature;
    o->top_k = c->top_k;
    o->top_p = c->top_p;
    o->batch_seqs = c->batch_seqs;
}

void sc_evaluate_config_opts(const sc_evaluate_config *c, sc_evaluate_opts *o) {
    sc_evaluate_opts_default(o);
    o->scales = c->scales;
    o->n_scales = c->n_scales;
    o->max_new_tokens = c->max_new_tokens;
    o->temperature = c->temperature;
    o->top_k = c->top_k;
    o->top_p = c->top_p;
    o->limit = c->limit;
    o->batch_seqs = c->batch_seqs;
}

// A path key of the file ("" when absent), resolved against base.
static sc_status path_key(const cJSON *file, const char *key, const char *where, const char *base, char *out, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(file, key);
    out[0] = '\0';
    if (!v) return SC_OK;
    if (!cJSON_IsString(v) || !v->valuestring[0]) return sc_errorf(SC_ERR_ARG, "%s: \"%s\" must be a non-empty path string", where, key);
    return sc_path_resolve(v->valuestring, base, out, n);
}

static sc_status section(const cJSON *file, const char *name, const sc_key *keys, size_t n, const char *path, void *base) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(file, name);
    if (!s) return SC_OK;
    char where[4200];
    snprintf(where, sizeof where, "%s: %s settings", path, name);
    return sc_settings_from_json(keys, n, s, where, base);
}

sc_status sc_study_config_load(const char *path, sc_study_config *c) {
    static const char *const top_keys[] = {"model", "train", "test", "memory_budget", "device", "precision", "make_model", "search",
                                           "extract", "evaluate", "judge", "quantify", "stages", "dist", NULL};
    sc_study_config_default(c);
    char *text = NULL, base[4096];
    SC_TRY(sc_read_file(path, &text, NULL));
    cJSON *file = cJSON_Parse(text);
    free(text);
    sc_status st = SC_OK;
    if (!cJSON_IsObject(file))
        st = sc_errorf(SC_ERR_FORMAT, "%s: not a JSON object (near '%.30s'); see the README's config section", path,
                       cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    if (!st) st = sc_json_check_object(file, path, top_keys);
    if (!st) st = sc_path_dir_of(path, base, sizeof base);
    if (!st) st = path_key(file, "model", path, base, c->model, sizeof c->model);
    if (!st && !c->model[0]) st = sc_errorf(SC_ERR_ARG, "%s: \"model\" (a model directory) is required", path);
    if (!st) st = path_key(file, "train", path, base, c->train, sizeof c->train);
    if (!st) st = path_key(file, "test", path, base, c->test, sizeof c->test);
    if (!st && !c->train[0]) st = sc_path_resolve(sc_default_dataset("train.csv"), NULL, c->train, sizeof c->train);
    if (!st && !c->test[0]) st = sc_path_resolve(sc_default_dataset("test.csv"), NULL, c->test, sizeof c->test);
    const cJSON *mb = cJSON_GetObjectItemCaseSensitive(file, "memory_budget");
    if (!st && mb) {
        size_t bytes;
        if (!cJSON_IsString(mb) || strlen(mb->valuestring) >= sizeof c->memory_budget || sc_parse_size(mb->valuestring, &bytes))
            st = sc_errorf(SC_ERR_ARG, "%s: \"memory_budget\" must be a size string such as \"16G\"", path);
        else snprintf(c->memory_budget, sizeof c->memory_budget, "%s", mb->valuestring);
    }
    // pipeline stages per search group: "stages": P at the top level or "dist": {"stages": P}
    const cJSON *dist = cJSON_GetObjectItemCaseSensitive(file, "dist");
    if (!st && dist) {
        static const char *const dist_keys[] = {"stages", "micro_batches", NULL};
        char where[4200];
        snprintf(where, sizeof where, "%s: dist settings", path);
        if (!cJSON_IsObject(dist)) st = sc_errorf(SC_ERR_ARG, "%s: \"dist\" must be an object such as {\"stages\": 1}", path);
        else st = sc_json_check_object(dist, where, dist_keys);
    }
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(file, "stages");
    const cJSON *dstages = dist && cJSON_IsObject(dist) ? cJSON_GetObjectItemCaseSensitive(dist, "stages") : NULL;
    if (!st && stages && dstages) st = sc_errorf(SC_ERR_ARG, "%s: \"stages\" is given twice (top level and dist.stages); keep one", path);
    if (!st && (stages || dstages)) {
        const cJSON *v = stages ? stages : dstages;
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valueint < 1 || v->valueint > 4096)
            st = sc_errorf(SC_ERR_ARG, "%s: \"%s\" must be a whole number of pipeline stages from 1 to 4096", path, stages ? "stages" : "dist.stages");
        else c->stages = v->valueint;
    }
    const cJSON *micro = dist && cJSON_IsObject(dist) ? cJSON_GetObjectItemCaseSensitive(dist, "micro_batches") : NULL;
    if (!st && micro) {
        if (!cJSON_IsNumber(micro) || micro->valuedouble != (double)(int)micro->valuedouble || micro->valueint < 1 || micro->valueint > 4096)
            st = sc_errorf(SC_ERR_ARG, "%s: \"dist.micro_batches\" must be a whole number of micro-batches per pipeline step from 1 to 4096", path);
        else c->micro_batches = micro->valueint;
    }
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(file, "device");
    if (!st && dv) {
        sc_device d;
        if (!cJSON_IsString(dv) || (st = sc_device_parse(dv->valuestring, path, &d))) st = sc_errorf(SC_ERR_ARG, "%s: \"device\" must be \"cpu\" or \"cuda\"", path);
        else snprintf(c->device, sizeof c->device, "%s", sc_device_name(d));
    }
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(file, "precision");
    if (!st && pr) {
        if (!cJSON_IsString(pr) || (strcmp(pr->valuestring, "auto") && strcmp(pr->valuestring, "f32") && strcmp(pr->valuestring, "bf16")))
            st = sc_errorf(SC_ERR_ARG, "%s: \"precision\" must be \"auto\", \"f32\" or \"bf16\"", path);
        else snprintf(c->precision, sizeof c->precision, "%s", pr->valuestring);
    }
    c->has_make_model = cJSON_GetObjectItemCaseSensitive(file, "make_model") != NULL;
    if (!st) st = section(file, "make_model", make_model_keys, N_OF(make_model_keys), path, &c->make_model);
    if (!st && c->make_model.tokenizer[0]) {
        char abs[4096];
        if (!(st = sc_path_resolve(c->make_model.tokenizer, base, abs, sizeof abs))) snprintf(c->make_model.tokenizer, sizeof c->make_model.tokenizer, "%s", abs);
    } else if (!st && c->has_make_model)
        st = sc_path_resolve(sc_default_dataset("../.cache/tokenizer/tokenizer.json"), NULL, c->make_model.tokenizer, sizeof c->make_model.tokenizer);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(file, "search");
    if (!st && s) st = sc_search_config_from_json(s, path, &c->search);
    if (!st) st = section(file, "extract", extract_keys, N_OF(extract_keys), path, &c->extract);
    if (!st) st = section(file, "evaluate", evaluate_keys, N_OF(evaluate_keys), path, &c->evaluate);
    if (!st && c->evaluate.n_scales < 1) st = sc_errorf(SC_ERR_ARG, "%s: evaluate.scales needs at least one scale", path);
    if (!st) st = sc_judging_config_load(file, path, base, &c->judge, &c->quantify);
    cJSON_Delete(file);
    return st;
}

cJSON *sc_study_config_to_json(const sc_study_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", c->model);
    cJSON_AddStringToObject(o, "train", c->train);
    cJSON_AddStringToObject(o, "test", c->test);
    if (c->memory_budget[0]) cJSON_AddStringToObject(o, "memory_budget", c->memory_budget);
    if (c->device[0]) cJSON_AddStringToObject(o, "device", c->device);
    if (c->precision[0]) cJSON_AddStringToObject(o, "precision", c->precision);
    if (c->has_make_model) cJSON_AddItemToObject(o, "make_model", sc_settings_to_json(make_model_keys, N_OF(make_model_keys), &c->make_model));
    cJSON_AddItemToObject(o, "search", sc_search_config_to_json(&c->search));
    cJSON_AddItemToObject(o, "extract", sc_settings_to_json(extract_keys, N_OF(extract_keys), &c->extract));
    cJSON_AddItemToObject(o, "evaluate", sc_settings_to_json(evaluate_keys, N_OF(evaluate_keys), &c->evaluate));
    cJSON_AddItemToObject(o, "judge", sc_judge_config_to_json(&c->judge));
    cJSON_AddItemToObject(o, "quantify", sc_quantify_config_to_json(&c->quantify));
    if (c->stages > 0 || c->micro_batches > 0) {
        cJSON *d = cJSON_AddObjectToObject(o, "dist");
        if (c->stages > 0) cJSON_AddNumberToObject(d, "stages", c->stages);
        if (c->micro_batches > 0) cJSON_AddNumberToObject(d, "micro_batches", c->micro_batches);
    }
    return o;
}

// --- What a change makes stale -------------------------------------------------------------------

// Keys that cannot change any result (how fast, how patient, how much memory).
// Not "device" nor "precision": the GPU's BF16 GEMMs round differently from the CPU's F32 ones,
// so a finished stage would not be what the resumed run computes.
static const char *const free_keys[] = {"memory_budget", "dist", "make_model", "search.checkpoint_activations", "search.loss_chunk",
                                        "search.searches_per_pass", "search.searches_per_micro_batch",
                                        "judge.in_flight", "judge.max_attempts", "judge.request_budget", "judge.timeout_s",
                                        "judge.connect_timeout_s", "judge.api_key_env", NULL};

// The first stage a key feeds (SC_STUDY_STAGES: none).
static int stage_of(const char *key) {
    for (const char *const *f = free_keys; *f; f++) {
        const size_t n = strlen(*f);
        if (!strncmp(key, *f, n) && (key[n] == '\0' || key[n] == '.')) return SC_STUDY_STAGES;
    }
    if (!strcmp(key, "model") || !strcmp(key, "train") || !strncmp(key, "search.", 7)) return 0;
    if (!strcmp(key, "test") || !strncmp(key, "extract.", 8)) return 1;   // extract samples the test prompts too
    if (!strncmp(key, "evaluate.", 9)) return 2;
    if (!strcmp(key, "judge.threshold")) return 4;
    if (!strncmp(key, "judge.", 6)) return 3;
    if (!strncmp(key, "quantify.", 9)) return 5;
    return 0;   // a key we do not know: assume it feeds everything
}

static void diff_rec(const cJSON *a, const cJSON *b, const char *prefix, int *first, char *out, size_t n) {
    for (int pass = 0; pass < 2; pass++) {
        const cJSON *x = pass ? b : a, *y = pass ? a : b;
        for (const cJSON *it = x ? x->child : NULL; it; it = it->next) {
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(y, it->string);
            char key[256];
            snprintf(key, sizeof key, "%s%s", prefix, it->string);
            if (cJSON_IsObject(it) && (cJSON_IsObject(other) || !other)) {
                if (pass && other) continue;
                char sub[sizeof key + 1];
                snprintf(sub, sizeof sub, "%s.", key);
                diff_rec(pass ? other : it, pass ? it : other, sub, first, out, n);
                continue;
            }
            if (pass && other) continue;   // both present: compared in the first pass
            if (other && cJSON_Compare(it, other, 1)) continue;
            const int s = stage_of(key);
            if (s < *first) *first = s;
            char *va = cJSON_PrintUnformatted(pass ? other : it), *vb = cJSON_PrintUnformatted(pass ? it : other);
            const size_t at = strlen(out);
            snprintf(out + at, n - at, "%s%s (%s -> %s)", at ? ", " : "", key, va ? va : "absent", vb ? vb : "absent");
            free(va);
            free(vb);
        }
    }
}

int sc_study_config_diff(const char *old_json, const cJSON *now, char *diff, size_t n) {
    diff[0] = '\0';
    cJSON *old = cJSON_Parse(old_json);
    int first = SC_STUDY_STAGES;
    if (!cJSON_IsObject(old)) {
        snprintf(diff, n, "the saved config is not a JSON object");
        first = 0;
    } else diff_rec(old, now, "", &first, diff, n);
    cJSON_Delete(old);
    return first;
}
