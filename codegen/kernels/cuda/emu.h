/* Host emulation of the subset of CUDA C++ that loom's cuda kernels are
 * written in, so that a generated cuda program (`make EMU=1`) and the kernel
 * tests run on a machine without a GPU, through the same source nvcc builds.
 *
 * The subset: __global__ and __device__ functions; blockIdx, threadIdx,
 * blockDim, gridDim, warpSize; `__shared__` arrays declared in a kernel;
 * dynamic shared memory through LOOM_DYN_SHARED; __syncthreads and
 * __syncwarp; the warp shuffles __shfl_sync, __shfl_xor_sync,
 * __shfl_down_sync and __shfl_up_sync with a full mask; atomicAdd; launches
 * only through LOOM_LAUNCH (lk.cuh); __nv_bfloat16 with __float2bfloat16
 * and __bfloat162float. The tensor cores' products (lk_mma.cuh) have a
 * shuffle form that this runs like any other code.
 *
 * How it runs (emu.cpp): the blocks of a launch one after another; the
 * threads of a block as fibers (ucontext), so that __syncthreads is a real
 * barrier (every live thread of the block reaches it before any goes on)
 * and a shuffle a real exchange among the 32 lanes of a warp. A block whose
 * thread 0 finishes without a barrier or shuffle runs its other threads as
 * plain calls (a well-formed kernel reaches the same barriers in every
 * thread of a block), and one that then meets a barrier is reported as a
 * divergent barrier. `__shared__` is a static local: one instance that the
 * threads of the (one running) block share. Atomics are plain operations:
 * one host thread runs everything.
 *
 * The CUDA runtime API (cudaMalloc, cudaMemcpy[Async], streams, events,
 * cudaMemGetInfo, ...) and the cuBLASLt calls loom uses are implemented in
 * emu.cpp and emu_cublaslt.cpp with the real headers' declarations, so the
 * runtime (rt_cuda.c) and the kernels' host code compile unchanged. Device
 * memory is host memory that is inaccessible (PROT_NONE) except while a
 * kernel, a copy or a product runs: host code that dereferences a device
 * pointer faults with a message, as it would crash on a GPU. */
#ifndef LOOM_EMU_H
#define LOOM_EMU_H

#define __host__
#define __device__
#define __global__
#define __shared__ static
#define __constant__ static
#define __managed__
#define __grid_constant__
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)

#include <cuda_runtime_api.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
static const int warpSize = 32;

/* ---- the launch (LOOM_LAUNCH in lk.cuh) ---- */

/* Runs fn(ctx) once per thread of grid x block; smem bytes of dynamic
 * shared memory per block. The stream orders nothing: every call is done
 * when it returns. 0, or a cudaError_t that cudaGetLastError reports too. */
cudaError_t loom_emu_run(const char *kernel, const void *kfn, const char *file, int line, dim3 grid, dim3 block,
                         size_t smem, cudaStream_t stream, void (*fn)(void *), void *ctx);

template <class F> static void loom_emu_call(void *f) { (*(F *)f)(); }

/* kfn: the kernel function, whose dynamic shared memory above 48 KiB must have
 * been allowed by cudaFuncSetAttribute(kfn, cudaFuncAttributeMaxDynamicSharedMemorySize)
 * first, as on a GPU. */
template <class F>
cudaError_t loom_emu_launch(const char *kernel, const void *kfn, const char *file, int line, dim3 grid,
                            dim3 block, size_t smem, cudaStream_t stream, F f)
{
    return loom_emu_run(kernel, kfn, file, line, grid, block, smem, stream, loom_emu_call<F>, &f);
}

/* The running block's dynamic shared memory. */
void *loom_emu_dyn_smem(void);

/* ---- barriers and shuffles ---- */

void __syncthreads(void);
void __syncwarp(unsigned mask = 0xffffffffu);

enum { LOOM_SHFL_IDX, LOOM_SHFL_XOR, LOOM_SHFL_DOWN, LOOM_SHFL_UP };
/* The value of lane src (by kind and arg, within segments of `width` lanes)
 * once every lane of the warp has arrived; its own value when src is outside. */
uint64_t loom_emu_shfl(unsigned mask, uint64_t v, int kind, int arg, int width);

template <class T> static inline T loom_emu_shfl_t(unsigned mask, T v, int kind, int arg, int width)
{
    static_assert(sizeof(T) <= 8, "shuffles move up to 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = loom_emu_shfl(mask, b, kind, arg, width);
    memcpy(&v, &b, sizeof v);
    return v;
}
template <class T> static inline T __shfl_sync(unsigned m, T v, int src, int w = 32)
{
    return loom_emu_shfl_t(m, v, LOOM_SHFL_IDX, src, w);
}
template <class T> static inline T __shfl_xor_sync(unsigned m, T v, int x, int w = 32)
{
    return loom_emu_shfl_t(m, v, LOOM_SHFL_XOR, x, w);
}
template <class T> static inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32)
{
    return loom_emu_shfl_t(m, v, LOOM_SHFL_DOWN, (int)d, w);
}
template <class T> static inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32)
{
    return loom_emu_shfl_t(m, v, LOOM_SHFL_UP, (int)d, w);
}

/* ---- atomics: one host thread runs every thread ---- */

template <class T> static inline T atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}

/* ---- bfloat16 ---- */

/* __nv_bfloat16 and its conversions: the toolkit's header, which serves host code too */
#include <cuda_bf16.h>

/* ---- device intrinsics used by the kernels ---- */

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
template <class T> static inline T __ldg(const T *p) { return *p; }
static inline float __uint_as_float(unsigned x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

#endif
