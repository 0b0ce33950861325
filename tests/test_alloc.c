// test_alloc.c — the steady state allocates nothing: after one warm-up run, a decode step of
// generation and a whole optimizer step of the search make no heap allocation (counted by
// wrapping malloc, calloc, realloc and the aligned allocators of this process, so calls from
// libgomp count too) and no backend allocation. Prints allocations per decode token and per
// training step (expected: 0).
//
// One allocation is not ours and is counted apart: OpenBLAS's threaded sgemm driver
// (sgemm_thread_*, used for products of many rows on more than one thread) mallocs its job
// table on every call in Debian's build. It is a small block served from the allocator's
// per-thread cache; the only way around it is another GEMM library.
//
// The bf16 precision (oneDNN) is counted the same way in a second pass where the CPU runs it:
// oneDNN's C API builds a C++ argument map on every primitive execution (heap allocations
// from libdnnl and libstdc++, which nothing else here uses), counted apart and printed; the
// rest of the process and the backend must still allocate nothing.
#include "testutil.h"
#include "steerclear/generate.h"
#include "steerclear/make_model.h"
#include "steerclear/rng.h"
#include "steerclear/search.h"

#include <link.h>
#include <stdlib.h>

// --- Counting allocator: every allocation of the process goes through these -----------------
// (Not under AddressSanitizer, which owns malloc itself: the test reports itself skipped.)
#ifndef __SANITIZE_ADDRESS__

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static volatile int g_counting;
static volatile long g_allocs, g_blas_allocs, g_dnnl_allocs;
static uintptr_t g_blas_lo, g_blas_hi;   // where libopenblas is mapped
static uintptr_t g_dnnl_lo[2], g_dnnl_hi[2];   // libdnnl and libstdc++

// Count one allocation made from `caller` (the return address into whoever called malloc).
static void note(const void *caller) {
    if (!g_counting) return;
    uintptr_t a = (uintptr_t)caller;
    if (a >= g_blas_lo && a < g_blas_hi) __atomic_add_fetch(&g_blas_allocs, 1, __ATOMIC_RELAXED);
    else if ((a >= g_dnnl_lo[0] && a < g_dnnl_hi[0]) || (a >= g_dnnl_lo[1] && a < g_dnnl_hi[1])) __atomic_add_fetch(&g_dnnl_allocs, 1, __ATOMIC_RELAXED);
    else __atomic_add_fetch(&g_allocs, 1, __ATOMIC_RELAXED);
}
#define NOTE() note(__builtin_return_address(0))

void *malloc(size_t n) { NOTE(); return __libc_malloc(n); }
void *calloc(size_t n, size_t s) { NOTE(); return __libc_calloc(n, s); }
void *realloc(void *p, size_t n) { NOTE(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t a, size_t n) { NOTE(); return __libc_memalign(a, n); }
void *memalign(size_t a, size_t n);   // glibc extension (malloc.h), declared here for -Wmissing-prototypes
void *memalign(size_t a, size_t n) { NOTE(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    NOTE();
    void *p = __libc_memalign(a, n);
    if (!p) return 12;   // ENOMEM
    *out = p;
    return 0;
}

#else
static volatile int g_counting;
static volatile long g_allocs, g_blas_allocs, g_dnnl_allocs;
static uintptr_t g_blas_lo, g_blas_hi, g_dnnl_lo[2], g_dnnl_hi[2];
#endif

static void counting(int on) {
    if (on) g_allocs = g_blas_allocs = g_dnnl_allocs = 0;
    g_counting = on;
}

// The address range of the mapped library whose name contains data (a const char *): into
// g_blas_lo/hi for libopenblas, g_dnnl_lo/hi[0] for libdnnl, [1] for libstdc++.
static int find_lib(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    const char *want = data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, want)) return 0;
    uintptr_t *lo_p = &g_blas_lo, *hi_p = &g_blas_hi;
    if (!strcmp(want, "libdnnl")) { lo_p = &g_dnnl_lo[0]; hi_p = &g_dnnl_hi[0]; }
    else if (!strcmp(want, "libstdc++")) { lo_p = &g_dnnl_lo[1]; hi_p = &g_dnnl_hi[1]; }
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (!*lo_p || lo < *lo_p) *lo_p = lo;
        if (hi > *hi_p) *hi_p = hi;
    }
    return 1;
}

// --- Generation -------------------------------------------------------------------------------

static void test_decode(const sc_model *m, sc_backend *be) {
    enum { NP = 4, NEW = 24 };
    int32_t pr[NP][12];
    const int len[NP] = {3, 9, 6, 12};
    const int32_t *pp[NP];
    for (int p = 0; p < NP; p++) {
        for (int i = 0; i < len[p]; i++) pr[p][i] = (int32_t)((p * 131 + i * 17 + 5) % m->cfg.vocab);
        pp[p] = pr[p];
    }
    sc_sample_opts o;
    sc_sample_opts_default(&o);
    o.max_new_tokens = NEW; o.temperature = 0.8f; o.top_k = 40; o.top_p = 0.9f; o.seed = 3;
    sc_gen_plan plan = {.max_seqs = NP, .max_prompt = 12, .max_new = NEW};
    sc_generator *G = NULL;
    CHECK_OK(sc_generator_create(m, be, &plan, &G));
    if (!G) return;
    CHECK_OK(sc_generator_run(G, pp, len, NP, NULL, NULL, &o, NULL));   // warm-up
    // the same generation again, step by step, counting from after the prefill
    const uint64_t be_allocs = be->stats.n_alloc;
    CHECK_OK(sc_gen_start(G->gen, pp, len, NP, NULL, NULL, &o));
    CHECK_OK(sc_gen_stage_forward(G->stage, G->gen, NULL));
    CHECK_OK(sc_gen_stage_sample(G->stage, G->gen, &o));
    CHECK_OK(sc_gen_advance(G->gen, G->stage->tokens));
    long tokens = 0;
    counting(1);
    while (!sc_gen_done(G->gen)) {
        tokens += sc_gen_n_sample(G->gen);
        if (sc_gen_stage_forward(G->stage, G->gen, NULL) || sc_gen_stage_sample(G->stage, G->gen, &o) ||
            sc_gen_advance(G->gen, G->stage->tokens)) break;
    }
    counting(0);
    CHECK(sc_gen_done(G->gen) && tokens >= NP);
    printf("decode: %ld heap allocations over %ld decoded tokens (%.3f per token); %llu backend allocations; OpenBLAS: %ld; oneDNN: %ld\n",
           g_allocs, tokens, tokens ? (double)g_allocs / tokens : 0.0, (unsigned long long)(be->stats.n_alloc - be_allocs), g_blas_allocs,
           g_dnnl_allocs);
    CHECKF(g_allocs == 0, "decoding allocated %ld times over %ld tokens", g_allocs, tokens);
    CHECK(be->stats.n_alloc == be_allocs);
    sc_generator_free(G);
}

// --- The training step ----------------------------------------------------------------------

static void test_step(const sc_model *m, sc_backend *be, const sc_tokenizer *tok, sc_adapter_kind kind, int checkpoint) {
    sc_search_config cfg;
    sc_search_config_default(&cfg);
    cfg.adapter = kind;
    cfg.batch_size = 3;
    cfg.prompts_per_search = 12;   // 4 steps
    cfg.max_new_tokens = 10;
    cfg.checkpoint_activations = checkpoint;
    cfg.loss_chunk = 8;
    CHECK_OK(sc_search_config_validate(&cfg));
    sc_search_run run = {.model = m, .be = be, .tok = tok, .cfg = &cfg};
    enum { PL = 14 };
    int32_t ids[3][PL];
    const int32_t *prompts[3];
    int len[3] = {PL, 5, 9};
    int32_t idx[3] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        for (int t = 0; t < PL; t++) { uint32_t r[4]; sc_philox4x32(7, (uint64_t)i, (uint64_t)t, r); ids[i][t] = (int32_t)(r[0] % 4000u); }
        prompts[i] = ids[i];
    }
    sc_search_work *w = NULL;
    sc_search_state *s = NULL;
    CHECK_OK(sc_search_work_create(&run, PL, &w));
    CHECK_OK(sc_search_state_create(be, &cfg, 0, m->cfg.n_layers, m->cfg.hidden, &s));
    if (!w || !s) { sc_search_work_free(w); sc_search_state_free(s); return; }
    CHECK(sc_search_work_checkpointing(w) == checkpoint);
    CHECK_OK(sc_search_step(&run, w, s, prompts, len, idx, 3));   // warm-up
    for (int k = 1; k < 3; k++) {
        const uint64_t be_allocs = be->stats.n_alloc;
        for (int i = 0; i < 3; i++) idx[i] = (int32_t)(3 * k + i);   // other streams: other sampled lengths
        counting(1);
        sc_status st = sc_search_step(&run, w, s, prompts, len, idx, 3);
        counting(0);
        CHECK_OK(st);
        int gen = 0;
        for (int i = 0; i < 3; i++) gen += s->steps[k].gen_len[i];
        printf("step %d (%s adapter, checkpointing %s): %ld heap allocations, %llu backend allocations (%d sampled tokens); "
               "OpenBLAS's threaded sgemm: %ld; oneDNN: %ld\n", k + 1, sc_adapter_kind_name(kind), checkpoint ? "on" : "off", g_allocs,
               (unsigned long long)(be->stats.n_alloc - be_allocs), gen, g_blas_allocs, g_dnnl_allocs);
        CHECKF(g_allocs == 0, "training step %d allocated %ld times", k + 1, g_allocs);
        CHECK(be->stats.n_alloc == be_allocs);
    }
    CHECK(s->steps_done == 3 && isfinite(s->steps[2].loss));
    sc_search_state_free(s);
    sc_search_work_free(w);
}

int main(void) {
#ifdef __SANITIZE_ADDRESS__
    printf("test_alloc: SKIP (AddressSanitizer replaces malloc; the count runs in the normal build)\n");
    return 77;
#endif
    const char *tokpath = sc_test_env("SC_TOKENIZER", "");
    if (!tokpath[0] || !sc_file_exists(tokpath)) { printf("test_alloc: SKIP (no tokenizer at $SC_TOKENIZER)\n"); return 77; }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/m", sc_test_tmpdir());
    sc_make_model_opts mo = {0};
    CHECK_OK(sc_make_model_preset("tiny", &mo));
    mo.cfg.n_layers = 3;
    mo.seed = 4;
    mo.tokenizer = tokpath;
    CHECK_OK(sc_make_model(dir, &mo));
    sc_backend *be = sc_test_backend();
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    CHECK_OK(sc_model_load(dir, 0, -1, be, &m));
    CHECK_OK(sc_tok_load(tokpath, &tok));
    if (!m || !tok) return sc_test_finish("test_alloc");
    dl_iterate_phdr(find_lib, (void *)"libopenblas");
    dl_iterate_phdr(find_lib, (void *)"libdnnl");
    dl_iterate_phdr(find_lib, (void *)"libstdc++");
    CHECKF(g_blas_hi > g_blas_lo, "libopenblas is not mapped into this process");
    test_decode(m, be);
    test_step(m, be, tok, SC_ADAPTER_SHARED, 0);
    test_step(m, be, tok, SC_ADAPTER_PER_BLOCK, 1);
    sc_model_free(m);
    // qwen3 (per-head q/k norms, head_dim 24 != hidden / heads): its extra buffers come from
    // the same plan, so its steady state allocates nothing either
    m = NULL;
    snprintf(dir, sizeof dir, "%s/m3", sc_test_tmpdir());
    mo.cfg.n_layers = 2;
    mo.cfg.arch = SC_ARCH_QWEN3;
    mo.cfg.head_dim = 24;
    CHECK_OK(sc_make_model(dir, &mo));
    CHECK_OK(sc_model_load(dir, 0, -1, be, &m));
    if (m) {
        printf("qwen3:\n");
        test_decode(m, be);
        test_step(m, be, tok, SC_ADAPTER_SHARED, 1);
        sc_model_free(m);
    }
    // bf16 precision, where this CPU and build have it: the same steady state apart from
    // oneDNN's own per-execution allocations (counted apart, see the top)
    sc_backend_opts bo;
    sc_backend_opts_default(&bo);
    bo.precision = "bf16";
    sc_backend *bf = NULL;
    if (sc_backend_create(&bo, &bf) == SC_OK) {
        snprintf(dir, sizeof dir, "%s/m", sc_test_tmpdir());
        m = NULL;
        CHECK_OK(sc_model_load(dir, 0, -1, bf, &m));
        if (m) {
            printf("%s:\n", bf->name);
            test_decode(m, bf);
            test_step(m, bf, tok, SC_ADAPTER_SHARED, 0);
            sc_model_free(m);
        }
        sc_backend_free(bf);
    } else {
        printf("bf16 precision not available here (%s): its pass is skipped\n", sc_last_error());
    }
    sc_tok_free(tok);
    return sc_test_finish("test_alloc");
}
