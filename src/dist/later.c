// later.c — the later stages on search group 0's pipeline (dist.h), rank 0 driving, the other
// stages of group 0 serving (sc_dist_serve) after the search:
//  - generation (evaluate, quantify, the extract stage's sampling): rank 0 broadcasts the
//    variants (adapters, directions, scales), prompts, streams and sampling settings; every stage
//    runs sc_evaluate_generate's chunks through sc_gen + sc_gen_stage with the evaluation hook on
//    its own blocks (rows stage to stage, tokens from the last stage to all);
//  - the extract stage's activation sums: rank 0 broadcasts the sequences and the adapters; every
//    stage runs the teacher-forced base and adapted passes through its own blocks (rows stage to
//    stage) and sums its blocks' outputs; the sums come to rank 0, which computes the directions and
//    means and writes results.h5 as in one process.
// The batches are those of one process and every block sees the same rows through the same ops,
// so texts, sums, directions and means are bitwise the same.
//
// Messages on group 0's communicator, from rank 0 to each other stage:
//   TAG_CMD   one int: CMD_GENERATE or CMD_DIRECTIONS (then broadcasts from rank 0 of what they
//             need), or CMD_END (stop serving)
// between neighbours TAG_ROWS (the rows of a pass or a generation step), and TAG_SUMS (a stage's
// blocks' sums, to rank 0). A stage that fails mid-way ends the job (its partners wait for it).
#include "pipeline.h"
#include "steerclear/evaluate.h"
#include "steerclear/extract.h"
#include "steerclear/monitor.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef SC_HAVE_MPI
#include <mpi.h>

enum { TAG_CMD = 4301, TAG_ROWS = 4302, TAG_SUMS = 4303 };
enum { CMD_DIRECTIONS = 1, CMD_END = 2, CMD_GENERATE = 3 };
enum { H_ADAPTERS, H_MODE, H_SEQS, H_BATCH, H_KIND, H_RANK, H_IDS, H_MAX_T, H_INTS };

typedef struct {
    const sc_dist *d;
    MPI_Comm comm;
    sc_backend *be;
    float *host;               // staging of the rows when backend memory is not host memory
} link_ctx;

// Rank 0's word before each chunk of work: go on, or stop (a signal came to rank 0; signals
// are deferred meanwhile, so no stage leaves a pass half done). SC_ERR_INTERRUPTED on every
// stage when it says stop.
static sc_status go_on(const sc_dist *d) {
    int go = d->rank == 0 ? !sc_interrupt_pending() : 0;
    if (MPI_Bcast(&go, 1, MPI_INT, 0, *(MPI_Comm *)d->group_comm) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank %d: waiting for rank 0's word failed (a rank lost?)", d->rank);
    return go ? SC_OK : sc_errorf(SC_ERR_INTERRUPTED, "stopped by a signal to rank 0 in the middle of the pipeline's work; --resume continues");
}

static sc_status link_proceed(void *ctx);

static sc_status link_recv(void *ctx, float *hidden, size_t n) {
    link_ctx *k = ctx;
    float *h = k->be->separate_memory ? k->host : hidden;
    if (MPI_Recv(h, (int)n, MPI_FLOAT, k->d->stage - 1, TAG_ROWS, k->comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank %d (pipeline stage %d): receiving the extract rows failed (a partner rank lost?)", k->d->rank, k->d->stage);
    return k->be->separate_memory ? k->be->op->upload(k->be, hidden, h, sizeof(float) * n) : SC_OK;
}

static sc_status link_send(void *ctx, const float *hidden, size_t n) {
    link_ctx *k = ctx;
    const float *h = hidden;
    if (k->be->separate_memory) { SC_TRY(k->be->op->download(k->be, k->host, hidden, sizeof(float) * n)); h = k->host; }
    if (MPI_Send(h, (int)n, MPI_FLOAT, k->d->stage + 1, TAG_ROWS, k->comm) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank %d (pipeline stage %d): sending the extract rows failed (a partner rank lost?)", k->d->rank, k->d->stage);
    return SC_OK;
}

static sc_status link_proceed(void *ctx) { return go_on(((link_ctx *)ctx)->d); }

// Every stage: the sums of its blocks over the broadcast sequences (host_sums [(n+1)][L][C]).
static sc_status stage_sums(const sc_dist *d, const sc_model *slice, sc_backend *be, sc_adapter *const *ads, const int *h,
                            const int32_t *const *seqs, const int *lens, double *host_sums, int64_t *total) {
    link_ctx k = {.d = d, .comm = *(MPI_Comm *)d->group_comm, .be = be};
    if (be->separate_memory && !(k.host = malloc(sizeof(float) * (size_t)h[H_MAX_T] * slice->cfg.hidden)))
        return sc_errorf(SC_ERR_MEM, "out of memory for the extract rows");
    sc_direction_link link = {.ctx = &k, .recv = link_recv, .send = link_send, .proceed = link_proceed};
    sc_status st = sc_directions_sums(slice, be, ads, h[H_ADAPTERS], (sc_direction_mode)h[H_MODE], seqs, lens, h[H_SEQS], h[H_BATCH],
                                      1, &link, host_sums, total);
    free(k.host);
    return st;
}

// The sums of blocks [f, l) of each of the n+1 rows of host_sums: one message (packed).
static size_t slice_doubles(int n, int f, int l, int C) { return (size_t)(n + 1) * (size_t)(l - f) * C; }

static void pack_slice(double *buf, const double *sums, int n, int L, int C, int f, int l, int unpack) {
    for (int a = 0; a <= n; a++) {
        double *s = (double *)sums + ((size_t)a * L + f) * C, *b = buf + (size_t)a * (l - f) * C;
        if (unpack) memcpy(s, b, sizeof(double) * (size_t)(l - f) * C);
        else memcpy(b, s, sizeof(double) * (size_t)(l - f) * C);
    }
}

typedef struct {
    const sc_dist *d;
    const sc_model *model;
    sc_backend *be;
} dist_directions_ctx;

static sc_status directions_leader(void *ctx, sc_adapter *const *ads, int n_ads, sc_direction_mode mode, const int32_t *const *seqs,
                                   const int *lens, int n_seqs, int batch_seqs, float *dirs, int64_t *n_tokens, float *base_means,
                                   float *adapted_means) {
    const dist_directions_ctx *x = ctx;
    const sc_dist *d = x->d;
    MPI_Comm comm = *(MPI_Comm *)d->group_comm;
    const int L = x->model->cfg.n_layers, C = x->model->cfg.hidden, P = d->stages;
    sc_model view;
    sc_dist_slice_view(d, x->model, &view);
    int h[H_INTS] = {n_ads, (int)mode, n_seqs, batch_seqs, (int)ads[0]->kind, ads[0]->r, 0, 0};
    for (int b0 = 0; b0 < n_seqs; b0 += batch_seqs) {
        int T = 0;
        for (int s = b0; s < n_seqs && s < b0 + batch_seqs; s++) T += lens[s];
        if (T > h[H_MAX_T]) h[H_MAX_T] = T;
        h[H_IDS] += T;
    }
    const size_t nAB = sc_adapter_numel_A(ads[0]) + sc_adapter_numel_B(ads[0]);
    float scaling = ads[0]->scaling;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(h[H_IDS] > 0 ? h[H_IDS] : 1));
    float *ab = malloc(sizeof(float) * nAB * (size_t)n_ads);
    double *sums = calloc((size_t)(n_ads + 1) * L * C, sizeof(double));
    double *buf = malloc(sizeof(double) * slice_doubles(n_ads, 0, L, C));
    sc_status st = ids && ab && sums && buf ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory for the extract messages");
    for (int s = 0, at = 0; !st && s < n_seqs; at += lens[s], s++) memcpy(ids + at, seqs[s], sizeof(int32_t) * (size_t)lens[s]);
    for (int a = 0; !st && a < n_ads; a++) st = sc_adapter_get(ads[a], ab + nAB * a, ab + nAB * a + sc_adapter_numel_A(ads[a]));
    if (st) { free(ids); free(ab); free(sums); free(buf); return st; }
    int64_t total = 0;
    int cmd = CMD_DIRECTIONS, rc = MPI_SUCCESS;
    for (int s = 1; s < P && rc == MPI_SUCCESS; s++) rc = MPI_Send(&cmd, 1, MPI_INT, s, TAG_CMD, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(h, H_INTS, MPI_INT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(&scaling, 1, MPI_FLOAT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast((void *)lens, n_seqs, MPI_INT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(ids, h[H_IDS], MPI_INT32_T, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(ab, (int)(nAB * (size_t)n_ads), MPI_FLOAT, 0, comm);
    if (rc != MPI_SUCCESS) st = sc_errorf(SC_ERR_IO, "rank 0: sending the extract work to search group 0's stages failed (a rank lost?)");
    sc_interrupt_defer(1);   // a signal stops the work between batches (go_on), never inside a pass
    if (!st) st = stage_sums(d, &view, x->be, ads, h, seqs, lens, sums, &total);
    sc_interrupt_defer(0);
    for (int s = 1; s < P && !st; s++) {   // each stage's blocks' sums, in stage order
        const int f = d->first[s], l = d->last[s];
        if (MPI_Recv(buf, (int)slice_doubles(n_ads, f, l, C), MPI_DOUBLE, s, TAG_SUMS, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            st = sc_errorf(SC_ERR_IO, "rank 0: receiving the activation sums of pipeline stage %d failed (was it lost?)", s);
        else pack_slice(buf, sums, n_ads, L, C, f, l, 1);
    }
    if (!st) {
        sc_directions_finish(sums, n_ads, L, C, mode, total, dirs, base_means, adapted_means);
        *n_tokens = total;
        sc_log(SC_LOG_INFO, "extract: activation sums of blocks [0, %d) here and of [%d, %d) on the %d other stage%s of search group 0",
               d->last[0], d->last[0], L, P - 1, P == 2 ? "" : "s");
    }
    free(ids); free(ab); free(sums); free(buf);
    if (st && st != SC_ERR_INTERRUPTED) {   // the other stages may wait in the middle of the passes
        sc_log(SC_LOG_ERROR, "%s; aborting the job", sc_last_error());
        sc_dist_abort(d, 1);
    }
    return st;
}

// A stage other than 0: one CMD_DIRECTIONS.
static sc_status directions_follower(const sc_dist *d, const sc_model *model, sc_backend *be) {
    MPI_Comm comm = *(MPI_Comm *)d->group_comm;
    const int L = model->cfg.n_layers, C = model->cfg.hidden;
    int h[H_INTS];
    float scaling = 0;
    if (MPI_Bcast(h, H_INTS, MPI_INT, 0, comm) != MPI_SUCCESS || MPI_Bcast(&scaling, 1, MPI_FLOAT, 0, comm) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank %d: receiving the extract work from rank 0 failed", d->rank);
    const int n = h[H_ADAPTERS];
    int *lens = malloc(sizeof(int) * (size_t)(h[H_SEQS] + 1));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(h[H_IDS] + 1));
    const int32_t **seqs = malloc(sizeof(int32_t *) * (size_t)(h[H_SEQS] + 1));
    sc_adapter **ads = calloc((size_t)n + 1, sizeof *ads);
    double *sums = calloc((size_t)(n + 1) * L * C, sizeof(double));
    sc_model view;
    sc_dist_slice_view(d, model, &view);
    double *buf = malloc(sizeof(double) * slice_doubles(n, view.first, view.last, C));
    sc_status st = lens && ids && seqs && ads && sums && buf ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory for the extract work");
    int rc = MPI_SUCCESS;
    if (!st) rc = MPI_Bcast(lens, h[H_SEQS], MPI_INT, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(ids, h[H_IDS], MPI_INT32_T, 0, comm);
    for (int a = 0; !st && a < n; a++) st = sc_adapter_create(be, (sc_adapter_kind)h[H_KIND], L, C, h[H_RANK], scaling, &ads[a]);
    const size_t nAB = !st ? sc_adapter_numel_A(ads[0]) + sc_adapter_numel_B(ads[0]) : 0;
    float *ab = !st ? malloc(sizeof(float) * nAB * (size_t)n) : NULL;
    if (!st && !ab) st = sc_errorf(SC_ERR_MEM, "out of memory for the adapters");
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(ab, (int)(nAB * (size_t)n), MPI_FLOAT, 0, comm);
    if (!st && rc != MPI_SUCCESS) st = sc_errorf(SC_ERR_IO, "rank %d: receiving the extract work from rank 0 failed", d->rank);
    for (int a = 0; !st && a < n; a++) st = sc_adapter_set(ads[a], ab + nAB * a, ab + nAB * a + sc_adapter_numel_A(ads[a]));
    for (int s = 0, at = 0; !st && s < h[H_SEQS]; at += lens[s], s++) seqs[s] = ids + at;
    int64_t total = 0;
    if (!st) st = stage_sums(d, &view, be, ads, h, seqs, lens, sums, &total);
    if (!st) {
        pack_slice(buf, sums, n, L, C, view.first, view.last, 0);
        if (MPI_Send(buf, (int)slice_doubles(n, view.first, view.last, C), MPI_DOUBLE, 0, TAG_SUMS, comm) != MPI_SUCCESS)
            st = sc_errorf(SC_ERR_IO, "rank %d: sending the activation sums to rank 0 failed", d->rank);
    }
    for (int a = 0; ads && a < n; a++) sc_adapter_free(ads[a]);
    free(lens); free(ids); free(seqs); free(ads); free(sums); free(buf); free(ab);
    return st;
}

// --- Generation on group 0's pipeline (evaluate, quantify, the extract stage's sampling) -------

enum { G_VARIANTS, G_PROMPTS, G_BATCH, G_IDS, G_MAX_NEW, G_GREEDY, G_TOP_K, G_VOCAB, G_NSTOP, G_STREAM, G_INTS };

// Every stage of group 0: the generation of sc_evaluate_generate (the same chunks, tags and
// streams) with this stage's blocks; rows stage to stage, tokens from the last stage to all.
// out (rank 0): the outputs; NULL elsewhere.
static sc_status staged_generate(const sc_dist *d, const sc_model *slice, sc_backend *be, const sc_eval_variant *variants, int n_var,
                                 const int32_t *const *prompts, const int *plen, int n_p, const uint64_t *stream,
                                 const sc_sample_opts *o, int batch_seqs, sc_gen_out *out) {
    MPI_Comm comm = *(MPI_Comm *)d->group_comm;
    const int s = d->stage, last = d->stages - 1, C = slice->cfg.hidden, total = n_var * n_p;
    if (total == 0) return SC_OK;
    sc_gen_plan plan = {.max_seqs = batch_seqs < total ? batch_seqs : total, .max_prompt = 1, .max_new = o->max_new_tokens};
    for (int p = 0; p < n_p; p++) if (plen[p] > plan.max_prompt) plan.max_prompt = plen[p];
    sc_eval_hook *eh = NULL;
    sc_gen *gen = NULL;
    sc_gen_stage *gst = NULL;
    const int nb_max = plan.max_seqs;
    const int32_t **cp = malloc(sizeof(int32_t *) * (size_t)nb_max);
    int *cl = malloc(sizeof(int) * (size_t)nb_max), *ct = malloc(sizeof(int) * (size_t)nb_max);
    uint64_t *cs = malloc(sizeof(uint64_t) * (size_t)nb_max);
    float *host = NULL;
    sc_status st = cp && cl && ct && cs ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
    if (!st) st = sc_eval_hook_create(variants, n_var, slice->cfg.n_layers, &eh);
    if (!st) st = sc_gen_create(&plan, &gen);
    if (!st) st = sc_gen_stage_create(slice, be, &plan, &gst);
    if (!st && be->separate_memory && !(host = malloc(sizeof(float) * (size_t)gst->max_rows * C))) st = sc_errorf(SC_ERR_MEM, "out of memory");
    sc_hook hook = eh ? sc_eval_hook_get(eh) : (sc_hook){0};
    if (out) sc_monitor_progress("generating", 0, total, "sequences");
    for (int k0 = 0; k0 < total && !st; k0 += nb_max) {
        const int nb = total - k0 < nb_max ? total - k0 : nb_max;
        for (int j = 0; j < nb; j++) {
            int v = (k0 + j) / n_p, p = (k0 + j) % n_p;
            cp[j] = prompts[p]; cl[j] = plen[p]; ct[j] = v;
            cs[j] = stream ? stream[p] : (uint64_t)p;
        }
        if ((st = go_on(d)) || (st = sc_gen_start(gen, cp, cl, nb, cs, ct, o))) break;
        while (!st && !sc_gen_done(gen)) {
            const sc_batch *b = sc_gen_batch(gen);
            const int n = b->seq_start[b->n_seq] * C;
            float *h = host ? host : gst->hidden;
            if (s > 0) {
                if (MPI_Recv(h, n, MPI_FLOAT, s - 1, TAG_ROWS, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS) { st = sc_errorf(SC_ERR_IO, "rank %d: receiving generation rows failed", d->rank); break; }
                if (host && (st = be->op->upload(be, gst->hidden, host, sizeof(float) * (size_t)n))) break;
            }
            if ((st = sc_gen_stage_forward(gst, gen, &hook))) break;
            if (s < last) {
                if (host && (st = be->op->download(be, host, gst->hidden, sizeof(float) * (size_t)n))) break;
                if (MPI_Send(h, n, MPI_FLOAT, s + 1, TAG_ROWS, comm) != MPI_SUCCESS) { st = sc_errorf(SC_ERR_IO, "rank %d: sending generation rows failed", d->rank); break; }
            } else if ((st = sc_gen_stage_sample(gst, gen, o))) break;
            if (MPI_Bcast(gst->tokens, sc_gen_n_sample(gen), MPI_INT32_T, last, comm) != MPI_SUCCESS) { st = sc_errorf(SC_ERR_IO, "rank %d: sharing the sampled tokens failed", d->rank); break; }
            st = sc_gen_advance(gen, gst->tokens);
        }
        for (int j = 0; out && j < nb && !st; j++) {
            int n = 0, stopped = 0;
            const int32_t *ids = sc_gen_output(gen, j, &n, &stopped);
            sc_gen_out *dst = &out[k0 + j];
            if (!(dst->ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1)))) { st = sc_errorf(SC_ERR_MEM, "out of memory"); break; }
            memcpy(dst->ids, ids, sizeof(int32_t) * (size_t)n);
            dst->n = n;
            dst->stopped = stopped;
        }
        if (out && !st) sc_monitor_progress("generating", k0 + nb, total, "sequences");
    }
    free(cp); free(cl); free(ct); free(cs); free(host);
    sc_gen_stage_free(gst);
    sc_gen_free(gen);
    sc_eval_hook_free(eh);
    return st;
}

static sc_status generate_leader(void *ctx, const struct sc_eval_variant *variants, int n_var, const int32_t *const *prompts,
                                 const int *plen, int n_p, const uint64_t *stream, const sc_sample_opts *o, int batch_seqs, sc_gen_out *out) {
    const dist_directions_ctx *x = ctx;
    const sc_dist *d = x->d;
    MPI_Comm comm = *(MPI_Comm *)d->group_comm;
    const int L = x->model->cfg.n_layers, C = x->model->cfg.hidden;
    for (int k = 0; k < n_var * n_p; k++) memset(&out[k], 0, sizeof out[k]);
    if (batch_seqs < 1) return sc_errorf(SC_ERR_ARG, "evaluate: batch of %d sequences: must be at least 1", batch_seqs);
    sc_model view;
    sc_dist_slice_view(d, x->model, &view);
    int h[G_INTS] = {n_var, n_p, batch_seqs, 0, o->max_new_tokens, o->greedy, o->top_k, o->vocab_limit, o->n_stop < 8 ? o->n_stop : 8, stream != NULL};
    for (int p = 0; p < n_p; p++) h[G_IDS] += plen[p];
    float f[2] = {o->temperature, o->top_p};
    unsigned long long seed = o->seed;
    int32_t stops[8] = {0};
    for (int i = 0; i < h[G_NSTOP]; i++) stops[i] = o->stop_ids[i];
    // per variant: kind, then the adapter's kind, rank, scaling (adapters) and scale (directions)
    int *vk = calloc((size_t)n_var * 3 + 1, sizeof(int));
    float *vf = calloc((size_t)n_var * 2 + 1, sizeof(float));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(h[G_IDS] + 1));
    float *buf = malloc(sizeof(float) * (size_t)L * C * 2 + 16);
    sc_status st = vk && vf && ids && buf ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
    for (int v = 0; !st && v < n_var; v++) {
        vk[3 * v] = variants[v].kind;
        if (variants[v].kind == SC_EVAL_ADAPTER) { vk[3 * v + 1] = variants[v].adapter->kind; vk[3 * v + 2] = variants[v].adapter->r; vf[2 * v] = variants[v].adapter->scaling; }
        vf[2 * v + 1] = variants[v].scale;
    }
    for (int p = 0, at = 0; !st && p < n_p; at += plen[p], p++) memcpy(ids + at, prompts[p], sizeof(int32_t) * (size_t)plen[p]);
    int cmd = CMD_GENERATE, rc = MPI_SUCCESS;
    for (int s = 1; !st && s < d->stages && rc == MPI_SUCCESS; s++) rc = MPI_Send(&cmd, 1, MPI_INT, s, TAG_CMD, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(h, G_INTS, MPI_INT, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(f, 2, MPI_FLOAT, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(&seed, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(stops, 8, MPI_INT32_T, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(vk, 3 * n_var, MPI_INT, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(vf, 2 * n_var, MPI_FLOAT, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast((void *)plen, n_p, MPI_INT, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(ids, h[G_IDS], MPI_INT32_T, 0, comm);
    if (!st && rc == MPI_SUCCESS && stream) rc = MPI_Bcast((void *)stream, n_p, MPI_UNSIGNED_LONG_LONG, 0, comm);
    for (int v = 0; !st && rc == MPI_SUCCESS && v < n_var; v++) {   // each variant's vectors
        if (variants[v].kind == SC_EVAL_ADAPTER) {
            const sc_adapter *a = variants[v].adapter;
            const size_t nA = sc_adapter_numel_A(a), nB = sc_adapter_numel_B(a);
            if (nA + nB > (size_t)L * C * 2) { st = sc_errorf(SC_ERR_INTERNAL, "evaluate: an adapter larger than planned"); break; }
            if (!(st = sc_adapter_get(a, buf, buf + nA))) rc = MPI_Bcast(buf, (int)(nA + nB), MPI_FLOAT, 0, comm);
        } else if (variants[v].kind == SC_EVAL_DIRECTION) {
            if (!(st = x->be->op->download(x->be, buf, variants[v].directions, sizeof(float) * (size_t)L * C))) rc = MPI_Bcast(buf, L * C, MPI_FLOAT, 0, comm);
        }
    }
    if (!st && rc != MPI_SUCCESS) st = sc_errorf(SC_ERR_IO, "rank 0: sending the generation work to search group 0's stages failed (a rank lost?)");
    sc_interrupt_defer(1);   // a signal stops the work between chunks (go_on), never inside one
    if (!st) st = staged_generate(d, &view, x->be, variants, n_var, prompts, plen, n_p, stream, o, batch_seqs, out);
    sc_interrupt_defer(0);
    if (st) for (int k = 0; k < n_var * n_p; k++) { free(out[k].ids); memset(&out[k], 0, sizeof out[k]); }
    free(vk); free(vf); free(ids); free(buf);
    if (st && st != SC_ERR_INTERRUPTED) {   // the other stages may wait in the middle of a generation
        sc_log(SC_LOG_ERROR, "%s; aborting the job", sc_last_error());
        sc_dist_abort(d, 1);
    }
    return st;
}

// A stage other than 0: one CMD_GENERATE.
static sc_status generate_follower(const sc_dist *d, const sc_model *model, sc_backend *be) {
    MPI_Comm comm = *(MPI_Comm *)d->group_comm;
    const int L = model->cfg.n_layers, C = model->cfg.hidden;
    int h[G_INTS];
    float f[2];
    unsigned long long seed = 0;
    int32_t stops[8];
    int rc = MPI_Bcast(h, G_INTS, MPI_INT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(f, 2, MPI_FLOAT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(&seed, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(stops, 8, MPI_INT32_T, 0, comm);
    if (rc != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "rank %d: receiving the generation work from rank 0 failed", d->rank);
    const int n_var = h[G_VARIANTS], n_p = h[G_PROMPTS];
    int *vk = calloc((size_t)n_var * 3 + 1, sizeof(int)), *plen = malloc(sizeof(int) * (size_t)(n_p + 1));
    float *vf = calloc((size_t)n_var * 2 + 1, sizeof(float));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(h[G_IDS] + 1));
    const int32_t **prompts = malloc(sizeof(int32_t *) * (size_t)(n_p + 1));
    uint64_t *stream = h[G_STREAM] ? malloc(sizeof(uint64_t) * (size_t)(n_p + 1)) : NULL;
    sc_eval_variant *var = calloc((size_t)n_var + 1, sizeof *var);
    float *buf = malloc(sizeof(float) * (size_t)L * C * 2 + 16);
    sc_status st = vk && plen && vf && ids && prompts && var && buf && (stream || !h[G_STREAM]) ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
    if (!st) rc = MPI_Bcast(vk, 3 * n_var, MPI_INT, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(vf, 2 * n_var, MPI_FLOAT, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(plen, n_p, MPI_INT, 0, comm);
    if (!st && rc == MPI_SUCCESS) rc = MPI_Bcast(ids, h[G_IDS], MPI_INT32_T, 0, comm);
    if (!st && rc == MPI_SUCCESS && stream) rc = MPI_Bcast(stream, n_p, MPI_UNSIGNED_LONG_LONG, 0, comm);
    for (int v = 0; !st && rc == MPI_SUCCESS && v < n_var; v++) {
        var[v].kind = (sc_eval_kind)vk[3 * v];
        var[v].scale = vf[2 * v + 1];
        if (var[v].kind == SC_EVAL_ADAPTER) {
            if ((st = sc_adapter_create(be, (sc_adapter_kind)vk[3 * v + 1], L, C, vk[3 * v + 2], vf[2 * v], &var[v].adapter))) break;
            const size_t nA = sc_adapter_numel_A(var[v].adapter), nB = sc_adapter_numel_B(var[v].adapter);
            if ((rc = MPI_Bcast(buf, (int)(nA + nB), MPI_FLOAT, 0, comm)) == MPI_SUCCESS) st = sc_adapter_set(var[v].adapter, buf, buf + nA);
        } else if (var[v].kind == SC_EVAL_DIRECTION) {
            float *dv = NULL;
            if ((st = sc_backend_alloc_floats(be, (size_t)L * C, "steering directions", &dv))) break;
            var[v].directions = dv;
            if ((rc = MPI_Bcast(buf, L * C, MPI_FLOAT, 0, comm)) == MPI_SUCCESS) st = be->op->upload(be, dv, buf, sizeof(float) * (size_t)L * C);
        }
    }
    if (!st && rc != MPI_SUCCESS) st = sc_errorf(SC_ERR_IO, "rank %d: receiving the generation work from rank 0 failed", d->rank);
    for (int p = 0, at = 0; !st && p < n_p; at += plen[p], p++) prompts[p] = ids + at;
    sc_sample_opts o;
    sc_sample_opts_default(&o);
    o.max_new_tokens = h[G_MAX_NEW]; o.greedy = h[G_GREEDY]; o.top_k = h[G_TOP_K]; o.vocab_limit = h[G_VOCAB];
    o.n_stop = h[G_NSTOP]; o.stop_ids = stops; o.temperature = f[0]; o.top_p = f[1]; o.seed = seed;
    sc_model view;
    sc_dist_slice_view(d, model, &view);
    if (!st) st = staged_generate(d, &view, be, var, n_var, prompts, plen, n_p, stream, &o, h[G_BATCH], NULL);
    for (int v = 0; var && v < n_var; v++) {
        sc_adapter_free(var[v].adapter);
        if (var[v].directions) be->op->free(be, (void *)var[v].directions);
    }
    free(vk); free(plen); free(vf); free(ids); free(prompts); free(stream); free(var); free(buf);
    return st;
}
#endif

void sc_dist_slice_view(const sc_dist *d, const sc_model *m, sc_model *view) {
    *view = *m;
    if (d->stages < 2 || !d->first) return;
    view->first = d->first[d->stage];
    view->last = d->last[d->stage];
    view->has_embed = view->first == 0;
    view->has_head = view->last == m->cfg.n_layers;
}

sc_status sc_dist_stage_generate(const sc_dist *d, sc_stage *stage, void **ctx) {
    *ctx = NULL;
    if (!d->mpi || d->stages < 2 || d->rank != 0) return SC_OK;
#ifdef SC_HAVE_MPI
    dist_directions_ctx *x = malloc(sizeof *x);
    if (!x) return sc_errorf(SC_ERR_MEM, "out of memory");
    *x = (dist_directions_ctx){.d = d, .model = stage->model, .be = stage->be};
    stage->generate = generate_leader;
    stage->generate_ctx = x;
    *ctx = x;
#else
    (void)stage;
#endif
    return SC_OK;
}

sc_status sc_dist_extract_opts(const sc_dist *d, const sc_model *model, sc_backend *be, sc_extract_opts *o, void **ctx) {
    *ctx = NULL;
    if (!d->mpi || d->stages < 2 || d->rank != 0) return SC_OK;
#ifdef SC_HAVE_MPI
    dist_directions_ctx *x = malloc(sizeof *x);
    if (!x) return sc_errorf(SC_ERR_MEM, "out of memory");
    *x = (dist_directions_ctx){.d = d, .model = model, .be = be};
    o->compute = directions_leader;
    o->compute_ctx = x;
    *ctx = x;
#else
    (void)model; (void)be; (void)o;
#endif
    return SC_OK;
}

#ifdef SC_HAVE_MPI
static sc_status serve_loop(const sc_dist *d, const sc_model *model, sc_backend *be) {
    MPI_Comm comm = *(MPI_Comm *)d->group_comm;
    for (;;) {
        int flag = 0;
        if (MPI_Iprobe(0, TAG_CMD, comm, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "rank %d: waiting for rank 0 failed", d->rank);
        if (flag) {
            int cmd = 0;
            if (MPI_Recv(&cmd, 1, MPI_INT, 0, TAG_CMD, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "rank %d: receiving from rank 0 failed", d->rank);
            if (cmd == CMD_END) return SC_OK;
            sc_status st = cmd == CMD_GENERATE ? generate_follower(d, model, be) : directions_follower(d, model, be);
            if (st && st != SC_ERR_INTERRUPTED) {   // rank 0 waits for this stage's rows or sums
                sc_log(SC_LOG_ERROR, "rank %d (search group 0, pipeline stage %d): %s: %s; aborting the job", d->rank, d->stage,
                       cmd == CMD_GENERATE ? "generating" : "extract", sc_last_error());
                sc_dist_abort(d, 1);
            }
            continue;
        }
        // rank 0 finished without a word to the group (it stopped early): its end-of-job message
        if (MPI_Iprobe(0, SC_DIST_TAG_FIN, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag) return SC_OK;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}
#endif

sc_status sc_dist_serve(const sc_dist *d, const sc_model *model, sc_backend *be) {
#ifdef SC_HAVE_MPI
    if (!d->mpi || d->stages < 2 || d->group != 0 || d->stage == 0) return SC_OK;
    sc_interrupt_defer(1);   // rank 0 decides when the work stops (go_on); this rank ends when rank 0 does
    sc_status st = serve_loop(d, model, be);
    sc_interrupt_defer(0);
    return st;
#else
    (void)d; (void)model; (void)be;
    return SC_OK;
#endif
}

void sc_dist_serve_end(const sc_dist *d) {
#ifdef SC_HAVE_MPI
    if (!d->mpi || d->stages < 2 || d->rank != 0 || !d->group_comm) return;
    int cmd = CMD_END;
    for (int s = 1; s < d->stages; s++) MPI_Send(&cmd, 1, MPI_INT, s, TAG_CMD, *(MPI_Comm *)d->group_comm);
#else
    (void)d;
#endif
}
