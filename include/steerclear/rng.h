// rng.h — counter-based random numbers (Philox-4x32-10).
//
// Every draw is a pure function of (seed, stream, counter), so any rank, backend, batch
// size or batch order draws the same numbers for the same logical item: e.g. the token
// sampled for sequence `prompt_id` at position `pos` uses stream = prompt_id, counter = pos.
#ifndef STEERCLEAR_RNG_H
#define STEERCLEAR_RNG_H

#include <stddef.h>
#include <stdint.h>

// Four 32-bit random words for (seed, stream, counter).
void sc_philox4x32(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]);
// Uniform float in [0, 1) from (seed, stream, counter) (uses the first word, 24 bits).
float sc_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);
// Fill out[0..n) with N(0,1) samples; element i uses counter (counter0 + i/2) (Box-Muller pairs).
void sc_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter0, float *out, size_t n);
// Mix several 64-bit values into one derived seed (for per-search / per-purpose seeds).
uint64_t sc_seed_mix(uint64_t a, uint64_t b);

#endif
