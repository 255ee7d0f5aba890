/* Random test data for the kernel unit tests: a xorshift generator (seeded by
 * KRAND_SEED, defined by the test before including this, so each file keeps
 * its own sequence), uniform floats in [-1, 1), integers in [lo, hi], and
 * the normalized error |got - want| / (|want| + 1) the tests bound. */
#ifndef LOOM_KRAND_H
#define LOOM_KRAND_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#ifndef KRAND_SEED
#define KRAND_SEED 88172645463325252ull
#endif

#define KRAND_UNUSED __attribute__((unused))

static uint64_t rng = KRAND_SEED;
static KRAND_UNUSED uint64_t next_u(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}
static KRAND_UNUSED float frand(void) { return (float)((double)(next_u() >> 11) / 9007199254740992.0 * 2 - 1); }
static KRAND_UNUSED int64_t irand(int64_t lo, int64_t hi) { return lo + (int64_t)(next_u() % (uint64_t)(hi - lo + 1)); }
static KRAND_UNUSED float *rand_f(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}
/* The largest normalized error; NaN counts as the worst. */
static KRAND_UNUSED double max_err_f(const float *got, const double *want, int64_t n)
{
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]) / (fabs(want[i]) + 1);
        if (!(d <= e)) e = d;
    }
    return e;
}

#endif
