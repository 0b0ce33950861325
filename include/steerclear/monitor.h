// monitor.h — what a long batch job shows the outside world while it runs:
//   - progress lines "what: done/total unit (p%), elapsed, ETA" on the log (at most every few
//     seconds, and at the end), from every stage;
//   - RUN_DIR/run.log: every log line with a UTC timestamp, appended across restarts;
//   - RUN_DIR/status.json, rewritten atomically at most once a second, for a monitoring script:
//       {"state": "running" | "done" | "failed" | "interrupted", "stage", "stage_index",
//        "stages", "step", "steps", "unit", "elapsed_s", "eta_s", "started", "updated",
//        "host", "pid", "version", "last_error"}
// Without sc_monitor_open only the progress lines are made (stderr), so stages report progress
// the same way whether `steerclear run` or a single command drives them.
#ifndef STEERCLEAR_MONITOR_H
#define STEERCLEAR_MONITOR_H

#include "steerclear/core.h"

// The program's version (`git describe` of the source tree at build time, "unknown" outside a
// git checkout) and this machine's host name.
const char *sc_version(void);
const char *sc_hostname(void);

// Start writing RUN_DIR/run.log and RUN_DIR/status.json (n_stages: the stages this job runs).
sc_status sc_monitor_open(const char *run_dir, int n_stages);
// The job ends: status.json gets its final state from `st` (SC_OK done, SC_ERR_INTERRUPTED
// interrupted, else failed with the last error), run.log is closed.
void sc_monitor_close(sc_status st);
// A stage starts (index 0-based) / finishes after wall_s seconds.
void sc_monitor_stage(const char *stage, int index);
void sc_monitor_stage_done(const char *stage, double wall_s);
// Progress of the current step loop: `what` names it ("evaluate", "search 3"); a loop starts
// when done == 0 or `what` changes (the ETA is taken from the rate since then).
void sc_monitor_progress(const char *what, long done, long total, const char *unit);
// Fault injection for the resume tests: with SC_TEST_KILL=STAGE:POINT in the environment the
// process sends itself SIGKILL in that stage at POINT: "progress" (the first progress report
// after some work) or "end" (the stage's outputs are written, its completion not yet recorded:
// sc_monitor_fault_point(stage, "end") is called there). Nothing happens without the variable.
void sc_monitor_fault_point(const char *stage, const char *point);
// Only status.json's step fields, for a loop that prints its own progress lines (the search).
void sc_monitor_step(long done, long total, const char *unit, double eta_s);

#endif
