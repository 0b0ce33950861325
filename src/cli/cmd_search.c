// cmd_search.c — `steerclear search`: parse options and the JSON config, build the stage
// context (backend, model, tokenizer, train set, run directory), save the resolved config in
// RUN_DIR, run the searches. SIGTERM / SIGINT stop after the current optimizer step (already
// checkpointed); --resume continues.
#include "steerclear/cli.h"
#include "steerclear/json.h"
#include "steerclear/judging.h"
#include "steerclear/stage.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const top_keys[] = {"model", "train", "test", "memory_budget", "device", "precision", "search", "judge", "quantify", NULL};

static void usage(FILE *f) {
    fprintf(f, "usage: steerclear search --model DIR --out RUN_DIR [--train CSV] [options]\n"
               "  --config F.json        settings: {\"model\", \"train\", \"test\", \"memory_budget\", \"precision\", \"search\", \"judge\",\n"
               "                         \"quantify\": {...}} (see README);\n"
               "                         relative paths in it are taken from the folder of F.json\n"
               "  --train CSV            train prompts (default: the run config's, else the shipped datasets/train.csv)\n"
               "  --searches N (20)      --adapter shared|per-block (shared)   --rank R (2)\n"
               "  --seed S (1234)        --batch-size N (12)   --prompts-per-search N (192)\n"
               "  --max-new-tokens N (128)   --lr X (0.1)   --epochs N (1)\n"
               "  --prompt-sampling per-search|per-epoch (per-search)   per-search: the search's prompts are\n"
               "                         drawn once and every epoch visits them in a new order; per-epoch:\n"
               "                         every epoch draws new prompts (the only way before this option)\n"
               "  --first-search I --last-search J   run only searches [I, J)\n"
               "  --searches-per-pass N|auto (auto)   searches of this process that advance together, step k of\n"
               "                         each in one batched pass (auto: all of them, fewer when memory is short)\n"
               "  --searches-per-micro-batch N|auto (1)   searches whose teacher-forced passes share one batch\n"
               "                         (1: bitwise the results of each search alone; more: equal up to rounding)\n"
               "  --memory-budget SIZE   memory this process may use, e.g. 16G (default: 80%% of RAM / ranks on the node)\n"
               "  --device cpu|cuda      where the model runs (default cpu; config key \"device\"); cuda: one GPU per rank\n"
               SC_CLI_PRECISION_HELP
               "  --resume               continue the searches checkpointed in RUN_DIR (with the settings it was started with)\n"
               "  --wait                 wait for another process writing RUN_DIR instead of refusing\n"
               "Command-line options override the config file; the resolved config is saved to RUN_DIR/config.json.\n");
}

// A path key of the config file, resolved against the file's folder into out ("" when absent).
static int config_path(const cJSON *file, const char *key, const char *base, char *out, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(file, key);
    out[0] = '\0';
    if (!v) return 1;
    if (!cJSON_IsString(v) || !v->valuestring[0]) { sc_errorf(SC_ERR_ARG, "config: \"%s\" must be a non-empty path string", key); return 0; }
    return sc_path_resolve(v->valuestring, base, out, n) == SC_OK;
}

// A command-line setting; given twice, the last one counts.
static void set_number(cJSON *over, const char *key, double v) {
    cJSON_DeleteItemFromObjectCaseSensitive(over, key);
    cJSON_AddNumberToObject(over, key, v);
}

int sc_cmd_search(int argc, char **argv) {
    // first: a preemption that arrives while loading still stops cleanly
    sc_signals_install();
    const char *model_opt = NULL, *train_opt = NULL, *out = NULL, *config = NULL, *budget_opt = NULL, *device_opt = NULL;
    const char *precision_opt = NULL;
    int resume = 0, first = 0, last = -1, wait = 0;
    sc_search_config cfg;
    sc_search_config_default(&cfg);
    sc_judge_config jcfg;     // checked now and kept in RUN_DIR/config.json for the later stages
    sc_quantify_config qcfg;
    sc_judge_config_default(&jcfg);
    sc_quantify_config_default(&qcfg);
    cJSON *over = cJSON_CreateObject();   // command-line settings, applied after the file
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"train", required_argument, 0, 't'}, {"out", required_argument, 0, 'o'},
        {"config", required_argument, 0, 'c'}, {"resume", no_argument, 0, 'r'},
        {"searches", required_argument, 0, 1}, {"adapter", required_argument, 0, 2}, {"rank", required_argument, 0, 3},
        {"seed", required_argument, 0, 4}, {"batch-size", required_argument, 0, 5}, {"prompts-per-search", required_argument, 0, 6},
        {"max-new-tokens", required_argument, 0, 7}, {"lr", required_argument, 0, 8}, {"epochs", required_argument, 0, 9},
        {"first-search", required_argument, 0, 10}, {"last-search", required_argument, 0, 11},
        {"memory-budget", required_argument, 0, 12}, {"wait", no_argument, 0, 13}, {"prompt-sampling", required_argument, 0, 14},
        {"device", required_argument, 0, 15}, {"precision", required_argument, 0, 16},
        {"searches-per-pass", required_argument, 0, 17}, {"searches-per-micro-batch", required_argument, 0, 18},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    static const char *keys[] = {NULL, "searches", "adapter", "rank", "seed", "batch_size", "prompts_per_search", "max_new_tokens", "lr", "epochs"};
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char flag[64];
        int iv = 0;
        float fv = 0;
        uint64_t seed = 0;
        switch (c) {
        case 'm': model_opt = optarg; break;
        case 't': train_opt = optarg; break;
        case 'o': out = optarg; break;
        case 'c': config = optarg; break;
        case 'r': resume = 1; break;
        case 2: cJSON_DeleteItemFromObjectCaseSensitive(over, keys[c]); cJSON_AddStringToObject(over, keys[c], optarg); break;
        case 14: cJSON_DeleteItemFromObjectCaseSensitive(over, "prompt_sampling"); cJSON_AddStringToObject(over, "prompt_sampling", optarg); break;
        case 1: case 3: case 5: case 6: case 7: case 9:   // integers >= 1
            snprintf(flag, sizeof flag, "--%s", opts[5 + c - 1].name);
            if (!sc_cli_parse_int(flag, optarg, 1, &iv)) bad = 1;
            else set_number(over, keys[c], iv);
            break;
        case 4:
            if (!sc_cli_parse_seed("--seed", optarg, &seed)) bad = 1;
            else set_number(over, keys[c], (double)seed);
            break;
        case 8:
            if (!sc_cli_parse_float("--lr", optarg, &fv)) bad = 1;
            else set_number(over, keys[c], fv);
            break;
        case 10: bad = !sc_cli_parse_int("--first-search", optarg, 0, &first); break;
        case 11: bad = !sc_cli_parse_int("--last-search", optarg, 1, &last); break;
        case 12: budget_opt = optarg; break;
        case 13: wait = 1; break;
        case 15: device_opt = optarg; break;
        case 16: bad = !sc_cli_parse_precision("--precision", optarg, &precision_opt); break;
        case 17: case 18: {   // "auto" or a count >= 1
            const char *key = c == 17 ? "searches_per_pass" : "searches_per_micro_batch";
            snprintf(flag, sizeof flag, "--%s", c == 17 ? "searches-per-pass" : "searches-per-micro-batch");
            cJSON_DeleteItemFromObjectCaseSensitive(over, key);
            if (!strcmp(optarg, "auto")) cJSON_AddStringToObject(over, key, "auto");
            else if (!sc_cli_parse_int(flag, optarg, 1, &iv)) bad = 1;
            else set_number(over, key, iv);
            break;
        }
        case 'h': usage(stdout); cJSON_Delete(over); return 0;
        default: usage(stderr); cJSON_Delete(over); return SC_EXIT_BAD_INPUT;
        }
    }
    if (!bad && !sc_cli_no_positional("search", argc, argv, optind)) bad = 1;
    if (bad) { cJSON_Delete(over); return sc_cli_bad_input("search"); }
    if (!out) { fprintf(stderr, "steerclear search: --out RUN_DIR is required\n"); usage(stderr); cJSON_Delete(over); return SC_EXIT_BAD_INPUT; }
    char saved[4200];
    snprintf(saved, sizeof saved, "%s/config.json", out);
    if (!config && resume && sc_file_exists(saved)) config = saved;   // resume with the run's own config
    cJSON *file = NULL;
    int rc;
    sc_stage *stage = NULL;
    char *resolved = NULL;
    char model[4096] = "", train[4096] = "", test[4096] = "", base[4096];
    sc_stage_opts so;
    sc_stage_opts_default(&so);
    rc = SC_EXIT_BAD_INPUT;   // until the searches start, a failure is bad input
    if (config) {
        char *text;
        if (sc_read_file(config, &text, NULL)) { sc_cli_fail("search"); goto done; }
        file = cJSON_Parse(text);
        free(text);
        if (!file) { fprintf(stderr, "steerclear search: %s: not valid JSON near '%.30s'\n", config, cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : ""); goto done; }
        if (sc_json_check_object(file, config, top_keys)) { sc_cli_fail("search"); goto done; }
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(file, "search");
        // the run's own config.json may predate a key: it then keeps the value the run was made with
        if (s && (config == saved ? sc_search_config_from_recorded_json(s, config, &cfg) : sc_search_config_from_json(s, config, &cfg))) {
            sc_cli_fail("search");
            goto done;
        }
        if (sc_path_dir_of(config, base, sizeof base) || sc_judging_config_load(file, config, base, &jcfg, &qcfg)) { sc_cli_fail("search"); goto done; }
        if (sc_path_dir_of(config, base, sizeof base) || !config_path(file, "model", base, model, sizeof model) ||
            !config_path(file, "train", base, train, sizeof train) || !config_path(file, "test", base, test, sizeof test)) {
            sc_error_wrap(SC_ERR_ARG, "%s: ", config);
            sc_cli_fail("search");
            goto done;
        }
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(file, "precision");
        if (pr && (!cJSON_IsString(pr) || !sc_cli_parse_precision("precision", pr->valuestring, &so.backend.precision))) {
            if (!cJSON_IsString(pr)) sc_errorf(SC_ERR_ARG, "\"precision\" must be \"auto\", \"f32\" or \"bf16\"");
            sc_error_wrap(SC_ERR_ARG, "%s: ", config);
            sc_cli_fail("search");
            goto done;
        }
        const cJSON *mb = cJSON_GetObjectItemCaseSensitive(file, "memory_budget");
        if (mb && !budget_opt) {
            if (!cJSON_IsString(mb)) { fprintf(stderr, "steerclear search: %s: \"memory_budget\" must be a string such as \"16G\"\n", config); goto done; }
            if (sc_parse_size(mb->valuestring, &so.backend.memory_budget)) { sc_error_wrap(SC_ERR_ARG, "%s: memory_budget: ", config); sc_cli_fail("search"); goto done; }
        }
        const cJSON *dv = cJSON_GetObjectItemCaseSensitive(file, "device");
        if (dv && !device_opt && sc_device_parse(cJSON_IsString(dv) ? dv->valuestring : NULL, config, &so.backend.device)) { sc_cli_fail("search"); goto done; }
    }
    if (sc_search_config_from_json(over, "command line", &cfg)) { sc_cli_fail("search"); goto done; }
    if ((model_opt && sc_path_resolve(model_opt, NULL, model, sizeof model)) || (train_opt && sc_path_resolve(train_opt, NULL, train, sizeof train))) { sc_cli_fail("search"); goto done; }
    if (precision_opt) so.backend.precision = precision_opt;
    if (budget_opt && !sc_cli_parse_size("--memory-budget", budget_opt, &so.backend.memory_budget)) { sc_cli_fail("search"); goto done; }
    if (device_opt && sc_device_parse(device_opt, "--device", &so.backend.device)) { sc_cli_fail("search"); goto done; }
    if (!model[0]) { fprintf(stderr, "steerclear search: --model is required (or \"model\" in --config)\n"); goto done; }
    if (!train[0]) snprintf(train, sizeof train, "%s", sc_default_dataset("train.csv"));
    if (last < 0) last = cfg.searches;
    if (first >= cfg.searches || last > cfg.searches || last <= first) {
        fprintf(stderr, "steerclear search: --first-search %d --last-search %d: the run has searches 0..%d; choose FIRST < LAST <= %d\n",
                first, last, cfg.searches - 1, cfg.searches);
        goto done;
    }
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "model", model);
    cJSON_AddStringToObject(res, "train", train);
    if (test[0]) cJSON_AddStringToObject(res, "test", test);
    cJSON_AddItemToObject(res, "search", sc_search_config_to_json(&cfg));
    cJSON_AddItemToObject(res, "judge", sc_judge_config_to_json(&jcfg));
    cJSON_AddItemToObject(res, "quantify", sc_quantify_config_to_json(&qcfg));
    resolved = cJSON_Print(res);
    {   // a run directory that already has searches needs --resume, with the settings it was
        // started with; refuse before writing anything
        char ck[4300], *old_text = NULL;
        snprintf(ck, sizeof ck, "%s/checkpoints", out);
        snprintf(base, sizeof base, "%s/results.h5", out);
        if (!resume && (sc_file_exists(base) || sc_file_exists(ck))) {
            fprintf(stderr, "steerclear search: %s already has searches (results.h5 or checkpoints/); add --resume to continue it, or choose a new --out\n", out);
            cJSON_Delete(res);
            goto done;
        }
        if (resume && sc_file_exists(saved)) {
            char diff[1024];
            if (sc_read_file(saved, &old_text, NULL) || sc_search_resume_check(old_text, res, saved, diff, sizeof diff)) {
                free(old_text);
                cJSON_Delete(res);
                sc_cli_fail("search");
                goto done;
            }
        }
        free(old_text);
    }
    cJSON_Delete(res);

    // the stage context, then the resolved config, saved before any search starts
    so.run_dir = out;
    so.run_mode = SC_RUN_WRITE | (wait ? SC_RUN_WAIT : 0);
    so.command = "search";
    so.model_dir = model;
    so.train_csv = train;
    so.need_model = so.need_train = 1;
    sc_status st = sc_stage_open(&so, &stage);
    if (st) { rc = sc_cli_setup_exit(st); sc_cli_fail("search"); goto done; }
    rc = SC_EXIT_FAILED;
    if (sc_run_write_config(stage->run, resolved)) { sc_cli_fail("search"); goto done; }

    sc_search_run run = {.model = stage->model, .be = stage->be, .tok = stage->tok, .train = &stage->train, .cfg = &cfg,
                         .run = stage->run, .model_dir = stage->model_dir, .config_json = resolved, .resume = resume};
    st = sc_search_run_range(&run, first, last);
    if (st) { rc = sc_cli_run_exit(st); sc_cli_fail("search"); goto done; }
    fprintf(stderr, "steerclear search: searches %d..%d finished; results in %s/results.h5\n", first, last - 1, out);
    rc = SC_EXIT_OK;
done:
    cJSON_Delete(over);
    cJSON_Delete(file);
    free(resolved);
    sc_stage_free(stage);
    return rc;
}
