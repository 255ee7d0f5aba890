/* Shape inference for loom's internal ops (ops.h rows flagged OPF_INTERNAL):
 * the backward ops autodiff builds (ir/autodiff.c and grad_*.c) and the
 * optimizer-update ops (ir/update.c). Their operands are documented in
 * ir/train.h. These nodes are made by loom, not read from a model, so a
 * failure here means a loom bug or a hand-built graph; the checks still
 * report what was given, like the forward shape functions. Where a gradient
 * must have a shape its inputs do not carry (the input of a Gather or a
 * pooling window), the node holds it in the ints attribute "shape". */
#include <string.h>

#include "ops_impl.h"

#define V(id) (&g->values[id])
#define NODE (&g->nodes[node])
#define OPNAME (ir_ops[NODE->op].name)

static int same_shape(const IrValue *a, const IrValue *b)
{
    return a->rank == b->rank && !memcmp(a->dims, b->dims, a->rank * sizeof *a->dims);
}

/* Input i is a float tensor shaped like input j. */
static int check_like(IrGraph *g, int node, int i, int j)
{
    const IrValue *a = V(NODE->in[i]), *b = V(NODE->in[j]);
    if (!ir_dtype_is_float(a->dtype) || a->dtype != b->dtype || !same_shape(a, b))
        return ir_fail(g, node, "input %d %s must be a float tensor shaped like input %d %s", i,
                       IR_SHP(g, NODE->in[i]), j, IR_SHP(g, NODE->in[j]));
    return 0;
}

/* The "shape" attribute: the rank, dims into d. */
static int shape_attr(IrGraph *g, int node, int64_t *d)
{
    int64_t k;
    const int64_t *s = ir_attr_ints(NODE, "shape", &k);
    if (!s || k > IR_MAX_RANK) return ir_fail(g, node, "%s needs the attribute 'shape' (rank <= %d)",
                                              OPNAME, IR_MAX_RANK);
    memcpy(d, s, k * sizeof *d);
    return (int)k;
}

/* (dy, x) -> dx: activation, softmax and log-softmax gradients. */
int shape_grad_like(IrGraph *g, int node)
{
    if (check_like(g, node, 0, 1) < 0) return -1;
    const IrValue *x = V(NODE->in[1]);
    if (NODE->op != IR_OP_ActivationGrad && ir_norm_axis(ir_attr_int(NODE, "axis", -1), x->rank) < 0)
        return ir_fail(g, node, "axis %lld is out of range for %s",
                       (long long)ir_attr_int(NODE, "axis", -1), IR_SHP(g, NODE->in[1]));
    return ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims);
}

/* loom.RMSNorm (x, scale) -> y and loom.RMSNormGrad (dy, x, scale) -> dx,
 * dscale: scale holds one float per element of x.dims[axis:] (its shape,
 * or those elements flattened). */
int shape_rmsnorm(IrGraph *g, int node)
{
    int grad = NODE->op == IR_OP_RMSNormGrad;
    const IrValue *x = V(NODE->in[grad]), *s = V(NODE->in[grad + 1]);
    int axis = ir_norm_axis(ir_attr_int(NODE, "axis", -1), x->rank);
    if (!ir_dtype_is_float(x->dtype) || s->dtype != x->dtype)
        return ir_fail(g, node, "%s takes float x and scale of one dtype; got %s and %s", OPNAME,
                       IR_SHP(g, NODE->in[grad]), IR_SHP(g, NODE->in[grad + 1]));
    if (axis < 0) return ir_fail(g, node, "axis is out of range for %s", IR_SHP(g, NODE->in[grad]));
    int64_t cols = 1;
    for (int d = axis; d < x->rank; d++) cols *= x->dims[d];
    if (ir_value_numel(s) != cols)
        return ir_fail(g, node, "%s's scale %s must hold the %lld elements of x's dims from axis %d (x %s)", OPNAME,
                       IR_SHP(g, NODE->in[grad + 1]), (long long)cols, axis, IR_SHP(g, NODE->in[grad]));
    if (grad && check_like(g, node, 0, 1) < 0) return -1;
    /* out_dtype bfloat16 (loom.RMSNorm): autocast's rounding of the result (ir_autocast_narrow_norms) */
    IrDType yt = !grad && x->dtype == IR_F32 && ir_attr_int(NODE, "out_dtype", IR_F32) == IR_BF16 ? IR_BF16 : x->dtype;
    if (ir_shape_out(g, node, 0, yt, x->rank, x->dims)) return -1;
    if (grad && NODE->nout > 1 && ir_shape_out(g, node, 1, s->dtype, s->rank, s->dims)) return -1;
    return 0;
}

/* loom.ToHost, loom.FromHost: x -> a copy of x in the other memory */
int shape_host_copy(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    return ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims);
}

/* (dy, x, scale, [mean], [inv_std]) -> dx, dscale, dbias; the parameter
 * gradients have the normalized dims x.dims[axis:] (autodiff reduces them to
 * a broadcast scale's shape). */
int shape_layernorm_grad(IrGraph *g, int node)
{
    if (check_like(g, node, 0, 1) < 0) return -1;
    const IrValue *x = V(NODE->in[1]), *s = V(NODE->in[2]);
    int a = ir_norm_axis(ir_attr_int(NODE, "axis", -1), x->rank);
    if (a < 0) return ir_fail(g, node, "axis is out of range for %s", IR_SHP(g, NODE->in[1]));
    if (ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims) < 0) return -1;
    for (int i = 1; i < 3; i++)
        if (ir_shape_out(g, node, i, s->dtype, x->rank - a, x->dims + a) < 0) return -1;
    return 0;
}

/* Inputs [lo, hi) of node: vectors of x's channel count (x [N, C, ...]), of x's type. */
static int channel_vectors(IrGraph *g, int node, int lo, int hi, const IrValue *x)
{
    for (int j = lo; j < hi; j++) {
        const IrValue *v = NODE->in[j] >= 0 ? V(NODE->in[j]) : NULL;
        if (!v || v->dtype != x->dtype || v->rank != 1 || v->dims[0] != x->dims[1])
            return ir_fail(g, node, "input %d must be a vector of the %lld channels of x %s; got %s", j,
                           (long long)x->dims[1], IR_SHP(g, ir_in(NODE, 1)), v ? IR_SHP(g, NODE->in[j]) : "none");
    }
    return 0;
}

/* Batch, group and instance norm: (dy, x, scale, ...) -> dx, dscale, dbias
 * with the parameter gradients shaped like scale. */
int shape_channel_norm_grad(IrGraph *g, int node)
{
    if (check_like(g, node, 0, 1) < 0) return -1;
    const IrValue *x = V(NODE->in[1]), *s = V(NODE->in[2]);
    if (x->rank < 2 || s->rank != 1)
        return ir_fail(g, node, "needs x [N,C,...] and a scale vector; got %s and %s",
                       IR_SHP(g, NODE->in[1]), IR_SHP(g, NODE->in[2]));
    if (NODE->op == IR_OP_BatchNormGrad && (ir_attr_int(NODE, "relu", 0) != 0) != (NODE->nin > 5 && NODE->in[5] >= 0))
        return ir_fail(g, node, "relu 1 takes the forward's bias as input 5, and only relu 1 does");
    if (NODE->op == IR_OP_BatchNormGrad && ir_attr_int(NODE, "relu", 0) && ir_attr_int(NODE, "training_mode", 0))
        return ir_fail(g, node, "relu 1 is for the given statistics (training_mode 0)");
    if (NODE->nin > 5 && channel_vectors(g, node, 5, 6, x) < 0) return -1;
    if (ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims) < 0) return -1;
    for (int i = 1; i < 3; i++)
        if (ir_shape_out(g, node, i, s->dtype, 1, s->dims) < 0) return -1;
    return 0;
}

/* (dy, x) -> dw of the "shape" attribute: the weight gradient of a Conv
 * (and, with the operands swapped, of a ConvTranspose). */
int shape_conv_grad_weight(IrGraph *g, int node)
{
    const IrValue *dy = V(NODE->in[0]), *x = V(NODE->in[1]);
    int64_t d[IR_MAX_RANK];
    int r = shape_attr(g, node, d);
    if (r < 0) return -1;
    if (!ir_dtype_is_float(dy->dtype) || dy->dtype != x->dtype || dy->rank != x->rank ||
        r != x->rank || dy->dims[0] != x->dims[0])
        return ir_fail(g, node, "needs dy and x [N,C,spatial...] of one float type and a weight "
                       "shape of their rank; got %s and %s", IR_SHP(g, NODE->in[0]),
                       IR_SHP(g, NODE->in[1]));
    /* (dy, x, scale, bias, mean, var): the operand is Relu(BatchNormalization(x)) */
    if (NODE->nin > 2 && (NODE->nin != 6 || channel_vectors(g, node, 2, 6, x) < 0))
        return NODE->nin != 6 ? ir_fail(g, node, "takes 2 inputs, or 6 (a BatchNormalization's four after x)") : -1;
    return ir_shape_out(g, node, 0, x->dtype, r, d);
}

/* MaxPoolGrad (dy, x, [indices]) -> dx like x; AveragePoolGrad (dy) -> dx of
 * the "shape" attribute. */
int shape_pool_grad(IrGraph *g, int node)
{
    const IrValue *dy = V(NODE->in[0]);
    if (!ir_dtype_is_float(dy->dtype) || dy->rank < 3)
        return ir_fail(g, node, "needs a float dy [N,C,spatial...]; got %s", IR_SHP(g, NODE->in[0]));
    if (NODE->op == IR_OP_MaxPoolGrad) {
        const IrValue *x = V(NODE->in[1]);
        if (x->dtype != dy->dtype || x->rank != dy->rank)
            return ir_fail(g, node, "x %s does not match dy %s", IR_SHP(g, NODE->in[1]),
                           IR_SHP(g, NODE->in[0]));
        int ix = ir_in(NODE, 2);
        if (ix >= 0 && (V(ix)->dtype != IR_I64 || !same_shape(V(ix), dy)))
            return ir_fail(g, node, "indices %s must be int64 shaped like dy %s", IR_SHP(g, ix),
                           IR_SHP(g, NODE->in[0]));
        /* (dy, x, -1, scale, bias, mean, var): the forward pooled Relu(BatchNormalization(x)) */
        if (NODE->nin > 3 && (NODE->nin != 7 || ix >= 0 || channel_vectors(g, node, 3, 7, x) < 0))
            return NODE->nin != 7 || ix >= 0
                       ? ir_fail(g, node, "takes 2 or 3 inputs, or 7 (no indices, a BatchNormalization's four after)")
                       : -1;
        return ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims);
    }
    int64_t d[IR_MAX_RANK];
    int r = shape_attr(g, node, d);
    if (r < 0) return -1;
    if (r != dy->rank || d[0] != dy->dims[0] || d[1] != dy->dims[1])
        return ir_fail(g, node, "shape attribute does not match dy %s", IR_SHP(g, NODE->in[0]));
    return ir_shape_out(g, node, 0, dy->dtype, r, d);
}

/* Resize, Gather, GatherElements and Slice gradients: (dy, [indices]) -> dx
 * of the "shape" attribute, the forward input's shape. */
int shape_scatter_grad(IrGraph *g, int node)
{
    const IrValue *dy = V(NODE->in[0]);
    if (!ir_dtype_is_float(dy->dtype))
        return ir_fail(g, node, "needs a float dy; got %s", IR_SHP(g, NODE->in[0]));
    int64_t d[IR_MAX_RANK];
    int r = shape_attr(g, node, d);
    if (r < 0) return -1;
    IrOp op = NODE->op;
    if (op == IR_OP_GatherGrad || op == IR_OP_GatherElementsGrad) {
        const IrValue *idx = V(NODE->in[1]);
        int a = ir_norm_axis(ir_attr_int(NODE, "axis", 0), r);
        if (!ir_dtype_is_int(idx->dtype) || a < 0)
            return ir_fail(g, node, "needs integer indices and an axis within rank %d; got %s", r,
                           IR_SHP(g, NODE->in[1]));
        int want = op == IR_OP_GatherGrad ? r - 1 + idx->rank : idx->rank;
        if (dy->rank != want)
            return ir_fail(g, node, "dy %s does not match indices %s for a data rank of %d",
                           IR_SHP(g, NODE->in[0]), IR_SHP(g, NODE->in[1]), r);
    } else if (op == IR_OP_SliceGrad || op == IR_OP_ResizeGrad) {
        if (dy->rank != r)
            return ir_fail(g, node, "dy %s does not have the rank of the shape attribute (%d)",
                           IR_SHP(g, NODE->in[0]), r);
        const char *list = op == IR_OP_SliceGrad ? "starts" : "scales";
        const IrAttr *at = ir_attr_find(NODE, list);
        if (!at || at->n != r)
            return ir_fail(g, node, "needs the attribute '%s' with %d entries", list, r);
    }
    return ir_shape_out(g, node, 0, dy->dtype, r, d);
}

/* SoftmaxCrossEntropyLossGrad (dloss, scores, labels, [weight], [log_prob])
 * -> dscores; NegativeLogLikelihoodLossGrad (dloss, labels, [weight]) ->
 * dinput of the "shape" attribute. dloss is a scalar, or shaped like labels
 * for reduction 'none'. */
int shape_loss_grad(IrGraph *g, int node)
{
    const IrValue *dl = V(NODE->in[0]);
    int li = NODE->op == IR_OP_SoftmaxCrossEntropyLossGrad ? 2 : 1;
    const IrValue *lab = V(NODE->in[li]);
    if (!ir_dtype_is_float(dl->dtype) || !ir_dtype_is_int(lab->dtype) ||
        (dl->rank != 0 && !same_shape(dl, lab)))
        return ir_fail(g, node, "needs a float dloss (scalar or shaped like the labels) and integer "
                       "labels; got %s and %s", IR_SHP(g, NODE->in[0]), IR_SHP(g, NODE->in[li]));
    if (NODE->op == IR_OP_SoftmaxCrossEntropyLossGrad) {
        const IrValue *x = V(NODE->in[1]);
        return ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims);
    }
    int64_t d[IR_MAX_RANK];
    int r = shape_attr(g, node, d);
    if (r < 0) return -1;
    if (r != lab->rank + 1)
        return ir_fail(g, node, "shape attribute does not fit labels %s", IR_SHP(g, NODE->in[li]));
    return ir_shape_out(g, node, 0, dl->dtype, r, d);
}

/* (g1, ..., gn) -> the float32 scalar sqrt(sum of every element squared). */
int shape_global_norm(IrGraph *g, int node)
{
    for (int i = 0; i < NODE->nin; i++)
        if (!ir_dtype_is_float(V(NODE->in[i])->dtype))
            return ir_fail(g, node, "input %d %s is not a float tensor", i, IR_SHP(g, NODE->in[i]));
    return ir_shape_out(g, node, 0, IR_F32, 0, NULL);
}

/* A float scalar input (lr, gradient scale) or an integer one (step). */
static int check_scalar(IrGraph *g, int node, int i, int want_int)
{
    int vid = ir_in(NODE, i);
    if (vid < 0) return 0;
    const IrValue *v = V(vid);
    if (ir_value_numel(v) != 1 || (want_int ? !ir_dtype_is_int(v->dtype) : !ir_dtype_is_float(v->dtype)))
        return ir_fail(g, node, "input %d %s must be a%s scalar", i, IR_SHP(g, vid),
                       want_int ? "n integer" : " float");
    return 0;
}

/* SGD (param, grad, lr, loss, [momentum_buf], [grad_scale]) -> param', [buf'];
 * AdamW (param, grad, m, v, lr, step, loss, [grad_scale]) -> param', m', v'. */
int shape_opt_update(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *p = V(n->in[0]);
    int adam = n->op == IR_OP_AdamW;
    int nstate = adam ? 2 : ir_in(n, 4) >= 0;
    if (!ir_dtype_is_float(p->dtype))
        return ir_fail(g, node, "parameter %s is not a float tensor", IR_SHP(g, n->in[0]));
    for (int i = 1; i < 2 + nstate; i++) {
        int k = i == 1 ? 1 : (adam ? i : 4);
        if (!same_shape(V(n->in[k]), p) || !ir_dtype_is_float(V(n->in[k])->dtype))
            return ir_fail(g, node, "input %d %s must be shaped like the parameter %s", k,
                           IR_SHP(g, n->in[k]), IR_SHP(g, n->in[0]));
    }
    if (check_scalar(g, node, adam ? 4 : 2, 0) < 0 || (adam && check_scalar(g, node, 5, 1) < 0) ||
        check_scalar(g, node, adam ? 6 : 3, 0) < 0 || check_scalar(g, node, adam ? 7 : 5, 0) < 0)
        return -1;
    if (ir_in(n, adam ? 6 : 3) < 0)
        return ir_fail(g, node, "has no loss input (the update is skipped when the loss is not finite)");
    if (n->nout != 1 + nstate)
        return ir_fail(g, node, "has %d outputs; this update writes %d", n->nout, 1 + nstate);
    for (int i = 0; i <= nstate; i++) {
        const IrValue *s = V(n->in[i == 0 ? 0 : adam ? 1 + i : 4]);
        if (ir_shape_out(g, node, i, s->dtype, s->rank, s->dims) < 0) return -1;
    }
    return 0;
}

/* (dO, Q, K, V, O, LSE, [mask]) -> dQ, dK, dV, shaped like Q, K, V. */
int shape_attention_grad(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    if (ir_attention_check(g, node, n->in[1], n->in[2], n->in[3], ir_in(n, 6)) < 0 ||
        check_like(g, node, 0, 4) < 0)
        return -1;
    const IrValue *Q = V(n->in[1]), *O = V(n->in[4]), *L = V(n->in[5]);
    if (O->rank != Q->rank || memcmp(O->dims, Q->dims, (Q->rank - 1) * sizeof *Q->dims) ||
        O->dims[O->rank - 1] != V(n->in[3])->dims[Q->rank - 1] || L->dtype != Q->dtype ||
        L->rank != Q->rank - 1 || memcmp(L->dims, Q->dims, L->rank * sizeof *L->dims))
        return ir_fail(g, node, "%s: O %s and LSE %s must be the forward's outputs for Q %s and V %s",
                       OPNAME, IR_SHP(g, n->in[4]), IR_SHP(g, n->in[5]), IR_SHP(g, n->in[1]),
                       IR_SHP(g, n->in[3]));
    for (int j = 0; j < 3; j++) {
        const IrValue *x = V(n->in[1 + j]);
        if (ir_shape_out(g, node, j, x->dtype, x->rank, x->dims) < 0) return -1;
    }
    return 0;
}
