/* LayerNormalization and its gradient (lk.cuh): a block per row, the row's
 * sums in double through lk_block_sum, with knorm.c's and kgrad.c's
 * formulas (the mean split into a float and its remainder, so x - mean is
 * exact near the mean). The gradient's dscale and dbias are sums over rows:
 * a thread per column adds the rows in order from the per-row statistics
 * the first kernel leaves in the workspace (no atomics, so the same bits on
 * every run). */
#include "lk_block.cuh"

#define NORM_THREADS 128

/* the row's mean and variance in double, in every thread */
static __device__ void row_moments(const float *xr, int64_t cols, double *m, double *v, double *part)
{
    double s = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i];
    double mean = lk_block_sum(s, part) / (double)cols, q = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        double d = xr[i] - mean;
        q += d * d;
    }
    *m = mean, *v = lk_block_sum(q, part) / (double)cols;
}

static __global__ void layernorm(float *y, float *mean, float *inv_std, const float *x, const float *scale,
                                 const float *bias, int64_t rows, int64_t cols, float eps)
{
    // x, y are (rows, cols); scale, bias (cols); mean, inv_std (rows); block b normalizes row b
    __shared__ double part[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        double m, v;
        row_moments(xr, cols, &m, &v, part);
        float mf = (float)m, ml = (float)(m - (double)mf), is = (float)(1.0 / sqrt(v + (double)eps));
        for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
            float n = ((xr[i] - mf) - ml) * is;
            yr[i] = bias ? n * scale[i] + bias[i] : n * scale[i];
        }
        if (threadIdx.x == 0 && mean) mean[r] = mf;
        if (threadIdx.x == 0 && inv_std) inv_std[r] = is;
    }
}

static unsigned row_blocks(int64_t rows) { return (unsigned)(rows < 65535 ? (rows ? rows : 1) : 65535); }

int lk_layernorm_f32(cudaStream_t s, float *y, float *mean, float *inv_std, const float *x, const float *scale,
                     const float *bias, int64_t rows, int64_t cols, float eps)
{
    if (rows * cols == 0) return 0;
    return LOOM_LAUNCH(layernorm, row_blocks(rows), NORM_THREADS, 0, s, y, mean, inv_std, x, scale, bias, rows,
                       cols, eps);
}

size_t lk_layernorm_grad_f32_ws(int64_t rows) { return (size_t)(2 * rows) * sizeof(double); }

static __global__ void layernorm_grad_rows(float *dx, double *st, const float *dy, const float *x, const float *scale,
                                           const float *mean, const float *inv_std, int64_t rows, int64_t cols,
                                           float eps)
{
    // x, dy, dx are (rows, cols); st (rows, 2) gets each row's mean and 1 / std
    __shared__ double part[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        double m, is;
        if (mean && inv_std) {
            m = mean[r], is = inv_std[r];
        } else {
            double v;
            row_moments(xr, cols, &m, &v, part);
            is = 1.0 / sqrt(v + (double)eps);
        }
        if (threadIdx.x == 0) st[2 * r] = m, st[2 * r + 1] = is;
        double sg = 0, sgx = 0;
        for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
            double g = (double)dyr[i] * scale[i];
            sg += g, sgx += g * (xr[i] - m) * is;
        }
        double mg = lk_block_sum(sg, part) / (double)cols, mgx = lk_block_sum(sgx, part) / (double)cols;
        if (dx)
            for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
                double g = (double)dyr[i] * scale[i], xh = (xr[i] - m) * is;
                dx[r * cols + i] = (float)(is * (g - mg - xh * mgx));
            }
    }
}

static __global__ void layernorm_grad_params(float *dscale, float *dbias, const double *st, const float *dy,
                                             const float *x, int64_t rows, int64_t cols)
{
    // a thread per column j: the sums over rows, in row order
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x) {
        double ss = 0, sb = 0;
        for (int64_t r = 0; r < rows; r++) {
            double d = dy[r * cols + j];
            ss += d * ((x[r * cols + j] - st[2 * r]) * st[2 * r + 1]);
            sb += d;
        }
        if (dscale) dscale[j] = (float)ss;
        if (dbias) dbias[j] = (float)sb;
    }
}

int lk_layernorm_grad_f32(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, const float *mean, const float *inv_std, int64_t rows, int64_t cols,
                          float eps, void *ws)
{
    if (rows * cols == 0) return 0;
    double *st = (double *)ws;
    if (LOOM_LAUNCH(layernorm_grad_rows, row_blocks(rows), NORM_THREADS, 0, s, dx, st, dy, x, scale, mean, inv_std,
                    rows, cols, eps))
        return -1;
    if (!dscale && !dbias) return 0;
    return LOOM_LAUNCH(layernorm_grad_params, lk_blocks(cols), LK_THREADS, 0, s, dscale, dbias, st, dy, x, rows,
                       cols);
}
