/* Backward kernels (float32), part two: the weight gradient of convolution,
 * the max and average pooling gradients, the adjoint of Resize, and the
 * scatter-adds that undo Gather, GatherElements and Slice (loom.* ops of
 * ir/train.h; kgrad.c holds the rest).
 *
 * Window geometry and im2col come from kwindow.h, shared with kconv.c and
 * kpool.c (1-D..3-D windows right-aligned into 3 dims), as do Resize's
 * per-axis taps. Determinism: every output element is written
 * by one thread, its contributions added in a fixed order (threads split
 * images' channels, pooling rows, gather outer blocks or inner columns, never
 * one sum); the conv weight gradient adds the gemms of the images' column blocks in order. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kmath.h"
#include "kwindow.h"



/* ---- ConvGradWeight ---- */


/* The output rows of one block of columns (kwindow.h). */
static int64_t grad_weight_block(const KConv *p, const KGeo *g)
{
    return k_col_block(p->C * g->kp, g->out[2], g->out[0] * g->out[1], K_COL_GRAD_FLOATS);
}

size_t k_conv_grad_weight_f32_ws(const KConv *p)
{
    KGeo g;
    k_geo_set(&g, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    return (size_t)(p->C * g.kp * grad_weight_block(p, &g) * g.out[2]) * sizeof(float);
}

size_t k_conv_grad_weight_bn_relu_f32_ws(const KConv *p)
{
    KGeo g;
    k_geo_set(&g, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    return k_conv_grad_weight_f32_ws(p) + (size_t)(p->C * g.pin) * sizeof(float);
}

/* Relu(BatchNormalization(x)) (kmath.h, k_bn_relu) of rows [lo, hi) of x
 * [rows, pin] into y; row r is of channel (r0 + r) % C. */
typedef struct {
    float *y;
    const float *x, *scale, *bias, *mean, *var;
    const uint16_t *x16, *x16_all; /* x as bfloat16 (k_conv_grad_weight_bn_relu_bf16x): these rows, every image */
    int64_t pin, C, r0;
    float eps;
} BnRelu;

static void bn_relu_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const BnRelu *b = arg;
    for (int64_t r = lo; r < hi; r++) {
        int64_t c = (b->r0 + r) % b->C;
        float m = b->mean[c], a = k_bn_factor(b->scale[c], b->var[c], b->eps), bias = b->bias[c];
        float *yr = b->y + r * b->pin;
        if (b->x16) {
            const uint16_t *xr = b->x16 + r * b->pin;
            for (int64_t i = 0; i < b->pin; i++) yr[i] = k_bn_relu(k_bf16_f32(xr[i]), m, a, bias);
            continue;
        }
        const float *xr = b->x + r * b->pin;
        for (int64_t i = 0; i < b->pin; i++) yr[i] = k_bn_relu(xr[i], m, a, bias);
    }
}

/* bn: x's place is taken by Relu(BatchNormalization(x)), made an image at a
 * time into the workspace after the columns (the columns of a 3x3 window
 * would compute each value nine times) */
static void grad_weight(float *dw, const float *dy, const float *x, const KConv *p, void *ws, BnRelu *bn)
{
    // dy is (N,M,out...), x is (N,C,in...), dw is (M,C/group,k...)
    KGeo g;
    k_geo_set(&g, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    int64_t G = p->group, Cg = p->C / G, Mg = p->M / G, Kg = Cg * g.kp;
    if (p->N == 0 || g.pout == 0) {
        memset(dw, 0, (size_t)(p->M * Kg) * sizeof *dw);
        return;
    }
    float *col = ws;
    int64_t rows = g.out[0] * g.out[1], blk = grad_weight_block(p, &g);
    if (bn) bn->y = col + p->C * g.kp * blk * g.out[2], bn->pin = g.pin, bn->C = p->C, bn->r0 = 0;
    for (int64_t n = 0; n < p->N; n++) {
        const float *xn = bn && bn->x16_all ? NULL : x + n * p->C * g.pin;
        if (bn) {
            bn->x = xn;
            if (bn->x16_all) bn->x16 = bn->x16_all + n * p->C * g.pin;
            k_par_for(p->C, p->C * g.pin, bn_relu_rows, bn);
            xn = bn->y;
        }
        for (int64_t q0 = 0; q0 < rows; q0 += blk) {
            int64_t q1 = q0 + blk < rows ? q0 + blk : rows, w = (q1 - q0) * g.out[2];
            k_im2col_block(col, xn, p->C, &g, q0, q1, p->C * g.kp * w >= K_PAR_WORK);
            // dw_g [Mg, Kg] (+)= dy_g [Mg, w] * col_g^T [w, Kg]: images, then blocks, added in order
            for (int64_t gi = 0; gi < G; gi++)
                k_sgemm(0, 1, Mg, Kg, w, 1.0f, dy + (n * p->M + gi * Mg) * g.pout + q0 * g.out[2], g.pout,
                        col + gi * Kg * w, w, n || q0 ? 1.0f : 0.0f, dw + gi * Mg * Kg, Kg);
        }
    }
}

void k_conv_grad_weight_f32(float *dw, const float *dy, const float *x, const KConv *p, void *ws)
{
    grad_weight(dw, dy, x, p, ws, NULL);
}

void k_conv_grad_weight_bn_relu_f32(float *dw, const float *dy, const float *x, const float *scale,
                                    const float *bias, const float *mean, const float *var, float eps,
                                    const KConv *p, void *ws)
{
    BnRelu bn = {.scale = scale, .bias = bias, .mean = mean, .var = var, .eps = eps};
    grad_weight(dw, dy, x, p, ws, &bn);
}

void k_conv_grad_weight_bn_relu_bf16x(float *dw, const float *dy, const uint16_t *x, const float *scale,
                                      const float *bias, const float *mean, const float *var, float eps,
                                      const KConv *p, void *ws)
{
    BnRelu bn = {.scale = scale, .bias = bias, .mean = mean, .var = var, .x16_all = x, .eps = eps};
    grad_weight(dw, dy, NULL, p, ws, &bn);
}

/* ---- pooling ---- */

size_t k_maxpool_grad_f32_ws(const KPool *p)
{
    int64_t nout = p->NC;
    for (int i = 0; i < p->nd; i++) nout *= p->out[i];
    return (size_t)nout * (sizeof(int64_t) + sizeof(float));
}

/* A pooling gradient's operands, for its rows [lo, hi) of (n, c). */
typedef struct {
    float *dx;
    const float *dy;
    const int64_t *idx;
    const KPool *p;
    const KGeo *g;
} PoolGrad;

static void maxpool_grad_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const PoolGrad *a = arg;
    const KGeo *g = a->g;
    float *dx = a->dx;
    for (int64_t r = lo; r < hi; r++) {
        float *dxr = dx + r * g->pin;
        memset(dxr, 0, (size_t)g->pin * sizeof *dxr);
        for (int64_t o = r * g->pout; o < (r + 1) * g->pout; o++)
            if (a->idx[o] >= 0) dx[a->idx[o]] += a->dy[o];
    }
}

void k_maxpool_grad_f32(float *dx, const float *dy, const float *x, const KPool *p, void *ws)
{
    // dx, x are (NC, in...), dy is (NC, out...). The forward kernel itself
    // finds the maxima, so its tie rule holds by construction.
    KGeo g;
    k_geo_set(&g, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    int64_t *idx = ws;
    float *y = (float *)(idx + p->NC * g.pout);
    KPool q = *p;
    q.storage_order = 0; // row-major flat indices: r * pin + offset in the row
    k_maxpool_f32(y, idx, x, &q);
    PoolGrad a = {dx, dy, idx, p, &g};
    k_par_for(p->NC, p->NC * g.pin, maxpool_grad_rows, &a);
}

/* The rows of NC that k_maxpool_grad_bn_relu_f32 pools at a time: about
 * 256K floats of x (1 MiB), at least one row. */
static int64_t bn_pool_rows(const KPool *p, const KGeo *g)
{
    int64_t r = g->pin > 0 ? 262144 / g->pin : p->NC;
    if (r > p->NC) r = p->NC;
    return r > 0 ? r : 1;
}

size_t k_maxpool_grad_bn_relu_f32_ws(const KPool *p)
{
    KGeo g;
    k_geo_set(&g, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    int64_t r = bn_pool_rows(p, &g);
    return (size_t)(r * g.pin) * sizeof(float) + (size_t)(r * g.pout) * (sizeof(int64_t) + sizeof(float));
}

void k_maxpool_grad_bn_relu_f32(float *dx, const float *dy, const float *x, const float *scale, const float *bias,
                                const float *mean, const float *var, float eps, int64_t C, const KPool *p,
                                void *ws)
{
    // a block of rows at a time: Relu(BatchNormalization(x)) into the workspace, its
    // maxima (k_maxpool_f32, as the forward found them), then dy to them
    KGeo g;
    k_geo_set(&g, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    int64_t blk = bn_pool_rows(p, &g);
    float *xb = ws;
    int64_t *idx = (int64_t *)(xb + blk * g.pin);
    float *y = (float *)(idx + blk * g.pout);
    BnRelu bn = {.y = xb, .scale = scale, .bias = bias, .mean = mean, .var = var, .pin = g.pin, .C = C, .eps = eps};
    for (int64_t r0 = 0; r0 < p->NC; r0 += blk) {
        int64_t rows = r0 + blk < p->NC ? blk : p->NC - r0;
        bn.x = x + r0 * g.pin, bn.r0 = r0;
        k_par_for(rows, rows * g.pin, bn_relu_rows, &bn);
        KPool q = *p;
        q.NC = rows;
        q.storage_order = 0; // row-major flat indices: r * pin + offset in the row
        k_maxpool_f32(y, idx, xb, &q);
        PoolGrad a = {dx + r0 * g.pin, dy + r0 * g.pout, idx, p, &g};
        k_par_for(rows, rows * g.pin, maxpool_grad_rows, &a);
    }
}

static void avgpool_grad_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const PoolGrad *a = arg;
    const KPool *p = a->p;
    const KGeo g = *a->g;
    float *dx = a->dx;
    const float *dy = a->dy;
    double full = (double)g.kp;
    for (int64_t r = lo; r < hi; r++) {
        float *dxr = dx + r * g.pin;
        memset(dxr, 0, (size_t)g.pin * sizeof *dxr);
        int64_t o = r * g.pout;
        for (int64_t o0 = 0; o0 < g.out[0]; o0++)
            for (int64_t o1 = 0; o1 < g.out[1]; o1++)
                for (int64_t o2 = 0; o2 < g.out[2]; o2++, o++) {
                    int64_t cnt = 0; // the forward's divisor: the whole kernel, or the valid taps
                    for (int pass = 0; pass < 2; pass++) {
                        float w = pass ? (float)(dy[o] / (p->count_include_pad ? full : (double)cnt)) : 0;
                        for (int64_t t0 = 0; t0 < g.k[0]; t0++) {
                            int64_t i0 = o0 * g.s[0] + t0 * g.d[0] - g.p[0];
                            if (i0 < 0 || i0 >= g.in[0]) continue;
                            for (int64_t t1 = 0; t1 < g.k[1]; t1++) {
                                int64_t i1 = o1 * g.s[1] + t1 * g.d[1] - g.p[1];
                                if (i1 < 0 || i1 >= g.in[1]) continue;
                                float *row = dxr + (i0 * g.in[1] + i1) * g.in[2];
                                for (int64_t t2 = 0; t2 < g.k[2]; t2++) {
                                    int64_t i2 = o2 * g.s[2] + t2 * g.d[2] - g.p[2];
                                    if (i2 < 0 || i2 >= g.in[2]) continue;
                                    if (pass) row[i2] += w;
                                    else cnt++;
                                }
                            }
                        }
                        if (!pass && !cnt) break; // an all-padding window read nothing
                    }
                }
    }
}

void k_avgpool_grad_f32(float *dx, const float *dy, const KPool *p)
{
    // dx is (NC, in...), dy is (NC, out...); each output's dy / divisor to its window
    KGeo g;
    k_geo_set(&g, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    PoolGrad a = {dx, dy, NULL, p, &g};
    k_par_for(p->NC, p->NC * g.pin, avgpool_grad_rows, &a);
}

/* ---- Resize ---- */

/* Whether an axis maps every output coordinate to itself with full weight. */
static int tap_identity(int64_t in, int64_t out, double scale, int mode, int coord_mode, int nearest_mode)
{
    if (in != out) return 0;
    for (int64_t o = 0; o < out; o++) {
        KTap t = k_resize_tap(o, in, out, scale, 0, 1, mode, coord_mode, nearest_mode);
        if (!(t.w1 == 0 ? t.i0 == o : t.i0 == t.i1 && t.i0 == o)) return 0;
    }
    return 1;
}

typedef struct {
    float *dx;
    const float *dy, *scale;
    const int64_t *in_dims, *out_dims, *xst;
    int rank, lead, mode, coord_mode, nearest_mode;
    int64_t bin, bout;
} ResizeGrad;

/* Blocks [lo, hi) of the leading identity axes. */
static void resize_grad_blocks(void *arg, int64_t lo, int64_t hi, int tid)
{
    const ResizeGrad *a = arg;
    const int64_t *in_dims = a->in_dims, *out_dims = a->out_dims, *xst = a->xst;
    const float *scale = a->scale;
    int rank = a->rank, lead = a->lead, mode = a->mode, coord_mode = a->coord_mode;
    int nearest_mode = a->nearest_mode;
    int64_t bin = a->bin, bout = a->bout;
    for (int64_t b = lo; b < hi; b++) {
        float *dxb = a->dx + b * bin;
        const float *dyb = a->dy + b * bout;
        memset(dxb, 0, (size_t)bin * sizeof *dxb);
        for (int64_t e = 0; e < bout; e++) {
            int64_t off[1 << K_MAX_RANK];
            double wt[1 << K_MAX_RANK];
            int nc = 1;
            off[0] = 0, wt[0] = 1;
            int64_t rem = e;
            for (int k = rank - 1; k >= lead; k--) {
                int64_t o = rem % out_dims[k];
                rem /= out_dims[k];
                KTap t = k_resize_tap(o, in_dims[k], out_dims[k], scale[k], 0, 1, mode, coord_mode,
                                      nearest_mode);
                if (t.w1 == 0 || t.i0 == t.i1) { // one neighbour carries all the weight
                    for (int c = 0; c < nc; c++) off[c] += (t.w1 == 0 ? t.i0 : t.i1) * xst[k];
                    continue;
                }
                for (int c = 0; c < nc; c++) {
                    off[nc + c] = off[c] + t.i1 * xst[k], wt[nc + c] = wt[c] * t.w1;
                    off[c] += t.i0 * xst[k], wt[c] *= 1 - t.w1;
                }
                nc *= 2;
            }
            for (int c = 0; c < nc; c++) dxb[off[c]] += (float)(wt[c] * dyb[e]);
        }
    }
}

void k_resize_grad_f32(float *dx, const float *dy, const int64_t *in_dims, const int64_t *out_dims,
                       int rank, const float *scale, int mode, int coord_mode, int nearest_mode)
{
    // dx is (in_dims), dy is (out_dims). Leading identity axes (batch,
    // channels) split the work into independent blocks; inside a block every
    // dy element scatters into its 2^rank corners in output order.
    int lead = 0;
    int64_t blocks = 1, nin = 1;
    while (lead < rank - 1 &&
           tap_identity(in_dims[lead], out_dims[lead], scale[lead], mode, coord_mode, nearest_mode))
        blocks *= in_dims[lead++];
    int64_t bin = 1, bout = 1, xst[K_MAX_RANK];
    for (int k = rank - 1; k >= 0; k--) {
        xst[k] = nin;
        nin *= in_dims[k];
        if (k >= lead) bin *= in_dims[k], bout *= out_dims[k];
    }
    ResizeGrad a = {dx, dy, scale, in_dims, out_dims, xst, rank, lead, mode, coord_mode, nearest_mode,
                    bin, bout};
    k_par_for(blocks, nin, resize_grad_blocks, &a);
}

/* ---- indexing ---- */

/* Index t of an int32 or int64 index array. */
static int64_t idx_at(const void *idx, int is_i32, int64_t t)
{
    return is_i32 ? (int64_t)((const int32_t *)idx)[t] : ((const int64_t *)idx)[t];
}

/* -1 (after k_fail) when an index is outside [-len, len). */
static int check_indices(const char *op, const void *idx, int is_i32, int64_t n, int64_t len)
{
    for (int64_t t = 0; t < n; t++) {
        int64_t v = idx_at(idx, is_i32, t);
        if (v < -len || v >= len)
            return k_fail("%s: index %lld at position %lld is out of range: valid indices are %lld to %lld",
                          op, (long long)v, (long long)t, (long long)-len, (long long)(len - 1));
    }
    return 0;
}

typedef struct {
    float *dx;
    const float *dy;
    const void *idx;
    int idx_is_i32;
    int64_t axis_len, nidx, inner, ncol;
    const int64_t *dims, *xs;
    int rank, axis;
    int64_t per;
} IndexGrad;

/* Pieces [lo, hi) of outer * ncol: outer blocks, or column ranges of inner. */
static void gather_grad_pieces(void *arg, int64_t lo, int64_t hi, int tid)
{
    const IndexGrad *a = arg;
    int64_t axis_len = a->axis_len, nidx = a->nidx, inner = a->inner, ncol = a->ncol;
    for (int64_t w = lo; w < hi; w++) {
        int64_t o = w / ncol, j0 = inner * (w % ncol) / ncol, j1 = inner * (w % ncol + 1) / ncol;
        float *dxo = a->dx + o * axis_len * inner;
        for (int64_t i = 0; i < axis_len; i++) memset(dxo + i * inner + j0, 0, (size_t)(j1 - j0) * sizeof *dxo);
        for (int64_t t = 0; t < nidx; t++) {
            int64_t i = idx_at(a->idx, a->idx_is_i32, t);
            if (i < 0) i += axis_len;
            float *d = dxo + i * inner;
            const float *s = a->dy + (o * nidx + t) * inner;
            for (int64_t j = j0; j < j1; j++) d[j] += s[j];
        }
    }
}

int k_gather_grad_f32(float *dx, const float *dy, const void *idx, int idx_is_i32, int64_t outer,
                      int64_t axis_len, int64_t nidx, int64_t inner)
{
    // dy is (outer, nidx, inner), dx (outer, axis_len, inner): dx[o, idx[t]] += dy[o, t].
    // Threads own outer blocks, or (one block, as an embedding) column ranges of
    // inner; indices are visited in order either way.
    if (check_indices("Gather", idx, idx_is_i32, nidx, axis_len) < 0) return -1;
    IndexGrad a = {.dx = dx, .dy = dy, .idx = idx, .idx_is_i32 = idx_is_i32, .axis_len = axis_len,
                   .nidx = nidx, .inner = inner, .ncol = outer > 1 || inner < 256 ? 1 : (inner + 255) / 256};
    k_par_for(outer * a.ncol, outer * nidx * inner, gather_grad_pieces, &a);
    return 0;
}

/* Blocks [lo, hi) of the axes before `axis`: disjoint parts of dx. */
static void gather_elements_grad_blocks(void *arg, int64_t lo, int64_t hi, int tid)
{
    const IndexGrad *a = arg;
    const int64_t *dims = a->dims, *xs = a->xs;
    int rank = a->rank, axis = a->axis;
    int64_t len = a->axis_len, per = a->per;
    for (int64_t b = lo; b < hi; b++)
        for (int64_t e = b * per; e < (b + 1) * per; e++) {
            int64_t off = 0, rem = e;
            for (int k = rank - 1; k >= 0; k--) {
                int64_t c = rem % dims[k];
                rem /= dims[k];
                if (k == axis) {
                    c = idx_at(a->idx, a->idx_is_i32, e);
                    if (c < 0) c += len;
                }
                off += c * xs[k];
            }
            a->dx[off] += a->dy[e];
        }
}

int k_gather_elements_grad_f32(float *dx, const int64_t *x_dims, const float *dy, const void *idx,
                               int idx_is_i32, const int64_t *dims, int rank, int axis)
{
    // dy and idx are (dims), dx (x_dims): dx[.., idx[e], ..] += dy[e] along axis.
    // Blocks of the axes before `axis` touch disjoint parts of dx: one per thread.
    int64_t n = 1, nx = 1, outer = 1;
    for (int k = 0; k < rank; k++) {
        n *= dims[k], nx *= x_dims[k];
        if (k < axis) outer *= dims[k];
    }
    if (check_indices("GatherElements", idx, idx_is_i32, n, x_dims[axis]) < 0) return -1;
    memset(dx, 0, (size_t)nx * sizeof *dx);
    if (n == 0) return 0;
    int64_t xs[K_MAX_RANK], len = x_dims[axis];
    for (int k = rank - 1; k >= 0; k--) xs[k] = k == rank - 1 ? 1 : xs[k + 1] * x_dims[k + 1];
    IndexGrad a = {.dx = dx, .dy = dy, .idx = idx, .idx_is_i32 = idx_is_i32, .axis_len = len,
                   .dims = dims, .xs = xs, .rank = rank, .axis = axis, .per = n / outer};
    k_par_for(outer, n, gather_elements_grad_blocks, &a);
    return 0;
}

void k_slice_grad_f32(float *dx, const int64_t *x_dims, const float *dy, const int64_t *dims,
                      int rank, const int64_t *starts, const int64_t *steps)
{
    // dx is (x_dims), zero but for the sliced positions, which get dy (dims)
    int64_t nx = 1, xs[K_MAX_RANK], dst[K_MAX_RANK], src[K_MAX_RANK], off = 0;
    for (int k = rank - 1; k >= 0; k--) {
        xs[k] = nx;
        nx *= x_dims[k];
    }
    for (int k = rank - 1; k >= 0; k--) {
        src[k] = k == rank - 1 ? 1 : src[k + 1] * dims[k + 1];
        dst[k] = xs[k] * steps[k];
        off += starts[k] * xs[k];
    }
    float zero = 0;
    k_fill(dx, &zero, nx, (int)sizeof zero);
    int64_t n = 1;
    for (int k = 0; k < rank; k++) n *= dims[k];
    if (n > 0) k_copy_nd(dx + off, dst, dy, src, dims, rank, (int)sizeof *dx);
}
