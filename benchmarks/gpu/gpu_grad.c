// gpu_grad.c — the divergence loss of a shared adapter and its gradients through a model
// directory on a chosen device, for comparing with Hugging Face transformers (hf_grad.py):
//   gpu_grad --model DIR --ids IDS.txt --out DIR [--device cpu|cuda] [--rank 2] [--scaling 2]
//            [--alpha 1] [--beta 0.3] [--seed 9]
// The adapter: A ~ N(0,1) (sc_adapter_init at the seed), B = 0.1 N(0,1) (so gradients reach A).
// Rows 0..T-2 are counted, row t predicting ids[t+1]. Writes A.npy, B.npy, dA.npy, dB.npy and
// loss.json {"loss", "kl", "nll", "n", "alpha", "beta", "scaling", "rank"} into the out folder.
#include "steerclear/adapter.h"
#include "steerclear/loss.h"
#include "steerclear/npy.h"
#include "steerclear/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_ids(const char *path, int32_t *ids, int cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int T = 0, ch;
    long v = -1;
    while ((ch = fgetc(f)) != EOF) {
        if (ch >= '0' && ch <= '9') v = (v < 0 ? 0 : v * 10) + (ch - '0');
        else if (v >= 0) { if (T == cap) break; ids[T++] = (int32_t)v; v = -1; }
    }
    if (v >= 0 && T < cap) ids[T++] = (int32_t)v;
    fclose(f);
    return T;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *ids_path = NULL, *out = NULL, *device = "cuda";
    int rank = 2;
    float scaling = 2.0f, alpha = 1.0f, beta = 0.3f;
    uint64_t seed = 9;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--ids")) ids_path = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!strcmp(argv[i], "--rank")) rank = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--scaling")) scaling = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--alpha")) alpha = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--beta")) beta = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else { fprintf(stderr, "gpu_grad: unknown option %s\n", argv[i]); return 2; }
    }
    if (!dir || !ids_path || !out || rank < 1) {
        fprintf(stderr, "usage: gpu_grad --model DIR --ids IDS.txt --out DIR [--device cpu|cuda] [--rank R] [--scaling S] [--alpha A] [--beta B] [--seed N]\n");
        return 2;
    }
    int32_t ids[4096];
    const int T = read_ids(ids_path, ids, 4096);
    if (T < 2) { fprintf(stderr, "gpu_grad: %s: need at least 2 token ids\n", ids_path); return 1; }
    sc_backend_opts bo;
    sc_backend_opts_default(&bo);
    sc_backend *be = NULL;
    sc_model *m = NULL;
    if (sc_device_parse(device, "--device", &bo.device) || sc_backend_create(&bo, &be) || sc_model_load(dir, 0, -1, be, &m)) {
        fprintf(stderr, "gpu_grad: %s\n", sc_last_error());
        return 1;
    }
    const int C = m->cfg.hidden, L = m->cfg.n_layers, n = T - 1;
    sc_adapter *ad = NULL;
    sc_activations *act = NULL;
    float *hp = NULL, *hq = NULL, *dh = NULL;
    int *rows = malloc(sizeof(int) * (size_t)n);
    float *Bh = malloc(sizeof(float) * (size_t)rank * C), *Ah = malloc(sizeof(float) * (size_t)C * rank);
    float *dAh = malloc(sizeof(float) * (size_t)C * rank), *dBh = malloc(sizeof(float) * (size_t)rank * C);
    sc_status st = rows && Bh && Ah && dAh && dBh ? SC_OK : SC_ERR_MEM;
    for (int i = 0; !st && i < n; i++) rows[i] = i;
    if (!st) st = sc_adapter_create(be, SC_ADAPTER_SHARED, L, C, rank, scaling, &ad);
    if (!st) st = sc_adapter_init(ad, seed);
    if (!st) {
        sc_rng_normal(seed + 1, 0, 0, Bh, (size_t)rank * C);
        for (int i = 0; i < rank * C; i++) Bh[i] *= 0.1f;
        st = sc_adapter_set(ad, NULL, Bh);
    }
    if (!st) st = sc_adapter_get(ad, Ah, NULL);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)T * C, "hidden P", &hp);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)T * C, "hidden Q", &hq);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)T * C, "dhidden", &dh);
    if (!st) st = be->op->memset(be, dh, 0, sizeof(float) * (size_t)T * C);
    if (!st) st = sc_activations_create(m, be, T, 1, 0, &act);
    const int seq[2] = {0, T};
    const sc_batch batch = {.n_seq = 1, .seq_start = seq};
    const sc_hook hook = ad ? sc_adapter_hook(ad) : (sc_hook){0};
    sc_loss_stats ls = {0};
    if (!st) st = sc_forward(m, be, &batch, ids, hp, NULL, NULL, NULL);
    if (!st) st = sc_forward(m, be, &batch, ids, hq, NULL, &hook, act);
    if (!st) st = sc_divergence_loss(m, be, hp, hq, rows, ids + 1, n, alpha, beta, 16, dh, &ls);
    if (!st) st = sc_adapter_zero_grad(ad);
    if (!st) st = sc_backward(m, be, act, &hook, dh);
    if (!st) st = be->op->download(be, dAh, ad->dA, sizeof(float) * (size_t)C * rank);
    if (!st) st = be->op->download(be, dBh, ad->dB, sizeof(float) * (size_t)rank * C);
    char path[4200];
    const int64_t sa[2] = {C, rank}, sb[2] = {rank, C};
    if (!st) { snprintf(path, sizeof path, "%s/A.npy", out); st = sc_npy_write_f32(path, Ah, 2, sa); }
    if (!st) { snprintf(path, sizeof path, "%s/B.npy", out); st = sc_npy_write_f32(path, Bh, 2, sb); }
    if (!st) { snprintf(path, sizeof path, "%s/dA.npy", out); st = sc_npy_write_f32(path, dAh, 2, sa); }
    if (!st) { snprintf(path, sizeof path, "%s/dB.npy", out); st = sc_npy_write_f32(path, dBh, 2, sb); }
    if (!st) {
        snprintf(path, sizeof path, "%s/loss.json", out);
        FILE *f = fopen(path, "w");
        if (!f) st = sc_errorf(SC_ERR_IO, "%s: cannot write", path);
        else {
            fprintf(f, "{\"loss\": %.17g, \"kl\": %.17g, \"nll\": %.17g, \"n\": %d, \"alpha\": %g, \"beta\": %g, \"scaling\": %g, \"rank\": %d, \"device\": \"%s\"}\n",
                    ls.loss, ls.kl, ls.nll, n, alpha, beta, scaling, rank, device);
            fclose(f);
        }
    }
    if (st) fprintf(stderr, "gpu_grad: %s\n", sc_last_error());
    else printf("gpu_grad: %s on %s: loss %.6f (KL %.6f, NLL %.6f) over %d rows -> %s\n", dir, device, ls.loss, ls.kl, ls.nll, n, out);
    sc_activations_free(act);
    be->op->free(be, hp); be->op->free(be, hq); be->op->free(be, dh);
    sc_adapter_free(ad);
    free(rows); free(Ah); free(Bh); free(dAh); free(dBh);
    sc_model_free(m);
    sc_backend_free(be);
    return st ? 1 : 0;
}
