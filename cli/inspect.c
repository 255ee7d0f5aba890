/* `loom inspect MODEL.onnx`: load a model, fold constants, infer shapes and
 * report what the compiler sees: the model's facts, its inputs and outputs,
 * how many nodes of each op, parameter and constant sizes, the FLOPs of one
 * forward pass and the bytes of all forward activations; as text, as one
 * JSON object (--json), with the IR (--ir), or with the IR dumped after a
 * chosen pass (--dump-after). The pipeline in run_passes is the compiler's
 * front half, one call per pass with the verifier between passes. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "frontend.h"
#include "ir.h"

static const char usage[] =
    "usage: loom inspect MODEL.onnx [--dim NAME=N]... [--ir] [--json] [--dump-after PASS]\n"
    "\n"
    "Load an ONNX model, fold its constants and infer every shape, then print its\n"
    "facts: inputs and outputs, node count per op, parameters, constant bytes, the\n"
    "FLOPs of one forward pass and the bytes of all forward activations.\n"
    "\n"
    "  --dim NAME=N         bind a symbolic dimension (a dim_param name, or\n"
    "                       INPUT:AXIS=N for an input axis); repeatable\n"
    "  --ir                 also print the IR after the facts\n"
    "  --json               print the facts as one JSON object instead\n"
    "  --dump-after PASS    print the IR to stderr after PASS (load, fold)\n";

static const char *const passes[] = {"load", "fold"};

typedef struct {
    CliModel m;
    int ir, json;
} Options;

/* ---- the facts ---- */

typedef struct {
    int op;
    int count;
} OpCount;

typedef struct {
    OpCount ops[IR_NOPS];
    int nops;   /* distinct ops used */
    int nodes;  /* live nodes */
    int64_t params, param_tensors, param_bytes;
    int64_t const_bytes, const_tensors;
    int64_t activation_bytes, activations;
    double flops;
} Facts;

static int by_count_then_name(const void *pa, const void *pb)
{
    const OpCount *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return strcmp(ir_ops[a->op].name, ir_ops[b->op].name);
}

static void gather(const IrGraph *g, Facts *f)
{
    memset(f, 0, sizeof *f);
    int count[IR_NOPS] = {0};
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].dead) continue;
        count[g->nodes[i].op]++;
        f->nodes++;
        f->flops += ir_node_flops(g, i);
    }
    for (int op = 0; op < IR_NOPS; op++)
        if (count[op]) f->ops[f->nops++] = (OpCount){op, count[op]};
    qsort(f->ops, f->nops, sizeof *f->ops, by_count_then_name);
    for (int i = 0; i < g->nvalues; i++) {
        const IrValue *v = &g->values[i];
        switch (v->role) {
        case IR_PARAM:
            f->params += ir_value_numel(v);
            f->param_bytes += ir_value_bytes(v);
            f->param_tensors++;
            break;
        case IR_CONST:
            f->const_bytes += ir_value_bytes(v);
            f->const_tensors++;
            break;
        case IR_ACTIVATION:
            if (v->producer >= 0 && !g->nodes[v->producer].dead) {
                f->activation_bytes += ir_value_bytes(v);
                f->activations++;
            }
            break;
        default: break;
        }
    }
}

/* ---- text ---- */

static void print_values(const IrGraph *g, const char *label, const int *ids, int n)
{
    char name[256], shape[16 + IR_MAX_RANK * 21];
    int width = 0;
    for (int i = 0; i < n; i++) {
        int w = (int)strlen(ir_name_str(g->values[ids[i]].name, name, sizeof name));
        if (w > width) width = w;
    }
    printf("%-12s %d\n", label, n);
    for (int i = 0; i < n; i++) {
        const IrValue *v = &g->values[ids[i]];
        printf("  %-*s  %s\n", width, ir_name_str(v->name, name, sizeof name),
               ir_shape_str(v, shape, sizeof shape));
    }
}

static void print_text(const IrGraph *g, const Facts *f)
{
    char a[32], b[32], name[256];
    printf("%-12s %s\n", "file", g->path);
    printf("%-12s %s\n", "producer", ir_name_str(g->producer, name, sizeof name));
    printf("%-12s %d\n", "opset", g->opset);
    printf("%-12s %lld\n", "ir_version", (long long)g->ir_version);
    printf("%-12s %s\n", "graph", ir_name_str(g->graph_name, name, sizeof name));
    print_values(g, "inputs", g->inputs, g->ninputs);
    print_values(g, "outputs", g->outputs, g->noutputs);
    printf("%-12s %d\n", "nodes", f->nodes);
    int width = 0;
    for (int i = 0; i < f->nops; i++) {
        int w = (int)strlen(ir_ops[f->ops[i].op].name);
        if (w > width) width = w;
    }
    for (int i = 0; i < f->nops; i++)
        printf("  %-*s  %d\n", width, ir_ops[f->ops[i].op].name, f->ops[i].count);
    printf("%-12s %s in %lld tensor%s, %s\n", "params",
           cli_fmt_count((double)f->params, a, sizeof a), (long long)f->param_tensors,
           f->param_tensors == 1 ? "" : "s", cli_fmt_bytes((double)f->param_bytes, b, sizeof b));
    printf("%-12s %s in %lld tensor%s\n", "constants",
           cli_fmt_bytes((double)f->const_bytes, a, sizeof a), (long long)f->const_tensors,
           f->const_tensors == 1 ? "" : "s");
    printf("%-12s %s per forward pass\n", "flops", cli_fmt_flops(f->flops, a, sizeof a));
    printf("%-12s %s in %lld value%s\n", "activations",
           cli_fmt_bytes((double)f->activation_bytes, a, sizeof a), (long long)f->activations,
           f->activations == 1 ? "" : "s");
}

/* ---- JSON ---- */

static void json_values(CliJson *j, const IrGraph *g, const char *key, const int *ids, int n)
{
    cli_json_array(j, key, 0);
    for (int i = 0; i < n; i++) {
        const IrValue *v = &g->values[ids[i]];
        cli_json_object(j, NULL, 1);
        cli_json_str(j, "name", v->name);
        cli_json_str(j, "dtype", v->dtype == IR_UNDEF ? NULL : ir_dtype_name(v->dtype));
        if (v->rank < 0) {
            cli_json_null(j, "shape");
        } else {
            cli_json_array(j, "shape", 1);
            for (int d = 0; d < v->rank; d++) {
                if (v->dims[d] < 0)
                    cli_json_null(j, NULL);
                else
                    cli_json_int(j, NULL, v->dims[d]);
            }
            cli_json_close(j);
        }
        cli_json_close(j);
    }
    cli_json_close(j);
}

static void print_json(const IrGraph *g, const Facts *f)
{
    CliJson j;
    cli_json_init(&j, stdout);
    cli_json_object(&j, NULL, 0);
    cli_json_str(&j, "file", g->path);
    cli_json_str(&j, "producer", g->producer);
    cli_json_str(&j, "graph", g->graph_name);
    cli_json_int(&j, "opset", g->opset);
    cli_json_int(&j, "ir_version", g->ir_version);
    json_values(&j, g, "inputs", g->inputs, g->ninputs);
    json_values(&j, g, "outputs", g->outputs, g->noutputs);
    cli_json_object(&j, "ops", 0);
    for (int i = 0; i < f->nops; i++) cli_json_int(&j, ir_ops[f->ops[i].op].name, f->ops[i].count);
    cli_json_close(&j);
    cli_json_int(&j, "nodes", f->nodes);
    cli_json_int(&j, "params", f->params);
    cli_json_int(&j, "param_tensors", f->param_tensors);
    cli_json_int(&j, "param_bytes", f->param_bytes);
    cli_json_int(&j, "const_bytes", f->const_bytes);
    cli_json_num(&j, "flops", f->flops);
    cli_json_int(&j, "activation_bytes", f->activation_bytes);
    cli_json_close(&j);
    cli_json_end(&j);
}

/* ---- the command ---- */

static int parse_args(int argc, char **argv, Options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc;
        if (cli_model_arg("inspect", argc, argv, &i, &o->m, &rc)) {
            if (rc != CLI_OK) return rc;
        } else if (strcmp(a, "--ir") == 0) {
            o->ir = 1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else {
            return cli_usage("inspect", "unknown flag '%s'", a);
        }
    }
    if (!o->m.path) return cli_usage("inspect", "no model given");
    if (o->ir && o->json) return cli_usage("inspect", "--ir and --json do not combine");
    return CLI_OK;
}

int cli_inspect(int argc, char **argv)
{
    Options o;
    memset(&o, 0, sizeof o);
    if (cli_model_init(&o.m, argc, argv, usage, passes, (int)(sizeof passes / sizeof *passes)))
        return CLI_OK;
    int rc = parse_args(argc, argv, &o);
    if (rc != CLI_OK) {
        free(o.m.dims);
        return rc;
    }
    IrGraph *g = ir_graph_new(o.m.path);
    if (cli_load_model(g, &o.m)) {
        rc = cli_error(g->err);
    } else {
        Facts f;
        gather(g, &f);
        if (o.json) {
            print_json(g, &f);
        } else {
            print_text(g, &f);
            if (o.ir) {
                printf("\n");
                ir_print(g, stdout);
            }
        }
    }
    ir_graph_free(g);
    free(o.m.dims);
    return rc;
}
