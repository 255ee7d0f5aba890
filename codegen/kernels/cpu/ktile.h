/* Register-tiled float products for small operands (AVX2 + FMA, and
 * AVX-512 below), internal to the cpu kernels: k_sgemm (klinalg.c: a b,
 * a b^T, and a^T b, whose a is read in place with its strides swapped) and
 * the convolution read in place (kconv.c).
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
 * once at run time), in AVX-512 where it has AVX-512F (the same bits);
 * otherwise every product goes to OpenBLAS. */
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
 * a's element (r, k) at a + r * lda + k * aks (aks 1: a (R,K) row-major; lda 1
 * and aks the row length: a^T read in place); row k of b at b + k * ldb, or at b + boff[k]
 * when boff is not NULL (a convolution reading its input in place); its
 * second 8 columns start b2 floats after its first (8 for a plain matrix).
 * R <= 6, W <= 2. post (may be NULL): the epilogue of rows i0.. */
static inline AVX2 __attribute__((always_inline)) void
tile_nn(int R, int W, int64_t K, const float *a, int64_t lda, int64_t aks, const float *b, int64_t ldb,
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
            __m256 av = _mm256_broadcast_ss(a + r * lda + k * aks);
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
    tile_nn(R, W, K, a + i * lda, lda, aks, b + j, ldb, boff, 8, y + i * ldy + j, ldy, m, FULL,     \
            alpha, beta, post, i)

/* y (M,N) = alpha a b + beta y: a's element (i, k) at a + i * lda + k * aks
 * (as in tile_nn); b's rows as in tile_nn; post (may be NULL): an epilogue
 * of its rows instead of alpha and beta. Inlined into an AVX2 function of
 * the caller's, so that a constant aks, boff and post (1, NULL, NULL for a
 * plain product) specialize the inner loop. */
static inline AVX2 __attribute__((always_inline)) void
k_tiled_nn(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda, int64_t aks,
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
        tile_nn(6, 2, K, a + i * lda, lda, 1, b, 0, boff, b2, y + i * ldy, ldy, m, 1, 1.0f, 0.0f, post, i);
    switch (M - i) {
#define PAIR(r) tile_nn(r, 2, K, a + i * lda, lda, 1, b, 0, boff, b2, y + i * ldy, ldy, m, 1, 1.0f, 0.0f, post, i)
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

/* ---- the same products in AVX-512 ----
 * Where the processor has AVX-512F, 16-lane vectors: tiles of up to 8 rows
 * by 32 columns, 16 of the 32 registers accumulating. Each element is the
 * arithmetic of the AVX2 tiles above (the same fused multiply-add chain over
 * k from 0, the same epilogue, one operation at a time), so both give the
 * same bits. a b^T (k_tiled_nt16) keeps the AVX2 tiles' 8 lanes over k
 * for every element (its lanes split the sum): a register holds two rows of
 * a, one in each half. Masked lanes are neither read nor written (AVX-512
 * masks suppress their faults). */
#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define K_ROWS16 8

/* lanes [0, n) of 16 set, n in 1..16 */
static inline AVX512 __mmask16 mask16(int64_t n)
{
    return (__mmask16)((1u << n) - 1u);
}

/* The lanes l of 16 with i + l in [0, n): a load at x + i masked to x's extent. */
static inline __mmask16 k_inside16(int64_t i, int64_t n)
{
    int64_t lo = i < 0 ? -i : 0, hi = n - i;
    if (hi > 16) hi = 16;
    if (lo >= hi) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* store_lanes with 16 lanes: y[r][lanes of m] = alpha * acc + beta * y, or acc through post's row r. */
static inline AVX512 __attribute__((always_inline)) void
store16(float *y, __m512 acc, __mmask16 m, float alpha, float beta, const KTilePost *post, int64_t r)
{
    __m512 v;
    if (post) {
        v = acc;
        if (post->bias) v = _mm512_add_ps(v, _mm512_set1_ps(post->bias[r]));
        if (post->mean)
            v = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(v, _mm512_set1_ps(post->mean[r])),
                                            _mm512_set1_ps(post->scale[r])),
                              _mm512_set1_ps(post->shift[r]));
        if (post->res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, post->res + (y - post->y)));
        if (post->relu) v = _mm512_max_ps(v, _mm512_setzero_ps()); // as store_lanes
    } else {
        v = _mm512_mul_ps(_mm512_set1_ps(alpha), acc);
        if (beta != 0.0f)
            v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, y)));
    }
    _mm512_mask_storeu_ps(y, m, v);
}

/* Vector w of b's row k (bk): its 16 floats at bk + w * b2 (the last vector
 * masked to m), or with half, two runs of 8: at bk + 2w * b2 and bk + (2w+1) * b2. */
static inline AVX512 __attribute__((always_inline)) __m512
load16(const float *bk, int w, int last, int half, int64_t b2, __mmask16 m)
{
    if (half) {
        __m256 lo = _mm256_loadu_ps(bk + 2 * w * b2), hi = _mm256_loadu_ps(bk + (2 * w + 1) * b2);
        return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)),
                                                   _mm256_castps_pd(hi), 1));
    }
    return last ? _mm512_maskz_loadu_ps(m, bk + w * b2) : _mm512_loadu_ps(bk + w * b2);
}

/* tile_nn with 16 lanes: y (R rows, 16*W columns, the last vector masked to
 * m) = a b, b's rows as load16 reads them. R <= K_ROWS16, W <= 2. */
static inline AVX512 __attribute__((always_inline)) void
tile16(int R, int W, int half, int64_t K, const float *a, int64_t lda, int64_t aks, const float *b, int64_t ldb,
       const int64_t *boff, int64_t b2, float *y, int64_t ldy, __mmask16 m, float alpha, float beta,
       const KTilePost *post, int64_t i0)
{
    __m512 acc[K_ROWS16][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int w = 0; w < W; w++) acc[r][w] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t k = 0; k < K; k++) {
        const float *bk = boff ? b + boff[k] : b + k * ldb;
        __m512 bv[2];
#pragma GCC unroll 2
        for (int w = 0; w < W; w++) bv[w] = load16(bk, w, w == W - 1, half, b2, m);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[r * lda + k * aks]);
#pragma GCC unroll 2
            for (int w = 0; w < W; w++) acc[r][w] = _mm512_fmadd_ps(av, bv[w], acc[r][w]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int w = 0; w < W; w++)
            store16(y + r * ldy + 16 * w, acc[r][w], w == W - 1 ? m : (__mmask16)0xffff, alpha, beta,
                    post, i0 + r);
}

/* Rows [0, M) of one strip: tiles of K_ROWS16 rows, then the rest. */
#define STRIP16(W, HALF, MASK, B, Y)                                                               \
    do {                                                                                           \
        int64_t i = 0;                                                                             \
        for (; i + K_ROWS16 <= M; i += K_ROWS16) TILE16(K_ROWS16, W, HALF, MASK, B, Y);            \
        switch (M - i) {                                                                           \
        case 7: TILE16(7, W, HALF, MASK, B, Y); break;                                             \
        case 6: TILE16(6, W, HALF, MASK, B, Y); break;                                             \
        case 5: TILE16(5, W, HALF, MASK, B, Y); break;                                             \
        case 4: TILE16(4, W, HALF, MASK, B, Y); break;                                             \
        case 3: TILE16(3, W, HALF, MASK, B, Y); break;                                             \
        case 2: TILE16(2, W, HALF, MASK, B, Y); break;                                             \
        case 1: TILE16(1, W, HALF, MASK, B, Y); break;                                             \
        default: break;                                                                            \
        }                                                                                          \
    } while (0)
#define TILE16(R, W, HALF, MASK, B, Y)                                                             \
    tile16(R, W, HALF, K, a + i * lda, lda, aks, B, ldb, boff, b2, (Y) + i * ldy, ldy, MASK, alpha, \
           beta, post, i)

/* k_tiled_nn in AVX-512: strips of 32 columns. */
static inline AVX512 __attribute__((always_inline)) void
k_tiled_nn16(int64_t M, int64_t N, int64_t K, float alpha, const float *a, int64_t lda, int64_t aks,
             const float *b, int64_t ldb, const int64_t *boff, float beta, float *y, int64_t ldy,
             const KTilePost *post)
{
    const int64_t b2 = 16;
    int64_t j = 0;
    for (; j + 32 <= N; j += 32) STRIP16(2, 0, (__mmask16)0xffff, b + j, y + j);
    if (N - j > 16) STRIP16(2, 0, mask16(N - j - 16), b + j, y + j);
    else if (N - j == 16) STRIP16(1, 0, (__mmask16)0xffff, b + j, y + j);
    else if (N - j > 0) STRIP16(1, 0, mask16(N - j), b + j, y + j);
}

/* y (M, 32) = a b for a b whose 32 columns are runs b2 apart in each row k
 * (at b + boff[k]): two runs of 16 floats, or with half four runs of 8 (the
 * output rows 16 or 8 wide of a convolution, contiguous in y); post as in
 * k_tiled_nn. */
static inline AVX512 __attribute__((always_inline)) void
k_tiled_runs16(int half, int64_t M, int64_t K, const float *a, int64_t lda, const float *b, int64_t b2,
               const int64_t *boff, float *y, int64_t ldy, const KTilePost *post)
{
    const int64_t ldb = 0, aks = 1;
    const float alpha = 1.0f, beta = 0.0f;
    if (half) STRIP16(2, 1, (__mmask16)0xffff, b, y);
    else STRIP16(2, 0, (__mmask16)0xffff, b, y);
}
#undef STRIP16
#undef TILE16

/* tile_nt in AVX-512 for rows in pairs: y (2P rows, C columns) = a b^T, P,
 * C <= 4. Register (p, c) holds the 8 lanes of tile_nt's element (2p, c) in
 * its low half and of (2p + 1, c) in its high half: the same sums, then the
 * same hsum of each half. */
static inline AVX512 __attribute__((always_inline)) void
tile_nt16(int P, int C, int64_t K, const float *a, int64_t lda, const float *b, int64_t ldb, float *y,
          int64_t ldy, float alpha, float beta)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[p][c] = _mm512_setzero_ps();
    int64_t k = 0;
    __m256i m = _mm256_set1_epi32(-1);
    for (;;) {
        int tail = k + 8 > K;
        if (tail && k >= K) break;
        if (tail) m = lane_mask(K - k);
        __m512 bv[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) { // b's row c in both halves
            __m256 h = tail ? _mm256_maskload_ps(b + c * ldb + k, m) : _mm256_loadu_ps(b + c * ldb + k);
            bv[c] = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(h)));
        }
#pragma GCC unroll 4
        for (int p = 0; p < P; p++) {
            const float *a0 = a + 2 * p * lda + k, *a1 = a0 + lda;
            __m256 lo = tail ? _mm256_maskload_ps(a0, m) : _mm256_loadu_ps(a0);
            __m256 hi = tail ? _mm256_maskload_ps(a1, m) : _mm256_loadu_ps(a1);
            __m512 av = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)),
                                                            _mm256_castps_pd(hi), 1));
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) acc[p][c] = _mm512_fmadd_ps(av, bv[c], acc[p][c]);
        }
        if (tail) break;
        k += 8;
    }
#pragma GCC unroll 4
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256 half = _mm512_castps512_ps256(acc[p][c]);
                if (h) half = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p][c]), 1));
                float v = alpha * hsum(half);
                float *yo = y + (2 * p + h) * ldy + c;
                *yo = beta != 0.0f ? v + beta * *yo : v;
            }
}

/* k_tiled_nt in AVX-512: tiles of 8 rows (4 pairs) by 4 columns; an odd last
 * row goes through tile_nt. */
static inline AVX512 void k_tiled_nt16(int64_t M, int64_t N, int64_t K, float alpha, const float *a,
                                       int64_t lda, const float *b, int64_t ldb, float beta, float *y,
                                       int64_t ldy)
{
    for (int64_t j = 0; j < N; j += 4) {
        int C = N - j < 4 ? (int)(N - j) : 4;
        const float *bj = b + j * ldb;
        for (int64_t i = 0; i + 1 < M; i += 8) {
            int P = (M - i) / 2 < 4 ? (int)((M - i) / 2) : 4;
            const float *ai = a + i * lda;
            float *yi = y + i * ldy + j;
#define NT16(p, c) tile_nt16(p, c, K, ai, lda, bj, ldb, yi, ldy, alpha, beta)
            switch (P * 4 + C) { // every (P, C) its own unrolled copy
            case 20: NT16(4, 4); break; case 19: NT16(4, 3); break; case 18: NT16(4, 2); break; case 17: NT16(4, 1); break;
            case 16: NT16(3, 4); break; case 15: NT16(3, 3); break; case 14: NT16(3, 2); break; case 13: NT16(3, 1); break;
            case 12: NT16(2, 4); break; case 11: NT16(2, 3); break; case 10: NT16(2, 2); break; case 9: NT16(2, 1); break;
            case 8: NT16(1, 4); break; case 7: NT16(1, 3); break; case 6: NT16(1, 2); break; default: NT16(1, 1); break;
            }
#undef NT16
        }
        if (M % 2) {
            const float *al = a + (M - 1) * lda;
            float *yl = y + (M - 1) * ldy + j;
            switch (C) {
            case 4: tile_nt(1, 4, K, al, lda, bj, ldb, yl, ldy, alpha, beta); break;
            case 3: tile_nt(1, 3, K, al, lda, bj, ldb, yl, ldy, alpha, beta); break;
            case 2: tile_nt(1, 2, K, al, lda, bj, ldb, yl, ldy, alpha, beta); break;
            default: tile_nt(1, 1, K, al, lda, bj, ldb, yl, ldy, alpha, beta); break;
            }
        }
    }
}

/* Whether the tiles run in AVX-512 (kcommon.c: the processor has AVX-512F,
 * and LOOM_CPU_AVX512=0 is not in the environment; read once). */
int k_tiles_avx512(void);

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
