// markdown.c — RUN_DIR/report.md from what report.c gathered: the run and its judge, what is
// missing (with the command that makes it), the ranking, per search its heatmap, theme table,
// best and worst pair and training curves, then the scale sweeps. Every text that came from the
// run (themes, trait names, paths, errors) goes through sc_sb_md_text; image links are
// relative (report/NAME.png), or a line saying why a figure is missing.
#include "report_internal.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define THEME_CHARS 2000        // a theme longer than this is cut in report.md (the cut is said)
#define SUMMARY_CHARS 140       // theme texts in the ranking table


// `steerclear CMD --run DIR` (search: --out) as a code span (DIR quoted for a shell when it needs it), or as
// escaped text when DIR holds what a code span cannot.
static void md_command(sc_sb *b, const char *d, const char *cmd) {
    const char *opt = strcmp(cmd, "search") ? "--run" : "--out";
    if (strpbrk(d, "`|\n\r\t")) { sc_sb_printf(b, "steerclear %s %s ", cmd, opt); sc_sb_md_text(b, d, 1000); return; }
    sc_sb_printf(b, "`steerclear %s %s ", cmd, opt);
    if (strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:=@%") == strlen(d)) sc_sb_puts(b, d);
    else {
        sc_sb_puts(b, "'");
        for (const char *p = d; *p; p++) {
            if (*p == '\'') sc_sb_puts(b, "'\\''");
            else sc_sb_putn(b, p, 1);
        }
        sc_sb_puts(b, "'");
    }
    sc_sb_puts(b, "`");
}

// The figure's image link, or a line saying why it is not there.
static void md_figure(sc_report *r, const char *name, const char *alt) {
    const sc_fig *g = sc_figs_find(&r->figs, name);
    if (!g) return;
    if (g->state == SC_FIG_DRAWN || g->state == SC_FIG_UP_TO_DATE) {
        sc_sb_printf(&r->md, "![%s](report/%s.png)\n\n", alt, name);
        return;
    }
    sc_sb_printf(&r->md, "*Figure report/%s.png is missing: ", name);
    sc_sb_md_text(&r->md, g->why[0] ? g->why : "not drawn", 600);
    sc_sb_puts(&r->md, ".*\n\n");
}

// The theme text of (search, side, batch) from judge/themes.json, or what stands for it.
static void md_theme(sc_report *r, int search, int side, int batch, size_t max_chars) {
    static const char *const side_name[2] = {"adapter", "direction"};
    const cJSON *e, *t;
    cJSON_ArrayForEach(e, jget(r->themes, "searches")) {
        if (jint(e, "search", -1) != search) continue;
        cJSON_ArrayForEach(t, jget(e, side_name[side])) {
            if (jint(t, "batch", -1) != batch) continue;
            const char *theme = jstr(t, "theme"), *status = jstr(t, "status");
            if (status && strcmp(status, "ok")) { sc_sb_puts(&r->md, "*(no answer from the judge)*"); return; }
            if (theme) sc_sb_md_text(&r->md, theme, max_chars);
            else sc_sb_puts(&r->md, "*(no theme: the judge saw nothing that sets these outputs apart)*");
            return;
        }
    }
    sc_sb_puts(&r->md, "*(text not in judge/themes.json)*");
}

static void md_rate(sc_sb *b, const sc_rep_rate *x) {
    if (!x->have) { sc_sb_puts(b, "–"); return; }
    sc_sb_num(b, x->rate, 2);
    sc_sb_puts(b, " [");
    sc_sb_num(b, x->lo, 2);
    sc_sb_puts(b, ", ");
    sc_sb_num(b, x->hi, 2);
    sc_sb_printf(b, "] (n %d)", x->answers);
}

static void md_ranking(sc_report *r) {
    sc_sb *b = &r->md;
    sc_sb_puts(b, "## Ranking\n\n");
    md_figure(r, "ranking", "Linearity Score of each search, best first, with the threshold");
    sc_sb_puts(b, "| rank | search | Linearity | faithful (≥ ");
    sc_sb_num(b, r->threshold, 2);
    sc_sb_puts(b, ") | best matched pair: adapter theme ↔ direction theme (cosine) |\n| ---: | ---: | ---: | :---: | --- |\n");
    for (int k = 0; k < r->n_ranked; k++) {
        const sc_rep_ranked *x = &r->rk[k];
        const cJSON *best = jget(x->entry, "best");
        sc_sb_printf(b, "| %d | %d | ", x->rank, x->search);
        sc_sb_num(b, x->linearity, 3);
        sc_sb_printf(b, " | %s | ", x->faithful ? "yes" : "no");
        double c;
        if (best && jnum(best, "cosine", &c)) {
            sc_sb_printf(b, "A%d: ", jint(best, "adapter_batch", -1) + 1);
            sc_sb_md_text(b, jstr(best, "adapter_theme") ? jstr(best, "adapter_theme") : "?", SUMMARY_CHARS);
            sc_sb_printf(b, " ↔ D%d: ", jint(best, "direction_batch", -1) + 1);
            sc_sb_md_text(b, jstr(best, "direction_theme") ? jstr(best, "direction_theme") : "?", SUMMARY_CHARS);
            sc_sb_puts(b, " (");
            sc_sb_num(b, c, 2);
            sc_sb_puts(b, ")");
        }
        sc_sb_puts(b, " |\n");
    }
    sc_sb_puts(b, "\n");
}

static void md_pair_line(sc_report *r, const char *what, const cJSON *p) {
    double c;
    if (!p || !jnum(p, "cosine", &c)) return;
    sc_sb_printf(&r->md, "%s matched pair: A%d ↔ D%d, cosine ", what, jint(p, "adapter_batch", -1) + 1, jint(p, "direction_batch", -1) + 1);
    sc_sb_num(&r->md, c, 3);
    sc_sb_puts(&r->md, ".");
}

// Batches of a search (themes.json) the judge gave no answer for (failed = 1) or answered with
// no theme (failed = 0), as "A3, D5" after `lead`; 1 when there were any.
static int md_batches(sc_report *r, int search, int failed, const char *lead) {
    static const char *const side_name[2] = {"adapter", "direction"};
    const cJSON *e, *t;
    int any = 0;
    cJSON_ArrayForEach(e, jget(r->themes, "searches")) {
        if (jint(e, "search", -1) != search) continue;
        for (int s = 0; s < 2; s++)
            cJSON_ArrayForEach(t, jget(e, side_name[s])) {
                const char *status = jstr(t, "status");
                const int ok = status && !strcmp(status, "ok");
                if (failed ? ok : !ok || jstr(t, "theme")) continue;
                sc_sb_printf(&r->md, "%s%c%d", any ? ", " : lead, s ? 'D' : 'A', jint(t, "batch", -1) + 1);
                any = 1;
            }
    }
    return any;
}

static void md_failed_batches(sc_report *r, int search) {
    if (md_batches(r, search, 0, "No theme (counted 0 in the score): ")) sc_sb_puts(&r->md, ".\n\n");
    if (md_batches(r, search, 1, "Left out of the score (the judge gave no answer): ")) {
        sc_sb_puts(&r->md, "; ");
        md_command(&r->md, r->dir, "judge");
        sc_sb_puts(&r->md, " asks them again.\n\n");
    }
}

static void md_search(sc_report *r, const sc_rep_ranked *x) {
    sc_sb *b = &r->md;
    char name[64], alt[96];
    sc_sb_printf(b, "### Search %d: Linearity Score ", x->search);
    sc_sb_num(b, x->linearity, 3);
    sc_sb_printf(b, " (rank %d, %s)\n\n", x->rank, x->faithful ? "faithful" : "below the threshold");
    if (x->problem[0]) {
        sc_sb_puts(b, "*No heatmap: ");
        sc_sb_md_text(b, x->problem, 700);
        sc_sb_puts(b, ".*\n\n");
    } else {
        snprintf(name, sizeof name, "heatmap_%04d", x->search);
        snprintf(alt, sizeof alt, "cosine heatmap of search %d", x->search);
        md_figure(r, name, alt);
        sc_sb_puts(b, "| pair | cosine | adapter theme | direction theme |\n| --- | ---: | --- | --- |\n");
        int *col_used = calloc((size_t)x->nb, sizeof(int));
        for (int i = 0; i < x->na; i++) {
            const int j = x->match[i];
            if (j >= 0 && col_used) col_used[j] = 1;
            if (j >= 0) sc_sb_printf(b, "| A%d ↔ D%d | ", x->row_batch[i] + 1, x->col_batch[j] + 1);
            else sc_sb_printf(b, "| A%d (unmatched) | ", x->row_batch[i] + 1);
            if (j >= 0) sc_sb_num(b, x->S[(size_t)i * (size_t)x->nb + (size_t)j], 2);
            sc_sb_puts(b, " | ");
            md_theme(r, x->search, 0, x->row_batch[i], THEME_CHARS);
            sc_sb_puts(b, " | ");
            if (j >= 0) md_theme(r, x->search, 1, x->col_batch[j], THEME_CHARS);
            sc_sb_puts(b, " |\n");
        }
        for (int j = 0; j < x->nb; j++) {
            if (col_used && col_used[j]) continue;
            sc_sb_printf(b, "| D%d (unmatched) |  |  | ", x->col_batch[j] + 1);
            md_theme(r, x->search, 1, x->col_batch[j], THEME_CHARS);
            sc_sb_puts(b, " |\n");
        }
        free(col_used);
        sc_sb_puts(b, "\n");
    }
    if (cJSON_IsObject(jget(x->entry, "best"))) {
        md_pair_line(r, "Best", jget(x->entry, "best"));
        sc_sb_puts(b, " ");
        md_pair_line(r, "Worst", jget(x->entry, "worst"));
        sc_sb_puts(b, "\n\n");
    }
    md_failed_batches(r, x->search);
    snprintf(name, sizeof name, "training_%04d", x->search);
    snprintf(alt, sizeof alt, "training curves of search %d", x->search);
    md_figure(r, name, alt);
}

static void md_quantify(sc_report *r, const sc_rep_quantify *q) {
    sc_sb *b = &r->md;
    char name[64], alt[96];
    sc_sb_printf(b, "### Search %d", q->search);
    if (q->have_linearity) { sc_sb_puts(b, ": Linearity Score "); sc_sb_num(b, q->linearity, 3); }
    sc_sb_puts(b, "\n\n");
    if (q->provider || q->date) {
        sc_sb_puts(b, "Judged by ");
        sc_sb_md_text(b, q->provider ? q->provider : "?", 100);
        if (q->model) { sc_sb_puts(b, " ("); sc_sb_md_text(b, q->model, 200); sc_sb_puts(b, ")"); }
        if (q->date) { sc_sb_puts(b, ", "); sc_sb_md_text(b, q->date, 60); }
        sc_sb_puts(b, ".\n\n");
    }
    snprintf(name, sizeof name, "sweep_%04d", q->search);
    snprintf(alt, sizeof alt, "question marks and words against scale, search %d", q->search);
    md_figure(r, name, alt);
    snprintf(name, sizeof name, "traits_%04d", q->search);
    snprintf(alt, sizeof alt, "trait win rates against scale, search %d", q->search);
    md_figure(r, name, alt);
    sc_sb_puts(b, "| scale | outputs | question marks (mean ± s.e.) | words (mean ± s.e.) |");
    for (int t = 0; t < q->n_traits; t++) { sc_sb_puts(b, " more "); sc_sb_md_text(b, q->traits[t], 60); sc_sb_puts(b, ": win rate [95% CI] (n) |"); }
    sc_sb_puts(b, "\n| ---: | ---: | ---: | ---: |");
    for (int t = 0; t < q->n_traits; t++) sc_sb_puts(b, " ---: |");
    sc_sb_puts(b, "\n");
    for (int i = 0; i < q->n_points; i++) {
        const sc_rep_point *p = &q->pt[i];
        sc_sb_puts(b, "| ");
        sc_sb_printf(b, "%g | %d | ", p->scale, p->outputs);
        if (p->have_qm) { sc_sb_num(b, p->qm_mean, 2); sc_sb_puts(b, " ± "); sc_sb_num(b, p->qm_se, 2); } else sc_sb_puts(b, "–");
        sc_sb_puts(b, " | ");
        if (p->have_words) { sc_sb_num(b, p->words_mean, 1); sc_sb_puts(b, " ± "); sc_sb_num(b, p->words_se, 1); } else sc_sb_puts(b, "–");
        sc_sb_puts(b, " |");
        for (int t = 0; t < q->n_traits; t++) { sc_sb_puts(b, " "); md_rate(b, &p->trait[t]); sc_sb_puts(b, " |"); }
        sc_sb_puts(b, "\n");
    }
    sc_sb_puts(b, "\nWin rate: the share of the judge's answers that found the steered output the more TRAIT one, against the base "
                  "model's (each prompt asked in both orders); – where nothing was judged (at scale 0 the base model meets itself).\n\n");
    if (q->n_traits == 0 || q->n_needs == 0) return;
    sc_sb_puts(b, "By how much the situation calls for the trait:\n\n| scale | trait |");
    for (int n = 0; n < q->n_needs; n++) { sc_sb_puts(b, " need "); sc_sb_md_text(b, q->needs[n], 40); sc_sb_puts(b, " |"); }
    sc_sb_puts(b, "\n| ---: | --- |");
    for (int n = 0; n < q->n_needs; n++) sc_sb_puts(b, " ---: |");
    sc_sb_puts(b, "\n");
    for (int i = 0; i < q->n_points; i++)
        for (int t = 0; t < q->n_traits; t++) {
            const sc_rep_point *p = &q->pt[i];
            int any = 0;
            for (int n = 0; n < q->n_needs; n++) any |= p->need[t * q->n_needs + n].have;
            if (!any) continue;
            sc_sb_printf(b, "| %g | ", p->scale);
            sc_sb_md_text(b, q->traits[t], 60);
            sc_sb_puts(b, " |");
            for (int n = 0; n < q->n_needs; n++) { sc_sb_puts(b, " "); md_rate(b, &p->need[t * q->n_needs + n]); sc_sb_puts(b, " |"); }
            sc_sb_puts(b, "\n");
        }
    sc_sb_puts(b, "\n");
}

// Whether RUN_DIR/<sub> has a file whose name starts with `prefix`.
static int has_file(sc_report *r, const char *sub, const char *prefix) {
    char path[4200];
    if (sc_run_path(r->run, sub, path, sizeof path)) { sc_error_clear(); return 0; }
    DIR *d = opendir(path);
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d));) found = !strncmp(e->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return found;
}

// The parts of the pipeline that have not run (or cannot be read), each with the command that
// makes it; nothing when the run is complete.
static void md_missing(sc_report *r) {
    sc_sb it = {0};
    const char *d = r->dir;
    if (r->n_searches == 0) { sc_sb_puts(&it, "- No search has finished: "); md_command(&it, d, "search"); sc_sb_puts(&it, " trains them.\n"); }
    if (!r->judged && !sc_results_has_directions(r->run)) { sc_sb_puts(&it, "- No directions: "); md_command(&it, d, "extract"); sc_sb_puts(&it, " extracts them.\n"); }
    if (!r->judged && !has_file(r, "eval", "adapter_")) { sc_sb_puts(&it, "- No evaluation outputs: "); md_command(&it, d, "evaluate"); sc_sb_puts(&it, " generates them.\n"); }
    if (!r->judged) { sc_sb_puts(&it, "- No judge themes: "); md_command(&it, d, "judge"); sc_sb_puts(&it, " asks the judge (after evaluate).\n"); }
    if (r->themes_problem[0]) {
        sc_sb_puts(&it, "- judge/themes.json cannot be read (");
        sc_sb_md_text(&it, r->themes_problem, 600);
        sc_sb_puts(&it, "): ");
        md_command(&it, d, "judge");
        sc_sb_puts(&it, " writes it again.\n");
    }
    if (r->n_ranked == 0) {
        sc_sb_puts(&it, "- No scores (no ranking, no heatmaps): ");
        if (r->scores_problem[0]) { sc_sb_puts(&it, "scores.json cannot be read ("); sc_sb_md_text(&it, r->scores_problem, 600); sc_sb_puts(&it, "); "); }
        md_command(&it, d, "score");
        sc_sb_puts(&it, r->judged ? " scores the judged searches.\n" : " scores them once they are judged.\n");
    }
    int unscored = 0;
    for (int i = 0; r->n_ranked > 0 && i < r->n_searches; i++) unscored += sc_rep_rank_of(r, r->searches[i]) >= r->n_ranked;
    if (unscored) {
        sc_sb_printf(&it, "- %d finished search%s without a score (not evaluated or judged yet, or no theme answered on one side): ", unscored, unscored == 1 ? "" : "es");
        md_command(&it, d, "evaluate");
        sc_sb_puts(&it, ", then judge and score, cover them.\n");
    }
    if (r->n_q == 0) { sc_sb_puts(&it, "- No scale sweeps: "); md_command(&it, d, "quantify"); sc_sb_puts(&it, " sweeps the best directions (after score).\n"); }
    if (r->q_problems.n) sc_sb_puts(&it, sc_sb_str(&r->q_problems));
    if (it.failed) r->md.failed = 1;
    if (it.n) {
        sc_sb_puts(&r->md, "## Not in this report yet\n\n");
        sc_sb_puts(&r->md, sc_sb_str(&it));
        sc_sb_puts(&r->md, "\nRun the commands, then ");
        md_command(&r->md, d, "report");
        sc_sb_puts(&r->md, " again.\n\n");
    }
    sc_sb_free(&it);
}

static void md_header(sc_report *r, const char *when) {
    sc_sb *b = &r->md;
    sc_sb_puts(b, "# steerclear report\n\nMade ");
    sc_sb_puts(b, when);
    sc_sb_puts(b, " by `steerclear report` from the run directory ");
    sc_sb_md_text(b, r->dir, 2000);
    sc_sb_puts(b, ". The figures are in report/ and linked relatively: the run directory can be moved.\n\n| | |\n| --- | --- |\n| model | ");
    sc_sb_md_text(b, r->meta.model_dir ? r->meta.model_dir : "(not recorded in results.h5)", 2000);
    if (r->meta.n_layers > 0) sc_sb_printf(b, " (%lld blocks, hidden size %lld)", (long long)r->meta.n_layers, (long long)r->meta.hidden);
    sc_sb_printf(b, " |\n| searches | %d finished", r->n_searches);
    if (r->n_ranked) {
        int faithful = 0;
        for (int k = 0; k < r->n_ranked; k++) faithful += r->rk[k].faithful;
        sc_sb_printf(b, "; %d scored, %d faithful", r->n_ranked, faithful);
    }
    sc_sb_printf(b, "; %d with scale sweeps |\n| judge | ", r->n_q);
    if (!r->judged) sc_sb_puts(b, "not judged yet");
    else {
        sc_sb_md_text(b, r->j_provider ? r->j_provider : "?", 100);
        sc_sb_puts(b, "; model ");
        sc_sb_md_text(b, r->j_model && r->j_model[0] ? r->j_model : "?", 300);
        sc_sb_puts(b, "; embeddings ");
        sc_sb_md_text(b, r->j_embed && r->j_embed[0] ? r->j_embed : "?", 300);
        sc_sb_puts(b, "; judged ");
        sc_sb_md_text(b, r->j_date ? r->j_date : "?", 60);
        sc_sb_printf(b, "; up to %d batches × %d outputs per side; directions judged at scale ", r->j_batches, r->j_batch_size);
        sc_sb_num(b, r->j_scale, 2);
    }
    sc_sb_puts(b, " |\n| threshold | Linearity Score ≥ ");
    sc_sb_num(b, r->threshold, 2);
    sc_sb_puts(b, " marks a faithful direction");
    if (r->have_scores_threshold && fabs(r->scores_threshold - r->threshold) > 1e-6) {
        sc_sb_puts(b, " (scores.json was written with ");
        sc_sb_num(b, r->scores_threshold, 2);
        sc_sb_puts(b, ")");
    }
    sc_sb_puts(b, " |\n\n");
    if (r->figs.failed) {
        sc_sb_printf(b, "> **%d of %d figures are missing**: ", r->figs.failed, r->figs.n);
        sc_sb_md_text(b, r->figs.problem, 800);
        sc_sb_puts(b, ". The tables are complete. ");
        if (r->figs.no_gnuplot) sc_sb_puts(b, "To get the figures, install gnuplot (`apt-get install gnuplot-nox`) and run ");
        else sc_sb_puts(b, "Their data and scripts are in report/ (NAME.dat, NAME.gp); once the cause is fixed, run ");
        md_command(b, r->dir, "report");
        sc_sb_puts(b, " again, or draw one by hand: `cd RUN_DIR/report && gnuplot NAME.gp`.\n\n");
    }
}

sc_status sc_rep_write_md(sc_report *r, const char *when) {
    sc_sb *b = &r->md;
    md_header(r, when);
    md_missing(r);
    if (r->n_ranked) {
        md_ranking(r);
        sc_sb_puts(b, "## Searches, best first\n\nEach heatmap is the cosine similarity of the adapter's themes (rows, A = batch) and the "
                      "direction's (columns, D = batch of the same prompts), on a fixed scale from -1 (blue) to 1 (red). Boxed cells "
                      "are the one-to-one matching (Hungarian algorithm); the Linearity Score is the sum of their cosines over "
                      "the larger number of answered batches (a batch with no theme counts 0). The table under each gives the texts.\n\n");
        for (int k = 0; k < r->n_ranked; k++) md_search(r, &r->rk[k]);
    }
    int header = 0;
    for (int i = 0; i < r->n_searches; i++) {
        if (sc_rep_rank_of(r, r->searches[i]) < r->n_ranked) continue;
        if (!header) { sc_sb_puts(b, r->n_ranked ? "## Searches without a score\n\n" : "## Searches\n\n"); header = 1; }
        char name[64], alt[96];
        snprintf(name, sizeof name, "training_%04d", r->searches[i]);
        snprintf(alt, sizeof alt, "training curves of search %d", r->searches[i]);
        sc_sb_printf(b, "### Search %d\n\n", r->searches[i]);
        md_figure(r, name, alt);
    }
    if (r->n_q) {
        sc_sb_puts(b, "## Scale sweeps (quantify)\n\n");
        for (int i = 0; i < r->n_q; i++) md_quantify(r, &r->q[i]);
    }
    SC_TRY(sc_sb_check(b, "report.md"));
    char path[4200];
    SC_TRY(sc_run_path(r->run, "report.md", path, sizeof path));
    return sc_write_file_atomic(path, b->p, b->n);
}
