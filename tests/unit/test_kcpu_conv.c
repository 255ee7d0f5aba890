/* Unit tests of the cpu convolution kernels (kconv.c) against naive
 * references written here as direct loops in double over the ONNX formulas:
 * Conv and ConvTranspose in 1, 2 and 3 spatial dims with groups (depthwise
 * included), dilations, strides larger than the kernel, asymmetric pads,
 * size-1 dims, pointwise forms and ConvTranspose output_padding; fixed edge
 * cases and random ones; the weight gradient (kgrad_nn.c) where its columns
 * take several blocks (its error against its largest value). Elsewhere the
 * error measure is |got - want| / (|want| + 1) < 1e-5.
 * Workspaces hold column blocks and padded copies, not a whole image's
 * columns (checked on large images).
 * The fused epilogue (k_conv_post_f32) must equal the unfused kernels bit
 * for bit. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "kernels.h"
#include "kwindow.h"
#include "kwino.h"

#define KRAND_SEED 0x9E3779B97F4A7C15ull
#include "krand.h"
static int64_t prod(const int64_t *v, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= v[i];
    return p;
}
/* Split a flat spatial index into nd coordinates of dims `d`. */
static void unflat(int64_t f, const int64_t *d, int nd, int64_t *c)
{
    for (int i = nd - 1; i >= 0; i--) c[i] = f % d[i], f /= d[i];
}

/* The flat input position that output coordinates oc read through tap tc
 * (o*s + t*d - p per dim), or -1 in the padding. */
static int64_t conv_input(const KConv *p, const int64_t *oc, const int64_t *tc)
{
    int64_t xi = 0;
    for (int i = 0; i < p->nd; i++) {
        int64_t v = oc[i] * p->stride[i] + tc[i] * p->dilation[i] - p->pad[i];
        if (v < 0 || v >= p->in[i]) return -1;
        xi = xi * p->in[i] + v;
    }
    return xi;
}

/* ONNX Conv, literally: y[n,m,o] = b[m] + sum_{c,t} w[m,c,t] x[n, g*Cg + c, o*s + t*d - p]. */
static void ref_conv(double *y, const float *x, const float *w, const float *b, const KConv *p)
{
    int nd = p->nd;
    int64_t Cg = p->C / p->group, Mg = p->M / p->group;
    int64_t pin = prod(p->in, nd), pout = prod(p->out, nd), kp = prod(p->k, nd);
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t m = 0; m < p->M; m++)
            for (int64_t o = 0; o < pout; o++) {
                int64_t oc[3], tc[3];
                unflat(o, p->out, nd, oc);
                double s = b ? b[m] : 0;
                int64_t gi = m / Mg;
                for (int64_t c = 0; c < Cg; c++)
                    for (int64_t t = 0; t < kp; t++) {
                        unflat(t, p->k, nd, tc);
                        int64_t xi = conv_input(p, oc, tc);
                        if (xi >= 0)
                            s += (double)w[(m * Cg + c) * kp + t] *
                                 x[(n * p->C + gi * Cg + c) * pin + xi];
                    }
                y[(n * p->M + m) * pout + o] = s;
            }
}

/* ONNX ConvTranspose, literally: every x[n,c,i] times w[c,mm,t] adds to
 * y[n, g*Mg + mm, i*s + t*d - p] when that lands inside y. */
static void ref_convt(double *y, const float *x, const float *w, const float *b, const KConv *p)
{
    int nd = p->nd;
    int64_t Cg = p->C / p->group, Mg = p->M / p->group;
    int64_t pin = prod(p->in, nd), pout = prod(p->out, nd), kp = prod(p->k, nd);
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t m = 0; m < p->M; m++)
            for (int64_t o = 0; o < pout; o++) y[(n * p->M + m) * pout + o] = b ? b[m] : 0;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t c = 0; c < p->C; c++)
            for (int64_t i = 0; i < pin; i++)
                for (int64_t mm = 0; mm < Mg; mm++)
                    for (int64_t t = 0; t < kp; t++) {
                        int64_t ic[3], tc[3], yi = 0, ok = 1;
                        unflat(i, p->in, nd, ic);
                        unflat(t, p->k, nd, tc);
                        for (int d = 0; d < nd; d++) {
                            int64_t v = ic[d] * p->stride[d] + tc[d] * p->dilation[d] - p->pad[d];
                            ok &= v >= 0 && v < p->out[d];
                            yi = yi * p->out[d] + v;
                        }
                        int64_t m = c / Cg * Mg + mm;
                        if (ok)
                            y[(n * p->M + m) * pout + yi] +=
                                (double)x[(n * p->C + c) * pin + i] * w[(c * Mg + mm) * kp + t];
                    }
}

/* One case: sizes per dim given as k, s, d, pad begin, pad end (conv) or
 * output_padding (transpose); the output size follows from ONNX's formulas. */
typedef struct {
    int nd;
    int64_t N, C, M, group, in[3], k[3], s[3], d[3], pb[3], pe[3];
    int bias;
} Case;

static int run_case(const Case *cs, int transpose)
{
    KConv p = {.nd = cs->nd, .N = cs->N, .C = cs->C, .M = cs->M, .group = cs->group};
    for (int i = 0; i < cs->nd; i++) {
        p.in[i] = cs->in[i], p.k[i] = cs->k[i], p.stride[i] = cs->s[i];
        p.dilation[i] = cs->d[i], p.pad[i] = cs->pb[i];
        int64_t ek = (cs->k[i] - 1) * cs->d[i] + 1;
        if (transpose) // pe is output_padding here, the end pad equals the start pad
            p.out[i] = cs->s[i] * (cs->in[i] - 1) + cs->pe[i] + ek - 2 * cs->pb[i];
        else
            p.out[i] = (cs->in[i] + cs->pb[i] + cs->pe[i] - ek) / cs->s[i] + 1;
        if (p.out[i] < 1) return 1; // an impossible shape: nothing to test
    }
    int nd = cs->nd;
    int64_t kp = prod(p.k, nd), xn = p.N * p.C * prod(p.in, nd), yn = p.N * p.M * prod(p.out, nd);
    int64_t wn = transpose ? p.C * (p.M / p.group) * kp : p.M * (p.C / p.group) * kp;
    float *x = rand_f(xn), *w = rand_f(wn), *b = cs->bias ? rand_f(p.M) : NULL, *y = rand_f(yn);
    double *want = malloc((size_t)yn * sizeof *want);
    size_t wsz = transpose ? k_conv_transpose_f32_ws(&p) : k_conv_f32_ws(&p);
    void *ws = wsz ? malloc(wsz) : NULL;
    if (transpose) {
        k_conv_transpose_f32(y, x, w, b, &p, ws);
        ref_convt(want, x, w, b, &p);
    } else {
        k_conv_f32(y, x, w, b, &p, ws);
        ref_conv(want, x, w, b, &p);
    }
    double e = max_err_f(y, want, yn);
    int ok = e < 1e-5;
    if (!ok) {
        fprintf(stderr, "  %s nd%d N%lld C%lld M%lld g%lld:", transpose ? "convT" : "conv", nd,
                (long long)p.N, (long long)p.C, (long long)p.M, (long long)p.group);
        for (int i = 0; i < nd; i++)
            fprintf(stderr, " [in%lld out%lld k%lld s%lld d%lld p%lld]", (long long)p.in[i],
                    (long long)p.out[i], (long long)p.k[i], (long long)p.stride[i],
                    (long long)p.dilation[i], (long long)p.pad[i]);
        fprintf(stderr, " err %g\n", e);
    }
    free(x), free(w), free(b), free(y), free(want), free(ws);
    return ok;
}

/* The Conv of a case (its output size from ONNX's formula). */
static KConv conv_of(const Case *cc)
{
    KConv p = {.nd = cc->nd, .N = cc->N, .C = cc->C, .M = cc->M, .group = cc->group};
    for (int i = 0; i < cc->nd; i++) {
        p.in[i] = cc->in[i], p.k[i] = cc->k[i], p.stride[i] = cc->s[i];
        p.dilation[i] = cc->d[i], p.pad[i] = cc->pb[i];
        p.out[i] = (cc->in[i] + cc->pb[i] + cc->pe[i] - (cc->k[i] - 1) * cc->d[i] - 1) / cc->s[i] + 1;
    }
    return p;
}

/* A case with the same k, s, d, pads on every dim. */
static Case mk(int nd, int64_t N, int64_t C, int64_t M, int64_t G, int64_t in, int64_t k,
               int64_t s, int64_t d, int64_t pb, int64_t pe, int bias)
{
    Case c = {.nd = nd, .N = N, .C = C, .M = M, .group = G, .bias = bias};
    for (int i = 0; i < nd; i++)
        c.in[i] = in, c.k[i] = k, c.s[i] = s, c.d[i] = d, c.pb[i] = pb, c.pe[i] = pe;
    return c;
}

/* c with a 2-D input of in0 x in1. */
static Case in2(Case c, int64_t in0, int64_t in1)
{
    c.in[0] = in0, c.in[1] = in1;
    return c;
}

static Case random_case(int transpose)
{
    Case c = {.nd = (int)irand(1, 3), .N = irand(1, 2), .bias = (int)irand(0, 1)};
    c.group = irand(1, 3);
    c.C = c.group * irand(1, 3);
    c.M = c.group * irand(1, 3);
    for (int i = 0; i < c.nd; i++) {
        c.in[i] = irand(1, c.nd == 3 ? 5 : 9);
        c.k[i] = irand(1, 3), c.s[i] = irand(1, 3), c.d[i] = irand(1, 2);
        c.pb[i] = irand(0, 2);
        c.pe[i] = transpose ? irand(0, c.s[i] > c.d[i] ? c.s[i] - 1 : c.d[i] - 1) : irand(0, 2);
    }
    return c;
}

static void test_conv_fixed(void)
{
    Case cs[] = {
        mk(2, 2, 3, 4, 1, 7, 3, 1, 1, 1, 1, 1),   // plain 3x3 same
        mk(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0),   // all sizes 1
        mk(2, 1, 4, 6, 1, 5, 1, 1, 1, 0, 0, 1),   // pointwise: sgemm on x directly
        mk(2, 1, 4, 6, 2, 5, 1, 1, 1, 0, 0, 1),   // grouped pointwise
        mk(2, 1, 4, 6, 1, 5, 1, 2, 1, 0, 0, 1),   // 1x1 stride 2: not pointwise
        mk(2, 1, 4, 6, 1, 5, 1, 1, 1, 0, 2, 0),   // 1x1 with end pad: zero border
        mk(2, 2, 8, 8, 8, 6, 3, 1, 1, 1, 1, 1),   // depthwise
        mk(2, 1, 6, 12, 6, 6, 3, 2, 1, 1, 0, 1),  // depthwise multiplier 2, asymmetric pad
        mk(2, 1, 4, 6, 2, 8, 3, 1, 2, 2, 2, 0),   // groups 2, dilation 2
        mk(2, 1, 3, 2, 1, 9, 2, 3, 1, 0, 0, 1),   // stride > kernel: skipped inputs
        mk(1, 3, 5, 7, 1, 16, 5, 2, 3, 4, 1, 1),  // 1-D
        mk(3, 2, 2, 3, 1, 5, 3, 2, 1, 1, 2, 1),   // 3-D
        mk(3, 1, 4, 4, 4, 4, 2, 1, 2, 1, 0, 0),   // 3-D depthwise dilated
        mk(2, 1, 2, 2, 1, 3, 3, 1, 1, 3, 3, 0),   // pads larger than the input
        // stride 1 and rows of 8 or more: read in place from a padded copy (kconv.c)
        mk(2, 2, 3, 4, 1, 12, 3, 1, 1, 1, 1, 1),  // rows of 12: one masked vector
        mk(2, 1, 5, 7, 1, 20, 3, 1, 2, 2, 2, 1),  // dilation 2
        mk(1, 2, 3, 5, 1, 40, 5, 1, 1, 2, 0, 1),  // 1-D, asymmetric pads
        mk(3, 1, 2, 3, 1, 9, 3, 1, 1, 1, 1, 1),   // 3-D
        mk(2, 2, 8, 8, 4, 16, 3, 1, 1, 1, 1, 1),  // groups, whole 16-wide strips
        mk(2, 1, 6, 6, 6, 10, 3, 1, 1, 1, 1, 0),  // depthwise
        mk(2, 1, 2, 2, 1, 8, 3, 1, 1, 3, 3, 0),   // pads wider than the kernel reaches
        mk(2, 1, 3, 13, 1, 17, 3, 1, 1, 1, 1, 1), // 13 output channels: tiles of 6, 6, 1
        mk(2, 2, 3, 4, 1, 20, 3, 2, 1, 1, 1, 1),  // stride 2: rows stored by phase
        mk(1, 1, 3, 5, 1, 50, 4, 3, 1, 2, 1, 1),  // 1-D stride 3
        mk(2, 1, 3, 8, 1, 64, 8, 8, 1, 0, 0, 1),  // patches (stride = kernel)
        mk(2, 1, 2, 3, 1, 24, 3, 2, 2, 2, 1, 0),  // stride 2 and dilation 2
        // strided: the padded copy split by phase (kconv.c)
        mk(2, 2, 5, 7, 1, 33, 3, 2, 1, 1, 1, 1),  // stride 2, odd input: rows of 17
        mk(2, 1, 4, 13, 1, 16, 3, 2, 1, 1, 1, 1), // stride 2, rows 8 wide: pairs
        mk(2, 1, 3, 5, 1, 34, 1, 2, 1, 0, 0, 1),  // 1x1 stride 2: one phase of four
        mk(2, 1, 3, 5, 1, 31, 1, 2, 1, 1, 0, 0),  // 1x1 stride 2 from a pad: the odd phase
        mk(2, 1, 4, 4, 2, 40, 4, 2, 1, 2, 1, 1),  // stride 2, groups, even kernel
        mk(2, 1, 2, 3, 1, 50, 5, 3, 1, 2, 2, 1),  // stride 3: phases copied one by one
        mk(3, 1, 2, 3, 1, 19, 3, 2, 1, 1, 1, 1),  // 3-D stride 2
        mk(1, 2, 3, 4, 1, 90, 9, 4, 2, 3, 4, 1),  // 1-D stride 4 dilation 2: two phases
        mk(2, 1, 2, 3, 1, 40, 3, 2, 1, 5, 5, 0),  // pads wider than the kernel reaches
        mk(1, 1, 2, 3, 1, 2100, 3, 2, 1, 1, 1, 1), // rows of over 1024 floats: padded 8 lanes at a time
    };
    Case odd = mk(2, 1, 3, 5, 1, 0, 0, 0, 0, 0, 0, 1); // unequal dims
    odd.in[0] = 1, odd.in[1] = 11, odd.k[0] = 1, odd.k[1] = 4, odd.s[0] = 1, odd.s[1] = 2;
    odd.d[0] = 1, odd.d[1] = 2, odd.pb[0] = 0, odd.pb[1] = 3, odd.pe[0] = 0, odd.pe[1] = 1;
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) CHECK(run_case(&cs[i], 0));
    CHECK(run_case(&odd, 0));
}

static void test_conv_random(void)
{
    for (int t = 0; t < 60; t++) {
        Case c = random_case(0);
        CHECK(run_case(&c, 0));
    }
}

/* Random convs whose last dim is wide enough for the in-place path (output
 * rows of 8 or more), strided ones included. */
static void test_conv_random_wide(void)
{
    for (int t = 0; t < 40; t++) {
        Case c = random_case(0);
        c.k[c.nd - 1] = irand(1, 5), c.s[c.nd - 1] = irand(1, 3);
        c.in[c.nd - 1] = c.s[c.nd - 1] * irand(8, 20) + irand(0, 4);
        CHECK(run_case(&c, 0));
    }
}

static void test_conv_transpose_fixed(void)
{
    // pe is output_padding here
    Case cs[] = {
        mk(2, 2, 3, 4, 1, 5, 3, 2, 1, 1, 1, 1),   // the usual upsampling, output_padding 1
        mk(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0),   // all sizes 1
        mk(2, 1, 4, 6, 1, 5, 1, 1, 1, 0, 0, 1),   // pointwise: sgemm straight into y
        mk(2, 1, 4, 6, 2, 5, 1, 1, 1, 0, 0, 1),   // grouped pointwise
        mk(2, 1, 4, 6, 1, 5, 1, 1, 1, 0, 0, 0),
        mk(2, 1, 6, 6, 6, 4, 3, 2, 1, 1, 1, 1),   // depthwise
        mk(2, 2, 4, 6, 2, 5, 3, 2, 2, 2, 1, 1),   // groups and dilation
        mk(2, 1, 2, 3, 1, 4, 2, 3, 1, 0, 2, 1),   // stride > kernel: gaps, output_padding 2
        mk(1, 2, 3, 2, 1, 7, 4, 2, 1, 1, 0, 1),   // 1-D
        mk(3, 1, 2, 4, 2, 3, 3, 2, 1, 1, 1, 1),   // 3-D
        mk(2, 1, 2, 2, 1, 3, 1, 3, 1, 0, 2, 0),   // 1x1 stride 3: rows of zeros
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) CHECK(run_case(&cs[i], 1));
}

static void test_conv_transpose_random(void)
{
    for (int t = 0; t < 60; t++) {
        Case c = random_case(1);
        CHECK(run_case(&c, 1));
    }
}

/* ConvTranspose over larger images: its columns in several blocks of
 * input rows (stride 1 and 2, groups, dilation, 1-D to 3-D). */
static void test_conv_transpose_wide(void)
{
    Case cs[] = {
        mk(2, 2, 16, 16, 1, 32, 3, 1, 1, 1, 1, 1), // resnet_small's 3x3 gradient
        mk(2, 1, 5, 7, 1, 20, 3, 1, 2, 2, 0, 1),   // dilation 2
        mk(2, 2, 8, 12, 4, 14, 3, 1, 1, 1, 0, 0),  // groups
        mk(2, 1, 6, 6, 6, 12, 3, 1, 1, 0, 0, 1),   // depthwise, no pad: the output grows
        mk(1, 2, 3, 5, 1, 40, 5, 1, 1, 2, 0, 1),   // 1-D
        mk(3, 1, 2, 3, 1, 9, 3, 1, 1, 1, 0, 1),    // 3-D
        mk(2, 1, 3, 4, 1, 16, 2, 1, 1, 1, 0, 0),   // even kernel
        mk(2, 1, 3, 4, 1, 16, 3, 1, 1, 3, 0, 1),   // pad 3 > k - 1
        mk(2, 2, 16, 16, 1, 30, 3, 2, 1, 1, 1, 1), // stride 2
        mk(2, 1, 8, 24, 2, 40, 3, 1, 1, 4, 0, 0),  // pad 4, groups
        mk(2, 1, 16, 64, 1, 40, 3, 1, 1, 1, 1, 1), // 64 * 9 * 40 floats a row: blocks of 2 rows
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) CHECK(run_case(&cs[i], 1));
    for (int t = 0; t < 30; t++) {
        Case c = random_case(1);
        c.s[c.nd - 1] = 1, c.pe[c.nd - 1] = 0;
        c.in[c.nd - 1] = irand(8, 24);
        CHECK(run_case(&c, 1));
    }
}

/* The im2col path (rows under 8 wide) over a tall image: several blocks of
 * output rows, each its own product. */
static void test_conv_col_blocks(void)
{
    Case c = mk(2, 2, 16, 12, 1, 0, 3, 1, 1, 1, 1, 1);
    c.in[0] = 70, c.in[1] = 6;
    CHECK(run_case(&c, 0));
    c.group = 4, c.s[0] = 2, c.d[1] = 2, c.pb[1] = c.pe[1] = 2;
    CHECK(run_case(&c, 0));
}

/* dw[m,c,t] = sum over n and o of dy[n,m,o] x[n, g*Cg + c, o*s + t*d - p]. */
static void ref_grad_weight(double *dw, const float *dy, const float *x, const KConv *p)
{
    int nd = p->nd;
    int64_t Cg = p->C / p->group, Mg = p->M / p->group;
    int64_t pin = prod(p->in, nd), pout = prod(p->out, nd), kp = prod(p->k, nd);
    for (int64_t m = 0; m < p->M; m++)
        for (int64_t c = 0; c < Cg; c++)
            for (int64_t t = 0; t < kp; t++) {
                double s = 0;
                int64_t tc[3], oc[3];
                unflat(t, p->k, nd, tc);
                for (int64_t n = 0; n < p->N; n++)
                    for (int64_t o = 0; o < pout; o++) {
                        unflat(o, p->out, nd, oc);
                        int64_t xi = conv_input(p, oc, tc);
                        if (xi >= 0)
                            s += (double)dy[(n * p->M + m) * pout + o] *
                                 x[(n * p->C + m / Mg * Cg + c) * pin + xi];
                    }
                dw[(m * Cg + c) * kp + t] = s;
            }
}

/* The weight gradient over images whose columns take several blocks. */
static void test_conv_grad_weight_blocks(void)
{
    Case cs[] = {mk(2, 1, 16, 8, 1, 64, 3, 1, 1, 1, 1, 0), mk(2, 2, 32, 8, 2, 80, 3, 2, 1, 1, 1, 0),
                 mk(2, 1, 6, 4, 1, 0, 5, 1, 2, 4, 4, 0)};
    cs[2].in[0] = 1200, cs[2].in[1] = 9; // tall and narrow: several blocks
    for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++) {
        KConv p = conv_of(&cs[ci]);
        int64_t kp = prod(p.k, p.nd), wn = p.M * (p.C / p.group) * kp;
        KGeo g;
        k_geo_set(&g, p.nd, p.in, p.out, p.k, p.stride, p.dilation, p.pad);
        CHECK(g.out[0] * g.out[1] > k_col_block(p.C * kp, g.out[2], g.out[0] * g.out[1], K_COL_GRAD_FLOATS)); // blocks
        float *x = rand_f(p.N * p.C * g.pin), *dy = rand_f(p.N * p.M * g.pout), *dw = rand_f(wn);
        double *want = malloc((size_t)wn * sizeof *want);
        void *ws = malloc(k_conv_grad_weight_f32_ws(&p));
        k_conv_grad_weight_f32(dw, dy, x, &p, ws);
        ref_grad_weight(want, dy, x, &p);
        double e = 0, top = 0; // the largest error against the largest gradient (long sums)
        for (int64_t i = 0; i < wn; i++) {
            double d = fabs(dw[i] - want[i]);
            e = d > e ? d : e, top = fabs(want[i]) > top ? fabs(want[i]) : top;
        }
        e /= top;
        if (e >= 1e-5) fprintf(stderr, "  grad weight case %zu err %g\n", ci, e);
        CHECK(e < 1e-5);
        free(x), free(dy), free(dw), free(want), free(ws);
    }
}

/* A 2-D 3x3 stride-1 case of h x w with pads (top, left) and (bottom, right). */
static Case wino_case(int64_t N, int64_t C, int64_t M, int64_t h, int64_t w, int64_t pt, int64_t pl,
                      int64_t pb, int64_t pr)
{
    Case c = mk(2, N, C, M, 1, 0, 3, 1, 1, 0, 0, 1);
    c.in[0] = h, c.in[1] = w, c.pb[0] = pt, c.pb[1] = pl, c.pe[0] = pb, c.pe[1] = pr;
    return c;
}

/* The Winograd product (kwino.c) against the double reference, on the shapes
 * its lanes treat differently: rows of 16 tiles (one vector a row), of 5 to
 * 8 (two rows a vector) and of 4 (four), of 20 (two vectors, the second
 * partly empty); odd output sizes (a last tile half outside); asymmetric
 * and wide pads; a last block of fewer rows; output channels not a multiple
 * of a register tile's 8; few tiles; and the same bits at 1 and 3 threads.
 * A conv takes it with its weights prepared (p.packed, KConvPost.wpack);
 * without them, the direct path. Where the processor has no AVX-512 the
 * direct path runs these too, and the test says so. */
static void test_conv_winograd(void)
{
    Case cs[] = {
        wino_case(4, 16, 16, 32, 32, 1, 1, 1, 1), // resnet_small's first stage: rows of 16 tiles
        wino_case(3, 9, 13, 16, 16, 1, 1, 1, 1),  // rows of 8 tiles: two a vector; 13 channels
        wino_case(5, 8, 8, 8, 8, 1, 1, 1, 1),     // rows of 4: four a vector; a short last block
        wino_case(1, 8, 9, 13, 40, 0, 2, 1, 0),   // rows of 20 tiles; asymmetric pads
        wino_case(2, 10, 8, 15, 9, 1, 1, 1, 1),   // odd output: 15 x 9
        wino_case(2, 8, 8, 10, 10, 2, 2, 2, 2),   // pads of 2: rows of zeros in the patches
        wino_case(1, 8, 8, 9, 9, 0, 0, 0, 0),     // no pads, 7 x 7: 16 tiles
        wino_case(1, 64, 24, 8, 12, 1, 1, 1, 1),  // many channels, one image
    };
    int wide = k_tiles_avx512();
    if (!wide) fprintf(stderr, "  no AVX-512 here: the direct path runs these cases\n");
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        KConv p = conv_of(&cs[i]);
        p.packed = 1;
        KGeo g;
        k_geo_set(&g, p.nd, p.in, p.out, p.k, p.stride, p.dilation, p.pad);
        CHECK(!wide || k_wino_ok(&p, &g));
        int64_t xn = p.N * p.C * p.in[0] * p.in[1], yn = p.N * p.M * p.out[0] * p.out[1];
        float *x = rand_f(xn), *w = rand_f(p.M * p.C * 9), *b = rand_f(p.M), *y1 = rand_f(yn), *y3 = rand_f(yn);
        double *want = malloc((size_t)yn * sizeof *want);
        void *ws = malloc(k_conv_f32_ws(&p)), *pack = malloc(k_conv_pack_f32_bytes(&p));
        CHECK(k_conv_pack_f32_bytes(&p) > 0);
        k_conv_pack_f32(pack, w, &p);
        KConvPost post = {.wpack = pack};
        ref_conv(want, x, w, b, &p);
        k_set_threads(1);
        k_conv_post_f32(y1, x, w, b, &post, &p, ws);
        double e = max_err_f(y1, want, yn);
        if (e >= 1e-5) fprintf(stderr, "  case %zu: error %g\n", i, e);
        CHECK(e < 1e-5);
        k_set_threads(3);
        k_conv_post_f32(y3, x, w, b, &post, &p, ws);
        CHECK(memcmp(y1, y3, (size_t)yn * sizeof *y1) == 0);
        free(x), free(w), free(b), free(y1), free(y3), free(want), free(ws), free(pack);
    }
    k_set_threads(0);
}

/* On a large image (64 channels, 56x56, batch 8) the workspaces of Conv,
 * ConvTranspose and the weight gradient are well below one image's columns
 * (64 * 9 * 56 * 56 floats, 7.2 MB), whichever path the processor takes:
 * what is left is the in-place path's padded copy per thread slot (about an
 * input image each) and column blocks. */
static void test_conv_workspace_bounded(void)
{
    for (int s = 1; s <= 2; s++) {
        KConv p = {.nd = 2, .N = 8, .C = 64, .M = 64, .group = 1};
        for (int i = 0; i < 2; i++) {
            p.in[i] = 56, p.k[i] = 3, p.stride[i] = s, p.dilation[i] = 1, p.pad[i] = 1;
            p.out[i] = (56 + 2 - 3) / s + 1;
        }
        size_t cols = (size_t)64 * 9 * 56 * 56 * sizeof(float);
        size_t f = k_conv_f32_ws(&p), gw = k_conv_grad_weight_f32_ws(&p);
        KConv t = p; // its transpose, back to 56x56
        for (int i = 0; i < 2; i++) t.in[i] = p.out[i], t.out[i] = 56;
        size_t tr = k_conv_transpose_f32_ws(&t);
        if (f > cols / 2 || gw > cols / 4 || tr > cols / 2)
            fprintf(stderr, "  stride %d: conv %zu, grad weight %zu, transpose %zu bytes\n", s, f, gw, tr);
        CHECK(f <= cols / 2 && gw <= cols / 4 && tr <= cols / 2);
    }
}

/* The same bits whatever the thread count: a grouped conv small enough for
 * the per-group threads and a large one, both directions. */
static void test_conv_threads_bitwise(void)
{
    // the last two: stride 1, over K_PAR_MACS, images side by side and one image's rows
    Case cs[] = {mk(2, 2, 16, 16, 4, 12, 3, 1, 1, 1, 1, 1), mk(2, 1, 32, 64, 1, 24, 3, 2, 1, 1, 1, 1),
                 mk(2, 2, 16, 32, 1, 32, 3, 1, 1, 1, 1, 1), mk(2, 1, 32, 32, 1, 32, 3, 1, 1, 1, 1, 1)};
    for (int c = 0; c < 4; c++)
        for (int tr = 0; tr < 2; tr++) {
            KConv p = {.nd = 2, .N = cs[c].N, .C = cs[c].C, .M = cs[c].M, .group = cs[c].group};
            for (int i = 0; i < 2; i++) {
                p.in[i] = cs[c].in[i], p.k[i] = cs[c].k[i], p.stride[i] = cs[c].s[i];
                p.dilation[i] = 1, p.pad[i] = cs[c].pb[i];
                p.out[i] = tr ? cs[c].s[i] * (p.in[i] - 1) + p.k[i] - 2 * p.pad[i]
                              : (p.in[i] + 2 * p.pad[i] - p.k[i]) / p.stride[i] + 1;
            }
            int64_t xn = p.N * p.C * p.in[0] * p.in[1], yn = p.N * p.M * p.out[0] * p.out[1];
            float *x = rand_f(xn), *w = rand_f(p.C * p.M * 9), *b = rand_f(p.M);
            float *y1 = rand_f(yn), *y2 = rand_f(yn);
            size_t wsz = tr ? k_conv_transpose_f32_ws(&p) : k_conv_f32_ws(&p);
            void *ws = malloc(wsz ? wsz : 1);
            for (int t = 0; t < 2; t++) {
                k_set_threads(t ? 3 : 1);
                if (tr) k_conv_transpose_f32(t ? y2 : y1, x, w, b, &p, ws);
                else k_conv_f32(t ? y2 : y1, x, w, b, &p, ws);
            }
            CHECK(memcmp(y1, y2, (size_t)yn * sizeof *y1) == 0);
            free(x), free(w), free(b), free(y1), free(y2), free(ws);
        }
    k_set_threads(0);
}

/* k_conv_post_f32 against Conv, k_batchnorm_f32, an Add and Relu run one
 * after another: the same bits, on every path (in place, strided, im2col
 * rows under 8 wide, pointwise, groups), with BatchNormalization alone, Relu
 * alone, both, BatchNormalization without scale and bias, all with the
 * residual Add, and the Add alone; at 1 thread with the register tiles in
 * AVX-512 (where the processor has it) and at 3 in AVX2 (ktile.h); and for
 * the 3x3 stride-1 cases with their weights prepared, the Winograd path
 * (kwino.c) at 1 and 3 threads. */
static void test_conv_post(void)
{
    Case cs[] = {
        mk(2, 4, 16, 16, 1, 32, 3, 1, 1, 1, 1, 0),  // resnet_small's stride-1 3x3
        mk(2, 4, 16, 32, 1, 32, 3, 2, 1, 1, 1, 0),  // its stride-2 3x3
        mk(2, 4, 16, 32, 1, 32, 1, 2, 1, 0, 0, 1),  // its 1x1 stride-2 shortcut, with a bias
        mk(2, 2, 32, 64, 1, 16, 3, 2, 1, 1, 1, 1),  // 8 wide: pairs
        mk(2, 1, 6, 13, 1, 12, 3, 1, 1, 1, 1, 1),   // 13 channels: a tile of one row
        mk(2, 2, 8, 12, 4, 10, 3, 1, 1, 1, 1, 1),   // groups
        mk(2, 2, 3, 5, 1, 6, 3, 1, 1, 1, 1, 1),     // rows under 8 wide: im2col
        in2(mk(2, 1, 4, 9, 1, 0, 3, 1, 1, 1, 1, 0), 6, 8), // 6 rows 8 wide: pairs in AVX2, rows in AVX-512
        mk(2, 2, 6, 7, 1, 9, 1, 1, 1, 0, 0, 1),     // pointwise: sgemm on x
        mk(1, 3, 4, 6, 2, 30, 3, 1, 2, 2, 2, 0),    // 1-D, groups, dilation
        mk(2, 5, 9, 13, 1, 8, 3, 1, 1, 1, 1, 1),    // Winograd: four rows of tiles a vector, 13 channels
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++)
        for (int mode = 0; mode < 6; mode++) { // BN + Relu, BN, Relu, bare BN + Relu, BN + Add + Relu, Add
            const Case *cc = &cs[ci];
            KConv p = conv_of(cc);
            int64_t sp = 1, kp = 1;
            for (int i = 0; i < cc->nd; i++) sp *= p.out[i], kp *= p.k[i];
            int64_t xn = p.N * p.C, yn = p.N * p.M * sp;
            for (int i = 0; i < cc->nd; i++) xn *= p.in[i];
            float *x = rand_f(xn), *w = rand_f(p.M * (p.C / p.group) * kp), *b = cc->bias ? rand_f(p.M) : NULL;
            float *sc = rand_f(p.M), *bi = rand_f(p.M), *mu = rand_f(p.M), *var = rand_f(p.M);
            for (int64_t m = 0; m < p.M; m++) var[m] = var[m] * var[m] + 0.1f;
            float *want = rand_f(yn), *tmp = rand_f(yn), *got = rand_f(yn), *got3 = rand_f(yn);
            int bn = mode != 2 && mode != 5, relu = mode != 1 && mode != 5, bare = mode == 3;
            float *res = mode >= 4 ? rand_f(yn) : NULL;
            KConvPost post = {.bn_scale = bare ? NULL : sc, .bn_bias = bare ? NULL : bi,
                              .bn_mean = bn ? mu : NULL, .bn_var = var, .bn_eps = 1e-5f,
                              .residual = res, .relu = relu};
            // the unfused steps; with its weights prepared, a 3x3 stride-1 conv takes
            // the Winograd path (kwino.c) in both, and differs from the direct bits
            KConv pp = p;
            pp.packed = k_conv_pack_f32_bytes(&p) > 0 && k_tiles_avx512();
            void *pack = pp.packed ? malloc(k_conv_pack_f32_bytes(&p)) : NULL;
            if (pack) k_conv_pack_f32(pack, w, &pp);
            for (int packed = 0; packed <= pp.packed; packed++) {
                const KConv *q = packed ? &pp : &p;
                KConvPost alone = {.wpack = packed ? pack : NULL};
                post.wpack = alone.wpack;
                void *wsq = malloc(k_conv_f32_ws(q));
                k_conv_post_f32(tmp, x, w, b, &alone, q, wsq);
                if (bn) k_batchnorm_f32(want, tmp, post.bn_scale, post.bn_bias, mu, var, p.N, p.M, sp, 1e-5f);
                else memcpy(want, tmp, (size_t)yn * sizeof *want);
                if (res)
                    for (int64_t i = 0; i < yn; i++) want[i] = want[i] + res[i];
                if (relu)
                    for (int64_t i = 0; i < yn; i++) want[i] = want[i] > 0 ? want[i] : (float)0;
                k_set_threads(1); // and the tiles in AVX-512 where the processor has it
                k_tiles_set_avx512(1);
                k_conv_post_f32(got, x, w, b, &post, q, wsq);
                k_set_threads(3); // and in AVX2 (direct: the unprepared bits), or prepared at 3 threads
                k_tiles_set_avx512(packed);
                k_conv_post_f32(got3, x, w, b, &post, q, wsq);
                k_tiles_set_avx512(-1);
                int same = !memcmp(got, want, (size_t)yn * sizeof *got) && !memcmp(got3, want, (size_t)yn * sizeof *got);
                if (!same) fprintf(stderr, "  post case %zu mode %d%s differs\n", ci, mode, packed ? " prepared" : "");
                CHECK(same);
                free(wsq);
            }
            free(pack);
            free(x), free(w), free(b), free(sc), free(bi), free(mu), free(var);
            free(want), free(tmp), free(got), free(got3), free(res);
        }
    k_set_threads(0);
}

int main(void)
{
    RUN(test_conv_fixed);
    RUN(test_conv_random);
    RUN(test_conv_random_wide);
    RUN(test_conv_transpose_fixed);
    RUN(test_conv_transpose_random);
    RUN(test_conv_transpose_wide);
    RUN(test_conv_col_blocks);
    RUN(test_conv_grad_weight_blocks);
    RUN(test_conv_winograd);
    RUN(test_conv_workspace_bounded);
    RUN(test_conv_threads_bitwise);
    RUN(test_conv_post);
    return CHECK_DONE();
}
