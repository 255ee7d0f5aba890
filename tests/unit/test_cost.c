/* Unit tests of the cost model (optimizer/cost.c, hwprofile.c) and the JSON
 * reader under it (optimizer/json.c): the roofline on hand-built nodes with a
 * made-up device (a product bound by compute, an addition by bandwidth,
 * views free, fusion keeping values in registers and paying one launch), the
 * built-in profiles and override files with their messages, and measured
 * costs: loaded by name, a missing node estimated and counted, a
 * recomputation costing its forward node, and the files refused (another
 * model, other shapes, another op, device or mode). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"
#include "optimizer.h"
#include "tfiles.h"

#define CHECK_NEAR(a, b) CHECK(fabs((a) - (b)) <= 1e-9 * fabs(b) + 1e-15)

static IrGraph *g;

static int val(const char *name, IrDType dt, int64_t n0, int64_t n1)
{
    int v = ir_value_new(g, name, IR_ACTIVATION);
    int64_t dims[2] = {n0, n1};
    ir_value_set_shape(&g->values[v], dt, n1 ? 2 : 1, dims);
    return v;
}

static int node(IrOp op, const char *name, int a, int b, int out)
{
    int in[2] = {a, b};
    return ir_node_new(g, op, name, b >= 0 ? 2 : 1, in, 1, &out);
}

/* A device with round figures, so that each bound is easy to compute. */
static const OptDevice dev = {
    .name = "test", .flops_f32 = 1e12, .flops_bf16 = 4e12, .flops_f16 = 4e12, .flops_f64 = 5e11,
    .flops_i8 = 8e12, .vec_flops_f32 = 1e11, .mem_bw = 1e11, .link_bw = 1e9, .launch_s = 1e-6, .mem_bytes = 1 << 30,
};

static void test_roofline(void)
{
    g = ir_graph_new("r.onnx");
    int a = val("a", IR_F32, 1024, 1024), b = val("b", IR_F32, 1024, 1024), y = val("y", IR_F32, 1024, 1024);
    int mm = node(IR_OP_MatMul, "mm", a, b, y);
    int h = val("h", IR_BF16, 1024, 1024), hw = val("hw", IR_BF16, 1024, 1024), hy = val("hy", IR_BF16, 1024, 1024);
    int mmh = node(IR_OP_MatMul, "mmh", h, hw, hy);
    int x = val("x", IR_F32, 1 << 20, 0), z = val("z", IR_F32, 1 << 20, 0), s = val("s", IR_F32, 1 << 20, 0);
    int add = node(IR_OP_Add, "add", x, z, s);
    int r = val("r", IR_F32, 1 << 20, 0);
    int relu = node(IR_OP_Relu, "relu", s, -1, r);
    int shape = ir_value_new(g, "shape", IR_CONST), v = val("v", IR_F32, 1024, 1024);
    ir_value_set_shape(&g->values[shape], IR_I64, 1, (int64_t[]){2});
    int view = node(IR_OP_Reshape, "view", y, shape, v);
    OptCosts c;
    CHECK(opt_costs_analytic(g, &dev, NULL, &c) == 0);
    double mm_flops = 2.0 * 1024 * 1024 * 1024;
    /* compute-bound: 2.1 ms of products against 126 us of bytes */
    CHECK_NEAR(c.seconds[mm], mm_flops / dev.flops_f32 + dev.launch_s);
    CHECK_NEAR(c.seconds[mmh], mm_flops / dev.flops_bf16 + dev.launch_s);
    /* bandwidth-bound: 126 us for 12 MiB against 10 us for 1M additions */
    CHECK_NEAR(c.seconds[add], 3.0 * 4 * (1 << 20) / dev.mem_bw + dev.launch_s);
    CHECK(c.seconds[view] == 0);
    CHECK_STR_CONTAINS(c.source, "analytic");
    opt_costs_free(&c);
    /* add fused into relu's loop: s stays in registers, one launch for both */
    int *run_at = ir_xmalloc((size_t)g->nnodes * sizeof *run_at);
    for (int i = 0; i < g->nnodes; i++) run_at[i] = i;
    run_at[add] = relu;
    CHECK(opt_node_bytes(g, add, run_at) == 2.0 * 4 * (1 << 20));
    CHECK(opt_node_bytes(g, relu, run_at) == 4.0 * (1 << 20));
    CHECK(opt_costs_analytic(g, &dev, run_at, &c) == 0);
    CHECK_NEAR(c.seconds[add], 2.0 * 4 * (1 << 20) / dev.mem_bw);
    CHECK_NEAR(c.seconds[relu], 4.0 * (1 << 20) / dev.mem_bw + dev.launch_s);
    opt_costs_free(&c);
    free(run_at);
    ir_graph_free(g);
}

static void test_builtin_devices(void)
{
    static const char *const names[] = {"cpu", "a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200"};
    char err[512];
    OptDevice d;
    CHECK_EQ_INT(opt_device_count(), 6);
    for (int i = 0; i < 6; i++) {
        CHECK(opt_device_lookup(names[i], &d, err, sizeof err) == 0);
        CHECK(!strcmp(d.name, names[i]) && d.what[0]);
        CHECK(d.flops_f32 > 0 && d.flops_bf16 >= d.flops_f32 && d.vec_flops_f32 > 0 && d.mem_bw > 0);
        CHECK(d.link_bw > 0 && d.launch_s > 0 && d.mem_bytes > 0);
        CHECK(opt_device_at(i) != NULL);
        CHECK(opt_device_link(&d).overlap == (i > 0)); /* copies beside compute on the GPUs, not on cpu */
    }
    CHECK(opt_device_at(6) == NULL);
    CHECK(opt_device_lookup("tpu", &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "unknown device 'tpu' (cpu, a100-40gb");
}

/* Writes text to a file in tmpdir and looks it up as a device. */
static int lookup_text(const char *file, const char *text, OptDevice *d, char *err, size_t n)
{
    write_bytes(tmp(file), text, strlen(text));
    return opt_device_lookup(tmp(file), d, err, n);
}

static void test_device_files(void)
{
    char err[512];
    OptDevice d;
    CHECK(lookup_text("good.json", "{\"base\": \"h100-sxm\", \"name\": \"mine\",\n \"mem_bw\": 2e12, \"launch_s\": 0}",
                      &d, err, sizeof err) == 0);
    CHECK(!strcmp(d.name, "mine") && d.mem_bw == 2e12 && d.launch_s == 0 && d.flops_bf16 == 989.5e12);
    CHECK_STR_CONTAINS(d.what, "h100-sxm, overridden by");
    CHECK(lookup_text("sync.json", "{\"base\": \"h100-sxm\", \"copy_overlap\": 0, \"link_bw\": 5e10}", &d, err,
                      sizeof err) == 0);
    CHECK(!opt_device_link(&d).overlap && opt_device_link(&d).bw == 5e10);
    CHECK(lookup_text("unknown.json", "{\"base\": \"cpu\",\n \"mem_bandwidth\": 1}", &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "line 2: unknown field \"mem_bandwidth\" (known: base, name");
    CHECK(lookup_text("neg.json", "{\"base\": \"cpu\", \"flops_f32\": -1}", &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "\"flops_f32\" must be a positive number, not -1");
    CHECK(lookup_text("str.json", "{\"base\": \"cpu\", \"mem_bw\": \"fast\"}", &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "\"mem_bw\" must be a positive number, not a string");
    CHECK(lookup_text("mem.json", "{\"base\": \"cpu\", \"mem_bytes\": 1.5}", &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "\"mem_bytes\" must be a positive whole number of bytes, not 1.5");
    CHECK(lookup_text("nobase.json", "{\"mem_bw\": 1e9}", &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "no \"base\": name the built-in profile the file overrides (cpu,");
    CHECK(lookup_text("badbase.json", "{\"base\": \"v100\"}", &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "unknown base 'v100'");
    CHECK(lookup_text("array.json", "[1, 2]", &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "a device file is a JSON object, not an array");
    CHECK(lookup_text("broken.json", "{\"base\": \"cpu\",\n\n \"mem_bw\": }", &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "broken.json: not valid JSON: line 3: expected a value, found '}'");
    CHECK(opt_device_lookup(tmp("absent.json"), &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "absent.json: cannot open");
}

static void test_json_reader(void)
{
    char err[256];
    const char *text = "{\"a\": [1, -2.5e3, true, false, null],\n \"s\": \"q\\\"\\\\\\n\\u00e9\\ud83d\\ude00\", \"o\": {}}";
    OptJson *j = opt_json_parse(text, strlen(text), err, sizeof err);
    CHECK(j && j->kind == OPT_JSON_OBJ && j->n == 3);
    const OptJson *a = opt_json_get(j, "a");
    CHECK(a && a->kind == OPT_JSON_ARR && a->n == 5 && a->child->num == 1 && a->child->next->num == -2500);
    CHECK(a && a->child->next->next->kind == OPT_JSON_BOOL && a->child->next->next->num == 1);
    const OptJson *s = opt_json_get(j, "s");
    CHECK(s && s->kind == OPT_JSON_STR && !strcmp(s->str, "q\"\\\n\xc3\xa9\xf0\x9f\x98\x80") && s->line == 2);
    CHECK(opt_json_get(j, "o")->n == 0 && opt_json_get(j, "missing") == NULL);
    opt_json_free(j);
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"[1, 2", "line 1: expected ',' or ']', found the end of the file"},
        {"{\"a\" 1}", "expected ':' after a member name"},
        {"[01]", "expected ',' or ']', found '1'"},
        {"[1.]", "a number needs a digit after '.'"},
        {"[+1]", "expected a value, found '+'"},
        {"\"abc", "a string is not closed"},
        {"\"a\\u0000\"", "bad \\u escape"},
        {"\"\\x\"", "unknown escape '\\x'"},
        {"[1] [2]", "unexpected '[' after the value"},
        {"[1e999]", "out of range"},
        {"tru", "expected a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        CHECK(opt_json_parse(bad[i].text, strlen(bad[i].text), err, sizeof err) == NULL);
        CHECK_STR_CONTAINS(err, bad[i].msg);
    }
    /* nesting is refused at OPT_JSON_DEPTH, never recursed into */
    char deep[4 * OPT_JSON_DEPTH];
    memset(deep, '[', sizeof deep);
    CHECK(opt_json_parse(deep, sizeof deep, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "nested deeper than");
}

/* The graph of a tiny training step: mm (forward), its recomputation, a backward node. */
static void costs_graph(void)
{
    g = ir_graph_new("c.onnx");
    int a = val("a", IR_F32, 64, 64), b = val("b", IR_F32, 64, 64), y = val("y", IR_F32, 64, 64);
    int y2 = val("y2", IR_F32, 64, 64), r = val("r", IR_F32, 64, 64), d = val("d", IR_F32, 64, 64);
    node(IR_OP_MatMul, "mm", a, b, y);
    node(IR_OP_Relu, "relu", y, -1, r);
    int re = node(IR_OP_MatMul, "mm", a, b, y2); /* run again: the forward node's name */
    g->nodes[re].phase = IR_BACKWARD;
    g->nodes[re].fwd = 0;
    int bw = node(IR_OP_Mul, "bwd/mul", y2, r, d);
    g->nodes[bw].phase = IR_BACKWARD;
    g->nodes[bw].fwd = 1;
}

/* A costs file with the given entries for costs_graph's nodes. */
static const char *costs_file(const char *file, const char *device, const char *mode, const char *entries)
{
    char text[2048];
    snprintf(text, sizeof text, "{\"device\": \"%s\", \"mode\": \"%s\", \"step_s\": 1,\n \"nodes\": [%s]}", device,
             mode, entries);
    write_bytes(tmp(file), text, strlen(text));
    return tmp(file);
}

static void test_measured_costs(void)
{
    costs_graph();
    char mm[160], relu[160], mul[160], all[768];
    double mm_bytes = opt_node_bytes(g, 0, NULL), ew_bytes = opt_node_bytes(g, 1, NULL);
    snprintf(mm, sizeof mm, "{\"name\": \"mm\", \"op\": \"MatMul\", \"seconds\": 0.5, \"flops\": %.17g, \"bytes\": %.17g}",
             ir_node_flops(g, 0), mm_bytes);
    snprintf(relu, sizeof relu, "{\"name\": \"relu\", \"op\": \"Relu\", \"seconds\": 0.25, \"flops\": %.17g, \"bytes\": %.17g}",
             ir_node_flops(g, 1), ew_bytes);
    snprintf(mul, sizeof mul, "{\"name\": \"bwd/mul\", \"op\": \"Mul\", \"seconds\": 0.125, \"flops\": %.17g, \"bytes\": %.17g}",
             ir_node_flops(g, 3), opt_node_bytes(g, 3, NULL));
    OptDevice cpu;
    char err[256];
    CHECK(opt_device_lookup("cpu", &cpu, err, sizeof err) == 0);
    OptCosts c;
    snprintf(all, sizeof all, "%s,\n%s,\n%s", mm, relu, mul);
    CHECK(opt_costs_load(g, costs_file("all.json", "cpu", "train", all), &cpu, NULL, &c) == 0);
    CHECK(c.seconds[0] == 0.5 && c.seconds[1] == 0.25 && c.seconds[2] == 0.5 && c.seconds[3] == 0.125);
    CHECK_STR_CONTAINS(c.source, "(3 of 3 nodes)");
    opt_costs_free(&c);
    /* a file measured with recomputation lists mm twice: the second entry is unused */
    snprintf(all, sizeof all, "%s,\n%s,\n%s,\n%s", mm, relu, mul, mm);
    CHECK(opt_costs_load(g, costs_file("rerun.json", "cpu", "train", all), &cpu, NULL, &c) == 0);
    CHECK(c.seconds[2] == 0.5);
    CHECK_STR_CONTAINS(c.source, "(3 of 3 nodes; file entries unused: 1)");
    opt_costs_free(&c);

    /* bwd/mul missing: its analytic cost times measured/analytic over mm and relu */
    snprintf(all, sizeof all, "%s,\n%s", mm, relu);
    CHECK(opt_costs_load(g, costs_file("two.json", "cpu", "train", all), &cpu, NULL, &c) == 0);
    OptCosts an;
    opt_costs_analytic(g, &cpu, NULL, &an);
    CHECK_NEAR(c.seconds[3], an.seconds[3] * 0.75 / (an.seconds[0] + an.seconds[1]));
    CHECK_STR_CONTAINS(c.source, "2 of 3 nodes; 1 estimated: analytic x");
    opt_costs_free(&an);
    opt_costs_free(&c);

    /* refusals */
    snprintf(all, sizeof all, "%s", mm);
    CHECK(opt_costs_load(g, costs_file("one.json", "cpu", "train", all), &cpu, NULL, &c) == -1);
    CHECK_STR_CONTAINS(g->err, "2 of the 3 nodes are not in the file");
    CHECK_STR_CONTAINS(g->err, "another model");
    CHECK(opt_costs_load(g, costs_file("dev.json", "h100-sxm", "train", all), &cpu, NULL, &c) == -1);
    CHECK_STR_CONTAINS(g->err, "measured on device 'h100-sxm', but the costs are wanted for 'cpu'");
    CHECK(opt_costs_load(g, costs_file("mode.json", "cpu", "infer", all), &cpu, NULL, &c) == -1);
    CHECK_STR_CONTAINS(g->err, "measured with --mode infer, but this is a training graph");
    snprintf(all, sizeof all, "{\"name\": \"mm\", \"op\": \"Gemm\", \"seconds\": 1, \"flops\": 0, \"bytes\": 0},\n%s,\n%s",
             relu, mul);
    CHECK(opt_costs_load(g, costs_file("op.json", "cpu", "train", all), &cpu, NULL, &c) == -1);
    CHECK_STR_CONTAINS(g->err, "measured as a Gemm node, but here it is a MatMul");
    snprintf(all, sizeof all, "%s,\n%s,\n{\"name\": \"bwd/mul\", \"op\": \"Mul\", \"seconds\": 1, \"flops\": 8, \"bytes\": 8}",
             mm, relu);
    CHECK(opt_costs_load(g, costs_file("shape.json", "cpu", "train", all), &cpu, NULL, &c) == -1);
    CHECK_STR_CONTAINS(g->err, "line 4: measured with other shapes (FLOPs 8 there, 4096 here)");
    CHECK(opt_costs_load(g, costs_file("field.json", "cpu", "train", "{\"name\": \"mm\"}"), &cpu, NULL, &c) == -1);
    CHECK_STR_CONTAINS(g->err, "a node needs \"name\" and \"op\"");
    CHECK(opt_costs_load(g, tmp("nothing.json"), &cpu, NULL, &c) == -1);
    CHECK_STR_CONTAINS(g->err, "nothing.json: cannot open");
    ir_graph_free(g);
}

int main(void)
{
    if (tfiles_init("loom_cost")) return 1;
    RUN(test_roofline);
    RUN(test_builtin_devices);
    RUN(test_device_files);
    RUN(test_json_reader);
    RUN(test_measured_costs);
    tfiles_cleanup();
    return CHECK_DONE();
}
