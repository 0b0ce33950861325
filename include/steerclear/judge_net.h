// judge_net.h — the two HTTP judge providers: Google's Gemini API (src/judge/gemini.c) and any
// OpenAI-compatible server (src/judge/openai.c), with their options.
//
// Both send the same prompts (prompts/judge_theme.txt, prompts/judge_compare.txt), ask for JSON
// that follows a schema (Gemini: responseSchema; OpenAI: response_format json_schema, strict),
// check every answer against it, and keep each successful, schema-valid response body in a disk
// cache (judge_cache.h) so that a rerun asks only what failed before.
//
// API keys come only from the environment: the variable named by `api_key_env` (NULL: the
// provider's default, GEMINI_API_KEY or OPENAI_API_KEY). A missing or empty variable is an
// error naming it. For openai, api_key_env = "" means "no authentication" (a local server);
// gemini always needs a key. The key is sent only in a header (Gemini: x-goog-api-key; OpenAI:
// Authorization: Bearer), never in a URL, and never appears in logs, messages, the cache or
// results. A key is never sent over plain http:// except to a loopback host (127.0.0.1,
// localhost, [::1]): the constructor refuses such a base URL.
#ifndef STEERCLEAR_JUDGE_NET_H
#define STEERCLEAR_JUDGE_NET_H

#include "steerclear/judge.h"

typedef struct {
    const char *base_url;        // NULL: https://generativelanguage.googleapis.com / https://api.openai.com
    const char *model;           // judge model; NULL: gemini-2.0-flash / gpt-4o-mini
    const char *embed_model;     // NULL: gemini-embedding-001 / text-embedding-3-small
    const char *api_key_env;     // NULL: GEMINI_API_KEY / OPENAI_API_KEY; "" (openai only): no auth
    const char *cache_dir;       // NULL or "": no cache
    const char *prompts_dir;     // NULL: sc_judge_prompts_dir_default()
    int in_flight;               // concurrent requests (8)
    double connect_timeout_s;    // per attempt (10)
    double timeout_s;            // per attempt, whole transfer (120)
    int max_attempts;            // per request, the first included (5)
    int request_budget;          // HTTP attempts per provider object, retries included (2000); <= 0: no limit
    double backoff_base_s;       // first retry's backoff (1), doubling, jittered
    double backoff_max_s;        // longest backoff and longest server-asked wait honoured (60)
    double temperature;          // sampling temperature sent (0); < 0: not sent (server default)
    int embed_batch;             // texts per embedding request (gemini 100, openai 256)
    uint64_t seed;               // jitter seed (0)
} sc_judge_net_opts;

// Defaults for "gemini" or "openai" (any other name: the numeric defaults, NULL strings).
void sc_judge_net_opts_default(sc_judge_net_opts *o, const char *provider);

// The folder the prompts come from by default: SC_PROMPTS_DIR (a compile definition, the source
// tree's prompts/) when defined, else "prompts" (relative to the working directory).
const char *sc_judge_prompts_dir_default(void);

// Construct a provider (o may be NULL: defaults). Errors: a missing API key (naming the
// variable), a missing prompt file (naming its path), a bad base URL.
sc_status sc_provider_gemini(const sc_judge_net_opts *o, sc_provider **out);
sc_status sc_provider_openai(const sc_judge_net_opts *o, sc_provider **out);

#endif
