/* Matrix products for the cpu target: MatMul (float32, float64, bfloat16 and
 * wrapping integers) and Gemm (float32, bfloat16). The float forms go through OpenBLAS, always on the
 * calling thread: one thread pool (kpar.c) does all of a program's threading.
 * A large product is split over the pool's threads by blocks of rows, one
 * OpenBLAS call per block; a batch of small
 * products is spread over the threads one whole product each. Either way every
 * output element is one call's dot product in the same order, so results never
 * depend on the thread count. Integer products have no BLAS and are plain loops
 * in unsigned arithmetic, which wraps as ONNX integer overflow does.
 *
 * Why not OpenBLAS's own threads: Debian's default OpenBLAS runs a pthread
 * pool whose workers spin after each call, and the kernels' workers spin after
 * each parallel loop; on a machine with as many cores as threads the two pools
 * took turns on the cores (a 2-layer transformer ran 7x slower on 2 threads
 * than on 1). */
#include <cblas.h>
#include <pthread.h>
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

/* OpenBLAS's pthreads build starts its pool when the library loads (one
 * thread per core but one, or OPENBLAS_NUM_THREADS - 1) and its idle threads
 * spin on sched_yield for about 0.1 s before they sleep. The kernels never
 * hand it work (every product runs on the calling thread:
 * openblas_set_num_threads(1)), so those threads only take cycles from this
 * pool's workers: under perf, 11% of a short resnet_small `infer --repeat
 * 600` on 2 cores went to one of them, and a one-shot `infer` runs entirely
 * inside that window. So the pool is shut down too, through the
 * library's own blas_thread_shutdown_ (exported by Debian's 0.3.21 pthreads
 * build, which is what the setup installs; not in cblas.h, hence the weak
 * reference: a BLAS without it keeps its pool as before). A later product
 * runs serially and does not restart it. Called by the first product and
 * when kpar.c's workers start. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

static void blas_serial_once(void)
{
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

/* Once per process; a second caller waits until it is done (pthread_once),
 * so no product runs on OpenBLAS's pool while the pool is shut down. */
void k_blas_serial(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, blas_serial_once);
}

/* A large product is split by blocks of ROW_BLOCK rows of y, never by columns
 * and never along k. OpenBLAS computes the edge tiles of a product with other
 * kernels that sum in another order, so a split point must fall on a whole
 * register tile of the unsplit product: its tiles along our rows (its columns,
 * OpenBLAS being column-major) are 4 to 12 wide on x86 (12 on this Zen), and
 * 24 is a multiple of each. Along our columns the tile boundaries follow its
 * cache blocking (320 columns here), too coarse to split on. */
enum { ROW_BLOCK = 24 };

/* The register-tiled kernels compute every element of y alike wherever its
 * tile falls (ktile.h), so their products may also be split by blocks of
 * columns: a product of fewer than COL_SPLIT_ROWS rows (a batch of a few
 * samples through a linear layer: mlp's 4 x 784 times 784 x 128) has too few
 * row blocks to share, and is cut into blocks of COL_BLOCK columns instead
 * (a multiple of both tile widths, 16 and 4). */
enum { COL_BLOCK = 16, COL_SPLIT_ROWS = 4 * ROW_BLOCK };

/* A product's operands and sizes, for its blocks of rows. */
typedef struct {
    int trans_a, trans_b;
    int64_t M, N, K;
    float alpha, beta;
    const float *a, *b;
    float *y;
    int64_t lda, ldb, ldy;
} Gemm;

/* Rows [lo, hi) of M from blocks [b0, b1). */
static void rows_of(int64_t M, int64_t b0, int64_t b1, int64_t *lo, int64_t *hi)
{
    *lo = b0 * ROW_BLOCK < M ? b0 * ROW_BLOCK : M;
    *hi = b1 * ROW_BLOCK < M ? b1 * ROW_BLOCK : M;
}

/* Splits a product of M*N*K over the threads by blocks of rows (on the
 * calling thread when small or inside a parallel step). */
static void gemm_par(const Gemm *g, KParBody rows)
{
    k_blas_serial();
    k_par_for((g->M + ROW_BLOCK - 1) / ROW_BLOCK, K_MACS_WORK(g->M * g->N * g->K), rows, (void *)g);
}

#if K_TILED
static AVX2 void tiled_nn8(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    k_tiled_nn(M, N, K, alpha, a, lda, 1, b, ldb, NULL, beta, y, ldy, NULL);
}

static AVX512 void tiled_nn16(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
                              const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    k_tiled_nn16(M, N, K, alpha, a, lda, 1, b, ldb, NULL, beta, y, ldy, NULL);
}

/* a^T b: a (K, M) with lda read in place, its rows' elements broadcast */
static AVX2 void tiled_tn8(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    k_tiled_nn(M, N, K, alpha, a, 1, lda, b, ldb, NULL, beta, y, ldy, NULL);
}

static AVX512 void tiled_tn16(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
                              const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    k_tiled_nn16(M, N, K, alpha, a, 1, lda, b, ldb, NULL, beta, y, ldy, NULL);
}

/* y = alpha a^T b + beta y, a (K, M), through the tiles of this processor. */
static void tiled_tn(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    if (k_tiles_avx512()) tiled_tn16(M, N, K, alpha, a, lda, b, ldb, beta, y, ldy);
    else tiled_tn8(M, N, K, alpha, a, lda, b, ldb, beta, y, ldy);
}

static AVX512 void tiled_nt16(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
                              const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    k_tiled_nt16(M, N, K, alpha, a, lda, b, ldb, beta, y, ldy);
}

/* y = alpha a b^T + beta y through the tiles of this processor (the same bits either way). */
static void tiled_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    if (k_tiles_avx512()) tiled_nt16(M, N, K, alpha, a, lda, b, ldb, beta, y, ldy);
    else k_tiled_nt(M, N, K, alpha, a, lda, b, ldb, beta, y, ldy);
}

/* y = alpha a b + beta y through the tiles of this processor (the same bits either way). */
static void tiled_nn(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    if (k_tiles_avx512()) tiled_nn16(M, N, K, alpha, a, lda, b, ldb, beta, y, ldy);
    else tiled_nn8(M, N, K, alpha, a, lda, b, ldb, beta, y, ldy);
}
#endif

#if K_TILED
/* Blocks [b0, b1) of rows through the register tiles. */
static void tiled_rows(void *arg, int64_t b0, int64_t b1, int tid)
{
    const Gemm *g = arg;
    int64_t lo, hi;
    rows_of(g->M, b0, b1, &lo, &hi);
    if (g->trans_a) /* rows lo.. of y are columns lo.. of a */
        tiled_tn(hi - lo, g->N, g->K, g->alpha, g->a + lo, g->lda, g->b, g->ldb, g->beta, g->y + lo * g->ldy,
                 g->ldy);
    else if (g->trans_b)
        tiled_nt(hi - lo, g->N, g->K, g->alpha, g->a + lo * g->lda, g->lda, g->b, g->ldb, g->beta,
                 g->y + lo * g->ldy, g->ldy);
    else
        tiled_nn(hi - lo, g->N, g->K, g->alpha, g->a + lo * g->lda, g->lda, g->b, g->ldb, g->beta,
                 g->y + lo * g->ldy, g->ldy);
}

/* Blocks [b0, b1) of COL_BLOCK columns through the register tiles. */
static void tiled_cols(void *arg, int64_t b0, int64_t b1, int tid)
{
    const Gemm *g = arg;
    int64_t lo = b0 * COL_BLOCK, hi = b1 * COL_BLOCK < g->N ? b1 * COL_BLOCK : g->N;
    if (g->trans_a)
        tiled_tn(g->M, hi - lo, g->K, g->alpha, g->a, g->lda, g->b + lo, g->ldb, g->beta, g->y + lo, g->ldy);
    else if (g->trans_b)
        tiled_nt(g->M, hi - lo, g->K, g->alpha, g->a, g->lda, g->b + lo * g->ldb, g->ldb, g->beta, g->y + lo,
                 g->ldy);
    else
        tiled_nn(g->M, hi - lo, g->K, g->alpha, g->a, g->lda, g->b + lo, g->ldb, g->beta, g->y + lo, g->ldy);
}
#endif

/* Blocks [b0, b1) of rows through OpenBLAS: rows lo..hi of op(a) and y. */
static void blas_rows(void *arg, int64_t b0, int64_t b1, int tid)
{
    const Gemm *g = arg;
    int64_t lo, hi;
    rows_of(g->M, b0, b1, &lo, &hi);
    cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans, g->trans_b ? CblasTrans : CblasNoTrans,
                (int)(hi - lo), (int)g->N, (int)g->K, g->alpha, g->a + (g->trans_a ? lo : lo * g->lda),
                (int)g->lda, g->b, (int)g->ldb, g->beta, g->y + lo * g->ldy, (int)g->ldy);
}

void k_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *y,
             int64_t ldy)
{
    if (M <= 0 || N <= 0) return;
    Gemm g = {trans_a, trans_b, M, N, K, alpha, beta, a, b, y, lda, ldb, ldy};
#if K_TILED
    /* a^T b too (a weight gradient, x^T dy): OpenBLAS took 150 us for
     * gpt2_tiny's 128x256 by 128x64 one, in blocks of 24 rows; a^T b^T
     * stays with it */
    if (K > 0 && !(trans_a && trans_b) && k_tiled_ok(M * K)) {
        if (M < COL_SPLIT_ROWS && N >= 2 * COL_BLOCK)
            k_par_for((N + COL_BLOCK - 1) / COL_BLOCK, K_MACS_WORK(M * N * K), tiled_cols, &g);
        else
            gemm_par(&g, tiled_rows);
        return;
    }
#endif
    gemm_par(&g, blas_rows);
}

/* The float64 product's blocks of rows (y = a b, dense, no transposes). */
typedef struct {
    int64_t M, N, K;
    const double *a, *b;
    double *y;
} DGemm;

static void dgemm_rows(void *arg, int64_t b0, int64_t b1, int tid)
{
    const DGemm *g = arg;
    int64_t lo, hi;
    rows_of(g->M, b0, b1, &lo, &hi);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(hi - lo), (int)g->N, (int)g->K, 1.0,
                g->a + lo * g->K, (int)g->K, g->b, (int)g->N, 0.0, g->y + lo * g->N, (int)g->N);
}

static void dgemm(int64_t M, int64_t N, int64_t K, const double *a, const double *b, double *y)
{
    DGemm g = {M, N, K, a, b, y};
    k_blas_serial();
    k_par_for((M + ROW_BLOCK - 1) / ROW_BLOCK, K_MACS_WORK(M * N * K), dgemm_rows, &g);
}

/* A batch of products [lo, hi), each whole on one thread. */
typedef struct {
    void *y;
    const void *a, *b;
    int64_t M, N, K;
    const int64_t *a_off, *b_off;
} Batch;

static void matmul_f32_batch(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Batch *p = arg;
    int64_t M = p->M, N = p->N, K = p->K;
    const float *a = p->a, *b = p->b;
    float *y = p->y;
    for (int64_t i = lo; i < hi; i++)
        k_sgemm(0, 0, M, N, K, 1.0f, a + off_of(p->a_off, i, M * K), K, b + off_of(p->b_off, i, K * N), N,
                0.0f, y + i * M * N, N);
}

static void matmul_f64_batch(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Batch *p = arg;
    int64_t M = p->M, N = p->N, K = p->K;
    const double *a = p->a, *b = p->b;
    double *y = p->y;
    for (int64_t i = lo; i < hi; i++)
        dgemm(M, N, K, a + off_of(p->a_off, i, M * K), b + off_of(p->b_off, i, K * N), y + i * M * N);
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
    k_blas_serial();
    // a batch of small products, one whole product per thread, when the batch has the work
    // (a large product splits its own rows)
    Batch p = {y, a, b, M, N, K, a_off, b_off};
    k_par_for(batch, M * N * K < SMALL_GEMM ? K_MACS_WORK(batch * M * N * K) : 0, matmul_f32_batch, &p);
}

void k_matmul_f64(double *y, const double *a, const double *b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const int64_t *a_off, const int64_t *b_off)
{
    if (batch <= 0 || M <= 0 || N <= 0) return;
    if (K <= 0) {
        memset(y, 0, (size_t)(batch * M * N) * sizeof *y);
        return;
    }
    k_blas_serial();
    // a batch of small products, one whole product per thread, when the batch has the work
    Batch p = {y, a, b, M, N, K, a_off, b_off};
    k_par_for(batch, M * N * K < SMALL_GEMM ? K_MACS_WORK(batch * M * N * K) : 0, matmul_f64_batch, &p);
}

/* One integer product per element type T over rows [lo, hi) of all
 * batch * M; i-k-j order so the inner loop streams rows of b and y. */
#define MATMUL_INT(T, NAME)                                                                    \
    static void NAME(void *arg, int64_t lo, int64_t hi, int tid)                               \
    {                                                                                          \
        const Batch *p = arg;                                                                  \
        int64_t M = p->M, N = p->N, K = p->K;                                                  \
        T *yy = p->y;                                                                          \
        const T *aa = p->a, *bb = p->b;                                                        \
        for (int64_t ir = lo; ir < hi; ir++) {                                                 \
            int64_t i = ir / M, r = ir % M;                                                    \
            const T *ar = aa + off_of(p->a_off, i, M * K) + r * K;                             \
            const T *bi = bb + off_of(p->b_off, i, K * N);                                     \
            T *yr = yy + ir * N;                                                               \
            for (int64_t j = 0; j < N; j++) yr[j] = 0;                                         \
            for (int64_t k = 0; k < K; k++) {                                                  \
                T av = ar[k];                                                                  \
                const T *br = bi + k * N;                                                      \
                for (int64_t j = 0; j < N; j++) yr[j] += av * br[j];                           \
            }                                                                                  \
        }                                                                                      \
    }
MATMUL_INT(uint32_t, matmul_u32_rows)
MATMUL_INT(uint64_t, matmul_u64_rows)

void k_matmul_int(void *y, const void *a, const void *b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const int64_t *a_off, const int64_t *b_off, int dtype)
{
    // signed and unsigned share one unsigned loop: two's complement wraps identically
    Batch p = {y, a, b, M, N, K, a_off, b_off};
    int64_t work = K_MACS_WORK(batch * M * N * K);
    if (dtype == DT_INT32 || dtype == DT_UINT32) k_par_for(batch * M, work, matmul_u32_rows, &p);
    else if (dtype == DT_INT64 || dtype == DT_UINT64) k_par_for(batch * M, work, matmul_u64_rows, &p);
}

/* Gemm's rows [lo, hi) of y = beta * c (broadcast). */
typedef struct {
    float *y;
    const float *c;
    int64_t N, c_rows, c_cols;
    float beta;
} GemmC;

static void gemm_c_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const GemmC *p = arg;
    for (int64_t i = lo; i < hi; i++) {
        const float *cr = p->c + (p->c_rows == 1 ? 0 : i) * p->c_cols;
        float *yr = p->y + i * p->N;
        if (p->c_cols == 1)
            for (int64_t j = 0; j < p->N; j++) yr[j] = p->beta * cr[0];
        else
            for (int64_t j = 0; j < p->N; j++) yr[j] = p->beta * cr[j];
    }
}

void k_gemm_f32(float *y, const float *a, const float *b, const float *c, int64_t M, int64_t N,
                int64_t K, int trans_a, int trans_b, float alpha, float beta, int64_t c_rows,
                int64_t c_cols)
{
    // y is (M,N); a is (M,K) or (K,M) if trans_a; b is (K,N) or (N,K) if trans_b
    if (M <= 0 || N <= 0) return;
    float gbeta = 0.0f;
    if (c) { // y = beta * c, broadcast; then the product accumulates onto it
        GemmC p = {y, c, N, c_rows, c_cols, beta};
        k_par_for(M, M * N, gemm_c_rows, &p);
        gbeta = 1.0f;
    }
    if (K <= 0) {
        if (!c) memset(y, 0, (size_t)(M * N) * sizeof *y);
        return;
    }
    k_sgemm(trans_a, trans_b, M, N, K, alpha, a, trans_a ? M : K, b, trans_b ? K : N, gbeta, y, N);
}

/* ---- bfloat16: float32 copies in the workspace, the float32 kernels ---- */

/* bytes of n floats, kept 64-byte aligned within ws */
static size_t f32_bytes(int64_t n) { return ((size_t)(n > 0 ? n : 0) * sizeof(float) + 63) / 64 * 64; }

size_t k_matmul_bf16_ws(int64_t a_numel, int64_t b_numel, int64_t y_numel)
{
    return f32_bytes(a_numel) + f32_bytes(b_numel) + f32_bytes(y_numel);
}

void k_matmul_bf16(uint16_t *y, const uint16_t *a, const uint16_t *b, int64_t batch, int64_t M, int64_t N,
                   int64_t K, const int64_t *a_off, const int64_t *b_off, int64_t a_numel, int64_t b_numel,
                   void *ws)
{
    // ws holds a32 (a_numel), b32 (b_numel), y32 (batch, M, N)
    float *a32 = ws, *b32 = (float *)((char *)a32 + f32_bytes(a_numel)),
          *y32 = (float *)((char *)b32 + f32_bytes(b_numel));
    k_bf16_to_f32(a32, a, a_numel);
    k_bf16_to_f32(b32, b, b_numel);
    k_matmul_f32(y32, a32, b32, batch, M, N, K, a_off, b_off);
    k_f32_to_bf16(y, y32, batch * M * N);
}

size_t k_matmul_bf16_f32out_ws(int64_t a_numel, int64_t b_numel)
{
    return f32_bytes(a_numel) + f32_bytes(b_numel);
}

void k_matmul_bf16_f32out(float *y, const uint16_t *a, const uint16_t *b, int64_t batch, int64_t M, int64_t N,
                          int64_t K, const int64_t *a_off, const int64_t *b_off, int64_t a_numel, int64_t b_numel,
                          void *ws)
{
    // ws holds a32 (a_numel), b32 (b_numel); the product is k_matmul_bf16's, not rounded
    float *a32 = ws, *b32 = (float *)((char *)a32 + f32_bytes(a_numel));
    k_bf16_to_f32(a32, a, a_numel);
    k_bf16_to_f32(b32, b, b_numel);
    k_matmul_f32(y, a32, b32, batch, M, N, K, a_off, b_off);
}

size_t k_gemm_bf16_ws(int64_t M, int64_t N, int64_t K, int64_t c_numel)
{
    return f32_bytes(M * K) + f32_bytes(K * N) + f32_bytes(c_numel) + f32_bytes(M * N);
}

void k_gemm_bf16(uint16_t *y, const uint16_t *a, const uint16_t *b, const uint16_t *c, int64_t M, int64_t N,
                 int64_t K, int trans_a, int trans_b, float alpha, float beta, int64_t c_rows, int64_t c_cols,
                 void *ws)
{
    // ws holds a32 (M*K), b32 (K*N), c32 (c_rows*c_cols, when c), y32 (M, N)
    int64_t c_numel = c ? c_rows * c_cols : 0;
    float *a32 = ws, *b32 = (float *)((char *)a32 + f32_bytes(M * K)),
          *c32 = (float *)((char *)b32 + f32_bytes(K * N)), *y32 = (float *)((char *)c32 + f32_bytes(c_numel));
    k_bf16_to_f32(a32, a, M * K);
    k_bf16_to_f32(b32, b, K * N);
    if (c) k_bf16_to_f32(c32, c, c_numel);
    k_gemm_f32(y32, a32, b32, c ? c32 : NULL, M, N, K, trans_a, trans_b, alpha, beta, c_rows, c_cols);
    k_f32_to_bf16(y, y32, M * N);
}

size_t k_gemm_bf16_f32out_ws(int64_t M, int64_t N, int64_t K)
{
    return f32_bytes(M * K) + f32_bytes(K * N);
}

void k_gemm_bf16_f32out(float *y, const uint16_t *a, const uint16_t *b, int64_t M, int64_t N, int64_t K, int trans_a,
                        int trans_b, float alpha, void *ws)
{
    // ws holds a32 (M*K), b32 (K*N); the product is k_gemm_bf16's without C, not rounded
    float *a32 = ws, *b32 = (float *)((char *)a32 + f32_bytes(M * K));
    k_bf16_to_f32(a32, a, M * K);
    k_bf16_to_f32(b32, b, K * N);
    k_gemm_f32(y, a32, b32, NULL, M, N, K, trans_a, trans_b, alpha, 0.0f, 1, 1);
}
