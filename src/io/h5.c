// h5.c — the HDF5 results-file layer declared in steerclear/h5.h: file handles (direct and
// atomic temp+rename), whole-array datasets, extendable row datasets, ragged int32 data,
// attributes, and HDF5 error stacks folded into sc_status messages.
// Leaves out: compression, partial reads beyond the last row of a dataset, compound types,
// parallel HDF5. Uses only the 1.10 API, which later HDF5 releases keep.
#include "steerclear/h5.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sc_h5 {
    hid_t fid;
    char *path;     // the path the caller named (used in every message)
    char *tmp;      // begin_* handles: the temporary file actually open, else NULL
    int rw;
};

typedef enum { T_F32, T_F64, T_I32, T_I64 } h5t;

#define H5_PATH_MAX 1024

// ---------------------------------------------------------------------------------------
// Errors: HDF5's stack → one message

typedef struct {
    char first[256];   // outermost frame (the API call)
    char last[256];    // innermost frame (usually the actual cause)
    int n;
} h5_stack;

static herr_t h5_walk(unsigned n, const H5E_error2_t *e, void *data) {
    h5_stack *s = data;
    const char *d = e->desc && e->desc[0] ? e->desc : (e->func_name ? e->func_name : "?");
    if (n == 0) snprintf(s->first, sizeof s->first, "%s", d);
    snprintf(s->last, sizeof s->last, "%s", d);
    s->n++;
    return 0;
}

// HDF5's current error stack as "HDF5: outer: inner" into lib; clears the stack.
static void h5_stack_text(char *lib, size_t n) {
    h5_stack s = {{0}, {0}, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_walk, &s);
    H5Eclear2(H5E_DEFAULT);
    if (s.n == 0) snprintf(lib, n, "HDF5 gave no message");
    else if (s.n == 1 || !strcmp(s.first, s.last)) snprintf(lib, n, "HDF5: %s", s.last);
    else snprintf(lib, n, "HDF5: %s: %s", s.first, s.last);
}

// Record "FILE: OBJ: WHAT: <hdf5 message> (HINT)" and clear HDF5's stack.
static sc_status h5_fail(sc_status st, const char *file, const char *obj, const char *what, const char *hint) {
    char lib[600];
    h5_stack_text(lib, sizeof lib);
    if (strstr(lib, "unable to lock file") || strstr(lib, "file locking"))
        hint = "the file is open in another process, or this file system has no locking: "
               "close the other reader or set HDF5_USE_FILE_LOCKING=FALSE";
    if (obj) return sc_errorf(st, "%s: %s: %s: %s (%s)", file, obj, what, lib, hint);
    return sc_errorf(st, "%s: %s: %s (%s)", file, what, lib, hint);
}

static void h5_quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);   // we report through h5_fail instead of stderr
}

// Close any HDF5 identifier we hold (negative ids are ignored).
static void h5_release(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

// ---------------------------------------------------------------------------------------
// Types

static hid_t mem_type(h5t t) {
    switch (t) {
    case T_F32: return H5T_NATIVE_FLOAT;
    case T_F64: return H5T_NATIVE_DOUBLE;
    case T_I32: return H5T_NATIVE_INT32;
    default: return H5T_NATIVE_INT64;
    }
}
static hid_t file_type(h5t t) {
    switch (t) {
    case T_F32: return H5T_IEEE_F32LE;
    case T_F64: return H5T_IEEE_F64LE;
    case T_I32: return H5T_STD_I32LE;
    default: return H5T_STD_I64LE;
    }
}
static size_t type_size(h5t t) { return (t == T_F32 || t == T_I32) ? 4 : 8; }
static int type_is_float(h5t t) { return t == T_F32 || t == T_F64; }
static const char *type_name(h5t t) {
    static const char *names[] = {"float32", "float64", "int32", "int64"};
    return names[t];
}

// "float32", "int16", ... for a stored type, into buf.
static const char *stored_name(hid_t ftype, char *buf, size_t n) {
    H5T_class_t c = H5Tget_class(ftype);
    size_t bits = 8 * H5Tget_size(ftype);
    if (c == H5T_FLOAT) snprintf(buf, n, "float%zu", bits);
    else if (c == H5T_INTEGER) snprintf(buf, n, "%sint%zu", H5Tget_sign(ftype) == H5T_SGN_NONE ? "u" : "", bits);
    else if (c == H5T_STRING) snprintf(buf, n, "string");
    else snprintf(buf, n, "HDF5 type class %d", (int)c);
    return buf;
}

// ---------------------------------------------------------------------------------------
// Handles

static sc_status check_obj_path(const sc_h5 *h, const char *path) {
    if (!path || path[0] != '/')
        return sc_errorf(SC_ERR_ARG, "%s: object path '%s' must be absolute (start with '/')",
                         h->path, path ? path : "(null)");
    if (strlen(path) >= H5_PATH_MAX)
        return sc_errorf(SC_ERR_ARG, "%s: object path '%.40s...' is longer than %d bytes", h->path, path, H5_PATH_MAX - 1);
    return SC_OK;
}

static sc_status check_writable(const sc_h5 *h, const char *path) {
    if (!h->rw)
        return sc_errorf(SC_ERR_ARG, "%s: %s: cannot write: the file was opened read-only (open it with rw = 1)",
                         h->path, path);
    return SC_OK;
}

static sc_status h5_new_handle(const char *path, const char *tmp, int rw, sc_h5 **out) {
    sc_h5 *h = sc_calloc(1, sizeof *h, "HDF5 file handle");
    if (!h) return SC_ERR_MEM;
    h->fid = H5I_INVALID_HID;
    h->rw = rw;
    h->path = sc_strdup(path);
    h->tmp = tmp ? sc_strdup(tmp) : NULL;
    if (!h->path || (tmp && !h->tmp)) { free(h->path); free(h->tmp); free(h); return sc_errorf(SC_ERR_MEM, "%s: out of memory", path); }
    *out = h;
    return SC_OK;
}

static void h5_free_handle(sc_h5 *h) {
    free(h->path);
    free(h->tmp);
    free(h);
}

static sc_status h5_create_file(sc_h5 *h, const char *real) {
    h->fid = H5Fcreate(real, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (h->fid < 0)
        return h5_fail(SC_ERR_IO, h->path, NULL, h->tmp ? "cannot create the temporary file" : "cannot create file",
                       "check the directory exists and is writable");
    return SC_OK;
}

sc_status sc_h5_create(const char *path, sc_h5 **out) {
    *out = NULL;
    h5_quiet();
    sc_h5 *h = NULL;
    SC_TRY(h5_new_handle(path, NULL, 1, &h));
    sc_status st = h5_create_file(h, path);
    if (st != SC_OK) { h5_free_handle(h); return st; }
    *out = h;
    return SC_OK;
}

static sc_status h5_open_file(sc_h5 *h, const char *real, int rw) {
    if (!sc_file_exists(real))
        return sc_errorf(SC_ERR_IO, "%s: cannot open HDF5 file: %s (check the path; a run writes its results file "
                         "only after the first search finishes)", h->path, strerror(ENOENT));
    h->fid = H5Fopen(real, rw ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h->fid < 0)
        return h5_fail(SC_ERR_IO, h->path, NULL, "cannot open HDF5 file",
                       "check it is an HDF5 file, is readable, and was not cut short by a crash");
    return SC_OK;
}

sc_status sc_h5_open(const char *path, int rw, sc_h5 **out) {
    *out = NULL;
    h5_quiet();
    sc_h5 *h = NULL;
    SC_TRY(h5_new_handle(path, NULL, rw, &h));
    sc_status st = h5_open_file(h, path, rw);
    if (st != SC_OK) { h5_free_handle(h); return st; }
    *out = h;
    return SC_OK;
}

static void tmp_name(const char *path, char *buf, size_t n) {
    snprintf(buf, n, "%s.tmp.%ld", path, (long)getpid());
}

sc_status sc_h5_begin_new(const char *path, sc_h5 **out) {
    *out = NULL;
    h5_quiet();
    char tmp[4200];
    tmp_name(path, tmp, sizeof tmp);
    sc_h5 *h = NULL;
    SC_TRY(h5_new_handle(path, tmp, 1, &h));
    sc_status st = h5_create_file(h, tmp);
    if (st != SC_OK) { h5_free_handle(h); return st; }
    *out = h;
    return SC_OK;
}

// Byte copy src → dst (dst truncated), fsynced.
static sc_status copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY);
    if (in < 0) return sc_errorf(SC_ERR_IO, "%s: cannot open for copying: %s", src, strerror(errno));
    int outfd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (outfd < 0) {
        int e = errno;
        close(in);
        return sc_errorf(SC_ERR_IO, "%s: cannot create temporary copy %s: %s (check the directory is writable)", src, dst, strerror(e));
    }
    char buf[1 << 16];
    sc_status st = SC_OK;
    for (;;) {
        ssize_t got = read(in, buf, sizeof buf);
        if (got == 0) break;
        if (got < 0) {
            if (errno == EINTR) continue;
            st = sc_errorf(SC_ERR_IO, "%s: read failed while copying: %s", src, strerror(errno));
            break;
        }
        for (ssize_t off = 0; off < got;) {
            ssize_t put = write(outfd, buf + off, (size_t)(got - off));
            if (put < 0 && errno == EINTR) continue;
            if (put <= 0) { st = sc_errorf(SC_ERR_IO, "%s: write failed: %s (disk full?)", dst, strerror(errno)); break; }
            off += put;
        }
        if (st != SC_OK) break;
    }
    if (st == SC_OK && fsync(outfd) != 0) st = sc_errorf(SC_ERR_IO, "%s: fsync failed: %s", dst, strerror(errno));
    close(in);
    if (close(outfd) != 0 && st == SC_OK) st = sc_errorf(SC_ERR_IO, "%s: close failed: %s", dst, strerror(errno));
    if (st != SC_OK) unlink(dst);
    return st;
}

sc_status sc_h5_begin_update(const char *path, sc_h5 **out) {
    *out = NULL;
    if (!sc_file_exists(path)) return sc_h5_begin_new(path, out);
    h5_quiet();
    char tmp[4200];
    tmp_name(path, tmp, sizeof tmp);
    SC_TRY(copy_file(path, tmp));
    sc_h5 *h = NULL;
    sc_status st = h5_new_handle(path, tmp, 1, &h);
    if (st != SC_OK) { unlink(tmp); return st; }
    st = h5_open_file(h, tmp, 1);
    if (st != SC_OK) { unlink(tmp); h5_free_handle(h); return st; }
    *out = h;
    return SC_OK;
}

const char *sc_h5_filename(const sc_h5 *h) { return h->path; }

// Close the HDF5 file; reports identifiers we leaked (a bug here) and flush failures.
static sc_status h5_close_file(sc_h5 *h) {
    if (h->fid < 0) return SC_OK;
    ssize_t open_objs = H5Fget_obj_count(h->fid, H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE | H5F_OBJ_ATTR);
    herr_t rc = H5Fclose(h->fid);
    h->fid = H5I_INVALID_HID;
    if (rc < 0) return h5_fail(SC_ERR_IO, h->path, NULL, "cannot close (flush) file", "disk full or file system error?");
    if (open_objs > 0)
        return sc_errorf(SC_ERR_INTERNAL, "%s: %zd HDF5 objects were still open at close (a bug in h5.c)", h->path, open_objs);
    return SC_OK;
}

sc_status sc_h5_close(sc_h5 *h) {
    if (!h) return SC_OK;
    sc_status st = h5_close_file(h);
    if (h->tmp) unlink(h->tmp);
    h5_free_handle(h);
    return st;
}

sc_status sc_h5_commit(sc_h5 *h) {
    if (!h->tmp) return sc_h5_close(h);
    sc_status st = h5_close_file(h);
    if (st == SC_OK) st = sc_commit_file(h->tmp, h->path);
    if (st != SC_OK) unlink(h->tmp);
    h5_free_handle(h);
    return st;
}

// ---------------------------------------------------------------------------------------
// Objects

int sc_h5_exists(sc_h5 *h, const char *path) {
    if (!path || path[0] != '/' || strlen(path) >= H5_PATH_MAX) return 0;
    if (!strcmp(path, "/")) return 1;
    char buf[H5_PATH_MAX];
    strcpy(buf, path);
    // H5Lexists fails (rather than answering 0) when a parent is missing: check each prefix.
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            htri_t e = H5Lexists(h->fid, buf, H5P_DEFAULT);
            *p = c;
            if (e <= 0) { H5Eclear2(H5E_DEFAULT); return 0; }
            if (c == '\0') break;
        }
    }
    htri_t o = H5Oexists_by_name(h->fid, path, H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    return o > 0;
}

static hid_t lcpl_intermediate(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

sc_status sc_h5_mkgroup(sc_h5 *h, const char *path) {
    SC_TRY(check_obj_path(h, path));
    if (sc_h5_exists(h, path)) return SC_OK;
    SC_TRY(check_writable(h, path));
    hid_t lcpl = lcpl_intermediate();
    hid_t g = H5Gcreate2(h->fid, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    h5_release(lcpl);
    if (g < 0) return h5_fail(SC_ERR_LIB, h->path, path, "cannot create group", "is a parent a dataset rather than a group?");
    H5Gclose(g);
    return SC_OK;
}

sc_status sc_h5_delete(sc_h5 *h, const char *path) {
    SC_TRY(check_obj_path(h, path));
    if (!strcmp(path, "/")) return sc_errorf(SC_ERR_ARG, "%s: cannot delete the root group", h->path);
    if (!sc_h5_exists(h, path)) return SC_OK;
    SC_TRY(check_writable(h, path));
    if (H5Ldelete(h->fid, path, H5P_DEFAULT) < 0)
        return h5_fail(SC_ERR_LIB, h->path, path, "cannot delete", "check the file is writable");
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Whole arrays

static sc_status check_dims(const sc_h5 *h, const char *path, int ndim, const int64_t *dims, hsize_t *hd, size_t *n) {
    if (ndim < 1 || ndim > SC_H5_MAX_DIMS)
        return sc_errorf(SC_ERR_ARG, "%s: %s: rank %d is outside 1..%d", h->path, path, ndim, SC_H5_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return sc_errorf(SC_ERR_ARG, "%s: %s: dimension %d is negative (%lld)", h->path, path, i, (long long)dims[i]);
        hd[i] = (hsize_t)dims[i];
        count *= (size_t)dims[i];
    }
    *n = count;
    return SC_OK;
}

static sc_status write_array(sc_h5 *h, const char *path, h5t t, int ndim, const int64_t *dims, const void *data) {
    SC_TRY(check_obj_path(h, path));
    SC_TRY(check_writable(h, path));
    hsize_t hd[SC_H5_MAX_DIMS];
    size_t n = 0;
    SC_TRY(check_dims(h, path, ndim, dims, hd, &n));
    if (n > 0 && !data) return sc_errorf(SC_ERR_ARG, "%s: %s: data is NULL for %zu elements", h->path, path, n);

    sc_status st = SC_OK;
    hid_t ds = H5I_INVALID_HID, sp = H5I_INVALID_HID, ft = H5I_INVALID_HID, lcpl = H5I_INVALID_HID;
    if (sc_h5_exists(h, path)) {
        // Same stored type and shape: overwrite in place; anything else: unlink and recreate.
        ds = H5Dopen2(h->fid, path, H5P_DEFAULT);
        int same = 0;
        if (ds >= 0) {
            sp = H5Dget_space(ds);
            ft = H5Dget_type(ds);
            hsize_t cur[SC_H5_MAX_DIMS];
            int r = H5Sget_simple_extent_ndims(sp);
            same = r == ndim && H5Tequal(ft, file_type(t)) > 0;
            if (same) {
                H5Sget_simple_extent_dims(sp, cur, NULL);
                for (int i = 0; i < ndim; i++) same &= cur[i] == hd[i];
            }
            h5_release(sp); sp = H5I_INVALID_HID;
            h5_release(ft); ft = H5I_INVALID_HID;
        }
        H5Eclear2(H5E_DEFAULT);
        if (!same) {
            h5_release(ds); ds = H5I_INVALID_HID;
            if (H5Ldelete(h->fid, path, H5P_DEFAULT) < 0)
                return h5_fail(SC_ERR_LIB, h->path, path, "cannot replace the existing object", "check the file is writable");
        }
    }
    if (ds < 0) {
        sp = H5Screate_simple(ndim, hd, NULL);
        lcpl = lcpl_intermediate();
        ds = sp < 0 || lcpl < 0 ? H5I_INVALID_HID : H5Dcreate2(h->fid, path, file_type(t), sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (ds < 0) {
            st = h5_fail(SC_ERR_LIB, h->path, path, "cannot create dataset", "is a parent a dataset rather than a group?");
            goto done;
        }
    }
    if (n > 0 && H5Dwrite(ds, mem_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = h5_fail(SC_ERR_IO, h->path, path, "cannot write dataset", "disk full?");
done:
    h5_release(lcpl);
    h5_release(sp);
    h5_release(ds);
    return st;
}

sc_status sc_h5_write_f32(sc_h5 *h, const char *path, int ndim, const int64_t *dims, const float *data) {
    return write_array(h, path, T_F32, ndim, dims, data);
}
sc_status sc_h5_write_f64(sc_h5 *h, const char *path, int ndim, const int64_t *dims, const double *data) {
    return write_array(h, path, T_F64, ndim, dims, data);
}
sc_status sc_h5_write_i32(sc_h5 *h, const char *path, int ndim, const int64_t *dims, const int32_t *data) {
    return write_array(h, path, T_I32, ndim, dims, data);
}
sc_status sc_h5_write_i64(sc_h5 *h, const char *path, int ndim, const int64_t *dims, const int64_t *data) {
    return write_array(h, path, T_I64, ndim, dims, data);
}

// Check a stored type can be read as t without losing information: same class (float /
// integer) and no narrowing (an int64 dataset is not silently clipped into int32).
static sc_status check_read_type(const sc_h5 *h, const char *path, hid_t ft, h5t t) {
    H5T_class_t c = H5Tget_class(ft);
    int ok = type_is_float(t) ? c == H5T_FLOAT : c == H5T_INTEGER;
    if (ok && H5Tget_size(ft) > type_size(t)) ok = 0;
    if (ok && c == H5T_INTEGER && H5Tget_sign(ft) == H5T_SGN_NONE && H5Tget_size(ft) >= type_size(t)) ok = 0;
    if (!ok) {
        char buf[64];
        return sc_errorf(SC_ERR_FORMAT, "%s: %s: stored as %s, cannot be read as %s without loss (use the reader for the stored type)",
                         h->path, path, stored_name(ft, buf, sizeof buf), type_name(t));
    }
    return SC_OK;
}

static sc_status read_array(sc_h5 *h, const char *path, h5t t, void **data, int *ndim, int64_t *dims) {
    *data = NULL;
    *ndim = 0;
    SC_TRY(check_obj_path(h, path));
    sc_status st = SC_OK;
    hid_t sp = H5I_INVALID_HID, ft = H5I_INVALID_HID;
    hid_t ds = H5Dopen2(h->fid, path, H5P_DEFAULT);
    if (ds < 0) {
        char lib[600];
        h5_stack_text(lib, sizeof lib);
        return sc_errorf(SC_ERR_FORMAT, "%s: %s: cannot open dataset: %s (%s)", h->path, path, lib,
                         sc_h5_exists(h, path) ? "it is a group, not a dataset"
                                               : "the file lacks it: check the name, or list the file with `h5dump -n`");
    }
    sp = H5Dget_space(ds);
    ft = H5Dget_type(ds);
    int r = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (ft < 0 || r < 0) { st = h5_fail(SC_ERR_LIB, h->path, path, "cannot query dataset", "the file may be damaged"); goto done; }
    if (r < 1 || r > SC_H5_MAX_DIMS) {
        st = sc_errorf(SC_ERR_FORMAT, "%s: %s: rank %d is outside 1..%d", h->path, path, r, SC_H5_MAX_DIMS);
        goto done;
    }
    if ((st = check_read_type(h, path, ft, t)) != SC_OK) goto done;
    hsize_t hd[SC_H5_MAX_DIMS];
    H5Sget_simple_extent_dims(sp, hd, NULL);
    size_t n = 1;
    for (int i = 0; i < r; i++) { dims[i] = (int64_t)hd[i]; n *= (size_t)hd[i]; }
    void *buf = sc_malloc(n ? n * type_size(t) : 1, path);
    if (!buf) { st = SC_ERR_MEM; goto done; }
    if (n > 0 && H5Dread(ds, mem_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        st = h5_fail(SC_ERR_IO, h->path, path, "cannot read dataset", "the file may be damaged");
        goto done;
    }
    *data = buf;
    *ndim = r;
done:
    h5_release(ft);
    h5_release(sp);
    h5_release(ds);
    return st;
}

sc_status sc_h5_read_f32(sc_h5 *h, const char *path, float **data, int *ndim, int64_t *dims) {
    return read_array(h, path, T_F32, (void **)data, ndim, dims);
}
sc_status sc_h5_read_f64(sc_h5 *h, const char *path, double **data, int *ndim, int64_t *dims) {
    return read_array(h, path, T_F64, (void **)data, ndim, dims);
}
sc_status sc_h5_read_i32(sc_h5 *h, const char *path, int32_t **data, int *ndim, int64_t *dims) {
    return read_array(h, path, T_I32, (void **)data, ndim, dims);
}
sc_status sc_h5_read_i64(sc_h5 *h, const char *path, int64_t **data, int *ndim, int64_t *dims) {
    return read_array(h, path, T_I64, (void **)data, ndim, dims);
}

// ---------------------------------------------------------------------------------------
// Extendable row datasets

static sc_status append_rows(sc_h5 *h, const char *path, h5t t, int64_t row_len, const void *rows, int64_t n_rows) {
    SC_TRY(check_obj_path(h, path));
    SC_TRY(check_writable(h, path));
    if (row_len < 1 || n_rows < 0)
        return sc_errorf(SC_ERR_ARG, "%s: %s: row length %lld / row count %lld out of range (need >= 1 / >= 0)",
                         h->path, path, (long long)row_len, (long long)n_rows);
    if (n_rows > 0 && !rows) return sc_errorf(SC_ERR_ARG, "%s: %s: rows is NULL", h->path, path);
    int rank = row_len == 1 ? 1 : 2;
    sc_status st = SC_OK;
    hid_t ds = H5I_INVALID_HID, sp = H5I_INVALID_HID, ms = H5I_INVALID_HID, ft = H5I_INVALID_HID;
    hid_t dcpl = H5I_INVALID_HID, lcpl = H5I_INVALID_HID;
    hsize_t cur[2] = {0, (hsize_t)row_len};

    if (!sc_h5_exists(h, path)) {
        // Chunks of about 64 KiB (at least one row) keep appends cheap and reads contiguous enough.
        hsize_t maxd[2] = {H5S_UNLIMITED, (hsize_t)row_len};
        hsize_t chunk_rows = (hsize_t)(65536 / ((size_t)row_len * type_size(t)));
        if (chunk_rows < 1) chunk_rows = 1;
        hsize_t chunk[2] = {chunk_rows, (hsize_t)row_len};
        sp = H5Screate_simple(rank, cur, maxd);
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
        lcpl = lcpl_intermediate();
        if (sp < 0 || dcpl < 0 || lcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 ||
            (ds = H5Dcreate2(h->fid, path, file_type(t), sp, lcpl, dcpl, H5P_DEFAULT)) < 0) {
            st = h5_fail(SC_ERR_LIB, h->path, path, "cannot create extendable dataset", "is a parent a dataset rather than a group?");
            goto done;
        }
        h5_release(sp); sp = H5I_INVALID_HID;
    } else {
        ds = H5Dopen2(h->fid, path, H5P_DEFAULT);
        if (ds < 0) { st = h5_fail(SC_ERR_FORMAT, h->path, path, "cannot open dataset to append", "is it a group?"); goto done; }
        sp = H5Dget_space(ds);
        ft = H5Dget_type(ds);
        int r = H5Sget_simple_extent_ndims(sp);
        hsize_t d[2] = {0, 1}, m[2] = {0, 1};
        if (r == rank) H5Sget_simple_extent_dims(sp, d, m);
        int row_ok = rank == 1 || d[1] == (hsize_t)row_len;
        if (r != rank || !row_ok || m[0] != H5S_UNLIMITED || H5Tequal(ft, file_type(t)) <= 0) {
            char buf[64];
            st = sc_errorf(SC_ERR_FORMAT, "%s: %s: cannot append rows of %lld %s: the dataset has rank %d, %s, "
                           "row length %lld and %s first dimension (delete it or use another path)",
                           h->path, path, (long long)row_len, type_name(t), r, stored_name(ft, buf, sizeof buf),
                           (long long)(r == 2 ? (long long)d[1] : 1), m[0] == H5S_UNLIMITED ? "an unlimited" : "a fixed");
            goto done;
        }
        cur[0] = d[0];
        h5_release(sp); sp = H5I_INVALID_HID;
    }
    if (n_rows > 0) {
        hsize_t ext[2] = {cur[0] + (hsize_t)n_rows, (hsize_t)row_len};
        hsize_t start[2] = {cur[0], 0}, count[2] = {(hsize_t)n_rows, (hsize_t)row_len};
        if (H5Dset_extent(ds, ext) < 0 || (sp = H5Dget_space(ds)) < 0 ||
            H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            (ms = H5Screate_simple(rank, count, NULL)) < 0 ||
            H5Dwrite(ds, mem_type(t), ms, sp, H5P_DEFAULT, rows) < 0)
            st = h5_fail(SC_ERR_IO, h->path, path, "cannot append rows", "disk full?");
    }
done:
    h5_release(ft);
    h5_release(ms);
    h5_release(sp);
    h5_release(dcpl);
    h5_release(lcpl);
    h5_release(ds);
    return st;
}

sc_status sc_h5_append_f32(sc_h5 *h, const char *path, int64_t row_len, const float *rows, int64_t n_rows) {
    return append_rows(h, path, T_F32, row_len, rows, n_rows);
}
sc_status sc_h5_append_f64(sc_h5 *h, const char *path, int64_t row_len, const double *rows, int64_t n_rows) {
    return append_rows(h, path, T_F64, row_len, rows, n_rows);
}
sc_status sc_h5_append_i32(sc_h5 *h, const char *path, int64_t row_len, const int32_t *rows, int64_t n_rows) {
    return append_rows(h, path, T_I32, row_len, rows, n_rows);
}
sc_status sc_h5_append_i64(sc_h5 *h, const char *path, int64_t row_len, const int64_t *rows, int64_t n_rows) {
    return append_rows(h, path, T_I64, row_len, rows, n_rows);
}

// Length of the first dimension and the last element of a 1-D int64 dataset.
static sc_status last_i64(sc_h5 *h, const char *path, int64_t *len, int64_t *last) {
    sc_status st = SC_OK;
    hid_t sp = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    hid_t ds = H5Dopen2(h->fid, path, H5P_DEFAULT);
    if (ds < 0) return h5_fail(SC_ERR_FORMAT, h->path, path, "cannot open dataset", "the ragged group is incomplete");
    sp = H5Dget_space(ds);
    hsize_t d[1] = {0};
    if (H5Sget_simple_extent_ndims(sp) != 1) {
        st = sc_errorf(SC_ERR_FORMAT, "%s: %s: expected a 1-D dataset", h->path, path);
        goto done;
    }
    H5Sget_simple_extent_dims(sp, d, NULL);
    *len = (int64_t)d[0];
    *last = 0;
    if (d[0] > 0) {
        hsize_t start[1] = {d[0] - 1}, one[1] = {1};
        if (H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, one, NULL) < 0 ||
            (ms = H5Screate_simple(1, one, NULL)) < 0 ||
            H5Dread(ds, H5T_NATIVE_INT64, ms, sp, H5P_DEFAULT, last) < 0)
            st = h5_fail(SC_ERR_IO, h->path, path, "cannot read the last element", "the file may be damaged");
    }
done:
    h5_release(ms);
    h5_release(sp);
    h5_release(ds);
    return st;
}

static sc_status ragged_paths(const sc_h5 *h, const char *path, char *vals, char *offs) {
    if (snprintf(vals, H5_PATH_MAX, "%s/values", path) >= H5_PATH_MAX ||
        snprintf(offs, H5_PATH_MAX, "%s/offsets", path) >= H5_PATH_MAX)
        return sc_errorf(SC_ERR_ARG, "%s: %s: object path too long", h->path, path);
    return SC_OK;
}

sc_status sc_h5_append_ragged_i32(sc_h5 *h, const char *path, const int32_t *values,
                                  const int64_t *lengths, int64_t n_items) {
    SC_TRY(check_obj_path(h, path));
    SC_TRY(check_writable(h, path));
    char vp[H5_PATH_MAX], op[H5_PATH_MAX];
    SC_TRY(ragged_paths(h, path, vp, op));
    if (n_items < 0 || (n_items > 0 && !lengths))
        return sc_errorf(SC_ERR_ARG, "%s: %s: %lld items need a lengths array", h->path, path, (long long)n_items);
    if (!sc_h5_exists(h, op)) {
        int64_t zero = 0;
        SC_TRY(append_rows(h, vp, T_I32, 1, NULL, 0));
        SC_TRY(append_rows(h, op, T_I64, 1, &zero, 1));
    }
    int64_t n_off, end, n_val, unused;
    SC_TRY(last_i64(h, op, &n_off, &end));
    SC_TRY(last_i64(h, vp, &n_val, &unused));   // only the length matters
    if (n_off < 1 || end != n_val)
        return sc_errorf(SC_ERR_FORMAT, "%s: %s: offsets end at %lld but there are %lld values (an earlier append was "
                         "interrupted; rewrite this group)", h->path, path, (long long)end, (long long)n_val);
    int64_t *offs = sc_malloc((size_t)(n_items ? n_items : 1) * sizeof *offs, "ragged offsets");
    if (!offs) return SC_ERR_MEM;
    int64_t total = 0;
    for (int64_t i = 0; i < n_items; i++) {
        if (lengths[i] < 0) {
            free(offs);
            return sc_errorf(SC_ERR_ARG, "%s: %s: item %lld has negative length %lld", h->path, path, (long long)i, (long long)lengths[i]);
        }
        total += lengths[i];
        offs[i] = end + total;
    }
    if (total > 0 && !values) { free(offs); return sc_errorf(SC_ERR_ARG, "%s: %s: values is NULL", h->path, path); }
    sc_status st = append_rows(h, vp, T_I32, 1, values, total);
    if (st == SC_OK) st = append_rows(h, op, T_I64, 1, offs, n_items);
    free(offs);
    return st;
}

sc_status sc_h5_read_ragged_i32(sc_h5 *h, const char *path, int32_t **values, int64_t **offsets, int64_t *n_items) {
    *values = NULL;
    *offsets = NULL;
    *n_items = 0;
    SC_TRY(check_obj_path(h, path));
    char vp[H5_PATH_MAX], op[H5_PATH_MAX];
    SC_TRY(ragged_paths(h, path, vp, op));
    int32_t *v = NULL;
    int64_t *o = NULL;
    int nd;
    int64_t vd[SC_H5_MAX_DIMS], od[SC_H5_MAX_DIMS];
    SC_TRY(read_array(h, vp, T_I32, (void **)&v, &nd, vd));
    sc_status st = nd == 1 ? SC_OK : sc_errorf(SC_ERR_FORMAT, "%s: %s: expected a 1-D dataset, found rank %d", h->path, vp, nd);
    if (st == SC_OK) st = read_array(h, op, T_I64, (void **)&o, &nd, od);
    if (st == SC_OK && (nd != 1 || od[0] < 1))
        st = sc_errorf(SC_ERR_FORMAT, "%s: %s: expected a 1-D dataset of at least one offset", h->path, op);
    for (int64_t i = 0; st == SC_OK && i < od[0]; i++) {
        int64_t prev = i ? o[i - 1] : 0;
        if ((i == 0 && o[0] != 0) || o[i] < prev || o[i] > vd[0] || (i == od[0] - 1 && o[i] != vd[0]))
            st = sc_errorf(SC_ERR_FORMAT, "%s: %s: offset %lld = %lld is inconsistent with %lld values "
                           "(offsets must start at 0, never decrease and end at the value count)",
                           h->path, op, (long long)i, (long long)o[i], (long long)vd[0]);
    }
    if (st != SC_OK) { free(v); free(o); return st; }
    *values = v;
    *offsets = o;
    *n_items = od[0] - 1;
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Attributes

// Create (or replace) scalar attribute NAME on OBJ, stored as ftype, buf described by mtype.
static sc_status attr_write(sc_h5 *h, const char *obj, const char *name, hid_t ftype, hid_t mtype, const void *buf) {
    SC_TRY(check_obj_path(h, obj));
    SC_TRY(check_writable(h, obj));
    if (!name || !name[0]) return sc_errorf(SC_ERR_ARG, "%s: %s: attribute name is empty", h->path, obj);
    SC_TRY(sc_h5_mkgroup(h, obj));
    char what[300];
    snprintf(what, sizeof what, "cannot write attribute '%s'", name);
    htri_t e = H5Aexists_by_name(h->fid, obj, name, H5P_DEFAULT);
    if (e > 0 && H5Adelete_by_name(h->fid, obj, name, H5P_DEFAULT) < 0)
        return h5_fail(SC_ERR_LIB, h->path, obj, what, "the old value could not be removed");
    H5Eclear2(H5E_DEFAULT);
    sc_status st = SC_OK;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp < 0 ? H5I_INVALID_HID : H5Acreate_by_name(h->fid, obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, mtype, buf) < 0) st = h5_fail(SC_ERR_LIB, h->path, obj, what, "check the file is writable");
    h5_release(a);
    h5_release(sp);
    return st;
}

static hid_t vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) { H5Tclose(t); t = H5I_INVALID_HID; }
    return t;
}

sc_status sc_h5_attr_str(sc_h5 *h, const char *obj, const char *name, const char *value) {
    if (!value) return sc_errorf(SC_ERR_ARG, "%s: %s: attribute '%s': value is NULL", h->path, obj ? obj : "?", name ? name : "?");
    hid_t t = vlen_utf8();
    if (t < 0) return h5_fail(SC_ERR_LIB, h->path, obj, "cannot make a string type", "HDF5 library problem");
    sc_status st = attr_write(h, obj, name, t, t, &value);
    H5Tclose(t);
    return st;
}
sc_status sc_h5_attr_i64(sc_h5 *h, const char *obj, const char *name, int64_t value) {
    return attr_write(h, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}
sc_status sc_h5_attr_f64(sc_h5 *h, const char *obj, const char *name, double value) {
    return attr_write(h, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

// Open attribute NAME of OBJ, checking it is a scalar (one element).
static sc_status attr_open(sc_h5 *h, const char *obj, const char *name, hid_t *a, hid_t *ft) {
    *a = *ft = H5I_INVALID_HID;
    SC_TRY(check_obj_path(h, obj));
    char what[300];
    snprintf(what, sizeof what, "cannot open attribute '%s'", name ? name : "(null)");
    if (!name || !sc_h5_exists(h, obj)) {
        if (!name) return sc_errorf(SC_ERR_ARG, "%s: %s: attribute name is NULL", h->path, obj);
        return sc_errorf(SC_ERR_FORMAT, "%s: %s: %s: the object does not exist (check the path, or list the file "
                         "with `h5dump -n`)", h->path, obj, what);
    }
    *a = H5Aopen_by_name(h->fid, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (*a < 0) return h5_fail(SC_ERR_FORMAT, h->path, obj, what, "the object lacks it: check the name with `h5dump -A`");
    hid_t sp = H5Aget_space(*a);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    h5_release(sp);
    *ft = H5Aget_type(*a);
    if (np != 1 || *ft < 0) {
        h5_release(*ft);
        h5_release(*a);
        *a = *ft = H5I_INVALID_HID;
        H5Eclear2(H5E_DEFAULT);
        return sc_errorf(SC_ERR_FORMAT, "%s: %s: attribute '%s' holds %lld values, expected one", h->path, obj, name, (long long)np);
    }
    return SC_OK;
}

sc_status sc_h5_read_attr_str(sc_h5 *h, const char *obj, const char *name, char **value) {
    *value = NULL;
    hid_t a, ft;
    SC_TRY(attr_open(h, obj, name, &a, &ft));
    sc_status st = SC_OK;
    hid_t mt = H5I_INVALID_HID;
    char buf[64];
    if (H5Tget_class(ft) != H5T_STRING) {
        st = sc_errorf(SC_ERR_FORMAT, "%s: %s: attribute '%s' is %s, not a string", h->path, obj, name, stored_name(ft, buf, sizeof buf));
    } else if (H5Tis_variable_str(ft) > 0) {
        char *s = NULL;
        mt = vlen_utf8();
        if (mt < 0 || H5Aread(a, mt, &s) < 0) st = h5_fail(SC_ERR_IO, h->path, obj, "cannot read string attribute", "the file may be damaged");
        else {
            *value = sc_strdup(s ? s : "");
            if (!*value) st = SC_ERR_MEM;
            H5free_memory(s);
        }
    } else {
        size_t n = H5Tget_size(ft);
        char *s = sc_calloc(n + 1, 1, "string attribute");
        mt = H5Tcopy(H5T_C_S1);
        if (!s) st = SC_ERR_MEM;
        else if (mt < 0 || H5Tset_size(mt, n + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Aread(a, mt, s) < 0) {
            free(s);
            st = h5_fail(SC_ERR_IO, h->path, obj, "cannot read string attribute", "the file may be damaged");
        } else *value = s;
    }
    h5_release(mt);
    h5_release(ft);
    h5_release(a);
    return st;
}

static sc_status read_attr_num(sc_h5 *h, const char *obj, const char *name, hid_t mt, int want_int, void *out) {
    hid_t a, ft;
    SC_TRY(attr_open(h, obj, name, &a, &ft));
    sc_status st = SC_OK;
    H5T_class_t c = H5Tget_class(ft);
    int ok = want_int ? c == H5T_INTEGER : (c == H5T_FLOAT || c == H5T_INTEGER);
    char buf[64];
    if (!ok) st = sc_errorf(SC_ERR_FORMAT, "%s: %s: attribute '%s' is %s, not %s", h->path, obj, name,
                            stored_name(ft, buf, sizeof buf), want_int ? "an integer" : "a number");
    else if (H5Aread(a, mt, out) < 0) st = h5_fail(SC_ERR_IO, h->path, obj, "cannot read attribute", "the file may be damaged");
    h5_release(ft);
    h5_release(a);
    return st;
}

sc_status sc_h5_read_attr_i64(sc_h5 *h, const char *obj, const char *name, int64_t *value) {
    return read_attr_num(h, obj, name, H5T_NATIVE_INT64, 1, value);
}
sc_status sc_h5_read_attr_f64(sc_h5 *h, const char *obj, const char *name, double *value) {
    return read_attr_num(h, obj, name, H5T_NATIVE_DOUBLE, 0, value);
}
