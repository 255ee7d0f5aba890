/* Reductions across lanes of a warp and across the threads of a block.
 * lk_lanes_sum and lk_lanes_max: over the n lanes (a power of two up to 32)
 * that differ only in their low bits, by shuffles, the result in each of
 * them. lk_block_sum and lk_block_max, for the kernels that give one
 * block to a row: warp shuffles, then the warps' partials through shared
 * memory, summed by every thread in warp order, so the result is the same
 * in every thread and depends only on the block size. blockDim.x must be a
 * multiple of 32 (at most 1024); `part` is 32 elements of shared memory.
 * Every thread of the block must call them (they hold barriers). */
#ifndef LOOM_LK_BLOCK_CUH
#define LOOM_LK_BLOCK_CUH

#include "lk.cuh"

template <class T> static __device__ inline T lk_lanes_sum(T v, int n)
{
    for (int o = n / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <class T> static __device__ inline T lk_lanes_max(T v, int n)
{
    for (int o = n / 2; o > 0; o >>= 1) {
        T u = __shfl_xor_sync(0xffffffffu, v, o);
        v = u > v ? u : v;
    }
    return v;
}

static __device__ inline double lk_block_sum(double v, double *part)
{
    v = lk_lanes_sum(v, 32);
    __syncthreads(); /* part may still be read by a previous call */
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    double s = 0;
    for (unsigned w = 0; w < blockDim.x >> 5; w++) s += part[w];
    return s;
}

static __device__ inline float lk_block_max(float v, float *part)
{
    v = lk_lanes_max(v, 32);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    float m = part[0];
    for (unsigned w = 1; w < blockDim.x >> 5; w++) m = part[w] > m ? part[w] : m;
    return m;
}

/* Column sums: a block of 32 x LK_COL_LANES threads takes 32 adjacent
 * columns (of all rows, lk_reduce.cu, or of a chunk of them, lk_norm.cu),
 * thread t their column t % 32 and every LK_COL_LANES-th row from t / 32 on
 * (a warp reads 32 adjacent floats of one row). lk_col_sum adds the row
 * lanes' partials of each column in lane order, a fixed order; the sum is
 * in the threads of lane 0 (t < 32). part: LK_COL_LANES * 32 doubles of
 * shared memory. */
#define LK_COL_LANES 32
static __device__ inline double lk_col_sum(double v, double *part)
{
    __syncthreads(); /* part may still be read by a previous call */
    part[threadIdx.x] = v;
    __syncthreads();
    double s = 0;
    if (threadIdx.x < 32)
        for (int r = 0; r < LK_COL_LANES; r++) s += part[r * 32 + threadIdx.x];
    return s;
}

#endif
