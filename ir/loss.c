/* The loss of the training graph, and the whole construction
 * (ir_build_training: loss, autodiff, update; ir/train.h). The loss is the
 * model's own scalar output, or one appended to a model output: cross-entropy
 * through the table's SoftmaxCrossEntropyLoss on the logits viewed as
 * [samples, classes] (the last axis holds the classes, as PyTorch's
 * cross_entropy on logits.view(-1, C)), or the mean squared error written as
 * Sub, Mul and ReduceMean. The appended nodes are forward nodes, so
 * autodiff differentiates them like the model's own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad.h"
#include "train.h"

#define V(id) (&g->values[id])

void ir_train_defaults(IrTrainOptions *o)
{
    memset(o, 0, sizeof *o);
    o->loss_kind = IR_LOSS_MODEL;
    o->target = "target";
    o->ignore_index = -100;
    o->optimizer = IR_OPTIM_ADAMW;
    o->lr = 1e-3f;
    o->weight_decay = 0.01f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
}

/* The model output the loss comes from. */
static int pick_output(IrGraph *g, const IrTrainOptions *o)
{
    if (o->loss_output) {
        int v = ir_value_find(g, o->loss_output);
        for (int i = 0; v >= 0 && i < g->noutputs; i++)
            if (g->outputs[i] == v) return v;
        return ir_fail(g, -1, "the loss output '%s' is not an output of the model", o->loss_output);
    }
    int found = -1, count = 0;
    for (int i = 0; i < g->noutputs; i++) {
        const IrValue *v = V(g->outputs[i]);
        if (o->loss_kind == IR_LOSS_MODEL && !(ir_dtype_is_float(v->dtype) && ir_value_numel(v) == 1))
            continue;
        found = g->outputs[i];
        count++;
    }
    if (count == 1) return found;
    if (o->loss_kind == IR_LOSS_MODEL)
        return ir_fail(g, -1, count ? "the model has %d scalar float outputs; name the loss output"
                                    : "the model has no scalar float output to use as the loss "
                                      "(%d found); append a loss (--loss ce or mse, with --loss-target)",
                       count);
    return ir_fail(g, -1, "the model has %d outputs; name the one the loss is computed from", count);
}

/* A new graph input `name` of type dt[dims]. */
static int add_target(IrGraph *g, const char *name, IrDType dt, int rank, const int64_t *dims)
{
    if (!name || !*name) return ir_fail(g, -1, "the loss needs the name of its target input");
    if (ir_value_find(g, name) >= 0)
        return ir_fail(g, -1, "the target name '%s' is already a value of the model; choose "
                       "another", name);
    int t = ir_value_new(g, name, IR_INPUT);
    ir_value_set_shape(V(t), dt, rank, dims);
    g->inputs = ir_xrealloc(g->inputs, (g->ninputs + 1) * sizeof(int));
    g->inputs[g->ninputs++] = t;
    return t;
}

/* The last loss node: its output is the value "loss" (role IR_LOSS), a graph output. */
static int loss_node(IrGraph *g, IrOp op, int nin, const int *in, int *node)
{
    int v = ir_value_new(g, ir_value_find(g, "loss") < 0 ? "loss" : ir_unique_name(g, "loss"),
                         IR_LOSS);
    *node = ir_node_new(g, op, ir_unique_name(g, "loss"), nin, in, 1, &v);
    g->outputs = ir_xrealloc(g->outputs, (g->noutputs + 1) * sizeof(int));
    g->outputs[g->noutputs++] = v;
    V(v)->is_output = 1;
    return v;
}

/* ---- a language model's head and its cross-entropy in one ----
 * The logits [.., C] of a language model are a product x W of its last
 * hidden states and a vocabulary matrix, and C is large (GPT-2: 50257), so
 * the logits and their gradient are the biggest tensors of a training step
 * (1.6 GB each for GPT-2 at batch 8 x 1024). When cross-entropy is appended
 * to such a product that nothing else reads, one loom.LinearCrossEntropy
 * (x [N, D], W [D, C], or [C, D] with trans_w, targets [N]) computes the
 * loss and, in the same pass over the rows, the gradients of x and W for an
 * upstream gradient of 1, a block of rows at a time, so that the logits are
 * never held whole (as Liger Kernel's fused linear cross-entropy); its
 * gradient rule scales the two by the loss's gradient. */

/* (x [N, D], w [D, C] or [C, D], targets [N]) -> loss [], dx [N, D], dw like w */
int shape_linear_ce(IrGraph *g, int node)
{
    const IrNode *n = &g->nodes[node];
    const IrValue *x = V(n->in[0]), *w = V(n->in[1]), *t = V(n->in[2]);
    int tw = ir_attr_int(n, "trans_w", 0) != 0;
    const char *red = ir_attr_string(n, "reduction", "mean");
    if (strcmp(red, "mean") && strcmp(red, "sum"))
        return ir_fail(g, node, "reduction '%s' is not supported; 'mean' or 'sum'", red);
    if (!ir_dtype_is_float(x->dtype) || x->rank != 2 || w->dtype != x->dtype || w->rank != 2 ||
        w->dims[tw ? 1 : 0] != x->dims[1] || (t->dtype != IR_I64 && t->dtype != IR_I32) || t->rank != 1 ||
        t->dims[0] != x->dims[0])
        return ir_fail(g, node, "needs float x [N, D], w [%s] of x's type and integer targets [N]; got %s, %s, %s",
                       tw ? "C, D" : "D, C", IR_SHP(g, n->in[0]), IR_SHP(g, n->in[1]), IR_SHP(g, n->in[2]));
    if (ir_shape_out(g, node, 0, x->dtype, 0, NULL) < 0 || ir_shape_out(g, node, 1, x->dtype, 2, x->dims) < 0)
        return -1;
    return ir_shape_out(g, node, 2, w->dtype, 2, w->dims);
}

/* Whether the logits y are a float32 product x W (W 2-D, maybe a transposed
 * matrix) that nothing reads; sets *x, *w (the matrix itself when W is its
 * transpose, *trans = 1), and the nodes that go with the fusion. */
static int linear_head(IrGraph *g, int y, int *x, int *w, int *trans, int *mm, int *tr)
{
    int p = V(y)->producer;
    if (p < 0 || g->nodes[p].op != IR_OP_MatMul || V(y)->dtype != IR_F32) return 0;
    const IrNode *n = &g->nodes[p];
    const IrValue *a = V(n->in[0]), *b = V(n->in[1]);
    if (b->rank != 2 || a->rank < 2 || a->rank != V(y)->rank || a->dtype != IR_F32 || b->dtype != IR_F32) return 0;
    IrUses u = ir_uses_build(g);
    int nuse_y = u.start[y + 1] - u.start[y], nuse_b = u.start[n->in[1] + 1] - u.start[n->in[1]];
    ir_uses_free(&u);
    if (nuse_y != 0) return 0;
    *mm = p, *x = n->in[0], *w = n->in[1], *trans = 0, *tr = -1;
    int q = b->producer;
    if (q >= 0 && g->nodes[q].op == IR_OP_Transpose && nuse_b == 1) {
        int64_t np;
        const int64_t *perm = ir_attr_ints(&g->nodes[q], "perm", &np);
        if (!perm || (np == 2 && perm[0] == 1 && perm[1] == 0)) *w = g->nodes[q].in[0], *trans = 1, *tr = q;
    }
    return 1;
}

GRAD_RULE(linear_ce)
{
    const IrNode *n = &c->g->nodes[c->node];
    int dx = n->out[1], dw = n->out[2], in0 = n->in[0], in1 = n->in[1];
    if (dy[0] < 0) return 0;
    if (want[0]) {
        int gx = GOP(c, Mul, dy[0], dx);
        if (gx < 0 || grad_give(c, in0, gx) < 0) return -1;
    }
    if (want[1]) {
        int gw = GOP(c, Mul, dy[0], dw);
        if (gw < 0 || grad_give(c, in1, gw) < 0) return -1;
    }
    return 0;
}

int ir_add_loss(IrGraph *g, const IrTrainOptions *o)
{
    if (ir_loss_value(g) >= 0) return ir_fail(g, -1, "the graph already has a loss");
    int y = pick_output(g, o);
    if (y < 0) return -1;
    IrDType dt = V(y)->dtype;
    int r = V(y)->rank;
    int64_t dims[IR_MAX_RANK];
    memcpy(dims, V(y)->dims, sizeof dims);
    if (o->loss_kind == IR_LOSS_MODEL) {
        if (V(y)->producer < 0)
            return ir_fail(g, -1, "the loss output '%s' is not computed by the model", V(y)->name);
        if (!ir_dtype_is_float(dt) || ir_value_numel(V(y)) != 1)
            return ir_fail(g, -1, "the loss output '%s' must be a float scalar; it is %s",
                           V(y)->name, IR_SHP(g, y));
        V(y)->role = IR_LOSS;
        return 0;
    }
    if (!ir_dtype_is_float(dt))
        return ir_fail(g, -1, "the loss is computed from '%s', which must be a float tensor; it is "
                       "%s", V(y)->name, IR_SHP(g, y));
    GradCtx c = {.g = g, .node = -1, .phase = IR_FORWARD, .tag = "loss"};
    int node, loss;
    if (o->loss_kind == IR_LOSS_CE) {
        if (r < 2)
            return ir_fail(g, -1, "cross-entropy needs logits [N, C] or [N, ..., C]; '%s' is %s",
                           V(y)->name, IR_SHP(g, y));
        int t = add_target(g, o->target, IR_I64, r - 1, dims);
        if (t < 0) return -1;
        int64_t rows = 1, d2[2];
        for (int i = 0; i < r - 1; i++) rows *= dims[i];
        d2[0] = rows;
        d2[1] = dims[r - 1];
        int hx, hw, trans, mm, tr;
        if (!o->no_fuse_head && linear_head(g, y, &hx, &hw, &trans, &mm, &tr)) {
            int64_t dx2[2] = {rows, V(hx)->dims[V(hx)->rank - 1]};
            int x = grad_reshape(&c, hx, 2, dx2), tt = grad_reshape(&c, t, 1, d2);
            if (x < 0 || tt < 0) return -1;
            int outs[3] = {ir_value_new(g, ir_value_find(g, "loss") < 0 ? "loss" : ir_unique_name(g, "loss"), IR_LOSS),
                           ir_value_new(g, ir_unique_name(g, "loss/dx"), IR_ACTIVATION),
                           ir_value_new(g, ir_unique_name(g, "loss/dw"), IR_ACTIVATION)};
            node = ir_node_new(g, IR_OP_LinearCrossEntropy, ir_unique_name(g, "loss"), 3, (int[]){x, hw, tt}, 3, outs);
            ir_attr_set_int(g, node, "trans_w", trans);
            ir_attr_set_string(g, node, "reduction", "mean");
            if (o->use_ignore_index) ir_attr_set_int(g, node, "ignore_index", o->ignore_index);
            /* the logits are no longer computed: the product (and a transpose only it read) go */
            for (int i = 0; i < g->noutputs; i++)
                if (g->outputs[i] == y) g->outputs[i] = outs[0];
            V(y)->is_output = 0;
            V(outs[0])->is_output = 1;
            g->nodes[mm].dead = 1;
            if (tr >= 0) g->nodes[tr].dead = 1;
            if (ir_infer_node(g, node) < 0) return -1;
            ir_compact(g);
            return 0;
        }
        int x = grad_reshape(&c, y, 2, d2), tt = grad_reshape(&c, t, 1, d2);
        if (x < 0 || tt < 0) return -1;
        loss = loss_node(g, IR_OP_SoftmaxCrossEntropyLoss, 2, (int[]){x, tt}, &node);
        ir_attr_set_string(g, node, "reduction", "mean");
        if (o->use_ignore_index) ir_attr_set_int(g, node, "ignore_index", o->ignore_index);
    } else {
        int t = add_target(g, o->target, dt, r, dims);
        if (t < 0) return -1;
        int d = GOP(&c, Sub, y, t);
        int sq = GOP(&c, Mul, d, d);
        if (sq < 0) return -1;
        loss = loss_node(g, IR_OP_ReduceMean, 1, &sq, &node);
        ir_attr_set_int(g, node, "keepdims", 0);
    }
    (void)loss;
    return ir_infer_node(g, node);
}

int ir_build_training(IrGraph *g, const IrTrainOptions *o)
{
    if (ir_add_loss(g, o) < 0 || (o->precision && ir_autocast(g, o->precision) < 0) || ir_sink_reshapes(g) < 0 ||
        ir_autodiff(g, o->freeze_regex) < 0 || (!o->no_fold_bn_relu && ir_fold_bn_relu_grad(g) < 0) || (o->precision && (ir_autocast_saved(g) < 0 || ir_autocast_wide_results(g) < 0 || ir_autocast_narrow_norms(g) < 0)))
        return -1;
    int trained = 0;
    for (int v = 0; v < g->nvalues; v++)
        trained += g->values[v].role == IR_PARAM && ir_param_grad(g, v) >= 0;
    if (!trained)
        return ir_fail(g, -1, "no parameter reaches the loss '%s' through a differentiable path%s; "
                       "there is nothing to train", V(ir_loss_value(g))->name,
                       o->freeze_regex ? " (or the freeze pattern matches them all)" : "");
    if (ir_add_update(g, o) < 0) return -1;
    int loss = ir_loss_value(g);
    for (int i = 0; i < g->noutputs; i++) V(g->outputs[i])->is_output = g->outputs[i] == loss;
    g->outputs[0] = loss;
    g->noutputs = 1;
    return 0;
}
