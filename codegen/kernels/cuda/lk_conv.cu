/* Convolution (lk.cuh), direct: a thread per output element sums its
 * window over the input channels of its group, and the weight gradient a
 * thread per weight element over the batch and the output positions, in a
 * fixed order (no atomics). 1 to 3 spatial dims, groups, strides,
 * dilations, start pads. Correct for any shape and fast for none: a GEMM
 * formulation (im2col through cuBLASLt, or implicit GEMM) is the next step
 * for convolutional models. */
#include "lk.cuh"

/* the spatial dims as 3, the missing ones of size 1 */
static __device__ void dims3(const LkConv &p, int64_t *in, int64_t *out, int64_t *k)
{
    for (int d = 0; d < 3; d++) {
        in[d] = d < p.nd ? p.in[d] : 1;
        out[d] = d < p.nd ? p.out[d] : 1;
        k[d] = d < p.nd ? p.k[d] : 1;
    }
}

static __global__ void conv(float *y, const float *x, const float *w, const float *b, LkConv p, int64_t total)
{
    // x (N, C, in...), w (M, C/group, k...), y (N, M, out...): one y element per thread
    int64_t in[3], out[3], k[3];
    dims3(p, in, out, k);
    int64_t cg = p.C / p.group, mg = p.M / p.group, osz = out[0] * out[1] * out[2], isz = in[0] * in[1] * in[2];
    int64_t ksz = k[0] * k[1] * k[2];
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = e % osz, m = e / osz % p.M, n = e / (osz * p.M);
        int64_t o2 = o % out[2], o1 = o / out[2] % out[1], o0 = o / (out[2] * out[1]);
        int64_t g = m / mg;
        float s = 0;
        for (int64_t c = 0; c < cg; c++) {
            const float *xc = x + (n * p.C + g * cg + c) * isz, *wc = w + (m * cg + c) * ksz;
            for (int64_t a = 0; a < k[0]; a++) {
                int64_t i0 = o0 * (p.nd > 0 ? p.stride[0] : 1) - (p.nd > 0 ? p.pad[0] : 0) + a * (p.nd > 0 ? p.dilation[0] : 1);
                if (i0 < 0 || i0 >= in[0]) continue;
                for (int64_t bb = 0; bb < k[1]; bb++) {
                    int64_t i1 = o1 * (p.nd > 1 ? p.stride[1] : 1) - (p.nd > 1 ? p.pad[1] : 0) + bb * (p.nd > 1 ? p.dilation[1] : 1);
                    if (i1 < 0 || i1 >= in[1]) continue;
                    for (int64_t q = 0; q < k[2]; q++) {
                        int64_t i2 = o2 * (p.nd > 2 ? p.stride[2] : 1) - (p.nd > 2 ? p.pad[2] : 0) + q * (p.nd > 2 ? p.dilation[2] : 1);
                        if (i2 < 0 || i2 >= in[2]) continue;
                        s += xc[(i0 * in[1] + i1) * in[2] + i2] * wc[(a * k[1] + bb) * k[2] + q];
                    }
                }
            }
        }
        y[e] = b ? s + b[m] : s;
    }
}

int lk_conv_f32(cudaStream_t s, float *y, const float *x, const float *w, const float *b, const LkConv *p)
{
    int64_t total = p->N * p->M;
    for (int d = 0; d < p->nd; d++) total *= p->out[d];
    if (total == 0) return 0;
    return LOOM_LAUNCH(conv, lk_blocks(total), LK_THREADS, 0, s, y, x, w, b, *p, total);
}

static __global__ void conv_grad_weight(float *dw, const float *dy, const float *x, LkConv p, int64_t total)
{
    // dw (M, C/group, k...): one element per thread, summed over n and the output positions in order
    int64_t in[3], out[3], k[3];
    dims3(p, in, out, k);
    int64_t cg = p.C / p.group, mg = p.M / p.group, osz = out[0] * out[1] * out[2], isz = in[0] * in[1] * in[2];
    int64_t ksz = k[0] * k[1] * k[2];
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t kk = e % ksz, c = e / ksz % cg, m = e / (ksz * cg);
        int64_t q = kk % k[2], bb = kk / k[2] % k[1], a = kk / (k[2] * k[1]);
        int64_t g = m / mg;
        double s = 0;
        for (int64_t n = 0; n < p.N; n++) {
            const float *xc = x + (n * p.C + g * cg + c) * isz, *dyc = dy + (n * p.M + m) * osz;
            for (int64_t o0 = 0; o0 < out[0]; o0++) {
                int64_t i0 = o0 * (p.nd > 0 ? p.stride[0] : 1) - (p.nd > 0 ? p.pad[0] : 0) + a * (p.nd > 0 ? p.dilation[0] : 1);
                if (i0 < 0 || i0 >= in[0]) continue;
                for (int64_t o1 = 0; o1 < out[1]; o1++) {
                    int64_t i1 = o1 * (p.nd > 1 ? p.stride[1] : 1) - (p.nd > 1 ? p.pad[1] : 0) + bb * (p.nd > 1 ? p.dilation[1] : 1);
                    if (i1 < 0 || i1 >= in[1]) continue;
                    for (int64_t o2 = 0; o2 < out[2]; o2++) {
                        int64_t i2 = o2 * (p.nd > 2 ? p.stride[2] : 1) - (p.nd > 2 ? p.pad[2] : 0) + q * (p.nd > 2 ? p.dilation[2] : 1);
                        if (i2 < 0 || i2 >= in[2]) continue;
                        s += (double)dyc[(o0 * out[1] + o1) * out[2] + o2] * xc[(i0 * in[1] + i1) * in[2] + i2];
                    }
                }
            }
        }
        dw[e] = (float)s;
    }
}

int lk_conv_grad_weight_f32(cudaStream_t s, float *dw, const float *dy, const float *x, const LkConv *p)
{
    int64_t total = p->M * (p->group ? p->C / p->group : 0);
    for (int d = 0; d < p->nd; d++) total *= p->k[d];
    if (total == 0) return 0;
    return LOOM_LAUNCH(conv_grad_weight, lk_blocks(total), LK_THREADS, 0, s, dw, dy, x, *p, total);
}

static __global__ void conv_transpose(float *y, const float *x, const float *w, const float *b, LkConv p,
                                      int64_t total)
{
    // x (N, C, in...), w (C, M/group, k...), y (N, M, out...): one y element per thread, gathering
    // the x elements i that reach it (o = i * stride + k * dilation - pad)
    int64_t in[3], out[3], k[3];
    dims3(p, in, out, k);
    int64_t cg = p.C / p.group, mg = p.M / p.group, osz = out[0] * out[1] * out[2], isz = in[0] * in[1] * in[2];
    int64_t ksz = k[0] * k[1] * k[2];
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = e % osz, m = e / osz % p.M, n = e / (osz * p.M);
        int64_t od[3] = {o / (out[2] * out[1]), o / out[2] % out[1], o % out[2]};
        int64_t g = m / mg, mm = m % mg;
        float s = 0;
        for (int64_t c = 0; c < cg; c++) {
            const float *xc = x + (n * p.C + g * cg + c) * isz, *wc = w + ((g * cg + c) * mg + mm) * ksz;
            for (int64_t kk = 0; kk < ksz; kk++) {
                int64_t kd[3] = {kk / (k[2] * k[1]), kk / k[2] % k[1], kk % k[2]}, off = 0;
                int ok = 1;
                for (int d = 0; d < 3 && ok; d++) {
                    int64_t st = d < p.nd ? p.stride[d] : 1, dil = d < p.nd ? p.dilation[d] : 1;
                    int64_t t = od[d] + (d < p.nd ? p.pad[d] : 0) - kd[d] * dil;
                    if (t < 0 || t % st || t / st >= in[d]) ok = 0;
                    else off = off * in[d] + t / st;
                }
                if (ok) s += xc[off] * wc[kk];
            }
        }
        y[e] = b ? s + b[m] : s;
    }
}

int lk_conv_transpose_f32(cudaStream_t s, float *y, const float *x, const float *w, const float *b, const LkConv *p)
{
    int64_t total = p->N * p->M;
    for (int d = 0; d < p->nd; d++) total *= p->out[d];
    if (total == 0) return 0;
    return LOOM_LAUNCH(conv_transpose, lk_blocks(total), LK_THREADS, 0, s, y, x, w, b, *p, total);
}
