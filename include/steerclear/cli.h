// cli.h — subcommands. Each takes the arguments after the subcommand name (argv[0] is the
// subcommand) and returns a process exit code; it prints its own errors.
#ifndef STEERCLEAR_CLI_H
#define STEERCLEAR_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "steerclear/core.h"

// Exit codes of every command.
#define SC_EXIT_OK 0
#define SC_EXIT_FAILED 1          // a stage failed (the message says why)
#define SC_EXIT_BAD_INPUT 2       // bad options, config or input files: nothing was run
#define SC_EXIT_INTERRUPTED 3     // stopped by SIGTERM / SIGINT after a checkpoint; --resume continues
#define SC_EXIT_LOCKED 4          // another process writes this run directory

#define SC_SEED_MAX 9007199254740992ull   // 2^53: seeds are stored as JSON numbers

int sc_cmd_tokenize(int argc, char **argv);
int sc_cmd_make_model(int argc, char **argv);
int sc_cmd_logits(int argc, char **argv);
int sc_cmd_generate(int argc, char **argv);
int sc_cmd_search(int argc, char **argv);
int sc_cmd_extract(int argc, char **argv);
int sc_cmd_evaluate(int argc, char **argv);
int sc_cmd_judge(int argc, char **argv);
int sc_cmd_score(int argc, char **argv);
int sc_cmd_quantify(int argc, char **argv);
int sc_cmd_report(int argc, char **argv);
int sc_cmd_run(int argc, char **argv);
int sc_cmd_dataset(int argc, char **argv);

// Print "steerclear CMD: <message>" for the last error to stderr; returns 1 (SC_EXIT_FAILED).
int sc_cli_fail(const char *cmd);
// The same, returning SC_EXIT_BAD_INPUT.
int sc_cli_bad_input(const char *cmd);
// Exit codes for a failure while setting up (options, config, loading: bad input unless out of
// memory, a lock held elsewhere or a signal) and while running a stage (bad input when the
// status says the input is wrong: SC_ERR_ARG, _FORMAT, _SHAPE; else a failed stage).
int sc_cli_setup_exit(sc_status st);
int sc_cli_run_exit(sc_status st);
// 1 when no arguments are left at argv[first..argc); else records an error naming the first.
int sc_cli_no_positional(const char *cmd, int argc, char **argv, int first);

// Option values: return 1 and store, or record an error naming the option and return 0. Numbers
// are plain decimal: hex, "nan", "inf", trailing text and overflow are errors.
int sc_cli_parse_int(const char *opt, const char *s, int min, int *out);
int sc_cli_parse_int_range(const char *opt, const char *s, int min, int max, int *out);
int sc_cli_parse_float(const char *opt, const char *s, float *out);               // finite
int sc_cli_parse_u64(const char *opt, const char *s, unsigned long long *out);
int sc_cli_parse_seed(const char *opt, const char *s, uint64_t *out);            // 0 .. 2^53
// "FIRST:LAST" with 0 <= FIRST < LAST.
int sc_cli_parse_range(const char *opt, const char *s, int *first, int *last);
// A memory size such as 16G or 800M (backend.h, sc_parse_size).
int sc_cli_parse_size(const char *opt, const char *s, size_t *out);
// A GEMM precision: auto, f32 or bf16 (backend.h, sc_backend_opts.precision); *out is static.
int sc_cli_parse_precision(const char *opt, const char *s, const char **out);
#define SC_CLI_PRECISION_HELP \
    "  --precision auto|f32|bf16  products against BF16 weights: f32 (reference), bf16 (BF16 operands, F32\n" \
    "                        accumulation; oneDNN), auto (bf16 where the CPU has AVX-512 BF16; default)\n"
// A list of search indices such as "0,3,5-7" (malloc'ed into *out).
int sc_cli_parse_list(const char *s, int **out, int *n);

// The options the later stages' commands (extract, evaluate) share, for getopt_long: the
// stage's (--run --model --memory-budget --wait --device --precision) and the sampling's
// (--max-new-tokens --temperature --top-k --top-p --seed). A command's own option values
// start at SC_CLI_O_OWN.
enum {
    SC_CLI_O_RUN = 900, SC_CLI_O_MODEL, SC_CLI_O_BUDGET, SC_CLI_O_WAIT, SC_CLI_O_DEVICE, SC_CLI_O_PRECISION,
    SC_CLI_O_MAXNEW, SC_CLI_O_TEMP, SC_CLI_O_TOPK, SC_CLI_O_TOPP, SC_CLI_O_SEED, SC_CLI_O_OWN = 1000
};
#define SC_CLI_STAGE_LONGOPTS                                                                        \
    {"run", required_argument, 0, SC_CLI_O_RUN}, {"model", required_argument, 0, SC_CLI_O_MODEL},   \
    {"memory-budget", required_argument, 0, SC_CLI_O_BUDGET}, {"wait", no_argument, 0, SC_CLI_O_WAIT}, \
    {"device", required_argument, 0, SC_CLI_O_DEVICE}, {"precision", required_argument, 0, SC_CLI_O_PRECISION}
#define SC_CLI_SAMPLING_LONGOPTS                                                                               \
    {"max-new-tokens", required_argument, 0, SC_CLI_O_MAXNEW}, {"temperature", required_argument, 0, SC_CLI_O_TEMP}, \
    {"top-k", required_argument, 0, SC_CLI_O_TOPK}, {"top-p", required_argument, 0, SC_CLI_O_TOPP},               \
    {"seed", required_argument, 0, SC_CLI_O_SEED}
// Where a command keeps the sampling options' values (min_new_tokens: the least --max-new-tokens).
typedef struct {
    int *max_new_tokens, min_new_tokens;
    float *temperature, *top_p;
    int *top_k;
    uint64_t *seed;
    int *seed_set;
} sc_cli_sampling;
struct sc_stage_opts;
// 1: one of these options, its value stored; 0: one of them with a bad value (the error
// recorded); -1: not one of them.
int sc_cli_stage_option(int c, const char *arg, struct sc_stage_opts *so);
int sc_cli_sampling_option(int c, const char *arg, const sc_cli_sampling *s);

#endif
