// extract.c — direction extraction: a capture hook that sums each block's output in double,
// base and adapted teacher-forced passes over the same sequences, the base model's sampled
// continuations, and the results-file / export side (see steerclear/extract.h).
// Leaves out: spreading searches over MPI ranks; partial reuse of stored continuations
// (sampling is seeded, so a re-run draws the same ones).
#include "steerclear/extract.h"
#include "steerclear/dataset.h"
#include "steerclear/export.h"
#include "steerclear/generate.h"
#include "steerclear/tok.h"

#include <cjson/cJSON.h>
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

// Column sums of h [T,C] added into sum [C] in double; each column is summed in row order, so
// the result does not depend on the number of threads.
static void add_column_sums(double *sum, const float *h, int T, int C) {
    const int cb = 64;
    #pragma omp parallel for schedule(static) if ((size_t)T * C >= ((size_t)1 << 16))
    for (int c0 = 0; c0 < C; c0 += cb) {
        int c1 = c0 + cb < C ? c0 + cb : C;
        for (int t = 0; t < T; t++) {
            const float *row = h + (size_t)t * C;
            for (int c = c0; c < c1; c++) sum[c] += row[c];
        }
    }
}

typedef struct {
    const sc_hook *inner;          // applied first (the adapter), NULL for the base model
    double *sum;                   // (L, C) sums of the block outputs, NULL: not recorded
    sc_adapter *const *adapters;   // update-mean: the adapters evaluated on these outputs
    int n_adapters;
    double *upd_sum;               // (n_adapters, L, C)
    float *upd;                    // (T, C) scratch
    int L;
} capture;

static sc_status capture_forward(void *user, int block, float *h, int T, int C, const sc_batch *batch) {
    capture *cp = user;
    if (cp->inner && cp->inner->forward) SC_TRY(cp->inner->forward(cp->inner->user, block, h, T, C, batch));
    if (cp->sum) add_column_sums(cp->sum + (size_t)block * C, h, T, C);
    for (int a = 0; a < cp->n_adapters; a++) {
        SC_TRY(sc_adapter_update(cp->adapters[a], block, h, T, cp->upd));
        add_column_sums(cp->upd_sum + ((size_t)a * cp->L + block) * C, cp->upd, T, C);
    }
    return SC_OK;
}

// --- Directions -------------------------------------------------------------------------------

sc_status sc_directions_compute(const sc_model *m, const sc_backend *be, sc_adapter *const *adapters, int n_adapters,
                                sc_direction_mode mode, const int32_t *const *seqs, const int *seq_len, int n_seqs,
                                int batch_seqs, float *dirs, int64_t *n_tokens) {
    const int L = m->cfg.n_layers, C = m->cfg.hidden;
    if (!m->has_embed || !m->has_head || m->first != 0 || m->last != L)
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

    const size_t LC = (size_t)L * C;
    sc_status st = SC_OK;
    double *base_sum = calloc(LC, sizeof(double)), *ad_sum = calloc(LC * (size_t)n_adapters, sizeof(double));
    float *hidden = malloc(sizeof(float) * (size_t)max_T * C + 64);
    float *upd = mode == SC_DIRECTION_UPDATE_MEAN ? malloc(sizeof(float) * (size_t)max_T * C + 64) : NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)max_T);
    int *seq_start = malloc(sizeof(int) * (size_t)(batch_seqs + 1));
    if (!base_sum || !ad_sum || !hidden || !ids || !seq_start || (mode == SC_DIRECTION_UPDATE_MEAN && !upd)) {
        st = sc_errorf(SC_ERR_MEM, "directions: out of memory for a batch of %d tokens", max_T);
        goto done;
    }
    for (int b0 = 0; b0 < n_seqs && !st; b0 += batch_seqs) {
        int nb = n_seqs - b0 < batch_seqs ? n_seqs - b0 : batch_seqs;
        seq_start[0] = 0;
        for (int i = 0; i < nb; i++) {
            memcpy(ids + seq_start[i], seqs[b0 + i], sizeof(int32_t) * (size_t)seq_len[b0 + i]);
            seq_start[i + 1] = seq_start[i] + seq_len[b0 + i];
        }
        sc_batch batch = {.n_seq = nb, .seq_start = seq_start};
        if (mode == SC_DIRECTION_UPDATE_MEAN) {
            capture cp = {.adapters = adapters, .n_adapters = n_adapters, .upd_sum = ad_sum, .upd = upd, .L = L};
            sc_hook hk = {.user = &cp, .forward = capture_forward};
            if ((st = sc_forward(m, be, &batch, ids, hidden, NULL, &hk, NULL))) break;
        } else {
            capture cp = {.sum = base_sum, .L = L};
            sc_hook hk = {.user = &cp, .forward = capture_forward};
            if ((st = sc_forward(m, be, &batch, ids, hidden, NULL, &hk, NULL))) break;
            for (int a = 0; a < n_adapters; a++) {
                sc_hook inner = sc_adapter_hook(adapters[a]);
                capture ca = {.inner = &inner, .sum = ad_sum + LC * (size_t)a, .L = L};
                sc_hook ha = {.user = &ca, .forward = capture_forward};
                if ((st = sc_forward(m, be, &batch, ids, hidden, NULL, &ha, NULL))) break;
            }
        }
    }
    if (st) goto done;
    // mean of differences = difference of the double sums / N (the sums are linear)
    for (int a = 0; a < n_adapters; a++)
        for (size_t i = 0; i < LC; i++) {
            double v = ad_sum[LC * (size_t)a + i] - (mode == SC_DIRECTION_ACTIVATION_DIFF ? base_sum[i] : 0.0);
            dirs[LC * (size_t)a + i] = (float)(v / (double)total);
        }
    *n_tokens = total;
done:
    free(base_sum); free(ad_sum); free(hidden); free(upd); free(ids); free(seq_start);
    return st;
}

// --- Results file -----------------------------------------------------------------------------

#define SC_MAX_SEARCH_INDEX 10000   // /searches/NNNN: four digits

sc_status sc_results_list_searches(sc_h5 *h, int **searches, int *n) {
    *searches = NULL;
    *n = 0;
    if (!sc_h5_exists(h, "/searches")) return SC_OK;
    int cap = 16, cnt = 0;
    int *v = malloc(sizeof(int) * (size_t)cap);
    if (!v) return sc_errorf(SC_ERR_MEM, "out of memory");
    for (int s = 0; s < SC_MAX_SEARCH_INDEX; s++) {
        char grp[64];
        snprintf(grp, sizeof grp, "/searches/%04d", s);
        if (!sc_h5_exists(h, grp)) continue;
        if (cnt == cap) {
            int *nv = realloc(v, sizeof(int) * (size_t)(cap *= 2));
            if (!nv) { free(v); return sc_errorf(SC_ERR_MEM, "out of memory"); }
            v = nv;
        }
        v[cnt++] = s;
    }
    *searches = v;
    *n = cnt;
    return SC_OK;
}

sc_status sc_results_load_adapter(sc_h5 *h, int search, int n_layers, int C, sc_adapter **out) {
    char grp[64], pa[96], pb[96];
    snprintf(grp, sizeof grp, "/searches/%04d", search);
    snprintf(pa, sizeof pa, "%s/adapter/A", grp);
    snprintf(pb, sizeof pb, "%s/adapter/B", grp);
    const char *file = sc_h5_filename(h);
    if (!sc_h5_exists(h, grp))
        return sc_errorf(SC_ERR_ARG, "%s: search %d is not in the file (no group %s); run it first or leave it out of --searches", file, search, grp);
    char *kind_s = NULL;
    int64_t rank = 0;
    double scaling = 0;
    SC_TRY(sc_h5_read_attr_str(h, grp, "adapter", &kind_s));
    sc_adapter_kind kind;
    sc_status st = sc_adapter_kind_parse(kind_s, &kind);
    free(kind_s);
    if (st) return sc_error_wrap(st, "%s: %s attr adapter: ", file, grp);
    SC_TRY(sc_h5_read_attr_i64(h, grp, "rank", &rank));
    SC_TRY(sc_h5_read_attr_f64(h, grp, "scaling", &scaling));
    float *A = NULL, *B = NULL;
    int nda = 0, ndb = 0;
    int64_t da[SC_H5_MAX_DIMS], db[SC_H5_MAX_DIMS];
    SC_TRY(sc_h5_read_f32(h, pa, &A, &nda, da));
    if ((st = sc_h5_read_f32(h, pb, &B, &ndb, db))) { free(A); return st; }
    const int64_t sets = kind == SC_ADAPTER_SHARED ? 1 : n_layers;
    if (nda != 3 || da[0] != sets || da[1] != C || da[2] != rank) {
        st = sc_errorf(SC_ERR_SHAPE, "%s: %s has %d dims [%lld,%lld,%lld], expected [%lld,%d,%lld] for a %s rank-%lld adapter on a model of %d blocks and hidden size %d; was the search run with another model?",
                       file, pa, nda, (long long)da[0], (long long)(nda > 1 ? da[1] : 0), (long long)(nda > 2 ? da[2] : 0),
                       (long long)sets, C, (long long)rank, sc_adapter_kind_name(kind), (long long)rank, n_layers, C);
    } else if (ndb != 3 || db[0] != sets || db[1] != rank || db[2] != C) {
        st = sc_errorf(SC_ERR_SHAPE, "%s: %s has %d dims [%lld,%lld,%lld], expected [%lld,%lld,%d]",
                       file, pb, ndb, (long long)db[0], (long long)(ndb > 1 ? db[1] : 0), (long long)(ndb > 2 ? db[2] : 0),
                       (long long)sets, (long long)rank, C);
    }
    sc_adapter *a = NULL;
    if (!st) st = sc_adapter_create(kind, n_layers, C, (int)rank, (float)scaling, &a);
    if (!st) {
        memcpy(a->A, A, sizeof(float) * sc_adapter_numel_A(a));
        memcpy(a->B, B, sizeof(float) * sc_adapter_numel_B(a));
        *out = a;
    }
    free(A); free(B);
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
    o->export_files = 1;
}

uint64_t sc_results_run_seed(const char *config_json) {
    uint64_t seed = 1234;
    cJSON *cfg = config_json ? cJSON_Parse(config_json) : NULL;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "search"), "seed");
    if (cJSON_IsNumber(s) && s->valuedouble >= 0) seed = (uint64_t)s->valuedouble;
    cJSON_Delete(cfg);
    return seed;
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
static sc_status build_sequences(const sc_extract_opts *o, const sc_model *m, const sc_backend *be, const sc_tokenizer *tok,
                                 uint64_t seed, seq_list *out) {
    const char *paths[2] = {o->train_csv ? o->train_csv : "datasets/train.csv", o->test_csv ? o->test_csv : "datasets/test.csv"};
    const int use[2] = {o->use_train, o->use_test};
    sc_dataset ds[2] = {{0}};
    sc_status st = SC_OK;
    memset(out, 0, sizeof *out);
    int n = 0;
    for (int k = 0; k < 2; k++) {
        if (!use[k]) continue;
        if ((st = sc_dataset_load(paths[k], k ? SC_DATASET_TEST : SC_DATASET_TRAIN, &ds[k]))) goto done;
        n += (int)ds[k].n;
    }
    out->seq = calloc((size_t)n, sizeof(int32_t *));
    out->len = calloc((size_t)n, sizeof(int)); out->prompt_len = calloc((size_t)n, sizeof(int));
    out->set = calloc((size_t)n, sizeof(int32_t)); out->index = calloc((size_t)n, sizeof(int32_t));
    if (!out->seq || !out->len || !out->prompt_len || !out->set || !out->index) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    out->n = n;
    int i = 0;
    for (int k = 0; k < 2; k++)
        for (size_t r = 0; use[k] && r < ds[k].n; r++, i++) {
            const char *text = ds[k].items[r].full_prompt;
            size_t nt = 0;
            if ((st = sc_tok_encode(tok, text, strlen(text), &out->seq[i], &nt))) {
                sc_error_wrap(st, "%s line %d: ", paths[k], ds[k].items[r].line);
                goto done;
            }
            if (nt == 0) { st = sc_errorf(SC_ERR_FORMAT, "%s line %d: full_prompt encodes to no tokens", paths[k], ds[k].items[r].line); goto done; }
            out->prompt_len[i] = out->len[i] = (int)nt;
            out->set[i] = k;
            out->index[i] = (int32_t)r;
        }
    if (o->max_new_tokens <= 0) goto done;
    // continuations from the base model, stream = (set << 32) | row: the same text whichever sets are chosen
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_default(&so);
    sc_sample_opts_for_tokenizer(&so, tok, stops);
    so.max_new_tokens = o->max_new_tokens;
    so.temperature = o->temperature;
    so.top_k = o->top_k;
    so.top_p = o->top_p;
    so.seed = seed;
    const int gb = o->batch_seqs;
    uint64_t *streams = malloc(sizeof(uint64_t) * (size_t)gb);
    sc_gen_out *gen = calloc((size_t)gb, sizeof(sc_gen_out));
    if (!streams || !gen) { free(streams); free(gen); st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int b0 = 0; b0 < n && !st; b0 += gb) {
        int nb = n - b0 < gb ? n - b0 : gb;
        for (int j = 0; j < nb; j++) streams[j] = ((uint64_t)out->set[b0 + j] << 32) | (uint64_t)out->index[b0 + j];
        if ((st = sc_generate(m, be, (const int32_t *const *)(out->seq + b0), out->prompt_len + b0, nb, streams, NULL, &so, NULL, gen))) {
            sc_error_wrap(st, "sampling continuations from the base model: ");
            break;
        }
        for (int j = 0; j < nb && !st; j++) {
            int s = b0 + j;
            int32_t *grown = realloc(out->seq[s], sizeof(int32_t) * (size_t)(out->prompt_len[s] + gen[j].n + 1));
            if (!grown) st = sc_errorf(SC_ERR_MEM, "out of memory");
            else {
                out->seq[s] = grown;
                memcpy(grown + out->prompt_len[s], gen[j].ids, sizeof(int32_t) * (size_t)gen[j].n);
                out->len[s] = out->prompt_len[s] + gen[j].n;
            }
        }
        for (int j = 0; j < nb; j++) { free(gen[j].ids); gen[j].ids = NULL; }
        sc_log(SC_LOG_INFO, "extract: sampled continuations %d/%d", b0 + nb, n);
    }
    free(streams); free(gen);
done:
    sc_dataset_free(&ds[0]);
    sc_dataset_free(&ds[1]);
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

static sc_status write_results(const char *path, const sc_extract_opts *o, uint64_t seed, const int *all, int S, int L, int C,
                               const int *sel, int n_sel, const float *dirs, int64_t n_tokens, const seq_list *sq) {
    sc_h5 *h = NULL;
    SC_TRY(sc_h5_begin_update(path, &h));
    const size_t LC = (size_t)L * C;
    char settings[512], sets[16];
    settings_string(o, seed, settings, sizeof settings);
    snprintf(sets, sizeof sets, "%s%s%s", o->use_train ? "train" : "", o->use_train && o->use_test ? "," : "", o->use_test ? "test" : "");
    sc_status st = SC_OK;
    float *D = calloc(LC * (size_t)S + 1, sizeof(float));
    int64_t *counts = calloc((size_t)S + 1, sizeof(int64_t));
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)S + 1);
    int32_t *values = NULL;
    int64_t *lens = NULL;
    float *old = NULL;
    int64_t *old_counts = NULL;
    int32_t *old_idx = NULL;
    if (!D || !counts || !idx) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int s = 0; s < S; s++) idx[s] = all[s];
    // keep rows of an earlier extraction with the same settings and the same searches
    if (sc_h5_exists(h, "/directions") && sc_h5_exists(h, "/direction_searches") && sc_h5_exists(h, "/direction_token_counts")) {
        char *old_settings = NULL;
        int nd = 0, ni = 0, nc = 0;
        int64_t dd[SC_H5_MAX_DIMS], di[SC_H5_MAX_DIMS], dc[SC_H5_MAX_DIMS];
        if (sc_h5_read_attr_str(h, "/directions", "settings", &old_settings) == SC_OK && !strcmp(old_settings, settings) &&
            sc_h5_read_f32(h, "/directions", &old, &nd, dd) == SC_OK && sc_h5_read_i32(h, "/direction_searches", &old_idx, &ni, di) == SC_OK &&
            sc_h5_read_i64(h, "/direction_token_counts", &old_counts, &nc, dc) == SC_OK &&
            nd == 3 && dd[1] == L && dd[2] == C && ni == 1 && di[0] == dd[0] && nc == 1 && dc[0] == dd[0]) {
            for (int s = 0; s < S; s++)
                for (int64_t k = 0; k < dd[0]; k++)
                    if (old_idx[k] == all[s]) { memcpy(D + LC * (size_t)s, old + LC * (size_t)k, sizeof(float) * LC); counts[s] = old_counts[k]; }
        } else if (n_sel < S) {
            sc_log(SC_LOG_WARN, "%s: earlier directions were extracted with other settings; rows of searches not extracted now are zeroed", path);
        }
        free(old_settings);
        sc_error_clear();
    }
    for (int j = 0; j < n_sel; j++)
        for (int s = 0; s < S; s++)
            if (all[s] == sel[j]) { memcpy(D + LC * (size_t)s, dirs + LC * (size_t)j, sizeof(float) * LC); counts[s] = n_tokens; }
    int64_t d3[3] = {S, L, C}, d1[1] = {S};
#define W(call) do { if ((st = (call))) goto done; } while (0)
    W(sc_h5_write_f32(h, "/directions", 3, d3, D));
    W(sc_h5_write_i32(h, "/direction_searches", 1, d1, idx));
    W(sc_h5_write_i64(h, "/direction_token_counts", 1, d1, counts));
    W(sc_h5_attr_str(h, "/directions", "mode", sc_direction_mode_name(o->mode)));
    W(sc_h5_attr_str(h, "/directions", "sets", sets));
    W(sc_h5_attr_i64(h, "/directions", "max_new_tokens", o->max_new_tokens));
    W(sc_h5_attr_f64(h, "/directions", "temperature", o->temperature));
    W(sc_h5_attr_i64(h, "/directions", "top_k", o->top_k));
    W(sc_h5_attr_f64(h, "/directions", "top_p", o->top_p));
    W(sc_h5_attr_i64(h, "/directions", "seed", (int64_t)seed));
    W(sc_h5_attr_str(h, "/directions", "settings", settings));
    // the sampled continuations
    size_t total = 0;
    for (int i = 0; i < sq->n; i++) total += (size_t)(sq->len[i] - sq->prompt_len[i]);
    values = malloc(sizeof(int32_t) * (total + 1));
    lens = malloc(sizeof(int64_t) * ((size_t)sq->n + 1));
    if (!values || !lens) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    size_t at = 0;
    for (int i = 0; i < sq->n; i++) {
        lens[i] = sq->len[i] - sq->prompt_len[i];
        memcpy(values + at, sq->seq[i] + sq->prompt_len[i], sizeof(int32_t) * (size_t)lens[i]);
        at += (size_t)lens[i];
    }
    int64_t dn[1] = {sq->n};
    W(sc_h5_delete(h, "/extract"));
    W(sc_h5_append_ragged_i32(h, "/extract/continuations", values, lens, sq->n));
    W(sc_h5_write_i32(h, "/extract/prompt_set", 1, dn, sq->set));
    W(sc_h5_write_i32(h, "/extract/prompt_index", 1, dn, sq->index));
    W(sc_h5_attr_str(h, "/extract", "settings", settings));
#undef W
    st = sc_h5_commit(h);
    h = NULL;
done:
    if (h) sc_h5_close(h);
    free(D); free(counts); free(idx); free(values); free(lens); free(old); free(old_counts); free(old_idx);
    return st;
}

static sc_status export_one(const sc_extract_opts *o, const char *model_dir, int search, const sc_adapter *a,
                            const float *d, int L, int C, int64_t n_tokens) {
    char dir[4096], path[4200], mode[32], ntok[32];
    snprintf(dir, sizeof dir, "%s/directions", o->run_dir);
    SC_TRY(sc_mkdir_p(dir));
    snprintf(mode, sizeof mode, "%s", sc_direction_mode_name(o->mode));
    snprintf(ntok, sizeof ntok, "%lld", (long long)n_tokens);
    const char *keys[3] = {"steerclear.extract_mode", "steerclear.token_count", "steerclear.run"};
    const char *vals[3] = {mode, ntok, o->run_dir};
    sc_export_meta meta = {.model = base_name(model_dir), .search = search, .mode = sc_adapter_kind_name(a->kind),
                           .extra_keys = keys, .extra_values = vals, .n_extra = 3};
    snprintf(path, sizeof path, "%s/search_%04d.safetensors", dir, search);
    SC_TRY(sc_export_direction_safetensors(path, d, L, C, &meta));
    if (L >= 2) {
        snprintf(path, sizeof path, "%s/search_%04d.gguf", dir, search);
        SC_TRY(sc_export_direction_gguf(path, d, L, C, &meta));
    } else {
        sc_log(SC_LOG_WARN, "search %d: a one-block model cannot be written as a llama.cpp control vector; only the safetensors file", search);
    }
    return SC_OK;
}

sc_status sc_extract_run(const sc_extract_opts *o, const sc_backend *be) {
    if (!o->run_dir) return sc_errorf(SC_ERR_ARG, "extract: no run directory given (--run RUN_DIR)");
    if (!o->use_train && !o->use_test) return sc_errorf(SC_ERR_ARG, "extract: no prompt set chosen; use --sets train, test or train,test");
    if (o->batch_seqs < 1) return sc_errorf(SC_ERR_ARG, "extract: batch of %d sequences: must be at least 1", o->batch_seqs);
    if (o->max_new_tokens < 0) return sc_errorf(SC_ERR_ARG, "extract: max_new_tokens %d must not be negative", o->max_new_tokens);
    if (!(o->temperature > 0)) return sc_errorf(SC_ERR_ARG, "extract: temperature %g must be positive", (double)o->temperature);
    if (!(o->top_p > 0 && o->top_p <= 1)) return sc_errorf(SC_ERR_ARG, "extract: top_p %g must be in (0, 1]", (double)o->top_p);
    if (o->top_k < 0) return sc_errorf(SC_ERR_ARG, "extract: top_k %d must be 0 (off) or positive", o->top_k);
    char path[4096];
    snprintf(path, sizeof path, "%s/results.h5", o->run_dir);
    if (!sc_file_exists(path)) return sc_errorf(SC_ERR_IO, "%s does not exist: run `steerclear search` into this run directory first", path);

    sc_status st = SC_OK;
    sc_h5 *h = NULL;
    char *model_attr = NULL, *config = NULL;
    int *all = NULL, S = 0, n_sel = 0;
    int *sel = NULL;
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    sc_adapter **ads = NULL;
    float *dirs = NULL;
    seq_list sq = {0};
    int64_t n_tokens = 0;
    if ((st = sc_h5_open(path, 0, &h))) return st;
    if ((st = sc_results_list_searches(h, &all, &S))) goto done;
    if (S == 0) { st = sc_errorf(SC_ERR_ARG, "%s has no finished searches (no /searches/NNNN groups): run `steerclear search` first", path); goto done; }
    if (!o->model_dir && (st = sc_h5_read_attr_str(h, "/", "model", &model_attr))) { sc_error_wrap(st, "finding the model (or pass --model DIR): "); goto done; }
    if (sc_h5_read_attr_str(h, "/", "config", &config)) { config = NULL; sc_error_clear(); }
    const char *model_dir = o->model_dir ? o->model_dir : model_attr;
    const uint64_t seed = o->seed_set ? o->seed : sc_results_run_seed(config);
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
    // model and tokenizer
    if ((st = sc_model_load(model_dir, 0, -1, &m))) { sc_error_wrap(st, "loading the model for extraction: "); goto done; }
    const int L = m->cfg.n_layers, C = m->cfg.hidden;
    int64_t fl = 0, fc = 0;
    if (sc_h5_read_attr_i64(h, "/", "n_layers", &fl) == SC_OK && sc_h5_read_attr_i64(h, "/", "hidden_size", &fc) == SC_OK &&
        (fl != L || fc != C)) {
        st = sc_errorf(SC_ERR_SHAPE, "%s: the searches were run on a model with %lld blocks of hidden size %lld, but %s has %d of %d; pass the search's --model",
                       path, (long long)fl, (long long)fc, model_dir, L, C);
        goto done;
    }
    sc_error_clear();
    ads = calloc((size_t)n_sel, sizeof(sc_adapter *));
    dirs = malloc(sizeof(float) * (size_t)n_sel * L * C + 16);
    if (!ads || !dirs) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int j = 0; j < n_sel; j++)
        if ((st = sc_results_load_adapter(h, sel[j], L, C, &ads[j]))) goto done;
    sc_h5_close(h);
    h = NULL;
    char tpath[4200];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", model_dir);
    if ((st = sc_tok_load(tpath, &tok))) goto done;

    // sequences, then all directions
    double t0 = sc_now_seconds();
    if ((st = build_sequences(o, m, be, tok, seed, &sq))) goto done;
    double t1 = sc_now_seconds();
    sc_log(SC_LOG_INFO, "extract: %d sequences sampled in %.1f s; computing %s directions of %d searches",
           sq.n, t1 - t0, sc_direction_mode_name(o->mode), n_sel);
    if ((st = sc_directions_compute(m, be, ads, n_sel, o->mode, (const int32_t *const *)sq.seq, sq.len, sq.n, o->batch_seqs, dirs, &n_tokens))) goto done;
    sc_log(SC_LOG_INFO, "extract: directions over %lld tokens in %.1f s", (long long)n_tokens, sc_now_seconds() - t1);
    if ((st = write_results(path, o, seed, all, S, L, C, sel, n_sel, dirs, n_tokens, &sq))) goto done;
    for (int j = 0; j < n_sel && o->export_files; j++)
        if ((st = export_one(o, model_dir, sel[j], ads[j], dirs + (size_t)j * L * C, L, C, n_tokens))) goto done;
done:
    if (h) sc_h5_close(h);
    if (ads) for (int j = 0; j < n_sel; j++) sc_adapter_free(ads[j]);
    free(ads); free(dirs); free(all); free(sel); free(model_attr); free(config);
    seq_list_free(&sq);
    sc_tok_free(tok);
    sc_model_free(m);
    return st;
}
