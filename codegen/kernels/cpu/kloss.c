/* Loss kernels (float32): NegativeLogLikelihoodLoss and
 * SoftmaxCrossEntropyLoss, as the ONNX reference computes them. With x
 * (N, C, d) and target (N, d), the loss of element (n, k) is
 * -w[t] * x[n, t, k] for t = target[n, k] (w = 1 without weights), 0 where t
 * equals ignore_index; reduction none keeps them, sum adds them, mean divides
 * the sum by the sum of the weights of the targets not ignored (so plain mean
 * without weights or ignore_index, and NaN when every target is ignored, as
 * the reference's 0 / 0). SoftmaxCrossEntropyLoss is the same on
 * log_softmax(x) over C, computed with the max subtracted.
 *
 * Targets are checked before anything is written. The sums run in double over
 * a fixed number of blocks (the split depends on the sizes only, never on the
 * thread count) whose partial sums are added in order, so results are
 * reproducible bit for bit while the log-softmax work runs on all threads. */
#include "kernels.h"

#include <math.h>

/* Partial sums per call: enough blocks to keep any machine's threads busy. */
#define NBLOCK 64

int k_check_targets(const char *op, const int64_t *target, int64_t n, int64_t C,
                    int64_t ignore_index, int has_ignore) {
    for (int64_t i = 0; i < n; i++) {
        int64_t t = target[i];
        if (has_ignore && t == ignore_index) continue;
        if (t < 0 || t >= C)
            return k_fail("%s: target %lld at position %lld is out of range: classes are 0 to %lld%s", op,
                          (long long)t, (long long)i, (long long)(C - 1),
                          has_ignore ? " (or ignore_index)" : "");
    }
    return 0;
}

/* For column (nn, k) of x (N, C, d): its max m and ls = log(sum(exp(x - m))), so
 * that log_softmax is (x - m) - ls. Kept apart, not as one float m + ls: x - m
 * is exact, and rounding m + ls would cost the small results their digits. */
static void log_sum_exp_col(const float *x, int64_t C, int64_t d, int64_t nn, int64_t k, float *m,
                            float *ls) {
    const float *xc = x + nn * C * d + k;
    float mx = xc[0];
    for (int64_t c = 1; c < C; c++) mx = xc[c * d] > mx ? xc[c * d] : mx;
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += expf(xc[c * d] - mx);
    *m = mx, *ls = (float)log(s);
}

/* The shared body. lp is the log-probability tensor when it exists (NLL's x,
 * or SCE's written log_prob); otherwise (SCE without log_prob) x is logits
 * and each element's log-probability is computed from its column. */
typedef struct {
    float *y;
    const float *lp, *logits, *weight;
    const int64_t *target;
    int64_t n, nb, C, d, ignore_index;
    int reduction, has_ignore;
    double *ls, *ws;
} Loss;

/* Blocks [lo, hi) of the nb: each one's loss and weight sums. */
static void loss_blocks(void *arg, int64_t lo, int64_t hi, int tid) {
    const Loss *a = arg;
    float *y = a->y;
    const float *lp = a->lp, *logits = a->logits, *weight = a->weight;
    const int64_t *target = a->target;
    int64_t n = a->n, nb = a->nb, C = a->C, d = a->d, ignore_index = a->ignore_index;
    int reduction = a->reduction, has_ignore = a->has_ignore;
    for (int64_t b = lo; b < hi; b++) {
        double sl = 0, sw = 0;
        for (int64_t i = n * b / nb; i < n * (b + 1) / nb; i++) {
            int64_t nn = i / d, k = i % d, t = target[i];
            float l = 0, w = 0;
            if (!(has_ignore && t == ignore_index)) {
                w = weight ? weight[t] : 1.0f;
                float v, m, lse;
                if (lp) {
                    v = lp[(nn * C + t) * d + k];
                } else {
                    log_sum_exp_col(logits, C, d, nn, k, &m, &lse);
                    v = (logits[(nn * C + t) * d + k] - m) - lse;
                }
                l = -v * w;
            }
            if (reduction == 0) y[i] = l;
            sl += l, sw += w;
        }
        a->ls[b] = sl, a->ws[b] = sw;
    }
}

static int loss(float *y, const float *lp, const float *logits, const int64_t *target, const float *weight,
                int64_t N, int64_t C, int64_t d, int reduction, int64_t ignore_index, int has_ignore) {
    int64_t n = N * d;
    int64_t nb = n < NBLOCK ? n : NBLOCK;
    double ls[NBLOCK], ws[NBLOCK];
    Loss a = {y, lp, logits, weight, target, n, nb, C, d, ignore_index, reduction, has_ignore, ls, ws};
    k_par_for(nb, n * C, loss_blocks, &a);
    if (reduction == 0) return 0;
    double sl = 0, sw = 0;
    for (int64_t b = 0; b < nb; b++) sl += ls[b], sw += ws[b];
    y[0] = (float)(reduction == 1 ? sl : sl / sw);
    return 0;
}

int k_nll_loss_f32(float *y, const float *x, const int64_t *target, const float *weight, int64_t N,
                   int64_t C, int64_t d, int reduction, int64_t ignore_index, int has_ignore) {
    // x is (N, C, d) log-probabilities, target (N, d), weight (C) or NULL
    if (k_check_targets("NegativeLogLikelihoodLoss", target, N * d, C, ignore_index, has_ignore) < 0) return -1;
    return loss(y, x, NULL, target, weight, N, C, d, reduction, ignore_index, has_ignore);
}

/* Columns [lo, hi) of log_prob (a->y) from the logits. */
static void log_prob_columns(void *arg, int64_t lo, int64_t hi, int tid) {
    const Loss *a = arg;
    int64_t C = a->C, d = a->d;
    for (int64_t i = lo; i < hi; i++) {
        int64_t nn = i / d, k = i % d;
        float m, lse;
        log_sum_exp_col(a->logits, C, d, nn, k, &m, &lse);
        const float *xc = a->logits + nn * C * d + k;
        float *pc = a->y + nn * C * d + k;
        for (int64_t c = 0; c < C; c++) pc[c * d] = (xc[c * d] - m) - lse;
    }
}

int k_sce_loss_f32(float *y, float *log_prob, const float *x, const int64_t *target,
                   const float *weight, int64_t N, int64_t C, int64_t d, int reduction,
                   int64_t ignore_index, int has_ignore) {
    if (k_check_targets("SoftmaxCrossEntropyLoss", target, N * d, C, ignore_index, has_ignore) < 0) return -1;
    if (!log_prob) return loss(y, NULL, x, target, weight, N, C, d, reduction, ignore_index, has_ignore);
    // log_prob (N, C, d) = x - logsumexp over C, column by column
    int64_t n = N * d;
    Loss a = {.y = log_prob, .logits = x, .C = C, .d = d};
    k_par_for(n, n * C, log_prob_columns, &a);
    return loss(y, log_prob, NULL, target, weight, N, C, d, reduction, ignore_index, has_ignore);
}
