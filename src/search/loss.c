// loss.c — the chunked divergence loss and AdamW.
#include "steerclear/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

sc_status sc_divergence_loss(const sc_model *m, const sc_backend *be, const float *hidden_p, const float *hidden_q,
                             const int *rows, const int32_t *targets, int n, float alpha, float beta, int chunk,
                             float *dhidden_q, sc_loss_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (n <= 0) return SC_OK;
    const int V = m->cfg.vocab;
    if (chunk <= 0) chunk = 32;
    if (chunk > n) chunk = n;
    float *lp = malloc(sizeof(float) * (size_t)chunk * V + 64), *lq = malloc(sizeof(float) * (size_t)chunk * V + 64);
    float *rstd = malloc(sizeof(float) * (size_t)chunk + 64);
    double *kls = malloc(sizeof(double) * (size_t)chunk), *nlls = malloc(sizeof(double) * (size_t)chunk);
    sc_status st = SC_OK;
    if (!lp || !lq || !rstd || !kls || !nlls) { st = sc_errorf(SC_ERR_MEM, "out of memory for loss chunks of %d x %d logits", chunk, V); goto done; }
    double kl_sum = 0, nll_sum = 0;
    const double inv_n = 1.0 / n;
    for (int c0 = 0; c0 < n; c0 += chunk) {
        int cn = n - c0 < chunk ? n - c0 : chunk;
        st = sc_head(m, be, hidden_p, rows + c0, cn, NULL, lp);
        if (st) goto done;
        st = sc_head(m, be, hidden_q, rows + c0, cn, rstd, lq);
        if (st) goto done;
        #pragma omp parallel for schedule(static)
        for (int i = 0; i < cn; i++) {
            float *zp = lp + (size_t)i * V, *zq = lq + (size_t)i * V;
            float mp = zp[0], mq = zq[0];
            for (int v = 1; v < V; v++) { if (zp[v] > mp) mp = zp[v]; if (zq[v] > mq) mq = zq[v]; }
            double sp = 0, sq = 0;
            for (int v = 0; v < V; v++) { sp += exp((double)zp[v] - mp); sq += exp((double)zq[v] - mq); }
            double lsp = mp + log(sp), lsq = mq + log(sq);   // log-sum-exp
            int32_t y = targets[c0 + i];
            nlls[i] = lsq - zq[y];   // -log q(target), before zq is overwritten
            double kl = 0;
            for (int v = 0; v < V; v++) {
                double logp = zp[v] - lsp, logq = zq[v] - lsq;
                double p = exp(logp), q = exp(logq);
                kl += p * (logp - logq);
                double g = alpha * (p - q) + beta * (q - (v == y ? 1.0 : 0.0));
                zq[v] = (float)(g * inv_n);   // dL/dlogits_Q, in place
            }
            kls[i] = kl;
        }
        for (int i = 0; i < cn; i++) { kl_sum += kls[i]; nll_sum += nlls[i]; }
        if (dhidden_q) {
            st = sc_head_backward(m, be, hidden_q, rows + c0, cn, rstd, lq, dhidden_q);
            if (st) goto done;
        }
    }
    stats->n_pos = n;
    stats->kl = kl_sum / n;
    stats->nll = nll_sum / n;
    stats->loss = alpha * -stats->kl + beta * stats->nll;
    if (!isfinite(stats->loss))
        st = sc_errorf(SC_ERR_NUMERIC, "divergence loss is not finite (KL %g, NLL %g); lower the learning rate or check the adapter", stats->kl, stats->nll);
done:
    free(lp); free(lq); free(rstd); free(kls); free(nlls);
    return st;
}

void sc_adamw_update(float *p, const float *g, float *m, float *v, size_t n, const sc_adamw_opts *o, int step) {
    const double bc1 = 1.0 - pow(o->beta1, step), bc2 = 1.0 - pow(o->beta2, step);
    for (size_t i = 0; i < n; i++) {
        p[i] -= o->lr * o->weight_decay * p[i];
        m[i] = o->beta1 * m[i] + (1.0f - o->beta1) * g[i];
        v[i] = o->beta2 * v[i] + (1.0f - o->beta2) * g[i] * g[i];
        double mh = m[i] / bc1, vh = v[i] / bc2;
        p[i] -= (float)(o->lr * mh / (sqrt(vh) + o->eps));
    }
}
