/* libloomrt's cuda back end (rt_cuda.cu): the device the cuda target's
 * programs run on, as an rt_device (rt.h) that the shared drivers use, and
 * the checks every CUDA call of a program goes through.
 *
 * The device: cudaSetDevice(0); a compute stream that every kernel and
 * product runs on in order, and a copy stream for uploads, ordered with the
 * compute stream by two events both ways (an upload waits for the steps
 * queued before it, the steps after it wait for the upload); offload's
 * copies out and in run on two more streams, one each way (below). The arena and the weights blob are
 * two cudaMalloc blocks, made once; memory_check asks cudaMemGetInfo and
 * refuses, naming the bytes needed and free, when they do not fit.
 *
 * Built by nvcc, or by g++ against the host emulator's runtime
 * (kernels/emu.cpp, `make EMU=1`): only the C API of <cuda_runtime_api.h>. */
#ifndef LOOM_RT_CUDA_H
#define LOOM_RT_CUDA_H

#include <cuda_runtime_api.h>

#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const rt_device rt_device_cuda;

/* The bytes of device memory cuBLASLt's products may use as workspace
 * (lk_gemm.cu allocates them at its first product; NVIDIA's recommendation
 * for Hopper, which lets the heuristic pick split-K kernels for products with
 * a small output and a long K, such as weight gradients). memory_check counts
 * them with the arena and weights. */
#define RT_CUDA_GEMM_WS_BYTES ((int64_t)32 << 20)

/* The compute stream (after rt_device_cuda.init). */
cudaStream_t rt_cuda_stream(void);

/* Offload's copies, which a training step with loom.ToHost and loom.FromHost
 * nodes calls (optimizer/schedule.c times them the same way): copy out k
 * (device -> pinned host, n bytes) runs on the copy-out stream once the
 * compute stream has done what was queued before the call; compute waits
 * for it at rt_cuda_copy_out_wait(k). Copy in k (host -> device) runs on the
 * copy-in stream once compute has done what was queued before it and copy
 * out `after` (of the same value) is done; compute waits for it at
 * rt_cuda_copy_in_wait(k), before the first kernel that reads it. Each copy
 * has its own event, made at its first use. 0, or -1 with rt_error(). */
int rt_cuda_copy_out(int k, void *host, const void *dev, size_t n);
int rt_cuda_copy_out_wait(int k);
int rt_cuda_copy_in(int k, int after, void *dev, const void *host, size_t n);
int rt_cuda_copy_in_wait(int k);

/* 0 when err is cudaSuccess; else -1 with rt_error() naming file:line, the
 * call, the CUDA error and a hint of what to do. */
int rt_cuda_check(int err, const char *file, int line, const char *call);
#define RT_CUDA(call) rt_cuda_check((int)(call), __FILE__, __LINE__, #call)

#ifdef __cplusplus
}
#endif

#endif
