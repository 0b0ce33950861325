#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sc_test_failures = 0;
int sc_test_checks = 0;
static char tmpdir[4096];

void sc_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    sc_test_failures++;
}

int sc_test_finish(const char *name) {
    if (tmpdir[0] && !getenv("SC_KEEP_TMP")) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    }
    printf("%s: %d checks, %d failed\n", name, sc_test_checks, sc_test_failures);
    return sc_test_failures ? 1 : 0;
}

sc_backend *sc_test_backend(void) {
    static sc_backend *be;
    if (!be && !(be = sc_backend_cpu_new())) { fprintf(stderr, "cannot create the CPU backend: %s\n", sc_last_error()); exit(2); }
    return be;
}

const char *sc_test_env(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

const char *sc_test_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "%s/sc_test_XXXXXX", sc_test_env("TMPDIR", "/tmp"));
        if (!mkdtemp(tmpdir)) { perror("mkdtemp"); exit(2); }
    }
    return tmpdir;
}

void sc_test_write(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) { perror(path); exit(2); }
    fclose(f);
}

int sc_test_have_torch(void) {
    static int have = -1;
    if (have < 0) have = system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") == 0;
    return have;
}

int sc_test_run_ref(const char *request_path, const char *out_dir) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/ref/qwen2_ref.py' '%s' '%s'",
             sc_test_env("SC_SOURCE_DIR", "."), request_path, out_dir);
    return system(cmd);
}

double sc_test_rel_err(const float *a, const double *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}
