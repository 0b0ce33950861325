// extract.c — the extract stage's activation sums on search group 0's pipeline (dist.h): rank 0
// (stage 0) samples the sequences as before, then every stage of group 0 runs the teacher-forced
// base and adapted passes through its own blocks only (the rows go stage to stage) and sums its
// blocks' outputs; the sums come to rank 0, which computes the directions and the means and writes
// results.h5 as in one process. The batches are the same as in one process and every block sees
// the same rows through the same ops, so the sums, directions and means are bitwise the same.
//
// Messages on group 0's communicator, from rank 0 to each other stage:
//   TAG_CMD   one int: CMD_DIRECTIONS (then the broadcasts below) or CMD_END (stop serving)
// then MPI_Bcast from rank 0: the header, the sequences' lengths and ids, the adapters (A, B);
// between neighbours TAG_ROWS (the rows of a pass), and TAG_SUMS (a stage's blocks' sums, to rank 0).
#include "pipeline.h"
#include "steerclear/extract.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef SC_HAVE_MPI
#include <mpi.h>

enum { TAG_CMD = 4301, TAG_ROWS = 4302, TAG_SUMS = 4303 };
enum { CMD_DIRECTIONS = 1, CMD_END = 2 };
enum { H_ADAPTERS, H_MODE, H_SEQS, H_BATCH, H_KIND, H_RANK, H_IDS, H_MAX_T, H_INTS };

typedef struct {
    const sc_dist *d;
    MPI_Comm comm;
    sc_backend *be;
    float *host;               // staging of the rows when backend memory is not host memory
} link_ctx;

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

// Every stage: the sums of its blocks over the broadcast sequences (host_sums [(n+1)][L][C]).
static sc_status stage_sums(const sc_dist *d, const sc_model *slice, sc_backend *be, sc_adapter *const *ads, const int *h,
                            const int32_t *const *seqs, const int *lens, double *host_sums, int64_t *total) {
    link_ctx k = {.d = d, .comm = *(MPI_Comm *)d->group_comm, .be = be};
    if (be->separate_memory && !(k.host = malloc(sizeof(float) * (size_t)h[H_MAX_T] * slice->cfg.hidden)))
        return sc_errorf(SC_ERR_MEM, "out of memory for the extract rows");
    sc_direction_link link = {.ctx = &k, .recv = link_recv, .send = link_send};
    sc_status st = sc_directions_sums(slice, be, ads, h[H_ADAPTERS], (sc_direction_mode)h[H_MODE], seqs, lens, h[H_SEQS], h[H_BATCH],
                                      &link, host_sums, total);
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
    if (!st) st = stage_sums(d, &view, x->be, ads, h, seqs, lens, sums, &total);
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
    if (st) {   // the other stages may wait in the middle of the passes
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
#endif

void sc_dist_slice_view(const sc_dist *d, const sc_model *m, sc_model *view) {
    *view = *m;
    if (d->stages < 2 || !d->first) return;
    view->first = d->first[d->stage];
    view->last = d->last[d->stage];
    view->has_embed = view->first == 0;
    view->has_head = view->last == m->cfg.n_layers;
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

sc_status sc_dist_serve(const sc_dist *d, const sc_model *model, sc_backend *be) {
#ifdef SC_HAVE_MPI
    if (!d->mpi || d->stages < 2 || d->group != 0 || d->stage == 0) return SC_OK;
    MPI_Comm comm = *(MPI_Comm *)d->group_comm;
    for (;;) {
        int flag = 0;
        if (MPI_Iprobe(0, TAG_CMD, comm, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "rank %d: waiting for rank 0 failed", d->rank);
        if (flag) {
            int cmd = 0;
            if (MPI_Recv(&cmd, 1, MPI_INT, 0, TAG_CMD, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "rank %d: receiving from rank 0 failed", d->rank);
            if (cmd == CMD_END) return SC_OK;
            sc_status st = directions_follower(d, model, be);
            if (st) {   // rank 0 waits for this stage's rows or sums
                sc_log(SC_LOG_ERROR, "rank %d (search group 0, pipeline stage %d): extract: %s; aborting the job", d->rank, d->stage, sc_last_error());
                sc_dist_abort(d, 1);
            }
            continue;
        }
        // rank 0 finished without a word to the group (it stopped early): its end-of-job message
        if (MPI_Iprobe(0, SC_DIST_TAG_FIN, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag) return SC_OK;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
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
