/* Shape inference, part one: the driver (ir_infer_node, ir_check_declared),
 * broadcasting, and the shape functions of elementwise, comparison, logic,
 * reduction, indexing, data-movement and shape-plumbing ops. Each shape_*
 * function reads its inputs' inferred dtype and dims, its attributes and, for
 * the inputs ONNX uses as shapes, their constant contents, and sets every
 * output through ir_shape_out; on a type or shape error it returns ir_fail
 * with a message that says what was given. Opset differences (attributes that
 * became inputs) are resolved here, so eval.c sees one form. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops_impl.h"

#define V(id) (&g->values[id])
#define NODE (&g->nodes[node])
#define OPNAME (ir_ops[NODE->op].name)

/* No tensor has more elements than this, so byte counts never overflow. */
#define MAX_NUMEL ((int64_t)1 << 56)

/* ---- helpers ---- */

int ir_broadcast(int ra, const int64_t *a, int rb, const int64_t *b, int *rout, int64_t *out)
{
    int r = ra > rb ? ra : rb;
    if (r > IR_MAX_RANK) return -1;
    for (int i = 0; i < r; i++) {
        int64_t x = i < r - ra ? 1 : a[i - (r - ra)];
        int64_t y = i < r - rb ? 1 : b[i - (r - rb)];
        if (x == y || y == 1) out[i] = x;
        else if (x == 1) out[i] = y;
        else return -1;
    }
    *rout = r;
    return 0;
}

int ir_norm_axis(int64_t axis, int rank)
{
    if (axis < -(int64_t)rank || axis >= rank) return -1;
    return (int)(axis < 0 ? axis + rank : axis);
}

int ir_shape_out(IrGraph *g, int node, int i, IrDType dt, int rank, const int64_t *dims)
{
    const IrNode *n = NODE;
    if (i >= n->nout || n->out[i] < 0) return 0;
    if (rank < 0 || rank > IR_MAX_RANK)
        return ir_fail(g, node, "output %d would have rank %d; loom supports ranks 0 to %d", i,
                       rank, IR_MAX_RANK);
    int64_t numel = 1; /* of the non-zero dims: an empty tensor's strides stay in range too */
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 0)
            return ir_fail(g, node, "output %d would have a negative dimension (%lld at axis %d)",
                           i, (long long)dims[d], d);
        if (dims[d] && (__builtin_mul_overflow(numel, dims[d], &numel) || numel > MAX_NUMEL))
            return ir_fail(g, node, "output %d would have more than 2^56 elements", i);
    }
    ir_value_set_shape(V(n->out[i]), dt, rank, dims);
    return 0;
}

int64_t ir_need_ints(IrGraph *g, int node, int i, const char *what, int required,
                     const int64_t **out)
{
    int vid = ir_in(NODE, i);
    *out = NULL;
    if (vid < 0) {
        if (required)
            return ir_fail(g, node, "input %d (%s) is required but missing", i, what);
        return 0;
    }
    IrValue *v = V(vid);
    if (!ir_dtype_is_int(v->dtype) && v->dtype != IR_BOOL)
        return ir_fail(g, node, "input %d (%s) must be an integer tensor; got %s", i, what,
                       IR_SHP(g, vid));
    int64_t k = ir_const_ints(g, vid, out);
    if (k < 0)
        return ir_fail(g, node,
                       "input %d (%s, '%s') must be a constant: loom needs static shapes, and "
                       "this input determines an output shape",
                       i, what, v->name);
    return k;
}

/* Input i's value, or NULL when omitted. */
static IrValue *in_val(IrGraph *g, int node, int i)
{
    int vid = ir_in(NODE, i);
    return vid < 0 ? NULL : V(vid);
}

static int is_numeric(IrDType t) { return ir_dtype_is_float(t) || ir_dtype_is_int(t); }

/* Copy of v's dims into out, returning the rank. */
static int dims_of(const IrValue *v, int64_t *out)
{
    memcpy(out, v->dims, sizeof v->dims);
    return v->rank;
}

/* Normalize a list of axes against rank, refusing repeats and out-of-range
 * values; the result goes to mask. */
static int axes_mask(IrGraph *g, int node, const int64_t *axes, int64_t k, int rank,
                     unsigned char *mask, const char *what)
{
    memset(mask, 0, IR_MAX_RANK);
    for (int64_t j = 0; j < k; j++) {
        int a = ir_norm_axis(axes[j], rank);
        if (a < 0)
            return ir_fail(g, node, "%s %lld is out of range for rank %d", what,
                           (long long)axes[j], rank);
        if (mask[a]) return ir_fail(g, node, "%s %lld is repeated", what, (long long)axes[j]);
        mask[a] = 1;
    }
    return 0;
}

/* ---- driver ---- */

int ir_infer_node(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrOpInfo *op = &ir_ops[n->op];
    if (n->nin < op->min_in || (op->max_in >= 0 && n->nin > op->max_in))
        return ir_fail(g, node, "has %d inputs; %s takes %d to %d", n->nin, op->name, op->min_in,
                       op->max_in);
    for (int i = 0; i < n->nin; i++) {
        int vid = n->in[i];
        if (vid < 0) {
            if (i < op->min_in || op->max_in < 0)
                return ir_fail(g, node, "required input %d is missing", i);
            continue;
        }
        if (V(vid)->rank < 0 || V(vid)->dtype == IR_UNDEF)
            return ir_fail(g, node, "input %d '%s' has no known type and shape", i, V(vid)->name);
        if (V(vid)->dtype == IR_STRING || V(vid)->dtype == IR_C64 || V(vid)->dtype == IR_C128)
            return ir_fail(g, node, "input %d '%s' is of type %s, which loom does not support", i,
                           V(vid)->name, ir_dtype_name(V(vid)->dtype));
    }
    for (int i = 0; i < n->nout; i++)
        if (n->out[i] >= 0) V(n->out[i])->rank = -1;
    if (op->shape(g, node) < 0) return -1;
    for (int i = 0; i < n->nout; i++)
        if (n->out[i] >= 0 && V(n->out[i])->rank < 0)
            return ir_fail(g, node, "output %d '%s' got no shape (%s has at most %d outputs here)",
                           i, V(n->out[i])->name, op->name, i);
    return 0;
}

int ir_check_declared(IrGraph *g)
{
    for (int i = 0; i < g->nvalues; i++) {
        const IrValue *v = V(i);
        if (v->decl_rank < 0 || v->rank < 0) continue;
        int bad = v->decl_rank != v->rank ||
                  (v->decl_dtype != IR_UNDEF && v->dtype != IR_UNDEF && v->decl_dtype != v->dtype);
        for (int d = 0; !bad && d < v->rank; d++)
            bad = v->decl_dims[d] != -1 && v->decl_dims[d] != v->dims[d];
        if (!bad) continue;
        IrValue decl = *v;
        decl.dtype = v->decl_dtype != IR_UNDEF ? v->decl_dtype : v->dtype;
        decl.rank = v->decl_rank;
        memcpy(decl.dims, v->decl_dims, sizeof decl.dims);
        char a[128], b[128];
        return ir_fail(g, v->producer,
                       "value '%s': the model declares %s but loom infers %s",
                       v->name, ir_shape_str(&decl, a, sizeof a), ir_shape_str(v, b, sizeof b));
    }
    return 0;
}

/* ---- broadcasting elementwise ---- */

/* Broadcast inputs [first, nin) of node into dims; all must have type dt
 * unless dt is IR_UNDEF. */
static int broadcast_inputs(IrGraph *g, int node, int first, int *rank, int64_t *dims)
{
    const IrNode *n = NODE;
    int r = 0, seen = -1;
    for (int i = first; i < n->nin; i++) {
        if (n->in[i] < 0) continue;
        const IrValue *v = V(n->in[i]);
        if (seen < 0) {
            r = dims_of(v, dims);
            seen = i;
            continue;
        }
        int64_t tmp[IR_MAX_RANK];
        if (ir_broadcast(r, dims, v->rank, v->dims, &r, tmp) < 0) {
            IrValue acc = *V(n->in[seen]);
            acc.rank = r;
            memcpy(acc.dims, dims, sizeof acc.dims);
            char a[128];
            return ir_fail(g, node, "inputs do not broadcast: %s and %s",
                           ir_shape_str(&acc, a, sizeof a), IR_SHP(g, n->in[i]));
        }
        memcpy(dims, tmp, sizeof tmp);
    }
    *rank = r;
    return 0;
}

/* All non-omitted inputs in [first, last) have the same dtype; returns it. */
static int same_dtype(IrGraph *g, int node, int first, int last, IrDType *dt)
{
    const IrNode *n = NODE;
    int f = -1;
    for (int i = first; i < last && i < n->nin; i++) {
        if (n->in[i] < 0) continue;
        if (f < 0) f = i;
        else if (V(n->in[i])->dtype != V(n->in[f])->dtype)
            return ir_fail(g, node, "inputs %d and %d must have the same type; got %s and %s", f,
                           i, IR_SHP(g, n->in[f]), IR_SHP(g, n->in[i]));
    }
    *dt = f >= 0 ? V(n->in[f])->dtype : IR_UNDEF;
    return 0;
}

int shape_binary(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    IrDType dt = V(n->in[0])->dtype;
    IrDType bt = V(n->in[1])->dtype;
    if (n->op == IR_OP_Pow) {
        if (!is_numeric(dt) || !is_numeric(bt))
            return ir_fail(g, node, "Pow takes numeric tensors; got %s and %s", IR_SHP(g, n->in[0]),
                           IR_SHP(g, n->in[1]));
    } else {
        if (same_dtype(g, node, 0, 2, &dt) < 0) return -1;
        if (!is_numeric(dt))
            return ir_fail(g, node, "%s takes numeric tensors; got %s", OPNAME, IR_SHP(g, n->in[0]));
    }
    if (n->op == IR_OP_Mod && ir_dtype_is_float(dt) && ir_attr_int(n, "fmod", 0) != 1)
        return ir_fail(g, node, "Mod of %s tensors needs fmod=1 (ONNX defines only fmod for floats)",
                       ir_dtype_name(dt));
    int r;
    int64_t d[IR_MAX_RANK];
    if (broadcast_inputs(g, node, 0, &r, d) < 0) return -1;
    if (n->op == IR_OP_PRelu) {
        const IrValue *x = V(n->in[0]);
        if (r != x->rank || memcmp(d, x->dims, r * sizeof *d))
            return ir_fail(g, node, "slope %s does not broadcast to the input %s",
                           IR_SHP(g, n->in[1]), IR_SHP(g, n->in[0]));
    }
    return ir_shape_out(g, node, 0, dt, r, d);
}

int shape_variadic(IrGraph *g, int node)
{
    IrDType dt;
    if (same_dtype(g, node, 0, NODE->nin, &dt) < 0) return -1;
    if (!is_numeric(dt))
        return ir_fail(g, node, "%s takes numeric tensors; got %s", OPNAME, IR_SHP(g, NODE->in[0]));
    int r;
    int64_t d[IR_MAX_RANK];
    if (broadcast_inputs(g, node, 0, &r, d) < 0) return -1;
    return ir_shape_out(g, node, 0, dt, r, d);
}

int shape_where(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    if (V(n->in[0])->dtype != IR_BOOL)
        return ir_fail(g, node, "the condition must be bool; got %s", IR_SHP(g, n->in[0]));
    IrDType dt;
    if (same_dtype(g, node, 1, 3, &dt) < 0) return -1;
    int r;
    int64_t d[IR_MAX_RANK];
    if (broadcast_inputs(g, node, 0, &r, d) < 0) return -1;
    return ir_shape_out(g, node, 0, dt, r, d);
}

int shape_compare(IrGraph *g, int node)
{
    IrDType dt;
    if (same_dtype(g, node, 0, 2, &dt) < 0) return -1;
    if (!is_numeric(dt) && !(dt == IR_BOOL && NODE->op == IR_OP_Equal))
        return ir_fail(g, node, "%s takes numeric tensors; got %s", OPNAME, IR_SHP(g, NODE->in[0]));
    int r;
    int64_t d[IR_MAX_RANK];
    if (broadcast_inputs(g, node, 0, &r, d) < 0) return -1;
    return ir_shape_out(g, node, 0, IR_BOOL, r, d);
}

int shape_logical(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    for (int i = 0; i < n->nin; i++)
        if (V(n->in[i])->dtype != IR_BOOL)
            return ir_fail(g, node, "%s takes bool tensors; got %s", OPNAME, IR_SHP(g, n->in[i]));
    int r;
    int64_t d[IR_MAX_RANK];
    if (broadcast_inputs(g, node, 0, &r, d) < 0) return -1;
    return ir_shape_out(g, node, 0, IR_BOOL, r, d);
}

/* ---- unary ---- */

/* Ops that ONNX defines on floating-point tensors only. */
static int float_only(IrOp op)
{
    switch (op) {
    case IR_OP_Sqrt: case IR_OP_Reciprocal: case IR_OP_Exp: case IR_OP_Log: case IR_OP_Sin:
    case IR_OP_Cos: case IR_OP_Tanh: case IR_OP_Erf: case IR_OP_Floor: case IR_OP_Ceil:
    case IR_OP_Round: case IR_OP_LeakyRelu: case IR_OP_Elu: case IR_OP_Selu: case IR_OP_Sigmoid:
    case IR_OP_HardSigmoid: case IR_OP_HardSwish: case IR_OP_Softplus: case IR_OP_Softsign:
    case IR_OP_Gelu: case IR_OP_Softmax: case IR_OP_LogSoftmax:
        return 1;
    default:
        return 0;
    }
}

/* A scalar-like input (rank 0, or rank 1 of one element) of an integer type. */
static int check_int_scalar(IrGraph *g, int node, int i, const char *what)
{
    IrValue *v = in_val(g, node, i);
    if (!v) return 0;
    if (!ir_dtype_is_int(v->dtype) || ir_value_numel(v) != 1 || v->rank > 1)
        return ir_fail(g, node, "input %d (%s) must be an integer scalar; got %s", i, what,
                       IR_SHP(g, NODE->in[i]));
    return 0;
}

int shape_unary(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    IrOp op = n->op;
    if (op != IR_OP_Identity && !is_numeric(x->dtype) && x->dtype != IR_BOOL)
        return ir_fail(g, node, "%s does not take %s tensors", OPNAME, ir_dtype_name(x->dtype));
    if (float_only(op) && !ir_dtype_is_float(x->dtype))
        return ir_fail(g, node, "%s takes a float tensor; got %s", OPNAME, IR_SHP(g, n->in[0]));
    if (x->dtype == IR_BOOL && op != IR_OP_Identity && op != IR_OP_Trilu)
        return ir_fail(g, node, "%s does not take bool tensors", OPNAME);
    switch (op) {
    case IR_OP_Gelu: {
        const char *a = ir_attr_string(n, "approximate", "none");
        if (strcmp(a, "none") && strcmp(a, "tanh"))
            return ir_fail(g, node, "Gelu approximate '%s' is not supported; loom supports 'none' "
                           "and 'tanh'", a);
        break;
    }
    case IR_OP_Clip:
        for (int i = 1; i < 3; i++) {
            IrValue *b = in_val(g, node, i);
            if (!b) continue;
            if (b->dtype != x->dtype || ir_value_numel(b) != 1 || b->rank > 1)
                return ir_fail(g, node, "input %d (%s) must be a scalar of the input's type %s; "
                               "got %s", i, i == 1 ? "min" : "max", ir_dtype_name(x->dtype),
                               IR_SHP(g, n->in[i]));
        }
        break;
    case IR_OP_Softmax: case IR_OP_LogSoftmax: {
        int64_t axis = ir_attr_int(n, "axis", g->opset < 13 ? 1 : -1);
        if (ir_norm_axis(axis, x->rank) < 0)
            return ir_fail(g, node, "axis %lld is out of range for the input %s", (long long)axis,
                           IR_SHP(g, n->in[0]));
        break;
    }
    case IR_OP_CumSum: {
        if (check_int_scalar(g, node, 1, "axis") < 0) return -1;
        const int64_t *ax;
        int64_t k = ir_const_ints(g, n->in[1], &ax);
        if (k == 1 && ir_norm_axis(ax[0], x->rank) < 0)
            return ir_fail(g, node, "axis %lld is out of range for the input %s", (long long)ax[0],
                           IR_SHP(g, n->in[0]));
        break;
    }
    case IR_OP_Trilu:
        if (x->rank < 2)
            return ir_fail(g, node, "Trilu needs a tensor of rank 2 or more; got %s",
                           IR_SHP(g, n->in[0]));
        if (check_int_scalar(g, node, 1, "k") < 0) return -1;
        break;
    default:
        break;
    }
    return ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims);
}

int shape_cast(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    const IrAttr *a = ir_attr_find(n, "to");
    if (!a || a->kind != IR_ATTR_INT) return ir_fail(g, node, "Cast needs the integer attribute 'to'");
    int64_t to = a->u.i;
    if (to <= 0 || to >= IR_NDTYPE || to == IR_STRING || to == IR_C64 || to == IR_C128)
        return ir_fail(g, node, "Cast to type %lld (%s) is not supported; loom casts between "
                       "float, integer and bool types", (long long)to,
                       to > 0 && to < IR_NDTYPE ? ir_dtype_name((IrDType)to) : "unknown");
    return ir_shape_out(g, node, 0, (IrDType)to, x->rank, x->dims);
}

int shape_dropout(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    if (!ir_dtype_is_float(x->dtype))
        return ir_fail(g, node, "Dropout takes a float tensor; got %s", IR_SHP(g, n->in[0]));
    IrValue *ratio = in_val(g, node, 1), *train = in_val(g, node, 2);
    if (ratio && (!ir_dtype_is_float(ratio->dtype) || ir_value_numel(ratio) != 1))
        return ir_fail(g, node, "ratio must be a float scalar; got %s", IR_SHP(g, n->in[1]));
    if (train && (train->dtype != IR_BOOL || ir_value_numel(train) != 1))
        return ir_fail(g, node, "training_mode must be a bool scalar; got %s", IR_SHP(g, n->in[2]));
    if (ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims) < 0) return -1;
    /* the mask is bool from opset 10; before, it had the input's type */
    return ir_shape_out(g, node, 1, g->opset < 10 ? x->dtype : IR_BOOL, x->rank, x->dims);
}

/* ---- reductions ---- */

int ir_reduce_axes(IrGraph *g, int node, unsigned char *mask, int *noop)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    int attr_form = n->op == IR_OP_ReduceSum ? g->opset < 13 : g->opset < 18;
    const int64_t *axes;
    int64_t k;
    int noop_empty = 0;
    if (attr_form) {
        axes = ir_attr_ints(n, "axes", &k);
        if (ir_in(n, 1) >= 0)
            return ir_fail(g, node, "%s in opset %d takes axes as an attribute, not an input",
                           OPNAME, g->opset);
    } else {
        k = ir_need_ints(g, node, 1, "axes", 0, &axes);
        if (k < 0) return -1;
        noop_empty = ir_attr_int(n, "noop_with_empty_axes", 0) != 0;
    }
    *noop = 0;
    if (k == 0) {
        *noop = noop_empty;
        memset(mask, !noop_empty, IR_MAX_RANK);
        return 0;
    }
    return axes_mask(g, node, axes, k, x->rank, mask, "axis");
}

int shape_reduce(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    if (!is_numeric(x->dtype) &&
        !(x->dtype == IR_BOOL && (NODE->op == IR_OP_ReduceMax || NODE->op == IR_OP_ReduceMin)))
        return ir_fail(g, node, "%s takes a numeric tensor; got %s", OPNAME, IR_SHP(g, NODE->in[0]));
    unsigned char mask[IR_MAX_RANK];
    int noop;
    if (ir_reduce_axes(g, node, mask, &noop) < 0) return -1;
    if (noop) return ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims);
    int keep = ir_attr_int(NODE, "keepdims", 1) != 0;
    int r = 0;
    int64_t d[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        if (!mask[i]) d[r++] = x->dims[i];
        else if (keep) d[r++] = 1;
    }
    return ir_shape_out(g, node, 0, x->dtype, r, d);
}

int shape_argreduce(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    if (!is_numeric(x->dtype))
        return ir_fail(g, node, "%s takes a numeric tensor; got %s", OPNAME, IR_SHP(g, NODE->in[0]));
    int64_t axis = ir_attr_int(NODE, "axis", 0);
    int a = ir_norm_axis(axis, x->rank);
    if (a < 0)
        return ir_fail(g, node, "axis %lld is out of range for the input %s", (long long)axis,
                       IR_SHP(g, NODE->in[0]));
    if (x->dims[a] == 0)
        return ir_fail(g, node, "%s over axis %d of size 0 has no answer", OPNAME, a);
    int keep = ir_attr_int(NODE, "keepdims", 1) != 0;
    int r = 0;
    int64_t d[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        if (i != a) d[r++] = x->dims[i];
        else if (keep) d[r++] = 1;
    }
    return ir_shape_out(g, node, 0, IR_I64, r, d);
}

/* ---- indexing ---- */

int shape_gather(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *idx = V(n->in[1]);
    if (!ir_dtype_is_int(idx->dtype))
        return ir_fail(g, node, "indices must be an integer tensor; got %s", IR_SHP(g, n->in[1]));
    int64_t axis = ir_attr_int(n, "axis", 0);
    int a = ir_norm_axis(axis, x->rank);
    if (a < 0)
        return ir_fail(g, node, "axis %lld is out of range for the data %s", (long long)axis,
                       IR_SHP(g, n->in[0]));
    const int64_t *iv;
    int64_t k = ir_const_ints(g, n->in[1], &iv);
    for (int64_t j = 0; j < k; j++)
        if (iv[j] < -x->dims[a] || iv[j] >= x->dims[a])
            return ir_fail(g, node, "index %lld is out of range for axis %d of the data %s",
                           (long long)iv[j], a, IR_SHP(g, n->in[0]));
    int r = 0;
    int64_t d[IR_MAX_RANK + IR_MAX_RANK];
    for (int i = 0; i < a; i++) d[r++] = x->dims[i];
    for (int i = 0; i < idx->rank; i++) d[r++] = idx->dims[i];
    for (int i = a + 1; i < x->rank; i++) d[r++] = x->dims[i];
    return ir_shape_out(g, node, 0, x->dtype, r, d);
}

int shape_gather_elements(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *idx = V(n->in[1]);
    if (!ir_dtype_is_int(idx->dtype))
        return ir_fail(g, node, "indices must be an integer tensor; got %s", IR_SHP(g, n->in[1]));
    if (idx->rank != x->rank || x->rank < 1)
        return ir_fail(g, node, "indices %s must have the rank of the data %s (at least 1)",
                       IR_SHP(g, n->in[1]), IR_SHP(g, n->in[0]));
    int64_t axis = ir_attr_int(n, "axis", 0);
    if (ir_norm_axis(axis, x->rank) < 0)
        return ir_fail(g, node, "axis %lld is out of range for the data %s", (long long)axis,
                       IR_SHP(g, n->in[0]));
    return ir_shape_out(g, node, 0, x->dtype, idx->rank, idx->dims);
}

int shape_scatternd(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *idx = V(n->in[1]), *up = V(n->in[2]);
    const char *red = ir_attr_string(n, "reduction", "none");
    if (strcmp(red, "none") && strcmp(red, "add") && strcmp(red, "mul") && strcmp(red, "max") &&
        strcmp(red, "min"))
        return ir_fail(g, node, "reduction '%s' is not supported; ScatterND takes 'none', 'add', "
                       "'mul', 'max' or 'min'", red);
    if (!ir_dtype_is_int(idx->dtype))
        return ir_fail(g, node, "indices must be an integer tensor; got %s", IR_SHP(g, n->in[1]));
    if (up->dtype != x->dtype)
        return ir_fail(g, node, "updates %s must have the data's type %s", IR_SHP(g, n->in[2]),
                       ir_dtype_name(x->dtype));
    int q = idx->rank;
    int64_t k = q >= 1 ? idx->dims[q - 1] : -1;
    if (x->rank < 1 || q < 1 || k < 1 || k > x->rank)
        return ir_fail(g, node, "indices %s do not index the data %s (need rank >= 1 and a last "
                       "dim from 1 to the data's rank)", IR_SHP(g, n->in[1]), IR_SHP(g, n->in[0]));
    int ur = q - 1 + x->rank - (int)k;
    int ok = up->rank == ur;
    for (int i = 0; ok && i < q - 1; i++) ok = up->dims[i] == idx->dims[i];
    for (int i = q - 1; ok && i < ur; i++) ok = up->dims[i] == x->dims[k + i - (q - 1)];
    if (!ok)
        return ir_fail(g, node, "updates %s do not match indices %s and data %s (need "
                       "indices.shape[:-1] + data.shape[k:])", IR_SHP(g, n->in[2]),
                       IR_SHP(g, n->in[1]), IR_SHP(g, n->in[0]));
    return ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims);
}

/* ---- data movement ---- */

int shape_reshape(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    const int64_t *s;
    int64_t k = ir_need_ints(g, node, 1, "shape", 1, &s);
    if (k < 0) return -1;
    if (k > IR_MAX_RANK)
        return ir_fail(g, node, "target shape has %lld dims; loom supports ranks up to %d",
                       (long long)k, IR_MAX_RANK);
    int allowzero = ir_attr_int(n, "allowzero", 0) != 0;
    int64_t d[IR_MAX_RANK], known = 1;
    int infer = -1;
    for (int i = 0; i < k; i++) {
        d[i] = s[i];
        if (s[i] == 0 && !allowzero) {
            if (i >= x->rank)
                return ir_fail(g, node, "target dim %d is 0 (copy), but the input %s has no dim %d",
                               i, IR_SHP(g, n->in[0]), i);
            d[i] = x->dims[i];
        } else if (s[i] == -1) {
            if (infer >= 0) return ir_fail(g, node, "target shape has more than one -1");
            infer = i;
            continue;
        } else if (s[i] < 0) {
            return ir_fail(g, node, "target dim %d is %lld; dims must be >= -1", i, (long long)s[i]);
        }
        if (__builtin_mul_overflow(known, d[i], &known) || known > MAX_NUMEL)
            return ir_fail(g, node, "target shape has too many elements");
    }
    int64_t total = ir_value_numel(x);
    if (infer >= 0) {
        if (known == 0)
            return ir_fail(g, node, "cannot infer the -1 dim: the other target dims multiply to 0");
        if (total % known)
            return ir_fail(g, node, "cannot reshape %s (%lld elements) to a shape with a -1 and "
                           "other dims multiplying to %lld", IR_SHP(g, n->in[0]),
                           (long long)total, (long long)known);
        d[infer] = total / known;
        known = total;
    }
    if (known != total) {
        char buf[160];
        int p = snprintf(buf, sizeof buf, "[");
        for (int i = 0; i < k && p < (int)sizeof buf - 24; i++)
            p += snprintf(buf + p, sizeof buf - p, "%s%lld", i ? "," : "", (long long)s[i]);
        snprintf(buf + p, sizeof buf - p, "]");
        return ir_fail(g, node, "cannot reshape %s (%lld elements) to %s (%lld elements)",
                       IR_SHP(g, n->in[0]), (long long)total, buf, (long long)known);
    }
    return ir_shape_out(g, node, 0, x->dtype, (int)k, d);
}

int shape_flatten(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    int64_t axis = ir_attr_int(NODE, "axis", 1);
    if (axis < -(int64_t)x->rank || axis > x->rank)
        return ir_fail(g, node, "axis %lld is out of range for the input %s", (long long)axis,
                       IR_SHP(g, NODE->in[0]));
    if (axis < 0) axis += x->rank;
    int64_t d[2] = {1, 1};
    for (int i = 0; i < x->rank; i++) d[i >= axis] *= x->dims[i];
    return ir_shape_out(g, node, 0, x->dtype, 2, d);
}

/* Axes of Squeeze/Unsqueeze: an attribute before opset 13, an input after. */
static int64_t sq_axes(IrGraph *g, int node, const int64_t **axes)
{
    if (g->opset < 13) {
        int64_t k;
        *axes = ir_attr_ints(NODE, "axes", &k);
        return k;
    }
    return ir_need_ints(g, node, 1, "axes", 0, axes);
}

int shape_squeeze(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    const int64_t *axes;
    int64_t k = sq_axes(g, node, &axes);
    if (k < 0) return -1;
    unsigned char mask[IR_MAX_RANK];
    if (axes_mask(g, node, axes, k, x->rank, mask, "axis") < 0) return -1;
    int r = 0;
    int64_t d[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        if (k == 0 ? x->dims[i] == 1 : mask[i]) {
            if (x->dims[i] != 1)
                return ir_fail(g, node, "cannot squeeze axis %d of %s: its size is not 1", i,
                               IR_SHP(g, NODE->in[0]));
            continue;
        }
        d[r++] = x->dims[i];
    }
    return ir_shape_out(g, node, 0, x->dtype, r, d);
}

int shape_unsqueeze(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    const int64_t *axes;
    int64_t k = sq_axes(g, node, &axes);
    if (k < 0) return -1;
    if (k == 0) return ir_fail(g, node, "Unsqueeze needs axes");
    if (x->rank + k > IR_MAX_RANK)
        return ir_fail(g, node, "unsqueezing %s by %lld axes exceeds loom's maximum rank %d",
                       IR_SHP(g, NODE->in[0]), (long long)k, IR_MAX_RANK);
    int r = x->rank + (int)k;
    unsigned char mask[IR_MAX_RANK];
    if (axes_mask(g, node, axes, k, r, mask, "axis") < 0) return -1;
    int64_t d[IR_MAX_RANK];
    for (int i = 0, j = 0; i < r; i++) d[i] = mask[i] ? 1 : x->dims[j++];
    return ir_shape_out(g, node, 0, x->dtype, r, d);
}

int shape_transpose(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    int64_t k;
    const int64_t *perm = ir_attr_ints(NODE, "perm", &k);
    int64_t d[IR_MAX_RANK];
    if (!perm) {
        for (int i = 0; i < x->rank; i++) d[i] = x->dims[x->rank - 1 - i];
        return ir_shape_out(g, node, 0, x->dtype, x->rank, d);
    }
    unsigned char seen[IR_MAX_RANK] = {0};
    if (k != x->rank)
        return ir_fail(g, node, "perm has %lld entries for the input %s", (long long)k,
                       IR_SHP(g, NODE->in[0]));
    for (int i = 0; i < k; i++) {
        if (perm[i] < 0 || perm[i] >= x->rank || seen[perm[i]]++)
            return ir_fail(g, node, "perm is not a permutation of 0..%d", x->rank - 1);
        d[i] = x->dims[perm[i]];
    }
    return ir_shape_out(g, node, 0, x->dtype, x->rank, d);
}

int shape_concat(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrAttr *aa = ir_attr_find(n, "axis");
    if (!aa || aa->kind != IR_ATTR_INT) return ir_fail(g, node, "Concat needs the attribute 'axis'");
    IrDType dt;
    if (same_dtype(g, node, 0, n->nin, &dt) < 0) return -1;
    int first = -1;
    int64_t d[IR_MAX_RANK];
    int a = -1, r = 0;
    for (int i = 0; i < n->nin; i++) {
        if (n->in[i] < 0) continue;
        const IrValue *v = V(n->in[i]);
        if (first < 0) {
            first = i;
            r = dims_of(v, d);
            a = ir_norm_axis(aa->u.i, r);
            if (a < 0)
                return ir_fail(g, node, "axis %lld is out of range for the input %s",
                               (long long)aa->u.i, IR_SHP(g, n->in[i]));
            continue;
        }
        int ok = v->rank == r;
        for (int j = 0; ok && j < r; j++) ok = j == a || v->dims[j] == d[j];
        if (!ok)
            return ir_fail(g, node, "inputs %s and %s differ outside the concat axis %d",
                           IR_SHP(g, n->in[first]), IR_SHP(g, n->in[i]), a);
        if (__builtin_add_overflow(d[a], v->dims[a], &d[a]))
            return ir_fail(g, node, "concatenated size overflows");
    }
    if (first < 0) return ir_fail(g, node, "Concat has no inputs");
    return ir_shape_out(g, node, 0, dt, r, d);
}

int ir_split_sizes(IrGraph *g, int node, int *axis, const int64_t **sizes)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    int64_t ax = ir_attr_int(n, "axis", 0);
    int a = ir_norm_axis(ax, x->rank);
    if (a < 0)
        return ir_fail(g, node, "axis %lld is out of range for the input %s", (long long)ax,
                       IR_SHP(g, n->in[0]));
    *axis = a;
    int64_t dim = x->dims[a], k;
    const int64_t *s;
    if (g->opset < 13) {
        s = ir_attr_ints(n, "split", &k);
    } else {
        k = ir_need_ints(g, node, 1, "split", 0, &s);
        if (k < 0) return -1;
    }
    int64_t *out = ir_alloc(g, (n->nout ? n->nout : 1) * sizeof *out);
    *sizes = out;
    if (k > 0) {
        if (k != n->nout)
            return ir_fail(g, node, "split has %lld sizes for %d outputs", (long long)k, n->nout);
        int64_t sum = 0;
        for (int i = 0; i < k; i++) {
            if (s[i] < 0 || __builtin_add_overflow(sum, s[i], &sum))
                return ir_fail(g, node, "split size %lld is invalid", (long long)s[i]);
            out[i] = s[i];
        }
        if (sum != dim)
            return ir_fail(g, node, "split sizes add up to %lld, but axis %d of %s has size %lld",
                           (long long)sum, a, IR_SHP(g, n->in[0]), (long long)dim);
        return 0;
    }
    int64_t num = ir_attr_int(n, "num_outputs", 0);
    if (num > 0) {
        if (num != n->nout)
            return ir_fail(g, node, "num_outputs is %lld but the node has %d outputs",
                           (long long)num, n->nout);
        int64_t chunk = (dim + num - 1) / num, last = dim - chunk * (num - 1);
        if (last < 0)
            return ir_fail(g, node, "cannot split size %lld into %lld chunks of %lld",
                           (long long)dim, (long long)num, (long long)chunk);
        for (int i = 0; i < num; i++) out[i] = i < num - 1 ? chunk : last;
        return 0;
    }
    if (n->nout < 1 || dim % n->nout)
        return ir_fail(g, node, "cannot split axis %d of %s into %d equal parts", a,
                       IR_SHP(g, n->in[0]), n->nout);
    for (int i = 0; i < n->nout; i++) out[i] = dim / n->nout;
    return 0;
}

int shape_split(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    int a;
    const int64_t *sizes;
    if (ir_split_sizes(g, node, &a, &sizes) < 0) return -1;
    int64_t d[IR_MAX_RANK];
    dims_of(x, d);
    for (int i = 0; i < NODE->nout; i++) {
        d[a] = sizes[i];
        if (ir_shape_out(g, node, i, x->dtype, x->rank, d) < 0) return -1;
    }
    return 0;
}

int ir_slice_params(IrGraph *g, int node, int64_t *start, int64_t *step, int64_t *len)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    const int64_t *st, *en, *ax = NULL, *sp = NULL;
    int64_t ks, ke, ka, kp = 0;
    if (g->opset < 10) {
        st = ir_attr_ints(n, "starts", &ks);
        en = ir_attr_ints(n, "ends", &ke);
        ax = ir_attr_ints(n, "axes", &ka);
        if (!st || !en) return ir_fail(g, node, "Slice before opset 10 needs attributes starts and ends");
    } else {
        if ((ks = ir_need_ints(g, node, 1, "starts", 1, &st)) < 0) return -1;
        if ((ke = ir_need_ints(g, node, 2, "ends", 1, &en)) < 0) return -1;
        if ((ka = ir_need_ints(g, node, 3, "axes", 0, &ax)) < 0) return -1;
        if ((kp = ir_need_ints(g, node, 4, "steps", 0, &sp)) < 0) return -1;
        if (ir_in(n, 3) < 0) ka = 0;
        if (ir_in(n, 4) < 0) kp = 0;
    }
    if (ke != ks || (ax && ka != ks) || (sp && kp != ks))
        return ir_fail(g, node, "starts, ends, axes and steps differ in length (%lld, %lld, %lld, "
                       "%lld)", (long long)ks, (long long)ke, (long long)(ax ? ka : ks),
                       (long long)(sp ? kp : ks));
    for (int i = 0; i < x->rank; i++) start[i] = 0, step[i] = 1, len[i] = x->dims[i];
    unsigned char seen[IR_MAX_RANK] = {0};
    for (int64_t j = 0; j < ks; j++) {
        int64_t axis = ax ? ax[j] : j;
        int a = ir_norm_axis(axis, x->rank);
        if (a < 0)
            return ir_fail(g, node, "axis %lld is out of range for the input %s", (long long)axis,
                           IR_SHP(g, n->in[0]));
        if (seen[a]++) return ir_fail(g, node, "axis %lld is repeated", (long long)axis);
        int64_t d = x->dims[a], s = st[j], e = en[j], p = sp ? sp[j] : 1;
        if (p == 0) return ir_fail(g, node, "step of axis %d is 0", a);
        if (s < 0) s += d;
        if (e < 0) e += d;
        if (d == 0) {
            len[a] = 0;
        } else if (p > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            len[a] = e > s ? (e - s - 1) / p + 1 : 0;
        } else {
            s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            uint64_t ap = (uint64_t)0 - (uint64_t)p;
            len[a] = s > e ? (int64_t)((uint64_t)(s - e - 1) / ap) + 1 : 0;
        }
        start[a] = s;
        step[a] = p;
    }
    return 0;
}

int shape_slice(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK];
    if (ir_slice_params(g, node, start, step, len) < 0) return -1;
    return ir_shape_out(g, node, 0, x->dtype, x->rank, len);
}

int shape_expand(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    const int64_t *s;
    int64_t k = ir_need_ints(g, node, 1, "shape", 1, &s);
    if (k < 0) return -1;
    if (k > IR_MAX_RANK)
        return ir_fail(g, node, "target shape has %lld dims; loom supports ranks up to %d",
                       (long long)k, IR_MAX_RANK);
    for (int i = 0; i < k; i++)
        if (s[i] < 0) return ir_fail(g, node, "target dim %d is negative (%lld)", i, (long long)s[i]);
    int r;
    int64_t d[IR_MAX_RANK];
    if (ir_broadcast(x->rank, x->dims, (int)k, s, &r, d) < 0) {
        IrValue t = *x;
        t.rank = (int)k;
        memcpy(t.dims, s, k * sizeof *s);
        char b[128];
        return ir_fail(g, node, "input %s does not broadcast to the shape %s",
                       IR_SHP(g, NODE->in[0]), ir_shape_str(&t, b, sizeof b));
    }
    return ir_shape_out(g, node, 0, x->dtype, r, d);
}

int shape_tile(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    const int64_t *rep;
    int64_t k = ir_need_ints(g, node, 1, "repeats", 1, &rep);
    if (k < 0) return -1;
    if (k != x->rank)
        return ir_fail(g, node, "repeats has %lld entries for the input %s", (long long)k,
                       IR_SHP(g, NODE->in[0]));
    int64_t d[IR_MAX_RANK];
    for (int i = 0; i < k; i++)
        if (rep[i] < 0 || __builtin_mul_overflow(x->dims[i], rep[i], &d[i]))
            return ir_fail(g, node, "repeat %lld of axis %d is invalid", (long long)rep[i], i);
    return ir_shape_out(g, node, 0, x->dtype, x->rank, d);
}

int ir_pad_params(IrGraph *g, int node, int64_t *pads, int *mode)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    int r = x->rank;
    const char *m = ir_attr_string(n, "mode", "constant");
    static const char *modes[] = {"constant", "reflect", "edge", "wrap"};
    *mode = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(m, modes[i])) *mode = i;
    if (*mode < 0)
        return ir_fail(g, node, "Pad mode '%s' is not supported; loom supports 'constant', "
                       "'reflect', 'edge' and 'wrap'", m);
    const int64_t *p, *axes = NULL;
    int64_t k, ka = 0;
    if (g->opset < 11) {
        p = ir_attr_ints(n, "pads", &k);
        if (!p) return ir_fail(g, node, "Pad before opset 11 needs the attribute 'pads'");
    } else {
        if ((k = ir_need_ints(g, node, 1, "pads", 1, &p)) < 0) return -1;
        if ((ka = ir_need_ints(g, node, 3, "axes", 0, &axes)) < 0) return -1;
        IrValue *cv = in_val(g, node, 2);
        if (cv && (cv->dtype != x->dtype || ir_value_numel(cv) != 1))
            return ir_fail(g, node, "constant_value must be a scalar of the input's type %s; got %s",
                           ir_dtype_name(x->dtype), IR_SHP(g, n->in[2]));
    }
    int64_t naxes = axes ? ka : r;
    if (k != 2 * naxes)
        return ir_fail(g, node, "pads has %lld entries; the input %s needs %lld", (long long)k,
                       IR_SHP(g, n->in[0]), (long long)(2 * naxes));
    unsigned char mask[IR_MAX_RANK];
    if (axes && axes_mask(g, node, axes, ka, r, mask, "axis") < 0) return -1;
    memset(pads, 0, 2 * r * sizeof *pads);
    for (int64_t j = 0; j < naxes; j++) {
        int a = axes ? ir_norm_axis(axes[j], r) : (int)j;
        pads[a] = p[j];
        pads[r + a] = p[naxes + j];
    }
    for (int a = 0; a < r; a++) {
        int64_t d = x->dims[a], b = pads[a], e = pads[r + a], o;
        if (__builtin_add_overflow(d, b, &o) || __builtin_add_overflow(o, e, &o) || o < 0)
            return ir_fail(g, node, "pads %lld and %lld of axis %d do not fit its size %lld",
                           (long long)b, (long long)e, a, (long long)d);
        int64_t need = b > e ? b : e;
        if (need > 0 && ((*mode == 1 && need > d - 1) || (*mode >= 2 && d == 0) ||
                         (*mode == 3 && need > d)))
            return ir_fail(g, node, "%s padding of %lld on axis %d needs a larger input than %s",
                           m, (long long)need, a, IR_SHP(g, n->in[0]));
        if (*mode != 0 && (b < 0 || e < 0))
            return ir_fail(g, node, "negative pads are supported in constant mode only");
    }
    return 0;
}

int shape_pad(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    int64_t pads[2 * IR_MAX_RANK], d[IR_MAX_RANK];
    int mode;
    if (ir_pad_params(g, node, pads, &mode) < 0) return -1;
    for (int a = 0; a < x->rank; a++) d[a] = x->dims[a] + pads[a] + pads[x->rank + a];
    return ir_shape_out(g, node, 0, x->dtype, x->rank, d);
}

/* ---- shape plumbing ---- */

int shape_shape(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    int64_t r = x->rank;
    int64_t s = ir_attr_int(NODE, "start", 0), e = ir_attr_int(NODE, "end", r);
    if (s < 0) s += r;
    if (e < 0) e += r;
    s = s < 0 ? 0 : s > r ? r : s;
    e = e < 0 ? 0 : e > r ? r : e;
    int64_t d = e > s ? e - s : 0;
    return ir_shape_out(g, node, 0, IR_I64, 1, &d);
}

int shape_size(IrGraph *g, int node) { return ir_shape_out(g, node, 0, IR_I64, 0, NULL); }

int shape_range(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    IrDType dt;
    if (same_dtype(g, node, 0, 3, &dt) < 0) return -1;
    if (!is_numeric(dt))
        return ir_fail(g, node, "Range takes numeric scalars; got %s", IR_SHP(g, n->in[0]));
    static const char *what[] = {"start", "limit", "delta"};
    double v[3];
    for (int i = 0; i < 3; i++) {
        if (ir_value_numel(V(n->in[i])) != 1 || V(n->in[i])->rank > 1)
            return ir_fail(g, node, "%s must be a scalar; got %s", what[i], IR_SHP(g, n->in[i]));
        if (ir_const_scalar(g, n->in[i], &v[i]) < 0)
            return ir_fail(g, node, "input %d (%s, '%s') must be a constant: loom needs static "
                           "shapes, and it determines the output length", i, what[i],
                           V(n->in[i])->name);
    }
    int64_t count;
    if (ir_dtype_is_int(dt)) {
        const int64_t *s, *l, *dl;
        ir_const_ints(g, n->in[0], &s);
        ir_const_ints(g, n->in[1], &l);
        ir_const_ints(g, n->in[2], &dl);
        int64_t diff;
        if (*dl == 0) return ir_fail(g, node, "delta is 0");
        if (__builtin_sub_overflow(*l, *s, &diff)) return ir_fail(g, node, "limit - start overflows");
        /* ceil(diff / delta) with C's truncating division */
        count = diff / *dl + ((diff % *dl != 0) && ((diff < 0) == (*dl < 0)));
    } else {
        if (v[2] == 0) return ir_fail(g, node, "delta is 0");
        /* the length is computed as kernels do: the difference in the element
         * type, the division in double */
        double diff = dt == IR_F64 ? v[1] - v[0] : (double)((float)v[1] - (float)v[0]);
        double c = ceil(diff / v[2]);
        if (!(c < (double)MAX_NUMEL)) {
            if (c != c) return ir_fail(g, node, "start, limit or delta is not finite");
            return ir_fail(g, node, "the range has too many elements");
        }
        count = (int64_t)(c > 0 ? c : 0);
    }
    if (count < 0) count = 0;
    return ir_shape_out(g, node, 0, dt, 1, &count);
}

int shape_constant_of_shape(IrGraph *g, int node)
{
    const int64_t *s;
    int64_t k = ir_need_ints(g, node, 0, "shape", 1, &s);
    if (k < 0) return -1;
    if (V(NODE->in[0])->rank != 1)
        return ir_fail(g, node, "shape must be a 1-D tensor; got %s", IR_SHP(g, NODE->in[0]));
    if (k > IR_MAX_RANK)
        return ir_fail(g, node, "shape has %lld dims; loom supports ranks up to %d", (long long)k,
                       IR_MAX_RANK);
    IrDType dt = IR_F32;
    const IrAttr *a = ir_attr_find(NODE, "value");
    if (a) {
        if (a->kind != IR_ATTR_TENSOR || a->u.tensor < 0 || a->u.tensor >= g->nvalues)
            return ir_fail(g, node, "attribute 'value' must be a tensor");
        const IrValue *t = V(a->u.tensor);
        if (ir_value_numel(t) != 1 || !t->data || !(is_numeric(t->dtype) || t->dtype == IR_BOOL))
            return ir_fail(g, node, "attribute 'value' must be a one-element numeric tensor");
        dt = t->dtype;
    }
    return ir_shape_out(g, node, 0, dt, (int)k, s);
}
