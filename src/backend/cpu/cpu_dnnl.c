// cpu_dnnl.c — the CPU backend's bf16 precision: products against BF16 weights through
// oneDNN's matmul with BF16 operands and FP32 accumulation and output (what the GPU path does).
// The weights are used as they are in the (mmapped) file, no F32 copy; the activation operand
// (x forward, dy backward) is rounded to BF16 into workspace scratch on every call. A matmul
// primitive is made once per shape (rows, N, K, direction, accumulate) and kept in the backend
// (up to SC_DNNL_CACHE of them, least recently used replaced): a step whose shapes repeat
// (decode at a fixed batch, prefill, training on the same token count) creates nothing. oneDNN's
// scratchpad is ours (user mode, from the workspace arena).
//
// Products of few rows (decode) keep the instruction set's streaming kernel, which widens BF16
// weights on the fly (bound by reading the weights), but on activations rounded to BF16 first:
// every product of the bf16 precision then has BF16 operands and FP32 accumulation whatever its
// row count, so a row's result does not depend on how many rows share the product beyond the
// order of the FP32 sums (about 1e-7; a sampled token changes only when its draw falls that close
// to a bin edge). Without the rounding, decode of 3 rows and of 6 (two kernels) differed by
// BF16's 4e-3, enough to change the sampled tokens of a search with the number of searches
// sharing its pass.
#include "cpu_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef SC_HAVE_DNNL
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define SC_DNNL_CACHE 64

typedef struct {
    int64_t M, N, K;
    int b_nk;            // 1: B is W [N, K] (forward, x . W^T); 0: B is W as [K_red, N_out] (backward, dy . W)
    int accumulate;      // sum post-op: dst += product
    uint64_t used;       // last use (least recently used is replaced)
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, scratch;
    size_t scratch_bytes;
} dnnl_entry;

struct sc_cpu_dnnl {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_entry cache[SC_DNNL_CACHE];
    int n;
    uint64_t tick;
};

static sc_status dnnl_fail(dnnl_status_t s, const char *what) {
    return sc_errorf(SC_ERR_LIB, "oneDNN: %s failed (status %d); run with --precision f32 (or SC_PRECISION=f32) to use OpenBLAS instead", what, (int)s);
}
#define DN_TRY(call, what) do { dnnl_status_t dn_s_ = (call); if (dn_s_ != dnnl_success) return dnnl_fail(dn_s_, what); } while (0)

int sc_cpu_dnnl_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) return 0;
    const unsigned bf16 = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    return ((unsigned)dnnl_get_effective_cpu_isa() & bf16) == bf16;
#else
    return 0;
#endif
}

sc_status sc_cpu_dnnl_create(sc_cpu_dnnl **out) {
    *out = NULL;
    sc_cpu_dnnl *d = sc_calloc(1, sizeof *d, "oneDNN context");
    if (!d) return SC_ERR_MEM;
    dnnl_status_t s = dnnl_engine_create(&d->engine, dnnl_cpu, 0);
    if (s == dnnl_success) s = dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags);
    if (s != dnnl_success) { sc_cpu_dnnl_free(d); return dnnl_fail(s, "creating the CPU engine"); }
    *out = d;
    return SC_OK;
}

static void entry_free(dnnl_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->a) dnnl_memory_destroy(e->a);
    if (e->b) dnnl_memory_destroy(e->b);
    if (e->c) dnnl_memory_destroy(e->c);
    if (e->scratch) dnnl_memory_destroy(e->scratch);
    memset(e, 0, sizeof *e);
}

void sc_cpu_dnnl_free(sc_cpu_dnnl *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) entry_free(&d->cache[i]);
    if (d->stream) dnnl_stream_destroy(d->stream);
    if (d->engine) dnnl_engine_destroy(d->engine);
    free(d);
}

int sc_cpu_dnnl_cached(const sc_cpu_dnnl *d) { return d ? d->n : 0; }

// The primitive for C[M,N] (+)= A[M,K] . B, A and B BF16 row-major, C F32 row-major.
static sc_status entry_make(sc_cpu_dnnl *d, dnnl_entry *e) {
    const int64_t M = e->M, N = e->N, K = e->K;
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = {M, K}, db = {K, N}, dc = {M, N};
    dnnl_dims_t sa = {K, 1}, sc = {N, 1};
    dnnl_dims_t sb_nk = {1, K}, sb_kn = {N, 1};
    DN_TRY(dnnl_memory_desc_init_by_strides(&a, 2, da, dnnl_bf16, sa), "describing the activations");
    DN_TRY(dnnl_memory_desc_init_by_strides(&b, 2, db, dnnl_bf16, e->b_nk ? sb_nk : sb_kn), "describing the weights");
    DN_TRY(dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc), "describing the output");
    dnnl_matmul_desc_t md;
    DN_TRY(dnnl_matmul_desc_init(&md, &a, &b, NULL, &c), "describing a matmul");
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_primitive_attr_create(&attr);
    if (s == dnnl_success) s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success && e->accumulate) {
        s = dnnl_post_ops_create(&po);
        if (s == dnnl_success) s = dnnl_post_ops_append_sum(po, 1.0f);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &md, attr, d->engine, NULL);
    if (s == dnnl_success) {
        const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        e->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
        s = dnnl_primitive_create(&e->prim, pd);
        if (s == dnnl_success && e->scratch_bytes) s = dnnl_memory_create(&e->scratch, smd, d->engine, DNNL_MEMORY_NONE);
    }
    if (s == dnnl_success) s = dnnl_memory_create(&e->a, &a, d->engine, DNNL_MEMORY_NONE);
    if (s == dnnl_success) s = dnnl_memory_create(&e->b, &b, d->engine, DNNL_MEMORY_NONE);
    if (s == dnnl_success) s = dnnl_memory_create(&e->c, &c, d->engine, DNNL_MEMORY_NONE);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) {
        entry_free(e);
        return sc_errorf(SC_ERR_LIB, "oneDNN: no BF16 matmul for [%lld, %lld] x [%lld, %lld] (status %d); run with --precision f32 "
                         "(or SC_PRECISION=f32) to use OpenBLAS instead", (long long)M, (long long)K, (long long)K, (long long)N, (int)s);
    }
    return SC_OK;
}

static sc_status entry_get(sc_cpu_dnnl *d, int64_t M, int64_t N, int64_t K, int b_nk, int accumulate, dnnl_entry **out) {
    d->tick++;
    for (int i = 0; i < d->n; i++) {
        dnnl_entry *e = &d->cache[i];
        if (e->M == M && e->N == N && e->K == K && e->b_nk == b_nk && e->accumulate == accumulate) {
            e->used = d->tick;
            *out = e;
            return SC_OK;
        }
    }
    dnnl_entry *e;
    if (d->n < SC_DNNL_CACHE) e = &d->cache[d->n++];
    else {
        e = &d->cache[0];
        for (int i = 1; i < d->n; i++) if (d->cache[i].used < e->used) e = &d->cache[i];
        entry_free(e);
    }
    *e = (dnnl_entry){.M = M, .N = N, .K = K, .b_nk = b_nk, .accumulate = accumulate, .used = d->tick};
    sc_status st = entry_make(d, e);
    if (st) {   // keep the table dense: move the last entry into the hole
        dnnl_entry *last = &d->cache[d->n - 1];
        if (e != last) { *e = *last; memset(last, 0, sizeof *last); }
        d->n--;
        return st;
    }
    *out = e;
    return SC_OK;
}

// dst[n] = BF16 of src[n], rounded to nearest even (AVX-512 BF16: this path only runs where the
// CPU has it), over the threads for large arrays.
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
static void to_bf16_range(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
    }
    for (; i < n; i++) dst[i] = sc_f32_to_bf16(src[i]);
}
#else
static void to_bf16_range(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = sc_f32_to_bf16(src[i]);
}
#endif

static void to_bf16(uint16_t *dst, const float *src, int64_t n) {
    const int nt = omp_get_max_threads();
    if (n < ((int64_t)1 << 16) || nt <= 1) { to_bf16_range(dst, src, n); return; }
    #pragma omp parallel num_threads(nt)
    {
        const int64_t per = (n / nt + 31) / 32 * 32, i0 = per * omp_get_thread_num();
        if (i0 < n) to_bf16_range(dst + i0, src + i0, n - i0 < per ? n - i0 : per);
    }
}

// C[M,N] (+)= bf16(act)[M,K] . B  (B: W as stored; see dnnl_entry.b_nk)
static sc_status run_matmul(sc_backend *be, float *c, const float *act, const uint16_t *w, int64_t M, int64_t N, int64_t K,
                            int b_nk, int accumulate) {
    sc_cpu_impl *impl = be->impl;
    sc_cpu_dnnl *d = impl->dnnl;
    dnnl_entry *e = NULL;
    SC_TRY(entry_get(d, M, N, K, b_nk, accumulate, &e));
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    uint16_t *a16 = sc_arena_alloc(&be->ws, sizeof(uint16_t) * (size_t)(M * K), "BF16 activations for a matmul");
    void *scratch = e->scratch_bytes ? sc_arena_alloc(&be->ws, e->scratch_bytes, "oneDNN matmul scratchpad") : NULL;
    if (!a16 || (e->scratch_bytes && !scratch)) { sc_arena_reset(&be->ws, mk); return SC_ERR_MEM; }
    to_bf16(a16, act, M * K);
    dnnl_status_t s = dnnl_memory_set_data_handle(e->a, a16);
    if (s == dnnl_success) s = dnnl_memory_set_data_handle(e->b, (void *)(uintptr_t)w);
    if (s == dnnl_success) s = dnnl_memory_set_data_handle(e->c, c);
    if (s == dnnl_success && scratch) s = dnnl_memory_set_data_handle(e->scratch, scratch);
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}, {DNNL_ARG_SCRATCHPAD, e->scratch}};
        s = dnnl_primitive_execute(e->prim, d->stream, scratch ? 4 : 3, args);
        if (s == dnnl_success) s = dnnl_stream_wait(d->stream);
    }
    sc_arena_reset(&be->ws, mk);
    if (s != dnnl_success) return dnnl_fail(s, "running a BF16 matmul");
    return SC_OK;
}

static int min_rows(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *env = getenv("SC_BF16_MIN_ROWS");
        int v = env && *env ? atoi(env) : SC_BF16_MIN_ROWS_DEFAULT;
        cached = v < 1 ? 1 : v;
    }
    return cached;
}

// The streaming kernel on act [T, K] rounded to BF16 (as floats, in workspace scratch).
static sc_status few_rows(sc_backend *be, const float *act, int64_t n, float **rounded, sc_arena_mark *mk) {
    *mk = sc_arena_mark_get(&be->ws);
    float *r = sc_arena_alloc(&be->ws, sizeof(float) * (size_t)n, "BF16-rounded activations of a few-row product");
    if (!r) return SC_ERR_MEM;
    for (int64_t i = 0; i < n; i++) r[i] = sc_bf16_to_f32(sc_f32_to_bf16(act[i]));
    *rounded = r;
    return SC_OK;
}

sc_status sc_cpu_matmul_bf16(sc_backend *be, float *out, const float *x, const sc_mat *W, const float *bias, int T) {
    sc_cpu_impl *impl = be->impl;
    if (W->dtype != SC_DTYPE_BF16) return impl->isa_ops->matmul(be, out, x, W, bias, T);
    if (T < min_rows()) {
        float *xr = NULL;
        sc_arena_mark mk;
        SC_TRY(few_rows(be, x, (int64_t)T * W->cols, &xr, &mk));
        sc_status st = impl->isa_ops->matmul(be, out, xr, W, bias, T);
        sc_arena_reset(&be->ws, mk);
        return st;
    }
    const int64_t N = W->rows, K = W->cols;
    SC_TRY(run_matmul(be, out, x, W->data, T, N, K, 1, 0));
    if (bias && (int64_t)T * N >= ((int64_t)1 << 16) && omp_get_max_threads() > 1) {
        #pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++) out[(int64_t)t * N + n] += bias[n];
    } else if (bias) {
        for (int t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++) out[(int64_t)t * N + n] += bias[n];
    }
    return SC_OK;
}

sc_status sc_cpu_matmul_dx_bf16(sc_backend *be, float *dx, const float *dy, const sc_mat *W, int T, int accumulate) {
    sc_cpu_impl *impl = be->impl;
    if (W->dtype != SC_DTYPE_BF16) return impl->isa_ops->matmul_dx(be, dx, dy, W, T, accumulate);
    if (T < min_rows()) {
        float *dyr = NULL;
        sc_arena_mark mk;
        SC_TRY(few_rows(be, dy, (int64_t)T * W->rows, &dyr, &mk));
        sc_status st = impl->isa_ops->matmul_dx(be, dx, dyr, W, T, accumulate);
        sc_arena_reset(&be->ws, mk);
        return st;
    }
    // dx[T, K] (+)= dy[T, N] . W[N, K]: W is B as [K_red = N, N_out = K], row-major
    return run_matmul(be, dx, dy, W->data, T, W->cols, W->rows, 0, accumulate);
}

#else   // no oneDNN in this build: bf16 precision is never chosen

int sc_cpu_dnnl_available(void) { return 0; }
sc_status sc_cpu_dnnl_create(sc_cpu_dnnl **out) {
    *out = NULL;
    return sc_errorf(SC_ERR_ARG, "this build has no oneDNN (install libdnnl-dev and rebuild): --precision bf16 is not available; use f32");
}
void sc_cpu_dnnl_free(sc_cpu_dnnl *d) { (void)d; }
int sc_cpu_dnnl_cached(const sc_cpu_dnnl *d) { (void)d; return 0; }
sc_status sc_cpu_matmul_bf16(sc_backend *be, float *out, const float *x, const sc_mat *W, const float *bias, int T) {
    return ((sc_cpu_impl *)be->impl)->isa_ops->matmul(be, out, x, W, bias, T);
}
sc_status sc_cpu_matmul_dx_bf16(sc_backend *be, float *dx, const float *dy, const sc_mat *W, int T, int accumulate) {
    return ((sc_cpu_impl *)be->impl)->isa_ops->matmul_dx(be, dx, dy, W, T, accumulate);
}
#endif
