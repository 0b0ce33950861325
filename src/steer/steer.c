// steer.c — the steering hook: h_l += scale * d_l for the rows of each steered sequence.
#include "steerclear/steer.h"

static sc_status steer_forward(void *user, int block, float *h, int T, int C, const sc_batch *batch) {
    const sc_steer *s = user;
    for (int seq = 0; seq < (batch && batch->tag ? batch->n_seq : 1); seq++) {
        int vi = batch && batch->tag ? batch->tag[seq] : 0;
        if (vi < 0) continue;
        if (vi >= s->n_variants) return sc_errorf(SC_ERR_INTERNAL, "steering: sequence tag %d but only %d variants", vi, s->n_variants);
        const sc_steer_variant *v = &s->variants[vi];
        int last = v->last < 0 ? s->n_layers : v->last;
        if (block < v->first || block >= last || v->scale == 0.0f) continue;
        const float *d = v->directions + (size_t)block * C;
        int r0 = batch && batch->tag ? batch->seq_start[seq] : 0;
        int r1 = batch && batch->tag ? batch->seq_start[seq + 1] : T;
        for (int t = r0; t < r1; t++)
            for (int c = 0; c < C; c++) h[(size_t)t * C + c] += v->scale * d[c];
    }
    return SC_OK;
}

sc_hook sc_steer_hook(const sc_steer *s) {
    sc_hook h = {.user = (void *)s, .forward = steer_forward, .backward = NULL};
    return h;
}
