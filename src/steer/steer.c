// steer.c — the steering hook: h_l += scale * d_l for the rows of each steered sequence (the
// backend's add_row op).
#include "steerclear/steer.h"

static sc_status steer_forward(void *user, sc_backend *be, int block, float *h, int T, int C, const sc_batch *batch) {
    const sc_steer *s = user;
    const int tagged = batch && batch->tag;
    for (int seq = 0; seq < (tagged ? batch->n_seq : 1); seq++) {
        int vi = tagged ? batch->tag[seq] : 0;
        if (vi < 0) continue;
        if (vi >= s->n_variants) return sc_errorf(SC_ERR_INTERNAL, "steering: sequence tag %d but only %d variants", vi, s->n_variants);
        const sc_steer_variant *v = &s->variants[vi];
        int last = v->last < 0 ? s->n_layers : v->last;
        if (block < v->first || block >= last || v->scale == 0.0f) continue;
        const int r0 = tagged ? batch->seq_start[seq] : 0, r1 = tagged ? batch->seq_start[seq + 1] : T;
        SC_TRY(be->op->add_row(be, h + (size_t)r0 * C, v->directions + (size_t)block * C, v->scale, r1 - r0, C));
    }
    return SC_OK;
}

sc_hook sc_steer_hook(const sc_steer *s) {
    sc_hook h = {.user = (void *)s, .forward = steer_forward, .backward = NULL};
    return h;
}
