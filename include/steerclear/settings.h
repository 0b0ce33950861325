// settings.h — one table-driven reader and writer for every settings section of a run config
// ("search", "judge", "quantify", ...): each key has a name, a kind and the offset of its field
// in the section's struct. Reading checks kinds and ranges strictly (no truncated floats, no
// repeated or unknown keys: the message names the key and the file); writing gives the
// resolved section, every key present, for RUN_DIR/config.json.
#ifndef STEERCLEAR_SETTINGS_H
#define STEERCLEAR_SETTINGS_H

#include <stddef.h>

#include "steerclear/core.h"

typedef struct cJSON cJSON;

typedef enum {
    SC_KEY_INT,         // int, JSON integer in [lo, hi]
    SC_KEY_FLOAT,       // float, finite, in [lo, hi]
    SC_KEY_U64,         // uint64_t, JSON integer in [0, 2^53]
    SC_KEY_AUTO_BOOL,   // int: true 1, false 0, "auto" -1
    SC_KEY_AUTO_INT,    // int: "auto" 0, else a JSON integer in [lo, hi] (lo >= 1)
    SC_KEY_ENUM,        // int: index of the string in `names` (NULL-terminated)
    SC_KEY_STRING,      // char[size]: any string that fits
    SC_KEY_FLOATS,      // float[size] and, at offset count_off, the int count: a JSON array of numbers
    SC_KEY_STRINGS,     // char[size][64] and the count at count_off: a JSON array of strings (< 64 bytes each)
} sc_key_kind;

typedef struct {
    const char *name;
    sc_key_kind kind;
    size_t off;              // of the field in the struct
    double lo, hi;           // INT, FLOAT, FLOATS: the allowed range
    size_t size;             // STRING: bytes of the buffer; FLOATS, STRINGS: capacity
    size_t count_off;        // FLOATS, STRINGS: offset of the int count
    const char *const *names;   // ENUM
} sc_key;

#define SC_STRINGS_WIDTH 64

// Read the keys present in `obj` into `base` (the struct); `where` names the file and section.
sc_status sc_settings_from_json(const sc_key *keys, size_t n_keys, const cJSON *obj, const char *where, void *base);
// Set one key from text as typed on a command line: "8", "0.5", "gemini", "true"/"false"/"auto",
// lists comma-separated ("-2,0,4", "empathetic,prescriptive"); checked like the JSON form.
sc_status sc_settings_set_text(const sc_key *keys, size_t n_keys, const char *name, const char *text, const char *where, void *base);
// Every key of the struct as a JSON object (caller frees with cJSON_Delete).
cJSON *sc_settings_to_json(const sc_key *keys, size_t n_keys, const void *base);

#endif
