// arena.c — bump allocation over a few blocks with marks (see steerclear/arena.h).
#include "steerclear/arena.h"

#include <string.h>

void sc_arena_init(sc_arena *a, const char *name, void *ctx,
                   sc_status (*alloc)(void *ctx, size_t bytes, const char *what, void **out),
                   void (*free_fn)(void *ctx, void *p)) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->ctx = ctx;
    a->alloc = alloc;
    a->free = free_fn;
}

void sc_arena_release(sc_arena *a) {
    for (int i = 0; i < a->n_blocks; i++) a->free(a->ctx, a->block[i].base);
    a->n_blocks = 0;
    a->cur = 0;
    a->off = 0;
    a->in_use = 0;
}

size_t sc_arena_capacity(const sc_arena *a) {
    size_t n = 0;
    for (int i = 0; i < a->n_blocks; i++) n += a->block[i].cap;
    return n;
}

static size_t round_up(size_t n) { return (n + SC_ARENA_ALIGN - 1) / SC_ARENA_ALIGN * SC_ARENA_ALIGN; }

static sc_status add_block(sc_arena *a, size_t cap, const char *what) {
    if (a->n_blocks == SC_ARENA_MAX_BLOCKS)
        return sc_errorf(SC_ERR_INTERNAL, "%s: more than %d blocks needed for %s (the arena is not reset between steps?)",
                         a->name, SC_ARENA_MAX_BLOCKS, what);
    void *p = NULL;
    sc_status st = a->alloc(a->ctx, cap, what, &p);
    if (st) return sc_error_wrap(st, "%s: growing by %.1f MiB for %s: ", a->name, cap / 1048576.0, what);
    a->block[a->n_blocks].base = p;
    a->block[a->n_blocks].cap = cap;
    a->n_blocks++;
    a->n_grows++;
    return SC_OK;
}

sc_status sc_arena_reserve(sc_arena *a, size_t bytes) {
    bytes = round_up(bytes);
    for (int i = 0; i < a->n_blocks; i++)
        if (a->block[i].cap >= bytes) return SC_OK;
    if (a->in_use) return SC_OK;   // in the middle of a step: growth happens on demand
    sc_arena_release(a);
    return add_block(a, bytes, "the planned workspace");
}

void *sc_arena_alloc(sc_arena *a, size_t bytes, const char *what) {
    bytes = round_up(bytes ? bytes : 1);
    for (;;) {
        if (a->cur < a->n_blocks && a->block[a->cur].cap - a->off >= bytes) {
            void *p = a->block[a->cur].base + a->off;
            a->off += bytes;
            a->in_use += bytes;
            if (a->in_use > a->peak) a->peak = a->in_use;
            return p;
        }
        if (a->cur + 1 < a->n_blocks) { a->cur++; a->off = 0; continue; }
        // a new block at least as large as everything so far: the arena converges in a few steps
        size_t cap = sc_arena_capacity(a);
        if (cap < bytes) cap = bytes;
        if (add_block(a, cap, what)) return NULL;
        if (a->n_blocks > 1) { a->cur = a->n_blocks - 1; a->off = 0; }
    }
}
