// rows.c — CPU row operations: gather, scatter-add, elementwise add, adding one vector to
// every row (steering), column sums in double (activation means) and the KV-cache write.
// OpenMP over rows, or over column blocks where each column's sum must keep its row order.
#include "../cpu_kernels.h"

#include <string.h>

sc_status SC_CPU_FN(gather_rows)(sc_backend *be, float *out, const float *x, const int *rows, int n, int C) {
    (void)be;
    SC_CPU_FOR((int64_t)n * C >= 4 * SC_CPU_PAR_MIN, i, n, memcpy(out + (int64_t)i * C, x + (int64_t)rows[i] * C, sizeof(float) * (size_t)C););
    return SC_OK;
}

sc_status SC_CPU_FN(scatter_add_rows)(sc_backend *be, float *y, const float *x, const int *rows, int n, int C) {
    (void)be;
    SC_CPU_FOR((int64_t)n * C >= 4 * SC_CPU_PAR_MIN, i, n,
        float *d = y + (int64_t)rows[i] * C;
        const float *s = x + (int64_t)i * C;
        for (int c = 0; c < C; c++) d[c] += s[c];);
    return SC_OK;
}

sc_status SC_CPU_FN(add)(sc_backend *be, float *y, const float *x, int64_t n) {
    (void)be;
    SC_CPU_FOR(n >= 4 * SC_CPU_PAR_MIN, i, n, y[i] += x[i];);
    return SC_OK;
}

sc_status SC_CPU_FN(add_row)(sc_backend *be, float *h, const float *v, float scale, int T, int C) {
    (void)be;
    SC_CPU_FOR((int64_t)T * C >= 4 * SC_CPU_PAR_MIN, t, T,
        float *r = h + (int64_t)t * C;
        for (int c = 0; c < C; c++) r[c] += scale * v[c];);
    return SC_OK;
}

sc_status SC_CPU_FN(col_sum)(sc_backend *be, double *acc, const float *h, int T, int C) {
    (void)be;
    const int cb = 64;
    SC_CPU_FOR((int64_t)T * C >= 4 * SC_CPU_PAR_MIN, blk, (C + cb - 1) / cb,
        const int c0 = (int)blk * cb, c1 = c0 + cb < C ? c0 + cb : C;
        for (int t = 0; t < T; t++) {
            const float *row = h + (int64_t)t * C;
            for (int c = c0; c < c1; c++) acc[c] += row[c];
        });
    return SC_OK;
}

sc_status SC_CPU_FN(kv_write)(sc_backend *be, float *ck, float *cv, const float *k, const float *v,
                              const sc_attn_layout *lay, int KD) {
    (void)be;
    for (int s = 0; s < lay->n_seq; s++) {
        const int r0 = lay->q_start[s], n = lay->q_start[s + 1] - r0;
        for (int i = 0; i < n; i++) {
            const int64_t at = lay->kv_off[s] + (int64_t)(lay->pos0[s] + i) * lay->kv_stride;
            memcpy(ck + at, k + (int64_t)(r0 + i) * KD, sizeof(float) * (size_t)KD);
            memcpy(cv + at, v + (int64_t)(r0 + i) * KD, sizeof(float) * (size_t)KD);
        }
    }
    return SC_OK;
}
