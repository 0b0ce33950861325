// attention.c — CPU causal grouped-query attention: forward over a KV layout (a cache or the
// batch's own rows) and backward for the batch's own rows (training: no cache, positions from
// 0). Work is split into (sequence, head, block of SC_ATTN_QB query rows) items (so any number
// of cores is busy), and inside an item each key and value row is loaded once for the whole
// block of queries: scores of the block against key j, then the block's outputs gain p * v_j.
// Dot products and updates over the head dimension are vector loops with explicit FMA (where
// compiled for it). Scores in float, the softmax sum in double. The backward runs in two
// passes without atomics: dq (items over query blocks, which also store rowsum(dO * O)), then
// dk and dv (items over (sequence, kv head, key block): each key row has one writer).
// Per-thread scratch comes from the workspace before the parallel region (nothing is
// allocated inside it), and one thread runs the items without a parallel region at all.
#include "../cpu_kernels.h"

#include <math.h>
#include <string.h>

#define SC_ATTN_QB 16   // query rows per work item (forward, dq); key rows per item (dk, dv)

#if defined(__FMA__)
#define SC_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define SC_FMA(a, b, c) ((a) * (b) + (c))
#endif

static inline float dotf(const float *restrict a, const float *restrict b, int n) {
    float s = 0.0f;
    #pragma omp simd reduction(+ : s)
    for (int d = 0; d < n; d++) s = SC_FMA(a[d], b[d], s);
    return s;
}

// y += a * x
static inline void axpyf(float *restrict y, float a, const float *restrict x, int n) {
    #pragma omp simd
    for (int d = 0; d < n; d++) y[d] = SC_FMA(a, x[d], y[d]);
}

// KT[d][c] = rows[c][d] for c < n (rows `stride` floats apart), zeros for c in [n, 16): a tile of
// 16 key (or value) rows transposed, so that scores against 16 keys are 16-wide FMAs.
static void tile16(float *restrict KT, const float *rows, int64_t stride, int n, int HD) {
    for (int c = 0; c < 16; c++) {
        const float *r = rows + (int64_t)c * stride;
        if (c < n) for (int d = 0; d < HD; d++) KT[d * 16 + c] = r[d];
        else for (int d = 0; d < HD; d++) KT[d * 16 + c] = 0.0f;
    }
}

// s[c] = q . key c of a transposed tile, c < 16
static inline void dot16(float *restrict s, const float *restrict q, const float *restrict KT, int HD) {
    float acc[16] = {0};
    for (int d = 0; d < HD; d++) {
        const float qd = q[d];
        #pragma omp simd
        for (int c = 0; c < 16; c++) acc[c] = SC_FMA(qd, KT[d * 16 + c], acc[c]);
    }
    for (int c = 0; c < 16; c++) s[c] = acc[c];
}

// Run fn(args, item, thread scratch) for every item, on every thread when there is more than
// one item and thread.
#define ATTN_FOR_ITEMS(nt, items, scratch, per_thread, fn, args) do {                 \
    if ((nt) == 1) {                                                                  \
        for (int64_t it_ = 0; it_ < (items); it_++) fn((args), it_, (scratch));       \
    } else {                                                                          \
        _Pragma("omp parallel num_threads(nt)")                                       \
        {                                                                             \
            float *sc_ = (scratch) + (size_t)omp_get_thread_num() * (per_thread);     \
            _Pragma("omp for schedule(dynamic, 1)")                                   \
            for (int64_t it_ = 0; it_ < (items); it_++) fn((args), it_, sc_);         \
        }                                                                             \
    }                                                                                 \
} while (0)

// Work items: (sequence, head, block) triples, blocks of SC_ATTN_QB rows of each sequence.
typedef struct {
    int n_seq, heads;
    const int *q_start;
    const int *blk_start;   // (n_seq + 1) first item block of each sequence
} item_map;

static void item_decode(const item_map *m, int64_t item, int *b, int *h, int *blk) {
    const int64_t per_head = item / m->heads;   // global block index
    *h = (int)(item % m->heads);
    int lo = 0, hi = m->n_seq;   // the sequence holding block per_head
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (m->blk_start[mid] <= per_head) lo = mid; else hi = mid;
    }
    *b = lo;
    *blk = (int)(per_head - m->blk_start[lo]);
}

typedef struct {
    float *out, *lse;
    const float *q, *k, *v;
    const sc_attn_layout *lay;
    item_map map;
    int NH, KVH, HD, cap;
    float scale;
} fwd_args;

// One (sequence, head, query block): softmax of the scaled scores over positions 0..p of each
// query row, times the values. sc: SC_ATTN_QB rows of cap scores.
static void attend_block(const fwd_args *a, int64_t item, float *sc) {
    const sc_attn_layout *lay = a->lay;
    const int NH = a->NH, HD = a->HD, cap = a->cap;
    int b, h, blk;
    item_decode(&a->map, item, &b, &h, &blk);
    const int t0 = lay->q_start[b] + blk * SC_ATTN_QB;
    const int nq = lay->q_start[b + 1] - t0 < SC_ATTN_QB ? lay->q_start[b + 1] - t0 : SC_ATTN_QB;
    const int n0 = lay->pos0[b] + (t0 - lay->q_start[b]) + 1;   // positions the first row attends; row i: n0 + i
    const int kh = h / (NH / a->KVH);
    const int64_t stride = lay->kv_stride;
    const float *kb = a->k + lay->kv_off[b] + (int64_t)kh * HD, *vb = a->v + lay->kv_off[b] + (int64_t)kh * HD;
    const float *qb = a->q + ((int64_t)t0 * NH + h) * HD;
    const int64_t qstride = (int64_t)NH * HD;
    // scores: tiles of 16 key rows against every query row that sees any of them
    float *KT = sc + (size_t)SC_ATTN_QB * cap;
    const int nk = n0 + nq - 1;
    for (int j0 = 0; j0 < nk; j0 += 16) {
        tile16(KT, kb + (int64_t)j0 * stride, stride, nk - j0 < 16 ? nk - j0 : 16, HD);
        for (int i = j0 < n0 ? 0 : j0 - n0 + 1; i < nq; i++) {
            float *s = sc + (size_t)i * cap + j0;
            dot16(s, qb + i * qstride, KT, HD);
            for (int c = 0; c < 16; c++) s[c] *= a->scale;
        }
    }
    float inv[SC_ATTN_QB];
    for (int i = 0; i < nq; i++) {
        float *s = sc + (size_t)i * cap;
        const int n = n0 + i;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) if (s[j] > mx) mx = s[j];
        double sum = 0.0;
        for (int j = 0; j < n; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
        inv[i] = (float)(1.0 / sum);
        if (a->lse) a->lse[(int64_t)(t0 + i) * NH + h] = mx + (float)log(sum);
        memset(a->out + ((int64_t)(t0 + i) * NH + h) * HD, 0, (size_t)HD * sizeof(float));
    }
    // outputs: value row j into every query row that sees it
    float *ob = a->out + ((int64_t)t0 * NH + h) * HD;
    for (int j = 0; j < n0 + nq - 1; j++) {
        const float *vr = vb + (int64_t)j * stride;
        for (int i = j < n0 ? 0 : j - n0 + 1; i < nq; i++) axpyf(ob + i * qstride, sc[(size_t)i * cap + j] * inv[i], vr, HD);
    }
}

// blk_start (host scratch, n_seq + 1) for blocks of SC_ATTN_QB rows; returns the total.
static int64_t make_blocks(int *blk_start, const int *q_start, int n_seq) {
    blk_start[0] = 0;
    for (int b = 0; b < n_seq; b++) {
        const int len = q_start[b + 1] - q_start[b];
        blk_start[b + 1] = blk_start[b] + (len + SC_ATTN_QB - 1) / SC_ATTN_QB;
    }
    return blk_start[n_seq];
}

static int team_size(int64_t items) {
    const int mt = omp_get_max_threads();
    return items > 1 && mt > 1 ? mt : 1;
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
    cap = (cap + 15) / 16 * 16;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws), mh = sc_arena_mark_get(&be->host);
    int *blk_start = SC_ARENA_INTS(&be->host, lay->n_seq + 1, "attention blocks");
    if (!blk_start) return SC_ERR_MEM;
    const int64_t items = make_blocks(blk_start, lay->q_start, lay->n_seq) * NH;
    const int nt = team_size(items);
    const size_t per_thread = (size_t)SC_ATTN_QB * cap + (size_t)16 * HD;   // scores, a key tile
    float *scratch = SC_ARENA_FLOATS(&be->ws, (size_t)nt * per_thread, "attention scores");
    if (!scratch) { sc_arena_reset(&be->host, mh); return SC_ERR_MEM; }
    const fwd_args a = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .lay = lay,
                        .map = {.n_seq = lay->n_seq, .heads = NH, .q_start = lay->q_start, .blk_start = blk_start},
                        .NH = NH, .KVH = KVH, .HD = HD, .cap = cap, .scale = 1.0f / sqrtf((float)HD)};
    ATTN_FOR_ITEMS(nt, items, scratch, per_thread, attend_block, &a);
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    return SC_OK;
}

typedef struct {
    float *dq, *dk, *dv, *D;
    const float *dout, *out, *lse, *q, *k, *v;
    const int *q_start;
    item_map qmap, kmap;   // items over query blocks x NH heads; over key blocks x KVH heads
    int NH, KVH, HD;
    float scale;
} bwd_args;

// Pass 1, one (sequence, head, query block): D = rowsum(dO * O) of its rows, and
//   dq_i = scale * sum_j dS_ij k_j,  dS_ij = P_ij (dO_i . v_j - D_i),  P_ij = exp(s_ij - lse_i).
static void backward_dq(const bwd_args *a, int64_t item, float *tiles) {
    const int NH = a->NH, HD = a->HD, QD = NH * HD, KD = a->KVH * HD;
    int b, h, blk;
    item_decode(&a->qmap, item, &b, &h, &blk);
    const int s0 = a->q_start[b], i0 = blk * SC_ATTN_QB;
    const int nq = a->q_start[b + 1] - s0 - i0 < SC_ATTN_QB ? a->q_start[b + 1] - s0 - i0 : SC_ATTN_QB;
    const int kh = h / (NH / a->KVH);
    float D[SC_ATTN_QB], l[SC_ATTN_QB], *KT = tiles, *VT = tiles + 16 * HD;
    for (int i = 0; i < nq; i++) {
        const int64_t t = s0 + i0 + i;
        D[i] = dotf(a->dout + t * QD + (int64_t)h * HD, a->out + t * QD + (int64_t)h * HD, HD);
        a->D[t * NH + h] = D[i];
        l[i] = a->lse[t * NH + h];
        memset(a->dq + t * QD + (int64_t)h * HD, 0, (size_t)HD * sizeof(float));
    }
    const int nk = i0 + nq;   // keys 0 .. i0 + nq - 1; row i0 + i sees keys j <= i0 + i
    for (int j0 = 0; j0 < nk; j0 += 16) {
        const int nt = nk - j0 < 16 ? nk - j0 : 16;
        const float *kr = a->k + (int64_t)(s0 + j0) * KD + (int64_t)kh * HD, *vr = a->v + (int64_t)(s0 + j0) * KD + (int64_t)kh * HD;
        tile16(KT, kr, KD, nt, HD);
        tile16(VT, vr, KD, nt, HD);
        for (int i = j0 <= i0 ? 0 : j0 - i0; i < nq; i++) {
            const int64_t t = s0 + i0 + i;
            float sv[16], gv[16];
            dot16(sv, a->q + t * QD + (int64_t)h * HD, KT, HD);
            dot16(gv, a->dout + t * QD + (int64_t)h * HD, VT, HD);
            const int cn = i0 + i - j0 + 1 < nt ? i0 + i - j0 + 1 : nt;
            float *dqv = a->dq + t * QD + (int64_t)h * HD;
            for (int c = 0; c < cn; c++) {
                const float p = expf(sv[c] * a->scale - l[i]);
                axpyf(dqv, p * (gv[c] - D[i]) * a->scale, kr + (int64_t)c * KD, HD);
            }
        }
    }
}

// Pass 2, one (sequence, kv head, key block): for every query head of the group and every
// query row i >= j,  dk_j += scale * dS_ij q_i,  dv_j += P_ij dO_i.
static void backward_dkv(const bwd_args *a, int64_t item, float *tiles) {
    const int NH = a->NH, HD = a->HD, QD = NH * HD, KD = a->KVH * HD, group = NH / a->KVH;
    int b, kh, blk;
    item_decode(&a->kmap, item, &b, &kh, &blk);
    const int s0 = a->q_start[b], len = a->q_start[b + 1] - s0, j0 = blk * SC_ATTN_QB;
    const int nk = len - j0 < SC_ATTN_QB ? len - j0 : SC_ATTN_QB;
    float *KT = tiles, *VT = tiles + 16 * HD;
    float *dkb = a->dk + (int64_t)(s0 + j0) * KD + (int64_t)kh * HD, *dvb = a->dv + (int64_t)(s0 + j0) * KD + (int64_t)kh * HD;
    for (int j = 0; j < nk; j++) {
        memset(dkb + (int64_t)j * KD, 0, (size_t)HD * sizeof(float));
        memset(dvb + (int64_t)j * KD, 0, (size_t)HD * sizeof(float));
    }
    tile16(KT, a->k + (int64_t)(s0 + j0) * KD + (int64_t)kh * HD, KD, nk, HD);
    tile16(VT, a->v + (int64_t)(s0 + j0) * KD + (int64_t)kh * HD, KD, nk, HD);
    for (int h = kh * group; h < (kh + 1) * group; h++)
        for (int i = j0; i < len; i++) {   // query row i sees keys j <= i
            const int64_t t = s0 + i;
            const float *qv = a->q + t * QD + (int64_t)h * HD, *dov = a->dout + t * QD + (int64_t)h * HD;
            const float l = a->lse[t * NH + h], D = a->D[t * NH + h];
            const int jn = i - j0 + 1 < nk ? i - j0 + 1 : nk;
            float sv[16], gv[16];
            dot16(sv, qv, KT, HD);
            dot16(gv, dov, VT, HD);
            for (int j = 0; j < jn; j++) {
                const float p = expf(sv[j] * a->scale - l);
                axpyf(dkb + (int64_t)j * KD, p * (gv[j] - D) * a->scale, qv, HD);
                axpyf(dvb + (int64_t)j * KD, p, dov, HD);
            }
        }
}

sc_status SC_CPU_FN(attention_backward)(sc_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                        const float *lse, const float *q, const float *k, const float *v,
                                        const int *q_start, int n_seq, int NH, int KVH, int HD) {
    const int T = q_start[n_seq];
    if (T <= 0) return SC_OK;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws), mh = sc_arena_mark_get(&be->host);
    int *blk_start = SC_ARENA_INTS(&be->host, n_seq + 1, "attention blocks");
    if (!blk_start) return SC_ERR_MEM;
    const int64_t blocks = make_blocks(blk_start, q_start, n_seq);
    const int nt_max = team_size(blocks * NH);
    const size_t per_thread = (size_t)32 * HD;   // a key and a value tile
    float *D = SC_ARENA_FLOATS(&be->ws, (size_t)T * NH, "attention backward rowsums");
    float *tiles = SC_ARENA_FLOATS(&be->ws, (size_t)nt_max * per_thread, "attention backward tiles");
    if (!D || !tiles) { sc_arena_reset(&be->ws, mk); sc_arena_reset(&be->host, mh); return SC_ERR_MEM; }
    const bwd_args a = {.dq = dq, .dk = dk, .dv = dv, .D = D, .dout = dout, .out = out, .lse = lse, .q = q, .k = k, .v = v,
                        .q_start = q_start,
                        .qmap = {.n_seq = n_seq, .heads = NH, .q_start = q_start, .blk_start = blk_start},
                        .kmap = {.n_seq = n_seq, .heads = KVH, .q_start = q_start, .blk_start = blk_start},
                        .NH = NH, .KVH = KVH, .HD = HD, .scale = 1.0f / sqrtf((float)HD)};
    int nt = nt_max;
    ATTN_FOR_ITEMS(nt, blocks * NH, tiles, per_thread, backward_dq, &a);
    nt = team_size(blocks * KVH);
    ATTN_FOR_ITEMS(nt, blocks * KVH, tiles, per_thread, backward_dkv, &a);
    sc_arena_reset(&be->ws, mk);
    sc_arena_reset(&be->host, mh);
    return SC_OK;
}
