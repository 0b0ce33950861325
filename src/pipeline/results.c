// results.c — the run directory and results.h5 (see steerclear/results.h and
// results/README.md): paths, the resolved config, finished searches, directions and the
// sequences they were measured over. Every update of results.h5 is a copy edited and renamed
// over the file (sc_h5_begin_update / sc_h5_commit).
// A writer holds the directory's lock (flock) for as long as it runs.
#include "steerclear/results.h"
#include "steerclear/h5.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>


struct sc_run {
    char *dir;
    int mode;
    int lock_fd;           // held while writing (-1: not locked)
};

// --- The directory and its lock -----------------------------------------------------------------

// Remove the temporary files (NAME.tmp.PID) a killed writer left in `dir`.
static int remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *t = strstr(e->d_name, ".tmp.");
        if (!t || !t[5] || strspn(t + 5, "0123456789") != strlen(t + 5)) continue;
        char path[4500];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < sizeof path && unlink(path) == 0) n++;
    }
    closedir(d);
    return n;
}

static sc_status take_lock(sc_run *r, int wait, const char *command) {
    char path[4200], holder[512] = "";
    snprintf(path, sizeof path, "%s/.steerclear.lock", r->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "%s: cannot open the run directory's lock file for writing: %s (is the run directory writable?)", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            sc_log(SC_LOG_WARN, "%s: this file system has no locks (%s): nothing stops a second process from writing this run directory at the same time",
                   path, strerror(errno));
            r->lock_fd = fd;
            return SC_OK;
        }
        ssize_t got = pread(fd, holder, sizeof holder - 1, 0);
        holder[got > 0 ? got : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        if (!wait) {
            close(fd);
            return sc_errorf(SC_ERR_BUSY, "%s: another steerclear process is writing this run directory (%s); wait until it finishes, "
                             "stop it, or add --wait to wait for it", r->dir, holder[0] ? holder : "holder unknown");
        }
        sc_log(SC_LOG_INFO, "%s: waiting for the process writing this run directory (%s)", r->dir, holder[0] ? holder : "holder unknown");
        while (flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR) { int e = errno; close(fd); return sc_errorf(SC_ERR_IO, "%s: waiting for the lock: %s", path, strerror(e)); }
            sc_status st = sc_check_interrupt("waiting for the run directory's lock");
            if (st) { close(fd); return st; }
        }
    }
    char host[256] = "?", line[512];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    int n = snprintf(line, sizeof line, "host %s, pid %ld, `steerclear %s`, since %s\n", host, (long)getpid(), command ? command : "?", when);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) sc_log(SC_LOG_WARN, "%s: cannot record this process in the lock file", path);
    r->lock_fd = fd;
    // we are the only writer now: temporaries of a writer that was killed are stale
    const char *subdirs[] = {"", "/checkpoints", "/directions", "/eval", "/judge", "/quantify", "/report"};
    int removed = 0;
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        snprintf(path, sizeof path, "%s%s", r->dir, subdirs[i]);
        removed += remove_stale_tmp(path);
    }
    if (removed) sc_log(SC_LOG_INFO, "%s: removed %d temporary files left by an interrupted writer", r->dir, removed);
    return SC_OK;
}

sc_status sc_run_open(const char *dir, int mode, const char *command, sc_run **out) {
    *out = NULL;
    if (!dir || !*dir) return sc_errorf(SC_ERR_ARG, "no run directory given (--run RUN_DIR or --out RUN_DIR)");
    if (strlen(dir) > 3800) return sc_errorf(SC_ERR_ARG, "run directory path is too long (%zu bytes): %.60s...", strlen(dir), dir);
    if (mode & SC_RUN_WRITE) SC_TRY(sc_mkdir_p(dir));
    sc_run *r = sc_calloc(1, sizeof *r, "run directory");
    if (!r) return SC_ERR_MEM;
    r->lock_fd = -1;
    r->mode = mode;
    r->dir = sc_strdup(dir);
    if (!r->dir) { free(r); return SC_ERR_MEM; }
    if (mode & SC_RUN_WRITE) {
        sc_status st = take_lock(r, mode & SC_RUN_WAIT, command);
        if (st) { sc_run_close(r); return st; }
    }
    *out = r;
    return SC_OK;
}

void sc_run_close(sc_run *r) {
    if (!r) return;
    if (r->lock_fd >= 0) close(r->lock_fd);   // releases the flock
    free(r->dir);
    free(r);
}

const char *sc_run_dir(const sc_run *r) { return r->dir; }

sc_status sc_run_path(const sc_run *r, const char *rel, char *buf, size_t n) {
    if ((size_t)snprintf(buf, n, "%s/%s", r->dir, rel) >= n) return sc_errorf(SC_ERR_ARG, "%s/%s: path too long", r->dir, rel);
    return SC_OK;
}

sc_status sc_run_checkpoint_path(const sc_run *r, int search, char *buf, size_t n) {
    char rel[64];
    SC_TRY(sc_run_path(r, "checkpoints", buf, n));
    SC_TRY(sc_mkdir_p(buf));
    snprintf(rel, sizeof rel, "checkpoints/search_%04d.ckpt", search);
    return sc_run_path(r, rel, buf, n);
}

sc_status sc_run_export_path(const sc_run *r, int search, const char *ext, char *buf, size_t n) {
    char rel[64];
    SC_TRY(sc_run_path(r, "directions", buf, n));
    SC_TRY(sc_mkdir_p(buf));
    snprintf(rel, sizeof rel, "directions/search_%04d.%s", search, ext);
    return sc_run_path(r, rel, buf, n);
}

sc_status sc_run_write_config(sc_run *r, const char *json) {
    char path[4096];
    SC_TRY(sc_run_path(r, "config.json", path, sizeof path));
    return sc_write_file_atomic(path, json, strlen(json));
}

sc_status sc_run_read_config(const sc_run *r, char **json) {
    *json = NULL;
    char path[4096];
    SC_TRY(sc_run_path(r, "config.json", path, sizeof path));
    if (!sc_file_exists(path)) return SC_OK;
    return sc_read_file(path, json, NULL);
}

// --- results.h5: the root ---------------------------------------------------------------------

static sc_status results_path(const sc_run *r, char *buf, size_t n) { return sc_run_path(r, "results.h5", buf, n); }

int sc_results_exists(const sc_run *r) {
    char path[4096];
    return results_path(r, path, sizeof path) == SC_OK && sc_file_exists(path);
}

#define SC_RESULTS_FORMAT "steerclear-results"
#define SC_RESULTS_VERSION 1

// The root says this is a results file of a version this build reads.
static sc_status check_format(sc_h5 *h) {
    char *format = NULL;
    int64_t version = 0;
    const char *file = sc_h5_filename(h);
    sc_status st = sc_h5_read_attr_str(h, "/", "format", &format);
    if (st || strcmp(format, SC_RESULTS_FORMAT)) {
        st = sc_errorf(SC_ERR_FORMAT, "%s: not a steerclear results file (root attribute format is %s%s%s); give the run directory of a `steerclear search`",
                       file, format ? "'" : "missing", format ? format : "", format ? "'" : "");
    } else if ((st = sc_h5_read_attr_i64(h, "/", "format_version", &version)) || version < 1 || version > SC_RESULTS_VERSION) {
        st = sc_errorf(SC_ERR_FORMAT, "%s: results format_version %lld; this build reads 1 to %d (written by another steerclear?)",
                       file, (long long)version, SC_RESULTS_VERSION);
    }
    free(format);
    return st;
}

// Open results.h5 for reading and check its format.
static sc_status open_read(const sc_run *r, sc_h5 **h) {
    char path[4096];
    SC_TRY(results_path(r, path, sizeof path));
    if (!sc_file_exists(path))
        return sc_errorf(SC_ERR_IO, "%s does not exist: run `steerclear search` into this run directory first", path);
    SC_TRY(sc_h5_open(path, 0, h));
    sc_status st = check_format(*h);
    if (st) { sc_h5_close(*h); *h = NULL; }
    return st;
}

// A copy of results.h5 to edit (a new file when there is none yet), with the root attributes set.
static sc_status begin_update(sc_run *r, sc_h5 **h) {
    char path[4096];
    SC_TRY(results_path(r, path, sizeof path));
    const int existed = sc_file_exists(path);
    SC_TRY(sc_h5_begin_update(path, h));
    sc_status st = existed ? check_format(*h) : SC_OK;
    if (!st) st = sc_h5_attr_str(*h, "/", "format", SC_RESULTS_FORMAT);
    if (!st) st = sc_h5_attr_i64(*h, "/", "format_version", SC_RESULTS_VERSION);
    if (st) { sc_h5_close(*h); *h = NULL; }
    return st;
}

void sc_results_meta_free(sc_results_meta *meta) {
    free(meta->model_dir);
    free(meta->config_json);
    memset(meta, 0, sizeof *meta);
}

sc_status sc_results_read_meta(const sc_run *r, sc_results_meta *meta) {
    memset(meta, 0, sizeof *meta);
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    if (sc_h5_read_attr_str(h, "/", "model", &meta->model_dir)) meta->model_dir = NULL;
    if (sc_h5_read_attr_str(h, "/", "config", &meta->config_json)) meta->config_json = NULL;
    if (sc_h5_read_attr_i64(h, "/", "n_layers", &meta->n_layers)) meta->n_layers = 0;
    if (sc_h5_read_attr_i64(h, "/", "hidden_size", &meta->hidden)) meta->hidden = 0;
    sc_error_clear();
    return sc_h5_close(h);
}

uint64_t sc_results_run_seed(const char *config_json) {
    uint64_t seed = 1234;
    cJSON *cfg = config_json ? cJSON_Parse(config_json) : NULL;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "search"), "seed");
    if (cJSON_IsNumber(s) && s->valuedouble >= 0) seed = (uint64_t)s->valuedouble;
    cJSON_Delete(cfg);
    return seed;
}

// --- Searches ---------------------------------------------------------------------------------

#define W(call) do { if ((st = (call))) goto done; } while (0)

sc_status sc_results_add_search(sc_run *r, const sc_search_state *s, const sc_results_meta *meta) {
    char grp[256], obj[320];
    snprintf(grp, sizeof grp, "/searches/%04d", s->search);
    const sc_adapter *a = s->adapter;
    const int64_t nA = (int64_t)sc_adapter_numel_A(a), nB = (int64_t)sc_adapter_numel_B(a), steps = s->steps_done;
    int64_t dA[3] = {a->n_sets, a->C, a->r}, dB[3] = {a->n_sets, a->r, a->C};
    sc_h5 *h = NULL;
    SC_TRY(begin_update(r, &h));
    sc_status st = SC_OK;
    float *fin = malloc(sizeof(float) * (size_t)(nA + nB));
    float *allA = malloc(sizeof(float) * (size_t)(nA * (steps ? steps : 1))), *allB = malloc(sizeof(float) * (size_t)(nB * (steps ? steps : 1)));
    double *loss = malloc(sizeof(double) * (size_t)(steps + 1)), *kl = malloc(sizeof(double) * (size_t)(steps + 1)), *nll = malloc(sizeof(double) * (size_t)(steps + 1));
    int64_t *npos = malloc(sizeof(int64_t) * (size_t)(steps + 1)), *lens = malloc(sizeof(int64_t) * (size_t)(steps * s->batch + 1));
    int32_t *pidx = malloc(sizeof(int32_t) * (size_t)(steps * s->batch + 1));
    size_t ntok = 0;
    for (int i = 0; i < steps; i++) for (int j = 0; j < s->batch; j++) ntok += (size_t)s->steps[i].gen_len[j];
    int32_t *toks = malloc(sizeof(int32_t) * (ntok + 1));
    if (!fin || !allA || !allB || !loss || !kl || !nll || !npos || !lens || !pidx || !toks) { st = sc_errorf(SC_ERR_MEM, "out of memory writing results"); goto done; }
    W(sc_adapter_get(a, fin, fin + nA));
    size_t at = 0;
    for (int i = 0; i < steps; i++) {
        const sc_step_record *rec = &s->steps[i];
        memcpy(allA + i * nA, rec->A, sizeof(float) * (size_t)nA);
        memcpy(allB + i * nB, rec->B, sizeof(float) * (size_t)nB);
        loss[i] = rec->loss; kl[i] = rec->kl; nll[i] = rec->nll; npos[i] = rec->n_pos;
        size_t g = 0;
        for (int j = 0; j < s->batch; j++) {
            pidx[i * s->batch + j] = rec->prompt_idx[j];
            lens[i * s->batch + j] = rec->gen_len[j];
            memcpy(toks + at, rec->gen + g, sizeof(int32_t) * (size_t)rec->gen_len[j]);
            at += (size_t)rec->gen_len[j]; g += (size_t)rec->gen_len[j];
        }
    }
    if (sc_h5_exists(h, grp)) W(sc_h5_delete(h, grp));
    snprintf(obj, sizeof obj, "%s/adapter/A", grp); W(sc_h5_write_f32(h, obj, 3, dA, fin));
    snprintf(obj, sizeof obj, "%s/adapter/B", grp); W(sc_h5_write_f32(h, obj, 3, dB, fin + nA));
    snprintf(obj, sizeof obj, "%s/adapter_init/A", grp); W(sc_h5_write_f32(h, obj, 3, dA, s->A0));
    snprintf(obj, sizeof obj, "%s/adapter_init/B", grp); W(sc_h5_write_f32(h, obj, 3, dB, s->B0));
    int64_t dSA[4] = {steps, a->n_sets, a->C, a->r}, dSB[4] = {steps, a->n_sets, a->r, a->C}, d1[1] = {steps};
    int64_t dP[2] = {steps, s->batch};
    snprintf(obj, sizeof obj, "%s/steps/A", grp); W(sc_h5_write_f32(h, obj, 4, dSA, allA));
    snprintf(obj, sizeof obj, "%s/steps/B", grp); W(sc_h5_write_f32(h, obj, 4, dSB, allB));
    snprintf(obj, sizeof obj, "%s/steps/loss", grp); W(sc_h5_write_f64(h, obj, 1, d1, loss));
    snprintf(obj, sizeof obj, "%s/steps/kl", grp); W(sc_h5_write_f64(h, obj, 1, d1, kl));
    snprintf(obj, sizeof obj, "%s/steps/nll", grp); W(sc_h5_write_f64(h, obj, 1, d1, nll));
    snprintf(obj, sizeof obj, "%s/steps/n_positions", grp); W(sc_h5_write_i64(h, obj, 1, d1, npos));
    snprintf(obj, sizeof obj, "%s/steps/prompt_indices", grp); W(sc_h5_write_i32(h, obj, 2, dP, pidx));
    snprintf(obj, sizeof obj, "%s/steps/tokens", grp); W(sc_h5_append_ragged_i32(h, obj, toks, lens, steps * s->batch));
    W(sc_h5_attr_i64(h, grp, "search", s->search));
    W(sc_h5_attr_i64(h, grp, "seed", (int64_t)s->seed));
    W(sc_h5_attr_i64(h, grp, "steps", steps));
    W(sc_h5_attr_i64(h, grp, "batch_size", s->batch));
    W(sc_h5_attr_str(h, grp, "adapter", sc_adapter_kind_name(a->kind)));
    W(sc_h5_attr_i64(h, grp, "rank", a->r));
    W(sc_h5_attr_f64(h, grp, "scaling", a->scaling));
    if (meta->model_dir) W(sc_h5_attr_str(h, "/", "model", meta->model_dir));
    W(sc_h5_attr_i64(h, "/", "n_layers", meta->n_layers));
    W(sc_h5_attr_i64(h, "/", "hidden_size", meta->hidden));
    if (meta->config_json) W(sc_h5_attr_str(h, "/", "config", meta->config_json));
    st = sc_h5_commit(h);
    h = NULL;
done:
    if (h) sc_h5_close(h);
    free(fin); free(allA); free(allB); free(loss); free(kl); free(nll); free(npos); free(lens); free(pidx); free(toks);
    return st;
}

int sc_results_has_search(const sc_run *r, int search) {
    sc_h5 *h = NULL;
    if (!sc_results_exists(r) || open_read(r, &h)) { sc_error_clear(); return 0; }
    char grp[64];
    snprintf(grp, sizeof grp, "/searches/%04d", search);
    int yes = sc_h5_exists(h, grp);
    sc_h5_close(h);
    return yes;
}

static sc_status list_searches(sc_h5 *h, int **searches, int *n) {
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

sc_status sc_results_list_searches(const sc_run *r, int **searches, int *n) {
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    sc_status st = list_searches(h, searches, n);
    sc_h5_close(h);
    return st;
}

static sc_status load_adapter(sc_h5 *h, sc_backend *be, int search, int n_layers, int C, sc_adapter **out) {
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
    if (!st) st = sc_adapter_create(be, kind, n_layers, C, (int)rank, (float)scaling, &a);
    if (!st) st = sc_adapter_set(a, A, B);
    if (!st) *out = a;
    else sc_adapter_free(a);
    free(A); free(B);
    return st;
}

sc_status sc_results_load_adapter(const sc_run *r, sc_backend *be, int search, int n_layers, int C, sc_adapter **out) {
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    sc_status st = load_adapter(h, be, search, n_layers, C, out);
    sc_h5_close(h);
    return st;
}

// --- Directions -------------------------------------------------------------------------------

// /directions [S][L][C] with its search index and token count per row, checked against L, C.
typedef struct { float *D; int32_t *idx; int64_t *cnt; int64_t rows; } dir_table;

static void dir_table_free(dir_table *t) { free(t->D); free(t->idx); free(t->cnt); memset(t, 0, sizeof *t); }

static sc_status read_dir_table(sc_h5 *h, int L, int C, dir_table *t) {
    memset(t, 0, sizeof *t);
    const char *file = sc_h5_filename(h);
    if (!sc_h5_exists(h, "/directions"))
        return sc_errorf(SC_ERR_ARG, "%s has no /directions: run `steerclear extract` on this run directory first", file);
    int nd = 0, ni = 0, nc = 0;
    int64_t dd[SC_H5_MAX_DIMS], di[SC_H5_MAX_DIMS], dc[SC_H5_MAX_DIMS];
    sc_status st = sc_h5_read_f32(h, "/directions", &t->D, &nd, dd);
    if (!st) st = sc_h5_read_i32(h, "/direction_searches", &t->idx, &ni, di);
    if (!st) st = sc_h5_read_i64(h, "/direction_token_counts", &t->cnt, &nc, dc);
    if (!st && (nd != 3 || dd[1] != L || dd[2] != C || ni != 1 || di[0] != dd[0] || nc != 1 || dc[0] != dd[0]))
        st = sc_errorf(SC_ERR_SHAPE, "%s: /directions has shape [%lld,%lld,%lld] (with %lld search indices and %lld counts), expected [S,%d,%d]; re-run `steerclear extract`",
                       file, (long long)dd[0], (long long)(nd > 1 ? dd[1] : 0), (long long)(nd > 2 ? dd[2] : 0),
                       (long long)di[0], (long long)dc[0], L, C);
    if (st) { dir_table_free(t); return st; }
    t->rows = dd[0];
    return SC_OK;
}

// The row of `search` in the table, -1 when absent or never extracted.
static int64_t dir_row(const dir_table *t, int search) {
    for (int64_t k = 0; k < t->rows; k++)
        if (t->idx[k] == search) return t->cnt[k] > 0 ? k : -1;
    return -1;
}

int sc_results_has_directions(const sc_run *r) {
    sc_h5 *h = NULL;
    if (!sc_results_exists(r) || open_read(r, &h)) { sc_error_clear(); return 0; }
    int yes = sc_h5_exists(h, "/directions");
    sc_h5_close(h);
    return yes;
}

sc_status sc_results_read_directions(const sc_run *r, const int *searches, int n, int L, int C, float *out, int *have) {
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    dir_table t;
    sc_status st = read_dir_table(h, L, C, &t);
    sc_h5_close(h);
    if (st) return st;
    const size_t LC = (size_t)L * C;
    for (int j = 0; j < n; j++) {
        int64_t k = dir_row(&t, searches[j]);
        have[j] = k >= 0;
        if (k >= 0) memcpy(out + LC * (size_t)j, t.D + LC * (size_t)k, sizeof(float) * LC);
        else memset(out + LC * (size_t)j, 0, sizeof(float) * LC);
    }
    dir_table_free(&t);
    return SC_OK;
}

sc_status sc_results_read_direction(const sc_run *r, int search, int L, int C, float *out) {
    int *all = NULL, n = 0, found = 0, have = 0;
    SC_TRY(sc_results_list_searches(r, &all, &n));
    for (int i = 0; i < n; i++) found |= all[i] == search;
    free(all);
    if (!found)
        return sc_errorf(SC_ERR_ARG, "%s/results.h5: search %d is not among the %d finished searches of this run", r->dir, search, n);
    SC_TRY(sc_results_read_directions(r, &search, 1, L, C, out, &have));
    if (!have)
        return sc_errorf(SC_ERR_ARG, "%s/results.h5: search %d has no extracted direction; run `steerclear extract --run %s --searches %d`",
                         r->dir, search, r->dir, search);
    return SC_OK;
}

sc_status sc_results_write_directions(sc_run *r, const sc_directions_record *d) {
    sc_h5 *h = NULL;
    SC_TRY(begin_update(r, &h));
    const size_t LC = (size_t)d->L * d->C;
    int *all = NULL, S = 0;
    float *D = NULL;
    int64_t *counts = NULL, *lens = NULL;
    int32_t *idx = NULL, *values = NULL;
    dir_table old = {0};
    char *old_settings = NULL;
    sc_status st = list_searches(h, &all, &S);
    if (st) goto done;
    D = calloc(LC * (size_t)S + 1, sizeof(float));
    counts = calloc((size_t)S + 1, sizeof(int64_t));
    idx = malloc(sizeof(int32_t) * (size_t)S + 1);
    if (!D || !counts || !idx) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    for (int s = 0; s < S; s++) idx[s] = all[s];
    // keep rows of an earlier extraction with the same settings and the same searches
    if (sc_h5_exists(h, "/directions")) {
        if (sc_h5_read_attr_str(h, "/directions", "settings", &old_settings) == SC_OK && !strcmp(old_settings, d->settings) &&
            read_dir_table(h, d->L, d->C, &old) == SC_OK) {
            for (int s = 0; s < S; s++) {
                int64_t k = dir_row(&old, all[s]);
                if (k >= 0) { memcpy(D + LC * (size_t)s, old.D + LC * (size_t)k, sizeof(float) * LC); counts[s] = old.cnt[k]; }
            }
        } else if (d->n < S) {
            sc_log(SC_LOG_WARN, "%s: earlier directions were extracted with other settings; rows of searches not extracted now are zeroed", sc_h5_filename(h));
        }
        sc_error_clear();
    }
    for (int j = 0; j < d->n; j++) {
        int row = -1;
        for (int s = 0; s < S; s++) if (all[s] == d->searches[j]) row = s;
        if (row < 0) { st = sc_errorf(SC_ERR_INTERNAL, "%s: search %d has a direction but is not finished", sc_h5_filename(h), d->searches[j]); goto done; }
        memcpy(D + LC * (size_t)row, d->dirs + LC * (size_t)j, sizeof(float) * LC);
        counts[row] = d->n_tokens;
    }
    int64_t d3[3] = {S, d->L, d->C}, d1[1] = {S};
    W(sc_h5_write_f32(h, "/directions", 3, d3, D));
    W(sc_h5_write_i32(h, "/direction_searches", 1, d1, idx));
    W(sc_h5_write_i64(h, "/direction_token_counts", 1, d1, counts));
    W(sc_h5_attr_str(h, "/directions", "mode", d->mode));
    W(sc_h5_attr_str(h, "/directions", "sets", d->sets));
    W(sc_h5_attr_i64(h, "/directions", "max_new_tokens", d->max_new_tokens));
    W(sc_h5_attr_f64(h, "/directions", "temperature", d->temperature));
    W(sc_h5_attr_i64(h, "/directions", "top_k", d->top_k));
    W(sc_h5_attr_f64(h, "/directions", "top_p", d->top_p));
    W(sc_h5_attr_i64(h, "/directions", "seed", (int64_t)d->seed));
    W(sc_h5_attr_str(h, "/directions", "settings", d->settings));
    // the sampled continuations
    size_t total = 0;
    for (int i = 0; i < d->n_seqs; i++) total += (size_t)(d->len[i] - d->prompt_len[i]);
    values = malloc(sizeof(int32_t) * (total + 1));
    lens = malloc(sizeof(int64_t) * ((size_t)d->n_seqs + 1));
    if (!values || !lens) { st = sc_errorf(SC_ERR_MEM, "out of memory"); goto done; }
    size_t at = 0;
    for (int i = 0; i < d->n_seqs; i++) {
        lens[i] = d->len[i] - d->prompt_len[i];
        memcpy(values + at, d->seq[i] + d->prompt_len[i], sizeof(int32_t) * (size_t)lens[i]);
        at += (size_t)lens[i];
    }
    int64_t dn[1] = {d->n_seqs};
    W(sc_h5_delete(h, "/extract"));
    W(sc_h5_append_ragged_i32(h, "/extract/continuations", values, lens, d->n_seqs));
    W(sc_h5_write_i32(h, "/extract/prompt_set", 1, dn, d->set));
    W(sc_h5_write_i32(h, "/extract/prompt_index", 1, dn, d->index));
    W(sc_h5_attr_str(h, "/extract", "settings", d->settings));
    if (d->base_means && d->adapted_means) {
        int64_t dm[2] = {d->L, d->C}, da[3] = {d->n, d->L, d->C}, ds[1] = {d->n};
        W(sc_h5_write_f32(h, "/extract/base_means", 2, dm, d->base_means));
        W(sc_h5_write_f32(h, "/extract/adapted_means", 3, da, d->adapted_means));
        W(sc_h5_write_i32(h, "/extract/mean_searches", 1, ds, d->searches));
    }
    st = sc_h5_commit(h);
    h = NULL;
done:
    if (h) sc_h5_close(h);
    dir_table_free(&old);
    free(old_settings); free(all); free(D); free(counts); free(idx); free(values); free(lens);
    return st;
}

sc_status sc_results_read_steps(const sc_run *r, int search, double **loss, double **kl, double **nll, int *K) {
    *loss = *kl = *nll = NULL;
    *K = 0;
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    static const char *const name[3] = {"loss", "kl", "nll"};
    double **out[3] = {loss, kl, nll};
    sc_status st = SC_OK;
    for (int i = 0; i < 3 && !st; i++) {
        char obj[96];
        int nd = 0;
        int64_t dims[SC_H5_MAX_DIMS];
        snprintf(obj, sizeof obj, "/searches/%04d/steps/%s", search, name[i]);
        if (!sc_h5_exists(h, obj)) { st = sc_errorf(SC_ERR_ARG, "%s has no %s: search %d has not finished", sc_h5_filename(h), obj, search); break; }
        if ((st = sc_h5_read_f64(h, obj, out[i], &nd, dims))) break;
        if (nd != 1 || (i && dims[0] != *K)) st = sc_errorf(SC_ERR_FORMAT, "%s: %s: expected [%d] values", sc_h5_filename(h), obj, *K);
        *K = (int)dims[0];
    }
    sc_h5_close(h);
    if (st) { free(*loss); free(*kl); free(*nll); *loss = *kl = *nll = NULL; *K = 0; }
    return st;
}

// --- The judge and the scores -------------------------------------------------------------------

sc_status sc_results_write_judge(sc_run *r, const sc_judge_meta *m, const sc_judge_record *rec, int n) {
    sc_h5 *h = NULL;
    SC_TRY(begin_update(r, &h));
    sc_status st = SC_OK;
    char obj[128];
    static const char *const side[2] = {"adapter", "direction"};
    W(sc_h5_delete(h, "/judge"));
    W(sc_h5_mkgroup(h, "/judge"));
    W(sc_h5_attr_str(h, "/judge", "provider", m->provider));
    W(sc_h5_attr_str(h, "/judge", "model", m->model));
    W(sc_h5_attr_str(h, "/judge", "embed_model", m->embed_model));
    W(sc_h5_attr_str(h, "/judge", "date", m->date));
    W(sc_h5_attr_i64(h, "/judge", "batches", m->batches));
    W(sc_h5_attr_i64(h, "/judge", "batch_size", m->batch_size));
    W(sc_h5_attr_f64(h, "/judge", "scale", m->scale));
    for (int k = 0; k < n; k++) {
        char grp[32];
        snprintf(grp, sizeof grp, "/judge/%04d", rec[k].search);
        W(sc_h5_mkgroup(h, grp));
        W(sc_h5_attr_i64(h, grp, "adapter_answered", rec[k].answered[0]));
        W(sc_h5_attr_i64(h, grp, "direction_answered", rec[k].answered[1]));
        for (int s = 0; s < 2; s++) {
            if (rec[k].n[s] == 0) continue;
            int64_t de[2] = {rec[k].n[s], rec[k].dim}, db[1] = {rec[k].n[s]};
            snprintf(obj, sizeof obj, "/judge/%04d/%s_embeddings", rec[k].search, side[s]);
            W(sc_h5_write_f32(h, obj, 2, de, rec[k].emb[s]));
            snprintf(obj, sizeof obj, "/judge/%04d/%s_batches", rec[k].search, side[s]);
            W(sc_h5_write_i32(h, obj, 1, db, rec[k].batch_of[s]));
        }
    }
    st = sc_h5_commit(h);
    h = NULL;
done:
    if (h) sc_h5_close(h);
    return st;
}

sc_status sc_results_list_judged(const sc_run *r, int **searches, int *n) {
    *searches = NULL;
    *n = 0;
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    sc_status st = SC_OK;
    if (!sc_h5_exists(h, "/judge")) st = sc_errorf(SC_ERR_ARG, "%s has no /judge: run `steerclear judge` first", sc_h5_filename(h));
    int cap = 16, cnt = 0, *v = st ? NULL : malloc(sizeof(int) * (size_t)cap);
    if (!st && !v) st = sc_errorf(SC_ERR_MEM, "out of memory");
    for (int s = 0; !st && s < SC_MAX_SEARCH_INDEX; s++) {
        char grp[64];
        snprintf(grp, sizeof grp, "/judge/%04d", s);
        if (!sc_h5_exists(h, grp)) continue;
        if (cnt == cap) {
            int *nv = realloc(v, sizeof(int) * (size_t)(cap *= 2));
            if (!nv) { st = sc_errorf(SC_ERR_MEM, "out of memory"); break; }
            v = nv;
        }
        v[cnt++] = s;
    }
    sc_h5_close(h);
    if (st) { free(v); return st; }
    *searches = v;
    *n = cnt;
    return SC_OK;
}

void sc_judge_record_free(sc_judge_record *rec) {
    for (int s = 0; s < 2; s++) { free(rec->emb[s]); free(rec->batch_of[s]); }
    memset(rec, 0, sizeof *rec);
}

sc_status sc_results_read_judge(const sc_run *r, int search, sc_judge_record *rec) {
    memset(rec, 0, sizeof *rec);
    rec->search = search;
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    static const char *const side[2] = {"adapter", "direction"};
    char grp[32];
    snprintf(grp, sizeof grp, "/judge/%04d", search);
    int64_t ans[2] = {0, 0};
    sc_status st = sc_h5_exists(h, grp) ? SC_OK : sc_errorf(SC_ERR_ARG, "%s has no %s: search %d was not judged; run `steerclear judge`", sc_h5_filename(h), grp, search);
    if (!st) st = sc_h5_read_attr_i64(h, grp, "adapter_answered", &ans[0]);
    if (!st) st = sc_h5_read_attr_i64(h, grp, "direction_answered", &ans[1]);
    for (int s = 0; s < 2 && !st; s++) {
        char obj[128];
        int nd = 0, nb = 0;
        int64_t de[SC_H5_MAX_DIMS], db[SC_H5_MAX_DIMS];
        rec->answered[s] = (int)ans[s];
        snprintf(obj, sizeof obj, "/judge/%04d/%s_embeddings", search, side[s]);
        if (!sc_h5_exists(h, obj)) continue;   // no theme on this side
        if ((st = sc_h5_read_f32(h, obj, &rec->emb[s], &nd, de))) break;
        snprintf(obj, sizeof obj, "/judge/%04d/%s_batches", search, side[s]);
        if ((st = sc_h5_read_i32(h, obj, (int32_t **)&rec->batch_of[s], &nb, db))) break;
        if (nd != 2 || nb != 1 || db[0] != de[0] || (rec->dim && de[1] != rec->dim))
            st = sc_errorf(SC_ERR_FORMAT, "%s: %s: shapes disagree; run `steerclear judge` again", sc_h5_filename(h), obj);
        rec->n[s] = (int)de[0];
        rec->dim = (int)de[1];
    }
    sc_h5_close(h);
    if (st) sc_judge_record_free(rec);
    return st;
}

void sc_judge_meta_free(sc_judge_meta *m) {
    free((char *)m->provider); free((char *)m->model); free((char *)m->embed_model); free((char *)m->date);
    memset(m, 0, sizeof *m);
}

sc_status sc_results_read_judge_meta(const sc_run *r, sc_judge_meta *m) {
    memset(m, 0, sizeof *m);
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    char *s[4] = {NULL, NULL, NULL, NULL};
    static const char *const names[4] = {"provider", "model", "embed_model", "date"};
    int64_t b = 0, bs = 0;
    double scale = 0;
    sc_status st = SC_OK;
    for (int i = 0; i < 4 && !st; i++) st = sc_h5_read_attr_str(h, "/judge", names[i], &s[i]);
    if (!st) st = sc_h5_read_attr_i64(h, "/judge", "batches", &b);
    if (!st) st = sc_h5_read_attr_i64(h, "/judge", "batch_size", &bs);
    if (!st) st = sc_h5_read_attr_f64(h, "/judge", "scale", &scale);
    sc_h5_close(h);
    m->provider = s[0]; m->model = s[1]; m->embed_model = s[2]; m->date = s[3];
    m->batches = (int)b; m->batch_size = (int)bs; m->scale = (float)scale;
    if (st) sc_judge_meta_free(m);
    return st;
}

sc_status sc_results_write_scores(sc_run *r, const sc_score_record *rec, int n, const int *ranking, double threshold) {
    sc_h5 *h = NULL;
    SC_TRY(begin_update(r, &h));
    sc_status st = SC_OK;
    double *lin = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!lin) { sc_h5_close(h); return sc_errorf(SC_ERR_MEM, "out of memory"); }
    char grp[64], obj[128];
    W(sc_h5_delete(h, "/scores"));
    W(sc_h5_mkgroup(h, "/scores"));
    W(sc_h5_attr_f64(h, "/scores", "threshold", threshold));
    for (int k = 0; k < n; k++) {
        const sc_score_record *s = &rec[k];
        int64_t dc[2] = {s->na, s->nb}, dm[1] = {s->na};
        snprintf(grp, sizeof grp, "/scores/%04d", s->search);
        W(sc_h5_mkgroup(h, grp));
        if (s->na > 0 && s->nb > 0) {
            snprintf(obj, sizeof obj, "%s/cosine", grp); W(sc_h5_write_f64(h, obj, 2, dc, s->cosine));
            snprintf(obj, sizeof obj, "%s/match", grp); W(sc_h5_write_i32(h, obj, 1, dm, s->match));
        }
        W(sc_h5_attr_i64(h, grp, "adapter_answered", s->answered_a));
        W(sc_h5_attr_i64(h, grp, "direction_answered", s->answered_b));
        W(sc_h5_attr_f64(h, grp, "linearity", s->score));
        W(sc_h5_attr_f64(h, grp, "best", s->best));
        W(sc_h5_attr_f64(h, grp, "worst", s->worst));
        W(sc_h5_attr_i64(h, grp, "best_adapter_theme", s->best_a));
        W(sc_h5_attr_i64(h, grp, "best_direction_theme", s->best_b));
        W(sc_h5_attr_i64(h, grp, "worst_adapter_theme", s->worst_a));
        W(sc_h5_attr_i64(h, grp, "worst_direction_theme", s->worst_b));
    }
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++) if (rec[j].search == ranking[k]) lin[k] = rec[j].score;
    int64_t d1[1] = {n};
    W(sc_h5_write_i32(h, "/scores/ranking", 1, d1, ranking));
    W(sc_h5_write_f64(h, "/scores/linearity", 1, d1, lin));
    st = sc_h5_commit(h);
    h = NULL;
done:
    if (h) sc_h5_close(h);
    free(lin);
    return st;
}

sc_status sc_results_read_cosine(const sc_run *r, int search, double **S, int *na, int *nb) {
    *S = NULL;
    *na = *nb = 0;
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    char obj[64];
    int nd = 0;
    int64_t dims[SC_H5_MAX_DIMS];
    snprintf(obj, sizeof obj, "/scores/%04d/cosine", search);
    sc_status st = sc_h5_exists(h, obj) ? sc_h5_read_f64(h, obj, S, &nd, dims)
                                        : sc_errorf(SC_ERR_ARG, "%s has no %s: run `steerclear score` first", sc_h5_filename(h), obj);
    if (!st && nd != 2) { st = sc_errorf(SC_ERR_FORMAT, "%s: %s is not a matrix; run `steerclear score` again", sc_h5_filename(h), obj); free(*S); *S = NULL; }
    if (!st) { *na = (int)dims[0]; *nb = (int)dims[1]; }
    sc_h5_close(h);
    return st;
}

sc_status sc_results_read_ranking(const sc_run *r, int **searches, double **linearity, int *n) {
    *searches = NULL;
    *linearity = NULL;
    *n = 0;
    sc_h5 *h = NULL;
    SC_TRY(open_read(r, &h));
    int nd1 = 0, nd2 = 0;
    int64_t d1[SC_H5_MAX_DIMS], d2[SC_H5_MAX_DIMS];
    sc_status st = sc_h5_exists(h, "/scores/ranking") ? SC_OK : sc_errorf(SC_ERR_ARG, "%s has no /scores: run `steerclear score` first", sc_h5_filename(h));
    if (!st) st = sc_h5_read_i32(h, "/scores/ranking", (int32_t **)searches, &nd1, d1);
    if (!st) st = sc_h5_read_f64(h, "/scores/linearity", linearity, &nd2, d2);
    if (!st && (nd1 != 1 || nd2 != 1 || d1[0] != d2[0])) st = sc_errorf(SC_ERR_FORMAT, "%s: /scores/ranking and /scores/linearity disagree; run `steerclear score` again", sc_h5_filename(h));
    if (!st) *n = (int)d1[0];
    sc_h5_close(h);
    if (st) { free(*searches); free(*linearity); *searches = NULL; *linearity = NULL; }
    return st;
}
