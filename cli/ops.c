/* `loom ops`: the op table as a user sees it, one row per ONNX operator:
 * how many inputs and outputs it takes and the attributes it accepts, as
 * text or (--json) one JSON object. Everything printed comes from the rows of
 * ir/ops.h, so the list cannot drift from what the loader accepts. */
#include <string.h>

#include "cli.h"
#include "ir.h"

static const char usage[] =
    "usage: loom ops [--json]\n"
    "\n"
    "List the ONNX operators loom supports: inputs and outputs each op takes\n"
    "(\"2-3\": two or three, \"1+\": one or more) and the attributes it accepts\n"
    "(name:kind; kinds i int, f float, s string, t tensor, I ints, F floats, S strings).\n"
    "\n"
    "  --json   one JSON object {\"ops\": [{\"name\", \"inputs\": [min, max], \"outputs\",\n"
    "           \"attributes\": {name: kind}, \"flops_per_elem\", \"flags\"}]}; a max of\n"
    "           null means any number\n";

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

static void print_text(void)
{
    char a[16], b[16];
    printf("%-26s %-6s %-6s %s\n", "op", "in", "out", "attributes");
    for (int i = 0; i < IR_NOPS; i++) {
        const IrOpInfo *op = &ir_ops[i];
        if (op->flags & OPF_INTERNAL) continue; /* backward and optimizer ops: never in a model */
        arity(op->min_in, op->max_in, a, sizeof a);
        arity(op->min_out, op->max_out, b, sizeof b);
        /* no padding after the last column, so lines end cleanly */
        if (*op->attrs)
            printf("%-26s %-6s %-6s %s\n", op->name, a, b, op->attrs);
        else
            printf("%-26s %-6s %s\n", op->name, a, b);
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
