// safetensors.h — reading (mmap, validated header, sharded index) and writing safetensors files.
//
// Reading validates the header before trusting anything: 8-byte length within the file,
// valid JSON, known dtype, shape x dtype size == byte span, spans inside the data area and
// not overlapping. Tensor data stays in the mapping (zero copy).
#ifndef STEERCLEAR_SAFETENSORS_H
#define STEERCLEAR_SAFETENSORS_H

#include "steerclear/core.h"

#define SC_ST_MAX_DIMS 8
typedef struct {
    const char *name;            // tensor name, owned by the file object
    const char *file;            // path of the shard it lives in
    sc_dtype dtype;
    int ndim;
    int64_t shape[SC_ST_MAX_DIMS];
    const void *data;            // inside the mapping
    size_t nbytes;
} sc_st_tensor;

typedef struct sc_safetensors sc_safetensors;

// Open one .safetensors file.
sc_status sc_st_open_file(const char *path, sc_safetensors **out);
// Open a model directory: model.safetensors, or the shards listed in model.safetensors.index.json.
sc_status sc_st_open_dir(const char *dir, sc_safetensors **out);
void sc_st_close(sc_safetensors *st);
size_t sc_st_count(const sc_safetensors *st);
const sc_st_tensor *sc_st_get(const sc_safetensors *st, size_t i);
const sc_st_tensor *sc_st_find(const sc_safetensors *st, const char *name);   // NULL if absent
// The "__metadata__" string value for key, or NULL.
const char *sc_st_metadata(const sc_safetensors *st, const char *key);

// Writing: tensors in the given order, optional string metadata (n_meta key/value pairs),
// written atomically (temporary file + rename).
typedef struct {
    const char *name;
    sc_dtype dtype;
    int ndim;
    int64_t shape[SC_ST_MAX_DIMS];
    const void *data;            // nbytes = prod(shape) * dtype size
} sc_st_write_tensor;
sc_status sc_st_write(const char *path, const sc_st_write_tensor *tensors, size_t n,
                      const char *const *meta_keys, const char *const *meta_values, size_t n_meta);

// Streaming writer (for models too large to hold in memory): the header is written from the
// shapes first (the `data` fields are ignored), then the tensors' bytes are appended in order
// with sc_st_writer_append, in any number of pieces. sc_st_writer_finish checks that exactly
// the announced bytes arrived, fsyncs and renames the temporary file over `path`;
// sc_st_writer_abort removes it. Both free the writer.
typedef struct sc_st_writer sc_st_writer;
sc_status sc_st_writer_open(const char *path, const sc_st_write_tensor *tensors, size_t n,
                            const char *const *meta_keys, const char *const *meta_values,
                            size_t n_meta, sc_st_writer **out);
sc_status sc_st_writer_append(sc_st_writer *w, const void *data, size_t nbytes);
sc_status sc_st_writer_finish(sc_st_writer *w);
void sc_st_writer_abort(sc_st_writer *w);
// Number of elements of a shape (0 for a zero dimension); SIZE_MAX on overflow.
size_t sc_st_numel(int ndim, const int64_t *shape);

#endif
