// score.h — from two sets of themes to a Linearity Score: the cosine matrix of their
// embeddings, a maximum-weight one-to-one matching (the Hungarian algorithm, exact), and the
// mean matched similarity.
//
//   Linearity Score = (sum of the matched cosines) / max(n_adapter, n_direction)
// With the study's 6 adapter and 6 direction themes that is the sum over the 6 matched pairs
// divided by 6; a side with fewer themes (failed batches) leaves rows unmatched, which count 0.
#ifndef STEERCLEAR_SCORE_H
#define STEERCLEAR_SCORE_H

#include "steerclear/core.h"

// S[i * nb + j] = cos(a_i, b_j) for rows of a [na][dim] and b [nb][dim] (0 when a vector is zero).
void sc_cosine_matrix(const float *a, int na, const float *b, int nb, int dim, double *S);

// Maximum-weight assignment of rows to columns of W [n][m] (row-major): min(n, m) pairs, each
// row and column used at most once. col_of[i] receives the column of row i (-1: unmatched);
// *total the sum of the matched weights. Exact (O(k^3), k = max(n, m)); any finite weights,
// negative ones included. n, m <= 4096.
sc_status sc_hungarian_max(const double *W, int n, int m, int *col_of, double *total);

typedef struct {
    double score;              // Linearity Score
    int n_pairs;               // matched pairs
    int best_a, best_b;        // the matched pair with the highest cosine (indices into a, b)
    int worst_a, worst_b;      // ... the lowest
    double best, worst;        // their cosines
} sc_linearity;

// The Linearity Score of an [na][nb] cosine matrix (na, nb >= 1); match[i] = column of row i.
sc_status sc_linearity_score(const double *S, int na, int nb, int *match, sc_linearity *out);

// The 95% Wilson score interval of `wins` successes in n trials (n >= 1): [*lo, *hi] around the
// observed rate (better than the normal approximation near 0 and 1 and for small n).
void sc_wilson_interval(int wins, int n, double *lo, double *hi);

#endif
