// lexical.h — the `lexical` judge provider's method, its thresholds, and the internals its
// tests use. The provider itself is created with sc_provider_lexical() (judge.h).
//
// Offline and deterministic: no randomness, no network, the same answer on every run.
//
// themes: for each batch the modified outputs are compared with the base completions of the
// same prompts.
//   - Text is cut into lower-cased words (split on whitespace and punctuation, ASCII and
//     Unicode; letters, digits and marks of any script are kept; an apostrophe between letters
//     stays inside the word, "don't"; each symbol such as an emoji is a word of its own) and
//     bigrams of adjacent words (never across punctuation or a line break).
//   - Words and bigrams over-represented in the outputs: log-odds ratio with an informative
//     Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' Words"), prior
//     alpha_w = SC_LEXICAL_PRIOR_SCALE * (pooled count of w in both sides), z-scores. A term is
//     kept when z >= SC_LEXICAL_Z_MIN, it occurs in at least `min_docs` distinct outputs
//     (SC_LEXICAL_MIN_DOC_FRAC of the batch, at least SC_LEXICAL_MIN_DOCS), its output beats its
//     original in at least min_docs prompts, and a one-sided sign test over the prompts (output
//     uses it more than its original vs less) passes at a threshold that keeps the chance of
//     any term passing in a batch without a real difference at SC_LEXICAL_TERMS_ALPHA
//     (Tarone's modified Bonferroni for discrete tests; exact when each output and its
//     original are exchangeable, e.g. two samples of the same model).
//   - Surface signals, each a paired comparison per prompt: question marks, length in words,
//     first-person AI disclaimers/refusals, new speaker turns ("<|im_start|>" or a line that
//     starts with a capitalised word and a colon, "User:"). A signal passes in either direction
//     when the means differ by its absolute and relative thresholds (below), the outputs differ
//     in that direction in >= min_docs prompts, and the sign test gives
//     p <= SC_LEXICAL_SIGNALS_ALPHA / 8 (4 signals, 2 directions).
//   - theme: one sentence from what passed ("Outputs ask more questions (2.4 vs 0.3 question
//     marks per output) and often use \"tell me more\"."), NULL when nothing passed. reasoning:
//     the numbers (never NULL when the batch's status is SC_OK). prompts: sorted unique ids of
//     the prompts whose outputs show a cited feature more than (or, for a "fewer"/"shorter"
//     signal, less than) their originals.
// embed: TF-IDF over the texts of one call (sublinear tf 1 + ln tf, smoothed
//   idf 1 + ln((1 + n) / (1 + df)), L2-normalised); the vocabulary (words and bigrams) in byte
//   order, so dim = vocabulary size (at least 1).
// compare: per-100-word rate of a trait lexicon (built in for "empathetic" and "prescriptive",
//   else the trait's own words and simple inflections); the higher rate wins; ties (compared
//   exactly, as integer cross-products) go to the response with more words, then more bytes,
//   then the one that sorts first by bytes; identical responses go to `a`.
// docs/lexical-judge.md has the reasons for each threshold and what this judge cannot see.
#ifndef STEERCLEAR_LEXICAL_H
#define STEERCLEAR_LEXICAL_H

#include "steerclear/core.h"

#define SC_LEXICAL_Z_MIN 1.96            // log-odds z of a kept word or bigram
#define SC_LEXICAL_PRIOR_SCALE 0.2       // prior pseudo-counts per pooled count
#define SC_LEXICAL_MIN_DOC_FRAC 0.25     // share of the batch's outputs a feature must reach
#define SC_LEXICAL_MIN_DOCS 2            // ... and never fewer outputs than this
#define SC_LEXICAL_TERMS_ALPHA 0.05      // family-wise error of all term sign tests (Tarone)
#define SC_LEXICAL_SIGNALS_ALPHA 0.05    // family-wise error of the 8 signal sign tests (Bonferroni)
#define SC_LEXICAL_MAX_QUOTES 3          // phrases quoted in a theme
#define SC_LEXICAL_MAX_PHRASE 5          // words in a quoted phrase
#define SC_LEXICAL_EXTEND_FRAC 0.8       // a phrase grows by a neighbour seen in >= 80% of its uses
// signal thresholds: |mean difference| and ratio of the larger mean to the smaller
#define SC_LEXICAL_QUESTIONS_ABS 0.5     // question marks per output
#define SC_LEXICAL_QUESTIONS_RATIO 2.0
#define SC_LEXICAL_LENGTH_ABS 10.0       // words per output
#define SC_LEXICAL_LENGTH_RATIO 1.5
#define SC_LEXICAL_DISCLAIMER_ABS 0.25   // disclaimers per output
#define SC_LEXICAL_DISCLAIMER_RATIO 2.0
#define SC_LEXICAL_TURNS_ABS 0.25        // speaker turns per output
#define SC_LEXICAL_TURNS_RATIO 2.0

// The words of `text` as the provider sees them, joined by single spaces, into *out
// (malloc'ed; "" for a text without words). *n_words (may be NULL) receives their number.
sc_status sc_lexical_words(const char *text, char **out, int *n_words);

// The trait score compare() uses: lexicon hits and words of `text` (hits <= words) and their
// rate per 100 words (0 for a text without words). `trait` is matched case-insensitively;
// *builtin (may be NULL) says whether a built-in lexicon was used (1) or the trait's own words (0).
sc_status sc_lexical_trait_score(const char *text, const char *trait, int *hits, int *words,
                                 double *per_100_words, int *builtin);

// The minimum number of distinct outputs a feature or signal needs in a batch of n.
int sc_lexical_min_docs(int n);

#endif
