/* The IR verifier: the structural invariants every pass must leave intact.
 * It runs between passes (QBE style), so a pass that breaks the graph is
 * caught at the pass that broke it rather than three passes later. It is a
 * check for loom's own bugs, but it must also reject any malformed graph
 * cleanly: it never trusts an id before range-checking it, and it reports the
 * first broken thing it finds through ir_fail. Semantic checks (shapes
 * agreeing with an op's rules) belong to shape inference, not here. */
#include <stdlib.h>

#include "ir.h"

/* Checks that need no other value or node to be valid first. */
static int verify_values(IrGraph *g)
{
    for (int i = 0; i < g->nvalues; i++) {
        const IrValue *v = &g->values[i];
        if (!v->name) return ir_fail(g, -1, "invalid IR: value %d has no name", i);
        if (ir_value_find(g, v->name) != i)
            return ir_fail(g, -1, "invalid IR: two values are named '%s' (ids %d and %d)", v->name,
                           ir_value_find(g, v->name), i);
        if ((unsigned)v->role > IR_LOSS)
            return ir_fail(g, -1, "invalid IR: value '%s' has role %d, out of range", v->name,
                           (int)v->role);
        if (v->dtype < 0 || v->dtype >= IR_NDTYPE)
            return ir_fail(g, -1, "invalid IR: value '%s' has dtype %d, out of range", v->name,
                           (int)v->dtype);
        if (v->rank < -1 || v->rank > IR_MAX_RANK)
            return ir_fail(g, -1, "invalid IR: value '%s' has rank %d (want -1..%d)", v->name,
                           v->rank, IR_MAX_RANK);
        for (int d = 0; d < v->rank; d++)
            if (v->dims[d] < 0)
                return ir_fail(g, -1, "invalid IR: value '%s' has dim %d = %lld, negative",
                               v->name, d, (long long)v->dims[d]);
        if (v->alias < -1 || v->alias >= g->nvalues || v->alias == i)
            return ir_fail(g, -1, "invalid IR: value '%s' aliases value id %d, out of range",
                           v->name, v->alias);
        if (v->producer < -1 || v->producer >= g->nnodes)
            return ir_fail(g, -1, "invalid IR: value '%s' names producer node %d, out of range (%d nodes)",
                           v->name, v->producer, g->nnodes);
        if (v->role == IR_PARAM || v->role == IR_CONST) {
            if (v->rank < 0)
                return ir_fail(g, -1, "invalid IR: %s '%s' has no shape", ir_role_name(v->role),
                               v->name);
            /* an empty tensor may legitimately have no contents */
            if (!v->data && ir_value_numel(v) > 0)
                return ir_fail(g, -1, "invalid IR: %s '%s' has no data", ir_role_name(v->role),
                               v->name);
        }
    }
    return 0;
}

/* Ranges of node fields; then which node produces which value. */
static int verify_nodes(IrGraph *g, int *made_by)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        /* ir_fail(g, i, ...) prints the node's name and op, so check those first */
        if (!n->name) return ir_fail(g, -1, "invalid IR: node %d has no name", i);
        if ((unsigned)n->op >= IR_NOPS)
            return ir_fail(g, -1, "invalid IR: node '%s' has op %d, out of range", n->name,
                           (int)n->op);
        const IrOpInfo *op = &ir_ops[n->op];
        if (n->nin < op->min_in || (op->max_in >= 0 && n->nin > op->max_in))
            return ir_fail(g, i, "invalid IR: %d inputs, the op takes %d to %d", n->nin,
                           op->min_in, op->max_in);
        if (n->nout < op->min_out || (op->max_out >= 0 && n->nout > op->max_out))
            return ir_fail(g, i, "invalid IR: %d outputs, the op gives %d to %d", n->nout,
                           op->min_out, op->max_out);
        if ((n->nin && !n->in) || (n->nout && !n->out) || (n->nattr && !n->attr))
            return ir_fail(g, i, "invalid IR: operand or attribute list missing");
        if ((unsigned)n->phase > IR_LOWBIT)
            return ir_fail(g, i, "invalid IR: phase %d, out of range", (int)n->phase);
        if (n->fwd < -1 || n->fwd >= g->nnodes || (n->fwd >= 0 && n->phase != IR_BACKWARD && n->phase != IR_RECOMPUTE))
            return ir_fail(g, i, "invalid IR: differentiates or recomputes node %d, out of "
                           "range, or not a backward or recompute node", n->fwd);
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] < -1 || n->in[j] >= g->nvalues)
                return ir_fail(g, i, "invalid IR: input %d is value id %d, out of range (%d values)",
                               j, n->in[j], g->nvalues);
        for (int j = 0; j < n->nattr; j++) {
            const IrAttr *a = &n->attr[j];
            if (!a->name) return ir_fail(g, i, "invalid IR: attribute %d has no name", j);
            if (a->kind == IR_ATTR_TENSOR) {
                int t = a->u.tensor;
                if (t < 0 || t >= g->nvalues)
                    return ir_fail(g, i, "invalid IR: attribute '%s' names value id %d, out of range",
                                   a->name, t);
                if (g->values[t].role != IR_CONST)
                    return ir_fail(g, i, "invalid IR: attribute '%s' names '%s', not a constant",
                                   a->name, g->values[t].name);
            }
        }
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0 || v >= g->nvalues)
                return ir_fail(g, i, "invalid IR: output %d is value id %d, out of range (%d values)",
                               j, v, g->nvalues);
            if (made_by[v] == i)
                return ir_fail(g, i, "invalid IR: output '%s' is listed twice", g->values[v].name);
            if (made_by[v] >= 0)
                return ir_fail(g, i, "invalid IR: value '%s' is also produced by node '%s'",
                               g->values[v].name, g->nodes[made_by[v]].name);
            made_by[v] = i;
            if (g->values[v].producer != i)
                return ir_fail(g, i, "invalid IR: output '%s' records producer %d, not this node",
                               g->values[v].name, g->values[v].producer);
        }
    }
    return 0;
}

/* Whether value v may be read: computed by a live node, fed at run time, or
 * holding contents. node is the reader, for the message (-1: a graph output). */
static int verify_defined(IrGraph *g, int v, const int *made_by, const char *is_input, int node,
                          const char *what)
{
    const IrValue *val = &g->values[v];
    if (made_by[v] >= 0) return 0;
    switch (val->role) {
    case IR_INPUT:
        if (is_input[v]) return 0;
        return ir_fail(g, node, "invalid IR: %s '%s' has role input but is not a graph input",
                       what, val->name);
    case IR_PARAM:
    case IR_CONST: return 0; /* data checked in verify_values; a folded one may name its old node */
    case IR_OPT_STATE: return 0; /* training state the program initializes (ir/train.h) */
    default:
        if (val->producer >= 0)
            return ir_fail(g, node, "invalid IR: %s '%s' comes from node '%s', which was removed",
                           what, val->name, g->nodes[val->producer].name);
        return ir_fail(g, node,
                       "invalid IR: %s '%s' (%s) has no producer and is not a graph input, "
                       "parameter or constant",
                       what, val->name, ir_role_name(val->role));
    }
}

int ir_verify(IrGraph *g)
{
    if (g->nvalues < 0 || g->nnodes < 0 || g->ninputs < 0 || g->noutputs < 0)
        return ir_fail(g, -1, "invalid IR: negative count");
    if (verify_values(g)) return -1;

    int rc = -1;
    int nv = g->nvalues ? g->nvalues : 1;
    int *made_by = ir_xmalloc(nv * sizeof *made_by);
    char *is_input = ir_xcalloc(nv, 1);
    int *order = ir_xmalloc((g->nnodes ? g->nnodes : 1) * sizeof *order);
    for (int i = 0; i < g->nvalues; i++) made_by[i] = -1;

    for (int i = 0; i < g->ninputs; i++) {
        int v = g->inputs[i];
        if (v < 0 || v >= g->nvalues) {
            ir_fail(g, -1, "invalid IR: graph input %d is value id %d, out of range", i, v);
            goto out;
        }
        const IrValue *val = &g->values[v];
        if (is_input[v]) {
            ir_fail(g, -1, "invalid IR: graph input '%s' is listed twice", val->name);
            goto out;
        }
        is_input[v] = 1;
        if (val->role != IR_INPUT) {
            ir_fail(g, -1, "invalid IR: graph input '%s' has role %s", val->name,
                    ir_role_name(val->role));
            goto out;
        }
        if (val->producer != -1) {
            ir_fail(g, -1, "invalid IR: graph input '%s' has a producer (node %d)", val->name,
                    val->producer);
            goto out;
        }
    }
    if (verify_nodes(g, made_by)) goto out;
    for (int v = 0; v < g->nvalues; v++) {
        const IrValue *val = &g->values[v];
        int p = val->producer;
        if (p >= 0 && !g->nodes[p].dead && made_by[v] != p) {
            ir_fail(g, -1, "invalid IR: value '%s' records producer '%s', which does not list it "
                    "as an output", val->name, g->nodes[p].name);
            goto out;
        }
        if (made_by[v] >= 0 && (val->role == IR_INPUT || val->role == IR_PARAM ||
                                val->role == IR_CONST)) {
            ir_fail(g, made_by[v], "invalid IR: output '%s' is a %s, yet this node computes it",
                    val->name, ir_role_name(val->role));
            goto out;
        }
    }

    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0 && verify_defined(g, n->in[j], made_by, is_input, i, "input"))
                goto out;
    }
    for (int i = 0; i < g->noutputs; i++) {
        int v = g->outputs[i];
        if (v < 0 || v >= g->nvalues) {
            ir_fail(g, -1, "invalid IR: graph output %d is value id %d, out of range", i, v);
            goto out;
        }
        if (verify_defined(g, v, made_by, is_input, -1, "graph output")) goto out;
    }
    /* every id is valid now, so the walk is safe; it reports a cycle itself */
    if (ir_topo_order(g, order) < 0) goto out;
    rc = 0;
out:
    free(order);
    free(is_input);
    free(made_by);
    return rc;
}
