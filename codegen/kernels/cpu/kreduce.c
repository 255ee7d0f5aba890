/* Softmax, reductions and scans: Softmax / LogSoftmax (float32), the Reduce*
 * family, ArgMax / ArgMin and CumSum (float32, float64, int32, int64, and for
 * the reductions and arg-reductions int8 and uint8 too).
 *
 * Every output element is reduced whole by one thread, in memory order, so a
 * result never depends on the thread count. Float sums accumulate in double
 * and are rounded once; integer sums and products wrap like numpy's. Reduce
 * first merges neighbouring axes that are all reduced or all kept, and then
 * walks one of two layouts: the innermost axis reduced (each output sums
 * contiguous runs), or the innermost axis kept (a chunk of neighbouring
 * outputs accumulates side by side, a loop the compiler vectorizes). Types
 * are stamped out by macros from one body per kernel. */
#include "kernels.h"
#include "kmath.h"
#include "krow.h"

#include <math.h>
#include <string.h>

/* Outputs accumulated side by side when the innermost axis is kept. */
#define CH 128

/* Chunk t of CH neighbouring columns, where each of the outer rows' inner
 * columns make nch chunks: its row *o and first column *j0; returns its
 * width (CH, or what is left at the end of a row). */
static inline int64_t chunk_of(int64_t t, int64_t nch, int64_t inner, int64_t *o, int64_t *j0) {
    *o = t / nch, *j0 = t % nch * CH;
    return inner - *j0 < CH ? inner - *j0 : CH;
}

/* Saturating double -> integer conversion: a float-to-int cast out of range is
 * undefined behaviour, and an empty LogSumExp or a huge L2 can produce one. */
static int64_t sat_i64(double d, int64_t lo, int64_t hi) {
    if (d != d) return 0;
    if (d <= (double)lo) return lo;
    if (d >= (double)hi) return hi;
    return (int64_t)d;
}

/* ---- Softmax / LogSoftmax ---- */

typedef struct {
    float *y;
    const float *x;
    int64_t len, inner, nch;
    int is_log;
} Softmax;

/* Rows [lo, hi) of a softmax over the last axis. */
static void softmax_rows(void *arg, int64_t lo, int64_t hi, int tid) {
    const Softmax *a = arg;
    float *y = a->y;
    const float *x = a->x;
    int64_t len = a->len;
    int is_log = a->is_log;
    for (int64_t o = lo; o < hi; o++) {
        const float *xr = x + o * len;
        float *yr = y + o * len;
        float m = k_row_max(xr, len);
        double sum = k_row_exp_sum(yr, xr, len, m); // y holds the exps until rescaled
        if (is_log) {
            float ls = (float)log(sum);
            for (int64_t i = 0; i < len; i++) yr[i] = (xr[i] - m) - ls;
        } else {
            float inv = (float)(1.0 / sum);
            for (int64_t i = 0; i < len; i++) yr[i] *= inv;
        }
    }
}

/* Chunks [lo, hi) of CH neighbouring columns of a softmax over a strided axis. */
static void softmax_columns(void *arg, int64_t lo, int64_t hi, int tid) {
    const Softmax *a = arg;
    float *y = a->y;
    const float *x = a->x;
    int64_t len = a->len, inner = a->inner, nch = a->nch;
    int is_log = a->is_log;
    for (int64_t t = lo; t < hi; t++) {
        int64_t o, j0, jn = chunk_of(t, nch, inner, &o, &j0);
        const float *xb = x + o * len * inner + j0;
        float *yb = y + o * len * inner + j0;
        float m[CH], f[CH];
        double s[CH];
        for (int64_t j = 0; j < jn; j++) m[j] = xb[j], s[j] = 0;
        for (int64_t l = 1; l < len; l++)
            for (int64_t j = 0; j < jn; j++) m[j] = xb[l * inner + j] > m[j] ? xb[l * inner + j] : m[j];
        for (int64_t l = 0; l < len; l++)
            for (int64_t j = 0; j < jn; j++) {
                float d = xb[l * inner + j] - m[j], e = k_expf(d);
                e = d < -87.3f ? 0.0f : e; // as k_row_exp_sum
                if (!is_log) yb[l * inner + j] = e;
                s[j] += e;
            }
        for (int64_t j = 0; j < jn; j++) f[j] = is_log ? (float)log(s[j]) : (float)(1.0 / s[j]);
        for (int64_t l = 0; l < len; l++)
            for (int64_t j = 0; j < jn; j++) {
                int64_t i = l * inner + j;
                yb[i] = is_log ? (xb[i] - m[j]) - f[j] : yb[i] * f[j];
            }
    }
}

void k_softmax_f32(float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int is_log) {
    // x, y are (outer, len, inner), softmax over len. The max is subtracted before
    // exp so that nothing overflows; the sum is in double.
    if (len == 0 || inner == 0) return;
    // over a strided axis a chunk of CH neighbouring columns goes side by side
    Softmax a = {y, x, len, inner, (inner + CH - 1) / CH, is_log};
    if (inner == 1) k_par_for(outer, outer * len, softmax_rows, &a);
    else k_par_for(outer * a.nch, outer * len * inner, softmax_columns, &a);
}

/* ---- Reduce ---- */

/* The iteration space after merging: kept and reduced axes (outermost first)
 * with their strides in x, and which layout the innermost axis gives. */
typedef struct {
    int nk, nr;
    int64_t kd[K_MAX_RANK], ks[K_MAX_RANK], rd[K_MAX_RANK], rs[K_MAX_RANK];
    int inner_reduced;    // the innermost axis is reduced: rd[nr - 1], stride 1
    int64_t inner;        // size of the innermost axis (reduced or kept)
    int64_t nout, nred;   // outputs; elements reduced into each
    int64_t nodo;         // iterations of the reduced odometer (all reduced axes but the inner one if reduced)
} RPlan;

static void plan_reduce(RPlan *p, const int64_t *dims, int rank, const int *reduce) {
    // merge: drop size-1 axes (they change neither the output order nor the
    // count) and fuse neighbours of the same kind, x being dense
    int64_t d[K_MAX_RANK], st[K_MAX_RANK];
    int red[K_MAX_RANK], n = 0;
    for (int k = 0; k < rank; k++) {
        if (dims[k] == 1) continue;
        if (n > 0 && red[n - 1] == (reduce[k] != 0)) {
            d[n - 1] *= dims[k];
            continue;
        }
        d[n] = dims[k], red[n] = reduce[k] != 0, n++;
    }
    for (int k = n - 1; k >= 0; k--) st[k] = k == n - 1 ? 1 : st[k + 1] * d[k + 1];
    p->nk = p->nr = 0;
    p->nout = p->nred = 1;
    for (int k = 0; k < n; k++) {
        if (red[k]) p->rd[p->nr] = d[k], p->rs[p->nr++] = st[k], p->nred *= d[k];
        else p->kd[p->nk] = d[k], p->ks[p->nk++] = st[k], p->nout *= d[k];
    }
    p->inner_reduced = n > 0 && red[n - 1];
    p->inner = n == 0 ? 1 : d[n - 1];
    if (n == 0) p->kd[0] = 1, p->ks[0] = 1, p->nk = 1; // a scalar: one kept axis of size 1
    p->nodo = 1;
    for (int k = 0; k < p->nr - (p->inner_reduced ? 1 : 0); k++) p->nodo *= p->rd[k];
}

/* The x offset of kept index o over the first nk kept axes. */
static int64_t kept_offset(const RPlan *p, int64_t o, int nk) {
    int64_t off = 0;
    for (int k = nk - 1; k >= 0; k--) off += o % p->kd[k] * p->ks[k], o /= p->kd[k];
    return off;
}

/* Steps the odometer over the first n reduced axes, keeping off in step. */
static void odo_step(const RPlan *p, int n, int64_t *idx, int64_t *off) {
    for (int k = n - 1; k >= 0; k--) {
        *off += p->rs[k];
        if (++idx[k] < p->rd[k]) return;
        *off -= p->rd[k] * p->rs[k];
        idx[k] = 0;
    }
}

/* What a reduction walk reads: y, x (of the dtype), the plan, the count. */
typedef struct {
    void *y;
    const void *x;
    const RPlan *p;
    double n_;
} RWalk;

/* One reduction walk, as two chunk functions NAME##_a and NAME##_b. STEP
 * folds element v into accumulator a (it may read y[o], the output being
 * reduced into); FINAL is the output value from a.
 * Layout A: the innermost axis is reduced, each output reduces contiguous runs.
 * Layout B: the innermost axis is kept, CH outputs accumulate side by side. */
#define WALK(NAME, T, ACC, INIT, STEP, FINAL)                                                   \
    static void NAME##_a(void *arg, int64_t lo, int64_t hi, int tid) {                          \
        const RWalk *w_ = arg;                                                                  \
        T *y = w_->y;                                                                           \
        const T *x = w_->x;                                                                     \
        const RPlan *p = w_->p;                                                                 \
        double n_ = w_->n_;                                                                     \
        (void)n_;                                                                               \
        int nodo_axes_ = p->nr - 1;                                                             \
        for (int64_t o = lo; o < hi; o++) {                                                     \
            const T *xb_ = x + kept_offset(p, o, p->nk);                                        \
            int64_t idx_[K_MAX_RANK] = {0}, roff_ = 0;                                          \
            ACC a = INIT;                                                                       \
            for (int64_t r_ = 0; r_ < p->nodo; r_++) {                                          \
                const T *xr_ = xb_ + roff_;                                                     \
                for (int64_t i_ = 0; i_ < p->inner; i_++) {                                     \
                    T v = xr_[i_];                                                              \
                    STEP;                                                                       \
                }                                                                               \
                odo_step(p, nodo_axes_, idx_, &roff_);                                          \
            }                                                                                   \
            y[o] = FINAL;                                                                       \
        }                                                                                       \
    }                                                                                           \
    static void NAME##_b(void *arg, int64_t lo, int64_t hi, int tid) {                          \
        const RWalk *w_ = arg;                                                                  \
        T *y = w_->y;                                                                           \
        const T *x = w_->x;                                                                     \
        const RPlan *p = w_->p;                                                                 \
        double n_ = w_->n_;                                                                     \
        (void)n_;                                                                               \
        int64_t nch_ = (p->inner + CH - 1) / CH;                                                \
        for (int64_t t_ = lo; t_ < hi; t_++) {                                                  \
            int64_t row_, j0_, jn_ = chunk_of(t_, nch_, p->inner, &row_, &j0_);                 \
            const T *xb_ = x + kept_offset(p, row_, p->nk - 1) + j0_;                           \
            int64_t o0_ = row_ * p->inner + j0_, idx_[K_MAX_RANK] = {0}, roff_ = 0;             \
            ACC acc_[CH];                                                                       \
            for (int64_t j = 0; j < jn_; j++) acc_[j] = INIT;                                   \
            for (int64_t r_ = 0; r_ < p->nodo; r_++) {                                          \
                const T *xr_ = xb_ + roff_;                                                     \
                for (int64_t j = 0; j < jn_; j++) {                                             \
                    int64_t o = o0_ + j;                                                        \
                    ACC a = acc_[j];                                                            \
                    T v = xr_[j];                                                               \
                    STEP;                                                                       \
                    acc_[j] = a;                                                                \
                    (void)o;                                                                    \
                }                                                                               \
                odo_step(p, p->nr, idx_, &roff_);                                               \
            }                                                                                   \
            for (int64_t j = 0; j < jn_; j++) {                                                 \
                int64_t o = o0_ + j;                                                            \
                ACC a = acc_[j];                                                                \
                y[o] = FINAL;                                                                   \
            }                                                                                   \
        }                                                                                       \
    }

/* Runs walk NAME (WALK) over the plan's outputs on the thread pool. */
#define RUN_WALK(NAME) run_walk(&w_, NAME##_a, NAME##_b)

static void run_walk(const RWalk *w, KParBody a, KParBody b) {
    const RPlan *p = w->p;
    int64_t work = p->nout * p->nred;
    if (p->inner_reduced) {
        k_par_for(p->nout, work, a, (void *)w);
    } else {
        int64_t rows = p->inner ? p->nout / p->inner : 0, nch = (p->inner + CH - 1) / CH;
        k_par_for(rows * nch, work, b, (void *)w);
    }
}

/* One reduce function per dtype. ACC is double for floats, uint64_t (wrapping)
 * for integers; ABS and SQ widen an element to ACC; TO_T converts a double
 * result (mean, L2, LogSumExp) back; LO / HI start Max / Min (what an empty
 * Max / Min gives, as the ONNX reference: -inf / +inf, or the integer limits).
 * Max and Min propagate NaN like numpy's maximum / minimum. LogSumExp is
 * max + log(sum(exp(x - max))) (two walks, the first leaving the max in y),
 * which agrees with the reference's log(sum(exp(x))) where that does not overflow. */
#define DEF_REDUCE(SUF, T, ACC, LO, HI, ABS, SQ, TO_T)                                          \
    WALK(sum_##SUF, T, ACC, 0, a += (ACC)v, (T)a)                                               \
    WALK(mean_##SUF, T, double, 0, a += (double)v, TO_T(n_ > 0 ? a / n_ : (double)NAN))         \
    WALK(max_##SUF, T, T, LO, a = v != v ? v : (v > a ? v : a), a)                              \
    WALK(min_##SUF, T, T, HI, a = v != v ? v : (v < a ? v : a), a)                              \
    WALK(prod_##SUF, T, ACC, 1, a *= (ACC)v, (T)a)                                              \
    WALK(l1_##SUF, T, ACC, 0, a += ABS(v), (T)a)                                                \
    WALK(l2_##SUF, T, ACC, 0, a += SQ(v), TO_T(sqrt((double)a)))                                \
    WALK(sumsq_##SUF, T, ACC, 0, a += SQ(v), (T)a)                                              \
    WALK(lse_##SUF, T, double, 0, a += exp((double)v - (double)y[o]),                           \
         isfinite((double)y[o]) ? TO_T((double)y[o] + log(a)) : y[o])                           \
    static void reduce_##SUF(T *y, const T *x, const RPlan *p, int kind) {                      \
        RWalk w_ = {y, x, p, (double)p->nred};                                                  \
        switch (kind) {                                                                         \
        case 0: RUN_WALK(sum_##SUF); break;                                                     \
        case 1: RUN_WALK(mean_##SUF); break;                                                    \
        case 2: RUN_WALK(max_##SUF); break;                                                     \
        case 3: RUN_WALK(min_##SUF); break;                                                     \
        case 4: RUN_WALK(prod_##SUF); break;                                                    \
        case 5: RUN_WALK(l1_##SUF); break;                                                      \
        case 6: RUN_WALK(l2_##SUF); break;                                                      \
        case 7: RUN_WALK(sumsq_##SUF); break;                                                   \
        default: /* the max into y, then the sum of exps over it */                             \
            RUN_WALK(max_##SUF);                                                                \
            RUN_WALK(lse_##SUF);                                                                \
            break;                                                                              \
        }                                                                                       \
    }

#define F_ABS(v) fabs((double)(v))
#define F_SQ(v) ((double)(v) * (double)(v))
#define I_ABS(v) ((v) < 0 ? 0 - (uint64_t)(v) : (uint64_t)(v))
#define U_ABS(v) ((uint64_t)(v))
#define I_SQ(v) ((uint64_t)(v) * (uint64_t)(v))
#define TO_F32(d) ((float)(d))
#define TO_F64(d) (d)
#define TO_I32(d) ((int32_t)sat_i64(d, INT32_MIN, INT32_MAX))
#define TO_I64(d) sat_i64(d, INT64_MIN, INT64_MAX)
#define TO_I8(d) ((int8_t)sat_i64(d, INT8_MIN, INT8_MAX))
#define TO_U8(d) ((uint8_t)sat_i64(d, 0, UINT8_MAX))

DEF_REDUCE(f32, float, double, -INFINITY, INFINITY, F_ABS, F_SQ, TO_F32)
DEF_REDUCE(f64, double, double, -INFINITY, INFINITY, F_ABS, F_SQ, TO_F64)
DEF_REDUCE(i32, int32_t, uint64_t, INT32_MIN, INT32_MAX, I_ABS, I_SQ, TO_I32)
DEF_REDUCE(i64, int64_t, uint64_t, INT64_MIN, INT64_MAX, I_ABS, I_SQ, TO_I64)
DEF_REDUCE(i8, int8_t, uint64_t, INT8_MIN, INT8_MAX, I_ABS, I_SQ, TO_I8)
DEF_REDUCE(u8, uint8_t, uint64_t, 0, UINT8_MAX, U_ABS, I_SQ, TO_U8)

void k_reduce(void *y, const void *x, const int64_t *dims, int rank, const int *reduce, int kind,
              int dtype) {
    RPlan p;
    plan_reduce(&p, dims, rank, reduce);
    if (p.nout == 0) return;
    switch (dtype) {
    case 1: reduce_f32(y, x, &p, kind); break;
    case 11: reduce_f64(y, x, &p, kind); break;
    case 6: reduce_i32(y, x, &p, kind); break;
    case 7: reduce_i64(y, x, &p, kind); break;
    case 3: reduce_i8(y, x, &p, kind); break;
    case 2: reduce_u8(y, x, &p, kind); break;
    }
}

/* ---- ArgMax / ArgMin ---- */

/* Like numpy: the first NaN wins (a NaN is above and below everything), or the
 * last one with select_last (the ONNX reference flips the axis). Otherwise the
 * first extreme, or the last of equal extremes with select_last. */
typedef struct {
    void *y;
    const void *x;
    int64_t len, inner;
    int is_max, last, exclusive, reverse;
} Scan;

/* Runs body (ArgMax/ArgMin, CumSum) over a's chunks of CH neighbouring
 * columns: x is (outer, len, inner), each chunk len deep. */
static void scan_par(Scan *a, int64_t outer, KParBody body) {
    k_par_for(outer * ((a->inner + CH - 1) / CH), outer * a->len * a->inner, body, a);
}

#define DEF_ARG(SUF, T)                                                                         \
    static void arg_##SUF(void *arg, int64_t lo, int64_t hi, int tid) {                         \
        const Scan *a = arg;                                                                    \
        int64_t *y = a->y;                                                                      \
        const T *x = a->x;                                                                      \
        int64_t len = a->len, inner = a->inner, nch = (inner + CH - 1) / CH;                    \
        int is_max = a->is_max, last = a->last;                                                 \
        for (int64_t t = lo; t < hi; t++) {                                                     \
            int64_t o, j0, jn = chunk_of(t, nch, inner, &o, &j0);                               \
            const T *xb = x + o * len * inner + j0;                                             \
            int64_t bi[CH];                                                                     \
            T bv[CH];                                                                           \
            for (int64_t j = 0; j < jn; j++) bi[j] = 0, bv[j] = len > 0 ? xb[j] : 0;            \
            for (int64_t l = 1; l < len; l++)                                                   \
                for (int64_t j = 0; j < jn; j++) {                                              \
                    T v = xb[l * inner + j], b = bv[j];                                         \
                    int take;                                                                   \
                    if (b != b) take = last && v != v;                                          \
                    else if (v != v) take = 1;                                                  \
                    else take = (is_max ? v > b : v < b) || (last && v == b);                   \
                    if (take) bi[j] = l, bv[j] = v;                                             \
                }                                                                               \
            for (int64_t j = 0; j < jn; j++) y[o * inner + j0 + j] = bi[j];                     \
        }                                                                                       \
    }
DEF_ARG(f32, float)
DEF_ARG(f64, double)
DEF_ARG(i32, int32_t)
DEF_ARG(i64, int64_t)
DEF_ARG(i8, int8_t)
DEF_ARG(u8, uint8_t)

void k_argreduce(int64_t *y, const void *x, int64_t outer, int64_t len, int64_t inner, int is_max,
                 int select_last, int dtype) {
    Scan a = {.y = y, .x = x, .len = len, .inner = inner, .is_max = is_max, .last = select_last};
    switch (dtype) {
    case 1: scan_par(&a, outer, arg_f32); break;
    case 11: scan_par(&a, outer, arg_f64); break;
    case 6: scan_par(&a, outer, arg_i32); break;
    case 7: scan_par(&a, outer, arg_i64); break;
    case 3: scan_par(&a, outer, arg_i8); break;
    case 2: scan_par(&a, outer, arg_u8); break;
    }
}

/* ---- CumSum ---- */

/* Running sums in ACC (double for floats, wrapping uint64_t for integers),
 * CH columns side by side; exclusive writes the sum before adding. */
#define DEF_CUMSUM(SUF, T, ACC)                                                                 \
    static void cumsum_##SUF(void *arg, int64_t lo, int64_t hi, int tid) {                      \
        const Scan *a = arg;                                                                    \
        T *y = a->y;                                                                            \
        const T *x = a->x;                                                                      \
        int64_t len = a->len, inner = a->inner, nch = (inner + CH - 1) / CH;                    \
        int exclusive = a->exclusive, reverse = a->reverse;                                     \
        for (int64_t t = lo; t < hi; t++) {                                                     \
            int64_t o, j0, jn = chunk_of(t, nch, inner, &o, &j0);                               \
            const T *xb = x + o * len * inner + j0;                                             \
            T *yb = y + o * len * inner + j0;                                                   \
            ACC s[CH];                                                                          \
            for (int64_t j = 0; j < jn; j++) s[j] = 0;                                          \
            for (int64_t q = 0; q < len; q++) {                                                 \
                int64_t l = reverse ? len - 1 - q : q;                                          \
                for (int64_t j = 0; j < jn; j++) {                                              \
                    T v = xb[l * inner + j];                                                    \
                    if (exclusive) yb[l * inner + j] = (T)s[j];                                 \
                    s[j] += (ACC)v;                                                             \
                    if (!exclusive) yb[l * inner + j] = (T)s[j];                                \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }
DEF_CUMSUM(f32, float, double)
DEF_CUMSUM(f64, double, double)
DEF_CUMSUM(i32, int32_t, uint64_t)
DEF_CUMSUM(i64, int64_t, uint64_t)

void k_cumsum(void *y, const void *x, int64_t outer, int64_t len, int64_t inner, int exclusive,
              int reverse, int dtype) {
    Scan a = {.y = y, .x = x, .len = len, .inner = inner, .exclusive = exclusive, .reverse = reverse};
    switch (dtype) {
    case 1: scan_par(&a, outer, cumsum_f32); break;
    case 11: scan_par(&a, outer, cumsum_f64); break;
    case 6: scan_par(&a, outer, cumsum_i32); break;
    case 7: scan_par(&a, outer, cumsum_i64); break;
    }
}
