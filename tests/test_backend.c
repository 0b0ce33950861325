// test_backend.c — every op of the backend table against an independent reference written
// here (plain loops in double precision, or central finite differences for backward ops), on
// every CPU instruction set this build has (generic, and avx2 where the machine runs it). A new
// backend (CUDA) is held to these same references: add it to backends() and every op runs.
//
// Tolerances (one table, each with its reason):
#define TOL_F32 1e-5     // float32 results of sums over <= 300 terms, relative to max |ref|
#define TOL_ATTN 2e-5    // attention: float32 scores and weighted sums over <= 40 positions
#define TOL_FD 2e-3      // float32 central differences with step 1e-3 (or 1e-2 where noted)
#define TOL_LOSS 1e-9    // the loss op works in double over the vocabulary
#include "testutil.h"
#include "steerclear/backend.h"
#include "steerclear/rng.h"

#include <stdlib.h>

static sc_backend *g_be;   // the backend under test

// Backend memory holding a copy of host floats (on the CPU backend: the same kind of memory).
static float *dev(const float *host, size_t n) {
    float *p = NULL;
    CHECK_OK(sc_backend_alloc_floats(g_be, n ? n : 1, "test array", &p));
    if (p && host) CHECK_OK(g_be->op->upload(g_be, p, host, sizeof(float) * n));
    return p;
}
static void get(float *host, const float *d, size_t n) { CHECK_OK(g_be->op->download(g_be, host, d, sizeof(float) * n)); }
static void drop(void *p) { g_be->op->free(g_be, p); }
static float *randn(uint64_t seed, uint64_t stream, size_t n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    sc_rng_normal(seed, stream, 0, x, n);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

// Central differences of a scalar function f(ctx) of x at every stride-th element of x (f reads
// x), against the op's gradient `grad`; |fd - grad| may be TOL_FD * (floor + |fd|). Returns the
// number of elements that disagree, printing each.
static int fd_disagree(float *x, const float *grad, int n, int stride, float h, double floor,
                       double (*f)(void *ctx), void *ctx, const char *name) {
    int bad = 0;
    for (int i = 0; i < n; i += stride) {
        const float keep = x[i];
        x[i] = keep + h;
        const double lp = f(ctx);
        x[i] = keep - h;
        const double lm = f(ctx);
        x[i] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        if (fabs(fd - grad[i]) > TOL_FD * (floor + fabs(fd))) { bad++; printf("  %s[%d]: finite difference %.6g, op %.6g\n", name, i, fd, grad[i]); }
    }
    return bad;
}

// --- memory ---------------------------------------------------------------------------------

static void test_memory(void) {
    const sc_backend_stats before = g_be->stats;
    float host[100], back[100];
    for (int i = 0; i < 100; i++) host[i] = (float)i * 0.5f;
    float *a = dev(host, 100), *b = dev(NULL, 100);
    CHECK(g_be->stats.n_alloc == before.n_alloc + 2 && g_be->stats.bytes_live >= before.bytes_live + 800);
    CHECK_OK(g_be->op->copy(g_be, b, a, sizeof host));
    get(back, b, 100);
    CHECK(!memcmp(back, host, sizeof host));
    CHECK_OK(g_be->op->memset(g_be, b + 10, 0, sizeof(float) * 5));
    get(back, b, 100);
    CHECK(back[9] == 4.5f && back[10] == 0 && back[14] == 0 && back[15] == 7.5f);
    CHECK_OK(g_be->op->sync(g_be));
    drop(a); drop(b); drop(NULL);
    CHECK(g_be->stats.n_free == before.n_free + 2 && g_be->stats.bytes_live == before.bytes_live);
    // the arena: marks give memory back, the same requests find the same room
    sc_arena_mark mk = sc_arena_mark_get(&g_be->ws);
    void *p1 = sc_arena_alloc(&g_be->ws, 1000, "x"), *p2 = sc_arena_alloc(&g_be->ws, 3000, "y");
    sc_arena_reset(&g_be->ws, mk);
    const uint64_t grows = g_be->ws.n_grows;
    void *q1 = sc_arena_alloc(&g_be->ws, 1000, "x"), *q2 = sc_arena_alloc(&g_be->ws, 3000, "y");
    sc_arena_reset(&g_be->ws, mk);
    CHECK(p1 == q1 && p2 == q2 && g_be->ws.n_grows == grows && ((uintptr_t)p2 % 64) == 0);
    size_t sz = 0;
    CHECK_OK(sc_parse_size("1.5G", &sz)); CHECK(sz == (size_t)1536 << 20);
    CHECK_OK(sc_parse_size("800MiB", &sz)); CHECK(sz == (size_t)800 << 20);
    CHECK_OK(sc_parse_size("4096", &sz)); CHECK(sz == 4096);
    CHECK_ERR(sc_parse_size("12X", &sz), SC_ERR_ARG, "12X");
    CHECK_ERR(sc_parse_size("-1G", &sz), SC_ERR_ARG, "-1G");
    // the default budget is shared by the ranks on the node, as the launcher reports them
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE"); unsetenv("MPI_LOCALNRANKS"); unsetenv("SLURM_NTASKS_PER_NODE"); unsetenv("SLURM_TASKS_PER_NODE");
    const size_t one = sc_memory_budget_default();
    CHECK(sc_local_ranks() == 1 && one > 0);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
    const size_t four = sc_memory_budget_default();
    CHECK(sc_local_ranks() == 4 && four + 1 >= one / 4 && four <= one / 4 + 1);
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    setenv("SLURM_TASKS_PER_NODE", "3(x2)", 1);
    CHECK(sc_local_ranks() == 3);
    unsetenv("SLURM_TASKS_PER_NODE");
    CHECK(sc_memory_budget_default() == one);
}

// Pinned host memory, the queued copies between it and backend memory, and events (what the
// pipeline's staging uses): after event_wait (or sync) the copies have landed, every op of the
// table exists, and the pinned memory is not counted as backend memory.
static void test_staging(void) {
    const sc_backend_ops *o = g_be->op;
    CHECK(o->host_alloc && o->host_free && o->download_async && o->upload_async && o->event_create && o->event_destroy &&
          o->event_record && o->event_wait && o->event_query);
    const sc_backend_stats before = g_be->stats;
    float *pin = NULL;
    void *ev = NULL;
    CHECK_OK(o->host_alloc(g_be, sizeof(float) * 300, "pinned", (void **)&pin));
    CHECK_OK(o->event_create(g_be, &ev));
    CHECK(g_be->stats.n_alloc == before.n_alloc && g_be->stats.bytes_live == before.bytes_live);
    if (!pin || !ev) return;
    CHECK(((uintptr_t)pin % 64) == 0);
    for (int i = 0; i < 100; i++) pin[i] = (float)i - 20.0f;
    float *a = dev(NULL, 100), back[100];
    CHECK_OK(o->upload_async(g_be, a, pin, sizeof(float) * 100));
    CHECK_OK(o->add(g_be, a, a, 100));                       // a queued op between the copies
    CHECK_OK(o->download_async(g_be, pin + 100, a, sizeof(float) * 100));
    CHECK_OK(o->event_record(g_be, ev));
    CHECK_OK(o->event_wait(g_be, ev));
    int done = 0;
    CHECK_OK(o->event_query(g_be, ev, &done));
    CHECK(done == 1);
    for (int i = 0; i < 100; i++) CHECKF(pin[100 + i] == 2.0f * ((float)i - 20.0f), "staged copy [%d] = %g", i, (double)pin[100 + i]);
    get(back, a, 100);
    CHECK(!memcmp(back, pin + 100, sizeof back));
    drop(a);
    o->event_destroy(g_be, ev);
    o->event_destroy(g_be, NULL);
    o->host_free(g_be, pin);
    o->host_free(g_be, NULL);
}

// --- GEMMs and the embedding ----------------------------------------------------------------

static void test_matmul(void) {
    const int Ns[] = {37, 128}, Ks[] = {70, 96}, Ts[] = {1, 3, 8, 9, 16, 17, 40};
    for (int si = 0; si < 2; si++) {
        const int N = Ns[si], K = Ks[si];
        float *wf = randn(1, (uint64_t)si, (size_t)N * K, 1.0f), *wr = malloc(sizeof(float) * (size_t)N * K);
        float *bias = randn(2, 0, 128, 1.0f);
        uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)N * K);
        for (int i = 0; i < N * K; i++) { wb[i] = sc_f32_to_bf16(wf[i]); wr[i] = sc_bf16_to_f32(wb[i]); }
        // F32; BF16 streamed / widened; BF16 with the backend's prepared copy
        sc_mat mats[3] = {{wf, SC_DTYPE_F32, N, K, NULL}, {wb, SC_DTYPE_BF16, N, K, NULL}, {wb, SC_DTYPE_BF16, N, K, NULL}};
        sc_mat *prep = &mats[2];
        CHECK_OK(g_be->op->weights_prepare(g_be, &prep, 1));
        CHECKF(mats[2].prepared != NULL, "the backend made no F32 copy of a small BF16 matrix");
        const char *names[3] = {"F32", "BF16", "BF16 prepared"};
        float *db = dev(bias, (size_t)N);
        for (int ti = 0; ti < 7; ti++) {
            const int T = Ts[ti];
            float *x = randn(3, (uint64_t)T, (size_t)T * K, 1.0f), *dy = randn(4, (uint64_t)T, (size_t)T * N, 1.0f);
            float *out = malloc(sizeof(float) * (size_t)T * N), *dx = malloc(sizeof(float) * (size_t)T * K);
            double *ref = malloc(sizeof(double) * (size_t)T * N), *rdx = malloc(sizeof(double) * (size_t)T * K);
            float *dxd = dev(x, (size_t)T * K), *ddy = dev(dy, (size_t)T * N), *dout = dev(NULL, (size_t)T * N), *ddx = dev(NULL, (size_t)T * K);
            for (int mi = 0; mi < 3; mi++) {
                const float *w = mi ? wr : wf;
                for (int t = 0; t < T; t++) for (int n = 0; n < N; n++) {
                    double a = bias[n];
                    for (int k = 0; k < K; k++) a += (double)x[t * K + k] * w[n * K + k];
                    ref[t * N + n] = a;
                }
                for (int t = 0; t < T; t++) for (int k = 0; k < K; k++) {
                    double a = 1.0;   // accumulated onto ones
                    for (int n = 0; n < N; n++) a += (double)dy[t * N + n] * w[n * K + k];
                    rdx[t * K + k] = a;
                }
                CHECK_OK(g_be->op->matmul(g_be, dout, dxd, &mats[mi], db, T));
                get(out, dout, (size_t)T * N);
                double e = sc_test_rel_err(out, ref, (size_t)T * N);
                CHECKF(e <= TOL_F32, "%s: matmul %s N=%d K=%d T=%d: rel. error %.3g", g_be->name, names[mi], N, K, T, e);
                for (int i = 0; i < T * K; i++) dx[i] = 1.0f;
                CHECK_OK(g_be->op->upload(g_be, ddx, dx, sizeof(float) * (size_t)T * K));
                CHECK_OK(g_be->op->matmul_dx(g_be, ddx, ddy, &mats[mi], T, 1));
                get(dx, ddx, (size_t)T * K);
                e = sc_test_rel_err(dx, rdx, (size_t)T * K);
                CHECKF(e <= TOL_F32, "%s: matmul_dx %s N=%d K=%d T=%d: rel. error %.3g", g_be->name, names[mi], N, K, T, e);
            }
            drop(dxd); drop(ddy); drop(dout); drop(ddx);
            free(x); free(dy); free(out); free(dx); free(ref); free(rdx);
        }
        g_be->op->weights_release(g_be, &prep, 1);
        CHECK(mats[2].prepared == NULL);
        // the embedding: rows of F32 and BF16 tables (BF16 widened exactly)
        const int32_t ids[5] = {3, 0, 36, 3, 17};
        float *e = dev(NULL, (size_t)5 * K), *eh = malloc(sizeof(float) * 5 * (size_t)K);
        for (int mi = 0; mi < 2; mi++) {
            CHECK_OK(g_be->op->embed(g_be, e, &mats[mi], ids, 5));
            get(eh, e, (size_t)5 * K);
            int same = 1;
            for (int t = 0; t < 5; t++) for (int k = 0; k < K; k++) same &= eh[t * K + k] == (mi ? wr : wf)[ids[t] * K + k];
            CHECKF(same, "%s: embed %s does not copy the rows", g_be->name, names[mi]);
        }
        drop(e); free(eh); drop(db);
        free(wf); free(wr); free(wb); free(bias);
    }
}

// --- Rows -----------------------------------------------------------------------------------

static void test_rows(void) {
    enum { T = 9, C = 70, N = 4 };
    float *x = randn(7, 0, T * C, 1.0f), *y = randn(7, 1, T * C, 1.0f), *v = randn(7, 2, C, 1.0f);
    float *dx = dev(x, T * C), *dy = dev(y, T * C), *dv = dev(v, C), *g = dev(NULL, N * C), h[T * C];
    const int rows[N] = {8, 0, 3, 5};
    CHECK_OK(g_be->op->gather_rows(g_be, g, dx, rows, N, C));
    float gh[N * C];
    get(gh, g, N * C);
    int ok = 1;
    for (int i = 0; i < N; i++) for (int c = 0; c < C; c++) ok &= gh[i * C + c] == x[rows[i] * C + c];
    CHECKF(ok, "%s: gather_rows", g_be->name);
    CHECK_OK(g_be->op->scatter_add_rows(g_be, dy, g, rows, N, C));
    get(h, dy, T * C);
    ok = 1;
    for (int t = 0; t < T; t++) for (int c = 0; c < C; c++) {
        float want = y[t * C + c];
        for (int i = 0; i < N; i++) if (rows[i] == t) want = want + x[t * C + c];
        ok &= h[t * C + c] == want;
    }
    CHECKF(ok, "%s: scatter_add_rows", g_be->name);
    CHECK_OK(g_be->op->upload(g_be, dy, y, sizeof(float) * T * C));
    CHECK_OK(g_be->op->add(g_be, dy, dx, (int64_t)T * C));
    get(h, dy, T * C);
    ok = 1;
    for (int i = 0; i < T * C; i++) ok &= h[i] == y[i] + x[i];
    CHECKF(ok, "%s: add", g_be->name);
    CHECK_OK(g_be->op->upload(g_be, dy, y, sizeof(float) * T * C));
    CHECK_OK(g_be->op->add_row(g_be, dy + 2 * C, dv, -1.5f, 3, C));   // rows 2..4 only
    get(h, dy, T * C);
    ok = 1;
    for (int t = 0; t < T; t++) for (int c = 0; c < C; c++) ok &= h[t * C + c] == (t >= 2 && t < 5 ? y[t * C + c] + -1.5f * v[c] : y[t * C + c]);
    CHECKF(ok, "%s: add_row", g_be->name);
    // column sums in double, in row order: exact against the same order here
    double *acc = NULL, accd[C], want[C];
    CHECK_OK(g_be->op->alloc(g_be, sizeof(double) * C, "sums", (void **)&acc));
    for (int c = 0; c < C; c++) want[c] = 0.25;
    CHECK_OK(g_be->op->upload(g_be, acc, want, sizeof want));
    CHECK_OK(g_be->op->col_sum(g_be, acc, dx, T, C));
    CHECK_OK(g_be->op->download(g_be, accd, acc, sizeof accd));
    ok = 1;
    for (int c = 0; c < C; c++) { double s = 0.25; for (int t = 0; t < T; t++) s += x[t * C + c]; ok &= accd[c] == s; }
    CHECKF(ok, "%s: col_sum", g_be->name);
    drop(acc); drop(dx); drop(dy); drop(dv); drop(g);
    free(x); free(y); free(v);
}

// --- Block maths ----------------------------------------------------------------------------

typedef struct { const float *x, *dy; float *Dx, *Dw, *Dout; int T, C; } norm_loss;

static double rmsnorm_loss(void *ctx) {
    norm_loss *n = ctx;
    float out[64];
    CHECK_OK(g_be->op->upload(g_be, n->Dx, n->x, sizeof(float) * (size_t)n->T * n->C));
    CHECK_OK(g_be->op->rmsnorm(g_be, n->Dout, NULL, n->Dx, n->Dw, n->T, n->C, 1e-6f));
    get(out, n->Dout, (size_t)n->T * n->C);
    double l = 0;
    for (int j = 0; j < n->T * n->C; j++) l += (double)n->dy[j] * out[j];
    return l;
}

static void test_norm_rope_swiglu(void) {
    enum { T = 3, C = 10 };
    float *x = randn(6, 0, T * C, 1.0f), *w = randn(6, 1, C, 1.0f), *dy = randn(6, 2, T * C, 1.0f);
    float *g = randn(6, 3, T * C, 1.0f), *u = randn(6, 4, T * C, 1.0f);
    float out[T * C], rstd[T], dx[T * C], dg[T * C], du[T * C];
    float *Dx = dev(x, T * C), *Dw = dev(w, C), *Ddy = dev(dy, T * C), *Dg = dev(g, T * C), *Du = dev(u, T * C);
    float *Dout = dev(NULL, T * C), *Drstd = dev(NULL, T), *Ddx = dev(NULL, T * C), *Ddg = dev(NULL, T * C), *Ddu = dev(NULL, T * C);
    // RMSNorm forward against its definition
    CHECK_OK(g_be->op->rmsnorm(g_be, Dout, Drstd, Dx, Dw, T, C, 1e-6f));
    get(out, Dout, T * C); get(rstd, Drstd, T);
    double ref[T * C];
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[t * C + c] * x[t * C + c];
        double r = 1.0 / sqrt(ss / C + 1e-6);
        CHECK_NEAR(rstd[t], r, 1e-6 * r);
        for (int c = 0; c < C; c++) ref[t * C + c] = w[c] * x[t * C + c] * r;
    }
    CHECKF(sc_test_rel_err(out, ref, T * C) <= TOL_F32, "%s: rmsnorm", g_be->name);
    // RMSNorm backward against finite differences of L = sum(dy * rmsnorm(x)), the op itself in f
    CHECK_OK(g_be->op->rmsnorm_backward(g_be, Ddx, Ddy, Dx, Dw, Drstd, T, C, 0));
    get(dx, Ddx, T * C);
    norm_loss nl = {x, dy, Dx, Dw, Dout, T, C};
    CHECKF(fd_disagree(x, dx, T * C, 7, 1e-3f, 1.0, rmsnorm_loss, &nl, "rmsnorm dx") == 0, "%s: rmsnorm backward", g_be->name);
    // SwiGLU forward against its definition, backward against finite differences
    CHECK_OK(g_be->op->swiglu(g_be, Dout, Dg, Du, T * C));
    get(out, Dout, T * C);
    for (int i = 0; i < T * C; i++) ref[i] = g[i] / (1 + exp(-(double)g[i])) * u[i];
    CHECKF(sc_test_rel_err(out, ref, T * C) <= TOL_F32, "%s: swiglu", g_be->name);
    CHECK_OK(g_be->op->swiglu_backward(g_be, Ddg, Ddu, Ddy, Dg, Du, T * C));
    get(dg, Ddg, T * C); get(du, Ddu, T * C);
    for (int i = 0; i < T * C; i += 5) {
        double hh = 1e-3, sp = (g[i] + hh) / (1 + exp(-(g[i] + hh))), sm = (g[i] - hh) / (1 + exp(-(g[i] - hh)));
        CHECK_NEAR(dg[i], dy[i] * u[i] * (sp - sm) / (2 * hh), TOL_FD * (1 + fabs(dg[i])));
        CHECK_NEAR(du[i], dy[i] * g[i] / (1 + exp(-g[i])), 1e-5);
    }
    // rotary embedding: position 0 is the identity, pairs keep their norm, the angle is
    // pos * theta^(-2i/HD), and the inverse undoes it
    enum { RT = 5, H = 3, HD = 16 };
    float *xr = randn(5, 0, RT * H * HD, 1.0f), yr[RT * H * HD];
    const int pos[RT] = {0, 1, 7, 100, 4095};
    float *Dr = dev(xr, RT * H * HD);
    CHECK_OK(g_be->op->rope(g_be, Dr, pos, RT, H, HD, 1e6f, 0));
    get(yr, Dr, RT * H * HD);
    int ok = 1;
    for (int i = 0; i < H * HD; i++) ok &= yr[i] == xr[i];
    CHECK(ok);
    for (int t = 1; t < RT; t++) for (int hh = 0; hh < H; hh++) for (int i = 0; i < HD / 2; i++) {
        const float *a = xr + (t * H + hh) * HD, *b = yr + (t * H + hh) * HD;
        double ang = pos[t] * pow(1e6, -2.0 * i / HD);
        CHECK_NEAR(b[i], a[i] * cos(ang) - a[i + HD / 2] * sin(ang), 1e-5 * (1 + fabs(b[i])));
        CHECK_NEAR(b[i + HD / 2], a[i + HD / 2] * cos(ang) + a[i] * sin(ang), 1e-5 * (1 + fabs(b[i])));
    }
    CHECK_OK(g_be->op->rope(g_be, Dr, pos, RT, H, HD, 1e6f, 1));
    get(yr, Dr, RT * H * HD);
    for (int i = 0; i < RT * H * HD; i++) CHECK_NEAR(yr[i], xr[i], 1e-5);
    CHECK_ERR(g_be->op->rope(g_be, Dr, pos, 1, 1, 15, 1e4f, 0), SC_ERR_SHAPE, "head dim 15 must be even");
    drop(Dx); drop(Dw); drop(Ddy); drop(Dg); drop(Du); drop(Dout); drop(Drstd); drop(Ddx); drop(Ddg); drop(Ddu); drop(Dr);
    free(x); free(w); free(dy); free(g); free(u); free(xr);
}

// --- Attention and the KV cache -------------------------------------------------------------

// Reference causal GQA attention in double for one (row t, head h): positions 0..n-1 of
// key/value rows kr(j), vr(j).
static void attn_ref(const float *q, const float *k, const float *v, const sc_attn_layout *lay, int NH, int KVH, int HD,
                     double *out, double *lse) {
    const int T = lay->q_start[lay->n_seq], group = NH / KVH;
    for (int b = 0; b < lay->n_seq; b++)
        for (int t = lay->q_start[b]; t < lay->q_start[b + 1]; t++)
            for (int h = 0; h < NH; h++) {
                const int n = lay->pos0[b] + (t - lay->q_start[b]) + 1, kh = h / group;
                double s[64], mx = -1e300, sum = 0;
                for (int j = 0; j < n; j++) {
                    const float *kr = k + lay->kv_off[b] + (int64_t)j * lay->kv_stride + kh * HD;
                    double d = 0;
                    for (int e = 0; e < HD; e++) d += (double)q[((int64_t)t * NH + h) * HD + e] * kr[e];
                    s[j] = d / sqrt((double)HD);
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < n; j++) sum += exp(s[j] - mx);
                for (int e = 0; e < HD; e++) {
                    double o = 0;
                    for (int j = 0; j < n; j++) o += exp(s[j] - mx) / sum * v[lay->kv_off[b] + (int64_t)j * lay->kv_stride + kh * HD + e];
                    out[((int64_t)t * NH + h) * HD + e] = o;
                }
                lse[(int64_t)t * NH + h] = mx + log(sum);
            }
    (void)T;
}

// L = sum(dout * attention(q, k, v)) by the double reference
typedef struct { const float *q, *k, *v, *dout; const sc_attn_layout *lay; int NH, KVH, HD, n; double *ro, *rl; } attn_loss;

static double attention_loss(void *ctx) {
    attn_loss *a = ctx;
    attn_ref(a->q, a->k, a->v, a->lay, a->NH, a->KVH, a->HD, a->ro, a->rl);
    double l = 0;
    for (int j = 0; j < a->n; j++) l += a->dout[j] * a->ro[j];
    return l;
}

static void test_attention(void) {
    enum { NH = 6, KVH = 2, HD = 8, QD = NH * HD, KD = KVH * HD, SLOTS = 3, CTX = 24 };
    // (a) the batch's own rows: 3 sequences of 5, 1 and 37 rows from position 0 (37: more than
    //     two of the CPU kernel's blocks of 16 query and key rows)
    const int qs[4] = {0, 5, 6, 43}, zero[3] = {0, 0, 0};
    enum { T = 43 };
    int64_t off[3];
    for (int b = 0; b < 3; b++) off[b] = (int64_t)qs[b] * KD;
    sc_attn_layout own = {.n_seq = 3, .q_start = qs, .pos0 = zero, .kv_off = off, .kv_stride = KD};
    float *q = randn(8, 0, T * QD, 1.0f), *k = randn(8, 1, T * KD, 1.0f), *v = randn(8, 2, T * KD, 1.0f);
    float *Dq = dev(q, T * QD), *Dk = dev(k, T * KD), *Dv = dev(v, T * KD), *Do = dev(NULL, T * QD), *Dl = dev(NULL, T * NH);
    float o[T * QD], l[T * NH];
    double ro[T * QD], rl[T * NH];
    CHECK_OK(g_be->op->attention(g_be, Do, Dl, Dq, Dk, Dv, &own, NH, KVH, HD));
    get(o, Do, T * QD); get(l, Dl, T * NH);
    attn_ref(q, k, v, &own, NH, KVH, HD, ro, rl);
    double e = sc_test_rel_err(o, ro, T * QD);
    CHECKF(e <= TOL_ATTN, "%s: attention over the batch's rows: rel. error %.3g", g_be->name, e);
    CHECKF(sc_test_rel_err(l, rl, T * NH) <= TOL_ATTN, "%s: attention log-sum-exp", g_be->name);

    // (b) backward against central differences of L = sum(dout * out) in each of q, k, v
    float *dout = randn(8, 3, T * QD, 1.0f), dq[T * QD], dk[T * KD], dv[T * KD];
    float *Ddo = dev(dout, T * QD), *Ddq = dev(NULL, T * QD), *Ddk = dev(NULL, T * KD), *Ddv = dev(NULL, T * KD);
    CHECK_OK(g_be->op->attention_backward(g_be, Ddq, Ddk, Ddv, Ddo, Do, Dl, Dq, Dk, Dv, qs, 3, NH, KVH, HD));
    get(dq, Ddq, T * QD); get(dk, Ddk, T * KD); get(dv, Ddv, T * KD);
    attn_loss al = {q, k, v, dout, &own, NH, KVH, HD, T * QD, ro, rl};
    // the reference is double: a larger step than float32 allows is safe
    int bad = fd_disagree(q, dq, T * QD, 11, 1e-2f, 1.0, attention_loss, &al, "dq") +
              fd_disagree(k, dk, T * KD, 11, 1e-2f, 1.0, attention_loss, &al, "dk") +
              fd_disagree(v, dv, T * KD, 11, 1e-2f, 1.0, attention_loss, &al, "dv");
    CHECKF(bad == 0, "%s: attention backward: %d entries disagree with finite differences", g_be->name, bad);

    // (c) a KV cache: prefill 2 sequences into slots 2 and 0, then one row each at later
    //     positions, attending over everything written so far
    float *ck = dev(NULL, SLOTS * CTX * KD), *cv = dev(NULL, SLOTS * CTX * KD);
    const int pre_qs[3] = {0, 5, 15}, pre_p0[2] = {0, 0};
    int64_t pre_off[2] = {(int64_t)2 * CTX * KD, 0};
    sc_attn_layout pre = {.n_seq = 2, .q_start = pre_qs, .pos0 = pre_p0, .kv_off = pre_off, .kv_stride = KD};
    CHECK_OK(g_be->op->kv_write(g_be, ck, cv, Dk, Dv, &pre, KD));
    float hk[SLOTS * CTX * KD];
    get(hk, ck, SLOTS * CTX * KD);
    int ok = 1;
    for (int i = 0; i < 5 * KD; i++) ok &= hk[2 * CTX * KD + i] == k[i];
    for (int i = 0; i < 10 * KD; i++) ok &= hk[i] == k[5 * KD + i];
    CHECKF(ok, "%s: kv_write puts rows at their slot and position", g_be->name);
    const int st_qs[3] = {0, 1, 2}, st_p0[2] = {5, 10};
    float *k2 = randn(9, 1, 2 * KD, 1.0f), *v2 = randn(9, 2, 2 * KD, 1.0f), *q2 = randn(9, 0, 2 * QD, 1.0f);
    float *Dk2 = dev(k2, 2 * KD), *Dv2 = dev(v2, 2 * KD), *Dq2 = dev(q2, 2 * QD), o2[2 * QD];
    sc_attn_layout step = {.n_seq = 2, .q_start = st_qs, .pos0 = st_p0, .kv_off = pre_off, .kv_stride = KD};
    CHECK_OK(g_be->op->kv_write(g_be, ck, cv, Dk2, Dv2, &step, KD));
    CHECK_OK(g_be->op->attention(g_be, Do, NULL, Dq2, ck, cv, &step, NH, KVH, HD));
    get(o2, Do, 2 * QD);
    float hc[SLOTS * CTX * KD];
    get(hk, ck, SLOTS * CTX * KD); get(hc, cv, SLOTS * CTX * KD);
    double ro2[2 * QD], rl2[2 * NH];
    attn_ref(q2, hk, hc, &step, NH, KVH, HD, ro2, rl2);
    e = sc_test_rel_err(o2, ro2, 2 * QD);
    CHECKF(e <= TOL_ATTN, "%s: attention over a KV cache: rel. error %.3g", g_be->name, e);
    drop(Dq); drop(Dk); drop(Dv); drop(Do); drop(Dl); drop(Ddo); drop(Ddq); drop(Ddk); drop(Ddv);
    drop(ck); drop(cv); drop(Dk2); drop(Dv2); drop(Dq2);
    free(q); free(k); free(v); free(dout); free(k2); free(v2); free(q2);
}

// --- The adapter ----------------------------------------------------------------------------

// Reference update = s * u / (||u|| + 1e-8), u = h A B, in double.
static void adapter_ref(const float *h, const float *A, const float *B, int T, int C, int r, double s, double *upd) {
    for (int t = 0; t < T; t++) {
        double ha[8] = {0}, n = 0;
        for (int j = 0; j < r; j++) for (int c = 0; c < C; c++) ha[j] += (double)h[t * C + c] * A[c * r + j];
        for (int c = 0; c < C; c++) { double u = 0; for (int j = 0; j < r; j++) u += ha[j] * B[j * C + c]; upd[t * C + c] = u; n += u * u; }
        for (int c = 0; c < C; c++) upd[t * C + c] *= s / (sqrt(n) + 1e-8);
    }
}

// L = sum(g * (h + update(h))) by the double reference
typedef struct { const float *h, *A, *B, *g; int T, C, r; double *upd; } adapter_loss;

static double adapter_ref_loss(void *ctx) {
    adapter_loss *a = ctx;
    adapter_ref(a->h, a->A, a->B, a->T, a->C, a->r, 2.0, a->upd);
    double l = 0;
    for (int j = 0; j < a->T * a->C; j++) l += a->g[j] * (a->upd[j] + a->h[j]);
    return l;
}

static void test_adapter(void) {
    enum { T = 4, C = 24, R = 2 };
    float *h = randn(10, 0, T * C, 1.0f), *A = randn(10, 1, C * R, 1.0f), *B = randn(10, 2, R * C, 0.3f), *g = randn(10, 3, T * C, 1.0f);
    float *Dh = dev(h, T * C), *DA = dev(A, C * R), *DB = dev(B, R * C), *Do = dev(NULL, T * C);
    float out[T * C];
    double ref[T * C];
    adapter_ref(h, A, B, T, C, R, 2.0, ref);
    CHECK_OK(g_be->op->adapter_forward(g_be, Do, Dh, DA, DB, T, C, R, 2.0f, 0));
    get(out, Do, T * C);
    CHECKF(sc_test_rel_err(out, ref, T * C) <= TOL_F32, "%s: adapter_forward (the update)", g_be->name);
    CHECK_OK(g_be->op->adapter_forward(g_be, Dh, Dh, DA, DB, T, C, R, 2.0f, 1));   // in place: h + update
    get(out, Dh, T * C);
    for (int i = 0; i < T * C; i++) ref[i] += h[i];
    CHECKF(sc_test_rel_err(out, ref, T * C) <= TOL_F32, "%s: adapter_forward in place", g_be->name);
    CHECK_OK(g_be->op->upload(g_be, Dh, h, sizeof(float) * T * C));
    // backward against finite differences of L = sum(g * (h + update(h))) in h, A and B
    float *Dg = dev(g, T * C), *DdA = dev(NULL, C * R), *DdB = dev(NULL, R * C), dh[T * C], dA[C * R], dB[R * C];
    CHECK_OK(g_be->op->memset(g_be, DdA, 0, sizeof dA));
    CHECK_OK(g_be->op->memset(g_be, DdB, 0, sizeof dB));
    CHECK_OK(g_be->op->adapter_backward(g_be, Dg, Dh, DA, DB, DdA, DdB, T, C, R, 2.0f));
    get(dh, Dg, T * C); get(dA, DdA, C * R); get(dB, DdB, R * C);
    adapter_loss al = {h, A, B, g, T, C, R, ref};
    int bad = fd_disagree(h, dh, T * C, 5, 1e-3f, 1.0, adapter_ref_loss, &al, "dh") +
              fd_disagree(A, dA, C * R, 5, 1e-3f, 1.0, adapter_ref_loss, &al, "dA") +
              fd_disagree(B, dB, R * C, 5, 1e-3f, 1.0, adapter_ref_loss, &al, "dB");
    CHECKF(bad == 0, "%s: adapter backward: %d entries disagree with finite differences", g_be->name, bad);
    drop(Dh); drop(DA); drop(DB); drop(Do); drop(Dg); drop(DdA); drop(DdB);
    free(h); free(A); free(B); free(g);
}

// --- Loss, optimizer, sampling --------------------------------------------------------------

// The divergence loss in double: sum over rows of (alpha * -KL(P||Q) + beta * -log Q(target)) / n;
// per row KL and NLL into kl, nll when not NULL.
typedef struct { const float *lp, *lq; const int32_t *tg; int n, V; float alpha, beta; } div_loss;

static double divergence_ref(const div_loss *d, double *kl, double *nll) {
    double total = 0;
    for (int i = 0; i < d->n; i++) {
        const float *zp = d->lp + (size_t)i * d->V, *zq = d->lq + (size_t)i * d->V;
        double mp = -1e300, mq = -1e300, sp = 0, sq = 0, k = 0;
        for (int x = 0; x < d->V; x++) { mp = fmax(mp, zp[x]); mq = fmax(mq, zq[x]); }
        for (int x = 0; x < d->V; x++) { sp += exp(zp[x] - mp); sq += exp(zq[x] - mq); }
        for (int x = 0; x < d->V; x++) {
            double a = zp[x] - mp - log(sp), b = zq[x] - mq - log(sq);
            k += exp(a) * (a - b);
        }
        const double nl = -(zq[d->tg[i]] - mq - log(sq));
        if (kl) kl[i] = k;
        if (nll) nll[i] = nl;
        total += (d->alpha * -k + d->beta * nl) / d->n;
    }
    return total;
}

static double divergence_ref_loss(void *ctx) { return divergence_ref(ctx, NULL, NULL); }

static void test_loss(void) {
    enum { N = 3, V = 50 };
    const float alpha = 1.1f, beta = 0.3f;
    float *lp = randn(11, 0, N * V, 2.0f), *lq = randn(11, 1, N * V, 2.0f), grad[N * V];
    const int32_t tg[N] = {4, 49, 0};
    float *Dp = dev(lp, N * V), *Dq = dev(lq, N * V);
    double kl[N], nll[N];
    CHECK_OK(g_be->op->divergence_loss(g_be, Dq, Dp, tg, N, V, alpha, beta, 1.0 / N, kl, nll));
    get(grad, Dq, N * V);
    // reference: L(zq) = sum_i (alpha * -KL_i + beta * NLL_i) / N, in double; gradient by differences
    div_loss dl = {lp, lq, tg, N, V, alpha, beta};
    double rkl[N], rnll[N];
    divergence_ref(&dl, rkl, rnll);
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(kl[i], rkl[i], TOL_LOSS * (1 + rkl[i]));
        CHECK_NEAR(nll[i], rnll[i], TOL_LOSS * (1 + rnll[i]));
    }
    const int bad = fd_disagree(lq, grad, N * V, 7, 1e-3f, 1e-2, divergence_ref_loss, &dl, "dlogits");
    CHECKF(bad == 0, "%s: divergence loss gradient: %d entries disagree with finite differences", g_be->name, bad);
    int32_t badt[1] = {V};
    CHECK_ERR(g_be->op->divergence_loss(g_be, Dq, Dp, badt, 1, V, alpha, beta, 1.0, kl, nll), SC_ERR_INTERNAL, "outside the vocabulary");
    drop(Dp); drop(Dq); free(lp); free(lq);
}

static void test_adamw(void) {
    enum { N = 5 };
    float p[N] = {1.0f, -2.0f, 0.5f, 0, 3}, g[N] = {0.5f, -0.25f, 0, 1e-3f, -4}, m[N] = {0}, v[N] = {0};
    double rp[N], rm[N] = {0}, rv[N] = {0};
    for (int i = 0; i < N; i++) rp[i] = p[i];
    const sc_adamw_opts o = {0.1f, 0.9f, 0.999f, 1e-8f, 0.01f};
    float *Dp = dev(p, N), *Dg = dev(g, N), *Dm = dev(m, N), *Dv = dev(v, N);
    for (int step = 1; step <= 3; step++) {
        CHECK_OK(g_be->op->adamw(g_be, Dp, Dg, Dm, Dv, N, &o, step));
        for (int i = 0; i < N; i++) {   // PyTorch's AdamW, in double
            rp[i] -= 0.1 * 0.01 * rp[i];
            rm[i] = 0.9 * rm[i] + 0.1 * g[i];
            rv[i] = 0.999 * rv[i] + 0.001 * (double)g[i] * g[i];
            rp[i] -= 0.1 * (rm[i] / (1 - pow(0.9, step))) / (sqrt(rv[i] / (1 - pow(0.999, step))) + 1e-8);
        }
    }
    get(p, Dp, N);
    for (int i = 0; i < N; i++) CHECK_NEAR(p[i], rp[i], 1e-5 * (1 + fabs(rp[i])));
    CHECK_ERR(g_be->op->adamw(g_be, Dp, Dg, Dm, Dv, N, &o, 0), SC_ERR_INTERNAL, "steps count from 1");
    drop(Dp); drop(Dg); drop(Dm); drop(Dv);
}

static void test_sample(void) {
    enum { V = 7, N = 4 };
    const float base[V] = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f, -3.0f};
    float rows[N * V];
    for (int i = 0; i < N; i++) memcpy(rows + i * V, base, sizeof base);
    float *D = dev(rows, N * V);
    int32_t ids[N];
    const float u[N] = {0.1f, 0.5f, 0.9f, 0.99f};
    sc_sampling s = {.greedy = 1, .temperature = 1, .top_p = 1};
    CHECK_OK(g_be->op->sample(g_be, D, N, V, &s, u, ids));
    for (int i = 0; i < N; i++) CHECK(ids[i] == 1);
    s = (sc_sampling){.temperature = 1, .top_k = 1, .top_p = 1, .vocab_limit = 1};   // only id 0 may be drawn
    CHECK_OK(g_be->op->upload(g_be, D, rows, sizeof rows));
    CHECK_OK(g_be->op->sample(g_be, D, N, V, &s, u, ids));
    for (int i = 0; i < N; i++) CHECK(ids[i] == 0);
    // a batch of rows draws what each row draws alone (rows are independent), and the
    // draws follow the inverse CDF of softmax(logits / T) over the top-k
    s = (sc_sampling){.temperature = 0.7f, .top_k = 3, .top_p = 1};
    CHECK_OK(g_be->op->upload(g_be, D, rows, sizeof rows));
    CHECK_OK(g_be->op->sample(g_be, D, N, V, &s, u, ids));
    double pk[3], z = 0;
    const int top[3] = {1, 5, 2};
    for (int j = 0; j < 3; j++) z += pk[j] = exp(base[top[j]] / 0.7);
    for (int i = 0; i < N; i++) {
        double acc = 0;
        int want = top[2];
        for (int j = 0; j < 3; j++) { acc += pk[j] / z; if (acc > u[i]) { want = top[j]; break; } }
        CHECKF(ids[i] == want, "%s: sample row %d (u %.2f): %d, want %d", g_be->name, i, u[i], ids[i], want);
        int32_t one;
        CHECK_OK(g_be->op->upload(g_be, D, base, sizeof base));
        CHECK_OK(g_be->op->sample(g_be, D, 1, V, &s, &u[i], &one));
        CHECK(one == ids[i]);
    }
    drop(D);
}

// --- main -----------------------------------------------------------------------------------

int main(void) {
    const char *isas[] = {"generic", "avx2"};
    int ran = 0;
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        sc_backend_opts o;
        sc_backend_opts_default(&o);
        o.isa = isas[i];
        if (sc_backend_create(&o, &g_be) != SC_OK) { printf("test_backend: %s kernels not available here (%s)\n", isas[i], sc_last_error()); continue; }
        printf("test_backend: %s\n", g_be->name);
        test_memory();
        test_staging();
        test_matmul();
        test_rows();
        test_norm_rope_swiglu();
        test_attention();
        test_adapter();
        test_loss();
        test_adamw();
        test_sample();
        CHECKF(g_be->stats.bytes_live == sc_arena_capacity(&g_be->ws), "%s: %zu bytes of backend memory held besides the workspace's %zu",
               g_be->name, g_be->stats.bytes_live, sc_arena_capacity(&g_be->ws));
        sc_backend_free(g_be);
        ran++;
    }
    CHECK(ran >= 1);
    return sc_test_finish("test_backend");
}
