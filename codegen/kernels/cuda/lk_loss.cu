/* Cross-entropy fused with its softmax, and its gradient (lk.cuh): a block
 * per sample finds its row's max and log-sum-exp (exp in float summed in
 * double, as kloss.c), then one block sums the samples' losses and weights
 * in order. The gradient's mean divides by the count of samples not
 * ignored, which one block counts first. */
#include "lk_block.cuh"

#define ROW_THREADS 256

size_t lk_sce_loss_ws(int64_t N) { return (size_t)(2 * N + 1) * sizeof(double); }

/* row max and log(sum(exp(x - max))) of row n of x (N, C), in every thread */
static __device__ void row_lse(const float *xr, int64_t C, float *m, float *lse, double *dpart, float *fpart)
{
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) mx = xr[c] > mx ? xr[c] : mx;
    mx = lk_block_max(mx, fpart);
    double s = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += (double)expf(xr[c] - mx);
    s = lk_block_sum(s, dpart);
    *m = mx, *lse = (float)log(s);
}

static __device__ int bad_target(int64_t t, int64_t C, int64_t ignore_index, int has_ignore)
{
    return (t < 0 || t >= C) && !(has_ignore && t == ignore_index);
}

static __global__ void sce_rows(double *loss, double *weight, const float *x, const int64_t *target, int64_t N,
                                int64_t C, int64_t ignore_index, int has_ignore)
{
    // x is (N, C), target (N); loss and weight get one entry per sample
    __shared__ double dpart[32];
    __shared__ float fpart[32];
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *xr = x + n * C;
        int64_t t = target[n];
        float m, lse;
        row_lse(xr, C, &m, &lse, dpart, fpart);
        if (threadIdx.x != 0) continue;
        if (bad_target(t, C, ignore_index, has_ignore)) loss[n] = NAN, weight[n] = 1;
        else if (has_ignore && t == ignore_index) loss[n] = 0, weight[n] = 0;
        else loss[n] = -(double)((xr[t] - m) - lse), weight[n] = 1;
    }
}

static __global__ void sce_total(float *y, const double *loss, const double *weight, int64_t N, int reduction)
{
    // one block: the sums over samples, in a fixed order
    __shared__ double part[32];
    double sl = 0, sw = 0;
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x) sl += loss[n], sw += weight[n];
    sl = lk_block_sum(sl, part);
    sw = lk_block_sum(sw, part);
    if (threadIdx.x == 0) y[0] = (float)(reduction == 1 ? sl : sl / sw);
}

int lk_sce_loss_f32(cudaStream_t s, float *y, const float *x, const int64_t *target, int64_t N, int64_t C,
                    int reduction, int64_t ignore_index, int has_ignore, void *ws)
{
    double *loss = (double *)ws, *weight = loss + N;
    unsigned blocks = (unsigned)(N < 65535 ? (N ? N : 1) : 65535);
    return LOOM_LAUNCH(sce_rows, blocks, ROW_THREADS, 0, s, loss, weight, x, target, N, C, ignore_index, has_ignore) ||
           LOOM_LAUNCH(sce_total, 1, ROW_THREADS, 0, s, y, loss, weight, N, reduction);
}

static __global__ void sce_count(double *coeff, const float *dloss, const int64_t *target, int64_t N, int reduction,
                                 int64_t ignore_index, int has_ignore)
{
    // one block: dloss over the count of samples not ignored (mean), or dloss (sum)
    __shared__ double part[32];
    double cnt = 0;
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x) cnt += !(has_ignore && target[n] == ignore_index);
    cnt = lk_block_sum(cnt, part);
    if (threadIdx.x == 0) coeff[0] = reduction == 1 ? (double)dloss[0] : (double)dloss[0] / cnt;
}

static __global__ void sce_grad_rows(float *dx, const double *coeff, const float *x, const int64_t *target, int64_t N,
                                     int64_t C, int64_t ignore_index, int has_ignore)
{
    // dx, x are (N, C): coeff * (softmax(x) - onehot(target)) per row
    __shared__ double dpart[32];
    __shared__ float fpart[32];
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *xr = x + n * C;
        float *dr = dx + n * C;
        int64_t t = target[n];
        int skip = has_ignore && t == ignore_index, bad = bad_target(t, C, ignore_index, has_ignore);
        double a = skip ? 0 : bad ? NAN : coeff[0];
        float mx = -INFINITY;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) mx = xr[c] > mx ? xr[c] : mx;
        mx = lk_block_max(mx, fpart);
        double sum = 0;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) sum += exp((double)(xr[c] - mx));
        sum = lk_block_sum(sum, dpart);
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            dr[c] = skip ? 0.0f : (float)(a * (exp((double)(xr[c] - mx)) / sum - (c == t)));
    }
}

int lk_sce_loss_grad_f32(cudaStream_t s, float *dx, const float *dloss, const float *x, const int64_t *target,
                         int64_t N, int64_t C, int reduction, int64_t ignore_index, int has_ignore, void *ws)
{
    double *coeff = (double *)ws;
    unsigned blocks = (unsigned)(N < 65535 ? (N ? N : 1) : 65535);
    return LOOM_LAUNCH(sce_count, 1, ROW_THREADS, 0, s, coeff, dloss, target, N, reduction, ignore_index, has_ignore) ||
           LOOM_LAUNCH(sce_grad_rows, blocks, ROW_THREADS, 0, s, dx, coeff, x, target, N, C, ignore_index, has_ignore);
}
