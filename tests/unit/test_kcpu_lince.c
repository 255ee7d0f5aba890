/* k_linear_ce_f32 (kernels/cpu/klince.c) against the cross-entropy of the
 * logits x w computed plainly in double, with its gradients: w as [D, C]
 * and as [C, D] (trans_w), mean and sum, ignored rows, a vocabulary large
 * enough that the rows go in two blocks, targets out of range (-1), and the
 * same bits on 1 and 3 threads. k_linear_ce_bf16 against the same reference
 * on x and w rounded to bfloat16 and each gradient of a logit rounded too. */
#define KRAND_SEED 0x51ce51ce1234ull
#include "check.h"
#include "kernels.h"
#include "krand.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* loss, dx [N, D], dw (w's layout) in double, for an upstream gradient of 1 */
static void reference(double *loss, double *dx, double *dw, const float *x, const float *w, int tw,
                      const int64_t *t, int64_t N, int64_t D, int64_t C, int mean, int64_t ignore, int has_ignore,
                      int round_g)
{
    double *l = malloc((size_t)C * sizeof *l), total = 0;
    int64_t counted = 0;
    for (int64_t i = 0; i < N; i++) counted += !(has_ignore && t[i] == ignore);
    double coeff = mean ? 1.0 / (double)counted : 1.0;
    memset(dx, 0, (size_t)(N * D) * sizeof *dx);
    memset(dw, 0, (size_t)(D * C) * sizeof *dw);
    for (int64_t i = 0; i < N; i++) {
        if (has_ignore && t[i] == ignore) continue;
        double m = -INFINITY, s = 0;
        for (int64_t c = 0; c < C; c++) {
            double v = 0;
            for (int64_t k = 0; k < D; k++) v += (double)x[i * D + k] * w[tw ? c * D + k : k * C + c];
            l[c] = v;
            m = v > m ? v : m;
        }
        for (int64_t c = 0; c < C; c++) s += exp(l[c] - m);
        total += m + log(s) - l[t[i]];
        for (int64_t c = 0; c < C; c++) {
            double g = coeff * (exp(l[c] - m) / s - (c == t[i]));
            if (round_g) {
                float gf = (float)g;
                k_bf16_round(&gf, 1);
                g = gf;
            }
            for (int64_t k = 0; k < D; k++) {
                dx[i * D + k] += g * w[tw ? c * D + k : k * C + c];
                dw[tw ? c * D + k : k * C + c] += g * x[i * D + k];
            }
        }
    }
    *loss = total * coeff;
    free(l);
}

static void one_case(int64_t N, int64_t D, int64_t C, int tw, int mean, int has_ignore)
{
    float *x = rand_f(N * D), *w = rand_f(D * C);
    for (int64_t i = 0; i < D * C; i++) w[i] *= 3; /* logits of a few units */
    int64_t *t = malloc((size_t)N * sizeof *t), ignore = C > 1 ? 1 : -100;
    for (int64_t i = 0; i < N; i++) t[i] = has_ignore && next_u() % 4 == 0 ? ignore : irand(0, C - 1);
    float loss, *dx = malloc((size_t)(N * D) * sizeof *dx), *dw = malloc((size_t)(D * C) * sizeof *dw);
    double eloss, *edx = malloc((size_t)(N * D) * sizeof *edx), *edw = malloc((size_t)(D * C) * sizeof *edw);
    void *ws = malloc(k_linear_ce_f32_ws(N, C));
    CHECK_EQ_INT(k_linear_ce_f32(&loss, dx, dw, x, w, tw, t, N, D, C, mean, ignore, has_ignore, ws), 0);
    reference(&eloss, edx, edw, x, w, tw, t, N, D, C, mean, ignore, has_ignore, 0);
    double el = fabs(loss - eloss) / (fabs(eloss) + 1), ex = max_err_f(dx, edx, N * D), ew = max_err_f(dw, edw, D * C);
    if (!(el < 1e-5 && ex < 1e-5 && ew < 1e-5))
        fprintf(stderr, "  N %lld D %lld C %lld trans_w %d mean %d ignore %d: errors loss %.3g dx %.3g dw %.3g\n",
                (long long)N, (long long)D, (long long)C, tw, mean, has_ignore, el, ex, ew);
    CHECK(el < 1e-5 && ex < 1e-5 && ew < 1e-5);
    /* the same bits on 3 threads */
    float loss3, *dx3 = malloc((size_t)(N * D) * sizeof *dx3), *dw3 = malloc((size_t)(D * C) * sizeof *dw3);
    k_set_threads(3);
    CHECK_EQ_INT(k_linear_ce_f32(&loss3, dx3, dw3, x, w, tw, t, N, D, C, mean, ignore, has_ignore, ws), 0);
    k_set_threads(1);
    CHECK(memcmp(&loss, &loss3, sizeof loss) == 0 && !memcmp(dx, dx3, (size_t)(N * D) * sizeof *dx) &&
          !memcmp(dw, dw3, (size_t)(D * C) * sizeof *dw));
    free(x), free(w), free(t), free(dx), free(dw), free(edx), free(edw), free(ws), free(dx3), free(dw3);
}

static void test_small(void)
{
    k_set_threads(1);
    for (int tw = 0; tw < 2; tw++)
        for (int mean = 0; mean < 2; mean++)
            for (int ig = 0; ig < 2; ig++) {
                one_case(irand(1, 9), irand(1, 17), irand(1, 40), tw, mean, ig);
                one_case(64, 32, 500, tw, mean, ig); /* rows in parallel */
            }
}

/* 70000 classes: the 8M-float block holds 119 rows, so 130 rows are two blocks */
static void test_two_blocks(void)
{
    k_set_threads(1);
    one_case(130, 3, 70000, 1, 1, 1);
    one_case(130, 3, 70000, 0, 0, 0);
}

/* bf16 products: the reference on rounded x and w, g rounded; normalized
 * errors under 1e-5 (the kernel's float32 sums; seen: 4e-7), while the
 * float32 kernel on the unrounded operands is over 1e-3 away (seen: 1.5e-3
 * to 3.8e-3), so the rounding is there. */
/* ||got - want|| / ||want|| */
static double nerr(const float *got, const double *want, int64_t n)
{
    double d = 0, w = 0;
    for (int64_t i = 0; i < n; i++) d += (got[i] - want[i]) * (got[i] - want[i]), w += want[i] * want[i];
    return sqrt(d / (w > 0 ? w : 1));
}

static void bf16_case(int64_t N, int64_t D, int64_t C, int tw, int mean, int has_ignore)
{
    float *x = rand_f(N * D), *w = rand_f(D * C), *xr = malloc((size_t)(N * D) * sizeof *xr),
          *wr = malloc((size_t)(D * C) * sizeof *wr);
    for (int64_t i = 0; i < D * C; i++) w[i] *= 3;
    memcpy(xr, x, (size_t)(N * D) * sizeof *xr);
    memcpy(wr, w, (size_t)(D * C) * sizeof *wr);
    k_bf16_round(xr, N * D);
    k_bf16_round(wr, D * C);
    int64_t *t = malloc((size_t)N * sizeof *t), ignore = C > 1 ? 1 : -100;
    for (int64_t i = 0; i < N; i++) t[i] = has_ignore && next_u() % 4 == 0 ? ignore : irand(0, C - 1);
    float loss, *dx = malloc((size_t)(N * D) * sizeof *dx), *dw = malloc((size_t)(D * C) * sizeof *dw);
    double eloss, *edx = malloc((size_t)(N * D) * sizeof *edx), *edw = malloc((size_t)(D * C) * sizeof *edw);
    void *ws = malloc(k_linear_ce_bf16_ws(N, D, C));
    CHECK_EQ_INT(k_linear_ce_bf16(&loss, dx, dw, x, w, tw, t, N, D, C, mean, ignore, has_ignore, ws), 0);
    reference(&eloss, edx, edw, xr, wr, tw, t, N, D, C, mean, ignore, has_ignore, 1);
    double el = fabs(loss - eloss) / (fabs(eloss) + 1), ex = nerr(dx, edx, N * D), ew = nerr(dw, edw, D * C);
    if (!(el < 1e-5 && ex < 1e-5 && ew < 1e-5))
        fprintf(stderr, "  bf16 N %lld D %lld C %lld trans_w %d: errors loss %.3g dx %.3g dw %.3g\n", (long long)N,
                (long long)D, (long long)C, tw, el, ex, ew);
    CHECK(el < 1e-5 && ex < 1e-5 && ew < 1e-5);
    CHECK_EQ_INT(k_linear_ce_f32(&loss, dx, dw, x, w, tw, t, N, D, C, mean, ignore, has_ignore, ws), 0);
    CHECK(nerr(dw, edw, D * C) > 1e-3 || nerr(dx, edx, N * D) > 1e-3);
    free(x), free(w), free(xr), free(wr), free(t), free(dx), free(dw), free(edx), free(edw), free(ws);
}

static void test_bf16(void)
{
    k_set_threads(2);
    for (int tw = 0; tw < 2; tw++) {
        bf16_case(64, 32, 500, tw, 1, 1);
        bf16_case(130, 3, 70000, tw, tw, 0); /* two blocks: dW's float32 sum over them */
    }
    k_set_threads(1);
}

static void test_bad_target(void)
{
    float x[2] = {1, 2}, w[3] = {1, 2, 3}, loss, dx[2], dw[3];
    int64_t t[2] = {0, 3};
    void *ws = malloc(k_linear_ce_f32_ws(2, 3));
    CHECK_EQ_INT(k_linear_ce_f32(&loss, dx, dw, x, w, 0, t, 2, 1, 3, 1, -100, 0, ws), -1);
    free(ws);
}

int main(void)
{
    RUN(test_small);
    RUN(test_two_blocks);
    RUN(test_bf16);
    RUN(test_bad_target);
    return CHECK_DONE();
}
