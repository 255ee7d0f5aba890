/* Convolution (lk.cuh), 1 to 3 spatial dims, groups, strides, dilations,
 * start pads, in two forms that LkConv.nb picks (cg_cuda.c: the products
 * for group 1, the direct kernels for grouped convolutions):
 *  - products through cuBLASLt on columns (im2col): for nb images at a
 *    time, cols [C k, out] per image gathered from x (zeros in the pads),
 *    then y_n = w [M, C k] cols_n as one batched product; the weight
 *    gradient dw = sum over n of dy_n cols_n^T, a product per image added
 *    in order (beta 1); ConvTranspose (a Conv's input gradient too)
 *    cols_n = w^T x_n, then each y element gathers its window's column
 *    entries (col2im as a gather: no atomics). A 1x1 window with stride 1
 *    and no pad needs no columns: they are x itself.
 *  - direct: a thread per output element sums its window over the input
 *    channels of its group, and the weight gradient a thread per weight
 *    element over the batch and the output positions.
 * Both sum in a fixed order: the same bits from run to run. The products
 * run fp32 (no TF32), as lk_gemm_f32 does everywhere. */
#include "lk.cuh"

/* A BatchNormalization's vectors and epsilon, by value: the weight
 * gradient's x is Relu(BatchNormalization(x)) when scale is not NULL. */
struct BnRelu {
    const float *scale, *bias, *mean, *var;
    float eps;
    const uint16_t *x16; /* with scale: x is this bfloat16 copy (low-bit storage), widened as it is loaded */
};

/* p's spatial dims as 3, the missing ones of size 1, and the sizes the
 * kernels index by: channels per group of x (cg) and y (mg), and the
 * elements of an x, y and w plane. Strides, dilations and pads stay in p
 * (tap), read where they are used. */
struct Geo3 {
    int64_t in[3], out[3], k[3];
    int64_t cg, mg, isz, osz, ksz;
};

static __device__ Geo3 geo3(const LkConv &p)
{
    Geo3 g;
    for (int d = 0; d < 3; d++) {
        g.in[d] = d < p.nd ? p.in[d] : 1;
        g.out[d] = d < p.nd ? p.out[d] : 1;
        g.k[d] = d < p.nd ? p.k[d] : 1;
    }
    g.cg = p.C / p.group, g.mg = p.M / p.group;
    g.isz = g.in[0] * g.in[1] * g.in[2], g.osz = g.out[0] * g.out[1] * g.out[2], g.ksz = g.k[0] * g.k[1] * g.k[2];
    return g;
}

/* The input index along spatial dim d that output index o reads through
 * tap a (a missing dim: stride and dilation 1, no pad). */
static __device__ int64_t tap(const LkConv &p, int d, int64_t o, int64_t a)
{
    return o * (d < p.nd ? p.stride[d] : 1) - (d < p.nd ? p.pad[d] : 0) + a * (d < p.nd ? p.dilation[d] : 1);
}

/* ConvTranspose: the offset in an input plane of the element that reaches
 * output position od through tap kk (i stride + kk dilation - pad = o on
 * every dim), or -1 where none does */
static __device__ int64_t transpose_tap(const LkConv &p, const Geo3 &g, const int64_t *od, int64_t kk)
{
    int64_t kd[3] = {kk / (g.k[2] * g.k[1]), kk / g.k[2] % g.k[1], kk % g.k[2]}, off = 0;
    for (int d = 0; d < 3; d++) {
        int64_t st = d < p.nd ? p.stride[d] : 1, dil = d < p.nd ? p.dilation[d] : 1;
        int64_t t = od[d] + (d < p.nd ? p.pad[d] : 0) - kd[d] * dil;
        if (t < 0 || t % st || t / st >= g.in[d]) return -1;
        off = off * g.in[d] + t / st;
    }
    return off;
}

/* The elements of y (N, M, out...): the launchers' thread count. */
static int64_t out_elems(const LkConv *p)
{
    int64_t total = p->N * p->M;
    for (int d = 0; d < p->nd; d++) total *= p->out[d];
    return total;
}

static __global__ void conv(float *y, const float *x, const float *w, const float *b, LkConv p, int64_t total)
{
    // x (N, C, in...), w (M, C/group, k...), y (N, M, out...): one y element per thread
    const Geo3 g = geo3(p);
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = e % g.osz, m = e / g.osz % p.M, n = e / (g.osz * p.M);
        int64_t o2 = o % g.out[2], o1 = o / g.out[2] % g.out[1], o0 = o / (g.out[2] * g.out[1]);
        int64_t gi = m / g.mg;
        float s = 0;
        for (int64_t c = 0; c < g.cg; c++) {
            const float *xc = x + (n * p.C + gi * g.cg + c) * g.isz, *wc = w + (m * g.cg + c) * g.ksz;
            for (int64_t a = 0; a < g.k[0]; a++) {
                int64_t i0 = tap(p, 0, o0, a);
                if (i0 < 0 || i0 >= g.in[0]) continue;
                for (int64_t bb = 0; bb < g.k[1]; bb++) {
                    int64_t i1 = tap(p, 1, o1, bb);
                    if (i1 < 0 || i1 >= g.in[1]) continue;
                    for (int64_t q = 0; q < g.k[2]; q++) {
                        int64_t i2 = tap(p, 2, o2, q);
                        if (i2 < 0 || i2 >= g.in[2]) continue;
                        s += xc[(i0 * g.in[1] + i1) * g.in[2] + i2] * wc[(a * g.k[1] + bb) * g.k[2] + q];
                    }
                }
            }
        }
        y[e] = b ? s + b[m] : s;
    }
}

static int conv_products(cudaStream_t s, float *y, const float *x, const float *w, const float *b, const LkConv *p,
                         float *cols);
static int grad_weight_products(cudaStream_t s, float *dw, const float *dy, const float *x, const LkConv *p,
                                 BnRelu bn, float *cols);
static int transpose_products(cudaStream_t s, float *y, const float *x, const float *w, const float *b,
                              const LkConv *p, float *cols);

int lk_conv_f32(cudaStream_t s, float *y, const float *x, const float *w, const float *b, const LkConv *p, void *ws)
{
    int64_t total = out_elems(p);
    if (total == 0) return 0;
    if (p->nb > 0) return conv_products(s, y, x, w, b, p, (float *)ws);
    return LOOM_LAUNCH(conv, lk_blocks(total), LK_THREADS, 0, s, y, x, w, b, *p, total);
}

static __global__ void conv_grad_weight(float *dw, const float *dy, const float *x, LkConv p, int64_t total, BnRelu bn)
{
    // dw (M, C/group, k...): one element per thread, summed over n and the output positions in order
    const Geo3 g = geo3(p);
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t kk = e % g.ksz, c = e / g.ksz % g.cg, m = e / (g.ksz * g.cg);
        int64_t q = kk % g.k[2], bb = kk / g.k[2] % g.k[1], a = kk / (g.k[2] * g.k[1]);
        int64_t gi = m / g.mg, ci = gi * g.cg + c;
        float bm = 0, ba = 0, bb0 = 0;
        if (bn.scale) bm = bn.mean[ci], ba = lk_bn_factor(bn.scale[ci], bn.var[ci], bn.eps), bb0 = bn.bias[ci];
        double s = 0;
        for (int64_t n = 0; n < p.N; n++) {
            const int64_t xc = (n * p.C + ci) * g.isz;
            const float *dyc = dy + (n * p.M + m) * g.osz;
            for (int64_t o0 = 0; o0 < g.out[0]; o0++) {
                int64_t i0 = tap(p, 0, o0, a);
                if (i0 < 0 || i0 >= g.in[0]) continue;
                for (int64_t o1 = 0; o1 < g.out[1]; o1++) {
                    int64_t i1 = tap(p, 1, o1, bb);
                    if (i1 < 0 || i1 >= g.in[1]) continue;
                    for (int64_t o2 = 0; o2 < g.out[2]; o2++) {
                        int64_t i2 = tap(p, 2, o2, q);
                        if (i2 < 0 || i2 >= g.in[2]) continue;
                        float xv = lk_ldx(x, bn.x16, xc + (i0 * g.in[1] + i1) * g.in[2] + i2);
                        if (bn.scale) xv = lk_bn_relu(xv, bm, ba, bb0);
                        s += (double)dyc[(o0 * g.out[1] + o1) * g.out[2] + o2] * xv;
                    }
                }
            }
        }
        dw[e] = (float)s;
    }
}

static int grad_weight(cudaStream_t s, float *dw, const float *dy, const float *x, const LkConv *p, BnRelu bn,
                       void *ws)
{
    int64_t total = p->M * (p->group ? p->C / p->group : 0);
    for (int d = 0; d < p->nd; d++) total *= p->k[d];
    if (total == 0) return 0;
    if (p->nb > 0) return grad_weight_products(s, dw, dy, x, p, bn, (float *)ws);
    return LOOM_LAUNCH(conv_grad_weight, lk_blocks(total), LK_THREADS, 0, s, dw, dy, x, *p, total, bn);
}

int lk_conv_grad_weight_f32(cudaStream_t s, float *dw, const float *dy, const float *x, const LkConv *p, void *ws)
{
    BnRelu none = {NULL, NULL, NULL, NULL, 0.0f, NULL};
    return grad_weight(s, dw, dy, x, p, none, ws);
}

int lk_conv_grad_weight_bn_relu_f32(cudaStream_t s, float *dw, const float *dy, const float *x, const float *scale,
                                    const float *bias, const float *mean, const float *var, float eps, const LkConv *p,
                                    void *ws)
{
    BnRelu bn = {scale, bias, mean, var, eps, NULL};
    return grad_weight(s, dw, dy, x, p, bn, ws);
}

int lk_conv_grad_weight_bn_relu_bf16x(cudaStream_t s, float *dw, const float *dy, const uint16_t *x,
                                      const float *scale, const float *bias, const float *mean, const float *var,
                                      float eps, const LkConv *p, void *ws)
{
    BnRelu bn = {scale, bias, mean, var, eps, x};
    return grad_weight(s, dw, dy, NULL, p, bn, ws);
}

static __global__ void conv_transpose(float *y, const float *x, const float *w, const float *b, LkConv p,
                                      int64_t total)
{
    // x (N, C, in...), w (C, M/group, k...), y (N, M, out...): one y element per thread, gathering
    // the x elements i that reach it (o = i * stride + k * dilation - pad)
    const Geo3 g = geo3(p);
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = e % g.osz, m = e / g.osz % p.M, n = e / (g.osz * p.M);
        int64_t od[3] = {o / (g.out[2] * g.out[1]), o / g.out[2] % g.out[1], o % g.out[2]};
        int64_t gi = m / g.mg, mm = m % g.mg;
        float s = 0;
        for (int64_t c = 0; c < g.cg; c++) {
            const float *xc = x + (n * p.C + gi * g.cg + c) * g.isz, *wc = w + ((gi * g.cg + c) * g.mg + mm) * g.ksz;
            for (int64_t kk = 0; kk < g.ksz; kk++) {
                int64_t off = transpose_tap(p, g, od, kk);
                if (off >= 0) s += xc[off] * wc[kk];
            }
        }
        y[e] = b ? s + b[m] : s;
    }
}

int lk_conv_transpose_f32(cudaStream_t s, float *y, const float *x, const float *w, const float *b, const LkConv *p,
                          void *ws)
{
    int64_t total = out_elems(p);
    if (total == 0) return 0;
    if (p->nb > 0) return transpose_products(s, y, x, w, b, p, (float *)ws);
    return LOOM_LAUNCH(conv_transpose, lk_blocks(total), LK_THREADS, 0, s, y, x, w, b, *p, total);
}

/* ---- the products' form (nb > 0) ---- */

/* cols [nb][C k][P] for images n0 .. n0 + nb of x (group 1): tap (c, kk) of
 * output position o, 0 in the pads; bn.scale: Relu(BatchNormalization(x))
 * (the pads stay 0: they pad the ReLU's output) */
static __global__ void im2col(float *cols, const float *x, LkConv p, int64_t n0, int64_t nb, BnRelu bn)
{
    const Geo3 g = geo3(p);
    int64_t rows = p.C * g.ksz, total = nb * rows * g.osz;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = e % g.osz, r = e / g.osz % rows, b = e / (g.osz * rows);
        int64_t c = r / g.ksz, kk = r % g.ksz;
        int64_t i0 = tap(p, 0, o / (g.out[2] * g.out[1]), kk / (g.k[2] * g.k[1]));
        int64_t i1 = tap(p, 1, o / g.out[2] % g.out[1], kk / g.k[2] % g.k[1]);
        int64_t i2 = tap(p, 2, o % g.out[2], kk % g.k[2]);
        float v = 0;
        if (i0 >= 0 && i0 < g.in[0] && i1 >= 0 && i1 < g.in[1] && i2 >= 0 && i2 < g.in[2]) {
            v = lk_ldx(x, bn.x16, ((n0 + b) * p.C + c) * g.isz + (i0 * g.in[1] + i1) * g.in[2] + i2);
            if (bn.scale) v = lk_bn_relu(v, bn.mean[c], lk_bn_factor(bn.scale[c], bn.var[c], bn.eps), bn.bias[c]);
        }
        cols[e] = v;
    }
}

/* y [N, M, P] += b [M] */
static __global__ void add_bias(float *y, const float *b, int64_t M, int64_t P, int64_t total)
{
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x)
        y[e] += b[e / P % M];
}

/* no columns needed: each output position reads one input element at the same place */
static int pointwise(const LkConv *p)
{
    for (int d = 0; d < p->nd; d++)
        if (p->k[d] != 1 || p->stride[d] != 1 || p->pad[d] != 0 || p->in[d] != p->out[d]) return 0;
    return 1;
}

static int64_t window(const LkConv *p)
{
    int64_t k = 1;
    for (int d = 0; d < p->nd; d++) k *= p->k[d];
    return k;
}

static int64_t plane(const int64_t *dims, int nd)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= dims[d];
    return n;
}

static int conv_products(cudaStream_t s, float *y, const float *x, const float *w, const float *b, const LkConv *p,
                         float *cols)
{
    int64_t K = p->C * window(p), P = plane(p->out, p->nd), isz = plane(p->in, p->nd);
    int direct = pointwise(p);
    BnRelu none = {NULL, NULL, NULL, NULL, 0.0f, NULL};
    for (int64_t n0 = 0; n0 < p->N; n0 += p->nb) {
        int64_t nb = p->N - n0 < p->nb ? p->N - n0 : p->nb;
        if (!direct && LOOM_LAUNCH(im2col, lk_blocks(nb * K * P), LK_THREADS, 0, s, cols, x, *p, n0, nb, none))
            return -1;
        // y_n [M, P] = w [M, K] cols_n [K, P]
        if (lk_gemm_f32(s, y + n0 * p->M * P, w, direct ? x + n0 * p->C * isz : cols, NULL, nb, p->M, P, K, 0, 0, 1.0f,
                        0.0f, 0, direct ? p->C * isz : K * P, p->M * P))
            return -1;
    }
    return b ? LOOM_LAUNCH(add_bias, lk_blocks(p->N * p->M * P), LK_THREADS, 0, s, y, b, p->M, P, p->N * p->M * P) : 0;
}

static int grad_weight_products(cudaStream_t s, float *dw, const float *dy, const float *x, const LkConv *p,
                                 BnRelu bn, float *cols)
{
    int64_t K = p->C * window(p), P = plane(p->out, p->nd), isz = plane(p->in, p->nd);
    int direct = pointwise(p) && !bn.scale;
    for (int64_t n0 = 0; n0 < p->N; n0 += p->nb) {
        int64_t nb = p->N - n0 < p->nb ? p->N - n0 : p->nb;
        if (!direct && LOOM_LAUNCH(im2col, lk_blocks(nb * K * P), LK_THREADS, 0, s, cols, x, *p, n0, nb, bn))
            return -1;
        // dw [M, K] (+)= dy_n [M, P] cols_n^T [P, K], image by image in order
        for (int64_t b = 0; b < nb; b++) {
            int64_t n = n0 + b;
            const float *cn = direct ? x + n * p->C * isz : cols + b * K * P;
            if (lk_gemm_f32(s, dw, dy + n * p->M * P, cn, NULL, 1, p->M, K, P, 0, 1, 1.0f, n ? 1.0f : 0.0f, 0, 0, 0))
                return -1;
        }
    }
    if (p->N == 0) return RT_CUDA(cudaMemsetAsync(dw, 0, (size_t)(p->M * K) * sizeof(float), s));
    return 0;
}

/* y [nb][M][out] (images n0 ..) from cols [nb][M k][in]: each element gathers
 * the column entries (m kk, i) with i stride + kk dilation - pad = o */
static __global__ void col2im(float *y, const float *cols, LkConv p, int64_t n0, int64_t nb)
{
    const Geo3 g = geo3(p);
    int64_t total = nb * p.M * g.osz;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = e % g.osz, m = e / g.osz % p.M, b = e / (g.osz * p.M);
        int64_t od[3] = {o / (g.out[2] * g.out[1]), o / g.out[2] % g.out[1], o % g.out[2]};
        const float *cb = cols + (b * p.M + m) * g.ksz * g.isz;
        float s = 0;
        for (int64_t kk = 0; kk < g.ksz; kk++) {
            int64_t off = transpose_tap(p, g, od, kk);
            if (off >= 0) s += cb[kk * g.isz + off];
        }
        y[(n0 * p.M) * g.osz + e] = s;
    }
}

static int transpose_products(cudaStream_t s, float *y, const float *x, const float *w, const float *b,
                              const LkConv *p, float *cols)
{
    int64_t Mk = p->M * window(p), isz = plane(p->in, p->nd), P = plane(p->out, p->nd);
    int direct = pointwise(p);
    for (int64_t n0 = 0; n0 < p->N; n0 += p->nb) {
        int64_t nb = p->N - n0 < p->nb ? p->N - n0 : p->nb;
        // cols_n [M k, in] = w^T [M k, C] x_n [C, in] (w is [C, M k]); with no columns, y_n itself
        float *dst = direct ? y + n0 * p->M * P : cols;
        if (lk_gemm_f32(s, dst, w, x + n0 * p->C * isz, NULL, nb, Mk, isz, p->C, 1, 0, 1.0f, 0.0f, 0, p->C * isz,
                        Mk * isz))
            return -1;
        if (!direct && LOOM_LAUNCH(col2im, lk_blocks(nb * p->M * P), LK_THREADS, 0, s, y, cols, *p, n0, nb))
            return -1;
    }
    return b ? LOOM_LAUNCH(add_bias, lk_blocks(p->N * p->M * P), LK_THREADS, 0, s, y, b, p->M, P, p->N * p->M * P) : 0;
}

size_t lk_conv_f32_ws(const LkConv *p, int transpose, int bn)
{
    if (p->nb <= 0 || (pointwise(p) && !bn)) return 0;
    int64_t per = transpose ? p->M * window(p) * plane(p->in, p->nd) : p->C * window(p) * plane(p->out, p->nd);
    return (size_t)(p->nb * per) * sizeof(float);
}
