// test_dist.c — the parts of src/dist that need no MPI launcher: the "stages" config keys, the
// one-process layout and its refusals, and the packed search state ranks send to rank 0
// (bytes equal after a round trip; a flipped byte refused). The MPI runs: tests/mpi_layouts.sh.
#include "testutil.h"
#include "steerclear/dist.h"
#include "steerclear/study.h"
#include "steerclear/make_model.h"
#include "../src/dist/xfer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *write_config(const char *name, const char *extra) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", sc_test_tmpdir(), name);
    char text[1024];
    snprintf(text, sizeof text, "{\"model\": \"m\"%s%s}", extra[0] ? ", " : "", extra);
    sc_test_write(path, text, strlen(text));
    return path;
}

static void test_config_keys(void) {
    sc_study_config c;
    CHECK_OK(sc_study_config_load(write_config("none.json", ""), &c));
    CHECK(c.stages == 0);
    cJSON *j = sc_study_config_to_json(&c);
    CHECK(!cJSON_GetObjectItemCaseSensitive(j, "dist"));   // configs without the key resolve as before
    char *before = cJSON_Print(j);
    cJSON_Delete(j);
    CHECK_OK(sc_study_config_load(write_config("top.json", "\"stages\": 2"), &c));
    CHECK(c.stages == 2);
    CHECK_OK(sc_study_config_load(write_config("dist.json", "\"dist\": {\"stages\": 3}"), &c));
    CHECK(c.stages == 3);
    j = sc_study_config_to_json(&c);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "dist");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "stages")) && cJSON_GetObjectItemCaseSensitive(d, "stages")->valueint == 3);
    // the layout may change on resume: a changed "dist" makes no stage stale
    char diff[512];
    CHECK(sc_study_config_diff(before, j, diff, sizeof diff) == SC_STUDY_STAGES);
    CHECKF(strstr(diff, "dist.stages"), "diff: %s", diff);
    cJSON_Delete(j);
    free(before);
    CHECK_ERR(sc_study_config_load(write_config("both.json", "\"stages\": 1, \"dist\": {\"stages\": 1}"), &c), SC_ERR_ARG, "given twice");
    CHECK_ERR(sc_study_config_load(write_config("zero.json", "\"stages\": 0"), &c), SC_ERR_ARG, "\"stages\"", "whole number");
    CHECK_ERR(sc_study_config_load(write_config("half.json", "\"dist\": {\"stages\": 1.5}"), &c), SC_ERR_ARG, "dist.stages");
    CHECK_ERR(sc_study_config_load(write_config("typo.json", "\"dist\": {\"stage\": 1}"), &c), SC_ERR_ARG, "stage");
    CHECK_ERR(sc_study_config_load(write_config("str.json", "\"dist\": 2"), &c), SC_ERR_ARG, "\"dist\" must be an object");
    // GPipe micro-batches: dist.micro_batches, kept in the resolved config
    CHECK_OK(sc_study_config_load(write_config("micro.json", "\"dist\": {\"stages\": 2, \"micro_batches\": 4}"), &c));
    CHECK(c.stages == 2 && c.micro_batches == 4);
    j = sc_study_config_to_json(&c);
    d = cJSON_GetObjectItemCaseSensitive(j, "dist");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "micro_batches")) && cJSON_GetObjectItemCaseSensitive(d, "micro_batches")->valueint == 4);
    cJSON_Delete(j);
    CHECK_ERR(sc_study_config_load(write_config("micro0.json", "\"dist\": {\"micro_batches\": 0}"), &c), SC_ERR_ARG, "dist.micro_batches");
}

// The largest stage cost of the best contiguous split of L unit blocks into P non-empty stages
// with `head` added to the last one, by trying every split (the reference for sc_dist_plan).
static double best_split(int L, int P, double head, int from, int stage) {
    if (stage == P - 1) return (L - from) + head;
    double best = 1e300;
    for (int to = from + 1; to <= L - (P - 1 - stage); to++) {
        double rest = best_split(L, P, head, to, stage + 1), here = to - from;
        double c = here > rest ? here : rest;
        if (c < best) best = c;
    }
    return best;
}

static void test_plan(void) {
    static const char *presets[] = {"tiny", "qwen2.5-0.5b-shape", "qwen2.5-14b-shape"};
    for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
        sc_make_model_opts mo;
        CHECK_OK(sc_make_model_preset(presets[k], &mo));
        const int L = mo.cfg.n_layers;
        for (int P = 1; P <= 4 && P <= L; P++) {
            sc_dist d;
            memset(&d, 0, sizeof d);
            d.size = d.stages = P;
            d.groups = 1;
            CHECK_OK(sc_dist_plan(&d, &mo.cfg));
            // contiguous, every block once, none empty; the embedding on stage 0, the head on the last
            double worst = 0;
            for (int s = 0; s < P; s++) {
                int f, l;
                sc_dist_stage_blocks(&d, L, s, &f, &l);
                CHECKF(f == (s ? d.last[s - 1] : 0) && l > f, "%s P=%d stage %d: [%d,%d)", presets[k], P, s, f, l);
                double c = (l - f) + (s == P - 1 ? d.head_blocks : 0);
                if (c > worst) worst = c;
            }
            CHECK(d.last[P - 1] == L);
            // the head's cost: 4 V C per sampled token against 5 passes of a block's weights, half the rows sampled
            const sc_model_config *c = &mo.cfg;
            const double block = (double)c->hidden * (2.0 * c->n_heads * c->head_dim + 2.0 * c->n_kv_heads * c->head_dim) + 3.0 * c->hidden * c->intermediate;
            CHECK(P == 1 ? d.head_blocks == 0 : fabs(d.head_blocks - 0.4 * c->vocab * (double)c->hidden / block) < 1e-9 * d.head_blocks);
            // no split is better (every split tried; 14B with 4 stages: 16215 of them)
            if (L <= 48) CHECKF(fabs(worst - best_split(L, P, d.head_blocks, 0, 0)) < 1e-9, "%s P=%d: largest stage %.3f, best %.3f",
                                presets[k], P, worst, best_split(L, P, d.head_blocks, 0, 0));
            if (k == 0 && P == 2) CHECK(d.last[0] == 2);   // tiny: the head outweighs blocks, the last stage keeps one
            if (k == 2 && P == 4) CHECKF(d.last[2] == 37 && d.head_blocks > 1.1 && d.head_blocks < 1.2, "14B: %d %g", d.last[2], d.head_blocks);
            cJSON *j = sc_dist_layout_json(&d, L, 2);
            char *text = cJSON_PrintUnformatted(j);
            if (P > 1) CHECKF(strstr(text, "\"cost_model\"") && strstr(text, "\"head\":true"), "%s", text);
            free(text);
            cJSON_Delete(j);
            free(d.first); free(d.last);
        }
        sc_dist d;
        memset(&d, 0, sizeof d);
        d.size = d.stages = L + 1;
        d.groups = 1;
        CHECK_ERR(sc_dist_plan(&d, &mo.cfg), SC_ERR_ARG, "at least one", "--stages");
        free(d.first); free(d.last);
    }
}

static void test_one_process(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    CHECK(sc_dist_launched_size() == 1);
    sc_dist d;
    CHECK_OK(sc_dist_init(1, &d));
    CHECK(d.size == 1 && d.rank == 0 && d.groups == 1 && d.stages == 1 && d.group == 0 && d.stage == 0 && !d.mpi);
    CHECK(sc_dist_search_group(&d, 5) == 0);
    cJSON *j = sc_dist_layout_json(&d, 4, 3);
    char *text = cJSON_PrintUnformatted(j);
    CHECKF(strstr(text, "\"world_size\":1") && strstr(text, "\"blocks\":[0,4]") && strstr(text, "\"searches\":[[0,1,2]]"), "%s", text);
    free(text);
    cJSON_Delete(j);
    sc_dist_finalize(&d);
    // one process cannot be a pipeline of 2 stages
    CHECK_ERR(sc_dist_init(2, &d), SC_ERR_ARG, "multiple of", "--stages");
    sc_dist_finalize(&d);
    // started as one of 2 Slurm tasks that no MPI launcher wired up: refused, saying what to do
    setenv("SLURM_STEP_NUM_TASKS", "2", 1);
    CHECK(sc_dist_launched_size() == 2);
    if (sc_dist_built_with_mpi()) CHECK_ERR(sc_dist_init(1, &d), SC_ERR_ARG, "one of 2 tasks", "srun --mpi=pmix");
    else CHECK_ERR(sc_dist_init(1, &d), SC_ERR_ARG, "one of 2 tasks", "built without MPI");
    sc_dist_finalize(&d);
    unsetenv("SLURM_STEP_NUM_TASKS");
}

static void test_pack(void) {
    sc_backend *be = sc_test_backend();
    sc_search_config cfg;
    sc_search_config_default(&cfg);
    cfg.batch_size = 2;
    cfg.prompts_per_search = 4;
    cfg.max_new_tokens = 3;
    const int L = 3, C = 8;
    sc_search_state *s = NULL;
    CHECK_OK(sc_search_state_create(be, &cfg, 1, L, C, &s));
    if (!s) return;
    // one step's record, as a step would leave it
    sc_step_record *r = &s->steps[0];
    r->loss = 1.25; r->kl = -0.5; r->nll = 2.0; r->n_pos = 5;
    r->prompt_idx[0] = 7; r->prompt_idx[1] = 9; r->gen_len[0] = 3; r->gen_len[1] = 2;
    for (int i = 0; i < 5; i++) r->gen[i] = 100 + i;
    const size_t nA = sc_adapter_numel_A(s->adapter), nB = sc_adapter_numel_B(s->adapter);
    for (size_t i = 0; i < nA; i++) r->A[i] = (float)i * 0.25f;
    for (size_t i = 0; i < nB; i++) r->B[i] = -(float)i;
    s->steps_done = 1;
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(sc_search_state_pack(s, &a, &na));
    sc_search_state *t = NULL;
    CHECK_OK(sc_search_state_unpack(a, na, "a packed state", &cfg, be, L, C, &t));
    if (t) {
        CHECK(t->search == 1 && t->steps_done == 1 && t->steps[0].loss == 1.25 && t->steps[0].gen[4] == 104 && t->steps[0].B[1] == -1.0f);
        CHECK_OK(sc_search_state_pack(t, &b, &nb));
        CHECK(na == nb && b && memcmp(a, b, na) == 0);
    }
    // a corrupted message is refused, naming where it came from
    a[na - 1] ^= 0x40;
    sc_search_state *u = NULL;
    CHECK_ERR(sc_search_state_unpack(a, na, "a search result from rank 3", &cfg, be, L, C, &u), SC_ERR_FORMAT, "from rank 3", "checksum");
    // one made with another config too
    cfg.rank = 3;
    a[na - 1] ^= 0x40;
    CHECK_ERR(sc_search_state_unpack(a, na, "a search result from rank 3", &cfg, be, L, C, &u), SC_ERR_ARG, "rank");
    free(a); free(b);
    sc_search_state_free(t);
    sc_search_state_free(s);
}

// The transfer mode between pipeline stages (src/dist/xfer.h): host memory for the CPU backend
// whatever SC_CUDA_AWARE_MPI says; with backend memory that is not host memory (strict mode),
// staging unless SC_CUDA_AWARE_MPI=1 forces device pointers (a CPU backend never gets them by
// default: only CUDA's memory is what a CUDA-aware MPI takes); a bad value is refused.
static void test_xfer_mode(void) {
    char why[512];
    sc_xfer_mode m = SC_XFER_DEVICE;
    const char *old = getenv("SC_CUDA_AWARE_MPI");
    char *saved = old ? sc_strdup(old) : NULL;
    const char *old_strict = getenv("SC_CPU_STRICT");
    char *saved_strict = old_strict ? sc_strdup(old_strict) : NULL;
    unsetenv("SC_CPU_STRICT");
    sc_backend *cpu = sc_backend_cpu_new();
    setenv("SC_CPU_STRICT", "1", 1);
    sc_backend *strict = sc_backend_cpu_new();
    unsetenv("SC_CPU_STRICT");
    CHECK(cpu && strict && strict->separate_memory && !cpu->separate_memory);
    if (cpu && strict) {
        unsetenv("SC_CUDA_AWARE_MPI");
        CHECK_OK(sc_xfer_choose(cpu, &m, why, sizeof why));
        CHECK(m == SC_XFER_HOST && strstr(why, "host memory"));
        CHECK(!strcmp(sc_xfer_mode_name(m), "host memory"));
        CHECK_OK(sc_xfer_choose(strict, &m, why, sizeof why));
        CHECKF(m == SC_XFER_STAGED && strstr(why, "only a CUDA backend"), "strict: %s: %s", sc_xfer_mode_name(m), why);
        CHECK(!strcmp(sc_xfer_mode_name(m), "pinned host staging"));
        setenv("SC_CUDA_AWARE_MPI", "1", 1);
        CHECK_OK(sc_xfer_choose(strict, &m, why, sizeof why));
        CHECKF(m == SC_XFER_DEVICE && strstr(why, "SC_CUDA_AWARE_MPI=1"), "forced on: %s: %s", sc_xfer_mode_name(m), why);
        CHECK(!strcmp(sc_xfer_mode_name(m), "CUDA-aware MPI"));
        CHECK_OK(sc_xfer_choose(cpu, &m, why, sizeof why));
        CHECK(m == SC_XFER_HOST);   // host memory needs no device pointers
        setenv("SC_CUDA_AWARE_MPI", "0", 1);
        CHECK_OK(sc_xfer_choose(strict, &m, why, sizeof why));
        CHECK(m == SC_XFER_STAGED && strstr(why, "SC_CUDA_AWARE_MPI=0"));
        setenv("SC_CUDA_AWARE_MPI", "on", 1);
        CHECK_ERR(sc_xfer_choose(strict, &m, why, sizeof why), SC_ERR_ARG, "SC_CUDA_AWARE_MPI='on'", "use 0", "or 1");
    }
    if (saved) setenv("SC_CUDA_AWARE_MPI", saved, 1);
    else unsetenv("SC_CUDA_AWARE_MPI");
    if (saved_strict) setenv("SC_CPU_STRICT", saved_strict, 1);
    free(saved);
    free(saved_strict);
    sc_backend_free(cpu);
    sc_backend_free(strict);
}

int main(void) {
    test_xfer_mode();
    test_config_keys();
    test_one_process();
    test_plan();
    test_pack();
    return sc_test_finish("test_dist");
}
