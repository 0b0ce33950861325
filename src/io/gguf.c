// gguf.c — GGUF v3 writer for F32 tensors with scalar/string metadata, and a validating reader
// (see steerclear/gguf.h). Format knowledge from reading ggml-org/llama.cpp's ggml/src/gguf.cpp
// (header, kv and tensor-info encoding, alignment and offset rules) and docs on GGUF; no code
// taken from it. Leaves out: quantised types, writing arrays, big-endian GGUF.
#include "steerclear/gguf.h"

#include <stdlib.h>
#include <string.h>

#define GGUF_VERSION 3
#define GGML_TYPE_F32 0
#define GGML_TYPE_F16 1

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// ---------------------------------------------------------------------------------------
// Writer: a growable little-endian byte buffer

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} gbuf;

static void put(gbuf *b, const void *src, size_t len) {
    if (b->oom) return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + len) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    if (len) memcpy(b->p + b->n, src, len);
    b->n += len;
}
static void put_le(gbuf *b, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, (size_t)bytes);
}
static void put_str(gbuf *b, const char *s) {
    size_t n = strlen(s);
    put_le(b, n, 8);
    put(b, s, n);
}
static void put_zeros(gbuf *b, size_t n) {
    static const uint8_t z[64] = {0};
    while (n > 0) { size_t k = n < sizeof z ? n : sizeof z; put(b, z, k); n -= k; }
}
static void put_f32(gbuf *b, float f) { uint32_t u; memcpy(&u, &f, 4); put_le(b, u, 4); }
static void put_f64(gbuf *b, double f) { uint64_t u; memcpy(&u, &f, 8); put_le(b, u, 8); }

static const char *type_label(sc_gguf_type t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t <= SC_GGUF_F64 ? names[t] : "unknown";
}

// Check one kv is writable without loss.
static sc_status check_kv(const char *path, const sc_gguf_kv *kv) {
    if (!kv->key || !kv->key[0]) return sc_errorf(SC_ERR_ARG, "%s: metadata key is empty", path);
    const char *k = kv->key;
    if (!strcmp(k, "general.alignment"))
        return sc_errorf(SC_ERR_ARG, "%s: metadata key general.alignment is set by the writer (%d); drop it", path, SC_GGUF_ALIGNMENT);
    uint64_t u = kv->v.u64;
    int64_t i = kv->v.i64;
    int ok = 1;
    switch (kv->type) {
    case SC_GGUF_U8: ok = u <= UINT8_MAX; break;
    case SC_GGUF_U16: ok = u <= UINT16_MAX; break;
    case SC_GGUF_U32: ok = u <= UINT32_MAX; break;
    case SC_GGUF_I8: ok = i >= INT8_MIN && i <= INT8_MAX; break;
    case SC_GGUF_I16: ok = i >= INT16_MIN && i <= INT16_MAX; break;
    case SC_GGUF_I32: ok = i >= INT32_MIN && i <= INT32_MAX; break;
    case SC_GGUF_U64: case SC_GGUF_I64: case SC_GGUF_F32: case SC_GGUF_F64: case SC_GGUF_BOOL: break;
    case SC_GGUF_STR:
        if (!kv->v.str) return sc_errorf(SC_ERR_ARG, "%s: metadata %s: string value is NULL", path, k);
        break;
    default:
        return sc_errorf(SC_ERR_ARG, "%s: metadata %s: value type %s (%d) cannot be written (scalars and strings only)",
                         path, k, type_label(kv->type), (int)kv->type);
    }
    if (!ok) return sc_errorf(SC_ERR_ARG, "%s: metadata %s: value does not fit type %s", path, k, type_label(kv->type));
    return SC_OK;
}

static void put_kv(gbuf *b, const sc_gguf_kv *kv) {
    put_str(b, kv->key);
    put_le(b, (uint64_t)kv->type, 4);
    switch (kv->type) {
    case SC_GGUF_U8: case SC_GGUF_I8: put_le(b, kv->v.u64, 1); break;
    case SC_GGUF_U16: case SC_GGUF_I16: put_le(b, kv->v.u64, 2); break;
    case SC_GGUF_U32: case SC_GGUF_I32: put_le(b, kv->v.u64, 4); break;
    case SC_GGUF_U64: case SC_GGUF_I64: put_le(b, kv->v.u64, 8); break;
    case SC_GGUF_F32: put_f32(b, (float)kv->v.f64); break;
    case SC_GGUF_F64: put_f64(b, kv->v.f64); break;
    case SC_GGUF_BOOL: put_le(b, kv->v.b ? 1 : 0, 1); break;
    case SC_GGUF_STR: put_str(b, kv->v.str); break;
    default: break;   // rejected by check_kv
    }
}

sc_status sc_gguf_write(const char *path, const sc_gguf_kv *kvs, size_t n_kv,
                        const sc_gguf_tensor *tensors, size_t n_tensors) {
    // --- validate everything before writing a byte
    for (size_t i = 0; i < n_kv; i++) {
        SC_TRY(check_kv(path, &kvs[i]));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(kvs[i].key, kvs[j].key)) return sc_errorf(SC_ERR_ARG, "%s: metadata key %s appears twice", path, kvs[i].key);
    }
    uint64_t *nbytes = sc_calloc(n_tensors ? n_tensors : 1, sizeof *nbytes, "GGUF tensor sizes");
    if (!nbytes) return SC_ERR_MEM;
    sc_status st = SC_OK;
    for (size_t i = 0; i < n_tensors && st == SC_OK; i++) {
        const sc_gguf_tensor *t = &tensors[i];
        size_t len = t->name ? strlen(t->name) : 0;
        if (len == 0 || len > SC_GGUF_MAX_NAME) {
            st = sc_errorf(SC_ERR_ARG, "%s: tensor %zu: name '%s' must have 1..%d bytes", path, i, t->name ? t->name : "", SC_GGUF_MAX_NAME);
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t->name, tensors[j].name)) { st = sc_errorf(SC_ERR_ARG, "%s: tensor name %s appears twice", path, t->name); break; }
        if (st != SC_OK) break;
        if (t->ndim < 1 || t->ndim > SC_GGUF_MAX_DIMS) {
            st = sc_errorf(SC_ERR_ARG, "%s: tensor %s: %d dimensions, GGUF allows 1..%d", path, t->name, t->ndim, SC_GGUF_MAX_DIMS);
            break;
        }
        uint64_t n = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->ne[d] < 0 || (t->ne[d] > 0 && n > (UINT64_MAX / 8) / (uint64_t)t->ne[d])) {
                st = sc_errorf(SC_ERR_ARG, "%s: tensor %s: dimension %d (%lld) is negative or too large", path, t->name, d, (long long)t->ne[d]);
                break;
            }
            n *= (uint64_t)t->ne[d];
        }
        if (st == SC_OK && n > 0 && !t->data) st = sc_errorf(SC_ERR_ARG, "%s: tensor %s: data is NULL", path, t->name);
        nbytes[i] = 4 * n;
    }
    if (st != SC_OK) { free(nbytes); return st; }

    // --- header, metadata, tensor infos
    gbuf b = {0};
    put(&b, "GGUF", 4);
    put_le(&b, GGUF_VERSION, 4);
    put_le(&b, n_tensors, 8);
    put_le(&b, n_kv + 1, 8);
    for (size_t i = 0; i < n_kv; i++) put_kv(&b, &kvs[i]);
    sc_gguf_kv align = {.key = "general.alignment", .type = SC_GGUF_U32, .v.u64 = SC_GGUF_ALIGNMENT};
    put_kv(&b, &align);
    uint64_t off = 0;
    for (size_t i = 0; i < n_tensors; i++) {
        const sc_gguf_tensor *t = &tensors[i];
        put_str(&b, t->name);
        put_le(&b, (uint64_t)t->ndim, 4);
        for (int d = 0; d < t->ndim; d++) put_le(&b, (uint64_t)t->ne[d], 8);
        put_le(&b, GGML_TYPE_F32, 4);
        put_le(&b, off, 8);
        off += pad_to(nbytes[i], SC_GGUF_ALIGNMENT);
    }
    // --- data section: each tensor aligned and padded (the last one too)
    put_zeros(&b, pad_to(b.n, SC_GGUF_ALIGNMENT) - b.n);
    for (size_t i = 0; i < n_tensors; i++) {
        const float *x = tensors[i].data;
        for (uint64_t k = 0; k < nbytes[i] / 4; k++) put_f32(&b, x[k]);
        put_zeros(&b, pad_to(nbytes[i], SC_GGUF_ALIGNMENT) - nbytes[i]);
    }
    free(nbytes);
    if (b.oom) { free(b.p); return sc_errorf(SC_ERR_MEM, "%s: out of memory building the GGUF file", path); }
    st = sc_write_file_atomic(path, b.p, b.n);
    free(b.p);
    return st;
}

// ---------------------------------------------------------------------------------------
// Reader

struct sc_gguf {
    uint8_t *file;        // whole file
    size_t size;
    uint32_t version;
    sc_gguf_kv *kv;
    size_t n_kv;
    sc_gguf_tensor_info *t;
    size_t n_t;
    uint64_t data_off;
};

typedef struct {
    const uint8_t *p;
    size_t n, off;
    const char *path;
} cursor;

static sc_status need(cursor *c, uint64_t len, const char *what) {
    if (len > c->n - c->off)
        return sc_errorf(SC_ERR_FORMAT, "%s: truncated: %s needs %llu bytes at offset %zu but the file has %zu "
                         "(the file is cut short or not GGUF)", c->path, what, (unsigned long long)len, c->off, c->n);
    return SC_OK;
}
static sc_status rd_le(cursor *c, int bytes, uint64_t *v, const char *what) {
    SC_TRY(need(c, (uint64_t)bytes, what));
    uint64_t x = 0;
    for (int i = 0; i < bytes; i++) x |= (uint64_t)c->p[c->off + (size_t)i] << (8 * i);
    c->off += (size_t)bytes;
    *v = x;
    return SC_OK;
}
// A GGUF string as a new NUL-terminated copy.
static sc_status rd_str(cursor *c, char **out, const char *what) {
    uint64_t n;
    SC_TRY(rd_le(c, 8, &n, what));
    SC_TRY(need(c, n, what));
    char *s = sc_malloc((size_t)n + 1, what);
    if (!s) return SC_ERR_MEM;
    memcpy(s, c->p + c->off, (size_t)n);
    s[n] = '\0';
    c->off += (size_t)n;
    *out = s;
    return SC_OK;
}

static int scalar_size(uint32_t t) {
    switch (t) {
    case SC_GGUF_U8: case SC_GGUF_I8: case SC_GGUF_BOOL: return 1;
    case SC_GGUF_U16: case SC_GGUF_I16: return 2;
    case SC_GGUF_U32: case SC_GGUF_I32: case SC_GGUF_F32: return 4;
    case SC_GGUF_U64: case SC_GGUF_I64: case SC_GGUF_F64: return 8;
    default: return 0;
    }
}

static sc_status rd_scalar(cursor *c, uint32_t type, sc_gguf_kv *kv) {
    int sz = scalar_size(type);
    uint64_t raw;
    SC_TRY(rd_le(c, sz, &raw, kv->key));
    switch (type) {
    case SC_GGUF_I8: kv->v.i64 = (int8_t)raw; break;
    case SC_GGUF_I16: kv->v.i64 = (int16_t)raw; break;
    case SC_GGUF_I32: kv->v.i64 = (int32_t)raw; break;
    case SC_GGUF_I64: kv->v.i64 = (int64_t)raw; break;
    case SC_GGUF_F32: { uint32_t u = (uint32_t)raw; float f; memcpy(&f, &u, 4); kv->v.f64 = f; break; }
    case SC_GGUF_F64: { double f; memcpy(&f, &raw, 8); kv->v.f64 = f; break; }
    case SC_GGUF_BOOL: kv->v.b = raw != 0; break;
    default: kv->v.u64 = raw; break;
    }
    return SC_OK;
}

static sc_status read_kvs(cursor *c, sc_gguf *g) {
    for (size_t i = 0; i < g->n_kv; i++) {
        sc_gguf_kv *kv = &g->kv[i];
        char *key;
        SC_TRY(rd_str(c, &key, "metadata key"));
        kv->key = key;
        if (!key[0]) return sc_errorf(SC_ERR_FORMAT, "%s: metadata key %zu is empty", c->path, i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(key, g->kv[j].key)) return sc_errorf(SC_ERR_FORMAT, "%s: metadata key %s appears twice", c->path, key);
        uint64_t type;
        SC_TRY(rd_le(c, 4, &type, key));
        kv->type = (sc_gguf_type)type;
        if (type == SC_GGUF_STR) {
            char *s;
            SC_TRY(rd_str(c, &s, key));
            kv->v.str = s;
        } else if (type == SC_GGUF_ARRAY) {
            uint64_t et, n;
            SC_TRY(rd_le(c, 4, &et, key));
            SC_TRY(rd_le(c, 8, &n, key));
            kv->elem_type = (sc_gguf_type)et;
            kv->n = n;
            if (et == SC_GGUF_STR) {
                for (uint64_t k = 0; k < n; k++) {
                    uint64_t len;
                    SC_TRY(rd_le(c, 8, &len, key));
                    SC_TRY(need(c, len, key));
                    c->off += (size_t)len;
                }
            } else {
                int sz = scalar_size((uint32_t)et);
                if (!sz) return sc_errorf(SC_ERR_FORMAT, "%s: metadata %s: array element type %llu is not valid", c->path, key, (unsigned long long)et);
                if (n > (c->n - c->off) / (uint64_t)sz) SC_TRY(need(c, UINT64_MAX, key));
                c->off += (size_t)(n * (uint64_t)sz);
            }
        } else if (scalar_size((uint32_t)type)) {
            SC_TRY(rd_scalar(c, (uint32_t)type, kv));
        } else {
            return sc_errorf(SC_ERR_FORMAT, "%s: metadata %s: value type %llu is not valid", c->path, key, (unsigned long long)type);
        }
    }
    return SC_OK;
}

static sc_status read_tensor_infos(cursor *c, sc_gguf *g) {
    for (size_t i = 0; i < g->n_t; i++) {
        sc_gguf_tensor_info *t = &g->t[i];
        char *name;
        SC_TRY(rd_str(c, &name, "tensor name"));
        t->name = name;
        if (strlen(name) > SC_GGUF_MAX_NAME)
            return sc_errorf(SC_ERR_FORMAT, "%s: tensor name %s is longer than %d bytes", c->path, name, SC_GGUF_MAX_NAME);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(name, g->t[j].name)) return sc_errorf(SC_ERR_FORMAT, "%s: tensor name %s appears twice", c->path, name);
        uint64_t nd, v;
        SC_TRY(rd_le(c, 4, &nd, name));
        if (nd > SC_GGUF_MAX_DIMS)
            return sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: %llu dimensions (at most %d)", c->path, name, (unsigned long long)nd, SC_GGUF_MAX_DIMS);
        t->ndim = (int)nd;
        for (int d = 0; d < SC_GGUF_MAX_DIMS; d++) {
            t->ne[d] = 1;
            if (d < t->ndim) {
                SC_TRY(rd_le(c, 8, &v, name));
                if ((int64_t)v < 0) return sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: dimension %d is negative", c->path, name, d);
                t->ne[d] = (int64_t)v;
            }
        }
        SC_TRY(rd_le(c, 4, &v, name));
        t->ggml_type = (uint32_t)v;
        SC_TRY(rd_le(c, 8, &t->offset, name));
    }
    return SC_OK;
}

static sc_status read_all(const char *path, sc_gguf *g) {
    cursor c = {g->file, g->size, 0, path};
    SC_TRY(need(&c, 4, "magic"));
    if (memcmp(g->file, "GGUF", 4) != 0)
        return sc_errorf(SC_ERR_FORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x, want \"GGUF\")", path,
                         g->file[0], g->file[1], g->file[2], g->file[3]);
    c.off = 4;
    uint64_t ver, nt, nkv;
    SC_TRY(rd_le(&c, 4, &ver, "version"));
    if (ver != 2 && ver != 3)
        return sc_errorf(SC_ERR_FORMAT, "%s: GGUF version %llu is not supported (2 or 3)", path, (unsigned long long)ver);
    g->version = (uint32_t)ver;
    SC_TRY(rd_le(&c, 8, &nt, "tensor count"));
    SC_TRY(rd_le(&c, 8, &nkv, "metadata count"));
    // every kv takes at least 12 bytes and every tensor info at least 24: bounds the allocations
    if (nkv > g->size / 12 || nt > g->size / 24)
        return sc_errorf(SC_ERR_FORMAT, "%s: header claims %llu tensors and %llu metadata pairs, more than the file can hold",
                         path, (unsigned long long)nt, (unsigned long long)nkv);
    g->n_kv = (size_t)nkv;
    g->n_t = (size_t)nt;
    g->kv = sc_calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv, "GGUF metadata");
    g->t = sc_calloc(g->n_t ? g->n_t : 1, sizeof *g->t, "GGUF tensor infos");
    if (!g->kv || !g->t) return SC_ERR_MEM;
    SC_TRY(read_kvs(&c, g));
    uint64_t align = 32;
    const sc_gguf_kv *a = sc_gguf_find_kv(g, "general.alignment");
    if (a) {
        if (a->type != SC_GGUF_U32)
            return sc_errorf(SC_ERR_FORMAT, "%s: general.alignment has type %s, must be u32", path, type_label(a->type));
        align = a->v.u64;
        if (align == 0 || (align & (align - 1)))
            return sc_errorf(SC_ERR_FORMAT, "%s: general.alignment %llu is not a power of two", path, (unsigned long long)align);
    }
    SC_TRY(read_tensor_infos(&c, g));
    g->data_off = pad_to(c.off, align);
    uint64_t run = 0;
    for (size_t i = 0; i < g->n_t; i++) {
        sc_gguf_tensor_info *t = &g->t[i];
        uint64_t esz = t->ggml_type == GGML_TYPE_F32 ? 4 : t->ggml_type == GGML_TYPE_F16 ? 2 : 0;
        if (!esz)
            return sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: ggml type %u is not supported by this reader (F32, F16)", path, t->name, t->ggml_type);
        if (t->offset != run)
            return sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: offset %llu, expected %llu (tensors must follow each other, "
                             "each padded to %llu bytes)", path, t->name, (unsigned long long)t->offset,
                             (unsigned long long)run, (unsigned long long)align);
        uint64_t n = esz;
        for (int d = 0; d < SC_GGUF_MAX_DIMS; d++) {
            if (t->ne[d] > 0 && n > UINT64_MAX / 2 / (uint64_t)t->ne[d])
                return sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: size overflows", path, t->name);
            n *= (uint64_t)t->ne[d];
        }
        run += pad_to(n, align);
        t->data = g->file + g->data_off + t->offset;
    }
    if (g->n_t > 0 && (g->data_off > g->size || run > g->size - g->data_off))
        return sc_errorf(SC_ERR_FORMAT, "%s: the data section needs %llu bytes from offset %llu but the file has %zu "
                         "(the file is cut short)", path, (unsigned long long)run, (unsigned long long)g->data_off, g->size);
    return SC_OK;
}

sc_status sc_gguf_read(const char *path, sc_gguf **out) {
    *out = NULL;
    sc_gguf *g = sc_calloc(1, sizeof *g, "GGUF reader");
    if (!g) return SC_ERR_MEM;
    char *buf;
    sc_status st = sc_read_file(path, &buf, &g->size);
    if (st != SC_OK) { free(g); return st; }
    g->file = (uint8_t *)buf;
    st = read_all(path, g);
    if (st != SC_OK) { sc_gguf_free(g); return st; }
    *out = g;
    return SC_OK;
}

void sc_gguf_free(sc_gguf *g) {
    if (!g) return;
    for (size_t i = 0; g->kv && i < g->n_kv; i++) {
        free((char *)g->kv[i].key);
        if (g->kv[i].type == SC_GGUF_STR) free((char *)g->kv[i].v.str);
    }
    for (size_t i = 0; g->t && i < g->n_t; i++) free((char *)g->t[i].name);
    free(g->kv);
    free(g->t);
    free(g->file);
    free(g);
}

uint32_t sc_gguf_version(const sc_gguf *g) { return g->version; }
size_t sc_gguf_n_kv(const sc_gguf *g) { return g->n_kv; }
const sc_gguf_kv *sc_gguf_kv_at(const sc_gguf *g, size_t i) { return i < g->n_kv ? &g->kv[i] : NULL; }
const sc_gguf_kv *sc_gguf_find_kv(const sc_gguf *g, const char *key) {
    for (size_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}
size_t sc_gguf_n_tensors(const sc_gguf *g) { return g->n_t; }
const sc_gguf_tensor_info *sc_gguf_tensor_at(const sc_gguf *g, size_t i) { return i < g->n_t ? &g->t[i] : NULL; }
const sc_gguf_tensor_info *sc_gguf_find_tensor(const sc_gguf *g, const char *name) {
    for (size_t i = 0; i < g->n_t; i++)
        if (g->t[i].name && !strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}
uint64_t sc_gguf_data_offset(const sc_gguf *g) { return g->data_off; }
