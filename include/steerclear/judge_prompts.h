// judge_prompts.h — the judge's prompts and the checks of its answers, shared by every provider
// that asks a language model (gemini, openai, local): loading prompts/judge_theme.txt and
// prompts/judge_compare.txt, rendering them for one batch or one pair, and parsing the JSON the
// model answers with (src/judge/prompts.c).
//
// A prompt file holds a "=== system ===" and a "=== user ===" section (text above the first is
// a description and is not sent). Placeholders: theme {{items}} (required), {{ids}}, {{n}};
// compare {{trait}}, {{a}}, {{b}} (required), {{prompt}}. They are replaced in one pass: text
// inserted for a placeholder is never searched again.
#ifndef STEERCLEAR_JUDGE_PROMPTS_H
#define STEERCLEAR_JUDGE_PROMPTS_H

#include "steerclear/judge.h"

typedef struct {
    char *theme_system, *theme_user;       // judge_theme.txt
    char *compare_system, *compare_user;   // judge_compare.txt
} sc_judge_prompts;

// Load both prompt files from dir (NULL or "": sc_judge_prompts_dir_default(), judge_net.h).
// Errors name the file and what is wrong with it (missing, no section, a missing placeholder);
// nothing is left allocated.
sc_status sc_judge_prompts_load(const char *dir, sc_judge_prompts *p);
void sc_judge_prompts_release(sc_judge_prompts *p);

// Any prompt file of that format, DIR/FILE (dir NULL or "": the default folder), with the
// placeholders `need` (NULL-terminated) required in one section or the other. Other users of
// the providers (the dataset generator's prompts/dataset_openers.txt) load theirs with this.
sc_status sc_judge_prompt_file_load(const char *dir, const char *file, const char *const *need, char **system, char **user);
// Replace each {{names[k]}} in tmpl by values[k] in one pass (malloc'ed; NULL: out of memory).
char *sc_judge_prompt_fill(const char *tmpl, const char *const *names, const char *const *values, int n);

// The system and user message for one batch / one pair (both malloc'ed).
sc_status sc_judge_prompts_theme(const sc_judge_prompts *p, const sc_judge_batch *b, char **system, char **user);
sc_status sc_judge_prompts_compare(const sc_judge_prompts *p, const sc_judge_pair *q, char **system, char **user);

// Parse and check the judge's JSON answer text (code fences around it are tolerated). Failure:
// SC_ERR_FORMAT and a message saying what is wrong ("not valid JSON: ...", "breaks the schema:
// \"theme\" is missing"); *out is then empty. Prompt ids not in the batch are dropped with a
// warning naming `where`; ids are sorted and deduplicated.
sc_status sc_judge_parse_theme(const char *text, const sc_judge_batch *b, const char *where, sc_judge_theme *out);
sc_status sc_judge_parse_verdict(const char *text, sc_judge_verdict *out);

// A JSON object parsed from an answer text (code fences tolerated, duplicate keys refused);
// NULL with an SC_ERR_FORMAT message when it is not one.
struct cJSON;
struct cJSON *sc_judge_answer_parse(const char *text, sc_status *st);

// The JSON object inside an answer with text around it: the span from the first '{' to the
// last '}' (*len bytes), NULL when there is none. For a model without a response schema (the
// local provider) that writes a preamble or a remark around the object.
const char *sc_judge_answer_object(const char *text, size_t *len);

// "12, 13, 14" (cut with ", ..." after about 100 characters): a batch's prompt ids, for messages.
void sc_judge_batch_ids(const sc_judge_batch *b, char *out, size_t cap);

// A printable excerpt of text (control characters as spaces, at most max bytes, "..." when cut)
// into out[cap].
void sc_judge_excerpt(const char *text, size_t max, char *out, size_t cap);

#endif
