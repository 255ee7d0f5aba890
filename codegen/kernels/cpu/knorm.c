/* Normalization kernels (float32): BatchNormalization in inference and
 * training mode, LayerNormalization with its Mean and InvStdDev outputs,
 * GroupNormalization (InstanceNormalization is the case groups = C), and
 * loom.RMSNorm (the mean of squares, no mean subtracted).
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
#include "kmath.h"
#include "ktile.h"

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

#if K_TILED
/* moments of 4 consecutive rows of n floats at once: per row the same
 * operations in the same order (LANES = 8 partial sums, one vector of
 * doubles; the tail, then the lanes in order), so the same bits; the four
 * rows' chains side by side hide the adds' latency, which a row alone waits
 * on (vit_tiny's LayerNormalization of 68 rows of 64: 6-7 us, a third of
 * them the serial lane sums). */
static AVX512 void moments4(const float *x, int64_t n, double *mean, double *var)
{
    int64_t nv = n - n % LANES, stride = n;
    __m512d s[4], q[4];
    double st[4], qt[4], m[4], sl[4][LANES], ql[4][LANES];
    for (int r = 0; r < 4; r++) s[r] = q[r] = _mm512_setzero_pd();
    for (int64_t i = 0; i < nv; i += LANES)
        for (int r = 0; r < 4; r++)
            s[r] = _mm512_add_pd(s[r], _mm512_cvtps_pd(_mm256_loadu_ps(x + r * stride + i)));
    for (int r = 0; r < 4; r++) {
        st[r] = 0;
        for (int64_t i = nv; i < n; i++) st[r] += x[r * stride + i];
        _mm512_storeu_pd(sl[r], s[r]);
    }
    for (int l = 0; l < LANES; l++)
        for (int r = 0; r < 4; r++) st[r] += sl[r][l];
    for (int r = 0; r < 4; r++) m[r] = st[r] / (double)n;
    for (int64_t i = 0; i < nv; i += LANES)
        for (int r = 0; r < 4; r++) {
            __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + r * stride + i)), _mm512_set1_pd(m[r]));
            q[r] = _mm512_add_pd(q[r], _mm512_mul_pd(d, d));
        }
    for (int r = 0; r < 4; r++) {
        qt[r] = 0;
        for (int64_t i = nv; i < n; i++) {
            double d = x[r * stride + i] - m[r];
            qt[r] += d * d;
        }
        _mm512_storeu_pd(ql[r], q[r]);
    }
    for (int l = 0; l < LANES; l++)
        for (int r = 0; r < 4; r++) qt[r] += ql[r][l];
    for (int r = 0; r < 4; r++) mean[r] = m[r], var[r] = qt[r] / (double)n;
}
#endif

/* m as hi + lo floats. x - hi is exact for x near the mean, so (x - hi) - lo
 * keeps the deviation accurate even when it is tiny against the mean (a
 * small group with variance far below eps, where y is the deviation scaled
 * up by 1 / sqrt(eps)); rounding m to one float would lose that. */
static void split_mean(double m, float *hi, float *lo) {
    *hi = (float)m;
    *lo = (float)(m - (double)*hi);
}

/* The operands of a normalization, for its rows (or channels) [lo, hi). */
typedef struct {
    float *y, *run_mean, *run_var, *mean_out, *inv_std;
    uint16_t *y16; /* layer and RMS norm: y in bfloat16 instead */
    const float *x, *scale, *bias, *mean, *var;
    int64_t N, C, groups, spatial, rows, cols;
    float eps, momentum;
} Norm;

static void batchnorm_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Norm *p = arg;
    float *y = p->y, eps = p->eps;
    const float *x = p->x, *scale = p->scale, *bias = p->bias, *mean = p->mean, *var = p->var;
    int64_t C = p->C, spatial = p->spatial;
    for (int64_t r = lo; r < hi; r++) {
        int64_t c = r % C;
        float a = k_bn_factor(scale ? scale[c] : 1.0f, var[c], eps);
        float m = mean[c], b = bias ? bias[c] : 0.0f;
        const float *xr = x + r * spatial;
        float *yr = y + r * spatial;
        for (int64_t i = 0; i < spatial; i++) yr[i] = k_bn(xr[i], m, a, b);
    }
}

void k_batchnorm_f32(float *y, const float *x, const float *scale, const float *bias,
                     const float *mean, const float *var, int64_t N, int64_t C, int64_t spatial,
                     float eps) {
    // x, y are (N, C, spatial); per channel y = (x - mean) * a + bias, a = scale / sqrt(var + eps).
    // Folding the mean into the bias (x * a + b) would save a subtraction but
    // cancels badly when the mean is large against the spread.
    Norm p = {.y = y, .x = x, .scale = scale, .bias = bias, .mean = mean, .var = var, .N = N, .C = C,
              .spatial = spatial, .eps = eps};
    k_par_for(N * C, N * C * spatial, batchnorm_rows, &p);
}

/* Channels [lo, hi): each one's statistics over (N, spatial), then its outputs. */
static void batchnorm_train_channels(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Norm *p = arg;
    float *y = p->y, *run_mean = p->run_mean, *run_var = p->run_var, eps = p->eps, momentum = p->momentum;
    const float *x = p->x, *scale = p->scale, *bias = p->bias, *mean = p->mean, *var = p->var;
    int64_t N = p->N, C = p->C, spatial = p->spatial;
    double cnt = (double)N * (double)spatial;
    for (int64_t c = lo; c < hi; c++) {
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

void k_batchnorm_train_f32(float *y, float *run_mean, float *run_var, const float *x,
                           const float *scale, const float *bias, const float *mean,
                           const float *var, int64_t N, int64_t C, int64_t spatial, float eps,
                           float momentum) {
    Norm p = {.y = y, .run_mean = run_mean, .run_var = run_var, .x = x, .scale = scale, .bias = bias,
              .mean = mean, .var = var, .N = N, .C = C, .spatial = spatial, .eps = eps,
              .momentum = momentum};
    k_par_for(C, N * C * spatial, batchnorm_train_channels, &p);
}

static void layernorm_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Norm *p = arg;
    float *y = p->y, *mean = p->mean_out, *inv_std = p->inv_std, eps = p->eps;
    const float *x = p->x, *scale = p->scale, *bias = p->bias;
    int64_t cols = p->cols;
    double m4[4], v4[4];
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = x + r * cols;
        double m, v;
        int64_t k = (r - lo) % 4; // r's place in its group of 4 rows
#if K_TILED
        int four = hi - (r - k) >= 4 && k_tiles_avx512();
        if (four && k == 0) moments4(xr, cols, m4, v4);
#else
        int four = 0;
#endif
        if (four) m = m4[k], v = v4[k];
        else moments(xr, cols, &m, &v);
        float mf, ml, is = (float)(1.0 / sqrt(v + (double)eps));
        split_mean(m, &mf, &ml);
        for (int64_t i = 0; i < cols; i++) {
            float n = ((xr[i] - mf) - ml) * is, o = bias ? n * scale[i] + bias[i] : n * scale[i];
            if (p->y16) p->y16[r * cols + i] = k_bf16_rne(o);
            else y[r * cols + i] = o;
        }
        if (mean) mean[r] = mf;
        if (inv_std) inv_std[r] = is;
    }
}

void k_layernorm_f32(float *y, float *mean, float *inv_std, const float *x, const float *scale,
                     const float *bias, int64_t rows, int64_t cols, float eps) {
    // x, y are (rows, cols); scale, bias are (cols); mean, inv_std are (rows)
    Norm p = {.y = y, .mean_out = mean, .inv_std = inv_std, .x = x, .scale = scale, .bias = bias,
              .rows = rows, .cols = cols, .eps = eps};
    k_par_for(rows, rows * cols, layernorm_rows, &p);
}

void k_layernorm_f32_bf16out(uint16_t *y, float *mean, float *inv_std, const float *x, const float *scale,
                             const float *bias, int64_t rows, int64_t cols, float eps)
{
    Norm p = {.y16 = y, .mean_out = mean, .inv_std = inv_std, .x = x, .scale = scale, .bias = bias,
              .rows = rows, .cols = cols, .eps = eps};
    k_par_for(rows, rows * cols, layernorm_rows, &p);
}

/* The mean of x^2 over n floats, in double (LANES partial sums). */
static double mean_square(const float *x, int64_t n)
{
    double s[LANES] = {0}, t = 0;
    int64_t nv = n - n % LANES;
    for (int64_t i = 0; i < nv; i += LANES)
        for (int l = 0; l < LANES; l++) s[l] += (double)x[i + l] * x[i + l];
    for (int64_t i = nv; i < n; i++) t += (double)x[i] * x[i];
    for (int l = 0; l < LANES; l++) t += s[l];
    return n ? t / (double)n : 0;
}

static void rmsnorm_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Norm *p = arg;
    int64_t cols = p->cols;
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = p->x + r * cols;
        float is = (float)(1.0 / sqrt(mean_square(xr, cols) + (double)p->eps));
        for (int64_t i = 0; i < cols; i++) {
            float o = xr[i] * is * p->scale[i];
            if (p->y16) p->y16[r * cols + i] = k_bf16_rne(o);
            else p->y[r * cols + i] = o;
        }
    }
}

void k_rmsnorm_f32(float *y, const float *x, const float *scale, int64_t rows, int64_t cols, float eps)
{
    Norm p = {.y = y, .x = x, .scale = scale, .rows = rows, .cols = cols, .eps = eps};
    k_par_for(rows, rows * cols, rmsnorm_rows, &p);
}

void k_rmsnorm_f32_bf16out(uint16_t *y, const float *x, const float *scale, int64_t rows, int64_t cols, float eps)
{
    Norm p = {.y16 = y, .x = x, .scale = scale, .rows = rows, .cols = cols, .eps = eps};
    k_par_for(rows, rows * cols, rmsnorm_rows, &p);
}

/* Groups [lo, hi) of the N * groups. */
static void groupnorm_groups(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Norm *p = arg;
    float *y = p->y, eps = p->eps;
    const float *x = p->x, *scale = p->scale, *bias = p->bias;
    int64_t C = p->C, groups = p->groups, spatial = p->spatial;
    int64_t cpg = groups > 0 ? C / groups : 0, len = cpg * spatial;
    for (int64_t r = lo; r < hi; r++) {
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

void k_groupnorm_f32(float *y, const float *x, const float *scale, const float *bias, int64_t N,
                     int64_t C, int64_t groups, int64_t spatial, float eps) {
    // x, y are (N, C, spatial); a group is C / groups consecutive channels, contiguous in memory
    Norm p = {.y = y, .x = x, .scale = scale, .bias = bias, .N = N, .C = C, .groups = groups,
              .spatial = spatial, .eps = eps};
    k_par_for(N * groups, N * C * spatial, groupnorm_groups, &p);
}
