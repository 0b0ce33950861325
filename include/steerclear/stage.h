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
#include "steerclear/results.h"
#include "steerclear/tok.h"

typedef struct {
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

typedef struct {
    sc_backend *be;
    sc_run *run;
    sc_model *model;               // NULL unless need_model
    sc_tokenizer *tok;
    sc_dataset train, test;        // empty unless asked for
    char model_dir[4096];          // absolute paths of what was loaded ("" when not)
    char train_csv[4096], test_csv[4096];
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
