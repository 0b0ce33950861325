// export.c — one search's directions [L][C] to safetensors (direction.<l> for every block) and to
// a llama.cpp control-vector GGUF (direction.<l> for blocks 1..L-1); see steerclear/export.h for
// the block numbering and the llama.cpp files it was checked against.
// Leaves out: scaling (files hold unit-scale directions), other GGUF consumers' conventions.
#include "steerclear/export.h"
#include "steerclear/gguf.h"
#include "steerclear/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_FORMAT_VERSION "1"
#define MAX_META 32

static const char BLOCK_INDEXING[] =
    "direction.<l> is added to the output of decoder block l (0-based), i.e. hidden_states[l+1] in "
    "Hugging Face numbering (for the last block, before the final norm that HF's last hidden state includes)";
static const char BLOCK_INDEXING_GGUF[] =
    "direction.<l> is added to the output of decoder block l (0-based), as llama.cpp applies control vectors; "
    "block 0 cannot be steered by llama.cpp and is left out";
static const char SCALE_CONVENTION[] =
    "h_l += scale * direction.<l>; directions are stored unscaled (scale 1)";
static const char DIRECTION_DEFINITION[] =
    "mean over all tokens of all prompts of (residual stream with the search's adapter - residual stream of "
    "the base model) at the output of block l";

// ---------------------------------------------------------------------------------------
// Shared checks and metadata

static sc_status check_input(const char *path, const char *fmt, const float *dirs, int L, int C, const sc_export_meta *meta) {
    if (!path || !path[0]) return sc_errorf(SC_ERR_ARG, "%s export: output path is empty", fmt);
    if (!meta || !meta->model || !meta->model[0])
        return sc_errorf(SC_ERR_ARG, "%s: %s export: the model name is missing (pass the HF id or the model directory's basename)", path, fmt);
    if (L < 1 || C < 1) return sc_errorf(SC_ERR_SHAPE, "%s: %s export: directions shape [%d,%d] is empty", path, fmt, L, C);
    if (!dirs) return sc_errorf(SC_ERR_ARG, "%s: %s export: directions are NULL", path, fmt);
    for (int l = 0; l < L; l++)
        for (int c = 0; c < C; c++)
            if (!isfinite(dirs[(size_t)l * (size_t)C + (size_t)c]))
                return sc_errorf(SC_ERR_NUMERIC, "%s: %s export: direction for block %d has a non-finite value %g at index %d "
                                 "(the search diverged; re-run it or leave it out of the export)",
                                 path, fmt, l, (double)dirs[(size_t)l * (size_t)C + (size_t)c], c);
    if (meta->n_extra > MAX_META - 12)
        return sc_errorf(SC_ERR_ARG, "%s: %s export: %zu extra metadata pairs, at most %d", path, fmt, meta->n_extra, MAX_META - 12);
    for (size_t i = 0; i < meta->n_extra; i++)
        if (!meta->extra_keys || !meta->extra_values || !meta->extra_keys[i] || !meta->extra_keys[i][0] || !meta->extra_values[i])
            return sc_errorf(SC_ERR_ARG, "%s: %s export: extra metadata pair %zu has an empty key or a NULL value", path, fmt, i);
    return SC_OK;
}

typedef struct {
    const char *key[MAX_META];
    const char *val[MAX_META];
    size_t n;
    char search[24], blocks[24], hidden[24];
} meta_list;

static void add(meta_list *m, const char *k, const char *v) {
    m->key[m->n] = k;
    m->val[m->n] = v;
    m->n++;
}

// The steerclear.* string pairs both formats carry.
static void build_meta(meta_list *m, const sc_export_meta *meta, int L, int C, int gguf) {
    m->n = 0;
    snprintf(m->blocks, sizeof m->blocks, "%d", L);
    snprintf(m->hidden, sizeof m->hidden, "%d", C);
    add(m, "steerclear.format_version", EXPORT_FORMAT_VERSION);
    add(m, "steerclear.model", meta->model);
    if (meta->search >= 0) {
        snprintf(m->search, sizeof m->search, "%d", meta->search);
        add(m, "steerclear.search", m->search);
    }
    if (meta->mode) add(m, "steerclear.mode", meta->mode);
    add(m, "steerclear.num_blocks", m->blocks);
    add(m, "steerclear.hidden_size", m->hidden);
    add(m, "steerclear.block_indexing", gguf ? BLOCK_INDEXING_GGUF : BLOCK_INDEXING);
    add(m, "steerclear.scale_convention", SCALE_CONVENTION);
    add(m, "steerclear.direction_definition", DIRECTION_DEFINITION);
    if (gguf) add(m, "steerclear.omitted_blocks", "0");
    for (size_t i = 0; i < meta->n_extra; i++) add(m, meta->extra_keys[i], meta->extra_values[i]);
}

// Our keys may not be overridden by extras (a reader could not tell which one is right).
static sc_status check_unique(const char *path, const char *fmt, const meta_list *m) {
    for (size_t i = 0; i < m->n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->key[i], m->key[j]))
                return sc_errorf(SC_ERR_ARG, "%s: %s export: metadata key %s is given twice (an extra key repeats a built-in one)",
                                 path, fmt, m->key[i]);
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// safetensors

sc_status sc_export_direction_safetensors(const char *path, const float *dirs, int L, int C, const sc_export_meta *meta) {
    SC_TRY(check_input(path, "safetensors", dirs, L, C, meta));
    meta_list m;
    build_meta(&m, meta, L, C, 0);
    SC_TRY(check_unique(path, "safetensors", &m));
    sc_st_write_tensor *t = sc_calloc((size_t)L, sizeof *t, "export tensors");
    char (*names)[32] = sc_calloc((size_t)L, sizeof *names, "export tensor names");
    if (!t || !names) { free(t); free(names); return SC_ERR_MEM; }
    for (int l = 0; l < L; l++) {
        snprintf(names[l], sizeof names[l], "direction.%d", l);
        t[l].name = names[l];
        t[l].dtype = SC_DTYPE_F32;
        t[l].ndim = 1;
        t[l].shape[0] = C;
        t[l].data = dirs + (size_t)l * (size_t)C;
    }
    sc_status st = sc_st_write(path, t, (size_t)L, m.key, m.val, m.n);
    free(t);
    free(names);
    return st;
}

// ---------------------------------------------------------------------------------------
// llama.cpp control vector

sc_status sc_export_direction_gguf(const char *path, const float *dirs, int L, int C, const sc_export_meta *meta) {
    SC_TRY(check_input(path, "GGUF control-vector", dirs, L, C, meta));
    if (L < 2)
        return sc_errorf(SC_ERR_SHAPE, "%s: GGUF control-vector export: a model with %d block has no block llama.cpp can steer "
                         "(it never steers block 0); use the safetensors export", path, L);
    meta_list m;
    build_meta(&m, meta, L, C, 1);
    SC_TRY(check_unique(path, "GGUF control-vector", &m));
    sc_gguf_kv kv[MAX_META + 3];
    size_t nkv = 0;
    kv[nkv++] = (sc_gguf_kv){.key = "general.architecture", .type = SC_GGUF_STR, .v.str = "controlvector"};
    kv[nkv++] = (sc_gguf_kv){.key = "controlvector.model_hint", .type = SC_GGUF_STR,
                             .v.str = meta->model_hint ? meta->model_hint : "qwen2"};
    kv[nkv++] = (sc_gguf_kv){.key = "controlvector.layer_count", .type = SC_GGUF_I32, .v.i64 = L - 1};
    for (size_t i = 0; i < m.n; i++) {
        if (!strncmp(m.key[i], "general.", 8) || !strncmp(m.key[i], "controlvector.", 14))
            return sc_errorf(SC_ERR_ARG, "%s: GGUF control-vector export: extra key %s is reserved", path, m.key[i]);
        kv[nkv++] = (sc_gguf_kv){.key = m.key[i], .type = SC_GGUF_STR, .v.str = m.val[i]};
    }
    sc_gguf_tensor *t = sc_calloc((size_t)L - 1, sizeof *t, "export tensors");
    char (*names)[32] = sc_calloc((size_t)L, sizeof *names, "export tensor names");
    if (!t || !names) { free(t); free(names); return SC_ERR_MEM; }
    for (int l = 1; l < L; l++) {   // block l → llama.cpp direction.<l>; block 0 has no slot there
        snprintf(names[l], sizeof names[l], "direction.%d", l);
        t[l - 1] = (sc_gguf_tensor){.name = names[l], .ndim = 1, .ne = {C}, .data = dirs + (size_t)l * (size_t)C};
    }
    sc_status st = sc_gguf_write(path, kv, nkv, t, (size_t)L - 1);
    free(t);
    free(names);
    return st;
}
