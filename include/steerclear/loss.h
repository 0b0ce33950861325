// loss.h — the divergence loss L = alpha * (-KL(P || Q)) + beta * NLL(Q, sampled token),
// averaged over the counted positions, computed over the vocabulary in chunks of rows so
// that memory is chunk x V, not T x V. Its gradient w.r.t. Q's logits per position is
//   (alpha * (P - Q) + beta * (Q - onehot(target))) / n_positions.
// Per chunk: the head of P and of Q, the backend's fused divergence_loss op, Q's head backward.
#ifndef STEERCLEAR_LOSS_H
#define STEERCLEAR_LOSS_H

#include "steerclear/engine.h"

typedef struct {
    double loss, kl, nll;  // means over the counted positions
    int64_t n_pos;
} sc_loss_stats;

// hidden_p, hidden_q: [T,C] outputs of the last block (before the final norm) of P and Q
// (backend memory). rows[n]: the counted rows, targets[n]: the token each row predicts
// (sampled from Q), both host. dhidden_q (optional) [T,C]: the loss gradient w.r.t. hidden_q
// is added into it.
sc_status sc_divergence_loss(const sc_model *m, sc_backend *be, const float *hidden_p, const float *hidden_q,
                             const int *rows, const int32_t *targets, int n, float alpha, float beta, int chunk,
                             float *dhidden_q, sc_loss_stats *stats);
// Workspace bytes the loss takes for chunks of `chunk` rows (for planning).
size_t sc_divergence_loss_workspace(const sc_model *m, int chunk);

#endif
