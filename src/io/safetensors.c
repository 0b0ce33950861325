// safetensors.c — the safetensors format: a validated, memory-mapped reader (one file or a
// sharded directory with model.safetensors.index.json) and an atomic writer (whole tensors
// or streamed in pieces).
//
// Format: 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, NAME: {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...}
// then the data area; offsets are relative to its start. We write headers padded with spaces
// so the data area starts 8-byte aligned.
//
// Leaves out: dtypes other than F32/F16/BF16/I32/I64 (an error naming the dtype), big-endian
// hosts, and the rule of the reference implementation that the data area has no holes (we
// only require spans inside the area and not overlapping).
#include "steerclear/safetensors.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SC_ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)   // 100 MB: real headers are < 1 MB
#define SC_ST_MAX_EXACT 9007199254740992.0                // 2^53: JSON numbers stay exact below

static int dtype_from_name(const char *s, sc_dtype *out) {
    static const sc_dtype all[] = {SC_DTYPE_F32, SC_DTYPE_F16, SC_DTYPE_BF16, SC_DTYPE_I32, SC_DTYPE_I64};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, sc_dtype_name(all[i]))) { *out = all[i]; return 1; }
    return 0;
}

size_t sc_st_numel(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return SIZE_MAX;
        if (shape[d] == 0) return 0;   // a zero dimension wins over any overflow elsewhere
    }
    for (int d = 0; d < ndim; d++) {
        uint64_t s = (uint64_t)shape[d];
        if (s > SIZE_MAX / n) return SIZE_MAX;
        n *= (size_t)s;
    }
    return n;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

// ---------------------------------------------------------------------------------------
// Reader state

typedef struct {
    char *path;
    void *map;
    size_t size;
} st_shard;

struct sc_safetensors {
    st_shard *shards;
    size_t n_shards, cap_shards;
    sc_st_tensor *tensors;          // file order: shard by shard, by data offset
    size_t n, cap;
    const sc_st_tensor **by_name;   // sorted by name, built once all files are read
    char **meta_keys, **meta_values;
    size_t n_meta, cap_meta;
};

void sc_st_close(sc_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free((char *)st->tensors[i].name);
    for (size_t i = 0; i < st->n_shards; i++) {
        if (st->shards[i].map) munmap(st->shards[i].map, st->shards[i].size);
        free(st->shards[i].path);
    }
    for (size_t i = 0; i < st->n_meta; i++) { free(st->meta_keys[i]); free(st->meta_values[i]); }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->shards);
    free(st->tensors);
    free(st->by_name);
    free(st);
}

size_t sc_st_count(const sc_safetensors *st) { return st->n; }
const sc_st_tensor *sc_st_get(const sc_safetensors *st, size_t i) { return i < st->n ? &st->tensors[i] : NULL; }

static int cmp_tensor_ptr_name(const void *a, const void *b) {
    return strcmp((*(const sc_st_tensor *const *)a)->name, (*(const sc_st_tensor *const *)b)->name);
}

static int cmp_key_tensor(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const sc_st_tensor *const *)elem)->name);
}

const sc_st_tensor *sc_st_find(const sc_safetensors *st, const char *name) {
    if (!st->by_name || st->n == 0) return NULL;
    const sc_st_tensor *const *hit = bsearch(name, st->by_name, st->n, sizeof *st->by_name, cmp_key_tensor);
    return hit ? *hit : NULL;
}

const char *sc_st_metadata(const sc_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_values[i];
    return NULL;
}

static sc_status add_meta(sc_safetensors *st, const char *k, const char *v) {
    if (sc_st_metadata(st, k)) return SC_OK;   // sharded: the first shard's value wins
    if (st->n_meta == st->cap_meta) {
        size_t cap = st->cap_meta ? 2 * st->cap_meta : 8;
        char **nk = realloc(st->meta_keys, cap * sizeof *nk);
        if (!nk) return sc_errorf(SC_ERR_MEM, "out of memory for safetensors metadata");
        st->meta_keys = nk;
        char **nv = realloc(st->meta_values, cap * sizeof *nv);
        if (!nv) return sc_errorf(SC_ERR_MEM, "out of memory for safetensors metadata");
        st->meta_values = nv;
        st->cap_meta = cap;
    }
    char *ks = sc_strdup(k), *vs = sc_strdup(v);
    if (!ks || !vs) { free(ks); free(vs); return sc_errorf(SC_ERR_MEM, "out of memory for safetensors metadata"); }
    st->meta_keys[st->n_meta] = ks;
    st->meta_values[st->n_meta] = vs;
    st->n_meta++;
    return SC_OK;
}

// Sort by name and reject a name that appears twice (in one file's JSON or in two shards).
static sc_status build_name_index(sc_safetensors *st) {
    free(st->by_name);
    st->by_name = NULL;
    if (st->n == 0) return SC_OK;
    st->by_name = sc_malloc(st->n * sizeof *st->by_name, "safetensors name index");
    if (!st->by_name) return SC_ERR_MEM;
    for (size_t i = 0; i < st->n; i++) st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, st->n, sizeof *st->by_name, cmp_tensor_ptr_name);
    for (size_t i = 1; i < st->n; i++) {
        const sc_st_tensor *a = st->by_name[i - 1], *b = st->by_name[i];
        if (!strcmp(a->name, b->name)) {
            if (strcmp(a->file, b->file))
                return sc_errorf(SC_ERR_FORMAT, "tensor %s is in two shards, %s and %s (a checkpoint must store each tensor once)",
                                 a->name, a->file, b->file);
            return sc_errorf(SC_ERR_FORMAT, "%s: tensor %s appears twice in the header", a->file, a->name);
        }
    }
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Parsing one file

typedef struct { uint64_t begin, end; size_t idx; } st_span;

static int cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0) || v > SC_ST_MAX_EXACT || v != (double)(uint64_t)v) return 0;
    *out = (uint64_t)v;
    return 1;
}

static sc_status push_tensor(sc_safetensors *st, const sc_st_tensor *t) {
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 64;
        sc_st_tensor *nt = realloc(st->tensors, cap * sizeof *nt);
        if (!nt) return sc_errorf(SC_ERR_MEM, "out of memory for the safetensors tensor table");
        st->tensors = nt;
        st->cap = cap;
    }
    st->tensors[st->n++] = *t;
    return SC_OK;
}

static sc_status parse_header(sc_safetensors *st, const st_shard *sh, const char *json, uint64_t hlen,
                              const uint8_t *data, uint64_t data_size) {
    const char *path = sh->path;
    cJSON *root = cJSON_ParseWithLength(json, (size_t)hlen);
    if (!root) return sc_errorf(SC_ERR_FORMAT, "%s: header is not valid JSON (near byte %ld of the %llu-byte header); the file is corrupt or not safetensors",
                                path, cJSON_GetErrorPtr() ? (long)(cJSON_GetErrorPtr() - json) : -1L, (unsigned long long)hlen);
    sc_status rc = SC_OK;
    st_span *spans = NULL;
    size_t n_spans = 0, first = st->n;
    if (!cJSON_IsObject(root)) { rc = sc_errorf(SC_ERR_FORMAT, "%s: header is JSON but not an object", path); goto done; }
    size_t n_items = (size_t)cJSON_GetArraySize(root);
    spans = calloc(n_items ? n_items : 1, sizeof *spans);
    if (!spans) { rc = sc_errorf(SC_ERR_MEM, "%s: out of memory reading the header", path); goto done; }

    for (const cJSON *item = root->child; item; item = item->next) {
        const char *name = item->string ? item->string : "";
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(item)) { rc = sc_errorf(SC_ERR_FORMAT, "%s: __metadata__ is not an object", path); goto done; }
            for (const cJSON *m = item->child; m; m = m->next) {
                if (!cJSON_IsString(m)) { rc = sc_errorf(SC_ERR_FORMAT, "%s: __metadata__ value for key '%s' is not a string", path, m->string); goto done; }
                if ((rc = add_meta(st, m->string, m->valuestring)) != SC_OK) goto done;
            }
            continue;
        }
        if (!cJSON_IsObject(item)) { rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: header entry is not an object", path, name); goto done; }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
        sc_st_tensor t;
        memset(&t, 0, sizeof t);
        if (!cJSON_IsString(jd)) { rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: missing or non-string \"dtype\"", path, name); goto done; }
        if (!dtype_from_name(jd->valuestring, &t.dtype)) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: unsupported dtype %s (supported: F32, F16, BF16, I32, I64)", path, name, jd->valuestring);
            goto done;
        }
        if (!cJSON_IsArray(js)) { rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: missing or non-array \"shape\"", path, name); goto done; }
        int nd = cJSON_GetArraySize(js);
        if (nd > SC_ST_MAX_DIMS) { rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: %d dimensions, at most %d supported", path, name, nd, SC_ST_MAX_DIMS); goto done; }
        t.ndim = nd;
        int d = 0;
        for (const cJSON *e = js->child; e; e = e->next, d++) {
            uint64_t v;
            if (!json_uint(e, &v) || v > (uint64_t)INT64_MAX) {
                rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: shape entry %d is not a non-negative integer", path, name, d);
                goto done;
            }
            t.shape[d] = (int64_t)v;
        }
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: missing \"data_offsets\" [begin, end]", path, name);
            goto done;
        }
        uint64_t b, e;
        if (!json_uint(jo->child, &b) || !json_uint(jo->child->next, &e)) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: data_offsets are not non-negative integers", path, name);
            goto done;
        }
        if (e < b) { rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu,%llu] end before they begin", path, name, (unsigned long long)b, (unsigned long long)e); goto done; }
        size_t numel = sc_st_numel(t.ndim, t.shape), es = sc_dtype_size(t.dtype);
        char sh_s[160];
        shape_str(sh_s, sizeof sh_s, t.ndim, t.shape);
        if (numel == SIZE_MAX || (numel && es > SIZE_MAX / numel)) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: shape %s is too large (size overflows)", path, name, sh_s);
            goto done;
        }
        if ((uint64_t)(numel * es) != e - b) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: shape %s x %s (%zu bytes) does not match data_offsets [%llu,%llu] (%llu bytes)",
                           path, name, sh_s, sc_dtype_name(t.dtype), numel * es, (unsigned long long)b, (unsigned long long)e,
                           (unsigned long long)(e - b));
            goto done;
        }
        if (e > data_size) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu,%llu] run past the end of the data area (%llu bytes); the file is truncated or corrupt",
                           path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_size);
            goto done;
        }
        t.name = sc_strdup(name);
        if (!t.name) { rc = sc_errorf(SC_ERR_MEM, "%s: out of memory", path); goto done; }
        t.file = sh->path;
        t.data = data + b;
        t.nbytes = (size_t)(e - b);
        if ((rc = push_tensor(st, &t)) != SC_OK) { free((char *)t.name); goto done; }
        spans[n_spans].begin = b;
        spans[n_spans].end = e;
        spans[n_spans].idx = st->n - 1;
        n_spans++;
    }
    // overlapping spans (empty tensors overlap nothing)
    qsort(spans, n_spans, sizeof *spans, cmp_span);
    uint64_t reach = 0;
    size_t reach_idx = 0;
    for (size_t i = 0; i < n_spans; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (spans[i].begin < reach) {
            const char *a = st->tensors[reach_idx].name, *b = st->tensors[spans[i].idx].name;
            if (!strcmp(a, b)) rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s appears twice in the header", path, a);
            else rc = sc_errorf(SC_ERR_FORMAT, "%s: tensors %s and %s have overlapping data_offsets", path, a, b);
            goto done;
        }
        reach = spans[i].end;
        reach_idx = spans[i].idx;
    }
    // keep this file's tensors in data order
    if (n_spans > 1) {
        sc_st_tensor *tmp = malloc(n_spans * sizeof *tmp);
        if (!tmp) { rc = sc_errorf(SC_ERR_MEM, "%s: out of memory", path); goto done; }
        for (size_t i = 0; i < n_spans; i++) tmp[i] = st->tensors[spans[i].idx];
        memcpy(st->tensors + first, tmp, n_spans * sizeof *tmp);
        free(tmp);
    }
done:
    free(spans);
    cJSON_Delete(root);
    return rc;
}

static sc_status open_one(sc_safetensors *st, const char *path) {
    if (st->n_shards == st->cap_shards) {
        size_t cap = st->cap_shards ? 2 * st->cap_shards : 4;
        st_shard *ns = realloc(st->shards, cap * sizeof *ns);
        if (!ns) return sc_errorf(SC_ERR_MEM, "out of memory opening %s", path);
        st->shards = ns;
        st->cap_shards = cap;
    }
    st_shard *sh = &st->shards[st->n_shards];
    memset(sh, 0, sizeof *sh);
    sh->path = sc_strdup(path);
    if (!sh->path) return sc_errorf(SC_ERR_MEM, "out of memory opening %s", path);
    st->n_shards++;

    int fd;
    size_t fsize;
    SC_TRY(sc_open_regular(path, &fd, &fsize));   // a directory or FIFO is an error, never a hang
    uint64_t size = (uint64_t)fsize;
    if (size < 8) {
        close(fd);
        return sc_errorf(SC_ERR_FORMAT, "%s: file is %llu bytes, too short for the 8-byte header length (truncated or not safetensors)",
                         path, (unsigned long long)size);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int merr = errno;
    close(fd);
    if (map == MAP_FAILED) return sc_errorf(SC_ERR_IO, "%s: cannot mmap %llu bytes: %s", path, (unsigned long long)size, strerror(merr));
    sh->map = map;
    sh->size = (size_t)size;

    const uint8_t *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > size - 8)
        return sc_errorf(SC_ERR_FORMAT, "%s: header length %llu runs past the end of the %llu-byte file (truncated or not safetensors)",
                         path, (unsigned long long)hlen, (unsigned long long)size);
    if (hlen > SC_ST_MAX_HEADER)
        return sc_errorf(SC_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit (corrupt file?)",
                         path, (unsigned long long)hlen, (unsigned long long)SC_ST_MAX_HEADER);
    if (hlen < 2) return sc_errorf(SC_ERR_FORMAT, "%s: header length %llu is too short for a JSON object", path, (unsigned long long)hlen);
    return parse_header(st, sh, (const char *)p + 8, hlen, p + 8 + hlen, size - 8 - hlen);
}

sc_status sc_st_open_file(const char *path, sc_safetensors **out) {
    *out = NULL;
    sc_safetensors *st = calloc(1, sizeof *st);
    if (!st) return sc_errorf(SC_ERR_MEM, "out of memory opening %s", path);
    sc_status rc = open_one(st, path);
    if (rc == SC_OK) rc = build_name_index(st);
    if (rc != SC_OK) { sc_st_close(st); return rc; }
    *out = st;
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Model directories: model.safetensors, or model.safetensors.index.json + shards

static sc_status open_index(sc_safetensors *st, const char *dir, const char *index_path) {
    char *text = NULL;
    size_t len = 0;
    SC_TRY(sc_read_file(index_path, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return sc_errorf(SC_ERR_FORMAT, "%s: not valid JSON", index_path);
    sc_status rc = SC_OK;
    const char **shard_names = NULL;
    size_t n_shard_names = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) { rc = sc_errorf(SC_ERR_FORMAT, "%s: missing \"weight_map\" object", index_path); goto done; }
    int n_entries = cJSON_GetArraySize(wm);
    if (n_entries == 0) { rc = sc_errorf(SC_ERR_FORMAT, "%s: \"weight_map\" is empty", index_path); goto done; }
    shard_names = calloc((size_t)n_entries, sizeof *shard_names);
    if (!shard_names) { rc = sc_errorf(SC_ERR_MEM, "out of memory reading %s", index_path); goto done; }
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0]) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: weight_map entry for tensor %s is not a file name", index_path, e->string);
            goto done;
        }
        const char *f = e->valuestring;
        if (f[0] == '/' || strstr(f, "..")) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: weight_map entry for tensor %s names '%s'; shards must be plain file names inside the model directory",
                           index_path, e->string, f);
            goto done;
        }
        size_t k = 0;
        while (k < n_shard_names && strcmp(shard_names[k], f)) k++;
        if (k == n_shard_names) {
            shard_names[n_shard_names++] = f;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, f);
            if (!sc_file_exists(path)) {
                rc = sc_errorf(SC_ERR_IO, "%s: shard %s (listed for tensor %s) not found: looked for %s", index_path, f, e->string, path);
                goto done;
            }
            if ((rc = open_one(st, path)) != SC_OK) goto done;
        }
    }
    if ((rc = build_name_index(st)) != SC_OK) goto done;
    for (const cJSON *e = wm->child; e; e = e->next) {
        const sc_st_tensor *t = sc_st_find(st, e->string);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        if (!t) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s is listed in shard %s, but %s does not contain it", index_path, e->string, e->valuestring, path);
            goto done;
        }
        if (strcmp(t->file, path)) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s is listed in shard %s, but it is in %s", index_path, e->string, e->valuestring, t->file);
            goto done;
        }
    }
done:
    free(shard_names);
    cJSON_Delete(root);
    return rc;
}

sc_status sc_st_open_dir(const char *dir, sc_safetensors **out) {
    *out = NULL;
    char single[4096], index[4096];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    if (sc_file_exists(single)) return sc_st_open_file(single, out);
    if (!sc_file_exists(index))
        return sc_errorf(SC_ERR_IO, "%s: no weights found: looked for %s and %s", dir, single, index);
    sc_safetensors *st = calloc(1, sizeof *st);
    if (!st) return sc_errorf(SC_ERR_MEM, "out of memory opening %s", dir);
    sc_status rc = open_index(st, dir, index);
    if (rc != SC_OK) { sc_st_close(st); return rc; }
    *out = st;
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Writing

typedef struct { char *s; size_t n, cap; int oom; } strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}
static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_string(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; sb_put(b, esc, 2); }
        else if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); sb_put(b, esc, 6); }
        else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

struct sc_st_writer {
    FILE *f;
    char path[4096], tmp[4200];
    uint64_t expected, written;
};

void sc_st_writer_abort(sc_st_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    unlink(w->tmp);
    free(w);
}

sc_status sc_st_writer_open(const char *path, const sc_st_write_tensor *tensors, size_t n,
                            const char *const *meta_keys, const char *const *meta_values,
                            size_t n_meta, sc_st_writer **out) {
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        const sc_st_write_tensor *t = &tensors[i];
        if (!t->name || !t->name[0] || !strcmp(t->name, "__metadata__"))
            return sc_errorf(SC_ERR_ARG, "%s: tensor %zu has an empty or reserved name", path, i);
        if (t->ndim < 0 || t->ndim > SC_ST_MAX_DIMS || !sc_dtype_size(t->dtype))
            return sc_errorf(SC_ERR_ARG, "%s: tensor %s: bad ndim %d or dtype", path, t->name, t->ndim);
        if (sc_st_numel(t->ndim, t->shape) == SIZE_MAX)
            return sc_errorf(SC_ERR_ARG, "%s: tensor %s: negative or overflowing shape", path, t->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(tensors[j].name, t->name)) return sc_errorf(SC_ERR_ARG, "%s: tensor %s given twice", path, t->name);
    }
    strbuf b = {0};
    sb_str(&b, "{");
    if (n_meta) {
        sb_str(&b, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i) sb_str(&b, ",");
            sb_json_string(&b, meta_keys[i]);
            sb_str(&b, ":");
            sb_json_string(&b, meta_values[i]);
        }
        sb_str(&b, "}");
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const sc_st_write_tensor *t = &tensors[i];
        uint64_t nb = (uint64_t)sc_st_numel(t->ndim, t->shape) * sc_dtype_size(t->dtype);
        char num[64];
        if (i || n_meta) sb_str(&b, ",");
        sb_json_string(&b, t->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, sc_dtype_name(t->dtype));
        sb_str(&b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            sb_str(&b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + nb));
        sb_str(&b, num);
        off += nb;
    }
    sb_str(&b, "}");
    while ((8 + b.n) % 8) sb_str(&b, " ");   // data area starts 8-byte aligned
    if (b.oom) { free(b.s); return sc_errorf(SC_ERR_MEM, "%s: out of memory building the header", path); }

    sc_st_writer *w = calloc(1, sizeof *w);
    if (!w) { free(b.s); return sc_errorf(SC_ERR_MEM, "%s: out of memory", path); }
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
    w->expected = off;
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int e = errno;
        free(b.s);
        free(w);
        return sc_errorf(SC_ERR_IO, "%s: cannot open for writing: %s (check the directory exists and is writable)", path, strerror(e));
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
    int ok = fwrite(len8, 1, 8, w->f) == 8 && fwrite(b.s, 1, b.n, w->f) == b.n;
    free(b.s);
    if (!ok) {
        int e = errno;
        sc_st_writer_abort(w);
        return sc_errorf(SC_ERR_IO, "%s: write failed: %s (disk full?)", path, strerror(e));
    }
    *out = w;
    return SC_OK;
}

sc_status sc_st_writer_append(sc_st_writer *w, const void *data, size_t nbytes) {
    if (w->written + nbytes > w->expected)
        return sc_errorf(SC_ERR_INTERNAL, "%s: %llu bytes appended, more than the %llu announced in the header",
                         w->path, (unsigned long long)(w->written + nbytes), (unsigned long long)w->expected);
    if (nbytes && fwrite(data, 1, nbytes, w->f) != nbytes)
        return sc_errorf(SC_ERR_IO, "%s: write failed: %s (disk full?)", w->path, strerror(errno));
    w->written += nbytes;
    return SC_OK;
}

sc_status sc_st_writer_finish(sc_st_writer *w) {
    if (w->written != w->expected) {
        sc_status rc = sc_errorf(SC_ERR_INTERNAL, "%s: %llu bytes of tensor data written, the header announced %llu",
                                 w->path, (unsigned long long)w->written, (unsigned long long)w->expected);
        sc_st_writer_abort(w);
        return rc;
    }
    int ok = fflush(w->f) == 0 && fsync(fileno(w->f)) == 0;
    int e = errno;
    if (fclose(w->f) != 0) ok = 0;
    w->f = NULL;
    if (!ok) {
        sc_status rc = sc_errorf(SC_ERR_IO, "%s: write failed: %s (disk full?)", w->path, strerror(e));
        sc_st_writer_abort(w);
        return rc;
    }
    if (rename(w->tmp, w->path) != 0) {
        sc_status rc = sc_errorf(SC_ERR_IO, "%s: cannot rename %s into place: %s", w->path, w->tmp, strerror(errno));
        sc_st_writer_abort(w);
        return rc;
    }
    free(w);
    return SC_OK;
}

sc_status sc_st_write(const char *path, const sc_st_write_tensor *tensors, size_t n,
                      const char *const *meta_keys, const char *const *meta_values, size_t n_meta) {
    sc_st_writer *w;
    SC_TRY(sc_st_writer_open(path, tensors, n, meta_keys, meta_values, n_meta, &w));
    for (size_t i = 0; i < n; i++) {
        size_t nb = sc_st_numel(tensors[i].ndim, tensors[i].shape) * sc_dtype_size(tensors[i].dtype);
        if (nb && !tensors[i].data) { sc_st_writer_abort(w); return sc_errorf(SC_ERR_ARG, "%s: tensor %s has no data", path, tensors[i].name); }
        sc_status rc = sc_st_writer_append(w, tensors[i].data, nb);
        if (rc != SC_OK) { sc_st_writer_abort(w); return rc; }
    }
    return sc_st_writer_finish(w);
}
