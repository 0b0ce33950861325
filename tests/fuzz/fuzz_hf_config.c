// fuzz_hf_config.c — libFuzzer target: sc_config_load (a model's config.json) on arbitrary bytes.
// An accepted config must satisfy the invariants the loader promises.
#include "fuzz_common.h"
#include "steerclear/model.h"

#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input("fuzz_hf_config", data, size);
    sc_model_config cfg;
    if (sc_config_load(path, &cfg) != SC_OK) return 0;
    FUZZ_CHECK(cfg.n_layers >= 1 && cfg.hidden >= 1 && cfg.n_heads >= 1 && cfg.n_kv_heads >= 1);
    FUZZ_CHECK(cfg.head_dim >= 1 && cfg.intermediate >= 1 && cfg.vocab >= 1 && cfg.max_position >= 1);
    FUZZ_CHECK(cfg.n_heads % cfg.n_kv_heads == 0);
    // "must be a positive number": the float the model uses, not only the JSON double
    FUZZ_CHECK(cfg.rope_theta > 0 && isfinite(cfg.rope_theta));
    FUZZ_CHECK(cfg.rms_eps > 0 && isfinite(cfg.rms_eps));
    FUZZ_CHECK(memchr(cfg.torch_dtype, '\0', sizeof cfg.torch_dtype) != NULL);
    return 0;
}
