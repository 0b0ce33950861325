// tok.h — byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (Qwen2 family).
#ifndef STEERCLEAR_TOK_H
#define STEERCLEAR_TOK_H

#include "steerclear/core.h"

typedef struct sc_tokenizer sc_tokenizer;

sc_status sc_tok_load(const char *path, sc_tokenizer **out);
void sc_tok_free(sc_tokenizer *tok);
// Encode UTF-8 text (added/special tokens such as <|im_start|> are recognised in the text).
// *ids is malloc'ed, caller frees. Invalid UTF-8 is an error naming the byte offset.
sc_status sc_tok_encode(const sc_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n_ids);
// Decode ids to UTF-8 text (malloc'ed, NUL-terminated). skip_special: drop special tokens.
sc_status sc_tok_decode(const sc_tokenizer *tok, const int32_t *ids, size_t n_ids, int skip_special, char **text);
// Id of a token (added tokens or vocabulary), -1 when absent.
int32_t sc_tok_id(const sc_tokenizer *tok, const char *token);
// Number of ids (max id + 1, added tokens included).
int32_t sc_tok_vocab_size(const sc_tokenizer *tok);

// Additions (tokenizer engineer):
// One loaded tokenizer may be used by several threads at once (encode/decode keep their state
// per call).
// sc_tok_id takes a token as spelled in tokenizer.json: added-token content ("<|im_end|>") or
// the vocabulary's byte-level spelling ("\u0120the" for " the").
// Decoding: vocabulary tokens map back through the byte-level alphabet, added tokens are
// written verbatim; bytes that are not valid UTF-8 as a whole become U+FFFD (one per maximal
// bad subpart), like the reference's TextDecoder. An id outside the vocabulary is an
// SC_ERR_ARG error naming the id and its position.
// Encoding errors: invalid UTF-8 is SC_ERR_FORMAT "... not valid UTF-8: bad byte 0xXX at byte
// offset N of LEN"; nothing is returned.
// 1 when id is an added token marked special (<|im_start|>, <|endoftext|>, ...), else 0.
int sc_tok_is_special(const sc_tokenizer *tok, int32_t id);
// Raw bytes one token decodes to (for streaming: a UTF-8 character may span tokens). The
// pointer stays valid until sc_tok_free. Unknown id: SC_ERR_ARG.
sc_status sc_tok_token_bytes(const sc_tokenizer *tok, int32_t id, const char **bytes, size_t *len);

#endif
