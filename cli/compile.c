/* `loom compile MODEL.onnx --mode infer --target cpu -o DIR`: the whole
 * compiler, one call per pass with the verifier between them (QBE's
 * func()): load, fold and infer shapes, lower for inference, select kernels
 * and fuse elementwise chains, plan memory, emit the program folder, and
 * write plan.json, the record of every decision the plan made. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "codegen.h"
#include "frontend.h"
#include "ir.h"
#include "optimizer.h"

static const char usage[] =
    "usage: loom compile MODEL.onnx --mode infer --target cpu -o DIR [--dim NAME=N]...\n"
    "                    [--dump-after PASS]\n"
    "\n"
    "Compile an ONNX model into a standalone C program in DIR: model.c (the forward\n"
    "pass as straight-line kernel calls and fused loops), main.c (the `infer`\n"
    "command), model.h, a Makefile, the kernel and runtime sources, the weights\n"
    "(weights.safetensors) and the plan (plan.json). Build it with `make -C DIR`,\n"
    "run it with `DIR/infer --input NAME=FILE.npy --output NAME=FILE.npy`.\n"
    "\n"
    "  --mode MODE          infer (train comes with a later release)\n"
    "  --target TARGET      cpu (cuda comes with a later release)\n"
    "  -o, --output DIR     the folder to write (created if absent)\n"
    "  --dim NAME=N         bind a symbolic dimension (a dim_param name, or\n"
    "                       INPUT:AXIS=N for an input axis); repeatable\n"
    "  --dump-after PASS    print the IR to stderr after PASS (load, fold, lower)\n";

static const char *const passes[] = {"load", "fold", "lower"};

typedef struct {
    CliModel m;
    const char *mode, *target, *out;
} Options;

/* ---- plan.json ---- */

static void json_plan(CliJson *j, const IrGraph *g, const OptMemPlan *p, const CgSelect *sel)
{
    cli_json_object(j, NULL, 0);
    cli_json_str(j, "model", g->path);
    cli_json_str(j, "mode", "infer");
    cli_json_str(j, "target", "cpu");
    cli_json_int(j, "arena_bytes", p->arena_bytes);
    cli_json_int(j, "lower_bound", p->lower_bound);
    cli_json_int(j, "weights_bytes", p->weights_bytes);
    cli_json_int(j, "alignment", OPT_ALIGN);
    cli_json_array(j, "values", 0);
    for (int v = 0; v < g->nvalues; v++) {
        const IrValue *val = &g->values[v];
        const OptSlice *s = &p->values[v];
        cli_json_object(j, NULL, 1);
        cli_json_str(j, "name", val->name);
        cli_json_str(j, "dtype", ir_dtype_name(val->dtype));
        cli_json_array(j, "shape", 1);
        for (int d = 0; d < val->rank; d++) cli_json_int(j, NULL, val->dims[d]);
        cli_json_close(j);
        cli_json_str(j, "role", val->is_output ? "output" : ir_role_name(val->role));
        cli_json_str(j, "pool", opt_pool_name(s->pool));
        if (s->pool == OPT_POOL_NONE) cli_json_null(j, "offset");
        else cli_json_int(j, "offset", s->offset);
        cli_json_int(j, "size", s->size);
        cli_json_str(j, "alias", s->alias >= 0 ? g->values[s->alias].name : NULL);
        if (s->pool == OPT_POOL_ARENA) {
            cli_json_int(j, "first", s->first);
            cli_json_int(j, "last", s->last);
        }
        cli_json_close(j);
    }
    cli_json_close(j);
    cli_json_array(j, "nodes", 0);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        cli_json_object(j, NULL, 1);
        cli_json_str(j, "name", n->name);
        cli_json_str(j, "op", ir_ops[n->op].name);
        cli_json_int(j, "step", sel->run_at[i]);
        if (sel->run_at[i] != i) cli_json_str(j, "fused_into", g->nodes[sel->run_at[i]].name);
        if (p->ws_offset[i] >= 0) {
            cli_json_int(j, "workspace_offset", p->ws_offset[i]);
            cli_json_int(j, "workspace_bytes", sel->ws_bytes[i]);
        }
        cli_json_close(j);
    }
    cli_json_close(j);
    cli_json_close(j);
    cli_json_end(j);
}

static int write_plan(IrGraph *g, const char *dir, const OptMemPlan *p, const CgSelect *sel)
{
    size_t n = strlen(dir) + 16;
    char *path = ir_xmalloc(n);
    snprintf(path, n, "%s/plan.json", dir);
    FILE *f = fopen(path, "w");
    int rc = 0;
    if (!f) {
        rc = ir_fail(g, -1, "cannot write %s: %s", path, strerror(errno));
    } else {
        CliJson j;
        cli_json_init(&j, f);
        json_plan(&j, g, p, sel);
        if (ferror(f) | (fclose(f) != 0)) rc = ir_fail(g, -1, "cannot write %s: %s", path, strerror(errno));
    }
    free(path);
    return rc;
}

/* ---- the pipeline ---- */

static void summary(const IrGraph *g, const Options *o, const OptMemPlan *p, const CgSelect *sel)
{
    char a[32], b[32], w[32];
    printf("%-9s %s\n", "output", o->out);
    printf("%-9s %d (%d fused into %d loop%s)\n", "nodes", g->nnodes, sel->nfused, sel->ngroups,
           sel->ngroups == 1 ? "" : "s");
    printf("%-9s %s, lower bound %s (%+.1f%%)\n", "arena", cli_fmt_bytes((double)p->arena_bytes, a, sizeof a),
           cli_fmt_bytes((double)p->lower_bound, b, sizeof b),
           p->lower_bound ? 100.0 * (double)(p->arena_bytes - p->lower_bound) / (double)p->lower_bound : 0.0);
    printf("%-9s %s\n", "weights", cli_fmt_bytes((double)p->weights_bytes, w, sizeof w));
    printf("build with: make -C %s\n", o->out);
}

static int run_passes(IrGraph *g, const Options *o)
{
    if (cli_load_model(g, &o->m)) return -1;
    if (opt_lower_infer(g) || cli_checkpoint(g, &o->m, "lower")) return -1;
    CgSelect sel;
    if (cg_select(g, &cg_target_cpu, &sel)) {
        cg_select_free(&sel);
        return -1;
    }
    OptMemRequest req = cg_mem_request(&sel);
    OptMemPlan plan;
    int rc = opt_memplan(g, &req, &plan);
    if (rc == 0) rc = cg_emit(g, &cg_target_cpu, &sel, &plan, o->out);
    if (rc == 0) rc = write_plan(g, o->out, &plan, &sel);
    if (rc == 0) summary(g, o, &plan, &sel);
    opt_memplan_free(&plan);
    cg_select_free(&sel);
    return rc;
}

static int parse_args(int argc, char **argv, Options *o)
{
    for (int i = 1; i < argc; i++) {
        char *a = argv[i], *val = NULL;
        int r, rc;
        if (cli_model_arg("compile", argc, argv, &i, &o->m, &rc)) {
            if (rc != CLI_OK) return rc;
        } else if ((r = cli_flag_value(argc, argv, &i, "--mode", &val)) != 0) {
            if (r < 0) return cli_usage("compile", "--mode needs a value: infer");
            o->mode = val;
        } else if ((r = cli_flag_value(argc, argv, &i, "--target", &val)) != 0) {
            if (r < 0) return cli_usage("compile", "--target needs a value: cpu");
            o->target = val;
        } else if ((r = cli_flag_value(argc, argv, &i, "-o", &val)) != 0 ||
                   (r = cli_flag_value(argc, argv, &i, "--output", &val)) != 0) {
            if (r < 0) return cli_usage("compile", "-o needs a folder");
            o->out = val;
        } else {
            return cli_usage("compile", "unknown flag '%s'", a);
        }
    }
    if (!o->m.path) return cli_usage("compile", "no model given");
    if (!o->mode) return cli_usage("compile", "no --mode given: infer");
    if (!o->target) return cli_usage("compile", "no --target given: cpu");
    if (!o->out) return cli_usage("compile", "no output folder given (-o DIR)");
    if (strcmp(o->mode, "infer") && strcmp(o->mode, "train"))
        return cli_usage("compile", "unknown mode '%s' (infer, train)", o->mode);
    if (strcmp(o->target, "cpu") && strcmp(o->target, "cuda"))
        return cli_usage("compile", "unknown target '%s' (cpu, cuda)", o->target);
    return CLI_OK;
}

int cli_compile(int argc, char **argv)
{
    Options o;
    memset(&o, 0, sizeof o);
    if (cli_model_init(&o.m, argc, argv, usage, passes, (int)(sizeof passes / sizeof *passes)))
        return CLI_OK;
    int rc = parse_args(argc, argv, &o);
    if (rc == CLI_OK && !strcmp(o.mode, "train"))
        rc = cli_error("--mode train: training programs come with a later release; use --mode infer");
    else if (rc == CLI_OK && !strcmp(o.target, "cuda"))
        rc = cli_error("--target cuda: the cuda target comes with a later release; use --target cpu");
    if (rc != CLI_OK) {
        free(o.m.dims);
        return rc;
    }
    IrGraph *g = ir_graph_new(o.m.path);
    if (run_passes(g, &o)) rc = cli_error(g->err);
    ir_graph_free(g);
    free(o.m.dims);
    return rc;
}
