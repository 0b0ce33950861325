// search.h — the divergence search: train N adapters on a frozen model, each pushed away
// from the base model by L = alpha * (-KL(P || Q)) + beta * NLL(Q, token sampled from Q).
//
// One optimizer step per batch: sample continuations from the current Q with the KV cache
// (no gradients), then one teacher-forced forward of P and one forward + backward of Q over
// the whole sequences, then AdamW. This gives the same loss and gradient as the study's
// per-token re-runs (tested) with about two orders of magnitude less arithmetic.
#ifndef STEERCLEAR_SEARCH_H
#define STEERCLEAR_SEARCH_H

#include "steerclear/adapter.h"
#include "steerclear/dataset.h"
#include "steerclear/loss.h"
#include "steerclear/tok.h"

typedef struct cJSON cJSON;

// How a search's prompts are drawn from the train set (the config key "prompt_sampling").
typedef enum {
    SC_SAMPLING_PER_SEARCH = 0,   // "per-search" (the study's): prompts_per_search prompts drawn once
                                  // per search; every epoch visits that same set, in a fresh order
    SC_SAMPLING_PER_EPOCH,        // "per-epoch": every epoch draws a fresh subset of the train set
} sc_prompt_sampling;

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
    sc_prompt_sampling prompt_sampling;   // per-search (a run recorded without the key: per-epoch)
    int max_new_tokens;        // sampled tokens per prompt (128)
    float temperature;         // sampling from Q: 1, full distribution
    int top_k;                 // 0 = off
    float top_p;               // 1 = off
    uint64_t seed;             // run seed; search s uses sc_seed_mix(seed, s)
    int checkpoint_activations;   // recompute blocks in backward: 1, 0, or -1 = auto (only when
                                  // keeping every block's activations for the largest batch would
                                  // take more than a third of the rank's memory budget)
    int loss_chunk;            // rows of logits per loss chunk (32)
    int searches_per_pass;     // searches of a rank that advance together, step k of each in one
                               // batched pass; 0 = auto (all of the rank's, capped by memory)
    int searches_per_micro_batch;   // searches whose teacher-forced passes share one batch (1: each
                                    // search's own, bitwise as alone; 0 = auto: as many as fit)
} sc_search_config;

void sc_search_config_default(sc_search_config *c);
// Read the keys present in a JSON object (unknown keys are an error naming them; `where`
// names the file for messages). Values are validated.
sc_status sc_search_config_from_json(const cJSON *obj, const char *where, sc_search_config *c);
// The same for a search section recorded by an earlier run (RUN_DIR/config.json on --resume):
// a key it lacks because it was recorded before the key existed takes the value that run was
// made with, not today's default (no "prompt_sampling": "per-epoch").
sc_status sc_search_config_from_recorded_json(const cJSON *obj, const char *where, sc_search_config *c);
sc_status sc_search_config_validate(const sc_search_config *c);
cJSON *sc_search_config_to_json(const sc_search_config *c);
// The settings a search's results depend on, as canonical JSON text (malloc'ed; NULL when out of
// memory): every key except the ones --resume may change (searches, checkpoint_activations,
// loss_chunk). Checkpoints record it; sc_search_settings_diff lists what differs from cfg
// (a key the recorded settings lack counts with its value from before it existed, as above).
char *sc_search_config_settings(const sc_search_config *cfg);
int sc_search_settings_diff(const char *settings_json, const sc_search_config *cfg, char *diff, size_t n);
// --resume: compare a run's saved resolved config (JSON text) with the one asked for now
// ({"model", "train", ["test",] "search": {...}}); any difference in a setting that changes
// results is an error listing each key as "key (old -> new)". `where` names the saved file.
// Keys the saved search section lacks count as in sc_search_config_from_recorded_json.
sc_status sc_search_resume_check(const char *saved_json, const cJSON *now, const char *where, char *diff, size_t n);
uint64_t sc_search_seed(const sc_search_config *c, int search);
// The train-set rows epoch `epoch` of a search visits, in order (prompts_per_search of them;
// step k of the epoch takes out[k * batch_size ...]). `seed` is the search's seed
// (sc_search_seed). Epoch 0 is a seeded permutation of the n_train rows, cut to
// prompts_per_search, in both modes; a later epoch is, per-epoch, another such draw, and
// per-search, a seeded permutation of epoch 0's rows.
sc_status sc_search_prompt_order(const sc_search_config *cfg, uint64_t seed, int n_train, int epoch, int32_t *out);
// The seed of the sampling of a search's step (its draws: (this seed, the prompt's train-set
// row, token index)); the same in one process, in a pass of several searches and on a pipeline.
uint64_t sc_search_sample_seed(uint64_t search_seed, int step);

// One step's record (what the HDF5 file keeps per step), in host memory allocated with the
// search state (a step allocates nothing).
typedef struct {
    double loss, kl, nll;
    int64_t n_pos;
    int32_t *prompt_idx;       // (batch) rows of the train set
    int32_t *gen_len;          // (batch)
    int32_t *gen;              // concatenated sampled ids (room for batch * max_new_tokens)
    float *A, *B;              // adapter after the step
} sc_step_record;

// Everything needed to continue a search bit for bit (the checkpoint file's content).
typedef struct {
    int search, steps_total, steps_done, batch, max_new;
    uint64_t seed;
    sc_adapter *adapter;       // backend memory
    float *mA, *vA, *mB, *vB;  // AdamW moments, backend memory (one allocation at mA)
    float *A0, *B0;            // host: the adapter before the first step
    sc_step_record *steps;     // (steps_total), the first steps_done filled
    void *record_mem;          // host storage behind every record
    char *settings;            // the settings that change results (sc_search_config_settings), kept in the checkpoint
} sc_search_state;

// A new search `search` of the config on backend be: adapter drawn from the search's seed,
// moments 0, room for every step's record.
sc_status sc_search_state_create(sc_backend *be, const sc_search_config *cfg, int search, int n_layers, int C,
                                 sc_search_state **out);
void sc_search_state_free(sc_search_state *s);
// Checkpoint file: magic "SCSRCHK1", version, sizes, then the state; written atomically.
sc_status sc_search_checkpoint_save(const char *path, const sc_search_state *s);
// Load and check it matches (kind, rank, C, L, steps, batch, seed); mismatches are errors
// naming the file and the field.
sc_status sc_search_checkpoint_load(const char *path, const sc_search_config *cfg, sc_backend *be, int n_layers, int C,
                                    sc_search_state **out);
// The checkpoint's bytes in memory (what MPI ranks send to rank 0 for a finished search):
// pack mallocs *out; unpack checks it like a load, `what` naming its origin in messages.
sc_status sc_search_state_pack(const sc_search_state *s, char **out, size_t *len);
sc_status sc_search_state_unpack(const char *data, size_t len, const char *what, const sc_search_config *cfg, sc_backend *be,
                                 int n_layers, int C, sc_search_state **out);

typedef struct sc_run sc_run;

typedef struct {
    const sc_model *model;
    sc_backend *be;
    const sc_tokenizer *tok;
    const sc_dataset *train;
    const sc_search_config *cfg;
    sc_run *run;               // the run directory: checkpoints/ and results.h5
    const char *model_dir;     // recorded in results.h5 (NULL: model->dir)
    const char *config_json;   // resolved run config, stored in results.h5
    int resume;                // continue from checkpoints instead of refusing them
    // Several MPI ranks (src/dist; all zero / NULL in one process):
    int stride, offset;        // run only the searches with index % stride == offset (stride 0: all)
    void *dist_ctx;            // handed to the three hooks
    int (*is_finished)(void *ctx, int search);                       // replaces sc_results_has_search
    sc_status (*add_result)(void *ctx, const sc_search_state *s);    // replaces sc_results_add_search
    sc_status (*poll)(void *ctx);   // after every pass's checkpoints: an error stops the range like a signal
    // A pipeline stage (src/dist/pipeline.c; NULL in one process): every step goes through
    // pipe_step instead of sc_search_step (this rank runs its block slice of it; one search per
    // pass), and only a rank without read_only writes the checkpoints (stage 0 of the group; the
    // others load them on resume).
    void *pipe;
    sc_status (*pipe_step)(void *pipe, sc_search_state *state, const int32_t *const *prompts, const int *prompt_len,
                           const int32_t *prompt_idx, int n);
    int read_only;
} sc_search_run;

// Run the searches [first, last) (last = -1: all) of this process. They advance in lock-step:
// up to searches_per_pass of them at a time, step k of each in one batched pass
// (sc_search_pass), each at its own step (after a resume they may differ); a search that
// finishes leaves the pass and the next one takes its place. Each search's checkpoint is
// written after every pass; each finished search is added to RUN_DIR/results.h5 atomically; a
// search already there is never run or written again. Returns SC_ERR_INTERRUPTED after
// SIGTERM / SIGINT (sc_interrupted): the pass under way is dropped and the last finished
// steps stay checkpointed.
sc_status sc_search_run_range(const sc_search_run *run, int first, int last);

// The run state of optimizer steps (generator, saved activations, hidden buffers, workspace),
// sized once for prompts of up to max_prompt tokens: a step allocates nothing.
// sc_search_work_create: for one search per pass (sc_search_step).
// sc_search_work_create_pass: for passes of up to n_searches searches (cfg->searches_per_pass
// when set, capped at n_searches; "auto": n_searches, fewer when their generation would not fit
// the memory the budget leaves); the teacher-forced part runs in micro-batches of per_micro
// whole searches (0: cfg->searches_per_micro_batch; "auto" there: as many as fit beside the
// generation). A search's rows never span micro-batches; with one search per micro-batch its
// teacher-forced products see exactly the rows they see alone (bitwise the same results
// whenever the sampled tokens are), with more they agree to float rounding where the BLAS
// sums a row differently with more rows.
typedef struct sc_search_work sc_search_work;
sc_status sc_search_work_create(const sc_search_run *run, int max_prompt, sc_search_work **out);
sc_status sc_search_work_create_pass(const sc_search_run *run, int max_prompt, int n_searches, int per_micro, sc_search_work **out);
void sc_search_work_free(sc_search_work *w);
// Whether the work recomputes blocks in backward (checkpoint_activations, "auto" resolved).
int sc_search_work_checkpointing(const sc_search_work *w);
// Searches per pass, and per teacher-forced micro-batch, as resolved.
int sc_search_work_per_pass(const sc_search_work *w);
int sc_search_work_per_micro(const sc_search_work *w);

// One search's part of a pass: its state and its step's prompts (token ids, lengths, rows of
// the train set; n <= batch_size).
typedef struct {
    sc_search_state *state;
    const int32_t *const *prompts;
    const int *prompt_len;
    const int32_t *prompt_idx;
    int n;
} sc_search_item;

// One optimizer step of each of n_items searches (n_items <= the work's searches per pass) in
// one batched pass: every search samples with its own step's seed, and its loss, gradient and
// AdamW step are its own, as when it runs alone. Each record goes to
// state->steps[state->steps_done] and steps_done grows by one.
sc_status sc_search_pass(const sc_search_run *run, sc_search_work *w, const sc_search_item *items, int n_items);
// The end of a search's step once its adapter's gradients are in: AdamW on A and B, the adapter
// after it and the loss into the step's record (an error if the adapter is no longer finite),
// the step counted. The same for one process, a pass and a pipeline stage.
sc_status sc_search_finish_step(sc_backend *be, const sc_search_config *cfg, sc_search_state *state, const sc_loss_stats *ls);

// One optimizer step of `state` on the given prompts (token ids): the one-search pass.
sc_status sc_search_step(const sc_search_run *run, sc_search_work *w, sc_search_state *state, const int32_t *const *prompts,
                         const int *prompt_len, const int32_t *prompt_idx, int n);

#endif
