// monitor.c — progress lines, RUN_DIR/run.log and RUN_DIR/status.json (see steerclear/monitor.h).
// One job per process: the state is process-wide, touched only from the thread that runs the
// stages (OpenMP regions and libcurl callbacks never log).
#include "steerclear/monitor.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "sc_version.h"   // generated at build time (cmake/version.cmake)

const char *sc_version(void) { return SC_VERSION; }

const char *sc_hostname(void) {
    static char host[256];
    if (!host[0] && gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
    return host;
}

static struct {
    int open;
    char status_path[4200];
    FILE *log;
    int n_stages, stage_index;
    char stage[64], unit[32], last_error[1024], started[32];
    long step, steps;
    double t_job, t_loop, eta_s, last_write, last_line;
    char what[128];
} mon;

static void utc_now(char *buf, size_t n) {
    time_t now = time(NULL);
    struct tm tm;
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
}

static void write_status(const char *state, int force) {
    if (!mon.open) return;
    const double now = sc_now_seconds();
    if (!force && now - mon.last_write < 1.0) return;
    mon.last_write = now;
    char updated[32];
    utc_now(updated, sizeof updated);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", state);
    if (mon.stage[0]) cJSON_AddStringToObject(o, "stage", mon.stage);
    else cJSON_AddNullToObject(o, "stage");
    cJSON_AddNumberToObject(o, "stage_index", mon.stage_index);
    cJSON_AddNumberToObject(o, "stages", mon.n_stages);
    cJSON_AddNumberToObject(o, "step", (double)mon.step);
    cJSON_AddNumberToObject(o, "steps", (double)mon.steps);
    cJSON_AddStringToObject(o, "unit", mon.unit);
    cJSON_AddNumberToObject(o, "elapsed_s", round((now - mon.t_job) * 10) / 10);
    if (mon.eta_s >= 0) cJSON_AddNumberToObject(o, "eta_s", round(mon.eta_s));
    else cJSON_AddNullToObject(o, "eta_s");
    cJSON_AddStringToObject(o, "started", mon.started);
    cJSON_AddStringToObject(o, "updated", updated);
    cJSON_AddStringToObject(o, "host", sc_hostname());
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddStringToObject(o, "version", sc_version());
    if (mon.last_error[0]) cJSON_AddStringToObject(o, "last_error", mon.last_error);
    else cJSON_AddNullToObject(o, "last_error");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    // a status file that cannot be written must not stop the job: the log says so once
    static int warned;
    if (text && sc_write_file_atomic(mon.status_path, text, strlen(text)) != SC_OK && !warned) {
        warned = 1;
        fprintf(stderr, "warning: %s\n", sc_last_error());
    }
    sc_error_clear();
    free(text);
}

// The log sink while a job runs: stderr as usual, and run.log with a timestamp.
static void tee_sink(sc_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level == SC_LOG_INFO) fprintf(stderr, "%s\n", msg);
    else fprintf(stderr, "%s: %s\n", names[level], msg);
    if (mon.log) {
        char when[32];
        utc_now(when, sizeof when);
        fprintf(mon.log, "%s %s %s\n", when, names[level], msg);
        fflush(mon.log);
    }
    if (level == SC_LOG_ERROR && mon.open) snprintf(mon.last_error, sizeof mon.last_error, "%s", msg);
}

sc_status sc_monitor_open(const char *run_dir, int n_stages) {
    char path[4200];
    snprintf(path, sizeof path, "%s/run.log", run_dir);
    FILE *f = fopen(path, "a");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open for appending; check the run directory's permissions and free space", path);
    memset(&mon, 0, sizeof mon);
    mon.log = f;
    snprintf(mon.status_path, sizeof mon.status_path, "%s/status.json", run_dir);
    mon.open = 1;
    mon.n_stages = n_stages;
    mon.stage_index = -1;
    mon.eta_s = -1;
    mon.t_job = sc_now_seconds();
    utc_now(mon.started, sizeof mon.started);
    sc_log_set(tee_sink, NULL);
    write_status("running", 1);
    return SC_OK;
}

void sc_monitor_close(sc_status st) {
    if (!mon.open) return;
    if (st != SC_OK && sc_last_error()[0]) snprintf(mon.last_error, sizeof mon.last_error, "%s", sc_last_error());
    if (st == SC_OK) mon.eta_s = 0;
    write_status(st == SC_OK ? "done" : st == SC_ERR_INTERRUPTED ? "interrupted" : "failed", 1);
    // writing the status clears the error message: keep it for the caller to print
    if (st != SC_OK && mon.last_error[0] && !sc_last_error()[0]) sc_errorf(st, "%s", mon.last_error);
    sc_log_set(NULL, NULL);
    fclose(mon.log);
    mon.log = NULL;
    mon.open = 0;
}

void sc_monitor_stage(const char *stage, int index) {
    snprintf(mon.stage, sizeof mon.stage, "%s", stage);
    mon.stage_index = index;
    mon.step = mon.steps = 0;
    mon.unit[0] = '\0';
    mon.eta_s = -1;
    mon.what[0] = '\0';
    sc_log(SC_LOG_INFO, "== stage %d/%d: %s", index + 1, mon.n_stages, stage);
    write_status("running", 1);
}

void sc_monitor_stage_done(const char *stage, double wall_s) {
    sc_log(SC_LOG_INFO, "== stage %s finished in %.1f s", stage, wall_s);
    write_status("running", 1);
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--:--"); return; }
    const int t = (int)(s + 0.5);
    snprintf(buf, n, "%02d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
}

void sc_monitor_fault_point(const char *stage, const char *point) {
    const char *want = getenv("SC_TEST_KILL");
    if (!want || !stage) return;
    char here[160];
    snprintf(here, sizeof here, "%s:%s", stage, point);
    if (strcmp(want, here)) return;
    if (mon.log) { fprintf(mon.log, "SC_TEST_KILL=%s: killing this process\n", want); fflush(mon.log); }
    kill(getpid(), SIGKILL);
}

void sc_monitor_step(long done, long total, const char *unit, double eta_s) {
    if (done > 0 && mon.open) sc_monitor_fault_point(mon.stage, "progress");
    mon.step = done;
    mon.steps = total;
    snprintf(mon.unit, sizeof mon.unit, "%s", unit ? unit : "");
    mon.eta_s = eta_s;
    write_status("running", done >= total);
}

void sc_monitor_progress(const char *what, long done, long total, const char *unit) {
    const double now = sc_now_seconds();
    if (done == 0 || strncmp(mon.what, what, sizeof mon.what - 1)) {
        snprintf(mon.what, sizeof mon.what, "%s", what);
        mon.t_loop = now;
        mon.last_line = 0;
    }
    const double elapsed = now - mon.t_loop;
    const double eta = done > 0 && total >= done ? elapsed / (double)done * (double)(total - done) : -1;
    sc_monitor_step(done, total, unit, eta);
    if (done != total && (done == 0 || now - mon.last_line < 2.0)) return;
    mon.last_line = now;
    char el[32], et[32];
    fmt_duration(el, sizeof el, elapsed);
    fmt_duration(et, sizeof et, eta);
    sc_log(SC_LOG_INFO, "%s: %ld/%ld %s (%.0f%%), elapsed %s, eta %s", what, done, total, unit,
           total > 0 ? 100.0 * (double)done / (double)total : 100.0, el, et);
}
