// test_export.c — direction export: safetensors names/values/metadata, the llama.cpp control-vector
// GGUF (tensor names and block mapping, metadata types, alignment and offsets as llama.cpp's
// loader demands), the GGUF writer and reader on their own, and every error message.
// Independent readers (the npm GGUF parser, Python) check the same files in export_reference.sh,
// which runs this binary as `test_export --write DIR` to produce them.
#include "testutil.h"
#include "steerclear/export.h"
#include "steerclear/gguf.h"
#include "steerclear/safetensors.h"

#include <float.h>
#include <stdlib.h>

enum { L = 5, C = 7 };   // C*4 = 28 bytes: every tensor needs 4 bytes of padding to 32

static void make_dirs(float *d) {
    for (int l = 0; l < L; l++)
        for (int c = 0; c < C; c++) d[l * C + c] = (float)((l * 131 + c * 71) % 97 - 48) / 64.0f + 0.001f * (float)l;
    d[1 * C + 0] = 1e-30f;
    d[2 * C + 1] = -3.0e38f;
    d[3 * C + 2] = FLT_MIN;
    d[4 * C + 6] = 1.4e-45f;   // smallest subnormal
}

static const char *extra_k[] = {"steerclear.linearity_score"};
static const char *extra_v[] = {"0.8712"};

static sc_export_meta make_meta(void) {
    sc_export_meta m = {.model = "Qwen/Qwen2.5-0.5B-Instruct", .search = 3, .mode = "per-block",
                        .extra_keys = extra_k, .extra_values = extra_v, .n_extra = 1};
    return m;
}

// Write the reference files for export_reference.sh: DIR/{directions.safetensors,
// control_vector.gguf,expected.f32} (the last one the raw [L][C] float32 input).
static int write_reference(const char *dir) {
    float d[L * C];
    make_dirs(d);
    sc_export_meta m = make_meta();
    char p[4200];
    snprintf(p, sizeof p, "%s/directions.safetensors", dir);
    if (sc_export_direction_safetensors(p, d, L, C, &m) != SC_OK) { fprintf(stderr, "%s\n", sc_last_error()); return 1; }
    snprintf(p, sizeof p, "%s/control_vector.gguf", dir);
    if (sc_export_direction_gguf(p, d, L, C, &m) != SC_OK) { fprintf(stderr, "%s\n", sc_last_error()); return 1; }
    snprintf(p, sizeof p, "%s/expected.f32", dir);
    if (sc_write_file_atomic(p, d, sizeof d) != SC_OK) { fprintf(stderr, "%s\n", sc_last_error()); return 1; }
    return 0;
}

static const char *gguf_str(const sc_gguf *g, const char *key) {
    const sc_gguf_kv *kv = sc_gguf_find_kv(g, key);
    return kv && kv->type == SC_GGUF_STR ? kv->v.str : NULL;
}

// ---------------------------------------------------------------------------------------

static void test_safetensors(const char *dir, const float *d) {
    char p[4200];
    snprintf(p, sizeof p, "%s/dirs.safetensors", dir);
    sc_export_meta m = make_meta();
    CHECK_OK(sc_export_direction_safetensors(p, d, L, C, &m));
    sc_safetensors *st = NULL;
    CHECK_OK(sc_st_open_file(p, &st));
    if (!st) return;
    CHECK(sc_st_count(st) == L);
    for (int l = 0; l < L; l++) {
        char name[32];
        snprintf(name, sizeof name, "direction.%d", l);
        const sc_st_tensor *t = sc_st_find(st, name);
        CHECKF(t != NULL, "missing %s", name);
        if (!t) continue;
        CHECK(t->dtype == SC_DTYPE_F32 && t->ndim == 1 && t->shape[0] == C && t->nbytes == C * 4);
        CHECK(!memcmp(t->data, d + l * C, C * 4));
    }
    const char *v;
    CHECK((v = sc_st_metadata(st, "steerclear.model")) && !strcmp(v, "Qwen/Qwen2.5-0.5B-Instruct"));
    CHECK((v = sc_st_metadata(st, "steerclear.search")) && !strcmp(v, "3"));
    CHECK((v = sc_st_metadata(st, "steerclear.mode")) && !strcmp(v, "per-block"));
    CHECK((v = sc_st_metadata(st, "steerclear.num_blocks")) && !strcmp(v, "5"));
    CHECK((v = sc_st_metadata(st, "steerclear.hidden_size")) && !strcmp(v, "7"));
    CHECK((v = sc_st_metadata(st, "steerclear.linearity_score")) && !strcmp(v, "0.8712"));
    CHECK((v = sc_st_metadata(st, "steerclear.block_indexing")) && strstr(v, "output of decoder block l (0-based)") && strstr(v, "hidden_states[l+1]"));
    CHECK((v = sc_st_metadata(st, "steerclear.scale_convention")) && !strcmp(v, "h_l += scale * direction.<l>; directions are stored unscaled (scale 1)"));
    CHECK(sc_st_metadata(st, "steerclear.omitted_blocks") == NULL);
    sc_st_close(st);

    // optional fields left out
    sc_export_meta bare = {.model = "m", .search = -1};
    CHECK_OK(sc_export_direction_safetensors(p, d, L, C, &bare));
    CHECK_OK(sc_st_open_file(p, &st));
    if (st) {
        CHECK(sc_st_metadata(st, "steerclear.search") == NULL && sc_st_metadata(st, "steerclear.mode") == NULL);
        CHECK((v = sc_st_metadata(st, "steerclear.model")) && !strcmp(v, "m"));
        sc_st_close(st);
    }
}

static void test_gguf_export(const char *dir, const float *d) {
    char p[4200];
    snprintf(p, sizeof p, "%s/cv.gguf", dir);
    sc_export_meta m = make_meta();
    CHECK_OK(sc_export_direction_gguf(p, d, L, C, &m));
    sc_gguf *g = NULL;
    CHECK_OK(sc_gguf_read(p, &g));
    if (!g) return;
    CHECK(sc_gguf_version(g) == 3);
    const char *s;
    CHECK((s = gguf_str(g, "general.architecture")) && !strcmp(s, "controlvector"));
    CHECK((s = gguf_str(g, "controlvector.model_hint")) && !strcmp(s, "qwen2"));
    const sc_gguf_kv *kv = sc_gguf_find_kv(g, "controlvector.layer_count");
    CHECK(kv && kv->type == SC_GGUF_I32 && kv->v.i64 == L - 1);
    kv = sc_gguf_find_kv(g, "general.alignment");
    CHECK(kv && kv->type == SC_GGUF_U32 && kv->v.u64 == 32);
    CHECK((s = gguf_str(g, "steerclear.model")) && !strcmp(s, "Qwen/Qwen2.5-0.5B-Instruct"));
    CHECK((s = gguf_str(g, "steerclear.omitted_blocks")) && !strcmp(s, "0"));
    CHECK((s = gguf_str(g, "steerclear.linearity_score")) && !strcmp(s, "0.8712"));
    CHECK((s = gguf_str(g, "steerclear.scale_convention")) && strstr(s, "unscaled"));
    // tensors: direction.1 .. direction.L-1, 1-D F32 [C], contiguous 32-byte-padded offsets
    CHECK(sc_gguf_n_tensors(g) == L - 1);
    CHECK(sc_gguf_find_tensor(g, "direction.0") == NULL);
    CHECK(sc_gguf_data_offset(g) % 32 == 0);
    for (size_t i = 0; i < sc_gguf_n_tensors(g); i++) {
        const sc_gguf_tensor_info *t = sc_gguf_tensor_at(g, i);
        char name[32];
        snprintf(name, sizeof name, "direction.%zu", i + 1);
        CHECK(!strcmp(t->name, name));
        CHECK(t->ndim == 1 && t->ne[0] == C && t->ggml_type == 0 && t->offset == i * 32);
    }
    // What llama.cpp does with the file (common/common.cpp + src/llama-adapter.cpp): direction.k
    // goes to data[(k-1)*C], and layer il >= 1 reads data[(il-1)*C] and adds it to block il's
    // output. Replay that and require layer il to receive our block il's direction.
    float cvec[(L - 1) * C];
    memset(cvec, 0, sizeof cvec);
    for (size_t i = 0; i < sc_gguf_n_tensors(g); i++) {
        const sc_gguf_tensor_info *t = sc_gguf_tensor_at(g, i);
        int k = atoi(t->name + strlen("direction."));
        CHECK(k >= 1 && k < L);
        if (k >= 1 && k < L) memcpy(cvec + (k - 1) * C, t->data, C * 4);
    }
    for (int il = 1; il < L; il++) CHECKF(!memcmp(cvec + (il - 1) * C, d + il * C, C * 4), "layer %d gets the wrong vector", il);
    sc_gguf_free(g);
}

static void test_gguf_codec(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/types.gguf", dir);
    float a[3] = {1, -2, 3.5f}, b[6] = {0, 1, 2, 3, 4, 5};
    sc_gguf_kv kv[] = {
        {.key = "u8", .type = SC_GGUF_U8, .v.u64 = 255}, {.key = "i8", .type = SC_GGUF_I8, .v.i64 = -128},
        {.key = "u16", .type = SC_GGUF_U16, .v.u64 = 65535}, {.key = "i16", .type = SC_GGUF_I16, .v.i64 = -32768},
        {.key = "u32", .type = SC_GGUF_U32, .v.u64 = 4000000000u}, {.key = "i32", .type = SC_GGUF_I32, .v.i64 = -2000000000},
        {.key = "f32", .type = SC_GGUF_F32, .v.f64 = 0.25}, {.key = "flag", .type = SC_GGUF_BOOL, .v.b = 1},
        {.key = "s", .type = SC_GGUF_STR, .v.str = "h\xc3\xa9llo"}, {.key = "u64", .type = SC_GGUF_U64, .v.u64 = UINT64_MAX},
        {.key = "i64", .type = SC_GGUF_I64, .v.i64 = INT64_MIN}, {.key = "f64", .type = SC_GGUF_F64, .v.f64 = -1e300},
        {.key = "empty", .type = SC_GGUF_STR, .v.str = ""},
    };
    size_t nkv = sizeof kv / sizeof kv[0];
    sc_gguf_tensor t[] = {{.name = "a", .ndim = 1, .ne = {3}, .data = a}, {.name = "b", .ndim = 2, .ne = {3, 2}, .data = b},
                          {.name = "z", .ndim = 1, .ne = {0}, .data = NULL}};
    CHECK_OK(sc_gguf_write(p, kv, nkv, t, 3));
    sc_gguf *g = NULL;
    CHECK_OK(sc_gguf_read(p, &g));
    if (g) {
        CHECK(sc_gguf_n_kv(g) == nkv + 1);   // + general.alignment
        for (size_t i = 0; i < nkv; i++) {
            const sc_gguf_kv *r = sc_gguf_kv_at(g, i);
            CHECK(!strcmp(r->key, kv[i].key) && r->type == kv[i].type);
            if (r->type == SC_GGUF_STR) CHECK(!strcmp(r->v.str, kv[i].v.str));
            else if (r->type == SC_GGUF_F32 || r->type == SC_GGUF_F64) CHECK(r->v.f64 == kv[i].v.f64);
            else if (r->type == SC_GGUF_BOOL) CHECK(r->v.b == 1);
            else CHECKF(r->v.u64 == kv[i].v.u64, "%s: %llu != %llu", r->key, (unsigned long long)r->v.u64, (unsigned long long)kv[i].v.u64);
        }
        const sc_gguf_tensor_info *tb = sc_gguf_find_tensor(g, "b");
        CHECK(tb && tb->ndim == 2 && tb->ne[0] == 3 && tb->ne[1] == 2 && tb->offset == 32 && !memcmp(tb->data, b, sizeof b));
        const sc_gguf_tensor_info *tz = sc_gguf_find_tensor(g, "z");
        CHECK(tz && tz->ne[0] == 0 && tz->offset == 64);
        sc_gguf_free(g);
    }

    // writer errors
    sc_gguf_kv dup[] = {{.key = "k", .type = SC_GGUF_U32, .v.u64 = 1}, {.key = "k", .type = SC_GGUF_U32, .v.u64 = 2}};
    CHECK_ERR(sc_gguf_write(p, dup, 2, NULL, 0), SC_ERR_ARG, p, "metadata key k appears twice");
    sc_gguf_kv al = {.key = "general.alignment", .type = SC_GGUF_U32, .v.u64 = 64};
    CHECK_ERR(sc_gguf_write(p, &al, 1, NULL, 0), SC_ERR_ARG, p, "general.alignment is set by the writer");
    sc_gguf_kv big = {.key = "x", .type = SC_GGUF_U8, .v.u64 = 256};
    CHECK_ERR(sc_gguf_write(p, &big, 1, NULL, 0), SC_ERR_ARG, p, "metadata x", "does not fit type u8");
    sc_gguf_kv arr = {.key = "x", .type = SC_GGUF_ARRAY};
    CHECK_ERR(sc_gguf_write(p, &arr, 1, NULL, 0), SC_ERR_ARG, "metadata x", "array", "cannot be written");
    sc_gguf_kv nul = {.key = "x", .type = SC_GGUF_STR, .v.str = NULL};
    CHECK_ERR(sc_gguf_write(p, &nul, 1, NULL, 0), SC_ERR_ARG, "metadata x: string value is NULL");
    sc_gguf_kv nokey = {.key = "", .type = SC_GGUF_U32};
    CHECK_ERR(sc_gguf_write(p, &nokey, 1, NULL, 0), SC_ERR_ARG, "metadata key is empty");
    sc_gguf_tensor td[] = {{.name = "a", .ndim = 1, .ne = {3}, .data = a}, {.name = "a", .ndim = 1, .ne = {3}, .data = a}};
    CHECK_ERR(sc_gguf_write(p, NULL, 0, td, 2), SC_ERR_ARG, p, "tensor name a appears twice");
    sc_gguf_tensor tl = {.name = "0123456789012345678901234567890123456789012345678901234567890123", .ndim = 1, .ne = {3}, .data = a};
    CHECK_ERR(sc_gguf_write(p, NULL, 0, &tl, 1), SC_ERR_ARG, "must have 1..63 bytes");
    sc_gguf_tensor t5 = {.name = "a", .ndim = 5, .ne = {1}, .data = a};
    CHECK_ERR(sc_gguf_write(p, NULL, 0, &t5, 1), SC_ERR_ARG, "tensor a: 5 dimensions");
    sc_gguf_tensor tn = {.name = "a", .ndim = 1, .ne = {-1}, .data = a};
    CHECK_ERR(sc_gguf_write(p, NULL, 0, &tn, 1), SC_ERR_ARG, "tensor a: dimension 0 (-1)");
    sc_gguf_tensor t0 = {.name = "a", .ndim = 1, .ne = {3}, .data = NULL};
    CHECK_ERR(sc_gguf_write(p, NULL, 0, &t0, 1), SC_ERR_ARG, "tensor a: data is NULL");
    CHECK_ERR(sc_gguf_write("/nonexistent-dir/x.gguf", NULL, 0, t, 1), SC_ERR_IO, "/nonexistent-dir/x.gguf");

    // reader errors on damaged copies of a good file
    CHECK_OK(sc_gguf_write(p, kv, nkv, t, 3));
    char *good;
    size_t n;
    CHECK_OK(sc_read_file(p, &good, &n));
    char q[4300];
    snprintf(q, sizeof q, "%s/bad.gguf", dir);
    sc_test_write(q, good, n - 1);   // the last tensor's padding is required (llama.cpp reads it)
    CHECK_ERR(sc_gguf_read(q, &g), SC_ERR_FORMAT, q, "data section", "cut short");
    CHECK(g == NULL);
    for (size_t cut = 0; cut < n - 100; cut += 7) {   // every header-area cut fails cleanly
        sc_test_write(q, good, cut);
        sc_error_clear();
        sc_status st = sc_gguf_read(q, &g);
        CHECKF(st == SC_ERR_FORMAT && strstr(sc_last_error(), q), "cut at %zu: %s: %s", cut, sc_status_name(st), sc_last_error());
    }
    char *bad = malloc(n);
    memcpy(bad, good, n);
    bad[0] = 'X';
    sc_test_write(q, bad, n);
    CHECK_ERR(sc_gguf_read(q, &g), SC_ERR_FORMAT, q, "not a GGUF file");
    memcpy(bad, good, n);
    bad[4] = 7;
    sc_test_write(q, bad, n);
    CHECK_ERR(sc_gguf_read(q, &g), SC_ERR_FORMAT, q, "GGUF version 7");
    memcpy(bad, good, n);
    char *al_at = memmem(bad, n, "general.alignment", 17);
    CHECK(al_at != NULL);
    if (al_at) {
        al_at[17 + 4] = 24;   // value follows the key and its u32 type
        sc_test_write(q, bad, n);
        CHECK_ERR(sc_gguf_read(q, &g), SC_ERR_FORMAT, q, "general.alignment 24 is not a power of two");
    }
    memcpy(bad, good, n);
    char *tb_at = memmem(bad, n, "\x01\0\0\0\0\0\0\0" "b", 9);   // tensor "b": name, n_dims, ne[2], type, offset
    CHECK(tb_at != NULL);
    if (tb_at) {
        tb_at[9 + 4 + 16 + 4] = 40;
        sc_test_write(q, bad, n);
        CHECK_ERR(sc_gguf_read(q, &g), SC_ERR_FORMAT, q, "tensor b: offset 40, expected 32");
    }
    memcpy(bad, good, n);
    char *ku8 = memmem(bad, n, "u8", 2);   // first key: its type follows
    if (ku8) {
        ku8[2] = 13;
        sc_test_write(q, bad, n);
        CHECK_ERR(sc_gguf_read(q, &g), SC_ERR_FORMAT, q, "metadata u8: value type 13 is not valid");
    }
    memcpy(bad, good, n);
    memcpy(memmem(bad, n, "i8", 2), "u8", 2);
    sc_test_write(q, bad, n);
    CHECK_ERR(sc_gguf_read(q, &g), SC_ERR_FORMAT, q, "metadata key u8 appears twice");
    CHECK_ERR(sc_gguf_read("/nonexistent/x.gguf", &g), SC_ERR_IO, "/nonexistent/x.gguf", "cannot open");
    free(bad);
    free(good);
}

static void test_export_errors(const char *dir, float *d) {
    char p[4200];
    snprintf(p, sizeof p, "%s/e.gguf", dir);
    sc_export_meta m = make_meta();
    sc_export_meta nomodel = {.model = NULL};
    CHECK_ERR(sc_export_direction_gguf(p, d, L, C, &nomodel), SC_ERR_ARG, p, "model name is missing");
    CHECK_ERR(sc_export_direction_safetensors(p, d, L, C, NULL), SC_ERR_ARG, p, "model name is missing");
    CHECK_ERR(sc_export_direction_gguf(p, d, 1, C, &m), SC_ERR_SHAPE, p, "no block llama.cpp can steer");
    CHECK_ERR(sc_export_direction_safetensors(p, d, 0, C, &m), SC_ERR_SHAPE, p, "[0,7] is empty");
    float keep = d[2 * C + 3];
    d[2 * C + 3] = NAN;
    CHECK_ERR(sc_export_direction_safetensors(p, d, L, C, &m), SC_ERR_NUMERIC, p, "block 2", "index 3");
    d[2 * C + 3] = INFINITY;
    CHECK_ERR(sc_export_direction_gguf(p, d, L, C, &m), SC_ERR_NUMERIC, p, "block 2", "index 3");
    d[2 * C + 3] = keep;
    const char *dk[] = {"steerclear.model"}, *dv[] = {"other"};
    sc_export_meta dupm = {.model = "m", .search = -1, .extra_keys = dk, .extra_values = dv, .n_extra = 1};
    CHECK_ERR(sc_export_direction_safetensors(p, d, L, C, &dupm), SC_ERR_ARG, p, "steerclear.model is given twice");
    const char *rk[] = {"general.name"}, *rv[] = {"x"};
    sc_export_meta res = {.model = "m", .search = -1, .extra_keys = rk, .extra_values = rv, .n_extra = 1};
    CHECK_ERR(sc_export_direction_gguf(p, d, L, C, &res), SC_ERR_ARG, p, "general.name is reserved");
    const char *nv[] = {NULL};
    sc_export_meta nullv = {.model = "m", .search = -1, .extra_keys = rk, .extra_values = nv, .n_extra = 1};
    CHECK_ERR(sc_export_direction_gguf(p, d, L, C, &nullv), SC_ERR_ARG, p, "extra metadata pair 0");
    CHECK_ERR(sc_export_direction_gguf("/nonexistent-dir/cv.gguf", d, L, C, &m), SC_ERR_IO, "/nonexistent-dir/cv.gguf");
    CHECK_ERR(sc_export_direction_safetensors("/nonexistent-dir/d.safetensors", d, L, C, &m), SC_ERR_IO, "/nonexistent-dir/d.safetensors");
    CHECK(!sc_file_exists(p));
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write")) return write_reference(argv[2]);
    const char *dir = sc_test_tmpdir();
    float d[L * C];
    make_dirs(d);
    test_safetensors(dir, d);
    test_gguf_export(dir, d);
    test_gguf_codec(dir);
    test_export_errors(dir, d);
    return sc_test_finish("test_export");
}
