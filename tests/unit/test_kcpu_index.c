/* The cpu indexing kernels (kindex.c) against naive references written plainly
 * here: Gather and GatherElements with int32 and int64, negative and
 * out-of-range indices (-1 and a message naming the index and the range),
 * ScatterND with each reduction, duplicate indices and several dtypes. */
#include "check.h"
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}
static int64_t rnd_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }
static void rnd_bytes(void *p, size_t n) {
    for (size_t i = 0; i < n; i++) ((unsigned char *)p)[i] = (unsigned char)rnd();
}

static void set_idx(void *idx, int is32, int64_t t, int64_t v) {
    if (is32) ((int32_t *)idx)[t] = (int32_t)v;
    else ((int64_t *)idx)[t] = v;
}

static void test_gather(void) {
    for (int t = 0; t < 1000; t++) {
        int64_t outer = rnd_in(0, 4), len = rnd_in(1, 6), nidx = rnd_in(0, 7), inner = rnd_in(0, 5);
        if (t == 0) outer = 300, nidx = 200, inner = 64; // the threaded path
        int es = (int)rnd_in(1, 8), is32 = (int)(rnd() % 2);
        size_t row = (size_t)(inner * es);
        char *x = malloc((size_t)(outer * len) * row + 1), *y = malloc((size_t)(outer * nidx) * row + 1);
        int64_t *ref_i = malloc(sizeof(int64_t) * (size_t)(nidx + 1));
        void *idx = malloc(8 * (size_t)(nidx + 1));
        rnd_bytes(x, (size_t)(outer * len) * row);
        for (int64_t i = 0; i < nidx; i++) {
            ref_i[i] = rnd_in(-len, len - 1);
            set_idx(idx, is32, i, ref_i[i]);
        }
        CHECK_EQ_INT(k_gather(y, x, idx, is32, outer, len, nidx, inner, es), 0);
        int ok = 1;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < nidx; i++) {
                int64_t j = ref_i[i] < 0 ? ref_i[i] + len : ref_i[i];
                ok &= memcmp(y + (o * nidx + i) * row, x + (o * len + j) * row, row) == 0;
            }
        CHECK(ok);
        free(x), free(y), free(ref_i), free(idx);
    }
}

static void test_gather_out_of_range(void) {
    float x[2 * 5 * 3] = {0}, y[2 * 3 * 3];
    int64_t idx[3] = {1, -5, 5};
    CHECK_EQ_INT(k_gather(y, x, idx, 0, 2, 5, 3, 3, 4), -1);
    CHECK_STR_CONTAINS(k_error(), "index 5");
    CHECK_STR_CONTAINS(k_error(), "-5 to 4");
    int32_t idx32[2] = {-6, 0};
    CHECK_EQ_INT(k_gather(y, x, idx32, 1, 2, 5, 2, 3, 4), -1);
    CHECK_STR_CONTAINS(k_error(), "index -6");
    // an empty axis has no valid index at all
    int64_t zero = 0;
    CHECK_EQ_INT(k_gather(y, x, &zero, 0, 2, 0, 1, 3, 4), -1);
    // no indices: nothing to check, nothing written
    CHECK_EQ_INT(k_gather(y, x, idx, 0, 2, 5, 0, 3, 4), 0);
}

static void test_gather_elements(void) {
    for (int t = 0; t < 1000; t++) {
        int rank = (int)rnd_in(1, 5), axis = (int)rnd_in(0, rank - 1), is32 = (int)(rnd() % 2);
        int es = (int)rnd_in(1, 8);
        int64_t dims[K_MAX_RANK], xd[K_MAX_RANK], n = 1, nx = 1;
        for (int k = 0; k < rank; k++) {
            dims[k] = rnd() % 10 == 0 ? 0 : rnd_in(1, 4);
            xd[k] = dims[k] + (rnd() % 3 == 0 ? rnd_in(0, 2) : 0);
            if (k == axis) xd[k] = rnd_in(1, 5);
            n *= dims[k], nx *= xd[k];
        }
        if (t == 0) { // threaded path
            rank = 2, axis = 1, dims[0] = xd[0] = 400, dims[1] = 300, xd[1] = 50;
            n = 400 * 300, nx = 400 * 50;
        }
        char *x = malloc((size_t)(nx * es) + 1), *y = malloc((size_t)(n * es) + 1);
        int64_t *ri = malloc(sizeof(int64_t) * (size_t)(n + 1));
        void *idx = malloc(8 * (size_t)(n + 1));
        rnd_bytes(x, (size_t)(nx * es));
        for (int64_t i = 0; i < n; i++) {
            ri[i] = rnd_in(-xd[axis], xd[axis] - 1);
            set_idx(idx, is32, i, ri[i]);
        }
        CHECK_EQ_INT(k_gather_elements(y, x, xd, idx, is32, dims, rank, axis, es), 0);
        int ok = 1;
        for (int64_t i = 0; i < n; i++) {
            int64_t rem = i, off = 0, st = 1;
            for (int k = rank - 1; k >= 0; k--) {
                int64_t c = rem % dims[k];
                rem /= dims[k];
                if (k == axis) c = ri[i] < 0 ? ri[i] + xd[k] : ri[i];
                off += c * st;
                st *= xd[k];
            }
            ok &= memcmp(y + i * es, x + off * es, (size_t)es) == 0;
        }
        CHECK(ok);
        free(x), free(y), free(ri), free(idx);
    }
    float x[6] = {0}, y[4];
    int64_t xd[2] = {2, 3}, d[2] = {2, 2}, idx[4] = {0, 2, -3, 3};
    CHECK_EQ_INT(k_gather_elements(y, x, xd, idx, 0, d, 2, 1, 4), -1);
    CHECK_STR_CONTAINS(k_error(), "index 3");
    CHECK_STR_CONTAINS(k_error(), "-3 to 2");
}

/* Reference ScatterND for one dtype, applied in update order. */
#define REF_SCATTER(T, A)                                                                        \
    static void ref_scatter_##T(T *y, const int64_t *dd, int rank, const int64_t *idx, int64_t nu, \
                                int k, const T *u, int64_t slice, int red) {                      \
        for (int64_t q = 0; q < nu; q++) {                                                        \
            int64_t off = 0;                                                                      \
            for (int j = 0; j < rank; j++) {                                                      \
                int64_t i = j < k ? idx[q * k + j] : 0;                                           \
                if (i < 0) i += dd[j];                                                            \
                off = off * dd[j] + i;                                                            \
            }                                                                                     \
            for (int64_t e = 0; e < slice; e++) {                                                 \
                T a = y[off + e], b = u[q * slice + e], r;                                        \
                if (red == 0) r = b;                                                              \
                else if (red == 1) r = (T)((A)a + (A)b);                                          \
                else if (red == 2) r = (T)((A)a * (A)b);                                          \
                else if (b != b || a != a) r = b != b ? b : a;                                    \
                else if (red == 3) r = a > b ? a : b;                                             \
                else r = a < b ? a : b;                                                           \
                y[off + e] = r;                                                                   \
            }                                                                                     \
        }                                                                                         \
    }
REF_SCATTER(float, float)
REF_SCATTER(double, double)
REF_SCATTER(int32_t, uint64_t)
REF_SCATTER(int64_t, uint64_t)
REF_SCATTER(int8_t, uint64_t)
REF_SCATTER(uint8_t, uint64_t)

static void test_scatternd(void) {
    const int dtypes[] = {1, 11, 6, 7, 3, 2}, sizes[] = {4, 8, 4, 8, 1, 1};
    for (int t = 0; t < 1500; t++) {
        int di = (int)rnd_in(0, 5), dt = dtypes[di], es = sizes[di];
        int rank = (int)rnd_in(1, 4), k = (int)rnd_in(1, rank), red = t % 5;
        int64_t dd[K_MAX_RANK], n = 1, slice = 1, nu = rnd_in(0, 6);
        for (int j = 0; j < rank; j++) {
            dd[j] = rnd_in(1, 4);
            n *= dd[j];
            if (j >= k) slice *= dd[j];
        }
        if (t < 10) { // threaded path
            rank = 2, k = 1, dd[0] = 8, dd[1] = 20000, n = 160000, slice = 20000, nu = 20;
        }
        char *y = malloc((size_t)(n * es)), *r = malloc((size_t)(n * es));
        char *u = malloc((size_t)(nu * slice * es) + 1);
        int64_t *idx = malloc(sizeof(int64_t) * (size_t)(nu * k + 1));
        // small values keep float sums exact regardless of order; a few NaNs test max/min
        for (int64_t i = 0; i < n + nu * slice; i++) {
            char *p = i < n ? y + i * es : u + (i - n) * es;
            int64_t v = rnd_in(-3, 3);
            switch (dt) {
            case 1: *(float *)p = rnd() % 50 == 0 ? NAN : (float)v; break;
            case 11: *(double *)p = rnd() % 50 == 0 ? NAN : (double)v * 1e300; break;
            case 6: *(int32_t *)p = (int32_t)(v * 1000003); break; // products overflow and wrap
            case 7: *(int64_t *)p = (int64_t)rnd(); break;
            case 3: *(int8_t *)p = (int8_t)(v * 50); break;
            default: *(uint8_t *)p = (uint8_t)rnd(); break;
            }
        }
        for (int64_t q = 0; q < nu; q++)
            for (int j = 0; j < k; j++) idx[q * k + j] = rnd_in(-dd[j], dd[j] - 1);
        memcpy(r, y, (size_t)(n * es));
        int rc = k_scatternd(y, dd, rank, idx, nu, k, u, slice, red, dt);
        CHECK_EQ_INT(rc, 0);
        switch (dt) {
        case 1: ref_scatter_float((float *)r, dd, rank, idx, nu, k, (float *)u, slice, red); break;
        case 11: ref_scatter_double((double *)r, dd, rank, idx, nu, k, (double *)u, slice, red); break;
        case 6: ref_scatter_int32_t((int32_t *)r, dd, rank, idx, nu, k, (int32_t *)u, slice, red); break;
        case 7: ref_scatter_int64_t((int64_t *)r, dd, rank, idx, nu, k, (int64_t *)u, slice, red); break;
        case 3: ref_scatter_int8_t((int8_t *)r, dd, rank, idx, nu, k, (int8_t *)u, slice, red); break;
        default: ref_scatter_uint8_t((uint8_t *)r, dd, rank, idx, nu, k, (uint8_t *)u, slice, red); break;
        }
        // bitwise: NaN payloads and signed zeros must match too
        if (memcmp(y, r, (size_t)(n * es)) != 0) {
            fprintf(stderr, "  scatter case %d (dtype %d, reduction %d) differs\n", t, dt, red);
            CHECK(0);
            t = 1 << 30;
        }
        free(y), free(r), free(u), free(idx);
    }
}

static void test_scatternd_errors(void) {
    float y[6] = {0}, u[3] = {1, 2, 3};
    int64_t dd[2] = {2, 3}, idx[2] = {-2, 2};
    CHECK_EQ_INT(k_scatternd(y, dd, 2, idx, 2, 1, u, 3, 0, 1), -1);
    CHECK_STR_CONTAINS(k_error(), "index 2");
    CHECK_STR_CONTAINS(k_error(), "-2 to 1");
    for (int i = 0; i < 6; i++) CHECK(y[i] == 0); // nothing written before the check
    CHECK_EQ_INT(k_scatternd(y, dd, 2, idx, 1, 1, u, 3, 1, 10), -1); // no float16 add
    CHECK_STR_CONTAINS(k_error(), "dtype 10");
    int64_t one[1] = {1};
    uint16_t h[6] = {0}, hu[3] = {7, 8, 9};
    CHECK_EQ_INT(k_scatternd(h, dd, 2, one, 1, 1, hu, 3, 0, 10), 0); // plain copy works for any dtype
    CHECK(h[3] == 7 && h[5] == 9 && h[0] == 0);
}

int main(void) {
    RUN(test_gather);
    RUN(test_gather_out_of_range);
    RUN(test_gather_elements);
    RUN(test_scatternd);
    RUN(test_scatternd_errors);
    return CHECK_DONE();
}
