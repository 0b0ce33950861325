// generate.h — batched sampling with a KV cache, split the way a pipeline runs it.
//
//   sc_gen        the host bookkeeping of one batched generation, identical on every pipeline
//                 stage: which sequences are live, their lengths and cache slots, the rows the
//                 next forward pass runs, the tokens drawn so far. No model, no backend.
//   sc_gen_stage  one block slice's run state: its own KV cache and hidden rows (and, on the
//                 slice that holds the head, the logits of the sampled rows). Hidden in, hidden
//                 out: a pipeline stage generates with only its blocks.
//   sc_generator  both, for a whole model in one process; sc_generate is a one-call wrapper.
//
// One step on a pipeline: stage 0 embeds sc_gen_ids(g) and runs its blocks
// (sc_gen_stage_forward), sends stage->hidden to the next stage, ..., the last stage runs its
// blocks and samples (sc_gen_stage_sample), the tokens go to every stage, and every stage
// calls sc_gen_advance(g, tokens). All objects are sized once from an sc_gen_plan: generating
// allocates nothing afterwards.
//
// Reproducibility: the token drawn for sequence s at generation step i uses the counter-based
// RNG at (seed, stream[s], i) (seed: the prompt's own when sc_sample_opts.seeds is given), so
// the same seed gives the same text whatever the batch size,
// the order of the prompts or the pipeline layout.
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
    const uint64_t *seeds; // per prompt seeds (one per prompt of sc_gen_start; NULL = seed for
                           // all): several searches' samples in one generation, each with its own
    int vocab_limit;       // > 0: draw only ids below it (the tokenizer's ids; the model's
                           // padding rows above them decode to nothing); 0 = all V
    const int32_t *stop_ids; int n_stop;   // e.g. <|im_end|>, <|endoftext|>; the stop token is kept in the output
} sc_sample_opts;

// Defaults: temperature 1, no top-k/top-p, 128 tokens, no stop ids.
void sc_sample_opts_default(sc_sample_opts *o);
// Fit the options to a tokenizer: stop at the chat end tokens it has (<|im_end|>,
// <|endoftext|>; their ids go into stops, which must outlive o) and draw only ids it can
// decode (vocab_limit: a model's padding rows above them carry no text).
void sc_sample_opts_for_tokenizer(sc_sample_opts *o, const sc_tokenizer *tok, int32_t stops[2]);
// The options of a sampled generation in one call: the defaults, fitted to tok (stops as for
// sc_sample_opts_for_tokenizer), then these settings.
void sc_sample_opts_make(sc_sample_opts *o, const sc_tokenizer *tok, int32_t stops[2], int max_new_tokens, float temperature,
                         int top_k, float top_p, uint64_t seed);
// The sample op's settings from the options.
sc_sampling sc_sample_opts_sampling(const sc_sample_opts *o);
// Sample one token from logits [V] (backend memory; modified) with uniform u in [0,1).
int32_t sc_sample_token(sc_backend *be, float *logits, int V, const sc_sample_opts *o, float u);

// What a generation object is sized for.
typedef struct {
    int max_seqs;          // sequences generated together
    int max_prompt;        // tokens of the longest prompt
    int max_new;           // new tokens per sequence
} sc_gen_plan;

// --- Host bookkeeping -----------------------------------------------------------------------
typedef struct sc_gen sc_gen;
sc_status sc_gen_create(const sc_gen_plan *plan, sc_gen **out);
void sc_gen_free(sc_gen *g);
// Begin generating continuations of n prompts (copied). stream: per prompt RNG stream (NULL =
// prompt index); tag: per prompt label handed to the hooks (NULL = none). The first batch is
// the prefill of every prompt. Errors: more prompts or longer ones than planned, an empty one.
sc_status sc_gen_start(sc_gen *g, const int32_t *const *prompts, const int *prompt_len, int n,
                       const uint64_t *stream, const int *tag, const sc_sample_opts *o);
// 1 when every sequence has stopped (or max_new_tokens is 0).
int sc_gen_done(const sc_gen *g);
// The next forward pass: its batch (one sequence per live prompt; slot s for prompt s) and its
// token ids (host, one per row).
const sc_batch *sc_gen_batch(const sc_gen *g);
const int32_t *sc_gen_ids(const sc_gen *g);
// The rows of that batch whose logits are sampled (the last row of each sequence, in batch
// order), their count, and the uniforms for this step (host).
const int *sc_gen_sample_rows(const sc_gen *g);
int sc_gen_n_sample(const sc_gen *g);
const float *sc_gen_uniforms(const sc_gen *g);
// Record the sampled tokens (one per sample row, in order) and move to the next batch.
sc_status sc_gen_advance(sc_gen *g, const int32_t *tokens);
// Sequence s's generated ids (stop token included), valid until the next sc_gen_start.
const int32_t *sc_gen_output(const sc_gen *g, int s, int *n, int *stopped);

// --- One block slice ------------------------------------------------------------------------
typedef struct {
    const sc_model *m;
    sc_backend *be;
    sc_kv_cache *cache;    // this slice's blocks, plan.max_seqs slots x (max_prompt + max_new)
    float *hidden;         // [max_seqs * max_prompt, C] backend memory: the slice's input and output rows
    float *logits;         // [max_seqs, V] backend memory, on the slice holding the head (else NULL)
    int32_t *tokens;       // (max_seqs) host: the last sampled tokens
    int max_rows;
} sc_gen_stage;

sc_status sc_gen_stage_create(const sc_model *m, sc_backend *be, const sc_gen_plan *plan, sc_gen_stage **out);
// An error when prompt_len + max_new positions do not fit the model's context
// (max_position_embeddings); `what` names the prompt ("train.csv line 12").
sc_status sc_gen_check_context(const sc_model *m, int prompt_len, int max_new, const char *what);
void sc_gen_stage_free(sc_gen_stage *st);
// Run the slice on g's next batch: on the slice holding block 0, g's ids are embedded; on any
// other, st->hidden holds the previous stage's output rows. st->hidden gets this slice's output.
sc_status sc_gen_stage_forward(sc_gen_stage *st, const sc_gen *g, const sc_hook *hook);
// On the slice holding the head: the next token of every sampled row into st->tokens.
sc_status sc_gen_stage_sample(sc_gen_stage *st, const sc_gen *g, const sc_sample_opts *o);

// --- A whole model in one process -----------------------------------------------------------
typedef struct {
    sc_gen *gen;
    sc_gen_stage *stage;
    sc_gen_plan plan;
} sc_generator;

sc_status sc_generator_create(const sc_model *m, sc_backend *be, const sc_gen_plan *plan, sc_generator **out);
void sc_generator_free(sc_generator *G);
// Generate continuations of n prompts; read them with sc_gen_output(G->gen, s, ...).
sc_status sc_generator_run(sc_generator *G, const int32_t *const *prompts, const int *prompt_len, int n,
                           const uint64_t *stream, const int *tag, const sc_sample_opts *o, const sc_hook *hook);

typedef struct {
    int32_t *ids;          // generated ids (malloc'ed), the stop token included when one was drawn
    int n;
    int stopped;           // 1 when a stop token ended it, 0 when max_new_tokens did
} sc_gen_out;

// One call: a generator sized for these prompts, run, outputs copied into out[n] (free each
// out[i].ids). Needs the whole model.
sc_status sc_generate(const sc_model *m, sc_backend *be, const int32_t *const *prompts, const int *prompt_len,
                      int n, const uint64_t *stream, const int *tag, const sc_sample_opts *o, const sc_hook *hook,
                      sc_gen_out *out);

#endif
