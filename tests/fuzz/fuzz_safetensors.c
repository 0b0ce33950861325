// fuzz_safetensors.c — libFuzzer target: sc_st_open_file on arbitrary bytes, then every
// accessor over whatever it accepted (each tensor's fields and data are read in full, so a
// span outside the mapping is an ASan report).
#include "fuzz_common.h"
#include "steerclear/safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input("fuzz_safetensors", data, size);
    sc_safetensors *st = NULL;
    if (sc_st_open_file(path, &st) != SC_OK) {
        FUZZ_CHECK(st == NULL);   // failure hands out no object
        return 0;
    }
    volatile uint8_t sink = 0;
    size_t n = sc_st_count(st);
    for (size_t i = 0; i < n; i++) {
        const sc_st_tensor *t = sc_st_get(st, i);
        FUZZ_CHECK(t != NULL && t->name != NULL);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= SC_ST_MAX_DIMS);
        size_t numel = sc_st_numel(t->ndim, t->shape);
        FUZZ_CHECK(numel != SIZE_MAX && numel * sc_dtype_size(t->dtype) == t->nbytes);
        FUZZ_CHECK(sc_st_find(st, t->name) != NULL);
        sink ^= (uint8_t)strlen(t->name);
        const uint8_t *p = t->data;
        for (size_t b = 0; b < t->nbytes; b++) sink ^= p[b];
    }
    FUZZ_CHECK(sc_st_get(st, n) == NULL);   // past the end is NULL
    const char *m = sc_st_metadata(st, "x");
    if (m) sink ^= (uint8_t)strlen(m);
    m = sc_st_metadata(st, "format");
    if (m) sink ^= (uint8_t)strlen(m);
    (void)sink;
    sc_st_close(st);
    return 0;
}
