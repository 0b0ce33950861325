// config.c — search hyper-parameters: defaults (the study's), JSON in and out, validation, and
// the comparison --resume makes with a run's recorded settings (a key the record predates counts
// with the value the run was made with).
#include "steerclear/search.h"
#include "steerclear/rng.h"

#include "steerclear/settings.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sc_search_config_default(sc_search_config *c) {
    memset(c, 0, sizeof *c);
    c->searches = 20;
    c->adapter = SC_ADAPTER_SHARED;
    c->rank = 2;
    c->scaling = 2.0f;
    c->alpha = 1.1f;
    c->beta = 0.3f;
    c->lr = 0.1f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->adam_eps = 1e-8f;
    c->weight_decay = 0.01f;
    c->batch_size = 12;
    c->prompts_per_search = 192;
    c->epochs = 1;
    c->prompt_sampling = SC_SAMPLING_PER_SEARCH;
    c->max_new_tokens = 128;
    c->temperature = 1.0f;
    c->top_k = 0;
    c->top_p = 1.0f;
    c->seed = 1234;
    c->checkpoint_activations = -1;   // auto
    c->loss_chunk = 32;
    c->searches_per_pass = 0;          // auto
    c->searches_per_micro_batch = 1;
}

uint64_t sc_search_seed(const sc_search_config *c, int search) { return sc_seed_mix(c->seed, (uint64_t)search); }

sc_status sc_search_config_validate(const sc_search_config *c) {
    if (c->searches < 1) return sc_errorf(SC_ERR_ARG, "searches = %d: must be at least 1", c->searches);
    if (c->rank < 1) return sc_errorf(SC_ERR_ARG, "rank = %d: must be at least 1", c->rank);
    if (c->batch_size < 1) return sc_errorf(SC_ERR_ARG, "batch_size = %d: must be at least 1", c->batch_size);
    if (c->prompts_per_search < c->batch_size)
        return sc_errorf(SC_ERR_ARG, "prompts_per_search = %d is smaller than batch_size = %d", c->prompts_per_search, c->batch_size);
    if (c->epochs < 1) return sc_errorf(SC_ERR_ARG, "epochs = %d: must be at least 1", c->epochs);
    if (c->max_new_tokens < 1) return sc_errorf(SC_ERR_ARG, "max_new_tokens = %d: must be at least 1", c->max_new_tokens);
    if (!(c->temperature > 0)) return sc_errorf(SC_ERR_ARG, "temperature = %g: must be positive", c->temperature);
    if (!(c->top_p > 0 && c->top_p <= 1)) return sc_errorf(SC_ERR_ARG, "top_p = %g: must be in (0, 1]", c->top_p);
    if (c->top_k < 0) return sc_errorf(SC_ERR_ARG, "top_k = %d: must be 0 (off) or positive", c->top_k);
    if (!(c->lr > 0) || !isfinite(c->lr)) return sc_errorf(SC_ERR_ARG, "lr = %g: must be positive", c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
        return sc_errorf(SC_ERR_ARG, "adam betas (%g, %g) must be in [0, 1)", c->beta1, c->beta2);
    if (!(c->adam_eps > 0)) return sc_errorf(SC_ERR_ARG, "adam_eps = %g: must be positive", c->adam_eps);
    if (c->weight_decay < 0) return sc_errorf(SC_ERR_ARG, "weight_decay = %g: must not be negative", c->weight_decay);
    if (c->loss_chunk < 1) return sc_errorf(SC_ERR_ARG, "loss_chunk = %d: must be at least 1", c->loss_chunk);
    return SC_OK;
}

static const char *const adapter_names[] = {"shared", "per-block", NULL};   // sc_adapter_kind order
static const char *const sampling_names[] = {"per-search", "per-epoch", NULL};   // sc_prompt_sampling order

#define F(field) offsetof(sc_search_config, field)
#define INT(n, f, lo, hi) {n, SC_KEY_INT, F(f), lo, hi, 0, 0, NULL}
#define FLT(n, f) {n, SC_KEY_FLOAT, F(f), -FLT_MAX, FLT_MAX, 0, 0, NULL}
static const sc_key keys[] = {
    INT("searches", searches, 1, 10000), {"adapter", SC_KEY_ENUM, F(adapter), 0, 0, 0, 0, adapter_names},
    INT("rank", rank, 1, 65536), FLT("scaling", scaling), FLT("alpha", alpha), FLT("beta", beta),
    FLT("lr", lr), FLT("adam_beta1", beta1), FLT("adam_beta2", beta2), FLT("adam_eps", adam_eps),
    FLT("weight_decay", weight_decay), INT("batch_size", batch_size, 1, 1 << 20),
    INT("prompts_per_search", prompts_per_search, 1, INT_MAX), INT("epochs", epochs, 1, 100000),
    {"prompt_sampling", SC_KEY_ENUM, F(prompt_sampling), 0, 0, 0, 0, sampling_names},
    INT("max_new_tokens", max_new_tokens, 1, 1 << 24), FLT("temperature", temperature), INT("top_k", top_k, 0, INT_MAX),
    FLT("top_p", top_p), {"seed", SC_KEY_U64, F(seed), 0, 0, 0, 0, NULL},
    {"checkpoint_activations", SC_KEY_AUTO_BOOL, F(checkpoint_activations), 0, 0, 0, 0, NULL},
    INT("loss_chunk", loss_chunk, 1, 1 << 20),
    {"searches_per_pass", SC_KEY_AUTO_INT, F(searches_per_pass), 1, 100000, 0, 0, NULL},
    {"searches_per_micro_batch", SC_KEY_AUTO_INT, F(searches_per_micro_batch), 1, 100000, 0, 0, NULL},
};
#undef INT
#undef FLT
#undef F
#define N_KEYS (sizeof keys / sizeof keys[0])

// Keys added after runs had been recorded, with the value (JSON text) a recorded search section
// or checkpoint that lacks one was made with. Before "prompt_sampling" existed every epoch drew
// a fresh subset of the train set.
static const struct { const char *key, *value; } legacy[] = {
    {"prompt_sampling", "\"per-epoch\""},
};

// A recorded search section (or checkpoint settings) with every legacy key it lacks added.
static void add_legacy(cJSON *obj) {
    if (!cJSON_IsObject(obj)) return;
    for (size_t i = 0; i < sizeof legacy / sizeof legacy[0]; i++)
        if (!cJSON_GetObjectItemCaseSensitive(obj, legacy[i].key)) cJSON_AddItemToObject(obj, legacy[i].key, cJSON_Parse(legacy[i].value));
}

sc_status sc_search_config_from_recorded_json(const cJSON *obj, const char *where, sc_search_config *c) {
    cJSON *full = cJSON_Duplicate(obj, 1);
    if (!full) return sc_errorf(SC_ERR_MEM, "%s: out of memory", where);
    add_legacy(full);
    sc_status st = sc_search_config_from_json(full, where, c);
    cJSON_Delete(full);
    return st;
}

sc_status sc_search_config_from_json(const cJSON *obj, const char *where, sc_search_config *c) {
    char what[512];
    snprintf(what, sizeof what, "%s: search settings", where);
    SC_TRY(sc_settings_from_json(keys, N_KEYS, obj, what, c));
    sc_status st = sc_search_config_validate(c);
    return st ? sc_error_wrap(st, "%s: ", where) : SC_OK;
}

cJSON *sc_search_config_to_json(const sc_search_config *c) { return sc_settings_to_json(keys, N_KEYS, c); }

// Keys whose change on --resume cannot change finished or continuing results: the number of
// searches (a run may be extended), activation checkpointing (recomputation gives the same
// numbers), the loss chunk (rows are summed in the same order) and how many searches share a
// pass or a teacher-forced batch (each search's rows are computed as when it runs alone, up to
// the products' rounding).
static const char *const resume_free[] = {"searches", "checkpoint_activations", "loss_chunk", "searches_per_pass", "searches_per_micro_batch",
                                          "test", NULL};

static int is_free(const char *key) {
    for (const char *const *k = resume_free; *k; k++) if (!strcmp(*k, key)) return 1;
    return 0;
}

// Append "key (old -> new)" for every key of `a` or `b` whose values differ.
static void diff_objects(const cJSON *a, const cJSON *b, const char *prefix, char *out, size_t n) {
    for (int pass = 0; pass < 2; pass++) {
        const cJSON *x = pass ? b : a, *y = pass ? a : b;
        for (const cJSON *it = x ? x->child : NULL; it; it = it->next) {
            if (cJSON_IsObject(it) || is_free(it->string)) continue;
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(y, it->string);
            if (pass && other) continue;   // both present: compared in the first pass
            if (other && cJSON_Compare(it, other, 1)) continue;
            char *va = cJSON_PrintUnformatted(pass ? other : it), *vb = cJSON_PrintUnformatted(pass ? it : other);
            size_t at = strlen(out);
            snprintf(out + at, n - at, "%s%s%s (%s -> %s)", at ? ", " : "", prefix, it->string, va ? va : "absent", vb ? vb : "absent");
            free(va);
            free(vb);
        }
    }
}

char *sc_search_config_settings(const sc_search_config *cfg) {
    cJSON *o = sc_search_config_to_json(cfg);
    for (const char *const *k = resume_free; *k; k++) cJSON_DeleteItemFromObjectCaseSensitive(o, *k);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

int sc_search_settings_diff(const char *settings_json, const sc_search_config *cfg, char *diff, size_t n) {
    diff[0] = '\0';
    cJSON *old = cJSON_Parse(settings_json), *now = sc_search_config_to_json(cfg);
    add_legacy(old);
    if (!cJSON_IsObject(old)) snprintf(diff, n, "unreadable recorded settings");
    else diff_objects(old, now, "", diff, n);
    cJSON_Delete(old);
    cJSON_Delete(now);
    return diff[0] != '\0';
}

sc_status sc_search_resume_check(const char *saved_json, const cJSON *now, const char *where, char *diff, size_t n) {
    diff[0] = '\0';
    cJSON *old = cJSON_Parse(saved_json);
    if (!cJSON_IsObject(old)) {
        cJSON_Delete(old);
        return sc_errorf(SC_ERR_FORMAT, "%s: not a JSON object; restore it, or start a new run directory", where);
    }
    diff_objects(old, now, "", diff, n);
    add_legacy(cJSON_GetObjectItemCaseSensitive(old, "search"));
    diff_objects(cJSON_GetObjectItemCaseSensitive(old, "search"), cJSON_GetObjectItemCaseSensitive(now, "search"), "search.", diff, n);
    cJSON_Delete(old);
    if (diff[0])
        return sc_errorf(SC_ERR_ARG, "%s: --resume cannot change settings that change results: %s; resume with the run's settings "
                         "(drop those options), or start a new run directory", where, diff);
    return SC_OK;
}

