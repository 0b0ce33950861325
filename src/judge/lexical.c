// lexical.c — the `lexical` judge provider: offline, deterministic themes (Fightin' Words
// log-odds of words and bigrams plus paired surface signals: questions, length, AI disclaimers,
// speaker turns), TF-IDF embeddings over one call's texts, and lexicon-rate pairwise verdicts.
// The method and thresholds are in lexical.h; docs/lexical-judge.md explains them.
// What it leaves out: meaning, paraphrase and tone without keywords; word segmentation of
// scripts written without spaces (a run of CJK characters is one word); Unicode normalisation
// (precomposed and decomposed accents are different words); negation in trait lexicons.
#include "steerclear/lexical.h"
#include "steerclear/judge.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

// ---------------------------------------------------------------------------------------
// A growable string; an allocation failure sets `oom` and later writes are dropped, so
// callers check once at the end instead of after every append.
typedef struct { char *s; size_t len, cap; int oom; } sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) { b->oom = 1; return; }
    if ((size_t)k < sizeof tmp) { sb_putn(b, tmp, (size_t)k); return; }
    char *big = malloc((size_t)k + 1);
    if (!big) { b->oom = 1; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    sb_putn(b, big, (size_t)k);
    free(big);
}

// The buffer's string (an empty one when nothing was written), or NULL after a failure.
static char *sb_take(sbuf *b) {
    if (b->oom) { free(b->s); b->s = NULL; return NULL; }
    char *s = b->s ? b->s : calloc(1, 1);
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

// ---------------------------------------------------------------------------------------
// Tokens: lower-cased words back to back (NUL-terminated) with two flags each.
enum { TOK_SENT = 1,   // first word of the text or after . ! ? ; : or a line break
       TOK_JOIN = 2 }; // only spaces (or a hyphen) since the previous word: a bigram may span it

typedef struct {
    char *chars; size_t len, cap;
    size_t *off; unsigned char *flags; int n, cap_n;
    int oom;
} toklist;

static const char *tok(const toklist *t, int i) { return t->chars + t->off[i]; }

static void tl_free(toklist *t) {
    free(t->chars); free(t->off); free(t->flags);
    memset(t, 0, sizeof *t);
}

static void tl_bytes(toklist *t, const void *p, size_t n) {
    if (t->oom) return;
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n) cap *= 2;
        char *c = realloc(t->chars, cap);
        if (!c) { t->oom = 1; return; }
        t->chars = c;
        t->cap = cap;
    }
    memcpy(t->chars + t->len, p, n);
    t->len += n;
}

static void tl_begin(toklist *t, unsigned char flags) {
    if (t->oom) return;
    if (t->n == t->cap_n) {
        int cap = t->cap_n ? 2 * t->cap_n : 64;
        size_t *o = realloc(t->off, (size_t)cap * sizeof *o);
        if (o) t->off = o;
        unsigned char *f = realloc(t->flags, (size_t)cap);
        if (f) t->flags = f;
        if (!o || !f) { t->oom = 1; return; }
        t->cap_n = cap;
    }
    t->off[t->n] = t->len;
    t->flags[t->n] = flags;
    t->n++;
}

static void tl_end(toklist *t) { tl_bytes(t, "", 1); }

enum { CH_WORD, CH_SPACE, CH_NEWLINE, CH_STOP, CH_PUNCT, CH_SYMBOL, CH_MARK, CH_IGNORE, CH_APOS, CH_HYPHEN };

static int classify(int32_t c) {
    if (c < 0) return CH_PUNCT;   // a byte that is not valid UTF-8
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return CH_WORD;
        if (c == ' ' || c == '\t' || c == '\v' || c == '\f') return CH_SPACE;
        if (c == '\n' || c == '\r') return CH_NEWLINE;
        if (c == '.' || c == '!' || c == '?' || c == ';' || c == ':') return CH_STOP;
        if (c == '\'') return CH_APOS;
        if (c == '-') return CH_HYPHEN;
        return CH_PUNCT;   // the rest of ASCII punctuation and the control characters
    }
    if (c == 0x2019) return CH_APOS;   // typographic apostrophe, as in don’t
    // full stops, exclamation and question marks, semicolons and colons of other scripts
    if (c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == 0xFF1B || c == 0xFF1A || c == 0xFF0E ||
        c == 0x2026 || c == 0x061F || c == 0x0964)
        return CH_STOP;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return CH_WORD;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        return CH_MARK;
    case UTF8PROC_CATEGORY_ZS: return CH_SPACE;
    case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: return CH_NEWLINE;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
        return CH_SYMBOL;
    case UTF8PROC_CATEGORY_CF: return CH_IGNORE;   // zero-width joiners inside emoji sequences
    default: return CH_PUNCT;
    }
}

// The code point at s[i] (len bytes in all) into *c, -1 for a byte that is not valid UTF-8;
// returns the bytes it spans (at least 1, so a scan always advances).
static size_t decode(const char *s, size_t i, size_t len, int32_t *c) {
    unsigned char b = (unsigned char)s[i];
    if (b < 0x80) { *c = b; return 1; }
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
    if (k <= 0 || cp < 0) { *c = -1; return 1; }
    *c = cp;
    return (size_t)k;
}

static void tl_codepoint(toklist *t, int32_t c, int lower) {
    if (c < 0x80) {
        char ch = (char)(lower && c >= 'A' && c <= 'Z' ? c + 32 : c);
        tl_bytes(t, &ch, 1);
        return;
    }
    utf8proc_uint8_t buf[8];
    utf8proc_ssize_t k = utf8proc_encode_char(lower ? utf8proc_tolower(c) : c, buf);
    if (k > 0) tl_bytes(t, buf, (size_t)k);
}

// Cut `s` (NULL reads as "") into t, which is reset first. Failure only on allocation.
static sc_status tokenize(const char *s, toklist *t) {
    t->n = 0;
    t->len = 0;
    t->oom = 0;
    if (!s) return SC_OK;
    size_t len = strlen(s), i = 0;
    int in_word = 0, sent = 1, join = 0;
    while (i < len) {
        int32_t c;
        size_t k = decode(s, i, len, &c);
        int cls = classify(c);
        if ((cls == CH_APOS || cls == CH_HYPHEN) && in_word) {
            int32_t next = -1;
            if (i + k < len) decode(s, i + k, len, &next);
            if (classify(next) == CH_WORD) {
                if (cls == CH_APOS) tl_bytes(t, "'", 1);   // don't, l'eau: one word
                else { tl_end(t); in_word = 0; join = 1; }  // well-being: two words, one bigram
                i += k;
                continue;
            }
            cls = CH_PUNCT;
        }
        switch (cls) {
        case CH_WORD:
            if (!in_word) {
                tl_begin(t, (unsigned char)((sent ? TOK_SENT : 0) | (join ? TOK_JOIN : 0)));
                in_word = 1;
                sent = 0;
            }
            tl_codepoint(t, c, 1);
            break;
        case CH_MARK:   // combining accents belong to the word; a stray one (after an emoji) is dropped
            if (in_word) tl_codepoint(t, c, 0);
            break;
        case CH_IGNORE:
            break;
        case CH_SYMBOL:   // an emoji or other symbol is a word of its own
            if (in_word) { tl_end(t); join = 1; }
            tl_begin(t, (unsigned char)((sent ? TOK_SENT : 0) | (join ? TOK_JOIN : 0)));
            tl_codepoint(t, c, 0);
            tl_end(t);
            in_word = 0;
            sent = 0;
            join = 1;
            break;
        case CH_SPACE:
            if (in_word) { tl_end(t); in_word = 0; join = 1; }
            break;
        case CH_NEWLINE: case CH_STOP:
            if (in_word) { tl_end(t); in_word = 0; }
            sent = 1;
            join = 0;
            break;
        default:
            if (in_word) { tl_end(t); in_word = 0; }
            join = 0;
            break;
        }
        i += k;
    }
    if (in_word) tl_end(t);
    return t->oom ? sc_errorf(SC_ERR_MEM, "lexical judge: out of memory splitting a %zu-byte text into words", len)
                  : SC_OK;
}

// ---------------------------------------------------------------------------------------
// Phrase matching on tokens. A phrase is space-separated words ("must be hard"); consecutive
// words must be joined in the text (no punctuation between them).

// The number of tokens the phrase covers at position i, 0 when it does not match there.
static int phrase_at(const toklist *t, int i, const char *phrase) {
    const char *p = phrase;
    int k = 0;
    while (*p) {
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (i + k >= t->n) return 0;
        if (k > 0 && !(t->flags[i + k] & TOK_JOIN)) return 0;
        const char *w = tok(t, i + k);
        if (strlen(w) != n || memcmp(w, p, n)) return 0;
        k++;
        p += n;
        if (*p == ' ') p++;
    }
    return k;
}

// Count non-overlapping lexicon matches, the longest entry first at each position; `starts`
// (may be NULL) are single words that count only as the first word of a sentence (imperatives).
static int lexicon_hits(const toklist *t, const char *const *lex, int n_lex, const char *const *starts, int n_starts) {
    int hits = 0;
    for (int i = 0; i < t->n;) {
        int best = 0;
        for (int e = 0; e < n_lex; e++) {
            int k = phrase_at(t, i, lex[e]);
            if (k > best) best = k;
        }
        if (!best && starts && (t->flags[i] & TOK_SENT))
            for (int e = 0; e < n_starts && !best; e++)
                if (!strcmp(tok(t, i), starts[e])) best = 1;
        if (best) { hits++; i += best; }
        else i++;
    }
    return hits;
}

// First-person AI disclaimers and refusals.
static const char *const disclaimers[] = {
    "as an ai", "as an ai language model", "as a language model", "language model",
    "i'm an ai", "i am an ai", "i cannot", "i can't", "i can not", "i'm sorry", "i am sorry",
    "i'm unable to", "i am unable to", "i'm not able to", "i am not able to", "i apologize",
    "i apologise", "i won't be able to",
};

// 1 when w is one of the words of the space-separated phrases list[0..n).
static int word_in_phrases(const char *w, const char *const *list, int n) {
    size_t len = strlen(w);
    for (int i = 0; i < n; i++)
        for (const char *p = list[i]; *p;) {
            const char *e = strchr(p, ' ');
            size_t k = e ? (size_t)(e - p) : strlen(p);
            if (k == len && !memcmp(p, w, k)) return 1;
            p += k;
            if (*p == ' ') p++;
        }
    return 0;
}

// ---------------------------------------------------------------------------------------
// String interning: open addressing over an arena of NUL-terminated strings.
typedef struct {
    char *chars; size_t len, cap;
    size_t *off; size_t *slen; int n, cap_n;
    int *slot; size_t nslot;
    int oom;
} interner;

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h;
}

static const char *in_str(const interner *in, int id) { return in->chars + in->off[id]; }

static void in_free(interner *in) {
    free(in->chars); free(in->off); free(in->slen); free(in->slot);
    memset(in, 0, sizeof *in);
}

static int in_rehash(interner *in, size_t nslot) {
    int *slot = malloc(nslot * sizeof *slot);
    if (!slot) return -1;
    for (size_t i = 0; i < nslot; i++) slot[i] = -1;
    for (int id = 0; id < in->n; id++) {
        size_t h = (size_t)fnv1a(in_str(in, id), in->slen[id]) & (nslot - 1);
        while (slot[h] >= 0) h = (h + 1) & (nslot - 1);
        slot[h] = id;
    }
    free(in->slot);
    in->slot = slot;
    in->nslot = nslot;
    return 0;
}

// The id of s[0..n), added when new; -1 on allocation failure (in->oom set).
static int intern(interner *in, const char *s, size_t n) {
    if (in->oom) return -1;
    if ((size_t)in->n * 2 + 2 > in->nslot && in_rehash(in, in->nslot ? in->nslot * 2 : 1024)) { in->oom = 1; return -1; }
    size_t h = (size_t)fnv1a(s, n) & (in->nslot - 1);
    while (in->slot[h] >= 0) {
        int id = in->slot[h];
        if (in->slen[id] == n && !memcmp(in_str(in, id), s, n)) return id;
        h = (h + 1) & (in->nslot - 1);
    }
    if (in->n == in->cap_n) {
        int cap = in->cap_n ? 2 * in->cap_n : 1024;
        size_t *o = realloc(in->off, (size_t)cap * sizeof *o);
        if (o) in->off = o;
        size_t *l = realloc(in->slen, (size_t)cap * sizeof *l);
        if (l) in->slen = l;
        if (!o || !l) { in->oom = 1; return -1; }
        in->cap_n = cap;
    }
    if (in->len + n + 1 > in->cap) {
        size_t cap = in->cap ? in->cap : 16384;
        while (cap < in->len + n + 1) cap *= 2;
        char *c = realloc(in->chars, cap);
        if (!c) { in->oom = 1; return -1; }
        in->chars = c;
        in->cap = cap;
    }
    memcpy(in->chars + in->len, s, n);
    in->chars[in->len + n] = '\0';
    in->off[in->n] = in->len;
    in->slen[in->n] = n;
    in->len += n + 1;
    in->slot[h] = in->n;
    return in->n++;
}

// Each term of t (every word; every joined pair of words as "w1 w2") goes through fn.
// Returns -1 when fn does (allocation failure), else 0.
typedef int (*term_fn)(void *ctx, const char *term, size_t n, int is_bigram, int tok_index);

static int for_each_term(const toklist *t, sbuf *scratch, term_fn fn, void *ctx) {
    for (int i = 0; i < t->n; i++) {
        const char *w = tok(t, i);
        if (fn(ctx, w, strlen(w), 0, i)) return -1;
        if (i > 0 && (t->flags[i] & TOK_JOIN)) {
            scratch->len = 0;
            sb_puts(scratch, tok(t, i - 1));
            sb_putn(scratch, " ", 1);
            sb_puts(scratch, w);
            if (scratch->oom) return -1;
            if (fn(ctx, scratch->s, scratch->len, 1, i)) return -1;
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------
// Statistics

// One-sided sign test: P(X >= up) for X ~ Binomial(up + down, 1/2). Computed in log space by
// a running product, so it needs neither lgamma (not thread-safe: signgam) nor large factorials.
static double sign_test_p(int up, int down) {
    int m = up + down;
    if (m <= 0 || up <= 0) return 1.0;
    double lc = 0.0;   // log C(m, up)
    for (int i = 1; i <= up; i++) lc += log((double)(m - up + i) / i);
    double p = 0.0, l2 = m * log(2.0);
    for (int k = up; k <= m; k++) {
        p += exp(lc - l2);
        if (k < m) lc += log((double)(m - k) / (k + 1));
    }
    return p > 1.0 ? 1.0 : p;
}

int sc_lexical_min_docs(int n) {
    int m = (int)ceil(SC_LEXICAL_MIN_DOC_FRAC * n);
    return m < SC_LEXICAL_MIN_DOCS ? SC_LEXICAL_MIN_DOCS : m;
}

// The per-feature p-value threshold that keeps the family-wise error of all the word and bigram
// sign tests of a batch at alpha: Tarone's (1990) modified Bonferroni for discrete tests. A
// feature that differs between output and original in only m_f prompts cannot reach a p-value
// below 2^-m_f, so it is not counted in the divisor: the smallest k with
// #{f : 2^-m_f <= alpha / k} <= k gives the threshold alpha / k. hist[m] = features with m_f = m.
static double tarone_threshold(const int *hist, int n, double alpha) {
    double above = 0;   // features with m_f >= c, for the current c
    for (int m = 0; m <= n; m++) above += hist[m];
    for (int c = 0; c < 4096; c++) {
        if (c > 0 && c - 1 <= n) above -= hist[c - 1];
        // k in (alpha 2^(c-1), alpha 2^c]: exactly the features with m_f >= c are testable
        double lo = floor(alpha * ldexp(1.0, c - 1)) + 1, hi = floor(alpha * ldexp(1.0, c));
        double k = lo > above ? lo : above;
        if (k < 1) k = 1;
        if (k <= hi) return alpha / k;
    }
    return 0.0;   // not reached: `above` is finite and hi doubles with c
}

// Fightin' Words z-score of a term seen yo times among No terms of the outputs and yb times
// among Nb of the originals; 0 when the prior leaves a side with no mass (a one-term corpus).
static double log_odds_z(double yo, double No, double yb, double Nb) {
    double a = SC_LEXICAL_PRIOR_SCALE * (yo + yb), a0 = SC_LEXICAL_PRIOR_SCALE * (No + Nb);
    double ro = No + a0 - yo - a, rb = Nb + a0 - yb - a;
    if (a <= 0 || ro <= 0 || rb <= 0) return 0.0;
    double delta = log((yo + a) / ro) - log((yb + a) / rb);
    return delta / sqrt(1.0 / (yo + a) + 1.0 / (yb + a));
}

// A paired surface signal: per-prompt values of the outputs (vo) and originals (vb).
typedef struct {
    double mean_o, mean_b;
    int up, down;       // prompts where the output's value is above / below its original's
    double p_up, p_down;
    int dir;            // +1: outputs have more, -1: fewer, 0: no difference passed
} signal;

// Each of the 4 signals is tested in both directions: 8 one-sided sign tests share the
// family-wise SC_LEXICAL_SIGNALS_ALPHA (Bonferroni).
#define SIGNAL_P (SC_LEXICAL_SIGNALS_ALPHA / 8.0)

static signal eval_signal(const double *vo, const double *vb, int n, double abs_min, double ratio, int min_docs) {
    signal s = {0};
    for (int i = 0; i < n; i++) {
        s.mean_o += vo[i];
        s.mean_b += vb[i];
        s.up += vo[i] > vb[i];
        s.down += vo[i] < vb[i];
    }
    if (n > 0) { s.mean_o /= n; s.mean_b /= n; }
    s.p_up = sign_test_p(s.up, s.down);
    s.p_down = sign_test_p(s.down, s.up);
    if (s.mean_o - s.mean_b >= abs_min && s.mean_o >= ratio * s.mean_b && s.up >= min_docs && s.p_up <= SIGNAL_P)
        s.dir = 1;
    else if (s.mean_b - s.mean_o >= abs_min && s.mean_b >= ratio * s.mean_o && s.down >= min_docs && s.p_down <= SIGNAL_P)
        s.dir = -1;
    return s;
}

static int count_char_questions(const char *s) {
    int q = 0;
    if (!s) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '?') q++;
        else if (p[0] == 0xEF && p[1] == 0xBC && p[2] == 0x9F) { q++; p += 2; }   // U+FF1F fullwidth ?
    }
    return q;
}

// New speaker turns: "<|im_start|>" anywhere, or a line starting with a capitalised word and a
// colon ("User:", "Assistant:", "Bob:"); leading spaces of the line are allowed.
static int count_speaker_turns(const char *s) {
    int turns = 0;
    if (!s) return 0;
    for (const char *p = s; (p = strstr(p, "<|im_start|>")); p += 12) turns++;
    for (const char *line = s; line; ) {
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p >= 'A' && *p <= 'Z') {
            const char *q = p + 1;
            while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')) q++;
            if (*q == ':' && q - p <= 32) turns++;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    return turns;
}

// ---------------------------------------------------------------------------------------
// themes

typedef struct { int f, item, side; } occ;   // one occurrence of feature f (side 0: output)

static int occ_cmp(const void *x, const void *y) {
    const occ *a = x, *b = y;
    if (a->f != b->f) return a->f < b->f ? -1 : 1;
    if (a->item != b->item) return a->item < b->item ? -1 : 1;
    return (a->side > b->side) - (a->side < b->side);
}

// Append o to the growing array *v (n used, cap allocated); -1 when out of memory.
static int occ_push(occ **v, size_t *n, size_t *cap, occ o) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 4096;
        occ *g = realloc(*v, c * sizeof *g);
        if (!g) return -1;
        *v = g;
        *cap = c;
    }
    (*v)[(*n)++] = o;
    return 0;
}

typedef struct {
    interner *in;
    occ *occ; size_t n_occ, cap_occ;
    int *first_item, *first_tok, cap_first;   // where a feature is first seen in an output
    double n_terms[2][2];                     // [bigram][side]
    int item, side;
} collect_ctx;

static int collect_term(void *vctx, const char *term, size_t n, int is_bigram, int tok_index) {
    collect_ctx *c = vctx;
    int f = intern(c->in, term, n);
    if (f < 0) return -1;
    if (occ_push(&c->occ, &c->n_occ, &c->cap_occ, (occ){f, c->item, c->side})) return -1;
    if (f >= c->cap_first) {
        int cap = c->cap_first ? 2 * c->cap_first : 1024;
        while (cap <= f) cap *= 2;
        int *a = realloc(c->first_item, (size_t)cap * sizeof *a);
        if (a) c->first_item = a;
        int *b = realloc(c->first_tok, (size_t)cap * sizeof *b);
        if (b) c->first_tok = b;
        if (!a || !b) return -1;
        for (int i = c->cap_first; i < cap; i++) c->first_item[i] = c->first_tok[i] = -1;
        c->cap_first = cap;
    }
    if (c->side == 0 && c->first_item[f] < 0) { c->first_item[f] = c->item; c->first_tok[f] = tok_index; }
    c->n_terms[is_bigram][c->side] += 1;
    return 0;
}

typedef struct { int f; double z; const char *s; } cand;

static int cand_cmp(const void *x, const void *y) {
    const cand *a = x, *b = y;
    if (a->z != b->z) return a->z > b->z ? -1 : 1;
    return strcmp(a->s, b->s);
}

static int str_ptr_cmp(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int int_cmp(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

// A quoted phrase: words point into the batch's token lists.
typedef struct {
    const char *w[SC_LEXICAL_MAX_PHRASE];
    int nw;
    const char *seed;   // the feature it grew from
    double z;           // the seed's z
    int count_o, count_b, docs_o, up, down;
} phrase;

static int ngram_at(const toklist *t, int i, const char *const *w, int nw) {
    if (i + nw > t->n) return 0;
    for (int k = 0; k < nw; k++) {
        if (k > 0 && !(t->flags[i + k] & TOK_JOIN)) return 0;
        if (strcmp(tok(t, i + k), w[k])) return 0;
    }
    return 1;
}

static int ngram_count(const toklist *t, const char *const *w, int nw) {
    int c = 0;
    for (int i = 0; i + nw <= t->n; i++) c += ngram_at(t, i, w, nw);
    return c;
}

// The most frequent word (ties: first in byte order) among m pointers; its count in *count.
static const char *most_frequent(const char **words, int m, int *count) {
    *count = 0;
    if (m == 0) return NULL;
    qsort(words, (size_t)m, sizeof *words, str_ptr_cmp);
    const char *best = NULL;
    for (int i = 0; i < m;) {
        int j = i;
        while (j < m && !strcmp(words[j], words[i])) j++;
        if (j - i > *count) { *count = j - i; best = words[i]; }
        i = j;
    }
    return best;
}

// Grow a phrase while one neighbour (joined, in the outputs) accompanies >= EXTEND_FRAC of its
// uses: "lighthouse" -> "the lighthouse keeper". Returns -1 on allocation failure.
static int extend_phrase(phrase *ph, const toklist *to, int n) {
    while (ph->nw < SC_LEXICAL_MAX_PHRASE) {
        int c = 0;
        for (int i = 0; i < n; i++) c += ngram_count(&to[i], ph->w, ph->nw);
        if (c == 0) return 0;
        const char **left = malloc((size_t)c * sizeof *left), **right = malloc((size_t)c * sizeof *right);
        if (!left || !right) { free(left); free(right); return -1; }
        int nl = 0, nr = 0;
        for (int it = 0; it < n; it++) {
            const toklist *t = &to[it];
            for (int i = 0; i + ph->nw <= t->n; i++) {
                if (!ngram_at(t, i, ph->w, ph->nw)) continue;
                if (i > 0 && (t->flags[i] & TOK_JOIN)) left[nl++] = tok(t, i - 1);
                if (i + ph->nw < t->n && (t->flags[i + ph->nw] & TOK_JOIN)) right[nr++] = tok(t, i + ph->nw);
            }
        }
        int cl, cr;
        const char *wl = most_frequent(left, nl, &cl), *wr = most_frequent(right, nr, &cr);
        double need = SC_LEXICAL_EXTEND_FRAC * c;
        if (wr && cr >= need && cr >= cl) {
            ph->w[ph->nw++] = wr;
        } else if (wl && cl >= need) {
            memmove(ph->w + 1, ph->w, (size_t)ph->nw * sizeof ph->w[0]);
            ph->w[0] = wl;
            ph->nw++;
        } else {
            free(left); free(right);
            return 0;
        }
        free(left); free(right);
    }
    return 0;
}

// 1 when a's words are a contiguous run of b's.
static int phrase_within(const phrase *a, const phrase *b) {
    for (int s = 0; s + a->nw <= b->nw; s++) {
        int k = 0;
        while (k < a->nw && !strcmp(a->w[k], b->w[s + k])) k++;
        if (k == a->nw) return 1;
    }
    return 0;
}

static void sb_phrase(sbuf *b, const phrase *ph) {
    for (int k = 0; k < ph->nw; k++) {
        if (k) sb_putn(b, " ", 1);
        sb_puts(b, ph->w[k]);
    }
}

// Append prompt ids to a growable list.
typedef struct { int *v; int n, cap; int oom; } intlist;

static void il_push(intlist *l, int x) {
    if (l->oom) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        int *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) { l->oom = 1; return; }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
}

// Join clauses as "a", "a and b", "a, b and c".
static void sb_clauses(sbuf *b, char **clauses, int n) {
    for (int i = 0; i < n; i++) {
        if (i > 0) sb_puts(b, i == n - 1 ? " and " : ", ");
        sb_puts(b, clauses[i]);
    }
}

typedef struct {
    toklist *to, *tb;             // outputs, originals
    double *v[8];                 // per-prompt signal values (outputs, originals) x 4 signals
    interner in;
    collect_ctx cc;
    int *yo, *yb, *dout, *up, *down;
    cand *cands;
    sbuf scratch;
} batch_work;

static void batch_work_free(batch_work *w, int n) {
    if (w->to) for (int i = 0; i < n; i++) tl_free(&w->to[i]);
    if (w->tb) for (int i = 0; i < n; i++) tl_free(&w->tb[i]);
    free(w->to); free(w->tb);
    for (int k = 0; k < 8; k++) free(w->v[k]);
    in_free(&w->in);
    free(w->cc.occ); free(w->cc.first_item); free(w->cc.first_tok);
    free(w->yo); free(w->yb); free(w->dout); free(w->up); free(w->down);
    free(w->cands);
    free(w->scratch.s);
}

enum { SIG_QUESTIONS, SIG_DISCLAIMERS, SIG_TURNS, SIG_LENGTH, N_SIG };

static sc_status theme_batch(const sc_judge_batch *b, int bi, sc_judge_theme *out) {
    int n = b->n;
    if (n < 0) return sc_errorf(SC_ERR_ARG, "lexical judge: batch %d has %d items; pass n >= 0", bi, n);
    if (n == 0) {
        out->reasoning = sc_strdup("Empty batch: no outputs to compare, so no theme.");
        return out->reasoning ? SC_OK : sc_errorf(SC_ERR_MEM, "lexical judge: out of memory");
    }
    if (!b->items) return sc_errorf(SC_ERR_ARG, "lexical judge: batch %d has n = %d but items is NULL", bi, n);
    const int min_docs = sc_lexical_min_docs(n);
    sc_status st = SC_OK;
    batch_work w;
    memset(&w, 0, sizeof w);
    phrase quotes[SC_LEXICAL_MAX_QUOTES];
    int n_quotes = 0;
    signal sig[N_SIG];
    sbuf theme = {0}, why = {0};
    intlist prompts = {0};
    char *clauses[N_SIG + 1];
    int n_clauses = 0;
    double p_thr = 0;
    sbuf cl[N_SIG + 1];
    memset(cl, 0, sizeof cl);

    w.to = calloc((size_t)n, sizeof *w.to);
    w.tb = calloc((size_t)n, sizeof *w.tb);
    for (int k = 0; k < 8; k++) w.v[k] = calloc((size_t)n, sizeof(double));
    int ok = w.to && w.tb;
    for (int k = 0; k < 8; k++) ok = ok && w.v[k];
    if (!ok) { st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory for a batch of %d items", n); goto done; }

    // words and surface signals per prompt
    for (int i = 0; i < n; i++) {
        const sc_judge_item *it = &b->items[i];
        if ((st = tokenize(it->output, &w.to[i])) || (st = tokenize(it->original, &w.tb[i]))) goto done;
        w.v[0][i] = count_char_questions(it->output);
        w.v[1][i] = count_char_questions(it->original);
        w.v[2][i] = lexicon_hits(&w.to[i], disclaimers, (int)(sizeof disclaimers / sizeof *disclaimers), NULL, 0);
        w.v[3][i] = lexicon_hits(&w.tb[i], disclaimers, (int)(sizeof disclaimers / sizeof *disclaimers), NULL, 0);
        w.v[4][i] = count_speaker_turns(it->output);
        w.v[5][i] = count_speaker_turns(it->original);
        w.v[6][i] = w.to[i].n;
        w.v[7][i] = w.tb[i].n;
    }
    sig[SIG_QUESTIONS] = eval_signal(w.v[0], w.v[1], n, SC_LEXICAL_QUESTIONS_ABS, SC_LEXICAL_QUESTIONS_RATIO, min_docs);
    sig[SIG_DISCLAIMERS] = eval_signal(w.v[2], w.v[3], n, SC_LEXICAL_DISCLAIMER_ABS, SC_LEXICAL_DISCLAIMER_RATIO, min_docs);
    sig[SIG_TURNS] = eval_signal(w.v[4], w.v[5], n, SC_LEXICAL_TURNS_ABS, SC_LEXICAL_TURNS_RATIO, min_docs);
    sig[SIG_LENGTH] = eval_signal(w.v[6], w.v[7], n, SC_LEXICAL_LENGTH_ABS, SC_LEXICAL_LENGTH_RATIO, min_docs);

    // term counts of both sides
    w.cc.in = &w.in;
    for (int i = 0; i < n; i++)
        for (int side = 0; side < 2; side++) {
            w.cc.item = i;
            w.cc.side = side;
            if (for_each_term(side ? &w.tb[i] : &w.to[i], &w.scratch, collect_term, &w.cc)) {
                st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory counting the words of batch %d", bi);
                goto done;
            }
        }
    int nf = w.in.n;
    if (nf > 0) {
        w.yo = calloc((size_t)nf, sizeof *w.yo);
        w.yb = calloc((size_t)nf, sizeof *w.yb);
        w.dout = calloc((size_t)nf, sizeof *w.dout);
        w.up = calloc((size_t)nf, sizeof *w.up);
        w.down = calloc((size_t)nf, sizeof *w.down);
        w.cands = malloc((size_t)nf * sizeof *w.cands);
        if (!w.yo || !w.yb || !w.dout || !w.up || !w.down || !w.cands) {
            st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory for %d terms", nf);
            goto done;
        }
        qsort(w.cc.occ, w.cc.n_occ, sizeof *w.cc.occ, occ_cmp);
        for (size_t i = 0; i < w.cc.n_occ;) {
            int f = w.cc.occ[i].f, item = w.cc.occ[i].item, co = 0, cb = 0;
            while (i < w.cc.n_occ && w.cc.occ[i].f == f && w.cc.occ[i].item == item) {
                if (w.cc.occ[i].side == 0) co++;
                else cb++;
                i++;
            }
            w.yo[f] += co;
            w.yb[f] += cb;
            w.dout[f] += co > 0;
            w.up[f] += co > cb;
            w.down[f] += co < cb;
        }
    }
    // sign-test threshold over all the batch's terms (Tarone), then the candidates
    int *hist = calloc((size_t)n + 1, sizeof *hist);
    if (!hist) { st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory"); goto done; }
    for (int f = 0; f < nf; f++) hist[w.up[f] + w.down[f]]++;
    p_thr = tarone_threshold(hist, n, SC_LEXICAL_TERMS_ALPHA);
    free(hist);
    int n_cands = 0;
    for (int f = 0; f < nf; f++) {
        if (w.dout[f] < min_docs || w.up[f] < min_docs) continue;
        if (sign_test_p(w.up[f], w.down[f]) > p_thr) continue;
        const char *s = in_str(&w.in, f);
        int bigram = strchr(s, ' ') != NULL;
        double z = log_odds_z(w.yo[f], w.cc.n_terms[bigram][0], w.yb[f], w.cc.n_terms[bigram][1]);
        if (z < SC_LEXICAL_Z_MIN) continue;
        w.cands[n_cands++] = (cand){f, z, s};
    }
    if (n_cands > 1) qsort(w.cands, (size_t)n_cands, sizeof *w.cands, cand_cmp);

    // quoted phrases: grow each candidate, skip those inside a phrase already quoted
    for (int c = 0; c < n_cands && n_quotes < SC_LEXICAL_MAX_QUOTES; c++) {
        int f = w.cands[c].f;
        phrase ph;
        memset(&ph, 0, sizeof ph);
        const toklist *t = &w.to[w.cc.first_item[f]];
        int last = w.cc.first_tok[f];
        ph.nw = strchr(w.cands[c].s, ' ') ? 2 : 1;
        for (int k = 0; k < ph.nw; k++) ph.w[k] = tok(t, last - ph.nw + 1 + k);
        ph.seed = w.cands[c].s;
        ph.z = w.cands[c].z;
        if (extend_phrase(&ph, w.to, n)) { st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory"); goto done; }
        int dup = 0;
        for (int q = 0; q < n_quotes && !dup; q++) dup = phrase_within(&ph, &quotes[q]);
        if (!dup && sig[SIG_DISCLAIMERS].dir > 0) {   // "i", "sorry": already said by the disclaimer clause
            int all = 1;
            for (int k = 0; k < ph.nw && all; k++)
                all = word_in_phrases(ph.w[k], disclaimers, (int)(sizeof disclaimers / sizeof *disclaimers));
            dup = all;
        }
        if (dup) continue;
        for (int i = 0; i < n; i++) {
            int co = ngram_count(&w.to[i], ph.w, ph.nw), cb = ngram_count(&w.tb[i], ph.w, ph.nw);
            ph.count_o += co;
            ph.count_b += cb;
            ph.docs_o += co > 0;
            ph.up += co > cb;
            ph.down += co < cb;
            if (co > cb) il_push(&prompts, b->items[i].prompt_id);
        }
        quotes[n_quotes++] = ph;
    }

    // signal clauses, in a fixed order
    for (int k = 0; k < N_SIG; k++) {
        const signal *s = &sig[k];
        if (!s->dir) continue;
        sbuf *c = &cl[n_clauses];
        switch (k) {
        case SIG_QUESTIONS:
            sb_printf(c, "ask %s questions (%.1f vs %.1f question marks per output)", s->dir > 0 ? "more" : "fewer", s->mean_o, s->mean_b);
            break;
        case SIG_DISCLAIMERS:
            if (s->dir > 0) sb_printf(c, "add AI disclaimers or refusals such as \"as an AI\" or \"I'm sorry\" (%.1f vs %.1f per output)", s->mean_o, s->mean_b);
            else sb_printf(c, "drop the AI disclaimers or refusals of the originals (%.1f vs %.1f per output)", s->mean_o, s->mean_b);
            break;
        case SIG_TURNS:
            if (s->dir > 0) sb_printf(c, "write new speaker turns such as \"User:\" (%.1f vs %.1f per output)", s->mean_o, s->mean_b);
            else sb_printf(c, "drop the speaker turns of the originals (%.1f vs %.1f per output)", s->mean_o, s->mean_b);
            break;
        case SIG_LENGTH:
            if (s->mean_o == 0) sb_printf(c, "are empty (the originals average %.0f words)", s->mean_b);
            else sb_printf(c, "are %s (%.0f vs %.0f words on average)", s->dir > 0 ? "longer" : "shorter", s->mean_o, s->mean_b);
            break;
        }
        for (int i = 0; i < n; i++) {
            double vo = w.v[2 * k][i], vb = w.v[2 * k + 1][i];
            if (s->dir > 0 ? vo > vb : vo < vb) il_push(&prompts, b->items[i].prompt_id);
        }
        n_clauses++;
    }
    if (n_quotes) {
        sbuf *c = &cl[n_clauses];
        sb_puts(c, "often use ");
        for (int q = 0; q < n_quotes; q++) {
            if (q > 0) sb_puts(c, q == n_quotes - 1 ? " and " : ", ");
            sb_putn(c, "\"", 1);
            sb_phrase(c, &quotes[q]);
            sb_putn(c, "\"", 1);
        }
        n_clauses++;
    }
    for (int k = 0; k < n_clauses; k++) {
        if (cl[k].oom) { st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory"); goto done; }
        clauses[k] = cl[k].s;
    }

    // reasoning: the numbers behind the decision
    sb_printf(&why, "Compared %d outputs with their originals (a feature must show in >= %d outputs). ", n, min_docs);
    static const char *const sig_names[N_SIG] = {"Question marks", "AI disclaimers", "Speaker turns", "Words"};
    for (int k = 0; k < N_SIG; k++) {
        if (sig[k].mean_o == 0 && sig[k].mean_b == 0) { sb_printf(&why, "%s: none. ", sig_names[k]); continue; }
        int dec = k == SIG_LENGTH ? 0 : 1;
        sb_printf(&why, "%s per output: %.*f vs %.*f (more in %d prompts, fewer in %d)%s. ", sig_names[k], dec,
                  sig[k].mean_o, dec, sig[k].mean_b, sig[k].up, sig[k].down, sig[k].dir ? ": passes" : "");
    }
    if (n_quotes) {
        sb_printf(&why, "Over-represented terms (log-odds z >= %.2f, sign test over prompts p <= %.2g; %d passed): ",
                  SC_LEXICAL_Z_MIN, p_thr, n_cands);
        for (int q = 0; q < n_quotes; q++) {
            if (q) sb_puts(&why, "; ");
            sb_putn(&why, "\"", 1);
            sb_phrase(&why, &quotes[q]);
            sb_printf(&why, "\" %d times in %d outputs vs %d in the originals, more than the original in %d prompts (z %.2f for \"%s\")",
                      quotes[q].count_o, quotes[q].docs_o, quotes[q].count_b, quotes[q].up, quotes[q].z, quotes[q].seed);
        }
        sb_puts(&why, ".");
    } else if (n_cands) {
        sb_printf(&why, "%d over-represented term%s, all covered by the clauses above.", n_cands, n_cands == 1 ? "" : "s");
    } else {
        sb_printf(&why, "No word or bigram is over-represented (log-odds z >= %.2f, in >= %d outputs, sign test over prompts p <= %.2g).",
                  SC_LEXICAL_Z_MIN, min_docs, p_thr);
    }
    if (!n_clauses) sb_puts(&why, " Nothing passed, so no theme.");

    if (n_clauses) {
        sb_puts(&theme, "Outputs ");
        sb_clauses(&theme, clauses, n_clauses);
        sb_putn(&theme, ".", 1);
    }
    if (theme.oom || why.oom || prompts.oom) { st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory"); goto done; }
    out->reasoning = sb_take(&why);
    out->theme = n_clauses ? sb_take(&theme) : NULL;
    if (n_clauses && prompts.n) {
        qsort(prompts.v, (size_t)prompts.n, sizeof *prompts.v, int_cmp);
        int m = 0;
        for (int i = 0; i < prompts.n; i++)
            if (m == 0 || prompts.v[i] != prompts.v[m - 1]) prompts.v[m++] = prompts.v[i];
        out->prompts = prompts.v;
        out->n_prompts = m;
        prompts.v = NULL;
    }
    if (!out->reasoning || (n_clauses && !out->theme)) st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory");

done:
    for (int k = 0; k < N_SIG + 1; k++) free(cl[k].s);
    free(theme.s);
    free(why.s);
    free(prompts.v);
    batch_work_free(&w, n);
    return st;
}

static sc_status lexical_themes(sc_provider *p, const sc_judge_batch *batches, int n, sc_judge_theme *out) {
    (void)p;
    if (n < 0) return sc_errorf(SC_ERR_ARG, "lexical judge: themes of %d batches; pass n >= 0", n);
    if (n > 0 && (!batches || !out))
        return sc_errorf(SC_ERR_ARG, "lexical judge: themes called with %s NULL; pass %d batches and room for %d answers",
                         !batches ? "batches" : "out", n, n);
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        sc_status st = theme_batch(&batches[i], i, &out[i]);
        if (st != SC_OK) {
            sc_judge_theme_free(&out[i]);
            out[i].status = st;
            out[i].error = sc_strdup(sc_last_error());
        }
    }
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// embed: TF-IDF over the call's texts.

typedef struct { interner *in; occ *occ; size_t n_occ, cap_occ; int item; } embed_ctx;

static int embed_term(void *vctx, const char *term, size_t n, int is_bigram, int tok_index) {
    (void)is_bigram;
    (void)tok_index;
    embed_ctx *c = vctx;
    int f = intern(c->in, term, n);
    if (f < 0) return -1;
    if (occ_push(&c->occ, &c->n_occ, &c->cap_occ, (occ){f, c->item, 0})) return -1;
    return 0;
}

// The vocabulary in byte order. qsort's comparator cannot take a context in C11 and a static
// would make concurrent calls race, so this is a merge sort that takes the interner.
static void sort_ids(int *ids, int *tmp, int n, const interner *in) {
    if (n < 2) return;
    int h = n / 2;
    sort_ids(ids, tmp, h, in);
    sort_ids(ids + h, tmp, n - h, in);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = strcmp(in_str(in, ids[i]), in_str(in, ids[j])) <= 0 ? ids[i++] : ids[j++];
    while (i < h) tmp[k++] = ids[i++];
    while (j < n) tmp[k++] = ids[j++];
    memcpy(ids, tmp, (size_t)n * sizeof *ids);
}

static sc_status lexical_embed(sc_provider *p, const char *const *texts, int n, float **vecs, int *dim) {
    (void)p;
    if (!vecs || !dim) return sc_errorf(SC_ERR_ARG, "lexical judge: embed needs vecs and dim to write to");
    *vecs = NULL;
    *dim = 0;
    if (n < 0) return sc_errorf(SC_ERR_ARG, "lexical judge: embed of %d texts; pass n >= 0", n);
    if (n == 0) return SC_OK;
    if (!texts) return sc_errorf(SC_ERR_ARG, "lexical judge: embed of %d texts with texts = NULL", n);
    for (int i = 0; i < n; i++)
        if (!texts[i]) return sc_errorf(SC_ERR_ARG, "lexical judge: embed: text %d is NULL; pass \"\" for an empty text", i);

    sc_status st = SC_OK;
    interner in;
    memset(&in, 0, sizeof in);
    embed_ctx c = {&in, NULL, 0, 0, 0};
    toklist t;
    memset(&t, 0, sizeof t);
    sbuf scratch = {0};
    int *ids = NULL, *tmp = NULL, *rank = NULL, *df = NULL;
    float *v = NULL;
    for (int i = 0; i < n; i++) {
        if ((st = tokenize(texts[i], &t))) goto done;
        c.item = i;
        if (for_each_term(&t, &scratch, embed_term, &c)) {
            st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory collecting the terms of text %d", i);
            goto done;
        }
    }
    int nv = in.n, d = nv > 0 ? nv : 1;
    if ((size_t)n > SIZE_MAX / sizeof(float) / (size_t)d) {
        st = sc_errorf(SC_ERR_MEM, "lexical judge: %d texts x %d terms is too large to embed", n, d);
        goto done;
    }
    ids = malloc((size_t)d * sizeof *ids);
    tmp = malloc((size_t)d * sizeof *tmp);
    rank = malloc((size_t)d * sizeof *rank);
    df = calloc((size_t)d, sizeof *df);
    v = calloc((size_t)n * (size_t)d, sizeof *v);
    if (!ids || !tmp || !rank || !df || !v) {
        st = sc_errorf(SC_ERR_MEM, "lexical judge: out of memory for %d x %d embeddings", n, d);
        goto done;
    }
    for (int i = 0; i < nv; i++) ids[i] = i;
    sort_ids(ids, tmp, nv, &in);
    for (int r = 0; r < nv; r++) rank[ids[r]] = r;
    if (c.n_occ > 1) qsort(c.occ, c.n_occ, sizeof *c.occ, occ_cmp);   // by term, then text
    for (size_t i = 0; i < c.n_occ;) {
        size_t j = i;
        while (j < c.n_occ && c.occ[j].f == c.occ[i].f && c.occ[j].item == c.occ[i].item) j++;
        df[c.occ[i].f]++;
        i = j;
    }
    for (size_t i = 0; i < c.n_occ;) {
        size_t j = i;
        while (j < c.n_occ && c.occ[j].f == c.occ[i].f && c.occ[j].item == c.occ[i].item) j++;
        int f = c.occ[i].f;
        double tf = 1.0 + log((double)(j - i));
        double idf = 1.0 + log((1.0 + n) / (1.0 + df[f]));
        v[(size_t)c.occ[i].item * (size_t)d + (size_t)rank[f]] = (float)(tf * idf);
        i = j;
    }
    // L2 normalisation in double (from the float weights' exact double values)
    for (int i = 0; i < n; i++) {
        float *x = v + (size_t)i * (size_t)d;
        double ss = 0;
        for (int k = 0; k < d; k++) ss += (double)x[k] * x[k];
        if (ss > 0) {
            double inv = 1.0 / sqrt(ss);
            for (int k = 0; k < d; k++) x[k] = (float)(x[k] * inv);
        }
    }
    *vecs = v;
    *dim = d;
    v = NULL;
done:
    free(ids); free(tmp); free(rank); free(df); free(v);
    free(c.occ);
    in_free(&in);
    tl_free(&t);
    free(scratch.s);
    return st;
}

// ---------------------------------------------------------------------------------------
// compare: lexicon rate per 100 words.

static const char *const empathetic_lex[] = {
    "feel", "feels", "feeling", "feelings", "felt", "understand", "understandable", "understandably",
    "understanding", "sorry", "so sorry", "i'm sorry", "hear you", "i hear you", "must be hard",
    "must be difficult", "must be tough", "must be painful", "must be exhausting", "must be frustrating",
    "must feel", "that sounds", "it sounds like", "sounds like", "sounds hard", "sounds difficult",
    "hard", "difficult", "tough", "painful", "overwhelming", "overwhelmed", "frustrating",
    "frustrated", "stressful", "stressed", "exhausting", "exhausted", "lonely", "scary", "scared",
    "heartbreaking", "valid", "okay to", "ok to", "normal to", "natural to", "makes sense",
    "not alone", "here for you", "i'm here", "care", "cares", "caring", "support", "supported",
    "compassion", "empathy", "gentle", "be kind to yourself", "kind to yourself", "take care",
    "listen", "listening", "going through", "struggle", "struggling", "grief", "grieving", "sad",
    "sadness", "hurt", "hurts", "worried", "worry", "anxious", "anxiety", "comfort", "deserve",
    "deserves", "you're not alone", "that's a lot", "a lot to handle",
};

static const char *const prescriptive_lex[] = {
    "should", "shouldn't", "must", "mustn't", "need to", "needs to", "have to", "has to",
    "got to", "ought to", "try", "make sure", "be sure to", "ensure", "remember to",
    "don't forget", "avoid", "never", "always", "it's important to", "it is important to",
    "i recommend", "i suggest", "i'd recommend", "i would recommend", "recommended", "you'll want to",
    "best to", "the key is", "do not", "required", "you need",
};

// Imperative verbs, counted only as the first word of a sentence (a line item counts: "1. Start").
static const char *const imperative_starts[] = {
    "add", "apply", "ask", "avoid", "begin", "break", "bring", "build", "call", "check", "choose",
    "close", "consider", "contact", "create", "cut", "do", "don't", "drink", "drop", "eat",
    "exercise", "find", "focus", "follow", "get", "give", "go", "hold", "install", "keep", "learn",
    "leave", "let", "limit", "list", "look", "make", "move", "note", "open", "pick", "place", "plan",
    "practice", "practise", "prepare", "put", "reach", "read", "reduce", "remember", "remove",
    "replace", "review", "run", "save", "schedule", "seek", "set", "share", "show", "sleep",
    "speak", "spend", "start", "stay", "stop", "take", "talk", "tell", "test", "think", "track",
    "turn", "use", "visit", "wait", "wash", "watch", "work", "write",
};

typedef struct {
    const char *const *lex; int n_lex;
    const char *const *starts; int n_starts;
    char **own; int n_own;   // the trait's own words and inflections (unknown traits)
} trait_lexicon;

static void trait_lexicon_free(trait_lexicon *L) {
    for (int i = 0; i < L->n_own; i++) free(L->own[i]);
    free(L->own);
    memset(L, 0, sizeof *L);
}

static int own_add(trait_lexicon *L, int cap, const char *stem, size_t n, const char *suffix) {
    if (L->n_own >= cap) return 0;
    size_t m = strlen(suffix);
    char *s = malloc(n + m + 1);
    if (!s) return -1;
    memcpy(s, stem, n);
    memcpy(s + n, suffix, m + 1);
    for (int i = 0; i < L->n_own; i++)
        if (!strcmp(L->own[i], s)) { free(s); return 0; }
    L->own[L->n_own++] = s;
    return 0;
}

static const char *const trait_stop[] = {"more", "less", "very", "and", "or", "a", "an", "the", "being", "is", "of", "to", "in"};

static sc_status trait_lexicon_make(const char *trait, trait_lexicon *L) {
    memset(L, 0, sizeof *L);
    toklist t;
    memset(&t, 0, sizeof t);
    sc_status st = tokenize(trait, &t);
    if (st) return st;
    // the trait's one content word ("more empathetic" -> "empathetic"), "" when not exactly one
    const char *one = "";
    int n_content = 0;
    for (int i = 0; i < t.n; i++) {
        int stop = 0;
        for (size_t k = 0; k < sizeof trait_stop / sizeof *trait_stop; k++) stop |= !strcmp(tok(&t, i), trait_stop[k]);
        if (!stop) { one = tok(&t, i); n_content++; }
    }
    if (n_content != 1) one = "";
    if (!strcmp(one, "empathetic") || !strcmp(one, "empathic") || !strcmp(one, "empathy") || !strcmp(one, "compassionate")) {
        L->lex = empathetic_lex;
        L->n_lex = (int)(sizeof empathetic_lex / sizeof *empathetic_lex);
    } else if (!strcmp(one, "prescriptive") || !strcmp(one, "directive") || !strcmp(one, "instructive")) {
        L->lex = prescriptive_lex;
        L->n_lex = (int)(sizeof prescriptive_lex / sizeof *prescriptive_lex);
        L->starts = imperative_starts;
        L->n_starts = (int)(sizeof imperative_starts / sizeof *imperative_starts);
    } else {
        // weak: the trait's own words and their simple inflections ("sarcastic": sarcastic,
        // sarcastically, ...); a response that shows the trait without naming it scores 0
        const int cap = 16 * (t.n + 1);
        L->own = calloc((size_t)cap, sizeof *L->own);
        if (!L->own) { tl_free(&t); return sc_errorf(SC_ERR_MEM, "lexical judge: out of memory"); }
        int bad = 0;
        for (int i = 0; i < t.n && !bad; i++) {
            const char *w = tok(&t, i);
            size_t n = strlen(w);
            int stop = 0;
            for (size_t k = 0; k < sizeof trait_stop / sizeof *trait_stop; k++) stop |= !strcmp(w, trait_stop[k]);
            if (stop) continue;
            static const char *const suf[] = {"", "s", "es", "ly", "ness", "ed", "ing", "er", "est"};
            for (size_t k = 0; k < sizeof suf / sizeof *suf && !bad; k++) bad = own_add(L, cap, w, n, suf[k]);
            if (n > 2 && w[n - 1] == 'e') {           // polite -> politely, politeness; care -> caring
                bad = bad || own_add(L, cap, w, n - 1, "ing") || own_add(L, cap, w, n - 1, "ed");
            }
            if (n > 2 && w[n - 1] == 'y') {           // happy -> happily, happiness, happier
                bad = bad || own_add(L, cap, w, n - 1, "ily") || own_add(L, cap, w, n - 1, "iness") ||
                      own_add(L, cap, w, n - 1, "ier") || own_add(L, cap, w, n - 1, "ies");
            }
            if (n > 2 && w[n - 2] == 'i' && w[n - 1] == 'c') bad = bad || own_add(L, cap, w, n, "ally");   // sarcastically
        }
        if (bad) { tl_free(&t); trait_lexicon_free(L); return sc_errorf(SC_ERR_MEM, "lexical judge: out of memory"); }
        L->lex = (const char *const *)L->own;
        L->n_lex = L->n_own;
    }
    tl_free(&t);
    return SC_OK;
}

static int trait_hits(const toklist *t, const trait_lexicon *L) {
    return lexicon_hits(t, L->lex, L->n_lex, L->starts, L->n_starts);
}

sc_status sc_lexical_trait_score(const char *text, const char *trait, int *hits, int *words,
                                 double *per_100_words, int *builtin) {
    if (!trait) return sc_errorf(SC_ERR_ARG, "lexical judge: trait is NULL; name the trait (e.g. \"empathetic\")");
    trait_lexicon L;
    SC_TRY(trait_lexicon_make(trait, &L));
    toklist t;
    memset(&t, 0, sizeof t);
    sc_status st = tokenize(text, &t);
    if (st == SC_OK) {
        int h = trait_hits(&t, &L);
        if (hits) *hits = h;
        if (words) *words = t.n;
        if (per_100_words) *per_100_words = t.n ? 100.0 * h / t.n : 0.0;
        if (builtin) *builtin = L.own == NULL;
    }
    tl_free(&t);
    trait_lexicon_free(&L);
    return st;
}

// 1 when b is the more-TRAIT response: higher rate (hits/words compared as integer cross
// products, so equal rates are exactly equal), then more words, more bytes, byte order.
static int b_wins(long long ha, long long wa, const char *a, long long hb, long long wb, const char *b) {
    long long sa = ha * (wb > 0 ? wb : 1), sb = hb * (wa > 0 ? wa : 1);
    if (sa != sb) return sb > sa;
    if (wa != wb) return wb > wa;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return lb > la;
    return strcmp(b, a) < 0;
}

static sc_status lexical_compare(sc_provider *p, const sc_judge_pair *pairs, int n, sc_judge_verdict *out) {
    (void)p;
    if (n < 0) return sc_errorf(SC_ERR_ARG, "lexical judge: compare of %d pairs; pass n >= 0", n);
    if (n > 0 && (!pairs || !out))
        return sc_errorf(SC_ERR_ARG, "lexical judge: compare called with %s NULL", !pairs ? "pairs" : "out");
    toklist ta, tb;
    memset(&ta, 0, sizeof ta);
    memset(&tb, 0, sizeof tb);
    for (int i = 0; i < n; i++) {
        const sc_judge_pair *q = &pairs[i];
        sc_judge_verdict *v = &out[i];
        memset(v, 0, sizeof *v);
        sc_status st = SC_OK;
        trait_lexicon L;
        memset(&L, 0, sizeof L);
        if (!q->a || !q->b) st = sc_errorf(SC_ERR_ARG, "lexical judge: pair %d: response %s is NULL", i, !q->a ? "a" : "b");
        else if (!q->trait || !*q->trait)
            st = sc_errorf(SC_ERR_ARG, "lexical judge: pair %d: no trait; name the trait to compare on (e.g. \"empathetic\")", i);
        else if ((st = trait_lexicon_make(q->trait, &L)) == SC_OK && L.n_lex == 0)
            st = sc_errorf(SC_ERR_ARG, "lexical judge: pair %d: trait \"%s\" has no words to look for; name it with a word such as \"empathetic\"", i, q->trait);
        if (st == SC_OK && (st = tokenize(q->a, &ta)) == SC_OK && (st = tokenize(q->b, &tb)) == SC_OK)
            v->winner = b_wins(trait_hits(&ta, &L), ta.n, q->a, trait_hits(&tb, &L), tb.n, q->b);
        trait_lexicon_free(&L);
        if (st != SC_OK) {
            v->status = st;
            v->error = sc_strdup(sc_last_error());
        }
    }
    tl_free(&ta);
    tl_free(&tb);
    return SC_OK;
}

sc_status sc_lexical_words(const char *text, char **out, int *n_words) {
    if (!out) return sc_errorf(SC_ERR_ARG, "sc_lexical_words: out is NULL");
    *out = NULL;
    toklist t;
    memset(&t, 0, sizeof t);
    sc_status st = tokenize(text, &t);
    sbuf b = {0};
    for (int i = 0; st == SC_OK && i < t.n; i++) {
        if (i) sb_putn(&b, " ", 1);
        sb_puts(&b, tok(&t, i));
    }
    if (st == SC_OK) {
        *out = sb_take(&b);
        if (!*out) st = sc_errorf(SC_ERR_MEM, "sc_lexical_words: out of memory");
        else if (n_words) *n_words = t.n;
    }
    free(b.s);
    tl_free(&t);
    return st;
}

// ---------------------------------------------------------------------------------------
// The provider

static void lexical_free(sc_provider *p) { free(p); }

static const sc_provider_ops lexical_ops = {
    .themes = lexical_themes,
    .embed = lexical_embed,
    .compare = lexical_compare,
    .free = lexical_free,
};

sc_status sc_provider_lexical(sc_provider **out) {
    if (!out) return sc_errorf(SC_ERR_ARG, "sc_provider_lexical: out is NULL");
    *out = NULL;
    sc_provider *p = sc_calloc(1, sizeof *p, "the lexical judge provider");
    if (!p) return SC_ERR_MEM;
    p->op = &lexical_ops;
    p->name = "lexical";
    snprintf(p->model, sizeof p->model, "lexical-1");
    snprintf(p->embed_model, sizeof p->embed_model, "tfidf-1");
    *out = p;
    return SC_OK;
}
