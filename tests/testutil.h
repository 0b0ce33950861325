// testutil.h — tiny assertion helpers for ctest executables. A test's main returns
// sc_test_finish(), non-zero when any check failed. Every failed check prints file:line.
#ifndef STEERCLEAR_TESTUTIL_H
#define STEERCLEAR_TESTUTIL_H

#include "steerclear/backend.h"

#include <math.h>
#include <string.h>

extern int sc_test_failures;
extern int sc_test_checks;

void sc_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sc_test_finish(const char *name);
// The CPU backend every test of a process shares (created on first use; $SC_CPU_ISA picks the
// kernels).
sc_backend *sc_test_backend(void);
// $SC_SOURCE_DIR etc. with a fallback; path joins into a static buffer per call site.
const char *sc_test_env(const char *name, const char *fallback);
// A fresh empty temporary directory (under $TMPDIR or /tmp), removed by sc_test_finish unless
// SC_KEEP_TMP is set.
const char *sc_test_tmpdir(void);
// max|a - ref| / max|ref| (max|a - ref| when ref is all zero); NaN in a counts as infinite error.
double sc_test_rel_err(const float *a, const double *ref, size_t n);
// 1 when Debian's /usr/bin/python3 can import torch and numpy (the PyTorch reference).
int sc_test_have_torch(void);
// Run tests/ref/qwen2_ref.py on a request file; returns its exit status (0 = ok).
int sc_test_run_ref(const char *request_path, const char *out_dir);
// Write a string to a file (for malformed-input tests).
void sc_test_write(const char *path, const char *data, size_t len);

#define CHECK(cond) do { sc_test_checks++; if (!(cond)) sc_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); } while (0)
#define CHECKF(cond, ...) do { sc_test_checks++; if (!(cond)) sc_test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define CHECK_OK(expr) do { sc_test_checks++; sc_status st_ = (expr); \
    if (st_ != SC_OK) sc_test_fail(__FILE__, __LINE__, "%s -> %s: %s", #expr, sc_status_name(st_), sc_last_error()); } while (0)
// The call must fail with status `want` and a message containing every listed substring.
#define CHECK_ERR(expr, want, ...) do { sc_test_checks++; sc_error_clear(); sc_status st_ = (expr); \
    const char *subs_[] = {__VA_ARGS__}; \
    if (st_ != (want)) sc_test_fail(__FILE__, __LINE__, "%s -> %s (want %s): %s", #expr, sc_status_name(st_), sc_status_name(want), sc_last_error()); \
    else for (size_t i_ = 0; i_ < sizeof subs_ / sizeof subs_[0]; i_++) \
        if (!strstr(sc_last_error(), subs_[i_])) sc_test_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", #expr, sc_last_error(), subs_[i_]); \
} while (0)
#define CHECK_NEAR(a, b, tol) do { sc_test_checks++; double a_ = (a), b_ = (b); \
    if (!(fabs(a_ - b_) <= (tol))) sc_test_fail(__FILE__, __LINE__, "%s = %.9g, %s = %.9g, |diff| %.3g > %.3g", #a, a_, #b, b_, fabs(a_ - b_), (double)(tol)); } while (0)

#endif
