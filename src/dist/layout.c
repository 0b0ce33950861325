// layout.c — MPI start-up and the layout of search groups and pipeline stages (see dist.h).
#include "steerclear/dist.h"
#include "steerclear/monitor.h"
#include "pipeline.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef SC_HAVE_MPI
#include <mpi.h>
#endif

int sc_dist_built_with_mpi(void) {
#ifdef SC_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

static int env_int(const char *name) {
    const char *v = getenv(name);
    if (!v || !isdigit((unsigned char)v[0])) return 0;
    long n = strtol(v, NULL, 10);
    return n >= 1 && n <= 1000000 ? (int)n : 0;
}

#ifdef SC_HAVE_MPI
// Whether an MPI launcher started this process (it left its wire-up variables).
static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}
#endif

int sc_dist_launched_size(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        int n = env_int(vars[i]);
        if (n) return n;
    }
    return 1;
}

// Rank-prefixed log lines on ranks other than 0 (their stderr is interleaved with rank 0's).
static int log_rank;
static void rank_sink(sc_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level == SC_LOG_INFO) fprintf(stderr, "rank %d: %s\n", log_rank, msg);
    else fprintf(stderr, "rank %d: %s: %s\n", log_rank, names[level], msg);
}

sc_status sc_dist_init(int stages, sc_dist *d) {
    memset(d, 0, sizeof *d);
    d->size = 1;
    if (stages < 1) stages = 1;
    const int launched = sc_dist_launched_size();
#ifdef SC_HAVE_MPI
    if (launched_by_mpi()) {
        int ok = 0;
        MPI_Initialized(&ok);
        if (!ok && MPI_Init(NULL, NULL) != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "MPI_Init failed; check the launcher (mpirun, or srun --mpi=pmix)");
        // a lost peer must end this rank with a message, not leave it waiting: errors return to
        // the caller, which reports them and aborts the job (dist.h)
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        d->mpi = 1;
    }
#endif
    if (!d->mpi && launched > 1)
        return sc_errorf(SC_ERR_ARG, "started as one of %d tasks, but %s: every task would run the whole study alone. %s", launched,
                         sc_dist_built_with_mpi() ? "no MPI launcher wired them up" : "this steerclear was built without MPI (-DSC_MPI=OFF, or no MPI found)",
                         sc_dist_built_with_mpi() ? "Start it with mpirun, or srun --mpi=pmix (srun --mpi=list shows the choices)"
                                                  : "Install libopenmpi-dev and rebuild with -DSC_MPI=ON, or run one task");
    if (d->rank > 0) { log_rank = d->rank; sc_log_set(rank_sink, NULL); }
    d->stages = stages;
    if (d->size % stages != 0)
        return sc_errorf(SC_ERR_ARG, "%d ranks cannot be split into pipelines of %d stages: the number of ranks must be a multiple of "
                         "--stages (config \"stages\"); start %d or %d ranks, or change the stages",
                         d->size, stages, d->size / stages * stages > 0 ? d->size / stages * stages : stages, (d->size / stages + 1) * stages);
    d->groups = d->size / stages;
    d->group = d->rank / stages;
    d->stage = d->rank % stages;
    char host[64];
    snprintf(host, sizeof host, "%s", sc_hostname());
    if (d->rank == 0 && !(d->hosts = calloc((size_t)d->size, sizeof *d->hosts))) return sc_errorf(SC_ERR_MEM, "out of memory");
#ifdef SC_HAVE_MPI
    if (d->mpi && MPI_Gather(host, 64, MPI_CHAR, d->hosts ? d->hosts[0] : NULL, 64, MPI_CHAR, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank %d: MPI_Gather of the host names failed", d->rank);
#endif
    if (!d->mpi) memcpy(d->hosts[0], host, 64);
#ifdef SC_HAVE_MPI
    if (d->mpi && stages > 1) {   // the group's communicator: its ranks ordered by stage
        MPI_Comm *c = malloc(sizeof *c);
        if (!c) return sc_errorf(SC_ERR_MEM, "out of memory");
        if (MPI_Comm_split(MPI_COMM_WORLD, d->group, d->stage, c) != MPI_SUCCESS) {
            free(c);
            return sc_errorf(SC_ERR_IO, "rank %d: MPI_Comm_split into search group %d failed", d->rank, d->group);
        }
        MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN);
        d->group_comm = c;
    }
    if (d->mpi && d->groups > 1) {   // the group leaders' communicator (the later stages' generation: later.c)
        MPI_Comm c = MPI_COMM_NULL;
        if (MPI_Comm_split(MPI_COMM_WORLD, d->stage == 0 ? 0 : MPI_UNDEFINED, d->group, &c) != MPI_SUCCESS)
            return sc_errorf(SC_ERR_IO, "rank %d: MPI_Comm_split into the group leaders failed", d->rank);
        if (c != MPI_COMM_NULL) {
            MPI_Comm *l = malloc(sizeof *l);
            if (!l) return sc_errorf(SC_ERR_MEM, "out of memory");
            MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
            *l = c;
            d->leaders_comm = l;
        }
    }
#endif
    return SC_OK;
}

// Rank 0 tells the others it is done; they wait for that word in 20 ms naps instead of in
// MPI_Finalize, which polls (about an eighth of a core each while rank 0 runs the later stages).
static void end_quietly(const sc_dist *d) {
#ifdef SC_HAVE_MPI
    enum { TAG_FIN = SC_DIST_TAG_FIN };
    int one = 1;
    if (d->rank == 0) {
        for (int r = 1; r < d->size; r++) MPI_Send(&one, 1, MPI_INT, r, TAG_FIN, MPI_COMM_WORLD);
        return;
    }
    for (;;) {
        int flag = 0;
        if (MPI_Iprobe(0, TAG_FIN, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
        if (flag) { MPI_Recv(&one, 1, MPI_INT, 0, TAG_FIN, MPI_COMM_WORLD, MPI_STATUS_IGNORE); return; }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
#else
    (void)d;
#endif
}

void sc_dist_finalize(sc_dist *d) {
    if (d->mpi && d->size > 1) end_quietly(d);
    free(d->hosts);
    d->hosts = NULL;
    free(d->first); free(d->last);
    d->first = d->last = NULL;
#ifdef SC_HAVE_MPI
    if (d->group_comm) {
        MPI_Comm_free((MPI_Comm *)d->group_comm);
        free(d->group_comm);
        d->group_comm = NULL;
    }
    if (d->leaders_comm) {
        MPI_Comm_free((MPI_Comm *)d->leaders_comm);
        free(d->leaders_comm);
        d->leaders_comm = NULL;
    }
    if (d->mpi) {
        int done = 0;
        MPI_Finalized(&done);
        if (!done) MPI_Finalize();
        d->mpi = 0;
    }
#endif
    if (d->rank > 0) sc_log_set(NULL, NULL);
}

void sc_dist_abort(const sc_dist *d, int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef SC_HAVE_MPI
    if (d->mpi) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)d;
#endif
    exit(code);
}

int sc_dist_search_group(const sc_dist *d, int search) { return d->groups > 1 ? search % d->groups : 0; }

// Equal counts: stage s of P owns blocks [L*s/P, L*(s+1)/P).
static void equal_blocks(int L, int P, int s, int *first, int *last) {
    *first = (int)((long)L * s / P);
    *last = (int)((long)L * (s + 1) / P);
}

void sc_dist_stage_blocks(const sc_dist *d, int n_layers, int stage, int *first, int *last) {
    if (d->first && d->last) { *first = d->first[stage]; *last = d->last[stage]; }
    else equal_blocks(n_layers, d->stages, stage, first, last);
}

sc_status sc_dist_plan(sc_dist *d, const sc_model_config *cfg) {
    const int L = cfg->n_layers, P = d->stages;
    if (P > L)
        return sc_errorf(SC_ERR_ARG, "--stages %d: the model has only %d blocks, and every pipeline stage needs at least one; use --stages %d or fewer",
                         P, L, L);
    // the cost model: a block's weights are used by every row of a step's passes (sampling, P
    // forward, Q forward, Q backward ~ 2 forwards: 5 passes); the head's (V x C) by the sampled
    // rows only (sampling, P and Q heads, Q's head backward: 4 passes), about half the rows
    const double C = cfg->hidden, QD = (double)cfg->n_heads * cfg->head_dim, KD = (double)cfg->n_kv_heads * cfg->head_dim;
    const double block = C * (2 * QD + 2 * KD) + 3 * C * cfg->intermediate;
    d->head_blocks = P > 1 ? 0.5 * 4.0 * cfg->vocab * C / (5.0 * block) : 0;
    free(d->first); free(d->last);
    d->first = malloc(sizeof(int) * (size_t)P);
    d->last = malloc(sizeof(int) * (size_t)P);
    if (!d->first || !d->last) return sc_errorf(SC_ERR_MEM, "out of memory");
    // the last stage takes k blocks and the head; the others share L - k as evenly as they can:
    // the k with the smallest largest stage cost (ties: the most blocks on the last stage)
    int best_k = L - (P - 1);
    double best = 1e300;
    for (int k = L - (P - 1); k >= 1; k--) {
        const double front = P > 1 ? (double)((L - k + P - 2) / (P - 1)) : 0;
        const double cost = k + d->head_blocks > front ? k + d->head_blocks : front;
        if (cost < best - 1e-9) { best = cost; best_k = k; }
    }
    if (P == 1) best_k = L;
    for (int s = 0; s < P - 1; s++) equal_blocks(L - best_k, P - 1, s, &d->first[s], &d->last[s]);
    d->first[P - 1] = L - best_k;
    d->last[P - 1] = L;
    return SC_OK;
}

cJSON *sc_dist_layout_json(const sc_dist *d, int n_layers, int searches) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "mpi", d->mpi);
    cJSON_AddNumberToObject(o, "world_size", d->size);
    cJSON_AddNumberToObject(o, "stages", d->stages);
    cJSON_AddNumberToObject(o, "groups", d->groups);
    cJSON_AddNumberToObject(o, "n_layers", n_layers);
    cJSON *ranks = cJSON_AddArrayToObject(o, "ranks");
    for (int r = 0; r < d->size; r++) {
        cJSON *e = cJSON_CreateObject();
        int f, l;
        sc_dist_stage_blocks(d, n_layers, r % d->stages, &f, &l);
        cJSON_AddNumberToObject(e, "rank", r);
        cJSON_AddNumberToObject(e, "group", r / d->stages);
        cJSON_AddNumberToObject(e, "stage", r % d->stages);
        cJSON_AddStringToObject(e, "host", d->hosts ? d->hosts[r] : "");
        cJSON *b = cJSON_AddArrayToObject(e, "blocks");
        cJSON_AddItemToArray(b, cJSON_CreateNumber(f));
        cJSON_AddItemToArray(b, cJSON_CreateNumber(l));
        const int last_stage = r % d->stages == d->stages - 1;
        cJSON_AddBoolToObject(e, "embedding", f == 0);
        cJSON_AddBoolToObject(e, "head", last_stage);
        cJSON_AddNumberToObject(e, "cost_blocks", (l - f) + (last_stage && d->stages > 1 ? d->head_blocks : 0));
        cJSON_AddItemToArray(ranks, e);
    }
    if (d->stages > 1) {
        cJSON *cm = cJSON_AddObjectToObject(o, "cost_model");
        cJSON_AddNumberToObject(cm, "block", 1);
        cJSON_AddNumberToObject(cm, "head_blocks", d->head_blocks);
        cJSON_AddStringToObject(cm, "assumption", "a block's weights serve every row of 5 passes per step (sampling, P, Q, Q backward ~ 2); "
                                "the head's V x C serve the sampled rows of 4 (sampling, P and Q heads, Q head backward), half the rows");
        cJSON_AddNumberToObject(o, "micro_batches", d->micro);
    }
    cJSON *groups = cJSON_AddArrayToObject(o, "searches");
    for (int g = 0; g < d->groups; g++) {
        cJSON *list = cJSON_CreateArray();
        for (int s = g; s < searches; s += d->groups) cJSON_AddItemToArray(list, cJSON_CreateNumber(s));
        cJSON_AddItemToArray(groups, list);
    }
    return o;
}

void sc_dist_log_layout(const sc_dist *d, int n_layers, int searches) {
    sc_log(SC_LOG_INFO, "layout: %d rank%s%s = %d search group%s x %d pipeline stage%s; searches round-robin over the groups",
           d->size, d->size == 1 ? "" : "s", d->mpi ? " (MPI)" : " (one process, no MPI)", d->groups, d->groups == 1 ? "" : "s",
           d->stages, d->stages == 1 ? "" : "s");
    if (d->stages > 1)
        sc_log(SC_LOG_INFO, "  stage slices by a cost model: a block costs 1, the head and loss %.2f blocks; GPipe with %d micro-batches per step",
               d->head_blocks, d->micro);
    for (int r = 0; r < d->size; r++) {
        int f, l;
        sc_dist_stage_blocks(d, n_layers, r % d->stages, &f, &l);
        char list[160] = "";
        size_t at = 0;
        int shown = 0;
        if (r % d->stages == 0)
            for (int s = r / d->stages; s < searches && at < sizeof list - 16; s += d->groups, shown++)
                at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", shown ? "," : "", s);
        const int last_stage = r % d->stages == d->stages - 1;
        sc_log(SC_LOG_INFO, "  rank %d on %s: group %d stage %d, blocks [%d, %d)%s%s%s%s", r, d->hosts ? d->hosts[r] : "?",
               r / d->stages, r % d->stages, f, l, f == 0 && d->stages > 1 ? " + embedding" : "",
               last_stage && d->stages > 1 ? " + head and loss" : "", shown ? ", searches " : "", list);
    }
}

sc_status sc_dist_bcast_ints(const sc_dist *d, int *v, int n) {
#ifdef SC_HAVE_MPI
    if (d->mpi && MPI_Bcast(v, n, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "rank %d: MPI_Bcast from rank 0 failed (a rank was lost?)", d->rank);
#else
    (void)d; (void)v; (void)n;
#endif
    return SC_OK;
}
