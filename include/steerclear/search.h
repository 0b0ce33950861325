// search.h — the divergence search: train N adapters on a frozen model, each pushed away
// from the base model by L = alpha * (-KL(P || Q)) + beta * NLL(Q, token sampled from Q).
//
// One optimizer step per batch: sample continuations from the current Q with the KV cache
// (no gradients), then one teacher-forced forward of P and one forward + backward of Q over
// the whole sequences, then AdamW. This gives the same loss and gradient as the study's
// per-token re-runs (tested) with about two orders of magnitude less arithmetic.
#ifndef STEERCLEAR_SEARCH_H
#define STEERCLEAR_SEARCH_H

#include <signal.h>

#include "steerclear/adapter.h"
#include "steerclear/dataset.h"
#include "steerclear/loss.h"
#include "steerclear/tok.h"

typedef struct cJSON cJSON;

typedef struct {
    int searches;              // number of searches (20)
    sc_adapter_kind adapter;   // shared | per-block
    int rank;                  // 2
    float scaling;             // 2
    float alpha, beta;         // 1.1, 0.3
    float lr, beta1, beta2, adam_eps, weight_decay;   // 0.1, 0.9, 0.999, 1e-8, 0.01
    int batch_size;            // prompts per optimizer step (12)
    int prompts_per_search;    // prompts drawn from the train set per search (192)
    int epochs;                // 1
    int max_new_tokens;        // sampled tokens per prompt (128)
    float temperature;         // sampling from Q: 1, full distribution
    int top_k;                 // 0 = off
    float top_p;               // 1 = off
    uint64_t seed;             // run seed; search s uses sc_seed_mix(seed, s)
    int checkpoint_activations;   // recompute blocks in backward: 1, 0, or -1 = auto (only when
                                  // keeping every block's activations would pass 25% of RAM)
    int loss_chunk;            // rows of logits per loss chunk (32)
} sc_search_config;

void sc_search_config_default(sc_search_config *c);
// Read the keys present in a JSON object (unknown keys are an error naming them; `where`
// names the file for messages). Values are validated.
sc_status sc_search_config_from_json(const cJSON *obj, const char *where, sc_search_config *c);
sc_status sc_search_config_validate(const sc_search_config *c);
cJSON *sc_search_config_to_json(const sc_search_config *c);
uint64_t sc_search_seed(const sc_search_config *c, int search);

// One step's record (what the HDF5 file keeps per step).
typedef struct {
    double loss, kl, nll;
    int64_t n_pos;
    int32_t *prompt_idx;       // (batch) rows of the train set
    int32_t *gen_len;          // (batch)
    int32_t *gen;              // concatenated sampled ids
    float *A, *B;              // adapter after the step
} sc_step_record;

// Everything needed to continue a search bit for bit (the checkpoint file's content).
typedef struct {
    int search, steps_total, steps_done, batch;
    uint64_t seed;
    sc_adapter *adapter;
    float *mA, *vA, *mB, *vB;  // AdamW moments
    float *A0, *B0;            // adapter before the first step
    sc_step_record *steps;     // (steps_done)
} sc_search_state;

void sc_search_state_free(sc_search_state *s);
// Checkpoint file: magic "SCSRCHK1", version, sizes, then the state; written atomically.
sc_status sc_search_checkpoint_save(const char *path, const sc_search_state *s);
// Load and check it matches (kind, rank, C, L, steps, batch, seed); mismatches are errors
// naming the file and the field.
sc_status sc_search_checkpoint_load(const char *path, const sc_search_config *cfg, int n_layers, int C,
                                    sc_search_state **out);

typedef struct {
    const sc_model *model;
    const sc_backend *be;
    const sc_tokenizer *tok;
    const sc_dataset *train;
    const sc_search_config *cfg;
    const char *run_dir;       // RUN_DIR: checkpoints/ and results.h5 live here
    const char *config_json;   // resolved run config, stored in results.h5
    int resume;                // continue from checkpoints instead of refusing them
    volatile sig_atomic_t *stop;   // set by a signal handler: stop after the current step
} sc_search_run;

// Run the searches [first, last) (last = -1: all) one after the other. Each finished search
// is added to RUN_DIR/results.h5 atomically. Returns SC_ERR_INTERRUPTED when *stop was set
// (the last finished step is checkpointed).
sc_status sc_search_run_range(const sc_search_run *run, int first, int last);

// One optimizer step of `state` on the given prompts (token ids); fills rec. Exposed for tests.
sc_status sc_search_step(const sc_search_run *run, sc_search_state *state, const int32_t *const *prompts,
                         const int *prompt_len, const int32_t *prompt_idx, int n, sc_step_record *rec);

#endif
