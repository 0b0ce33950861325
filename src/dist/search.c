// search.c — the search stage on the layout (dist.h): every group trains its own searches;
// rank 0 writes results.h5.
//
// Messages to rank 0 (MPI_COMM_WORLD, from each rank in the order sent):
//   TAG_RESULT  one finished search: the bytes of its checkpoint (sc_search_state_pack)
//   TAG_DONE    the rank has run all its searches: i32 status, then the error text ("" when ok);
//               always its last message
// and from rank 0 to the others:
//   TAG_STOP    stop after the current step (rank 0 failed or was signalled)
// Ranks other than 0 send with MPI_Isend and keep one result in flight, so training never waits
// for rank 0 to be between steps. Rank 0 takes messages in after each of its own steps and then
// until every rank has said it is done, sleeping 1 ms between looks (no busy wait).
#include "steerclear/dist.h"
#include "steerclear/results.h"
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef SC_HAVE_MPI
#include <mpi.h>

enum { TAG_RESULT = 4101, TAG_DONE = 4102, TAG_STOP = 4103 };

typedef struct {
    const sc_dist *d;
    const sc_search_run *run;
    const int *finished;       // [n_searches] 1: results.h5 holds it (from rank 0)
    int n_searches;
    // rank 0
    sc_results_meta meta;
    int n_done;                // ranks that sent TAG_DONE
    sc_status worker_st;       // the first error a rank reported
    char worker_msg[4200];     // and its message
    int stop_sent;
    // others
    char *in_flight;           // the packed result being sent
    MPI_Request req;
    int stopped;
    // a pipeline stage (P > 1): the group agrees after every step whether to stop
    sc_pipe *pipe;
    sc_status (*base_poll)(void *ctx);
} dist_search;

static void nap_ms(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static int is_finished(void *ctx, int search) {
    const dist_search *x = ctx;
    return search >= 0 && search < x->n_searches && x->finished[search];
}

// After every step on a pipeline: this rank's own poll, then the group's agreement, so every
// stage of the group stops after the same step (signals are deferred meanwhile, core.h).
static sc_status pipe_poll(void *ctx) {
    dist_search *x = ctx;
    sc_status st = x->base_poll(ctx);
    int any = 0;
    if (sc_pipe_agree(x->pipe, st != SC_OK || sc_interrupt_pending(), &any)) {
        sc_log(SC_LOG_ERROR, "%s; aborting the job", sc_last_error());
        sc_dist_abort(x->d, 1);
    }
    if (st) return st;
    if (any)
        return sc_errorf(SC_ERR_INTERRUPTED, "search group %d stopped after a step (a signal, or a stop from rank 0 or another stage); "
                         "its checkpoint holds the steps so far; continue with --resume", x->d->group);
    return SC_OK;
}

static void use_pipe_poll(dist_search *x, sc_search_run *run) {
    if (!x->pipe) return;
    x->base_poll = run->poll;
    run->poll = pipe_poll;
}

// A pipeline rank that fails outside a step (its partners would wait in the next one): end the job.
static void pipe_fail(const dist_search *x, sc_status st) {
    if (!x->pipe || st == SC_OK || st == SC_ERR_INTERRUPTED) return;
    sc_log(SC_LOG_ERROR, "rank %d (search group %d, pipeline stage %d): %s; aborting the job (the other stages of its pipeline cannot go on without it)",
           x->d->rank, x->d->group, x->d->stage, sc_last_error());
    sc_dist_abort(x->d, st == SC_ERR_ARG ? 2 : 1);
}

// A pipeline stage other than 0 trains with its group but sends nothing: the group leader does.
static sc_status no_result(void *ctx, const sc_search_state *s) {
    (void)ctx; (void)s;
    return SC_OK;
}

// --- Rank 0 -------------------------------------------------------------------------------------

// One message from any rank, when one is waiting (*got = 0 when none).
static sc_status take_one(dist_search *x, int *got) {
    int flag = 0;
    MPI_Status ms;
    *got = 0;
    if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &ms) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank 0: MPI_Iprobe failed while waiting for search results (a rank was lost?)");
    if (!flag) return SC_OK;
    *got = 1;
    int count = 0;
    MPI_Get_count(&ms, MPI_BYTE, &count);
    char *buf = malloc(count > 0 ? (size_t)count : 1);
    if (!buf) return sc_errorf(SC_ERR_MEM, "rank 0: out of memory for a %d-byte message from rank %d", count, ms.MPI_SOURCE);
    if (MPI_Recv(buf, count, MPI_BYTE, ms.MPI_SOURCE, ms.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        free(buf);
        return sc_errorf(SC_ERR_IO, "rank 0: receiving from rank %d failed (was it lost?)", ms.MPI_SOURCE);
    }
    sc_status st = SC_OK;
    if (ms.MPI_TAG == TAG_RESULT) {
        char what[64];
        snprintf(what, sizeof what, "a search result from rank %d", ms.MPI_SOURCE);
        const sc_search_run *r = x->run;
        sc_search_state *s = NULL;
        st = sc_search_state_unpack(buf, (size_t)count, what, r->cfg, r->be, r->model->cfg.n_layers, r->model->cfg.hidden, &s);
        if (!st && s->steps_done != s->steps_total) st = sc_errorf(SC_ERR_INTERNAL, "%s: search %d has %d of %d steps", what, s->search, s->steps_done, s->steps_total);
        if (!st) st = sc_results_add_search(r->run, s, &x->meta);
        if (!st) sc_log(SC_LOG_INFO, "search %d (trained by rank %d) added to results.h5", s->search, ms.MPI_SOURCE);
        sc_search_state_free(s);
    } else if (ms.MPI_TAG == TAG_DONE && count >= 4) {
        int32_t code;
        memcpy(&code, buf, 4);
        x->n_done++;
        if (code != SC_OK && x->worker_st == SC_OK) {
            x->worker_st = (sc_status)code;
            buf[count - 1] = '\0';
            snprintf(x->worker_msg, sizeof x->worker_msg, "rank %d (search group %d): %s", ms.MPI_SOURCE, ms.MPI_SOURCE / x->d->stages, buf + 4);
            sc_log(SC_LOG_ERROR, "%s", x->worker_msg);
        }
    } else st = sc_errorf(SC_ERR_INTERNAL, "rank 0: unexpected message (tag %d, %d bytes) from rank %d", ms.MPI_TAG, count, ms.MPI_SOURCE);
    free(buf);
    return st;
}

// After each of rank 0's own steps: take in what arrived; a rank that failed stops rank 0's
// searches too (leader reports that rank's error).
static sc_status drain(void *ctx) {
    dist_search *x = ctx;
    int got = 1;
    while (got) SC_TRY(take_one(x, &got));
    if (x->worker_st != SC_OK) return sc_errorf(SC_ERR_INTERRUPTED, "stopped: %s", x->worker_msg);
    return SC_OK;
}

static void send_stop(dist_search *x) {
    if (x->stop_sent) return;
    x->stop_sent = 1;
    int one = 1;
    for (int r = 1; r < x->d->size; r++) MPI_Send(&one, 1, MPI_INT, r, TAG_STOP, MPI_COMM_WORLD);
}

// This rank's share of the searches (its group's, on its stage of the pipeline); a pipeline's
// stages stop deferring signals afterwards and report their traffic.
static sc_status run_searches(dist_search *x, sc_search_run *run) {
    use_pipe_poll(x, run);
    sc_status st = sc_search_run_range(run, 0, x->n_searches);
    if (x->pipe) {
        pipe_fail(x, st);
        sc_interrupt_defer(0);
        sc_pipe_report(x->pipe);
    }
    return st;
}

static sc_status leader(dist_search *x, sc_search_run *run) {
    run->poll = drain;
    sc_status st = run_searches(x, run);
    char own[4096];
    snprintf(own, sizeof own, "%s", st ? sc_last_error() : "");
    if (st) send_stop(x);
    // every other rank's results and its last word; a signal here stops them too
    while (x->n_done < x->d->size - 1) {
        int got = 0;
        sc_status e = take_one(x, &got);
        if (e) {   // a message could not be taken: the others would wait for ever
            sc_log(SC_LOG_ERROR, "%s; aborting the job", sc_last_error());
            sc_dist_abort(x->d, 1);
        }
        if (x->worker_st != SC_OK || sc_interrupted()) send_stop(x);
        if (!got) nap_ms(1);
    }
    // the failure to report: rank 0's own error (the others were stopped because of it), else
    // another rank's (it may have stopped rank 0), else rank 0's signal
    if (st && st != SC_ERR_INTERRUPTED) { sc_errorf(st, "%s", own); return st; }
    if (x->worker_st != SC_OK) return sc_errorf(x->worker_st, "%s", x->worker_msg);
    if (st) { sc_errorf(st, "%s", own); return st; }
    return SC_OK;
}

// --- Other ranks --------------------------------------------------------------------------------

static sc_status wait_in_flight(dist_search *x) {
    if (!x->in_flight) return SC_OK;
    int rc = MPI_Wait(&x->req, MPI_STATUS_IGNORE);
    free(x->in_flight);
    x->in_flight = NULL;
    return rc == MPI_SUCCESS ? SC_OK : sc_errorf(SC_ERR_IO, "rank %d: sending a search result to rank 0 failed (was rank 0 lost?)", x->d->rank);
}

static sc_status send_result(void *ctx, const sc_search_state *s) {
    dist_search *x = ctx;
    SC_TRY(wait_in_flight(x));
    size_t len = 0;
    SC_TRY(sc_search_state_pack(s, &x->in_flight, &len));
    if (len > (size_t)0x7fffffff) return sc_errorf(SC_ERR_ARG, "search %d: its result is %zu bytes, more than one MPI message holds (2 GiB)", s->search, len);
    if (MPI_Isend(x->in_flight, (int)len, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD, &x->req) != MPI_SUCCESS) {
        free(x->in_flight);
        x->in_flight = NULL;
        return sc_errorf(SC_ERR_IO, "rank %d: sending search %d to rank 0 failed", x->d->rank, s->search);
    }
    sc_log(SC_LOG_INFO, "search %d finished; sent to rank 0 (%zu bytes)", s->search, len);
    return SC_OK;
}

static sc_status look_for_stop(void *ctx) {
    dist_search *x = ctx;
    int flag = 0;
    MPI_Iprobe(0, TAG_STOP, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    if (!flag) return SC_OK;
    int one;
    MPI_Recv(&one, 1, MPI_INT, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    x->stopped = 1;
    return sc_errorf(SC_ERR_INTERRUPTED, "stopped by rank 0 (a signal, or an error on another rank); the searches of this rank are checkpointed");
}

// This rank's last word to rank 0: its status and error message.
static sc_status send_done(const sc_dist *d, sc_status st, const char *msg) {
    const size_t n = strlen(msg) + 1;
    char *buf = malloc(4 + n);
    if (!buf) sc_dist_abort(d, 1);
    int32_t code = (int32_t)st;
    memcpy(buf, &code, 4);
    memcpy(buf + 4, msg, n);
    if (MPI_Send(buf, (int)(4 + n), MPI_BYTE, 0, TAG_DONE, MPI_COMM_WORLD) != MPI_SUCCESS) {
        free(buf);
        sc_log(SC_LOG_ERROR, "rank %d: cannot report to rank 0 (was it lost?); aborting the job", d->rank);
        sc_dist_abort(d, 1);
    }
    free(buf);
    if (st) sc_errorf(st, "%s", msg);
    return st;
}

static sc_status follower(dist_search *x, sc_search_run *run) {
    run->poll = look_for_stop;
    run->add_result = x->d->stage == 0 ? send_result : no_result;
    sc_status st = run_searches(x, run);
    char msg[4096];
    snprintf(msg, sizeof msg, "%s", st ? sc_last_error() : "");
    sc_status w = wait_in_flight(x);
    if (!st && w) { st = w; snprintf(msg, sizeof msg, "%s", sc_last_error()); }
    return send_done(x->d, st, msg);
}
#endif

sc_status sc_dist_search_abstain(const sc_dist *d, int n_searches, sc_status st) {
    if (!d->mpi || d->size == 1 || d->rank == 0) return st;
#ifdef SC_HAVE_MPI
    char msg[4096];
    snprintf(msg, sizeof msg, "%s", sc_last_error());
    int *finished = calloc((size_t)n_searches + 1, sizeof(int));
    if (!finished) sc_dist_abort(d, 1);
    sc_status b = sc_dist_bcast_ints(d, finished, n_searches);
    free(finished);
    if (b) sc_dist_abort(d, 1);
    return send_done(d, st, msg);
#else
    (void)n_searches;
    return st;
#endif
}

sc_status sc_dist_search(const sc_dist *d, sc_search_run *run, int n_searches) {
    if (!d->mpi || d->size == 1) return sc_search_run_range(run, 0, n_searches);
#ifdef SC_HAVE_MPI
    dist_search x;
    memset(&x, 0, sizeof x);
    x.d = d;
    x.run = run;
    x.n_searches = n_searches;
    int *finished = calloc((size_t)n_searches + 1, sizeof(int));
    if (!finished) sc_dist_abort(d, 1);
    if (d->rank == 0)
        for (int s = 0; s < n_searches; s++) finished[s] = sc_results_has_search(run->run, s);
    SC_TRY(sc_dist_bcast_ints(d, finished, n_searches));
    x.finished = finished;
    run->stride = d->groups;
    run->offset = d->group;
    run->dist_ctx = &x;
    run->is_finished = is_finished;
    x.meta = (sc_results_meta){.model_dir = (char *)(run->model_dir ? run->model_dir : run->model->dir),
                               .config_json = (char *)run->config_json, .n_layers = run->model->cfg.n_layers,
                               .hidden = run->model->cfg.hidden};
    if (d->stages > 1) {   // this rank's pipeline stage; signals wait for the group's word between steps
        sc_status pst = sc_pipe_create(d, run, &x.pipe);
        if (pst) {   // its partners would wait for it in the first step
            sc_log(SC_LOG_ERROR, "rank %d (search group %d, pipeline stage %d): %s; aborting the job", d->rank, d->group, d->stage, sc_last_error());
            sc_dist_abort(d, pst == SC_ERR_ARG ? 2 : 1);
        }
        run->pipe = x.pipe;
        run->pipe_step = sc_pipe_step;
        run->read_only = d->stage != 0;
        sc_interrupt_defer(1);
    }
    sc_status st = d->rank == 0 ? leader(&x, run) : follower(&x, run);
    sc_interrupt_defer(0);
    sc_pipe_free(x.pipe);
    run->pipe = NULL;
    run->pipe_step = NULL;
    free(finished);
    return st;
#else
    return sc_errorf(SC_ERR_INTERNAL, "MPI layout without MPI");
#endif
}
