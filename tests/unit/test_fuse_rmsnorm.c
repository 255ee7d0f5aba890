/* RMSNorm fusion (optimizer/fuse_rmsnorm.c) on hand-built chains: three
 * spellings of w * (x / sqrt(mean(x^2) + eps)) (Pow and Div(1, .) then Mul,
 * as LLaMA exports it with an Identity where a float Cast was; Mul(x, x)
 * and Reciprocal; Div(x, sqrt)) become one loom.RMSNorm of x and w over the
 * last axis, with eps and the chain's output value kept; a weight broadcast
 * from one element, a mean over another axis, or an intermediate read
 * outside the chain leave the chain as it is. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hand_graph.h"
#include "ir.h"
#include "optimizer.h"

static int weight(int64_t n)
{
    int id = ir_value_new(g, ir_unique_name(g, "w"), IR_PARAM);
    ir_value_set_shape(&g->values[id], IR_F32, 1, &n);
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = 1.0f + 0.1f * (float)i;
    ir_value_set_data(g, id, p);
    return id;
}

static int start(void)
{
    g = ir_graph_new("rmsnorm.onnx");
    g->opset = 17;
    int x = ir_value_new(g, "x", IR_INPUT);
    ir_value_set_shape(&g->values[x], IR_F32, 3, (int64_t[]){2, 4, 3});
    g->inputs = malloc(sizeof(int));
    g->inputs[g->ninputs++] = x;
    return x;
}

/* form 0: Pow, Div(1, .), Mul, Identity; 1: Mul(x, x), Reciprocal, Mul; 2: Div(x, .).
 * axis: the mean's; w_elems: the weight's elements; *mid: the Sqrt's output */
static int chain(int x, int form, int64_t axis, int64_t w_elems, int *mid)
{
    int sq = form == 1 ? op(IR_OP_Mul, x, x) : op(IR_OP_Pow, x, scalar(2));
    int m = op(IR_OP_ReduceMean, sq, -1);
    ir_attr_set_ints(g, g->values[m].producer, "axes", 1, &axis);
    int s = op(IR_OP_Sqrt, op(IR_OP_Add, m, scalar(1e-5)), -1);
    *mid = s;
    int t = form == 0 ? op(IR_OP_Identity, op(IR_OP_Mul, x, op(IR_OP_Div, scalar(1), s)), -1)
            : form == 1 ? op(IR_OP_Mul, op(IR_OP_Reciprocal, s, -1), x)
                        : op(IR_OP_Div, x, s);
    return op(IR_OP_Mul, weight(w_elems), t);
}

/* fuse; then expect (want) one loom.RMSNorm of x writing y, or none and n0 live nodes */
static void check(int x, int y, int want, int n0)
{
    for (int i = 0; i < g->nnodes; i++) CHECK(ir_infer_node(g, i) == 0);
    CHECK(opt_fuse_rmsnorm(g) == 0);
    CHECK(ir_verify(g) == 0);
    int nrms = 0, live = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        live++;
        if (n->op != IR_OP_RMSNorm) continue;
        nrms++;
        CHECK(n->nin == 2 && !strcmp(g->values[n->in[0]].name, g->values[x].name));
        CHECK(!strcmp(g->values[n->out[0]].name, g->values[y].name));
        CHECK_EQ_INT(ir_attr_int(n, "axis", 0), 2);
        CHECK(ir_attr_float(n, "epsilon", 0) == 1e-5f);
    }
    CHECK_EQ_INT(nrms, want);
    if (want) CHECK_EQ_INT(live, 1);
    else CHECK_EQ_INT(live, n0);
    ir_graph_free(g);
}

static void test_forms(void)
{
    for (int form = 0; form < 3; form++) {
        int mid, x = start(), y = chain(x, form, -1, 3, &mid);
        output(y);
        check(x, y, 1, 0);
    }
    int mid, x = start(), y = chain(x, 0, 2, 3, &mid); /* the last axis by its number */
    output(y);
    check(x, y, 1, 0);
}

static void test_left_alone(void)
{
    int mid, x = start(), y = chain(x, 0, -1, 1, &mid); /* a weight of one element, broadcast */
    output(y);
    check(x, y, 0, 8);
    x = start(), y = chain(x, 2, 1, 3, &mid); /* the mean over another axis */
    output(y);
    check(x, y, 0, 6);
    x = start(), y = chain(x, 1, -1, 3, &mid); /* the root read outside the chain */
    output(y);
    output(op(IR_OP_Neg, mid, -1));
    check(x, y, 0, 8);
}

int main(void)
{
    RUN(test_forms);
    RUN(test_left_alone);
    return CHECK_DONE();
}
