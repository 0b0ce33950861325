// generate.h — batched sampling with a KV cache.
//
// Reproducibility: the token drawn for sequence s at generation step i uses the counter-based
// RNG at (seed, stream[s], i), so the same seed gives the same text whatever the batch size
// or the order of the prompts.
#ifndef STEERCLEAR_GENERATE_H
#define STEERCLEAR_GENERATE_H

#include "steerclear/engine.h"
#include "steerclear/tok.h"

typedef struct {
    int max_new_tokens;    // stop after this many new tokens
    int greedy;            // argmax (ignores temperature, top-k, top-p)
    float temperature;     // > 0
    int top_k;             // 0 = off
    float top_p;           // 1 = off
    uint64_t seed;
    int vocab_limit;       // > 0: draw only ids below it (the tokenizer's ids; the model's
                           // padding rows above them decode to nothing); 0 = all V
    const int32_t *stop_ids; int n_stop;   // e.g. <|im_end|>, <|endoftext|>; the stop token is kept in the output
} sc_sample_opts;

typedef struct {
    int32_t *ids;          // generated ids (malloc'ed), the stop token included when one was drawn
    int n;
    int stopped;           // 1 when a stop token ended it, 0 when max_new_tokens did
} sc_gen_out;

// Sample a token from logits [V] (modified in place) with the options, uniform u in [0,1).
int32_t sc_sample_token(float *logits, int V, const sc_sample_opts *o, float u);

// Generate continuations of n prompts. stream: per prompt RNG stream (NULL = prompt index);
// tag: per prompt label handed to the hook (NULL = none). out[n] receives the results
// (free each out[i].ids).
sc_status sc_generate(const sc_model *m, const sc_backend *be, const int32_t *const *prompts, const int *prompt_len,
                      int n, const uint64_t *stream, const int *tag, const sc_sample_opts *o, const sc_hook *hook,
                      sc_gen_out *out);

// Defaults: <|im_end|> and <|endoftext|> looked up in the tokenizer are the caller's job;
// this fills sampling defaults (temperature 1, no top-k/top-p, 128 tokens).
void sc_sample_opts_default(sc_sample_opts *o);
// Fit the options to a tokenizer: stop at the chat end tokens it has (<|im_end|>,
// <|endoftext|>; their ids go into stops, which must outlive o) and draw only ids it can
// decode (vocab_limit: a model's padding rows above them carry no text).
void sc_sample_opts_for_tokenizer(sc_sample_opts *o, const sc_tokenizer *tok, int32_t stops[2]);

#endif
