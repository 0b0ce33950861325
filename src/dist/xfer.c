// xfer.c — the transfer mode of stage-to-stage messages and blocking sends and receives in it
// (xfer.h). The CUDA-aware check is Open MPI's: <mpi-ext.h> defines MPIX_CUDA_AWARE_SUPPORT (what
// the headers this was compiled against were built with) and declares MPIX_Query_cuda_support()
// (what the library loaded at run time does). The run-time answer decides: the library a job runs
// with (a site's Open MPI built with CUDA or UCX) need not be the one the headers came from.
#include "xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SC_HAVE_MPI
#include <mpi.h>
#if defined(__has_include)
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif
#endif
#endif

const char *sc_xfer_mode_name(sc_xfer_mode m) {
    return m == SC_XFER_DEVICE ? "CUDA-aware MPI" : m == SC_XFER_STAGED ? "pinned host staging" : "host memory";
}

// What the MPI library says: 1 CUDA-aware, 0 not, -1 it cannot say (no MPIX_Query_cuda_support).
static int mpi_cuda_runtime(void) {
#if defined(SC_HAVE_MPI) && defined(MPIX_CUDA_AWARE_SUPPORT)
    return MPIX_Query_cuda_support() == 1;
#else
    return -1;
#endif
}
static int mpi_cuda_compiled(void) {
#if defined(SC_HAVE_MPI) && defined(MPIX_CUDA_AWARE_SUPPORT)
    return MPIX_CUDA_AWARE_SUPPORT ? 1 : 0;
#else
    return -1;
#endif
}

sc_status sc_xfer_choose(const sc_backend *be, sc_xfer_mode *mode, char *why, size_t n) {
    const char *env = getenv("SC_CUDA_AWARE_MPI");
    int force = -1;
    if (env && *env) {
        if (!strcmp(env, "0")) force = 0;
        else if (!strcmp(env, "1")) force = 1;
        else return sc_errorf(SC_ERR_ARG, "SC_CUDA_AWARE_MPI='%s': use 0 (stage messages through pinned host memory) or 1 (send device memory "
                              "directly: the MPI library must be CUDA-aware), or unset it to ask MPIX_Query_cuda_support()", env);
    }
    if (!be->separate_memory) {
        *mode = SC_XFER_HOST;
        snprintf(why, n, "the %s backend's memory is host memory", be->name ? be->name : "cpu");
        return SC_OK;
    }
    const int rt = mpi_cuda_runtime(), ct = mpi_cuda_compiled();
    char mpi[160];
    if (rt < 0) snprintf(mpi, sizeof mpi, "this MPI has no MPIX_Query_cuda_support() (no Open MPI <mpi-ext.h> at build time)");
    else snprintf(mpi, sizeof mpi, "MPIX_Query_cuda_support() = %d; built against headers with MPIX_CUDA_AWARE_SUPPORT = %d", rt, ct);
    if (force == 1) {
        *mode = SC_XFER_DEVICE;
        snprintf(why, n, "SC_CUDA_AWARE_MPI=1 (%s)", mpi);
    } else if (force == 0) {
        *mode = SC_XFER_STAGED;
        snprintf(why, n, "SC_CUDA_AWARE_MPI=0 (%s)", mpi);
    } else if (be->device == SC_DEVICE_CUDA && rt == 1) {
        *mode = SC_XFER_DEVICE;
        snprintf(why, n, "%s", mpi);
    } else {
        *mode = SC_XFER_STAGED;
        snprintf(why, n, "%s memory is not host memory and %s; SC_CUDA_AWARE_MPI=1 forces device pointers", be->device == SC_DEVICE_CUDA ? "GPU" : "backend",
                 be->device == SC_DEVICE_CUDA ? (rt == 0 ? "the MPI library is not CUDA-aware" : "the MPI library cannot say whether it is CUDA-aware")
                                              : "only a CUDA backend sends device memory by default");
        size_t k = strlen(why);
        if (k < n) snprintf(why + k, n - k, " (%s)", mpi);
    }
    return SC_OK;
}

#ifdef SC_HAVE_MPI
sc_status sc_xfer_send(sc_backend *be, sc_xfer_mode mode, const float *dev, float *pin, size_t n, int to, int tag, MPI_Comm comm,
                       const char *what) {
    const float *buf = dev;
    if (mode == SC_XFER_STAGED) {   // a copy from the device's queue: it waits for the ops that wrote dev
        SC_TRY(be->op->download(be, pin, dev, sizeof(float) * n));
        buf = pin;
    } else if (mode == SC_XFER_DEVICE) SC_TRY(be->op->sync(be));   // MPI reads device memory: the stream must have written it
    if (MPI_Send(buf, (int)n, MPI_FLOAT, to, tag, comm) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "sending %s to rank %d of the pipeline failed (%s; a partner rank lost?)", what, to, sc_xfer_mode_name(mode));
    return SC_OK;
}

sc_status sc_xfer_recv(sc_backend *be, sc_xfer_mode mode, float *dev, float *pin, size_t n, int from, int tag, MPI_Comm comm,
                       const char *what) {
    // MPI writes device memory directly: no queued op may still read or write it
    if (mode == SC_XFER_DEVICE) SC_TRY(be->op->sync(be));
    if (MPI_Recv(mode == SC_XFER_STAGED ? pin : dev, (int)n, MPI_FLOAT, from, tag, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return sc_errorf(SC_ERR_IO, "receiving %s from rank %d of the pipeline failed (%s; a partner rank lost?)", what, from, sc_xfer_mode_name(mode));
    if (mode == SC_XFER_STAGED) SC_TRY(be->op->upload(be, dev, pin, sizeof(float) * n));
    return SC_OK;
}
#endif
