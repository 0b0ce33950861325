// dataset.h — prompt datasets in the study's CSV format (RFC 4180, header row).
//   train: category,full_prompt          test: category,prompt,full_prompt[,original_completion]
// Columns are found by header name in any order; extra columns are ignored. Accepted: quoted
// multi-line fields with "", LF or CRLF (CRLF inside quotes is read as LF), a UTF-8 BOM, blank
// lines. Errors (SC_ERR_FORMAT, naming the file and line): missing or repeated required column,
// unterminated quote, stray quote, wrong field count, empty category/prompt/full_prompt,
// invalid UTF-8 or NUL bytes, a bare CR, an empty file or a header without prompts.
#ifndef STEERCLEAR_DATASET_H
#define STEERCLEAR_DATASET_H

#include "steerclear/core.h"

typedef enum { SC_DATASET_TRAIN = 0, SC_DATASET_TEST } sc_dataset_kind;

typedef struct {
    char *category;
    char *prompt;               // test only (NULL for train)
    char *full_prompt;
    char *original_completion;  // NULL when the column is absent
    int line;                   // line in the file where the record starts (1-based)
} sc_prompt;

typedef struct {
    sc_prompt *items;
    size_t n;
} sc_dataset;

// Loads every record of `path` (at least one). On failure *out is left empty ({NULL, 0}).
sc_status sc_dataset_load(const char *path, sc_dataset_kind kind, sc_dataset *out);
void sc_dataset_free(sc_dataset *ds);

#endif
