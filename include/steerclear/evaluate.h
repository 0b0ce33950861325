// evaluate.h — continuations of held-out prompts from the base model, from each search's
// adapter and from each search's direction at each scale (h_l += scale * d_l).
//
// Many variants share one pass: every (variant, prompt) pair is one sequence of a batched
// generation whose tag is the variant, so the weights are read once per decode step for all of
// them. Sequence (v, p) draws its tokens from RNG stream `stream[p]` (the prompt's row in the
// test set): variants differ only by the steering, and a variant's text does not depend on
// which other variants share its batch.
//
// Output (RUN_DIR/eval/, each written atomically): base.json, adapter_NNNN.json and
// direction_NNNN_scale_X.json (X as %g: 2, 0.5, -4), each a JSON array of
//   {"prompt_id": row, "prompt": <test set prompt column>, "original_completion": <base
//    model's continuation>, "output": <this variant's continuation>}
// decoded with special tokens skipped (and ids past the tokenizer's vocabulary, which are the
// model's padding rows); the continuation only (no prompt).
// Leaves out: judging and scoring (later stages), scale sweeps (quantify).
#ifndef STEERCLEAR_EVALUATE_H
#define STEERCLEAR_EVALUATE_H

#include "steerclear/adapter.h"
#include "steerclear/generate.h"
#include "steerclear/stage.h"

typedef enum { SC_EVAL_BASE = 0, SC_EVAL_ADAPTER, SC_EVAL_DIRECTION } sc_eval_kind;

typedef struct sc_eval_variant {
    sc_eval_kind kind;
    sc_adapter *adapter;        // SC_EVAL_ADAPTER
    const float *directions;    // SC_EVAL_DIRECTION: (L, C), unscaled, backend memory
    float scale;                // SC_EVAL_DIRECTION
} sc_eval_variant;

// A hook applying variant tag[seq] to each sequence of a batch (tag -1 or an SC_EVAL_BASE
// variant: unchanged). Directions go through sc_steer_hook; adapters through
// sc_adapter_update on each run of sequences with the same tag. Free with sc_eval_hook_free.
typedef struct sc_eval_hook sc_eval_hook;
sc_status sc_eval_hook_create(const sc_eval_variant *variants, int n_variants, int n_layers, sc_eval_hook **out);
sc_hook sc_eval_hook_get(sc_eval_hook *eh);
void sc_eval_hook_free(sc_eval_hook *eh);

// Generate every (variant, prompt) pair: out[v * n_prompts + p] (free each .ids). The pairs are
// taken variant-major in chunks of at most batch_seqs sequences, all through one generator.
// stream: per prompt RNG stream (NULL = prompt index p).
sc_status sc_evaluate_generate(const sc_model *m, sc_backend *be, const sc_eval_variant *variants, int n_variants,
                               const int32_t *const *prompts, const int *prompt_len, int n_prompts, const uint64_t *stream,
                               const sc_sample_opts *o, int batch_seqs, sc_gen_out *out);

// Token ids of the first n prompts' full_prompt (ids[p] malloc'ed, len[p] tokens), each checked
// to fit the model's context with max_new new tokens; errors name csv and the line.
sc_status sc_evaluate_encode(const sc_model *m, const sc_tokenizer *tok, const sc_dataset *ds, const char *csv, int n,
                             int max_new, int32_t **ids, int *len);

// One output file: n entries, entry i for test row prompt_ids[i].
sc_status sc_evaluate_write_json(const char *path, const sc_dataset *test, const int *prompt_ids, int n,
                                 char *const *original, char *const *output);

typedef struct {
    const float *scales;        // NULL: {2}
    int n_scales;
    int max_new_tokens;         // 100
    float temperature;          // 0.7
    int top_k;                  // 50
    float top_p;                // 0.9
    uint64_t seed;
    int seed_set;               // 0: the run config's search seed (1234 when absent)
    int limit;                  // first N test prompts; 0 = all
    int batch_seqs;             // 64 sequences per generation batch
    const int *searches;        // NULL: every finished search
    int n_searches;
    int adapters, directions;   // which variant kinds to run (both 1 by default)
} sc_evaluate_opts;

void sc_evaluate_opts_default(sc_evaluate_opts *o);
// "2", "0.5", "-4": the X of direction_NNNN_scale_X.json.
void sc_evaluate_scale_name(float scale, char *buf, size_t n);
// The whole stage on a stage context (its model, tokenizer, test set and run directory).
// Directions come from results.h5 (see extract.h); searches without an extracted direction
// get only their adapter evaluated (with a warning).
sc_status sc_evaluate_run(sc_stage *stage, const sc_evaluate_opts *o);

#endif
