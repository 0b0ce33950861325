// bench_peak.c — the arithmetic peaks of this machine's cores, measured: every thread
// (OMP_NUM_THREADS) runs a loop of independent multiply-adds on registers, for each instruction
// path the CPU has: AVX2 FMA (8 floats), AVX-512 FMA (16 floats), AVX-512 BF16 dot products
// (vdpbf16ps: 16 floats, each the sum of two BF16 products). Prints JSON {path: GFLOP/s}
// (a multiply-add counts 2 flops); a path the CPU lacks is left out. scripts/bench.sh prints
// each benchmark's GFLOP/s as a share of these. Each thread's rate is taken over its own CPU
// time (CLOCK_THREAD_CPUTIME_ID) and the threads' rates added: on a machine shared with other
// work that is what the cores do while this program has them (the wall-clock rate is printed
// too, as "<path>_wall").
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define ITERS 40000000L   // ITERS / 4 per thread and repetition: about 0.1-0.2 s
#define NACC 12   // independent chains (AVX2: 16 registers): enough to cover the FMA latency on two pipes
#define NACC512 24   // AVX-512 (32 registers): vdpbf16ps has a longer latency

__attribute__((target("avx2,fma"))) static float run_avx2(long iters) {
    __m256 acc[NACC], m = _mm256_set1_ps(1.0000001f), a = _mm256_set1_ps(1e-7f);
    _Pragma("GCC unroll 32") for (int i = 0; i < NACC; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        _Pragma("GCC unroll 32") for (int i = 0; i < NACC; i++) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    __m256 s = acc[0];
    _Pragma("GCC unroll 32") for (int i = 1; i < NACC; i++) s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

__attribute__((target("avx512f"))) static float run_avx512(long iters) {
    __m512 acc[NACC512], m = _mm512_set1_ps(1.0000001f), a = _mm512_set1_ps(1e-7f);
    _Pragma("GCC unroll 32") for (int i = 0; i < NACC512; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        _Pragma("GCC unroll 32") for (int i = 0; i < NACC512; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
    __m512 s = acc[0];
    _Pragma("GCC unroll 32") for (int i = 1; i < NACC512; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bf16"))) static float run_bf16(long iters) {
    __m512 acc[NACC512];
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);   // 1.0, ~6e-8
    _Pragma("GCC unroll 32") for (int i = 0; i < NACC512; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        _Pragma("GCC unroll 32") for (int i = 0; i < NACC512; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
    __m512 s = acc[0];
    _Pragma("GCC unroll 32") for (int i = 1; i < NACC512; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

// GFLOP/s of fn on every thread at once, best of 3 (flops_per_instr: per inner instruction):
// the sum of the threads' rates over their CPU time, and the wall-clock rate.
static void measure(const char *name, float (*fn)(long), int nacc, double flops_per_instr) {
    const int nt = omp_get_max_threads();
    volatile float sink = 0;
    fn(ITERS / 20);   // warm up (clocks, AVX-512 license)
    double best = 0, best_wall = 0;
    const double flops = (double)(ITERS / 4) * nacc * flops_per_instr;
    for (int r = 0; r < 3; r++) {
        double rate = 0, t0 = clock_s(CLOCK_MONOTONIC);
        #pragma omp parallel num_threads(nt) reduction(+ : rate)
        {
            double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
            float v = fn(ITERS / 4);
            rate += flops / (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) / 1e9;
            #pragma omp atomic
            sink += v;
        }
        double wall = nt * flops / (clock_s(CLOCK_MONOTONIC) - t0) / 1e9;
        if (rate > best) best = rate;
        if (wall > best_wall) best_wall = wall;
    }
    (void)sink;
    printf(", \"%s\": %.1f, \"%s_wall\": %.1f", name, best, name, best_wall);
}
#endif

int main(void) {
    printf("{\"threads\": %d", omp_get_max_threads());
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) measure("avx2_fma", run_avx2, NACC, 16);
    if (__builtin_cpu_supports("avx512f")) measure("avx512_fma", run_avx512, NACC512, 32);
    if (__builtin_cpu_supports("avx512bf16")) measure("avx512_bf16_dot", run_bf16, NACC512, 64);
#endif
    printf("}\n");
    return 0;
}
