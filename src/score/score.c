// score.c — the cosine matrix, the Hungarian algorithm (maximum-weight assignment, written out:
// the shortest-augmenting-path form with row and column potentials, O(k^3)) and the Linearity
// Score (see steerclear/score.h).
#include "steerclear/score.h"

#include <math.h>
#include <stdlib.h>

void sc_cosine_matrix(const float *a, int na, const float *b, int nb, int dim, double *S) {
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) {
            const float *x = a + (size_t)i * dim, *y = b + (size_t)j * dim;
            double xy = 0, xx = 0, yy = 0;
            for (int d = 0; d < dim; d++) { xy += (double)x[d] * y[d]; xx += (double)x[d] * x[d]; yy += (double)y[d] * y[d]; }
            S[(size_t)i * nb + j] = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 0.0;
        }
}

// Minimum-cost perfect assignment on a square k x k cost matrix C (1-based potentials u, v;
// p[j] = row matched to column j; way[j] = previous column on the augmenting path).
static sc_status assign_min(const double *C, int k, int *row_of_col) {
    double *u = calloc((size_t)k + 1, sizeof(double)), *v = calloc((size_t)k + 1, sizeof(double));
    double *minv = malloc(sizeof(double) * ((size_t)k + 1));
    int *p = calloc((size_t)k + 1, sizeof(int)), *way = calloc((size_t)k + 1, sizeof(int));
    char *used = malloc((size_t)k + 1);
    if (!u || !v || !minv || !p || !way || !used) {
        free(u); free(v); free(minv); free(p); free(way); free(used);
        return sc_errorf(SC_ERR_MEM, "hungarian: out of memory for a %d x %d matrix", k, k);
    }
    for (int i = 1; i <= k; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= k; j++) { minv[j] = INFINITY; used[j] = 0; }
        do {   // grow the alternating tree from row i until a free column is reached
            used[j0] = 1;
            const int i0 = p[j0];
            double delta = INFINITY;
            int j1 = 0;
            for (int j = 1; j <= k; j++) {
                if (used[j]) continue;
                const double cur = C[(size_t)(i0 - 1) * k + (j - 1)] - u[i0] - v[j];
                if (cur < minv[j]) { minv[j] = cur; way[j] = j0; }
                if (minv[j] < delta) { delta = minv[j]; j1 = j; }
            }
            for (int j = 0; j <= k; j++) {
                if (used[j]) { u[p[j]] += delta; v[j] -= delta; }
                else minv[j] -= delta;
            }
            j0 = j1;
        } while (p[j0] != 0);
        do { const int j1 = way[j0]; p[j0] = p[j1]; j0 = j1; } while (j0);   // flip the path
    }
    for (int j = 1; j <= k; j++) row_of_col[j - 1] = p[j] - 1;
    free(u); free(v); free(minv); free(p); free(way); free(used);
    return SC_OK;
}

sc_status sc_hungarian_max(const double *W, int n, int m, int *col_of, double *total) {
    *total = 0;
    if (n < 1 || m < 1 || n > 4096 || m > 4096) return sc_errorf(SC_ERR_ARG, "hungarian: a %d x %d matrix (each side 1 to 4096)", n, m);
    const int k = n > m ? n : m;
    double hi = -INFINITY;
    for (size_t i = 0; i < (size_t)n * m; i++) {
        if (!isfinite(W[i])) return sc_errorf(SC_ERR_NUMERIC, "hungarian: weight %zu is not finite", i);
        if (W[i] > hi) hi = W[i];
    }
    // maximum weight = minimum of (hi - W); padded rows / columns cost hi - 0 alike: they change no choice
    double *C = malloc(sizeof(double) * (size_t)k * k);
    int *row_of_col = malloc(sizeof(int) * (size_t)k);
    if (!C || !row_of_col) { free(C); free(row_of_col); return sc_errorf(SC_ERR_MEM, "hungarian: out of memory"); }
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) C[(size_t)i * k + j] = i < n && j < m ? hi - W[(size_t)i * m + j] : 0.0;
    sc_status st = assign_min(C, k, row_of_col);
    if (!st) {
        for (int i = 0; i < n; i++) col_of[i] = -1;
        for (int j = 0; j < m; j++) {
            const int i = row_of_col[j];
            if (i < n) { col_of[i] = j; *total += W[(size_t)i * m + j]; }
        }
    }
    free(C);
    free(row_of_col);
    return st;
}

sc_status sc_linearity_score(const double *S, int na, int nb, int *match, sc_linearity *out) {
    out->score = 0;
    out->n_pairs = 0;
    out->best_a = out->best_b = out->worst_a = out->worst_b = -1;
    out->best = -INFINITY;
    out->worst = INFINITY;
    double total = 0;
    SC_TRY(sc_hungarian_max(S, na, nb, match, &total));
    for (int i = 0; i < na; i++) {
        if (match[i] < 0) continue;
        const double s = S[(size_t)i * nb + match[i]];
        out->n_pairs++;
        if (s > out->best) { out->best = s; out->best_a = i; out->best_b = match[i]; }
        if (s < out->worst) { out->worst = s; out->worst_a = i; out->worst_b = match[i]; }
    }
    out->score = total / (na > nb ? na : nb);
    return SC_OK;
}

void sc_wilson_interval(int wins, int n, double *lo, double *hi) {
    if (n <= 0) { *lo = 0; *hi = 1; return; }
    const double z = 1.959963984540054, p = (double)wins / n, z2n = z * z / n;
    const double centre = (p + z2n / 2) / (1 + z2n);
    const double half = z * sqrt(p * (1 - p) / n + z2n / (4.0 * n)) / (1 + z2n);
    *lo = centre - half < 0 ? 0 : centre - half;
    *hi = centre + half > 1 ? 1 : centre + half;
}
