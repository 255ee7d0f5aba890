/* GELU fusion (optimizer/fuse_gelu.c) on hand-built chains: the tanh form
 * and three spellings of the erf form become one Gelu of x (tanh or not),
 * with the chain's output value kept; a wrong constant, an intermediate read
 * outside the chain, or an intermediate that is a graph output leave the
 * chain as it is. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hand_graph.h"
#include "ir.h"
#include "optimizer.h"

/* x: a graph input [2, 3] */
static int start(void)
{
    g = ir_graph_new("gelu.onnx");
    g->opset = 17;
    int x = ir_value_new(g, "x", IR_INPUT);
    ir_value_set_shape(&g->values[x], IR_F32, 2, (int64_t[]){2, 3});
    g->inputs = malloc(sizeof(int));
    g->inputs[g->ninputs++] = x;
    return x;
}

/* fuse; then expect (want) one Gelu of x writing y with the given form, or no Gelu and n0 nodes */
static void check(int x, int y, int want, int tanh_form, int n0)
{
    for (int i = 0; i < g->nnodes; i++) CHECK(ir_infer_node(g, i) == 0);
    CHECK(opt_fuse_gelu(g) == 0);
    int ngelu = 0, live = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        live++;
        if (n->op != IR_OP_Gelu) continue;
        ngelu++;
        CHECK(n->nin == 1 && !strcmp(g->values[n->in[0]].name, g->values[x].name));
        CHECK(!strcmp(g->values[n->out[0]].name, g->values[y].name) || !want);
        CHECK(!strcmp(ir_attr_string(n, "approximate", "none"), tanh_form ? "tanh" : "none"));
    }
    CHECK_EQ_INT(ngelu, want);
    if (!want) CHECK_EQ_INT(live, n0);
    ir_graph_free(g);
}

/* 0.5 x (1 + tanh(0.79788 (x + 0.044715 x^3))); bad: which constant to spoil */
static int tanh_chain(int x, int bad)
{
    int a = op(IR_OP_Mul, x, scalar(0.5));
    int p = op(IR_OP_Pow, x, scalar(3));
    int b = op(IR_OP_Mul, scalar(bad == 1 ? 0.05 : 0.044715), p);
    int c = op(IR_OP_Add, x, b);
    int d = op(IR_OP_Mul, c, scalar(0.7978845608));
    int t = op(IR_OP_Tanh, d, -1);
    int e = op(IR_OP_Add, scalar(1), t);
    return op(IR_OP_Mul, a, e);
}

static void test_tanh(void)
{
    int x = start(), y = tanh_chain(x, 0);
    output(y);
    check(x, y, 1, 1, 0);
    x = start(), y = tanh_chain(x, 1);
    output(y);
    check(x, y, 0, 1, 8);
}

/* erf forms: 0 Div by sqrt 2, then x (1 + erf) 0.5; 1 Mul by 1/sqrt 2; 2 0.5 x first */
static int erf_chain(int x, int form)
{
    int q = form == 0 ? op(IR_OP_Div, x, scalar(1.4142135623730951)) : op(IR_OP_Mul, scalar(0.7071067811865476), x);
    int r = op(IR_OP_Erf, q, -1);
    int s = op(IR_OP_Add, r, scalar(1));
    if (form == 2) return op(IR_OP_Mul, op(IR_OP_Mul, x, scalar(0.5)), s);
    return op(IR_OP_Mul, op(IR_OP_Mul, x, s), scalar(0.5));
}

static void test_erf(void)
{
    for (int form = 0; form < 3; form++) {
        int x = start(), y = erf_chain(x, form);
        output(y);
        check(x, y, 1, 0, 0);
    }
}

/* an intermediate read elsewhere, or a graph output: no fusion */
static void test_not_alone(void)
{
    int x = start(), y = erf_chain(x, 0);
    int r = -1;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == IR_OP_Erf) r = g->nodes[i].out[0];
    output(y);
    output(op(IR_OP_Neg, r, -1));
    check(x, y, 0, 0, 6);
    x = start(), y = tanh_chain(x, 0);
    output(y);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == IR_OP_Tanh) output(g->nodes[i].out[0]);
    check(x, y, 0, 1, 8);
}

int main(void)
{
    RUN(test_tanh);
    RUN(test_erf);
    RUN(test_not_alone);
    return CHECK_DONE();
}
