/* cJSON.h (GPU-check shim) — this project's own small JSON tree with the subset of the cJSON
 * API that src/io/safetensors.c, src/io/hf_config.c, src/io/json.c and src/model/make_model.c
 * use, for the GPU-check build (benchmarks/gpu/CMakeLists.txt) on machines without libcjson.
 * The normal build links the real cJSON; this file is never on its include path. */
#ifndef SC_CJSON_SHIM_H
#define SC_CJSON_SHIM_H

#include <stddef.h>

#define cJSON_Invalid 0
#define cJSON_False (1 << 0)
#define cJSON_True (1 << 1)
#define cJSON_NULL (1 << 2)
#define cJSON_Number (1 << 3)
#define cJSON_String (1 << 4)
#define cJSON_Array (1 << 5)
#define cJSON_Object (1 << 6)
#define cJSON_Raw (1 << 7)

typedef struct cJSON {
    struct cJSON *next, *prev, *child;
    int type;
    char *valuestring;   /* strings and raw text */
    int valueint;
    double valuedouble;
    char *string;        /* the key, for members of an object */
} cJSON;

typedef int cJSON_bool;

cJSON *cJSON_ParseWithLength(const char *value, size_t length);
cJSON *cJSON_Parse(const char *value);
const char *cJSON_GetErrorPtr(void);
void cJSON_Delete(cJSON *item);
char *cJSON_Print(const cJSON *item);
void cJSON_free(void *p);

int cJSON_GetArraySize(const cJSON *array);
cJSON *cJSON_GetArrayItem(const cJSON *array, int index);
cJSON *cJSON_GetObjectItemCaseSensitive(const cJSON *object, const char *key);

cJSON_bool cJSON_IsInvalid(const cJSON *item);
cJSON_bool cJSON_IsFalse(const cJSON *item);
cJSON_bool cJSON_IsTrue(const cJSON *item);
cJSON_bool cJSON_IsBool(const cJSON *item);
cJSON_bool cJSON_IsNull(const cJSON *item);
cJSON_bool cJSON_IsNumber(const cJSON *item);
cJSON_bool cJSON_IsString(const cJSON *item);
cJSON_bool cJSON_IsArray(const cJSON *item);
cJSON_bool cJSON_IsObject(const cJSON *item);
cJSON_bool cJSON_IsRaw(const cJSON *item);

cJSON *cJSON_CreateObject(void);
cJSON *cJSON_CreateArray(void);
cJSON *cJSON_CreateString(const char *s);
cJSON *cJSON_CreateRaw(const char *raw);
cJSON *cJSON_CreateNumber(double n);
cJSON *cJSON_CreateBool(cJSON_bool b);
cJSON *cJSON_CreateNull(void);
cJSON_bool cJSON_AddItemToArray(cJSON *array, cJSON *item);
cJSON_bool cJSON_AddItemToObject(cJSON *object, const char *key, cJSON *item);
cJSON *cJSON_AddObjectToObject(cJSON *object, const char *key);
cJSON *cJSON_AddArrayToObject(cJSON *object, const char *key);
cJSON *cJSON_AddStringToObject(cJSON *object, const char *key, const char *s);
cJSON *cJSON_AddRawToObject(cJSON *object, const char *key, const char *raw);
cJSON *cJSON_AddNumberToObject(cJSON *object, const char *key, double n);
cJSON *cJSON_AddBoolToObject(cJSON *object, const char *key, cJSON_bool b);
cJSON *cJSON_AddNullToObject(cJSON *object, const char *key);
cJSON_bool cJSON_ReplaceItemInObjectCaseSensitive(cJSON *object, const char *key, cJSON *item);

#define cJSON_ArrayForEach(e, array) for ((e) = (array) ? (array)->child : NULL; (e); (e) = (e)->next)

#endif
