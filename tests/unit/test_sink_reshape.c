/* Reshapes sunk below unary elementwise ops (ir/sink_reshape.c) on a
 * hand-built GPT-2 MLP tail: Add (a product plus its bias), Reshape, Gelu,
 * Reshape, Cast. Both Reshapes pass the ops after them, so that the Add,
 * the Gelu and the Cast read and write one shape (codegen fuses them); the
 * graph's output is the same value, of the same shape and name, produced by
 * the last Reshape; the other outputs keep the names of their nodes; the
 * graph verifies. A
 * Reshape whose output two nodes read, or that is a graph output, stays,
 * and so does one before a binary op. */
#include <string.h>

#include "check.h"
#include "hand_graph.h"

#define V(id) (&g->values[id])

static int input(const char *name, int rank, const int64_t *dims)
{
    int v = ir_value_new(g, name, IR_INPUT);
    ir_value_set_shape(V(v), IR_F32, rank, dims);
    g->inputs = realloc(g->inputs, (size_t)(g->ninputs + 1) * sizeof(int));
    g->inputs[g->ninputs++] = v;
    return v;
}

static int shape_const(int rank, const int64_t *dims)
{
    int v = ir_value_new(g, ir_unique_name(g, "shape"), IR_CONST);
    ir_value_set_shape(V(v), IR_I64, 1, (int64_t[]){rank});
    int64_t *p = malloc((size_t)rank * sizeof *p);
    memcpy(p, dims, (size_t)rank * sizeof *p);
    ir_value_set_data(g, v, p);
    return v;
}

/* node o on in[0..nin) writing a new value named `name`, its shape inferred */
static int node(IrOp o, const char *name, int nin, const int *in)
{
    int out = ir_value_new(g, name, IR_ACTIVATION);
    int n = ir_node_new(g, o, name, nin, in, 1, &out);
    CHECK(ir_infer_node(g, n) == 0);
    return out;
}

static int reshape(const char *name, int x, int rank, const int64_t *dims)
{
    return node(IR_OP_Reshape, name, 2, (int[]){x, shape_const(rank, dims)});
}

static const IrNode *producer(int v) { return &g->nodes[V(v)->producer]; }

static void test_mlp_tail(void)
{
    g = ir_graph_new("t.onnx");
    g->opset = 17;
    int x = input("x", 2, (int64_t[]){6, 4}), b = input("bias", 1, (int64_t[]){4});
    int a = node(IR_OP_Add, "add", 2, (int[]){x, b});
    int r1 = reshape("r1", a, 3, (int64_t[]){2, 3, 4});
    int ge = node(IR_OP_Gelu, "gelu", 1, &r1);
    int r2 = reshape("r2", ge, 2, (int64_t[]){6, 4});
    int out = ir_value_new(g, "cast", IR_ACTIVATION);
    int cn = ir_node_new(g, IR_OP_Cast, "cast", 1, &r2, 1, &out);
    ir_attr_set_int(g, cn, "to", IR_BF16);
    CHECK(ir_infer_node(g, cn) == 0);
    output(out);

    CHECK(ir_sink_reshapes(g) == 3);
    CHECK(ir_verify(g) == 0);
    /* the Gelu reads the Add, the Cast the Gelu, all [6, 4]; two Reshapes make the output */
    int gv = ir_value_find(g, "gelu"), cv = ir_value_find(g, "cast");
    CHECK(cv == out && V(out)->rank == 2 && V(out)->dims[0] == 6 && V(out)->dtype == IR_BF16);
    CHECK(producer(gv)->op == IR_OP_Gelu && producer(gv)->in[0] == a);
    CHECK(V(gv)->rank == 2 && V(gv)->dims[0] == 6 && V(gv)->dims[1] == 4);
    int cast_in = -1;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == IR_OP_Cast) cast_in = g->nodes[i].in[0];
    CHECK(cast_in == gv);
    const IrNode *last = producer(out);
    CHECK(last->op == IR_OP_Reshape && producer(last->in[0])->op == IR_OP_Reshape);
    CHECK(producer(producer(last->in[0])->in[0])->op == IR_OP_Cast);
    /* each node's output is named after it: the Reshapes' after r1 and r2 */
    CHECK(!strcmp(V(last->in[0])->name, "r1") && !strcmp(V(producer(gv)->in[0])->name, "add"));
    /* nodes in order: every input produced earlier */
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin; j++) {
            int v = g->nodes[i].in[j];
            CHECK(v < 0 || V(v)->producer < i);
        }
    ir_graph_free(g);
}

static void test_stays(void)
{
    g = ir_graph_new("t.onnx");
    g->opset = 17;
    int x = input("x", 2, (int64_t[]){6, 4});
    /* read twice */
    int r1 = reshape("r1", x, 3, (int64_t[]){2, 3, 4});
    output(node(IR_OP_Relu, "relu", 1, &r1));
    output(node(IR_OP_Neg, "neg", 1, &r1));
    /* a graph output */
    int r2 = reshape("r2", x, 1, (int64_t[]){24});
    output(r2);
    output(node(IR_OP_Relu, "relu2", 1, &r2));
    /* before a binary op */
    int r3 = reshape("r3", x, 3, (int64_t[]){3, 2, 4});
    output(node(IR_OP_Add, "add", 2, (int[]){r3, r3}));
    int n0 = g->nnodes;
    CHECK(ir_sink_reshapes(g) == 0);
    CHECK(g->nnodes == n0 && ir_verify(g) == 0);
    CHECK(V(ir_value_find(g, "relu"))->rank == 3 && producer(ir_value_find(g, "relu"))->in[0] == r1);
    ir_graph_free(g);
}

int main(void)
{
    RUN(test_mlp_tail);
    RUN(test_stays);
    return CHECK_DONE();
}
