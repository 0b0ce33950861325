// test_cuda_sdpa_graph.c — the operation graphs of attention through cuDNN (src/backend/cuda/sdpa.c),
// checked without a GPU: every tensor and operation of the forward and backward graph is built
// and finalized by libcudnn itself, which checks attribute types, dimensions, strides and data
// types of each operation (a matmul whose operands do not fit fails here). What needs a GPU (the
// operation graph, the engine heuristics, the plans, the numbers) is tests/test_cuda_backend.c's.
// Skipped (exit 77) in builds without the CUDA backend, where libcudnn.so.9 cannot be opened, and
// under sanitizers.
#include "testutil.h"
#include "../src/backend/cuda/sdpa.h"

#include <stdio.h>
#include <stdlib.h>

// weak: this test is built (and skips) without the CUDA backend too
extern int sc_sdpa_graph_check(int kind, const sc_sdpa_shape *sh, int *n_ops, char *why, size_t why_len) __attribute__((weak));

int main(void) {
    const char *san = getenv("SC_SANITIZE");
    if (san && *san) {   // libcudnn is not instrumented; the sanitizer builds have no CUDA backend anyway
        printf("test_cuda_sdpa_graph: skipped under sanitizers\n");
        return 77;
    }
    if (!sc_sdpa_graph_check) {
        printf("test_cuda_sdpa_graph: skipped: this build has no CUDA backend\n");
        return 77;
    }
    static const sc_sdpa_shape shapes[] = {
        {4, 128, 14, 2, 64},    // Qwen2.5-0.5B heads (GQA 7:1)
        {2, 128, 40, 8, 128},   // Qwen2.5-14B heads (5:1)
        {1, 256, 8, 8, 128},    // MHA
        {3, 128, 4, 2, 32},     // the tests' tiny model
    };
    // operations: forward 14 (2 matmuls, 10 pointwise, 2 reductions); the deterministic backward
    // 21 with MHA (5 matmuls, 12 pointwise, 1 reduction, 3 reshapes), the one with the dQ
    // accumulator 22 (+ the identity into dQ); +2 reductions each with GQA (dK and dV summed over
    // each KV head's query heads)
    static const char *const kinds[3] = {"forward", "deterministic backward", "backward with dQ accumulator"};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int kind = 0; kind < 3; kind++) {
            const sc_sdpa_shape *sh = &shapes[i];
            char why[512] = "";
            int n_ops = 0;
            const int r = sc_sdpa_graph_check(kind, sh, &n_ops, why, sizeof why);
            if (r < 0) {
                printf("test_cuda_sdpa_graph: skipped: %s\n", why);
                return 77;
            }
            CHECKF(r == 1, "%s graph B=%d S=%d heads %d/%d HD=%d: %s", kinds[kind], sh->B, sh->S, sh->NH, sh->KVH, sh->HD, why);
            const int want = kind == 0 ? 14 : (kind == 1 ? 21 : 22) + (sh->NH == sh->KVH ? 0 : 2);
            CHECKF(n_ops == want, "%s graph heads %d/%d: %d operations, expected %d", kinds[kind], sh->NH, sh->KVH, n_ops, want);
        }
    return sc_test_finish("test_cuda_sdpa_graph");
}
