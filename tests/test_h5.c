// test_h5.c — the HDF5 results layer: round trips of every type, appends and ragged data across
// reopen, attributes, atomic begin/commit/close, every error message, and an independent read
// of the written file with Debian's h5dump (skipped when absent).
#include "testutil.h"
#include "steerclear/h5.h"

#include <stdlib.h>
#include <unistd.h>

static char g_path[4200];

// ---------------------------------------------------------------------------------------
// h5dump as an independent reader

static char *run_capture(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    if (pclose(p) != 0) { free(buf); return NULL; }
    return buf;
}

// Numbers inside the first "DATA {" ... "}" block of h5dump -y output.
static int dump_numbers(const char *out, double *vals, int max) {
    const char *p = strstr(out, "DATA {");
    if (!p) return -1;
    p += 6;
    int n = 0;
    while (*p && *p != '}' && n < max) {
        char *end;
        double v = strtod(p, &end);
        if (end != p) { vals[n++] = v; p = end; } else p++;
    }
    return n;
}

static void check_with_h5dump(void) {
    if (system("command -v h5dump >/dev/null 2>&1") != 0) {
        printf("test_h5: h5dump not found, independent check skipped\n");
        return;
    }
    char cmd[8800];
    snprintf(cmd, sizeof cmd, "h5dump -y -w 0 -m %%.9g -d /searches/0003/adapter/A '%s'", g_path);
    char *out = run_capture(cmd);
    CHECKF(out != NULL, "h5dump failed on %s", g_path);
    if (!out) return;
    CHECKF(strstr(out, "H5T_IEEE_F32LE") && strstr(out, "( 2, 3 ) / ( 2, 3 )"), "h5dump A header: %s", out);
    double v[16];
    int n = dump_numbers(out, v, 16);
    CHECKF(n == 6, "h5dump A: %d numbers in %s", n, out);
    for (int i = 0; i < n && i < 6; i++) CHECK_NEAR(v[i], 0.5 * i - 1.25, 0);
    free(out);

    snprintf(cmd, sizeof cmd, "h5dump -y -w 0 -d /steps/loss '%s'", g_path);
    out = run_capture(cmd);
    CHECK(out != NULL);
    if (out) {
        CHECKF(strstr(out, "( 5, 3 ) / ( H5S_UNLIMITED, 3 )"), "h5dump loss: %s", out);
        n = dump_numbers(out, v, 16);
        double want[15] = {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 12, 13, 14};
        CHECK(n == 15);
        for (int i = 0; i < n && i < 15; i++) CHECK_NEAR(v[i], want[i], 0);
        free(out);
    }
    snprintf(cmd, sizeof cmd, "h5dump -y -w 0 -d /steps/tokens/offsets '%s'", g_path);
    out = run_capture(cmd);
    CHECK(out != NULL);
    if (out) {
        CHECKF(strstr(out, "H5T_STD_I64LE"), "h5dump offsets: %s", out);
        n = dump_numbers(out, v, 16);
        double want[] = {0, 2, 2, 5, 6};
        CHECK(n == 5);
        for (int i = 0; i < n && i < 5; i++) CHECK_NEAR(v[i], want[i], 0);
        free(out);
    }
    snprintf(cmd, sizeof cmd, "h5dump -a /model/name '%s'", g_path);
    out = run_capture(cmd);
    CHECK(out != NULL);
    if (out) {
        CHECKF(strstr(out, "H5T_CSET_UTF8") && strstr(out, "\"Qwen/Qwen2.5-0.5B "), "h5dump /model: %s", out);
        free(out);
    }
    snprintf(cmd, sizeof cmd, "h5dump -a /searches/0003/adapter/A/rank '%s'", g_path);
    out = run_capture(cmd);
    CHECK(out != NULL);
    if (out) {
        CHECKF(strstr(out, "H5T_STD_I64LE") && strstr(out, "(0): 2"), "h5dump rank: %s", out);
        free(out);
    }
}

// ---------------------------------------------------------------------------------------

int main(void) {
    const char *dir = sc_test_tmpdir();
    snprintf(g_path, sizeof g_path, "%s/results.h5", dir);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", g_path, (long)getpid());

    // --- write a fresh file atomically
    sc_h5 *h;
    CHECK_OK(sc_h5_begin_new(g_path, &h));
    CHECK(!sc_file_exists(g_path) && sc_file_exists(tmp));
    float A[6];
    for (int i = 0; i < 6; i++) A[i] = 0.5f * (float)i - 1.25f;
    int64_t dA[2] = {2, 3};
    CHECK_OK(sc_h5_write_f32(h, "/searches/0003/adapter/A", 2, dA, A));
    double D[4] = {1e-300, -2.5, 3.141592653589793, 1e300};
    int64_t dD[1] = {4};
    CHECK_OK(sc_h5_write_f64(h, "/d", 1, dD, D));
    int32_t I[8] = {-2147483647 - 1, -1, 0, 1, 2, 3, 151643, 2147483647};
    int64_t dI[3] = {2, 2, 2};
    CHECK_OK(sc_h5_write_i32(h, "/ints/i32", 3, dI, I));
    int64_t L[3] = {INT64_MIN, 0, INT64_MAX};
    int64_t dL[1] = {3};
    CHECK_OK(sc_h5_write_i64(h, "/ints/i64", 1, dL, L));
    int64_t d0[2] = {0, 5};
    CHECK_OK(sc_h5_write_f32(h, "/empty", 2, d0, NULL));
    CHECK_OK(sc_h5_attr_str(h, "/", "format", "steerclear-results"));
    CHECK_OK(sc_h5_attr_str(h, "/model", "name", "Qwen/Qwen2.5-0.5B \xce\xbb"));   // creates group /model
    CHECK_OK(sc_h5_attr_i64(h, "/searches/0003/adapter/A", "rank", 2));
    CHECK_OK(sc_h5_attr_f64(h, "/searches/0003", "linearity_score", 0.8375));
    CHECK_OK(sc_h5_attr_i64(h, "/searches/0003", "linearity_score_n", -7));
    CHECK_OK(sc_h5_attr_i64(h, "/searches/0003", "linearity_score_n", 6));       // replaced
    float loss[6];
    for (int i = 0; i < 6; i++) loss[i] = (float)i;
    CHECK_OK(sc_h5_append_f32(h, "/steps/loss", 3, loss, 2));
    int32_t step[2] = {0, 1};
    CHECK_OK(sc_h5_append_i32(h, "/steps/step", 1, step, 2));
    int32_t tok[5] = {10, 11, 20, 21, 22};
    int64_t len[3] = {2, 0, 3};
    CHECK_OK(sc_h5_append_ragged_i32(h, "/steps/tokens", tok, len, 3));
    CHECK(sc_h5_exists(h, "/") && sc_h5_exists(h, "/searches/0003/adapter/A") && sc_h5_exists(h, "/model"));
    CHECK(!sc_h5_exists(h, "/searches/0004/adapter") && !sc_h5_exists(h, "/nope") && !sc_h5_exists(h, "relative"));
    CHECK_OK(sc_h5_commit(h));
    CHECK(sc_file_exists(g_path) && !sc_file_exists(tmp));

    // --- read everything back
    CHECK_OK(sc_h5_open(g_path, 0, &h));
    CHECK(!strcmp(sc_h5_filename(h), g_path));
    int nd;
    int64_t dims[SC_H5_MAX_DIMS];
    float *fa;
    CHECK_OK(sc_h5_read_f32(h, "/searches/0003/adapter/A", &fa, &nd, dims));
    CHECK(nd == 2 && dims[0] == 2 && dims[1] == 3);
    for (int i = 0; i < 6; i++) CHECK(fa[i] == A[i]);
    free(fa);
    double *da;
    CHECK_OK(sc_h5_read_f64(h, "/d", &da, &nd, dims));
    CHECK(nd == 1 && dims[0] == 4);
    for (int i = 0; i < 4; i++) CHECK(da[i] == D[i]);
    free(da);
    CHECK_OK(sc_h5_read_f64(h, "/searches/0003/adapter/A", &da, &nd, dims));   // widening is fine
    for (int i = 0; i < 6; i++) CHECK(da[i] == (double)A[i]);
    free(da);
    int32_t *ia;
    CHECK_OK(sc_h5_read_i32(h, "/ints/i32", &ia, &nd, dims));
    CHECK(nd == 3 && dims[0] == 2 && dims[1] == 2 && dims[2] == 2);
    for (int i = 0; i < 8; i++) CHECK(ia[i] == I[i]);
    free(ia);
    int64_t *la;
    CHECK_OK(sc_h5_read_i64(h, "/ints/i64", &la, &nd, dims));
    CHECK(nd == 1 && dims[0] == 3 && la[0] == INT64_MIN && la[1] == 0 && la[2] == INT64_MAX);
    free(la);
    CHECK_OK(sc_h5_read_f32(h, "/empty", &fa, &nd, dims));
    CHECK(nd == 2 && dims[0] == 0 && dims[1] == 5);
    free(fa);
    char *s;
    CHECK_OK(sc_h5_read_attr_str(h, "/", "format", &s));
    CHECK(s && !strcmp(s, "steerclear-results"));
    free(s);
    CHECK_OK(sc_h5_read_attr_str(h, "/model", "name", &s));
    CHECK(s && !strcmp(s, "Qwen/Qwen2.5-0.5B \xce\xbb"));
    free(s);
    int64_t iv;
    double dv;
    CHECK_OK(sc_h5_read_attr_i64(h, "/searches/0003/adapter/A", "rank", &iv));
    CHECK(iv == 2);
    CHECK_OK(sc_h5_read_attr_i64(h, "/searches/0003", "linearity_score_n", &iv));
    CHECK(iv == 6);
    CHECK_OK(sc_h5_read_attr_f64(h, "/searches/0003", "linearity_score", &dv));
    CHECK(dv == 0.8375);
    CHECK_OK(sc_h5_read_attr_f64(h, "/searches/0003", "linearity_score_n", &dv));   // integer → double
    CHECK(dv == 6.0);

    // --- errors on a read-only handle: each names the file, the object and what to do
    CHECK_ERR(sc_h5_read_f32(h, "/nope/x", &fa, &nd, dims), SC_ERR_FORMAT, g_path, "/nope/x", "cannot open dataset", "HDF5:", "h5dump");
    CHECK(fa == NULL);
    CHECK_ERR(sc_h5_read_f32(h, "/searches", &fa, &nd, dims), SC_ERR_FORMAT, g_path, "/searches", "cannot open dataset", "it is a group");
    CHECK_ERR(sc_h5_read_i32(h, "/d", &ia, &nd, dims), SC_ERR_FORMAT, g_path, "/d", "stored as float64", "int32");
    CHECK_ERR(sc_h5_read_i32(h, "/ints/i64", &ia, &nd, dims), SC_ERR_FORMAT, "/ints/i64", "stored as int64", "without loss");
    CHECK_ERR(sc_h5_read_f32(h, "/d", &fa, &nd, dims), SC_ERR_FORMAT, "/d", "stored as float64", "float32");
    CHECK_ERR(sc_h5_read_attr_str(h, "/model", "nope", &s), SC_ERR_FORMAT, g_path, "/model", "attribute 'nope'", "HDF5:");
    CHECK_ERR(sc_h5_read_attr_str(h, "/missing", "name", &s), SC_ERR_FORMAT, g_path, "/missing", "does not exist");
    CHECK_ERR(sc_h5_read_attr_i64(h, "/model", "name", &iv), SC_ERR_FORMAT, "/model", "'name' is string", "not an integer");
    CHECK_ERR(sc_h5_read_attr_str(h, "/searches/0003", "linearity_score", &s), SC_ERR_FORMAT, "'linearity_score' is float64", "not a string");
    CHECK_ERR(sc_h5_write_f32(h, "/x", 2, dA, A), SC_ERR_ARG, g_path, "/x", "read-only");
    CHECK_ERR(sc_h5_append_f32(h, "/steps/loss", 3, loss, 1), SC_ERR_ARG, "/steps/loss", "read-only");
    CHECK_ERR(sc_h5_attr_str(h, "/", "a", "b"), SC_ERR_ARG, "read-only");
    CHECK_ERR(sc_h5_read_f32(h, "relative/x", &fa, &nd, dims), SC_ERR_ARG, g_path, "relative/x", "must be absolute");
    CHECK_OK(sc_h5_close(h));

    // --- files that cannot be opened
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/missing.h5", dir);
    CHECK_ERR(sc_h5_open(bad, 0, &h), SC_ERR_IO, bad, "cannot open HDF5 file", "No such file");
    CHECK(h == NULL);
    snprintf(bad, sizeof bad, "%s/not.h5", dir);
    sc_test_write(bad, "this is not hdf5\n", 17);
    CHECK_ERR(sc_h5_open(bad, 0, &h), SC_ERR_IO, bad, "cannot open HDF5 file", "HDF5:", "check it is an HDF5 file");
    CHECK_ERR(sc_h5_create("/nonexistent-dir/r.h5", &h), SC_ERR_IO, "/nonexistent-dir/r.h5", "cannot create file", "HDF5:", "directory exists");
    CHECK_ERR(sc_h5_begin_new("/nonexistent-dir/r.h5", &h), SC_ERR_IO, "/nonexistent-dir/r.h5", "temporary file");

    // --- update atomically: appends and ragged data continue across reopen, datasets are replaced
    CHECK_OK(sc_h5_begin_update(g_path, &h));
    CHECK_OK(sc_h5_append_f32(h, "/steps/loss", 3, loss, 2));
    CHECK_OK(sc_h5_append_f32(h, "/steps/loss", 3, loss + 6 - 3, 0));
    float more[3] = {12, 13, 14};
    CHECK_OK(sc_h5_append_f32(h, "/steps/loss", 3, more, 1));
    int32_t tok2[1] = {99};
    int64_t len2[1] = {1};
    CHECK_OK(sc_h5_append_ragged_i32(h, "/steps/tokens", tok2, len2, 1));
    float A2[6] = {9, 8, 7, 6, 5, 4};
    CHECK_OK(sc_h5_write_f32(h, "/searches/0003/adapter/A", 2, dA, A2));        // same shape: in place
    CHECK_OK(sc_h5_read_attr_i64(h, "/searches/0003/adapter/A", "rank", &iv));  // in-place keeps attributes
    CHECK(iv == 2);
    int64_t dA3[1] = {3};
    CHECK_OK(sc_h5_write_f32(h, "/d", 1, dA3, A2));                              // new type and shape: recreated
    // errors while writing
    CHECK_ERR(sc_h5_append_f32(h, "/steps/loss", 4, loss, 1), SC_ERR_FORMAT, g_path, "/steps/loss", "row length 3", "cannot append");
    CHECK_ERR(sc_h5_append_i32(h, "/steps/loss", 3, step, 1), SC_ERR_FORMAT, "/steps/loss", "float32");
    CHECK_ERR(sc_h5_append_f32(h, "/searches/0003/adapter/A", 3, loss, 1), SC_ERR_FORMAT, "/searches/0003/adapter/A", "a fixed first dimension");
    CHECK_ERR(sc_h5_append_f32(h, "/steps/x", 0, loss, 1), SC_ERR_ARG, "/steps/x", "row length 0");
    CHECK_ERR(sc_h5_write_f32(h, "/searches/0003/adapter/A/child", 2, dA, A), SC_ERR_LIB, g_path, "/searches/0003/adapter/A/child", "cannot create dataset", "HDF5:");
    int64_t negd[1] = {-1};
    CHECK_ERR(sc_h5_write_f32(h, "/neg", 1, negd, A), SC_ERR_ARG, "/neg", "negative");
    CHECK_ERR(sc_h5_write_f32(h, "/rank0", 0, dA, A), SC_ERR_ARG, "/rank0", "rank 0");
    int64_t neglen[1] = {-2};
    CHECK_ERR(sc_h5_append_ragged_i32(h, "/steps/tokens", tok2, neglen, 1), SC_ERR_ARG, "/steps/tokens", "negative length");
    CHECK_ERR(sc_h5_delete(h, "/"), SC_ERR_ARG, "root");
    CHECK_OK(sc_h5_delete(h, "/not/there"));
    CHECK_OK(sc_h5_mkgroup(h, "/groups/a/b"));
    CHECK(sc_h5_exists(h, "/groups/a/b"));
    CHECK_OK(sc_h5_delete(h, "/groups"));
    CHECK(!sc_h5_exists(h, "/groups/a"));
    CHECK_OK(sc_h5_commit(h));

    // a broken ragged group (offsets disagree with values) is reported, not trusted
    CHECK_OK(sc_h5_open(g_path, 1, &h));
    CHECK_OK(sc_h5_append_ragged_i32(h, "/broken", tok, len, 3));
    CHECK_OK(sc_h5_append_i32(h, "/broken/values", 1, tok, 1));
    CHECK_ERR(sc_h5_append_ragged_i32(h, "/broken", tok, len, 1), SC_ERR_FORMAT, g_path, "/broken", "offsets end at 5 but there are 6 values");
    int32_t *rv;
    int64_t *ro, nitems;
    CHECK_ERR(sc_h5_read_ragged_i32(h, "/broken", &rv, &ro, &nitems), SC_ERR_FORMAT, "/broken/offsets", "inconsistent with 6 values");
    CHECK_OK(sc_h5_delete(h, "/broken"));
    CHECK_OK(sc_h5_close(h));

    // an update that is closed without commit leaves the file untouched and no temporary behind
    CHECK_OK(sc_h5_begin_update(g_path, &h));
    CHECK_OK(sc_h5_write_f32(h, "/searches/0003/adapter/A", 2, dA, A));
    CHECK_OK(sc_h5_attr_str(h, "/", "format", "changed"));
    CHECK_OK(sc_h5_close(h));
    CHECK(!sc_file_exists(tmp));

    CHECK_OK(sc_h5_open(g_path, 0, &h));
    CHECK_OK(sc_h5_read_f32(h, "/steps/loss", &fa, &nd, dims));
    CHECK(nd == 2 && dims[0] == 5 && dims[1] == 3);
    float want_loss[15] = {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 12, 13, 14};
    for (int i = 0; i < 15; i++) CHECK(fa[i] == want_loss[i]);
    free(fa);
    CHECK_OK(sc_h5_read_i32(h, "/steps/step", &ia, &nd, dims));
    CHECK(nd == 1 && dims[0] == 2 && ia[0] == 0 && ia[1] == 1);
    free(ia);
    CHECK_OK(sc_h5_read_ragged_i32(h, "/steps/tokens", &rv, &ro, &nitems));
    CHECK(nitems == 4);
    int64_t want_off[5] = {0, 2, 2, 5, 6};
    int32_t want_tok[6] = {10, 11, 20, 21, 22, 99};
    for (int i = 0; i < 5; i++) CHECK(ro[i] == want_off[i]);
    for (int i = 0; i < 6; i++) CHECK(rv[i] == want_tok[i]);
    free(rv);
    free(ro);
    CHECK_OK(sc_h5_read_f32(h, "/searches/0003/adapter/A", &fa, &nd, dims));
    for (int i = 0; i < 6; i++) CHECK(fa[i] == A2[i]);   // the committed update, not the discarded one
    free(fa);
    CHECK_OK(sc_h5_read_f32(h, "/d", &fa, &nd, dims));
    CHECK(nd == 1 && dims[0] == 3 && fa[0] == 9 && fa[2] == 7);
    free(fa);
    CHECK_OK(sc_h5_read_attr_str(h, "/", "format", &s));
    CHECK(s && !strcmp(s, "steerclear-results"));
    free(s);
    CHECK_OK(sc_h5_close(h));

    // begin_update on a missing file starts a new one
    char fresh[4300];
    snprintf(fresh, sizeof fresh, "%s/fresh.h5", dir);
    CHECK_OK(sc_h5_begin_update(fresh, &h));
    CHECK_OK(sc_h5_attr_i64(h, "/", "n", 1));
    CHECK_OK(sc_h5_commit(h));
    CHECK_OK(sc_h5_open(fresh, 0, &h));
    CHECK_OK(sc_h5_read_attr_i64(h, "/", "n", &iv));
    CHECK(iv == 1);
    CHECK_OK(sc_h5_close(h));

    // For the h5dump check the A values must be the originals: write them back.
    CHECK_OK(sc_h5_begin_update(g_path, &h));
    CHECK_OK(sc_h5_write_f32(h, "/searches/0003/adapter/A", 2, dA, A));
    CHECK_OK(sc_h5_commit(h));
    check_with_h5dump();
    return sc_test_finish("test_h5");
}
