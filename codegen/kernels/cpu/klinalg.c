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

/* ---- register-tiled products for small operands (AVX2 + FMA) ----
 * OpenBLAS packs both operands into its own layout on every call; for the
 * products of a small model (a few hundred rows, K and N up to about a
 * thousand) that copying and its fixed cost are most of the time (a
 * 128x172x64 product ran at half the core's peak). When op(a) fits in the L2
 * cache, these kernels read both operands in place instead: a tile of up to 6
 * rows by 16 columns of y stays in registers while k runs, and the tiles walk
 * a 16-column strip of b for every row block before moving on, so the strip
 * stays in L1 and a stays in L2.
 *
 * Every element of y is the same arithmetic wherever its tile falls (lanes
 * of a partial tile are masked, never computed another way): a fused
 * multiply-add chain over k in order from 0 (for a^T: 8 lanes over k, summed
 * pairwise in a fixed order), then alpha * sum, plus beta * y unless beta is 0
 * (y is then not read). So a split of the rows over threads, or any tiling,
 * gives the same bits. Used when the processor has AVX2 and FMA (checked
 * once at run time); otherwise every product goes to OpenBLAS. */

/* op(a) bytes up to which the tiled kernels run (half of a 512 KiB L2). */
#define TILED_A_BYTES (256 * 1024)

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TILED 1

#define AVX2 __attribute__((target("avx2,fma")))

/* lanes [0, n) of 8 set, n in 1..8 */
static inline AVX2 __m256i lane_mask(int64_t n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* y[r][0..w) = alpha * acc + beta * y (beta 0: y not read) */
static inline AVX2 void store_lanes(float *y, __m256 acc, __m256i m, int full, float alpha, float beta)
{
    __m256 v = _mm256_mul_ps(_mm256_set1_ps(alpha), acc);
    if (beta != 0.0f) {
        __m256 old = full ? _mm256_loadu_ps(y) : _mm256_maskload_ps(y, m);
        v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(beta), old));
    }
    if (full) _mm256_storeu_ps(y, v);
    else _mm256_maskstore_ps(y, m, v);
}

/* y (R rows, 8*W columns, the last vector masked to `m` lanes when !full) = a b:
 * a (R,K) row-major with lda, b (K, cols) with ldb. R <= 6, W <= 2. */
static inline AVX2 __attribute__((always_inline)) void
tile_nn(int R, int W, int64_t K, const float *a, int64_t lda, const float *b, int64_t ldb,
        float *y, int64_t ldy, __m256i m, int full, float alpha, float beta)
{
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int w = 0; w < W; w++) acc[r][w] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        const float *bk = b + k * ldb;
        __m256 bv[2];
        bv[0] = W == 1 && !full ? _mm256_maskload_ps(bk, m) : _mm256_loadu_ps(bk);
        if (W == 2) bv[1] = full ? _mm256_loadu_ps(bk + 8) : _mm256_maskload_ps(bk + 8, m);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * lda + k);
#pragma GCC unroll 2
            for (int w = 0; w < W; w++) acc[r][w] = _mm256_fmadd_ps(av, bv[w], acc[r][w]);
        }
    }
    const __m256i all = _mm256_set1_epi32(-1);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int w = 0; w < W; w++) {
            int last = w == W - 1;
            store_lanes(y + r * ldy + 8 * w, acc[r][w], last ? m : all, !last || full, alpha, beta);
        }
}

/* Rows [0, M) of one strip of columns: tiles of 6 rows, then the rest. */
#define STRIP_NN(W, FULL)                                                                          \
    do {                                                                                           \
        int64_t i = 0;                                                                             \
        for (; i + 6 <= M; i += 6)                                                                 \
            tile_nn(6, W, K, a + i * lda, lda, b + j, ldb, y + i * ldy + j, ldy, m, FULL, alpha,   \
                    beta);                                                                         \
        switch (M - i) {                                                                           \
        case 5: tile_nn(5, W, K, a + i * lda, lda, b + j, ldb, y + i * ldy + j, ldy, m, FULL, alpha, beta); break; \
        case 4: tile_nn(4, W, K, a + i * lda, lda, b + j, ldb, y + i * ldy + j, ldy, m, FULL, alpha, beta); break; \
        case 3: tile_nn(3, W, K, a + i * lda, lda, b + j, ldb, y + i * ldy + j, ldy, m, FULL, alpha, beta); break; \
        case 2: tile_nn(2, W, K, a + i * lda, lda, b + j, ldb, y + i * ldy + j, ldy, m, FULL, alpha, beta); break; \
        case 1: tile_nn(1, W, K, a + i * lda, lda, b + j, ldb, y + i * ldy + j, ldy, m, FULL, alpha, beta); break; \
        default: break;                                                                            \
        }                                                                                          \
    } while (0)

static AVX2 void tiled_nn(int64_t M, int64_t N, int64_t K, float alpha, const float *a,
                          int64_t lda, const float *b, int64_t ldb, float beta, float *y,
                          int64_t ldy)
{
    __m256i m = _mm256_set1_epi32(-1);
    int64_t j = 0;
    for (; j + 16 <= N; j += 16) STRIP_NN(2, 1);
    if (N - j > 8) {
        m = lane_mask(N - j - 8);
        STRIP_NN(2, 0);
    } else if (N - j == 8) {
        STRIP_NN(1, 1);
    } else if (N - j > 0) {
        m = lane_mask(N - j);
        STRIP_NN(1, 0);
    }
}

/* The 8 lanes of v summed in a fixed order: (0+4, 1+5, 2+6, 3+7), then pairs. */
static inline AVX2 float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* y (R rows, C columns) = a b^T: a (R,K) with lda, b (C,K) with ldb; R, C <= 4.
 * Each element: 8 lanes over k (the last chunk masked), then hsum. */
static inline AVX2 __attribute__((always_inline)) void
tile_nt(int R, int C, int64_t K, const float *a, int64_t lda, const float *b, int64_t ldb,
        float *y, int64_t ldy, float alpha, float beta)
{
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 bv[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) bv[c] = _mm256_loadu_ps(b + c * ldb + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_loadu_ps(a + r * lda + k);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_fmadd_ps(av, bv[c], acc[r][c]);
        }
    }
    if (k < K) {
        __m256i m = lane_mask(K - k);
        __m256 bv[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) bv[c] = _mm256_maskload_ps(b + c * ldb + k, m);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_maskload_ps(a + r * lda + k, m);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_fmadd_ps(av, bv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            float v = alpha * hsum(acc[r][c]);
            float *yo = y + r * ldy + c;
            *yo = beta != 0.0f ? v + beta * *yo : v;
        }
}

static AVX2 void tiled_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *a,
                          int64_t lda, const float *b, int64_t ldb, float beta, float *y,
                          int64_t ldy)
{
    for (int64_t j = 0; j < N; j += 4) {
        int C = N - j < 4 ? (int)(N - j) : 4;
        for (int64_t i = 0; i < M; i += 4) {
            int R = M - i < 4 ? (int)(M - i) : 4;
            const float *ai = a + i * lda, *bj = b + j * ldb;
            float *yi = y + i * ldy + j;
#define NT(r, c) tile_nt(r, c, K, ai, lda, bj, ldb, yi, ldy, alpha, beta)
            switch (R * 4 + C) { // every (R, C) its own unrolled copy
            case 20: NT(4, 4); break; case 19: NT(4, 3); break; case 18: NT(4, 2); break; case 17: NT(4, 1); break;
            case 16: NT(3, 4); break; case 15: NT(3, 3); break; case 14: NT(3, 2); break; case 13: NT(3, 1); break;
            case 12: NT(2, 4); break; case 11: NT(2, 3); break; case 10: NT(2, 2); break; case 9: NT(2, 1); break;
            case 8: NT(1, 4); break; case 7: NT(1, 3); break; case 6: NT(1, 2); break; default: NT(1, 1); break;
            }
#undef NT
        }
    }
}

/* Whether the tiled kernels take this product (same answer for every row block of it). */
static int tiled_ok(int trans_a, int64_t M, int64_t K)
{
    static int cpu = -1;
    if (cpu < 0) {
        __builtin_cpu_init();
        cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cpu && !trans_a && M * K * (int64_t)sizeof(float) <= TILED_A_BYTES;
}
#else
#define TILED 0
#endif

void k_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *y,
             int64_t ldy)
{
    if (M <= 0 || N <= 0) return;
    int nt = gemm_threads(M, N, K);
#if TILED
    if (K > 0 && tiled_ok(trans_a, M, K)) {
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
        for (int t = 0; t < nt; t++) {
            int64_t lo, hi;
            share(M, t, nt, &lo, &hi);
            if (hi <= lo) continue;
            if (trans_b) tiled_nt(hi - lo, N, K, alpha, a + lo * lda, lda, b, ldb, beta, y + lo * ldy, ldy);
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
