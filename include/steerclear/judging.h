// judging.h — the stages after evaluate: judge (themes of batches of outputs, embedded), score
// (cosine matrix, Hungarian matching, Linearity Score, ranking), quantify (scale sweeps and
// pairwise trait judging) and report (figures and RUN_DIR/report.md). Each stage writes only
// inside the run directory and can be run again: finished work is kept.
//
// Judge, per search: the adapter's evaluation outputs and the direction's (at the judged scale)
// are shuffled with the run's seed — one permutation for both, so batch k of each holds the same
// prompts — and cut into `batches` batches of `batch_size` (default 6 x 16, the study's). With
// fewer outputs the batches stay full and there are fewer of them (the last may be smaller):
// ceil(n / batch_size) batches, at most `batches`. Only themes are embedded: a batch the judge
// answered with no theme (null) counts 0 in the Linearity Score, which divides the matched
// cosines by the larger number of answered batches — a search whose outputs show no theme on
// one side (or on both: nothing changed) scores 0, not 1. Failed batches are recorded in
// themes.json, asked again by the next judge, and left out of the score meanwhile.
#ifndef STEERCLEAR_JUDGING_H
#define STEERCLEAR_JUDGING_H

#include "steerclear/judge.h"
#include "steerclear/stage.h"

typedef enum { SC_JUDGE_LEXICAL = 0, SC_JUDGE_GEMINI, SC_JUDGE_OPENAI, SC_JUDGE_LOCAL } sc_judge_provider_kind;

// The "judge" section of a run config.
typedef struct {
    int provider;                // sc_judge_provider_kind ("lexical" by default)
    char model[128];             // judge model ("": the provider's default)
    char embed_model[128];       // embedding model ("": the provider's default)
    char base_url[512];          // "": the provider's default endpoint
    char api_key_env[64];        // "": GEMINI_API_KEY / OPENAI_API_KEY; "none": no key (openai only)
    char local_model[1024];      // local provider: an instruct model directory
    char local_embed_model[1024];   // local provider: the embedding model directory ("": local_model)
    int batches, batch_size;     // 6, 16
    int in_flight;               // concurrent requests (8)
    int max_attempts;            // per request (5)
    int request_budget;          // requests per run (5000)
    float timeout_s, connect_timeout_s;   // 120, 15
    float scale;                 // the direction scale judged (2, evaluate's default)
    float threshold;             // Linearity Score marking a faithful direction (0.83)
} sc_judge_config;

// The "quantify" section.
typedef struct {
    float scales[16]; int n_scales;          // -5 -2 0 1 4 7
    char traits[8][64]; int n_traits;        // empathetic, prescriptive
    int top;                                 // directions with the best Linearity Scores (3)
    int max_new_tokens;                      // 100
    int batch_seqs;                          // 64
    char prompts[1024];                      // "": the shipped datasets/quantify.csv
} sc_quantify_config;

void sc_judge_config_default(sc_judge_config *c);
void sc_quantify_config_default(sc_quantify_config *c);
sc_status sc_judge_config_from_json(const cJSON *obj, const char *where, sc_judge_config *c);
sc_status sc_quantify_config_from_json(const cJSON *obj, const char *where, sc_quantify_config *c);
// One key set from command-line text (settings.h, sc_settings_set_text).
sc_status sc_judge_config_set(sc_judge_config *c, const char *key, const char *text, const char *where);
sc_status sc_quantify_config_set(sc_quantify_config *c, const char *key, const char *text, const char *where);
cJSON *sc_judge_config_to_json(const sc_judge_config *c);
cJSON *sc_quantify_config_to_json(const sc_quantify_config *c);
const char *sc_judge_provider_name(int kind);
// The "judge" and "quantify" sections of a config file (either may be absent: defaults stay),
// with their paths (local_model, local_embed_model, prompts) resolved against base_dir.
// Make the path settings absolute (relative ones taken from base_dir; NULL: the working directory).
sc_status sc_judging_config_resolve(sc_judge_config *jc, sc_quantify_config *qc, const char *base_dir);
sc_status sc_judging_config_load(const cJSON *file, const char *where, const char *base_dir, sc_judge_config *jc, sc_quantify_config *qc);

// The provider a config names; `cache_dir` holds HTTP answers (RUN_DIR/judge/cache).
sc_status sc_judge_provider_open(const sc_judge_config *c, const char *cache_dir, sc_provider **out);

// --- The stages ---------------------------------------------------------------------------------

typedef struct {
    const char *outputs_dir;     // evaluation files to judge (NULL: RUN_DIR/eval)
    const int *searches; int n_searches;   // NULL: every search with both files
    uint64_t seed; int seed_set; // shuffling seed (default: the run's search seed)
} sc_judge_opts;

// judge: themes of every batch, then their embeddings; RUN_DIR/judge/themes.json and
// results.h5 /judge. A batch answered before (same settings) is not asked again.
sc_status sc_judge_run(sc_run *run, const sc_judge_config *c, const sc_judge_opts *o);
// score: per search the cosine matrix, the matching and the Linearity Score; results.h5
// /scores and RUN_DIR/scores.json, ranked best first.
sc_status sc_score_run(sc_run *run, const sc_judge_config *c);
// quantify: the best directions (or `searches`) at every scale of the sweep on the quantify
// prompts (datasets/quantify.csv: the test-set format, category = how much the situation calls
// for the traits: low, medium or high): question marks and length per output against scale, and
// pairwise trait judging of base against steered, asked in both orders. Per search:
//   RUN_DIR/quantify/outputs_NNNN.json  the generated texts ([{prompt_id, need, prompt,
//       outputs: {"<scale>": text, ...}}] plus the settings they were made with); kept and
//       reused while the settings are the same, so a rerun only asks the judge (whose HTTP
//       answers are cached)
//   RUN_DIR/quantify/search_NNNN.json   {"search", "linearity" (or null), "date",
//       "judge": {provider, model}, "settings": {...},
//       "sweep": [{"scale", "outputs", "question_marks": {mean, sd, se}, "words": {mean, sd, se},
//                  "traits": {TRAIT: {"wins", "answers", "failed", "rate", "ci_low", "ci_high",
//                                     "agree", "by_need": {NEED: {wins, answers, rate, ci_low, ci_high}}}}
//                  (null at scale 0: the base model against itself)}, ...]}
//   "wins" counts answers preferring the steered output as the more TRAIT one, over "answers"
//   (two per prompt, one in each order; "failed" ones left out); ci_* is the 95% Wilson
//   interval; "agree" the share of prompts whose two answers agree.
sc_status sc_quantify_run(sc_stage *stage, const sc_judge_config *jc, const sc_quantify_config *c, const int *searches, int n_searches);
// report: figures (gnuplot, PNG; a warning when gnuplot is missing) and RUN_DIR/report.md.
sc_status sc_report_run(sc_run *run, const sc_judge_config *c);

#endif
