// bench_engine.c — CPU engine throughput on a model directory, the counterpart of
// tests/ref/bench_torch.py (same workloads, same JSON keys where they overlap):
//   prefill  one --prompt-tokens prompt: sc_forward through a KV cache + sc_head on the last row
//   decode   batch 1 and batch 8: a --prompt-tokens prompt (timed apart), then --new-tokens - 1
//            greedy steps, one sc_forward + sc_head per step on the KV cache (only these timed)
//   step     one divergence optimizer step (sc_search_step): 12 prompts of 32 random ids,
//            --new-tokens sampled tokens each (stop tokens as in the search), shared adapter of
//            rank 2, a fresh adapter state per repetition (the first step, like the torch script),
//            after --step-warmup (1) untimed steps (workspace, oneDNN primitives, page cache)
// Each is the best of --reps. Prints one JSON object with "threads" (omp_get_max_threads()),
// "blas" (openblas_get_config()) and the peak resident memory (getrusage ru_maxrss).
// Leaves out: per-phase timing of the step (sc_search_step is timed as a whole), CUDA.
//
// usage: bench_engine --model DIR [--what prefill,decode,step] [--prompt-tokens 128]
//                     [--new-tokens 64] [--reps 3] [--seed 0] [--device cpu|cuda] [--precision auto|f32|bf16]
//                     [--step-warmup 1]
// "backend" and "precision" name what ran ("cpu (avx2, bf16)", "bf16"); "blas_core" is the
// OpenBLAS kernel set in use (openblas_get_corename: $OPENBLAS_CORETYPE or detected).
// The tokenizer (stop ids of the step) is DIR/tokenizer.json.
#include "steerclear/core.h"
#include "steerclear/engine.h"
#include "steerclear/rng.h"
#include "steerclear/search.h"
#include "steerclear/tok.h"

#include <cblas.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct {
    const sc_model *m;
    sc_backend *be;
    int prompt_tokens, new_tokens, reps, step_warmup;
    uint64_t seed;
} bench_ctx;

static double peak_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;   // ru_maxrss is in KiB on Linux
}

static void random_ids(int32_t *ids, int n, int V, uint64_t seed, uint64_t stream) {
    for (int i = 0; i < n; i++) {
        uint32_t w[4];
        sc_philox4x32(seed, stream, (uint64_t)i, w);
        ids[i] = (int32_t)(w[0] % (uint32_t)V);
    }
}

static void json_times(FILE *f, const double *t, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.6f", i ? ", " : "", t[i]);
    fputc(']', f);
}

static double min_of(const double *t, int n) {
    double b = t[0];
    for (int i = 1; i < n; i++)
        if (t[i] < b) b = t[i];
    return b;
}

// --- Prefill ----------------------------------------------------------------------------------

static sc_status bench_prefill(const bench_ctx *b, FILE *out) {
    const int P = b->prompt_tokens, C = b->m->cfg.hidden, V = b->m->cfg.vocab;
    sc_status st = SC_OK;
    sc_kv_cache *cache = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)P);
    float *hidden = NULL, *logits = NULL;   // backend memory (the GPU's with --device cuda)
    double *t = calloc((size_t)b->reps, sizeof(double));
    if ((st = sc_backend_alloc_floats(b->be, (size_t)P * C, "bench hidden", &hidden)) ||
        (st = sc_backend_alloc_floats(b->be, (size_t)V, "bench logits", &logits))) goto done;
    if (!ids || !t) { st = sc_errorf(SC_ERR_MEM, "out of memory for the prefill benchmark"); goto done; }
    random_ids(ids, P, V, b->seed, 1);
    if ((st = sc_kv_cache_create(b->m, b->be, 1, P, &cache))) goto done;
    int seq_start[2] = {0, 8}, last = 7;
    sc_batch warm = {.n_seq = 1, .seq_start = seq_start};
    if ((st = sc_forward(b->m, b->be, &warm, ids, hidden, cache, NULL, NULL))) goto done;   // warm-up
    if ((st = sc_head(b->m, b->be, hidden, &last, 1, NULL, logits))) goto done;
    seq_start[1] = P;
    last = P - 1;
    sc_batch batch = {.n_seq = 1, .seq_start = seq_start};
    for (int r = 0; r < b->reps; r++) {
        double t0 = sc_now_seconds();
        if ((st = sc_forward(b->m, b->be, &batch, ids, hidden, cache, NULL, NULL))) goto done;
        if ((st = sc_head(b->m, b->be, hidden, &last, 1, NULL, logits))) goto done;
        if ((st = b->be->op->sync(b->be))) goto done;
        t[r] = sc_now_seconds() - t0;
    }
    double best = min_of(t, b->reps);
    fprintf(out, " \"prefill\": {\"tokens\": %d, \"seconds\": %.6f, \"all_seconds\": ", P, best);
    json_times(out, t, b->reps);
    fprintf(out, ", \"tokens_per_s\": %.3f},\n \"peak_rss_mb_after_prefill\": %.1f,\n", P / best, peak_mb());
done:
    sc_kv_cache_free(cache);
    b->be->op->free(b->be, hidden); b->be->op->free(b->be, logits);
    free(ids); free(t);
    return st;
}

// --- Decode -----------------------------------------------------------------------------------

// One run: prefill B prompts, then new_tokens - 1 greedy steps; *pre and *dec get the seconds.
static sc_status decode_once(const bench_ctx *b, int B, const int32_t *prompts, sc_kv_cache *cache, float *hidden,
                             float *logits, double *pre, double *dec) {
    const int P = b->prompt_tokens, V = b->m->cfg.vocab;
    int seq_start[9], pos0[8], slot[8], rows[8];
    int32_t next[8];
    for (int s = 0; s <= B; s++) seq_start[s] = s * P;
    for (int s = 0; s < B; s++) { pos0[s] = 0; slot[s] = s; rows[s] = (s + 1) * P - 1; }
    sc_batch batch = {.n_seq = B, .seq_start = seq_start, .pos0 = pos0, .slot = slot};
    double t0 = sc_now_seconds();
    SC_TRY(sc_forward(b->m, b->be, &batch, prompts, hidden, cache, NULL, NULL));
    SC_TRY(sc_head(b->m, b->be, hidden, rows, B, NULL, logits));
    const sc_sampling greedy = {.greedy = 1, .temperature = 1, .top_p = 1};
    const float u[8] = {0};
    SC_TRY(b->be->op->sample(b->be, logits, B, V, &greedy, u, next));   // argmax; only ids come back from a GPU
    double t1 = sc_now_seconds();
    for (int s = 0; s <= B; s++) seq_start[s] = s;
    for (int i = 0; i < b->new_tokens - 1; i++) {
        for (int s = 0; s < B; s++) pos0[s] = P + i;
        SC_TRY(sc_forward(b->m, b->be, &batch, next, hidden, cache, NULL, NULL));
        SC_TRY(sc_head(b->m, b->be, hidden, NULL, B, NULL, logits));
        SC_TRY(b->be->op->sample(b->be, logits, B, V, &greedy, u, next));
    }
    *pre = t1 - t0;
    *dec = sc_now_seconds() - t1;
    return SC_OK;
}

static sc_status bench_decode(const bench_ctx *b, int B, FILE *out) {
    const int P = b->prompt_tokens, C = b->m->cfg.hidden, V = b->m->cfg.vocab, steps = b->new_tokens - 1;
    sc_status st = SC_OK;
    sc_kv_cache *cache = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * P);
    float *hidden = NULL, *logits = NULL;
    double *tp = calloc((size_t)b->reps, sizeof(double)), *td = calloc((size_t)b->reps, sizeof(double));
    if ((st = sc_backend_alloc_floats(b->be, (size_t)B * P * C, "bench hidden", &hidden)) ||
        (st = sc_backend_alloc_floats(b->be, (size_t)B * V, "bench logits", &logits))) goto done;
    if (!ids || !tp || !td) { st = sc_errorf(SC_ERR_MEM, "out of memory for the decode benchmark"); goto done; }
    for (int s = 0; s < B; s++) random_ids(ids + (size_t)s * P, P, V, b->seed, 100 + (uint64_t)(B * 16 + s));
    if ((st = sc_kv_cache_create(b->m, b->be, B, P + b->new_tokens, &cache))) goto done;
    {   // warm-up: 4 tokens of the first prompt
        int ws[2] = {0, 4}, wr = 3;
        sc_batch warm = {.n_seq = 1, .seq_start = ws};
        if ((st = sc_forward(b->m, b->be, &warm, ids, hidden, cache, NULL, NULL))) goto done;
        if ((st = sc_head(b->m, b->be, hidden, &wr, 1, NULL, logits))) goto done;
    }
    for (int r = 0; r < b->reps; r++)
        if ((st = decode_once(b, B, ids, cache, hidden, logits, &tp[r], &td[r]))) goto done;
    double pre = min_of(tp, b->reps), dec = min_of(td, b->reps);
    fprintf(out, "  \"batch%d\": {\"batch\": %d, \"prompt_tokens\": %d, \"new_tokens\": %d, \"prefill_seconds\": %.6f, "
                 "\"decode_seconds\": %.6f, \"all_decode_seconds\": ", B, B, P, b->new_tokens, pre, dec);
    json_times(out, td, b->reps);
    if (steps > 0)
        fprintf(out, ", \"decode_tokens_per_s\": %.3f, \"ms_per_step\": %.3f}", (double)B * steps / dec, 1000.0 * dec / steps);
    else
        fprintf(out, ", \"decode_tokens_per_s\": null, \"ms_per_step\": null}");
done:
    sc_kv_cache_free(cache);
    b->be->op->free(b->be, hidden); b->be->op->free(b->be, logits);
    free(ids); free(tp); free(td);
    return st;
}

// --- Search step ------------------------------------------------------------------------------

enum { STEP_BATCH = 12, STEP_PROMPT = 32 };

static sc_status bench_step(const bench_ctx *b, const sc_tokenizer *tok, FILE *out) {
    const int V = b->m->cfg.vocab;
    sc_search_config cfg;
    sc_search_config_default(&cfg);
    cfg.adapter = SC_ADAPTER_SHARED;
    cfg.rank = 2;
    cfg.batch_size = STEP_BATCH;
    cfg.prompts_per_search = STEP_BATCH;
    cfg.max_new_tokens = b->new_tokens;
    cfg.seed = b->seed;
    SC_TRY(sc_search_config_validate(&cfg));
    sc_search_run run = {.model = b->m, .be = b->be, .tok = tok, .cfg = &cfg};
    sc_search_work *work = NULL;
    SC_TRY(sc_search_work_create(&run, STEP_PROMPT, &work));
    int32_t ids[STEP_BATCH][STEP_PROMPT], idx[STEP_BATCH];
    const int32_t *prompts[STEP_BATCH];
    int len[STEP_BATCH];
    for (int i = 0; i < STEP_BATCH; i++) {
        random_ids(ids[i], STEP_PROMPT, V, b->seed, 1000 + (uint64_t)i);
        prompts[i] = ids[i]; len[i] = STEP_PROMPT; idx[i] = i;
    }
    double *t = calloc((size_t)b->reps, sizeof(double));
    if (!t) { sc_search_work_free(work); return sc_errorf(SC_ERR_MEM, "out of memory"); }
    sc_status st = SC_OK;
    sc_step_record rec = {0};
    int64_t gen_tokens = 0;
    for (int r = -b->step_warmup; r < b->reps && !st; r++) {   // r < 0: warm-up, not timed
        sc_search_state *s = NULL;   // a fresh adapter state per repetition: the first step
        if ((st = sc_search_state_create(b->be, &cfg, 0, b->m->cfg.n_layers, b->m->cfg.hidden, &s))) break;
        double t0 = sc_now_seconds();
        st = sc_search_step(&run, work, s, prompts, len, idx, STEP_BATCH);
        if (r >= 0) t[r] = sc_now_seconds() - t0;
        if (!st && r >= 0) {
            rec = s->steps[0];
            gen_tokens = 0;
            for (int i = 0; i < STEP_BATCH; i++) gen_tokens += rec.gen_len[i];
        }
        sc_search_state_free(s);
    }
    if (!st) {
        fprintf(out, " \"step\": {\"batch\": %d, \"prompt_tokens\": %d, \"new_tokens\": %d, \"adapter\": \"shared\", \"rank\": 2, "
                     "\"generated_tokens\": %lld, \"activation_checkpointing\": %d, \"total_seconds\": %.6f, \"all_seconds\": ",
                STEP_BATCH, STEP_PROMPT, b->new_tokens, (long long)gen_tokens, sc_search_work_checkpointing(work), min_of(t, b->reps));
        json_times(out, t, b->reps);
        fprintf(out, ", \"loss\": %.6g, \"kl\": %.6g, \"nll\": %.6g},\n \"peak_rss_mb_after_step\": %.1f,\n", rec.loss, rec.kl, rec.nll, peak_mb());
    }
    free(t);
    sc_search_work_free(work);
    return st;
}

// --- Main -------------------------------------------------------------------------------------

static const char *usage_text =
    "usage: bench_engine --model DIR [--what prefill,decode,step] [--prompt-tokens 128]\n"
    "                    [--new-tokens 64] [--reps 3] [--seed 0] [--device cpu|cuda] [--precision auto|f32|bf16] [--step-warmup 1]\n";

static int fail(const char *what) {
    fprintf(stderr, "bench_engine: %s%s\n", what, sc_last_error());
    return 1;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"what", required_argument, NULL, 'w'},
        {"prompt-tokens", required_argument, NULL, 'p'},
        {"new-tokens", required_argument, NULL, 'n'},
        {"reps", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"device", required_argument, NULL, 'd'},
        {"precision", required_argument, NULL, 'P'},
        {"step-warmup", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *what = "prefill,decode,step";
    bench_ctx b = {.prompt_tokens = 128, .new_tokens = 64, .reps = 3, .seed = 0, .step_warmup = 1};
    sc_device device = SC_DEVICE_CPU;
    const char *precision = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': dir = optarg; break;
        case 'w': what = optarg; break;
        case 'p': b.prompt_tokens = atoi(optarg); break;
        case 'n': b.new_tokens = atoi(optarg); break;
        case 'r': b.reps = atoi(optarg); break;
        case 's': b.seed = strtoull(optarg, NULL, 10); break;
        case 'd': if (sc_device_parse(optarg, "--device", &device)) return fail(""); break;
        case 'P': precision = optarg; break;
        case 'W': b.step_warmup = atoi(optarg) < 0 ? 0 : atoi(optarg); break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (!dir) { fprintf(stderr, "bench_engine: --model DIR is required\n%s", usage_text); return 2; }
    if (b.prompt_tokens < 1 || b.new_tokens < 1 || b.reps < 1) {
        fprintf(stderr, "bench_engine: --prompt-tokens, --new-tokens and --reps must be at least 1\n");
        return 2;
    }
    int do_prefill = 0, do_decode = 0, do_step = 0;
    char wbuf[256];
    snprintf(wbuf, sizeof wbuf, "%s", what);
    for (char *save = NULL, *w = strtok_r(wbuf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (!strcmp(w, "prefill")) do_prefill = 1;
        else if (!strcmp(w, "decode")) do_decode = 1;
        else if (!strcmp(w, "step")) do_step = 1;
        else { fprintf(stderr, "bench_engine: --what: unknown item '%s' (prefill, decode, step)\n", w); return 2; }
    }

    double t0 = sc_now_seconds();
    sc_backend *be = NULL;
    sc_backend_opts bo;
    sc_backend_opts_default(&bo);
    bo.device = device;
    bo.precision = precision;
    if (sc_backend_create(&bo, &be)) return fail("");
    sc_model *m = NULL;
    if (sc_model_load(dir, 0, -1, be, &m)) return fail("");
    double load = sc_now_seconds() - t0;
    sc_tokenizer *tok = NULL;
    if (do_step) {
        char tp[4200];
        snprintf(tp, sizeof tp, "%s/tokenizer.json", dir);
        if (sc_tok_load(tp, &tok)) { sc_model_free(m); return fail("the step needs DIR/tokenizer.json for its stop ids: "); }
    }
    b.m = m;
    b.be = be;

    // Everything goes to a memory stream first so a failure prints no half JSON.
    char *buf = NULL;
    size_t blen = 0;
    FILE *out = open_memstream(&buf, &blen);
    if (!out) { sc_model_free(m); sc_tok_free(tok); fprintf(stderr, "bench_engine: out of memory\n"); return 1; }
    const sc_model_config *k = &m->cfg;
    fprintf(out, "{\n \"model\": \"%s\", \"engine\": \"steerclear-%s\", \"backend\": \"%s\", \"precision\": \"%s\", \"threads\": %d, \"blas\": \"%s\", \"blas_core\": \"%s\",\n"
                 " \"load_seconds\": %.3f,\n \"config\": {\"L\": %d, \"C\": %d, \"NH\": %d, \"KVH\": %d, \"HD\": %d, \"I\": %d, \"V\": %d},\n"
                 " \"peak_rss_mb_after_load\": %.1f,\n",
            m->dir, sc_device_name(device), be->name, be->precision ? be->precision : "f32", omp_get_max_threads(), openblas_get_config(), openblas_get_corename(), load, k->n_layers, k->hidden, k->n_heads,
            k->n_kv_heads, k->head_dim, k->intermediate, k->vocab, peak_mb());
    sc_status st = SC_OK;
    if (do_prefill) st = bench_prefill(&b, out);
    if (!st && do_decode) {
        fprintf(out, " \"decode\": {\n");
        st = bench_decode(&b, 1, out);
        if (!st) { fprintf(out, ",\n"); st = bench_decode(&b, 8, out); }
        if (!st) fprintf(out, "\n },\n \"peak_rss_mb_after_decode\": %.1f,\n", peak_mb());
    }
    if (!st && do_step) st = bench_step(&b, tok, out);
    fprintf(out, " \"peak_rss_mb\": %.1f\n}\n", peak_mb());
    fclose(out);
    sc_tok_free(tok);
    sc_model_free(m);
    sc_backend_free(be);
    if (st) { free(buf); return fail(""); }
    fwrite(buf, 1, blen, stdout);
    free(buf);
    return 0;
}
