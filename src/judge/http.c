// http.c — concurrent HTTP requests with retries, backoff and a request budget, on libcurl's
// multi interface (see steerclear/http.h). Leaves out: redirects (never followed: the
// providers POST to fixed endpoints), cookies, proxies beyond libcurl's own environment
// variables, and any way to turn TLS verification off.
#include "steerclear/http.h"
#include "steerclear/rng.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_OK;

static void curl_init_once(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

void sc_http_opts_default(sc_http_opts *o) {
    memset(o, 0, sizeof *o);
    o->in_flight = 8;
    o->connect_timeout_s = 10;
    o->timeout_s = 120;
    o->max_attempts = 5;
    o->backoff_base_s = 1;
    o->backoff_max_s = 60;
    o->what = "http";
    o->max_body = (size_t)64 << 20;
}

void sc_http_response_free(sc_http_response *r) {
    if (!r) return;
    free(r->body);
    free(r->error);
    r->body = r->error = NULL;
    r->body_len = 0;
}

char *sc_http_redact(const char *s, const char *secret) {
    if (!s) return NULL;
    size_t ns = strlen(s), nk = secret ? strlen(secret) : 0;
    if (nk == 0) return sc_strdup(s);
    static const char mark[] = "[redacted]";
    size_t count = 0;
    for (const char *p = strstr(s, secret); p; p = strstr(p + nk, secret)) count++;
    char *out = malloc(ns + count * sizeof mark + 1);
    if (!out) return NULL;
    char *w = out;
    for (const char *p = s;;) {
        const char *hit = strstr(p, secret);
        size_t take = hit ? (size_t)(hit - p) : strlen(p);
        memcpy(w, p, take);
        w += take;
        if (!hit) break;
        memcpy(w, mark, sizeof mark - 1);
        w += sizeof mark - 1;
        p = hit + nk;
    }
    *w = '\0';
    return out;
}

double sc_http_parse_retry_after(const char *value) {
    if (!value) return -1;
    while (*value == ' ' || *value == '\t') value++;
    if (!*value) return -1;
    char *end;
    double s = strtod(value, &end);
    if (end != value) {
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
        return *end == '\0' && isfinite(s) && s >= 0 ? s : -1;
    }
    time_t t = curl_getdate(value, NULL);       // an HTTP date
    if (t == (time_t)-1) return -1;
    double d = difftime(t, time(NULL));
    return d > 0 ? d : 0;
}

double sc_http_retry_info_delay(const char *body, size_t len) {
    if (!body || len == 0) return -1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    double delay = -1;
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "error"), "details");
    if (!cJSON_IsArray(details)) details = NULL;
    const cJSON *d;
    cJSON_ArrayForEach(d, details) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(d, "@type");
        const cJSON *rd = cJSON_GetObjectItemCaseSensitive(d, "retryDelay");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "type.googleapis.com/google.rpc.RetryInfo") || !cJSON_IsString(rd)) continue;
        char *end;
        double s = strtod(rd->valuestring, &end);        // protobuf Duration in JSON: "3s", "1.5s"
        if (end != rd->valuestring && !strcmp(end, "s") && isfinite(s) && s >= 0) delay = s;
        break;
    }
    cJSON_Delete(root);
    return delay;
}

// ---------------------------------------------------------------------------------------
// One transfer (one attempt of one request)

typedef struct {
    CURL *easy;
    struct curl_slist *hdrs;
    int idx;
    char *buf;
    size_t len, cap, max;
    int too_big;
    double retry_after;          // from this attempt's Retry-After header, -1: none
    char errbuf[CURL_ERROR_SIZE];
} xfer;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    xfer *x = user;
    size_t n = size * nmemb;
    if (x->len + n > x->max) { x->too_big = 1; return 0; }
    if (x->len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + n + 1) cap *= 2;
        char *b = realloc(x->buf, cap);
        if (!b) return 0;
        x->buf = b;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, data, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *user) {
    xfer *x = user;
    size_t n = size * nmemb;
    if (n >= 5 && !strncmp(data, "HTTP/", 5)) x->retry_after = -1;      // a new response (after 100 Continue)
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && n < 256 && !strncasecmp(data, name, sizeof name - 1)) {
        char v[256];
        memcpy(v, data + sizeof name - 1, n - (sizeof name - 1));
        v[n - (sizeof name - 1)] = '\0';
        x->retry_after = sc_http_parse_retry_after(v);
    }
    return n;
}

static void xfer_free(xfer *x) {
    if (!x) return;
    if (x->easy) curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->buf);
    free(x);
}

static xfer *xfer_new(const sc_http_opts *o, const sc_http_request *r, int idx) {
    xfer *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->idx = idx;
    x->max = o->max_body;
    x->retry_after = -1;
    if (!(x->easy = curl_easy_init())) { free(x); return NULL; }
    for (const char *const *h = r->headers; h && *h; h++) {
        struct curl_slist *s = curl_slist_append(x->hdrs, *h);
        if (!s) { xfer_free(x); return NULL; }
        x->hdrs = s;
    }
    struct curl_slist *s = curl_slist_append(x->hdrs, "Expect:");       // no 100-continue round trip
    if (!s) { xfer_free(x); return NULL; }
    x->hdrs = s;
    CURL *e = x->easy;
    CURLcode c = CURLE_OK;
#define SETOPT(opt, val) do { if (c == CURLE_OK) c = curl_easy_setopt(e, opt, val); } while (0)
    SETOPT(CURLOPT_URL, r->url);
    SETOPT(CURLOPT_HTTPHEADER, x->hdrs);
    if (r->body) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SETOPT(CURLOPT_POSTFIELDS, r->body);
    }
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(CURLOPT_USERAGENT, "steerclear");
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout_s * 1000 + 0.5));
    SETOPT(CURLOPT_TIMEOUT_MS, (long)(o->timeout_s * 1000 + 0.5));
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, x);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, x);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(CURLOPT_PRIVATE, x);
#undef SETOPT
    if (c != CURLE_OK) { xfer_free(x); return NULL; }
    return x;
}

static int retryable_curl(CURLcode c) {
    switch (c) {
    case CURLE_COULDNT_CONNECT: case CURLE_OPERATION_TIMEDOUT: case CURLE_SEND_ERROR: case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static int retryable_http(long code) {
    return code == 408 || code == 429 || (code >= 500 && code <= 599 && code != 501 && code != 505);
}

// A printable, redacted excerpt of a body for messages.
static void excerpt(const char *body, size_t len, const char *secret, char *out, size_t cap) {
    out[0] = '\0';
    if (!body || !len || cap < 8) return;
    size_t limit = cap - 4 < 300 ? cap - 4 : 300, w = 0;
    for (size_t i = 0; i < len && w < limit; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[w++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    if (len > limit) { memcpy(out + w, "...", 3); w += 3; }
    out[w] = '\0';
    char *red = sc_http_redact(out, secret);
    if (red) { snprintf(out, cap, "%s", red); free(red); }
    else if (secret && *secret && strstr(out, secret)) snprintf(out, cap, "(body withheld)");
}

static void set_error(sc_http_response *r, const sc_http_opts *o, sc_status st, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_error(sc_http_response *r, const sc_http_opts *o, sc_status st, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(r->error);
    r->error = sc_http_redact(msg, o->redact);
    r->status = st;
}

// The URL without any query string (which could hold a credential) for messages.
static void url_for_message(const char *url, const char *secret, char *out, size_t cap) {
    size_t n = strcspn(url, "?#");
    snprintf(out, cap, "%.*s", (int)(n < 400 ? n : 400), url);
    char *red = sc_http_redact(out, secret);
    if (red) { snprintf(out, cap, "%s", red); free(red); }
}

enum { ST_WAIT, ST_ACTIVE, ST_DONE };

sc_status sc_http_run(const sc_http_opts *opts, const sc_http_request *reqs, int n, sc_http_response *out) {
    sc_http_opts o;
    if (opts) o = *opts; else sc_http_opts_default(&o);
    if (o.in_flight < 1) o.in_flight = 1;
    if (o.max_attempts < 1) o.max_attempts = 1;
    if (!o.what) o.what = "http";
    if (!o.max_body) o.max_body = (size_t)64 << 20;
    if (!(o.connect_timeout_s > 0)) o.connect_timeout_s = 10;
    if (!(o.timeout_s > 0)) o.timeout_s = 120;
    if (!(o.backoff_base_s >= 0)) o.backoff_base_s = 1;
    if (!(o.backoff_max_s >= 0)) o.backoff_max_s = 60;
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    if (n <= 0) return SC_OK;

    pthread_once(&curl_once, curl_init_once);
    int *state = calloc((size_t)n, sizeof *state);
    double *next_at = calloc((size_t)n, sizeof *next_at);
    xfer **live = calloc((size_t)n, sizeof *live);          // the transfer each active request runs
    CURLM *multi = curl_init_result == CURLE_OK ? curl_multi_init() : NULL;
    if (!state || !next_at || !live || !multi) {
        free(state); free(next_at); free(live);
        if (multi) curl_multi_cleanup(multi);
        sc_status st = !state || !next_at || !live ? SC_ERR_MEM : SC_ERR_LIB;
        for (int i = 0; i < n; i++) set_error(&out[i], &o, st, "%s: cannot set up libcurl", o.what);
        return sc_errorf(st, "%s: cannot set up libcurl (%s)", o.what, st == SC_ERR_MEM ? "out of memory" : curl_easy_strerror(curl_init_result));
    }
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)o.in_flight);

    const double t0 = sc_now_seconds();
    int done = 0, active = 0, calls = 0, retries = 0, failed = 0;
    sc_status result = SC_OK;
    while (done < n) {
        if (sc_interrupted()) { result = SC_ERR_INTERRUPTED; break; }
        double now = sc_now_seconds();
        // start what may start
        for (int i = 0; i < n && active < o.in_flight; i++) {
            if (state[i] != ST_WAIT || next_at[i] > now) continue;
            char url[512];
            url_for_message(reqs[i].url, o.redact, url, sizeof url);
            if (o.budget && o.budget->limit > 0 && o.budget->used >= o.budget->limit) {
                set_error(&out[i], &o, SC_ERR_ARG, "%s: not sent: the request budget of %d requests for this run is spent "
                          "(%d attempt%s of this request made); raise request_budget, or rerun to answer the rest from the cache",
                          url, o.budget->limit, out[i].attempts, out[i].attempts == 1 ? "" : "s");
                state[i] = ST_DONE; done++; failed++;
                continue;
            }
            xfer *x = xfer_new(&o, &reqs[i], i);
            if (!x || curl_multi_add_handle(multi, x->easy) != CURLM_OK) {
                xfer_free(x);
                set_error(&out[i], &o, SC_ERR_LIB, "%s: cannot start a transfer (libcurl setup failed)", url);
                state[i] = ST_DONE; done++; failed++;
                continue;
            }
            live[i] = x;
            if (o.budget) o.budget->used++;
            out[i].attempts++;
            calls++;
            state[i] = ST_ACTIVE;
            active++;
        }
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            const CURLcode cc = msg->data.result;
            curl_multi_remove_handle(multi, msg->easy_handle);
            const int i = x->idx;
            live[i] = NULL;
            sc_http_response *r = &out[i];
            active--;
            long code = 0;
            curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
            free(r->body);
            r->body = x->buf; r->body_len = x->len;
            x->buf = NULL;
            r->http_status = cc == CURLE_OK ? code : 0;
            char url[512];
            url_for_message(reqs[i].url, o.redact, url, sizeof url);
            int retry = 0;
            double advised = -1;
            if (cc != CURLE_OK) {
                const char *why = x->too_big ? "the response is larger than the limit" : x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc);
                char why2[CURL_ERROR_SIZE + 64];
                snprintf(why2, sizeof why2, "%s", why);
                size_t wl = strlen(why2);
                while (wl && (why2[wl - 1] == '\n' || why2[wl - 1] == '\r')) why2[--wl] = '\0';
                retry = !x->too_big && retryable_curl(cc);
                set_error(r, &o, SC_ERR_IO, "%s: %s (curl error %d) after %d attempt%s", url, why2, (int)cc, r->attempts, r->attempts == 1 ? "" : "s");
            } else if (code >= 200 && code < 300) {
                r->status = SC_OK;
                free(r->error);
                r->error = NULL;
            } else {
                char ex[400];
                excerpt(r->body, r->body_len, o.redact, ex, sizeof ex);
                retry = retryable_http(code);
                advised = x->retry_after;
                if (advised < 0 && (code == 429 || code == 503)) advised = sc_http_retry_info_delay(r->body, r->body_len);
                set_error(r, &o, SC_ERR_LIB, "%s: HTTP %ld after %d attempt%s%s%s", url, code, r->attempts, r->attempts == 1 ? "" : "s",
                          ex[0] ? ": " : "", ex);
            }
            xfer_free(x);
            if (retry && r->attempts < o.max_attempts) {
                double delay;
                const float u = sc_rng_uniform(o.seed, (uint64_t)i, (uint64_t)r->attempts);
                if (advised > o.backoff_max_s) {
                    char prev[1024];
                    snprintf(prev, sizeof prev, "%s", r->error ? r->error : "");
                    set_error(r, &o, SC_ERR_LIB, "%s; the server asks to wait %.0f s before retrying, longer than this run waits (%g s): try again later",
                              prev, advised, o.backoff_max_s);
                    state[i] = ST_DONE; done++; failed++;
                    continue;
                } else if (advised >= 0) {
                    delay = advised * (1.0 + 0.1 * u);
                } else {
                    delay = o.backoff_base_s * pow(2.0, r->attempts - 1);
                    if (delay > o.backoff_max_s) delay = o.backoff_max_s;
                    delay *= 0.5 + 0.5 * u;
                }
                sc_log(SC_LOG_DEBUG, "%s: retrying request %d in %.2f s (%s)", o.what, i, delay, r->error ? r->error : "");
                next_at[i] = sc_now_seconds() + delay;
                state[i] = ST_WAIT;
                retries++;
            } else {
                state[i] = ST_DONE; done++;
                if (r->status != SC_OK) failed++;
            }
        }
        if (done >= n) break;
        // wait: for transfers, for the next retry time, at most 100 ms (so a signal is seen soon)
        double wait = 0.1;
        now = sc_now_seconds();
        for (int i = 0; i < n; i++)
            if (state[i] == ST_WAIT && active < o.in_flight) { double d = next_at[i] - now; if (d < wait) wait = d; }
        if (wait < 0) wait = 0;
        curl_multi_poll(multi, NULL, 0, (int)(wait * 1000), NULL);
    }

    // an interrupt: abandon what runs and what waits
    for (int i = 0; i < n; i++) {
        if (state[i] == ST_DONE) continue;
        char url[512];
        url_for_message(reqs[i].url, o.redact, url, sizeof url);
        set_error(&out[i], &o, SC_ERR_INTERRUPTED, "%s: abandoned: stopped by a signal", url);
        failed++;
    }
    for (int i = 0; i < n; i++)
        if (live[i]) { curl_multi_remove_handle(multi, live[i]->easy); xfer_free(live[i]); }
    curl_multi_cleanup(multi);
    free(state);
    free(next_at);
    free(live);
    sc_log(SC_LOG_INFO, "%s: %d request%s, %d call%s, %d retr%s, %d failed, %.2f s", o.what, n, n == 1 ? "" : "s", calls,
           calls == 1 ? "" : "s", retries, retries == 1 ? "y" : "ies", failed, sc_now_seconds() - t0);
    if (result == SC_ERR_INTERRUPTED) {
        char where[160];
        snprintf(where, sizeof where, "waiting for %s answers (%d of %d requests unfinished)", o.what, n - done, n);
        return sc_check_interrupt(where);
    }
    return SC_OK;
}
