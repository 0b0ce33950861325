// json_shim.c — the GPU-check build's own JSON tree (see shim/cjson/cJSON.h): a recursive-descent
// parser over a length-limited buffer (strict RFC 8259: no comments, no trailing commas; \u
// escapes with surrogate pairs to UTF-8; depth at most 256), builders, and a printer (two-space
// indentation; numbers with %.17g, integers without a fraction).
#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_err;

const char *cJSON_GetErrorPtr(void) { return g_err; }
void cJSON_free(void *p) { free(p); }

static cJSON *node(int type) {
    cJSON *n = calloc(1, sizeof *n);
    if (n) n->type = type;
    return n;
}

void cJSON_Delete(cJSON *item) {
    while (item) {
        cJSON *next = item->next;
        cJSON_Delete(item->child);
        free(item->valuestring);
        free(item->string);
        free(item);
        item = next;
    }
}

// --- parsing ----------------------------------------------------------------------------------

typedef struct { const char *p, *end; int depth; } cur;

static void skip_ws(cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}
static int fail(cur *c) { g_err = c->p; return 0; }

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = s[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) { o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F)); return 3; }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// c->p at the opening quote; *out a new NUL-terminated string
static int parse_string(cur *c, char **out) {
    const char *s = ++c->p;
    size_t cap = 0;
    while (s < c->end && *s != '"') { if (*s == '\\') s++; s++; cap++; }
    if (s >= c->end) return fail(c);
    char *o = malloc(4 * cap + 1), *w = o;   // an escape never grows by more than 4x
    if (!o) return fail(c);
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (ch < 0x20) { free(o); return fail(c); }
        if (ch != '\\') { *w++ = (char)ch; c->p++; continue; }
        if (++c->p >= c->end) { free(o); return fail(c); }
        switch (*c->p) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (c->end - c->p < 5 || !hex4(c->p + 1, &cp)) { free(o); return fail(c); }
            c->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {   // a high surrogate needs its low half
                if (c->end - c->p < 7 || c->p[1] != '\\' || c->p[2] != 'u' || !hex4(c->p + 3, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    free(o); return fail(c);
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                c->p += 6;
            } else if (cp >= 0xDC00 && cp < 0xE000) { free(o); return fail(c); }
            w += put_utf8(w, cp);
            break;
        }
        default: free(o); return fail(c);
        }
        c->p++;
    }
    *w = '\0';
    c->p++;   // the closing quote
    *out = o;
    return 1;
}

static int parse_value(cur *c, cJSON *item);

static int parse_number(cur *c, cJSON *item) {
    const char *s = c->p;
    if (s < c->end && *s == '-') s++;
    if (s >= c->end || *s < '0' || *s > '9') return fail(c);
    if (*s == '0') s++;
    else while (s < c->end && *s >= '0' && *s <= '9') s++;
    if (s < c->end && *s == '.') {
        s++;
        if (s >= c->end || *s < '0' || *s > '9') return fail(c);
        while (s < c->end && *s >= '0' && *s <= '9') s++;
    }
    if (s < c->end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < c->end && (*s == '+' || *s == '-')) s++;
        if (s >= c->end || *s < '0' || *s > '9') return fail(c);
        while (s < c->end && *s >= '0' && *s <= '9') s++;
    }
    char buf[128];
    size_t n = (size_t)(s - c->p);
    if (n >= sizeof buf) return fail(c);
    memcpy(buf, c->p, n);
    buf[n] = '\0';
    item->type = cJSON_Number;
    item->valuedouble = strtod(buf, NULL);
    item->valueint = item->valuedouble >= 2147483647.0 ? 2147483647 : item->valuedouble <= -2147483648.0 ? (-2147483647 - 1) : (int)item->valuedouble;
    c->p = s;
    return 1;
}

static int literal(cur *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n)) return fail(c);
    c->p += n;
    return 1;
}

static int parse_container(cur *c, cJSON *item, int object) {
    if (++c->depth > 256) return fail(c);
    item->type = object ? cJSON_Object : cJSON_Array;
    c->p++;
    skip_ws(c);
    cJSON *last = NULL;
    if (c->p < c->end && *c->p == (object ? '}' : ']')) { c->p++; c->depth--; return 1; }
    for (;;) {
        cJSON *child = node(cJSON_Invalid);
        if (!child) return fail(c);
        if (last) { last->next = child; child->prev = last; } else item->child = child;
        last = child;
        skip_ws(c);
        if (object) {
            if (c->p >= c->end || *c->p != '"' || !parse_string(c, &child->string)) return fail(c);
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':') return fail(c);
            c->p++;
            skip_ws(c);
        }
        if (!parse_value(c, child)) return 0;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') { c->p++; continue; }
        if (c->p < c->end && *c->p == (object ? '}' : ']')) { c->p++; break; }
        return fail(c);
    }
    if (item->child) item->child->prev = last;   // as cJSON: the first child's prev is the last
    c->depth--;
    return 1;
}

static int parse_value(cur *c, cJSON *item) {
    skip_ws(c);
    if (c->p >= c->end) return fail(c);
    switch (*c->p) {
    case '{': return parse_container(c, item, 1);
    case '[': return parse_container(c, item, 0);
    case '"': item->type = cJSON_String; return parse_string(c, &item->valuestring);
    case 't': item->type = cJSON_True; item->valueint = 1; return literal(c, "true");
    case 'f': item->type = cJSON_False; return literal(c, "false");
    case 'n': item->type = cJSON_NULL; return literal(c, "null");
    default: return parse_number(c, item);
    }
}

cJSON *cJSON_ParseWithLength(const char *value, size_t length) {
    g_err = NULL;
    if (!value) return NULL;
    cur c = {value, value + length, 0};
    cJSON *root = node(cJSON_Invalid);
    if (!root) return NULL;
    if (!parse_value(&c, root)) { cJSON_Delete(root); return NULL; }
    skip_ws(&c);
    if (c.p < c.end && *c.p) { g_err = c.p; cJSON_Delete(root); return NULL; }   // trailing text
    return root;
}

cJSON *cJSON_Parse(const char *value) { return value ? cJSON_ParseWithLength(value, strlen(value)) : NULL; }

// --- queries ----------------------------------------------------------------------------------

int cJSON_GetArraySize(const cJSON *array) {
    int n = 0;
    for (const cJSON *e = array ? array->child : NULL; e; e = e->next) n++;
    return n;
}
cJSON *cJSON_GetArrayItem(const cJSON *array, int index) {
    cJSON *e = array ? array->child : NULL;
    while (e && index-- > 0) e = e->next;
    return index < 0 || !e ? e : NULL;
}
cJSON *cJSON_GetObjectItemCaseSensitive(const cJSON *object, const char *key) {
    if (!object || !key) return NULL;
    for (cJSON *e = object->child; e; e = e->next)
        if (e->string && !strcmp(e->string, key)) return e;
    return NULL;
}
#define IS(name, mask) cJSON_bool cJSON_Is##name(const cJSON *item) { return item && (item->type & (mask)) != 0; }
cJSON_bool cJSON_IsInvalid(const cJSON *item) { return item && item->type == cJSON_Invalid; }
IS(False, cJSON_False)
IS(True, cJSON_True)
IS(Bool, cJSON_True | cJSON_False)
IS(Null, cJSON_NULL)
IS(Number, cJSON_Number)
IS(String, cJSON_String)
IS(Array, cJSON_Array)
IS(Object, cJSON_Object)
IS(Raw, cJSON_Raw)

// --- building ---------------------------------------------------------------------------------

static char *dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
cJSON *cJSON_CreateObject(void) { return node(cJSON_Object); }
cJSON *cJSON_CreateArray(void) { return node(cJSON_Array); }
cJSON *cJSON_CreateNull(void) { return node(cJSON_NULL); }
cJSON *cJSON_CreateBool(cJSON_bool b) { cJSON *n = node(b ? cJSON_True : cJSON_False); if (n) n->valueint = b != 0; return n; }
cJSON *cJSON_CreateNumber(double v) {
    cJSON *n = node(cJSON_Number);
    if (n) { n->valuedouble = v; n->valueint = v >= 2147483647.0 ? 2147483647 : v <= -2147483648.0 ? (-2147483647 - 1) : (int)v; }
    return n;
}
static cJSON *text_node(int type, const char *s) {
    cJSON *n = node(type);
    if (n && !(n->valuestring = dup(s ? s : ""))) { free(n); n = NULL; }
    return n;
}
cJSON *cJSON_CreateString(const char *s) { return text_node(cJSON_String, s); }
cJSON *cJSON_CreateRaw(const char *raw) { return text_node(cJSON_Raw, raw); }

cJSON_bool cJSON_AddItemToArray(cJSON *array, cJSON *item) {
    if (!array || !item) return 0;
    if (!array->child) { array->child = item; item->prev = item; item->next = NULL; return 1; }
    cJSON *last = array->child->prev;
    last->next = item;
    item->prev = last;
    item->next = NULL;
    array->child->prev = item;
    return 1;
}
cJSON_bool cJSON_AddItemToObject(cJSON *object, const char *key, cJSON *item) {
    if (!object || !key || !item) return 0;
    char *k = dup(key);
    if (!k) return 0;
    free(item->string);
    item->string = k;
    return cJSON_AddItemToArray(object, item);
}
static cJSON *add(cJSON *object, const char *key, cJSON *item) {
    if (!item) return NULL;
    if (!cJSON_AddItemToObject(object, key, item)) { cJSON_Delete(item); return NULL; }
    return item;
}
cJSON *cJSON_AddObjectToObject(cJSON *o, const char *k) { return add(o, k, cJSON_CreateObject()); }
cJSON *cJSON_AddArrayToObject(cJSON *o, const char *k) { return add(o, k, cJSON_CreateArray()); }
cJSON *cJSON_AddStringToObject(cJSON *o, const char *k, const char *s) { return add(o, k, cJSON_CreateString(s)); }
cJSON *cJSON_AddRawToObject(cJSON *o, const char *k, const char *raw) { return add(o, k, cJSON_CreateRaw(raw)); }
cJSON *cJSON_AddNumberToObject(cJSON *o, const char *k, double n) { return add(o, k, cJSON_CreateNumber(n)); }
cJSON *cJSON_AddBoolToObject(cJSON *o, const char *k, cJSON_bool b) { return add(o, k, cJSON_CreateBool(b)); }
cJSON *cJSON_AddNullToObject(cJSON *o, const char *k) { return add(o, k, cJSON_CreateNull()); }

cJSON_bool cJSON_ReplaceItemInObjectCaseSensitive(cJSON *object, const char *key, cJSON *item) {
    cJSON *old = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!old || !item) return 0;
    char *k = dup(key);
    if (!k) return 0;
    free(item->string);
    item->string = k;
    item->next = old->next;
    item->prev = old->prev;
    if (old == object->child) {
        object->child = item;
        if (!item->next) item->prev = item;
    } else {
        old->prev->next = item;
    }
    if (item->next) item->next->prev = item;
    else object->child->prev = item;   // the new last
    old->next = NULL;
    cJSON_Delete(old);
    return 1;
}

// --- printing ---------------------------------------------------------------------------------

typedef struct { char *b; size_t n, cap; int bad; } buf;

static void put(buf *o, const char *s, size_t n) {
    if (o->bad) return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (o->n + n + 1 > cap) cap *= 2;
        char *b = realloc(o->b, cap);
        if (!b) { o->bad = 1; return; }
        o->b = b;
        o->cap = cap;
    }
    memcpy(o->b + o->n, s, n);
    o->n += n;
    o->b[o->n] = '\0';
}
static void puts_(buf *o, const char *s) { put(o, s, strlen(s)); }

static void put_string(buf *o, const char *s) {
    puts_(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': puts_(o, "\\\""); break;
        case '\\': puts_(o, "\\\\"); break;
        case '\n': puts_(o, "\\n"); break;
        case '\r': puts_(o, "\\r"); break;
        case '\t': puts_(o, "\\t"); break;
        case '\b': puts_(o, "\\b"); break;
        case '\f': puts_(o, "\\f"); break;
        default:
            if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); puts_(o, esc); }
            else put(o, (const char *)p, 1);
        }
    }
    puts_(o, "\"");
}

static void indent(buf *o, int depth) { for (int i = 0; i < depth; i++) puts_(o, "  "); }

static void print_value(buf *o, const cJSON *v, int depth) {
    char num[64];
    switch (v->type & 0xff) {
    case cJSON_False: puts_(o, "false"); break;
    case cJSON_True: puts_(o, "true"); break;
    case cJSON_NULL: puts_(o, "null"); break;
    case cJSON_Raw: puts_(o, v->valuestring ? v->valuestring : ""); break;
    case cJSON_String: put_string(o, v->valuestring ? v->valuestring : ""); break;
    case cJSON_Number:
        if (!isfinite(v->valuedouble)) snprintf(num, sizeof num, "null");
        else if (v->valuedouble == (double)(long long)v->valuedouble && fabs(v->valuedouble) < 1e15) snprintf(num, sizeof num, "%lld", (long long)v->valuedouble);
        else snprintf(num, sizeof num, "%.17g", v->valuedouble);
        puts_(o, num);
        break;
    case cJSON_Array:
    case cJSON_Object: {
        const int obj = (v->type & cJSON_Object) != 0;
        puts_(o, obj ? "{" : "[");
        if (!v->child) { puts_(o, obj ? "}" : "]"); break; }
        puts_(o, "\n");
        for (const cJSON *e = v->child; e; e = e->next) {
            indent(o, depth + 1);
            if (obj) { put_string(o, e->string ? e->string : ""); puts_(o, ": "); }
            print_value(o, e, depth + 1);
            puts_(o, e->next ? ",\n" : "\n");
        }
        indent(o, depth);
        puts_(o, obj ? "}" : "]");
        break;
    }
    default: o->bad = 1;
    }
}

char *cJSON_Print(const cJSON *item) {
    if (!item) return NULL;
    buf o = {0};
    print_value(&o, item, 0);
    if (o.bad) { free(o.b); return NULL; }
    return o.b;
}
