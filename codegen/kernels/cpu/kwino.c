/* Winograd F(2x2, 3x3) convolution (float32, AVX-512): a 2-D 3x3 conv with
 * stride 1, no dilation and one group, as 16 products over channels instead
 * of one over channels x 9 taps (2.25x fewer multiply-adds).
 *
 * Each output tile of 2x2 positions reads a 4x4 patch d of the input; with
 * the transforms of Lavin and Gray (2015),
 *   y_tile = A^T [ sum_c (G w_c G^T) . (B^T d_c B) ] A
 * where . multiplies elementwise. So per block of tiles:
 *   V[e][c][t] = (B^T d_{c,t} B)[e]     input transform, e = 0..15
 *   P[e][m][t] = sum_c U[e][m][c] V[e][c][t]   16 products
 *   y          = A^T P A                output transform, then the epilogue
 * with U = G w G^T prepared once, when the program starts (k_wino_pack:
 * an inference program's model_prepare; the transform costs about what the
 * products save on 20 tiles, so per call it would eat a small image's
 * gain). V and P are laid out [channel][e][lane], 16 rows of TB lanes a
 * channel. Tiles sit in the vector lanes: a row of tiles (one per 2 output
 * columns) is read from 4 input rows by masked loads and even/odd lane
 * permutes, so zero padding costs nothing. A row of TX tiles takes TXp lanes
 * (the next power of two up to 16, else a multiple of 16), so rows of a
 * narrow image share a vector; a block is rows of tiles of consecutive
 * images, TB lanes in all.
 *
 * Rounding: each output is a sum of 16 products of transformed values, each
 * a sum over channels, instead of one chain over C x 9 taps. Against a double
 * reference, relative to sum |x w|, its error was 0.5-1x the direct conv's
 * (16 to 512 channels); tests/unit/test_kcpu_conv.c bounds it. The bits differ
 * from the direct conv's, so a training program, whose parity with PyTorch
 * over ten steps the direct conv's bits were measured against, keeps that
 * (its weights change each step too). Deterministic: a block is one
 * thread's, and no sum is split. */
#include <string.h>

#include "kernels.h"
#include "ktile.h"
#include "kwindow.h"
#include "kwino.h"

/* Lanes of a block: 2 vectors of tiles per product tile (fewer rows of tiles
 * per block keeps a 64-channel 8x8 conv's four images on two threads). */
#define WINO_TB 32
/* Threads (workspace slots) at most. */
#define WINO_SLOTS 4

typedef struct {
    int64_t H, W, Ho, Wo, pt, pl; /* input and output sizes, top and left pads */
    int64_t TY, TX, TXp;          /* rows of tiles per image, tiles per row, lanes per row */
    int64_t R, TB, rows, blocks;  /* rows of tiles per block, lanes per block, rows in all */
    int64_t vstr, pstr, vfl, pfl; /* from an input (output) channel's 16 rows of TB in V (P) to the next's; a slot's floats of V and P */
    int64_t ustr;                 /* floats from U[e] to U[e + 1] */
} WGeo;

static void wgeo_of(const KConv *p, const KGeo *g, WGeo *q)
{
    q->H = g->in[1], q->W = g->in[2], q->Ho = g->out[1], q->Wo = g->out[2];
    q->pt = g->p[1], q->pl = g->p[2];
    q->TY = (q->Ho + 1) / 2, q->TX = (q->Wo + 1) / 2;
    if (q->TX <= 16) {
        q->TXp = 1;
        while (q->TXp < q->TX) q->TXp *= 2;
    } else {
        q->TXp = (q->TX + 15) / 16 * 16;
    }
    q->TB = q->TXp > WINO_TB ? q->TXp : WINO_TB;
    q->R = q->TB / q->TXp;
    q->rows = p->N * q->TY;
    q->blocks = (q->rows + q->R - 1) / q->R;
    q->vstr = q->pstr = 16 * q->TB + 16; // not a power of two: a product's rows in distinct cache sets
    q->vfl = p->C * q->vstr;
    q->pfl = p->M * q->pstr;
    q->ustr = (p->M * p->C + 15) / 16 * 16 + 16; // an odd number of 64-byte lines: the 16 in distinct sets
}

/* A 2-D 3x3 conv, stride 1, no dilation, one group, enough channels, and
 * output rows of at least 4 tiles (rows of fewer would leave most lanes of
 * a vector empty). */
static int wino_shape(const KConv *p, const KGeo *g)
{
    return p->group == 1 && g->in[0] == 1 && g->out[0] == 1 && g->k[0] == 1 && g->k[1] == 3 && g->k[2] == 3 &&
           g->s[1] == 1 && g->s[2] == 1 && g->d[1] == 1 && g->d[2] == 1 && p->C >= 8 && p->M >= 8 &&
           g->out[2] >= 7 && g->out[1] >= 2;
}

int k_wino_ok(const KConv *p, const KGeo *g)
{
#if K_TILED
    return wino_shape(p, g) && k_tiles_avx512();
#else
    (void)p, (void)g;
    return 0;
#endif
}

int64_t k_wino_bytes(const KConv *p, const KGeo *g)
{
    if (!wino_shape(p, g)) return 0;
    WGeo q;
    wgeo_of(p, g, &q);
    int64_t slots = q.blocks < WINO_SLOTS ? q.blocks : WINO_SLOTS;
    return ((q.W + 15) / 16 * 16 + slots * (q.vfl + q.pfl)) * (int64_t)sizeof(float);
}

int64_t k_wino_pack_bytes(const KConv *p, const KGeo *g)
{
    if (!wino_shape(p, g)) return 0;
    WGeo q;
    wgeo_of(p, g, &q);
    return 16 * q.ustr * (int64_t)sizeof(float);
}

#if K_TILED
typedef struct {
    const KConv *p;
    const KTilePost *post;
    const float *x, *w, *u; /* u: the prepared weights U[e][m][c] */
    float *y, *zero, *slots; /* zero: a row of W zeros */
    WGeo q;
} Wino;

/* u = U[e][m][c] for (m, c) pairs [16 j0, 16 j1): G w G^T, 16 pairs at once. */
static AVX512 void wino_weights(const Wino *z, float *u, int64_t j0, int64_t j1)
{
    int64_t pairs = z->p->M * z->p->C;
    const __m512i nine = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(9));
    const __m512 half = _mm512_set1_ps(0.5f);
    for (int64_t j = j0; j < j1; j++) {
        int64_t b = 16 * j, n = pairs - b < 16 ? pairs - b : 16;
        __mmask16 m = mask16(n);
        __m512 g[9], t[4][3];
        for (int k = 0; k < 9; k++)
            g[k] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, nine, z->w + b * 9 + k, 4);
        for (int k = 0; k < 3; k++) { // G w: rows 0, (0+1+2)/2, (0-1+2)/2, 2 of column k
            __m512 s = _mm512_add_ps(g[k], g[6 + k]);
            t[0][k] = g[k];
            t[1][k] = _mm512_mul_ps(_mm512_add_ps(s, g[3 + k]), half);
            t[2][k] = _mm512_mul_ps(_mm512_sub_ps(s, g[3 + k]), half);
            t[3][k] = g[6 + k];
        }
        for (int i = 0; i < 4; i++) { // (G w) G^T: the same along each row
            __m512 s = _mm512_add_ps(t[i][0], t[i][2]), r[4];
            r[0] = t[i][0];
            r[1] = _mm512_mul_ps(_mm512_add_ps(s, t[i][1]), half);
            r[2] = _mm512_mul_ps(_mm512_sub_ps(s, t[i][1]), half);
            r[3] = t[i][2];
            for (int c = 0; c < 4; c++) _mm512_mask_storeu_ps(u + (4 * i + c) * z->q.ustr + b, m, r[c]);
        }
    }
}

/* V for one vector of tiles and every channel: P = 16 / TXp rows of tiles
 * (1, 2 or 4; with 1, tiles k0.. of its row) whose input rows i = 0..3 of
 * channel 0 start at row[i][seg] (a zero row, not advanced per channel,
 * where outside the image). Per input row, the 32 floats whose even and odd
 * lanes are the patches' columns 0 and 1 are a, b, and those 2 floats on
 * (columns 2 and 3) c, d: with P = 1 one run of the row; else the P rows'
 * runs of 32 / P floats one after another. ma, mc: the lanes of a's and c's
 * loads inside the row (mb, md: b's and d's, P = 1). */
static inline AVX512 __attribute__((always_inline)) void
wino_vector(int P, const Wino *z, const float *const row[4][4], const int in[4][4], __mmask16 ma, __mmask16 mb,
            __mmask16 mc, __mmask16 md, __mmask16 lanes, float *vc)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    // locals: the stores through vc could alias z's fields, which would be reloaded after each
    const int64_t plane = z->q.H * z->q.W, tb = z->q.TB, vstr = z->q.vstr, C = z->p->C;
    const int full = lanes == 0xffff;
    for (int64_t c = 0, off = 0; c < C; c++, vc += vstr, off += plane) {
        __m512 t[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const float *r0 = row[i][0] + (in[i][0] ? off : 0);
            __m512 a, b, cc, d;
            if (P == 1) {
                a = _mm512_maskz_loadu_ps(ma, r0), b = _mm512_maskz_loadu_ps(mb, r0 + 16);
                cc = _mm512_maskz_loadu_ps(mc, r0 + 2), d = _mm512_maskz_loadu_ps(md, r0 + 18);
            } else if (P == 2) {
                const float *r1 = row[i][1] + (in[i][1] ? off : 0);
                a = _mm512_maskz_loadu_ps(ma, r0), b = _mm512_maskz_loadu_ps(ma, r1);
                cc = _mm512_maskz_loadu_ps(mc, r0 + 2), d = _mm512_maskz_loadu_ps(mc, r1 + 2);
            } else { // 8 floats of each row: lanes 8..15 loaded from 8 floats before
                const float *r1 = row[i][1] + (in[i][1] ? off : 0) - 8, *r2 = row[i][2] + (in[i][2] ? off : 0),
                            *r3 = row[i][3] + (in[i][3] ? off : 0) - 8;
                __mmask16 ha = (__mmask16)(ma << 8), hc = (__mmask16)(mc << 8);
                a = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(ma, r0), ha, r1);
                b = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(ma, r2), ha, r3);
                cc = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(mc, r0 + 2), hc, r1 + 2);
                d = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(mc, r2 + 2), hc, r3 + 2);
            }
            __m512 d0 = _mm512_permutex2var_ps(a, ev, b), d1 = _mm512_permutex2var_ps(a, od, b),
                   d2 = _mm512_permutex2var_ps(cc, ev, d), d3 = _mm512_permutex2var_ps(cc, od, d);
            t[i][0] = _mm512_sub_ps(d0, d2);
            t[i][1] = _mm512_add_ps(d1, d2);
            t[i][2] = _mm512_sub_ps(d2, d1);
            t[i][3] = _mm512_sub_ps(d1, d3);
        }
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m512 e[4] = {_mm512_sub_ps(t[0][j], t[2][j]), _mm512_add_ps(t[1][j], t[2][j]),
                           _mm512_sub_ps(t[2][j], t[1][j]), _mm512_sub_ps(t[1][j], t[3][j])};
#pragma GCC unroll 4
            for (int a = 0; a < 4; a++)
                _mm512_storeu_ps(vc + (4 * a + j) * tb, full ? e[a] : _mm512_maskz_mov_ps(lanes, e[a]));
        }
    }
}

/* V for the block's rows of tiles [r0, r0 + R), 16 tiles at a time. Lanes
 * past a row's TX tiles (up to TXp) and rows past the last are zeros. */
static AVX512 void wino_input(const Wino *z, float *v, int64_t r0)
{
    const WGeo *q = &z->q;
    int64_t P = q->TXp >= 16 ? 1 : 16 / q->TXp, L = P == 4 ? 8 : 16;
    for (int64_t k0 = 0; k0 < q->TX; k0 += 16) { // chunks of 16 tiles of a row (P = 1)
        int64_t s = 2 * k0 - q->pl;
        __mmask16 ma = k_inside16(s, q->W) & mask16(L), mb = k_inside16(s + 16, q->W),
                  mc = k_inside16(s + 2, q->W) & mask16(L), md = k_inside16(s + 18, q->W),
                  lanes = 0; // lanes: the tiles', TX of each row's TXp
        for (int64_t j = 0; j < 16; j++)
            if ((P > 1 ? j % q->TXp : k0 + j) < q->TX) lanes |= (__mmask16)(1u << j);
        for (int64_t r = r0; r < r0 + q->R; r += P) {
            const float *row[4][4];
            int in[4][4];
            for (int i = 0; i < 4; i++)
                for (int64_t g = 0; g < P; g++) {
                    int64_t rr = r + g, n = rr / q->TY, yy = 2 * (rr % q->TY) - q->pt + i;
                    in[i][g] = rr < q->rows && yy >= 0 && yy < q->H;
                    row[i][g] = in[i][g] ? z->x + (n * z->p->C * q->H + yy) * q->W + s : z->zero + s;
                }
            float *vc = v + (r - r0) * q->TXp + k0;
            if (P == 1) wino_vector(1, z, row, in, ma, mb, mc, md, lanes, vc);
            else if (P == 2) wino_vector(2, z, row, in, ma, mb, mc, md, lanes, vc);
            else wino_vector(4, z, row, in, ma, mb, mc, md, lanes, vc);
        }
    }
}

/* The 16 products of a block: P[e] [M, TB] = U[e] [M, C] V[e] [C, TB], in
 * ktile.h's register tiles. */
static AVX512 void wino_products(const Wino *z, const float *v, float *pm)
{
    const WGeo *q = &z->q;
    int64_t M = z->p->M, C = z->p->C;
    for (int e = 0; e < 16; e++)
        k_tiled_nn16(M, q->TB, C, 1.0f, z->u + e * q->ustr, C, 1, v + e * q->TB, q->vstr, NULL, 0.0f,
                     pm + e * q->TB, q->pstr, NULL);
}

/* Where a run of one row of tiles goes: the interleaved output rows' half
 * from float f on, to y + off (output channel 0, the tile's first row),
 * cnt columns, rows of the 2 that are inside. */
typedef struct {
    int f, rows;
    __mmask16 cnt;
    int64_t off;
} WRun;

/* y for the block's rows of tiles [r0, r1) from P: per 16 lanes and output
 * channel, A^T P A, the 2x2 results interleaved into two output rows' 32
 * columns (two halves of 16), each row of tiles' run shifted to lane 0 and
 * stored through the epilogue. */
static AVX512 void wino_output(const Wino *z, const float *pm, int64_t r0, int64_t r1)
{
    const WGeo *q = &z->q;
    const KConv *p = z->p;
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t lanes = (r1 - r0) * q->TXp, run = q->TXp < 8 ? 2 * q->TXp : 16, estr = q->TB;
    int64_t plane = q->Ho * q->Wo;
    for (int64_t l0 = 0; l0 < lanes; l0 += 16) {
        WRun rs[2][8]; // [half][run]
        int nr[2] = {0, 0};
        for (int hh = 0; hh < 2; hh++)
            for (int64_t f = 0; f < 16; f += run) {
                int64_t gl = l0 + 8 * hh + f / 2, rr = gl / q->TXp, tx = gl % q->TXp;
                int64_t r = r0 + rr, n = r / q->TY, oy = 2 * (r % q->TY), ox = 2 * tx;
                if (rr >= r1 - r0 || ox >= q->Wo) continue;
                int64_t cnt = q->Wo - ox < run ? q->Wo - ox : run;
                rs[hh][nr[hh]++] = (WRun){(int)f, oy + 1 < q->Ho ? 2 : 1, mask16(cnt),
                                          (n * p->M * q->Ho + oy) * q->Wo + ox};
            }
        const float *pl = pm + l0;
        float *ym = z->y;
        for (int64_t m = 0; m < p->M; m++, pl += q->pstr, ym += plane) {
            __m512 s[4][2];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) { // along each row: columns 0+1+2 and 1-2-3
                __m512 a = _mm512_loadu_ps(pl + (4 * i + 0) * estr), b = _mm512_loadu_ps(pl + (4 * i + 1) * estr),
                       c = _mm512_loadu_ps(pl + (4 * i + 2) * estr), d = _mm512_loadu_ps(pl + (4 * i + 3) * estr);
                s[i][0] = _mm512_add_ps(_mm512_add_ps(a, b), c);
                s[i][1] = _mm512_sub_ps(_mm512_sub_ps(b, c), d);
            }
            __m512 o[2][2]; // [row][column] of each tile's 2x2
#pragma GCC unroll 2
            for (int j = 0; j < 2; j++) {
                o[0][j] = _mm512_add_ps(_mm512_add_ps(s[0][j], s[1][j]), s[2][j]);
                o[1][j] = _mm512_sub_ps(_mm512_sub_ps(s[1][j], s[2][j]), s[3][j]);
            }
#pragma GCC unroll 2
            for (int hh = 0; hh < 2; hh++) {
                __m512 h0 = _mm512_permutex2var_ps(o[0][0], hh ? hi : lo, o[0][1]),
                       h1 = _mm512_permutex2var_ps(o[1][0], hh ? hi : lo, o[1][1]);
                for (int k = 0; k < nr[hh]; k++) {
                    const WRun *w = &rs[hh][k];
                    __m512 v0 = h0, v1 = h1;
                    if (w->f) {
                        __m512i ix = _mm512_add_epi32(iota, _mm512_set1_epi32(w->f));
                        v0 = _mm512_permutexvar_ps(ix, v0), v1 = _mm512_permutexvar_ps(ix, v1);
                    }
                    // through the epilogue (ktile.h: the tiles' own store, alpha 1 when there is none)
                    store16(ym + w->off, v0, w->cnt, 1.0f, 0.0f, z->post, m);
                    if (w->rows > 1) store16(ym + w->off + q->Wo, v1, w->cnt, 1.0f, 0.0f, z->post, m);
                }
            }
        }
    }
}

static void wino_blocks(void *arg, int64_t b0, int64_t b1, int tid)
{
    const Wino *z = arg;
    const WGeo *q = &z->q;
    float *v = z->slots + (tid < WINO_SLOTS ? tid : 0) * (q->vfl + q->pfl), *pm = v + q->vfl;
    for (int64_t b = b0; b < b1; b++) {
        int64_t r0 = b * q->R, r1 = r0 + q->R < q->rows ? r0 + q->R : q->rows;
        wino_input(z, v, r0);
        wino_products(z, v, pm);
        wino_output(z, pm, r0, r1);
    }
}
#endif

void k_wino_pack(void *pack, const float *w, const KConv *p, const KGeo *g)
{
#if K_TILED
    if (!wino_shape(p, g) || !__builtin_cpu_supports("avx512f")) return; // never read then
    Wino z = {.p = p, .w = w};
    wgeo_of(p, g, &z.q);
    wino_weights(&z, pack, 0, (p->M * p->C + 15) / 16);
#else
    (void)pack, (void)w, (void)p, (void)g;
#endif
}

void k_wino_conv(float *y, const float *x, const void *pack, const KTilePost *post, const KConv *p,
                 const KGeo *g, void *ws, int par)
{
#if K_TILED
    Wino z = {.p = p, .post = post, .x = x, .y = y, .u = pack, .zero = ws};
    wgeo_of(p, g, &z.q);
    z.slots = z.zero + (g->in[2] + 15) / 16 * 16;
    memset(z.zero, 0, (size_t)g->in[2] * sizeof(float));
    int64_t slots = z.q.blocks < WINO_SLOTS ? z.q.blocks : WINO_SLOTS;
    k_par_split(z.q.blocks, par ? z.q.blocks : 1, (int)slots, wino_blocks, &z);
#else
    (void)y, (void)x, (void)pack, (void)post, (void)p, (void)g, (void)ws, (void)par;
#endif
}
