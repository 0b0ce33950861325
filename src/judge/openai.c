// openai.c — the judge provider for OpenAI and any OpenAI-compatible server (vLLM, llama.cpp,
// ...): the wire format of /v1/chat/completions (answers as JSON following a strict
// json_schema response_format) and /v1/embeddings; batching, caching, retries and the checks of
// the answers are shared with gemini.c (cache.c). The API key travels only in the
// `Authorization: Bearer` header; api_key_env "" sends none (a local server). Leaves out:
// streaming, tools, the Responses and Batch APIs, and organisation/project headers.
#include "steerclear/judge_cache.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char theme_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"reasoning\":{\"type\":\"string\"},"
    "\"theme\":{\"type\":[\"string\",\"null\"]},"
    "\"prompts\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}},"
    "\"required\":[\"reasoning\",\"theme\",\"prompts\"],"
    "\"additionalProperties\":false}";

static const char compare_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"reasoning\":{\"type\":\"string\"},"
    "\"more\":{\"type\":\"string\",\"enum\":[\"A\",\"B\"]}},"
    "\"required\":[\"reasoning\",\"more\"],"
    "\"additionalProperties\":false}";

static const char openers_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"openers\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"speaker\":{\"type\":\"string\"},\"text\":{\"type\":\"string\"}},"
    "\"required\":[\"speaker\",\"text\"],\"additionalProperties\":false}}},"
    "\"required\":[\"openers\"],\"additionalProperties\":false}";

static sc_status finish_call(cJSON *body, const char *path, sc_judge_net_call *c) {
    char *json = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    c->path = sc_strdup(path);
    if (!json || !c->path) { free(json); free(c->path); c->path = NULL; return sc_errorf(SC_ERR_MEM, "openai: out of memory building a request"); }
    c->body = json;
    c->body_len = strlen(json);
    return SC_OK;
}

static cJSON *message(const char *role, const char *text) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", text);
    return m;
}

static sc_status openai_chat_call(const sc_judge_net *net, const char *model, sc_judge_ask ask,
                                  const char *system, const char *user, sc_judge_net_call *c) {
    cJSON *body = cJSON_CreateObject(), *msgs = cJSON_CreateArray(), *rf = cJSON_CreateObject(), *js = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "model", model);
    cJSON_AddItemToArray(msgs, message("system", system));
    cJSON_AddItemToArray(msgs, message("user", user));
    cJSON_AddItemToObject(body, "messages", msgs);
    if (net->temperature >= 0) cJSON_AddNumberToObject(body, "temperature", net->temperature);
    cJSON_AddStringToObject(rf, "type", "json_schema");
    cJSON_AddStringToObject(js, "name", ask == SC_JUDGE_ASK_THEME ? "theme_answer" : ask == SC_JUDGE_ASK_COMPARE ? "comparison_answer" : "openers_answer");
    cJSON_AddBoolToObject(js, "strict", 1);
    cJSON_AddItemToObject(js, "schema", cJSON_Parse(ask == SC_JUDGE_ASK_THEME ? theme_schema : ask == SC_JUDGE_ASK_COMPARE ? compare_schema : openers_schema));
    cJSON_AddItemToObject(rf, "json_schema", js);
    cJSON_AddItemToObject(body, "response_format", rf);
    return finish_call(body, "/v1/chat/completions", c);
}

static sc_status openai_chat_text(const char *body, size_t len, char **text) {
    *text = NULL;
    char ex[240];
    cJSON *root = NULL;
    SC_TRY(sc_judge_net_parse_object(body, len, &root));
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    if (!cJSON_IsObject(msg)) { cJSON_Delete(root); return sc_errorf(SC_ERR_FORMAT, "the response has no choices[0].message"); }
    const cJSON *refusal = cJSON_GetObjectItemCaseSensitive(msg, "refusal");
    if (cJSON_IsString(refusal) && *refusal->valuestring) {
        sc_judge_excerpt(refusal->valuestring, 200, ex, sizeof ex);
        cJSON_Delete(root);
        return sc_errorf(SC_ERR_FORMAT, "the model refused: \"%s\"", ex);
    }
    const cJSON *finish = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    if (cJSON_IsString(finish) && (!strcmp(finish->valuestring, "length") || !strcmp(finish->valuestring, "content_filter"))) {
        sc_status st = sc_errorf(SC_ERR_FORMAT, "the answer ended early (finish_reason %s)", finish->valuestring);
        cJSON_Delete(root);
        return st;
    }
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (!cJSON_IsString(content) || !*content->valuestring) { cJSON_Delete(root); return sc_errorf(SC_ERR_FORMAT, "the response's message has no content"); }
    *text = sc_strdup(content->valuestring);
    cJSON_Delete(root);
    return *text ? SC_OK : SC_ERR_MEM;
}

static sc_status openai_embed_call(const sc_judge_net *net, const char *model, const char *const *texts, int n, sc_judge_net_call *c) {
    (void)net;
    cJSON *body = cJSON_CreateObject(), *input = cJSON_CreateArray();
    cJSON_AddStringToObject(body, "model", model);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(input, cJSON_CreateString(texts[i]));
    cJSON_AddItemToObject(body, "input", input);
    cJSON_AddStringToObject(body, "encoding_format", "float");
    return finish_call(body, "/v1/embeddings", c);
}

static sc_status openai_embed_parse(const char *body, size_t len, int first, int n, float **per_text, int *lens) {
    char ex[240];
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsArray(data)) {
        sc_judge_excerpt(body, 200, ex, sizeof ex);
        cJSON_Delete(root);
        return sc_errorf(SC_ERR_FORMAT, "the response has no \"data\" array: \"%s\"", ex);
    }
    sc_status st = SC_OK;
    if (cJSON_GetArraySize(data) != n) st = sc_errorf(SC_ERR_FORMAT, "the response holds %d embeddings for %d texts", cJSON_GetArraySize(data), n);
    const cJSON *e, *walk = st == SC_OK ? data : NULL;
    int pos = 0;
    cJSON_ArrayForEach(e, walk) {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(e, "index");
        if (!sc_json_is_int(idx, 0, n - 1)) { st = sc_errorf(SC_ERR_FORMAT, "the response's data[%d] has no index in 0..%d", pos, n - 1); break; }
        const int j = (int)idx->valuedouble;
        if (per_text[j]) { st = sc_errorf(SC_ERR_FORMAT, "the response answers text %d twice", first + j); break; }
        if ((st = sc_judge_net_floats(cJSON_GetObjectItemCaseSensitive(e, "embedding"), &per_text[j], &lens[j])) != SC_OK) {
            st = sc_error_wrap(st, "text %d: ", first + j);
            break;
        }
        pos++;
    }
    if (st != SC_OK) for (int j = 0; j < n; j++) { free(per_text[j]); per_text[j] = NULL; }
    cJSON_Delete(root);
    return st;
}

static const sc_judge_net_dialect openai_dialect = {
    .chat_call = openai_chat_call,
    .chat_text = openai_chat_text,
    .embed_call = openai_embed_call,
    .embed_parse = openai_embed_parse,
};

sc_status sc_provider_openai(const sc_judge_net_opts *o, sc_provider **out) {
    *out = NULL;
    sc_judge_net_opts def;
    sc_judge_net_opts_default(&def, "openai");
    return sc_judge_net_provider_new("openai", &openai_dialect, o ? o : &def, &def, "Authorization: Bearer ", 1, out);
}
