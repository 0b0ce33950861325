// scenarios.c — the dataset generator's scenario specs (datasets/scenarios.json; see
// steerclear/datagen.h). Checks every scenario's keys and values and names the file, the
// scenario (index and name) and the key in each error. Leaves out: what a scenario says (any
// scene is fine) and other versions of the format.
#include "steerclear/datagen.h"
#include "steerclear/json.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

void sc_scenarios_free(sc_scenarios *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        sc_scenario *c = &s->items[i];
        free(c->name); free(c->context); free(c->dynamic); free(c->roles[0]); free(c->roles[1]);
        for (int t = 0; t < c->n_topics; t++) free(c->topics[t]);
        free(c->topics);
    }
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

// A non-empty single-line string without chat markup (it goes into prompts).
static sc_status one_line(const char *where, const char *key, const cJSON *v, int markup_ok, char **out) {
    if (!v) return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" is missing", where, key);
    if (!cJSON_IsString(v)) return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" must be a string", where, key);
    const char *s = v->valuestring;
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (!n) return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" is empty; write some text", where, key);
    if (memchr(s, '\n', n) || memchr(s, '\r', n))
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" holds a line break; it must be one line (it becomes a line of the prompt)", where, key);
    if (!markup_ok && (strstr(s, "<|") || strstr(s, "|>")))
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" holds chat-template markup (<| or |>); remove it", where, key);
    if (utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, NULL, 0, 0) < 0)
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" is not valid UTF-8", where, key);
    if (!(*out = sc_malloc(n + 1, "a scenario string"))) return SC_ERR_MEM;
    memcpy(*out, s, n);
    (*out)[n] = '\0';
    return SC_OK;
}

static sc_status parse_one(const cJSON *obj, const char *file, int idx, sc_scenario *c) {
    char where[512];
    snprintf(where, sizeof where, "%s: scenario %d", file, idx);
    static const char *const keys[] = {"name", "context", "dynamic", "roles", "topics", NULL};
    if (!cJSON_IsObject(obj)) return sc_errorf(SC_ERR_FORMAT, "%s: must be a JSON object {\"name\", \"context\", \"dynamic\", \"roles\", \"topics\"}", where);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "name");
    if (cJSON_IsString(name) && *name->valuestring && strlen(name->valuestring) < 200)
        snprintf(where, sizeof where, "%s: scenario %d (%s)", file, idx, name->valuestring);
    SC_TRY(sc_json_check_object(obj, where, keys));
    SC_TRY(one_line(where, "name", name, 0, &c->name));
    for (const char *p = c->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return sc_errorf(SC_ERR_FORMAT, "%s: key \"name\" '%s' holds '%c'; use snake_case: lower-case letters, digits and _ (it is the dataset's category)",
                             where, c->name, *p);
    SC_TRY(one_line(where, "context", cJSON_GetObjectItemCaseSensitive(obj, "context"), 0, &c->context));
    SC_TRY(one_line(where, "dynamic", cJSON_GetObjectItemCaseSensitive(obj, "dynamic"), 0, &c->dynamic));
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(obj, "roles");
    if (!roles) return sc_errorf(SC_ERR_FORMAT, "%s: key \"roles\" is missing; give the two speakers' names, e.g. [\"Nurse Ada\", \"Dr. Osei\"]", where);
    if (!cJSON_IsArray(roles) || cJSON_GetArraySize(roles) != 2)
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"roles\" must be an array of exactly two names", where);
    for (int r = 0; r < 2; r++) {
        char key[16];
        snprintf(key, sizeof key, "roles[%d]", r);
        SC_TRY(one_line(where, key, cJSON_GetArrayItem(roles, r), 0, &c->roles[r]));
        if (strchr(c->roles[r], ':')) return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" '%s' holds ':'; a role name is a plain name", where, key, c->roles[r]);
    }
    if (!strcasecmp(c->roles[0], c->roles[1]))
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"roles\": both roles are '%s'; the two speakers need different names", where, c->roles[0]);
    const cJSON *topics = cJSON_GetObjectItemCaseSensitive(obj, "topics");
    if (!topics) return sc_errorf(SC_ERR_FORMAT, "%s: key \"topics\" is missing; list what the openers may be about", where);
    if (!cJSON_IsArray(topics) || cJSON_GetArraySize(topics) < 1)
        return sc_errorf(SC_ERR_FORMAT, "%s: key \"topics\" must be a non-empty array of strings", where);
    int nt = cJSON_GetArraySize(topics);
    if (!(c->topics = sc_calloc((size_t)nt, sizeof *c->topics, "scenario topics"))) return SC_ERR_MEM;
    for (int t = 0; t < nt; t++) {
        char key[32];
        snprintf(key, sizeof key, "topics[%d]", t);
        sc_status st = one_line(where, key, cJSON_GetArrayItem(topics, t), 0, &c->topics[t]);
        if (st) return st;
        c->n_topics++;
    }
    return SC_OK;
}

sc_status sc_scenarios_parse(const char *text, const char *where, sc_scenarios *out) {
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; at && p < at && *p; p++) line += *p == '\n';
        return sc_errorf(SC_ERR_FORMAT, "%s:%d: not valid JSON (near line %d); fix the file", where, line, line);
    }
    static const char *const keys[] = {"version", "description", "scenarios", NULL};
    sc_status st = sc_json_check_object(root, where, keys);
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "scenarios");
    if (!st && ver && !sc_json_is_int(ver, 1, 1))
        st = sc_errorf(SC_ERR_FORMAT, "%s: key \"version\" must be 1 (the only version this steerclear reads)", where);
    if (!st && !cJSON_IsArray(arr))
        st = sc_errorf(SC_ERR_FORMAT, "%s: key \"scenarios\" %s; it must be an array of scenario objects", where, arr ? "is not an array" : "is missing");
    if (!st && cJSON_GetArraySize(arr) == 0) st = sc_errorf(SC_ERR_FORMAT, "%s: key \"scenarios\" is empty; add at least one scenario", where);
    if (!st) {
        int n = cJSON_GetArraySize(arr);
        if (!(out->items = sc_calloc((size_t)n, sizeof *out->items, "scenarios"))) st = SC_ERR_MEM;
        const cJSON *it;
        int i = 0;
        cJSON_ArrayForEach(it, arr) {
            if (st) break;
            out->n = i + 1;
            st = parse_one(it, where, i, &out->items[i]);
            for (int j = 0; j < i && !st; j++)
                if (!strcmp(out->items[j].name, out->items[i].name))
                    st = sc_errorf(SC_ERR_FORMAT, "%s: scenario %d (%s): key \"name\" repeats scenario %d's; names must be unique (they are the categories)",
                                   where, i, out->items[i].name, j);
            i++;
        }
    }
    cJSON_Delete(root);
    if (st) sc_scenarios_free(out);
    return st;
}

sc_status sc_scenarios_load(const char *path, sc_scenarios *out) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    SC_TRY(sc_read_file(path, &text, NULL));
    sc_status st = sc_scenarios_parse(text, path, out);
    free(text);
    return st;
}
