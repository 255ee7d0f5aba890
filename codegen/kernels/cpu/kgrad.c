/* Backward and optimizer kernels (float32), part one: activation, softmax,
 * normalization and loss gradients, the global gradient norm, and the SGD
 * and AdamW updates (the internal loom.* ops of ir/train.h; kgrad_nn.c holds
 * the convolution, pooling, resize and indexing gradients).
 *
 * Each kernel is the derivative of the forward kernel as implemented: the
 * norms recompute their statistics from x the way knorm.c does (two-pass,
 * population variance, in double), at the kinks the activations take
 * PyTorch's one-sided derivative, and the optimizers transcribe
 * torch.optim.SGD / AdamW operation by operation so that a step matches
 * PyTorch's within float rounding. Row sums run in double on one thread each;
 * parameter gradients (dscale, dbias) are split over threads by channel or
 * column, every column summed whole in row order: no result depends on the
 * thread count. */
#include "kernels.h"
#include "kmath.h"

#include <math.h>

/* Columns of a parameter gradient summed together in one sweep over the rows. */
#define COLS_BLOCK 256
/* Fixed partial sums of the global norm per tensor (the split depends on the size only). */
#define NORM_BLOCKS 64

/* The operands of a gradient kernel, for its rows (columns, channels) [lo, hi). */
typedef struct {
    float *dx, *dscale, *dbias;
    const float *dy, *x, *y, *scale, *bias, *mean, *var, *inv_std;
    const uint16_t *x16; /* batchnorm_grad_channels: x as bfloat16 (given statistics only) */
    double *st;
    int64_t N, C, groups, spatial, rows, cols, inner, len;
    float alpha, beta, gamma, eps;
    int act, log, training;
    int relu; /* batchnorm_grad_channels: dy is Relu's, masked where the normalization of x is not positive */
    int rms; /* layernorm_grad_*: loom.RMSNormGrad (no mean, no mean(g) term) */
} Grad;

/* ---- activations ---- */

/* GELU's derivative in float through kmath.h's k_erff, k_expf and k_tanhf
 * (within 8 ulp of libm's), a loop the compiler vectorizes: libm's double
 * tanh and erf per element made gpt2_tiny's two GELU gradients a quarter of
 * its training step (356 us each for 32768 elements on 2 threads). */
static void gelu_grad(float *dx, const float *dy, const float *x, int64_t lo, int64_t hi, int tanh_form)
{
    if (tanh_form)
        for (int64_t i = lo; i < hi; i++) dx[i] = dy[i] * k_gelu_grad(x[i], 1);
    else
        for (int64_t i = lo; i < hi; i++) dx[i] = dy[i] * k_gelu_grad(x[i], 0);
}

static void activation_grad_elems(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Grad *p = arg;
    float *dx = p->dx, alpha = p->alpha, beta = p->beta, gamma = p->gamma;
    const float *dy = p->dy, *x = p->x;
    int act = p->act;
    if (act == K_ACT_GELU || act == K_ACT_GELU_TANH) {
        gelu_grad(dx, dy, x, lo, hi, act == K_ACT_GELU_TANH);
        return;
    }
    for (int64_t i = lo; i < hi; i++) {
        double v = x[i], d;
        switch (act) {
        case K_ACT_RELU: d = v > 0; break;
        case K_ACT_LEAKY_RELU: d = v > 0 ? 1 : alpha; break;
        case K_ACT_ELU: d = v > 0 ? 1 : alpha * exp(v); break;
        case K_ACT_SELU: d = v > 0 ? gamma : (double)gamma * alpha * exp(v); break;
        case K_ACT_HARD_SIGMOID: {
            double t = (double)alpha * v + beta;
            d = t > 0 && t < 1 ? alpha : 0; // flat outside the open ramp, as PyTorch
            break;
        }
        default: d = v < -3 ? 0 : v > 3 ? 1 : v / 3 + 0.5; break; // K_ACT_HARD_SWISH
        }
        dx[i] = (float)(dy[i] * d);
    }
}

void k_activation_grad_f32(float *dx, const float *dy, const float *x, int64_t n, int act,
                           float alpha, float beta, float gamma)
{
    // dx, dy, x are (n); the derivative in double, then rounded once (GELU: in float, gelu_grad)
    Grad p = {.dx = dx, .dy = dy, .x = x, .act = act, .alpha = alpha, .beta = beta, .gamma = gamma};
    k_par_for(n, n, activation_grad_elems, &p);
}

/* ---- softmax ---- */

/* Columns [lo, hi) of the outer * inner. */
static void softmax_grad_columns(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Grad *p = arg;
    float *dx = p->dx;
    const float *dy = p->dy, *y = p->y;
    int64_t len = p->len, inner = p->inner;
    int log = p->log;
    for (int64_t q = lo; q < hi; q++) {
        int64_t base = (q / inner) * len * inner + q % inner;
        const float *dyc = dy + base, *yc = y + base;
        float *dxc = dx + base;
        double s = 0; // log: sum(dy); softmax: sum(dy * y)
        for (int64_t i = 0; i < len; i++) s += log ? dyc[i * inner] : (double)dyc[i * inner] * yc[i * inner];
        for (int64_t i = 0; i < len; i++) {
            int64_t k = i * inner;
            dxc[k] = (float)(log ? dyc[k] - exp((double)yc[k]) * s : yc[k] * (dyc[k] - s));
        }
    }
}

void k_softmax_grad_f32(float *dx, const float *dy, const float *y, int64_t outer, int64_t len,
                        int64_t inner, int log)
{
    // dx, dy, y are (outer, len, inner); one (outer, inner) column per iteration
    Grad p = {.dx = dx, .dy = dy, .y = y, .len = len, .inner = inner, .log = log};
    k_par_for(outer * inner, outer * inner * len, softmax_grad_columns, &p);
}

/* ---- normalization ---- */

/* Mean and population variance of n floats at stride st, two-pass in double
 * (knorm.c's statistics; its lane order only moves the last bit). */
static void moments(const float *x, int64_t n, int64_t st, double *mean, double *var)
{
    double s = 0, q = 0;
    for (int64_t i = 0; i < n; i++) s += x[i * st];
    double m = n ? s / (double)n : 0;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i * st] - m;
        q += d * d;
    }
    *mean = m, *var = n ? q / (double)n : 0;
}

/* dx over one normalized set of n elements given xhat = (x - m) * is and
 * g = dy * scale: dx = is * (g - mean(g) - xhat * mean(g * xhat)). The set is
 * `parts` runs of `len` elements `gap` apart, run p scaled by sc[p * sc_st]
 * (sc NULL: 1). */
static void norm_dx(float *dx, const float *dy, const float *x, const float *sc, int64_t sc_st,
                    int64_t parts, int64_t len, int64_t gap, double m, double is)
{
    double sg = 0, sgx = 0, n = (double)(parts * len);
    for (int64_t p = 0; p < parts; p++)
        for (int64_t i = 0; i < len; i++) {
            int64_t k = p * gap + i;
            double g = (double)dy[k] * (sc ? sc[p * sc_st] : 1.0f);
            sg += g, sgx += g * (x[k] - m) * is;
        }
    double mg = sg / n, mgx = sgx / n;
    for (int64_t p = 0; p < parts; p++)
        for (int64_t i = 0; i < len; i++) {
            int64_t k = p * gap + i;
            double g = (double)dy[k] * (sc ? sc[p * sc_st] : 1.0f), xh = (x[k] - m) * is;
            dx[k] = (float)(is * (g - mg - xh * mgx));
        }
}

size_t k_layernorm_grad_f32_ws(int64_t rows) { return (size_t)(2 * rows) * sizeof(double); }

/* Rows [lo, hi): their statistics into st, and dx. */
static void layernorm_grad_rows(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Grad *p = arg;
    float *dx = p->dx, eps = p->eps;
    const float *dy = p->dy, *x = p->x, *scale = p->scale, *mean = p->mean, *inv_std = p->inv_std;
    double *st = p->st;
    int64_t cols = p->cols;
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        double m, is;
        if (p->rms) { /* r as k_rmsnorm_f32 rounds it */
            double q = 0;
            for (int64_t i = 0; i < cols; i++) q += (double)xr[i] * xr[i];
            m = 0, is = (float)(1.0 / sqrt((cols ? q / (double)cols : 0) + (double)eps));
        } else if (mean && inv_std) {
            m = mean[r], is = inv_std[r];
        } else {
            double v;
            moments(xr, cols, 1, &m, &v);
            is = 1.0 / sqrt(v + (double)eps);
        }
        st[2 * r] = m, st[2 * r + 1] = is;
        // scale varies along the row here, so fold it into g per element
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < cols; i++) {
            double g = (double)dyr[i] * scale[i];
            sg += g, sgx += g * (xr[i] - m) * is;
        }
        double mg = p->rms ? 0 : sg / (double)cols, mgx = sgx / (double)cols;
        if (dx)
            for (int64_t i = 0; i < cols; i++) {
                double g = (double)dyr[i] * scale[i], xh = (xr[i] - m) * is;
                dx[r * cols + i] = (float)(is * (g - mg - xh * mgx));
            }
    }
}

/* Blocks [lo, hi) of COLS_BLOCK columns of dscale and dbias, each summed
 * over all rows in row order by one thread. */
static void layernorm_grad_params(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Grad *p = arg;
    float *dscale = p->dscale, *dbias = p->dbias;
    const float *dy = p->dy, *x = p->x;
    const double *st = p->st;
    int64_t rows = p->rows, cols = p->cols;
    for (int64_t b = lo; b < hi; b++) {
        int64_t j0 = b * COLS_BLOCK, j1 = j0 + COLS_BLOCK < cols ? j0 + COLS_BLOCK : cols;
        double ss[COLS_BLOCK] = {0}, sb[COLS_BLOCK] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * cols, *dyr = dy + r * cols;
            double m = st[2 * r], is = st[2 * r + 1];
            for (int64_t j = j0; j < j1; j++) {
                ss[j - j0] += (double)dyr[j] * ((xr[j] - m) * is);
                sb[j - j0] += dyr[j];
            }
        }
        for (int64_t j = j0; j < j1; j++) {
            if (dscale) dscale[j] = (float)ss[j - j0];
            if (dbias) dbias[j] = (float)sb[j - j0];
        }
    }
}

void k_layernorm_grad_f32(float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, const float *mean, const float *inv_std,
                          int64_t rows, int64_t cols, float eps, void *ws)
{
    // x, dy, dx are (rows, cols); scale, dscale, dbias (cols); mean, inv_std (rows)
    // st = ws (rows, 2): each row's mean and 1 / std
    Grad p = {.dx = dx, .dscale = dscale, .dbias = dbias, .dy = dy, .x = x, .scale = scale, .mean = mean,
              .inv_std = inv_std, .st = ws, .rows = rows, .cols = cols, .eps = eps};
    k_par_for(rows, rows * cols, layernorm_grad_rows, &p);
    if (!dscale && !dbias) return;
    k_par_for((cols + COLS_BLOCK - 1) / COLS_BLOCK, rows * cols, layernorm_grad_params, &p);
}

void k_rmsnorm_grad_f32(float *dx, float *dscale, const float *dy, const float *x, const float *scale,
                        int64_t rows, int64_t cols, float eps, void *ws)
{
    Grad p = {.dx = dx, .dscale = dscale, .dy = dy, .x = x, .scale = scale, .st = ws, .rows = rows, .cols = cols,
              .eps = eps, .rms = 1};
    k_par_for(rows, rows * cols, layernorm_grad_rows, &p);
    if (dscale) k_par_for((cols + COLS_BLOCK - 1) / COLS_BLOCK, rows * cols, layernorm_grad_params, &p);
}

/* Channels [lo, hi), each with its sums over (N, spatial); x16 (a constant
 * where it is inlined): x is p->x16, bfloat16, widened as it is loaded. */
static inline __attribute__((always_inline)) void bn_grad_channels(const Grad *p, int64_t lo, int64_t hi, int x16)
{
    float *dx = p->dx, *dscale = p->dscale, *dbias = p->dbias, eps = p->eps;
    const float *dy = p->dy, *x = p->x, *scale = p->scale, *mean = p->mean, *var = p->var;
    int64_t N = p->N, C = p->C, spatial = p->spatial;
    int training = p->training;
    for (int64_t c = lo; c < hi; c++) {
        const float *xc = x16 ? NULL : x + c * spatial, *dyc = dy + c * spatial;
        const uint16_t *xh = x16 ? p->x16 + c * spatial : NULL;
#define XC(e) (x16 ? k_bf16_f32(xh[e]) : xc[e])
        int64_t gap = C * spatial;
        double m, v;
        if (training) {
            double s = 0, q = 0, cnt = (double)N * (double)spatial;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < spatial; i++) s += xc[n * gap + i];
            m = s / cnt;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < spatial; i++) {
                    double d = xc[n * gap + i] - m;
                    q += d * d;
                }
            v = q / cnt;
        } else {
            m = mean[c], v = var[c];
        }
        double is = 1.0 / sqrt(v + (double)eps), sc = scale ? scale[c] : 1.0f;
        double sg = 0, sgx = 0;
        /* relu: dy * (y > 0) as ActivationGrad computed it, y the forward's
         * Relu output; written into dx first (then dx over dy as usual), or
         * made as it is read when dx is not wanted or is written over x
         * (whose elements the mask needs until each is overwritten) */
        float fm = 0, fa = 0, fb = 0;
        int premask = p->relu && dx && (const void *)dx != (const void *)x;
        if (p->relu) fm = mean[c], fa = k_bn_factor(scale[c], var[c], eps), fb = p->bias[c];
        if (premask) {
            float *dbc = dx + c * spatial;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < spatial; i++)
                    dbc[n * gap + i] = dyc[n * gap + i] * (float)(k_bn_relu(XC(n * gap + i), fm, fa, fb) > 0);
            dyc = dbc;
        }
#define DY(e) (p->relu && !premask ? dyc[e] * (float)(k_bn_relu(XC(e), fm, fa, fb) > 0) : dyc[e])
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < spatial; i++) {
                double g = DY(n * gap + i);
                sg += g, sgx += g * (XC(n * gap + i) - m) * is;
            }
        if (dscale) dscale[c] = (float)sgx;
        if (dbias) dbias[c] = (float)sg;
        if (!dx) continue;
        if (training) {
            norm_dx(dx + c * spatial, dyc, xc, scale ? scale + c : NULL, 0, N, spatial, gap, m, is);
        } else {
            // the statistics are constants: y is affine in x
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < spatial; i++)
                    dx[c * spatial + n * gap + i] = (float)(DY(n * gap + i) * sc * is);
        }
#undef DY
#undef XC
    }
}

static void batchnorm_grad_channels(void *arg, int64_t lo, int64_t hi, int tid) { bn_grad_channels(arg, lo, hi, 0); }

static void batchnorm_grad_channels_x16(void *arg, int64_t lo, int64_t hi, int tid)
{
    bn_grad_channels(arg, lo, hi, 1);
}

/* The four entries below: x (float32) or x16 (bfloat16), relu with the
 * forward's bias, batch statistics (training) or the given ones; x, dy,
 * dx are (N, C, spatial). */
static void batchnorm_grad(float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                           const uint16_t *x16, const float *scale, const float *bias, const float *mean,
                           const float *var, int64_t N, int64_t C, int64_t spatial, float eps, int training)
{
    Grad p = {.dx = dx, .dscale = dscale, .dbias = dbias, .dy = dy, .x = x, .x16 = x16, .scale = scale,
              .bias = bias, .mean = mean, .var = var, .N = N, .C = C, .spatial = spatial, .eps = eps,
              .training = training, .relu = bias != NULL};
    k_par_for(C, N * C * spatial, x16 ? batchnorm_grad_channels_x16 : batchnorm_grad_channels, &p);
}

void k_batchnorm_grad_f32(float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, const float *mean, const float *var, int64_t N,
                          int64_t C, int64_t spatial, float eps, int training)
{
    batchnorm_grad(dx, dscale, dbias, dy, x, NULL, scale, NULL, mean, var, N, C, spatial, eps, training);
}

void k_batchnorm_relu_grad_f32(float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                               const float *scale, const float *bias, const float *mean, const float *var,
                               int64_t N, int64_t C, int64_t spatial, float eps)
{
    batchnorm_grad(dx, dscale, dbias, dy, x, NULL, scale, bias, mean, var, N, C, spatial, eps, 0);
}

void k_batchnorm_grad_bf16x(float *dx, float *dscale, float *dbias, const float *dy, const uint16_t *x,
                            const float *scale, const float *mean, const float *var, int64_t N, int64_t C,
                            int64_t spatial, float eps)
{
    batchnorm_grad(dx, dscale, dbias, dy, NULL, x, scale, NULL, mean, var, N, C, spatial, eps, 0);
}

void k_batchnorm_relu_grad_bf16x(float *dx, float *dscale, float *dbias, const float *dy, const uint16_t *x,
                                 const float *scale, const float *bias, const float *mean, const float *var,
                                 int64_t N, int64_t C, int64_t spatial, float eps)
{
    batchnorm_grad(dx, dscale, dbias, dy, NULL, x, scale, bias, mean, var, N, C, spatial, eps, 0);
}

size_t k_groupnorm_grad_f32_ws(int64_t N, int64_t groups)
{
    return (size_t)(2 * N * groups) * sizeof(double);
}

/* Groups [lo, hi) of the N * groups: statistics into st, and dx. */
static void groupnorm_grad_groups(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Grad *p = arg;
    float *dx = p->dx, eps = p->eps;
    const float *dy = p->dy, *x = p->x, *scale = p->scale;
    double *st = p->st;
    int64_t C = p->C, groups = p->groups, spatial = p->spatial;
    int64_t cpg = groups > 0 ? C / groups : 0, len = cpg * spatial;
    for (int64_t r = lo; r < hi; r++) {
        double m, v;
        moments(x + r * len, len, 1, &m, &v);
        double is = 1.0 / sqrt(v + (double)eps);
        st[2 * r] = m, st[2 * r + 1] = is;
        if (dx)
            norm_dx(dx + r * len, dy + r * len, x + r * len, scale ? scale + (r % groups) * cpg : NULL, 1,
                    cpg, spatial, spatial, m, is);
    }
}

/* Channels [lo, hi) of dscale and dbias, summed over the batch in order. */
static void groupnorm_grad_params(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Grad *p = arg;
    float *dscale = p->dscale, *dbias = p->dbias;
    const float *dy = p->dy, *x = p->x;
    const double *st = p->st;
    int64_t N = p->N, C = p->C, groups = p->groups, spatial = p->spatial;
    int64_t cpg = groups > 0 ? C / groups : 0;
    for (int64_t c = lo; c < hi; c++) {
        double ss = 0, sb = 0;
        for (int64_t n = 0; n < N; n++) {
            int64_t r = n * groups + c / cpg;
            double m = st[2 * r], is = st[2 * r + 1];
            const float *xr = x + (n * C + c) * spatial, *dyr = dy + (n * C + c) * spatial;
            for (int64_t i = 0; i < spatial; i++) ss += (double)dyr[i] * ((xr[i] - m) * is), sb += dyr[i];
        }
        if (dscale) dscale[c] = (float)ss;
        if (dbias) dbias[c] = (float)sb;
    }
}

void k_groupnorm_grad_f32(float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, int64_t N, int64_t C, int64_t groups,
                          int64_t spatial, float eps, void *ws)
{
    // x, dy, dx are (N, C, spatial); a group is C / groups consecutive channels;
    // st = ws (N * groups, 2): each group's mean and 1 / std
    Grad p = {.dx = dx, .dscale = dscale, .dbias = dbias, .dy = dy, .x = x, .scale = scale, .st = ws,
              .N = N, .C = C, .groups = groups, .spatial = spatial, .eps = eps};
    k_par_for(N * groups, N * C * spatial, groupnorm_grad_groups, &p);
    if (!dscale && !dbias) return;
    k_par_for(C, N * C * spatial, groupnorm_grad_params, &p);
}

/* ---- losses ---- */

/* The factor d loss / d (loss element i) / w: dloss itself, or the scalar
 * dloss divided (mean) by the weight sum of the targets not ignored, summed
 * in double in element order as the forward's fixed blocks do. */
static double loss_coeff(const float *dloss, const int64_t *target, const float *weight, int64_t n,
                         int reduction, int64_t ignore_index, int has_ignore)
{
    if (reduction != 2) return dloss[0];
    double sw = 0;
    for (int64_t i = 0; i < n; i++)
        if (!(has_ignore && target[i] == ignore_index)) sw += weight ? weight[target[i]] : 1.0f;
    return dloss[0] / sw;
}

/* The shared body: dx[n, c, k] = a * (p[n, c, k] - [c == t]) with a = coeff * w[t]
 * (0 where t is ignored), p the softmax of the column (sce) or 0 (nll). */
typedef struct {
    float *dx;
    const float *dloss, *x, *log_prob, *weight;
    const int64_t *target;
    int64_t C, d, ignore_index;
    int reduction, has_ignore, sce;
    double coeff;
} LossGrad;

/* Columns [lo, hi) of the N * d. */
static void loss_grad_columns(void *arg, int64_t lo, int64_t hi, int tid)
{
    const LossGrad *p = arg;
    float *dx = p->dx;
    const float *dloss = p->dloss, *x = p->x, *log_prob = p->log_prob, *weight = p->weight;
    const int64_t *target = p->target;
    int64_t C = p->C, d = p->d, ignore_index = p->ignore_index;
    int reduction = p->reduction, has_ignore = p->has_ignore, sce = p->sce;
    double coeff = p->coeff;
    for (int64_t i = lo; i < hi; i++) {
        int64_t nn = i / d, k = i % d, t = target[i];
        float *dc = dx + nn * C * d + k;
        int skip = has_ignore && t == ignore_index;
        double a = skip ? 0 : (reduction == 0 ? dloss[i] : coeff) * (weight ? weight[t] : 1.0f);
        if (!sce || skip) {
            for (int64_t c = 0; c < C; c++) dc[c * d] = 0;
            if (!skip) dc[t * d] = (float)-a;
            continue;
        }
        const float *xc = x + nn * C * d + k;
        if (log_prob) {
            const float *lc = log_prob + nn * C * d + k;
            for (int64_t c = 0; c < C; c++) dc[c * d] = (float)(a * (exp((double)lc[c * d]) - (c == t)));
            continue;
        }
        // softmax of the column with its max subtracted, as the forward's log_sum_exp
        float mx = xc[0];
        for (int64_t c = 1; c < C; c++) mx = xc[c * d] > mx ? xc[c * d] : mx;
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += exp((double)(xc[c * d] - mx));
        for (int64_t c = 0; c < C; c++) dc[c * d] = (float)(a * (exp((double)(xc[c * d] - mx)) / s - (c == t)));
    }
}

static void loss_grad(float *dx, const float *dloss, const float *x, const float *log_prob,
                      const int64_t *target, const float *weight, int64_t N, int64_t C, int64_t d,
                      int reduction, int64_t ignore_index, int has_ignore, int sce)
{
    int64_t n = N * d;
    LossGrad p = {dx, dloss, x, log_prob, weight, target, C, d, ignore_index, reduction, has_ignore, sce,
                  loss_coeff(dloss, target, weight, n, reduction, ignore_index, has_ignore)};
    k_par_for(n, n * C, loss_grad_columns, &p);
}

int k_sce_loss_grad_f32(float *dx, const float *dloss, const float *x, const float *log_prob,
                        const int64_t *target, const float *weight, int64_t N, int64_t C,
                        int64_t d, int reduction, int64_t ignore_index, int has_ignore)
{
    // dx, x, log_prob are (N, C, d); target (N, d); dloss (N, d) or (1)
    if (k_check_targets("SoftmaxCrossEntropyLoss", target, N * d, C, ignore_index, has_ignore) < 0) return -1;
    loss_grad(dx, dloss, x, log_prob, target, weight, N, C, d, reduction, ignore_index, has_ignore, 1);
    return 0;
}

int k_nll_loss_grad_f32(float *dx, const float *dloss, const int64_t *target, const float *weight,
                        int64_t N, int64_t C, int64_t d, int reduction, int64_t ignore_index,
                        int has_ignore)
{
    if (k_check_targets("NegativeLogLikelihoodLoss", target, N * d, C, ignore_index, has_ignore) < 0) return -1;
    loss_grad(dx, dloss, NULL, NULL, target, weight, N, C, d, reduction, ignore_index, has_ignore, 0);
    return 0;
}

/* ---- global norm and optimizers ---- */

typedef struct {
    double *part;
    const float *g;
    int64_t len, nb;
} NormBlocks;

/* Blocks [lo, hi) of a tensor's nb: each one's sum of squares. */
static void norm_blocks(void *arg, int64_t lo, int64_t hi, int tid)
{
    const NormBlocks *p = arg;
    for (int64_t b = lo; b < hi; b++) {
        double s = 0;
        for (int64_t i = p->len * b / p->nb; i < p->len * (b + 1) / p->nb; i++) s += (double)p->g[i] * p->g[i];
        p->part[b] = s;
    }
}

void k_global_norm_f32(float *y, const float *const *g, const int64_t *n, int count)
{
    // tensors in order; each split into blocks by its size alone, partials added in order
    double total = 0;
    for (int t = 0; t < count; t++) {
        double part[NORM_BLOCKS];
        NormBlocks p = {part, g[t], n[t], n[t] < NORM_BLOCKS ? n[t] : NORM_BLOCKS};
        k_par_for(p.nb, p.len, norm_blocks, &p);
        for (int64_t b = 0; b < p.nb; b++) total += part[b];
    }
    y[0] = (float)sqrt(total);
}

/* An optimizer update's operands, for elements [lo, hi). */
typedef struct {
    float *param, *buf, *m, *v;
    const float *grad, *grad_scale;
    float lr, momentum, weight_decay, gs, beta1, beta2, eps, step_size, bc2_sqrt, decay;
    int nesterov;
} Update;

static void sgd_elems(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Update *u = arg;
    float *param = u->param, *buf = u->buf, lr = u->lr, momentum = u->momentum;
    float weight_decay = u->weight_decay, gs = u->gs;
    const float *grad = u->grad, *grad_scale = u->grad_scale;
    int nesterov = u->nesterov;
    for (int64_t i = lo; i < hi; i++) {
        float g = grad_scale ? grad[i] * gs : grad[i];
        if (weight_decay != 0) g = g + weight_decay * param[i]; // d_p = grad.add(param, alpha=wd)
        if (momentum != 0) {
            float b = buf[i] * momentum + g; // buf.mul_(momentum).add_(d_p); a zero buf is torch's clone
            buf[i] = b;
            g = nesterov ? g + momentum * b : b;
        }
        param[i] = param[i] + -lr * g;
    }
}

void k_sgd_f32(float *param, float *buf, const float *grad, float lr, const float *grad_scale,
               int64_t n, float momentum, float weight_decay, int nesterov)
{
    // param, buf, grad are (n); torch's order of float operations
    Update u = {.param = param, .buf = buf, .grad = grad, .grad_scale = grad_scale, .lr = lr,
                .momentum = momentum, .weight_decay = weight_decay,
                .gs = grad_scale ? *grad_scale : 1.0f, .nesterov = nesterov};
    k_par_for(n, n, sgd_elems, &u);
}

static void adamw_elems(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Update *u = arg;
    float *param = u->param, *m = u->m, *v = u->v, gs = u->gs, beta1 = u->beta1, beta2 = u->beta2;
    float eps = u->eps, step_size = u->step_size, bc2_sqrt = u->bc2_sqrt, decay = u->decay;
    const float *grad = u->grad, *grad_scale = u->grad_scale;
    for (int64_t i = lo; i < hi; i++) {
        float g = grad_scale ? grad[i] * gs : grad[i];
        float p = param[i] * decay;                          // param.mul_(1 - lr * wd)
        float mi = m[i] + (1 - beta1) * (g - m[i]);          // exp_avg.lerp_(grad, 1 - beta1)
        float vi = v[i] * beta2 + (1 - beta2) * (g * g);     // exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
        float denom = sqrtf(vi) / bc2_sqrt + eps;            // (sqrt(v) / sqrt(bc2)).add_(eps)
        m[i] = mi, v[i] = vi;
        param[i] = p + -step_size * (mi / denom);            // param.addcdiv_(m, denom, -step_size)
    }
}

void k_adamw_f32(float *param, float *m, float *v, const float *grad, float lr, int64_t step,
                 const float *grad_scale, int64_t n, float beta1, float beta2, float eps,
                 float weight_decay)
{
    // param, m, v, grad are (n); scalars in double as torch computes them in Python floats
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    Update u = {.param = param, .m = m, .v = v, .grad = grad, .grad_scale = grad_scale,
                .gs = grad_scale ? *grad_scale : 1.0f, .beta1 = beta1, .beta2 = beta2, .eps = eps,
                .step_size = (float)(lr / bc1), .bc2_sqrt = (float)sqrt(bc2),
                .decay = (float)(1 - (double)lr * weight_decay)};
    k_par_for(n, n, adamw_elems, &u);
}
