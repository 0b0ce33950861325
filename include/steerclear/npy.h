// npy.h — NumPy .npy files: writing float32 / int32 arrays of any rank (version 1.0,
// little-endian, C order, atomic) and reading float32 / int32 / float64 (for tests and tools).
#ifndef STEERCLEAR_NPY_H
#define STEERCLEAR_NPY_H

#include "steerclear/core.h"

#define SC_NPY_MAX_DIMS 8

typedef enum { SC_NPY_F32 = 0, SC_NPY_I32, SC_NPY_F64 } sc_npy_dtype;

// Write `data` (prod(shape) elements, C order) as PATH (temporary file + rename).
// ndim 0 writes a scalar (one element).
sc_status sc_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);
sc_status sc_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape);

typedef struct {
    sc_npy_dtype dtype;
    int ndim;
    int64_t shape[SC_NPY_MAX_DIMS];
    size_t count;          // number of elements
    void *data;            // float, int32_t or double according to dtype; owned, see sc_npy_free
} sc_npy_array;

// Read a version 1.x/2.x/3.x .npy file with descr '<f4', '<i4' or '<f8', C order.
sc_status sc_npy_read(const char *path, sc_npy_array *out);
void sc_npy_free(sc_npy_array *a);

#endif
