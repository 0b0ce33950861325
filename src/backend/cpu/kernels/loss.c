// loss.c — CPU fused divergence loss over rows of logits: log-softmax of P and Q in double,
// KL(P || Q), -log Q(target), and dL/dlogits_Q written over Q's logits, one row per work item.
#include "../cpu_kernels.h"

#include <math.h>

sc_status SC_CPU_FN(divergence_loss)(sc_backend *be, float *lq, const float *lp, const int32_t *targets, int n, int V,
                                     float alpha, float beta, double grad_scale, double *kl, double *nll) {
    for (int i = 0; i < n; i++)
        if (targets[i] < 0 || targets[i] >= V)
            return sc_errorf(SC_ERR_INTERNAL, "divergence loss: target %d of row %d is outside the vocabulary [0,%d)", targets[i], i, V);
    sc_arena_mark mh = sc_arena_mark_get(&be->host);
    int *bad = SC_ARENA_INTS(&be->host, n, "loss row checks");   // 1: P's logits not finite, 2: Q's
    if (!bad) return SC_ERR_MEM;
    SC_CPU_FOR(1, i, n,
        const float *zp = lp + (size_t)i * V;
        float *zq = lq + (size_t)i * V;
        float mp = zp[0], mq = zq[0];
        for (int v = 1; v < V; v++) { if (zp[v] > mp) mp = zp[v]; if (zq[v] > mq) mq = zq[v]; }
        double sp = 0, sq = 0;
        for (int v = 0; v < V; v++) { sp += exp((double)zp[v] - mp); sq += exp((double)zq[v] - mq); }
        double lsp = mp + log(sp), lsq = mq + log(sq);   // log-sum-exp
        bad[i] = !isfinite(lsp) ? 1 : !isfinite(lsq) ? 2 : 0;
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
    sc_status st = SC_OK;
    for (int i = 0; i < n && !st; i++)
        if (bad[i] == 1) st = sc_errorf(SC_ERR_NUMERIC, "divergence loss: the base model's logits of row %d are NaN or infinite: its weights are not finite; check the model files", i);
        else if (bad[i] == 2) st = sc_errorf(SC_ERR_NUMERIC, "divergence loss: the adapted model's logits of row %d are NaN or infinite while the base model's are finite: the adapter diverged; lower lr or scaling", i);
    sc_arena_reset(&be->host, mh);
    return st;
}
