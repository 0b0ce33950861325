// attention.c — CPU causal grouped-query attention: forward over a KV layout (a cache or the
// batch's own rows) and backward for the batch's own rows (training: no cache, positions from
// 0). Scores per (query, head) in float, the softmax sum in double; per-thread scratch comes
// from the workspace before the parallel region (nothing is allocated inside it), and one
// thread runs the items without a parallel region at all.
#include "../cpu_kernels.h"

#include <math.h>
#include <string.h>

typedef struct {
    float *out, *lse;
    const float *q, *k, *v;
    const sc_attn_layout *lay;
    const int *seq_of;      // (T) the sequence of each row
    int NH, KVH, HD;
    float scale;
} fwd_args;

// One (row, head): softmax of the scaled scores over positions 0..p, times the values.
static void attend(const fwd_args *a, int64_t item, float *sc) {
    const sc_attn_layout *lay = a->lay;
    const int NH = a->NH, HD = a->HD;
    const int t = (int)(item / NH), h = (int)(item % NH), b = a->seq_of[t];
    const int n = lay->pos0[b] + (t - lay->q_start[b]) + 1;   // positions attended
    const float *qv = a->q + ((int64_t)t * NH + h) * HD;
    const int kh = h / (NH / a->KVH);
    const float *kb = a->k + lay->kv_off[b] + (int64_t)kh * HD, *vb = a->v + lay->kv_off[b] + (int64_t)kh * HD;
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float *kr = kb + (int64_t)j * lay->kv_stride;
        float s = 0.0f;
        for (int d = 0; d < HD; d++) s += qv[d] * kr[d];
        s *= a->scale;
        sc[j] = s;
        if (s > mx) mx = s;
    }
    double sum = 0.0;
    for (int j = 0; j < n; j++) { sc[j] = expf(sc[j] - mx); sum += sc[j]; }
    const float inv = (float)(1.0 / sum);
    float *o = a->out + ((int64_t)t * NH + h) * HD;
    memset(o, 0, (size_t)HD * sizeof(float));
    for (int j = 0; j < n; j++) {
        const float *vr = vb + (int64_t)j * lay->kv_stride;
        const float pj = sc[j] * inv;
        for (int d = 0; d < HD; d++) o[d] += pj * vr[d];
    }
    if (a->lse) a->lse[(int64_t)t * NH + h] = mx + (float)log(sum);
}

sc_status SC_CPU_FN(attention)(sc_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                               const sc_attn_layout *lay, int NH, int KVH, int HD) {
    const int T = lay->q_start[lay->n_seq];
    if (T <= 0) return SC_OK;
    int cap = 1;   // the longest context any query attends over
    for (int b = 0; b < lay->n_seq; b++) {
        int n = lay->pos0[b] + (lay->q_start[b + 1] - lay->q_start[b]);
        if (n > cap) cap = n;
    }
    const int64_t items = (int64_t)T * NH;
    const int nt = items > 1 && omp_get_max_threads() > 1 ? omp_get_max_threads() : 1;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws), mh = sc_arena_mark_get(&be->host);
    float *scratch = SC_ARENA_FLOATS(&be->ws, (size_t)nt * cap, "attention scores");
    int *seq_of = SC_ARENA_INTS(&be->host, T, "attention row map");
    if (!scratch || !seq_of) { sc_arena_reset(&be->ws, mk); sc_arena_reset(&be->host, mh); return SC_ERR_MEM; }
    for (int b = 0; b < lay->n_seq; b++)
        for (int t = lay->q_start[b]; t < lay->q_start[b + 1]; t++) seq_of[t] = b;
    const fwd_args a = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .lay = lay, .seq_of = seq_of,
                        .NH = NH, .KVH = KVH, .HD = HD, .scale = 1.0f / sqrtf((float)HD)};
    if (nt == 1) {
        for (int64_t item = 0; item < items; item++) attend(&a, item, scratch);
    } else {
        #pragma omp parallel num_threads(nt)
        {
            float *sc = scratch + (size_t)omp_get_thread_num() * cap;
            #pragma omp for schedule(dynamic, 4)
            for (int64_t item = 0; item < items; item++) attend(&a, item, sc);
        }
    }
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    return SC_OK;
}

typedef struct {
    float *dq, *dk, *dv;
    const float *dout, *out, *lse, *q, *k, *v;
    const int *q_start;
    int NH, KVH, HD;
    float scale;
} bwd_args;

// One (sequence, kv head): every query head of the group, so dk/dv rows have one writer.
static void attend_backward(const bwd_args *a, int item, float *pr, float *dp) {
    const int NH = a->NH, KVH = a->KVH, HD = a->HD, group = NH / KVH, QD = NH * HD, KD = KVH * HD;
    const int b = item / KVH, kh = item % KVH;
    const int s0 = a->q_start[b], len = a->q_start[b + 1] - s0;
    for (int h = kh * group; h < (kh + 1) * group; h++) {
        for (int i = 0; i < len; i++) {
            const int t = s0 + i;
            const float *qv = a->q + (int64_t)t * QD + (int64_t)h * HD;
            const float *dov = a->dout + (int64_t)t * QD + (int64_t)h * HD;
            const float *ov = a->out + (int64_t)t * QD + (int64_t)h * HD;
            const float l = a->lse[(int64_t)t * NH + h];
            float D = 0.0f;   // rowsum(dO * O)
            for (int d = 0; d < HD; d++) D += dov[d] * ov[d];
            for (int j = 0; j <= i; j++) {
                const float *kr = a->k + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                const float *vr = a->v + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                float s = 0.0f, g = 0.0f;
                for (int d = 0; d < HD; d++) { s += qv[d] * kr[d]; g += dov[d] * vr[d]; }
                pr[j] = expf(s * a->scale - l);
                dp[j] = pr[j] * (g - D);   // dS
            }
            float *dqv = a->dq + (int64_t)t * QD + (int64_t)h * HD;
            memset(dqv, 0, (size_t)HD * sizeof(float));
            for (int j = 0; j <= i; j++) {
                const float *kr = a->k + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                float *dkr = a->dk + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                float *dvr = a->dv + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                const float ds = dp[j] * a->scale, pj = pr[j];
                for (int d = 0; d < HD; d++) {
                    dqv[d] += ds * kr[d];
                    dkr[d] += ds * qv[d];
                    dvr[d] += pj * dov[d];
                }
            }
        }
    }
}

sc_status SC_CPU_FN(attention_backward)(sc_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                        const float *lse, const float *q, const float *k, const float *v,
                                        const int *q_start, int n_seq, int NH, int KVH, int HD) {
    const int KD = KVH * HD, T = q_start[n_seq], items = n_seq * KVH;
    memset(dk, 0, (size_t)T * KD * sizeof(float));
    memset(dv, 0, (size_t)T * KD * sizeof(float));
    int cap = 1;
    for (int b = 0; b < n_seq; b++) if (q_start[b + 1] - q_start[b] > cap) cap = q_start[b + 1] - q_start[b];
    const int nt = items > 1 && omp_get_max_threads() > 1 ? omp_get_max_threads() : 1;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    float *scratch = SC_ARENA_FLOATS(&be->ws, (size_t)nt * 2 * cap, "attention backward scratch");
    if (!scratch) return SC_ERR_MEM;
    const bwd_args a = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .out = out, .lse = lse, .q = q, .k = k, .v = v,
                        .q_start = q_start, .NH = NH, .KVH = KVH, .HD = HD, .scale = 1.0f / sqrtf((float)HD)};
    if (nt == 1) {
        for (int item = 0; item < items; item++) attend_backward(&a, item, scratch, scratch + cap);
    } else {
        #pragma omp parallel num_threads(nt)
        {
            float *pr = scratch + (size_t)omp_get_thread_num() * 2 * cap;
            #pragma omp for schedule(dynamic, 1)
            for (int item = 0; item < items; item++) attend_backward(&a, item, pr, pr + cap);
        }
    }
    sc_arena_reset(&be->ws, mk);
    return SC_OK;
}
