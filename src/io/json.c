// json.c — the checks every JSON object of ours goes through (see steerclear/json.h).
#include "steerclear/json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

sc_status sc_json_check_object(const cJSON *obj, const char *where, const char *const *keys) {
    if (!cJSON_IsObject(obj)) return sc_errorf(SC_ERR_FORMAT, "%s: expected a JSON object", where);
    for (const cJSON *it = obj->child; it; it = it->next) {
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (!strcmp(prev->string, it->string))
                return sc_errorf(SC_ERR_FORMAT, "%s: key \"%s\" appears twice; keep one (tools disagree on which one counts)", where, it->string);
        if (!keys) continue;
        int known = 0;
        for (const char *const *k = keys; *k; k++) known |= !strcmp(*k, it->string);
        if (!known) {
            char list[512] = "";
            size_t at = 0;
            for (const char *const *k = keys; *k && at < sizeof list; k++)
                at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", k == keys ? "" : ", ", *k);
            return sc_errorf(SC_ERR_ARG, "%s: unknown key \"%s\" (known: %s)", where, it->string, list);
        }
    }
    return SC_OK;
}

int sc_json_is_int(const cJSON *v, double lo, double hi) {
    if (!cJSON_IsNumber(v)) return 0;
    const double d = v->valuedouble;
    return isfinite(d) && d == floor(d) && d >= lo && d <= hi;
}
