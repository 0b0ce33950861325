// npy.c — NumPy .npy: writer for float32/int32 (format version 1.0, header padded with spaces
// to a multiple of 64 bytes and ended by '\n', C order, little-endian), reader for
// float32/int32/float64 in C order.
//
// Leaves out: Fortran order, big-endian data, structured and object dtypes, .npz archives.
#include "steerclear/npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------
// Writing

static sc_status npy_write(const char *path, const char *descr, const void *data, size_t es, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > SC_NPY_MAX_DIMS) return sc_errorf(SC_ERR_ARG, "%s: rank %d not supported (0..%d)", path, ndim, SC_NPY_MAX_DIMS);
    size_t count = 1;
    char dict[512];
    size_t k = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return sc_errorf(SC_ERR_ARG, "%s: negative dimension %lld", path, (long long)shape[d]);
        if (shape[d] && count > SIZE_MAX / es / (uint64_t)shape[d]) return sc_errorf(SC_ERR_ARG, "%s: array too large", path);
        count *= (size_t)shape[d];
        k += (size_t)snprintf(dict + k, sizeof dict - k, "%lld%s", (long long)shape[d], ndim == 1 ? "," : d + 1 < ndim ? ", " : "");
    }
    k += (size_t)snprintf(dict + k, sizeof dict - k, "), }");
    // magic (6) + version (2) + header length (2) + dict + spaces + '\n' == multiple of 64
    size_t total = 10 + k + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = k + pad + 1;
    uint8_t head[10 + 600];
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (uint8_t)(hlen & 0xff);
    head[9] = (uint8_t)(hlen >> 8);
    memcpy(head + 10, dict, k);
    memset(head + 10 + k, ' ', pad);
    head[10 + k + pad] = '\n';

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open for writing: %s (check the directory exists and is writable)", path, strerror(errno));
    int ok = fwrite(head, 1, 10 + hlen, f) == 10 + hlen && (count == 0 || fwrite(data, es, count, f) == count);
    if (fclose(f) != 0) ok = 0;
    if (!ok) { unlink(tmp); return sc_errorf(SC_ERR_IO, "%s: write failed: %s (disk full?)", path, strerror(errno)); }
    sc_status rc = sc_commit_file(tmp, path);
    if (rc != SC_OK) unlink(tmp);
    return rc;
}

sc_status sc_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape) {
    return npy_write(path, "<f4", data, 4, ndim, shape);
}

sc_status sc_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape) {
    return npy_write(path, "<i4", data, 4, ndim, shape);
}

// ---------------------------------------------------------------------------------------
// Reading: the header is a Python dict literal; we look up its three keys.

static const char *find_key(const char *h, const char *key) {
    char q1[64], q2[64];
    snprintf(q1, sizeof q1, "'%s'", key);
    snprintf(q2, sizeof q2, "\"%s\"", key);
    const char *p = strstr(h, q1);
    if (!p) p = strstr(h, q2);
    if (!p) return NULL;
    p += strlen(q1);
    while (isspace((unsigned char)*p)) p++;
    if (*p != ':') return NULL;
    p++;
    while (isspace((unsigned char)*p)) p++;
    return p;
}

static sc_status parse_header(const char *path, const char *h, sc_npy_array *a) {
    const char *p = find_key(h, "descr");
    if (!p || (*p != '\'' && *p != '"')) return sc_errorf(SC_ERR_FORMAT, "%s: header has no 'descr'", path);
    char descr[16] = {0};
    char q = *p++;
    size_t i = 0;
    while (*p && *p != q && i + 1 < sizeof descr) descr[i++] = *p++;
    if (!strcmp(descr, "<f4")) a->dtype = SC_NPY_F32;
    else if (!strcmp(descr, "<i4")) a->dtype = SC_NPY_I32;
    else if (!strcmp(descr, "<f8")) a->dtype = SC_NPY_F64;
    else return sc_errorf(SC_ERR_FORMAT, "%s: dtype '%s' not supported (supported: <f4, <i4, <f8)", path, descr);
    p = find_key(h, "fortran_order");
    if (!p) return sc_errorf(SC_ERR_FORMAT, "%s: header has no 'fortran_order'", path);
    if (!strncmp(p, "True", 4)) return sc_errorf(SC_ERR_FORMAT, "%s: Fortran-order arrays are not supported (save with numpy.ascontiguousarray)", path);
    if (strncmp(p, "False", 5)) return sc_errorf(SC_ERR_FORMAT, "%s: 'fortran_order' is neither True nor False", path);
    p = find_key(h, "shape");
    if (!p || *p != '(') return sc_errorf(SC_ERR_FORMAT, "%s: header has no 'shape' tuple", path);
    p++;
    a->ndim = 0;
    a->count = 1;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ',') p++;
        if (*p == ')') break;
        if (!isdigit((unsigned char)*p)) return sc_errorf(SC_ERR_FORMAT, "%s: malformed 'shape'", path);
        if (a->ndim == SC_NPY_MAX_DIMS) return sc_errorf(SC_ERR_FORMAT, "%s: more than %d dimensions", path, SC_NPY_MAX_DIMS);
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || v < 0) return sc_errorf(SC_ERR_FORMAT, "%s: malformed 'shape'", path);
        if (v && a->count > SIZE_MAX / 8 / (size_t)v) return sc_errorf(SC_ERR_FORMAT, "%s: shape too large", path);
        a->shape[a->ndim++] = v;
        a->count *= (size_t)v;
        p = end;
    }
    return SC_OK;
}

sc_status sc_npy_read(const char *path, sc_npy_array *a) {
    memset(a, 0, sizeof *a);
    char *buf = NULL;
    size_t len = 0;
    SC_TRY(sc_read_file(path, &buf, &len));
    const uint8_t *u = (const uint8_t *)buf;
    sc_status rc = SC_OK;
    size_t hlen, hstart;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6)) { rc = sc_errorf(SC_ERR_FORMAT, "%s: not a .npy file (bad magic)", path); goto done; }
    if (u[6] == 1) { hlen = (size_t)u[8] | (size_t)u[9] << 8; hstart = 10; }
    else if (u[6] == 2 || u[6] == 3) {
        if (len < 12) { rc = sc_errorf(SC_ERR_FORMAT, "%s: truncated header", path); goto done; }
        hlen = (size_t)u[8] | (size_t)u[9] << 8 | (size_t)u[10] << 16 | (size_t)u[11] << 24;
        hstart = 12;
    } else { rc = sc_errorf(SC_ERR_FORMAT, "%s: .npy format version %d.%d not supported", path, u[6], u[7]); goto done; }
    if (hlen > len - hstart) { rc = sc_errorf(SC_ERR_FORMAT, "%s: header length %zu runs past the end of the file", path, hlen); goto done; }
    char *h = malloc(hlen + 1);
    if (!h) { rc = sc_errorf(SC_ERR_MEM, "%s: out of memory", path); goto done; }
    memcpy(h, buf + hstart, hlen);
    h[hlen] = '\0';
    rc = parse_header(path, h, a);
    free(h);
    if (rc != SC_OK) goto done;
    size_t es = a->dtype == SC_NPY_F64 ? 8 : 4, data_len = len - hstart - hlen;
    if (data_len != a->count * es) {
        rc = sc_errorf(SC_ERR_FORMAT, "%s: %zu data bytes, the header's shape needs %zu", path, data_len, a->count * es);
        goto done;
    }
    a->data = sc_malloc(a->count * es + 1, path);
    if (!a->data) { rc = SC_ERR_MEM; goto done; }
    memcpy(a->data, buf + hstart + hlen, a->count * es);
done:
    free(buf);
    if (rc != SC_OK) sc_npy_free(a);
    return rc;
}

void sc_npy_free(sc_npy_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
