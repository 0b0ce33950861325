// adapter.h — the divergence adapters: a rank-r residual update at the output h of a block,
//   u = h A B;  h' = h + scaling * u / (||u|| + 1e-8)   (norm over C, per token)
// A ~ N(0,1) (C x r), B = 0 (r x C). `shared`: one (A, B) at every block (the study's code);
// `per-block`: one pair per block (the study's write-up).
//
// At B = 0 the update is zero, dL/dA is exactly 0 and dL/dB carries the 1/(0 + 1e-8) factor
// (about 1e8 times later gradients); everything stays finite and AdamW normalises it.
//
// The parameters and their gradients live in the memory of the backend the adapter is made
// for (host memory on the CPU backend); sc_adapter_get / sc_adapter_set move them to and from
// the host (checkpoints, the results file).
#ifndef STEERCLEAR_ADAPTER_H
#define STEERCLEAR_ADAPTER_H

#include "steerclear/engine.h"

typedef enum { SC_ADAPTER_SHARED = 0, SC_ADAPTER_PER_BLOCK = 1 } sc_adapter_kind;
const char *sc_adapter_kind_name(sc_adapter_kind k);   // "shared" / "per-block"
sc_status sc_adapter_kind_parse(const char *s, sc_adapter_kind *k);

#define SC_ADAPTER_EPS 1e-8f

typedef struct {
    sc_adapter_kind kind;
    int n_layers, C, r;     // L, hidden size, rank
    int n_sets;             // 1 (shared) or L (per-block)
    float scaling;          // 2 in the study
    float *A;               // (n_sets, C, r)  backend memory
    float *B;               // (n_sets, r, C)
    float *dA, *dB;         // gradients, same shapes (accumulated by the hook's backward)
    sc_backend *be;
} sc_adapter;

sc_status sc_adapter_create(sc_backend *be, sc_adapter_kind kind, int n_layers, int C, int r, float scaling, sc_adapter **out);
void sc_adapter_free(sc_adapter *a);
// A ~ N(0,1) from the counter-based RNG at `seed`, B = 0, gradients 0.
sc_status sc_adapter_init(sc_adapter *a, uint64_t seed);
sc_status sc_adapter_zero_grad(sc_adapter *a);
size_t sc_adapter_numel_A(const sc_adapter *a);   // n_sets * C * r
size_t sc_adapter_numel_B(const sc_adapter *a);   // n_sets * r * C
// Copy A and B to host arrays (either may be NULL), or set them from host arrays.
sc_status sc_adapter_get(const sc_adapter *a, float *A, float *B);
sc_status sc_adapter_set(sc_adapter *a, const float *A, const float *B);
// The hook that applies the adapter to every row (forward) and accumulates dA, dB (backward).
sc_hook sc_adapter_hook(sc_adapter *a);
// The backward of the update for T rows at block `block`: dh[T,C] (the gradient w.r.t. the
// adapted rows) becomes the gradient w.r.t. h[T,C] (the rows before the update), and the
// parameters' gradients are added into dA, dB (what the hook's backward does).
sc_status sc_adapter_backward_rows(sc_adapter *a, int block, const float *h, float *dh, int T);
// Several adapters in one batch (searches that share a pass): sequence i uses
// adapters[batch->tag[i]], each run of consecutive sequences with one tag in one call (so a
// search's rows take the same products as when it runs alone); an untagged batch needs n == 1.
typedef struct {
    sc_adapter *const *adapters;
    int n;
} sc_adapter_group;
sc_hook sc_adapter_group_hook(sc_adapter_group *g);
// update[T,C] = scaling * u / (||u|| + eps) for h[T,C] at block `block` (used by `update-mean`);
// accumulate != 0 adds it to update instead (update may be h: applies the adapter in place).
sc_status sc_adapter_apply(const sc_adapter *a, int block, const float *h, int T, float *update, int accumulate);

#endif
