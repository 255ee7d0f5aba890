/* LayerNormalization and loom.RMSNorm (the same kernels, no mean) and their
 * gradients (lk.cuh): a warp per row, the row's sums in double (each lane's
 * elements in order, then the lanes by shuffles: no barrier), with knorm.c's
 * and kgrad.c's formulas (the mean split into a float and its remainder, so
 * x - mean is exact near the mean). The gradient's dscale and dbias are sums
 * over rows, in two kernels with no atomics (the same bits on every run):
 * blocks of NORM_CHUNK rows by 32 columns leave their partial sums in the
 * workspace, then a thread per column adds its chunks in order. */
#include "lk_block.cuh"

#define NORM_THREADS 128 /* 4 warps: 4 rows a block */
#define NORM_CHUNK 128   /* rows per partial sum of dscale, dbias */

/* a sum over a warp's lanes (part NULL: a row to a warp) or over the block (a group to a block) */
static __device__ inline double norm_sum(double v, double *part)
{
    return part ? lk_block_sum(v, part) : lk_lanes_sum(v, 32);
}

/* the row's mean of squares in double, in every lane (loom.RMSNorm; a warp a row) */
static __device__ double row_mean_square(const float *xr, int64_t cols)
{
    double q = 0;
    for (int64_t i = threadIdx.x & 31; i < cols; i += 32) q += (double)xr[i] * xr[i];
    return norm_sum(q, NULL) / (double)cols;
}

/* the mean and variance of x[0, len) in double, in every thread: a warp's (part NULL) or the block's */
static __device__ void moments(const float *x, int64_t len, double *m, double *v, double *part)
{
    int64_t first = part ? threadIdx.x : threadIdx.x & 31, step = part ? blockDim.x : 32;
    double s = 0;
    for (int64_t i = first; i < len; i += step) s += x[i];
    double mean = norm_sum(s, part) / (double)len, q = 0;
    for (int64_t i = first; i < len; i += step) {
        double d = x[i] - mean;
        q += d * d;
    }
    *m = mean, *v = norm_sum(q, part) / (double)len;
}

/* the first row of this warp, and the stride over rows of the grid's warps */
#define WARP_ROW ((int64_t)blockIdx.x * (NORM_THREADS / 32) + threadIdx.x / 32)
#define WARP_ROWS ((int64_t)gridDim.x * (NORM_THREADS / 32))

static __global__ void layernorm(float *y, uint16_t *y16, float *mean, float *inv_std, const float *x,
                                 const float *scale, const float *bias, int64_t rows, int64_t cols, float eps, int rms)
{
    // x, y are (rows, cols); scale, bias (cols); mean, inv_std (rows); a warp normalizes a row;
    // rms: loom.RMSNorm (no mean subtracted); y16 (y NULL): the result rounded to bfloat16
    int lane = threadIdx.x & 31;
    for (int64_t r = WARP_ROW; r < rows; r += WARP_ROWS) {
        const float *xr = x + r * cols;
        double m = 0, v;
        if (rms) v = row_mean_square(xr, cols);
        else moments(xr, cols, &m, &v, NULL);
        float mf = (float)m, ml = (float)(m - (double)mf), is = (float)(1.0 / sqrt(v + (double)eps));
        for (int64_t i = lane; i < cols; i += 32) {
            float n = ((xr[i] - mf) - ml) * is, o = bias ? n * scale[i] + bias[i] : n * scale[i];
            if (y16) y16[r * cols + i] = lk_bf16_rne(o);
            else y[r * cols + i] = o;
        }
        if (lane == 0 && mean) mean[r] = mf;
        if (lane == 0 && inv_std) inv_std[r] = is;
    }
}

static unsigned row_blocks(int64_t rows)
{
    int64_t b = (rows + NORM_THREADS / 32 - 1) / (NORM_THREADS / 32);
    return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

int lk_layernorm_f32(cudaStream_t s, float *y, float *mean, float *inv_std, const float *x, const float *scale,
                     const float *bias, int64_t rows, int64_t cols, float eps)
{
    if (rows * cols == 0) return 0;
    return LOOM_LAUNCH(layernorm, row_blocks(rows), NORM_THREADS, 0, s, y, (uint16_t *)NULL, mean, inv_std, x, scale,
                       bias, rows, cols, eps, 0);
}

int lk_layernorm_f32_bf16out(cudaStream_t s, uint16_t *y, float *mean, float *inv_std, const float *x,
                             const float *scale, const float *bias, int64_t rows, int64_t cols, float eps)
{
    if (rows * cols == 0) return 0;
    return LOOM_LAUNCH(layernorm, row_blocks(rows), NORM_THREADS, 0, s, (float *)NULL, y, mean, inv_std, x, scale,
                       bias, rows, cols, eps, 0);
}

int lk_rmsnorm_f32(cudaStream_t s, float *y, const float *x, const float *scale, int64_t rows, int64_t cols, float eps)
{
    if (rows * cols == 0) return 0;
    return LOOM_LAUNCH(layernorm, row_blocks(rows), NORM_THREADS, 0, s, y, (uint16_t *)NULL, (float *)NULL,
                       (float *)NULL, x, scale, (const float *)NULL, rows, cols, eps, 1);
}

int lk_rmsnorm_f32_bf16out(cudaStream_t s, uint16_t *y, const float *x, const float *scale, int64_t rows, int64_t cols,
                           float eps)
{
    if (rows * cols == 0) return 0;
    return LOOM_LAUNCH(layernorm, row_blocks(rows), NORM_THREADS, 0, s, (float *)NULL, y, (float *)NULL,
                       (float *)NULL, x, scale, (const float *)NULL, rows, cols, eps, 1);
}

/* the workspace: each row's mean and 1 / std, then dscale's and dbias's partial sums, [chunks][cols] each */
static __host__ __device__ int64_t norm_chunks(int64_t rows) { return (rows + NORM_CHUNK - 1) / NORM_CHUNK; }
size_t lk_layernorm_grad_f32_ws(int64_t rows, int64_t cols)
{
    return (size_t)(2 * rows + 2 * norm_chunks(rows) * cols) * sizeof(double);
}

static __global__ void layernorm_grad_rows(float *dx, double *st, const float *dy, const float *x, const float *scale,
                                           const float *mean, const float *inv_std, int64_t rows, int64_t cols,
                                           float eps, int rms)
{
    // x, dy, dx are (rows, cols); st (rows, 2) gets each row's mean and 1 / std; a warp a row;
    // rms: loom.RMSNormGrad (mean 0, no mean(g) term)
    int lane = threadIdx.x & 31;
    for (int64_t r = WARP_ROW; r < rows; r += WARP_ROWS) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        double m, is;
        if (rms) {
            m = 0, is = (float)(1.0 / sqrt(row_mean_square(xr, cols) + (double)eps));
        } else if (mean && inv_std) {
            m = mean[r], is = inv_std[r];
        } else {
            double v;
            moments(xr, cols, &m, &v, NULL);
            is = 1.0 / sqrt(v + (double)eps);
        }
        if (lane == 0) st[2 * r] = m, st[2 * r + 1] = is;
        double sg = 0, sgx = 0;
        for (int64_t i = lane; i < cols; i += 32) {
            double g = (double)dyr[i] * scale[i];
            sg += g, sgx += g * (xr[i] - m) * is;
        }
        double mg = norm_sum(sg, NULL) / (double)cols, mgx = norm_sum(sgx, NULL) / (double)cols;
        if (rms) mg = 0;
        if (dx)
            for (int64_t i = lane; i < cols; i += 32) {
                double g = (double)dyr[i] * scale[i], xh = (xr[i] - m) * is;
                dx[r * cols + i] = (float)(is * (g - mg - xh * mgx));
            }
    }
}

static __global__ void layernorm_grad_part(double *part, const double *st, const float *dy, const float *x,
                                           int64_t rows, int64_t cols)
{
    // block (bx, by): columns 32 bx .. of rows NORM_CHUNK by .. (lk_col_sum), into part [2][chunks][cols]
    __shared__ double ps[LK_COL_LANES * 32];
    int64_t j = blockIdx.x * 32 + threadIdx.x % 32, r0 = (int64_t)blockIdx.y * NORM_CHUNK;
    int64_t r1 = r0 + NORM_CHUNK < rows ? r0 + NORM_CHUNK : rows;
    double ss = 0, sb = 0;
    if (j < cols)
        for (int64_t r = r0 + threadIdx.x / 32; r < r1; r += LK_COL_LANES) {
            double d = dy[r * cols + j];
            ss += d * ((x[r * cols + j] - st[2 * r]) * st[2 * r + 1]);
            sb += d;
        }
    ss = lk_col_sum(ss, ps);
    sb = lk_col_sum(sb, ps);
    if (threadIdx.x < 32 && j < cols) {
        part[blockIdx.y * cols + j] = ss;
        part[(norm_chunks(rows) + blockIdx.y) * cols + j] = sb;
    }
}

static __global__ void layernorm_grad_params(float *dscale, float *dbias, const double *part, int64_t rows,
                                             int64_t cols)
{
    // a thread per column: its chunks' partial sums in order
    int64_t nc = norm_chunks(rows);
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x) {
        double ss = 0, sb = 0;
        for (int64_t c = 0; c < nc; c++) ss += part[c * cols + j], sb += part[(nc + c) * cols + j];
        if (dscale) dscale[j] = (float)ss;
        if (dbias) dbias[j] = (float)sb;
    }
}

static int grad_params(cudaStream_t s, const char *who, float *dscale, float *dbias, double *st, const float *dy,
                       const float *x, int64_t rows, int64_t cols)
{
    if (!dscale && !dbias) return 0;
    int64_t bx = (cols + 31) / 32, by = norm_chunks(rows);
    if (bx > 0x7fffffff || by > 65535)
        return rt_fail("%s: %lld rows by %lld columns, over a grid", who, (long long)rows, (long long)cols);
    double *part = st + 2 * rows;
    return LOOM_LAUNCH(layernorm_grad_part, dim3((unsigned)bx, (unsigned)by), 32 * LK_COL_LANES, 0, s, part, st, dy,
                       x, rows, cols) ||
           LOOM_LAUNCH(layernorm_grad_params, lk_blocks(cols), LK_THREADS, 0, s, dscale, dbias, part, rows, cols);
}

int lk_layernorm_grad_f32(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, const float *mean, const float *inv_std, int64_t rows, int64_t cols,
                          float eps, void *ws)
{
    if (rows * cols == 0) return 0;
    double *st = (double *)ws;
    if (LOOM_LAUNCH(layernorm_grad_rows, row_blocks(rows), NORM_THREADS, 0, s, dx, st, dy, x, scale, mean, inv_std,
                    rows, cols, eps, 0))
        return -1;
    return grad_params(s, "lk_layernorm_grad_f32", dscale, dbias, st, dy, x, rows, cols);
}

int lk_rmsnorm_grad_f32(cudaStream_t s, float *dx, float *dscale, const float *dy, const float *x, const float *scale,
                        int64_t rows, int64_t cols, float eps, void *ws)
{
    if (rows * cols == 0) return 0;
    double *st = (double *)ws;
    if (LOOM_LAUNCH(layernorm_grad_rows, row_blocks(rows), NORM_THREADS, 0, s, dx, st, dy, x, scale,
                    (const float *)NULL, (const float *)NULL, rows, cols, eps, 1))
        return -1;
    return grad_params(s, "lk_rmsnorm_grad_f32", dscale, (float *)NULL, st, dy, x, rows, cols);
}

static __global__ void batchnorm(float *y, const float *x, const float *scale, const float *bias, const float *mean,
                                 const float *var, int64_t C, int64_t spatial, int64_t total, float eps)
{
    // x, y (N, C, spatial): y = (x - mean) * scale / sqrt(var + eps) + bias, knorm.c's float operations
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = e / spatial % C;
        y[e] = lk_bn(x[e], mean[c], lk_bn_factor(scale ? scale[c] : 1.0f, var[c], eps), bias ? bias[c] : 0.0f);
    }
}

int lk_batchnorm_f32(cudaStream_t s, float *y, const float *x, const float *scale, const float *bias,
                     const float *mean, const float *var, int64_t N, int64_t C, int64_t spatial, float eps)
{
    int64_t total = N * C * spatial;
    if (total == 0) return 0;
    return LOOM_LAUNCH(batchnorm, lk_blocks(total), LK_THREADS, 0, s, y, x, scale, bias, mean, var, C, spatial, total,
                       eps);
}

/* dy at element e of channel c, masked where the normalization of x is not
 * positive when relu_bias is given (the gradient of Relu(BatchNormalization),
 * as loom.ActivationGrad computed it: dy * (y > 0)) */
static __device__ inline float grad_in(const float *dy, const float *x, const uint16_t *x16, const float *scale,
                                       const float *mean, const float *var, const float *relu_bias, float eps,
                                       int64_t c, int64_t e)
{
    if (!relu_bias) return dy[e];
    float y = lk_bn_relu(lk_ldx(x, x16, e), mean[c], lk_bn_factor(scale[c], var[c], eps), relu_bias[c]);
    return dy[e] * (float)(y > 0);
}

static __global__ void batchnorm_grad_dx(float *dx, const float *dy, const float *x, const uint16_t *x16,
                                         const float *scale, const float *mean, const float *var,
                                         const float *relu_bias, int64_t C, int64_t spatial, int64_t total, float eps)
{
    // the statistics are constants: dx = dy * scale / sqrt(var + eps), in double as kgrad.c
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = e / spatial % C;
        double is = 1.0 / sqrt((double)var[c] + (double)eps), sc = scale ? scale[c] : 1.0f;
        dx[e] = (float)(grad_in(dy, x, x16, scale, mean, var, relu_bias, eps, c, e) * sc * is);
    }
}

static __global__ void batchnorm_grad_params(float *dscale, float *dbias, const float *dy, const float *x,
                                             const uint16_t *x16, const float *scale, const float *mean, const float *var,
                                             const float *relu_bias, int64_t N, int64_t C, int64_t spatial, float eps)
{
    // a thread per channel: the sums over (N, spatial) in order
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
        double m = mean[c], is = 1.0 / sqrt((double)var[c] + (double)eps), sg = 0, sgx = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < spatial; i++) {
                int64_t e = (n * C + c) * spatial + i;
                double g = grad_in(dy, x, x16, scale, mean, var, relu_bias, eps, c, e);
                sg += g, sgx += g * (lk_ldx(x, x16, e) - m) * is;
            }
        if (dscale) dscale[c] = (float)sgx;
        if (dbias) dbias[c] = (float)sg;
    }
}

static int batchnorm_grad(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const uint16_t *x16, const float *scale, const float *relu_bias, const float *mean,
                          const float *var, int64_t N, int64_t C, int64_t spatial, float eps)
{
    int64_t total = N * C * spatial;
    if (total == 0) return 0;
    // the sums first: dx may be written over dy or x (the program's arena does that when one dies here)
    if ((dscale || dbias) && LOOM_LAUNCH(batchnorm_grad_params, lk_blocks(C), LK_THREADS, 0, s, dscale, dbias, dy, x,
                                         x16, scale, mean, var, relu_bias, N, C, spatial, eps))
        return -1;
    if (!dx) return 0;
    return LOOM_LAUNCH(batchnorm_grad_dx, lk_blocks(total), LK_THREADS, 0, s, dx, dy, x, x16, scale, mean, var,
                       relu_bias, C, spatial, total, eps);
}

int lk_batchnorm_grad_f32(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, const float *mean, const float *var, int64_t N, int64_t C,
                          int64_t spatial, float eps)
{
    return batchnorm_grad(s, dx, dscale, dbias, dy, x, (const uint16_t *)NULL, scale, (const float *)NULL, mean, var,
                          N, C, spatial, eps);
}

int lk_batchnorm_grad_bf16x(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const uint16_t *x,
                            const float *scale, const float *mean, const float *var, int64_t N, int64_t C,
                            int64_t spatial, float eps)
{
    return batchnorm_grad(s, dx, dscale, dbias, dy, (const float *)NULL, x, scale, (const float *)NULL, mean, var, N,
                          C, spatial, eps);
}

int lk_batchnorm_relu_grad_f32(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                               const float *scale, const float *bias, const float *mean, const float *var, int64_t N,
                               int64_t C, int64_t spatial, float eps)
{
    return batchnorm_grad(s, dx, dscale, dbias, dy, x, (const uint16_t *)NULL, scale, bias, mean, var, N, C, spatial,
                          eps);
}

int lk_batchnorm_relu_grad_bf16x(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy,
                                 const uint16_t *x, const float *scale, const float *bias, const float *mean,
                                 const float *var, int64_t N, int64_t C, int64_t spatial, float eps)
{
    return batchnorm_grad(s, dx, dscale, dbias, dy, (const float *)NULL, x, scale, bias, mean, var, N, C, spatial,
                          eps);
}

static __global__ void activation_grad(float *dx, const float *dy, const float *x, int64_t n, int act, float alpha,
                                       float beta, float gamma)
{
    // dx = dy * f'(x), the derivative in double as kgrad.c's (LK_ACT_* as K_ACT_*); GELU's in float, as
    // kgrad.c's gelu_grad (its double erf and tanh were 180 us for GPT-2's [8192, 3072] on an H100)
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        if (act == 6 || act == 7) {
            dx[i] = dy[i] * k_gelu_grad(x[i], act == 7);
            continue;
        }
        double v = x[i], d;
        switch (act) {
        case 0: d = v > 0; break;                                     // Relu
        case 1: d = v > 0 ? 1 : alpha; break;                         // LeakyRelu
        case 2: d = v > 0 ? 1 : alpha * exp(v); break;                // Elu
        case 3: d = v > 0 ? gamma : (double)gamma * alpha * exp(v); break; // Selu
        case 4: {                                                     // HardSigmoid
            double t = (double)alpha * v + beta;
            d = t > 0 && t < 1 ? alpha : 0;
            break;
        }
        case 5: d = v < -3 ? 0 : v > 3 ? 1 : v / 3 + 0.5; break;      // HardSwish
        default: d = 0; break; // GELU: above
        }
        dx[i] = (float)(dy[i] * d);
    }
}

int lk_activation_grad_f32(cudaStream_t s, float *dx, const float *dy, const float *x, int64_t n, int act, float alpha,
                           float beta, float gamma)
{
    if (n == 0) return 0;
    return LOOM_LAUNCH(activation_grad, lk_blocks(n), LK_THREADS, 0, s, dx, dy, x, n, act, alpha, beta, gamma);
}

/* ---- GroupNormalization and InstanceNormalization (groups = C): a block per group ---- */

static unsigned group_blocks(int64_t rows) { return (unsigned)(rows < 65535 ? (rows ? rows : 1) : 65535); }

static __global__ void groupnorm(float *y, const float *x, const float *scale, const float *bias, int64_t C,
                                 int64_t groups, int64_t spatial, int64_t rows, float eps)
{
    // x, y (N, C, spatial); block r normalizes group r of the N * groups, cpg * spatial elements in a row
    __shared__ double part[32];
    int64_t cpg = C / groups, len = cpg * spatial;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xg = x + r * len;
        float *yg = y + r * len;
        double m, v;
        moments(xg, len, &m, &v, part);
        float mf = (float)m, ml = (float)(m - (double)mf), is = (float)(1.0 / sqrt(v + (double)eps));
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
            int64_t c = r % groups * cpg + i / spatial;
            float a = is * (scale ? scale[c] : 1.0f), b = bias ? bias[c] : 0.0f;
            yg[i] = ((xg[i] - mf) - ml) * a + b;
        }
    }
}

int lk_groupnorm_f32(cudaStream_t s, float *y, const float *x, const float *scale, const float *bias, int64_t N,
                     int64_t C, int64_t groups, int64_t spatial, float eps)
{
    int64_t rows = N * groups;
    if (rows * (C / groups) * spatial == 0) return 0;
    return LOOM_LAUNCH(groupnorm, group_blocks(rows), NORM_THREADS, 0, s, y, x, scale, bias, C, groups, spatial, rows,
                       eps);
}

size_t lk_groupnorm_grad_f32_ws(int64_t N, int64_t groups) { return (size_t)(2 * N * groups) * sizeof(double); }

static __global__ void groupnorm_grad_rows(float *dx, double *st, const float *dy, const float *x, const float *scale,
                                           int64_t C, int64_t groups, int64_t spatial, int64_t rows, float eps)
{
    // block r: group r's statistics into st, and its dx (kgrad.c's norm_dx)
    __shared__ double part[32];
    int64_t cpg = C / groups, len = cpg * spatial;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xg = x + r * len, *dyg = dy + r * len;
        const float *sc = scale ? scale + r % groups * cpg : NULL;
        double m, v;
        moments(xg, len, &m, &v, part);
        double is = 1.0 / sqrt(v + (double)eps);
        if (threadIdx.x == 0) st[2 * r] = m, st[2 * r + 1] = is;
        double sg = 0, sgx = 0;
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
            double g = (double)dyg[i] * (sc ? sc[i / spatial] : 1.0f);
            sg += g, sgx += g * (xg[i] - m) * is;
        }
        double mg = lk_block_sum(sg, part) / (double)len, mgx = lk_block_sum(sgx, part) / (double)len;
        if (dx)
            for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
                double g = (double)dyg[i] * (sc ? sc[i / spatial] : 1.0f), xh = (xg[i] - m) * is;
                dx[r * len + i] = (float)(is * (g - mg - xh * mgx));
            }
    }
}

static __global__ void groupnorm_grad_params(float *dscale, float *dbias, const double *st, const float *dy,
                                             const float *x, int64_t N, int64_t C, int64_t groups, int64_t spatial)
{
    // a thread per channel: the sums over (N, spatial) in order
    int64_t cpg = C / groups;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
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

int lk_groupnorm_grad_f32(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, int64_t N, int64_t C, int64_t groups, int64_t spatial, float eps,
                          void *ws)
{
    int64_t rows = N * groups;
    if (rows * (C / groups) * spatial == 0) return 0;
    double *st = (double *)ws;
    if (LOOM_LAUNCH(groupnorm_grad_rows, group_blocks(rows), NORM_THREADS, 0, s, dx, st, dy, x, scale, C, groups,
                    spatial, rows, eps))
        return -1;
    if (!dscale && !dbias) return 0;
    return LOOM_LAUNCH(groupnorm_grad_params, lk_blocks(C), LK_THREADS, 0, s, dscale, dbias, st, dy, x, N, C, groups,
                       spatial);
}
