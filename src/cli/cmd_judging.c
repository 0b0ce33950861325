// cmd_judging.c — `steerclear judge`, `score`, `quantify` and `report`: the stages after
// evaluate (steerclear/judging.h). They share their settings: the defaults, then the "judge" and
// "quantify" sections of RUN_DIR/config.json, then of --config FILE, then the command line.
#include "steerclear/cli.h"
#include "steerclear/judging.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { G_PROVIDER = 1, G_BATCHING = 2, G_SCORE = 4, G_QUANTIFY = 8, G_JUDGE_ONLY = 16, G_QUANTIFY_ONLY = 32, G_SEARCHES = 64 };
enum { JUDGE, QUANTIFY, FIXED };   // where an option goes

typedef struct {
    const char *opt;             // command-line name
    unsigned group;              // the commands that take it (G_*)
    int section;                 // JUDGE / QUANTIFY: a config key; FIXED: handled below
    const char *key;             // the config key
    const char *arg, *help;
} option_def;

static const option_def defs[] = {
    {"provider", G_PROVIDER, JUDGE, "provider", "NAME", "lexical (offline, the default), gemini, openai or local"},
    {"judge-model", G_PROVIDER, JUDGE, "model", "NAME", "the judge model (default: the provider's)"},
    {"embed-model", G_PROVIDER, JUDGE, "embed_model", "NAME", "the embedding model (default: the provider's)"},
    {"base-url", G_PROVIDER, JUDGE, "base_url", "URL", "the API's base URL (openai: e.g. http://127.0.0.1:8000)"},
    {"api-key-env", G_PROVIDER, JUDGE, "api_key_env", "VAR", "the environment variable holding the API key"},
    {"local-model", G_PROVIDER, JUDGE, "local_model", "DIR", "local provider: an instruct model directory"},
    {"local-embed-model", G_PROVIDER, JUDGE, "local_embed_model", "DIR", "local provider: the embedding model directory"},
    {"in-flight", G_PROVIDER, JUDGE, "in_flight", "N", "requests at once (8)"},
    {"request-budget", G_PROVIDER, JUDGE, "request_budget", "N", "most requests this run may send (5000)"},
    {"batches", G_BATCHING, JUDGE, "batches", "N", "batches per side and search (6)"},
    {"batch-size", G_BATCHING, JUDGE, "batch_size", "N", "outputs per batch (16)"},
    {"scale", G_BATCHING, JUDGE, "scale", "X", "the direction scale judged (2: evaluate's default)"},
    {"threshold", G_SCORE, JUDGE, "threshold", "X", "Linearity Score of a faithful direction (0.83)"},
    {"scales", G_QUANTIFY, QUANTIFY, "scales", "LIST", "the sweep (-5,-2,0,1,4,7)"},
    {"traits", G_QUANTIFY, QUANTIFY, "traits", "LIST", "traits judged pairwise (empathetic,prescriptive)"},
    {"top", G_QUANTIFY, QUANTIFY, "top", "N", "sweep the N best directions of the ranking (3)"},
    {"prompts", G_QUANTIFY, QUANTIFY, "prompts", "CSV", "the sweep's prompts (the shipped datasets/quantify.csv)"},
    {"max-new-tokens", G_QUANTIFY, QUANTIFY, "max_new_tokens", "N", "new tokens per output (100)"},
    {"batch", G_QUANTIFY, QUANTIFY, "batch_seqs", "N", "sequences per generation batch (64)"},
    {"outputs", G_JUDGE_ONLY, FIXED, NULL, "DIR", "evaluation files to judge (default RUN_DIR/eval), e.g. from another tool"},
    {"seed", G_JUDGE_ONLY, FIXED, NULL, "S", "shuffling seed (default: the run's search seed)"},
    {"searches", G_SEARCHES, FIXED, NULL, "LIST", "only these searches, e.g. 0,3,5-7"},
    {"model", G_QUANTIFY_ONLY, FIXED, NULL, "DIR", "model directory (default: the run's)"},
    {"memory-budget", G_QUANTIFY_ONLY, FIXED, NULL, "SIZE", "memory this process may use, e.g. 16G"},
    {"device", G_QUANTIFY_ONLY, FIXED, NULL, "cpu|cuda", "where the model runs (default cpu)"},
    {"precision", G_QUANTIFY_ONLY, FIXED, NULL, "P", "products against BF16 weights: auto, f32 or bf16 (auto)"},
};
#define N_DEFS ((int)(sizeof defs / sizeof defs[0]))

typedef struct {
    const char *name;
    unsigned groups;
    const char *summary;
} command;

static const command commands[] = {
    {"judge", G_PROVIDER | G_BATCHING | G_JUDGE_ONLY | G_SEARCHES,
     "The judge's theme of every batch of each search's adapter outputs and direction outputs\n"
     "(beside the base model's), then their embeddings: RUN_DIR/judge/themes.json and results.h5\n"
     "/judge. Batches answered before with the same settings are not asked again; failed batches\n"
     "are recorded and asked again by the next run (exit 1 until every batch has an answer)."},
    {"score", G_SCORE,
     "Per judged search the cosine matrix of its adapter themes against its direction themes, the\n"
     "Hungarian matching and the Linearity Score; the ranking into results.h5 /scores and\n"
     "RUN_DIR/scores.json."},
    {"quantify", G_PROVIDER | G_QUANTIFY | G_QUANTIFY_ONLY | G_SEARCHES,
     "Scale sweeps of the best directions (or --searches) on the quantify prompts: question marks\n"
     "and words per output against scale, and pairwise \"which response is more TRAIT\" judging of\n"
     "base against steered in both orders: RUN_DIR/quantify/search_NNNN.json. Generated texts are\n"
     "kept (outputs_NNNN.json) and reused while the settings are the same."},
    {"report", 0,
     "Figures (gnuplot; a warning when it is missing) and RUN_DIR/report.md from whatever the run\n"
     "has: ranking, heatmaps with the themes, training curves, scale sweeps."},
};

static void usage(FILE *f, const command *cmd) {
    fprintf(f, "usage: steerclear %s --run RUN_DIR [options]\n\n%s\n\n", cmd->name, cmd->summary);
    fprintf(f, "  --run DIR                 the run directory (required)\n");
    fprintf(f, "  --config F.json           settings: its \"judge\" and \"quantify\" sections (over RUN_DIR/config.json's)\n");
    for (int i = 0; i < N_DEFS; i++) {
        if (!(defs[i].group & cmd->groups)) continue;
        char left[64];
        snprintf(left, sizeof left, "--%s %s", defs[i].opt, defs[i].arg);
        fprintf(f, "  %-25s %s\n", left, defs[i].help);
    }
    fprintf(f, "  --wait                    wait for another process writing RUN_DIR instead of refusing\n"
               "Command-line options override the config files.\n");
}

// The "judge" and "quantify" sections of a config file, if it has them.
static sc_status load_file(const char *path, sc_judge_config *jc, sc_quantify_config *qc) {
    char *text = NULL, base[4096];
    SC_TRY(sc_read_file(path, &text, NULL));
    cJSON *file = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(file)) {
        cJSON_Delete(file);
        return sc_errorf(SC_ERR_FORMAT, "%s: not a JSON object; fix the file (see the README's config section)", path);
    }
    sc_status st = sc_path_dir_of(path, base, sizeof base);
    if (!st) st = sc_judging_config_load(file, path, base, jc, qc);
    cJSON_Delete(file);
    return st;
}

static int run_command(const command *cmd, int argc, char **argv) {
    struct option longopts[N_DEFS + 6];
    int n = 0;
    enum { O_RUN = 1000, O_CONFIG, O_WAIT, O_HELP, O_DEF = 2000 };
    longopts[n++] = (struct option){"run", required_argument, 0, O_RUN};
    longopts[n++] = (struct option){"config", required_argument, 0, O_CONFIG};
    longopts[n++] = (struct option){"wait", no_argument, 0, O_WAIT};
    longopts[n++] = (struct option){"help", no_argument, 0, O_HELP};
    for (int i = 0; i < N_DEFS; i++)
        if (defs[i].group & cmd->groups) longopts[n++] = (struct option){defs[i].opt, required_argument, 0, O_DEF + i};
    longopts[n] = (struct option){0, 0, 0, 0};

    const char *run_dir = NULL, *config = NULL, *given[N_DEFS] = {0};
    int wait = 0, rc = SC_EXIT_BAD_INPUT, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == O_RUN) run_dir = optarg;
        else if (c == O_CONFIG) config = optarg;
        else if (c == O_WAIT) wait = 1;
        else if (c == 'h' || c == O_HELP) { usage(stdout, cmd); return SC_EXIT_OK; }
        else if (c >= O_DEF && c < O_DEF + N_DEFS) given[c - O_DEF] = optarg;   // the last one counts
        else {
            sc_errorf(SC_ERR_ARG, "unknown or incomplete option '%s' (see steerclear %s --help)", argv[optind - 1], cmd->name);
            return sc_cli_bad_input(cmd->name);
        }
    }
    if (!sc_cli_no_positional(cmd->name, argc, argv, optind)) return sc_cli_bad_input(cmd->name);
    if (!run_dir) { sc_errorf(SC_ERR_ARG, "--run RUN_DIR is required"); return sc_cli_bad_input(cmd->name); }

    // settings: defaults, RUN_DIR/config.json, --config, the command line
    sc_judge_config jc;
    sc_quantify_config qc;
    sc_judge_config_default(&jc);
    sc_quantify_config_default(&qc);
    char saved[4200];
    snprintf(saved, sizeof saved, "%s/config.json", run_dir);
    if (sc_file_exists(saved) && load_file(saved, &jc, &qc)) return sc_cli_bad_input(cmd->name);
    if (config && load_file(config, &jc, &qc)) return sc_cli_bad_input(cmd->name);
    int *searches = NULL, n_searches = 0;
    const char *outputs = NULL, *model = NULL;
    uint64_t seed = 0;
    int seed_set = 0;
    sc_stage_opts so;
    sc_stage_opts_default(&so);
    for (int i = 0; i < N_DEFS; i++) {
        const char *v = given[i];
        char where[64];
        snprintf(where, sizeof where, "--%s", defs[i].opt);
        int ok = 1;
        if (!v) continue;
        if (defs[i].section == JUDGE) ok = sc_judge_config_set(&jc, defs[i].key, v, where) == SC_OK;
        else if (defs[i].section == QUANTIFY) ok = sc_quantify_config_set(&qc, defs[i].key, v, where) == SC_OK;
        else if (!strcmp(defs[i].opt, "outputs")) outputs = v;
        else if (!strcmp(defs[i].opt, "model")) model = v;
        else if (!strcmp(defs[i].opt, "seed")) ok = sc_cli_parse_seed("--seed", v, &seed), seed_set = 1;
        else if (!strcmp(defs[i].opt, "searches")) ok = sc_cli_parse_list(v, &searches, &n_searches);
        else if (!strcmp(defs[i].opt, "memory-budget")) ok = sc_cli_parse_size("--memory-budget", v, &so.backend.memory_budget);
        else if (!strcmp(defs[i].opt, "device")) ok = sc_device_parse(v, "--device", &so.backend.device) == SC_OK;
        else if (!strcmp(defs[i].opt, "precision")) ok = sc_cli_parse_precision("--precision", v, &so.backend.precision);
        if (!ok) { free(searches); return sc_cli_bad_input(cmd->name); }
    }
    if (sc_judging_config_resolve(&jc, &qc, NULL)) { free(searches); return sc_cli_bad_input(cmd->name); }

    sc_signals_install();
    so.run_dir = run_dir;
    so.run_mode = SC_RUN_WRITE | (wait ? SC_RUN_WAIT : 0);
    so.command = cmd->name;
    so.model_dir = model;
    so.need_model = !strcmp(cmd->name, "quantify");
    sc_stage *stage = NULL;
    sc_status st = sc_stage_open(&so, &stage);
    if (st) { rc = sc_cli_setup_exit(st); sc_cli_fail(cmd->name); goto out; }
    if (!strcmp(cmd->name, "judge")) {
        sc_judge_opts o = {.outputs_dir = outputs, .searches = searches, .n_searches = n_searches, .seed = seed, .seed_set = seed_set};
        st = sc_judge_run(stage->run, &jc, &o);
    } else if (!strcmp(cmd->name, "score")) st = sc_score_run(stage->run, &jc);
    else if (!strcmp(cmd->name, "quantify")) st = sc_quantify_run(stage, &jc, &qc, searches, n_searches);
    else st = sc_report_run(stage->run, &jc);
    rc = st ? sc_cli_run_exit(st) : SC_EXIT_OK;
    if (st) sc_cli_fail(cmd->name);
out:
    sc_stage_free(stage);
    free(searches);
    return rc;
}

int sc_cmd_judge(int argc, char **argv) { return run_command(&commands[0], argc, argv); }
int sc_cmd_score(int argc, char **argv) { return run_command(&commands[1], argc, argv); }
int sc_cmd_quantify(int argc, char **argv) { return run_command(&commands[2], argc, argv); }
int sc_cmd_report(int argc, char **argv) { return run_command(&commands[3], argc, argv); }
