// cmd_extract.c — `steerclear extract`: parse options and run the extraction stage
// (src/steer/extract.c) on a run directory. Leaves out: MPI (one process does every search).
#include "steerclear/cli.h"
#include "steerclear/extract.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: steerclear extract --run RUN_DIR [options]\n"
        "\n"
        "One steering direction per block for every finished search in RUN_DIR/results.h5: the mean\n"
        "over all tokens of (adapted - base) residual stream at each block's output, over the prompts\n"
        "each followed by a continuation sampled once from the base model. Writes /directions to\n"
        "results.h5 and RUN_DIR/directions/search_NNNN.{safetensors,gguf}.\n"
        "\n"
        "  --run DIR             run directory with results.h5 (required)\n"
        "  --model DIR           model directory (default: the results file's \"model\" attribute)\n"
        "  --train CSV           train prompts (default: the run config's, else the shipped datasets/train.csv)\n"
        "  --test CSV            test prompts (default: the run config's, else the shipped datasets/test.csv)\n"
        "  --mode M              activation-diff (default) | update-mean\n"
        "  --sets LIST           train,test (default) | train | test\n"
        "  --max-new-tokens N    continuation length (default 50; 0 = prompts only)\n"
        "  --temperature X       default 0.7\n"
        "  --top-k N             default 50 (0 = off)\n"
        "  --top-p X             default 0.9\n"
        "  --seed S              sampling seed (default: the run's search seed)\n"
        "  --searches LIST       e.g. 0,3,5-7 (default: every finished search)\n"
        "  --batch N             sequences per forward pass (default 16)\n"
        "  --searches-per-pass N|auto  activation-diff: searches whose adapted sequences share one forward\n"
        "                        pass, each copy of the batch tagged with its search (default 1: a direction's\n"
        "                        bits then never depend on which searches are extracted together; more: the\n"
        "                        same up to float rounding; auto: all, fewer when memory is short)\n"
        "  --no-export           skip the safetensors / GGUF files\n"
        "  --wait                wait for another process writing RUN_DIR instead of refusing\n"
        "  --memory-budget SIZE  memory this process may use, e.g. 16G (default: 80%% of RAM / ranks on the node)\n"
        "  --device cpu|cuda     where the model runs (default cpu)\n"
        SC_CLI_PRECISION_HELP);
}


int sc_cmd_extract(int argc, char **argv) {
    enum { O_TRAIN = SC_CLI_O_OWN, O_TEST, O_MODE, O_SETS, O_SEARCHES, O_BATCH, O_PER_PASS, O_NOEXPORT, O_HELP };
    static const struct option longopts[] = {
        SC_CLI_STAGE_LONGOPTS, SC_CLI_SAMPLING_LONGOPTS,
        {"train", required_argument, 0, O_TRAIN}, {"test", required_argument, 0, O_TEST},
        {"mode", required_argument, 0, O_MODE}, {"sets", required_argument, 0, O_SETS},
        {"searches", required_argument, 0, O_SEARCHES}, {"batch", required_argument, 0, O_BATCH},
        {"searches-per-pass", required_argument, 0, O_PER_PASS}, {"no-export", no_argument, 0, O_NOEXPORT},
        {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0},
    };
    sc_extract_opts o;
    sc_extract_opts_default(&o);
    const sc_cli_sampling sampling = {&o.max_new_tokens, 0, &o.temperature, &o.top_p, &o.top_k, &o.seed, &o.seed_set};
    sc_stage_opts so;
    sc_stage_opts_default(&so);
    int *searches = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int ok = sc_cli_stage_option(c, optarg, &so);
        if (ok < 0) ok = sc_cli_sampling_option(c, optarg, &sampling);
        if (ok < 0) {
            ok = 1;
            switch (c) {
            case O_TRAIN: so.train_csv = optarg; break;
            case O_TEST: so.test_csv = optarg; break;
            case O_MODE: ok = sc_direction_mode_parse(optarg, &o.mode) == SC_OK; break;
            case O_SETS:
                if (!strcmp(optarg, "train,test") || !strcmp(optarg, "test,train")) o.use_train = o.use_test = 1;
                else if (!strcmp(optarg, "train")) { o.use_train = 1; o.use_test = 0; }
                else if (!strcmp(optarg, "test")) { o.use_train = 0; o.use_test = 1; }
                else { sc_errorf(SC_ERR_ARG, "--sets '%s' is not one of train,test | train | test", optarg); ok = 0; }
                break;
            case O_SEARCHES: free(searches); searches = NULL; ok = sc_cli_parse_list(optarg, &searches, &o.n_searches); break;
            case O_BATCH: ok = sc_cli_parse_int("--batch", optarg, 1, &o.batch_seqs); break;
            case O_PER_PASS:
                if (!strcmp(optarg, "auto")) o.searches_per_pass = 0;
                else ok = sc_cli_parse_int("--searches-per-pass", optarg, 1, &o.searches_per_pass);
                break;
            case O_NOEXPORT: o.export_files = 0; break;
            case 'h': case O_HELP: usage(stdout); free(searches); return 0;
            default:
                sc_errorf(SC_ERR_ARG, "unknown or incomplete option '%s' (see steerclear extract --help)", argv[optind - 1]);
                ok = 0;
            }
        }
        if (!ok) { free(searches); return sc_cli_bad_input("extract"); }
    }
    if (!sc_cli_no_positional("extract", argc, argv, optind)) { free(searches); return sc_cli_bad_input("extract"); }
    if (!so.run_dir) { free(searches); sc_errorf(SC_ERR_ARG, "--run RUN_DIR is required"); return sc_cli_bad_input("extract"); }
    sc_signals_install();
    o.searches = searches;
    so.run_mode |= SC_RUN_WRITE;
    so.command = "extract";
    so.need_model = 1;
    so.need_train = o.use_train;
    so.need_test = o.use_test;
    sc_stage *stage = NULL;
    sc_status st = sc_stage_open(&so, &stage);
    int rc = st ? sc_cli_setup_exit(st) : SC_EXIT_OK;
    if (!st && (st = sc_extract_run(stage, &o))) rc = sc_cli_run_exit(st);
    sc_stage_free(stage);
    free(searches);
    if (st != SC_OK) { sc_cli_fail("extract"); return rc; }
    printf("%s/results.h5\n", so.run_dir);
    return SC_EXIT_OK;
}
