// test_score.c — the Hungarian algorithm against brute force (every injection of the smaller
// side into the larger) on random matrices up to 8 x 8, rectangular, with ties and negative
// entries; the cosine matrix against its definition; the Linearity Score on hand examples.
#include "testutil.h"
#include "steerclear/rng.h"
#include "steerclear/score.h"

#include <stdlib.h>

// The best total over all injections of rows into columns (n <= m), by recursion.
static double brute(const double *W, int n, int m, int row, unsigned used) {
    if (row == n) return 0;
    double best = -INFINITY;
    for (int j = 0; j < m; j++) {
        if (used & (1u << j)) continue;
        double v = W[row * m + j] + brute(W, n, m, row + 1, used | (1u << j));
        if (v > best) best = v;
    }
    return best;
}

static double brute_any(const double *W, int n, int m) {
    if (n <= m) return brute(W, n, m, 0, 0);
    double T[64];
    for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) T[j * n + i] = W[i * m + j];
    return brute(T, m, n, 0, 0);
}

int main(void) {
    int trials = 0;
    for (int n = 1; n <= 8; n++)
        for (int m = 1; m <= 8; m++)
            for (int t = 0; t < (n * m <= 16 ? 20 : 4); t++) {
                double W[64];
                for (int i = 0; i < n * m; i++) {
                    uint32_t r[4];
                    sc_philox4x32(17, (uint64_t)(n * 100 + m), (uint64_t)(t * 64 + i), r);
                    // small integer values in [-3, 3] make many ties; every third matrix real-valued
                    W[i] = t % 3 == 2 ? (double)sc_rng_uniform(17, (uint64_t)(n * 100 + m), (uint64_t)(t * 64 + i)) * 4.0 - 2.0
                                      : (double)((int)(r[0] % 7) - 3);
                }
                int col[8];
                double total = 0;
                CHECK_OK(sc_hungarian_max(W, n, m, col, &total));
                const double want = brute_any(W, n, m);
                CHECKF(fabs(total - want) < 1e-9, "%dx%d trial %d: hungarian %.6f, brute force %.6f", n, m, t, total, want);
                // a valid matching whose weights add up to the total
                unsigned used = 0;
                int pairs = 0;
                double sum = 0;
                for (int i = 0; i < n; i++) {
                    if (col[i] < 0) continue;
                    CHECK(col[i] < m && !(used & (1u << col[i])));
                    used |= 1u << col[i];
                    sum += W[i * m + col[i]];
                    pairs++;
                }
                CHECK(pairs == (n < m ? n : m));
                CHECK_NEAR(sum, total, 1e-9);
                trials++;
            }
    printf("hungarian: %d random matrices (1x1 to 8x8) equal to brute force\n", trials);
    double W[4] = {1, 0, 0, 1}, total;
    int col[2];
    CHECK_ERR(sc_hungarian_max(W, 0, 2, col, &total), SC_ERR_ARG, "0 x 2");
    W[1] = NAN;
    CHECK_ERR(sc_hungarian_max(W, 2, 2, col, &total), SC_ERR_NUMERIC, "not finite");

    // cosines
    const float a[6] = {1, 0, 0, 0, 2, 0}, b[6] = {3, 0, 0, 1, 1, 0};
    double S[4];
    sc_cosine_matrix(a, 2, b, 2, 3, S);
    CHECK_NEAR(S[0], 1.0, 1e-12);
    CHECK_NEAR(S[1], 1 / sqrt(2.0), 1e-12);
    CHECK_NEAR(S[2], 0.0, 1e-12);
    CHECK_NEAR(S[3], 1 / sqrt(2.0), 1e-12);
    const float z[3] = {0, 0, 0};
    sc_cosine_matrix(z, 1, b, 1, 3, S);
    CHECK(S[0] == 0.0);

    // Linearity Score: the study's 6 x 6 (a permuted identity scores 1), and fewer direction themes
    double S6[36] = {0};
    const int perm[6] = {3, 0, 5, 1, 4, 2};
    for (int i = 0; i < 6; i++) { for (int j = 0; j < 6; j++) S6[i * 6 + j] = 0.1; S6[i * 6 + perm[i]] = 1.0; }
    int match[6];
    sc_linearity L;
    CHECK_OK(sc_linearity_score(S6, 6, 6, match, &L));
    CHECK_NEAR(L.score, 1.0, 1e-12);
    for (int i = 0; i < 6; i++) CHECK(match[i] == perm[i]);
    S6[2 * 6 + 5] = 0.4;   // one worse pair: (5 + 0.4) / 6
    CHECK_OK(sc_linearity_score(S6, 6, 6, match, &L));
    CHECK_NEAR(L.score, 5.4 / 6, 1e-12);
    CHECK(L.worst_a == 2 && L.worst_b == 5 && L.worst == 0.4 && L.best == 1.0 && L.n_pairs == 6);
    CHECK_OK(sc_linearity_score(S6, 6, 4, match, &L));   // 4 direction themes: 2 adapter themes unmatched count 0
    CHECK(L.n_pairs == 4 && L.score <= 4.0 / 6 + 1e-12);
    // Wilson interval: the published 8/10 example, the edges, and the defining property (the
    // ends are where the score test |p^ - p| = z sqrt(p (1 - p) / n) holds with equality)
    double lo, hi;
    sc_wilson_interval(8, 10, &lo, &hi);
    CHECK_NEAR(lo, 0.4902, 1e-4);
    CHECK_NEAR(hi, 0.9433, 1e-4);
    sc_wilson_interval(0, 10, &lo, &hi);
    CHECK(lo == 0);
    CHECK_NEAR(hi, 0.2775, 1e-4);
    sc_wilson_interval(10, 10, &lo, &hi);
    CHECK_NEAR(hi, 1, 1e-12);
    for (int n = 1; n <= 60; n += 7)
        for (int w = 1; w < n; w++) {
            sc_wilson_interval(w, n, &lo, &hi);
            const double ph = (double)w / n, z95 = 1.959963984540054;
            CHECK(lo < ph && ph < hi);
            CHECK_NEAR((ph - lo) * (ph - lo), z95 * z95 * lo * (1 - lo) / n, 1e-12);
            CHECK_NEAR((hi - ph) * (hi - ph), z95 * z95 * hi * (1 - hi) / n, 1e-12);
        }
    return sc_test_finish("test_score");
}
