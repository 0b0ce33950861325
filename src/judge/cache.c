// cache.c — the judge's disk cache (SHA-256 keyed files of successful, schema-valid response
// bodies) and the layer the HTTP providers share around it: options and API keys, the cached
// request runner, and the provider on top of a dialect (see steerclear/judge_cache.h). The
// prompts and the checks of the judge's JSON answers are in prompts.c. Leaves out: the
// providers' wire formats (gemini.c, openai.c), cache eviction (delete the folder to start
// afresh) and locking (entries are written atomically and identical keys hold identical
// bodies' meaning, so concurrent runs are safe).
#include "steerclear/judge_cache.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------
// The cache

static void put_field(unsigned char *buf, size_t *at, const char *s, size_t n) {
    for (int b = 0; b < 8; b++) buf[(*at)++] = (unsigned char)((uint64_t)n >> (8 * b));
    if (n) memcpy(buf + *at, s, n);
    *at += n;
}

sc_status sc_judge_cache_key(const char *provider, const char *model, const char *endpoint,
                             const char *body, size_t body_len, char key[65]) {
    static const char tag[] = "steerclear judge cache v1";
    const char *f[3] = {provider ? provider : "", model ? model : "", endpoint ? endpoint : ""};
    size_t total = sizeof tag + 4 * 8 + strlen(f[0]) + strlen(f[1]) + strlen(f[2]) + body_len;
    unsigned char *buf = sc_malloc(total, "the judge cache key");
    if (!buf) return SC_ERR_MEM;
    size_t at = 0;
    memcpy(buf, tag, sizeof tag);
    at = sizeof tag;
    for (int i = 0; i < 3; i++) put_field(buf, &at, f[i], strlen(f[i]));
    put_field(buf, &at, body, body_len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int ok = EVP_Digest(buf, at, md, &md_len, EVP_sha256(), NULL);
    free(buf);
    if (!ok || md_len != 32) return sc_errorf(SC_ERR_LIB, "judge cache: OpenSSL's SHA-256 failed");
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) { key[2 * i] = hex[md[i] >> 4]; key[2 * i + 1] = hex[md[i] & 15]; }
    key[64] = '\0';
    return SC_OK;
}

sc_status sc_judge_cache_path(const char *dir, const char *key, char *path, size_t cap) {
    if (!dir || !*dir || strlen(key) != 64) return sc_errorf(SC_ERR_ARG, "judge cache: no folder or a bad key");
    if ((size_t)snprintf(path, cap, "%s/%.2s/%s.json", dir, key, key) >= cap)
        return sc_errorf(SC_ERR_ARG, "judge cache: folder path '%s' is too long", dir);
    return SC_OK;
}

int sc_judge_cache_get(const char *dir, const char *key, char **body, size_t *len) {
    char path[4096];
    *body = NULL;
    if (len) *len = 0;
    if (sc_judge_cache_path(dir, key, path, sizeof path) != SC_OK || !sc_file_exists(path)) return 0;
    if (sc_read_file(path, body, len) != SC_OK) {
        sc_log(SC_LOG_WARN, "judge cache: %s (treated as not cached)", sc_last_error());
        return 0;
    }
    return 1;
}

sc_status sc_judge_cache_put(const char *dir, const char *key, const char *body, size_t len) {
    char path[4096], sub[4096];
    SC_TRY(sc_judge_cache_path(dir, key, path, sizeof path));
    snprintf(sub, sizeof sub, "%s/%.2s", dir, key);
    SC_TRY(sc_mkdir_p(sub));
    return sc_write_file_atomic(path, body, len);
}

void sc_judge_cache_drop(const char *dir, const char *key) {
    char path[4096];
    if (sc_judge_cache_path(dir, key, path, sizeof path) == SC_OK && unlink(path) != 0 && errno != ENOENT)
        sc_log(SC_LOG_WARN, "judge cache: cannot remove %s: %s", path, strerror(errno));
}

// ---------------------------------------------------------------------------------------
// Options

void sc_judge_net_opts_default(sc_judge_net_opts *o, const char *provider) {
    memset(o, 0, sizeof *o);
    o->in_flight = 8;
    o->connect_timeout_s = 10;
    o->timeout_s = 120;
    o->max_attempts = 5;
    o->request_budget = 2000;
    o->backoff_base_s = 1;
    o->backoff_max_s = 60;
    o->temperature = 0;
    o->embed_batch = 100;
    if (provider && !strcmp(provider, "gemini")) {
        o->base_url = "https://generativelanguage.googleapis.com";
        o->model = "gemini-2.0-flash";
        o->embed_model = "gemini-embedding-001";
        o->api_key_env = "GEMINI_API_KEY";
        o->embed_batch = 100;
    } else if (provider && !strcmp(provider, "openai")) {
        o->base_url = "https://api.openai.com";
        o->model = "gpt-4o-mini";
        o->embed_model = "text-embedding-3-small";
        o->api_key_env = "OPENAI_API_KEY";
        o->embed_batch = 256;
    }
}

static int is_loopback_host(const char *url) {
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(hosts[i]);
        if (!strncasecmp(h, hosts[i], n) && (h[n] == '\0' || h[n] == ':' || h[n] == '/')) return 1;
    }
    return 0;
}

static sc_status check_base_url(const char *provider, const char *url, int sends_key) {
    const int https = !strncasecmp(url, "https://", 8), http = !strncasecmp(url, "http://", 7);
    if (!https && !http) return sc_errorf(SC_ERR_ARG, "%s: base_url '%s' must start with https:// (or http:// for a local server)", provider, url);
    const char *auth = url + (https ? 8 : 7);
    size_t an = strcspn(auth, "/");
    if (an == 0) return sc_errorf(SC_ERR_ARG, "%s: base_url '%s' has no host", provider, url);
    if (memchr(auth, '@', an)) return sc_errorf(SC_ERR_ARG, "%s: base_url must not hold credentials (user@host); the key comes from the environment", provider);
    if (strpbrk(url, "?# \t\r\n")) return sc_errorf(SC_ERR_ARG, "%s: base_url '%s' must be a plain URL without a query, fragment or spaces", provider, url);
    if (http && sends_key && !is_loopback_host(url))
        return sc_errorf(SC_ERR_ARG, "%s: base_url '%s' is plain http:// to a host that is not this machine: the API key would travel unencrypted; use https://", provider, url);
    return SC_OK;
}

sc_status sc_judge_net_init(sc_judge_net *net, const char *provider, const sc_judge_net_opts *o,
                            const sc_judge_net_opts *def, const char *auth_prefix, int key_optional) {
    memset(net, 0, sizeof *net);
    snprintf(net->provider, sizeof net->provider, "%s", provider);
    const char *base = o->base_url ? o->base_url : def->base_url;
    const char *key_env = o->api_key_env ? o->api_key_env : def->api_key_env;
    if (!*key_env && !key_optional)
        return sc_errorf(SC_ERR_ARG, "%s: api_key_env is empty, but %s needs an API key: name the environment variable that holds it (default %s)",
                         provider, provider, def->api_key_env);
    if (*key_env) {
        const char *k = getenv(key_env);
        if (!k) return sc_errorf(SC_ERR_ARG, "%s: the environment variable %s is not set: export %s=<your API key>%s", provider, key_env, key_env,
                                 key_optional ? " (or set api_key_env to \"\" for a server without authentication)" : "");
        if (!*k) return sc_errorf(SC_ERR_ARG, "%s: the environment variable %s is empty: it must hold the API key", provider, key_env);
        for (const char *c = k; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return sc_errorf(SC_ERR_ARG, "%s: the API key in %s holds a control character (a stray newline?); set it again", provider, key_env);
        if (!(net->key = sc_strdup(k))) return SC_ERR_MEM;
        size_t n = strlen(auth_prefix) + strlen(k) + 1;
        if (!(net->auth_header = sc_malloc(n, "an HTTP header"))) { sc_judge_net_release(net); return SC_ERR_MEM; }
        snprintf(net->auth_header, n, "%s%s", auth_prefix, k);
    }
    sc_status st = check_base_url(provider, base, net->key != NULL);
    if (st != SC_OK) { sc_judge_net_release(net); return st; }
    if (!(net->base_url = sc_strdup(base))) { sc_judge_net_release(net); return SC_ERR_MEM; }
    for (size_t n = strlen(net->base_url); n > 0 && net->base_url[n - 1] == '/'; n--) net->base_url[n - 1] = '\0';
    net->headers[0] = "Content-Type: application/json";
    net->headers[1] = net->auth_header;
    net->headers[2] = NULL;
    const char *cache = o->cache_dir && *o->cache_dir ? o->cache_dir : NULL;
    if (cache && !(net->cache_dir = sc_strdup(cache))) { sc_judge_net_release(net); return SC_ERR_MEM; }
    if ((st = sc_judge_prompts_load(o->prompts_dir, &net->prompts)) != SC_OK) {
        sc_judge_net_release(net);
        return sc_error_wrap(st, "%s: ", provider);
    }
    sc_http_opts_default(&net->http);
    if (o->in_flight > 0) net->http.in_flight = o->in_flight;
    if (o->connect_timeout_s > 0) net->http.connect_timeout_s = o->connect_timeout_s;
    if (o->timeout_s > 0) net->http.timeout_s = o->timeout_s;
    if (o->max_attempts > 0) net->http.max_attempts = o->max_attempts;
    if (o->backoff_base_s >= 0) net->http.backoff_base_s = o->backoff_base_s;
    if (o->backoff_max_s > 0) net->http.backoff_max_s = o->backoff_max_s;
    net->http.seed = o->seed;
    net->budget.limit = o->request_budget;
    net->http.budget = &net->budget;
    net->http.redact = net->key;
    net->temperature = o->temperature;
    net->embed_batch = o->embed_batch > 0 ? o->embed_batch : def->embed_batch;
    return SC_OK;
}

void sc_judge_net_release(sc_judge_net *net) {
    if (!net) return;
    if (net->key) { volatile char *k = net->key; while (*k) *k++ = 0; }
    if (net->auth_header) { volatile char *k = net->auth_header; while (*k) *k++ = 0; }
    free(net->key);
    free(net->auth_header);
    free(net->base_url);
    free(net->cache_dir);
    sc_judge_prompts_release(&net->prompts);
    memset(net, 0, sizeof *net);
}

// ---------------------------------------------------------------------------------------
// The cached runner

void sc_judge_net_calls_free(sc_judge_net_call *calls, int n) {
    if (!calls) return;
    for (int i = 0; i < n; i++) { free(calls[i].path); free(calls[i].body); }
}

void sc_judge_net_outcomes_free(sc_judge_net_outcome *res, int n) {
    if (!res) return;
    for (int i = 0; i < n; i++) { free(res[i].error); res[i].error = NULL; }
}

char *sc_judge_net_error_copy(const sc_judge_net *net) {
    char *c = sc_http_redact(sc_last_error(), net ? net->key : NULL);
    return c ? c : sc_strdup("out of memory");
}

sc_status sc_judge_net_run(sc_judge_net *net, const char *what, const sc_judge_net_call *calls, int n,
                           sc_judge_net_accept accept, void *user, sc_judge_net_outcome *res) {
    for (int i = 0; i < n; i++) memset(&res[i], 0, sizeof res[i]);
    if (n <= 0) return SC_OK;
    char (*keys)[65] = calloc((size_t)n, sizeof *keys);
    int *ask = calloc((size_t)n, sizeof *ask);
    sc_http_request *reqs = calloc((size_t)n, sizeof *reqs);
    sc_http_response *resp = calloc((size_t)n, sizeof *resp);
    if (!keys || !ask || !reqs || !resp) {
        free(keys); free(ask); free(reqs); free(resp);
        for (int i = 0; i < n; i++) { res[i].status = SC_ERR_MEM; res[i].error = sc_strdup("out of memory"); }
        return sc_errorf(SC_ERR_MEM, "%s: out of memory", what);
    }
    int hits = 0, nask = 0;
    for (int i = 0; i < n; i++) {
        if (net->cache_dir && sc_judge_cache_key(net->provider, calls[i].model, calls[i].path, calls[i].body, calls[i].body_len, keys[i]) != SC_OK) {
            sc_log(SC_LOG_WARN, "%s: %s (not cached)", what, sc_last_error());
            keys[i][0] = '\0';
        }
        char *body;
        size_t len;
        if (net->cache_dir && keys[i][0] && sc_judge_cache_get(net->cache_dir, keys[i], &body, &len)) {
            sc_status st = accept(user, i, body, len);
            free(body);
            if (st == SC_OK) { res[i].cached = 1; hits++; continue; }
            char *why = sc_judge_net_error_copy(net);
            sc_log(SC_LOG_WARN, "%s: cached answer %s/%.2s/%s.json fails the check (%s); asking again", what, net->cache_dir, keys[i], keys[i], why);
            free(why);
        }
        ask[nask++] = i;
    }
    sc_status result = SC_OK;
    char **urls = calloc((size_t)(nask ? nask : 1), sizeof *urls);
    if (!urls) result = sc_errorf(SC_ERR_MEM, "%s: out of memory", what);
    for (int k = 0; k < nask && result == SC_OK; k++) {
        const sc_judge_net_call *c = &calls[ask[k]];
        size_t ul = strlen(net->base_url) + strlen(c->path) + 1;
        if (!(urls[k] = sc_malloc(ul, "a URL"))) { result = SC_ERR_MEM; break; }
        snprintf(urls[k], ul, "%s%s", net->base_url, c->path);
        reqs[k] = (sc_http_request){.url = urls[k], .headers = net->headers, .body = c->body, .body_len = c->body_len};
    }
    if (result == SC_OK && nask > 0) {
        sc_http_opts ho = net->http;
        ho.what = what;
        result = sc_http_run(&ho, reqs, nask, resp);
    } else if (result != SC_OK) {
        for (int k = 0; k < nask; k++) { resp[k].status = result; resp[k].error = sc_strdup(sc_last_error()); }
    }
    sc_status keep = result;
    char keep_msg[2048];
    snprintf(keep_msg, sizeof keep_msg, "%s", result != SC_OK ? sc_last_error() : "");
    int failed = 0;
    for (int k = 0; k < nask; k++) {
        const int i = ask[k];
        sc_http_response *r = &resp[k];
        if (r->status != SC_OK) {
            res[i].status = r->status;
            res[i].error = sc_http_redact(r->error ? r->error : "request failed", net->key);
            failed++;
            continue;
        }
        sc_status st = accept(user, i, r->body ? r->body : "", r->body_len);
        if (st != SC_OK) {
            res[i].status = st;
            res[i].error = sc_judge_net_error_copy(net);
            failed++;
            continue;
        }
        res[i].status = SC_OK;
        if (!net->cache_dir || !keys[i][0]) continue;
        if (net->key && r->body && strstr(r->body, net->key)) {
            sc_log(SC_LOG_WARN, "%s: the answer to request %d quotes the API key; not cached", what, i);
            continue;
        }
        if (sc_judge_cache_put(net->cache_dir, keys[i], r->body ? r->body : "", r->body_len) != SC_OK) {
            char *why = sc_judge_net_error_copy(net);
            sc_log(SC_LOG_WARN, "%s: could not cache an answer: %s", what, why);
            free(why);
        }
    }
    for (int k = 0; k < nask; k++) { sc_http_response_free(&resp[k]); if (urls) free(urls[k]); }
    free(urls); free(keys); free(ask); free(reqs); free(resp);
    sc_log(SC_LOG_INFO, "%s: %d answer%s from the cache%s, %d asked, %d failed", what, hits, hits == 1 ? "" : "s",
           net->cache_dir ? "" : " (no cache)", nask, failed);
    if (keep != SC_OK) return sc_errorf(keep, "%s", keep_msg);
    return SC_OK;
}



sc_status sc_judge_net_floats(const cJSON *array, float **v, int *len) {
    *v = NULL;
    *len = 0;
    if (!cJSON_IsArray(array)) return sc_errorf(SC_ERR_FORMAT, "the embedding is not an array of numbers");
    int n = cJSON_GetArraySize(array);
    if (n == 0) return sc_errorf(SC_ERR_FORMAT, "the embedding is empty");
    float *f = sc_malloc((size_t)n * sizeof *f, "an embedding");
    if (!f) return SC_ERR_MEM;
    int k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, array) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 3.4e38) {
            free(f);
            return sc_errorf(SC_ERR_FORMAT, "the embedding's value %d is not a finite number", k);
        }
        f[k++] = (float)x->valuedouble;
    }
    *v = f;
    *len = n;
    return SC_OK;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

// Index of the first length that differs from the most common one (*mode), or -1. *tied: 1 when
// another length is as common as *mode (then the odd one out cannot be told).
static int first_odd_length(const int *lens, int n, int *mode, int *tied) {
    *mode = n > 0 ? lens[0] : 0;
    *tied = 0;
    int *sorted = malloc((size_t)(n > 0 ? n : 1) * sizeof *sorted);
    if (sorted) {
        memcpy(sorted, lens, (size_t)n * sizeof *sorted);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_int);
        int best = 0;
        for (int i = 0; i < n;) {
            int j = i;
            while (j < n && sorted[j] == sorted[i]) j++;
            if (j - i > best) { best = j - i; *mode = sorted[i]; *tied = 0; }
            else if (j - i == best) *tied = 1;
            i = j;
        }
        free(sorted);
    }
    for (int i = 0; i < n; i++) if (lens[i] != *mode) return i;
    return -1;
}

sc_status sc_judge_net_embed_finish(const char *what, float *const *per_text, const int *lens, int n, float **vecs, int *dim) {
    *vecs = NULL;
    *dim = 0;
    if (n <= 0) return SC_OK;
    int mode, tied, odd = first_odd_length(lens, n, &mode, &tied);
    if (odd >= 0)
        return sc_errorf(SC_ERR_SHAPE, "%s: text %d's embedding has %d values, the other texts' have %d: the server answered inconsistently", what, odd, lens[odd], mode);
    float *v = sc_malloc((size_t)n * (size_t)mode * sizeof *v, "embeddings");
    if (!v) return SC_ERR_MEM;
    for (int i = 0; i < n; i++) memcpy(v + (size_t)i * (size_t)mode, per_text[i], (size_t)mode * sizeof *v);
    *vecs = v;
    *dim = mode;
    return SC_OK;
}

sc_status sc_judge_net_parse_object(const char *body, size_t len, cJSON **root) {
    *root = cJSON_ParseWithLength(body, len);
    if (cJSON_IsObject(*root)) return SC_OK;
    cJSON_Delete(*root);
    *root = NULL;
    char ex[240];
    sc_judge_excerpt(body, 200, ex, sizeof ex);
    return sc_errorf(SC_ERR_FORMAT, "the response body is not a JSON object: \"%s\"", ex);
}

// ---------------------------------------------------------------------------------------
// The provider (sc_provider_ops) on top of a dialect

typedef struct {
    sc_provider base;
    sc_judge_net net;
    const sc_judge_net_dialect *d;
    char name[16];
} net_provider;

// One chat request per item: prompt(i) gives item i's system and user text (malloc'ed, freed
// here); the answers go through accept(user, i, ...) as they arrive. *res gets the n outcomes
// (the caller frees them with sc_judge_net_outcomes_free and free) whenever SC_OK or the run's
// own status is returned; NULL when the requests could not be built.
typedef sc_status (*chat_prompt_fn)(void *ctx, int i, char **sys, char **usr);

static sc_status chat_round(net_provider *np, const char *model, const char *what, sc_judge_ask kind, int n,
                            chat_prompt_fn prompt, void *pctx, sc_judge_net_accept accept, void *actx,
                            sc_judge_net_outcome **res_out) {
    *res_out = NULL;
    sc_judge_net_call *calls = calloc((size_t)n, sizeof *calls);
    sc_judge_net_outcome *res = calloc((size_t)n, sizeof *res);
    if (!calls || !res) { free(calls); free(res); return sc_errorf(SC_ERR_MEM, "%s: out of memory", what); }
    sc_status st = SC_OK;
    for (int i = 0; i < n && st == SC_OK; i++) {
        char *sys = NULL, *usr = NULL;
        st = prompt(pctx, i, &sys, &usr);
        if (st == SC_OK) st = np->d->chat_call(&np->net, model, kind, sys, usr, &calls[i]);
        calls[i].model = model;
        free(sys);
        free(usr);
    }
    if (st == SC_OK) st = sc_judge_net_run(&np->net, what, calls, n, accept, actx, res);
    sc_judge_net_calls_free(calls, n);
    free(calls);
    *res_out = res;
    return st;
}

static void outcomes_free(sc_judge_net_outcome *res, int n) {
    if (!res) return;
    sc_judge_net_outcomes_free(res, n);
    free(res);
}

typedef struct {
    net_provider *np;
    const sc_judge_batch *batches;
    sc_judge_theme *out;
} theme_ctx;

static sc_status theme_accept(void *user, int i, const char *body, size_t len) {
    theme_ctx *c = user;
    char *text = NULL;
    SC_TRY(c->np->d->chat_text(body, len, &text));
    char where[96];
    snprintf(where, sizeof where, "%s themes: batch %d", c->np->name, i);
    sc_judge_theme t;
    sc_status st = sc_judge_parse_theme(text, &c->batches[i], where, &t);
    free(text);
    if (st != SC_OK) return st;
    sc_judge_theme_free(&c->out[i]);
    c->out[i] = t;
    return SC_OK;
}

static sc_status theme_prompt(void *ctx, int i, char **sys, char **usr) {
    const theme_ctx *c = ctx;
    return sc_judge_prompts_theme(&c->np->net.prompts, &c->batches[i], sys, usr);
}

static sc_status np_themes(sc_provider *p, const sc_judge_batch *batches, int n, sc_judge_theme *out) {
    net_provider *np = p->impl;
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    if (n <= 0) return SC_OK;
    char what[64];
    snprintf(what, sizeof what, "%s themes", np->name);
    for (int i = 0; i < n; i++)
        if (batches[i].n <= 0 || !batches[i].items) return sc_errorf(SC_ERR_ARG, "%s: batch %d has no items", what, i);
    theme_ctx ctx = {np, batches, out};
    sc_judge_net_outcome *res = NULL;
    sc_status st = chat_round(np, p->model, what, SC_JUDGE_ASK_THEME, n, theme_prompt, &ctx, theme_accept, &ctx, &res);
    if (!res) return st;
    if (st == SC_OK) {
        for (int i = 0; i < n; i++) {
            if (res[i].status == SC_OK) continue;
            char ids[160];
            sc_judge_batch_ids(&batches[i], ids, sizeof ids);
            sc_judge_theme_free(&out[i]);
            out[i].status = res[i].status;
            out[i].error = sc_strdupf("%s: batch %d (prompt ids %s): %s", what, i, ids, res[i].error ? res[i].error : "failed");
        }
    } else {
        for (int i = 0; i < n; i++) { sc_judge_theme_free(&out[i]); memset(&out[i], 0, sizeof out[i]); }
    }
    outcomes_free(res, n);
    return st;
}

typedef struct {
    net_provider *np;
    const sc_judge_pair *pairs;
    sc_judge_verdict *out;
} verdict_ctx;

static sc_status verdict_accept(void *user, int i, const char *body, size_t len) {
    verdict_ctx *c = user;
    char *text = NULL;
    SC_TRY(c->np->d->chat_text(body, len, &text));
    sc_judge_verdict v;
    sc_status st = sc_judge_parse_verdict(text, &v);
    free(text);
    if (st != SC_OK) return st;
    free(c->out[i].error);
    c->out[i] = v;
    return SC_OK;
}

static sc_status compare_prompt(void *ctx, int i, char **sys, char **usr) {
    const verdict_ctx *c = ctx;
    return sc_judge_prompts_compare(&c->np->net.prompts, &c->pairs[i], sys, usr);
}

static sc_status np_compare(sc_provider *p, const sc_judge_pair *pairs, int n, sc_judge_verdict *out) {
    net_provider *np = p->impl;
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    if (n <= 0) return SC_OK;
    char what[64];
    snprintf(what, sizeof what, "%s compare", np->name);
    verdict_ctx ctx = {np, pairs, out};
    sc_judge_net_outcome *res = NULL;
    sc_status st = chat_round(np, p->model, what, SC_JUDGE_ASK_COMPARE, n, compare_prompt, &ctx, verdict_accept, &ctx, &res);
    if (!res) return st;
    for (int i = 0; i < n; i++) {
        if (st != SC_OK) { free(out[i].error); memset(&out[i], 0, sizeof out[i]); continue; }
        if (res[i].status == SC_OK) continue;
        free(out[i].error);
        memset(&out[i], 0, sizeof out[i]);
        out[i].status = res[i].status;
        out[i].error = sc_strdupf("%s: pair %d: %s", what, i, res[i].error ? res[i].error : "failed");
    }
    outcomes_free(res, n);
    return st;
}

typedef struct {
    net_provider *np;
    float **per_text;
    int *lens;
    int n, batch;
} embed_ctx;

static sc_status embed_accept(void *user, int c, const char *body, size_t len) {
    embed_ctx *e = user;
    const int first = c * e->batch, m = e->n - first < e->batch ? e->n - first : e->batch;
    float **pt = calloc((size_t)m, sizeof *pt);
    int *ln = calloc((size_t)m, sizeof *ln);
    if (!pt || !ln) { free(pt); free(ln); return sc_errorf(SC_ERR_MEM, "out of memory reading embeddings"); }
    sc_status st = e->np->d->embed_parse(body, len, first, m, pt, ln);
    // A length that differs from the rest of its request is refused here (so that it is never
    // cached); a tie (say 2 texts of 2 lengths) is left to the check across all texts.
    int mode = 0, tied = 0, odd = st == SC_OK ? first_odd_length(ln, m, &mode, &tied) : -1;
    if (st == SC_OK && odd >= 0 && !tied) {
        st = sc_errorf(SC_ERR_SHAPE, "text %d's embedding has %d values, the other texts' in its request have %d: the server answered inconsistently",
                       first + odd, ln[odd], mode);
        for (int j = 0; j < m; j++) free(pt[j]);
    }
    if (st == SC_OK)
        for (int j = 0; j < m; j++) { free(e->per_text[first + j]); e->per_text[first + j] = pt[j]; e->lens[first + j] = ln[j]; }
    free(pt);
    free(ln);
    return st;
}

static sc_status np_embed(sc_provider *p, const char *const *texts, int n, float **vecs, int *dim) {
    net_provider *np = p->impl;
    *vecs = NULL;
    *dim = 0;
    if (n <= 0) return SC_OK;
    char what[64];
    snprintf(what, sizeof what, "%s embeddings", np->name);
    for (int i = 0; i < n; i++)
        if (!texts[i] || !*texts[i]) return sc_errorf(SC_ERR_ARG, "%s: text %d is empty (there is nothing to embed)", what, i);
    const int B = np->net.embed_batch > 0 ? np->net.embed_batch : 100, nc = (n + B - 1) / B;
    sc_judge_net_call *calls = calloc((size_t)nc, sizeof *calls);
    sc_judge_net_outcome *res = calloc((size_t)nc, sizeof *res);
    float **per_text = calloc((size_t)n, sizeof *per_text);
    int *lens = calloc((size_t)n, sizeof *lens);
    sc_status st = calls && res && per_text && lens ? SC_OK : sc_errorf(SC_ERR_MEM, "%s: out of memory", what);
    for (int c = 0; c < nc && st == SC_OK; c++) {
        const int first = c * B, m = n - first < B ? n - first : B;
        st = np->d->embed_call(&np->net, p->embed_model, texts + first, m, &calls[c]);
        calls[c].model = p->embed_model;
    }
    embed_ctx ctx = {np, per_text, lens, n, B};
    if (st == SC_OK) st = sc_judge_net_run(&np->net, what, calls, nc, embed_accept, &ctx, res);
    for (int c = 0; c < nc && st == SC_OK; c++) {
        if (res[c].status == SC_OK) continue;
        const int first = c * B, last = (n - first < B ? n : first + B) - 1;
        if (first == last) st = sc_errorf(res[c].status, "%s: text %d: %s", what, first, res[c].error ? res[c].error : "failed");
        else st = sc_errorf(res[c].status, "%s: texts %d..%d: %s", what, first, last, res[c].error ? res[c].error : "failed");
    }
    if (st == SC_OK) {
        int mode, tied, odd = first_odd_length(lens, n, &mode, &tied);
        // the request that answered the odd vector passed its own check: take it out of the cache
        if (odd >= 0 && np->net.cache_dir) {
            const sc_judge_net_call *c = &calls[odd / B];
            char key[65];
            if (sc_judge_cache_key(np->net.provider, c->model, c->path, c->body, c->body_len, key) == SC_OK)
                sc_judge_cache_drop(np->net.cache_dir, key);
        }
        st = sc_judge_net_embed_finish(what, per_text, lens, n, vecs, dim);
    }
    if (per_text) for (int i = 0; i < n; i++) free(per_text[i]);
    if (res) sc_judge_net_outcomes_free(res, nc);
    if (calls) sc_judge_net_calls_free(calls, nc);
    free(per_text); free(lens); free(res); free(calls);
    return st;
}

typedef struct {
    net_provider *np;
    sc_provider_check check;
    void *user;
    const char *const *system, *const *prompts;
} openers_ctx;

static sc_status openers_prompt(void *ctx, int i, char **sys, char **usr) {
    const openers_ctx *c = ctx;
    *sys = sc_strdup(c->system[i]);
    *usr = sc_strdup(c->prompts[i]);
    return *sys && *usr ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory for the openers request %d", i);
}

static sc_status openers_accept(void *user, int i, const char *body, size_t len) {
    openers_ctx *c = user;
    char *text = NULL;
    SC_TRY(c->np->d->chat_text(body, len, &text));
    sc_status st = c->check(c->user, i, text);
    free(text);
    return st;
}

static sc_status np_openers(sc_provider *p, const char *const *system, const char *const *user, int n,
                            sc_provider_check check, void *user_data, sc_provider_outcome *out) {
    net_provider *np = p->impl;
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    if (n <= 0) return SC_OK;
    char what[64];
    snprintf(what, sizeof what, "%s openers", np->name);
    openers_ctx ctx = {np, check, user_data, system, user};
    sc_judge_net_outcome *res = NULL;
    sc_status st = chat_round(np, p->model, what, SC_JUDGE_ASK_OPENERS, n, openers_prompt, &ctx, openers_accept, &ctx, &res);
    if (!res) return st;
    for (int i = 0; i < n; i++) {
        // an answer taken before an interrupt stays taken (it is cached too)
        out[i].status = st != SC_OK && res[i].status != SC_OK ? st : res[i].status;
        if (st != SC_OK && st != SC_ERR_INTERRUPTED) out[i].status = st;
        out[i].cached = res[i].cached;
        if (out[i].status != SC_OK) out[i].error = sc_strdup(res[i].error ? res[i].error : st != SC_OK ? sc_last_error() : "failed");
    }
    outcomes_free(res, n);
    return st;
}

static int np_budget_left(const sc_provider *p) {
    const net_provider *np = p->impl;
    if (np->net.budget.limit <= 0) return -1;
    return np->net.budget.limit > np->net.budget.used ? np->net.budget.limit - np->net.budget.used : 0;
}

static void np_free(sc_provider *p) {
    if (!p) return;
    net_provider *np = p->impl;
    sc_judge_net_release(&np->net);
    free(np);
}

static const sc_provider_ops net_ops = {
    .themes = np_themes,
    .embed = np_embed,
    .compare = np_compare,
    .free = np_free,
    .openers = np_openers,
    .budget_left = np_budget_left,
};

sc_status sc_judge_net_provider_new(const char *name, const sc_judge_net_dialect *d, const sc_judge_net_opts *o,
                                    const sc_judge_net_opts *def, const char *auth_prefix, int key_optional,
                                    sc_provider **out) {
    *out = NULL;
    if (!o) o = def;
    const char *model = o->model && *o->model ? o->model : def->model;
    const char *embed_model = o->embed_model && *o->embed_model ? o->embed_model : def->embed_model;
    if (strlen(model) >= sizeof ((sc_provider *)0)->model || strlen(embed_model) >= sizeof ((sc_provider *)0)->embed_model)
        return sc_errorf(SC_ERR_ARG, "%s: model name too long (at most 255 characters)", name);
    net_provider *np = calloc(1, sizeof *np);
    if (!np) return sc_errorf(SC_ERR_MEM, "%s: out of memory", name);
    sc_status st = sc_judge_net_init(&np->net, name, o, def, auth_prefix, key_optional);
    if (st != SC_OK) { free(np); return st; }
    snprintf(np->name, sizeof np->name, "%s", name);
    np->d = d;
    np->base.op = &net_ops;
    np->base.name = np->name;
    snprintf(np->base.model, sizeof np->base.model, "%s", model);
    snprintf(np->base.embed_model, sizeof np->base.embed_model, "%s", embed_model);
    np->base.impl = np;
    char budget[32] = "unlimited";
    if (np->net.budget.limit > 0) snprintf(budget, sizeof budget, "%d requests", np->net.budget.limit);
    sc_log(SC_LOG_INFO, "%s judge: %s, model %s, embeddings %s, %s, cache %s, budget %s", name, np->net.base_url, model, embed_model,
           np->net.key ? "API key from the environment" : "no authentication", np->net.cache_dir ? np->net.cache_dir : "off", budget);
    *out = &np->base;
    return SC_OK;
}
