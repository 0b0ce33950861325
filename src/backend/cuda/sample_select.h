// sample_select.h — the serial parts of the CUDA backend's top-k / top-p sampler (kernels.cu,
// k_sample_sorted), as plain inline functions that compile as CUDA (__host__ __device__) and as
// C, so tests/test_sample_select.c can run the same algorithm on the host against the CPU
// backend's sampler (src/backend/cpu/kernels/sample.c), which is the reference.
//
// The CPU sampler sorts the candidates of a row by (scaled logit descending, id ascending),
// keeps the first k (top-k), sums their probabilities p = exp(x) in that order (double), keeps
// the smallest prefix whose normalised mass reaches top_p, re-sums that prefix in order and
// walks it until the running sum exceeds u * sum. The device does not sort the row: it
// emits the candidates in that same order in chunks of at most `cap`: each chunk is the next
// `cap` candidates after the last one emitted (a radix select on the order key finds the
// cap-th one; ties at the boundary go to the lower ids), sorted in shared memory. A phase
// walks the chunks from the first candidate in the CPU's order with the CPU's arithmetic
// (sc_ss_walk, one thread): phase 0 sums the k candidates (S_k, only when the nucleus is on
// and k fits one chunk), phase 1 finds `keep` and the sum of the kept prefix, phase 2 draws.
// Usually everything fits the first chunk (top-k <= cap, or a nucleus of fewer than cap
// tokens) and it is loaded once; a long nucleus (top-p 0.999 on a flat row) takes many chunks
// and each phase re-emits them: slower, never different.
//
// Where the device may differ from the CPU (a different token only when u lands within
// rounding of a boundary between two tokens' cumulative sums):
//  - p = exp(x) is computed in double and rounded to float here; the CPU calls glibc's expf
//    (correctly rounded in all but a tiny fraction of inputs), so a p may differ in its last bit;
//  - when the nucleus is on and k exceeds one chunk (top-p without top-k on a real vocabulary),
//    S_k is a block reduction in double (another order than the CPU's sorted loop: a relative
//    difference near 1e-16), which moves only the top_p boundary test.
// Every other sum is the CPU's: the same terms, in the same order, in double.
#ifndef STEERCLEAR_CUDA_SAMPLE_SELECT_H
#define STEERCLEAR_CUDA_SAMPLE_SELECT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define SC_SS_FN static __host__ __device__ __forceinline__
#else
#define SC_SS_FN static inline
#endif

#define SC_SS_CAP 2048          // candidates sorted at once in shared memory (a power of two)
#define SC_SS_DIGITS 256        // radix select: 8 bits per pass, 4 passes

// The scaled logit the CPU orders by: (l - max) / T as one float subtraction and one float
// product (no fused multiply-add can form), -0 made +0 (the CPU's comparisons see them equal).
SC_SS_FN float sc_ss_scaled(float l, float mx, float inv_t) {
    const float x = (l - mx) * inv_t;
    return x == 0.0f ? 0.0f : x;
}

// An unsigned key whose order is the float order of x (finite or infinite, not NaN); never 0.
SC_SS_FN uint32_t sc_ss_key(float x) {
    uint32_t b;
#ifdef __CUDA_ARCH__
    b = __float_as_uint(x);
#else
    memcpy(&b, &x, sizeof b);
#endif
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
SC_SS_FN float sc_ss_unkey(uint32_t k) {
    const uint32_t b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
#ifdef __CUDA_ARCH__
    return __uint_as_float(b);
#else
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
#endif
}
// The unnormalised probability of a candidate: exp(x) rounded to float once.
SC_SS_FN float sc_ss_prob(uint32_t key) { return (float)exp((double)sc_ss_unkey(key)); }

// a comes before b in the CPU's order: larger scaled logit first, then the lower id
SC_SS_FN int sc_ss_before(uint32_t ka, int32_t ia, uint32_t kb, int32_t ib) { return ka > kb || (ka == kb && ia < ib); }

// Whether candidate (k, id) comes after the cursor (the last candidate emitted; none when !has)
SC_SS_FN int sc_ss_after(int has, uint32_t kc, int32_t ic, uint32_t k, int32_t id) {
    return !has || k < kc || (k == kc && id > ic);
}

// One radix-select pass: hist[d] counts the candidates still in play whose current digit is d;
// the `remaining`-th largest (1-based) has the digit returned; *above gets the count in the
// digits above it.
SC_SS_FN int sc_ss_digit(const unsigned *hist, unsigned remaining, unsigned *above) {
    unsigned cum = 0;
    int d = SC_SS_DIGITS - 1;
    for (; d > 0; d--) {
        if (cum + hist[d] >= remaining) break;
        cum += hist[d];
    }
    *above = cum;
    return d;
}

// The walk over the candidates in the CPU's order (one thread; the chunks arrive in order).
typedef struct {
    // settings of the row
    int k;              // candidates after the top-k cut (V when off)
    int nucleus;        // top_p in (0, 1)
    float top_p;
    float u;            // the row's uniform draw
    int cap;            // candidates per chunk
    // progress
    int phase;          // 0: S_k, 1: keep, 2: the draw, 3: done
    int next_chunk;     // the chunk the walk needs next (candidates [next_chunk*cap, ...))
    int seen;           // candidates walked in this phase
    int keep;           // the nucleus: candidates kept
    double s_k;         // sum of the k candidates' p
    double acc, run;    // phase 1: running normalised mass and running sum; phase 2: running sum
    double target;      // phase 2: u * (sum of the kept prefix)
    int32_t first_id;   // the first candidate (the CPU's fallback when rounding leaves the target at the end)
    int32_t pick;       // the sampled id (phase 3)
} sc_ss_walk_state;

// Start a row; s_k: the block's sum of the k candidates' p when the nucleus is on and k > cap
// (the chunks would have to be walked twice for it), ignored otherwise.
SC_SS_FN void sc_ss_walk_init(sc_ss_walk_state *w, int k, float top_p, float u, int cap, double s_k) {
    memset(w, 0, sizeof *w);
    w->k = k;
    w->nucleus = top_p > 0 && top_p < 1.0f;
    w->top_p = top_p;
    w->u = u;
    w->cap = cap;
    w->keep = k;
    w->s_k = s_k;
    w->phase = w->nucleus && k <= cap ? 0 : 1;
    w->pick = -1;
}

// Candidates in the chunk the walk needs next (the selection asks for exactly that many).
SC_SS_FN int sc_ss_chunk_len(const sc_ss_walk_state *w) {
    const int left = w->k - w->next_chunk * w->cap;
    return left < w->cap ? left : w->cap;
}

// Walk chunk w->next_chunk: n candidates with probabilities p and ids id, in order. Sets
// next_chunk to the chunk needed next (0 when a phase ended: the next phase starts over).
SC_SS_FN void sc_ss_walk(sc_ss_walk_state *w, const float *p, const int32_t *id, int n) {
    if (w->next_chunk == 0 && n > 0) w->first_id = id[0];
    int i = 0;
    if (w->phase == 0) {   // the CPU's first sum over the k kept candidates
        for (; i < n && w->seen < w->k; i++, w->seen++) w->s_k += p[i];
        if (w->seen == w->k) { w->phase = 1; w->seen = 0; w->next_chunk = 0; return; }
    } else if (w->phase == 1) {   // the nucleus: the smallest prefix whose mass reaches top_p
        for (; i < n && w->seen < w->k; i++) {
            w->run += p[i];
            w->seen++;
            if (w->nucleus) {
                w->acc += p[i] / w->s_k;
                if (w->acc >= w->top_p) { w->keep = w->seen; break; }
            }
        }
        if (w->keep == w->seen || w->seen == w->k) {   // the CPU's re-sum of the kept prefix is this running sum
            w->keep = w->seen;
            w->target = (double)w->u * w->run;
            w->phase = 2;
            w->seen = 0;
            w->acc = 0;
            w->next_chunk = 0;
            return;
        }
    } else if (w->phase == 2) {   // the draw: the first candidate whose running sum exceeds u * sum
        for (; i < n && w->seen < w->keep; i++) {
            w->acc += p[i];
            w->seen++;
            if (w->acc > w->target) { w->pick = id[i]; w->phase = 3; return; }
        }
        if (w->seen == w->keep) { w->pick = w->first_id; w->phase = 3; return; }
    }
    w->next_chunk++;
}

#endif
