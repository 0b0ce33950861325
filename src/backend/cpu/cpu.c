// cpu.c — the CPU backend (OpenBLAS + OpenMP): its memory (the host heap, counted), the F32
// copies of BF16 weights within the memory budget, and the op tables, one per instruction set
// the kernels were compiled for (kernels/*.c, see cpu_kernels.h), chosen once at creation:
// avx2 where the CPU has AVX2 and FMA (x86-64-v3), generic otherwise or when asked
// (sc_backend_opts.isa or $SC_CPU_ISA = "generic"). The precision (sc_backend_opts.precision or
// $SC_PRECISION): f32 (products in F32 through OpenBLAS: the reference numerics) or bf16
// (products against BF16 weights with BF16 operands and F32 accumulation through oneDNN,
// cpu_dnnl.c); auto = bf16 where the CPU has AVX-512 BF16 and the build has oneDNN.
#include "../backend_internal.h"
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

#define SC_CPU_ISA generic
#include "cpu_kernels.h"
#undef SC_CPU_ISA
#ifdef SC_HAVE_CPU_AVX2
#define SC_CPU_ISA avx2
#include "cpu_kernels.h"
#undef SC_CPU_ISA
#endif

// --- Memory: 64-byte aligned heap blocks with a header holding the size (for the stats) -------

#define HDR 64

static sc_status cpu_alloc(sc_backend *be, size_t bytes, const char *what, void **out) {
    size_t total = HDR + (bytes + 63) / 64 * 64;
    char *p = aligned_alloc(64, total);
    if (!p) {
        *out = NULL;
        return sc_errorf(SC_ERR_MEM, "out of memory allocating %.1f MiB for %s (%.1f MiB held by this backend; its budget is %.1f MiB): "
                         "lower the batch size or sequence lengths, or raise --memory-budget",
                         bytes / 1048576.0, what, be->stats.bytes_live / 1048576.0, be->memory_budget / 1048576.0);
    }
    memcpy(p, &bytes, sizeof bytes);
    be->stats.n_alloc++;
    be->stats.bytes_live += bytes;
    if (be->stats.bytes_live > be->stats.bytes_peak) be->stats.bytes_peak = be->stats.bytes_live;
    *out = p + HDR;
    return SC_OK;
}

static void cpu_free(sc_backend *be, void *ptr) {
    if (!ptr) return;
    char *p = (char *)ptr - HDR;
    size_t bytes;
    memcpy(&bytes, p, sizeof bytes);
    be->stats.n_free++;
    be->stats.bytes_live -= bytes;
    free(p);
}

static sc_status cpu_copy(sc_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes && dst != src) memmove(dst, src, bytes);
    return SC_OK;
}

static sc_status cpu_memset(sc_backend *be, void *dst, int byte, size_t bytes) {
    (void)be;
    memset(dst, byte, bytes);
    return SC_OK;
}

static sc_status cpu_sync(sc_backend *be) { (void)be; return SC_OK; }

// Pinned host memory is plain aligned heap memory here; the async copies copy at once and the
// events have always passed (every op has run when it returns).
static sc_status cpu_host_alloc(sc_backend *be, size_t bytes, const char *what, void **out) {
    (void)be;
    *out = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64 * !bytes);
    if (!*out) return sc_errorf(SC_ERR_MEM, "out of host memory allocating %.1f MiB for %s", bytes / 1048576.0, what);
    return SC_OK;
}
static void cpu_host_free(sc_backend *be, void *p) { (void)be; free(p); }
static char cpu_event;   // one marker serves every event: there is nothing to wait for
static sc_status cpu_event_create(sc_backend *be, void **ev) { (void)be; *ev = &cpu_event; return SC_OK; }
static void cpu_event_destroy(sc_backend *be, void *ev) { (void)be; (void)ev; }
static sc_status cpu_event_record(sc_backend *be, void *ev) { (void)be; (void)ev; return SC_OK; }
static sc_status cpu_event_wait(sc_backend *be, void *ev) { (void)be; (void)ev; return SC_OK; }
static sc_status cpu_event_query(sc_backend *be, void *ev, int *done) { (void)be; (void)ev; *done = 1; return SC_OK; }

// --- Weights: F32 copies of BF16 matrices ------------------------------------------------------

// F32 copies speed up products over many rows (prefill, training: sgemm on F32 instead of
// widening BF16 on every call) while decoding keeps streaming BF16 (half the bytes). They are
// kept for all matrices or none: when all fit in half the memory budget, at most 8 GiB (so a
// 7B or 14B checkpoint is never held twice by default); $SC_F32_CACHE_MB overrides (0 = never).
static size_t f32_copy_budget(const sc_backend *be) {
    const char *env = getenv("SC_F32_CACHE_MB");
    if (env && *env) return (size_t)strtoull(env, NULL, 10) << 20;
    size_t half = be->memory_budget / 2, cap = (size_t)8 << 30;
    return half < cap ? half : cap;
}

static int cpu_bf16(const sc_backend *be) { return ((const sc_cpu_impl *)be->impl)->bf16; }

static void cpu_weights_release(sc_backend *be, sc_mat *const *mats, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (mats[i]->dtype == SC_DTYPE_BF16) cpu_free(be, mats[i]->prepared);
        mats[i]->prepared = NULL;
    }
}

static sc_status cpu_weights_prepare(sc_backend *be, sc_mat *const *mats, size_t n) {
    if (cpu_bf16(be)) return SC_OK;   // oneDNN reads the BF16 weights as they are
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (mats[i]->dtype == SC_DTYPE_BF16 && !mats[i]->prepared) bytes += (size_t)(mats[i]->rows * mats[i]->cols) * sizeof(float);
    const size_t budget = f32_copy_budget(be);
    if (bytes == 0 || bytes > budget) {
        if (bytes) sc_log(SC_LOG_DEBUG, "cpu backend: F32 weight copies need %.1f GiB, over the %.1f GiB allowed: products widen BF16 per call",
                          bytes / 1073741824.0, budget / 1073741824.0);
        return SC_OK;
    }
    for (size_t i = 0; i < n; i++) {
        sc_mat *w = mats[i];
        if (w->dtype != SC_DTYPE_BF16 || w->prepared) continue;
        const int64_t count = w->rows * w->cols;
        float *f = NULL;
        sc_status st = cpu_alloc(be, sizeof(float) * (size_t)count, "an F32 weight copy", (void **)&f);
        if (st) {
            cpu_weights_release(be, mats, n);
            return sc_error_wrap(st, "F32 weight copies (%.1f GiB; set SC_F32_CACHE_MB=0 to run without them): ", bytes / 1073741824.0);
        }
        const uint16_t *src = w->data;
        #pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < count; j++) f[j] = sc_bf16_to_f32(src[j]);
        w->prepared = f;
    }
    return SC_OK;
}

// --- Op tables ----------------------------------------------------------------------------------

#define CPU_OPS(isa) {                                                                            \
    .alloc = cpu_alloc, .free = cpu_free, .upload = cpu_copy, .download = cpu_copy, .copy = cpu_copy, \
    .memset = cpu_memset, .sync = cpu_sync,                                                       \
    .host_alloc = cpu_host_alloc, .host_free = cpu_host_free,                                     \
    .download_async = cpu_copy, .upload_async = cpu_copy,                                         \
    .event_create = cpu_event_create, .event_destroy = cpu_event_destroy,                         \
    .event_record = cpu_event_record, .event_wait = cpu_event_wait, .event_query = cpu_event_query, \
    .weights_prepare = cpu_weights_prepare, .weights_release = cpu_weights_release,              \
    .matmul = sc_cpu_matmul_##isa, .matmul_dx = sc_cpu_matmul_dx_##isa,                           \
    .embed = sc_cpu_embed_##isa, .gather_rows = sc_cpu_gather_rows_##isa,                         \
    .scatter_add_rows = sc_cpu_scatter_add_rows_##isa, .add = sc_cpu_add_##isa,                   \
    .add_row = sc_cpu_add_row_##isa, .col_sum = sc_cpu_col_sum_##isa,                             \
    .rmsnorm = sc_cpu_rmsnorm_##isa, .rmsnorm_backward = sc_cpu_rmsnorm_backward_##isa,           \
    .rope = sc_cpu_rope_##isa, .swiglu = sc_cpu_swiglu_##isa,                                     \
    .swiglu_backward = sc_cpu_swiglu_backward_##isa, .kv_write = sc_cpu_kv_write_##isa,           \
    .attention = sc_cpu_attention_##isa, .attention_backward = sc_cpu_attention_backward_##isa,   \
    .adapter_forward = sc_cpu_adapter_forward_##isa, .adapter_backward = sc_cpu_adapter_backward_##isa, \
    .divergence_loss = sc_cpu_divergence_loss_##isa, .adamw = sc_cpu_adamw_##isa,                 \
    .sample = sc_cpu_sample_##isa,                                                                \
}

static const sc_backend_ops cpu_ops_generic = CPU_OPS(generic);
#ifdef SC_HAVE_CPU_AVX2
static const sc_backend_ops cpu_ops_avx2 = CPU_OPS(avx2);
#endif

static int cpu_has_avx2(void) {
#if defined(SC_HAVE_CPU_AVX2) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

static void cpu_destroy(sc_backend *be) {
    sc_cpu_impl *impl = be->impl;
    if (!impl) return;
    sc_cpu_dnnl_free(impl->dnnl);
    sc_cpu_strict_free(impl->strict);
    free(impl);
    be->impl = NULL;
}

int sc_cpu_bf16_available(void) { return cpu_has_avx2() && sc_cpu_dnnl_available(); }

sc_status sc_cpu_backend_create(const sc_backend_opts *o, sc_backend **out) {
    const char *isa = o->isa && *o->isa ? o->isa : getenv("SC_CPU_ISA");
    if (!isa || !*isa) isa = "auto";
    int want_avx2;
    if (!strcmp(isa, "auto")) want_avx2 = cpu_has_avx2();
    else if (!strcmp(isa, "generic")) want_avx2 = 0;
    else if (!strcmp(isa, "avx2")) {
        if (!cpu_has_avx2())
            return sc_errorf(SC_ERR_ARG, "CPU instruction set 'avx2' was asked for (SC_CPU_ISA or the options) but this %s; use 'auto' or 'generic'",
#ifdef SC_HAVE_CPU_AVX2
                             "CPU lacks AVX2, FMA or F16C"
#else
                             "build has no avx2 kernels (not an x86-64 build)"
#endif
            );
        want_avx2 = 1;
    } else {
        return sc_errorf(SC_ERR_ARG, "CPU instruction set '%s' is not known (SC_CPU_ISA): use auto, avx2 or generic", isa);
    }
    const int from_opts = o->precision && *o->precision;
    const char *prec = from_opts ? o->precision : getenv("SC_PRECISION");
    if (!prec || !*prec) prec = "auto";
    int bf16;
    if (!strcmp(prec, "auto")) bf16 = want_avx2 && sc_cpu_bf16_available();
    else if (!strcmp(prec, "f32")) bf16 = 0;
    else if (!strcmp(prec, "bf16")) {
        if (!sc_cpu_bf16_available())
            return sc_errorf(SC_ERR_ARG, "precision 'bf16' was asked for (%s) but this %s; use 'f32' or 'auto'",
                             from_opts ? "--precision or the config's \"precision\"" : "SC_PRECISION",
#ifdef SC_HAVE_DNNL
                             "CPU lacks AVX-512 BF16 (or AVX2 and FMA)"
#else
                             "build has no oneDNN (install libdnnl-dev and rebuild)"
#endif
            );
        bf16 = 1;
    } else {
        return sc_errorf(SC_ERR_ARG, "precision '%s' is not known (%s): use auto, f32 or bf16", prec,
                         from_opts ? "--precision or the config's \"precision\"" : "SC_PRECISION");
    }
    sc_backend *be = sc_calloc(1, sizeof *be, "CPU backend");
    sc_cpu_impl *impl = be ? sc_calloc(1, sizeof *impl, "CPU backend state") : NULL;
    if (!impl) { free(be); return SC_ERR_MEM; }
    be->device = SC_DEVICE_CPU;
    be->memory_budget = o->memory_budget ? o->memory_budget : sc_memory_budget_default();
    be->impl = impl;
    be->destroy = cpu_destroy;
#ifdef SC_HAVE_CPU_AVX2
    if (want_avx2) { impl->isa_ops = &cpu_ops_avx2; be->name = bf16 ? "cpu (avx2, bf16)" : "cpu (avx2)"; }
    else
#endif
    { impl->isa_ops = &cpu_ops_generic; be->name = bf16 ? "cpu (generic, bf16)" : "cpu (generic)"; }
    (void)want_avx2;
    impl->ops = *impl->isa_ops;
    impl->bf16 = bf16;
    be->precision = bf16 ? "bf16" : "f32";
    if (bf16) {
        sc_status st = sc_cpu_dnnl_create(&impl->dnnl);
        if (st) { cpu_destroy(be); free(be); return st; }
        impl->ops.matmul = sc_cpu_matmul_bf16;
        impl->ops.matmul_dx = sc_cpu_matmul_dx_bf16;
    }
    be->op = &impl->ops;
    const char *strict = getenv("SC_CPU_STRICT");
    if (strict && !strcmp(strict, "1")) {
        sc_status st = sc_cpu_backend_make_strict(be);
        if (st) { cpu_destroy(be); free(be); return st; }
        be->name = want_avx2 ? (bf16 ? "cpu (avx2, bf16, strict memory)" : "cpu (avx2, strict memory)")
                             : (bf16 ? "cpu (generic, bf16, strict memory)" : "cpu (generic, strict memory)");
    }
    sc_backend_init_arenas(be);
    *out = be;
    return SC_OK;
}
