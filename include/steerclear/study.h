// study.h — `steerclear run`: the whole study as one resumable batch job, from one config file.
//
// The config (JSON) has the sections of every stage, each key with a default:
//   {"model": DIR, "train": CSV, "test": CSV, "memory_budget": "16G", "device": "cpu" or "cuda", "precision": "auto",
//    "make_model": {...},   // only used when "model" does not exist yet: a random model is made there
//    "stages": P,           // (or "dist": {"stages": P}) pipeline stages per MPI search group (dist.h)
//    "search": {...}, "extract": {...}, "evaluate": {...}, "judge": {...}, "quantify": {...}}
// Unknown keys and values of the wrong type are errors naming the key. Relative paths are taken
// from the config file's folder. The resolved config (every default filled in, absolute paths) is
// RUN_DIR/config.json, written before any work.
//
// Stages run in order: search, extract, evaluate, judge, score, quantify, report. A stage is
// recorded as finished in RUN_DIR/stages.json only after its outputs are written; `--resume`
// skips finished stages and continues the running one where it stopped (the search from its
// checkpoints, the judge from its answered batches, quantify from its generated texts). A config
// changed on resume is refused, naming the keys, when a changed key feeds a finished stage;
// keys that cannot change results (the judge's in-flight cap, retries, budget and timeouts, the
// memory budget, activation checkpointing, the loss chunk) may always change.
#ifndef STEERCLEAR_STUDY_H
#define STEERCLEAR_STUDY_H

#include "steerclear/extract.h"
#include "steerclear/evaluate.h"
#include "steerclear/judging.h"
#include "steerclear/search.h"

// The "extract" section.
typedef struct {
    int mode;                  // sc_direction_mode: "activation-diff" (default) | "update-mean"
    int prompts;               // 0 "train,test" (default), 1 "train", 2 "test"
    int max_new_tokens;        // 50
    float temperature;         // 0.7
    int top_k;                 // 50
    float top_p;               // 0.9
    int batch_seqs;            // 16
} sc_extract_config;

// The "evaluate" section.
typedef struct {
    float scales[16]; int n_scales;   // [2]
    int max_new_tokens;               // 100
    float temperature;                // 0.7
    int top_k;                        // 50
    float top_p;                      // 0.9
    int limit;                        // 0: every test prompt
    int batch_seqs;                   // 64
} sc_evaluate_config;

// The "make_model" section: a random model made at "model" on first use (the embedded default).
typedef struct {
    char preset[64];                  // "tiny"
    uint64_t seed;                    // 1
    char tokenizer[4096];             // "": the tokenizer scripts/setup.sh fetched
} sc_make_model_config;

typedef struct {
    char model[4096], train[4096], test[4096];
    char memory_budget[32];           // "": the default share of RAM
    int stages;                       // "stages" or "dist": {"stages"}: pipeline stages per search group (0: not given, 1)
    int micro_batches;                // "dist": {"micro_batches"}: GPipe micro-batches per step on a pipeline (0: not given, min(batch, 4P))
    char device[8];                   // "cpu" (default) or "cuda"
    char precision[8];                // "", "auto", "f32", "bf16" (backend.h; "": auto)
    int has_make_model;               // the config has a "make_model" section
    sc_make_model_config make_model;
    sc_search_config search;
    sc_extract_config extract;
    sc_evaluate_config evaluate;
    sc_judge_config judge;
    sc_quantify_config quantify;
} sc_study_config;

void sc_study_config_default(sc_study_config *c);
// Read a config file (relative paths against its folder; "train"/"test" default to the shipped
// datasets). Errors name the file and the key.
sc_status sc_study_config_load(const char *path, sc_study_config *c);
// The resolved config as JSON (every key).
cJSON *sc_study_config_to_json(const sc_study_config *c);
// The options of the extract and evaluate stages from their sections.
void sc_extract_config_opts(const sc_extract_config *c, sc_extract_opts *o);
void sc_evaluate_config_opts(const sc_evaluate_config *c, sc_evaluate_opts *o);

#define SC_STUDY_STAGES 7
extern const char *const sc_study_stage_names[SC_STUDY_STAGES];   // search ... report

// Which stages a change of the resolved config from `old_json` to `now` would make stale:
// returns the index of the earliest stage a changed key feeds (SC_STUDY_STAGES when only free
// keys changed) and lists the changed keys ("search.lr (0.1 -> 0.2), ...") in diff[n].
int sc_study_config_diff(const char *old_json, const cJSON *now, char *diff, size_t n);

typedef struct {
    const char *config_path;
    const char *run_dir;              // NULL: "results/<config name>" in the working directory
    int resume;
    int wait;                         // wait for another writer of the run directory
    int stages;                       // --stages P (0: the config's, else 1)
} sc_study_opts;

// The whole study. Exit-worthy statuses: SC_OK, SC_ERR_INTERRUPTED (resumable), SC_ERR_BUSY
// (locked), SC_ERR_ARG / SC_ERR_FORMAT (bad config or input), others (a stage failed).
// *run_dir_out (if not NULL) receives the run directory used.
// Under an MPI launcher every rank calls it (dist.h); *run_dir_out is left empty on ranks other
// than 0, which report nothing. Call sc_study_end after reporting the outcome.
sc_status sc_study_run(const sc_study_opts *o, char *run_dir_out, size_t cap);
// The end of the job's layout: ranks other than 0 wait here for rank 0 (so none exits before rank
// 0 has printed its outcome; a non-zero exit ends an MPI job at once), then MPI_Finalize.
void sc_study_end(void);
// This process's MPI rank in the job of sc_study_run (0 without MPI).
int sc_study_rank(void);

#endif
