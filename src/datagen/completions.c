// completions.c — the dataset generator's baseline completions (see steerclear/datagen.h): the
// base model's continuation of each prompt, sampled with the evaluate stage's settings and seed
// rule (prompt i on RNG stream i), batched through the engine by evaluate's own batched
// generation (one variant: the unmodified model). Leaves out: the MPI pipeline layout (the
// engine runs the whole model in this process, as `generate` does) and resuming (the
// completions of a set are computed in one go; the openers are what the cache keeps).
#include "steerclear/datagen.h"
#include "steerclear/evaluate.h"
#include "steerclear/model.h"

#include <stdlib.h>
#include <string.h>

void sc_completion_opts_default(sc_completion_opts *o) {
    sc_evaluate_opts e;
    sc_evaluate_opts_default(&e);
    memset(o, 0, sizeof *o);
    o->max_new_tokens = e.max_new_tokens;
    o->temperature = e.temperature;
    o->top_k = e.top_k;
    o->top_p = e.top_p;
    o->seed = e.seed;
    o->batch_seqs = e.batch_seqs;
}

sc_status sc_datagen_completions(const sc_completion_opts *o, const char *const *full_prompts, int n, char **completions) {
    for (int i = 0; i < n; i++) completions[i] = NULL;
    if (n <= 0) return SC_OK;
    if (o->max_new_tokens < 1 || !(o->temperature > 0) || !(o->top_p > 0 && o->top_p <= 1) || o->top_k < 0 || o->batch_seqs < 1)
        return sc_errorf(SC_ERR_ARG, "completions: max_new_tokens %d, temperature %g, top_p %g, top_k %d, batch %d: need >= 1, > 0, (0, 1], >= 0, >= 1",
                         o->max_new_tokens, (double)o->temperature, (double)o->top_p, o->top_k, o->batch_seqs);
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", o->model_dir);
    sc_backend_opts bo;
    sc_backend_opts_default(&bo);
    if (o->memory_budget) bo.memory_budget = o->memory_budget;
    sc_backend *be = NULL;
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    sc_prompt *items = calloc((size_t)n, sizeof *items);
    int32_t **ids = calloc((size_t)n, sizeof *ids);
    int *len = calloc((size_t)n, sizeof *len);
    uint64_t *streams = calloc((size_t)n, sizeof *streams);
    sc_gen_out *gen = calloc((size_t)n, sizeof *gen);
    sc_status st = items && ids && len && streams && gen ? SC_OK : sc_errorf(SC_ERR_MEM, "completions: out of memory");
    if (!st) st = sc_backend_create(&bo, &be);
    if (!st) st = sc_model_load(o->model_dir, 0, -1, be, &m);
    if (!st) st = sc_tok_load(path, &tok);
    if (st) { sc_error_wrap(st, "completions: loading the model %s: ", o->model_dir); goto done; }
    for (int i = 0; i < n; i++) {
        items[i].full_prompt = (char *)full_prompts[i];
        items[i].line = i + 2;   // the CSV's line (after the header) when each prompt is one record
        streams[i] = (uint64_t)i;
    }
    sc_dataset ds = {items, (size_t)n};
    if ((st = sc_evaluate_encode(m, tok, &ds, "the test set", n, o->max_new_tokens, ids, len))) goto done;
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_make(&so, tok, stops, o->max_new_tokens, o->temperature, o->top_k, o->top_p, o->seed);
    const sc_eval_variant base = {.kind = SC_EVAL_BASE};
    sc_log(SC_LOG_INFO, "dataset: completions of %d prompts by %s, %d new tokens, batches of %d", n, o->model_dir, o->max_new_tokens, o->batch_seqs);
    if ((st = sc_evaluate_generate(m, be, &base, 1, (const int32_t *const *)ids, len, n, streams, &so, o->batch_seqs, gen))) goto done;
    for (int i = 0; i < n && !st; i++)
        if ((st = sc_tok_decode(tok, gen[i].ids, (size_t)gen[i].n, 1, &completions[i]))) sc_error_wrap(st, "completions: decoding prompt %d: ", i);
done:
    if (st) for (int i = 0; i < n; i++) { free(completions[i]); completions[i] = NULL; }
    if (ids) for (int i = 0; i < n; i++) free(ids[i]);
    if (gen) for (int i = 0; i < n; i++) free(gen[i].ids);
    free(items); free(ids); free(len); free(streams); free(gen);
    sc_tok_free(tok);
    sc_model_free(m);
    sc_backend_free(be);
    return st;
}
