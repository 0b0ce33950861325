// datagen.h — `steerclear dataset`: a prompt set written by a language model from scenario
// specs, cleaned, optionally completed by the base model, and split into train.csv/test.csv.
//
// The steps (src/datagen/):
//   scenarios.c    the scenario specs (datasets/scenarios.json): per scenario a name, a context
//                  line, the character dynamic, the two roles and topics; every error names the
//                  file, the scenario and the key.
//   clean.c        one opener's checks (empty, too short or long, line breaks, chat-turn tokens,
//                  role markers, an unknown speaker), normalised-text duplicates and
//                  character-shingle Jaccard near-duplicates, the prompts built in the dataset
//                  format (dataset.h), the seeded split and the CSV writer.
//   openers.c      generation: per scenario, requests to a provider (judge.h's `openers`: the
//                  HTTP providers' client, retries, cache and key handling) for openers as JSON,
//                  in rounds until N clean distinct openers are kept or the request budget or
//                  the round limit is spent. A scenario's request k depends only on that
//                  scenario's answers before it, so with the provider's cache a rerun asks the
//                  same requests in the same order, answers the ones it has from the cache and
//                  continues where the last run stopped.
//   completions.c  the base model's continuation of each test prompt (original_completion), with
//                  the evaluate stage's sampling settings and seed rule, batched through the
//                  engine (evaluate.h's sc_evaluate_generate).
//
// The prompt format (datasets/README.md): full_prompt is
//   CONTEXT "\n<|im_start|>" SPEAKER "\n" TEXT "\n<|im_end|>\n\n<|im_start|>" LISTENER
// (LISTENER: the scenario's other role; no newline at the end), and prompt is the same without
// the context line.
#ifndef STEERCLEAR_DATAGEN_H
#define STEERCLEAR_DATAGEN_H

#include "steerclear/judge.h"

#include <stdio.h>

// --- Scenarios ----------------------------------------------------------------------------------

typedef struct {
    char *name;                  // [a-z0-9_]+, unique: the dataset's category
    char *context;               // one line: the scene
    char *dynamic;               // the character dynamic (for the generator only)
    char *roles[2];              // the two speakers' names
    char **topics;               // what the openers may be about
    int n_topics;
} sc_scenario;

typedef struct {
    sc_scenario *items;
    int n;
} sc_scenarios;

// {"version": 1, "description": ..., "scenarios": [{"name", "context", "dynamic", "roles":
// [A, B], "topics": [...]}, ...]}: at least one scenario; unknown keys are refused (typos).
sc_status sc_scenarios_load(const char *path, sc_scenarios *out);
// The same from text; `where` names it in messages.
sc_status sc_scenarios_parse(const char *text, const char *where, sc_scenarios *out);
void sc_scenarios_free(sc_scenarios *s);

// --- Cleaning -----------------------------------------------------------------------------------

typedef enum {
    SC_DROP_NONE = 0,
    SC_DROP_EMPTY,               // nothing but spaces
    SC_DROP_TOO_SHORT,           // fewer than min_chars characters
    SC_DROP_TOO_LONG,            // more than max_chars characters
    SC_DROP_LINE_BREAK,          // a line break: a turn of the dataset is one paragraph
    SC_DROP_ENCODING,            // invalid UTF-8, or a control character other than a tab
    SC_DROP_CHAT_TOKEN,          // chat-template markup (<|im_start|>, <|endoftext|>, [INST], <s> ...)
    SC_DROP_ROLE_MARKER,         // "ROLE:" of either role (or user:/assistant:/system:): a scripted exchange
    SC_DROP_SPEAKER,             // the speaker is not one of the scenario's two roles
    SC_DROP_DUPLICATE,           // the same normalised text as a kept opener
    SC_DROP_NEAR_DUPLICATE,      // shingle Jaccard >= the threshold with a kept opener
    SC_DROP_SURPLUS,             // beyond the N openers a scenario needs
    SC_DROP_N
} sc_drop_reason;

const char *sc_drop_reason_name(sc_drop_reason r);   // "too_short", "near_duplicate", ...

typedef struct {
    int min_chars;               // 20 (Unicode characters, after trimming)
    int max_chars;               // 400
    double jaccard;              // 0.5: near-duplicate at or above this
    int shingle;                 // 5: characters per shingle
} sc_clean_opts;

void sc_clean_opts_default(sc_clean_opts *o);

// Normalised text: NFKC, case-folded, every run of characters that are not letters or digits
// one space, trimmed (malloc'ed).
sc_status sc_datagen_normalise(const char *text, char **out);

// The sorted, distinct 64-bit hashes of the `k`-character shingles of a normalised text (a
// text shorter than k: one shingle, the whole text).
typedef struct {
    uint64_t *h;
    int n;
} sc_shingles;

sc_status sc_shingles_make(const char *norm, int k, sc_shingles *out);
double sc_shingles_jaccard(const sc_shingles *a, const sc_shingles *b);   // |A∩B| / |A∪B|
void sc_shingles_free(sc_shingles *s);

// The checks of one opener on its own (no duplicate checks); *speaker_role gets 0 or 1.
sc_drop_reason sc_opener_check(const sc_scenario *sc, const char *speaker, const char *text, const sc_clean_opts *o,
                               int *speaker_role);

// The openers kept for one scenario, with what the duplicate checks need.
typedef struct {
    char *text;                  // trimmed
    int role;                    // 0 or 1: the speaker
    char *norm;                  // normalised text
    sc_shingles sh;
} sc_opener;

typedef struct {
    sc_opener *items;
    int n, cap;
} sc_opener_pool;

// Offer an opener (speaker, text as the model wrote them; surrounding quotes and spaces are
// trimmed). SC_DROP_NONE: kept (appended). Else the reason; for duplicates *similar is the index
// of the kept opener it matches and *sim the Jaccard similarity (1 for an exact duplicate).
// Pools to check against besides `pool` itself: others[0..n_others) (the duplicate checks
// only). Returns SC_DROP_N with an error on no memory.
sc_drop_reason sc_pool_offer(sc_opener_pool *pool, const sc_opener_pool *const *others, int n_others, const sc_scenario *sc,
                             const char *speaker, const char *text, const sc_clean_opts *o, int *similar_pool, int *similar,
                             double *sim);
void sc_pool_free(sc_opener_pool *pool);

// full_prompt and prompt of an opener (both malloc'ed), in the dataset format above.
sc_status sc_opener_prompts(const sc_scenario *sc, const sc_opener *op, char **full_prompt, char **prompt);

// --- Split --------------------------------------------------------------------------------------

typedef enum { SC_SPLIT_STRATIFIED = 0, SC_SPLIT_HOLDOUT } sc_split_kind;

typedef struct {
    sc_split_kind kind;
    int train_per, test_per;     // stratified: per scenario (16, 4)
    int holdout;                 // holdout: whole scenarios in the test set
    uint64_t seed;
} sc_split_opts;

typedef struct {
    int scenario, index;         // pool index of the opener
} sc_split_row;

// Stratified: within each scenario a seeded shuffle (stream = the scenario's index) puts
// test_per openers in the test set and the next train_per in the training set (fewer when a
// scenario has fewer openers: the test set is filled first, as long as one is left for training).
// Holdout: a seeded shuffle of the scenarios puts `holdout` of them, with all their openers, in
// the test set. Rows come in scenario order, then opener order. *train/*test malloc'ed.
sc_status sc_split_make(const sc_split_opts *o, const int *counts, int n_scenarios, sc_split_row **train, int *n_train,
                        sc_split_row **test, int *n_test);

// A CSV field as Python's csv module writes it (quoted when it holds a comma, a quote, CR or LF;
// quotes doubled), appended to f.
void sc_csv_field(FILE *f, const char *s);

// --- Generation ---------------------------------------------------------------------------------

typedef struct {
    int per_scenario;            // N openers kept per scenario (20)
    int batch;                   // most openers asked in one request (12)
    int max_rounds;              // most requests per scenario, failed ones included (8)
    int stall;                   // stop a scenario after this many answers in a row that kept nothing (3)
    int avoid;                   // kept openers quoted back in the next request, most recent last (30)
    const char *prompts_dir;     // prompts/dataset_openers.txt; NULL: judge_net.h's default
    sc_clean_opts clean;
} sc_datagen_opts;

void sc_datagen_opts_default(sc_datagen_opts *o);

// One opener that was not kept, for the cleaning report.
typedef struct {
    int scenario;
    int request;                 // the scenario's request (0-based) whose answer held it; -1: final cross-scenario pass
    char *speaker, *text;        // as the model wrote them
    sc_drop_reason reason;
    int similar_scenario;        // duplicates: the scenario of the kept opener it matches, else -1
    char *similar_text;          // that opener's text (malloc'ed), else NULL
    double similarity;
} sc_dropped;

typedef struct {
    int requests, answered, cached, failed;   // requests for this scenario and their outcomes
    int received;                // openers in the accepted answers
    int kept;                    // openers kept (pool size)
    int missing;                 // per_scenario - kept (>= 0)
    char *last_error;            // the last failed request's message (malloc'ed), or NULL
    const char *stopped;         // why generation stopped: "complete", "budget", "rounds", "stalled", "interrupted"
} sc_scenario_stats;

typedef struct {
    sc_opener_pool *pools;       // [n] kept openers per scenario
    sc_scenario_stats *stats;    // [n]
    int n;
    sc_dropped *dropped;
    int n_dropped, cap_dropped;
    int requests, cached, failed;   // over all scenarios
} sc_datagen_result;

// Generate (and clean) openers for every scenario. Returns SC_OK when the run itself worked,
// even if scenarios are short (see stats[].missing); SC_ERR_INTERRUPTED on a signal (what was
// kept stays in *res); errors for a provider that cannot write openers or a bad prompt file.
sc_status sc_datagen_generate(sc_provider *p, const sc_scenarios *sc, const sc_datagen_opts *o, sc_datagen_result *res);
// The final pass across scenarios: an opener whose normalised text equals, or whose shingles are
// near, one of an earlier scenario is dropped (recorded with request -1).
sc_status sc_datagen_cross_check(const sc_scenarios *sc, const sc_clean_opts *o, sc_datagen_result *res);
// The check of one answer text (exposed for tests): parse {"openers": [{"speaker", "text"}]}.
// *speakers/*texts malloc'ed arrays of malloc'ed strings (n of each).
sc_status sc_datagen_parse_answer(const char *text, char ***speakers, char ***texts, int *n);
void sc_datagen_result_free(sc_datagen_result *res);

// --- Baseline completions -----------------------------------------------------------------------

typedef struct {
    const char *model_dir;
    int max_new_tokens;          // 100 (evaluate's)
    float temperature;           // 0.7
    int top_k;                   // 50
    float top_p;                 // 0.9
    uint64_t seed;               // 1234 (the default search seed, which evaluate uses)
    int batch_seqs;              // 64
    size_t memory_budget;        // 0: the backend's default
} sc_completion_opts;

void sc_completion_opts_default(sc_completion_opts *o);

// completions[i] (malloc'ed) of full_prompts[i], i < n: sequence i draws from RNG stream i with
// o->seed, as evaluate draws test row i, so a test set's completions are what `evaluate` with
// the same settings writes as the base model's output for that row.
sc_status sc_datagen_completions(const sc_completion_opts *o, const char *const *full_prompts, int n, char **completions);

#endif
