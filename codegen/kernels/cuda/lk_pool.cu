/* MaxPool and its gradient (lk.cuh), kpool.c's and kgrad_nn.c's rule: the
 * first maximum in window order wins (padding taps skipped). The forward is
 * a thread per output; the gradient finds every output's maximum the same
 * way (a thread per output, its offset in the row as an int32 into the
 * workspace: half the bytes of an int64 index), then a thread per (n, c)
 * row zeroes its dx and adds the row's dy at those places in output order,
 * so overlapping windows sum without atomics and in the cpu's order. */
#include "lk.cuh"

/* A BatchNormalization's vectors and epsilon, by value, and the row's
 * channel: the gradient's maxima are found in Relu(BatchNormalization(x))
 * when scale is not NULL (ir_fold_bn_relu_grad). */
struct PoolBn {
    const float *scale, *bias, *mean, *var;
    float eps;
    int64_t C;
};

/* the flat offset in x's row of output o's first maximum (-1: every tap padding), and its value;
 * bn: of Relu(BatchNormalization(x)), row r's channel r % bn.C */
static __device__ int64_t window_max(const LkPool &p, const float *xr, int64_t o, float *best, const PoolBn &bn,
                                     int64_t r)
{
    float bm = 0, ba = 0, bb = 0;
    if (bn.scale) {
        int64_t c = r % bn.C;
        bm = bn.mean[c], ba = lk_bn_factor(bn.scale[c], bn.var[c], bn.eps), bb = bn.bias[c];
    }
    int64_t in[3], out[3], k[3], st[3], dl[3], pd[3];
    for (int d = 0; d < 3; d++) {
        int on = d < p.nd;
        in[d] = on ? p.in[d] : 1, out[d] = on ? p.out[d] : 1, k[d] = on ? p.k[d] : 1;
        st[d] = on ? p.stride[d] : 1, dl[d] = on ? p.dilation[d] : 1, pd[d] = on ? p.pad[d] : 0;
    }
    int64_t od[3] = {o / (out[1] * out[2]), o / out[2] % out[1], o % out[2]}, at = -1;
    float b = -INFINITY;
    for (int64_t t0 = 0; t0 < k[0]; t0++) {
        int64_t i0 = od[0] * st[0] + t0 * dl[0] - pd[0];
        if (i0 < 0 || i0 >= in[0]) continue;
        for (int64_t t1 = 0; t1 < k[1]; t1++) {
            int64_t i1 = od[1] * st[1] + t1 * dl[1] - pd[1];
            if (i1 < 0 || i1 >= in[1]) continue;
            for (int64_t t2 = 0; t2 < k[2]; t2++) {
                int64_t i2 = od[2] * st[2] + t2 * dl[2] - pd[2];
                if (i2 < 0 || i2 >= in[2]) continue;
                float v = xr[(i0 * in[1] + i1) * in[2] + i2];
                if (bn.scale) v = lk_bn_relu(v, bm, ba, bb);
                if (v > b || at < 0) b = v, at = (i0 * in[1] + i1) * in[2] + i2;
            }
        }
    }
    *best = b;
    return at;
}

static int64_t sizes(const LkPool *p, int64_t *pin, int64_t *pout)
{
    *pin = *pout = 1;
    for (int d = 0; d < p->nd; d++) *pin *= p->in[d], *pout *= p->out[d];
    return p->NC * *pout;
}

static __global__ void maxpool(float *y, const float *x, LkPool p, int64_t pin, int64_t pout)
{
    // x (NC, in...), y (NC, out...): a thread per output
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < p.NC * pout;
         e += (int64_t)gridDim.x * blockDim.x) {
        float b;
        PoolBn none = {NULL, NULL, NULL, NULL, 0.0f, 1};
        window_max(p, x + e / pout * pin, e % pout, &b, none, 0);
        y[e] = b;
    }
}

int lk_maxpool_f32(cudaStream_t s, float *y, const float *x, const LkPool *p)
{
    int64_t pin, pout, n = sizes(p, &pin, &pout);
    if (n == 0) return 0;
    return LOOM_LAUNCH(maxpool, lk_blocks(n), LK_THREADS, 0, s, y, x, *p, pin, pout);
}

size_t lk_maxpool_grad_f32_ws(const LkPool *p)
{
    int64_t pin, pout;
    return (size_t)sizes(p, &pin, &pout) * sizeof(int32_t);
}

static __global__ void maxpool_argmax(int32_t *at, const float *x, LkPool p, int64_t pin, int64_t pout, PoolBn bn)
{
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < p.NC * pout;
         e += (int64_t)gridDim.x * blockDim.x) {
        float b;
        at[e] = (int32_t)window_max(p, x + e / pout * pin, e % pout, &b, bn, e / pout);
    }
}

static __global__ void maxpool_grad_rows(float *dx, const float *dy, const int32_t *at, int64_t NC, int64_t pin,
                                         int64_t pout)
{
    // a thread per (n, c) row: dx zero, then each output's dy added at its maximum, in output order
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < NC; r += (int64_t)gridDim.x * blockDim.x) {
        float *dxr = dx + r * pin;
        for (int64_t i = 0; i < pin; i++) dxr[i] = 0.0f;
        for (int64_t o = 0; o < pout; o++)
            if (at[r * pout + o] >= 0) dxr[at[r * pout + o]] += dy[r * pout + o];
    }
}

static int maxpool_grad(cudaStream_t s, float *dx, const float *dy, const float *x, const LkPool *p, void *ws,
                        PoolBn bn)
{
    int64_t pin, pout, n = sizes(p, &pin, &pout);
    if (p->NC * pin == 0) return 0;
    int32_t *at = (int32_t *)ws; /* offsets in a row: the cuda target refuses rows of 2^31 elements or more */
    return (n && LOOM_LAUNCH(maxpool_argmax, lk_blocks(n), LK_THREADS, 0, s, at, x, *p, pin, pout, bn)) ||
           LOOM_LAUNCH(maxpool_grad_rows, lk_blocks(p->NC), LK_THREADS, 0, s, dx, dy, at, p->NC, pin, pout);
}

int lk_maxpool_grad_f32(cudaStream_t s, float *dx, const float *dy, const float *x, const LkPool *p, void *ws)
{
    PoolBn none = {NULL, NULL, NULL, NULL, 0.0f, 1};
    return maxpool_grad(s, dx, dy, x, p, ws, none);
}

int lk_maxpool_grad_bn_relu_f32(cudaStream_t s, float *dx, const float *dy, const float *x, const float *scale,
                                const float *bias, const float *mean, const float *var, float eps, int64_t C,
                                const LkPool *p, void *ws)
{
    PoolBn bn = {scale, bias, mean, var, eps, C};
    return maxpool_grad(s, dx, dy, x, p, ws, bn);
}
