// norm.c — CPU RMSNorm forward and backward, one row per work item, sums in double.
#include "../cpu_kernels.h"

#include <math.h>

sc_status SC_CPU_FN(rmsnorm)(sc_backend *be, float *out, float *rstd, const float *x, const float *w, int T, int C, float eps) {
    (void)be;
    SC_CPU_FOR((int64_t)T * C >= SC_CPU_PAR_MIN, t, T,
        const float *xr = x + (int64_t)t * C;
        float *o = out + (int64_t)t * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) o[c] = w[c] * (xr[c] * r);
        if (rstd) rstd[t] = r;);
    return SC_OK;
}

// y = w * x * r, r = (mean(x^2)+eps)^-1/2:  dx = r * (w*dy) - x * r^3 * mean(w*dy*x)
sc_status SC_CPU_FN(rmsnorm_backward)(sc_backend *be, float *dx, const float *dout, const float *x, const float *w,
                                      const float *rstd, int T, int C, int accumulate) {
    (void)be;
    SC_CPU_FOR((int64_t)T * C >= SC_CPU_PAR_MIN, t, T,
        const float *xr = x + (int64_t)t * C, *dy = dout + (int64_t)t * C;
        float *d = dx + (int64_t)t * C;
        float r = rstd[t];
        double dot = 0.0;
        for (int c = 0; c < C; c++) dot += (double)w[c] * dy[c] * xr[c];
        float k = (float)(dot / C) * r * r * r;
        for (int c = 0; c < C; c++) {
            float g = r * w[c] * dy[c] - xr[c] * k;
            d[c] = accumulate ? d[c] + g : g;
        });
    return SC_OK;
}
