/* Internal to the cpu kernels (not part of the kernels.h contract): the
 * geometry of window ops (convolution, pooling and their gradients), right-
 * aligned into 3 spatial dims so that one loop nest serves 1D to 3D, the
 * im2col that convolution and its weight gradient share, and the per-axis
 * taps of Resize that its forward and adjoint share. */
#ifndef LOOM_KWINDOW_H
#define LOOM_KWINDOW_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

typedef struct {
    int64_t in[3], out[3], k[3], s[3], d[3], p[3];
    int64_t kp, pin, pout; /* products: kernel, input, output spatial sizes */
} KGeo;

static inline void k_geo_set(KGeo *g, int nd, const int64_t *in, const int64_t *out,
                             const int64_t *k, const int64_t *s, const int64_t *d, const int64_t *p)
{
    int lead = 3 - nd;
    for (int i = 0; i < 3; i++) {
        int j = i - lead;
        g->in[i] = j < 0 ? 1 : in[j];
        g->out[i] = j < 0 ? 1 : out[j];
        g->k[i] = j < 0 ? 1 : k[j];
        g->s[i] = j < 0 ? 1 : s[j];
        g->d[i] = j < 0 ? 1 : d[j];
        g->p[i] = j < 0 ? 0 : p[j];
    }
    g->kp = g->k[0] * g->k[1] * g->k[2];
    g->pin = g->in[0] * g->in[1] * g->in[2];
    g->pout = g->out[0] * g->out[1] * g->out[2];
}

/* The range [lo, hi) of i in [0, n) with 0 <= i * s + off < lim: the
 * positions of a row that hit real data rather than padding. */
static inline void k_valid_range(int64_t n, int64_t lim, int64_t s, int64_t off, int64_t *lo, int64_t *hi)
{
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = lim - off <= 0 ? 0 : (lim - off + s - 1) / s;
    if (h > n) h = n;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

typedef struct {
    float *col;
    const float *x;
    const KGeo *g;
    int64_t q0, q1; /* output rows (o0, o1) flattened: the block [q0, q1) */
} KIm2col;

/* Rows [r0, r1) of k_im2col_block. */
static inline void k_im2col_rows(void *arg, int64_t r0, int64_t r1, int tid)
{
    const KIm2col *a = arg;
    const KGeo *g = a->g;
    const float *x = a->x;
    int64_t k12 = g->k[1] * g->k[2], width = (a->q1 - a->q0) * g->out[2];
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r / g->kp, kk = r % g->kp;
        int64_t off0 = (kk / k12) * g->d[0] - g->p[0];
        int64_t off1 = (kk / g->k[2] % g->k[1]) * g->d[1] - g->p[1];
        int64_t off2 = (kk % g->k[2]) * g->d[2] - g->p[2];
        int64_t lo, hi;
        k_valid_range(g->out[2], g->in[2], g->s[2], off2, &lo, &hi);
        const float *xc = x + c * g->pin;
        float *dst = a->col + r * width;
        for (int64_t q = a->q0, o0 = q / g->out[1], o1 = q % g->out[1]; q < a->q1; q++, dst += g->out[2]) {
            int64_t i0 = o0 * g->s[0] + off0, i1 = o1 * g->s[1] + off1;
            if (++o1 == g->out[1]) o1 = 0, o0++;
            if (i0 < 0 || i0 >= g->in[0] || i1 < 0 || i1 >= g->in[1]) {
                memset(dst, 0, (size_t)g->out[2] * sizeof *dst);
                continue;
            }
            const float *xr = xc + (i0 * g->in[1] + i1) * g->in[2];
            for (int64_t o2 = 0; o2 < lo; o2++) dst[o2] = 0;
            if (g->s[2] == 1 && hi > lo)
                memcpy(dst + lo, xr + lo + off2, (size_t)(hi - lo) * sizeof *dst);
            else
                for (int64_t o2 = lo; o2 < hi; o2++) dst[o2] = xr[o2 * g->s[2] + off2];
            for (int64_t o2 = hi; o2 < g->out[2]; o2++) dst[o2] = 0;
        }
    }
}

/* col [C*kp, (q1 - q0) * out2] from one image x [C, pin], for the output
 * rows [q0, q1) of out0 * out1: row (c, kernel offset) holds the input value
 * each of those output positions sees through that kernel tap, 0 in padding. */
static inline void k_im2col_block(float *col, const float *x, int64_t C, const KGeo *g, int64_t q0,
                                  int64_t q1, int par)
{
    KIm2col a = {col, x, g, q0, q1};
    k_par_for(C * g->kp, par ? C * g->kp * (q1 - q0) * g->out[2] : 0, k_im2col_rows, &a);
}

/* The column buffers of convolution and its gradients hold a block of rows
 * at a time (kconv.c, kgrad_nn.c): about `floats` floats, and at least
 * K_COL_MIN positions wide so that each block's product stays efficient (a
 * whole image when that is smaller). Conv and ConvTranspose take blocks of
 * K_COL_FLOATS (256 KiB), one per thread slot; the weight gradient's
 * product is a dot product over the block's positions, which short blocks
 * slow down (16K floats: +25% on resnet_small's), so it takes one buffer of
 * K_COL_GRAD_FLOATS (1 MiB). */
#define K_COL_FLOATS 65536
#define K_COL_GRAD_FLOATS 262144
#define K_COL_MIN 64

/* Rows of `rows` (each `width` positions, `per_pos` floats a position) in
 * one block of about `floats` floats. */
static inline int64_t k_col_block(int64_t per_pos, int64_t width, int64_t rows, int64_t floats)
{
    int64_t b = floats / (per_pos * width > 0 ? per_pos * width : 1), least = (K_COL_MIN + width - 1) / width;
    if (b < least) b = least;
    return b < rows ? b : rows > 0 ? rows : 1;
}

/* Where output coordinate o of one axis reads: indices i0, i1 with weight
 * 1 - w1 and w1 (nearest: i0 == i1, w1 = 0), or outside (tf_crop_and_resize
 * beyond the input: the extrapolation value). */
typedef struct {
    int64_t i0, i1;
    double w1;
    int outside;
} KTap;

static inline KTap k_resize_tap(int64_t o, int64_t in, int64_t out, double scale, double roi_start,
                                 double roi_end, int mode, int coord_mode, int nearest_mode)
{
    // the ONNX formulas, with the reference's fractional output length
    // scale * in (it differs from `out` when a scale does not divide evenly)
    double ow = scale * (double)in, x, xo = (double)o;
    switch (coord_mode) {
    case 1: x = xo / scale; break;                                          // asymmetric
    case 2: x = ow == 1 ? 0 : xo * (double)(in - 1) / (ow - 1); break;      // align_corners
    case 3: x = ow == 1 ? 0 : (xo + 0.5) / scale - 0.5; break;              // pytorch_half_pixel
    case 4:                                                                 // tf_crop_and_resize
        x = ow == 1 ? (roi_end - roi_start) * (double)(in - 1) / 2
                    : xo * (roi_end - roi_start) * (double)(in - 1) / (ow - 1);
        x += roi_start * (double)(in - 1);
        break;
    case 5: {                                                               // half_pixel_symmetric
        double adj = (double)out / ow, center = (double)in / 2;
        x = center * (1 - adj) + (xo + 0.5) / scale - 0.5;
        break;
    }
    case 6: x = (xo + 0.5) / scale; break;                                  // tf_half_pixel_for_nn
    default: x = (xo + 0.5) / scale - 0.5; break;                           // half_pixel
    }
    KTap t = {0, 0, 0, 0};
    if (coord_mode == 4 && (x < 0 || x > (double)(in - 1))) {
        t.outside = 1;
        return t;
    }
    double f = floor(x), r = x - f;
    int64_t i = (int64_t)f;
    if (mode == 0) { // nearest: an integral x is itself under every rounding
        if (r > 0) {
            int up = nearest_mode == 0 ? r > 0.5 : nearest_mode == 1 ? r >= 0.5 : nearest_mode == 3;
            i += up;
        }
        i = i < 0 ? 0 : i >= in ? in - 1 : i;
        t.i0 = t.i1 = i;
        return t;
    }
    // linear: neighbours clamped to the edge (the reference pads by edge values)
    t.i0 = i < 0 ? 0 : i >= in ? in - 1 : i;
    t.i1 = i + 1 < 0 ? 0 : i + 1 >= in ? in - 1 : i + 1;
    t.w1 = r;
    return t;
}

#endif
