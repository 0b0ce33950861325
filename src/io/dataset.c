// dataset.c — the prompt CSV reader (RFC 4180 with a header row) for the train and test sets.
//
// Implements: UTF-8 validation (via utf8proc) and a skipped UTF-8 byte-order mark; quoted fields
// that span lines and hold `""`, commas and newlines; LF or CRLF line endings (a CRLF inside a
// quoted field becomes LF, so prompts do not depend on the editor that saved the file); columns
// found by header name in any order, extra columns ignored; blank lines (trailing or between
// records) skipped. Every error names the file, the line and what to do.
// Leaves out: other delimiters, other encodings, streaming (the whole file is read at once;
// prompt files are a few hundred kilobytes), and any check of what a prompt says.
#include "steerclear/dataset.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

// ---------------------------------------------------------------------------------------
// Input checks that come before parsing

static int line_at(const char *buf, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += buf[i] == '\n';
    return line;
}

// Rejects NUL bytes and invalid UTF-8 (overlong forms, surrogates, truncated sequences).
static sc_status check_text(const char *path, const char *buf, size_t len) {
    if (len >= 2 && (((unsigned char)buf[0] == 0xFF && (unsigned char)buf[1] == 0xFE) ||
                     ((unsigned char)buf[0] == 0xFE && (unsigned char)buf[1] == 0xFF)))
        return sc_errorf(SC_ERR_FORMAT, "%s:1: the file looks like UTF-16 (byte-order mark %02X %02X); "
                         "save it as UTF-8", path, (unsigned char)buf[0], (unsigned char)buf[1]);
    const char *nul = memchr(buf, '\0', len);
    if (nul)
        return sc_errorf(SC_ERR_FORMAT, "%s:%d: NUL byte at byte offset %zu; a prompt file must be "
                         "UTF-8 text (is it UTF-16 or binary?)", path, line_at(buf, (size_t)(nul - buf)),
                         (size_t)(nul - buf));
    size_t i = 0;
    while (i < len) {
        if ((unsigned char)buf[i] < 0x80) { i++; continue; }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)buf + i,
                                              (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0)
            return sc_errorf(SC_ERR_FORMAT, "%s:%d: invalid UTF-8 at byte offset %zu (byte 0x%02X); "
                             "save the file as UTF-8", path, line_at(buf, i), i, (unsigned char)buf[i]);
        i += (size_t)n;
    }
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// The record scanner. Unescaped field text is written into `out` (never longer than the
// input: quotes and CRs are only removed), so fields are NUL-terminated pointers into it.

typedef struct {
    const char *path;
    const char *p, *end;  // cursor into the input
    int line;             // line of *p (1-based)
    char *out;            // unescaped field bytes
    size_t out_len;
    char **fields;        // fields of the current record, pointers into out
    size_t n_fields, cap_fields;
    int record_line;      // line where the current record starts
} csv_scan;

static sc_status push_field(csv_scan *s, char *start) {
    if (s->n_fields == s->cap_fields) {
        size_t cap = s->cap_fields ? 2 * s->cap_fields : 8;
        char **f = realloc(s->fields, cap * sizeof *f);
        if (!f) return sc_errorf(SC_ERR_MEM, "%s: out of memory for CSV fields", s->path);
        s->fields = f;
        s->cap_fields = cap;
    }
    s->out[s->out_len++] = '\0';
    s->fields[s->n_fields++] = start;
    return SC_OK;
}

static int at_line_end(const csv_scan *s) {
    return s->p < s->end && (*s->p == '\n' || (*s->p == '\r' && s->p + 1 < s->end && s->p[1] == '\n'));
}

static void skip_line_end(csv_scan *s) {
    if (*s->p == '\r') s->p++;
    s->p++;
    s->line++;
}

// Reads one record into s->fields. *got is 0 at end of input. Blank lines are skipped.
static sc_status next_record(csv_scan *s, int *got) {
    *got = 0;
    s->n_fields = 0;
    while (at_line_end(s)) skip_line_end(s);
    if (s->p >= s->end) return SC_OK;
    s->record_line = s->line;
    for (;;) {
        char *start = s->out + s->out_len;
        if (s->p < s->end && *s->p == '"') {
            int quote_line = s->line;
            s->p++;
            for (;;) {
                if (s->p >= s->end)
                    return sc_errorf(SC_ERR_FORMAT, "%s:%d: unterminated quoted field (the quote opened on "
                                     "line %d is never closed); close it, and write a quote inside a "
                                     "quoted field as \"\"", s->path, quote_line, quote_line);
                char c = *s->p;
                if (c == '"') {
                    if (s->p + 1 < s->end && s->p[1] == '"') { s->out[s->out_len++] = '"'; s->p += 2; continue; }
                    s->p++;
                    break;
                }
                if (c == '\r' && s->p + 1 < s->end && s->p[1] == '\n') { s->p++; continue; }  // CRLF -> LF
                if (c == '\n') s->line++;
                s->out[s->out_len++] = c;
                s->p++;
            }
            if (s->p < s->end && *s->p != ',' && !at_line_end(s))
                return sc_errorf(SC_ERR_FORMAT, "%s:%d: text after the closing quote of a quoted field "
                                 "(a quoted field must end with the quote); put the whole field in quotes "
                                 "and write the inner quote as \"\"", s->path, s->line);
        } else {
            while (s->p < s->end && *s->p != ',' && !at_line_end(s)) {
                char c = *s->p;
                if (c == '"')
                    return sc_errorf(SC_ERR_FORMAT, "%s:%d: stray quote inside an unquoted field; put the "
                                     "field in quotes and write the quote as \"\"", s->path, s->line);
                if (c == '\r')
                    return sc_errorf(SC_ERR_FORMAT, "%s:%d: carriage return without a line feed; save the "
                                     "file with LF or CRLF line endings", s->path, s->line);
                s->out[s->out_len++] = c;
                s->p++;
            }
        }
        SC_TRY(push_field(s, start));
        if (s->p >= s->end) break;
        if (*s->p == ',') { s->p++; continue; }
        skip_line_end(s);
        break;
    }
    *got = 1;
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Columns

enum { COL_CATEGORY, COL_PROMPT, COL_FULL_PROMPT, COL_ORIGINAL_COMPLETION, N_COLS };
static const char *const col_names[N_COLS] = {"category", "prompt", "full_prompt", "original_completion"};

// The header as "a,b,c" for messages (truncated to the buffer).
static void header_text(const csv_scan *s, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->n_fields && n + 1 < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%s", i ? "," : "", s->fields[i]);
        if (w < 0) break;
        n += (size_t)w;
    }
}

// Header names match after trimming surrounding spaces and tabs.
static int header_is(const char *field, const char *name) {
    while (*field == ' ' || *field == '\t') field++;
    size_t n = strlen(field);
    while (n && (field[n - 1] == ' ' || field[n - 1] == '\t')) n--;
    return n == strlen(name) && !memcmp(field, name, n);
}

static int is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

static sc_status map_header(csv_scan *s, sc_dataset_kind kind, int col[N_COLS]) {
    int required[N_COLS] = {1, kind == SC_DATASET_TEST, 1, 0};
    int wanted[N_COLS] = {1, kind == SC_DATASET_TEST, 1, kind == SC_DATASET_TEST};
    char hdr[512];
    header_text(s, hdr, sizeof hdr);
    const char *need = kind == SC_DATASET_TEST ? "category,prompt,full_prompt" : "category,full_prompt";
    for (int c = 0; c < N_COLS; c++) {
        col[c] = -1;
        if (!wanted[c]) continue;
        for (size_t i = 0; i < s->n_fields; i++) {
            if (!header_is(s->fields[i], col_names[c])) continue;
            if (col[c] >= 0)
                return sc_errorf(SC_ERR_FORMAT, "%s:%d: column '%s' appears twice in the header (%s); "
                                 "keep one", s->path, s->record_line, col_names[c], hdr);
            col[c] = (int)i;
        }
        if (required[c] && col[c] < 0) {
            int other_sep = s->n_fields == 1 && (strchr(s->fields[0], ';') || strchr(s->fields[0], '\t'));
            return sc_errorf(SC_ERR_FORMAT, "%s:%d: missing required column '%s'; the header found is '%s' "
                             "but a %s file needs the columns %s (in any order)%s", s->path, s->record_line,
                             col_names[c], hdr, kind == SC_DATASET_TEST ? "test" : "train", need,
                             other_sep ? "; the file seems to use ';' or tabs between columns: save it with commas" : "");
        }
    }
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Loading

static void prompt_free(sc_prompt *p) {
    free(p->category);
    free(p->prompt);
    free(p->full_prompt);
    free(p->original_completion);
}

void sc_dataset_free(sc_dataset *ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) prompt_free(&ds->items[i]);
    free(ds->items);
    ds->items = NULL;
    ds->n = 0;
}

static sc_status dup_field(const char *src, char **dst) {
    *dst = sc_strdup(src);
    return *dst ? SC_OK : SC_ERR_MEM;
}

static sc_status make_prompt(csv_scan *s, const int col[N_COLS], sc_prompt *p) {
    memset(p, 0, sizeof *p);
    p->line = s->record_line;
    for (int c = 0; c < N_COLS; c++) {
        if (col[c] < 0) continue;
        const char *v = s->fields[col[c]];
        if (c != COL_ORIGINAL_COMPLETION && is_blank(v)) {
            const char *what = c == COL_CATEGORY ? "category" : col_names[c];
            return sc_errorf(SC_ERR_FORMAT, "%s:%d: empty %s; every row needs a non-empty %s%s",
                             s->path, s->record_line, what, what,
                             c == COL_CATEGORY ? " (a short name for the prompt's scene)" : " (or delete the row)");
        }
    }
    sc_status st = SC_OK;
    if (st == SC_OK) st = dup_field(s->fields[col[COL_CATEGORY]], &p->category);
    if (st == SC_OK) st = dup_field(s->fields[col[COL_FULL_PROMPT]], &p->full_prompt);
    if (st == SC_OK && col[COL_PROMPT] >= 0) st = dup_field(s->fields[col[COL_PROMPT]], &p->prompt);
    if (st == SC_OK && col[COL_ORIGINAL_COMPLETION] >= 0)
        st = dup_field(s->fields[col[COL_ORIGINAL_COMPLETION]], &p->original_completion);
    if (st != SC_OK) prompt_free(p);
    return st;
}

static sc_status load_records(csv_scan *s, sc_dataset_kind kind, sc_dataset *out) {
    int got;
    SC_TRY(next_record(s, &got));
    const char *need = kind == SC_DATASET_TEST ? "category,prompt,full_prompt" : "category,full_prompt";
    if (!got)
        return sc_errorf(SC_ERR_FORMAT, "%s:1: the file is empty; it needs a header row (%s) and at "
                         "least one prompt", s->path, need);
    int col[N_COLS];
    SC_TRY(map_header(s, kind, col));
    size_t n_cols = s->n_fields;
    int header_line = s->record_line;
    size_t cap = 0;
    for (;;) {
        SC_TRY(next_record(s, &got));
        if (!got) break;
        if (s->n_fields != n_cols)
            return sc_errorf(SC_ERR_FORMAT, "%s:%d: record has %zu field%s but the header has %zu; "
                             "quote fields that contain commas or line breaks", s->path, s->record_line,
                             s->n_fields, s->n_fields == 1 ? "" : "s", n_cols);
        if (out->n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            sc_prompt *items = realloc(out->items, ncap * sizeof *items);
            if (!items) return sc_errorf(SC_ERR_MEM, "%s: out of memory for %zu prompts", s->path, ncap);
            out->items = items;
            cap = ncap;
        }
        SC_TRY(make_prompt(s, col, &out->items[out->n]));
        out->n++;
    }
    if (out->n == 0)
        return sc_errorf(SC_ERR_FORMAT, "%s:%d: the file has a header but no prompts; add at least one row "
                         "after the header", s->path, header_line);
    return SC_OK;
}

sc_status sc_dataset_load(const char *path, sc_dataset_kind kind, sc_dataset *out) {
    out->items = NULL;
    out->n = 0;
    if (kind != SC_DATASET_TRAIN && kind != SC_DATASET_TEST)
        return sc_errorf(SC_ERR_INTERNAL, "%s: unknown dataset kind %d", path, (int)kind);
    char *buf;
    size_t len;
    SC_TRY(sc_read_file(path, &buf, &len));
    sc_status st = check_text(path, buf, len);
    if (st != SC_OK) { free(buf); return st; }
    size_t skip = len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3) ? 3 : 0;
    csv_scan s = {.path = path, .p = buf + skip, .end = buf + len, .line = 1};
    s.out = sc_malloc(len + 1, path);
    if (!s.out) { free(buf); return SC_ERR_MEM; }
    st = load_records(&s, kind, out);
    free(s.fields);
    free(s.out);
    free(buf);
    if (st != SC_OK) sc_dataset_free(out);
    return st;
}
