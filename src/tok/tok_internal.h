// tok_internal.h — helpers shared by the files of src/tok (not part of the public API).
#ifndef STEERCLEAR_TOK_INTERNAL_H
#define STEERCLEAR_TOK_INTERNAL_H

#include "steerclear/core.h"

// Translate a tokenizer.json Split regex into a PCRE2 pattern (UTF + UCP) that matches exactly
// what the reference implementation (JavaScript RegExp with the `u` flag) matches. *out is
// malloc'ed. `what` names the source in error messages.
sc_status sc_tok_regex_to_pcre2(const char *src, const char *what, char **out);

// JavaScript's \s set (ECMAScript WhiteSpace + LineTerminator): used by the regex translation
// and by lstrip/rstrip of added tokens (String.prototype.trimEnd/trimStart).
int sc_tok_is_js_space(uint32_t cp);

// Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF): the length of
// the longest valid prefix of s[0..len), i.e. len when all of it is valid, else the byte offset
// of the first character that is not.
size_t sc_tok_utf8_valid_prefix(const unsigned char *s, size_t len);
// Decode one character of valid UTF-8 at s (n bytes available); returns its length (0 if invalid).
size_t sc_tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

#endif
