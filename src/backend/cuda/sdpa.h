// sdpa.h — causal GQA attention through cuDNN's fused flash attention (the graph API of
// cuDNN 9's backend, opened with dlopen), for cuda.c. Every tensor is in one padded layout:
// B sequences of S positions (S a multiple of 128), row-major [B, S, heads, HD] in BF16, the
// softmax statistics [B, NH, S] in FP32 (natural-log log-sum-exp of the scaled scores, the
// `lse` of backend.h). Plans are built once per shape and kept (a small table); a shape cuDNN
// has no engine for is remembered too, and the caller runs its own kernel then.
#ifndef STEERCLEAR_CUDA_SDPA_H
#define STEERCLEAR_CUDA_SDPA_H

#include "steerclear/core.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sc_sdpa sc_sdpa;
struct CUstream_st;   // cudaStream_t is a struct CUstream_st *

typedef struct { int B, S, NH, KVH, HD; } sc_sdpa_shape;

// cuDNN on `stream`, or NULL with the reason in why (no cuDNN library, headers missing at build
// time, a version before 9.0): the caller keeps its own kernels then.
// (stream: a cudaStream_t; spelled so that this header needs no CUDA header: tests include it)
sc_sdpa *sc_sdpa_open(struct CUstream_st *stream, char *why, size_t why_len);
void sc_sdpa_close(sc_sdpa *s);
// "cuDNN 9.19.0" (the library loaded)
const char *sc_sdpa_version(const sc_sdpa *s);

// The plan of the forward (bwd = 0) or backward pass for a shape: 1 and its workspace bytes
// when cuDNN has an engine for it; -1 when it has none (why says why), and 0 at later calls for
// that shape (remembered: answered at once, nothing in why).
int sc_sdpa_plan(sc_sdpa *s, int bwd, const sc_sdpa_shape *sh, size_t *ws_bytes, char *why, size_t why_len);

// Forward: o = softmax(scale q k^T + causal mask) v and stats, BF16 q, k, v, o; ws of the plan's
// workspace bytes (device). The plan must exist (sc_sdpa_plan returned 1).
sc_status sc_sdpa_forward(sc_sdpa *s, const sc_sdpa_shape *sh, const void *q, const void *k, const void *v, void *o,
                          float *stats, void *ws);
// Backward: dq, dk, dv (BF16) from q, k, v, o, do (BF16) and the forward's stats; sum [B*NH*S]
// and dq_acc [B*S*NH*HD] FP32 scratch (device; dq_acc unused when the shape's plan is cuDNN's
// deterministic backward, the one tried first).
sc_status sc_sdpa_backward(sc_sdpa *s, const sc_sdpa_shape *sh, const void *q, const void *k, const void *v, const void *o,
                           const void *dout, const float *stats, void *dq, void *dk, void *dv, float *sum, float *dq_acc, void *ws);

// Whether the backward plan of a shape (sc_sdpa_plan returned 1 for it) adds into dq_acc: 1 for
// the graph with the FP32 accumulator (dq_acc must be zeroed before each call), 0 for cuDNN's
// deterministic backward (dq_acc is not read or written: pass NULL).
int sc_sdpa_backward_uses_acc(sc_sdpa *s, const sc_sdpa_shape *sh);

// Builds the graph's tensors and operations for a shape (kind 0: forward, 1: the deterministic
// backward, 2: the backward with the FP32 dQ accumulator) and finalizes each (what cuDNN checks
// without a GPU: attribute types, dims, strides, data types of every operation): 1 when all
// finalize (*n_ops operations), 0 when one does not (why says which), -1 when cuDNN cannot be
// loaded. The operation graph and its plan need a GPU.
int sc_sdpa_graph_check(int kind, const sc_sdpa_shape *sh, int *n_ops, char *why, size_t why_len);

#endif
