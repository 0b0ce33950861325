// http.h — a small HTTP client for the judge's providers, on libcurl's multi interface.
//
// sc_http_run sends a list of requests concurrently (at most `in_flight` at a time) and
// returns each request's final outcome. TLS certificates and host names are always verified
// (there is no switch to turn that off); plain http:// is accepted (the providers refuse it for
// anything but a loopback host when they would send an API key). Each attempt has a connect
// timeout and a total timeout. HTTP 408, 429 and 5xx (but 501 and 505), connection failures
// and resets, truncated bodies and timeouts are retried up to `max_attempts` attempts in all,
// after an exponential backoff with deterministic jitter (rng.h), or after the wait the server
// asks for: a `Retry-After` header (seconds or an HTTP date) or, in a JSON error body,
// Google's RetryInfo (error.details[] with "@type": "type.googleapis.com/google.rpc.RetryInfo"
// and "retryDelay": "3s"). A request budget (a counter several calls share) caps the attempts
// sent in a run; when it is spent every request still waiting fails with a message that says
// so. The run polls sc_interrupted() at least every 100 ms and returns SC_ERR_INTERRUPTED.
//
// Headers are never logged; a secret named in `redact` is replaced by "[redacted]" in every
// message (error text, quoted bodies) this client writes.
#ifndef STEERCLEAR_HTTP_H
#define STEERCLEAR_HTTP_H

#include "steerclear/core.h"

// A shared count of the HTTP attempts sent (retries included). limit <= 0: no limit.
typedef struct {
    int limit;
    int used;
} sc_http_budget;

typedef struct {
    int in_flight;               // concurrent transfers (default 8)
    double connect_timeout_s;    // per attempt (default 10)
    double timeout_s;            // whole transfer, per attempt (default 120)
    int max_attempts;            // attempts per request, the first included (default 5)
    double backoff_base_s;       // the first retry waits about this long, doubling after (default 1)
    double backoff_max_s;        // longest backoff, and the longest wait a server may ask for (default 60)
    uint64_t seed;               // jitter seed (default 0)
    sc_http_budget *budget;      // shared attempt counter, or NULL for none
    const char *redact;          // a secret (API key) never to write in a message, or NULL
    const char *what;            // name in log lines (default "http")
    size_t max_body;             // largest response body accepted (default 64 MiB)
} sc_http_opts;

void sc_http_opts_default(sc_http_opts *o);

typedef struct {
    const char *url;
    const char *const *headers;  // NULL-terminated "Name: value" lines, or NULL
    const char *body;            // POST body; NULL: a GET
    size_t body_len;
} sc_http_request;

typedef struct {
    sc_status status;            // SC_OK: a 2xx answer is in body
    long http_status;            // the last attempt's HTTP status (0: no response)
    char *body;                  // malloc'ed, NUL-terminated: the last attempt's body (NULL: none)
    size_t body_len;
    char *error;                 // malloc'ed message when status != SC_OK (what, URL, attempts)
    int attempts;                // attempts sent
} sc_http_response;

void sc_http_response_free(sc_http_response *r);

// Send n requests; out[n] receives every request's outcome (a failure of one request is
// recorded in its out[i] and never stops the others). Returns SC_OK when the run as a whole
// completed, SC_ERR_INTERRUPTED when a signal stopped it (unfinished requests then say so in
// their out[i]), SC_ERR_LIB / SC_ERR_MEM when libcurl could not be set up (out[] then all
// carry that error).
sc_status sc_http_run(const sc_http_opts *o, const sc_http_request *reqs, int n, sc_http_response *out);

// Parsing of a server's wait request (seconds, or -1 when absent or unreadable); exposed for tests.
double sc_http_parse_retry_after(const char *value);            // "120" or an HTTP date
double sc_http_retry_info_delay(const char *body, size_t len);  // Google's RetryInfo "retryDelay"

// Copy of s with every occurrence of secret replaced by "[redacted]" (malloc'ed; NULL on no memory).
char *sc_http_redact(const char *s, const char *secret);

#endif
