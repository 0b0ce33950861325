// make_model.c — random Qwen2 or Qwen3 models in the Hugging Face layout: presets, tokenizer vocabulary
// check, deterministic weights from the counter-based RNG, streamed (bounded memory) writing,
// optional sharding with model.safetensors.index.json.
//
// Leaves out: any training; weights are random but scaled so the model is not degenerate.
//
// Initialisation (every tensor t draws N(0,1) from sc_rng_normal(seed, stream = t's index in
// the canonical order below, counter = element / 2), then scales):
//   embed_tokens, lm_head   std 1/sqrt(C): a token's embedding has norm ~1 and, after the final
//                           RMSNorm (norm ~sqrt(C)), logits have std ~1 over the vocabulary:
//                           neither flat nor one-hot.
//   q/k/v, gate/up          std 1/sqrt(fan_in) (fan_in = columns): unit-scale activations, so
//                           attention scores have std ~1 (real, context-dependent attention).
//   o, down                 std 4/sqrt(fan_in): each block adds updates of rms ~4 to the residual,
//                           which then outweigh the embedding (norm ~1). In C = 64 a tied model
//                           otherwise favours the input token itself (it stays in the residual
//                           and lm_head = embed): greedy decoding of the tiny preset from random
//                           prompts gave 46 immediate repeats in 114 steps with std 1/sqrt(fan_in),
//                           21 with 4/sqrt(fan_in) (checked with a PyTorch re-implementation).
//                           Every RMSNorm is scale-invariant, so only this ratio matters, and
//                           logits keep std ~1.
//   q/k/v biases            std 0.1: small but non-zero, so the bias path is exercised.
//   RMSNorm weights         1 + 0.05 N(0,1): near identity, but not exactly 1 (also the
//                           qwen3 per-head q_norm and k_norm, [head_dim] each).
// Canonical order: embed; per layer: input_layernorm, q w, q b, k w, k b, v w, v b, o,
// [qwen3: q_norm, k_norm,] post_attention_layernorm, gate, up, down; final norm; lm_head
// (untied only). The biases are left out where the architecture has none (qwen3 without
// attention_bias); a qwen2 model's tensors and streams are those of the qwen2-only writer.
#include "steerclear/make_model.h"
#include "steerclear/rng.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------
// Presets

sc_status sc_make_model_preset(const char *name, sc_make_model_opts *o) {
    sc_model_config *c = &o->cfg;
    memset(c, 0, sizeof *c);
    c->rope_theta = 1e6f;
    c->rms_eps = 1e-6f;
    c->max_position = 32768;
    c->bos_id = c->eos_id = 151643;   // <|endoftext|>, as Qwen2.5 base models
    o->dtype = SC_DTYPE_BF16;
    if (!strcmp(name, "tiny")) {
        c->n_layers = 3; c->hidden = 64; c->n_heads = 4; c->n_kv_heads = 2; c->head_dim = 16;
        c->intermediate = 176; c->vocab = 151936; c->tie_embeddings = 1;
    } else if (!strcmp(name, "qwen2.5-0.5b-shape")) {
        c->n_layers = 24; c->hidden = 896; c->n_heads = 14; c->n_kv_heads = 2; c->head_dim = 64;
        c->intermediate = 4864; c->vocab = 151936; c->tie_embeddings = 1;
    } else if (!strcmp(name, "qwen2.5-14b-shape")) {
        c->n_layers = 48; c->hidden = 5120; c->n_heads = 40; c->n_kv_heads = 8; c->head_dim = 128;
        c->intermediate = 13824; c->vocab = 152064; c->tie_embeddings = 0; c->max_position = 131072;
    } else if (!strcmp(name, "qwen3-0.6b-shape")) {   // head_dim 128 != hidden / heads = 64
        c->arch = SC_ARCH_QWEN3;
        c->n_layers = 28; c->hidden = 1024; c->n_heads = 16; c->n_kv_heads = 8; c->head_dim = 128;
        c->intermediate = 3072; c->vocab = 151936; c->tie_embeddings = 1; c->max_position = 40960;
    } else {
        return sc_errorf(SC_ERR_ARG, "unknown preset '%s' (presets: " SC_MAKE_MODEL_PRESETS ")", name);
    }
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "bfloat16");
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Tokenizer vocabulary

sc_status sc_tokenizer_vocab_info(const char *path, int *min_vocab, int *eos_id) {
    *min_vocab = 0;
    *eos_id = -1;
    char *text = NULL;
    size_t len = 0;
    SC_TRY(sc_read_file(path, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return sc_errorf(SC_ERR_FORMAT, "%s: not valid JSON", path);
    sc_status rc = SC_OK;
    double max_id = -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    if (!cJSON_IsObject(vocab)) { rc = sc_errorf(SC_ERR_FORMAT, "%s: no \"model.vocab\" object (expected a BPE tokenizer.json)", path); goto done; }
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0) { rc = sc_errorf(SC_ERR_FORMAT, "%s: model.vocab entry '%s' is not a non-negative id", path, e->string); goto done; }
        if (e->valuedouble > max_id) max_id = e->valuedouble;
        if (!strcmp(e->string, "<|endoftext|>")) *eos_id = (int)e->valuedouble;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0) { rc = sc_errorf(SC_ERR_FORMAT, "%s: an added_tokens entry has no valid \"id\"", path); goto done; }
        if (id->valuedouble > max_id) max_id = id->valuedouble;
        if (cJSON_IsString(content) && !strcmp(content->valuestring, "<|endoftext|>")) *eos_id = (int)id->valuedouble;
    }
    if (max_id > 2147483646.0) { rc = sc_errorf(SC_ERR_FORMAT, "%s: token id %.0f is too large", path, max_id); goto done; }
    *min_vocab = (int)max_id + 1;
done:
    cJSON_Delete(root);
    return rc;
}

// ---------------------------------------------------------------------------------------
// Tensor list

typedef enum { K_EMBED, K_NORM, K_BIAS, K_PROJ, K_OUT } tensor_kind;

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    tensor_kind kind;
    size_t numel;
} tensor_spec;

static sc_status build_specs(const sc_model_config *c, tensor_spec **out, size_t *n_out) {
    size_t cap = 1 + 14 * (size_t)c->n_layers + 2, n = 0;
    const int bias = sc_config_has_qkv_bias(c), qk_norm = sc_config_has_qk_norm(c);
    tensor_spec *s = sc_calloc(cap, sizeof *s, "tensor list");
    if (!s) return SC_ERR_MEM;
    int64_t C = c->hidden, I = c->intermediate, V = c->vocab;
    int64_t QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
#define ADD(kind_, r, cols, ...) do { tensor_spec *t_ = &s[n++]; snprintf(t_->name, sizeof t_->name, __VA_ARGS__); \
        t_->kind = (kind_); t_->shape[0] = (r); t_->shape[1] = (cols); t_->ndim = (cols) ? 2 : 1; \
        t_->numel = (size_t)(r) * (size_t)((cols) ? (cols) : 1); } while (0)
    ADD(K_EMBED, V, C, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        ADD(K_NORM, C, 0, "model.layers.%d.input_layernorm.weight", l);
        ADD(K_PROJ, QD, C, "model.layers.%d.self_attn.q_proj.weight", l);
        if (bias) ADD(K_BIAS, QD, 0, "model.layers.%d.self_attn.q_proj.bias", l);
        ADD(K_PROJ, KD, C, "model.layers.%d.self_attn.k_proj.weight", l);
        if (bias) ADD(K_BIAS, KD, 0, "model.layers.%d.self_attn.k_proj.bias", l);
        ADD(K_PROJ, KD, C, "model.layers.%d.self_attn.v_proj.weight", l);
        if (bias) ADD(K_BIAS, KD, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        ADD(K_OUT, C, QD, "model.layers.%d.self_attn.o_proj.weight", l);
        if (qk_norm) {
            ADD(K_NORM, c->head_dim, 0, "model.layers.%d.self_attn.q_norm.weight", l);
            ADD(K_NORM, c->head_dim, 0, "model.layers.%d.self_attn.k_norm.weight", l);
        }
        ADD(K_NORM, C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(K_PROJ, I, C, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(K_PROJ, I, C, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(K_OUT, C, I, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(K_NORM, C, 0, "model.norm.weight");
    if (!c->tie_embeddings) ADD(K_EMBED, V, C, "lm_head.weight");
#undef ADD
    *out = s;
    *n_out = n;
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Generation and streaming

// Elements [start, start+n) of tensor `stream` (start even), scaled, converted to dtype into dst.
static void gen_piece(const tensor_spec *t, uint64_t seed, uint64_t stream, size_t start, size_t n,
                      float *tmp, void *dst, sc_dtype dtype) {
    float mean = 0.0f, std = 1.0f;
    switch (t->kind) {
    case K_EMBED: std = 1.0f / sqrtf((float)t->shape[1]); break;
    case K_PROJ: std = 1.0f / sqrtf((float)t->shape[1]); break;
    case K_OUT: std = 4.0f / sqrtf((float)t->shape[1]); break;
    case K_BIAS: std = 0.1f; break;
    case K_NORM: mean = 1.0f; std = 0.05f; break;
    }
    const size_t sub = 8192;   // even: every piece starts on a Box-Muller pair
    long n_pieces = (long)((n + sub - 1) / sub);
    #pragma omp parallel for schedule(static)
    for (long p = 0; p < n_pieces; p++) {
        size_t off = (size_t)p * sub, len = n - off < sub ? n - off : sub;
        float *x = tmp + off;
        sc_rng_normal(seed, stream, (start + off) / 2, x, len);
        for (size_t i = 0; i < len; i++) {
            float v = mean + std * x[i];
            if (dtype == SC_DTYPE_F32) ((float *)dst)[off + i] = v;
            else if (dtype == SC_DTYPE_BF16) ((uint16_t *)dst)[off + i] = sc_f32_to_bf16(v);
            else ((uint16_t *)dst)[off + i] = sc_f32_to_f16(v);
        }
    }
}

static sc_status write_file(const char *path, const tensor_spec *specs, size_t first, size_t count,
                            const sc_make_model_opts *o, float *tmp, void *buf, size_t chunk) {
    sc_st_write_tensor *wt = sc_calloc(count, sizeof *wt, "tensor headers");
    if (!wt) return SC_ERR_MEM;
    for (size_t i = 0; i < count; i++) {
        const tensor_spec *t = &specs[first + i];
        wt[i].name = t->name;
        wt[i].dtype = o->dtype;
        wt[i].ndim = t->ndim;
        wt[i].shape[0] = t->shape[0];
        wt[i].shape[1] = t->shape[1];
    }
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    sc_st_writer *w;
    sc_status rc = sc_st_writer_open(path, wt, count, mk, mv, 1, &w);
    free(wt);
    SC_TRY(rc);
    size_t es = sc_dtype_size(o->dtype);
    for (size_t i = 0; i < count; i++) {
        const tensor_spec *t = &specs[first + i];
        for (size_t s = 0; s < t->numel; s += chunk) {
            size_t n = t->numel - s < chunk ? t->numel - s : chunk;
            gen_piece(t, o->seed, (uint64_t)(first + i), s, n, tmp, buf, o->dtype);
            if ((rc = sc_st_writer_append(w, buf, n * es)) != SC_OK) { sc_st_writer_abort(w); return rc; }
        }
    }
    return sc_st_writer_finish(w);
}

static sc_status write_index(const char *path, const tensor_spec *specs, size_t n, const size_t *shard_of,
                             size_t n_shards, uint64_t total) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return sc_errorf(SC_ERR_MEM, "%s: out of memory", path);
    cJSON *meta = cJSON_AddObjectToObject(r, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *wm = cJSON_AddObjectToObject(r, "weight_map");
    for (size_t i = 0; i < n; i++) {
        char f[64];
        snprintf(f, sizeof f, "model-%05zu-of-%05zu.safetensors", shard_of[i] + 1, n_shards);
        cJSON_AddStringToObject(wm, specs[i].name, f);
    }
    char *text = cJSON_Print(r);
    cJSON_Delete(r);
    if (!text) return sc_errorf(SC_ERR_MEM, "%s: out of memory", path);
    sc_status rc = sc_write_file_atomic(path, text, strlen(text));
    cJSON_free(text);
    return rc;
}

static sc_status check_config(sc_model_config *c) {
    if (c->arch != SC_ARCH_QWEN2 && c->arch != SC_ARCH_QWEN3) return sc_errorf(SC_ERR_ARG, "unknown architecture %d (qwen2 or qwen3)", (int)c->arch);
    if (c->n_layers <= 0 || c->hidden <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->intermediate <= 0 || c->vocab <= 0)
        return sc_errorf(SC_ERR_ARG, "model sizes must be positive (layers %d, hidden %d, heads %d, kv heads %d, intermediate %d, vocab %d)",
                         c->n_layers, c->hidden, c->n_heads, c->n_kv_heads, c->intermediate, c->vocab);
    if (c->n_heads % c->n_kv_heads)
        return sc_errorf(SC_ERR_ARG, "heads %d is not divisible by kv heads %d", c->n_heads, c->n_kv_heads);
    if (c->head_dim <= 0) {
        if (c->hidden % c->n_heads)
            return sc_errorf(SC_ERR_ARG, "hidden %d is not divisible by heads %d: give the head dim explicitly", c->hidden, c->n_heads);
        c->head_dim = c->hidden / c->n_heads;
    }
    if (c->head_dim % 2) return sc_errorf(SC_ERR_ARG, "head dim %d must be even (RoPE rotates pairs)", c->head_dim);
    if (!(c->rope_theta > 0) || !(c->rms_eps > 0)) return sc_errorf(SC_ERR_ARG, "rope theta and rms eps must be positive");
    return SC_OK;
}

// Copy NAME from the folder of tokenizer_path into out_dir; when there is none, remove a NAME
// left in out_dir by an earlier run (it would belong to another tokenizer).
static sc_status copy_companion(const char *tokenizer_path, const char *name, const char *out_dir) {
    char src[4096], dst[4096];
    const char *slash = strrchr(tokenizer_path, '/');
    if (slash) snprintf(src, sizeof src, "%.*s/%s", (int)(slash - tokenizer_path), tokenizer_path, name);
    else snprintf(src, sizeof src, "%s", name);
    snprintf(dst, sizeof dst, "%s/%s", out_dir, name);
    if (!sc_file_exists(src)) { unlink(dst); return SC_OK; }
    char *text = NULL;
    size_t len = 0;
    SC_TRY(sc_read_file(src, &text, &len));
    sc_status rc = sc_write_file_atomic(dst, text, len);
    free(text);
    return rc;
}

sc_status sc_make_model(const char *out_dir, const sc_make_model_opts *opts) {
    sc_make_model_opts o = *opts;
    SC_TRY(check_config(&o.cfg));
    if (o.dtype != SC_DTYPE_BF16 && o.dtype != SC_DTYPE_F16 && o.dtype != SC_DTYPE_F32)
        return sc_errorf(SC_ERR_ARG, "model dtype must be bf16, f16 or f32 (got %s)", sc_dtype_name(o.dtype));
    snprintf(o.cfg.torch_dtype, sizeof o.cfg.torch_dtype, "%s",
             o.dtype == SC_DTYPE_BF16 ? "bfloat16" : o.dtype == SC_DTYPE_F16 ? "float16" : "float32");
    if (o.tokenizer) {
        int min_vocab, eos;
        SC_TRY(sc_tokenizer_vocab_info(o.tokenizer, &min_vocab, &eos));
        if (o.cfg.vocab < min_vocab)
            return sc_errorf(SC_ERR_ARG, "vocab size %d is smaller than the tokenizer's %d ids (%s): use a vocab of at least %d",
                             o.cfg.vocab, min_vocab, o.tokenizer, min_vocab);
        o.cfg.bos_id = o.cfg.eos_id = eos;
    }
    if (o.cfg.eos_id >= o.cfg.vocab) o.cfg.eos_id = -1;
    if (o.cfg.bos_id >= o.cfg.vocab) o.cfg.bos_id = -1;
    size_t chunk = o.chunk_elems ? o.chunk_elems : ((size_t)1 << 22);
    chunk += chunk & 1;   // even, so chunks start on Box-Muller pairs
    SC_TRY(sc_mkdir_p(out_dir));

    tensor_spec *specs;
    size_t n;
    SC_TRY(build_specs(&o.cfg, &specs, &n));
    size_t es = sc_dtype_size(o.dtype);
    size_t *shard_of = sc_calloc(n, sizeof *shard_of, "shard table");
    float *tmp = sc_malloc(chunk * sizeof(float), "generation buffer");
    void *buf = sc_malloc(chunk * es, "conversion buffer");
    sc_status rc = SC_OK;
    if (!shard_of || !tmp || !buf) { rc = SC_ERR_MEM; goto done; }
    // Shards: greedy in canonical order, a new one when the next tensor would overflow.
    uint64_t total = 0, cur = 0;
    size_t n_shards = 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t nb = (uint64_t)specs[i].numel * es;
        if (o.shard_bytes && cur > 0 && cur + nb > o.shard_bytes) { n_shards++; cur = 0; }
        shard_of[i] = n_shards - 1;
        cur += nb;
        total += nb;
    }
    char path[4096];
    if (n_shards == 1) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", out_dir);
        unlink(path);   // a stale index beside a new single file would be misleading
        snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
        sc_log(SC_LOG_INFO, "make-model: writing %s (%zu tensors, %.1f MB)", path, n, (double)total / 1e6);
        if ((rc = write_file(path, specs, 0, n, &o, tmp, buf, chunk)) != SC_OK) goto done;
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
        unlink(path);   // sc_st_open_dir prefers model.safetensors over an index
        for (size_t s = 0, i = 0; s < n_shards; s++) {
            size_t j = i;
            while (j < n && shard_of[j] == s) j++;
            snprintf(path, sizeof path, "%s/model-%05zu-of-%05zu.safetensors", out_dir, s + 1, n_shards);
            sc_log(SC_LOG_INFO, "make-model: writing %s (%zu tensors)", path, j - i);
            if ((rc = write_file(path, specs, i, j - i, &o, tmp, buf, chunk)) != SC_OK) goto done;
            i = j;
        }
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", out_dir);
        if ((rc = write_index(path, specs, n, shard_of, n_shards, total)) != SC_OK) goto done;
    }
    if (o.tokenizer) {
        char *text = NULL;
        size_t len = 0;
        if ((rc = sc_read_file(o.tokenizer, &text, &len)) != SC_OK) goto done;
        snprintf(path, sizeof path, "%s/tokenizer.json", out_dir);
        rc = sc_write_file_atomic(path, text, len);
        free(text);
        if (rc != SC_OK) goto done;
        // the tokenizer's companions (its chat template), copied from beside it when there
        if ((rc = copy_companion(o.tokenizer, "tokenizer_config.json", out_dir)) != SC_OK) goto done;
        if ((rc = copy_companion(o.tokenizer, "chat_template.jinja", out_dir)) != SC_OK) goto done;
    }
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    rc = sc_config_save(path, &o.cfg);
done:
    free(specs);
    free(shard_of);
    free(tmp);
    free(buf);
    return rc;
}
