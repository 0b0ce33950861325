// results.h — the run directory: the one module that knows its layout and reads and writes
// RUN_DIR/results.h5 (results/README.md documents both). Every stage asks this module for a
// path or a record; nothing else opens results.h5.
//
//   RUN_DIR/config.json                       the resolved run config
//   RUN_DIR/checkpoints/search_NNNN.ckpt      per-search state (search.h)
//   RUN_DIR/results.h5                        searches, directions, extraction sequences
//   RUN_DIR/directions/search_NNNN.{safetensors,gguf}   exported directions
//   RUN_DIR/eval/*.json                       evaluation outputs
//
// results.h5 is always rewritten atomically (a copy is edited and renamed over the file).
#ifndef STEERCLEAR_RESULTS_H
#define STEERCLEAR_RESULTS_H

#include "steerclear/search.h"

#define SC_MAX_SEARCH_INDEX 10000   // search indices are 0..9999: /searches/NNNN has four digits

typedef struct sc_run sc_run;

typedef enum {
    SC_RUN_READ = 0,       // a run directory that should exist (each reader says what it misses)
    SC_RUN_WRITE = 1,      // created when missing, and locked: one writer per run directory
    SC_RUN_WAIT = 2,       // with SC_RUN_WRITE: wait for the lock instead of refusing
} sc_run_mode;

// Open a run directory. SC_RUN_WRITE takes its lock (flock on RUN_DIR/.steerclear.lock, held
// until sc_run_close or the process ends, a kill included): a second writer is refused with
// SC_ERR_BUSY naming the holder's host, pid and command, or waits with SC_RUN_WAIT. Holding
// the lock, it removes temporary files (*.tmp.PID) that a killed writer left. `command` names
// this process in the lock file ("search", "extract", ...). On a file system without locks a
// warning is logged and nothing is protected.
sc_status sc_run_open(const char *dir, int mode, const char *command, sc_run **out);
void sc_run_close(sc_run *r);
const char *sc_run_dir(const sc_run *r);
// RUN_DIR/<rel> into buf (an error when it does not fit).
sc_status sc_run_path(const sc_run *r, const char *rel, char *buf, size_t n);
sc_status sc_run_checkpoint_path(const sc_run *r, int search, char *buf, size_t n);
// RUN_DIR/directions/search_NNNN.<ext> (the folder is created)
sc_status sc_run_export_path(const sc_run *r, int search, const char *ext, char *buf, size_t n);
// The resolved config: written atomically; read returns NULL (and SC_OK) when absent.
sc_status sc_run_write_config(sc_run *r, const char *json);
sc_status sc_run_read_config(const sc_run *r, char **json);

// --- results.h5 -------------------------------------------------------------------------------

int sc_results_exists(const sc_run *r);

// What the root of results.h5 says about the run.
typedef struct {
    char *model_dir;       // attr "model" (NULL when absent)
    char *config_json;     // attr "config" (NULL when absent)
    int64_t n_layers, hidden;   // attrs "n_layers", "hidden_size" (0 when absent)
} sc_results_meta;
sc_status sc_results_read_meta(const sc_run *r, sc_results_meta *meta);
void sc_results_meta_free(sc_results_meta *meta);
// The run config's search seed ("search": {"seed": S}); 1234 when the config or the key is
// absent. The default sampling seed of extract and evaluate.
uint64_t sc_results_run_seed(const char *config_json);

// Add one finished search (/searches/NNNN: final and initial adapter, every step's adapter,
// loss terms, prompts and sampled tokens) and the root attributes.
sc_status sc_results_add_search(sc_run *r, const sc_search_state *s, const sc_results_meta *meta);
// 1 when /searches/NNNN of this search is in results.h5.
int sc_results_has_search(const sc_run *r, int search);
// The finished searches: indices (ascending, malloc'ed) of every /searches/NNNN group.
sc_status sc_results_list_searches(const sc_run *r, int **searches, int *n);
// Load the final adapter of one search into backend memory, checking the shapes against
// n_layers and C. *out is set only on success.
sc_status sc_results_load_adapter(const sc_run *r, sc_backend *be, int search, int n_layers, int C, sc_adapter **out);

// Directions (written by extract). One row per finished search, in search order; rows of
// searches not extracted now keep an earlier extraction with the same settings, else zeros
// (token count 0: "not extracted").
typedef struct {
    const char *mode, *sets, *settings;        // attrs of /directions; settings decides which old rows are kept
    int max_new_tokens, top_k;
    double temperature, top_p;
    uint64_t seed;
    int L, C;
    const int *searches; int n;                // the searches extracted now
    const float *dirs;                         // [n][L][C]
    int64_t n_tokens;                          // tokens each was averaged over
    // the token sequences (prompt + continuation) the means were taken over
    int n_seqs;
    int32_t *const *seq;
    const int *len, *prompt_len;
    const int32_t *set, *index;                // 0 = train / 1 = test, row of that set
    // the means the directions come from (activation-diff; NULL otherwise): the base model's
    // block outputs [L][C] and each extracted search's adapted ones [n][L][C]
    const float *base_means, *adapted_means;
} sc_directions_record;
sc_status sc_results_write_directions(sc_run *r, const sc_directions_record *d);
// 1 when results.h5 holds directions.
int sc_results_has_directions(const sc_run *r);
// The direction rows of n searches: out [n][L][C]; have[j] = 1 when search j was extracted
// (0: its row is zeroed). An error when the file has no directions or their shape is not L x C.
sc_status sc_results_read_directions(const sc_run *r, const int *searches, int n, int L, int C, float *out, int *have);
// One search's direction [L][C]: an error naming the fix when it was never extracted.
sc_status sc_results_read_direction(const sc_run *r, int search, int L, int C, float *out);

// One finished search's per-step curves (steps/loss, kl, nll): malloc'ed [*K] each.
sc_status sc_results_read_steps(const sc_run *r, int search, double **loss, double **kl, double **nll, int *K);

// --- The judge and the scores (judging.h) -------------------------------------------------------

typedef struct {
    const char *provider, *model, *embed_model, *date;
    int batches, batch_size;
    float scale;
} sc_judge_meta;

// One search's judged themes, as embedded: side 0 the adapter's, side 1 the direction's.
typedef struct {
    int search, dim;
    int n[2];                  // themes embedded per side (null themes and failed batches left out)
    int answered[2];           // batches the judge answered per side, null themes included
    float *emb[2];             // [n[s]][dim]
    int *batch_of[2];          // (n[s]) the batch each embedded theme answers
} sc_judge_record;

// /judge: rewritten whole (attrs provider, model, embed_model, date, batches, batch_size,
// scale; /judge/NNNN attrs adapter_answered, direction_answered;
// /judge/NNNN/{adapter,direction}_embeddings f32 [n][dim], _batches i32 [n], absent when n = 0).
sc_status sc_results_write_judge(sc_run *r, const sc_judge_meta *m, const sc_judge_record *rec, int n);
// The searches in /judge (ascending, malloc'ed) and one search's record (arrays malloc'ed;
// free with sc_judge_record_free). meta strings are malloc'ed too (sc_judge_meta_free).
sc_status sc_results_list_judged(const sc_run *r, int **searches, int *n);
sc_status sc_results_read_judge(const sc_run *r, int search, sc_judge_record *rec);
void sc_judge_record_free(sc_judge_record *rec);
sc_status sc_results_read_judge_meta(const sc_run *r, sc_judge_meta *m);
void sc_judge_meta_free(sc_judge_meta *m);

// One search's score: its cosine matrix [na][nb] and matching (none when na or nb is 0).
typedef struct {
    int search;
    int na, nb;                // themes per side
    int answered_a, answered_b;   // answered batches per side
    const double *cosine;      // [na][nb]
    const int *match;          // (na) column of each row, -1: none
    double score, best, worst;
    int best_a, best_b, worst_a, worst_b;
} sc_score_record;
// /scores: rewritten whole (/scores/NNNN/cosine f64, /match i32, attrs linearity, best, worst,
// ...; /scores/ranking i32 [n] search indices best first, /scores/linearity f64 [n] alike;
// attr threshold).
sc_status sc_results_write_scores(sc_run *r, const sc_score_record *rec, int n, const int *ranking, double threshold);
// The ranking from /scores: searches best first and their Linearity Scores (malloc'ed [*n]).
sc_status sc_results_read_ranking(const sc_run *r, int **searches, double **linearity, int *n);
// One search's cosine matrix from /scores: *S malloc'ed [*na][*nb] (rows: the adapter themes in
// the order of /judge/NNNN/adapter_batches; columns: the direction themes likewise).
sc_status sc_results_read_cosine(const sc_run *r, int search, double **S, int *na, int *nb);

#endif
