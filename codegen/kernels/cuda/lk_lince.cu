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
 * gradient NaN (the train driver names the node on a NaN loss). */
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

static __global__ void lince_rows(float *l, double *rowloss, const double *st, const int64_t *target, int64_t rows,
                                  int64_t C, int64_t ignore_index, int has_ignore)
{
    // l (rows, C): the logits, replaced by their gradient; block b takes row b
    __shared__ double dpart[32];
    __shared__ float fpart[32];
    for (int64_t i = blockIdx.x; i < rows; i += gridDim.x) {
        float *lr = l + i * C;
        int64_t t = target[i];
        if (has_ignore && t == ignore_index) {
            for (int64_t c = threadIdx.x; c < C; c += blockDim.x) lr[c] = 0.0f;
            if (threadIdx.x == 0) rowloss[i] = 0;
            continue;
        }
        int bad = t < 0 || t >= C;
        float m = -INFINITY;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = lr[c] > m ? lr[c] : m;
        m = lk_block_max(m, fpart);
        double s = 0;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += (double)expf(lr[c] - m);
        s = lk_block_sum(s, dpart);
        float lt = bad ? 0.0f : lr[t];
        __syncthreads(); // every thread has read l[t] before it is overwritten
        if (threadIdx.x == 0) rowloss[i] = bad ? NAN : (double)m + log(s) - (double)lt;
        float inv = (float)(1.0 / s), co = bad ? NAN : (float)st[0];
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            lr[c] = co * (expf(lr[c] - m) * inv) - (c == t ? co : 0.0f);
    }
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

int lk_linear_ce_f32(cudaStream_t s, float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                     const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean, int64_t ignore_index,
                     int has_ignore, void *ws)
{
    int64_t R = block_rows(N, C);
    double *st = (double *)ws, *rowloss = st + 2;
    float *l = (float *)((char *)ws + head_bytes(R));
    if (LOOM_LAUNCH(lince_count, 1, ROW_THREADS, 0, s, st, target, N, reduction_mean, ignore_index, has_ignore))
        return -1;
    if (N == 0) // no rows: the loss is the total 0 times the coefficient, dW zero
        return RT_CUDA(cudaMemsetAsync(dw, 0, (size_t)(D * C) * sizeof(float), s)) ||
               LOOM_LAUNCH(lince_total, 1, ROW_THREADS, 0, s, st, loss, rowloss, 0, 1);
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t rows = N - r0 < R ? N - r0 : R;
        const float *xb = x + r0 * D;
        unsigned blocks = (unsigned)(rows < 65535 ? rows : 65535);
        // logits (rows, C) = x_b W, W [D, C] or (trans_w) [C, D]
        if (lk_gemm_f32(s, l, xb, w, NULL, 1, rows, C, D, 0, trans_w, 1.0f, 0.0f, 0, 0, 0) ||
            LOOM_LAUNCH(lince_rows, blocks, ROW_THREADS, 0, s, l, rowloss, st, target + r0, rows, C, ignore_index,
                        has_ignore) ||
            LOOM_LAUNCH(lince_total, 1, ROW_THREADS, 0, s, st, loss, rowloss, rows, r0 + rows >= N) ||
            // dx_b (rows, D) = g W^T
            lk_gemm_f32(s, dx + r0 * D, l, w, NULL, 1, rows, D, C, 0, !trans_w, 1.0f, 0.0f, 0, 0, 0) ||
            // dW += x_b^T g ([D, C]) or g^T x_b ([C, D])
            (trans_w ? lk_gemm_f32(s, dw, l, xb, NULL, 1, C, D, rows, 1, 0, 1.0f, r0 ? 1.0f : 0.0f, 0, 0, 0)
                     : lk_gemm_f32(s, dw, xb, l, NULL, 1, D, C, rows, 1, 0, 1.0f, r0 ? 1.0f : 0.0f, 0, 0, 0)))
            return -1;
    }
    return 0;
}
