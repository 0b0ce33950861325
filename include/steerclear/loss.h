// loss.h — the divergence loss L = alpha * (-KL(P || Q)) + beta * NLL(Q, sampled token),
// averaged over the counted positions, computed over the vocabulary in chunks of rows so
// that memory is chunk x V, not T x V. Its gradient w.r.t. Q's logits per position is
//   (alpha * (P - Q) + beta * (Q - onehot(target))) / n_positions.
#ifndef STEERCLEAR_LOSS_H
#define STEERCLEAR_LOSS_H

#include "steerclear/engine.h"

typedef struct {
    double loss, kl, nll;  // means over the counted positions
    int64_t n_pos;
} sc_loss_stats;

// hidden_p, hidden_q: [T,C] outputs of the last block (before the final norm) of P and Q.
// rows[n]: the counted rows, targets[n]: the token each row predicts (sampled from Q).
// dhidden_q (optional) [T,C]: the loss gradient w.r.t. hidden_q is added into it.
sc_status sc_divergence_loss(const sc_model *m, const sc_backend *be, const float *hidden_p, const float *hidden_q,
                             const int *rows, const int32_t *targets, int n, float alpha, float beta, int chunk,
                             float *dhidden_q, sc_loss_stats *stats);

// AdamW as in PyTorch (decoupled weight decay): p -= lr*wd*p; m,v moments; bias correction.
typedef struct { float lr, beta1, beta2, eps, weight_decay; } sc_adamw_opts;
// step counts from 1.
void sc_adamw_update(float *p, const float *g, float *m, float *v, size_t n, const sc_adamw_opts *o, int step);

#endif
