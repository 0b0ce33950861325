// make_model.h — write a random Qwen2-family model (qwen2 or qwen3) in the Hugging Face layout (config.json,
// model.safetensors or shards + model.safetensors.index.json, tokenizer.json, and the tokenizer's
// tokenizer_config.json when it has one beside it), for tests and benchmarks. The same options and
// seed give byte-identical files.
#ifndef STEERCLEAR_MAKE_MODEL_H
#define STEERCLEAR_MAKE_MODEL_H

#include "steerclear/model.h"

typedef struct {
    sc_model_config cfg;     // head_dim 0 means hidden / heads; cfg.arch: qwen2 (0) or qwen3
    sc_dtype dtype;          // SC_DTYPE_BF16, SC_DTYPE_F16 or SC_DTYPE_F32
    uint64_t seed;
    size_t shard_bytes;      // 0: one model.safetensors; else shards of at most this many bytes
                             // (a tensor larger than that gets a shard of its own)
    const char *tokenizer;   // tokenizer.json copied into the directory; NULL: none, no vocab check.
                             // tokenizer_config.json and chat_template.jinja beside it (its chat
                             // template, see chat.h) are copied too when present; without them the
                             // model renders chats as plain ChatML without a system turn
    size_t chunk_elems;      // elements generated per step (memory bound); 0: 1<<22
} sc_make_model_opts;

#define SC_MAKE_MODEL_PRESETS "tiny, qwen2.5-0.5b-shape, qwen2.5-14b-shape, qwen3-0.6b-shape"

// Fill opts->cfg and opts->dtype from a preset (SC_MAKE_MODEL_PRESETS; qwen3-0.6b-shape sets
// cfg.arch to qwen3, the others to qwen2). Other fields are left alone. Unknown names are an
// error listing the presets.
sc_status sc_make_model_preset(const char *name, sc_make_model_opts *opts);

// Vocabulary facts of a tokenizer.json: min_vocab = 1 + the largest id in model.vocab and
// added_tokens (the embedding needs at least that many rows); eos_id = id of "<|endoftext|>"
// or -1 when absent.
sc_status sc_tokenizer_vocab_info(const char *path, int *min_vocab, int *eos_id);

// Write the model into out_dir (created if needed). Memory stays bounded by chunk_elems
// whatever the model size; generation runs on OpenMP threads.
sc_status sc_make_model(const char *out_dir, const sc_make_model_opts *opts);

#endif
