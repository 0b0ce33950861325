// test_sample_select.c — the algorithm of the CUDA backend's top-k / top-p sampler, run on the
// host, against the CPU backend's sampler (the reference). The kernel (kernels.cu,
// k_sample_sorted) emits a row's candidates in the CPU's order in chunks (radix select after a
// cursor, gather with ties by id, sort) and walks them with sc_ss_walk; here the same
// selection runs one element at a time, with the shared pieces of sample_select.h (order
// keys, digit choice, the walk), and chunk sizes of 3, 64 and the kernel's SC_SS_CAP so that
// rows cross many chunks. What it cannot check: the CUDA parallel code itself (atomics, the
// tile ranks, the bitonic sort); test_cuda_backend does, on a GPU.
//
// With expf as the CPU's probability (SC_SS_PROB_EXPF) every id must equal the CPU's, except
// where the nucleus's mass is a sum in another order (k above one chunk), which may move the
// top_p boundary within rounding; with the kernel's own exp (double, rounded once) a
// difference is allowed only within rounding of a boundary (sample_near_boundary), and counted.
#include "testutil.h"
#include "sample_ref.h"
#include "steerclear/rng.h"

#include "../src/backend/cuda/sample_select.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct { uint32_t key; int32_t id; } emu_cand;

static int emu_desc(const void *a, const void *b) {
    const emu_cand *p = a, *q = b;
    return sc_ss_before(p->key, p->id, q->key, q->id) ? -1 : sc_ss_before(q->key, q->id, p->key, p->id) ? 1 : 0;
}

static int g_expf;   // 1: probabilities by expf (the CPU's), 0: the kernel's sc_ss_prob
static float emu_prob(uint32_t key) { return g_expf ? expf(sc_ss_unkey(key)) : sc_ss_prob(key); }

// the kernel's ss_select, one element at a time
static void emu_select(const float *l, int V, float mx, float inv_t, int has, uint32_t kc, int32_t ic, unsigned m, uint32_t *thr,
                       unsigned *need_eq) {
    uint32_t prefix = 0;
    unsigned remaining = m, hist[SC_SS_DIGITS];
    for (int shift = 24; shift >= 0; shift -= 8) {
        memset(hist, 0, sizeof hist);
        for (int x = 0; x < V; x++) {
            const uint32_t k = sc_ss_key(sc_ss_scaled(l[x], mx, inv_t));
            if (!sc_ss_after(has, kc, ic, k, x)) continue;
            if (shift < 24 && (k >> (shift + 8)) != (prefix >> (shift + 8))) continue;
            hist[(k >> shift) & (SC_SS_DIGITS - 1)]++;
        }
        if (shift == 24) {
            unsigned tot = 0;
            for (int d = 0; d < SC_SS_DIGITS; d++) tot += hist[d];
            if (tot <= m) { *thr = 0; *need_eq = 0; return; }
        }
        unsigned above;
        const int d = sc_ss_digit(hist, remaining, &above);
        prefix |= (uint32_t)d << shift;
        remaining -= above;
    }
    *thr = prefix;
    *need_eq = remaining;
}

// the kernel's row: -1 for a row that is not finite, -2 when a check of the kernel would fail
static int32_t emu_row(const float *l, int V, const sc_sampling *o, float u, int cap, emu_cand *c, float *p, int32_t *ids) {
    if (o->vocab_limit > 0 && o->vocab_limit < V) V = o->vocab_limit;
    int best = 0, fin = 1;
    for (int x = 0; x < V; x++) {
        fin &= isfinite(l[x]);
        if (l[x] > l[best]) best = x;
    }
    if (!fin) return -1;
    const float inv_t = 1.0f / (o->temperature > 0 ? o->temperature : 1.0f), mx = l[best];
    const int k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    const int nucleus = o->top_p > 0 && o->top_p < 1.0f;
    double s_k = 0;
    if (nucleus && k > cap) {
        uint32_t thr;
        unsigned need_eq;
        emu_select(l, V, mx, inv_t, 0, 0, 0, (unsigned)k, &thr, &need_eq);
        for (int x = 0; x < V; x++) {
            const uint32_t key = sc_ss_key(sc_ss_scaled(l[x], mx, inv_t));
            if (key > thr) s_k += emu_prob(key);
        }
        if (need_eq) s_k += (double)need_eq * emu_prob(thr);
    }
    sc_ss_walk_state w;
    sc_ss_walk_init(&w, k, o->top_p, u, cap, s_k);
    int loaded = -1, n = 0;
    uint32_t kc = 0;
    int32_t ic = 0;
    const int max_steps = 3 * ((k + cap - 1) / cap) + 3;
    for (int step = 0;; step++) {
        const int j = w.next_chunk;
        if (step >= max_steps || (j > 0 && loaded != j && loaded != j - 1)) return -2;
        if (loaded != j) {
            const unsigned m = (unsigned)sc_ss_chunk_len(&w);
            uint32_t thr;
            unsigned need_eq, rank = 0;
            emu_select(l, V, mx, inv_t, j > 0, kc, ic, m, &thr, &need_eq);
            n = 0;
            for (int x = 0; x < V; x++) {   // the gather, in id order
                const uint32_t key = sc_ss_key(sc_ss_scaled(l[x], mx, inv_t));
                if (!sc_ss_after(j > 0, kc, ic, key, x)) continue;
                if (key > thr || (key == thr && rank++ < need_eq)) {
                    if (n >= cap) return -2;
                    c[n].key = key;
                    c[n++].id = x;
                }
            }
            if ((unsigned)n != m) return -2;
            qsort(c, (size_t)n, sizeof(emu_cand), emu_desc);
            for (int i = 0; i < n; i++) { p[i] = emu_prob(c[i].key); ids[i] = c[i].id; }
            loaded = j;
            kc = c[n - 1].key;
            ic = c[n - 1].id;
        }
        sc_ss_walk(&w, p, ids, n);
        if (w.phase == 3) return w.pick;
    }
}

typedef struct { long rows, same, near; } tally;

// one batch of rows [n, V] under o, every chunk size; exact: every id must be the CPU's
static void run_case(sc_backend *cpu, const char *what, const float *z, int n, int V, const sc_sampling *o, const float *u, int exact,
                     tally *t) {
    static const int caps[] = {3, 64, SC_SS_CAP};
    int32_t *cid = malloc(sizeof(int32_t) * (size_t)n);
    float *cz = malloc(sizeof(float) * (size_t)n * V);
    memcpy(cz, z, sizeof(float) * (size_t)n * V);
    const sc_status st = cpu->op->sample(cpu, cz, n, V, o, u, cid);
    emu_cand *c = malloc(sizeof(emu_cand) * SC_SS_CAP);
    float *p = malloc(sizeof(float) * SC_SS_CAP);
    int32_t *ids = malloc(sizeof(int32_t) * SC_SS_CAP);
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        const int cap = caps[ci];
        // small chunks over a long nucleus (no top-k: k = V) cost V * 15 per chunk: only on small rows
        const int long_walk = o->top_k == 0 || o->top_k > 1000;
        if (cap < SC_SS_CAP && ((long_walk && V > 1001) || (cap == 3 && long_walk && V > 7) || V > 5000)) continue;
        for (int i = 0; i < n; i++) {
            const float *row = z + (size_t)i * V;
            const int32_t g = emu_row(row, V, o, u[i], cap, c, p, ids);
            t->rows++;
            if (st != SC_OK && cid[i] == -1) { CHECKF(g == -1, "%s cap %d row %d: a row the CPU finds not finite gave %d", what, cap, i, g); continue; }
            CHECKF(g >= 0, "%s cap %d row %d: the emulated kernel failed (%d)", what, cap, i, g);
            if (g == cid[i]) { t->same++; continue; }
            const int k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
            const int tree_sum = o->top_p > 0 && o->top_p < 1.0f && k > cap;
            const int near = sample_near_boundary(row, V, o, u[i], g, cid[i], 1e-5);
            CHECKF((!exact || tree_sum) && near, "%s cap %d row %d: cpu %d, emulated kernel %d (not within rounding of a boundary)", what, cap,
                   i, cid[i], g);
            t->near++;
        }
    }
    free(cid); free(cz); free(c); free(p); free(ids);
}

static uint64_t g_stream = 1;

// n rows of V logits of a kind (sample_ref_shape)
static float *logits(int n, int V, int kind) {
    float *z = malloc(sizeof(float) * (size_t)n * V);
    sc_rng_normal(99, g_stream++, 0, z, (size_t)n * V);
    sample_ref_shape(z, n, V, kind);
    return z;
}

int main(void) {
    sc_backend *cpu = sc_test_backend();
    const int slow = getenv("SC_SANITIZE") && *getenv("SC_SANITIZE");
    const sc_sampling modes[] = {
        {.temperature = 1.0f, .top_k = 1, .top_p = 1},       {.temperature = 1.0f, .top_k = 5, .top_p = 1},
        {.temperature = 0.7f, .top_k = 100, .top_p = 1},     {.temperature = 1.0f, .top_k = 3000, .top_p = 1},
        {.temperature = 1.0f, .top_p = 0.9f},                {.temperature = 1.3f, .top_p = 0.95f},
        {.temperature = 1.0f, .top_p = 0.999f},              {.temperature = 0.8f, .top_k = 50, .top_p = 0.9f},
        {.temperature = 1.0f, .top_k = 3000, .top_p = 0.95f}, {.temperature = 1.0f, .top_k = 40, .top_p = 0.9f, .vocab_limit = 600},
    };
    static const int shapes[][2] = {{5, 7}, {9, 1001}, {4, 4099}, {2, 151936}};
    tally t[2] = {{0}};
    char what[160];
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], V = shapes[si][1];
        for (int kind = 0; kind < 5; kind++) {
            if (V > 5000 && (kind != 1 || slow)) continue;   // a real vocabulary: peaked rows (a flat one walks ~70 chunks per phase)
            const clock_t t0 = clock();
            float *z = logits(n, V, kind), *u = malloc(sizeof(float) * n);
            for (int i = 0; i < n; i++) u[i] = sc_rng_uniform(7, g_stream, (uint64_t)i);
            g_stream++;
            for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++) {
                const int k = modes[mi].top_k > 0 && modes[mi].top_k < V ? modes[mi].top_k : V;
                if (k == V && !(modes[mi].top_p > 0 && modes[mi].top_p < 1.0f)) continue;   // the CPU does not sort: plain sampling
                for (g_expf = 1; g_expf >= 0; g_expf--) {
                    snprintf(what, sizeof what, "V=%d kind %d mode %zu (k %d, p %g, T %g, limit %d) %s", V, kind, mi, modes[mi].top_k,
                             (double)modes[mi].top_p, (double)modes[mi].temperature, modes[mi].vocab_limit, g_expf ? "expf" : "exp");
                    run_case(cpu, what, z, n, V, &modes[mi], u, g_expf, &t[g_expf]);
                }
            }
            free(z); free(u);
            if (getenv("SC_TEST_VERBOSE")) printf("V=%d kind %d: %.2f s\n", V, kind, (double)(clock() - t0) / CLOCKS_PER_SEC);
        }
    }
    printf("test_sample_select: with expf: %ld rows, %ld equal to the CPU's, %ld within rounding of a boundary\n", t[1].rows, t[1].same, t[1].near);
    printf("test_sample_select: with the kernel's exp: %ld rows, %ld equal to the CPU's, %ld within rounding of a boundary\n", t[0].rows,
           t[0].same, t[0].near);
    CHECKF(t[0].near * 100 <= t[0].rows, "more than 1%% of the rows differ from the CPU's (%ld of %ld)", t[0].near, t[0].rows);
    CHECKF(t[1].near * 1000 <= t[1].rows, "more than 0.1%% of the rows differ with the CPU's expf (%ld of %ld)", t[1].near, t[1].rows);
    sc_backend_free(cpu);
    return sc_test_finish("test_sample_select");
}
