// make_seeds.c — writes the seed corpus of fuzz_checkpoint: valid checkpoints of the
// configuration in fuzz_checkpoint_cfg.h (0, 1 and 2 of 2 steps done, searches 0 and 1), made
// with the library itself so they follow its current file format.
//   usage: fuzz_make_seeds OUT_DIR
#include "fuzz_checkpoint_cfg.h"

#include <stdio.h>
#include <stdlib.h>

static void fill_step(sc_search_state *s, int i) {
    sc_step_record *r = &s->steps[i];
    r->loss = -0.5 - i; r->kl = 0.25 + i; r->nll = 1.5; r->n_pos = 3 + i;
    size_t nA = sc_adapter_numel_A(s->adapter), nB = sc_adapter_numel_B(s->adapter);
    size_t g = 0;
    for (int j = 0; j < s->batch; j++) {
        r->prompt_idx[j] = 2 * i + j;
        r->gen_len[j] = (j + i) % (s->max_new + 1);   // 0 .. max_new
        for (int k = 0; k < r->gen_len[j]; k++) r->gen[g++] = 100 + 7 * k + j;
    }
    for (size_t k = 0; k < nA; k++) r->A[k] = 0.01f * (float)k - 0.05f * (float)i;
    for (size_t k = 0; k < nB; k++) r->B[k] = -0.02f * (float)k + 0.1f * (float)i;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]); return 2; }
    sc_backend *be = sc_backend_cpu_new();
    if (!be) { fprintf(stderr, "make_seeds: no CPU backend: %s\n", sc_last_error()); return 1; }
    sc_search_config cfg;
    fuzz_checkpoint_config(&cfg);
    int written = 0;
    for (int search = 0; search < 2; search++) {
        for (int done = 0; done <= 2; done++) {
            sc_search_state *s = NULL;
            if (sc_search_state_create(be, &cfg, search, FUZZ_CKPT_L, FUZZ_CKPT_C, &s) != SC_OK) {
                fprintf(stderr, "make_seeds: %s\n", sc_last_error());
                return 1;
            }
            if (done > s->steps_total) { sc_search_state_free(s); continue; }
            for (int i = 0; i < done; i++) fill_step(s, i);
            s->steps_done = done;
            char path[4096];
            snprintf(path, sizeof path, "%s/valid_search%d_done%d.ckpt", argv[1], search, done);
            if (sc_search_checkpoint_save(path, s) != SC_OK) {
                fprintf(stderr, "make_seeds: %s\n", sc_last_error());
                return 1;
            }
            // it must load back, or the seed is useless
            sc_search_state *back = NULL;
            if (sc_search_checkpoint_load(path, &cfg, be, FUZZ_CKPT_L, FUZZ_CKPT_C, &back) != SC_OK) {
                fprintf(stderr, "make_seeds: %s does not load back: %s\n", path, sc_last_error());
                return 1;
            }
            sc_search_state_free(back);
            sc_search_state_free(s);
            written++;
        }
    }
    sc_backend_free(be);
    printf("make_seeds: wrote %d checkpoints to %s\n", written, argv[1]);
    return 0;
}
