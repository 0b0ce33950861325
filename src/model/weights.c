// weights.c — loading a Qwen2 or Qwen3 checkpoint in the Hugging Face layout (config.json +
// safetensors) for a slice of blocks [first, last): sc_model_load / sc_model_free.
//
// qwen3 blocks add self_attn.q_norm.weight and self_attn.k_norm.weight ([head_dim] each) and
// have q/k/v biases only when config.json says "attention_bias": true (bias tensors in a file
// whose config says false are ignored, with a warning, as transformers ignores them). Tensor
// names carry the "model." prefix of a ...ForCausalLM checkpoint, or none (a bare base-model
// checkpoint such as Qwen3-Embedding: embed_tokens.weight, layers.N...., norm.weight).
//
// Matrices stay in the mapping when F32 or BF16 (zero copy); F16 matrices are converted once
// into owned F32. Vectors (norms, biases) always become owned F32 copies. Every shape is
// checked against the config. Leaves out: quantised checkpoints, other families, LoRA merges.
//
// Embedding rule: model.embed_tokens.weight is loaded when first == 0 (has_embed), and also
// when the slice holds the head of a tied model (lm_head = embed) with no lm_head.weight in
// the file; so m->embed.data may be set while has_embed is 0.
#include "steerclear/model.h"

#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------
// Helpers

static sc_status own(sc_model *m, void *p) {
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **n = realloc(m->owned, cap * sizeof *n);
        if (!n) { free(p); return sc_errorf(SC_ERR_MEM, "out of memory tracking model buffers"); }
        m->owned = n;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return SC_OK;
}

// A vector's home on a device backend (a GPU): backend memory holding the host copy, which is
// freed. On the CPU backend host memory is backend memory and the copy stays as it is.
static sc_status to_backend(sc_model *m, const char *name, float **buf, size_t n) {
    sc_backend *be = m->be;
    if (m->n_dev_owned == m->cap_dev_owned) {
        size_t cap = m->cap_dev_owned ? 2 * m->cap_dev_owned : 64;
        void **nl = realloc(m->dev_owned, cap * sizeof *nl);
        if (!nl) return sc_errorf(SC_ERR_MEM, "out of memory tracking model buffers");
        m->dev_owned = nl;
        m->cap_dev_owned = cap;
    }
    float *d = NULL;
    SC_TRY(sc_backend_alloc_floats(be, n, name, &d));
    m->dev_owned[m->n_dev_owned++] = d;
    SC_TRY(be->op->upload(be, d, *buf, n * sizeof(float)));
    SC_TRY(be->op->sync(be));
    free(*buf);
    *buf = d;
    return SC_OK;
}

static const sc_st_tensor *need(const sc_model *m, const char *name, sc_status *rc) {
    const sc_st_tensor *t = sc_st_find(m->st, name);
    if (t) return t;
    if (sc_config_has_qk_norm(&m->cfg) && (strstr(name, "q_norm") || strstr(name, "k_norm")))
        *rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s not found in the checkpoint (model.safetensors or its shards); config.json says model_type qwen3, "
                        "whose blocks have per-head q/k norms: is this a Qwen3 checkpoint? (a Qwen2 one needs model_type qwen2)", m->dir, name);
    else if (strstr(name, "_proj.bias") && m->cfg.arch == SC_ARCH_QWEN3)
        *rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s not found in the checkpoint (model.safetensors or its shards); config.json says attention_bias is true: "
                        "set it to false if the model has no q/k/v biases", m->dir, name);
    else
        *rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s not found in the checkpoint (model.safetensors or its shards)", m->dir, name);
    return NULL;
}

// "model." when the checkpoint names its tensors model.layers.N... (every ...ForCausalLM),
// "" when it names them layers.N... (a bare base model, e.g. Qwen3-Embedding).
static const char *tensor_prefix(const sc_safetensors *st) {
    if (sc_st_find(st, "model.norm.weight") || sc_st_find(st, "model.embed_tokens.weight") ||
        sc_st_find(st, "model.layers.0.input_layernorm.weight")) return "model.";
    if (sc_st_find(st, "norm.weight") || sc_st_find(st, "embed_tokens.weight") || sc_st_find(st, "layers.0.input_layernorm.weight"))
        return "";
    return "model.";   // neither: the errors name the usual tensors
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++) k += (size_t)snprintf(buf + k, cap - k, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

// hint: NULL, or what to check (appended to the message)
static sc_status check_shape(const sc_st_tensor *t, int ndim, const int64_t *want, const char *hint) {
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == want[d];
    if (same) return SC_OK;
    char got[160], exp[160];
    fmt_shape(got, sizeof got, t->ndim, t->shape);
    fmt_shape(exp, sizeof exp, ndim, want);
    return sc_errorf(SC_ERR_SHAPE, "%s: tensor %s: shape %s does not match config %s%s%s", t->file, t->name, got, exp,
                     hint ? "; " : "", hint ? hint : "");
}

static sc_status check_float(const sc_st_tensor *t) {
    if (t->dtype == SC_DTYPE_F32 || t->dtype == SC_DTYPE_BF16 || t->dtype == SC_DTYPE_F16) return SC_OK;
    return sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: dtype %s is not a floating-point type (expected BF16, F16 or F32)",
                     t->file, t->name, sc_dtype_name(t->dtype));
}

// Element i of a float tensor as F32 (memcpy: the mapping need not be aligned).
static void to_f32(const sc_st_tensor *t, float *out, size_t n) {
    const uint8_t *p = t->data;
    if (t->dtype == SC_DTYPE_F32) { memcpy(out, p, n * sizeof(float)); return; }
    #pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = t->dtype == SC_DTYPE_BF16 ? sc_bf16_to_f32(h) : sc_f16_to_f32(h);
    }
}

static sc_status load_mat(sc_model *m, const char *name, int64_t rows, int64_t cols, sc_mat *out) {
    sc_status rc = SC_OK;
    const sc_st_tensor *t = need(m, name, &rc);
    if (!t) return rc;
    SC_TRY(check_float(t));
    int64_t want[2] = {rows, cols};
    SC_TRY(check_shape(t, 2, want, NULL));
    out->rows = rows;
    out->cols = cols;
    size_t es = sc_dtype_size(t->dtype);
    if (t->dtype != SC_DTYPE_F16 && ((uintptr_t)t->data % es) == 0) {   // zero copy
        out->data = t->data;
        out->dtype = t->dtype;
        return SC_OK;
    }
    if (t->dtype != SC_DTYPE_F16) {   // misaligned in the file (a writer without padding): copy
        void *buf = sc_aligned_alloc(t->nbytes, name);
        if (!buf) return SC_ERR_MEM;
        memcpy(buf, t->data, t->nbytes);
        SC_TRY(own(m, buf));
        out->data = buf;
        out->dtype = t->dtype;
        return SC_OK;
    }
    size_t n = (size_t)rows * (size_t)cols;
    float *buf = sc_aligned_alloc(n * sizeof(float), name);
    if (!buf) return SC_ERR_MEM;
    to_f32(t, buf, n);
    SC_TRY(own(m, buf));
    out->data = buf;
    out->dtype = SC_DTYPE_F32;
    return SC_OK;
}

static sc_status load_vec_hint(sc_model *m, const char *name, int64_t n, const char *hint, float **out) {
    sc_status rc = SC_OK;
    const sc_st_tensor *t = need(m, name, &rc);
    if (!t) return rc;
    SC_TRY(check_float(t));
    SC_TRY(check_shape(t, 1, &n, hint));
    float *buf = sc_aligned_alloc((size_t)n * sizeof(float), name);
    if (!buf) return SC_ERR_MEM;
    to_f32(t, buf, (size_t)n);
    if (m->be && m->be->separate_memory) {   // device memory, owned through dev_owned
        sc_status st = to_backend(m, name, &buf, (size_t)n);
        if (st) { free(buf); return st; }
        *out = buf;
        return SC_OK;
    }
    SC_TRY(own(m, buf));
    *out = buf;
    return SC_OK;
}

static sc_status load_vec(sc_model *m, const char *name, int64_t n, float **out) { return load_vec_hint(m, name, n, NULL, out); }

// ---------------------------------------------------------------------------------------
// Loading

static sc_status load_block(sc_model *m, int l) {
    const sc_model_config *c = &m->cfg;
    sc_block_weights *b = &m->blocks[l];
    int64_t C = c->hidden, I = c->intermediate;
    int64_t QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim, HD = c->head_dim;
    char n[256];
#define NAME(suffix) (snprintf(n, sizeof n, "%slayers.%d.%s", m->prefix, l, suffix), n)
    SC_TRY(load_vec(m, NAME("input_layernorm.weight"), C, &b->attn_norm));
    SC_TRY(load_mat(m, NAME("self_attn.q_proj.weight"), QD, C, &b->q));
    SC_TRY(load_mat(m, NAME("self_attn.k_proj.weight"), KD, C, &b->k));
    SC_TRY(load_mat(m, NAME("self_attn.v_proj.weight"), KD, C, &b->v));
    if (sc_config_has_qkv_bias(c)) {
        SC_TRY(load_vec(m, NAME("self_attn.q_proj.bias"), QD, &b->q_bias));
        SC_TRY(load_vec(m, NAME("self_attn.k_proj.bias"), KD, &b->k_bias));
        SC_TRY(load_vec(m, NAME("self_attn.v_proj.bias"), KD, &b->v_bias));
    } else if (l == m->first && sc_st_find(m->st, NAME("self_attn.q_proj.bias"))) {   // said once
        sc_log(SC_LOG_WARN, "%s: tensor %s is in the checkpoint but config.json says attention_bias is false: the q/k/v biases are ignored "
               "(as transformers does); set \"attention_bias\": true in config.json if the model uses them", m->dir, n);
    }
    SC_TRY(load_mat(m, NAME("self_attn.o_proj.weight"), C, QD, &b->o));
    if (sc_config_has_qk_norm(c)) {   // one weight per head dimension, shared by all heads
        char hint[160];
        snprintf(hint, sizeof hint, "a qwen3 q/k norm has one weight per head dimension: check head_dim (%d) in config.json", c->head_dim);
        SC_TRY(load_vec_hint(m, NAME("self_attn.q_norm.weight"), HD, hint, &b->q_norm));
        SC_TRY(load_vec_hint(m, NAME("self_attn.k_norm.weight"), HD, hint, &b->k_norm));
    }
    SC_TRY(load_vec(m, NAME("post_attention_layernorm.weight"), C, &b->mlp_norm));
    SC_TRY(load_mat(m, NAME("mlp.gate_proj.weight"), I, C, &b->gate));
    SC_TRY(load_mat(m, NAME("mlp.up_proj.weight"), I, C, &b->up));
    SC_TRY(load_mat(m, NAME("mlp.down_proj.weight"), C, I, &b->down));
#undef NAME
    return SC_OK;
}

static sc_status load_all(sc_model *m, const char *dir, int first, int last, int want_lm_head) {
    if (strlen(dir) >= sizeof m->dir) return sc_errorf(SC_ERR_ARG, "model directory path is too long (%zu bytes): %s", strlen(dir), dir);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!sc_file_exists(path))
        return sc_errorf(SC_ERR_IO, "%s: config.json not found (looked for %s; a model directory in the Hugging Face layout has config.json beside the safetensors files)",
                         dir, path);
    SC_TRY(sc_config_load(path, &m->cfg));
    const sc_model_config *c = &m->cfg;
    int L = c->n_layers;
    if (last < 0) last = L;
    if (first < 0 || first > last || last > L)
        return sc_errorf(SC_ERR_ARG, "%s: block slice [%d,%d) is not within the model's %d blocks", dir, first, last, L);
    m->first = first;
    m->last = last;
    m->has_embed = first == 0;
    m->has_head = last == L;
    m->blocks = sc_calloc((size_t)L, sizeof *m->blocks, "block weight table");
    if (!m->blocks) return SC_ERR_MEM;
    SC_TRY(sc_st_open_dir(dir, &m->st));
    m->prefix = tensor_prefix(m->st);
    char name[64];

    int64_t V = c->vocab, C = c->hidden;
    const sc_st_tensor *head = m->has_head && want_lm_head ? sc_st_find(m->st, "lm_head.weight") : NULL;
    if (m->has_head && want_lm_head && !c->tie_embeddings && !head)
        return sc_errorf(SC_ERR_FORMAT, "%s: tensor lm_head.weight not found, and config.json says tie_word_embeddings is false", dir);
    if (m->has_head && c->tie_embeddings && head) {
        // Hugging Face ties lm_head to the embedding after loading, so the embedding wins
        sc_log(SC_LOG_DEBUG, "%s: tie_word_embeddings is true; lm_head.weight is present but ignored (the embedding is the head, as in transformers)", dir);
        head = NULL;
    }
    int need_embed = m->has_embed || (m->has_head && want_lm_head && !head);
    snprintf(name, sizeof name, "%sembed_tokens.weight", m->prefix);
    if (need_embed) SC_TRY(load_mat(m, name, V, C, &m->embed));
    for (int l = first; l < last; l++) SC_TRY(load_block(m, l));
    if (m->has_head) {
        snprintf(name, sizeof name, "%snorm.weight", m->prefix);
        SC_TRY(load_vec(m, name, C, &m->final_norm));
        if (head) SC_TRY(load_mat(m, "lm_head.weight", V, C, &m->lm_head));
        else if (want_lm_head) m->lm_head = m->embed;
    }
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// The backend's form of the matrices

// Every distinct matrix of the slice (a tied head is the embedding: listed once).
static size_t mats_of(sc_model *m, sc_mat **list) {
    size_t n = 0;
    if (m->embed.data) list[n++] = &m->embed;
    if (m->has_head && m->lm_head.data && m->lm_head.data != m->embed.data) list[n++] = &m->lm_head;
    for (int l = m->first; l < m->last; l++) {
        sc_block_weights *b = &m->blocks[l];
        sc_mat *mm[] = {&b->q, &b->k, &b->v, &b->o, &b->gate, &b->up, &b->down};
        for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) list[n++] = mm[i];
    }
    return n;
}

static sc_status with_mats(sc_model *m, int prepare) {
    sc_mat **list = malloc(sizeof(sc_mat *) * (2 + 7 * (size_t)(m->last - m->first)));
    if (!list) return sc_errorf(SC_ERR_MEM, "out of memory");
    size_t n = mats_of(m, list);
    sc_status st = SC_OK;
    if (prepare) st = m->be->op->weights_prepare(m->be, list, n);
    else m->be->op->weights_release(m->be, list, n);
    free(list);
    if (st) return sc_error_wrap(st, "%s: preparing the weights for the %s backend: ", m->dir, m->be->name);
    if (m->has_head && m->lm_head.data == m->embed.data) m->lm_head.prepared = m->embed.prepared;   // tied
    return SC_OK;
}

static sc_status load_model(const char *dir, int first, int last, int want_lm_head, sc_backend *be, sc_model **out) {
    *out = NULL;
    if (!be) return sc_errorf(SC_ERR_INTERNAL, "%s: loading a model needs a backend", dir);
    sc_model *m = calloc(1, sizeof *m);
    if (!m) return sc_errorf(SC_ERR_MEM, "out of memory loading %s", dir);
    m->be = be;   // vectors go to the backend's memory as they load (to_backend)
    sc_status rc = load_all(m, dir, first, last, want_lm_head);
    if (rc == SC_OK) rc = with_mats(m, 1);
    if (rc != SC_OK) { sc_model_free(m); return rc; }
    *out = m;
    return SC_OK;
}

sc_status sc_model_load(const char *dir, int first, int last, sc_backend *be, sc_model **out) {
    return load_model(dir, first, last, 1, be, out);
}

sc_status sc_model_load_hidden(const char *dir, sc_backend *be, sc_model **out) {
    return load_model(dir, 0, -1, 0, be, out);
}

void sc_model_free(sc_model *m) {
    if (!m) return;
    if (m->be && m->blocks) with_mats(m, 0);
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    for (size_t i = 0; i < m->n_dev_owned; i++) m->be->op->free(m->be, m->dev_owned[i]);
    free(m->dev_owned);
    free(m->blocks);
    sc_st_close(m->st);
    free(m);
}
