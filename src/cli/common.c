// common.c — helpers shared by the subcommands.
#include "steerclear/cli.h"
#include "steerclear/core.h"

#include <stdio.h>

int sc_cli_fail(const char *cmd) {
    fprintf(stderr, "steerclear %s: %s\n", cmd, sc_last_error()[0] ? sc_last_error() : "failed");
    return 1;
}
