// report_internal.h — what report.c (gathering the run, writing report.md) and figures.c
// (gnuplot scripts, data files, drawing) share: a growable text buffer with the two escapers
// untrusted text goes through, the run's quantify records, and the figure set.
#ifndef STEERCLEAR_REPORT_INTERNAL_H
#define STEERCLEAR_REPORT_INTERNAL_H

#include "steerclear/results.h"

#include <cjson/cJSON.h>
#include <math.h>

// --- Text ---------------------------------------------------------------------------------------

// A growable NUL-terminated buffer. An allocation failure sets `failed` and drops the rest, so
// callers append freely and check once (sc_sb_check).
typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} sc_sb;

void sc_sb_putn(sc_sb *b, const char *s, size_t n);
void sc_sb_puts(sc_sb *b, const char *s);
void sc_sb_printf(sc_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sc_sb_free(sc_sb *b);
sc_status sc_sb_check(const sc_sb *b, const char *what);
const char *sc_sb_str(const sc_sb *b);     // "" when empty

// A gnuplot string literal, quotes included, of untrusted text: single-quoted (gnuplot does
// no backslash, backquote or macro substitution there; a quote is doubled), control
// characters and line breaks as spaces, characters the figures' font lacks (CJK, emoji, invalid
// UTF-8) as '?', at most max_chars characters (then "..."). Scripts set `noenhanced`, so
// ^ _ @ { } stay literal.
void sc_sb_gp_string(sc_sb *b, const char *s, size_t max_chars);
// Untrusted text as inline markdown that stays inside one table cell: line breaks and control
// characters as spaces (runs collapsed, ends trimmed), | \ ` * _ ~ [ ] $ escaped with a
// backslash, < > & as HTML entities (no tags, no autolinks), bidirectional overrides dropped,
// invalid UTF-8 as U+FFFD. Longer than max_chars characters: cut, and the cut said.
void sc_sb_md_text(sc_sb *b, const char *s, size_t max_chars);
// A number with `decimals` decimals, "-0.00" written "0.00"; NaN/Inf as "n/a".
void sc_sb_num(sc_sb *b, double v, int decimals);

// --- Quantify (RUN_DIR/quantify/search_NNNN.json, see judging.h) ----------------------------------

typedef struct {
    int have;                  // 0: null or absent (scale 0, or not judged)
    int wins, answers;
    double rate, lo, hi;
} sc_rep_rate;

typedef struct {
    double scale;
    int outputs;
    int have_qm, have_words;
    double qm_mean, qm_se, words_mean, words_se;
    sc_rep_rate *trait;        // [n_traits]
    sc_rep_rate *need;         // [n_traits][n_needs]
} sc_rep_point;

typedef struct {
    int search;
    int have_linearity;
    double linearity;
    char *date, *provider, *model;
    int n_traits, n_needs, n_points;
    char **traits, **needs;
    sc_rep_point *pt;          // ascending scale
} sc_rep_quantify;

void sc_rep_quantify_free(sc_rep_quantify *q);

// --- Figures --------------------------------------------------------------------------------------

typedef enum { SC_FIG_PENDING = 0, SC_FIG_UP_TO_DATE, SC_FIG_DRAWN, SC_FIG_FAILED } sc_fig_state;

// One figure: RUN_DIR/report/NAME.{dat,gp,png}. The script reads NAME.dat and draws into the
// file named by the gnuplot variable `out` (NAME.png when unset), relative to report/.
typedef struct {
    char name[64];
    sc_sb dat, gp;
    sc_fig_state state;
    char why[768];             // SC_FIG_FAILED: what went wrong
} sc_fig;

typedef struct {
    sc_fig **v;
    int n, cap;
    int drawn, kept, failed;
    int no_gnuplot;            // gnuplot is not on PATH
    char problem[1024];        // the first failure, for report.md
} sc_figs;

sc_fig *sc_figs_add(sc_figs *f, const char *name);      // NULL when out of memory
const sc_fig *sc_figs_find(const sc_figs *f, const char *name);
void sc_figs_free(sc_figs *f);
// Write each figure's .dat and .gp into `dir` (atomically) and draw its PNG with gnuplot,
// unless the PNG exists and its .dat and .gp already hold exactly this text. gnuplot missing or
// failing is no error: the figure's state says so (SC_FIG_FAILED, why). Errors: a file that
// cannot be written, out of memory.
sc_status sc_figs_render(sc_figs *f, const char *dir);

// The figures (names as in results/README.md). match[i]: the column matched to row i, -1: none.
void sc_fig_heatmap(sc_fig *g, int search, double linearity, const double *S, int na, int nb,
                    const int *row_batch, const int *col_batch, const int *match);
void sc_fig_ranking(sc_fig *g, const int *searches, const double *linearity, int n, double threshold);
void sc_fig_training(sc_fig *g, int search, const double *loss, const double *kl, const double *nll, int K);
void sc_fig_sweep(sc_fig *g, const sc_rep_quantify *q);
// only when q has traits
void sc_fig_traits(sc_fig *g, const sc_rep_quantify *q);

// --- The report's state (report.c gathers it, markdown.c writes it out) ---------------------------

// JSON look-ups that take NULL objects and wrong types quietly.
static inline const cJSON *jget(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }
static inline const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = jget(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static inline int jnum(const cJSON *o, const char *key, double *out) {
    const cJSON *v = jget(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return 0;
    *out = v->valuedouble;
    return 1;
}
static inline int jint(const cJSON *o, const char *key, int dflt) {
    double v;
    return jnum(o, key, &v) && v >= -1e9 && v <= 1e9 ? (int)v : dflt;
}

// One scored search: its place in scores.json and its heatmap (rows and columns as in
// /scores/NNNN/cosine, i.e. the order of /judge/NNNN/*_batches).
typedef struct {
    int search, rank, faithful;
    double linearity;
    const cJSON *entry;        // in scores.json "ranking"
    double *S;
    int na, nb;
    int *row_batch, *col_batch, *match;
    char problem[768];         // why there is no heatmap ("": there is one)
} sc_rep_ranked;

typedef struct {
    sc_run *run;
    char dir[4096], rdir[4200];
    double threshold, scores_threshold;
    int have_scores_threshold;
    sc_results_meta meta;
    int *searches, n_searches;            // finished searches
    cJSON *scores, *themes;
    char scores_problem[1024], themes_problem[1024];
    int judged;                           // /judge or themes.json exists
    char *j_provider, *j_model, *j_embed, *j_date;
    int j_batches, j_batch_size;
    double j_scale;
    sc_rep_ranked *rk;
    int n_ranked;
    sc_rep_quantify *q;
    int n_q;
    sc_sb q_problems;                     // markdown list items
    sc_figs figs;
    sc_sb md;
} sc_report;

// Where a search stands in the report's order: its rank - 1 when scored, else after the ranked ones.
int sc_rep_rank_of(const sc_report *r, int search);
// RUN_DIR/report.md, atomically; `when` is the date it was made.
sc_status sc_rep_write_md(sc_report *r, const char *when);

#endif
