// arena.h — scratch memory handed out by bumping a cursor through a few large blocks, and
// given back all at once by returning to a mark (a stack of frames: every op or pass takes a
// mark, allocates what it needs, and resets to the mark before it returns).
//
// The blocks come from an allocator the owner chooses (a backend's device memory, or the
// host heap) and stay until the arena is freed: once a run has gone through its largest
// step, the same sequence of requests finds the same room and nothing is allocated again
// (the steady state of llama2.c's RunState, without sizing every buffer by hand).
// sc_arena_reserve sizes the first block from a plan so that even the first step usually
// needs one block. Not thread-safe: one arena per thread of control (a backend context).
#ifndef STEERCLEAR_ARENA_H
#define STEERCLEAR_ARENA_H

#include "steerclear/core.h"

#define SC_ARENA_MAX_BLOCKS 32
#define SC_ARENA_ALIGN 64

typedef struct {
    // Allocates `bytes` (64-byte aligned) into *out, or returns an error status with a message.
    sc_status (*alloc)(void *ctx, size_t bytes, const char *what, void **out);
    void (*free)(void *ctx, void *p);
    void *ctx;
    const char *name;                        // "CPU workspace", ... (for messages)
    struct { char *base; size_t cap; } block[SC_ARENA_MAX_BLOCKS];
    int n_blocks;
    int cur;                                 // block the cursor is in
    size_t off;                              // cursor within it
    size_t in_use, peak;                     // bytes handed out now / at most (since creation)
    uint64_t n_grows;                        // blocks allocated so far
} sc_arena;

typedef struct { int cur; size_t off, in_use; } sc_arena_mark;

void sc_arena_init(sc_arena *a, const char *name, void *ctx,
                   sc_status (*alloc)(void *ctx, size_t bytes, const char *what, void **out),
                   void (*free_fn)(void *ctx, void *p));
// Free every block (the arena can be used again afterwards).
void sc_arena_release(sc_arena *a);
// Make sure at least `bytes` are available in one block while nothing is in use (blocks that
// are too small are given back first). Call before the first step with the planned size.
sc_status sc_arena_reserve(sc_arena *a, size_t bytes);
// `bytes` of scratch (64-byte aligned; not zeroed). NULL + an error naming `what` when the
// allocator fails.
void *sc_arena_alloc(sc_arena *a, size_t bytes, const char *what);
static inline sc_arena_mark sc_arena_mark_get(const sc_arena *a) { sc_arena_mark m = {a->cur, a->off, a->in_use}; return m; }
static inline void sc_arena_reset(sc_arena *a, sc_arena_mark m) { a->cur = m.cur; a->off = m.off; a->in_use = m.in_use; }
// Bytes held in blocks.
size_t sc_arena_capacity(const sc_arena *a);

// Typed helpers: n elements.
#define SC_ARENA_FLOATS(a, n, what) ((float *)sc_arena_alloc((a), sizeof(float) * (size_t)(n), (what)))
#define SC_ARENA_INTS(a, n, what) ((int *)sc_arena_alloc((a), sizeof(int) * (size_t)(n), (what)))

#endif
