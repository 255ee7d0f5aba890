/* Data movement kernels: strided n-d copy (Transpose, Slice, Expand, Tile,
 * Concat and Split pieces), fill, Pad and Trilu. They move bytes and never
 * look at values, so one kernel serves every dtype and results are exact.
 *
 * k_copy_nd is the workhorse. It first simplifies the iteration space (drops
 * size-1 dims, merges neighbouring dims that are contiguous in both dst and
 * src), so that a copy of contiguous trailing dims becomes one long memcpy run
 * per outer index. What is left is walked as outer rows by an odometer, with
 * a typed inner loop for the innermost dim; a transpose-like layout (dst
 * contiguous inside, src contiguous in another dim) is copied in square tiles
 * so that both sides stay in cache. Large copies split the outer rows into
 * chunks over the thread pool (kpar.c); a copy has no reduction, so the
 * thread count cannot change a bit. */
#include "kernels.h"

#include <string.h>

/* Below this many bytes a copy is not worth waking threads for. */
/* Tile edge (elements) for transposes: 32x32 of 8-byte elements is 8 KiB per side. */
#define TILE 32

/* ---- k_copy_nd ---- */

typedef struct {
    int rank;
    int64_t dims[K_MAX_RANK], ds[K_MAX_RANK], ss[K_MAX_RANK];
} Iter;

/* Drops size-1 dims and merges dim k into k+1 when both sides step over k+1 as
 * one block; returns 0 when there is nothing to copy. */
static int simplify(Iter *it, const int64_t *dst_stride, const int64_t *src_stride,
                    const int64_t *dims, int rank) {
    it->rank = 0;
    for (int k = 0; k < rank; k++) {
        if (dims[k] == 0) return 0;
        if (dims[k] == 1) continue;
        int r = it->rank;
        it->dims[r] = dims[k], it->ds[r] = dst_stride[k], it->ss[r] = src_stride[k];
        it->rank++;
    }
    // merge from the inside out so that a long contiguous tail collapses fully
    int r = it->rank;
    for (int k = r - 2; k >= 0; k--) {
        if (it->ds[k] == it->ds[k + 1] * it->dims[k + 1] &&
            it->ss[k] == it->ss[k + 1] * it->dims[k + 1]) {
            it->dims[k] *= it->dims[k + 1];
            it->ds[k] = it->ds[k + 1], it->ss[k] = it->ss[k + 1];
            for (int j = k + 1; j < r - 1; j++)
                it->dims[j] = it->dims[j + 1], it->ds[j] = it->ds[j + 1], it->ss[j] = it->ss[j + 1];
            r--;
        }
    }
    it->rank = r;
    return 1;
}

/* One innermost run of n elements; strides in elements. Typed loops let the
 * compiler vectorize the common cases (contiguous, broadcast, gather). */
#define ROW_LOOP(T)                                                                   \
    do {                                                                              \
        T *d_ = (T *)dst;                                                             \
        const T *s_ = (const T *)src;                                                 \
        if (ss == 0) {                                                                \
            T v_ = *s_;                                                               \
            for (int64_t i = 0; i < n; i++) d_[i * ds] = v_;                          \
        } else {                                                                      \
            for (int64_t i = 0; i < n; i++) d_[i * ds] = s_[i * ss];                  \
        }                                                                             \
    } while (0)

static void copy_row(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, int esize) {
    if (ds == 1 && ss == 1) {
        memcpy(dst, src, (size_t)(n * esize));
        return;
    }
    switch (esize) {
    case 1: ROW_LOOP(uint8_t); break;
    case 2: ROW_LOOP(uint16_t); break;
    case 4: ROW_LOOP(uint32_t); break;
    case 8: ROW_LOOP(uint64_t); break;
    default:
        for (int64_t i = 0; i < n; i++) memcpy(dst + i * ds * esize, src + i * ss * esize, (size_t)esize);
    }
}

/* A tile of the 2-d copy dst[a*dsa + b] = src[a + b*ssb], a < na, b < nb. */
#define TILE_LOOP(T)                                                                  \
    do {                                                                              \
        T *d_ = (T *)dst;                                                             \
        const T *s_ = (const T *)src;                                                 \
        for (int64_t a0 = 0; a0 < na; a0 += TILE)                                     \
            for (int64_t b0 = 0; b0 < nb; b0 += TILE) {                               \
                int64_t ae = a0 + TILE < na ? a0 + TILE : na;                         \
                int64_t be = b0 + TILE < nb ? b0 + TILE : nb;                         \
                for (int64_t a = a0; a < ae; a++)                                     \
                    for (int64_t b = b0; b < be; b++) d_[a * dsa + b] = s_[a + b * ssb]; \
            }                                                                         \
    } while (0)

static void copy_tile2d(char *dst, int64_t dsa, const char *src, int64_t ssb, int64_t na,
                        int64_t nb, int esize) {
    switch (esize) {
    case 1: TILE_LOOP(uint8_t); break;
    case 2: TILE_LOOP(uint16_t); break;
    case 4: TILE_LOOP(uint32_t); break;
    default: TILE_LOOP(uint64_t); break; // callers only tile esize 1, 2, 4, 8
    }
}

/* A simplified copy: its outer dims (od, with strides ods and oss), the
 * innermost dim in and, when tiling a transpose, the dim p. */
typedef struct {
    char *dst;
    const char *src;
    const Iter *it;
    const int64_t *od, *ods, *oss;
    int no, p, in, esize;
} Copy;

/* Outer rows [lo, hi): decompose the first outer index, then step an odometer. */
static void copy_rows(void *arg, int64_t lo, int64_t hi, int tid) {
    const Copy *c = arg;
    const Iter *it = c->it;
    const int64_t *od = c->od, *ods = c->ods, *oss = c->oss;
    int no = c->no, p = c->p, in = c->in, esize = c->esize;
    int64_t idx[K_MAX_RANK], doff = 0, soff = 0, rem = lo;
    for (int k = no - 1; k >= 0; k--) {
        idx[k] = rem % od[k], rem /= od[k];
        doff += idx[k] * ods[k], soff += idx[k] * oss[k];
    }
    for (int64_t o = lo; o < hi; o++) {
        char *d = c->dst + doff * esize;
        const char *s = c->src + soff * esize;
        if (p >= 0)
            copy_tile2d(d, it->ds[p], s, it->ss[in], it->dims[p], it->dims[in], esize);
        else
            copy_row(d, it->ds[in], s, it->ss[in], it->dims[in], esize);
        for (int k = no - 1; k >= 0; k--) {
            doff += ods[k], soff += oss[k];
            if (++idx[k] < od[k]) break;
            doff -= od[k] * ods[k], soff -= od[k] * oss[k];
            idx[k] = 0;
        }
    }
}

void k_copy_nd(void *dst, const int64_t *dst_stride, const void *src, const int64_t *src_stride,
               const int64_t *dims, int rank, int esize) {
    Iter it;
    if (!simplify(&it, dst_stride, src_stride, dims, rank)) return;
    if (it.rank == 0) {
        memcpy(dst, src, (size_t)esize);
        return;
    }
    int r = it.rank, in = r - 1;
    // a transpose: dst contiguous innermost, src contiguous along another dim p
    int p = -1;
    if (it.ds[in] == 1 && it.ss[in] != 1 && (esize == 1 || esize == 2 || esize == 4 || esize == 8))
        for (int k = in - 1; k >= 0; k--)
            if (it.ss[k] == 1) {
                p = k;
                break;
            }
    // the outer dims: every dim but the innermost (and p when tiling)
    int64_t od[K_MAX_RANK], ods[K_MAX_RANK], oss[K_MAX_RANK], nouter = 1;
    int no = 0;
    for (int k = 0; k < in; k++) {
        if (k == p) continue;
        od[no] = it.dims[k], ods[no] = it.ds[k], oss[no] = it.ss[k];
        nouter *= it.dims[k];
        no++;
    }
    int64_t inner = it.dims[in] * (p >= 0 ? it.dims[p] : 1);
    Copy c = {dst, src, &it, od, ods, oss, no, p, in, esize};
    k_par_for(nouter, nouter * inner * esize / 4, copy_rows, &c);
}

/* ---- k_fill ---- */

/* Fill without threads, for short runs inside other kernels. */
static void fill_run(char *dst, const void *value, int64_t n, int esize) {
    if (!value) { // a missing Pad value means zero
        memset(dst, 0, (size_t)(n * esize));
        return;
    }
    switch (esize) {
    case 1: memset(dst, *(const uint8_t *)value, (size_t)n); break;
#define FILL_CASE(N, T)                                   \
    case N: {                                             \
        T v_;                                             \
        memcpy(&v_, value, sizeof v_);                    \
        T *d_ = (T *)dst;                                 \
        for (int64_t i = 0; i < n; i++) d_[i] = v_;       \
        break;                                            \
    }
    FILL_CASE(2, uint16_t)
    FILL_CASE(4, uint32_t)
    FILL_CASE(8, uint64_t)
#undef FILL_CASE
    default:
        for (int64_t i = 0; i < n; i++) memcpy(dst + i * esize, value, (size_t)esize);
    }
}

typedef struct {
    char *dst;
    const void *value;
    int esize;
} Fill;

static void fill_elems(void *arg, int64_t lo, int64_t hi, int tid) {
    const Fill *f = arg;
    fill_run(f->dst + lo * f->esize, f->value, hi - lo, f->esize);
}

void k_fill(void *dst, const void *value, int64_t n, int esize) {
    if (n <= 0) return;
    Fill f = {dst, value, esize};
    k_par_for(n, n * esize / 4, fill_elems, &f);
}

/* ---- k_pad ---- */

/* Negative pads crop first and the remaining positive pads then pad the
 * cropped array (onnxruntime's reading; the ONNX reference's np.pad refuses
 * negative pads). So per axis the source is the window [lo, lo + n) of x.
 * Returns the x coordinate for output coordinate o, or -1 for the constant. */
static int64_t pad_map(int64_t o, int64_t before, int64_t lo, int64_t n, int mode) {
    int64_t j = o - before;
    if (j >= 0 && j < n) return lo + j;
    if (mode == 0 || n <= 0) return -1; // nothing to reflect, repeat or wrap: use the value
    if (mode == 1) {
        // numpy's repeated reflection is periodic with period 2(n-1)
        if (n == 1) return lo;
        int64_t per = 2 * (n - 1);
        j %= per;
        if (j < 0) j += per;
        if (j >= n) j = per - j;
    } else if (mode == 2) {
        j = j < 0 ? 0 : n - 1;
    } else {
        j %= n;
        if (j < 0) j += n;
    }
    return lo + j;
}

typedef struct {
    char *y;
    const char *x;
    const int64_t *out, *before, *lo, *n, *xs;
    int last, mode, esize;
    const void *value;
} Pad;

/* Output rows [r0, r1) along the last axis. */
static void pad_rows(void *arg, int64_t r0, int64_t r1, int tid) {
    const Pad *a = arg;
    const int64_t *out = a->out, *before = a->before, *lo = a->lo, *n = a->n, *xs = a->xs;
    int last = a->last, mode = a->mode, esize = a->esize;
    const void *value = a->value;
    int64_t cols = out[last];
    for (int64_t r = r0; r < r1; r++) {
        char *yr = a->y + r * cols * esize;
        // source row: map each outer coordinate; one constant coordinate makes the row constant
        int64_t soff = 0, rem = r;
        int constant = 0;
        for (int k = last - 1; k >= 0; k--) {
            int64_t o = rem % out[k];
            rem /= out[k];
            int64_t j = pad_map(o, before[k], lo[k], n[k], mode);
            if (j < 0) constant = 1;
            else soff += j * xs[k];
        }
        if (constant) {
            fill_run(yr, value, cols, esize);
            continue;
        }
        const char *xr = a->x + soff * esize;
        // the middle of the row is one memcpy; only the pads map element by element
        int64_t mid0 = before[last], mid1 = before[last] + n[last];
        if (mid1 > cols) mid1 = cols;
        if (mid0 > mid1) mid0 = mid1;
        for (int64_t o = 0; o < cols; o++) {
            if (o == mid0 && mid1 > mid0) {
                memcpy(yr + o * esize, xr + lo[last] * esize, (size_t)((mid1 - mid0) * esize));
                o = mid1 - 1;
                continue;
            }
            int64_t j = pad_map(o, before[last], lo[last], n[last], mode);
            if (j < 0) fill_run(yr + o * esize, value, 1, esize);
            else memcpy(yr + o * esize, xr + j * esize, (size_t)esize);
        }
    }
}

void k_pad(void *y, const void *x, const int64_t *in_dims, int rank, const int64_t *pads, int mode,
           const void *value, int esize) {
    int64_t out[K_MAX_RANK], before[K_MAX_RANK], lo[K_MAX_RANK], n[K_MAX_RANK], xs[K_MAX_RANK];
    int64_t rows = 1, total = 1;
    for (int k = rank - 1; k >= 0; k--) {
        int64_t pb = pads[k], pe = pads[rank + k];
        out[k] = in_dims[k] + pb + pe;
        before[k] = pb > 0 ? pb : 0;
        lo[k] = pb < 0 ? -pb : 0;
        n[k] = in_dims[k] + (pb < 0 ? pb : 0) + (pe < 0 ? pe : 0);
        xs[k] = k == rank - 1 ? 1 : xs[k + 1] * in_dims[k + 1];
        if (k < rank - 1) rows *= out[k];
        total *= out[k];
    }
    if (total <= 0) return;
    if (rank == 0) {
        memcpy(y, x, (size_t)esize);
        return;
    }
    Pad a = {y, x, out, before, lo, n, xs, rank - 1, mode, esize, value};
    k_par_for(rows, total * esize / 4, pad_rows, &a);
}

/* ---- k_trilu ---- */

typedef struct {
    char *y;
    const char *x;
    int64_t rows, cols, k;
    int upper, esize;
} Trilu;

static void trilu_rows(void *arg, int64_t r0, int64_t r1, int tid) {
    const Trilu *a = arg;
    int64_t rows = a->rows, cols = a->cols, k = a->k;
    int upper = a->upper, esize = a->esize;
    const void *x = a->x;
    void *y = a->y;
    for (int64_t r = r0; r < r1; r++) {
        int64_t i = r % rows;
        char *yr = (char *)y + r * cols * esize;
        const char *xr = (const char *)x + r * cols * esize;
        // upper keeps j >= i + k; lower keeps j <= i + k, i.e. j < i + k + 1
        int64_t cut = upper ? i + k : i + k + 1;
        cut = cut < 0 ? 0 : cut > cols ? cols : cut;
        int64_t keep0 = upper ? cut : 0, keep1 = upper ? cols : cut;
        if (yr != xr && keep1 > keep0)
            memcpy(yr + keep0 * esize, xr + keep0 * esize, (size_t)((keep1 - keep0) * esize));
        if (upper) memset(yr, 0, (size_t)(cut * esize));
        else memset(yr + cut * esize, 0, (size_t)((cols - cut) * esize));
    }
}

void k_trilu(void *y, const void *x, int64_t batch, int64_t rows, int64_t cols, int64_t k, int upper,
             int esize) {
    // clamp k so that i + k cannot overflow; beyond +-(rows + cols) nothing changes
    int64_t lim = rows + cols;
    if (k > lim) k = lim;
    if (k < -lim) k = -lim;
    Trilu a = {y, x, rows, cols, k, upper, esize};
    k_par_for(batch * rows, batch * rows * cols * esize / 4, trilu_rows, &a);
}
