// error.c — the thread-local error message, the log sink and checked allocation.
#include "steerclear/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SC_ERRMSG_CAP 2048
static _Thread_local char sc_errmsg[SC_ERRMSG_CAP];

sc_status sc_errorf(sc_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc_errmsg, sizeof sc_errmsg, fmt, ap);
    va_end(ap);
    return st;
}

sc_status sc_error_wrap(sc_status st, const char *fmt, ...) {
    char prefix[SC_ERRMSG_CAP], joined[2 * SC_ERRMSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t np = strlen(prefix), no = strlen(sc_errmsg);
    memcpy(joined, prefix, np);
    memcpy(joined + np, sc_errmsg, no + 1);
    if (np + no >= SC_ERRMSG_CAP) joined[SC_ERRMSG_CAP - 1] = '\0';   // keep the start: it names the file
    memcpy(sc_errmsg, joined, strlen(joined) + 1);
    return st;
}

const char *sc_last_error(void) { return sc_errmsg; }
void sc_error_clear(void) { sc_errmsg[0] = '\0'; }

const char *sc_status_name(sc_status st) {
    switch (st) {
    case SC_OK: return "ok";
    case SC_ERR_ARG: return "invalid argument";
    case SC_ERR_IO: return "I/O error";
    case SC_ERR_FORMAT: return "format error";
    case SC_ERR_SHAPE: return "shape mismatch";
    case SC_ERR_MEM: return "out of memory";
    case SC_ERR_NUMERIC: return "numerical error";
    case SC_ERR_LIB: return "library error";
    case SC_ERR_INTERRUPTED: return "interrupted";
    case SC_ERR_BUSY: return "busy";
    case SC_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

// ---------------------------------------------------------------------------------------
// Logging

static void default_sink(sc_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level == SC_LOG_INFO) fprintf(stderr, "%s\n", msg);
    else fprintf(stderr, "%s: %s\n", names[level], msg);
}

static sc_log_fn log_fn = default_sink;
static void *log_user = NULL;
static sc_log_level log_min = SC_LOG_INFO;

void sc_log_set(sc_log_fn fn, void *user) {
    log_fn = fn ? fn : default_sink;
    log_user = fn ? user : NULL;
}
void sc_log_set_level(sc_log_level min_level) { log_min = min_level; }

void sc_log(sc_log_level level, const char *fmt, ...) {
    if (level < log_min) return;
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}

// ---------------------------------------------------------------------------------------
// Memory

void *sc_malloc(size_t bytes, const char *what) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) sc_errorf(SC_ERR_MEM, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *sc_calloc(size_t n, size_t size, const char *what) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) sc_errorf(SC_ERR_MEM, "out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}

void *sc_aligned_alloc(size_t bytes, const char *what) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (!p) {
        sc_errorf(SC_ERR_MEM, "out of memory allocating %zu bytes for %s", bytes, what);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

char *sc_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = sc_malloc(n, "string");
    if (p) memcpy(p, s, n);
    return p;
}

char *sc_strdupf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}
