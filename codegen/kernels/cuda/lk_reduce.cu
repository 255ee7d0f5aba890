/* Sums and means over the middle axis of [outer, len, inner] (lk.cuh),
 * accumulated in double as k_reduce does: a block per output when inner is
 * 1 (a row's sum split over the block's threads); else a thread per output
 * walking its column in order when the outputs are many or the columns
 * short, and otherwise (a bias's gradient: few, long columns) a block per
 * 32 columns whose rows are split over 32 lanes (lk_col_sum). */
#include "lk_block.cuh"

#define ROW_THREADS 256

static __global__ void reduce_rows(float *y, const float *x, int64_t outer, int64_t len, int kind)
{
    // x is (outer, len), y (outer); block b sums row b
    __shared__ double part[32];
    for (int64_t r = blockIdx.x; r < outer; r += gridDim.x) {
        double s = 0;
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) s += (double)x[r * len + i];
        s = lk_block_sum(s, part);
        if (threadIdx.x == 0) y[r] = (float)(kind == 1 ? s / (double)len : s);
    }
}

static __global__ void reduce_cols(float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int kind)
{
    // x is (outer, len, inner), y (outer, inner); a thread per output
    for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < outer * inner;
         o += (int64_t)gridDim.x * blockDim.x) {
        int64_t a = o / inner, c = o % inner;
        const float *p = x + a * len * inner + c;
        double s = 0;
        for (int64_t i = 0; i < len; i++) s += (double)p[i * inner];
        y[o] = (float)(kind == 1 ? s / (double)len : s);
    }
}

static __global__ void reduce_cols_tiled(float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int kind)
{
    // 32 columns of slice a per block (lk_col_sum): the long reductions, such as a bias's gradient
    __shared__ double part[LK_COL_LANES * 32];
    int64_t c = blockIdx.x * 32 + threadIdx.x % 32;
    for (int64_t a = blockIdx.y; a < outer; a += gridDim.y) {
        const float *p = x + a * len * inner + c;
        double s = 0;
        if (c < inner)
            for (int64_t i = threadIdx.x / 32; i < len; i += LK_COL_LANES) s += (double)p[i * inner];
        s = lk_col_sum(s, part);
        if (threadIdx.x < 32 && c < inner) y[a * inner + c] = (float)(kind == 1 ? s / (double)len : s);
    }
}

int lk_reduce_f32(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int kind)
{
    if (outer * inner == 0) return 0;
    if (inner == 1) {
        unsigned blocks = (unsigned)(outer < 65535 ? outer : 65535);
        return LOOM_LAUNCH(reduce_rows, blocks, ROW_THREADS, 0, s, y, x, outer, len, kind);
    }
    // a thread per output while there are enough outputs to fill the GPU, or their columns are short
    if (len < 64 || outer * inner >= ((int64_t)1 << 18) || (inner + 31) / 32 > 0x7fffffff)
        return LOOM_LAUNCH(reduce_cols, lk_blocks(outer * inner), LK_THREADS, 0, s, y, x, outer, len, inner, kind);
    return LOOM_LAUNCH(reduce_cols_tiled, dim3((unsigned)((inner + 31) / 32), (unsigned)(outer < 65535 ? outer : 65535)),
                       32 * LK_COL_LANES, 0, s, y, x, outer, len, inner, kind);
}

/* x's offset of element r of output o's reduction: o's base (its kept
 * axes) plus r's index on the reduced axes */
static __device__ inline int64_t axes_offset(const LkNd &p, int64_t base, int64_t r)
{
    int64_t off = base, st = 1;
    for (int k = p.rank - 1; k >= 0; k--) {
        if (p.dst_stride[k]) off += r % p.dims[k] * st, r /= p.dims[k];
        st *= p.dims[k];
    }
    return off;
}

static __device__ inline int64_t axes_base(const LkNd &p, int64_t o)
{
    int64_t base = 0, st = 1;
    for (int k = p.rank - 1; k >= 0; k--) { // the kept axes' index from o
        if (!p.dst_stride[k]) base += o % p.dims[k] * st, o /= p.dims[k];
        st *= p.dims[k];
    }
    return base;
}

static __global__ void reduce_axes(float *y, const float *x, LkNd p, int64_t nout, int64_t len, int kind)
{
    // x (dims); p.dst_stride[k] is 1 on a reduced axis: a thread per output walks its len elements in order
    for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < nout; o += (int64_t)gridDim.x * blockDim.x) {
        int64_t base = axes_base(p, o);
        double s = 0;
        for (int64_t r = 0; r < len; r++) s += (double)x[axes_offset(p, base, r)];
        y[o] = (float)(kind == 1 ? s / (double)len : s);
    }
}

static __global__ void reduce_axes_block(float *y, const float *x, LkNd p, int64_t nout, int64_t len, int kind)
{
    // a block per output, its len elements split over the block's threads (a conv bias's gradient: a
    // channel's sum over the batch and the positions)
    __shared__ double part[32];
    for (int64_t o = blockIdx.x; o < nout; o += gridDim.x) {
        int64_t base = axes_base(p, o);
        double s = 0;
        for (int64_t r = threadIdx.x; r < len; r += blockDim.x) s += (double)x[axes_offset(p, base, r)];
        s = lk_block_sum(s, part);
        if (threadIdx.x == 0) y[o] = (float)(kind == 1 ? s / (double)len : s);
    }
}

int lk_reduce_axes_f32(cudaStream_t s, float *y, const float *x, const LkNd *p, int kind)
{
    int64_t nout = 1, len = 1;
    for (int k = 0; k < p->rank; k++) {
        if (p->dst_stride[k]) len *= p->dims[k];
        else nout *= p->dims[k];
    }
    if (nout == 0) return 0;
    // a thread per output where the outputs fill the GPU or the reductions are short; else a block per
    // output (a thread each for unet_small's 16 conv biases, summing 4096 values, took 2.45 ms on an H100)
    if (len < 256 || nout >= ((int64_t)1 << 16))
        return LOOM_LAUNCH(reduce_axes, lk_blocks(nout), LK_THREADS, 0, s, y, x, *p, nout, len, kind);
    return LOOM_LAUNCH(reduce_axes_block, (unsigned)(nout < 65535 ? nout : 65535), ROW_THREADS, 0, s, y, x, *p, nout,
                       len, kind);
}

/* ---- Softmax, LogSoftmax and their gradients over the middle axis of [outer, len, inner] ---- */

static __global__ void softmax_rows(float *y, const float *x, int64_t outer, int64_t len, int is_log)
{
    // inner 1: block b takes row b; max, then exps summed in double (kreduce.c's row softmax)
    __shared__ double dpart[32];
    __shared__ float fpart[32];
    for (int64_t r = blockIdx.x; r < outer; r += gridDim.x) {
        const float *xr = x + r * len;
        float *yr = y + r * len;
        float m = -INFINITY;
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) m = xr[i] > m ? xr[i] : m;
        m = lk_block_max(m, fpart);
        double s = 0;
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
            float d = xr[i] - m;
            s += d < -87.3f ? 0.0 : (double)expf(d);
        }
        s = lk_block_sum(s, dpart);
        float ls = (float)log(s), inv = (float)(1.0 / s);
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
            float d = xr[i] - m;
            yr[i] = is_log ? d - ls : (d < -87.3f ? 0.0f : expf(d)) * inv;
        }
    }
}

static __global__ void softmax_cols(float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int is_log)
{
    // a thread per (outer, inner) column, its len elements inner apart
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < outer * inner;
         q += (int64_t)gridDim.x * blockDim.x) {
        int64_t base = q / inner * len * inner + q % inner;
        const float *xc = x + base;
        float *yc = y + base, m = -INFINITY;
        for (int64_t i = 0; i < len; i++) m = xc[i * inner] > m ? xc[i * inner] : m;
        double s = 0;
        for (int64_t i = 0; i < len; i++) {
            float d = xc[i * inner] - m;
            s += d < -87.3f ? 0.0 : (double)expf(d);
        }
        float ls = (float)log(s), inv = (float)(1.0 / s);
        for (int64_t i = 0; i < len; i++) {
            float d = xc[i * inner] - m;
            yc[i * inner] = is_log ? d - ls : (d < -87.3f ? 0.0f : expf(d)) * inv;
        }
    }
}

int lk_softmax_f32(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int is_log)
{
    if (outer * len * inner == 0) return 0;
    if (inner == 1)
        return LOOM_LAUNCH(softmax_rows, (unsigned)(outer < 65535 ? outer : 65535), ROW_THREADS, 0, s, y, x, outer,
                           len, is_log);
    return LOOM_LAUNCH(softmax_cols, lk_blocks(outer * inner), LK_THREADS, 0, s, y, x, outer, len, inner, is_log);
}

static __global__ void softmax_grad_rows(float *dx, const float *dy, const float *y, int64_t outer, int64_t len,
                                         int is_log)
{
    // inner 1: block b takes row b; log: dx = dy - exp(y) sum(dy), else dx = y (dy - sum(dy y))
    __shared__ double part[32];
    for (int64_t r = blockIdx.x; r < outer; r += gridDim.x) {
        const float *dyr = dy + r * len, *yr = y + r * len;
        double s = 0;
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) s += is_log ? (double)dyr[i] : (double)dyr[i] * yr[i];
        s = lk_block_sum(s, part);
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x)
            dx[r * len + i] = (float)(is_log ? dyr[i] - exp((double)yr[i]) * s : yr[i] * (dyr[i] - s));
    }
}

static __global__ void softmax_grad_cols(float *dx, const float *dy, const float *y, int64_t outer, int64_t len,
                                         int64_t inner, int is_log)
{
    // a thread per (outer, inner) column
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < outer * inner;
         q += (int64_t)gridDim.x * blockDim.x) {
        int64_t base = q / inner * len * inner + q % inner;
        const float *dyc = dy + base, *yc = y + base;
        double s = 0;
        for (int64_t i = 0; i < len; i++) s += is_log ? (double)dyc[i * inner] : (double)dyc[i * inner] * yc[i * inner];
        for (int64_t i = 0; i < len; i++) {
            int64_t k = i * inner;
            dx[base + k] = (float)(is_log ? dyc[k] - exp((double)yc[k]) * s : yc[k] * (dyc[k] - s));
        }
    }
}

int lk_softmax_grad_f32(cudaStream_t s, float *dx, const float *dy, const float *y, int64_t outer, int64_t len,
                        int64_t inner, int is_log)
{
    if (outer * len * inner == 0) return 0;
    if (inner == 1)
        return LOOM_LAUNCH(softmax_grad_rows, (unsigned)(outer < 65535 ? outer : 65535), ROW_THREADS, 0, s, dx, dy, y,
                           outer, len, is_log);
    return LOOM_LAUNCH(softmax_grad_cols, lk_blocks(outer * inner), LK_THREADS, 0, s, dx, dy, y, outer, len, inner,
                       is_log);
}
