// prompts.c — the judge's prompts and the checks of its answers, shared by the providers that
// ask a language model (gemini.c, openai.c through cache.c, and local.c): the prompt files'
// sections, placeholder substitution, rendering a batch or a pair, and parsing the JSON answer
// (see steerclear/judge_prompts.h). Leaves out: how a provider sends the prompts (wire formats,
// chat templates) and what it does with a failed answer (retries, repair turns).
#include "steerclear/judge_prompts.h"
#include "steerclear/json.h"
#include "steerclear/judge_net.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// ---------------------------------------------------------------------------------------
// Prompt files

const char *sc_judge_prompts_dir_default(void) {
#ifdef SC_PROMPTS_DIR
    return SC_PROMPTS_DIR;
#else
    return "prompts";
#endif
}

// Split a prompt file into its "=== system ===" and "=== user ===" sections (text before the
// first marker is a description and is not sent).
static sc_status load_template(const char *dir, const char *file, const char *const *need, char **system, char **user) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return sc_errorf(SC_ERR_ARG, "prompts folder '%s': path too long", dir);
    char *text;
    size_t len;
    if (sc_read_file(path, &text, &len) != SC_OK)
        return sc_error_wrap(SC_ERR_IO, "judge prompt file (set prompts_dir, or run from the source tree): ");
    char *sec[2] = {NULL, NULL};
    static const char *marks[2] = {"=== system ===", "=== user ==="};
    for (int s = 0; s < 2; s++) {
        size_t ml = strlen(marks[s]);
        for (char *p = text; (p = strstr(p, marks[s])); p += ml) {
            if ((p == text || p[-1] == '\n') && (p[ml] == '\n' || p[ml] == '\r' || p[ml] == '\0')) { sec[s] = p; break; }
        }
        if (!sec[s]) { free(text); return sc_errorf(SC_ERR_FORMAT, "%s: no line '%s' (the file needs a system and a user section)", path, marks[s]); }
    }
    if (sec[1] < sec[0]) { free(text); return sc_errorf(SC_ERR_FORMAT, "%s: the '=== system ===' section must come before '=== user ==='", path); }
    char *sys_start = strchr(sec[0], '\n') + 1, *user_start = strchr(sec[1], '\n');
    user_start = user_start ? user_start + 1 : sec[1] + strlen(sec[1]);
    char *sys_end = sec[1];
    *sys_end = '\0';
    // trim surrounding blank lines and spaces
    char *parts[2] = {sys_start, user_start};
    char *outs[2] = {NULL, NULL};
    for (int s = 0; s < 2; s++) {
        char *a = parts[s], *b = a + strlen(a);
        while (*a && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        *b = '\0';
        if (!*a) { free(outs[0]); free(text); return sc_errorf(SC_ERR_FORMAT, "%s: the %s section is empty", path, s ? "user" : "system"); }
        if (!(outs[s] = sc_strdup(a))) { free(outs[0]); free(text); return SC_ERR_MEM; }
    }
    free(text);
    for (const char *const *n = need; n && *n; n++)
        if (!strstr(outs[0], *n) && !strstr(outs[1], *n)) {
            free(outs[0]); free(outs[1]);
            return sc_errorf(SC_ERR_FORMAT, "%s: the placeholder %s appears in neither section", path, *n);
        }
    *system = outs[0];
    *user = outs[1];
    return SC_OK;
}

sc_status sc_judge_prompts_load(const char *dir, sc_judge_prompts *p) {
    memset(p, 0, sizeof *p);
    if (!dir || !*dir) dir = sc_judge_prompts_dir_default();
    static const char *const need_theme[] = {"{{items}}", NULL};
    static const char *const need_compare[] = {"{{trait}}", "{{a}}", "{{b}}", NULL};
    sc_status st = load_template(dir, "judge_theme.txt", need_theme, &p->theme_system, &p->theme_user);
    if (st == SC_OK) st = load_template(dir, "judge_compare.txt", need_compare, &p->compare_system, &p->compare_user);
    if (st != SC_OK) sc_judge_prompts_release(p);
    return st;
}

sc_status sc_judge_prompt_file_load(const char *dir, const char *file, const char *const *need, char **system, char **user) {
    *system = *user = NULL;
    if (!dir || !*dir) dir = sc_judge_prompts_dir_default();
    return load_template(dir, file, need, system, user);
}

void sc_judge_prompts_release(sc_judge_prompts *p) {
    if (!p) return;
    free(p->theme_system);
    free(p->theme_user);
    free(p->compare_system);
    free(p->compare_user);
    memset(p, 0, sizeof *p);
}

// ---------------------------------------------------------------------------------------
// Rendering

typedef struct { char *p; size_t len, cap; int oom; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s ? s : "", s ? strlen(s) : 0); }

// Replace {{name}} by its value in one pass (inserted text is never searched again).
static char *substitute(const char *tmpl, const char *const *names, const char *const *values, int nv) {
    sbuf b = {0};
    for (const char *p = tmpl; *p;) {
        const char *open = strstr(p, "{{");
        if (!open) { sb_str(&b, p); break; }
        sb_add(&b, p, (size_t)(open - p));
        int hit = -1;
        for (int k = 0; k < nv && hit < 0; k++) {
            size_t nl = strlen(names[k]);
            if (!strncmp(open + 2, names[k], nl) && !strncmp(open + 2 + nl, "}}", 2)) hit = k;
        }
        if (hit < 0) { sb_add(&b, "{{", 2); p = open + 2; continue; }
        sb_str(&b, values[hit]);
        p = open + 2 + strlen(names[hit]) + 2;
    }
    if (b.oom) { free(b.p); return NULL; }
    if (!b.p) return sc_strdup("");
    return b.p;
}

char *sc_judge_prompt_fill(const char *tmpl, const char *const *names, const char *const *values, int n) {
    return substitute(tmpl, names, values, n);
}

sc_status sc_judge_prompts_theme(const sc_judge_prompts *pr, const sc_judge_batch *b, char **system, char **user) {
    sbuf items = {0}, ids = {0};
    char num[32];
    for (int i = 0; i < b->n; i++) {
        const sc_judge_item *it = &b->items[i];
        snprintf(num, sizeof num, "%d", it->prompt_id);
        sb_str(&items, i ? "\n\n<item id=\"" : "<item id=\"");
        sb_str(&items, num);
        sb_str(&items, "\">\n<prompt>\n");
        sb_str(&items, it->prompt);
        sb_str(&items, "\n</prompt>\n<base_completion>\n");
        sb_str(&items, it->original);
        sb_str(&items, "\n</base_completion>\n<modified_output>\n");
        sb_str(&items, it->output);
        sb_str(&items, "\n</modified_output>\n</item>");
        sb_str(&ids, i ? ", " : "");
        sb_str(&ids, num);
    }
    snprintf(num, sizeof num, "%d", b->n);
    const char *names[] = {"items", "ids", "n"};
    const char *values[] = {items.p ? items.p : "", ids.p ? ids.p : "", num};
    *system = items.oom || ids.oom ? NULL : substitute(pr->theme_system, names, values, 3);
    *user = items.oom || ids.oom ? NULL : substitute(pr->theme_user, names, values, 3);
    free(items.p);
    free(ids.p);
    if (!*system || !*user) { free(*system); free(*user); *system = *user = NULL; return sc_errorf(SC_ERR_MEM, "out of memory rendering a judge prompt"); }
    return SC_OK;
}

sc_status sc_judge_prompts_compare(const sc_judge_prompts *pr, const sc_judge_pair *p, char **system, char **user) {
    const char *names[] = {"trait", "prompt", "a", "b"};
    const char *values[] = {p->trait ? p->trait : "", p->prompt ? p->prompt : "", p->a ? p->a : "", p->b ? p->b : ""};
    *system = substitute(pr->compare_system, names, values, 4);
    *user = substitute(pr->compare_user, names, values, 4);
    if (!*system || !*user) { free(*system); free(*user); *system = *user = NULL; return sc_errorf(SC_ERR_MEM, "out of memory rendering a judge prompt"); }
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Answers

void sc_judge_excerpt(const char *text, size_t max, char *out, size_t cap) {
    size_t w = 0;
    if (cap < 4) { if (cap) out[0] = '\0'; return; }
    if (max > cap - 4) max = cap - 4;
    for (size_t i = 0; text && text[i] && w < max; i++) {
        unsigned char c = (unsigned char)text[i];
        out[w++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    if (text && strlen(text) > max) {
        // cut before a UTF-8 character the limit splits (the excerpt goes into messages, JSON
        // files and prompts, which need valid UTF-8)
        if (((unsigned char)text[w] & 0xC0) == 0x80) {
            while (w > 0 && ((unsigned char)out[w - 1] & 0xC0) == 0x80) w--;
            if (w > 0 && (unsigned char)out[w - 1] >= 0xC0) w--;
        }
        memcpy(out + w, "...", 3);
        w += 3;
    }
    out[w] = '\0';
}

const char *sc_judge_answer_object(const char *text, size_t *len) {
    *len = 0;
    const char *a = text ? strchr(text, '{') : NULL, *b = text ? strrchr(text, '}') : NULL;
    if (!a || !b || b < a) return NULL;
    *len = (size_t)(b - a) + 1;
    return a;
}

void sc_judge_batch_ids(const sc_judge_batch *b, char *out, size_t cap) {
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < b->n && at + 16 < cap; i++) {
        if (at > 100) { snprintf(out + at, cap - at, ", ..."); break; }
        at += (size_t)snprintf(out + at, cap - at, "%s%d", i ? ", " : "", b->items[i].prompt_id);
    }
}

// Parse the judge's answer text; code fences (```json ... ```) around it are tolerated.
static cJSON *parse_answer(const char *text, sc_status *st) {
    char ex[240];
    if (!text) { *st = sc_errorf(SC_ERR_FORMAT, "the judge's answer is empty"); return NULL; }
    const char *a = text;
    while (isspace((unsigned char)*a)) a++;
    size_t n = strlen(a);
    while (n && isspace((unsigned char)a[n - 1])) n--;
    if (n >= 6 && !strncmp(a, "```", 3) && !strncmp(a + n - 3, "```", 3)) {
        const char *nl = memchr(a, '\n', n);
        if (nl) { n -= (size_t)(nl + 1 - a) + 3; a = nl + 1; }
    }
    cJSON *root = cJSON_ParseWithLength(a, n);
    if (!root) {
        sc_judge_excerpt(text, 200, ex, sizeof ex);
        *st = sc_errorf(SC_ERR_FORMAT, "the judge's answer is not valid JSON: \"%s\"", ex);
        return NULL;
    }
    if (sc_json_check_object(root, "the judge's answer", NULL) != SC_OK) {
        *st = sc_error_wrap(SC_ERR_FORMAT, "the judge's answer breaks the schema: ");
        cJSON_Delete(root);
        return NULL;
    }
    *st = SC_OK;
    return root;
}

cJSON *sc_judge_answer_parse(const char *text, sc_status *st) { return parse_answer(text, st); }

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

sc_status sc_judge_parse_theme(const char *text, const sc_judge_batch *b, const char *where, sc_judge_theme *out) {
    memset(out, 0, sizeof *out);
    sc_status st;
    cJSON *root = parse_answer(text, &st);
    if (!root) return st;
    const cJSON *reasoning = cJSON_GetObjectItemCaseSensitive(root, "reasoning");
    const cJSON *theme = cJSON_GetObjectItemCaseSensitive(root, "theme");
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    const char *bad = NULL;
    if (!cJSON_IsString(reasoning)) bad = reasoning ? "\"reasoning\" is not a string" : "\"reasoning\" is missing";
    else if (!theme) bad = "\"theme\" is missing (it must be a string or null)";
    else if (!cJSON_IsString(theme) && !cJSON_IsNull(theme)) bad = "\"theme\" is neither a string nor null";
    else if (!cJSON_IsArray(prompts)) bad = prompts ? "\"prompts\" is not an array" : "\"prompts\" is missing";
    else {
        const cJSON *v;
        cJSON_ArrayForEach(v, prompts) if (!sc_json_is_int(v, INT_MIN, INT_MAX)) { bad = "\"prompts\" holds something that is not an integer"; break; }
    }
    if (bad) { cJSON_Delete(root); return sc_errorf(SC_ERR_FORMAT, "the judge's answer breaks the schema: %s", bad); }
    int np = cJSON_GetArraySize(prompts), kept = 0, dropped = 0;
    out->prompts = np ? malloc((size_t)np * sizeof *out->prompts) : NULL;
    out->reasoning = sc_strdup(reasoning->valuestring);
    const char *t = cJSON_IsString(theme) ? theme->valuestring : NULL;
    while (t && isspace((unsigned char)*t)) t++;
    if (t && *t) out->theme = sc_strdup(t);
    if ((np && !out->prompts) || !out->reasoning || (t && *t && !out->theme)) {
        cJSON_Delete(root);
        sc_judge_theme_free(out);
        return sc_errorf(SC_ERR_MEM, "out of memory reading the judge's answer");
    }
    const cJSON *v;
    char dropped_list[128] = "";
    cJSON_ArrayForEach(v, prompts) {
        int id = (int)v->valuedouble, in = 0, dup = 0;
        for (int i = 0; i < b->n && !in; i++) in = b->items[i].prompt_id == id;
        for (int k = 0; k < kept && !dup; k++) dup = out->prompts[k] == id;
        if (!in) {
            size_t l = strlen(dropped_list);
            if (l < sizeof dropped_list - 16) snprintf(dropped_list + l, sizeof dropped_list - l, "%s%d", dropped ? ", " : "", id);
            dropped++;
            continue;
        }
        if (!dup) out->prompts[kept++] = id;
    }
    out->n_prompts = kept;
    if (kept > 1) qsort(out->prompts, (size_t)kept, sizeof *out->prompts, cmp_int);
    if (dropped) sc_log(SC_LOG_WARN, "%s: the judge cites prompt id%s %s%s that %s not in the batch; dropped", where ? where : "judge",
                        dropped == 1 ? "" : "s", dropped_list, strlen(dropped_list) >= sizeof dropped_list - 16 ? ", ..." : "", dropped == 1 ? "is" : "are");
    cJSON_Delete(root);
    out->status = SC_OK;
    return SC_OK;
}

sc_status sc_judge_parse_verdict(const char *text, sc_judge_verdict *out) {
    memset(out, 0, sizeof *out);
    sc_status st;
    cJSON *root = parse_answer(text, &st);
    if (!root) return st;
    const cJSON *reasoning = cJSON_GetObjectItemCaseSensitive(root, "reasoning");
    const cJSON *more = cJSON_GetObjectItemCaseSensitive(root, "more");
    const char *bad = NULL;
    if (!cJSON_IsString(reasoning)) bad = reasoning ? "\"reasoning\" is not a string" : "\"reasoning\" is missing";
    else if (!cJSON_IsString(more)) bad = more ? "\"more\" is not a string" : "\"more\" is missing";
    else if (strcasecmp(more->valuestring, "A") && strcasecmp(more->valuestring, "B")) bad = "\"more\" is neither \"A\" nor \"B\"";
    if (bad) { cJSON_Delete(root); return sc_errorf(SC_ERR_FORMAT, "the judge's answer breaks the schema: %s", bad); }
    out->winner = strcasecmp(more->valuestring, "A") ? 1 : 0;
    out->status = SC_OK;
    cJSON_Delete(root);
    return SC_OK;
}
