// figures.c — the report's figures: each is a data file and a gnuplot script written into
// RUN_DIR/report/, drawn into a PNG (pngcairo) by gnuplot run as a child process. gnuplot gets
// its script files and one `-e "out='NAME.png.tmp.PID'"` each on its argument list, never a
// shell, and no untrusted text reaches the argument list: theme texts never go into a figure
// (labels A1.., D1..), and the trait and need names that do are escaped (text.c). A figure
// whose PNG exists and whose data and script are unchanged is not drawn again.
// Leaves out: what the figures are of and report.md (report.c).
#include "report_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

// --- The figure set --------------------------------------------------------------------------------

sc_fig *sc_figs_add(sc_figs *f, const char *name) {
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 32;
        sc_fig **v = realloc(f->v, sizeof *v * (size_t)cap);
        if (!v) return NULL;
        f->v = v;
        f->cap = cap;
    }
    sc_fig *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    f->v[f->n++] = g;
    return g;
}

const sc_fig *sc_figs_find(const sc_figs *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->v[i]->name, name)) return f->v[i];
    return NULL;
}

void sc_figs_free(sc_figs *f) {
    for (int i = 0; i < f->n; i++) {
        sc_sb_free(&f->v[i]->dat);
        sc_sb_free(&f->v[i]->gp);
        free(f->v[i]);
    }
    free(f->v);
    memset(f, 0, sizeof *f);
}

// --- Scripts -------------------------------------------------------------------------------------

// Every script starts from gnuplot's defaults (several scripts run in one gnuplot), draws into
// `out`, and closes it at the end so the PNG is complete before the next script starts.
static void gp_begin(sc_fig *g, const char *what, int w, int h) {
    sc_sb_printf(&g->gp,
                 "# steerclear report: %s; data in %s.dat.\n"
                 "# Written by `steerclear report`; to draw it by hand: cd RUN_DIR/report && gnuplot %s.gp\n"
                 "reset\n"
                 "if (!exists('out')) out = '%s.png'\n"
                 "set terminal pngcairo noenhanced size %d,%d font 'DejaVu Sans,10'\n"
                 "set output out\n"
                 "set encoding utf8\n"
                 "set datafile missing '?'\n",
                 what, g->name, g->name, g->name, w, h);
}

static void gp_end(sc_fig *g) { sc_sb_puts(&g->gp, "unset output\n"); }

static void dat_num(sc_sb *b, double v) {
    if (isfinite(v)) sc_sb_printf(b, " %.9g", v);
    else sc_sb_puts(b, " ?");
}

#define SC_GP_TRAIT_CHARS 32   // a trait's name in a figure's key (report.md has it whole)

// A diverging palette, blue (-1) through white (0) to red (+1) (ColorBrewer RdBu).
static const char *const palette_rdbu =
    "set palette defined (-1 '#2166ac', -0.6 '#67a9cf', -0.25 '#d1e5f0', 0 '#f7f7f7', 0.25 '#fddbc7', 0.6 '#ef8a62', 1 '#b2182b')\n";

// Rows: the adapter themes A<batch+1>, top down; columns: the direction themes D<batch+1>. The
// colour scale is fixed at [-1, 1], the whole range of a cosine: every heatmap of every run
// reads the same, a negative cosine shows as blue rather than being clipped, and the positive
// half has the contrast a [0, 1] scale would have (white to red).
void sc_fig_heatmap(sc_fig *g, int search, double linearity, const double *S, int na, int nb,
                    const int *row_batch, const int *col_batch, const int *match) {
    const int big = na > nb ? na : nb;
    int cell = 360 / big;
    cell = cell < 46 ? 46 : cell > 110 ? 110 : cell;
    const int pw = cell * nb, ph = cell * na;
    const int cbh = ph > 170 ? ph : 170;                 // the colour box keeps room for its tics
    int L = 78, R = 100, T = 54, B = 64;
    int W = L + pw + R, H = T + cbh + B;
    if (W < 400) { L += (400 - W) / 2; W = 400; }        // room for the title, the rest centred
    const int plot_top = T;                              // the matrix and the colour box top-aligned under the title
    char what[96];
    snprintf(what, sizeof what, "cosine heatmap of search %d", search);
    gp_begin(g, what, W, H);
    sc_sb_printf(&g->gp, "set title 'search %d: Linearity Score ", search);
    sc_sb_num(&g->gp, linearity, 3);
    sc_sb_puts(&g->gp, "' font ',12'\n");
    sc_sb_printf(&g->gp,
                 "set lmargin at screen %.5f\nset rmargin at screen %.5f\nset tmargin at screen %.5f\nset bmargin at screen %.5f\n",
                 (double)L / W, (double)(L + pw) / W, 1.0 - (double)plot_top / H, 1.0 - (double)(plot_top + ph) / H);
    sc_sb_printf(&g->gp, "set colorbox user origin screen %.5f, screen %.5f size screen %.5f, screen %.5f\n",
                 (double)(L + pw + 18) / W, (double)(H - T - cbh) / H, 16.0 / W, (double)cbh / H);
    sc_sb_printf(&g->gp, "set xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\n", nb - 1, na - 1);
    sc_sb_puts(&g->gp, "set xtics (");
    for (int j = 0; j < nb; j++) sc_sb_printf(&g->gp, "%s'D%d' %d", j ? ", " : "", col_batch[j] + 1, j);
    sc_sb_puts(&g->gp, ") scale 0 font ',11'\nset ytics (");
    for (int i = 0; i < na; i++) sc_sb_printf(&g->gp, "%s'A%d' %d", i ? ", " : "", row_batch[i] + 1, i);
    sc_sb_puts(&g->gp, ") scale 0 font ',11'\n");
    sc_sb_puts(&g->gp, "set xlabel 'direction themes'\nset ylabel 'adapter themes'\n"
                       "set cbrange [-1:1]\nset cbtics 0.5\nset cblabel 'cosine'\nunset key\n");
    sc_sb_puts(&g->gp, palette_rdbu);
    const int vf = cell >= 60 ? 11 : 9;
    // cells; matched ones boxed and in bold; white text on the dark ends of the scale
    sc_sb_printf(&g->gp,
                 "plot '%s.dat' using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder lc palette, \\\n"
                 "  '' using ($5 > 0 ? $1 : 1/0):2:(0.44):(0.44) with boxxyerror fs empty lc rgb 'black' lw 3, \\\n"
                 "  '' using 1:2:($5 == 0 && abs($3) < 0.6 ? stringcolumn(4) : '') with labels font ',%d' tc 'black', \\\n"
                 "  '' using 1:2:($5 == 0 && abs($3) >= 0.6 ? stringcolumn(4) : '') with labels font ',%d' tc 'white', \\\n"
                 "  '' using 1:2:($5 > 0 && abs($3) < 0.6 ? stringcolumn(4) : '') with labels font ':Bold,%d' tc 'black', \\\n"
                 "  '' using 1:2:($5 > 0 && abs($3) >= 0.6 ? stringcolumn(4) : '') with labels font ':Bold,%d' tc 'white'\n",
                 g->name, vf, vf, vf, vf);
    gp_end(g);
    sc_sb_puts(&g->dat, "# column (direction theme) row (adapter theme) cosine label matched\n");
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) {
            const double v = S[(size_t)i * (size_t)nb + (size_t)j];
            sc_sb_printf(&g->dat, "%d %d", j, i);
            dat_num(&g->dat, v);
            sc_sb_puts(&g->dat, " ");
            sc_sb_num(&g->dat, v, 2);
            sc_sb_printf(&g->dat, " %d\n", match[i] == j);
        }
}

void sc_fig_ranking(sc_fig *g, const int *searches, const double *linearity, int n, double threshold) {
    double lo = 0, hi = 1;
    for (int k = 0; k < n; k++) {
        if (linearity[k] < lo) lo = linearity[k];
        if (linearity[k] > hi) hi = linearity[k];
    }
    if (threshold < lo) lo = threshold;
    lo = lo < 0 ? floor(lo * 10 - 0.5) / 10 : 0;
    hi = ceil(hi * 10 + 0.5) / 10;                        // room above the tallest bar for its value
    // Up to 60 bars each carries its search number (rotated past 24, every other past ~50);
    // more carry only their rank, every 10 or 20: the ranking table maps ranks to searches.
    const int by_rank = n > 60, rotate = n > 24 && !by_rank;
    const int W = n <= 30 ? 720 : by_rank ? 1000 : 12 * n + 160;
    const double bar_px = (W - 150.0) / n;
    int every = (int)ceil((rotate ? 13.0 : 30.0) / bar_px);
    if (every < 1) every = 1;
    const double pad = n < 5 ? (5 - n) / 2.0 : 0;         // a few bars keep a bar's width
    gp_begin(g, "Linearity Score of every scored search", W, rotate ? 470 : 440);
    sc_sb_printf(&g->gp, "set title 'Linearity Score of each search, best first (%d search%s)' font ',12'\n", n, n == 1 ? "" : "es");
    sc_sb_printf(&g->gp, "set xrange [%.2f:%.2f]\nset yrange [%.2f:%.2f]\n", 0.4 - pad, n + 0.6 + pad, lo, hi);
    sc_sb_printf(&g->gp, "set ylabel 'Linearity Score'\nset xlabel '%s (blue: at or above the threshold)'\nset grid ytics lc 'gray80'\n"
                         "set style fill solid 0.9 %s\nset boxwidth 0.8 absolute\n"
                         "unset key\nset ytics nomirror\nset xtics nomirror\n",
                 by_rank ? "rank (the ranking table names the search at each rank)" : "search, ranked best first", by_rank ? "noborder" : "border lc 'gray40'");
    if (by_rank) sc_sb_printf(&g->gp, "set xtics 1, %d out\nset mxtics %d\n", n > 100 ? 20 : 10, n > 100 ? 4 : 2);
    else {
        sc_sb_puts(&g->gp, "set xtics (");
        for (int k = 0, first = 1; k < n; k++)
            if (k % every == 0) { sc_sb_printf(&g->gp, "%s'%d' %d", first ? "" : ", ", searches[k], k + 1); first = 0; }
        sc_sb_printf(&g->gp, ") scale 0,0%s\n", rotate ? " rotate by 90 right font ',8'" : "");
    }
    sc_sb_puts(&g->gp, "set style textbox opaque noborder\n");
    sc_sb_printf(&g->gp, "set arrow 1 from graph 0, first %.6g to graph 1, first %.6g nohead lc rgb '#d62728' lw 2 dt 2 front\n", threshold, threshold);
    sc_sb_puts(&g->gp, "set label 1 'threshold ");
    sc_sb_num(&g->gp, threshold, 2);
    sc_sb_printf(&g->gp, "' at graph 0.995, first %.6g right offset 0,0.75 tc rgb '#d62728' boxed front\n", threshold);
    sc_sb_printf(&g->gp,
                 "plot '%s.dat' using 1:($4 > 0 ? $3 : 1/0) with boxes lc rgb '#2166ac', \\\n"
                 "  '' using 1:($4 > 0 ? 1/0 : $3) with boxes lc rgb '#b8b8b8'",
                 g->name);
    if (n <= 20) {
        const double dy = 0.035 * (hi - lo);
        sc_sb_printf(&g->gp, ", \\\n  '' using 1:($3 + ($3 >= 0 ? %.4f : -%.4f)):(stringcolumn(5)) with labels font ',9' notitle", dy, dy);
    }
    sc_sb_puts(&g->gp, "\n");
    gp_end(g);
    sc_sb_puts(&g->dat, "# position search linearity faithful label\n");
    for (int k = 0; k < n; k++) {
        sc_sb_printf(&g->dat, "%d %d", k + 1, searches[k]);
        dat_num(&g->dat, linearity[k]);
        sc_sb_printf(&g->dat, " %d ", linearity[k] >= threshold);
        sc_sb_num(&g->dat, linearity[k], 2);
        sc_sb_puts(&g->dat, "\n");
    }
}

void sc_fig_training(sc_fig *g, int search, const double *loss, const double *kl, const double *nll, int K) {
    char what[96];
    snprintf(what, sizeof what, "training curves of search %d", search);
    gp_begin(g, what, 760, 560);
    sc_sb_printf(&g->gp, "set multiplot layout 2,1 title 'search %d: training (%d optimizer step%s)' font ',12'\n", search, K, K == 1 ? "" : "s");
    sc_sb_printf(&g->gp, "set xrange [%g:%g]\n", K > 1 ? 0.5 : 0.0, K > 1 ? K + 0.5 : 2.0);
    if (K <= 50) sc_sb_printf(&g->gp, "set xtics %d\n", K <= 10 ? 1 : K <= 20 ? 2 : 5);   // whole steps
    sc_sb_puts(&g->gp, "set grid lc 'gray85'\nset key outside right top vertical\n"
                       "set lmargin at screen 0.11\nset rmargin at screen 0.84\nset format y '%g'\n");
    sc_sb_printf(&g->gp,
                 "set tmargin at screen 0.89\nset bmargin at screen 0.55\nset format x ''\nset ylabel 'loss, NLL'\n"
                 "plot '%s.dat' using 1:2 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#1f77b4' title 'loss', \\\n"
                 "  '' using 1:4 with linespoints pt 5 ps 0.6 lw 2 lc rgb '#ff7f0e' title 'NLL'\n",
                 g->name);
    sc_sb_printf(&g->gp,
                 "set tmargin at screen 0.49\nset bmargin at screen 0.11\nset format x '%%g'\nset ylabel 'KL(P || Q)'\nset xlabel 'optimizer step'\n"
                 "plot '%s.dat' using 1:3 with linespoints pt 9 ps 0.7 lw 2 lc rgb '#2ca02c' title 'KL'\n"
                 "unset multiplot\n",
                 g->name);
    gp_end(g);
    sc_sb_puts(&g->dat, "# step loss kl nll\n");
    for (int k = 0; k < K; k++) {
        sc_sb_printf(&g->dat, "%d", k + 1);
        dat_num(&g->dat, loss[k]);
        dat_num(&g->dat, kl[k]);
        dat_num(&g->dat, nll[k]);
        sc_sb_puts(&g->dat, "\n");
    }
}

static void scale_range(const sc_rep_quantify *q, double *lo, double *hi) {
    *lo = *hi = q->n_points ? q->pt[0].scale : 0;
    for (int i = 0; i < q->n_points; i++) {
        if (q->pt[i].scale < *lo) *lo = q->pt[i].scale;
        if (q->pt[i].scale > *hi) *hi = q->pt[i].scale;
    }
    const double pad = *hi > *lo ? 0.06 * (*hi - *lo) : 1;
    *lo -= pad;
    *hi += pad;
}

static void title_linearity(sc_sb *b, const sc_rep_quantify *q) {
    if (!q->have_linearity) return;
    sc_sb_puts(b, " (Linearity Score ");
    sc_sb_num(b, q->linearity, 3);
    sc_sb_puts(b, ")");
}

void sc_fig_sweep(sc_fig *g, const sc_rep_quantify *q) {
    char what[96];
    snprintf(what, sizeof what, "scale sweep of search %d: question marks and words", q->search);
    double lo, hi;
    scale_range(q, &lo, &hi);
    gp_begin(g, what, 980, 420);
    sc_sb_printf(&g->gp, "set multiplot layout 1,2 title 'search %d: scale sweep", q->search);
    title_linearity(&g->gp, q);
    sc_sb_puts(&g->gp, "' font ',12'\n");
    sc_sb_printf(&g->gp, "set xrange [%.6g:%.6g]\nset grid lc 'gray85'\nunset key\nset xlabel 'scale'\nset xzeroaxis lt 0\n", lo, hi);
    sc_sb_printf(&g->gp,
                 "set title 'question marks per output (mean +/- s.e.)'\nset ylabel 'question marks'\n"
                 "plot '%s.dat' using 1:3:4 with yerrorlines pt 7 ps 0.8 lw 2 lc rgb '#1f77b4'\n"
                 "set title 'words per output (mean +/- s.e.)'\nset ylabel 'words'\n"
                 "plot '%s.dat' using 1:5:6 with yerrorlines pt 7 ps 0.8 lw 2 lc rgb '#9467bd'\n"
                 "unset multiplot\n",
                 g->name, g->name);
    gp_end(g);
    sc_sb_puts(&g->dat, "# scale outputs question_marks_mean question_marks_se words_mean words_se\n");
    for (int i = 0; i < q->n_points; i++) {
        const sc_rep_point *p = &q->pt[i];
        sc_sb_printf(&g->dat, "%.9g %d", p->scale, p->outputs);
        dat_num(&g->dat, p->have_qm ? p->qm_mean : NAN);
        dat_num(&g->dat, p->have_qm ? p->qm_se : NAN);
        dat_num(&g->dat, p->have_words ? p->words_mean : NAN);
        dat_num(&g->dat, p->have_words ? p->words_se : NAN);
        sc_sb_puts(&g->dat, "\n");
    }
}

void sc_fig_traits(sc_fig *g, const sc_rep_quantify *q) {
    static const char *const colour[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
    char what[96];
    snprintf(what, sizeof what, "trait win rates of search %d", q->search);
    double lo, hi;
    scale_range(q, &lo, &hi);
    const double dx = 0.012 * (hi - lo);                  // traits side by side, so the bars do not hide each other
    size_t longest = 5;                                   // the key's width: its longest name, as drawn
    for (int t = 0; t < q->n_traits; t++) {
        sc_sb name = {0};
        sc_sb_gp_string(&name, q->traits[t], SC_GP_TRAIT_CHARS);
        size_t chars = 0;
        for (const char *c = sc_sb_str(&name); *c; c++) chars += ((unsigned char)*c & 0xc0) != 0x80;
        if (chars > longest) longest = chars;
        sc_sb_free(&name);
    }
    const int W = 700, key_px = 7 * (int)longest + 80;
    gp_begin(g, what, W + key_px, 460);
    sc_sb_printf(&g->gp, "set title 'search %d: steered output judged the more TRAIT one", q->search);
    title_linearity(&g->gp, q);
    sc_sb_puts(&g->gp, "' font ',12'\n");
    sc_sb_printf(&g->gp,
                 "set xrange [%.6g:%.6g]\nset yrange [0:1]\nset ytics 0.1\nset grid lc 'gray85'\nset xlabel 'scale'\n"
                 "set ylabel 'win rate against the base model (95%% Wilson CI)'\n"
                 "set key outside right top vertical title 'trait'\nset rmargin at screen %.4f\n"
                 "set arrow 1 from graph 0, first 0.5 to graph 1, first 0.5 nohead lc 'gray30' lw 1.5 dt 2 back\n"
                 "set label 1 'no preference' at graph 0.01, first 0.5 left offset 0,0.7 tc 'gray30'\n",
                 lo, hi, (double)(W - 10) / (W + key_px));
    sc_sb_puts(&g->gp, "plot ");
    for (int t = 0; t < q->n_traits; t++) {
        const double off = (t - (q->n_traits - 1) / 2.0) * dx;
        sc_sb_printf(&g->gp, "%s'%s.dat' index %d using ($1 + %.6g):2:3:4 with yerrorlines pt %d ps 0.9 lw 2 lc rgb '%s' title ",
                     t ? ", \\\n  " : "", g->name, t, off, 5 + 2 * (t % 4), colour[t % 8]);
        sc_sb_gp_string(&g->gp, q->traits[t], SC_GP_TRAIT_CHARS);
    }
    sc_sb_puts(&g->gp, "\n");
    gp_end(g);
    for (int t = 0; t < q->n_traits; t++) {
        sc_sb_printf(&g->dat, "%s# trait %d\n# scale rate ci_low ci_high wins answers\n", t ? "\n\n" : "", t + 1);
        int rows = 0;
        for (int i = 0; i < q->n_points; i++) {
            const sc_rep_rate *r = &q->pt[i].trait[t];
            if (!r->have) continue;
            sc_sb_printf(&g->dat, "%.9g", q->pt[i].scale);
            dat_num(&g->dat, r->rate);
            dat_num(&g->dat, r->lo);
            dat_num(&g->dat, r->hi);
            sc_sb_printf(&g->dat, " %d %d\n", r->wins, r->answers);
            rows++;
        }
        if (!rows) sc_sb_puts(&g->dat, "0 ? ? ? 0 0\n");  // a block gnuplot can index, with nothing to draw
    }
}

// --- Drawing -----------------------------------------------------------------------------------

// 1 when path holds exactly `want`.
static int file_holds(const char *path, const sc_sb *want) {
    char *text = NULL;
    size_t len = 0;
    if (!sc_file_exists(path) || sc_read_file(path, &text, &len) != SC_OK) { sc_error_clear(); return 0; }
    const int same = len == want->n && (len == 0 || !memcmp(text, want->p, len));
    free(text);
    return same;
}

// 1 when path is a whole PNG: the signature, an IHDR first and an IEND last.
static int png_complete(const char *path) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    char *data = NULL;
    size_t len = 0;
    if (!sc_file_exists(path) || sc_read_file(path, &data, &len) != SC_OK) { sc_error_clear(); return 0; }
    const int ok = len >= 8 + 25 + 12 && !memcmp(data, sig, 8) && !memcmp(data + 12, "IHDR", 4) && !memcmp(data + len - 12, iend, 12);
    free(data);
    return ok;
}

// gnuplot's path from $PATH (empty entries, which mean the working directory, are skipped).
static int find_gnuplot(char *out, size_t n) {
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const size_t len = strcspn(p, ":");
        if (len > 0 && (size_t)snprintf(out, n, "%.*s/gnuplot", (int)len, p) < n) {
            struct stat st;
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0) return 1;
        }
        p += len;
        if (*p == ':') p++;
    }
    return 0;
}

// Run gnuplot in `dir` on argv; *rc its exit status (-1: it could not start or was killed), err
// the end of what it wrote on stderr.
static void run_gnuplot(const char *gnuplot, const char *dir, char **argv, int *rc, char *err, size_t err_n) {
    *rc = -1;
    err[0] = '\0';
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) { snprintf(err, err_n, "cannot make a pipe: %s", strerror(errno)); return; }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    pid_t pid;
    const int e = posix_spawn(&pid, gnuplot, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (e != 0) { close(fds[0]); snprintf(err, err_n, "cannot start %.1000s: %s", gnuplot, strerror(e)); return; }
    // keep the last err_n - 1 bytes (gnuplot stops at its first error: that is the end)
    size_t have = 0;
    char chunk[4096];
    for (;;) {
        ssize_t r = read(fds[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t k = (size_t)r;
        if (k >= err_n - 1) { memcpy(err, chunk + k - (err_n - 1), err_n - 1); have = err_n - 1; continue; }
        if (have + k > err_n - 1) {
            const size_t drop = have + k - (err_n - 1);
            memmove(err, err + drop, have - drop);
            have -= drop;
        }
        memcpy(err + have, chunk, k);
        have += k;
    }
    err[have] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) { snprintf(err + strlen(err), err_n - strlen(err), " (waiting for gnuplot: %s)", strerror(errno)); return; }
    if (WIFEXITED(status)) *rc = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) snprintf(err + strlen(err), err_n - strlen(err), " (gnuplot was killed by signal %d)", WTERMSIG(status));
}

static void one_line(char *s) {
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') s[--n] = '\0';
}

static void fig_failed(sc_fig *g, const char *fmt, const char *detail) {
    g->state = SC_FIG_FAILED;
    snprintf(g->why, sizeof g->why, fmt, detail);
    one_line(g->why);
}

#define SC_FIGS_PER_GNUPLOT 48

// Draw figures v[0..n) with one gnuplot (several when one fails: gnuplot stops at its first
// error, so the ones after it get another run). Touches only these figures (one thread each).
static sc_status draw(const char *dir, const char *gnuplot, sc_fig **v, int n) {
    char tmp[4400], png[4400], err[1500];
    char (*outs)[96] = malloc(sizeof *outs * (size_t)n);
    char (*scripts)[80] = malloc(sizeof *scripts * (size_t)n);
    char **argv = malloc(sizeof(char *) * (size_t)(3 * n + 2));
    if (!outs || !scripts || !argv) { free(outs); free(scripts); free(argv); return sc_errorf(SC_ERR_MEM, "out of memory"); }
    sc_status st = SC_OK;
    for (int start = 0; start < n && !st;) {
        int a = 0;
        argv[a++] = "gnuplot";
        for (int k = start; k < n; k++) {
            snprintf(outs[k], sizeof outs[k], "out='%s.png.tmp.%ld'", v[k]->name, (long)getpid());
            snprintf(scripts[k], sizeof scripts[k], "%s.gp", v[k]->name);
            argv[a++] = "-e";
            argv[a++] = outs[k];
            argv[a++] = scripts[k];
        }
        argv[a] = NULL;
        int rc;
        run_gnuplot(gnuplot, dir, argv, &rc, err, sizeof err);
        // the script gnuplot stopped in: the last one its messages name
        int blamed = rc == 0 ? n : -1;
        const char *last = NULL;
        for (int k = start; rc != 0 && k < n; k++) {
            char needle[96];
            snprintf(needle, sizeof needle, "\"%s.gp\"", v[k]->name);
            for (const char *p = err; (p = strstr(p, needle)); p++)
                if (!last || p > last) { last = p; blamed = k; }
        }
        for (int k = start; rc != 0 && blamed < 0 && k < n; k++) {
            snprintf(tmp, sizeof tmp, "%s/%s.png.tmp.%ld", dir, v[k]->name, (long)getpid());
            if (!png_complete(tmp)) blamed = k;
        }
        if (blamed < 0) blamed = n - 1;
        for (int k = start; k < n && k <= blamed; k++) {
            snprintf(tmp, sizeof tmp, "%s/%s.png.tmp.%ld", dir, v[k]->name, (long)getpid());
            snprintf(png, sizeof png, "%s/%s.png", dir, v[k]->name);
            if (k < blamed || rc == 0) {
                if (png_complete(tmp)) {
                    if ((st = sc_commit_file(tmp, png))) break;
                    v[k]->state = SC_FIG_DRAWN;
                    continue;
                }
                unlink(tmp);
                fig_failed(v[k], "gnuplot wrote no complete PNG (%s)", err[0] ? err : "it said nothing");
                continue;
            }
            unlink(tmp);
            fig_failed(v[k], "gnuplot failed: %s", err[0] ? err : "it said nothing");
        }
        start = blamed + 1;
    }
    free(outs); free(scripts); free(argv);
    return st;
}

// One thread's share of the figures to draw.
typedef struct {
    const char *dir, *gnuplot;
    sc_fig **v;
    int n;
    sc_status st;
    char err[1024];
} draw_job;

static void *draw_thread(void *arg) {
    draw_job *j = arg;
    for (int at = 0; !j->st && at < j->n; at += SC_FIGS_PER_GNUPLOT) {
        j->st = draw(j->dir, j->gnuplot, j->v + at, j->n - at < SC_FIGS_PER_GNUPLOT ? j->n - at : SC_FIGS_PER_GNUPLOT);
        if (j->st) snprintf(j->err, sizeof j->err, "%s", sc_last_error());   // the message is thread-local
    }
    return NULL;
}

// Draw v[0..n) with up to one gnuplot per CPU (at most 8), each on a contiguous share.
static sc_status draw_all(const char *dir, const char *gnuplot, sc_fig **v, int n) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int P = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
    if (P > (n + 7) / 8) P = (n + 7) / 8;                 // not fewer than 8 figures a process
    if (P < 1) P = 1;
    draw_job job[8];
    pthread_t tid[8];
    int started[8] = {0};
    for (int p = 0, at = 0; p < P; p++) {
        const int share = n / P + (p < n % P);
        job[p] = (draw_job){.dir = dir, .gnuplot = gnuplot, .v = v + at, .n = share, .st = SC_OK, .err = ""};
        at += share;
        if (p > 0) started[p] = pthread_create(&tid[p], NULL, draw_thread, &job[p]) == 0;
        if (p > 0 && !started[p]) draw_thread(&job[p]);   // no thread: draw it here
    }
    draw_thread(&job[0]);
    sc_status st = SC_OK;
    for (int p = 0; p < P; p++) {
        if (p > 0 && started[p]) pthread_join(tid[p], NULL);
        if (job[p].st && !st) st = sc_errorf(job[p].st, "%s", job[p].err);
    }
    return st;
}

sc_status sc_figs_render(sc_figs *f, const char *dir) {
    char path[4400];
    sc_fig **stale = malloc(sizeof *stale * (size_t)(f->n ? f->n : 1));
    if (!stale) return sc_errorf(SC_ERR_MEM, "out of memory");
    int n_stale = 0;
    sc_status st = SC_OK;
    for (int i = 0; i < f->n && !st; i++) {
        sc_fig *g = f->v[i];
        if ((st = sc_sb_check(&g->dat, g->name)) || (st = sc_sb_check(&g->gp, g->name))) break;
        snprintf(path, sizeof path, "%s/%s.png", dir, g->name);
        int same = png_complete(path);
        snprintf(path, sizeof path, "%s/%s.dat", dir, g->name);
        same = same && file_holds(path, &g->dat);
        snprintf(path, sizeof path, "%s/%s.gp", dir, g->name);
        same = same && file_holds(path, &g->gp);
        if (same) { g->state = SC_FIG_UP_TO_DATE; f->kept++; continue; }
        // the old PNG goes first: a crash before the new one is in place then leaves no PNG
        // beside data it was not drawn from (which the next run would take as up to date)
        snprintf(path, sizeof path, "%s/%s.png", dir, g->name);
        if (unlink(path) != 0 && errno != ENOENT) { st = sc_errorf(SC_ERR_IO, "%s: cannot remove the old figure: %s", path, strerror(errno)); break; }
        snprintf(path, sizeof path, "%s/%s.dat", dir, g->name);
        if (!file_holds(path, &g->dat) && (st = sc_write_file_atomic(path, g->dat.p ? g->dat.p : "", g->dat.n))) break;
        snprintf(path, sizeof path, "%s/%s.gp", dir, g->name);
        if (!file_holds(path, &g->gp) && (st = sc_write_file_atomic(path, g->gp.p ? g->gp.p : "", g->gp.n))) break;
        stale[n_stale++] = g;
    }
    char gnuplot[4200];
    if (!st && n_stale > 0 && !find_gnuplot(gnuplot, sizeof gnuplot)) {
        f->no_gnuplot = 1;
        for (int i = 0; i < n_stale; i++) {
            stale[i]->state = SC_FIG_FAILED;
            snprintf(stale[i]->why, sizeof stale[i]->why, "gnuplot is not installed (not found on PATH)");
        }
        f->failed += n_stale;
        snprintf(f->problem, sizeof f->problem, "gnuplot is not installed (not found on PATH)");
        sc_log(SC_LOG_WARN, "report: gnuplot is not installed (not found on PATH): %d figures not drawn; their data and scripts are in %s. "
               "Install it (apt-get install gnuplot-nox) and run `steerclear report` again", n_stale, dir);
        n_stale = 0;
    }
    const double t0 = sc_now_seconds();
    if (!st && n_stale > 0) st = draw_all(dir, gnuplot, stale, n_stale);
    if (!st) st = sc_check_interrupt("report: drawing the figures");   // a signal also stopped the gnuplots
    for (int i = 0; !st && i < n_stale; i++) {
        const sc_fig *g = stale[i];
        if (g->state == SC_FIG_DRAWN) { f->drawn++; continue; }
        if (++f->failed == 1) snprintf(f->problem, sizeof f->problem, "%s.png: %s", g->name, g->why);
        if (f->failed <= 3) sc_log(SC_LOG_WARN, "report: figure %s.png not drawn: %s", g->name, g->why);
    }
    free(stale);
    if (st) return st;
    if (f->failed > 3) sc_log(SC_LOG_WARN, "report: %d figures in all were not drawn (the first: %s)", f->failed, f->problem);
    if (f->drawn) sc_log(SC_LOG_INFO, "report: %d figures drawn in %.1f s", f->drawn, sc_now_seconds() - t0);
    if (f->kept) sc_log(SC_LOG_INFO, "report: %d figures up to date (data and script unchanged since they were drawn): not drawn again", f->kept);
    return SC_OK;
}
