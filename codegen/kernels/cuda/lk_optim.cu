/* Optimizer updates (lk.cuh), in place: the float operations of kgrad.c's
 * k_adamw_f32 and k_sgd_f32 in the same order. The learning rate and the
 * step are read on the device (the train driver uploads them before each
 * step), and so is the loss: when it is not finite the update writes
 * nothing (a step that failed changes no weight, so the driver can run it
 * again to name the first non-finite tensor). A block's first thread
 * computes the step's scalars (AdamW's bias corrections: two pow in double,
 * as torch computes them) into shared memory once, and the threads move
 * four floats at a time where every array is 16-byte aligned: with the
 * scalars in every thread, the double-precision pow took longer than the
 * bytes for every parameter of GPT-2's blocks. */
#include "lk.cuh"

/* at most this many blocks: a grid-stride loop over the rest */
#define OPT_BLOCKS 1024

static unsigned opt_blocks(int64_t n4)
{
    int64_t b = (n4 + LK_THREADS - 1) / LK_THREADS;
    return (unsigned)(b < 1 ? 1 : b > OPT_BLOCKS ? OPT_BLOCKS : b);
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

struct AdamScalars {
    float step_size, bc2_sqrt, decay, gs, beta1, beta2, eps;
};

static __device__ inline void adamw_elem(float &p, float &m, float &v, float g, const AdamScalars &a)
{
    g = g * a.gs;
    float pd = p * a.decay;
    float mi = m + (1 - a.beta1) * (g - m);
    float vi = v * a.beta2 + (1 - a.beta2) * (g * g);
    float denom = sqrtf(vi) / a.bc2_sqrt + a.eps;
    m = mi, v = vi;
    p = pd + -a.step_size * (mi / denom);
}

static __global__ void adamw(float *param, float *m, float *v, const float *grad, const float *lr, const int64_t *step,
                             const float *loss, const float *grad_scale, int64_t n, float beta1, float beta2, float eps,
                             float weight_decay, int vec)
{
    // param, m, v, grad are (n); vec: all four 16-byte aligned, moved as float4
    __shared__ AdamScalars a;
    __shared__ int skip;
    if (threadIdx.x == 0) {
        skip = !isfinite(*loss);
        double l = (double)lr[0], st = (double)step[0];
        double bc1 = 1 - pow((double)beta1, st), bc2 = 1 - pow((double)beta2, st);
        a.step_size = (float)(l / bc1), a.bc2_sqrt = (float)sqrt(bc2);
        a.decay = (float)(1 - l * weight_decay), a.gs = grad_scale ? *grad_scale : 1.0f;
        a.beta1 = beta1, a.beta2 = beta2, a.eps = eps;
    }
    __syncthreads();
    if (skip) return;
    const AdamScalars s = a;
    int64_t first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, stride = (int64_t)gridDim.x * blockDim.x;
    int64_t done = 0;
    if (vec) {
        float4 *p4 = (float4 *)param, *m4 = (float4 *)m, *v4 = (float4 *)v;
        const float4 *g4 = (const float4 *)grad;
        for (int64_t i = first; i < n / 4; i += stride) {
            float4 p = p4[i], mm = m4[i], vv = v4[i], g = g4[i];
            adamw_elem(p.x, mm.x, vv.x, g.x, s);
            adamw_elem(p.y, mm.y, vv.y, g.y, s);
            adamw_elem(p.z, mm.z, vv.z, g.z, s);
            adamw_elem(p.w, mm.w, vv.w, g.w, s);
            p4[i] = p, m4[i] = mm, v4[i] = vv;
        }
        done = n / 4 * 4;
    }
    for (int64_t i = done + first; i < n; i += stride) {
        float p = param[i], mm = m[i], vv = v[i];
        adamw_elem(p, mm, vv, grad[i], s);
        param[i] = p, m[i] = mm, v[i] = vv;
    }
}

int lk_adamw_f32(cudaStream_t s, float *param, float *m, float *v, const float *grad, const float *lr,
                 const int64_t *step, const float *loss, const float *grad_scale, int64_t n, float beta1, float beta2,
                 float eps, float weight_decay)
{
    if (n == 0) return 0;
    int vec = aligned16(param) && aligned16(m) && aligned16(v) && aligned16(grad);
    return LOOM_LAUNCH(adamw, opt_blocks(vec ? (n + 3) / 4 : n), LK_THREADS, 0, s, param, m, v, grad, lr, step, loss,
                       grad_scale, n, beta1, beta2, eps, weight_decay, vec);
}

static __global__ void sgd(float *param, float *buf, const float *grad, const float *lr, const float *loss,
                           const float *grad_scale, int64_t n, float momentum, float weight_decay, int nesterov)
{
    if (!isfinite(*loss)) return;
    // param, buf, grad are (n)
    float l = lr[0], gs = grad_scale ? *grad_scale : 1.0f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = grad_scale ? grad[i] * gs : grad[i];
        if (weight_decay != 0) g = g + weight_decay * param[i];
        if (momentum != 0) {
            float b = buf[i] * momentum + g;
            buf[i] = b;
            g = nesterov ? g + momentum * b : b;
        }
        param[i] = param[i] + -l * g;
    }
}

int lk_sgd_f32(cudaStream_t s, float *param, float *buf, const float *grad, const float *lr, const float *loss,
               const float *grad_scale, int64_t n, float momentum, float weight_decay, int nesterov)
{
    if (n == 0) return 0;
    return LOOM_LAUNCH(sgd, lk_blocks(n), LK_THREADS, 0, s, param, buf, grad, lr, loss, grad_scale, n, momentum,
                       weight_decay, nesterov);
}
