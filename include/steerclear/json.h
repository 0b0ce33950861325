// json.h — checks every JSON input of ours goes through (configs, run configs, config.json of
// a model): an object with no duplicate keys (cJSON would keep the first; Python's json the
// last: refuse, so the two never disagree) and, when a list is given, no unknown keys.
#ifndef STEERCLEAR_JSON_H
#define STEERCLEAR_JSON_H

#include "steerclear/core.h"

typedef struct cJSON cJSON;

// `keys`: NULL-terminated list of the allowed keys, or NULL for any. `where` names the file
// (and the object inside it) for messages.
sc_status sc_json_check_object(const cJSON *obj, const char *where, const char *const *keys);
// 1 when v is a JSON number holding an integer in [lo, hi] (checked before any cast).
int sc_json_is_int(const cJSON *v, double lo, double hi);

#endif
