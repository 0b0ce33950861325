// cli.h — subcommands. Each takes the arguments after the subcommand name (argv[0] is the
// subcommand) and returns a process exit code; it prints its own errors.
#ifndef STEERCLEAR_CLI_H
#define STEERCLEAR_CLI_H

#include <stddef.h>

int sc_cmd_tokenize(int argc, char **argv);
int sc_cmd_make_model(int argc, char **argv);
int sc_cmd_logits(int argc, char **argv);
int sc_cmd_generate(int argc, char **argv);
int sc_cmd_search(int argc, char **argv);
int sc_cmd_extract(int argc, char **argv);
int sc_cmd_evaluate(int argc, char **argv);

// Print "steerclear CMD: <message>" for the last error to stderr; returns 1.
int sc_cli_fail(const char *cmd);

// Option values: return 1 and store, or record an error naming the option and return 0.
int sc_cli_parse_int(const char *opt, const char *s, int min, int *out);
int sc_cli_parse_float(const char *opt, const char *s, float *out);
int sc_cli_parse_u64(const char *opt, const char *s, unsigned long long *out);   // e.g. --seed
// A memory size such as 16G or 800M (backend.h, sc_parse_size).
int sc_cli_parse_size(const char *opt, const char *s, size_t *out);
// A list of search indices such as "0,3,5-7" (malloc'ed into *out).
int sc_cli_parse_list(const char *s, int **out, int *n);

#endif
