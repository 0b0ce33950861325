// gguf.h — writing GGUF v3 files (F32 tensors + typed metadata) and a small validating reader.
//
// Layout written (GGUF v3, little-endian): "GGUF", u32 version 3, u64 tensor count, u64 kv count;
// kv pairs (u64-length string key, u32 value type, value); tensor infos (name, u32 n_dims, u64 ne[],
// u32 ggml type, u64 offset into the data section); zero padding to the alignment; the data
// section, every tensor starting at a multiple of the alignment and padded to one (the last one
// too: llama.cpp's ggml/src/gguf.cpp reads the padded total and insists that offsets are exactly
// the running padded sizes). The writer always adds "general.alignment" (u32, SC_GGUF_ALIGNMENT).
// Leaves out: quantised tensor types, array-valued metadata on the write side, big-endian files.
#ifndef STEERCLEAR_GGUF_H
#define STEERCLEAR_GGUF_H

#include "steerclear/core.h"

#define SC_GGUF_ALIGNMENT 32
#define SC_GGUF_MAX_DIMS 4      // GGML_MAX_DIMS
#define SC_GGUF_MAX_NAME 63     // tensor names must be shorter than GGML_MAX_NAME (64)

// GGUF metadata value types (numbers fixed by the format).
typedef enum {
    SC_GGUF_U8 = 0, SC_GGUF_I8 = 1, SC_GGUF_U16 = 2, SC_GGUF_I16 = 3, SC_GGUF_U32 = 4, SC_GGUF_I32 = 5,
    SC_GGUF_F32 = 6, SC_GGUF_BOOL = 7, SC_GGUF_STR = 8, SC_GGUF_ARRAY = 9, SC_GGUF_U64 = 10,
    SC_GGUF_I64 = 11, SC_GGUF_F64 = 12,
} sc_gguf_type;

// One metadata pair. The writer accepts scalar types and strings; the reader also reports
// arrays (type SC_GGUF_ARRAY, elem_type and n set, values not kept).
typedef struct {
    const char *key;
    sc_gguf_type type;
    union {
        uint64_t u64;     // also U8/U16/U32 (zero-extended)
        int64_t i64;      // also I8/I16/I32 (sign-extended)
        double f64;       // also F32
        int b;            // BOOL
        const char *str;  // STR (NUL-terminated; the reader's copies stay valid until sc_gguf_free)
    } v;
    sc_gguf_type elem_type;   // reader, arrays only
    uint64_t n;               // reader, arrays only
} sc_gguf_kv;

// One F32 tensor. ne[] uses GGML's order: ne[0] is the contiguous (fastest) dimension, so a
// C array float x[R][C] is ndim 2, ne = {C, R}.
typedef struct {
    const char *name;
    int ndim;
    int64_t ne[SC_GGUF_MAX_DIMS];
    const float *data;
} sc_gguf_tensor;

// Write PATH atomically (temporary + rename). Keys must be non-empty and unique (and must not
// be general.alignment, which the writer adds); tensor names unique, shorter than 64 bytes.
sc_status sc_gguf_write(const char *path, const sc_gguf_kv *kvs, size_t n_kv,
                        const sc_gguf_tensor *tensors, size_t n_tensors);

// ---------------------------------------------------------------------------------------
// Reader: loads the whole file and checks it the way llama.cpp's loader does (magic, version 2
// or 3, known value types, unique keys and tensor names, u32 power-of-two general.alignment,
// at most 4 dims, offsets equal to the running padded sizes, data inside the file).
typedef struct {
    const char *name;
    int ndim;
    int64_t ne[SC_GGUF_MAX_DIMS];
    uint32_t ggml_type;          // 0 = F32
    uint64_t offset;             // relative to the data section
    const void *data;            // inside the loaded file
} sc_gguf_tensor_info;

typedef struct sc_gguf sc_gguf;
sc_status sc_gguf_read(const char *path, sc_gguf **out);
void sc_gguf_free(sc_gguf *g);
uint32_t sc_gguf_version(const sc_gguf *g);
size_t sc_gguf_n_kv(const sc_gguf *g);
const sc_gguf_kv *sc_gguf_kv_at(const sc_gguf *g, size_t i);
const sc_gguf_kv *sc_gguf_find_kv(const sc_gguf *g, const char *key);        // NULL if absent
size_t sc_gguf_n_tensors(const sc_gguf *g);
const sc_gguf_tensor_info *sc_gguf_tensor_at(const sc_gguf *g, size_t i);
const sc_gguf_tensor_info *sc_gguf_find_tensor(const sc_gguf *g, const char *name);   // NULL if absent
uint64_t sc_gguf_data_offset(const sc_gguf *g);   // file offset of the data section

#endif
