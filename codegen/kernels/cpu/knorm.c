/* Normalization kernels (float32): BatchNormalization in inference and
 * training mode, LayerNormalization with its Mean and InvStdDev outputs, and
 * GroupNormalization (InstanceNormalization is the case groups = C).
 *
 * Statistics are two-pass (the mean, then the mean squared deviation), both
 * accumulated in double and rounded once: the one-pass E[x^2] - E[x]^2 form
 * cancels catastrophically when the mean is large against the spread. The
 * variance is the population (biased) one, as ONNX specifies for every one of
 * these operators. The mean is subtracted as two floats, hi + lo (see
 * split_mean), so the float inner loops lose nothing to its rounding. Each statistic is computed whole by one thread (threads
 * split rows, channels or groups, never one sum), so results do not depend on
 * the thread count. */
#include "kernels.h"

#include <math.h>


/* Lanes of independent partial sums: the compiler may not reorder one serial
 * floating-point sum, so eight fixed lanes (combined in a fixed order) are what
 * lets it vectorize, and the result still depends on n alone, never on threads. */
#define LANES 8

/* Mean and population variance of n floats, in double. */
static void moments(const float *x, int64_t n, double *mean, double *var) {
    double s[LANES] = {0}, q[LANES] = {0}, st = 0, qt = 0;
    int64_t nv = n - n % LANES;
    for (int64_t i = 0; i < nv; i += LANES)
        for (int l = 0; l < LANES; l++) s[l] += x[i + l];
    for (int64_t i = nv; i < n; i++) st += x[i];
    for (int l = 0; l < LANES; l++) st += s[l];
    double m = st / (double)n;
    for (int64_t i = 0; i < nv; i += LANES)
        for (int l = 0; l < LANES; l++) {
            double d = x[i + l] - m;
            q[l] += d * d;
        }
    for (int64_t i = nv; i < n; i++) {
        double d = x[i] - m;
        qt += d * d;
    }
    for (int l = 0; l < LANES; l++) qt += q[l];
    *mean = m, *var = qt / (double)n;
}

/* m as hi + lo floats. x - hi is exact for x near the mean, so (x - hi) - lo
 * keeps the deviation accurate even when it is tiny against the mean (a
 * small group with variance far below eps, where y is the deviation scaled
 * up by 1 / sqrt(eps)); rounding m to one float would lose that. */
static void split_mean(double m, float *hi, float *lo) {
    *hi = (float)m;
    *lo = (float)(m - (double)*hi);
}

void k_batchnorm_f32(float *y, const float *x, const float *scale, const float *bias,
                     const float *mean, const float *var, int64_t N, int64_t C, int64_t spatial,
                     float eps) {
    // x, y are (N, C, spatial); per channel y = (x - mean) * a + bias, a = scale / sqrt(var + eps).
    // Folding the mean into the bias (x * a + b) would save a subtraction but
    // cancels badly when the mean is large against the spread.
#pragma omp parallel for schedule(static) if (N * C * spatial >= K_PAR_WORK && N * C > 1)
    for (int64_t r = 0; r < N * C; r++) {
        int64_t c = r % C;
        float a = (scale ? scale[c] : 1.0f) / sqrtf(var[c] + eps);
        float m = mean[c], b = bias ? bias[c] : 0.0f;
        const float *xr = x + r * spatial;
        float *yr = y + r * spatial;
        for (int64_t i = 0; i < spatial; i++) yr[i] = (xr[i] - m) * a + b;
    }
}

void k_batchnorm_train_f32(float *y, float *run_mean, float *run_var, const float *x,
                           const float *scale, const float *bias, const float *mean,
                           const float *var, int64_t N, int64_t C, int64_t spatial, float eps,
                           float momentum) {
    // one channel per iteration: its statistics over (N, spatial), then its outputs
    double cnt = (double)N * (double)spatial;
#pragma omp parallel for schedule(static) if (N * C * spatial >= K_PAR_WORK && C > 1)
    for (int64_t c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + (n * C + c) * spatial;
            for (int64_t i = 0; i < spatial; i++) s += xr[i];
        }
        double m = s / cnt;
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + (n * C + c) * spatial;
            for (int64_t i = 0; i < spatial; i++) {
                double d = xr[i] - m;
                q += d * d;
            }
        }
        double v = q / cnt; // population variance, also for the running statistic (ONNX)
        float mf, ml, vf = (float)v;
        split_mean(m, &mf, &ml);
        float a = (float)((scale ? scale[c] : 1.0f) / sqrt(v + (double)eps));
        float b = bias ? bias[c] : 0.0f;
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + (n * C + c) * spatial;
            float *yr = y + (n * C + c) * spatial;
            for (int64_t i = 0; i < spatial; i++) yr[i] = ((xr[i] - mf) - ml) * a + b;
        }
        // running = input * momentum + current * (1 - momentum)
        if (run_mean) run_mean[c] = mean[c] * momentum + mf * (1.0f - momentum);
        if (run_var) run_var[c] = var[c] * momentum + vf * (1.0f - momentum);
    }
}

void k_layernorm_f32(float *y, float *mean, float *inv_std, const float *x, const float *scale,
                     const float *bias, int64_t rows, int64_t cols, float eps) {
    // x, y are (rows, cols); scale, bias are (cols); mean, inv_std are (rows)
#pragma omp parallel for schedule(static) if (rows * cols >= K_PAR_WORK && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        double m, v;
        moments(xr, cols, &m, &v);
        float mf, ml, is = (float)(1.0 / sqrt(v + (double)eps));
        split_mean(m, &mf, &ml);
        for (int64_t i = 0; i < cols; i++) {
            float n = ((xr[i] - mf) - ml) * is;
            yr[i] = bias ? n * scale[i] + bias[i] : n * scale[i];
        }
        if (mean) mean[r] = mf;
        if (inv_std) inv_std[r] = is;
    }
}

void k_groupnorm_f32(float *y, const float *x, const float *scale, const float *bias, int64_t N,
                     int64_t C, int64_t groups, int64_t spatial, float eps) {
    // x, y are (N, C, spatial); a group is C / groups consecutive channels, contiguous in memory
    int64_t cpg = groups > 0 ? C / groups : 0, len = cpg * spatial;
#pragma omp parallel for schedule(static) if (N * C * spatial >= K_PAR_WORK && N * groups > 1)
    for (int64_t r = 0; r < N * groups; r++) {
        const float *xg = x + r * len;
        float *yg = y + r * len;
        double m, v;
        moments(xg, len, &m, &v);
        float mf, ml, is = (float)(1.0 / sqrt(v + (double)eps));
        split_mean(m, &mf, &ml);
        for (int64_t j = 0; j < cpg; j++) {
            int64_t c = (r % groups) * cpg + j;
            float a = is * (scale ? scale[c] : 1.0f), b = bias ? bias[c] : 0.0f;
            const float *xr = xg + j * spatial;
            float *yr = yg + j * spatial;
            for (int64_t i = 0; i < spatial; i++) yr[i] = ((xr[i] - mf) - ml) * a + b;
        }
    }
}
