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
    enum { O_TEST = SC_CLI_O_OWN, O_SCALES, O_LIMIT, O_SEARCHES, O_BATCH, O_NOADAPT, O_NODIR, O_HELP };
    static const struct option longopts[] = {
        SC_CLI_STAGE_LONGOPTS, SC_CLI_SAMPLING_LONGOPTS,
        {"test", required_argument, 0, O_TEST}, {"scales", required_argument, 0, O_SCALES},
        {"limit", required_argument, 0, O_LIMIT}, {"searches", required_argument, 0, O_SEARCHES},
        {"batch", required_argument, 0, O_BATCH}, {"no-adapters", no_argument, 0, O_NOADAPT},
        {"no-directions", no_argument, 0, O_NODIR}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0},
    };
    sc_evaluate_opts o;
    sc_evaluate_opts_default(&o);
    const sc_cli_sampling sampling = {&o.max_new_tokens, 1, &o.temperature, &o.top_p, &o.top_k, &o.seed, &o.seed_set};
    sc_stage_opts so;
    sc_stage_opts_default(&so);
    sc_stage *stage = NULL;
    int *searches = NULL;
    float *scales = NULL;
    optind = 1;
    opterr = 0;
    int c, rc = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int ok = sc_cli_stage_option(c, optarg, &so);
        if (ok < 0) ok = sc_cli_sampling_option(c, optarg, &sampling);
        if (ok < 0) {
            ok = 1;
            switch (c) {
            case O_TEST: so.test_csv = optarg; break;
            case O_SCALES: free(scales); scales = NULL; ok = parse_scales(optarg, &scales, &o.n_scales); break;
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
