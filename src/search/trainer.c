// trainer.c — one divergence search after another: sample from Q, teacher-forced P and Q,
// loss and backward, AdamW; a checkpoint after every step; each finished search added to
// RUN_DIR/results.h5 atomically.
#include "steerclear/search.h"
#include "steerclear/generate.h"
#include "steerclear/h5.h"
#include "steerclear/rng.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// --- One optimizer step -----------------------------------------------------------------------

sc_status sc_search_step(const sc_search_run *run, sc_search_state *state, const int32_t *const *prompts,
                         const int *prompt_len, const int32_t *prompt_idx, int n, sc_step_record *rec) {
    const sc_model *m = run->model;
    const sc_backend *be = run->be;
    const sc_search_config *cfg = run->cfg;
    const int C = m->cfg.hidden, step = state->steps_done;
    sc_adapter *ad = state->adapter;
    sc_hook hook = sc_adapter_hook(ad);
    memset(rec, 0, sizeof *rec);

    // 1. sample continuations from the current Q (no gradients)
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_default(&so);
    sc_sample_opts_for_tokenizer(&so, run->tok, stops);
    so.max_new_tokens = cfg->max_new_tokens;
    so.temperature = cfg->temperature;
    so.top_k = cfg->top_k;
    so.top_p = cfg->top_p;
    so.seed = sc_seed_mix(state->seed, 0x5341000000ull + (uint64_t)step);
    uint64_t *streams = malloc(sizeof(uint64_t) * (size_t)n);
    sc_gen_out *gen = calloc((size_t)n, sizeof(sc_gen_out));
    if (!streams || !gen) { free(streams); free(gen); return sc_errorf(SC_ERR_MEM, "out of memory"); }
    for (int i = 0; i < n; i++) streams[i] = (uint64_t)prompt_idx[i];
    sc_status st = sc_generate(m, be, prompts, prompt_len, n, streams, NULL, &so, &hook, gen);
    free(streams);
    if (st) { free(gen); return sc_error_wrap(st, "sampling from the adapted model: "); }

    // 2. the batch of whole sequences, the counted rows and their targets
    int *seq_start = malloc(sizeof(int) * (size_t)(n + 1));
    int T = 0, n_rows = 0;
    for (int i = 0; i < n; i++) { T += prompt_len[i] + gen[i].n; n_rows += gen[i].n; }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T), *targets = malloc(sizeof(int32_t) * (size_t)(n_rows + 1));
    int *rows = malloc(sizeof(int) * (size_t)(n_rows + 1));
    float *hp = malloc(sizeof(float) * (size_t)T * C + 64), *hq = malloc(sizeof(float) * (size_t)T * C + 64);
    float *dh = calloc((size_t)T * C + 16, sizeof(float));
    sc_activations *acts = NULL;
    rec->prompt_idx = malloc(sizeof(int32_t) * (size_t)n);
    rec->gen_len = malloc(sizeof(int32_t) * (size_t)n);
    rec->gen = malloc(sizeof(int32_t) * (size_t)(n_rows + 1));
    rec->A = malloc(sizeof(float) * sc_adapter_numel_A(ad));
    rec->B = malloc(sizeof(float) * sc_adapter_numel_B(ad));
    if (!seq_start || !ids || !targets || !rows || !hp || !hq || !dh || !rec->prompt_idx || !rec->gen_len || !rec->gen || !rec->A || !rec->B) {
        st = sc_errorf(SC_ERR_MEM, "out of memory for a batch of %d tokens", T);
        goto done;
    }
    seq_start[0] = 0;
    int r = 0, g = 0;
    for (int i = 0; i < n; i++) {
        int s0 = seq_start[i];
        memcpy(ids + s0, prompts[i], sizeof(int32_t) * (size_t)prompt_len[i]);
        memcpy(ids + s0 + prompt_len[i], gen[i].ids, sizeof(int32_t) * (size_t)gen[i].n);
        seq_start[i + 1] = s0 + prompt_len[i] + gen[i].n;
        for (int j = 0; j < gen[i].n; j++) {   // row prompt_len-1+j predicts gen[j]
            rows[r] = s0 + prompt_len[i] - 1 + j;
            targets[r++] = gen[i].ids[j];
        }
        rec->prompt_idx[i] = prompt_idx[i];
        rec->gen_len[i] = gen[i].n;
        memcpy(rec->gen + g, gen[i].ids, sizeof(int32_t) * (size_t)gen[i].n);
        g += gen[i].n;
    }
    sc_batch batch = {.n_seq = n, .seq_start = seq_start};

    // 3. teacher-forced P and Q, the loss, Q's backward into the adapter
    if ((st = sc_forward(m, be, &batch, ids, hp, NULL, NULL, NULL))) goto done;
    int checkpoint = cfg->checkpoint_activations;
    if (checkpoint < 0) {   // auto: recompute only when keeping everything would pass 25% of RAM
        double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
        checkpoint = (double)sc_activations_estimate(m, T, 0) > 0.25 * ram;
    }
    if ((st = sc_activations_create(checkpoint, &acts))) goto done;
    if ((st = sc_forward(m, be, &batch, ids, hq, NULL, &hook, acts))) goto done;
    sc_loss_stats ls;
    if ((st = sc_divergence_loss(m, be, hp, hq, rows, targets, n_rows, cfg->alpha, cfg->beta, cfg->loss_chunk, dh, &ls))) goto done;
    sc_adapter_zero_grad(ad);
    if ((st = sc_backward(m, be, acts, &hook, dh))) goto done;

    // 4. AdamW
    sc_adamw_opts ao = {cfg->lr, cfg->beta1, cfg->beta2, cfg->adam_eps, cfg->weight_decay};
    sc_adamw_update(ad->A, ad->dA, state->mA, state->vA, sc_adapter_numel_A(ad), &ao, step + 1);
    sc_adamw_update(ad->B, ad->dB, state->mB, state->vB, sc_adapter_numel_B(ad), &ao, step + 1);
    for (size_t i = 0; i < sc_adapter_numel_A(ad); i++)
        if (!isfinite(ad->A[i]) || !isfinite(ad->B[i])) { st = sc_errorf(SC_ERR_NUMERIC, "search %d step %d: the adapter became non-finite; lower lr", state->search, step); goto done; }
    memcpy(rec->A, ad->A, sizeof(float) * sc_adapter_numel_A(ad));
    memcpy(rec->B, ad->B, sizeof(float) * sc_adapter_numel_B(ad));
    rec->loss = ls.loss; rec->kl = ls.kl; rec->nll = ls.nll; rec->n_pos = ls.n_pos;
done:
    for (int i = 0; i < n; i++) free(gen[i].ids);
    free(gen); free(seq_start); free(ids); free(targets); free(rows); free(hp); free(hq); free(dh);
    sc_activations_free(acts);
    if (st) { free(rec->prompt_idx); free(rec->gen_len); free(rec->gen); free(rec->A); free(rec->B); memset(rec, 0, sizeof *rec); }
    return st;
}

// --- Results file -----------------------------------------------------------------------------

static sc_status write_search_results(const sc_search_run *run, const sc_search_state *s) {
    char path[4096], grp[256], obj[320];
    snprintf(path, sizeof path, "%s/results.h5", run->run_dir);
    snprintf(grp, sizeof grp, "/searches/%04d", s->search);
    const sc_adapter *a = s->adapter;
    const int64_t nA = (int64_t)sc_adapter_numel_A(a), nB = (int64_t)sc_adapter_numel_B(a), steps = s->steps_done;
    int64_t dA[4] = {a->n_sets, a->C, a->r}, dB[4] = {a->n_sets, a->r, a->C};
    sc_h5 *h = NULL;
    SC_TRY(sc_h5_begin_update(path, &h));
    sc_status st = SC_OK;
    float *allA = malloc(sizeof(float) * (size_t)(nA * (steps ? steps : 1))), *allB = malloc(sizeof(float) * (size_t)(nB * (steps ? steps : 1)));
    double *loss = malloc(sizeof(double) * (size_t)(steps + 1)), *kl = malloc(sizeof(double) * (size_t)(steps + 1)), *nll = malloc(sizeof(double) * (size_t)(steps + 1));
    int64_t *npos = malloc(sizeof(int64_t) * (size_t)(steps + 1)), *lens = malloc(sizeof(int64_t) * (size_t)(steps * s->batch + 1));
    int32_t *pidx = malloc(sizeof(int32_t) * (size_t)(steps * s->batch + 1));
    size_t ntok = 0;
    for (int i = 0; i < steps; i++) for (int j = 0; j < s->batch; j++) ntok += (size_t)s->steps[i].gen_len[j];
    int32_t *toks = malloc(sizeof(int32_t) * (ntok + 1));
    if (!allA || !allB || !loss || !kl || !nll || !npos || !lens || !pidx || !toks) { st = sc_errorf(SC_ERR_MEM, "out of memory writing results"); goto done; }
    size_t at = 0;
    for (int i = 0; i < steps; i++) {
        const sc_step_record *r = &s->steps[i];
        memcpy(allA + i * nA, r->A, sizeof(float) * (size_t)nA);
        memcpy(allB + i * nB, r->B, sizeof(float) * (size_t)nB);
        loss[i] = r->loss; kl[i] = r->kl; nll[i] = r->nll; npos[i] = r->n_pos;
        size_t g = 0;
        for (int j = 0; j < s->batch; j++) {
            pidx[i * s->batch + j] = r->prompt_idx[j];
            lens[i * s->batch + j] = r->gen_len[j];
            memcpy(toks + at, r->gen + g, sizeof(int32_t) * (size_t)r->gen_len[j]);
            at += (size_t)r->gen_len[j]; g += (size_t)r->gen_len[j];
        }
    }
    if (sc_h5_exists(h, grp) && (st = sc_h5_delete(h, grp))) goto done;
#define W(call) do { if ((st = (call))) goto done; } while (0)
    snprintf(obj, sizeof obj, "%s/adapter/A", grp); W(sc_h5_write_f32(h, obj, 3, dA, a->A));
    snprintf(obj, sizeof obj, "%s/adapter/B", grp); W(sc_h5_write_f32(h, obj, 3, dB, a->B));
    snprintf(obj, sizeof obj, "%s/adapter_init/A", grp); W(sc_h5_write_f32(h, obj, 3, dA, s->A0));
    snprintf(obj, sizeof obj, "%s/adapter_init/B", grp); W(sc_h5_write_f32(h, obj, 3, dB, s->B0));
    int64_t dSA[4] = {steps, a->n_sets, a->C, a->r}, dSB[4] = {steps, a->n_sets, a->r, a->C}, d1[1] = {steps};
    int64_t dP[2] = {steps, s->batch};
    snprintf(obj, sizeof obj, "%s/steps/A", grp); W(sc_h5_write_f32(h, obj, 4, dSA, allA));
    snprintf(obj, sizeof obj, "%s/steps/B", grp); W(sc_h5_write_f32(h, obj, 4, dSB, allB));
    snprintf(obj, sizeof obj, "%s/steps/loss", grp); W(sc_h5_write_f64(h, obj, 1, d1, loss));
    snprintf(obj, sizeof obj, "%s/steps/kl", grp); W(sc_h5_write_f64(h, obj, 1, d1, kl));
    snprintf(obj, sizeof obj, "%s/steps/nll", grp); W(sc_h5_write_f64(h, obj, 1, d1, nll));
    snprintf(obj, sizeof obj, "%s/steps/n_positions", grp); W(sc_h5_write_i64(h, obj, 1, d1, npos));
    snprintf(obj, sizeof obj, "%s/steps/prompt_indices", grp); W(sc_h5_write_i32(h, obj, 2, dP, pidx));
    snprintf(obj, sizeof obj, "%s/steps/tokens", grp); W(sc_h5_append_ragged_i32(h, obj, toks, lens, steps * s->batch));
    W(sc_h5_attr_i64(h, grp, "search", s->search));
    W(sc_h5_attr_i64(h, grp, "seed", (int64_t)s->seed));
    W(sc_h5_attr_i64(h, grp, "steps", steps));
    W(sc_h5_attr_i64(h, grp, "batch_size", s->batch));
    W(sc_h5_attr_str(h, grp, "adapter", sc_adapter_kind_name(a->kind)));
    W(sc_h5_attr_i64(h, grp, "rank", a->r));
    W(sc_h5_attr_f64(h, grp, "scaling", a->scaling));
    W(sc_h5_attr_str(h, "/", "format", "steerclear-results"));
    W(sc_h5_attr_i64(h, "/", "format_version", 1));
    W(sc_h5_attr_str(h, "/", "model", run->model->dir));
    W(sc_h5_attr_i64(h, "/", "n_layers", run->model->cfg.n_layers));
    W(sc_h5_attr_i64(h, "/", "hidden_size", run->model->cfg.hidden));
    if (run->config_json) W(sc_h5_attr_str(h, "/", "config", run->config_json));
#undef W
    st = sc_h5_commit(h);
    h = NULL;
done:
    if (h) sc_h5_close(h);
    free(allA); free(allB); free(loss); free(kl); free(nll); free(npos); free(lens); free(pidx); free(toks);
    return st;
}

// --- The search loop --------------------------------------------------------------------------

// The prompts of a search: a seeded permutation of the train set, first prompts_per_search.
static sc_status draw_prompts(const sc_search_config *cfg, uint64_t seed, int n_train, int epoch, int32_t *out) {
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_train);
    if (!perm) return sc_errorf(SC_ERR_MEM, "out of memory");
    for (int i = 0; i < n_train; i++) perm[i] = i;
    for (int i = n_train - 1; i > 0; i--) {   // Fisher-Yates with counter-based draws
        uint32_t rr[4];
        sc_philox4x32(seed, 0x50524f4d50ull + (uint64_t)epoch, (uint64_t)i, rr);
        int j = (int)((((uint64_t)rr[0] << 32) | rr[1]) % (uint64_t)(i + 1));
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    memcpy(out, perm, sizeof(int32_t) * (size_t)cfg->prompts_per_search);
    free(perm);
    return SC_OK;
}

static sc_status new_state(const sc_search_run *run, int search, sc_search_state **out) {
    const sc_search_config *cfg = run->cfg;
    sc_search_state *s = sc_calloc(1, sizeof *s, "search state");
    if (!s) return SC_ERR_MEM;
    s->search = search;
    s->steps_total = cfg->prompts_per_search / cfg->batch_size * cfg->epochs;
    s->batch = cfg->batch_size;
    s->seed = sc_search_seed(cfg, search);
    sc_status st = sc_adapter_create(cfg->adapter, run->model->cfg.n_layers, run->model->cfg.hidden, cfg->rank, cfg->scaling, &s->adapter);
    if (st) { free(s); return st; }
    sc_adapter_init(s->adapter, s->seed);
    size_t nA = sc_adapter_numel_A(s->adapter), nB = sc_adapter_numel_B(s->adapter);
    s->mA = calloc(nA, sizeof(float)); s->vA = calloc(nA, sizeof(float));
    s->mB = calloc(nB, sizeof(float)); s->vB = calloc(nB, sizeof(float));
    s->A0 = malloc(sizeof(float) * nA); s->B0 = malloc(sizeof(float) * nB);
    s->steps = calloc((size_t)s->steps_total, sizeof(sc_step_record));
    if (!s->mA || !s->vA || !s->mB || !s->vB || !s->A0 || !s->B0 || !s->steps) { sc_search_state_free(s); return sc_errorf(SC_ERR_MEM, "out of memory"); }
    memcpy(s->A0, s->adapter->A, sizeof(float) * nA);
    memcpy(s->B0, s->adapter->B, sizeof(float) * nB);
    *out = s;
    return SC_OK;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) { snprintf(buf, n, "--:--:--"); return; }
    int t = (int)(s + 0.5);
    snprintf(buf, n, "%02d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
}

sc_status sc_search_run_range(const sc_search_run *run, int first, int last) {
    const sc_search_config *cfg = run->cfg;
    if (last < 0 || last > cfg->searches) last = cfg->searches;
    const int n_train = (int)run->train->n;
    if (n_train < cfg->prompts_per_search)
        return sc_errorf(SC_ERR_ARG, "the train set has %d prompts but prompts_per_search is %d; lower prompts_per_search or bring more prompts", n_train, cfg->prompts_per_search);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoints", run->run_dir);
    SC_TRY(sc_mkdir_p(dir));

    // tokenize the train set once
    int32_t **tok = calloc((size_t)n_train, sizeof(int32_t *));
    int *tok_len = calloc((size_t)n_train, sizeof(int));
    int32_t *order = malloc(sizeof(int32_t) * (size_t)cfg->prompts_per_search);
    const int32_t **bp = malloc(sizeof(int32_t *) * (size_t)cfg->batch_size);   // the batch's prompts,
    int *bl = malloc(sizeof(int) * (size_t)cfg->batch_size);                     // their lengths
    int32_t *bi = malloc(sizeof(int32_t) * (size_t)cfg->batch_size);             // and train-set rows
    sc_status st = SC_OK;
    if (!tok || !tok_len || !order || !bp || !bl || !bi) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int i = 0; i < n_train; i++) {
        size_t n;
        const char *text = run->train->items[i].full_prompt;
        if ((st = sc_tok_encode(run->tok, text, strlen(text), &tok[i], &n))) { sc_error_wrap(st, "train prompt %d (line %d): ", i, run->train->items[i].line); goto done; }
        tok_len[i] = (int)n;
    }
    const int steps_per_epoch = cfg->prompts_per_search / cfg->batch_size;
    const double t_start = sc_now_seconds();
    int steps_run = 0;
    const int is_tty = isatty(2);
    for (int sidx = first; sidx < last; sidx++) {
        char ckpt[4200];
        snprintf(ckpt, sizeof ckpt, "%s/search_%04d.ckpt", dir, sidx);
        sc_search_state *s = NULL;
        if (sc_file_exists(ckpt)) {
            if (!run->resume) { st = sc_errorf(SC_ERR_ARG, "%s exists: this run directory already has searches; add --resume to continue it, or choose a new --out", ckpt); goto done; }
            if ((st = sc_search_checkpoint_load(ckpt, cfg, run->model->cfg.n_layers, run->model->cfg.hidden, &s))) goto done;
            if (s->steps_done < s->steps_total) sc_log(SC_LOG_INFO, "search %d: resuming at step %d of %d", sidx, s->steps_done + 1, s->steps_total);
        } else if ((st = new_state(run, sidx, &s))) goto done;
        int drawn_epoch = -1;   // the epoch whose prompt order is in `order`
        while (s->steps_done < s->steps_total) {
            int step = s->steps_done, epoch = step / steps_per_epoch, k = step % steps_per_epoch;
            if (epoch != drawn_epoch && (st = draw_prompts(cfg, s->seed, n_train, epoch, order))) break;
            drawn_epoch = epoch;
            const int n = cfg->batch_size;
            for (int i = 0; i < n; i++) { bi[i] = order[k * cfg->batch_size + i]; bp[i] = tok[bi[i]]; bl[i] = tok_len[bi[i]]; }
            double t0 = sc_now_seconds();
            sc_step_record rec;
            if ((st = sc_search_step(run, s, bp, bl, bi, n, &rec))) { sc_error_wrap(st, "search %d step %d: ", sidx, step); break; }
            s->steps[s->steps_done++] = rec;
            if ((st = sc_search_checkpoint_save(ckpt, s))) break;
            double dt = sc_now_seconds() - t0;
            steps_run++;
            int total_steps = (last - first) * s->steps_total;
            int done_steps = (sidx - first) * s->steps_total + s->steps_done;
            double per = (sc_now_seconds() - t_start) / steps_run;
            char eta[32];
            fmt_eta(eta, sizeof eta, per * (total_steps - done_steps));
            int gen_tok = 0;
            for (int i = 0; i < n; i++) gen_tok += rec.gen_len[i];
            char bar[32] = "";
            if (is_tty) {
                int w = 20, f = total_steps ? w * done_steps / total_steps : w;
                bar[0] = '[';
                for (int i = 0; i < w; i++) bar[1 + i] = i < f ? '#' : '.';
                bar[w + 1] = ']'; bar[w + 2] = ' '; bar[w + 3] = '\0';
            }
            sc_log(SC_LOG_INFO, "%ssearch %d/%d step %d/%d loss %.4f kl %.4f nll %.4f tok/s %.1f eta %s",
                   bar, sidx + 1, cfg->searches, s->steps_done, s->steps_total, rec.loss, rec.kl, rec.nll,
                   gen_tok / (dt > 0 ? dt : 1e-9), eta);
            if (run->stop && *run->stop) { st = sc_errorf(SC_ERR_INTERRUPTED, "stopped by a signal after search %d step %d (checkpointed in %s); continue with --resume", sidx, s->steps_done, ckpt); break; }
        }
        if (!st) st = write_search_results(run, s);
        sc_search_state_free(s);
        if (st) goto done;
    }
done:
    if (tok) for (int i = 0; i < n_train; i++) free(tok[i]);
    free(tok); free(tok_len); free(order); free(bp); free(bl); free(bi);
    return st;
}
