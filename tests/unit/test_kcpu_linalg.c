/* Unit tests of the cpu matrix-product kernels (klinalg.c) against naive
 * references written here as direct loops in double: MatMul with numpy batch
 * broadcasting (offsets), float64 and wrapping integer MatMul, and Gemm with
 * every transpose, alpha/beta and broadcast shape of C. Error measure (ggml
 * style): |got - want| / (|want| + 1) under 1e-5 for float32. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "kernels.h"

#define KRAND_SEED 88172645463325252ull
#include "krand.h"

/* numpy broadcasting of a [ab0, ab1, M, K] times b [bb0, bb1, K, N]: the
 * caller-side offsets the kernel contract asks for. */
static void offsets(int64_t *a_off, int64_t *b_off, int64_t ab0, int64_t ab1, int64_t bb0,
                    int64_t bb1, int64_t M, int64_t N, int64_t K, int64_t *batch)
{
    int64_t o0 = ab0 > bb0 ? ab0 : bb0, o1 = ab1 > bb1 ? ab1 : bb1;
    *batch = o0 * o1;
    for (int64_t i = 0; i < o0; i++)
        for (int64_t j = 0; j < o1; j++) {
            a_off[i * o1 + j] = ((ab0 == 1 ? 0 : i) * ab1 + (ab1 == 1 ? 0 : j)) * M * K;
            b_off[i * o1 + j] = ((bb0 == 1 ? 0 : i) * bb1 + (bb1 == 1 ? 0 : j)) * K * N;
        }
}

static void ref_matmul(double *y, const float *a, const float *b, int64_t batch, int64_t M,
                       int64_t N, int64_t K, const int64_t *ao, const int64_t *bo)
{
    for (int64_t i = 0; i < batch; i++)
        for (int64_t r = 0; r < M; r++)
            for (int64_t c = 0; c < N; c++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)a[(ao ? ao[i] : i * M * K) + r * K + k] *
                         b[(bo ? bo[i] : i * K * N) + k * N + c];
                y[(i * M + r) * N + c] = s;
            }
}

static void one_matmul(int64_t ab0, int64_t ab1, int64_t bb0, int64_t bb1, int64_t M, int64_t N,
                       int64_t K, int dense)
{
    int64_t ao[64], bo[64], batch;
    offsets(ao, bo, ab0, ab1, bb0, bb1, M, N, K, &batch);
    float *a = rand_f(ab0 * ab1 * M * K), *b = rand_f(bb0 * bb1 * K * N);
    float *y = rand_f(batch * M * N);
    double *want = malloc((size_t)(batch * M * N + 1) * sizeof *want);
    k_matmul_f32(y, a, b, batch, M, N, K, dense ? NULL : ao, dense ? NULL : bo);
    ref_matmul(want, a, b, batch, M, N, K, dense ? NULL : ao, dense ? NULL : bo);
    double e = max_err_f(y, want, batch * M * N);
    if (!(e < 1e-5))
        fprintf(stderr, "  matmul [%lld,%lld]x[%lld,%lld] M%lld N%lld K%lld: err %g\n",
                (long long)ab0, (long long)ab1, (long long)bb0, (long long)bb1, (long long)M,
                (long long)N, (long long)K, e);
    CHECK(e < 1e-5);
    free(a), free(b), free(y), free(want);
}

static void test_matmul_f32(void)
{
    one_matmul(1, 1, 1, 1, 1, 1, 1, 1);
    one_matmul(1, 1, 1, 1, 7, 1, 5, 1);      // matrix times vector
    one_matmul(1, 1, 1, 1, 1, 9, 4, 1);      // vector times matrix
    one_matmul(2, 3, 2, 3, 5, 6, 7, 1);      // dense batch
    one_matmul(2, 1, 1, 3, 4, 5, 3, 0);      // both sides broadcast
    one_matmul(1, 1, 4, 2, 3, 8, 6, 0);      // a shared by every batch
    one_matmul(3, 4, 1, 1, 6, 2, 9, 0);      // b shared (a weight)
    one_matmul(1, 1, 1, 1, 70, 80, 90, 1);   // above the BLAS threading threshold
    one_matmul(2, 1, 2, 1, 65, 67, 71, 0);   // large, batched
    one_matmul(2, 2, 2, 2, 3, 4, 0, 1);      // K = 0: zeros
    for (int t = 0; t < 20; t++) { // random shapes; each batch dim matches or is 1
        int64_t a0 = irand(1, 3), a1 = irand(1, 3);
        int64_t b0 = irand(0, 1) ? 1 : a0, b1 = irand(0, 1) ? 1 : a1;
        if (irand(0, 1)) a1 = 1, b1 = irand(1, 3);
        one_matmul(a0, a1, b0, b1, irand(1, 17), irand(1, 17), irand(1, 33), 0);
    }
}

static void test_matmul_f64(void)
{
    int64_t ao[8], bo[8], batch, M = 13, N = 11, K = 17;
    offsets(ao, bo, 2, 1, 1, 3, M, N, K, &batch);
    double *a = malloc(2 * M * K * sizeof *a), *b = malloc(3 * K * N * sizeof *b);
    double *y = malloc((size_t)(batch * M * N) * sizeof *y);
    for (int64_t i = 0; i < 2 * M * K; i++) a[i] = frand();
    for (int64_t i = 0; i < 3 * K * N; i++) b[i] = frand();
    k_matmul_f64(y, a, b, batch, M, N, K, ao, bo);
    double e = 0;
    for (int64_t i = 0; i < batch; i++)
        for (int64_t r = 0; r < M; r++)
            for (int64_t c = 0; c < N; c++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) s += a[ao[i] + r * K + k] * b[bo[i] + k * N + c];
                double d = fabs(y[(i * M + r) * N + c] - s) / (fabs(s) + 1);
                if (d > e) e = d;
            }
    CHECK(e < 1e-12);
    free(a), free(b), free(y);
}

static void test_matmul_int(void)
{
    // int32 with products that overflow: the result must wrap mod 2^32
    int64_t M = 5, N = 7, K = 9, batch = 2;
    int32_t a[2 * 5 * 9], b[2 * 9 * 7], y[2 * 5 * 7];
    for (int i = 0; i < 2 * M * K; i++) a[i] = (int32_t)(next_u() >> 32);
    for (int i = 0; i < 2 * K * N; i++) b[i] = (int32_t)(next_u() >> 33) - (1 << 30);
    k_matmul_int(y, a, b, batch, M, N, K, NULL, NULL, 6);
    int ok = 1;
    for (int64_t i = 0; i < batch; i++)
        for (int64_t r = 0; r < M; r++)
            for (int64_t c = 0; c < N; c++) {
                uint32_t s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (uint32_t)a[i * M * K + r * K + k] * (uint32_t)b[i * K * N + k * N + c];
                ok &= (uint32_t)y[(i * M + r) * N + c] == s;
            }
    CHECK(ok);
    // int64 with broadcast offsets and small values: exact, signed
    int64_t a64[3 * 4], b64[2 * 4 * 3], y64[2 * 3 * 3], ao[2] = {0, 0}, bo[2] = {0, 12};
    for (int i = 0; i < 12; i++) a64[i] = irand(-50, 50);
    for (int i = 0; i < 24; i++) b64[i] = irand(-50, 50);
    k_matmul_int(y64, a64, b64, 2, 3, 3, 4, ao, bo, 7);
    ok = 1;
    for (int64_t i = 0; i < 2; i++)
        for (int64_t r = 0; r < 3; r++)
            for (int64_t c = 0; c < 3; c++) {
                int64_t s = 0;
                for (int64_t k = 0; k < 4; k++) s += a64[r * 4 + k] * b64[bo[i] + k * 3 + c];
                ok &= y64[(i * 3 + r) * 3 + c] == s;
            }
    CHECK(ok);
    // uint32 near the top of the range
    uint32_t au[2] = {4000000000u, 3u}, bu[2] = {2u, 4000000000u}, yu[1];
    k_matmul_int(yu, au, bu, 1, 1, 1, 2, NULL, NULL, 12);
    CHECK(yu[0] == (uint32_t)(4000000000u * 2u + 3u * 4000000000u));
}

static void one_gemm(int64_t M, int64_t N, int64_t K, int ta, int tb, float alpha, float beta,
                     int64_t cr, int64_t cc)
{
    float *a = rand_f(M * K), *b = rand_f(K * N), *c = cr ? rand_f(cr * cc) : NULL;
    float *y = rand_f(M * N);
    double *want = malloc((size_t)(M * N) * sizeof *want);
    k_gemm_f32(y, a, b, c, M, N, K, ta, tb, alpha, beta, cr, cc);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
            s *= alpha;
            if (c) s += (double)beta * c[(cr == 1 ? 0 : i) * cc + (cc == 1 ? 0 : j)];
            want[i * N + j] = s;
        }
    double e = max_err_f(y, want, M * N);
    if (!(e < 1e-5))
        fprintf(stderr, "  gemm M%lld N%lld K%lld ta%d tb%d c[%lld,%lld]: err %g\n", (long long)M,
                (long long)N, (long long)K, ta, tb, (long long)cr, (long long)cc, e);
    CHECK(e < 1e-5);
    free(a), free(b), free(c), free(y), free(want);
}

static void test_gemm_f32(void)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            one_gemm(5, 7, 3, ta, tb, 1.0f, 1.0f, 0, 0);
            one_gemm(5, 7, 3, ta, tb, 0.5f, 2.0f, 5, 7);
            one_gemm(6, 4, 9, ta, tb, -1.5f, 0.25f, 1, 4);
            one_gemm(6, 4, 9, ta, tb, 2.0f, -1.0f, 6, 1);
            one_gemm(1, 1, 1, ta, tb, 1.0f, 3.0f, 1, 1);
            one_gemm(70, 90, 80, ta, tb, 0.75f, 0.5f, 1, 90);
        }
    one_gemm(4, 3, 0, 0, 0, 1.0f, 2.0f, 1, 3); // K = 0: beta * C only
    one_gemm(4, 3, 0, 1, 1, 1.0f, 2.0f, 0, 0);
    for (int t = 0; t < 20; t++) {
        int64_t M = irand(1, 20), N = irand(1, 20);
        int s = (int)irand(0, 4);
        int64_t cr = s == 0 ? 0 : s == 1 ? 1 : s == 2 ? M : s == 3 ? 1 : M;
        int64_t cc = s == 0 ? 0 : s == 1 ? 1 : s == 2 ? 1 : N;
        one_gemm(M, N, irand(1, 20), (int)irand(0, 1), (int)irand(0, 1), frand() * 2, frand() * 2,
                 cr, cc);
    }
}

/* The same bits whatever the thread count, on the batch-threaded path. */
static void test_matmul_threads_bitwise(void)
{
    int64_t batch = 12, M = 40, N = 60, K = 80; // over K_PAR_MACS in all, each product under
    CHECK(M * N * K < K_PAR_MACS && batch * M * N * K >= K_PAR_MACS);
    float *a = rand_f(batch * M * K), *b = rand_f(K * N), *y1 = rand_f(batch * M * N);
    float *y2 = rand_f(batch * M * N);
    int64_t ao[12], bo[12];
    for (int i = 0; i < 12; i++) ao[i] = i * M * K, bo[i] = 0;
    for (int t = 0; t < 2; t++) {
        k_set_threads(t ? 3 : 1);
        k_matmul_f32(t ? y2 : y1, a, b, batch, M, N, K, ao, bo);
    }
    CHECK(memcmp(y1, y2, (size_t)(batch * M * N) * sizeof *y1) == 0);
    free(a), free(b), free(y1), free(y2);
    k_set_threads(0);
}

/* Products large enough to be split over threads (or too short to be),
 * transposed or not: the same bits at 1 and 3 threads. */
static void test_gemm_split_bitwise(void)
{
    // each at least K_PAR_MACS multiply-adds, so that 3 threads do split it: by rows, or
    // (few rows through the register tiles) by columns, 4 x 301 one block and a partial one
    int64_t shapes[][3] = {{400, 150, 100}, {48, 1400, 64}, {9, 4000, 130}, {1000, 17, 260},
                           {16, 5000, 60}, {40, 1030, 110}, {4, 301, 784}, {70, 90, 50}};
    for (int s = 0; s < 8; s++) {
        CHECK(shapes[s][0] * shapes[s][1] * shapes[s][2] >= K_PAR_MACS);
        for (int tr = 0; tr < 4; tr++) {
            int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            int ta = tr & 1, tb = tr >> 1;
            float *a = rand_f(M * K), *b = rand_f(K * N), *c = rand_f(N);
            float *y1 = rand_f(M * N), *y2 = rand_f(M * N);
            for (int t = 0; t < 2; t++) {
                k_set_threads(t ? 3 : 1);
                k_gemm_f32(t ? y2 : y1, a, b, c, M, N, K, ta, tb, 0.5f, 2.0f, 1, N);
            }
            CHECK(memcmp(y1, y2, (size_t)(M * N) * sizeof *y1) == 0);
            free(a), free(b), free(c), free(y1), free(y2);
        }
    }
    k_set_threads(0);
}

/* Any block of rows computed alone has the bits of the same rows of the whole
 * product (k_sgemm's tiles and masked edges compute every element alike). */
static void test_sgemm_rows_bitwise(void)
{
    for (int t = 0; t < 40; t++) {
        int64_t M = irand(1, 40), N = irand(1, 70), K = irand(1, 90);
        int tb = t % 3 == 1, ta = t % 3 == 2; /* a^T b: a (K, M), rows lo.. of y its columns lo.. */
        float beta = t % 3 == 0 ? 0.0f : 0.5f;
        float *a = rand_f(M * K), *b = rand_f(K * N), *y = rand_f(M * N), *part = rand_f(M * N);
        memcpy(part, y, (size_t)(M * N) * sizeof *y);
        k_sgemm(ta, tb, M, N, K, 1.25f, a, ta ? M : K, b, tb ? K : N, beta, y, N);
        int64_t lo = irand(0, M - 1), hi = irand(lo + 1, M);
        k_sgemm(ta, tb, hi - lo, N, K, 1.25f, ta ? a + lo : a + lo * K, ta ? M : K, b, tb ? K : N, beta,
                part + lo * N, N);
        CHECK(memcmp(y + lo * N, part + lo * N, (size_t)((hi - lo) * N) * sizeof *y) == 0);
        free(a), free(b), free(y), free(part);
    }
}

/* Any block of columns computed alone has the bits of the same columns of the
 * whole product, for operands the register tiles take (a product of few rows
 * is split over threads that way). */
static void test_sgemm_cols_bitwise(void)
{
    for (int t = 0; t < 40; t++) {
        int64_t M = irand(1, 12), N = irand(1, 90), K = irand(1, 300);
        int tb = t & 1;
        float beta = t % 3 == 0 ? 0.0f : 0.5f;
        int64_t ldb = tb ? K : N;
        float *a = rand_f(M * K), *b = rand_f(K * N), *y = rand_f(M * N), *part = rand_f(M * N);
        memcpy(part, y, (size_t)(M * N) * sizeof *y);
        k_sgemm(0, tb, M, N, K, 1.25f, a, K, b, ldb, beta, y, N);
        int64_t lo = irand(0, N - 1), hi = irand(lo + 1, N);
        k_sgemm(0, tb, M, hi - lo, K, 1.25f, a, K, tb ? b + lo * ldb : b + lo, ldb, beta, part + lo, N);
        for (int64_t r = 0; r < M; r++)
            CHECK(memcmp(y + r * N + lo, part + r * N + lo, (size_t)(hi - lo) * sizeof *y) == 0);
        free(a), free(b), free(y), free(part);
    }
}

/* The AVX-512 tiles give the AVX2 tiles' bits (ktile.h): random small
 * products, b transposed or not, with beta 0 and not. Where the processor lacks AVX-512 both runs are AVX2. */
static void test_sgemm_avx512_bitwise(void)
{
    int wide = k_tiles_set_avx512(1);
    if (!wide) printf("  (no AVX-512 on this processor: AVX2 against itself)\n");
    for (int t = 0; t < 60; t++) {
        int64_t M = irand(1, 30), N = irand(1, 100), K = irand(1, 200);
        int tb = t % 4 == 1, ta = t % 4 == 2; /* a^T b: a (K, M) read in place */
        float beta = t % 3 == 0 ? 0.0f : 0.5f;
        float *a = rand_f(M * K), *b = rand_f(K * N), *y = rand_f(M * N), *y2 = rand_f(M * N);
        memcpy(y2, y, (size_t)(M * N) * sizeof *y);
        k_tiles_set_avx512(1);
        k_sgemm(ta, tb, M, N, K, 1.25f, a, ta ? M : K, b, tb ? K : N, beta, y, N);
        k_tiles_set_avx512(0);
        k_sgemm(ta, tb, M, N, K, 1.25f, a, ta ? M : K, b, tb ? K : N, beta, y2, N);
        CHECK(memcmp(y, y2, (size_t)(M * N) * sizeof *y) == 0);
        free(a), free(b), free(y), free(y2);
    }
    k_tiles_set_avx512(-1);
}

int main(void)
{
    RUN(test_matmul_f32);
    RUN(test_matmul_f64);
    RUN(test_matmul_int);
    RUN(test_gemm_f32);
    RUN(test_matmul_threads_bitwise);
    RUN(test_gemm_split_bitwise);
    RUN(test_sgemm_rows_bitwise);
    RUN(test_sgemm_cols_bitwise);
    RUN(test_sgemm_avx512_bitwise);
    return CHECK_DONE();
}
