/* `loom ops`: the op table as a user sees it, one row per ONNX operator:
 * how many inputs and outputs it takes, which of its inputs autodiff gives a
 * gradient to, and the attributes it accepts, as text or (--json) one JSON
 * object. Everything printed comes from the rows of ir/ops.h and from the
 * gradient table autodiff dispatches on (ir_grad_input), so the list cannot
 * drift from what the loader accepts or what training differentiates. */
#include <string.h>

#include "cli.h"
#include "ir.h"
#include "train.h"

static const char usage[] =
    "usage: loom ops [--json]\n"
    "\n"
    "List the ONNX operators loom supports: inputs and outputs each op takes\n"
    "(\"2-3\": two or three, \"1+\": one or more), its gradient in training, and the\n"
    "attributes it accepts (name:kind; kinds i int, f float, s string, t tensor,\n"
    "I ints, F floats, S strings). grad: \"yes\" every float input gets a gradient;\n"
    "\"0\", \"1,2\", \"0-2\" only those inputs (the others are indices, shapes, axes,\n"
    "bounds, running statistics); \"no\" no gradient (a model whose loss depends on a\n"
    "trained parameter through it is refused); \"-\" its outputs carry none\n"
    "(comparisons, integer results; Floor, Ceil, Round, Sign: zero almost everywhere).\n"
    "\n"
    "  --json   one JSON object {\"ops\": [{\"name\", \"inputs\": [min, max], \"outputs\",\n"
    "           \"grad\", \"grad_inputs\", \"attributes\": {name: kind}, \"flops_per_elem\",\n"
    "           \"flags\"}]}; a max of null means any number; grad is \"yes\", \"no\" or\n"
    "           \"none\" (\"-\" above), grad_inputs the inputs that get a gradient\n"
    "           (null: every one, for an op of any number of inputs)\n";

static const char *arity(int lo, int hi, char *buf, size_t n)
{
    if (hi < 0)
        snprintf(buf, n, "%d+", lo);
    else if (lo == hi)
        snprintf(buf, n, "%d", lo);
    else
        snprintf(buf, n, "%d-%d", lo, hi);
    return buf;
}

static const char *kind_name(char k)
{
    switch (k) {
    case 'i': return "int";
    case 'f': return "float";
    case 's': return "string";
    case 't': return "tensor";
    case 'I': return "ints";
    case 'F': return "floats";
    case 'S': return "strings";
    default: return "?";
    }
}

/* The inputs that get a gradient, as "yes" (all), "0", "1,2", "0-2", or "no"
 * (no rule) and "-" (outputs carry none). */
static const char *grad_str(IrOp op, char *buf, size_t n)
{
    const IrOpInfo *info = &ir_ops[op];
    if (info->flags & OPF_NO_GRAD) return "-";
    if (!ir_op_has_grad(op)) return "no";
    int top = info->max_in < 0 ? info->min_in : info->max_in, all = 1, k = 0, first = -1, runs = 0;
    for (int i = 0; i < top; i++) all &= ir_grad_input(op, i);
    if (all) return "yes";
    for (int i = 0; i <= top; i++) {
        int on = i < top && ir_grad_input(op, i);
        if (on && first < 0) first = i;
        if (!on && first >= 0) { /* a run first..i-1 */
            k += snprintf(buf + k, n - k, "%s%d", runs++ ? "," : "", first);
            if (i - 1 > first) k += snprintf(buf + k, n - k, "%s%d", i - 1 > first + 1 ? "-" : ",", i - 1);
            first = -1;
        }
    }
    return buf;
}

static void print_text(void)
{
    char a[16], b[16], gr[64];
    printf("%-26s %-6s %-6s %-6s %s\n", "op", "in", "out", "grad", "attributes");
    for (int i = 0; i < IR_NOPS; i++) {
        const IrOpInfo *op = &ir_ops[i];
        if (op->flags & OPF_INTERNAL) continue; /* backward and optimizer ops: never in a model */
        arity(op->min_in, op->max_in, a, sizeof a);
        arity(op->min_out, op->max_out, b, sizeof b);
        /* no padding after the last column, so lines end cleanly */
        const char *g = grad_str((IrOp)i, gr, sizeof gr);
        if (*op->attrs)
            printf("%-26s %-6s %-6s %-6s %s\n", op->name, a, b, g, op->attrs);
        else
            printf("%-26s %-6s %-6s %s\n", op->name, a, b, g);
    }
}

static void json_arity(CliJson *j, const char *key, int lo, int hi)
{
    cli_json_array(j, key, 1);
    cli_json_int(j, NULL, lo);
    if (hi < 0)
        cli_json_null(j, NULL);
    else
        cli_json_int(j, NULL, hi);
    cli_json_close(j);
}

static void print_json(void)
{
    static const struct {
        unsigned flag;
        const char *name;
    } flags[] = {{OPF_ELEMWISE, "elementwise"},
                 {OPF_BROADCAST, "broadcast"},
                 {OPF_SHAPE_ONLY, "shape_only"},
                 {OPF_NO_GRAD, "no_grad"}};
    CliJson j;
    cli_json_init(&j, stdout);
    cli_json_object(&j, NULL, 0);
    cli_json_array(&j, "ops", 0);
    for (int i = 0; i < IR_NOPS; i++) {
        const IrOpInfo *op = &ir_ops[i];
        if (op->flags & OPF_INTERNAL) continue;
        cli_json_object(&j, NULL, 1);
        cli_json_str(&j, "name", op->name);
        json_arity(&j, "inputs", op->min_in, op->max_in);
        json_arity(&j, "outputs", op->min_out, op->max_out);
        int has = ir_op_has_grad((IrOp)i);
        cli_json_str(&j, "grad", op->flags & OPF_NO_GRAD ? "none" : has ? "yes" : "no");
        if (has && op->max_in < 0 && ir_grad_input((IrOp)i, op->min_in)) {
            cli_json_null(&j, "grad_inputs");
        } else {
            cli_json_array(&j, "grad_inputs", 1);
            for (int k = 0; has && k < op->max_in; k++)
                if (ir_grad_input((IrOp)i, k)) cli_json_int(&j, NULL, k);
            cli_json_close(&j);
        }
        cli_json_object(&j, "attributes", 1);
        /* the row's attribute list: "name:k name:k ..." */
        for (const char *p = op->attrs; *p;) {
            const char *colon = strchr(p, ':');
            if (!colon) break;
            char name[64];
            size_t len = (size_t)(colon - p) < sizeof name ? (size_t)(colon - p) : sizeof name - 1;
            memcpy(name, p, len);
            name[len] = 0;
            cli_json_str(&j, name, kind_name(colon[1]));
            p = colon + 2;
            while (*p == ' ') p++;
        }
        cli_json_close(&j);
        cli_json_num(&j, "flops_per_elem", op->flops_per_elem);
        cli_json_array(&j, "flags", 1);
        for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
            if (op->flags & flags[k].flag) cli_json_str(&j, NULL, flags[k].name);
        cli_json_close(&j);
        cli_json_close(&j);
    }
    cli_json_close(&j);
    cli_json_close(&j);
    cli_json_end(&j);
}

int cli_ops(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return CLI_OK;
        }
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (argv[i][0] == '-')
            return cli_usage("ops", "unknown flag '%s'", argv[i]);
        else
            return cli_usage("ops", "unexpected argument '%s'", argv[i]);
    }
    if (json)
        print_json();
    else
        print_text();
    return CLI_OK;
}
