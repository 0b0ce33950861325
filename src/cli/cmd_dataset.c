// cmd_dataset.c — `steerclear dataset`: scenario specs -> openers written by a language model
// (gemini, openai or local, through the judge's providers) -> cleaning -> optional baseline
// completions -> a seeded split into OUT/train.csv and OUT/test.csv, with OUT/cleaning.json
// (what was dropped and why) and OUT/manifest.json (counts, seed, settings). See
// steerclear/datagen.h.
#include "steerclear/cli.h"
#include "steerclear/datagen.h"
#include "steerclear/judge_net.h"
#include "steerclear/monitor.h"
#include "steerclear/stage.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: steerclear dataset --provider gemini|openai|local --out DIR [options]\n"
        "\n"
        "A prompt set written by a language model: for each scenario of --scenarios, openers (one\n"
        "speaker's first turn) asked as JSON in rounds until --per-scenario clean, distinct ones are\n"
        "kept; cleaned (duplicates, near-duplicates, length, line breaks, chat tokens, role markers);\n"
        "optionally completed by a base model; split into DIR/train.csv and DIR/test.csv in the format\n"
        "search and evaluate read. DIR/cleaning.json says what was dropped and why, DIR/manifest.json\n"
        "holds the counts, the seed and the settings. Answers are cached (DIR/cache): a rerun asks only\n"
        "what is missing.\n"
        "\n"
        "  --scenarios FILE          scenario specs (default: the shipped datasets/scenarios.json)\n"
        "  --out DIR                 output folder (required)\n"
        "  --provider NAME           gemini, openai (any OpenAI-compatible server) or local (required)\n"
        "  --model NAME              the generator model (default: the provider's; --judge-model is the same)\n"
        "  --base-url URL            the API's base URL (openai: e.g. http://127.0.0.1:8000)\n"
        "  --api-key-env VAR         the environment variable holding the API key (openai: \"\" for none)\n"
        "  --local-model DIR         local provider: an instruct model directory\n"
        "  --in-flight N             requests at once (8)\n"
        "  --request-budget N        most HTTP requests this run may send, retries included (500)\n"
        "  --max-attempts N          attempts per request, the first included (5)\n"
        "  --timeout S               seconds per attempt (120)\n"
        "  --temperature X           the generator's sampling temperature (1)\n"
        "  --cache DIR               answer cache (default DIR/cache); --no-cache: none\n"
        "  --per-scenario N          openers kept per scenario (default: train + test per scenario, 20)\n"
        "  --batch N                 most openers asked per request (12)\n"
        "  --max-rounds N            most requests per scenario, failed ones included (8)\n"
        "  --min-chars N --max-chars N   opener length limits in characters (20, 400)\n"
        "  --jaccard X               near-duplicate threshold on 5-character shingles (0.5)\n"
        "  --shingle K               characters per shingle (5)\n"
        "  --split stratified|holdout    (stratified)\n"
        "  --train-per-scenario N    stratified: training openers per scenario (16)\n"
        "  --test-per-scenario N     stratified: test openers per scenario (4)\n"
        "  --holdout K               holdout: scenarios held out whole for the test set (a fifth, at least 1)\n"
        "  --seed S                  split seed (1234)\n"
        "  --allow-short             write the split even when scenarios lack openers (else exit 1)\n"
        "  --completions MODEL_DIR   the base model's continuation of each test prompt (original_completion),\n"
        "                            sampled as evaluate does: --completion-max-new-tokens N (100),\n"
        "                            --completion-temperature X (0.7), --completion-top-k N (50),\n"
        "                            --completion-top-p X (0.9), --completion-seed S (1234),\n"
        "                            --completion-batch N (64), --memory-budget SIZE\n"
        "  --prompts-dir DIR         where dataset_openers.txt is (default: the source tree's prompts/)\n");
}

// ---------------------------------------------------------------------------------------
// Writing

static sc_status write_text(const char *path, char *buf, size_t len) {
    sc_status st = sc_write_file_atomic(path, buf, len);
    free(buf);
    return st;
}

static sc_status write_json(const char *path, cJSON *j) {
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text) return sc_errorf(SC_ERR_MEM, "%s: out of memory building JSON", path);
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) { free(text); return sc_errorf(SC_ERR_MEM, "%s: out of memory", path); }
    t2[n] = '\n';
    t2[n + 1] = '\0';
    return write_text(path, t2, n + 1);
}

// train: category,full_prompt[,original_completion]; test: category,prompt,full_prompt[,original_completion]
static sc_status write_csv(const char *path, const sc_scenarios *sc, const sc_datagen_result *res, const sc_split_row *rows, int n,
                           int test, char *const *completions) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return sc_errorf(SC_ERR_MEM, "%s: out of memory", path);
    fputs(test ? "category,prompt,full_prompt" : "category,full_prompt", f);
    fputs(completions ? ",original_completion\n" : "\n", f);
    sc_status st = SC_OK;
    for (int i = 0; i < n && !st; i++) {
        const sc_scenario *s = &sc->items[rows[i].scenario];
        char *full = NULL, *prompt = NULL;
        if ((st = sc_opener_prompts(s, &res->pools[rows[i].scenario].items[rows[i].index], &full, &prompt))) break;
        sc_csv_field(f, s->name);
        if (test) { fputc(',', f); sc_csv_field(f, prompt); }
        fputc(',', f);
        sc_csv_field(f, full);
        if (completions) { fputc(',', f); sc_csv_field(f, completions[i] ? completions[i] : ""); }
        fputc('\n', f);
        free(full);
        free(prompt);
    }
    if (fclose(f) != 0 && !st) st = sc_errorf(SC_ERR_MEM, "%s: out of memory", path);
    if (st) { free(buf); return st; }
    return write_text(path, buf, len);
}

typedef struct {
    const char *scenarios_path, *provider, *model, *out, *cache;
    sc_datagen_opts gen;
    sc_split_opts split;
    int per_set, allow_short, request_budget, in_flight, max_attempts;
    double temperature, timeout_s;
    const char *completions_model;
    sc_completion_opts comp;
} run_opts;

static cJSON *settings_json(const run_opts *r, const sc_provider *p) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "scenarios", r->scenarios_path);
    cJSON_AddStringToObject(j, "provider", p->name);
    cJSON_AddStringToObject(j, "model", p->model);
    cJSON_AddNumberToObject(j, "temperature", r->temperature);
    cJSON_AddNumberToObject(j, "per_scenario", r->gen.per_scenario);
    cJSON_AddNumberToObject(j, "batch", r->gen.batch);
    cJSON_AddNumberToObject(j, "max_rounds", r->gen.max_rounds);
    cJSON_AddNumberToObject(j, "request_budget", r->request_budget);
    cJSON *c = cJSON_AddObjectToObject(j, "cleaning");
    cJSON_AddNumberToObject(c, "min_chars", r->gen.clean.min_chars);
    cJSON_AddNumberToObject(c, "max_chars", r->gen.clean.max_chars);
    cJSON_AddNumberToObject(c, "jaccard", r->gen.clean.jaccard);
    cJSON_AddNumberToObject(c, "shingle", r->gen.clean.shingle);
    return j;
}

static cJSON *cleaning_json(const run_opts *r, const sc_provider *p, const sc_scenarios *sc, const sc_datagen_result *res) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "settings", settings_json(r, p));
    int by_reason[SC_DROP_N] = {0}, received = 0, kept = 0;
    for (int i = 0; i < res->n_dropped; i++) by_reason[res->dropped[i].reason]++;
    for (int s = 0; s < res->n; s++) { received += res->stats[s].received; kept += res->stats[s].kept; }
    cJSON *sum = cJSON_AddObjectToObject(j, "summary");
    cJSON_AddNumberToObject(sum, "received", received);
    cJSON_AddNumberToObject(sum, "kept", kept);
    cJSON_AddNumberToObject(sum, "dropped", res->n_dropped);
    cJSON *br = cJSON_AddObjectToObject(sum, "by_reason");
    for (int k = 1; k < SC_DROP_N; k++) cJSON_AddNumberToObject(br, sc_drop_reason_name(k), by_reason[k]);
    cJSON_AddNumberToObject(sum, "requests", res->requests);
    cJSON_AddNumberToObject(sum, "cached", res->cached);
    cJSON_AddNumberToObject(sum, "failed", res->failed);
    cJSON *per = cJSON_AddArrayToObject(j, "scenarios");
    for (int s = 0; s < res->n; s++) {
        const sc_scenario_stats *t = &res->stats[s];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", sc->items[s].name);
        cJSON_AddNumberToObject(e, "requests", t->requests);
        cJSON_AddNumberToObject(e, "answered", t->answered);
        cJSON_AddNumberToObject(e, "cached", t->cached);
        cJSON_AddNumberToObject(e, "failed", t->failed);
        cJSON_AddNumberToObject(e, "received", t->received);
        cJSON_AddNumberToObject(e, "kept", t->kept);
        cJSON_AddNumberToObject(e, "missing", t->missing);
        cJSON_AddStringToObject(e, "stopped", t->stopped ? t->stopped : "");
        if (t->last_error) cJSON_AddStringToObject(e, "last_error", t->last_error);
        else cJSON_AddNullToObject(e, "last_error");
        cJSON *d = cJSON_AddObjectToObject(e, "dropped");
        int cnt[SC_DROP_N] = {0};
        for (int i = 0; i < res->n_dropped; i++) if (res->dropped[i].scenario == s) cnt[res->dropped[i].reason]++;
        for (int k = 1; k < SC_DROP_N; k++) if (cnt[k]) cJSON_AddNumberToObject(d, sc_drop_reason_name(k), cnt[k]);
        cJSON_AddItemToArray(per, e);
    }
    cJSON *list = cJSON_AddArrayToObject(j, "dropped");
    for (int i = 0; i < res->n_dropped; i++) {
        const sc_dropped *d = &res->dropped[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "scenario", sc->items[d->scenario].name);
        if (d->request >= 0) cJSON_AddNumberToObject(e, "request", d->request);
        else cJSON_AddStringToObject(e, "request", "cross-scenario check");
        cJSON_AddStringToObject(e, "reason", sc_drop_reason_name(d->reason));
        cJSON_AddStringToObject(e, "speaker", d->speaker ? d->speaker : "");
        cJSON_AddStringToObject(e, "text", d->text ? d->text : "");
        if (d->similar_text) {
            cJSON *sim = cJSON_AddObjectToObject(e, "similar_to");
            cJSON_AddStringToObject(sim, "scenario", sc->items[d->similar_scenario].name);
            cJSON_AddStringToObject(sim, "text", d->similar_text);
            cJSON_AddNumberToObject(sim, "jaccard", (double)(int)(d->similarity * 1000 + 0.5) / 1000);
        }
        cJSON_AddItemToArray(list, e);
    }
    return j;
}

static cJSON *manifest_json(const run_opts *r, const sc_provider *p, const sc_scenarios *sc, const sc_datagen_result *res,
                            const sc_split_row *tr, int ntr, const sc_split_row *te, int nte) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "steerclear", sc_version());
    cJSON_AddNumberToObject(j, "seed", (double)r->split.seed);
    cJSON *sp = cJSON_AddObjectToObject(j, "split");
    cJSON_AddStringToObject(sp, "kind", r->split.kind == SC_SPLIT_HOLDOUT ? "holdout" : "stratified");
    if (r->split.kind == SC_SPLIT_HOLDOUT) {
        cJSON_AddNumberToObject(sp, "holdout", r->split.holdout);
        cJSON *names = cJSON_AddArrayToObject(sp, "test_scenarios");
        for (int s = 0; s < sc->n; s++) {
            int in = 0;
            for (int i = 0; i < nte && !in; i++) in = te[i].scenario == s;
            if (in) cJSON_AddItemToArray(names, cJSON_CreateString(sc->items[s].name));
        }
    } else {
        cJSON_AddNumberToObject(sp, "train_per_scenario", r->split.train_per);
        cJSON_AddNumberToObject(sp, "test_per_scenario", r->split.test_per);
    }
    cJSON *c = cJSON_AddObjectToObject(j, "counts");
    cJSON_AddNumberToObject(c, "scenarios", sc->n);
    cJSON_AddNumberToObject(c, "train", ntr);
    cJSON_AddNumberToObject(c, "test", nte);
    int kept = 0, missing = 0;
    for (int s = 0; s < res->n; s++) { kept += res->stats[s].kept; missing += res->stats[s].missing; }
    cJSON_AddNumberToObject(c, "kept", kept);
    cJSON_AddNumberToObject(c, "missing", missing);
    cJSON_AddNumberToObject(c, "dropped", res->n_dropped);
    cJSON *per = cJSON_AddObjectToObject(c, "per_scenario");
    for (int s = 0; s < sc->n; s++) {
        int a = 0, b = 0;
        for (int i = 0; i < ntr; i++) a += tr[i].scenario == s;
        for (int i = 0; i < nte; i++) b += te[i].scenario == s;
        cJSON *e = cJSON_AddObjectToObject(per, sc->items[s].name);
        cJSON_AddNumberToObject(e, "kept", res->stats[s].kept);
        cJSON_AddNumberToObject(e, "train", a);
        cJSON_AddNumberToObject(e, "test", b);
        cJSON_AddNumberToObject(e, "missing", res->stats[s].missing);
    }
    cJSON_AddItemToObject(j, "generation", settings_json(r, p));
    cJSON *comp = cJSON_AddObjectToObject(j, "completions");
    if (r->completions_model) {
        cJSON_AddStringToObject(comp, "model", r->completions_model);
        cJSON_AddStringToObject(comp, "rows", "test");
        cJSON_AddNumberToObject(comp, "max_new_tokens", r->comp.max_new_tokens);
        cJSON_AddNumberToObject(comp, "temperature", r->comp.temperature);
        cJSON_AddNumberToObject(comp, "top_k", r->comp.top_k);
        cJSON_AddNumberToObject(comp, "top_p", r->comp.top_p);
        cJSON_AddNumberToObject(comp, "seed", (double)r->comp.seed);
        cJSON_AddStringToObject(comp, "streams", "test row index (as evaluate draws them)");
    } else {
        cJSON_Delete(cJSON_DetachItemFromObject(j, "completions"));
        cJSON_AddNullToObject(j, "completions");
    }
    cJSON *files = cJSON_AddObjectToObject(j, "files");
    cJSON_AddStringToObject(files, "train", "train.csv");
    cJSON_AddStringToObject(files, "test", "test.csv");
    cJSON_AddStringToObject(files, "cleaning", "cleaning.json");
    return j;
}

// ---------------------------------------------------------------------------------------
// The command

static sc_status make_provider(const run_opts *r, const char *base_url, const char *key_env, const char *local_model,
                               const char *prompts_dir, sc_provider **p) {
    *p = NULL;
    if (!strcmp(r->provider, "gemini") || !strcmp(r->provider, "openai")) {
        sc_judge_net_opts no;
        sc_judge_net_opts_default(&no, r->provider);
        if (r->model) no.model = r->model;
        if (base_url) no.base_url = base_url;
        if (key_env) no.api_key_env = key_env;
        no.cache_dir = r->cache;
        no.prompts_dir = prompts_dir;
        no.in_flight = r->in_flight;
        no.request_budget = r->request_budget;
        no.max_attempts = r->max_attempts;
        no.timeout_s = r->timeout_s;
        no.temperature = r->temperature;
        no.seed = r->split.seed;
        return !strcmp(r->provider, "gemini") ? sc_provider_gemini(&no, p) : sc_provider_openai(&no, p);
    }
    if (!strcmp(r->provider, "local")) {
        if (!local_model) return sc_errorf(SC_ERR_ARG, "--provider local needs --local-model DIR (an instruct model directory)");
        return sc_provider_local(local_model, local_model, p);
    }
    if (!strcmp(r->provider, "lexical"))
        return sc_errorf(SC_ERR_ARG, "--provider lexical writes no text (it is the offline judge); use gemini, openai (any OpenAI-compatible server, e.g. a local llama.cpp or vLLM) or local");
    return sc_errorf(SC_ERR_ARG, "--provider '%s' is not one of gemini, openai, local", r->provider);
}

int sc_cmd_dataset(int argc, char **argv) {
    enum { O_SCEN = 1000, O_OUT, O_PROV, O_MODEL, O_BASE, O_KEYENV, O_LOCAL, O_INFLIGHT, O_BUDGET, O_ATTEMPTS, O_TIMEOUT, O_TEMP,
           O_CACHE, O_NOCACHE, O_PER, O_BATCH, O_ROUNDS, O_MINC, O_MAXC, O_JACC, O_SHINGLE, O_SPLIT, O_TRAINPER, O_TESTPER,
           O_HOLDOUT, O_SEED, O_SHORT, O_COMP, O_CMAXNEW, O_CTEMP, O_CTOPK, O_CTOPP, O_CSEED, O_CBATCH, O_MEM, O_PROMPTS, O_HELP };
    static const struct option longopts[] = {
        {"scenarios", required_argument, 0, O_SCEN}, {"out", required_argument, 0, O_OUT}, {"provider", required_argument, 0, O_PROV},
        {"model", required_argument, 0, O_MODEL}, {"judge-model", required_argument, 0, O_MODEL}, {"base-url", required_argument, 0, O_BASE},
        {"api-key-env", required_argument, 0, O_KEYENV}, {"local-model", required_argument, 0, O_LOCAL},
        {"in-flight", required_argument, 0, O_INFLIGHT}, {"request-budget", required_argument, 0, O_BUDGET},
        {"max-attempts", required_argument, 0, O_ATTEMPTS}, {"timeout", required_argument, 0, O_TIMEOUT},
        {"temperature", required_argument, 0, O_TEMP}, {"cache", required_argument, 0, O_CACHE}, {"no-cache", no_argument, 0, O_NOCACHE},
        {"per-scenario", required_argument, 0, O_PER}, {"batch", required_argument, 0, O_BATCH}, {"max-rounds", required_argument, 0, O_ROUNDS},
        {"min-chars", required_argument, 0, O_MINC}, {"max-chars", required_argument, 0, O_MAXC}, {"jaccard", required_argument, 0, O_JACC},
        {"shingle", required_argument, 0, O_SHINGLE}, {"split", required_argument, 0, O_SPLIT},
        {"train-per-scenario", required_argument, 0, O_TRAINPER}, {"test-per-scenario", required_argument, 0, O_TESTPER},
        {"holdout", required_argument, 0, O_HOLDOUT}, {"seed", required_argument, 0, O_SEED}, {"allow-short", no_argument, 0, O_SHORT},
        {"completions", required_argument, 0, O_COMP}, {"completion-max-new-tokens", required_argument, 0, O_CMAXNEW},
        {"completion-temperature", required_argument, 0, O_CTEMP}, {"completion-top-k", required_argument, 0, O_CTOPK},
        {"completion-top-p", required_argument, 0, O_CTOPP}, {"completion-seed", required_argument, 0, O_CSEED},
        {"completion-batch", required_argument, 0, O_CBATCH}, {"memory-budget", required_argument, 0, O_MEM},
        {"prompts-dir", required_argument, 0, O_PROMPTS}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0},
    };
    run_opts r;
    memset(&r, 0, sizeof r);
    sc_datagen_opts_default(&r.gen);
    sc_completion_opts_default(&r.comp);
    r.split = (sc_split_opts){.kind = SC_SPLIT_STRATIFIED, .train_per = 16, .test_per = 4, .holdout = 0, .seed = 1234};
    r.request_budget = 500;
    r.in_flight = 8;
    r.max_attempts = 5;
    r.timeout_s = 120;
    r.temperature = 1.0;
    const char *base_url = NULL, *key_env = NULL, *local_model = NULL, *prompts_dir = NULL, *cache_opt = NULL;
    int no_cache = 0, per_set = 0, split_given = 0;
    float fv;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case O_SCEN: r.scenarios_path = optarg; break;
        case O_OUT: r.out = optarg; break;
        case O_PROV: r.provider = optarg; break;
        case O_MODEL: r.model = optarg; break;
        case O_BASE: base_url = optarg; break;
        case O_KEYENV: key_env = optarg; break;
        case O_LOCAL: local_model = optarg; break;
        case O_INFLIGHT: ok = sc_cli_parse_int("--in-flight", optarg, 1, &r.in_flight); break;
        case O_BUDGET: ok = sc_cli_parse_int("--request-budget", optarg, 1, &r.request_budget); break;
        case O_ATTEMPTS: ok = sc_cli_parse_int("--max-attempts", optarg, 1, &r.max_attempts); break;
        case O_TIMEOUT: ok = sc_cli_parse_float("--timeout", optarg, &fv) && fv > 0; r.timeout_s = fv; if (!ok) sc_errorf(SC_ERR_ARG, "--timeout '%s' must be a positive number of seconds", optarg); break;
        case O_TEMP: ok = sc_cli_parse_float("--temperature", optarg, &fv) && fv >= 0; r.temperature = fv; if (!ok) sc_errorf(SC_ERR_ARG, "--temperature '%s' must be a number >= 0", optarg); break;
        case O_CACHE: cache_opt = optarg; break;
        case O_NOCACHE: no_cache = 1; break;
        case O_PER: ok = sc_cli_parse_int("--per-scenario", optarg, 1, &r.gen.per_scenario); per_set = 1; break;
        case O_BATCH: ok = sc_cli_parse_int_range("--batch", optarg, 1, 100, &r.gen.batch); break;
        case O_ROUNDS: ok = sc_cli_parse_int("--max-rounds", optarg, 1, &r.gen.max_rounds); break;
        case O_MINC: ok = sc_cli_parse_int("--min-chars", optarg, 1, &r.gen.clean.min_chars); break;
        case O_MAXC: ok = sc_cli_parse_int("--max-chars", optarg, 1, &r.gen.clean.max_chars); break;
        case O_JACC: ok = sc_cli_parse_float("--jaccard", optarg, &fv) && fv > 0 && fv <= 1; r.gen.clean.jaccard = fv; if (!ok) sc_errorf(SC_ERR_ARG, "--jaccard '%s' must be in (0, 1]", optarg); break;
        case O_SHINGLE: ok = sc_cli_parse_int_range("--shingle", optarg, 1, 32, &r.gen.clean.shingle); break;
        case O_SPLIT:
            if (!strcmp(optarg, "stratified")) r.split.kind = SC_SPLIT_STRATIFIED;
            else if (!strcmp(optarg, "holdout")) r.split.kind = SC_SPLIT_HOLDOUT;
            else { sc_errorf(SC_ERR_ARG, "--split '%s' is not stratified or holdout", optarg); ok = 0; }
            split_given = 1;
            break;
        case O_TRAINPER: ok = sc_cli_parse_int("--train-per-scenario", optarg, 1, &r.split.train_per); break;
        case O_TESTPER: ok = sc_cli_parse_int("--test-per-scenario", optarg, 1, &r.split.test_per); break;
        case O_HOLDOUT: ok = sc_cli_parse_int("--holdout", optarg, 1, &r.split.holdout); if (!split_given) r.split.kind = SC_SPLIT_HOLDOUT; break;
        case O_SEED: ok = sc_cli_parse_seed("--seed", optarg, &r.split.seed); break;
        case O_SHORT: r.allow_short = 1; break;
        case O_COMP: r.completions_model = optarg; break;
        case O_CMAXNEW: ok = sc_cli_parse_int("--completion-max-new-tokens", optarg, 1, &r.comp.max_new_tokens); break;
        case O_CTEMP: ok = sc_cli_parse_float("--completion-temperature", optarg, &r.comp.temperature); break;
        case O_CTOPK: ok = sc_cli_parse_int("--completion-top-k", optarg, 0, &r.comp.top_k); break;
        case O_CTOPP: ok = sc_cli_parse_float("--completion-top-p", optarg, &r.comp.top_p); break;
        case O_CSEED: ok = sc_cli_parse_seed("--completion-seed", optarg, &r.comp.seed); break;
        case O_CBATCH: ok = sc_cli_parse_int("--completion-batch", optarg, 1, &r.comp.batch_seqs); break;
        case O_MEM: ok = sc_cli_parse_size("--memory-budget", optarg, &r.comp.memory_budget); break;
        case O_PROMPTS: prompts_dir = optarg; break;
        case 'h': case O_HELP: usage(stdout); return SC_EXIT_OK;
        default:
            sc_errorf(SC_ERR_ARG, "unknown or incomplete option '%s' (see steerclear dataset --help)", argv[optind - 1]);
            ok = 0;
        }
        if (!ok) return sc_cli_bad_input("dataset");
    }
    if (!sc_cli_no_positional("dataset", argc, argv, optind)) return sc_cli_bad_input("dataset");
    if (!r.out) { sc_errorf(SC_ERR_ARG, "--out DIR is required"); return sc_cli_bad_input("dataset"); }
    if (!r.provider) { sc_errorf(SC_ERR_ARG, "--provider is required: gemini, openai (any OpenAI-compatible server) or local"); return sc_cli_bad_input("dataset"); }
    if (r.gen.clean.min_chars > r.gen.clean.max_chars) {
        sc_errorf(SC_ERR_ARG, "--min-chars %d is above --max-chars %d", r.gen.clean.min_chars, r.gen.clean.max_chars);
        return sc_cli_bad_input("dataset");
    }
    if (!r.scenarios_path) r.scenarios_path = sc_default_dataset("scenarios.json");
    r.gen.prompts_dir = prompts_dir;
    if (!per_set) r.gen.per_scenario = r.split.kind == SC_SPLIT_STRATIFIED ? r.split.train_per + r.split.test_per : 20;
    if (r.split.kind == SC_SPLIT_STRATIFIED && r.gen.per_scenario < r.split.train_per + r.split.test_per && !r.allow_short) {
        sc_errorf(SC_ERR_ARG, "--per-scenario %d is below --train-per-scenario %d + --test-per-scenario %d; raise it (or pass --allow-short)",
                  r.gen.per_scenario, r.split.train_per, r.split.test_per);
        return sc_cli_bad_input("dataset");
    }

    sc_scenarios sc = {0};
    if (sc_scenarios_load(r.scenarios_path, &sc)) return sc_cli_bad_input("dataset");
    if (r.split.kind == SC_SPLIT_HOLDOUT && r.split.holdout == 0) r.split.holdout = sc.n / 5 > 0 ? sc.n / 5 : 1;
    if (r.split.kind == SC_SPLIT_HOLDOUT && r.split.holdout >= sc.n) {
        sc_errorf(SC_ERR_ARG, "--holdout %d: %s has %d scenarios; hold out fewer so that some are left for training", r.split.holdout, r.scenarios_path, sc.n);
        sc_scenarios_free(&sc);
        return sc_cli_bad_input("dataset");
    }
    char cache[4200] = "", path[4400];
    if (sc_mkdir_p(r.out)) { sc_scenarios_free(&sc); return sc_cli_bad_input("dataset"); }
    if (!no_cache) snprintf(cache, sizeof cache, "%s", cache_opt ? cache_opt : "");
    if (!no_cache && !cache_opt) snprintf(cache, sizeof cache, "%s/cache", r.out);
    r.cache = cache[0] ? cache : NULL;

    int rc = SC_EXIT_FAILED;
    sc_provider *p = NULL;
    sc_datagen_result res = {0};
    sc_split_row *tr = NULL, *te = NULL;
    int ntr = 0, nte = 0;
    char **comp = NULL;
    sc_status st = make_provider(&r, base_url, key_env, local_model, prompts_dir, &p);
    if (st) { rc = sc_cli_setup_exit(st); sc_cli_fail("dataset"); goto out; }
    sc_signals_install();
    sc_log(SC_LOG_INFO, "dataset: %d scenarios from %s, %d openers each, provider %s (%s), cache %s", sc.n, r.scenarios_path, r.gen.per_scenario,
           p->name, p->model, r.cache ? r.cache : "off");
    st = sc_datagen_generate(p, &sc, &r.gen, &res);
    if (st == SC_OK) st = sc_datagen_cross_check(&sc, &r.gen.clean, &res);
    if (res.stats) for (int s = 0; s < res.n; s++) {
        res.stats[s].kept = res.pools[s].n;
        res.stats[s].missing = r.gen.per_scenario > res.pools[s].n ? r.gen.per_scenario - res.pools[s].n : 0;
    }
    if (res.stats) {
        snprintf(path, sizeof path, "%s/cleaning.json", r.out);
        sc_status ws = write_json(path, cleaning_json(&r, p, &sc, &res));
        if (ws && !st) st = ws;
        int received = 0, kept = 0, short_n = 0, missing = 0, by[SC_DROP_N] = {0};
        for (int s = 0; s < res.n; s++) { received += res.stats[s].received; kept += res.stats[s].kept; missing += res.stats[s].missing; short_n += res.stats[s].missing > 0; }
        for (int i = 0; i < res.n_dropped; i++) by[res.dropped[i].reason]++;
        char drops[512] = "";
        size_t at = 0;
        for (int k = 1; k < SC_DROP_N && at < sizeof drops; k++)
            if (by[k]) at += (size_t)snprintf(drops + at, sizeof drops - at, "%s%d %s", at ? ", " : "", by[k], sc_drop_reason_name(k));
        fprintf(stderr, "dataset: %d openers kept of %d received; %d dropped%s%s%s; %d requests (%d from the cache, %d failed); report %s\n", kept, received,
                res.n_dropped, res.n_dropped ? " (" : "", drops, res.n_dropped ? ")" : "", res.requests, res.cached, res.failed, path);
        for (int s = 0; s < res.n; s++)
            if (res.stats[s].missing)
                fprintf(stderr, "dataset: %s: %d of %d openers missing (stopped: %s%s%s)\n", sc.items[s].name, res.stats[s].missing, r.gen.per_scenario,
                        res.stats[s].stopped, res.stats[s].last_error ? "; last error: " : "", res.stats[s].last_error ? res.stats[s].last_error : "");
        if (!st && short_n && !r.allow_short) {
            sc_errorf(SC_ERR_IO, "%d of %d scenarios are short of openers (%d missing in all; see above and %s); rerun the same command to continue "
                      "(answers so far come from the cache), raise --request-budget / --max-rounds, or pass --allow-short to split what there is",
                      short_n, sc.n, missing, path);
            sc_cli_fail("dataset");
            rc = SC_EXIT_FAILED;
            goto out;
        }
    }
    if (st) { rc = sc_cli_run_exit(st); sc_cli_fail("dataset"); goto out; }

    // split
    int *counts = malloc(sizeof *counts * (size_t)sc.n);
    if (!counts) { st = sc_errorf(SC_ERR_MEM, "out of memory"); sc_cli_fail("dataset"); goto out; }
    for (int s = 0; s < sc.n; s++) counts[s] = res.pools[s].n;
    st = sc_split_make(&r.split, counts, sc.n, &tr, &ntr, &te, &nte);
    free(counts);
    if (st) { rc = sc_cli_run_exit(st); sc_cli_fail("dataset"); goto out; }
    if (ntr == 0 || nte == 0) {
        sc_errorf(SC_ERR_ARG, "the split left %d training and %d test prompts; both sets need at least one", ntr, nte);
        rc = SC_EXIT_FAILED;
        sc_cli_fail("dataset");
        goto out;
    }
    // baseline completions of the test prompts
    if (r.completions_model) {
        r.comp.model_dir = r.completions_model;
        comp = calloc((size_t)nte, sizeof *comp);
        char **full = calloc((size_t)nte, sizeof *full), **pr = calloc((size_t)nte, sizeof *pr);
        st = comp && full && pr ? SC_OK : sc_errorf(SC_ERR_MEM, "out of memory");
        for (int i = 0; i < nte && !st; i++)
            st = sc_opener_prompts(&sc.items[te[i].scenario], &res.pools[te[i].scenario].items[te[i].index], &full[i], &pr[i]);
        if (!st) st = sc_datagen_completions(&r.comp, (const char *const *)full, nte, comp);
        for (int i = 0; i < nte; i++) { if (full) free(full[i]); if (pr) free(pr[i]); }
        free(full);
        free(pr);
        if (st) { rc = sc_cli_run_exit(st); sc_cli_fail("dataset"); goto out; }
    }
    snprintf(path, sizeof path, "%s/train.csv", r.out);
    if ((st = write_csv(path, &sc, &res, tr, ntr, 0, NULL))) { sc_cli_fail("dataset"); goto out; }
    snprintf(path, sizeof path, "%s/test.csv", r.out);
    if ((st = write_csv(path, &sc, &res, te, nte, 1, comp))) { sc_cli_fail("dataset"); goto out; }
    snprintf(path, sizeof path, "%s/manifest.json", r.out);
    if ((st = write_json(path, manifest_json(&r, p, &sc, &res, tr, ntr, te, nte)))) { sc_cli_fail("dataset"); goto out; }
    fprintf(stderr, "dataset: %s split (seed %llu): %d train, %d test prompts -> %s/train.csv, %s/test.csv\n",
            r.split.kind == SC_SPLIT_HOLDOUT ? "holdout" : "stratified", (unsigned long long)r.split.seed, ntr, nte, r.out, r.out);
    printf("%s\n", r.out);
    rc = SC_EXIT_OK;
out:
    if (comp) for (int i = 0; i < nte; i++) free(comp[i]);
    free(comp);
    free(tr);
    free(te);
    sc_datagen_result_free(&res);
    sc_provider_free(p);
    sc_scenarios_free(&sc);
    return rc;
}
