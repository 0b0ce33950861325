// fuzz_common.h — shared helpers of the libFuzzer targets in tests/fuzz.
//
// The parsers take paths, so every input is written to one file per process
// ($TMPDIR or /tmp, named after the target and the pid) that is overwritten each time.
#ifndef STEERCLEAR_FUZZ_COMMON_H
#define STEERCLEAR_FUZZ_COMMON_H

#include "steerclear/core.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fuzz_quiet_log(sc_log_level level, const char *msg, void *user) {
    (void)level; (void)msg; (void)user;
}

// Silence the library's log sink (libFuzzer's output stays readable).
static inline void fuzz_quiet(void) { sc_log_set(fuzz_quiet_log, NULL); }

// An invariant of an accepted input: on failure say which one, then abort (a libFuzzer crash).
#define FUZZ_CHECK(cond)                                                                         \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

// Write data to this process's input file and return its path (static storage).
static inline const char *fuzz_write_input(const char *target, const uint8_t *data, size_t size) {
    static char path[4096];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        if (!dir || !*dir) dir = "/tmp";
        snprintf(path, sizeof path, "%s/sc_%s_%ld.input", dir, target, (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror(path); abort(); }
    if (fclose(f) != 0) { perror(path); abort(); }
    return path;
}

#endif
