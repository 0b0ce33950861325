// pipeline.h — one search step on a pipeline of P > 1 stages (src/dist, private): see
// pipeline.c for the schedule, dist.h for the layout.
#ifndef STEERCLEAR_DIST_PIPELINE_H
#define STEERCLEAR_DIST_PIPELINE_H

#include "steerclear/dist.h"

// Rank 0's end-of-job word to every rank (MPI_COMM_WORLD; layout.c)
#define SC_DIST_TAG_FIN 4199

typedef struct sc_pipe sc_pipe;

// This rank's stage of its group for the search stage (collective in the group: every stage
// makes its own). run->model may hold more blocks than the stage's slice (rank 0 keeps the whole
// model for the later stages): the pipe runs a view of the slice only. Buffers, the stage's
// generator, the micro-batches' saved activations and the staging buffers are sized once here
// from the longest train prompt: a step allocates nothing.
sc_status sc_pipe_create(const sc_dist *d, const sc_search_run *run, sc_pipe **out);
void sc_pipe_free(sc_pipe *p);
// sc_search_run.pipe_step: this stage's part of one optimizer step. Any failure inside the step
// takes the job down (MPI_Abort, naming the rank): its pipeline partners would wait for ever.
sc_status sc_pipe_step(void *pipe, sc_search_state *state, const int32_t *const *prompts, const int *prompt_len,
                       const int32_t *prompt_idx, int n);
// Collective in the group: *any = 1 when `want` is set on any stage (a signal, a stop from
// rank 0, an error to report), so every stage stops after the same step.
sc_status sc_pipe_agree(sc_pipe *p, int want, int *any);
// Collective in the group: traffic and idle time of the steps run so far, through sc_log
// (the group's stage 0 logs the group's totals).
void sc_pipe_report(sc_pipe *p);

#endif
