// test_precision.c — the CPU backend's bf16 precision (BF16 GEMM operands, F32 accumulation,
// through oneDNN) against independent references:
//  1. matmul and matmul_dx (forward, backward, accumulate) equal a double-precision product of
//     the BF16-rounded operands to within F32 accumulation error (1e-5 of the largest output):
//     this pins the layout, the rounding (to nearest even) and the accumulate flag; the same
//     product without rounding the activations differs by more (the path really rounds);
//  2. a small BF16 model's logits and the adapter's gradients in bf16 precision stay within a
//     stated bound of the same computation in f32 precision (see TOL_* below), and differ from
//     it at all;
//  3. repeated products of one shape make no backend allocation (the primitive and the
//     workspace are made once);
//  4. asking for bf16 where it cannot run fails with a message naming f32, and an unknown
//     precision is refused.
// Skipped (77) where the CPU has no AVX-512 BF16 or the build has no oneDNN, after part 4.
#include "testutil.h"
#include "steerclear/adapter.h"
#include "steerclear/engine.h"
#include "steerclear/loss.h"
#include "steerclear/make_model.h"
#include "steerclear/rng.h"

#include <stdlib.h>

// Bounds of bf16 against f32 precision, relative to the largest |value| of the f32 result.
// Rounding an operand to BF16 (8 significant bits, to nearest) changes it by at most 2^-9
// relative, so each term x_k w_k of a product by at most ~2^-8; over K terms of random sign the
// errors add like a random walk, as do the terms, so a product's error relative to its typical
// output is ~2^-8 = 3.9e-3. Through the model's chain of products (2 blocks of q/k/v/o and
// gate/up/down, then the LM head: about 9 in sequence, the errors again adding in quadrature
// while normalisation keeps the scale) that gives ~3 x 3.9e-3 = 1.2e-2 for the logits;
// the bound is 2.5x that. The adapter's gradients pass the same chain twice (forward and
// backward, whose dy operands are rounded too) and start from the loss's P - Q, a difference of
// two models' probabilities that is small where the adapter changes little: the logits' noise
// does not cancel there, so the element-wise bound is looser (0.15 of the largest entry) and the
// gradient's direction is bounded too (cosine >= 0.99: what AdamW's step follows).
// Measured on the test model: see the printed figures.
#define TOL_LOGITS 3e-2
#define TOL_GRAD 0.15
#define MIN_COSINE 0.99

static sc_backend *make_backend(const char *precision) {
    sc_backend_opts o;
    sc_backend_opts_default(&o);
    o.precision = precision;
    sc_backend *be = NULL;
    CHECK_OK(sc_backend_create(&o, &be));
    return be;
}

static double bf16r(float x) { return sc_bf16_to_f32(sc_f32_to_bf16(x)); }

static void test_ops(sc_backend *be) {
    const int N = 200, K = 320, T = 37;
    uint16_t *w = malloc(sizeof(uint16_t) * (size_t)N * K);
    float *wf = malloc(sizeof(float) * (size_t)N * K), *x = malloc(sizeof(float) * (size_t)T * K);
    float *dy = malloc(sizeof(float) * (size_t)T * N), *out = malloc(sizeof(float) * (size_t)T * N);
    float *dx = malloc(sizeof(float) * (size_t)T * K), *bias = malloc(sizeof(float) * N);
    double *ref = malloc(sizeof(double) * (size_t)T * (N > K ? N : K)), *raw = malloc(sizeof(double) * (size_t)T * (N > K ? N : K));
    sc_rng_normal(11, 0, 0, wf, (size_t)N * K);
    sc_rng_normal(11, 1, 0, x, (size_t)T * K);
    sc_rng_normal(11, 2, 0, dy, (size_t)T * N);
    sc_rng_normal(11, 3, 0, bias, (size_t)N);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = sc_f32_to_bf16(wf[i]);
    sc_mat W = {.data = w, .dtype = SC_DTYPE_BF16, .rows = N, .cols = K};

    // forward with bias: ref = bf16(x) . W^T + bias; raw = x . W^T + bias (activations unrounded)
    CHECK_OK(be->op->matmul(be, out, x, &W, bias, T));
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double s = 0, r = 0;
            for (int k = 0; k < K; k++) {
                const double wk = sc_bf16_to_f32(w[(size_t)n * K + k]);
                s += bf16r(x[(size_t)t * K + k]) * wk;
                r += (double)x[(size_t)t * K + k] * wk;
            }
            ref[(size_t)t * N + n] = s + bias[n];
            raw[(size_t)t * N + n] = r + bias[n];
        }
    double e = sc_test_rel_err(out, ref, (size_t)T * N), e_raw = sc_test_rel_err(out, raw, (size_t)T * N);
    printf("matmul bf16 N=%d K=%d T=%d: rel. error %.2e against rounded operands, %.2e against unrounded\n", N, K, T, e, e_raw);
    CHECKF(e <= 1e-5, "matmul: rel. error %.3g against the product of the BF16-rounded operands (bound 1e-5)", e);
    CHECKF(e_raw > 1e-4, "matmul: rel. error %.3g against unrounded activations: the activations were not rounded to BF16", e_raw);

    // backward, written then accumulated: dx = bf16(dy) . W, then dx += the same
    for (int acc = 0; acc < 2; acc++) {
        if (acc) for (size_t i = 0; i < (size_t)T * K; i++) dx[i] = 0.5f;   // accumulate onto a known value
        CHECK_OK(be->op->matmul_dx(be, dx, dy, &W, T, acc));
        for (int t = 0; t < T; t++)
            for (int k = 0; k < K; k++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += bf16r(dy[(size_t)t * N + n]) * sc_bf16_to_f32(w[(size_t)n * K + k]);
                ref[(size_t)t * K + k] = s + (acc ? 0.5 : 0.0);
            }
        e = sc_test_rel_err(dx, ref, (size_t)T * K);
        printf("matmul_dx bf16 accumulate=%d: rel. error %.2e\n", acc, e);
        CHECKF(e <= 1e-5, "matmul_dx accumulate=%d: rel. error %.3g against the product of the BF16-rounded operands (bound 1e-5)", acc, e);
    }

    // steady state: the same shapes again make no backend allocation
    const uint64_t n_alloc = be->stats.n_alloc;
    for (int r = 0; r < 3; r++) {
        CHECK_OK(be->op->matmul(be, out, x, &W, bias, T));
        CHECK_OK(be->op->matmul_dx(be, dx, dy, &W, T, r & 1));
    }
    CHECKF(be->stats.n_alloc == n_alloc, "repeated bf16 products allocated %llu times", (unsigned long long)(be->stats.n_alloc - n_alloc));
    free(w); free(wf); free(x); free(dy); free(out); free(dx); free(bias); free(ref); free(raw);
}

// Logits of the last rows of three sequences and the adapter's gradients, in one precision.
typedef struct { float *logits, *dA, *dB; size_t nA, nB; } model_result;

static model_result run_model(const char *dir, sc_backend *be) {
    model_result r = {0};
    sc_model *m = NULL;
    CHECK_OK(sc_model_load(dir, 0, -1, be, &m));
    if (!m) return r;
    const int C = m->cfg.hidden, V = m->cfg.vocab, L = m->cfg.n_layers;
    enum { NS = 3, ROWS = 24 };
    const int len[NS] = {40, 33, 51};
    int ss[NS + 1] = {0}, rows[ROWS];
    for (int s = 0; s < NS; s++) ss[s + 1] = ss[s] + len[s];
    const int T = ss[NS];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T), tg[ROWS];
    for (int i = 0; i < T; i++) { uint32_t q[4]; sc_philox4x32(21, 0, (uint64_t)i, q); ids[i] = (int32_t)(q[0] % (uint32_t)V); }
    for (int i = 0; i < ROWS; i++) {   // the last 8 rows of each sequence, predicting the next id
        const int s = i / 8, row = ss[s + 1] - 8 + i % 8;
        rows[i] = row;
        tg[i] = row + 1 < ss[s + 1] ? ids[row + 1] : 0;
    }
    sc_adapter *ad = NULL;
    CHECK_OK(sc_adapter_create(be, SC_ADAPTER_PER_BLOCK, L, C, 2, 2.0f, &ad));
    sc_rng_normal(3, 1, 0, ad->A, sc_adapter_numel_A(ad));
    sc_rng_normal(3, 2, 0, ad->B, sc_adapter_numel_B(ad));
    float *hp = malloc(sizeof(float) * (size_t)T * C), *hq = malloc(sizeof(float) * (size_t)T * C), *dh = calloc((size_t)T * C, sizeof(float));
    r.logits = malloc(sizeof(float) * (size_t)ROWS * V);
    sc_batch batch = {.n_seq = NS, .seq_start = ss};
    sc_hook hook = sc_adapter_hook(ad);
    sc_activations *acts = NULL;
    sc_loss_stats ls = {0};
    CHECK_OK(sc_activations_create(m, be, 0, 0, 0, &acts));
    CHECK_OK(sc_forward(m, be, &batch, ids, hp, NULL, NULL, NULL));
    CHECK_OK(sc_head(m, be, hp, rows, ROWS, NULL, r.logits));
    CHECK_OK(sc_forward(m, be, &batch, ids, hq, NULL, &hook, acts));
    CHECK_OK(sc_divergence_loss(m, be, hp, hq, rows, tg, ROWS, 1.1f, 0.3f, 8, dh, &ls));
    sc_adapter_zero_grad(ad);
    CHECK_OK(sc_backward(m, be, acts, &hook, dh));
    r.nA = sc_adapter_numel_A(ad);
    r.nB = sc_adapter_numel_B(ad);
    r.dA = malloc(sizeof(float) * r.nA);
    r.dB = malloc(sizeof(float) * r.nB);
    memcpy(r.dA, ad->dA, sizeof(float) * r.nA);
    memcpy(r.dB, ad->dB, sizeof(float) * r.nB);
    sc_activations_free(acts);
    sc_adapter_free(ad);
    sc_model_free(m);
    free(hp); free(hq); free(dh); free(ids);
    return r;
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double *d = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) d[i] = ref[i];
    double e = sc_test_rel_err(a, d, n);
    free(d);
    return e;
}

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static void test_model(sc_backend *bf, sc_backend *f32) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/model", sc_test_tmpdir());
    sc_make_model_opts mo = {0};
    mo.cfg.n_layers = 2; mo.cfg.hidden = 256; mo.cfg.n_heads = 4; mo.cfg.n_kv_heads = 2;
    mo.cfg.intermediate = 512; mo.cfg.vocab = 1024; mo.cfg.tie_embeddings = 1;
    mo.cfg.rope_theta = 1e4f; mo.cfg.rms_eps = 1e-6f; mo.cfg.max_position = 256; mo.cfg.bos_id = mo.cfg.eos_id = -1;
    mo.dtype = SC_DTYPE_BF16; mo.seed = 7;
    CHECK_OK(sc_make_model(dir, &mo));
    model_result a = run_model(dir, bf), b = run_model(dir, f32);
    if (!a.logits || !b.logits || !a.dA || !b.dA) { CHECK(0); return; }
    const double el = rel_err(a.logits, b.logits, (size_t)24 * 1024);
    const double eA = rel_err(a.dA, b.dA, a.nA), eB = rel_err(a.dB, b.dB, a.nB);
    const double cA = cosine(a.dA, b.dA, a.nA), cB = cosine(a.dB, b.dB, a.nB);
    printf("bf16 vs f32 precision: logits rel. error %.2e (bound %.0e); dA %.2e, dB %.2e (bound %.2g); cosine dA %.5f, dB %.5f (bound %.3f)\n",
           el, TOL_LOGITS, eA, eB, TOL_GRAD, cA, cB, MIN_COSINE);
    CHECKF(cA >= MIN_COSINE && cB >= MIN_COSINE, "adapter gradients: cosine of bf16 against f32 dA %.5f, dB %.5f (bound %g)", cA, cB, MIN_COSINE);
    CHECKF(el <= TOL_LOGITS, "logits: bf16 precision differs from f32 by %.3g of the largest logit (bound %g)", el, TOL_LOGITS);
    CHECKF(eA <= TOL_GRAD && eB <= TOL_GRAD, "adapter gradients: bf16 differs from f32 by dA %.3g, dB %.3g (bound %g)", eA, eB, TOL_GRAD);
    CHECKF(el > 1e-5, "logits: bf16 and f32 precision agree to %.3g: the bf16 products did not run", el);
    free(a.logits); free(a.dA); free(a.dB); free(b.logits); free(b.dA); free(b.dB);
}

int main(void) {
    sc_backend_opts o;
    sc_backend_opts_default(&o);
    sc_backend *be = NULL;
    o.precision = "fp8";
    CHECK_ERR(sc_backend_create(&o, &be), SC_ERR_ARG, "precision 'fp8'", "auto, f32 or bf16");
    o.precision = "bf16";
    sc_error_clear();
    if (sc_backend_create(&o, &be) != SC_OK) {
        CHECKF(strstr(sc_last_error(), "'f32'") != NULL, "refusing bf16 must point to f32: %s", sc_last_error());
        printf("test_precision: bf16 precision is not available here (%s): skipped\n", sc_last_error());
        sc_test_finish("test_precision");
        return sc_test_failures ? 1 : 77;
    }
    CHECKF(!strcmp(be->precision, "bf16") && strstr(be->name, "bf16"), "backend %s reports precision %s", be->name, be->precision);
    sc_backend *f32 = make_backend("f32");
    if (!f32) return sc_test_finish("test_precision");
    CHECK(!strcmp(f32->precision, "f32"));
    test_ops(be);
    test_model(be, f32);
    sc_backend_free(be);
    sc_backend_free(f32);
    return sc_test_finish("test_precision");
}
