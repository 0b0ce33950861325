// bench_lockstep.c — time of one optimizer step of N searches: all N in one batched pass
// (sc_search_pass, lock-step), with each search's teacher-forced pass on its own (micro-batches
// of 1 search, the default) and with all N teacher-forced in one batch, against the same N
// searches one after another (sc_search_step, searches_per_pass 1), for each N of --searches
// (1,4,20). Each search: --batch prompts (12) of
// --prompt-tokens random ids (32), --new-tokens sampled tokens (16) at temperature 1, shared
// adapter of rank 2, a fresh state per round (the first step). Rounds alternate which side goes
// first (rotating); per N and side the best and the median of --reps rounds are printed (JSON lines), after
// one untimed warm-up round per side. The model's DIR/tokenizer.json gives the stop ids.
//
// usage: bench_lockstep --model DIR [--searches 1,4,20] [--reps 3] [--batch 12]
//                       [--prompt-tokens 32] [--new-tokens 16] [--precision f32|bf16|auto] [--device cpu|cuda]
#include "steerclear/core.h"
#include "steerclear/rng.h"
#include "steerclear/search.h"
#include "steerclear/tok.h"

#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const sc_model *m;
    sc_backend *be;
    const sc_tokenizer *tok;
    int batch, prompt_tokens, new_tokens;
} ctx;

static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

// One round of one side: a step of each of n fresh searches, in one pass (together) or one
// after another; returns seconds and the sampled tokens.
static sc_status round_once(const ctx *c, const sc_search_run *run, sc_search_work *w, int n, int together, const int32_t *const *prompts,
                            const int *len, const int32_t *idx, double *secs, long *gen) {
    sc_search_state **s = calloc((size_t)n, sizeof *s);
    sc_search_item *items = calloc((size_t)n, sizeof *items);
    sc_status st = s && items ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
    for (int j = 0; j < n && !st; j++) {
        st = sc_search_state_create(c->be, run->cfg, j, c->m->cfg.n_layers, c->m->cfg.hidden, &s[j]);
        items[j] = (sc_search_item){.state = s[j], .prompts = prompts + (size_t)j * c->batch, .prompt_len = len + (size_t)j * c->batch,
                                    .prompt_idx = idx + (size_t)j * c->batch, .n = c->batch};
    }
    const double t0 = sc_now_seconds();
    if (!st && together) st = sc_search_pass(run, w, items, n);
    for (int j = 0; j < n && !st && !together; j++) st = sc_search_pass(run, w, &items[j], 1);
    *secs = sc_now_seconds() - t0;
    *gen = 0;
    for (int j = 0; j < n && !st; j++)
        for (int i = 0; i < c->batch; i++) *gen += s[j]->steps[0].gen_len[i];
    for (int j = 0; s && j < n; j++) sc_search_state_free(s[j]);
    free(s); free(items);
    return st;
}

static sc_status bench_n(const ctx *c, int n, int reps) {
    sc_search_config cfg;
    sc_search_config_default(&cfg);
    cfg.searches = n;
    cfg.batch_size = c->batch;
    cfg.prompts_per_search = c->batch;
    cfg.max_new_tokens = c->new_tokens;
    SC_TRY(sc_search_config_validate(&cfg));
    sc_search_run run = {.model = c->m, .be = c->be, .tok = c->tok, .cfg = &cfg};
    const int np = n * c->batch;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)np * c->prompt_tokens), *idx = malloc(sizeof(int32_t) * (size_t)np);
    const int32_t **prompts = malloc(sizeof(int32_t *) * (size_t)np);
    int *len = malloc(sizeof(int) * (size_t)np);
    double *t[3] = {calloc((size_t)reps, sizeof(double)), calloc((size_t)reps, sizeof(double)), calloc((size_t)reps, sizeof(double))};
    sc_search_work *w[3] = {NULL, NULL, NULL};   // [0] one after another, [1] one pass (micro-batches of 1), [2] one pass, one micro-batch
    sc_status st = ids && idx && prompts && len && t[0] && t[1] && t[2] ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
    for (int p = 0; p < np && !st; p++) {   // search j's prompts: the same random ids for every search
        const int i = p % c->batch;
        for (int k = 0; k < c->prompt_tokens; k++) {
            uint32_t r[4];
            sc_philox4x32(5, (uint64_t)i, (uint64_t)k, r);
            ids[(size_t)p * c->prompt_tokens + k] = (int32_t)(r[0] % 20000u);
        }
        prompts[p] = ids + (size_t)p * c->prompt_tokens;
        len[p] = c->prompt_tokens;
        idx[p] = i;
    }
    if (!st) st = sc_search_work_create(&run, c->prompt_tokens, &w[0]);
    if (!st) st = sc_search_work_create_pass(&run, c->prompt_tokens, n, 1, &w[1]);
    if (!st) st = sc_search_work_create_pass(&run, c->prompt_tokens, n, n, &w[2]);
    long gen[3] = {0, 0, 0};
    for (int r = -1; r < reps && !st; r++)   // r = -1: warm-up
        for (int k = 0; k < 3 && !st; k++) {
            const int side = (k + (r + 3)) % 3;   // rotate which side goes first
            double secs = 0;
            st = round_once(c, &run, w[side], n, side > 0, prompts, len, idx, &secs, &gen[side]);
            if (r >= 0) t[side][r] = secs;
        }
    if (!st) {
        double best[3], med[3];
        for (int side = 0; side < 3; side++) {
            qsort(t[side], (size_t)reps, sizeof(double), cmp_d);
            best[side] = t[side][0];
            med[side] = reps % 2 ? t[side][reps / 2] : 0.5 * (t[side][reps / 2 - 1] + t[side][reps / 2]);
        }
        printf("{\"searches\": %d, \"batch\": %d, \"prompt_tokens\": %d, \"new_tokens\": %d, \"reps\": %d, "
               "\"one_after_another_s\": {\"min\": %.3f, \"median\": %.3f}, \"one_pass_s\": {\"min\": %.3f, \"median\": %.3f}, "
               "\"one_pass_one_micro_batch_s\": {\"min\": %.3f, \"median\": %.3f}, \"speedup_min\": [%.2f, %.2f], "
               "\"speedup_median\": [%.2f, %.2f], \"sampled_tokens\": [%ld, %ld, %ld]}\n",
               n, c->batch, c->prompt_tokens, c->new_tokens, reps, best[0], med[0], best[1], med[1], best[2], med[2], best[0] / best[1],
               best[0] / best[2], med[0] / med[1], med[0] / med[2], gen[0], gen[1], gen[2]);
        fflush(stdout);
    }
    sc_search_work_free(w[0]); sc_search_work_free(w[1]); sc_search_work_free(w[2]);
    free(ids); free(idx); free(prompts); free(len); free(t[0]); free(t[1]); free(t[2]);
    return st;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"searches", required_argument, NULL, 'S'}, {"reps", required_argument, NULL, 'r'},
        {"batch", required_argument, NULL, 'b'}, {"prompt-tokens", required_argument, NULL, 'p'}, {"new-tokens", required_argument, NULL, 'n'},
        {"precision", required_argument, NULL, 'P'}, {"device", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    sc_device device = SC_DEVICE_CPU;
    const char *dir = NULL, *list = "1,4,20", *precision = NULL;
    int reps = 3;
    ctx c = {.batch = 12, .prompt_tokens = 32, .new_tokens = 16};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'm': dir = optarg; break;
        case 'S': list = optarg; break;
        case 'r': reps = atoi(optarg); break;
        case 'b': c.batch = atoi(optarg); break;
        case 'p': c.prompt_tokens = atoi(optarg); break;
        case 'n': c.new_tokens = atoi(optarg); break;
        case 'P': precision = optarg; break;
        case 'd': if (sc_device_parse(optarg, "--device", &device)) { fprintf(stderr, "bench_lockstep: %s\n", sc_last_error()); return 2; } break;
        case 'h': printf("usage: bench_lockstep --model DIR [--searches 1,4,20] [--reps 3] [--batch 12] [--prompt-tokens 32] [--new-tokens 16] [--precision P] [--device cpu|cuda]\n"); return 0;
        default: return 2;
        }
    }
    if (!dir || reps < 1 || c.batch < 1 || c.prompt_tokens < 1 || c.new_tokens < 1) {
        fprintf(stderr, "bench_lockstep: --model DIR is required; --reps, --batch, --prompt-tokens, --new-tokens must be at least 1\n");
        return 2;
    }
    sc_backend_opts bo;
    sc_backend_opts_default(&bo);
    bo.precision = precision;
    bo.device = device;
    sc_backend *be = NULL;
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    char tp[4200];
    snprintf(tp, sizeof tp, "%s/tokenizer.json", dir);
    if (sc_backend_create(&bo, &be) || sc_model_load(dir, 0, -1, be, &m) || sc_tok_load(tp, &tok)) {
        fprintf(stderr, "bench_lockstep: %s\n", sc_last_error());
        return 1;
    }
    c.m = m; c.be = be; c.tok = tok;
    fprintf(stderr, "bench_lockstep: %s backend, %d threads, L %d C %d V %d\n", be->name, omp_get_max_threads(), m->cfg.n_layers, m->cfg.hidden, m->cfg.vocab);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    int rc = 0;
    for (char *save = NULL, *s = strtok_r(buf, ",", &save); s && !rc; s = strtok_r(NULL, ",", &save))
        if (bench_n(&c, atoi(s) > 0 ? atoi(s) : 1, reps)) { fprintf(stderr, "bench_lockstep: %s\n", sc_last_error()); rc = 1; }
    sc_tok_free(tok);
    sc_model_free(m);
    sc_backend_free(be);
    return rc;
}
