// sample.c — CPU token sampling per row of logits: greedy, temperature, top-k (a min-heap of
// the k best, O(V log k)), top-p (the smallest prefix of the sorted candidates whose mass
// reaches p), restricted to ids below vocab_limit. Rows in parallel; each thread's candidate
// list comes from the workspace. Ties between equal logits go to the lower id.
#include "../cpu_kernels.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

typedef struct { float p; int32_t id; } cand;

static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;   // ties: lower id first (deterministic)
}

// The sampled id, or -1 when the row holds NaN or infinite logits (weights or an adapter gone
// bad: drawing "token 0" from them would hide it).
static int32_t sample_row(float *logits, int V, const sc_sampling *o, float u, cand *c) {
    if (o->vocab_limit > 0 && o->vocab_limit < V) V = o->vocab_limit;
    int32_t best = 0;
    int finite = 1;
    for (int v = 0; v < V; v++) {
        finite &= isfinite(logits[v]);
        if (logits[v] > logits[best]) best = v;
    }
    if (!finite) return -1;
    if (o->greedy) return best;
    const float inv_t = 1.0f / (o->temperature > 0 ? o->temperature : 1.0f);
    const float mx = logits[best];
    int k = (o->top_k > 0 && o->top_k < V) ? o->top_k : V;
    int use_sort = k < V || (o->top_p > 0 && o->top_p < 1.0f);
    if (!use_sort) {   // plain softmax sampling over the whole vocabulary
        double sum = 0;
        for (int v = 0; v < V; v++) { logits[v] = expf((logits[v] - mx) * inv_t); sum += logits[v]; }
        double target = u * sum, acc = 0;
        for (int v = 0; v < V; v++) { acc += logits[v]; if (acc > target) return v; }
        return best;
    }
    if (k < V) {
        // the k best by a min-heap (root = worst kept), then sort only those
        for (int v = 0; v < V; v++) {
            cand x = {(logits[v] - mx) * inv_t, v};
            if (v < k) {
                int i = v;
                c[i] = x;
                while (i > 0 && cand_desc(&c[(i - 1) / 2], &c[i]) < 0) { cand t = c[i]; c[i] = c[(i - 1) / 2]; c[(i - 1) / 2] = t; i = (i - 1) / 2; }
            } else if (cand_desc(&x, &c[0]) < 0) {   // better than the worst kept
                c[0] = x;
                int i = 0;
                for (;;) {
                    int l = 2 * i + 1, r = l + 1, w = i;
                    if (l < k && cand_desc(&c[l], &c[w]) > 0) w = l;
                    if (r < k && cand_desc(&c[r], &c[w]) > 0) w = r;
                    if (w == i) break;
                    cand t = c[i]; c[i] = c[w]; c[w] = t; i = w;
                }
            }
        }
        qsort(c, (size_t)k, sizeof(cand), cand_desc);
    } else {
        for (int v = 0; v < V; v++) { c[v].p = (logits[v] - mx) * inv_t; c[v].id = v; }
        qsort(c, (size_t)V, sizeof(cand), cand_desc);   // descending scaled logits
    }
    double sum = 0;
    for (int i = 0; i < k; i++) { c[i].p = expf(c[i].p); sum += c[i].p; }
    int keep = k;
    if (o->top_p > 0 && o->top_p < 1.0f) {   // smallest prefix whose mass reaches top_p
        double acc = 0;
        for (int i = 0; i < k; i++) {
            acc += c[i].p / sum;
            if (acc >= o->top_p) { keep = i + 1; break; }
        }
        sum = 0;
        for (int i = 0; i < keep; i++) sum += c[i].p;
    }
    double target = u * sum, acc = 0;
    int32_t pick = c[0].id;
    for (int i = 0; i < keep; i++) { acc += c[i].p; if (acc > target) { pick = c[i].id; break; } }
    return pick;
}

sc_status SC_CPU_FN(sample)(sc_backend *be, float *logits, int n, int V, const sc_sampling *s, const float *u, int32_t *ids) {
    if (n <= 0) return SC_OK;
    // every parallel region of the backend uses the same team size, so libgomp reuses its team
    const int nt = n > 1 ? omp_get_max_threads() : 1;
    sc_arena_mark mk = sc_arena_mark_get(&be->ws);
    cand *scratch = sc_arena_alloc(&be->ws, sizeof(cand) * (size_t)nt * (size_t)V, "sampling candidates");
    if (!scratch) return SC_ERR_MEM;
    if (nt == 1) {
        for (int i = 0; i < n; i++) ids[i] = sample_row(logits + (size_t)i * V, V, s, u[i], scratch);
    } else {
        #pragma omp parallel num_threads(nt)
        {
            cand *c = scratch + (size_t)omp_get_thread_num() * V;
            #pragma omp for schedule(dynamic, 1)
            for (int i = 0; i < n; i++) ids[i] = sample_row(logits + (size_t)i * V, V, s, u[i], c);
        }
    }
    sc_arena_reset(&be->ws, mk);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0)
            return sc_errorf(SC_ERR_NUMERIC, "sampling: row %d of the logits holds NaN or infinite values: the model's weights, or an adapter "
                             "or steering vector added to them, are not finite (check the model files; for an adapter, lower lr)", i);
    return SC_OK;
}
