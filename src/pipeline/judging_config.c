// judging_config.c — the "judge" and "quantify" sections of a run config (defaults, JSON in and
// out through the settings table) and opening the provider a config names.
#include "steerclear/judging.h"
#include "steerclear/judge_net.h"
#include "steerclear/settings.h"
#include "steerclear/stage.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#ifndef SC_PROMPTS_DIR
#define SC_PROMPTS_DIR "prompts"
#endif

static const char *const provider_names[] = {"lexical", "gemini", "openai", "local", NULL};

const char *sc_judge_provider_name(int kind) { return kind >= 0 && kind <= SC_JUDGE_LOCAL ? provider_names[kind] : "?"; }

void sc_judge_config_default(sc_judge_config *c) {
    memset(c, 0, sizeof *c);
    c->provider = SC_JUDGE_LEXICAL;
    c->batches = 6;
    c->batch_size = 16;
    c->in_flight = 8;
    c->max_attempts = 5;
    c->request_budget = 5000;
    c->timeout_s = 120;
    c->connect_timeout_s = 15;
    c->scale = 2;
    c->threshold = 0.83f;
}

void sc_quantify_config_default(sc_quantify_config *c) {
    memset(c, 0, sizeof *c);
    const float scales[] = {-5, -2, 0, 1, 4, 7};
    c->n_scales = (int)(sizeof scales / sizeof scales[0]);
    memcpy(c->scales, scales, sizeof scales);
    snprintf(c->traits[0], sizeof c->traits[0], "empathetic");
    snprintf(c->traits[1], sizeof c->traits[1], "prescriptive");
    c->n_traits = 2;
    c->top = 3;
    c->max_new_tokens = 100;
    c->batch_seqs = 64;
}

#define J(f) offsetof(sc_judge_config, f)
static const sc_key judge_keys[] = {
    {"provider", SC_KEY_ENUM, J(provider), 0, 0, 0, 0, provider_names},
    {"model", SC_KEY_STRING, J(model), 0, 0, sizeof(((sc_judge_config *)0)->model), 0, NULL},
    {"embed_model", SC_KEY_STRING, J(embed_model), 0, 0, sizeof(((sc_judge_config *)0)->embed_model), 0, NULL},
    {"base_url", SC_KEY_STRING, J(base_url), 0, 0, sizeof(((sc_judge_config *)0)->base_url), 0, NULL},
    {"api_key_env", SC_KEY_STRING, J(api_key_env), 0, 0, sizeof(((sc_judge_config *)0)->api_key_env), 0, NULL},
    {"local_model", SC_KEY_STRING, J(local_model), 0, 0, sizeof(((sc_judge_config *)0)->local_model), 0, NULL},
    {"local_embed_model", SC_KEY_STRING, J(local_embed_model), 0, 0, sizeof(((sc_judge_config *)0)->local_embed_model), 0, NULL},
    {"batches", SC_KEY_INT, J(batches), 1, 1000, 0, 0, NULL},
    {"batch_size", SC_KEY_INT, J(batch_size), 1, 10000, 0, 0, NULL},
    {"in_flight", SC_KEY_INT, J(in_flight), 1, 256, 0, 0, NULL},
    {"max_attempts", SC_KEY_INT, J(max_attempts), 1, 100, 0, 0, NULL},
    {"request_budget", SC_KEY_INT, J(request_budget), 1, INT_MAX, 0, 0, NULL},
    {"timeout_s", SC_KEY_FLOAT, J(timeout_s), 0.1, 86400, 0, 0, NULL},
    {"connect_timeout_s", SC_KEY_FLOAT, J(connect_timeout_s), 0.1, 3600, 0, 0, NULL},
    {"scale", SC_KEY_FLOAT, J(scale), -1e6, 1e6, 0, 0, NULL},
    {"threshold", SC_KEY_FLOAT, J(threshold), -1, 1, 0, 0, NULL},
};
#undef J
#define Q(f) offsetof(sc_quantify_config, f)
static const sc_key quantify_keys[] = {
    {"scales", SC_KEY_FLOATS, Q(scales), -1e6, 1e6, 16, Q(n_scales), NULL},
    {"traits", SC_KEY_STRINGS, Q(traits), 0, 0, 8, Q(n_traits), NULL},
    {"top", SC_KEY_INT, Q(top), 1, 10000, 0, 0, NULL},
    {"max_new_tokens", SC_KEY_INT, Q(max_new_tokens), 1, 1 << 20, 0, 0, NULL},
    {"batch_seqs", SC_KEY_INT, Q(batch_seqs), 1, 1 << 16, 0, 0, NULL},
    {"prompts", SC_KEY_STRING, Q(prompts), 0, 0, sizeof(((sc_quantify_config *)0)->prompts), 0, NULL},
};
#undef Q

sc_status sc_judge_config_from_json(const cJSON *obj, const char *where, sc_judge_config *c) {
    char what[512];
    snprintf(what, sizeof what, "%s: judge settings", where);
    return sc_settings_from_json(judge_keys, sizeof judge_keys / sizeof judge_keys[0], obj, what, c);
}

sc_status sc_quantify_config_from_json(const cJSON *obj, const char *where, sc_quantify_config *c) {
    char what[512];
    snprintf(what, sizeof what, "%s: quantify settings", where);
    return sc_settings_from_json(quantify_keys, sizeof quantify_keys / sizeof quantify_keys[0], obj, what, c);
}

sc_status sc_judge_config_set(sc_judge_config *c, const char *key, const char *text, const char *where) {
    return sc_settings_set_text(judge_keys, sizeof judge_keys / sizeof judge_keys[0], key, text, where, c);
}
sc_status sc_quantify_config_set(sc_quantify_config *c, const char *key, const char *text, const char *where) {
    return sc_settings_set_text(quantify_keys, sizeof quantify_keys / sizeof quantify_keys[0], key, text, where, c);
}

cJSON *sc_judge_config_to_json(const sc_judge_config *c) { return sc_settings_to_json(judge_keys, sizeof judge_keys / sizeof judge_keys[0], c); }
cJSON *sc_quantify_config_to_json(const sc_quantify_config *c) { return sc_settings_to_json(quantify_keys, sizeof quantify_keys / sizeof quantify_keys[0], c); }

static sc_status resolve(char *path, size_t cap, const char *base_dir) {
    if (!path[0]) return SC_OK;
    char abs[4096];
    SC_TRY(sc_path_resolve(path, base_dir, abs, sizeof abs));
    if (strlen(abs) >= cap) return sc_errorf(SC_ERR_ARG, "path %s is longer than %zu bytes; move it to a shorter path", abs, cap - 1);
    memcpy(path, abs, strlen(abs) + 1);
    return SC_OK;
}

sc_status sc_judging_config_resolve(sc_judge_config *jc, sc_quantify_config *qc, const char *base_dir) {
    SC_TRY(resolve(jc->local_model, sizeof jc->local_model, base_dir));
    SC_TRY(resolve(jc->local_embed_model, sizeof jc->local_embed_model, base_dir));
    return resolve(qc->prompts, sizeof qc->prompts, base_dir);
}

sc_status sc_judging_config_load(const cJSON *file, const char *where, const char *base_dir, sc_judge_config *jc, sc_quantify_config *qc) {
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(file, "judge"), *qs = cJSON_GetObjectItemCaseSensitive(file, "quantify");
    if (js) SC_TRY(sc_judge_config_from_json(js, where, jc));
    if (qs) SC_TRY(sc_quantify_config_from_json(qs, where, qc));
    return sc_judging_config_resolve(jc, qc, base_dir);
}

sc_status sc_judge_provider_open(const sc_judge_config *c, const char *cache_dir, sc_provider **out) {
    *out = NULL;
    switch (c->provider) {
    case SC_JUDGE_LEXICAL: return sc_provider_lexical(out);
    case SC_JUDGE_GEMINI:
    case SC_JUDGE_OPENAI: {
        const char *name = provider_names[c->provider];
        sc_judge_net_opts o;
        sc_judge_net_opts_default(&o, name);
        if (c->base_url[0]) o.base_url = c->base_url;
        if (c->model[0]) o.model = c->model;
        if (c->embed_model[0]) o.embed_model = c->embed_model;
        if (!strcmp(c->api_key_env, "none")) o.api_key_env = "";   // no authentication (a server inside the cluster)
        else if (c->api_key_env[0]) o.api_key_env = c->api_key_env;
        o.cache_dir = cache_dir;
        o.prompts_dir = SC_PROMPTS_DIR;
        o.in_flight = c->in_flight;
        o.timeout_s = c->timeout_s;
        o.connect_timeout_s = c->connect_timeout_s;
        o.max_attempts = c->max_attempts;
        o.request_budget = c->request_budget;
        return c->provider == SC_JUDGE_GEMINI ? sc_provider_gemini(&o, out) : sc_provider_openai(&o, out);
    }
    case SC_JUDGE_LOCAL: return sc_provider_local(c->local_model, c->local_embed_model[0] ? c->local_embed_model : c->local_model, out);
    }
    return sc_errorf(SC_ERR_ARG, "judge provider %d is not known", c->provider);
}
