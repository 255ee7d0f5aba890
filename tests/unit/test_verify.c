/* Unit tests of the IR verifier (ir/verify.c): well-formed graphs pass, and
 * each hand-broken graph is rejected with a message naming what is broken. */
#include <stdlib.h>

#include "check.h"
#include "ir.h"

/* x:input[2,3] -> MatMul(x, @w[3,4]) -> %y -> Relu -> %z (output) */
typedef struct {
    IrGraph *g;
    int x, w, y, z;
    int mm, relu;
} Mlp;

static Mlp mlp(void)
{
    Mlp m;
    m.g = ir_graph_new("t.onnx");
    IrGraph *g = m.g;
    g->opset = 17;
    m.x = ir_value_new(g, "x", IR_INPUT);
    m.w = ir_value_new(g, "w", IR_PARAM);
    m.y = ir_value_new(g, "y", IR_ACTIVATION);
    m.z = ir_value_new(g, "z", IR_ACTIVATION);
    ir_value_set_shape(&g->values[m.x], IR_F32, 2, (int64_t[]){2, 3});
    ir_value_set_shape(&g->values[m.w], IR_F32, 2, (int64_t[]){3, 4});
    ir_value_set_data(g, m.w, calloc(12, sizeof(float)));
    ir_value_set_shape(&g->values[m.y], IR_F32, 2, (int64_t[]){2, 4});
    ir_value_set_shape(&g->values[m.z], IR_F32, 2, (int64_t[]){2, 4});
    m.mm = ir_node_new(g, IR_OP_MatMul, "mm", 2, (int[]){m.x, m.w}, 1, &m.y);
    m.relu = ir_node_new(g, IR_OP_Relu, "relu", 1, &m.y, 1, &m.z);
    g->inputs = ir_xmalloc(sizeof(int));
    g->inputs[0] = m.x;
    g->ninputs = 1;
    g->outputs = ir_xmalloc(sizeof(int));
    g->outputs[0] = m.z;
    g->noutputs = 1;
    return m;
}

/* ir_verify must fail on g with a message containing want. */
static void expect_fail(IrGraph *g, const char *want)
{
    g->err[0] = 0;
    CHECK_EQ_INT(ir_verify(g), -1);
    CHECK_STR_CONTAINS(g->err, want);
    CHECK_STR_CONTAINS(g->err, "t.onnx: ");
    ir_graph_free(g);
}

static void test_good_graph_passes(void)
{
    Mlp m = mlp();
    CHECK_EQ_INT(ir_verify(m.g), 0);
    CHECK_EQ_INT(m.g->err[0], 0);
    ir_graph_free(m.g);
}

static void test_good_graph_with_optional_and_dead(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    /* Clip with the min omitted, a max constant; a dead node nobody reads */
    int hi = ir_value_new(g, "hi", IR_CONST);
    ir_value_set_shape(&g->values[hi], IR_F32, 0, NULL);
    ir_value_set_data(g, hi, calloc(1, sizeof(float)));
    int c = ir_value_new(g, "c", IR_ACTIVATION);
    ir_value_set_shape(&g->values[c], IR_F32, 2, (int64_t[]){2, 4});
    ir_node_new(g, IR_OP_Clip, "clip", 3, (int[]){m.z, -1, hi}, 1, &c);
    int d = ir_value_new(g, "d", IR_ACTIVATION);
    int dead = ir_node_new(g, IR_OP_Relu, "gone", 1, &m.y, 1, &d);
    g->nodes[dead].dead = 1;
    /* an empty constant needs no contents */
    int e = ir_value_new(g, "empty", IR_CONST);
    ir_value_set_shape(&g->values[e], IR_I64, 1, (int64_t[]){0});
    g->outputs[0] = c;
    CHECK_EQ_INT(ir_verify(g), 0);
    CHECK_EQ_INT(g->err[0], 0);
    ir_graph_free(g);
}

static void test_input_id_out_of_range(void)
{
    Mlp m = mlp();
    m.g->nodes[m.relu].in[0] = 99;
    expect_fail(m.g, "node 'relu' (Relu, opset 17): invalid IR: input 0 is value id 99, out of range");
}

static void test_negative_input_id(void)
{
    Mlp m = mlp();
    m.g->nodes[m.relu].in[0] = -5;
    expect_fail(m.g, "input 0 is value id -5");
}

static void test_wrong_input_count(void)
{
    Mlp m = mlp();
    m.g->nodes[m.mm].nin = 1;
    expect_fail(m.g, "node 'mm' (MatMul, opset 17): invalid IR: 1 inputs, the op takes 2 to 2");
}

static void test_wrong_output_count(void)
{
    Mlp m = mlp();
    m.g->nodes[m.relu].nout = 0;
    expect_fail(m.g, "0 outputs, the op gives 1 to 1");
}

static void test_op_out_of_range(void)
{
    Mlp m = mlp();
    m.g->nodes[m.relu].op = (IrOp)999;
    expect_fail(m.g, "node 'relu' has op 999, out of range");
}

static void test_value_produced_twice(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    ir_node_new(g, IR_OP_Relu, "again", 1, &m.x, 1, &m.y);
    g->values[m.y].producer = m.mm; /* ir_node_new pointed it at the newcomer */
    expect_fail(g, "value 'y' is also produced by node 'mm'");
}

static void test_output_listed_twice(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    int s = ir_value_new(g, "s", IR_ACTIVATION);
    int split = ir_node_new(g, IR_OP_Split, "split", 1, &m.z, 2, (int[]){s, s});
    (void)split;
    expect_fail(g, "output 's' is listed twice");
}

static void test_producer_mismatch(void)
{
    Mlp m = mlp();
    m.g->values[m.y].producer = m.relu;
    expect_fail(m.g, "node 'mm' (MatMul, opset 17): invalid IR: output 'y' records producer 1");
}

static void test_producer_does_not_list_value(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    int q = ir_value_new(g, "q", IR_ACTIVATION);
    g->values[q].producer = m.mm;
    expect_fail(g, "value 'q' records producer 'mm', which does not list it");
}

static void test_producer_out_of_range(void)
{
    Mlp m = mlp();
    m.g->values[m.z].producer = 7;
    expect_fail(m.g, "value 'z' names producer node 7, out of range");
}

static void test_read_without_producer(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    int h = ir_value_new(g, "h", IR_ACTIVATION);
    g->nodes[m.relu].in[0] = h;
    expect_fail(g, "node 'relu' (Relu, opset 17): invalid IR: input 'h' (activation) has no "
                   "producer and is not a graph input, parameter or constant");
}

static void test_read_from_dead_node(void)
{
    Mlp m = mlp();
    m.g->nodes[m.mm].dead = 1;
    expect_fail(m.g, "input 'y' comes from node 'mm', which was removed");
}

static void test_input_role_not_listed(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    int u = ir_value_new(g, "u", IR_INPUT);
    g->nodes[m.mm].in[0] = u;
    expect_fail(g, "input 'u' has role input but is not a graph input");
}

static void test_graph_input_with_producer(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    g->inputs[0] = m.y;
    g->values[m.y].role = IR_INPUT;
    expect_fail(g, "graph input 'y' has a producer");
}

static void test_graph_input_wrong_role(void)
{
    Mlp m = mlp();
    m.g->inputs[0] = m.w;
    expect_fail(m.g, "graph input 'w' has role param");
}

static void test_graph_input_listed_twice(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    g->inputs = ir_xrealloc(g->inputs, 2 * sizeof(int));
    g->inputs[1] = m.x;
    g->ninputs = 2;
    expect_fail(g, "graph input 'x' is listed twice");
}

static void test_const_computed_by_node(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    g->values[m.y].role = IR_CONST;
    ir_value_set_data(g, m.y, calloc(8, sizeof(float)));
    expect_fail(g, "node 'mm' (MatMul, opset 17): invalid IR: output 'y' is a const, yet this node "
                   "computes it");
}

static void test_cycle(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    int a = ir_value_new(g, "a", IR_ACTIVATION), b = ir_value_new(g, "b", IR_ACTIVATION);
    ir_node_new(g, IR_OP_Relu, "ra", 1, &b, 1, &a);
    ir_node_new(g, IR_OP_Relu, "rb", 1, &a, 1, &b);
    expect_fail(g, "cycle");
}

static void test_graph_output_out_of_range(void)
{
    Mlp m = mlp();
    m.g->outputs[0] = 42;
    expect_fail(m.g, "graph output 0 is value id 42, out of range");
}

static void test_graph_output_undefined(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    int h = ir_value_new(g, "h", IR_ACTIVATION);
    g->outputs[0] = h;
    expect_fail(g, "graph output 'h' (activation) has no producer");
}

static void test_param_without_data(void)
{
    Mlp m = mlp();
    ir_value_set_data(m.g, m.w, NULL);
    expect_fail(m.g, "param 'w' has no data");
}

static void test_const_without_shape(void)
{
    Mlp m = mlp();
    IrGraph *g = m.g;
    int c = ir_value_new(g, "c", IR_CONST);
    (void)c;
    expect_fail(g, "const 'c' has no shape");
}

static void test_bad_shape_fields(void)
{
    Mlp m = mlp();
    m.g->values[m.y].dims[1] = -3;
    expect_fail(m.g, "value 'y' has dim 1 = -3, negative");
    m = mlp();
    m.g->values[m.z].rank = IR_MAX_RANK + 1;
    expect_fail(m.g, "value 'z' has rank 9");
    m = mlp();
    m.g->values[m.z].dtype = (IrDType)77;
    expect_fail(m.g, "value 'z' has dtype 77");
}

static void test_tensor_attr_checked(void)
{
    Mlp m = mlp();
    ir_attr_set_tensor(m.g, m.relu, "value", 1234);
    expect_fail(m.g, "attribute 'value' names value id 1234, out of range");
    m = mlp();
    ir_attr_set_tensor(m.g, m.relu, "value", m.y);
    expect_fail(m.g, "attribute 'value' names 'y', not a constant");
}

static void test_duplicate_names(void)
{
    Mlp m = mlp();
    m.g->values[m.z].name = m.g->values[m.y].name;
    expect_fail(m.g, "two values are named 'y'");
}

int main(void)
{
    RUN(test_good_graph_passes);
    RUN(test_good_graph_with_optional_and_dead);
    RUN(test_input_id_out_of_range);
    RUN(test_negative_input_id);
    RUN(test_wrong_input_count);
    RUN(test_wrong_output_count);
    RUN(test_op_out_of_range);
    RUN(test_value_produced_twice);
    RUN(test_output_listed_twice);
    RUN(test_producer_mismatch);
    RUN(test_producer_does_not_list_value);
    RUN(test_producer_out_of_range);
    RUN(test_read_without_producer);
    RUN(test_read_from_dead_node);
    RUN(test_input_role_not_listed);
    RUN(test_graph_input_with_producer);
    RUN(test_graph_input_wrong_role);
    RUN(test_graph_input_listed_twice);
    RUN(test_const_computed_by_node);
    RUN(test_cycle);
    RUN(test_graph_output_out_of_range);
    RUN(test_graph_output_undefined);
    RUN(test_param_without_data);
    RUN(test_const_without_shape);
    RUN(test_bad_shape_fields);
    RUN(test_tensor_attr_checked);
    RUN(test_duplicate_names);
    return CHECK_DONE();
}
