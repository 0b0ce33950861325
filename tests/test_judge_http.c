// test_judge_http.c — the HTTP judge providers (gemini, openai) against tests/judge_server.py:
// retries (429 with Retry-After, Gemini's RetryInfo, 500, a slow reply, a truncated body, a
// reset connection), per-batch failures that are not retried (non-JSON, schema violations),
// the requests as the server saw them (paths, headers, the API key only in its header), the
// disk cache (a rerun asks only what failed; a third run asks nothing), the request budget,
// embeddings (order, batching, a wrong length naming the text), comparisons, missing API keys,
// the key never in a message or a cache file, and SIGTERM ending a wait promptly.
// Skips (77) without /usr/bin/python3.
#include "testutil.h"
#include "steerclear/http.h"
#include "steerclear/judge_cache.h"
#include "steerclear/judge_net.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY "sk-test-SECRET-42"
#define KEY_ENV "SC_TEST_JUDGE_KEY"
#define NB 8      // batches per themes run
#define NI 3      // items per batch

static pid_t server_pid = -1;
static int server_in = -1;
static int port;
static char log_path[4200], base_url[64], prompts_dir[4200];

static int start_server(void) {
    char script[4200];
    snprintf(script, sizeof script, "%s/tests/judge_server.py", sc_test_env("SC_SOURCE_DIR", "."));
    snprintf(log_path, sizeof log_path, "%s/server.jsonl", sc_test_tmpdir());
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) { perror("pipe"); return -1; }
    server_pid = fork();
    if (server_pid < 0) { perror("fork"); return -1; }
    if (server_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        execl("/usr/bin/python3", "python3", script, "--log", log_path, "--key", KEY, "--slow-s", "2.5", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    server_in = in[1];
    FILE *f = fdopen(out[0], "r");
    char line[64];
    if (!f || !fgets(line, sizeof line, f)) { fprintf(stderr, "judge_server.py printed no port\n"); return -1; }
    fclose(f);
    port = atoi(line);
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", port);
    return port > 0 ? 0 : -1;
}

static void stop_server(void) {
    if (server_in >= 0) close(server_in);      // the server exits when its stdin closes
    server_in = -1;
    if (server_pid > 0) {
        for (int i = 0; i < 50; i++) {
            if (waitpid(server_pid, NULL, WNOHANG) == server_pid) { server_pid = -1; return; }
            usleep(20000);
        }
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
}

// POST /_control {"faults": plan} (+ "key" when key_json is given: a JSON string or null).
static void control(const char *plan, const char *key_json) {
    char url[128], body[2048];
    snprintf(url, sizeof url, "%s/_control", base_url);
    if (key_json) snprintf(body, sizeof body, "{\"faults\": \"%s\", \"key\": %s}", plan, key_json);
    else snprintf(body, sizeof body, "{\"faults\": \"%s\"}", plan);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    sc_http_request r = {.url = url, .headers = hdr, .body = body, .body_len = strlen(body)};
    sc_http_response resp;
    sc_http_opts o;
    sc_http_opts_default(&o);
    o.what = "control";
    CHECK_OK(sc_http_run(&o, &r, 1, &resp));
    CHECKF(resp.status == SC_OK, "control: %s", resp.error ? resp.error : "");
    sc_http_response_free(&resp);
}

// The server's log: every API request as a parsed JSON object.
typedef struct { cJSON **e; int n; } server_log;

static server_log read_log(void) {
    server_log L = {0};
    char *text;
    size_t len;
    if (!sc_file_exists(log_path) || sc_read_file(log_path, &text, &len) != SC_OK) return L;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        L.e = realloc(L.e, (size_t)(L.n + 1) * sizeof *L.e);
        L.e[L.n] = cJSON_Parse(line);
        CHECKF(L.e[L.n] != NULL, "server log line is not JSON: %.80s", line);
        if (L.e[L.n]) L.n++;
    }
    free(text);
    return L;
}

static void free_log(server_log *L) {
    for (int i = 0; i < L->n; i++) cJSON_Delete(L->e[i]);
    free(L->e);
    L->e = NULL;
    L->n = 0;
}

static int log_lines(void) {
    server_log L = read_log();
    int n = L.n;
    free_log(&L);
    return n;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void check_no_key(const char *what, const char *s) {
    sc_test_checks++;
    if (s && strstr(s, KEY)) sc_test_fail(__FILE__, __LINE__, "%s shows the API key: %s", what, s);
}

// Every file under dir: named ab/<64 hex>.json and free of the key. Returns the count.
static int check_cache_dir(const char *dir) {
    int files = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[4400];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        CHECKF(strlen(e->d_name) == 2, "cache: unexpected entry %s", sub);
        DIR *d2 = opendir(sub);
        if (!d2) continue;
        struct dirent *f;
        while ((f = readdir(d2))) {
            if (f->d_name[0] == '.') continue;
            char path[4700];
            snprintf(path, sizeof path, "%s/%s", sub, f->d_name);
            CHECKF(strlen(f->d_name) == 69 && !strncmp(f->d_name, e->d_name, 2) && !strcmp(f->d_name + 64, ".json"), "cache: unexpected file %s", path);
            char *body;
            size_t len;
            if (sc_read_file(path, &body, &len) == SC_OK) {
                CHECKF(!strstr(body, KEY), "cache file %s holds the API key", path);
                cJSON *j = cJSON_Parse(body);
                CHECKF(j != NULL, "cache file %s is not JSON", path);
                cJSON_Delete(j);
                free(body);
            }
            files++;
        }
        closedir(d2);
    }
    closedir(d);
    return files;
}

// ---------------------------------------------------------------------------------------
// The batches

static char texts[NB][NI][3][96];
static sc_judge_item items[NB][NI];
static sc_judge_batch batches[NB];

static void make_batches(const char *tag) {
    for (int b = 0; b < NB; b++) {
        for (int k = 0; k < NI; k++) {
            snprintf(texts[b][k][0], 96, "%s-b%d question %d: tell me about the weather%s", tag, b, k, b == 7 ? " (no-theme)" : "");
            snprintf(texts[b][k][1], 96, "It is sunny today (base %d).", k);
            snprintf(texts[b][k][2], 96, "It is sunny, and the ocean is calm (modified %d).", k);
            items[b][k] = (sc_judge_item){.prompt_id = 10 * b + k, .prompt = texts[b][k][0], .original = texts[b][k][1], .output = texts[b][k][2]};
        }
        batches[b] = (sc_judge_batch){.items = items[b], .n = NI};
    }
}

static void net_opts(sc_judge_net_opts *o, const char *provider, const char *cache) {
    sc_judge_net_opts_default(o, provider);
    o->base_url = base_url;
    o->api_key_env = KEY_ENV;
    o->cache_dir = cache;
    o->prompts_dir = prompts_dir;
    o->in_flight = 4;
    o->connect_timeout_s = 1;
    o->timeout_s = 1;
    o->max_attempts = 4;
    o->backoff_base_s = 0.05;
    o->backoff_max_s = 5;
    o->request_budget = 100;
    o->embed_batch = 2;
}

static sc_status make(const char *provider, const sc_judge_net_opts *o, sc_provider **p) {
    return !strcmp(provider, "gemini") ? sc_provider_gemini(o, p) : sc_provider_openai(o, p);
}

static int is_theme_ok(const sc_judge_theme *t, int b) {
    if (t->status != SC_OK) return 0;
    if (b == 7) return t->theme == NULL && t->n_prompts == 0;
    char want[64];
    snprintf(want, sizeof want, "the outputs all mention item %d", 10 * b);
    if (!t->theme || strcmp(t->theme, want) || t->n_prompts != NI) return 0;
    for (int k = 0; k < NI; k++) if (t->prompts[k] != 10 * b + k) return 0;
    return 1;
}

// Seconds between the first two logged requests whose body holds marker (-1: fewer than two).
static double gap(const server_log *L, const char *marker) {
    double t[2];
    int n = 0;
    for (int i = 0; i < L->n && n < 2; i++) {
        const char *body = jstr(L->e[i], "body");
        if (body && strstr(body, marker)) t[n++] = cJSON_GetObjectItemCaseSensitive(L->e[i], "t")->valuedouble;
    }
    return n == 2 ? t[1] - t[0] : -1;
}

static int count_fault(const server_log *L, int from, const char *fault) {
    int n = 0;
    for (int i = from; i < L->n; i++) {
        const char *f = jstr(L->e[i], "fault");
        n += f && !strcmp(f, fault);
    }
    return n;
}

// ---------------------------------------------------------------------------------------

static void test_provider(const char *provider) {
    const int gemini = !strcmp(provider, "gemini");
    printf("--- %s\n", provider);
    char cache[4400], tag[16];
    snprintf(cache, sizeof cache, "%s/cache-%s", sc_test_tmpdir(), provider);
    snprintf(tag, sizeof tag, "mk%c", provider[0]);
    make_batches(tag);
    char plan[1024];
    snprintf(plan, sizeof plan,
             "extraid:1@%s-b0,429:2@%s-b1,500:1@%s-b2,slow:1@%s-b3,truncated:1@%s-b4,notjson:1@%s-b5,schema:1@%s-b6,%s:1@%s-b7",
             tag, tag, tag, tag, tag, tag, tag, gemini ? "retryinfo" : "reset", tag);
    control(plan, NULL);

    sc_judge_net_opts o;
    net_opts(&o, provider, cache);
    sc_provider *p = NULL;
    CHECK_OK(make(provider, &o, &p));
    if (!p) return;
    CHECK(!strcmp(p->name, provider));
    CHECK(!strcmp(p->model, gemini ? "gemini-2.0-flash" : "gpt-4o-mini"));

    // run 1: faults
    const int before = log_lines();
    sc_judge_theme out[NB];
    double t0 = sc_now_seconds();
    CHECK_OK(p->op->themes(p, batches, NB, out));
    double took = sc_now_seconds() - t0;
    printf("%s run 1: %.2f s\n", provider, took);
    CHECKF(took < 8, "run 1 took %.2f s", took);
    for (int b = 0; b < NB; b++) {
        check_no_key("a batch error", out[b].error);
        if (b == 5 || b == 6) {
            CHECKF(out[b].status != SC_OK && out[b].error, "%s batch %d should have failed", provider, b);
            char want[32];
            snprintf(want, sizeof want, "batch %d", b);
            CHECKF(out[b].error && strstr(out[b].error, want) && strstr(out[b].error, b == 5 ? "not valid JSON" : "schema"),
                   "%s batch %d error: %s", provider, b, out[b].error ? out[b].error : "(none)");
        } else {
            CHECKF(is_theme_ok(&out[b], b), "%s batch %d: status %s, error %s, theme %s, %d prompts", provider, b, sc_status_name(out[b].status),
                   out[b].error ? out[b].error : "-", out[b].theme ? out[b].theme : "(null)", out[b].n_prompts);
        }
    }
    server_log L = read_log();
    const int run1 = L.n - before;
    CHECKF(run1 == 14, "%s run 1: %d requests (want 8 batches + 6 retries)", provider, run1);
    int max_active = 0;
    for (int i = before; i < L.n; i++) {
        const cJSON *e = L.e[i];
        const cJSON *problems = cJSON_GetObjectItemCaseSensitive(e, "problems");
        CHECKF(cJSON_GetArraySize(problems) == 0, "%s: the server found problems: %s", provider,
               cJSON_GetArrayItem(problems, 0) ? cJSON_GetArrayItem(problems, 0)->valuestring : "");
        const char *path = jstr(e, "path"), *query = jstr(e, "query");
        CHECKF(path && !strcmp(path, gemini ? "/v1beta/models/gemini-2.0-flash:generateContent" : "/v1/chat/completions"), "path %s", path);
        CHECK(query && !*query);
        CHECK(path && !strstr(path, KEY));
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(e, "headers");
        if (gemini) {
            CHECK(jstr(h, "x-goog-api-key") && !strcmp(jstr(h, "x-goog-api-key"), KEY));
            CHECK(!jstr(h, "authorization"));
        } else {
            CHECK(jstr(h, "authorization") && !strcmp(jstr(h, "authorization"), "Bearer " KEY));
            CHECK(!jstr(h, "x-goog-api-key"));
        }
        const char *body = jstr(e, "body");
        CHECK(body && !strstr(body, KEY));
        int a = (int)cJSON_GetObjectItemCaseSensitive(e, "active")->valuedouble;
        if (a > max_active) max_active = a;
    }
    CHECKF(max_active <= 4, "%d requests at once (cap 4)", max_active);
    CHECKF(max_active >= 2, "the requests never overlapped (at most %d at once)", max_active);
    printf("%s run 1: at most %d requests at once (cap 4)\n", provider, max_active);
    CHECK(count_fault(&L, before, "429") == 2);
    CHECK(count_fault(&L, before, "slow") == 1 && count_fault(&L, before, "truncated") == 1);
    CHECK(count_fault(&L, before, gemini ? "retryinfo" : "reset") == 1);
    char m[32];
    snprintf(m, sizeof m, "%s-b1", tag);
    double g = gap(&L, m);
    CHECKF(g >= 0.95, "Retry-After: 1 was not honoured (%.3f s between attempts)", g);
    snprintf(m, sizeof m, "%s-b2", tag);
    g = gap(&L, m);
    CHECKF(g >= 0 && g < 0.8, "the retry after a 500 should follow the short backoff (%.3f s)", g);
    if (gemini) {
        snprintf(m, sizeof m, "%s-b7", tag);
        g = gap(&L, m);
        CHECKF(g >= 0.95, "RetryInfo retryDelay 1s was not honoured (%.3f s between attempts)", g);
    }
    free_log(&L);
    sc_judge_theme keep[NB];
    for (int b = 0; b < NB; b++) { keep[b] = out[b]; }
    sc_provider_free(p);

    // run 2: a new provider object, the same cache, no faults: only batches 5 and 6 are asked
    control("", NULL);
    CHECK_OK(make(provider, &o, &p));
    int n0 = log_lines();
    CHECK_OK(p->op->themes(p, batches, NB, out));
    CHECKF(log_lines() - n0 == 2, "%s run 2: %d requests (want 2: the batches that failed)", provider, log_lines() - n0);
    for (int b = 0; b < NB; b++) {
        CHECKF(is_theme_ok(&out[b], b), "%s run 2 batch %d: %s", provider, b, out[b].error ? out[b].error : "wrong answer");
        if (keep[b].theme && out[b].theme) CHECK(!strcmp(keep[b].theme, out[b].theme));
        if (keep[b].reasoning && out[b].reasoning) CHECK(!strcmp(keep[b].reasoning, out[b].reasoning));
        sc_judge_theme_free(&out[b]);
        sc_judge_theme_free(&keep[b]);
    }
    // run 3: everything from the cache
    n0 = log_lines();
    CHECK_OK(p->op->themes(p, batches, NB, out));
    CHECKF(log_lines() == n0, "%s run 3: %d requests (want none)", provider, log_lines() - n0);
    for (int b = 0; b < NB; b++) { CHECK(is_theme_ok(&out[b], b)); sc_judge_theme_free(&out[b]); }
    CHECKF(check_cache_dir(cache) == NB, "%s: %d cache files (want %d)", provider, check_cache_dir(cache), NB);

    // embeddings: 5 texts, 2 per request; OpenAI's answer comes in reverse order (by index)
    const char *et[] = {"alpha theme", "beta theme", "gamma theme", "alpha theme", "delta theme"};
    float *v = NULL;
    int dim = 0;
    n0 = log_lines();
    CHECK_OK(p->op->embed(p, et, 5, &v, &dim));
    CHECK(log_lines() - n0 == 3);
    CHECK(dim == 16);
    if (v && dim == 16) {
        CHECK(!memcmp(v, v + 3 * dim, (size_t)dim * sizeof *v));
        CHECK(memcmp(v, v + 1 * dim, (size_t)dim * sizeof *v) != 0);
        double norm = 0;
        for (int i = 0; i < dim; i++) norm += v[i] * v[i];
        CHECK(norm > 0);
    }
    float *v2 = NULL;
    int dim2 = 0;
    n0 = log_lines();
    CHECK_OK(p->op->embed(p, et, 5, &v2, &dim2));
    CHECK(log_lines() == n0);                      // cached
    CHECK(dim2 == dim && v && v2 && !memcmp(v, v2, (size_t)5 * (size_t)dim * sizeof *v));
    free(v);
    free(v2);
    {   // a single-text request (the in-request check cannot see it) and one with a tie
        control("badembed:1@mk-badembed", NULL);
        const char *bt[] = {"t zero", "t one", "t two", "t three mk-badembed", "t four"};
        v = NULL;
        CHECK_ERR(p->op->embed(p, bt, 5, &v, &dim), SC_ERR_SHAPE, "text 3", "15 values");
        CHECK(v == NULL);
        check_no_key("an embedding error", sc_last_error());
        control("", NULL);
        n0 = log_lines();
        CHECK_OK(p->op->embed(p, bt, 5, &v, &dim));   // the bad answer was not kept: asked again
        CHECKF(log_lines() - n0 == 1, "%d requests after a wrong-length answer (want 1)", log_lines() - n0);
        free(v);
        const char *ct[] = {"u zero", "u one mk-badembed", "u two"};  // one request: 16, 15, 16 values
        control("badembed:1@mk-badembed", NULL);
        sc_judge_net_opts o3 = o;
        o3.embed_batch = 3;
        o3.cache_dir = NULL;
        sc_provider *p3;
        CHECK_OK(make(provider, &o3, &p3));
        CHECK_ERR(p3->op->embed(p3, ct, 3, &v, &dim), SC_ERR_SHAPE, "text 1", "15 values");
        sc_provider_free(p3);
        control("", NULL);
        const char *empty[] = {"a", ""};
        CHECK_ERR(p->op->embed(p, empty, 2, &v, &dim), SC_ERR_ARG, "text 1", "empty");
    }

    // comparisons: the server picks the response with more of the trait's word
    snprintf(plan, sizeof plan, "schema:1@mk-cmp-bad");
    control(plan, NULL);
    sc_judge_pair pairs[3] = {
        {.prompt = "How was your day?", .a = "A happy, happy day.", .b = "A sad day.", .trait = "happy"},
        {.prompt = "How was your day?", .a = "A sad day.", .b = "A happy, happy day.", .trait = "happy"},
        {.prompt = "mk-cmp-bad", .a = "x", .b = "y", .trait = "happy"},
    };
    sc_judge_verdict vd[3];
    CHECK_OK(p->op->compare(p, pairs, 3, vd));
    CHECK(vd[0].status == SC_OK && vd[0].winner == 0);
    CHECK(vd[1].status == SC_OK && vd[1].winner == 1);
    CHECKF(vd[2].status != SC_OK && vd[2].error && strstr(vd[2].error, "pair 2") && strstr(vd[2].error, "schema"),
           "pair 2: %s", vd[2].error ? vd[2].error : "(no error)");
    for (int i = 0; i < 3; i++) free(vd[i].error);
    control("", NULL);

    // an error body that quotes the key: the message shows it redacted
    control("echokey:1@mk-echo", NULL);
    sc_judge_item echo_item = {.prompt_id = 1, .prompt = "mk-echo", .original = "a", .output = "b"};
    sc_judge_batch echo = {.items = &echo_item, .n = 1};
    sc_judge_theme et1;
    CHECK_OK(p->op->themes(p, &echo, 1, &et1));
    CHECKF(et1.status != SC_OK && et1.error && strstr(et1.error, "HTTP 401") && strstr(et1.error, "[redacted]"),
           "echo: %s", et1.error ? et1.error : "(none)");
    check_no_key("an HTTP error", et1.error);
    sc_judge_theme_free(&et1);
    control("", NULL);
    sc_provider_free(p);
    // 8 themes, 3 + 3 embedding requests (the wrong-length answer was taken out again), 2 comparisons
    CHECKF(check_cache_dir(cache) == NB + 8, "%s: %d cache files (want %d)", provider, check_cache_dir(cache), NB + 8);
}

static void test_budget(const char *provider) {
    sc_judge_net_opts o;
    net_opts(&o, provider, NULL);
    o.request_budget = 3;
    o.in_flight = 8;
    make_batches(provider[0] == 'g' ? "bg" : "bo");
    sc_provider *p;
    CHECK_OK(make(provider, &o, &p));
    if (!p) return;
    int n0 = log_lines();
    sc_judge_theme out[5];
    CHECK_OK(p->op->themes(p, batches, 5, out));
    CHECK(log_lines() - n0 == 3);
    int ok = 0, spent = 0;
    for (int b = 0; b < 5; b++) {
        ok += out[b].status == SC_OK;
        spent += out[b].status != SC_OK && out[b].error && strstr(out[b].error, "request budget of 3 requests") != NULL;
        sc_judge_theme_free(&out[b]);
    }
    CHECKF(ok == 3 && spent == 2, "%s budget: %d answered, %d refused", provider, ok, spent);
    const char *t[] = {"x"};
    float *v;
    int dim;
    CHECK_ERR(p->op->embed(p, t, 1, &v, &dim), SC_ERR_ARG, "text 0", "request budget");
    CHECK(log_lines() - n0 == 3);
    sc_provider_free(p);
}

static void test_keys(void) {
    sc_judge_net_opts o;
    sc_provider *p = NULL;
    net_opts(&o, "gemini", NULL);
    unsetenv("SC_TEST_NO_SUCH_KEY");
    o.api_key_env = "SC_TEST_NO_SUCH_KEY";
    CHECK_ERR(sc_provider_gemini(&o, &p), SC_ERR_ARG, "SC_TEST_NO_SUCH_KEY", "not set");
    CHECK_ERR(sc_provider_openai(&o, &p), SC_ERR_ARG, "SC_TEST_NO_SUCH_KEY", "not set");
    o.api_key_env = NULL;
    unsetenv("GEMINI_API_KEY");
    unsetenv("OPENAI_API_KEY");
    CHECK_ERR(sc_provider_gemini(&o, &p), SC_ERR_ARG, "GEMINI_API_KEY");
    CHECK_ERR(sc_provider_openai(&o, &p), SC_ERR_ARG, "OPENAI_API_KEY");
    setenv("SC_TEST_EMPTY_KEY", "", 1);
    o.api_key_env = "SC_TEST_EMPTY_KEY";
    CHECK_ERR(sc_provider_gemini(&o, &p), SC_ERR_ARG, "SC_TEST_EMPTY_KEY", "empty");
    o.api_key_env = "";
    CHECK_ERR(sc_provider_gemini(&o, &p), SC_ERR_ARG, "needs an API key");
    // a key never travels over plain http to another host
    o.api_key_env = KEY_ENV;
    o.base_url = "http://example.com";
    CHECK_ERR(sc_provider_openai(&o, &p), SC_ERR_ARG, "unencrypted");
    o.base_url = "https://user:pw@example.com";
    CHECK_ERR(sc_provider_openai(&o, &p), SC_ERR_ARG, "credentials");
    o.base_url = base_url;
    o.model = "bad/model";
    CHECK_ERR(sc_provider_gemini(&o, &p), SC_ERR_ARG, "bad/model");
    o.model = NULL;
    o.prompts_dir = "/nonexistent/prompts";
    CHECK_ERR(sc_provider_gemini(&o, &p), SC_ERR_IO, "/nonexistent/prompts/judge_theme.txt");
    o.prompts_dir = prompts_dir;
    check_no_key("a constructor error", sc_last_error());

    // openai with api_key_env "": no Authorization header at all
    control("", "null");
    net_opts(&o, "openai", NULL);
    o.api_key_env = "";
    CHECK_OK(sc_provider_openai(&o, &p));
    if (p) {
        make_batches("noauth");
        sc_judge_theme t;
        int n0 = log_lines();
        CHECK_OK(p->op->themes(p, batches, 1, &t));
        CHECKF(t.status == SC_OK, "no-auth: %s", t.error ? t.error : "");
        sc_judge_theme_free(&t);
        server_log L = read_log();
        CHECK(L.n == n0 + 1);
        if (L.n == n0 + 1) CHECK(!jstr(cJSON_GetObjectItemCaseSensitive(L.e[n0], "headers"), "authorization"));
        free_log(&L);
        sc_provider_free(p);
    }
    control("", "\"" KEY "\"");
}

static void *send_sigterm(void *arg) {
    (void)arg;
    usleep(300000);
    kill(getpid(), SIGTERM);
    return NULL;
}

static void test_interrupt(void) {
    control("slow:1@mk-int", NULL);
    sc_judge_net_opts o;
    net_opts(&o, "gemini", NULL);
    o.timeout_s = 30;
    sc_provider *p;
    CHECK_OK(sc_provider_gemini(&o, &p));
    if (!p) return;
    sc_judge_item it = {.prompt_id = 1, .prompt = "mk-int", .original = "a", .output = "b"};
    sc_judge_batch b = {.items = &it, .n = 1};
    sc_judge_theme t;
    sc_signals_install();
    pthread_t th;
    pthread_create(&th, NULL, send_sigterm, NULL);
    double t0 = sc_now_seconds();
    CHECK_ERR(p->op->themes(p, &b, 1, &t), SC_ERR_INTERRUPTED, "SIGTERM");
    double took = sc_now_seconds() - t0;
    CHECKF(took < 1.5, "SIGTERM ended the wait after %.2f s", took);
    CHECK(t.error == NULL && t.theme == NULL);
    pthread_join(th, NULL);
    sc_interrupt_reset();
    signal(SIGTERM, SIG_DFL);
    sc_provider_free(p);
    control("", NULL);
}

static void test_units(void) {
    CHECK(sc_http_parse_retry_after("1") == 1);
    CHECK(sc_http_parse_retry_after(" 7 \r\n") == 7);
    CHECK(sc_http_parse_retry_after("soon") == -1);
    CHECK(sc_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0);     // a past date: now
    const char *ri = "{\"error\":{\"code\":429,\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\"},"
                     "{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"3s\"}]}}";
    CHECK(sc_http_retry_info_delay(ri, strlen(ri)) == 3);
    CHECK(sc_http_retry_info_delay("{}", 2) == -1);
    CHECK(sc_http_retry_info_delay("not json", 8) == -1);
    char *r = sc_http_redact("a KEYb KEY", "KEY");
    CHECK(r && !strcmp(r, "a [redacted]b [redacted]"));
    free(r);

    char k1[65], k2[65], k3[65];
    CHECK_OK(sc_judge_cache_key("gemini", "m", "/p", "{}", 2, k1));
    CHECK_OK(sc_judge_cache_key("gemini", "m", "/p", "{}", 2, k2));
    CHECK_OK(sc_judge_cache_key("openai", "m", "/p", "{}", 2, k3));
    CHECK(!strcmp(k1, k2) && strcmp(k1, k3) && strlen(k1) == 64);
    CHECK_OK(sc_judge_cache_key("gemini", "mx", "", "{}", 2, k3));    // fields are length-prefixed
    CHECK_OK(sc_judge_cache_key("gemini", "m", "x", "{}", 2, k2));
    CHECK(strcmp(k2, k3));

    sc_judge_item it[2] = {{.prompt_id = 4}, {.prompt_id = 9}};
    sc_judge_batch b = {.items = it, .n = 2};
    sc_judge_theme t;
    CHECK_OK(sc_judge_parse_theme("```json\n{\"reasoning\":\"r\",\"theme\":\"x\",\"prompts\":[9,4,9,5]}\n```", &b, "unit", &t));
    CHECK(t.theme && !strcmp(t.theme, "x") && t.n_prompts == 2 && t.prompts[0] == 4 && t.prompts[1] == 9);
    sc_judge_theme_free(&t);
    CHECK_OK(sc_judge_parse_theme("{\"reasoning\":\"r\",\"theme\":\" \",\"prompts\":[]}", &b, "unit", &t));
    CHECK(t.theme == NULL);
    sc_judge_theme_free(&t);
    CHECK_ERR(sc_judge_parse_theme("{\"reasoning\":\"r\",\"theme\":null,\"theme\":\"y\",\"prompts\":[]}", &b, "unit", &t), SC_ERR_FORMAT, "twice");
    CHECK_ERR(sc_judge_parse_theme("{\"reasoning\":\"r\",\"prompts\":[]}", &b, "unit", &t), SC_ERR_FORMAT, "\"theme\" is missing");
    CHECK_ERR(sc_judge_parse_theme("{\"reasoning\":\"r\",\"theme\":null,\"prompts\":[1.5]}", &b, "unit", &t), SC_ERR_FORMAT, "not an integer");
    CHECK_ERR(sc_judge_parse_theme("[1,2]", &b, "unit", &t), SC_ERR_FORMAT, "schema");
    sc_judge_verdict v;
    CHECK_OK(sc_judge_parse_verdict("{\"reasoning\":\"r\",\"more\":\"b\"}", &v));
    CHECK(v.winner == 1);
    CHECK_ERR(sc_judge_parse_verdict("{\"reasoning\":\"r\",\"more\":\"C\"}", &v), SC_ERR_FORMAT, "neither");
}

int main(void) {
    if (access("/usr/bin/python3", X_OK) != 0) { printf("test_judge_http: /usr/bin/python3 missing, skipped\n"); return 77; }
    signal(SIGPIPE, SIG_IGN);
    sc_log_set_level(getenv("SC_TEST_VERBOSE") ? SC_LOG_DEBUG : SC_LOG_WARN);
    snprintf(prompts_dir, sizeof prompts_dir, "%s/prompts", sc_test_env("SC_SOURCE_DIR", "."));
    setenv(KEY_ENV, KEY, 1);
    test_units();
    if (start_server() != 0) { stop_server(); CHECK(0); return sc_test_finish("test_judge_http"); }
    double t0 = sc_now_seconds();
    test_provider("gemini");
    test_provider("openai");
    test_budget("gemini");
    test_budget("openai");
    test_keys();
    test_interrupt();
    printf("test_judge_http: %.1f s with the server\n", sc_now_seconds() - t0);
    stop_server();
    return sc_test_finish("test_judge_http");
}
