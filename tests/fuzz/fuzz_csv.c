// fuzz_csv.c — libFuzzer target: sc_dataset_load (the prompt CSV reader) on arbitrary bytes,
// as a train file and as a test file. Every accepted record's fields are read in full.
#include "fuzz_common.h"
#include "steerclear/dataset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_quiet();
    return 0;
}

static void check(const sc_dataset *ds, sc_dataset_kind kind) {
    FUZZ_CHECK(ds->n > 0 && ds->items != NULL);   // success means at least one record
    size_t sum = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const sc_prompt *p = &ds->items[i];
        FUZZ_CHECK(p->category && *p->category && p->full_prompt && *p->full_prompt);
        if (kind == SC_DATASET_TEST) FUZZ_CHECK(p->prompt && *p->prompt);
        else FUZZ_CHECK(p->prompt == NULL);
        FUZZ_CHECK(p->line >= 1);
        sum += strlen(p->category) + strlen(p->full_prompt);
        if (p->prompt) sum += strlen(p->prompt);
        if (p->original_completion) sum += strlen(p->original_completion);
    }
    volatile size_t sink = sum;
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input("fuzz_csv", data, size);
    static const sc_dataset_kind kinds[2] = {SC_DATASET_TRAIN, SC_DATASET_TEST};
    for (int k = 0; k < 2; k++) {
        sc_dataset ds = {NULL, 0};
        if (sc_dataset_load(path, kinds[k], &ds) == SC_OK) check(&ds, kinds[k]);
        else FUZZ_CHECK(ds.items == NULL && ds.n == 0);   // failure leaves *out empty
        sc_dataset_free(&ds);
    }
    return 0;
}
