/* bf16 tensor-core products in registers: PTX mma.sync.m16n8k16 (sm_80 and
 * later), D[16x8] = A[16x16] B[16x8] + C, bf16 operands, float accumulators.
 * A warp holds each operand spread over its lanes, lane = 4 g + t
 * (g = lane / 4 in 0..7, t = lane % 4), two bf16 to a 32-bit register with
 * the lower index in the low half:
 *   A: a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1],
 *      a[2] = A[g][2t+8, 2t+9], a[3] = A[g+8][2t+8, 2t+9]
 *   B: b[0] = B[2t, 2t+1][g], b[1] = B[2t+8, 2t+9][g]   (a column's k pair)
 *   C: c[0], c[1] = C[g][2t, 2t+1], c[2], c[3] = C[g+8][2t, 2t+1]
 * So a C fragment pair of 16x8 tiles (columns n0 and n0 + 8) is, rounded to
 * bf16, the A fragment of a 16x16 tile with no exchange between lanes (the
 * flash-attention step from scores to probabilities).
 *
 * lk_mma_bf16_shfl is the same product written with warp shuffles (each lane
 * gathers its row of A and two columns of B from the lanes that hold them),
 * in float: the host emulator runs it, and tests/gpu/test_kernels.cu checks
 * it against the tensor cores' on a GPU, which checks the layout above. */
#ifndef LOOM_LK_MMA_CUH
#define LOOM_LK_MMA_CUH

#include "lk.cuh"

/* two floats rounded to bf16 (nearest even) and packed, lo in the low half */
static __device__ inline uint32_t lk_pack_bf2(float lo, float hi)
{
    __nv_bfloat16 l = __float2bfloat16(lo), h = __float2bfloat16(hi);
    return (uint32_t)__bfloat16_as_ushort(l) | (uint32_t)__bfloat16_as_ushort(h) << 16;
}

static __device__ inline float lk_bf_lo(uint32_t x) { return __uint_as_float(x << 16); }
static __device__ inline float lk_bf_hi(uint32_t x) { return __uint_as_float(x & 0xffff0000u); }

static __device__ inline void lk_mma_bf16_shfl(float c[4], const uint32_t a[4], const uint32_t b[2])
{
    const unsigned full = 0xffffffffu;
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    float c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
    LK_UNROLL
    for (int q = 0; q < 4; q++) {
        /* row g and g + 8 of A, columns 2q, 2q+1 and 2q+8, 2q+9: lane 4g + q */
        uint32_t r0 = __shfl_sync(full, a[0], 4 * g + q), r1 = __shfl_sync(full, a[1], 4 * g + q);
        uint32_t r2 = __shfl_sync(full, a[2], 4 * g + q), r3 = __shfl_sync(full, a[3], 4 * g + q);
        /* columns 2t and 2t+1 of B, rows 2q, 2q+1 and 2q+8, 2q+9: lanes 4 (2t) + q and 4 (2t+1) + q */
        uint32_t x0 = __shfl_sync(full, b[0], 8 * t + q), x1 = __shfl_sync(full, b[1], 8 * t + q);
        uint32_t y0 = __shfl_sync(full, b[0], 8 * t + 4 + q), y1 = __shfl_sync(full, b[1], 8 * t + 4 + q);
        c0 += lk_bf_lo(r0) * lk_bf_lo(x0) + lk_bf_hi(r0) * lk_bf_hi(x0) + lk_bf_lo(r2) * lk_bf_lo(x1) +
              lk_bf_hi(r2) * lk_bf_hi(x1);
        c1 += lk_bf_lo(r0) * lk_bf_lo(y0) + lk_bf_hi(r0) * lk_bf_hi(y0) + lk_bf_lo(r2) * lk_bf_lo(y1) +
              lk_bf_hi(r2) * lk_bf_hi(y1);
        c2 += lk_bf_lo(r1) * lk_bf_lo(x0) + lk_bf_hi(r1) * lk_bf_hi(x0) + lk_bf_lo(r3) * lk_bf_lo(x1) +
              lk_bf_hi(r3) * lk_bf_hi(x1);
        c3 += lk_bf_lo(r1) * lk_bf_lo(y0) + lk_bf_hi(r1) * lk_bf_hi(y0) + lk_bf_lo(r3) * lk_bf_lo(y1) +
              lk_bf_hi(r3) * lk_bf_hi(y1);
    }
    c[0] = c0, c[1] = c1, c[2] = c2, c[3] = c3;
}

/* c += A B on the tensor cores where the GPU has them (sm_80 on), else the shuffles */
static __device__ inline void lk_mma_bf16(float c[4], const uint32_t a[4], const uint32_t b[2])
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    lk_mma_bf16_shfl(c, a, b);
#endif
}

#endif
