// cmd_run.c — `steerclear run`: the whole study from one config (src/pipeline/study.c), then
// where the report is and the table of Linearity Scores.
#include "steerclear/cli.h"
#include "steerclear/study.h"
#include "steerclear/dist.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: steerclear run --config CONFIG.json [--out RUN_DIR] [--resume] [--wait] [--stages P]\n"
        "\n"
        "The whole study as one batch job: search -> extract -> evaluate -> judge -> score -> quantify\n"
        "-> report, with every setting from CONFIG.json (README: the config; configs/ has examples).\n"
        "Each stage is recorded as finished in RUN_DIR/stages.json; --resume skips finished stages and\n"
        "continues the one that was running. Progress goes to stderr and RUN_DIR/run.log;\n"
        "RUN_DIR/status.json says where the job is (for monitoring scripts).\n"
        "\n"
        "  --config F.json   the study's config (required)\n"
        "  --out DIR         the run directory (default: results/<config name>)\n"
        "  --resume          continue the run in RUN_DIR\n"
        "  --wait            wait for another process writing RUN_DIR instead of refusing\n"
        "  --stages P        pipeline stages per MPI search group (default: the config's \"stages\", else 1).\n"
        "                    Under mpirun / srun every P ranks form a search group; searches go to groups\n"
        "                    round-robin; with P > 1 the group's ranks split the model's blocks and run\n"
        "                    each search step as a pipeline (README: Running on a cluster)\n"
        "\n"
        "Exit codes: 0 done, 1 a stage failed, 2 bad config or input, 3 interrupted (SIGTERM/SIGINT;\n"
        "--resume continues), 4 RUN_DIR is being written by another process.\n"
        "\n"
        "MPI: this build: %s.\n", sc_dist_built_with_mpi() ? "with MPI (mpirun -np N / srun --mpi=pmix)" : "without MPI (one process)");
}

// The table of Linearity Scores from RUN_DIR/scores.json.
static void print_scores(const char *run_dir) {
    char path[4300], *text = NULL;
    snprintf(path, sizeof path, "%s/scores.json", run_dir);
    if (sc_read_file(path, &text, NULL)) { sc_error_clear(); return; }
    cJSON *doc = cJSON_Parse(text);
    free(text);
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(doc, "threshold");
    printf("\nLinearity Scores (faithful at >= %.2f):\n\n  rank  search  linearity  faithful\n", cJSON_IsNumber(thr) ? thr->valuedouble : 0.83);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "ranking")) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "rank"), *s = cJSON_GetObjectItemCaseSensitive(e, "search"),
                    *l = cJSON_GetObjectItemCaseSensitive(e, "linearity"), *f = cJSON_GetObjectItemCaseSensitive(e, "faithful");
        if (cJSON_IsNumber(r) && cJSON_IsNumber(s) && cJSON_IsNumber(l))
            printf("  %4d  %6d  %9.3f  %s\n", r->valueint, s->valueint, l->valuedouble, cJSON_IsTrue(f) ? "yes" : "no");
    }
    cJSON_Delete(doc);
}

int sc_cmd_run(int argc, char **argv) {
    sc_signals_install();   // first: a preemption while loading still stops cleanly
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'}, {"out", required_argument, 0, 'o'}, {"resume", no_argument, 0, 'r'},
        {"wait", no_argument, 0, 'w'}, {"stages", required_argument, 0, 'P'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    sc_study_opts o = {0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config_path = optarg; break;
        case 'o': o.run_dir = optarg; break;
        case 'r': o.resume = 1; break;
        case 'w': o.wait = 1; break;
        case 'P': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 4096) { sc_errorf(SC_ERR_ARG, "--stages %s: give a whole number of pipeline stages (1 or more)", optarg); return sc_cli_bad_input("run"); }
            o.stages = (int)v;
            break;
        }
        case 'h': usage(stdout); return SC_EXIT_OK;
        default:
            sc_errorf(SC_ERR_ARG, "unknown or incomplete option '%s' (see steerclear run --help)", argv[optind - 1]);
            return sc_cli_bad_input("run");
        }
    }
    if (!sc_cli_no_positional("run", argc, argv, optind)) return sc_cli_bad_input("run");
    if (!o.config_path) { sc_errorf(SC_ERR_ARG, "--config CONFIG.json is required (configs/tiny.json is the embedded default)"); return sc_cli_bad_input("run"); }
    char run_dir[4096] = "";
    sc_status st = sc_study_run(&o, run_dir, sizeof run_dir);
    if (st) {
        if (sc_study_rank() > 0) sc_log(SC_LOG_ERROR, "steerclear run: %s", sc_last_error());   // prefixed with the rank
        else sc_cli_fail("run");
        if (st == SC_ERR_INTERRUPTED && run_dir[0]) fprintf(stderr, "steerclear run: continue with: steerclear run --config %s --out %s --resume\n", o.config_path, run_dir);
        fflush(stderr);
        sc_study_end();
        return sc_cli_run_exit(st);
    }
    if (run_dir[0]) {   // (an MPI rank other than 0 has none: rank 0 reports)
        printf("report: %s/report.md\n", run_dir);
        print_scores(run_dir);
        fflush(stdout);
    }
    sc_study_end();
    return SC_EXIT_OK;
}
