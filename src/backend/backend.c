// backend.c — what every backend shares: creating a context for a device (dispatch to the
// backend that drives it), its two arenas, freeing it, and the memory budget of one rank.
#include "steerclear/backend.h"
#include "backend_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *sc_device_name(sc_device d) { return d == SC_DEVICE_CUDA ? "cuda" : "cpu"; }

sc_status sc_device_parse(const char *s, const char *where, sc_device *out) {
    if (s && !strcmp(s, "cpu")) { *out = SC_DEVICE_CPU; return SC_OK; }
    if (s && !strcmp(s, "cuda")) { *out = SC_DEVICE_CUDA; return SC_OK; }
    return sc_errorf(SC_ERR_ARG, "%s: device '%s' is not known: use cpu or cuda", where, s ? s : "");
}

// --- Arenas: the workspace in backend memory, the host arena on the heap ----------------------

static sc_status ws_alloc(void *ctx, size_t bytes, const char *what, void **out) {
    sc_backend *be = ctx;
    return be->op->alloc(be, bytes, what, out);
}
static void ws_free(void *ctx, void *p) {
    sc_backend *be = ctx;
    be->op->free(be, p);
}
static sc_status host_alloc(void *ctx, size_t bytes, const char *what, void **out) {
    (void)ctx;
    *out = aligned_alloc(SC_ARENA_ALIGN, (bytes + SC_ARENA_ALIGN - 1) / SC_ARENA_ALIGN * SC_ARENA_ALIGN);
    if (!*out) return sc_errorf(SC_ERR_MEM, "out of host memory allocating %.1f MiB for %s", bytes / 1048576.0, what);
    return SC_OK;
}
static void host_free(void *ctx, void *p) { (void)ctx; free(p); }

void sc_backend_init_arenas(sc_backend *be) {
    sc_arena_init(&be->ws, "backend workspace", be, ws_alloc, ws_free);
    sc_arena_init(&be->host, "host scratch", be, host_alloc, host_free);
}

// --- Create / free ----------------------------------------------------------------------------

void sc_backend_opts_default(sc_backend_opts *o) {
    memset(o, 0, sizeof *o);
    o->device = SC_DEVICE_CPU;
}

sc_status sc_backend_create(const sc_backend_opts *o, sc_backend **out) {
    *out = NULL;
    sc_backend_opts d;
    if (!o) { sc_backend_opts_default(&d); o = &d; }
    switch (o->device) {
    case SC_DEVICE_CPU: return sc_cpu_backend_create(o, out);
    case SC_DEVICE_CUDA:
#ifdef SC_HAVE_CUDA
        return sc_cuda_backend_create(o, out);
#else
        return sc_errorf(SC_ERR_ARG, "device cuda: this build has no CUDA backend (it was configured without the CUDA toolkit or with "
                                     "-DSC_CUDA=OFF); use --device cpu, or rebuild where nvcc and cuBLASLt are installed (README, \"GPU\")");
#endif
    }
    return sc_errorf(SC_ERR_ARG, "device %d is not known", (int)o->device);
}

void sc_backend_free(sc_backend *be) {
    if (!be) return;
    sc_arena_release(&be->ws);
    sc_arena_release(&be->host);
    if (be->destroy) be->destroy(be);
    free(be);
}

sc_backend *sc_backend_cpu_new(void) {
    sc_backend *be = NULL;
    sc_backend_opts o;
    sc_backend_opts_default(&o);
    return sc_backend_create(&o, &be) == SC_OK ? be : NULL;
}

// --- Memory budget ----------------------------------------------------------------------------

int sc_local_ranks(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (!v || !isdigit((unsigned char)v[0])) continue;
        long n = strtol(v, NULL, 10);   // SLURM_TASKS_PER_NODE looks like "4(x2)": 4 on this node
        if (n >= 1 && n <= 4096) return (int)n;
    }
    return 1;
}

size_t sc_memory_budget_default(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double ram = pages > 0 && page > 0 ? (double)pages * (double)page : 8.0 * 1073741824.0;
    return (size_t)(0.8 * ram / sc_local_ranks());
}

sc_status sc_parse_size(const char *s, size_t *out) {
    *out = 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v <= 0 || s[0] == '-' || s[0] == '+' || isspace((unsigned char)s[0]))
        return sc_errorf(SC_ERR_ARG, "memory size '%s' is not a positive number with an optional K, M, G or T suffix (e.g. 16G)", s);
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': mult = 1024.0; end++; break;
    case 'M': mult = 1048576.0; end++; break;
    case 'G': mult = 1073741824.0; end++; break;
    case 'T': mult = 1099511627776.0; end++; break;
    default: break;
    }
    if (mult > 1 && (end[0] == 'i' || end[0] == 'I') && (end[1] == 'B' || end[1] == 'b')) end += 2;
    else if (end[0] == 'B' || end[0] == 'b') end++;
    if (*end) return sc_errorf(SC_ERR_ARG, "memory size '%s': unexpected '%s' after the number (use e.g. 800M, 16G)", s, end);
    double bytes = v * mult;
    if (bytes < 1 || bytes > 1.8e19) return sc_errorf(SC_ERR_ARG, "memory size '%s' is out of range", s);
    *out = (size_t)bytes;
    return SC_OK;
}
