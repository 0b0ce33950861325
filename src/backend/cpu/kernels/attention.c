// attention.c — CPU causal grouped-query attention: forward over a KV layout (a cache or the
// batch's own rows) and backward for the batch's own rows (training: no cache, positions from
// 0). Scores per (query, head) in float, the softmax sum in double; per-thread scratch comes
// from the workspace before the parallel region (nothing is allocated inside it).
#include "../cpu_kernels.h"

#include <math.h>
#include <omp.h>
#include <string.h>

// Longest context any query of the layout attends over (positions 0 .. pos0 + len - 1).
static int max_context(const sc_attn_layout *lay) {
    int mx = 1;
    for (int b = 0; b < lay->n_seq; b++) {
        int n = lay->pos0[b] + (lay->q_start[b + 1] - lay->q_start[b]);
        if (n > mx) mx = n;
    }
    return mx;
}

sc_status SC_CPU_FN(attention)(sc_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                               const sc_attn_layout *lay, int NH, int KVH, int HD) {
    const int group = NH / KVH;
    const float scale = 1.0f / sqrtf((float)HD);
    const int T = lay->q_start[lay->n_seq];
    if (T <= 0) return SC_OK;
    const int cap = max_context(lay), nt = omp_get_max_threads();
    sc_arena_mark mk = sc_arena_mark_get(&be->ws), mh = sc_arena_mark_get(&be->host);
    float *scratch = SC_ARENA_FLOATS(&be->ws, (size_t)nt * cap, "attention scores");
    int *seq_of = SC_ARENA_INTS(&be->host, T, "attention row map");
    if (!scratch || !seq_of) { sc_arena_reset(&be->ws, mk); sc_arena_reset(&be->host, mh); return SC_ERR_MEM; }
    for (int b = 0; b < lay->n_seq; b++)
        for (int t = lay->q_start[b]; t < lay->q_start[b + 1]; t++) seq_of[t] = b;
    // one work item per (token, head)
    #pragma omp parallel num_threads(nt)
    {
        float *sc = scratch + (size_t)omp_get_thread_num() * cap;
        #pragma omp for schedule(dynamic, 4)
        for (int64_t item = 0; item < (int64_t)T * NH; item++) {
            const int t = (int)(item / NH), h = (int)(item % NH), b = seq_of[t];
            const int n = lay->pos0[b] + (t - lay->q_start[b]) + 1;   // positions attended
            const float *qv = q + ((int64_t)t * NH + h) * HD;
            const int kh = h / group;
            const float *kb = k + lay->kv_off[b] + (int64_t)kh * HD, *vb = v + lay->kv_off[b] + (int64_t)kh * HD;
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *kr = kb + (int64_t)j * lay->kv_stride;
                float s = 0.0f;
                for (int d = 0; d < HD; d++) s += qv[d] * kr[d];
                s *= scale;
                sc[j] = s;
                if (s > mx) mx = s;
            }
            double sum = 0.0;
            for (int j = 0; j < n; j++) { sc[j] = expf(sc[j] - mx); sum += sc[j]; }
            float inv = (float)(1.0 / sum);
            float *o = out + ((int64_t)t * NH + h) * HD;
            memset(o, 0, (size_t)HD * sizeof(float));
            for (int j = 0; j < n; j++) {
                const float *vr = vb + (int64_t)j * lay->kv_stride;
                float pj = sc[j] * inv;
                for (int d = 0; d < HD; d++) o[d] += pj * vr[d];
            }
            if (lse) lse[(int64_t)t * NH + h] = mx + (float)log(sum);
        }
    }
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    return SC_OK;
}

// One work item per (sequence, kv head) so dk/dv rows are written by one thread only.
sc_status SC_CPU_FN(attention_backward)(sc_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                        const float *lse, const float *q, const float *k, const float *v,
                                        const int *q_start, int n_seq, int NH, int KVH, int HD) {
    const int group = NH / KVH;
    const int QD = NH * HD, KD = KVH * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    const int T = q_start[n_seq];
    memset(dk, 0, (size_t)T * KD * sizeof(float));
    memset(dv, 0, (size_t)T * KD * sizeof(float));
    int cap = 1;
    for (int b = 0; b < n_seq; b++) if (q_start[b + 1] - q_start[b] > cap) cap = q_start[b + 1] - q_start[b];
    const int nt = omp_get_max_threads();
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    float *scratch = SC_ARENA_FLOATS(&be->ws, (size_t)nt * 2 * cap, "attention backward scratch");
    if (!scratch) return SC_ERR_MEM;
    #pragma omp parallel num_threads(nt)
    {
        float *pr = scratch + (size_t)omp_get_thread_num() * 2 * cap, *dp = pr + cap;
        #pragma omp for schedule(dynamic, 1)
        for (int item = 0; item < n_seq * KVH; item++) {
            int b = item / KVH, kh = item % KVH;
            int s0 = q_start[b], len = q_start[b + 1] - s0;
            for (int h = kh * group; h < (kh + 1) * group; h++) {
                for (int i = 0; i < len; i++) {
                    int t = s0 + i;
                    const float *qv = q + (int64_t)t * QD + (int64_t)h * HD;
                    const float *dov = dout + (int64_t)t * QD + (int64_t)h * HD;
                    const float *ov = out + (int64_t)t * QD + (int64_t)h * HD;
                    float l = lse[(int64_t)t * NH + h];
                    float D = 0.0f;   // rowsum(dO * O)
                    for (int d = 0; d < HD; d++) D += dov[d] * ov[d];
                    for (int j = 0; j <= i; j++) {
                        const float *kr = k + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        const float *vr = v + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        float s = 0.0f, g = 0.0f;
                        for (int d = 0; d < HD; d++) { s += qv[d] * kr[d]; g += dov[d] * vr[d]; }
                        pr[j] = expf(s * scale - l);
                        dp[j] = pr[j] * (g - D);   // dS
                    }
                    float *dqv = dq + (int64_t)t * QD + (int64_t)h * HD;
                    memset(dqv, 0, (size_t)HD * sizeof(float));
                    for (int j = 0; j <= i; j++) {
                        const float *kr = k + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        float *dkr = dk + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        float *dvr = dv + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        float ds = dp[j] * scale, pj = pr[j];
                        for (int d = 0; d < HD; d++) {
                            dqv[d] += ds * kr[d];
                            dkr[d] += ds * qv[d];
                            dvr[d] += pj * dov[d];
                        }
                    }
                }
            }
        }
    }
    sc_arena_reset(&be->ws, mk);
    return SC_OK;
}
