// gpu_logits.c — logits of one sequence of token ids through a model directory on a chosen
// device, written as float32 .npy [T, V] (the GPU check's counterpart of `steerclear logits`,
// built without the tokenizer and the libraries the full program links).
//   gpu_logits --model DIR --ids IDS.txt --out F.npy [--device cpu|cuda]
// IDS.txt: token ids separated by spaces, commas or brackets (a JSON array works).
#include "steerclear/engine.h"
#include "steerclear/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
    fprintf(stderr, "gpu_logits: %s%s\n", what, sc_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *ids_path = NULL, *out = NULL, *device = "cuda";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--ids")) ids_path = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else { fprintf(stderr, "gpu_logits: unknown option %s\n", argv[i]); return 2; }
    }
    if (!dir || !ids_path || !out) { fprintf(stderr, "usage: gpu_logits --model DIR --ids IDS.txt --out F.npy [--device cpu|cuda]\n"); return 2; }
    FILE *f = fopen(ids_path, "r");
    if (!f) { fprintf(stderr, "gpu_logits: cannot open %s\n", ids_path); return 1; }
    int32_t ids[4096];
    int T = 0, ch;
    long v = -1;
    while ((ch = fgetc(f)) != EOF) {
        if (ch >= '0' && ch <= '9') v = (v < 0 ? 0 : v * 10) + (ch - '0');
        else if (v >= 0) { if (T == 4096) break; ids[T++] = (int32_t)v; v = -1; }
    }
    if (v >= 0 && T < 4096) ids[T++] = (int32_t)v;
    fclose(f);
    if (T == 0) { fprintf(stderr, "gpu_logits: %s holds no token ids\n", ids_path); return 1; }
    sc_backend_opts bo;
    sc_backend_opts_default(&bo);
    if (sc_device_parse(device, "--device", &bo.device)) return fail("");
    sc_backend *be = NULL;
    if (sc_backend_create(&bo, &be)) return fail("");
    sc_model *m = NULL;
    if (sc_model_load(dir, 0, -1, be, &m)) { sc_backend_free(be); return fail(""); }
    for (int t = 0; t < T; t++)
        if (ids[t] >= m->cfg.vocab) { fprintf(stderr, "gpu_logits: id %d is outside the vocabulary (%d)\n", ids[t], m->cfg.vocab); return 1; }
    const int C = m->cfg.hidden, V = m->cfg.vocab;
    float *hidden = NULL, *logits = NULL, *host = malloc(sizeof(float) * (size_t)T * V);
    const int seq[2] = {0, T};
    const sc_batch batch = {.n_seq = 1, .seq_start = seq};
    sc_status st = host ? SC_OK : SC_ERR_MEM;
    if (!st) st = sc_backend_alloc_floats(be, (size_t)T * C, "hidden", &hidden);
    if (!st) st = sc_backend_alloc_floats(be, (size_t)T * V, "logits", &logits);
    if (!st) st = sc_forward(m, be, &batch, ids, hidden, NULL, NULL, NULL);
    if (!st) st = sc_head(m, be, hidden, NULL, T, NULL, logits);
    if (!st) st = be->op->download(be, host, logits, sizeof(float) * (size_t)T * V);
    const int64_t shape[2] = {T, V};
    if (!st) st = sc_npy_write_f32(out, host, 2, shape);
    if (st) fail("");
    be->op->free(be, hidden);
    be->op->free(be, logits);
    free(host);
    sc_model_free(m);
    sc_backend_free(be);
    if (!st) printf("gpu_logits: %s: %d tokens x %d logits on %s -> %s\n", dir, T, V, device, out);
    return st ? 1 : 0;
}
