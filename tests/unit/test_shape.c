/* Shape inference (ir/shape.c, ir/shape_nn.c): every op family on hand-built
 * graphs, in its normal forms, with negative axes, size-1 and zero-size dims
 * and opset-dependent forms, and the errors it must report. */
#include <stdarg.h>
#include <stdlib.h>

#include "check.h"
#include "ir.h"

#define D(...) ((int64_t[]){__VA_ARGS__})
#define I(...) ((int[]){__VA_ARGS__})

static IrGraph *G(int opset)
{
    IrGraph *g = ir_graph_new("t.onnx");
    g->opset = opset;
    return g;
}

/* An input value of dtype[dims]. */
static int in(IrGraph *g, IrDType dt, int rank, const int64_t *dims)
{
    int v = ir_value_new(g, ir_unique_name(g, "x"), IR_INPUT);
    ir_value_set_shape(&g->values[v], dt, rank, dims);
    return v;
}

/* A constant int64 vector. */
static int ints(IrGraph *g, int n, const int64_t *v)
{
    int64_t d = n;
    int id = ir_value_new(g, ir_unique_name(g, "c"), IR_CONST);
    ir_value_set_shape(&g->values[id], IR_I64, 1, &d);
    int64_t *p = malloc(n ? n * 8 : 1);
    if (n) memcpy(p, v, n * 8);
    ir_value_set_data(g, id, p);
    return id;
}

/* A constant scalar of dtype dt holding x. */
static int scalar(IrGraph *g, IrDType dt, double x)
{
    int id = ir_value_new(g, ir_unique_name(g, "s"), IR_CONST);
    ir_value_set_shape(&g->values[id], dt, 0, NULL);
    void *p = malloc(8);
    if (dt == IR_F32) *(float *)p = (float)x;
    else if (dt == IR_F64) *(double *)p = x;
    else if (dt == IR_I32) *(int32_t *)p = (int32_t)x;
    else *(int64_t *)p = (int64_t)x;
    ir_value_set_data(g, id, p);
    return id;
}

/* A constant int64 scalar, exactly. */
static int scalar64(IrGraph *g, int64_t x)
{
    int id = scalar(g, IR_I64, 0);
    *(int64_t *)g->values[id].data = x;
    return id;
}

/* A node with nout fresh outputs; returns its id. */
static int mk(IrGraph *g, IrOp op, int nin, const int *ins, int nout)
{
    int outs[16];
    for (int i = 0; i < nout; i++) outs[i] = ir_value_new(g, ir_unique_name(g, "y"), IR_ACTIVATION);
    return ir_node_new(g, op, NULL, nin, ins, nout, outs);
}

static char shp_buf[256];
static const char *shp(IrGraph *g, int n, int i)
{
    return ir_shape_str(&g->values[g->nodes[n].out[i]], shp_buf, sizeof shp_buf);
}

/* Infer node n and expect output i to print as want. */
#define EXPECT(g, n, i, want)                                                    \
    do {                                                                         \
        int n_ = (n), rc_ = ir_infer_node(g, n_);                                \
        if (rc_) fprintf(stderr, "  %s:%d: %s\n", __FILE__, __LINE__, (g)->err); \
        CHECK_EQ_INT(rc_, 0);                                                    \
        if (!rc_ && strcmp(shp(g, n_, i), want)) {                               \
            fprintf(stderr, "  %s:%d: got %s, expected %s\n", __FILE__, __LINE__, \
                    shp(g, n_, i), want);                                        \
            check_failed_ = 1;                                                   \
        }                                                                        \
    } while (0)

/* Infer node n and expect a failure whose message contains want. */
#define EXPECT_FAIL(g, n, want)                 \
    do {                                        \
        int n_ = (n);                           \
        CHECK_EQ_INT(ir_infer_node(g, n_), -1); \
        CHECK_STR_CONTAINS((g)->err, want);     \
    } while (0)

static void test_broadcast_helpers(void)
{
    int r;
    int64_t o[8];
    CHECK_EQ_INT(ir_broadcast(2, D(2, 3), 1, D(3), &r, o), 0);
    CHECK(r == 2 && o[0] == 2 && o[1] == 3);
    CHECK_EQ_INT(ir_broadcast(3, D(1, 0, 1), 2, D(1, 5), &r, o), 0);
    CHECK(r == 3 && o[0] == 1 && o[1] == 0 && o[2] == 5);
    CHECK_EQ_INT(ir_broadcast(1, D(2), 1, D(3), &r, o), -1);
    CHECK_EQ_INT(ir_broadcast(0, NULL, 0, NULL, &r, o), 0);
    CHECK_EQ_INT(r, 0);
    CHECK_EQ_INT(ir_norm_axis(-1, 3), 2);
    CHECK_EQ_INT(ir_norm_axis(3, 3), -1);
    CHECK_EQ_INT(ir_norm_axis(-4, 3), -1);
    CHECK_EQ_INT(ir_norm_axis(0, 0), -1);
}

static void test_const_readers(void)
{
    IrGraph *g = G(17);
    int c = ints(g, 3, D(4, -1, 7));
    const int64_t *p;
    CHECK_EQ_INT(ir_const_ints(g, c, &p), 3);
    CHECK(p[0] == 4 && p[1] == -1 && p[2] == 7);
    CHECK_EQ_INT(ir_const_ints(g, -1, &p), -1);
    int x = in(g, IR_I64, 1, D(3));
    CHECK_EQ_INT(ir_const_ints(g, x, &p), -1);
    /* int32 and uint8 and bool contents */
    int v = ir_value_new(g, "i32", IR_CONST);
    ir_value_set_shape(&g->values[v], IR_I32, 1, D(2));
    int32_t *d = malloc(8);
    d[0] = -5, d[1] = 9;
    ir_value_set_data(g, v, d);
    CHECK_EQ_INT(ir_const_ints(g, v, &p), 2);
    CHECK(p[0] == -5 && p[1] == 9);
    int b = ir_value_new(g, "b", IR_CONST);
    ir_value_set_shape(&g->values[b], IR_BOOL, 1, D(2));
    uint8_t *bd = malloc(2);
    bd[0] = 0, bd[1] = 1;
    ir_value_set_data(g, b, bd);
    CHECK_EQ_INT(ir_const_ints(g, b, &p), 2);
    CHECK(p[0] == 0 && p[1] == 1);
    double s;
    CHECK_EQ_INT(ir_const_scalar(g, scalar(g, IR_F32, 2.5), &s), 0);
    CHECK(s == 2.5);
    CHECK_EQ_INT(ir_const_scalar(g, c, &s), -1); /* three elements */
    /* a float tensor is not an integer constant */
    CHECK_EQ_INT(ir_const_ints(g, scalar(g, IR_F32, 1), &p), -1);
    ir_graph_free(g);
}

static void test_binary(void)
{
    IrGraph *g = G(17);
    int a = in(g, IR_F32, 2, D(2, 3)), b = in(g, IR_F32, 1, D(3)), c = in(g, IR_F32, 2, D(4, 3));
    int i64 = in(g, IR_I64, 1, D(3)), z = in(g, IR_F32, 3, D(0, 1, 3)), s = in(g, IR_F32, 0, NULL);
    EXPECT(g, mk(g, IR_OP_Add, 2, I(a, b), 1), 0, "float32[2,3]");
    EXPECT(g, mk(g, IR_OP_Mul, 2, I(s, a), 1), 0, "float32[2,3]");
    EXPECT(g, mk(g, IR_OP_Sub, 2, I(z, a), 1), 0, "float32[0,2,3]");
    EXPECT_FAIL(g, mk(g, IR_OP_Add, 2, I(a, c), 1), "inputs do not broadcast: float32[2,3] and float32[4,3]");
    EXPECT_FAIL(g, mk(g, IR_OP_Add, 2, I(a, i64), 1), "same type");
    /* Pow takes an exponent of another type */
    EXPECT(g, mk(g, IR_OP_Pow, 2, I(a, i64), 1), 0, "float32[2,3]");
    /* Mod of floats needs fmod=1 */
    int m = mk(g, IR_OP_Mod, 2, I(a, b), 1);
    EXPECT_FAIL(g, m, "fmod=1");
    ir_attr_set_int(g, m, "fmod", 1);
    EXPECT(g, m, 0, "float32[2,3]");
    /* PRelu: the slope broadcasts to X, not the other way */
    EXPECT(g, mk(g, IR_OP_PRelu, 2, I(a, b), 1), 0, "float32[2,3]");
    EXPECT_FAIL(g, mk(g, IR_OP_PRelu, 2, I(b, a), 1), "does not broadcast to the input");
    /* bool arithmetic is refused */
    int bb = in(g, IR_BOOL, 1, D(3));
    EXPECT_FAIL(g, mk(g, IR_OP_Add, 2, I(bb, bb), 1), "numeric");
    ir_graph_free(g);
}

static void test_variadic_where_compare_logic(void)
{
    IrGraph *g = G(17);
    int a = in(g, IR_F32, 2, D(2, 1)), b = in(g, IR_F32, 1, D(3)), c = in(g, IR_F32, 3, D(4, 1, 1));
    EXPECT(g, mk(g, IR_OP_Max, 3, I(a, b, c), 1), 0, "float32[4,2,3]");
    EXPECT(g, mk(g, IR_OP_Sum, 1, I(a), 1), 0, "float32[2,1]");
    int i = in(g, IR_I32, 1, D(3));
    EXPECT_FAIL(g, mk(g, IR_OP_Min, 3, I(a, b, i), 1), "same type");
    int cond = in(g, IR_BOOL, 2, D(2, 1));
    EXPECT(g, mk(g, IR_OP_Where, 3, I(cond, b, c), 1), 0, "float32[4,2,3]");
    EXPECT_FAIL(g, mk(g, IR_OP_Where, 3, I(a, b, c), 1), "condition must be bool");
    EXPECT_FAIL(g, mk(g, IR_OP_Where, 3, I(cond, b, i), 1), "same type");
    EXPECT(g, mk(g, IR_OP_Less, 2, I(a, b), 1), 0, "bool[2,3]");
    EXPECT(g, mk(g, IR_OP_Equal, 2, I(cond, cond), 1), 0, "bool[2,1]");
    EXPECT_FAIL(g, mk(g, IR_OP_Greater, 2, I(cond, cond), 1), "numeric");
    EXPECT(g, mk(g, IR_OP_And, 2, I(cond, cond), 1), 0, "bool[2,1]");
    EXPECT(g, mk(g, IR_OP_Not, 1, I(cond), 1), 0, "bool[2,1]");
    EXPECT_FAIL(g, mk(g, IR_OP_Or, 2, I(cond, a), 1), "bool tensors");
    ir_graph_free(g);
}

static void test_unary(void)
{
    IrGraph *g = G(17);
    int a = in(g, IR_F16, 3, D(2, 0, 4)), i = in(g, IR_I64, 1, D(5));
    EXPECT(g, mk(g, IR_OP_Relu, 1, I(a), 1), 0, "float16[2,0,4]");
    EXPECT(g, mk(g, IR_OP_Neg, 1, I(i), 1), 0, "int64[5]");
    EXPECT_FAIL(g, mk(g, IR_OP_Sqrt, 1, I(i), 1), "Sqrt takes a float tensor; got int64[5]");
    int ge = mk(g, IR_OP_Gelu, 1, I(a), 1);
    ir_attr_set_string(g, ge, "approximate", "fast");
    EXPECT_FAIL(g, ge, "loom supports 'none' and 'tanh'");
    int sm = mk(g, IR_OP_Softmax, 1, I(a), 1);
    ir_attr_set_int(g, sm, "axis", -4);
    EXPECT_FAIL(g, sm, "axis -4 is out of range");
    ir_attr_set_int(g, sm, "axis", -3);
    EXPECT(g, sm, 0, "float16[2,0,4]");
    /* Clip 11+: min/max inputs must be scalars of X's type */
    int x = in(g, IR_F32, 2, D(2, 2));
    EXPECT(g, mk(g, IR_OP_Clip, 3, I(x, scalar(g, IR_F32, 0), -1), 1), 0, "float32[2,2]");
    EXPECT_FAIL(g, mk(g, IR_OP_Clip, 2, I(x, scalar(g, IR_I64, 0)), 1), "min");
    /* CumSum axis, Trilu rank */
    EXPECT(g, mk(g, IR_OP_CumSum, 2, I(x, scalar(g, IR_I64, -1)), 1), 0, "float32[2,2]");
    EXPECT_FAIL(g, mk(g, IR_OP_CumSum, 2, I(x, scalar(g, IR_I64, 2)), 1), "out of range");
    EXPECT(g, mk(g, IR_OP_Trilu, 2, I(x, scalar(g, IR_I64, 1)), 1), 0, "float32[2,2]");
    EXPECT_FAIL(g, mk(g, IR_OP_Trilu, 1, I(i), 1), "rank 2");
    ir_graph_free(g);
}

static void test_cast_dropout(void)
{
    IrGraph *g = G(13);
    int a = in(g, IR_F32, 2, D(2, 3));
    int c = mk(g, IR_OP_Cast, 1, I(a), 1);
    EXPECT_FAIL(g, c, "'to'");
    ir_attr_set_int(g, c, "to", IR_BF16);
    EXPECT(g, c, 0, "bfloat16[2,3]");
    ir_attr_set_int(g, c, "to", IR_STRING);
    EXPECT_FAIL(g, c, "not supported");
    ir_attr_set_int(g, c, "to", 999);
    EXPECT_FAIL(g, c, "not supported");
    int d = mk(g, IR_OP_Dropout, 1, I(a), 2);
    EXPECT(g, d, 1, "bool[2,3]");
    CHECK_STR_CONTAINS(shp(g, d, 0), "float32[2,3]");
    g->opset = 7;
    EXPECT(g, d, 1, "float32[2,3]"); /* the old mask had X's type */
    g->opset = 13;
    EXPECT_FAIL(g, mk(g, IR_OP_Dropout, 2, I(a, scalar(g, IR_I64, 1)), 1), "ratio");
    ir_graph_free(g);
}

static void test_reduce(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 3, D(2, 3, 4));
    /* attribute form before 18 (ReduceMean), input form for ReduceSum from 13 */
    int r = mk(g, IR_OP_ReduceMean, 1, I(x), 1);
    ir_attr_set_ints(g, r, "axes", 2, D(-1, 0));
    EXPECT(g, r, 0, "float32[1,3,1]");
    ir_attr_set_int(g, r, "keepdims", 0);
    EXPECT(g, r, 0, "float32[3]");
    ir_attr_set_ints(g, r, "axes", 2, D(1, -2));
    EXPECT_FAIL(g, r, "repeated");
    ir_attr_set_ints(g, r, "axes", 1, D(3));
    EXPECT_FAIL(g, r, "out of range");
    int all = mk(g, IR_OP_ReduceMax, 1, I(x), 1);
    EXPECT(g, all, 0, "float32[1,1,1]");
    int s = mk(g, IR_OP_ReduceSum, 2, I(x, ints(g, 1, D(1))), 1);
    EXPECT(g, s, 0, "float32[2,1,4]");
    int s2 = mk(g, IR_OP_ReduceSum, 2, I(x, in(g, IR_I64, 1, D(1))), 1);
    EXPECT_FAIL(g, s2, "must be a constant");
    int noop = mk(g, IR_OP_ReduceSum, 2, I(x, ints(g, 0, NULL)), 1);
    ir_attr_set_int(g, noop, "noop_with_empty_axes", 1);
    EXPECT(g, noop, 0, "float32[2,3,4]");
    int none = mk(g, IR_OP_ReduceSum, 1, I(x), 1);
    ir_attr_set_int(g, none, "keepdims", 0);
    EXPECT(g, none, 0, "float32[]");
    /* ReduceSum before 13 takes the attribute and refuses the input */
    g->opset = 11;
    EXPECT_FAIL(g, s, "attribute, not an input");
    /* ReduceMax from 18 takes axes as an input */
    g->opset = 18;
    int m = mk(g, IR_OP_ReduceMax, 2, I(x, ints(g, 1, D(-2))), 1);
    EXPECT(g, m, 0, "float32[2,1,4]");
    int am = mk(g, IR_OP_ArgMax, 1, I(x), 1);
    ir_attr_set_int(g, am, "axis", -1);
    ir_attr_set_int(g, am, "keepdims", 0);
    EXPECT(g, am, 0, "int64[2,3]");
    ir_attr_set_int(g, am, "axis", 5);
    EXPECT_FAIL(g, am, "axis 5 is out of range");
    ir_graph_free(g);
}

static void test_gather_scatter(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 3, D(5, 4, 3)), idx = in(g, IR_I32, 2, D(2, 6));
    int ga = mk(g, IR_OP_Gather, 2, I(x, idx), 1);
    ir_attr_set_int(g, ga, "axis", -2);
    EXPECT(g, ga, 0, "float32[5,2,6,3]");
    int sidx = scalar(g, IR_I64, -5);
    EXPECT(g, mk(g, IR_OP_Gather, 2, I(x, sidx), 1), 0, "float32[4,3]");
    EXPECT_FAIL(g, mk(g, IR_OP_Gather, 2, I(x, scalar(g, IR_I64, 5)), 1), "index 5 is out of range");
    EXPECT_FAIL(g, mk(g, IR_OP_Gather, 2, I(x, in(g, IR_F32, 1, D(2))), 1), "indices must be an integer tensor; got float32[2]");
    int ge = mk(g, IR_OP_GatherElements, 2, I(x, in(g, IR_I64, 3, D(5, 4, 7))), 1);
    ir_attr_set_int(g, ge, "axis", 2);
    EXPECT(g, ge, 0, "float32[5,4,7]");
    EXPECT_FAIL(g, mk(g, IR_OP_GatherElements, 2, I(x, idx), 1), "rank");
    int up = in(g, IR_F32, 2, D(2, 3));
    EXPECT(g, mk(g, IR_OP_ScatterND, 3, I(x, in(g, IR_I64, 2, D(2, 2)), up), 1), 0, "float32[5,4,3]");
    EXPECT_FAIL(g, mk(g, IR_OP_ScatterND, 3, I(x, in(g, IR_I64, 2, D(2, 1)), up), 1), "do not match");
    int sr = mk(g, IR_OP_ScatterND, 3, I(x, in(g, IR_I64, 2, D(2, 2)), up), 1);
    ir_attr_set_string(g, sr, "reduction", "avg");
    EXPECT_FAIL(g, sr, "'none', 'add'");
    ir_graph_free(g);
}

static void test_reshape_flatten(void)
{
    IrGraph *g = G(14);
    int x = in(g, IR_F32, 3, D(2, 3, 4));
    EXPECT(g, mk(g, IR_OP_Reshape, 2, I(x, ints(g, 2, D(0, -1))), 1), 0, "float32[2,12]");
    EXPECT(g, mk(g, IR_OP_Reshape, 2, I(x, ints(g, 4, D(-1, 1, 2, 2))), 1), 0, "float32[6,1,2,2]");
    EXPECT_FAIL(g, mk(g, IR_OP_Reshape, 2, I(x, ints(g, 2, D(5, 5))), 1), "cannot reshape float32[2,3,4] (24 elements) to [5,5] (25 elements)");
    EXPECT_FAIL(g, mk(g, IR_OP_Reshape, 2, I(x, ints(g, 2, D(-1, -1))), 1), "more than one -1");
    EXPECT_FAIL(g, mk(g, IR_OP_Reshape, 2, I(x, ints(g, 2, D(-1, 5))), 1), "cannot reshape");
    EXPECT_FAIL(g, mk(g, IR_OP_Reshape, 2, I(x, ints(g, 1, D(-7))), 1), ">= -1");
    EXPECT_FAIL(g, mk(g, IR_OP_Reshape, 2, I(x, in(g, IR_I64, 1, D(2))), 1), "input 1 (shape");
    EXPECT_FAIL(g, mk(g, IR_OP_Reshape, 2, I(x, ints(g, 9, D(1, 1, 1, 1, 1, 1, 2, 3, 4))), 1), "ranks up to 8");
    EXPECT_FAIL(g, mk(g, IR_OP_Reshape, 2, I(x, ints(g, 3, D(INT64_MAX, INT64_MAX, 2))), 1), "too many");
    /* zero-size: 0 copies a dim unless allowzero */
    int z = in(g, IR_F32, 2, D(0, 4));
    EXPECT(g, mk(g, IR_OP_Reshape, 2, I(z, ints(g, 2, D(0, 2))), 1), 0, "float32[0,2]");
    EXPECT_FAIL(g, mk(g, IR_OP_Reshape, 2, I(z, ints(g, 2, D(0, -1))), 1), "multiply to 0");
    int az = mk(g, IR_OP_Reshape, 2, I(z, ints(g, 3, D(0, 4, 5))), 1);
    ir_attr_set_int(g, az, "allowzero", 1);
    EXPECT(g, az, 0, "float32[0,4,5]");
    EXPECT(g, mk(g, IR_OP_Reshape, 2, I(in(g, IR_F32, 1, D(1)), ints(g, 0, NULL)), 1), 0, "float32[]");
    int f = mk(g, IR_OP_Flatten, 1, I(x), 1);
    EXPECT(g, f, 0, "float32[2,12]");
    ir_attr_set_int(g, f, "axis", 0);
    EXPECT(g, f, 0, "float32[1,24]");
    ir_attr_set_int(g, f, "axis", -1);
    EXPECT(g, f, 0, "float32[6,4]");
    ir_attr_set_int(g, f, "axis", 3);
    EXPECT(g, f, 0, "float32[24,1]");
    ir_attr_set_int(g, f, "axis", 4);
    EXPECT_FAIL(g, f, "out of range");
    ir_graph_free(g);
}

static void test_squeeze_unsqueeze(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 4, D(1, 3, 1, 5));
    EXPECT(g, mk(g, IR_OP_Squeeze, 1, I(x), 1), 0, "float32[3,5]");
    EXPECT(g, mk(g, IR_OP_Squeeze, 2, I(x, ints(g, 1, D(-2))), 1), 0, "float32[1,3,5]");
    EXPECT_FAIL(g, mk(g, IR_OP_Squeeze, 2, I(x, ints(g, 1, D(1))), 1), "size is not 1");
    EXPECT_FAIL(g, mk(g, IR_OP_Squeeze, 2, I(x, in(g, IR_I64, 1, D(1))), 1), "must be a constant");
    EXPECT(g, mk(g, IR_OP_Unsqueeze, 2, I(x, ints(g, 2, D(-1, 0))), 1), 0, "float32[1,1,3,1,5,1]");
    EXPECT_FAIL(g, mk(g, IR_OP_Unsqueeze, 2, I(x, ints(g, 2, D(1, 1))), 1), "repeated");
    EXPECT_FAIL(g, mk(g, IR_OP_Unsqueeze, 2, I(x, ints(g, 5, D(0, 1, 2, 3, 4))), 1), "maximum rank");
    EXPECT_FAIL(g, mk(g, IR_OP_Unsqueeze, 1, I(x), 1), "needs axes");
    /* before opset 13: attributes */
    g->opset = 11;
    int s = mk(g, IR_OP_Squeeze, 1, I(x), 1);
    ir_attr_set_ints(g, s, "axes", 1, D(0));
    EXPECT(g, s, 0, "float32[3,1,5]");
    int u = mk(g, IR_OP_Unsqueeze, 1, I(in(g, IR_F32, 0, NULL)), 1);
    ir_attr_set_ints(g, u, "axes", 1, D(0));
    EXPECT(g, u, 0, "float32[1]");
    ir_graph_free(g);
}

static void test_transpose_concat(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 3, D(2, 3, 4));
    EXPECT(g, mk(g, IR_OP_Transpose, 1, I(x), 1), 0, "float32[4,3,2]");
    int t = mk(g, IR_OP_Transpose, 1, I(x), 1);
    ir_attr_set_ints(g, t, "perm", 3, D(1, 2, 0));
    EXPECT(g, t, 0, "float32[3,4,2]");
    ir_attr_set_ints(g, t, "perm", 3, D(1, 1, 0));
    EXPECT_FAIL(g, t, "not a permutation");
    ir_attr_set_ints(g, t, "perm", 2, D(1, 0));
    EXPECT_FAIL(g, t, "perm has 2 entries");
    int y = in(g, IR_F32, 3, D(2, 5, 4)), z = in(g, IR_F32, 3, D(2, 0, 4));
    int c = mk(g, IR_OP_Concat, 3, I(x, y, z), 1);
    EXPECT_FAIL(g, c, "'axis'");
    ir_attr_set_int(g, c, "axis", -2);
    EXPECT(g, c, 0, "float32[2,8,4]");
    ir_attr_set_int(g, c, "axis", 0);
    EXPECT_FAIL(g, c, "differ outside the concat axis 0");
    int c2 = mk(g, IR_OP_Concat, 2, I(x, in(g, IR_I64, 3, D(2, 3, 4))), 1);
    ir_attr_set_int(g, c2, "axis", 0);
    EXPECT_FAIL(g, c2, "same type");
    ir_graph_free(g);
}

static void test_split(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 2, D(6, 4));
    int s = mk(g, IR_OP_Split, 1, I(x), 3);
    EXPECT(g, s, 2, "float32[2,4]");
    int s2 = mk(g, IR_OP_Split, 2, I(x, ints(g, 2, D(1, 3))), 2);
    ir_attr_set_int(g, s2, "axis", -1);
    EXPECT(g, s2, 1, "float32[6,3]");
    EXPECT_FAIL(g, mk(g, IR_OP_Split, 2, I(x, ints(g, 2, D(1, 2))), 2), "add up to 3");
    EXPECT_FAIL(g, mk(g, IR_OP_Split, 1, I(x), 4), "4 equal parts");
    int s0 = mk(g, IR_OP_Split, 2, I(x, ints(g, 3, D(0, 6, 0))), 3);
    EXPECT(g, s0, 0, "float32[0,4]");
    /* opset 11: the attribute; opset 18: num_outputs with a short last chunk */
    g->opset = 11;
    int sa = mk(g, IR_OP_Split, 1, I(x), 2);
    ir_attr_set_ints(g, sa, "split", 2, D(4, 2));
    EXPECT(g, sa, 0, "float32[4,4]");
    g->opset = 18;
    int sn = mk(g, IR_OP_Split, 1, I(in(g, IR_F32, 1, D(7))), 3);
    ir_attr_set_int(g, sn, "num_outputs", 3);
    EXPECT(g, sn, 0, "float32[3]");
    EXPECT(g, sn, 2, "float32[1]");
    ir_graph_free(g);
}

static void test_slice(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 3, D(10, 5, 4));
    EXPECT(g, mk(g, IR_OP_Slice, 3, I(x, ints(g, 2, D(1, 0)), ints(g, 2, D(8, 3))), 1), 0, "float32[7,3,4]");
    /* negative axes and steps, out-of-range clamping */
    EXPECT(g, mk(g, IR_OP_Slice, 5, I(x, ints(g, 1, D(-1)), ints(g, 1, D(INT64_MIN)), ints(g, 1, D(-3)), ints(g, 1, D(-1))), 1), 0, "float32[10,5,4]");
    EXPECT(g, mk(g, IR_OP_Slice, 5, I(x, ints(g, 1, D(20)), ints(g, 1, D(0)), ints(g, 1, D(0)), ints(g, 1, D(-3))), 1), 0, "float32[3,5,4]");
    EXPECT(g, mk(g, IR_OP_Slice, 5, I(x, ints(g, 1, D(0)), ints(g, 1, D(INT64_MAX)), ints(g, 1, D(2)), ints(g, 1, D(3))), 1), 0, "float32[10,5,2]");
    EXPECT(g, mk(g, IR_OP_Slice, 5, I(x, ints(g, 1, D(5)), ints(g, 1, D(2)), -1, ints(g, 1, D(1))), 1), 0, "float32[0,5,4]");
    EXPECT(g, mk(g, IR_OP_Slice, 5, I(x, ints(g, 1, D(0)), ints(g, 1, D(10)), -1, ints(g, 1, D(INT64_MAX))), 1), 0, "float32[1,5,4]");
    EXPECT(g, mk(g, IR_OP_Slice, 5, I(x, ints(g, 1, D(9)), ints(g, 1, D(-20)), -1, ints(g, 1, D(INT64_MIN))), 1), 0, "float32[1,5,4]");
    EXPECT_FAIL(g, mk(g, IR_OP_Slice, 5, I(x, ints(g, 1, D(0)), ints(g, 1, D(1)), -1, ints(g, 1, D(0))), 1), "step of axis 0 is 0");
    EXPECT_FAIL(g, mk(g, IR_OP_Slice, 4, I(x, ints(g, 2, D(0, 0)), ints(g, 2, D(1, 1)), ints(g, 2, D(1, -2))), 1), "repeated");
    EXPECT_FAIL(g, mk(g, IR_OP_Slice, 3, I(x, ints(g, 2, D(0, 0)), ints(g, 1, D(1))), 1), "differ in length");
    EXPECT_FAIL(g, mk(g, IR_OP_Slice, 3, I(x, in(g, IR_I64, 1, D(1)), ints(g, 1, D(1))), 1), "input 1 (starts");
    /* zero-size dim */
    EXPECT(g, mk(g, IR_OP_Slice, 5, I(in(g, IR_F32, 1, D(0)), ints(g, 1, D(-1)), ints(g, 1, D(-5)), -1, ints(g, 1, D(-1))), 1), 0, "float32[0]");
    /* opset 9: attributes */
    g->opset = 9;
    int s = mk(g, IR_OP_Slice, 1, I(x), 1);
    EXPECT_FAIL(g, s, "starts and ends");
    ir_attr_set_ints(g, s, "starts", 1, D(1));
    ir_attr_set_ints(g, s, "ends", 1, D(-1));
    ir_attr_set_ints(g, s, "axes", 1, D(1));
    EXPECT(g, s, 0, "float32[10,3,4]");
    ir_graph_free(g);
}

static void test_expand_tile_pad(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 2, D(3, 1));
    EXPECT(g, mk(g, IR_OP_Expand, 2, I(x, ints(g, 3, D(2, 1, 6))), 1), 0, "float32[2,3,6]");
    EXPECT(g, mk(g, IR_OP_Expand, 2, I(x, ints(g, 1, D(1))), 1), 0, "float32[3,1]");
    EXPECT_FAIL(g, mk(g, IR_OP_Expand, 2, I(x, ints(g, 2, D(2, 4))), 1), "does not broadcast to the shape");
    EXPECT_FAIL(g, mk(g, IR_OP_Expand, 2, I(x, ints(g, 2, D(-1, 4))), 1), "negative");
    EXPECT(g, mk(g, IR_OP_Tile, 2, I(x, ints(g, 2, D(2, 0))), 1), 0, "float32[6,0]");
    EXPECT_FAIL(g, mk(g, IR_OP_Tile, 2, I(x, ints(g, 1, D(2))), 1), "repeats has 1 entries");
    EXPECT_FAIL(g, mk(g, IR_OP_Tile, 2, I(x, ints(g, 2, D(INT64_MAX, 1))), 1), "invalid");
    EXPECT(g, mk(g, IR_OP_Pad, 2, I(x, ints(g, 4, D(1, 0, 2, -1))), 1), 0, "float32[6,0]");
    int p = mk(g, IR_OP_Pad, 2, I(x, ints(g, 4, D(2, 0, 2, 0))), 1);
    ir_attr_set_string(g, p, "mode", "reflect");
    EXPECT(g, p, 0, "float32[7,1]");
    ir_attr_set_string(g, p, "mode", "edge");
    EXPECT(g, p, 0, "float32[7,1]");
    ir_attr_set_string(g, p, "mode", "mirror");
    EXPECT_FAIL(g, p, "Pad mode 'mirror' is not supported");
    int p2 = mk(g, IR_OP_Pad, 2, I(x, ints(g, 4, D(3, 0, 0, 0))), 1);
    ir_attr_set_string(g, p2, "mode", "reflect");
    EXPECT_FAIL(g, p2, "larger input");
    EXPECT_FAIL(g, mk(g, IR_OP_Pad, 2, I(x, ints(g, 2, D(1, 1))), 1), "needs 4");
    EXPECT_FAIL(g, mk(g, IR_OP_Pad, 2, I(x, ints(g, 4, D(-4, 0, 0, 0))), 1), "do not fit");
    EXPECT_FAIL(g, mk(g, IR_OP_Pad, 3, I(x, ints(g, 4, D(0, 0, 0, 0)), scalar(g, IR_I64, 0)), 1), "constant_value");
    /* opset 18 axes input */
    EXPECT(g, mk(g, IR_OP_Pad, 4, I(x, ints(g, 2, D(1, 2)), -1, ints(g, 1, D(-1))), 1), 0, "float32[3,4]");
    /* opset 2..10: the attribute */
    g->opset = 10;
    int pa = mk(g, IR_OP_Pad, 1, I(x), 1);
    EXPECT_FAIL(g, pa, "'pads'");
    ir_attr_set_ints(g, pa, "pads", 4, D(0, 1, 0, 1));
    EXPECT(g, pa, 0, "float32[3,3]");
    ir_graph_free(g);
}

static void test_shape_plumbing(void)
{
    IrGraph *g = G(15);
    int x = in(g, IR_F32, 3, D(2, 3, 4));
    EXPECT(g, mk(g, IR_OP_Shape, 1, I(x), 1), 0, "int64[3]");
    int s = mk(g, IR_OP_Shape, 1, I(x), 1);
    ir_attr_set_int(g, s, "start", -2);
    EXPECT(g, s, 0, "int64[2]");
    ir_attr_set_int(g, s, "end", -5);
    EXPECT(g, s, 0, "int64[0]");
    EXPECT(g, mk(g, IR_OP_Size, 1, I(x), 1), 0, "int64[]");
    EXPECT(g, mk(g, IR_OP_Range, 3, I(scalar(g, IR_I64, 1), scalar(g, IR_I64, 10), scalar(g, IR_I64, 3)), 1), 0, "int64[3]");
    EXPECT(g, mk(g, IR_OP_Range, 3, I(scalar(g, IR_I32, 10), scalar(g, IR_I32, 4), scalar(g, IR_I32, -3)), 1), 0, "int32[2]");
    EXPECT(g, mk(g, IR_OP_Range, 3, I(scalar(g, IR_I64, 5), scalar(g, IR_I64, 1), scalar(g, IR_I64, 2)), 1), 0, "int64[0]");
    EXPECT(g, mk(g, IR_OP_Range, 3, I(scalar(g, IR_F32, 0), scalar(g, IR_F32, 1), scalar(g, IR_F32, 0.25)), 1), 0, "float32[4]");
    EXPECT_FAIL(g, mk(g, IR_OP_Range, 3, I(scalar(g, IR_I64, 0), scalar(g, IR_I64, 1), scalar(g, IR_I64, 0)), 1), "delta is 0");
    EXPECT_FAIL(g, mk(g, IR_OP_Range, 3, I(scalar(g, IR_I64, 0), in(g, IR_I64, 0, NULL), scalar(g, IR_I64, 1)), 1), "input 1 (limit");
    EXPECT_FAIL(g, mk(g, IR_OP_Range, 3, I(scalar64(g, INT64_MIN), scalar64(g, INT64_MAX), scalar64(g, 1)), 1), "overflows");
    EXPECT_FAIL(g, mk(g, IR_OP_Range, 3, I(scalar(g, IR_F32, 0), scalar(g, IR_F32, 1e30), scalar(g, IR_F32, 1e-30)), 1), "too many");
    int c = mk(g, IR_OP_ConstantOfShape, 1, I(ints(g, 2, D(2, 0))), 1);
    EXPECT(g, c, 0, "float32[2,0]");
    int t = scalar(g, IR_I32, 7);
    ir_attr_set_tensor(g, c, "value", t);
    EXPECT(g, c, 0, "int32[2,0]");
    EXPECT(g, mk(g, IR_OP_ConstantOfShape, 1, I(ints(g, 0, NULL)), 1), 0, "float32[]");
    EXPECT_FAIL(g, mk(g, IR_OP_ConstantOfShape, 1, I(ints(g, 1, D(-3))), 1), "negative");
    EXPECT_FAIL(g, mk(g, IR_OP_ConstantOfShape, 1, I(ints(g, 3, D(1 << 30, 1 << 30, 1 << 30))), 1), "2^56");
    ir_graph_free(g);
}

static void test_driver_and_declared(void)
{
    IrGraph *g = G(17);
    int x = in(g, IR_F32, 2, D(2, 3));
    int u = ir_value_new(g, "unknown", IR_ACTIVATION);
    EXPECT_FAIL(g, mk(g, IR_OP_Relu, 1, I(u), 1), "no known type and shape");
    EXPECT_FAIL(g, mk(g, IR_OP_Add, 2, I(x, -1), 1), "required input 1 is missing");
    EXPECT_FAIL(g, mk(g, IR_OP_Add, 3, I(x, x, x), 1), "has 3 inputs");
    EXPECT_FAIL(g, mk(g, IR_OP_Sum, 3, I(x, -1, x), 1), "required input 1 is missing");
    int n = mk(g, IR_OP_Relu, 1, I(x), 1);
    CHECK_EQ_INT(ir_infer_node(g, n), 0);
    IrValue *y = &g->values[g->nodes[n].out[0]];
    y->decl_rank = 2;
    y->decl_dims[0] = -1;
    y->decl_dims[1] = 3;
    y->decl_dtype = IR_F32;
    CHECK_EQ_INT(ir_check_declared(g), 0);
    y->decl_dims[1] = 4;
    CHECK_EQ_INT(ir_check_declared(g), -1);
    CHECK_STR_CONTAINS(g->err, "declares float32[?,4]");
    CHECK_STR_CONTAINS(g->err, "infers float32[2,3]");
    CHECK_STR_CONTAINS(g->err, y->name);
    y->decl_dims[1] = 3;
    y->decl_dtype = IR_F16;
    CHECK_EQ_INT(ir_check_declared(g), -1);
    CHECK_STR_CONTAINS(g->err, "float16");
    ir_graph_free(g);
}

static void test_matmul_gemm(void)
{
    IrGraph *g = G(13);
    int a = in(g, IR_F32, 3, D(5, 2, 3)), b = in(g, IR_F32, 2, D(3, 4)), v = in(g, IR_F32, 1, D(3));
    EXPECT(g, mk(g, IR_OP_MatMul, 2, I(a, b), 1), 0, "float32[5,2,4]");
    EXPECT(g, mk(g, IR_OP_MatMul, 2, I(a, v), 1), 0, "float32[5,2]");
    EXPECT(g, mk(g, IR_OP_MatMul, 2, I(v, b), 1), 0, "float32[4]");
    EXPECT(g, mk(g, IR_OP_MatMul, 2, I(v, v), 1), 0, "float32[]");
    EXPECT(g, mk(g, IR_OP_MatMul, 2, I(in(g, IR_F32, 4, D(2, 1, 2, 3)), in(g, IR_F32, 3, D(7, 3, 0))), 1), 0, "float32[2,7,2,0]");
    EXPECT_FAIL(g, mk(g, IR_OP_MatMul, 2, I(b, a), 1), "inner dimensions differ: float32[3,4] times float32[5,2,3]");
    EXPECT_FAIL(g, mk(g, IR_OP_MatMul, 2, I(a, in(g, IR_I64, 2, D(3, 4))), 1), "same type; got float32[5,2,3] and int64[3,4]");
    EXPECT_FAIL(g, mk(g, IR_OP_MatMul, 2, I(in(g, IR_F32, 3, D(2, 2, 3)), in(g, IR_F32, 3, D(3, 3, 1))), 1), "batch dimensions do not broadcast");
    int m = in(g, IR_F32, 2, D(2, 3));
    int ge = mk(g, IR_OP_Gemm, 3, I(m, in(g, IR_F32, 2, D(4, 3)), in(g, IR_F32, 1, D(4))), 1);
    EXPECT_FAIL(g, ge, "inner dimensions differ");
    ir_attr_set_int(g, ge, "transB", 1);
    EXPECT(g, ge, 0, "float32[2,4]");
    int ge2 = mk(g, IR_OP_Gemm, 3, I(m, b, in(g, IR_F32, 2, D(3, 4))), 1);
    EXPECT_FAIL(g, ge2, "does not broadcast to the result [2,4]");
    EXPECT(g, mk(g, IR_OP_Gemm, 2, I(m, b), 1), 0, "float32[2,4]");
    EXPECT_FAIL(g, mk(g, IR_OP_Gemm, 2, I(a, b), 1), "two matrices");
    ir_graph_free(g);
}

static int einsum(IrGraph *g, const char *eq, int nin, const int *ins)
{
    int n = mk(g, IR_OP_Einsum, nin, ins, 1);
    ir_attr_set_string(g, n, "equation", eq);
    return n;
}

static void test_einsum(void)
{
    IrGraph *g = G(13);
    int q = in(g, IR_F32, 4, D(2, 8, 5, 16)), k = in(g, IR_F32, 4, D(2, 8, 7, 16));
    EXPECT(g, einsum(g, "bhqd,bhkd->bhqk", 2, I(q, k)), 0, "float32[2,8,5,7]");
    EXPECT(g, einsum(g, "bhqd, bhkd", 2, I(q, k)), 0, "float32[7,5]");
    EXPECT(g, einsum(g, "...qd,...kd->...qk", 2, I(q, k)), 0, "float32[2,8,5,7]");
    EXPECT(g, einsum(g, "ij->ji", 1, I(in(g, IR_F32, 2, D(3, 4)))), 0, "float32[4,3]");
    EXPECT(g, einsum(g, "i,i", 2, I(in(g, IR_F32, 1, D(3)), in(g, IR_F32, 1, D(3)))), 0, "float32[]");
    EXPECT(g, einsum(g, "...j,j->...", 2, I(in(g, IR_F32, 3, D(2, 1, 3)), in(g, IR_F32, 1, D(3)))), 0, "float32[2,1]");
    EXPECT(g, einsum(g, "...ij,...jk->...ik", 2, I(in(g, IR_F32, 3, D(4, 2, 3)), in(g, IR_F32, 4, D(5, 1, 3, 6)))), 0, "float32[5,4,2,6]");
    EXPECT_FAIL(g, einsum(g, "ii->i", 1, I(in(g, IR_F32, 2, D(3, 3)))), "Einsum equation 'ii->i' is not supported");
    EXPECT_FAIL(g, einsum(g, "ij,jk->ik", 2, I(in(g, IR_F32, 2, D(3, 4)), in(g, IR_F32, 2, D(5, 6)))), "label 'j' has size");
    EXPECT_FAIL(g, einsum(g, "ij->k", 1, I(in(g, IR_F32, 2, D(3, 4)))), "'k' is not in any input");
    EXPECT_FAIL(g, einsum(g, "ijk->i", 1, I(in(g, IR_F32, 2, D(3, 4)))), "names 3 dims");
    EXPECT_FAIL(g, einsum(g, "ij,j", 1, I(in(g, IR_F32, 2, D(3, 4)))), "number of terms");
    EXPECT_FAIL(g, einsum(g, "i.j", 1, I(in(g, IR_F32, 2, D(3, 4)))), "malformed");
    EXPECT_FAIL(g, einsum(g, "i1", 1, I(in(g, IR_F32, 2, D(3, 4)))), "character '1'");
    EXPECT_FAIL(g, einsum(g, "ij->abcdefghij", 1, I(in(g, IR_F32, 2, D(3, 4)))), "more than 8");
    EXPECT_FAIL(g, mk(g, IR_OP_Einsum, 1, I(q), 1), "'equation'");
    ir_graph_free(g);
}

static int with_ints(IrGraph *g, int n, const char *name, int cnt, const int64_t *v)
{
    ir_attr_set_ints(g, n, name, cnt, v);
    return n;
}

static void test_conv(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 4, D(1, 4, 7, 9)), w = in(g, IR_F32, 4, D(6, 2, 3, 3));
    int c = mk(g, IR_OP_Conv, 2, I(x, w), 1);
    ir_attr_set_int(g, c, "group", 2);
    EXPECT(g, c, 0, "float32[1,6,5,7]");
    with_ints(g, c, "pads", 4, D(1, 1, 1, 1));
    with_ints(g, c, "strides", 2, D(2, 2));
    EXPECT(g, c, 0, "float32[1,6,4,5]");
    with_ints(g, c, "dilations", 2, D(3, 1));
    EXPECT(g, c, 0, "float32[1,6,2,5]");
    with_ints(g, c, "dilations", 2, D(0, 1));
    EXPECT_FAIL(g, c, "dilations[0] is 0");
    with_ints(g, c, "dilations", 2, D(5, 1));
    EXPECT_FAIL(g, c, "larger than the padded input");
    with_ints(g, c, "dilations", 1, D(1));
    EXPECT_FAIL(g, c, "dilations has 1 entries");
    int c3 = mk(g, IR_OP_Conv, 2, I(x, w), 1);
    EXPECT_FAIL(g, c3, "input channels 4 do not match");
    ir_attr_set_int(g, c3, "group", 3);
    EXPECT_FAIL(g, c3, "C = W[1] * group");
    int same = mk(g, IR_OP_Conv, 2, I(x, in(g, IR_F32, 4, D(8, 4, 3, 2))), 1);
    ir_attr_set_string(g, same, "auto_pad", "SAME_UPPER");
    with_ints(g, same, "strides", 2, D(2, 2));
    EXPECT(g, same, 0, "float32[1,8,4,5]");
    ir_attr_set_string(g, same, "auto_pad", "VALID");
    EXPECT(g, same, 0, "float32[1,8,3,4]");
    ir_attr_set_string(g, same, "auto_pad", "WRONG");
    EXPECT_FAIL(g, same, "auto_pad 'WRONG' is not supported");
    int c1 = mk(g, IR_OP_Conv, 3, I(in(g, IR_F32, 3, D(2, 3, 10)), in(g, IR_F32, 3, D(5, 3, 4)), in(g, IR_F32, 1, D(5))), 1);
    EXPECT(g, c1, 0, "float32[2,5,7]");
    int cb = mk(g, IR_OP_Conv, 3, I(in(g, IR_F32, 3, D(2, 3, 10)), in(g, IR_F32, 3, D(5, 3, 4)), in(g, IR_F32, 1, D(4))), 1);
    EXPECT_FAIL(g, cb, "bias");
    int c3d = mk(g, IR_OP_Conv, 2, I(in(g, IR_F32, 5, D(1, 1, 4, 4, 4)), in(g, IR_F32, 5, D(2, 1, 2, 2, 2))), 1);
    with_ints(g, c3d, "kernel_shape", 3, D(2, 2, 2));
    EXPECT(g, c3d, 0, "float32[1,2,3,3,3]");
    with_ints(g, c3d, "kernel_shape", 3, D(2, 2, 3));
    EXPECT_FAIL(g, c3d, "kernel_shape does not match");
    EXPECT_FAIL(g, mk(g, IR_OP_Conv, 2, I(in(g, IR_F32, 2, D(1, 1)), in(g, IR_F32, 2, D(1, 1))), 1), "spatial");
    ir_graph_free(g);
}

static void test_conv_transpose(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 4, D(1, 1, 3, 3)), w = in(g, IR_F32, 4, D(1, 2, 3, 3));
    int c = mk(g, IR_OP_ConvTranspose, 2, I(x, w), 1);
    EXPECT(g, c, 0, "float32[1,2,5,5]");
    with_ints(g, c, "strides", 2, D(3, 2));
    with_ints(g, c, "output_padding", 2, D(1, 1));
    EXPECT(g, c, 0, "float32[1,2,10,8]");
    with_ints(g, c, "pads", 4, D(1, 1, 1, 1));
    EXPECT(g, c, 0, "float32[1,2,8,6]");
    with_ints(g, c, "output_shape", 2, D(10, 8));
    EXPECT(g, c, 0, "float32[1,2,10,8]");
    int s = mk(g, IR_OP_ConvTranspose, 2, I(x, w), 1);
    ir_attr_set_string(g, s, "auto_pad", "SAME_UPPER");
    with_ints(g, s, "strides", 2, D(2, 2));
    EXPECT(g, s, 0, "float32[1,2,6,6]");
    int gr = mk(g, IR_OP_ConvTranspose, 2, I(in(g, IR_F32, 4, D(1, 4, 3, 3)), w), 1);
    EXPECT_FAIL(g, gr, "C = W[0]");
    int huge = mk(g, IR_OP_ConvTranspose, 2, I(x, w), 1);
    with_ints(g, huge, "strides", 2, D((int64_t)1 << 40, 1));
    with_ints(g, huge, "dilations", 2, D((int64_t)1 << 40, 1));
    EXPECT(g, huge, 0, "float32[1,2,4398046511105,5]");
    int over = mk(g, IR_OP_ConvTranspose, 2, I(in(g, IR_F32, 4, D(1, 1, 1 << 20, 3)), w), 1);
    with_ints(g, over, "strides", 2, D((int64_t)1 << 40, 1));
    EXPECT_FAIL(g, over, "would overflow");
    int big = mk(g, IR_OP_ConvTranspose, 2, I(x, w), 1);
    with_ints(g, big, "pads", 4, D(3, 3, 3, 3));
    EXPECT_FAIL(g, big, "would have size");
    ir_graph_free(g);
}

static void test_pool(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 4, D(1, 3, 4, 4));
    int p = mk(g, IR_OP_MaxPool, 1, I(x), 2);
    EXPECT_FAIL(g, p, "kernel_shape");
    with_ints(g, p, "kernel_shape", 2, D(3, 3));
    with_ints(g, p, "strides", 2, D(2, 2));
    EXPECT(g, p, 0, "float32[1,3,1,1]");
    ir_attr_set_int(g, p, "ceil_mode", 1);
    EXPECT(g, p, 0, "float32[1,3,2,2]");
    EXPECT(g, p, 1, "int64[1,3,2,2]");
    /* ceil mode: no window starting in the end padding */
    int q = mk(g, IR_OP_AveragePool, 1, I(in(g, IR_F32, 3, D(1, 1, 5))), 1);
    with_ints(g, q, "kernel_shape", 1, D(2));
    with_ints(g, q, "strides", 1, D(2));
    with_ints(g, q, "pads", 2, D(1, 1));
    ir_attr_set_int(g, q, "ceil_mode", 1);
    EXPECT(g, q, 0, "float32[1,1,3]");
    int sl = mk(g, IR_OP_AveragePool, 1, I(in(g, IR_F32, 4, D(1, 1, 5, 5))), 1);
    with_ints(g, sl, "kernel_shape", 2, D(2, 2));
    ir_attr_set_string(g, sl, "auto_pad", "SAME_LOWER");
    EXPECT(g, sl, 0, "float32[1,1,5,5]");
    int d = mk(g, IR_OP_MaxPool, 1, I(x), 1);
    with_ints(g, d, "kernel_shape", 2, D(2, 2));
    with_ints(g, d, "dilations", 2, D(2, 2));
    EXPECT(g, d, 0, "float32[1,3,2,2]");
    with_ints(g, d, "kernel_shape", 2, D(9, 2));
    EXPECT_FAIL(g, d, "larger than the padded input");
    with_ints(g, d, "kernel_shape", 2, D(-1, 2));
    EXPECT_FAIL(g, d, "kernel_shape[0] is -1");
    EXPECT(g, mk(g, IR_OP_GlobalAveragePool, 1, I(x), 1), 0, "float32[1,3,1,1]");
    EXPECT_FAIL(g, mk(g, IR_OP_GlobalMaxPool, 1, I(in(g, IR_F32, 2, D(1, 3))), 1), "[N,C,spatial...]");
    ir_graph_free(g);
}

static void test_norms(void)
{
    IrGraph *g = G(15);
    int x = in(g, IR_F32, 4, D(2, 3, 4, 5)), c = in(g, IR_F32, 1, D(3));
    int bn = mk(g, IR_OP_BatchNormalization, 5, I(x, c, c, c, c), 3);
    ir_attr_set_int(g, bn, "training_mode", 1);
    EXPECT(g, bn, 0, "float32[2,3,4,5]");
    EXPECT(g, bn, 2, "float32[3]");
    EXPECT_FAIL(g, mk(g, IR_OP_BatchNormalization, 5, I(x, c, c, c, in(g, IR_F32, 1, D(4))), 1), "var");
    int ln = mk(g, IR_OP_LayerNormalization, 3, I(x, in(g, IR_F32, 2, D(4, 5)), in(g, IR_F32, 1, D(5))), 3);
    ir_attr_set_int(g, ln, "axis", -2);
    EXPECT(g, ln, 0, "float32[2,3,4,5]");
    EXPECT(g, ln, 1, "float32[2,3,1,1]");
    EXPECT(g, ln, 2, "float32[2,3,1,1]");
    ir_attr_set_int(g, ln, "axis", -1);
    EXPECT_FAIL(g, ln, "scale float32[4,5] does not broadcast");
    ir_attr_set_int(g, ln, "axis", 4);
    EXPECT_FAIL(g, ln, "axis 4 is out of range");
    int lh = mk(g, IR_OP_LayerNormalization, 2, I(in(g, IR_F16, 2, D(3, 8)), in(g, IR_F16, 1, D(8))), 2);
    EXPECT(g, lh, 1, "float32[3,1]");
    int gn = mk(g, IR_OP_GroupNormalization, 3, I(x, c, c), 1);
    EXPECT_FAIL(g, gn, "num_groups");
    ir_attr_set_int(g, gn, "num_groups", 3);
    EXPECT(g, gn, 0, "float32[2,3,4,5]");
    ir_attr_set_int(g, gn, "num_groups", 2);
    EXPECT_FAIL(g, gn, "divide the 3 channels");
    EXPECT(g, mk(g, IR_OP_InstanceNormalization, 3, I(x, c, c), 1), 0, "float32[2,3,4,5]");
    EXPECT_FAIL(g, mk(g, IR_OP_InstanceNormalization, 3, I(x, c, in(g, IR_F32, 1, D(2))), 1), "bias");
    ir_graph_free(g);
}

static int floats(IrGraph *g, int n, const float *v)
{
    int64_t d = n;
    int id = ir_value_new(g, ir_unique_name(g, "f"), IR_CONST);
    ir_value_set_shape(&g->values[id], IR_F32, 1, &d);
    float *p = malloc(n ? n * 4 : 1);
    if (n) memcpy(p, v, n * 4);
    ir_value_set_data(g, id, p);
    return id;
}

static void test_resize(void)
{
    IrGraph *g = G(13);
    int x = in(g, IR_F32, 4, D(1, 2, 4, 6));
    int r = mk(g, IR_OP_Resize, 3, I(x, -1, floats(g, 4, (float[]){1, 1, 2.5f, 0.5f})), 1);
    EXPECT(g, r, 0, "float32[1,2,10,3]");
    ir_attr_set_string(g, r, "mode", "cubic");
    EXPECT_FAIL(g, r, "Resize mode 'cubic' is not supported; loom supports 'nearest' and 'linear'");
    ir_attr_set_string(g, r, "mode", "linear");
    ir_attr_set_string(g, r, "coordinate_transformation_mode", "align_corners");
    EXPECT(g, r, 0, "float32[1,2,10,3]");
    ir_attr_set_string(g, r, "coordinate_transformation_mode", "bogus");
    EXPECT_FAIL(g, r, "coordinate_transformation_mode 'bogus' is unknown");
    int z = mk(g, IR_OP_Resize, 4, I(x, -1, floats(g, 0, NULL), ints(g, 4, D(1, 2, 3, 3))), 1);
    EXPECT(g, z, 0, "float32[1,2,3,3]");
    EXPECT_FAIL(g, mk(g, IR_OP_Resize, 4, I(x, -1, -1, in(g, IR_I64, 1, D(4))), 1), "input 3 (sizes");
    EXPECT_FAIL(g, mk(g, IR_OP_Resize, 1, I(x), 1), "exactly one of scales and sizes");
    EXPECT_FAIL(g, mk(g, IR_OP_Resize, 3, I(x, -1, floats(g, 2, (float[]){2, 2})), 1), "scales must be float32[4]");
    EXPECT_FAIL(g, mk(g, IR_OP_Resize, 3, I(x, -1, floats(g, 4, (float[]){1, 1, -2, 1})), 1), "positive");
    /* opset 10: (X, scales) */
    g->opset = 10;
    EXPECT(g, mk(g, IR_OP_Resize, 2, I(x, floats(g, 4, (float[]){1, 1, 2, 2})), 1), 0, "float32[1,2,8,12]");
    /* opset 18: axes and keep_aspect_ratio_policy */
    g->opset = 18;
    int a = mk(g, IR_OP_Resize, 4, I(x, -1, -1, ints(g, 2, D(8, 8))), 1);
    with_ints(g, a, "axes", 2, D(2, 3));
    EXPECT(g, a, 0, "float32[1,2,8,8]");
    ir_attr_set_string(g, a, "keep_aspect_ratio_policy", "not_larger");
    EXPECT(g, a, 0, "float32[1,2,5,8]");
    ir_attr_set_string(g, a, "keep_aspect_ratio_policy", "not_smaller");
    EXPECT(g, a, 0, "float32[1,2,8,12]");
    ir_graph_free(g);
}

static void test_dft(void)
{
    IrGraph *g = G(17);
    int x = in(g, IR_F32, 3, D(2, 8, 1));
    int d = mk(g, IR_OP_DFT, 1, I(x), 1);
    EXPECT(g, d, 0, "float32[2,8,2]");
    ir_attr_set_int(g, d, "onesided", 1);
    EXPECT(g, d, 0, "float32[2,5,2]");
    ir_attr_set_int(g, d, "inverse", 1);
    EXPECT_FAIL(g, d, "not supported");
    EXPECT(g, mk(g, IR_OP_DFT, 2, I(x, scalar(g, IR_I64, 16)), 1), 0, "float32[2,16,2]");
    EXPECT_FAIL(g, mk(g, IR_OP_DFT, 2, I(x, in(g, IR_I64, 0, NULL)), 1), "input 1 (dft_length");
    int bad = mk(g, IR_OP_DFT, 1, I(x), 1);
    ir_attr_set_int(g, bad, "axis", 2);
    EXPECT_FAIL(g, bad, "must name a signal dim");
    EXPECT_FAIL(g, mk(g, IR_OP_DFT, 1, I(in(g, IR_F32, 2, D(2, 3))), 1), "1 or 2");
    /* opset 20: axis as an input, default -2 */
    g->opset = 20;
    int y = in(g, IR_F32, 4, D(2, 4, 6, 2));
    EXPECT(g, mk(g, IR_OP_DFT, 1, I(y), 1), 0, "float32[2,4,6,2]");
    int o = mk(g, IR_OP_DFT, 3, I(y, -1, scalar(g, IR_I64, 1)), 1);
    ir_attr_set_int(g, o, "onesided", 1);
    EXPECT(g, o, 0, "float32[2,3,6,2]");
    ir_graph_free(g);
}

static void test_losses(void)
{
    IrGraph *g = G(13);
    int s = in(g, IR_F32, 3, D(4, 10, 7)), l = in(g, IR_I64, 2, D(4, 7));
    int sce = mk(g, IR_OP_SoftmaxCrossEntropyLoss, 2, I(s, l), 2);
    EXPECT(g, sce, 0, "float32[]");
    EXPECT(g, sce, 1, "float32[4,10,7]");
    ir_attr_set_string(g, sce, "reduction", "none");
    EXPECT(g, sce, 0, "float32[4,7]");
    ir_attr_set_string(g, sce, "reduction", "max");
    EXPECT_FAIL(g, sce, "reduction 'max' is not supported");
    int nll = mk(g, IR_OP_NegativeLogLikelihoodLoss, 3, I(s, l, in(g, IR_F32, 1, D(10))), 1);
    ir_attr_set_string(g, nll, "reduction", "sum");
    EXPECT(g, nll, 0, "float32[]");
    EXPECT_FAIL(g, mk(g, IR_OP_NegativeLogLikelihoodLoss, 2, I(s, in(g, IR_I64, 2, D(4, 6))), 1), "do not match");
    EXPECT_FAIL(g, mk(g, IR_OP_NegativeLogLikelihoodLoss, 2, I(s, in(g, IR_F32, 2, D(4, 7))), 1), "int32 or int64");
    EXPECT_FAIL(g, mk(g, IR_OP_SoftmaxCrossEntropyLoss, 3, I(s, l, in(g, IR_F32, 1, D(9))), 1), "weight");
    ir_graph_free(g);
}

int main(void)
{
    RUN(test_broadcast_helpers);
    RUN(test_const_readers);
    RUN(test_binary);
    RUN(test_variadic_where_compare_logic);
    RUN(test_unary);
    RUN(test_cast_dropout);
    RUN(test_reduce);
    RUN(test_gather_scatter);
    RUN(test_reshape_flatten);
    RUN(test_squeeze_unsqueeze);
    RUN(test_transpose_concat);
    RUN(test_split);
    RUN(test_slice);
    RUN(test_expand_tile_pad);
    RUN(test_shape_plumbing);
    RUN(test_driver_and_declared);
    RUN(test_matmul_gemm);
    RUN(test_einsum);
    RUN(test_conv);
    RUN(test_conv_transpose);
    RUN(test_pool);
    RUN(test_norms);
    RUN(test_resize);
    RUN(test_dft);
    RUN(test_losses);
    return CHECK_DONE();
}
