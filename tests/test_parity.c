// test_parity.c — the C engine against the independent PyTorch reference (tests/ref):
// logits of a packed batch of prompts of different lengths, greedy generations of 32 tokens,
// and the divergence loss with its adapter gradients (shared and per-block), for tied and
// untied embeddings, kv-head ratios 2, 1 and 7, an odd number of blocks, and Qwen3 (per-head
// q/k norms, head_dim 24 and 48 where C/NH is 16 and 32, with and without attention_bias).
//
// Tolerances (one table, each with its reason):
//   logits: max|ours - ref| / max|ref| <= 1e-4 per prompt (float32 engine vs float64 reference)
//   loss, KL, NLL: relative 1e-4; dA, dB: max|diff| / max|ref| <= 1e-3 (float32 backward
//   through every block accumulates more rounding than a forward)
#include "testutil.h"
#include "steerclear/adapter.h"
#include "steerclear/engine.h"
#include "steerclear/generate.h"
#include "steerclear/loss.h"
#include "steerclear/make_model.h"
#include "steerclear/npy.h"
#include "steerclear/rng.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#define TOL_LOGITS 1e-4
#define TOL_LOSS 1e-4
#define TOL_GRAD 1e-3

// HD 0: C / NH. Even case indices run the backward without checkpointing, odd ones with.
typedef struct {
    const char *name; int L, C, NH, KVH, I, V, tie; sc_dtype dt; sc_adapter_kind adapter;
    sc_arch arch; int HD, attention_bias;
} mcase;
static const mcase cases[] = {
    {"tied_kv2_bf16", 3, 64, 4, 2, 176, 2048, 1, SC_DTYPE_BF16, SC_ADAPTER_SHARED, SC_ARCH_QWEN2, 0, 0},
    {"untied_kv1_f32", 2, 64, 4, 4, 128, 2048, 0, SC_DTYPE_F32, SC_ADAPTER_PER_BLOCK, SC_ARCH_QWEN2, 0, 0},
    {"untied_kv7_odd_bf16", 5, 112, 7, 1, 160, 2048, 0, SC_DTYPE_BF16, SC_ADAPTER_SHARED, SC_ARCH_QWEN2, 0, 0},
    {"qwen3_tied_hd24_kv2_bf16", 2, 64, 4, 2, 128, 2048, 1, SC_DTYPE_BF16, SC_ADAPTER_PER_BLOCK, SC_ARCH_QWEN3, 24, 0},
    {"qwen3_untied_hd48_bias_f32", 2, 64, 2, 1, 96, 2048, 0, SC_DTYPE_F32, SC_ADAPTER_SHARED, SC_ARCH_QWEN3, 48, 1},
};
#define N_PROMPTS 3
static const int prompt_lens[N_PROMPTS] = {5, 17, 11};

static cJSON *ids_json(const int32_t *ids, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

static void write_json(const char *path, cJSON *j) {
    char *s = cJSON_Print(j);
    sc_test_write(path, s, strlen(s));
    free(s);
}

static int read_ref(const char *dir, const char *name, sc_npy_array *a) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s.npy", dir, name);
    sc_status st = sc_npy_read(p, a);
    if (st) { sc_test_fail(__FILE__, __LINE__, "reading %s: %s", p, sc_last_error()); return 0; }
    return 1;
}

static cJSON *read_ref_json(const char *dir, const char *name) {
    char p[4400], *s;
    snprintf(p, sizeof p, "%s/%s.json", dir, name);
    if (sc_read_file(p, &s, NULL)) { sc_test_fail(__FILE__, __LINE__, "%s", sc_last_error()); return NULL; }
    cJSON *j = cJSON_Parse(s);
    free(s);
    return j;
}

static void run_case(const mcase *mc, int case_index) {
    char dir[4200], req[4300], out[4300];
    snprintf(dir, sizeof dir, "%s/%s", sc_test_tmpdir(), mc->name);
    sc_make_model_opts mo = {0};
    mo.cfg.n_layers = mc->L; mo.cfg.hidden = mc->C; mo.cfg.n_heads = mc->NH; mo.cfg.n_kv_heads = mc->KVH;
    mo.cfg.intermediate = mc->I; mo.cfg.vocab = mc->V; mo.cfg.tie_embeddings = mc->tie;
    mo.cfg.arch = mc->arch; mo.cfg.head_dim = mc->HD; mo.cfg.attention_bias = mc->attention_bias;
    mo.cfg.rope_theta = 1e6f; mo.cfg.rms_eps = 1e-6f; mo.cfg.max_position = 4096;
    mo.cfg.bos_id = mo.cfg.eos_id = -1;
    mo.dtype = mc->dt;
    mo.seed = 100 + (uint64_t)case_index;
    CHECK_OK(sc_make_model(dir, &mo));
    sc_model *m = NULL;
    CHECK_OK(sc_model_load(dir, 0, -1, sc_test_backend(), &m));
    if (!m) return;
    CHECK(m->cfg.arch == mc->arch && (!mc->HD || m->cfg.head_dim == mc->HD));
    CHECK((m->blocks[0].q_norm != NULL) == (mc->arch == SC_ARCH_QWEN3));
    CHECK((m->blocks[0].q_bias != NULL) == (mc->arch == SC_ARCH_QWEN2 || mc->attention_bias));
    sc_backend *be = sc_test_backend();
    const int V = mc->V, C = mc->C;

    // prompts of different lengths, packed in one batch
    int32_t *prompts[N_PROMPTS];
    int seq_start[N_PROMPTS + 1] = {0};
    for (int p = 0; p < N_PROMPTS; p++) {
        prompts[p] = malloc(sizeof(int32_t) * (size_t)prompt_lens[p]);
        for (int i = 0; i < prompt_lens[p]; i++) {
            uint32_t r[4];
            sc_philox4x32(7, (uint64_t)p, (uint64_t)i, r);
            prompts[p][i] = (int32_t)(r[0] % (uint32_t)V);
        }
        seq_start[p + 1] = seq_start[p] + prompt_lens[p];
    }
    const int T = seq_start[N_PROMPTS];
    int32_t ids[64];
    for (int p = 0; p < N_PROMPTS; p++) memcpy(ids + seq_start[p], prompts[p], sizeof(int32_t) * (size_t)prompt_lens[p]);
    float *hidden = malloc(sizeof(float) * (size_t)T * C), *logits = malloc(sizeof(float) * (size_t)T * V);
    sc_batch batch = {.n_seq = N_PROMPTS, .seq_start = seq_start};
    CHECK_OK(sc_forward(m, be, &batch, ids, hidden, NULL, NULL, NULL));
    CHECK_OK(sc_head(m, be, hidden, NULL, T, NULL, logits));

    // greedy generation, all prompts in one batch
    sc_sample_opts so;
    sc_sample_opts_default(&so);
    so.greedy = 1;
    so.max_new_tokens = 32;
    sc_gen_out gen[N_PROMPTS];
    CHECK_OK(sc_generate(m, be, (const int32_t *const *)prompts, prompt_lens, N_PROMPTS, NULL, NULL, &so, NULL, gen));

    // the adapter and a batch of (prompt, continuation) for the loss
    sc_adapter *ad = NULL;
    CHECK_OK(sc_adapter_create(sc_test_backend(), mc->adapter, mc->L, C, 2, 2.0f, &ad));
    sc_rng_normal(11, 1, 0, ad->A, sc_adapter_numel_A(ad));
    sc_rng_normal(11, 2, 0, ad->B, sc_adapter_numel_B(ad));
    for (size_t i = 0; i < sc_adapter_numel_B(ad); i++) ad->B[i] *= 0.1f;
    snprintf(req, sizeof req, "%s/A.npy", dir);
    int64_t shA[3] = {ad->n_sets, C, 2}, shB[3] = {ad->n_sets, 2, C};
    int shared = mc->adapter == SC_ADAPTER_SHARED;
    CHECK_OK(sc_npy_write_f32(req, ad->A, shared ? 2 : 3, shared ? shA + 1 : shA));
    snprintf(req, sizeof req, "%s/B.npy", dir);
    CHECK_OK(sc_npy_write_f32(req, ad->B, shared ? 2 : 3, shared ? shB + 1 : shB));
    // continuations: the greedy outputs, truncated to different lengths
    const int gen_use[N_PROMPTS] = {6, 3, 9};
    int lseq[N_PROMPTS + 1] = {0}, rows[64], n_rows = 0;
    int32_t lids[128], targets[64];
    for (int p = 0; p < N_PROMPTS; p++) {
        int s0 = lseq[p];
        memcpy(lids + s0, prompts[p], sizeof(int32_t) * (size_t)prompt_lens[p]);
        memcpy(lids + s0 + prompt_lens[p], gen[p].ids, sizeof(int32_t) * (size_t)gen_use[p]);
        for (int j = 0; j < gen_use[p]; j++) { rows[n_rows] = s0 + prompt_lens[p] - 1 + j; targets[n_rows++] = gen[p].ids[j]; }
        lseq[p + 1] = s0 + prompt_lens[p] + gen_use[p];
    }
    const int LT = lseq[N_PROMPTS];
    sc_batch lb = {.n_seq = N_PROMPTS, .seq_start = lseq};
    float *hp = malloc(sizeof(float) * (size_t)LT * C), *hq = malloc(sizeof(float) * (size_t)LT * C), *dh = calloc((size_t)LT * C, sizeof(float));
    sc_hook hook = sc_adapter_hook(ad);
    sc_activations *acts = NULL;
    CHECK_OK(sc_activations_create(m, be, 0, 0, case_index % 2, &acts));   // without and with checkpointing
    CHECK_OK(sc_forward(m, be, &lb, lids, hp, NULL, NULL, NULL));
    CHECK_OK(sc_forward(m, be, &lb, lids, hq, NULL, &hook, acts));
    sc_loss_stats ls;
    CHECK_OK(sc_divergence_loss(m, be, hp, hq, rows, targets, n_rows, 1.1f, 0.3f, 4, dh, &ls));
    sc_adapter_zero_grad(ad);
    CHECK_OK(sc_backward(m, be, acts, &hook, dh));

    // the reference request
    cJSON *rq = cJSON_CreateObject();
    cJSON_AddStringToObject(rq, "model", dir);
    cJSON_AddStringToObject(rq, "dtype", "float64");
    cJSON *tasks = cJSON_AddArrayToObject(rq, "tasks");
    for (int p = 0; p < N_PROMPTS; p++) {
        char name[32];
        cJSON *t = cJSON_CreateObject();
        snprintf(name, sizeof name, "logits%d", p);
        cJSON_AddStringToObject(t, "op", "logits"); cJSON_AddStringToObject(t, "name", name);
        cJSON_AddItemToObject(t, "ids", ids_json(prompts[p], prompt_lens[p]));
        cJSON_AddItemToArray(tasks, t);
        t = cJSON_CreateObject();
        snprintf(name, sizeof name, "gen%d", p);
        cJSON_AddStringToObject(t, "op", "generate"); cJSON_AddStringToObject(t, "name", name);
        cJSON_AddItemToObject(t, "ids", ids_json(prompts[p], prompt_lens[p]));
        cJSON_AddNumberToObject(t, "n", 32);
        cJSON_AddItemToArray(tasks, t);
    }
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "op", "loss"); cJSON_AddStringToObject(t, "name", "loss");
    cJSON *bl = cJSON_AddArrayToObject(t, "batch");
    for (int p = 0; p < N_PROMPTS; p++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "prompt", ids_json(prompts[p], prompt_lens[p]));
        cJSON_AddItemToObject(e, "gen", ids_json(gen[p].ids, gen_use[p]));
        cJSON_AddItemToArray(bl, e);
    }
    cJSON *ja = cJSON_AddObjectToObject(t, "adapter");
    cJSON_AddStringToObject(ja, "kind", sc_adapter_kind_name(mc->adapter));
    cJSON_AddStringToObject(ja, "A", "A.npy"); cJSON_AddStringToObject(ja, "B", "B.npy");
    cJSON_AddNumberToObject(ja, "scaling", 2.0);
    cJSON_AddNumberToObject(t, "alpha", 1.1); cJSON_AddNumberToObject(t, "beta", 0.3);
    cJSON_AddStringToObject(t, "mode", "teacher-forced");
    cJSON_AddItemToArray(tasks, t);
    snprintf(req, sizeof req, "%s/request.json", dir);
    snprintf(out, sizeof out, "%s/ref", dir);
    write_json(req, rq);
    cJSON_Delete(rq);
    int rc = sc_test_run_ref(req, out);
    CHECKF(rc == 0, "%s: the PyTorch reference failed (exit %d)", mc->name, rc);
    if (rc == 0) {
        for (int p = 0; p < N_PROMPTS; p++) {
            char name[32];
            sc_npy_array ra;
            snprintf(name, sizeof name, "logits%d", p);
            if (read_ref(out, name, &ra)) {
                CHECKF(ra.dtype == SC_NPY_F64 && ra.count == (size_t)prompt_lens[p] * V, "%s: reference logits shape", mc->name);
                if (ra.count == (size_t)prompt_lens[p] * V) {
                    double e = sc_test_rel_err(logits + (size_t)seq_start[p] * V, ra.data, ra.count);
                    printf("%s prompt %d: logits rel. error %.2e (%.0f%% of tolerance)\n", mc->name, p, e, 100 * e / TOL_LOGITS);
                    CHECKF(e <= TOL_LOGITS, "%s prompt %d: logits rel. error %.3g > %g", mc->name, p, e, TOL_LOGITS);
                }
                sc_npy_free(&ra);
            }
            snprintf(name, sizeof name, "gen%d", p);
            cJSON *g = read_ref_json(out, name), *gi = g ? cJSON_GetObjectItem(g, "ids") : NULL;
            CHECKF(gi && cJSON_GetArraySize(gi) == gen[p].n, "%s prompt %d: greedy lengths differ", mc->name, p);
            int same = 1;
            for (int i = 0; gi && i < gen[p].n && i < cJSON_GetArraySize(gi); i++)
                if (cJSON_GetArrayItem(gi, i)->valueint != gen[p].ids[i]) same = 0;
            CHECKF(same, "%s prompt %d: greedy generation differs from the reference", mc->name, p);
            cJSON_Delete(g);
        }
        cJSON *lj = read_ref_json(out, "loss");
        if (lj) {
            double rl = cJSON_GetObjectItem(lj, "loss")->valuedouble, rk = cJSON_GetObjectItem(lj, "kl")->valuedouble;
            double rn = cJSON_GetObjectItem(lj, "nll")->valuedouble;
            printf("%s loss: ours %.8f ref %.8f (kl %.6f/%.6f nll %.6f/%.6f)\n", mc->name, ls.loss, rl, ls.kl, rk, ls.nll, rn);
            CHECK_NEAR(ls.loss, rl, TOL_LOSS * fabs(rl) + 1e-7);
            CHECK_NEAR(ls.kl, rk, TOL_LOSS * fabs(rk) + 1e-7);
            CHECK_NEAR(ls.nll, rn, TOL_LOSS * fabs(rn) + 1e-7);
            CHECK(ls.n_pos == cJSON_GetObjectItem(lj, "n_positions")->valueint);
            cJSON_Delete(lj);
        }
        sc_npy_array ga, gb;
        if (read_ref(out, "loss.dA", &ga)) {
            CHECK(ga.count == sc_adapter_numel_A(ad));
            double e = sc_test_rel_err(ad->dA, ga.data, ga.count);
            printf("%s dA rel. error %.2e\n", mc->name, e);
            CHECKF(e <= TOL_GRAD, "%s: dA rel. error %.3g > %g", mc->name, e, TOL_GRAD);
            sc_npy_free(&ga);
        }
        if (read_ref(out, "loss.dB", &gb)) {
            CHECK(gb.count == sc_adapter_numel_B(ad));
            double e = sc_test_rel_err(ad->dB, gb.data, gb.count);
            printf("%s dB rel. error %.2e\n", mc->name, e);
            CHECKF(e <= TOL_GRAD, "%s: dB rel. error %.3g > %g", mc->name, e, TOL_GRAD);
            sc_npy_free(&gb);
        }
    }
    for (int p = 0; p < N_PROMPTS; p++) { free(prompts[p]); free(gen[p].ids); }
    free(hidden); free(logits); free(hp); free(hq); free(dh);
    sc_activations_free(acts);
    sc_adapter_free(ad);
    sc_model_free(m);
}

int main(void) {
    if (!sc_test_have_torch()) { printf("test_parity: skipped (Debian's python3-torch is not installed)\n"); return 77; }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], (int)i);
    return sc_test_finish("test_parity");
}
