// stage.h — the stage context: what every stage of a study works with, built once by the CLI
// and handed to search, extract, evaluate and the stages to come: the backend (one per rank,
// with this rank's memory budget), the model and its tokenizer, the prompt sets, and the run
// directory (results.h). The stages load nothing themselves.
//
// Where things come from when the options leave them out:
//   model       the run's results.h5 (root attribute "model"), then its config.json "model"
//   train/test  the run's config.json ("train", "test"), then the datasets shipped with
//               steerclear (datasets/ of the source tree, found whatever the working directory)
// Relative paths inside a config file resolve against the folder of that file; relative paths
// on the command line against the working directory. The resolved paths are absolute.
#ifndef STEERCLEAR_STAGE_H
#define STEERCLEAR_STAGE_H

#include "steerclear/dataset.h"
#include "steerclear/generate.h"
#include "steerclear/results.h"
#include "steerclear/tok.h"

typedef struct sc_stage_opts {
    const char *run_dir;           // required
    int run_mode;                  // SC_RUN_READ, or SC_RUN_WRITE (creates and locks the directory) [| SC_RUN_WAIT]
    const char *command;           // what this process is, for the run directory's lock ("search", ...)
    const char *model_dir;         // NULL: from the run (see above)
    const char *train_csv;         // NULL: from the run's config, then the shipped datasets
    const char *test_csv;
    int need_model;                // load the model (and its tokenizer.json)
    int first, last;               // load only blocks [first, last) (a pipeline stage, src/dist); last 0: every block
    int need_train, need_test;     // load these prompt sets
    sc_backend_opts backend;       // device, memory budget (0: the default share of RAM)
} sc_stage_opts;

void sc_stage_opts_default(sc_stage_opts *o);

struct sc_eval_variant;
// Generation done elsewhere: sc_evaluate_generate's arguments less the model and backend.
typedef sc_status (*sc_stage_generate_fn)(void *ctx, const struct sc_eval_variant *variants, int n_variants,
                                          const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                                          const uint64_t *stream, const sc_sample_opts *o, int batch_seqs, sc_gen_out *out);

typedef struct {
    sc_backend *be;
    sc_run *run;
    sc_model *model;               // NULL unless need_model
    sc_tokenizer *tok;
    sc_dataset train, test;        // empty unless asked for
    char model_dir[4096];          // absolute paths of what was loaded ("" when not)
    char train_csv[4096], test_csv[4096];
    // Set on rank 0 of a pipeline (src/dist, P > 1): every generation of the later stages
    // (evaluate, quantify, the extract stage's sampling) runs on search group 0's stages through
    // this instead of sc_evaluate_generate on `model`, which then holds only rank 0's blocks.
    sc_stage_generate_fn generate;
    void *generate_ctx;
} sc_stage;

sc_status sc_stage_open(const sc_stage_opts *o, sc_stage **out);
void sc_stage_free(sc_stage *s);

// Absolute form of `path`: relative paths are taken from `base_dir` (NULL: the working
// directory). The file need not exist.
sc_status sc_path_resolve(const char *path, const char *base_dir, char *out, size_t n);
// The folder holding `file` (absolute), e.g. of a config file.
sc_status sc_path_dir_of(const char *file, char *out, size_t n);
// The prompt sets shipped with steerclear: "<source tree>/datasets/<name>".
const char *sc_default_dataset(const char *name);

#endif
