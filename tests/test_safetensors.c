// test_safetensors.c — safetensors reader and writer: round trip of every dtype, every header
// error path with its message, sharded directories with an index (and their error paths), and
// files written / read by an independent Python implementation (struct + json + torch).
#include "testutil.h"
#include "steerclear/safetensors.h"

#include <stdlib.h>
#include <unistd.h>

static char g_path[8192];
static const char *tmp_path(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", sc_test_tmpdir(), name);
    return g_path;
}

// A file made of an 8-byte length, `header` verbatim, then `data_len` zero bytes.
static void write_raw(const char *path, uint64_t hlen, const char *header, size_t data_len) {
    size_t n = strlen(header);
    size_t total = 8 + n + data_len;
    uint8_t *buf = calloc(1, total);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + 8, header, n);
    sc_test_write(path, (const char *)buf, total);
    free(buf);
}

// A well-formed file with the given header (length = header length).
static const char *bad_file(const char *name, const char *header, size_t data_len) {
    const char *p = tmp_path(name);
    write_raw(p, strlen(header), header, data_len);
    return p;
}

// ---------------------------------------------------------------------------------------

static void test_round_trip(void) {
    float f32[6] = {1.5f, -2.25f, 0.0f, 3.0e-8f, 1e30f, -0.0f};
    uint16_t f16[4], bf16[6];
    for (int i = 0; i < 4; i++) f16[i] = sc_f32_to_f16(0.5f * (float)i - 0.75f);
    for (int i = 0; i < 6; i++) bf16[i] = sc_f32_to_bf16(-3.0f + (float)i * 1.125f);
    int32_t i32[5] = {0, -1, 2147483647, -2147483647 - 1, 42};
    int64_t i64[2] = {-9000000000000000000LL, 123456789012345LL};
    float scalar = 7.0f;
    sc_st_write_tensor t[7] = {
        {"a.f32", SC_DTYPE_F32, 2, {2, 3}, f32},
        {"b.f16", SC_DTYPE_F16, 1, {4}, f16},
        {"c.bf16", SC_DTYPE_BF16, 3, {3, 2, 1}, bf16},
        {"d.i32", SC_DTYPE_I32, 1, {5}, i32},
        {"e.i64", SC_DTYPE_I64, 2, {1, 2}, i64},
        {"f.scalar", SC_DTYPE_F32, 0, {0}, &scalar},
        {"g.empty \"quoted\"", SC_DTYPE_F32, 2, {0, 3}, NULL},
    };
    const char *mk[] = {"format", "note"}, *mv[] = {"pt", "line\nbreak \"q\""};
    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(sc_st_write(path, t, 7, mk, mv, 2));
    sc_safetensors *st;
    CHECK_OK(sc_st_open_file(path, &st));
    if (!st) return;
    CHECK(sc_st_count(st) == 7);
    for (int i = 0; i < 7; i++) {
        const sc_st_tensor *r = sc_st_find(st, t[i].name);
        CHECKF(r != NULL, "tensor %s missing", t[i].name);
        if (!r) continue;
        CHECK(r->dtype == t[i].dtype && r->ndim == t[i].ndim);
        for (int d = 0; d < r->ndim; d++) CHECK(r->shape[d] == t[i].shape[d]);
        size_t nb = sc_st_numel(t[i].ndim, t[i].shape) * sc_dtype_size(t[i].dtype);
        CHECK(r->nbytes == nb);
        if (nb) CHECK(!memcmp(r->data, t[i].data, nb));
        CHECK(!strcmp(r->file, path));
        CHECK(sc_st_get(st, (size_t)i) == r);   // file order is the order written
    }
    CHECK((uintptr_t)sc_st_get(st, 0)->data % 8 == 0);
    CHECK(sc_st_find(st, "nope") == NULL);
    CHECK(sc_st_get(st, 7) == NULL);
    CHECK(sc_st_metadata(st, "format") && !strcmp(sc_st_metadata(st, "format"), "pt"));
    CHECK(sc_st_metadata(st, "note") && !strcmp(sc_st_metadata(st, "note"), mv[1]));
    CHECK(sc_st_metadata(st, "absent") == NULL);
    sc_st_close(st);

    // header length is a multiple of 8 (padding with spaces)
    char *buf;
    size_t n;
    CHECK_OK(sc_read_file(path, &buf, &n));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | (uint8_t)buf[i];
    CHECK(hlen % 8 == 0 && buf[8 + hlen - 1] == ' ');
    free(buf);

    // writer errors
    CHECK_ERR(sc_st_write(tmp_path("dup.safetensors"), (sc_st_write_tensor[]){{"x", SC_DTYPE_F32, 1, {1}, f32}, {"x", SC_DTYPE_F32, 1, {1}, f32}}, 2, NULL, NULL, 0),
              SC_ERR_ARG, "tensor x given twice");
    CHECK_ERR(sc_st_write(tmp_path("meta.safetensors"), (sc_st_write_tensor[]){{"__metadata__", SC_DTYPE_F32, 1, {1}, f32}}, 1, NULL, NULL, 0),
              SC_ERR_ARG, "reserved name");
    CHECK_ERR(sc_st_write("/nonexistent/dir/x.safetensors", t, 1, NULL, NULL, 0), SC_ERR_IO, "/nonexistent/dir/x.safetensors", "cannot open");
    CHECK(!sc_file_exists(tmp_path("dup.safetensors")));
    // streaming writer: wrong byte counts are caught and leave no file
    sc_st_writer *w;
    CHECK_OK(sc_st_writer_open(tmp_path("short.safetensors"), t, 1, NULL, NULL, 0, &w));
    CHECK_ERR(sc_st_writer_append(w, f32, 100), SC_ERR_INTERNAL, "more than the 24 announced");
    CHECK_OK(sc_st_writer_append(w, f32, 8));
    CHECK_ERR(sc_st_writer_finish(w), SC_ERR_INTERNAL, "8 bytes of tensor data written, the header announced 24");
    CHECK(!sc_file_exists(tmp_path("short.safetensors")));
}

static void test_header_errors(void) {
    sc_safetensors *st = (sc_safetensors *)1;
    const char *p;
    CHECK_ERR(sc_st_open_file(tmp_path("missing.safetensors"), &st), SC_ERR_IO, "missing.safetensors", "cannot open");
    CHECK(st == NULL);

    p = tmp_path("short.bin");
    sc_test_write(p, "\x05\x00\x00", 3);
    CHECK_ERR(sc_st_open_file(p, &st), SC_ERR_FORMAT, "short.bin", "3 bytes, too short");
    sc_test_write(p, "", 0);
    CHECK_ERR(sc_st_open_file(p, &st), SC_ERR_FORMAT, "0 bytes, too short");

    p = tmp_path("hlen.safetensors");
    write_raw(p, 1000, "{}", 10);
    CHECK_ERR(sc_st_open_file(p, &st), SC_ERR_FORMAT, "hlen.safetensors", "header length 1000 runs past the end of the 20-byte file");
    write_raw(p, UINT64_MAX, "{}", 0);
    CHECK_ERR(sc_st_open_file(p, &st), SC_ERR_FORMAT, "runs past the end");

    // a header length within the (sparse) file but above the 100 MB sanity limit
    p = tmp_path("huge.safetensors");
    write_raw(p, 150000000ull, "{}", 0);
    CHECK(truncate(p, 200000000) == 0);
    CHECK_ERR(sc_st_open_file(p, &st), SC_ERR_FORMAT, "header length 150000000 exceeds the 104857600-byte limit");
    unlink(p);

    CHECK_ERR(sc_st_open_file(bad_file("json.safetensors", "{\"a\": {\"dtype\": ", 0), &st), SC_ERR_FORMAT, "json.safetensors", "not valid JSON");
    CHECK_ERR(sc_st_open_file(bad_file("arr.safetensors", "[1,2]", 0), &st), SC_ERR_FORMAT, "not an object");
    CHECK_ERR(sc_st_open_file(bad_file("dtype.safetensors", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2), &st),
              SC_ERR_FORMAT, "dtype.safetensors", "tensor w", "unsupported dtype F8_E4M3");
    CHECK_ERR(sc_st_open_file(bad_file("nodtype.safetensors", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8), &st),
              SC_ERR_FORMAT, "tensor w", "\"dtype\"");
    CHECK_ERR(sc_st_open_file(bad_file("noshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8), &st),
              SC_ERR_FORMAT, "tensor w", "\"shape\"");
    CHECK_ERR(sc_st_open_file(bad_file("negshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8), &st),
              SC_ERR_FORMAT, "tensor w", "shape entry 1 is not a non-negative integer");
    CHECK_ERR(sc_st_open_file(bad_file("fracshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8), &st),
              SC_ERR_FORMAT, "shape entry 0 is not a non-negative integer");
    CHECK_ERR(sc_st_open_file(bad_file("size.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24), &st),
              SC_ERR_FORMAT, "size.safetensors", "tensor w", "shape [2,3] x F32 (24 bytes) does not match data_offsets [0,20] (20 bytes)");
    CHECK_ERR(sc_st_open_file(bad_file("overflow.safetensors", "{\"w\":{\"dtype\":\"I64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8), &st),
              SC_ERR_FORMAT, "tensor w", "too large");
    CHECK_ERR(sc_st_open_file(bad_file("overlap.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), &st),
              SC_ERR_FORMAT, "overlap.safetensors", "tensors a and b have overlapping data_offsets");
    CHECK_ERR(sc_st_open_file(bad_file("outside.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12), &st),
              SC_ERR_FORMAT, "outside.safetensors", "tensor w", "data_offsets [0,16] run past the end of the data area (12 bytes)");
    CHECK_ERR(sc_st_open_file(bad_file("nooff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", 16), &st),
              SC_ERR_FORMAT, "tensor w", "missing \"data_offsets\"");
    CHECK_ERR(sc_st_open_file(bad_file("off3.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 16), &st),
              SC_ERR_FORMAT, "missing \"data_offsets\"");
    CHECK_ERR(sc_st_open_file(bad_file("offneg.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 16), &st),
              SC_ERR_FORMAT, "data_offsets are not non-negative integers");
    CHECK_ERR(sc_st_open_file(bad_file("backwards.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16), &st),
              SC_ERR_FORMAT, "end before they begin");
    CHECK_ERR(sc_st_open_file(bad_file("entry.safetensors", "{\"w\":[1]}", 0), &st), SC_ERR_FORMAT, "tensor w: header entry is not an object");
    CHECK_ERR(sc_st_open_file(bad_file("meta.safetensors", "{\"__metadata__\":{\"k\":1}}", 0), &st),
              SC_ERR_FORMAT, "__metadata__ value for key 'k' is not a string");
    CHECK_ERR(sc_st_open_file(bad_file("dupname.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), &st),
              SC_ERR_FORMAT, "dupname.safetensors", "tensor a appears twice");
    // valid edge cases: empty header object, unpadded header, zero-size tensors sharing an offset
    CHECK_OK(sc_st_open_file(bad_file("empty.safetensors", "{}", 0), &st));
    if (st) { CHECK(sc_st_count(st) == 0 && sc_st_find(st, "x") == NULL); sc_st_close(st); }
    CHECK_OK(sc_st_open_file(bad_file("zero.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]}}", 6), &st));
    if (st) { CHECK(sc_st_count(st) == 2 && !strcmp(sc_st_get(st, 0)->name, "b")); sc_st_close(st); }
}

// ---------------------------------------------------------------------------------------
// Sharded directories

static void write_shard(const char *dir, const char *file, const char *const *names, size_t n, const float *vals) {
    sc_st_write_tensor t[8];
    for (size_t i = 0; i < n; i++) {
        t[i] = (sc_st_write_tensor){names[i], SC_DTYPE_F32, 1, {2}, vals + 2 * i};
    }
    char p[16384 + 64];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    CHECK_OK(sc_st_write(p, t, n, mk, mv, 1));
}

static void write_index(const char *dir, const char *weight_map) {
    char p[8192 + 64], text[4096];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    snprintf(text, sizeof text, "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {%s}}", weight_map);
    sc_test_write(p, text, strlen(text));
}

static void test_sharded(void) {
    char dir[8192];
    snprintf(dir, sizeof dir, "%s/sharded", sc_test_tmpdir());
    CHECK_OK(sc_mkdir_p(dir));
    sc_safetensors *st;
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_IO, "no weights found", "sharded/model.safetensors and", "sharded/model.safetensors.index.json");

    float vals[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const char *n1[] = {"x.a", "x.b"}, *n2[] = {"y.a", "y.b"};
    write_shard(dir, "model-00001-of-00002.safetensors", n1, 2, vals);
    write_shard(dir, "model-00002-of-00002.safetensors", n2, 2, vals + 4);
    write_index(dir, "\"x.a\": \"model-00001-of-00002.safetensors\", \"x.b\": \"model-00001-of-00002.safetensors\","
                     "\"y.a\": \"model-00002-of-00002.safetensors\", \"y.b\": \"model-00002-of-00002.safetensors\"");
    CHECK_OK(sc_st_open_dir(dir, &st));
    if (st) {
        CHECK(sc_st_count(st) == 4);
        const char *names[] = {"x.a", "x.b", "y.a", "y.b"};
        for (int i = 0; i < 4; i++) {
            const sc_st_tensor *t = sc_st_find(st, names[i]);
            CHECKF(t != NULL, "%s missing", names[i]);
            if (!t) continue;
            CHECK(((const float *)t->data)[0] == vals[2 * i] && ((const float *)t->data)[1] == vals[2 * i + 1]);
            CHECK(strstr(t->file, i < 2 ? "model-00001-of-00002" : "model-00002-of-00002") != NULL);
        }
        CHECK(sc_st_metadata(st, "format") && !strcmp(sc_st_metadata(st, "format"), "pt"));
        sc_st_close(st);
    }
    // index naming a missing shard file
    write_index(dir, "\"x.a\": \"model-00001-of-00002.safetensors\", \"z\": \"model-00009-of-00009.safetensors\"");
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_IO, "model.safetensors.index.json", "shard model-00009-of-00009.safetensors (listed for tensor z) not found",
              "looked for", "sharded/model-00009-of-00009.safetensors");
    // a tensor missing from its shard
    write_index(dir, "\"x.a\": \"model-00001-of-00002.safetensors\", \"y.c\": \"model-00002-of-00002.safetensors\"");
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_FORMAT, "tensor y.c is listed in shard model-00002-of-00002.safetensors, but",
              "model-00002-of-00002.safetensors does not contain it");
    // a tensor listed in the wrong shard
    write_index(dir, "\"x.a\": \"model-00002-of-00002.safetensors\", \"y.a\": \"model-00001-of-00002.safetensors\"");
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_FORMAT, "tensor x.a is listed in shard model-00002-of-00002.safetensors, but it is in",
              "model-00001-of-00002.safetensors");
    // malformed indexes
    write_index(dir, "\"x.a\": 3");
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_FORMAT, "weight_map entry for tensor x.a is not a file name");
    write_index(dir, "\"x.a\": \"../elsewhere.safetensors\"");
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_FORMAT, "plain file names inside the model directory");
    write_index(dir, "");
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_FORMAT, "\"weight_map\" is empty");
    char p[8192 + 64];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    sc_test_write(p, "{\"weight_map\": ", 15);
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_FORMAT, "model.safetensors.index.json: not valid JSON");
    sc_test_write(p, "{}", 2);
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_FORMAT, "missing \"weight_map\"");
    // a tensor stored in two shards
    const char *n3[] = {"y.a"};
    write_shard(dir, "model-00003.safetensors", n3, 1, vals);
    write_index(dir, "\"x.a\": \"model-00001-of-00002.safetensors\", \"y.a\": \"model-00002-of-00002.safetensors\","
                     "\"q\": \"model-00003.safetensors\"");
    CHECK_ERR(sc_st_open_dir(dir, &st), SC_ERR_FORMAT, "tensor y.a is in two shards", "model-00002-of-00002.safetensors", "model-00003.safetensors");
    // model.safetensors wins over an index
    write_shard(dir, "model.safetensors", n3, 1, vals + 6);
    CHECK_OK(sc_st_open_dir(dir, &st));
    if (st) {
        CHECK(sc_st_count(st) == 1 && ((const float *)sc_st_find(st, "y.a")->data)[0] == 7.0f);
        sc_st_close(st);
    }
}

// ---------------------------------------------------------------------------------------
// Independent reference: Python (struct + json + torch for bf16/f16 bit patterns)

static const char *py_writer =
    "import json, struct, sys, torch\n"
    "out = sys.argv[1]\n"
    "ts = {\n"
    "  'w.f32': torch.tensor([[0.5, -1.25, 3.0], [1e-3, -7.5, 2.0]], dtype=torch.float32),\n"
    "  'w.bf16': torch.linspace(-2, 2, 10, dtype=torch.float32).to(torch.bfloat16).reshape(2, 5),\n"
    "  'w.f16': (torch.arange(6, dtype=torch.float32) / 3 - 1).to(torch.float16),\n"
    "  'w.i64': torch.tensor([-5, 1 << 40], dtype=torch.int64),\n"
    "  'w.i32': torch.tensor([[7], [-9]], dtype=torch.int32),\n"
    "}\n"
    "codes = {torch.float32: 'F32', torch.bfloat16: 'BF16', torch.float16: 'F16', torch.int64: 'I64', torch.int32: 'I32'}\n"
    "header, blobs, off = {'__metadata__': {'source': 'python'}}, [], 0\n"
    "for name in reversed(list(ts)):  # data in reverse order, no header padding\n"
    "    t = ts[name]\n"
    "    b = t.contiguous().view(torch.uint8).numpy().tobytes() if t.dtype in (torch.bfloat16, torch.float16) else t.numpy().tobytes()\n"
    "    header[name] = {'dtype': codes[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}\n"
    "    blobs.append(b); off += len(b)\n"
    "h = json.dumps(header).encode()\n"
    "with open(out, 'wb') as f:\n"
    "    f.write(struct.pack('<Q', len(h))); f.write(h); [f.write(b) for b in blobs]\n"
    "for name, t in ts.items():\n"
    "    print(name, ' '.join(repr(float(x)) for x in t.flatten().tolist()))\n";

static const char *py_reader =
    "import json, struct, sys, torch\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "n = struct.unpack('<Q', data[:8])[0]\n"
    "assert (8 + n) % 8 == 0, 'data area not 8-aligned'\n"
    "h = json.loads(data[8:8 + n])\n"
    "assert h['__metadata__'] == {'format': 'pt'}, h['__metadata__']\n"
    "base = data[8 + n:]\n"
    "dt = {'F32': torch.float32, 'BF16': torch.bfloat16, 'F16': torch.float16, 'I32': torch.int32, 'I64': torch.int64}\n"
    "for name in sorted(k for k in h if k != '__metadata__'):\n"
    "    e = h[name]; b, en = e['data_offsets']\n"
    "    t = torch.frombuffer(bytearray(base[b:en]), dtype=dt[e['dtype']]).reshape(e['shape']) if en > b else torch.zeros(e['shape'])\n"
    "    print(name, e['dtype'], list(e['shape']), ' '.join(repr(float(x)) for x in t.flatten().tolist()))\n";

static int have_torch(void) {
    return system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
}

static void test_python_reference(void) {
    if (!have_torch()) { fprintf(stderr, "test_safetensors: /usr/bin/python3 without torch: Python reference skipped\n"); return; }
    char script[8192], ref[8192], cmd[32768], out[8192];
    snprintf(script, sizeof script, "%s/writer.py", sc_test_tmpdir());
    sc_test_write(script, py_writer, strlen(py_writer));
    snprintf(ref, sizeof ref, "%s/python.safetensors", sc_test_tmpdir());
    snprintf(out, sizeof out, "%s/python_values.txt", sc_test_tmpdir());
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s > %s", script, ref, out);
    CHECK(system(cmd) == 0);

    // our reader against the values Python printed
    sc_safetensors *st;
    CHECK_OK(sc_st_open_file(ref, &st));
    if (!st) return;
    CHECK(sc_st_count(st) == 5);
    CHECK(sc_st_metadata(st, "source") && !strcmp(sc_st_metadata(st, "source"), "python"));
    FILE *f = fopen(out, "r");
    CHECK(f != NULL);
    char line[4096];
    int lines = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = '\0';
        const sc_st_tensor *t = sc_st_find(st, line);
        CHECKF(t != NULL, "python tensor %s missing", line);
        if (!t) continue;
        lines++;
        size_t n = sc_st_numel(t->ndim, t->shape);
        char *p = sp + 1;
        for (size_t i = 0; i < n; i++) {
            double want = strtod(p, &p), got = 0;
            const uint8_t *d = (const uint8_t *)t->data + i * sc_dtype_size(t->dtype);
            float fv; uint16_t h; int32_t iv; int64_t lv;
            switch (t->dtype) {
            case SC_DTYPE_F32: memcpy(&fv, d, 4); got = fv; break;
            case SC_DTYPE_BF16: memcpy(&h, d, 2); got = sc_bf16_to_f32(h); break;
            case SC_DTYPE_F16: memcpy(&h, d, 2); got = sc_f16_to_f32(h); break;
            case SC_DTYPE_I32: memcpy(&iv, d, 4); got = iv; break;
            case SC_DTYPE_I64: memcpy(&lv, d, 8); got = (double)lv; break;
            }
            CHECKF(got == want, "%s[%zu]: ours %.9g, python %.9g", t->name, i, got, want);
        }
    }
    if (f) fclose(f);
    CHECK(lines == 5);
    const sc_st_tensor *bf = sc_st_find(st, "w.bf16");
    CHECK(bf && bf->dtype == SC_DTYPE_BF16 && bf->ndim == 2 && bf->shape[0] == 2 && bf->shape[1] == 5);

    // a file we write, read by Python: re-write everything Python wrote and compare printouts
    sc_st_write_tensor wt[5];
    for (size_t i = 0; i < 5; i++) {
        const sc_st_tensor *t = sc_st_get(st, i);
        wt[i] = (sc_st_write_tensor){t->name, t->dtype, t->ndim, {0}, t->data};
        memcpy(wt[i].shape, t->shape, sizeof t->shape);
    }
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    char mine[8192], mine_out[8192];
    snprintf(mine, sizeof mine, "%s/ours.safetensors", sc_test_tmpdir());
    CHECK_OK(sc_st_write(mine, wt, 5, mk, mv, 1));
    sc_st_close(st);
    snprintf(script, sizeof script, "%s/reader.py", sc_test_tmpdir());
    sc_test_write(script, py_reader, strlen(py_reader));
    snprintf(mine_out, sizeof mine_out, "%s/ours_values.txt", sc_test_tmpdir());
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s > %s", script, mine, mine_out);
    CHECK(system(cmd) == 0);
    // Python's view of our file must show the same values as Python's original tensors
    char *a, *b;
    size_t na, nb;
    CHECK_OK(sc_read_file(out, &a, &na));
    CHECK_OK(sc_read_file(mine_out, &b, &nb));
    if (a && b) {
        // out: "name v v v" in insertion order; mine_out: "name DTYPE [shape] v v v" sorted by name
        const char *names[] = {"w.bf16", "w.f16", "w.f32", "w.i32", "w.i64"};
        for (int i = 0; i < 5; i++) {
            char key[64];
            snprintf(key, sizeof key, "%s ", names[i]);
            char *pa = strstr(a, key), *pb = strstr(b, key);
            CHECKF(pa && pb, "%s missing from a Python printout", names[i]);
            if (!pa || !pb) continue;
            pa += strlen(key);
            pb = strchr(strchr(pb + strlen(key), ']'), ' ') + 1;   // skip "DTYPE [shape] "
            size_t la = strcspn(pa, "\n"), lb = strcspn(pb, "\n");
            CHECKF(la == lb && !strncmp(pa, pb, la), "%s: python read back '%.*s', wrote '%.*s'", names[i], (int)lb, pb, (int)la, pa);
        }
        CHECK(strstr(b, "w.bf16 BF16 [2, 5]") && strstr(b, "w.i64 I64 [2]") && strstr(b, "w.i32 I32 [2, 1]"));
    }
    free(a);
    free(b);
}

int main(void) {
    test_round_trip();
    test_header_errors();
    test_sharded();
    test_python_reference();
    return sc_test_finish("test_safetensors");
}
