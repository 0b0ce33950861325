// test_npy.c — .npy writer and reader: round trips of several ranks, header layout, error paths,
// and NumPy as the independent reference both ways (skipped if /usr/bin/python3 lacks numpy).
#include "testutil.h"
#include "steerclear/npy.h"

#include <stdlib.h>

static char g_path[8192];
static const char *tmp_path(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", sc_test_tmpdir(), name);
    return g_path;
}

static void test_round_trip(void) {
    float f[24];
    for (int i = 0; i < 24; i++) f[i] = (float)i * 0.5f - 3.25f;
    int32_t v[5] = {-2147483647 - 1, -1, 0, 7, 2147483647};
    sc_npy_array a;

    int64_t s3[3] = {2, 3, 4};
    CHECK_OK(sc_npy_write_f32(tmp_path("f3.npy"), f, 3, s3));
    CHECK_OK(sc_npy_read(g_path, &a));
    CHECK(a.dtype == SC_NPY_F32 && a.ndim == 3 && a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4 && a.count == 24);
    CHECK(a.data && !memcmp(a.data, f, sizeof f));
    sc_npy_free(&a);
    CHECK(a.data == NULL);

    int64_t s1[1] = {5};
    CHECK_OK(sc_npy_write_i32(tmp_path("i1.npy"), v, 1, s1));
    CHECK_OK(sc_npy_read(g_path, &a));
    CHECK(a.dtype == SC_NPY_I32 && a.ndim == 1 && a.shape[0] == 5 && !memcmp(a.data, v, sizeof v));
    sc_npy_free(&a);

    CHECK_OK(sc_npy_write_f32(tmp_path("scalar.npy"), f + 3, 0, NULL));
    CHECK_OK(sc_npy_read(g_path, &a));
    CHECK(a.ndim == 0 && a.count == 1 && ((float *)a.data)[0] == f[3]);
    sc_npy_free(&a);

    int64_t s0[2] = {0, 4};
    CHECK_OK(sc_npy_write_f32(tmp_path("empty.npy"), NULL, 2, s0));
    CHECK_OK(sc_npy_read(g_path, &a));
    CHECK(a.ndim == 2 && a.count == 0 && a.shape[1] == 4);
    sc_npy_free(&a);

    // header: magic, version 1.0, total header a multiple of 64 ending in '\n', numpy's dict text
    char *buf;
    size_t n;
    CHECK_OK(sc_read_file(tmp_path("f3.npy"), &buf, &n));
    size_t hlen = (size_t)(uint8_t)buf[8] | (size_t)(uint8_t)buf[9] << 8;
    CHECK(!memcmp(buf, "\x93NUMPY\x01\x00", 8) && (10 + hlen) % 64 == 0 && buf[10 + hlen - 1] == '\n');
    CHECK(!strncmp(buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", 60));
    CHECK(n == 10 + hlen + sizeof f);
    free(buf);
    CHECK_OK(sc_read_file(tmp_path("i1.npy"), &buf, &n));
    CHECK(strstr(buf + 10, "'shape': (5,), }") != NULL);
    free(buf);

    CHECK_ERR(sc_npy_write_f32("/nonexistent/dir/x.npy", f, 1, s1), SC_ERR_IO, "/nonexistent/dir/x.npy");
    int64_t neg[1] = {-1};
    CHECK_ERR(sc_npy_write_f32(tmp_path("neg.npy"), f, 1, neg), SC_ERR_ARG, "negative dimension -1");
    CHECK_ERR(sc_npy_write_f32(tmp_path("rank.npy"), f, 9, s3), SC_ERR_ARG, "rank 9 not supported");
}

static void write_npy(const char *name, const char *dict, size_t data_len) {
    size_t k = strlen(dict);
    char *b = calloc(1, 10 + k + data_len);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (char)(k & 0xff);
    b[9] = (char)(k >> 8);
    memcpy(b + 10, dict, k);
    sc_test_write(tmp_path(name), b, 10 + k + data_len);
    free(b);
}

static void test_errors(void) {
    sc_npy_array a;
    CHECK_ERR(sc_npy_read(tmp_path("missing.npy"), &a), SC_ERR_IO, "missing.npy", "cannot open");
    sc_test_write(tmp_path("magic.npy"), "PK\x03\x04 not npy at all", 19);
    CHECK_ERR(sc_npy_read(g_path, &a), SC_ERR_FORMAT, "magic.npy", "not a .npy file");
    write_npy("i8.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n", 16);
    CHECK_ERR(sc_npy_read(g_path, &a), SC_ERR_FORMAT, "i8.npy", "dtype '<i8' not supported");
    write_npy("be.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", 8);
    CHECK_ERR(sc_npy_read(g_path, &a), SC_ERR_FORMAT, "dtype '>f4' not supported");
    write_npy("fo.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", 16);
    CHECK_ERR(sc_npy_read(g_path, &a), SC_ERR_FORMAT, "fo.npy", "Fortran-order arrays are not supported");
    write_npy("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 20);
    CHECK_ERR(sc_npy_read(g_path, &a), SC_ERR_FORMAT, "short.npy", "20 data bytes, the header's shape needs 24");
    write_npy("noshape.npy", "{'descr': '<f4', 'fortran_order': False, }\n", 4);
    CHECK_ERR(sc_npy_read(g_path, &a), SC_ERR_FORMAT, "no 'shape' tuple");
    write_npy("badshape.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }\n", 8);
    CHECK_ERR(sc_npy_read(g_path, &a), SC_ERR_FORMAT, "malformed 'shape'");
    sc_test_write(tmp_path("hlen.npy"), "\x93NUMPY\x01\x00\xff\x00{}", 12);
    CHECK_ERR(sc_npy_read(g_path, &a), SC_ERR_FORMAT, "header length 255 runs past the end");
    sc_test_write(tmp_path("ver.npy"), "\x93NUMPY\x09\x00\x02\x00{}", 12);
    CHECK_ERR(sc_npy_read(g_path, &a), SC_ERR_FORMAT, "format version 9.0 not supported");
    CHECK(a.data == NULL);
}

static void test_numpy(void) {
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_npy: /usr/bin/python3 without numpy: NumPy reference skipped\n");
        return;
    }
    // ours -> numpy
    float f[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-7f, -1e7f};
    int64_t s[2] = {2, 3};
    char pf[8192 + 64], pi[8192 + 64], cmd[65536];
    snprintf(pf, sizeof pf, "%s/ours_f.npy", sc_test_tmpdir());
    snprintf(pi, sizeof pi, "%s/ours_i.npy", sc_test_tmpdir());
    CHECK_OK(sc_npy_write_f32(pf, f, 2, s));
    int32_t iv[4] = {3, -4, 2147483647, 0};
    int64_t s4[4] = {1, 2, 1, 2};
    CHECK_OK(sc_npy_write_i32(pi, iv, 4, s4));
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np, sys; a = np.load('%s'); b = np.load('%s'); "
             "ok = a.dtype == np.float32 and a.shape == (2, 3) and (a == np.array([[1.5, -2.0, 3.25], [0.0, 1e-7, -1e7]], dtype=np.float32)).all() "
             "and b.dtype == np.int32 and b.shape == (1, 2, 1, 2) and b.flatten().tolist() == [3, -4, 2147483647, 0]; sys.exit(0 if ok else 1)\"",
             pf, pi);
    CHECK(system(cmd) == 0);
    // numpy -> ours (including float64 and a Fortran-order array saved contiguous)
    const char *d = sc_test_tmpdir();
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np; "
             "np.save('%s/np_f4.npy', (np.arange(60, dtype=np.float32).reshape(3, 4, 5) / 7)); "
             "np.save('%s/np_f8.npy', np.array([[1/3, -2.5e300], [5e-324, 0.1]])); "
             "np.save('%s/np_i4.npy', np.arange(-3, 3, dtype=np.int32)); "
             "np.save('%s/np_fo.npy', np.asfortranarray(np.ones((2, 3), dtype=np.float32)))\"",
             d, d, d, d);
    CHECK(system(cmd) == 0);
    sc_npy_array a;
    snprintf(pf, sizeof pf, "%s/np_f4.npy", d);
    CHECK_OK(sc_npy_read(pf, &a));
    CHECK(a.dtype == SC_NPY_F32 && a.ndim == 3 && a.shape[0] == 3 && a.shape[1] == 4 && a.shape[2] == 5);
    if (a.data) for (int i = 0; i < 60; i++) CHECK(((float *)a.data)[i] == (float)i / 7.0f);
    sc_npy_free(&a);
    snprintf(pf, sizeof pf, "%s/np_f8.npy", d);
    CHECK_OK(sc_npy_read(pf, &a));
    CHECK(a.dtype == SC_NPY_F64 && a.ndim == 2 && a.count == 4);
    if (a.data) {
        double *x = a.data;
        CHECK(x[0] == 1.0 / 3.0 && x[1] == -2.5e300 && x[2] == 5e-324 && x[3] == 0.1);
    }
    sc_npy_free(&a);
    snprintf(pf, sizeof pf, "%s/np_i4.npy", d);
    CHECK_OK(sc_npy_read(pf, &a));
    CHECK(a.dtype == SC_NPY_I32 && a.ndim == 1 && a.count == 6 && a.data && ((int32_t *)a.data)[0] == -3 && ((int32_t *)a.data)[5] == 2);
    sc_npy_free(&a);
    snprintf(pf, sizeof pf, "%s/np_fo.npy", d);
    CHECK_ERR(sc_npy_read(pf, &a), SC_ERR_FORMAT, "Fortran-order");
}

int main(void) {
    test_round_trip();
    test_errors();
    test_numpy();
    return sc_test_finish("test_npy");
}
