// common.c — helpers shared by the subcommands.
#include "steerclear/cli.h"
#include "steerclear/backend.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

int sc_cli_fail(const char *cmd) {
    fprintf(stderr, "steerclear %s: %s\n", cmd, sc_last_error()[0] ? sc_last_error() : "failed");
    return 1;
}

// --- Option values: each records an error naming the option and returns 0 when bad ---------

int sc_cli_parse_int(const char *opt, const char *s, int min, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > INT_MAX) { sc_errorf(SC_ERR_ARG, "%s '%s' is not an integer >= %d", opt, s, min); return 0; }
    *out = (int)v;
    return 1;
}

int sc_cli_parse_float(const char *opt, const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) { sc_errorf(SC_ERR_ARG, "%s '%s' is not a number", opt, s); return 0; }
    *out = (float)v;
    return 1;
}

// "0,3,5-7" -> {0,3,5,6,7}
int sc_cli_parse_list(const char *s, int **out, int *n) {
    int cap = 16, cnt = 0;
    int *v = malloc(sizeof(int) * (size_t)cap);
    const char *p = s;
    while (v && *p) {
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10), b;
        if (errno || end == p || a < 0 || a > 9999) break;
        b = a;
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (errno || end == q || b < a || b > 9999) break;
        }
        for (long i = a; i <= b; i++) {
            if (cnt == cap) { int *nv = realloc(v, sizeof(int) * (size_t)(cap *= 2)); if (!nv) { free(v); v = NULL; break; } v = nv; }
            if (v) v[cnt++] = (int)i;
        }
        if (!v) break;
        if (*end == ',' && end[1]) p = end + 1;
        else if (!*end) { *out = v; *n = cnt; return 1; }
        else break;
    }
    free(v);
    sc_errorf(SC_ERR_ARG, "--searches '%s' is not a list of search indices such as 0,3,5-7", s);
    return 0;
}

int sc_cli_parse_u64(const char *opt, const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') { sc_errorf(SC_ERR_ARG, "%s '%s' is not a non-negative integer", opt, s); return 0; }
    *out = v;
    return 1;
}

int sc_cli_parse_size(const char *opt, const char *s, size_t *out) {
    if (sc_parse_size(s, out) != SC_OK) { sc_error_wrap(SC_ERR_ARG, "%s: ", opt); return 0; }
    return 1;
}
