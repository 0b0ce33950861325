// fuzz_checkpoint.c — libFuzzer target: sc_search_checkpoint_load on arbitrary bytes against a
// small search configuration (fuzz_checkpoint_cfg.h: shared adapter, rank 2, L 2, C 8, two
// steps of batch 2, up to 4 sampled tokens), on a CPU backend made once. The seed corpus
// (valid checkpoints of this configuration) comes from make_seeds.c. Version-2 inputs are also
// loaded with their payload length and CRC-32C fixed up, to get past the checksum.
#include "fuzz_common.h"
#include "fuzz_checkpoint_cfg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sc_backend *g_be;
static sc_search_config g_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_quiet();
    g_be = sc_backend_cpu_new();
    if (!g_be) { fprintf(stderr, "fuzz_checkpoint: no CPU backend: %s\n", sc_last_error()); exit(2); }
    fuzz_checkpoint_config(&g_cfg);
    return 0;
}

static void load_one(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input("fuzz_checkpoint", data, size);
    sc_search_state *s = NULL;
    if (sc_search_checkpoint_load(path, &g_cfg, g_be, FUZZ_CKPT_L, FUZZ_CKPT_C, &s) != SC_OK) {
        FUZZ_CHECK(s == NULL);   // failure hands out no state
        return;
    }
    // an accepted state is consistent with the configuration
    FUZZ_CHECK(s->adapter != NULL);
    FUZZ_CHECK(s->steps_done >= 0 && s->steps_done <= s->steps_total);
    FUZZ_CHECK(s->batch == g_cfg.batch_size && s->max_new == g_cfg.max_new_tokens);
    const size_t nA = sc_adapter_numel_A(s->adapter), nB = sc_adapter_numel_B(s->adapter);
    volatile float sink = 0;
    for (int i = 0; i < s->steps_done; i++) {
        const sc_step_record *r = &s->steps[i];
        size_t ng = 0;
        for (int j = 0; j < s->batch; j++) {
            FUZZ_CHECK(r->gen_len[j] >= 0 && r->gen_len[j] <= s->max_new);
            ng += (size_t)r->gen_len[j];
            sink += (float)r->prompt_idx[j];
        }
        for (size_t k = 0; k < ng; k++) sink += (float)r->gen[k];
        for (size_t k = 0; k < nA; k++) sink += r->A[k];
        for (size_t k = 0; k < nB; k++) sink += r->B[k];
    }
    (void)sink;
    sc_search_state_free(s);
}

// Version-2 header: magic, 9 x u32, u64 seed, u64 payload bytes, u32 CRC-32C, u32 settings bytes.
#define CKPT_V2_BODY_AT 68

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_one(data, size);
    // A mutated checkpoint almost never keeps its CRC-32C: also load a copy whose payload length
    // and checksum are made to match, so the fuzzer reaches the parsing behind the checksum.
    uint32_t version;
    if (size >= CKPT_V2_BODY_AT && !memcmp(data, "SCSRCHK1", 8) && (memcpy(&version, data + 8, 4), version == 2)) {
        uint8_t *fixed = malloc(size);
        if (!fixed) return 0;
        memcpy(fixed, data, size);
        uint64_t payload = size - CKPT_V2_BODY_AT;
        uint32_t crc = sc_crc32c(0, fixed + CKPT_V2_BODY_AT, size - CKPT_V2_BODY_AT);
        memcpy(fixed + 52, &payload, 8);
        memcpy(fixed + 60, &crc, 4);
        if (memcmp(fixed, data, size)) load_one(fixed, size);
        free(fixed);
    }
    return 0;
}
