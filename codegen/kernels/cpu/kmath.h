/* Float32 exp, tanh and erf that a compiler can vectorize: branch-free
 * (selects only), inline, no libm call, so a loop over them becomes SIMD code
 * at -O3 -fno-trapping-math (the generated Makefile's flags). The generated
 * elementwise loops (Exp, Tanh, Erf, Sigmoid, Gelu, Elu, Selu on float
 * registers) and the softmax kernels use them; libm's versions are scalar calls
 * that took half of a small transformer's time.
 *
 * Accuracy against the correctly rounded result, measured over dense sweeps:
 * k_expf within 1 ulp (Cephes' polynomial; subnormal results, +-inf and NaN
 * as expf), k_tanhf within 7 ulp and k_erff within 8 ulp, both under 5e-7
 * relative (Eigen's rational approximations), exact sign, odd symmetry and
 * NaN propagation. So these results may differ from the constant folder's
 * (ir/eval.c, libm) in the last bits, within every tolerance loom tests at. */
#ifndef LOOM_KMATH_H
#define LOOM_KMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* BatchNormalization in inference form, operation for operation as
 * k_batchnorm_f32 computes it (and the fused loops of cg_elemwise.c write it
 * out): the factor a = scale / sqrtf(var + eps) once per channel, then
 * (x - mean) * a + bias. k_bn_relu adds Relu's t > 0 ? t : 0: the kernels that
 * make a ReLU's output again from the normalization's input
 * (ir_fold_bn_relu_grad: the weight gradient's and the max-pool gradient's
 * copies of x, BatchNormGrad's mask) compute it so, bit for bit the value the
 * forward wrote. */
/* A bfloat16's bits as the float they stand for (exact): low-bit storage's
 * copies, widened as a kernel loads them (k_batchnorm_grad_bf16x, ...). */
static inline float k_bf16_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float k_bn_factor(float scale, float var, float eps) { return scale / sqrtf(var + eps); }
static inline float k_bn(float x, float mean, float a, float bias) { return (x - mean) * a + bias; }
static inline float k_bn_relu(float x, float mean, float a, float bias)
{
    float t = k_bn(x, mean, a, bias);
    return t > 0 ? t : 0.0f;
}

static inline float k_expf(float x)
{
    // e^x = 2^n e^r with n = round(x log2 e), r = x - n ln 2 (ln 2 in two parts)
    float xc = x > -104.0f ? x : -104.0f; // NaN too: n must stay a small integer
    xc = xc < 88.8f ? xc : 88.8f;
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; // rounds to nearest
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    // 2^n as two powers of two, each a normal float for n in [-151, 129]
    int32_t ni = (int32_t)n, h = ni >> 1;
    int32_t b1 = (h + 127) << 23, b2 = (ni - h + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    float y = p * s1 * s2;
    return x != x ? x : y;
}

static inline float k_tanhf(float x)
{
    // odd rational p(x)/q(x^2) on [-7.9, 7.9], where tanh rounds to +-1 beyond
    const float lim = 7.90531110763549805f;
    float c = x < -lim ? -lim : x > lim ? lim : x, x2 = c * c;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * c;
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    float y = (x < 0.0004f && x > -0.0004f) ? x : p / q;
    return x != x ? x : y;
}

static inline float k_erff(float x)
{
    // odd rational p(x)/q(x^2) on [-4, 4], where erf rounds to +-1 beyond
    float c = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x, x2 = c * c;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * c;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return x != x ? x : p / q;
}

/* GELU's derivative at v, in float: Phi(v) + v phi(v), or (tanh_form) the
 * derivative of 0.5 v (1 + tanh(u)), u = k (v + 0.044715 v^3). The one
 * formula of kgrad.c's ActivationGrad kernel and of the fused loops that
 * hold an ActivationGrad (cg_elemwise.c); lk.cuh has the device's. */
static inline float k_gelu_grad(float v, int tanh_form)
{
    if (tanh_form) {
        float u = 0.7978845608f * (v + 0.044715f * v * v * v), t = k_tanhf(u);
        return 0.5f * (1 + t) + 0.5f * v * (1 - t * t) * 0.7978845608f * (1 + 3 * 0.044715f * v * v);
    }
    return 0.5f * (1 + k_erff(v * 0.70710678f)) + v * 0.39894228f * k_expf(-0.5f * v * v);
}

#endif
