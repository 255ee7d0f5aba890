/* Indexing kernels: Gather, GatherElements and ScatterND. Indices come from
 * data, so these are the kernels that can meet bad input at run time: every
 * index is checked (negative ones wrap once, as ONNX says) before anything is
 * written, and an index out of range returns -1 with a k_fail message that
 * names the index, where it was found and the valid range. Gathers move bytes
 * and serve every dtype; ScatterND's reductions need typed elements. Work is
 * split over the thread pool only where threads write disjoint elements, so the
 * thread count never changes a result. */
#include "kernels.h"

#include <string.h>


/* Index t of an int32 or int64 index array. */
static int64_t idx_at(const void *idx, int is_i32, int64_t t) {
    return is_i32 ? (int64_t)((const int32_t *)idx)[t] : ((const int64_t *)idx)[t];
}

/* Wraps a negative index; -1 (after k_fail) when it is outside [-len, len). */
static int check_index(const char *op, int64_t *i, int64_t len, int64_t pos) {
    int64_t v = *i;
    if (v < -len || v >= len)
        return k_fail("%s: index %lld at position %lld is out of range: valid indices are %lld to %lld",
                      op, (long long)v, (long long)pos, (long long)-len, (long long)(len - 1));
    if (v < 0) *i = v + len;
    return 0;
}

typedef struct {
    char *y;
    const char *x;
    const void *idx;
    int idx_is_i32;
    int64_t axis_len, nidx;
    size_t row;
} Gather;

/* Rows [lo, hi) of Gather's [outer * nidx] rows of `row` bytes. */
static void gather_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Gather *a = arg;
    for (int64_t r = lo; r < hi; r++) {
        int64_t o = r / a->nidx, i = idx_at(a->idx, a->idx_is_i32, r % a->nidx);
        if (i < 0) i += a->axis_len;
        memcpy(a->y + r * a->row, a->x + (o * a->axis_len + i) * a->row, a->row);
    }
}

int k_gather(void *y, const void *x, const void *idx, int idx_is_i32, int64_t outer, int64_t axis_len,
             int64_t nidx, int64_t inner, int esize) {
    // check every index first so that a failure leaves no half-written output behind
    for (int64_t t = 0; t < nidx; t++) {
        int64_t i = idx_at(idx, idx_is_i32, t);
        if (check_index("Gather", &i, axis_len, t) < 0) return -1;
    }
    Gather a = {y, x, idx, idx_is_i32, axis_len, nidx, (size_t)(inner * esize)};
    int64_t n = outer * nidx;
    k_par_for(n, n * (int64_t)a.row / 4, gather_rows, &a);
    return 0;
}

typedef struct {
    char *y;
    const char *x;
    const void *idx;
    int idx_is_i32;
    const int64_t *dims, *xs;
    int rank, axis, esize;
    int64_t cols, len;
} GatherElements;

static void gather_elements_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const GatherElements *a = arg;
    const int64_t *dims = a->dims, *xs = a->xs;
    int rank = a->rank, axis = a->axis, esize = a->esize;
    int64_t cols = a->cols, len = a->len;
    for (int64_t r = lo; r < hi; r++) {
        int64_t base = 0, rem = r;
        for (int k = rank - 2; k >= 0; k--) {
            int64_t c = rem % dims[k];
            rem /= dims[k];
            if (k != axis) base += c * xs[k];
        }
        for (int64_t j = 0; j < cols; j++) {
            int64_t t = r * cols + j, i = idx_at(a->idx, a->idx_is_i32, t);
            if (i < 0) i += len;
            int64_t off = base + i * xs[axis] + (axis == rank - 1 ? 0 : j);
            memcpy(a->y + t * esize, a->x + off * esize, (size_t)esize);
        }
    }
}

int k_gather_elements(void *y, const void *x, const int64_t *x_dims, const void *idx, int idx_is_i32,
                      const int64_t *dims, int rank, int axis, int esize) {
    int64_t n = 1, xs[K_MAX_RANK];
    for (int k = rank - 1; k >= 0; k--) {
        n *= dims[k];
        xs[k] = k == rank - 1 ? 1 : xs[k + 1] * x_dims[k + 1];
    }
    if (n == 0) return 0;
    int64_t len = x_dims[axis];
    for (int64_t t = 0; t < n; t++) {
        int64_t i = idx_at(idx, idx_is_i32, t);
        if (check_index("GatherElements", &i, len, t) < 0) return -1;
    }
    // rows along the last dim; the source offset of a row's other coordinates is computed once
    int64_t cols = rank > 0 ? dims[rank - 1] : 1, rows = n / cols;
    GatherElements a = {y, x, idx, idx_is_i32, dims, xs, rank, axis, esize, cols, len};
    k_par_for(rows, n * esize / 4, gather_elements_rows, &a);
    return 0;
}

/* ---- ScatterND ---- */

/* Bytes per element of an ONNX dtype number; 0 for one loom does not know. */
static int dtype_size(int dtype) {
    switch (dtype) {
    case 2: case 3: case 9: return 1;         // uint8, int8, bool
    case 4: case 5: case 10: case 16: return 2; // uint16, int16, float16, bfloat16
    case 1: case 6: case 12: return 4;        // float, int32, uint32
    case 7: case 11: case 13: return 8;       // int64, double, uint64
    default: return 0;
    }
}

/* Combines one update slice s into d over elements [e0, e1). Add and mul run
 * in A: the type itself for floats, uint64_t for integers, so that integer
 * overflow wraps like numpy instead of being undefined. Max and min propagate
 * NaN like numpy's maximum / minimum (the ONNX reference). */
#define SCATTER_T(T, A)                                                                        \
    static void scatter_##T(T *d, const T *s, int64_t e0, int64_t e1, int red) {              \
        switch (red) {                                                                         \
        case 1: for (int64_t e = e0; e < e1; e++) d[e] = (T)((A)d[e] + (A)s[e]); break;        \
        case 2: for (int64_t e = e0; e < e1; e++) d[e] = (T)((A)d[e] * (A)s[e]); break;        \
        case 3:                                                                                \
            for (int64_t e = e0; e < e1; e++)                                                  \
                d[e] = s[e] != s[e] ? s[e] : s[e] > d[e] ? s[e] : d[e];                        \
            break;                                                                             \
        default:                                                                               \
            for (int64_t e = e0; e < e1; e++)                                                  \
                d[e] = s[e] != s[e] ? s[e] : s[e] < d[e] ? s[e] : d[e];                        \
            break;                                                                             \
        }                                                                                      \
    }
SCATTER_T(float, float)
SCATTER_T(double, double)
SCATTER_T(int8_t, uint64_t)
SCATTER_T(uint8_t, uint64_t)
SCATTER_T(int16_t, uint64_t)
SCATTER_T(uint16_t, uint64_t)
SCATTER_T(int32_t, uint64_t)
SCATTER_T(uint32_t, uint64_t)
SCATTER_T(int64_t, uint64_t)
SCATTER_T(uint64_t, uint64_t)

/* The element offset of update q's slice, from the idx tuple (checked before). */
static int64_t slice_offset(const int64_t *data_dims, int rank, const int64_t *idx, int64_t q, int k) {
    int64_t off = 0;
    for (int j = 0; j < k; j++) {
        int64_t i = idx[q * k + j];
        off = off * data_dims[j] + (i < 0 ? i + data_dims[j] : i);
    }
    for (int j = k; j < rank; j++) off *= data_dims[j];
    return off;
}

typedef struct {
    char *y;
    const char *u;
    const int64_t *data_dims, *idx;
    int64_t n_updates, slice;
    int rank, k, es, reduction, dtype;
} Scatter;

/* Elements [e0, e1) of every slice, all updates applied in order. */
static void scatter_elems(void *arg, int64_t e0, int64_t e1, int tid)
{
    const Scatter *a = arg;
    for (int64_t q = 0; q < a->n_updates; q++) {
        int64_t off = slice_offset(a->data_dims, a->rank, a->idx, q, a->k);
        const char *u = a->u + q * a->slice * a->es;
        switch (a->dtype) {
#define CASE(N, T) case N: scatter_##T((T *)a->y + off, (const T *)u, e0, e1, a->reduction); break;
        CASE(1, float) CASE(11, double) CASE(3, int8_t) CASE(2, uint8_t) CASE(5, int16_t)
        CASE(4, uint16_t) CASE(6, int32_t) CASE(12, uint32_t) CASE(7, int64_t) CASE(13, uint64_t)
#undef CASE
        }
    }
}

int k_scatternd(void *y, const int64_t *data_dims, int rank, const int64_t *idx, int64_t n_updates,
                int k, const void *updates, int64_t slice, int reduction, int dtype) {
    int es = dtype_size(dtype);
    if (es == 0) return k_fail("ScatterND: unsupported dtype %d", dtype);
    int typed = dtype == 1 || dtype == 11 || dtype == 2 || dtype == 3 || dtype == 4 || dtype == 5 ||
                dtype == 6 || dtype == 12 || dtype == 7 || dtype == 13;
    if (reduction != 0 && !typed)
        return k_fail("ScatterND: reduction %d is not supported for dtype %d", reduction, dtype);
    if (k < 1 || k > rank) return k_fail("ScatterND: index tuples of length %d for data of rank %d", k, rank);
    for (int64_t q = 0; q < n_updates; q++)
        for (int j = 0; j < k; j++) {
            int64_t i = idx[q * k + j];
            if (i < -data_dims[j] || i >= data_dims[j])
                return k_fail("ScatterND: index %lld (update %lld, coordinate %d) is out of range: valid "
                              "indices are %lld to %lld",
                              (long long)i, (long long)q, j, (long long)-data_dims[j],
                              (long long)(data_dims[j] - 1));
        }
    if (n_updates == 0 || slice == 0) return 0;
    char *yb = y;
    const char *ub = updates;
    if (reduction == 0) {
        // in update order, so that duplicate indices give the last update every time
        for (int64_t q = 0; q < n_updates; q++)
            memcpy(yb + slice_offset(data_dims, rank, idx, q, k) * es, ub + q * slice * es,
                   (size_t)(slice * es));
        return 0;
    }
    // Reductions: updates may hit the same slice, so threads split the slice
    // elements instead, each applying all updates in order to its own range.
    // Offsets are recomputed per chunk: the kernel has no scratch to keep them.
    Scatter a = {yb, ub, data_dims, idx, n_updates, slice, rank, k, es, reduction, dtype};
    int64_t work = slice >= 64 ? n_updates * slice * es / 4 : 0;
    k_par_split(slice, work >= K_PAR_WORK ? (slice + 1023) / 1024 : 1, 0, scatter_elems, &a);
    return 0;
}
