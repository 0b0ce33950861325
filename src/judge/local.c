// local.c — steerclear itself as the judge: an instruct model directory (Hugging Face layout,
// Qwen chat template) answers the same prompts the HTTP providers send (judge_prompts.h), and
// the mean-pooled final hidden state of a model directory embeds texts.
//
// Themes and comparisons: each prompt (system + user message) is rendered with the judge model's
// own chat template (chat.h: its tokenizer_config.json; Qwen3's with enable_thinking=false, so
// that the answer is the JSON object rather than reasoning first), several go through one
// greedy generation (sc_generate), and the answer is parsed with the same checks as the HTTP
// providers' answers. An answer that fails them gets one repair turn: the conversation is
// rendered again with the bad answer (decoded text) as the assistant's turn and a user turn
// that quotes the parse error and asks for the JSON object only, and the model answers again.
// A second failure is recorded for that batch (or pair) alone; so is a prompt longer than the
// model's context.
//
// Embeddings: the text (no chat template) runs through the model; the final hidden state,
// after the final RMSNorm, is averaged over the text's tokens and L2-normalised: [n][C]. Each
// distinct text gets a forward pass of its own, so a text's vector never depends on the other
// texts of the call (the CPU matmul picks its kernel by the number of rows) and is bitwise the
// same from call to call.
//
// Openers for the dataset generator (datagen.h) are asked the same way, the caller checking each
// answer.
//
// Leaves out: a response cache (a rerun asks again; the judge stage keeps finished answers),
// sampling (answers are greedy), chat templates other than the ChatML ones chat.h knows,
// the CUDA backend (the judge runs on the CPU backend, beside whatever the pipeline uses).
#include "steerclear/chat.h"
#include "steerclear/generate.h"
#include "steerclear/judge_prompts.h"
#include "steerclear/model.h"
#include "steerclear/tok.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// New tokens per answer. Themes: two to five sentences of reasoning, the theme and the ids.
// Comparisons: the prompt asks for one to three sentences of reasoning *before* "more", which
// 64 tokens would often cut short; greedy answers stop at <|im_end|> well before either limit.
#define LOCAL_THEME_NEW_TOKENS 512
#define LOCAL_COMPARE_NEW_TOKENS 160
// Openers (the dataset generator): up to a dozen one-to-three-sentence openers in JSON.
#define LOCAL_OPENERS_NEW_TOKENS 1024
// Sequences per generation call, and positions per call (sequences x (longest prompt + new
// tokens)): the KV cache, and also the rows of the prefill pass (its activations and
// workspace). Positions are further bounded by an eighth of the backend's memory budget.
#define LOCAL_MAX_SEQS 16
#define LOCAL_MAX_POSITIONS 16384

typedef struct {
    sc_model *m;
    sc_tokenizer *tok;
    char dir[1024];
} local_model;

typedef struct {
    sc_provider base;
    sc_backend *be;
    local_model judge;
    local_model embedder;        // shares judge's model and tokenizer when `shared`
    int shared;
    sc_judge_prompts prompts;
    sc_chat *chat;               // the judge model's chat template
    sc_chat_opts chat_opts;      // no_thinking where the template has the switch (Qwen3)
} local_provider;

// ---------------------------------------------------------------------------------------
// Small helpers

// Text placed inside a chat turn must not spell a special token: "<|" becomes "< |", so that an
// output that happens to contain "<|im_end|>" cannot end the turn it sits in.
static char *defuse(const char *s) {
    size_t n = strlen(s), k = 0;
    for (const char *p = s; (p = strstr(p, "<|")); p += 2) k++;
    char *d = malloc(n + k + 1), *w = d;
    if (!d) return NULL;
    for (const char *p = s; *p; p++) {
        *w++ = *p;
        if (p[0] == '<' && p[1] == '|') *w++ = ' ';
    }
    *w = '\0';
    return d;
}

// Render a conversation with the judge's chat template (every content defused) and tokenize
// it into ids[*n] (replacing what was there; capacity *cap).
static sc_status set_conversation(const local_provider *lp, const sc_chat_msg *msgs, int n_msgs, int32_t **ids, int *n, int *cap) {
    sc_chat_msg safe[4];
    char *owned[4] = {0};
    sc_status st = SC_OK;
    if (n_msgs > 4) return sc_errorf(SC_ERR_INTERNAL, "local judge: a conversation of %d messages", n_msgs);
    for (int i = 0; i < n_msgs && st == SC_OK; i++) {
        if (!(owned[i] = defuse(msgs[i].content))) st = sc_errorf(SC_ERR_MEM, "out of memory building a chat prompt");
        safe[i] = (sc_chat_msg){msgs[i].role, owned[i]};
    }
    char *text = NULL;
    if (st == SC_OK) st = sc_chat_render(lp->chat, &lp->chat_opts, safe, n_msgs, &text);
    for (int i = 0; i < n_msgs; i++) free(owned[i]);
    int32_t *t = NULL;
    size_t nt = 0;
    if (st == SC_OK) st = sc_tok_encode(lp->judge.tok, text, strlen(text), &t, &nt);
    free(text);
    if (st != SC_OK) return st;
    if (nt > (size_t)INT_MAX / 2) { free(t); return sc_errorf(SC_ERR_ARG, "the conversation is too long to tokenize"); }
    free(*ids);
    *ids = t;
    *n = *cap = (int)nt;
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Asking: one list of prompts, one or two rounds of greedy generation

typedef sc_status (*answer_parse)(void *user, int i, const char *text);

typedef struct {
    char *label;                 // "batch 3 (prompt ids 4, 9)", "pair 5"
    char *system, *user;         // the prompt's messages (malloc'ed), for the repair turn
    int32_t *ids;                // the conversation so far, tokenized (malloc'ed)
    int len, cap;
    int round;                   // 0: first answer pending; 1: repair answer pending; 2: done
    sc_status status;            // SC_OK once parsed; else the failure
    char *error;                 // the failure (malloc'ed)
    char *first_error;           // why the first answer failed (malloc'ed)
} ask_item;

typedef struct {
    const char *what;            // "local themes"
    const char *shape;           // the JSON object asked for, quoted in the repair turn
    int max_new;
    answer_parse parse;
    void *user;
} ask_spec;

// Parse an answer: as it is, and when that fails, the span from its first '{' to its last
// '}' (a preamble or a trailing remark around the object). The first failure's message stays.
static sc_status parse_lenient(const ask_spec *s, int i, const char *text) {
    sc_status st = s->parse(s->user, i, text);
    if (st == SC_OK || st == SC_ERR_MEM) return st;
    size_t len = 0;
    const char *obj = sc_judge_answer_object(text, &len);
    if (!obj || len == strlen(text)) return st;
    char *copy = malloc(len + 1), msg[1024];
    if (!copy) return st;
    memcpy(copy, obj, len);
    copy[len] = '\0';
    snprintf(msg, sizeof msg, "%s", sc_last_error());
    sc_status st2 = s->parse(s->user, i, copy);
    free(copy);
    if (st2 == SC_OK) return SC_OK;
    return sc_errorf(st, "%s", msg);
}

// Record the item's failure: "WHAT: LABEL: MSG[ (FIRST ANSWER'S ERROR)]".
static void item_fail(ask_item *it, sc_status st, const char *what, const char *msg) {
    it->status = st;
    free(it->error);
    if (it->first_error) it->error = sc_strdupf("%s: %s: %s (first answer: %s)", what, it->label, msg ? msg : "failed", it->first_error);
    else it->error = sc_strdupf("%s: %s: %s", what, it->label, msg ? msg : "failed");
    it->round = 2;
}

// The item's conversation (`which`, e.g. "its prompt") plus max_new tokens must fit the judge
// model's context; otherwise the item fails, with `advice` appended to the message.
static void item_check_context(const local_provider *lp, ask_item *it, const char *what, int max_new, const char *which, const char *advice) {
    const sc_model *m = lp->judge.m;
    if (sc_gen_check_context(m, it->len, max_new, which) == SC_OK) return;
    sc_error_clear();
    char msg[2048];
    snprintf(msg, sizeof msg, "%s has %d tokens; with up to %d tokens of answer that is beyond the judge model's context of %d positions "
             "(max_position_embeddings in %s/config.json)%s", which, it->len, max_new, m->cfg.max_position, m->dir, advice ? advice : "");
    item_fail(it, SC_ERR_ARG, what, msg);
}

// Greedy answers for the items of `idx[n]` (all pending in the same round), in groups sized to
// LOCAL_MAX_SEQS and the KV-cache bound; each answer is parsed, a first failure turned into a
// repair turn. Returns an error only when the whole call must stop (an interrupt).
static sc_status ask_round(local_provider *lp, const ask_spec *s, ask_item *items, const int *idx, int n, int *n_gen) {
    const sc_model *m = lp->judge.m;
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_default(&so);
    so.greedy = 1;
    so.max_new_tokens = s->max_new;
    sc_sample_opts_for_tokenizer(&so, lp->judge.tok, stops);
    // KV positions per call: LOCAL_MAX_POSITIONS, and no more than an eighth of the memory budget
    const double per_pos = (double)(m->cfg.n_layers) * m->cfg.n_kv_heads * m->cfg.head_dim * 2.0 * sizeof(float);
    double cap_pos = LOCAL_MAX_POSITIONS;
    if (lp->be->memory_budget > 0 && per_pos > 0 && lp->be->memory_budget / 8.0 / per_pos < cap_pos) cap_pos = lp->be->memory_budget / 8.0 / per_pos;
    // longest first, so that a group's prompts are of similar lengths (the KV cache of a group
    // is sized by its longest)
    int *order = malloc(sizeof *order * (size_t)n);
    if (!order) return sc_errorf(SC_ERR_MEM, "%s: out of memory", s->what);
    memcpy(order, idx, sizeof *order * (size_t)n);
    for (int a = 1; a < n; a++) {
        int v = order[a], b = a;
        while (b > 0 && items[order[b - 1]].len < items[v].len) { order[b] = order[b - 1]; b--; }
        order[b] = v;
    }
    sc_status fatal = SC_OK;
    for (int g0 = 0; g0 < n && fatal == SC_OK;) {
        const int longest = items[order[g0]].len;
        int g1 = g0 + 1;
        while (g1 < n && g1 - g0 < LOCAL_MAX_SEQS && (double)(g1 - g0 + 1) * (longest + s->max_new + 1) <= cap_pos) g1++;
        const int k = g1 - g0;
        const int32_t *prompts[LOCAL_MAX_SEQS];
        int lens[LOCAL_MAX_SEQS];
        sc_gen_out out[LOCAL_MAX_SEQS];
        for (int j = 0; j < k; j++) { prompts[j] = items[order[g0 + j]].ids; lens[j] = items[order[g0 + j]].len; }
        memset(out, 0, sizeof out);
        const double t0 = sc_now_seconds();
        sc_status st = sc_check_interrupt(s->what);
        if (st == SC_OK) st = sc_generate(m, lp->be, prompts, lens, k, NULL, NULL, &so, NULL, out);
        if (st == SC_ERR_INTERRUPTED) { fatal = sc_error_wrap(st, "%s: ", s->what); break; }
        if (st != SC_OK) {
            char msg[2048];
            snprintf(msg, sizeof msg, "generating the answer: %s", sc_last_error());
            for (int j = 0; j < k; j++) item_fail(&items[order[g0 + j]], st, s->what, msg);
            g0 = g1;
            continue;
        }
        *n_gen += k;
        sc_log(SC_LOG_DEBUG, "%s: %d answer%s generated in %.2f s", s->what, k, k == 1 ? "" : "s", sc_now_seconds() - t0);
        for (int j = 0; j < k; j++) {
            const int i = order[g0 + j];
            ask_item *it = &items[i];
            sc_log(SC_LOG_DEBUG, "%s: %s: answer %d: %d tokens%s", s->what, it->label, it->round + 1, out[j].n,
                   out[j].stopped ? "" : " (token limit)");
            char *text = NULL;
            st = sc_tok_decode(lp->judge.tok, out[j].ids, (size_t)out[j].n, 1, &text);
            if (st == SC_OK) st = parse_lenient(s, i, text);
            if (st == SC_OK) { it->status = SC_OK; it->round = 2; free(text); continue; }
            char err[1536];
            snprintf(err, sizeof err, "%s%s", sc_last_error(), out[j].stopped ? "" : " (the answer reached the token limit before it ended)");
            if (!text) { item_fail(it, st, s->what, err); continue; }   // not decodable: nothing to repair
            if (it->round == 1 || st == SC_ERR_MEM) {
                char *msg = sc_strdupf("the answer is not valid JSON of the required shape, also after a repair turn: %s", err);
                item_fail(it, st == SC_ERR_MEM ? SC_ERR_MEM : SC_ERR_FORMAT, s->what, msg ? msg : err);
                free(msg);
                free(text);
                continue;
            }
            // the repair turn: the conversation again, with the bad answer (as decoded, special
            // tokens dropped) as the assistant's turn and a user turn quoting what is wrong
            it->first_error = sc_strdup(err);
            char *repair = sc_strdupf("Your answer is not valid JSON of the required shape: %s\n\nAnswer again with only the JSON object %s, "
                                 "and nothing before or after it.", err, s->shape);
            sc_status rs = repair && it->first_error ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory building a repair turn");
            if (rs == SC_OK) {
                const sc_chat_msg conv[4] = {{SC_CHAT_SYSTEM, it->system}, {SC_CHAT_USER, it->user}, {SC_CHAT_ASSISTANT, text}, {SC_CHAT_USER, repair}};
                rs = set_conversation(lp, conv, 4, &it->ids, &it->len, &it->cap);
            }
            free(repair);
            free(text);
            if (rs != SC_OK) {
                char msg[2048];
                snprintf(msg, sizeof msg, "%s", sc_last_error());
                item_fail(it, rs, s->what, msg);
                continue;
            }
            it->round = 1;
            item_check_context(lp, it, s->what, s->max_new, "the conversation with a repair turn",
                               ": there is no room to ask again; a judge model with a longer context would have it");
        }
        for (int j = 0; j < k; j++) free(out[j].ids);
        g0 = g1;
    }
    free(order);
    return fatal;
}

// Ask every item whose conversation is ready (round 0), then the repair turns (round 1). Items
// that failed before (round 2) are skipped. The parse callback fills the caller's output.
static sc_status ask_all(local_provider *lp, const ask_spec *s, ask_item *items, int n) {
    int *idx = malloc(sizeof *idx * (size_t)(n > 0 ? n : 1));
    if (!idx) return sc_errorf(SC_ERR_MEM, "%s: out of memory", s->what);
    const double t0 = sc_now_seconds();
    int n_gen = 0, repaired = 0;
    sc_status st = SC_OK;
    for (int round = 0; round < 2 && st == SC_OK; round++) {
        int k = 0;
        for (int i = 0; i < n; i++) if (items[i].round == round) idx[k++] = i;
        if (round == 1) repaired = k;
        if (k) st = ask_round(lp, s, items, idx, k, &n_gen);
    }
    free(idx);
    if (st != SC_OK) return st;
    int ok = 0;
    for (int i = 0; i < n; i++) ok += items[i].status == SC_OK;
    sc_log(SC_LOG_INFO, "%s: %d of %d answered (%d needed a repair turn), %d failed; %d generations in %.1f s", s->what, ok, n, repaired,
           n - ok, n_gen, sc_now_seconds() - t0);
    return SC_OK;
}

static void items_free(ask_item *items, int n) {
    if (!items) return;
    for (int i = 0; i < n; i++) {
        free(items[i].label); free(items[i].system); free(items[i].user); free(items[i].ids); free(items[i].error); free(items[i].first_error);
    }
    free(items);
}

// The conversation's opening: system and user turn, then the generation prompt. The messages
// are kept for the repair turn.
static sc_status item_start(local_provider *lp, ask_item *it, const char *system, const char *user) {
    if (!(it->system = sc_strdup(system)) || !(it->user = sc_strdup(user))) return sc_errorf(SC_ERR_MEM, "out of memory building a chat prompt");
    const sc_chat_msg conv[2] = {{SC_CHAT_SYSTEM, system}, {SC_CHAT_USER, user}};
    return set_conversation(lp, conv, 2, &it->ids, &it->len, &it->cap);
}

// ---------------------------------------------------------------------------------------
// Themes

typedef struct {
    const sc_judge_batch *batches;
    sc_judge_theme *out;
    const char *what;
} theme_ctx;

static sc_status theme_parse(void *user, int i, const char *text) {
    theme_ctx *c = user;
    char where[96];
    snprintf(where, sizeof where, "%s: batch %d", c->what, i);
    sc_judge_theme t;
    SC_TRY(sc_judge_parse_theme(text, &c->batches[i], where, &t));
    sc_judge_theme_free(&c->out[i]);
    c->out[i] = t;
    return SC_OK;
}

static sc_status local_themes(sc_provider *p, const sc_judge_batch *batches, int n, sc_judge_theme *out) {
    local_provider *lp = p->impl;
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    if (n <= 0) return SC_OK;
    const char *what = "local themes";
    for (int i = 0; i < n; i++)
        if (batches[i].n <= 0 || !batches[i].items) return sc_errorf(SC_ERR_ARG, "%s: batch %d has no items", what, i);
    ask_item *items = calloc((size_t)n, sizeof *items);
    if (!items) return sc_errorf(SC_ERR_MEM, "%s: out of memory", what);
    sc_status st = SC_OK;
    for (int i = 0; i < n && st == SC_OK; i++) {
        char ids[160];
        sc_judge_batch_ids(&batches[i], ids, sizeof ids);
        if (!(items[i].label = sc_strdupf("batch %d (prompt ids %s)", i, ids))) { st = sc_errorf(SC_ERR_MEM, "%s: out of memory", what); break; }
        char *sys = NULL, *usr = NULL;
        st = sc_judge_prompts_theme(&lp->prompts, &batches[i], &sys, &usr);
        sc_status ts = st == SC_OK ? item_start(lp, &items[i], sys, usr) : st;
        free(sys);
        free(usr);
        if (st != SC_OK) break;   // out of memory: the whole call
        if (ts != SC_OK) { char msg[2048]; snprintf(msg, sizeof msg, "tokenizing its prompt: %s", sc_last_error()); item_fail(&items[i], ts, what, msg); continue; }
        item_check_context(lp, &items[i], what, LOCAL_THEME_NEW_TOKENS, "its prompt",
                           ": use smaller judge batches (judge.batch_size) or a judge model with a longer context");
    }
    theme_ctx ctx = {batches, out, what};
    const ask_spec spec = {
        .what = what,
        .shape = "{\"reasoning\": \"<two to five sentences>\", \"theme\": \"<short phrase>\" or null, \"prompts\": [<ids>]}",
        .max_new = LOCAL_THEME_NEW_TOKENS, .parse = theme_parse, .user = &ctx};
    if (st == SC_OK) st = ask_all(lp, &spec, items, n);
    for (int i = 0; i < n; i++) {
        if (st != SC_OK) { sc_judge_theme_free(&out[i]); memset(&out[i], 0, sizeof out[i]); continue; }
        if (items[i].status == SC_OK && items[i].round == 2) continue;
        sc_judge_theme_free(&out[i]);
        memset(&out[i], 0, sizeof out[i]);
        out[i].status = items[i].status != SC_OK ? items[i].status : SC_ERR_INTERNAL;
        out[i].error = items[i].error ? sc_strdup(items[i].error) : sc_strdupf("%s: %s: no answer", what, items[i].label);
    }
    items_free(items, n);
    return st;
}

// ---------------------------------------------------------------------------------------
// Comparisons

static sc_status verdict_parse(void *user, int i, const char *text) {
    sc_judge_verdict *out = user;
    sc_judge_verdict v;
    SC_TRY(sc_judge_parse_verdict(text, &v));
    free(out[i].error);
    out[i] = v;
    return SC_OK;
}

static sc_status local_compare(sc_provider *p, const sc_judge_pair *pairs, int n, sc_judge_verdict *out) {
    local_provider *lp = p->impl;
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    if (n <= 0) return SC_OK;
    const char *what = "local compare";
    ask_item *items = calloc((size_t)n, sizeof *items);
    if (!items) return sc_errorf(SC_ERR_MEM, "%s: out of memory", what);
    sc_status st = SC_OK;
    for (int i = 0; i < n && st == SC_OK; i++) {
        if (!(items[i].label = sc_strdupf("pair %d", i))) { st = sc_errorf(SC_ERR_MEM, "%s: out of memory", what); break; }
        char *sys = NULL, *usr = NULL;
        st = sc_judge_prompts_compare(&lp->prompts, &pairs[i], &sys, &usr);
        sc_status ts = st == SC_OK ? item_start(lp, &items[i], sys, usr) : st;
        free(sys);
        free(usr);
        if (st != SC_OK) break;
        if (ts != SC_OK) { char msg[2048]; snprintf(msg, sizeof msg, "tokenizing its prompt: %s", sc_last_error()); item_fail(&items[i], ts, what, msg); continue; }
        item_check_context(lp, &items[i], what, LOCAL_COMPARE_NEW_TOKENS, "its prompt",
                           ": use shorter responses or a judge model with a longer context");
    }
    const ask_spec spec = {
        .what = what, .shape = "{\"reasoning\": \"<one to three sentences>\", \"more\": \"A\" or \"B\"}",
        .max_new = LOCAL_COMPARE_NEW_TOKENS, .parse = verdict_parse, .user = out};
    if (st == SC_OK) st = ask_all(lp, &spec, items, n);
    for (int i = 0; i < n; i++) {
        if (st == SC_OK && items[i].status == SC_OK && items[i].round == 2) continue;
        free(out[i].error);
        memset(&out[i], 0, sizeof out[i]);
        if (st != SC_OK) continue;
        out[i].status = items[i].status != SC_OK ? items[i].status : SC_ERR_INTERNAL;
        out[i].error = items[i].error ? sc_strdup(items[i].error) : sc_strdupf("%s: %s: no answer", what, items[i].label);
    }
    items_free(items, n);
    return st;
}

// ---------------------------------------------------------------------------------------
// Embeddings

// The unit-length mean of the final-normed hidden rows of one text into v[C]. Errors are
// returned unprefixed; the caller names the text.
static sc_status embed_one(local_provider *lp, const char *text, float *v) {
    const local_model *lm = &lp->embedder;
    const sc_model *m = lm->m;
    sc_backend *be = lp->be;
    const int C = m->cfg.hidden;
    int32_t *ids = NULL;
    size_t nt = 0;
    SC_TRY(sc_tok_encode(lm->tok, text, strlen(text), &ids, &nt));
    if (nt == 0) { free(ids); return sc_errorf(SC_ERR_ARG, "it has no tokens"); }
    if (m->cfg.max_position > 0 && nt > (size_t)m->cfg.max_position) {
        free(ids);
        return sc_errorf(SC_ERR_ARG, "it has %zu tokens, beyond the context of %d of the embedding model %s (max_position_embeddings); "
                         "shorten the text", nt, m->cfg.max_position, lm->dir);
    }
    const int T = (int)nt;
    int ss[2] = {0, T};
    sc_batch b = {.n_seq = 1, .seq_start = ss};
    float *hidden = NULL, *normed = NULL;
    double *acc = NULL, *sum = NULL;
    sc_status st = sc_backend_alloc_floats(be, (size_t)T * C, "embedding hidden rows", &hidden);
    if (st == SC_OK) st = sc_backend_alloc_floats(be, (size_t)T * C, "embedding normed rows", &normed);
    if (st == SC_OK) st = be->op->alloc(be, sizeof(double) * (size_t)C, "embedding sums", (void **)&acc);
    if (st == SC_OK) st = be->op->memset(be, acc, 0, sizeof(double) * (size_t)C);
    // final hidden state [T,C] -> final RMSNorm (as sc_head applies it) -> column sums [C]
    if (st == SC_OK) st = sc_forward(m, be, &b, ids, hidden, NULL, NULL, NULL);
    if (st == SC_OK) st = be->op->rmsnorm(be, normed, NULL, hidden, m->final_norm, T, C, m->cfg.rms_eps);
    if (st == SC_OK) st = be->op->col_sum(be, acc, normed, T, C);
    if (st == SC_OK && !(sum = sc_malloc(sizeof *sum * (size_t)C, "an embedding"))) st = SC_ERR_MEM;
    if (st == SC_OK) st = be->op->download(be, sum, acc, sizeof(double) * (size_t)C);
    if (st == SC_OK) {
        double ss2 = 0;
        for (int c = 0; c < C; c++) { sum[c] /= T; ss2 += sum[c] * sum[c]; }
        const double norm = sqrt(ss2);
        if (!(norm > 0) || !isfinite(norm))
            st = sc_errorf(SC_ERR_NUMERIC, "its mean hidden state has norm %g: the embedding model %s gives no usable vector", norm, lm->dir);
        else for (int c = 0; c < C; c++) v[c] = (float)(sum[c] / norm);
    }
    free(sum);
    be->op->free(be, acc);
    be->op->free(be, normed);
    be->op->free(be, hidden);
    free(ids);
    return st;
}

static sc_status local_embed(sc_provider *p, const char *const *texts, int n, float **vecs, int *dim) {
    local_provider *lp = p->impl;
    *vecs = NULL;
    *dim = 0;
    if (n <= 0) return SC_OK;
    for (int i = 0; i < n; i++)
        if (!texts[i] || !*texts[i]) return sc_errorf(SC_ERR_ARG, "local embeddings: text %d is empty (there is nothing to embed)", i);
    const int C = lp->embedder.m->cfg.hidden;
    float *v = sc_malloc(sizeof *v * (size_t)n * (size_t)C, "embeddings");
    if (!v) return SC_ERR_MEM;
    const double t0 = sc_now_seconds();
    int passes = 0;
    sc_status st = SC_OK;
    for (int i = 0; i < n && st == SC_OK; i++) {
        int same = -1;
        for (int j = 0; j < i && same < 0; j++) if (!strcmp(texts[j], texts[i])) same = j;
        if (same >= 0) { memcpy(v + (size_t)i * C, v + (size_t)same * C, sizeof *v * (size_t)C); continue; }
        if ((st = sc_check_interrupt("local embeddings")) != SC_OK) break;
        if ((st = embed_one(lp, texts[i], v + (size_t)i * C)) != SC_OK) st = sc_error_wrap(st, "local embeddings: text %d: ", i);
        passes++;
    }
    if (st != SC_OK) { free(v); return st; }
    sc_log(SC_LOG_INFO, "local embeddings: %d texts (%d forward passes) in %.1f s", n, passes, sc_now_seconds() - t0);
    *vecs = v;
    *dim = C;
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Construction

static void model_release(local_model *lm) {
    sc_model_free(lm->m);
    sc_tok_free(lm->tok);
    lm->m = NULL;
    lm->tok = NULL;
}

static void local_free(sc_provider *p) {
    if (!p) return;
    local_provider *lp = p->impl;
    if (!lp->shared) model_release(&lp->embedder);
    model_release(&lp->judge);
    sc_chat_free(lp->chat);
    sc_judge_prompts_release(&lp->prompts);
    sc_backend_free(lp->be);
    free(lp);
}

// ---------------------------------------------------------------------------------------
// Openers (the dataset generator, datagen.h): the caller's check parses each answer; an answer
// it refuses gets the repair turn like any other.

typedef struct {
    sc_provider_check check;
    void *user;
} openers_ctx;

static sc_status openers_parse(void *user, int i, const char *text) {
    openers_ctx *c = user;
    return c->check(c->user, i, text);
}

static sc_status local_openers(sc_provider *p, const char *const *system, const char *const *user, int n,
                               sc_provider_check check, void *user_data, sc_provider_outcome *out) {
    local_provider *lp = p->impl;
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    if (n <= 0) return SC_OK;
    const char *what = "local openers";
    ask_item *items = calloc((size_t)n, sizeof *items);
    if (!items) return sc_errorf(SC_ERR_MEM, "%s: out of memory", what);
    sc_status st = SC_OK;
    for (int i = 0; i < n && st == SC_OK; i++) {
        if (!(items[i].label = sc_strdupf("request %d", i))) { st = sc_errorf(SC_ERR_MEM, "%s: out of memory", what); break; }
        sc_status ts = item_start(lp, &items[i], system[i], user[i]);
        if (ts == SC_ERR_MEM) { st = ts; break; }
        if (ts != SC_OK) { char msg[2048]; snprintf(msg, sizeof msg, "tokenizing its prompt: %s", sc_last_error()); item_fail(&items[i], ts, what, msg); continue; }
        item_check_context(lp, &items[i], what, LOCAL_OPENERS_NEW_TOKENS, "its prompt", ": use a model with a longer context");
    }
    openers_ctx ctx = {check, user_data};
    const ask_spec spec = {
        .what = what, .shape = "{\"openers\": [{\"speaker\": \"<one of the two role names>\", \"text\": \"<the opener>\"}, ...]}",
        .max_new = LOCAL_OPENERS_NEW_TOKENS, .parse = openers_parse, .user = &ctx};
    if (st == SC_OK) st = ask_all(lp, &spec, items, n);
    for (int i = 0; i < n; i++) {
        if (st == SC_OK && items[i].status == SC_OK && items[i].round == 2) continue;
        out[i].status = st != SC_OK ? st : items[i].status != SC_OK ? items[i].status : SC_ERR_INTERNAL;
        out[i].error = st != SC_OK ? sc_strdup(sc_last_error()) : items[i].error ? sc_strdup(items[i].error) : sc_strdupf("%s: %s: no answer", what, items[i].label);
    }
    items_free(items, n);
    return st;
}

static const sc_provider_ops local_ops = {
    .themes = local_themes,
    .embed = local_embed,
    .compare = local_compare,
    .free = local_free,
    .openers = local_openers,
};

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

// The model's name as recorded: config.json's "_name_or_path" when it has one that fits, else
// the directory's last component.
static void model_name(const char *dir, char *out, size_t cap) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (sc_read_file(path, &text, &len) == SC_OK) {
        cJSON *root = cJSON_ParseWithLength(text, len);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
        if (cJSON_IsString(nm) && *nm->valuestring && strlen(nm->valuestring) < cap) snprintf(out, cap, "%s", nm->valuestring);
        cJSON_Delete(root);
        free(text);
    }
    sc_error_clear();
    if (out[0]) return;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && dir[s - 1] != '/') s--;
    snprintf(out, cap, "%.*s", (int)(n - s), dir + s);
}

// Load a model directory and its tokenizer for `role` ("judge model", "embedding model").
static sc_status model_open(local_provider *lp, const char *dir, const char *role, const char *key, int hidden_only, local_model *lm) {
    if (strlen(dir) >= sizeof lm->dir) return sc_errorf(SC_ERR_ARG, "local judge: the %s path '%s' is too long", role, dir);
    snprintf(lm->dir, sizeof lm->dir, "%s", dir);
    if (!is_dir(dir))
        return sc_errorf(SC_ERR_ARG, "local judge: the %s directory '%s' (%s) does not exist or is not a directory: "
                         "point it at a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)", role, dir, key);
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (!sc_file_exists(path))
        return sc_errorf(SC_ERR_ARG, "local judge: %s has no tokenizer.json: the %s directory needs the model's tokenizer.json "
                         "(download it from the model's Hugging Face repository into %s)", dir, role, dir);
    sc_status st = hidden_only ? sc_model_load_hidden(dir, lp->be, &lm->m) : sc_model_load(dir, 0, -1, lp->be, &lm->m);
    if (st != SC_OK) return sc_error_wrap(st, "local judge: loading the %s %s: ", role, dir);
    if ((st = sc_tok_load(path, &lm->tok)) != SC_OK) { model_release(lm); return sc_error_wrap(st, "local judge: the %s's tokenizer: ", role); }
    const int32_t nv = sc_tok_vocab_size(lm->tok);
    if (nv > lm->m->cfg.vocab) {
        model_release(lm);
        return sc_errorf(SC_ERR_SHAPE, "local judge: %s has %d token ids but the model in %s has vocab_size %d: the tokenizer does not belong to the model",
                         path, (int)nv, dir, lm->m->cfg.vocab);
    }
    return SC_OK;
}

static int same_dir(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    if (realpath(a, ra) && realpath(b, rb)) return !strcmp(ra, rb);
    return !strcmp(a, b);
}

sc_status sc_provider_local(const char *model_dir, const char *embed_dir, sc_provider **out) {
    *out = NULL;
    if (!model_dir || !*model_dir)
        return sc_errorf(SC_ERR_ARG, "local judge: no model directory: set judge.local_model in the config to an instruct model directory "
                         "(Hugging Face layout with config.json, *.safetensors and tokenizer.json, e.g. Qwen2.5-7B-Instruct)");
    if (!embed_dir || !*embed_dir) embed_dir = model_dir;
    local_provider *lp = calloc(1, sizeof *lp);
    if (!lp) return sc_errorf(SC_ERR_MEM, "local judge: out of memory");
    const double t0 = sc_now_seconds();
    sc_backend_opts bo;
    sc_backend_opts_default(&bo);
    sc_status st = sc_backend_create(&bo, &lp->be);
    if (st != SC_OK) { free(lp); return sc_error_wrap(st, "local judge: "); }
    lp->base.impl = lp;
    lp->base.op = &local_ops;
    lp->base.name = "local";
    if ((st = sc_judge_prompts_load(NULL, &lp->prompts)) != SC_OK) { st = sc_error_wrap(st, "local judge: "); goto fail; }
    if ((st = model_open(lp, model_dir, "judge model", "judge.local_model", 0, &lp->judge)) != SC_OK) goto fail;
    if (sc_tok_id(lp->judge.tok, "<|im_start|>") < 0 || sc_tok_id(lp->judge.tok, "<|im_end|>") < 0) {
        st = sc_errorf(SC_ERR_ARG, "local judge: %s/tokenizer.json has no <|im_start|> and <|im_end|> tokens: the judge needs a Qwen-style chat "
                       "(instruct) model; set judge.local_model to one", model_dir);
        goto fail;
    }
    if ((st = sc_chat_load(model_dir, &lp->chat)) != SC_OK) { st = sc_error_wrap(st, "local judge: the judge model's chat template: "); goto fail; }
    lp->chat_opts.no_thinking = sc_chat_has_thinking_switch(lp->chat);
    lp->shared = same_dir(model_dir, embed_dir);
    if (lp->shared) lp->embedder = lp->judge;
    else if ((st = model_open(lp, embed_dir, "embedding model", "judge.local_embed_model", 1, &lp->embedder)) != SC_OK) goto fail;
    model_name(model_dir, lp->base.model, sizeof lp->base.model);
    model_name(embed_dir, lp->base.embed_model, sizeof lp->base.embed_model);
    sc_log(SC_LOG_INFO, "local judge: model %s (%s, chat template %s%s), embeddings %s%s, %s backend, loaded in %.1f s", lp->base.model, model_dir,
           sc_chat_family(lp->chat), lp->chat_opts.no_thinking ? ", thinking off" : "", lp->base.embed_model,
           lp->shared ? " (the same model)" : "", lp->be->name, sc_now_seconds() - t0);
    *out = &lp->base;
    return SC_OK;
fail:
    local_free(&lp->base);
    return st;
}
