/* loom.LinearCrossEntropy (ir/loss.c): a language model's head and its
 * cross-entropy in one step, a block of rows at a time, so that the logits
 * [N, C] are never held whole. Per block of R rows:
 *   logits = x_b W                         (R x C, in the workspace)
 *   per row: m = max, s = sum exp(l - m), loss += m + log s - l[t],
 *            g = coeff * (softmax - onehot(t)) written over the logits
 *   dx_b = g W^T,  dW += x_b^T g           (blocks in order: dW's sums are
 *                                           the same whatever the threads)
 * coeff is 1 / (rows not ignored) for the mean, 1 for the sum: the
 * gradients for an upstream gradient of 1. Products through k_sgemm, so
 * the results are independent of the thread count.
 *
 * k_linear_ce_bf16 (--precision bf16: ir/autocast.c's compute = 16) rounds
 * the operands of the three products to bfloat16 (x_b, W, and g after the
 * softmax), as the cuda kernel's tensor-core products read them, and
 * accumulates in float32 as they do: dW's sums over blocks stay float32. The
 * rounded copies of W and x_b are in the workspace, after the logits. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kmath.h"

/* the workspace holds this many floats of logits at most: 32 MiB */
#define LINCE_WS_FLOATS ((int64_t)1 << 23)

static int64_t block_rows(int64_t N, int64_t C)
{
    int64_t r = LINCE_WS_FLOATS / (C > 0 ? C : 1);
    if (r < 1) r = 1;
    return r < N ? r : N;
}

/* the workspace: the rows' losses (doubles), then the block of logits at the next 64 bytes */
static size_t rowloss_bytes(int64_t r) { return ((size_t)r * sizeof(double) + 63) / 64 * 64; }

size_t k_linear_ce_f32_ws(int64_t N, int64_t C)
{
    int64_t r = block_rows(N, C);
    return rowloss_bytes(r) + (size_t)(r * C) * sizeof(float);
}

size_t k_linear_ce_bf16_ws(int64_t N, int64_t D, int64_t C)
{
    return k_linear_ce_f32_ws(N, C) + (size_t)((block_rows(N, C) + C) * D) * sizeof(float);
}

typedef struct {
    float *l;          /* [rows, C] logits, then their gradient */
    double *rowloss;   /* [rows] */
    const int64_t *target;
    int64_t C, ignore_index;
    int has_ignore;
    double coeff;
} Rows;

static void rows_body(void *arg, int64_t lo, int64_t hi, int tid)
{
    (void)tid;
    const Rows *a = arg;
    int64_t C = a->C;
    for (int64_t i = lo; i < hi; i++) {
        float *l = a->l + i * C;
        int64_t t = a->target[i];
        if (a->has_ignore && t == a->ignore_index) {
            memset(l, 0, (size_t)C * sizeof *l);
            a->rowloss[i] = 0;
            continue;
        }
        float m = l[0];
        for (int64_t c = 1; c < C; c++) m = l[c] > m ? l[c] : m;
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += k_expf(l[c] - m);
        a->rowloss[i] = (double)m + log(s) - (double)l[t];
        float inv = (float)(1.0 / s), co = (float)a->coeff;
        for (int64_t c = 0; c < C; c++) l[c] = co * (k_expf(l[c] - m) * inv);
        l[t] -= co;
    }
}

static int linear_ce(float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                     const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean,
                     int64_t ignore_index, int has_ignore, void *ws, int bf16)
{
    if (k_check_targets("LinearCrossEntropy", target, N, C, ignore_index, has_ignore) < 0) return -1;
    int64_t counted = 0;
    for (int64_t i = 0; i < N; i++) counted += !(has_ignore && target[i] == ignore_index);
    double coeff = reduction_mean ? 1.0 / (double)counted : 1.0; /* all ignored: NaN, as PyTorch */
    int64_t R = block_rows(N, C);
    double *rowloss = ws;
    float *l = (float *)((char *)ws + rowloss_bytes(R));
    float *xr = l + R * C, *wr = xr + R * D; /* bf16: x_b and W rounded */
    if (bf16) {
        memcpy(wr, w, (size_t)(C * D) * sizeof *wr);
        k_bf16_round(wr, C * D);
        w = wr;
    }
    /* W is [D, C] (ldw C) or, trans_w, [C, D] (ldw D) */
    int64_t ldw = trans_w ? D : C;
    double total = 0;
    if (N == 0) memset(dw, 0, (size_t)(D * C) * sizeof *dw);
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t rows = N - r0 < R ? N - r0 : R;
        const float *xb = x + r0 * D;
        if (bf16) {
            memcpy(xr, xb, (size_t)(rows * D) * sizeof *xr);
            k_bf16_round(xr, rows * D);
            xb = xr;
        }
        k_sgemm(0, trans_w, rows, C, D, 1.0f, xb, D, w, ldw, 0.0f, l, C);
        Rows a = {l, rowloss, target + r0, C, ignore_index, has_ignore, coeff};
        k_par_for(rows, rows * C * 8, rows_body, &a);
        if (bf16) k_bf16_round(l, rows * C);
        for (int64_t i = 0; i < rows; i++) total += rowloss[i];
        /* dx_b = g W^T: [rows, C] x [C, D] */
        k_sgemm(0, !trans_w, rows, D, C, 1.0f, l, C, w, ldw, 0.0f, dx + r0 * D, D);
        /* dW += x_b^T g ([D, C]) or g^T x_b ([C, D]) */
        if (trans_w)
            k_sgemm(1, 0, C, D, rows, 1.0f, l, C, xb, D, r0 ? 1.0f : 0.0f, dw, D);
        else
            k_sgemm(1, 0, D, C, rows, 1.0f, xb, D, l, C, r0 ? 1.0f : 0.0f, dw, C);
    }
    loss[0] = (float)(total * coeff);
    return 0;
}

int k_linear_ce_f32(float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                    const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean,
                    int64_t ignore_index, int has_ignore, void *ws)
{
    return linear_ce(loss, dx, dw, x, w, trans_w, target, N, D, C, reduction_mean, ignore_index, has_ignore, ws, 0);
}

int k_linear_ce_bf16(float *loss, float *dx, float *dw, const float *x, const float *w, int trans_w,
                     const int64_t *target, int64_t N, int64_t D, int64_t C, int reduction_mean,
                     int64_t ignore_index, int has_ignore, void *ws)
{
    return linear_ce(loss, dx, dw, x, w, trans_w, target, N, D, C, reduction_mean, ignore_index, has_ignore, ws, 1);
}
