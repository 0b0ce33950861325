// fuzz_run_config.c — libFuzzer target: a run's search settings (JSON object) through
// sc_search_config_from_json, then back out with sc_search_config_to_json.
#include "fuzz_common.h"
#include "steerclear/search.h"

#include <cjson/cJSON.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    if (!root) return 0;
    if (cJSON_IsObject(root)) {
        sc_search_config cfg;
        sc_search_config_default(&cfg);
        if (sc_search_config_from_json(root, "fuzz", &cfg) == SC_OK) {
            if (sc_search_config_validate(&cfg) != SC_OK) abort();   // accepted means valid
            cJSON *out = sc_search_config_to_json(&cfg);
            if (!out) abort();
            char *text = cJSON_PrintUnformatted(out);
            // what was written reads back as the same settings
            cJSON *again = text ? cJSON_Parse(text) : NULL;
            if (again) {
                sc_search_config cfg2;
                sc_search_config_default(&cfg2);
                if (sc_search_config_from_json(again, "fuzz (round trip)", &cfg2) != SC_OK) abort();
                cJSON_Delete(again);
            }
            cJSON_free(text);
            cJSON_Delete(out);
        }
    }
    cJSON_Delete(root);
    return 0;
}
