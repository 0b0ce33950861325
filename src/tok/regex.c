// regex.c — the pre-tokenizer regex of a tokenizer.json rewritten for PCRE2 with the meaning
// the reference tokenizer gives it, plus the small UTF-8 and whitespace helpers it needs.
//
// The reference (transformers.js, via @lenml/tokenizers) runs the pattern as a JavaScript
// RegExp with the `u` flag. Under PCRE2_UTF|PCRE2_UCP a few constructs mean something else, so
// they are rewritten here (the pattern itself always comes from the file):
//   \s \S      JS set: WhiteSpace + LineTerminator (has U+FEFF, lacks U+0085), not Unicode's
//   \d \D \w \W  ASCII only in JS
//   .          any character but \n \r U+2028 U+2029
//   ^ $        start/end of input (no multiline flag, and no "before a final newline")
//   (?i:...)   JS cannot parse it and the reference rewrites the group into ASCII case pairs
//              ('s -> '[sS]); PCRE2's own caseless mode would also match U+017F (long s) and
//              U+212A (Kelvin). Letters in such a group become [xX].
// Left out (rejected with an error naming the construct): \b \B, \S \D \W inside a character
// class, letters inside a character class of a caseless group, inline flags other than (?i:.
// Unicode tables: \p{L} and \p{N} use PCRE2's tables (10.42: Unicode 14) while Node 20 uses a
// newer Unicode; letters and digits assigned after Unicode 14 can tokenize differently.
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

// --- whitespace and UTF-8 ---------------------------------------------------------------

int sc_tok_is_js_space(uint32_t c) {
    switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
        return 1;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

size_t sc_tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t len; uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

size_t sc_tok_utf8_valid_prefix(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        // ASCII fast path, 8 bytes at a time
        while (i + 8 <= len) {
            uint64_t w; memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= len) break;
        if (s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        size_t k = sc_tok_utf8_decode(s + i, len - i, &cp);
        if (!k) return i;
        i += k;
    }
    return len;
}

// --- pattern translation ----------------------------------------------------------------

// The body of JS's \s as a PCRE2 class body.
#define JS_SPACE_BODY "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"

typedef struct { char *buf; size_t len, cap; int oom; } strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256);
        while (cap < b->len + n + 1) cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) { b->oom = 1; return; }
        b->buf = nb; b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}
static void sb_puts(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static int is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

sc_status sc_tok_regex_to_pcre2(const char *src, const char *what, char **out) {
    *out = NULL;
    strbuf b = {0};
    enum { MAX_DEPTH = 128 };
    unsigned char caseless_group[MAX_DEPTH];   // per open group: opened with (?i:
    int depth = 0, caseless = 0, in_class = 0;
    size_t class_body = 0;                      // index of the first body byte of the open class
    size_t n = strlen(src);
    if (n == 0) return sc_errorf(SC_ERR_FORMAT, "%s: the pre-tokenizer regex is empty", what);
#define FAIL(...) do { free(b.buf); return sc_errorf(SC_ERR_FORMAT, __VA_ARGS__); } while (0)
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\\') {
            if (i + 1 >= n) FAIL("%s: pre-tokenizer regex ends with a lone backslash", what);
            char e = src[++i];
            switch (e) {
            case 's': sb_puts(&b, in_class ? JS_SPACE_BODY : "[" JS_SPACE_BODY "]"); break;
            case 'd': sb_puts(&b, in_class ? "0-9" : "[0-9]"); break;
            case 'w': sb_puts(&b, in_class ? "A-Za-z0-9_" : "[A-Za-z0-9_]"); break;
            case 'S': case 'D': case 'W':
                if (in_class) FAIL("%s: pre-tokenizer regex: \\%c inside a character class is not supported", what, e);
                sb_puts(&b, e == 'S' ? "[^" JS_SPACE_BODY "]" : e == 'D' ? "[^0-9]" : "[^A-Za-z0-9_]");
                break;
            case 'b': case 'B':
                if (in_class) { sb_puts(&b, e == 'b' ? "\\x{08}" : "B"); break; }
                FAIL("%s: pre-tokenizer regex: word boundary \\%c is not supported", what, e);
            case 'p': case 'P': {           // \p{Name} or \pL, copied whole
                size_t j = i + 1;
                if (j < n && src[j] == '{') {
                    while (j < n && src[j] != '}') j++;
                    if (j >= n) FAIL("%s: pre-tokenizer regex: unterminated \\%c{", what, e);
                }
                sb_put(&b, src + i - 1, j - i + 2);
                i = j;
                break;
            }
            case 'u': {                      // \uXXXX or \u{X...}: PCRE2 spells it \x{...}
                size_t j = i + 1, start, end;
                if (j < n && src[j] == '{') {
                    start = j + 1; end = start;
                    while (end < n && src[end] != '}') end++;
                    if (end >= n) FAIL("%s: pre-tokenizer regex: unterminated \\u{", what);
                    i = end;
                } else {
                    start = j; end = j + 4;
                    if (end > n) FAIL("%s: pre-tokenizer regex: short \\u escape", what);
                    i = end - 1;
                }
                sb_puts(&b, "\\x{");
                sb_put(&b, src + start, end - start);
                sb_puts(&b, "}");
                break;
            }
            default: {
                char esc[2] = {'\\', e};
                sb_put(&b, esc, 2);
            }
            }
            continue;
        }
        if (in_class) {
            if (c == ']' && i > class_body) { in_class = 0; sb_put(&b, "]", 1); continue; }
            if (c == '[') { sb_puts(&b, "\\["); continue; }
            if (caseless && is_ascii_alpha(c))
                FAIL("%s: pre-tokenizer regex: letters in a character class of a (?i:...) group are not supported", what);
            sb_put(&b, &c, 1);
            continue;
        }
        switch (c) {
        case '[':
            in_class = 1;
            sb_put(&b, "[", 1);
            if (i + 1 < n && src[i + 1] == '^') { sb_put(&b, "^", 1); i++; }
            class_body = i + 1;
            break;
        case '(':
            if (depth >= MAX_DEPTH) FAIL("%s: pre-tokenizer regex nests groups deeper than %d", what, MAX_DEPTH);
            caseless_group[depth] = 0;
            if (i + 1 < n && src[i + 1] == '?') {
                char k = i + 2 < n ? src[i + 2] : '\0';
                if (k == 'i' && i + 3 < n && src[i + 3] == ':') {
                    caseless_group[depth] = 1;
                    caseless++;
                    sb_puts(&b, "(?:");
                    i += 3;
                    depth++;
                    break;
                }
                if (k != ':' && k != '=' && k != '!' && k != '<')
                    FAIL("%s: pre-tokenizer regex: group '(?%c' is not supported (only (?: (?= (?! (?<= (?<! (?<name> and (?i:)", what, k);
            }
            depth++;
            sb_put(&b, "(", 1);
            break;
        case ')':
            if (depth == 0) FAIL("%s: pre-tokenizer regex: unbalanced ')'", what);
            depth--;
            if (caseless_group[depth]) caseless--;
            sb_put(&b, ")", 1);
            break;
        case '.': sb_puts(&b, "[^\\n\\r\\x{2028}\\x{2029}]"); break;
        case '^': sb_puts(&b, "\\A"); break;
        case '$': sb_puts(&b, "\\z"); break;
        default:
            if (caseless && is_ascii_alpha(c)) {
                char lo = (char)(c | 0x20), up = (char)(c & ~0x20);
                char cls[4] = {'[', lo, up, ']'};
                sb_put(&b, cls, 4);
            } else {
                sb_put(&b, &c, 1);
            }
        }
    }
    if (in_class) FAIL("%s: pre-tokenizer regex: unterminated character class", what);
    if (depth != 0) FAIL("%s: pre-tokenizer regex: unbalanced '('", what);
#undef FAIL
    if (b.oom || !b.buf) { free(b.buf); return sc_errorf(SC_ERR_MEM, "%s: out of memory translating the pre-tokenizer regex", what); }
    *out = b.buf;
    return SC_OK;
}
