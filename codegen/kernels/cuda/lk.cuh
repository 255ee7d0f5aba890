/* The cuda kernels: the contract between codegen (model.cu calls these
 * launchers) and their implementations in this folder, which nvcc builds
 * for the GPU and, with LOOM_EMU (`make EMU=1`), g++ builds for the host
 * emulator (emu.h). Each launcher has a cpu kernel it must agree with
 * (codegen/kernels/cpu/kernels.h, named in its comment); tests/cuda checks
 * every one against it on random inputs.
 *
 * Conventions, as the cpu kernels': outputs first, then inputs, then sizes;
 * dense C order; sizes int64_t element counts. Every launcher takes the
 * stream it runs on (rt_cuda_stream()) and returns 0, or -1 with rt_error()
 * naming the call, its file and line, the CUDA error and a hint. Kernels
 * never allocate; results never depend on the launch shape (a row's sum is
 * one block's, in a fixed tree order).
 *
 * The subset of CUDA C++ the kernels use is emu.h's: launches only through
 * LOOM_LAUNCH, dynamic shared memory only through LOOM_DYN_SHARED, full-mask
 * shuffles. */
#ifndef LOOM_LK_CUH
#define LOOM_LK_CUH

#include <stdint.h>

#ifdef LOOM_EMU
#include "emu.h"
#define LOOM_LAUNCH(kernel, grid, block, smem, stream, ...)                                           \
    rt_cuda_check((int)loom_emu_launch(#kernel, (const void *)(kernel), __FILE__, __LINE__, dim3(grid), \
                                       dim3(block), (smem), (stream), [=]() { kernel(__VA_ARGS__); }), \
                  __FILE__, __LINE__, #kernel "<<<...>>>")
#define LOOM_DYN_SHARED(type, name) type *name = (type *)loom_emu_dyn_smem()
#else
#include <cuda_bf16.h> /* __nv_bfloat16 (emu.h includes it for the emulator) */
#include <cuda_runtime.h>
#define LOOM_LAUNCH(kernel, grid, block, smem, stream, ...)                                           \
    (kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__),                                      \
     rt_cuda_check((int)cudaGetLastError(), __FILE__, __LINE__, #kernel "<<<...>>>"))
#define LOOM_DYN_SHARED(type, name) extern __shared__ type name[]
#endif

#include "rt.h"
#include "rt_cuda.h"

/* A kernel that takes more than 48 KiB of dynamic shared memory must say so
 * before its launch (the emulator refuses the launch otherwise, as a GPU does). */
static inline int lk_smem_optin(const void *kernel, size_t bytes)
{
    if (bytes <= 48 * 1024) return 0;
    return rt_cuda_check((int)cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                         __FILE__, __LINE__, "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
}

/* The workspace a kernel's size function asks (need) against what the
 * memory plan gave its node (have, cg_cuda.c's count of the same): the
 * generated program checks it before the call, so that two counts that
 * drift apart stop the program instead of overrunning the arena. */
static inline int lk_ws_check(size_t need, size_t have)
{
    if (need <= have) return 0;
    return rt_fail("the kernel needs %zu bytes of workspace and the plan gave %zu: a loom bug; please report it "
                   "with the model", need, have);
}

/* A loop unrolled by nvcc (g++ runs it as written): the loops over a
 * register array, which stays in registers only where every index into it
 * is a constant. */
#ifdef LOOM_EMU
#define LK_UNROLL
#else
#define LK_UNROLL _Pragma("unroll")
#endif

/* Threads per block of the one-thread-per-element kernels, and their grid:
 * enough blocks to fill the device, each thread then striding over the rest. */
#define LK_THREADS 256
static inline unsigned lk_blocks(int64_t n)
{
    int64_t b = (n + LK_THREADS - 1) / LK_THREADS;
    return (unsigned)(b < 1 ? 1 : b > 4096 ? 4096 : b);
}

/* f rounded to nearest even (the toolkit's conversion), as the bits the
 * bf16 buffers (uint16_t, lk_gemm_bf16's type) hold */
static __device__ inline uint16_t lk_bf16_rne(float f)
{
    __nv_bfloat16_raw r = __float2bfloat16(f);
    return r.x;
}

/* A bfloat16's bits as the float they stand for (exact): low-bit storage's
 * copies, widened as a kernel loads them (the _bf16x kernels); lk_ldx: x's
 * element e from whichever of the two is given. */
static __host__ __device__ inline float lk_bf16_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static __host__ __device__ inline float lk_ldx(const float *x, const uint16_t *x16, int64_t e)
{
    return x16 ? lk_bf16_f32(x16[e]) : x[e];
}

/* ---- device math of the generated elementwise kernels (elemwise.h's helpers) ---- */

#define LM_FN static __host__ __device__ inline

static __host__ __device__ inline float k_expf(float x) { return expf(x); }
static __host__ __device__ inline float k_tanhf(float x) { return tanhf(x); }
static __host__ __device__ inline float k_erff(float x) { return erff(x); }

/* GELU's derivative, kmath.h's k_gelu_grad on the device's expf, tanhf and
 * erff: lk_activation_grad_f32 and the fused loops that hold an
 * ActivationGrad (cg_elemwise.c) */
static __host__ __device__ inline float k_gelu_grad(float v, int tanh_form)
{
    if (tanh_form) {
        float u = 0.7978845608f * (v + 0.044715f * v * v * v), t = k_tanhf(u);
        return 0.5f * (1 + t) + 0.5f * v * (1 - t * t) * 0.7978845608f * (1 + 3 * 0.044715f * v * v);
    }
    return 0.5f * (1 + k_erff(v * 0.70710678f)) + v * 0.39894228f * k_expf(-0.5f * v * v);
}

/* BatchNormalization in inference form, and Relu after it, with kmath.h's
 * float operations (k_bn_factor, k_bn, k_bn_relu): the forward kernel
 * (lk_batchnorm_f32) and the kernels that make a ReLU's output again from the
 * normalization's input (ir_fold_bn_relu_grad). */
static __host__ __device__ inline float lk_bn_factor(float scale, float var, float eps) { return scale / sqrtf(var + eps); }
static __host__ __device__ inline float lk_bn(float x, float mean, float a, float bias) { return (x - mean) * a + bias; }
static __host__ __device__ inline float lk_bn_relu(float x, float mean, float a, float bias)
{
    float t = lk_bn(x, mean, a, bias);
    return t > 0 ? t : 0.0f;
}

/* ---- linear algebra: lk_gemm.cu (cuBLASLt) ---- */

/* Row-major y (batch of M x N) = alpha * op(a) * op(b) + beta * y, op
 * transposing when trans_*; matrices of batch i at a + i * stride_a, and so
 * on (a stride may be 0: one matrix for every batch); bias (may be NULL) [N]
 * added to every row (cuBLASLt's bias epilogue). beta 0: y is not read. As
 * k_sgemm, k_matmul_f32 and k_gemm_f32. */
int lk_gemm_f32(cudaStream_t s, float *y, const float *a, const float *b, const float *bias, int64_t batch,
                int64_t M, int64_t N, int64_t K, int trans_a, int trans_b, float alpha, float beta,
                int64_t stride_a, int64_t stride_b, int64_t stride_y);
/* The same product on bfloat16 (uint16_t) a and b, accumulated in fp32
 * (alpha and beta fp32), y rounded to bfloat16 (lk_gemm_bf16: as
 * k_matmul_bf16 and k_gemm_bf16 without c) or kept fp32 (lk_gemm_bf16_f32out,
 * beta 1 accumulating into an fp32 buffer); no bias. */
int lk_gemm_bf16(cudaStream_t s, uint16_t *y, const uint16_t *a, const uint16_t *b, int64_t batch, int64_t M,
                 int64_t N, int64_t K, int trans_a, int trans_b, float alpha, float beta, int64_t stride_a,
                 int64_t stride_b, int64_t stride_y);
int lk_gemm_bf16_f32out(cudaStream_t s, float *y, const uint16_t *a, const uint16_t *b, int64_t batch, int64_t M,
                        int64_t N, int64_t K, int trans_a, int trans_b, float alpha, float beta, int64_t stride_a,
                        int64_t stride_b, int64_t stride_y);
/* y (M x N) = c broadcast from [c_rows, c_cols] (each 1 or M / N): the C of a Gemm. */
int lk_broadcast2d_f32(cudaStream_t s, float *y, const float *c, int64_t M, int64_t N, int64_t c_rows,
                       int64_t c_cols);

/* ---- data movement and indexing: lk_move.cu ---- */

/* The shape of a strided copy (k_copy_nd): dst[i] = src[i] for every index i
 * of dims, at element offsets sum(i[k] * stride[k]) (strides may be 0 or
 * negative); esize bytes an element. Passed to the kernel by value. */
#define LK_MAX_RANK 8
typedef struct {
    int64_t dims[LK_MAX_RANK], dst_stride[LK_MAX_RANK], src_stride[LK_MAX_RANK];
    int rank, esize;
} LkNd;
int lk_copy_nd(cudaStream_t s, void *dst, const void *src, const LkNd *p);
/* Pad (k_pad): y's dims are in_dims[k] + pads[k] + pads[rank + k] (ONNX
 * order; negative pads crop); mode 0 constant, 1 reflect, 2 edge, 3 wrap.
 * The constant: the device bytes at value, or (value NULL) p->value. */
typedef struct {
    int64_t in_dims[LK_MAX_RANK], pads[2 * LK_MAX_RANK];
    int rank, mode, esize;
    char value[16];
} LkPad;
int lk_pad(cudaStream_t s, void *y, const void *x, const LkPad *p, const void *value);
/* Gather along an axis (k_gather): x [outer, axis_len, inner], y [outer,
 * nidx, inner] in esize-byte elements; an index out of range gives
 * all-ones bytes there (NaN in floats). */
int lk_gather(cudaStream_t s, void *y, const void *x, const void *idx, int idx_is_i32, int64_t outer,
              int64_t axis_len, int64_t nidx, int64_t inner, int esize);
/* loom.GatherGrad (k_gather_grad_f32): dx = scatter-add of dy, in index
 * order (deterministic); an index out of range makes all of dx NaN. ws:
 * lk_gather_grad_f32_ws bytes (the indices grouped by row; axis_len and
 * nidx under 2^31, which cg_cuda.c checks). */
size_t lk_gather_grad_f32_ws(int64_t axis_len, int64_t nidx);
int lk_gather_grad_f32(cudaStream_t s, float *dx, const float *dy, const void *idx, int idx_is_i32, int64_t outer,
                       int64_t axis_len, int64_t nidx, int64_t inner, void *ws);

/* ---- reductions: lk_reduce.cu ---- */

/* Sum (kind 0) or mean (kind 1) of x [outer, len, inner] over the middle
 * axis into y [outer, inner], accumulated in double as k_reduce does. */
int lk_reduce_f32(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t len, int64_t inner,
                  int kind);
/* The same over any set of axes of x (p->dims, rank): p->dst_stride[k] 1
 * where axis k is reduced, else 0 (the other fields unused); y holds the
 * kept axes in order. A thread per output, its elements in order. */
int lk_reduce_axes_f32(cudaStream_t s, float *y, const float *x, const LkNd *p, int kind);
/* Softmax or LogSoftmax (is_log) over the middle axis of x [outer, len,
 * inner] (k_softmax_f32), and loom.SoftmaxGrad / LogSoftmaxGrad from the
 * forward output y (k_softmax_grad_f32); sums in double. */
int lk_softmax_f32(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int is_log);
int lk_softmax_grad_f32(cudaStream_t s, float *dx, const float *dy, const float *y, int64_t outer, int64_t len,
                        int64_t inner, int is_log);

/* ---- convolution: lk_conv.cu ---- */

/* As KConv (kernels.h), passed by value: 1 to 3 spatial dims. nb: 0, the
 * direct kernels (a thread per output element, its window summed in
 * place; ws unused); else (group 1) products through cuBLASLt over the
 * columns of nb images at a time in ws: C k out floats an image for Conv
 * and its weight gradient, M k in for ConvTranspose (k the window's
 * elements), and none where the columns are the input itself (a 1x1
 * window, stride 1, no pad; for the weight gradient, no BatchNormalization
 * to apply): lk_conv_f32_ws bytes (transpose: ConvTranspose's; bn: the weight
 * gradient's Relu(BatchNormalization(x)) form), which cg_cuda.c's conv_ws
 * counts apart and the generated program checks (lk_ws_check). */
typedef struct {
    int nd;
    int64_t N, C, M, group;
    int64_t in[3], out[3], k[3], stride[3], dilation[3], pad[3];
    int64_t nb;
} LkConv;
size_t lk_conv_f32_ws(const LkConv *p, int transpose, int bn);
/* Conv (k_conv_f32): y [N, M, out...] = x [N, C, in...] * w [M, C/group, k...] + b [M] (b may be NULL). */
int lk_conv_f32(cudaStream_t s, float *y, const float *x, const float *w, const float *b, const LkConv *p, void *ws);
/* loom.ConvGradWeight (k_conv_grad_weight_f32): dw [M, C/group, k...] from dy and x. */
int lk_conv_grad_weight_f32(cudaStream_t s, float *dw, const float *dy, const float *x, const LkConv *p, void *ws);
/* loom.ConvGradWeight (dy, x, scale, bias, mean, var) (k_conv_grad_weight_bn_relu_f32): x's place taken by
 * Relu(BatchNormalization(x)), computed as it is read. */
int lk_conv_grad_weight_bn_relu_f32(cudaStream_t s, float *dw, const float *dy, const float *x, const float *scale,
                                    const float *bias, const float *mean, const float *var, float eps, const LkConv *p,
                                    void *ws);
/* The same with x a bfloat16 copy (low-bit storage), widened as it is loaded (k_conv_grad_weight_bn_relu_bf16x). */
int lk_conv_grad_weight_bn_relu_bf16x(cudaStream_t s, float *dw, const float *dy, const uint16_t *x,
                                      const float *scale, const float *bias, const float *mean, const float *var,
                                      float eps, const LkConv *p, void *ws);
/* ConvTranspose (k_conv_transpose_f32): y [N, M, out...] from x [N, C, in...], w [C, M/group, k...];
 * in is x's spatial size, out y's, pad the cropped start. Also a Conv's input gradient. */
int lk_conv_transpose_f32(cudaStream_t s, float *y, const float *x, const float *w, const float *b, const LkConv *p,
                          void *ws);

/* ---- pooling: lk_pool.cu ---- */

/* As KPool's window (kernels.h), passed by value: x [NC, in...], y [NC, out...]. */
typedef struct {
    int nd;
    int64_t NC, in[3], out[3], k[3], stride[3], dilation[3], pad[3];
} LkPool;
/* MaxPool without its indices (k_maxpool_f32): the first maximum of each window. */
int lk_maxpool_f32(cudaStream_t s, float *y, const float *x, const LkPool *p);
/* loom.MaxPoolGrad (k_maxpool_grad_f32). ws: lk_maxpool_grad_f32_ws(p) bytes. */
size_t lk_maxpool_grad_f32_ws(const LkPool *p);
int lk_maxpool_grad_f32(cudaStream_t s, float *dx, const float *dy, const float *x, const LkPool *p, void *ws);
/* loom.MaxPoolGrad (dy, x, -1, scale, bias, mean, var) (k_maxpool_grad_bn_relu_f32): the maxima found in
 * Relu(BatchNormalization(x)), x's rows (n, c) of C channels. ws: lk_maxpool_grad_f32_ws(p) bytes. */
int lk_maxpool_grad_bn_relu_f32(cudaStream_t s, float *dx, const float *dy, const float *x, const float *scale,
                                const float *bias, const float *mean, const float *var, float eps, int64_t C,
                                const LkPool *p, void *ws);

/* ---- normalization: lk_norm.cu ---- */

/* LayerNormalization over the last cols of each of rows rows (k_layernorm_f32). */
int lk_layernorm_f32(cudaStream_t s, float *y, float *mean, float *inv_std, const float *x, const float *scale,
                     const float *bias, int64_t rows, int64_t cols, float eps);
/* loom.RMSNorm (k_rmsnorm_f32) and loom.RMSNormGrad (k_rmsnorm_grad_f32; ws:
 * lk_layernorm_grad_f32_ws(rows, cols) bytes; dscale may be NULL). */
int lk_rmsnorm_f32(cudaStream_t s, float *y, const float *x, const float *scale, int64_t rows, int64_t cols, float eps);
/* The same two with y rounded to bfloat16 as it is stored (k_layernorm_f32_bf16out, k_rmsnorm_f32_bf16out). */
int lk_layernorm_f32_bf16out(cudaStream_t s, uint16_t *y, float *mean, float *inv_std, const float *x,
                             const float *scale, const float *bias, int64_t rows, int64_t cols, float eps);
int lk_rmsnorm_f32_bf16out(cudaStream_t s, uint16_t *y, const float *x, const float *scale, int64_t rows, int64_t cols,
                           float eps);
int lk_rmsnorm_grad_f32(cudaStream_t s, float *dx, float *dscale, const float *dy, const float *x, const float *scale,
                        int64_t rows, int64_t cols, float eps, void *ws);
/* loom.LayerNormGrad (k_layernorm_grad_f32). ws: lk_layernorm_grad_f32_ws(rows, cols) bytes. */
size_t lk_layernorm_grad_f32_ws(int64_t rows, int64_t cols);
int lk_layernorm_grad_f32(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, const float *mean, const float *inv_std, int64_t rows, int64_t cols,
                          float eps, void *ws);

/* BatchNormalization in inference form (k_batchnorm_f32): x, y [N, C, spatial]. */
int lk_batchnorm_f32(cudaStream_t s, float *y, const float *x, const float *scale, const float *bias,
                     const float *mean, const float *var, int64_t N, int64_t C, int64_t spatial, float eps);
/* loom.BatchNormGrad with the given statistics (k_batchnorm_grad_f32, training 0); dx, dscale, dbias may be NULL;
 * dx may be dy (the sums run first). */
int lk_batchnorm_grad_f32(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, const float *mean, const float *var, int64_t N, int64_t C,
                          int64_t spatial, float eps);
/* loom.BatchNormGrad with relu 1 (k_batchnorm_relu_grad_f32): dy is the gradient of Relu(BatchNormalization(x)),
 * counted where the normalization is positive; dx may be dy. */
int lk_batchnorm_relu_grad_f32(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                               const float *scale, const float *bias, const float *mean, const float *var, int64_t N,
                               int64_t C, int64_t spatial, float eps);
/* The two with x a bfloat16 copy (low-bit storage, optimizer.h: opt_reads_bf16), widened as it is loaded
 * (k_batchnorm_grad_bf16x, k_batchnorm_relu_grad_bf16x). */
int lk_batchnorm_grad_bf16x(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const uint16_t *x,
                            const float *scale, const float *mean, const float *var, int64_t N, int64_t C,
                            int64_t spatial, float eps);
int lk_batchnorm_relu_grad_bf16x(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy,
                                 const uint16_t *x, const float *scale, const float *bias, const float *mean,
                                 const float *var, int64_t N, int64_t C, int64_t spatial, float eps);
/* GroupNormalization / InstanceNormalization (groups = C; k_groupnorm_f32):
 * x, y [N, C, spatial], statistics per (n, group), scale and bias per channel. */
int lk_groupnorm_f32(cudaStream_t s, float *y, const float *x, const float *scale, const float *bias, int64_t N,
                     int64_t C, int64_t groups, int64_t spatial, float eps);
/* loom.GroupNormGrad / InstanceNormGrad (k_groupnorm_grad_f32). ws: lk_groupnorm_grad_f32_ws(N, groups) bytes. */
size_t lk_groupnorm_grad_f32_ws(int64_t N, int64_t groups);
int lk_groupnorm_grad_f32(cudaStream_t s, float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, int64_t N, int64_t C, int64_t groups, int64_t spatial, float eps,
                          void *ws);
/* loom.ActivationGrad (k_activation_grad_f32): act numbered as K_ACT_*. */
int lk_activation_grad_f32(cudaStream_t s, float *dx, const float *dy, const float *x, int64_t n, int act, float alpha,
                           float beta, float gamma);

/* ---- fused attention: lk_attn.cu ---- */

/* As KAttn (kernels.h: k_attention_f32), passed by value; the mask's offset
 * for matrix bh is computed on the device from the leading dims bdims[nb]
 * of Q and the mask's strides over them (0 where it broadcasts). The
 * backward holds D/64 and Dv/64 partial sums per thread: D, Dv at most
 * LK_ATTN_MAX_D. */
enum { LK_ATTN_MASK_NONE, LK_ATTN_MASK_ADD, LK_ATTN_MASK_KEEP };
#define LK_ATTN_MAX_D 256
typedef struct {
    int64_t BH, T, S, D, Dv;
    float scale;
    int causal, mask_kind;
    float fill;
    int64_t mask_st, mask_ss;
    int nb;
    int64_t bdims[LK_MAX_RANK], bstride[LK_MAX_RANK];
} LkAttn;
int lk_attention_f32(cudaStream_t s, float *o, float *lse, const float *q, const float *k, const float *v,
                     const void *mask, const LkAttn *p);
size_t lk_attention_grad_f32_ws(const LkAttn *p);
int lk_attention_grad_f32(cudaStream_t s, float *dq, float *dk, float *dv, const float *dout, const float *q,
                          const float *k, const float *v, const float *o, const float *lse, const void *mask,
                          const LkAttn *p, void *ws);
/* The same with the products on bf16 tensor cores (float in and out, float
 * softmax and sums; --precision bf16) where the tiled kernels serve (no
 * mask, D = Dv <= 64), else the float32 kernels. ws: lk_attention_grad_f32_ws. */
int lk_attention_bf16(cudaStream_t s, float *o, float *lse, const float *q, const float *k, const float *v,
                      const void *mask, const LkAttn *p);
int lk_attention_grad_bf16(cudaStream_t s, float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *o, const float *lse, const void *mask,
                           const LkAttn *p, void *ws);

/* ---- spectral: lk_dft.cu ---- */

/* DFT along the middle axis of x [outer, n_in, inner, cin] into y [outer,
 * n_out, inner, 2] (k_dft_f32: cin 1 real or 2 complex; length zero-pads or
 * truncates; onesided keeps length / 2 + 1 bins; inverse scales by 1/length),
 * through cuFFT with ws: lk_dft_f32_ws(...) bytes as cuFFT's work area (and
 * the zero-padded signal), or by the direct sum where cuFFT wants more. */
size_t lk_dft_f32_ws(int64_t outer, int64_t n_in, int64_t inner, int cin, int64_t length, int onesided, int inverse);
int lk_dft_f32(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t n_in, int64_t inner, int cin,
               int64_t length, int onesided, int inverse, void *ws);

/* ---- losses: lk_loss.cu ---- */

/* SoftmaxCrossEntropyLoss, reduction 1 sum or 2 mean, over logits x [N, C]
 * and int64 targets [N] (k_sce_loss_f32 with d = 1 and no weight);
 * ignore_index when has_ignore. A target out of range gives a NaN loss (the
 * train driver then names this node). ws: lk_sce_loss_ws(N) bytes. */
size_t lk_sce_loss_ws(int64_t N);
int lk_sce_loss_f32(cudaStream_t s, float *y, const float *x, const int64_t *target, int64_t N, int64_t C,
                    int reduction, int64_t ignore_index, int has_ignore, void *ws);
/* Its gradient (k_sce_loss_grad_f32): dx [N, C] from the scalar dloss; a
 * target out of range gives NaN rows. ws: lk_sce_loss_ws(N) bytes. */
int lk_sce_loss_grad_f32(cudaStream_t s, float *dx, const float *dloss, const float *x, const int64_t *target,
                         int64_t N, int64_t C, int reduction, int64_t ignore_index, int has_ignore, void *ws);

/* loom.LinearCrossEntropy (k_linear_ce_f32): loss [] and its gradients dx
 * [N, D], dw (w's shape) for an upstream gradient of 1, from x [N, D], w
 * [D, C] (or [C, D] with trans_w) and targets [N], a block of rows at a
 * time. ws: lk_linear_ce_f32_ws(N, C) bytes. */
size_t lk_linear_ce_f32_ws(int64_t N, int64_t C);
int lk_linear_ce_f32(cudaStream_t s, float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                     const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean, int64_t ignore_index,
                     int has_ignore, void *ws);
/* The same with bfloat16 products, fp32 accumulation (k_linear_ce_bf16).
 * ws: lk_linear_ce_bf16_ws(N, D, C) bytes. */
size_t lk_linear_ce_bf16_ws(int64_t N, int64_t D, int64_t C);
int lk_linear_ce_bf16(cudaStream_t s, float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                      const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean, int64_t ignore_index,
                      int has_ignore, void *ws);

/* ---- optimizer updates: lk_optim.cu ---- */

/* loom.AdamW (k_adamw_f32), in place; lr, step and the loss read on the
 * device: nothing is written when the loss is not finite. */
int lk_adamw_f32(cudaStream_t s, float *param, float *m, float *v, const float *grad, const float *lr,
                 const int64_t *step, const float *loss, const float *grad_scale, int64_t n, float beta1, float beta2,
                 float eps, float weight_decay);
/* loom.SGD (k_sgd_f32), in place; buf NULL when momentum is 0; nothing
 * written when the loss is not finite. */
int lk_sgd_f32(cudaStream_t s, float *param, float *buf, const float *grad, const float *lr, const float *loss,
               const float *grad_scale, int64_t n, float momentum, float weight_decay, int nesterov);

#endif
