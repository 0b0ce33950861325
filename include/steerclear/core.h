// core.h — status codes, error messages, logging, timing and small allocation helpers.
//
// Library code never exits: a function that can fail returns sc_status and leaves one
// message (what, where, what to do) in a thread-local buffer read with sc_last_error().
// Logs go through one settable sink so the CLI, tests and MPI ranks choose where they land.
#ifndef STEERCLEAR_CORE_H
#define STEERCLEAR_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    SC_OK = 0,
    SC_ERR_ARG,      // bad argument or configuration value (user input)
    SC_ERR_IO,       // a file could not be opened, read, written or renamed
    SC_ERR_FORMAT,   // a file's contents are malformed (safetensors, JSON, CSV, UTF-8, ...)
    SC_ERR_SHAPE,    // tensor shapes disagree with the config or with each other
    SC_ERR_MEM,      // an allocation failed
    SC_ERR_NUMERIC,  // NaN/Inf where finite numbers are required
    SC_ERR_LIB,      // an external library call failed (HDF5, BLAS, MPI, curl, ...)
    SC_ERR_INTERRUPTED, // stopped by a signal; state was checkpointed
    SC_ERR_INTERNAL, // a bug: an invariant of our own code does not hold
    SC_ERR_BUSY,     // another process holds what is needed (a run directory's lock)
} sc_status;

// Record an error message (printf-style) and return `st`. Typical use:
//   return sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: shape [%d,%d] does not match ...", path, name, a, b);
sc_status sc_errorf(sc_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Prefix the current message with more context ("loading model DIR: " + old message); returns st.
sc_status sc_error_wrap(sc_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *sc_last_error(void);   // "" when none
const char *sc_status_name(sc_status st);
void sc_error_clear(void);

// Propagate a failing status unchanged.
#define SC_TRY(expr) do { sc_status sc_try_st_ = (expr); if (sc_try_st_ != SC_OK) return sc_try_st_; } while (0)

// ---------------------------------------------------------------------------------------
// Stopping on a signal. sc_signals_install() makes SIGTERM and SIGINT (Slurm preemption,
// Ctrl-C) set one process-wide flag; long loops (decode steps, blocks, loss chunks, searches)
// poll sc_interrupted() and return SC_ERR_INTERRUPTED, so a signal stops the program within
// about one block's work, and the caller keeps its last consistent checkpoint.
void sc_signals_install(void);
int sc_interrupted(void);
void sc_interrupt_reset(void);                   // tests
// Defer signals (a pipeline stage, src/dist/pipeline.c): while deferred, sc_interrupted() is 0
// and sc_check_interrupt succeeds, so no rank of a pipeline leaves a step half done while its
// partners wait for it; the signal is kept (sc_interrupt_pending) for the group to agree on
// between steps. Undeferring makes a kept signal visible again.
void sc_interrupt_defer(int on);
int sc_interrupt_pending(void);
// SC_TRY-like: return SC_ERR_INTERRUPTED (with a message naming `where`) once a signal came.
sc_status sc_check_interrupt(const char *where);

// ---------------------------------------------------------------------------------------
// Logging
typedef enum { SC_LOG_DEBUG = 0, SC_LOG_INFO, SC_LOG_WARN, SC_LOG_ERROR } sc_log_level;
typedef void (*sc_log_fn)(sc_log_level level, const char *msg, void *user);
void sc_log_set(sc_log_fn fn, void *user);       // NULL restores the default (stderr)
void sc_log_set_level(sc_log_level min_level);
void sc_log(sc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// ---------------------------------------------------------------------------------------
// Memory: checked allocation that records an error naming what was being allocated.
void *sc_malloc(size_t bytes, const char *what);            // NULL + error on failure
void *sc_calloc(size_t n, size_t size, const char *what);
void *sc_aligned_alloc(size_t bytes, const char *what);     // 64-byte aligned, zeroed; free with free()
char *sc_strdup(const char *s);
// printf into a malloc'ed string; NULL when out of memory (no error message set)
char *sc_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// ---------------------------------------------------------------------------------------
// Files
// Open a path that must be a regular file, for reading: a directory, FIFO or device is an
// error naming what it is (a FIFO is never waited on). *size receives the file's size.
sc_status sc_open_regular(const char *path, int *fd, size_t *size);
// Read a whole regular file into a NUL-terminated buffer (caller frees).
sc_status sc_read_file(const char *path, char **out, size_t *out_len);
// Write atomically: data goes to PATH.tmp.PID, is fsynced, then renamed over PATH; on any
// failure (a full disk: the message says so) PATH is left as it was.
sc_status sc_write_file_atomic(const char *path, const void *data, size_t len);
// Rename tmp over path after fsync (for writers that stream into a temporary file).
sc_status sc_commit_file(const char *tmp_path, const char *path);
sc_status sc_mkdir_p(const char *path);
// Remove a file or a directory with everything in it (symbolic links are removed, not followed).
sc_status sc_remove_tree(const char *path);
int sc_file_exists(const char *path);

// Timing
double sc_now_seconds(void);       // monotonic

// ---------------------------------------------------------------------------------------
// Element types (of tensors in files and in memory)
typedef enum { SC_DTYPE_F32 = 0, SC_DTYPE_F16, SC_DTYPE_BF16, SC_DTYPE_I32, SC_DTYPE_I64 } sc_dtype;
size_t sc_dtype_size(sc_dtype dt);
const char *sc_dtype_name(sc_dtype dt);   // "F32", "F16", "BF16", "I32", "I64"

// bf16 / f16 conversion (round to nearest even)
static inline float sc_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v; v.u = (uint32_t)h << 16; return v.f;
}
static inline uint16_t sc_f32_to_bf16(float f) {
    union { uint32_t u; float f; } v; v.f = f;
    if ((v.u & 0x7f800000u) == 0x7f800000u && (v.u & 0x007fffffu)) return (uint16_t)((v.u >> 16) | 0x40); // NaN stays NaN
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}
float sc_f16_to_f32(uint16_t h);
// CRC-32C of n bytes, continuing from crc (0 to start). sc_crc32c(0, "123456789", 9) == 0xE3069283.
uint32_t sc_crc32c(uint32_t crc, const void *data, size_t n);
uint16_t sc_f32_to_f16(float f);

#endif
