// pipeline.c — one optimizer step of a search on a pipeline of P stages (dist.h): stage s of
// the group holds blocks [first, last) of the model (stage 0 also the embedding, the last stage
// the final norm, the LM head and the loss) and a full replica of the adapter.
//
// One step, on every stage of the group at once (messages go over the group's communicator):
//  1. Sampling from Q (sc_gen on every stage, identical; sc_gen_stage with this stage's KV cache):
//     per generation step the hidden rows of the batch go stage to stage (stage 0 embeds), the
//     last stage samples, and the tokens go to every stage (MPI_Bcast from the last stage).
//     No overlap here: a decode step is one row per sequence and every stage waits for the one
//     before it ((P-1)/P of each stage's sampling time is idle).
//  2. The teacher-forced P and Q forwards in m micro-batches of whole sequences (GPipe: every
//     forward, then the loss, then every backward). The last stage needs the whole batch before
//     the loss (the loss is a mean over every counted row of the step), so 1F1B would gain no
//     memory here and GPipe is the simplest schedule with the same bubble, (P-1)/(m+P-1) of the
//     phase, about (P-1)/m for m >> P. Stage s receives micro-batch j's rows from s-1 (Irecv
//     posted for every unit at the start), runs its blocks and Isends them to s+1 while it runs
//     the next micro-batch; Q's forward keeps each micro-batch's activations for the backward.
//  3. The loss on the last stage over the whole batch, in row order (the same arithmetic as one
//     process): dL/dh of its slice output.
//  4. The backward, micro-batches last to first: the hidden-state gradient of each micro-batch
//     flows back stage to stage (Irecv posted up front, Isend as soon as computed).
//  5. The adapter gradient summed over the stages in a FIXED order: the last stage sends its
//     gradient to stage P-2, which adds its own and sends the sum on, ..., stage 0 holds the total
//     and broadcasts it. With m = 1 a stage starts its backward from the next stage's sum
//     instead of zero, so the additions happen in exactly the order of one process (the block
//     order, last to first): the step is bitwise that of one process. With m > 1 the gradient of
//     a block is accumulated over micro-batches (a different rounding), so results agree to
//     rounding (relative 1e-6 or so), not bitwise.
//  6. The same AdamW step on every stage: every stage holds an identical adapter replica, and
//     the step record (loss, tokens, adapter) is the same on every stage.
//
// Signals are deferred while a group trains (core.h): a stage never leaves a step half done;
// the group agrees between steps whether to stop (sc_pipe_agree). Hidden-state buffers, the
// receive requests, the events and, on a backend with its own memory, the pinned host staging
// copies are sized once in sc_pipe_create. Counts are known on every stage (the batch layout is
// identical everywhere), so no sizes travel.
//
// Transfers (xfer.h; logged as "pipeline transfers: ..."): with host memory MPI reads the
// backend's arrays; with CUDA-aware MPI it reads device memory; with pinned host staging a
// queued copy (op->download_async) fills the unit's pinned mirror. In the last two, a micro-batch's
// Isend waits for an event recorded after its rows are written (and copied), and is posted as
// soon as that event has passed: while the stage waits for its next input (MPI_Test and
// op->event_query in turn), or right after it queued the next micro-batch's compute, so the
// device computes micro-batch j+1 while j's rows travel. A received micro-batch is uploaded by a
// queued copy (op->upload_async) ahead of its compute. The bytes, their order in every sum and
// so the results are those of host memory: only when the copies happen changes. The sampling
// rows and the adapter gradient go in blocking messages (sc_xfer_send / recv).
#include "pipeline.h"
#include "xfer.h"
#include "steerclear/generate.h"
#include "steerclear/monitor.h"
#include "steerclear/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef SC_HAVE_MPI
#include <mpi.h>

enum { TAG_FWD = 100, TAG_BWD = 10100, TAG_GRAD = 20100, TAG_GEN = 20101 };

struct sc_pipe {
    const sc_dist *d;
    const sc_search_run *run;
    MPI_Comm comm;
    int P, s, micro;
    sc_model view;             // this stage's slice of run->model (shares its weights)
    sc_backend *be;
    sc_gen *gen;
    sc_gen_stage *gst;
    sc_activations **acts;     // [micro]: Q's saved forward per micro-batch
    int checkpoint;
    int max_T, max_seqs, max_len, mb_seqs;
    sc_xfer_mode mode;         // how messages travel (xfer.h)
    float *hp, *hq, *dh;       // [max_T, C] backend memory (one allocation at hp)
    float *gsum;               // [2 n] backend: the next stage's partial gradient sum
    float *host;               // staged: pinned mirrors of hp, hq, dh [3 max_T C] (op->host_alloc)
    float *host_g;             // staged: pinned mirror of the adapter gradient [2 n]
    void **ev;                 // [2 micro] events (not host mode): a unit's rows written / copied
    struct pend { float *dev; size_t n; int to, tag; double *count; } *pend;   // [2 micro] sends waiting for ev[i]
    int n_pend, pend_head, n_ev;
    int n_send;                // sreq[0, n_send) posted
    int32_t *ids, *targets;    // host (max_T)
    int *rows, *seq_start;     // host (max_T), (max_seqs + 1)
    int *mb_ss;                // host (micro x (mb_seqs + 1)): each micro-batch's rebased starts
    uint64_t *streams;
    MPI_Request *rreq, *sreq;  // [2 micro] each
    // what the steps so far moved and waited (this rank)
    long steps;
    double sent_hidden, sent_gen, sent_grad, tokens, sampled, prompt_rows, seqs;
    double t_sample, t_tf, t_wait, t_wait_tf;
    int search, step;          // the step under way (messages)
    uint64_t step_allocs;      // the backend's allocations inside the steps after the first (none: a step allocates nothing)
};

#define MPI_CHECK(p, call, what) \
    do { if ((call) != MPI_SUCCESS) return sc_errorf(SC_ERR_IO, "rank %d (search group %d, pipeline stage %d): %s failed (a partner rank lost?)", \
                                                     (p)->d->rank, (p)->d->group, (p)->s, what); } while (0)

void sc_pipe_free(sc_pipe *p) {
    if (!p) return;
    sc_gen_free(p->gen);
    sc_gen_stage_free(p->gst);
    if (p->acts) for (int j = 0; j < p->micro; j++) sc_activations_free(p->acts[j]);
    free(p->acts);
    if (p->ev) for (int i = 0; i < p->n_ev; i++) p->be->op->event_destroy(p->be, p->ev[i]);
    free(p->ev); free(p->pend);
    p->be->op->free(p->be, p->hp);
    p->be->op->free(p->be, p->gsum);
    p->be->op->host_free(p->be, p->host);
    p->be->op->host_free(p->be, p->host_g);
    free(p->ids); free(p->targets); free(p->rows); free(p->seq_start); free(p->mb_ss); free(p->streams);
    free(p->rreq); free(p->sreq);
    free(p);
}

// The pinned mirror of `dev` (staged mode) within the hidden-state buffers hp, hq, dh.
static float *mirror(sc_pipe *p, float *dev) {
    return p->host + (dev - p->hp);
}

// MPI's side of a message of `dev`: the pinned mirror when staged, else dev itself.
static float *mpi_buf(sc_pipe *p, float *dev) { return p->mode == SC_XFER_STAGED ? mirror(p, dev) : dev; }

static sc_status post_isend(sc_pipe *p, float *dev, size_t n, int to, int tag, double *count) {
    if (p->n_send >= 4 * p->micro) return sc_errorf(SC_ERR_INTERNAL, "pipeline: more than %d sends in a phase", 4 * p->micro);
    MPI_CHECK(p, MPI_Isend(mpi_buf(p, dev), (int)n, MPI_FLOAT, to, tag, p->comm, &p->sreq[p->n_send++]), "sending hidden rows");
    *count += sizeof(float) * (double)n;
    return SC_OK;
}

// Post the Isend of each waiting unit whose event has passed, in order (wait: every one, blocking).
static sc_status send_flush(sc_pipe *p, int wait) {
    while (p->pend_head < p->n_pend) {
        const struct pend *q = &p->pend[p->pend_head];
        int done = 1;
        if (wait) SC_TRY(p->be->op->event_wait(p->be, p->ev[p->pend_head]));
        else SC_TRY(p->be->op->event_query(p->be, p->ev[p->pend_head], &done));
        if (!done) return SC_OK;
        SC_TRY(post_isend(p, q->dev, q->n, q->to, q->tag, q->count));
        p->pend_head++;
    }
    p->n_pend = p->pend_head = 0;
    return SC_OK;
}

// The Isend of n floats at dev, written by the ops queued so far: at once with host memory;
// otherwise behind an event (and, staged, a queued copy into the pinned mirror), posted by
// send_flush once the event has passed.
static sc_status isend(sc_pipe *p, float *dev, size_t n, int to, int tag, double *count) {
    if (p->mode == SC_XFER_HOST) return post_isend(p, dev, n, to, tag, count);
    if (p->n_pend >= p->n_ev) return sc_errorf(SC_ERR_INTERNAL, "pipeline: more than %d sends waiting for the device", p->n_ev);
    if (p->mode == SC_XFER_STAGED) SC_TRY(p->be->op->download_async(p->be, mirror(p, dev), dev, sizeof(float) * n));
    SC_TRY(p->be->op->event_record(p->be, p->ev[p->n_pend]));
    p->pend[p->n_pend++] = (struct pend){.dev = dev, .n = n, .to = to, .tag = tag, .count = count};
    return send_flush(p, 0);
}

static sc_status irecv(sc_pipe *p, float *dev, size_t n, int from, int tag, MPI_Request *r) {
    MPI_CHECK(p, MPI_Irecv(mpi_buf(p, dev), (int)n, MPI_FLOAT, from, tag, p->comm, r), "posting a receive");
    return SC_OK;
}

// Wait for a posted receive, posting the waiting sends as their events pass meanwhile; staged,
// queue the upload from the pinned mirror (the mirror is written again only in the next step,
// after sc_pipe_step's final sync).
static sc_status wait_recv(sc_pipe *p, MPI_Request *r, float *dev, size_t n) {
    const double t0 = sc_now_seconds();
    for (;;) {
        if (p->pend_head == p->n_pend) {
            MPI_CHECK(p, MPI_Wait(r, MPI_STATUS_IGNORE), "receiving hidden rows");
            break;
        }
        int flag = 0;
        MPI_CHECK(p, MPI_Test(r, &flag, MPI_STATUS_IGNORE), "receiving hidden rows");
        if (flag) break;
        SC_TRY(send_flush(p, 0));
    }
    p->t_wait += sc_now_seconds() - t0;
    if (p->mode == SC_XFER_STAGED) SC_TRY(p->be->op->upload_async(p->be, dev, mirror(p, dev), sizeof(float) * n));
    return SC_OK;
}

// Blocking messages (sampling rows, the adapter gradient): the waiting sends go first (a partner
// may need them before it can answer), then xfer.h's blocking send / receive.
static sc_status send_now(sc_pipe *p, float *dev, float *pin, size_t n, int to, int tag, double *count, const char *what) {
    SC_TRY(send_flush(p, 1));
    SC_TRY(sc_xfer_send(p->be, p->mode, dev, pin, n, to, tag, p->comm, what));
    *count += sizeof(float) * (double)n;
    return SC_OK;
}

static sc_status recv_now(sc_pipe *p, float *dev, float *pin, size_t n, int from, int tag, const char *what) {
    SC_TRY(send_flush(p, 1));
    const double t0 = sc_now_seconds();
    SC_TRY(sc_xfer_recv(p->be, p->mode, dev, pin, n, from, tag, p->comm, what));
    p->t_wait += sc_now_seconds() - t0;
    return SC_OK;
}

sc_status sc_pipe_create(const sc_dist *d, const sc_search_run *run, sc_pipe **out) {
    *out = NULL;
    if (!d->group_comm || d->stages < 2 || !d->first) return sc_errorf(SC_ERR_INTERNAL, "pipeline: no group communicator or stage plan");
    const sc_model *m = run->model;
    const sc_search_config *cfg = run->cfg;
    const int f = d->first[d->stage], l = d->last[d->stage], L = m->cfg.n_layers;
    if (m->first > f || m->last < l)
        return sc_errorf(SC_ERR_INTERNAL, "pipeline stage %d: the loaded blocks [%d,%d) do not hold its slice [%d,%d)", d->stage, m->first, m->last, f, l);
    sc_pipe *p = sc_calloc(1, sizeof *p, "pipeline stage");
    if (!p) return SC_ERR_MEM;
    p->d = d;
    p->run = run;
    p->comm = *(MPI_Comm *)d->group_comm;
    p->P = d->stages;
    p->s = d->stage;
    p->be = run->be;
    char why[512];
    sc_status xst = sc_xfer_choose(run->be, &p->mode, why, sizeof why);
    if (xst) { free(p); return xst; }
    // the slice as a model of its own: only its blocks run (a view: the weights stay where they are)
    sc_dist_slice_view(d, m, &p->view);
    const sc_model *v = &p->view;
    sc_status st = SC_OK;
    // the longest train prompt sizes everything (every stage tokenizes the same set)
    int max_prompt = 1;
    for (size_t i = 0; i < run->train->n && !st; i++) {
        int32_t *ids = NULL;
        size_t k = 0;
        const char *text = run->train->items[i].full_prompt;
        if (!(st = sc_tok_encode(run->tok, text, strlen(text), &ids, &k)) && (int)k > max_prompt) max_prompt = (int)k;
        free(ids);
    }
    const int B = cfg->batch_size, C = m->cfg.hidden;
    p->micro = d->micro > 0 ? d->micro : (B < 4 * p->P ? B : 4 * p->P);
    if (p->micro > B) p->micro = B;
    p->max_seqs = B;
    p->max_len = max_prompt + cfg->max_new_tokens;
    p->max_T = B * p->max_len;
    p->mb_seqs = (B + p->micro - 1) / p->micro;
    p->checkpoint = cfg->checkpoint_activations;
    if (p->checkpoint < 0) p->checkpoint = (double)sc_activations_estimate(v, p->max_T, 0) > p->be->memory_budget / 3.0;
    sc_gen_plan plan = {.max_seqs = B, .max_prompt = max_prompt, .max_new = cfg->max_new_tokens};
    const size_t nAB = 2 * (size_t)(cfg->adapter == SC_ADAPTER_SHARED ? 1 : L) * C * cfg->rank;
    if (!st) st = sc_gen_create(&plan, &p->gen);
    if (!st) st = sc_gen_stage_create(v, p->be, &plan, &p->gst);
    if (!st && !(p->acts = calloc((size_t)p->micro, sizeof *p->acts))) st = sc_errorf(SC_ERR_MEM, "out of memory");
    for (int j = 0; j < p->micro && !st; j++) st = sc_activations_create(v, p->be, p->mb_seqs * p->max_len, p->mb_seqs, p->checkpoint, &p->acts[j]);
    if (!st) st = sc_backend_alloc_floats(p->be, 3 * (size_t)p->max_T * C, "pipeline hidden states", &p->hp);
    if (!st) st = sc_backend_alloc_floats(p->be, nAB, "pipeline gradient sums", &p->gsum);
    if (!st) {
        p->hq = p->hp + (size_t)p->max_T * C;
        p->dh = p->hq + (size_t)p->max_T * C;
        if (p->mode == SC_XFER_STAGED) {
            st = p->be->op->host_alloc(p->be, sizeof(float) * 3 * (size_t)p->max_T * C, "the pipeline's pinned staging of hidden rows", (void **)&p->host);
            if (!st) st = p->be->op->host_alloc(p->be, sizeof(float) * nAB, "the pipeline's pinned staging of adapter gradients", (void **)&p->host_g);
        }
        if (!st && p->mode != SC_XFER_HOST) {
            p->n_ev = 2 * p->micro;
            p->ev = calloc((size_t)p->n_ev, sizeof *p->ev);
            p->pend = calloc((size_t)p->n_ev, sizeof *p->pend);
            if (!p->ev || !p->pend) st = sc_errorf(SC_ERR_MEM, "out of memory for the pipeline's events");
            for (int i = 0; i < p->n_ev && !st; i++) st = p->be->op->event_create(p->be, &p->ev[i]);
            if (st && p->ev) { for (int i = 0; i < p->n_ev; i++) if (p->ev[i]) p->be->op->event_destroy(p->be, p->ev[i]); free(p->ev); p->ev = NULL; }
        }
        p->ids = malloc(sizeof(int32_t) * (size_t)p->max_T);
        p->targets = malloc(sizeof(int32_t) * (size_t)p->max_T);
        p->rows = malloc(sizeof(int) * (size_t)p->max_T);
        p->seq_start = malloc(sizeof(int) * (size_t)(B + 1));
        p->mb_ss = malloc(sizeof(int) * (size_t)p->micro * (size_t)(p->mb_seqs + 1));
        p->streams = malloc(sizeof(uint64_t) * (size_t)B);
        p->rreq = malloc(sizeof(MPI_Request) * 2 * (size_t)p->micro);
        p->sreq = malloc(sizeof(MPI_Request) * 4 * (size_t)p->micro);
        if (!st && (!p->ids || !p->targets || !p->rows || !p->seq_start || !p->mb_ss || !p->streams || !p->rreq || !p->sreq))
            st = sc_errorf(SC_ERR_MEM, "out of memory for the pipeline's batch layout");
    }
    if (!st) st = sc_arena_reserve(&p->be->ws, sc_forward_workspace_estimate(v, p->max_T) + (v->has_head ? sc_divergence_loss_workspace(v, cfg->loss_chunk) : 0));
    if (st) { sc_pipe_free(p); return st; }
    sc_log(SC_LOG_INFO, "pipeline transfers: %s (stage %d of search group %d; %s)", sc_xfer_mode_name(p->mode), p->s, d->group, why);
    sc_log(SC_LOG_INFO, "pipeline stage %d of %d (search group %d): blocks [%d, %d)%s%s; %d micro-batches per step (GPipe bubble (P-1)/(m+P-1) = %.0f%%); "
                        "saved activations %.2f GiB (%s)",
           p->s, p->P, d->group, f, l, v->has_embed ? " + embedding" : "", v->has_head ? " + head and loss" : "", p->micro,
           100.0 * (p->P - 1) / (p->micro + p->P - 1), p->micro * (double)sc_activations_bytes(p->acts[0]) / 1073741824.0,
           p->checkpoint ? "blocks recomputed in backward" : "all blocks kept");
    *out = p;
    return SC_OK;
}

// Steps 1-6 of the header; the record and the adapter as sc_search_step leaves them.
static sc_status step_body(sc_pipe *p, sc_search_state *state, const int32_t *const *prompts, const int *prompt_len,
                           const int32_t *prompt_idx, int n) {
    const sc_search_run *run = p->run;
    const sc_search_config *cfg = run->cfg;
    const sc_model *m = &p->view;
    sc_backend *be = p->be;
    const int C = m->cfg.hidden, step = state->steps_done, P = p->P, s = p->s, last = P - 1;
    sc_adapter *ad = state->adapter;
    sc_hook hook = sc_adapter_hook(ad);
    if (step >= state->steps_total) return sc_errorf(SC_ERR_INTERNAL, "search %d: all %d steps are done", state->search, state->steps_total);
    if (n > p->max_seqs || n > state->batch) return sc_errorf(SC_ERR_INTERNAL, "pipeline step: %d prompts, planned for %d", n, p->max_seqs);
    sc_step_record *rec = &state->steps[step];
    const double t0 = sc_now_seconds();

    // 1. sampling: hidden rows stage to stage, tokens from the last stage to every stage
    int32_t stops[2];
    sc_sample_opts so;
    sc_sample_opts_make(&so, run->tok, stops, cfg->max_new_tokens, cfg->temperature, cfg->top_k, cfg->top_p,
                        sc_search_sample_seed(state->seed, step));
    for (int i = 0; i < n; i++) p->streams[i] = (uint64_t)prompt_idx[i];
    SC_TRY(sc_gen_start(p->gen, prompts, prompt_len, n, p->streams, NULL, &so));
    while (!sc_gen_done(p->gen)) {
        const sc_batch *b = sc_gen_batch(p->gen);
        const size_t rows = (size_t)b->seq_start[b->n_seq] * C;
        if (s > 0) SC_TRY(recv_now(p, p->gst->hidden, p->host, rows, s - 1, TAG_GEN, "sampling rows"));
        SC_TRY(sc_gen_stage_forward(p->gst, p->gen, &hook));
        if (s < last) SC_TRY(send_now(p, p->gst->hidden, p->host, rows, s + 1, TAG_GEN, &p->sent_gen, "sampling rows"));
        else SC_TRY(sc_gen_stage_sample(p->gst, p->gen, &so));
        const int ns = sc_gen_n_sample(p->gen);
        MPI_CHECK(p, MPI_Bcast(p->gst->tokens, ns, MPI_INT32_T, last, p->comm), "sending the sampled tokens to every stage");
        SC_TRY(sc_gen_advance(p->gen, p->gst->tokens));
    }
    const double t1 = sc_now_seconds(), w1 = p->t_wait;

    // the batch of whole sequences, the counted rows and their targets (as sc_search_step)
    int n_rows = 0, g = 0;
    p->seq_start[0] = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        const int32_t *gen = sc_gen_output(p->gen, i, &k, NULL);
        const int s0 = p->seq_start[i];
        if (s0 + prompt_len[i] + k > p->max_T) return sc_errorf(SC_ERR_INTERNAL, "pipeline step: %d tokens, planned for %d", s0 + prompt_len[i] + k, p->max_T);
        memcpy(p->ids + s0, prompts[i], sizeof(int32_t) * (size_t)prompt_len[i]);
        memcpy(p->ids + s0 + prompt_len[i], gen, sizeof(int32_t) * (size_t)k);
        p->seq_start[i + 1] = s0 + prompt_len[i] + k;
        for (int j = 0; j < k; j++) {
            p->rows[n_rows] = s0 + prompt_len[i] - 1 + j;
            p->targets[n_rows++] = gen[j];
        }
        rec->prompt_idx[i] = prompt_idx[i];
        rec->gen_len[i] = k;
        memcpy(rec->gen + g, gen, sizeof(int32_t) * (size_t)k);
        g += k;
        p->prompt_rows += prompt_len[i];
    }
    const int T = p->seq_start[n];
    p->tokens += T;
    p->seqs += n;
    p->sampled += g;

    // 2. micro-batches of whole sequences: j holds sequences [j n / mm, (j + 1) n / mm)
    const int mm = p->micro < n ? p->micro : n;
#define MB_A(j) ((j) * n / mm)
#define MB_ROW0(j) (p->seq_start[MB_A(j)])
#define MB_ROWS(j) (p->seq_start[MB_A((j) + 1)] - p->seq_start[MB_A(j)])
    for (int j = 0; j < mm; j++) {
        int *ss = p->mb_ss + (size_t)j * (p->mb_seqs + 1);
        for (int i = 0; i <= MB_A(j + 1) - MB_A(j); i++) ss[i] = p->seq_start[MB_A(j) + i] - MB_ROW0(j);
    }
    p->n_send = 0;
    if (s > 0)
        for (int u = 0; u < 2 * mm; u++) {
            const int j = u % mm;
            SC_TRY(irecv(p, (u < mm ? p->hp : p->hq) + (size_t)MB_ROW0(j) * C, (size_t)MB_ROWS(j) * C, s - 1, TAG_FWD + u, &p->rreq[u]));
        }
    for (int u = 0; u < 2 * mm; u++) {   // P's micro-batches, then Q's
        const int j = u % mm, q = u >= mm;
        float *h = (q ? p->hq : p->hp) + (size_t)MB_ROW0(j) * C;
        const size_t cnt = (size_t)MB_ROWS(j) * C;
        if (s > 0) SC_TRY(wait_recv(p, &p->rreq[u], h, cnt));
        sc_batch bj = {.n_seq = MB_A(j + 1) - MB_A(j), .seq_start = p->mb_ss + (size_t)j * (p->mb_seqs + 1)};
        SC_TRY(sc_forward(m, be, &bj, m->has_embed ? p->ids + MB_ROW0(j) : NULL, h, NULL, q ? &hook : NULL, q ? p->acts[j] : NULL));
        if (s < last) SC_TRY(isend(p, h, cnt, s + 1, TAG_FWD + u, &p->sent_hidden));
    }
    SC_TRY(send_flush(p, 1));

    // 3. the loss over the whole batch on the last stage
    double stats[4] = {0, 0, 0, 0};
    if (s == last) {
        sc_loss_stats ls;
        SC_TRY(be->op->memset(be, p->dh, 0, sizeof(float) * (size_t)T * C));
        SC_TRY(sc_divergence_loss(m, be, p->hp, p->hq, p->rows, p->targets, n_rows, cfg->alpha, cfg->beta, cfg->loss_chunk, p->dh, &ls));
        stats[0] = ls.loss; stats[1] = ls.kl; stats[2] = ls.nll; stats[3] = (double)ls.n_pos;
    }
    MPI_CHECK(p, MPI_Waitall(p->n_send, p->sreq, MPI_STATUSES_IGNORE), "sending hidden rows");
    p->n_send = 0;

    // 4. the backward, micro-batches last to first; 5. the adapter gradient in stage order
    const size_t nAB = sc_adapter_numel_A(ad) + sc_adapter_numel_B(ad);
    const int chain = mm == 1 && s < last;   // start from the next stage's sum: one process's order
    if (s < last)
        for (int j = 0; j < mm; j++) SC_TRY(irecv(p, p->dh + (size_t)MB_ROW0(j) * C, (size_t)MB_ROWS(j) * C, s + 1, TAG_BWD + j, &p->rreq[j]));
    if (!chain) SC_TRY(sc_adapter_zero_grad(ad));
    for (int j = mm - 1; j >= 0; j--) {
        float *dh = p->dh + (size_t)MB_ROW0(j) * C;
        const size_t cnt = (size_t)MB_ROWS(j) * C;
        if (s < last) SC_TRY(wait_recv(p, &p->rreq[j], dh, cnt));
        if (chain) SC_TRY(recv_now(p, ad->dA, p->host_g, nAB, s + 1, TAG_GRAD, "the adapter gradient"));
        SC_TRY(sc_backward(m, be, p->acts[j], &hook, dh));
        if (s > 0) SC_TRY(isend(p, dh, cnt, s - 1, TAG_BWD + j, &p->sent_hidden));
    }
    SC_TRY(send_flush(p, 1));
    if (!chain && s < last) {   // this stage's gradient + the sum of the stages after it
        SC_TRY(recv_now(p, p->gsum, p->host_g, nAB, s + 1, TAG_GRAD, "the adapter gradient"));
        SC_TRY(be->op->add(be, ad->dA, p->gsum, (int64_t)nAB));
    }
    if (s > 0) SC_TRY(send_now(p, ad->dA, p->host_g, nAB, s - 1, TAG_GRAD, &p->sent_grad, "the adapter gradient"));
    // stage 0 has the sum: every stage takes it (a copy: the same bits everywhere)
    float *gh = p->mode == SC_XFER_STAGED ? p->host_g : ad->dA;
    if (p->mode == SC_XFER_STAGED && s == 0) SC_TRY(be->op->download(be, gh, ad->dA, sizeof(float) * nAB));
    if (p->mode == SC_XFER_DEVICE) SC_TRY(be->op->sync(be));   // MPI reads (stage 0) or writes the device's dA
    MPI_CHECK(p, MPI_Bcast(gh, (int)nAB, MPI_FLOAT, 0, p->comm), "broadcasting the adapter gradient");
    if (p->mode == SC_XFER_STAGED && s > 0) SC_TRY(be->op->upload(be, ad->dA, gh, sizeof(float) * nAB));
    if (s == 0) p->sent_grad += (P - 1) * sizeof(float) * (double)nAB;
    MPI_CHECK(p, MPI_Bcast(stats, 4, MPI_DOUBLE, last, p->comm), "broadcasting the loss");
    MPI_CHECK(p, MPI_Waitall(p->n_send, p->sreq, MPI_STATUSES_IGNORE), "sending hidden-state gradients");
    p->n_send = 0;
#undef MB_A
#undef MB_ROW0
#undef MB_ROWS

    // 6. AdamW on every stage, then the adapter after the step into the record
    const sc_loss_stats ls = {.loss = stats[0], .kl = stats[1], .nll = stats[2], .n_pos = (int64_t)stats[3]};
    SC_TRY(sc_search_finish_step(be, cfg, state, &ls));
    // the queue is empty before the next step posts receives into the buffers (and mirrors) this
    // one used: a queued upload or op still reading them cannot race the next step's messages
    SC_TRY(be->op->sync(be));
    p->steps++;
    p->t_sample += t1 - t0;
    p->t_tf += sc_now_seconds() - t1;
    p->t_wait_tf += p->t_wait - w1;
    return SC_OK;
}

sc_status sc_pipe_step(void *pipe, sc_search_state *state, const int32_t *const *prompts, const int *prompt_len,
                       const int32_t *prompt_idx, int n) {
    sc_pipe *p = pipe;
    p->search = state->search;
    p->step = state->steps_done;
    const uint64_t a0 = p->be->stats.n_alloc;
    sc_status st = step_body(p, state, prompts, prompt_len, prompt_idx, n);
    if (p->steps > 1) p->step_allocs += p->be->stats.n_alloc - a0;
    if (st) {   // the other stages wait for this one inside the step: end the job
        sc_log(SC_LOG_ERROR, "rank %d (search group %d, pipeline stage %d), search %d step %d: %s; aborting the job (the other stages of "
                             "its pipeline cannot go on without it; the checkpoints hold the steps before this one: --resume continues)",
               p->d->rank, p->d->group, p->s, state->search, p->step, sc_last_error());
        sc_dist_abort(p->d, st == SC_ERR_ARG ? 2 : 1);
    }
    return SC_OK;
}

sc_status sc_pipe_agree(sc_pipe *p, int want, int *any) {
    int w = want ? 1 : 0;
    *any = w;
    MPI_CHECK(p, MPI_Allreduce(&w, any, 1, MPI_INT, MPI_MAX, p->comm), "agreeing on a stop");
    return SC_OK;
}

void sc_pipe_report(sc_pipe *p) {
    if (!p || p->steps == 0) return;
    const double C = p->view.cfg.hidden, k = 1.0 / p->steps;
    sc_log(SC_LOG_INFO, "pipeline stage %d: %ld steps, %.1f ms each (sampling %.1f ms, teacher-forced + backward %.1f ms, of it waiting for "
                        "neighbours %.1f ms); sent per step: %.1f KiB hidden states, %.1f KiB sampling rows, %.1f KiB adapter gradients; "
                        "backend allocations in the steps after the first: %llu",
           p->s, p->steps, 1e3 * k * (p->t_sample + p->t_tf), 1e3 * k * p->t_sample, 1e3 * k * p->t_tf, 1e3 * k * p->t_wait_tf,
           k * p->sent_hidden / 1024, k * p->sent_gen / 1024, k * p->sent_grad / 1024,
           (unsigned long long)p->step_allocs);
    // the group's totals against the model: 3 x T x C x 4 B per boundary for the teacher-forced
    // passes, one hidden row per forwarded token per boundary while sampling
    double mine[5] = {p->sent_hidden, p->sent_gen, p->t_wait_tf, p->t_tf, p->sent_grad}, sum[5] = {0};
    if (MPI_Reduce(mine, sum, 5, MPI_DOUBLE, MPI_SUM, 0, p->comm) != MPI_SUCCESS) return;
    if (p->s != 0) return;
    const double model_tf = 3.0 * p->tokens * C * 4 * (p->P - 1) * k;
    const double model_gen = (p->prompt_rows + p->sampled - p->seqs) * C * 4 * (p->P - 1) * k;
    sc_log(SC_LOG_INFO, "pipeline group %d: per step %.0f tokens (%.0f sampled); bytes moved per step: teacher-forced %.0f (model 3 x T x C x 4 x (P-1) = %.0f), "
                        "sampling %.0f (model (prompt + sampled - sequences) x C x 4 x (P-1) = %.0f: one row per forwarded token; a sequence's last token is never forwarded), "
                        "adapter gradients %.0f; teacher-forced phase idle %.1f%% of the stages' time (GPipe bubble (P-1)/(m+P-1) = %.1f%% at m = %d)",
           p->d->group, p->tokens * k, p->sampled * k, sum[0] * k, model_tf, sum[1] * k, model_gen, sum[4] * k,
           sum[3] > 0 ? 100.0 * sum[2] / sum[3] : 0.0, 100.0 * (p->P - 1) / (p->micro + p->P - 1), p->micro);
}

#else   // without MPI there are no pipelines (P > 1 needs P ranks)

struct sc_pipe { int unused; };
sc_status sc_pipe_create(const sc_dist *d, const sc_search_run *run, sc_pipe **out) {
    (void)d; (void)run;
    *out = NULL;
    return sc_errorf(SC_ERR_INTERNAL, "pipeline stages need MPI");
}
void sc_pipe_free(sc_pipe *p) { (void)p; }
sc_status sc_pipe_step(void *pipe, sc_search_state *state, const int32_t *const *prompts, const int *prompt_len,
                       const int32_t *prompt_idx, int n) {
    (void)pipe; (void)state; (void)prompts; (void)prompt_len; (void)prompt_idx; (void)n;
    return sc_errorf(SC_ERR_INTERNAL, "pipeline stages need MPI");
}
sc_status sc_pipe_agree(sc_pipe *p, int want, int *any) { (void)p; *any = want; return SC_OK; }
void sc_pipe_report(sc_pipe *p) { (void)p; }
#endif
