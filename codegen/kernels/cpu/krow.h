/* The rows of a softmax, shared by k_softmax_f32 (kreduce.c) and the fused
 * attention kernels (kattn.c), so that both compute a row's maximum and its
 * sum of exps the same way: a row's result depends on its length alone,
 * never on threads or on which kernel runs it. Internal to the cpu kernels. */
#ifndef LOOM_KROW_H
#define LOOM_KROW_H

#include <stdint.h>
#include <string.h>

#include "kmath.h"

/* Rows of softmax in GCC vector types: one serial max or sum is a chain the
 * compiler may not reorder, so eight fixed lanes (combined in a fixed order)
 * are written out as vectors; the result depends on the row length alone,
 * never on threads. Plain loops do the rest (exp, scaling), which the
 * compiler vectorizes itself. */
/* Internal functions pass these by value; no ABI boundary is crossed, so
 * GCC's note that AVX changes how 32-byte vectors are passed does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float kv8 __attribute__((vector_size(32)));
typedef int32_t kv8i __attribute__((vector_size(32)));
typedef double kv4d __attribute__((vector_size(32)));
typedef float kv4 __attribute__((vector_size(16)));

static inline kv8 load8(const float *p) {
    kv8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The largest of x[0..n), n >= 1 (lane-wise `x > m ? x : m`, as the serial
 * loop was: a NaN is passed over unless it is x[0]). */
static inline float k_row_max(const float *x, int64_t n) {
    int64_t nv = n - n % 8;
    float r = x[0];
    if (nv) {
        kv8 m = load8(x);
        for (int64_t i = 8; i < nv; i += 8) {
            kv8 v = load8(x + i);
            kv8i gt = v > m;
            m = (kv8)((gt & (kv8i)v) | (~gt & (kv8i)m));
        }
        r = m[0];
        for (int l = 1; l < 8; l++) r = m[l] > r ? m[l] : r;
    }
    for (int64_t i = nv; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

/* y[i] = exp(x[i] - m), 0 where x[i] - m < -87.3: there exp is under the
 * smallest normal float, and a masked (-inf or -3.4e38) attention score would
 * otherwise give a subnormal, on which arithmetic is far slower. The
 * difference is below 1.2e-38 absolute. Returns the sum of y, in double.
 * y may be x. */
static inline double k_row_exp_sum(float *y, const float *x, int64_t n, float m) {
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - m, e = k_expf(d);
        y[i] = d < -87.3f ? 0.0f : e;
    }
    int64_t nv = n - n % 8;
    kv4d s0 = {0, 0, 0, 0}, s1 = {0, 0, 0, 0};
    for (int64_t i = 0; i < nv; i += 8) {
        kv8 v = load8(y + i);
        kv4 lo = {v[0], v[1], v[2], v[3]}, hi = {v[4], v[5], v[6], v[7]};
        s0 += __builtin_convertvector(lo, kv4d);
        s1 += __builtin_convertvector(hi, kv4d);
    }
    double t = 0;
    for (int l = 0; l < 4; l++) t += s0[l] + s1[l];
    for (int64_t i = nv; i < n; i++) t += y[i];
    return t;
}

#endif
