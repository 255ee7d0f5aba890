/* Unit tests of the cpu pooling and resize kernels (kpool.c) against naive
 * references written here: MaxPool values and flat indices in both storage
 * orders, AveragePool with count_include_pad both ways, ceil-mode output sizes,
 * dilations, asymmetric pads, 1-D..3-D; global pooling; and Resize in every
 * mode, nearest rounding and coordinate transformation, against a transcription
 * of the ONNX reference's recursive 1-D interpolation (edge-padded neighbour
 * search) rather than a second copy of the kernel's method. Error measure:
 * |got - want| / (|want| + 1) < 1e-5. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "kernels.h"

#define KRAND_SEED 0x2545F4914F6CDD1Dull
#include "krand.h"
static double err1(double got, double want) { return fabs(got - want) / (fabs(want) + 1); }
static int64_t prod(const int64_t *v, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= v[i];
    return p;
}
static void unflat(int64_t f, const int64_t *d, int nd, int64_t *c)
{
    for (int i = nd - 1; i >= 0; i--) c[i] = f % d[i], f /= d[i];
}

/* ---- MaxPool / AveragePool ---- */

/* ONNX output size, with ceil mode's rule that the last window starts inside
 * the input or its start padding. */
static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, int ceil_mode)
{
    int64_t span = in + pb + pe - ((k - 1) * d + 1);
    if (span < 0) return 0;
    int64_t o = span / s + 1;
    if (ceil_mode && span % s) {
        o++;
        if ((o - 1) * s >= in + pb) o--;
    }
    return o;
}

/* Literal MaxPool and AveragePool over one (NC, spatial) tensor: idx in ONNX's
 * flat layout, row major ((h * W) + w) or column major (h + w * H). */
static void ref_pool(double *ymax, int64_t *idx, double *yavg, const float *x, const KPool *p)
{
    int nd = p->nd;
    int64_t pin = prod(p->in, nd), pout = prod(p->out, nd), kp = prod(p->k, nd);
    for (int64_t r = 0; r < p->NC; r++)
        for (int64_t o = 0; o < pout; o++) {
            int64_t oc[3], tc[3];
            unflat(o, p->out, nd, oc);
            double best = -INFINITY, sum = 0;
            int64_t at = -1, cnt = 0;
            for (int64_t t = 0; t < kp; t++) {
                unflat(t, p->k, nd, tc);
                int64_t pos[3], ok = 1;
                for (int i = 0; i < nd; i++) {
                    pos[i] = oc[i] * p->stride[i] + tc[i] * p->dilation[i] - p->pad[i];
                    ok &= pos[i] >= 0 && pos[i] < p->in[i];
                }
                if (!ok) continue;
                int64_t rm = 0, cm = 0, m = 1;
                for (int i = 0; i < nd; i++) rm = rm * p->in[i] + pos[i];
                for (int i = 0; i < nd; i++) cm += pos[i] * m, m *= p->in[i];
                double v = x[r * pin + rm];
                if (v > best) best = v, at = r * pin + (p->storage_order ? cm : rm);
                sum += v, cnt++;
            }
            ymax[r * pout + o] = best;
            idx[r * pout + o] = at;
            yavg[r * pout + o] = sum / (p->count_include_pad ? (double)kp : (double)cnt);
        }
}

static int pool_case(int nd, int64_t NC, const int64_t *in, const int64_t *k, const int64_t *s,
                     const int64_t *d, const int64_t *pb, const int64_t *pe, int ceil_mode)
{
    int ok = 1;
    for (int order = 0; order < 2; order++) {
        KPool p = {.nd = nd, .NC = NC, .storage_order = order, .count_include_pad = order};
        for (int i = 0; i < nd; i++) {
            p.in[i] = in[i], p.k[i] = k[i], p.stride[i] = s[i], p.dilation[i] = d[i];
            p.pad[i] = pb[i];
            p.out[i] = pool_out(in[i], k[i], s[i], d[i], pb[i], pe[i], ceil_mode);
            if (p.out[i] < 1) return 1;
        }
        int64_t xn = NC * prod(p.in, nd), yn = NC * prod(p.out, nd);
        float *x = rand_f(xn), *ym = rand_f(yn), *ya = rand_f(yn);
        int64_t *idx = malloc((size_t)yn * sizeof *idx), *ridx = malloc((size_t)yn * sizeof *ridx);
        double *rm = malloc((size_t)yn * sizeof *rm), *ra = malloc((size_t)yn * sizeof *ra);
        k_maxpool_f32(ym, idx, x, &p);
        k_avgpool_f32(ya, x, &p);
        ref_pool(rm, ridx, ra, x, &p);
        int bad = 0;
        for (int64_t i = 0; i < yn; i++)
            bad |= ym[i] != (float)rm[i] || idx[i] != ridx[i] || !(err1(ya[i], ra[i]) < 1e-5);
        k_maxpool_f32(ym, NULL, x, &p); // indices are optional
        for (int64_t i = 0; i < yn; i++) bad |= ym[i] != (float)rm[i];
        if (bad) {
            fprintf(stderr, "  pool nd%d NC%lld order/cip %d ceil %d:", nd, (long long)NC, order,
                    ceil_mode);
            for (int i = 0; i < nd; i++)
                fprintf(stderr, " [in%lld out%lld k%lld s%lld d%lld p%lld]", (long long)p.in[i],
                        (long long)p.out[i], (long long)p.k[i], (long long)p.stride[i],
                        (long long)p.dilation[i], (long long)p.pad[i]);
            fprintf(stderr, "\n");
        }
        ok &= !bad;
        free(x), free(ym), free(ya), free(idx), free(ridx), free(rm), free(ra);
    }
    return ok;
}

#define V3(a, b, c) ((const int64_t[3]){a, b, c})

static void test_pool_fixed(void)
{
    // 2-D 3x3 stride 2 on 7x7, pads 1 (a ResNet stem)
    CHECK(pool_case(2, 6, V3(7, 7, 0), V3(3, 3, 0), V3(2, 2, 0), V3(1, 1, 0), V3(1, 1, 0),
                    V3(1, 1, 0), 0));
    // ceil mode: the last window hangs past the input
    CHECK(pool_case(2, 2, V3(6, 5, 0), V3(3, 2, 0), V3(2, 2, 0), V3(1, 1, 0), V3(0, 0, 0),
                    V3(0, 0, 0), 1));
    // asymmetric pads, dilation 2, ceil
    CHECK(pool_case(2, 3, V3(9, 8, 0), V3(3, 2, 0), V3(2, 3, 0), V3(2, 2, 0), V3(2, 0, 0),
                    V3(0, 1, 0), 1));
    CHECK(pool_case(1, 4, V3(10, 0, 0), V3(4, 0, 0), V3(3, 0, 0), V3(1, 0, 0), V3(2, 0, 0),
                    V3(1, 0, 0), 1)); // 1-D
    CHECK(pool_case(3, 2, V3(5, 6, 4), V3(2, 3, 2), V3(2, 1, 2), V3(1, 2, 1), V3(1, 1, 0),
                    V3(0, 1, 1), 0)); // 3-D, unequal dims: column-major indices differ
    CHECK(pool_case(3, 1, V3(5, 6, 7), V3(3, 3, 3), V3(2, 2, 2), V3(1, 1, 1), V3(0, 0, 0),
                    V3(0, 0, 0), 1)); // 3-D ceil
    CHECK(pool_case(2, 1, V3(1, 1, 0), V3(1, 1, 0), V3(1, 1, 0), V3(1, 1, 0), V3(0, 0, 0),
                    V3(0, 0, 0), 0)); // all ones
    CHECK(pool_case(2, 2, V3(7, 9, 0), V3(2, 2, 0), V3(3, 4, 0), V3(1, 1, 0), V3(0, 0, 0),
                    V3(0, 0, 0), 0)); // strides larger than the kernel

    // The ONNX test data's averagepool_2d_ceil and maxpool_2d_ceil: 1..16 in a
    // 4x4 image, kernel 3, stride 2, ceil mode.
    float x[16], y[4];
    int64_t idx[4];
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    KPool p = {.nd = 2, .NC = 1, .in = {4, 4}, .out = {2, 2}, .k = {3, 3}, .stride = {2, 2},
               .dilation = {1, 1}};
    k_avgpool_f32(y, x, &p);
    CHECK(y[0] == 6.0f && y[1] == 7.5f && y[2] == 12.0f && y[3] == 13.5f);
    k_maxpool_f32(y, idx, x, &p);
    CHECK(y[0] == 11.0f && y[1] == 12.0f && y[2] == 15.0f && y[3] == 16.0f);
    CHECK(idx[0] == 10 && idx[1] == 11 && idx[2] == 14 && idx[3] == 15);
    p.storage_order = 1; // column major: h + w * 4
    k_maxpool_f32(y, idx, x, &p);
    CHECK(idx[0] == 2 + 2 * 4 && idx[1] == 2 + 3 * 4 && idx[2] == 3 + 2 * 4 && idx[3] == 15);
    // count_include_pad with ceil mode divides by the whole kernel (ONNX test
    // averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True)
    p.storage_order = 0, p.count_include_pad = 1;
    k_avgpool_f32(y, x, &p);
    CHECK(y[0] == 6.0f && y[1] == 5.0f); // (3+4+7+8+11+12) / 9, not / 6
}

static void test_pool_random(void)
{
    for (int t = 0; t < 80; t++) {
        int nd = (int)irand(1, 3);
        int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
        for (int i = 0; i < nd; i++) {
            in[i] = irand(1, nd == 3 ? 6 : 11), k[i] = irand(1, 3), s[i] = irand(1, 3);
            d[i] = irand(1, 2);
            // ONNX asks pads to be smaller than the kernel: no window of pure padding
            pb[i] = irand(0, k[i] - 1), pe[i] = irand(0, k[i] - 1);
        }
        CHECK(pool_case(nd, irand(1, 4), in, k, s, d, pb, pe, (int)irand(0, 1)));
    }
}

static void test_global_pool(void)
{
    int64_t NC = 7, S = 33;
    float *x = rand_f(NC * S), y[7], z[7];
    k_global_pool_f32(y, x, NC, S, 0);
    k_global_pool_f32(z, x, NC, S, 1);
    for (int64_t r = 0; r < NC; r++) {
        double s = 0, m = -INFINITY;
        for (int64_t i = 0; i < S; i++) s += x[r * S + i], m = x[r * S + i] > m ? x[r * S + i] : m;
        CHECK(err1(y[r], s / (double)S) < 1e-6);
        CHECK(z[r] == (float)m);
    }
    float one = 3.5f;
    k_global_pool_f32(y, &one, 1, 1, 0);
    k_global_pool_f32(z, &one, 1, 1, 1);
    CHECK(y[0] == 3.5f && z[0] == 3.5f);
    free(x);
}

/* ---- Resize: the ONNX reference, transcribed ---- */

typedef struct {
    int mode, coord, nearest;
    double extrap;
} RMode;

/* _interpolate_1d_with_x: value at output coordinate xo of the 1-D signal
 * data[0..n). */
static double ref_interp_1d(const double *data, int64_t n, double scale, int64_t out_int, int64_t xo,
                            double roi0, double roi1, const RMode *m)
{
    double ow = scale * (double)n, x = (double)xo, xr;
    switch (m->coord) {
    case 2: xr = ow == 1 ? 0 : x * (double)(n - 1) / (ow - 1); break;
    case 1: xr = x / scale; break;
    case 4:
        xr = ow == 1 ? (roi1 - roi0) * (double)(n - 1) / 2 : x * (roi1 - roi0) * (double)(n - 1) / (ow - 1);
        xr += roi0 * (double)(n - 1);
        if (xr < 0 || xr > (double)(n - 1)) return m->extrap;
        break;
    case 3: xr = ow == 1 ? -0.5 : (x + 0.5) / scale - 0.5; break;
    case 5: {
        double adj = (double)out_int / ow, center = (double)n / 2;
        xr = center * (1 - adj) + (x + 0.5) / scale - 0.5;
        break;
    }
    case 6: xr = (x + 0.5) / scale; break;
    default: xr = (x + 0.5) / scale - 0.5; break;
    }
    double fl = floor(xr), ratio = xr == fl ? 1 : xr - fl, c[2];
    if (m->mode == 1) {
        c[0] = 1 - ratio, c[1] = ratio;
    } else if (xr == fl) {
        c[0] = 0, c[1] = 1;
    } else {
        int up = m->nearest == 0 ? ratio > 0.5 : m->nearest == 1 ? ratio >= 0.5 : m->nearest == 3;
        c[0] = !up, c[1] = up;
    }
    // _get_neighbor: pad by one edge value each side, take the two indices
    // nearest to xr (ties to the smaller), in order. The reference searches
    // the padded array at xr + 1, where rounding can turn 1 + 2e-16 into a
    // tie; searching at xr over -1..n is the same rule without that artifact.
    int64_t best[2] = {-2, -2};
    for (int pick = 0; pick < 2; pick++)
        for (int64_t i = -1; i <= n; i++) {
            if (i == best[0]) continue;
            int64_t b = best[pick];
            if (b < -1 || fabs(xr - (double)i) < fabs(xr - (double)b)) best[pick] = i;
        }
    if (best[0] > best[1]) {
        int64_t t = best[0];
        best[0] = best[1], best[1] = t;
    }
    double v = 0;
    for (int i = 0; i < 2; i++) {
        int64_t j = best[i] < 0 ? 0 : best[i] >= n ? n - 1 : best[i];
        v += c[i] * data[j];
    }
    return v;
}

/* _interpolate_nd_with_x: interpolate every sub-tensor along the inner axes,
 * then the results along axis 0. */
static double ref_interp_nd(const double *data, const int64_t *in, const int64_t *out, int rank,
                            const double *scale, const int64_t *xo, const double *roi0,
                            const double *roi1, const RMode *m)
{
    if (rank == 1) return ref_interp_1d(data, in[0], scale[0], out[0], xo[0], roi0[0], roi1[0], m);
    int64_t inner = prod(in + 1, rank - 1);
    double *res = malloc((size_t)in[0] * sizeof *res);
    for (int64_t i = 0; i < in[0]; i++)
        res[i] = ref_interp_nd(data + i * inner, in + 1, out + 1, rank - 1, scale + 1, xo + 1,
                               roi0 + 1, roi1 + 1, m);
    double v = ref_interp_1d(res, in[0], scale[0], out[0], xo[0], roi0[0], roi1[0], m);
    free(res);
    return v;
}

static int resize_case(int rank, const int64_t *in, const int64_t *out, const float *scale,
                       const float *roi, const RMode *m)
{
    int64_t xn = prod(in, rank), yn = prod(out, rank);
    float *x = rand_f(xn), *y = rand_f(yn);
    double *xd = malloc((size_t)xn * sizeof *xd), sc[K_MAX_RANK], r0[K_MAX_RANK], r1[K_MAX_RANK];
    for (int64_t i = 0; i < xn; i++) xd[i] = x[i];
    for (int k = 0; k < rank; k++)
        sc[k] = scale[k], r0[k] = roi ? roi[k] : 0, r1[k] = roi ? roi[rank + k] : 1;
    k_resize_f32(y, x, in, out, rank, scale, roi, m->mode, m->coord, m->nearest, (float)m->extrap);
    double e = 0;
    for (int64_t o = 0; o < yn; o++) {
        int64_t oc[K_MAX_RANK];
        unflat(o, out, rank, oc);
        double w = ref_interp_nd(xd, in, out, rank, sc, oc, r0, r1, m);
        double d = err1(y[o], w);
        if (!(d <= e)) e = d;
    }
    int ok = e < 1e-5;
    if (!ok) {
        fprintf(stderr, "  resize mode %d coord %d nearest %d rank %d:", m->mode, m->coord,
                m->nearest, rank);
        for (int k = 0; k < rank; k++)
            fprintf(stderr, " %lld->%lld (%g)", (long long)in[k], (long long)out[k], (double)scale[k]);
        fprintf(stderr, " err %g\n", e);
    }
    free(x), free(y), free(xd);
    return ok;
}

static void test_resize_modes(void)
{
    // every (mode, nearest_mode, coord_mode) on an up- and a down-sampling
    for (int coord = 0; coord <= 6; coord++)
        for (int mn = 0; mn < 5; mn++) {
            RMode m = {.mode = mn == 4, .coord = coord, .nearest = mn < 4 ? mn : 0, .extrap = -7.5};
            int64_t in[4] = {1, 2, 3, 4}, up[4] = {1, 2, 7, 9}, dn[4] = {1, 2, 2, 3};
            float su[4] = {1, 1, 7.0f / 3, 9.0f / 4}, sd[4] = {1, 1, 2.0f / 3, 3.0f / 4};
            float roi[8] = {0, 0, 0.1f, -0.2f, 1, 1, 0.8f, 1.3f};
            CHECK(resize_case(4, in, up, su, coord == 4 ? roi : NULL, &m));
            CHECK(resize_case(4, in, dn, sd, coord == 4 ? roi : NULL, &m));
            // given scales that do not divide: out = floor(in * scale)
            int64_t in1[2] = {5, 4}, o1[2] = {2, 9};
            float s1[2] = {0.5f, 2.3f};
            CHECK(resize_case(2, in1, o1, s1, NULL, &m));
            // to and from length 1
            int64_t in2[2] = {1, 6}, o2[2] = {3, 1};
            float s2[2] = {3, 1.0f / 6};
            CHECK(resize_case(2, in2, o2, s2, NULL, &m));
        }
}

static void test_resize_random(void)
{
    for (int t = 0; t < 120; t++) {
        int rank = (int)irand(1, 4);
        int64_t in[4], out[4];
        float scale[4], roi[8];
        for (int k = 0; k < rank; k++) {
            in[k] = irand(1, 6);
            out[k] = irand(0, 2) ? irand(1, 9) : in[k];
            scale[k] = (float)out[k] / (float)in[k];
            roi[k] = (float)irand(-2, 5) / 10, roi[rank + k] = (float)irand(6, 12) / 10;
        }
        RMode m = {.mode = (int)irand(0, 1), .coord = (int)irand(0, 6), .nearest = (int)irand(0, 3),
                   .extrap = 0.25};
        CHECK(resize_case(rank, in, out, scale, m.coord == 4 ? roi : NULL, &m));
    }
    // a large resize crosses the OpenMP threshold
    int64_t in[2] = {2, 100}, out[2] = {3, 9000};
    float sc[2] = {1.5f, 90};
    RMode m = {.mode = 1, .coord = 0};
    CHECK(resize_case(2, in, out, sc, NULL, &m));
}

/* The same bits whatever the thread count. */
static void test_pool_threads_bitwise(void)
{
    KPool p = {.nd = 2, .NC = 16, .in = {40, 40}, .out = {20, 20}, .k = {3, 3}, .stride = {2, 2},
               .dilation = {1, 1}, .pad = {1, 1}};
    int64_t xn = 16 * 1600, yn = 16 * 400, in[2] = {16, 1600}, out[2] = {24, 2000};
    float *x = rand_f(xn), *y[2], *r[2], sc[2] = {1.5f, 1.25f};
    int64_t *ix[2];
    for (int t = 0; t < 2; t++) {
        k_set_threads(t ? 3 : 1);
        y[t] = malloc((size_t)yn * 2 * sizeof(float)), ix[t] = malloc((size_t)yn * sizeof(int64_t));
        r[t] = malloc((size_t)(24 * 2000) * sizeof(float));
        k_maxpool_f32(y[t], ix[t], x, &p);
        k_avgpool_f32(y[t] + yn, x, &p);
        k_resize_f32(r[t], x, in, out, 2, sc, NULL, 1, 0, 0, 0);
    }
    CHECK(memcmp(y[0], y[1], (size_t)yn * 2 * sizeof(float)) == 0);
    CHECK(memcmp(ix[0], ix[1], (size_t)yn * sizeof(int64_t)) == 0);
    CHECK(memcmp(r[0], r[1], (size_t)(24 * 2000) * sizeof(float)) == 0);
    for (int t = 0; t < 2; t++) free(y[t]), free(ix[t]), free(r[t]);
    free(x);
    k_set_threads(0);
}

/* uint8 and int8 MaxPool give the float32 MaxPool's values and indices on the
 * same numbers (every 8-bit value is exact in float32), padded or not. */
static void test_maxpool_int8(void)
{
    for (int t = 0; t < 20; t++) {
        KPool p = {.nd = 2, .NC = irand(1, 3)};
        int pad = (int)(t & 1);
        for (int i = 0; i < 2; i++) {
            p.in[i] = irand(3, 9), p.k[i] = irand(2, 3), p.stride[i] = irand(1, 2), p.dilation[i] = 1;
            p.pad[i] = pad; // under the kernel size, as ONNX requires: no all-padding window
            p.out[i] = (p.in[i] + 2 * pad - p.k[i]) / p.stride[i] + 1;
        }
        int64_t xn = p.NC * p.in[0] * p.in[1], yn = p.NC * p.out[0] * p.out[1];
        uint8_t *xu = malloc((size_t)xn), *yu = malloc((size_t)yn);
        int8_t *xs = malloc((size_t)xn), *ys = malloc((size_t)yn);
        float *xf = malloc((size_t)xn * sizeof *xf), *yf = malloc((size_t)yn * sizeof *yf);
        int64_t *iu = malloc((size_t)yn * sizeof *iu), *is = malloc((size_t)yn * sizeof *is),
                *iff = malloc((size_t)yn * sizeof *iff);
        for (int s = 0; s < 2; s++) { // unsigned, then signed
            for (int64_t i = 0; i < xn; i++) {
                int v = (int)irand(0, 255);
                xu[i] = (uint8_t)v, xs[i] = (int8_t)(v - 128);
                xf[i] = s ? (float)(v - 128) : (float)v;
            }
            k_maxpool_f32(yf, iff, xf, &p);
            if (s) k_maxpool_i8(ys, is, xs, &p);
            else k_maxpool_u8(yu, iu, xu, &p);
            int bad = 0;
            for (int64_t i = 0; i < yn; i++)
                bad |= (s ? (float)ys[i] : (float)yu[i]) != yf[i] || (s ? is[i] : iu[i]) != iff[i];
            k_maxpool_u8(yu, NULL, xu, &p); // without indices (the fast path when unpadded)
            for (int64_t i = 0; i < yn && !s; i++) bad |= (float)yu[i] != yf[i];
            CHECK(!bad);
        }
        free(xu), free(yu), free(xs), free(ys), free(xf), free(yf), free(iu), free(is), free(iff);
    }
}

int main(void)
{
    RUN(test_pool_fixed);
    RUN(test_pool_random);
    RUN(test_global_pool);
    RUN(test_resize_modes);
    RUN(test_resize_random);
    RUN(test_pool_threads_bitwise);
    RUN(test_maxpool_int8);
    return CHECK_DONE();
}
