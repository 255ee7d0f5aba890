/* The cpu loss kernels (kloss.c) against the ONNX reference's formulas
 * written plainly here in double: NegativeLogLikelihoodLoss and
 * SoftmaxCrossEntropyLoss with and without weights, with ignore_index inside
 * and outside the class range, every reduction, extra dims (d > 1), the
 * log_prob output, targets out of range (-1 and a message), all targets
 * ignored (mean is NaN, as 0 / 0 in the reference), thread-count invariance. */
#include "check.h"
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = 0xda942042e4dd58b5ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}
static int64_t rnd_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }
static double rnd_u(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static int near(double a, double b) {
    if (a == b || (a != a && b != b)) return 1;
    return fabs(a - b) / (fabs(b) + 1) < 1e-5;
}

/* Reference: log-probabilities lp (N, C, d) in double, then the weighted gather and reduction. */
static void ref_loss(double *out, const double *lp, const int64_t *target, const float *weight, int64_t N,
                     int64_t C, int64_t d, int reduction, int64_t ignore, int has_ignore) {
    double sum = 0, wsum = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < d; k++) {
            int64_t t = target[n * d + k];
            double l = 0, w = 0;
            if (!(has_ignore && t == ignore)) {
                w = weight ? weight[t] : 1;
                l = -lp[(n * C + t) * d + k] * w;
            }
            if (reduction == 0) out[n * d + k] = l;
            sum += l, wsum += w;
        }
    if (reduction == 1) out[0] = sum;
    if (reduction == 2) out[0] = sum / wsum;
}

static void one_case(int t, int sce) {
    int64_t N = rnd_in(1, 4), C = rnd_in(1, 6), d = rnd() % 2 ? 1 : rnd_in(1, 5);
    if (t == 0) N = 64, C = 1000, d = 1; // threaded
    if (t == 1) N = 8, C = 50, d = 300;
    int reduction = t % 3, has_ignore = (int)(rnd() % 2), use_w = (int)(rnd() % 2);
    int64_t ignore = rnd() % 2 ? rnd_in(0, C - 1) : -100;
    int64_t n = N * d, nx = N * C * d;
    float *x = malloc(sizeof(float) * (size_t)nx), *w = malloc(sizeof(float) * (size_t)C);
    float *lpk = malloc(sizeof(float) * (size_t)nx), *y = malloc(sizeof(float) * (size_t)n);
    double *lp = malloc(sizeof(double) * (size_t)nx), *e = malloc(sizeof(double) * (size_t)n);
    int64_t *tg = malloc(sizeof(int64_t) * (size_t)n);
    double shift = t % 4 == 0 ? 500 : 0; // large logits: softmax must subtract the max
    for (int64_t i = 0; i < nx; i++) x[i] = (float)(shift + rnd_u() * 8 - (sce ? 4 : 8));
    for (int64_t c = 0; c < C; c++) w[c] = (float)(0.1 + rnd_u());
    for (int64_t i = 0; i < n; i++) tg[i] = has_ignore && rnd() % 4 == 0 ? ignore : rnd_in(0, C - 1);
    if (sce) {
        for (int64_t nn = 0; nn < N; nn++)
            for (int64_t k = 0; k < d; k++) {
                double m = -INFINITY, s = 0;
                for (int64_t c = 0; c < C; c++) m = fmax(m, x[(nn * C + c) * d + k]);
                for (int64_t c = 0; c < C; c++) s += exp(x[(nn * C + c) * d + k] - m);
                for (int64_t c = 0; c < C; c++) lp[(nn * C + c) * d + k] = x[(nn * C + c) * d + k] - m - log(s);
            }
    } else {
        for (int64_t i = 0; i < nx; i++) lp[i] = x[i];
    }
    ref_loss(e, lp, tg, use_w ? w : NULL, N, C, d, reduction, ignore, has_ignore);
    int64_t ny = reduction == 0 ? n : 1;
    int with_lp = sce && rnd() % 2;
    int rc = sce ? k_sce_loss_f32(y, with_lp ? lpk : NULL, x, tg, use_w ? w : NULL, N, C, d, reduction, ignore,
                                  has_ignore)
                 : k_nll_loss_f32(y, x, tg, use_w ? w : NULL, N, C, d, reduction, ignore, has_ignore);
    CHECK_EQ_INT(rc, 0);
    int ok = 1;
    for (int64_t i = 0; i < ny; i++) ok &= near(y[i], e[i]);
    if (with_lp)
        for (int64_t i = 0; i < nx; i++) ok &= near(lpk[i], lp[i]);
    if (!ok) {
        fprintf(stderr, "  %s case %d: N %lld C %lld d %lld reduction %d ignore %d weights %d: %.9g vs %.9g\n",
                sce ? "sce" : "nll", t, (long long)N, (long long)C, (long long)d, reduction, has_ignore, use_w,
                y[0], e[0]);
        CHECK(0);
    }
    free(x), free(w), free(lpk), free(y), free(lp), free(e), free(tg);
}

static void test_nll(void) {
    for (int t = 0; t < 600; t++) one_case(t, 0);
}

static void test_sce(void) {
    for (int t = 0; t < 600; t++) one_case(t, 1);
}

static void test_loss_errors(void) {
    float x[2 * 3] = {0}, y[2];
    int64_t tg[2] = {1, 3};
    CHECK_EQ_INT(k_nll_loss_f32(y, x, tg, NULL, 2, 3, 1, 1, -100, 1), -1);
    CHECK_STR_CONTAINS(k_error(), "target 3");
    CHECK_STR_CONTAINS(k_error(), "0 to 2");
    int64_t neg[2] = {-1, 0};
    CHECK_EQ_INT(k_sce_loss_f32(y, NULL, x, neg, NULL, 2, 3, 1, 2, 0, 0), -1);
    CHECK_STR_CONTAINS(k_error(), "target -1");
    // an ignore_index outside the classes is no error where it is ignored
    int64_t ig[2] = {-1, 2};
    CHECK_EQ_INT(k_sce_loss_f32(y, NULL, x, ig, NULL, 2, 3, 1, 2, -1, 1), 0);
    CHECK(near(y[0], log(3.0)));
    // every target ignored: the weighted mean is 0 / 0
    int64_t all[2] = {1, 1};
    CHECK_EQ_INT(k_nll_loss_f32(y, x, all, NULL, 2, 3, 1, 2, 1, 1), 0);
    CHECK(isnan(y[0]));
    CHECK_EQ_INT(k_nll_loss_f32(y, x, all, NULL, 2, 3, 1, 1, 1, 1), 0);
    CHECK(y[0] == 0);
}

static void test_loss_threads(void) {
    int64_t N = 256, C = 500, d = 3, n = N * d;
    float *x = malloc(sizeof(float) * (size_t)(N * C * d)), *w = malloc(sizeof(float) * (size_t)C);
    int64_t *tg = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < N * C * d; i++) x[i] = (float)(rnd_u() * 10);
    for (int64_t c = 0; c < C; c++) w[c] = (float)rnd_u();
    for (int64_t i = 0; i < n; i++) tg[i] = rnd_in(0, C - 1);
    float y[2][2];
    int nt = k_threads();
    for (int k = 0; k < 2; k++) {
        k_set_threads(k ? (nt > 1 ? nt : 4) : 1);
        CHECK_EQ_INT(k_sce_loss_f32(&y[k][0], NULL, x, tg, w, N, C, d, 2, 0, 0), 0);
        CHECK_EQ_INT(k_nll_loss_f32(&y[k][1], x, tg, w, N, C, d, 1, 0, 0), 0);
    }
    k_set_threads(nt);
    CHECK(memcmp(y[0], y[1], sizeof y[0]) == 0);
    free(x), free(w), free(tg);
}

int main(void) {
    RUN(test_nll);
    RUN(test_sce);
    RUN(test_loss_errors);
    RUN(test_loss_threads);
    return CHECK_DONE();
}
