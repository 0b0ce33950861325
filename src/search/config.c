// config.c — search hyper-parameters: defaults (the study's), JSON in and out, validation.
#include "steerclear/search.h"
#include "steerclear/rng.h"

#include "steerclear/json.h"

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
    c->max_new_tokens = 128;
    c->temperature = 1.0f;
    c->top_k = 0;
    c->top_p = 1.0f;
    c->seed = 1234;
    c->checkpoint_activations = -1;   // auto
    c->loss_chunk = 32;
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

typedef enum { K_INT, K_FLOAT, K_U64, K_AUTO_BOOL, K_ADAPTER } key_kind;
typedef struct { const char *name; key_kind kind; size_t off; } key_def;
#define KEY(n, k, f) {n, k, offsetof(sc_search_config, f)}
static const key_def keys[] = {
    KEY("searches", K_INT, searches), KEY("adapter", K_ADAPTER, adapter), KEY("rank", K_INT, rank),
    KEY("scaling", K_FLOAT, scaling), KEY("alpha", K_FLOAT, alpha), KEY("beta", K_FLOAT, beta),
    KEY("lr", K_FLOAT, lr), KEY("adam_beta1", K_FLOAT, beta1), KEY("adam_beta2", K_FLOAT, beta2),
    KEY("adam_eps", K_FLOAT, adam_eps), KEY("weight_decay", K_FLOAT, weight_decay),
    KEY("batch_size", K_INT, batch_size), KEY("prompts_per_search", K_INT, prompts_per_search),
    KEY("epochs", K_INT, epochs), KEY("max_new_tokens", K_INT, max_new_tokens),
    KEY("temperature", K_FLOAT, temperature), KEY("top_k", K_INT, top_k), KEY("top_p", K_FLOAT, top_p),
    KEY("seed", K_U64, seed), KEY("checkpoint_activations", K_AUTO_BOOL, checkpoint_activations),
    KEY("loss_chunk", K_INT, loss_chunk),
};

#define N_KEYS (sizeof keys / sizeof keys[0])

static const key_def *find_key(const char *name) {
    for (size_t i = 0; i < N_KEYS; i++) if (!strcmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

sc_status sc_search_config_from_json(const cJSON *obj, const char *where, sc_search_config *c) {
    if (!cJSON_IsObject(obj)) return sc_errorf(SC_ERR_FORMAT, "%s: the search settings must be a JSON object", where);
    const char *names[N_KEYS + 1];
    for (size_t i = 0; i < N_KEYS; i++) names[i] = keys[i].name;
    names[N_KEYS] = NULL;
    char what[512];
    snprintf(what, sizeof what, "%s: search settings", where);
    SC_TRY(sc_json_check_object(obj, what, names));   // unknown and repeated keys
    for (const cJSON *it = obj->child; it; it = it->next) {
        const key_def *k = find_key(it->string);
        char *base = (char *)c + k->off;
        switch (k->kind) {
        case K_ADAPTER:
            if (!cJSON_IsString(it)) return sc_errorf(SC_ERR_ARG, "%s: '%s' must be \"shared\" or \"per-block\"", where, k->name);
            if (sc_adapter_kind_parse(it->valuestring, (sc_adapter_kind *)base)) return sc_error_wrap(SC_ERR_ARG, "%s: ", where);
            break;
        case K_AUTO_BOOL:
            if (cJSON_IsString(it) && !strcmp(it->valuestring, "auto")) *(int *)base = -1;
            else if (cJSON_IsBool(it)) *(int *)base = cJSON_IsTrue(it);
            else return sc_errorf(SC_ERR_ARG, "%s: '%s' must be true, false or \"auto\"", where, k->name);
            break;
        case K_FLOAT:
            if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || fabs(it->valuedouble) > FLT_MAX)
                return sc_errorf(SC_ERR_ARG, "%s: '%s' must be a finite number", where, k->name);
            *(float *)base = (float)it->valuedouble;
            break;
        case K_U64:
            if (!sc_json_is_int(it, 0, 9007199254740992.0)) return sc_errorf(SC_ERR_ARG, "%s: '%s' must be an integer in [0, 2^53]", where, k->name);
            *(uint64_t *)base = (uint64_t)it->valuedouble;
            break;
        case K_INT:
            if (!sc_json_is_int(it, INT_MIN, INT_MAX)) {
                if (cJSON_IsNumber(it)) return sc_errorf(SC_ERR_ARG, "%s: '%s' = %g must be an integer", where, k->name, it->valuedouble);
                return sc_errorf(SC_ERR_ARG, "%s: '%s' must be a number", where, k->name);
            }
            *(int *)base = (int)it->valuedouble;
            break;
        }
    }
    sc_status st = sc_search_config_validate(c);
    return st ? sc_error_wrap(st, "%s: ", where) : SC_OK;
}

// Keys whose change on --resume cannot change finished or continuing results: the number of
// searches (a run may be extended), activation checkpointing (recomputation gives the same
// numbers) and the loss chunk (rows are summed in the same order).
static const char *const resume_free[] = {"searches", "checkpoint_activations", "loss_chunk", "test", NULL};

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
    diff_objects(cJSON_GetObjectItemCaseSensitive(old, "search"), cJSON_GetObjectItemCaseSensitive(now, "search"), "search.", diff, n);
    cJSON_Delete(old);
    if (diff[0])
        return sc_errorf(SC_ERR_ARG, "%s: --resume cannot change settings that change results: %s; resume with the run's settings "
                         "(drop those options), or start a new run directory", where, diff);
    return SC_OK;
}

cJSON *sc_search_config_to_json(const sc_search_config *c) {
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *base = (const char *)c + keys[i].off;
        switch (keys[i].kind) {
        case K_INT: cJSON_AddNumberToObject(o, keys[i].name, *(const int *)base); break;
        case K_FLOAT: cJSON_AddNumberToObject(o, keys[i].name, (double)*(const float *)base); break;
        case K_U64: cJSON_AddNumberToObject(o, keys[i].name, (double)*(const uint64_t *)base); break;
        case K_AUTO_BOOL:
            if (*(const int *)base < 0) cJSON_AddStringToObject(o, keys[i].name, "auto");
            else cJSON_AddBoolToObject(o, keys[i].name, *(const int *)base);
            break;
        case K_ADAPTER: cJSON_AddStringToObject(o, keys[i].name, sc_adapter_kind_name(*(const sc_adapter_kind *)base)); break;
        }
    }
    return o;
}
