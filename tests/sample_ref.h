// sample_ref.h — for the sampling tests that compare another sampler with the CPU backend's
// (test_sample_select.c, test_cuda_backend.c): whether two different ids drawn from the same
// row and uniform are a legitimate disagreement, i.e. the draw (or the nucleus's top_p test)
// lies within rounding of a boundary. Recomputes the CPU sampler's maths with a plain full sort.
#ifndef STEERCLEAR_TEST_SAMPLE_REF_H
#define STEERCLEAR_TEST_SAMPLE_REF_H

#include "steerclear/backend.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

// Shape n rows of V standard normals z in place into a kind of logits row: 0 normal (scale 2),
// 1 peaked (scale 8), 2 flat (scale 0.02), 3 heavy ties (multiples of 1/4, -0 next to +0),
// 4 normal with a NaN in row n/2 and +inf in the last row (when n > 2).
static void sample_ref_shape(float *z, int n, int V, int kind) {
    const float scale[] = {2.0f, 8.0f, 0.02f, 2.0f, 2.0f};
    for (size_t i = 0; i < (size_t)n * V; i++) {
        z[i] *= scale[kind];
        if (kind == 3) z[i] = roundf(z[i] * 4.0f) / 4.0f;
        if (kind == 3 && z[i] == 0.0f && (i & 1)) z[i] = -0.0f;
    }
    if (kind == 4) {
        z[(size_t)(n / 2) * V + (size_t)(V / 3)] = NAN;
        if (n > 2) z[(size_t)(n - 1) * V + 1] = INFINITY;
    }
}

typedef struct { float x; int32_t id; } sr_cand;

static int sr_desc(const void *a, const void *b) {
    const sr_cand *p = a, *q = b;
    if (p->x != q->x) return p->x < q->x ? 1 : -1;
    return p->id < q->id ? -1 : p->id > q->id;
}

// 1 when ids a and b may both come out of row `logits` [V] with uniform u under o: their
// positions in the CPU's order are neighbours within the kept prefix and u * sum is within
// tol * sum of the cumulative sum between them, or the nucleus's running mass passes within
// tol of top_p near its end (then the kept prefix itself may differ by one).
static int sample_near_boundary(const float *logits, int V, const sc_sampling *o, float u, int32_t a, int32_t b, double tol) {
    if (o->vocab_limit > 0 && o->vocab_limit < V) V = o->vocab_limit;
    if (a < 0 || b < 0 || a >= V || b >= V || a == b) return 0;
    int best = 0;
    for (int v = 0; v < V; v++) if (logits[v] > logits[best]) best = v;
    const float inv_t = 1.0f / (o->temperature > 0 ? o->temperature : 1.0f), mx = logits[best];
    sr_cand *c = malloc(sizeof(sr_cand) * (size_t)V);
    double *cum = malloc(sizeof(double) * (size_t)V);
    if (!c || !cum) { free(c); free(cum); return 0; }
    for (int v = 0; v < V; v++) { c[v].x = (logits[v] - mx) * inv_t; c[v].id = v; }
    qsort(c, (size_t)V, sizeof(sr_cand), sr_desc);
    const int k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    double s = 0;
    for (int i = 0; i < k; i++) { s += expf(c[i].x); cum[i] = s; }
    int keep = k, near = 0;
    if (o->top_p > 0 && o->top_p < 1.0f) {
        for (int i = 0; i < k; i++) {
            const double m = cum[i] / s;
            if (fabs(m - o->top_p) <= tol) near = 1;
            if (m >= o->top_p) { keep = i + 1; break; }
        }
    }
    int pa = -1, pb = -1;
    for (int i = 0; i < keep + 1 && i < k; i++) {
        if (c[i].id == a) pa = i;
        if (c[i].id == b) pb = i;
    }
    if (!near && pa >= 0 && pb >= 0 && abs(pa - pb) == 1) {
        const int lo = pa < pb ? pa : pb;
        const double S = cum[keep - 1];
        near = fabs((double)u * S - cum[lo]) <= tol * S;
    }
    free(c);
    free(cum);
    return near;
}

#endif
