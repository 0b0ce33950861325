// hf_config.c — Hugging Face config.json for the Qwen2 family (model_type qwen2: Qwen1.5,
// Qwen2, Qwen2.5; model_type qwen3: Qwen3): parse with defaults and validation
// (sc_config_load), and write a config that transformers can load (sc_config_save).
//
// qwen3 differs in three keys: head_dim is required (transformers' Qwen3Config would
// silently assume 128, which a checkpoint of another shape then contradicts), attention_bias
// (default false) says whether q/k/v have biases, and sliding_window is null.
//
// rope_theta may also sit in transformers 5's "rope_parameters" object (rope_type "default").
//
// Leaves out: rope_scaling (a non-null value is an error, we implement plain RoPE), sliding
// window attention (use_sliding_window true, or a layer_types entry other than
// "full_attention", is an error), and every other model family.
#include "steerclear/json.h"
#include "steerclear/model.h"

#include <cjson/cJSON.h>
#include <float.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------
// Reading

// An integer-valued JSON number in [lo, hi]; `present` says whether the key exists.
static sc_status get_int(const char *path, const cJSON *root, const char *key, int required,
                         int def, long lo, long hi, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return sc_errorf(SC_ERR_FORMAT, "%s: required key \"%s\" is missing", path, key);
        *out = def;
        return SC_OK;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" must be an integer", path, key);
    if (j->valuedouble < (double)lo || j->valuedouble > (double)hi)
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" is %.0f, must be in [%ld, %ld]", path, key, j->valuedouble, lo, hi);
    *out = (int)j->valuedouble;
    return SC_OK;
}

static sc_status get_float(const char *path, const cJSON *root, const char *key, float def, float *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) { *out = def; return SC_OK; }
    if (!cJSON_IsNumber(j) || !(j->valuedouble > 0) || !isfinite(j->valuedouble))
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" must be a positive number", path, key);
    if (j->valuedouble < FLT_MIN || j->valuedouble > FLT_MAX)   // outside float32: a cast would lose it (or be undefined)
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" = %g must be a positive number float32 can hold (%g to %g)", path, key,
                         j->valuedouble, (double)FLT_MIN, (double)FLT_MAX);
    *out = (float)j->valuedouble;
    return SC_OK;
}

// bos_token_id / eos_token_id: an integer, null (absent) or a list (the first entry is used).
static sc_status get_token_id(const char *path, const cJSON *root, const char *key, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (!j || cJSON_IsNull(j)) return SC_OK;
    if (cJSON_IsArray(j)) {
        if (!j->child) return SC_OK;
        j = j->child;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < 0 || j->valuedouble > 2147483647.0)
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" must be a non-negative integer token id", path, key);
    *out = (int)j->valuedouble;
    return SC_OK;
}

const char *sc_arch_name(sc_arch a) { return a == SC_ARCH_QWEN3 ? "qwen3" : "qwen2"; }

#define SUPPORTED "supported model families: qwen2 (Qwen1.5, Qwen2, Qwen2.5) and qwen3 (Qwen3)"

static sc_status parse_config(const char *path, const cJSON *root, sc_model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(root)) return sc_errorf(SC_ERR_FORMAT, "%s: not a JSON object", path);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt))
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"model_type\" is missing or not a string (" SUPPORTED ")", path);
    if (!strcmp(mt->valuestring, "qwen2")) cfg->arch = SC_ARCH_QWEN2;
    else if (!strcmp(mt->valuestring, "qwen3")) cfg->arch = SC_ARCH_QWEN3;
    else return sc_errorf(SC_ERR_FORMAT, "%s: model_type \"%s\" is not supported (" SUPPORTED ")", path, mt->valuestring);
    const long big = 1L << 30;
    SC_TRY(get_int(path, root, "num_hidden_layers", 1, 0, 1, 100000, &cfg->n_layers));
    SC_TRY(get_int(path, root, "hidden_size", 1, 0, 1, big, &cfg->hidden));
    SC_TRY(get_int(path, root, "num_attention_heads", 1, 0, 1, big, &cfg->n_heads));
    SC_TRY(get_int(path, root, "intermediate_size", 1, 0, 1, big, &cfg->intermediate));
    SC_TRY(get_int(path, root, "vocab_size", 1, 0, 1, big, &cfg->vocab));
    SC_TRY(get_int(path, root, "num_key_value_heads", 0, cfg->n_heads, 1, big, &cfg->n_kv_heads));
    if (cfg->n_heads % cfg->n_kv_heads)
        return sc_errorf(SC_ERR_FORMAT, "%s: num_attention_heads %d is not divisible by num_key_value_heads %d",
                         path, cfg->n_heads, cfg->n_kv_heads);
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if (hd && !cJSON_IsNull(hd)) {
        SC_TRY(get_int(path, root, "head_dim", 1, 0, 1, big, &cfg->head_dim));
    } else if (cfg->arch == SC_ARCH_QWEN3) {
        return sc_errorf(SC_ERR_FORMAT, "%s: model_type qwen3 needs key \"head_dim\" (Qwen3's head size need not be hidden_size / num_attention_heads, "
                         "e.g. 128 for Qwen3-0.6B with hidden_size 1024 and 16 heads); add \"head_dim\": N from the model's published config.json",
                         path);
    } else {
        if (cfg->hidden % cfg->n_heads)
            return sc_errorf(SC_ERR_FORMAT, "%s: hidden_size %d is not divisible by num_attention_heads %d and \"head_dim\" is not given",
                             path, cfg->hidden, cfg->n_heads);
        cfg->head_dim = cfg->hidden / cfg->n_heads;
    }
    if (cfg->head_dim % 2)
        return sc_errorf(SC_ERR_FORMAT, "%s: head_dim %d is odd; rotary embeddings rotate pairs of dimensions, so it must be even", path, cfg->head_dim);
    SC_TRY(get_int(path, root, "max_position_embeddings", 0, 32768, 1, big, &cfg->max_position));
    SC_TRY(get_float(path, root, "rope_theta", 10000.0f, &cfg->rope_theta));
    // transformers 5 writes {"rope_parameters": {"rope_type": "default", "rope_theta": ...}}
    // instead of rope_theta / rope_scaling: read the theta there, refuse other rope types
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        if (!cJSON_IsObject(rp)) return sc_errorf(SC_ERR_FORMAT, "%s: key \"rope_parameters\" must be an object", path);
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
        if (rt && !cJSON_IsNull(rt) && (!cJSON_IsString(rt) || strcmp(rt->valuestring, "default")))
            return sc_errorf(SC_ERR_FORMAT, "%s: rope_parameters.rope_type is not \"default\"; only plain RoPE is supported", path);
        if (cJSON_GetObjectItemCaseSensitive(rp, "rope_theta")) {
            float th;
            SC_TRY(get_float(path, rp, "rope_theta", 10000.0f, &th));
            if (cJSON_GetObjectItemCaseSensitive(root, "rope_theta") && th != cfg->rope_theta)
                return sc_errorf(SC_ERR_FORMAT, "%s: rope_theta %g and rope_parameters.rope_theta %g disagree; keep one", path,
                                 (double)cfg->rope_theta, (double)th);
            cfg->rope_theta = th;
        }
    }
    SC_TRY(get_float(path, root, "rms_norm_eps", 1e-6f, &cfg->rms_eps));
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && !cJSON_IsNull(tie)) {
        if (!cJSON_IsBool(tie)) return sc_errorf(SC_ERR_FORMAT, "%s: key \"tie_word_embeddings\" must be true or false", path);
        cfg->tie_embeddings = cJSON_IsTrue(tie);
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(root, "attention_bias");
    if (ab && !cJSON_IsNull(ab)) {
        if (!cJSON_IsBool(ab)) return sc_errorf(SC_ERR_FORMAT, "%s: key \"attention_bias\" must be true or false", path);
        // qwen2 always has q/k/v biases (transformers' Qwen2Attention ignores the key)
        if (cfg->arch == SC_ARCH_QWEN3) cfg->attention_bias = cJSON_IsTrue(ab);
    }
    SC_TRY(get_token_id(path, root, "bos_token_id", &cfg->bos_id));
    SC_TRY(get_token_id(path, root, "eos_token_id", &cfg->eos_id));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!dt) dt = cJSON_GetObjectItemCaseSensitive(root, "dtype");   // newer transformers name it "dtype"
    if (dt && !cJSON_IsNull(dt)) {
        if (!cJSON_IsString(dt)) return sc_errorf(SC_ERR_FORMAT, "%s: key \"torch_dtype\" must be a string", path);
        snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", dt->valuestring);
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs))
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"rope_scaling\" is set; only plain RoPE is supported (remove it or set it to null)", path);
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "use_sliding_window");
    if (cJSON_IsTrue(sw))
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"use_sliding_window\" is true; sliding-window attention is not supported", path);
    // newer transformers write one attention kind per layer
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt)) return sc_errorf(SC_ERR_FORMAT, "%s: key \"layer_types\" must be a list", path);
        int i = 0;
        for (const cJSON *e = lt->child; e; e = e->next, i++)
            if (!cJSON_IsString(e) || strcmp(e->valuestring, "full_attention"))
                return sc_errorf(SC_ERR_FORMAT, "%s: layer_types[%d] is not \"full_attention\"; only full attention is supported (no sliding-window layers)",
                                 path, i);
    }
    return SC_OK;
}

sc_status sc_config_load(const char *path, sc_model_config *cfg) {
    char *text = NULL;
    size_t len = 0;
    memset(cfg, 0, sizeof *cfg);
    SC_TRY(sc_read_file(path, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return sc_errorf(SC_ERR_FORMAT, "%s: not valid JSON", path);
    sc_status rc = cJSON_IsObject(root) ? sc_json_check_object(root, path, NULL) : SC_OK;   // repeated keys
    if (!rc) rc = parse_config(path, root, cfg);
    cJSON_Delete(root);
    return rc;
}

// ---------------------------------------------------------------------------------------
// Writing

// The shortest decimal that reads back as the same float ("1e-06", "1000000.0"); cJSON would
// print the widened double (9.9999999747524271e-07).
static void fmt_float(char *buf, size_t cap, float v) {
    if (v == floorf(v) && fabsf(v) < 1e9f) { snprintf(buf, cap, "%.1f", (double)v); return; }
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

sc_status sc_config_save(const char *path, const sc_model_config *c) {
    if ((c->arch != SC_ARCH_QWEN2 && c->arch != SC_ARCH_QWEN3) || c->n_layers <= 0 || c->hidden <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->intermediate <= 0 || c->vocab <= 0 || c->n_heads % c->n_kv_heads)
        return sc_errorf(SC_ERR_ARG, "%s: refusing to write an invalid config (L %d, C %d, NH %d, KVH %d, HD %d, I %d, V %d)",
                         path, c->n_layers, c->hidden, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate, c->vocab);
    cJSON *r = cJSON_CreateObject();
    if (!r) return sc_errorf(SC_ERR_MEM, "%s: out of memory", path);
    const int q3 = c->arch == SC_ARCH_QWEN3;
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(q3 ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM"));
    if (q3) cJSON_AddBoolToObject(r, "attention_bias", c->attention_bias != 0);
    cJSON_AddNumberToObject(r, "attention_dropout", 0.0);
    if (c->bos_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", c->bos_id); else cJSON_AddNullToObject(r, "bos_token_id");
    if (c->eos_id >= 0) cJSON_AddNumberToObject(r, "eos_token_id", c->eos_id); else cJSON_AddNullToObject(r, "eos_token_id");
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    cJSON_AddNumberToObject(r, "hidden_size", c->hidden);
    if (q3 || c->head_dim * c->n_heads != c->hidden) cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(r, "initializer_range", 0.02);
    cJSON_AddNumberToObject(r, "intermediate_size", c->intermediate);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_position > 0 ? c->max_position : 32768);
    cJSON_AddNumberToObject(r, "max_window_layers", c->n_layers);
    cJSON_AddStringToObject(r, "model_type", sc_arch_name(c->arch));
    cJSON_AddNumberToObject(r, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->n_kv_heads);
    // floats are printed from their float value so they read back bit-identical
    cJSON_AddRawToObject(r, "rms_norm_eps", "0");
    cJSON_AddNullToObject(r, "rope_scaling");
    cJSON_AddRawToObject(r, "rope_theta", "0");
    if (q3) cJSON_AddNullToObject(r, "sliding_window");
    else cJSON_AddNumberToObject(r, "sliding_window", c->max_position > 0 ? c->max_position : 32768);
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_embeddings != 0);
    cJSON_AddStringToObject(r, "torch_dtype", c->torch_dtype[0] ? c->torch_dtype : "bfloat16");
    cJSON_AddStringToObject(r, "transformers_version", q3 ? "4.51.0" : "4.43.1");
    cJSON_AddBoolToObject(r, "use_cache", 1);
    cJSON_AddBoolToObject(r, "use_sliding_window", 0);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab);
    char num[2][32];
    fmt_float(num[0], sizeof num[0], c->rms_eps);
    fmt_float(num[1], sizeof num[1], c->rope_theta);
    cJSON_ReplaceItemInObjectCaseSensitive(r, "rms_norm_eps", cJSON_CreateRaw(num[0]));
    cJSON_ReplaceItemInObjectCaseSensitive(r, "rope_theta", cJSON_CreateRaw(num[1]));
    char *text = cJSON_Print(r);
    cJSON_Delete(r);
    if (!text) return sc_errorf(SC_ERR_MEM, "%s: out of memory printing JSON", path);
    size_t n = strlen(text);
    char *full = malloc(n + 2);
    if (!full) { cJSON_free(text); return sc_errorf(SC_ERR_MEM, "%s: out of memory", path); }
    memcpy(full, text, n);
    full[n] = '\n';
    cJSON_free(text);
    sc_status rc = sc_write_file_atomic(path, full, n + 1);
    free(full);
    return rc;
}
