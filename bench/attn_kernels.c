/* The fused attention kernels (codegen/kernels/cpu/kattn.c) against the eager
 * kernels an unfused graph runs for the same step, on one thread, in CPU
 * time (the best of 5 rounds, alternating): forward MatMul(Q, K^T), scale
 * and additive mask (one loop, as a fused elementwise group), Softmax,
 * MatMul(P, V); backward the two products of the second MatMul's gradient,
 * loom.SoftmaxGrad, the scale, and the two products of the first's. Also the
 * bytes of [BH, T, S] tensors each path holds between forward and backward.
 *
 *   cc -O3 -march=native -fno-trapping-math -fno-math-errno -fopenmp -std=c11 \
 *      -Icodegen/kernels/cpu bench/attn_kernels.c codegen/kernels/cpu/k*.c -lopenblas -lm -o build/attn_kernels
 *   build/attn_kernels BH T D CAUSAL       (e.g. 12 1024 64 1: one GPT-2 124M sample's layer)
 *
 * (the kernels compiled with the generated programs' flags, not build/rel's -O2) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static float *rnd(int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX * 2 - 1;
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s BH T D CAUSAL\n", argv[0]);
        return 2;
    }
    int64_t BH = atoll(argv[1]), T = atoll(argv[2]), D = atoll(argv[3]), S = T, Dv = D;
    int causal = atoi(argv[4]);
    float scale = 0.125f;
    k_set_threads(1);
    float *q = rnd(BH * T * D), *k = rnd(BH * S * D), *v = rnd(BH * S * Dv), *dout = rnd(BH * T * Dv);
    float *o = malloc(BH * T * Dv * 4), *lse = malloc(BH * T * 4);
    float *dq = malloc(BH * T * D * 4), *dk = malloc(BH * S * D * 4), *dv = malloc(BH * S * Dv * 4);
    float *mask = malloc(T * S * 4); // the causal mask as an exporter writes it: 0 or -3.4e38
    for (int64_t i = 0; i < T; i++)
        for (int64_t j = 0; j < S; j++) mask[i * S + j] = causal && j > i ? -3.4028235e38f : 0.0f;
    KAttn p = {BH, T, S, D, Dv, scale, causal, K_ATTN_MASK_NONE, 0, NULL, 0, 0};
    void *ws = malloc(k_attention_f32_ws(&p)), *wsg = malloc(k_attention_grad_f32_ws(&p));
    float *s = malloc(BH * T * S * 4), *pr = malloc(BH * T * S * 4), *dp = malloc(BH * T * S * 4);
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int r = 0; r < 5; r++) {
        double t0 = cpu_s();
        k_attention_f32(o, lse, q, k, v, NULL, &p, ws);
        double t1 = cpu_s();
        k_attention_grad_f32(dq, dk, dv, dout, q, k, v, o, lse, NULL, &p, wsg);
        double t2 = cpu_s();
        for (int64_t b = 0; b < BH; b++) // s = q k^T
            k_sgemm(0, 1, T, S, D, 1.0f, q + b * T * D, D, k + b * S * D, D, 0.0f, s + b * T * S, S);
        for (int64_t b = 0; b < BH; b++)
            for (int64_t i = 0; i < T * S; i++) s[b * T * S + i] = s[b * T * S + i] * scale + mask[i];
        k_softmax_f32(pr, s, BH * T, S, 1, 0);
        k_matmul_f32(o, pr, v, BH, T, Dv, S, NULL, NULL);
        double t3 = cpu_s();
        for (int64_t b = 0; b < BH; b++) { // dV = P^T dO, dP = dO V^T
            k_sgemm(1, 0, S, Dv, T, 1.0f, pr + b * T * S, S, dout + b * T * Dv, Dv, 0.0f, dv + b * S * Dv, Dv);
            k_sgemm(0, 1, T, S, Dv, 1.0f, dout + b * T * Dv, Dv, v + b * S * Dv, Dv, 0.0f, dp + b * T * S, S);
        }
        k_softmax_grad_f32(s, dp, pr, BH * T, S, 1, 0);
        for (int64_t i = 0; i < BH * T * S; i++) s[i] *= scale;
        for (int64_t b = 0; b < BH; b++) { // dQ = dS K, dK = dS^T Q
            k_sgemm(0, 0, T, D, S, 1.0f, s + b * T * S, S, k + b * S * D, D, 0.0f, dq + b * T * D, D);
            k_sgemm(1, 0, S, D, T, 1.0f, s + b * T * S, S, q + b * T * D, D, 0.0f, dk + b * S * D, D);
        }
        double t4 = cpu_s();
        double t[4] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3};
        for (int i = 0; i < 4; i++) best[i] = t[i] < best[i] ? t[i] : best[i];
    }
    printf("BH %lld, T = S %lld, D %lld, causal %d: fused forward %.2f ms, backward %.2f ms; "
           "eager forward %.2f ms, backward %.2f ms (CPU, one thread, best of 5); [BH,T,S] tensors "
           "kept for backward: fused 0, eager %.0f MB (scores and probabilities)\n",
           (long long)BH, (long long)T, (long long)D, causal, best[0] * 1e3, best[1] * 1e3, best[2] * 1e3,
           best[3] * 1e3, 2.0 * BH * T * S * 4 / 1e6);
    return 0;
}
