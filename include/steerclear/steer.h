// steer.h — steering: add scale * d_l to the output of block l (optionally only for blocks
// [first, last)). Several variants can share one batch: each sequence's batch tag picks its
// variant (-1 = unsteered); without tags every row uses variant 0.
#ifndef STEERCLEAR_STEER_H
#define STEERCLEAR_STEER_H

#include "steerclear/engine.h"

typedef struct {
    const float *directions;   // (L, C) one vector per block, unscaled (backend memory)
    float scale;
    int first, last;           // blocks that are steered; last = -1: up to L
} sc_steer_variant;

typedef struct {
    const sc_steer_variant *variants;
    int n_variants;
    int n_layers;
} sc_steer;

// A hook that applies `s` (which must outlive the hook's use).
sc_hook sc_steer_hook(const sc_steer *s);

#endif
