// gpu_bench.c — engine throughput on one device, for the GPU check (no tokenizer, no libraries
// beyond the engine): prints one JSON object with
//   prefill   one --prompt-tokens sequence through a KV cache, the last row's logits
//   decode    --batch sequences of --prompt-tokens, then --new-tokens greedy steps (only these timed)
//   train     one divergence training pass of --train-seqs sequences of --prompt-tokens: base
//             model forward, adapted model forward (shared rank-2 adapter, activations saved),
//             the chunked divergence loss over every row, backward to the adapter, one AdamW step
//   step      one optimizer step of this project's search, as the trainer runs it (the like-for-like
//             figure against the study's method, benchmarks/gpu/study_torch.py): --step-prompts (12)
//             random prompts of --step-prompt-tokens (70), prefilled into a KV cache, then
//             --step-new-tokens (128) tokens sampled from Q (the adapter as the decode hook,
//             temperature 1, no stop token: the worst case); the teacher-forced P forward and Q
//             forward + backward over prompt + sampled tokens, the loss over the sampled positions,
//             AdamW. "search_seconds" = --steps-per-search (16: 192 prompts / 12) x the step
//             (arithmetic on the measured step; --step-prompts 0 leaves the step out)
//   step_lockstep  the same with --step-searches (20, the study's searches; 1 = left out)
//             searches in lock-step as the trainer runs a rank's searches: their sequences
//             sampled together, one search's teacher-forced pass timed; a search's step is
//             sampling / searches + teacher-forced ("search_step_seconds")
// Each is the best of --reps, timed after the device finishes (op->sync / downloads). Model
// FLOPs of the train pass: 2 x (weights of the blocks) x tokens x 3 (two forwards, one backward
// to the activations: no weight gradients) + 2 x V x C x tokens x 3 (two heads, one head
// backward); attention's own FLOPs are left out, so the figure is a lower bound.
//   gpu_bench --model DIR [--device cuda] [--prompt-tokens 512] [--new-tokens 64] [--batch 8]
//             [--train-seqs 8] [--reps 3] [--step-prompts 12] [--step-prompt-tokens 70]
//             [--step-new-tokens 128] [--steps-per-search 16] [--step-searches 20]
#include "steerclear/adapter.h"
#include "steerclear/engine.h"
#include "steerclear/loss.h"
#include "steerclear/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double best_of(const double *t, int n) {
    double b = t[0];
    for (int i = 1; i < n; i++) if (t[i] < b) b = t[i];
    return b;
}

static void random_ids(int32_t *ids, int n, int V, uint64_t stream) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(sc_rng_uniform(11, stream, (uint64_t)i) * (float)(V - 1));
}

// One search step: SB prompts of SP random ids prefilled into a KV cache, SN tokens sampled
// from Q (temperature 1), the teacher-forced pass over the SB sequences of SP + SN tokens, the
// loss over the SN sampled positions of each, the adapter's backward, AdamW. With K > 1 searches
// in lock-step (the trainer's pass: their K x SB sequences sampled together, each search's
// teacher-forced pass apart) the sampling is of K x SB sequences (one adapter on every row: the
// arithmetic of K adapters) and one search's teacher-forced pass is timed: a search's share of
// the step is sampling / K + teacher-forced. Prints "NAME": {...}.
static sc_status bench_step(const sc_model *m, sc_backend *be, sc_adapter *ad, float *mom, size_t nA, int SB, int SP, int SN,
                            int SPS, int K, int reps, const char *name) {
    const int C = m->cfg.hidden, V = m->cfg.vocab, L1 = SP + SN, G = K * SB, T = SB * L1, R = SB * SN;
    sc_kv_cache *cache = NULL;
    sc_activations *act = NULL;
    float *hp = NULL, *hs = NULL, *logits = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)G * L1), *tg = malloc(sizeof(int32_t) * (size_t)R), *next = malloc(sizeof(int32_t) * (size_t)G);
    int *seq = malloc(sizeof(int) * (size_t)(G + 1)), *pos0 = malloc(sizeof(int) * (size_t)G), *slot = malloc(sizeof(int) * (size_t)G);
    int *rows = malloc(sizeof(int) * (size_t)(R > G ? R : G));
    float *u = malloc(sizeof(float) * (size_t)G);
    int32_t *pr = malloc(sizeof(int32_t) * (size_t)G * SP);   // the prompts, packed
    double best = 0, best_s = 0;
    sc_status st = ids && tg && next && seq && pos0 && slot && rows && u && pr ? SC_OK : sc_errorf(SC_ERR_MEM, "gpu_bench: out of host memory for the step");
    if (!st) st = sc_kv_cache_create(m, be, G, L1, &cache);
    if (!st) st = sc_activations_create(m, be, T, SB, 0, &act);
    if (!st) st = sc_backend_alloc_floats(be, 3 * (size_t)T * C, "step hidden states", &hp);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)G * SP * C, "step sampling hidden states", &hs);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)G * V, "step logits", &logits);
    float *hq = hp ? hp + (size_t)T * C : NULL, *dh = hp ? hp + 2 * (size_t)T * C : NULL;
    const sc_sampling temp1 = {.greedy = 0, .temperature = 1.0f, .top_k = 0, .top_p = 1.0f};
    const sc_hook hook = sc_adapter_hook(ad);
    const sc_adamw_opts o = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    sc_loss_stats ls = {0};
    for (int r = 0; r <= reps && !st; r++) {   // r = 0: warm-up
        for (int s = 0; s < G; s++) random_ids(ids + (size_t)s * L1, SP, V, 100 + (uint64_t)s);
        const double a = sc_now_seconds();
        // sampling: the prompts (packed) through the cache, then one token per sequence per step
        for (int s = 0; s <= G; s++) seq[s] = s * SP;
        for (int s = 0; s < G; s++) { pos0[s] = 0; slot[s] = s; rows[s] = (s + 1) * SP - 1; }
        sc_batch batch = {.n_seq = G, .seq_start = seq, .pos0 = pos0, .slot = slot};
        for (int s = 0; s < G; s++) memcpy(pr + (size_t)s * SP, ids + (size_t)s * L1, sizeof(int32_t) * (size_t)SP);
        st = sc_forward(m, be, &batch, pr, hs, cache, &hook, NULL);
        if (!st) st = sc_head(m, be, hs, rows, G, NULL, logits);
        for (int s = 0; s <= G; s++) seq[s] = s;
        for (int i = 0; i < SN && !st; i++) {
            for (int s = 0; s < G; s++) u[s] = sc_rng_uniform(13, (uint64_t)s, (uint64_t)(r * SN + i));
            st = be->op->sample(be, logits, G, V, &temp1, u, next);
            for (int s = 0; s < G && !st; s++) ids[(size_t)s * L1 + SP + i] = next[s];
            if (st || i == SN - 1) break;
            for (int s = 0; s < G; s++) pos0[s] = SP + i;
            st = sc_forward_step(m, be, &batch, next, hs, cache, &hook);
            if (!st) st = sc_head(m, be, hs, NULL, G, NULL, logits);
        }
        const double b = sc_now_seconds();
        // teacher-forced P and Q over prompt + sampled tokens of the first search; the loss over
        // the sampled positions
        for (int s = 0; s <= SB; s++) seq[s] = s * L1;
        for (int s = 0, n = 0; s < SB; s++)
            for (int q = 0; q < SN; q++, n++) { rows[n] = s * L1 + SP - 1 + q; tg[n] = ids[(size_t)s * L1 + SP + q]; }
        const sc_batch tf = {.n_seq = SB, .seq_start = seq};
        if (!st) st = sc_forward(m, be, &tf, ids, hp, NULL, NULL, NULL);
        if (!st) st = sc_forward(m, be, &tf, ids, hq, NULL, &hook, act);
        if (!st) st = be->op->memset(be, dh, 0, sizeof(float) * (size_t)T * C);
        if (!st) st = sc_divergence_loss(m, be, hp, hq, rows, tg, R, 1.1f, 0.3f, 32, dh, &ls);
        if (!st) st = sc_adapter_zero_grad(ad);
        if (!st) st = sc_backward(m, be, act, &hook, dh);
        if (!st) st = be->op->adamw(be, ad->A, ad->dA, mom, mom + nA, nA, &o, r + 1);
        if (!st) st = be->op->sync(be);
        const double dt = sc_now_seconds() - a;
        if (r == 1 || (r > 1 && dt < best)) { best = dt; best_s = b - a; }
    }
    if (!st) {
        const double share = best_s / K + (best - best_s);   // one search's share of the step
        printf(" \"%s\": {\"prompts\": %d, \"prompt_tokens\": %d, \"new_tokens\": %d, \"searches_sampled_together\": %d, \"seconds\": %.6f, "
               "\"sampling_seconds\": %.6f, \"teacher_forced_seconds\": %.6f, \"search_step_seconds\": %.6f, \"loss\": %.6f, "
               "\"steps_per_search\": %d, \"search_seconds\": %.3f},\n",
               name, SB, SP, SN, K, best, best_s, best - best_s, share, ls.loss, SPS, share * SPS);
    }
    be->op->free(be, hp);
    be->op->free(be, hs);
    be->op->free(be, logits);
    sc_activations_free(act);
    sc_kv_cache_free(cache);
    free(ids); free(tg); free(next); free(seq); free(pos0); free(slot); free(rows); free(u); free(pr);
    return st;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *device = "cuda";
    int P = 512, NT = 64, B = 8, TS = 8, reps = 3, SB = 12, SP = 70, SN = 128, SPS = 16, SK = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!strcmp(argv[i], "--prompt-tokens")) P = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--new-tokens")) NT = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--train-seqs")) TS = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--step-prompts")) SB = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--step-prompt-tokens")) SP = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--step-new-tokens")) SN = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps-per-search")) SPS = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--step-searches")) SK = atoi(argv[i + 1]);
        else { fprintf(stderr, "gpu_bench: unknown option %s\n", argv[i]); return 2; }
    }
    if (!dir || P < 1 || NT < 2 || B < 1 || B > 64 || TS < 1 || reps < 1 || reps > 20 || SB < 0 || SB > 64 || SP < 1 || SN < 1 || SPS < 1 || SK < 1 || SK > 64) {
        fprintf(stderr, "usage: gpu_bench --model DIR [--device cuda] [--prompt-tokens N] [--new-tokens N>=2] [--batch N<=64] [--train-seqs N] [--reps N<=20]\n"
                        "                 [--step-prompts N<=64, 0 = no step] [--step-prompt-tokens N] [--step-new-tokens N] [--steps-per-search N] [--step-searches N<=64]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);   // line-buffered: a run killed by a time limit keeps its finished sections
    sc_backend_opts bo;
    sc_backend_opts_default(&bo);
    sc_backend *be = NULL;
    sc_model *m = NULL;
    if (sc_device_parse(device, "--device", &bo.device) || sc_backend_create(&bo, &be)) { fprintf(stderr, "gpu_bench: %s\n", sc_last_error()); return 1; }
    double t0 = sc_now_seconds();
    if (sc_model_load(dir, 0, -1, be, &m)) { fprintf(stderr, "gpu_bench: %s\n", sc_last_error()); return 1; }
    const double load = sc_now_seconds() - t0;
    const sc_model_config *k = &m->cfg;
    const int C = k->hidden, V = k->vocab, L = k->n_layers;
    const double block_params = (double)L * ((double)C * k->n_heads * k->head_dim * 2 + (double)C * k->n_kv_heads * k->head_dim * 2 + 3.0 * C * k->intermediate);
    int maxT = P * (B > TS ? B : TS);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)maxT);
    double t[20];
    float *hidden = NULL, *h2 = NULL, *dh = NULL, *logits = NULL;
    sc_kv_cache *cache = NULL;
    sc_status st = ids ? SC_OK : SC_ERR_MEM;
    if (!st) st = sc_backend_alloc_floats(be, (size_t)maxT * C, "hidden", &hidden);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)maxT * C, "hidden Q", &h2);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)maxT * C, "dhidden", &dh);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)B * V, "logits", &logits);
    printf("{\n \"model\": \"%s\", \"device\": \"%s\", \"backend\": \"%s\", \"load_seconds\": %.3f,\n"
           " \"config\": {\"L\": %d, \"C\": %d, \"NH\": %d, \"KVH\": %d, \"HD\": %d, \"I\": %d, \"V\": %d},\n",
           dir, device, be->name, load, L, C, k->n_heads, k->n_kv_heads, k->head_dim, k->intermediate, V);
    // prefill
    if (!st) st = sc_kv_cache_create(m, be, B, P + NT, &cache);
    if (!st) {
        random_ids(ids, P, V, 1);
        int seq[2] = {0, P}, last = P - 1;
        const sc_batch batch = {.n_seq = 1, .seq_start = seq};
        for (int r = 0; r <= reps && !st; r++) {   // r = 0: warm-up
            double a = sc_now_seconds();
            st = sc_forward(m, be, &batch, ids, hidden, cache, NULL, NULL);
            if (!st) st = sc_head(m, be, hidden, &last, 1, NULL, logits);
            if (!st) st = be->op->sync(be);
            if (r) t[r - 1] = sc_now_seconds() - a;
        }
        if (!st) printf(" \"prefill\": {\"tokens\": %d, \"seconds\": %.6f, \"tokens_per_s\": %.1f},\n", P, best_of(t, reps), P / best_of(t, reps));
    }
    // decode
    if (!st) {
        int seq[65], pos0[64], slot[64], rows[64];
        int32_t next[64];
        float u[64] = {0};
        const sc_sampling greedy = {.greedy = 1, .temperature = 1, .top_p = 1};
        random_ids(ids, B * P, V, 2);
        sc_batch batch = {.n_seq = B, .seq_start = seq, .pos0 = pos0, .slot = slot};
        for (int r = 0; r <= reps && !st; r++) {
            for (int s = 0; s <= B; s++) seq[s] = s * P;
            for (int s = 0; s < B; s++) { pos0[s] = 0; slot[s] = s; rows[s] = (s + 1) * P - 1; }
            st = sc_forward(m, be, &batch, ids, hidden, cache, NULL, NULL);
            if (!st) st = sc_head(m, be, hidden, rows, B, NULL, logits);
            if (!st) st = be->op->sample(be, logits, B, V, &greedy, u, next);
            for (int s = 0; s <= B; s++) seq[s] = s;
            double a = sc_now_seconds();
            for (int i = 0; i < NT - 1 && !st; i++) {
                for (int s = 0; s < B; s++) pos0[s] = P + i;
                st = sc_forward_step(m, be, &batch, next, hidden, cache, NULL);   // CUDA graphs with SC_CUDA_GRAPHS=1
                if (!st) st = sc_head(m, be, hidden, NULL, B, NULL, logits);
                if (!st) st = be->op->sample(be, logits, B, V, &greedy, u, next);
            }
            if (r) t[r - 1] = sc_now_seconds() - a;
        }
        if (!st) {
            const double d = best_of(t, reps);
            const double bytes = 2.0 * (block_params + (double)V * C);   // BF16 weights read per step
            printf(" \"decode\": {\"batch\": %d, \"context\": %d, \"steps\": %d, \"seconds\": %.6f, \"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, "
                   "\"weight_GB_per_s\": %.1f, \"graphs\": %llu},\n", B, P, NT - 1, d, (double)B * (NT - 1) / d, 1000.0 * d / (NT - 1),
                   bytes * (NT - 1) / d / 1e9, (unsigned long long)be->stats.n_graphs);
        }
    }
    // train pass
    sc_adapter *ad = NULL;
    sc_activations *act = NULL;
    float *mom = NULL;
    if (!st) st = sc_adapter_create(be, SC_ADAPTER_SHARED, L, C, 2, 2.0f, &ad);
    if (!st) st = sc_adapter_init(ad, 3);
    const int T = TS * P;
    if (!st) st = sc_activations_create(m, be, T, TS, 0, &act);
    const size_t nA = ad ? sc_adapter_numel_A(ad) + sc_adapter_numel_B(ad) : 0;
    if (!st) st = sc_backend_alloc_floats(be, 2 * nA, "moments", &mom);
    if (!st) st = be->op->memset(be, mom, 0, sizeof(float) * 2 * nA);
    if (!st) {
        int *seq = malloc(sizeof(int) * (size_t)(TS + 1)), *rows = malloc(sizeof(int) * (size_t)T);
        int32_t *tg = malloc(sizeof(int32_t) * (size_t)T);
        if (!seq || !rows || !tg) st = SC_ERR_MEM;
        for (int s = 0; !st && s <= TS; s++) seq[s] = s * P;
        for (int i = 0; !st && i < T; i++) { rows[i] = i; tg[i] = (int32_t)((i * 7919) % V); }
        random_ids(ids, T, V, 3);
        const sc_batch batch = {.n_seq = TS, .seq_start = seq};
        const sc_hook hook = sc_adapter_hook(ad);
        const sc_adamw_opts o = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
        sc_loss_stats ls = {0};
        for (int r = 0; r <= reps && !st; r++) {
            double a = sc_now_seconds();
            st = sc_forward(m, be, &batch, ids, hidden, NULL, NULL, NULL);
            if (!st) st = sc_forward(m, be, &batch, ids, h2, NULL, &hook, act);
            if (!st) st = be->op->memset(be, dh, 0, sizeof(float) * (size_t)T * C);
            if (!st) st = sc_divergence_loss(m, be, hidden, h2, rows, tg, T, 1.0f, 0.3f, 256, dh, &ls);
            if (!st) st = sc_adapter_zero_grad(ad);
            if (!st) st = sc_backward(m, be, act, &hook, dh);
            if (!st) st = be->op->adamw(be, ad->A, ad->dA, mom, mom + nA, nA, &o, r + 1);   // A and B are one allocation
            if (!st) st = be->op->sync(be);
            if (r) t[r - 1] = sc_now_seconds() - a;
        }
        if (!st) {
            const double s = best_of(t, reps);
            const double flops = 6.0 * block_params * T + 6.0 * (double)V * C * T;
            printf(" \"train\": {\"sequences\": %d, \"tokens\": %d, \"seconds\": %.6f, \"tokens_per_s\": %.1f, \"model_TFLOP_per_s\": %.2f, \"loss\": %.6f},\n",
                   TS, T, s, T / s, flops / s / 1e12, ls.loss);
        }
        free(seq); free(rows); free(tg);
    }
    // one optimizer step of the search (the trainer's method, on the engine's pieces)
    if (!st && SB > 0) st = bench_step(m, be, ad, mom, nA, SB, SP, SN, SPS, 1, reps, "step");
    if (!st && SB > 0 && SK > 1) st = bench_step(m, be, ad, mom, nA, SB, SP, SN, SPS, SK, reps, "step_lockstep");
    printf(" \"ok\": %s, \"error\": \"%s\",\n \"peak_backend_MiB\": %.1f\n}\n", st ? "false" : "true", st ? sc_last_error() : "",
           be->stats.bytes_peak / 1048576.0);
    be->op->free(be, mom);
    sc_activations_free(act);
    sc_adapter_free(ad);
    sc_kv_cache_free(cache);
    be->op->free(be, hidden); be->op->free(be, h2); be->op->free(be, dh); be->op->free(be, logits);
    free(ids);
    sc_model_free(m);
    sc_backend_free(be);
    return st ? 1 : 0;
}
