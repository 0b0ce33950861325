// fuzz_tok_load.c — libFuzzer target: sc_tok_load on a tokenizer.json-like input. Inputs that
// are not JSON are skipped (the loader's first step is cJSON, fuzzed enough elsewhere); a
// tokenizer that loads is then used: a fixed text with chat markup is encoded and decoded,
// and every id's bytes are read.
#include "fuzz_common.h"
#include "steerclear/tok.h"

#include <cjson/cJSON.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_quiet();
    return 0;
}

static const char sample[] =
    "<|im_start|>user\nHello, world! It's 2024 -- caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac   \t\r\n"
    "<|im_end|>\n<|im_start|>assistant\n I'll   say:\"ok\"\xf0\x9f\x98\x80<|endoftext|>";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *probe = cJSON_ParseWithLength((const char *)data, size);
    if (!probe) return 0;
    cJSON_Delete(probe);
    const char *path = fuzz_write_input("fuzz_tok_load", data, size);
    sc_tokenizer *tok = NULL;
    if (sc_tok_load(path, &tok) != SC_OK) {
        FUZZ_CHECK(tok == NULL);
        return 0;
    }
    int32_t V = sc_tok_vocab_size(tok);
    FUZZ_CHECK(V >= 1);
    volatile uint8_t sink = 0;
    int32_t lim = V < 4096 ? V : 4096;
    for (int32_t id = 0; id < lim; id++) {
        const char *b; size_t n;
        if (sc_tok_token_bytes(tok, id, &b, &n) == SC_OK)
            for (size_t i = 0; i < n; i++) sink ^= (uint8_t)b[i];
        sink ^= (uint8_t)sc_tok_is_special(tok, id);
    }
    int32_t *ids = NULL; size_t n_ids = 0;
    if (sc_tok_encode(tok, sample, sizeof sample - 1, &ids, &n_ids) == SC_OK) {
        for (size_t i = 0; i < n_ids; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < V);
        for (int skip = 0; skip < 2; skip++) {
            char *text = NULL;
            if (sc_tok_decode(tok, ids, n_ids, skip, &text) == SC_OK) { sink ^= (uint8_t)strlen(text); free(text); }
        }
        free(ids);
    }
    sink ^= (uint8_t)sc_tok_id(tok, "<|im_start|>");
    (void)sink;
    sc_tok_free(tok);
    return 0;
}
