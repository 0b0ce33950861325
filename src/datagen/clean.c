// clean.c — the dataset generator's cleaning, prompt building and split (see
// steerclear/datagen.h): one opener's checks, normalised text (NFKC + case folding via
// utf8proc), character-shingle sets and their Jaccard similarity, the pools of kept openers with
// their duplicate checks, the prompts in the dataset format, the seeded split and the CSV field
// writer. Leaves out: judging what an opener says (tone, topic, safety): that is the
// generator's prompt's job.
#include "steerclear/datagen.h"
#include "steerclear/rng.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

static const char *const reason_names[SC_DROP_N] = {
    "kept", "empty", "too_short", "too_long", "line_break", "encoding", "chat_token", "role_marker", "speaker",
    "duplicate", "near_duplicate", "surplus",
};

const char *sc_drop_reason_name(sc_drop_reason r) { return r >= 0 && r < SC_DROP_N ? reason_names[r] : "unknown"; }

void sc_clean_opts_default(sc_clean_opts *o) {
    o->min_chars = 20;
    o->max_chars = 400;
    o->jaccard = 0.5;
    o->shingle = 5;
}

// ---------------------------------------------------------------------------------------
// Normalised text and shingles

static int is_word_char(utf8proc_int32_t cp) {
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC:
        return 1;
    default:
        return 0;
    }
}

sc_status sc_datagen_normalise(const char *text, char **out) {
    *out = NULL;
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, 0, &folded,
                                      UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
    if (n < 0) return sc_errorf(SC_ERR_FORMAT, "normalising an opener: %s", utf8proc_errmsg(n));
    char *o = sc_malloc((size_t)n + 1, "normalised text");
    if (!o) { free(folded); return SC_ERR_MEM; }
    size_t w = 0;
    int pending_space = 0;
    for (utf8proc_ssize_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(folded + i, n - i, &cp);
        if (k <= 0) break;
        if (is_word_char(cp)) {
            if (pending_space && w) o[w++] = ' ';
            pending_space = 0;
            memcpy(o + w, folded + i, (size_t)k);
            w += (size_t)k;
        } else {
            pending_space = 1;
        }
        i += k;
    }
    o[w] = '\0';
    free(folded);
    *out = o;
    return SC_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

// FNV-1a over a byte span
static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h;
}

sc_status sc_shingles_make(const char *norm, int k, sc_shingles *out) {
    out->h = NULL;
    out->n = 0;
    if (k < 1) return sc_errorf(SC_ERR_ARG, "shingles of %d characters: must be at least 1", k);
    size_t len = strlen(norm);
    // byte offsets of every character start, plus the end
    size_t *start = sc_malloc(sizeof *start * (len + 2), "shingle offsets");
    if (!start) return SC_ERR_MEM;
    int nc = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)norm[i] & 0xC0) != 0x80) start[nc++] = i;
    start[nc] = len;
    int ns = nc >= k ? nc - k + 1 : 1;
    out->h = sc_malloc(sizeof *out->h * (size_t)ns, "shingles");
    if (!out->h) { free(start); return SC_ERR_MEM; }
    if (nc < k) out->h[0] = fnv1a(norm, len);
    else for (int i = 0; i < ns; i++) out->h[i] = fnv1a(norm + start[i], start[i + k] - start[i]);
    free(start);
    qsort(out->h, (size_t)ns, sizeof *out->h, cmp_u64);
    int u = 0;
    for (int i = 0; i < ns; i++)
        if (i == 0 || out->h[i] != out->h[u - 1]) out->h[u++] = out->h[i];
    out->n = u;
    return SC_OK;
}

double sc_shingles_jaccard(const sc_shingles *a, const sc_shingles *b) {
    if (a->n == 0 && b->n == 0) return 1.0;
    int i = 0, j = 0, inter = 0;
    while (i < a->n && j < b->n) {
        if (a->h[i] == b->h[j]) { inter++; i++; j++; }
        else if (a->h[i] < b->h[j]) i++;
        else j++;
    }
    return (double)inter / (double)(a->n + b->n - inter);
}

void sc_shingles_free(sc_shingles *s) {
    if (!s) return;
    free(s->h);
    s->h = NULL;
    s->n = 0;
}

// ---------------------------------------------------------------------------------------
// One opener's checks

// [a, a+n) trimmed of spaces, and of one pair of surrounding quotes ("...", “...”, '...').
static void trim_span(const char *s, const char **a_out, size_t *n_out) {
    const char *a = s;
    size_t n = strlen(s);
    for (int pass = 0; pass < 2; pass++) {
        while (n && (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r')) { a++; n--; }
        while (n && (a[n - 1] == ' ' || a[n - 1] == '\t' || a[n - 1] == '\n' || a[n - 1] == '\r')) n--;
        if (pass) break;
        if (n >= 2 && ((a[0] == '"' && a[n - 1] == '"') || (a[0] == '\'' && a[n - 1] == '\''))) { a++; n -= 2; }
        else if (n >= 6 && !strncmp(a, "\xE2\x80\x9C", 3) && !strncmp(a + n - 3, "\xE2\x80\x9D", 3)) { a += 3; n -= 6; }
    }
    *a_out = a;
    *n_out = n;
}

static char *dup_span(const char *a, size_t n) {
    char *s = malloc(n + 1);
    if (s) { memcpy(s, a, n); s[n] = '\0'; }
    return s;
}

// Case-insensitive (ASCII) search for needle in hay.
static const char *find_ci(const char *hay, const char *needle) {
    size_t nl = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (!strncasecmp(p, needle, nl)) return p;
    return NULL;
}

// "NAME:" where NAME is the role (case-insensitive), at the start or after a non-letter.
static int has_marker(const char *text, const char *name) {
    size_t nl = strlen(name);
    for (const char *p = text; (p = find_ci(p, name)); p++) {
        const int start_ok = p == text || !((p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z'));
        const char *q = p + nl;
        while (*q == ' ') q++;
        if (start_ok && *q == ':') return 1;
    }
    return 0;
}

static const char *const chat_tokens[] = {
    "<|", "|>", "[INST]", "[/INST]", "<s>", "</s>", "<start_of_turn>", "<end_of_turn>", "<think>", "</think>",
    "### Instruction", "### Response", NULL,
};

sc_drop_reason sc_opener_check(const sc_scenario *sc, const char *speaker, const char *text, const sc_clean_opts *o,
                               int *speaker_role) {
    *speaker_role = -1;
    const char *a;
    size_t n;
    trim_span(text ? text : "", &a, &n);
    if (n == 0) return SC_DROP_EMPTY;
    char *t = dup_span(a, n);
    if (!t) return SC_DROP_N;
    sc_drop_reason r = SC_DROP_NONE;
    for (size_t i = 0; i < n && r == SC_DROP_NONE;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)t + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) r = SC_DROP_ENCODING;
        i += k > 0 ? (size_t)k : 1;
    }
    for (const char *const *c = chat_tokens; *c && r == SC_DROP_NONE; c++)
        if (find_ci(t, *c)) r = SC_DROP_CHAT_TOKEN;
    static const char *const generic[] = {"user", "assistant", "system", NULL};
    if (r == SC_DROP_NONE && (has_marker(t, sc->roles[0]) || has_marker(t, sc->roles[1]))) r = SC_DROP_ROLE_MARKER;
    for (const char *const *g = generic; *g && r == SC_DROP_NONE; g++) {
        size_t gl = strlen(*g);
        // only at the start of the text or of a line: "user:" inside a sentence is speech
        for (const char *p = t; p && r == SC_DROP_NONE; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
            if (!strncasecmp(p, *g, gl) && p[gl] == ':') r = SC_DROP_ROLE_MARKER;
    }
    if (r == SC_DROP_NONE && (strchr(t, '\n') || strchr(t, '\r'))) r = SC_DROP_LINE_BREAK;
    if (r == SC_DROP_NONE) {
        long chars = 0;
        for (const char *p = t; *p; p++) chars += ((unsigned char)*p & 0xC0) != 0x80;
        if (chars < o->min_chars) r = SC_DROP_TOO_SHORT;
        else if (chars > o->max_chars) r = SC_DROP_TOO_LONG;
    }
    free(t);
    if (r != SC_DROP_NONE) return r;
    // the speaker: one of the two roles (case and surrounding spaces or a trailing ':' aside)
    const char *sa;
    size_t sn;
    trim_span(speaker ? speaker : "", &sa, &sn);
    if (sn && sa[sn - 1] == ':') sn--;
    for (int k = 0; k < 2; k++)
        if (sn == strlen(sc->roles[k]) && !strncasecmp(sa, sc->roles[k], sn)) { *speaker_role = k; return SC_DROP_NONE; }
    return SC_DROP_SPEAKER;
}

// ---------------------------------------------------------------------------------------
// Pools

void sc_pool_free(sc_opener_pool *pool) {
    if (!pool) return;
    for (int i = 0; i < pool->n; i++) {
        free(pool->items[i].text);
        free(pool->items[i].norm);
        sc_shingles_free(&pool->items[i].sh);
    }
    free(pool->items);
    memset(pool, 0, sizeof *pool);
}

// The first opener of `pool` that norm/sh duplicates: SC_DROP_DUPLICATE or _NEAR_DUPLICATE, or
// SC_DROP_NONE. `limit`: only the first `limit` openers (-1: all).
static sc_drop_reason find_similar(const sc_opener_pool *pool, int limit, const char *norm, const sc_shingles *sh, double thr,
                                   int *idx, double *sim) {
    const int n = limit >= 0 && limit < pool->n ? limit : pool->n;
    for (int i = 0; i < n; i++)
        if (!strcmp(pool->items[i].norm, norm)) { *idx = i; *sim = 1.0; return SC_DROP_DUPLICATE; }
    for (int i = 0; i < n; i++) {
        double j = sc_shingles_jaccard(&pool->items[i].sh, sh);
        if (j >= thr) { *idx = i; *sim = j; return SC_DROP_NEAR_DUPLICATE; }
    }
    return SC_DROP_NONE;
}

sc_drop_reason sc_pool_offer(sc_opener_pool *pool, const sc_opener_pool *const *others, int n_others, const sc_scenario *sc,
                             const char *speaker, const char *text, const sc_clean_opts *o, int *similar_pool, int *similar,
                             double *sim) {
    *similar_pool = *similar = -1;
    *sim = 0;
    int role;
    sc_drop_reason r = sc_opener_check(sc, speaker, text, o, &role);
    if (r != SC_DROP_NONE) {
        if (r == SC_DROP_N) sc_errorf(SC_ERR_MEM, "out of memory checking an opener");
        return r;
    }
    const char *a;
    size_t n;
    trim_span(text, &a, &n);
    sc_opener op = {.role = role};
    if (!(op.text = dup_span(a, n))) { sc_errorf(SC_ERR_MEM, "out of memory keeping an opener"); return SC_DROP_N; }
    if (sc_datagen_normalise(op.text, &op.norm) || sc_shingles_make(op.norm, o->shingle, &op.sh)) {
        free(op.text); free(op.norm);
        return SC_DROP_N;
    }
    for (int k = -1; k < n_others && r == SC_DROP_NONE; k++) {
        const sc_opener_pool *q = k < 0 ? pool : others[k];
        r = find_similar(q, -1, op.norm, &op.sh, o->jaccard, similar, sim);
        if (r != SC_DROP_NONE) *similar_pool = k;
    }
    if (r != SC_DROP_NONE) {
        free(op.text); free(op.norm); sc_shingles_free(&op.sh);
        return r;
    }
    if (pool->n == pool->cap) {
        int cap = pool->cap ? 2 * pool->cap : 32;
        sc_opener *items = realloc(pool->items, sizeof *items * (size_t)cap);
        if (!items) { free(op.text); free(op.norm); sc_shingles_free(&op.sh); sc_errorf(SC_ERR_MEM, "out of memory keeping an opener"); return SC_DROP_N; }
        pool->items = items;
        pool->cap = cap;
    }
    pool->items[pool->n++] = op;
    return SC_DROP_NONE;
}

static sc_status add_dropped(sc_datagen_result *res, const sc_dropped *d) {
    if (res->n_dropped == res->cap_dropped) {
        int cap = res->cap_dropped ? 2 * res->cap_dropped : 64;
        sc_dropped *v = realloc(res->dropped, sizeof *v * (size_t)cap);
        if (!v) return sc_errorf(SC_ERR_MEM, "out of memory recording a dropped opener");
        res->dropped = v;
        res->cap_dropped = cap;
    }
    res->dropped[res->n_dropped++] = *d;
    return SC_OK;
}

sc_status sc_datagen_cross_check(const sc_scenarios *sc, const sc_clean_opts *o, sc_datagen_result *res) {
    for (int s = 1; s < res->n; s++) {
        sc_opener_pool *pool = &res->pools[s];
        for (int i = 0; i < pool->n;) {
            sc_opener *op = &pool->items[i];
            sc_drop_reason r = SC_DROP_NONE;
            int idx = -1, ps = -1;
            double sim = 0;
            for (int q = 0; q < s && r == SC_DROP_NONE; q++) {
                r = find_similar(&res->pools[q], -1, op->norm, &op->sh, o->jaccard, &idx, &sim);
                if (r != SC_DROP_NONE) ps = q;
            }
            if (r == SC_DROP_NONE) { i++; continue; }
            sc_dropped d = {.scenario = s, .request = -1, .speaker = sc_strdup(sc->items[s].roles[op->role]), .text = op->text,
                            .reason = r, .similar_scenario = ps, .similar_text = sc_strdup(res->pools[ps].items[idx].text), .similarity = sim};
            if (!d.speaker || !d.similar_text) { free(d.speaker); free(d.similar_text); return sc_errorf(SC_ERR_MEM, "out of memory"); }
            sc_status st = add_dropped(res, &d);
            if (st) { free(d.speaker); free(d.similar_text); return st; }
            free(op->norm);
            sc_shingles_free(&op->sh);
            memmove(&pool->items[i], &pool->items[i + 1], sizeof *op * (size_t)(pool->n - i - 1));
            pool->n--;
            res->stats[s].kept = pool->n;
        }
    }
    return SC_OK;
}

// Exposed to openers.c through this file's twin declaration there.
sc_status sc_datagen_add_dropped(sc_datagen_result *res, const sc_dropped *d);
sc_status sc_datagen_add_dropped(sc_datagen_result *res, const sc_dropped *d) { return add_dropped(res, d); }

// ---------------------------------------------------------------------------------------
// Prompts

sc_status sc_opener_prompts(const sc_scenario *sc, const sc_opener *op, char **full_prompt, char **prompt) {
    *full_prompt = *prompt = NULL;
    const char *speaker = sc->roles[op->role], *listener = sc->roles[1 - op->role];
    static const char fmt[] = "<|im_start|>%s\n%s\n<|im_end|>\n\n<|im_start|>%s";
    int n = snprintf(NULL, 0, fmt, speaker, op->text, listener);
    size_t cl = strlen(sc->context);
    *prompt = sc_malloc((size_t)n + 1, "a prompt");
    *full_prompt = sc_malloc(cl + 1 + (size_t)n + 1, "a prompt");
    if (!*prompt || !*full_prompt) { free(*prompt); free(*full_prompt); *prompt = *full_prompt = NULL; return SC_ERR_MEM; }
    snprintf(*prompt, (size_t)n + 1, fmt, speaker, op->text, listener);
    memcpy(*full_prompt, sc->context, cl);
    (*full_prompt)[cl] = '\n';
    memcpy(*full_prompt + cl + 1, *prompt, (size_t)n + 1);
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Split

// A seeded permutation of 0..n-1 (Fisher-Yates; draw i from (seed, stream, i)).
static void permute(int *v, int n, uint64_t seed, uint64_t stream) {
    for (int i = 0; i < n; i++) v[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(sc_rng_uniform(seed, stream, (uint64_t)i) * (float)(i + 1));
        if (j > i) j = i;
        int t = v[i]; v[i] = v[j]; v[j] = t;
    }
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

#define HOLDOUT_STREAM 0x686f6c646f7574ull   // "holdout": apart from the per-scenario streams

sc_status sc_split_make(const sc_split_opts *o, const int *counts, int n_scenarios, sc_split_row **train, int *n_train,
                        sc_split_row **test, int *n_test) {
    *train = *test = NULL;
    *n_train = *n_test = 0;
    int total = 0, most = 1;
    for (int s = 0; s < n_scenarios; s++) { total += counts[s]; if (counts[s] > most) most = counts[s]; }
    if (o->kind == SC_SPLIT_HOLDOUT && (o->holdout < 1 || o->holdout >= n_scenarios))
        return sc_errorf(SC_ERR_ARG, "split: holding out %d of %d scenarios: hold out at least 1 and leave at least 1 for training", o->holdout, n_scenarios);
    if (o->kind == SC_SPLIT_STRATIFIED && (o->train_per < 1 || o->test_per < 1))
        return sc_errorf(SC_ERR_ARG, "split: %d train and %d test openers per scenario: both must be at least 1", o->train_per, o->test_per);
    sc_split_row *tr = sc_calloc((size_t)total + 1, sizeof *tr, "the split"), *te = sc_calloc((size_t)total + 1, sizeof *te, "the split");
    int *perm = sc_malloc(sizeof *perm * (size_t)(most > n_scenarios ? most : n_scenarios), "a permutation");
    int *test_scen = sc_calloc((size_t)n_scenarios, sizeof *test_scen, "the split");
    if (!tr || !te || !perm || !test_scen) { free(tr); free(te); free(perm); free(test_scen); return SC_ERR_MEM; }
    if (o->kind == SC_SPLIT_HOLDOUT) {
        permute(perm, n_scenarios, o->seed, HOLDOUT_STREAM);
        for (int k = 0; k < o->holdout; k++) test_scen[perm[k]] = 1;
    }
    for (int s = 0; s < n_scenarios; s++) {
        const int c = counts[s];
        if (o->kind == SC_SPLIT_HOLDOUT) {
            for (int j = 0; j < c; j++) {
                if (test_scen[s]) te[(*n_test)++] = (sc_split_row){s, j};
                else tr[(*n_train)++] = (sc_split_row){s, j};
            }
            continue;
        }
        permute(perm, c, o->seed, (uint64_t)s);
        int nt = c - 1 < o->test_per ? c - 1 : o->test_per;
        if (nt < 0) nt = 0;
        int nr = c - nt < o->train_per ? c - nt : o->train_per;
        qsort(perm, (size_t)nt, sizeof *perm, cmp_int);
        qsort(perm + nt, (size_t)nr, sizeof *perm, cmp_int);
        for (int j = 0; j < nt; j++) te[(*n_test)++] = (sc_split_row){s, perm[j]};
        for (int j = 0; j < nr; j++) tr[(*n_train)++] = (sc_split_row){s, perm[nt + j]};
    }
    free(perm);
    free(test_scen);
    *train = tr;
    *test = te;
    return SC_OK;
}

void sc_csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}
