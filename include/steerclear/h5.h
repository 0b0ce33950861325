// h5.h — a thin, status-returning layer over libhdf5 for a run's results file.
//
// What it gives: whole-array datasets (f32/f64/i32/i64, up to SC_H5_MAX_DIMS dims), extendable
// row datasets for per-step records, ragged int32 data (flat values + int64 offsets), string /
// int64 / double attributes, readers that allocate, and atomic whole-file writing and updating.
// What it leaves out: compression, partial reads, compound types, parallel (MPI-IO) HDF5 —
// rank 0 alone writes the results file (DESIGN.md, "Distribution").
//
// Object paths are absolute HDF5 paths ("/searches/0003/adapter/A"); missing intermediate
// groups are created on write. Every failure returns an sc_status whose message names the
// file, the object path, what was attempted, HDF5's own innermost message and what to do:
//   results.h5: /searches/0003/adapter/A: cannot read dataset: object does not exist (...)
// HDF5's automatic error printing is switched off (H5Eset_auto2) the first time a file is
// opened here; the error stack is folded into our message with H5Ewalk2 instead.
//
// Atomic use (the trainer rewrites the results file after each finished search):
//   sc_h5 *h;
//   SC_TRY(sc_h5_begin_update("run/results.h5", &h));   // copies the file to a temporary name
//   ... sc_h5_write_f32(h, ...), sc_h5_attr_str(h, ...) ...
//   SC_TRY(sc_h5_commit(h));                            // close, fsync, rename over the original
// On any error call sc_h5_close(h) instead: the temporary is deleted and the original file is
// untouched, so a crash or a failed write never leaves half a results file. sc_h5_begin_new
// does the same for a file written from scratch. HDF5 never reclaims the space of replaced
// datasets inside a file; rewriting through begin_update keeps that growth to the replaced
// data only (run `h5repack` offline if it ever matters).
//
// Not thread-safe (Debian's serial libhdf5 is not); use one thread per process for HDF5.
#ifndef STEERCLEAR_H5_H
#define STEERCLEAR_H5_H

#include "steerclear/core.h"

#define SC_H5_MAX_DIMS 8

typedef struct sc_h5 sc_h5;

// ---------------------------------------------------------------------------------------
// Opening and closing
// Create (truncate) PATH directly. Prefer sc_h5_begin_new for results others may read.
sc_status sc_h5_create(const char *path, sc_h5 **out);
// Open an existing file, read-only (rw = 0) or read-write (rw = 1).
sc_status sc_h5_open(const char *path, int rw, sc_h5 **out);
// Atomic writing: the handle writes PATH.tmp.PID; sc_h5_commit renames it over PATH.
// begin_new starts from an empty file; begin_update starts from a copy of PATH (or from an
// empty file when PATH does not exist yet).
sc_status sc_h5_begin_new(const char *path, sc_h5 **out);
sc_status sc_h5_begin_update(const char *path, sc_h5 **out);
// Close the file, fsync it and rename it into place; frees h whatever happens. On an
// ordinary (non-begin) handle it is the same as sc_h5_close.
sc_status sc_h5_commit(sc_h5 *h);
// Close and free (NULL is fine). For a begin_* handle not committed, deletes the temporary
// and leaves PATH as it was. Returns an error if HDF5 could not flush the file.
sc_status sc_h5_close(sc_h5 *h);
// The path the handle stands for (the final path for begin_* handles).
const char *sc_h5_filename(const sc_h5 *h);

// ---------------------------------------------------------------------------------------
// Whole arrays. dims[0..ndim) >= 0, 1 <= ndim <= SC_H5_MAX_DIMS, data is C order (row-major).
// Writing an existing dataset replaces it: in place when type class and dims match,
// otherwise it is unlinked and recreated.
sc_status sc_h5_write_f32(sc_h5 *h, const char *path, int ndim, const int64_t *dims, const float *data);
sc_status sc_h5_write_f64(sc_h5 *h, const char *path, int ndim, const int64_t *dims, const double *data);
sc_status sc_h5_write_i32(sc_h5 *h, const char *path, int ndim, const int64_t *dims, const int32_t *data);
sc_status sc_h5_write_i64(sc_h5 *h, const char *path, int ndim, const int64_t *dims, const int64_t *data);

// Read a whole dataset into a new buffer (caller frees *data). *ndim and dims[] receive the
// shape (dims must hold SC_H5_MAX_DIMS). The stored type must be of the same class (float vs
// integer); HDF5 converts the width (an f32 dataset reads fine as f64, i32 as i64).
sc_status sc_h5_read_f32(sc_h5 *h, const char *path, float **data, int *ndim, int64_t *dims);
sc_status sc_h5_read_f64(sc_h5 *h, const char *path, double **data, int *ndim, int64_t *dims);
sc_status sc_h5_read_i32(sc_h5 *h, const char *path, int32_t **data, int *ndim, int64_t *dims);
sc_status sc_h5_read_i64(sc_h5 *h, const char *path, int64_t **data, int *ndim, int64_t *dims);

// ---------------------------------------------------------------------------------------
// Extendable row datasets (per-step records): chunked, unlimited first dimension.
// row_len == 1 gives a 1-D dataset [N]; row_len > 1 a 2-D dataset [N][row_len]. Appending to an
// existing dataset checks its rank, row length and type class. n_rows may be 0 (creates it).
sc_status sc_h5_append_f32(sc_h5 *h, const char *path, int64_t row_len, const float *rows, int64_t n_rows);
sc_status sc_h5_append_f64(sc_h5 *h, const char *path, int64_t row_len, const double *rows, int64_t n_rows);
sc_status sc_h5_append_i32(sc_h5 *h, const char *path, int64_t row_len, const int32_t *rows, int64_t n_rows);
sc_status sc_h5_append_i64(sc_h5 *h, const char *path, int64_t row_len, const int64_t *rows, int64_t n_rows);

// Ragged int32 data (e.g. the sampled token ids of every sequence of every step), stored under
// the group PATH as PATH/values int32 [total] and PATH/offsets int64 [n_items + 1], with
// offsets[0] = 0: item i is values[offsets[i] .. offsets[i+1]). Appending adds n_items items
// whose lengths are lengths[0..n_items) and whose values are concatenated in values.
sc_status sc_h5_append_ragged_i32(sc_h5 *h, const char *path, const int32_t *values,
                                  const int64_t *lengths, int64_t n_items);
// Read it back: *values (total ints) and *offsets (n_items + 1) are new buffers (caller frees).
// Checks that offsets start at 0, never decrease and end at the number of values.
sc_status sc_h5_read_ragged_i32(sc_h5 *h, const char *path, int32_t **values, int64_t **offsets,
                                int64_t *n_items);

// ---------------------------------------------------------------------------------------
// Attributes on any group or dataset (OBJ "/" is the root). Writing replaces an attribute of the
// same name; writing onto a missing OBJ creates it as a group. Strings are variable-length UTF-8
// (h5py reads them as str).
sc_status sc_h5_attr_str(sc_h5 *h, const char *obj, const char *name, const char *value);
sc_status sc_h5_attr_i64(sc_h5 *h, const char *obj, const char *name, int64_t value);
sc_status sc_h5_attr_f64(sc_h5 *h, const char *obj, const char *name, double value);
// Readers. read_attr_str returns a new string (caller frees); it accepts fixed- and
// variable-length strings. The numeric readers accept any integer / float attribute.
sc_status sc_h5_read_attr_str(sc_h5 *h, const char *obj, const char *name, char **value);
sc_status sc_h5_read_attr_i64(sc_h5 *h, const char *obj, const char *name, int64_t *value);
sc_status sc_h5_read_attr_f64(sc_h5 *h, const char *obj, const char *name, double *value);

// ---------------------------------------------------------------------------------------
// 1 when PATH names an existing group or dataset ("/" always exists), 0 otherwise.
int sc_h5_exists(sc_h5 *h, const char *path);
// Create a group (and its parents); fine when it already exists.
sc_status sc_h5_mkgroup(sc_h5 *h, const char *path);
// Unlink a dataset or group; fine when it does not exist.
sc_status sc_h5_delete(sc_h5 *h, const char *path);

#endif
