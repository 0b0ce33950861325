// main.c — the steerclear command: dispatch to one subcommand. Nothing else lives here.
#include "steerclear/cli.h"
#include "steerclear/dist.h"
#include "steerclear/monitor.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} subcommand;

static const subcommand commands[] = {
    {"run", sc_cmd_run, "the whole study from one config: search ... report, resumable"},
    {"tokenize", sc_cmd_tokenize, "text to token ids (or --decode ids to text)"},
    {"make-model", sc_cmd_make_model, "write a random model in the Hugging Face layout"},
    {"logits", sc_cmd_logits, "write a text's logits [tokens, vocab] as .npy"},
    {"generate", sc_cmd_generate, "sample a continuation, optionally steered by a direction"},
    {"dataset", sc_cmd_dataset, "write a prompt set with an LLM: openers per scenario, cleaned, split"},
    {"search", sc_cmd_search, "train divergence adapters (the search)"},
    {"extract", sc_cmd_extract, "steering directions from finished searches (results.h5, safetensors, GGUF)"},
    {"evaluate", sc_cmd_evaluate, "continuations of test prompts: base, adapters, directions"},
    {"judge", sc_cmd_judge, "the judge's themes of the evaluation outputs, embedded"},
    {"score", sc_cmd_score, "Linearity Scores (cosine matrix, Hungarian matching) and the ranking"},
    {"quantify", sc_cmd_quantify, "scale sweeps of the best directions: question marks, length, trait win rates"},
    {"report", sc_cmd_report, "figures and RUN_DIR/report.md"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
    fprintf(f, "usage: steerclear COMMAND [OPTIONS]   (steerclear COMMAND --help for its options)\n\ncommands:\n");
    for (const subcommand *c = commands; c->name; c++) fprintf(f, "  %-12s %s\n", c->name, c->help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) { printf("steerclear %s\n", sc_version()); return 0; }
    for (const subcommand *c = commands; c->name; c++) {
        if (strcmp(argv[1], c->name)) continue;
        // only `run` works across MPI ranks (src/dist); any other command started as several
        // tasks would write the same files from every one of them
        const int tasks = sc_dist_launched_size();
        if (tasks > 1 && strcmp(c->name, "run") != 0) {
            fprintf(stderr, "steerclear %s: started as one of %d MPI/Slurm tasks, but only `steerclear run` runs across ranks; "
                            "start it as one task (mpirun -np 1, srun -n 1), or use `steerclear run` for the whole study\n", c->name, tasks);
            return 2;
        }
        return c->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "steerclear: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
