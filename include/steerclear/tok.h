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

#endif
