/* `loom plan MODEL.onnx --mode train [--budget B] [--device P | --costs F]
 * [--json] [--sweep [--svg FILE]]`: what the schedule optimizer decides for
 * a training step under a memory budget, and what it predicts (step time
 * from the cost model, arena bytes from the memory planner), against the
 * store-all baseline; --sweep walks the budgets from the least feasible to
 * store-all. `loom compile --budget` runs the same fitting (budget.c) and
 * emits the schedule. The model and training flags are compile's
 * (compile.c parses them for both commands). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train.h"

const char cli_plan_usage[] =
    "usage: loom plan MODEL.onnx [--mode train] [--target cpu|cuda] [--budget BYTES]\n"
    "                 [--device PROFILE | --costs FILE] [--json] [--sweep [--svg FILE]]\n"
    "                 [--solver rotor|store-all|blocks|sqrt|ilp [--ilp-seconds N]]\n"
    "                 [--offload auto|on|off|only] [--lowbit off|bf16] [--dim NAME=N]...\n"
    "                 [training flags, as loom compile takes them]\n"
    "\n"
    "Plan one training step under a device memory budget: which activations are\n"
    "recomputed in backward or offloaded to host memory instead of kept, the\n"
    "predicted step time and the arena the memory planner places, against keeping\n"
    "everything (store-all).\n"
    "\n"
    "  --target T         the program planned for (default cpu): its selection and\n"
    "                     workspaces place the arena, as `loom compile --target T`\n"
    "  --budget BYTES     device memory for weights, optimizer state and activations:\n"
    "                     6GiB, 512MB, 123456789 (default: what store-all needs)\n"
    "  --device PROFILE   hardware profile for the cost model (default cpu), or a JSON\n"
    "                     file overriding a profile's fields (docs/cli.md)\n"
    "  --costs FILE       measured per-node costs written by `loom profile`\n"
    "  --json             one JSON object instead of text\n"
    "  --sweep            the time/memory frontier from the least feasible budget to\n"
    "                     store-all (JSON: an array)\n"
    "  --svg FILE         with --sweep: also plot the frontier into FILE\n"
    "  --solver S         rotor (default: the fastest plan within the budget), or a\n"
    "                     baseline, whatever memory it takes: store-all; blocks\n"
    "                     (each block, cut where a single value crosses, recomputed\n"
    "                     before its backward: PyTorch's checkpoint per block); sqrt\n"
    "                     (ceil(sqrt(blocks)) even segments of blocks); or ilp:\n"
    "                     Checkmate's exact integer program over the whole graph at\n"
    "                     the budget (lp_solve; small graphs), looking for plans\n"
    "                     faster than rotor's by over 1% of its step: where it\n"
    "                     proves there are none, the plan is rotor's, so noted\n"
    "  --ilp-seconds N    with --solver ilp: stop lp_solve after N seconds with the\n"
    "                     best schedule found (default 300)\n"
    "  --offload M        auto (default), on, off or only: whether a plan may copy\n"
    "                     saved activations to host memory after forward and back\n"
    "                     before backward; auto: where the profile's copies overlap\n"
    "                     compute (GPUs); only: copies and no recomputation. On the\n"
    "                     cpu target host memory is the same memory, so `on` and\n"
    "                     `only` there test the mechanism, nothing more\n"
    "  --lowbit M         off (default) or bf16: whether a plan may store saved\n"
    "                     float32 activations as bfloat16 between forward and\n"
    "                     backward (half the bytes, a conversion each way on\n"
    "                     compute; the gradients change by bfloat16's rounding),\n"
    "                     where recomputation and offload cost more\n"
    "  --no-fuse-attention  plan the model's attention as it writes it (MatMul,\n"
    "                     scale, mask, Softmax, MatMul) instead of loom.Attention\n"
    "  --precision P      fp32 (default) or bf16: plan the step with matrix products\n"
    "                     in bfloat16, as `loom compile --precision bf16` builds it\n"
    "\n"
    "A budget below the least feasible one is refused with that budget named (exit 1).\n";

int cli_plan_arg(const char *cmd, int argc, char **argv, int *i, CliPlanOptions *p, int *rc)
{
    char *val = NULL;
    int r;
    *rc = CLI_OK;
    const char *a = argv[*i];
    if (!strcmp(a, "--json") || !strcmp(a, "--sweep")) {
        if (!p->report) *rc = cli_usage(cmd, "%s is loom plan's; compile writes plan.json", a);
        if (a[2] == 'j') p->json = 1;
        else p->sweep = 1;
        return 1;
    }
    if ((r = cli_flag_value(argc, argv, i, "--budget", &val)) != 0) {
        if (r < 0 || cli_parse_bytes(val, &p->budget))
            *rc = cli_usage(cmd, "--budget needs a size in bytes (6GiB, 512MB, 123456789), not '%s'",
                            r < 0 ? "" : val);
        return 1;
    }
    if ((r = cli_flag_value(argc, argv, i, "--device", &val)) != 0) {
        if (r < 0) *rc = cli_usage(cmd, "--device needs a profile name or a JSON file");
        p->device = val;
        return 1;
    }
    if ((r = cli_flag_value(argc, argv, i, "--costs", &val)) != 0) {
        if (r < 0) *rc = cli_usage(cmd, "--costs needs a file written by loom profile");
        p->costs = val;
        return 1;
    }
    if ((r = cli_flag_value(argc, argv, i, "--solver", &val)) != 0) {
        if (!p->report) *rc = cli_usage(cmd, "--solver is loom plan's");
        else if (r < 0) *rc = cli_usage(cmd, "--solver needs a value: rotor, store-all, blocks, sqrt, ilp");
        else if ((p->ilp = !strcmp(val, "ilp")) || !strcmp(val, "rotor")) p->baseline = -1;
        else if (!strcmp(val, "store-all")) p->baseline = OPT_BASE_STORE_ALL;
        else if (!strcmp(val, "blocks")) p->baseline = OPT_BASE_BLOCKS;
        else if (!strcmp(val, "sqrt")) p->baseline = OPT_BASE_SQRT;
        else *rc = cli_usage(cmd, "unknown solver '%s' (rotor, store-all, blocks, sqrt, ilp)", val);
        return 1;
    }
    if ((r = cli_flag_value(argc, argv, i, "--ilp-seconds", &val)) != 0) {
        char *end = NULL;
        if (r >= 0) p->ilp_seconds = strtod(val, &end);
        if (!p->report) *rc = cli_usage(cmd, "--ilp-seconds is loom plan's (with --solver ilp)");
        else if (r < 0 || end == val || *end || !(p->ilp_seconds >= 1))
            *rc = cli_usage(cmd, "--ilp-seconds needs a number of seconds, at least 1");
        return 1;
    }
    if ((r = cli_flag_value(argc, argv, i, "--offload", &val)) != 0) {
        if (r < 0 || (strcmp(val, "auto") && strcmp(val, "on") && strcmp(val, "off") && strcmp(val, "only")))
            *rc = cli_usage(cmd, "--offload needs auto, on, off or only, not '%s'", r < 0 ? "" : val);
        else p->offload = val[1] == 'u' ? CLI_OFFLOAD_AUTO : val[1] == 'n' ? (val[2] ? CLI_OFFLOAD_ONLY : CLI_OFFLOAD_ON)
                                                            : CLI_OFFLOAD_OFF;
        return 1;
    }
    if ((r = cli_flag_value(argc, argv, i, "--lowbit", &val)) != 0) {
        if (r < 0 || (strcmp(val, "off") && strcmp(val, "bf16")))
            *rc = cli_usage(cmd, "--lowbit needs off or bf16, not '%s'", r < 0 ? "" : val);
        else p->lowbit = !strcmp(val, "bf16");
        return 1;
    }
    if ((r = cli_flag_value(argc, argv, i, "--svg", &val)) != 0) {
        if (r < 0) *rc = cli_usage(cmd, "--svg needs a file name");
        else if (!p->report) *rc = cli_usage(cmd, "--svg is loom plan's (with --sweep)");
        p->svg = val;
        return 1;
    }
    return 0;
}

/* The forward values the schedule recomputes, once each, in schedule order. */
static int recomputed(const IrGraph *g, const OptSchedule *s, const char ***names)
{
    unsigned char *seen = ir_xcalloc((size_t)(g->nvalues ? g->nvalues : 1), 1);
    const char **out = ir_xmalloc((size_t)(g->nvalues ? g->nvalues : 1) * sizeof *out);
    int n = 0;
    for (int k = 0; k < s->n; k++) {
        if (s->ins[k].kind != OPT_RERUN) continue;
        const IrNode *node = &g->nodes[s->ins[k].node];
        for (int j = 0; j < node->nout; j++) {
            int v = node->out[j];
            if (v >= 0 && !seen[v]) seen[v] = 1, out[n++] = g->values[v].name;
        }
    }
    free(seen);
    *names = out;
    return n;
}

/* The values the schedule copies to host memory (kind OPT_TO_HOST) or
 * stores as bfloat16 (OPT_NARROW), in schedule order. */
static int moved(const IrGraph *g, const OptSchedule *s, OptInstrKind kind, const char ***names)
{
    const char **out = ir_xmalloc((size_t)(s->n ? s->n : 1) * sizeof *out);
    int n = 0;
    for (int k = 0; k < s->n; k++)
        if (s->ins[k].kind == kind) out[n++] = g->values[s->ins[k].value].name;
    *names = out;
    return n;
}

/* The reruns by op: how many runs of each op the schedule adds and their
 * predicted seconds (node_s), most expensive first. */
typedef struct {
    int op, runs;
    double s;
} OpReruns;

static int by_op_cmp(const void *a, const void *b)
{
    const OpReruns *x = a, *y = b;
    return x->s < y->s ? 1 : x->s > y->s ? -1 : x->op - y->op;
}

static int reruns_by_op(const IrGraph *g, const OptSchedule *s, const double *node_s, OpReruns **out)
{
    OpReruns *r = ir_xcalloc((size_t)IR_NOPS, sizeof *r);
    int n = 0;
    for (int k = 0; k < s->n; k++) {
        if (s->ins[k].kind != OPT_RERUN) continue;
        int node = s->ins[k].node, op = g->nodes[node].op;
        r[op].op = op, r[op].runs++, r[op].s += node_s ? node_s[node] : 0;
    }
    for (int op = 0; op < IR_NOPS; op++)
        if (r[op].runs) r[n++] = r[op];
    qsort(r, (size_t)n, sizeof *r, by_op_cmp);
    *out = r;
    return n;
}

static int fit_setup(IrGraph *g, const CliPlanOptions *p, CliFit *f)
{
    if (cli_fit_init(g, p->target, p->device, p->costs, p->offload, p->lowbit, f)) {
        cli_fit_free(f);
        return -1;
    }
    if (!p->no_fold && p->baseline < 0 && !p->ilp) cli_fit_variant(f, p->device, p->costs, p->offload);
    return 0;
}

int cli_plan_budget(IrGraph *g, const CliPlanOptions *p)
{
    CliFit f;
    CliFitResult r;
    if (fit_setup(g, p, &f)) return -1;
    int rc = cli_fit(&f, p->budget, &r);
    if (rc == 0) {
        char a[32], b[32];
        int nrerun = r.sim.reruns, ncopy = opt_schedule_copies(&r.sched) / 2;
        const char **names;
        int nlow = moved(g, &r.sched, OPT_NARROW, &names);
        free(names);
        double over = f.store_all_step_s > 0 ? 100.0 * (r.sim.step_s / f.store_all_step_s - 1) : 0;
        char h[32], off[192] = "";
        int k = 0;
        if (ncopy)
            k = snprintf(off, sizeof off, ", %d value%s (%s) offloaded to host memory", ncopy, ncopy == 1 ? "" : "s",
                         cli_fmt_bytes((double)r.sim.host_bytes, h, sizeof h));
        if (nlow)
            snprintf(off + k, sizeof off - (size_t)k, ", %d value%s (%s) stored as bfloat16", nlow,
                     nlow == 1 ? "" : "s", cli_fmt_bytes((double)r.sim.lowbit_bytes, h, sizeof h));
        printf("%-9s %s: %s (%d node run%s recomputed%s, predicted step %+.1f%%; store-all needs %s)\n",
               "budget", cli_fmt_bytes((double)p->budget, a, sizeof a),
               nrerun || ncopy || nlow ? "recompute or offload in backward" : "everything kept", nrerun,
               nrerun == 1 ? "" : "s", off, over,
               cli_fmt_bytes((double)(f.weights_bytes + f.store_all_arena), b, sizeof b));
        if (r.fit != &f) { /* the variant's graph, made the same way as its copy was */
            if (ir_fold_add_relu_grad(g) < 0) rc = -1;
            else if (g->nnodes != r.fit->g->nnodes)
                rc = ir_fail(g, -1, "internal error: the folded graph differs from the one planned (a loom bug; "
                             "please report it)");
        }
        if (rc == 0) rc = opt_schedule_apply(g, &r.sched);
        cli_fit_result_free(&r);
    }
    cli_fit_free(&f);
    return rc;
}

/* An array of the n names under key; frees names. */
static void json_names(CliJson *j, const char *key, int n, const char **names)
{
    cli_json_array(j, key, 0);
    for (int i = 0; i < n; i++) cli_json_str(j, NULL, names[i]);
    cli_json_close(j);
    free(names);
}

static void json_fit(CliJson *j, const CliFit *f, const CliFitResult *r, int64_t least, int full,
                     const char *solver)
{
    const CliFit *v = r->fit ? r->fit : f; /* the graph the schedule is for */
    cli_json_object(j, NULL, !full);
    cli_json_int(j, "budget_bytes", r->budget);
    cli_json_int(j, "arena_bytes", r->arena);
    cli_json_int(j, "device_bytes", f->weights_bytes + r->arena);
    cli_json_num(j, "predicted_step_s", r->sim.step_s);
    cli_json_int(j, "recomputed_nodes", r->sim.reruns);
    if (full) {
        cli_json_int(j, "weights_bytes", f->weights_bytes);
        cli_json_int(j, "store_all_arena_bytes", f->store_all_arena);
        cli_json_int(j, "store_all_saved_bytes", f->saved_bytes);
        cli_json_int(j, "min_feasible_bytes", least);
        cli_json_num(j, "store_all_step_s", f->store_all_step_s);
        cli_json_num(j, "overhead_pct", 100.0 * (r->sim.step_s / f->store_all_step_s - 1));
        cli_json_num(j, "solve_s", r->solve_s);
        cli_json_int(j, "stages", (v->remat ? opt_remat_stages(v->remat) : 0));
        cli_json_int(j, "stages_copied", (v->remat ? opt_remat_copied(v->remat) : 0));
        cli_json_str(j, "solver", solver);
        cli_json_str(j, "graph", v == f ? "as built" : "fold_add_relu");
        cli_json_str(j, "plan_from", r->priced ? "priced table" : "table");
        cli_json_str(j, "device", f->device.name);
        cli_json_str(j, "costs", f->costs.source);
        if (r->note[0]) cli_json_str(j, "ilp_status", r->note);
        const char **names;
        int n = recomputed(v->g, &r->sched, &names);
        json_names(j, "recomputed", n, names);
        OpReruns *ops;
        int nops = reruns_by_op(v->g, &r->sched, v->node_s, &ops);
        cli_json_array(j, "recomputed_by_op", 0);
        for (int i = 0; i < nops; i++) {
            cli_json_object(j, NULL, 1);
            cli_json_str(j, "op", ir_ops[ops[i].op].name);
            cli_json_int(j, "runs", ops[i].runs);
            cli_json_num(j, "predicted_s", ops[i].s);
            cli_json_close(j);
        }
        cli_json_close(j);
        free(ops);
        cli_json_str(j, "offload", f->offload ? "on" : "off");
        n = moved(v->g, &r->sched, OPT_TO_HOST, &names);
        json_names(j, "offloaded", n, names);
        cli_json_int(j, "host_bytes", r->sim.host_bytes);
        cli_json_num(j, "copy_stall_s", r->sim.stall_s);
        cli_json_str(j, "lowbit", f->lowbit ? "bf16" : "off");
        n = moved(v->g, &r->sched, OPT_NARROW, &names);
        json_names(j, "lowbit_values", n, names);
        cli_json_int(j, "lowbit_bytes", r->sim.lowbit_bytes);
        cli_json_num(j, "lowbit_s", r->sim.lowbit_s);
        CliPeak pk;
        if (!cli_fit_peak(v, &r->sched, &pk)) {
            cli_json_object(j, "peak", 0);
            cli_json_str(j, "node", pk.node);
            cli_json_str(j, "phase", pk.phase);
            cli_json_int(j, "live_bytes", pk.live_bytes);
            cli_json_int(j, "workspace_bytes", pk.ws_bytes);
            cli_json_array(j, "largest", 0);
            for (int i = 0; i < pk.n; i++) {
                cli_json_object(j, NULL, 1);
                cli_json_str(j, "value", pk.top[i].name);
                cli_json_int(j, "bytes", pk.top[i].bytes);
                cli_json_close(j);
            }
            cli_json_close(j);
            cli_json_int(j, "others", pk.more);
            cli_json_close(j);
        }
    }
    cli_json_close(j);
}

static void text_fit(const CliFit *f, const CliFitResult *r, int64_t least, const char *solver)
{
    char a[32], b[32], c[32];
    const CliFit *v = r->fit ? r->fit : f; /* the graph the schedule is for */
    const IrGraph *g = v->g;
    printf("%-10s %s (train, %s costs: %s)\n", "model", g->path, f->device.name, f->costs.source);
    printf("%-10s %s (solver %s)\n", "budget", cli_fmt_bytes((double)r->budget, a, sizeof a), solver);
    printf("%-10s arena %s (%s of it activations saved for backward) + weights and optimizer state %s; "
           "step %.4g ms (predicted)\n", "store-all", cli_fmt_bytes((double)f->store_all_arena, a, sizeof a),
           cli_fmt_bytes((double)f->saved_bytes, c, sizeof c), cli_fmt_bytes((double)f->weights_bytes, b, sizeof b),
           1e3 * f->store_all_step_s);
    printf("%-10s arena %s (device %s); step %.4g ms (predicted, %+.1f%%)\n", "plan",
           cli_fmt_bytes((double)r->arena, a, sizeof a), cli_fmt_bytes((double)(f->weights_bytes + r->arena), b, sizeof b),
           1e3 * r->sim.step_s, 100.0 * (r->sim.step_s / f->store_all_step_s - 1));
    if (v != f)
        printf("%-10s each residual ReLU's gradient reads its Add made again from the normalizations' inputs, "
               "not the ReLU's output (ir_fold_add_relu_grad: less to keep, more to read)\n", "graph");
    if (r->priced)
        printf("%-10s a priced table's schedule: chosen with checkpoints on the host while later stages run, "
               "the copies put in after (optimizer/remat.c)\n", "from");
    const char **names;
    int n = recomputed(g, &r->sched, &names);
    printf("%-10s %d node run%s, %d value%s", "recompute", r->sim.reruns, r->sim.reruns == 1 ? "" : "s", n,
           n == 1 ? "" : "s");
    for (int i = 0; i < n && i < 8; i++) printf("%s%s", i ? ", " : ": ", names[i]);
    printf("%s\n", n > 8 ? ", ..." : "");
    free(names);
    OpReruns *ops;
    int nops = reruns_by_op(g, &r->sched, v->node_s, &ops);
    if (nops) printf("%-10s", "by op");
    for (int i = 0; i < nops; i++)
        printf("%s%s %d (%.3g ms)", i ? ", " : " ", ir_ops[ops[i].op].name, ops[i].runs, 1e3 * ops[i].s);
    if (nops) printf("\n");
    free(ops);
    n = moved(g, &r->sched, OPT_TO_HOST, &names);
    if (n || f->offload) {
        printf("%-10s %d value%s, %s to host memory and back (stalls %.3g ms, predicted)", "offload", n,
               n == 1 ? "" : "s", cli_fmt_bytes((double)r->sim.host_bytes, a, sizeof a), 1e3 * r->sim.stall_s);
        for (int i = 0; i < n && i < 8; i++) printf("%s%s", i ? ", " : ": ", names[i]);
        printf("%s\n", n > 8 ? ", ..." : "");
    }
    free(names);
    n = moved(g, &r->sched, OPT_NARROW, &names);
    if (n || f->lowbit) {
        printf("%-10s %d value%s, %s stored as bfloat16 between forward and backward (conversions %.3g ms, "
               "predicted)", "lowbit", n, n == 1 ? "" : "s", cli_fmt_bytes((double)r->sim.lowbit_bytes, a, sizeof a),
               1e3 * r->sim.lowbit_s);
        for (int i = 0; i < n && i < 8; i++) printf("%s%s", i ? ", " : ": ", names[i]);
        printf("%s\n", n > 8 ? ", ..." : "");
    }
    free(names);
    CliPeak pk;
    if (!cli_fit_peak(v, &r->sched, &pk)) {
        printf("%-10s %s live at %s (%s)", "peak", cli_fmt_bytes((double)pk.live_bytes, a, sizeof a), pk.node,
               pk.phase);
        for (int i = 0; i < pk.n; i++)
            printf("%s%s %s", i ? ", " : ": ", pk.top[i].name, cli_fmt_bytes((double)pk.top[i].bytes, b, sizeof b));
        if (pk.more) printf(" and %d more", pk.more);
        if (pk.ws_bytes) printf("; workspace %s", cli_fmt_bytes((double)pk.ws_bytes, b, sizeof b));
        printf("\n");
    }
    printf("%-10s %s (device %s)\n", "least", cli_fmt_bytes((double)least, c, sizeof c),
           least == f->weights_bytes + f->store_all_arena ? "store-all"
           : f->offload_only ? (f->lowbit ? "with offload and bfloat16 storage" : "with offload")
           : f->offload ? (f->lowbit ? "with recomputation, offload and bfloat16 storage" : "with recomputation and offload")
           : f->lowbit ? "with recomputation and bfloat16 storage" : "with recomputation");
    printf("%-10s %.3g s (%d stages; %d took an identical stage's options)\n", "solve", r->solve_s,
           (v->remat ? opt_remat_stages(v->remat) : 0), (v->remat ? opt_remat_copied(v->remat) : 0));
    if (r->note[0]) printf("%-10s %s\n", "ilp", r->note);
}

/* The frontier plot: predicted step time against device bytes. */
static int write_svg(IrGraph *g, const char *path, const CliFitResult *pts, int n, const CliFit *f)
{
    FILE *o = fopen(path, "w");
    if (!o) return ir_fail(g, -1, "cannot write %s: %s", path, strerror(errno));
    double x0 = 1e300, x1 = 0, y0 = 1e300, y1 = 0;
    for (int i = 0; i < n; i++) {
        double x = (double)(f->weights_bytes + pts[i].arena) / 1048576.0, y = 1e3 * pts[i].sim.step_s;
        x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1, y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
    }
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1e-3;
    y0 = 0;
    const int W = 640, H = 400, L = 70, R = 20, T = 30, B = 50;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - B - ((y) - y0) / (y1 - y0) * (H - T - B))
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    fprintf(o, "<text x=\"%d\" y=\"18\">", L);
    for (const char *s = g->path; *s; s++) {
        if (*s == '<') fputs("&lt;", o);
        else if (*s == '&') fputs("&amp;", o);
        else fputc(*s, o);
    }
    fprintf(o, ": predicted step time against device memory (%s)</text>\n", f->device.name);
    fprintf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, H - B, W - R, H - B);
    fprintf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T, L, H - B);
    for (int k = 0; k <= 4; k++) {
        double x = x0 + (x1 - x0) * k / 4, y = y0 + (y1 - y0) * k / 4;
        fprintf(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.3g</text>\n", PX(x), H - B + 16, x);
        fprintf(o, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", L - 6, PY(y) + 4, y);
    }
    fprintf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">device MiB (weights, state, arena)</text>\n",
            (L + W - R) / 2, H - 12);
    fprintf(o, "<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">step ms</text>\n",
            (T + H - B) / 2, (T + H - B) / 2);
    fprintf(o, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"");
    for (int i = 0; i < n; i++)
        fprintf(o, "%.1f,%.1f ", PX((double)(f->weights_bytes + pts[i].arena) / 1048576.0), PY(1e3 * pts[i].sim.step_s));
    fprintf(o, "\"/>\n");
    for (int i = 0; i < n; i++)
        fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#1f77b4\"/>\n",
                PX((double)(f->weights_bytes + pts[i].arena) / 1048576.0), PY(1e3 * pts[i].sim.step_s));
    fprintf(o, "</svg>\n");
#undef PX
#undef PY
    if (ferror(o) | (fclose(o) != 0)) return ir_fail(g, -1, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

enum { SWEEP_POINTS = 16 };

/* The frontier: SWEEP_POINTS budgets from the least feasible to store-all. A
 * plan that fits a smaller budget fits every larger one, so a point whose
 * plan predicts slower than the one before takes that one's plan. */
static int sweep(IrGraph *g, const CliPlanOptions *p, CliFit *f, int64_t least)
{
    int64_t top = f->weights_bytes + f->store_all_arena;
    CliFitResult pts[SWEEP_POINTS];
    int n = 0, rc = 0;
    for (int i = 0; i < SWEEP_POINTS && rc == 0; i++) {
        int64_t b = least + (top - least) * i / (SWEEP_POINTS - 1);
        if (n && b == pts[n - 1].budget) continue;
        if ((rc = cli_fit(f, b, &pts[n])) != 0) break;
        if (n && pts[n].sim.step_s > pts[n - 1].sim.step_s) {
            cli_fit_result_free(&pts[n]);
            pts[n] = pts[n - 1];
            pts[n].sched = opt_schedule_copy(&pts[n - 1].sched);
            pts[n].budget = b;
        }
        n++;
    }
    if (rc == 0 && p->svg) rc = write_svg(g, p->svg, pts, n, f);
    if (rc == 0 && p->json) {
        CliJson j;
        cli_json_init(&j, stdout);
        cli_json_array(&j, NULL, 0);
        for (int i = 0; i < n; i++) json_fit(&j, f, &pts[i], least, 0, "rotor");
        cli_json_close(&j);
        cli_json_end(&j);
    } else if (rc == 0) {
        char a[32], b[32], c[32];
        printf("%s: predicted step time against the budget (%s costs: %s)\n", g->path, f->device.name,
               f->costs.source);
        printf("%12s %12s %12s %10s %9s %10s\n", "budget", "arena", "device", "step ms", "overhead", "recomputes");
        for (int i = 0; i < n; i++)
            printf("%12s %12s %12s %10.4g %+8.1f%% %10d\n", cli_fmt_bytes((double)pts[i].budget, a, sizeof a),
                   cli_fmt_bytes((double)pts[i].arena, b, sizeof b),
                   cli_fmt_bytes((double)(f->weights_bytes + pts[i].arena), c, sizeof c), 1e3 * pts[i].sim.step_s,
                   100.0 * (pts[i].sim.step_s / f->store_all_step_s - 1), pts[i].sim.reruns);
    }
    for (int i = 0; i < n; i++) cli_fit_result_free(&pts[i]);
    return rc;
}

int cli_plan_report(IrGraph *g, const CliPlanOptions *p)
{
    CliFit f;
    if (fit_setup(g, p, &f)) return -1;
    int64_t least;
    CliFitResult r;
    int64_t budget = p->budget ? p->budget : f.weights_bytes + f.store_all_arena;
    const char *solver = p->ilp ? "ilp" : p->baseline >= 0 ? opt_remat_baseline_name((OptRematBaseline)p->baseline) : "rotor";
    int rc = cli_fit_least(&f, &least);
    if (rc == 0 && p->sweep && p->ilp) {
        rc = ir_fail(g, -1, "--sweep walks rotor's plans; --solver ilp plans one --budget");
    } else if (rc == 0 && p->sweep) {
        rc = sweep(g, p, &f, least);
    } else if (rc == 0 && (rc = p->ilp ? cli_fit_ilp(&f, budget, p->ilp_seconds, &r)
                                 : p->baseline >= 0 ? cli_fit_baseline(&f, (OptRematBaseline)p->baseline, &r)
                                 : cli_fit(&f, budget, &r)) == 0) {
        if (p->json) {
            CliJson j;
            cli_json_init(&j, stdout);
            json_fit(&j, &f, &r, least, 1, solver);
            cli_json_end(&j);
        } else {
            text_fit(&f, &r, least, solver);
        }
        cli_fit_result_free(&r);
    }
    cli_fit_free(&f);
    return rc;
}
