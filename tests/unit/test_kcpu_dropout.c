/* k_dropout_f32: the share of dropped elements is the ratio, kept ones are
 * scaled by 1 / (1 - ratio) exactly, the mask agrees with the output, the
 * draws depend on the key, the salt and the position only (same bits at any
 * thread count, other bits for another key or salt), ratio 0 keeps all. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels.h"
#include "krand.h"

static void test_dropout_rate_and_scale(void)
{
    int64_t n = 200000;
    float *x = rand_f(n), *y = malloc((size_t)n * sizeof *y);
    uint8_t *m = malloc((size_t)n);
    float ratios[] = {0.1f, 0.3f, 0.5f, 0.9f};
    for (int r = 0; r < 4; r++) {
        float ratio = ratios[r], scale = 1.0f / (1.0f - ratio);
        k_dropout_f32(y, m, x, n, ratio, 12345, 7);
        int64_t dropped = 0;
        int bad = 0;
        for (int64_t i = 0; i < n; i++) {
            dropped += !m[i];
            bad |= m[i] ? y[i] != x[i] * scale : y[i] != 0.0f;
            bad |= m[i] > 1;
        }
        double share = (double)dropped / (double)n;
        CHECK(!bad);
        CHECK(fabs(share - ratio) < 0.005); // 200000 draws: the standard error is under 0.0012
    }
    k_dropout_f32(y, m, x, n, 0.0f, 1, 1);
    int all = 1;
    for (int64_t i = 0; i < n; i++) all &= m[i] == 1 && y[i] == x[i];
    CHECK(all);
    free(x), free(y), free(m);
}

static void test_dropout_determinism(void)
{
    int64_t n = 300000; // over K_PAR_WORK: split over threads
    float *x = rand_f(n), *y1 = malloc((size_t)n * sizeof *y1), *y2 = malloc((size_t)n * sizeof *y2);
    uint8_t *m1 = malloc((size_t)n), *m2 = malloc((size_t)n);
    k_set_threads(1);
    k_dropout_f32(y1, m1, x, n, 0.5f, 99, 3);
    k_set_threads(3);
    k_dropout_f32(y2, m2, x, n, 0.5f, 99, 3);
    CHECK(memcmp(y1, y2, (size_t)n * sizeof *y1) == 0 && memcmp(m1, m2, (size_t)n) == 0);
    k_dropout_f32(y2, m2, x, n, 0.5f, 100, 3); // another key (another step or seed)
    CHECK(memcmp(m1, m2, (size_t)n) != 0);
    k_dropout_f32(y2, m2, x, n, 0.5f, 99, 4); // another node
    CHECK(memcmp(m1, m2, (size_t)n) != 0);
    k_dropout_f32(y2, NULL, x, n, 0.5f, 99, 3); // no mask: the same outputs
    CHECK(memcmp(y1, y2, (size_t)n * sizeof *y1) == 0);
    k_set_threads(0);
    free(x), free(y1), free(y2), free(m1), free(m2);
}

int main(void)
{
    RUN(test_dropout_rate_and_scale);
    RUN(test_dropout_determinism);
    return CHECK_DONE();
}
