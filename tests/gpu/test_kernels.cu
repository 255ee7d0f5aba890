/* Every cuda kernel (codegen/kernels/cuda/lk.cuh) against its cpu kernel
 * (codegen/kernels/cpu/kernels.h) on random inputs, in the manner of ggml's
 * test-backend-ops: the normalized error ||gpu - cpu|| / ||cpu|| of each
 * output must be under 1e-5 (fp32). Built with nvcc and run on a GPU by
 * tests/gpu/run.sh; built with g++ -DLOOM_EMU and run on the host emulator
 * by tests/cuda/run.sh. Prints one PASS/FAIL line per case with its error. */
#include "lk.cuh"

extern "C" {
#include "kernels.h"
}

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

static int failures;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float uniform(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2 - 1;
}

static std::vector<float> rand_vec(size_t n)
{
    std::vector<float> v(n);
    for (auto &x : v) x = uniform();
    return v;
}

static void *dev_bytes(const void *h, size_t n)
{
    void *p;
    if (RT_CUDA(cudaMalloc(&p, n ? n : 4)) || (n && RT_CUDA(cudaMemcpy(p, h, n, cudaMemcpyHostToDevice)))) {
        fprintf(stderr, "%s\n", rt_error());
        exit(1);
    }
    return p;
}
template <class T> static T *dev(const std::vector<T> &v) { return (T *)dev_bytes(v.data(), v.size() * sizeof(T)); }

template <class T> static std::vector<T> back(const T *d, size_t n)
{
    std::vector<T> v(n);
    if (RT_CUDA(cudaStreamSynchronize(rt_cuda_stream())) ||
        RT_CUDA(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost))) {
        fprintf(stderr, "%s\n", rt_error());
        exit(1);
    }
    return v;
}

static void compare(const char *name, int rc, const std::vector<float> &gpu, const std::vector<float> &cpu)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < cpu.size(); i++) {
        double d = (double)gpu[i] - cpu[i];
        num += d * d, den += (double)cpu[i] * cpu[i];
    }
    double err = den > 0 ? sqrt(num / den) : sqrt(num);
    int ok = rc == 0 && err < 1e-5 && !isnan(err);
    printf("%s %s (normalized error %.3g)%s%s\n", ok ? "PASS" : "FAIL", name, err, rc ? ": " : "", rc ? rt_error() : "");
    failures += !ok;
}

static void test_gemm(int64_t batch, int64_t M, int64_t N, int64_t K, int ta, int tb, int bias, float alpha, float beta,
                      int bcast_b)
{
    cudaStream_t s = rt_cuda_stream();
    int64_t sa = M * K, sb = bcast_b ? 0 : K * N, sy = M * N;
    auto a = rand_vec((size_t)(batch * sa)), b = rand_vec((size_t)(bcast_b ? K * N : batch * sb));
    auto y0 = rand_vec((size_t)(batch * sy)), bv = rand_vec((size_t)N);
    std::vector<float> want = y0;
    for (int64_t i = 0; i < batch; i++) {
        k_sgemm(ta, tb, M, N, K, alpha, a.data() + i * sa, ta ? M : K, b.data() + i * sb, tb ? K : N, beta,
                want.data() + i * sy, N);
        if (bias)
            for (int64_t r = 0; r < M; r++)
                for (int64_t c = 0; c < N; c++) want[(size_t)(i * sy + r * N + c)] += bv[(size_t)c];
    }
    float *da = dev(a), *db = dev(b), *dy = dev(y0), *dbias = dev(bv);
    int rc = lk_gemm_f32(s, dy, da, db, bias ? dbias : NULL, batch, M, N, K, ta, tb, alpha, beta, sa, sb, sy);
    char name[160];
    snprintf(name, sizeof name, "lk_gemm_f32 batch %lld %lldx%lldx%lld ta %d tb %d bias %d alpha %g beta %g%s",
             (long long)batch, (long long)M, (long long)N, (long long)K, ta, tb, bias, alpha, beta,
             bcast_b ? " b broadcast" : "");
    compare(name, rc, back(dy, want.size()), want);
    cudaFree(da), cudaFree(db), cudaFree(dy), cudaFree(dbias);
}

static void test_broadcast(int64_t M, int64_t N, int64_t cr, int64_t cc)
{
    auto c = rand_vec((size_t)(cr * cc));
    std::vector<float> want((size_t)(M * N));
    k_gemm_f32(want.data(), std::vector<float>((size_t)M).data(), std::vector<float>((size_t)N).data(), c.data(), M, N,
               1, 0, 0, 1.0f, 1.0f, cr, cc);
    float *dc = dev(c), *dy = dev(want);
    int rc = lk_broadcast2d_f32(rt_cuda_stream(), dy, dc, M, N, cr, cc);
    char name[96];
    snprintf(name, sizeof name, "lk_broadcast2d_f32 %lldx%lld from %lldx%lld", (long long)M, (long long)N,
             (long long)cr, (long long)cc);
    compare(name, rc, back(dy, want.size()), want);
    cudaFree(dc), cudaFree(dy);
}

static void test_reduce(int64_t outer, int64_t len, int64_t inner, int kind)
{
    auto x = rand_vec((size_t)(outer * len * inner));
    std::vector<float> want((size_t)(outer * inner));
    int64_t dims[3] = {outer, len, inner};
    int axes[3] = {0, 1, 0};
    k_reduce(want.data(), x.data(), dims, 3, axes, kind, 1);
    float *dx = dev(x), *dy = dev(want);
    int rc = lk_reduce_f32(rt_cuda_stream(), dy, dx, outer, len, inner, kind);
    char name[96];
    snprintf(name, sizeof name, "lk_reduce_f32 %s [%lld,%lld,%lld]", kind ? "mean" : "sum", (long long)outer,
             (long long)len, (long long)inner);
    compare(name, rc, back(dy, want.size()), want);
    cudaFree(dx), cudaFree(dy);
}

static void test_sce(int64_t N, int64_t C, int reduction, int ignore)
{
    auto x = rand_vec((size_t)(N * C));
    for (auto &v : x) v *= 4;
    std::vector<int64_t> t((size_t)N);
    for (int64_t i = 0; i < N; i++) t[(size_t)i] = (int64_t)((i * 7 + 3) % C);
    if (ignore) t[1] = -100;
    std::vector<float> loss(1), dloss = {0.75f}, dx((size_t)(N * C));
    k_sce_loss_f32(loss.data(), NULL, x.data(), t.data(), NULL, N, C, 1, reduction, -100, ignore);
    k_sce_loss_grad_f32(dx.data(), dloss.data(), x.data(), NULL, t.data(), NULL, N, C, 1, reduction, -100, ignore);
    float *dxv = dev(x), *dl = dev(loss), *ddl = dev(dloss), *ddx = dev(dx);
    int64_t *dt = dev(t);
    void *ws = NULL;
    if (RT_CUDA(cudaMalloc(&ws, lk_sce_loss_ws(N)))) exit(1);
    char name[128];
    snprintf(name, sizeof name, "lk_sce_loss_f32 [%lld,%lld] %s%s", (long long)N, (long long)C,
             reduction == 1 ? "sum" : "mean", ignore ? " ignore_index" : "");
    int rc = lk_sce_loss_f32(rt_cuda_stream(), dl, dxv, dt, N, C, reduction, -100, ignore, ws);
    compare(name, rc, back(dl, 1), loss);
    snprintf(name, sizeof name, "lk_sce_loss_grad_f32 [%lld,%lld] %s%s", (long long)N, (long long)C,
             reduction == 1 ? "sum" : "mean", ignore ? " ignore_index" : "");
    rc = lk_sce_loss_grad_f32(rt_cuda_stream(), ddx, ddl, dxv, dt, N, C, reduction, -100, ignore, ws);
    compare(name, rc, back(ddx, dx.size()), dx);
    cudaFree(dxv), cudaFree(dl), cudaFree(ddl), cudaFree(ddx), cudaFree(dt), cudaFree(ws);
}

static void test_optim(int64_t n)
{
    auto p = rand_vec((size_t)n), g = rand_vec((size_t)n), m = rand_vec((size_t)n), v = rand_vec((size_t)n);
    for (auto &e : v) e = fabsf(e);
    std::vector<float> lr = {3e-3f}, scale = {0.5f};
    std::vector<int64_t> step = {7};
    float *dp = dev(p), *dg = dev(g), *dm = dev(m), *dv = dev(v), *dlr = dev(lr), *dsc = dev(scale);
    int64_t *dst = dev(step);
    k_adamw_f32(p.data(), m.data(), v.data(), g.data(), lr[0], step[0], scale.data(), n, 0.9f, 0.999f, 1e-8f, 0.01f);
    int rc = lk_adamw_f32(rt_cuda_stream(), dp, dm, dv, dg, dlr, dst, dsc, n, 0.9f, 0.999f, 1e-8f, 0.01f);
    compare("lk_adamw_f32 param", rc, back(dp, (size_t)n), p);
    compare("lk_adamw_f32 m", rc, back(dm, (size_t)n), m);
    compare("lk_adamw_f32 v", rc, back(dv, (size_t)n), v);
    k_sgd_f32(p.data(), m.data(), g.data(), lr[0], NULL, n, 0.9f, 1e-4f, 1);
    rc = lk_sgd_f32(rt_cuda_stream(), dp, dm, dg, dlr, NULL, n, 0.9f, 1e-4f, 1);
    compare("lk_sgd_f32 nesterov param", rc, back(dp, (size_t)n), p);
    compare("lk_sgd_f32 nesterov buf", rc, back(dm, (size_t)n), m);
    cudaFree(dp), cudaFree(dg), cudaFree(dm), cudaFree(dv), cudaFree(dlr), cudaFree(dsc), cudaFree(dst);
}

int main(void)
{
    if (rt_device_cuda.init()) {
        fprintf(stderr, "test_kernels: %s\n", rt_error());
        return 1;
    }
    test_gemm(1, 4, 128, 784, 0, 1, 1, 1.0f, 0.0f, 0);   /* a Linear layer: x w^T + b */
    test_gemm(1, 10, 64, 4, 1, 0, 0, 1.0f, 0.0f, 0);     /* its weight gradient */
    test_gemm(1, 33, 17, 29, 1, 1, 0, 0.5f, 0.25f, 0);   /* alpha, beta, odd sizes */
    test_gemm(3, 16, 24, 8, 0, 0, 0, 1.0f, 0.0f, 0);     /* strided batches */
    test_gemm(3, 16, 24, 8, 0, 1, 0, 1.0f, 0.0f, 1);     /* one matrix for every batch */
    test_broadcast(5, 7, 5, 1);
    test_broadcast(5, 7, 1, 1);
    test_reduce(1, 4, 128, 0);
    test_reduce(6, 1000, 1, 1);
    test_reduce(3, 5, 7, 0);
    test_sce(4, 10, 2, 0);
    test_sce(37, 300, 1, 0);
    test_sce(8, 96, 2, 1);
    test_optim(1000);
    return failures ? 1 : 0;
}
