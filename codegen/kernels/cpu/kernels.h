/* The cpu kernels: the contract between codegen (which emits calls to them)
 * and their implementations in this folder. The files here are C11, unit-tested
 * in place against naive references (tests/unit/test_kcpu_*.c), compiled into
 * loom's build as libloomk_cpu.a, and copied into every generated cpu program.
 *
 * Conventions (llm.c): outputs first, then inputs, then sizes and parameters;
 * every array is dense C order unless a stride says otherwise; sizes are
 * int64_t element counts; `esize` is bytes per element for the kernels that only
 * move bytes. Threads: the pool of kpar.c inside a kernel where it pays; a
 * kernel must give the same bits whatever the thread count (no racy reductions), so that
 * recomputation and different machines reproduce results exactly.
 * Kernels never allocate: scratch memory comes from the caller (a `ws`
 * argument of the size the matching *_ws function returns), placed in the
 * program's arena by the memory planner.
 * Kernels that can meet bad data at run time (an index out of range) return 0,
 * or -1 after k_fail() recorded a message; the others return void.
 *
 * Elementwise operators (unary, binary, comparisons, logic, Where, Cast, Clip)
 * have no kernel here: codegen writes them as fused loops. */
#ifndef LOOM_KERNELS_CPU_H
#define LOOM_KERNELS_CPU_H

#include <stddef.h>
#include <stdint.h>

#define K_MAX_RANK 8

/* Threads: a kernel splits its work over the pool's threads (kpar.c) only
 * when it has at least K_PAR_WORK element operations (a product: K_PAR_MACS
 * multiply-adds), about 5 to 10 microseconds on one core of the 2-core
 * machine loom is tested on (an add of 2^14 floats 3 us, a product of 2^18
 * multiply-adds 9 us). The pool's workers spin between steps, so a split
 * does not wait for a wake-up, and a worker that another process holds off
 * its core costs at most the chunk it took (kpar.c). At 2^18 / 2^22 (about
 * 100 us) every step of the small zoo models ran on one thread: lowering the
 * thresholds to these took gpt2_tiny's inference 0.52 -> 0.46 ms and
 * llama_tiny's 0.54 -> 0.40 ms on 2 threads, and their training steps
 * 3.2 -> 2.1 ms and 2.5 -> 1.7 ms (alternating runs of both builds).
 * A parallel step is cut into chunks of about K_PAR_GRAIN operations, at most
 * K_PAR_CHUNKS. */
#define K_PAR_WORK ((int64_t)1 << 14)
#define K_PAR_MACS ((int64_t)1 << 18)
#define K_PAR_GRAIN (K_PAR_WORK / 8)
#define K_PAR_CHUNKS 64
/* A product's multiply-adds as k_par_for's work (K_PAR_MACS of them is K_PAR_WORK). */
#define K_MACS_WORK(macs) ((macs) / (K_PAR_MACS / K_PAR_WORK))

/* ---- the thread pool: kpar.c ----
 * body(arg, lo, hi, tid) runs iterations [lo, hi) of a loop on thread tid (0:
 * the calling thread, workers 1..k_threads() - 1); it must give the same bits
 * for any split of [0, n) (no sums across iterations), which is what makes
 * results independent of the thread count. The caller takes part and never
 * waits for a worker that has not started a chunk. Parallel steps inside a
 * chunk run on that chunk's thread. */
typedef void (*KParBody)(void *arg, int64_t lo, int64_t hi, int tid);
/* The loop [0, n) of `work` element operations: on the calling thread below
 * K_PAR_WORK (or n == 1), else in k_par_chunks(n, work) chunks of about
 * K_PAR_GRAIN operations (at least 2, at most K_PAR_CHUNKS and n). */
void k_par_for(int64_t n, int64_t work, KParBody body, void *arg);
int64_t k_par_chunks(int64_t n, int64_t work);
/* [0, n) cut into `chunks` (at most n) even pieces; with slots > 0 only
 * threads 0..slots-1 take part (a workspace slot per thread id). */
void k_par_split(int64_t n, int64_t chunks, int slots, KParBody body, void *arg);
/* Threads a parallel step may use: OMP_NUM_THREADS, else the CPUs this
 * process may run on. k_set_threads changes it (tests: 1 and 3 threads must
 * give the same bits); 0 sets the default again. */
int k_threads(void);
void k_set_threads(int n);
/* OpenBLAS on the calling thread from now on, and its own idle thread pool
 * shut down (klinalg.c): called by the first product and when this pool's
 * workers start. Idempotent, thread-safe. */
void k_blas_serial(void);

/* The last run-time error of a kernel that returned -1. */
const char *k_error(void);
int k_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* bfloat16 (uint16_t, float32's upper half) arrays: widened exactly, or
 * rounded to nearest even with NaN kept NaN (the fused loops' lm_f32_to_bf16). */
void k_bf16_to_f32(float *y, const uint16_t *x, int64_t n);
void k_f32_to_bf16(uint16_t *y, const float *x, int64_t n);
/* x rounded in place to the nearest bfloat16 values, kept as float32. */
void k_bf16_round(float *x, int64_t n);
/* One float rounded so (k_f32_to_bf16's rounding). */
uint16_t k_bf16_rne(float f);

/* ---- data movement (any dtype, by bytes): kmove.c ---- */

/* dst[i] = src[i] for every index i of `dims`, the element at index i being
 * at byte offset sum(i[k] * stride[k]) * esize from dst or src. Strides are in
 * elements and may be 0 (broadcast: Expand) or negative (reversed Slice).
 * Transpose, Slice, Concat and Split pieces, Expand and Tile are all this. */
void k_copy_nd(void *dst, const int64_t *dst_stride, const void *src, const int64_t *src_stride,
               const int64_t *dims, int rank, int esize);
/* Fill n elements with the esize-byte value. */
void k_fill(void *dst, const void *value, int64_t n, int esize);
/* Pad: y has dims out[k] = in[k] + pads[k] + pads[rank + k] (ONNX order,
 * pads may be negative: cropping). mode 0 constant (value), 1 reflect, 2 edge, 3 wrap. */
void k_pad(void *y, const void *x, const int64_t *in_dims, int rank, const int64_t *pads, int mode,
           const void *value, int esize);
/* Trilu on the last two dims: keep j - i >= k (upper) or j - i <= k (lower), zero the rest. */
void k_trilu(void *y, const void *x, int64_t batch, int64_t rows, int64_t cols, int64_t k, int upper,
             int esize);

/* ---- indexing (any dtype by bytes; indices int64 or int32, negative wraps): kindex.c ---- */

/* Gather along an axis: x is [outer, axis_len, inner] (inner in bytes = inner * esize),
 * idx has nidx entries, y is [outer, nidx, inner]. */
int k_gather(void *y, const void *x, const void *idx, int idx_is_i32, int64_t outer, int64_t axis_len,
             int64_t nidx, int64_t inner, int esize);
/* GatherElements: y and idx share dims `dims` (rank r); x has dims x_dims; axis. */
int k_gather_elements(void *y, const void *x, const int64_t *x_dims, const void *idx, int idx_is_i32,
                      const int64_t *dims, int rank, int axis, int esize);
/* ScatterND: y = copy of data (done by the caller or in place), then for each of
 * n_updates index tuples of length k (idx is [n_updates, k]) write or combine the
 * slice of `slice` elements. reduction: 0 none, 1 add, 2 mul, 3 max, 4 min
 * (combining needs a typed element: dtype is the ONNX dtype number). */
int k_scatternd(void *y, const int64_t *data_dims, int rank, const int64_t *idx, int64_t n_updates,
                int k, const void *updates, int64_t slice, int reduction, int dtype);

/* ---- linear algebra (float32; float64 and bfloat16 where noted): klinalg.c ---- */

/* For tests: the register tiles in AVX-512 (on: where the processor has it)
 * or in AVX2 (off); -1 goes back to the default (AVX-512 where the processor
 * has it, unless LOOM_CPU_AVX512=0 is in the environment). Returns whether
 * they now run in AVX-512 (0 for -1: decided again at the next product). */
int k_tiles_set_avx512(int on);

/* y = alpha * op(a) * op(b) + beta * y, row-major with leading dimensions, op
 * transposing when trans_*; beta 0: y is not read. Small products (op(a) in
 * the L2 cache, a not transposed) run register-tiled kernels (ktile.h: AVX-512
 * or AVX2 and FMA, the same bits either way) where the processor has them,
 * the others a cblas_sgemm on the calling thread; either is split over the pool's threads by blocks of rows of y when large
 * (same bits either way). Every float product of the kernels goes through it. */
void k_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *y,
             int64_t ldy);
/* Batched matmul y[b] = a[b] (M x K) * b[b] (K x N), y dense [batch, M, N].
 * a_off / b_off: element offset of each batch's matrix (broadcasting done by the
 * caller), or NULL for dense consecutive matrices. */
void k_matmul_f32(float *y, const float *a, const float *b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const int64_t *a_off, const int64_t *b_off);
void k_matmul_f64(double *y, const double *a, const double *b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const int64_t *a_off, const int64_t *b_off);
/* Integer matmul for int32/int64/uint32/uint64 (wrapping), dtype = ONNX number. */
void k_matmul_int(void *y, const void *a, const void *b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const int64_t *a_off, const int64_t *b_off, int dtype);
/* Gemm: y (M x N) = alpha * op(a) * op(b) + beta * c, op = transpose if trans;
 * c (may be NULL) broadcast from [c_rows, c_cols], each 1 or M / N. */
void k_gemm_f32(float *y, const float *a, const float *b, const float *c, int64_t M, int64_t N,
                int64_t K, int trans_a, int trans_b, float alpha, float beta, int64_t c_rows,
                int64_t c_cols);

/* bfloat16 MatMul and Gemm (uint16_t arrays): the operands widened exactly
 * into float32 copies in ws, the product k_matmul_f32's / k_gemm_f32's (float32
 * accumulation), the result rounded to bfloat16 (k_f32_to_bf16). a_numel and
 * b_numel: the elements of a and b (a_off / b_off index into them); y_numel:
 * y's (batch * M * N); c_numel: Gemm's c's (0 without c). ws: the *_ws
 * function's bytes. */
size_t k_matmul_bf16_ws(int64_t a_numel, int64_t b_numel, int64_t y_numel);
void k_matmul_bf16(uint16_t *y, const uint16_t *a, const uint16_t *b, int64_t batch, int64_t M, int64_t N,
                   int64_t K, const int64_t *a_off, const int64_t *b_off, int64_t a_numel, int64_t b_numel,
                   void *ws);
size_t k_gemm_bf16_ws(int64_t M, int64_t N, int64_t K, int64_t c_numel);
void k_gemm_bf16(uint16_t *y, const uint16_t *a, const uint16_t *b, const uint16_t *c, int64_t M, int64_t N,
                 int64_t K, int trans_a, int trans_b, float alpha, float beta, int64_t c_rows, int64_t c_cols,
                 void *ws);
/* The same products with the float32 result kept (a product autocast lets
 * write float32: ir_autocast_wide_results), Gemm without C. */
size_t k_matmul_bf16_f32out_ws(int64_t a_numel, int64_t b_numel);
void k_matmul_bf16_f32out(float *y, const uint16_t *a, const uint16_t *b, int64_t batch, int64_t M, int64_t N,
                          int64_t K, const int64_t *a_off, const int64_t *b_off, int64_t a_numel, int64_t b_numel,
                          void *ws);
size_t k_gemm_bf16_f32out_ws(int64_t M, int64_t N, int64_t K);
void k_gemm_bf16_f32out(float *y, const uint16_t *a, const uint16_t *b, int64_t M, int64_t N, int64_t K, int trans_a,
                        int trans_b, float alpha, void *ws);

/* ---- convolution and pooling (float32, 1 to 3 spatial dims): kconv.c, kpool.c ---- */

typedef struct {
    int nd;                /* spatial dims, 1..3 */
    int64_t N, C, M;       /* batch, input channels, output channels */
    int64_t group;
    int64_t in[3], out[3]; /* spatial sizes */
    int64_t k[3];          /* kernel */
    int64_t stride[3], dilation[3];
    int64_t pad[3];        /* padding at the start of each spatial dim (the end follows from sizes) */
    int packed;            /* Conv: called with its weights prepared (KConvPost.wpack) */
} KConv;

/* Conv: y [N, M, out...] = x [N, C, in...] * w [M, C/group, k...] + b [M] (b may be NULL). */
size_t k_conv_f32_ws(const KConv *p);
void k_conv_f32(float *y, const float *x, const float *w, const float *b, const KConv *p, void *ws);
/* What a convolution applies to each output after its bias, while the
 * output is still in registers: an inference BatchNormalization when
 * bn_mean is not NULL (per output channel, computed as k_batchnorm_f32 does;
 * bn_scale and bn_bias may be NULL: 1 and 0), then + residual (shaped like
 * y; NULL: none), then Relu when relu. The results are those of Conv,
 * BatchNormalization, Add and Relu run one after another, bit for bit. */
typedef struct {
    const float *bn_scale, *bn_bias, *bn_mean, *bn_var; /* [M] each */
    float bn_eps;
    const float *residual; /* [N, M, out...] */
    int relu;
    const void *wpack; /* w as k_conv_pack_f32 prepared it, or NULL */
} KConvPost;
/* k_conv_f32 followed by post (NULL: none); the same workspace. */
void k_conv_post_f32(float *y, const float *x, const float *w, const float *b, const KConvPost *post,
                     const KConv *p, void *ws);
/* Weights prepared once for every later call, where they do not change (an
 * inference program's): a 3x3 stride-1 conv's Winograd transform, whose
 * path (kwino.c) a conv takes only with them. k_conv_pack_f32_bytes is 0 for
 * a conv with no prepared form; k_conv_pack_f32 fills that many bytes at
 * pack from w. A conv with p->packed set sizes its workspace for that path,
 * and takes it when post->wpack is pack (and the processor has AVX-512;
 * else the direct conv runs, the workspace being large enough for both). */
size_t k_conv_pack_f32_bytes(const KConv *p);
void k_conv_pack_f32(void *pack, const float *w, const KConv *p);
/* ConvTranspose: y [N, M, out...] from x [N, C, in...], w [C, M/group, k...]; here
 * `in` is x's spatial size, `out` y's, and pad the cropped start (output_padding is in out). */
size_t k_conv_transpose_f32_ws(const KConv *p);
void k_conv_transpose_f32(float *y, const float *x, const float *w, const float *b, const KConv *p,
                          void *ws);

typedef struct {
    int nd;
    int64_t NC;              /* batch * channels */
    int64_t in[3], out[3], k[3], stride[3], dilation[3], pad[3];
    int count_include_pad;   /* AveragePool */
    int storage_order;       /* MaxPool indices: 0 row major, 1 column major */
} KPool;

/* MaxPool; idx (int64, may be NULL) gets the flat index of each maximum in x,
 * counting over N, C and the spatial dims as ONNX specifies. */
void k_maxpool_f32(float *y, int64_t *idx, const float *x, const KPool *p);
void k_maxpool_u8(uint8_t *y, int64_t *idx, const uint8_t *x, const KPool *p);
void k_maxpool_i8(int8_t *y, int64_t *idx, const int8_t *x, const KPool *p);
void k_avgpool_f32(float *y, const float *x, const KPool *p);
/* Global pooling over `spatial` elements for each of NC rows. */
void k_global_pool_f32(float *y, const float *x, int64_t NC, int64_t spatial, int is_max);

/* Resize, per axis: out coordinate -> in coordinate by coord_mode (0 half_pixel,
 * 1 asymmetric, 2 align_corners, 3 pytorch_half_pixel, 4 tf_crop_and_resize,
 * 5 half_pixel_symmetric, 6 tf_half_pixel_for_nn), scale[k] = out/in or the
 * given scale. mode 0 nearest
 * (nearest_mode 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil),
 * 1 linear (n-linear over every axis; one whose size and scale are 1:1 maps to
 * itself, except under a tf_crop_and_resize roi). roi (2*rank: starts, then
 * ends) is used by tf_crop_and_resize only (NULL: 0..1); extrapolation_value
 * fills outside it. */
void k_resize_f32(float *y, const float *x, const int64_t *in_dims, const int64_t *out_dims, int rank,
                  const float *scale, const float *roi, int mode, int coord_mode, int nearest_mode,
                  float extrapolation_value);

/* ---- normalization (float32): knorm.c ---- */

/* Inference BatchNorm: x [N, C, spatial] with per-channel statistics. */
void k_batchnorm_f32(float *y, const float *x, const float *scale, const float *bias,
                     const float *mean, const float *var, int64_t N, int64_t C, int64_t spatial,
                     float eps);
/* Training-mode BatchNorm (opset 14+): normalizes with the batch statistics and
 * writes running_mean/var = momentum * input + (1 - momentum) * batch stat
 * (either output may be NULL). */
void k_batchnorm_train_f32(float *y, float *run_mean, float *run_var, const float *x,
                           const float *scale, const float *bias, const float *mean,
                           const float *var, int64_t N, int64_t C, int64_t spatial, float eps,
                           float momentum);
/* LayerNorm over the last `cols` elements of each of `rows` rows; scale and bias
 * (bias may be NULL) have cols elements; mean and inv_std (may be NULL) get one per row. */
void k_layernorm_f32(float *y, float *mean, float *inv_std, const float *x, const float *scale,
                     const float *bias, int64_t rows, int64_t cols, float eps);
/* loom.RMSNorm over the last `cols` elements of each of `rows` rows: y = x * r
 * * scale, r = 1 / sqrt(mean(x^2) + eps) (the mean in double); scale has cols
 * elements. */
void k_rmsnorm_f32(float *y, const float *x, const float *scale, int64_t rows, int64_t cols, float eps);
/* The same two with y rounded to bfloat16 as it is stored (k_bf16_rne):
 * the float32 kernels' values, then k_f32_to_bf16's rounding of them (a
 * norm whose output only a bf16 Cast read: ir_autocast_narrow_norms). */
void k_layernorm_f32_bf16out(uint16_t *y, float *mean, float *inv_std, const float *x, const float *scale,
                             const float *bias, int64_t rows, int64_t cols, float eps);
void k_rmsnorm_f32_bf16out(uint16_t *y, const float *x, const float *scale, int64_t rows, int64_t cols, float eps);
/* GroupNorm / InstanceNorm (groups = C): x [N, C, spatial]; statistics per
 * (n, group); scale and bias per channel. */
void k_groupnorm_f32(float *y, const float *x, const float *scale, const float *bias, int64_t N,
                     int64_t C, int64_t groups, int64_t spatial, float eps);

/* ---- Dropout in training mode: kdropout.c ---- */

/* y = x * mask / (1 - ratio), mask[i] = (draw(key, salt, i) >= ratio), the
 * draw uniform in [0, 1) from a hash of its arguments (no state); mask may be
 * NULL. ratio 0 keeps everything; ratio 1 zeroes everything. */
void k_dropout_f32(float *y, uint8_t *mask, const float *x, int64_t n, float ratio, uint64_t key,
                   uint64_t salt);

/* ---- softmax, reductions, scans (float32 unless noted): kreduce.c ---- */

/* Softmax or LogSoftmax over the middle axis of x [outer, len, inner]. */
void k_softmax_f32(float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int log);
/* Reduce x (dims, rank) over the axes with reduce[k] != 0 into y (the kept dims,
 * in order). kind: 0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 l1, 6 l2, 7 sum_square,
 * 8 log_sum_exp. Sums accumulate in double. dtype: float32, float64, int32, int64. */
void k_reduce(void *y, const void *x, const int64_t *dims, int rank, const int *reduce, int kind,
              int dtype);
/* ArgMax / ArgMin over the middle axis of x [outer, len, inner] into int64 y. */
void k_argreduce(int64_t *y, const void *x, int64_t outer, int64_t len, int64_t inner, int is_max,
                 int select_last, int dtype);
/* CumSum over the middle axis; dtype float32, float64, int32, int64. */
void k_cumsum(void *y, const void *x, int64_t outer, int64_t len, int64_t inner, int exclusive,
              int reverse, int dtype);

/* ---- fused attention (float32): kattn.c ---- */

/* loom.Attention over BH matrices (the leading dims of Q, K and V, equal in
 * all three): o (BH,T,Dv) = softmax(scale * q k^T + mask) v, q (BH,T,D),
 * k (BH,S,D), v (BH,S,Dv); lse (BH,T) = each row's log-sum-exp of the
 * masked, scaled scores. causal: query i sees key j iff j <= i + S - T. The
 * mask, when mask_kind is not NONE, is read at mask_off[bh] (NULL: 0) +
 * i * mask_st + j * mask_ss (strides 0 where it broadcasts): ADD, float32
 * added to the scores; KEEP, uint8 booleans, the score kept where true and
 * replaced by fill where false. A row that sees no key (or only -inf
 * scores) gets zeros and lse -inf. */
enum { K_ATTN_MASK_NONE, K_ATTN_MASK_ADD, K_ATTN_MASK_KEEP };
typedef struct {
    int64_t BH, T, S, D, Dv;
    float scale;
    int causal;
    int mask_kind;
    float fill;
    const int64_t *mask_off;
    int64_t mask_st, mask_ss;
} KAttn;
/* Workspace slots: at most this many threads run one call. */
#define K_ATTN_SLOTS 8
/* Query rows per block (scores of a block are rows x S floats per thread). */
int64_t k_attention_rows(const KAttn *p);
size_t k_attention_f32_ws(const KAttn *p);
void k_attention_f32(float *o, float *lse, const float *q, const float *k, const float *v, const void *mask,
                     const KAttn *p, void *ws);
/* loom.AttentionGrad: dq, dk, dv shaped like q, k, v from dout (like o) and
 * the forward's operands and results. The probabilities are recomputed from
 * q and k exactly as the forward computed them (this kernel holds whole rows
 * of scores; lse is the op's operand for kernels that tile the keys, and is
 * not read here). dK and dV of a matrix are summed over its row blocks in
 * order on one thread: the same bits whatever the thread count. */
size_t k_attention_grad_f32_ws(const KAttn *p);
void k_attention_grad_f32(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                          const float *v, const float *o, const float *lse, const void *mask,
                          const KAttn *p, void *ws);

/* ---- spectral (float32): kdft.c ---- */

/* DFT along the middle axis of x [outer, n_in, inner, cin] (cin 1 real or 2
 * complex) into y [outer, n_out, inner, 2]; length = dft_length (zero-padded or
 * truncated input), n_out = onesided ? length / 2 + 1 : length; inverse scales by 1/length. */
void k_dft_f32(float *y, const float *x, int64_t outer, int64_t n_in, int64_t inner, int cin,
               int64_t length, int onesided, int inverse);

/* ---- losses (float32): kloss.c ---- */

/* 0, or -1 after k_fail naming op, the position and the value, when a target
 * of the n is outside [0, C) and is not ignore_index (the loss kernels and
 * their gradients check with it). */
int k_check_targets(const char *op, const int64_t *target, int64_t n, int64_t C,
                    int64_t ignore_index, int has_ignore);

/* NegativeLogLikelihoodLoss: x [N, C, d] (d = product of extra dims, 1 if none),
 * target int64 [N, d], weight [C] or NULL; reduction 0 none (y [N, d]), 1 sum, 2 mean
 * (weighted mean over the targets not equal to ignore_index). -1 on a target out of range. */
int k_nll_loss_f32(float *y, const float *x, const int64_t *target, const float *weight, int64_t N,
                   int64_t C, int64_t d, int reduction, int64_t ignore_index, int has_ignore);
/* SoftmaxCrossEntropyLoss: log_prob (may be NULL) gets log_softmax(x) over C;
 * the rest as NLL on it. */
int k_sce_loss_f32(float *y, float *log_prob, const float *x, const int64_t *target,
                   const float *weight, int64_t N, int64_t C, int64_t d, int reduction,
                   int64_t ignore_index, int has_ignore);

/* ---- backward and optimizer kernels (float32): kgrad.c, kgrad_nn.c ---- */
/* The internal loom.* ops of ir/train.h, each the exact derivative of the
 * forward kernel above it names. Gradients that sum over many elements
 * (parameter gradients, softmax and norm row sums) accumulate in double, each
 * sum on one thread in a fixed order, so results never depend on threads. */

/* loom.ActivationGrad: dx = dy * f'(x) over n elements. act: K_ACT_*; alpha,
 * beta, gamma as the forward op's attributes (with ONNX's defaults filled in).
 * For Relu and LeakyRelu (alpha >= 0) autodiff passes the forward output as x:
 * f' depends only on the sign, which the output shares. */
enum { K_ACT_RELU, K_ACT_LEAKY_RELU, K_ACT_ELU, K_ACT_SELU, K_ACT_HARD_SIGMOID, K_ACT_HARD_SWISH,
       K_ACT_GELU, K_ACT_GELU_TANH };
void k_activation_grad_f32(float *dx, const float *dy, const float *x, int64_t n, int act,
                           float alpha, float beta, float gamma);
/* loom.SoftmaxGrad / LogSoftmaxGrad over the middle axis of [outer, len, inner]:
 * y is the forward output; log 0: dx = y * (dy - sum(dy * y)), 1: dx = dy - exp(y) * sum(dy). */
void k_softmax_grad_f32(float *dx, const float *dy, const float *y, int64_t outer, int64_t len,
                        int64_t inner, int log);
/* loom.LayerNormGrad: x, dy, dx [rows, cols]; scale, dscale, dbias [cols]
 * (dscale, dbias may be NULL); mean, inv_std [rows] from the forward, or NULL
 * to recompute them from x. ws: k_layernorm_grad_f32_ws(rows) bytes. */
size_t k_layernorm_grad_f32_ws(int64_t rows);
void k_layernorm_grad_f32(float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, const float *mean, const float *inv_std,
                          int64_t rows, int64_t cols, float eps, void *ws);
/* loom.RMSNormGrad: x, dy, dx [rows, cols]; scale, dscale [cols] (dscale may
 * be NULL); r recomputed from x. ws: k_layernorm_grad_f32_ws(rows) bytes. */
void k_rmsnorm_grad_f32(float *dx, float *dscale, const float *dy, const float *x, const float *scale,
                        int64_t rows, int64_t cols, float eps, void *ws);
/* loom.BatchNormGrad: x, dy, dx [N, C, spatial]; scale, mean, var, dscale,
 * dbias [C] (scale may be NULL: 1; dx, dscale, dbias may be NULL). training 1:
 * the batch statistics of x (mean, var unused); 0: the given mean and var.
 * dx may be dy: each channel's sums read its dy before its dx is written. */
void k_batchnorm_grad_f32(float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, const float *mean, const float *var, int64_t N,
                          int64_t C, int64_t spatial, float eps, int training);
/* loom.BatchNormGrad with relu 1: as k_batchnorm_grad_f32 with the given
 * statistics, dy the gradient of Relu(BatchNormalization(x)): it counts
 * where the normalization (kmath.h, k_bn_relu, with bias [C]) is positive,
 * as loom.ActivationGrad of the Relu did. scale, bias, mean, var non-NULL. */
void k_batchnorm_relu_grad_f32(float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                               const float *scale, const float *bias, const float *mean, const float *var,
                               int64_t N, int64_t C, int64_t spatial, float eps);
/* The two with the given statistics and x a bfloat16 copy (low-bit
 * storage, optimizer.h: opt_reads_bf16), widened as it is loaded: bit for
 * bit the float32 kernels on k_bf16_to_f32(x). */
void k_batchnorm_grad_bf16x(float *dx, float *dscale, float *dbias, const float *dy, const uint16_t *x,
                            const float *scale, const float *mean, const float *var, int64_t N, int64_t C,
                            int64_t spatial, float eps);
void k_batchnorm_relu_grad_bf16x(float *dx, float *dscale, float *dbias, const float *dy, const uint16_t *x,
                                 const float *scale, const float *bias, const float *mean, const float *var,
                                 int64_t N, int64_t C, int64_t spatial, float eps);
/* loom.GroupNormGrad / InstanceNormGrad (groups = C): as k_groupnorm_f32;
 * scale, dscale, dbias per channel. ws: k_groupnorm_grad_f32_ws(N, groups) bytes. */
size_t k_groupnorm_grad_f32_ws(int64_t N, int64_t groups);
void k_groupnorm_grad_f32(float *dx, float *dscale, float *dbias, const float *dy, const float *x,
                          const float *scale, int64_t N, int64_t C, int64_t groups,
                          int64_t spatial, float eps, void *ws);
/* loom.LinearCrossEntropy (klince.c): loss [] and the gradients dx [N, D],
 * dw (w's shape) for an upstream gradient of 1 of the cross-entropy of the
 * logits x w ([N, D] x [D, C], or x w^T with trans_w and w [C, D]) against
 * target [N] (mean over the rows not ignored, or the sum), a block of rows
 * at a time. ws: k_linear_ce_f32_ws(N, C) bytes. -1 on a target out of range. */
size_t k_linear_ce_f32_ws(int64_t N, int64_t C);
int k_linear_ce_f32(float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                    const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean,
                    int64_t ignore_index, int has_ignore, void *ws);
/* The same with the products' operands (x, w and the logits' gradient)
 * rounded to bfloat16 and float32 sums (--precision bf16).
 * ws: k_linear_ce_bf16_ws(N, D, C) bytes. */
size_t k_linear_ce_bf16_ws(int64_t N, int64_t D, int64_t C);
int k_linear_ce_bf16(float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                     const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean,
                     int64_t ignore_index, int has_ignore, void *ws);
/* loom.SoftmaxCrossEntropyLossGrad: dx [N, C, d] from dloss (a scalar for
 * reduction 1 sum and 2 mean, [N, d] for 0 none) and the forward's operands;
 * log_prob (the forward's output) may be NULL. -1 on a target out of range. */
int k_sce_loss_grad_f32(float *dx, const float *dloss, const float *x, const float *log_prob,
                        const int64_t *target, const float *weight, int64_t N, int64_t C,
                        int64_t d, int reduction, int64_t ignore_index, int has_ignore);
/* loom.NegativeLogLikelihoodLossGrad: dx [N, C, d], as above. */
int k_nll_loss_grad_f32(float *dx, const float *dloss, const int64_t *target, const float *weight,
                        int64_t N, int64_t C, int64_t d, int reduction, int64_t ignore_index,
                        int has_ignore);
/* loom.GlobalNorm: y[0] = sqrt of the sum of squares of the count tensors
 * g[i] (n[i] elements each), summed in double in a fixed order. */
void k_global_norm_f32(float *y, const float *const *g, const int64_t *n, int count);
/* loom.SGD, in place on param and buf (buf NULL when momentum is 0):
 * torch.optim.SGD with dampening 0; grad_scale (clipping) may be NULL. */
void k_sgd_f32(float *param, float *buf, const float *grad, float lr, const float *grad_scale,
               int64_t n, float momentum, float weight_decay, int nesterov);
/* loom.AdamW, in place on param, m, v; step counts from 1 (torch.optim.AdamW). */
void k_adamw_f32(float *param, float *m, float *v, const float *grad, float lr, int64_t step,
                 const float *grad_scale, int64_t n, float beta1, float beta2, float eps,
                 float weight_decay);

/* loom.ConvGradWeight: dw [M, C/group, k...] of k_conv_f32 from dy [N, M, out...]
 * and x [N, C, in...]. ws: k_conv_grad_weight_f32_ws(p) bytes. */
size_t k_conv_grad_weight_f32_ws(const KConv *p);
void k_conv_grad_weight_f32(float *dw, const float *dy, const float *x, const KConv *p, void *ws);
/* loom.ConvGradWeight (dy, x, scale, bias, mean, var): as k_conv_grad_weight_f32
 * with x's place taken by Relu(BatchNormalization(x)) in inference form, which
 * it computes an image at a time (kmath.h, k_bn_relu); scale, bias, mean, var
 * [C]. ws: k_conv_grad_weight_bn_relu_f32_ws(p) bytes. */
size_t k_conv_grad_weight_bn_relu_f32_ws(const KConv *p);
void k_conv_grad_weight_bn_relu_f32(float *dw, const float *dy, const float *x, const float *scale,
                                    const float *bias, const float *mean, const float *var, float eps,
                                    const KConv *p, void *ws);
/* The same with x a bfloat16 copy (low-bit storage), widened as it is
 * loaded: bit for bit k_conv_grad_weight_bn_relu_f32 on k_bf16_to_f32(x);
 * the same workspace. */
void k_conv_grad_weight_bn_relu_bf16x(float *dw, const float *dy, const uint16_t *x, const float *scale,
                                      const float *bias, const float *mean, const float *var, float eps,
                                      const KConv *p, void *ws);
/* loom.MaxPoolGrad: dx [NC, in...] gets each dy at its window's first maximum
 * in x (k_maxpool_f32's rule). ws: k_maxpool_grad_f32_ws(p) bytes. */
size_t k_maxpool_grad_f32_ws(const KPool *p);
void k_maxpool_grad_f32(float *dx, const float *dy, const float *x, const KPool *p, void *ws);
/* loom.MaxPoolGrad (dy, x, -1, scale, bias, mean, var): as k_maxpool_grad_f32
 * with the maxima found in Relu(BatchNormalization(x)) (kmath.h, k_bn_relu),
 * made a block of rows at a time; x's rows are (n, c) of C channels, the four
 * vectors [C]. ws: k_maxpool_grad_bn_relu_f32_ws(p) bytes. */
size_t k_maxpool_grad_bn_relu_f32_ws(const KPool *p);
void k_maxpool_grad_bn_relu_f32(float *dx, const float *dy, const float *x, const float *scale, const float *bias,
                                const float *mean, const float *var, float eps, int64_t C, const KPool *p,
                                void *ws);
/* loom.AveragePoolGrad: dx [NC, in...], the adjoint of k_avgpool_f32. */
void k_avgpool_grad_f32(float *dx, const float *dy, const KPool *p);
/* loom.ResizeGrad: dx (in_dims), the adjoint of k_resize_f32 (mode 0 nearest,
 * 1 linear; every coord_mode but 4, tf_crop_and_resize). */
void k_resize_grad_f32(float *dx, const float *dy, const int64_t *in_dims, const int64_t *out_dims,
                       int rank, const float *scale, int mode, int coord_mode, int nearest_mode);
/* loom.GatherGrad: dx [outer, axis_len, inner] = scatter-add of dy [outer, nidx, inner]. */
int k_gather_grad_f32(float *dx, const float *dy, const void *idx, int idx_is_i32, int64_t outer,
                      int64_t axis_len, int64_t nidx, int64_t inner);
/* loom.GatherElementsGrad: dx (x_dims) = scatter-add of dy (dims, as idx). */
int k_gather_elements_grad_f32(float *dx, const int64_t *x_dims, const float *dy, const void *idx,
                               int idx_is_i32, const int64_t *dims, int rank, int axis);
/* loom.SliceGrad: dx (x_dims) zeros, dy (dims) written at starts + i * steps. */
void k_slice_grad_f32(float *dx, const int64_t *x_dims, const float *dy, const int64_t *dims,
                      int rank, const int64_t *starts, const int64_t *steps);

#endif
