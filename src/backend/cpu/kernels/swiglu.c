// swiglu.c — CPU SwiGLU (silu(g) * u) forward and backward, elementwise.
#include "../cpu_kernels.h"

#include <math.h>

sc_status SC_CPU_FN(swiglu)(sc_backend *be, float *out, const float *g, const float *u, int64_t n) {
    (void)be;
    SC_CPU_FOR(n >= SC_CPU_PAR_MIN, i, n,
        float s = g[i] / (1.0f + expf(-g[i]));
        out[i] = s * u[i];);
    return SC_OK;
}

// d silu(g)/dg = sig(g) * (1 + g * (1 - sig(g)))
sc_status SC_CPU_FN(swiglu_backward)(sc_backend *be, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    (void)be;
    SC_CPU_FOR(n >= SC_CPU_PAR_MIN, i, n,
        float sg = 1.0f / (1.0f + expf(-g[i]));
        float silu = g[i] * sg, d = dout[i];
        du[i] = d * silu;
        dg[i] = d * u[i] * sg * (1.0f + g[i] * (1.0f - sg)););
    return SC_OK;
}
