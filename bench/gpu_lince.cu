/* The fused head (loom.LinearCrossEntropy, codegen/kernels/cuda/lk_lince.cu)
 * timed alone on a GPU at GPT-2 124M's shape, and its three products alone
 * at the shape of one block of rows (1024), so that the head's time splits
 * into products and the rest: CUDA events around REPS calls after a warm-up,
 * ms a call and TFLOP/s.
 *   nvcc -std=c++17 -O2 -arch=sm_90 -Icodegen/kernels/cuda -Iruntime bench/gpu_lince.cu \
 *        codegen/kernels/cuda/lk_lince.cu codegen/kernels/cuda/lk_gemm.cu runtime/rt_cuda.cu \
 *        build/rel/libloomrt.a -lcublasLt -lcudart -o gpu_lince
 *   ./gpu_lince [N D C reps]      (default 8192 768 50257 5)
 */
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lk.cuh"

static void *dev_random(size_t n, size_t esize, unsigned seed)
{
    std::vector<uint16_t> h(n * esize / 2);
    for (size_t i = 0; i < h.size(); i++) seed = seed * 1664525u + 1013904223u, h[i] = (uint16_t)(0x3c00 | (seed >> 24 & 0x7f));
    void *d = NULL;
    if (RT_CUDA(cudaMalloc(&d, n * esize)) || RT_CUDA(cudaMemcpy(d, h.data(), n * esize, cudaMemcpyHostToDevice))) exit(1);
    return d;
}

static cudaEvent_t ea, eb;
#define TIME(label, flops, call)                                                                        \
    do {                                                                                                \
        if (call) return fprintf(stderr, "gpu_lince: %s\n", rt_error()), 1;                             \
        cudaEventRecord(ea, rt_cuda_stream());                                                          \
        for (int r = 0; r < reps; r++)                                                                  \
            if (call) return fprintf(stderr, "gpu_lince: %s\n", rt_error()), 1;                         \
        cudaEventRecord(eb, rt_cuda_stream());                                                          \
        cudaEventSynchronize(eb);                                                                       \
        float ms;                                                                                       \
        cudaEventElapsedTime(&ms, ea, eb);                                                              \
        ms /= reps;                                                                                     \
        printf("%-58s %9.3f ms %7.1f TFLOP/s\n", label, ms, (flops) / ms / 1e9);                         \
    } while (0)

int main(int argc, char **argv)
{
    long long N = argc > 1 ? atoll(argv[1]) : 8192, D = argc > 2 ? atoll(argv[2]) : 768,
              C = argc > 3 ? atoll(argv[3]) : 50257;
    int reps = argc > 4 ? atoi(argv[4]) : 5;
    if (rt_device_cuda.init()) return fprintf(stderr, "gpu_lince: %s\n", rt_error()), 1;
    cudaEventCreate(&ea), cudaEventCreate(&eb);
    float *x = (float *)dev_random((size_t)(N * D), 4, 1), *w = (float *)dev_random((size_t)(C * D), 4, 2);
    float *dx = (float *)dev_random((size_t)(N * D), 4, 3), *dw = (float *)dev_random((size_t)(C * D), 4, 4);
    float *loss = (float *)dev_random(2, 4, 5);
    std::vector<int64_t> ht((size_t)N);
    for (long long i = 0; i < N; i++) ht[(size_t)i] = (i * 7919) % C;
    int64_t *t = NULL;
    if (RT_CUDA(cudaMalloc(&t, (size_t)N * 8)) ||
        RT_CUDA(cudaMemcpy(t, ht.data(), (size_t)N * 8, cudaMemcpyHostToDevice)))
        return 1;
    void *ws = NULL;
    size_t wsb = lk_linear_ce_bf16_ws(N, D, C) > lk_linear_ce_f32_ws(N, C) ? lk_linear_ce_bf16_ws(N, D, C)
                                                                            : lk_linear_ce_f32_ws(N, C);
    if (RT_CUDA(cudaMalloc(&ws, wsb))) return 1;
    double f = 6.0 * N * D * C; // three products
    char label[128];
    snprintf(label, sizeof label, "lk_linear_ce_f32  N %lld D %lld C %lld trans_w", N, D, C);
    TIME(label, f, lk_linear_ce_f32(rt_cuda_stream(), loss, dx, dw, x, w, 1, t, N, D, C, 1, -100, 0, ws));
    snprintf(label, sizeof label, "lk_linear_ce_bf16 N %lld D %lld C %lld trans_w", N, D, C);
    TIME(label, f, lk_linear_ce_bf16(rt_cuda_stream(), loss, dx, dw, x, w, 1, t, N, D, C, 1, -100, 0, ws));
    // one block's products, bf16 in, fp32 out (the bf16 head's): R = 1024 rows
    long long R = 1024;
    uint16_t *x16 = (uint16_t *)dev_random((size_t)(R * D), 2, 6), *w16 = (uint16_t *)dev_random((size_t)(C * D), 2, 7),
             *g16 = (uint16_t *)dev_random((size_t)(R * C), 2, 8);
    float *l = (float *)ws;
    double fb = 2.0 * R * D * C;
    TIME("  logits (R x C) = x_b W^T", fb, lk_gemm_bf16_f32out(rt_cuda_stream(), l, x16, w16, 1, R, C, D, 0, 1, 1.0f, 0.0f, 0, 0, 0));
    TIME("  dx_b (R x D) = g W", fb, lk_gemm_bf16_f32out(rt_cuda_stream(), dx, g16, w16, 1, R, D, C, 0, 0, 1.0f, 0.0f, 0, 0, 0));
    TIME("  dW (C x D) += g^T x_b", fb, lk_gemm_bf16_f32out(rt_cuda_stream(), dw, g16, x16, 1, C, D, R, 1, 0, 1.0f, 1.0f, 0, 0, 0));
    return 0;
}
