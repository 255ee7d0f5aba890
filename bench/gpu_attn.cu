/* The fused attention kernels (codegen/kernels/cuda/lk_attn.cu) timed alone
 * on a GPU, at a transformer's shape: forward and backward, CUDA events
 * around REPS launches after two warm-ups, in ms a call and TFLOP/s (the
 * products' flops: forward QK^T and PV, backward as the kernels compute it,
 * P and dP twice, so 7 products; causal counts the tiles below the diagonal
 * only as half).
 *   nvcc -std=c++17 -O2 -arch=sm_90 -Icodegen/kernels/cuda -Iruntime bench/gpu_attn.cu \
 *        codegen/kernels/cuda/lk_attn.cu runtime/rt_cuda.cu build/rel/libloomrt.a -lcudart -o gpu_attn
 *   ./gpu_attn [B H T D causal reps]      (default 8 12 1024 64 1 20: GPT-2 124M's)
 * Both the float32 kernels and the bf16 tensor-core ones (--precision bf16).
 */
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lk.cuh"

static float *dev_random(size_t n, unsigned seed)
{
    std::vector<float> h(n);
    for (size_t i = 0; i < n; i++) seed = seed * 1664525u + 1013904223u, h[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    void *d = NULL;
    if (RT_CUDA(cudaMalloc(&d, n * sizeof(float))) || RT_CUDA(cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice)))
        exit(1);
    return (float *)d;
}

int main(int argc, char **argv)
{
    long long B = argc > 1 ? atoll(argv[1]) : 8, H = argc > 2 ? atoll(argv[2]) : 12, T = argc > 3 ? atoll(argv[3]) : 1024,
              D = argc > 4 ? atoll(argv[4]) : 64, causal = argc > 5 ? atoll(argv[5]) : 1, reps = argc > 6 ? atoll(argv[6]) : 20;
    if (rt_device_cuda.init()) return fprintf(stderr, "gpu_attn: %s\n", rt_error()), 1;
    LkAttn p = {};
    p.BH = B * H, p.T = T, p.S = T, p.D = D, p.Dv = D, p.scale = 0.125f, p.causal = (int)causal;
    p.mask_kind = LK_ATTN_MASK_NONE, p.nb = 1, p.bdims[0] = B * H;
    size_t n = (size_t)(B * H * T * D);
    float *q = dev_random(n, 1), *k = dev_random(n, 2), *v = dev_random(n, 3), *dout = dev_random(n, 4);
    float *o = dev_random(n, 5), *lse = dev_random((size_t)(B * H * T), 6), *dq = dev_random(n, 7), *dk = dev_random(n, 8),
          *dv = dev_random(n, 9);
    void *ws = NULL;
    if (RT_CUDA(cudaMalloc(&ws, lk_attention_grad_f32_ws(&p) + 64))) return 1;
    cudaEvent_t a, b;
    cudaEventCreate(&a), cudaEventCreate(&b);
    double frac = causal ? (T + 64.0) / (2.0 * T) : 1.0, prod = 2.0 * B * H * T * T * D * frac;
    for (int bf16 = 0; bf16 < 2; bf16++) {
        float ms[2];
        for (int which = 0; which < 2; which++) {
            for (long long r = -2; r < reps; r++) {
                if (r == 0) cudaEventRecord(a, rt_cuda_stream());
                int rc = which == 0 ? (bf16 ? lk_attention_bf16 : lk_attention_f32)(rt_cuda_stream(), o, lse, q, k, v, NULL, &p)
                                    : (bf16 ? lk_attention_grad_bf16 : lk_attention_grad_f32)(rt_cuda_stream(), dq, dk, dv,
                                                                                             dout, q, k, v, o, lse, NULL, &p, ws);
                if (rc) return fprintf(stderr, "gpu_attn: %s\n", rt_error()), 1;
            }
            cudaEventRecord(b, rt_cuda_stream());
            if (RT_CUDA(cudaEventSynchronize(b))) return 1;
            cudaEventElapsedTime(&ms[which], a, b);
            ms[which] /= (float)reps;
        }
        printf("attention %s B %lld H %lld T %lld D %lld%s: forward %.3f ms (%.1f TFLOP/s), backward %.3f ms (%.1f TFLOP/s)\n",
               bf16 ? "bf16" : "fp32", B, H, T, D, causal ? " causal" : "", ms[0], 2 * prod / ms[0] / 1e9, ms[1],
               7 * prod / ms[1] / 1e9);
    }
    return 0;
}
