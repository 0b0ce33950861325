// adamw.c — CPU AdamW step as in PyTorch (decoupled weight decay, bias-corrected moments).
#include "../cpu_kernels.h"

#include <math.h>

sc_status SC_CPU_FN(adamw)(sc_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                           const sc_adamw_opts *o, int step) {
    (void)be;
    if (step < 1) return sc_errorf(SC_ERR_INTERNAL, "adamw: step %d (steps count from 1)", step);
    const double bc1 = 1.0 - pow(o->beta1, step), bc2 = 1.0 - pow(o->beta2, step);
    for (size_t i = 0; i < n; i++) {
        p[i] -= o->lr * o->weight_decay * p[i];
        m[i] = o->beta1 * m[i] + (1.0f - o->beta1) * g[i];
        v[i] = o->beta2 * v[i] + (1.0f - o->beta2) * g[i] * g[i];
        double mh = m[i] / bc1, vh = v[i] / bc2;
        p[i] -= (float)(o->lr * mh / (sqrt(vh) + o->eps));
    }
    return SC_OK;
}
