/* Reverse-mode automatic differentiation over the IR (ir/train.h).
 *
 * Which values carry a gradient is decided first, from the gradient table
 * below: an input carries one when it is a float tensor in a differentiable
 * position (data, not indices, shapes or running statistics), an output when it is
 * float and its op is not flagged OPF_NO_GRAD (comparisons, integer ops,
 * Floor/Ceil/Round/Sign, whose gradient is zero almost everywhere, as in
 * PyTorch). A value is active when a trainable parameter reaches it and it
 * reaches the loss along such edges. Then the forward nodes are walked in
 * reverse topological order: each node with an active input and an output
 * gradient runs its op's rule (grad_math.c, grad_nn.c), which adds backward
 * nodes and gives each active input a partial gradient; a value read by
 * several nodes gets the sum of its partials, made when its producer is
 * reached (every consumer comes later in topological order, so all are in).
 * An active node whose op has no rule refuses the model, naming it.
 *
 * The helpers that rules share (node building with immediate constant
 * folding, reshapes, broadcasting reductions) live here too. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad.h"
#include "train.h"

#define V(id) (&g->values[id])

/* ---- which operands carry gradients ---- */

/* The gradient table: per op, its rule (grad_math.c, grad_nn.c) and the
 * inputs the rule gives gradients to (bit i: input i; GRAD_ALL: every input,
 * however many). The other inputs are shapes, indices, axes, bounds, ratios,
 * class weights or running statistics. `refused`: inputs a gradient would
 * flow through that the rule refuses with a message (ScatterND's updates) or,
 * for an op without a rule, every input: a trained parameter that reaches
 * the loss through one makes autodiff refuse the model rather than leave the
 * parameter untrained. Ops flagged OPF_NO_GRAD need no row; an op with none
 * has no gradient. `loom ops` and docs/ops.md print this table. */
#define GRAD_ALL (~0u)
typedef struct {
    int (*rule)(GradCtx *c, const int *dy, const char *want);
    unsigned inputs, refused;
} GradEntry;

static const GradEntry grad_table[IR_NOPS] = {
    [IR_OP_MatMul] = {grad_rule_matmul, GRAD_ALL},
    [IR_OP_Gemm] = {grad_rule_gemm, GRAD_ALL},
    [IR_OP_Einsum] = {grad_rule_einsum, GRAD_ALL},
    [IR_OP_Conv] = {grad_rule_conv, GRAD_ALL},
    [IR_OP_ConvTranspose] = {grad_rule_conv, GRAD_ALL},
    [IR_OP_BatchNormalization] = {grad_rule_norm, 7}, /* x, scale, bias */
    [IR_OP_LayerNormalization] = {grad_rule_norm, GRAD_ALL},
    [IR_OP_RMSNorm] = {grad_rule_norm, GRAD_ALL},
    [IR_OP_GroupNormalization] = {grad_rule_norm, GRAD_ALL},
    [IR_OP_InstanceNormalization] = {grad_rule_norm, GRAD_ALL},
    [IR_OP_Add] = {grad_rule_binary, GRAD_ALL},
    [IR_OP_Sub] = {grad_rule_binary, GRAD_ALL},
    [IR_OP_Mul] = {grad_rule_binary, GRAD_ALL},
    [IR_OP_Div] = {grad_rule_binary, GRAD_ALL},
    [IR_OP_Pow] = {grad_rule_binary, GRAD_ALL},
    [IR_OP_PRelu] = {grad_rule_binary, GRAD_ALL},
    [IR_OP_Mod] = {NULL, 0, GRAD_ALL},
    [IR_OP_Min] = {grad_rule_variadic, GRAD_ALL},
    [IR_OP_Max] = {grad_rule_variadic, GRAD_ALL},
    [IR_OP_Sum] = {grad_rule_variadic, GRAD_ALL},
    [IR_OP_Mean] = {grad_rule_variadic, GRAD_ALL},
    [IR_OP_Where] = {grad_rule_where, 6}, /* x, y: not the condition */
    [IR_OP_Neg] = {grad_rule_unary, 1},
    [IR_OP_Abs] = {grad_rule_unary, 1},
    [IR_OP_Sqrt] = {grad_rule_unary, 1},
    [IR_OP_Reciprocal] = {grad_rule_unary, 1},
    [IR_OP_Exp] = {grad_rule_unary, 1},
    [IR_OP_Log] = {grad_rule_unary, 1},
    [IR_OP_Sin] = {grad_rule_unary, 1},
    [IR_OP_Cos] = {grad_rule_unary, 1},
    [IR_OP_Tanh] = {grad_rule_unary, 1},
    [IR_OP_Erf] = {grad_rule_unary, 1},
    [IR_OP_Relu] = {grad_rule_unary, 1},
    [IR_OP_LeakyRelu] = {grad_rule_unary, 1},
    [IR_OP_Elu] = {grad_rule_unary, 1},
    [IR_OP_Selu] = {grad_rule_unary, 1},
    [IR_OP_Sigmoid] = {grad_rule_unary, 1},
    [IR_OP_HardSigmoid] = {grad_rule_unary, 1},
    [IR_OP_HardSwish] = {grad_rule_unary, 1},
    [IR_OP_Softplus] = {grad_rule_unary, 1},
    [IR_OP_Softsign] = {grad_rule_unary, 1},
    [IR_OP_Gelu] = {grad_rule_unary, 1},
    [IR_OP_Clip] = {grad_rule_clip, 1},
    [IR_OP_Cast] = {grad_rule_unary, 1},
    [IR_OP_Identity] = {grad_rule_unary, 1},
    [IR_OP_Dropout] = {grad_rule_dropout, 1},
    [IR_OP_Softmax] = {grad_rule_softmax, 1},
    [IR_OP_LogSoftmax] = {grad_rule_softmax, 1},
    [IR_OP_ReduceMean] = {grad_rule_reduce, 1},
    [IR_OP_ReduceSum] = {grad_rule_reduce, 1},
    [IR_OP_ReduceMax] = {grad_rule_reduce, 1},
    [IR_OP_ReduceMin] = {grad_rule_reduce, 1},
    [IR_OP_ReduceProd] = {grad_rule_reduce, 1},
    [IR_OP_ReduceL1] = {grad_rule_reduce, 1},
    [IR_OP_ReduceL2] = {grad_rule_reduce, 1},
    [IR_OP_ReduceSumSquare] = {grad_rule_reduce, 1},
    [IR_OP_ReduceLogSumExp] = {grad_rule_reduce, 1},
    [IR_OP_CumSum] = {grad_rule_cumsum, 1},
    [IR_OP_Gather] = {grad_rule_gather, 1},
    [IR_OP_GatherElements] = {grad_rule_gather, 1},
    [IR_OP_ScatterND] = {grad_rule_scatternd, 1, 4}, /* data; updates refused */
    [IR_OP_Trilu] = {grad_rule_trilu, 1},
    [IR_OP_Reshape] = {grad_rule_reshape, 1},
    [IR_OP_Flatten] = {grad_rule_reshape, 1},
    [IR_OP_Squeeze] = {grad_rule_reshape, 1},
    [IR_OP_Unsqueeze] = {grad_rule_reshape, 1},
    [IR_OP_Transpose] = {grad_rule_transpose, 1},
    [IR_OP_Concat] = {grad_rule_concat, GRAD_ALL},
    [IR_OP_Split] = {grad_rule_split, 1},
    [IR_OP_Slice] = {grad_rule_slice, 1},
    [IR_OP_Expand] = {grad_rule_expand, 1},
    [IR_OP_Tile] = {grad_rule_tile, 1},
    [IR_OP_Pad] = {grad_rule_pad, 1},
    [IR_OP_MaxPool] = {grad_rule_pool, 1},
    [IR_OP_AveragePool] = {grad_rule_pool, 1},
    [IR_OP_GlobalAveragePool] = {grad_rule_pool, 1},
    [IR_OP_GlobalMaxPool] = {grad_rule_pool, 1},
    [IR_OP_Resize] = {grad_rule_resize, 1},
    [IR_OP_DFT] = {grad_rule_dft, 1},
    [IR_OP_SoftmaxCrossEntropyLoss] = {grad_rule_loss, 1},
    [IR_OP_NegativeLogLikelihoodLoss] = {grad_rule_loss, 1},
    [IR_OP_Attention] = {grad_rule_attention, 7, 8}, /* Q, K, V; a mask is constant */
    [IR_OP_LinearCrossEntropy] = {grad_rule_linear_ce, 3}, /* x, W; not the targets */
};

static int bit(unsigned mask, int i) { return mask == GRAD_ALL || (i < 32 && (mask >> i & 1)); }

int ir_op_has_grad(IrOp op)
{
    return !(ir_ops[op].flags & OPF_NO_GRAD) && grad_table[op].rule != NULL;
}

int ir_grad_input(IrOp op, int i)
{
    return ir_op_has_grad(op) && bit(grad_table[op].inputs, i);
}

/* Input i of n is in a differentiable position (its dtype is checked apart):
 * a rule gives it a gradient, or refuses to. */
static int diff_input(const IrNode *n, int i)
{
    if (ir_ops[n->op].flags & OPF_NO_GRAD) return 0;
    const GradEntry *e = &grad_table[n->op];
    if (!e->rule && !e->refused) return 1; /* an op without a row: refused on any input */
    return bit(e->inputs | e->refused, i);
}

/* Output j of n carries a gradient when it is float. */
static int diff_output(const IrGraph *g, const IrNode *n, int j)
{
    if (ir_ops[n->op].flags & OPF_NO_GRAD) return 0;
    if ((n->op == IR_OP_BatchNormalization || n->op == IR_OP_Dropout) && j > 0) return 0;
    return ir_dtype_is_float(g->values[n->out[j]].dtype);
}

/* ---- node building ---- */

int grad_begin(GradCtx *c, IrOp op, int nin, const int *in, int nout)
{
    IrGraph *g = c->g;
    int outs[IR_MAX_RANK + 2];
    IR_ASSERT(nout <= IR_MAX_RANK + 2);
    char base[256];
    snprintf(base, sizeof base, "%s/%s", c->tag, ir_ops[op].name);
    for (int j = 0; j < nout; j++) outs[j] = ir_value_new(g, ir_unique_name(g, base), IR_ACTIVATION);
    int n = ir_node_new(g, op, ir_unique_name(g, base), nin, in, nout, outs);
    g->nodes[n].phase = c->phase;
    g->nodes[n].fwd = c->phase == IR_BACKWARD ? c->node : -1;
    return n;
}

/* Fold like onnx_fold_infer does: all inputs constant, an evaluator, and a
 * result no larger than 1 MiB or its inputs. */
static int foldable(const IrGraph *g, const IrNode *n)
{
    const IrOpInfo *info = &ir_ops[n->op];
    if (!info->eval || (info->flags & OPF_SHAPE_ONLY)) return 0;
    int64_t in_bytes = 0, out_bytes = 0;
    for (int i = 0; i < n->nin; i++) {
        if (n->in[i] < 0) continue;
        const IrValue *v = &g->values[n->in[i]];
        if (v->role != IR_CONST || !v->data) return 0;
        in_bytes += ir_value_bytes(v);
    }
    for (int j = 0; j < n->nout; j++) out_bytes += ir_value_bytes(&g->values[n->out[j]]);
    return out_bytes <= (1 << 20) || out_bytes <= in_bytes;
}

int grad_end(GradCtx *c, int node)
{
    IrGraph *g = c->g;
    if (ir_infer_node(g, node) < 0) return -1;
    IrNode *n = &g->nodes[node];
    if (foldable(g, n)) {
        if (ir_ops[n->op].eval(g, node) < 0) return -1;
        for (int j = 0; j < n->nout; j++) {
            V(n->out[j])->role = IR_CONST;
            V(n->out[j])->producer = -1;
        }
        n->dead = 1;
    }
    return n->out[0];
}

int grad_op(GradCtx *c, IrOp op, int nin, const int *in)
{
    for (int i = 0; i < nin; i++)
        if (in[i] < 0 && i < ir_ops[op].min_in) return -1; /* an earlier step failed */
    return grad_end(c, grad_begin(c, op, nin, in, 1));
}

void grad_copy_attrs(IrGraph *g, int dst, int src)
{
    for (int i = 0; i < g->nodes[src].nattr; i++) {
        const IrAttr a = g->nodes[src].attr[i];
        switch (a.kind) {
        case IR_ATTR_FLOAT: ir_attr_set_float(g, dst, a.name, a.u.f); break;
        case IR_ATTR_INT: ir_attr_set_int(g, dst, a.name, a.u.i); break;
        case IR_ATTR_STRING: ir_attr_set_string(g, dst, a.name, a.u.s); break;
        case IR_ATTR_TENSOR: ir_attr_set_tensor(g, dst, a.name, a.u.tensor); break;
        case IR_ATTR_FLOATS: ir_attr_set_floats(g, dst, a.name, a.n, a.u.fs); break;
        case IR_ATTR_INTS: ir_attr_set_ints(g, dst, a.name, a.n, a.u.is); break;
        case IR_ATTR_STRINGS: ir_attr_set_strings(g, dst, a.name, a.n, a.u.ss); break;
        }
    }
}

int grad_scalar(GradCtx *c, IrDType dt, double x)
{
    IrGraph *g = c->g;
    int v = ir_value_new(g, ir_unique_name(g, "bwd/const"), IR_CONST);
    ir_value_set_shape(V(v), dt, 0, NULL);
    void *p = ir_xmalloc(8);
    switch (dt) {
    case IR_F64: *(double *)p = x; break;
    case IR_F32: *(float *)p = (float)x; break;
    case IR_I64: *(int64_t *)p = (int64_t)x; break;
    case IR_BOOL: *(uint8_t *)p = x != 0; break;
    default: {
        /* f16/bf16: a float32 scalar cast by the evaluator, which rounds as kernels do */
        free(p);
        int f = grad_scalar(c, IR_F32, x);
        int n = grad_begin(c, IR_OP_Cast, 1, &f, 1);
        ir_attr_set_int(g, n, "to", dt);
        return grad_end(c, n);
    }
    }
    ir_value_set_data(g, v, p);
    return v;
}

int grad_ints(GradCtx *c, int n, const int64_t *vals)
{
    IrGraph *g = c->g;
    /* copied first: vals may point into the value array, which may move */
    int64_t *p = ir_xmalloc((size_t)(n ? n : 1) * sizeof *p);
    if (n) memcpy(p, vals, (size_t)n * sizeof *p);
    int v = ir_value_new(g, ir_unique_name(g, "bwd/const"), IR_CONST);
    int64_t d = n;
    ir_value_set_shape(V(v), IR_I64, 1, &d);
    ir_value_set_data(g, v, p);
    return v;
}

/* ---- shape helpers ---- */

static int same_dims(const IrValue *a, int rank, const int64_t *dims)
{
    return a->rank == rank && !memcmp(a->dims, dims, rank * sizeof *dims);
}

int grad_reshape(GradCtx *c, int x, int rank, const int64_t *dims)
{
    if (x < 0) return -1;
    if (same_dims(&c->g->values[x], rank, dims)) return x;
    return GOP(c, Reshape, x, grad_ints(c, rank, dims));
}

int grad_reshape_like(GradCtx *c, int x, int like)
{
    const IrValue *l = &c->g->values[like];
    return grad_reshape(c, x, l->rank, l->dims);
}

int grad_transpose(GradCtx *c, int x, const int64_t *perm)
{
    if (x < 0) return -1;
    int n = grad_begin(c, IR_OP_Transpose, 1, &x, 1);
    if (perm) ir_attr_set_ints(c->g, n, "perm", c->g->values[x].rank, perm);
    return grad_end(c, n);
}

int grad_reduce_sum(GradCtx *c, int x, const unsigned char *mask, int keepdims)
{
    IrGraph *g = c->g;
    if (x < 0) return -1;
    int64_t axes[IR_MAX_RANK];
    int k = 0, r = g->values[x].rank;
    for (int d = 0; d < r; d++)
        if (mask[d]) axes[k++] = d;
    if (k == 0) return x;
    int n;
    if (g->opset < 13) {
        n = grad_begin(c, IR_OP_ReduceSum, 1, &x, 1);
        ir_attr_set_ints(g, n, "axes", k, axes);
    } else {
        int in[2] = {x, grad_ints(c, k, axes)};
        n = grad_begin(c, IR_OP_ReduceSum, 2, in, 1);
    }
    ir_attr_set_int(g, n, "keepdims", keepdims);
    return grad_end(c, n);
}

int grad_unbroadcast(GradCtx *c, int gy, int like)
{
    IrGraph *g = c->g;
    if (gy < 0) return -1;
    const IrValue *y = V(gy), *l = V(like);
    if (same_dims(y, l->rank, l->dims)) return gy;
    /* leading axes the input lacks, and its size-1 axes the result widened */
    unsigned char mask[IR_MAX_RANK] = {0};
    int lead = y->rank - l->rank;
    IR_ASSERT(lead >= 0);
    for (int d = 0; d < y->rank; d++)
        mask[d] = d < lead || (l->dims[d - lead] == 1 && y->dims[d] != 1);
    int s = grad_reduce_sum(c, gy, mask, 1);
    return grad_reshape_like(c, s, like);
}

int grad_expand_like(GradCtx *c, int x, int like)
{
    IrGraph *g = c->g;
    if (x < 0) return -1;
    const IrValue *l = V(like);
    if (same_dims(V(x), l->rank, l->dims)) return x;
    return GOP(c, Expand, x, grad_ints(c, l->rank, l->dims));
}

int grad_select(GradCtx *c, int cond, int x)
{
    if (x < 0) return -1;
    return GOP(c, Where, cond, x, grad_scalar(c, c->g->values[x].dtype, 0));
}

int grad_zeros_like(GradCtx *c, int like)
{
    return grad_expand_like(c, grad_scalar(c, c->g->values[like].dtype, 0), like);
}

int grad_pad(GradCtx *c, int x, const int64_t *pads)
{
    IrGraph *g = c->g;
    if (x < 0) return -1;
    int r = V(x)->rank, any = 0;
    for (int i = 0; i < 2 * r; i++) any |= pads[i] != 0;
    if (!any) return x;
    int n;
    if (g->opset < 11) {
        n = grad_begin(c, IR_OP_Pad, 1, &x, 1);
        ir_attr_set_ints(g, n, "pads", 2 * r, pads);
    } else {
        int in[2] = {x, grad_ints(c, 2 * r, pads)};
        n = grad_begin(c, IR_OP_Pad, 2, in, 1);
    }
    return grad_end(c, n);
}

int grad_slice_axis(GradCtx *c, int x, int axis, int64_t start, int64_t end)
{
    IrGraph *g = c->g;
    if (x < 0) return -1;
    if (start == 0 && end == V(x)->dims[axis]) return x;
    int64_t ax = axis;
    int n;
    if (g->opset < 10) {
        n = grad_begin(c, IR_OP_Slice, 1, &x, 1);
        ir_attr_set_ints(g, n, "starts", 1, &start);
        ir_attr_set_ints(g, n, "ends", 1, &end);
        ir_attr_set_ints(g, n, "axes", 1, &ax);
    } else {
        int in[4] = {x, grad_ints(c, 1, &start), grad_ints(c, 1, &end), grad_ints(c, 1, &ax)};
        n = grad_begin(c, IR_OP_Slice, 4, in, 1);
    }
    return grad_end(c, n);
}

/* ---- accumulation ---- */

int grad_give(GradCtx *c, int v, int gv)
{
    IrGraph *g = c->g;
    if (gv < 0) return -1;
    const IrValue *a = V(v), *b = V(gv);
    if (a->dtype != b->dtype || !same_dims(b, a->rank, a->dims))
        return ir_fail(g, c->node, "internal error: the gradient of '%s' %s came out as %s (a loom "
                       "bug; please report it)", a->name, IR_SHP(g, v), IR_SHP(g, gv));
    if (!c->active[v]) return 0;
    if (c->npart[v] == c->cappart[v]) {
        c->cappart[v] = c->cappart[v] ? 2 * c->cappart[v] : 2;
        c->part[v] = ir_xrealloc(c->part[v], c->cappart[v] * sizeof(int));
    }
    c->part[v][c->npart[v]++] = gv;
    if (gv >= c->ngiven) {
        int cap = 2 * g->nvalues + 64;
        c->given = ir_xrealloc(c->given, cap * sizeof(int));
        memset(c->given + c->ngiven, 0, (cap - c->ngiven) * sizeof(int));
        c->ngiven = cap;
    }
    c->given[gv]++;
    return 0;
}

/* The summed gradient of v (-1 when nothing was given), named "grad/NAME"
 * when a sum is made; role is the role of that sum. */
static int grad_total(GradCtx *c, int v, IrRole role)
{
    IrGraph *g = c->g;
    if (c->total[v] >= 0 || c->npart[v] == 0) return c->total[v];
    if (c->npart[v] == 1) return c->total[v] = c->part[v][0];
    char name[512];
    snprintf(name, sizeof name, "grad/%s", V(v)->name);
    int out = ir_value_new(g, ir_value_find(g, name) < 0 ? name : ir_unique_name(g, name), role);
    int n = ir_node_new(g, c->npart[v] == 2 ? IR_OP_Add : IR_OP_Sum, ir_unique_name(g, name),
                        c->npart[v], c->part[v], 1, &out);
    g->nodes[n].phase = IR_BACKWARD;
    g->nodes[n].fwd = V(v)->producer;
    if (ir_infer_node(g, n) < 0) return -1;
    return c->total[v] = out;
}

/* Make "grad/P" for parameter p: the sum of its partials, or the single
 * partial itself, renamed by moving its producer's output to the new value
 * when nothing else refers to it, else through an Identity (a view). */
static int param_grad(GradCtx *c, int p)
{
    IrGraph *g = c->g;
    char name[512];
    snprintf(name, sizeof name, "grad/%s", V(p)->name);
    if (ir_value_find(g, name) >= 0)
        return ir_fail(g, -1, "the model already has a value named '%s', the name loom gives the "
                       "gradient of parameter '%s'; rename it", name, V(p)->name);
    if (c->npart[p] > 1) {
        int t = grad_total(c, p, IR_GRAD);
        if (t >= 0) V(t)->role = IR_GRAD;
        return t;
    }
    int gv = c->part[p][0];
    int prod = V(gv)->producer;
    int out = ir_value_new(g, name, IR_GRAD);
    ir_value_set_shape(V(out), V(gv)->dtype, V(gv)->rank, V(gv)->dims);
    int free_to_move = prod >= 0 && !g->nodes[prod].dead && g->nodes[prod].phase == IR_BACKWARD &&
                       gv < c->ngiven && c->given[gv] == 1 && !V(gv)->is_output;
    for (int i = 0; free_to_move && i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        for (int j = 0; !n->dead && j < n->nin; j++) free_to_move &= n->in[j] != gv;
    }
    if (free_to_move) {
        IrNode *n = &g->nodes[prod];
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] == gv) n->out[j] = out;
        V(out)->producer = prod;
        V(gv)->producer = -1; /* unreferenced now; ir_compact drops it */
        return out;
    }
    int n = ir_node_new(g, IR_OP_Identity, ir_unique_name(g, name), 1, &gv, 1, &out);
    g->nodes[n].phase = IR_BACKWARD;
    return out;
}

/* ---- Dropout in training mode ---- */

/* Training runs Dropout in training mode: input 2 (training_mode) becomes a
 * constant true, and a node without its mask output gets one, which the
 * backward reads. This is the one change autodiff makes to forward nodes. */
static void dropout_train(GradCtx *c, int node)
{
    IrGraph *g = c->g;
    IrNode *n = &g->nodes[node];
    int *in = ir_alloc(g, 3 * sizeof(int));
    for (int i = 0; i < 3; i++) in[i] = ir_in(n, i);
    int t = ir_value_new(g, ir_unique_name(g, "train/training_mode"), IR_CONST);
    ir_value_set_shape(V(t), IR_BOOL, 0, NULL);
    uint8_t *one = ir_xmalloc(1);
    *one = 1;
    ir_value_set_data(g, t, one);
    in[2] = t;
    n->in = in;
    n->nin = 3;
    if (n->nout < 2) {
        char base[512];
        snprintf(base, sizeof base, "%s/mask", V(n->out[0])->name);
        int m = ir_value_new(g, ir_unique_name(g, base), IR_ACTIVATION);
        int *out = ir_alloc(g, 2 * sizeof(int));
        out[0] = n->out[0];
        out[1] = m;
        n->out = out;
        n->nout = 2;
        V(m)->producer = node;
        ir_value_set_shape(V(m), g->opset < 10 ? V(n->in[0])->dtype : IR_BOOL, V(n->in[0])->rank,
                           V(n->in[0])->dims);
    }
}

/* ---- the driver ---- */

int ir_loss_value(const IrGraph *g)
{
    for (int i = 0; i < g->nvalues; i++)
        if (g->values[i].role == IR_LOSS) return i;
    return -1;
}

int ir_param_grad(const IrGraph *g, int param)
{
    if (param < 0 || param >= g->nvalues) return -1;
    char name[512];
    snprintf(name, sizeof name, "grad/%s", g->values[param].name);
    int v = ir_value_find(g, name);
    return v >= 0 && g->values[v].role == IR_GRAD ? v : -1;
}

int ir_saved_values(const IrGraph *g, int **out)
{
    char *saved = ir_xcalloc(g->nvalues ? g->nvalues : 1, 1);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->phase != IR_BACKWARD) continue;
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j];
            if (v < 0) continue;
            const IrValue *val = &g->values[v];
            int p = val->producer;
            if (p >= 0 ? g->nodes[p].phase == IR_FORWARD
                       : val->role == IR_INPUT || val->role == IR_PARAM)
                saved[v] = 1;
        }
    }
    int k = 0;
    for (int v = 0; v < g->nvalues; v++) k += saved[v];
    if (out) {
        *out = ir_xmalloc((k ? k : 1) * sizeof(int));
        for (int v = 0, w = 0; v < g->nvalues; v++)
            if (saved[v]) (*out)[w++] = v;
    }
    free(saved);
    return k;
}

/* Mark what carries a gradient: req (reached from a trainable parameter),
 * need (reaches the loss); active = both. */
static int mark_active(GradCtx *c, const int *order, int count, int loss, const regex_t *freeze)
{
    IrGraph *g = c->g;
    char *req = ir_xcalloc(g->nvalues, 1), *need = ir_xcalloc(g->nvalues, 1);
    for (int v = 0; v < g->nvalues; v++) {
        const IrValue *val = V(v);
        req[v] = val->role == IR_PARAM && ir_dtype_is_float(val->dtype) &&
                 !(freeze && regexec(freeze, val->name, 0, NULL, 0) == 0);
    }
    for (int k = 0; k < count; k++) {
        const IrNode *n = &g->nodes[order[k]];
        int any = 0;
        for (int i = 0; i < n->nin; i++)
            any |= n->in[i] >= 0 && req[n->in[i]] && diff_input(n, i);
        for (int j = 0; any && j < n->nout; j++) req[n->out[j]] = diff_output(g, n, j);
    }
    need[loss] = 1;
    for (int k = count - 1; k >= 0; k--) {
        const IrNode *n = &g->nodes[order[k]];
        int any = 0;
        for (int j = 0; j < n->nout; j++) any |= need[n->out[j]] && diff_output(g, n, j);
        for (int i = 0; any && i < n->nin; i++)
            if (n->in[i] >= 0 && diff_input(n, i) && ir_dtype_is_float(V(n->in[i])->dtype))
                need[n->in[i]] = 1;
    }
    for (int v = 0; v < g->nvalues; v++) c->active[v] = req[v] && need[v];
    free(req);
    free(need);
    return 0;
}

int ir_autodiff(IrGraph *g, const char *freeze_regex)
{
    int loss = ir_loss_value(g);
    if (loss < 0) return ir_fail(g, -1, "no loss value to differentiate (ir_add_loss first)");
    const IrValue *lv = V(loss);
    if (!ir_dtype_is_float(lv->dtype) || ir_value_numel(lv) != 1)
        return ir_fail(g, -1, "the loss '%s' must be a float scalar; it is %s", lv->name,
                       IR_SHP(g, loss));
    regex_t re, *freeze = NULL;
    if (freeze_regex) {
        int e = regcomp(&re, freeze_regex, REG_EXTENDED | REG_NOSUB);
        if (e) {
            char msg[128];
            regerror(e, &re, msg, sizeof msg);
            return ir_fail(g, -1, "freeze pattern '%s' is not a valid extended regular "
                           "expression: %s", freeze_regex, msg);
        }
        freeze = &re;
    }
    int rc = -1;
    int nfwd = g->nnodes;
    int *order = ir_xmalloc((nfwd ? nfwd : 1) * sizeof(int));
    int count = ir_topo_order(g, order);
    GradCtx c = {.g = g, .phase = IR_BACKWARD};
    /* first, as it adds values (a mask output) the per-value arrays must cover */
    for (int k = 0; k < count; k++)
        if (g->nodes[order[k]].op == IR_OP_Dropout) dropout_train(&c, order[k]);
    /* per-value arrays cover the forward values; values made later (gradients,
     * temporaries) never need an entry */
    int nv = g->nvalues;
    c.part = ir_xcalloc(nv, sizeof *c.part);
    c.npart = ir_xcalloc(nv, sizeof(int));
    c.cappart = ir_xcalloc(nv, sizeof(int));
    c.total = ir_xmalloc(nv * sizeof(int));
    c.active = ir_xcalloc(nv, 1);
    for (int v = 0; v < nv; v++) c.total[v] = -1;
    if (count < 0) goto out;
    mark_active(&c, order, count, loss, freeze);
    /* the seed: d loss / d loss = 1 */
    c.node = g->values[loss].producer;
    c.tag = "bwd/loss";
    int one = grad_scalar(&c, lv->dtype, 1.0);
    one = grad_reshape_like(&c, one, loss);
    if (c.active[loss]) {
        c.npart[loss] = 1;
        c.cappart[loss] = 1;
        c.part[loss] = ir_xmalloc(sizeof(int));
        c.part[loss][0] = one;
    }
    for (int k = count - 1; k >= 0; k--) {
        int node = order[k];
        const IrNode *n = &g->nodes[node];
        char want[64] = {0};
        int dy[64], any_in = 0, any_out = 0;
        if (n->nin > 64 || n->nout > 64) continue; /* more than any differentiable op takes */
        for (int i = 0; i < n->nin; i++) {
            want[i] = n->in[i] >= 0 && c.active[n->in[i]] && diff_input(n, i);
            any_in |= want[i];
        }
        if (!any_in) continue;
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            dy[j] = -1;
            if (!c.active[v]) continue;
            /* grad_total may add nodes (a sum of partial gradients): g->nodes moves */
            dy[j] = grad_total(&c, v, IR_ACTIVATION);
            n = &g->nodes[node];
            if (dy[j] < 0 && c.npart[v]) goto out;
            any_out |= dy[j] >= 0;
        }
        if (!any_out) continue;
        char tag[512];
        snprintf(tag, sizeof tag, "bwd/%s", n->name);
        c.node = node;
        c.tag = tag;
        if (!grad_table[n->op].rule) {
            int i = 0;
            while (!want[i]) i++;
            ir_fail(g, node, "the loss depends on this node's output through its input %d ('%s'), "
                    "but %s has no gradient in loom (docs/ops.md lists the differentiable ops); "
                    "freeze the parameters before it (--freeze) or export the model without it",
                    i, V(n->in[i])->name, ir_ops[n->op].name);
            goto out;
        }
        int r = grad_table[n->op].rule(&c, dy, want);
        if (r < 0) goto out;
    }
    for (int v = 0; v < nv; v++)
        if (g->values[v].role == IR_PARAM && c.active[v] && c.npart[v] > 0 && param_grad(&c, v) < 0)
            goto out;
    ir_compact(g);
    rc = 0;
out:
    for (int v = 0; v < nv; v++) free(c.part[v]);
    free(c.part);
    free(c.npart);
    free(c.cappart);
    free(c.total);
    free(c.active);
    free(c.given);
    free(order);
    if (freeze) regfree(freeze);
    return rc;
}
