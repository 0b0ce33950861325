// trainer.c — one divergence search after another: sample from Q, teacher-forced P and Q,
// loss and backward, AdamW; a checkpoint after every step; each finished search added to
// RUN_DIR/results.h5 atomically (through the results module). The run state of a step (the
// generator, saved activations, hidden buffers, workspace) is sized once per run from the
// longest train prompt: steps allocate nothing.
#include "steerclear/search.h"
#include "steerclear/monitor.h"
#include "steerclear/generate.h"
#include "steerclear/results.h"
#include "steerclear/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// --- Run state of a step ----------------------------------------------------------------------

struct sc_search_work {
    sc_backend *be;
    sc_generator *gen;
    sc_activations *acts;
    int checkpoint;            // activation checkpointing, resolved
    int max_T, max_seqs;
    float *hp, *hq, *dh;       // [max_T, C] backend memory: P and Q hidden states, Q's gradient
    int32_t *ids, *targets;    // host (max_T)
    int *rows, *seq_start;     // host (max_T), (max_seqs + 1)
    uint64_t *streams;         // host (max_seqs)
};

void sc_search_work_free(sc_search_work *w) {
    if (!w) return;
    sc_generator_free(w->gen);
    sc_activations_free(w->acts);
    w->be->op->free(w->be, w->hp);
    free(w->ids); free(w->targets); free(w->rows); free(w->seq_start); free(w->streams);
    free(w);
}

int sc_search_work_checkpointing(const sc_search_work *w) { return w->checkpoint; }

sc_status sc_search_work_create(const sc_search_run *run, int max_prompt, sc_search_work **out) {
    *out = NULL;
    const sc_model *m = run->model;
    const sc_search_config *cfg = run->cfg;
    sc_backend *be = run->be;
    sc_search_work *w = sc_calloc(1, sizeof *w, "search run state");
    if (!w) return SC_ERR_MEM;
    w->be = be;
    w->max_seqs = cfg->batch_size;
    w->max_T = cfg->batch_size * (max_prompt + cfg->max_new_tokens);
    const int C = m->cfg.hidden;
    w->checkpoint = cfg->checkpoint_activations;
    if (w->checkpoint < 0)   // auto: recompute only when keeping everything would take a third of the budget
        w->checkpoint = (double)sc_activations_estimate(m, w->max_T, 0) > be->memory_budget / 3.0;
    sc_gen_plan plan = {.max_seqs = cfg->batch_size, .max_prompt = max_prompt, .max_new = cfg->max_new_tokens};
    sc_status st = sc_generator_create(m, be, &plan, &w->gen);
    if (!st) st = sc_activations_create(m, be, w->max_T, w->max_seqs, w->checkpoint, &w->acts);
    if (!st) st = sc_backend_alloc_floats(be, 3 * (size_t)w->max_T * C, "search hidden states", &w->hp);
    if (!st) {
        w->hq = w->hp + (size_t)w->max_T * C;
        w->dh = w->hq + (size_t)w->max_T * C;
        w->ids = malloc(sizeof(int32_t) * (size_t)w->max_T);
        w->targets = malloc(sizeof(int32_t) * (size_t)w->max_T);
        w->rows = malloc(sizeof(int) * (size_t)w->max_T);
        w->seq_start = malloc(sizeof(int) * (size_t)(w->max_seqs + 1));
        w->streams = malloc(sizeof(uint64_t) * (size_t)w->max_seqs);
        if (!w->ids || !w->targets || !w->rows || !w->seq_start || !w->streams) st = sc_errorf(SC_ERR_MEM, "out of memory for the search batch layout");
    }
    // the workspace for the largest step: forward/backward scratch and the loss chunks
    if (!st) st = sc_arena_reserve(&be->ws, sc_forward_workspace_estimate(m, w->max_T) + sc_divergence_loss_workspace(m, cfg->loss_chunk));
    if (st) { sc_search_work_free(w); return st; }
    sc_log(SC_LOG_INFO, "search: batches of up to %d tokens; saved activations %.2f GiB (%s), hidden states %.2f GiB, workspace %.2f GiB; "
                        "memory budget %.1f GiB (%s backend)",
           w->max_T, sc_activations_bytes(w->acts) / 1073741824.0, w->checkpoint ? "blocks recomputed in backward" : "all blocks kept",
           3.0 * w->max_T * C * sizeof(float) / 1073741824.0, sc_arena_capacity(&be->ws) / 1073741824.0,
           be->memory_budget / 1073741824.0, be->name);
    *out = w;
    return SC_OK;
}

// --- One optimizer step -----------------------------------------------------------------------

sc_status sc_search_step(const sc_search_run *run, sc_search_work *w, sc_search_state *state, const int32_t *const *prompts,
                         const int *prompt_len, const int32_t *prompt_idx, int n) {
    const sc_model *m = run->model;
    sc_backend *be = run->be;
    const sc_search_config *cfg = run->cfg;
    const int C = m->cfg.hidden, step = state->steps_done;
    sc_adapter *ad = state->adapter;
    sc_hook hook = sc_adapter_hook(ad);
    if (step >= state->steps_total) return sc_errorf(SC_ERR_INTERNAL, "search %d: all %d steps are done", state->search, state->steps_total);
    if (n > w->max_seqs || n > state->batch) return sc_errorf(SC_ERR_INTERNAL, "search step: %d prompts, planned for %d", n, w->max_seqs);
    sc_step_record *rec = &state->steps[step];

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
    for (int i = 0; i < n; i++) w->streams[i] = (uint64_t)prompt_idx[i];
    sc_status st = sc_generator_run(w->gen, prompts, prompt_len, n, w->streams, NULL, &so, &hook);
    if (st) return sc_error_wrap(st, "sampling from the adapted model: ");

    // 2. the batch of whole sequences, the counted rows and their targets
    int T = 0, n_rows = 0, g = 0;
    w->seq_start[0] = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        const int32_t *gen = sc_gen_output(w->gen->gen, i, &k, NULL);
        const int s0 = w->seq_start[i];
        if (s0 + prompt_len[i] + k > w->max_T) return sc_errorf(SC_ERR_INTERNAL, "search step: %d tokens, planned for %d", s0 + prompt_len[i] + k, w->max_T);
        memcpy(w->ids + s0, prompts[i], sizeof(int32_t) * (size_t)prompt_len[i]);
        memcpy(w->ids + s0 + prompt_len[i], gen, sizeof(int32_t) * (size_t)k);
        w->seq_start[i + 1] = s0 + prompt_len[i] + k;
        for (int j = 0; j < k; j++) {   // row prompt_len-1+j predicts gen[j]
            w->rows[n_rows] = s0 + prompt_len[i] - 1 + j;
            w->targets[n_rows++] = gen[j];
        }
        rec->prompt_idx[i] = prompt_idx[i];
        rec->gen_len[i] = k;
        memcpy(rec->gen + g, gen, sizeof(int32_t) * (size_t)k);
        g += k;
    }
    T = w->seq_start[n];
    sc_batch batch = {.n_seq = n, .seq_start = w->seq_start};

    // 3. teacher-forced P and Q, the loss, Q's backward into the adapter
    SC_TRY(sc_forward(m, be, &batch, w->ids, w->hp, NULL, NULL, NULL));
    SC_TRY(sc_forward(m, be, &batch, w->ids, w->hq, NULL, &hook, w->acts));
    SC_TRY(be->op->memset(be, w->dh, 0, sizeof(float) * (size_t)T * C));
    sc_loss_stats ls;
    SC_TRY(sc_divergence_loss(m, be, w->hp, w->hq, w->rows, w->targets, n_rows, cfg->alpha, cfg->beta, cfg->loss_chunk, w->dh, &ls));
    SC_TRY(sc_adapter_zero_grad(ad));
    SC_TRY(sc_backward(m, be, w->acts, &hook, w->dh));

    // 4. AdamW, then the adapter after the step into the record
    const sc_adamw_opts ao = {cfg->lr, cfg->beta1, cfg->beta2, cfg->adam_eps, cfg->weight_decay};
    const size_t nA = sc_adapter_numel_A(ad), nB = sc_adapter_numel_B(ad);
    SC_TRY(be->op->adamw(be, ad->A, ad->dA, state->mA, state->vA, nA, &ao, step + 1));
    SC_TRY(be->op->adamw(be, ad->B, ad->dB, state->mB, state->vB, nB, &ao, step + 1));
    SC_TRY(sc_adapter_get(ad, rec->A, rec->B));
    for (size_t i = 0; i < nA + nB; i++)
        if (!isfinite(i < nA ? rec->A[i] : rec->B[i - nA])) return sc_errorf(SC_ERR_NUMERIC, "search %d step %d: the adapter became non-finite; lower lr", state->search, step);
    rec->loss = ls.loss; rec->kl = ls.kl; rec->nll = ls.nll; rec->n_pos = ls.n_pos;
    state->steps_done++;
    return SC_OK;
}

// --- The search loop --------------------------------------------------------------------------

// A seeded Fisher-Yates shuffle of v[0, n) with counter-based draws (stream `stream`).
static void shuffle(uint64_t seed, uint64_t stream, int32_t *v, int n) {
    for (int i = n - 1; i > 0; i--) {
        uint32_t rr[4];
        sc_philox4x32(seed, stream, (uint64_t)i, rr);
        int j = (int)((((uint64_t)rr[0] << 32) | rr[1]) % (uint64_t)(i + 1));
        int32_t t = v[i]; v[i] = v[j]; v[j] = t;
    }
}

// Streams: 0x50524f4d50 ("PROMP") + epoch permutes the train set (epoch 0 in both modes, every
// epoch per-epoch: the only draw before prompt_sampling existed, so those runs are unchanged);
// 0x5245534855 ("RESHU") + epoch reorders epoch 0's rows for a later epoch per-search.
sc_status sc_search_prompt_order(const sc_search_config *cfg, uint64_t seed, int n_train, int epoch, int32_t *out) {
    const int n = cfg->prompts_per_search;
    if (n_train < n || n < 1 || epoch < 0)
        return sc_errorf(SC_ERR_ARG, "prompt order: %d prompts per search from a train set of %d (epoch %d)", n, n_train, epoch);
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_train);
    if (!perm) return sc_errorf(SC_ERR_MEM, "out of memory for a permutation of %d train prompts", n_train);
    for (int i = 0; i < n_train; i++) perm[i] = i;
    const int fresh = cfg->prompt_sampling == SC_SAMPLING_PER_EPOCH ? epoch : 0;
    shuffle(seed, 0x50524f4d50ull + (uint64_t)fresh, perm, n_train);
    memcpy(out, perm, sizeof(int32_t) * (size_t)n);
    free(perm);
    if (cfg->prompt_sampling == SC_SAMPLING_PER_SEARCH && epoch > 0) shuffle(seed, 0x5245534855ull + (uint64_t)epoch, out, n);
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
    // tokenize the train set once
    int32_t **tok = calloc((size_t)n_train, sizeof(int32_t *));
    int *tok_len = calloc((size_t)n_train, sizeof(int));
    int32_t *order = malloc(sizeof(int32_t) * (size_t)cfg->prompts_per_search);
    const int32_t **bp = malloc(sizeof(int32_t *) * (size_t)cfg->batch_size);   // the batch's prompts,
    int *bl = malloc(sizeof(int) * (size_t)cfg->batch_size);                     // their lengths
    int32_t *bi = malloc(sizeof(int32_t) * (size_t)cfg->batch_size);             // and train-set rows
    sc_search_work *work = NULL;
    sc_results_meta meta = {.model_dir = (char *)(run->model_dir ? run->model_dir : run->model->dir),
                            .config_json = (char *)run->config_json, .n_layers = run->model->cfg.n_layers,
                            .hidden = run->model->cfg.hidden};
    sc_status st = SC_OK;
    if (!tok || !tok_len || !order || !bp || !bl || !bi) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    int max_prompt = 1;
    for (int i = 0; i < n_train; i++) {
        size_t n;
        const char *text = run->train->items[i].full_prompt;
        if ((st = sc_tok_encode(run->tok, text, strlen(text), &tok[i], &n))) { sc_error_wrap(st, "train prompt %d (line %d): ", i, run->train->items[i].line); goto done; }
        if (n == 0) { st = sc_errorf(SC_ERR_FORMAT, "train prompt %d (line %d): full_prompt encodes to no tokens", i, run->train->items[i].line); goto done; }
        char what[96];
        snprintf(what, sizeof what, "train prompt %d (line %d)", i, run->train->items[i].line);
        if ((st = sc_gen_check_context(run->model, (int)n, cfg->max_new_tokens, what))) goto done;
        tok_len[i] = (int)n;
        if (tok_len[i] > max_prompt) max_prompt = tok_len[i];
    }
    if (!run->pipe_step && (st = sc_search_work_create(run, max_prompt, &work))) goto done;
    const int steps_per_epoch = cfg->prompts_per_search / cfg->batch_size;
    const double t_start = sc_now_seconds();
    int steps_run = 0;
    const int is_tty = isatty(2);
    const int stride = run->stride > 1 ? run->stride : 1, offset = stride > 1 ? run->offset : 0;
    int n_mine = 0;   // the searches of this range this process runs (progress and ETA)
    for (int sidx = first; sidx < last; sidx++) n_mine += sidx % stride == offset;
    int n_before = 0;
    for (int sidx = first; sidx < last; sidx++) {
        if (sidx % stride != offset) continue;
        n_before++;
        if (run->is_finished ? run->is_finished(run->dist_ctx, sidx) : sc_results_has_search(run->run, sidx)) {   // finished: never rerun, never rewritten from a checkpoint
            sc_log(SC_LOG_INFO, "search %d: already in results.h5, skipped", sidx);
            continue;
        }
        char ckpt[4200];
        if ((st = sc_run_checkpoint_path(run->run, sidx, ckpt, sizeof ckpt))) goto done;
        sc_search_state *s = NULL;
        const int L = run->model->cfg.n_layers, C = run->model->cfg.hidden;
        if (sc_file_exists(ckpt)) {
            if (!run->resume) { st = sc_errorf(SC_ERR_ARG, "%s exists: this run directory already has searches; add --resume to continue it, or choose a new --out", ckpt); goto done; }
            if ((st = sc_search_checkpoint_load(ckpt, cfg, run->be, L, C, &s))) goto done;
            if (s->steps_done < s->steps_total) sc_log(SC_LOG_INFO, "search %d: resuming at step %d of %d", sidx, s->steps_done + 1, s->steps_total);
        } else if ((st = sc_search_state_create(run->be, cfg, sidx, L, C, &s))) goto done;
        int drawn_epoch = -1;   // the epoch whose prompt order is in `order`
        while (s->steps_done < s->steps_total) {
            int step = s->steps_done, epoch = step / steps_per_epoch, k = step % steps_per_epoch;
            if (epoch != drawn_epoch && (st = sc_search_prompt_order(cfg, s->seed, n_train, epoch, order))) break;
            drawn_epoch = epoch;
            const int n = cfg->batch_size;
            for (int i = 0; i < n; i++) { bi[i] = order[k * cfg->batch_size + i]; bp[i] = tok[bi[i]]; bl[i] = tok_len[bi[i]]; }
            double t0 = sc_now_seconds();
            if ((st = run->pipe_step ? run->pipe_step(run->pipe, s, bp, bl, bi, n) : sc_search_step(run, work, s, bp, bl, bi, n))) {
                if (st == SC_ERR_INTERRUPTED)
                    sc_errorf(st, "stopped by a signal during search %d step %d; %s holds the %d steps before it; continue with --resume",
                              sidx, step + 1, ckpt, step);
                else sc_error_wrap(st, "search %d step %d: ", sidx, step);
                break;
            }
            const sc_step_record *rec = &s->steps[step];
            if (!run->read_only && (st = sc_search_checkpoint_save(ckpt, s))) break;
            double dt = sc_now_seconds() - t0;
            steps_run++;
            int total_steps = n_mine * s->steps_total;
            int done_steps = (n_before - 1) * s->steps_total + s->steps_done;
            double per = (sc_now_seconds() - t_start) / steps_run;
            char eta[32];
            fmt_eta(eta, sizeof eta, per * (total_steps - done_steps));
            int gen_tok = 0;
            for (int i = 0; i < n; i++) gen_tok += rec->gen_len[i];
            char bar[32] = "";
            if (is_tty) {
                int w = 20, f = total_steps ? w * done_steps / total_steps : w;
                bar[0] = '[';
                for (int i = 0; i < w; i++) bar[1 + i] = i < f ? '#' : '.';
                bar[w + 1] = ']'; bar[w + 2] = ' '; bar[w + 3] = '\0';
            }
            sc_log(SC_LOG_INFO, "%ssearch %d/%d step %d/%d loss %.4f kl %.4f nll %.4f tok/s %.1f eta %s",
                   bar, sidx + 1, cfg->searches, s->steps_done, s->steps_total, rec->loss, rec->kl, rec->nll,
                   gen_tok / (dt > 0 ? dt : 1e-9), eta);
            sc_monitor_step(done_steps, total_steps, "steps", per * (total_steps - done_steps));
            if (sc_interrupted()) { st = sc_errorf(SC_ERR_INTERRUPTED, "stopped by a signal after search %d step %d (checkpointed in %s); continue with --resume", sidx, s->steps_done, ckpt); break; }
            if (run->poll && (st = run->poll(run->dist_ctx))) break;
        }
        if (!st) st = run->add_result ? run->add_result(run->dist_ctx, s) : sc_results_add_search(run->run, s, &meta);
        sc_search_state_free(s);
        if (st) goto done;
    }
done:
    if (tok) for (int i = 0; i < n_train; i++) free(tok[i]);
    free(tok); free(tok_len); free(order); free(bp); free(bl); free(bi);
    sc_search_work_free(work);
    return st;
}
