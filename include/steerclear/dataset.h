// dataset.h — prompt datasets in the study's CSV format (RFC 4180, header row).
//   train: category,full_prompt          test: category,prompt,full_prompt[,original_completion]
// Extra columns are ignored; missing required columns, unterminated quotes and empty
// prompts are errors naming the file and line.
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

sc_status sc_dataset_load(const char *path, sc_dataset_kind kind, sc_dataset *out);
void sc_dataset_free(sc_dataset *ds);

#endif
