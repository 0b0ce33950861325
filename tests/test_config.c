// test_config.c — config.json: real Qwen2.5-0.5B and Qwen3-0.6B configs, defaults, every
// validation error with its message, and save -> load round trips (the saved file also checked
// by Python's json).
#include "testutil.h"
#include "steerclear/model.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static char g_path[8192];

static const char *cfg_file(const char *name, const char *text) {
    snprintf(g_path, sizeof g_path, "%s/%s", sc_test_tmpdir(), name);
    sc_test_write(g_path, text, strlen(text));
    return g_path;
}

// Qwen/Qwen2.5-0.5B config.json as published.
static const char *qwen05 =
    "{\n"
    "  \"architectures\": [\"Qwen2ForCausalLM\"],\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 151643,\n"
    "  \"eos_token_id\": 151643,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 896,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 4864,\n"
    "  \"max_position_embeddings\": 32768,\n"
    "  \"max_window_layers\": 24,\n"
    "  \"model_type\": \"qwen2\",\n"
    "  \"num_attention_heads\": 14,\n"
    "  \"num_hidden_layers\": 24,\n"
    "  \"num_key_value_heads\": 2,\n"
    "  \"rms_norm_eps\": 1e-06,\n"
    "  \"rope_theta\": 1000000.0,\n"
    "  \"sliding_window\": 32768,\n"
    "  \"tie_word_embeddings\": true,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.40.1\",\n"
    "  \"use_cache\": true,\n"
    "  \"use_sliding_window\": false,\n"
    "  \"vocab_size\": 151936\n"
    "}\n";

// Qwen/Qwen3-0.6B config.json as published (head_dim 128, hidden_size / heads = 64).
static const char *qwen3_06 =
    "{\n"
    "  \"architectures\": [\"Qwen3ForCausalLM\"],\n"
    "  \"attention_bias\": false,\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 151643,\n"
    "  \"eos_token_id\": 151645,\n"
    "  \"head_dim\": 128,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 1024,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 3072,\n"
    "  \"max_position_embeddings\": 40960,\n"
    "  \"max_window_layers\": 28,\n"
    "  \"model_type\": \"qwen3\",\n"
    "  \"num_attention_heads\": 16,\n"
    "  \"num_hidden_layers\": 28,\n"
    "  \"num_key_value_heads\": 8,\n"
    "  \"rms_norm_eps\": 1e-06,\n"
    "  \"rope_scaling\": null,\n"
    "  \"rope_theta\": 1000000,\n"
    "  \"sliding_window\": null,\n"
    "  \"tie_word_embeddings\": true,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.51.0\",\n"
    "  \"use_cache\": true,\n"
    "  \"use_sliding_window\": false,\n"
    "  \"vocab_size\": 151936\n"
    "}\n";

#define REQ "\"model_type\":\"qwen2\",\"num_hidden_layers\":2,\"hidden_size\":64,\"num_attention_heads\":4,\"intermediate_size\":96,\"vocab_size\":100"

static void test_real(void) {
    sc_model_config c;
    CHECK_OK(sc_config_load(cfg_file("qwen05.json", qwen05), &c));
    CHECK(c.n_layers == 24 && c.hidden == 896 && c.n_heads == 14 && c.n_kv_heads == 2 && c.head_dim == 64);
    CHECK(c.intermediate == 4864 && c.vocab == 151936 && c.max_position == 32768);
    CHECK(c.rope_theta == 1e6f && c.rms_eps == 1e-6f && c.tie_embeddings == 1);
    CHECK(c.bos_id == 151643 && c.eos_id == 151643 && !strcmp(c.torch_dtype, "bfloat16"));
    CHECK(c.arch == SC_ARCH_QWEN2 && sc_config_has_qkv_bias(&c) && !sc_config_has_qk_norm(&c));
    CHECK_OK(sc_config_load(cfg_file("qwen3.json", qwen3_06), &c));
    CHECK(c.arch == SC_ARCH_QWEN3 && !c.attention_bias && !sc_config_has_qkv_bias(&c) && sc_config_has_qk_norm(&c));
    CHECK(c.n_layers == 28 && c.hidden == 1024 && c.n_heads == 16 && c.n_kv_heads == 8 && c.head_dim == 128);
    CHECK(c.intermediate == 3072 && c.vocab == 151936 && c.max_position == 40960 && c.rope_theta == 1e6f && c.rms_eps == 1e-6f);
    CHECK(c.tie_embeddings == 1 && c.bos_id == 151643 && c.eos_id == 151645);
}

#define REQ3 "\"model_type\":\"qwen3\",\"num_hidden_layers\":2,\"hidden_size\":64,\"num_attention_heads\":4,\"intermediate_size\":96,\"vocab_size\":100"

static void test_qwen3(void) {
    sc_model_config c;
    CHECK_OK(sc_config_load(cfg_file("q3.json", "{" REQ3 ",\"head_dim\":24,\"attention_bias\":true}"), &c));
    CHECK(c.arch == SC_ARCH_QWEN3 && c.head_dim == 24 && c.attention_bias && sc_config_has_qkv_bias(&c));
    // attention_bias means nothing to qwen2 (always biased, as in transformers)
    CHECK_OK(sc_config_load(cfg_file("q2ab.json", "{" REQ ",\"attention_bias\":false}"), &c));
    CHECK(c.arch == SC_ARCH_QWEN2 && !c.attention_bias && sc_config_has_qkv_bias(&c));
    // full-attention layer_types are fine
    CHECK_OK(sc_config_load(cfg_file("lt.json", "{" REQ3 ",\"head_dim\":16,\"layer_types\":[\"full_attention\",\"full_attention\"]}"), &c));
    CHECK_ERR(sc_config_load(cfg_file("q3nohd.json", "{" REQ3 "}"), &c), SC_ERR_FORMAT, "q3nohd.json", "model_type qwen3 needs key \"head_dim\"",
              "add \"head_dim\": N");
    CHECK_ERR(sc_config_load(cfg_file("q3ab.json", "{" REQ3 ",\"head_dim\":16,\"attention_bias\":\"no\"}"), &c), SC_ERR_FORMAT,
              "q3ab.json", "\"attention_bias\" must be true or false");
    CHECK_ERR(sc_config_load(cfg_file("lt2.json", "{" REQ3 ",\"head_dim\":16,\"layer_types\":[\"full_attention\",\"sliding_attention\"]}"), &c),
              SC_ERR_FORMAT, "lt2.json", "layer_types[1] is not \"full_attention\"");
    CHECK_ERR(sc_config_load(cfg_file("q3odd.json", "{" REQ3 ",\"head_dim\":15}"), &c), SC_ERR_FORMAT, "head_dim 15 is odd");
    // transformers 5 layout: rope_theta inside rope_parameters
    CHECK_OK(sc_config_load(cfg_file("rp.json", "{" REQ3 ",\"head_dim\":16,\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":1000000}}"), &c));
    CHECK(c.rope_theta == 1e6f);
    CHECK_ERR(sc_config_load(cfg_file("rp2.json", "{" REQ3 ",\"head_dim\":16,\"rope_parameters\":{\"rope_type\":\"yarn\",\"factor\":4}}"), &c),
              SC_ERR_FORMAT, "rp2.json", "rope_parameters.rope_type is not \"default\"");
    CHECK_ERR(sc_config_load(cfg_file("rp3.json", "{" REQ3 ",\"head_dim\":16,\"rope_theta\":5,\"rope_parameters\":{\"rope_theta\":6}}"), &c),
              SC_ERR_FORMAT, "rp3.json", "disagree");

    // save -> load round trip in the Qwen3 layout
    sc_model_config r;
    CHECK_OK(sc_config_load(cfg_file("qwen3.json", qwen3_06), &c));
    char path[8192];
    snprintf(path, sizeof path, "%s/saved3.json", sc_test_tmpdir());
    CHECK_OK(sc_config_save(path, &c));
    CHECK_OK(sc_config_load(path, &r));
    CHECK(!memcmp(&c, &r, sizeof c));
    c.attention_bias = 1;
    c.head_dim = 64;   // = hidden / heads: still written for qwen3
    CHECK_OK(sc_config_save(path, &c));
    CHECK_OK(sc_config_load(path, &r));
    CHECK(!memcmp(&c, &r, sizeof c));
    if (system("/usr/bin/python3 -c 'import json' >/dev/null 2>&1") == 0) {
        char cmd[16384];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"import json,sys; c=json.load(open('%s')); "
                 "sys.exit(0 if (c['model_type'],c['architectures'],c['head_dim'],c['attention_bias'],c['sliding_window'],c['use_sliding_window'],"
                 "c['hidden_size'],c['num_attention_heads'],c['tie_word_embeddings']) == ('qwen3',['Qwen3ForCausalLM'],64,True,None,False,1024,16,True) else 1)\"",
                 path);
        CHECK(system(cmd) == 0);
    }
}

static void test_defaults(void) {
    sc_model_config c;
    CHECK_OK(sc_config_load(cfg_file("min.json", "{" REQ "}"), &c));
    CHECK(c.n_kv_heads == 4 && c.head_dim == 16 && c.rope_theta == 10000.0f && c.rms_eps == 1e-6f);
    CHECK(c.tie_embeddings == 0 && c.max_position == 32768 && c.bos_id == -1 && c.eos_id == -1 && c.torch_dtype[0] == '\0');
    // explicit head_dim need not divide hidden; eos as a list; nulls mean absent; "dtype" alias
    CHECK_OK(sc_config_load(cfg_file("hd.json", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":1,\"hidden_size\":60,\"num_attention_heads\":8,"
                                     "\"num_key_value_heads\":2,\"head_dim\":32,\"intermediate_size\":8,\"vocab_size\":9,\"eos_token_id\":[5,7],"
                                     "\"bos_token_id\":null,\"rope_scaling\":null,\"dtype\":\"float32\"}"), &c));
    CHECK(c.head_dim == 32 && c.n_kv_heads == 2 && c.eos_id == 5 && c.bos_id == -1 && !strcmp(c.torch_dtype, "float32"));
}

static void test_errors(void) {
    sc_model_config c;
    CHECK_ERR(sc_config_load("/nonexistent/config.json", &c), SC_ERR_IO, "/nonexistent/config.json", "cannot open");
    CHECK_ERR(sc_config_load(cfg_file("bad.json", "{\"model_type\": "), &c), SC_ERR_FORMAT, "bad.json", "not valid JSON");
    CHECK_ERR(sc_config_load(cfg_file("arr.json", "[]"), &c), SC_ERR_FORMAT, "arr.json", "not a JSON object");
    CHECK_ERR(sc_config_load(cfg_file("llama.json", "{\"model_type\":\"llama\"}"), &c), SC_ERR_FORMAT,
              "llama.json", "model_type \"llama\" is not supported", "supported model families: qwen2");
    CHECK_ERR(sc_config_load(cfg_file("nomt.json", "{\"hidden_size\":3}"), &c), SC_ERR_FORMAT, "nomt.json", "\"model_type\" is missing");
    const char *required[] = {"num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size"};
    for (int i = 0; i < 5; i++) {
        // REQ with key i removed (values are the ones in REQ)
        char text[1024] = "{\"model_type\":\"qwen2\"";
        const char *vals[] = {"2", "64", "4", "96", "100"};
        for (int j = 0; j < 5; j++) {
            if (j == i) continue;
            snprintf(text + strlen(text), sizeof text - strlen(text), ",\"%s\":%s", required[j], vals[j]);
        }
        strcat(text, "}");
        char msg[128];
        snprintf(msg, sizeof msg, "required key \"%s\" is missing", required[i]);
        CHECK_ERR(sc_config_load(cfg_file("missing.json", text), &c), SC_ERR_FORMAT, "missing.json", msg);
    }
    CHECK_ERR(sc_config_load(cfg_file("zero.json", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":0,\"hidden_size\":64,\"num_attention_heads\":4,"
                                      "\"intermediate_size\":96,\"vocab_size\":100}"), &c), SC_ERR_FORMAT, "zero.json", "\"num_hidden_layers\" is 0, must be in [1,");
    CHECK_ERR(sc_config_load(cfg_file("neg.json", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":2,\"hidden_size\":-64,\"num_attention_heads\":4,"
                                      "\"intermediate_size\":96,\"vocab_size\":100}"), &c), SC_ERR_FORMAT, "\"hidden_size\" is -64");
    CHECK_ERR(sc_config_load(cfg_file("frac.json", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":2.5,\"hidden_size\":64,\"num_attention_heads\":4,"
                                      "\"intermediate_size\":96,\"vocab_size\":100}"), &c), SC_ERR_FORMAT, "\"num_hidden_layers\" must be an integer");
    CHECK_ERR(sc_config_load(cfg_file("str.json", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":2,\"hidden_size\":\"64\",\"num_attention_heads\":4,"
                                      "\"intermediate_size\":96,\"vocab_size\":100}"), &c), SC_ERR_FORMAT, "str.json", "\"hidden_size\" must be an integer");
    CHECK_ERR(sc_config_load(cfg_file("kv.json", "{" REQ ",\"num_key_value_heads\":3}"), &c), SC_ERR_FORMAT,
              "kv.json", "num_attention_heads 4 is not divisible by num_key_value_heads 3");
    CHECK_ERR(sc_config_load(cfg_file("hd.json", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":2,\"hidden_size\":60,\"num_attention_heads\":8,"
                                      "\"intermediate_size\":96,\"vocab_size\":100}"), &c), SC_ERR_FORMAT,
              "hd.json", "hidden_size 60 is not divisible by num_attention_heads 8", "\"head_dim\" is not given");
    CHECK_ERR(sc_config_load(cfg_file("theta.json", "{" REQ ",\"rope_theta\":-1}"), &c), SC_ERR_FORMAT, "theta.json", "\"rope_theta\" must be a positive number");
    CHECK_ERR(sc_config_load(cfg_file("eps.json", "{" REQ ",\"rms_norm_eps\":\"x\"}"), &c), SC_ERR_FORMAT, "\"rms_norm_eps\" must be a positive number");
    // found by fuzzing: values float32 cannot hold, repeated keys, an odd head_dim
    CHECK_ERR(sc_config_load(cfg_file("big.json", "{" REQ ",\"rope_theta\":1e39}"), &c), SC_ERR_FORMAT, "\"rope_theta\" = 1e+39 must be a positive number float32 can hold");
    CHECK_ERR(sc_config_load(cfg_file("tiny.json", "{" REQ ",\"rms_norm_eps\":1e-46}"), &c), SC_ERR_FORMAT, "\"rms_norm_eps\" = 1e-46");
    CHECK_ERR(sc_config_load(cfg_file("twice.json", "{" REQ ",\"rope_theta\":5,\"rope_theta\":6}"), &c), SC_ERR_FORMAT, "twice.json", "key \"rope_theta\" appears twice");
    CHECK_ERR(sc_config_load(cfg_file("tie.json", "{" REQ ",\"tie_word_embeddings\":1}"), &c), SC_ERR_FORMAT, "tie.json", "\"tie_word_embeddings\" must be true or false");
    CHECK_ERR(sc_config_load(cfg_file("eos.json", "{" REQ ",\"eos_token_id\":-3}"), &c), SC_ERR_FORMAT, "eos.json", "\"eos_token_id\" must be a non-negative integer");
    CHECK_ERR(sc_config_load(cfg_file("dt.json", "{" REQ ",\"torch_dtype\":5}"), &c), SC_ERR_FORMAT, "\"torch_dtype\" must be a string");
    CHECK_ERR(sc_config_load(cfg_file("rs.json", "{" REQ ",\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}"), &c), SC_ERR_FORMAT,
              "rs.json", "\"rope_scaling\" is set");
    CHECK_ERR(sc_config_load(cfg_file("sw.json", "{" REQ ",\"use_sliding_window\":true}"), &c), SC_ERR_FORMAT, "sliding-window attention is not supported");
}

static void test_save(void) {
    sc_model_config c, r;
    CHECK_OK(sc_config_load(cfg_file("qwen05.json", qwen05), &c));
    char path[8192];
    snprintf(path, sizeof path, "%s/saved.json", sc_test_tmpdir());
    CHECK_OK(sc_config_save(path, &c));
    CHECK_OK(sc_config_load(path, &r));
    CHECK(!memcmp(&c, &r, sizeof c));
    // the saved file carries the Hugging Face keys with the right JSON types
    char *text;
    size_t n;
    CHECK_OK(sc_read_file(path, &text, &n));
    cJSON *j = cJSON_Parse(text);
    CHECK(j != NULL);
    if (j) {
        const cJSON *arch = cJSON_GetObjectItem(j, "architectures");
        CHECK(cJSON_IsArray(arch) && !strcmp(cJSON_GetArrayItem(arch, 0)->valuestring, "Qwen2ForCausalLM"));
        CHECK(!strcmp(cJSON_GetObjectItem(j, "hidden_act")->valuestring, "silu"));
        CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "use_sliding_window")));
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "tie_word_embeddings")));
        CHECK(cJSON_GetObjectItem(j, "head_dim") == NULL);   // implied by hidden / heads
        CHECK(cJSON_GetObjectItem(j, "rms_norm_eps")->valuedouble == 1e-6);
        CHECK(cJSON_GetObjectItem(j, "rope_theta")->valuedouble == 1e6);
        cJSON_Delete(j);
    }
    CHECK(strstr(text, "\"rms_norm_eps\":\t1e-06") || strstr(text, "\"rms_norm_eps\": 1e-06"));
    CHECK(strstr(text, "1000000.0") != NULL);
    free(text);
    // Python's json module reads it with the same values (an independent parser)
    if (system("/usr/bin/python3 -c 'import json' >/dev/null 2>&1") == 0) {
        char cmd[16384];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"import json,sys; c=json.load(open('%s')); "
                 "sys.exit(0 if (c['model_type'],c['hidden_size'],c['num_key_value_heads'],c['rms_norm_eps'],c['rope_theta'],c['eos_token_id'],"
                 "c['architectures'],c['torch_dtype']) == ('qwen2',896,2,1e-6,1e6,151643,['Qwen2ForCausalLM'],'bfloat16') else 1)\"", path);
        CHECK(system(cmd) == 0);
    }
    // head_dim written when it is not hidden / heads; absent ids written as null
    c.head_dim = 128;
    c.bos_id = -1;
    c.rms_eps = 1e-5f;
    c.rope_theta = 12345.5f;
    CHECK_OK(sc_config_save(path, &c));
    CHECK_OK(sc_config_load(path, &r));
    CHECK(r.head_dim == 128 && r.bos_id == -1 && r.rms_eps == 1e-5f && r.rope_theta == 12345.5f);
    c.n_kv_heads = 3;
    CHECK_ERR(sc_config_save(path, &c), SC_ERR_ARG, "saved.json", "refusing to write an invalid config", "KVH 3");
    c.n_kv_heads = 2;
    CHECK_ERR(sc_config_save("/nonexistent/dir/config.json", &c), SC_ERR_IO, "/nonexistent/dir/config.json");
}

int main(void) {
    test_real();
    test_defaults();
    test_errors();
    test_save();
    test_qwen3();
    return sc_test_finish("test_config");
}
