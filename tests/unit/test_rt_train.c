/* The training driver's pure parts (runtime/rt_train.c): the learning-rate
 * schedule (warm-up, constant, cosine) against its formulas, and the data
 * order (every epoch a permutation, a function of seed and epoch only, the
 * epochs and seeds different). The driver as a whole runs in tests/train. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "rt_train.h"

static void test_schedule(void)
{
    /* warm-up: base * step / warmup, reaching base at step warmup */
    CHECK(fabs(rt_train_lr(0.1, RT_SCHEDULE_CONSTANT, 4, 100, 1) - 0.025) < 1e-15);
    CHECK(rt_train_lr(0.1, RT_SCHEDULE_CONSTANT, 4, 100, 4) == 0.1);
    CHECK(rt_train_lr(0.1, RT_SCHEDULE_CONSTANT, 4, 100, 50) == 0.1);
    CHECK(rt_train_lr(0.1, RT_SCHEDULE_CONSTANT, 0, 100, 1) == 0.1);
    /* cosine after warm-up: base at its start, half at the middle, 0 at total and after */
    CHECK(fabs(rt_train_lr(0.1, RT_SCHEDULE_COSINE, 10, 110, 10) - 0.1) < 1e-15);
    CHECK(fabs(rt_train_lr(0.1, RT_SCHEDULE_COSINE, 10, 110, 60) - 0.05) < 1e-15);
    CHECK(fabs(rt_train_lr(0.1, RT_SCHEDULE_COSINE, 10, 110, 110)) < 1e-15);
    CHECK(fabs(rt_train_lr(0.1, RT_SCHEDULE_COSINE, 10, 110, 200)) < 1e-15);
    CHECK(fabs(rt_train_lr(0.2, RT_SCHEDULE_COSINE, 0, 4, 1) - 0.2 * 0.5 * (1 + cos(M_PI / 4))) < 1e-15);
    /* decreasing over the decay, never negative */
    double prev = 1;
    for (int s = 1; s <= 30; s++) {
        double lr = rt_train_lr(1, RT_SCHEDULE_COSINE, 0, 30, s);
        CHECK(lr <= prev && lr >= 0);
        prev = lr;
    }
    /* lr 0 stays 0 */
    CHECK(rt_train_lr(0, RT_SCHEDULE_COSINE, 3, 10, 2) == 0);
}

static int is_permutation(const int64_t *p, int64_t n)
{
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        ok = p[i] >= 0 && p[i] < n && !seen[p[i]];
        if (ok) seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_permutation(void)
{
    enum { N = 1000 };
    static int64_t a[N], b[N], c[N], d[N];
    rt_train_permutation(a, N, 7, 0);
    rt_train_permutation(b, N, 7, 0);
    rt_train_permutation(c, N, 7, 1);
    rt_train_permutation(d, N, 8, 0);
    CHECK(is_permutation(a, N) && is_permutation(c, N) && is_permutation(d, N));
    CHECK(!memcmp(a, b, sizeof a));  /* a function of (seed, epoch) */
    CHECK(memcmp(a, c, sizeof a));   /* another epoch, another order */
    CHECK(memcmp(a, d, sizeof a));   /* another seed, another order */
    int fixed = 0;
    for (int i = 0; i < N; i++) fixed += a[i] == i;
    CHECK(fixed < 20);               /* shuffled, not the identity */
    int64_t one[1];
    rt_train_permutation(one, 1, 3, 5);
    CHECK(one[0] == 0);
}

int main(void)
{
    RUN(test_schedule);
    RUN(test_permutation);
    return CHECK_DONE();
}
