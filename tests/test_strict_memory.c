// test_strict_memory.c — the CPU backend's strict memory mode (SC_CPU_STRICT=1,
// src/backend/cpu/strict.c) refuses host arrays and freed or out-of-range pointers in ops, with
// a message naming the op and the argument, accepts backend memory (also inside an allocation),
// and computes what the plain backend computes. tests/strict_memory.sh runs the whole study in
// this mode.
#include "testutil.h"

#include <stdlib.h>

int main(void) {
    setenv("SC_CPU_STRICT", "1", 1);
    sc_backend *be = sc_backend_cpu_new();
    CHECK(be != NULL);
    if (!be) return sc_test_finish("test_strict_memory");
    CHECK(strstr(be->name, "strict memory") != NULL);
    CHECK(be->separate_memory == 1);
    float host[16];
    for (int i = 0; i < 16; i++) host[i] = (float)i;
    float *a = NULL, *b = NULL;
    CHECK_OK(sc_backend_alloc_floats(be, 16, "a", &a));
    CHECK_OK(sc_backend_alloc_floats(be, 16, "b", &b));
    CHECK_OK(be->op->upload(be, a, host, sizeof host));
    CHECK_OK(be->op->upload(be, b, host, sizeof host));
    CHECK_OK(be->op->add(be, a, b, 16));
    CHECK_OK(be->op->add(be, a + 8, b + 3, 8));   // inside allocations
    float back[16];
    CHECK_OK(be->op->download(be, back, a, sizeof back));
    CHECK(back[0] == 0.0f && back[7] == 14.0f && back[8] == 16.0f + 3.0f && back[15] == 30.0f + 10.0f);
    CHECK_ERR(be->op->add(be, a, host, 16), SC_ERR_INTERNAL, "add", "'x'", "not backend memory");
    CHECK_ERR(be->op->add_row(be, host, b, 1.0f, 2, 8), SC_ERR_INTERNAL, "add_row", "'h'");
    CHECK_ERR(be->op->rmsnorm(be, a, NULL, b, host, 1, 16, 1e-6f), SC_ERR_INTERNAL, "rmsnorm", "'w'");
    CHECK_ERR(be->op->download(be, back, host, sizeof back), SC_ERR_INTERNAL, "download", "'src'");
    float *end = a + 16;   // one past the allocation
    CHECK_ERR(be->op->memset(be, end, 0, 4), SC_ERR_INTERNAL, "memset", "'dst'");
    be->op->free(be, b);
    CHECK_ERR(be->op->add(be, a, b, 16), SC_ERR_INTERNAL, "add", "'x'");   // freed
    be->op->free(be, a);
    sc_backend_free(be);
    return sc_test_finish("test_strict_memory");
}
