// fuzz_tok_encode.c — libFuzzer target: the real Qwen tokenizer (loaded once from
// $SC_TOKENIZER, default .cache/tokenizer/tokenizer.json of the source tree) encodes the input
// as text and decodes the ids again (with and without special tokens); the input is also
// decoded as raw little-endian int32 ids (out-of-range ids must be errors, not reads).
#include "fuzz_common.h"
#include "steerclear/tok.h"

#ifndef SC_FUZZ_DEFAULT_TOKENIZER
#define SC_FUZZ_DEFAULT_TOKENIZER "/work/main/.cache/tokenizer/tokenizer.json"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sc_tokenizer *g_tok;
static int32_t g_vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_quiet();
    const char *path = getenv("SC_TOKENIZER");
    if (!path || !*path) path = SC_FUZZ_DEFAULT_TOKENIZER;
    if (sc_tok_load(path, &g_tok) != SC_OK) {
        fprintf(stderr, "fuzz_tok_encode: cannot load the tokenizer %s: %s\n"
                        "  (set SC_TOKENIZER, or run scripts/setup.sh)\n", path, sc_last_error());
        exit(2);
    }
    g_vocab = sc_tok_vocab_size(g_tok);
    return 0;
}

static void decode_both(const int32_t *ids, size_t n, int must_succeed) {
    for (int skip = 0; skip < 2; skip++) {
        char *text = NULL;
        sc_status st = sc_tok_decode(g_tok, ids, n, skip, &text);
        if (st == SC_OK) {
            FUZZ_CHECK(text != NULL);
            volatile size_t sink = strlen(text);
            (void)sink;
            free(text);
        } else if (must_succeed) {
            fprintf(stderr, "decode of encoder output failed: %s\n", sc_last_error());
            FUZZ_CHECK(!"the encoder's ids decode");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // 1. text -> ids -> text
    int32_t *ids = NULL;
    size_t n = 0;
    if (sc_tok_encode(g_tok, (const char *)data, size, &ids, &n) == SC_OK) {
        for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < g_vocab);
        decode_both(ids, n, 1);
        free(ids);
    } else {
        FUZZ_CHECK(ids == NULL);   // on error nothing is returned
    }
    // 2. raw ids (anything, including negative and out-of-range) -> text
    size_t m = size / 4;
    if (m) {
        int32_t *raw = malloc(m * sizeof *raw);
        if (!raw) return 0;
        memcpy(raw, data, m * sizeof *raw);
        decode_both(raw, m, 0);
        // the same ids folded into [0, V) (mostly valid: exercises the byte-level decoding
        // and its U+FFFD repair of invalid UTF-8 across tokens)
        for (size_t i = 0; i < m; i++) raw[i] = (int32_t)((uint32_t)raw[i] % (uint32_t)g_vocab);
        decode_both(raw, m, 0);
        for (size_t i = 0; i < m && i < 64; i++) {
            const char *b; size_t len;
            if (sc_tok_token_bytes(g_tok, raw[i], &b, &len) == SC_OK) {
                volatile uint8_t s = 0;
                for (size_t k = 0; k < len; k++) s ^= (uint8_t)b[k];
                (void)s;
            }
        }
        free(raw);
    }
    return 0;
}
