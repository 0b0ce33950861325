// loss.c — the chunked divergence loss: the head of P and Q over a chunk of counted rows, the
// backend's fused loss op (log-softmax, KL, NLL, dL/dlogits_Q), Q's head backward.
#include "steerclear/loss.h"

#include <math.h>
#include <string.h>

size_t sc_divergence_loss_workspace(const sc_model *m, int chunk) {
    return sizeof(float) * ((size_t)2 * chunk * m->cfg.vocab + (size_t)2 * chunk * m->cfg.hidden + 64 * 3);
}

static sc_status loss_chunks(const sc_model *m, sc_backend *be, const float *hidden_p, const float *hidden_q,
                             const int *rows, const int32_t *targets, int n, float alpha, float beta, int chunk,
                             float *dhidden_q, double *kl_sum, double *nll_sum) {
    const int V = m->cfg.vocab;
    float *lp = SC_ARENA_FLOATS(&be->ws, (size_t)chunk * V, "loss logits of P");
    float *lq = SC_ARENA_FLOATS(&be->ws, (size_t)chunk * V, "loss logits of Q");
    float *rstd = SC_ARENA_FLOATS(&be->ws, chunk, "loss rstd");
    double *kls = sc_arena_alloc(&be->host, sizeof(double) * (size_t)chunk, "loss KL per row");
    double *nlls = sc_arena_alloc(&be->host, sizeof(double) * (size_t)chunk, "loss NLL per row");
    if (!lp || !lq || !rstd || !kls || !nlls) return SC_ERR_MEM;
    const double inv_n = 1.0 / n;
    for (int c0 = 0; c0 < n; c0 += chunk) {
        const int cn = n - c0 < chunk ? n - c0 : chunk;
        SC_TRY(sc_check_interrupt("computing the loss"));
        SC_TRY(sc_head(m, be, hidden_p, rows + c0, cn, NULL, lp));
        SC_TRY(sc_head(m, be, hidden_q, rows + c0, cn, rstd, lq));
        SC_TRY(be->op->divergence_loss(be, lq, lp, targets + c0, cn, V, alpha, beta, inv_n, kls, nlls));
        for (int i = 0; i < cn; i++) { *kl_sum += kls[i]; *nll_sum += nlls[i]; }
        if (dhidden_q) SC_TRY(sc_head_backward(m, be, hidden_q, rows + c0, cn, rstd, lq, dhidden_q));
    }
    return SC_OK;
}

sc_status sc_divergence_loss(const sc_model *m, sc_backend *be, const float *hidden_p, const float *hidden_q,
                             const int *rows, const int32_t *targets, int n, float alpha, float beta, int chunk,
                             float *dhidden_q, sc_loss_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (n <= 0) return SC_OK;
    if (chunk <= 0) chunk = 32;
    if (chunk > n) chunk = n;
    double kl_sum = 0, nll_sum = 0;
    sc_arena_mark mw = sc_arena_mark_get(&be->ws), mh = sc_arena_mark_get(&be->host);
    sc_status st = loss_chunks(m, be, hidden_p, hidden_q, rows, targets, n, alpha, beta, chunk, dhidden_q, &kl_sum, &nll_sum);
    sc_arena_reset(&be->ws, mw);
    sc_arena_reset(&be->host, mh);
    if (st) return st;
    stats->n_pos = n;
    stats->kl = kl_sum / n;
    stats->nll = nll_sum / n;
    stats->loss = alpha * -stats->kl + beta * stats->nll;
    if (!isfinite(stats->loss))
        return sc_errorf(SC_ERR_NUMERIC, "divergence loss is not finite (KL %g, NLL %g); lower the learning rate or check the adapter", stats->kl, stats->nll);
    return SC_OK;
}
