// gemini.c — the Gemini API judge provider: the wire format of generateContent (answers as JSON
// following a responseSchema) and batchEmbedContents; batching, caching, retries and the
// checks of the answers are shared with openai.c (cache.c). The API key travels only in the
// x-goog-api-key header, never in the URL (?key=). Leaves out: streaming, safety settings
// (the API's defaults apply), function calling, and the Vertex AI endpoints.
#include "steerclear/judge_cache.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define GEMINI_EMBED_MAX 100   // texts per batchEmbedContents request (the API's limit)

static const char theme_schema[] =
    "{\"type\":\"OBJECT\",\"properties\":{"
    "\"reasoning\":{\"type\":\"STRING\"},"
    "\"theme\":{\"type\":\"STRING\",\"nullable\":true},"
    "\"prompts\":{\"type\":\"ARRAY\",\"items\":{\"type\":\"INTEGER\"}}},"
    "\"required\":[\"reasoning\",\"theme\",\"prompts\"],"
    "\"propertyOrdering\":[\"reasoning\",\"theme\",\"prompts\"]}";

static const char compare_schema[] =
    "{\"type\":\"OBJECT\",\"properties\":{"
    "\"reasoning\":{\"type\":\"STRING\"},"
    "\"more\":{\"type\":\"STRING\",\"enum\":[\"A\",\"B\"]}},"
    "\"required\":[\"reasoning\",\"more\"],"
    "\"propertyOrdering\":[\"reasoning\",\"more\"]}";

static const char openers_schema[] =
    "{\"type\":\"OBJECT\",\"properties\":{"
    "\"openers\":{\"type\":\"ARRAY\",\"items\":{\"type\":\"OBJECT\",\"properties\":{"
    "\"speaker\":{\"type\":\"STRING\"},\"text\":{\"type\":\"STRING\"}},"
    "\"required\":[\"speaker\",\"text\"],\"propertyOrdering\":[\"speaker\",\"text\"]}}},"
    "\"required\":[\"openers\"]}";

// {"parts": [{"text": text}]} (with a role when given)
static cJSON *content(const char *role, const char *text) {
    cJSON *c = cJSON_CreateObject(), *parts = cJSON_CreateArray(), *part = cJSON_CreateObject();
    if (role) cJSON_AddStringToObject(c, "role", role);
    cJSON_AddStringToObject(part, "text", text);
    cJSON_AddItemToArray(parts, part);
    cJSON_AddItemToObject(c, "parts", parts);
    return c;
}

static sc_status finish_call(cJSON *body, const char *model, const char *method, sc_judge_net_call *c) {
    char *json = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    size_t pl = strlen(model) + strlen(method) + 32;
    c->path = malloc(pl);
    if (!json || !c->path) { free(json); free(c->path); c->path = NULL; return sc_errorf(SC_ERR_MEM, "gemini: out of memory building a request"); }
    snprintf(c->path, pl, "/v1beta/models/%s:%s", model, method);
    c->body = json;
    c->body_len = strlen(json);
    return SC_OK;
}

static sc_status gemini_chat_call(const sc_judge_net *net, const char *model, sc_judge_ask ask,
                                  const char *system, const char *user, sc_judge_net_call *c) {
    cJSON *body = cJSON_CreateObject(), *contents = cJSON_CreateArray(), *gen = cJSON_CreateObject();
    cJSON *schema = cJSON_Parse(ask == SC_JUDGE_ASK_THEME ? theme_schema : ask == SC_JUDGE_ASK_COMPARE ? compare_schema : openers_schema);
    cJSON_AddItemToObject(body, "systemInstruction", content(NULL, system));
    cJSON_AddItemToArray(contents, content("user", user));
    cJSON_AddItemToObject(body, "contents", contents);
    if (net->temperature >= 0) cJSON_AddNumberToObject(gen, "temperature", net->temperature);
    cJSON_AddStringToObject(gen, "responseMimeType", "application/json");
    cJSON_AddItemToObject(gen, "responseSchema", schema);
    cJSON_AddItemToObject(body, "generationConfig", gen);
    return finish_call(body, model, "generateContent", c);
}

static sc_status gemini_chat_text(const char *body, size_t len, char **text) {
    *text = NULL;
    cJSON *root = NULL;
    SC_TRY(sc_judge_net_parse_object(body, len, &root));
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(root, "candidates");
    const cJSON *c0 = cJSON_IsArray(cands) ? cJSON_GetArrayItem(cands, 0) : NULL;
    if (!cJSON_IsObject(c0)) {
        const cJSON *block = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "promptFeedback"), "blockReason");
        sc_status st = cJSON_IsString(block)
            ? sc_errorf(SC_ERR_FORMAT, "Gemini blocked the request (promptFeedback.blockReason %s)", block->valuestring)
            : sc_errorf(SC_ERR_FORMAT, "the response has no candidates");
        cJSON_Delete(root);
        return st;
    }
    const cJSON *finish = cJSON_GetObjectItemCaseSensitive(c0, "finishReason");
    if (cJSON_IsString(finish) && strcmp(finish->valuestring, "STOP")) {
        sc_status st = sc_errorf(SC_ERR_FORMAT, "the answer ended early (finishReason %s)%s", finish->valuestring,
                                 !strcmp(finish->valuestring, "MAX_TOKENS") ? ": it was cut off at the token limit" : "");
        cJSON_Delete(root);
        return st;
    }
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c0, "content"), "parts");
    if (!cJSON_IsArray(parts)) parts = NULL;
    size_t total = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, parts) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t) && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "thought"))) total += strlen(t->valuestring);
    }
    if (total == 0) { cJSON_Delete(root); return sc_errorf(SC_ERR_FORMAT, "the response's candidate has no text"); }
    char *out = malloc(total + 1);
    if (!out) { cJSON_Delete(root); return sc_errorf(SC_ERR_MEM, "out of memory reading an answer"); }
    size_t at = 0;
    cJSON_ArrayForEach(part, parts) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(t) || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "thought"))) continue;
        size_t n = strlen(t->valuestring);
        memcpy(out + at, t->valuestring, n);
        at += n;
    }
    out[at] = '\0';
    cJSON_Delete(root);
    *text = out;
    return SC_OK;
}

static sc_status gemini_embed_call(const sc_judge_net *net, const char *model, const char *const *texts, int n, sc_judge_net_call *c) {
    (void)net;
    char name[300];
    snprintf(name, sizeof name, "models/%s", model);
    cJSON *body = cJSON_CreateObject(), *reqs = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "model", name);
        cJSON_AddItemToObject(r, "content", content(NULL, texts[i]));
        cJSON_AddStringToObject(r, "taskType", "SEMANTIC_SIMILARITY");
        cJSON_AddItemToArray(reqs, r);
    }
    cJSON_AddItemToObject(body, "requests", reqs);
    return finish_call(body, model, "batchEmbedContents", c);
}

static sc_status gemini_embed_parse(const char *body, size_t len, int first, int n, float **per_text, int *lens) {
    char ex[240];
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *embs = cJSON_GetObjectItemCaseSensitive(root, "embeddings");
    if (!cJSON_IsArray(embs)) {
        sc_judge_excerpt(body, 200, ex, sizeof ex);
        cJSON_Delete(root);
        return sc_errorf(SC_ERR_FORMAT, "the response has no \"embeddings\" array: \"%s\"", ex);
    }
    if (cJSON_GetArraySize(embs) != n) {
        int got = cJSON_GetArraySize(embs);
        cJSON_Delete(root);
        return sc_errorf(SC_ERR_FORMAT, "the response holds %d embeddings for %d texts", got, n);
    }
    int j = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, embs) {
        sc_status st = sc_judge_net_floats(cJSON_GetObjectItemCaseSensitive(e, "values"), &per_text[j], &lens[j]);
        if (st != SC_OK) {
            for (int k = 0; k < j; k++) { free(per_text[k]); per_text[k] = NULL; }
            cJSON_Delete(root);
            return sc_error_wrap(st, "text %d: ", first + j);
        }
        j++;
    }
    cJSON_Delete(root);
    return SC_OK;
}

static const sc_judge_net_dialect gemini_dialect = {
    .chat_call = gemini_chat_call,
    .chat_text = gemini_chat_text,
    .embed_call = gemini_embed_call,
    .embed_parse = gemini_embed_parse,
};

// A Gemini model name goes into the URL path: letters, digits, '.', '-', '_' only.
static sc_status check_model(const char *what, const char *m) {
    if (!*m) return sc_errorf(SC_ERR_ARG, "gemini: the %s name is empty", what);
    for (const char *c = m; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_')
            return sc_errorf(SC_ERR_ARG, "gemini: %s name '%s' holds '%c'; use a name like gemini-2.0-flash (without \"models/\")", what, m, *c);
    return SC_OK;
}

sc_status sc_provider_gemini(const sc_judge_net_opts *o, sc_provider **out) {
    *out = NULL;
    sc_judge_net_opts def, opts;
    sc_judge_net_opts_default(&def, "gemini");
    opts = o ? *o : def;
    // "models/gemini-2.0-flash" is accepted and means gemini-2.0-flash
    if (opts.model && !strncmp(opts.model, "models/", 7)) opts.model += 7;
    if (opts.embed_model && !strncmp(opts.embed_model, "models/", 7)) opts.embed_model += 7;
    SC_TRY(check_model("model", opts.model && *opts.model ? opts.model : def.model));
    SC_TRY(check_model("embed_model", opts.embed_model && *opts.embed_model ? opts.embed_model : def.embed_model));
    if (opts.embed_batch <= 0 || opts.embed_batch > GEMINI_EMBED_MAX) opts.embed_batch = GEMINI_EMBED_MAX;
    return sc_judge_net_provider_new("gemini", &gemini_dialect, &opts, &def, "x-goog-api-key: ", 0, out);
}
