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
            FUZZ_CHECK(sc_search_config_validate(&cfg) == SC_OK);   // accepted means valid
            cJSON *out = sc_search_config_to_json(&cfg);
            FUZZ_CHECK(out != NULL);
            char *text = cJSON_PrintUnformatted(out);
            // what was written reads back as the same settings
            cJSON *again = text ? cJSON_Parse(text) : NULL;
            if (again) {
                sc_search_config cfg2;
                sc_search_config_default(&cfg2);
                sc_status rt = sc_search_config_from_json(again, "fuzz (round trip)", &cfg2);
                if (rt != SC_OK) fprintf(stderr, "round trip of %s: %s\n", text, sc_last_error());
                FUZZ_CHECK(rt == SC_OK);
                cJSON_Delete(again);
            }
            cJSON_free(text);
            cJSON_Delete(out);
        }
    }
    cJSON_Delete(root);
    return 0;
}
