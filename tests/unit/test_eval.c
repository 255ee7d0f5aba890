/* Host evaluation for constant folding (ir/eval.c): each eval_* on
 * hand-built constant inputs, with exact expected values, across dtypes
 * (float32 computed in float, float16/bfloat16 rounding, wrapping and
 * truncating integers, bool), and the cases it must refuse. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "ir.h"

#define D(...) ((int64_t[]){__VA_ARGS__})
#define I(...) ((int[]){__VA_ARGS__})
#define F(...) ((float[]){__VA_ARGS__})
#define L(...) ((int64_t[]){__VA_ARGS__})

static IrGraph *G(int opset)
{
    IrGraph *g = ir_graph_new("t.onnx");
    g->opset = opset;
    return g;
}

/* A constant dt[dims] with the given contents. */
static int cval(IrGraph *g, IrDType dt, int rank, const int64_t *dims, const void *data)
{
    int id = ir_value_new(g, ir_unique_name(g, "c"), IR_CONST);
    ir_value_set_shape(&g->values[id], dt, rank, dims);
    size_t n = (size_t)ir_value_bytes(&g->values[id]);
    void *p = malloc(n ? n : 1);
    if (n) memcpy(p, data, n);
    ir_value_set_data(g, id, p);
    return id;
}

static int f32(IrGraph *g, int rank, const int64_t *dims, const float *v) { return cval(g, IR_F32, rank, dims, v); }
static int i64(IrGraph *g, int rank, const int64_t *dims, const int64_t *v) { return cval(g, IR_I64, rank, dims, v); }
static int vec(IrGraph *g, int n, const int64_t *v) { return cval(g, IR_I64, 1, (int64_t[]){n}, v); }

static int mk(IrGraph *g, IrOp op, int nin, const int *ins, int nout)
{
    int outs[16];
    for (int i = 0; i < nout; i++) outs[i] = ir_value_new(g, ir_unique_name(g, "y"), IR_ACTIVATION);
    return ir_node_new(g, op, NULL, nin, ins, nout, outs);
}

/* Infer and evaluate node n; 0 or -1. */
static int run(IrGraph *g, int n)
{
    if (ir_infer_node(g, n) < 0) return -1;
    return ir_ops[g->nodes[n].op].eval(g, n);
}

static void *out(IrGraph *g, int n, int i) { return g->values[g->nodes[n].out[i]].data; }

/* Run n and compare output i with want (count elements of its type). */
#define EXPECT_F32(g, n, i, cnt, ...)                                                        \
    do {                                                                                     \
        int n_ = (n);                                                                        \
        if (run(g, n_)) { fprintf(stderr, "  %s\n", (g)->err); check_failed_ = 1; break; }  \
        const float *o_ = out(g, n_, i), *w_ = (const float[]){__VA_ARGS__};                  \
        CHECK_EQ_INT(ir_value_numel(&(g)->values[(g)->nodes[n_].out[i]]), cnt);              \
        for (int k_ = 0; k_ < (cnt); k_++)                                                   \
            if (memcmp(&o_[k_], &w_[k_], 4)) {                                               \
                fprintf(stderr, "  %s:%d: [%d] = %.9g, expected %.9g\n", __FILE__, __LINE__,  \
                        k_, o_[k_], w_[k_]);                                                 \
                check_failed_ = 1;                                                           \
            }                                                                                \
    } while (0)
#define EXPECT_T(T, g, n, i, cnt, ...)                                                       \
    do {                                                                                     \
        int n_ = (n);                                                                        \
        if (run(g, n_)) { fprintf(stderr, "  %s\n", (g)->err); check_failed_ = 1; break; }  \
        const T *o_ = out(g, n_, i), *w_ = (const T[]){__VA_ARGS__};                          \
        CHECK_EQ_INT(ir_value_numel(&(g)->values[(g)->nodes[n_].out[i]]), cnt);              \
        for (int k_ = 0; k_ < (cnt); k_++)                                                   \
            if (o_[k_] != w_[k_]) {                                                          \
                fprintf(stderr, "  %s:%d: [%d] = %lld, expected %lld\n", __FILE__, __LINE__,  \
                        k_, (long long)o_[k_], (long long)w_[k_]);                           \
                check_failed_ = 1;                                                           \
            }                                                                                \
    } while (0)
#define EXPECT_I64(...) EXPECT_T(int64_t, __VA_ARGS__)
#define EXPECT_BOOL(...) EXPECT_T(uint8_t, __VA_ARGS__)
#define EXPECT_FAIL(g, n, want)                \
    do {                                       \
        int n_ = (n);                          \
        CHECK_EQ_INT(run(g, n_), -1);          \
        CHECK_STR_CONTAINS((g)->err, want);    \
    } while (0)

static void test_binary_float(void)
{
    IrGraph *g = G(17);
    int a = f32(g, 2, D(2, 3), F(1, 2, 3, 4, 5, 6)), b = f32(g, 1, D(3), F(10, 20, 30));
    EXPECT_F32(g, mk(g, IR_OP_Add, 2, I(a, b), 1), 0, 6, 11, 22, 33, 14, 25, 36);
    EXPECT_F32(g, mk(g, IR_OP_Sub, 2, I(b, a), 1), 0, 6, 9, 18, 27, 6, 15, 24);
    /* float32 division rounds in float: 1/3 is not the double quotient */
    int one = f32(g, 0, NULL, F(1)), three = f32(g, 0, NULL, F(3));
    EXPECT_F32(g, mk(g, IR_OP_Div, 2, I(one, three), 1), 0, 1, 1.0f / 3.0f);
    int e = i64(g, 1, D(3), L(2, 0, -1));
    EXPECT_F32(g, mk(g, IR_OP_Pow, 2, I(b, e), 1), 0, 3, 100, 1, 1.0f / 30);
    int m = mk(g, IR_OP_Mod, 2, I(f32(g, 1, D(2), F(-7, 7)), f32(g, 0, NULL, F(3))), 1);
    ir_attr_set_int(g, m, "fmod", 1);
    EXPECT_F32(g, m, 0, 2, -1, 1);
    EXPECT_F32(g, mk(g, IR_OP_PRelu, 2, I(f32(g, 1, D(3), F(-2, 0, 3)), f32(g, 1, D(1), F(0.5f))), 1), 0, 3, -1, 0, 3);
    int c = f32(g, 2, D(2, 1), F(4, -4));
    EXPECT_F32(g, mk(g, IR_OP_Max, 3, I(a, b, c), 1), 0, 6, 10, 20, 30, 10, 20, 30);
    EXPECT_F32(g, mk(g, IR_OP_Min, 2, I(a, c), 1), 0, 6, 1, 2, 3, -4, -4, -4);
    EXPECT_F32(g, mk(g, IR_OP_Mean, 3, I(a, a, c), 1), 0, 6, 2, 8.0f / 3, 10.0f / 3, 4.0f / 3, 2, 8.0f / 3);
    EXPECT_F32(g, mk(g, IR_OP_Sum, 1, I(b), 1), 0, 3, 10, 20, 30);
    ir_graph_free(g);
}

static void test_binary_int(void)
{
    IrGraph *g = G(17);
    int a = i64(g, 1, D(4), L(-7, 7, -7, 7)), b = i64(g, 1, D(4), L(2, -2, -2, 2));
    EXPECT_I64(g, mk(g, IR_OP_Div, 2, I(a, b), 1), 0, 4, -3, -3, 3, 3);
    EXPECT_I64(g, mk(g, IR_OP_Mod, 2, I(a, i64(g, 1, D(4), L(3, -3, -3, 3))), 1), 0, 4, 2, -2, -1, 1);
    int fm = mk(g, IR_OP_Mod, 2, I(a, i64(g, 1, D(4), L(3, -3, -3, 3))), 1);
    ir_attr_set_int(g, fm, "fmod", 1);
    EXPECT_I64(g, fm, 0, 4, -1, 1, -1, 1);
    EXPECT_I64(g, mk(g, IR_OP_Pow, 2, I(a, i64(g, 0, NULL, L(3))), 1), 0, 4, -343, 343, -343, 343);
    EXPECT_I64(g, mk(g, IR_OP_Mul, 2, I(i64(g, 0, NULL, L(INT64_MAX)), i64(g, 0, NULL, L(2))), 1), 0, 1, -2);
    EXPECT_I64(g, mk(g, IR_OP_Div, 2, I(i64(g, 0, NULL, L(INT64_MIN)), i64(g, 0, NULL, L(-1))), 1), 0, 1, INT64_MIN);
    EXPECT_FAIL(g, mk(g, IR_OP_Div, 2, I(a, i64(g, 0, NULL, L(0))), 1), "division by zero");
    /* int8 wraps; int32 Pow with a float exponent truncates */
    int8_t x8[] = {100, -100}, y8[] = {2, 2};
    int p8 = mk(g, IR_OP_Mul, 2, I(cval(g, IR_I8, 1, D(2), x8), cval(g, IR_I8, 1, D(2), y8)), 1);
    EXPECT_T(int8_t, g, p8, 0, 2, -56, 56);
    int32_t x32[] = {2, 9};
    EXPECT_T(int32_t, g, mk(g, IR_OP_Pow, 2, I(cval(g, IR_I32, 1, D(2), x32), f32(g, 0, NULL, F(0.5f))), 1), 0, 2, 1, 3);
    /* uint64 compares and divides unsigned */
    uint64_t u[] = {UINT64_MAX, 4}, v[] = {2, 8};
    int ua = cval(g, IR_U64, 1, D(2), u), ub = cval(g, IR_U64, 1, D(2), v);
    EXPECT_T(uint64_t, g, mk(g, IR_OP_Div, 2, I(ua, ub), 1), 0, 2, UINT64_MAX / 2, 0);
    EXPECT_BOOL(g, mk(g, IR_OP_Greater, 2, I(ua, ub), 1), 0, 2, 1, 0);
    EXPECT_I64(g, mk(g, IR_OP_Max, 2, I(a, b), 1), 0, 4, 2, 7, -2, 7);
    ir_graph_free(g);
}

static void test_compare_logic_where(void)
{
    IrGraph *g = G(17);
    int a = f32(g, 1, D(3), F(1, NAN, 3)), b = f32(g, 0, NULL, F(1));
    EXPECT_BOOL(g, mk(g, IR_OP_Equal, 2, I(a, b), 1), 0, 3, 1, 0, 0);
    EXPECT_BOOL(g, mk(g, IR_OP_GreaterOrEqual, 2, I(a, b), 1), 0, 3, 1, 0, 1);
    EXPECT_BOOL(g, mk(g, IR_OP_Less, 2, I(a, b), 1), 0, 3, 0, 0, 0);
    EXPECT_BOOL(g, mk(g, IR_OP_LessOrEqual, 2, I(i64(g, 1, D(2), L(1, 2)), i64(g, 0, NULL, L(1))), 1), 0, 2, 1, 0);
    uint8_t t[] = {1, 0, 1, 0}, s[] = {1, 1, 0, 0};
    int p = cval(g, IR_BOOL, 1, D(4), t), q = cval(g, IR_BOOL, 1, D(4), s);
    EXPECT_BOOL(g, mk(g, IR_OP_And, 2, I(p, q), 1), 0, 4, 1, 0, 0, 0);
    EXPECT_BOOL(g, mk(g, IR_OP_Or, 2, I(p, q), 1), 0, 4, 1, 1, 1, 0);
    EXPECT_BOOL(g, mk(g, IR_OP_Xor, 2, I(p, q), 1), 0, 4, 0, 1, 1, 0);
    EXPECT_BOOL(g, mk(g, IR_OP_Not, 1, I(p), 1), 0, 4, 0, 1, 0, 1);
    uint8_t c2[] = {1, 0};
    int cond = cval(g, IR_BOOL, 2, D(2, 1), c2);
    EXPECT_I64(g, mk(g, IR_OP_Where, 3, I(cond, i64(g, 1, D(3), L(1, 2, 3)), i64(g, 0, NULL, L(-1))), 1), 0, 6, 1, 2, 3, -1, -1, -1);
    ir_graph_free(g);
}

static void test_unary(void)
{
    IrGraph *g = G(17);
    int x = f32(g, 1, D(4), F(-1.5f, 0.5f, 2.5f, 2));
    EXPECT_F32(g, mk(g, IR_OP_Round, 1, I(x), 1), 0, 4, -2, 0, 2, 2);
    EXPECT_F32(g, mk(g, IR_OP_Sqrt, 1, I(f32(g, 1, D(2), F(2, 4))), 1), 0, 2, sqrtf(2), 2);
    EXPECT_F32(g, mk(g, IR_OP_Sin, 1, I(x), 1), 0, 4, sinf(-1.5f), sinf(0.5f), sinf(2.5f), sinf(2));
    EXPECT_F32(g, mk(g, IR_OP_Exp, 1, I(x), 1), 0, 4, expf(-1.5f), expf(0.5f), expf(2.5f), expf(2));
    EXPECT_F32(g, mk(g, IR_OP_Relu, 1, I(x), 1), 0, 4, 0, 0.5f, 2.5f, 2);
    EXPECT_F32(g, mk(g, IR_OP_Sign, 1, I(x), 1), 0, 4, -1, 1, 1, 1);
    int lr = mk(g, IR_OP_LeakyRelu, 1, I(x), 1);
    ir_attr_set_float(g, lr, "alpha", 0.1f);
    EXPECT_F32(g, lr, 0, 4, 0.1f * -1.5f, 0.5f, 2.5f, 2);
    EXPECT_F32(g, mk(g, IR_OP_Sigmoid, 1, I(x), 1), 0, 4, 1 / (1 + expf(1.5f)), 1 / (1 + expf(-0.5f)), 1 / (1 + expf(-2.5f)), 1 / (1 + expf(-2.0f)));
    float v = 0.5f;
    EXPECT_F32(g, mk(g, IR_OP_Gelu, 1, I(f32(g, 0, NULL, &v)), 1), 0, 1, 0.5f * v * (1 + erff(v * 0.70710678f)));
    int gt = mk(g, IR_OP_Gelu, 1, I(f32(g, 0, NULL, &v)), 1);
    ir_attr_set_string(g, gt, "approximate", "tanh");
    EXPECT_F32(g, gt, 0, 1, 0.5f * v * (1 + tanhf(0.7978845608f * (v + 0.044715f * v * v * v))));
    EXPECT_I64(g, mk(g, IR_OP_Abs, 1, I(i64(g, 1, D(2), L(-3, 4))), 1), 0, 2, 3, 4);
    EXPECT_I64(g, mk(g, IR_OP_Neg, 1, I(i64(g, 1, D(2), L(-3, INT64_MIN))), 1), 0, 2, 3, INT64_MIN);
    double d = 2;
    int dn = mk(g, IR_OP_Sqrt, 1, I(cval(g, IR_F64, 0, NULL, &d)), 1);
    EXPECT_T(double, g, dn, 0, 1, sqrt(2.0));
    EXPECT_F32(g, mk(g, IR_OP_Identity, 1, I(x), 1), 0, 4, -1.5f, 0.5f, 2.5f, 2);
    ir_graph_free(g);
}

static void test_clip(void)
{
    IrGraph *g = G(13);
    int x = f32(g, 1, D(4), F(-3, -1, 1, 3));
    EXPECT_F32(g, mk(g, IR_OP_Clip, 3, I(x, f32(g, 0, NULL, F(-2)), f32(g, 0, NULL, F(2))), 1), 0, 4, -2, -1, 1, 2);
    EXPECT_F32(g, mk(g, IR_OP_Clip, 3, I(x, -1, f32(g, 0, NULL, F(0))), 1), 0, 4, -3, -1, 0, 0);
    int8_t xi[] = {-100, 5, 100}, lo = -10;
    EXPECT_T(int8_t, g, mk(g, IR_OP_Clip, 2, I(cval(g, IR_I8, 1, D(3), xi), cval(g, IR_I8, 0, NULL, &lo)), 1), 0, 3, -10, 5, 100);
    g->opset = 6;
    int c = mk(g, IR_OP_Clip, 1, I(x), 1);
    ir_attr_set_float(g, c, "min", -0.5f);
    EXPECT_F32(g, c, 0, 4, -0.5f, -0.5f, 1, 3);
    ir_graph_free(g);
}

static void test_cast(void)
{
    IrGraph *g = G(13);
    int x = f32(g, 1, D(4), F(-2.7f, 2.7f, 0, 1.0f / 3));
    int c = mk(g, IR_OP_Cast, 1, I(x), 1);
    ir_attr_set_int(g, c, "to", IR_I64);
    EXPECT_I64(g, c, 0, 4, -2, 2, 0, 0);
    int h = mk(g, IR_OP_Cast, 1, I(x), 1);
    ir_attr_set_int(g, h, "to", IR_F16);
    /* -2.7 -> 0xc166 (-2.69921875), 1/3 -> 0x3555 */
    EXPECT_T(uint16_t, g, h, 0, 4, 0xc166, 0x4166, 0, 0x3555);
    /* bfloat16 rounds to nearest even: 1 + 2^-8 is a tie and goes to 1 */
    int bx = f32(g, 1, D(3), F(1.00390625f, 1.01171875f, 65504.0f * 65536.0f));
    int bf = mk(g, IR_OP_Cast, 1, I(bx), 1);
    ir_attr_set_int(g, bf, "to", IR_BF16);
    EXPECT_T(uint16_t, g, bf, 0, 3, 0x3f80, 0x3f82, 0x4f80);
    /* float16 overflow and subnormals */
    int sx = f32(g, 1, D(3), F(70000, 5.9604645e-08f, -1e-9f));
    int sh = mk(g, IR_OP_Cast, 1, I(sx), 1);
    ir_attr_set_int(g, sh, "to", IR_F16);
    EXPECT_T(uint16_t, g, sh, 0, 3, 0x7c00, 0x0001, 0x8000);
    /* and back to float32 */
    uint16_t hv[] = {0x3555, 0x0001, 0xfc00};
    int back = mk(g, IR_OP_Cast, 1, I(cval(g, IR_F16, 1, D(3), hv)), 1);
    ir_attr_set_int(g, back, "to", IR_F32);
    EXPECT_F32(g, back, 0, 3, 0.333251953125f, 5.9604645e-08f, -INFINITY);
    /* integers wrap; bools are 0/1 */
    int w = mk(g, IR_OP_Cast, 1, I(i64(g, 1, D(3), L(300, -1, 0))), 1);
    ir_attr_set_int(g, w, "to", IR_U8);
    EXPECT_T(uint8_t, g, w, 0, 3, 44, 255, 0);
    int bo = mk(g, IR_OP_Cast, 1, I(i64(g, 1, D(3), L(300, -1, 0))), 1);
    ir_attr_set_int(g, bo, "to", IR_BOOL);
    EXPECT_BOOL(g, bo, 0, 3, 1, 1, 0);
    /* what ONNX leaves undefined is refused */
    int nan = mk(g, IR_OP_Cast, 1, I(f32(g, 0, NULL, F(NAN))), 1);
    ir_attr_set_int(g, nan, "to", IR_I32);
    EXPECT_FAIL(g, nan, "out of range");
    int big = mk(g, IR_OP_Cast, 1, I(f32(g, 0, NULL, F(300))), 1);
    ir_attr_set_int(g, big, "to", IR_I8);
    EXPECT_FAIL(g, big, "out of range");
    ir_graph_free(g);
}

static void test_reduce(void)
{
    IrGraph *g = G(18);
    int x = f32(g, 2, D(2, 3), F(1, 2, 3, 4, 5, 6));
    EXPECT_F32(g, mk(g, IR_OP_ReduceSum, 2, I(x, vec(g, 1, L(-1))), 1), 0, 2, 6, 15);
    EXPECT_F32(g, mk(g, IR_OP_ReduceMean, 2, I(x, vec(g, 1, L(0))), 1), 0, 3, 2.5f, 3.5f, 4.5f);
    EXPECT_F32(g, mk(g, IR_OP_ReduceMax, 1, I(x), 1), 0, 1, 6);
    EXPECT_F32(g, mk(g, IR_OP_ReduceMin, 2, I(x, vec(g, 1, L(1))), 1), 0, 2, 1, 4);
    EXPECT_F32(g, mk(g, IR_OP_ReduceProd, 2, I(x, vec(g, 1, L(1))), 1), 0, 2, 6, 120);
    EXPECT_F32(g, mk(g, IR_OP_ReduceL1, 2, I(f32(g, 1, D(2), F(-3, 4)), vec(g, 0, NULL)), 1), 0, 1, 7);
    EXPECT_F32(g, mk(g, IR_OP_ReduceL2, 1, I(f32(g, 1, D(2), F(-3, 4))), 1), 0, 1, 5);
    EXPECT_F32(g, mk(g, IR_OP_ReduceSumSquare, 1, I(f32(g, 1, D(2), F(-3, 4))), 1), 0, 1, 25);
    EXPECT_F32(g, mk(g, IR_OP_ReduceLogSumExp, 1, I(f32(g, 1, D(2), F(0, 0))), 1), 0, 1, logf(2));
    int noop = mk(g, IR_OP_ReduceSum, 2, I(x, vec(g, 0, NULL)), 1);
    ir_attr_set_int(g, noop, "noop_with_empty_axes", 1);
    EXPECT_F32(g, noop, 0, 6, 1, 2, 3, 4, 5, 6);
    EXPECT_I64(g, mk(g, IR_OP_ReduceSum, 1, I(i64(g, 1, D(3), L(INT64_MAX, 1, 1))), 1), 0, 1, INT64_MIN + 1);
    /* over an empty axis: Sum 0, Max -inf */
    int e = f32(g, 2, D(2, 0), NULL);
    EXPECT_F32(g, mk(g, IR_OP_ReduceSum, 2, I(e, vec(g, 1, L(1))), 1), 0, 2, 0, 0);
    EXPECT_F32(g, mk(g, IR_OP_ReduceMax, 2, I(e, vec(g, 1, L(1))), 1), 0, 2, -INFINITY, -INFINITY);
    int am = mk(g, IR_OP_ArgMax, 1, I(f32(g, 2, D(2, 3), F(1, 5, 5, 7, 0, 7))), 1);
    ir_attr_set_int(g, am, "axis", 1);
    EXPECT_I64(g, am, 0, 2, 1, 0);
    ir_attr_set_int(g, am, "select_last_index", 1);
    EXPECT_I64(g, am, 0, 2, 2, 2);
    int an = mk(g, IR_OP_ArgMin, 1, I(x), 1);
    ir_attr_set_int(g, an, "keepdims", 0);
    EXPECT_I64(g, an, 0, 3, 0, 0, 0);
    /* ReduceMean before 18 takes the attribute */
    g->opset = 13;
    int rm = mk(g, IR_OP_ReduceMean, 1, I(x), 1);
    ir_attr_set_ints(g, rm, "axes", 1, L(1));
    ir_attr_set_int(g, rm, "keepdims", 0);
    EXPECT_F32(g, rm, 0, 2, 2, 5);
    ir_graph_free(g);
}

static void test_cumsum_trilu(void)
{
    IrGraph *g = G(14);
    int x = f32(g, 2, D(2, 3), F(1, 2, 3, 4, 5, 6));
    EXPECT_F32(g, mk(g, IR_OP_CumSum, 2, I(x, i64(g, 0, NULL, L(1))), 1), 0, 6, 1, 3, 6, 4, 9, 15);
    int c = mk(g, IR_OP_CumSum, 2, I(x, i64(g, 0, NULL, L(-1))), 1);
    ir_attr_set_int(g, c, "exclusive", 1);
    ir_attr_set_int(g, c, "reverse", 1);
    EXPECT_F32(g, c, 0, 6, 5, 3, 0, 11, 6, 0);
    EXPECT_F32(g, mk(g, IR_OP_CumSum, 2, I(x, i64(g, 0, NULL, L(0))), 1), 0, 6, 1, 2, 3, 5, 7, 9);
    EXPECT_F32(g, mk(g, IR_OP_Trilu, 1, I(x), 1), 0, 6, 1, 2, 3, 0, 5, 6);
    int l = mk(g, IR_OP_Trilu, 2, I(x, i64(g, 0, NULL, L(-1))), 1);
    ir_attr_set_int(g, l, "upper", 0);
    EXPECT_F32(g, l, 0, 6, 0, 0, 0, 4, 0, 0);
    EXPECT_F32(g, mk(g, IR_OP_Trilu, 2, I(x, i64(g, 0, NULL, L(1))), 1), 0, 6, 0, 2, 3, 0, 0, 6);
    ir_graph_free(g);
}

static void test_indexing(void)
{
    IrGraph *g = G(13);
    int x = f32(g, 2, D(3, 2), F(1, 2, 3, 4, 5, 6));
    EXPECT_F32(g, mk(g, IR_OP_Gather, 2, I(x, i64(g, 1, D(2), L(-1, 0))), 1), 0, 4, 5, 6, 1, 2);
    int ga = mk(g, IR_OP_Gather, 2, I(x, i64(g, 0, NULL, L(1))), 1);
    ir_attr_set_int(g, ga, "axis", 1);
    EXPECT_F32(g, ga, 0, 3, 2, 4, 6);
    int32_t i32[] = {2, 0};
    EXPECT_F32(g, mk(g, IR_OP_Gather, 2, I(x, cval(g, IR_I32, 2, D(1, 2), i32)), 1), 0, 4, 5, 6, 1, 2);
    /* Shape -> Gather: the exporters' plumbing */
    EXPECT_I64(g, mk(g, IR_OP_Gather, 2, I(i64(g, 1, D(3), L(8, 16, 64)), i64(g, 0, NULL, L(2))), 1), 0, 1, 64);
    int ge = mk(g, IR_OP_GatherElements, 2, I(x, i64(g, 2, D(2, 2), L(1, 0, -1, 1))), 1);
    ir_attr_set_int(g, ge, "axis", 1);
    EXPECT_F32(g, ge, 0, 4, 2, 1, 4, 4);
    EXPECT_FAIL(g, mk(g, IR_OP_GatherElements, 2, I(x, i64(g, 2, D(1, 1), L(7))), 1), "out of range");
    int sc = mk(g, IR_OP_ScatterND, 3, I(x, i64(g, 2, D(2, 1), L(2, 2)), f32(g, 2, D(2, 2), F(10, 20, 30, 40))), 1);
    ir_attr_set_string(g, sc, "reduction", "add");
    EXPECT_F32(g, sc, 0, 6, 1, 2, 3, 4, 45, 66);
    EXPECT_F32(g, mk(g, IR_OP_ScatterND, 3, I(x, i64(g, 2, D(1, 2), L(0, 1)), f32(g, 1, D(1), F(9))), 1), 0, 6, 1, 9, 3, 4, 5, 6);
    EXPECT_FAIL(g, mk(g, IR_OP_ScatterND, 3, I(x, i64(g, 2, D(1, 2), L(3, 1)), f32(g, 1, D(1), F(9))), 1), "out of range");
    ir_graph_free(g);
}

static void test_movement(void)
{
    IrGraph *g = G(13);
    int x = f32(g, 2, D(2, 3), F(1, 2, 3, 4, 5, 6));
    EXPECT_F32(g, mk(g, IR_OP_Transpose, 1, I(x), 1), 0, 6, 1, 4, 2, 5, 3, 6);
    int c = mk(g, IR_OP_Concat, 3, I(x, f32(g, 2, D(2, 1), F(7, 8)), f32(g, 2, D(2, 0), NULL)), 1);
    ir_attr_set_int(g, c, "axis", -1);
    EXPECT_F32(g, c, 0, 8, 1, 2, 3, 7, 4, 5, 6, 8);
    int s = mk(g, IR_OP_Split, 2, I(x, vec(g, 2, L(1, 2))), 2);
    ir_attr_set_int(g, s, "axis", 1);
    EXPECT_F32(g, s, 1, 4, 2, 3, 5, 6);
    CHECK(((float *)out(g, s, 0))[1] == 4);
    EXPECT_F32(g, mk(g, IR_OP_Slice, 5, I(x, vec(g, 1, L(-1)), vec(g, 1, L(INT64_MIN)), vec(g, 1, L(1)), vec(g, 1, L(-2))), 1), 0, 4, 3, 1, 6, 4);
    EXPECT_F32(g, mk(g, IR_OP_Slice, 3, I(x, vec(g, 2, L(1, 1)), vec(g, 2, L(2, 3))), 1), 0, 2, 5, 6);
    EXPECT_F32(g, mk(g, IR_OP_Slice, 5, I(x, vec(g, 1, L(0)), vec(g, 1, L(9)), vec(g, 1, L(0)), vec(g, 1, L(INT64_MAX))), 1), 0, 3, 1, 2, 3);
    EXPECT_F32(g, mk(g, IR_OP_Expand, 2, I(f32(g, 2, D(2, 1), F(1, 2)), vec(g, 3, L(2, 1, 2))), 1), 0, 8, 1, 1, 2, 2, 1, 1, 2, 2);
    EXPECT_F32(g, mk(g, IR_OP_Tile, 2, I(f32(g, 2, D(1, 2), F(1, 2)), vec(g, 2, L(2, 2))), 1), 0, 8, 1, 2, 1, 2, 1, 2, 1, 2);
    EXPECT_F32(g, mk(g, IR_OP_Reshape, 2, I(x, vec(g, 2, L(3, -1))), 1), 0, 6, 1, 2, 3, 4, 5, 6);
    EXPECT_F32(g, mk(g, IR_OP_Unsqueeze, 2, I(x, vec(g, 1, L(0))), 1), 0, 6, 1, 2, 3, 4, 5, 6);
    ir_graph_free(g);
}

static void test_split_uneven(void)
{
    IrGraph *g = G(18);
    int x = i64(g, 1, D(5), L(1, 2, 3, 4, 5));
    int s = mk(g, IR_OP_Split, 1, I(x), 3);
    ir_attr_set_int(g, s, "num_outputs", 3);
    EXPECT_I64(g, s, 2, 1, 5);
    CHECK(((int64_t *)out(g, s, 1))[1] == 4);
    ir_graph_free(g);
}

static void test_pad(void)
{
    IrGraph *g = G(13);
    int x = f32(g, 1, D(3), F(1, 2, 3));
    EXPECT_F32(g, mk(g, IR_OP_Pad, 3, I(x, vec(g, 2, L(2, 1)), f32(g, 0, NULL, F(9))), 1), 0, 6, 9, 9, 1, 2, 3, 9);
    const char *modes[] = {"reflect", "edge", "wrap"};
    float want[3][7] = {{3, 2, 1, 2, 3, 2, 1}, {1, 1, 1, 2, 3, 3, 3}, {2, 3, 1, 2, 3, 1, 2}};
    for (int m = 0; m < 3; m++) {
        int p = mk(g, IR_OP_Pad, 2, I(x, vec(g, 2, L(2, 2))), 1);
        ir_attr_set_string(g, p, "mode", modes[m]);
        CHECK_EQ_INT(run(g, p), 0);
        CHECK(!memcmp(out(g, p, 0), want[m], sizeof want[m]));
    }
    EXPECT_F32(g, mk(g, IR_OP_Pad, 2, I(x, vec(g, 2, L(-1, 1))), 1), 0, 3, 2, 3, 0);
    g->opset = 2;
    int p = mk(g, IR_OP_Pad, 1, I(f32(g, 2, D(1, 2), F(1, 2))), 1);
    ir_attr_set_ints(g, p, "pads", 4, L(0, 1, 0, 0));
    ir_attr_set_float(g, p, "value", 5);
    EXPECT_F32(g, p, 0, 3, 5, 1, 2);
    ir_graph_free(g);
}

static void test_shape_range_const(void)
{
    IrGraph *g = G(15);
    int a = ir_value_new(g, "act", IR_ACTIVATION);
    ir_value_set_shape(&g->values[a], IR_F32, 3, D(2, 3, 4));
    EXPECT_I64(g, mk(g, IR_OP_Shape, 1, I(a), 1), 0, 3, 2, 3, 4);
    int s = mk(g, IR_OP_Shape, 1, I(a), 1);
    ir_attr_set_int(g, s, "start", -2);
    EXPECT_I64(g, s, 0, 2, 3, 4);
    EXPECT_I64(g, mk(g, IR_OP_Size, 1, I(a), 1), 0, 1, 24);
    EXPECT_I64(g, mk(g, IR_OP_Range, 3, I(i64(g, 0, NULL, L(10)), i64(g, 0, NULL, L(3)), i64(g, 0, NULL, L(-3))), 1), 0, 3, 10, 7, 4);
    EXPECT_F32(g, mk(g, IR_OP_Range, 3, I(f32(g, 0, NULL, F(1)), f32(g, 0, NULL, F(2)), f32(g, 0, NULL, F(0.3f))), 1), 0, 4, 1, 1 + 0.3f, 1 + 2 * 0.3f, 1 + 3 * 0.3f);
    int32_t seven = 7;
    int c = mk(g, IR_OP_ConstantOfShape, 1, I(vec(g, 2, L(2, 2))), 1);
    ir_attr_set_tensor(g, c, "value", cval(g, IR_I32, 1, D(1), &seven));
    EXPECT_T(int32_t, g, c, 0, 4, 7, 7, 7, 7);
    EXPECT_F32(g, mk(g, IR_OP_ConstantOfShape, 1, I(vec(g, 1, L(2))), 1), 0, 2, 0, 0);
    ir_graph_free(g);
}

static void test_matmul_gemm_einsum(void)
{
    IrGraph *g = G(13);
    int a = f32(g, 3, D(2, 1, 2), F(1, 2, 3, 4)), b = f32(g, 2, D(2, 2), F(1, 0, 0, 2));
    EXPECT_F32(g, mk(g, IR_OP_MatMul, 2, I(a, b), 1), 0, 4, 1, 4, 3, 8);
    EXPECT_F32(g, mk(g, IR_OP_MatMul, 2, I(f32(g, 1, D(2), F(1, 1)), b), 1), 0, 2, 1, 2);
    EXPECT_F32(g, mk(g, IR_OP_MatMul, 2, I(b, f32(g, 1, D(2), F(1, 1))), 1), 0, 2, 1, 2);
    EXPECT_I64(g, mk(g, IR_OP_MatMul, 2, I(i64(g, 2, D(1, 2), L(2, 3)), i64(g, 3, D(2, 2, 1), L(1, 1, 2, -1))), 1), 0, 2, 5, 1);
    int m = f32(g, 2, D(2, 3), F(1, 2, 3, 4, 5, 6));
    int ge = mk(g, IR_OP_Gemm, 3, I(m, m, f32(g, 1, D(2), F(100, 200))), 1);
    ir_attr_set_int(g, ge, "transB", 1);
    ir_attr_set_float(g, ge, "alpha", 2);
    ir_attr_set_float(g, ge, "beta", 0.5f);
    EXPECT_F32(g, ge, 0, 4, 78, 164, 114, 254);
    int gt = mk(g, IR_OP_Gemm, 2, I(m, m), 1);
    ir_attr_set_int(g, gt, "transA", 1);
    EXPECT_F32(g, gt, 0, 9, 17, 22, 27, 22, 29, 36, 27, 36, 45);
    int e = mk(g, IR_OP_Einsum, 2, I(a, b), 1);
    ir_attr_set_string(g, e, "equation", "bij,jk->bik");
    EXPECT_F32(g, e, 0, 4, 1, 4, 3, 8);
    int t = mk(g, IR_OP_Einsum, 1, I(m), 1);
    ir_attr_set_string(g, t, "equation", "ij->ji");
    EXPECT_F32(g, t, 0, 6, 1, 4, 2, 5, 3, 6);
    int s = mk(g, IR_OP_Einsum, 1, I(m), 1);
    ir_attr_set_string(g, s, "equation", "ij->");
    EXPECT_F32(g, s, 0, 1, 21);
    int el = mk(g, IR_OP_Einsum, 2, I(a, f32(g, 1, D(2), F(1, 10))), 1);
    ir_attr_set_string(g, el, "equation", "...j,j->...");
    EXPECT_F32(g, el, 0, 2, 21, 43);
    ir_graph_free(g);
}

static void test_fp16_arith(void)
{
    IrGraph *g = G(13);
    /* 1 + 2^-11 is not a float16: the sum rounds back to 1 (ties to even) */
    uint16_t one = 0x3c00, tiny = 0x1000; /* 2^-11 */
    int s = mk(g, IR_OP_Add, 2, I(cval(g, IR_F16, 0, NULL, &one), cval(g, IR_F16, 0, NULL, &tiny)), 1);
    EXPECT_T(uint16_t, g, s, 0, 1, 0x3c00);
    uint16_t b1 = 0x3f80, b2 = 0x4000; /* bfloat16 1 and 2 */
    int m = mk(g, IR_OP_Mul, 2, I(cval(g, IR_BF16, 0, NULL, &b1), cval(g, IR_BF16, 0, NULL, &b2)), 1);
    EXPECT_T(uint16_t, g, m, 0, 1, 0x4000);
    ir_graph_free(g);
}

static void test_refusals(void)
{
    IrGraph *g = G(13);
    /* an input without contents cannot be folded */
    int a = ir_value_new(g, "act", IR_ACTIVATION);
    ir_value_set_shape(&g->values[a], IR_F32, 1, D(2));
    EXPECT_FAIL(g, mk(g, IR_OP_Relu, 1, I(a), 1), "not a constant");
    EXPECT_FAIL(g, mk(g, IR_OP_ReduceMax, 1, I(i64(g, 1, D(0), NULL)), 1), "cannot fold");
    ir_graph_free(g);
}

int main(void)
{
    RUN(test_binary_float);
    RUN(test_binary_int);
    RUN(test_compare_logic_where);
    RUN(test_unary);
    RUN(test_clip);
    RUN(test_cast);
    RUN(test_reduce);
    RUN(test_cumsum_trilu);
    RUN(test_indexing);
    RUN(test_movement);
    RUN(test_split_uneven);
    RUN(test_pad);
    RUN(test_shape_range_const);
    RUN(test_matmul_gemm_einsum);
    RUN(test_fp16_arith);
    RUN(test_refusals);
    return CHECK_DONE();
}
