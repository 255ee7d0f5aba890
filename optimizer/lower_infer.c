/* Inference lowering: what only matters for training is rewritten into its
 * inference form before code generation, so that codegen never sees it.
 * Dropout is the identity at inference: it becomes an Identity view of its
 * input, and a mask output that something reads becomes a constant all-true
 * tensor. One whose training_mode input is true (or not a constant) and whose
 * ratio is not 0 really drops at random, and is refused. */
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"

static int lower_dropout(IrGraph *g, int node)
{
    IrNode *n = &g->nodes[node];
    double train = 0, ratio = 0.5;
    if (ir_in(n, 1) >= 0 && ir_const_scalar(g, n->in[1], &ratio) < 0) ratio = 1;
    if (ir_in(n, 2) >= 0 && (ir_const_scalar(g, n->in[2], &train) < 0 || train != 0) && ratio != 0)
        return ir_fail(g, node, "Dropout with training_mode true (or computed at run time) is not "
                       "supported in an inference program: it drops at random; export in eval mode");
    if (n->nout > 1) {
        IrValue *mask = &g->values[n->out[1]];
        if (mask->dtype != IR_BOOL)
            return ir_fail(g, node, "a Dropout mask of type %s (opset < 10) is not supported; "
                           "re-export with opset 10 or later", ir_dtype_name(mask->dtype));
        int64_t numel = ir_value_numel(mask);
        void *ones = ir_xmalloc((size_t)(numel ? numel : 1));
        memset(ones, 1, (size_t)(numel ? numel : 1));
        mask->role = IR_CONST;
        mask->producer = -1;
        ir_value_set_data(g, n->out[1], ones);
    }
    n->op = IR_OP_Identity;
    n->nin = 1;
    n->nout = 1;
    n->nattr = 0;
    return 0;
}

int opt_lower_infer(IrGraph *g)
{
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].op == IR_OP_Dropout && lower_dropout(g, i)) return -1;
    ir_compact(g); /* drops the ratio and training_mode inputs nothing reads now */
    return 0;
}
