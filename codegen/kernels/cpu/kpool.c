/* Pooling and resizing (float32) for the cpu target: MaxPool (with ONNX's
 * flat argmax indices), AveragePool, global pooling and Resize (nearest and
 * n-linear, every coordinate transformation of the ONNX spec).
 * Windows are handled as 3-D with leading spatial dims of size 1, so one code
 * path serves 1-D..3-D. The output sizes arrive from shape inference (ceil
 * mode is already in them), so a window may reach past the padded input; only
 * positions inside the input count, as in ONNX's reference. The thread pool
 * (kpar.c) splits the work by (n, c) rows or output rows; each output is one thread's sequential
 * loop, so results do not depend on the thread count. */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "kernels.h"
#include "kwindow.h"

static void pgeo_of(const KPool *c, KGeo *g)
{
    k_geo_set(g, c->nd, c->in, c->out, c->k, c->stride, c->dilation, c->pad);
}

/* MaxPool without indices whose every window lies inside the input (no
 * padding reached): each output row starts from its windows' first tap and
 * takes `v > y ? v : y` over the others in window order, a loop along the
 * row that the compiler vectorizes. The same values as the general loop (the
 * first tap seeds, NaN handling included). unet_small's 2x2 pooling of
 * 4x16x32x32: 0.41 -> 0.039 ms on one core. */
static int maxpool_inside(const KGeo *g)
{
    for (int i = 0; i < 3; i++)
        if (g->p[i] != 0 || (g->out[i] - 1) * g->s[i] + (g->k[i] - 1) * g->d[i] >= g->in[i]) return 0;
    return 1;
}

/* A pooling's operands, for its rows [lo, hi) of (n, c). */
typedef struct {
    void *y;
    int64_t *idx;
    const void *x;
    const KPool *p;
    const KGeo *g;
    const int64_t *st; /* MaxPool's index strides */
} PoolRows;

/* MaxPool of element type T (the lowest value LOWEST seeds an all-padding
 * window): rows ROWS of its inside-the-input fast path, rows NAME##_rows of
 * the general loop. */
#define MAXPOOL(NAME, ROWS, T, LOWEST) \
static void ROWS(void *arg, int64_t lo, int64_t hi, int tid) \
{ \
    const PoolRows *a = arg; \
    T *y = a->y; \
    const T *x = a->x; \
    const KGeo *g = a->g; \
    for (int64_t r = lo; r < hi; r++) \
        for (int64_t o0 = 0; o0 < g->out[0]; o0++) \
            for (int64_t o1 = 0; o1 < g->out[1]; o1++) { \
                T *yr = y + ((r * g->out[0] + o0) * g->out[1] + o1) * g->out[2]; \
                int first = 1; \
                for (int64_t t0 = 0; t0 < g->k[0]; t0++) \
                    for (int64_t t1 = 0; t1 < g->k[1]; t1++) { \
                        int64_t i0 = o0 * g->s[0] + t0 * g->d[0], i1 = o1 * g->s[1] + t1 * g->d[1]; \
                        const T *row = x + ((r * g->in[0] + i0) * g->in[1] + i1) * g->in[2]; \
                        for (int64_t t2 = 0; t2 < g->k[2]; t2++) { \
                            const T *xt = row + t2 * g->d[2]; \
                            int64_t s2 = g->s[2]; \
                            if (first) { \
                                for (int64_t o2 = 0; o2 < g->out[2]; o2++) yr[o2] = xt[o2 * s2]; \
                                first = 0; \
                            } else { \
                                for (int64_t o2 = 0; o2 < g->out[2]; o2++) { \
                                    T v = xt[o2 * s2]; \
                                    yr[o2] = v > yr[o2] ? v : yr[o2]; \
                                } \
                            } \
                        } \
                    } \
            } \
} \
 \
static void NAME##_rows(void *arg, int64_t lo, int64_t hi, int tid) \
{ \
    const PoolRows *a = arg; \
    T *y = a->y; \
    int64_t *idx = a->idx; \
    const T *x = a->x; \
    const KGeo g = *a->g; \
    const int64_t *st = a->st; \
    for (int64_t r = lo; r < hi; r++) { \
        const T *xr = x + r * g.pin; \
        int64_t o = r * g.pout; \
        for (int64_t o0 = 0; o0 < g.out[0]; o0++) \
            for (int64_t o1 = 0; o1 < g.out[1]; o1++) \
                for (int64_t o2 = 0; o2 < g.out[2]; o2++, o++) { \
                    /* the first maximum in window order wins, as in onnxruntime; an */ \
                    /* all-padding window (impossible under ONNX's size rules) gives */ \
                    /* the type's lowest value and index -1 */ \
                    T best = LOWEST; \
                    int64_t at = -1; \
                    for (int64_t t0 = 0; t0 < g.k[0]; t0++) { \
                        int64_t i0 = o0 * g.s[0] + t0 * g.d[0] - g.p[0]; \
                        if (i0 < 0 || i0 >= g.in[0]) continue; \
                        for (int64_t t1 = 0; t1 < g.k[1]; t1++) { \
                            int64_t i1 = o1 * g.s[1] + t1 * g.d[1] - g.p[1]; \
                            if (i1 < 0 || i1 >= g.in[1]) continue; \
                            const T *row = xr + (i0 * g.in[1] + i1) * g.in[2]; \
                            for (int64_t t2 = 0; t2 < g.k[2]; t2++) { \
                                int64_t i2 = o2 * g.s[2] + t2 * g.d[2] - g.p[2]; \
                                if (i2 < 0 || i2 >= g.in[2]) continue; \
                                if (row[i2] > best || at < 0) { \
                                    best = row[i2]; \
                                    at = i0 * st[0] + i1 * st[1] + i2 * st[2]; \
                                } \
                            } \
                        } \
                    } \
                    y[o] = best; \
                    if (idx) idx[o] = at < 0 ? -1 : r * g.pin + at; \
                } \
    } \
} \
 \
void NAME(T *y, int64_t *idx, const T *x, const KPool *p) \
{ \
    /* x is (NC, in...), y and idx are (NC, out...) */ \
    KGeo g; \
    pgeo_of(p, &g); \
    PoolRows a = {y, idx, x, p, &g, NULL}; \
    int64_t work = p->NC * g.pout * g.kp; \
    if (!idx && maxpool_inside(&g)) { \
        k_par_for(p->NC, work, ROWS, &a); \
        return; \
    } \
    /* the index strides of each 3-D axis: row major, or column major over the */ \
    /* real spatial dims (the first varying fastest); padding axes have index 0 */ \
    int64_t st[3]; \
    if (p->storage_order) { \
        int64_t m = 1; \
        for (int i = 3 - p->nd; i < 3; i++) st[i] = m, m *= g.in[i]; \
        for (int i = 0; i < 3 - p->nd; i++) st[i] = 0; \
    } else { \
        st[2] = 1, st[1] = g.in[2], st[0] = g.in[1] * g.in[2]; \
    } \
    a.st = st; \
    k_par_for(p->NC, work, NAME##_rows, &a); \
}

MAXPOOL(k_maxpool_f32, maxpool_rows_f32, float, -FLT_MAX)
MAXPOOL(k_maxpool_u8, maxpool_rows_u8, uint8_t, 0)
MAXPOOL(k_maxpool_i8, maxpool_rows_i8, int8_t, INT8_MIN)

static void avgpool_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const PoolRows *a = arg;
    float *y = a->y;
    const float *x = a->x;
    const KPool *p = a->p;
    const KGeo g = *a->g;
    // count_include_pad divides by the whole kernel, even where a ceil-mode
    // window reaches past the end padding: the ONNX reference (and its test
    // data) and onnxruntime do so
    double full = (double)(g.k[0] * g.k[1] * g.k[2]);
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = x + r * g.pin;
        int64_t o = r * g.pout;
        for (int64_t o0 = 0; o0 < g.out[0]; o0++)
            for (int64_t o1 = 0; o1 < g.out[1]; o1++)
                for (int64_t o2 = 0; o2 < g.out[2]; o2++, o++) {
                    double s = 0;
                    int64_t n = 0;
                    for (int64_t t0 = 0; t0 < g.k[0]; t0++) {
                        int64_t i0 = o0 * g.s[0] + t0 * g.d[0] - g.p[0];
                        if (i0 < 0 || i0 >= g.in[0]) continue;
                        for (int64_t t1 = 0; t1 < g.k[1]; t1++) {
                            int64_t i1 = o1 * g.s[1] + t1 * g.d[1] - g.p[1];
                            if (i1 < 0 || i1 >= g.in[1]) continue;
                            const float *row = xr + (i0 * g.in[1] + i1) * g.in[2];
                            for (int64_t t2 = 0; t2 < g.k[2]; t2++) {
                                int64_t i2 = o2 * g.s[2] + t2 * g.d[2] - g.p[2];
                                if (i2 < 0 || i2 >= g.in[2]) continue;
                                s += row[i2], n++;
                            }
                        }
                    }
                    // an all-padding window averages nothing: NaN, as the reference
                    y[o] = (float)(p->count_include_pad ? s / full : n ? s / (double)n : NAN);
                }
    }
}

void k_avgpool_f32(float *y, const float *x, const KPool *p)
{
    // x is (NC, in...), y is (NC, out...)
    KGeo g;
    pgeo_of(p, &g);
    PoolRows a = {y, NULL, x, p, &g, NULL};
    k_par_for(p->NC, p->NC * g.pout * g.kp, avgpool_rows, &a);
}

typedef struct {
    float *y;
    const float *x;
    int64_t spatial;
    int is_max;
} GlobalPool;

static void global_pool_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const GlobalPool *a = arg;
    float *y = a->y;
    const float *x = a->x;
    int64_t spatial = a->spatial;
    int is_max = a->is_max;
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = x + r * spatial;
        if (is_max) {
            float m = spatial ? xr[0] : -FLT_MAX;
            for (int64_t i = 1; i < spatial; i++) m = xr[i] > m ? xr[i] : m;
            y[r] = m;
        } else {
            // in double, as the reductions are, over 8 lanes (element i in lane i % 8, a loop
            // the compiler vectorizes; one chain of dependent adds ran 4 cycles an element)
            // summed in lane order, then the last spatial % 8 elements
            double l[8] = {0}, s = 0;
            int64_t i = 0;
            for (; i + 8 <= spatial; i += 8)
                for (int j = 0; j < 8; j++) l[j] += xr[i + j];
            for (int j = 0; j < 8; j++) s += l[j];
            for (; i < spatial; i++) s += xr[i];
            y[r] = (float)(spatial ? s / (double)spatial : NAN);
        }
    }
}

void k_global_pool_f32(float *y, const float *x, int64_t NC, int64_t spatial, int is_max)
{
    // x is (NC, spatial), y is (NC)
    GlobalPool a = {y, x, spatial, is_max};
    k_par_for(NC, NC * spatial, global_pool_rows, &a);
}

/* ---- Resize ---- */

typedef struct {
    float *y;
    const float *x;
    const int64_t *in_dims, *out_dims, *xst;
    int rank, mode, coord_mode, nearest_mode;
    const float *scale, *roi;
    float extrapolation_value;
} Resize;

/* Output rows [lo, hi) along the last axis. */
static void resize_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Resize *a = arg;
    float *y = a->y;
    const float *x = a->x, *scale = a->scale, *roi = a->roi;
    const int64_t *in_dims = a->in_dims, *out_dims = a->out_dims, *xst = a->xst;
    int rank = a->rank, mode = a->mode, coord_mode = a->coord_mode, nearest_mode = a->nearest_mode;
    float extrapolation_value = a->extrapolation_value;
    int64_t L = out_dims[rank - 1], Lin = in_dims[rank - 1];
    int last = rank - 1;
#define ROI(k, end) (roi ? (double)roi[(end) * rank + (k)] : (end) ? 1.0 : 0.0)
    for (int64_t r = lo; r < hi; r++) {
        float *yr = y + r * L;
        // the leading axes' taps, expanded into (offset, weight) corners
        int64_t off[1 << (K_MAX_RANK - 1)];
        double wt[1 << (K_MAX_RANK - 1)];
        int nc = 1, outside = 0;
        off[0] = 0, wt[0] = 1;
        int64_t rem = r;
        for (int k = rank - 2; k >= 0; k--) {
            int64_t o = rem % out_dims[k];
            rem /= out_dims[k];
            KTap t = k_resize_tap(o, in_dims[k], out_dims[k], scale[k], ROI(k, 0), ROI(k, 1), mode,
                               coord_mode, nearest_mode);
            outside |= t.outside;
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
        if (outside) { // any axis outside the crop box: the whole row extrapolates
            for (int64_t j = 0; j < L; j++) yr[j] = extrapolation_value;
            continue;
        }
        for (int64_t j = 0; j < L; j++) {
            KTap t = k_resize_tap(j, Lin, L, scale[last], ROI(last, 0), ROI(last, 1), mode,
                               coord_mode, nearest_mode);
            if (t.outside) {
                yr[j] = extrapolation_value;
                continue;
            }
            double s = 0;
            for (int c = 0; c < nc; c++) {
                const float *xc = x + off[c];
                s += wt[c] * (t.w1 == 0 ? (double)xc[t.i0]
                                        : (1 - t.w1) * xc[t.i0] + t.w1 * (double)xc[t.i1]);
            }
            yr[j] = (float)s;
        }
    }
#undef ROI
}

void k_resize_f32(float *y, const float *x, const int64_t *in_dims, const int64_t *out_dims, int rank,
                  const float *scale, const float *roi, int mode, int coord_mode, int nearest_mode,
                  float extrapolation_value)
{
    // x is (in_dims), y is (out_dims); each output element blends the up to
    // 2^rank input elements its per-axis taps name, in double
    int64_t rows = 1, L = out_dims[rank - 1];
    for (int k = 0; k < rank - 1; k++) rows *= out_dims[k];
    int64_t xst[K_MAX_RANK]; // element strides of x
    xst[rank - 1] = 1;
    for (int k = rank - 2; k >= 0; k--) xst[k] = xst[k + 1] * in_dims[k + 1];
    Resize a = {y, x, in_dims, out_dims, xst, rank, mode, coord_mode, nearest_mode, scale, roi,
                extrapolation_value};
    k_par_for(rows, rows * L * 8, resize_rows, &a);
}
