/* The cpu softmax, reduction and scan kernels (kreduce.c) against references
 * written plainly here: every Reduce kind on every dtype over random shapes
 * (rank 0 to 5, size-1 and zero-size axes) and random axis sets, empty
 * reductions, NaN propagation, Softmax / LogSoftmax over the first, a middle
 * and the last axis with large and -inf inputs, ArgMax / ArgMin with
 * select_last_index and NaNs, CumSum exclusive / reverse. Float32 tolerance
 * |a - b| / (|b| + 1) < 1e-5; integers exact; results must not depend on the
 * thread count. */
#include "check.h"
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = 0x853c49e6748fea9bull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}
static int64_t rnd_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }
static double rnd_u(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

/* Equal (also both NaN or the same infinity), or within the normalized tolerance. */
static int near(double a, double b, double tol) {
    if (a == b || (a != a && b != b)) return 1;
    return fabs(a - b) / (fabs(b) + 1) < tol;
}

enum { F32 = 1, U8 = 2, I8 = 3, I32 = 6, I64 = 7, F64 = 11 };
static const int dtypes[] = {F32, F64, I32, I64, I8, U8};
static int dsize(int dt) { return dt == F32 || dt == I32 ? 4 : dt == F64 || dt == I64 ? 8 : 1; }
static int is_float(int dt) { return dt == F32 || dt == F64; }

static double get(const void *p, int dt, int64_t i) {
    switch (dt) {
    case F32: return ((const float *)p)[i];
    case F64: return ((const double *)p)[i];
    case I32: return ((const int32_t *)p)[i];
    case I64: return (double)((const int64_t *)p)[i];
    case I8: return ((const int8_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}
static int64_t geti(const void *p, int dt, int64_t i) {
    switch (dt) {
    case I32: return ((const int32_t *)p)[i];
    case I64: return ((const int64_t *)p)[i];
    case I8: return ((const int8_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}
static void put(void *p, int dt, int64_t i, double v) {
    switch (dt) {
    case F32: ((float *)p)[i] = (float)v; break;
    case F64: ((double *)p)[i] = v; break;
    case I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case I64: ((int64_t *)p)[i] = (int64_t)v; break;
    case I8: ((int8_t *)p)[i] = (int8_t)v; break;
    default: ((uint8_t *)p)[i] = (uint8_t)v; break;
    }
}
/* An integer wrapped to the dtype's width, as the kernel's (T) cast does. */
static int64_t wrap(int dt, uint64_t v) {
    switch (dt) {
    case I32: return (int32_t)(uint32_t)v;
    case I8: return (int8_t)(uint8_t)v;
    case U8: return (uint8_t)v;
    default: return (int64_t)v;
    }
}
static double lowest(int dt) {
    return is_float(dt) ? -INFINITY : dt == I32 ? INT32_MIN : dt == I64 ? (double)INT64_MIN : dt == I8 ? -128 : 0;
}
static double highest(int dt) {
    return is_float(dt) ? INFINITY : dt == I32 ? INT32_MAX : dt == I64 ? (double)INT64_MAX : dt == I8 ? 127 : 255;
}

/* Reference Reduce: for each output, every input element whose kept
 * coordinates match, visited in any order; floats in double. Returns the
 * expected value (as double; integers exactly representable in the tests). */
static double ref_reduce_one(const void *x, int dt, const int64_t *dims, int rank, const int *red,
                             int64_t out, int kind) {
    int64_t n = 1, cnt = 0, odims[K_MAX_RANK], no = 0;
    for (int k = 0; k < rank; k++) {
        n *= dims[k];
        if (!red[k]) odims[no++] = dims[k];
    }
    int64_t oc[K_MAX_RANK];
    for (int k = (int)no - 1; k >= 0; k--) oc[k] = out % odims[k], out /= odims[k];
    double s = 0, m = lowest(dt), mn = highest(dt), prod = 1;
    uint64_t is = 0, iprod = 1, iabs = 0, isq = 0;
    int nan = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, match = 1, q = no;
        for (int k = rank - 1; k >= 0; k--) {
            int64_t c = rem % dims[k];
            rem /= dims[k];
            if (!red[k] && c != oc[--q]) match = 0;
        }
        if (!match) continue;
        double v = get(x, dt, i);
        cnt++;
        if (v != v) nan = 1;
        s += v, prod *= v;
        if (v > m) m = v;
        if (v < mn) mn = v;
        if (!is_float(dt)) {
            int64_t iv = geti(x, dt, i);
            is += (uint64_t)iv, iprod *= (uint64_t)iv, isq += (uint64_t)iv * (uint64_t)iv;
            iabs += iv < 0 ? (uint64_t)0 - (uint64_t)iv : (uint64_t)iv;
        }
    }
    double l1 = 0, sq = 0, se = 0;
    // second pass for the sums of |x|, x^2 and exp(x)
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, match = 1, q = no;
        for (int k = rank - 1; k >= 0; k--) {
            int64_t c = rem % dims[k];
            rem /= dims[k];
            if (!red[k] && c != oc[--q]) match = 0;
        }
        if (!match) continue;
        double v = get(x, dt, i);
        l1 += fabs(v), sq += v * v, se += exp(v);
    }
    if (nan && (kind == 2 || kind == 3 || kind == 8)) return NAN;
    if (is_float(dt)) {
        switch (kind) {
        case 0: return s;
        case 1: return cnt ? s / (double)cnt : NAN;
        case 2: return m;
        case 3: return mn;
        case 4: return prod;
        case 5: return l1;
        case 6: return sqrt(sq);
        case 7: return sq;
        default: return log(se);
        }
    }
    // mean, L2 and LogSumExp go through double and saturate back to the integer range
    double lo = lowest(dt), hi = highest(dt);
    switch (kind) {
    case 0: return (double)wrap(dt, is);
    case 1: return cnt ? trunc(s / (double)cnt) : 0;
    case 2: return m;
    case 3: return mn;
    case 4: return (double)wrap(dt, iprod);
    case 5: return (double)wrap(dt, iabs);
    case 6: return fmin(trunc(sqrt((double)isq)), hi);
    case 7: return (double)wrap(dt, isq);
    default: return cnt ? fmax(lo, fmin(trunc(log(se)), hi)) : lo;
    }
}

static void fill_random(void *x, int dt, int64_t n, int nan_ok) {
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (is_float(dt)) v = nan_ok && rnd() % 40 == 0 ? NAN : rnd_u() * 3 - 1.5;
        else if (dt == U8) v = (double)rnd_in(0, 255);
        else if (dt == I8) v = (double)rnd_in(-128, 127);
        else v = (double)rnd_in(-20, 20);
        put(x, dt, i, v);
    }
}

static void test_reduce_random(void) {
    int fails = 0;
    for (int t = 0; t < 4000 && fails < 5; t++) {
        int rank = (int)rnd_in(0, 5), dt = dtypes[rnd_in(0, 5)], kind = t % 9;
        int64_t dims[K_MAX_RANK], n = 1, nout = 1;
        int red[K_MAX_RANK];
        int mask = (int)rnd_in(0, 3); // 0: random, 1: all, 2: none, 3: the last axis
        for (int k = 0; k < rank; k++) {
            int r = (int)rnd_in(0, 9);
            dims[k] = r == 0 ? 0 : r == 1 ? 1 : rnd_in(2, 4);
            red[k] = mask == 0 ? (int)(rnd() % 2) : mask == 1 ? 1 : mask == 2 ? 0 : k == rank - 1;
            n *= dims[k];
            if (!red[k]) nout *= dims[k];
        }
        int es = dsize(dt);
        void *x = malloc((size_t)(n * es) + 1), *y = malloc((size_t)(nout * es) + 1);
        fill_random(x, dt, n, kind == 2 || kind == 3 || t % 7 == 0);
        k_reduce(y, x, dims, rank, red, kind, dt);
        for (int64_t o = 0; o < nout; o++) {
            double e = ref_reduce_one(x, dt, dims, rank, red, o, kind), a = get(y, dt, o);
            if (dt == F32) e = (float)e; // compare to the rounded value
            int ok = dt == F32 ? near(a, e, 1e-5) : dt == F64 ? near(a, e, 1e-12)
                     : kind == 8 ? fabs(a - e) <= 1 : a == e;
            if (!ok) {
                fprintf(stderr, "  reduce kind %d dtype %d rank %d out %lld: %.17g, expected %.17g\n", kind,
                        dt, rank, (long long)o, a, e);
                CHECK(0);
                fails++;
                break;
            }
        }
        free(x), free(y);
    }
}

/* Empty reductions follow the ONNX reference: 0, NaN (mean), -inf, +inf, 1, 0, 0, 0, -inf. */
static void test_reduce_empty(void) {
    int64_t dims[2] = {3, 0};
    int red[2] = {0, 1};
    float x[1] = {0}, y[3];
    const float expect[9] = {0, NAN, -INFINITY, INFINITY, 1, 0, 0, 0, -INFINITY};
    for (int kind = 0; kind < 9; kind++) {
        k_reduce(y, x, dims, 2, red, kind, F32);
        for (int i = 0; i < 3; i++) CHECK(near(y[i], expect[kind], 0));
    }
    int32_t yi[3];
    k_reduce(yi, x, dims, 2, red, 2, I32);
    CHECK(yi[0] == INT32_MIN);
    k_reduce(yi, x, dims, 2, red, 3, I32);
    CHECK(yi[2] == INT32_MAX);
    k_reduce(yi, x, dims, 2, red, 1, I32);
    CHECK(yi[1] == 0);
}

/* Large reductions over each layout, one thread against many, and against the reference. */
static void test_reduce_large(void) {
    int64_t dims[3] = {64, 500, 33}, n = 64 * 500 * 33;
    float *x = malloc(sizeof(float) * (size_t)n), *y1 = malloc(sizeof(float) * (size_t)n),
          *y2 = malloc(sizeof(float) * (size_t)n);
    fill_random(x, F32, n, 0);
    int masks[4][3] = {{0, 1, 0}, {0, 0, 1}, {1, 1, 1}, {1, 0, 1}};
    int nt = k_threads();
    for (int mi = 0; mi < 4; mi++)
        for (int kind = 0; kind < 9; kind += 4) {
            int64_t nout = 1;
            for (int k = 0; k < 3; k++) nout *= masks[mi][k] ? 1 : dims[k];
            k_set_threads(1);
            k_reduce(y1, x, dims, 3, masks[mi], kind, F32);
            k_set_threads(nt > 1 ? nt : 4);
            k_reduce(y2, x, dims, 3, masks[mi], kind, F32);
            CHECK(memcmp(y1, y2, sizeof(float) * (size_t)nout) == 0);
            int ok = 1;
            for (int64_t o = 0; o < nout; o += nout / 4 + 1) // a few samples: the reference is slow
                ok &= near(y1[o], (float)ref_reduce_one(x, F32, dims, 3, masks[mi], o, kind), 1e-5);
            CHECK(ok);
        }
    k_set_threads(nt);
    free(x), free(y1), free(y2);
}

static void test_softmax(void) {
    for (int t = 0; t < 600; t++) {
        int64_t outer = rnd_in(1, 4), len = rnd_in(1, 9), inner = rnd_in(1, 5);
        int which = t % 3; // the first, a middle or the last axis of a rank-3 tensor
        if (which == 0) outer = 1;
        if (which == 2) inner = 1;
        if (t == 0) outer = 64, len = 1000, inner = 1;
        if (t == 1) outer = 8, len = 100, inner = 300;
        int lg = (int)(rnd() % 2);
        int64_t n = outer * len * inner;
        float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
        double big = t % 5 == 0 ? 1000 : 0; // large inputs: exp would overflow without the max
        for (int64_t i = 0; i < n; i++) x[i] = (float)(big + rnd_u() * 20 - 10);
        if (t % 11 == 0) x[0] = -INFINITY;
        k_softmax_f32(y, x, outer, len, inner, lg);
        int ok = 1;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < inner; j++) {
                double m = -INFINITY, s = 0;
                for (int64_t l = 0; l < len; l++) m = fmax(m, x[(o * len + l) * inner + j]);
                for (int64_t l = 0; l < len; l++) s += exp(x[(o * len + l) * inner + j] - m);
                for (int64_t l = 0; l < len; l++) {
                    int64_t i = (o * len + l) * inner + j;
                    double e = lg ? x[i] - m - log(s) : exp(x[i] - m) / s;
                    ok &= near(y[i], e, 1e-5);
                }
            }
        if (!ok) {
            fprintf(stderr, "  softmax case %d (outer %lld len %lld inner %lld log %d)\n", t, (long long)outer,
                    (long long)len, (long long)inner, lg);
            CHECK(0);
        }
        free(x), free(y);
    }
}

static void test_argreduce(void) {
    for (int t = 0; t < 1500; t++) {
        int dt = dtypes[rnd_in(0, 5)], is_max = (int)(rnd() % 2), last = (int)(rnd() % 2);
        int64_t outer = rnd_in(1, 4), len = rnd_in(1, 8), inner = rnd_in(1, 5);
        if (t == 0) outer = 50, len = 300, inner = 200;
        int64_t n = outer * len * inner;
        void *x = malloc((size_t)(n * dsize(dt))), *y = malloc(sizeof(int64_t) * (size_t)(outer * inner));
        for (int64_t i = 0; i < n; i++) // few distinct values, so that ties are common
            put(x, dt, i, is_float(dt) && rnd() % 30 == 0 ? NAN : (double)rnd_in(0, 3));
        k_argreduce(y, x, outer, len, inner, is_max, last, dt);
        int ok = 1;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < inner; j++) {
                int64_t best = -1;
                for (int64_t l = 0; l < len && best < 0; l++) { // NaN first, as numpy
                    int64_t q = last ? len - 1 - l : l;
                    double v = get(x, dt, (o * len + q) * inner + j);
                    if (v != v) best = q;
                }
                if (best < 0) {
                    double bv = 0;
                    for (int64_t l = 0; l < len; l++) {
                        double v = get(x, dt, (o * len + l) * inner + j);
                        if (best < 0 || (is_max ? v > bv : v < bv) || (last && v == bv)) best = l, bv = v;
                    }
                }
                ok &= ((int64_t *)y)[o * inner + j] == best;
            }
        CHECK(ok);
        free(x), free(y);
    }
}

static void test_cumsum(void) {
    const int cdt[] = {F32, F64, I32, I64};
    for (int t = 0; t < 800; t++) {
        int dt = cdt[rnd_in(0, 3)], ex = (int)(rnd() % 2), rev = (int)(rnd() % 2);
        int64_t outer = rnd_in(0, 4), len = rnd_in(0, 9), inner = rnd_in(1, 5);
        if (t == 0) outer = 20, len = 1000, inner = 40;
        int64_t n = outer * len * inner;
        void *x = malloc((size_t)(n * 8) + 1), *y = malloc((size_t)(n * 8) + 1);
        fill_random(x, dt, n, 0);
        if (dt == I64)
            for (int64_t i = 0; i < n; i++) ((int64_t *)x)[i] = (int64_t)rnd(); // sums wrap
        k_cumsum(y, x, outer, len, inner, ex, rev, dt);
        int ok = 1;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < inner; j++) {
                double s = 0;
                uint64_t is = 0;
                for (int64_t q = 0; q < len; q++) {
                    int64_t l = rev ? len - 1 - q : q, i = (o * len + l) * inner + j;
                    double before = s;
                    uint64_t ibefore = is;
                    s += get(x, dt, i);
                    if (!is_float(dt)) is += (uint64_t)geti(x, dt, i);
                    if (is_float(dt)) ok &= near(get(y, dt, i), ex ? before : s, dt == F32 ? 1e-5 : 1e-12);
                    else ok &= geti(y, dt, i) == wrap(dt, ex ? ibefore : is);
                }
            }
        CHECK(ok);
        free(x), free(y);
    }
}

int main(void) {
    RUN(test_reduce_random);
    RUN(test_reduce_empty);
    RUN(test_reduce_large);
    RUN(test_softmax);
    RUN(test_argreduce);
    RUN(test_cumsum);
    return CHECK_DONE();
}
