/* Register-tiled float products for small operands (AVX2 + FMA), internal to
 * the cpu kernels: k_sgemm (klinalg.c) and the stride-1 convolution (kconv.c).
 *
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
#ifndef LOOM_KTILE_H
#define LOOM_KTILE_H

#include <stdint.h>

/* Bytes of a (the operand read by broadcasts) up to which the tiled kernels
 * run: half of a 512 KiB L2. */
#define K_TILED_A_BYTES (256 * 1024)

/* What a convolution does to row r of a product before storing it (its
 * epilogue; alpha is then 1 and beta 0): + bias[r]; then, when mean is not
 * NULL, (v - mean[r]) * scale[r] + shift[r] (an inference BatchNormalization
 * as k_batchnorm_f32 computes it); then, when res is not NULL, + the element
 * of res at the stored element's place relative to y (an Add of a tensor
 * shaped like the output); then max(v, 0) when relu. Each step is the same
 * float operation as the separate kernel or loop would do, so the bits are
 * those of the ops run one after another. Indexed by the product's row
 * (tile_nn is told its first row's). */
typedef struct {
    const float *bias, *mean, *scale, *shift;
    const float *res, *y; /* y: the output the stores' places are counted from */
    int relu;
} KTilePost;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define K_TILED 1

#define AVX2 __attribute__((target("avx2,fma")))

/* lanes [0, n) of 8 set, n in 1..8 */
static inline AVX2 __m256i lane_mask(int64_t n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* y[r][0..w) = alpha * acc + beta * y (beta 0: y not read), or acc through
 * post's row r when post is not NULL */
static inline AVX2 __attribute__((always_inline)) void
store_lanes(float *y, __m256 acc, __m256i m, int full, float alpha, float beta, const KTilePost *post,
            int64_t r)
{
    __m256 v;
    if (post) {
        v = acc;
        if (post->bias) v = _mm256_add_ps(v, _mm256_set1_ps(post->bias[r]));
        if (post->mean)
            v = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v, _mm256_set1_ps(post->mean[r])),
                                            _mm256_set1_ps(post->scale[r])),
                              _mm256_set1_ps(post->shift[r]));
        if (post->res) {
            const float *rp = post->res + (y - post->y);
            v = _mm256_add_ps(v, full ? _mm256_loadu_ps(rp) : _mm256_maskload_ps(rp, m));
        }
        if (post->relu) v = _mm256_max_ps(v, _mm256_setzero_ps()); // v > 0 ? v : 0, NaN to 0
    } else {
        v = _mm256_mul_ps(_mm256_set1_ps(alpha), acc);
        if (beta != 0.0f) {
            __m256 old = full ? _mm256_loadu_ps(y) : _mm256_maskload_ps(y, m);
            v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(beta), old));
        }
    }
    if (full) _mm256_storeu_ps(y, v);
    else _mm256_maskstore_ps(y, m, v);
}

/* y (R rows, 8*W columns, the last vector masked to `m` lanes when !full) = a b:
 * a (R,K) row-major with lda; row k of b at b + k * ldb, or at b + boff[k]
 * when boff is not NULL (a convolution reading its input in place); its
 * second 8 columns start b2 floats after its first (8 for a plain matrix).
 * R <= 6, W <= 2. post (may be NULL): the epilogue of rows i0.. */
static inline AVX2 __attribute__((always_inline)) void
tile_nn(int R, int W, int64_t K, const float *a, int64_t lda, const float *b, int64_t ldb,
        const int64_t *boff, int64_t b2, float *y, int64_t ldy, __m256i m, int full, float alpha,
        float beta, const KTilePost *post, int64_t i0)
{
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int w = 0; w < W; w++) acc[r][w] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) {
        const float *bk = boff ? b + boff[k] : b + k * ldb;
        __m256 bv[2];
        bv[0] = W == 1 && !full ? _mm256_maskload_ps(bk, m) : _mm256_loadu_ps(bk);
        if (W == 2) bv[1] = full ? _mm256_loadu_ps(bk + b2) : _mm256_maskload_ps(bk + b2, m);
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
            store_lanes(y + r * ldy + 8 * w, acc[r][w], last ? m : all, !last || full, alpha, beta,
                        post, i0 + r);
        }
}

/* Rows [0, M) of one strip of columns: tiles of 6 rows, then the rest. */
#define STRIP_NN(W, FULL)                                                                          \
    do {                                                                                           \
        int64_t i = 0;                                                                             \
        for (; i + 6 <= M; i += 6) STRIP_TILE(6, W, FULL);                                         \
        switch (M - i) {                                                                           \
        case 5: STRIP_TILE(5, W, FULL); break;                                                     \
        case 4: STRIP_TILE(4, W, FULL); break;                                                     \
        case 3: STRIP_TILE(3, W, FULL); break;                                                     \
        case 2: STRIP_TILE(2, W, FULL); break;                                                     \
        case 1: STRIP_TILE(1, W, FULL); break;                                                     \
        default: break;                                                                            \
        }                                                                                          \
    } while (0)
#define STRIP_TILE(R, W, FULL)                                                                     \
    tile_nn(R, W, K, a + i * lda, lda, b + j, ldb, boff, 8, y + i * ldy + j, ldy, m, FULL, alpha,  \
            beta, post, i)

/* y (M,N) = alpha a b + beta y: a (M,K) with lda; b's rows as in tile_nn;
 * post (may be NULL): an epilogue of its rows instead of alpha and beta.
 * Inlined into an AVX2 function of the caller's, so that a constant boff
 * and post (NULL for a plain product) specialize the inner loop. */
static inline AVX2 __attribute__((always_inline)) void
k_tiled_nn(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda,
           const float *b, int64_t ldb, const int64_t *boff, float beta, float *y, int64_t ldy,
           const KTilePost *post)
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

/* y (M, 16) = a b for a b whose 16 columns are two runs of 8 floats, b2
 * apart: row k at b + boff[k] and b + boff[k] + b2 (two output rows of a
 * convolution 8 wide, whose outputs are contiguous in y); post as in
 * k_tiled_nn. */
static inline AVX2 __attribute__((always_inline)) void
k_tiled_pair(int64_t M, int64_t K, const float *a, int64_t lda, const float *b, int64_t b2,
             const int64_t *boff, float *y, int64_t ldy, const KTilePost *post)
{
    const __m256i m = _mm256_set1_epi32(-1);
    int64_t i = 0;
    for (; i + 6 <= M; i += 6)
        tile_nn(6, 2, K, a + i * lda, lda, b, 0, boff, b2, y + i * ldy, ldy, m, 1, 1.0f, 0.0f, post, i);
    switch (M - i) {
#define PAIR(r) tile_nn(r, 2, K, a + i * lda, lda, b, 0, boff, b2, y + i * ldy, ldy, m, 1, 1.0f, 0.0f, post, i)
    case 5: PAIR(5); break;
    case 4: PAIR(4); break;
    case 3: PAIR(3); break;
    case 2: PAIR(2); break;
    case 1: PAIR(1); break;
    default: break;
#undef PAIR
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

/* y (M,N) = alpha a b^T + beta y: a (M,K) with lda, b (N,K) with ldb. */
static inline AVX2 void k_tiled_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *a,
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

/* Whether the processor has AVX2 and FMA and a of a_elems floats fits
 * K_TILED_A_BYTES (the same answer for every row block of a product).
 * __builtin_cpu_supports reads what libgcc's constructor found at load: a
 * load and a test, safe from any thread. */
static inline int k_tiled_ok(int64_t a_elems)
{
    return a_elems * (int64_t)sizeof(float) <= K_TILED_A_BYTES && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
}
#else
#define K_TILED 0
#endif

#endif
