/* Sums and means over the middle axis of [outer, len, inner] (lk.cuh),
 * accumulated in double as k_reduce does: a block per output when inner is
 * 1 (a row's sum split over the block's threads), else a thread per output
 * walking its column in order. */
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

int lk_reduce_f32(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int kind)
{
    if (outer * inner == 0) return 0;
    if (inner == 1) {
        unsigned blocks = (unsigned)(outer < 65535 ? outer : 65535);
        return LOOM_LAUNCH(reduce_rows, blocks, ROW_THREADS, 0, s, y, x, outer, len, kind);
    }
    return LOOM_LAUNCH(reduce_cols, lk_blocks(outer * inner), LK_THREADS, 0, s, y, x, outer, len, inner, kind);
}

static __global__ void reduce_axes(float *y, const float *x, LkNd p, int64_t nout, int64_t len, int kind)
{
    // x (dims); p.dst_stride[k] is 1 on a reduced axis: a thread per output walks its len elements in order
    for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < nout; o += (int64_t)gridDim.x * blockDim.x) {
        int64_t base = 0, rem = o, st = 1;
        for (int k = p.rank - 1; k >= 0; k--) { // the kept axes' index from o
            if (!p.dst_stride[k]) base += rem % p.dims[k] * st, rem /= p.dims[k];
            st *= p.dims[k];
        }
        double s = 0;
        for (int64_t r = 0; r < len; r++) {
            int64_t off = base, rr = r;
            st = 1;
            for (int k = p.rank - 1; k >= 0; k--) {
                if (p.dst_stride[k]) off += rr % p.dims[k] * st, rr /= p.dims[k];
                st *= p.dims[k];
            }
            s += (double)x[off];
        }
        y[o] = (float)(kind == 1 ? s / (double)len : s);
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
    return LOOM_LAUNCH(reduce_axes, lk_blocks(nout), LK_THREADS, 0, s, y, x, *p, nout, len, kind);
}
