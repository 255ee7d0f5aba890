/* Every cuda kernel (codegen/kernels/cuda/lk.cuh) against its cpu kernel
 * (codegen/kernels/cpu/kernels.h) on random inputs, in the manner of ggml's
 * test-backend-ops: the normalized error ||gpu - cpu|| / ||cpu|| of each
 * output must be under 1e-5 (fp32), or 1e-2 where a result is stored in
 * bfloat16 (one rounding, 2^-9 relative, apart from the order of the sums). Built with nvcc and run on a GPU by
 * tests/gpu/run.sh; built with g++ -DLOOM_EMU and run on the host emulator
 * by tests/cuda/run.sh. Prints one PASS/FAIL line per case with its error. */
#include "lk.cuh"
#include "lk_mma.cuh"

extern "C" {
#include "kernels.h"
#ifdef LOOM_EMU
long loom_emu_cufft_execs(void); /* emu_cufft.cpp */
#endif
}

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
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
/* An output buffer shaped like v, filled with NaN: a kernel that leaves any of it unwritten fails. */
static float *out_like(const std::vector<float> &v) { return dev(std::vector<float>(v.size(), NAN)); }

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

static void compare_tol(const char *name, int rc, const std::vector<float> &gpu, const std::vector<float> &cpu,
                        double tol)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < cpu.size(); i++) {
        double d = (double)gpu[i] - cpu[i];
        num += d * d, den += (double)cpu[i] * cpu[i];
    }
    double err = den > 0 ? sqrt(num / den) : sqrt(num);
    int ok = rc == 0 && err < tol && !isnan(err);
    printf("%s %s (normalized error %.3g)%s%s\n", ok ? "PASS" : "FAIL", name, err, rc ? ": " : "", rc ? rt_error() : "");
    failures += !ok;
}

static void compare(const char *name, int rc, const std::vector<float> &gpu, const std::vector<float> &cpu)
{
    compare_tol(name, rc, gpu, cpu, 1e-5);
}

/* for kernels that do the cpu kernel's float operations in its order: every bit equal */
static void compare_exact(const char *name, int rc, const std::vector<float> &gpu, const std::vector<float> &cpu)
{
    size_t differ = 0;
    for (size_t i = 0; i < cpu.size(); i++) differ += memcmp(&gpu[i], &cpu[i], sizeof(float)) != 0;
    int ok = rc == 0 && gpu.size() == cpu.size() && differ == 0;
    printf("%s %s (%zu of %zu elements differ in a bit)%s%s\n", ok ? "PASS" : "FAIL", name, differ, cpu.size(),
           rc ? ": " : "", rc ? rt_error() : "");
    failures += !ok;
}

/* bfloat16 data: random values rounded (k_f32_to_bf16), and widened back for comparisons */
static std::vector<uint16_t> rand_bf16(size_t n)
{
    auto f = rand_vec(n);
    std::vector<uint16_t> h(n);
    k_f32_to_bf16(h.data(), f.data(), (int64_t)n);
    return h;
}

static std::vector<float> widen(const std::vector<uint16_t> &h)
{
    std::vector<float> f(h.size());
    k_bf16_to_f32(f.data(), h.data(), (int64_t)h.size());
    return f;
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

/* lk_gemm_bf16 (y bfloat16: against k_gemm_bf16 per batch, beta's y as its C)
 * or lk_gemm_bf16_f32out (y fp32: against k_sgemm on the widened operands) */
static void test_gemm_bf16(int64_t batch, int64_t M, int64_t N, int64_t K, int ta, int tb, float alpha, float beta,
                           int bcast_b, int f32out)
{
    cudaStream_t s = rt_cuda_stream();
    int64_t sa = M * K, sb = bcast_b ? 0 : K * N, sy = M * N;
    auto a = rand_bf16((size_t)(batch * sa)), b = rand_bf16((size_t)(bcast_b ? K * N : batch * sb));
    auto y0 = rand_bf16((size_t)(batch * sy));
    auto a32 = widen(a), b32 = widen(b), y32 = widen(y0);
    std::vector<float> want = y32;
    std::vector<uint16_t> wantb((size_t)(batch * sy));
    std::vector<char> ws(k_gemm_bf16_ws(M, N, K, M * N));
    for (int64_t i = 0; i < batch; i++) {
        if (f32out)
            k_sgemm(ta, tb, M, N, K, alpha, a32.data() + i * sa, ta ? M : K, b32.data() + i * sb, tb ? K : N, beta,
                    want.data() + i * sy, N);
        else
            k_gemm_bf16(wantb.data() + i * sy, a.data() + i * sa, b.data() + i * sb, beta != 0 ? y0.data() + i * sy : NULL,
                        M, N, K, ta, tb, alpha, beta, M, N, ws.data());
    }
    uint16_t *da = dev(a), *db = dev(b);
    std::vector<float> got;
    int rc;
    if (f32out) {
        float *dy = dev(y32);
        rc = lk_gemm_bf16_f32out(s, dy, da, db, batch, M, N, K, ta, tb, alpha, beta, sa, sb, sy);
        got = back(dy, want.size());
        cudaFree(dy);
    } else {
        uint16_t *dy = dev(y0);
        rc = lk_gemm_bf16(s, dy, da, db, batch, M, N, K, ta, tb, alpha, beta, sa, sb, sy);
        got = widen(back(dy, wantb.size()));
        want = widen(wantb);
        cudaFree(dy);
    }
    char name[160];
    snprintf(name, sizeof name, "%s batch %lld %lldx%lldx%lld ta %d tb %d alpha %g beta %g%s",
             f32out ? "lk_gemm_bf16_f32out" : "lk_gemm_bf16", (long long)batch, (long long)M, (long long)N,
             (long long)K, ta, tb, alpha, beta, bcast_b ? " b broadcast" : "");
    compare_tol(name, rc, got, want, 1e-2);
    cudaFree(da), cudaFree(db);
}

static void test_broadcast(int64_t M, int64_t N, int64_t cr, int64_t cc)
{
    auto c = rand_vec((size_t)(cr * cc));
    std::vector<float> want((size_t)(M * N));
    k_gemm_f32(want.data(), std::vector<float>((size_t)M).data(), std::vector<float>((size_t)N).data(), c.data(), M, N,
               1, 0, 0, 1.0f, 1.0f, cr, cc);
    float *dc = dev(c), *dy = out_like(want);
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
    float *dx = dev(x), *dy = out_like(want);
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
    float *dxv = dev(x), *dl = out_like(loss), *ddl = dev(dloss), *ddx = out_like(dx);
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

/* off: the arrays start off floats into their buffers (1: 4-byte aligned only, the kernels' scalar
 * loop; 0: 16-byte aligned, four floats at a time and the rest one by one) */
static void test_optim(int64_t n, int off)
{
    auto p = rand_vec((size_t)n), g = rand_vec((size_t)n), m = rand_vec((size_t)n), v = rand_vec((size_t)n);
    for (auto &e : v) e = fabsf(e);
    std::vector<float> lr = {3e-3f}, scale = {0.5f}, loss = {2.5f}, nan_loss = {NAN};
    std::vector<int64_t> step = {7};
    auto at = [&](const std::vector<float> &h) {
        std::vector<float> b((size_t)off, 0.0f);
        b.insert(b.end(), h.begin(), h.end());
        return dev(b) + off;
    };
    float *dp = at(p), *dg = at(g), *dm = at(m), *dv = at(v), *dlr = dev(lr), *dsc = dev(scale);
    float *dl = dev(loss), *dnan = dev(nan_loss);
    int64_t *dst = dev(step);
    char name[96];
#define OPT_NAME(what) (snprintf(name, sizeof name, "%s (n %lld, offset %d)", what, (long long)n, off), name)
    k_adamw_f32(p.data(), m.data(), v.data(), g.data(), lr[0], step[0], scale.data(), n, 0.9f, 0.999f, 1e-8f, 0.01f);
    int rc = lk_adamw_f32(rt_cuda_stream(), dp, dm, dv, dg, dlr, dst, dl, dsc, n, 0.9f, 0.999f, 1e-8f, 0.01f);
    compare(OPT_NAME("lk_adamw_f32 param"), rc, back(dp, (size_t)n), p);
    compare(OPT_NAME("lk_adamw_f32 m"), rc, back(dm, (size_t)n), m);
    compare(OPT_NAME("lk_adamw_f32 v"), rc, back(dv, (size_t)n), v);
    // a non-finite loss: nothing written
    rc = lk_adamw_f32(rt_cuda_stream(), dp, dm, dv, dg, dlr, dst, dnan, dsc, n, 0.9f, 0.999f, 1e-8f, 0.01f);
    compare(OPT_NAME("lk_adamw_f32 param, loss NaN"), rc, back(dp, (size_t)n), p);
    compare(OPT_NAME("lk_adamw_f32 v, loss NaN"), rc, back(dv, (size_t)n), v);
    k_sgd_f32(p.data(), m.data(), g.data(), lr[0], NULL, n, 0.9f, 1e-4f, 1);
    rc = lk_sgd_f32(rt_cuda_stream(), dp, dm, dg, dlr, dl, NULL, n, 0.9f, 1e-4f, 1);
    compare(OPT_NAME("lk_sgd_f32 nesterov param"), rc, back(dp, (size_t)n), p);
    compare(OPT_NAME("lk_sgd_f32 nesterov buf"), rc, back(dm, (size_t)n), m);
    rc = lk_sgd_f32(rt_cuda_stream(), dp, dm, dg, dlr, dnan, NULL, n, 0.9f, 1e-4f, 1);
    compare(OPT_NAME("lk_sgd_f32 param, loss NaN"), rc, back(dp, (size_t)n), p);
#undef OPT_NAME
    cudaFree(dp - off), cudaFree(dg - off), cudaFree(dm - off), cudaFree(dv - off), cudaFree(dlr), cudaFree(dsc);
    cudaFree(dst), cudaFree(dl), cudaFree(dnan);
}

static void test_copy(void)
{
    // a transpose of (3, 5, 7) by perm (2, 0, 1): y (7, 3, 5)
    auto x = rand_vec(105);
    std::vector<float> want(105);
    int64_t dims[3] = {7, 3, 5}, ys[3] = {15, 5, 1}, xs[3] = {1, 35, 7};
    k_copy_nd(want.data(), ys, x.data(), xs, dims, 3, 4);
    LkNd p = {{7, 3, 5}, {15, 5, 1}, {1, 35, 7}, 3, 4};
    float *dx = dev(x), *dy = out_like(x);
    int rc = lk_copy_nd(rt_cuda_stream(), dy, dx, &p);
    compare("lk_copy_nd transpose (3,5,7) perm (2,0,1)", rc, back(dy, 105), want);
    cudaFree(dx), cudaFree(dy);
    // the same transpose of bfloat16 (2-byte elements): exact
    auto h = rand_bf16(105);
    std::vector<uint16_t> wanth(105);
    k_copy_nd(wanth.data(), ys, h.data(), xs, dims, 3, 2);
    p.esize = 2;
    uint16_t *dh = dev(h), *dyh = dev(std::vector<uint16_t>(105, 0xffff));
    rc = lk_copy_nd(rt_cuda_stream(), dyh, dh, &p);
    compare("lk_copy_nd bfloat16 transpose (3,5,7) perm (2,0,1)", rc, widen(back(dyh, 105)), widen(wanth));
    cudaFree(dh), cudaFree(dyh);
    // the copies around attention: (2, 3, 4, L) by perm (0, 2, 1, 3), the last axis contiguous on both
    // sides (moved 16, 8 or 4 bytes at a time: L 8, 6 and 3 floats, 6 bfloat16), and one at an offset of
    // one element (4-byte aligned only)
    const int64_t Ls[] = {8, 6, 3};
    for (int64_t L : Ls)
        for (int es = 2; es <= 4; es += 2)
            for (int off = 0; off < 2; off++) {
                int64_t d4[4] = {2, 4, 3, L}, y4[4] = {12 * L, 3 * L, L, 1}, x4[4] = {12 * L, L, 4 * L, 1}, n = 24 * L;
                auto xf = rand_vec((size_t)(n + 1));
                std::vector<float> w((size_t)n);
                std::vector<uint16_t> xh((size_t)(n + 1)), wh((size_t)n);
                k_f32_to_bf16(xh.data(), xf.data(), n + 1);
                LkNd q = {{2, 4, 3, L}, {12 * L, 3 * L, L, 1}, {12 * L, L, 4 * L, 1}, 4, es};
                char name[96];
                snprintf(name, sizeof name, "lk_copy_nd %s (2,3,4,%lld) perm (0,2,1,3)%s", es == 4 ? "float" : "bfloat16",
                         (long long)L, off ? " at an offset" : "");
                if (es == 4) {
                    k_copy_nd(w.data(), y4, xf.data() + off, x4, d4, 4, 4);
                    float *a = dev(xf), *b = dev(std::vector<float>((size_t)n + 1, NAN));
                    rc = lk_copy_nd(rt_cuda_stream(), b + off, a + off, &q);
                    auto got = back(b, (size_t)n + 1);
                    compare(name, rc, std::vector<float>(got.begin() + off, got.begin() + off + n), w);
                    cudaFree(a), cudaFree(b);
                } else {
                    k_copy_nd(wh.data(), y4, xh.data() + off, x4, d4, 4, 2);
                    uint16_t *a = dev(xh), *b = dev(std::vector<uint16_t>((size_t)n + 1, 0xffff));
                    rc = lk_copy_nd(rt_cuda_stream(), b + off, a + off, &q);
                    auto got = back(b, (size_t)n + 1);
                    compare(name, rc, widen(std::vector<uint16_t>(got.begin() + off, got.begin() + off + n)), widen(wh));
                    cudaFree(a), cudaFree(b);
                }
            }
}

static void test_pad(int mode)
{
    // (3, 4) padded by (1, -1) before and (2, 3) after: y (6, 6)
    auto x = rand_vec(12);
    int64_t in[2] = {3, 4}, pads[4] = {1, -1, 2, 3};
    float v = 0.5f;
    std::vector<float> want(36);
    k_pad(want.data(), x.data(), in, 2, pads, mode, &v, 4);
    LkPad p = {{3, 4}, {1, -1, 2, 3}, 2, mode, 4, {0}};
    memcpy(p.value, &v, sizeof v);
    float *dx = dev(x), *dy = dev(std::vector<float>(36, NAN));
    int rc = lk_pad(rt_cuda_stream(), dy, dx, &p, NULL);
    char name[64];
    snprintf(name, sizeof name, "lk_pad (3,4) mode %d", mode);
    compare(name, rc, back(dy, 36), want);
    cudaFree(dx), cudaFree(dy);
}

/* pad: three indices in four the same one, as a batch padded with one token */
static void test_gather(int64_t outer, int64_t len, int64_t nidx, int64_t inner, int pad = 0)
{
    auto x = rand_vec((size_t)(outer * len * inner)), dy = rand_vec((size_t)(outer * nidx * inner));
    std::vector<int64_t> idx((size_t)nidx);
    for (int64_t t = 0; t < nidx; t++) idx[(size_t)t] = (t * 5 + 1) % len - (t % 3 == 0 ? len : 0); // repeats, negatives
    if (pad)
        for (int64_t t = 0; t < nidx; t++)
            if (t % 4) idx[(size_t)t] = 3;
    std::vector<float> want((size_t)(outer * nidx * inner)), dwant((size_t)(outer * len * inner));
    k_gather(want.data(), x.data(), idx.data(), 0, outer, len, nidx, inner, 4);
    k_gather_grad_f32(dwant.data(), dy.data(), idx.data(), 0, outer, len, nidx, inner);
    float *dxv = dev(x), *dyv = out_like(want), *ddy = dev(dy);
    float *ddx = dev(std::vector<float>(dwant.size(), 7.0f)); // the kernel must zero it
    int64_t *di = dev(idx);
    char name[128];
    snprintf(name, sizeof name, "lk_gather [%lld,%lld,%lld] %lld indices%s", (long long)outer, (long long)len,
             (long long)inner, (long long)nidx, pad ? ", three in four the same" : "");
    int rc = lk_gather(rt_cuda_stream(), dyv, dxv, di, 0, outer, len, nidx, inner, 4);
    compare(name, rc, back(dyv, want.size()), want);
    snprintf(name, sizeof name, "lk_gather_grad_f32 [%lld,%lld,%lld] %lld indices%s", (long long)outer,
             (long long)len, (long long)inner, (long long)nidx, pad ? ", three in four the same" : "");
    void *ws = NULL;
    if (RT_CUDA(cudaMalloc(&ws, lk_gather_grad_f32_ws(len, nidx)))) exit(1);
    rc = lk_gather_grad_f32(rt_cuda_stream(), ddx, ddy, di, 0, outer, len, nidx, inner, ws);
    // each row's sum in index order, as the cpu kernel adds: the same bits
    compare_exact(name, rc, back(ddx, dwant.size()), dwant);
    // an index out of range: all of dx NaN
    std::vector<int64_t> badidx = idx;
    badidx[(size_t)nidx / 2] = len;
    int64_t *dbad = dev(badidx);
    rc = lk_gather_grad_f32(rt_cuda_stream(), ddx, ddy, dbad, 0, outer, len, nidx, inner, ws);
    auto got = back(ddx, dwant.size());
    int all_nan = 1;
    for (float e : got) all_nan &= isnan(e) != 0;
    snprintf(name, sizeof name, "lk_gather_grad_f32 [%lld,%lld,%lld] an index out of range: dx NaN", (long long)outer,
             (long long)len, (long long)inner);
    printf("%s %s%s%s\n", rc == 0 && all_nan ? "PASS" : "FAIL", name, rc ? ": " : "", rc ? rt_error() : "");
    failures += !(rc == 0 && all_nan);
    cudaFree(dxv), cudaFree(dyv), cudaFree(ddy), cudaFree(ddx), cudaFree(di), cudaFree(dbad), cudaFree(ws);
}

/* ws_short: give the kernel its workspace but make the (emulated) cuFFT plan
 * want more than the reserve in it, so that the direct sum runs (on a GPU,
 * the real cuFFT answers and the test is the cuFFT one again) */
static void test_dft(int64_t outer, int64_t n_in, int64_t inner, int cin, int64_t L, int onesided, int inverse,
                     int ws_short = 0)
{
    auto x = rand_vec((size_t)(outer * n_in * inner * cin));
    int64_t n_out = onesided ? L / 2 + 1 : L;
    std::vector<float> want((size_t)(outer * n_out * inner * 2));
    k_dft_f32(want.data(), x.data(), outer, n_in, inner, cin, L, onesided, inverse);
    float *dxv = dev(x), *dyv = out_like(want);
    size_t wsb = lk_dft_f32_ws(outer, n_in, inner, cin, L, onesided, inverse);
    void *ws = NULL;
    if (wsb && cudaMalloc(&ws, wsb)) ws = NULL;
    char name[160];
    snprintf(name, sizeof name, "lk_dft_f32 [%lld,%lld,%lld,%d] length %lld%s%s%s", (long long)outer, (long long)n_in,
             (long long)inner, cin, (long long)L, onesided ? " onesided" : "", inverse ? " inverse" : "",
             ws_short ? " (plan over its reserve: the direct sum)" : "");
#ifdef LOOM_EMU
    if (ws_short) setenv("LOOM_EMU_CUFFT_WORK", "1000000000", 1);
    long execs = loom_emu_cufft_execs();
#endif
    int rc = wsb && !ws ? -1 : lk_dft_f32(rt_cuda_stream(), dyv, dxv, outer, n_in, inner, cin, L, onesided, inverse, ws);
#ifdef LOOM_EMU
    unsetenv("LOOM_EMU_CUFFT_WORK");
    /* cuFFT ran exactly where it should: not for complex onesided input, nor over the reserve */
    int fft = !(cin == 2 && onesided) && !ws_short;
    if ((loom_emu_cufft_execs() > execs) != fft) {
        printf("FAIL %s: cuFFT %s\n", name, fft ? "did not run" : "ran");
        failures++;
    }
#endif
    compare(name, rc, back(dyv, want.size()), want);
    cudaFree(dxv), cudaFree(dyv), cudaFree(ws);
}

/* A norm's bfloat16 output (the *_bf16out kernels) against the cpu's float32
 * one: within the bf16 tolerance, the device buffer read as uint16_t. */
static void compare_bf16out(const char *name, int rc, const float *d, const std::vector<float> &want)
{
    auto h = back((const uint16_t *)d, want.size());
    std::vector<float> got(want.size());
    for (size_t i = 0; i < want.size(); i++) {
        uint32_t u = (uint32_t)h[i] << 16;
        memcpy(&got[i], &u, sizeof u);
    }
    compare_tol(name, rc, got, want, 1e-2);
}

static void test_layernorm(int64_t rows, int64_t cols, int stats)
{
    auto x = rand_vec((size_t)(rows * cols)), sc = rand_vec((size_t)cols), b = rand_vec((size_t)cols);
    auto dy = rand_vec((size_t)(rows * cols));
    for (auto &e : x) e = e * 3 + 1;
    std::vector<float> y(x.size()), mean((size_t)rows), is((size_t)rows), dx(x.size()), ds((size_t)cols), db((size_t)cols);
    std::vector<char> ws(k_layernorm_grad_f32_ws(rows));
    k_layernorm_f32(y.data(), mean.data(), is.data(), x.data(), sc.data(), b.data(), rows, cols, 1e-5f);
    k_layernorm_grad_f32(dx.data(), ds.data(), db.data(), dy.data(), x.data(), sc.data(), stats ? mean.data() : NULL,
                         stats ? is.data() : NULL, rows, cols, 1e-5f, ws.data());
    float *dxv = dev(x), *dsc = dev(sc), *dbv = dev(b), *ddy = dev(dy), *dyv = out_like(y), *dm = out_like(mean), *dis = out_like(is);
    float *ddx = out_like(dx), *dds = out_like(ds), *ddb = out_like(db);
    void *dws;
    if (RT_CUDA(cudaMalloc(&dws, lk_layernorm_grad_f32_ws(rows, cols)))) exit(1);
    char name[96];
    snprintf(name, sizeof name, "lk_layernorm_f32 [%lld,%lld]", (long long)rows, (long long)cols);
    int rc = lk_layernorm_f32(rt_cuda_stream(), dyv, dm, dis, dxv, dsc, dbv, rows, cols, 1e-5f);
    compare(name, rc, back(dyv, y.size()), y);
    compare("  its inv_std", rc, back(dis, is.size()), is);
    compare_bf16out("  written in bfloat16", lk_layernorm_f32_bf16out(rt_cuda_stream(), (uint16_t *)dyv, dm, dis, dxv, dsc,
                                                                     dbv, rows, cols, 1e-5f), dyv, y);
    rc = lk_layernorm_grad_f32(rt_cuda_stream(), ddx, dds, ddb, ddy, dxv, dsc, stats ? dm : NULL, stats ? dis : NULL,
                               rows, cols, 1e-5f, dws);
    snprintf(name, sizeof name, "lk_layernorm_grad_f32 [%lld,%lld]%s dx", (long long)rows, (long long)cols,
             stats ? " saved stats" : "");
    compare(name, rc, back(ddx, dx.size()), dx);
    compare("  its dscale", rc, back(dds, ds.size()), ds);
    compare("  its dbias", rc, back(ddb, db.size()), db);
    cudaFree(dxv), cudaFree(dsc), cudaFree(dbv), cudaFree(ddy), cudaFree(dyv), cudaFree(dm), cudaFree(dis);
    cudaFree(ddx), cudaFree(dds), cudaFree(ddb), cudaFree(dws);
}

static void test_rmsnorm(int64_t rows, int64_t cols)
{
    auto x = rand_vec((size_t)(rows * cols)), sc = rand_vec((size_t)cols), dy = rand_vec((size_t)(rows * cols));
    std::vector<float> y(x.size()), dx(x.size()), ds((size_t)cols);
    std::vector<char> ws(k_layernorm_grad_f32_ws(rows));
    k_rmsnorm_f32(y.data(), x.data(), sc.data(), rows, cols, 1e-5f);
    k_rmsnorm_grad_f32(dx.data(), ds.data(), dy.data(), x.data(), sc.data(), rows, cols, 1e-5f, ws.data());
    float *dxv = dev(x), *dsc = dev(sc), *ddy = dev(dy), *dyv = out_like(y), *ddx = out_like(dx), *dds = out_like(ds);
    void *dws;
    if (RT_CUDA(cudaMalloc(&dws, lk_layernorm_grad_f32_ws(rows, cols)))) exit(1);
    char name[96];
    snprintf(name, sizeof name, "lk_rmsnorm_f32 [%lld,%lld]", (long long)rows, (long long)cols);
    int rc = lk_rmsnorm_f32(rt_cuda_stream(), dyv, dxv, dsc, rows, cols, 1e-5f);
    compare(name, rc, back(dyv, y.size()), y);
    compare_bf16out("  written in bfloat16", lk_rmsnorm_f32_bf16out(rt_cuda_stream(), (uint16_t *)dyv, dxv, dsc, rows, cols,
                                                                   1e-5f), dyv, y);
    rc = lk_rmsnorm_grad_f32(rt_cuda_stream(), ddx, dds, ddy, dxv, dsc, rows, cols, 1e-5f, dws);
    snprintf(name, sizeof name, "lk_rmsnorm_grad_f32 [%lld,%lld] dx", (long long)rows, (long long)cols);
    compare(name, rc, back(ddx, dx.size()), dx);
    compare("  its dscale", rc, back(dds, ds.size()), ds);
    cudaFree(dxv), cudaFree(dsc), cudaFree(ddy), cudaFree(dyv), cudaFree(ddx), cudaFree(dds), cudaFree(dws);
}

/* mask: 0 none, 1 additive [T, S] over every matrix, 2 boolean [B, 1, T, S] (per batch, broadcast over heads) */
/* bf16: lk_attention_bf16 (tensor cores) against the float32 cpu kernel within 1e-2 */
static void test_attention(int64_t B, int64_t H, int64_t T, int64_t S, int64_t D, int64_t Dv, int causal, int mask,
                           int bf16 = 0)
{
    int64_t BH = B * H;
    auto q = rand_vec((size_t)(BH * T * D)), k = rand_vec((size_t)(BH * S * D)), v = rand_vec((size_t)(BH * S * Dv));
    auto dout = rand_vec((size_t)(BH * T * Dv));
    for (auto &e : q) e *= 2;
    std::vector<float> madd((size_t)(T * S));
    std::vector<uint8_t> mkeep((size_t)(B * T * S));
    for (size_t i = 0; i < madd.size(); i++) madd[i] = uniform() * 2;
    for (size_t i = 0; i < mkeep.size(); i++) mkeep[i] = (i * 7 % 5) != 0;
    std::vector<int64_t> off((size_t)BH);
    for (int64_t b = 0; b < BH; b++) off[(size_t)b] = b / H * T * S;
    KAttn kp = {BH, T, S, D, Dv, 0.3f, causal, mask == 0 ? K_ATTN_MASK_NONE : mask == 1 ? K_ATTN_MASK_ADD : K_ATTN_MASK_KEEP,
                -1e4f, mask == 2 ? off.data() : NULL, S, 1};
    LkAttn lp = {BH, T, S, D, Dv, 0.3f, causal, kp.mask_kind, -1e4f, S, 1, 2, {B, H}, {mask == 2 ? T * S : 0, 0}};
    const void *hm = mask == 1 ? (const void *)madd.data() : mask == 2 ? (const void *)mkeep.data() : NULL;
    std::vector<float> o((size_t)(BH * T * Dv)), lse((size_t)(BH * T)), dq(q.size()), dk(k.size()), dv(v.size());
    std::vector<char> ws(std::max(k_attention_f32_ws(&kp), k_attention_grad_f32_ws(&kp)) + 64);
    k_attention_f32(o.data(), lse.data(), q.data(), k.data(), v.data(), hm, &kp, ws.data());
    k_attention_grad_f32(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), o.data(),
                         lse.data(), hm, &kp, ws.data());
    float *dqv = dev(q), *dkv = dev(k), *dvv = dev(v), *ddo = dev(dout), *dov = out_like(o), *dl = out_like(lse);
    float *gq = out_like(dq), *gk = out_like(dk), *gv = out_like(dv);
    void *dm = mask == 1 ? (void *)dev(madd) : mask == 2 ? (void *)dev(mkeep) : NULL, *dws;
    if (RT_CUDA(cudaMalloc(&dws, lk_attention_grad_f32_ws(&lp) + 4))) exit(1);
    char name[160];
    snprintf(name, sizeof name, "lk_attention_%s B %lld H %lld T %lld S %lld D %lld Dv %lld%s%s", bf16 ? "bf16" : "f32",
             (long long)B, (long long)H, (long long)T, (long long)S, (long long)D, (long long)Dv, causal ? " causal" : "",
             mask == 1 ? " additive mask" : mask == 2 ? " boolean mask" : "");
    double tol = bf16 ? 1e-2 : 1e-5;
    int rc = (bf16 ? lk_attention_bf16 : lk_attention_f32)(rt_cuda_stream(), dov, dl, dqv, dkv, dvv, dm, &lp);
    compare_tol(name, rc, back(dov, o.size()), o, tol);
    std::vector<float> lg = back(dl, lse.size()), lw = lse;
    for (size_t i = 0; i < lw.size(); i++) // rows that see no key: -inf in both
        if (isinf(lw[i]) && lg[i] == lw[i]) lg[i] = lw[i] = 0;
    compare_tol("  its lse", rc, lg, lw, tol);
    rc = (bf16 ? lk_attention_grad_bf16 : lk_attention_grad_f32)(rt_cuda_stream(), gq, gk, gv, ddo, dqv, dkv, dvv, dov,
                                                                 dl, dm, &lp, dws);
    compare_tol("  its dq", rc, back(gq, dq.size()), dq, tol);
    compare_tol("  its dk", rc, back(gk, dk.size()), dk, tol);
    compare_tol("  its dv", rc, back(gv, dv.size()), dv, tol);
    cudaFree(dqv), cudaFree(dkv), cudaFree(dvv), cudaFree(ddo), cudaFree(dov), cudaFree(dl), cudaFree(gq);
    cudaFree(gk), cudaFree(gv), cudaFree(dm), cudaFree(dws);
}

/* bf16: k_linear_ce_bf16 against lk_linear_ce_bf16 (bf16 products, fp32 sums) within 1e-2 */
static void test_linear_ce(int64_t N, int64_t D, int64_t C, int trans_w, int mean, int ignore, int bf16 = 0)
{
    auto x = rand_vec((size_t)(N * D)), w = rand_vec((size_t)(D * C));
    std::vector<int64_t> t((size_t)N);
    for (int64_t i = 0; i < N; i++) t[(size_t)i] = (i * 7 + 3) % C;
    if (ignore) t[1] = -100;
    std::vector<float> loss(1), dx(x.size()), dw(w.size());
    std::vector<char> ws(bf16 ? k_linear_ce_bf16_ws(N, D, C) : k_linear_ce_f32_ws(N, C));
    (bf16 ? k_linear_ce_bf16 : k_linear_ce_f32)(loss.data(), dx.data(), dw.data(), x.data(), w.data(), trans_w,
                                                t.data(), N, D, C, mean, -100, ignore, ws.data());
    float *dxv = dev(x), *dwv = dev(w), *dl = out_like(loss), *ddx = out_like(dx), *ddw = out_like(dw);
    int64_t *dt = dev(t);
    void *dws;
    if (RT_CUDA(cudaMalloc(&dws, bf16 ? lk_linear_ce_bf16_ws(N, D, C) : lk_linear_ce_f32_ws(N, C)))) exit(1);
    int rc = (bf16 ? lk_linear_ce_bf16 : lk_linear_ce_f32)(rt_cuda_stream(), dl, ddx, ddw, dxv, dwv, trans_w, dt, N, D,
                                                          C, mean, -100, ignore, dws);
    char name[128];
    snprintf(name, sizeof name, "lk_linear_ce_%s N %lld D %lld C %lld%s %s%s loss", bf16 ? "bf16" : "f32",
             (long long)N, (long long)D, (long long)C, trans_w ? " trans_w" : "", mean ? "mean" : "sum",
             ignore ? " ignore_index" : "");
    double tol = bf16 ? 1e-2 : 1e-5;
    compare_tol(name, rc, back(dl, 1), loss, tol);
    compare_tol("  its dx", rc, back(ddx, dx.size()), dx, tol);
    compare_tol("  its dw", rc, back(ddw, dw.size()), dw, tol);
    cudaFree(dxv), cudaFree(dwv), cudaFree(dl), cudaFree(ddx), cudaFree(ddw), cudaFree(dt), cudaFree(dws);
}

/* x [d0, d1, d2, d3] summed (kind 0) or averaged (1) over the axes where axes[k] is 1, as k_reduce does */
static void test_reduce_axes(const int64_t *dims, const int *axes, int kind)
{
    int64_t n = dims[0] * dims[1] * dims[2] * dims[3], nout = 1;
    for (int k = 0; k < 4; k++) nout *= axes[k] ? 1 : dims[k];
    auto x = rand_vec((size_t)n);
    std::vector<float> want((size_t)nout);
    k_reduce(want.data(), x.data(), dims, 4, axes, kind, 1);
    LkNd p = {{dims[0], dims[1], dims[2], dims[3]}, {axes[0], axes[1], axes[2], axes[3]}, {0}, 4, 4};
    float *dx = dev(x), *dy = out_like(want);
    int rc = lk_reduce_axes_f32(rt_cuda_stream(), dy, dx, &p, kind);
    char name[128];
    snprintf(name, sizeof name, "lk_reduce_axes_f32 %s [%lld,%lld,%lld,%lld] over %d%d%d%d", kind ? "mean" : "sum",
             (long long)dims[0], (long long)dims[1], (long long)dims[2], (long long)dims[3], axes[0], axes[1], axes[2],
             axes[3]);
    compare(name, rc, back(dy, want.size()), want);
    cudaFree(dx), cudaFree(dy);
}

/* nb 0: the direct kernels; else (group 1) the products over nb images' columns at a time */
static void test_conv(int nd, int64_t N, int64_t C, int64_t M, int64_t group, int64_t in, int64_t k, int64_t stride,
                      int64_t dil, int64_t pad, int64_t nb = 0)
{
    KConv kp = {};
    kp.nd = nd, kp.N = N, kp.C = C, kp.M = M, kp.group = group;
    int64_t sp_in = 1, sp_out = 1, ks = 1;
    for (int d = 0; d < nd; d++) {
        kp.in[d] = in + d, kp.k[d] = k, kp.stride[d] = stride, kp.dilation[d] = dil, kp.pad[d] = pad;
        kp.out[d] = (kp.in[d] + 2 * pad - dil * (k - 1) - 1) / stride + 1;
        sp_in *= kp.in[d], sp_out *= kp.out[d], ks *= k;
    }
    LkConv lp = {nd, N, C, M, group, {0}, {0}, {0}, {0}, {0}, {0}, nb};
    memcpy(lp.in, kp.in, sizeof lp.in), memcpy(lp.out, kp.out, sizeof lp.out), memcpy(lp.k, kp.k, sizeof lp.k);
    memcpy(lp.stride, kp.stride, sizeof lp.stride), memcpy(lp.dilation, kp.dilation, sizeof lp.dilation);
    memcpy(lp.pad, kp.pad, sizeof lp.pad);
    // the columns of nb images (the weight gradient's BatchNormalization form needs the most), NaN-filled:
    // every column element is written; the count against what the direct formula gives
    size_t wsb = lk_conv_f32_ws(&lp, 0, 1);
    float *dws = NULL;
    if (nb && (wsb != (size_t)(nb * C * ks * sp_out) * sizeof(float) || lk_conv_f32_ws(&lp, 0, 0) > wsb)) {
        printf("FAIL lk_conv_f32_ws: %zu bytes for %lld images of %lld x %lld columns\n", wsb, (long long)nb,
               (long long)(C * ks), (long long)sp_out);
        failures++;
    }
    if (nb && (RT_CUDA(cudaMalloc((void **)&dws, wsb + 4)) || RT_CUDA(cudaMemset(dws, 0xff, wsb + 4)))) exit(1);
    auto x = rand_vec((size_t)(N * C * sp_in)), w = rand_vec((size_t)(M * (C / group) * ks)), b = rand_vec((size_t)M);
    auto dy = rand_vec((size_t)(N * M * sp_out));
    std::vector<float> y(dy.size()), dw(w.size());
    std::vector<char> ws(std::max(k_conv_f32_ws(&kp), k_conv_grad_weight_f32_ws(&kp)) + 64);
    k_conv_f32(y.data(), x.data(), w.data(), b.data(), &kp, ws.data());
    k_conv_grad_weight_f32(dw.data(), dy.data(), x.data(), &kp, ws.data());
    float *dxv = dev(x), *dwv = dev(w), *dbv = dev(b), *ddy = dev(dy), *dyv = out_like(y), *ddw = out_like(dw);
    char name[128];
    snprintf(name, sizeof name, "lk_conv_f32 %dd N %lld C %lld M %lld group %lld in %lld k %lld stride %lld dil %lld pad %lld%s",
             nd, (long long)N, (long long)C, (long long)M, (long long)group, (long long)in, (long long)k,
             (long long)stride, (long long)dil, (long long)pad, nb ? " (products)" : "");
    int rc = lk_conv_f32(rt_cuda_stream(), dyv, dxv, dwv, dbv, &lp, dws);
    compare(name, rc, back(dyv, y.size()), y);
    rc = lk_conv_grad_weight_f32(rt_cuda_stream(), ddw, ddy, dxv, &lp, dws);
    compare("  lk_conv_grad_weight_f32", rc, back(ddw, dw.size()), dw);
    // x read as Relu(BatchNormalization(x)): about half the values cut to 0
    auto sc = rand_vec((size_t)C), bi = rand_vec((size_t)C), mean = rand_vec((size_t)C), var = rand_vec((size_t)C);
    for (auto &v : var) v = fabsf(v) + 0.1f;
    std::vector<char> bws(k_conv_grad_weight_bn_relu_f32_ws(&kp) + 64);
    k_conv_grad_weight_bn_relu_f32(dw.data(), dy.data(), x.data(), sc.data(), bi.data(), mean.data(), var.data(), 1e-5f,
                                   &kp, bws.data());
    float *dsc = dev(sc), *dbi = dev(bi), *dm = dev(mean), *dvar = dev(var);
    rc = lk_conv_grad_weight_bn_relu_f32(rt_cuda_stream(), ddw, ddy, dxv, dsc, dbi, dm, dvar, 1e-5f, &lp, dws);
    compare("  lk_conv_grad_weight_bn_relu_f32", rc, back(ddw, dw.size()), dw);
    cudaFree(dxv), cudaFree(dwv), cudaFree(dbv), cudaFree(ddy), cudaFree(dyv), cudaFree(ddw);
    cudaFree(dsc), cudaFree(dbi), cudaFree(dm), cudaFree(dvar), cudaFree(dws);
}

static void test_softmax(int64_t outer, int64_t len, int64_t inner, int is_log)
{
    auto x = rand_vec((size_t)(outer * len * inner)), dy = rand_vec(x.size());
    for (auto &e : x) e *= 5;
    if (!is_log) x[0] = -INFINITY; // a masked score: probability 0
    std::vector<float> y(x.size()), dx(x.size());
    k_softmax_f32(y.data(), x.data(), outer, len, inner, is_log);
    k_softmax_grad_f32(dx.data(), dy.data(), y.data(), outer, len, inner, is_log);
    float *dxv = dev(x), *dyv = out_like(y), *ddy = dev(dy), *dyy = dev(y), *ddx = out_like(dx);
    char name[96];
    snprintf(name, sizeof name, "lk_softmax_f32%s [%lld,%lld,%lld]", is_log ? " log" : "", (long long)outer,
             (long long)len, (long long)inner);
    int rc = lk_softmax_f32(rt_cuda_stream(), dyv, dxv, outer, len, inner, is_log);
    compare(name, rc, back(dyv, y.size()), y);
    rc = lk_softmax_grad_f32(rt_cuda_stream(), ddx, ddy, dyy, outer, len, inner, is_log);
    compare("  its gradient", rc, back(ddx, dx.size()), dx);
    cudaFree(dxv), cudaFree(dyv), cudaFree(ddy), cudaFree(dyy), cudaFree(ddx);
}

static void test_conv_transpose(int64_t N, int64_t C, int64_t M, int64_t group, int64_t in, int64_t k, int64_t stride,
                                int64_t pad, int64_t out_pad, int64_t nb = 0)
{
    // 2d; out = (in - 1) * stride - 2 pad + k + out_pad
    KConv kp = {};
    kp.nd = 2, kp.N = N, kp.C = C, kp.M = M, kp.group = group;
    for (int d = 0; d < 2; d++)
        kp.in[d] = in, kp.k[d] = k, kp.stride[d] = stride, kp.dilation[d] = 1, kp.pad[d] = pad,
        kp.out[d] = (in - 1) * stride - 2 * pad + k + out_pad;
    LkConv lp = {2, N, C, M, group, {in, in}, {kp.out[0], kp.out[1]}, {k, k}, {stride, stride}, {1, 1}, {pad, pad}, nb};
    size_t wsb = lk_conv_f32_ws(&lp, 1, 0); // the columns of nb images (none for 1x1), NaN-filled
    float *dws = NULL;
    if (nb && wsb != (k == 1 && stride == 1 && pad == 0 && out_pad == 0 ? 0 : (size_t)(nb * M * k * k * in * in) * 4)) {
        printf("FAIL lk_conv_f32_ws (transpose): %zu bytes\n", wsb);
        failures++;
    }
    if (nb && (RT_CUDA(cudaMalloc((void **)&dws, wsb + 4)) || RT_CUDA(cudaMemset(dws, 0xff, wsb + 4)))) exit(1);
    auto x = rand_vec((size_t)(N * C * in * in)), w = rand_vec((size_t)(C * (M / group) * k * k)), b = rand_vec((size_t)M);
    std::vector<float> y((size_t)(N * M * kp.out[0] * kp.out[1]));
    std::vector<char> ws(k_conv_transpose_f32_ws(&kp) + 64);
    k_conv_transpose_f32(y.data(), x.data(), w.data(), b.data(), &kp, ws.data());
    float *dxv = dev(x), *dwv = dev(w), *dbv = dev(b), *dyv = out_like(y);
    char name[128];
    snprintf(name, sizeof name, "lk_conv_transpose_f32 N %lld C %lld M %lld group %lld in %lld k %lld stride %lld pad %lld out_pad %lld%s",
             (long long)N, (long long)C, (long long)M, (long long)group, (long long)in, (long long)k, (long long)stride,
             (long long)pad, (long long)out_pad, nb ? " (products)" : "");
    int rc = lk_conv_transpose_f32(rt_cuda_stream(), dyv, dxv, dwv, dbv, &lp, dws);
    compare(name, rc, back(dyv, y.size()), y);
    cudaFree(dxv), cudaFree(dwv), cudaFree(dbv), cudaFree(dyv), cudaFree(dws);
}

static void test_batchnorm(int64_t N, int64_t C, int64_t sp)
{
    auto x = rand_vec((size_t)(N * C * sp)), dy = rand_vec(x.size()), sc = rand_vec((size_t)C), b = rand_vec((size_t)C);
    auto mean = rand_vec((size_t)C), var = rand_vec((size_t)C);
    for (auto &v : var) v = fabsf(v) + 0.1f;
    std::vector<float> y(x.size()), dx(x.size()), ds((size_t)C), db((size_t)C);
    k_batchnorm_f32(y.data(), x.data(), sc.data(), b.data(), mean.data(), var.data(), N, C, sp, 1e-5f);
    k_batchnorm_grad_f32(dx.data(), ds.data(), db.data(), dy.data(), x.data(), sc.data(), mean.data(), var.data(), N, C,
                         sp, 1e-5f, 0);
    float *dxv = dev(x), *ddy = dev(dy), *dsc = dev(sc), *dbv = dev(b), *dm = dev(mean), *dvar = dev(var);
    float *dyv = out_like(y), *ddx = out_like(dx), *dds = out_like(ds), *ddb = out_like(db);
    char name[96];
    snprintf(name, sizeof name, "lk_batchnorm_f32 [%lld,%lld,%lld]", (long long)N, (long long)C, (long long)sp);
    int rc = lk_batchnorm_f32(rt_cuda_stream(), dyv, dxv, dsc, dbv, dm, dvar, N, C, sp, 1e-5f);
    compare(name, rc, back(dyv, y.size()), y);
    rc = lk_batchnorm_grad_f32(rt_cuda_stream(), ddx, dds, ddb, ddy, dxv, dsc, dm, dvar, N, C, sp, 1e-5f);
    compare("  lk_batchnorm_grad_f32 dx", rc, back(ddx, dx.size()), dx);
    compare("  its dscale", rc, back(dds, ds.size()), ds);
    compare("  its dbias", rc, back(ddb, db.size()), db);
    rc = lk_batchnorm_grad_f32(rt_cuda_stream(), ddy, dds, ddb, ddy, dxv, dsc, dm, dvar, N, C, sp, 1e-5f);
    compare("  lk_batchnorm_grad_f32 dx over dy", rc, back(ddy, dx.size()), dx);
    compare("  its dscale", rc, back(dds, ds.size()), ds);
    // dy the gradient of Relu(BatchNormalization(x)) (ddy was overwritten: upload it again)
    k_batchnorm_relu_grad_f32(dx.data(), ds.data(), db.data(), dy.data(), x.data(), sc.data(), b.data(), mean.data(),
                              var.data(), N, C, sp, 1e-5f);
    cudaMemcpy(ddy, dy.data(), dy.size() * sizeof(float), cudaMemcpyHostToDevice);
    rc = lk_batchnorm_relu_grad_f32(rt_cuda_stream(), ddx, dds, ddb, ddy, dxv, dsc, dbv, dm, dvar, N, C, sp, 1e-5f);
    compare("  lk_batchnorm_relu_grad_f32 dx", rc, back(ddx, dx.size()), dx);
    compare("  its dscale", rc, back(dds, ds.size()), ds);
    compare("  its dbias", rc, back(ddb, db.size()), db);
    rc = lk_batchnorm_relu_grad_f32(rt_cuda_stream(), ddy, dds, ddb, ddy, dxv, dsc, dbv, dm, dvar, N, C, sp, 1e-5f);
    compare("  lk_batchnorm_relu_grad_f32 dx over dy", rc, back(ddy, dx.size()), dx);
    cudaFree(dxv), cudaFree(ddy), cudaFree(dsc), cudaFree(dbv), cudaFree(dm), cudaFree(dvar), cudaFree(dyv);
    cudaFree(ddx), cudaFree(dds), cudaFree(ddb);
}

static void test_activation_grad(void)
{
    auto x = rand_vec(999), dy = rand_vec(999);
    for (auto &e : x) e *= 5;
    for (int act = K_ACT_RELU; act <= K_ACT_GELU_TANH; act++) {
        std::vector<float> dx(x.size());
        k_activation_grad_f32(dx.data(), dy.data(), x.data(), 999, act, 0.2f, 0.5f, 1.05f);
        float *dxv = dev(x), *ddy = dev(dy), *ddx = out_like(dx);
        int rc = lk_activation_grad_f32(rt_cuda_stream(), ddx, ddy, dxv, 999, act, 0.2f, 0.5f, 1.05f);
        char name[64];
        snprintf(name, sizeof name, "lk_activation_grad_f32 act %d", act);
        compare(name, rc, back(ddx, dx.size()), dx);
        cudaFree(dxv), cudaFree(ddy), cudaFree(ddx);
    }
}

static void test_groupnorm(int64_t N, int64_t C, int64_t groups, int64_t sp)
{
    auto x = rand_vec((size_t)(N * C * sp)), dy = rand_vec(x.size()), sc = rand_vec((size_t)C), b = rand_vec((size_t)C);
    for (auto &e : x) e = e * 2 + 0.5f;
    std::vector<float> y(x.size()), dx(x.size()), ds((size_t)C), db((size_t)C);
    std::vector<char> ws(k_groupnorm_grad_f32_ws(N, groups));
    k_groupnorm_f32(y.data(), x.data(), sc.data(), b.data(), N, C, groups, sp, 1e-5f);
    k_groupnorm_grad_f32(dx.data(), ds.data(), db.data(), dy.data(), x.data(), sc.data(), N, C, groups, sp, 1e-5f,
                         ws.data());
    float *dxv = dev(x), *ddy = dev(dy), *dsc = dev(sc), *dbv = dev(b);
    float *dyv = out_like(y), *ddx = out_like(dx), *dds = out_like(ds), *ddb = out_like(db);
    void *dws;
    if (RT_CUDA(cudaMalloc(&dws, lk_groupnorm_grad_f32_ws(N, groups)))) exit(1);
    char name[96];
    snprintf(name, sizeof name, "lk_groupnorm_f32 [%lld,%lld,%lld] %lld groups", (long long)N, (long long)C,
             (long long)sp, (long long)groups);
    int rc = lk_groupnorm_f32(rt_cuda_stream(), dyv, dxv, dsc, dbv, N, C, groups, sp, 1e-5f);
    compare(name, rc, back(dyv, y.size()), y);
    rc = lk_groupnorm_grad_f32(rt_cuda_stream(), ddx, dds, ddb, ddy, dxv, dsc, N, C, groups, sp, 1e-5f, dws);
    compare("  lk_groupnorm_grad_f32 dx", rc, back(ddx, dx.size()), dx);
    compare("  its dscale", rc, back(dds, ds.size()), ds);
    compare("  its dbias", rc, back(ddb, db.size()), db);
    cudaFree(dxv), cudaFree(ddy), cudaFree(dsc), cudaFree(dbv), cudaFree(dyv), cudaFree(ddx), cudaFree(dds);
    cudaFree(ddb), cudaFree(dws);
}

static void test_maxpool(int64_t NC, int64_t in, int64_t k, int64_t stride, int64_t pad, int ties)
{
    KPool kp = {};
    kp.nd = 2, kp.NC = NC;
    for (int d = 0; d < 2; d++)
        kp.in[d] = in, kp.k[d] = k, kp.stride[d] = stride, kp.dilation[d] = 1, kp.pad[d] = pad,
        kp.out[d] = (in + 2 * pad - k) / stride + 1;
    LkPool lp = {2, NC, {in, in}, {kp.out[0], kp.out[1]}, {k, k}, {stride, stride}, {1, 1}, {pad, pad}};
    auto x = rand_vec((size_t)(NC * in * in));
    if (ties) for (auto &e : x) e = roundf(e * 2); // many equal values: the first maximum must win
    auto dy = rand_vec((size_t)(NC * kp.out[0] * kp.out[1]));
    std::vector<float> y(dy.size()), dx(x.size());
    std::vector<char> ws(k_maxpool_grad_f32_ws(&kp) + 64);
    k_maxpool_f32(y.data(), NULL, x.data(), &kp);
    k_maxpool_grad_f32(dx.data(), dy.data(), x.data(), &kp, ws.data());
    float *dxv = dev(x), *ddy = dev(dy), *dyv = out_like(y), *ddx = out_like(dx);
    void *dws;
    if (RT_CUDA(cudaMalloc(&dws, lk_maxpool_grad_f32_ws(&lp)))) exit(1);
    char name[96];
    snprintf(name, sizeof name, "lk_maxpool_f32 NC %lld in %lld k %lld stride %lld pad %lld%s", (long long)NC,
             (long long)in, (long long)k, (long long)stride, (long long)pad, ties ? " ties" : "");
    int rc = lk_maxpool_f32(rt_cuda_stream(), dyv, dxv, &lp);
    compare(name, rc, back(dyv, y.size()), y);
    rc = lk_maxpool_grad_f32(rt_cuda_stream(), ddx, ddy, dxv, &lp, dws);
    compare("  lk_maxpool_grad_f32", rc, back(ddx, dx.size()), dx);
    // the maxima of Relu(BatchNormalization(x)), NC as 2 images of NC / 2 channels (or one of NC)
    int64_t C = NC % 2 ? NC : NC / 2;
    auto sc = rand_vec((size_t)C), bi = rand_vec((size_t)C), mean = rand_vec((size_t)C), var = rand_vec((size_t)C);
    for (auto &v : var) v = fabsf(v) + 0.1f;
    std::vector<char> bws(k_maxpool_grad_bn_relu_f32_ws(&kp) + 64);
    k_maxpool_grad_bn_relu_f32(dx.data(), dy.data(), x.data(), sc.data(), bi.data(), mean.data(), var.data(), 1e-5f, C,
                               &kp, bws.data());
    float *dsc = dev(sc), *dbi = dev(bi), *dm = dev(mean), *dvar = dev(var);
    rc = lk_maxpool_grad_bn_relu_f32(rt_cuda_stream(), ddx, ddy, dxv, dsc, dbi, dm, dvar, 1e-5f, C, &lp, dws);
    compare("  lk_maxpool_grad_bn_relu_f32", rc, back(ddx, dx.size()), dx);
    cudaFree(dxv), cudaFree(ddy), cudaFree(dyv), cudaFree(ddx), cudaFree(dws);
    cudaFree(dsc), cudaFree(dbi), cudaFree(dm), cudaFree(dvar);
}

/* lk_mma_bf16 (mma.sync on a GPU) and lk_mma_bf16_shfl (the shuffles the
 * emulator runs) against a double-precision product, on operands loaded by
 * the fragment layout of lk_mma.cuh: a layout the tensor cores read
 * otherwise fails the first */
static __global__ void mma_probe(float *d, const uint16_t *A, const uint16_t *B, const float *C)
{
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#define MMA_PAIR(lo, hi) ((uint32_t)(lo) | (uint32_t)(hi) << 16)
    uint32_t a[4] = {MMA_PAIR(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]),
                     MMA_PAIR(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]),
                     MMA_PAIR(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]),
                     MMA_PAIR(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9])};
    uint32_t b[2] = {MMA_PAIR(B[2 * t * 8 + g], B[(2 * t + 1) * 8 + g]),
                     MMA_PAIR(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g])};
#undef MMA_PAIR
    int at[4] = {g * 8 + 2 * t, g * 8 + 2 * t + 1, (g + 8) * 8 + 2 * t, (g + 8) * 8 + 2 * t + 1};
    float c[4], e[4];
    for (int i = 0; i < 4; i++) c[i] = e[i] = C[at[i]];
    lk_mma_bf16(c, a, b);
    lk_mma_bf16_shfl(e, a, b);
    for (int i = 0; i < 4; i++) d[at[i]] = c[i], d[128 + at[i]] = e[i];
}

static void test_mma(void)
{
    auto A = rand_bf16(16 * 16), B = rand_bf16(16 * 8);
    auto C = rand_vec(16 * 8);
    auto fa = widen(A), fb = widen(B);
    std::vector<float> ref(16 * 8);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double s = C[i * 8 + j];
            for (int k = 0; k < 16; k++) s += (double)fa[i * 16 + k] * fb[k * 8 + j];
            ref[i * 8 + j] = (float)s;
        }
    uint16_t *dA = dev(A), *dB = dev(B);
    float *dC = dev(C), *dd = dev(std::vector<float>(256, NAN));
    int rc = LOOM_LAUNCH(mma_probe, 1, 32, 0, rt_cuda_stream(), dd, dA, dB, dC);
    auto d = back(dd, 256);
    compare("lk_mma_bf16 m16n8k16", rc, std::vector<float>(d.begin(), d.begin() + 128), ref);
    compare("lk_mma_bf16_shfl m16n8k16", rc, std::vector<float>(d.begin() + 128, d.end()), ref);
    cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(dd);
}

int main(void)
{
    if (rt_device_cuda.init()) {
        fprintf(stderr, "test_kernels: %s\n", rt_error());
        return 1;
    }
    test_mma();
    {
        /* the generated programs' workspace check: enough passes, too little fails naming both counts */
        int ok = lk_ws_check(4096, 4096) == 0 && lk_ws_check(4097, 4096) != 0 &&
                 strstr(rt_error(), "needs 4097 bytes of workspace and the plan gave 4096") != NULL;
        printf("%s lk_ws_check\n", ok ? "PASS" : "FAIL");
        failures += !ok;
    }
    test_gemm(1, 4, 128, 784, 0, 1, 1, 1.0f, 0.0f, 0);   /* a Linear layer: x w^T + b */
    test_gemm(1, 10, 64, 4, 1, 0, 0, 1.0f, 0.0f, 0);     /* its weight gradient */
    test_gemm(1, 33, 17, 29, 1, 1, 0, 0.5f, 0.25f, 0);   /* alpha, beta, odd sizes */
    test_gemm(3, 16, 24, 8, 0, 0, 0, 1.0f, 0.0f, 0);     /* strided batches */
    test_gemm(3, 16, 24, 8, 0, 1, 0, 1.0f, 0.0f, 1);     /* one matrix for every batch */
    for (int ta = 0; ta < 2; ta++) /* bfloat16: every transpose, strided batches, both outputs */
        for (int tb = 0; tb < 2; tb++)
            for (int f32out = 0; f32out < 2; f32out++) {
                test_gemm_bf16(3, 16, 24, 40, ta, tb, 1.0f, 0.0f, 0, f32out);
                test_gemm_bf16(1, 33, 17, 29, ta, tb, 0.5f, 0.25f, 0, f32out);
            }
    test_gemm_bf16(3, 16, 24, 8, 0, 1, 1.0f, 0.0f, 1, 0); /* one matrix for every batch */
    test_gemm_bf16(1, 64, 96, 128, 1, 0, 1.0f, 1.0f, 0, 1); /* a weight gradient accumulated into fp32 */
    test_gemm_bf16(1, 1, 7, 5, 0, 0, 1.0f, 0.0f, 0, 0);     /* one row */
    test_broadcast(5, 7, 5, 1);
    test_broadcast(5, 7, 1, 1);
    test_reduce(1, 4, 128, 0);
    test_reduce(6, 1000, 1, 1);
    test_reduce(3, 5, 7, 0);
    test_reduce(1, 300, 70, 0);  /* few long columns: a block per 32 columns */
    /* against kdft.c's FFTs (power-of-two lengths) and direct sums */
    test_dft(2, 16, 3, 1, 16, 1, 0); /* real, onesided: the cpu's half-length FFT */
    test_dft(3, 8, 1, 2, 8, 0, 0);   /* complex, full */
    test_dft(1, 12, 2, 2, 12, 0, 1); /* not a power of two, inverse */
    test_dft(1, 10, 4, 1, 16, 0, 0); /* zero-padded to 16 */
    test_dft(2, 20, 1, 2, 16, 0, 1); /* truncated to 16, inverse */
    /* the cuFFT forms: batches over outer (inner <= outer) and over inner */
    test_dft(4, 32, 1, 1, 32, 1, 0);  /* R2C onesided, fno_small's first */
    test_dft(8, 32, 3, 2, 32, 0, 0);  /* C2C along a middle axis */
    test_dft(2, 32, 17, 2, 32, 0, 1); /* C2C inverse, batch over inner */
    test_dft(3, 15, 5, 1, 15, 0, 0);  /* real, every bin: R2C, then the mirror */
    test_dft(2, 14, 3, 1, 14, 0, 1);  /* real inverse: the conjugate of R2C, mirrored */
    test_dft(5, 7, 2, 1, 9, 1, 0);    /* zero-padded R2C, odd length */
    test_dft(2, 11, 6, 2, 11, 0, 0);  /* a prime length (Bluestein's reserve) */
    test_dft(3, 9, 2, 2, 8, 0, 1);    /* truncated, batch over inner */
    test_dft(2, 6, 2, 2, 6, 1, 0);    /* complex onesided: always the direct sum */
    test_dft(3, 24, 2, 2, 24, 0, 0, 1); /* a plan over its reserve: the direct sum */
    test_reduce(3, 200, 33, 1);
    test_sce(4, 10, 2, 0);
    test_sce(37, 300, 1, 0);
    test_sce(8, 96, 2, 1);
    test_optim(1000, 0);
    test_optim(1003, 0);
    test_optim(1003, 1);
    test_linear_ce(128, 64, 96, 0, 1, 0); /* gpt2_tiny's head */
    test_linear_ce(37, 16, 300, 1, 0, 1);
    test_linear_ce(100, 4, 100000, 1, 1, 1); /* a wide vocabulary: one block of rows (at least 1024) */
    test_linear_ce(2500, 8, 5000, 0, 1, 1);  /* two blocks of rows (1677 + 823): dW summed over them */
    test_linear_ce(50, 8, 333, 0, 1, 1);     /* rows not a multiple of 4 floats: the rows' kernel reads l thrice */
    test_linear_ce(128, 64, 96, 1, 1, 0, 1); /* bf16 products */
    test_linear_ce(2500, 8, 5000, 0, 0, 1, 1);
    test_linear_ce(300, 24, 1001, 1, 1, 1, 1); /* classes not a multiple of 128: rows padded */
    test_linear_ce(300, 24, 1001, 0, 1, 0, 1);
    {
        /* a conv bias's gradient: a thread per output ([3,4,5,6]), a block per output (long sums) */
        const int64_t d0[4] = {3, 4, 5, 6}, d1[4] = {4, 16, 32, 32}, d2[4] = {2, 3, 40, 7};
        const int a0[4] = {1, 0, 1, 1}, a1[4] = {0, 1, 0, 1};
        test_reduce_axes(d0, a0, 0);
        test_reduce_axes(d1, a0, 0);
        test_reduce_axes(d1, a0, 1);
        test_reduce_axes(d2, a1, 0);
    }
    test_softmax(16, 300, 1, 0);
    test_softmax(16, 300, 1, 1);
    test_softmax(3, 7, 5, 0);
    test_softmax(3, 7, 5, 1);
    test_conv(2, 2, 3, 8, 1, 16, 4, 4, 1, 0); /* a ViT's patch embedding */
    test_conv(2, 2, 4, 6, 2, 9, 3, 2, 2, 1);  /* groups, stride, dilation, pads */
    test_conv(1, 1, 3, 4, 1, 11, 3, 1, 1, 1);
    test_conv(3, 1, 2, 2, 1, 5, 2, 1, 1, 0);
    test_conv_transpose(2, 4, 6, 2, 5, 3, 2, 1, 1); /* a Conv's input gradient: groups, stride, pads */
    test_conv_transpose(1, 3, 2, 1, 7, 3, 1, 1, 0);
    /* the products' form (group 1): 2 of 3 images a chunk (the last chunk short), strides, dilation, pads */
    test_conv(2, 3, 3, 8, 1, 16, 4, 4, 1, 0, 2);
    test_conv(2, 3, 5, 6, 1, 9, 3, 2, 2, 1, 2);
    test_conv(1, 3, 3, 4, 1, 11, 3, 1, 1, 1, 1);
    test_conv(3, 2, 2, 3, 1, 5, 2, 1, 1, 0, 2);
    test_conv(2, 3, 6, 5, 1, 7, 1, 1, 1, 0, 3); /* 1x1: the columns are x itself */
    test_conv(2, 2, 6, 5, 1, 7, 1, 2, 1, 0, 1); /* 1x1 at stride 2: columns */
    test_conv_transpose(3, 4, 6, 1, 5, 3, 2, 1, 1, 2);
    test_conv_transpose(2, 3, 2, 1, 7, 3, 1, 1, 0, 1);
    test_conv_transpose(3, 5, 4, 1, 6, 1, 1, 0, 0, 2); /* 1x1: y = w^T x, no columns */
    test_batchnorm(4, 16, 64);
    test_activation_grad();
    test_groupnorm(2, 8, 8, 100);  /* instance norm */
    test_groupnorm(2, 8, 2, 30);
    test_maxpool(6, 8, 2, 2, 0, 0);
    test_maxpool(3, 9, 3, 2, 1, 1); /* overlapping windows, padding, ties */
    test_copy();
    test_pad(0);
    test_pad(1);
    test_pad(2);
    test_pad(3);
    test_gather(1, 96, 128, 64);  /* an embedding: repeated and negative indices */
    test_gather(3, 7, 5, 4);
    test_gather(1, 50, 700, 300); /* rows of many indices (14 each), columns past a block's threads */
    test_gather(2, 64, 3000, 40, 1); /* one row of 2250 indices (padding) */
    test_layernorm(128, 64, 1);
    test_layernorm(5, 300, 0);
    test_layernorm(300, 40, 1); /* three chunks of rows for dscale, dbias, the last partial */
    test_rmsnorm(128, 64);
    test_rmsnorm(5, 300);
    test_rmsnorm(260, 33);
    test_attention(2, 2, 32, 32, 16, 16, 1, 0);   /* a causal decoder */
    test_attention(1, 3, 70, 130, 24, 40, 0, 1);  /* T != S, D != Dv, several key tiles, additive mask */
    test_attention(2, 2, 65, 40, 8, 8, 1, 2);     /* causal S < T (rows that see no key), boolean mask */
    /* the tiled kernels (no mask, D = Dv <= 64): partial tiles on both sides, the padded head size */
    test_attention(1, 2, 130, 130, 64, 64, 1, 0); /* causal, GPT-2's head size */
    test_attention(2, 1, 70, 150, 40, 40, 0, 0);  /* T != S, not causal */
    test_attention(1, 2, 100, 60, 16, 16, 1, 0);  /* causal S < T: the first 40 rows see no key */
    test_attention(1, 1, 20, 90, 64, 64, 1, 0);   /* causal S > T: every row sees the first 70 keys */
    test_attention(1, 2, 130, 130, 64, 64, 1, 0, 1); /* the same on bf16 tensor cores */
    test_attention(2, 1, 70, 150, 40, 40, 0, 0, 1);
    test_attention(1, 2, 100, 60, 16, 16, 1, 0, 1);
    test_attention(1, 1, 20, 90, 64, 64, 1, 0, 1);
    return failures ? 1 : 0;
}
