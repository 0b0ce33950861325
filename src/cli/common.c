// common.c — helpers shared by the subcommands.
#include "steerclear/cli.h"
#include "steerclear/backend.h"
#include "steerclear/core.h"
#include "steerclear/stage.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sc_cli_fail(const char *cmd) {
    fprintf(stderr, "steerclear %s: %s\n", cmd, sc_last_error()[0] ? sc_last_error() : "failed");
    return 1;
}

int sc_cli_bad_input(const char *cmd) {
    sc_cli_fail(cmd);
    return SC_EXIT_BAD_INPUT;
}

int sc_cli_setup_exit(sc_status st) {
    if (st == SC_ERR_BUSY) return SC_EXIT_LOCKED;
    if (st == SC_ERR_INTERRUPTED) return SC_EXIT_INTERRUPTED;
    if (st == SC_ERR_MEM || st == SC_ERR_INTERNAL || st == SC_ERR_LIB) return SC_EXIT_FAILED;
    return SC_EXIT_BAD_INPUT;
}

int sc_cli_run_exit(sc_status st) {
    switch (st) {
    case SC_OK: return SC_EXIT_OK;
    case SC_ERR_INTERRUPTED: return SC_EXIT_INTERRUPTED;
    case SC_ERR_BUSY: return SC_EXIT_LOCKED;
    case SC_ERR_ARG: case SC_ERR_FORMAT: case SC_ERR_SHAPE: return SC_EXIT_BAD_INPUT;   // found in the input, whenever
    default: return SC_EXIT_FAILED;
    }
}

int sc_cli_no_positional(const char *cmd, int argc, char **argv, int first) {
    if (first >= argc) return 1;
    sc_errorf(SC_ERR_ARG, "unexpected argument '%s' (options start with --; see steerclear %s --help)", argv[first], cmd);
    return 0;
}

// --- Option values: each records an error naming the option and returns 0 when bad ---------
// Numbers are plain decimal: no hex ("0x10"), no "nan" / "inf", no trailing text, no overflow.

int sc_cli_parse_int_range(const char *opt, const char *s, int min, int max, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        if (max == INT_MAX && min == 1) sc_errorf(SC_ERR_ARG, "%s '%s' is not a positive integer", opt, s);
        else if (max == INT_MAX) sc_errorf(SC_ERR_ARG, "%s '%s' is not an integer >= %d", opt, s, min);
        else sc_errorf(SC_ERR_ARG, "%s '%s' is not an integer in [%d, %d]", opt, s, min, max);
        return 0;
    }
    *out = (int)v;
    return 1;
}

int sc_cli_parse_int(const char *opt, const char *s, int min, int *out) { return sc_cli_parse_int_range(opt, s, min, INT_MAX, out); }

// [+-]digits[.digits][(e|E)[+-]digits] or [+-].digits[...]
static int is_decimal(const char *s) {
    if (*s == '+' || *s == '-') s++;
    int digits = 0;
    while (isdigit((unsigned char)*s)) { s++; digits++; }
    if (*s == '.') { s++; while (isdigit((unsigned char)*s)) { s++; digits++; } }
    if (!digits) return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!isdigit((unsigned char)*s)) return 0;
        while (isdigit((unsigned char)*s)) s++;
    }
    return *s == '\0';
}

int sc_cli_parse_float(const char *opt, const char *s, float *out) {
    double v = is_decimal(s) ? strtod(s, NULL) : NAN;
    if (!isfinite(v) || fabs(v) > FLT_MAX) { sc_errorf(SC_ERR_ARG, "%s '%s' is not a finite decimal number", opt, s); return 0; }
    *out = (float)v;
    return 1;
}

int sc_cli_parse_u64(const char *opt, const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || !isdigit((unsigned char)s[0])) { sc_errorf(SC_ERR_ARG, "%s '%s' is not a non-negative integer", opt, s); return 0; }
    *out = v;
    return 1;
}

int sc_cli_parse_seed(const char *opt, const char *s, uint64_t *out) {
    unsigned long long v;
    if (!sc_cli_parse_u64(opt, s, &v)) return 0;
    if (v > SC_SEED_MAX) { sc_errorf(SC_ERR_ARG, "%s %s is above 2^53 (seeds are stored as JSON numbers, exact up to 2^53)", opt, s); return 0; }
    *out = v;
    return 1;
}

int sc_cli_parse_range(const char *opt, const char *s, int *first, int *last) {
    const char *colon = strchr(s, ':');
    char a[32];
    if (!colon || (size_t)(colon - s) >= sizeof a) { sc_errorf(SC_ERR_ARG, "%s '%s': expected FIRST:LAST, e.g. 2:10", opt, s); return 0; }
    memcpy(a, s, (size_t)(colon - s));
    a[colon - s] = '\0';
    if (!sc_cli_parse_int(opt, a, 0, first) || !sc_cli_parse_int(opt, colon + 1, 0, last)) {
        sc_errorf(SC_ERR_ARG, "%s '%s': FIRST and LAST must be integers >= 0, e.g. 2:10", opt, s);
        return 0;
    }
    if (*last <= *first) { sc_errorf(SC_ERR_ARG, "%s '%s' is an empty range: LAST must be above FIRST", opt, s); return 0; }
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


int sc_cli_parse_precision(const char *opt, const char *s, const char **out) {
    static const char *const names[] = {"auto", "f32", "bf16"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i])) { *out = names[i]; return 1; }
    sc_errorf(SC_ERR_ARG, "%s: '%s' is not a precision: use auto, f32 or bf16", opt, s);
    return 0;
}

int sc_cli_parse_size(const char *opt, const char *s, size_t *out) {
    if (sc_parse_size(s, out) != SC_OK) { sc_error_wrap(SC_ERR_ARG, "%s: ", opt); return 0; }
    return 1;
}

int sc_cli_stage_option(int c, const char *arg, sc_stage_opts *so) {
    switch (c) {
    case SC_CLI_O_RUN: so->run_dir = arg; return 1;
    case SC_CLI_O_MODEL: so->model_dir = arg; return 1;
    case SC_CLI_O_BUDGET: return sc_cli_parse_size("--memory-budget", arg, &so->backend.memory_budget);
    case SC_CLI_O_WAIT: so->run_mode |= SC_RUN_WAIT; return 1;
    case SC_CLI_O_DEVICE: return sc_device_parse(arg, "--device", &so->backend.device) == SC_OK;
    case SC_CLI_O_PRECISION: return sc_cli_parse_precision("--precision", arg, &so->backend.precision);
    default: return -1;
    }
}

int sc_cli_sampling_option(int c, const char *arg, const sc_cli_sampling *s) {
    switch (c) {
    case SC_CLI_O_MAXNEW: return sc_cli_parse_int("--max-new-tokens", arg, s->min_new_tokens, s->max_new_tokens);
    case SC_CLI_O_TEMP: return sc_cli_parse_float("--temperature", arg, s->temperature);
    case SC_CLI_O_TOPK: return sc_cli_parse_int("--top-k", arg, 0, s->top_k);
    case SC_CLI_O_TOPP: return sc_cli_parse_float("--top-p", arg, s->top_p);
    case SC_CLI_O_SEED: *s->seed_set = 1; return sc_cli_parse_seed("--seed", arg, s->seed);
    default: return -1;
    }
}
