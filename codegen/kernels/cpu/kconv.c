/* Convolution and transposed convolution (float32, 1 to 3 spatial dims) for
 * the cpu target. Conv reads a padded copy of the image in place through the
 * register tiles of ktile.h where the processor has AVX2 or AVX-512 (below), else
 * im2col into the caller's workspace, a block of output rows at a time
 * (kwindow.h), and one sgemm per group and block; a pointwise
 * conv (1x1..., stride 1, no padding) is already in column form and
 * multiplies x directly. ConvTranspose is the adjoint: one sgemm per group
 * into columns for a block of input rows, which col2im scatters into y.
 * Workspaces are sized by the largest path, whatever the processor, and so
 * stay a few column blocks and padded copies, never a whole batch's columns.
 * Every shape is handled as 3-D with leading spatial dims of size 1, so one
 * code path serves Conv1d..Conv3d. Threads take whole images of the batch;
 * with one image, output rows, im2col and col2im rows, whole groups, or
 * blocks of a gemm's output rows (k_sgemm). Determinism: no split falls
 * inside a sum. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "ktile.h"
#include "kwindow.h"
#include "kwino.h"

/* Below this m*n*k k_sgemm keeps a gemm on one thread, so it pays to run the
 * groups of a grouped conv side by side; a whole conv of fewer multiply-adds
 * stays on one thread (kernels.h). */
#define SMALL_GEMM K_PAR_MACS
#define PAR_ELEMS K_PAR_WORK

static void geo_of(const KConv *c, KGeo *g)
{
    k_geo_set(g, c->nd, c->in, c->out, c->k, c->stride, c->dilation, c->pad);
}

/* Pointwise: every output position reads exactly the same input position. */
static int pointwise(const KGeo *g)
{
    for (int i = 0; i < 3; i++)
        if (g->k[i] != 1 || g->s[i] != 1 || g->p[i] != 0 || g->in[i] != g->out[i]) return 0;
    return 1;
}


/* Images that run side by side, one thread each, with a column buffer each in
 * the workspace: the gemm of one image of a small net is too short (few output
 * channels: rows) for k_sgemm to split, so the batch is where the threads go. */
#define CONV_IMAGES 4

static int64_t conv_images(const KConv *p)
{
    return p->N < CONV_IMAGES ? p->N : CONV_IMAGES;
}

/* The images of a batch side by side when par, one per chunk, at most one
 * thread per workspace slot: each thread reuses its own slot (the slot of
 * its thread id) for every image it takes, so its copy stays warm in its
 * cache (one slot per image of a batch of four spilled a 16-channel 32x32
 * conv's copies out of L2). body(arg, lo, hi, tid) runs images [lo, hi). */
static void for_images(const KConv *p, int par, KParBody body, void *arg)
{
    k_par_split(p->N, par ? p->N : 1, (int)conv_images(p), body, arg);
}

/* The workspace slot of thread tid (a step run inside another's chunk runs
 * alone on this call's workspace: slot 0). */
static int64_t slot_of(const KConv *p, int tid)
{
    return tid < conv_images(p) ? tid : 0;
}

/* The G products of a grouped conv's image, one k_sgemm per group gi [lo, hi):
 * c_gi [m, n] = op(a_gi) [m, k] * b_gi [k, n], op transposing a when ta (a_gi
 * is then [k, m]), group gi's operands starting gi * (as, bs, cs) floats in. */
typedef struct {
    int ta;
    int64_t m, n, k;
    const float *a, *b;
    float *c;
    int64_t as, bs, cs;
    int64_t ldb, ldc; /* b's and c's row strides (n when 0) */
} GroupGemms;

static void group_gemms_run(void *arg, int64_t lo, int64_t hi, int tid)
{
    const GroupGemms *q = arg;
    for (int64_t gi = lo; gi < hi; gi++)
        k_sgemm(q->ta, 0, q->m, q->n, q->k, 1.0f, q->a + gi * q->as, q->ta ? q->m : q->k, q->b + gi * q->bs,
                q->ldb ? q->ldb : q->n, 0.0f, q->c + gi * q->cs, q->ldc ? q->ldc : q->n);
}

/* All G groups; side by side when par (a grouped conv's small gemms; a
 * large one splits its rows in k_sgemm instead). */
static void group_gemms(int64_t G, GroupGemms *q, int par)
{
    k_par_for(G, par ? K_MACS_WORK(G * q->m * q->n * q->k) : 0, group_gemms_run, q);
}

/* y[m] += b[m] over M rows of `len` elements. */
static void add_bias(float *y, const float *b, int64_t M, int64_t len)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t i = 0; i < len; i++) y[m * len + i] += b[m];
}

/* ---- the epilogue: bias, BatchNormalization, residual, Relu (k_conv_post_f32) ----
 * The in-place path applies it in the register tiles (ktile.h's KTilePost);
 * the others to each image's output right after its product, while it is in
 * cache. Its per-channel factors, scale / sqrt(var + eps) and the shift,
 * are computed once per call into the end of the workspace. */

/* Bytes at the end of the workspace for the epilogue's two factors per channel. */
static int64_t post_bytes(const KConv *p)
{
    return (2 * p->M * (int64_t)sizeof(float) + 63) / 64 * 64;
}

/* t for bias b and post of the output y, with the factors in f [2, M]; 0
 * when there is nothing to do. */
static int post_of(KTilePost *t, float *y, const float *b, const KConvPost *post, int64_t M, float *f)
{
    *t = (KTilePost){.bias = b, .res = post ? post->residual : NULL, .y = y, .relu = post && post->relu};
    if (post && post->bn_mean) {
        for (int64_t m = 0; m < M; m++) { // as k_batchnorm_f32
            f[m] = (post->bn_scale ? post->bn_scale[m] : 1.0f) / sqrtf(post->bn_var[m] + post->bn_eps);
            f[M + m] = post->bn_bias ? post->bn_bias[m] : 0.0f;
        }
        t->mean = post->bn_mean, t->scale = f, t->shift = f + M;
    }
    return t->bias || t->mean || t->res || t->relu;
}

/* t's rows [m0, m0 + ...) as a product's rows 0.. (a group's output channels). */
static KTilePost post_rows(const KTilePost *t, int64_t m0)
{
    KTilePost r = *t;
    if (r.bias) r.bias += m0;
    if (r.mean) r.mean += m0, r.scale += m0, r.shift += m0;
    return r;
}

/* The epilogue t over one image's y [M, len] (part of t's output), in place. */
static void post_image(float *y, const KTilePost *t, int64_t M, int64_t len)
{
    for (int64_t m = 0; m < M; m++) {
        float *ym = y + m * len;
        const float *rm = t->res ? t->res + (ym - t->y) : NULL;
        if (t->bias)
            for (int64_t i = 0; i < len; i++) ym[i] += t->bias[m];
        if (t->mean) {
            float mu = t->mean[m], a = t->scale[m], sh = t->shift[m];
            for (int64_t i = 0; i < len; i++) ym[i] = (ym[i] - mu) * a + sh;
        }
        if (rm)
            for (int64_t i = 0; i < len; i++) ym[i] += rm[i];
        if (t->relu)
            for (int64_t i = 0; i < len; i++) ym[i] = ym[i] > 0 ? ym[i] : 0.0f;
    }
}

/* ---- convolution read in place (AVX2 + FMA, or AVX-512) ----
 * A convolution needs no im2col: with stride 1, the inputs that a tile of
 * output positions along the last axis reads through tap (c, k0, k1, k2) are
 * one contiguous run of a zero-padded copy of the image, at a fixed offset
 * from the tile's first position. So the padded copy (about kp times smaller
 * than the columns) and a table of those offsets turn the conv into the
 * tiled product of ktile.h, reading b in place: each output element is the
 * same fused multiply-add chain over (c, k0, k1, k2) as the im2col product
 * computes, so both paths give the same bits. Output rows exactly 8 wide go
 * two at a time (one 16-lane tile: a 64-channel 8x8 conv ran 2.4x faster).
 * With stride s, the padded copy is stored split by phase: along each dim,
 * padded position t goes to phase t % s at index t / s, so output o through
 * tap k (padded position o * s + k * d) reads phase (k * d) % s at index
 * o + (k * d) / s, again contiguous in o. Only the phases some tap reads are
 * copied (a 1x1 stride-2 conv copies one of four: what it reads). Taken when
 * the output rows are at least 8 wide (a tile's lanes), every dim's taps
 * read at most MAX_PHASES phases, and the processor has AVX2 and FMA. */

#define MAX_PHASES 8

/* The padded copy's geometry. Along dim i the padded extent is
 * (out - 1) * s + (k - 1) * d + 1, split into the phases res[i][0..nph[i])
 * (the residues mod s that taps read, ascending) of len[i] positions each. */
typedef struct {
    int64_t len[3], nph[3], res[3][MAX_PHASES];
    int64_t row, phase, plane; /* row: len[2]; phase: len0 * len1 rows and 16 floats; plane: a channel's phases */
} Padded;

/* Fills q; 0 when a dim's taps read more than MAX_PHASES phases. */
static int padded_of(const KGeo *g, Padded *q)
{
    for (int i = 0; i < 3; i++) {
        int64_t s = g->s[i], ext = (g->out[i] - 1) * s + (g->k[i] - 1) * g->d[i] + 1;
        q->len[i] = (ext + s - 1) / s;
        q->nph[i] = 0;
        for (int64_t r = 0; r < s; r++) { // residue r is read when some tap k has k * d = r (mod s)
            int read = 0;
            for (int64_t k = 0; k < g->k[i] && !read; k++) read = k * g->d[i] % s == r;
            if (!read) continue;
            if (q->nph[i] == MAX_PHASES) return 0;
            q->res[i][q->nph[i]++] = r;
        }
    }
    q->row = q->len[2];
    q->phase = q->len[0] * q->len[1] * q->row + 16; // + slack: pad_image's whole vectors
    q->plane = q->nph[0] * q->nph[1] * q->nph[2] * q->phase;
    return 1;
}

/* The index among q's phases of dim i of residue r (one that taps read). */
static int64_t phase_index(const Padded *q, int i, int64_t r)
{
    int64_t j = 0;
    while (q->res[i][j] != r) j++;
    return j;
}

static int direct_ok(const KConv *p, const KGeo *g)
{
#if K_TILED
    Padded q;
    int64_t G = p->group, Kg = p->C / G * g->kp;
    return !pointwise(g) && g->out[2] >= 8 && padded_of(g, &q) && k_tiled_ok(p->M / G * Kg);
#else
    (void)p, (void)g;
    return 0;
#endif
}

/* Floats of one image's padded copy, and bytes of the offset table (0 when
 * the path cannot be taken). */
static int64_t direct_image(const KConv *p, const KGeo *g)
{
    Padded q;
    return padded_of(g, &q) ? p->C * q.plane : 0;
}

static int64_t direct_table_bytes(const KConv *p, const KGeo *g)
{
    return (p->C / p->group * g->kp * (int64_t)sizeof(int64_t) + 63) / 64 * 64;
}

#if K_TILED
/* The 8 floats src[i .. i + 7], 0 for those outside [0, n) (not read). */
static inline AVX2 __m256 load_inside(const float *src, int64_t i, int64_t n)
{
    if (i >= 0 && i + 8 <= n) return _mm256_loadu_ps(src + i);
    __m256i idx = _mm256_add_epi32(_mm256_set1_epi32((int)i), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), idx),
                                     _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx));
    return _mm256_maskload_ps(src + i, in);
}

/* One input row src (n floats; NULL: a row of padding) into its rows of
 * the phase copy: with the padded row P[t] = src[t - pad] (0 outside src),
 * dst[r][j] = P[j * s + r] for j in [0, len), for the residues r < s whose
 * dst[r] is not NULL; s is 1 or 2. Loads at src's ends are masked to its
 * extent (masked lanes are not read); stores are whole vectors, up to 7
 * floats past len (see pad_image). */
static AVX2 void pad_row(float *const *dst, const float *src, int64_t n, int64_t pad, int64_t s,
                         int64_t len)
{
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t j = 0; j < len; j += 8) {
        int64_t t = j * s - pad; // src index of P[j * s]
        __m256 a = src ? load_inside(src, t, n) : zero;
        if (s == 1) {
            _mm256_storeu_ps(dst[0] + j, a);
            continue;
        }
        __m256 b = src ? load_inside(src, t + 8, n) : zero;
        // a0 a2 b0 b2 | a4 a6 b4 b6 -> a0 a2 a4 a6 b0 b2 b4 b6 (and the odd lanes likewise)
        __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
        o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
        if (dst[0]) _mm256_storeu_ps(dst[0] + j, e);
        if (dst[1]) _mm256_storeu_ps(dst[1] + j, o);
    }
}

/* pad_row in AVX-512, with what every row of an image shares worked out
 * once: vector v of a padded row (16 floats, up to 15 past len) reads the
 * input row from index t[v] under the mask ma[v] (its lanes inside [0, n))
 * and, with stride 2, t[v] + 16 under mb[v]. */
#define ROW16_MAX 64
typedef struct {
    int64_t nv, s, t[ROW16_MAX];
    __mmask16 ma[ROW16_MAX], mb[ROW16_MAX];
} Row16;

/* 0 when a row has more than ROW16_MAX vectors. */
static int row16_of(Row16 *rp, int64_t n, int64_t pad, int64_t s, int64_t len)
{
    rp->nv = (len + 15) / 16, rp->s = s;
    if (rp->nv > ROW16_MAX) return 0;
    for (int64_t v = 0; v < rp->nv; v++) {
        rp->t[v] = 16 * v * s - pad; // src index of P[16 v s]
        rp->ma[v] = k_inside16(rp->t[v], n);
        rp->mb[v] = s == 2 ? k_inside16(rp->t[v] + 16, n) : 0;
    }
    return 1;
}

static inline AVX512 __attribute__((always_inline)) void pad_row16(float *const *dst, const float *src,
                                                                     const Row16 *rp)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t v = 0; v < rp->nv; v++) {
        __m512 a = src ? _mm512_maskz_loadu_ps(rp->ma[v], src + rp->t[v]) : zero;
        if (rp->s == 1) {
            _mm512_storeu_ps(dst[0] + 16 * v, a);
            continue;
        }
        __m512 b = src ? _mm512_maskz_loadu_ps(rp->mb[v], src + rp->t[v] + 16) : zero;
        if (dst[0]) _mm512_storeu_ps(dst[0] + 16 * v, _mm512_permutex2var_ps(a, even, b));
        if (dst[1]) _mm512_storeu_ps(dst[1] + 16 * v, _mm512_permutex2var_ps(a, odd, b));
    }
}

/* pad_image's loops with AVX-512 rows, in one function so that the row
 * copies are inlined (a call per row cost as much as its copying). */
static AVX512 void pad_image16(float *xp, const float *x, int64_t C, const KGeo *g, const Padded *q,
                               const Row16 *rp)
{
    for (int64_t c = 0; c < C; c++)
        for (int64_t a0 = 0; a0 < q->nph[0]; a0++)
            for (int64_t a1 = 0; a1 < q->nph[1]; a1++) {
                float *dst[2] = {0}; // row 0 of the column phase of residue 0 and 1 (NULL if not read)
                float *base = xp + c * q->plane + (a0 * q->nph[1] + a1) * q->nph[2] * q->phase;
                for (int64_t a2 = 0; a2 < q->nph[2]; a2++) dst[q->res[2][a2]] = base + a2 * q->phase;
                for (int64_t j0 = 0; j0 < q->len[0]; j0++) {
                    int64_t i0 = j0 * g->s[0] + q->res[0][a0] - g->p[0];
                    for (int64_t j1 = 0; j1 < q->len[1]; j1++) {
                        int64_t i1 = j1 * g->s[1] + q->res[1][a1] - g->p[1];
                        const float *src = i0 < 0 || i0 >= g->in[0] || i1 < 0 || i1 >= g->in[1]
                                               ? NULL
                                               : x + ((c * g->in[0] + i0) * g->in[1] + i1) * g->in[2];
                        pad_row16(dst, src, rp);
                        for (int h = 0; h < 2; h++)
                            if (dst[h]) dst[h] += q->row;
                    }
                }
            }
}
#endif

/* xp (C, phases, len...) from x (C, in...): the padded image (zeros around x
 * behind the begin pads) split by phase as Padded describes. With s2 of 1 or
 * 2 (AVX2 or AVX-512), each input row fills its row of every column phase in
 * one pass, in whole vectors: a row's spill past its end lands in the next
 * rows of its phase, written after it, or in the phase's slack (Padded.phase). */
static void pad_image(float *xp, const float *x, int64_t C, const KGeo *g, const Padded *q)
{
    // pad_row's lane indices are 32-bit
    int vec = K_TILED && g->s[2] <= 2 && g->in[2] + g->p[2] + 2 * q->row + 16 < INT32_MAX;
#if K_TILED
    Row16 rp;
    if (vec && k_tiles_avx512() && row16_of(&rp, g->in[2], g->p[2], g->s[2], q->row)) {
        pad_image16(xp, x, C, g, q, &rp);
        return;
    }
#endif
    for (int64_t c = 0; c < C; c++)
        for (int64_t a0 = 0; a0 < q->nph[0]; a0++)
            for (int64_t a1 = 0; a1 < q->nph[1]; a1++) {
                // dst[a2]: row 0 of column phase a2 (vec: indexed by residue, NULL if not read)
                float *dst[MAX_PHASES] = {0};
                float *base = xp + c * q->plane + (a0 * q->nph[1] + a1) * q->nph[2] * q->phase;
                for (int64_t a2 = 0; a2 < q->nph[2]; a2++) dst[vec ? q->res[2][a2] : a2] = base + a2 * q->phase;
                for (int64_t j0 = 0, r = 0; j0 < q->len[0]; j0++)
                    for (int64_t j1 = 0; j1 < q->len[1]; j1++, r++) {
                        // row r of these phases is padded row (i0, i1) + begin pads
                        int64_t i0 = j0 * g->s[0] + q->res[0][a0] - g->p[0];
                        int64_t i1 = j1 * g->s[1] + q->res[1][a1] - g->p[1];
                        const float *src = i0 < 0 || i0 >= g->in[0] || i1 < 0 || i1 >= g->in[1]
                                               ? NULL
                                               : x + ((c * g->in[0] + i0) * g->in[1] + i1) * g->in[2];
#if K_TILED
                        if (vec) {
                            float *row[2] = {dst[0] ? dst[0] + r * q->row : NULL, dst[1] ? dst[1] + r * q->row : NULL};
                            pad_row(row, src, g->in[2], g->p[2], g->s[2], q->row);
                            continue;
                        }
#endif
                        for (int64_t a2 = 0; a2 < q->nph[2]; a2++)
                            for (int64_t j = 0; j < q->row; j++) {
                                int64_t i2 = j * g->s[2] + q->res[2][a2] - g->p[2];
                                dst[a2][r * q->row + j] = src && i2 >= 0 && i2 < g->in[2] ? src[i2] : 0.0f;
                            }
                    }
            }
}

#if K_TILED
/* One output row (post: its epilogue, or NULL), each its own copy of the
 * tiles so that the plain conv's inner loop stays as it was. */
static AVX2 void direct_rows(int64_t Mg, int64_t width, int64_t Kg, const float *w,
                             const float *xrow, const int64_t *boff, float *y, int64_t ldy,
                             const KTilePost *post)
{
    if (post) k_tiled_nn(Mg, width, Kg, 1.0f, w, Kg, 1, xrow, 0, boff, 0.0f, y, ldy, post);
    else k_tiled_nn(Mg, width, Kg, 1.0f, w, Kg, 1, xrow, 0, boff, 0.0f, y, ldy, NULL);
}

/* Two output rows 8 wide at once (a whole 16-lane tile): the second row's
 * inputs start `next` floats after the first's. */
static AVX2 void direct_pair(int64_t Mg, int64_t Kg, const float *w, const float *xrow,
                             int64_t next, const int64_t *boff, float *y, int64_t ldy,
                             const KTilePost *post)
{
    if (post) k_tiled_pair(Mg, Kg, w, Kg, xrow, next, boff, y, ldy, post);
    else k_tiled_pair(Mg, Kg, w, Kg, xrow, next, boff, y, ldy, NULL);
}

/* direct_rows in AVX-512. */
static AVX512 void direct_rows16(int64_t Mg, int64_t width, int64_t Kg, const float *w,
                                 const float *xrow, const int64_t *boff, float *y, int64_t ldy,
                                 const KTilePost *post)
{
    if (post) k_tiled_nn16(Mg, width, Kg, 1.0f, w, Kg, 1, xrow, 0, boff, 0.0f, y, ldy, post);
    else k_tiled_nn16(Mg, width, Kg, 1.0f, w, Kg, 1, xrow, 0, boff, 0.0f, y, ldy, NULL);
}

/* AVX-512: 32 outputs at once, two rows 16 wide or (half) four rows 8 wide,
 * each row's inputs `next` floats after the one before. */
static AVX512 void direct_runs16(int half, int64_t Mg, int64_t Kg, const float *w, const float *xrow,
                                 int64_t next, const int64_t *boff, float *y, int64_t ldy,
                                 const KTilePost *post)
{
    if (post) k_tiled_runs16(half, Mg, Kg, w, Kg, xrow, next, boff, y, ldy, post);
    else k_tiled_runs16(half, Mg, Kg, w, Kg, xrow, next, boff, y, ldy, NULL);
}
#endif

#if K_TILED
/* A convolution read in place: what its images and rows share. */
typedef struct {
    float *y;
    const float *x, *w;
    const KTilePost *post;
    const KConv *p;
    const KGeo *g;
    Padded q;
    const int64_t *boff;
    float *pads;
    int64_t img, G, Cg, Mg, Kg, steps;
    int per, wide, rpar; /* per: output rows a step computes (1, 2 or 4); wide: AVX-512 */
} Direct;

/* One image's row steps [s0, s1) from its padded copy xp into yn. */
typedef struct {
    const Direct *d;
    const float *xp;
    float *yn;
} DirectImage;

static void direct_steps(void *arg, int64_t s0, int64_t s1, int tid)
{
    const DirectImage *di = arg;
    const Direct *d = di->d;
    const KGeo *g = d->g;
    int64_t G = d->G, Cg = d->Cg, Mg = d->Mg, Kg = d->Kg;
    for (int64_t st = s0; st < s1; st++) {
        int64_t r = st * d->per, o0 = r / g->out[1], o1 = r % g->out[1];
        const float *xr = di->xp + (o0 * d->q.len[1] + o1) * d->q.row;
        for (int64_t gi = 0; gi < G; gi++) {
            const float *wg = d->w + gi * Mg * Kg, *xg = xr + gi * Cg * d->q.plane;
            float *yg = di->yn + gi * Mg * g->pout + r * g->out[2];
            KTilePost pg = d->post ? post_rows(d->post, gi * Mg) : (KTilePost){0};
            const KTilePost *pp = d->post ? &pg : NULL;
            if (d->wide && d->per > 1) direct_runs16(d->per == 4, Mg, Kg, wg, xg, d->q.row, d->boff, yg, g->pout, pp);
            else if (d->wide) direct_rows16(Mg, g->out[2], Kg, wg, xg, d->boff, yg, g->pout, pp);
            else if (d->per > 1) direct_pair(Mg, Kg, wg, xg, d->q.row, d->boff, yg, g->pout, pp);
            else direct_rows(Mg, g->out[2], Kg, wg, xg, d->boff, yg, g->pout, pp);
        }
    }
}

/* Images [lo, hi): each padded into this thread's slot, then its rows (over
 * the threads when it is the only image). */
static void direct_images(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Direct *d = arg;
    const KConv *p = d->p;
    DirectImage di = {d, d->pads + slot_of(p, tid) * d->img, NULL};
    for (int64_t n = lo; n < hi; n++) {
        di.yn = d->y + n * p->M * d->g->pout;
        pad_image(d->pads + slot_of(p, tid) * d->img, d->x + n * p->C * d->g->pin, p->C, d->g, &d->q);
        k_par_for(d->steps, d->rpar ? K_MACS_WORK(p->M * d->g->pout * d->Kg) : 0, direct_steps, &di);
    }
}
#endif

static void conv_direct(float *y, const float *x, const float *w, const KTilePost *post,
                        const KConv *p, const KGeo *g, void *ws, int ipar)
{
#if K_TILED
    Direct d = {.y = y, .x = x, .w = w, .post = post, .p = p, .g = g, .boff = ws};
    Padded *q = &d.q;
    padded_of(g, q);
    int64_t G = p->group, Cg = p->C / G, Mg = p->M / G, Kg = Cg * g->kp;
    d.G = G, d.Cg = Cg, d.Mg = Mg, d.Kg = Kg;
    d.img = direct_image(p, g);
    d.pads = (float *)((char *)ws + direct_table_bytes(p, g));
    int64_t *boff = ws; // row k = (c, k0, k1, k2) of a group's weights
    for (int64_t k0 = 0, k = 0; k0 < g->k[0]; k0++) // channel 0's taps
        for (int64_t k1 = 0; k1 < g->k[1]; k1++)
            for (int64_t k2 = 0; k2 < g->k[2]; k2++) {
                // tap t = k * d reads phase t % s from index t / s on
                int64_t t0 = k0 * g->d[0], t1 = k1 * g->d[1], t2 = k2 * g->d[2];
                int64_t ph = (phase_index(q, 0, t0 % g->s[0]) * q->nph[1] +
                              phase_index(q, 1, t1 % g->s[1])) * q->nph[2] +
                             phase_index(q, 2, t2 % g->s[2]);
                boff[k++] = ph * q->phase + (t0 / g->s[0] * q->len[1] + t1 / g->s[1]) * q->row + t2 / g->s[2];
            }
    for (int64_t c = 1; c < Cg; c++) // channel c's: a plane on (divisions per tap were 1% of resnet_small)
        for (int64_t k = 0; k < g->kp; k++) boff[c * g->kp + k] = boff[k] + c * q->plane;
    // rows narrower than a tile go several at a time within a plane (o1, o1 + 1, ...):
    // AVX2 tiles are 16 wide (rows 8 wide in pairs), AVX-512 ones 32 (16 in pairs, 8 in fours)
    int64_t w2 = g->out[2], o1 = g->out[1];
    d.wide = k_tiles_avx512();
    if (d.wide) d.per = w2 == 8 && o1 % 4 == 0 ? 4 : w2 == 16 && o1 % 2 == 0 ? 2 : 1;
    else d.per = w2 == 8 && o1 % 2 == 0 ? 2 : 1;
    d.steps = g->out[0] * o1 / d.per;
    d.rpar = conv_images(p) <= 1; // one image: its rows take the threads
    for_images(p, ipar, direct_images, &d);
#else
    (void)y, (void)x, (void)w, (void)post, (void)p, (void)g, (void)ws, (void)ipar;
#endif
}

/* Output rows (of out0 * out1) in one block of columns (kwindow.h). */
static int64_t cols_block(const KConv *p, const KGeo *g)
{
    return k_col_block(p->C * g->kp, g->out[2], g->out[0] * g->out[1], K_COL_FLOATS);
}

/* Bytes of the workspace before the epilogue's factors: the larger of the
 * two paths' (the one taken depends on the processor it runs on). */
static int64_t main_bytes(const KConv *p, const KGeo *g)
{
    if (pointwise(g)) return 0;
    int64_t cols = conv_images(p) * p->C * g->kp * cols_block(p, g) * g->out[2] * (int64_t)sizeof(float);
    int64_t direct = direct_table_bytes(p, g) + conv_images(p) * direct_image(p, g) * (int64_t)sizeof(float);
    int64_t wino = p->packed ? k_wino_bytes(p, g) : 0, most = direct > cols ? direct : cols;
    return ((wino > most ? wino : most) + 63) / 64 * 64;
}

/* A convolution through im2col, a block of output rows at a time (or,
 * pointwise, x itself), and k_sgemm. */
typedef struct {
    float *y;
    const float *x, *w;
    const KConv *p;
    const KGeo *g;
    const KTilePost *post;
    void *ws;
    int64_t colsize, blk;
    int pw, one, gpar;
} Cols;

static void cols_images(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Cols *c = arg;
    const KConv *p = c->p;
    const KGeo *g = c->g;
    int64_t G = p->group, Mg = p->M / G, Kg = p->C / G * g->kp, rows = g->out[0] * g->out[1];
    float *col = (float *)c->ws + slot_of(p, tid) * c->colsize;
    for (int64_t n = lo; n < hi; n++) {
        const float *xn = c->x + n * p->C * g->pin;
        float *yn = c->y + n * p->M * g->pout;
        if (c->pw) { // group gi's rows of yn [Mg, pout] = w_gi [Mg, Kg] * x_gi [Kg, pout]
            GroupGemms q = {0, Mg, g->pout, Kg, c->w, xn, yn, Mg * Kg, Kg * g->pout, Mg * g->pout, 0, 0};
            group_gemms(G, &q, c->gpar);
        } else {
            for (int64_t q0 = 0; q0 < rows; q0 += c->blk) {
                int64_t q1 = q0 + c->blk < rows ? q0 + c->blk : rows, w = (q1 - q0) * g->out[2];
                k_im2col_block(col, xn, p->C, g, q0, q1, c->one && p->C * g->kp * w >= PAR_ELEMS);
                // the block's columns of group gi's rows: yn_gi [Mg, w] = w_gi [Mg, Kg] * col_gi [Kg, w]
                GroupGemms q = {0, Mg, w, Kg, c->w, col, yn + q0 * g->out[2], Mg * Kg, Kg * w, Mg * g->pout, w, g->pout};
                group_gemms(G, &q, c->gpar);
            }
        }
        if (c->post) post_image(yn, c->post, p->M, g->pout);
    }
}

size_t k_conv_f32_ws(const KConv *p)
{
    KGeo g;
    geo_of(p, &g);
    return (size_t)(main_bytes(p, &g) + post_bytes(p));
}

size_t k_conv_pack_f32_bytes(const KConv *p)
{
    KGeo g;
    geo_of(p, &g);
    return (size_t)k_wino_pack_bytes(p, &g);
}

void k_conv_pack_f32(void *pack, const float *w, const KConv *p)
{
    KGeo g;
    geo_of(p, &g);
    k_wino_pack(pack, w, p, &g);
}

void k_conv_f32(float *y, const float *x, const float *w, const float *b, const KConv *p, void *ws)
{
    k_conv_post_f32(y, x, w, b, NULL, p, ws);
}

void k_conv_post_f32(float *y, const float *x, const float *w, const float *b, const KConvPost *post,
                     const KConv *p, void *ws)
{
    // x is (N,C,in...), w is (M,C/group,k...), y is (N,M,out...)
    KGeo g;
    geo_of(p, &g);
    int64_t G = p->group, Cg = p->C / G, Mg = p->M / G, Kg = Cg * g.kp;
    if (g.pout <= 0 || Mg <= 0) return;
    int pw = pointwise(&g);
    int64_t imgs = conv_images(p), blk = cols_block(p, &g), colsize = p->C * g.kp * blk * g.out[2];
    KTilePost t;
    int epi = post_of(&t, y, b, post, p->M, (float *)((char *)ws + main_bytes(p, &g)));
    // one image alone: its im2col and groups take the threads (gemms split in k_sgemm)
    int one = imgs <= 1, gpar = one && G > 1 && Mg * g.pout * Kg < SMALL_GEMM && G * Mg * g.pout * Kg >= SMALL_GEMM;
    int ipar = !one && p->N * p->M * g.pout * Kg >= SMALL_GEMM; // images side by side
    if (p->packed && post && post->wpack && k_wino_ok(p, &g)) {
        k_wino_conv(y, x, post->wpack, epi ? &t : NULL, p, &g, ws, ipar || (one && p->M * g.pout * Kg >= SMALL_GEMM));
        return;
    }
    if (direct_ok(p, &g)) {
        conv_direct(y, x, w, epi ? &t : NULL, p, &g, ws, ipar);
        return;
    }
    Cols c = {y, x, w, p, &g, epi ? &t : NULL, ws, colsize, blk, pw, one, gpar};
    for_images(p, ipar, cols_images, &c);
}

/* ---- ConvTranspose ----
 * Each image takes blocks of input rows: one sgemm per group into columns
 * [M * kp, block], which col2im scatters into y (initialized to the bias
 * first). (Running a stride-1 one as a convolution in place with flipped
 * weights was tried: faster, but one fused multiply-add chain over C * kp
 * terms had about 3x the rounding error of a sum over C per tap, and
 * unet_small's ten training steps then left the parity tier's 1e-4.) */

/* Input rows (of in0 * in1) in one block of columns. */
static int64_t convt_block(const KConv *p, const KGeo *g)
{
    return k_col_block(p->M * g->kp, g->in[2], g->in[0] * g->in[1], K_COL_FLOATS);
}

size_t k_conv_transpose_f32_ws(const KConv *p)
{
    KGeo g;
    geo_of(p, &g);
    if (pointwise(&g)) return 0;
    return (size_t)(conv_images(p) * p->M * g.kp * convt_block(p, &g) * g.in[2]) * sizeof(float);
}

/* y [M, pout] of one image += the columns col [M * kp, (r1 - r0) * in2] of its
 * input rows [r0, r1): each input position, through each kernel tap, adds to
 * the output position it lands on. One thread per output channel, taps and
 * positions in a fixed order: a deterministic sum. */
typedef struct {
    float *y;
    const float *col;
    const KGeo *g;
    int64_t r0, r1;
} Col2im;

static void col2im_rows(void *arg, int64_t m0, int64_t m1, int tid)
{
    const Col2im *a = arg;
    const KGeo *g = a->g;
    int64_t k12 = g->k[1] * g->k[2], width = (a->r1 - a->r0) * g->in[2];
    for (int64_t m = m0; m < m1; m++) {
        float *ym = a->y + m * g->pout;
        for (int64_t kk = 0; kk < g->kp; kk++) {
            const float *src = a->col + (m * g->kp + kk) * width;
            int64_t off0 = (kk / k12) * g->d[0] - g->p[0];
            int64_t off1 = (kk / g->k[2] % g->k[1]) * g->d[1] - g->p[1];
            int64_t off2 = (kk % g->k[2]) * g->d[2] - g->p[2];
            int64_t lo, hi;
            k_valid_range(g->in[2], g->out[2], g->s[2], off2, &lo, &hi);
            for (int64_t r = a->r0, i0 = r / g->in[1], i1 = r % g->in[1]; r < a->r1; r++, src += g->in[2]) {
                int64_t o0 = i0 * g->s[0] + off0, o1 = i1 * g->s[1] + off1;
                if (++i1 == g->in[1]) i1 = 0, i0++;
                if (o0 < 0 || o0 >= g->out[0] || o1 < 0 || o1 >= g->out[1]) continue;
                float *yr = ym + (o0 * g->out[1] + o1) * g->out[2];
                for (int64_t i2 = lo; i2 < hi; i2++) yr[i2 * g->s[2] + off2] += src[i2];
            }
        }
    }
}

static void col2im(float *y, const float *col, int64_t M, const KGeo *g, int64_t r0, int64_t r1, int par)
{
    Col2im a = {y, col, g, r0, r1};
    k_par_for(M, par ? M * g->kp * (r1 - r0) * g->in[2] : 0, col2im_rows, &a);
}

/* ConvTranspose through columns: images [lo, hi), each with the workspace
 * slot of its thread. */
typedef struct {
    float *y;
    const float *x, *w, *b;
    const KConv *p;
    const KGeo *g;
    void *ws;
    int64_t colsize, blk;
    int pw, one, gpar;
} ConvT;

static void convt_images(void *arg, int64_t lo, int64_t hi, int tid)
{
    const ConvT *c = arg;
    const KConv *p = c->p;
    const KGeo *g = c->g;
    int64_t G = p->group, Rg = p->M / G * g->kp, Cg = p->C / G, rows = g->in[0] * g->in[1];
    float *col = (float *)c->ws + slot_of(p, tid) * c->colsize;
    for (int64_t n = lo; n < hi; n++) {
        float *yn = c->y + n * p->M * g->pout;
        const float *xn = c->x + n * p->C * g->pin;
        if (c->pw) { // the columns are y itself: yn_gi [Mg, pin] = w_gi^T [Mg, Cg] * x_gi [Cg, pin]
            GroupGemms q = {1, Rg, g->pin, Cg, c->w, xn, yn, Cg * Rg, Cg * g->pin, Rg * g->pin, 0, 0};
            group_gemms(G, &q, c->gpar);
            if (c->b) add_bias(yn, c->b, p->M, g->pout);
            continue;
        }
        for (int64_t m = 0; m < p->M; m++)
            for (int64_t i = 0; i < g->pout; i++) yn[m * g->pout + i] = c->b ? c->b[m] : 0.0f;
        for (int64_t r0 = 0; r0 < rows; r0 += c->blk) {
            int64_t r1 = r0 + c->blk < rows ? r0 + c->blk : rows, w = (r1 - r0) * g->in[2];
            // columns [Mg*kp, w] of group gi = w_gi^T [Mg*kp, Cg] * the block of x_gi [Cg, w]
            GroupGemms q = {1, Rg, w, Cg, c->w, xn + r0 * g->in[2], col, Cg * Rg, Cg * g->pin, Rg * w, g->pin, w};
            group_gemms(G, &q, c->gpar);
            col2im(yn, col, p->M, g, r0, r1, c->one && p->M * g->kp * w >= PAR_ELEMS);
        }
    }
}

void k_conv_transpose_f32(float *y, const float *x, const float *w, const float *b, const KConv *p,
                          void *ws)
{
    // x is (N,C,in...), w is (C,M/group,k...), y is (N,M,out...)
    KGeo g;
    geo_of(p, &g);
    int64_t G = p->group, Cg = p->C / G, Mg = p->M / G, Rg = Mg * g.kp;
    int pw = pointwise(&g);
    int64_t blk = convt_block(p, &g), colsize = p->M * g.kp * blk * g.in[2];
    int one = conv_images(p) <= 1, gpar = one && G > 1 && Rg * g.pin * Cg < SMALL_GEMM && G * Rg * g.pin * Cg >= SMALL_GEMM;
    int ipar = !one && p->N * p->M * g.kp * g.pin * Cg >= SMALL_GEMM; // images side by side
    ConvT c = {y, x, w, b, p, &g, ws, colsize, blk, pw, one, gpar};
    for_images(p, ipar, convt_images, &c);
}
