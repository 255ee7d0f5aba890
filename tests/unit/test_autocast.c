/* Mixed precision (ir/autocast.c) on a hand-built graph and on the zoo's
 * language model: every float32 product reads bf16 casts of its operands
 * (one cast per value however many products read it; a constant converted,
 * not cast), writes bf16 that one Cast widens to the value the graph read
 * before, and a Gemm's C is added afterwards in float32 (scaled by beta).
 * After autodiff the backward products are bf16 too, the parameters'
 * gradients float32, and the graph verifies. A fused head gets compute = 16
 * and keeps float32 operands. A widened product result that backward reads
 * (a Sin's input) is read there through a backward Cast of the bf16
 * value, so backward saves that and not the float32 one; a product plus
 * its bias (through a view) is computed again in backward from the bf16
 * product and the bias, an Add with an activation is not. On an inference
 * graph, a parameter only products read is stored in bf16 (cast once, at
 * compile time) and read by them directly; one read in float32 too keeps
 * its Cast. A backward product whose result only a Cast widens, for no
 * elementwise op, writes float32 itself. Numerics are the kernels' tests' and the precision tier's
 * (tests/precision). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "frontend.h"
#include "ir.h"
#include "train.h"

#define V(id) (&g->values[id])

static int value(IrGraph *g, const char *name, IrRole role, int rank, const int64_t *dims)
{
    int v = ir_value_new(g, name, role);
    ir_value_set_shape(V(v), IR_F32, rank, dims);
    if (role == IR_PARAM || role == IR_CONST) {
        int64_t n = ir_value_numel(V(v));
        float *p = malloc((size_t)n * sizeof *p);
        for (int64_t i = 0; i < n; i++) p[i] = (float)((i * 37 % 11) - 5) / 7.0f;
        ir_value_set_data(g, v, p);
    }
    return v;
}

static int node(IrGraph *g, IrOp op, int nin, const int *in)
{
    int out = ir_value_new(g, ir_unique_name(g, "y"), IR_ACTIVATION);
    int n = ir_node_new(g, op, NULL, nin, in, 1, &out);
    IR_ASSERT(ir_infer_node(g, n) == 0 || !"shape");
    return out;
}

/* readers of v among live nodes with op `op` (-1: any op) */
static int readers(const IrGraph *g, int v, int op)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin; j++)
            k += !g->nodes[i].dead && g->nodes[i].in[j] == v && (op < 0 || (int)g->nodes[i].op == op);
    return k;
}

/* Whether v, or a view of it, is read by an elementwise op. */
static int read_elementwise(const IrGraph *g, int v)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->nin < 1) continue;
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] == v && ((ir_ops[n->op].flags & (OPF_ELEMWISE | OPF_BROADCAST)) || n->op == IR_OP_ActivationGrad))
                return 1;
        if ((ir_ops[n->op].flags & OPF_VIEW) && n->in[0] == v && read_elementwise(g, n->out[0])) return 1;
    }
    return 0;
}

/* Every product reads bf16 and has no C; each forward product's result is
 * bf16, read by exactly one forward Cast to float32, and otherwise only by
 * backward Casts (ir_autocast_saved). A backward product writes bf16, or
 * float32 (out_dtype, ir_autocast_wide_results) that no Cast and no
 * elementwise op reads; *nwide counts those. */
static void check_products(const IrGraph *g, int *nfwd, int *nbwd, int *nwide)
{
    *nfwd = *nbwd = *nwide = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || (n->op != IR_OP_MatMul && n->op != IR_OP_Gemm)) continue;
        int wide = ir_attr_int(n, "out_dtype", IR_BF16) == IR_F32;
        CHECK(V(n->in[0])->dtype == IR_BF16 && V(n->in[1])->dtype == IR_BF16);
        CHECK(V(n->out[0])->dtype == (wide ? IR_F32 : IR_BF16));
        CHECK(ir_in(n, 2) < 0);
        if (wide) {
            (*nwide)++;
            CHECK(n->phase == IR_BACKWARD && readers(g, n->out[0], IR_OP_Cast) == 0 && !read_elementwise(g, n->out[0]));
        }
        if (n->phase == IR_FORWARD) {
            (*nfwd)++;
            int y = n->out[0];
            int fwd_casts = 0;
            for (int k = 0; k < g->nnodes; k++)
                fwd_casts += !g->nodes[k].dead && g->nodes[k].phase == IR_FORWARD && g->nodes[k].op == IR_OP_Cast &&
                             g->nodes[k].in[0] == y;
            CHECK(fwd_casts == 1 && readers(g, y, -1) == readers(g, y, IR_OP_Cast));
        } else {
            (*nbwd)++;
        }
    }
}

/* A graph with one input x [4, 8] (its id in *x). */
static IrGraph *graph_with_input(int *x)
{
    IrGraph *g = ir_graph_new("autocast.onnx");
    g->opset = 17;
    *x = value(g, "x", IR_INPUT, 2, (int64_t[]){4, 8});
    g->inputs = malloc(sizeof(int));
    g->inputs[g->ninputs++] = *x;
    return g;
}

/* The model's loss: sum(y * y), its one output. */
static void sum_of_squares_output(IrGraph *g, int y)
{
    int loss = node(g, IR_OP_ReduceSum, 1, (int[]){node(g, IR_OP_Mul, 2, (int[]){y, y})});
    ir_attr_set_int(g, g->nnodes - 1, "keepdims", 0);
    CHECK(ir_infer_node(g, g->nnodes - 1) == 0);
    g->outputs = malloc(sizeof(int));
    g->outputs[g->noutputs++] = loss;
    V(loss)->is_output = 1;
}

/* The bf16 training graph (loss kind as given) built and verified; on a
 * failure the message is printed, g freed and -1 returned. */
static int train_bf16(IrGraph *g, IrLossKind kind)
{
    IrTrainOptions o;
    ir_train_defaults(&o);
    o.loss_kind = kind;
    o.precision = IR_BF16;
    if (ir_build_training(g, &o) == 0 && ir_verify(g) == 0) return 0;
    fprintf(stderr, "  %s\n", g->err);
    check_failed_ = 1;
    ir_graph_free(g);
    return -1;
}

static void test_graph(void)
{
    int x;
    IrGraph *g = graph_with_input(&x);
    int w1 = value(g, "w1", IR_PARAM, 2, (int64_t[]){8, 6}), w3 = value(g, "w3", IR_PARAM, 2, (int64_t[]){8, 6});
    int w2 = value(g, "w2", IR_PARAM, 2, (int64_t[]){3, 6}), bias = value(g, "bias", IR_PARAM, 1, (int64_t[]){3});
    int k = value(g, "k", IR_CONST, 2, (int64_t[]){3, 3});
    /* x read by two products; a Gemm with transB, C and beta 0.5; a product by a constant */
    int h = node(g, IR_OP_Add, 2, (int[]){node(g, IR_OP_MatMul, 2, (int[]){x, w1}), node(g, IR_OP_MatMul, 2, (int[]){x, w3})});
    int r = node(g, IR_OP_Relu, 1, &h);
    int yv = ir_value_new(g, "gemm_y", IR_ACTIVATION);
    int gm = ir_node_new(g, IR_OP_Gemm, "gemm", 3, (int[]){r, w2, bias}, 1, &yv);
    ir_attr_set_int(g, gm, "transB", 1);
    ir_attr_set_float(g, gm, "beta", 0.5f);
    CHECK(ir_infer_node(g, gm) == 0);
    sum_of_squares_output(g, node(g, IR_OP_MatMul, 2, (int[]){yv, k}));
    if (train_bf16(g, IR_LOSS_MODEL) < 0) return;
    int nf, nb, nw;
    check_products(g, &nf, &nb, &nw);
    CHECK_EQ_INT(nf, 4);
    CHECK_EQ_INT(nb, 5); /* dx and dw of each product, less the constant's and the input's */
    /* the weights' gradients come out of their products in float32 (no Cast); the
     * gradient the ReLU's reads stays bf16, its Cast fused into the ReLU's loop */
    CHECK_EQ_INT(nw, 3);
    for (const char *const *p = (const char *const[]){"w1", "w2", "w3", NULL}; *p; p++) {
        int gr = ir_param_grad(g, ir_value_find(g, *p)), pr = gr >= 0 ? V(gr)->producer : -1;
        CHECK(pr >= 0 && (g->nodes[pr].op == IR_OP_MatMul || g->nodes[pr].op == IR_OP_Gemm));
    }
    x = ir_value_find(g, "x");
    CHECK_EQ_INT(readers(g, x, IR_OP_Cast), 1); /* one bf16 copy of x for both products */
    CHECK_EQ_INT(readers(g, x, -1), 1);
    CHECK(ir_value_find(g, "k") < 0);            /* the constant is converted, not cast */
    int kb = -1;
    for (int v = 0; v < g->nvalues; v++)
        if (!strncmp(V(v)->name, "k/bf16", 6)) kb = v;
    CHECK(kb >= 0 && V(kb)->role == IR_CONST && V(kb)->dtype == IR_BF16 && ((const uint16_t *)V(kb)->data)[0] == 0xbf37); /* -5/7 = -0.714286: 0xbf36db6e rounds up */
    /* beta C in float32 after the product, and the gradients of float32 parameters float32 */
    int y = ir_value_find(g, "gemm_y");
    CHECK(y >= 0 && g->nodes[V(y)->producer].op == IR_OP_Add && V(y)->dtype == IR_F32);
    CHECK_EQ_INT(readers(g, ir_value_find(g, "bias"), IR_OP_Mul), 1);
    for (const char *const *p = (const char *const[]){"w1", "w2", "w3", "bias", NULL}; *p; p++) {
        int gr = ir_param_grad(g, ir_value_find(g, *p));
        CHECK(gr >= 0 && V(gr)->dtype == IR_F32);
    }
    /* what backward keeps of the products is their bf16 operands */
    int *saved, ns = ir_saved_values(g, &saved), low = 0;
    for (int i = 0; i < ns; i++) low += V(saved[i])->dtype == IR_BF16;
    CHECK(low >= 3);
    free(saved);
    ir_graph_free(g);
}

/* gpt2_tiny with cross-entropy: its head stays one float32 LinearCrossEntropy
 * marked compute = 16; every other product is bf16. */
static void test_gpt2_tiny(void)
{
    IrGraph *g = ir_graph_new("models/gpt2_tiny/model.onnx");
    if (onnx_load(g, NULL, 0) < 0 || onnx_fold_infer(g) < 0) {
        fprintf(stderr, "  %s\n", g->err);
        check_failed_ = 1;
        ir_graph_free(g);
        return;
    }
    if (train_bf16(g, IR_LOSS_CE) < 0) return;
    int nf, nb, nw, nce = 0;
    check_products(g, &nf, &nb, &nw);
    CHECK(nf >= 8 && nb >= 2 * nf - 2);
    /* per block at least the four weights' gradients and the input gradients that
     * LayerNormGrad and the attention's transpose read; not the MLP's hidden one,
     * which GELU's gradient reads */
    CHECK(nw >= 2 * 7 && nb - nw >= 2);
    for (int v = 0; v < g->nvalues; v++) {
        if (V(v)->role != IR_PARAM || V(v)->rank != 2 || !strstr(V(v)->name, "c_")) continue;
        int gr = ir_param_grad(g, v), pr = gr >= 0 ? V(gr)->producer : -1;
        CHECK(pr >= 0 && g->nodes[pr].op == IR_OP_Gemm && ir_attr_int(&g->nodes[pr], "out_dtype", 0) == IR_F32);
    }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op != IR_OP_LinearCrossEntropy) continue;
        nce++;
        CHECK(ir_attr_int(n, "compute", 0) == IR_BF16 && V(n->in[0])->dtype == IR_F32 && V(n->in[1])->dtype == IR_F32);
    }
    CHECK_EQ_INT(nce, 1);
    /* the blocks' LayerNorms write the bf16 their products read (no Cast between);
     * the last one, which the fused head reads in float32, stays float32 */
    int nln = 0, nbf = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->op != IR_OP_LayerNormalization) continue;
        nln++;
        int bf = V(n->out[0])->dtype == IR_BF16;
        nbf += bf;
        CHECK(bf == (ir_attr_int(n, "out_dtype", IR_F32) == IR_BF16) && readers(g, n->out[0], IR_OP_Cast) == 0);
    }
    CHECK(nln == 5 && nbf == 4);
    ir_graph_free(g);
}

/* y = Sin(x W): Sin's gradient reads its input, the widened product */
static void test_saved_widening(void)
{
    int x;
    IrGraph *g = graph_with_input(&x);
    int w = value(g, "w", IR_PARAM, 2, (int64_t[]){8, 6});
    int h = node(g, IR_OP_MatMul, 2, (int[]){x, w});
    sum_of_squares_output(g, node(g, IR_OP_Sin, 1, &h));
    const char *hname = V(h)->name;
    if (train_bf16(g, IR_LOSS_MODEL) < 0) return;
    h = ir_value_find(g, hname);
    int again = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->phase != IR_BACKWARD) continue;
        for (int j = 0; j < n->nin; j++) CHECK(n->in[j] != h); /* the float32 product is not saved */
        again += n->op == IR_OP_Cast && V(n->in[0])->dtype == IR_BF16 && V(n->out[0])->dtype == IR_F32 &&
                 g->nodes[V(n->in[0])->producer].op == IR_OP_MatMul;
    }
    CHECK_EQ_INT(again, 1);
    int *saved, ns = ir_saved_values(g, &saved), low = 0;
    for (int i = 0; i < ns; i++) low += V(saved[i])->dtype == IR_BF16 && g->nodes[V(saved[i])->producer].op == IR_OP_MatMul;
    CHECK_EQ_INT(low, 1);
    free(saved);
    ir_graph_free(g);
}

/* Node i is an Add run again in backward over a backward Cast of a bf16
 * value (a gradient's sum reads no such Cast). */
static int again_add(const IrGraph *g, int i)
{
    const IrNode *n = &g->nodes[i];
    if (n->dead || n->op != IR_OP_Add || n->phase != IR_BACKWARD) return 0;
    int c = V(n->in[0])->producer;
    return c >= 0 && g->nodes[c].op == IR_OP_Cast && g->nodes[c].phase == IR_BACKWARD &&
           V(g->nodes[c].in[0])->dtype == IR_BF16;
}

/* y = Mul(r, r), r = Reshape(Gemm(x, W, b)): Mul's gradient reads the
 * product plus its bias through a view (a binary op: ir_sink_reshapes moves
 * the Reshape below unary ops only). Backward computes that Add again from
 * the bf16 product and b (and the Reshape over it), so it saves neither
 * float32 value; an Add of a widened product and an activation is left
 * alone. */
static void test_saved_bias(void)
{
    int x;
    IrGraph *g = graph_with_input(&x);
    int w = value(g, "w", IR_PARAM, 2, (int64_t[]){8, 6}), b = value(g, "b", IR_PARAM, 1, (int64_t[]){6});
    int shape = ir_value_new(g, "shape", IR_CONST);
    ir_value_set_shape(V(shape), IR_I64, 1, (int64_t[]){2});
    int64_t *sd = malloc(2 * sizeof *sd);
    sd[0] = 2, sd[1] = 12;
    ir_value_set_data(g, shape, sd);
    int h = node(g, IR_OP_Gemm, 3, (int[]){x, w, b}), r = node(g, IR_OP_Reshape, 2, (int[]){h, shape});
    /* a second product plus an activation (Cos of the first): computed once, saved */
    int w2 = value(g, "w2", IR_PARAM, 2, (int64_t[]){8, 6});
    int k = node(g, IR_OP_Add, 2, (int[]){node(g, IR_OP_MatMul, 2, (int[]){x, w2}), node(g, IR_OP_Cos, 1, &h)});
    int s = node(g, IR_OP_Add, 2, (int[]){node(g, IR_OP_Mul, 2, (int[]){r, r}), node(g, IR_OP_Reshape, 2, (int[]){node(g, IR_OP_Sin, 1, &k), shape})});
    sum_of_squares_output(g, s);
    const char *hname = V(h)->name, *rname = V(r)->name, *kname = V(k)->name;
    if (train_bf16(g, IR_LOSS_MODEL) < 0) return;
    h = ir_value_find(g, hname), r = ir_value_find(g, rname), k = ir_value_find(g, kname);
    int adds = 0, views = 0, k_read = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->phase != IR_BACKWARD) continue;
        for (int j = 0; j < n->nin; j++) {
            CHECK(n->in[j] != h && n->in[j] != r); /* neither float32 value is saved */
            k_read += n->in[j] == k;
        }
        if (again_add(g, i)) {
            adds++;
            CHECK(n->fwd == V(h)->producer && V(n->in[1])->role == IR_PARAM);
        }
        views += n->op == IR_OP_Reshape && n->fwd == V(r)->producer && V(n->in[0])->producer >= 0 &&
                 again_add(g, V(n->in[0])->producer);
    }
    CHECK_EQ_INT(adds, 1);
    CHECK_EQ_INT(views, 1);
    CHECK(k_read > 0); /* the Add of a product and an activation is saved as it was */
    ir_graph_free(g);
}

/* Inference: w1 only a product reads becomes a bf16 parameter; w2, read by
 * a product and by a float32 Relu, keeps its Cast. */
static void test_inference_weights(void)
{
    int x;
    IrGraph *g = graph_with_input(&x);
    int w1 = value(g, "w1", IR_PARAM, 2, (int64_t[]){8, 6}), w2 = value(g, "w2", IR_PARAM, 2, (int64_t[]){6, 6});
    int h = node(g, IR_OP_MatMul, 2, (int[]){x, w1});
    int y = node(g, IR_OP_MatMul, 2, (int[]){h, w2}), r = node(g, IR_OP_Relu, 1, &w2);
    g->outputs = malloc(2 * sizeof(int));
    g->outputs[g->noutputs++] = y;
    g->outputs[g->noutputs++] = r;
    V(y)->is_output = V(r)->is_output = 1;
    CHECK_EQ_INT(ir_autocast(g, IR_BF16), 0);
    CHECK_EQ_INT(ir_autocast_weights(g), 1);
    CHECK(ir_verify(g) == 0);
    w1 = ir_value_find(g, "w1"), w2 = ir_value_find(g, "w2");
    CHECK(w1 >= 0 && V(w1)->role == IR_PARAM && V(w1)->dtype == IR_BF16);
    CHECK(((const uint16_t *)V(w1)->data)[0] == 0xbf37); /* -5/7 rounded as the folder and kernels round it */
    CHECK_EQ_INT(readers(g, w1, IR_OP_MatMul), 1);
    CHECK_EQ_INT(readers(g, w1, -1), 1);
    CHECK(w2 >= 0 && V(w2)->dtype == IR_F32);
    CHECK_EQ_INT(readers(g, w2, IR_OP_Cast), 1);
    CHECK_EQ_INT(readers(g, w2, IR_OP_Relu), 1);
    int casts = 0;
    for (int i = 0; i < g->nnodes; i++) casts += !g->nodes[i].dead && g->nodes[i].op == IR_OP_Cast;
    CHECK_EQ_INT(casts, 5); /* x, h (widened, then narrowed for the second product) and w2 to bf16; two widenings */
    ir_graph_free(g);
}

int main(void)
{
    RUN(test_inference_weights);
    RUN(test_graph);
    RUN(test_saved_widening);
    RUN(test_saved_bias);
    RUN(test_gpt2_tiny);
    return CHECK_DONE();
}
