// judge_cache.h — the judge's disk cache, and the request layer the two HTTP providers
// (gemini.c, openai.c) share on top of it: cache lookup -> HTTP -> check -> store, and the
// sc_provider_ops both use (a provider is a wire-format `dialect` on top of that layer).
//
// Cache: key = SHA-256 over (provider name, model, endpoint path, request body), each
// length-prefixed; never the API key or the base URL. One file per key,
// CACHE_DIR/ab/abcdef...(64 hex).json, holding the raw response body of a successful answer
// that passed the provider's schema check; written atomically. A failure is never stored, so a
// later run asks again what failed.
//
// The rest of this header (sc_judge_net_*) is internal to the HTTP providers. The prompts and
// the checks of the judge's answers, which the local provider shares, are in judge_prompts.h.
#ifndef STEERCLEAR_JUDGE_CACHE_H
#define STEERCLEAR_JUDGE_CACHE_H

#include "steerclear/http.h"
#include "steerclear/json.h"
#include "steerclear/judge_net.h"
#include "steerclear/judge_prompts.h"

// key: 64 lowercase hex digits + NUL.
sc_status sc_judge_cache_key(const char *provider, const char *model, const char *endpoint,
                             const char *body, size_t body_len, char key[65]);
// CACHE_DIR/ab/<key>.json into path[cap].
sc_status sc_judge_cache_path(const char *dir, const char *key, char *path, size_t cap);
// 1: hit (*body malloc'ed, NUL-terminated), 0: miss (an unreadable entry counts as a miss and
// is logged as a warning).
int sc_judge_cache_get(const char *dir, const char *key, char **body, size_t *len);
// Store atomically (creates CACHE_DIR/ab/).
sc_status sc_judge_cache_put(const char *dir, const char *key, const char *body, size_t len);
// Remove an entry (an answer found wrong after it was stored); a missing entry is fine.
void sc_judge_cache_drop(const char *dir, const char *key);

// ---------------------------------------------------------------------------------------
// Internal to gemini.c and openai.c.

typedef struct {
    char provider[16];           // "gemini" / "openai"
    char *base_url;              // without a trailing '/'
    char *key;                   // the API key (secret), NULL: no authentication
    char *auth_header;           // the header carrying the key (secret), NULL: none
    const char *headers[3];      // {"Content-Type: application/json", auth_header, NULL}
    char *cache_dir;             // NULL: no cache
    sc_judge_prompts prompts;    // prompts/judge_theme.txt, prompts/judge_compare.txt
    sc_http_opts http;           // in-flight cap, timeouts, retries; .budget -> budget
    sc_http_budget budget;       // shared by every call of the provider
    double temperature;          // < 0: not sent
    int embed_batch;
} sc_judge_net;

// Fill net from options (strings NULL: `def`'s). auth_prefix: "x-goog-api-key: " or
// "Authorization: Bearer ". key_optional: api_key_env "" means no authentication.
sc_status sc_judge_net_init(sc_judge_net *net, const char *provider, const sc_judge_net_opts *o,
                            const sc_judge_net_opts *def, const char *auth_prefix, int key_optional);
void sc_judge_net_release(sc_judge_net *net);

typedef struct {
    char *path;                  // endpoint path after the base URL (malloc'ed), e.g. "/v1/embeddings"
    char *body;                  // request body (malloc'ed JSON)
    size_t body_len;
    const char *model;           // the model named in the cache key
} sc_judge_net_call;

void sc_judge_net_calls_free(sc_judge_net_call *calls, int n);

// Check a response body of call i and keep what it says in the caller's output slot i (it may
// be called again for the same i after a failed cached copy). Failure: a status and a message
// (sc_errorf), and nothing kept.
typedef sc_status (*sc_judge_net_accept)(void *user, int i, const char *body, size_t len);

typedef struct {
    sc_status status;            // SC_OK: accept() took an answer
    char *error;                 // malloc'ed, redacted, when status != SC_OK
    int cached;                  // answered from the cache
} sc_judge_net_outcome;

// Answer n calls: from the cache where it holds a body accept() takes, else over HTTP; a body
// accept() takes is stored. Returns SC_OK when the run as a whole ran (outcomes per call), or
// SC_ERR_INTERRUPTED / SC_ERR_MEM / SC_ERR_LIB (outcomes still filled).
sc_status sc_judge_net_run(sc_judge_net *net, const char *what, const sc_judge_net_call *calls, int n,
                           sc_judge_net_accept accept, void *user, sc_judge_net_outcome *res);
void sc_judge_net_outcomes_free(sc_judge_net_outcome *res, int n);

// Given each text's vector (per_text[i], lens[i] floats), check all lengths agree (the most
// common length wins; an error names the first text index that differs) and pack *vecs[n][*dim].
sc_status sc_judge_net_embed_finish(const char *what, float *const *per_text, const int *lens, int n, float **vecs, int *dim);
// JSON number array -> malloc'ed floats (finite values only).
sc_status sc_judge_net_floats(const cJSON *array, float **v, int *len);
// The wire format of one provider: gemini.c and openai.c each define one; the rest (batching,
// cache, retries, checks, the sc_provider_ops) is shared (cache.c).
typedef enum { SC_JUDGE_ASK_THEME, SC_JUDGE_ASK_COMPARE, SC_JUDGE_ASK_OPENERS } sc_judge_ask;
typedef struct {
    // A chat request (system + user message) asking for JSON of the `ask` schema: fills c->path
    // and c->body (malloc'ed).
    sc_status (*chat_call)(const sc_judge_net *net, const char *model, sc_judge_ask ask,
                           const char *system, const char *user, sc_judge_net_call *c);
    // The model's answer text in a chat response body (malloc'ed), or an error saying why none.
    sc_status (*chat_text)(const char *body, size_t len, char **text);
    // An embedding request for texts[0..n).
    sc_status (*embed_call)(const sc_judge_net *net, const char *model, const char *const *texts, int n, sc_judge_net_call *c);
    // The n vectors of an embedding response for texts first..first+n-1: per_text[j] malloc'ed,
    // lens[j] floats (lengths are checked by the caller). On failure nothing is left allocated
    // and the message names the text's index (first + j).
    sc_status (*embed_parse)(const char *body, size_t len, int first, int n, float **per_text, int *lens);
} sc_judge_net_dialect;

// A response body parsed as a JSON object into *root (caller deletes), or SC_ERR_FORMAT quoting
// the start of the body (what a dialect's chat_text does first).
sc_status sc_judge_net_parse_object(const char *body, size_t len, cJSON **root);

// A provider on top of a dialect (the constructors of gemini.c and openai.c call this).
sc_status sc_judge_net_provider_new(const char *name, const sc_judge_net_dialect *d, const sc_judge_net_opts *o,
                                    const sc_judge_net_opts *def, const char *auth_prefix, int key_optional,
                                    sc_provider **out);

// A redacted copy of sc_last_error() (malloc'ed).
char *sc_judge_net_error_copy(const sc_judge_net *net);

#endif
