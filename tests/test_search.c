// test_search.c — the divergence search's maths without PyTorch:
//  1. the saving is exact: the study's formulation (re-run every prefix through P and Q and
//     back-propagate the loss of the last position) gives the teacher-forced gradient;
//  2. adapter gradients against central finite differences (both kinds);
//  3. the first step at B = 0: dA exactly 0, dB finite, AdamW keeps everything finite;
//  4. AdamW against a hand-computed step; checkpoint save/load round trip and its errors.
#include "testutil.h"
#include "steerclear/adapter.h"
#include "steerclear/engine.h"
#include "steerclear/loss.h"
#include "steerclear/make_model.h"
#include "steerclear/rng.h"
#include "steerclear/search.h"

#include <stdlib.h>

static sc_model *make(const char *name, int L, int C, int NH, int KVH, int V, sc_dtype dt) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", sc_test_tmpdir(), name);
    sc_make_model_opts mo = {0};
    mo.cfg.n_layers = L; mo.cfg.hidden = C; mo.cfg.n_heads = NH; mo.cfg.n_kv_heads = KVH;
    mo.cfg.intermediate = 2 * C; mo.cfg.vocab = V; mo.cfg.tie_embeddings = 1;
    mo.cfg.rope_theta = 1e4f; mo.cfg.rms_eps = 1e-6f; mo.cfg.max_position = 512; mo.cfg.bos_id = mo.cfg.eos_id = -1;
    mo.dtype = dt; mo.seed = 5;
    sc_model *m = NULL;
    CHECK_OK(sc_make_model(dir, &mo));
    CHECK_OK(sc_model_load(dir, 0, -1, sc_test_backend(), &m));
    return m;
}

// Teacher-forced loss (and gradients into the adapter when grad != 0) over sequences.
typedef struct { int n; const int *seq_start; const int32_t *ids; const int *rows; const int32_t *targets; int n_rows; } lbatch;

static double loss_tf(const sc_model *m, sc_adapter *ad, const lbatch *b, int grad, int checkpoint) {
    sc_backend *be = sc_test_backend();
    const int T = b->seq_start[b->n], C = m->cfg.hidden;
    float *hp = malloc(sizeof(float) * (size_t)T * C), *hq = malloc(sizeof(float) * (size_t)T * C), *dh = calloc((size_t)T * C, sizeof(float));
    sc_batch batch = {.n_seq = b->n, .seq_start = b->seq_start};
    sc_hook hook = sc_adapter_hook(ad);
    sc_activations *acts = NULL;
    sc_loss_stats ls = {0};
    CHECK_OK(sc_activations_create(m, be, 0, 0, checkpoint, &acts));
    CHECK_OK(sc_forward(m, be, &batch, b->ids, hp, NULL, NULL, NULL));
    CHECK_OK(sc_forward(m, be, &batch, b->ids, hq, NULL, &hook, grad ? acts : NULL));
    CHECK_OK(sc_divergence_loss(m, be, hp, hq, b->rows, b->targets, b->n_rows, 1.1f, 0.3f, 3, grad ? dh : NULL, &ls));
    if (grad) { sc_adapter_zero_grad(ad); CHECK_OK(sc_backward(m, be, acts, &hook, dh)); }
    sc_activations_free(acts);
    free(hp); free(hq); free(dh);
    return ls.loss;
}

static double max_abs(const float *a, size_t n) { double m = 0; for (size_t i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]); return m; }

static void test_incremental_equals_teacher_forced(const sc_model *m, sc_adapter_kind kind) {
    const int C = m->cfg.hidden, L = m->cfg.n_layers;
    sc_adapter *ad = NULL;
    CHECK_OK(sc_adapter_create(sc_test_backend(), kind, L, C, 2, 2.0f, &ad));
    sc_rng_normal(3, 1, 0, ad->A, sc_adapter_numel_A(ad));
    sc_rng_normal(3, 2, 0, ad->B, sc_adapter_numel_B(ad));
    // two sequences: prompt lengths 4 and 6, continuations of 5 and 3 tokens
    const int plen[2] = {4, 6}, glen[2] = {5, 3};
    int32_t seq[2][16];
    for (int s = 0; s < 2; s++) for (int i = 0; i < plen[s] + glen[s]; i++) { uint32_t r[4]; sc_philox4x32(9, (uint64_t)s, (uint64_t)i, r); seq[s][i] = (int32_t)(r[0] % (uint32_t)m->cfg.vocab); }
    // teacher-forced: one pass over the whole sequences
    int ss[3] = {0, plen[0] + glen[0], plen[0] + glen[0] + plen[1] + glen[1]}, rows[8], n_rows = 0;
    int32_t ids[32], tg[8];
    for (int s = 0; s < 2; s++) {
        memcpy(ids + ss[s], seq[s], sizeof(int32_t) * (size_t)(plen[s] + glen[s]));
        for (int j = 0; j < glen[s]; j++) { rows[n_rows] = ss[s] + plen[s] - 1 + j; tg[n_rows++] = seq[s][plen[s] + j]; }
    }
    lbatch tf = {2, ss, ids, rows, tg, n_rows};
    double l_tf = loss_tf(m, ad, &tf, 1, 0);
    size_t nA = sc_adapter_numel_A(ad), nB = sc_adapter_numel_B(ad);
    float *gA = malloc(sizeof(float) * nA), *gB = malloc(sizeof(float) * nB), *iA = calloc(nA, sizeof(float)), *iB = calloc(nB, sizeof(float));
    memcpy(gA, ad->dA, sizeof(float) * nA);
    memcpy(gB, ad->dB, sizeof(float) * nB);
    // the study's way: for every generated position, the prefix through both models, the loss
    // of its last position only; the mean over positions of those losses and gradients
    double l_inc = 0;
    for (int s = 0; s < 2; s++) for (int j = 0; j < glen[s]; j++) {
        int len = plen[s] + j, st2[2] = {0, len}, row = len - 1;
        int32_t target = seq[s][plen[s] + j];
        lbatch one = {1, st2, seq[s], &row, &target, 1};
        l_inc += loss_tf(m, ad, &one, 1, 1) / n_rows;
        for (size_t i = 0; i < nA; i++) iA[i] += ad->dA[i] / n_rows;
        for (size_t i = 0; i < nB; i++) iB[i] += ad->dB[i] / n_rows;
    }
    double eA = 0, eB = 0;
    for (size_t i = 0; i < nA; i++) eA = fmax(eA, fabs(iA[i] - gA[i]));
    for (size_t i = 0; i < nB; i++) eB = fmax(eB, fabs(iB[i] - gB[i]));
    eA /= max_abs(gA, nA); eB /= max_abs(gB, nB);
    printf("%s: incremental vs teacher-forced: loss %.8f vs %.8f, dA rel %.2e, dB rel %.2e\n", sc_adapter_kind_name(kind), l_inc, l_tf, eA, eB);
    CHECK_NEAR(l_inc, l_tf, 1e-5 * fabs(l_tf));
    CHECKF(eA < 1e-4 && eB < 1e-4, "incremental and teacher-forced gradients differ: dA %.3g dB %.3g", eA, eB);

    // finite differences (float32: step 1e-2 on A, 1e-3 on B, a few coordinates each)
    int bad = 0;
    for (int k = 0; k < 6; k++) {
        int isB = k % 2;
        float *p = isB ? ad->B : ad->A;
        size_t idx = (size_t)(k * 7919) % (isB ? nB : nA);
        float h = isB ? 1e-3f : 1e-2f, keep = p[idx];
        p[idx] = keep + h; double lp = loss_tf(m, ad, &tf, 0, 0);
        p[idx] = keep - h; double lm = loss_tf(m, ad, &tf, 0, 0);
        p[idx] = keep;
        double fd = (lp - lm) / (2 * h), an = isB ? gB[idx] : gA[idx];
        double scale = isB ? max_abs(gB, nB) : max_abs(gA, nA);
        if (fabs(fd - an) > 2e-2 * scale) { bad++; printf("  FD %s[%zu]: finite diff %.6g analytic %.6g\n", isB ? "B" : "A", idx, fd, an); }
    }
    CHECKF(bad == 0, "%s: %d gradient entries disagree with finite differences", sc_adapter_kind_name(kind), bad);

    // first step at B = 0: dA exactly zero, dB finite and large; AdamW keeps it finite
    memset(ad->B, 0, sizeof(float) * nB);
    double l0 = loss_tf(m, ad, &tf, 1, 1);
    CHECK(isfinite(l0));
    CHECKF(max_abs(ad->dA, nA) == 0.0, "at B = 0 dA must be exactly 0, got max %g", max_abs(ad->dA, nA));
    double gmax = max_abs(ad->dB, nB);
    int finite = 1;
    for (size_t i = 0; i < nB; i++) finite &= isfinite(ad->dB[i]);
    CHECKF(finite && gmax > 1e3, "at B = 0 dB must be finite and large (the 1/(0 + 1e-8) factor), got max %g", gmax);
    float *mA = calloc(nA, 4), *vA = calloc(nA, 4), *mB = calloc(nB, 4), *vB = calloc(nB, 4);
    sc_adamw_opts ao = {0.1f, 0.9f, 0.999f, 1e-8f, 0.01f};
    sc_backend *be = sc_test_backend();
    CHECK_OK(be->op->adamw(be, ad->A, ad->dA, mA, vA, nA, &ao, 1));
    CHECK_OK(be->op->adamw(be, ad->B, ad->dB, mB, vB, nB, &ao, 1));
    for (size_t i = 0; i < nB; i++) finite &= isfinite(ad->B[i]) && fabsf(ad->B[i]) <= 0.1f + 1e-6f;
    CHECKF(finite, "after the first AdamW step B must be finite with |B| <= lr");
    double l1 = loss_tf(m, ad, &tf, 1, 0);
    CHECK(isfinite(l1));
    free(mA); free(vA); free(mB); free(vB);
    free(gA); free(gB); free(iA); free(iB);
    sc_adapter_free(ad);
}

static void test_adamw(void) {
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, -0.25f}, m[2] = {0}, v[2] = {0};
    sc_adamw_opts o = {0.1f, 0.9f, 0.999f, 1e-8f, 0.01f};
    sc_backend *be = sc_test_backend();
    CHECK_OK(be->op->adamw(be, p, g, m, v, 2, &o, 1));
    // step 1: mhat = g, vhat = g^2 -> p = p*(1 - lr*wd) - lr * sign(g) (to ~1e-8)
    CHECK_NEAR(p[0], 1.0 * (1 - 0.001) - 0.1, 1e-6);
    CHECK_NEAR(p[1], -2.0 * (1 - 0.001) + 0.1, 1e-6);
}

static void test_checkpoint(const sc_model *m) {
    sc_search_config cfg;
    sc_search_config_default(&cfg);
    cfg.prompts_per_search = 4; cfg.batch_size = 2; cfg.adapter = SC_ADAPTER_PER_BLOCK;
    sc_backend *be = sc_test_backend();
    sc_search_state *s = NULL;
    CHECK_OK(sc_search_state_create(be, &cfg, 3, m->cfg.n_layers, m->cfg.hidden, &s));
    if (!s) return;
    CHECK(s->search == 3 && s->batch == 2 && s->steps_total == 2 && s->seed == sc_search_seed(&cfg, 3));
    size_t nA = sc_adapter_numel_A(s->adapter);
    for (size_t i = 0; i < nA; i++) s->vB[i] = (float)i;   // CPU backend memory is host memory
    sc_step_record *r = &s->steps[0];
    r->loss = -1.5; r->kl = 2; r->nll = 0.5; r->n_pos = 7;
    r->prompt_idx[0] = 5; r->prompt_idx[1] = 9;
    r->gen_len[0] = 3; r->gen_len[1] = 4;
    for (int i = 0; i < 7; i++) r->gen[i] = 100 + i;
    memset(r->A, 0, nA * 4); memset(r->B, 0, nA * 4); r->B[5] = 3.25f;
    s->steps_done = 1;
    char path[4200];
    snprintf(path, sizeof path, "%s/search.ckpt", sc_test_tmpdir());
    CHECK_OK(sc_search_checkpoint_save(path, s));
    sc_search_state *back = NULL;
    CHECK_OK(sc_search_checkpoint_load(path, &cfg, be, m->cfg.n_layers, m->cfg.hidden, &back));
    if (back) {
        CHECK(back->steps_done == 1 && back->search == 3 && back->steps[0].n_pos == 7 && back->steps[0].gen[6] == 106);
        CHECK(back->steps[0].B[5] == 3.25f && back->vB[nA - 1] == (float)(nA - 1));
        CHECK(!memcmp(back->adapter->A, s->adapter->A, nA * 4));
        sc_search_state_free(back);
    }
    // mismatched config, truncated and foreign files
    sc_search_config other = cfg;
    other.rank = 3;
    CHECK_ERR(sc_search_checkpoint_load(path, &other, be, m->cfg.n_layers, m->cfg.hidden, &back), SC_ERR_ARG, path, "rank is 2 in the checkpoint but 3");
    other = cfg;
    other.lr = 0.25f;   // a setting outside the header: found through the settings the checkpoint records
    CHECK_ERR(sc_search_checkpoint_load(path, &other, be, m->cfg.n_layers, m->cfg.hidden, &back), SC_ERR_ARG, path, "other settings", "lr (0.1");
    other = cfg;
    other.searches = 50;   // may change on resume
    other.loss_chunk = 7;
    CHECK_OK(sc_search_checkpoint_load(path, &other, be, m->cfg.n_layers, m->cfg.hidden, &back));
    sc_search_state_free(back);
    char *data; size_t len;
    CHECK_OK(sc_read_file(path, &data, &len));
    for (size_t at = 80; at < len; at += len / 7) {   // one flipped bit anywhere in the payload is caught
        data[at] ^= 0x10;
        sc_test_write(path, data, len);
        CHECK_ERR(sc_search_checkpoint_load(path, &cfg, be, m->cfg.n_layers, m->cfg.hidden, &back), SC_ERR_FORMAT, path, "checksum mismatch", "corrupt");
        data[at] ^= 0x10;
    }
    sc_test_write(path, data, len - 10);
    CHECK_ERR(sc_search_checkpoint_load(path, &cfg, be, m->cfg.n_layers, m->cfg.hidden, &back), SC_ERR_FORMAT, path, "truncated");
    sc_test_write(path, "hello world, not a checkpoint", 29);
    CHECK_ERR(sc_search_checkpoint_load(path, &cfg, be, m->cfg.n_layers, m->cfg.hidden, &back), SC_ERR_FORMAT, path, "magic");
    free(data);
    sc_search_state_free(s);
}

int main(void) {
    sc_model *m = make("m", 3, 48, 4, 2, 512, SC_DTYPE_F32);
    if (!m) return sc_test_finish("test_search");
    test_incremental_equals_teacher_forced(m, SC_ADAPTER_SHARED);
    test_incremental_equals_teacher_forced(m, SC_ADAPTER_PER_BLOCK);
    test_adamw();
    test_checkpoint(m);
    sc_model_free(m);
    return sc_test_finish("test_search");
}
