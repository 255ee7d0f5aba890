/* Matching helpers of the fusions that find an op written out in
 * elementwise ONNX ops (fuse_gelu.c, fuse_rmsnorm.c). Internal to optimizer/. */
#ifndef LOOM_FUSE_MATCH_H
#define LOOM_FUSE_MATCH_H

#include <math.h>

#include "optimizer.h"

#define V(id) (&g->values[id])

/* v is a float scalar constant within 1e-5 of want */
static inline int is_const(IrGraph *g, int v, double want)
{
    double x;
    return v >= 0 && V(v)->role == IR_CONST && V(v)->data && ir_dtype_is_float(V(v)->dtype) &&
           ir_value_numel(V(v)) == 1 && ir_const_scalar(g, v, &x) == 0 && fabs(x - want) <= 1e-5 * fabs(want);
}

/* The node producing v when it has op `op`, is alive and v's only reader is
 * a node (not a graph output); else -1. */
static inline int single(const IrGraph *g, const IrUses *u, int v, IrOp op)
{
    if (v < 0 || V(v)->is_output || u->start[v + 1] - u->start[v] != 1) return -1;
    int p = V(v)->producer;
    return p >= 0 && !g->nodes[p].dead && g->nodes[p].op == op ? p : -1;
}

/* The reader of v, when it is v's only one and has op `op`; else -1. */
static inline int reader(const IrGraph *g, const IrUses *u, int v, IrOp op)
{
    if (V(v)->is_output || u->start[v + 1] - u->start[v] != 1) return -1;
    int n = u->node[u->start[v]];
    return !g->nodes[n].dead && g->nodes[n].op == op ? n : -1;
}

/* Binary node n reads v and a constant within 1e-5 of c (either order). */
static inline int with_const(IrGraph *g, int n, int v, double c)
{
    const IrNode *nd = &g->nodes[n];
    return nd->nin == 2 && ((nd->in[0] == v && is_const(g, nd->in[1], c)) ||
                            (nd->in[1] == v && is_const(g, nd->in[0], c)));
}

/* The other input of binary node n than v (-1 when n does not read v). */
static inline int other(const IrGraph *g, int n, int v)
{
    const IrNode *nd = &g->nodes[n];
    return nd->in[0] == v ? nd->in[1] : nd->in[1] == v ? nd->in[0] : -1;
}

#endif
