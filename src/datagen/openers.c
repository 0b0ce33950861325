// openers.c — the dataset generator's generation loop (see steerclear/datagen.h): rounds of
// requests, one per scenario still short, each asking the provider for openers as JSON
// (prompts/dataset_openers.txt), every answer schema-checked (a broken one is not cached and
// counts as a failed request) and its openers cleaned into the scenario's pool as they arrive.
//
// Determinism, which the cache needs: scenario s's request k (its k-th answered request) is a
// function of the scenario, k and the openers kept from its answers 0..k-1 only. A rerun
// therefore sends the same requests in the same order; the provider answers those it has from
// its cache, and the first one it has not is where the last run stopped.
// Leaves out: asking one scenario's openers in several requests at once (a scenario's requests
// are sequential; scenarios run concurrently, up to the provider's in-flight cap).
#include "steerclear/datagen.h"
#include "steerclear/judge_prompts.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

sc_status sc_datagen_add_dropped(sc_datagen_result *res, const sc_dropped *d);   // clean.c

void sc_datagen_opts_default(sc_datagen_opts *o) {
    memset(o, 0, sizeof *o);
    o->per_scenario = 20;
    o->batch = 12;
    o->max_rounds = 8;
    o->stall = 3;
    o->avoid = 30;
    sc_clean_opts_default(&o->clean);
}

void sc_datagen_result_free(sc_datagen_result *res) {
    if (!res) return;
    for (int s = 0; s < res->n; s++) {
        if (res->pools) sc_pool_free(&res->pools[s]);
        if (res->stats) free(res->stats[s].last_error);
    }
    for (int i = 0; i < res->n_dropped; i++) { free(res->dropped[i].speaker); free(res->dropped[i].text); free(res->dropped[i].similar_text); }
    free(res->pools);
    free(res->stats);
    free(res->dropped);
    memset(res, 0, sizeof *res);
}

static void free_strings(char **v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

sc_status sc_datagen_parse_answer(const char *text, char ***speakers, char ***texts, int *n) {
    *speakers = *texts = NULL;
    *n = 0;
    sc_status st;
    cJSON *root = sc_judge_answer_parse(text, &st);
    if (!root) return st;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "openers");
    const char *bad = NULL;
    if (!arr) bad = "\"openers\" is missing";
    else if (!cJSON_IsArray(arr)) bad = "\"openers\" is not an array";
    int k = 0;
    const cJSON *it, *walk = bad ? NULL : arr;
    cJSON_ArrayForEach(it, walk) {
        if (!cJSON_IsObject(it)) { bad = "an item of \"openers\" is not an object {\"speaker\", \"text\"}"; break; }
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "speaker"))) { bad = "an item of \"openers\" has no string \"speaker\""; break; }
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "text"))) { bad = "an item of \"openers\" has no string \"text\""; break; }
        k++;
    }
    if (bad) {
        char ex[240];
        sc_judge_excerpt(text, 160, ex, sizeof ex);
        cJSON_Delete(root);
        return sc_errorf(SC_ERR_FORMAT, "the answer breaks the schema {\"openers\": [{\"speaker\": str, \"text\": str}]}: %s: \"%s\"", bad, ex);
    }
    char **sp = calloc((size_t)k + 1, sizeof *sp), **tx = calloc((size_t)k + 1, sizeof *tx);
    int i = 0;
    st = sp && tx ? SC_OK : SC_ERR_MEM;
    cJSON_ArrayForEach(it, arr) {
        if (st) break;
        sp[i] = sc_strdup(cJSON_GetObjectItemCaseSensitive(it, "speaker")->valuestring);
        tx[i] = sc_strdup(cJSON_GetObjectItemCaseSensitive(it, "text")->valuestring);
        if (!sp[i] || !tx[i]) st = SC_ERR_MEM;
        i++;
    }
    cJSON_Delete(root);
    if (st) { free_strings(sp, k); free_strings(tx, k); return sc_errorf(SC_ERR_MEM, "out of memory reading openers"); }
    *speakers = sp;
    *texts = tx;
    *n = k;
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// One round's answers

typedef struct {
    char **speakers, **texts;
    int n;
} answer_slot;

static sc_status check_answer(void *user, int i, const char *text) {
    answer_slot *slots = user;
    char **sp, **tx;
    int n;
    SC_TRY(sc_datagen_parse_answer(text, &sp, &tx, &n));
    free_strings(slots[i].speakers, slots[i].n);
    free_strings(slots[i].texts, slots[i].n);
    slots[i] = (answer_slot){sp, tx, n};
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// Prompts

typedef struct { char *p; size_t len, cap; int oom; } sbuf;

static void sb_str(sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static sc_status render(const char *sys_t, const char *user_t, const sc_scenario *sc, const sc_opener_pool *pool, int ask, int request,
                        const sc_datagen_opts *o, char **system, char **user) {
    sbuf topics = {0}, avoid = {0};
    for (int t = 0; t < sc->n_topics; t++) { sb_str(&topics, t ? ", " : ""); sb_str(&topics, sc->topics[t]); }
    const int first = pool->n > o->avoid ? pool->n - o->avoid : 0;
    for (int i = first; i < pool->n; i++) {
        sb_str(&avoid, "- ");
        sb_str(&avoid, sc->roles[pool->items[i].role]);
        sb_str(&avoid, ": ");
        sb_str(&avoid, pool->items[i].text);
        sb_str(&avoid, "\n");
    }
    if (pool->n == 0) sb_str(&avoid, "(none yet)\n");
    char n_s[16], req_s[16], min_s[16], max_s[16];
    snprintf(n_s, sizeof n_s, "%d", ask);
    snprintf(req_s, sizeof req_s, "%d", request + 1);
    snprintf(min_s, sizeof min_s, "%d", o->clean.min_chars);
    snprintf(max_s, sizeof max_s, "%d", o->clean.max_chars);
    const char *names[] = {"n", "name", "context", "dynamic", "role_a", "role_b", "topics", "avoid", "request", "min_chars", "max_chars"};
    const char *values[] = {n_s, sc->name, sc->context, sc->dynamic, sc->roles[0], sc->roles[1], topics.p ? topics.p : "",
                            avoid.p ? avoid.p : "", req_s, min_s, max_s};
    sc_status st = topics.oom || avoid.oom ? SC_ERR_MEM : SC_OK;
    *system = st ? NULL : sc_judge_prompt_fill(sys_t, names, values, 11);
    *user = st ? NULL : sc_judge_prompt_fill(user_t, names, values, 11);
    free(topics.p);
    free(avoid.p);
    if (!*system || !*user) { free(*system); free(*user); *system = *user = NULL; return sc_errorf(SC_ERR_MEM, "out of memory rendering the openers prompt"); }
    return SC_OK;
}

// ---------------------------------------------------------------------------------------
// The loop

typedef struct {
    int answers;                 // answered requests: the next request's index
    int stall;                   // answers in a row that kept nothing
    int done;
} scen_state;

sc_status sc_datagen_generate(sc_provider *p, const sc_scenarios *sc, const sc_datagen_opts *o, sc_datagen_result *res) {
    memset(res, 0, sizeof *res);
    if (!p->op->openers)
        return sc_errorf(SC_ERR_ARG, "provider %s cannot write openers (it writes no text); use gemini, openai (any OpenAI-compatible server) or local", p->name);
    if (o->per_scenario < 1 || o->batch < 1 || o->max_rounds < 1 || o->stall < 1)
        return sc_errorf(SC_ERR_ARG, "dataset: per_scenario, batch, max_rounds and stall must be at least 1");
    static const char *const need[] = {"{{n}}", "{{context}}", "{{role_a}}", "{{role_b}}", NULL};
    char *sys_t = NULL, *user_t = NULL;
    SC_TRY(sc_judge_prompt_file_load(o->prompts_dir, "dataset_openers.txt", need, &sys_t, &user_t));
    const int S = sc->n;
    res->n = S;
    res->pools = calloc((size_t)S, sizeof *res->pools);
    res->stats = calloc((size_t)S, sizeof *res->stats);
    scen_state *ss = calloc((size_t)S, sizeof *ss);
    int *act = malloc(sizeof *act * (size_t)S);
    char **sys = calloc((size_t)S, sizeof *sys), **usr = calloc((size_t)S, sizeof *usr);
    answer_slot *slots = calloc((size_t)S, sizeof *slots);
    sc_provider_outcome *out = calloc((size_t)S, sizeof *out);
    sc_status st = res->pools && res->stats && ss && act && sys && usr && slots && out ? SC_OK : sc_errorf(SC_ERR_MEM, "dataset: out of memory");
    int round = 0;
    while (st == SC_OK) {
        int n_act = 0;
        for (int s = 0; s < S; s++) if (!ss[s].done) act[n_act++] = s;
        if (n_act == 0) break;
        int left = p->op->budget_left ? p->op->budget_left(p) : -1;
        if (left == 0) {
            for (int k = 0; k < n_act; k++) { ss[act[k]].done = 1; res->stats[act[k]].stopped = "budget"; }
            sc_log(SC_LOG_WARN, "dataset: the request budget is spent with %d scenario%s short; raise --request-budget, or rerun (answers so far come from the cache)",
                   n_act, n_act == 1 ? "" : "s");
            break;
        }
        if (left > 0 && left < n_act) n_act = left;   // the rest wait for the next round (and the budget stops them there)
        for (int k = 0; k < n_act && st == SC_OK; k++) {
            const int s = act[k];
            const int need_n = o->per_scenario - res->pools[s].n;
            int ask = need_n + need_n / 4 + 1;
            if (ask > o->batch) ask = o->batch;
            st = render(sys_t, user_t, &sc->items[s], &res->pools[s], ask, ss[s].answers, o, &sys[k], &usr[k]);
        }
        if (st) break;
        for (int k = 0; k < n_act; k++) memset(&slots[k], 0, sizeof slots[k]);
        st = p->op->openers(p, (const char *const *)sys, (const char *const *)usr, n_act, check_answer, slots, out);
        int asked = 0, cached = 0, failed = 0, kept_round = 0;
        for (int k = 0; k < n_act; k++) {
            const int s = act[k];
            sc_scenario_stats *t = &res->stats[s];
            if (st == SC_ERR_INTERRUPTED && out[k].status != SC_OK) continue;
            t->requests++;
            res->requests++;
            asked++;
            if (out[k].status != SC_OK) {
                t->failed++;
                res->failed++;
                failed++;
                free(t->last_error);
                t->last_error = sc_strdup(out[k].error ? out[k].error : "failed");
                sc_log(SC_LOG_WARN, "dataset: %s: request %d failed: %s", sc->items[s].name, ss[s].answers, out[k].error ? out[k].error : "failed");
            } else {
                t->answered++;
                if (out[k].cached) { t->cached++; res->cached++; cached++; }
                t->received += slots[k].n;
                int kept = 0;
                for (int j = 0; j < slots[k].n && st != SC_ERR_MEM; j++) {
                    int sp_i = -1, si = -1;
                    double sim = 0;
                    // beyond the N needed: the opener's own faults are still reported; a clean one is surplus
                    int role;
                    const int full = res->pools[s].n >= o->per_scenario;
                    sc_drop_reason r = !full
                        ? sc_pool_offer(&res->pools[s], NULL, 0, &sc->items[s], slots[k].speakers[j], slots[k].texts[j], &o->clean, &sp_i, &si, &sim)
                        : sc_opener_check(&sc->items[s], slots[k].speakers[j], slots[k].texts[j], &o->clean, &role);
                    if (r == SC_DROP_NONE && full) r = SC_DROP_SURPLUS;
                    if (r == SC_DROP_N) { st = SC_ERR_MEM; break; }
                    if (r == SC_DROP_NONE) { kept++; continue; }
                    sc_dropped d = {.scenario = s, .request = ss[s].answers, .speaker = sc_strdup(slots[k].speakers[j]),
                                    .text = sc_strdup(slots[k].texts[j]), .reason = r, .similar_scenario = si >= 0 ? s : -1,
                                    .similar_text = si >= 0 ? sc_strdup(res->pools[s].items[si].text) : NULL, .similarity = sim};
                    (void)sp_i;
                    if (!d.speaker || !d.text || (si >= 0 && !d.similar_text) || sc_datagen_add_dropped(res, &d)) {
                        free(d.speaker); free(d.text); free(d.similar_text);
                        st = sc_errorf(SC_ERR_MEM, "dataset: out of memory");
                        break;
                    }
                }
                kept_round += kept;
                ss[s].answers++;
                ss[s].stall = kept ? 0 : ss[s].stall + 1;
            }
            t->kept = res->pools[s].n;
            if (res->pools[s].n >= o->per_scenario) { ss[s].done = 1; t->stopped = "complete"; }
            else if (t->requests >= o->max_rounds) { ss[s].done = 1; t->stopped = "rounds"; }
            else if (ss[s].stall >= o->stall) { ss[s].done = 1; t->stopped = "stalled"; }
        }
        for (int k = 0; k < n_act; k++) {
            free(sys[k]); free(usr[k]); sys[k] = usr[k] = NULL;
            free_strings(slots[k].speakers, slots[k].n);
            free_strings(slots[k].texts, slots[k].n);
            memset(&slots[k], 0, sizeof slots[k]);
        }
        sc_provider_outcomes_free(out, n_act);
        sc_log(SC_LOG_INFO, "dataset: round %d: %d request%s (%d from the cache, %d failed), %d openers kept", round + 1, asked, asked == 1 ? "" : "s",
               cached, failed, kept_round);
        round++;
        if (st == SC_ERR_INTERRUPTED) {
            for (int s = 0; s < S; s++) if (!ss[s].done) { ss[s].done = 1; res->stats[s].stopped = "interrupted"; }
        }
    }
    for (int s = 0; s < S && res->stats; s++) {
        res->stats[s].kept = res->pools[s].n;
        res->stats[s].missing = o->per_scenario > res->pools[s].n ? o->per_scenario - res->pools[s].n : 0;
        if (!res->stats[s].stopped) res->stats[s].stopped = res->stats[s].missing ? "interrupted" : "complete";
    }
    free(sys_t); free(user_t); free(ss); free(act); free(sys); free(usr); free(slots); free(out);
    return st;
}
