// model.h — Qwen2-family models (qwen2: Qwen1.5, Qwen2, Qwen2.5; qwen3: Qwen3): config,
// weights, and the forward/backward engine over a slice of blocks [first, last).
//
// Dimension letters used in shape comments throughout:
//   B  sequences in a batch        T  tokens (all sequences packed, no padding)
//   C  hidden size                 L  number of blocks
//   NH query heads                 KVH key/value heads          HD head dim
//   I  MLP intermediate size       V  vocabulary size
#ifndef STEERCLEAR_MODEL_H
#define STEERCLEAR_MODEL_H

#include "steerclear/backend.h"
#include "steerclear/safetensors.h"

// ---------------------------------------------------------------------------------------
// config.json (model_type "qwen2" or "qwen3")

// The architectures the engine runs. qwen3 differs from qwen2 in the attention only: a
// per-head RMSNorm on q and on k (weights [HD], eps rms_norm_eps) after the projections and
// before RoPE, no q/k/v biases unless config.json says "attention_bias": true, and head_dim
// given explicitly in config.json (it need not be C / NH).
typedef enum { SC_ARCH_QWEN2 = 0, SC_ARCH_QWEN3 = 1 } sc_arch;
const char *sc_arch_name(sc_arch a);   // "qwen2", "qwen3" (the model_type)

typedef struct {
    sc_arch arch;          // model_type
    int attention_bias;    // qwen3: attention_bias (default false); qwen2 ignores it (always biased)
    int n_layers;          // num_hidden_layers (L)
    int hidden;            // hidden_size (C)
    int n_heads;           // num_attention_heads (NH)
    int n_kv_heads;        // num_key_value_heads (KVH), defaults to NH
    int head_dim;          // head_dim if given, else C / NH (qwen2); required for qwen3
    int intermediate;      // intermediate_size (I)
    int vocab;             // vocab_size (V)
    int max_position;      // max_position_embeddings
    float rope_theta;      // rope_theta (default 10000)
    float rms_eps;         // rms_norm_eps (default 1e-6)
    int tie_embeddings;    // tie_word_embeddings (default 0)
    int bos_id, eos_id;    // bos_token_id / eos_token_id, -1 when absent
    char torch_dtype[16];  // "bfloat16", "float16", "float32" (informational)
} sc_model_config;

// q/k/v projections carry biases: always for qwen2, for qwen3 when attention_bias is true.
static inline int sc_config_has_qkv_bias(const sc_model_config *c) { return c->arch == SC_ARCH_QWEN2 || c->attention_bias; }
// Per-head RMSNorm of q and k before RoPE (qwen3).
static inline int sc_config_has_qk_norm(const sc_model_config *c) { return c->arch == SC_ARCH_QWEN3; }

// Parse DIR/config.json (path is the file). Errors name the file and the key.
sc_status sc_config_load(const char *path, sc_model_config *cfg);
// Write config.json in the Hugging Face layout of cfg->arch (architectures Qwen2ForCausalLM,
// model_type qwen2; or Qwen3ForCausalLM, model_type qwen3, with head_dim and attention_bias).
sc_status sc_config_save(const char *path, const sc_model_config *cfg);

// ---------------------------------------------------------------------------------------
// Weights. Matrices (sc_mat, backend.h) keep the file's layout [rows, cols] = [out, in]
// (nn.Linear) and, for F32 and BF16, stay in the mmapped file (zero copy: a 14B checkpoint
// needs no second copy); F16 matrices are converted once to F32. The backend the model is
// loaded for prepares its own form of them (weights_prepare). Vectors (norms, biases) are F32
// copies on the host.
typedef struct {
    float *attn_norm;      // (C)       input_layernorm.weight
    sc_mat q;              // (NH*HD, C)  self_attn.q_proj.weight
    sc_mat k;              // (KVH*HD, C) self_attn.k_proj.weight
    sc_mat v;              // (KVH*HD, C) self_attn.v_proj.weight
    float *q_bias;         // (NH*HD)   NULL when the config has no q/k/v biases (qwen3)
    float *k_bias;         // (KVH*HD)
    float *v_bias;         // (KVH*HD)
    float *q_norm;         // (HD)      self_attn.q_norm.weight (qwen3), else NULL
    float *k_norm;         // (HD)      self_attn.k_norm.weight (qwen3), else NULL
    sc_mat o;              // (C, NH*HD)  self_attn.o_proj.weight (no bias)
    float *mlp_norm;       // (C)       post_attention_layernorm.weight
    sc_mat gate;           // (I, C)    mlp.gate_proj.weight
    sc_mat up;             // (I, C)    mlp.up_proj.weight
    sc_mat down;           // (C, I)    mlp.down_proj.weight
} sc_block_weights;

typedef struct {
    sc_model_config cfg;
    int first, last;       // blocks [first, last) are loaded
    int has_embed;         // first == 0: embed_tokens loaded
    int has_head;          // last == L: final norm and LM head loaded
    sc_mat embed;          // (V, C)  model.embed_tokens.weight
    float *final_norm;     // (C)     model.norm.weight
    sc_mat lm_head;        // (V, C)  lm_head.weight, or embed when tied
    sc_block_weights *blocks;  // indexed by global block index l in [first, last); others zeroed
    sc_backend *be;        // the backend the matrices are prepared for
    // ownership
    sc_safetensors *st;
    void **owned; size_t n_owned, cap_owned;
    void **dev_owned; size_t n_dev_owned, cap_dev_owned;   // vectors in a device backend's memory
    const char *prefix;    // "model." (a ...ForCausalLM checkpoint) or "" (a bare Qwen3Model one,
                           // e.g. Qwen3-Embedding: embed_tokens.weight, layers.N....); lm_head.weight has none
    char dir[1024];
} sc_model;

// Load config.json and the tensors of blocks [first, last) from a Hugging Face directory
// (last = -1 means all blocks) and prepare the matrices for backend `be` (which must outlive
// the model). Every disagreement between config and tensors is an error naming the file, the
// tensor and both shapes.
sc_status sc_model_load(const char *dir, int first, int last, sc_backend *be, sc_model **out);
// Every block and the final norm but no LM head (lm_head.data NULL): for hidden states only,
// e.g. an embedding model whose checkpoint has no lm_head.weight although it is untied
// (Qwen3-Embedding-8B). sc_head then refuses to make logits.
sc_status sc_model_load_hidden(const char *dir, sc_backend *be, sc_model **out);
void sc_model_free(sc_model *m);

#endif
