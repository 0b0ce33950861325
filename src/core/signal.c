// signal.c — SIGTERM / SIGINT set one flag that long loops poll (see core.h): a batch job that
// Slurm preempts stops within about one block's work and keeps its last checkpoint.
#include "steerclear/core.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t sc_stop_flag = 0;
static volatile sig_atomic_t sc_stop_signal = 0;

static void on_signal(int sig) {
    sc_stop_signal = sig;
    sc_stop_flag = 1;
}

void sc_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static int sc_deferred = 0;

void sc_interrupt_defer(int on) { sc_deferred = on; }
int sc_interrupt_pending(void) { return sc_stop_flag != 0; }
int sc_interrupted(void) { return sc_stop_flag != 0 && !sc_deferred; }

void sc_interrupt_reset(void) { sc_stop_flag = 0; sc_stop_signal = 0; }

sc_status sc_check_interrupt(const char *where) {
    if (!sc_stop_flag || sc_deferred) return SC_OK;
    return sc_errorf(SC_ERR_INTERRUPTED, "stopped by signal %d (%s) while %s", (int)sc_stop_signal,
                     sc_stop_signal == SIGINT ? "SIGINT" : sc_stop_signal == SIGTERM ? "SIGTERM" : "signal", where);
}
