// backend.h — the backend context: one per rank, created once. It owns the device it drives,
// that device's memory (alloc / free / copies / memset), a workspace arena in that memory, a
// host arena for index arrays, a queue (a no-op on the CPU), and the table of ops through
// which every operation on activations goes: the GEMMs and block maths, and also the
// KV-cache write, row gather and scatter-add, the adapter, the fused divergence loss,
// steering, activation means, AdamW and sampling. The model, search and steer code never loop
// over activations or call BLAS themselves; a new backend implements this table and passes
// tests/test_backend.c against the CPU backend (docs/architecture.md, "Adding a backend").
//
// Conventions for every op:
//  - The backend is the first argument; every op returns a status (and leaves a message).
//  - float / double arrays are backend memory (allocated with op->alloc, or a pointer into
//    such an allocation); on the CPU backend that is host memory, so host arrays may be passed.
//  - Integer index arrays (batch layout, positions, row lists, token ids) and small per-row
//    outputs (loss terms, sampled ids) are host memory; a device backend copies them itself.
//  - Shapes use the letters of model.h; activations are float32, row-major, tokens packed
//    (no padding): row t of an [T, X] array is token t of the batch.
//  - Ops may take scratch from be->ws / be->host and give it back before they return.
// Backends know nothing about the model: only arrays, shapes and strides.
#ifndef STEERCLEAR_BACKEND_H
#define STEERCLEAR_BACKEND_H

#include "steerclear/arena.h"

typedef enum { SC_DEVICE_CPU = 0, SC_DEVICE_CUDA = 1 } sc_device;
const char *sc_device_name(sc_device d);   // "cpu", "cuda"
// "cpu" or "cuda" (what --device and the config key "device" take) into *out; `where` names
// the option or key in the error
sc_status sc_device_parse(const char *s, const char *where, sc_device *out);

// A frozen weight matrix [rows, cols] = [out, in] (the nn.Linear layout). data/dtype is the
// host view (the mmapped file or an owned copy; F32 or BF16). `prepared` is the backend's own
// form of it, made by op->weights_prepare: an F32 copy of a BF16 matrix on the CPU (when the
// copies fit the memory budget; NULL otherwise), device memory on a GPU.
typedef struct {
    const void *data;
    sc_dtype dtype;        // SC_DTYPE_F32 or SC_DTYPE_BF16
    int64_t rows, cols;
    void *prepared;
} sc_mat;

// Where each sequence's keys and values live for attention. Sequence b's queries are the
// packed rows [q_start[b], q_start[b+1]) at positions pos0[b] + i; they attend causally to
// positions 0 .. pos0[b] + i of that sequence, whose key row j is k + kv_off[b] + j * kv_stride
// (a KV-cache slot, or the batch's own rows). All arrays are host memory.
typedef struct {
    int n_seq;
    const int *q_start;        // (n_seq + 1)
    const int *pos0;           // (n_seq)
    const int64_t *kv_off;     // (n_seq) float offset of position 0 of sequence b in k and v
    int64_t kv_stride;         // floats between consecutive positions
} sc_attn_layout;

// Token sampling settings (what the sample op needs; generate.h builds them from its options).
typedef struct {
    int greedy;            // argmax (ignores the rest)
    float temperature;     // > 0
    int top_k;             // 0 = off
    float top_p;           // 1 = off
    int vocab_limit;       // > 0: draw only ids below it; 0 = all V
} sc_sampling;

// AdamW as in PyTorch (decoupled weight decay): p -= lr*wd*p; moments; bias correction.
typedef struct { float lr, beta1, beta2, eps, weight_decay; } sc_adamw_opts;

typedef struct sc_backend sc_backend;

typedef struct sc_backend_ops {
    // --- memory ------------------------------------------------------------------------------
    // bytes of backend memory (64-byte aligned, not zeroed) into *out; `what` names it in errors
    sc_status (*alloc)(sc_backend *be, size_t bytes, const char *what, void **out);
    void (*free)(sc_backend *be, void *p);                                           // NULL is fine
    sc_status (*upload)(sc_backend *be, void *dst, const void *host_src, size_t bytes);
    sc_status (*download)(sc_backend *be, void *host_dst, const void *src, size_t bytes);
    sc_status (*copy)(sc_backend *be, void *dst, const void *src, size_t bytes);     // within the backend
    sc_status (*memset)(sc_backend *be, void *dst, int byte, size_t bytes);
    sc_status (*sync)(sc_backend *be);                                               // wait for the queue
    // Page-locked ("pinned") host memory, for staging messages between ranks: a device copies
    // it asynchronously (CUDA: cudaHostAlloc); the CPU backend's is 64-byte aligned heap memory.
    // Host memory, not backend memory (never passed to other ops); not counted in be->stats.
    sc_status (*host_alloc)(sc_backend *be, size_t bytes, const char *what, void **out);
    void (*host_free)(sc_backend *be, void *p);                                      // NULL is fine
    // Copies queued behind the ops before them, between backend memory and pinned host memory
    // (host_alloc): they return at once on a device; the host side must not be read (download)
    // or changed (upload) until an event recorded after the copy has completed, or op->sync.
    // The CPU backend copies at once.
    sc_status (*download_async)(sc_backend *be, void *host_dst, const void *src, size_t bytes);
    sc_status (*upload_async)(sc_backend *be, void *dst, const void *host_src, size_t bytes);
    // Events: markers in the queue. record marks the queue's end as it is now; wait blocks the
    // host until the queue has passed the mark; query sets *done (1: passed) without blocking.
    // The CPU backend runs every op before returning: its events have always passed.
    sc_status (*event_create)(sc_backend *be, void **ev);
    void (*event_destroy)(sc_backend *be, void *ev);                                 // NULL is fine
    sc_status (*event_record)(sc_backend *be, void *ev);
    sc_status (*event_wait)(sc_backend *be, void *ev);
    sc_status (*event_query)(sc_backend *be, void *ev, int *done);
    // Prepare (and later release) the backend's form of n weight matrices as one set: the
    // backend decides within be->memory_budget (the CPU keeps F32 copies only when all fit).
    sc_status (*weights_prepare)(sc_backend *be, sc_mat *const *mats, size_t n);
    void (*weights_release)(sc_backend *be, sc_mat *const *mats, size_t n);

    // --- GEMMs against weights ---------------------------------------------------------------
    // out[T,N] = x[T,K] . W[N,K]^T (+ bias[N] when not NULL)
    sc_status (*matmul)(sc_backend *be, float *out, const float *x, const sc_mat *W, const float *bias, int T);
    // dx[T,K] (+)= dy[T,N] . W[N,K]; accumulate != 0 adds to dx
    sc_status (*matmul_dx)(sc_backend *be, float *dx, const float *dy, const sc_mat *W, int T, int accumulate);

    // --- rows --------------------------------------------------------------------------------
    // out[T,C] = E[ids[t]] (E F32 or BF16, ids host)
    sc_status (*embed)(sc_backend *be, float *out, const sc_mat *E, const int32_t *ids, int T);
    // out[i,:] = x[rows[i],:] for i < n (rows host)
    sc_status (*gather_rows)(sc_backend *be, float *out, const float *x, const int *rows, int n, int C);
    // y[rows[i],:] += x[i,:] for i < n (rows host, distinct)
    sc_status (*scatter_add_rows)(sc_backend *be, float *y, const float *x, const int *rows, int n, int C);
    // y[i] += x[i] for i < n
    sc_status (*add)(sc_backend *be, float *y, const float *x, int64_t n);
    // h[t,:] += scale * v[:] for t < T (steering)
    sc_status (*add_row)(sc_backend *be, float *h, const float *v, float scale, int T, int C);
    // acc[c] += sum over t < T of h[t,c], in double, each column summed in row order (so the
    // result does not depend on the number of threads): activation means
    sc_status (*col_sum)(sc_backend *be, double *acc, const float *h, int T, int C);

    // --- block maths -------------------------------------------------------------------------
    // out = w * x / sqrt(mean(x^2) + eps) per row; rstd[T] saved when not NULL
    sc_status (*rmsnorm)(sc_backend *be, float *out, float *rstd, const float *x, const float *w, int T, int C, float eps);
    // dx (+)= backward of rmsnorm given dout, x, w, rstd
    sc_status (*rmsnorm_backward)(sc_backend *be, float *dx, const float *dout, const float *x, const float *w,
                                  const float *rstd, int T, int C, int accumulate);
    // rotary embedding in place on x[T, H, HD] at positions pos[T] (host); inverse = rotate back
    // (the backward of a rotation is the inverse rotation)
    sc_status (*rope)(sc_backend *be, float *x, const int *pos, int T, int H, int HD, float theta, int inverse);
    // out[n] = silu(g) * u
    sc_status (*swiglu)(sc_backend *be, float *out, const float *g, const float *u, int64_t n);
    // dg, du from dout, g, u (dg may alias dout)
    sc_status (*swiglu_backward)(sc_backend *be, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);

    // --- attention and the KV cache ----------------------------------------------------------
    // Write the batch's key and value rows k, v [T, KD] into the cache at each sequence's
    // positions: row i of sequence b goes to ck/cv + kv_off[b] + (pos0[b] + i) * kv_stride.
    sc_status (*kv_write)(sc_backend *be, float *ck, float *cv, const float *k, const float *v,
                          const sc_attn_layout *lay, int KD);
    // out[T, NH*HD] = causal GQA attention of q[T, NH*HD] over k, v; lse[T, NH] (log-sum-exp
    // of the scaled scores) saved when not NULL
    sc_status (*attention)(sc_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                           const sc_attn_layout *lay, int NH, int KVH, int HD);
    // backward of attention over the batch's own rows (no cache, pos0 = 0; q_start host):
    // dq[T,NH*HD], dk/dv[T,KVH*HD] written (not accumulated)
    sc_status (*attention_backward)(sc_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                    const float *lse, const float *q, const float *k, const float *v,
                                    const int *q_start, int n_seq, int NH, int KVH, int HD);

    // --- the divergence adapter: u = h A B, update = scaling * u / (||u|| + 1e-8) per row ----
    // out[T,C] = update (accumulate 0) or out += update (accumulate 1); out may be h itself.
    // A (C, r), B (r, C).
    sc_status (*adapter_forward)(sc_backend *be, float *out, const float *h, const float *A, const float *B,
                                 int T, int C, int r, float scaling, int accumulate);
    // Given dh = dL/d(h + update) [T,C], add dL/dA into dA, dL/dB into dB, and replace dh by
    // dL/dh (the identity path plus the adapter's).
    sc_status (*adapter_backward)(sc_backend *be, float *dh, const float *h, const float *A, const float *B,
                                  float *dA, float *dB, int T, int C, int r, float scaling);

    // --- loss, optimizer, sampling -----------------------------------------------------------
    // For n rows of logits lp (P) and lq (Q) [n,V] and targets[n] (host): kl[i] = KL(P||Q) and
    // nll[i] = -log Q(target) (host, double), and lq is replaced by
    //   grad_scale * (alpha * (P - Q) + beta * (Q - onehot(target)))   = dL/dlogits_Q
    // where L = alpha * (-KL) + beta * NLL (log-softmax in double over the whole vocabulary).
    sc_status (*divergence_loss)(sc_backend *be, float *lq, const float *lp, const int32_t *targets, int n, int V,
                                 float alpha, float beta, double grad_scale, double *kl, double *nll);
    // One AdamW step (step counts from 1) on n parameters p with gradient g and moments m, v.
    sc_status (*adamw)(sc_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                       const sc_adamw_opts *o, int step);
    // One token per row of logits [n,V] (modified) with uniforms u[n] (host) into ids[n] (host).
    sc_status (*sample)(sc_backend *be, float *logits, int n, int V, const sc_sampling *s, const float *u, int32_t *ids);

    // --- device graphs (optional: NULL where the backend has none) ---------------------------
    // graph_begin: 1 when the ops that follow are recorded into one graph instead of run (0:
    // run them as usual). graph_end(work = the status of the recorded ops): SC_OK once the graph
    // was launched; otherwise nothing of the recorded work has run and it returns an error:
    // run the same ops again directly. No op between the two may wait for the device or read
    // results back (download, sync, free): recording fails then, and the work runs directly.
    int (*graph_begin)(sc_backend *be);
    sc_status (*graph_end)(sc_backend *be, sc_status work);
} sc_backend_ops;

typedef struct {
    uint64_t n_alloc, n_free;  // op->alloc / op->free calls
    uint64_t n_graphs;         // device graphs launched (op->graph_end), n_graph_builds of them instantiated anew
    uint64_t n_graph_builds;
    size_t bytes_live, bytes_peak;
} sc_backend_stats;

struct sc_backend {
    const sc_backend_ops *op;
    const char *name;          // "cpu (avx2)", "cpu (avx2, bf16)", "cpu (generic)", ...
    const char *precision;     // "f32" or "bf16": the operands of GEMMs against BF16 weights
    sc_device device;
    size_t memory_budget;      // bytes this rank may hold (weights' copies, activations, caches)
    sc_arena ws;               // scratch in backend memory
    sc_arena host;             // scratch in host memory (index arrays, per-row results)
    sc_backend_stats stats;
    int separate_memory;       // 1: backend memory is not host memory (a GPU; the CPU backend with
                               // SC_CPU_STRICT=1): host arrays must be uploaded, never passed to ops
    void *impl;                // the backend's private state (queues, handles)
    void (*destroy)(sc_backend *be);   // frees impl (the arenas are released before)
};

typedef struct {
    sc_device device;          // SC_DEVICE_CPU, or SC_DEVICE_CUDA (builds with the CUDA backend)
    size_t memory_budget;      // 0: sc_memory_budget_default()
    const char *isa;           // CPU: NULL/"auto", "avx2" or "generic" (also $SC_CPU_ISA)
    // GEMMs against BF16 weights: "f32" (weights widened, F32 products: the reference),
    // "bf16" (BF16 operands, F32 accumulation: oneDNN on the CPU, as on the GPU), or NULL/"auto"
    // (bf16 where the CPU has AVX-512 BF16 or AMX, else f32). Also $SC_PRECISION (the tests set f32).
    const char *precision;
} sc_backend_opts;

void sc_backend_opts_default(sc_backend_opts *o);
sc_status sc_backend_create(const sc_backend_opts *o, sc_backend **out);
void sc_backend_free(sc_backend *be);
// A CPU backend with defaults (tests and tools); NULL + error on failure.
sc_backend *sc_backend_cpu_new(void);

// The default memory budget of one rank: 80% of physical memory divided by the ranks on this
// node (from the launcher's environment: OMPI_COMM_WORLD_LOCAL_SIZE, MPI_LOCALNRANKS,
// SLURM_NTASKS_PER_NODE; 1 when none is set).
size_t sc_memory_budget_default(void);
int sc_local_ranks(void);
// "16G", "800M", "1.5T", "123456" (bytes) -> bytes; 0 + error when malformed or zero.
sc_status sc_parse_size(const char *s, size_t *out);

// Convenience: n floats of backend memory.
static inline sc_status sc_backend_alloc_floats(sc_backend *be, size_t n, const char *what, float **out) {
    return be->op->alloc(be, n * sizeof(float), what, (void **)out);
}

#endif
