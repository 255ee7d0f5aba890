/* GELU written out in elementwise ops becomes one Gelu node (optimizer.h).
 *
 * PyTorch exports GELU before ONNX had the op (opset 20) as its formula:
 *   tanh form (GPT-2's gelu_new):  0.5 x (1 + tanh(0.7978845608 (x + 0.044715 x^3)))
 *       Mul(x, 0.5), Pow(x, 3), Mul(., 0.044715), Add(x, .), Mul(., 0.79788),
 *       Tanh, Add(., 1), Mul(., .)
 *   erf form (nn.GELU):            x (1 + erf(x / sqrt 2)) 0.5
 *       Div(x, 1.41421) or Mul(x, 0.70711), Erf, Add(., 1), Mul(x, .), Mul(., 0.5)
 *       (or 0.5 x first, as in the tanh form)
 * In a training graph every intermediate of such a chain that its
 * gradient reads is stored (the tanh form keeps three tensors the size of
 * x per layer: 3.6 GB of GPT-2 124M's activations at batch 8 x 1024), and
 * recomputing the chain is eight passes over memory. As one Gelu, the
 * backward reads x alone and a recomputation is one pass. Constants must
 * match to 1e-5 relative; every intermediate must be read only inside the
 * chain. The result equals the chain's within float rounding (the same
 * formula, evaluated in one expression). */
#include <math.h>

#include "fuse_match.h"

/* 0.5 x as Mul(x, 0.5) read once, its node; else -1 */
static int half_of(IrGraph *g, const IrUses *u, int a, int x)
{
    int n = single(g, u, a, IR_OP_Mul);
    return n >= 0 && with_const(g, n, x, 0.5) ? n : -1;
}

/* Node y becomes Gelu(x); the chain's other nodes die. */
static void rewrite(IrGraph *g, int y, int x, int tanh_form, const int *dead, int ndead)
{
    IrNode *n = &g->nodes[y];
    n->op = IR_OP_Gelu;
    n->nin = 1;
    n->in[0] = x;
    if (tanh_form) ir_attr_set_string(g, y, "approximate", "tanh");
    for (int i = 0; i < ndead; i++) g->nodes[dead[i]].dead = 1;
}

/* The tanh form around Tanh node t; 1 when rewritten. */
static int tanh_gelu(IrGraph *g, const IrUses *u, int t)
{
    int d = g->nodes[t].in[0];
    int md = single(g, u, d, IR_OP_Mul);
    if (md < 0) return 0;
    int c = is_const(g, g->nodes[md].in[1], 0.7978845608028654) ? g->nodes[md].in[0]
            : is_const(g, g->nodes[md].in[0], 0.7978845608028654) ? g->nodes[md].in[1] : -1;
    int ac = single(g, u, c, IR_OP_Add);
    if (ac < 0) return 0;
    /* Add(x, b), b = Mul(Pow(x, 3), 0.044715) */
    for (int side = 0; side < 2; side++) {
        int x = g->nodes[ac].in[side], b = g->nodes[ac].in[1 - side];
        int mb = single(g, u, b, IR_OP_Mul);
        if (mb < 0) continue;
        int p = is_const(g, g->nodes[mb].in[1], 0.044715) ? g->nodes[mb].in[0]
                : is_const(g, g->nodes[mb].in[0], 0.044715) ? g->nodes[mb].in[1] : -1;
        int pw = single(g, u, p, IR_OP_Pow);
        if (pw < 0 || g->nodes[pw].in[0] != x || !is_const(g, g->nodes[pw].in[1], 3)) continue;
        int ae = reader(g, u, g->nodes[t].out[0], IR_OP_Add);
        if (ae < 0 || !with_const(g, ae, g->nodes[t].out[0], 1)) return 0;
        int y = reader(g, u, g->nodes[ae].out[0], IR_OP_Mul);
        if (y < 0) return 0;
        int ma = half_of(g, u, other(g, y, g->nodes[ae].out[0]), x);
        if (ma < 0) return 0;
        int dead[] = {ma, pw, mb, ac, md, t, ae};
        rewrite(g, y, x, 1, dead, 7);
        return 1;
    }
    return 0;
}

/* The erf form around Erf node r; 1 when rewritten. */
static int erf_gelu(IrGraph *g, const IrUses *u, int r)
{
    int q = g->nodes[r].in[0], x = -1, nq;
    if ((nq = single(g, u, q, IR_OP_Div)) >= 0 && is_const(g, g->nodes[nq].in[1], 1.4142135623730951))
        x = g->nodes[nq].in[0];
    else if ((nq = single(g, u, q, IR_OP_Mul)) >= 0 && with_const(g, nq, g->nodes[nq].in[0], 0.7071067811865476))
        x = g->nodes[nq].in[0];
    else if (nq >= 0 && with_const(g, nq, g->nodes[nq].in[1], 0.7071067811865476))
        x = g->nodes[nq].in[1];
    if (x < 0) return 0;
    int s = g->nodes[r].out[0];
    int as = reader(g, u, s, IR_OP_Add);
    if (as < 0 || !with_const(g, as, s, 1)) return 0;
    int m1 = reader(g, u, g->nodes[as].out[0], IR_OP_Mul);
    if (m1 < 0) return 0;
    int o = other(g, m1, g->nodes[as].out[0]);
    if (o == x) { /* x (1 + erf) then times 0.5 */
        int y = reader(g, u, g->nodes[m1].out[0], IR_OP_Mul);
        if (y < 0 || !with_const(g, y, g->nodes[m1].out[0], 0.5)) return 0;
        int dead[] = {nq, r, as, m1};
        rewrite(g, y, x, 0, dead, 4);
        return 1;
    }
    int ma = half_of(g, u, o, x); /* 0.5 x first */
    if (ma < 0) return 0;
    int dead[] = {nq, r, as, ma};
    rewrite(g, m1, x, 0, dead, 4);
    return 1;
}

int opt_fuse_gelu(IrGraph *g)
{
    IrUses u = ir_uses_build(g);
    int fused = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->phase != IR_FORWARD || !ir_dtype_is_float(V(n->out[0])->dtype)) continue;
        if (n->op == IR_OP_Tanh) fused += tanh_gelu(g, &u, i);
        else if (n->op == IR_OP_Erf) fused += erf_gelu(g, &u, i);
    }
    ir_uses_free(&u);
    if (!fused) return 0;
    ir_compact(g);
    /* the rewritten nodes' outputs keep their shapes; infer them again all the same */
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].op == IR_OP_Gelu && ir_infer_node(g, i) < 0) return -1;
    return 0;
}
