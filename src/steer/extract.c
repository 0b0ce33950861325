// extract.c — direction extraction: a capture hook that sums each block's output in double
// (the backend's col_sum), base and adapted teacher-forced passes over the same sequences, the
// base model's sampled continuations, and the stage that writes them through the results
// module and exports them (see steerclear/extract.h).
// Leaves out: spreading searches over MPI ranks; partial reuse of stored continuations
// (sampling is seeded, so a re-run draws the same ones).
#include "steerclear/monitor.h"
#include "steerclear/extract.h"
#include "steerclear/export.h"
#include "steerclear/generate.h"
#include "steerclear/evaluate.h"

#include <stdlib.h>
#include <string.h>

const char *sc_direction_mode_name(sc_direction_mode m) {
    return m == SC_DIRECTION_UPDATE_MEAN ? "update-mean" : "activation-diff";
}

sc_status sc_direction_mode_parse(const char *s, sc_direction_mode *out) {
    if (!strcmp(s, "activation-diff")) *out = SC_DIRECTION_ACTIVATION_DIFF;
    else if (!strcmp(s, "update-mean")) *out = SC_DIRECTION_UPDATE_MEAN;
    else return sc_errorf(SC_ERR_ARG, "direction mode '%s' is not known: use 'activation-diff' or 'update-mean'", s);
    return SC_OK;
}

// --- Capture hook -----------------------------------------------------------------------------

typedef struct {
    const sc_hook *inner;          // applied first (the adapter), NULL for the base model
    double *sum;                   // (L, C) sums of the block outputs (backend memory), NULL: not recorded;
                                   // tagged batch: (tags, L, C), each run of sequences with tag t into sum t
    sc_adapter *const *adapters;   // update-mean: the adapters evaluated on these outputs
    int n_adapters;
    double *upd_sum;               // (n_adapters, L, C) backend memory
    float *upd;                    // (T, C) scratch, backend memory
    int L;
} capture;

static sc_status capture_forward(void *user, sc_backend *be, int block, float *h, int T, int C, const sc_batch *batch) {
    capture *cp = user;
    if (cp->inner && cp->inner->forward) SC_TRY(cp->inner->forward(cp->inner->user, be, block, h, T, C, batch));
    if (cp->sum && batch && batch->tag) {   // several adapters in one batch: each tag's rows into its own sums
        for (int i = 0; i < batch->n_seq;) {
            int j = i + 1;
            while (j < batch->n_seq && batch->tag[j] == batch->tag[i]) j++;
            const int r0 = batch->seq_start[i], rows = batch->seq_start[j] - r0;
            SC_TRY(be->op->col_sum(be, cp->sum + ((size_t)batch->tag[i] * cp->L + block) * C, h + (size_t)r0 * C, rows, C));
            i = j;
        }
    } else if (cp->sum) SC_TRY(be->op->col_sum(be, cp->sum + (size_t)block * C, h, T, C));
    for (int a = 0; a < cp->n_adapters; a++) {
        SC_TRY(sc_adapter_apply(cp->adapters[a], block, h, T, cp->upd, 0));
        SC_TRY(be->op->col_sum(be, cp->upd_sum + ((size_t)a * cp->L + block) * C, cp->upd, T, C));
    }
    return SC_OK;
}

// --- Directions -------------------------------------------------------------------------------

sc_status sc_directions_sums(const sc_model *m, sc_backend *be, sc_adapter *const *adapters, int n_adapters,
                             sc_direction_mode mode, const int32_t *const *seqs, const int *seq_len, int n_seqs,
                             int batch_seqs, int per_pass, const sc_direction_link *link, double *host_sums, int64_t *n_tokens) {
    const int L = m->cfg.n_layers, C = m->cfg.hidden;
    if (!link && (!m->has_embed || !m->has_head || m->first != 0 || m->last != L))
        return sc_errorf(SC_ERR_INTERNAL, "directions need the whole model, not the slice [%d,%d)", m->first, m->last);
    if (n_adapters < 1) return sc_errorf(SC_ERR_ARG, "directions: no adapters given");
    if (batch_seqs < 1) return sc_errorf(SC_ERR_ARG, "directions: batch of %d sequences: must be at least 1", batch_seqs);
    for (int a = 0; a < n_adapters; a++)
        if (adapters[a]->C != C || adapters[a]->n_layers != L)
            return sc_errorf(SC_ERR_SHAPE, "directions: adapter %d is for %d blocks of hidden size %d, the model has %d of %d",
                             a, adapters[a]->n_layers, adapters[a]->C, L, C);
    int64_t total = 0;
    int max_T = 0;
    for (int b0 = 0; b0 < n_seqs; b0 += batch_seqs) {
        int T = 0;
        for (int s = b0; s < n_seqs && s < b0 + batch_seqs; s++) {
            if (seq_len[s] <= 0) return sc_errorf(SC_ERR_ARG, "directions: sequence %d is empty", s);
            T += seq_len[s];
        }
        if (T > max_T) max_T = T;
        total += T;
    }
    if (total == 0) return sc_errorf(SC_ERR_ARG, "directions: no tokens to average over (no sequences given)");
    // adapters per forward pass (activation-diff): as asked, else all while their hidden rows and
    // the pass's workspace fit half of what the budget leaves; on a pipeline stage (link) one, so
    // that every stage runs the same passes
    int K = mode == SC_DIRECTION_ACTIVATION_DIFF && !link ? (per_pass > 0 && per_pass < n_adapters ? per_pass : n_adapters) : 1;
    if (K > 1 && per_pass <= 0) {
        const double avail = be->memory_budget > be->stats.bytes_live ? (double)(be->memory_budget - be->stats.bytes_live) : 0.0;
        while (K > 1 && (double)K * max_T * C * sizeof(float) + (double)sc_forward_workspace_estimate(m, K * max_T) > avail / 2) K--;
    }

    const size_t LC = (size_t)L * C;
    const sc_backend_ops *op = be->op;
    // sums (backend memory, double): the base model's, then each adapter's
    double *sums = NULL, *base_sum, *ad_sum;
    float *hidden = NULL, *upd = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)K * max_T);
    int *seq_start = malloc(sizeof(int) * ((size_t)K * batch_seqs + 1)), *tags = malloc(sizeof(int) * (size_t)K * batch_seqs);
    sc_status st = op->alloc(be, sizeof(double) * LC * (size_t)(n_adapters + 1), "direction sums", (void **)&sums);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)K * max_T * C * (mode == SC_DIRECTION_UPDATE_MEAN ? 2 : 1), "direction hidden rows", &hidden);
    if (!st && (!ids || !seq_start || !tags)) st = sc_errorf(SC_ERR_MEM, "directions: out of memory for a batch of %d tokens", max_T);
    if (!st) st = op->memset(be, sums, 0, sizeof(double) * LC * (size_t)(n_adapters + 1));
    if (st) goto done;
    base_sum = sums;
    ad_sum = sums + LC;
    if (mode == SC_DIRECTION_UPDATE_MEAN) upd = hidden + (size_t)max_T * C;
    // on a pipeline stage (link): each pass's rows come from the stage before and go to the next
#define PASS(bt, hook) do { \
        const size_t rows_ = (size_t)(bt)->seq_start[(bt)->n_seq]; \
        if (link && !m->has_embed && (st = link->recv(link->ctx, hidden, rows_ * C))) break; \
        if ((st = sc_forward(m, be, (bt), ids, hidden, NULL, (hook), NULL))) break; \
        if (link && m->last != L && (st = link->send(link->ctx, hidden, rows_ * C))) break; \
    } while (0)
    for (int b0 = 0; b0 < n_seqs && !st; b0 += batch_seqs) {
        int nb = n_seqs - b0 < batch_seqs ? n_seqs - b0 : batch_seqs;
        if (link && link->proceed && (st = link->proceed(link->ctx))) break;
        seq_start[0] = 0;
        for (int i = 0; i < nb; i++) {
            memcpy(ids + seq_start[i], seqs[b0 + i], sizeof(int32_t) * (size_t)seq_len[b0 + i]);
            seq_start[i + 1] = seq_start[i] + seq_len[b0 + i];
        }
        sc_batch batch = {.n_seq = nb, .seq_start = seq_start};
        if (mode == SC_DIRECTION_UPDATE_MEAN) {
            capture cp = {.adapters = adapters, .n_adapters = n_adapters, .upd_sum = ad_sum, .upd = upd, .L = L};
            sc_hook hk = {.user = &cp, .forward = capture_forward};
            PASS(&batch, &hk);
            if (st) break;
        } else {
            capture cp = {.sum = base_sum, .L = L};
            sc_hook hk = {.user = &cp, .forward = capture_forward};
            PASS(&batch, &hk);
            if (st) break;
            // the adapted model: the batch's sequences once per adapter, K adapters per pass, each
            // copy tagged with its adapter (sc_adapter_group_hook) and summed into its own sums
            const int T = seq_start[nb];
            for (int a0 = 0; a0 < n_adapters && !st; a0 += K) {
                const int k = n_adapters - a0 < K ? n_adapters - a0 : K;
                for (int c = 1; c < k; c++) {
                    memcpy(ids + (size_t)c * T, ids, sizeof(int32_t) * (size_t)T);
                    for (int i = 0; i < nb; i++) seq_start[c * nb + i + 1] = c * T + seq_start[i + 1];
                }
                for (int c = 0; c < k; c++)
                    for (int i = 0; i < nb; i++) tags[c * nb + i] = c;
                sc_adapter_group group = {.adapters = adapters + a0, .n = k};
                sc_hook inner = sc_adapter_group_hook(&group);
                capture ca = {.inner = &inner, .sum = ad_sum + LC * (size_t)a0, .L = L};
                sc_hook ha = {.user = &ca, .forward = capture_forward};
                sc_batch bk = {.n_seq = k * nb, .seq_start = seq_start, .tag = tags};
                PASS(&bk, &ha);
            }
        }
    }
#undef PASS
    if (st) goto done;
    if ((st = op->download(be, host_sums, sums, sizeof(double) * LC * (size_t)(n_adapters + 1)))) goto done;
    *n_tokens = total;
done:
    op->free(be, sums);
    op->free(be, hidden);
    free(ids); free(seq_start); free(tags);
    return st;
}

void sc_directions_finish(const double *host_sums, int n_adapters, int L, int C, sc_direction_mode mode, int64_t total,
                          float *dirs, float *base_means, float *adapted_means) {
    const size_t LC = (size_t)L * C;
    // mean of differences = difference of the double sums / N (the sums are linear)
    for (int a = 0; a < n_adapters; a++)
        for (size_t i = 0; i < LC; i++) {
            double v = host_sums[LC * (size_t)(a + 1) + i] - (mode == SC_DIRECTION_ACTIVATION_DIFF ? host_sums[i] : 0.0);
            dirs[LC * (size_t)a + i] = (float)(v / (double)total);
        }
    if (mode == SC_DIRECTION_ACTIVATION_DIFF) {
        for (size_t i = 0; base_means && i < LC; i++) base_means[i] = (float)(host_sums[i] / (double)total);
        for (size_t i = 0; adapted_means && i < LC * (size_t)n_adapters; i++) adapted_means[i] = (float)(host_sums[LC + i] / (double)total);
    }
}

sc_status sc_directions_compute(const sc_model *m, sc_backend *be, sc_adapter *const *adapters, int n_adapters,
                                sc_direction_mode mode, const int32_t *const *seqs, const int *seq_len, int n_seqs,
                                int batch_seqs, int per_pass, float *dirs, int64_t *n_tokens, float *base_means, float *adapted_means) {
    const int L = m->cfg.n_layers, C = m->cfg.hidden;
    double *host_sums = malloc(sizeof(double) * (size_t)L * C * (size_t)(n_adapters > 0 ? n_adapters + 1 : 1));
    if (!host_sums) return sc_errorf(SC_ERR_MEM, "directions: out of memory for the sums of %d adapters", n_adapters);
    int64_t total = 0;
    sc_status st = sc_directions_sums(m, be, adapters, n_adapters, mode, seqs, seq_len, n_seqs, batch_seqs, per_pass, NULL, host_sums, &total);
    if (!st) {
        sc_directions_finish(host_sums, n_adapters, L, C, mode, total, dirs, base_means, adapted_means);
        *n_tokens = total;
    }
    free(host_sums);
    return st;
}

// --- The stage --------------------------------------------------------------------------------

void sc_extract_opts_default(sc_extract_opts *o) {
    memset(o, 0, sizeof *o);
    o->use_train = o->use_test = 1;
    o->mode = SC_DIRECTION_ACTIVATION_DIFF;
    o->max_new_tokens = 50;
    o->temperature = 0.7f;
    o->top_k = 50;
    o->top_p = 0.9f;
    o->seed = 1234;
    o->batch_seqs = 16;
    o->searches_per_pass = 1;   // one search per pass: a direction's bits never depend on which searches are extracted together
    o->export_files = 1;
}

static const char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    static _Thread_local char buf[1024];
    snprintf(buf, sizeof buf, "%.*s", (int)n, path);
    char *slash = strrchr(buf, '/');
    return slash && slash[1] ? slash + 1 : buf;
}

typedef struct {
    int n;                 // sequences
    int32_t **seq;         // prompt + continuation
    int *len, *prompt_len;
    int32_t *set, *index;  // 0 train / 1 test, row in the set
} seq_list;

static void seq_list_free(seq_list *s) {
    if (s->seq) for (int i = 0; i < s->n; i++) free(s->seq[i]);
    free(s->seq); free(s->len); free(s->prompt_len); free(s->set); free(s->index);
    memset(s, 0, sizeof *s);
}

// Tokenize the prompts of the chosen sets and append a base-model continuation to each.
static sc_status build_sequences(const sc_extract_opts *o, const sc_stage *stage, uint64_t seed, seq_list *out) {
    const sc_dataset *ds[2] = {&stage->train, &stage->test};
    const char *paths[2] = {stage->train_csv, stage->test_csv};
    const int use[2] = {o->use_train, o->use_test};
    sc_status st = SC_OK;
    memset(out, 0, sizeof *out);
    int n = 0;
    for (int k = 0; k < 2; k++) if (use[k]) n += (int)ds[k]->n;
    if (n == 0) return sc_errorf(SC_ERR_ARG, "extract: the chosen prompt sets are empty or were not loaded");
    out->seq = calloc((size_t)n, sizeof(int32_t *));
    out->len = calloc((size_t)n, sizeof(int)); out->prompt_len = calloc((size_t)n, sizeof(int));
    out->set = calloc((size_t)n, sizeof(int32_t)); out->index = calloc((size_t)n, sizeof(int32_t));
    if (!out->seq || !out->len || !out->prompt_len || !out->set || !out->index) { seq_list_free(out); return sc_errorf(SC_ERR_MEM, "out of memory"); }
    out->n = n;
    int i = 0, max_prompt = 1;
    for (int k = 0; k < 2; k++)
        for (size_t r = 0; use[k] && r < ds[k]->n; r++, i++) {
            const char *text = ds[k]->items[r].full_prompt;
            size_t nt = 0;
            if ((st = sc_tok_encode(stage->tok, text, strlen(text), &out->seq[i], &nt))) {
                sc_error_wrap(st, "%s line %d: ", paths[k], ds[k]->items[r].line);
                goto done;
            }
            if (nt == 0) { st = sc_errorf(SC_ERR_FORMAT, "%s line %d: full_prompt encodes to no tokens", paths[k], ds[k]->items[r].line); goto done; }
            char what[4200];
            snprintf(what, sizeof what, "%s line %d", paths[k], ds[k]->items[r].line);
            if ((st = sc_gen_check_context(stage->model, (int)nt, o->max_new_tokens, what))) goto done;
            out->prompt_len[i] = out->len[i] = (int)nt;
            if ((int)nt > max_prompt) max_prompt = (int)nt;
            out->set[i] = k;
            out->index[i] = (int32_t)r;
        }
    if (o->max_new_tokens <= 0) goto done;
    // continuations from the base model, stream = (set << 32) | row: the same text whichever sets are chosen
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_make(&so, stage->tok, stops, o->max_new_tokens, o->temperature, o->top_k, o->top_p, seed);
    const int gb = o->batch_seqs < n ? o->batch_seqs : n;
    if (stage->generate) {   // on a pipeline (src/dist): one base variant, the same batches
        uint64_t *ss = malloc(sizeof(uint64_t) * (size_t)n);
        sc_gen_out *go = calloc((size_t)n, sizeof *go);
        sc_eval_variant base = {.kind = SC_EVAL_BASE};
        if (!ss || !go) st = sc_errorf(SC_ERR_MEM, "out of memory");
        for (int s = 0; !st && s < n; s++) ss[s] = ((uint64_t)out->set[s] << 32) | (uint64_t)out->index[s];
        if (!st && (st = stage->generate(stage->generate_ctx, &base, 1, (const int32_t *const *)out->seq, out->prompt_len, n, ss, &so, gb, go)))
            sc_error_wrap(st, "sampling continuations from the base model: ");
        for (int s = 0; !st && s < n; s++) {
            int32_t *grown = realloc(out->seq[s], sizeof(int32_t) * (size_t)(out->prompt_len[s] + go[s].n + 1));
            if (!grown) { st = sc_errorf(SC_ERR_MEM, "out of memory"); break; }
            out->seq[s] = grown;
            memcpy(grown + out->prompt_len[s], go[s].ids, sizeof(int32_t) * (size_t)go[s].n);
            out->len[s] = out->prompt_len[s] + go[s].n;
        }
        for (int s = 0; go && s < n; s++) free(go[s].ids);
        free(go); free(ss);
        goto done;
    }
    sc_gen_plan plan = {.max_seqs = gb, .max_prompt = max_prompt, .max_new = o->max_new_tokens};
    sc_generator *G = NULL;
    uint64_t *streams = malloc(sizeof(uint64_t) * (size_t)gb);
    if (!streams) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    if ((st = sc_generator_create(stage->model, stage->be, &plan, &G))) { free(streams); goto done; }
    sc_monitor_progress("extract: sampling continuations", 0, n, "sequences");
    for (int b0 = 0; b0 < n && !st; b0 += gb) {
        int nb = n - b0 < gb ? n - b0 : gb;
        for (int j = 0; j < nb; j++) streams[j] = ((uint64_t)out->set[b0 + j] << 32) | (uint64_t)out->index[b0 + j];
        if ((st = sc_generator_run(G, (const int32_t *const *)(out->seq + b0), out->prompt_len + b0, nb, streams, NULL, &so, NULL))) {
            sc_error_wrap(st, "sampling continuations from the base model: ");
            break;
        }
        for (int j = 0; j < nb && !st; j++) {
            int s = b0 + j, k = 0;
            const int32_t *gen = sc_gen_output(G->gen, j, &k, NULL);
            int32_t *grown = realloc(out->seq[s], sizeof(int32_t) * (size_t)(out->prompt_len[s] + k + 1));
            if (!grown) st = sc_errorf(SC_ERR_MEM, "out of memory");
            else {
                out->seq[s] = grown;
                memcpy(grown + out->prompt_len[s], gen, sizeof(int32_t) * (size_t)k);
                out->len[s] = out->prompt_len[s] + k;
            }
        }
        sc_monitor_progress("extract: sampling continuations", b0 + nb, n, "sequences");
    }
    free(streams);
    sc_generator_free(G);
done:
    if (st) seq_list_free(out);
    return st;
}

// The settings that make two extractions comparable (rows of another run are kept only when equal).
static void settings_string(const sc_extract_opts *o, uint64_t seed, char *buf, size_t n) {
    snprintf(buf, n, "mode=%s sets=%s%s%s max_new_tokens=%d temperature=%.9g top_k=%d top_p=%.9g seed=%llu",
             sc_direction_mode_name(o->mode), o->use_train ? "train" : "", o->use_train && o->use_test ? "," : "",
             o->use_test ? "test" : "", o->max_new_tokens, (double)o->temperature, o->top_k, (double)o->top_p,
             (unsigned long long)seed);
}

static sc_status export_one(const sc_extract_opts *o, sc_run *run, const char *model_dir, int search, const sc_adapter *a,
                            const float *d, int L, int C, int64_t n_tokens) {
    char path[4200], mode[32], ntok[32];
    snprintf(mode, sizeof mode, "%s", sc_direction_mode_name(o->mode));
    snprintf(ntok, sizeof ntok, "%lld", (long long)n_tokens);
    const char *keys[3] = {"steerclear.extract_mode", "steerclear.token_count", "steerclear.run"};
    const char *vals[3] = {mode, ntok, sc_run_dir(run)};
    sc_export_meta meta = {.model = base_name(model_dir), .search = search, .mode = sc_adapter_kind_name(a->kind),
                           .extra_keys = keys, .extra_values = vals, .n_extra = 3};
    SC_TRY(sc_run_export_path(run, search, "safetensors", path, sizeof path));
    SC_TRY(sc_export_direction_safetensors(path, d, L, C, &meta));
    if (L >= 2) {
        SC_TRY(sc_run_export_path(run, search, "gguf", path, sizeof path));
        SC_TRY(sc_export_direction_gguf(path, d, L, C, &meta));
    } else {
        sc_log(SC_LOG_WARN, "search %d: a one-block model cannot be written as a llama.cpp control vector; only the safetensors file", search);
    }
    return SC_OK;
}

sc_status sc_extract_run(sc_stage *stage, const sc_extract_opts *o) {
    if (!o->use_train && !o->use_test) return sc_errorf(SC_ERR_ARG, "extract: no prompt set chosen; use --sets train, test or train,test");
    if (o->batch_seqs < 1) return sc_errorf(SC_ERR_ARG, "extract: batch of %d sequences: must be at least 1", o->batch_seqs);
    if (o->max_new_tokens < 0) return sc_errorf(SC_ERR_ARG, "extract: max_new_tokens %d must not be negative", o->max_new_tokens);
    if (!(o->temperature > 0)) return sc_errorf(SC_ERR_ARG, "extract: temperature %g must be positive", (double)o->temperature);
    if (!(o->top_p > 0 && o->top_p <= 1)) return sc_errorf(SC_ERR_ARG, "extract: top_p %g must be in (0, 1]", (double)o->top_p);
    if (o->top_k < 0) return sc_errorf(SC_ERR_ARG, "extract: top_k %d must be 0 (off) or positive", o->top_k);
    if (!stage->model) return sc_errorf(SC_ERR_INTERNAL, "extract: the stage context has no model");
    sc_run *run = stage->run;
    char path[4096];
    SC_TRY(sc_run_path(run, "results.h5", path, sizeof path));
    if (!sc_results_exists(run)) return sc_errorf(SC_ERR_IO, "%s does not exist: run `steerclear search` into this run directory first", path);

    sc_status st = SC_OK;
    sc_results_meta meta = {0};
    int *all = NULL, S = 0, n_sel = 0;
    int *sel = NULL;
    sc_adapter **ads = NULL;
    float *dirs = NULL, *means = NULL;   // means: base [L][C], then each search's adapted [L][C]
    seq_list sq = {0};
    int64_t n_tokens = 0;
    if ((st = sc_results_list_searches(run, &all, &S))) goto done;
    if (S == 0) { st = sc_errorf(SC_ERR_ARG, "%s has no finished searches (no /searches/NNNN groups): run `steerclear search` first", path); goto done; }
    if ((st = sc_results_read_meta(run, &meta))) goto done;
    const uint64_t seed = o->seed_set ? o->seed : sc_results_run_seed(meta.config_json);
    // the searches to extract
    n_sel = o->searches ? o->n_searches : S;
    sel = malloc(sizeof(int) * (size_t)(n_sel + 1));
    if (!sel) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int j = 0; j < n_sel; j++) {
        sel[j] = o->searches ? o->searches[j] : all[j];
        int found = 0;
        for (int s = 0; s < S; s++) found |= all[s] == sel[j];
        if (!found) { st = sc_errorf(SC_ERR_ARG, "%s: search %d is not finished in this run (%d finished searches); leave it out of --searches", path, sel[j], S); goto done; }
        for (int k = 0; k < j; k++)
            if (sel[k] == sel[j]) { st = sc_errorf(SC_ERR_ARG, "--searches lists search %d twice", sel[j]); goto done; }
    }
    const sc_model *m = stage->model;
    const int L = m->cfg.n_layers, C = m->cfg.hidden;
    if (meta.n_layers && meta.hidden && (meta.n_layers != L || meta.hidden != C)) {
        st = sc_errorf(SC_ERR_SHAPE, "%s: the searches were run on a model with %lld blocks of hidden size %lld, but %s has %d of %d; pass the search's --model",
                       path, (long long)meta.n_layers, (long long)meta.hidden, stage->model_dir, L, C);
        goto done;
    }
    ads = calloc((size_t)n_sel, sizeof(sc_adapter *));
    dirs = malloc(sizeof(float) * (size_t)n_sel * L * C + 16);
    means = malloc(sizeof(float) * (size_t)(n_sel + 1) * L * C + 16);
    if (!ads || !dirs || !means) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int j = 0; j < n_sel; j++)
        if ((st = sc_results_load_adapter(run, stage->be, sel[j], L, C, &ads[j]))) goto done;

    // sequences, then all directions
    double t0 = sc_now_seconds();
    if ((st = build_sequences(o, stage, seed, &sq))) goto done;
    double t1 = sc_now_seconds();
    sc_log(SC_LOG_INFO, "extract: %d sequences sampled in %.1f s; computing %s directions of %d searches",
           sq.n, t1 - t0, sc_direction_mode_name(o->mode), n_sel);
    if ((st = o->compute ? o->compute(o->compute_ctx, ads, n_sel, o->mode, (const int32_t *const *)sq.seq, sq.len, sq.n, o->batch_seqs, dirs, &n_tokens,
                                      means, means + (size_t)L * C)
                         : sc_directions_compute(m, stage->be, ads, n_sel, o->mode, (const int32_t *const *)sq.seq, sq.len, sq.n, o->batch_seqs,
                                                 o->searches_per_pass, dirs, &n_tokens, means, means + (size_t)L * C))) goto done;
   sc_log(SC_LOG_INFO, "extract: directions over %lld tokens in %.1f s", (long long)n_tokens, sc_now_seconds() - t1);
    char settings[512], sets[16];
    settings_string(o, seed, settings, sizeof settings);
    snprintf(sets, sizeof sets, "%s%s%s", o->use_train ? "train" : "", o->use_train && o->use_test ? "," : "", o->use_test ? "test" : "");
    sc_directions_record rec = {
        .mode = sc_direction_mode_name(o->mode), .sets = sets, .settings = settings,
        .max_new_tokens = o->max_new_tokens, .top_k = o->top_k, .temperature = o->temperature, .top_p = o->top_p, .seed = seed,
        .L = L, .C = C, .searches = sel, .n = n_sel, .dirs = dirs, .n_tokens = n_tokens,
        .n_seqs = sq.n, .seq = sq.seq, .len = sq.len, .prompt_len = sq.prompt_len, .set = sq.set, .index = sq.index,
        .base_means = o->mode == SC_DIRECTION_ACTIVATION_DIFF ? means : NULL,
        .adapted_means = o->mode == SC_DIRECTION_ACTIVATION_DIFF ? means + (size_t)L * C : NULL,
    };
    if ((st = sc_results_write_directions(run, &rec))) goto done;
    for (int j = 0; j < n_sel && o->export_files; j++)
        if ((st = export_one(o, run, stage->model_dir, sel[j], ads[j], dirs + (size_t)j * L * C, L, C, n_tokens))) goto done;
done:
    if (ads) for (int j = 0; j < n_sel; j++) sc_adapter_free(ads[j]);
    free(ads); free(dirs); free(means); free(all); free(sel);
    sc_results_meta_free(&meta);
    seq_list_free(&sq);
    return st;
}
