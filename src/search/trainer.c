// trainer.c — divergence searches: sample from Q, teacher-forced P and Q, loss and backward,
// AdamW; a checkpoint after every step; each finished search added to RUN_DIR/results.h5
// atomically (through the results module).
//
// The searches of a rank advance in lock-step: step k of every search in a pass is one batched
// pass (sc_search_pass): one decode loop over all their sequences, each tagged with its search
// so that the adapter group hook applies that search's adapter to its rows; the teacher-forced
// P forward and Q forward + backward in micro-batches of searches_per_micro_batch whole searches
// (default 1: a search's products then see exactly its own rows, bitwise as alone; "auto": as
// many as memory allows), the tags routing each row's gradient to its own adapter; the
// loss of each search over its own rows; each search's AdamW on its own parameters. A search's
// sequences are consecutive in every batch, so its adapter sees the same rows in the same calls
// as when it runs alone; the rest of the model treats rows independently. The run state of a
// pass (generator, saved activations, hidden buffers, workspace) is sized once per run from the
// longest train prompt: passes allocate nothing.
#include "steerclear/search.h"
#include "steerclear/monitor.h"
#include "steerclear/generate.h"
#include "steerclear/results.h"
#include "steerclear/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// --- Run state of a pass ----------------------------------------------------------------------

struct sc_search_work {
    sc_backend *be;
    sc_generator *gen;
    sc_activations *acts;
    int checkpoint;            // activation checkpointing, resolved
    int per_pass, per_micro;   // searches in one pass; searches in one teacher-forced micro-batch
    int batch;                 // prompts per search and step (cfg->batch_size)
    int max_T, max_seqs;       // tokens and sequences of a micro-batch
    float *hp, *hq, *dh;       // [max_T, C] backend memory: P and Q hidden states, Q's gradient
    int32_t *ids, *targets;    // host (max_T)
    int *rows, *seq_start;     // host (max_T), (max_seqs + 1)
    int *tags;                 // host (max_seqs): the search of each sequence in the micro-batch
    int *item_rows;            // host (per_micro + 1): each search's counted rows in `rows`
    // the pass's generation: per_pass * batch prompts
    const int32_t **gp;
    int *gl, *gtag;
    uint64_t *gstream, *gseed;
    sc_adapter **ad;           // (per_pass) the adapters of the pass, in item order
    sc_loss_stats *ls;         // (per_pass)
    int *gofs;                 // (per_pass) each search's first sequence in the generation
};

void sc_search_work_free(sc_search_work *w) {
    if (!w) return;
    sc_generator_free(w->gen);
    sc_activations_free(w->acts);
    w->be->op->free(w->be, w->hp);
    free(w->ids); free(w->targets); free(w->rows); free(w->seq_start); free(w->tags); free(w->item_rows);
    free(w->gp); free(w->gl); free(w->gtag); free(w->gstream); free(w->gseed); free(w->ad); free(w->ls); free(w->gofs);
    free(w);
}

int sc_search_work_checkpointing(const sc_search_work *w) { return w->checkpoint; }
int sc_search_work_per_pass(const sc_search_work *w) { return w->per_pass; }
int sc_search_work_per_micro(const sc_search_work *w) { return w->per_micro; }

// Backend bytes the generation of `seqs` sequences takes (KV cache, hidden rows, logits).
static double gen_bytes(const sc_model *m, int seqs, int max_prompt, int max_new) {
    const double kvd = (double)m->cfg.n_kv_heads * m->cfg.head_dim, ctx = max_prompt + max_new + 1;
    return 4.0 * seqs * (m->cfg.n_layers * 2.0 * ctx * kvd + (double)max_prompt * m->cfg.hidden + m->cfg.vocab);
}

// Backend bytes of a teacher-forced micro-batch of T tokens: saved activations, the three
// hidden-state buffers and the workspace.
static double tf_bytes(const sc_model *m, int T, int checkpoint, int loss_chunk) {
    return (double)sc_activations_estimate(m, T, checkpoint) + 3.0 * T * m->cfg.hidden * sizeof(float) +
           (double)sc_forward_workspace_estimate(m, T) + (double)sc_divergence_loss_workspace(m, loss_chunk);
}

sc_status sc_search_work_create_pass(const sc_search_run *run, int max_prompt, int n_searches, int per_micro, sc_search_work **out) {
    *out = NULL;
    const sc_model *m = run->model;
    const sc_search_config *cfg = run->cfg;
    sc_backend *be = run->be;
    if (n_searches < 1) n_searches = 1;
    sc_search_work *w = sc_calloc(1, sizeof *w, "search run state");
    if (!w) return SC_ERR_MEM;
    w->be = be;
    w->batch = cfg->batch_size;
    const int T1 = cfg->batch_size * (max_prompt + cfg->max_new_tokens);   // one search's largest step
    const int C = m->cfg.hidden;
    w->checkpoint = cfg->checkpoint_activations;
    if (w->checkpoint < 0)   // auto: recompute only when keeping everything for one search would take a third of the budget
        w->checkpoint = (double)sc_activations_estimate(m, T1, 0) > be->memory_budget / 3.0;
    // searches per pass: as asked, else all of the rank's while the generation of all of them
    // and one search's teacher-forced pass fit in what the budget leaves; then the micro-batch:
    // as many whole searches as fit beside the generation
    const double avail = be->memory_budget > be->stats.bytes_live ? (double)(be->memory_budget - be->stats.bytes_live) : 0.0;
    const double tf1 = tf_bytes(m, T1, w->checkpoint, cfg->loss_chunk);
    int S = cfg->searches_per_pass > 0 ? cfg->searches_per_pass : n_searches;
    if (S > n_searches) S = n_searches;
    if (cfg->searches_per_pass <= 0)
        while (S > 1 && gen_bytes(m, S * cfg->batch_size, max_prompt, cfg->max_new_tokens) + tf1 > avail) S--;
    if (per_micro <= 0) per_micro = cfg->searches_per_micro_batch;   // still 0: auto
    int M = per_micro > 0 && per_micro < S ? per_micro : S;
    while (per_micro <= 0 && M > 1 && gen_bytes(m, S * cfg->batch_size, max_prompt, cfg->max_new_tokens) + tf_bytes(m, M * T1, w->checkpoint, cfg->loss_chunk) > avail) M--;
    w->per_pass = S;
    w->per_micro = M;
    w->max_seqs = M * cfg->batch_size;
    w->max_T = M * T1;
    sc_gen_plan plan = {.max_seqs = S * cfg->batch_size, .max_prompt = max_prompt, .max_new = cfg->max_new_tokens};
    sc_status st = sc_generator_create(m, be, &plan, &w->gen);
    if (!st) st = sc_activations_create(m, be, w->max_T, w->max_seqs, w->checkpoint, &w->acts);
    if (!st) st = sc_backend_alloc_floats(be, 3 * (size_t)w->max_T * C, "search hidden states", &w->hp);
    if (!st) {
        const size_t G = (size_t)S * cfg->batch_size;
        w->hq = w->hp + (size_t)w->max_T * C;
        w->dh = w->hq + (size_t)w->max_T * C;
        w->ids = malloc(sizeof(int32_t) * (size_t)w->max_T);
        w->targets = malloc(sizeof(int32_t) * (size_t)w->max_T);
        w->rows = malloc(sizeof(int) * (size_t)w->max_T);
        w->seq_start = malloc(sizeof(int) * (size_t)(w->max_seqs + 1));
        w->tags = malloc(sizeof(int) * (size_t)w->max_seqs);
        w->item_rows = malloc(sizeof(int) * (size_t)(M + 1));
        w->gp = malloc(sizeof(int32_t *) * G);
        w->gl = malloc(sizeof(int) * G);
        w->gtag = malloc(sizeof(int) * G);
        w->gstream = malloc(sizeof(uint64_t) * G);
        w->gseed = malloc(sizeof(uint64_t) * G);
        w->ad = malloc(sizeof(sc_adapter *) * (size_t)S);
        w->ls = malloc(sizeof(sc_loss_stats) * (size_t)S);
        w->gofs = malloc(sizeof(int) * (size_t)S);
        if (!w->ids || !w->targets || !w->rows || !w->seq_start || !w->tags || !w->item_rows || !w->gp || !w->gl || !w->gtag ||
            !w->gstream || !w->gseed || !w->ad || !w->ls || !w->gofs)
            st = sc_errorf(SC_ERR_MEM, "out of memory for the search batch layout");
    }
    // the workspace for the largest pass: prefill, forward/backward scratch and the loss chunks
    if (!st) {
        size_t ws = sc_forward_workspace_estimate(m, w->max_T), wg = sc_forward_workspace_estimate(m, S * cfg->batch_size * max_prompt);
        st = sc_arena_reserve(&be->ws, (ws > wg ? ws : wg) + sc_divergence_loss_workspace(m, cfg->loss_chunk));
    }
    if (st) { sc_search_work_free(w); return st; }
    sc_log(SC_LOG_INFO, "search: %d search%s per pass (%d sequences sampled together), teacher-forced in micro-batches of %d search%s "
                        "(up to %d tokens); saved activations %.2f GiB (%s), hidden states %.2f GiB, workspace %.2f GiB; "
                        "memory budget %.1f GiB (%s backend)",
           S, S == 1 ? "" : "es", S * cfg->batch_size, M, M == 1 ? "" : "es", w->max_T, sc_activations_bytes(w->acts) / 1073741824.0,
           w->checkpoint ? "blocks recomputed in backward" : "all blocks kept", 3.0 * w->max_T * C * sizeof(float) / 1073741824.0,
           sc_arena_capacity(&be->ws) / 1073741824.0, be->memory_budget / 1073741824.0, be->name);
    *out = w;
    return SC_OK;
}

sc_status sc_search_work_create(const sc_search_run *run, int max_prompt, sc_search_work **out) {
    sc_search_config one = *run->cfg;
    one.searches_per_pass = 1;
    sc_search_run r1 = *run;
    r1.cfg = &one;
    return sc_search_work_create_pass(&r1, max_prompt, 1, 0, out);
}

// --- One optimizer step of several searches ---------------------------------------------------

// Teacher-forced P and Q, the losses, Q's backward and each search's AdamW for the searches
// [j0, j1) of the pass (their samples are generator sequences gofs[j] ...).
static sc_status micro_batch(const sc_search_run *run, sc_search_work *w, const sc_search_item *items, const int *gofs, int j0, int j1) {
    const sc_model *m = run->model;
    sc_backend *be = run->be;
    const sc_search_config *cfg = run->cfg;
    const int C = m->cfg.hidden;
    int n_rows = 0, n_seq = 0;
    w->seq_start[0] = 0;
    for (int j = j0; j < j1; j++) {
        const sc_search_item *it = &items[j];
        sc_step_record *rec = &it->state->steps[it->state->steps_done];
        w->item_rows[j - j0] = n_rows;
        int g = 0;
        for (int i = 0; i < it->n; i++) {
            int k = 0;
            const int32_t *gen = sc_gen_output(w->gen->gen, gofs[j] + i, &k, NULL);
            const int s0 = w->seq_start[n_seq], pl = it->prompt_len[i];
            if (s0 + pl + k > w->max_T) return sc_errorf(SC_ERR_INTERNAL, "search pass: %d tokens, planned for %d", s0 + pl + k, w->max_T);
            memcpy(w->ids + s0, it->prompts[i], sizeof(int32_t) * (size_t)pl);
            memcpy(w->ids + s0 + pl, gen, sizeof(int32_t) * (size_t)k);
            w->seq_start[n_seq + 1] = s0 + pl + k;
            w->tags[n_seq++] = j - j0;
            for (int q = 0; q < k; q++) {   // row pl-1+q predicts gen[q]
                w->rows[n_rows] = s0 + pl - 1 + q;
                w->targets[n_rows++] = gen[q];
            }
            rec->prompt_idx[i] = it->prompt_idx[i];
            rec->gen_len[i] = k;
            memcpy(rec->gen + g, gen, sizeof(int32_t) * (size_t)k);
            g += k;
        }
    }
    w->item_rows[j1 - j0] = n_rows;
    const int T = w->seq_start[n_seq];
    sc_batch batch = {.n_seq = n_seq, .seq_start = w->seq_start, .tag = w->tags};
    sc_adapter_group group = {.adapters = w->ad + j0, .n = j1 - j0};
    sc_hook hook = sc_adapter_group_hook(&group);

    SC_TRY(sc_forward(m, be, &batch, w->ids, w->hp, NULL, NULL, NULL));
    SC_TRY(sc_forward(m, be, &batch, w->ids, w->hq, NULL, &hook, w->acts));
    SC_TRY(be->op->memset(be, w->dh, 0, sizeof(float) * (size_t)T * C));
    for (int j = j0; j < j1; j++) {   // each search's loss over its own rows, normalised by their count
        const int r0 = w->item_rows[j - j0], nr = w->item_rows[j - j0 + 1] - r0;
        sc_status st = sc_divergence_loss(m, be, w->hp, w->hq, w->rows + r0, w->targets + r0, nr, cfg->alpha, cfg->beta, cfg->loss_chunk, w->dh, &w->ls[j]);
        if (st) return sc_error_wrap(st, "search %d: ", items[j].state->search);
        SC_TRY(sc_adapter_zero_grad(w->ad[j]));
    }
    SC_TRY(sc_backward(m, be, w->acts, &hook, w->dh));

    for (int j = j0; j < j1; j++)   // each search's AdamW on its own parameters, its record
        SC_TRY(sc_search_finish_step(be, cfg, items[j].state, &w->ls[j]));
    return SC_OK;
}

sc_status sc_search_finish_step(sc_backend *be, const sc_search_config *cfg, sc_search_state *state, const sc_loss_stats *ls) {
    sc_adapter *ad = state->adapter;
    const int step = state->steps_done;
    sc_step_record *rec = &state->steps[step];
    const sc_adamw_opts ao = {cfg->lr, cfg->beta1, cfg->beta2, cfg->adam_eps, cfg->weight_decay};
    const size_t nA = sc_adapter_numel_A(ad), nB = sc_adapter_numel_B(ad);
    SC_TRY(be->op->adamw(be, ad->A, ad->dA, state->mA, state->vA, nA, &ao, step + 1));
    SC_TRY(be->op->adamw(be, ad->B, ad->dB, state->mB, state->vB, nB, &ao, step + 1));
    SC_TRY(sc_adapter_get(ad, rec->A, rec->B));
    for (size_t i = 0; i < nA + nB; i++)
        if (!isfinite(i < nA ? rec->A[i] : rec->B[i - nA])) return sc_errorf(SC_ERR_NUMERIC, "search %d step %d: the adapter became non-finite; lower lr", state->search, step);
    rec->loss = ls->loss; rec->kl = ls->kl; rec->nll = ls->nll; rec->n_pos = ls->n_pos;
    state->steps_done++;
    return SC_OK;
}

sc_status sc_search_pass(const sc_search_run *run, sc_search_work *w, const sc_search_item *items, int n_items) {
    const sc_search_config *cfg = run->cfg;
    if (n_items < 1 || n_items > w->per_pass) return sc_errorf(SC_ERR_INTERNAL, "search pass: %d searches, planned for %d", n_items, w->per_pass);
    // 1. sample continuations from every search's current Q (no gradients): one generation,
    // each search's prompts with its step's seed and its tag
    int total = 0;
    int *gofs = w->gofs;
    for (int j = 0; j < n_items; j++) {
        const sc_search_item *it = &items[j];
        const sc_search_state *state = it->state;
        const int step = state->steps_done;
        if (step >= state->steps_total) return sc_errorf(SC_ERR_INTERNAL, "search %d: all %d steps are done", state->search, state->steps_total);
        if (it->n > w->batch || it->n > state->batch) return sc_errorf(SC_ERR_INTERNAL, "search step: %d prompts, planned for %d", it->n, w->batch);
        const uint64_t seed = sc_search_sample_seed(state->seed, step);
        gofs[j] = total;
        for (int i = 0; i < it->n; i++, total++) {
            w->gp[total] = it->prompts[i];
            w->gl[total] = it->prompt_len[i];
            w->gstream[total] = (uint64_t)it->prompt_idx[i];
            w->gseed[total] = seed;
            w->gtag[total] = j;
        }
        w->ad[j] = state->adapter;
    }
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_make(&so, run->tok, stops, cfg->max_new_tokens, cfg->temperature, cfg->top_k, cfg->top_p, 0);
    so.seeds = w->gseed;
    sc_adapter_group group = {.adapters = w->ad, .n = n_items};
    sc_hook hook = sc_adapter_group_hook(&group);
    sc_status st = sc_generator_run(w->gen, w->gp, w->gl, total, w->gstream, w->gtag, &so, &hook);
    if (st) return sc_error_wrap(st, "sampling from the adapted model: ");
    // 2. teacher-forced passes, losses, backward and AdamW, whole searches per micro-batch
    for (int j0 = 0; j0 < n_items; j0 += w->per_micro) {
        const int j1 = j0 + w->per_micro < n_items ? j0 + w->per_micro : n_items;
        SC_TRY(micro_batch(run, w, items, gofs, j0, j1));
    }
    return SC_OK;
}

sc_status sc_search_step(const sc_search_run *run, sc_search_work *w, sc_search_state *state, const int32_t *const *prompts,
                         const int *prompt_len, const int32_t *prompt_idx, int n) {
    const sc_search_item it = {.state = state, .prompts = prompts, .prompt_len = prompt_len, .prompt_idx = prompt_idx, .n = n};
    return sc_search_pass(run, w, &it, 1);
}

// --- The search loop --------------------------------------------------------------------------

uint64_t sc_search_sample_seed(uint64_t search_seed, int step) { return sc_seed_mix(search_seed, 0x5341000000ull + (uint64_t)step); }

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

// One search of a pass in sc_search_run_range: its state, checkpoint path and prompt order.
typedef struct {
    sc_search_state *s;
    int drawn_epoch;           // the epoch whose prompt order is in `order` (-1: none)
    int32_t *order;            // (prompts_per_search)
    char ckpt[4200];
} pass_slot;

sc_status sc_search_run_range(const sc_search_run *run, int first, int last) {
    const sc_search_config *cfg = run->cfg;
    if (last < 0 || last > cfg->searches) last = cfg->searches;
    const int n_train = (int)run->train->n;
    if (n_train < cfg->prompts_per_search)
        return sc_errorf(SC_ERR_ARG, "the train set has %d prompts but prompts_per_search is %d; lower prompts_per_search or bring more prompts", n_train, cfg->prompts_per_search);
    const int stride = run->stride > 1 ? run->stride : 1, offset = stride > 1 ? run->offset : 0;
    int n_mine = 0;   // the searches of this range this process runs
    for (int sidx = first; sidx < last; sidx++) n_mine += sidx % stride == offset;
    // tokenize the train set once
    int32_t **tok = calloc((size_t)n_train, sizeof(int32_t *));
    int *tok_len = calloc((size_t)n_train, sizeof(int));
    int *mine = malloc(sizeof(int) * (size_t)(n_mine > 0 ? n_mine : 1));
    pass_slot *slot = NULL;
    sc_search_item *items = NULL;
    const int32_t **bp = NULL;   // the pass's prompts,
    int *bl = NULL;              // their lengths
    int32_t *bi = NULL;          // and train-set rows (batch_size per search)
    int n_slots = 0;
    sc_search_work *work = NULL;
    sc_results_meta meta = {.model_dir = (char *)(run->model_dir ? run->model_dir : run->model->dir),
                            .config_json = (char *)run->config_json, .n_layers = run->model->cfg.n_layers,
                            .hidden = run->model->cfg.hidden};
    sc_status st = SC_OK;
    if (!tok || !tok_len || !mine) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    n_mine = 0;
    for (int sidx = first; sidx < last; sidx++) if (sidx % stride == offset) mine[n_mine++] = sidx;
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
    if (n_mine == 0) goto done;
    // a pipeline stage runs one search per pass through its own step (src/dist/pipeline.c)
    if (run->pipe_step) n_slots = 1;
    else if ((st = sc_search_work_create_pass(run, max_prompt, n_mine, 0, &work))) goto done;
    else n_slots = work->per_pass;
    const int B = cfg->batch_size;
    slot = calloc((size_t)n_slots, sizeof *slot);
    items = calloc((size_t)n_slots, sizeof *items);
    bp = malloc(sizeof(int32_t *) * (size_t)n_slots * B);
    bl = malloc(sizeof(int) * (size_t)n_slots * B);
    bi = malloc(sizeof(int32_t) * (size_t)n_slots * B);
    if (!slot || !items || !bp || !bl || !bi) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int k = 0; k < n_slots; k++)
        if (!(slot[k].order = malloc(sizeof(int32_t) * (size_t)cfg->prompts_per_search))) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    const int steps_per_epoch = cfg->prompts_per_search / B;
    const int L = run->model->cfg.n_layers, C = run->model->cfg.hidden;
    const double t_start = sc_now_seconds();
    int passes_run = 0, next = 0, n_closed = 0;   // next of `mine` to start; searches finished or skipped
    int steps_total = 0;
    const int is_tty = isatty(2);
    for (;;) {
        // fill the free slots with the next searches (a finished one never reruns; one that
        // finished its steps before a kill is only added to the results)
        for (int k = 0; k < n_slots && !st; k++) {
            while (!slot[k].s && next < n_mine) {
                const int sidx = mine[next++];
                if (run->is_finished ? run->is_finished(run->dist_ctx, sidx) : sc_results_has_search(run->run, sidx)) {
                    sc_log(SC_LOG_INFO, "search %d: already in results.h5, skipped", sidx);
                    n_closed++;
                    continue;
                }
                pass_slot *ps = &slot[k];
                if ((st = sc_run_checkpoint_path(run->run, sidx, ps->ckpt, sizeof ps->ckpt))) break;
                sc_search_state *s = NULL;
                if (sc_file_exists(ps->ckpt)) {
                    if (!run->resume) { st = sc_errorf(SC_ERR_ARG, "%s exists: this run directory already has searches; add --resume to continue it, or choose a new --out", ps->ckpt); break; }
                    if ((st = sc_search_checkpoint_load(ps->ckpt, cfg, run->be, L, C, &s))) break;
                    if (s->steps_done < s->steps_total) sc_log(SC_LOG_INFO, "search %d: resuming at step %d of %d", sidx, s->steps_done + 1, s->steps_total);
                } else if ((st = sc_search_state_create(run->be, cfg, sidx, L, C, &s))) break;
                steps_total = s->steps_total;
                if (s->steps_done >= s->steps_total) {
                    st = run->add_result ? run->add_result(run->dist_ctx, s) : sc_results_add_search(run->run, s, &meta);
                    sc_search_state_free(s);
                    n_closed++;
                    continue;
                }
                ps->s = s;
                ps->drawn_epoch = -1;
            }
        }
        if (st) break;
        // step k of every search in the slots (each at its own step) in one pass
        int n_items = 0, gen_n = 0;
        for (int k = 0; k < n_slots && !st; k++) {
            pass_slot *ps = &slot[k];
            if (!ps->s) continue;
            const int step = ps->s->steps_done, epoch = step / steps_per_epoch, kk = step % steps_per_epoch;
            if (epoch != ps->drawn_epoch && (st = sc_search_prompt_order(cfg, ps->s->seed, n_train, epoch, ps->order))) break;
            ps->drawn_epoch = epoch;
            const int o = n_items * B;
            for (int i = 0; i < B; i++) { bi[o + i] = ps->order[kk * B + i]; bp[o + i] = tok[bi[o + i]]; bl[o + i] = tok_len[bi[o + i]]; }
            items[n_items++] = (sc_search_item){.state = ps->s, .prompts = bp + o, .prompt_len = bl + o, .prompt_idx = bi + o, .n = B};
        }
        if (st || n_items == 0) break;
        char names[256] = "";   // "search 3 step 5", "the pass of searches 0, 2, 4" for messages
        if (n_items == 1) snprintf(names, sizeof names, "search %d step %d", items[0].state->search, items[0].state->steps_done + 1);
        else {
            size_t at = (size_t)snprintf(names, sizeof names, "the pass of searches");
            for (int j = 0; j < n_items && at < sizeof names; j++)
                at += (size_t)snprintf(names + at, sizeof names - at, "%s %d", j ? "," : "", items[j].state->search);
        }
        const double t0 = sc_now_seconds();
        // one search: through sc_search_step (the one-search step other step kinds hook into)
        const sc_search_item *it = &items[0];
        st = n_items > 1 ? sc_search_pass(run, work, items, n_items)
           : run->pipe_step ? run->pipe_step(run->pipe, it->state, it->prompts, it->prompt_len, it->prompt_idx, it->n)
                            : sc_search_step(run, work, it->state, it->prompts, it->prompt_len, it->prompt_idx, it->n);
        if (st) {
            if (st == SC_ERR_INTERRUPTED)
                sc_errorf(st, "stopped by a signal during %s; the checkpoints in %s/checkpoints hold the steps before it; continue with --resume",
                          names, sc_run_dir(run->run));
            else if (n_items == 1) sc_error_wrap(st, "search %d step %d: ", items[0].state->search, items[0].state->steps_done);
            else sc_error_wrap(st, "%s: ", names);
            break;
        }
        for (int j = 0; j < n_items && !st; j++) {   // each search's checkpoint after the pass
            for (int k = 0; k < n_slots; k++)
                if (slot[k].s == items[j].state) { st = run->read_only ? SC_OK : sc_search_checkpoint_save(slot[k].ckpt, slot[k].s); break; }
            const sc_step_record *rec = &items[j].state->steps[items[j].state->steps_done - 1];
            for (int i = 0; i < B; i++) gen_n += rec->gen_len[i];
        }
        if (st) break;
        const double dt = sc_now_seconds() - t0;
        passes_run++;
        const int total_steps = n_mine * steps_total;
        int done_steps = n_closed * steps_total;
        for (int k = 0; k < n_slots; k++) if (slot[k].s) done_steps += slot[k].s->steps_done;
        const double per = (sc_now_seconds() - t_start) / passes_run;   // seconds per pass
        int left = 0;   // passes left: the most steps any search still needs, slots refilled
        {
            int pending = n_mine - next, longest = 0;
            for (int k = 0; k < n_slots; k++) if (slot[k].s && slot[k].s->steps_total - slot[k].s->steps_done > longest) longest = slot[k].s->steps_total - slot[k].s->steps_done;
            left = longest + (pending + n_slots - 1) / n_slots * steps_total;
        }
        char eta[32];
        fmt_eta(eta, sizeof eta, per * left);
        char bar[32] = "";
        if (is_tty) {
            int bw = 20, f = total_steps ? bw * done_steps / total_steps : bw;
            bar[0] = '[';
            for (int i = 0; i < bw; i++) bar[1 + i] = i < f ? '#' : '.';
            bar[bw + 1] = ']'; bar[bw + 2] = ' '; bar[bw + 3] = '\0';
        }
        for (int j = 0; j < n_items; j++) {
            const sc_search_state *s = items[j].state;
            const sc_step_record *rec = &s->steps[s->steps_done - 1];
            sc_log(SC_LOG_INFO, "%ssearch %d/%d step %d/%d loss %.4f kl %.4f nll %.4f tok/s %.1f eta %s", bar, s->search + 1, cfg->searches,
                   s->steps_done, s->steps_total, rec->loss, rec->kl, rec->nll, gen_n / (dt > 0 ? dt : 1e-9), eta);
        }
        sc_monitor_step(done_steps, total_steps, "steps", per * left);
        // a search that finished its steps leaves the pass; its slot takes the next search
        for (int k = 0; k < n_slots && !st; k++) {
            sc_search_state *s = slot[k].s;
            if (!s || s->steps_done < s->steps_total) continue;
            st = run->add_result ? run->add_result(run->dist_ctx, s) : sc_results_add_search(run->run, s, &meta);
            sc_search_state_free(s);
            slot[k].s = NULL;
            n_closed++;
        }
        if (st) break;
        if (sc_interrupted()) {
            st = sc_errorf(SC_ERR_INTERRUPTED, "stopped by a signal after %s (checkpointed in %s/checkpoints); continue with --resume", names,
                           sc_run_dir(run->run));
            break;
        }
        if (run->poll && (st = run->poll(run->dist_ctx))) break;
    }
done:
    if (tok) for (int i = 0; i < n_train; i++) free(tok[i]);
    if (slot) for (int k = 0; k < n_slots; k++) { sc_search_state_free(slot[k].s); free(slot[k].order); }
    free(tok); free(tok_len); free(mine); free(slot); free(items); free(bp); free(bl); free(bi);
    sc_search_work_free(work);
    return st;
}
