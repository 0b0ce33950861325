// cmd_search.c — `steerclear search`: parse options and the JSON config, save the resolved
// config in RUN_DIR, load model, tokenizer and train set, run the searches. SIGTERM / SIGINT
// stop after the current optimizer step (already checkpointed); --resume continues.
#include "steerclear/cli.h"
#include "steerclear/search.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static void usage(FILE *f) {
    fprintf(f, "usage: steerclear search --model DIR --train CSV --out RUN_DIR [options]\n"
               "  --config F.json        settings: {\"search\": {...}} or the keys directly (see README)\n"
               "  --searches N (20)      --adapter shared|per-block (shared)   --rank R (2)\n"
               "  --seed S (1234)        --batch-size N (12)   --prompts-per-search N (192)\n"
               "  --max-new-tokens N (128)   --lr X (0.1)   --epochs N (1)\n"
               "  --first-search I --last-search J   run only searches [I, J)\n"
               "  --resume               continue the searches checkpointed in RUN_DIR\n"
               "Command-line options override the config file; the resolved config is saved to RUN_DIR/config.json.\n");
}

int sc_cmd_search(int argc, char **argv) {
    // first: a preemption that arrives while loading still stops cleanly after one step
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    const char *model = NULL, *train = NULL, *out = NULL, *config = NULL;
    int resume = 0, first = 0, last = -1;
    sc_search_config cfg;
    sc_search_config_default(&cfg);
    cJSON *over = cJSON_CreateObject();   // command-line settings, applied after the file
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"train", required_argument, 0, 't'}, {"out", required_argument, 0, 'o'},
        {"config", required_argument, 0, 'c'}, {"resume", no_argument, 0, 'r'},
        {"searches", required_argument, 0, 1}, {"adapter", required_argument, 0, 2}, {"rank", required_argument, 0, 3},
        {"seed", required_argument, 0, 4}, {"batch-size", required_argument, 0, 5}, {"prompts-per-search", required_argument, 0, 6},
        {"max-new-tokens", required_argument, 0, 7}, {"lr", required_argument, 0, 8}, {"epochs", required_argument, 0, 9},
        {"first-search", required_argument, 0, 10}, {"last-search", required_argument, 0, 11},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    static const char *keys[] = {NULL, "searches", "adapter", "rank", "seed", "batch_size", "prompts_per_search", "max_new_tokens", "lr", "epochs"};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': train = optarg; break;
        case 'o': out = optarg; break;
        case 'c': config = optarg; break;
        case 'r': resume = 1; break;
        case 2: cJSON_AddStringToObject(over, keys[c], optarg); break;
        case 1: case 3: case 4: case 5: case 6: case 7: case 8: case 9: {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || end == optarg) { fprintf(stderr, "steerclear search: --%s '%s' is not a number\n", opts[5 + c - 1].name, optarg); cJSON_Delete(over); return 2; }
            cJSON_AddNumberToObject(over, keys[c], v);
            break;
        }
        case 10: if (!sc_cli_parse_int("--first-search", optarg, 0, &first)) { sc_cli_fail("search"); cJSON_Delete(over); return 2; } break;
        case 11: if (!sc_cli_parse_int("--last-search", optarg, 1, &last)) { sc_cli_fail("search"); cJSON_Delete(over); return 2; } break;
        case 'h': usage(stdout); cJSON_Delete(over); return 0;
        default: usage(stderr); cJSON_Delete(over); return 2;
        }
    }
    if (!out) { fprintf(stderr, "steerclear search: --out RUN_DIR is required\n"); usage(stderr); cJSON_Delete(over); return 2; }
    char saved[4200];
    snprintf(saved, sizeof saved, "%s/config.json", out);
    if (!config && resume && sc_file_exists(saved)) config = saved;   // resume with the run's own config
    cJSON *file = NULL;
    int rc = 1;
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    sc_dataset ds = {0};
    char *resolved = NULL;
    if (config) {
        char *text;
        if (sc_read_file(config, &text, NULL)) { sc_cli_fail("search"); goto done; }
        file = cJSON_Parse(text);
        free(text);
        if (!file) { fprintf(stderr, "steerclear search: %s: not valid JSON near '%.30s'\n", config, cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : ""); goto done; }
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(file, "search");
        if (s && sc_search_config_from_json(s, config, &cfg)) { sc_cli_fail("search"); goto done; }
        const cJSON *jm = cJSON_GetObjectItemCaseSensitive(file, "model"), *jt = cJSON_GetObjectItemCaseSensitive(file, "train");
        if (!model && cJSON_IsString(jm)) model = jm->valuestring;
        if (!train && cJSON_IsString(jt)) train = jt->valuestring;
    }
    if (sc_search_config_from_json(over, "command line", &cfg)) { sc_cli_fail("search"); goto done; }
    if (!model || !train) { fprintf(stderr, "steerclear search: --model and --train are required (or \"model\" and \"train\" in --config)\n"); rc = 2; goto done; }
    if (first < 0 || (last >= 0 && last <= first)) { fprintf(stderr, "steerclear search: --first-search %d --last-search %d is an empty range\n", first, last); rc = 2; goto done; }

    // the resolved config, saved before any work
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "model", model);
    cJSON_AddStringToObject(res, "train", train);
    cJSON_AddItemToObject(res, "search", sc_search_config_to_json(&cfg));
    resolved = cJSON_Print(res);
    cJSON_Delete(res);
    if (sc_mkdir_p(out) || sc_write_file_atomic(saved, resolved, strlen(resolved))) { sc_cli_fail("search"); goto done; }

    char tokpath[4200];
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", model);
    if (sc_model_load(model, 0, -1, &m) || sc_tok_load(tokpath, &tok) || sc_dataset_load(train, SC_DATASET_TRAIN, &ds)) { sc_cli_fail("search"); goto done; }
    sc_search_run run = {.model = m, .be = sc_backend_cpu(), .tok = tok, .train = &ds, .cfg = &cfg, .run_dir = out,
                         .config_json = resolved, .resume = resume, .stop = &stop_requested};
    sc_status st = sc_search_run_range(&run, first, last);
    if (st == SC_ERR_INTERRUPTED) { fprintf(stderr, "steerclear search: %s\n", sc_last_error()); rc = 3; goto done; }
    if (st) { sc_cli_fail("search"); goto done; }
    fprintf(stderr, "steerclear search: %d searches finished; results in %s/results.h5\n", (last < 0 ? cfg.searches : last) - first, out);
    rc = 0;
done:
    cJSON_Delete(over);
    cJSON_Delete(file);
    free(resolved);
    sc_dataset_free(&ds);
    sc_tok_free(tok);
    sc_model_free(m);
    return rc;
}
