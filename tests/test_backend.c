// test_backend.c — the CPU backend's ops against plain double-precision references, one
// table of tolerances: every matmul path (F32; BF16 streamed for few rows; BF16 widened in
// blocks; BF16 with an F32 copy) at sizes that are not multiples of the vector width, the
// rope inverse, and the SwiGLU and RMSNorm backward against finite differences.
// A CUDA backend will be checked against these same references.
#include "testutil.h"
#include "steerclear/backend.h"
#include "steerclear/rng.h"

#include <stdlib.h>

#define TOL_MATMUL 1e-5      // relative to max |ref|: float32 accumulation over K <= 300
#define TOL_FD 2e-3          // float32 central differences, step 1e-3

static void test_matmul(const sc_backend *be) {
    const int Ns[] = {37, 128}, Ks[] = {70, 96}, Ts[] = {1, 3, 8, 9, 16, 17, 40};
    for (int si = 0; si < 2; si++) {
        const int N = Ns[si], K = Ks[si];
        float *wf = malloc(sizeof(float) * (size_t)N * K), *wr = malloc(sizeof(float) * (size_t)N * K);
        uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)N * K);
        float bias[128];
        sc_rng_normal(1, (uint64_t)si, 0, wf, (size_t)N * K);
        sc_rng_normal(2, 0, 0, bias, 128);
        for (int i = 0; i < N * K; i++) { wb[i] = sc_f32_to_bf16(wf[i]); wr[i] = sc_bf16_to_f32(wb[i]); }
        for (int ti = 0; ti < 7; ti++) {
            const int T = Ts[ti];
            float *x = malloc(sizeof(float) * (size_t)T * K), *out = malloc(sizeof(float) * (size_t)T * N);
            float *dy = malloc(sizeof(float) * (size_t)T * N), *dx = malloc(sizeof(float) * (size_t)T * K);
            double *ref = malloc(sizeof(double) * (size_t)T * N), *refb = malloc(sizeof(double) * (size_t)T * N);
            double *rdx = malloc(sizeof(double) * (size_t)T * K), *rdxb = malloc(sizeof(double) * (size_t)T * K);
            sc_rng_normal(3, (uint64_t)T, 0, x, (size_t)T * K);
            sc_rng_normal(4, (uint64_t)T, 0, dy, (size_t)T * N);
            for (int t = 0; t < T; t++) for (int n = 0; n < N; n++) {
                double a = bias[n], b = bias[n];
                for (int k = 0; k < K; k++) { a += (double)x[t * K + k] * wf[n * K + k]; b += (double)x[t * K + k] * wr[n * K + k]; }
                ref[t * N + n] = a; refb[t * N + n] = b;
            }
            for (int t = 0; t < T; t++) for (int k = 0; k < K; k++) {
                double a = 0, b = 0;
                for (int n = 0; n < N; n++) { a += (double)dy[t * N + n] * wf[n * K + k]; b += (double)dy[t * N + n] * wr[n * K + k]; }
                rdx[t * K + k] = a; rdxb[t * K + k] = b;
            }
            sc_mat mats[3] = {{wf, SC_DTYPE_F32, N, K, NULL}, {wb, SC_DTYPE_BF16, N, K, NULL}, {wb, SC_DTYPE_BF16, N, K, wr}};
            const char *names[3] = {"F32", "BF16", "BF16+F32 copy"};
            for (int mi = 0; mi < 3; mi++) {
                const double *r = mi ? refb : ref, *rd = mi ? rdxb : rdx;
                CHECK_OK(be->matmul(out, x, &mats[mi], bias, T));
                double e = sc_test_rel_err(out, r, (size_t)T * N);
                CHECKF(e <= TOL_MATMUL, "matmul %s N=%d K=%d T=%d: rel. error %.3g", names[mi], N, K, T, e);
                for (int i = 0; i < T * K; i++) dx[i] = 1.0f;   // accumulate onto ones
                CHECK_OK(be->matmul_dx(dx, dy, &mats[mi], T, 1));
                double md = 0, mr = 0;
                for (int i = 0; i < T * K; i++) { md = fmax(md, fabs(dx[i] - (rd[i] + 1.0))); mr = fmax(mr, fabs(rd[i] + 1.0)); }
                CHECKF(md / mr <= TOL_MATMUL, "matmul_dx %s N=%d K=%d T=%d: rel. error %.3g", names[mi], N, K, T, md / mr);
            }
            free(x); free(out); free(dy); free(dx); free(ref); free(refb); free(rdx); free(rdxb);
        }
        free(wf); free(wr); free(wb);
    }
}

static void test_rope(const sc_backend *be) {
    enum { T = 5, H = 3, HD = 16 };
    float x[T * H * HD], y[T * H * HD];
    int pos[T] = {0, 1, 7, 100, 4095};
    sc_rng_normal(5, 0, 0, x, T * H * HD);
    memcpy(y, x, sizeof x);
    be->rope(y, pos, T, H, HD, 1e6f, 0);
    // position 0 is the identity; rotation keeps each pair's norm; inverse undoes it
    for (int i = 0; i < H * HD; i++) CHECK(y[i] == x[i]);
    for (int t = 1; t < T; t++) for (int h = 0; h < H; h++) for (int i = 0; i < HD / 2; i++) {
        const float *a = x + (t * H + h) * HD, *b = y + (t * H + h) * HD;
        CHECK_NEAR(hypot(a[i], a[i + HD / 2]), hypot(b[i], b[i + HD / 2]), 1e-5);
    }
    be->rope(y, pos, T, H, HD, 1e6f, 1);
    for (int i = 0; i < T * H * HD; i++) CHECK_NEAR(y[i], x[i], 1e-5);
}

static void test_backward_fd(const sc_backend *be) {
    enum { T = 3, C = 10 };
    float x[T * C], w[C], g[T * C], u[T * C], dy[T * C], out[T * C], rstd[T], dx[T * C], dg[T * C], du[T * C];
    sc_rng_normal(6, 0, 0, x, T * C); sc_rng_normal(6, 1, 0, w, C); sc_rng_normal(6, 2, 0, dy, T * C);
    sc_rng_normal(6, 3, 0, g, T * C); sc_rng_normal(6, 4, 0, u, T * C);
    // RMSNorm: L = sum(dy * rmsnorm(x))
    be->rmsnorm(out, rstd, x, w, T, C, 1e-6f);
    be->rmsnorm_backward(dx, dy, x, w, rstd, T, C, 0);
    for (int i = 0; i < T * C; i += 7) {
        float keep = x[i], h = 1e-3f;
        double lp = 0, lm = 0;
        x[i] = keep + h; be->rmsnorm(out, NULL, x, w, T, C, 1e-6f); for (int j = 0; j < T * C; j++) lp += (double)dy[j] * out[j];
        x[i] = keep - h; be->rmsnorm(out, NULL, x, w, T, C, 1e-6f); for (int j = 0; j < T * C; j++) lm += (double)dy[j] * out[j];
        x[i] = keep;
        CHECK_NEAR(dx[i], (lp - lm) / (2 * h), TOL_FD * (1 + fabs(dx[i])));
    }
    // SwiGLU: L = sum(dy * silu(g) * u)
    be->swiglu_backward(dg, du, dy, g, u, T * C);
    for (int i = 0; i < T * C; i += 5) {
        float keep = g[i], h = 1e-3f;
        double lp, lm;
        g[i] = keep + h; be->swiglu(out, g, u, T * C); lp = (double)dy[i] * out[i];
        g[i] = keep - h; be->swiglu(out, g, u, T * C); lm = (double)dy[i] * out[i];
        g[i] = keep;
        CHECK_NEAR(dg[i], (lp - lm) / (2 * h), TOL_FD * (1 + fabs(dg[i])));
        CHECK_NEAR(du[i], dy[i] * g[i] / (1 + exp(-g[i])), 1e-5);
    }
}

int main(void) {
    const sc_backend *be = sc_backend_cpu();
    test_matmul(be);
    test_rope(be);
    test_backward_fd(be);
    return sc_test_finish("test_backend");
}
