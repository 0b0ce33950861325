// test_cuda_backend.c — the CUDA backend against its CPU twin: every op of the table on random
// inputs of several shapes (odd ones included), each GPU output buffer filled with NaN before
// the call so an element the op fails to write shows up; then a tiny BF16 model end to end
// (logits of the base model, the adapted model's divergence loss and adapter gradients, one
// AdamW step); top-k / top-p sampling on many shapes and kinds of rows (ids equal to the CPU's up to
// rounding at a boundary, differences counted); pinned host memory with the queued copies and
// events of pipeline staging; generation with the KV cache (with an adapter hook,
// batch shrinking as sequences stop) on the GPU against the CPU (agreement of the greedy tokens
// measured) and with decode steps in CUDA graphs (SC_CUDA_GRAPHS=1) against op by op (bitwise); the
// GEMMs once more through the fallback kernel used where cuBLASLt has no algorithm
// (SC_CUDA_GEMM_FALLBACK=1). Skipped (exit 77) when this build has no CUDA backend or
// no GPU is usable (CI, and every CPU machine): it only means something on a GPU
// (benchmarks/gpu/check.sh runs it).
//
// Tolerances, each with its reason:
#define TOL_EXACT 0.0      // copies, and sums the GPU does in the CPU's order and rounding
#define TOL_F32 2e-5       // float32 sums in another order (tree vs. loop), relative to max |ref|
#define TOL_BF16 1.5e-2    // a GEMM whose activations are rounded to BF16 (8 bits of mantissa)
#define TOL_LOSS 1e-9      // the loss works in double over the vocabulary
#define TOL_MODEL 5e-2     // a whole model: BF16 rounding of every GEMM input, compounded over blocks
#define TOL_MODEL_GRAD 1e-1 // gradients and the KL of a whole model: differences of two BF16-rounded
                            // passes (P and Q), so the rounding noise is large relative to them
#define TOL_SDPA 2e-2      // cuDNN's fused attention: q, k, v, the probabilities and out in BF16
#define TOL_SDPA_GRAD 5e-2 // its backward: dout, out and dS in BF16 too, summed over every position
#include "testutil.h"
#include "sample_ref.h"
#include "steerclear/adapter.h"
#include "steerclear/engine.h"
#include "steerclear/generate.h"
#include "steerclear/loss.h"
#include "steerclear/make_model.h"
#include "steerclear/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// cuda.c (src/backend/backend_internal.h): attention calls by path. Weak: this test is built
// (and skips) without the CUDA backend too.
extern const char *sc_cuda_attention_paths(sc_backend *be, uint64_t sdpa_runs[2], uint64_t own_runs[2]) __attribute__((weak));

static sc_backend *g_cpu, *g_gpu;
static uint64_t g_stream = 1;

static float *randn(size_t n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    sc_rng_normal(4242, g_stream++, 0, x, n);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}
static float *hcopy(const float *x, size_t n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    memcpy(y, x, sizeof(float) * n);
    return y;
}
// GPU copy of host floats
static float *gd(const float *h, size_t n) {
    float *p = NULL;
    CHECK_OK(sc_backend_alloc_floats(g_gpu, n ? n : 1, "test array", &p));
    if (p && h && n) CHECK_OK(g_gpu->op->upload(g_gpu, p, h, sizeof(float) * n));
    return p;
}
// GPU array of NaN (every byte 0xff)
static float *gnan(size_t n) {
    float *p = gd(NULL, n);
    if (p) CHECK_OK(g_gpu->op->memset(g_gpu, p, 0xff, sizeof(float) * (n ? n : 1)));
    return p;
}
static float *gget(const float *d, size_t n) {
    float *h = malloc(sizeof(float) * (n ? n : 1));
    CHECK_OK(g_gpu->op->download(g_gpu, h, d, sizeof(float) * n));
    return h;
}
static void gfree(void *p) { g_gpu->op->free(g_gpu, p); }

// max |a - b| / max |b| over n (NaN anywhere fails)
static void cmp(const char *what, const float *gpu, const float *cpu, size_t n, double tol) {
    double mx = 0, md = 0;
    size_t at = 0;
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(gpu[i]) && !isnan(cpu[i])) { nan = 1; at = i; break; }
        double d = fabs((double)gpu[i] - cpu[i]);
        if (d > md) { md = d; at = i; }
        if (fabs(cpu[i]) > mx) mx = fabs(cpu[i]);
    }
    double rel = mx > 0 ? md / mx : md;
    sc_test_checks++;
    if (nan || !(rel <= tol))
        sc_test_fail(__FILE__, __LINE__, "%s: %s at %zu (gpu %.9g, cpu %.9g), relative error %.3g > %.3g", what, nan ? "NaN (unwritten?)" : "differs",
                     at, n ? gpu[at] : 0.0, n ? cpu[at] : 0.0, rel, tol);
}
static void cmp_dev(const char *what, const float *gpu_dev, const float *cpu, size_t n, double tol) {
    float *h = gget(gpu_dev, n);
    cmp(what, h, cpu, n, tol);
    free(h);
}

// --- memory -----------------------------------------------------------------------------------------

static void test_memory(void) {
    const sc_backend_stats before = g_gpu->stats;
    float host[1000], back[1000];
    for (int i = 0; i < 1000; i++) host[i] = (float)i * 0.25f;
    float *a = gd(host, 1000), *b = gnan(1000);
    CHECK(g_gpu->stats.n_alloc == before.n_alloc + 2);
    CHECK(g_gpu->stats.bytes_live == before.bytes_live + 8000);
    CHECK_OK(g_gpu->op->copy(g_gpu, b, a, sizeof host));
    CHECK_OK(g_gpu->op->download(g_gpu, back, b, sizeof back));
    CHECK(!memcmp(back, host, sizeof host));
    CHECK_OK(g_gpu->op->memset(g_gpu, b, 0, 400));
    CHECK_OK(g_gpu->op->download(g_gpu, back, b, sizeof back));
    CHECK(back[0] == 0.0f && back[99] == 0.0f && back[100] == 25.0f);
    gfree(a);
    gfree(b);
    CHECK(g_gpu->stats.bytes_live == before.bytes_live);
    CHECK(g_gpu->stats.n_free == before.n_free + 2);
}

// Pinned host memory, queued copies and events (the pipeline's staging, src/dist/pipeline.c): a
// large download queued behind work is not complete until its event has passed; after
// event_wait the pinned bytes are the device's; an upload queued from pinned memory lands.
static void test_pinned_async(void) {
    const size_t n = (size_t)16 << 20;   // 64 MiB: the copy takes long enough to be seen pending
    float *pin = NULL, *pin2 = NULL;
    void *ev = NULL;
    CHECK_OK(g_gpu->op->host_alloc(g_gpu, sizeof(float) * n, "pinned test buffer", (void **)&pin));
    CHECK_OK(g_gpu->op->host_alloc(g_gpu, sizeof(float) * n, "pinned test buffer 2", (void **)&pin2));
    CHECK_OK(g_gpu->op->event_create(g_gpu, &ev));
    float *a = gd(NULL, n), *b = gnan(n);
    if (!pin || !pin2 || !ev || !a || !b) return;
    for (size_t i = 0; i < n; i++) pin[i] = (float)(i % 1000) * 0.5f;
    CHECK_OK(g_gpu->op->upload_async(g_gpu, a, pin, sizeof(float) * n));
    CHECK_OK(g_gpu->op->copy(g_gpu, b, a, sizeof(float) * n));
    memset(pin2, 0, sizeof(float) * n);
    CHECK_OK(g_gpu->op->download_async(g_gpu, pin2, b, sizeof(float) * n));
    CHECK_OK(g_gpu->op->event_record(g_gpu, ev));
    int done = -1;
    CHECK_OK(g_gpu->op->event_query(g_gpu, ev, &done));
    CHECK(done == 0 || done == 1);
    printf("test_cuda_backend: a 64 MiB queued upload + copy + download: %s at once after queueing\n", done ? "complete" : "pending");
    CHECK_OK(g_gpu->op->event_wait(g_gpu, ev));
    CHECK_OK(g_gpu->op->event_query(g_gpu, ev, &done));
    CHECK(done == 1);
    CHECK(!memcmp(pin2, pin, sizeof(float) * n));
    g_gpu->op->event_destroy(g_gpu, ev);
    gfree(a);
    gfree(b);
    g_gpu->op->host_free(g_gpu, pin);
    g_gpu->op->host_free(g_gpu, pin2);
}

// --- GEMMs --------------------------------------------------------------------------------------------

static void bf16_round(float *x, size_t n, uint16_t *out) {
    for (size_t i = 0; i < n; i++) { out[i] = sc_f32_to_bf16(x[i]); x[i] = sc_bf16_to_f32(out[i]); }
}

static void test_matmul(void) {
    static const int shapes[][3] = {{1, 17, 33}, {5, 64, 48}, {37, 129, 65}, {128, 96, 256}, {3, 1, 7}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int bf = 0; bf < 2; bf++) {
            const int T = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            float *w = randn((size_t)N * K, 0.2f), *x = randn((size_t)T * K, 1.0f), *bias = randn(N, 0.5f), *dy = randn((size_t)T * N, 1.0f);
            uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)N * K);
            bf16_round(w, (size_t)N * K, wb);   // the same weights either way
            sc_mat Wc = {.data = bf ? (const void *)wb : (const void *)w, .dtype = bf ? SC_DTYPE_BF16 : SC_DTYPE_F32, .rows = N, .cols = K};
            sc_mat Wg = Wc;
            sc_mat *lc[] = {&Wc}, *lg[] = {&Wg};
            CHECK_OK(g_cpu->op->weights_prepare(g_cpu, lc, 1));
            CHECK_OK(g_gpu->op->weights_prepare(g_gpu, lg, 1));
            CHECK(Wg.prepared != NULL);
            const double tol = bf ? TOL_BF16 : TOL_F32;
            char what[96];
            for (int wb_ = 0; wb_ < 2; wb_++) {
                float *out = malloc(sizeof(float) * (size_t)T * N);
                CHECK_OK(g_cpu->op->matmul(g_cpu, out, x, &Wc, wb_ ? bias : NULL, T));
                float *dx_ = gd(x, (size_t)T * K), *db = gd(bias, N), *dout = gnan((size_t)T * N);
                CHECK_OK(g_gpu->op->matmul(g_gpu, dout, dx_, &Wg, wb_ ? db : NULL, T));
                snprintf(what, sizeof what, "matmul %s T=%d N=%d K=%d bias=%d", bf ? "BF16" : "F32", T, N, K, wb_);
                cmp_dev(what, dout, out, (size_t)T * N, tol);
                free(out); gfree(dx_); gfree(db); gfree(dout);
            }
            for (int acc = 0; acc < 2; acc++) {
                float *dx0 = randn((size_t)T * K, 1.0f), *cdx = hcopy(dx0, (size_t)T * K);
                CHECK_OK(g_cpu->op->matmul_dx(g_cpu, cdx, dy, &Wc, T, acc));
                float *gdy = gd(dy, (size_t)T * N), *gdx = acc ? gd(dx0, (size_t)T * K) : gnan((size_t)T * K);
                CHECK_OK(g_gpu->op->matmul_dx(g_gpu, gdx, gdy, &Wg, T, acc));
                snprintf(what, sizeof what, "matmul_dx %s T=%d N=%d K=%d accumulate=%d", bf ? "BF16" : "F32", T, N, K, acc);
                cmp_dev(what, gdx, cdx, (size_t)T * K, tol);
                free(dx0); free(cdx); gfree(gdy); gfree(gdx);
            }
            if (bf) {   // the embedding reads the same table
                int32_t ids[7] = {0, N - 1, 3 % N, 5 % N, 0, 2 % N, N / 2};
                float *ce = malloc(sizeof(float) * 7 * K);
                CHECK_OK(g_cpu->op->embed(g_cpu, ce, &Wc, ids, 7));
                float *ge = gnan((size_t)7 * K);
                CHECK_OK(g_gpu->op->embed(g_gpu, ge, &Wg, ids, 7));
                cmp_dev("embed", ge, ce, (size_t)7 * K, TOL_EXACT);
                free(ce); gfree(ge);
            }
            g_cpu->op->weights_release(g_cpu, lc, 1);
            g_gpu->op->weights_release(g_gpu, lg, 1);
            CHECK(Wg.prepared == NULL);
            free(w); free(wb); free(x); free(bias); free(dy);
        }
}

// --- rows ---------------------------------------------------------------------------------------------

static void test_rows(void) {
    static const int Cs[] = {1, 31, 896};
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++) {
        const int C = Cs[ci], T = 13;
        const int rows[5] = {12, 0, 7, 3, 8};
        float *x = randn((size_t)T * C, 1.0f), *y = randn((size_t)T * C, 1.0f), *v = randn(C, 1.0f);
        float *gx = gd(x, (size_t)T * C);
        // gather
        float *cg = malloc(sizeof(float) * 5 * C);
        CHECK_OK(g_cpu->op->gather_rows(g_cpu, cg, x, rows, 5, C));
        float *gg = gnan((size_t)5 * C);
        CHECK_OK(g_gpu->op->gather_rows(g_gpu, gg, gx, rows, 5, C));
        cmp_dev("gather_rows", gg, cg, (size_t)5 * C, TOL_EXACT);
        // scatter-add
        float *cy = hcopy(y, (size_t)T * C), *gy = gd(y, (size_t)T * C);
        CHECK_OK(g_cpu->op->scatter_add_rows(g_cpu, cy, cg, rows, 5, C));
        CHECK_OK(g_gpu->op->scatter_add_rows(g_gpu, gy, gg, rows, 5, C));
        cmp_dev("scatter_add_rows", gy, cy, (size_t)T * C, TOL_EXACT);
        // add, add_row
        CHECK_OK(g_cpu->op->add(g_cpu, cy, x, (int64_t)T * C));
        CHECK_OK(g_gpu->op->add(g_gpu, gy, gx, (int64_t)T * C));
        cmp_dev("add", gy, cy, (size_t)T * C, TOL_EXACT);
        float *gv = gd(v, C);
        CHECK_OK(g_cpu->op->add_row(g_cpu, cy, v, -1.75f, T, C));
        CHECK_OK(g_gpu->op->add_row(g_gpu, gy, gv, -1.75f, T, C));
        cmp_dev("add_row", gy, cy, (size_t)T * C, TOL_EXACT);
        // col_sum: double, the same order
        double *cacc = calloc((size_t)C, sizeof(double)), *hacc = malloc(sizeof(double) * C), *gacc = NULL;
        for (int c = 0; c < C; c++) cacc[c] = 0.5 * c;
        CHECK_OK(g_gpu->op->alloc(g_gpu, sizeof(double) * C, "test sums", (void **)&gacc));
        CHECK_OK(g_gpu->op->upload(g_gpu, gacc, cacc, sizeof(double) * C));
        CHECK_OK(g_cpu->op->col_sum(g_cpu, cacc, x, T, C));
        CHECK_OK(g_gpu->op->col_sum(g_gpu, gacc, gx, T, C));
        CHECK_OK(g_gpu->op->download(g_gpu, hacc, gacc, sizeof(double) * C));
        CHECKF(!memcmp(hacc, cacc, sizeof(double) * C), "col_sum C=%d: not bit-identical to the CPU", C);
        free(x); free(y); free(v); free(cg); free(cy); free(cacc); free(hacc);
        gfree(gx); gfree(gg); gfree(gy); gfree(gv); gfree(gacc);
    }
}

// --- block maths --------------------------------------------------------------------------------------

static void test_norm_rope_swiglu(void) {
    static const int shapes[][2] = {{1, 16}, {9, 897}, {33, 3584}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int T = shapes[si][0], C = shapes[si][1];
        const size_t n = (size_t)T * C;
        float *x = randn(n, 2.0f), *w = randn(C, 1.0f), *dy = randn(n, 1.0f), *d0 = randn(n, 1.0f);
        float *co = malloc(sizeof(float) * n), *cr = malloc(sizeof(float) * T);
        CHECK_OK(g_cpu->op->rmsnorm(g_cpu, co, cr, x, w, T, C, 1e-6f));
        float *gx = gd(x, n), *gw = gd(w, C), *go = gnan(n), *gr = gnan(T), *gdy = gd(dy, n);
        CHECK_OK(g_gpu->op->rmsnorm(g_gpu, go, gr, gx, gw, T, C, 1e-6f));
        cmp_dev("rmsnorm", go, co, n, TOL_F32);
        cmp_dev("rmsnorm rstd", gr, cr, T, TOL_F32);
        for (int acc = 0; acc < 2; acc++) {
            float *cdx = hcopy(d0, n), *gdx = acc ? gd(d0, n) : gnan(n);
            CHECK_OK(g_cpu->op->rmsnorm_backward(g_cpu, cdx, dy, x, w, cr, T, C, acc));
            CHECK_OK(g_gpu->op->rmsnorm_backward(g_gpu, gdx, gdy, gx, gw, gr, T, C, acc));
            cmp_dev(acc ? "rmsnorm_backward (accumulate)" : "rmsnorm_backward", gdx, cdx, n, TOL_F32);
            free(cdx); gfree(gdx);
        }
        // swiglu on the same shapes
        float *u = randn(n, 1.0f), *gu = gd(u, n);
        CHECK_OK(g_cpu->op->swiglu(g_cpu, co, x, u, (int64_t)n));
        float *gs = gnan(n);
        CHECK_OK(g_gpu->op->swiglu(g_gpu, gs, gx, gu, (int64_t)n));
        cmp_dev("swiglu", gs, co, n, TOL_F32);
        float *cdg = malloc(sizeof(float) * n), *cdu = malloc(sizeof(float) * n), *gdg = gnan(n), *gdu = gnan(n);
        CHECK_OK(g_cpu->op->swiglu_backward(g_cpu, cdg, cdu, dy, x, u, (int64_t)n));
        CHECK_OK(g_gpu->op->swiglu_backward(g_gpu, gdg, gdu, gdy, gx, gu, (int64_t)n));
        cmp_dev("swiglu_backward dg", gdg, cdg, n, TOL_F32);
        cmp_dev("swiglu_backward du", gdu, cdu, n, TOL_F32);
        free(x); free(w); free(dy); free(d0); free(co); free(cr); free(u); free(cdg); free(cdu);
        gfree(gx); gfree(gw); gfree(go); gfree(gr); gfree(gdy); gfree(gu); gfree(gs); gfree(gdg); gfree(gdu);
    }
    static const int rshapes[][3] = {{1, 1, 2}, {7, 3, 64}, {19, 5, 128}};   // T, H, HD
    for (size_t si = 0; si < sizeof rshapes / sizeof rshapes[0]; si++) {
        const int T = rshapes[si][0], H = rshapes[si][1], HD = rshapes[si][2];
        const size_t n = (size_t)T * H * HD;
        int *pos = malloc(sizeof(int) * T);
        for (int t = 0; t < T; t++) pos[t] = (t * 977) % 30011;
        float *x = randn(n, 1.0f), *cx = hcopy(x, n), *gx = gd(x, n);
        for (int inv = 0; inv < 2; inv++) {
            CHECK_OK(g_cpu->op->rope(g_cpu, cx, pos, T, H, HD, 1e6f, inv));
            CHECK_OK(g_gpu->op->rope(g_gpu, gx, pos, T, H, HD, 1e6f, inv));
            cmp_dev(inv ? "rope inverse" : "rope", gx, cx, n, TOL_F32);
        }
        free(pos); free(x); free(cx); gfree(gx);
    }
}

// --- attention ----------------------------------------------------------------------------------------

static void test_attention(void) {
    static const int heads[][3] = {{2, 1, 16}, {4, 2, 40}, {8, 2, 128}};   // NH, KVH, HD
    for (size_t hi = 0; hi < sizeof heads / sizeof heads[0]; hi++) {
        const int NH = heads[hi][0], KVH = heads[hi][1], HD = heads[hi][2], KD = KVH * HD, QD = NH * HD;
        char what[96];
        // a KV cache: 3 sequences with 0, 5 and 17 cached positions, 1, 7 and 3 new rows
        const int n_seq = 3, max_ctx = 24, q_start[4] = {0, 1, 8, 11}, pos0[3] = {0, 5, 17};
        const int64_t kv_off[3] = {0, (int64_t)max_ctx * KD, 2 * (int64_t)max_ctx * KD};
        const sc_attn_layout lay = {.n_seq = n_seq, .q_start = q_start, .pos0 = pos0, .kv_off = kv_off, .kv_stride = KD};
        const int T = q_start[n_seq];
        const size_t ncache = (size_t)n_seq * max_ctx * KD;
        float *ck = randn(ncache, 1.0f), *cv = randn(ncache, 1.0f), *k = randn((size_t)T * KD, 1.0f), *v = randn((size_t)T * KD, 1.0f);
        float *q = randn((size_t)T * QD, 1.0f);
        float *gck = gd(ck, ncache), *gcv = gd(cv, ncache), *gk = gd(k, (size_t)T * KD), *gv = gd(v, (size_t)T * KD), *gq = gd(q, (size_t)T * QD);
        CHECK_OK(g_cpu->op->kv_write(g_cpu, ck, cv, k, v, &lay, KD));
        CHECK_OK(g_gpu->op->kv_write(g_gpu, gck, gcv, gk, gv, &lay, KD));
        cmp_dev("kv_write keys", gck, ck, ncache, TOL_EXACT);
        cmp_dev("kv_write values", gcv, cv, ncache, TOL_EXACT);
        float *co = malloc(sizeof(float) * (size_t)T * QD), *cl = malloc(sizeof(float) * (size_t)T * NH);
        float *go = gnan((size_t)T * QD), *gl = gnan((size_t)T * NH);
        CHECK_OK(g_cpu->op->attention(g_cpu, co, cl, q, ck, cv, &lay, NH, KVH, HD));
        CHECK_OK(g_gpu->op->attention(g_gpu, go, gl, gq, gck, gcv, &lay, NH, KVH, HD));
        snprintf(what, sizeof what, "attention over a cache NH=%d KVH=%d HD=%d", NH, KVH, HD);
        cmp_dev(what, go, co, (size_t)T * QD, TOL_F32);
        cmp_dev("attention lse (cache)", gl, cl, (size_t)T * NH, TOL_F32);
        free(ck); free(cv); free(k); free(v); free(q); free(co); free(cl);
        gfree(gck); gfree(gcv); gfree(gk); gfree(gv); gfree(gq); gfree(go); gfree(gl);

        // the batch's own rows (training): forward with lse, then backward
        const int qs[4] = {0, 1, 14, 47}, zero[3] = {0, 0, 0};
        const int T2 = qs[3];
        const int64_t offs[3] = {0, (int64_t)qs[1] * KD, (int64_t)qs[2] * KD};   // each sequence's own rows
        const sc_attn_layout own = {.n_seq = 3, .q_start = qs, .pos0 = zero, .kv_off = offs, .kv_stride = KD};
        float *q2 = randn((size_t)T2 * QD, 1.0f), *k2 = randn((size_t)T2 * KD, 1.0f), *v2 = randn((size_t)T2 * KD, 1.0f), *dout = randn((size_t)T2 * QD, 1.0f);
        float *o2 = malloc(sizeof(float) * (size_t)T2 * QD), *l2 = malloc(sizeof(float) * (size_t)T2 * NH);
        CHECK_OK(g_cpu->op->attention(g_cpu, o2, l2, q2, k2, v2, &own, NH, KVH, HD));
        float *gq2 = gd(q2, (size_t)T2 * QD), *gk2 = gd(k2, (size_t)T2 * KD), *gv2 = gd(v2, (size_t)T2 * KD), *gdo = gd(dout, (size_t)T2 * QD);
        float *go2 = gnan((size_t)T2 * QD), *gl2 = gnan((size_t)T2 * NH);
        CHECK_OK(g_gpu->op->attention(g_gpu, go2, gl2, gq2, gk2, gv2, &own, NH, KVH, HD));
        cmp_dev("attention (own rows)", go2, o2, (size_t)T2 * QD, TOL_F32);
        cmp_dev("attention lse (own rows)", gl2, l2, (size_t)T2 * NH, TOL_F32);
        float *cdq = malloc(sizeof(float) * (size_t)T2 * QD), *cdk = malloc(sizeof(float) * (size_t)T2 * KD), *cdv = malloc(sizeof(float) * (size_t)T2 * KD);
        CHECK_OK(g_cpu->op->attention_backward(g_cpu, cdq, cdk, cdv, dout, o2, l2, q2, k2, v2, qs, 3, NH, KVH, HD));
        float *gdq = gnan((size_t)T2 * QD), *gdk = gnan((size_t)T2 * KD), *gdv = gnan((size_t)T2 * KD);
        CHECK_OK(g_gpu->op->attention_backward(g_gpu, gdq, gdk, gdv, gdo, go2, gl2, gq2, gk2, gv2, qs, 3, NH, KVH, HD));
        snprintf(what, sizeof what, "attention_backward dq NH=%d KVH=%d HD=%d", NH, KVH, HD);
        cmp_dev(what, gdq, cdq, (size_t)T2 * QD, 1e-4);
        cmp_dev("attention_backward dk", gdk, cdk, (size_t)T2 * KD, 1e-4);
        cmp_dev("attention_backward dv", gdv, cdv, (size_t)T2 * KD, 1e-4);
        free(q2); free(k2); free(v2); free(dout); free(o2); free(l2); free(cdq); free(cdk); free(cdv);
        gfree(gq2); gfree(gk2); gfree(gv2); gfree(gdo); gfree(go2); gfree(gl2); gfree(gdq); gfree(gdk); gfree(gdv);
    }
}

// --- attention through cuDNN's fused flash attention --------------------------------------------------
// g_sdpa (cuDNN on) against the CPU backend and against the own kernels (g_gpu, SC_CUDA_SDPA=0),
// forward and backward, on the head shapes of Qwen2.5-0.5B (14/2 heads of 64: GQA 7:1) and -14B
// (40/8 of 128: 5:1), MHA, and odd sequence lengths (padding rows inside cuDNN's layout),
// several sequences per batch; keys and values in a KV cache at position 0 (prefill) too.

static sc_backend *g_sdpa;

static int sdpa_ran(sc_backend *be, int dir, uint64_t *seen) {
    uint64_t sd[2], own[2];
    if (!sc_cuda_attention_paths) return 0;
    sc_cuda_attention_paths(be, sd, own);
    const int ran = sd[dir] > *seen;
    *seen = sd[dir];
    return ran;
}

static void test_sdpa(void) {
    uint64_t sd0[2] = {0, 0}, own0[2] = {0, 0};
    const char *ver = sc_cuda_attention_paths ? sc_cuda_attention_paths(g_sdpa, sd0, own0) : NULL;
    if (!ver) {
        printf("test_cuda_backend: cuDNN fused attention NOT TESTED: the cuDNN path is off on this machine (see the line above)\n");
        return;
    }
    uint64_t seen[2] = {sd0[0], sd0[1]};
    static const struct { int NH, KVH, HD, n_seq, len[4], cache; } cases[] = {
        {14, 2, 64, 4, {1, 37, 64, 100}, 0},   // Qwen2.5-0.5B heads, ragged lengths
        {14, 2, 64, 3, {5, 70, 33, 0}, 1},     // the same over a KV cache (prefill)
        {40, 8, 128, 2, {77, 5, 0, 0}, 0},     // Qwen2.5-14B heads
        {8, 8, 128, 1, {130, 0, 0, 0}, 0},     // MHA, one sequence just over 128 (padded to 256)
        {4, 2, 64, 2, {1, 1, 0, 0}, 0},        // one token per sequence
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int NH = cases[ci].NH, KVH = cases[ci].KVH, HD = cases[ci].HD, n_seq = cases[ci].n_seq, QD = NH * HD, KD = KVH * HD;
        int qs[5] = {0}, zero[4] = {0, 0, 0, 0}, maxlen = 0;
        for (int b = 0; b < n_seq; b++) {
            qs[b + 1] = qs[b] + cases[ci].len[b];
            if (cases[ci].len[b] > maxlen) maxlen = cases[ci].len[b];
        }
        const int T = qs[n_seq];
        int64_t kv_off[4];
        size_t nkv = (size_t)T * KD;
        if (cases[ci].cache) {   // slots of maxlen + 9 positions, sequence b in slot n_seq-1-b
            for (int b = 0; b < n_seq; b++) kv_off[b] = (int64_t)(n_seq - 1 - b) * (maxlen + 9) * KD;
            nkv = (size_t)n_seq * (maxlen + 9) * KD;
        } else {
            for (int b = 0; b < n_seq; b++) kv_off[b] = (int64_t)qs[b] * KD;
        }
        const sc_attn_layout lay = {.n_seq = n_seq, .q_start = qs, .pos0 = zero, .kv_off = kv_off, .kv_stride = KD};
        char what[160];
        float *q = randn((size_t)T * QD, 1.0f), *k = randn(nkv, 1.0f), *v = randn(nkv, 1.0f);
        float *co = malloc(sizeof(float) * (size_t)T * QD), *cl = malloc(sizeof(float) * (size_t)T * NH);
        CHECK_OK(g_cpu->op->attention(g_cpu, co, cl, q, k, v, &lay, NH, KVH, HD));
        float *gq = gd(q, (size_t)T * QD), *gk = gd(k, nkv), *gv = gd(v, nkv);
        float *so = gnan((size_t)T * QD), *sl = gnan((size_t)T * NH), *oo = gnan((size_t)T * QD), *ol = gnan((size_t)T * NH);
        CHECK_OK(g_sdpa->op->attention(g_sdpa, so, sl, gq, gk, gv, &lay, NH, KVH, HD));
        const int ran_f = sdpa_ran(g_sdpa, 0, &seen[0]);
        CHECK_OK(g_gpu->op->attention(g_gpu, oo, ol, gq, gk, gv, &lay, NH, KVH, HD));
        printf("test_cuda_backend: attention %d/%d heads of %d, lengths %d..%d%s: forward through %s\n", NH, KVH, HD, cases[ci].len[0],
               cases[ci].len[n_seq - 1], cases[ci].cache ? " (KV cache)" : "", ran_f ? ver : "the own kernel (cuDNN fell back)");
        CHECKF(ran_f, "attention forward NH=%d KVH=%d HD=%d: %s is loaded but the own kernel ran (no engine? see stderr)", NH, KVH, HD, ver);
        snprintf(what, sizeof what, "cuDNN attention vs CPU NH=%d KVH=%d HD=%d", NH, KVH, HD);
        cmp_dev(what, so, co, (size_t)T * QD, TOL_SDPA);
        cmp_dev("cuDNN attention lse vs CPU", sl, cl, (size_t)T * NH, TOL_SDPA);
        float *ho = gget(oo, (size_t)T * QD), *hl = gget(ol, (size_t)T * NH);
        cmp_dev("cuDNN attention vs the own kernel", so, ho, (size_t)T * QD, TOL_SDPA);
        cmp_dev("cuDNN attention lse vs the own kernel", sl, hl, (size_t)T * NH, TOL_SDPA);
        free(ho); free(hl);
        if (!cases[ci].cache) {   // backward (the batch's own rows), from the CPU's out and lse
            float *dout = randn((size_t)T * QD, 1.0f);
            float *cdq = malloc(sizeof(float) * (size_t)T * QD), *cdk = malloc(sizeof(float) * nkv), *cdv = malloc(sizeof(float) * nkv);
            CHECK_OK(g_cpu->op->attention_backward(g_cpu, cdq, cdk, cdv, dout, co, cl, q, k, v, qs, n_seq, NH, KVH, HD));
            float *gdo = gd(dout, (size_t)T * QD), *gco = gd(co, (size_t)T * QD), *gcl = gd(cl, (size_t)T * NH);
            float *sdq = gnan((size_t)T * QD), *sdk = gnan(nkv), *sdv = gnan(nkv), *odq = gnan((size_t)T * QD), *odk = gnan(nkv), *odv = gnan(nkv);
            CHECK_OK(g_sdpa->op->attention_backward(g_sdpa, sdq, sdk, sdv, gdo, gco, gcl, gq, gk, gv, qs, n_seq, NH, KVH, HD));
            const int ran_b = sdpa_ran(g_sdpa, 1, &seen[1]);
            CHECK_OK(g_gpu->op->attention_backward(g_gpu, odq, odk, odv, gdo, gco, gcl, gq, gk, gv, qs, n_seq, NH, KVH, HD));
            printf("test_cuda_backend: attention %d/%d heads of %d: backward through %s\n", NH, KVH, HD, ran_b ? ver : "the own kernels (cuDNN fell back)");
            CHECKF(ran_b, "attention backward NH=%d KVH=%d HD=%d: %s is loaded but the own kernels ran (no engine? see stderr)", NH, KVH, HD, ver);
            snprintf(what, sizeof what, "cuDNN attention_backward dq vs CPU NH=%d KVH=%d HD=%d", NH, KVH, HD);
            cmp_dev(what, sdq, cdq, (size_t)T * QD, TOL_SDPA_GRAD);
            cmp_dev("cuDNN attention_backward dk vs CPU", sdk, cdk, nkv, TOL_SDPA_GRAD);
            cmp_dev("cuDNN attention_backward dv vs CPU", sdv, cdv, nkv, TOL_SDPA_GRAD);
            float *hdq = gget(odq, (size_t)T * QD), *hdk = gget(odk, nkv), *hdv = gget(odv, nkv);
            cmp_dev("cuDNN attention_backward dq vs the own kernels", sdq, hdq, (size_t)T * QD, TOL_SDPA_GRAD);
            cmp_dev("cuDNN attention_backward dk vs the own kernels", sdk, hdk, nkv, TOL_SDPA_GRAD);
            cmp_dev("cuDNN attention_backward dv vs the own kernels", sdv, hdv, nkv, TOL_SDPA_GRAD);
            free(hdq); free(hdk); free(hdv);
            free(dout); free(cdq); free(cdk); free(cdv);
            gfree(gdo); gfree(gco); gfree(gcl); gfree(sdq); gfree(sdk); gfree(sdv); gfree(odq); gfree(odk); gfree(odv);
        }
        free(q); free(k); free(v); free(co); free(cl);
        gfree(gq); gfree(gk); gfree(gv); gfree(so); gfree(sl); gfree(oo); gfree(ol);
    }
    // the decode step (position > 0) stays on the own kernel
    uint64_t sd[2], own[2];
    sc_cuda_attention_paths(g_sdpa, sd, own);
    {
        const int NH = 4, KVH = 2, HD = 64, KD = KVH * HD, qs[2] = {0, 1}, pos0[1] = {9};
        const int64_t off[1] = {0};
        const sc_attn_layout lay = {.n_seq = 1, .q_start = qs, .pos0 = pos0, .kv_off = off, .kv_stride = KD};
        float *q = randn((size_t)NH * HD, 1.0f), *k = randn((size_t)10 * KD, 1.0f), *v = randn((size_t)10 * KD, 1.0f);
        float *co = malloc(sizeof(float) * (size_t)NH * HD), *cl = malloc(sizeof(float) * NH);
        CHECK_OK(g_cpu->op->attention(g_cpu, co, cl, q, k, v, &lay, NH, KVH, HD));
        float *gq = gd(q, (size_t)NH * HD), *gk = gd(k, (size_t)10 * KD), *gv = gd(v, (size_t)10 * KD), *go = gnan((size_t)NH * HD), *gl = gnan(NH);
        CHECK_OK(g_sdpa->op->attention(g_sdpa, go, gl, gq, gk, gv, &lay, NH, KVH, HD));
        cmp_dev("decode-step attention (own kernel in the cuDNN backend)", go, co, (size_t)NH * HD, TOL_F32);
        uint64_t sd2[2], own2[2];
        sc_cuda_attention_paths(g_sdpa, sd2, own2);
        CHECK(sd2[0] == sd[0] && own2[0] == own[0] + 1);
        free(q); free(k); free(v); free(co); free(cl);
        gfree(gq); gfree(gk); gfree(gv); gfree(go); gfree(gl);
    }
}

// --- adapter ------------------------------------------------------------------------------------------

static void test_adapter(void) {
    static const int shapes[][3] = {{1, 16, 1}, {11, 97, 2}, {64, 896, 8}};   // T, C, r
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int T = shapes[si][0], C = shapes[si][1], r = shapes[si][2];
        const size_t n = (size_t)T * C;
        float *h = randn(n, 1.0f), *A = randn((size_t)C * r, 1.0f), *B = randn((size_t)r * C, 0.1f), *g = randn(n, 1.0f);
        float *gh = gd(h, n), *gA = gd(A, (size_t)C * r), *gB = gd(B, (size_t)r * C);
        float *co = malloc(sizeof(float) * n), *go = gnan(n);
        CHECK_OK(g_cpu->op->adapter_forward(g_cpu, co, h, A, B, T, C, r, 2.0f, 0));
        CHECK_OK(g_gpu->op->adapter_forward(g_gpu, go, gh, gA, gB, T, C, r, 2.0f, 0));
        cmp_dev("adapter_forward", go, co, n, TOL_F32);
        float *ch = hcopy(h, n), *gh2 = gd(h, n);   // in place: out = h
        CHECK_OK(g_cpu->op->adapter_forward(g_cpu, ch, ch, A, B, T, C, r, 2.0f, 1));
        CHECK_OK(g_gpu->op->adapter_forward(g_gpu, gh2, gh2, gA, gB, T, C, r, 2.0f, 1));
        cmp_dev("adapter_forward in place", gh2, ch, n, TOL_F32);
        float *cdA = randn((size_t)C * r, 0.1f), *cdB = randn((size_t)r * C, 0.1f);
        float *gdA = gd(cdA, (size_t)C * r), *gdB = gd(cdB, (size_t)r * C), *gg = gd(g, n), *cg = hcopy(g, n);
        CHECK_OK(g_cpu->op->adapter_backward(g_cpu, cg, h, A, B, cdA, cdB, T, C, r, 2.0f));
        CHECK_OK(g_gpu->op->adapter_backward(g_gpu, gg, gh, gA, gB, gdA, gdB, T, C, r, 2.0f));
        cmp_dev("adapter_backward dh", gg, cg, n, 1e-4);
        cmp_dev("adapter_backward dA", gdA, cdA, (size_t)C * r, 1e-4);
        cmp_dev("adapter_backward dB", gdB, cdB, (size_t)r * C, 1e-4);
        free(h); free(A); free(B); free(g); free(co); free(ch); free(cdA); free(cdB); free(cg);
        gfree(gh); gfree(gA); gfree(gB); gfree(go); gfree(gh2); gfree(gdA); gfree(gdB); gfree(gg);
    }
}

// --- loss, optimizer, sampling ------------------------------------------------------------------------

static void test_loss_adamw_sample(void) {
    static const int shapes[][2] = {{1, 7}, {5, 257}, {9, 151936}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], V = shapes[si][1];
        const size_t nv = (size_t)n * V;
        float *lp = randn(nv, 3.0f), *lq = randn(nv, 3.0f);
        int32_t *tg = malloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++) tg[i] = (int32_t)((i * 7919 + 3) % V);
        float *glp = gd(lp, nv), *glq = gd(lq, nv);
        double *ck = malloc(sizeof(double) * n), *cn = malloc(sizeof(double) * n), *gk = malloc(sizeof(double) * n), *gn = malloc(sizeof(double) * n);
        CHECK_OK(g_cpu->op->divergence_loss(g_cpu, lq, lp, tg, n, V, 1.0f, 0.5f, 1.0 / n, ck, cn));
        CHECK_OK(g_gpu->op->divergence_loss(g_gpu, glq, glp, tg, n, V, 1.0f, 0.5f, 1.0 / n, gk, gn));
        cmp_dev("divergence_loss gradient", glq, lq, nv, 1e-6);
        for (int i = 0; i < n; i++) {
            CHECK_NEAR(gk[i], ck[i], TOL_LOSS * (1 + fabs(ck[i])) * V);
            CHECK_NEAR(gn[i], cn[i], TOL_LOSS * (1 + fabs(cn[i])) * V);
        }
        // sampling on fresh logits (the loss overwrote lq): greedy, plain, top-k, top-p, a vocab limit
        float *z = randn(nv, 2.0f), *u = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++) u[i] = sc_rng_uniform(77, 5, (uint64_t)i);
        const sc_sampling modes[] = {{.greedy = 1, .temperature = 1, .top_p = 1}, {.temperature = 0.7f, .top_p = 1},
                                     {.temperature = 1.0f, .top_k = 5, .top_p = 1}, {.temperature = 1.0f, .top_p = 0.9f},
                                     {.temperature = 1.3f, .top_p = 1, .vocab_limit = V > 3 ? V - 3 : 0}};
        for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++) {
            float *cz = hcopy(z, nv), *gz = gd(z, nv);
            int32_t *cid = malloc(sizeof(int32_t) * n), *gid = malloc(sizeof(int32_t) * n);
            CHECK_OK(g_cpu->op->sample(g_cpu, cz, n, V, &modes[mi], u, cid));
            CHECK_OK(g_gpu->op->sample(g_gpu, gz, n, V, &modes[mi], u, gid));
            for (int i = 0; i < n; i++)   // equal, or (not greedy) within rounding of a boundary (see test_sample_sorted)
                CHECKF(cid[i] == gid[i] || (!modes[mi].greedy && sample_near_boundary(z + (size_t)i * V, V, &modes[mi], u[i], cid[i], gid[i], 1e-5)),
                       "sample mode %zu V=%d row %d: cpu %d, gpu %d", mi, V, i, cid[i], gid[i]);
            free(cz); free(cid); free(gid); gfree(gz);
        }
        free(lp); free(lq); free(tg); free(ck); free(cn); free(gk); free(gn); free(z); free(u);
        gfree(glp); gfree(glq);
    }
    const size_t n = 100003;
    float *p = randn(n, 1.0f), *g = randn(n, 0.01f), *m = randn(n, 0.001f), *v = randn(n, 0.0f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(g[i]) * 1e-3f;
    float *gp = gd(p, n), *gg = gd(g, n), *gm = gd(m, n), *gv = gd(v, n);
    const sc_adamw_opts o = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    for (int step = 1; step <= 3; step++) {
        CHECK_OK(g_cpu->op->adamw(g_cpu, p, g, m, v, n, &o, step));
        CHECK_OK(g_gpu->op->adamw(g_gpu, gp, gg, gm, gv, n, &o, step));
    }
    cmp_dev("adamw parameters", gp, p, n, 1e-6);
    cmp_dev("adamw first moments", gm, m, n, TOL_EXACT);
    cmp_dev("adamw second moments", gv, v, n, TOL_EXACT);
    free(p); free(g); free(m); free(v);
    gfree(gp); gfree(gg); gfree(gm); gfree(gv);
}

// --- top-k / top-p sampling ---------------------------------------------------------------------------
// The device sampler (kernels.cu, k_sample_sorted) against the CPU's on rows of several shapes and
// kinds: ids equal, or within rounding of a boundary between two tokens' cumulative sums (or of the
// nucleus's top_p): the device's exp and the CPU's expf may differ in a last bit, and the nucleus's
// total mass over more than one chunk of candidates is summed in another order
// (src/backend/cuda/sample_select.h). Differences are counted and printed; more than 1% fails.

// n rows of V logits of a kind (sample_ref_shape)
static float *sample_rows(int n, int V, int kind) {
    float *z = randn((size_t)n * V, 1.0f);
    sample_ref_shape(z, n, V, kind);
    return z;
}

// $SC_CUDA_TEST_QUICK=1 (check.sh's compute-sanitizer step): the smaller shapes, no timing
static void test_sample_sorted(void) {
    static const int shapes[][2] = {{1, 7}, {7, 1001}, {64, 4099}, {1, 151936}, {7, 151936}, {64, 151936}};
    const char *q = getenv("SC_CUDA_TEST_QUICK");
    const int quick = q && !strcmp(q, "1");
    long rows = 0, near = 0, bad_rows = 0;
    char what[200];
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0] - (quick ? 2 : 0); si++) {
        const int n = shapes[si][0], V = shapes[si][1];
        const size_t nv = (size_t)n * V;
        const sc_sampling modes[] = {
            {.temperature = 1.0f, .top_k = 1, .top_p = 1},        {.temperature = 1.0f, .top_k = 5, .top_p = 1},
            {.temperature = 0.7f, .top_k = 100, .top_p = 1},      {.temperature = 1.0f, .top_k = 3000, .top_p = 1},
            {.temperature = 1.0f, .top_p = 0.9f},                 {.temperature = 1.3f, .top_p = 0.95f},
            {.temperature = 1.0f, .top_p = 0.999f},               {.temperature = 0.8f, .top_k = 50, .top_p = 0.9f},
            {.temperature = 1.0f, .top_k = 3000, .top_p = 0.95f}, {.temperature = 1.0f, .top_k = 40, .top_p = 0.9f, .vocab_limit = V > 5 ? V - 5 : 0},
            {.temperature = 0.6f, .top_p = 0.95f, .vocab_limit = V > 1000 ? 1000 : 0},
        };
        for (int kind = 0; kind < 5; kind++) {
            float *z = sample_rows(n, V, kind), *u = malloc(sizeof(float) * n);
            for (int i = 0; i < n; i++) u[i] = sc_rng_uniform(91, (uint64_t)(si * 8 + kind), (uint64_t)i);
            float *gz = gd(z, nv);
            int32_t *cid = malloc(sizeof(int32_t) * n), *gid = malloc(sizeof(int32_t) * n);
            for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++) {
                const sc_sampling *o = &modes[mi];
                snprintf(what, sizeof what, "sample n=%d V=%d kind %d (k %d, p %g, T %g, limit %d)", n, V, kind, o->top_k, (double)o->top_p,
                         (double)o->temperature, o->vocab_limit);
                float *cz = hcopy(z, nv);
                for (int i = 0; i < n; i++) gid[i] = -7;
                const sc_status cs = g_cpu->op->sample(g_cpu, cz, n, V, o, u, cid);
                CHECK_OK(g_gpu->op->upload(g_gpu, gz, z, sizeof(float) * nv));   // the plain path overwrites the rows
                const sc_status gs = g_gpu->op->sample(g_gpu, gz, n, V, o, u, gid);
                CHECKF(cs == gs, "%s: cpu status %d, gpu status %d (%s)", what, (int)cs, (int)gs, gs ? sc_last_error() : "");
                for (int i = 0; i < n; i++) {
                    if (cid[i] == -1) { bad_rows++; CHECKF(gid[i] == -1, "%s row %d: not finite on the CPU, gpu %d", what, i, gid[i]); continue; }
                    rows++;
                    if (cid[i] == gid[i]) continue;
                    near++;
                    CHECKF(sample_near_boundary(z + (size_t)i * V, V, o, u[i], cid[i], gid[i], 1e-5),
                           "%s row %d: cpu %d, gpu %d, not within rounding of a boundary", what, i, cid[i], gid[i]);
                }
                free(cz);
            }
            free(z); free(u); free(cid); free(gid); gfree(gz);
        }
    }
    printf("test_cuda_backend: sampling: %ld rows, %ld differ from the CPU within rounding of a boundary (%.3f%%), %ld rows not finite on both\n",
           rows, near, rows ? 100.0 * near / rows : 0.0, bad_rows);
    CHECKF(near * 100 <= rows, "sampling: %ld of %ld rows differ from the CPU (more than 1%%)", near, rows);
    if (quick) return;

    // time per call, 192 rows of the real vocabulary (what a search samples per step); the plain
    // path (no top-k, no top-p) overwrites its rows, so each timed loop starts from a fresh upload
    const int n = 192, V = 151936;
    const size_t nv = (size_t)n * V;
    float *zp = sample_rows(n, V, 1), *zf = hcopy(zp, nv), *u = malloc(sizeof(float) * n);
    for (size_t i = 0; i < nv; i++) zf[i] *= 0.0025f;   // flat: the nucleus of 0.999 is most of the vocabulary (the slow path)
    for (int i = 0; i < n; i++) u[i] = sc_rng_uniform(92, 1, (uint64_t)i);
    float *gz = gd(NULL, nv);
    int32_t *gid = malloc(sizeof(int32_t) * n);
    const sc_sampling tm[] = {{.temperature = 1.0f, .top_p = 1}, {.temperature = 0.7f, .top_k = 50, .top_p = 1}, {.temperature = 1.0f, .top_p = 0.9f},
                              {.temperature = 0.7f, .top_k = 50, .top_p = 0.9f}, {.temperature = 1.0f, .top_p = 0.999f}};
    for (size_t mi = 0; mi < sizeof tm / sizeof tm[0]; mi++)
        for (int flat = 0; flat < 2; flat++) {
            const int reps = 5;
            double ms = 0;
            for (int r = 0; r <= reps; r++) {   // r = 0: warm-up
                CHECK_OK(g_gpu->op->upload(g_gpu, gz, flat ? zf : zp, sizeof(float) * nv));
                CHECK_OK(g_gpu->op->sync(g_gpu));
                struct timespec t0, t1;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                CHECK_OK(g_gpu->op->sample(g_gpu, gz, n, V, &tm[mi], u, gid));   // waits for its ids
                clock_gettime(CLOCK_MONOTONIC, &t1);
                if (r) ms += ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6) / reps;
            }
            printf("test_cuda_backend: sampling %d x %d, %s rows, top_k %d top_p %g T %g: %.3f ms per call\n", n, V, flat ? "flat" : "peaked",
                   tm[mi].top_k, (double)tm[mi].top_p, (double)tm[mi].temperature, ms);
        }
    free(zp); free(zf); free(u); free(gid); gfree(gz);
}

// --- a tiny model end to end ---------------------------------------------------------------------------

typedef struct { float *logits, *dA, *dB, *A1; double kl, nll; } model_run;

static void run_model(sc_backend *be, const char *dir, model_run *r) {
    memset(r, 0, sizeof *r);
    sc_model *m = NULL;
    CHECK_OK(sc_model_load(dir, 0, -1, be, &m));
    if (!m) return;
    const int C = m->cfg.hidden, V = m->cfg.vocab, L = m->cfg.n_layers, r_ = 2;
    const int seq_start[3] = {0, 7, 19}, T = 19;
    const sc_batch batch = {.n_seq = 2, .seq_start = seq_start};
    int32_t ids[19];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 37 + 11) % V);
    sc_adapter *ad = NULL;
    CHECK_OK(sc_adapter_create(be, SC_ADAPTER_SHARED, L, C, r_, 2.0f, &ad));
    CHECK_OK(sc_adapter_init(ad, 5));
    float *B = malloc(sizeof(float) * (size_t)r_ * C);
    sc_rng_normal(6, 1, 0, B, (size_t)r_ * C);
    CHECK_OK(sc_adapter_set(ad, NULL, B));   // B != 0: gradients reach A
    float *hp = NULL, *hq = NULL, *dh = NULL, *lg = NULL;
    CHECK_OK(sc_backend_alloc_floats(be, (size_t)T * C, "hp", &hp));
    CHECK_OK(sc_backend_alloc_floats(be, (size_t)T * C, "hq", &hq));
    CHECK_OK(sc_backend_alloc_floats(be, (size_t)T * C, "dh", &dh));
    CHECK_OK(sc_backend_alloc_floats(be, (size_t)T * V, "logits", &lg));
    CHECK_OK(be->op->memset(be, lg, 0xff, sizeof(float) * (size_t)T * V));
    CHECK_OK(be->op->memset(be, dh, 0, sizeof(float) * (size_t)T * C));
    sc_activations *act = NULL;
    CHECK_OK(sc_activations_create(m, be, T, 2, 0, &act));
    const sc_hook hook = sc_adapter_hook(ad);
    CHECK_OK(sc_forward(m, be, &batch, ids, hp, NULL, NULL, NULL));
    CHECK_OK(sc_head(m, be, hp, NULL, T, NULL, lg));
    r->logits = malloc(sizeof(float) * (size_t)T * V);
    CHECK_OK(be->op->download(be, r->logits, lg, sizeof(float) * (size_t)T * V));
    CHECK_OK(sc_forward(m, be, &batch, ids, hq, NULL, &hook, act));
    int rows[17];
    int32_t tg[17];
    for (int i = 0; i < 17; i++) { rows[i] = i < 6 ? i : i + 1; tg[i] = (int32_t)((i * 13 + 1) % V); }
    sc_loss_stats ls;
    CHECK_OK(sc_divergence_loss(m, be, hp, hq, rows, tg, 17, 1.0f, 0.3f, 5, dh, &ls));
    r->kl = ls.kl;
    r->nll = ls.nll;
    CHECK_OK(sc_adapter_zero_grad(ad));
    CHECK_OK(sc_backward(m, be, act, &hook, dh));
    const size_t nA = sc_adapter_numel_A(ad), nB = sc_adapter_numel_B(ad);
    r->dA = malloc(sizeof(float) * nA);
    r->dB = malloc(sizeof(float) * nB);
    r->A1 = malloc(sizeof(float) * nA);
    CHECK_OK(be->op->download(be, r->dA, ad->dA, sizeof(float) * nA));
    CHECK_OK(be->op->download(be, r->dB, ad->dB, sizeof(float) * nB));
    float *mom = NULL;   // one optimizer step on A
    CHECK_OK(sc_backend_alloc_floats(be, 2 * nA, "moments", &mom));
    CHECK_OK(be->op->memset(be, mom, 0, sizeof(float) * 2 * nA));
    const sc_adamw_opts o = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    CHECK_OK(be->op->adamw(be, ad->A, ad->dA, mom, mom + nA, nA, &o, 1));
    CHECK_OK(sc_adapter_get(ad, r->A1, NULL));
    be->op->free(be, mom);
    sc_activations_free(act);
    be->op->free(be, hp); be->op->free(be, hq); be->op->free(be, dh); be->op->free(be, lg);
    sc_adapter_free(ad);
    free(B);
    sc_model_free(m);
}

static const char *tiny_model_dir(void) {
    static char dir[4200];
    if (dir[0]) return dir;
    snprintf(dir, sizeof dir, "%s/tiny", sc_test_tmpdir());
    sc_make_model_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.cfg.n_layers = 3; mo.cfg.hidden = 128; mo.cfg.n_heads = 4; mo.cfg.n_kv_heads = 2; mo.cfg.head_dim = 0;
    mo.cfg.intermediate = 352; mo.cfg.vocab = 1000; mo.cfg.tie_embeddings = 1;
    mo.cfg.rope_theta = 1e6f; mo.cfg.rms_eps = 1e-6f; mo.cfg.max_position = 512; mo.cfg.bos_id = mo.cfg.eos_id = -1;
    mo.dtype = SC_DTYPE_BF16;
    mo.seed = 31;
    CHECK_OK(sc_make_model(dir, &mo));
    return dir;
}

static void test_tiny_model(void) {
    const char *dir = tiny_model_dir();
    model_run c, g;
    run_model(g_cpu, dir, &c);
    run_model(g_gpu, dir, &g);
    if (!c.logits || !g.logits || !c.dA || !g.dA) return;
    const int C = 128, V = 1000, T = 19;
    cmp("tiny model logits", g.logits, c.logits, (size_t)T * V, TOL_MODEL);
    cmp("tiny model adapter dA", g.dA, c.dA, (size_t)C * 2, TOL_MODEL_GRAD);
    cmp("tiny model adapter dB", g.dB, c.dB, (size_t)2 * C, TOL_MODEL_GRAD);
    CHECK_NEAR(g.kl, c.kl, TOL_MODEL_GRAD * (1e-3 + fabs(c.kl)));
    CHECK_NEAR(g.nll, c.nll, TOL_MODEL * fabs(c.nll));
    // one AdamW step moves each element by about lr in the gradient's direction: the same
    // direction where the gradient is not near zero
    float mx = 0;
    for (int i = 0; i < C * 2; i++) if (fabsf(c.dA[i]) > mx) mx = fabsf(c.dA[i]);
    int flips = 0;
    for (int i = 0; i < C * 2; i++) if (fabsf(c.dA[i]) > 0.1f * mx && (c.dA[i] > 0) != (g.dA[i] > 0)) flips++;
    CHECKF(flips <= 2, "the GPU's adapter gradient has the other sign in %d of %d elements", flips, C * 2);
    cmp("tiny model A after one AdamW step", g.A1, c.A1, (size_t)C * 2, 2e-2);
    free(c.logits); free(c.dA); free(c.dB); free(c.A1);
    free(g.logits); free(g.dA); free(g.dB); free(g.A1);
}

// --- generation: KV cache, adapter hook, decode steps in CUDA graphs -----------------------------------

#define GEN_N 5
#define GEN_NEW 24

// Generates GEN_N prompts of different lengths through an adapter hook; the first sequences stop
// early (stop token = what they would draw at steps 3 and 8) so the batch shrinks. out: GEN_N x
// GEN_NEW ids, -1 after a stop.
static void generate_on(sc_backend *be, int greedy, const int32_t *stops, int n_stop, int32_t *out) {
    for (int i = 0; i < GEN_N * GEN_NEW; i++) out[i] = -1;
    sc_model *m = NULL;
    CHECK_OK(sc_model_load(tiny_model_dir(), 0, -1, be, &m));
    if (!m) return;
    sc_adapter *ad = NULL;
    CHECK_OK(sc_adapter_create(be, SC_ADAPTER_SHARED, m->cfg.n_layers, m->cfg.hidden, 2, 2.0f, &ad));
    CHECK_OK(sc_adapter_init(ad, 9));
    float *B = malloc(sizeof(float) * 2 * (size_t)m->cfg.hidden);
    sc_rng_normal(10, 1, 0, B, 2 * (size_t)m->cfg.hidden);
    CHECK_OK(sc_adapter_set(ad, NULL, B));
    const sc_hook hook = sc_adapter_hook(ad);
    int32_t pr[GEN_N][12];
    const int32_t *prompts[GEN_N];
    int len[GEN_N];
    uint64_t stream[GEN_N];
    for (int s = 0; s < GEN_N; s++) {
        len[s] = 3 + 2 * s;
        for (int t = 0; t < len[s]; t++) pr[s][t] = (int32_t)((s * 101 + t * 7 + 3) % m->cfg.vocab);
        prompts[s] = pr[s];
        stream[s] = (uint64_t)s;
    }
    sc_sample_opts o;
    sc_sample_opts_default(&o);
    o.max_new_tokens = GEN_NEW;
    o.greedy = greedy;
    o.seed = 77;
    o.stop_ids = stops;
    o.n_stop = n_stop;
    sc_gen_out go[GEN_N];
    CHECK_OK(sc_generate(m, be, prompts, len, GEN_N, stream, NULL, &o, &hook, go));
    for (int s = 0; s < GEN_N; s++) {
        for (int i = 0; i < go[s].n && i < GEN_NEW; i++) out[s * GEN_NEW + i] = go[s].ids[i];
        free(go[s].ids);
    }
    free(B);
    sc_adapter_free(ad);
    sc_model_free(m);
}

static void test_generate_graphs(void) {
    int32_t ref[GEN_N * GEN_NEW], got[GEN_N * GEN_NEW];
    generate_on(g_gpu, 0, NULL, 0, ref);   // the stops: tokens sequences 0 and 1 draw at steps 3 and 8
    const int32_t stops[2] = {ref[0 * GEN_NEW + 3], ref[1 * GEN_NEW + 8]};
    generate_on(g_gpu, 0, stops, 2, ref);
    int stopped = 0;
    for (int s = 0; s < GEN_N; s++) stopped += ref[s * GEN_NEW + GEN_NEW - 1] < 0;
    CHECKF(stopped >= 1, "no sequence stopped early: the batch never shrank (stops %d, %d)", stops[0], stops[1]);
    // decode steps in CUDA graphs: the same kernels in the same order, so bitwise the same tokens
    setenv("SC_CUDA_GRAPHS", "1", 1);
    sc_backend_opts o;
    sc_backend_opts_default(&o);
    o.device = SC_DEVICE_CUDA;
    sc_backend *gb = NULL;
    CHECK_OK(sc_backend_create(&o, &gb));
    unsetenv("SC_CUDA_GRAPHS");
    if (!gb) return;
    generate_on(gb, 0, stops, 2, got);
    printf("test_cuda_backend: generation with CUDA graphs: %llu decode steps as graphs, %llu instantiated\n",
           (unsigned long long)gb->stats.n_graphs, (unsigned long long)gb->stats.n_graph_builds);
    CHECKF(gb->stats.n_graphs >= GEN_NEW - 2, "only %llu decode steps ran as CUDA graphs (want about %d)",
           (unsigned long long)gb->stats.n_graphs, GEN_NEW - 1);
    CHECKF(gb->stats.n_graph_builds < gb->stats.n_graphs, "every graph was instantiated anew (%llu of %llu): none was updated in place",
           (unsigned long long)gb->stats.n_graph_builds, (unsigned long long)gb->stats.n_graphs);
    int diff = 0;
    for (int i = 0; i < GEN_N * GEN_NEW; i++) diff += got[i] != ref[i];
    CHECKF(diff == 0, "decode in CUDA graphs gave %d of %d tokens other than op by op", diff, GEN_N * GEN_NEW);
    sc_backend_free(gb);
}

// greedy on the GPU against the CPU: BF16 activations against the CPU's, so a token may differ
// where two logits are within rounding; after a difference the sequences part ways
static void test_generate_greedy(void) {
    int32_t got[GEN_N * GEN_NEW], cpu[GEN_N * GEN_NEW];
    generate_on(g_gpu, 1, NULL, 0, got);
    generate_on(g_cpu, 1, NULL, 0, cpu);
    int same_first = 0, prefix = 0;
    for (int s = 0; s < GEN_N; s++) {
        same_first += got[s * GEN_NEW] == cpu[s * GEN_NEW];
        int k = 0;
        while (k < GEN_NEW && got[s * GEN_NEW + k] == cpu[s * GEN_NEW + k]) k++;
        prefix += k;
    }
    printf("test_cuda_backend: greedy generation GPU vs CPU: first tokens equal in %d of %d sequences, %d of %d tokens "
           "before the first difference\n", same_first, GEN_N, prefix, GEN_N * GEN_NEW);
    CHECKF(same_first * 2 > GEN_N, "the first greedy token differs from the CPU's in %d of %d sequences", GEN_N - same_first, GEN_N);
}

int main(void) {
    sc_backend_opts o;
    sc_backend_opts_default(&o);
    o.device = SC_DEVICE_CUDA;
    setenv("SC_CUDA_SDPA", "0", 1);   // the own attention kernels, at FP32 tolerances; cuDNN's in test_sdpa
    if (sc_backend_create(&o, &g_gpu) != SC_OK) {
        printf("test_cuda_backend: skipped: %s\n", sc_last_error());
        return 77;
    }
    g_cpu = sc_test_backend();
    printf("test_cuda_backend: %s against %s\n", g_gpu->name, g_cpu->name);
    test_memory();
    test_pinned_async();
    test_matmul();
    test_rows();
    test_norm_rope_swiglu();
    test_attention();
    test_adapter();
    test_loss_adamw_sample();
    test_sample_sorted();
    test_tiny_model();
    test_generate_graphs();
    test_generate_greedy();
    unsetenv("SC_CUDA_SDPA");
    if (sc_backend_create(&o, &g_sdpa) != SC_OK) {
        sc_test_fail(__FILE__, __LINE__, "a CUDA backend with cuDNN attention: %s", sc_last_error());
        return sc_test_finish("test_cuda_backend");
    }
    printf("test_cuda_backend: %s\n", g_sdpa->name);
    test_sdpa();
    {   // the tiny model once more with attention through cuDNN (where it is on)
        sc_backend *own = g_gpu;
        g_gpu = g_sdpa;
        test_tiny_model();
        uint64_t sd[2], ow[2];
        if (sc_cuda_attention_paths && sc_cuda_attention_paths(g_sdpa, sd, ow))
            printf("test_cuda_backend: tiny model with cuDNN attention: %llu forward and %llu backward calls through cuDNN, %llu and %llu on the own kernels\n",
                   (unsigned long long)sd[0], (unsigned long long)sd[1], (unsigned long long)ow[0], (unsigned long long)ow[1]);
        g_gpu = own;
    }
    sc_backend_free(g_sdpa);
    sc_backend_free(g_gpu);
    // the plain-loop GEMM cuBLASLt's refusals fall back to, on every GEMM shape of the tests
    setenv("SC_CUDA_GEMM_FALLBACK", "1", 1);
    if (sc_backend_create(&o, &g_gpu) != SC_OK) {
        sc_test_fail(__FILE__, __LINE__, "a second CUDA backend: %s", sc_last_error());
        return sc_test_finish("test_cuda_backend");
    }
    printf("test_cuda_backend: GEMMs through the fallback kernel (SC_CUDA_GEMM_FALLBACK=1)\n");
    test_matmul();
    test_adapter();
    sc_backend_free(g_gpu);
    return sc_test_finish("test_cuda_backend");
}
