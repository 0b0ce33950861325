// test_core.c — error messages, atomic writes, RNG determinism, half-float conversions.
#include "testutil.h"
#include "steerclear/rng.h"
#include "steerclear/stage.h"

#include <stdlib.h>

int main(void) {
    // errors
    CHECK(sc_errorf(SC_ERR_IO, "x.bin: %s", "gone") == SC_ERR_IO);
    CHECK(!strcmp(sc_last_error(), "x.bin: gone"));
    sc_error_wrap(SC_ERR_IO, "loading %s: ", "model");
    CHECK(!strcmp(sc_last_error(), "loading model: x.bin: gone"));

    // atomic write + read back
    char path[4200];
    snprintf(path, sizeof path, "%s/a.txt", sc_test_tmpdir());
    CHECK_OK(sc_write_file_atomic(path, "hello", 5));
    char *buf; size_t n;
    CHECK_OK(sc_read_file(path, &buf, &n));
    CHECK(n == 5 && !strcmp(buf, "hello"));
    free(buf);
    CHECK_ERR(sc_read_file("/nonexistent/file.json", &buf, &n), SC_ERR_IO, "/nonexistent/file.json", "cannot open");
    CHECK_ERR(sc_write_file_atomic("/nonexistent/dir/x", "a", 1), SC_ERR_IO, "/nonexistent/dir/x");

    // Philox-4x32-10 known-answer test (Random123 kat_vectors: zero counter and key)
    uint32_t r[4];
    sc_philox4x32(0, 0, 0, r);
    CHECK(r[0] == 0x6627e8d5u && r[1] == 0xe169c58du && r[2] == 0xbc57ac4cu && r[3] == 0x9b00dbd8u);
    // determinism and rough distribution
    float a[1000], b[1000];
    sc_rng_normal(42, 7, 0, a, 1000);
    sc_rng_normal(42, 7, 0, b, 1000);
    double mean = 0, var = 0;
    for (int i = 0; i < 1000; i++) { CHECK(a[i] == b[i]); mean += a[i]; }
    mean /= 1000;
    for (int i = 0; i < 1000; i++) var += (a[i] - mean) * (a[i] - mean);
    var /= 1000;
    CHECK_NEAR(mean, 0.0, 0.1);
    CHECK_NEAR(var, 1.0, 0.15);

    // half floats
    CHECK(sc_bf16_to_f32(sc_f32_to_bf16(1.0f)) == 1.0f);
    CHECK(sc_f32_to_bf16(1.00390625f) == 0x3f80);          // tie rounds to even
    CHECK(sc_f16_to_f32(sc_f32_to_f16(0.333251953125f)) == 0.333251953125f);
    CHECK(sc_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(sc_f16_to_f32(0x0001) == 5.960464477539063e-08f);   // smallest subnormal
    CHECK(sc_crc32c(0, "123456789", 9) == 0xE3069283u);                 // the CRC-32C check value
    CHECK(sc_crc32c(sc_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u);  // continued

    // paths: relative to a base folder (a config file's), normalised without touching the disk
    char p[256];
    CHECK_OK(sc_path_resolve("a/../b/./c.csv", "/x/y", p, sizeof p)); CHECK(!strcmp(p, "/x/y/b/c.csv"));
    CHECK_OK(sc_path_resolve("../../../z", "/x/y", p, sizeof p)); CHECK(!strcmp(p, "/z"));
    CHECK_OK(sc_path_resolve("/abs//dir/", "/x", p, sizeof p)); CHECK(!strcmp(p, "/abs/dir"));
    CHECK_OK(sc_path_resolve("..", "/", p, sizeof p)); CHECK(!strcmp(p, "/"));
    CHECK_OK(sc_path_dir_of("/runs/cfg/run.json", p, sizeof p)); CHECK(!strcmp(p, "/runs/cfg"));
    CHECK_ERR(sc_path_resolve("a", "/x", p, 4), SC_ERR_ARG, "too long");
    CHECK_ERR(sc_path_resolve("", "/x", p, sizeof p), SC_ERR_ARG, "empty path");
    return sc_test_finish("test_core");
}
