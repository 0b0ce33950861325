// cmd_evaluate.c — `steerclear evaluate`: parse options and run the evaluation stage
// (src/steer/evaluate.c): base, adapter and direction continuations of the test prompts.
#include "steerclear/cli.h"
#include "steerclear/evaluate.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: steerclear evaluate --run RUN_DIR [options]\n"
        "\n"
        "Continuations of the test prompts from the base model, from each search's adapter and from\n"
        "each extracted direction at each scale, all variants batched together. Writes RUN_DIR/eval/\n"
        "base.json, adapter_NNNN.json and direction_NNNN_scale_X.json.\n"
        "\n"
        "  --run DIR             run directory with results.h5 (required)\n"
        "  --model DIR           model directory (default: the results file's \"model\" attribute)\n"
        "  --test CSV            test prompts (default: the run config's, else the shipped datasets/test.csv)\n"
        "  --scales LIST         direction scales, e.g. 2,4,0.5 (default 2)\n"
        "  --max-new-tokens N    default 100\n"
        "  --temperature X       default 0.7\n"
        "  --top-k N             default 50 (0 = off)\n"
        "  --top-p X             default 0.9\n"
        "  --seed S              sampling seed (default: the run's search seed)\n"
        "  --limit N             only the first N test prompts\n"
        "  --searches LIST       e.g. 0,3,5-7 (default: every finished search)\n"
        "  --batch N             sequences per generation batch (default 64)\n"
        "  --no-adapters         skip the adapter variants\n"
        "  --no-directions       skip the direction variants\n"
        "  --wait                wait for another process writing RUN_DIR instead of refusing\n"
        "  --memory-budget SIZE  memory this process may use, e.g. 16G (default: 80%% of RAM / ranks on the node)\n"
        "  --device cpu|cuda     where the model runs (default cpu)\n"
        SC_CLI_PRECISION_HELP);
}



// "2,4,0.5" -> {2,4,0.5}: finite decimal numbers only
static int parse_scales(const char *s, float **out, int *n) {
    int cnt = 1;
    for (const char *p = s; *p; p++) cnt += *p == ',';
    float *v = malloc(sizeof(float) * (size_t)cnt);
    char item[64];
    const char *p = s;
    for (int i = 0; v && i < cnt; i++) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item) break;
        memcpy(item, p, len);
        item[len] = '\0';
        if (!sc_cli_parse_float("--scales", item, &v[i])) break;
        if (i == cnt - 1) { *out = v; *n = cnt; return 1; }
        p += len + 1;
    }
    free(v);
    sc_errorf(SC_ERR_ARG, "--scales '%s' is not a comma-separated list of numbers such as 2,4,0.5", s);
    return 0;
}

int sc_cmd_evaluate(int argc, char **argv) {
    enum { O_RUN = 1000, O_MODEL, O_TEST, O_SCALES, O_MAXNEW, O_TEMP, O_TOPK, O_TOPP, O_SEED, O_LIMIT,
           O_SEARCHES, O_BATCH, O_NOADAPT, O_NODIR, O_BUDGET, O_WAIT, O_DEVICE, O_PRECISION, O_HELP };
    static const struct option longopts[] = {
        {"run", required_argument, 0, O_RUN}, {"model", required_argument, 0, O_MODEL},
        {"test", required_argument, 0, O_TEST}, {"scales", required_argument, 0, O_SCALES},
        {"max-new-tokens", required_argument, 0, O_MAXNEW}, {"temperature", required_argument, 0, O_TEMP},
        {"top-k", required_argument, 0, O_TOPK}, {"top-p", required_argument, 0, O_TOPP},
        {"seed", required_argument, 0, O_SEED}, {"limit", required_argument, 0, O_LIMIT},
        {"searches", required_argument, 0, O_SEARCHES}, {"batch", required_argument, 0, O_BATCH},
        {"no-adapters", no_argument, 0, O_NOADAPT}, {"no-directions", no_argument, 0, O_NODIR},
        {"memory-budget", required_argument, 0, O_BUDGET}, {"wait", no_argument, 0, O_WAIT},
        {"device", required_argument, 0, O_DEVICE},
        {"precision", required_argument, 0, O_PRECISION},
        {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0},
    };
    sc_evaluate_opts o;
    sc_evaluate_opts_default(&o);
    sc_stage_opts so;
    sc_stage_opts_default(&so);
    sc_stage *stage = NULL;
    int *searches = NULL;
    float *scales = NULL;
    optind = 1;
    opterr = 0;
    int c, rc = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case O_RUN: so.run_dir = optarg; break;
        case O_MODEL: so.model_dir = optarg; break;
        case O_TEST: so.test_csv = optarg; break;
        case O_BUDGET: ok = sc_cli_parse_size("--memory-budget", optarg, &so.backend.memory_budget); break;
        case O_PRECISION: ok = sc_cli_parse_precision("--precision", optarg, &so.backend.precision); break;
        case O_SCALES: free(scales); scales = NULL; ok = parse_scales(optarg, &scales, &o.n_scales); break;
        case O_MAXNEW: ok = sc_cli_parse_int("--max-new-tokens", optarg, 1, &o.max_new_tokens); break;
        case O_TEMP: ok = sc_cli_parse_float("--temperature", optarg, &o.temperature); break;
        case O_TOPK: ok = sc_cli_parse_int("--top-k", optarg, 0, &o.top_k); break;
        case O_TOPP: ok = sc_cli_parse_float("--top-p", optarg, &o.top_p); break;
        case O_SEED: ok = sc_cli_parse_seed("--seed", optarg, &o.seed); o.seed_set = 1; break;
        case O_WAIT: so.run_mode |= SC_RUN_WAIT; break;
        case O_DEVICE: ok = sc_device_parse(optarg, "--device", &so.backend.device) == SC_OK; break;
        case O_LIMIT: ok = sc_cli_parse_int("--limit", optarg, 1, &o.limit); break;
        case O_SEARCHES: free(searches); searches = NULL; ok = sc_cli_parse_list(optarg, &searches, &o.n_searches); break;
        case O_BATCH: ok = sc_cli_parse_int("--batch", optarg, 1, &o.batch_seqs); break;
        case O_NOADAPT: o.adapters = 0; break;
        case O_NODIR: o.directions = 0; break;
        case 'h': case O_HELP: usage(stdout); rc = 0; goto out;
        default:
            sc_errorf(SC_ERR_ARG, "unknown or incomplete option '%s' (see steerclear evaluate --help)", argv[optind - 1]);
            ok = 0;
        }
        if (!ok) goto bad;
    }
    if (!sc_cli_no_positional("evaluate", argc, argv, optind)) goto bad;
    if (!so.run_dir) { sc_errorf(SC_ERR_ARG, "--run RUN_DIR is required"); goto bad; }
    sc_signals_install();
    o.searches = searches;
    o.scales = scales;
    so.run_mode |= SC_RUN_WRITE;   // writes RUN_DIR/eval
    so.command = "evaluate";
    so.need_model = so.need_test = 1;
    sc_status st = sc_stage_open(&so, &stage);
    if (st) { rc = sc_cli_setup_exit(st); sc_cli_fail("evaluate"); goto out; }
    if ((st = sc_evaluate_run(stage, &o))) { rc = sc_cli_run_exit(st); sc_cli_fail("evaluate"); goto out; }
    printf("%s/eval\n", so.run_dir);
    rc = SC_EXIT_OK;
    goto out;
bad:
    rc = sc_cli_bad_input("evaluate");
out:
    sc_stage_free(stage);
    free(searches);
    free(scales);
    return rc;
}
