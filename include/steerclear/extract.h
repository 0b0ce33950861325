// extract.h — steering directions from finished searches: one vector per block per search.
//
//   activation-diff (default): d_l = mean over all tokens of all sequences of
//       h_adapted_l - h_base_l, the residual stream at the output of block l (after the adapter
//       for the adapted model), with the same token sequences teacher-forced through both.
//   update-mean: d_l = mean of the adapter's own update scaling * u / (||u|| + eps) evaluated
//       on the base model's activations h_base_l.
//
// The sequences are prompts, each followed by a continuation sampled once from the BASE model
// and reused for every search. Sums are accumulated in double; sequences run in batches.
//
// Results file (RUN_DIR/results.h5, updated atomically):
//   /directions              f32 [S][L][C]  one row per finished search, in search index order;
//                            attrs mode, sets, max_new_tokens, temperature, top_k, top_p, seed
//   /direction_searches      i32 [S]        the search index of each row
//   /direction_token_counts  i64 [S]        tokens averaged over (0: row not extracted yet)
//   /extract/continuations   ragged i32     sampled ids per sequence (values + offsets)
//   /extract/prompt_set      i32 [n]        0 = train, 1 = test
//   /extract/prompt_index    i32 [n]        row of that set
// Exported files: RUN_DIR/directions/search_NNNN.safetensors and search_NNNN.gguf.
// The results module (results.h) writes all of it. Leaves out: MPI distribution of the
// searches (one process does them all).
#ifndef STEERCLEAR_EXTRACT_H
#define STEERCLEAR_EXTRACT_H

#include "steerclear/adapter.h"
#include "steerclear/stage.h"

typedef enum { SC_DIRECTION_ACTIVATION_DIFF = 0, SC_DIRECTION_UPDATE_MEAN = 1 } sc_direction_mode;
const char *sc_direction_mode_name(sc_direction_mode m);   // "activation-diff" / "update-mean"
sc_status sc_direction_mode_parse(const char *s, sc_direction_mode *out);

// Directions of n_adapters adapters over the same token sequences (teacher-forced, from
// position 0). dirs: [n_adapters][L][C] float (the means); *n_tokens receives the number of
// tokens averaged over. batch_seqs bounds how many sequences run through the model at once per
// adapter; activation-diff runs them for per_pass adapters in one forward pass (the copies
// tagged, each adapter applied to and summed over its own copy: the same sums as one adapter
// at a time up to the products' rounding; 0 = all adapters, fewer when their hidden rows would
// not fit half of what the memory budget leaves).
// activation-diff also gives the means themselves when asked: base_means [L][C] (the base
// model's block outputs) and adapted_means [n_adapters][L][C] (NULL: not wanted; update-mean
// leaves them untouched). Needs the whole model (m->first == 0, m->last == L).
sc_status sc_directions_compute(const sc_model *m, sc_backend *be, sc_adapter *const *adapters, int n_adapters,
                                sc_direction_mode mode, const int32_t *const *seqs, const int *seq_len, int n_seqs,
                                int batch_seqs, int per_pass, float *dirs, int64_t *n_tokens, float *base_means, float *adapted_means);

// A pipeline stage's neighbours (src/dist): on a slice that does not start at block 0 the rows
// [T*C] of every pass come from the stage before (recv); on one that does not end at the last
// block they go to the next (send).
typedef struct {
    void *ctx;
    sc_status (*recv)(void *ctx, float *hidden, size_t n);
    sc_status (*send)(void *ctx, const float *hidden, size_t n);
    sc_status (*proceed)(void *ctx);   // before each batch: an error (a stop agreed on) ends the sums
} sc_direction_link;

// The double sums behind sc_directions_compute over the blocks of m's slice (the whole model
// when link is NULL): host_sums [(n_adapters + 1)][L][C] (activation-diff: the base model's block
// outputs, then each adapter's; update-mean: row 0 unused, then each adapter's updates), blocks
// outside the slice 0; *n_tokens the tokens summed over. Every slice of a pipeline running the
// same batches sums its blocks exactly as one process does (the same rows through the same ops).
// per_pass as for sc_directions_compute; with a link, one adapter per pass (every stage must run
// the same passes).
sc_status sc_directions_sums(const sc_model *m, sc_backend *be, sc_adapter *const *adapters, int n_adapters,
                             sc_direction_mode mode, const int32_t *const *seqs, const int *seq_len, int n_seqs,
                             int batch_seqs, int per_pass, const sc_direction_link *link, double *host_sums, int64_t *n_tokens);
// The directions (and means) from those sums: what sc_directions_compute returns.
void sc_directions_finish(const double *host_sums, int n_adapters, int L, int C, sc_direction_mode mode, int64_t total,
                          float *dirs, float *base_means, float *adapted_means);

// The directions computed elsewhere (a pipeline: src/dist), with sc_directions_compute's arguments
// less the model and backend.
typedef sc_status (*sc_directions_fn)(void *ctx, sc_adapter *const *adapters, int n_adapters, sc_direction_mode mode,
                                      const int32_t *const *seqs, const int *seq_len, int n_seqs, int batch_seqs,
                                      float *dirs, int64_t *n_tokens, float *base_means, float *adapted_means);

typedef struct {
    int use_train, use_test;    // which of the stage's sets give the prompts (full_prompt column)
    sc_direction_mode mode;
    int max_new_tokens;         // 50
    float temperature;          // 0.7
    int top_k;                  // 50
    float top_p;                // 0.9
    uint64_t seed;              // continuation sampling seed
    int seed_set;               // 0: use the run config's search seed (1234 when absent)
    int batch_seqs;             // 16
    int searches_per_pass;      // activation-diff: searches' adapters in one forward pass (1, the default:
                                // one at a time, so re-extracting a subset reproduces its rows bit for
                                // bit; 0 = all, capped by memory; more than 1: equal up to rounding)
    const int *searches;        // NULL: every finished search
    int n_searches;
    int export_files;           // 1: write RUN_DIR/directions/search_NNNN.{safetensors,gguf}
    sc_directions_fn compute;   // NULL: sc_directions_compute on the stage's model; else (a pipeline) this
    void *compute_ctx;
} sc_extract_opts;

void sc_extract_opts_default(sc_extract_opts *o);
// The whole stage on a stage context (its model, tokenizer, the chosen prompt sets and its run
// directory): sample, compute, write results.h5 and the exported files.
sc_status sc_extract_run(sc_stage *stage, const sc_extract_opts *o);

#endif
