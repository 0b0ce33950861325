// cli.h — subcommands. Each takes the arguments after the subcommand name (argv[0] is the
// subcommand) and returns a process exit code; it prints its own errors.
#ifndef STEERCLEAR_CLI_H
#define STEERCLEAR_CLI_H

int sc_cmd_tokenize(int argc, char **argv);
int sc_cmd_make_model(int argc, char **argv);
int sc_cmd_logits(int argc, char **argv);
int sc_cmd_generate(int argc, char **argv);
int sc_cmd_search(int argc, char **argv);
int sc_cmd_extract(int argc, char **argv);
int sc_cmd_evaluate(int argc, char **argv);

// Print "steerclear CMD: <message>" for the last error to stderr; returns 1.
int sc_cli_fail(const char *cmd);

#endif
