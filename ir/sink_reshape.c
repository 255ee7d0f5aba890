/* Reshapes sunk below unary elementwise ops (ir_sink_reshapes, ir.h).
 *
 * A Reshape between two elementwise ops keeps them apart: codegen fuses a
 * chain of elementwise nodes of one shape into a loop, and a Reshape changes
 * the shape. Exported models put Reshapes between a Linear's product and its
 * activation (GPT-2's MLP: Gemm, bias Add, Reshape to [B, T, 4C], GELU,
 * Reshape back to [B T, 4C], Gemm), and --precision bf16 adds a Cast on
 * either side, so the bias Add, the GELU and the Cast to bf16 ran as three
 * passes over a [B T, 4C] tensor where one reads the product and writes the
 * bf16 operand of the next.
 *
 * A unary elementwise op U reading a Reshape's output y, y's only reader,
 * computes the same elements in the same order on the Reshape's input x
 * (a Reshape keeps the row-major order): so U reads x instead and writes y,
 * now shaped like x, and the Reshape reshapes U's result into U's old output
 * value z, whose readers see the same value as before (y and z trade names,
 * so each node's output keeps the name it had, unless z is a graph output,
 * whose name is the program's interface). U's other inputs (Clip's
 * bounds) must be single elements that broadcast to no higher rank. Repeated
 * until no Reshape moves, so a Reshape passes a chain of such ops, and two
 * Reshapes in a row both pass the ops after them. The values computed do
 * not change by a bit; only which nodes codegen can fuse. */
#include <stdlib.h>

#include "ir.h"
#include "ops.h"

/* Whether unary elementwise node c can run on x, the input of the Reshape that feeds it y */
static int sinkable(const IrGraph *g, int c, int y, int x)
{
    const IrNode *n = &g->nodes[c];
    if (n->dead || n->nout != 1 || n->out[0] < 0 || n->nin < 1 || n->in[0] != y) return 0;
    unsigned f = ir_ops[n->op].flags;
    if (!(f & OPF_ELEMWISE) || (f & OPF_VIEW)) return 0;
    for (int j = 1; j < n->nin; j++) {
        int v = n->in[j];
        if (v < 0) continue;
        if (v == y || g->values[v].rank < 0 || g->values[v].rank > g->values[x].rank ||
            ir_value_numel(&g->values[v]) != 1)
            return 0;
    }
    return g->values[n->out[0]].rank >= 0;
}

/* One Reshape moved below its reader, or 0 when none can move. */
static int sink_one(IrGraph *g)
{
    IrUses u = ir_uses_build(g);
    int moved = 0;
    for (int r = 0; r < g->nnodes && !moved; r++) {
        IrNode *R = &g->nodes[r];
        if (R->dead || R->op != IR_OP_Reshape || R->nout != 1 || R->nin < 1 || R->in[0] < 0 || R->out[0] < 0)
            continue;
        int x = R->in[0], y = R->out[0];
        if (g->values[x].rank < 0 || g->values[y].is_output || u.start[y + 1] - u.start[y] != 1) continue;
        int c = u.node[u.start[y]];
        if (!sinkable(g, c, y, x)) continue;
        IrNode *U = &g->nodes[c];
        int z = U->out[0];
        IrValue *yv = &g->values[y];
        ir_value_set_shape(yv, g->values[z].dtype, g->values[x].rank, g->values[x].dims);
        yv->decl_rank = -1;
        U->in[0] = x, U->out[0] = y, yv->producer = c;
        R->in[0] = y, R->out[0] = z, g->values[z].producer = r;
        if (!g->values[z].is_output) ir_value_swap_names(g, y, z); /* each node's output keeps its name; an output's stays */
        moved = 1;
    }
    ir_uses_free(&u);
    return moved;
}

int ir_sink_reshapes(IrGraph *g)
{
    int moved = 0;
    while (sink_one(g)) moved++;
    if (!moved) return 0;
    /* each moved Reshape now reads the node after it */
    int *order = ir_xmalloc((size_t)(g->nnodes ? g->nnodes : 1) * sizeof *order);
    int count = ir_topo_order(g, order);
    if (count < 0) {
        free(order);
        return -1;
    }
    ir_reorder(g, order, count);
    free(order);
    return moved;
}
