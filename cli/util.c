/* Helpers every loom subcommand shares: the two kinds of error message (a
 * usage error, exit 2, and a bad-input error, exit 1), flag parsing for
 * "--flag VALUE" / "--flag=VALUE", and human-readable numbers. */
#include <stdarg.h>
#include <string.h>

#include "cli.h"

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, cmd ? "loom %s: " : "loom: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, cmd ? "; see 'loom %s --help'\n" : "; see 'loom --help'\n", cmd);
    return CLI_USAGE;
}

int cli_error(const char *msg)
{
    fputs("loom: error: ", stderr);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p == '\n')
            fputs("\\n", stderr);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
    fputc('\n', stderr);
    return CLI_ERROR;
}

int cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int cli_flag_value(int argc, char **argv, int *i, const char *flag, char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(flag);
    if (strncmp(a, flag, n) != 0) return 0;
    if (a[n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (a[n]) return 0; /* a longer flag that merely starts the same */
    if (*i + 1 >= argc) return -1;
    *val = argv[++*i];
    return 1;
}

int cli_finish(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("loom: error: could not write the output\n", stderr);
        return CLI_ERROR;
    }
    return rc;
}

/* x in the largest unit that keeps it at least 1, with three significant
 * digits; units[0] is the unit of x itself and is printed exactly. */
static const char *fmt_units(double x, double base, const char *const *units, char *buf,
                             size_t n)
{
    int k = 0;
    while (x >= base && units[k + 1]) x /= base, k++;
    if (k == 0) {
        snprintf(buf, n, "%.0f%s", x, units[0]);
        return buf;
    }
    if (x >= base - 0.5 && units[k + 1]) x /= base, k++; /* would round up to base */
    snprintf(buf, n, x >= 99.95 ? "%.0f%s" : x >= 9.995 ? "%.1f%s" : "%.2f%s", x, units[k]);
    return buf;
}

const char *cli_fmt_bytes(double bytes, char *buf, size_t n)
{
    static const char *const u[] = {" B", " KiB", " MiB", " GiB", " TiB", " PiB", NULL};
    return fmt_units(bytes, 1024, u, buf, n);
}

const char *cli_fmt_count(double count, char *buf, size_t n)
{
    static const char *const u[] = {"", "K", "M", "G", "T", NULL};
    return fmt_units(count, 1000, u, buf, n);
}

const char *cli_fmt_flops(double flops, char *buf, size_t n)
{
    static const char *const u[] = {" FLOP", " KFLOP", " MFLOP", " GFLOP", " TFLOP", " PFLOP",
                                    " EFLOP", NULL};
    return fmt_units(flops, 1000, u, buf, n);
}

int cli_model_arg(const char *cmd, int argc, char **argv, int *i, CliModel *m, int *rc)
{
    char *a = argv[*i], *val = NULL;
    int r;
    *rc = CLI_OK;
    if ((r = cli_flag_value(argc, argv, i, "--dim", &val)) != 0) {
        if (r < 0)
            *rc = cli_usage(cmd, "--dim needs a value, NAME=N");
        else if (onnx_parse_dim(val, &m->dims[m->ndims]) < 0)
            *rc = cli_usage(cmd, "bad --dim '%s': want NAME=N or INPUT:AXIS=N with N >= 0", val);
        else
            m->ndims++;
        return 1;
    }
    if ((r = cli_flag_value(argc, argv, i, "--dump-after", &val)) != 0) {
        char list[128] = "";
        for (int k = 0, n = 0; k < m->npasses; k++)
            n += snprintf(list + n, sizeof list - (size_t)n, "%s%s", k ? ", " : "", m->passes[k]);
        int known = 0;
        for (int k = 0; r > 0 && k < m->npasses; k++) known |= strcmp(val, m->passes[k]) == 0;
        if (r < 0)
            *rc = cli_usage(cmd, "--dump-after needs a pass: %s", list);
        else if (!known)
            *rc = cli_usage(cmd, "unknown pass '%s' for --dump-after (%s)", val, list);
        else
            m->dump_after = val;
        return 1;
    }
    if (a[0] == '-' && a[1]) return 0;
    if (m->path)
        *rc = cli_usage(cmd, "one model at a time: got '%s' and '%s'", m->path, a);
    else
        m->path = a;
    return 1;
}

int cli_model_init(CliModel *m, int argc, char **argv, const char *usage,
                   const char *const *passes, int npasses)
{
    memset(m, 0, sizeof *m);
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 1;
        }
    m->dims = ir_xcalloc((size_t)argc, sizeof *m->dims);
    m->passes = passes;
    m->npasses = npasses;
    return 0;
}

int cli_checkpoint(IrGraph *g, const CliModel *m, const char *pass)
{
    if (ir_verify(g)) return -1;
    if (m->dump_after && strcmp(m->dump_after, pass) == 0) {
        fprintf(stderr, "# ---- IR after %s ----\n", pass);
        ir_print(g, stderr);
    }
    return 0;
}

int cli_load_model(IrGraph *g, const CliModel *m)
{
    if (onnx_load(g, m->dims, m->ndims) || cli_checkpoint(g, m, "load")) return -1;
    if (onnx_fold_infer(g) || cli_checkpoint(g, m, "fold")) return -1;
    return 0;
}
