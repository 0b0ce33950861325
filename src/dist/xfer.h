// xfer.h — how backend memory travels between the stages of a pipeline (src/dist, private):
// the transfer mode of a rank's messages, and blocking sends and receives in that mode.
//
//  - host memory: the backend's memory is host memory (the CPU backend): MPI reads and writes
//    the backend's arrays directly.
//  - CUDA-aware MPI: the backend is CUDA and the MPI library takes device pointers
//    (MPIX_Query_cuda_support() returns 1 at run time, or $SC_CUDA_AWARE_MPI=1): MPI reads and
//    writes device memory directly, after the stream has finished writing it (op->sync / an event).
//  - pinned host staging: otherwise, when backend memory is not host memory (a GPU without a
//    CUDA-aware MPI; the CPU backend's strict mode): messages go through page-locked host copies
//    (op->host_alloc) filled and emptied by queued copies (op->download_async / upload_async).
//
// $SC_CUDA_AWARE_MPI=0 forces staging; =1 forces CUDA-aware MPI whenever backend memory is not
// host memory (an MPI that takes device pointers but does not say so, such as MPICH or Cray MPICH
// built with GPU support; with the CPU backend's strict mode it exercises this path on a CPU).
// The choice is each rank's own: MPI pairs a device buffer on one side with a host buffer on the
// other, so the stages of a pipeline need not agree.
#ifndef STEERCLEAR_DIST_XFER_H
#define STEERCLEAR_DIST_XFER_H

#include "steerclear/backend.h"

typedef enum { SC_XFER_HOST = 0, SC_XFER_STAGED = 1, SC_XFER_DEVICE = 2 } sc_xfer_mode;

// "host memory", "pinned host staging", "CUDA-aware MPI"
const char *sc_xfer_mode_name(sc_xfer_mode m);

// The mode for messages of be's memory (after MPI_Init); `why` (n bytes) gets the reason in words
// for the log. SC_ERR_ARG when $SC_CUDA_AWARE_MPI is set to something other than 0 or 1.
sc_status sc_xfer_choose(const sc_backend *be, sc_xfer_mode *mode, char *why, size_t n);

#ifdef SC_HAVE_MPI
#include <mpi.h>
// Blocking messages of n floats of backend memory `dev`: in staged mode through `pin` (pinned
// host memory of at least n floats; unused otherwise). `what` names the message in errors.
sc_status sc_xfer_send(sc_backend *be, sc_xfer_mode mode, const float *dev, float *pin, size_t n, int to, int tag, MPI_Comm comm,
                       const char *what);
sc_status sc_xfer_recv(sc_backend *be, sc_xfer_mode mode, float *dev, float *pin, size_t n, int from, int tag, MPI_Comm comm,
                       const char *what);
#endif

#endif
