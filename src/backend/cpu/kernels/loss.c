// loss.c — CPU fused divergence loss over rows of logits: log-softmax of P and Q in double,
// KL(P || Q), -log Q(target), and dL/dlogits_Q written over Q's logits, one row per work item.
#include "../cpu_kernels.h"

#include <math.h>

sc_status SC_CPU_FN(divergence_loss)(sc_backend *be, float *lq, const float *lp, const int32_t *targets, int n, int V,
                                     float alpha, float beta, double grad_scale, double *kl, double *nll) {
    (void)be;
    for (int i = 0; i < n; i++)
        if (targets[i] < 0 || targets[i] >= V)
            return sc_errorf(SC_ERR_INTERNAL, "divergence loss: target %d of row %d is outside the vocabulary [0,%d)", targets[i], i, V);
    SC_CPU_FOR(1, i, n,
        const float *zp = lp + (size_t)i * V;
        float *zq = lq + (size_t)i * V;
        float mp = zp[0], mq = zq[0];
        for (int v = 1; v < V; v++) { if (zp[v] > mp) mp = zp[v]; if (zq[v] > mq) mq = zq[v]; }
        double sp = 0, sq = 0;
        for (int v = 0; v < V; v++) { sp += exp((double)zp[v] - mp); sq += exp((double)zq[v] - mq); }
        double lsp = mp + log(sp), lsq = mq + log(sq);   // log-sum-exp
        int32_t y = targets[i];
        nll[i] = lsq - zq[y];   // -log q(target), before zq is overwritten
        double k = 0;
        for (int v = 0; v < V; v++) {
            double logp = zp[v] - lsp, logq = zq[v] - lsq;
            double p = exp(logp), q = exp(logq);
            k += p * (logp - logq);
            double g = alpha * (p - q) + beta * (q - (v == y ? 1.0 : 0.0));
            zq[v] = (float)(g * grad_scale);   // dL/dlogits_Q, in place
        }
        kl[i] = k;);
    return SC_OK;
}
