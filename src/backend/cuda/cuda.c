// cuda.c — the CUDA backend: one GPU per rank (the node-local rank's, modulo the GPUs
// visible), one stream, device memory through the CUDA runtime (cudart, linked statically: a
// binary built with CUDA starts on a machine without a GPU driver and only this backend's
// creation fails there, with a message; cuBLASLt is opened with dlopen then), BF16 weights resident on the device, GEMMs through
// cuBLASLt, attention through cuDNN's fused flash attention where it fits (sdpa.c: sequences
// starting at position 0, head dims a multiple of 8 up to 256; libcudnn.so.9 opened with dlopen,
// its absence only turns that path off; $SC_CUDA_SDPA=0 turns it off too), and the rest in
// kernels.cu (the own attention kernels for the KV-cache decode step and whatever cuDNN refuses).
//
// Precision of the GEMMs against weights: a BF16 weight stays BF16 on the device; the FP32
// activations are rounded to BF16 (round to nearest even) for the product, which accumulates
// in FP32 (CUBLAS_COMPUTE_32F) into an FP32 output. An F32 weight (small test models) stays
// F32 and its product is plain FP32 (no TF32). The adapter's small products are FP32 too.
// The cuBLASLt algorithm is chosen once per shape (and pointer alignment) and kept; split-K
// reductions that add into the output in place (atomics: run-to-run differences) are excluded.
//
// Host index arrays (positions, rows, ids, targets, uniforms) are copied into the device
// workspace before each op; per-row outputs (loss terms, sampled ids) are copied back and
// the op waits for them. Sampling runs on the device, all of it: greedy, plain temperature,
// and top-k / top-p (kernels.cu, k_sample_sorted: the CPU sampler's candidate order and sums,
// without sorting the row; sample_select.h says where the result may differ from the CPU's).
#include "../backend_internal.h"
#include "cuda_kernels.h"
#include "sdpa.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// cuBLASLt is opened with dlopen when a CUDA backend is created, not linked: loading the
// 500 MB library at every start of the program took about a second (relocations), on CPU runs too.
#define LT_FUNCS(X) X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtMatmulDescCreate) X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute) X(cublasLtMatrixLayoutCreate) X(cublasLtMatrixLayoutDestroy) X(cublasLtMatmulPreferenceCreate) X(cublasLtMatmulPreferenceDestroy) X(cublasLtMatmulPreferenceSetAttribute) X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmul)
#define LT_PTR(f) static __typeof__(f) *p_##f;
LT_FUNCS(LT_PTR)

static sc_status lt_load(void) {
    static void *lib;
    if (lib) return SC_OK;
    void *h = dlopen("libcublasLt.so.13", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libcublasLt.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) return sc_errorf(SC_ERR_LIB, "cuda backend: cannot open libcublasLt.so.13 (%s): install the CUDA 13 toolkit's cuBLAS or add its lib folder to LD_LIBRARY_PATH", dlerror());
#define LT_SYM(f) { void *s_ = dlsym(h, #f); if (!s_) { dlclose(h); return sc_errorf(SC_ERR_LIB, "cuda backend: libcublasLt lacks %s: install CUDA 13's cuBLAS", #f); } memcpy(&p_##f, &s_, sizeof s_); }
    LT_FUNCS(LT_SYM)
#undef LT_SYM
    lib = h;
    return SC_OK;
}

#define LT_WORKSPACE ((size_t)32 << 20)
#define LT_PLANS 256
#define STAGE_BYTES ((size_t)64 << 20)
#define RING_BYTES ((size_t)8 << 20)   // pinned ring for the ops' small host arrays

typedef struct {
    int ta, tb, ab_bf16, beta1;
    int64_t m, n, k, lda, ldb, ldc;
    int align_a, align_b, align_c;
} lt_key;

typedef struct {
    lt_key key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    int fallback;              // cuBLASLt has no algorithm for this shape: sc_cu_gemm_fallback
} lt_plan;

typedef struct { void *p; size_t bytes; } live_block;

typedef struct {
    int dev;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_ws;
    lt_plan plans[LT_PLANS];
    int n_plans;
    live_block *live;          // open-addressing table of live allocations (pointer -> bytes)
    size_t live_cap, live_n;
    int force_fallback;        // $SC_CUDA_GEMM_FALLBACK=1: every GEMM through the plain loops (tests)
    sc_sdpa *sdpa;             // cuDNN's fused attention (NULL: off, $SC_CUDA_SDPA=0, or no cuDNN)
    uint64_t sdpa_runs[2], own_runs[2];   // attention forward [0] / backward [1] calls by path
    char *ring;                // pinned host memory: index arrays are copied here, then to the GPU
    size_t ring_off;           // next free byte; wrapping waits for the stream (rare)
    int graphs;                // $SC_CUDA_GRAPHS=1: op->graph_begin records (decode steps, generate.c)
    int recording;             // between graph_begin and graph_end
    int graph_failures;        // recordings that failed; graphs go off after GRAPH_MAX_FAILURES
    cudaGraphExec_t exec;      // the last graph, updated in place when the next has its shape
    char name[160];
} cuda_impl;

static cuda_impl *impl_of(sc_backend *be) { return (cuda_impl *)be->impl; }

static sc_status cu_fail(cudaError_t e, const char *what) {
    return sc_errorf(SC_ERR_LIB, "cuda backend: %s failed: %s (%s); if the GPU is in a bad state, check nvidia-smi, or run with --device cpu",
                     what, cudaGetErrorString(e), cudaGetErrorName(e));
}
#define CU(call, what) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) return cu_fail(e_, what); } while (0)

static sc_status lt_fail(cublasStatus_t s, const char *what) {
    return sc_errorf(SC_ERR_LIB, "cuda backend: cuBLASLt %s failed with status %d; check the CUDA toolkit and driver versions (README, \"GPU\")",
                     what, (int)s);
}
#define LT(call, what) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) return lt_fail(s_, what); } while (0)

// --- Memory: cudaMalloc, counted; a table of live blocks gives free() their sizes -------------------

static size_t live_slot(const cuda_impl *ci, const void *p) {
    size_t h = ((uintptr_t)p >> 8) * 0x9E3779B97F4A7C15ull;
    return h & (ci->live_cap - 1);
}

static sc_status live_put(cuda_impl *ci, void *p, size_t bytes) {
    if ((ci->live_n + 1) * 2 > ci->live_cap) {   // grow to keep the load under 1/2
        size_t ncap = ci->live_cap ? ci->live_cap * 2 : 1024;
        live_block *old = ci->live, *nt = calloc(ncap, sizeof *nt);
        if (!nt) return sc_errorf(SC_ERR_MEM, "cuda backend: out of host memory for the allocation table");
        size_t ocap = ci->live_cap;
        ci->live = nt;
        ci->live_cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].p) {
                size_t s = live_slot(ci, old[i].p);
                while (nt[s].p) s = (s + 1) & (ncap - 1);
                nt[s] = old[i];
            }
        free(old);
    }
    size_t s = live_slot(ci, p);
    while (ci->live[s].p) s = (s + 1) & (ci->live_cap - 1);
    ci->live[s].p = p;
    ci->live[s].bytes = bytes;
    ci->live_n++;
    return SC_OK;
}

static size_t live_take(cuda_impl *ci, void *p) {
    if (!ci->live_cap) return 0;
    size_t s = live_slot(ci, p);
    while (ci->live[s].p && ci->live[s].p != p) s = (s + 1) & (ci->live_cap - 1);
    if (!ci->live[s].p) return 0;
    size_t bytes = ci->live[s].bytes;
    // remove with backward-shift deletion so probes stay unbroken
    size_t i = s;
    for (;;) {
        ci->live[i].p = NULL;
        size_t j = i;
        for (;;) {
            j = (j + 1) & (ci->live_cap - 1);
            if (!ci->live[j].p) { ci->live_n--; return bytes; }
            size_t home = live_slot(ci, ci->live[j].p);
            // j's entry may move to i when its home is not cyclically in (i, j]
            if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) break;
        }
        ci->live[i] = ci->live[j];
        i = j;
    }
}

static sc_status cu_alloc(sc_backend *be, size_t bytes, const char *what, void **out) {
    cuda_impl *ci = impl_of(be);
    *out = NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return sc_errorf(SC_ERR_MEM, "cuda backend: out of GPU memory allocating %.1f MiB for %s (%.1f MiB held by this backend, %.1f MiB free of %.1f MiB "
                         "on the GPU): lower the batch size or sequence lengths, or use more ranks",
                         bytes / 1048576.0, what, be->stats.bytes_live / 1048576.0, fr / 1048576.0, tot / 1048576.0);
    }
    sc_status st = live_put(ci, p, bytes);
    if (st) { cudaFree(p); return st; }
    be->stats.n_alloc++;
    be->stats.bytes_live += bytes;
    if (be->stats.bytes_live > be->stats.bytes_peak) be->stats.bytes_peak = be->stats.bytes_live;
    *out = p;
    return SC_OK;
}

static void cu_free(sc_backend *be, void *p) {
    if (!p) return;
    cuda_impl *ci = impl_of(be);
    cudaStreamSynchronize(ci->stream);   // kernels still queued may use it
    be->stats.n_free++;
    be->stats.bytes_live -= live_take(ci, p);
    cudaFree(p);
}

// The caller may free or change its host array as soon as upload returns: wait for the copy
// (uploads are rare: parameters, checkpoints, directions; the ops' index arrays go through stage()).
static sc_status cu_upload(sc_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return SC_OK;
    CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, impl_of(be)->stream), "copying host memory to the GPU");
    CU(cudaStreamSynchronize(impl_of(be)->stream), "waiting for a copy to the GPU");
    return SC_OK;
}
static sc_status cu_download(sc_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return SC_OK;
    CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, impl_of(be)->stream), "copying GPU memory to the host");
    CU(cudaStreamSynchronize(impl_of(be)->stream), "waiting for a copy from the GPU");
    return SC_OK;
}
static sc_status cu_copy(sc_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return SC_OK;
    CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, impl_of(be)->stream), "copying within the GPU");
    return SC_OK;
}
static sc_status cu_memset(sc_backend *be, void *dst, int byte, size_t bytes) {
    if (!bytes) return SC_OK;
    CU(cudaMemsetAsync(dst, byte, bytes, impl_of(be)->stream), "clearing GPU memory");
    return SC_OK;
}
static sc_status cu_sync(sc_backend *be) {
    CU(cudaStreamSynchronize(impl_of(be)->stream), "waiting for the GPU");
    return SC_OK;
}

// --- Pinned host memory, queued copies and events (messages between pipeline stages) ---------------

static sc_status cu_host_alloc(sc_backend *be, size_t bytes, const char *what, void **out) {
    (void)be;
    *out = NULL;
    cudaError_t e = cudaHostAlloc(out, bytes ? bytes : 1, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *out = NULL;
        return sc_errorf(SC_ERR_MEM, "cuda backend: cannot allocate %.1f MiB of pinned host memory for %s (%s): the node's locked-memory "
                         "limit (ulimit -l) or its memory is exhausted; lower the batch size or use fewer ranks per node",
                         bytes / 1048576.0, what, cudaGetErrorString(e));
    }
    return SC_OK;
}
static void cu_host_free(sc_backend *be, void *p) {
    if (!p) return;
    cudaStreamSynchronize(impl_of(be)->stream);   // a queued copy may still read or write it
    cudaFreeHost(p);
}
static sc_status cu_download_async(sc_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return SC_OK;
    CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, impl_of(be)->stream), "queueing a copy from the GPU");
    return SC_OK;
}
static sc_status cu_upload_async(sc_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return SC_OK;
    CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, impl_of(be)->stream), "queueing a copy to the GPU");
    return SC_OK;
}
static sc_status cu_event_create(sc_backend *be, void **ev) {
    (void)be;
    cudaEvent_t e = NULL;
    CU(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event");
    *ev = e;
    return SC_OK;
}
static void cu_event_destroy(sc_backend *be, void *ev) { (void)be; if (ev) cudaEventDestroy((cudaEvent_t)ev); }
static sc_status cu_event_record(sc_backend *be, void *ev) {
    CU(cudaEventRecord((cudaEvent_t)ev, impl_of(be)->stream), "recording an event");
    return SC_OK;
}
static sc_status cu_event_wait(sc_backend *be, void *ev) {
    (void)be;
    CU(cudaEventSynchronize((cudaEvent_t)ev), "waiting for an event");
    return SC_OK;
}
static sc_status cu_event_query(sc_backend *be, void *ev, int *done) {
    (void)be;
    const cudaError_t e = cudaEventQuery((cudaEvent_t)ev);
    *done = e == cudaSuccess;
    if (e == cudaErrorNotReady) { (void)cudaGetLastError(); return SC_OK; }
    CU(e, "querying an event");
    return SC_OK;
}

// A host array into the device workspace (released with the op's arena mark), through the
// pinned ring so that the copy is asynchronous and the caller may reuse its array at once: the
// ring's bytes are reused only after the stream has passed their copies (a wrap waits for it).
static sc_status stage(sc_backend *be, const void *host, size_t bytes, const char *what, void **out) {
    cuda_impl *ci = impl_of(be);
    *out = sc_arena_alloc(&be->ws, bytes ? bytes : 1, what);
    if (!*out) return SC_ERR_MEM;
    if (!bytes) return SC_OK;
    const size_t need = (bytes + 63) / 64 * 64;
    if ((!ci->ring || need > RING_BYTES) && ci->recording)   // the waited copy below would synchronize the capturing stream
        return sc_errorf(SC_ERR_INTERNAL, "cuda backend: %s (%.1f MiB) is too large for the staging ring while recording a graph", what,
                         bytes / 1048576.0);
    if (!ci->ring || need > RING_BYTES) return cu_upload(be, *out, host, bytes);   // too large for the ring: a waited copy
    if (ci->recording && ci->ring_off + need > RING_BYTES)   // a wrap would wait for the stream: not while recording
        return sc_errorf(SC_ERR_INTERNAL, "cuda backend: the staging ring is full while recording a graph");
    if (ci->ring_off + need > RING_BYTES) {
        CU(cudaStreamSynchronize(ci->stream), "waiting for the GPU (staging ring)");
        ci->ring_off = 0;
    }
    char *slot = ci->ring + ci->ring_off;
    ci->ring_off += need;
    memcpy(slot, host, bytes);
    CU(cudaMemcpyAsync(*out, slot, bytes, cudaMemcpyHostToDevice, ci->stream), "copying an index array to the GPU");
    return SC_OK;
}

// --- Weights: BF16 (or F32) copies on the device through two pinned staging buffers ---------------

static void cu_weights_release(sc_backend *be, sc_mat *const *mats, size_t n) {
    for (size_t i = 0; i < n; i++) {
        cu_free(be, mats[i]->prepared);
        mats[i]->prepared = NULL;
    }
}

static sc_status cu_weights_prepare(sc_backend *be, sc_mat *const *mats, size_t n) {
    cuda_impl *ci = impl_of(be);
    size_t need = 0;
    for (size_t i = 0; i < n; i++)
        if (!mats[i]->prepared) need += (size_t)(mats[i]->rows * mats[i]->cols) * sc_dtype_size(mats[i]->dtype);
    if (!need) return SC_OK;
    size_t fr = 0, tot = 0;
    CU(cudaMemGetInfo(&fr, &tot), "querying GPU memory");
    if (need > fr)
        return sc_errorf(SC_ERR_MEM, "cuda backend: the weights need %.2f GiB on the GPU but %.2f GiB of %.2f GiB are free: use a GPU with more memory, "
                         "split the model over pipeline ranks, or use --device cpu", need / 1073741824.0, fr / 1073741824.0, tot / 1073741824.0);
    void *pin[2] = {NULL, NULL};
    cudaEvent_t done[2] = {NULL, NULL};
    sc_status st = SC_OK;
    cudaError_t e = cudaHostAlloc(&pin[0], STAGE_BYTES, cudaHostAllocDefault);
    if (e == cudaSuccess) e = cudaHostAlloc(&pin[1], STAGE_BYTES, cudaHostAllocDefault);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&done[0], cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&done[1], cudaEventDisableTiming);
    if (e != cudaSuccess) st = cu_fail(e, "allocating pinned staging buffers for the weights");
    int turn = 0, used[2] = {0, 0};
    for (size_t i = 0; i < n && !st; i++) {
        sc_mat *w = mats[i];
        if (w->prepared) continue;
        if (w->dtype != SC_DTYPE_BF16 && w->dtype != SC_DTYPE_F32) { st = sc_errorf(SC_ERR_INTERNAL, "weights_prepare: dtype %d", (int)w->dtype); break; }
        const size_t bytes = (size_t)(w->rows * w->cols) * sc_dtype_size(w->dtype);
        void *d = NULL;
        if ((st = cu_alloc(be, bytes, "a weight matrix on the GPU", &d))) break;
        w->prepared = d;
        for (size_t off = 0; off < bytes && !st; off += STAGE_BYTES) {
            const size_t len = bytes - off < STAGE_BYTES ? bytes - off : STAGE_BYTES;
            if (used[turn] && (e = cudaEventSynchronize(done[turn])) != cudaSuccess) { st = cu_fail(e, "staging the weights"); break; }
            memcpy(pin[turn], (const char *)w->data + off, len);   // from the mmap: the only host read
            e = cudaMemcpyAsync((char *)d + off, pin[turn], len, cudaMemcpyHostToDevice, ci->stream);
            if (e == cudaSuccess) e = cudaEventRecord(done[turn], ci->stream);
            if (e != cudaSuccess) { st = cu_fail(e, "copying the weights to the GPU"); break; }
            used[turn] = 1;
            turn ^= 1;
        }
    }
    if (!st && (e = cudaStreamSynchronize(ci->stream)) != cudaSuccess) st = cu_fail(e, "copying the weights to the GPU");
    else if (st) cudaStreamSynchronize(ci->stream);
    for (int i = 0; i < 2; i++) {
        if (done[i]) cudaEventDestroy(done[i]);
        if (pin[i]) cudaFreeHost(pin[i]);
    }
    if (st) cu_weights_release(be, mats, n);
    return st;
}

// --- cuBLASLt: column-major D = alpha op(A) op(B) + beta D, D FP32 ----------------------------------

static int ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && a % (uintptr_t)al) al /= 2;
    return al;
}

static sc_status lt_plan_make(cuda_impl *ci, const lt_key *k, lt_plan *p) {
    memset(p, 0, sizeof *p);
    p->key = *k;
    const cudaDataType ab = k->ab_bf16 ? CUDA_R_16BF : CUDA_R_32F;
    LT(p_cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul descriptor");
    const cublasOperation_t ta = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT(p_cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "transpose attribute");
    LT(p_cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "transpose attribute");
    LT(p_cublasLtMatrixLayoutCreate(&p->la, ab, k->ta ? k->k : k->m, k->ta ? k->m : k->k, k->lda), "layout of A");
    LT(p_cublasLtMatrixLayoutCreate(&p->lb, ab, k->tb ? k->n : k->k, k->tb ? k->k : k->n, k->ldb), "layout of B");
    LT(p_cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32F, k->m, k->n, k->ldc), "layout of C");
    cublasLtMatmulPreference_t pref;
    LT(p_cublasLtMatmulPreferenceCreate(&pref), "preference");
    size_t wsb = LT_WORKSPACE;
    uint32_t red = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    uint32_t al[3] = {(uint32_t)k->align_a, (uint32_t)k->align_b, (uint32_t)k->align_c};
    cublasStatus_t s = p_cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    if (!s) s = p_cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red);
    if (!s) s = p_cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof al[0]);
    if (!s) s = p_cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof al[1]);
    if (!s) s = p_cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof al[2]);
    if (!s) s = p_cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], sizeof al[2]);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (!s && ci->force_fallback) {
        p_cublasLtMatmulPreferenceDestroy(pref);
        p->fallback = 1;
        return SC_OK;
    }
    if (!s) {
        s = p_cublasLtMatmulAlgoGetHeuristic(ci->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &found);
        if (s == CUBLAS_STATUS_NOT_SUPPORTED) { s = CUBLAS_STATUS_SUCCESS; found = 0; }
    }
    p_cublasLtMatmulPreferenceDestroy(pref);
    if (s) return lt_fail(s, "algorithm search");
    if (!found) {   // e.g. BF16 with an odd leading dimension: plain loops, said once per shape
        sc_log(SC_LOG_DEBUG, "cuda backend: cuBLASLt has no algorithm for a %s GEMM m=%lld n=%lld k=%lld (lda %lld, ldb %lld): using plain loops",
               k->ab_bf16 ? "BF16" : "FP32", (long long)k->m, (long long)k->n, (long long)k->k, (long long)k->lda, (long long)k->ldb);
        p->fallback = 1;
        return SC_OK;
    }
    p->algo = res.algo;
    return SC_OK;
}

static void lt_plan_free(lt_plan *p) {
    if (p->la) p_cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb) p_cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc) p_cublasLtMatrixLayoutDestroy(p->lc);
    if (p->desc) p_cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof *p);
}

static sc_status lt_gemm(sc_backend *be, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *A, int64_t lda,
                         const void *B, int64_t ldb, float *C, int64_t ldc, float beta, int bf16) {
    cuda_impl *ci = impl_of(be);
    if (m <= 0 || n <= 0) return SC_OK;
    if (k <= 0) {   // an empty sum: D = beta D
        if (beta == 0.0f) {
            for (int64_t j = 0; j < n; j++) SC_TRY(cu_memset(be, C + j * ldc, 0, sizeof(float) * (size_t)m));
        }
        return SC_OK;
    }
    lt_key key;
    memset(&key, 0, sizeof key);
    key.ta = ta; key.tb = tb; key.ab_bf16 = bf16; key.beta1 = beta != 0.0f;
    key.m = m; key.n = n; key.k = k; key.lda = lda; key.ldb = ldb; key.ldc = ldc;
    key.align_a = ptr_align(A); key.align_b = ptr_align(B); key.align_c = ptr_align(C);
    lt_plan *p = NULL, tmp;
    for (int i = 0; i < ci->n_plans; i++)
        if (!memcmp(&ci->plans[i].key, &key, sizeof key)) { p = &ci->plans[i]; break; }
    if (!p) {
        p = ci->n_plans < LT_PLANS ? &ci->plans[ci->n_plans] : &tmp;
        sc_status st = lt_plan_make(ci, &key, p);
        if (st) { lt_plan_free(p); return st; }
        if (p != &tmp) ci->n_plans++;
    }
    if (p->fallback) {
        cudaError_t e = sc_cu_gemm_fallback(ci->stream, ta, tb, m, n, k, A, lda, B, ldb, C, ldc, beta, bf16);
        if (p == &tmp) lt_plan_free(&tmp);
        if (e != cudaSuccess) return cu_fail(e, "the fallback GEMM kernel");
        return SC_OK;
    }
    const float alpha = 1.0f;
    cublasStatus_t s = p_cublasLtMatmul(ci->lt, p->desc, &alpha, A, p->la, B, p->lb, &beta, C, p->lc, C, p->lc, &p->algo,
                                      ci->lt_ws, LT_WORKSPACE, ci->stream);
    if (p == &tmp) lt_plan_free(&tmp);
    if (s) return lt_fail(s, "matmul");
    return SC_OK;
}

// Row-major C[M,N] = op(A)[M,K] op(B)[K,N] (+ beta C), FP32: the column-major product C^T = op(B)^T op(A)^T.
static sc_status sgemm_rm(sc_backend *be, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                          float beta, float *C, int ldc) {
    return lt_gemm(be, tb, ta, N, M, K, B, ldb, A, lda, C, ldc, beta, 0);
}

static sc_status need_prepared(const sc_mat *W, const char *op) {
    if (W->prepared) return SC_OK;
    return sc_errorf(SC_ERR_INTERNAL, "cuda backend: %s on a %lldx%lld weight that is not on the GPU (op->weights_prepare was not called for it)",
                     op, (long long)W->rows, (long long)W->cols);
}

// BF16 copy of n floats in the workspace
static sc_status to_bf16(sc_backend *be, const float *x, int64_t n, uint16_t **out) {
    *out = sc_arena_alloc(&be->ws, sizeof(uint16_t) * (size_t)n, "BF16 activations for a GEMM");
    if (!*out) return SC_ERR_MEM;
    CU(sc_cu_f32_to_bf16(impl_of(be)->stream, *out, x, n), "rounding activations to BF16");
    return SC_OK;
}

static sc_status cu_matmul(sc_backend *be, float *out, const float *x, const sc_mat *W, const float *bias, int T) {
    if (T <= 0) return SC_OK;
    SC_TRY(need_prepared(W, "matmul"));
    const int64_t N = W->rows, K = W->cols;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    sc_status st;
    if (W->dtype == SC_DTYPE_BF16) {
        uint16_t *xb = NULL;
        st = to_bf16(be, x, (int64_t)T * K, &xb);
        if (!st) st = lt_gemm(be, 1, 0, N, T, K, W->prepared, K, xb, K, out, N, 0.0f, 1);
    } else {
        st = lt_gemm(be, 1, 0, N, T, K, W->prepared, K, x, K, out, N, 0.0f, 0);
    }
    sc_arena_reset(&be->ws, mk);
    if (!st && bias) CU(sc_cu_add_bias(impl_of(be)->stream, out, bias, T, N), "adding the bias");
    return st;
}

static sc_status cu_matmul_dx(sc_backend *be, float *dx, const float *dy, const sc_mat *W, int T, int accumulate) {
    if (T <= 0) return SC_OK;
    SC_TRY(need_prepared(W, "matmul_dx"));
    const int64_t N = W->rows, K = W->cols;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    sc_status st;
    if (W->dtype == SC_DTYPE_BF16) {
        uint16_t *db = NULL;
        st = to_bf16(be, dy, (int64_t)T * N, &db);
        if (!st) st = lt_gemm(be, 0, 0, K, T, N, W->prepared, K, db, N, dx, K, accumulate ? 1.0f : 0.0f, 1);
    } else {
        st = lt_gemm(be, 0, 0, K, T, N, W->prepared, K, dy, N, dx, K, accumulate ? 1.0f : 0.0f, 0);
    }
    sc_arena_reset(&be->ws, mk);
    return st;
}

// --- Rows ---------------------------------------------------------------------------------------------

static sc_status cu_embed(sc_backend *be, float *out, const sc_mat *E, const int32_t *ids, int T) {
    if (T <= 0) return SC_OK;
    SC_TRY(need_prepared(E, "embed"));
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= E->rows)
            return sc_errorf(SC_ERR_ARG, "embed: token id %d (row %d) is outside the vocabulary [0,%lld)", ids[t], t, (long long)E->rows);
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    void *d = NULL;
    sc_status st = stage(be, ids, sizeof(int32_t) * (size_t)T, "token ids", &d);
    cudaError_t e = st ? cudaSuccess : sc_cu_embed(impl_of(be)->stream, out, E->prepared, E->dtype == SC_DTYPE_BF16, d, T, E->cols);
    sc_arena_reset(&be->ws, mk);
    if (e != cudaSuccess) return cu_fail(e, "the embedding kernel");
    return st;
}

static sc_status cu_gather_rows(sc_backend *be, float *out, const float *x, const int *rows, int n, int C) {
    if (n <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    void *d = NULL;
    sc_status st = stage(be, rows, sizeof(int) * (size_t)n, "row list", &d);
    cudaError_t e = st ? cudaSuccess : sc_cu_gather_rows(impl_of(be)->stream, out, x, d, n, C);
    sc_arena_reset(&be->ws, mk);
    if (e != cudaSuccess) return cu_fail(e, "the gather kernel");
    return st;
}

static sc_status cu_scatter_add_rows(sc_backend *be, float *y, const float *x, const int *rows, int n, int C) {
    if (n <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    void *d = NULL;
    sc_status st = stage(be, rows, sizeof(int) * (size_t)n, "row list", &d);
    cudaError_t e = st ? cudaSuccess : sc_cu_scatter_add_rows(impl_of(be)->stream, y, x, d, n, C);
    sc_arena_reset(&be->ws, mk);
    if (e != cudaSuccess) return cu_fail(e, "the scatter-add kernel");
    return st;
}

static sc_status cu_add(sc_backend *be, float *y, const float *x, int64_t n) {
    CU(sc_cu_add(impl_of(be)->stream, y, x, n), "the add kernel");
    return SC_OK;
}
static sc_status cu_add_row(sc_backend *be, float *h, const float *v, float scale, int T, int C) {
    CU(sc_cu_add_row(impl_of(be)->stream, h, v, scale, T, C), "the add-row kernel");
    return SC_OK;
}
static sc_status cu_col_sum(sc_backend *be, double *acc, const float *h, int T, int C) {
    CU(sc_cu_col_sum(impl_of(be)->stream, acc, h, T, C), "the column-sum kernel");
    return SC_OK;
}

// --- Block maths ------------------------------------------------------------------------------------

static sc_status cu_rmsnorm(sc_backend *be, float *out, float *rstd, const float *x, const float *w, int T, int C, float eps) {
    CU(sc_cu_rmsnorm(impl_of(be)->stream, out, rstd, x, w, T, C, eps), "the RMSNorm kernel");
    return SC_OK;
}
static sc_status cu_rmsnorm_backward(sc_backend *be, float *dx, const float *dout, const float *x, const float *w, const float *rstd,
                                     int T, int C, int accumulate) {
    CU(sc_cu_rmsnorm_backward(impl_of(be)->stream, dx, dout, x, w, rstd, T, C, accumulate), "the RMSNorm backward kernel");
    return SC_OK;
}
static sc_status cu_rope(sc_backend *be, float *x, const int *pos, int T, int H, int HD, float theta, int inverse) {
    if (HD % 2 || HD > 1024) return sc_errorf(SC_ERR_SHAPE, "rope: head dim %d must be even and at most 1024", HD);
    if (T <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    void *d = NULL;
    sc_status st = stage(be, pos, sizeof(int) * (size_t)T, "positions", &d);
    cudaError_t e = st ? cudaSuccess : sc_cu_rope(impl_of(be)->stream, x, d, T, H, HD, theta, inverse);
    sc_arena_reset(&be->ws, mk);
    if (e != cudaSuccess) return cu_fail(e, "the RoPE kernel");
    return st;
}
static sc_status cu_swiglu(sc_backend *be, float *out, const float *g, const float *u, int64_t n) {
    CU(sc_cu_swiglu(impl_of(be)->stream, out, g, u, n), "the SwiGLU kernel");
    return SC_OK;
}
static sc_status cu_swiglu_backward(sc_backend *be, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    CU(sc_cu_swiglu_backward(impl_of(be)->stream, dg, du, dout, g, u, n), "the SwiGLU backward kernel");
    return SC_OK;
}

// --- Attention and the KV cache ---------------------------------------------------------------------

static sc_status cu_kv_write(sc_backend *be, float *ck, float *cv, const float *k, const float *v, const sc_attn_layout *lay, int KD) {
    const int T = lay->q_start[lay->n_seq];
    if (T <= 0) return SC_OK;
    sc_arena_mark mh = sc_arena_mark_get(&be->host), mk = sc_arena_mark_get(&be->ws);
    int64_t *dst = sc_arena_alloc(&be->host, sizeof(int64_t) * (size_t)T, "KV destinations");
    if (!dst) return SC_ERR_MEM;
    for (int s = 0; s < lay->n_seq; s++)
        for (int t = lay->q_start[s]; t < lay->q_start[s + 1]; t++)
            dst[t] = lay->kv_off[s] + (int64_t)(lay->pos0[s] + t - lay->q_start[s]) * lay->kv_stride;
    void *d = NULL;
    sc_status st = stage(be, dst, sizeof(int64_t) * (size_t)T, "KV destinations", &d);
    cudaError_t e = st ? cudaSuccess : sc_cu_kv_write(impl_of(be)->stream, ck, cv, k, v, d, T, KD);
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    if (e != cudaSuccess) return cu_fail(e, "the KV-cache write kernel");
    return st;
}

static sc_status check_heads(int NH, int KVH, int HD, const char *op) {
    if (NH <= 0 || KVH <= 0 || NH % KVH || HD <= 0 || HD > 256)
        return sc_errorf(SC_ERR_SHAPE, "%s: %d query heads over %d KV heads of dim %d: the CUDA kernel needs whole groups and head dim <= 256",
                         op, NH, KVH, HD);
    return SC_OK;
}

// --- Attention through cuDNN (sdpa.c) ----------------------------------------------------------------
// Where every sequence starts at position 0 (prefill, the teacher-forced training pass) and the
// head dim suits cuDNN (a multiple of 8, at most 256), attention runs as cuDNN's fused flash
// attention on BF16 copies of q, k, v: the packed rows go into a padded [B, S, heads, HD] layout
// (S = the longest sequence rounded up to 128, so one plan serves many batches; padding rows are
// zeros: a causal row never sees a later padding key, and padding rows' own results are dropped),
// and the results come back to FP32 rows. The decode step (pos0 > 0) and any shape cuDNN has no
// engine for run the own kernels (kernels.cu). The softmax statistics are the same natural-log
// log-sum-exp either way, so a forward on one path and a backward on the other agree.

#define SDPA_WHY 400

static int sdpa_shape(const cuda_impl *ci, const int *q_start, const int *pos0, int n_seq, int NH, int KVH, int HD, sc_sdpa_shape *sh) {
    // not while a CUDA graph is recorded: building a plan or running cuDNN under stream capture
    // may fail, and a failure turns cuDNN off for the run (decode steps, the only recorded ones, never come here)
    if (!ci->sdpa || ci->recording || HD % 8 || HD > 256 || n_seq <= 0) return 0;
    int maxlen = 0;
    for (int b = 0; b < n_seq; b++) {
        if (pos0 && pos0[b] != 0) return 0;
        const int len = q_start[b + 1] - q_start[b];
        if (len > maxlen) maxlen = len;
    }
    if (maxlen <= 0) return 0;
    sh->B = n_seq;
    sh->S = (maxlen + 127) / 128 * 128;   // a multiple of 128: cuDNN's backward before 9.16 needs it without a padding mask
    sh->NH = NH;
    sh->KVH = KVH;
    sh->HD = HD;
    return 1;
}

// 1 when cuDNN has a plan for the shape (its workspace bytes in *ws), 0 when the own kernel
// runs it (the first time for a shape, one line to stderr says why)
static int sdpa_ready(cuda_impl *ci, int bwd, const sc_sdpa_shape *sh, size_t *ws) {
    char why[SDPA_WHY] = "";
    const int r = sc_sdpa_plan(ci->sdpa, bwd, sh, ws, why, sizeof why);
    if (r < 0)
        fprintf(stderr, "cuda backend: %s has no fused attention %s engine for B=%d S=%d heads %d/%d HD=%d (%s); the own kernel runs this shape\n",
                sc_sdpa_version(ci->sdpa), bwd ? "backward" : "forward", sh->B, sh->S, sh->NH, sh->KVH, sh->HD, why);
    return r == 1;
}

// Arena scratch for the cuDNN path; NULL when the workspace cannot grow (the caller falls back
// to the own kernel, which needs far less).
static void *sdpa_scratch(sc_backend *be, size_t bytes, const char *what, int *short_of_memory) {
    if (*short_of_memory) return NULL;
    void *p = sc_arena_alloc(&be->ws, bytes ? bytes : 1, what);
    if (!p) *short_of_memory = 1;
    return p;
}

// The maps between packed rows and padded rows: q_off/kv_off (float offsets of padded row
// b*S+p in q and in k/v, -1 for padding), row_of[t] (the padded row of packed row t), row_t
// (the packed row of a padded row, -1 for padding; NULL: not wanted).
static void sdpa_maps(const sc_sdpa_shape *sh, const int *q_start, const int64_t *kv_off, int64_t kv_stride, int QD,
                      int64_t *q_off, int64_t *kvo, int *row_of, int *row_t) {
    for (int b = 0; b < sh->B; b++) {
        const int len = q_start[b + 1] - q_start[b];
        for (int p = 0; p < sh->S; p++) {
            const int64_t r = (int64_t)b * sh->S + p;
            const int in = p < len;
            q_off[r] = in ? (int64_t)(q_start[b] + p) * QD : -1;
            kvo[r] = in ? kv_off[b] + (int64_t)p * kv_stride : -1;
            if (row_t) row_t[r] = in ? q_start[b] + p : -1;
            if (in) row_of[q_start[b] + p] = (int)r;
        }
    }
}

// An execution cuDNN refused after its plan was made: said once, and the own kernels take over.
static void sdpa_failed(cuda_impl *ci) {
    fprintf(stderr, "%s\ncuda backend: cuDNN's fused attention is off for the rest of this run; the own kernels run attention\n", sc_last_error());
    sc_error_clear();
    sc_sdpa_close(ci->sdpa);
    ci->sdpa = NULL;
}

// 1: attention ran through cuDNN; 0: it did not (not eligible, no engine, no memory): the
// caller runs the own kernel; *st: an error of the copies around it
static int sdpa_forward(sc_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                        const sc_attn_layout *lay, int NH, int KVH, int HD, sc_status *st) {
    cuda_impl *ci = impl_of(be);
    sc_sdpa_shape sh;
    size_t wsb = 0;
    *st = SC_OK;
    if (!sdpa_shape(ci, lay->q_start, lay->pos0, lay->n_seq, NH, KVH, HD, &sh) || !sdpa_ready(ci, 0, &sh, &wsb)) return 0;
    const int T = lay->q_start[lay->n_seq], QD = NH * HD, KD = KVH * HD;
    const int64_t R = (int64_t)sh.B * sh.S;
    sc_arena_mark mh = sc_arena_mark_get(&be->host), mk = sc_arena_mark_get(&be->ws);
    int64_t *q_off = sc_arena_alloc(&be->host, sizeof(int64_t) * 2 * (size_t)R, "attention row maps");
    int *row_of = SC_ARENA_INTS(&be->host, T, "attention row maps");
    if (!q_off || !row_of) { sc_arena_reset(&be->host, mh); *st = SC_ERR_MEM; return 1; }
    sdpa_maps(&sh, lay->q_start, lay->kv_off, lay->kv_stride, QD, q_off, q_off + R, row_of, NULL);
    int oom = 0;
    uint16_t *qb = sdpa_scratch(be, 2 * (size_t)R * QD, "cuDNN attention q", &oom), *ob = sdpa_scratch(be, 2 * (size_t)R * QD, "cuDNN attention out", &oom);
    uint16_t *kb = sdpa_scratch(be, 2 * (size_t)R * KD, "cuDNN attention k", &oom), *vb = sdpa_scratch(be, 2 * (size_t)R * KD, "cuDNN attention v", &oom);
    float *stats = sdpa_scratch(be, sizeof(float) * (size_t)R * NH, "cuDNN attention statistics", &oom);
    void *ws = sdpa_scratch(be, wsb, "cuDNN attention workspace", &oom), *dmap = NULL, *drow = NULL;
    int ran = 0;
    if (!oom) {
        cudaStream_t s = ci->stream;
        cudaError_t e = cudaSuccess;
        *st = stage(be, q_off, sizeof(int64_t) * 2 * (size_t)R, "attention row maps", &dmap);
        if (!*st) *st = stage(be, row_of, sizeof(int) * (size_t)T, "attention row maps", &drow);
        const int64_t *dq_off = dmap, *dkv_off = dq_off ? dq_off + R : NULL;
        if (!*st) e = sc_cu_sdpa_pack(s, qb, q, dq_off, (int)R, QD);
        if (!*st && e == cudaSuccess) e = sc_cu_sdpa_pack(s, kb, k, dkv_off, (int)R, KD);
        if (!*st && e == cudaSuccess) e = sc_cu_sdpa_pack(s, vb, v, dkv_off, (int)R, KD);
        if (!*st && e != cudaSuccess) *st = cu_fail(e, "the cuDNN attention copy-in kernels");
        if (!*st) {
            sc_status r = sc_sdpa_forward(ci->sdpa, &sh, qb, kb, vb, ob, stats, ws);
            if (r) sdpa_failed(ci);
            else {
                ran = 1;
                e = sc_cu_sdpa_unpack(s, out, ob, drow, T, QD);
                if (e == cudaSuccess && lse) e = sc_cu_sdpa_stats_out(s, lse, stats, drow, T, NH, sh.S);
                if (e != cudaSuccess) *st = cu_fail(e, "the cuDNN attention copy-out kernels");
            }
        }
    } else {
        sc_error_clear();
    }
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    if (ran) ci->sdpa_runs[0]++;
    return ran || *st;
}

static int sdpa_backward(sc_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                         const float *q, const float *k, const float *v, const int *q_start, int n_seq, int NH, int KVH, int HD, sc_status *st) {
    cuda_impl *ci = impl_of(be);
    sc_sdpa_shape sh;
    size_t wsb = 0;
    *st = SC_OK;
    if (!sdpa_shape(ci, q_start, NULL, n_seq, NH, KVH, HD, &sh) || !sdpa_ready(ci, 1, &sh, &wsb)) return 0;
    const int T = q_start[n_seq], QD = NH * HD, KD = KVH * HD;
    const int64_t R = (int64_t)sh.B * sh.S;
    sc_arena_mark mh = sc_arena_mark_get(&be->host), mk = sc_arena_mark_get(&be->ws);
    int64_t *q_off = sc_arena_alloc(&be->host, sizeof(int64_t) * 2 * (size_t)R, "attention row maps");
    int *row_of = SC_ARENA_INTS(&be->host, T + R, "attention row maps");
    int64_t *kv_off = sc_arena_alloc(&be->host, sizeof(int64_t) * (size_t)n_seq, "attention row maps");
    if (!q_off || !row_of || !kv_off) { sc_arena_reset(&be->host, mh); *st = SC_ERR_MEM; return 1; }
    for (int b = 0; b < n_seq; b++) kv_off[b] = (int64_t)q_start[b] * KD;   // the batch's own rows
    sdpa_maps(&sh, q_start, kv_off, KD, QD, q_off, q_off + R, row_of, row_of + T);
    int oom = 0;
    const size_t nq = 2 * (size_t)R * QD, nk = 2 * (size_t)R * KD;
    uint16_t *qb = sdpa_scratch(be, nq, "cuDNN attention q", &oom), *ob = sdpa_scratch(be, nq, "cuDNN attention out", &oom);
    uint16_t *dob = sdpa_scratch(be, nq, "cuDNN attention dout", &oom), *dqb = sdpa_scratch(be, nq, "cuDNN attention dq", &oom);
    uint16_t *kb = sdpa_scratch(be, nk, "cuDNN attention k", &oom), *vb = sdpa_scratch(be, nk, "cuDNN attention v", &oom);
    uint16_t *dkb = sdpa_scratch(be, nk, "cuDNN attention dk", &oom), *dvb = sdpa_scratch(be, nk, "cuDNN attention dv", &oom);
    float *stats = sdpa_scratch(be, sizeof(float) * (size_t)R * NH, "cuDNN attention statistics", &oom);
    float *sum = sdpa_scratch(be, sizeof(float) * (size_t)R * NH, "cuDNN attention row sums", &oom);
    // the FP32 dQ accumulator only for the plan that adds into it (not cuDNN's deterministic one)
    const int use_acc = sc_sdpa_backward_uses_acc(ci->sdpa, &sh);
    float *acc = use_acc ? sdpa_scratch(be, sizeof(float) * (size_t)R * QD, "cuDNN attention dq accumulator", &oom) : NULL;
    void *ws = sdpa_scratch(be, wsb, "cuDNN attention workspace", &oom), *dmap = NULL, *drow = NULL;
    int ran = 0;
    if (!oom) {
        cudaStream_t s = ci->stream;
        cudaError_t e = cudaSuccess;
        *st = stage(be, q_off, sizeof(int64_t) * 2 * (size_t)R, "attention row maps", &dmap);
        if (!*st) *st = stage(be, row_of, sizeof(int) * (size_t)(T + R), "attention row maps", &drow);
        const int64_t *dq_off = dmap, *dkv_off = dq_off ? dq_off + R : NULL;
        const int *drow_of = drow, *drow_t = drow_of ? drow_of + T : NULL;
        if (!*st) e = sc_cu_sdpa_pack(s, qb, q, dq_off, (int)R, QD);
        if (!*st && e == cudaSuccess) e = sc_cu_sdpa_pack(s, ob, out, dq_off, (int)R, QD);
        if (!*st && e == cudaSuccess) e = sc_cu_sdpa_pack(s, dob, dout, dq_off, (int)R, QD);
        if (!*st && e == cudaSuccess) e = sc_cu_sdpa_pack(s, kb, k, dkv_off, (int)R, KD);
        if (!*st && e == cudaSuccess) e = sc_cu_sdpa_pack(s, vb, v, dkv_off, (int)R, KD);
        if (!*st && e == cudaSuccess) e = sc_cu_sdpa_stats_in(s, stats, lse, drow_t, sh.B, sh.S, NH);
        if (!*st && e == cudaSuccess && use_acc) e = cudaMemsetAsync(acc, 0, sizeof(float) * (size_t)R * QD, s);   // cuDNN adds into it
        if (!*st && e != cudaSuccess) *st = cu_fail(e, "the cuDNN attention copy-in kernels");
        if (!*st) {
            sc_status r = sc_sdpa_backward(ci->sdpa, &sh, qb, kb, vb, ob, dob, stats, dqb, dkb, dvb, sum, acc, ws);
            if (r) sdpa_failed(ci);
            else {
                ran = 1;
                e = sc_cu_sdpa_unpack(s, dq, dqb, drow_of, T, QD);
                if (e == cudaSuccess) e = sc_cu_sdpa_unpack(s, dk, dkb, drow_of, T, KD);
                if (e == cudaSuccess) e = sc_cu_sdpa_unpack(s, dv, dvb, drow_of, T, KD);
                if (e != cudaSuccess) *st = cu_fail(e, "the cuDNN attention copy-out kernels");
            }
        }
    } else {
        sc_error_clear();
    }
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    if (ran) ci->sdpa_runs[1]++;
    return ran || *st;
}

// For tests and tools: attention calls by path since the backend was made ([0] forward,
// [1] backward) and the cuDNN version in use (NULL when the cuDNN path is off).
const char *sc_cuda_attention_paths(sc_backend *be, uint64_t sdpa_runs[2], uint64_t own_runs[2]) {
    const cuda_impl *ci = impl_of(be);
    memcpy(sdpa_runs, ci->sdpa_runs, sizeof ci->sdpa_runs);
    memcpy(own_runs, ci->own_runs, sizeof ci->own_runs);
    return ci->sdpa ? sc_sdpa_version(ci->sdpa) : NULL;
}

static sc_status cu_attention(sc_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                              const sc_attn_layout *lay, int NH, int KVH, int HD) {
    const int T = lay->q_start[lay->n_seq];
    if (T <= 0) return SC_OK;
    SC_TRY(check_heads(NH, KVH, HD, "attention"));
    sc_status sst = SC_OK;
    if (sdpa_forward(be, out, lse, q, k, v, lay, NH, KVH, HD, &sst)) return sst;
    impl_of(be)->own_runs[0]++;
    sc_arena_mark mh = sc_arena_mark_get(&be->host), mk = sc_arena_mark_get(&be->ws);
    sc_cu_attn_row *rows = sc_arena_alloc(&be->host, sizeof *rows * (size_t)T, "attention rows");
    if (!rows) return SC_ERR_MEM;
    for (int b = 0; b < lay->n_seq; b++)
        for (int t = lay->q_start[b]; t < lay->q_start[b + 1]; t++) {
            rows[t].kv_off = lay->kv_off[b];
            rows[t].n = lay->pos0[b] + (t - lay->q_start[b]) + 1;
            rows[t].s0 = lay->q_start[b];
        }
    void *d = NULL;
    sc_status st = stage(be, rows, sizeof *rows * (size_t)T, "attention rows", &d);
    cudaError_t e = st ? cudaSuccess : sc_cu_attention(impl_of(be)->stream, out, lse, q, k, v, d, T, lay->kv_stride, NH, KVH, HD);
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    if (e != cudaSuccess) return cu_fail(e, "the attention kernel");
    return st;
}

static sc_status cu_attention_backward(sc_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                       const float *lse, const float *q, const float *k, const float *v,
                                       const int *q_start, int n_seq, int NH, int KVH, int HD) {
    const int T = q_start[n_seq];
    if (T <= 0) return SC_OK;
    SC_TRY(check_heads(NH, KVH, HD, "attention backward"));
    sc_status sst = SC_OK;
    if (sdpa_backward(be, dq, dk, dv, dout, out, lse, q, k, v, q_start, n_seq, NH, KVH, HD, &sst)) return sst;
    impl_of(be)->own_runs[1]++;
    sc_arena_mark mh = sc_arena_mark_get(&be->host), mk = sc_arena_mark_get(&be->ws);
    sc_cu_attn_row *rows = sc_arena_alloc(&be->host, sizeof *rows * (size_t)T, "attention rows");
    if (!rows) return SC_ERR_MEM;
    for (int b = 0; b < n_seq; b++)
        for (int t = q_start[b]; t < q_start[b + 1]; t++) {
            rows[t].kv_off = 0;
            rows[t].n = q_start[b + 1] - q_start[b];
            rows[t].s0 = q_start[b];
        }
    void *d = NULL;
    float *D = SC_ARENA_FLOATS(&be->ws, (size_t)T * NH, "attention backward row sums");
    sc_status st = D ? stage(be, rows, sizeof *rows * (size_t)T, "attention rows", &d) : SC_ERR_MEM;
    cudaError_t e = st ? cudaSuccess : sc_cu_attention_backward(impl_of(be)->stream, dq, dk, dv, dout, out, lse, q, k, v, d, T, NH, KVH, HD, D);
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    if (e != cudaSuccess) return cu_fail(e, "the attention backward kernels");
    return st;
}

// --- The adapter: FP32 products through cuBLASLt, norms and the update in kernels ----------------------

static sc_status project(sc_backend *be, const float *h, const float *A, const float *B, int T, int C, int r, float *hA, float *u, float *nrm) {
    SC_TRY(sgemm_rm(be, 0, 0, T, r, C, h, C, A, r, 0.0f, hA, r));   // hA = h A
    SC_TRY(sgemm_rm(be, 0, 0, T, C, r, hA, r, B, C, 0.0f, u, C));   // u = hA B
    CU(sc_cu_row_norms(impl_of(be)->stream, nrm, u, T, C), "the adapter norm kernel");
    return SC_OK;
}

static sc_status cu_adapter_forward(sc_backend *be, float *out, const float *h, const float *A, const float *B,
                                    int T, int C, int r, float scaling, int accumulate) {
    if (T <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    float *hA = SC_ARENA_FLOATS(&be->ws, (size_t)T * r, "adapter h A");
    float *u = SC_ARENA_FLOATS(&be->ws, (size_t)T * C, "adapter update");
    float *nrm = SC_ARENA_FLOATS(&be->ws, T, "adapter norms");
    sc_status st = hA && u && nrm ? project(be, h, A, B, T, C, r, hA, u, nrm) : SC_ERR_MEM;
    cudaError_t e = st ? cudaSuccess : sc_cu_adapter_apply(impl_of(be)->stream, out, u, nrm, T, C, scaling, accumulate);
    sc_arena_reset(&be->ws, mk);
    if (e != cudaSuccess) return cu_fail(e, "the adapter kernel");
    return st;
}

static sc_status cu_adapter_backward(sc_backend *be, float *dh, const float *h, const float *A, const float *B,
                                     float *dA, float *dB, int T, int C, int r, float scaling) {
    if (T <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    float *hA = SC_ARENA_FLOATS(&be->ws, (size_t)T * r, "adapter h A");
    float *u = SC_ARENA_FLOATS(&be->ws, (size_t)T * C, "adapter update");
    float *nrm = SC_ARENA_FLOATS(&be->ws, T, "adapter norms");
    float *du = SC_ARENA_FLOATS(&be->ws, (size_t)T * C, "adapter du");
    float *dhA = SC_ARENA_FLOATS(&be->ws, (size_t)T * r, "adapter d(hA)");
    sc_status st = hA && u && nrm && du && dhA ? project(be, h, A, B, T, C, r, hA, u, nrm) : SC_ERR_MEM;
    cudaError_t e = st ? cudaSuccess : sc_cu_adapter_du(impl_of(be)->stream, du, dh, u, nrm, T, C, scaling);
    if (e != cudaSuccess) st = cu_fail(e, "the adapter backward kernel");
    if (!st) st = sgemm_rm(be, 1, 0, r, C, T, hA, r, du, C, 1.0f, dB, C);    // dB += hA^T du
    if (!st) st = sgemm_rm(be, 0, 1, T, r, C, du, C, B, C, 0.0f, dhA, r);   // dhA = du B^T
    if (!st) st = sgemm_rm(be, 1, 0, C, r, T, h, C, dhA, r, 1.0f, dA, r);   // dA += h^T dhA
    if (!st) st = sgemm_rm(be, 0, 1, T, C, r, dhA, r, A, r, 1.0f, dh, C);   // dh += dhA A^T
    sc_arena_reset(&be->ws, mk);
    return st;
}

// --- Loss, optimizer, sampling --------------------------------------------------------------------------

static sc_status cu_divergence_loss(sc_backend *be, float *lq, const float *lp, const int32_t *targets, int n, int V,
                                    float alpha, float beta, double grad_scale, double *kl, double *nll) {
    if (n <= 0) return SC_OK;
    for (int i = 0; i < n; i++)
        if (targets[i] < 0 || targets[i] >= V)
            return sc_errorf(SC_ERR_INTERNAL, "divergence loss: target %d of row %d is outside the vocabulary [0,%d)", targets[i], i, V);
    sc_arena_mark mk = sc_arena_mark_get(&be->ws), mh = sc_arena_mark_get(&be->host);
    void *dt = NULL;
    double *dkl = sc_arena_alloc(&be->ws, sizeof(double) * 2 * (size_t)n, "loss rows");
    int *dbad = SC_ARENA_INTS(&be->ws, n, "loss row checks");
    int *bad = SC_ARENA_INTS(&be->host, n, "loss row checks");
    sc_status st = dkl && dbad && bad ? stage(be, targets, sizeof(int32_t) * (size_t)n, "targets", &dt) : SC_ERR_MEM;
    if (!st) {
        cudaError_t e = sc_cu_divergence_loss(impl_of(be)->stream, lq, lp, dt, n, V, alpha, beta, grad_scale, dkl, dkl + n, dbad);
        if (e != cudaSuccess) st = cu_fail(e, "the divergence loss kernel");
    }
    if (!st) st = cu_download(be, kl, dkl, sizeof(double) * (size_t)n);
    if (!st) st = cu_download(be, nll, dkl + n, sizeof(double) * (size_t)n);
    if (!st) st = cu_download(be, bad, dbad, sizeof(int) * (size_t)n);
    for (int i = 0; i < n && !st; i++)
        if (bad[i] == 1) st = sc_errorf(SC_ERR_NUMERIC, "divergence loss: the base model's logits of row %d are NaN or infinite: its weights are not finite; check the model files", i);
        else if (bad[i] == 2) st = sc_errorf(SC_ERR_NUMERIC, "divergence loss: the adapted model's logits of row %d are NaN or infinite while the base model's are finite: the adapter diverged; lower lr or scaling", i);
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    return st;
}

static sc_status cu_adamw(sc_backend *be, float *p, const float *g, float *m, float *v, size_t n, const sc_adamw_opts *o, int step) {
    if (step < 1) return sc_errorf(SC_ERR_INTERNAL, "adamw: step %d (steps count from 1)", step);
    const double bc1 = 1.0 - pow(o->beta1, step), bc2 = 1.0 - pow(o->beta2, step);
    CU(sc_cu_adamw(impl_of(be)->stream, p, g, m, v, (int64_t)n, o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, bc1, bc2), "the AdamW kernel");
    return SC_OK;
}

static sc_status cu_sample(sc_backend *be, float *logits, int n, int V, const sc_sampling *s, const float *u, int32_t *ids) {
    if (n <= 0) return SC_OK;
    cuda_impl *ci = impl_of(be);
    const int Vl = s->vocab_limit > 0 && s->vocab_limit < V ? s->vocab_limit : V;
    // the CPU sampler sorts when top-k cuts or the nucleus is on (src/backend/cpu/kernels/sample.c)
    const int sorted = !s->greedy && ((s->top_k > 0 && s->top_k < Vl) || (s->top_p > 0 && s->top_p < 1.0f));
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    void *du = NULL;
    int32_t *dids = sc_arena_alloc(&be->ws, sizeof(int32_t) * (size_t)n, "sampled ids");
    sc_status st = dids ? stage(be, u, sizeof(float) * (size_t)n, "uniforms", &du) : SC_ERR_MEM;
    if (!st) {
        const float inv_t = 1.0f / (s->temperature > 0 ? s->temperature : 1.0f);   // as the CPU computes it
        cudaError_t e = sorted ? sc_cu_sample_sorted(ci->stream, logits, n, V, Vl, inv_t, s->top_k, s->top_p, du, dids)
                               : sc_cu_sample(ci->stream, logits, n, V, Vl, s->greedy, s->temperature, du, dids);
        if (e != cudaSuccess) st = cu_fail(e, sorted ? "the top-k/top-p sampling kernel" : "the sampling kernel");
    }
    if (!st) st = cu_download(be, ids, dids, sizeof(int32_t) * (size_t)n);
    sc_arena_reset(&be->ws, mk);
    for (int i = 0; i < n && !st; i++)
        if (ids[i] == -1)
            st = sc_errorf(SC_ERR_NUMERIC, "sampling: row %d of the logits holds NaN or infinite values: the model's weights, or an adapter "
                           "or steering vector added to them, are not finite (check the model files; for an adapter, lower lr)", i);
        else if (ids[i] < 0 || ids[i] >= Vl)
            st = sc_errorf(SC_ERR_INTERNAL, "sampling: the CUDA top-k/top-p kernel failed its own checks on row %d (id %d; V %d, top_k %d, "
                           "top_p %g): a bug in src/backend/cuda/kernels.cu; report it, and sample with --device cpu meanwhile",
                           i, ids[i], Vl, s->top_k, (double)s->top_p);
    return st;
}

// --- Graphs: a decode step's ops recorded and launched as one CUDA graph ($SC_CUDA_GRAPHS=1) ---------
//
// Every step is recorded afresh (stream capture; the host does the ops' own work as usual: index
// arrays into the pinned ring, plans, arena offsets) and the last graph's executable is updated
// in place when the new one has its shape (cudaGraphExecUpdate: the same kernels and copies with
// new arguments), else instantiated anew (the batch shrank, a new adapter run). What this saves is
// the launch gaps between the step's ~25 kernels per block on the device; what it costs is that
// the device waits for the whole recording before it starts. Off by default until the GPU check
// has measured it (benchmarks/gpu/check.sh runs decode both ways).

#define GRAPH_MAX_FAILURES 3

static int cu_graph_begin(sc_backend *be) {
    cuda_impl *ci = impl_of(be);
    if (!ci->graphs || ci->recording) return 0;
    if (ci->ring_off > RING_BYTES / 2) {   // room for the step's index arrays: the ring cannot wrap while recording
        if (cudaStreamSynchronize(ci->stream) != cudaSuccess) return 0;
        ci->ring_off = 0;
    }
    if (cudaStreamBeginCapture(ci->stream, cudaStreamCaptureModeRelaxed) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    ci->recording = 1;
    return 1;
}

static sc_status graph_failed(cuda_impl *ci, sc_status work, cudaError_t e, const char *what) {
    (void)cudaGetLastError();   // capture errors do not poison the context; clear the last one
    // the reason: the recorded ops' own error (the caller clears it before running them again), else CUDA's
    const char *why = work != SC_OK ? sc_last_error() : e != cudaSuccess ? cudaGetErrorString(e) : "";
    sc_log(SC_LOG_DEBUG, "cuda backend: %s failed (%s); this step runs op by op", what, why);
    if (++ci->graph_failures >= GRAPH_MAX_FAILURES && ci->graphs) {
        ci->graphs = 0;
        sc_log(SC_LOG_WARN, "cuda backend: CUDA graphs off for this run after %d failed recordings (last: %s%s%s); decode steps run op by op",
               ci->graph_failures, what, *why ? ": " : "", why);
    }
    return work ? work : cu_fail(e, what);
}

static sc_status cu_graph_end(sc_backend *be, sc_status work) {
    cuda_impl *ci = impl_of(be);
    if (!ci->recording) return sc_errorf(SC_ERR_INTERNAL, "cuda backend: graph_end without graph_begin");
    ci->recording = 0;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(ci->stream, &g);
    if (work != SC_OK || e != cudaSuccess || !g) {
        if (g) cudaGraphDestroy(g);
        if (work == SC_ERR_INTERRUPTED) { (void)cudaGetLastError(); return work; }   // a signal, not a failed recording
        return graph_failed(ci, work, e, "recording a decode step");
    }
    if (ci->exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(ci->exec, g, &info) != cudaSuccess) {   // another shape: a new executable
            (void)cudaGetLastError();
            cudaGraphExecDestroy(ci->exec);
            ci->exec = NULL;
        }
    }
    if (!ci->exec) {
        if ((e = cudaGraphInstantiate(&ci->exec, g, 0)) != cudaSuccess) {
            ci->exec = NULL;
            cudaGraphDestroy(g);
            return graph_failed(ci, SC_OK, e, "instantiating a CUDA graph");
        }
        be->stats.n_graph_builds++;
    }
    e = cudaGraphLaunch(ci->exec, ci->stream);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) return graph_failed(ci, SC_OK, e, "launching a CUDA graph");
    be->stats.n_graphs++;
    return SC_OK;
}

// --- Creation ------------------------------------------------------------------------------------------

static const sc_backend_ops cuda_ops = {
    .alloc = cu_alloc, .free = cu_free, .upload = cu_upload, .download = cu_download, .copy = cu_copy,
    .memset = cu_memset, .sync = cu_sync,
    .host_alloc = cu_host_alloc, .host_free = cu_host_free, .download_async = cu_download_async, .upload_async = cu_upload_async,
    .event_create = cu_event_create, .event_destroy = cu_event_destroy, .event_record = cu_event_record,
    .event_wait = cu_event_wait, .event_query = cu_event_query,
    .weights_prepare = cu_weights_prepare, .weights_release = cu_weights_release,
    .matmul = cu_matmul, .matmul_dx = cu_matmul_dx,
    .embed = cu_embed, .gather_rows = cu_gather_rows, .scatter_add_rows = cu_scatter_add_rows,
    .add = cu_add, .add_row = cu_add_row, .col_sum = cu_col_sum,
    .rmsnorm = cu_rmsnorm, .rmsnorm_backward = cu_rmsnorm_backward, .rope = cu_rope,
    .swiglu = cu_swiglu, .swiglu_backward = cu_swiglu_backward,
    .kv_write = cu_kv_write, .attention = cu_attention, .attention_backward = cu_attention_backward,
    .adapter_forward = cu_adapter_forward, .adapter_backward = cu_adapter_backward,
    .divergence_loss = cu_divergence_loss, .adamw = cu_adamw, .sample = cu_sample,
    .graph_begin = cu_graph_begin, .graph_end = cu_graph_end,
};

static void cuda_destroy(sc_backend *be) {
    cuda_impl *ci = impl_of(be);
    if (!ci) return;
    cudaSetDevice(ci->dev);
    if (ci->stream) cudaStreamSynchronize(ci->stream);
    if (ci->exec) cudaGraphExecDestroy(ci->exec);
    for (int i = 0; i < ci->n_plans; i++) lt_plan_free(&ci->plans[i]);
    sc_sdpa_close(ci->sdpa);
    if (ci->lt_ws) cudaFree(ci->lt_ws);
    if (ci->lt) p_cublasLtDestroy(ci->lt);
    if (ci->ring) cudaFreeHost(ci->ring);
    if (ci->stream) cudaStreamDestroy(ci->stream);
    free(ci->live);
    free(ci);
    be->impl = NULL;
}

// The node-local rank (one GPU per rank): Open MPI, MPICH/Hydra, Slurm; 0 when none is set.
static int local_rank(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v >= '0' && *v <= '9') return atoi(v);
    }
    return 0;
}

// A 0/1 switch from the environment: *on = dflt when unset or empty; another value is refused.
static sc_status env_switch(const char *name, const char *what_1, int dflt, int *on) {
    const char *v = getenv(name);
    *on = dflt;
    if (!v || !*v) return SC_OK;
    if (!strcmp(v, "0") || !strcmp(v, "1")) { *on = v[0] == '1'; return SC_OK; }
    return sc_errorf(SC_ERR_ARG, "cuda backend: %s='%s': use 1 (%s) or 0, or unset it (default %d)", name, v, what_1, dflt);
}

sc_status sc_cuda_backend_create(const sc_backend_opts *o, sc_backend **out) {
    *out = NULL;
    int fallback, graphs, sdpa;
    SC_TRY(env_switch("SC_CUDA_GEMM_FALLBACK", "every GEMM through the plain-loop kernel, for tests", 0, &fallback));
    SC_TRY(env_switch("SC_CUDA_GRAPHS", "decode steps recorded and launched as CUDA graphs", 0, &graphs));
    SC_TRY(env_switch("SC_CUDA_SDPA", "attention through cuDNN's fused flash attention where it runs", 1, &sdpa));
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        (void)cudaGetLastError();
        return sc_errorf(SC_ERR_ARG, "device cuda: no CUDA GPU is usable here (%s); use --device cpu (or \"device\": \"cpu\" in the config), "
                         "or run on a machine with an NVIDIA GPU and driver",
                         e != cudaSuccess ? cudaGetErrorString(e) : "no GPU found");
    }
    sc_backend *be = sc_calloc(1, sizeof *be, "CUDA backend");
    cuda_impl *ci = sc_calloc(1, sizeof *ci, "CUDA backend state");
    if (!be || !ci) { free(be); free(ci); return SC_ERR_MEM; }
    be->impl = ci;
    be->destroy = cuda_destroy;
    be->op = &cuda_ops;
    be->device = SC_DEVICE_CUDA;
    be->separate_memory = 1;
    ci->dev = local_rank() % count;
    ci->force_fallback = fallback;
    ci->graphs = graphs;
    sc_status st = SC_OK;
    struct cudaDeviceProp prop;
    if ((e = cudaSetDevice(ci->dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, ci->dev)) != cudaSuccess) st = cu_fail(e, "selecting the GPU");
    else if ((e = cudaStreamCreateWithFlags(&ci->stream, cudaStreamNonBlocking)) != cudaSuccess) st = cu_fail(e, "creating a stream");
    else if ((e = cudaMalloc(&ci->lt_ws, LT_WORKSPACE)) != cudaSuccess) st = cu_fail(e, "allocating the cuBLASLt workspace");
    else if ((e = cudaHostAlloc((void **)&ci->ring, RING_BYTES, cudaHostAllocDefault)) != cudaSuccess) st = cu_fail(e, "allocating pinned host memory");
    else if ((st = lt_load()) == SC_OK) {
        cublasStatus_t s = p_cublasLtCreate(&ci->lt);
        if (s) st = lt_fail(s, "initialisation");
    }
    if (!st && prop.major < 8)
        st = sc_errorf(SC_ERR_ARG, "device cuda: GPU %d (%s) has compute capability %d.%d; this backend needs BF16 GEMMs (8.0 or newer); use --device cpu",
                       ci->dev, prop.name, prop.major, prop.minor);
    if (st) { sc_backend_free(be); return st; }
    if (!sdpa) {
        fprintf(stderr, "cuda backend: SC_CUDA_SDPA=0: attention runs on the own kernels (cuDNN's fused attention is off)\n");
    } else {
        char why[SDPA_WHY] = "";
        ci->sdpa = sc_sdpa_open(ci->stream, why, sizeof why);
        if (!ci->sdpa) fprintf(stderr, "cuda backend: cuDNN's fused attention is off (%s); attention runs on the own kernels\n", why);
    }
    snprintf(ci->name, sizeof ci->name, "cuda (GPU %d: %.80s, sm_%d%d, attention: %s%s)", ci->dev, prop.name, prop.major, prop.minor,
             ci->sdpa ? sc_sdpa_version(ci->sdpa) : "own kernels", ci->graphs ? ", decode in CUDA graphs" : "");
    be->name = ci->name;
    be->precision = "bf16";   // GEMMs against BF16 weights take BF16 activations (FP32 accumulation)
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    be->memory_budget = o->memory_budget ? o->memory_budget : (size_t)(0.9 * (double)fr);
    sc_backend_init_arenas(be);
    *out = be;
    return SC_OK;
}
