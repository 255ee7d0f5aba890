/* Gradient rules, part two: the neural-network ops. Softmax, the
 * normalizations, max and average pooling, Resize, Gather and the losses
 * get internal backward ops (loom.*, ir/train.h), each one fused kernel.
 * Convolution uses what the table has: the input gradient of a Conv is a
 * ConvTranspose with the same weight (output_padding taking up the rows the
 * forward stride skipped) and that of a ConvTranspose is a Conv; the weight
 * gradient of both is loom.ConvGradWeight (operands swapped for the
 * transpose); biases are ReduceSums. Global pooling and DFT (whose adjoint
 * is the opposite-direction DFT, scaled, with the onesided half padded back
 * with zeros) are forward ops too. */
#include <stdio.h>
#include <string.h>

#define LOOM_GRAD_RULES
#include "grad.h"


/* ---- softmax ---- */

GRAD_RULE(softmax)
{
    int gy = dy[0];
    const int *in = N->in;
    int y = N->out[0], r = V(y)->rank;
    IrOp op = N->op == IR_OP_Softmax ? IR_OP_SoftmaxGrad : IR_OP_LogSoftmaxGrad;
    int a = ir_norm_axis(ir_attr_int(N, "axis", G->opset < 13 ? 1 : -1), r);
    int gy2 = gy, y2 = y;
    if (G->opset < 13 && a != r - 1) {
        /* before opset 13 the op normalizes over all axes from `axis` on: view as 2-D */
        int64_t d[2] = {1, 1};
        for (int i = 0; i < r; i++) d[i >= a] *= V(y)->dims[i];
        gy2 = grad_reshape(c, gy, 2, d);
        y2 = grad_reshape(c, y, 2, d);
        a = 1;
    }
    int n = grad_begin(c, op, 2, (int[]){gy2, y2}, 1);
    ir_attr_set_int(G, n, "axis", a);
    GIVE(0, grad_reshape_like(c, grad_end(c, n), in[0]));
    return 0;
}

/* ---- normalization ---- */

/* The outputs a norm gradient needs: dx, and dscale/dbias when wanted. */
static int norm_outputs(const char *want, int scale_i, int bias_i, int nin)
{
    if (bias_i < nin && want[bias_i]) return 3;
    return want[scale_i] ? 2 : 1;
}

GRAD_RULE(norm)
{
    const int *in = N->in;
    int nin = N->nin, fwd = c->node;
    IrOp op = N->op;
    for (int j = 1; j < N->nout && op == IR_OP_LayerNormalization; j++)
        if (dy[j] >= 0)
            return ir_fail(G, fwd, "the loss depends on LayerNormalization's %s output; loom "
                           "differentiates its normalized output only",
                           j == 1 ? "Mean" : "InvStdDev");
    if (dy[0] < 0) return 0;
    int nout = norm_outputs(want, 1, 2, nin), n;
    switch (op) {
    case IR_OP_LayerNormalization: {
        int mean = N->nout > 1 ? N->out[1] : -1, inv = N->nout > 2 ? N->out[2] : -1;
        int ops[5] = {dy[0], in[0], in[1], mean, inv};
        n = grad_begin(c, IR_OP_LayerNormGrad, inv >= 0 ? 5 : mean >= 0 ? 4 : 3, ops, nout);
        ir_attr_set_int(G, n, "axis",
                        ir_norm_axis(ir_attr_int(&G->nodes[fwd], "axis", -1), V(in[0])->rank));
        ir_attr_set_float(G, n, "epsilon", ir_attr_float(&G->nodes[fwd], "epsilon", 1e-5f));
        break;
    }
    case IR_OP_RMSNorm:
        n = grad_begin(c, IR_OP_RMSNormGrad, 3, (int[]){dy[0], in[0], in[1]}, nout);
        ir_attr_set_int(G, n, "axis", ir_norm_axis(ir_attr_int(&G->nodes[fwd], "axis", -1), V(in[0])->rank));
        ir_attr_set_float(G, n, "epsilon", ir_attr_float(&G->nodes[fwd], "epsilon", 1e-5f));
        break;
    case IR_OP_BatchNormalization:
        n = grad_begin(c, IR_OP_BatchNormGrad, 5, (int[]){dy[0], in[0], in[1], in[3], in[4]}, nout);
        ir_attr_set_float(G, n, "epsilon", ir_attr_float(&G->nodes[fwd], "epsilon", 1e-5f));
        ir_attr_set_int(G, n, "training_mode", ir_attr_int(&G->nodes[fwd], "training_mode", 0));
        break;
    case IR_OP_GroupNormalization:
        n = grad_begin(c, IR_OP_GroupNormGrad, 3, (int[]){dy[0], in[0], in[1]}, nout);
        ir_attr_set_float(G, n, "epsilon", ir_attr_float(&G->nodes[fwd], "epsilon", 1e-5f));
        ir_attr_set_int(G, n, "num_groups", ir_attr_int(&G->nodes[fwd], "num_groups", 1));
        break;
    default:
        n = grad_begin(c, IR_OP_InstanceNormGrad, 3, (int[]){dy[0], in[0], in[1]}, nout);
        ir_attr_set_float(G, n, "epsilon", ir_attr_float(&G->nodes[fwd], "epsilon", 1e-5f));
        break;
    }
    if (grad_end(c, n) < 0) return -1;
    if (want[0]) GIVE(0, GOUT(c, n, 0));
    if (want[1]) GIVE(1, grad_unbroadcast(c, GOUT(c, n, 1), in[1]));
    if (nout == 3) GIVE(2, grad_unbroadcast(c, GOUT(c, n, 2), in[2]));
    return 0;
}

/* ---- convolution ---- */

/* Explicit begin/end pads of a Conv's window (auto_pad resolved), for
 * spatial input sizes sin and output sizes sout. */
static void conv_pads(const IrNode *n, int k, const int64_t *sin, const int64_t *sout,
                      const int64_t *kern, int64_t *pads)
{
    int64_t cnt;
    const int64_t *st = ir_attr_ints(n, "strides", &cnt), *dl = ir_attr_ints(n, "dilations", &cnt);
    const int64_t *p = ir_attr_ints(n, "pads", &cnt);
    const char *ap = ir_attr_string(n, "auto_pad", "NOTSET");
    for (int i = 0; i < k; i++) {
        int64_t s = st ? st[i] : 1, d = dl ? dl[i] : 1;
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t total = (sout[i] - 1) * s + (kern[i] - 1) * d + 1 - sin[i];
            if (total < 0) total = 0;
            pads[i] = ap[5] == 'U' ? total / 2 : total - total / 2;
            pads[k + i] = total - pads[i];
        } else if (!strcmp(ap, "VALID") || !p) {
            pads[i] = pads[k + i] = 0;
        } else {
            pads[i] = p[i];
            pads[k + i] = p[k + i];
        }
    }
}

/* Strides, dilations, group and explicit pads on a backward conv node. */
static void window_attrs(GradCtx *c, int n, int fwd, int k, const int64_t *pads)
{
    int64_t cnt, ones[IR_MAX_RANK];
    for (int i = 0; i < k; i++) ones[i] = 1;
    const IrNode *f = &G->nodes[fwd];
    const int64_t *st = ir_attr_ints(f, "strides", &cnt), *dl = ir_attr_ints(f, "dilations", &cnt);
    int64_t group = ir_attr_int(f, "group", 1);
    ir_attr_set_ints(G, n, "strides", k, st ? st : ones);
    ir_attr_set_ints(G, n, "dilations", k, dl ? dl : ones);
    ir_attr_set_ints(G, n, "pads", 2 * k, pads);
    ir_attr_set_int(G, n, "group", group);
}

/* Bias gradient: the sum over the batch and spatial axes. */
static int bias_grad(GradCtx *c, int gy)
{
    unsigned char mask[IR_MAX_RANK];
    for (int d = 0; d < V(gy)->rank; d++) mask[d] = d != 1;
    return grad_reduce_sum(c, gy, mask, 0);
}

GRAD_RULE(conv)
{
    int gy = dy[0];
    const int *in = N->in;
    int fwd = c->node, x = in[0], w = in[1];
    int k = V(x)->rank - 2;
    int64_t sin[IR_MAX_RANK], sout[IR_MAX_RANK], kern[IR_MAX_RANK], pads[2 * IR_MAX_RANK];
    int transpose = N->op == IR_OP_ConvTranspose;
    /* the "small" side (Conv input, ConvTranspose output) and the "large" one */
    int lo = transpose ? gy : x, hi = transpose ? x : gy;
    for (int i = 0; i < k; i++) {
        sin[i] = V(lo)->dims[2 + i];
        sout[i] = V(hi)->dims[2 + i];
        kern[i] = V(w)->dims[2 + i];
    }
    int64_t cnt;
    const int64_t *st = ir_attr_ints(N, "strides", &cnt), *dl = ir_attr_ints(N, "dilations", &cnt);
    if (!transpose) {
        conv_pads(N, k, sin, sout, kern, pads);
    } else {
        /* ConvTranspose pads as the ONNX spec resolves output_shape and auto_pad */
        const char *ap = ir_attr_string(N, "auto_pad", "NOTSET");
        const int64_t *p = ir_attr_ints(N, "pads", &cnt);
        const int64_t *os = ir_attr_ints(N, "output_shape", &cnt);
        const int64_t *op = ir_attr_ints(N, "output_padding", &cnt);
        for (int i = 0; i < k; i++) {
            int64_t s = st ? st[i] : 1, d = dl ? dl[i] : 1;
            int64_t total = s * (sout[i] - 1) + (op ? op[i] : 0) + (kern[i] - 1) * d + 1 - sin[i];
            if (os || !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
                if (total < 0)
                    return ir_fail(G, fwd, "the gradient of this ConvTranspose needs an output no "
                                   "larger than its stride and kernel give (total padding %lld)",
                                   (long long)total);
                pads[i] = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
                pads[k + i] = total - pads[i];
            } else {
                pads[i] = !strcmp(ap, "VALID") || !p ? 0 : p[i];
                pads[k + i] = !strcmp(ap, "VALID") || !p ? 0 : p[k + i];
            }
        }
    }
    if (want[0]) {
        int n;
        if (!transpose) {
            /* ConvTranspose back to the input size: output_padding = what the stride skipped */
            int64_t opad[IR_MAX_RANK];
            for (int i = 0; i < k; i++) {
                int64_t s = st ? st[i] : 1, d = dl ? dl[i] : 1;
                opad[i] = sin[i] + pads[i] + pads[k + i] - s * (sout[i] - 1) - (kern[i] - 1) * d - 1;
            }
            n = grad_begin(c, IR_OP_ConvTranspose, 2, (int[]){gy, w}, 1);
            ir_attr_set_ints(G, n, "output_padding", k, opad);
        } else {
            n = grad_begin(c, IR_OP_Conv, 2, (int[]){gy, w}, 1);
        }
        window_attrs(c, n, fwd, k, pads);
        GIVE(0, grad_end(c, n));
    }
    if (want[1]) {
        /* Conv: dw[m,c,k] from (dy, x); ConvTranspose: the same map with x as "dy" */
        int n = grad_begin(c, IR_OP_ConvGradWeight, 2,
                           transpose ? (int[]){x, gy} : (int[]){gy, x}, 1);
        window_attrs(c, n, fwd, k, pads);
        ir_attr_set_ints(G, n, "shape", V(w)->rank, V(w)->dims);
        GIVE(1, grad_end(c, n));
    }
    if (N->nin > 2 && in[2] >= 0 && want[2]) GIVE(2, bias_grad(c, gy));
    return 0;
}

/* ---- pooling ---- */

GRAD_RULE(pool)
{
    int gy = dy[0];
    const int *in = N->in;
    int fwd = c->node, x = in[0], y = N->out[0];
    IrDType dt = DT(x);
    int r = V(x)->rank, n;
    unsigned char mask[IR_MAX_RANK];
    for (int d = 0; d < r; d++) mask[d] = d >= 2;
    switch (N->op) {
    case IR_OP_MaxPool: {
        int idx = N->nout > 1 ? N->out[1] : -1;
        n = grad_begin(c, IR_OP_MaxPoolGrad, idx >= 0 ? 3 : 2, (int[]){gy, x, idx}, 1);
        grad_copy_attrs(G, n, fwd);
        break;
    }
    case IR_OP_AveragePool:
        n = grad_begin(c, IR_OP_AveragePoolGrad, 1, &gy, 1);
        grad_copy_attrs(G, n, fwd);
        ir_attr_set_ints(G, n, "shape", r, V(x)->dims);
        break;
    case IR_OP_GlobalAveragePool: {
        double cnt = 1;
        for (int d = 2; d < r; d++) cnt *= (double)V(x)->dims[d];
        GIVE(0, GOP(c, Mul, grad_expand_like(c, gy, x), grad_scalar(c, dt, cnt ? 1 / cnt : 0)));
        return 0;
    }
    default: { /* GlobalMaxPool: to the maxima, shared among ties */
        int e = GOP(c, Equal, x, y);
        int k = grad_begin(c, IR_OP_Cast, 1, &e, 1);
        ir_attr_set_int(G, k, "to", dt);
        int ef = grad_end(c, k);
        GIVE(0, GOP(c, Mul, ef, GOP(c, Div, gy, grad_reduce_sum(c, ef, mask, 1))));
        return 0;
    }
    }
    GIVE(0, grad_end(c, n));
    return 0;
}

/* ---- Resize ---- */

GRAD_RULE(resize)
{
    int gy = dy[0];
    const int *in = N->in;
    int fwd = c->node, x = in[0];
    int r = V(x)->rank;
    const char *ctm = ir_attr_string(N, "coordinate_transformation_mode", "half_pixel");
    if (!strcmp(ctm, "tf_crop_and_resize"))
        return ir_fail(G, fwd, "the gradient of Resize with tf_crop_and_resize is not supported");
    /* the scale of every axis, as the forward op used it */
    float scales[IR_MAX_RANK];
    for (int d = 0; d < r; d++)
        scales[d] = V(x)->dims[d] ? (float)((double)V(gy)->dims[d] / (double)V(x)->dims[d]) : 1;
    int64_t na;
    const int64_t *axes = ir_attr_ints(N, "axes", &na);
    int si = G->opset < 11 ? 1 : 2;
    int sv = ir_in(N, si);
    const char *policy = ir_attr_string(N, "keep_aspect_ratio_policy", "stretch");
    if (sv >= 0 && ir_value_numel(V(sv)) > 0 && V(sv)->data) {
        const float *s = V(sv)->data;
        for (int i = 0; i < ir_value_numel(V(sv)); i++)
            scales[axes ? ir_norm_axis(axes[i], r) : i] = s[i];
    } else if (strcmp(policy, "stretch")) {
        /* one scale for the resized axes: the smallest (not_larger) or largest */
        const int64_t *sz;
        if (ir_need_ints(G, fwd, 3, "sizes", 1, &sz) < 0) return -1;
        int cnt = axes ? (int)na : r;
        double best = 0;
        for (int i = 0; i < cnt; i++) {
            int a = axes ? ir_norm_axis(axes[i], r) : i;
            double q = (double)sz[i] / (double)V(x)->dims[a];
            if (i == 0 || (policy[4] == 'l' ? q < best : q > best)) best = q;
        }
        for (int i = 0; i < cnt; i++) scales[axes ? ir_norm_axis(axes[i], r) : i] = (float)best;
    }
    int n = grad_begin(c, IR_OP_ResizeGrad, 1, &gy, 1);
    static const char *keep[] = {"coordinate_transformation_mode", "cubic_coeff_a",
                                 "exclude_outside", "mode", "nearest_mode"};
    for (int i = 0; i < 5; i++) {
        const IrAttr *a = ir_attr_find(&G->nodes[fwd], keep[i]);
        if (!a) continue;
        if (a->kind == IR_ATTR_STRING) ir_attr_set_string(G, n, keep[i], a->u.s);
        else if (a->kind == IR_ATTR_INT) ir_attr_set_int(G, n, keep[i], a->u.i);
        else if (a->kind == IR_ATTR_FLOAT) ir_attr_set_float(G, n, keep[i], a->u.f);
    }
    ir_attr_set_floats(G, n, "scales", r, scales);
    ir_attr_set_ints(G, n, "shape", r, V(x)->dims);
    GIVE(0, grad_end(c, n));
    return 0;
}

/* ---- DFT: the adjoint transform ---- */

GRAD_RULE(dft)
{
    int gy = dy[0];
    const int *in = N->in;
    int fwd = c->node, x = in[0];
    int r = V(x)->rank;
    int64_t axis;
    if (G->opset >= 20) {
        const int64_t *av;
        axis = -2;
        if (ir_in(N, 2) >= 0 && ir_need_ints(G, fwd, 2, "axis", 1, &av) == 1) axis = av[0];
    } else {
        axis = ir_attr_int(N, "axis", 1);
    }
    int a = ir_norm_axis(axis, r);
    int inverse = ir_attr_int(N, "inverse", 0) != 0, onesided = ir_attr_int(N, "onesided", 0) != 0;
    int64_t nx = V(x)->dims[a], len = nx;
    if (ir_in(N, 1) >= 0) {
        const int64_t *lv;
        if (ir_need_ints(G, fwd, 1, "dft_length", 1, &lv) < 0) return -1;
        len = lv[0];
    }
    int g2 = gy;
    if (onesided) { /* the dropped half of the spectrum had no effect: zeros */
        int64_t pads[2 * IR_MAX_RANK] = {0};
        pads[r + a] = len - V(gy)->dims[a];
        g2 = grad_pad(c, gy, pads);
    }
    int n;
    if (G->opset >= 20) {
        int64_t av = a;
        n = grad_begin(c, IR_OP_DFT, 3, (int[]){g2, -1, grad_ints(c, 1, &av)}, 1);
    } else {
        n = grad_begin(c, IR_OP_DFT, 1, &g2, 1);
        ir_attr_set_int(G, n, "axis", a);
    }
    if (!inverse) ir_attr_set_int(G, n, "inverse", 1);
    int h = grad_end(c, n);
    /* forward: the adjoint is len * inverse; inverse (with its 1/len): forward / len */
    h = GOP(c, Mul, h, grad_scalar(c, DT(gy), inverse ? 1.0 / (double)len : (double)len));
    if (len > nx) {
        h = grad_slice_axis(c, h, a, 0, nx);
    } else if (len < nx) {
        int64_t pads[2 * IR_MAX_RANK] = {0};
        pads[r + a] = nx - len;
        h = grad_pad(c, h, pads);
    }
    if (V(x)->dims[r - 1] == 1) h = grad_slice_axis(c, h, r - 1, 0, 1);
    GIVE(0, h);
    return 0;
}

/* ---- indexing and losses ---- */

GRAD_RULE(gather)
{
    int gy = dy[0];
    const int *in = N->in;
    int x = in[0];
    IrOp op = N->op == IR_OP_Gather ? IR_OP_GatherGrad : IR_OP_GatherElementsGrad;
    int n = grad_begin(c, op, 2, (int[]){gy, in[1]}, 1);
    ir_attr_set_int(G, n, "axis", ir_norm_axis(ir_attr_int(&G->nodes[c->node], "axis", 0), V(x)->rank));
    ir_attr_set_ints(G, n, "shape", V(x)->rank, V(x)->dims);
    GIVE(0, grad_end(c, n));
    return 0;
}

GRAD_RULE(loss)
{
    const int *in = N->in;
    int fwd = c->node, x = in[0];
    if (N->nout > 1 && dy[1] >= 0)
        return ir_fail(G, fwd, "the loss depends on SoftmaxCrossEntropyLoss's log_prob output; "
                       "loom differentiates its loss output only");
    if (dy[0] < 0) return 0;
    int w = ir_in(N, 2), n;
    if (N->op == IR_OP_SoftmaxCrossEntropyLoss) {
        int lp = N->nout > 1 ? N->out[1] : -1;
        n = grad_begin(c, IR_OP_SoftmaxCrossEntropyLossGrad, lp >= 0 ? 5 : w >= 0 ? 4 : 3,
                       (int[]){dy[0], x, in[1], w, lp}, 1);
    } else {
        n = grad_begin(c, IR_OP_NegativeLogLikelihoodLossGrad, w >= 0 ? 3 : 2,
                       (int[]){dy[0], in[1], w}, 1);
        ir_attr_set_ints(G, n, "shape", V(x)->rank, V(x)->dims);
    }
    grad_copy_attrs(G, n, fwd);
    GIVE(0, grad_end(c, n));
    return 0;
}

/* ---- fused attention ---- */

/* loom.Attention's gradient is one loom.AttentionGrad reading Q, K, V, the
 * outputs O and LSE, and the mask: those are what the backward saves (remat
 * keeps or recomputes O and LSE, never a [T, S] matrix). */
GRAD_RULE(attention)
{
    int fwd = c->node, nin = N->nin, o = N->out[0], lse = N->out[1];
    int ops[7] = {dy[0], N->in[0], N->in[1], N->in[2], o, lse, ir_in(N, 3)};
    const int *in = N->in;
    if (dy[1] >= 0)
        return ir_fail(G, fwd, "the loss depends on loom.Attention's log-sum-exp output; loom "
                       "differentiates its output O only");
    if (dy[0] < 0) return 0;
    int n = grad_begin(c, IR_OP_AttentionGrad, nin > 3 && ops[6] >= 0 ? 7 : 6, ops, 3);
    grad_copy_attrs(G, n, fwd);
    if (grad_end(c, n) < 0) return -1;
    in = G->nodes[fwd].in; /* the node array may have moved */
    for (int i = 0; i < 3; i++)
        if (want[i]) GIVE(i, GOUT(c, n, i));
    return 0;
}
