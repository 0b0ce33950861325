// test_report.c — the report stage on fixture run directories. A fixture is made through the
// results API (finished searches with made-up loss curves, /judge with made-up embeddings), the
// real score stage (scores.json, /scores), and hand-written judge/themes.json and
// quantify/search_NNNN.json whose theme and trait texts try to break out of a markdown table
// cell and out of a gnuplot string. Checked:
//   - no results.h5: an error naming `steerclear search`
//   - a run with searches only: report.md with training figures, naming judge/score/quantify
//   - a full run: provider, model, embed model and date in report.md; the ranking in the order
//     of scores.json; every image link points at a complete PNG; hostile themes stay inside
//     their table cells (pipes escaped, no line break, no backtick or HTML tag); no theme text
//     in a gnuplot script; the trait name that tries gnuplot injection runs nothing
//   - a second run draws nothing (every file under report/ keeps its mtime) and says so
//   - gnuplot not on PATH, and a gnuplot that fails: warnings, success, report.md still
//     written and saying how to get the figures; a later run with gnuplot draws them
//   - the two escapers on their own
// Figures need gnuplot; without it the PNG checks are skipped (the rest still run).
// `test_report --many N` builds an N-search run and keeps it (for looking at the figures).
#include "testutil.h"
#include "steerclear/judging.h"
#include "steerclear/results.h"
#include "steerclear/rng.h"
#include "steerclear/score.h"
#include "steerclear/search.h"
#include "../src/report/report_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// --- The log ------------------------------------------------------------------------------------

static char logbuf[1 << 16];
static size_t loglen;

static void capture(sc_log_level level, const char *msg, void *user) {
    (void)user;
    int n = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s %s\n", level == SC_LOG_WARN ? "WARN" : level == SC_LOG_ERROR ? "ERROR" : "INFO", msg);
    if (n > 0 && loglen + (size_t)n < sizeof logbuf) loglen += (size_t)n;
    if (getenv("SC_TEST_VERBOSE")) fprintf(stderr, "%s\n", msg);
}

static void log_reset(void) { loglen = 0; logbuf[0] = '\0'; }

// --- Fixtures -------------------------------------------------------------------------------------

static void write_text(const char *dir, const char *rel, const char *text) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    sc_test_write(path, text, strlen(text));
}

static void add_search(sc_run *run, int search, int K) {
    sc_search_config cfg;
    sc_search_config_default(&cfg);
    cfg.batch_size = 2;
    cfg.prompts_per_search = 2 * K;
    cfg.max_new_tokens = 2;
    sc_search_state *s = NULL;
    CHECK_OK(sc_search_state_create(sc_test_backend(), &cfg, search, 2, 8, &s));
    if (!s) return;
    const size_t nA = sc_adapter_numel_A(s->adapter), nB = sc_adapter_numel_B(s->adapter);
    for (int k = 0; k < K; k++) {
        sc_step_record *r = &s->steps[k];
        const double t = (double)k / (K > 1 ? K - 1 : 1);
        r->kl = 0.05 + 2.5 * t * t + 0.1 * sin(k + search);
        r->nll = 3.0 - 1.2 * t + 0.05 * cos(3.0 * k);
        r->loss = 1.1 * -r->kl + 0.3 * r->nll;
        r->n_pos = 4;
        for (int j = 0; j < 2; j++) { r->prompt_idx[j] = 2 * k + j; r->gen_len[j] = 0; }
        memset(r->A, 0, nA * sizeof(float));
        memset(r->B, 0, nB * sizeof(float));
    }
    s->steps_done = K;
    sc_results_meta meta = {.model_dir = "/models/Qwen2-0.5B | tiny `test` model", .config_json = "{\"search\": {\"seed\": 7}}", .n_layers = 2, .hidden = 8};
    CHECK_OK(sc_results_add_search(run, s, &meta));
    sc_search_state_free(s);
}

static const char *const hostile[] = {
    "Uses pipes | like | this, and a \\| escaped one",
    "Line one\nline two\r\nline three\u2028line four",
    "Backticks `rm -rf /` and ``double`` ticks",
    "<script>alert(1)</script> & <b>bold</b> <http://example.com>",
    "Café, résumé, naïve — 中文主题 😀👍🏽 emoji",
    "*stars* _under_ [link](javascript:alert(1)) $x^2$ ~strike~ # not a heading",
    "It's a quote ' and \"double\" '; system('touch PWNED') ; '",
};

// One judged side: n themes for batches 0..n-1 (batch `failed` has no answer).
static cJSON *side_json(int search, int side, int n, int failed) {
    cJSON *arr = cJSON_CreateArray();
    for (int b = 0; b < n; b++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "batch", b);
        cJSON_AddItemToObject(o, "prompt_ids", cJSON_CreateArray());
        if (b == failed) {
            cJSON_AddStringToObject(o, "status", "failed");
            cJSON_AddStringToObject(o, "error", "HTTP 503 after 5 attempts");
        } else {
            cJSON_AddStringToObject(o, "status", "ok");
            char text[256];
            const int k = (search * 13 + side * 5 + b) % 10;
            if (search == 0 && side == 0 && b == 5) cJSON_AddNullToObject(o, "theme");
            else if (search == 0 && side == 1 && b == 4) {
                char *longtext = malloc(3001);
                for (int i = 0; i < 3000; i++) longtext[i] = "long theme "[i % 11];
                longtext[3000] = '\0';
                cJSON_AddStringToObject(o, "theme", longtext);
                free(longtext);
            } else if (k < 7) cJSON_AddStringToObject(o, "theme", hostile[k]);
            else {
                snprintf(text, sizeof text, "Plain theme %d of search %d, %s side", b + 1, search, side ? "direction" : "adapter");
                cJSON_AddStringToObject(o, "theme", text);
            }
            cJSON_AddStringToObject(o, "reasoning", "because");
            cJSON_AddItemToObject(o, "prompts", cJSON_CreateArray());
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

typedef struct { int search, na, nb, failed_b; double w; } judged_spec;

// /judge (embeddings: adapter theme i a random unit-ish vector, direction theme j the same
// vector of theme j mixed with noise by w; w < 0 gives negative cosines), themes.json, then
// the score stage.
static void add_judge_and_scores(sc_run *run, const char *dir, const judged_spec *spec, int n) {
    enum { DIM = 12 };
    sc_judge_record *rec = calloc((size_t)n, sizeof *rec);
    cJSON *doc = cJSON_CreateObject(), *settings = cJSON_AddObjectToObject(doc, "settings");
    cJSON_AddStringToObject(settings, "provider", "testprov");
    cJSON_AddStringToObject(settings, "model", "judge-model-x");
    cJSON_AddStringToObject(settings, "embed_model", "embed-model-y");
    cJSON_AddNumberToObject(settings, "batches", 8);
    cJSON_AddNumberToObject(settings, "batch_size", 16);
    cJSON_AddNumberToObject(settings, "scale", 2);
    cJSON_AddStringToObject(doc, "date", "2031-02-03T04:05:06Z");
    cJSON *arr = cJSON_AddArrayToObject(doc, "searches");
    for (int k = 0; k < n; k++) {
        const judged_spec *p = &spec[k];
        sc_judge_record *r = &rec[k];
        r->search = p->search;
        r->dim = DIM;
        r->n[0] = p->na;
        r->n[1] = p->nb - (p->failed_b >= 0);
        r->answered[0] = r->n[0];
        r->answered[1] = r->n[1];
        for (int s = 0; s < 2; s++) {
            r->emb[s] = calloc((size_t)(r->n[s] ? r->n[s] : 1) * DIM, sizeof(float));
            r->batch_of[s] = calloc((size_t)(r->n[s] ? r->n[s] : 1), sizeof(int));
        }
        for (int i = 0; i < p->na; i++) {
            r->batch_of[0][i] = i;
            for (int d = 0; d < DIM; d++) r->emb[0][i * DIM + d] = sc_rng_uniform(11, (uint64_t)(p->search * 100 + i), (uint64_t)d) * 2 - 1;
        }
        for (int b = 0, j = 0; b < p->nb; b++) {
            if (b == p->failed_b) continue;
            r->batch_of[1][j] = b;
            for (int d = 0; d < DIM; d++) {
                const float noise = sc_rng_uniform(12, (uint64_t)(p->search * 100 + b), (uint64_t)d) * 2 - 1;
                const float same = b < p->na ? r->emb[0][b * DIM + d] : noise;
                r->emb[1][j * DIM + d] = (float)p->w * same + (float)(1 - fabs(p->w)) * noise;
            }
            j++;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "search", p->search);
        cJSON_AddStringToObject(e, "adapter_file", "eval/adapter.json");
        cJSON_AddStringToObject(e, "direction_file", "eval/direction.json");
        cJSON_AddItemToObject(e, "adapter", side_json(p->search, 0, p->na, -1));
        cJSON_AddItemToObject(e, "direction", side_json(p->search, 1, p->nb, p->failed_b));
        cJSON_AddItemToArray(arr, e);
    }
    sc_judge_meta m = {.provider = "testprov", .model = "judge-model-x", .embed_model = "embed-model-y", .date = "2031-02-03T04:05:06Z",
                       .batches = 8, .batch_size = 16, .scale = 2};
    CHECK_OK(sc_results_write_judge(run, &m, rec, n));
    char path[4400];
    snprintf(path, sizeof path, "%s/judge", dir);
    CHECK_OK(sc_mkdir_p(path));
    char *text = cJSON_Print(doc);
    write_text(dir, "judge/themes.json", text);
    free(text);
    cJSON_Delete(doc);
    for (int k = 0; k < n; k++) sc_judge_record_free(&rec[k]);
    free(rec);
    sc_judge_config jc;
    memset(&jc, 0, sizeof jc);
    jc.threshold = 0.83f;
    CHECK_OK(sc_score_run(run, &jc));
}

static void add_quantify(const char *dir, int search, const char *trait2) {
    static const double scales[] = {-5, -2, 0, 1, 4, 7};
    static const char *const needs[] = {"low", "medium", "high"};
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "search", search);
    cJSON_AddNumberToObject(doc, "linearity", 0.87);
    cJSON_AddStringToObject(doc, "date", "2031-02-04T00:00:00Z");
    cJSON *j = cJSON_AddObjectToObject(doc, "judge");
    cJSON_AddStringToObject(j, "provider", "testprov");
    cJSON_AddStringToObject(j, "model", "judge-model-x");
    cJSON_AddObjectToObject(doc, "settings");
    cJSON *sweep = cJSON_AddArrayToObject(doc, "sweep");
    const char *traits[2] = {"empathetic", trait2};
    for (int i = 5; i >= 0; i--) {               // out of order on purpose
        const double s = scales[i];
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "scale", s);
        cJSON_AddNumberToObject(p, "outputs", 60);
        cJSON *qm = cJSON_AddObjectToObject(p, "question_marks");
        cJSON_AddNumberToObject(qm, "mean", 0.4 + 0.08 * s * s / 7);
        cJSON_AddNumberToObject(qm, "sd", 0.5);
        cJSON_AddNumberToObject(qm, "se", 0.06 + 0.01 * fabs(s));
        cJSON *w = cJSON_AddObjectToObject(p, "words");
        cJSON_AddNumberToObject(w, "mean", 80 - 3 * s);
        cJSON_AddNumberToObject(w, "sd", 20);
        cJSON_AddNumberToObject(w, "se", 2.6);
        if (s == 0) { cJSON_AddNullToObject(p, "traits"); cJSON_AddItemToArray(sweep, p); continue; }
        cJSON *tr = cJSON_AddObjectToObject(p, "traits");
        for (int t = 0; t < 2; t++) {
            cJSON *o = cJSON_AddObjectToObject(tr, traits[t]);
            const int answers = 120, wins = (int)(60 + (t ? -1 : 1) * 7 * s);
            double lo, hi;
            sc_wilson_interval(wins, answers, &lo, &hi);
            cJSON_AddNumberToObject(o, "wins", wins);
            cJSON_AddNumberToObject(o, "answers", answers);
            cJSON_AddNumberToObject(o, "failed", 0);
            cJSON_AddNumberToObject(o, "rate", (double)wins / answers);
            cJSON_AddNumberToObject(o, "ci_low", lo);
            cJSON_AddNumberToObject(o, "ci_high", hi);
            cJSON_AddNumberToObject(o, "agree", 0.8);
            cJSON *bn = cJSON_AddObjectToObject(o, "by_need");
            for (int nd = 0; nd < 3; nd++) {
                cJSON *x = cJSON_AddObjectToObject(bn, needs[nd]);
                const int a = 40, wn = wins / 3 + (nd - 1) * 2 < 0 ? 0 : wins / 3 + (nd - 1) * 2 > 40 ? 40 : wins / 3 + (nd - 1) * 2;
                sc_wilson_interval(wn, a, &lo, &hi);
                cJSON_AddNumberToObject(x, "wins", wn);
                cJSON_AddNumberToObject(x, "answers", a);
                cJSON_AddNumberToObject(x, "rate", (double)wn / a);
                cJSON_AddNumberToObject(x, "ci_low", lo);
                cJSON_AddNumberToObject(x, "ci_high", hi);
            }
        }
        cJSON_AddItemToArray(sweep, p);
    }
    char rel[64], path[4400];
    snprintf(path, sizeof path, "%s/quantify", dir);
    CHECK_OK(sc_mkdir_p(path));
    snprintf(rel, sizeof rel, "quantify/search_%04d.json", search);
    char *text = cJSON_Print(doc);
    write_text(dir, rel, text);
    free(text);
    cJSON_Delete(doc);
}

// --- Checks ----------------------------------------------------------------------------------------

static char *read_md(const char *dir) {
    char path[4400], *text = NULL;
    snprintf(path, sizeof path, "%s/report.md", dir);
    CHECK_OK(sc_read_file(path, &text, NULL));
    return text ? text : sc_strdup("");
}

static int have_gnuplot(void) { return system("gnuplot --version >/dev/null 2>&1") == 0; }

static int png_ok(const char *path) {
    char *data = NULL;
    size_t len = 0;
    if (sc_read_file(path, &data, &len) != SC_OK) { sc_error_clear(); return 0; }
    const int ok = len > 100 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8) && !memcmp(data + len - 8, "IEND", 4);
    free(data);
    return ok;
}

// Every image link of report.md points at a complete PNG; returns how many links.
static int check_links(const char *dir, const char *md) {
    int n = 0;
    for (const char *p = md; (p = strstr(p, "](report/")); p++) {
        const char *start = p + 2, *end = strchr(start, ')');
        CHECK(end != NULL);
        if (!end) break;
        char path[4400];
        snprintf(path, sizeof path, "%s/%.*s", dir, (int)(end - start), start);
        CHECKF(png_ok(path), "report.md links %s, which is not a complete PNG", path);
        n++;
    }
    return n;
}

// Unescaped pipes of a table row.
static int cells(const char *line, size_t len) {
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\\') { i++; continue; }
        n += line[i] == '|';
    }
    return n;
}

// The rows of the theme tables and the ranking table: their pipes, no raw backtick or tag.
static void check_tables(const char *md) {
    int theme_rows = 0, rank_rows = 0;
    for (const char *line = md; *line;) {
        const char *nl = strchr(line, '\n');
        const size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 3 && (!strncmp(line, "| A", 3) || !strncmp(line, "| D", 3))) {
            theme_rows++;
            CHECKF(cells(line, len) == 5, "theme row with %d cell borders: %.*s", cells(line, len), (int)len, line);
            for (size_t i = 0; i < len; i++) {
                if (line[i] == '\\') { i++; continue; }
                CHECKF(line[i] != '`' && line[i] != '<', "unescaped %c in a theme row: %.*s", line[i], (int)len, line);
            }
        }
        if (len > 4 && line[0] == '|' && line[1] == ' ' && line[2] >= '1' && line[2] <= '9') {
            int rk, s;
            if (sscanf(line, "| %d | %d |", &rk, &s) == 2 && strstr(line, "↔")) {
                rank_rows++;
                CHECKF(cells(line, len) == 6, "ranking row with %d cell borders: %.*s", cells(line, len), (int)len, line);
            }
        }
        line += len + (nl != NULL);
    }
    CHECKF(theme_rows >= 20, "only %d theme rows", theme_rows);
    CHECKF(rank_rows == 5, "%d ranking rows, want 5", rank_rows);
}

// The ranking table lists the searches in scores.json's order.
static void check_order(const char *dir, const char *md) {
    char path[4400], *text = NULL;
    snprintf(path, sizeof path, "%s/scores.json", dir);
    CHECK_OK(sc_read_file(path, &text, NULL));
    cJSON *doc = cJSON_Parse(text);
    free(text);
    const cJSON *e;
    int k = 0;
    const char *at = strstr(md, "## Ranking");
    CHECK(at != NULL);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "ranking")) {
        char row[64];
        k++;
        snprintf(row, sizeof row, "\n| %d | %d | ", k, cJSON_GetObjectItem(e, "search")->valueint);
        const char *p = at ? strstr(at, row) : NULL;
        CHECKF(p != NULL, "ranking row '%s' missing or out of order", row + 1);
        if (p) at = p;
        char head[64];   // the search sections follow the same order
        snprintf(head, sizeof head, "### Search %d: Linearity", cJSON_GetObjectItem(e, "search")->valueint);
        CHECKF(strstr(md, head) != NULL, "no section '%s'", head);
    }
    CHECK(k == 5);
    cJSON_Delete(doc);
}

typedef struct { char name[256]; struct timespec mtime; } stamp;

static int stamps(const char *dir, stamp *v, int cap) {
    char path[4400];
    snprintf(path, sizeof path, "%s/report", dir);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && n < cap && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        struct stat st;
        snprintf(path, sizeof path, "%s/report/%s", dir, e->d_name);
        if (stat(path, &st)) continue;
        snprintf(v[n].name, sizeof v[n].name, "%s", e->d_name);
        v[n++].mtime = st.st_mtim;
    }
    if (d) closedir(d);
    return n;
}

static int grep_files(const char *dir, const char *ext, const char *needle) {
    char path[4400];
    snprintf(path, sizeof path, "%s/report", dir);
    DIR *d = opendir(path);
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || strcmp(dot, ext)) continue;
        char *text = NULL;
        snprintf(path, sizeof path, "%s/report/%s", dir, e->d_name);
        if (sc_read_file(path, &text, NULL) == SC_OK && strstr(text, needle)) found++;
        free(text);
    }
    if (d) closedir(d);
    return found;
}

// --- Tests -------------------------------------------------------------------------------------

static void test_escapers(void) {
    sc_sb b = {0};
    sc_sb_md_text(&b, "  a|b\\c`d<e>&f\n\r\n g\xff h\u202e!*_~[]$  ", 100);
    CHECKF(!strcmp(sc_sb_str(&b), "a\\|b\\\\c\\`d&lt;e&gt;&amp;f g\xef\xbf\xbd h !\\*\\_\\~\\[\\]\\$"), "md: %s", sc_sb_str(&b));
    sc_sb_free(&b);
    sc_sb_md_text(&b, "éééé", 2);
    CHECKF(!strcmp(sc_sb_str(&b), "éé … (cut at 2 characters)"), "md cut: %s", sc_sb_str(&b));
    sc_sb_free(&b);
    sc_sb_gp_string(&b, "it's `x` @m\nsystem('y')", 100);
    CHECKF(!strcmp(sc_sb_str(&b), "'it''s `x` @m system(''y'')'"), "gp: %s", sc_sb_str(&b));
    sc_sb_free(&b);
    sc_sb_gp_string(&b, "é中😀x", 10);     // CJK and emoji: not in the figures' font
    CHECKF(!strcmp(sc_sb_str(&b), "'é??x'"), "gp font: %s", sc_sb_str(&b));
    sc_sb_free(&b);
    sc_sb_gp_string(&b, "abcdef", 3);
    CHECKF(!strcmp(sc_sb_str(&b), "'abc...'"), "gp cut: %s", sc_sb_str(&b));
    sc_sb_free(&b);
    sc_sb_num(&b, -0.001, 2);
    sc_sb_puts(&b, " ");
    sc_sb_num(&b, NAN, 2);
    CHECKF(!strcmp(sc_sb_str(&b), "0.00 n/a"), "num: %s", sc_sb_str(&b));
    sc_sb_free(&b);
}

static void run_report(const char *dir, sc_status want) {
    sc_run *run = NULL;
    CHECK_OK(sc_run_open(dir, SC_RUN_WRITE, "report", &run));
    if (!run) return;
    sc_judge_config jc;
    memset(&jc, 0, sizeof jc);
    jc.threshold = 0.83f;
    log_reset();
    sc_status st = sc_report_run(run, &jc);
    CHECKF(st == want, "report of %s: %s (want %s): %s", dir, sc_status_name(st), sc_status_name(want), sc_last_error());
    sc_run_close(run);
}

static void make_dir(const char *dir) { CHECK_OK(sc_mkdir_p(dir)); }

int main(int argc, char **argv) {
    sc_log_set(capture, NULL);
    const double t0 = sc_now_seconds();
    const int gp = have_gnuplot();
    if (!gp) printf("gnuplot is not installed: the figure checks are skipped\n");
    test_escapers();
    char dir[4096];

    if (argc == 3 && !strcmp(argv[1], "--many")) {   // a big run to look at, kept
        const int n = atoi(argv[2]);
        snprintf(dir, sizeof dir, "%s/many", sc_test_tmpdir());
        sc_run *run = NULL;
        CHECK_OK(sc_run_open(dir, SC_RUN_WRITE, "test", &run));
        judged_spec *spec = calloc((size_t)n, sizeof *spec);
        for (int s = 0; s < n; s++) {
            add_search(run, s, 16);
            spec[s] = (judged_spec){s, 6, 6, -1, 1.0 - 1.6 * s / (n > 1 ? n - 1 : 1)};
        }
        add_judge_and_scores(run, dir, spec, n);
        add_quantify(dir, 0, "prescriptive");
        sc_run_close(run);
        free(spec);
        run_report(dir, SC_OK);
        printf("%s", logbuf);
        printf("kept: %s\n", dir);
        setenv("SC_KEEP_TMP", "1", 1);
        return sc_test_finish("test_report");
    }

    // no results.h5
    snprintf(dir, sizeof dir, "%s/empty", sc_test_tmpdir());
    make_dir(dir);
    {
        sc_run *run = NULL;
        CHECK_OK(sc_run_open(dir, SC_RUN_READ, "report", &run));
        CHECK_ERR(sc_report_run(run, NULL), SC_ERR_ARG, "results.h5 does not exist", "steerclear search");
        sc_run_close(run);
    }

    // searches only
    snprintf(dir, sizeof dir, "%s/partial", sc_test_tmpdir());
    {
        sc_run *run = NULL;
        CHECK_OK(sc_run_open(dir, SC_RUN_WRITE, "test", &run));
        add_search(run, 0, 16);
        add_search(run, 3, 1);
        sc_run_close(run);
        run_report(dir, SC_OK);
        char *md = read_md(dir);
        CHECK(strstr(md, "## Not in this report yet"));
        CHECK(strstr(md, "steerclear judge --run"));
        CHECK(strstr(md, "steerclear score --run"));
        CHECK(strstr(md, "steerclear quantify --run"));
        CHECK(strstr(md, "not judged yet"));
        CHECK(strstr(md, "/models/Qwen2-0.5B \\| tiny \\`test\\` model"));
        CHECK(strstr(md, "### Search 3"));
        if (gp) CHECK(check_links(dir, md) == 2);
        free(md);
    }

    // the full run
    snprintf(dir, sizeof dir, "%s/full", sc_test_tmpdir());
    {
        sc_run *run = NULL;
        CHECK_OK(sc_run_open(dir, SC_RUN_WRITE, "test", &run));
        for (int s = 0; s < 6; s++) add_search(run, s, s == 1 ? 1 : 16);
        const judged_spec spec[] = {
            {0, 6, 6, -1, 0.95},     // 6 x 6, close
            {1, 1, 1, -1, 0.6},      // 1 x 1
            {2, 8, 6, -1, 0.7},      // 8 x 6: two adapter themes unmatched
            {3, 6, 6, 2, 0.5},       // a failed direction batch: 6 x 5
            {4, 6, 6, -1, -0.8},     // negative cosines
        };
        add_judge_and_scores(run, dir, spec, 5);
        sc_run_close(run);
        add_quantify(dir, 0, "prescriptive");
        add_quantify(dir, 4, "o'clock é 中文 `touch PWNED2` @x'; system('touch PWNED') ; '");
        write_text(dir, "quantify/search_0002.json", "{\"search\": 2, \"sweep\": [{\"sca");

        run_report(dir, SC_OK);
        char *md = read_md(dir);
        CHECK(strstr(md, "testprov") && strstr(md, "judge-model-x") && strstr(md, "embed-model-y") && strstr(md, "2031-02-03T04:05:06Z"));
        CHECK(strstr(md, "8 batches × 16 outputs"));
        check_order(dir, md);
        check_tables(md);
        CHECK(strstr(md, "Line one line two line three line four"));
        CHECK(strstr(md, "Uses pipes \\| like \\| this, and a \\\\\\| escaped one"));
        CHECK(strstr(md, "&lt;script&gt;") && !strstr(md, "<script>") && !strstr(md, "<b>"));
        CHECK(strstr(md, "Café, résumé, naïve — 中文主题 😀👍🏽 emoji"));
        CHECK(strstr(md, "(cut at 2000 characters)"));
        CHECK(strstr(md, "no theme: the judge saw nothing"));
        CHECK(strstr(md, "Left out of the score (the judge gave no answer): D3"));
        CHECK(strstr(md, "A7 (unmatched)") && strstr(md, "A8 (unmatched)"));
        CHECK(strstr(md, "1 finished search without a score"));
        CHECK(strstr(md, "quantify/search\\_0002.json is left out"));
        CHECK(!strstr(md, "No scores"));
        CHECK(strstr(md, "## Scale sweeps"));
        CHECK(strstr(md, "| 7 | 60 | "));
        CHECK(strstr(md, "need medium"));
        CHECK(grep_files(dir, ".gp", "Uses pipes") == 0 && grep_files(dir, ".gp", "Line one") == 0);
        CHECK(grep_files(dir, ".gp", "title 'o''clock é ?? `touch PWNED2` @x'';") == 1);
        if (gp) {
            const int links = check_links(dir, md);
            CHECKF(links == 1 + 5 + 6 + 2 + 2, "%d image links", links);
            CHECK(strstr(logbuf, "figures drawn"));
            char path[4400];
            snprintf(path, sizeof path, "%s/report/PWNED", dir);
            CHECK(!sc_file_exists(path));
            snprintf(path, sizeof path, "%s/report/PWNED2", dir);
            CHECK(!sc_file_exists(path));
        }
        free(md);

        // again: nothing drawn, nothing rewritten
        stamp before[128], after[128];
        const int nb = stamps(dir, before, 128);
        CHECK(nb >= (gp ? 3 : 2) * 16);
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        run_report(dir, SC_OK);
        const int na = stamps(dir, after, 128);
        CHECK(na == nb);
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < na; j++)
                if (!strcmp(before[i].name, after[j].name))
                    CHECKF(before[i].mtime.tv_sec == after[j].mtime.tv_sec && before[i].mtime.tv_nsec == after[j].mtime.tv_nsec,
                           "report/%s was written again", before[i].name);
        if (gp) CHECKF(strstr(logbuf, "16 figures up to date") && !strstr(logbuf, "figures drawn"), "log: %s", logbuf);

        // one PNG gone: only it is drawn again
        char path[4400];
        snprintf(path, sizeof path, "%s/report/heatmap_0002.png", dir);
        unlink(path);
        run_report(dir, SC_OK);
        if (gp) CHECKF(strstr(logbuf, "1 figures drawn") && png_ok(path), "log: %s", logbuf);
    }

    // gnuplot missing, then failing, then there
    snprintf(dir, sizeof dir, "%s/nognuplot", sc_test_tmpdir());
    {
        sc_run *run = NULL;
        CHECK_OK(sc_run_open(dir, SC_RUN_WRITE, "test", &run));
        add_search(run, 0, 4);
        add_search(run, 1, 4);
        const judged_spec spec[] = {{0, 2, 2, -1, 0.9}, {1, 2, 2, -1, 0.3}};
        add_judge_and_scores(run, dir, spec, 2);
        sc_run_close(run);
        const char *old = getenv("PATH");
        char *saved = sc_strdup(old ? old : "/usr/bin:/bin");
        char fake[4400];
        snprintf(fake, sizeof fake, "%s/fakebin", sc_test_tmpdir());
        setenv("PATH", fake, 1);                  // no gnuplot there (yet)
        run_report(dir, SC_OK);
        char *md = read_md(dir);
        CHECKF(strstr(logbuf, "WARN report: gnuplot is not installed"), "log: %s", logbuf);
        CHECK(strstr(md, "figures are missing") && strstr(md, "apt-get install gnuplot-nox"));
        CHECK(strstr(md, "*Figure report/ranking.png is missing: gnuplot is not installed"));
        CHECK(check_links(dir, md) == 0);
        CHECK(strstr(md, "## Ranking"));
        free(md);
        make_dir(fake);
        write_text(fake, "gnuplot", "#!/bin/sh\necho 'gnuplot: something broke' >&2\nexit 1\n");
        char gpath[4500];
        snprintf(gpath, sizeof gpath, "%s/gnuplot", fake);
        chmod(gpath, 0755);
        run_report(dir, SC_OK);
        md = read_md(dir);
        CHECKF(strstr(logbuf, "WARN report: figure") && strstr(logbuf, "something broke"), "log: %s", logbuf);
        CHECK(strstr(md, "figures are missing") && strstr(md, "something broke"));
        free(md);
        setenv("PATH", saved, 1);
        free(saved);
        if (gp) {
            run_report(dir, SC_OK);
            md = read_md(dir);
            CHECK(!strstr(md, "missing"));
            CHECK(check_links(dir, md) == 5);
            free(md);
        }
    }
    printf("test_report: %.1f s\n", sc_now_seconds() - t0);
    return sc_test_finish("test_report");
}
