// settings.c — the table-driven settings reader and writer (see steerclear/settings.h).
#include "steerclear/settings.h"
#include "steerclear/json.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sc_key *find(const sc_key *keys, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++) if (!strcmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

static sc_status read_number(const cJSON *it, const sc_key *k, const char *where, const char *what, double *out) {
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return sc_errorf(SC_ERR_ARG, "%s: '%s'%s%s must be a finite number", where, k->name, *what ? " " : "", what);
    if (it->valuedouble < k->lo || it->valuedouble > k->hi)
        return sc_errorf(SC_ERR_ARG, "%s: '%s'%s%s = %g is outside [%g, %g]", where, k->name, *what ? " " : "", what, it->valuedouble, k->lo,
                         k->hi);
    *out = it->valuedouble;
    return SC_OK;
}

sc_status sc_settings_from_json(const sc_key *keys, size_t n_keys, const cJSON *obj, const char *where, void *base) {
    if (!cJSON_IsObject(obj)) return sc_errorf(SC_ERR_FORMAT, "%s: the settings must be a JSON object", where);
    const char *names[128];
    if (n_keys >= sizeof names / sizeof names[0]) return sc_errorf(SC_ERR_INTERNAL, "%s: too many settings keys", where);
    for (size_t i = 0; i < n_keys; i++) names[i] = keys[i].name;
    names[n_keys] = NULL;
    SC_TRY(sc_json_check_object(obj, where, names));   // unknown and repeated keys
    for (const cJSON *it = obj->child; it; it = it->next) {
        const sc_key *k = find(keys, n_keys, it->string);
        char *field = (char *)base + k->off;
        double v = 0;
        switch (k->kind) {
        case SC_KEY_INT:
            if (!sc_json_is_int(it, k->lo, k->hi))
                return sc_errorf(SC_ERR_ARG, "%s: '%s' must be an integer in [%g, %g]", where, k->name, k->lo, k->hi);
            *(int *)field = (int)it->valuedouble;
            break;
        case SC_KEY_FLOAT:
            SC_TRY(read_number(it, k, where, "", &v));
            *(float *)field = (float)v;
            break;
        case SC_KEY_U64:
            if (!sc_json_is_int(it, 0, 9007199254740992.0)) return sc_errorf(SC_ERR_ARG, "%s: '%s' must be an integer in [0, 2^53]", where, k->name);
            *(uint64_t *)field = (uint64_t)it->valuedouble;
            break;
        case SC_KEY_AUTO_INT:
            if (cJSON_IsString(it) && !strcmp(it->valuestring, "auto")) *(int *)field = 0;
            else if (sc_json_is_int(it, k->lo, k->hi)) *(int *)field = (int)it->valuedouble;
            else return sc_errorf(SC_ERR_ARG, "%s: '%s' must be \"auto\" or an integer in [%g, %g]", where, k->name, k->lo, k->hi);
            break;
        case SC_KEY_AUTO_BOOL:
            if (cJSON_IsString(it) && !strcmp(it->valuestring, "auto")) *(int *)field = -1;
            else if (cJSON_IsBool(it)) *(int *)field = cJSON_IsTrue(it);
            else return sc_errorf(SC_ERR_ARG, "%s: '%s' must be true, false or \"auto\"", where, k->name);
            break;
        case SC_KEY_ENUM: {
            int found = -1;
            char list[256] = "";
            size_t at = 0;
            for (int i = 0; k->names[i]; i++) {
                if (cJSON_IsString(it) && !strcmp(it->valuestring, k->names[i])) found = i;
                at += (size_t)snprintf(list + at, at < sizeof list ? sizeof list - at : 0, "%s\"%s\"", i ? ", " : "", k->names[i]);
            }
            if (found < 0) return sc_errorf(SC_ERR_ARG, "%s: '%s' must be one of %s", where, k->name, list);
            *(int *)field = found;
            break;
        }
        case SC_KEY_STRING:
            if (!cJSON_IsString(it)) return sc_errorf(SC_ERR_ARG, "%s: '%s' must be a string", where, k->name);
            if (strlen(it->valuestring) >= k->size) return sc_errorf(SC_ERR_ARG, "%s: '%s' is longer than %zu bytes", where, k->name, k->size - 1);
            memcpy(field, it->valuestring, strlen(it->valuestring) + 1);
            break;
        case SC_KEY_FLOATS:
        case SC_KEY_STRINGS: {
            const int n = cJSON_GetArraySize(it);
            if (!cJSON_IsArray(it) || n < 1 || (size_t)n > k->size)
                return sc_errorf(SC_ERR_ARG, "%s: '%s' must be an array of 1 to %zu %s", where, k->name, k->size,
                                 k->kind == SC_KEY_FLOATS ? "numbers" : "strings");
            int i = 0;
            for (const cJSON *e = it->child; e; e = e->next, i++) {
                if (k->kind == SC_KEY_FLOATS) {
                    char what[32];
                    snprintf(what, sizeof what, "entry %d", i);
                    SC_TRY(read_number(e, k, where, what, &v));
                    ((float *)field)[i] = (float)v;
                } else {
                    if (!cJSON_IsString(e) || !e->valuestring[0] || strlen(e->valuestring) >= SC_STRINGS_WIDTH)
                        return sc_errorf(SC_ERR_ARG, "%s: '%s' entry %d must be a non-empty string shorter than %d bytes", where, k->name, i, SC_STRINGS_WIDTH);
                    memcpy(field + (size_t)i * SC_STRINGS_WIDTH, e->valuestring, strlen(e->valuestring) + 1);
                }
            }
            *(int *)((char *)base + k->count_off) = n;
            break;
        }
        }
    }
    return SC_OK;
}

cJSON *sc_settings_to_json(const sc_key *keys, size_t n_keys, const void *base) {
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < n_keys; i++) {
        const sc_key *k = &keys[i];
        const char *field = (const char *)base + k->off;
        switch (k->kind) {
        case SC_KEY_INT: cJSON_AddNumberToObject(o, k->name, *(const int *)field); break;
        case SC_KEY_FLOAT: cJSON_AddNumberToObject(o, k->name, (double)*(const float *)field); break;
        case SC_KEY_U64: cJSON_AddNumberToObject(o, k->name, (double)*(const uint64_t *)field); break;
        case SC_KEY_AUTO_INT:
            if (*(const int *)field <= 0) cJSON_AddStringToObject(o, k->name, "auto");
            else cJSON_AddNumberToObject(o, k->name, *(const int *)field);
            break;
        case SC_KEY_AUTO_BOOL:
            if (*(const int *)field < 0) cJSON_AddStringToObject(o, k->name, "auto");
            else cJSON_AddBoolToObject(o, k->name, *(const int *)field);
            break;
        case SC_KEY_ENUM: cJSON_AddStringToObject(o, k->name, k->names[*(const int *)field]); break;
        case SC_KEY_STRING: cJSON_AddStringToObject(o, k->name, field); break;
        case SC_KEY_FLOATS:
        case SC_KEY_STRINGS: {
            cJSON *a = cJSON_AddArrayToObject(o, k->name);
            const int n = *(const int *)((const char *)base + k->count_off);
            for (int j = 0; j < n; j++)
                cJSON_AddItemToArray(a, k->kind == SC_KEY_FLOATS ? cJSON_CreateNumber((double)((const float *)field)[j])
                                                                 : cJSON_CreateString(field + (size_t)j * SC_STRINGS_WIDTH));
            break;
        }
        }
    }
    return o;
}

// A number as typed: plain decimal (no hex, "nan", "inf" or trailing text).
static int text_number(const char *t, double *v) {
    if (!*t || strspn(t, "0123456789+-.eE") != strlen(t)) return 0;
    char *end;
    *v = strtod(t, &end);
    return !*end && isfinite(*v);
}

sc_status sc_settings_set_text(const sc_key *keys, size_t n_keys, const char *name, const char *text, const char *where, void *base) {
    const sc_key *k = find(keys, n_keys, name);
    if (!k) return sc_errorf(SC_ERR_INTERNAL, "%s: no setting '%s'", where, name);
    cJSON *obj = cJSON_CreateObject(), *v = NULL;
    double d;
    switch (k->kind) {
    case SC_KEY_INT: case SC_KEY_FLOAT: case SC_KEY_U64:
        if (text_number(text, &d)) v = cJSON_CreateNumber(d);
        break;
    case SC_KEY_AUTO_INT:
        v = text_number(text, &d) ? cJSON_CreateNumber(d) : cJSON_CreateString(text);
        break;
    case SC_KEY_AUTO_BOOL:
        v = !strcmp(text, "true") ? cJSON_CreateTrue() : !strcmp(text, "false") ? cJSON_CreateFalse() : cJSON_CreateString(text);
        break;
    case SC_KEY_ENUM: case SC_KEY_STRING: v = cJSON_CreateString(text); break;
    case SC_KEY_FLOATS: case SC_KEY_STRINGS: {
        v = cJSON_CreateArray();
        for (const char *p = text; v;) {
            const size_t len = strcspn(p, ",");
            char item[256];
            if (len == 0 || len >= sizeof item) { cJSON_Delete(v); v = NULL; break; }
            memcpy(item, p, len);
            item[len] = '\0';
            if (k->kind == SC_KEY_STRINGS) cJSON_AddItemToArray(v, cJSON_CreateString(item));
            else if (text_number(item, &d)) cJSON_AddItemToArray(v, cJSON_CreateNumber(d));
            else { cJSON_Delete(v); v = NULL; break; }
            if (!p[len]) break;
            p += len + 1;
        }
        break;
    }
    }
    if (!v) {
        cJSON_Delete(obj);
        const char *want = k->kind == SC_KEY_FLOATS ? "a comma-separated list of numbers such as -2,0,4"
                         : k->kind == SC_KEY_STRINGS ? "a comma-separated list such as a,b" : "a plain decimal number";
        return sc_errorf(SC_ERR_ARG, "%s: '%s' = '%s' is not %s", where, name, text, want);
    }
    cJSON_AddItemToObject(obj, name, v);
    sc_status st = sc_settings_from_json(keys, n_keys, obj, where, base);
    cJSON_Delete(obj);
    return st;
}
