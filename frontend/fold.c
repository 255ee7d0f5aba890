/* Constant folding and shape inference, in one walk over the nodes in
 * topological order: each node's output shapes are inferred from its inputs
 * (a Cast to the type its input has becomes an Identity view);
 * a node whose inputs are all known constants (or that only reads shapes that
 * are now known: Shape, Size) is evaluated on the host and replaced by its
 * constant outputs, so that the Shape/Gather/Concat/Reshape plumbing that
 * exporters emit turns into static shapes. Then what no graph output needs is
 * dropped, nodes are stored in topological order, and the inferred shapes are
 * checked against those the model declared. */
#include <stdlib.h>
#include <string.h>

#include "frontend.h"

/* Folding must not grow the model: results bigger than this, and bigger than
 * the inputs they come from, stay as nodes and are computed at run time. */
#define FOLD_MAX_BYTES (1 << 20)

/* Parameters stay trainable: a node reading one is folded only when its
 * outputs carry no gradient (Shape of a weight, a Range). */
static int foldable(const IrGraph *g, const IrNode *n)
{
    const IrOpInfo *info = &ir_ops[n->op];
    if (!info->eval) return 0;
    int64_t in_bytes = 0, out_bytes = 0;
    for (int i = 0; i < n->nin; i++) {
        if (n->in[i] < 0) continue;
        const IrValue *v = &g->values[n->in[i]];
        if (info->flags & OPF_SHAPE_ONLY) {
            if (v->rank < 0) return 0;
            continue;
        }
        if (!v->data) return 0;
        if (v->role == IR_PARAM && !(info->flags & OPF_NO_GRAD)) return 0;
        in_bytes += ir_value_bytes(v);
    }
    for (int i = 0; i < n->nout; i++) out_bytes += ir_value_bytes(&g->values[n->out[i]]);
    return out_bytes <= FOLD_MAX_BYTES || out_bytes <= in_bytes;
}

/* Keep the nodes some graph output depends on. */
static void drop_dead(IrGraph *g, const int *order, int count)
{
    char *live = ir_xcalloc(g->nvalues, 1);
    for (int i = 0; i < g->noutputs; i++) live[g->outputs[i]] = 1;
    for (int k = count - 1; k >= 0; k--) {
        IrNode *n = &g->nodes[order[k]];
        if (n->dead) continue;
        int needed = 0;
        for (int j = 0; j < n->nout; j++) needed |= live[n->out[j]];
        if (!needed) {
            n->dead = 1;
            continue;
        }
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0) live[n->in[j]] = 1;
    }
    free(live);
}

int onnx_fold_infer(IrGraph *g)
{
    int *order = ir_xmalloc((g->nnodes ? g->nnodes : 1) * sizeof(int));
    int count = ir_topo_order(g, order);
    int rc = -1;
    if (count < 0) goto out;
    for (int k = 0; k < count; k++) {
        int id = order[k];
        if (ir_infer_node(g, id) < 0) goto out;
        IrNode *n = &g->nodes[id];
        /* a Cast to the type it already has (exporters write them) is a view */
        if (n->op == IR_OP_Cast && n->in[0] >= 0 && g->values[n->in[0]].dtype == g->values[n->out[0]].dtype) {
            n->op = IR_OP_Identity;
            n->nattr = 0;
        }
        if (!foldable(g, n)) continue;
        if (ir_ops[n->op].eval(g, id) < 0) goto out;
        for (int j = 0; j < n->nout; j++) {
            IrValue *v = &g->values[n->out[j]];
            IR_ASSERT(v->data);
            v->role = IR_CONST;
            v->producer = -1;
        }
        n->dead = 1;
    }
    drop_dead(g, order, count);
    int live = 0;
    for (int k = 0; k < count; k++)
        if (!g->nodes[order[k]].dead) order[live++] = order[k];
    ir_reorder(g, order, live);
    ir_compact(g);
    rc = ir_check_declared(g);
out:
    free(order);
    return rc;
}
