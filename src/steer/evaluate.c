// evaluate.c — the evaluation stage: a hook that applies a different variant (nothing, an
// adapter, a scaled direction) to each sequence of a batch by its tag, batched generation of
// every (variant, prompt) pair, and one JSON file per variant (see steerclear/evaluate.h).
// Leaves out: judging, scale sweeps, resuming a half-finished evaluation (files are
// rewritten whole; a crash leaves the previous ones intact).
#include "steerclear/monitor.h"
#include "steerclear/evaluate.h"
#include "steerclear/steer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

// --- Multi-variant hook -----------------------------------------------------------------------

struct sc_eval_hook {
    const sc_eval_variant *v;
    int n;
    sc_steer steer;              // the direction variants, in variant order
    sc_steer_variant *sv;
    int *steer_of;               // (n) variant -> index in sv, -1 when not a direction
    sc_hook steer_hook;
};

static sc_status eval_hook_forward(void *user, sc_backend *be, int block, float *h, int T, int C, const sc_batch *batch) {
    sc_eval_hook *eh = user;
    if (!batch || !batch->tag) return SC_OK;   // untagged rows are not steered
    const int ns = batch->n_seq;
    for (int i = 0; i < ns; i++)
        if (batch->tag[i] >= eh->n) return sc_errorf(SC_ERR_INTERNAL, "evaluate: sequence %d has variant tag %d but there are %d variants", i, batch->tag[i], eh->n);
    if (eh->steer.n_variants > 0) {   // the tags remapped to the steer hook's variants
        sc_arena_mark mh = sc_arena_mark_get(&be->host);
        int *tags = SC_ARENA_INTS(&be->host, ns, "steering tags");
        if (!tags) return SC_ERR_MEM;
        for (int i = 0; i < ns; i++) tags[i] = batch->tag[i] >= 0 ? eh->steer_of[batch->tag[i]] : -1;
        sc_batch b2 = *batch;
        b2.tag = tags;
        sc_status st = eh->steer_hook.forward(eh->steer_hook.user, be, block, h, T, C, &b2);
        sc_arena_reset(&be->host, mh);
        SC_TRY(st);
    }
    // adapters: one update per run of consecutive sequences with the same adapter variant
    for (int i = 0; i < ns;) {
        int t = batch->tag[i], j = i + 1;
        if (t < 0 || eh->v[t].kind != SC_EVAL_ADAPTER) { i++; continue; }
        while (j < ns && batch->tag[j] == t) j++;
        const int r0 = batch->seq_start[i], rows = batch->seq_start[j] - r0;
        float *hr = h + (size_t)r0 * C;
        SC_TRY(sc_adapter_apply(eh->v[t].adapter, block, hr, rows, hr, 1));
        i = j;
    }
    return SC_OK;
}

void sc_eval_hook_free(sc_eval_hook *eh) {
    if (!eh) return;
    free(eh->sv); free(eh->steer_of);
    free(eh);
}

sc_status sc_eval_hook_create(const sc_eval_variant *variants, int n_variants, int n_layers, sc_eval_hook **out) {
    sc_eval_hook *eh = sc_calloc(1, sizeof *eh, "evaluation hook");
    if (!eh) return SC_ERR_MEM;
    eh->v = variants;
    eh->n = n_variants;
    eh->sv = calloc((size_t)n_variants + 1, sizeof(sc_steer_variant));
    eh->steer_of = malloc(sizeof(int) * ((size_t)n_variants + 1));
    if (!eh->sv || !eh->steer_of) { sc_eval_hook_free(eh); return sc_errorf(SC_ERR_MEM, "out of memory"); }
    int ns = 0;
    for (int i = 0; i < n_variants; i++) {
        const sc_eval_variant *v = &variants[i];
        eh->steer_of[i] = -1;
        if (v->kind == SC_EVAL_DIRECTION) {
            if (!v->directions) { sc_eval_hook_free(eh); return sc_errorf(SC_ERR_ARG, "evaluate: variant %d is a direction without a vector", i); }
            eh->sv[ns] = (sc_steer_variant){.directions = v->directions, .scale = v->scale, .first = 0, .last = -1};
            eh->steer_of[i] = ns++;
        } else if (v->kind == SC_EVAL_ADAPTER) {
            if (!v->adapter) { sc_eval_hook_free(eh); return sc_errorf(SC_ERR_ARG, "evaluate: variant %d is an adapter without one", i); }
            if (v->adapter->n_layers != n_layers) { sc_eval_hook_free(eh); return sc_errorf(SC_ERR_SHAPE, "evaluate: variant %d: adapter for %d blocks on a model of %d", i, v->adapter->n_layers, n_layers); }
        }
    }
    eh->steer = (sc_steer){.variants = eh->sv, .n_variants = ns, .n_layers = n_layers};
    eh->steer_hook = sc_steer_hook(&eh->steer);
    *out = eh;
    return SC_OK;
}

sc_hook sc_eval_hook_get(sc_eval_hook *eh) {
    sc_hook h = {.user = eh, .forward = eval_hook_forward, .backward = NULL};
    return h;
}

// --- Batched generation -----------------------------------------------------------------------

sc_status sc_evaluate_generate(const sc_model *m, sc_backend *be, const sc_eval_variant *variants, int n_variants,
                               const int32_t *const *prompts, const int *prompt_len, int n_prompts, const uint64_t *stream,
                               const sc_sample_opts *o, int batch_seqs, sc_gen_out *out) {
    if (batch_seqs < 1) return sc_errorf(SC_ERR_ARG, "evaluate: batch of %d sequences: must be at least 1", batch_seqs);
    const int total = n_variants * n_prompts;
    for (int k = 0; k < total; k++) memset(&out[k], 0, sizeof out[k]);
    if (total == 0) return SC_OK;
    sc_gen_plan plan = {.max_seqs = batch_seqs < total ? batch_seqs : total, .max_prompt = 1, .max_new = o->max_new_tokens};
    for (int p = 0; p < n_prompts; p++) {
        if (prompt_len[p] <= 0) return sc_errorf(SC_ERR_ARG, "evaluate: prompt %d is empty", p);
        if (prompt_len[p] > plan.max_prompt) plan.max_prompt = prompt_len[p];
    }
    sc_eval_hook *eh = NULL;
    sc_generator *G = NULL;
    SC_TRY(sc_eval_hook_create(variants, n_variants, m->cfg.n_layers, &eh));
    sc_hook hook = sc_eval_hook_get(eh);
    const int nb_max = plan.max_seqs;
    const int32_t **cp = malloc(sizeof(int32_t *) * (size_t)nb_max);
    int *cl = malloc(sizeof(int) * (size_t)nb_max), *ct = malloc(sizeof(int) * (size_t)nb_max);
    uint64_t *cs = malloc(sizeof(uint64_t) * (size_t)nb_max);
    sc_status st = SC_OK;
    if (!cp || !cl || !ct || !cs) st = sc_errorf(SC_ERR_MEM, "out of memory");
    if (!st) st = sc_generator_create(m, be, &plan, &G);
    sc_monitor_progress("generating", 0, total, "sequences");
    for (int k0 = 0; k0 < total && !st; k0 += nb_max) {
        int nb = total - k0 < nb_max ? total - k0 : nb_max;
        for (int j = 0; j < nb; j++) {
            int v = (k0 + j) / n_prompts, p = (k0 + j) % n_prompts;
            cp[j] = prompts[p]; cl[j] = prompt_len[p]; ct[j] = v;
            cs[j] = stream ? stream[p] : (uint64_t)p;
        }
        if ((st = sc_generator_run(G, cp, cl, nb, cs, ct, o, &hook))) {
            sc_error_wrap(st, "evaluate: generating sequences %d..%d of %d: ", k0, k0 + nb - 1, total);
            break;
        }
        for (int j = 0; j < nb && !st; j++) {
            int n = 0, stopped = 0;
            const int32_t *ids = sc_gen_output(G->gen, j, &n, &stopped);
            sc_gen_out *dst = &out[k0 + j];
            if (!(dst->ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1)))) { st = sc_errorf(SC_ERR_MEM, "out of memory"); break; }
            memcpy(dst->ids, ids, sizeof(int32_t) * (size_t)n);
            dst->n = n;
            dst->stopped = stopped;
        }
        sc_monitor_progress("generating", k0 + nb, total, "sequences");
    }
    if (st) for (int k = 0; k < total; k++) { free(out[k].ids); memset(&out[k], 0, sizeof out[k]); }
    free(cp); free(cl); free(ct); free(cs);
    sc_generator_free(G);
    sc_eval_hook_free(eh);
    return st;
}

// --- Output files -----------------------------------------------------------------------------

sc_status sc_evaluate_write_json(const char *path, const sc_dataset *test, const int *prompt_ids, int n,
                                 char *const *original, char *const *output) {
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return sc_errorf(SC_ERR_MEM, "%s: out of memory building JSON", path);
    for (int i = 0; i < n; i++) {
        int row = prompt_ids[i];
        if (row < 0 || (size_t)row >= test->n) { cJSON_Delete(arr); return sc_errorf(SC_ERR_INTERNAL, "%s: prompt id %d outside the test set of %zu", path, row, test->n); }
        const sc_prompt *pr = &test->items[row];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o) || !cJSON_AddNumberToObject(o, "prompt_id", row) ||
            !cJSON_AddStringToObject(o, "prompt", pr->prompt ? pr->prompt : pr->full_prompt) ||
            !cJSON_AddStringToObject(o, "original_completion", original[i]) || !cJSON_AddStringToObject(o, "output", output[i])) {
            cJSON_Delete(arr);
            return sc_errorf(SC_ERR_MEM, "%s: out of memory building JSON", path);
        }
    }
    char *text = cJSON_PrintBuffered(arr, 1 << 16, 1);
    cJSON_Delete(arr);
    if (!text) return sc_errorf(SC_ERR_MEM, "%s: out of memory printing JSON", path);
    sc_status st = sc_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}


// --- The stage --------------------------------------------------------------------------------

void sc_evaluate_opts_default(sc_evaluate_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 100;
    o->temperature = 0.7f;
    o->top_k = 50;
    o->top_p = 0.9f;
    o->seed = 1234;
    o->batch_seqs = 64;
    o->adapters = o->directions = 1;
}

void sc_evaluate_scale_name(float scale, char *buf, size_t n) { snprintf(buf, n, "%g", (double)scale); }

typedef struct { int search; int kind; float scale; } variant_info;   // for file names

sc_status sc_evaluate_encode(const sc_model *m, const sc_tokenizer *tok, const sc_dataset *ds, const char *csv, int n,
                             int max_new, int32_t **ids, int *len) {
    for (int p = 0; p < n; p++) {
        size_t nt = 0;
        const char *text = ds->items[p].full_prompt;
        sc_status st = sc_tok_encode(tok, text, strlen(text), &ids[p], &nt);
        if (st) return sc_error_wrap(st, "%s line %d: ", csv, ds->items[p].line);
        if (nt == 0) return sc_errorf(SC_ERR_FORMAT, "%s line %d: full_prompt encodes to no tokens", csv, ds->items[p].line);
        char what[4200];
        snprintf(what, sizeof what, "%s line %d", csv, ds->items[p].line);
        SC_TRY(sc_gen_check_context(m, (int)nt, max_new, what));
        len[p] = (int)nt;
    }
    return SC_OK;
}

sc_status sc_evaluate_run(sc_stage *stage, const sc_evaluate_opts *o) {
    if (o->batch_seqs < 1) return sc_errorf(SC_ERR_ARG, "evaluate: batch of %d sequences: must be at least 1", o->batch_seqs);
    if (o->max_new_tokens < 1) return sc_errorf(SC_ERR_ARG, "evaluate: max_new_tokens %d must be at least 1", o->max_new_tokens);
    if (!(o->temperature > 0)) return sc_errorf(SC_ERR_ARG, "evaluate: temperature %g must be positive", (double)o->temperature);
    if (!(o->top_p > 0 && o->top_p <= 1)) return sc_errorf(SC_ERR_ARG, "evaluate: top_p %g must be in (0, 1]", (double)o->top_p);
    if (o->top_k < 0) return sc_errorf(SC_ERR_ARG, "evaluate: top_k %d must be 0 (off) or positive", o->top_k);
    if (o->limit < 0) return sc_errorf(SC_ERR_ARG, "evaluate: limit %d must not be negative", o->limit);
    if (!stage->model) return sc_errorf(SC_ERR_INTERNAL, "evaluate: the stage context has no model");
    static const float default_scale = 2.0f;
    const float *scales = o->scales ? o->scales : &default_scale;
    const int n_scales = o->scales ? o->n_scales : 1;
    sc_run *run = stage->run;
    sc_backend *be = stage->be;
    const sc_model *m = stage->model;
    const sc_dataset *test = &stage->test;
    char path[4096];
    SC_TRY(sc_run_path(run, "results.h5", path, sizeof path));
    if (!sc_results_exists(run)) return sc_errorf(SC_ERR_IO, "%s does not exist: run `steerclear search` (and `steerclear extract`) into this run directory first", path);

    sc_status st = SC_OK;
    sc_results_meta meta = {0};
    int *all = NULL, S = 0, n_sel = 0, *sel = NULL, n_var = 0, n_p = 0, *have = NULL;
    sc_adapter **ads = NULL;
    float *D = NULL, *D_dev = NULL;
    sc_eval_variant *var = NULL;
    variant_info *vinfo = NULL;
    int32_t **ptok = NULL;
    int *plen = NULL, *pid = NULL;
    uint64_t *streams = NULL;
    sc_gen_out *gen = NULL;
    char **texts = NULL;
    if ((st = sc_results_list_searches(run, &all, &S))) goto done;
    if ((st = sc_results_read_meta(run, &meta))) goto done;
    n_sel = o->searches ? o->n_searches : S;
    sel = malloc(sizeof(int) * (size_t)(n_sel + 1));
    if (!sel) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int j = 0; j < n_sel; j++) {
        sel[j] = o->searches ? o->searches[j] : all[j];
        int found = 0;
        for (int s = 0; s < S; s++) found |= all[s] == sel[j];
        if (!found) { st = sc_errorf(SC_ERR_ARG, "%s: search %d is not finished in this run (%d finished searches); leave it out of --searches", path, sel[j], S); goto done; }
    }
    const int L = m->cfg.n_layers, C = m->cfg.hidden;
    const size_t LC = (size_t)L * C;
    // directions of the chosen searches, in backend memory (the steering hook reads them there)
    if (o->directions && n_sel > 0) {
        if (!sc_results_has_directions(run)) {
            sc_log(SC_LOG_WARN, "%s has no /directions: evaluating without directions (run `steerclear extract` first to include them)", path);
        } else {
            D = malloc(sizeof(float) * LC * (size_t)n_sel);
            have = calloc((size_t)n_sel, sizeof(int));
            if (!D || !have) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
            if ((st = sc_results_read_directions(run, sel, n_sel, L, C, D, have))) goto done;
            if ((st = sc_backend_alloc_floats(be, LC * (size_t)n_sel, "directions", &D_dev))) goto done;
            if ((st = be->op->upload(be, D_dev, D, sizeof(float) * LC * (size_t)n_sel))) goto done;
        }
    }
    // variants: base, adapters, directions x scales
    const int max_var = 1 + n_sel + n_sel * n_scales;
    var = calloc((size_t)max_var, sizeof *var);
    vinfo = calloc((size_t)max_var, sizeof *vinfo);
    ads = calloc((size_t)n_sel + 1, sizeof *ads);
    if (!var || !vinfo || !ads) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    var[n_var] = (sc_eval_variant){.kind = SC_EVAL_BASE};
    vinfo[n_var++] = (variant_info){.search = -1, .kind = SC_EVAL_BASE};
    for (int j = 0; j < n_sel && o->adapters; j++) {
        if ((st = sc_results_load_adapter(run, be, sel[j], L, C, &ads[j]))) goto done;
        var[n_var] = (sc_eval_variant){.kind = SC_EVAL_ADAPTER, .adapter = ads[j]};
        vinfo[n_var++] = (variant_info){.search = sel[j], .kind = SC_EVAL_ADAPTER};
    }
    for (int j = 0; j < n_sel && D_dev; j++) {
        if (!have[j]) { sc_log(SC_LOG_WARN, "search %d has no extracted direction: only its adapter is evaluated", sel[j]); continue; }
        for (int k = 0; k < n_scales; k++) {
            var[n_var] = (sc_eval_variant){.kind = SC_EVAL_DIRECTION, .directions = D_dev + LC * (size_t)j, .scale = scales[k]};
            vinfo[n_var++] = (variant_info){.search = sel[j], .kind = SC_EVAL_DIRECTION, .scale = scales[k]};
        }
    }
    // test prompts
    n_p = o->limit > 0 && (size_t)o->limit < test->n ? o->limit : (int)test->n;
    if (n_p == 0) { st = sc_errorf(SC_ERR_ARG, "evaluate: the stage has no test prompts"); goto done; }
    ptok = calloc((size_t)n_p, sizeof *ptok);
    plen = calloc((size_t)n_p, sizeof *plen);
    pid = calloc((size_t)n_p, sizeof *pid);
    streams = calloc((size_t)n_p, sizeof *streams);
    gen = calloc((size_t)n_var * n_p, sizeof *gen);
    texts = calloc((size_t)n_var * n_p, sizeof *texts);
    if (!ptok || !plen || !pid || !streams || !gen || !texts) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    if ((st = sc_evaluate_encode(m, stage->tok, test, stage->test_csv, n_p, o->max_new_tokens, ptok, plen))) goto done;
    for (int p = 0; p < n_p; p++) {
        pid[p] = p;
        streams[p] = (uint64_t)p;
    }
    // generate
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_make(&so, stage->tok, stops, o->max_new_tokens, o->temperature, o->top_k, o->top_p,
                        o->seed_set ? o->seed : sc_results_run_seed(meta.config_json));
    sc_log(SC_LOG_INFO, "evaluate: %d variants x %d prompts, %d new tokens, batches of %d", n_var, n_p, o->max_new_tokens, o->batch_seqs);
    if ((st = stage->generate ? stage->generate(stage->generate_ctx, var, n_var, (const int32_t *const *)ptok, plen, n_p, streams, &so, o->batch_seqs, gen)
                              : sc_evaluate_generate(m, be, var, n_var, (const int32_t *const *)ptok, plen, n_p, streams, &so, o->batch_seqs, gen))) goto done;
    for (int k = 0; k < n_var * n_p; k++)
        if ((st = sc_tok_decode(stage->tok, gen[k].ids, (size_t)gen[k].n, 1, &texts[k]))) { sc_error_wrap(st, "decoding output %d: ", k); goto done; }
    // write
    char dir[4200], fpath[4400], sname[64];
    if ((st = sc_run_path(run, "eval", dir, sizeof dir)) || (st = sc_mkdir_p(dir))) goto done;
    for (int v = 0; v < n_var; v++) {
        if (vinfo[v].kind == SC_EVAL_BASE) snprintf(fpath, sizeof fpath, "%s/base.json", dir);
        else if (vinfo[v].kind == SC_EVAL_ADAPTER) snprintf(fpath, sizeof fpath, "%s/adapter_%04d.json", dir, vinfo[v].search);
        else {
            sc_evaluate_scale_name(vinfo[v].scale, sname, sizeof sname);
            snprintf(fpath, sizeof fpath, "%s/direction_%04d_scale_%s.json", dir, vinfo[v].search, sname);
        }
        if ((st = sc_evaluate_write_json(fpath, test, pid, n_p, texts, texts + (size_t)v * n_p))) goto done;
    }
    sc_log(SC_LOG_INFO, "evaluate: wrote %d files to %s", n_var, dir);
done:
    if (ads) for (int j = 0; j < n_sel; j++) sc_adapter_free(ads[j]);
    if (ptok) for (int p = 0; p < n_p; p++) free(ptok[p]);
    if (gen) for (int k = 0; k < n_var * n_p; k++) free(gen[k].ids);
    if (texts) for (int k = 0; k < n_var * n_p; k++) free(texts[k]);
    be->op->free(be, D_dev);
    free(ads); free(all); free(sel); free(D); free(have);
    free(var); free(vinfo); free(ptok); free(plen); free(pid); free(streams); free(gen); free(texts);
    sc_results_meta_free(&meta);
    return st;
}
