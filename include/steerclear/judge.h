// judge.h — the judge's providers behind one interface: themes of batches of outputs, text
// embeddings, and pairwise "which response is more TRAIT" comparisons.
//
// The study's method: for each search the judge reads the adapter's evaluation outputs in
// batches (default 6 of 16) next to the base model's completions of the same prompts and says
// whether the modified outputs share a theme that sets them apart, as JSON
//   {"reasoning": str, "theme": str | null, "prompts": [int, ...]}
// (the prompt ids it cites). The same is done for the direction's outputs; the themes are
// embedded and compared (score.h).
//
// Providers (chosen in the config):
//   lexical  offline and deterministic, the embedded default (src/judge/lexical.c)
//   gemini   Google's generateContent / batchEmbedContents (src/judge/gemini.c)
//   openai   any OpenAI-compatible server: /v1/chat/completions, /v1/embeddings (src/judge/openai.c)
//   local    a model directory run by steerclear itself (src/judge/local.c)
// The providers that write text (gemini, openai, local) also answer the dataset generator's
// requests for conversation openers (`openers` below; datagen.h).
// Calls take whole lists so that a provider can run them concurrently (HTTP: libcurl multi with
// an in-flight cap); a failure of one item is recorded for that item and never loses the others.
#ifndef STEERCLEAR_JUDGE_H
#define STEERCLEAR_JUDGE_H

#include "steerclear/core.h"

// One output of a modified model beside the base model's output for the same prompt.
typedef struct {
    int prompt_id;               // row of the test set (kept through shuffling)
    const char *prompt;          // the prompt as shown to the judge (the test set's "prompt" column)
    const char *original;        // the base model's completion
    const char *output;          // the modified model's completion
} sc_judge_item;

typedef struct {
    const sc_judge_item *items;
    int n;
} sc_judge_batch;

// A judge's answer about one batch.
typedef struct {
    sc_status status;            // SC_OK, or why this batch has no answer (message in `error`)
    char *error;                 // malloc'ed message when status != SC_OK
    char *reasoning;             // malloc'ed, may be NULL
    char *theme;                 // malloc'ed; NULL: no theme sets the outputs apart
    int *prompts;                // malloc'ed prompt ids the judge cites (n_prompts of them)
    int n_prompts;
} sc_judge_theme;

void sc_judge_theme_free(sc_judge_theme *t);

// One pairwise question: is `a` or `b` the more TRAIT response to `prompt`?
typedef struct {
    const char *prompt, *a, *b, *trait;
} sc_judge_pair;

typedef struct {
    sc_status status;            // SC_OK, or why there is no answer
    char *error;                 // malloc'ed when status != SC_OK
    int winner;                  // 0: a, 1: b (when status == SC_OK)
} sc_judge_verdict;

typedef struct sc_provider sc_provider;

// Free-form JSON requests (the dataset generator's conversation openers, datagen.h): each of n
// requests is a system and a user message asking for an answer of the schema
//   {"openers": [{"speaker": str, "text": str}, ...]}
// The answer text goes through check(user, i, text), which keeps what it needs and returns
// SC_OK, or refuses it with a message (then nothing of it is cached and out[i] says why).
typedef sc_status (*sc_provider_check)(void *user, int i, const char *text);
typedef struct {
    sc_status status;            // SC_OK: check() took an answer
    char *error;                 // malloc'ed when status != SC_OK
    int cached;                  // answered from the provider's cache
} sc_provider_outcome;
void sc_provider_outcomes_free(sc_provider_outcome *out, int n);

typedef struct {
    // Themes of n batches into out[n] (each filled, a failure recorded in its status). Returns
    // SC_OK when the call as a whole ran (even if some batches failed), an error otherwise
    // (e.g. no API key): then nothing in out is filled.
    sc_status (*themes)(sc_provider *p, const sc_judge_batch *batches, int n, sc_judge_theme *out);
    // Embeddings of n texts: *vecs = malloc'ed [n][*dim] floats. Every text must succeed (a
    // failure is an error naming the text's index).
    sc_status (*embed)(sc_provider *p, const char *const *texts, int n, float **vecs, int *dim);
    // Verdicts on n pairs into out[n] (a failure recorded per pair, like themes).
    sc_status (*compare)(sc_provider *p, const sc_judge_pair *pairs, int n, sc_judge_verdict *out);
    void (*free)(sc_provider *p);
    // Openers (see sc_provider_check) for n requests into out[n]; SC_OK when the call as a whole
    // ran. NULL for a provider that cannot write text (lexical).
    sc_status (*openers)(sc_provider *p, const char *const *system, const char *const *user, int n,
                         sc_provider_check check, void *user_data, sc_provider_outcome *out);
    // Requests this provider may still send (its request budget), -1 for no limit. NULL: -1.
    int (*budget_left)(const sc_provider *p);
} sc_provider_ops;

struct sc_provider {
    const sc_provider_ops *op;
    const char *name;            // "lexical", "gemini", "openai", "local"
    char model[256];             // the judge model's name as recorded ("lexical-1" for lexical)
    char embed_model[256];       // the embedding model's name
    void *impl;
};

// The offline, deterministic provider (docs/lexical-judge.md has the method).
sc_status sc_provider_lexical(sc_provider **out);
// steerclear itself as the judge: an instruct model directory answers the prompts (chat
// template, JSON parsed from its answer, retried with a repair instruction), and the
// mean-pooled final hidden state of a model directory embeds (src/judge/local.c).
sc_status sc_provider_local(const char *model_dir, const char *embed_dir, sc_provider **out);
void sc_provider_free(sc_provider *p);

#endif
