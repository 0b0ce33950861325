// sdpa.c — causal GQA attention forward and backward through cuDNN's fused flash attention.
//
// cuDNN's backend API (cudnn_graph.h) takes an operation graph of tensors and operations
// (matmul, pointwise, reduction, reshape) and finds an engine that runs the whole graph as one
// fused kernel; flash attention is the graph below, which cuDNN's runtime-fusion engines
// recognise (the same graph cuDNN's documentation describes for "scaled dot product attention",
// and that its C++ frontend emits for a causal SDPA without dropout, bias or padding masks):
//
//   forward   S = Q K^T; S *= scale; S = (row >= col) ? S : -inf;       [B, NH, S, S] virtual
//             M = max_row S; E = exp(S - M); Z = sum_row E;
//             stats = M + log Z; P = E / Z (BF16); O = P V
//   backward  sum = rowsum(dO * O);  S = Q K^T * scale - stats, causal mask; E = exp(S)
//             dV = E^T dO (summed over each KV head's query heads: GQA)
//             dS = (dO V^T - sum) * E * scale;  dK = dS^T Q (summed likewise)
//             dQ = dS K (deterministic: tried first), or dQ_acc = dS K (FP32, atomics); dQ = dQ_acc
//
// K enters the first product transposed (dims [B, KVH, HD, S] with swapped strides); GQA is the
// broadcast of KVH heads over NH in the matmuls' batch dimension. No tensor is materialised but
// the inputs, the outputs, stats, and (backward) sum and dQ_acc, which cuDNN wants in memory.
// Written against cuDNN 9.19's headers and documentation on a machine without a GPU: the
// graphs are finalized by libcudnn in tests/test_cuda_sdpa_graph.c, the plans and the numbers
// are checked only on a GPU (tests/test_cuda_backend.c, benchmarks/gpu/check.sh).
//
// libcudnn.so.9 is opened with dlopen (like cuBLASLt): a binary starts on a machine without it,
// and only this path is off there. Built without cuDNN's headers, the whole file reduces to
// sc_sdpa_open saying so.
#include "sdpa.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<cudnn_graph.h>)
#define SC_HAVE_CUDNN 1
#endif
#endif

#ifndef SC_HAVE_CUDNN

sc_sdpa *sc_sdpa_open(struct CUstream_st *stream, char *why, size_t why_len) {
    (void)stream;
    snprintf(why, why_len, "this build had no cuDNN headers (cudnn_graph.h); rebuild with cuDNN 9 installed to use it");
    return NULL;
}
void sc_sdpa_close(sc_sdpa *s) { (void)s; }
const char *sc_sdpa_version(const sc_sdpa *s) { (void)s; return "none"; }
int sc_sdpa_plan(sc_sdpa *s, int bwd, const sc_sdpa_shape *sh, size_t *ws_bytes, char *why, size_t why_len) {
    (void)s; (void)bwd; (void)sh; *ws_bytes = 0;
    snprintf(why, why_len, "no cuDNN in this build");
    return -1;
}
int sc_sdpa_backward_uses_acc(sc_sdpa *s, const sc_sdpa_shape *sh) { (void)s; (void)sh; return 0; }
int sc_sdpa_graph_check(int kind, const sc_sdpa_shape *sh, int *n_ops, char *why, size_t why_len) {
    (void)kind; (void)sh; *n_ops = 0;
    snprintf(why, why_len, "this build had no cuDNN headers");
    return -1;
}
sc_status sc_sdpa_forward(sc_sdpa *s, const sc_sdpa_shape *sh, const void *q, const void *k, const void *v, void *o, float *stats, void *ws) {
    (void)s; (void)sh; (void)q; (void)k; (void)v; (void)o; (void)stats; (void)ws;
    return sc_errorf(SC_ERR_INTERNAL, "cuda backend: cuDNN attention called in a build without cuDNN");
}
sc_status sc_sdpa_backward(sc_sdpa *s, const sc_sdpa_shape *sh, const void *q, const void *k, const void *v, const void *o,
                           const void *dout, const float *stats, void *dq, void *dk, void *dv, float *sum, float *dq_acc, void *ws) {
    (void)s; (void)sh; (void)q; (void)k; (void)v; (void)o; (void)dout; (void)stats; (void)dq; (void)dk; (void)dv; (void)sum; (void)dq_acc; (void)ws;
    return sc_errorf(SC_ERR_INTERNAL, "cuda backend: cuDNN attention called in a build without cuDNN");
}

#else

#include <cudnn_graph.h>

#define DNN_FUNCS(X) X(cudnnGetVersion) X(cudnnGetErrorString) X(cudnnGetLastErrorString) X(cudnnCreate) X(cudnnDestroy) \
    X(cudnnSetStream) X(cudnnBackendCreateDescriptor) X(cudnnBackendDestroyDescriptor) X(cudnnBackendFinalize)           \
    X(cudnnBackendSetAttribute) X(cudnnBackendGetAttribute) X(cudnnBackendExecute)
#define DNN_PTR(f) static __typeof__(f) *p_##f;
DNN_FUNCS(DNN_PTR)

static int dnn_load(char *why, size_t why_len) {
    static void *lib;
    if (lib) return 1;
    void *h = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libcudnn.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, why_len, "cannot open libcudnn.so.9 (%s): install cuDNN 9 or add its lib folder to LD_LIBRARY_PATH", dlerror());
        return 0;
    }
#define DNN_SYM(f) { void *s_ = dlsym(h, #f); if (!s_) { snprintf(why, why_len, "libcudnn lacks %s: install cuDNN 9", #f); dlclose(h); return 0; } memcpy(&p_##f, &s_, sizeof s_); }
    DNN_FUNCS(DNN_SYM)
#undef DNN_SYM
    lib = h;
    return 1;
}

// One graph's descriptors (kept with its plan: the plan may refer to them).
#define G_MAX_DESC 256
#define G_MAX_OPS 48
typedef struct {
    cudnnBackendDescriptor_t d[G_MAX_DESC];
    int n;
    cudnnBackendDescriptor_t ops[G_MAX_OPS];
    int n_ops;
    int64_t next_uid;
    cudnnStatus_t st;          // first failure
    const char *where;         // what failed
} graph;

#define SDPA_PLANS 48
typedef struct {
    int used, bwd, ok;         // ok: a plan (else: cuDNN has no engine for this shape)
    int det;                   // backward: the deterministic graph (no dQ accumulator)
    sc_sdpa_shape sh;
    graph g;
    cudnnBackendDescriptor_t plan;
    int64_t ws;
    uint64_t last;             // use clock for eviction
} plan_entry;

struct sc_sdpa {
    cudnnHandle_t h;
    char version[48];
    size_t ver;
    plan_entry plans[SDPA_PLANS];
    uint64_t clock;
};

// Tensor ids the variant packs name (virtual tensors take ids from 100 on).
enum { U_Q = 1, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEGINF, U_ONE, U_DO, U_DQ, U_DK, U_DV, U_SUM, U_DQACC };

static void g_free(graph *g) {
    for (int i = g->n - 1; i >= 0; i--) p_cudnnBackendDestroyDescriptor(g->d[i]);
    g->n = g->n_ops = 0;
}

static cudnnBackendDescriptor_t g_new(graph *g, cudnnBackendDescriptorType_t type, const char *what) {
    if (g->st) return NULL;
    if (g->n >= G_MAX_DESC) { g->st = CUDNN_STATUS_INTERNAL_ERROR; g->where = "too many descriptors"; return NULL; }
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t s = p_cudnnBackendCreateDescriptor(type, &d);
    if (s) { g->st = s; g->where = what; return NULL; }
    g->d[g->n++] = d;
    return d;
}
static void g_set(graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a, cudnnBackendAttributeType_t t, int64_t n,
                  const void *v, const char *what) {
    if (g->st) return;
    cudnnStatus_t s = p_cudnnBackendSetAttribute(d, a, t, n, v);
    if (s) { g->st = s; g->where = what; }
}
static void g_fin(graph *g, cudnnBackendDescriptor_t d, const char *what) {
    if (g->st) return;
    cudnnStatus_t s = p_cudnnBackendFinalize(d);
    if (s) { g->st = s; g->where = what; }
}
static void g_op(graph *g, cudnnBackendDescriptor_t op) {
    if (g->st) return;
    if (g->n_ops >= G_MAX_OPS) { g->st = CUDNN_STATUS_INTERNAL_ERROR; g->where = "too many operations"; return; }
    g->ops[g->n_ops++] = op;
}

// A 4-d tensor; uid 0 = a new virtual tensor.
static cudnnBackendDescriptor_t g_tensor(graph *g, int64_t uid, cudnnDataType_t dt, const int64_t dim[4], const int64_t str[4], int by_value) {
    const bool virt = uid == 0, byv = by_value != 0;
    if (virt) uid = g->next_uid++;
    const int64_t align = 16;
    cudnnBackendDescriptor_t t = g_new(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "a tensor descriptor");
    g_set(g, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor data type");
    g_set(g, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim, "tensor dimensions");
    g_set(g, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str, "tensor strides");
    g_set(g, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor id");
    g_set(g, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    g_set(g, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt, "tensor virtual flag");
    if (byv) g_set(g, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &byv, "tensor by-value flag");
    g_fin(g, t, "a tensor descriptor");
    return t;
}
static cudnnBackendDescriptor_t g_scalar(graph *g, int64_t uid) {
    static const int64_t one[4] = {1, 1, 1, 1};
    return g_tensor(g, uid, CUDNN_DATA_FLOAT, one, one, 1);
}

// y = mode(x [, b [, t]]) elementwise (broadcasting b and t), in `prec`; axis for GEN_INDEX
static void g_pw(graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                 cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y, int64_t axis) {
    cudnnBackendDescriptor_t pw = g_new(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "a pointwise descriptor");
    g_set(g, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    g_set(g, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise precision");
    if (mode == CUDNN_POINTWISE_GEN_INDEX) g_set(g, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
    g_fin(g, pw, "a pointwise descriptor");
    cudnnBackendDescriptor_t op = g_new(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "a pointwise operation");
    const float one = 1.0f;
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw, "pointwise op descriptor");
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "pointwise x");
    if (b) g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "pointwise b");
    if (t) g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t, "pointwise t");
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "pointwise y");
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, "pointwise alpha1");
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, "pointwise alpha2");
    g_fin(g, op, "a pointwise operation");
    g_op(g, op);
}
// c = a b (batched over dims 0 and 1, FP32 accumulation)
static void g_mm(graph *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t mm = g_new(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR, "a matmul descriptor");
    g_set(g, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "matmul compute type");
    g_fin(g, mm, "a matmul descriptor");
    cudnnBackendDescriptor_t op = g_new(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "a matmul operation");
    g_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a, "matmul a");
    g_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "matmul b");
    g_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, "matmul c");
    g_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm, "matmul descriptor");
    g_fin(g, op, "a matmul operation");
    g_op(g, op);
}
// y = reduce(x) over the dimensions where y is smaller (size 1, or KVH of NH heads)
static void g_red(graph *g, cudnnReduceTensorOp_t how, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t r = g_new(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "a reduction descriptor");
    g_set(g, r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &how, "reduction operator");
    g_set(g, r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "reduction compute type");
    g_fin(g, r, "a reduction descriptor");
    cudnnBackendDescriptor_t op = g_new(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "a reduction operation");
    g_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reduction x");
    g_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reduction y");
    g_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &r, "reduction descriptor");
    g_fin(g, op, "a reduction operation");
    g_op(g, op);
}
// y = x seen with other dims/strides (a transpose of the last two)
static void g_reshape(graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t op = g_new(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "a reshape operation");
    g_set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reshape x");
    g_set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reshape y");
    g_fin(g, op, "a reshape operation");
    g_op(g, op);
}

// Layouts of one shape: activations [B, S, H, HD] row-major, seen as [B, H, S, HD].
typedef struct {
    int64_t q_dim[4], q_str[4];       // Q, O, dO, dQ
    int64_t k_dim[4], k_str[4];       // K, V, dK, dV
    int64_t kt_dim[4], kt_str[4];     // K^T, V^T: [B, KVH, HD, S]
    int64_t s_dim[4], s_str[4];       // scores [B, NH, S, S]
    int64_t st_dim[4], st_str[4];     // scores transposed (same memory order): [B, NH, S(kv), S(q)]
    int64_t r_dim[4], r_str[4];       // per row: stats, sum [B, NH, S, 1]
    int64_t f_dim[4], f_str[4];       // full-head products [B, NH, S, HD] dense (dK, dV before the GQA sum; dQ_acc)
} layouts;

static void make_layouts(const sc_sdpa_shape *sh, layouts *L) {
    const int64_t B = sh->B, S = sh->S, NH = sh->NH, KVH = sh->KVH, D = sh->HD;
    const int64_t qd[4] = {B, NH, S, D}, qs[4] = {S * NH * D, D, NH * D, 1};
    const int64_t kd[4] = {B, KVH, S, D}, ks[4] = {S * KVH * D, D, KVH * D, 1};
    const int64_t ktd[4] = {B, KVH, D, S}, kts[4] = {S * KVH * D, D, 1, KVH * D};
    const int64_t sd[4] = {B, NH, S, S}, ss[4] = {NH * S * S, S * S, S, 1}, sts[4] = {NH * S * S, S * S, 1, S};
    const int64_t rd[4] = {B, NH, S, 1}, rs[4] = {NH * S, S, 1, 1};
    const int64_t fd[4] = {B, NH, S, D}, fs[4] = {NH * S * D, S * D, D, 1};
    memcpy(L->q_dim, qd, sizeof qd); memcpy(L->q_str, qs, sizeof qs);
    memcpy(L->k_dim, kd, sizeof kd); memcpy(L->k_str, ks, sizeof ks);
    memcpy(L->kt_dim, ktd, sizeof ktd); memcpy(L->kt_str, kts, sizeof kts);
    memcpy(L->s_dim, sd, sizeof sd); memcpy(L->s_str, ss, sizeof ss);
    memcpy(L->st_dim, sd, sizeof sd); memcpy(L->st_str, sts, sizeof sts);
    memcpy(L->r_dim, rd, sizeof rd); memcpy(L->r_str, rs, sizeof rs);
    memcpy(L->f_dim, fd, sizeof fd); memcpy(L->f_str, fs, sizeof fs);
}

// scores -> causally masked scores (row >= col kept, the rest `neginf`)
static cudnnBackendDescriptor_t g_causal(graph *g, const layouts *L, cudnnBackendDescriptor_t s, cudnnBackendDescriptor_t neginf) {
    cudnnBackendDescriptor_t row = g_tensor(g, 0, CUDNN_DATA_INT32, L->s_dim, L->s_str, 0);
    cudnnBackendDescriptor_t col = g_tensor(g, 0, CUDNN_DATA_INT32, L->s_dim, L->s_str, 0);
    cudnnBackendDescriptor_t keep = g_tensor(g, 0, CUDNN_DATA_BOOLEAN, L->s_dim, L->s_str, 0);
    cudnnBackendDescriptor_t out = g_tensor(g, 0, CUDNN_DATA_FLOAT, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, NULL, NULL, row, 2);
    g_pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, NULL, NULL, col, 3);
    g_pw(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL, keep, 0);
    g_pw(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, neginf, keep, out, 0);
    return out;
}

static void build_forward(graph *g, const layouts *L) {
    const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t q = g_tensor(g, U_Q, bf, L->q_dim, L->q_str, 0);
    cudnnBackendDescriptor_t kt = g_tensor(g, U_K, bf, L->kt_dim, L->kt_str, 0);
    cudnnBackendDescriptor_t v = g_tensor(g, U_V, bf, L->k_dim, L->k_str, 0);
    cudnnBackendDescriptor_t o = g_tensor(g, U_O, bf, L->q_dim, L->q_str, 0);
    cudnnBackendDescriptor_t stats = g_tensor(g, U_STATS, f32, L->r_dim, L->r_str, 0);
    cudnnBackendDescriptor_t scale = g_scalar(g, U_SCALE), neginf = g_scalar(g, U_NEGINF);

    cudnnBackendDescriptor_t s0 = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_mm(g, q, kt, s0);
    cudnnBackendDescriptor_t s1 = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_MUL, f32, s0, scale, NULL, s1, 0);
    cudnnBackendDescriptor_t s2 = g_causal(g, L, s1, neginf);
    cudnnBackendDescriptor_t m = g_tensor(g, 0, f32, L->r_dim, L->r_str, 0);
    g_red(g, CUDNN_REDUCE_TENSOR_MAX, s2, m);
    cudnnBackendDescriptor_t s3 = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_SUB, f32, s2, m, NULL, s3, 0);
    cudnnBackendDescriptor_t e = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_EXP, f32, s3, NULL, NULL, e, 0);
    cudnnBackendDescriptor_t z = g_tensor(g, 0, f32, L->r_dim, L->r_str, 0);
    g_red(g, CUDNN_REDUCE_TENSOR_ADD, e, z);
    cudnnBackendDescriptor_t lz = g_tensor(g, 0, f32, L->r_dim, L->r_str, 0);
    g_pw(g, CUDNN_POINTWISE_LOG, f32, z, NULL, NULL, lz, 0);
    g_pw(g, CUDNN_POINTWISE_ADD, f32, m, lz, NULL, stats, 0);
    cudnnBackendDescriptor_t p = g_tensor(g, 0, bf, L->s_dim, L->s_str, 0);   // the second product's operand: BF16
    g_pw(g, CUDNN_POINTWISE_DIV, f32, e, z, NULL, p, 0);
    g_mm(g, p, v, o);
}

// det: dQ = dS K straight into dQ, which on Hopper selects cuDNN's deterministic backward (dP
// kept in the workspace; what cuDNN's frontend builds for is_deterministic_algorithm); else
// through an FP32 accumulator dQ_acc that the engine adds into (atomics: run-to-run differences)
static void build_backward(graph *g, const layouts *L, int gqa, int det) {
    const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t q = g_tensor(g, U_Q, bf, L->q_dim, L->q_str, 0);
    cudnnBackendDescriptor_t kt = g_tensor(g, U_K, bf, L->kt_dim, L->kt_str, 0);
    cudnnBackendDescriptor_t vt = g_tensor(g, U_V, bf, L->kt_dim, L->kt_str, 0);
    cudnnBackendDescriptor_t o = g_tensor(g, U_O, bf, L->q_dim, L->q_str, 0);
    cudnnBackendDescriptor_t dout = g_tensor(g, U_DO, bf, L->q_dim, L->q_str, 0);
    cudnnBackendDescriptor_t stats = g_tensor(g, U_STATS, f32, L->r_dim, L->r_str, 0);
    cudnnBackendDescriptor_t dq = g_tensor(g, U_DQ, bf, L->q_dim, L->q_str, 0);
    cudnnBackendDescriptor_t dk = g_tensor(g, U_DK, bf, L->k_dim, L->k_str, 0);
    cudnnBackendDescriptor_t dv = g_tensor(g, U_DV, bf, L->k_dim, L->k_str, 0);
    cudnnBackendDescriptor_t sum = g_tensor(g, U_SUM, f32, L->r_dim, L->r_str, 0);
    cudnnBackendDescriptor_t dq_acc = det ? NULL : g_tensor(g, U_DQACC, f32, L->f_dim, L->f_str, 0);
    cudnnBackendDescriptor_t scale = g_scalar(g, U_SCALE), neginf = g_scalar(g, U_NEGINF), one = g_scalar(g, U_ONE);

    // sum = rowsum(dO * O)
    cudnnBackendDescriptor_t dd = g_tensor(g, 0, f32, L->q_dim, L->q_str, 0);
    g_pw(g, CUDNN_POINTWISE_MUL, f32, dout, o, NULL, dd, 0);
    cudnnBackendDescriptor_t rs = g_tensor(g, 0, f32, L->r_dim, L->r_str, 0);
    g_red(g, CUDNN_REDUCE_TENSOR_ADD, dd, rs);
    g_pw(g, CUDNN_POINTWISE_MUL, f32, rs, one, NULL, sum, 0);
    // E = exp(mask(scale Q K^T - stats))
    cudnnBackendDescriptor_t s0 = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_mm(g, q, kt, s0);
    cudnnBackendDescriptor_t s1 = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_MUL, f32, s0, scale, NULL, s1, 0);
    cudnnBackendDescriptor_t s2 = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_SUB, f32, s1, stats, NULL, s2, 0);
    cudnnBackendDescriptor_t s3 = g_causal(g, L, s2, neginf);
    cudnnBackendDescriptor_t e = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_EXP, f32, s3, NULL, NULL, e, 0);
    // dV = E^T dO
    cudnnBackendDescriptor_t et = g_tensor(g, 0, bf, L->st_dim, L->st_str, 0);
    g_reshape(g, e, et);
    if (gqa) {
        cudnnBackendDescriptor_t dvf = g_tensor(g, 0, bf, L->f_dim, L->f_str, 0);
        g_mm(g, et, dout, dvf);
        g_red(g, CUDNN_REDUCE_TENSOR_ADD, dvf, dv);
    } else {
        g_mm(g, et, dout, dv);
    }
    // dS = (dO V^T - sum) * E * scale
    cudnnBackendDescriptor_t dp = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_mm(g, dout, vt, dp);
    cudnnBackendDescriptor_t d1 = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_SUB, f32, dp, sum, NULL, d1, 0);
    cudnnBackendDescriptor_t d2 = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_MUL, f32, d1, e, NULL, d2, 0);
    cudnnBackendDescriptor_t ds = g_tensor(g, 0, f32, L->s_dim, L->s_str, 0);
    g_pw(g, CUDNN_POINTWISE_MUL, f32, d2, scale, NULL, ds, 0);
    // dK = dS^T Q
    cudnnBackendDescriptor_t dst = g_tensor(g, 0, bf, L->st_dim, L->st_str, 0);
    g_reshape(g, ds, dst);
    if (gqa) {
        cudnnBackendDescriptor_t dkf = g_tensor(g, 0, bf, L->f_dim, L->f_str, 0);
        g_mm(g, dst, q, dkf);
        g_red(g, CUDNN_REDUCE_TENSOR_ADD, dkf, dk);
    } else {
        g_mm(g, dst, q, dk);
    }
    // dQ = dS K
    cudnnBackendDescriptor_t kr = g_tensor(g, 0, bf, L->k_dim, L->k_str, 0);
    g_reshape(g, kt, kr);
    if (det) {
        g_mm(g, ds, kr, dq);
    } else {
        g_mm(g, ds, kr, dq_acc);
        g_pw(g, CUDNN_POINTWISE_IDENTITY, f32, dq_acc, NULL, NULL, dq, 0);
    }
}

static void last_error(char *why, size_t why_len, const char *what, cudnnStatus_t st);

int sc_sdpa_graph_check(int kind, const sc_sdpa_shape *sh, int *n_ops, char *why, size_t why_len) {
    *n_ops = 0;
    if (!dnn_load(why, why_len)) return -1;
    graph *g = calloc(1, sizeof *g);
    if (!g) { snprintf(why, why_len, "out of host memory"); return 0; }
    g->next_uid = 100;
    layouts L;
    make_layouts(sh, &L);
    if (kind) build_backward(g, &L, sh->NH != sh->KVH, kind == 1);
    else build_forward(g, &L);
    const int ok = !g->st;
    if (!ok) last_error(why, why_len, g->where, g->st);
    *n_ops = g->n_ops;
    g_free(g);
    free(g);
    return ok;
}

static void last_error(char *why, size_t why_len, const char *what, cudnnStatus_t st) {
    char msg[256] = "";
    p_cudnnGetLastErrorString(msg, sizeof msg);
    snprintf(why, why_len, "%s: %s%s%s", what, p_cudnnGetErrorString(st), *msg ? ": " : "", msg);
}

// Operation graph, heuristics, and the first engine configuration that finalizes.
static int make_plan_graph(sc_sdpa *s, plan_entry *e, char *why, size_t why_len) {
    graph *g = &e->g;
    memset(g, 0, sizeof *g);
    g->next_uid = 100;
    layouts L;
    make_layouts(&e->sh, &L);
    if (e->bwd) build_backward(g, &L, e->sh.NH != e->sh.KVH, e->det);
    else build_forward(g, &L);
    cudnnBackendDescriptor_t og = g_new(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "the operation graph");
    g_set(g, og, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &s->h, "operation graph handle");
    g_set(g, og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->n_ops, g->ops, "operation graph operations");
    g_fin(g, og, "the operation graph");
    if (g->st) { last_error(why, why_len, g->where, g->st); g_free(g); return 0; }
    // the heuristics' engine configurations (mode A, then the fallback list), best first; the
    // first whose plan finalizes is kept
    static const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
    const char *last_what = "cuDNN's heuristics list no engine for this graph";
    for (int mi = 0; mi < 2 && !g->st; mi++) {
        cudnnBackendDescriptor_t heur = g_new(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "the engine heuristics");
        g_set(g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &og, "heuristics graph");
        g_set(g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[mi], "heuristics mode");
        g_fin(g, heur, "the engine heuristics");
        if (g->st && heur) {   // this mode has no answer (not sticky: the fallback list is still asked)
            last = g->st;
            last_what = g->where;
            g->st = CUDNN_STATUS_SUCCESS;
            g->where = NULL;
            continue;
        }
        if (g->st) break;
        int64_t n = 0;
        cudnnStatus_t st = p_cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL);
        if (st) { last = st; last_what = "the heuristics' engine list"; continue; }
        if (n <= 0) continue;
        enum { MAX_CFG = 32 };
        if (n > MAX_CFG) n = MAX_CFG;
        cudnnBackendDescriptor_t cfg[MAX_CFG];
        for (int i = 0; i < n; i++) cfg[i] = g_new(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "an engine configuration");
        if (g->st) break;
        int64_t got = 0;
        st = p_cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, cfg);
        if (st) { last = st; last_what = "the heuristics' engine configurations"; continue; }
        for (int i = 0; i < got; i++) {
            cudnnBackendDescriptor_t plan = NULL;
            if ((st = p_cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan))) { last = st; break; }
            st = p_cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &s->h);
            if (!st) st = p_cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]);
            if (!st) st = p_cudnnBackendFinalize(plan);
            int64_t ws = 0, cnt = 0;
            if (!st) st = p_cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt, &ws);
            if (!st) {
                e->plan = plan;
                e->ws = ws;
                return 1;
            }
            last = st;
            last_what = "no engine configuration finalizes";
            p_cudnnBackendDestroyDescriptor(plan);
        }
    }
    if (g->st) last_error(why, why_len, g->where, g->st);
    else last_error(why, why_len, last_what, last);
    g_free(g);
    return 0;
}

// The backward tries the deterministic graph first (like the own kernels, the same results run
// after run), then the one with the FP32 dQ accumulator; the deterministic one keeps dP, BF16
// [B, NH, S, S], in its workspace, so it is not tried where that exceeds DET_DP_MAX.
#define DET_DP_MAX ((int64_t)1 << 30)
static int make_plan(sc_sdpa *s, plan_entry *e, char *why, size_t why_len) {
    if (!e->bwd) return make_plan_graph(s, e, why, why_len);
    char why_det[300] = "dP would need more than 1 GiB";
    if ((int64_t)e->sh.B * e->sh.NH * e->sh.S * e->sh.S * 2 <= DET_DP_MAX) {
        e->det = 1;
        if (make_plan_graph(s, e, why, why_len)) return 1;
        snprintf(why_det, sizeof why_det, "%s", why);
    }
    e->det = 0;
    if (make_plan_graph(s, e, why, why_len)) return 1;
    const size_t n = strlen(why);
    snprintf(why + n, why_len - n, "; deterministic graph: %s", why_det);
    return 0;
}

static void entry_free(plan_entry *e) {
    if (e->plan) p_cudnnBackendDestroyDescriptor(e->plan);
    if (e->ok) g_free(&e->g);
    memset(e, 0, sizeof *e);
}

static plan_entry *find(sc_sdpa *s, int bwd, const sc_sdpa_shape *sh) {
    for (int i = 0; i < SDPA_PLANS; i++) {
        plan_entry *e = &s->plans[i];
        if (e->used && e->bwd == bwd && !memcmp(&e->sh, sh, sizeof *sh)) { e->last = ++s->clock; return e; }
    }
    return NULL;
}

sc_sdpa *sc_sdpa_open(struct CUstream_st *stream, char *why, size_t why_len) {
    if (!dnn_load(why, why_len)) return NULL;
    const size_t ver = p_cudnnGetVersion();
    if (ver < 90000) {
        snprintf(why, why_len, "libcudnn is version %zu; the fused attention path needs cuDNN 9", ver);
        return NULL;
    }
    if (ver == 91000 || ver == 91001) {   // cuDNN's own frontend refuses BF16 attention there (known bugs)
        snprintf(why, why_len, "cuDNN 9.10.0 and 9.10.1 have known bugs in BF16 attention; install 9.10.2 or newer");
        return NULL;
    }
    sc_sdpa *s = calloc(1, sizeof *s);
    if (!s) { snprintf(why, why_len, "out of host memory"); return NULL; }
    cudnnStatus_t st = p_cudnnCreate(&s->h);
    if (!st) st = p_cudnnSetStream(s->h, stream);
    if (st) {
        last_error(why, why_len, "creating a cuDNN handle", st);
        if (s->h) p_cudnnDestroy(s->h);
        free(s);
        return NULL;
    }
    s->ver = ver;
    snprintf(s->version, sizeof s->version, "cuDNN %zu.%zu.%zu", ver / 10000, ver / 100 % 100, ver % 100);
    return s;
}

void sc_sdpa_close(sc_sdpa *s) {
    if (!s) return;
    for (int i = 0; i < SDPA_PLANS; i++)
        if (s->plans[i].used) entry_free(&s->plans[i]);
    p_cudnnDestroy(s->h);
    free(s);
}

const char *sc_sdpa_version(const sc_sdpa *s) { return s->version; }

int sc_sdpa_plan(sc_sdpa *s, int bwd, const sc_sdpa_shape *sh, size_t *ws_bytes, char *why, size_t why_len) {
    *ws_bytes = 0;
    plan_entry *e = find(s, bwd, sh);
    if (e) {
        *ws_bytes = (size_t)e->ws;
        return e->ok;
    }
    e = &s->plans[0];   // a free entry, else the least recently used
    for (int i = 0; i < SDPA_PLANS; i++) {
        if (!s->plans[i].used) { e = &s->plans[i]; break; }
        if (s->plans[i].last < e->last) e = &s->plans[i];
    }
    if (e->used) entry_free(e);
    e->used = 1;
    e->bwd = bwd;
    e->sh = *sh;
    e->last = ++s->clock;
    e->ok = make_plan(s, e, why, why_len);
    *ws_bytes = (size_t)e->ws;
    return e->ok ? 1 : -1;
}

int sc_sdpa_backward_uses_acc(sc_sdpa *s, const sc_sdpa_shape *sh) {
    const plan_entry *e = find(s, 1, sh);
    return e && e->ok && !e->det;
}

static sc_status run(sc_sdpa *s, plan_entry *e, int n, const int64_t *uids, void *const *ptrs, void *ws, const char *what) {
    cudnnBackendDescriptor_t vp = NULL;
    cudnnStatus_t st = p_cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (!st) st = p_cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (!st) st = p_cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (!st) st = p_cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (!st) st = p_cudnnBackendFinalize(vp);
    if (!st) st = p_cudnnBackendExecute(s->h, e->plan, vp);
    char msg[320] = "";
    if (st) last_error(msg, sizeof msg, what, st);
    if (vp) p_cudnnBackendDestroyDescriptor(vp);
    if (st) return sc_errorf(SC_ERR_LIB, "cuda backend: cuDNN attention (%s) failed: %s; run with SC_CUDA_SDPA=0 to use the own kernels (README, \"GPU\")",
                             s->version, msg);
    return SC_OK;
}

sc_status sc_sdpa_forward(sc_sdpa *s, const sc_sdpa_shape *sh, const void *q, const void *k, const void *v, void *o, float *stats, void *ws) {
    plan_entry *e = find(s, 0, sh);
    if (!e || !e->ok) return sc_errorf(SC_ERR_INTERNAL, "cuda backend: cuDNN attention forward without a plan");
    float scale = 1.0f / sqrtf((float)sh->HD), neginf = s->ver < 91000 ? -3.402823466e38f : -INFINITY;
    const int64_t uids[] = {U_Q, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEGINF};
    void *const ptrs[] = {(void *)q, (void *)k, (void *)v, o, stats, &scale, &neginf};
    return run(s, e, 7, uids, ptrs, ws, "forward");
}

sc_status sc_sdpa_backward(sc_sdpa *s, const sc_sdpa_shape *sh, const void *q, const void *k, const void *v, const void *o,
                           const void *dout, const float *stats, void *dq, void *dk, void *dv, float *sum, float *dq_acc, void *ws) {
    plan_entry *e = find(s, 1, sh);
    if (!e || !e->ok) return sc_errorf(SC_ERR_INTERNAL, "cuda backend: cuDNN attention backward without a plan");
    if (!e->det && !dq_acc) return sc_errorf(SC_ERR_INTERNAL, "cuda backend: cuDNN attention backward without its dQ accumulator");
    float scale = 1.0f / sqrtf((float)sh->HD), neginf = s->ver < 91000 ? -3.402823466e38f : -INFINITY, one = 1.0f;
    const int64_t uids[] = {U_Q, U_K, U_V, U_O, U_DO, U_STATS, U_DQ, U_DK, U_DV, U_SUM, U_SCALE, U_NEGINF, U_ONE, U_DQACC};
    void *const ptrs[] = {(void *)q, (void *)k, (void *)v, (void *)o, (void *)dout, (void *)stats, dq, dk, dv, sum, &scale, &neginf, &one, dq_acc};
    return run(s, e, e->det ? 13 : 14, uids, ptrs, ws, "backward");   // the deterministic graph has no dQ_acc
}

#endif
