/* Optimizer updates (lk.cuh), in place, one thread per element: the float
 * operations of kgrad.c's k_adamw_f32 and k_sgd_f32 in the same order. The
 * learning rate and the step are read on the device (the train driver
 * uploads them before each step), and so is the loss: when it is not
 * finite the update writes nothing (a step that failed changes no weight,
 * so the driver can run it again to name the first non-finite tensor). */
#include "lk.cuh"

static __global__ void adamw(float *param, float *m, float *v, const float *grad, const float *lr, const int64_t *step,
                             const float *loss, const float *grad_scale, int64_t n, float beta1, float beta2, float eps,
                             float weight_decay)
{
    if (!isfinite(*loss)) return;
    // param, m, v, grad are (n); the scalars in double, as torch computes them
    double l = (double)lr[0], st = (double)step[0];
    double bc1 = 1 - pow((double)beta1, st), bc2 = 1 - pow((double)beta2, st);
    float step_size = (float)(l / bc1), bc2_sqrt = (float)sqrt(bc2);
    float decay = (float)(1 - l * weight_decay), gs = grad_scale ? *grad_scale : 1.0f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = grad_scale ? grad[i] * gs : grad[i];
        float p = param[i] * decay;
        float mi = m[i] + (1 - beta1) * (g - m[i]);
        float vi = v[i] * beta2 + (1 - beta2) * (g * g);
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi, v[i] = vi;
        param[i] = p + -step_size * (mi / denom);
    }
}

int lk_adamw_f32(cudaStream_t s, float *param, float *m, float *v, const float *grad, const float *lr,
                 const int64_t *step, const float *loss, const float *grad_scale, int64_t n, float beta1, float beta2,
                 float eps, float weight_decay)
{
    if (n == 0) return 0;
    return LOOM_LAUNCH(adamw, lk_blocks(n), LK_THREADS, 0, s, param, m, v, grad, lr, step, loss, grad_scale, n, beta1,
                       beta2, eps, weight_decay);
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
