/* Unit tests of the IR printer (ir/print.c): a small hand-built graph prints
 * to exactly the expected text; shapes and names format as documented; the
 * printer leaves the graph (and its error message) untouched. */
#include <stdlib.h>

#include "check.h"
#include "ir.h"

/* ir_print into a string (free it). */
static char *print_to_string(const IrGraph *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print(g, f);
    fclose(f);
    return buf;
}

static void check_text(const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "  printed:\n%s  expected:\n%s", got, want);
        CHECK(!"printed IR differs");
    }
}

static void set_shape(IrGraph *g, int v, IrDType dt, int rank, const int64_t *dims)
{
    ir_value_set_shape(&g->values[v], dt, rank, dims);
}

/* Nodes are created consumer-first so the printer must sort them. */
static IrGraph *sample(void)
{
    IrGraph *g = ir_graph_new("m.onnx");
    g->graph_name = "tiny";
    g->opset = 17;
    int x = ir_value_new(g, "x", IR_INPUT);
    int w = ir_value_new(g, "fc.weight", IR_PARAM);
    int s = ir_value_new(g, "onnx::Reshape_3", IR_CONST);
    int eps = ir_value_new(g, "half", IR_CONST);
    int y = ir_value_new(g, "y", IR_ACTIVATION);
    int t = ir_value_new(g, "t", IR_ACTIVATION);
    int r = ir_value_new(g, "out \"q\"\n", IR_ACTIVATION);
    int c = ir_value_new(g, "c", IR_ACTIVATION);
    set_shape(g, x, IR_F32, 2, (int64_t[]){2, 3});
    set_shape(g, w, IR_F32, 2, (int64_t[]){3, 4});
    ir_value_set_data(g, w, calloc(12, sizeof(float)));
    set_shape(g, s, IR_I64, 1, (int64_t[]){2});
    int64_t *sd = malloc(2 * sizeof *sd);
    sd[0] = 4, sd[1] = 2;
    ir_value_set_data(g, s, sd);
    set_shape(g, eps, IR_F32, 0, NULL);
    float *ed = malloc(sizeof *ed);
    *ed = 0.5f;
    ir_value_set_data(g, eps, ed);
    set_shape(g, y, IR_F32, 2, (int64_t[]){2, 4});
    set_shape(g, t, IR_F32, 2, (int64_t[]){4, 2});
    set_shape(g, r, IR_F32, 2, (int64_t[]){4, 2});
    /* c is left uninferred */

    int gelu = ir_node_new(g, IR_OP_Gelu, "act", 1, &t, 1, &r);
    ir_attr_set_string(g, gelu, "approximate", "tanh");
    int clip = ir_node_new(g, IR_OP_Clip, "", 3, (int[]){r, -1, eps}, 1, &c);
    g->nodes[clip].phase = IR_BACKWARD;
    int tr = ir_node_new(g, IR_OP_Transpose, "tr", 1, &y, 1, &t);
    ir_attr_set_ints(g, tr, "perm", 2, (int64_t[]){1, 0});
    ir_attr_set_float(g, tr, "scale", 1e-5f);
    ir_node_new(g, IR_OP_MatMul, "/layer.0/MatMul", 2, (int[]){x, w}, 1, &y);

    g->inputs = malloc(sizeof(int));
    g->inputs[0] = x;
    g->ninputs = 1;
    g->outputs = malloc(2 * sizeof(int));
    g->outputs[0] = c;
    g->outputs[1] = r;
    g->noutputs = 2;
    return g;
}

static void test_print_sample(void)
{
    IrGraph *g = sample();
    char *got = print_to_string(g);
    check_text(got,
               "# graph tiny from m.onnx, opset 17\n"
               "input %x: float32[2,3]\n"
               "param @fc.weight: float32[3,4]\n"
               "const $onnx::Reshape_3: int64[2] = [4, 2]\n"
               "const $half: float32[] = 0.5\n"
               "%y: float32[2,4] = MatMul(%x, @fc.weight)  # node /layer.0/MatMul\n"
               "%t: float32[4,2] = Transpose(%y) {perm=[1, 0], scale=1e-05}  # node tr\n"
               "%\"out \\\"q\\\"\\n\": float32[4,2] = Gelu(%t) {approximate=\"tanh\"}  # node act\n"
               "%c: ? = Clip(%\"out \\\"q\\\"\\n\", _, $half)  # node Clip_1, backward\n"
               "output %c\n"
               "output %\"out \\\"q\\\"\\n\"\n");
    free(got);
    ir_graph_free(g);
}

static void test_print_is_deterministic_and_pure(void)
{
    IrGraph *g = sample();
    strcpy(g->err, "keep me");
    char *a = print_to_string(g), *b = print_to_string(g);
    CHECK(strcmp(a, b) == 0);
    CHECK(strcmp(g->err, "keep me") == 0);
    free(a);
    free(b);
    ir_graph_free(g);
}

static void test_print_cycle_falls_back(void)
{
    IrGraph *g = ir_graph_new("c.onnx");
    int a = ir_value_new(g, "a", IR_ACTIVATION), b = ir_value_new(g, "b", IR_ACTIVATION);
    ir_node_new(g, IR_OP_Relu, "ra", 1, &b, 1, &a);
    ir_node_new(g, IR_OP_Neg, "rb", 1, &a, 1, &b);
    g->nodes[0].in[0] = b;
    strcpy(g->err, "before");
    char *got = print_to_string(g);
    check_text(got, "# graph \"\" from c.onnx, opset 0\n"
                    "# not a valid DAG: nodes in id order\n"
                    "%a: ? = Relu(%b)  # node ra\n"
                    "%b: ? = Neg(%a)  # node rb\n");
    CHECK(strcmp(g->err, "before") == 0);
    free(got);
    /* a broken id prints, it does not crash */
    g->nodes[1].in[0] = 77;
    got = print_to_string(g);
    CHECK_STR_CONTAINS(got, "Neg(%<bad id 77>)");
    free(got);
    ir_graph_free(g);
}

static void test_shape_str(void)
{
    IrValue v = {0};
    char buf[64];
    v.rank = -1;
    CHECK(strcmp(ir_shape_str(&v, buf, sizeof buf), "?") == 0);
    v.dtype = IR_F16;
    CHECK(strcmp(ir_shape_str(&v, buf, sizeof buf), "float16[...]") == 0);
    v.dtype = IR_F32;
    v.rank = 0;
    CHECK(strcmp(ir_shape_str(&v, buf, sizeof buf), "float32[]") == 0);
    v.rank = 3;
    v.dims[0] = 4, v.dims[1] = 32, v.dims[2] = 64;
    CHECK(strcmp(ir_shape_str(&v, buf, sizeof buf), "float32[4,32,64]") == 0);
    v.dims[1] = -1;
    CHECK(strcmp(ir_shape_str(&v, buf, sizeof buf), "float32[4,?,64]") == 0);
    v.dtype = IR_UNDEF;
    CHECK(strcmp(ir_shape_str(&v, buf, sizeof buf), "?[4,?,64]") == 0);
    /* a short buffer truncates, terminated */
    v.dtype = IR_I64;
    v.rank = 8;
    for (int i = 0; i < 8; i++) v.dims[i] = 1000000000000LL;
    char small[10];
    ir_shape_str(&v, small, sizeof small);
    CHECK(strcmp(small, "int64[100") == 0);
}

static void test_name_str(void)
{
    char buf[64];
    CHECK(strcmp(ir_name_str("/h.0/attn/MatMul_output_0", buf, sizeof buf),
                 "/h.0/attn/MatMul_output_0") == 0);
    CHECK(strcmp(ir_name_str("onnx::Add_7", buf, sizeof buf), "onnx::Add_7") == 0);
    CHECK(strcmp(ir_name_str("a b", buf, sizeof buf), "\"a b\"") == 0);
    CHECK(strcmp(ir_name_str("q\"\\\t\x01\xc3\xa9", buf, sizeof buf),
                 "\"q\\\"\\\\\\t\\x01\\xc3\\xa9\"") == 0);
    CHECK(strcmp(ir_name_str("", buf, sizeof buf), "\"\"") == 0);
    char small[8];
    CHECK(strcmp(ir_name_str("abcdefghijkl", small, sizeof small), "abcd...") == 0);
}

int main(void)
{
    RUN(test_print_sample);
    RUN(test_print_is_deterministic_and_pure);
    RUN(test_print_cycle_falls_back);
    RUN(test_shape_str);
    RUN(test_name_str);
    return CHECK_DONE();
}
