/* loom.LinearCrossEntropy (lk.cuh): klince.c's blocks of rows on the GPU, so
 * the logits [N, C] are never held whole. Per block of R rows (block_rows):
 *   logits = x_b W                 (cuBLASLt, into the workspace)
 *   a block per row: max, sum of exps (double), its loss, and
 *            g = coeff * (softmax - onehot(t)) over the logits
 *   dx_b = g W^T,  dW (+)= x_b^T g (cuBLASLt; dW accumulates over blocks
 *                                   in order, beta 1 after the first)
 *   one block adds the rows' losses to the total, in order.
 * coeff (1 / rows not ignored for the mean, 1 for the sum) is counted on
 * the device first. A target out of range makes its row's loss and
 * gradient NaN (the train driver names the node on a NaN loss).
 *
 * lk_linear_ce_bf16 (--precision bf16) runs the three products on bfloat16
 * operands with fp32 accumulation (tensor cores): W and each x_b are
 * rounded into the workspace, the rows' kernel writes g rounded, and the
 * logits, dx_b and dW stay fp32 (dW accumulates over blocks in fp32), as
 * klince.c's k_linear_ce_bf16 computes them. The class dimension is padded
 * to Cp, a multiple of 128, with zeros (W's extra rows, g's extra columns),
 * and dW accumulates in a padded scratch copied out at the end: cuBLASLt's
 * tensor-core kernels want every dimension a multiple of 8. At GPT-2 124M's
 * 50257 classes they ran at 94-130 TFLOP/s; at 50304, 450-800 (H200,
 * bench/gpu_lince.cu). A multiple of 128 (whole tiles) rather than of 8:
 * the head 6.26 against 6.38 ms on an H100 (50304 against 50264 classes). */

#include "lk_block.cuh"

#define LINCE_WS_FLOATS ((int64_t)1 << 23)
#define LINCE_MIN_ROWS 1024
#define ROW_THREADS 256

/* rows of a block: klince.c's 2^23 logits, but at least 1024 rows, so that
 * each product has rows enough to run near the GPU's rate (a vocabulary of
 * 50257: 1024 rows, 206 MB; with 166 rows GPT-2's head ran at 14 TFLOP/s
 * on an H200). cg_cuda.c's linear_ce_ws counts the same. */
static int64_t block_rows(int64_t N, int64_t C)
{
    int64_t r = LINCE_WS_FLOATS / (C > 0 ? C : 1);
    if (r < LINCE_MIN_ROWS) r = LINCE_MIN_ROWS;
    return r < N ? r : N;
}

/* the workspace: coeff and total (doubles), the block's row losses, then its logits at 256 bytes */
static size_t head_bytes(int64_t r) { return ((size_t)(r + 2) * sizeof(double) + 255) / 256 * 256; }

size_t lk_linear_ce_f32_ws(int64_t N, int64_t C)
{
    int64_t r = block_rows(N, C);
    return head_bytes(r) + (size_t)(r * C) * sizeof(float);
}

/* bf16: the classes padded to Cp; the workspace: the statistics, the
 * logits (f32, R x Cp), then g (R x Cp), x_b and W (Cp x D) in bf16, then
 * (Cp > C) dW's padded accumulator (f32, Cp x D), each at 256 bytes */
static size_t up256(size_t n) { return (n + 255) / 256 * 256; }
static unsigned grid_of(int64_t rows) { return (unsigned)(rows < 65535 ? (rows ? rows : 1) : 65535); }
static int64_t padded(int64_t C) { return (C + 127) / 128 * 128; }

size_t lk_linear_ce_bf16_ws(int64_t N, int64_t D, int64_t C)
{
    int64_t r = block_rows(N, C), Cp = padded(C);
    return head_bytes(r) + up256((size_t)(r * Cp) * 4) + up256((size_t)(r * Cp) * 2) + up256((size_t)(r * D) * 2) +
           up256((size_t)(Cp * D) * 2) + (Cp > C ? (size_t)(Cp * D) * 4 : 0);
}

static __global__ void to_bf16(uint16_t *y, int64_t ldy, const float *x, int64_t rows, int64_t cols)
{
    // y (rows, at row stride ldy) = x (rows, cols) rounded; zeros in a row's columns past cols; a block a row
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
        for (int64_t c = threadIdx.x; c < ldy; c += blockDim.x) y[r * ldy + c] = c < cols ? lk_bf16_rne(x[r * cols + c]) : 0;
}

static __global__ void copy_rows(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t cols)
{
    // y (rows, cols at stride ldy) = x (the same at stride ldx); a block a row
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) y[r * ldy + c] = x[r * ldx + c];
}

static __global__ void lince_count(double *st, const int64_t *target, int64_t N, int mean, int64_t ignore_index,
                                   int has_ignore)
{
    // one block: st[0] = the gradient's coefficient, st[1] = 0 (the total loss)
    __shared__ double part[32];
    double cnt = 0;
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x) cnt += !(has_ignore && target[n] == ignore_index);
    cnt = lk_block_sum(cnt, part);
    if (threadIdx.x == 0) st[0] = mean ? 1.0 / cnt : 1.0, st[1] = 0;
}

/* one logit's gradient: coeff * (softmax - onehot(t)) at class c */
static __device__ inline float lince_grad(float l, float m, float inv, float co, int64_t c, int64_t t)
{
    return co * (expf(l - m) * inv) - (c == t ? co : 0.0f);
}

/* the rows' kernel, a block a row (block b takes rows b, b + grid, ...):
 * loss_i = max + log(sum of exps) - l[t] (the sum in double), and the
 * logits of row i (C at row stride ld) replaced by their gradient
 * g = coeff * (softmax - onehot(t)), or (g16 not NULL) g rounded to
 * bfloat16 there instead, its columns from C to ld zero. ROW (ld a multiple
 * of 4): the row is read from device memory once, 16 bytes a thread, into
 * shared memory (ld floats, dynamic), where the three passes (max, sum,
 * gradient) run, and g16 is written 8 bytes a thread. Without ROW the
 * passes read l three times: for a vocabulary's 200 KB rows, a block of
 * rows in flight at once, three reads from device memory (the fused head
 * 6.86 ms on an H100, 6.38 with the row in shared memory read 4 bytes a
 * thread; bench/gpu_lince.cu). */
template <bool ROW>
static __global__ void lince_rows(float *l, uint16_t *g16, int64_t ld, double *rowloss, const double *st,
                                  const int64_t *target, int64_t rows, int64_t C, int64_t ignore_index, int has_ignore)
{
    __shared__ double dpart[32];
    __shared__ float fpart[32];
    LOOM_DYN_SHARED(float, row);
    for (int64_t i = blockIdx.x; i < rows; i += gridDim.x) {
        float *lr = l + i * ld;
        const float *src = ROW ? row : lr;
        int64_t t = target[i];
        if (has_ignore && t == ignore_index) {
            for (int64_t c = threadIdx.x; c < (g16 ? ld : C); c += blockDim.x) {
                if (g16) g16[i * ld + c] = 0;
                else lr[c] = 0.0f;
            }
            if (threadIdx.x == 0) rowloss[i] = 0;
            continue;
        }
        int bad = t < 0 || t >= C;
        float m = -INFINITY;
        if (ROW) {
            const float4 *l4 = (const float4 *)lr;
            float4 *r4 = (float4 *)row;
            int64_t n4 = ld / 4, bd = blockDim.x;
            for (int64_t q0 = threadIdx.x; q0 < n4; q0 += 4 * bd) {
                float4 v[4]; // four loads in flight before the first is used
                LK_UNROLL
                for (int k = 0; k < 4; k++)
                    if (q0 + k * bd < n4) v[k] = l4[q0 + k * bd];
                LK_UNROLL
                for (int k = 0; k < 4; k++) {
                    int64_t q = q0 + k * bd, c = 4 * q;
                    if (q >= n4) break;
                    r4[q] = v[k];
                    if (c < C) m = v[k].x > m ? v[k].x : m;
                    if (c + 1 < C) m = v[k].y > m ? v[k].y : m;
                    if (c + 2 < C) m = v[k].z > m ? v[k].z : m;
                    if (c + 3 < C) m = v[k].w > m ? v[k].w : m;
                }
            }
        } else {
            for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = lr[c] > m ? lr[c] : m;
        }
        m = lk_block_max(m, fpart); // a barrier: row[] is whole from here
        double s = 0;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += (double)expf(src[c] - m);
        s = lk_block_sum(s, dpart);
        float lt = bad ? 0.0f : src[t];
        __syncthreads(); // every thread has read l[t] before it is overwritten
        if (threadIdx.x == 0) rowloss[i] = bad ? NAN : (double)m + log(s) - (double)lt;
        float inv = (float)(1.0 / s), co = bad ? NAN : (float)st[0];
        if (ROW && g16) {
            uint2 *g4 = (uint2 *)(g16 + i * ld);
            for (int64_t q = threadIdx.x; q < ld / 4; q += blockDim.x) {
                uint32_t h[4];
                for (int k = 0; k < 4; k++) {
                    int64_t c = 4 * q + k;
                    h[k] = c < C ? lk_bf16_rne(lince_grad(row[c], m, inv, co, c, t)) : 0;
                }
                g4[q] = make_uint2(h[0] | h[1] << 16, h[2] | h[3] << 16);
            }
        } else {
            if (g16)
                for (int64_t c = C + threadIdx.x; c < ld; c += blockDim.x) g16[i * ld + c] = 0;
            for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
                float gc = lince_grad(src[c], m, inv, co, c, t);
                if (g16) g16[i * ld + c] = lk_bf16_rne(gc);
                else lr[c] = gc;
            }
        }
        if (ROW) __syncthreads(); // row[] is not refilled while a thread still reads it
    }
}

/* the rows' launch: with the row in shared memory where ld is a multiple of
 * 4 and ld floats fit the device's shared memory for one block
 * (ROW_SMEM_THREADS threads, a block per multiprocessor at a time), else
 * the three reads (ROW_THREADS) */
#define ROW_SMEM_THREADS 1024
static int launch_rows(cudaStream_t s, float *l, uint16_t *g16, int64_t ld, double *rowloss, const double *st,
                       const int64_t *target, int64_t rows, int64_t C, int64_t ignore_index, int has_ignore)
{
    static int optin = -1;
    if (optin < 0) {
        int dev = 0, v = 0;
        if (RT_CUDA(cudaGetDevice(&dev)) || RT_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)))
            return -1;
        optin = v;
    }
    unsigned blocks = (unsigned)(rows < 65535 ? rows : 65535);
    size_t bytes = (size_t)ld * sizeof(float);
    // the static part (dpart, fpart: 384 bytes) beside the row
    if (ld % 4 == 0 && bytes + 1024 <= (size_t)optin)
        return lk_smem_optin((const void *)lince_rows<true>, bytes) ||
               LOOM_LAUNCH(lince_rows<true>, blocks, ROW_SMEM_THREADS, bytes, s, l, g16, ld, rowloss, st, target, rows, C,
                           ignore_index, has_ignore);
    return LOOM_LAUNCH(lince_rows<false>, blocks, ROW_THREADS, 0, s, l, g16, ld, rowloss, st, target, rows, C,
                       ignore_index, has_ignore);
}

static __global__ void lince_total(double *st, float *loss, const double *rowloss, int64_t rows, int last)
{
    // one block: the block's losses added to the total in order; the loss after the last block
    __shared__ double part[32];
    double s = 0;
    for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) s += rowloss[i];
    s = lk_block_sum(s, part);
    if (threadIdx.x == 0) {
        st[1] += s;
        if (last) loss[0] = (float)(st[1] * st[0]);
    }
}

static int linear_ce(cudaStream_t s, float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                     const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean, int64_t ignore_index,
                     int has_ignore, void *ws, int bf16)
{
    int64_t R = block_rows(N, C), Cp = bf16 ? padded(C) : C;
    double *st = (double *)ws, *rowloss = st + 2;
    float *l = (float *)((char *)ws + head_bytes(R)), *dwp = dw;
    uint16_t *g16 = NULL, *x16 = NULL, *w16 = NULL;
    if (bf16) {
        g16 = (uint16_t *)((char *)l + up256((size_t)(R * Cp) * 4));
        x16 = (uint16_t *)((char *)g16 + up256((size_t)(R * Cp) * 2));
        w16 = (uint16_t *)((char *)x16 + up256((size_t)(R * D) * 2));
        if (Cp > C) dwp = (float *)((char *)w16 + up256((size_t)(Cp * D) * 2));
    }
    if (LOOM_LAUNCH(lince_count, 1, ROW_THREADS, 0, s, st, target, N, reduction_mean, ignore_index, has_ignore))
        return -1;
    if (N == 0) // no rows: the loss is the total 0 times the coefficient, dW zero
        return RT_CUDA(cudaMemsetAsync(dw, 0, (size_t)(D * C) * sizeof(float), s)) ||
               LOOM_LAUNCH(lince_total, 1, ROW_THREADS, 0, s, st, loss, rowloss, 0, 1);
    // bf16: W16 [Cp, D] (trans_w; rows past C zero) or [D, Cp] (columns past C zero)
    if (bf16 && ((trans_w && RT_CUDA(cudaMemsetAsync(w16 + C * D, 0, (size_t)((Cp - C) * D) * 2, s))) ||
                 LOOM_LAUNCH(to_bf16, grid_of(trans_w ? C : D), ROW_THREADS, 0, s, w16, trans_w ? D : Cp, w,
                             trans_w ? C : D, trans_w ? D : C)))
        return -1;
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t rows = N - r0 < R ? N - r0 : R;
        const float *xb = x + r0 * D;
        int rc;
        if (!bf16) {
            // logits (rows, C) = x_b W, W [D, C] or (trans_w) [C, D]
            rc = lk_gemm_f32(s, l, xb, w, NULL, 1, rows, C, D, 0, trans_w, 1.0f, 0.0f, 0, 0, 0) ||
                 launch_rows(s, l, (uint16_t *)NULL, C, rowloss, st, target + r0, rows, C, ignore_index, has_ignore) ||
                 LOOM_LAUNCH(lince_total, 1, ROW_THREADS, 0, s, st, loss, rowloss, rows, r0 + rows >= N) ||
                 // dx_b (rows, D) = g W^T
                 lk_gemm_f32(s, dx + r0 * D, l, w, NULL, 1, rows, D, C, 0, !trans_w, 1.0f, 0.0f, 0, 0, 0) ||
                 // dW += x_b^T g ([D, C]) or g^T x_b ([C, D])
                 (trans_w ? lk_gemm_f32(s, dw, l, xb, NULL, 1, C, D, rows, 1, 0, 1.0f, r0 ? 1.0f : 0.0f, 0, 0, 0)
                          : lk_gemm_f32(s, dw, xb, l, NULL, 1, D, C, rows, 1, 0, 1.0f, r0 ? 1.0f : 0.0f, 0, 0, 0));
        } else {
            // the same on x_b, W and g rounded to bfloat16 with Cp classes, fp32 results
            rc = LOOM_LAUNCH(to_bf16, grid_of(rows), ROW_THREADS, 0, s, x16, D, xb, rows, D) ||
                 lk_gemm_bf16_f32out(s, l, x16, w16, 1, rows, Cp, D, 0, trans_w, 1.0f, 0.0f, 0, 0, 0) ||
                 launch_rows(s, l, g16, Cp, rowloss, st, target + r0, rows, C, ignore_index, has_ignore) ||
                 LOOM_LAUNCH(lince_total, 1, ROW_THREADS, 0, s, st, loss, rowloss, rows, r0 + rows >= N) ||
                 lk_gemm_bf16_f32out(s, dx + r0 * D, g16, w16, 1, rows, D, Cp, 0, !trans_w, 1.0f, 0.0f, 0, 0, 0) ||
                 (trans_w ? lk_gemm_bf16_f32out(s, dwp, g16, x16, 1, Cp, D, rows, 1, 0, 1.0f, r0 ? 1.0f : 0.0f, 0, 0, 0)
                          : lk_gemm_bf16_f32out(s, dwp, x16, g16, 1, D, Cp, rows, 1, 0, 1.0f, r0 ? 1.0f : 0.0f, 0, 0, 0));
        }
        if (rc) return -1;
    }
    // the padded dW's first C classes
    if (dwp != dw && (trans_w ? RT_CUDA(cudaMemcpyAsync(dw, dwp, (size_t)(C * D) * sizeof(float), cudaMemcpyDeviceToDevice, s))
                              : LOOM_LAUNCH(copy_rows, grid_of(D), ROW_THREADS, 0, s, dw, C, dwp, Cp, D, C)))
        return -1;
    return 0;
}

int lk_linear_ce_f32(cudaStream_t s, float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                     const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean, int64_t ignore_index,
                     int has_ignore, void *ws)
{
    return linear_ce(s, loss, dx, dw, x, w, trans_w, target, N, D, C, reduction_mean, ignore_index, has_ignore, ws, 0);
}

int lk_linear_ce_bf16(cudaStream_t s, float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                      const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean, int64_t ignore_index,
                      int has_ignore, void *ws)
{
    return linear_ce(s, loss, dx, dw, x, w, trans_w, target, N, D, C, reduction_mean, ignore_index, has_ignore, ws, 1);
}
