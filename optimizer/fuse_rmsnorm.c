/* RMS normalization written out in elementwise ops becomes one loom.RMSNorm
 * node (optimizer.h, ir/train.h).
 *
 * PyTorch exports LLaMA's RMSNorm, weight * (x * rsqrt(mean(x^2) + eps)), as
 *   Pow(x, 2) (or Mul(x, x)), ReduceMean over the last axis keeping it,
 *   Add(., eps), Sqrt, then Div(1, .) and Mul(x, .), or Reciprocal and Mul,
 *   or Div(x, .); an Identity or two (float Casts folded away), and
 *   Mul(weight, .) in either order.
 * As separate ops that is five passes over x and a tensor of x's size
 * stored for each of three gradients; as one node, a pass (the cpu and cuda
 * kernels), and its backward reads x alone. The weight must hold one float
 * per element of the last axis; every intermediate must be read only inside
 * the chain. The result equals the chain's within float rounding (the mean
 * of squares in double, as the norm kernels sum). */
#include <string.h>

#include "fuse_match.h"

/* Its single reader through Identity nodes (at most two), which join dead. */
static int through_identity(const IrGraph *g, const IrUses *u, int v, int *dead, int *ndead)
{
    for (int k = 0; k < 2; k++) {
        int n = reader(g, u, v, IR_OP_Identity);
        if (n < 0) break;
        dead[(*ndead)++] = n;
        v = g->nodes[n].out[0];
    }
    return v;
}

/* The ReduceMean over the last axis (attribute or constant input), keeping it. */
static int last_axis_mean(IrGraph *g, int n)
{
    const IrNode *nd = &g->nodes[n];
    const IrValue *x = V(nd->in[0]);
    if (ir_attr_int(nd, "keepdims", 1) != 1 || x->rank < 1) return 0;
    int64_t cnt = 0, axis;
    const int64_t *axes = ir_attr_ints(nd, "axes", &cnt);
    if (!axes && nd->nin > 1 && nd->in[1] >= 0) {
        const IrValue *a = V(nd->in[1]);
        if (!a->data || a->dtype != IR_I64 || ir_value_numel(a) != 1) return 0;
        axis = *(const int64_t *)a->data;
    } else if (axes && cnt == 1) {
        axis = axes[0];
    } else {
        return 0;
    }
    return ir_norm_axis((int)axis, x->rank) == x->rank - 1;
}

/* The chain around ReduceMean node m; 1 when rewritten. */
static int rmsnorm(IrGraph *g, const IrUses *u, int m)
{
    int dead[12], nd = 0, x;
    if (!last_axis_mean(g, m)) return 0;
    int sq = g->nodes[m].in[0], p;
    if ((p = single(g, u, sq, IR_OP_Pow)) >= 0 && is_const(g, g->nodes[p].in[1], 2)) x = g->nodes[p].in[0];
    else if ((p = single(g, u, sq, IR_OP_Mul)) >= 0 && g->nodes[p].in[0] == g->nodes[p].in[1]) x = g->nodes[p].in[0];
    else return 0;
    const IrValue *xv = V(x);
    if (!ir_dtype_is_float(xv->dtype) || xv->rank < 1) return 0;
    dead[nd++] = p, dead[nd++] = m;
    int a = reader(g, u, g->nodes[m].out[0], IR_OP_Add);
    if (a < 0) return 0;
    int e = other(g, a, g->nodes[m].out[0]);
    double eps;
    if (e < 0 || V(e)->role != IR_CONST || !V(e)->data || ir_value_numel(V(e)) != 1 || ir_const_scalar(g, e, &eps) ||
        !(eps >= 0))
        return 0;
    dead[nd++] = a;
    int s = reader(g, u, g->nodes[a].out[0], IR_OP_Sqrt);
    if (s < 0) return 0;
    dead[nd++] = s;
    int sv = g->nodes[s].out[0], t = -1, r;
    if ((r = reader(g, u, sv, IR_OP_Div)) >= 0 && g->nodes[r].in[1] == sv) {
        if (g->nodes[r].in[0] == x) {
            t = r; /* Div(x, sqrt) */
        } else if (is_const(g, g->nodes[r].in[0], 1)) { /* Div(1, sqrt), then Mul(x, .) */
            dead[nd++] = r;
            t = reader(g, u, g->nodes[r].out[0], IR_OP_Mul);
            if (t < 0 || other(g, t, g->nodes[r].out[0]) != x) return 0;
        }
    } else if ((r = reader(g, u, sv, IR_OP_Reciprocal)) >= 0) {
        dead[nd++] = r;
        t = reader(g, u, g->nodes[r].out[0], IR_OP_Mul);
        if (t < 0 || other(g, t, g->nodes[r].out[0]) != x) return 0;
    }
    if (t < 0) return 0;
    dead[nd++] = t;
    int tv = through_identity(g, u, g->nodes[t].out[0], dead, &nd);
    int y = reader(g, u, tv, IR_OP_Mul);
    if (y < 0) return 0;
    int w = other(g, y, tv);
    const IrValue *wv = V(w);
    const IrValue *yv = V(g->nodes[y].out[0]);
    if (wv->dtype != xv->dtype || ir_value_numel(wv) != xv->dims[xv->rank - 1] || yv->rank != xv->rank ||
        memcmp(yv->dims, xv->dims, (size_t)xv->rank * sizeof *xv->dims))
        return 0;
    IrNode *n = &g->nodes[y];
    n->op = IR_OP_RMSNorm;
    n->in[0] = x, n->in[1] = w;
    ir_attr_set_int(g, y, "axis", xv->rank - 1);
    ir_attr_set_float(g, y, "epsilon", (float)eps);
    for (int i = 0; i < nd; i++) g->nodes[dead[i]].dead = 1;
    return 1;
}

int opt_fuse_rmsnorm(IrGraph *g)
{
    IrUses u = ir_uses_build(g);
    int fused = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (!n->dead && n->phase == IR_FORWARD && n->op == IR_OP_ReduceMean) fused += rmsnorm(g, &u, i);
    }
    ir_uses_free(&u);
    if (!fused) return 0;
    ir_compact(g);
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].op == IR_OP_RMSNorm && ir_infer_node(g, i) < 0) return -1;
    return 0;
}
