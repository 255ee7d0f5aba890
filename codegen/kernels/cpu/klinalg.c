/* Matrix products for the cpu target: MatMul (float32, float64 and wrapping
 * integers) and Gemm. The float forms go through OpenBLAS, always on the
 * calling thread: one thread pool (OpenMP) does all of a program's threading.
 * A large product is split over the OpenMP threads by blocks of rows, one
 * OpenBLAS call per block; a batch of small
 * products is spread over the threads one whole product each. Either way every
 * output element is one call's dot product in the same order, so results never
 * depend on the thread count. Integer products have no BLAS and are plain loops
 * in unsigned arithmetic, which wraps as ONNX integer overflow does.
 *
 * Why not OpenBLAS's own threads: Debian's default OpenBLAS runs a pthread
 * pool whose workers spin after each call, and OpenMP's workers spin after
 * each parallel loop; on a machine with as many cores as threads the two pools
 * took turns on the cores (a 2-layer transformer ran 7x slower on 2 threads
 * than on 1). */
#include <cblas.h>
#include <omp.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels.h"
#include "ktile.h"

/* Below this m*n*k a product stays on one thread (kernels.h). */
#define SMALL_GEMM K_PAR_MACS

/* ONNX TensorProto data type numbers of the integer matmul dtypes. */
enum { DT_INT32 = 6, DT_INT64 = 7, DT_UINT32 = 12, DT_UINT64 = 13 };

static int64_t off_of(const int64_t *off, int64_t i, int64_t dense)
{
    return off ? off[i] : i * dense;
}

/* OpenBLAS on the calling thread from the first product on (the OPENBLAS_NUM_THREADS
 * a user may set would only bring back the second pool). */
static void blas_serial(void)
{
    static atomic_int done;
    if (!atomic_exchange(&done, 1)) openblas_set_num_threads(1);
}

/* A large product is split by blocks of ROW_BLOCK rows of y, never by columns
 * and never along k. OpenBLAS computes the edge tiles of a product with other
 * kernels that sum in another order, so a split point must fall on a whole
 * register tile of the unsplit product: its tiles along our rows (its columns,
 * OpenBLAS being column-major) are 4 to 12 wide on x86 (12 on this Zen), and
 * 24 is a multiple of each. Along our columns the tile boundaries follow its
 * cache blocking (320 columns here), too coarse to split on. */
enum { ROW_BLOCK = 24 };

/* How many threads a product of m*n*k gets: 1 inside a parallel region, when
 * small, or when it has too few rows to split. */
static int gemm_threads(int64_t M, int64_t N, int64_t K)
{
    blas_serial();
    if (omp_in_parallel() || M * N * K < SMALL_GEMM) return 1;
    int nt = omp_get_max_threads();
    int64_t blocks = (M + ROW_BLOCK - 1) / ROW_BLOCK;
    return nt < blocks ? nt : (int)blocks;
}

/* Rows [lo, hi) of M for thread t of nt, in whole blocks. */
static void share(int64_t M, int t, int nt, int64_t *lo, int64_t *hi)
{
    int64_t blocks = (M + ROW_BLOCK - 1) / ROW_BLOCK, per = blocks / nt, extra = blocks % nt;
    int64_t b0 = t * per + (t < extra ? t : extra), b1 = b0 + per + (t < extra);
    *lo = b0 * ROW_BLOCK < M ? b0 * ROW_BLOCK : M;
    *hi = b1 * ROW_BLOCK < M ? b1 * ROW_BLOCK : M;
}

#if K_TILED
static AVX2 void tiled_nn(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
                          const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    k_tiled_nn(M, N, K, alpha, a, lda, b, ldb, NULL, beta, y, ldy, NULL);
}
#endif

void k_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *y,
             int64_t ldy)
{
    if (M <= 0 || N <= 0) return;
    int nt = gemm_threads(M, N, K);
#if K_TILED
    if (K > 0 && !trans_a && k_tiled_ok(M * K)) {
        if (nt <= 1) { // no parallel region at all: even an if(0) one costs a microsecond
            if (trans_b) k_tiled_nt(M, N, K, alpha, a, lda, b, ldb, beta, y, ldy);
            else tiled_nn(M, N, K, alpha, a, lda, b, ldb, beta, y, ldy);
            return;
        }
#pragma omp parallel for schedule(static, 1) num_threads(nt)
        for (int t = 0; t < nt; t++) {
            int64_t lo, hi;
            share(M, t, nt, &lo, &hi);
            if (hi <= lo) continue;
            if (trans_b) k_tiled_nt(hi - lo, N, K, alpha, a + lo * lda, lda, b, ldb, beta, y + lo * ldy, ldy);
            else tiled_nn(hi - lo, N, K, alpha, a + lo * lda, lda, b, ldb, beta, y + lo * ldy, ldy);
        }
        return;
    }
#endif
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        share(M, t, nt, &lo, &hi);
        if (hi > lo) // rows lo..hi of op(a) and y
            cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                        trans_b ? CblasTrans : CblasNoTrans, (int)(hi - lo), (int)N, (int)K, alpha,
                        a + (trans_a ? lo : lo * lda), (int)lda, b, (int)ldb, beta, y + lo * ldy,
                        (int)ldy);
    }
}

static void dgemm(int64_t M, int64_t N, int64_t K, const double *a, const double *b, double *y)
{
    int nt = gemm_threads(M, N, K);
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        share(M, t, nt, &lo, &hi);
        if (hi > lo)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(hi - lo), (int)N, (int)K,
                        1.0, a + lo * K, (int)K, b, (int)N, 0.0, y + lo * N, (int)N);
    }
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
    blas_serial();
    // a batch of small products, one whole product per thread, when the batch has the work
    int small = M * N * K < SMALL_GEMM && batch > 1 && batch * M * N * K >= SMALL_GEMM;
#pragma omp parallel for schedule(static) if (small)
    for (int64_t i = 0; i < batch; i++)
        k_sgemm(0, 0, M, N, K, 1.0f, a + off_of(a_off, i, M * K), K, b + off_of(b_off, i, K * N), N,
                0.0f, y + i * M * N, N);
}

void k_matmul_f64(double *y, const double *a, const double *b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const int64_t *a_off, const int64_t *b_off)
{
    if (batch <= 0 || M <= 0 || N <= 0) return;
    if (K <= 0) {
        memset(y, 0, (size_t)(batch * M * N) * sizeof *y);
        return;
    }
    blas_serial();
    // a batch of small products, one whole product per thread, when the batch has the work
    int small = M * N * K < SMALL_GEMM && batch > 1 && batch * M * N * K >= SMALL_GEMM;
#pragma omp parallel for schedule(static) if (small)
    for (int64_t i = 0; i < batch; i++)
        dgemm(M, N, K, a + off_of(a_off, i, M * K), b + off_of(b_off, i, K * N), y + i * M * N);
}

/* One integer product per element type T; i-k-j order so the inner loop
 * streams rows of b and y. */
#define MATMUL_INT(T)                                                                          \
    do {                                                                                       \
        T *yy = y;                                                                             \
        const T *aa = a, *bb = b;                                                              \
        _Pragma("omp parallel for collapse(2) schedule(static) if (batch * M * N * K >= K_PAR_MACS)") \
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
#pragma omp parallel for schedule(static) if (M * N >= K_PAR_WORK)
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
    k_sgemm(trans_a, trans_b, M, N, K, alpha, a, trans_a ? M : K, b, trans_b ? K : N, gbeta, y, N);
}
