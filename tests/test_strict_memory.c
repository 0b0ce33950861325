// test_strict_memory.c — the CPU backend's strict memory mode (SC_CPU_STRICT=1,
// src/backend/cpu/strict.c) refuses host arrays and freed or out-of-range pointers in ops, with
// a message naming the op and the argument, accepts backend memory (also inside an allocation),
// and computes what the plain backend computes. tests/strict_memory.sh runs the whole study in
// this mode. Pinned host memory (op->host_alloc) and the queued copies between it and backend
// memory (pipeline staging) are checked the same way.
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

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
    // pinned host memory and the queued copies (pipeline staging, src/dist/pipeline.c): the host
    // side must come from op->host_alloc, the device side from op->alloc; the copies move the bytes
    float *pin = NULL;
    CHECK_OK(be->op->host_alloc(be, sizeof(float) * 16, "pinned", (void **)&pin));
    if (pin) {
        void *ev = NULL;
        CHECK_OK(be->op->event_create(be, &ev));
        int never = 0;
        CHECK_ERR(be->op->event_wait(be, ev), SC_ERR_INTERNAL, "event_wait", "never recorded");
        CHECK_ERR(be->op->event_query(be, &never, &never), SC_ERR_INTERNAL, "event_query", "not made by event_create");
        CHECK_OK(be->op->download_async(be, pin, a, sizeof(float) * 16));
        CHECK_OK(be->op->event_record(be, ev));
        // strict events lag like a device's: pending at the first query, passed at the second
        int done = -1;
        CHECK_OK(be->op->event_query(be, ev, &done));
        CHECK(done == 0);
        CHECK_OK(be->op->event_query(be, ev, &done));
        CHECK(done == 1);
        CHECK_OK(be->op->event_record(be, ev));
        CHECK_OK(be->op->event_wait(be, ev));   // waiting passes it at once
        CHECK_OK(be->op->event_query(be, ev, &done));
        CHECK(done == 1);
        CHECK(memcmp(pin, back, sizeof back) == 0);
        for (int i = 0; i < 16; i++) pin[i] = -(float)i;
        CHECK_OK(be->op->upload_async(be, b + 4, pin + 2, sizeof(float) * 8));
        CHECK_OK(be->op->sync(be));
        float got[16];
        CHECK_OK(be->op->download(be, got, b, sizeof got));
        CHECK(got[3] == 3.0f && got[4] == -2.0f && got[11] == -9.0f && got[12] == 12.0f);
        CHECK_ERR(be->op->download_async(be, host, a, sizeof host), SC_ERR_INTERNAL, "download_async", "'host_dst'", "not pinned host memory");
        CHECK_ERR(be->op->upload_async(be, a, host, sizeof host), SC_ERR_INTERNAL, "upload_async", "'host_src'", "not pinned");
        CHECK_ERR(be->op->download_async(be, pin + 8, a, sizeof(float) * 16), SC_ERR_INTERNAL, "download_async", "'host_dst'");   // runs past the block
        CHECK_ERR(be->op->upload_async(be, pin, a, sizeof(float) * 4), SC_ERR_INTERNAL, "upload_async", "'dst'", "not backend memory");
        CHECK_ERR(be->op->add(be, a, pin, 16), SC_ERR_INTERNAL, "add", "'x'", "not backend memory");   // pinned is host memory
        be->op->event_destroy(be, ev);
        be->op->host_free(be, pin);
        float *pin2 = NULL;   // a freed pinned block is refused
        CHECK_OK(be->op->host_alloc(be, 64, "pinned 2", (void **)&pin2));
        be->op->host_free(be, pin2);
        CHECK_ERR(be->op->download_async(be, pin, a, 16), SC_ERR_INTERNAL, "download_async", "not pinned");
    }
    be->op->free(be, b);
    CHECK_ERR(be->op->add(be, a, b, 16), SC_ERR_INTERNAL, "add", "'x'");   // freed
    be->op->free(be, a);
    sc_backend_free(be);
    return sc_test_finish("test_strict_memory");
}
