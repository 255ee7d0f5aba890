/* Hand-built graphs for the fusion tests (test_fuse_gelu.c,
 * test_fuse_rmsnorm.c): the graph under construction g, float scalar
 * constants, one-output nodes, graph outputs. Include after check.h. */
#ifndef LOOM_HAND_GRAPH_H
#define LOOM_HAND_GRAPH_H

#include <stdlib.h>

#include "ir.h"

static IrGraph *g;

static inline int scalar(double v)
{
    int id = ir_value_new(g, ir_unique_name(g, "c"), IR_CONST);
    ir_value_set_shape(&g->values[id], IR_F32, 0, NULL);
    float *p = malloc(sizeof *p);
    *p = (float)v;
    ir_value_set_data(g, id, p);
    return id;
}

/* o(a) or o(a, b) (b < 0: unary), its output */
static inline int op(IrOp o, int a, int b)
{
    int out = ir_value_new(g, ir_unique_name(g, "t"), IR_ACTIVATION), in[2] = {a, b};
    ir_node_new(g, o, ir_unique_name(g, "n"), b >= 0 ? 2 : 1, in, 1, &out);
    return out;
}

static inline void output(int y)
{
    g->outputs = realloc(g->outputs, (size_t)(g->noutputs + 1) * sizeof(int));
    g->outputs[g->noutputs++] = y;
    g->values[y].is_output = 1;
}

#endif
