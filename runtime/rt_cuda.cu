/* The cuda back end of libloomrt (rt_cuda.h): device set-up, the arena and
 * weights blob in device memory, copies ordered with the compute stream, and
 * the check of every CUDA call with a hint. Host code only. */
#include "rt_cuda.h"

#include <stdlib.h>
#include <string.h>

static cudaStream_t compute, copy, copy_out, copy_in;
static cudaEvent_t computed, copied; /* compute reached an upload; the upload is done */

static const char *hint(cudaError_t e)
{
    switch (e) {
    case cudaErrorNoDevice:
        return "no CUDA device is visible: run on a machine with an NVIDIA GPU (check nvidia-smi and "
               "CUDA_VISIBLE_DEVICES), or build with `make EMU=1` to run on the CPU";
    case cudaErrorInsufficientDriver:
        return "the NVIDIA driver is older than the CUDA runtime this program was built with, or absent: update "
               "the driver, or, on a machine without a GPU, build with `make EMU=1` to run on the CPU";
    case cudaErrorMemoryAllocation:
        return "the GPU is out of memory: free it (nvidia-smi shows what uses it), or compile with a smaller "
               "--budget";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
        return "the program was not built for this GPU: rebuild with `make ARCH=sm_XY` for its compute "
               "capability X.Y";
    case cudaErrorInvalidConfiguration:
        return "a kernel launch has an invalid grid or block (a loom bug: please report it with the model)";
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
        return "a kernel failed (an out-of-range access: a loom bug; run with CUDA_LAUNCH_BLOCKING=1 and "
               "compute-sanitizer to find it)";
    default:
        return "see the CUDA documentation of this error";
    }
}

int rt_cuda_check(int err, const char *file, int line, const char *call)
{
    if (err == (int)cudaSuccess) return 0;
    cudaError_t e = (cudaError_t)err;
    return rt_fail("%s:%d: %s: %s (%s): %s", file, line, call, cudaGetErrorName(e), cudaGetErrorString(e),
                   hint(e));
}

cudaStream_t rt_cuda_stream(void) { return compute; }

static int cuda_init(void)
{
    int n = 0;
    if (RT_CUDA(cudaGetDeviceCount(&n))) return -1;
    if (n < 1) return rt_cuda_check((int)cudaErrorNoDevice, __FILE__, __LINE__, "cudaGetDeviceCount");
    if (RT_CUDA(cudaSetDevice(0)) || RT_CUDA(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking)) ||
        RT_CUDA(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking)) ||
        RT_CUDA(cudaStreamCreateWithFlags(&copy_out, cudaStreamNonBlocking)) ||
        RT_CUDA(cudaStreamCreateWithFlags(&copy_in, cudaStreamNonBlocking)) ||
        RT_CUDA(cudaEventCreateWithFlags(&computed, cudaEventDisableTiming)) ||
        RT_CUDA(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming)))
        return -1;
    return 0;
}

static int cuda_memory_check(int64_t arena_bytes, int64_t weights_bytes)
{
    size_t free_b = 0, total_b = 0;
    if (RT_CUDA(cudaMemGetInfo(&free_b, &total_b))) return -1;
    int64_t need = arena_bytes + weights_bytes + RT_CUDA_GEMM_WS_BYTES;
    if ((uint64_t)need <= (uint64_t)free_b) return 0;
    return rt_fail("the program needs %lld bytes of GPU memory (arena %lld, weights and optimizer state %lld, "
                   "cuBLASLt workspace %lld), but the GPU has %llu bytes free of %llu: free the GPU (nvidia-smi "
                   "shows what uses it), or compile with a smaller --budget (loom plan shows the least feasible one)",
                   (long long)need, (long long)arena_bytes, (long long)weights_bytes, (long long)RT_CUDA_GEMM_WS_BYTES,
                   (unsigned long long)free_b, (unsigned long long)total_b);
}

static char *cuda_alloc(int64_t bytes)
{
    void *p = NULL;
    size_t n = (size_t)(bytes + 63) / 64 * 64;
    if (RT_CUDA(cudaMalloc(&p, n ? n : 64))) return NULL;
    if (RT_CUDA(cudaMemset(p, 0, n ? n : 64))) {
        cudaFree(p);
        return NULL;
    }
    return (char *)p;
}

static void cuda_release(char *p) { cudaFree(p); }

static int cuda_upload(char *dst, const void *src, size_t n)
{
    if (!n) return 0;
    return RT_CUDA(cudaEventRecord(computed, compute)) || RT_CUDA(cudaStreamWaitEvent(copy, computed, 0)) ||
                   RT_CUDA(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, copy)) ||
                   RT_CUDA(cudaEventRecord(copied, copy)) || RT_CUDA(cudaStreamWaitEvent(compute, copied, 0))
               ? -1
               : 0;
}

static int cuda_download(void *dst, const char *src, size_t n)
{
    if (!n) return 0;
    return RT_CUDA(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, compute)) ||
                   RT_CUDA(cudaStreamSynchronize(compute))
               ? -1
               : 0;
}

static int cuda_sync(void)
{
    return RT_CUDA(cudaStreamSynchronize(copy)) || RT_CUDA(cudaStreamSynchronize(copy_out)) ||
                   RT_CUDA(cudaStreamSynchronize(copy_in)) || RT_CUDA(cudaStreamSynchronize(compute))
               ? -1
               : 0;
}

static char *cuda_alloc_host(int64_t bytes)
{
    void *p = NULL;
    size_t n = (size_t)(bytes + 63) / 64 * 64;
    if (RT_CUDA(cudaHostAlloc(&p, n ? n : 64, cudaHostAllocDefault))) return NULL;
    memset(p, 0, n ? n : 64);
    return (char *)p;
}

static void cuda_release_host(char *p) { cudaFreeHost(p); }

const rt_device rt_device_cuda = {"cuda", cuda_init, cuda_memory_check, cuda_alloc, cuda_release,
                                  cuda_upload, cuda_download, cuda_sync, cuda_alloc_host, cuda_release_host};

/* ---- offload's copies: per copy an event that marks it done, made at its first use ---- */

typedef struct {
    cudaEvent_t *ev;
    int n;
} Events;
static Events out_done, in_done;

static cudaEvent_t *event(Events *e, int k)
{
    if (k < 0) return NULL;
    if (k >= e->n) {
        int n = k + 16;
        cudaEvent_t *ev = (cudaEvent_t *)realloc(e->ev, (size_t)n * sizeof *ev);
        if (!ev) {
            rt_fail("out of memory (the events of %d copies)", n);
            return NULL;
        }
        for (int i = e->n; i < n; i++) ev[i] = NULL;
        e->ev = ev, e->n = n;
    }
    if (!e->ev[k] && RT_CUDA(cudaEventCreateWithFlags(&e->ev[k], cudaEventDisableTiming))) return NULL;
    return &e->ev[k];
}

int rt_cuda_copy_out(int k, void *host, const void *dev, size_t n)
{
    cudaEvent_t *done = event(&out_done, k);
    return !done || RT_CUDA(cudaEventRecord(computed, compute)) || RT_CUDA(cudaStreamWaitEvent(copy_out, computed, 0)) ||
                   RT_CUDA(cudaMemcpyAsync(host, dev, n, cudaMemcpyDeviceToHost, copy_out)) ||
                   RT_CUDA(cudaEventRecord(*done, copy_out))
               ? -1
               : 0;
}

int rt_cuda_copy_out_wait(int k)
{
    cudaEvent_t *done = event(&out_done, k);
    return !done || RT_CUDA(cudaStreamWaitEvent(compute, *done, 0)) ? -1 : 0;
}

int rt_cuda_copy_in(int k, int after, void *dev, const void *host, size_t n)
{
    cudaEvent_t *done = event(&in_done, k), *out = event(&out_done, after);
    return !done || !out || RT_CUDA(cudaEventRecord(computed, compute)) ||
                   RT_CUDA(cudaStreamWaitEvent(copy_in, computed, 0)) || RT_CUDA(cudaStreamWaitEvent(copy_in, *out, 0)) ||
                   RT_CUDA(cudaMemcpyAsync(dev, host, n, cudaMemcpyHostToDevice, copy_in)) ||
                   RT_CUDA(cudaEventRecord(*done, copy_in))
               ? -1
               : 0;
}

int rt_cuda_copy_in_wait(int k)
{
    cudaEvent_t *done = event(&in_done, k);
    return !done || RT_CUDA(cudaStreamWaitEvent(compute, *done, 0)) ? -1 : 0;
}
