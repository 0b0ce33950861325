// later.c — the later stages on the layout (dist.h), rank 0 driving, every other rank serving
// (sc_dist_serve) after the search:
//  - generation (evaluate, quantify, the extract stage's sampling), with more than one group or
//    stage: on every search group. Rank 0 sends the work (variants: adapters, directions,
//    scales; prompts, streams, sampling settings) to the other group leaders (leaders_comm), and
//    each group leader to its own stages (its group's communicator). The chunks are those of
//    sc_evaluate_generate (batch_seqs sequences in its order, each with its tag and stream);
//    rank 0 hands each other group leader one chunk at a time, runs chunks on group 0 while any
//    are left, and gathers each finished chunk's tokens into the outputs. In a group of P > 1
//    stages every chunk runs through sc_gen and sc_gen_stage with the evaluation hook on each
//    stage's own blocks (rows stage to stage, tokens from the last stage to all);
//  - the extract stage's activation sums with one-stage groups (P = 1, G > 1): adapter a's sums
//    on group a mod G, one adapter per pass as in one process, every group in step batch by batch
//    (rank 0's go word on leaders_comm before each); each group also sums the base model (rank 0
//    keeps its own) and sends its adapters' sums to rank 0, which finishes as one process does;
//  - the extract stage's activation sums with P > 1 (search group 0 only): rank 0 broadcasts the
//    sequences and the adapters; every stage of group 0 runs the teacher-forced base and adapted
//    passes through its own blocks (rows stage to stage) and sums its blocks' outputs; the sums come
//    to rank 0, which computes the directions and means and writes results.h5 as in one process.
// A chunk holds the same sequences in the same batch wherever it runs and every block sees the
// same rows through the same ops, so texts, sums, directions and means are bitwise the same as
// in one process (given the same backend and precision on every rank).
//
// Signals: rank 0 alone decides when the work stops (the other ranks defer signals while
// serving). Before each chunk it gives its word: a chunk's index to a group leader (TAG_CHUNK),
// CHUNK_STOP once a signal came; each leader passes the index on to its stages (their go word).
// The groups finish the chunk they hold, rank 0 returns SC_ERR_INTERRUPTED and the run exits 3;
// --resume redoes the stage.
//
// Messages, from rank 0 (or a group's leader to its stages):
//   TAG_WCMD  (MPI_COMM_WORLD, rank 0 to a group leader) one int: CMD_GENERATE or CMD_DIRECTIONS
//             (P = 1; then the work by broadcast on leaders_comm), or CMD_END (stop serving; the
//             leader tells its stages)
//   TAG_CMD   (a group's communicator, its leader to its other stages) one int: CMD_GENERATE,
//             CMD_DIRECTIONS (group 0 only), or CMD_END
//   TAG_CHUNK (MPI_COMM_WORLD, rank 0 to a group leader) the next chunk, CHUNK_DONE or CHUNK_STOP
//   TAG_OUT   (MPI_COMM_WORLD, a group leader to rank 0) a chunk's tokens
// between neighbours TAG_ROWS (the rows of a pass or a generation step), and TAG_SUMS (a stage's
// blocks' sums, or with P = 1 a group's adapters' sums, to rank 0). A rank that fails mid-way ends the job (its partners wait for it).
#include "pipeline.h"
#include "steerclear/evaluate.h"
#include "steerclear/extract.h"
#include "steerclear/monitor.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef SC_HAVE_MPI
#include <mpi.h>
#include "xfer.h"

enum { TAG_CMD = 4301, TAG_ROWS = 4302, TAG_SUMS = 4303, TAG_WCMD = 4304, TAG_CHUNK = 4305, TAG_OUT = 4306 };
enum { CMD_DIRECTIONS = 1, CMD_END = 2, CMD_GENERATE = 3 };
enum { H_ADAPTERS, H_MODE, H_SEQS, H_BATCH, H_KIND, H_RANK, H_IDS, H_MAX_T, H_INTS };

typedef struct {
    const sc_dist *d;
    MPI_Comm comm;
    sc_backend *be;
    sc_xfer_mode mode;         // how the rows travel (xfer.h)
    float *host;               // staged: pinned host copy of the rows (op->host_alloc)
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
    sc_status st = sc_xfer_recv(k->be, k->mode, hidden, k->host, n, k->d->stage - 1, TAG_ROWS, k->comm, "the extract rows");
    return st ? sc_error_wrap(st, "rank %d (pipeline stage %d): ", k->d->rank, k->d->stage) : SC_OK;
}

static sc_status link_send(void *ctx, const float *hidden, size_t n) {
    link_ctx *k = ctx;
    sc_status st = sc_xfer_send(k->be, k->mode, hidden, k->host, n, k->d->stage + 1, TAG_ROWS, k->comm, "the extract rows");
    return st ? sc_error_wrap(st, "rank %d (pipeline stage %d): ", k->d->rank, k->d->stage) : SC_OK;
}

static sc_status link_proceed(void *ctx) { return go_on(((link_ctx *)ctx)->d); }

// Every stage: the sums of its blocks over the broadcast sequences (host_sums [(n+1)][L][C]).
static sc_status stage_sums(const sc_dist *d, const sc_model *slice, sc_backend *be, sc_adapter *const *ads, const int *h,
                            const int32_t *const *seqs, const int *lens, double *host_sums, int64_t *total) {
    link_ctx k = {.d = d, .comm = *(MPI_Comm *)d->group_comm, .be = be};
    char why[512];
    SC_TRY(sc_xfer_choose(be, &k.mode, why, sizeof why));
    if (k.mode == SC_XFER_STAGED) SC_TRY(be->op->host_alloc(be, sizeof(float) * (size_t)h[H_MAX_T] * slice->cfg.hidden, "the extract rows' pinned staging", (void **)&k.host));
    sc_direction_link link = {.ctx = &k, .recv = link_recv, .send = link_send, .proceed = link_proceed};
    sc_status st = sc_directions_sums(slice, be, ads, h[H_ADAPTERS], (sc_direction_mode)h[H_MODE], seqs, lens, h[H_SEQS], h[H_BATCH],
                                      1, &link, host_sums, total);
    be->op->host_free(be, k.host);
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

static sc_status group_sums(const sc_dist *d, const sc_model *m, sc_backend *be, sc_adapter *const *ads, const int *h,
                            const int32_t *const *seqs, const int *lens, double *sums, int64_t *total);

// A stage other than 0 of group 0 (P > 1), or a group leader of one-stage groups (P = 1: the
// work from rank 0 on leaders_comm, its adapters' sums to rank 0): one CMD_DIRECTIONS.
static sc_status directions_follower(const sc_dist *d, const sc_model *model, sc_backend *be) {
    const int groups = d->stages == 1;
    MPI_Comm comm = groups ? *(MPI_Comm *)d->leaders_comm : *(MPI_Comm *)d->group_comm;
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
    if (groups) {   // this group's adapters' sums (rows 1.. of sums), to rank 0
        const int ng = n > d->group ? (n - d->group + d->groups - 1) / d->groups : 0;
        if (!st) st = group_sums(d, model, be, ads, h, seqs, lens, sums, &total);
        if (!st && ng > 0 && MPI_Send(sums, (int)((size_t)(ng + 1) * L * C), MPI_DOUBLE, 0, TAG_SUMS, MPI_COMM_WORLD) != MPI_SUCCESS)
            st = sc_errorf(SC_ERR_IO, "rank %d: sending the activation sums to rank 0 failed", d->rank);
    } else if (!st) st = stage_sums(d, &view, be, ads, h, seqs, lens, sums, &total);
    if (!st && !groups) {
        pack_slice(buf, sums, n, L, C, view.first, view.last, 0);
        if (MPI_Send(buf, (int)slice_doubles(n, view.first, view.last, C), MPI_DOUBLE, 0, TAG_SUMS, comm) != MPI_SUCCESS)
            st = sc_errorf(SC_ERR_IO, "rank %d: sending the activation sums to rank 0 failed", d->rank);
    }
    for (int a = 0; ads && a < n; a++) sc_adapter_free(ads[a]);
    free(lens); free(ids); free(seqs); free(ads); free(sums); free(buf); free(ab);
    return st;
}

// --- The extract stage's sums on every search group of one stage (P = 1, G > 1) -------------
// Adapter a's sums on group a mod G (each group also sums the base model: the same bits on
// every group; rank 0 keeps its own), with one adapter per pass as in one process (extract's
// searches_per_pass), so each adapter's sums are bitwise what one process sums. All groups go
// batch by batch in step: rank 0's go word over leaders_comm before each batch (a signal to
// rank 0 stops every group at the same batch).

static sc_status leaders_go(void *ctx) {
    const sc_dist *d = ctx;
    int go = d->rank == 0 ? !sc_interrupt_pending() : 0;
    if (MPI_Bcast(&go, 1, MPI_INT, 0, *(MPI_Comm *)d->leaders_comm) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank %d: waiting for rank 0's word failed (a rank lost?)", d->rank);
    return go ? SC_OK : sc_errorf(SC_ERR_INTERRUPTED, "stopped by a signal to rank 0 in the middle of the extract stage's sums; --resume continues");
}

static sc_status no_recv(void *ctx, float *hidden, size_t n) {
    (void)hidden; (void)n;
    return sc_errorf(SC_ERR_INTERNAL, "rank %d: extract sums: rows asked for with the whole model", ((const sc_dist *)ctx)->rank);
}

static sc_status no_send(void *ctx, const float *hidden, size_t n) {
    (void)hidden; (void)n;
    return sc_errorf(SC_ERR_INTERNAL, "rank %d: extract sums: rows sent with the whole model", ((const sc_dist *)ctx)->rank);
}

// This group's adapters (g, g + G, ...) of the n in ads: their sums into sums [(ng + 1)][L][C]
// (row 0 the base model's). A group without adapters still takes rank 0's word before each batch.
static sc_status group_sums(const sc_dist *d, const sc_model *m, sc_backend *be, sc_adapter *const *ads, const int *h,
                            const int32_t *const *seqs, const int *lens, double *sums, int64_t *total) {
    const int n = h[H_ADAPTERS], G = d->groups, g = d->group, n_seqs = h[H_SEQS], batch = h[H_BATCH];
    const int ng = n > g ? (n - g + G - 1) / G : 0;
    if (ng == 0) {
        for (int b0 = 0; b0 < n_seqs; b0 += batch) SC_TRY(leaders_go((void *)d));
        return SC_OK;
    }
    sc_adapter **mine = malloc(sizeof *mine * (size_t)ng);
    if (!mine) return sc_errorf(SC_ERR_MEM, "out of memory");
    for (int i = 0; i < ng; i++) mine[i] = ads[g + i * G];
    sc_direction_link link = {.ctx = (void *)d, .recv = no_recv, .send = no_send, .proceed = leaders_go};
    sc_status st = sc_directions_sums(m, be, mine, ng, (sc_direction_mode)h[H_MODE], seqs, lens, n_seqs, batch, 1, &link, sums, total);
    free(mine);
    return st;
}

// Rank 0 (P = 1, G > 1): sc_extract_opts.compute on every group.
static sc_status directions_groups(void *ctx, sc_adapter *const *ads, int n_ads, sc_direction_mode mode, const int32_t *const *seqs,
                                   const int *lens, int n_seqs, int batch_seqs, float *dirs, int64_t *n_tokens, float *base_means,
                                   float *adapted_means) {
    const dist_directions_ctx *x = ctx;
    const sc_dist *d = x->d;
    MPI_Comm comm = *(MPI_Comm *)d->leaders_comm;
    const int L = x->model->cfg.n_layers, C = x->model->cfg.hidden, G = d->groups;
    const size_t LC = (size_t)L * C;
    if (n_ads < 1 || batch_seqs < 1 || n_seqs < 1) return sc_errorf(SC_ERR_ARG, "directions: no adapters, sequences or batch given");
    int h[H_INTS] = {n_ads, (int)mode, n_seqs, batch_seqs, (int)ads[0]->kind, ads[0]->r, 0, 0};
    for (int s = 0; s < n_seqs; s++) {
        if (lens[s] <= 0) return sc_errorf(SC_ERR_ARG, "directions: sequence %d is empty", s);
        h[H_IDS] += lens[s];
    }
    const size_t nAB = sc_adapter_numel_A(ads[0]) + sc_adapter_numel_B(ads[0]);
    const int n0 = (n_ads + G - 1) / G;   // group 0's adapters, the most any group has
    float scaling = ads[0]->scaling;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)h[H_IDS]);
    float *ab = malloc(sizeof(float) * nAB * (size_t)n_ads);
    double *sums = calloc((size_t)(n_ads + 1) * LC, sizeof(double)), *part = calloc((size_t)(n0 + 1) * LC, sizeof(double));
    sc_status st = ids && ab && sums && part ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory for the extract messages");
    for (int s = 0, at = 0; !st && s < n_seqs; at += lens[s], s++) memcpy(ids + at, seqs[s], sizeof(int32_t) * (size_t)lens[s]);
    for (int a = 0; !st && a < n_ads; a++) st = sc_adapter_get(ads[a], ab + nAB * a, ab + nAB * a + sc_adapter_numel_A(ads[a]));
    if (st) { free(ids); free(ab); free(sums); free(part); return st; }
    int cmd = CMD_DIRECTIONS, rc = MPI_SUCCESS;
    for (int g = 1; g < G && rc == MPI_SUCCESS; g++) rc = MPI_Send(&cmd, 1, MPI_INT, g, TAG_WCMD, MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(h, H_INTS, MPI_INT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(&scaling, 1, MPI_FLOAT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast((void *)lens, n_seqs, MPI_INT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(ids, h[H_IDS], MPI_INT32_T, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(ab, (int)(nAB * (size_t)n_ads), MPI_FLOAT, 0, comm);
    if (rc != MPI_SUCCESS) st = sc_errorf(SC_ERR_IO, "rank 0: sending the extract work to the search groups failed (a rank lost?)");
    int64_t total = 0;
    sc_interrupt_defer(1);   // a signal stops the work between batches (leaders_go), never inside a pass
    if (!st) st = group_sums(d, x->model, x->be, ads, h, seqs, lens, part, &total);
    sc_interrupt_defer(0);
    for (int g = 0; g < G && !st; g++) {   // each group's adapters' sums into theirs
        const int ng = n_ads > g ? (n_ads - g + G - 1) / G : 0;
        if (g > 0 && ng > 0 && MPI_Recv(part, (int)((size_t)(ng + 1) * LC), MPI_DOUBLE, g, TAG_SUMS, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            st = sc_errorf(SC_ERR_IO, "rank 0: receiving the activation sums of search group %d failed (was it lost?)", g);
        if (g == 0) memcpy(sums, part, sizeof(double) * LC);   // the base model's: rank 0's own
        for (int i = 0; !st && i < ng; i++) memcpy(sums + (size_t)(1 + g + i * G) * LC, part + (size_t)(1 + i) * LC, sizeof(double) * LC);
    }
    if (!st) {
        sc_directions_finish(sums, n_ads, L, C, mode, total, dirs, base_means, adapted_means);
        *n_tokens = total;
        sc_log(SC_LOG_INFO, "extract: activation sums of %d adapter%s on %d search groups (adapter a on group a mod %d)", n_ads, n_ads == 1 ? "" : "s", G, G);
    }
    free(ids); free(ab); free(sums); free(part);
    if (st && st != SC_ERR_INTERRUPTED) {   // the other groups may wait for rank 0's word
        sc_log(SC_LOG_ERROR, "%s; aborting the job", sc_last_error());
        sc_dist_abort(d, 1);
    }
    return st;
}

// --- Generation on every search group (evaluate, quantify, the extract stage's sampling) -------
//
// The chunks are sc_evaluate_generate's: batch_seqs sequences each, variant by variant and prompt
// by prompt, each with its tag and stream. Rank 0 sends the work (variants, prompts, streams,
// sampling settings) to the other group leaders (their communicator, leaders_comm) and each group
// leader to its own stages (the group's communicator). Rank 0 then hands each other group leader
// one chunk at a time (TAG_CHUNK on MPI_COMM_WORLD: the chunk's index, CHUNK_DONE, or CHUNK_STOP
// after a signal to rank 0), runs chunks on group 0 itself while there are any left, and takes
// each finished chunk's outputs (TAG_OUT) as it comes. Inside a group of P > 1 stages the leader
// broadcasts the chunk's index before each chunk (its stages' go word); rows go stage to stage
// and the tokens from the last stage to all. A chunk holds the same sequences in the same batch
// wherever it runs, so every token is bitwise that of one process.

enum { G_VARIANTS, G_PROMPTS, G_BATCH, G_IDS, G_MAX_NEW, G_GREEDY, G_TOP_K, G_VOCAB, G_NSTOP, G_STREAM, G_INTS };
enum { CHUNK_DONE = -1, CHUNK_STOP = -2, MAX_STOPS = 8 };

typedef struct {
    int h[G_INTS];
    float f[2];                // temperature, top_p
    unsigned long long seed;
    int32_t stops[MAX_STOPS];
    int *vk;                   // per variant: kind, adapter kind, adapter rank
    float *vf;                 // per variant: adapter scaling, direction scale
    int32_t *ids;              // the prompts one after another
    int *plen;                 // own only: the caller's on rank 0
    uint64_t *stream;          // NULL: stream p for prompt p
    const int32_t **prompts;
    sc_eval_variant *var;
    int own;                   // this rank received the work: plen, stream, prompts, var (and its vectors) are its own
    sc_sample_opts o;
} gen_work;

static void work_free(gen_work *w, sc_backend *be) {
    if (w->own) {
        for (int v = 0; w->var && v < w->h[G_VARIANTS]; v++) {
            sc_adapter_free(w->var[v].adapter);
            if (w->var[v].directions) be->op->free(be, (void *)w->var[v].directions);
        }
        free(w->plen); free(w->stream); free(w->prompts); free(w->var);
    }
    free(w->vk); free(w->vf); free(w->ids);
    memset(w, 0, sizeof *w);
}

// Rank 0: the work of one generation from the hook's arguments (pointing at the caller's).
static sc_status work_from_args(gen_work *w, const sc_eval_variant *variants, int n_var, const int32_t *const *prompts, const int *plen,
                                int n_p, const uint64_t *stream, const sc_sample_opts *o, int batch_seqs) {
    memset(w, 0, sizeof *w);
    if (o->n_stop > MAX_STOPS)
        return sc_errorf(SC_ERR_ARG, "generation across ranks: %d stop tokens; at most %d travel to the other ranks", o->n_stop, MAX_STOPS);
    int h[G_INTS] = {n_var, n_p, batch_seqs, 0, o->max_new_tokens, o->greedy, o->top_k, o->vocab_limit, o->n_stop, stream != NULL};
    for (int p = 0; p < n_p; p++) h[G_IDS] += plen[p];
    memcpy(w->h, h, sizeof h);
    w->f[0] = o->temperature; w->f[1] = o->top_p;
    w->seed = o->seed;
    for (int i = 0; i < o->n_stop; i++) w->stops[i] = o->stop_ids[i];
    w->vk = calloc((size_t)n_var * 3 + 1, sizeof(int));
    w->vf = calloc((size_t)n_var * 2 + 1, sizeof(float));
    w->ids = malloc(sizeof(int32_t) * (size_t)(h[G_IDS] + 1));
    if (!w->vk || !w->vf || !w->ids) return sc_errorf(SC_ERR_MEM, "out of memory");
    for (int v = 0; v < n_var; v++) {
        w->vk[3 * v] = variants[v].kind;
        if (variants[v].kind == SC_EVAL_ADAPTER) { w->vk[3 * v + 1] = variants[v].adapter->kind; w->vk[3 * v + 2] = variants[v].adapter->r; w->vf[2 * v] = variants[v].adapter->scaling; }
        w->vf[2 * v + 1] = variants[v].scale;
    }
    for (int p = 0, at = 0; p < n_p; at += plen[p], p++) memcpy(w->ids + at, prompts[p], sizeof(int32_t) * (size_t)plen[p]);
    w->plen = (int *)plen;
    w->stream = (uint64_t *)stream;
    w->prompts = (const int32_t **)prompts;
    w->var = (sc_eval_variant *)variants;
    w->o = *o;
    return SC_OK;
}

// The work from the communicator's rank 0 to the others (send: this rank is rank 0 of comm and
// has the work; else it receives it and makes its own variants on be).
static sc_status work_xfer(gen_work *w, MPI_Comm comm, int send, sc_backend *be, int L, int C, int rank) {
    int rc = MPI_Bcast(w->h, G_INTS, MPI_INT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(w->f, 2, MPI_FLOAT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(&w->seed, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(w->stops, MAX_STOPS, MPI_INT32_T, 0, comm);
    if (rc != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "rank %d: passing on the generation work failed (a rank lost?)", rank);
    const int n_var = w->h[G_VARIANTS], n_p = w->h[G_PROMPTS];
    if (!send) {
        w->own = 1;
        w->vk = calloc((size_t)n_var * 3 + 1, sizeof(int));
        w->vf = calloc((size_t)n_var * 2 + 1, sizeof(float));
        w->ids = malloc(sizeof(int32_t) * (size_t)(w->h[G_IDS] + 1));
        w->plen = malloc(sizeof(int) * (size_t)(n_p + 1));
        w->prompts = malloc(sizeof(int32_t *) * (size_t)(n_p + 1));
        w->stream = w->h[G_STREAM] ? malloc(sizeof(uint64_t) * (size_t)(n_p + 1)) : NULL;
        w->var = calloc((size_t)n_var + 1, sizeof *w->var);
        if (!w->vk || !w->vf || !w->ids || !w->plen || !w->prompts || !w->var || (w->h[G_STREAM] && !w->stream))
            return sc_errorf(SC_ERR_MEM, "out of memory for the generation work");
    }
    float *buf = malloc(sizeof(float) * (size_t)L * C * 2 + 16);
    if (!buf) return sc_errorf(SC_ERR_MEM, "out of memory");
    rc = MPI_Bcast(w->vk, 3 * n_var, MPI_INT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(w->vf, 2 * n_var, MPI_FLOAT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(w->plen, n_p, MPI_INT, 0, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(w->ids, w->h[G_IDS], MPI_INT32_T, 0, comm);
    if (rc == MPI_SUCCESS && w->stream) rc = MPI_Bcast(w->stream, n_p, MPI_UNSIGNED_LONG_LONG, 0, comm);
    sc_status st = SC_OK;
    for (int v = 0; !st && rc == MPI_SUCCESS && v < n_var; v++) {   // each variant's vectors
        sc_eval_variant *x = &w->var[v];
        if (!send) { x->kind = (sc_eval_kind)w->vk[3 * v]; x->scale = w->vf[2 * v + 1]; }
        if (x->kind == SC_EVAL_ADAPTER) {
            if (!send && (st = sc_adapter_create(be, (sc_adapter_kind)w->vk[3 * v + 1], L, C, w->vk[3 * v + 2], w->vf[2 * v], &x->adapter))) break;
            const size_t nA = sc_adapter_numel_A(x->adapter), nB = sc_adapter_numel_B(x->adapter);
            if (nA + nB > (size_t)L * C * 2) { st = sc_errorf(SC_ERR_INTERNAL, "generation: an adapter larger than planned"); break; }
            if (send && (st = sc_adapter_get(x->adapter, buf, buf + nA))) break;
            if ((rc = MPI_Bcast(buf, (int)(nA + nB), MPI_FLOAT, 0, comm)) == MPI_SUCCESS && !send) st = sc_adapter_set(x->adapter, buf, buf + nA);
        } else if (x->kind == SC_EVAL_DIRECTION) {
            if (!send) {
                float *dv = NULL;
                if ((st = sc_backend_alloc_floats(be, (size_t)L * C, "steering directions", &dv))) break;
                x->directions = dv;
            } else if ((st = be->op->download(be, buf, x->directions, sizeof(float) * (size_t)L * C))) break;
            if ((rc = MPI_Bcast(buf, L * C, MPI_FLOAT, 0, comm)) == MPI_SUCCESS && !send)
                st = be->op->upload(be, (float *)x->directions, buf, sizeof(float) * (size_t)L * C);
        }
    }
    free(buf);
    if (!st && rc != MPI_SUCCESS) st = sc_errorf(SC_ERR_IO, "rank %d: passing on the generation work failed (a rank lost?)", rank);
    if (!st && !send) {
        for (int p = 0, at = 0; p < n_p; at += w->plen[p], p++) w->prompts[p] = w->ids + at;
        sc_sample_opts_default(&w->o);
        w->o.max_new_tokens = w->h[G_MAX_NEW]; w->o.greedy = w->h[G_GREEDY]; w->o.top_k = w->h[G_TOP_K]; w->o.vocab_limit = w->h[G_VOCAB];
        w->o.n_stop = w->h[G_NSTOP]; w->o.stop_ids = w->stops; w->o.temperature = w->f[0]; w->o.top_p = w->f[1]; w->o.seed = w->seed;
    }
    return st;
}

// One rank's part of a generation: its stage's generator, sized for a chunk as one process sizes it.
typedef struct {
    const sc_dist *d;
    const gen_work *w;
    sc_model view;             // this rank's blocks
    sc_backend *be;
    sc_eval_hook *eh;
    sc_gen *gen;
    sc_gen_stage *gst;
    sc_hook hook;
    sc_xfer_mode mode;         // how the rows travel (xfer.h)
    float *host;               // staged: pinned host copy of the rows (op->host_alloc)
    const int32_t **cp;
    int *cl, *ct;
    uint64_t *cs;
    int total, nb_max, n_chunks;
} runner;

static void runner_close(runner *r) {
    free(r->cp); free(r->cl); free(r->ct); free(r->cs);
    if (r->be) r->be->op->host_free(r->be, r->host);
    sc_gen_stage_free(r->gst);
    sc_gen_free(r->gen);
    sc_eval_hook_free(r->eh);
    memset(r, 0, sizeof *r);
}

static sc_status runner_open(const sc_dist *d, const sc_model *model, sc_backend *be, const gen_work *w, runner *r) {
    memset(r, 0, sizeof *r);
    r->d = d; r->w = w; r->be = be;
    sc_dist_slice_view(d, model, &r->view);
    r->total = w->h[G_VARIANTS] * w->h[G_PROMPTS];
    const int batch = w->h[G_BATCH];
    sc_gen_plan plan = {.max_seqs = batch < r->total ? batch : r->total, .max_prompt = 1, .max_new = w->o.max_new_tokens};
    for (int p = 0; p < w->h[G_PROMPTS]; p++) if (w->plen[p] > plan.max_prompt) plan.max_prompt = w->plen[p];
    r->nb_max = plan.max_seqs;
    r->n_chunks = r->nb_max > 0 ? (r->total + r->nb_max - 1) / r->nb_max : 0;
    if (r->total == 0) return SC_OK;
    r->cp = malloc(sizeof(int32_t *) * (size_t)r->nb_max);
    r->cl = malloc(sizeof(int) * (size_t)r->nb_max);
    r->ct = malloc(sizeof(int) * (size_t)r->nb_max);
    r->cs = malloc(sizeof(uint64_t) * (size_t)r->nb_max);
    sc_status st = r->cp && r->cl && r->ct && r->cs ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
    if (!st) st = sc_eval_hook_create(w->var, w->h[G_VARIANTS], model->cfg.n_layers, &r->eh);
    if (!st) st = sc_gen_create(&plan, &r->gen);
    if (!st) st = sc_gen_stage_create(&r->view, be, &plan, &r->gst);
    char why[512];
    if (!st) st = sc_xfer_choose(be, &r->mode, why, sizeof why);
    if (!st && d->stages > 1 && r->mode == SC_XFER_STAGED)
        st = be->op->host_alloc(be, sizeof(float) * (size_t)r->gst->max_rows * model->cfg.hidden, "the generation rows' pinned staging", (void **)&r->host);
    if (!st) r->hook = sc_eval_hook_get(r->eh);
    if (st) runner_close(r);
    return st;
}

// Chunk c on this rank's stage of its group (*nb: its sequences); the outputs stay in r->gen.
static sc_status run_chunk(runner *r, int c, int *nb) {
    const sc_dist *d = r->d;
    const gen_work *w = r->w;
    const int s = d->stage, last = d->stages - 1, C = r->view.cfg.hidden, n_p = w->h[G_PROMPTS], k0 = c * r->nb_max;
    MPI_Comm comm = d->stages > 1 ? *(MPI_Comm *)d->group_comm : MPI_COMM_NULL;
    if (c < 0 || k0 >= r->total) return sc_errorf(SC_ERR_INTERNAL, "rank %d: generation chunk %d of %d", d->rank, c, r->n_chunks);
    *nb = r->total - k0 < r->nb_max ? r->total - k0 : r->nb_max;
    for (int j = 0; j < *nb; j++) {
        const int v = (k0 + j) / n_p, p = (k0 + j) % n_p;
        r->cp[j] = w->prompts[p]; r->cl[j] = w->plen[p]; r->ct[j] = v;
        r->cs[j] = w->stream ? w->stream[p] : (uint64_t)p;
    }
    sc_status st = sc_gen_start(r->gen, r->cp, r->cl, *nb, r->cs, r->ct, &w->o);
    while (!st && !sc_gen_done(r->gen)) {
        const sc_batch *b = sc_gen_batch(r->gen);
        const int n = b->seq_start[b->n_seq] * C;
        if (s > 0 && (st = sc_xfer_recv(r->be, r->mode, r->gst->hidden, r->host, (size_t)n, s - 1, TAG_ROWS, comm, "generation rows")))
            return sc_error_wrap(st, "rank %d: ", d->rank);
        if ((st = sc_gen_stage_forward(r->gst, r->gen, &r->hook))) break;
        if (s < last) {
            if ((st = sc_xfer_send(r->be, r->mode, r->gst->hidden, r->host, (size_t)n, s + 1, TAG_ROWS, comm, "generation rows")))
                return sc_error_wrap(st, "rank %d: ", d->rank);
        } else if ((st = sc_gen_stage_sample(r->gst, r->gen, &w->o))) break;
        if (d->stages > 1 && MPI_Bcast(r->gst->tokens, sc_gen_n_sample(r->gen), MPI_INT32_T, last, comm) != MPI_SUCCESS)
            return sc_errorf(SC_ERR_IO, "rank %d: sharing the sampled tokens failed", d->rank);
        st = sc_gen_advance(r->gen, r->gst->tokens);
    }
    return st;
}

// The chunk's index from the group's leader to its other stages (their go word; P > 1).
static sc_status group_word(const sc_dist *d, int *c) {
    if (d->stages < 2) return SC_OK;
    if (MPI_Bcast(c, 1, MPI_INT, 0, *(MPI_Comm *)d->group_comm) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank %d: waiting for the next generation chunk from the group's leader failed (a rank lost?)", d->rank);
    return SC_OK;
}

// A rank other than 0: the chunks its group is handed until CHUNK_DONE or CHUNK_STOP; a group
// leader sends each chunk's outputs to rank 0 ([c, nb, (n, stopped) per sequence, the ids]).
static sc_status serve_chunks(const sc_dist *d, runner *r) {
    int32_t *msg = NULL;
    sc_status st = SC_OK;
    for (;;) {
        int c = 0, nb = 0;
        if (d->stage == 0 && MPI_Recv(&c, 1, MPI_INT, 0, TAG_CHUNK, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
            st = sc_errorf(SC_ERR_IO, "rank %d: waiting for a generation chunk from rank 0 failed (was it lost?)", d->rank);
            break;
        }
        if ((st = group_word(d, &c))) break;
        if (c < 0) {
            if (c == CHUNK_STOP) st = sc_errorf(SC_ERR_INTERRUPTED, "stopped by a signal to rank 0 in the middle of the generation; --resume continues");
            break;
        }
        if ((st = run_chunk(r, c, &nb))) break;
        if (d->stage != 0) continue;   // the group's leader reports the chunk
        size_t len = 2 + 2 * (size_t)nb;
        for (int j = 0; j < nb; j++) { int n = 0, stopped = 0; sc_gen_output(r->gen, j, &n, &stopped); len += (size_t)n; }
        free(msg);
        if (!(msg = malloc(sizeof(int32_t) * len))) { st = sc_errorf(SC_ERR_MEM, "out of memory for the generated tokens"); break; }
        msg[0] = c; msg[1] = nb;
        for (int j = 0, at = 2 + 2 * nb; j < nb; j++) {
            int n = 0, stopped = 0;
            const int32_t *ids = sc_gen_output(r->gen, j, &n, &stopped);
            msg[2 + 2 * j] = n; msg[3 + 2 * j] = stopped;
            memcpy(msg + at, ids, sizeof(int32_t) * (size_t)n);
            at += n;
        }
        if (MPI_Send(msg, (int)len, MPI_INT32_T, 0, TAG_OUT, MPI_COMM_WORLD) != MPI_SUCCESS) {
            st = sc_errorf(SC_ERR_IO, "rank %d: sending the generated tokens to rank 0 failed", d->rank);
            break;
        }
        sc_log(SC_LOG_INFO, "generated chunk %d of %d (sequences %d..%d of %d) for rank 0 on search group %d", c + 1, r->n_chunks,
               c * r->nb_max, c * r->nb_max + nb - 1, r->total, d->group);
    }
    free(msg);
    return st;
}

static sc_status keep_output(sc_gen_out *dst, const int32_t *ids, int n, int stopped) {
    if (!(dst->ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1)))) return sc_errorf(SC_ERR_MEM, "out of memory for the generated tokens");
    memcpy(dst->ids, ids, sizeof(int32_t) * (size_t)n);
    dst->n = n;
    dst->stopped = stopped;
    return SC_OK;
}

// Rank 0: a group leader's finished chunk (the one it holds) into out.
static sc_status take_chunk(const sc_dist *d, int g, int held, const runner *r, const MPI_Status *status, int32_t **msg, int *nb, sc_gen_out *out) {
    const int src = g * d->stages;
    int count = 0;
    MPI_Get_count(status, MPI_INT32_T, &count);
    int32_t *m = realloc(*msg, sizeof(int32_t) * (size_t)(count > 0 ? count : 1));
    if (!m) return sc_errorf(SC_ERR_MEM, "out of memory for the generated tokens");
    *msg = m;
    if (MPI_Recv(m, count, MPI_INT32_T, src, TAG_OUT, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank 0: receiving the generated tokens of search group %d (rank %d) failed (was it lost?)", g, src);
    if (count < 2 || m[0] != held || m[1] < 1 || m[1] > r->nb_max || count < 2 + 2 * m[1])
        return sc_errorf(SC_ERR_INTERNAL, "rank 0: search group %d sent chunk %d, not the chunk %d it holds", g, count >= 1 ? m[0] : -1, held);
    *nb = m[1];
    for (int j = 0, at = 2 + 2 * m[1]; j < m[1]; j++) {
        const int n = m[2 + 2 * j];
        if (n < 0 || at + n > count) return sc_errorf(SC_ERR_INTERNAL, "rank 0: search group %d sent a short chunk %d", g, held);
        SC_TRY(keep_output(&out[held * r->nb_max + j], m + at, n, m[3 + 2 * j]));
        at += n;
    }
    return SC_OK;
}

// Rank 0: hand out the chunks (one at a time to each other group leader), run group 0's, gather
// the outputs. A signal to rank 0 stops the handing out; the groups finish the chunk they hold.
static sc_status dispatch(const sc_dist *d, runner *r, sc_gen_out *out) {
    const int G = d->leaders_comm ? d->groups : 1, P = d->stages;
    int *held = malloc(sizeof(int) * (size_t)G), *by = calloc((size_t)G, sizeof(int));
    int32_t *msg = NULL;
    sc_status st = held && by ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
    int next = 0, stop = 0, finished = 0;
    for (int g = 1; !st && g < G; g++) {
        held[g] = next < r->n_chunks ? next++ : CHUNK_DONE;
        if (MPI_Send(&held[g], 1, MPI_INT, g * P, TAG_CHUNK, MPI_COMM_WORLD) != MPI_SUCCESS)
            st = sc_errorf(SC_ERR_IO, "rank 0: handing a generation chunk to search group %d (rank %d) failed (was it lost?)", g, g * P);
    }
    sc_monitor_progress("generating", 0, r->total, "sequences");
    while (!st) {
        int busy = 0;
        for (int g = 1; !st && g < G; g++) {
            int flag = 0, nb = 0;
            MPI_Status status;
            if (held[g] < 0) continue;
            if (MPI_Iprobe(g * P, TAG_OUT, MPI_COMM_WORLD, &flag, &status) != MPI_SUCCESS) {
                st = sc_errorf(SC_ERR_IO, "rank 0: waiting for search group %d (rank %d) failed (was it lost?)", g, g * P);
                break;
            }
            if (!flag) { busy = 1; continue; }
            if ((st = take_chunk(d, g, held[g], r, &status, &msg, &nb, out))) break;
            by[g]++;
            finished += nb;
            sc_monitor_progress("generating", finished, r->total, "sequences");
            if (!stop && sc_interrupt_pending()) stop = 1;
            held[g] = stop ? CHUNK_STOP : next < r->n_chunks ? next++ : CHUNK_DONE;
            busy |= held[g] >= 0;
            if (MPI_Send(&held[g], 1, MPI_INT, g * P, TAG_CHUNK, MPI_COMM_WORLD) != MPI_SUCCESS)
                st = sc_errorf(SC_ERR_IO, "rank 0: handing a generation chunk to search group %d (rank %d) failed (was it lost?)", g, g * P);
        }
        if (st) break;
        if (!stop && sc_interrupt_pending()) stop = 1;
        if (!stop && next < r->n_chunks) {   // group 0's next chunk
            int c = next++, nb = 0;
            if ((st = group_word(d, &c)) || (st = run_chunk(r, c, &nb))) break;
            for (int j = 0; j < nb && !st; j++) {
                int n = 0, stopped = 0;
                const int32_t *ids = sc_gen_output(r->gen, j, &n, &stopped);
                st = keep_output(&out[c * r->nb_max + j], ids, n, stopped);
            }
            by[0]++;
            finished += nb;
            sc_monitor_progress("generating", finished, r->total, "sequences");
            continue;
        }
        if (!busy) break;
        struct timespec ts = {0, 1000000L};   // the other groups' last chunks
        nanosleep(&ts, NULL);
    }
    if (!st) {   // group 0's other stages: the end word
        int c = stop ? CHUNK_STOP : CHUNK_DONE;
        st = group_word(d, &c);
    }
    if (!st && stop) st = sc_errorf(SC_ERR_INTERRUPTED, "stopped by a signal to rank 0 in the middle of the generation; --resume continues");
    if (!st && G > 1) {
        char line[512];
        int at = snprintf(line, sizeof line, "generation: %d sequences in %d chunks of up to %d; chunks per search group:", r->total, r->n_chunks, r->nb_max);
        for (int g = 0; g < G && at < (int)sizeof line - 16; g++) at += snprintf(line + at, sizeof line - (size_t)at, " %d", by[g]);
        sc_log(SC_LOG_INFO, "%s", line);
    }
    free(held); free(by); free(msg);
    return st;
}

static sc_status generate_leader(void *ctx, const struct sc_eval_variant *variants, int n_var, const int32_t *const *prompts,
                                 const int *plen, int n_p, const uint64_t *stream, const sc_sample_opts *o, int batch_seqs, sc_gen_out *out) {
    const dist_directions_ctx *x = ctx;
    const sc_dist *d = x->d;
    const int L = x->model->cfg.n_layers, C = x->model->cfg.hidden, total = n_var * n_p;
    for (int k = 0; k < total; k++) memset(&out[k], 0, sizeof out[k]);
    if (batch_seqs < 1) return sc_errorf(SC_ERR_ARG, "evaluate: batch of %d sequences: must be at least 1", batch_seqs);
    for (int p = 0; p < n_p; p++) if (plen[p] <= 0) return sc_errorf(SC_ERR_ARG, "evaluate: prompt %d is empty", p);
    if (total == 0) return SC_OK;
    gen_work w;
    sc_status st = work_from_args(&w, variants, n_var, prompts, plen, n_p, stream, o, batch_seqs);
    int cmd = CMD_GENERATE, rc = MPI_SUCCESS;
    if (!st && d->leaders_comm) {   // the other group leaders
        for (int g = 1; g < d->groups && rc == MPI_SUCCESS; g++) rc = MPI_Send(&cmd, 1, MPI_INT, g * d->stages, TAG_WCMD, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) st = sc_errorf(SC_ERR_IO, "rank 0: sending the generation work to the search groups failed (a rank lost?)");
        else st = work_xfer(&w, *(MPI_Comm *)d->leaders_comm, 1, x->be, L, C, 0);
    }
    if (!st && d->stages > 1) {   // group 0's other stages
        MPI_Comm comm = *(MPI_Comm *)d->group_comm;
        for (int s = 1; s < d->stages && rc == MPI_SUCCESS; s++) rc = MPI_Send(&cmd, 1, MPI_INT, s, TAG_CMD, comm);
        if (rc != MPI_SUCCESS) st = sc_errorf(SC_ERR_IO, "rank 0: sending the generation work to search group 0's stages failed (a rank lost?)");
        else st = work_xfer(&w, comm, 1, x->be, L, C, 0);
    }
    runner r;
    memset(&r, 0, sizeof r);
    if (!st) st = runner_open(d, x->model, x->be, &w, &r);
    sc_interrupt_defer(1);   // a signal stops the work between chunks (dispatch), never inside one
    if (!st) st = dispatch(d, &r, out);
    sc_interrupt_defer(0);
    runner_close(&r);
    work_free(&w, x->be);
    if (st) for (int k = 0; k < total; k++) { free(out[k].ids); memset(&out[k], 0, sizeof out[k]); }
    if (st && st != SC_ERR_INTERRUPTED) {   // the other ranks may wait in the middle of a generation
        sc_log(SC_LOG_ERROR, "%s; aborting the job", sc_last_error());
        sc_dist_abort(d, 1);
    }
    return st;
}

// A rank other than 0: one CMD_GENERATE (from rank 0 on the leaders' communicator to a group
// leader, which passes it on to its stages; from the group's leader to its other stages).
static sc_status generate_follower(const sc_dist *d, const sc_model *model, sc_backend *be) {
    const int L = model->cfg.n_layers, C = model->cfg.hidden;
    gen_work w;
    memset(&w, 0, sizeof w);
    sc_status st = work_xfer(&w, d->stage == 0 ? *(MPI_Comm *)d->leaders_comm : *(MPI_Comm *)d->group_comm, 0, be, L, C, d->rank);
    if (!st && d->stage == 0 && d->stages > 1) {   // a group leader: to its stages
        MPI_Comm comm = *(MPI_Comm *)d->group_comm;
        int cmd = CMD_GENERATE, rc = MPI_SUCCESS;
        for (int s = 1; s < d->stages && rc == MPI_SUCCESS; s++) rc = MPI_Send(&cmd, 1, MPI_INT, s, TAG_CMD, comm);
        st = rc == MPI_SUCCESS ? work_xfer(&w, comm, 1, be, L, C, d->rank)
                               : sc_errorf(SC_ERR_IO, "rank %d: sending the generation work to its group's stages failed (a rank lost?)", d->rank);
    }
    runner r;
    memset(&r, 0, sizeof r);
    if (!st) st = runner_open(d, model, be, &w, &r);
    if (!st) st = serve_chunks(d, &r);
    runner_close(&r);
    work_free(&w, be);
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
    if (!d->mpi || (d->stages < 2 && d->groups < 2) || d->rank != 0) return SC_OK;
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
    if (!d->mpi || (d->stages < 2 && d->groups < 2) || d->rank != 0) return SC_OK;
#ifdef SC_HAVE_MPI
    dist_directions_ctx *x = malloc(sizeof *x);
    if (!x) return sc_errorf(SC_ERR_MEM, "out of memory");
    *x = (dist_directions_ctx){.d = d, .model = model, .be = be};
    o->compute = d->stages > 1 ? directions_leader : directions_groups;
    o->compute_ctx = x;
    *ctx = x;
#else
    (void)model; (void)be; (void)o;
#endif
    return SC_OK;
}

#ifdef SC_HAVE_MPI
// A rank other than 0 after the search: the work of its group's leader (a stage of a group), or
// of rank 0 (a group's leader: TAG_WCMD on MPI_COMM_WORLD), until CMD_END or rank 0's end.
static sc_status serve_loop(const sc_dist *d, const sc_model *model, sc_backend *be) {
    const int leader = d->stage == 0;
    MPI_Comm comm = leader ? MPI_COMM_WORLD : *(MPI_Comm *)d->group_comm;
    const int tag = leader ? TAG_WCMD : TAG_CMD;
    for (;;) {
        int flag = 0;
        if (MPI_Iprobe(0, tag, comm, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "rank %d: waiting for rank 0 failed", d->rank);
        if (flag) {
            int cmd = 0;
            if (MPI_Recv(&cmd, 1, MPI_INT, 0, tag, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "rank %d: receiving from rank 0 failed", d->rank);
            if (cmd == CMD_END) {
                for (int s = 1; leader && s < d->stages; s++) MPI_Send(&cmd, 1, MPI_INT, s, TAG_CMD, *(MPI_Comm *)d->group_comm);
                return SC_OK;
            }
            sc_status st = cmd == CMD_GENERATE ? generate_follower(d, model, be) : directions_follower(d, model, be);
            if (st && st != SC_ERR_INTERRUPTED) {   // rank 0 waits for this rank's rows, tokens or sums
                sc_log(SC_LOG_ERROR, "rank %d (search group %d, pipeline stage %d): %s: %s; aborting the job", d->rank, d->group, d->stage,
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

// The ranks that serve rank 0 in the later stages: every rank but 0 with more than one group or stage.
static int serves(const sc_dist *d) { return d->mpi && d->rank != 0 && (d->stages > 1 || d->groups > 1); }

sc_status sc_dist_serve(const sc_dist *d, const sc_model *model, sc_backend *be) {
#ifdef SC_HAVE_MPI
    if (!serves(d)) return SC_OK;
    sc_interrupt_defer(1);   // rank 0 decides when the work stops (its chunk words); this rank ends when rank 0 does
    sc_status st = serve_loop(d, model, be);
    sc_interrupt_defer(0);
    return st;
#else
    (void)d; (void)model; (void)be; (void)serves;
    return SC_OK;
#endif
}

int sc_dist_serves(const sc_dist *d) { return serves(d); }

void sc_dist_serve_end(const sc_dist *d) {
#ifdef SC_HAVE_MPI
    if (!d->mpi || d->rank != 0) return;
    int cmd = CMD_END;
    for (int s = 1; d->group_comm && s < d->stages; s++) MPI_Send(&cmd, 1, MPI_INT, s, TAG_CMD, *(MPI_Comm *)d->group_comm);
    for (int g = 1; d->leaders_comm && g < d->groups; g++) MPI_Send(&cmd, 1, MPI_INT, g * d->stages, TAG_WCMD, MPI_COMM_WORLD);
#else
    (void)d;
#endif
}
