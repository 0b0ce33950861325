// engine.h — running a Qwen2 or Qwen3 model (or a slice of its blocks) forward and backward.
//
// Tokens of all sequences are packed row after row (no padding). A batch says where each
// sequence starts, at which position its first row sits (past tokens in the KV cache), and
// which cache slot it uses. The slice [m->first, m->last) runs; the embedding is applied
// when the slice starts at block 0, and the head (final norm + LM head) is a separate call
// so that a pipeline stage, the loss and generation choose which rows need logits.
//
// A residual-stream hook sees (and may modify in place) the output of every block; it is the
// single point where adapters, activation capture and steering act. NULL costs nothing.
//
// Every float array here (hidden, logits, rstd, dhidden) is backend memory (host memory on the
// CPU backend); token ids, rows and the batch layout are host memory. Scratch comes from the
// backend's workspace: after the first pass of the largest shape, passes allocate nothing.
#ifndef STEERCLEAR_ENGINE_H
#define STEERCLEAR_ENGINE_H

#include "steerclear/backend.h"
#include "steerclear/model.h"

typedef struct sc_batch sc_batch;

typedef struct {
    void *user;
    // h: [T,C] output of global block `block`, modified in place. batch tells which rows
    // belong to which sequence (and its tag, e.g. a steering variant or a search).
    sc_status (*forward)(void *user, sc_backend *be, int block, float *h, int T, int C, const sc_batch *batch);
    // h_pre: [T,C] the block output before this hook ran; dh: [T,C] gradient w.r.t. the hooked
    // output, replaced in place by the gradient w.r.t. h_pre; batch as in the forward pass.
    // NULL: the hook is the identity for gradients.
    sc_status (*backward)(void *user, sc_backend *be, int block, const float *h_pre, float *dh, int T, int C,
                          const sc_batch *batch);
} sc_hook;

struct sc_batch {
    int n_seq;
    const int *seq_start;  // (n_seq + 1) row offsets; T = seq_start[n_seq]
    const int *pos0;       // (n_seq) position of each sequence's first row; NULL = all 0
    const int *slot;       // (n_seq) KV-cache slot of each sequence; NULL = slot b
    const int *tag;        // (n_seq) caller's label per sequence (e.g. which variant); NULL = none
};

// Keys and values of blocks [first, last) for n_slots sequences of up to max_ctx positions, in
// backend memory: a pipeline stage holds the cache of its own blocks only.
typedef struct {
    int first, last, n_slots, max_ctx, kvd;   // kvd = KVH * HD
    float *k, *v;          // ((last - first), n_slots, max_ctx, kvd)
    sc_backend *be;
} sc_kv_cache;

sc_status sc_kv_cache_create(const sc_model *m, sc_backend *be, int n_slots, int max_ctx, sc_kv_cache **out);
void sc_kv_cache_free(sc_kv_cache *c);

// What the backward pass needs from a forward pass (opaque), in backend memory allocated once
// for up to max_T tokens in max_seqs sequences (a larger pass grows it: plan the maximum).
// With checkpointing only each block's input is kept and the block is recomputed during
// backward.
typedef struct sc_activations sc_activations;
sc_status sc_activations_create(const sc_model *m, sc_backend *be, int max_T, int max_seqs, int checkpoint,
                                sc_activations **out);
void sc_activations_free(sc_activations *a);
size_t sc_activations_bytes(const sc_activations *a);
// Bytes a forward pass of T tokens through the model's slice saves, with or without checkpointing.
size_t sc_activations_estimate(const sc_model *m, int T, int checkpoint);
// Workspace bytes a forward (and backward) pass of T tokens takes at most (for planning).
size_t sc_forward_workspace_estimate(const sc_model *m, int T);

// Forward through the model's slice. ids [T] is read when the slice starts at block 0;
// otherwise hidden [T,C] holds the input. On return hidden [T,C] holds the slice's output
// (after the last block's hook; before the final norm). cache: optional (written at the
// batch's positions and attended over); save: optional (only without a cache).
sc_status sc_forward(const sc_model *m, sc_backend *be, const sc_batch *batch, const int32_t *ids,
                     float *hidden, sc_kv_cache *cache, const sc_hook *hook, sc_activations *save);
// The same without save, for a decode step (a row or a few per sequence against the cache):
// recorded and launched as one device graph where the backend does that (CUDA graphs, with
// $SC_CUDA_GRAPHS=1; backend.h, graph_begin); op by op otherwise, and when recording fails.
sc_status sc_forward_step(const sc_model *m, sc_backend *be, const sc_batch *batch, const int32_t *ids,
                          float *hidden, sc_kv_cache *cache, const sc_hook *hook);

// Final RMSNorm and LM head for n rows of hidden (row indices `rows`, NULL = 0..n-1):
// rstd [n] (optional, for sc_head_backward), logits [n,V] (optional).
sc_status sc_head(const sc_model *m, sc_backend *be, const float *hidden, const int *rows, int n,
                  float *rstd, float *logits);
// Backward of the head for n rows: given dlogits [n,V], hidden rows and their rstd, add the
// gradient w.r.t. those hidden rows into dhidden (rows indexed like `rows`).
sc_status sc_head_backward(const sc_model *m, sc_backend *be, const float *hidden, const int *rows, int n,
                           const float *rstd, const float *dlogits, float *dhidden);

// Backward through the slice for the forward saved in `act`: dhidden [T,C] holds the gradient
// w.r.t. the slice output and is replaced by the gradient w.r.t. the slice input. The hook's
// backward is called for every block, last to first.
sc_status sc_backward(const sc_model *m, sc_backend *be, sc_activations *act, const sc_hook *hook,
                      float *dhidden);

#endif
