// dist.h — the MPI layout of a study (src/dist): MPI_COMM_WORLD split into search groups of P
// pipeline stages each; searches go to groups round-robin (search s to group s mod G).
//
//   world size N = G x P (N must be a multiple of P); rank r is stage r mod P of group r / P.
//
// A build without MPI (-DSC_MPI=OFF), or a process not started by an MPI launcher (mpirun,
// srun --mpi=pmix), is one group of one stage: everything runs in this process and MPI is
// never initialised. A build without MPI started as one of several ranks refuses to run
// (every rank would think it is alone).
//
// Rank 0 is the only rank that writes the run directory (it holds its lock) and the only one
// that talks HTTP. In the search stage every group trains its own searches and checkpoints them
// to RUN_DIR/checkpoints/search_NNNN.ckpt (one file per search, each written by the one rank
// that trains that search while rank 0 holds the lock), and sends each finished search
// (sc_search_state_pack) to rank 0, which adds it to results.h5. The later stages (extract,
// evaluate, judge, score, quantify, report) run on rank 0, which writes everything; with more
// than one group or stage their generation (evaluate, quantify, the extract stage's sampling) is
// split over every search group in the chunks one process runs (sc_dist_stage_generate: rank 0
// hands each group leader one whole chunk at a time and gathers the tokens); the extract stage's
// activation sums run with P = 1 on every group (adapter a on group a mod G), with P > 1 on
// search group 0's stages (sc_dist_extract_opts); the other ranks serve (sc_dist_serve). The
// judge, scores and report run on rank 0 alone.
//
// Pipeline stages (P > 1, src/dist/pipeline.c): the blocks of the model are split into P
// contiguous slices balanced by a cost model (sc_dist_plan: every block costs the same; the last
// stage's final norm, LM head and loss count as `head_blocks` blocks). Stage s of a group loads
// only its slice (stage 0 also the embedding, the last stage the head); no rank holds blocks it
// does not own, rank 0 included. A group runs its searches one after another; each step is one
// pipelined pass (sampling with stage-local KV caches, teacher-forced P and Q forwards in GPipe
// micro-batches, the loss on the last stage, the backward with the hidden-state gradient flowing
// back, the adapter gradient summed over the stages in stage order and broadcast from stage 0,
// then the same AdamW step on every stage). Only the group's stage 0 writes the checkpoints; the
// group leader sends finished searches to rank 0.
#ifndef STEERCLEAR_DIST_H
#define STEERCLEAR_DIST_H

#include "steerclear/extract.h"
#include "steerclear/model.h"
#include "steerclear/search.h"

typedef struct cJSON cJSON;

typedef struct {
    int size, rank;            // MPI_COMM_WORLD (1, 0 without MPI)
    int stages, groups;        // P, G = size / P
    int group, stage;          // this rank's place: group rank / P, stage rank mod P
    int mpi;                   // MPI was initialised (launched by mpirun / srun with an MPI build)
    char (*hosts)[64];         // rank 0 only: every rank's host name [size]
    int micro;                 // GPipe micro-batches per pipelined step (0: min(batch, 4P))
    int *first, *last;         // [stages] each stage's block slice (sc_dist_plan; NULL before it)
    double head_blocks;        // the cost model: the head and loss of the last stage in blocks
    void *group_comm;          // the group's communicator (an MPI_Comm) when stages > 1 under MPI
    void *leaders_comm;        // the group leaders' (stage 0 of each group, by group) when groups > 1 under MPI; NULL elsewhere
} sc_dist;

// 1 when this build links MPI (-DSC_MPI=ON, or AUTO and MPI was found).
int sc_dist_built_with_mpi(void);
// Ranks the launcher says it started (OMPI_COMM_WORLD_SIZE, PMI_SIZE, SLURM_STEP_NUM_TASKS with
// PMIx/PMI); 1 when none.
int sc_dist_launched_size(void);

// Start MPI when launched by an MPI launcher (else one process: size 1); then the layout with
// P = stages (< 1: 1). Errors name what to change: a world size that is not a multiple of P.
// With P > 1 each group gets its communicator (MPI_Comm_split, ranked by stage). Collective.
sc_status sc_dist_init(int stages, sc_dist *d);
// Collective end: the other ranks sleep until rank 0 gets here, then MPI_Finalize (nothing
// without MPI); frees the layout.
void sc_dist_finalize(sc_dist *d);
// End every rank now (MPI_Abort with `code`); without MPI, exit(code).
void sc_dist_abort(const sc_dist *d, int code) __attribute__((noreturn));

// Split the blocks of a model of config cfg into the stages' slices by the cost model (each
// block 1; the head and loss of the last stage cfg-dependent: 4 V C multiply-adds per sampled
// token against 5 block passes per token of the block's weights, half the rows of a step taken as
// sampled tokens); every stage gets at least one block. Deterministic: every rank computes the
// same. Error when P exceeds the blocks.
sc_status sc_dist_plan(sc_dist *d, const sc_model_config *cfg);
// Stage s's slice [first, last) of n_layers (the plan's, else an equal split).
void sc_dist_stage_blocks(const sc_dist *d, int n_layers, int stage, int *first, int *last);

// This rank's stage slice of m as a model of its own (a copy of the header with first, last,
// has_embed, has_head narrowed; the weights are m's).
void sc_dist_slice_view(const sc_dist *d, const sc_model *m, sc_model *view);

// The extract stage's activation sums on the layout (src/dist/later.c): on rank 0, point
// o->compute at the groups (*ctx: free it after the stage; nothing with one group of one stage).
// P > 1: every stage of search group 0 sums its own blocks' outputs (base and adapted); P = 1 and
// G > 1: adapter a's sums on group a mod G. Rank 0 gathers the sums and writes results.h5
// (bitwise what one process writes). The other stages of
// group 0 take part through sc_dist_serve, which returns when rank 0 calls sc_dist_serve_end (or
// ends the job).
sc_status sc_dist_extract_opts(const sc_dist *d, const sc_model *model, sc_backend *be, sc_extract_opts *o, void **ctx);
// Generation on every search group (more than one group or stage; rank 0): every generation of
// the later stages (evaluate, quantify, the extract stage's sampling) through stage->generate.
// Rank 0 hands each group leader whole chunks of sc_evaluate_generate (the same sequences in the
// same batch), runs chunks on group 0 itself and gathers the tokens; a group of P > 1 stages runs
// a chunk on its stages, each with its own blocks and KV cache (rows stage to stage, tokens from
// the last stage to all): bitwise the text of one process. A signal to rank 0 stops the handing
// out between chunks (SC_ERR_INTERRUPTED). *ctx: free it after the stages.
sc_status sc_dist_stage_generate(const sc_dist *d, sc_stage *stage, void **ctx);
// The ranks other than 0 after their search stage (sc_dist_serves: every rank but 0 when there
// is more than one group or stage): serve rank 0's later-stage work (a group leader rank 0's, a
// pipeline stage its group leader's) until rank 0 calls sc_dist_serve_end (or ends the job).
int sc_dist_serves(const sc_dist *d);
sc_status sc_dist_serve(const sc_dist *d, const sc_model *model, sc_backend *be);
void sc_dist_serve_end(const sc_dist *d);

// The group that trains search s.
int sc_dist_search_group(const sc_dist *d, int search);
// The layout as JSON (rank 0): world size, stages, groups, each rank's group, stage, host and
// block slice [first, last) of n_layers, and each group's searches of `searches`.
cJSON *sc_dist_layout_json(const sc_dist *d, int n_layers, int searches);
// The layout in a few lines through sc_log (rank 0).
void sc_dist_log_layout(const sc_dist *d, int n_layers, int searches);

// Rank 0 to every rank: n ints (collective; nothing without MPI).
sc_status sc_dist_bcast_ints(const sc_dist *d, int *v, int n);

// The search stage on the layout (collective: every rank calls it with its own run, which
// names this rank's stage context). Rank 0 tells the others which searches results.h5 already
// holds, runs group 0's searches and adds every group's finished searches to results.h5 as they
// arrive; the others run their group's searches and send each finished one to rank 0. A failure
// or a signal on any rank stops the others after their current step (each keeps its checkpoint);
// rank 0 returns the first error, naming the rank it came from (SC_ERR_INTERRUPTED when a signal
// stopped the stage: --resume continues, on this layout or another).
sc_status sc_dist_search(const sc_dist *d, sc_search_run *run, int n_searches);
// A rank other than 0 that could not open its stage context: it takes part in the search stage
// only to tell rank 0 `st` and its message (the last error). Returns st.
sc_status sc_dist_search_abstain(const sc_dist *d, int n_searches, sc_status st);

#endif
