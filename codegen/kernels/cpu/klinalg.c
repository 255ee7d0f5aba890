/* Matrix products for the cpu target: MatMul (float32, float64 and wrapping
 * integers) and Gemm. The float forms go through OpenBLAS; a batch of small
 * products (below OpenBLAS's own threading threshold, so every call runs on the
 * calling thread) is spread over OpenMP threads instead, one whole product per
 * thread, so results never depend on the thread count. Integer products have
 * no BLAS and are plain loops in unsigned arithmetic, which wraps as ONNX
 * integer overflow does. */
#include <cblas.h>
#include <string.h>

#include "kernels.h"

/* OpenBLAS runs a gemm on one thread when m*n*k is below 65536 * 4
 * (SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD); under that, threading the
 * batch ourselves is the only parallelism there is. */
#define SMALL_GEMM ((int64_t)65536 * 4)

/* ONNX TensorProto data type numbers of the integer matmul dtypes. */
enum { DT_INT32 = 6, DT_INT64 = 7, DT_UINT32 = 12, DT_UINT64 = 13 };

static int64_t off_of(const int64_t *off, int64_t i, int64_t dense)
{
    return off ? off[i] : i * dense;
}

void k_matmul_f32(float *y, const float *a, const float *b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const int64_t *a_off, const int64_t *b_off)
{
    // a[i] is (M,K), b[i] is (K,N), y is (batch,M,N)
    if (batch <= 0 || M <= 0 || N <= 0) return;
    if (K <= 0) { // an empty sum; BLAS would reject lda = 0
        memset(y, 0, (size_t)(batch * M * N) * sizeof *y);
        return;
    }
    int small = M * N * K < SMALL_GEMM && batch > 1;
#pragma omp parallel for schedule(static) if (small)
    for (int64_t i = 0; i < batch; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f,
                    a + off_of(a_off, i, M * K), (int)K, b + off_of(b_off, i, K * N), (int)N, 0.0f,
                    y + i * M * N, (int)N);
}

void k_matmul_f64(double *y, const double *a, const double *b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const int64_t *a_off, const int64_t *b_off)
{
    if (batch <= 0 || M <= 0 || N <= 0) return;
    if (K <= 0) {
        memset(y, 0, (size_t)(batch * M * N) * sizeof *y);
        return;
    }
    int small = M * N * K < SMALL_GEMM && batch > 1;
#pragma omp parallel for schedule(static) if (small)
    for (int64_t i = 0; i < batch; i++)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0,
                    a + off_of(a_off, i, M * K), (int)K, b + off_of(b_off, i, K * N), (int)N, 0.0,
                    y + i * M * N, (int)N);
}

/* One integer product per element type T; i-k-j order so the inner loop
 * streams rows of b and y. */
#define MATMUL_INT(T)                                                                          \
    do {                                                                                       \
        T *yy = y;                                                                             \
        const T *aa = a, *bb = b;                                                              \
        _Pragma("omp parallel for collapse(2) schedule(static)")                              \
        for (int64_t i = 0; i < batch; i++)                                                    \
            for (int64_t r = 0; r < M; r++) {                                                  \
                const T *ar = aa + off_of(a_off, i, M * K) + r * K;                            \
                const T *bi = bb + off_of(b_off, i, K * N);                                    \
                T *yr = yy + (i * M + r) * N;                                                  \
                for (int64_t j = 0; j < N; j++) yr[j] = 0;                                     \
                for (int64_t k = 0; k < K; k++) {                                              \
                    T av = ar[k];                                                              \
                    const T *br = bi + k * N;                                                  \
                    for (int64_t j = 0; j < N; j++) yr[j] += av * br[j];                       \
                }                                                                              \
            }                                                                                  \
    } while (0)

void k_matmul_int(void *y, const void *a, const void *b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const int64_t *a_off, const int64_t *b_off, int dtype)
{
    // signed and unsigned share one unsigned loop: two's complement wraps identically
    if (dtype == DT_INT32 || dtype == DT_UINT32) MATMUL_INT(uint32_t);
    else if (dtype == DT_INT64 || dtype == DT_UINT64) MATMUL_INT(uint64_t);
}

void k_gemm_f32(float *y, const float *a, const float *b, const float *c, int64_t M, int64_t N,
                int64_t K, int trans_a, int trans_b, float alpha, float beta, int64_t c_rows,
                int64_t c_cols)
{
    // y is (M,N); a is (M,K) or (K,M) if trans_a; b is (K,N) or (N,K) if trans_b
    if (M <= 0 || N <= 0) return;
    float gbeta = 0.0f;
    if (c) { // y = beta * c, broadcast; then the product accumulates onto it
#pragma omp parallel for schedule(static) if (M * N > 65536)
        for (int64_t i = 0; i < M; i++) {
            const float *cr = c + (c_rows == 1 ? 0 : i) * c_cols;
            float *yr = y + i * N;
            if (c_cols == 1)
                for (int64_t j = 0; j < N; j++) yr[j] = beta * cr[0];
            else
                for (int64_t j = 0; j < N; j++) yr[j] = beta * cr[j];
        }
        gbeta = 1.0f;
    }
    if (K <= 0) {
        if (!c) memset(y, 0, (size_t)(M * N) * sizeof *y);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, a,
                (int)(trans_a ? M : K), b, (int)(trans_b ? K : N), gbeta, y, (int)N);
}
