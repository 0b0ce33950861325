// test_weights.c — make_model + sc_model_load: presets, deterministic weights that follow the
// documented initialisation (recomputed here from the RNG), zero-copy BF16/F32 and converted F16,
// block slices, tied/untied heads, sharded output equal to the single file, every loader error,
// and Qwen3 (per-head q/k norms, no biases, head_dim != hidden/heads, tensors without "model.").
#include "testutil.h"
#include "steerclear/engine.h"
#include "steerclear/make_model.h"
#include "steerclear/rng.h"

#include <math.h>
#include <stdlib.h>

static char g_dir[8192];
static const char *tmp_dir(const char *name) {
    snprintf(g_dir, sizeof g_dir, "%s/%s", sc_test_tmpdir(), name);
    return g_dir;
}

static sc_make_model_opts small_opts(sc_dtype dt, int tied) {
    sc_make_model_opts o;
    memset(&o, 0, sizeof o);
    o.cfg.n_layers = 2; o.cfg.hidden = 16; o.cfg.n_heads = 2; o.cfg.n_kv_heads = 1; o.cfg.head_dim = 0;
    o.cfg.intermediate = 24; o.cfg.vocab = 64; o.cfg.tie_embeddings = tied;
    o.cfg.rope_theta = 1e6f; o.cfg.rms_eps = 1e-6f; o.cfg.max_position = 512; o.cfg.bos_id = o.cfg.eos_id = -1;
    o.dtype = dt;
    o.seed = 99;
    return o;
}

static float elem(const sc_mat *m, size_t i) {
    if (m->dtype == SC_DTYPE_F32) return ((const float *)m->data)[i];
    return sc_bf16_to_f32(((const uint16_t *)m->data)[i]);
}

static void stats(const sc_mat *m, double *mean, double *std) {
    size_t n = (size_t)(m->rows * m->cols);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) { double x = elem(m, i); s += x; s2 += x * x; }
    *mean = s / (double)n;
    *std = sqrt(s2 / (double)n - *mean * *mean);
}

static int files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (sc_read_file(a, &x, &nx) != SC_OK) return 0;
    if (sc_read_file(b, &y, &ny) != SC_OK) { free(x); return 0; }
    int eq = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return eq;
}

// ---------------------------------------------------------------------------------------

static void test_presets(void) {
    sc_make_model_opts o;
    memset(&o, 0, sizeof o);
    CHECK_OK(sc_make_model_preset("tiny", &o));
    CHECK(o.cfg.n_layers == 3 && o.cfg.hidden == 64 && o.cfg.n_heads == 4 && o.cfg.n_kv_heads == 2 && o.cfg.head_dim == 16);
    CHECK(o.cfg.intermediate == 176 && o.cfg.vocab == 151936 && o.cfg.tie_embeddings && o.cfg.rope_theta == 1e6f && o.dtype == SC_DTYPE_BF16);
    CHECK_OK(sc_make_model_preset("qwen2.5-0.5b-shape", &o));
    CHECK(o.cfg.n_layers == 24 && o.cfg.hidden == 896 && o.cfg.n_heads == 14 && o.cfg.n_kv_heads == 2 && o.cfg.head_dim == 64);
    CHECK(o.cfg.intermediate == 4864 && o.cfg.vocab == 151936 && o.cfg.tie_embeddings);
    CHECK_OK(sc_make_model_preset("qwen2.5-14b-shape", &o));
    CHECK(o.cfg.n_layers == 48 && o.cfg.hidden == 5120 && o.cfg.n_heads == 40 && o.cfg.n_kv_heads == 8 && o.cfg.head_dim == 128);
    CHECK(o.cfg.intermediate == 13824 && o.cfg.vocab == 152064 && !o.cfg.tie_embeddings);
    CHECK(o.cfg.arch == SC_ARCH_QWEN2);
    CHECK_OK(sc_make_model_preset("qwen3-0.6b-shape", &o));   // Qwen3-0.6B: head_dim 128, hidden / heads 64
    CHECK(o.cfg.arch == SC_ARCH_QWEN3 && o.cfg.n_layers == 28 && o.cfg.hidden == 1024 && o.cfg.n_heads == 16 && o.cfg.n_kv_heads == 8);
    CHECK(o.cfg.head_dim == 128 && o.cfg.intermediate == 3072 && o.cfg.vocab == 151936 && o.cfg.tie_embeddings && !o.cfg.attention_bias);
    CHECK_OK(sc_make_model_preset("tiny", &o));
    CHECK(o.cfg.arch == SC_ARCH_QWEN2);
    CHECK_ERR(sc_make_model_preset("gpt2", &o), SC_ERR_ARG, "unknown preset 'gpt2'", "tiny, qwen2.5-0.5b-shape, qwen2.5-14b-shape, qwen3-0.6b-shape");

    const char *tok = sc_test_env("SC_TOKENIZER", "");
    if (tok[0] && sc_file_exists(tok)) {
        int min_vocab, eos;
        CHECK_OK(sc_tokenizer_vocab_info(tok, &min_vocab, &eos));
        CHECK(min_vocab > 151643 && min_vocab < 151936 && eos == 151643);   // 151643 BPE ids + the added tokens
        // Python's json as the independent count: 1 + the largest id of model.vocab and added_tokens
        char cmd[16384], out[8300];
        snprintf(out, sizeof out, "%s/py_vocab.txt", sc_test_tmpdir());
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"import json; t = json.load(open('%s')); "
                 "print(1 + max(max(t['model']['vocab'].values()), max(a['id'] for a in t['added_tokens'])))\" > %s", tok, out);
        if (system(cmd) == 0) {
            char *txt;
            size_t n;
            CHECK_OK(sc_read_file(out, &txt, &n));
            CHECKF(txt && atoi(txt) == min_vocab, "python counts %s ids, we %d", txt ? txt : "?", min_vocab);
            free(txt);
        }
        sc_make_model_opts s = small_opts(SC_DTYPE_BF16, 1);
        s.tokenizer = tok;
        char want[128];
        snprintf(want, sizeof want, "use a vocab of at least %d", min_vocab);
        CHECK_ERR(sc_make_model(tmp_dir("smallvocab"), &s), SC_ERR_ARG, "vocab size 64 is smaller than the tokenizer's", want);
    } else {
        fprintf(stderr, "test_weights: SC_TOKENIZER not available: tokenizer checks skipped\n");
    }
    const char *tj = "{\"model\":{\"vocab\":{\"a\":0,\"b\":5}},\"added_tokens\":[{\"id\":9,\"content\":\"<|endoftext|>\"}]}";
    sc_test_write(tmp_dir("tok.json"), tj, strlen(tj));
    int mv, eos;
    CHECK_OK(sc_tokenizer_vocab_info(g_dir, &mv, &eos));
    CHECK(mv == 10 && eos == 9);
    sc_test_write(tmp_dir("tok.json"), "{\"model\":{\"type\":\"BPE\"}}", 24);
    CHECK_ERR(sc_tokenizer_vocab_info(g_dir, &mv, &eos), SC_ERR_FORMAT, "tok.json", "no \"model.vocab\" object");

    sc_make_model_opts bad = small_opts(SC_DTYPE_BF16, 1);
    bad.cfg.n_heads = 3;
    CHECK_ERR(sc_make_model(tmp_dir("bad"), &bad), SC_ERR_ARG, "hidden 16 is not divisible by heads 3");
    bad.cfg.n_kv_heads = 2;
    CHECK_ERR(sc_make_model(tmp_dir("bad"), &bad), SC_ERR_ARG, "heads 3 is not divisible by kv heads 2");
    bad = small_opts(SC_DTYPE_I32, 1);
    CHECK_ERR(sc_make_model(tmp_dir("bad"), &bad), SC_ERR_ARG, "dtype must be bf16, f16 or f32 (got I32)");
}

// The documented initialisation, recomputed: tensor index t in canonical order, N(0,1) from the RNG.
static void check_init(const sc_model *m, uint64_t seed) {
    int C = m->cfg.hidden;
    float z[8];
    sc_rng_normal(seed, 0, 0, z, 8);   // embed: stream 0, std 1/sqrt(C)
    for (int i = 0; i < 8; i++) CHECK(elem(&m->embed, (size_t)i) == sc_bf16_to_f32(sc_f32_to_bf16(z[i] / sqrtf((float)C))));
    sc_rng_normal(seed, 1, 0, z, 8);   // layer 0 input_layernorm: stream 1, 1 + 0.05 N
    for (int i = 0; i < 8; i++) CHECK(m->blocks[0].attn_norm[i] == sc_bf16_to_f32(sc_f32_to_bf16(1.0f + 0.05f * z[i])));
    sc_rng_normal(seed, 3, 0, z, 8);   // layer 0 q bias: stream 3, 0.1 N
    for (int i = 0; i < 8; i++) CHECK(m->blocks[0].q_bias[i] == sc_bf16_to_f32(sc_f32_to_bf16(0.1f * z[i])));
    sc_rng_normal(seed, 24, 0, z, 8);   // layer 1 down_proj: stream 1 + 12 + 11 = 24, std 4/sqrt(I)
    for (int i = 0; i < 8; i++) CHECK(elem(&m->blocks[1].down, (size_t)i) == sc_bf16_to_f32(sc_f32_to_bf16(4.0f * z[i] / sqrtf((float)m->cfg.intermediate))));
}

static void test_load_bf16(void) {
    sc_make_model_opts o = small_opts(SC_DTYPE_BF16, 1);
    CHECK_OK(sc_make_model(tmp_dir("bf16"), &o));
    sc_model *m;
    CHECK_OK(sc_model_load(g_dir, 0, -1, sc_test_backend(), &m));
    if (!m) return;
    CHECK(m->cfg.n_layers == 2 && m->cfg.hidden == 16 && m->cfg.head_dim == 8 && m->cfg.tie_embeddings == 1);
    CHECK(!strcmp(m->cfg.torch_dtype, "bfloat16"));
    CHECK(m->first == 0 && m->last == 2 && m->has_embed && m->has_head);
    CHECK(m->embed.dtype == SC_DTYPE_BF16 && m->embed.rows == 64 && m->embed.cols == 16);
    CHECK(m->embed.data == sc_st_find(m->st, "model.embed_tokens.weight")->data);   // zero copy
    CHECK(m->lm_head.data == m->embed.data && m->lm_head.rows == 64);
    for (int l = 0; l < 2; l++) {
        const sc_block_weights *b = &m->blocks[l];
        CHECK(b->q.rows == 16 && b->q.cols == 16 && b->k.rows == 8 && b->k.cols == 16 && b->v.rows == 8);
        CHECK(b->o.rows == 16 && b->o.cols == 16 && b->gate.rows == 24 && b->up.rows == 24 && b->down.rows == 16 && b->down.cols == 24);
        CHECK(b->attn_norm && b->mlp_norm && b->q_bias && b->k_bias && b->v_bias);
        char name[128];
        snprintf(name, sizeof name, "model.layers.%d.mlp.up_proj.weight", l);
        CHECK(b->up.data == sc_st_find(m->st, name)->data && b->up.dtype == SC_DTYPE_BF16);
    }
    const uint16_t *fn = sc_st_find(m->st, "model.norm.weight")->data;
    for (int i = 0; i < 16; i++) CHECK(m->final_norm[i] == sc_bf16_to_f32(fn[i]));
    check_init(m, 99);

    // the scales documented in make_model.c (loose statistical bounds)
    double mean, std;
    stats(&m->embed, &mean, &std);
    CHECK_NEAR(std, 0.25, 0.03);
    CHECK_NEAR(mean, 0.0, 0.03);
    stats(&m->blocks[1].gate, &mean, &std);
    CHECK_NEAR(std, 0.25, 0.03);
    stats(&m->blocks[0].down, &mean, &std);
    CHECK_NEAR(std, 4.0 / sqrt(24.0), 0.1);
    double s = 0, s2 = 0;
    for (int i = 0; i < 16; i++) { s += m->blocks[1].mlp_norm[i]; s2 += (double)m->blocks[0].q_bias[i] * m->blocks[0].q_bias[i]; }
    CHECK_NEAR(s / 16, 1.0, 0.05);
    CHECK(s2 > 0.01 && s2 < 0.6);   // biases non-zero, ~0.1 each
    sc_model_free(m);

    // the config written is a Hugging Face one
    char p[8300];
    snprintf(p, sizeof p, "%s/bf16/config.json", sc_test_tmpdir());
    char *text;
    size_t n;
    CHECK_OK(sc_read_file(p, &text, &n));
    CHECK(strstr(text, "Qwen2ForCausalLM") && strstr(text, "\"silu\""));
    free(text);
}

static void test_slices(void) {
    const char *dir = tmp_dir("bf16");
    sc_model *m;
    CHECK_OK(sc_model_load(dir, 0, 1, sc_test_backend(), &m));
    if (m) {
        CHECK(m->has_embed && !m->has_head && m->embed.data && !m->lm_head.data && !m->final_norm);
        CHECK(m->blocks[0].q.data && m->blocks[0].attn_norm && !m->blocks[1].q.data && !m->blocks[1].attn_norm);
        sc_model_free(m);
    }
    CHECK_OK(sc_model_load(dir, 1, 2, sc_test_backend(), &m));
    if (m) {   // tied: the last stage needs the embedding as its head
        CHECK(!m->has_embed && m->has_head && m->embed.data && m->lm_head.data == m->embed.data && m->final_norm);
        CHECK(!m->blocks[0].q.data && m->blocks[1].q.data);
        sc_model_free(m);
    }
    CHECK_OK(sc_model_load(dir, 1, 1, sc_test_backend(), &m));
    if (m) { CHECK(!m->has_embed && !m->has_head && !m->embed.data && !m->blocks[1].q.data); sc_model_free(m); }
    CHECK_ERR(sc_model_load(dir, 2, 1, sc_test_backend(), &m), SC_ERR_ARG, "block slice [2,1) is not within the model's 2 blocks");
    CHECK_ERR(sc_model_load(dir, 0, 5, sc_test_backend(), &m), SC_ERR_ARG, "block slice [0,5)");
    CHECK(m == NULL);

    sc_make_model_opts o = small_opts(SC_DTYPE_BF16, 0);
    CHECK_OK(sc_make_model(tmp_dir("untied"), &o));
    CHECK_OK(sc_model_load(g_dir, 1, 2, sc_test_backend(), &m));
    if (m) {
        CHECK(!m->embed.data && m->lm_head.data == sc_st_find(m->st, "lm_head.weight")->data && m->lm_head.rows == 64);
        sc_model_free(m);
    }
    CHECK_OK(sc_model_load(g_dir, 0, 2, sc_test_backend(), &m));
    if (m) { CHECK(m->embed.data && m->lm_head.data && m->lm_head.data != m->embed.data); sc_model_free(m); }
}

static void test_dtypes(void) {
    sc_make_model_opts o = small_opts(SC_DTYPE_F16, 1);
    CHECK_OK(sc_make_model(tmp_dir("f16"), &o));
    sc_model *m;
    CHECK_OK(sc_model_load(g_dir, 0, -1, sc_test_backend(), &m));
    if (m) {   // F16 matrices become owned F32
        const sc_st_tensor *t = sc_st_find(m->st, "model.layers.0.self_attn.o_proj.weight");
        CHECK(t->dtype == SC_DTYPE_F16 && m->blocks[0].o.dtype == SC_DTYPE_F32 && m->blocks[0].o.data != t->data);
        for (int i = 0; i < 256; i++) CHECK(((const float *)m->blocks[0].o.data)[i] == sc_f16_to_f32(((const uint16_t *)t->data)[i]));
        CHECK(m->lm_head.data == m->embed.data && m->embed.dtype == SC_DTYPE_F32);
        CHECK(!strcmp(m->cfg.torch_dtype, "float16"));
        sc_model_free(m);
    }
    o = small_opts(SC_DTYPE_F32, 1);
    CHECK_OK(sc_make_model(tmp_dir("f32"), &o));
    CHECK_OK(sc_model_load(g_dir, 0, -1, sc_test_backend(), &m));
    if (m) {
        const sc_st_tensor *t = sc_st_find(m->st, "model.layers.1.mlp.gate_proj.weight");
        CHECK(m->blocks[1].gate.dtype == SC_DTYPE_F32 && m->blocks[1].gate.data == t->data);
        sc_model *b;
        char p[8300];
        snprintf(p, sizeof p, "%s/bf16", sc_test_tmpdir());
        CHECK_OK(sc_model_load(p, 0, -1, sc_test_backend(), &b));
        // same seed, same draws: the bf16 model is the f32 model rounded
        if (b) for (int i = 0; i < 384; i++) CHECK(elem(&b->blocks[1].gate, (size_t)i) == sc_bf16_to_f32(sc_f32_to_bf16(elem(&m->blocks[1].gate, (size_t)i))));
        sc_model_free(b);
        sc_model_free(m);
    }
}

static void test_determinism_and_shards(void) {
    char a[8300], b[8300], c[8300];
    sc_make_model_opts o = small_opts(SC_DTYPE_BF16, 1);
    o.chunk_elems = 7;   // rounded up to 8: many chunks, odd tensor sizes split across them
    CHECK_OK(sc_make_model(tmp_dir("chunked"), &o));
    snprintf(a, sizeof a, "%s/bf16/model.safetensors", sc_test_tmpdir());
    snprintf(b, sizeof b, "%s/chunked/model.safetensors", sc_test_tmpdir());
    CHECK(files_equal(a, b));
    o.seed = 100;
    CHECK_OK(sc_make_model(tmp_dir("seed100"), &o));
    snprintf(c, sizeof c, "%s/seed100/model.safetensors", sc_test_tmpdir());
    CHECK(!files_equal(a, c));

    // shards of at most 2500 bytes (the 2048-byte embedding alone in the first)
    o.seed = 99;
    o.shard_bytes = 2500;
    o.chunk_elems = 0;
    CHECK_OK(sc_make_model(tmp_dir("sharded"), &o));
    snprintf(c, sizeof c, "%s/sharded/model.safetensors", sc_test_tmpdir());
    CHECK(!sc_file_exists(c));
    snprintf(c, sizeof c, "%s/sharded/model.safetensors.index.json", sc_test_tmpdir());
    CHECK(sc_file_exists(c));
    char *idx;
    size_t n;
    CHECK_OK(sc_read_file(c, &idx, &n));
    CHECK(strstr(idx, "\"model.embed_tokens.weight\":\t\"model-00001-of-") != NULL);
    CHECK(strstr(idx, "\"total_size\":\t") != NULL);
    free(idx);
    sc_model *ms, *m1;
    CHECK_OK(sc_model_load(tmp_dir("sharded"), 0, -1, sc_test_backend(), &ms));
    CHECK_OK(sc_model_load(tmp_dir("bf16"), 0, -1, sc_test_backend(), &m1));
    if (ms && m1) {
        CHECK(sc_st_count(ms->st) == sc_st_count(m1->st));
        int shards_seen = 0;
        for (size_t i = 0; i < sc_st_count(m1->st); i++) {
            const sc_st_tensor *x = sc_st_get(m1->st, i), *y = sc_st_find(ms->st, x->name);
            CHECKF(y && y->nbytes == x->nbytes && !memcmp(x->data, y->data, x->nbytes), "tensor %s differs in the sharded copy", x->name);
            if (y && strstr(y->file, "model-00003-of-")) shards_seen = 1;
        }
        CHECK(shards_seen);
        CHECK(ms->lm_head.data == ms->embed.data);
    }
    sc_model_free(ms);
    sc_model_free(m1);
    // re-writing as one file removes the stale index
    o.shard_bytes = 0;
    CHECK_OK(sc_make_model(tmp_dir("sharded"), &o));
    CHECK(!sc_file_exists(c));
    snprintf(c, sizeof c, "%s/sharded/model.safetensors", sc_test_tmpdir());
    CHECK(files_equal(a, c));
}

// ---------------------------------------------------------------------------------------
// Loader errors

static char g_log[4096];
static void capture(sc_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == SC_LOG_DEBUG) snprintf(g_log, sizeof g_log, "%s", msg);
}

// Copy the tensors of model SRC (a folder of the test's tmpdir) into DIR/model.safetensors,
// dropping `drop`, retyping `as_i32`, halving the first dimension of `halve`, and removing
// the "model." prefix of every name when `strip` is set.
static void copy_model_from(const char *src, const char *dir, const char *drop, const char *as_i32, const char *halve, int strip,
                            const sc_model_config *cfg) {
    CHECK_OK(sc_mkdir_p(dir));
    sc_safetensors *st;
    char p[8300];
    snprintf(p, sizeof p, "%s/%s", sc_test_tmpdir(), src);
    CHECK_OK(sc_st_open_dir(p, &st));
    if (!st) return;
    sc_st_write_tensor *t = calloc(sc_st_count(st), sizeof *t);
    size_t n = 0;
    for (size_t i = 0; i < sc_st_count(st); i++) {
        const sc_st_tensor *x = sc_st_get(st, i);
        if (drop && !strcmp(x->name, drop)) continue;
        t[n] = (sc_st_write_tensor){x->name, x->dtype, x->ndim, {0}, x->data};
        memcpy(t[n].shape, x->shape, sizeof x->shape);
        if (as_i32 && !strcmp(x->name, as_i32)) { t[n].dtype = SC_DTYPE_I32; t[n].shape[1] /= 2; }
        if (halve && !strcmp(x->name, halve)) t[n].shape[0] /= 2;
        if (strip && !strncmp(x->name, "model.", 6)) t[n].name = x->name + 6;
        n++;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_OK(sc_st_write(p, t, n, NULL, NULL, 0));
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK_OK(sc_config_save(p, cfg));
    free(t);
    sc_st_close(st);
}

static void copy_model(const char *dir, const char *drop, const char *as_i32, const sc_model_config *cfg) {
    copy_model_from("bf16", dir, drop, as_i32, NULL, 0, cfg);
}

static void test_errors(void) {
    sc_model *m = (sc_model *)1;
    char dir[8300], p[8400];
    snprintf(dir, sizeof dir, "%s/nothing", sc_test_tmpdir());
    CHECK_OK(sc_mkdir_p(dir));
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_IO, "config.json not found", "looked for", "nothing/config.json");
    CHECK(m == NULL);
    sc_make_model_opts o = small_opts(SC_DTYPE_BF16, 1);
    o.cfg.head_dim = 8;
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK_OK(sc_config_save(p, &o.cfg));
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_IO, "no weights found", "nothing/model.safetensors and", "model.safetensors.index.json");
    sc_test_write(p, "{\"model_type\":\"llama\"}", 22);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_FORMAT, "nothing/config.json", "model_type \"llama\"");

    // config disagreeing with the tensors
    sc_model_config cfg = o.cfg;
    cfg.intermediate = 32;
    snprintf(dir, sizeof dir, "%s/inter", sc_test_tmpdir());
    copy_model(dir, NULL, NULL, &cfg);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_SHAPE, "inter/model.safetensors: tensor model.layers.0.mlp.gate_proj.weight: shape [24,16] does not match config [32,16]");
    cfg = o.cfg;
    cfg.vocab = 65;
    snprintf(dir, sizeof dir, "%s/vocab", sc_test_tmpdir());
    copy_model(dir, NULL, NULL, &cfg);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_SHAPE, "vocab/model.safetensors: tensor model.embed_tokens.weight: shape [64,16] does not match config [65,16]");
    CHECK_OK(sc_model_load(dir, 1, 1, sc_test_backend(), &m));   // a middle slice does not read the embedding
    sc_model_free(m);
    cfg = o.cfg;
    cfg.n_kv_heads = 2;
    snprintf(dir, sizeof dir, "%s/kv", sc_test_tmpdir());
    copy_model(dir, NULL, NULL, &cfg);
    CHECK_ERR(sc_model_load(dir, 1, 2, sc_test_backend(), &m), SC_ERR_SHAPE, "tensor model.layers.1.self_attn.k_proj.weight: shape [8,16] does not match config [16,16]");

    // missing tensors
    snprintf(dir, sizeof dir, "%s/nobias", sc_test_tmpdir());
    copy_model(dir, "model.layers.1.self_attn.k_proj.bias", NULL, &o.cfg);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_FORMAT, "nobias: tensor model.layers.1.self_attn.k_proj.bias not found");
    CHECK_OK(sc_model_load(dir, 0, 1, sc_test_backend(), &m));   // not needed by block 0
    sc_model_free(m);
    snprintf(dir, sizeof dir, "%s/nonorm", sc_test_tmpdir());
    copy_model(dir, "model.norm.weight", NULL, &o.cfg);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_FORMAT, "tensor model.norm.weight not found");
    // untied config, no lm_head in the file
    cfg = o.cfg;
    cfg.tie_embeddings = 0;
    snprintf(dir, sizeof dir, "%s/nohead", sc_test_tmpdir());
    copy_model(dir, NULL, NULL, &cfg);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_FORMAT, "nohead: tensor lm_head.weight not found", "tie_word_embeddings is false");
    CHECK_OK(sc_model_load(dir, 0, 1, sc_test_backend(), &m));   // no head in this slice
    sc_model_free(m);
    // ... loads for hidden states only (an embedding model), and then refuses to make logits
    CHECK_OK(sc_model_load_hidden(dir, sc_test_backend(), &m));
    if (m) {
        CHECK(m->has_head && m->final_norm && !m->lm_head.data);
        sc_backend *be = sc_test_backend();
        float *hid = NULL, *logits = NULL;
        CHECK_OK(sc_backend_alloc_floats(be, (size_t)m->cfg.hidden, "hidden", &hid));
        CHECK_OK(sc_backend_alloc_floats(be, (size_t)m->cfg.vocab, "logits", &logits));
        if (hid && logits) {
            CHECK_OK(be->op->memset(be, hid, 0, sizeof(float) * (size_t)m->cfg.hidden));
            CHECK_ERR(sc_head(m, be, hid, NULL, 1, NULL, logits), SC_ERR_ARG, "without its LM head");
        }
        be->op->free(be, hid);
        be->op->free(be, logits);
        sc_model_free(m);
    }
    // a non-float matrix
    snprintf(dir, sizeof dir, "%s/i32", sc_test_tmpdir());
    copy_model(dir, NULL, "model.layers.0.self_attn.q_proj.weight", &o.cfg);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_FORMAT, "i32/model.safetensors: tensor model.layers.0.self_attn.q_proj.weight: dtype I32 is not a floating-point type");

    // tied config, but lm_head.weight present: the embedding is the head (as transformers ties
    // them after loading), and the ignored tensor is said at debug level
    snprintf(p, sizeof p, "%s/untied/model.safetensors", sc_test_tmpdir());
    snprintf(dir, sizeof dir, "%s/tiedwithhead", sc_test_tmpdir());
    CHECK_OK(sc_mkdir_p(dir));
    char q[8400];
    snprintf(q, sizeof q, "%s/model.safetensors", dir);
    char *bytes;
    size_t n;
    CHECK_OK(sc_read_file(p, &bytes, &n));
    CHECK_OK(sc_write_file_atomic(q, bytes, n));
    free(bytes);
    snprintf(q, sizeof q, "%s/config.json", dir);
    CHECK_OK(sc_config_save(q, &o.cfg));
    sc_log_set(capture, NULL);
    sc_log_set_level(SC_LOG_DEBUG);
    g_log[0] = '\0';
    CHECK_OK(sc_model_load(dir, 1, 2, sc_test_backend(), &m));
    sc_log_set(NULL, NULL);
    sc_log_set_level(SC_LOG_INFO);
    CHECK(strstr(g_log, "lm_head.weight is present but ignored") != NULL);
    if (m) {
        CHECK(m->embed.data && m->lm_head.data == m->embed.data && m->lm_head.data == sc_st_find(m->st, "model.embed_tokens.weight")->data);
        sc_model_free(m);
    }
}

// ---------------------------------------------------------------------------------------
// Qwen3

static void capture_warn(sc_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == SC_LOG_WARN) snprintf(g_log, sizeof g_log, "%s", msg);
}

// logits of a few tokens (bitwise comparisons between loaders of the same weights)
static void some_logits(const sc_model *m, float *logits) {
    int32_t ids[5] = {1, 7, 3, 60, 2};
    int ss[2] = {0, 5};
    sc_batch b = {.n_seq = 1, .seq_start = ss};
    float h[5 * 16];
    CHECK_OK(sc_forward(m, sc_test_backend(), &b, ids, h, NULL, NULL, NULL));
    CHECK_OK(sc_head(m, sc_test_backend(), h, NULL, 5, NULL, logits));
}

static void test_qwen3(void) {
    // C 16, NH 2, HD 12 (not C / NH = 8), KVH 1
    sc_make_model_opts o = small_opts(SC_DTYPE_BF16, 1);
    o.cfg.arch = SC_ARCH_QWEN3;
    o.cfg.head_dim = 12;
    CHECK_OK(sc_make_model(tmp_dir("q3"), &o));
    char p[8300], dir[8300];
    snprintf(p, sizeof p, "%s/q3/config.json", sc_test_tmpdir());
    char *text;
    size_t n;
    CHECK_OK(sc_read_file(p, &text, &n));
    if (text) {
        CHECK(strstr(text, "\"Qwen3ForCausalLM\"") && strstr(text, "\"model_type\":\t\"qwen3\"") && strstr(text, "\"head_dim\":\t12"));
        CHECK(strstr(text, "\"attention_bias\":\tfalse") && strstr(text, "\"sliding_window\":\tnull"));
        free(text);
    }
    sc_model *m = NULL;
    CHECK_OK(sc_model_load(tmp_dir("q3"), 0, -1, sc_test_backend(), &m));
    if (!m) return;
    CHECK(m->cfg.arch == SC_ARCH_QWEN3 && m->cfg.head_dim == 12 && !m->cfg.attention_bias && !strcmp(m->prefix, "model."));
    CHECK(!sc_st_find(m->st, "model.layers.0.self_attn.q_proj.bias") && sc_st_find(m->st, "model.layers.1.self_attn.k_norm.weight"));
    for (int l = 0; l < 2; l++) {
        const sc_block_weights *b = &m->blocks[l];
        CHECK(b->q.rows == 24 && b->q.cols == 16 && b->k.rows == 12 && b->v.rows == 12 && b->o.rows == 16 && b->o.cols == 24);
        CHECK(!b->q_bias && !b->k_bias && !b->v_bias && b->q_norm && b->k_norm);
    }
    // canonical order without biases: embed 0; layer 0: input_layernorm 1, q 2, k 3, v 4, o 5, q_norm 6, k_norm 7
    float z[12];
    sc_rng_normal(99, 6, 0, z, 12);
    for (int i = 0; i < 12; i++) CHECK(m->blocks[0].q_norm[i] == sc_bf16_to_f32(sc_f32_to_bf16(1.0f + 0.05f * z[i])));
    sc_rng_normal(99, 7 + 11, 0, z, 12);   // layer 1 k_norm
    for (int i = 0; i < 12; i++) CHECK(m->blocks[1].k_norm[i] == sc_bf16_to_f32(sc_f32_to_bf16(1.0f + 0.05f * z[i])));
    float l3[5 * 64], lb[5 * 64];
    some_logits(m, l3);

    // the same tensors named without "model." (a bare Qwen3Model checkpoint, e.g. Qwen3-Embedding)
    snprintf(dir, sizeof dir, "%s/q3bare", sc_test_tmpdir());
    copy_model_from("q3", dir, NULL, NULL, NULL, 1, &o.cfg);
    sc_model *mb = NULL;
    CHECK_OK(sc_model_load(dir, 0, -1, sc_test_backend(), &mb));
    if (mb) {
        CHECK(!strcmp(mb->prefix, "") && sc_st_find(mb->st, "layers.0.self_attn.q_norm.weight"));
        some_logits(mb, lb);
        CHECK(!memcmp(l3, lb, sizeof l3));
        sc_model_free(mb);
    }
    // the q/k norms matter
    m->blocks[1].q_norm[0] *= 3.0f;
    some_logits(m, lb);
    CHECK(memcmp(l3, lb, sizeof l3) != 0);
    sc_model_free(m);

    // attention_bias true: biases written, loaded and used
    sc_make_model_opts ob = o;
    ob.cfg.attention_bias = 1;
    CHECK_OK(sc_make_model(tmp_dir("q3bias"), &ob));
    CHECK_OK(sc_model_load(g_dir, 0, -1, sc_test_backend(), &m));
    if (m) {
        CHECK(m->cfg.attention_bias && m->blocks[1].v_bias && m->blocks[0].q_norm);
        sc_model_free(m);
    }
    // bias tensors in the file, config says attention_bias false: ignored, with a warning
    snprintf(dir, sizeof dir, "%s/q3biasignored", sc_test_tmpdir());
    copy_model_from("q3bias", dir, NULL, NULL, NULL, 0, &o.cfg);
    sc_log_set(capture_warn, NULL);
    g_log[0] = '\0';
    CHECK_OK(sc_model_load(dir, 0, -1, sc_test_backend(), &m));
    sc_log_set(NULL, NULL);
    CHECK(strstr(g_log, "q_proj.bias is in the checkpoint but config.json says attention_bias is false") != NULL);
    if (m) { CHECK(!m->blocks[0].q_bias); sc_model_free(m); }
    // attention_bias true, biases missing
    snprintf(dir, sizeof dir, "%s/q3nobias", sc_test_tmpdir());
    copy_model_from("q3", dir, NULL, NULL, NULL, 0, &ob.cfg);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_FORMAT, "tensor model.layers.0.self_attn.q_proj.bias not found",
              "attention_bias is true", "set it to false");

    // a q_norm of the wrong shape, a missing k_norm, a qwen2 checkpoint under a qwen3 config
    snprintf(dir, sizeof dir, "%s/q3badnorm", sc_test_tmpdir());
    copy_model_from("q3", dir, NULL, NULL, "model.layers.1.self_attn.q_norm.weight", 0, &o.cfg);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_SHAPE,
              "q3badnorm/model.safetensors: tensor model.layers.1.self_attn.q_norm.weight: shape [6] does not match config [12]",
              "one weight per head dimension", "check head_dim (12) in config.json");
    CHECK_OK(sc_model_load(dir, 0, 1, sc_test_backend(), &m));   // block 0 is fine
    sc_model_free(m);
    snprintf(dir, sizeof dir, "%s/q3nonorm", sc_test_tmpdir());
    copy_model_from("q3", dir, "model.layers.0.self_attn.k_norm.weight", NULL, NULL, 0, &o.cfg);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_FORMAT, "q3nonorm: tensor model.layers.0.self_attn.k_norm.weight not found",
              "model_type qwen3", "is this a Qwen3 checkpoint?");
    sc_model_config c2 = small_opts(SC_DTYPE_BF16, 1).cfg;   // the qwen2 "bf16" model labelled qwen3
    c2.arch = SC_ARCH_QWEN3;
    c2.head_dim = 8;
    snprintf(dir, sizeof dir, "%s/q2asq3", sc_test_tmpdir());
    copy_model(dir, NULL, NULL, &c2);
    sc_log_set(capture_warn, NULL);   // its biases are said to be ignored first
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_FORMAT, "self_attn.q_norm.weight not found", "a Qwen2 one needs model_type qwen2");
    sc_log_set(NULL, NULL);
    // a head_dim that disagrees with the projections
    sc_model_config c3 = o.cfg;
    c3.head_dim = 8;
    snprintf(dir, sizeof dir, "%s/q3hd", sc_test_tmpdir());
    copy_model_from("q3", dir, NULL, NULL, NULL, 0, &c3);
    CHECK_ERR(sc_model_load(dir, 0, -1, sc_test_backend(), &m), SC_ERR_SHAPE, "tensor model.layers.0.self_attn.q_proj.weight: shape [24,16] does not match config [16,16]");
    CHECK(m == NULL);
}

int main(void) {
    test_presets();
    test_load_bf16();
    test_slices();
    test_dtypes();
    test_determinism_and_shards();
    test_errors();
    test_qwen3();
    return sc_test_finish("test_weights");
}
