/* Unit tests of the FLOP counts (ir/flops.c): one node per case, shapes set by
 * hand, the count checked against the documented convention. */
#include <math.h>

#include "check.h"
#include "ir.h"

static IrGraph *g;

/* A value of dtype float32 with the given dims (rank -1: unknown). */
static int val(int rank, const int64_t *dims)
{
    static int k;
    char name[32];
    snprintf(name, sizeof name, "v%d", k++);
    int v = ir_value_new(g, name, IR_ACTIVATION);
    if (rank >= 0) ir_value_set_shape(&g->values[v], IR_F32, rank, dims);
    return v;
}

#define D(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

static int node(IrOp op, int nin, const int *in, int out)
{
    return ir_node_new(g, op, NULL, nin, in, 1, &out);
}

#define CHECK_FLOPS(n, want) CHECK_EQ_INT(llround(ir_node_flops(g, n)), want)

static void test_matmul_gemm_einsum(void)
{
    g = ir_graph_new("f.onnx");
    int a = val(D(2, 3, 4)), b = val(D(4, 5)), y = val(D(2, 3, 5));
    CHECK_FLOPS(node(IR_OP_MatMul, 2, (int[]){a, b}, y), 2 * 2 * 3 * 5 * 4);
    int ga = val(D(2, 3)), gb = val(D(3, 4)), gc = val(D(4)), gy = val(D(2, 4));
    CHECK_FLOPS(node(IR_OP_Gemm, 3, (int[]){ga, gb, gc}, gy), 2 * 8 * 3 + 8);
    int gy2 = val(D(2, 4));
    CHECK_FLOPS(node(IR_OP_Gemm, 2, (int[]){ga, gb}, gy2), 2 * 8 * 3);
    int ta = val(D(3, 2)), gy3 = val(D(2, 4));
    int n = node(IR_OP_Gemm, 2, (int[]){ta, gb}, gy3);
    ir_attr_set_int(g, n, "transA", 1);
    CHECK_FLOPS(n, 2 * 8 * 3);
    int ea = val(D(2, 3, 4)), eb = val(D(2, 4, 5)), ey = val(D(2, 3, 5));
    n = node(IR_OP_Einsum, 2, (int[]){ea, eb}, ey);
    ir_attr_set_string(g, n, "equation", "bij,bjk->bik");
    CHECK_FLOPS(n, 2 * 2 * 3 * 4 * 5);
    int tr = val(D(2, 4, 3));
    n = node(IR_OP_Einsum, 1, (int[]){ea}, tr);
    ir_attr_set_string(g, n, "equation", "bij->bji");
    CHECK_FLOPS(n, 0); /* a transpose moves data only */
    ir_graph_free(g);
}

static void test_conv(void)
{
    g = ir_graph_new("f.onnx");
    int x = val(D(1, 2, 5, 5)), w = val(D(4, 2, 3, 3)), bias = val(D(4)), y = val(D(1, 4, 3, 3));
    CHECK_FLOPS(node(IR_OP_Conv, 3, (int[]){x, w, bias}, y), 2 * 36 * 2 * 9 + 36);
    int wg = val(D(4, 1, 3, 3)), yg = val(D(1, 4, 3, 3));
    int n = node(IR_OP_Conv, 2, (int[]){x, wg}, yg);
    ir_attr_set_int(g, n, "group", 2);
    CHECK_FLOPS(n, 2 * 36 * 1 * 9);
    int tx = val(D(1, 2, 3, 3)), tw = val(D(2, 4, 3, 3)), ty = val(D(1, 4, 5, 5));
    CHECK_FLOPS(node(IR_OP_ConvTranspose, 2, (int[]){tx, tw}, ty), 2 * 18 * 4 * 9);
    /* the weight gradient (dy, x) -> dw runs the forward conv's products */
    int dy = val(D(1, 4, 3, 3)), dw = val(D(4, 2, 3, 3));
    CHECK_FLOPS(node(IR_OP_ConvGradWeight, 2, (int[]){dy, x}, dw), 2 * 36 * 2 * 9);
    ir_graph_free(g);
}

static void test_elementwise_and_movement(void)
{
    g = ir_graph_new("f.onnx");
    int x = val(D(2, 3)), y = val(D(2, 3)), p = val(D(2, 3)), r = val(D(3, 2));
    CHECK_FLOPS(node(IR_OP_Relu, 1, &x, y), 6);
    CHECK_FLOPS(node(IR_OP_Pow, 2, (int[]){x, y}, p), 8 * 6);
    CHECK_FLOPS(node(IR_OP_Transpose, 1, &x, r), 0);
    int s = val(D(2, 3));
    CHECK_FLOPS(node(IR_OP_Sum, 3, (int[]){x, y, p}, s), 2 * 6);
    int ln = val(D(2, 3));
    CHECK_FLOPS(node(IR_OP_LayerNormalization, 2, (int[]){x, y}, ln), 8 * 6);
    int u = val(-1, NULL), uy = val(-1, NULL);
    CHECK_FLOPS(node(IR_OP_Relu, 1, &u, uy), 0); /* unknown shape: no count yet */
    ir_graph_free(g);
}

static void test_reduce_pool_resize(void)
{
    g = ir_graph_new("f.onnx");
    int x = val(D(2, 3, 4)), m = val(D(2, 1, 4));
    CHECK_FLOPS(node(IR_OP_ReduceMean, 1, &x, m), 24);
    int im = val(D(1, 1, 4, 4)), pm = val(D(1, 1, 2, 2));
    int n = node(IR_OP_MaxPool, 1, &im, pm);
    ir_attr_set_ints(g, n, "kernel_shape", 2, (int64_t[]){2, 2});
    CHECK_FLOPS(n, 4 * 4);
    int gp = val(D(1, 1, 1, 1));
    CHECK_FLOPS(node(IR_OP_GlobalAveragePool, 1, &im, gp), 16);
    int small = val(D(1, 1, 2, 2)), big = val(D(1, 1, 4, 4)), big2 = val(D(1, 1, 4, 4));
    n = node(IR_OP_Resize, 1, &small, big);
    ir_attr_set_string(g, n, "mode", "linear");
    CHECK_FLOPS(n, 16 * 2 * 4);
    CHECK_FLOPS(node(IR_OP_Resize, 1, &small, big2), 0); /* nearest */
    ir_graph_free(g);
}

static void test_dft_and_losses(void)
{
    g = ir_graph_new("f.onnx");
    int x = val(D(3, 8, 1)), y = val(D(3, 8, 2));
    int n = node(IR_OP_DFT, 1, &x, y);
    ir_attr_set_int(g, n, "axis", 1);
    CHECK_FLOPS(n, 3 * 5 * 8 * 3);
    int y2 = val(D(3, 8, 2));
    n = node(IR_OP_DFT, 1, &x, y2);
    ir_attr_set_int(g, n, "axis", -2);
    CHECK_FLOPS(n, 3 * 5 * 8 * 3);
    int scores = val(D(4, 10)), labels = val(D(4)), loss = val(0, NULL);
    CHECK_FLOPS(node(IR_OP_SoftmaxCrossEntropyLoss, 2, (int[]){scores, labels}, loss), 6 * 40);
    int nll = val(0, NULL);
    CHECK_FLOPS(node(IR_OP_NegativeLogLikelihoodLoss, 2, (int[]){scores, labels}, nll), 4);
    ir_graph_free(g);
}

int main(void)
{
    RUN(test_matmul_gemm_einsum);
    RUN(test_conv);
    RUN(test_elementwise_and_movement);
    RUN(test_reduce_pool_resize);
    RUN(test_dft_and_losses);
    return CHECK_DONE();
}
