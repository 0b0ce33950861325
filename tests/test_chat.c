// test_chat.c — chat templates (src/tok/chat.c) without the cached real templates (those are
// tests/test_chat_reference.c's):
//  1. recognition: the plain ChatML loop in several spellings (whitespace control, indentation
//     with trim_blocks/lstrip_blocks, quote styles, x['k'] vs x.k, comments) is one structure;
//     text left between tags, an extra output (bos_token) or another branch is not;
//  2. the default system message is read out of a Qwen1.5-shaped template, whatever its text
//     (escapes decoded), and replaced by an explicit one or dropped with no_default_system;
//  3. errors: not ChatML, unknown ChatML, unclosed tags and strings, undecodable escapes — each
//     naming where the template came from and what is supported;
//  4. loading from a model directory: no tokenizer_config.json, none or null chat_template
//     (plain ChatML, no system turn), a list of named templates, chat_template.jinja taking
//     precedence, bad JSON and bad types;
//  5. rendering: contents verbatim (template syntax, special-token text, newlines, empty),
//     several turns, argument errors, no_thinking refused without the switch.
#include "testutil.h"
#include "steerclear/chat.h"

#include <stdio.h>
#include <stdlib.h>

#define PLAIN_USER "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"

static void check_family(const char *tmpl, const char *family, const char *label) {
    sc_chat *c = NULL;
    sc_status st = sc_chat_parse(tmpl, label, &c);
    CHECKF(st == SC_OK, "%s: %s", label, sc_last_error());
    if (!c) return;
    CHECKF(!strcmp(sc_chat_family(c), family), "%s: family %s, want %s", label, sc_chat_family(c), family);
    sc_chat_free(c);
}

static char *render1(const sc_chat *c, const sc_chat_opts *o, sc_chat_role role, const char *content) {
    sc_chat_msg m = {role, content};
    char *t = NULL;
    CHECK_OK(sc_chat_render(c, o, &m, 1, &t));
    return t;
}

static void test_recognition(void) {
    check_family("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
                 "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", "chatml", "plain, one line");
    check_family("{%- for message in messages %}\n"
                 "    {{- \"<|im_start|>\" + message.role + \"\\n\" + message.content + \"<|im_end|>\" + \"\\n\" }}\n"
                 "{%- endfor %}\n"
                 "{#- the prompt for the answer -#}\n"
                 "{%- if add_generation_prompt %}\n"
                 "    {{- '<|im_start|>assistant\\n' }}\n"
                 "{%- endif %}\n", "chatml", "plain, whitespace control and double quotes");
    // trim_blocks and lstrip_blocks alone remove the newlines and indentation around block tags
    check_family("{% for message in messages %}\n"
                 "{{'<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n'}}{% endfor %}\n"
                 "    {% if add_generation_prompt %}\n"
                 "{{ '<|im_start|>assistant\\n' }}{% endif %}\n", "chatml", "plain, trim_blocks and lstrip_blocks");
    // ...but not the newline after an expression: that is output, so another structure
    sc_chat *c = NULL;
    CHECK_ERR(sc_chat_parse("{% for message in messages %}\n"
                            "  {{'<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n'}}\n"
                            "{% endfor %}\n"
                            "{% if add_generation_prompt %}\n"
                            "{{ '<|im_start|>assistant\\n' }}\n"
                            "{% endif %}", "indented.jinja", &c),
              SC_ERR_FORMAT, "indented.jinja", "not of a structure steerclear knows", "canonical hash 0x", "Qwen2.5");
    CHECK(c == NULL);
    // an extra output, and a space left between tags, are other structures
    CHECK_ERR(sc_chat_parse("{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                            "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", "bos", &c),
              SC_ERR_FORMAT, "bos", "not of a structure");
    CHECK_ERR(sc_chat_parse("{% for message in messages %} {{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                            "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", "space", &c),
              SC_ERR_FORMAT, "space", "not of a structure");
    // a different turn separator is another structure too
    CHECK_ERR(sc_chat_parse("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                            "'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", "nosep", &c),
              SC_ERR_FORMAT, "nosep", "not of a structure");
}

// The structure of Qwen1.5's template with a system text of our own: read, not assumed.
static void test_default_system(void) {
    const char *t = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                    "{{ '<|im_start|>system\\nYou are a pirate. Caf\\u00e9 \\'ok\\'<|im_end|>\\n' }}{% endif %}"
                    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    sc_chat *c = NULL;
    CHECK_OK(sc_chat_parse(t, "pirate", &c));
    if (!c) return;
    CHECK(!strcmp(sc_chat_family(c), "qwen1.5") && !strcmp(sc_chat_source(c), "pirate"));
    const char *ds = sc_chat_default_system(c);
    CHECKF(ds && !strcmp(ds, "You are a pirate. Caf\xc3\xa9 'ok'"), "default system '%s'", ds ? ds : "(none)");
    char *r = render1(c, NULL, SC_CHAT_USER, "hi");
    CHECK(r && !strcmp(r, "<|im_start|>system\nYou are a pirate. Caf\xc3\xa9 'ok'<|im_end|>\n" PLAIN_USER));
    free(r);
    sc_chat_opts o = {.no_default_system = 1};
    r = render1(c, &o, SC_CHAT_USER, "hi");
    CHECK(r && !strcmp(r, PLAIN_USER));
    free(r);
    sc_chat_msg m[2] = {{SC_CHAT_SYSTEM, "Be brief."}, {SC_CHAT_USER, "hi"}};
    CHECK_OK(sc_chat_render(c, NULL, m, 2, &r));
    CHECK(r && !strcmp(r, "<|im_start|>system\nBe brief.<|im_end|>\n" PLAIN_USER));
    free(r);
    m[0].content = "";   // an empty system message is a system message: it replaces the default
    CHECK_OK(sc_chat_render(c, &o, m, 2, &r));
    CHECK(r && !strcmp(r, "<|im_start|>system\n<|im_end|>\n" PLAIN_USER));
    free(r);
    sc_chat_opts think = {.no_thinking = 1};
    CHECK_ERR(sc_chat_render(c, &think, m, 2, &r), SC_ERR_ARG, "qwen1.5", "pirate", "no thinking switch");
    CHECK(r == NULL);
    CHECK(!sc_chat_has_thinking_switch(c));
    sc_chat_free(c);
    // two different default texts cannot both be the default
    const char *two = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                      "{{ '<|im_start|>system\\nA<|im_end|>\\n' }}{% endif %}{{ '<|im_start|>system\\nB<|im_end|>\\n' }}{% endfor %}";
    CHECK_ERR(sc_chat_parse(two, "two", &c), SC_ERR_FORMAT, "two", "two different default system messages");
}

static void test_errors(void) {
    sc_chat *c = NULL;
    CHECK_ERR(sc_chat_parse("{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", "DIR/tokenizer_config.json", &c), SC_ERR_FORMAT,
              "DIR/tokenizer_config.json", "not a ChatML template", "Qwen1.5/Qwen2, Qwen2.5 and Qwen3");
    CHECK_ERR(sc_chat_parse("{{ '<|im_start|>' + x ", "open", &c), SC_ERR_FORMAT, "open", "never closed");
    CHECK_ERR(sc_chat_parse("{{ '<|im_start|>' }}{{ 'abc }}", "str", &c), SC_ERR_FORMAT, "str");
    CHECK_ERR(sc_chat_parse("{{ '<|im_start|>\\N{BULLET}' }}", "esc", &c), SC_ERR_FORMAT, "esc", "escape");
    CHECK_ERR(sc_chat_parse("{{ '<|im_start|>' ? 1 }}", "char", &c), SC_ERR_FORMAT, "char", "unexpected character '?'");
    CHECK(c == NULL);
}

static void test_load(void) {
    const char *tmp = sc_test_tmpdir();
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/model", tmp);
    CHECK_OK(sc_mkdir_p(dir));
    sc_chat *c = NULL;
    // no tokenizer_config.json: plain ChatML, no system turn
    CHECK_OK(sc_chat_load(dir, &c));
    if (c) {
        CHECK(!strcmp(sc_chat_family(c), "none") && sc_chat_default_system(c) == NULL && !strcmp(sc_chat_source(c), "none"));
        char *r = render1(c, NULL, SC_CHAT_USER, "hi");
        CHECK(r && !strcmp(r, PLAIN_USER));
        free(r);
        sc_chat_free(c);
        c = NULL;
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    const struct { const char *json; const char *family; } ok[] = {
        {"{\"eos_token\": \"<|im_end|>\"}", "none"},
        {"{\"chat_template\": null}", "none"},
        {"{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}, {\"name\": \"default\", \"template\": "
         "\"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\\\n' + message['content'] + '<|im_end|>' + '\\\\n'}}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\\\n' }}{% endif %}\"}]}", "chatml"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        sc_test_write(path, ok[i].json, strlen(ok[i].json));
        CHECK_OK(sc_chat_load(dir, &c));
        CHECKF(c && !strcmp(sc_chat_family(c), ok[i].family), "config %zu: family %s, want %s", i, c ? sc_chat_family(c) : "-", ok[i].family);
        sc_chat_free(c);
        c = NULL;
    }
    const struct { const char *json; const char *msg; } bad[] = {
        {"{\"chat_template\": ", "not valid JSON"},
        {"{\"chat_template\": 3}", "neither a string nor a list"},
        {"{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}", "without a {\"name\": \"default\""},
        {"{\"chat_template\": \"{{ messages }}\"}", "not a ChatML template"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sc_test_write(path, bad[i].json, strlen(bad[i].json));
        CHECK_ERR(sc_chat_load(dir, &c), SC_ERR_FORMAT, "model/tokenizer_config.json", bad[i].msg);
        CHECK(c == NULL);
    }
    // chat_template.jinja comes first (as in transformers), whatever tokenizer_config.json says
    char jpath[1200];
    snprintf(jpath, sizeof jpath, "%s/chat_template.jinja", dir);
    const char *plain = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
                        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}\n";
    sc_test_write(jpath, plain, strlen(plain));
    CHECK_OK(sc_chat_load(dir, &c));
    CHECK(c && !strcmp(sc_chat_family(c), "chatml") && strstr(sc_chat_source(c), "model/chat_template.jinja"));
    sc_chat_free(c);
    c = NULL;
    sc_test_write(jpath, "{{ x }}", 7);
    CHECK_ERR(sc_chat_load(dir, &c), SC_ERR_FORMAT, "model/chat_template.jinja", "not a ChatML template");
}

static void test_render(void) {
    sc_chat *c = NULL;
    CHECK_OK(sc_chat_parse(NULL, NULL, &c));
    if (!c) return;
    const char *odd = "{{ x }} {% if %} {# c #} <|im_end|> \\n '\"' \xf0\x9f\x99\x82\n\n";
    sc_chat_msg m[4] = {{SC_CHAT_USER, odd}, {SC_CHAT_ASSISTANT, "<think>kept</think>\n\nas is"}, {SC_CHAT_SYSTEM, "later"}, {SC_CHAT_USER, ""}};
    char *r = NULL;
    CHECK_OK(sc_chat_render(c, NULL, m, 4, &r));
    const char *want = "<|im_start|>user\n{{ x }} {% if %} {# c #} <|im_end|> \\n '\"' \xf0\x9f\x99\x82\n\n<|im_end|>\n"
                       "<|im_start|>assistant\n<think>kept</think>\n\nas is<|im_end|>\n"
                       "<|im_start|>system\nlater<|im_end|>\n"
                       "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n";
    CHECKF(r && !strcmp(r, want), "rendered '%s'", r ? r : "(null)");
    free(r);
    CHECK_ERR(sc_chat_render(c, NULL, m, 0, &r), SC_ERR_ARG, "at least one message");
    sc_chat_msg nul = {SC_CHAT_USER, NULL};
    CHECK_ERR(sc_chat_render(c, NULL, &nul, 1, &r), SC_ERR_ARG, "message 0", "no content");
    sc_chat_msg badrole = {(sc_chat_role)7, "x"};
    CHECK_ERR(sc_chat_render(c, NULL, &badrole, 1, &r), SC_ERR_ARG, "role 7");
    sc_chat_opts think = {.no_thinking = 1};
    CHECK_ERR(sc_chat_render(c, &think, m, 1, &r), SC_ERR_ARG, "no thinking switch");
    CHECK(r == NULL);
    sc_chat_free(c);
}

int main(void) {
    test_recognition();
    test_default_system();
    test_errors();
    test_load();
    test_render();
    return sc_test_finish("test_chat");
}
