// text.c — the report's text buffer and the escapers that untrusted text (themes written by an
// LLM, trait and need names, paths) goes through before it reaches a gnuplot script or
// report.md. Leaves out: everything about what the report says (report.c, figures.c).
#include "report_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

// --- The buffer -----------------------------------------------------------------------------------

static int sb_grow(sc_sb *b, size_t more) {
    if (b->failed) return 0;
    if (b->n + more + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->failed = 1; return 0; }
    b->p = p;
    b->cap = cap;
    return 1;
}

void sc_sb_putn(sc_sb *b, const char *s, size_t n) {
    if (!sb_grow(b, n)) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void sc_sb_puts(sc_sb *b, const char *s) { sc_sb_putn(b, s, strlen(s)); }

void sc_sb_printf(sc_sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0) { b->failed = 1; return; }
    if ((size_t)len < sizeof small) { sc_sb_putn(b, small, (size_t)len); return; }
    if (!sb_grow(b, (size_t)len)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)len;
}

void sc_sb_free(sc_sb *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

sc_status sc_sb_check(const sc_sb *b, const char *what) {
    return b->failed ? sc_errorf(SC_ERR_MEM, "out of memory writing %s", what) : SC_OK;
}

const char *sc_sb_str(const sc_sb *b) { return b->p ? b->p : ""; }

void sc_sb_num(sc_sb *b, double v, int decimals) {
    if (!isfinite(v)) { sc_sb_puts(b, "n/a"); return; }
    char t[64];
    snprintf(t, sizeof t, "%.*f", decimals, v);
    // "-0.00" -> "0.00": a sign on a value that rounds to zero says nothing
    if (t[0] == '-' && strspn(t + 1, "0.") == strlen(t + 1)) sc_sb_puts(b, t + 1);
    else sc_sb_puts(b, t);
}

// --- Untrusted text ---------------------------------------------------------------------------------

// The next code point of s[0..n): its length in bytes (>= 1); invalid UTF-8 reads as one byte
// of U+FFFD.
static size_t next_cp(const char *s, size_t n, int32_t *cp) {
    utf8proc_int32_t c = -1;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
    if (k <= 0 || c < 0) { *cp = 0xFFFD; return 1; }
    *cp = c;
    return (size_t)k;
}

static void put_cp(sc_sb *b, int32_t cp) {
    utf8proc_uint8_t u[8];
    utf8proc_ssize_t k = utf8proc_encode_char(cp, u);
    sc_sb_putn(b, (const char *)u, (size_t)k);
}

// Line breaks, control characters and the bidirectional overrides (which reorder the text
// shown around them) read as a space.
static int is_space_like(int32_t cp) {
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) return 1;
    if (cp == 0x2028 || cp == 0x2029 || cp == 0x85) return 1;
    if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) return 1;
    const utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP || cat == UTF8PROC_CATEGORY_CC;
}

// Code points of s after collapsing space-like runs into one space and trimming the ends; calls
// emit(cp) for each, at most max_chars of them. Returns 1 when text was left out.
typedef void (*emit_fn)(sc_sb *b, int32_t cp);
static int walk(sc_sb *b, const char *s, size_t max_chars, emit_fn emit) {
    if (!s) return 0;
    const size_t n = strlen(s);
    size_t at = 0, count = 0;
    int pending_space = 0, any = 0;
    while (at < n) {
        int32_t cp;
        at += next_cp(s + at, n - at, &cp);
        if (is_space_like(cp)) { pending_space = any; continue; }
        if (count + (size_t)pending_space + 1 > max_chars) return 1;
        if (pending_space) { emit(b, ' '); count++; pending_space = 0; }
        emit(b, cp);
        count++;
        any = 1;
    }
    return 0;
}

// Code points a figure may show: the blocks DejaVu Sans (the figures' font, and the only one a
// bare Debian has) covers. pngcairo draws a glyph no installed font has as a black smear across
// the figure, so CJK, emoji and the like become '?' there (report.md keeps the full text).
static int gp_drawable(int32_t cp) {
    return cp < 0x0530 || (cp >= 0x1e00 && cp < 0x2000) || (cp >= 0x2000 && cp < 0x2070) || (cp >= 0x20a0 && cp < 0x20d0) ||
           (cp >= 0x2100 && cp < 0x2150) || (cp >= 0x2190 && cp < 0x2300);
}

static void emit_gp(sc_sb *b, int32_t cp) {
    if (cp == '\'') sc_sb_puts(b, "''");
    else if (!gp_drawable(cp)) sc_sb_puts(b, "?");
    else put_cp(b, cp);
}

void sc_sb_gp_string(sc_sb *b, const char *s, size_t max_chars) {
    sc_sb_putn(b, "'", 1);
    if (walk(b, s, max_chars, emit_gp)) sc_sb_puts(b, "...");
    sc_sb_putn(b, "'", 1);
}

static void emit_md(sc_sb *b, int32_t cp) {
    switch (cp) {
    case '<': sc_sb_puts(b, "&lt;"); return;
    case '>': sc_sb_puts(b, "&gt;"); return;
    case '&': sc_sb_puts(b, "&amp;"); return;
    case '|': case '\\': case '`': case '*': case '_': case '~': case '[': case ']': case '$':
        sc_sb_putn(b, "\\", 1);
        put_cp(b, cp);
        return;
    default: put_cp(b, cp);
    }
}

void sc_sb_md_text(sc_sb *b, const char *s, size_t max_chars) {
    if (walk(b, s, max_chars, emit_md)) sc_sb_printf(b, " … (cut at %zu characters)", max_chars);
}
