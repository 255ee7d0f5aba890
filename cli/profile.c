/* `loom profile MODEL.onnx --mode train|infer --target cpu -o costs.json`:
 * measure what every node of the compiled program costs on this machine.
 * With --from PROFILE.json (the cuda target's way, whose program runs on a
 * GPU machine): the step profile that the program, compiled with the same
 * flags and built with `make PROFILE=1`, wrote there with --profile, read
 * instead of building and running here; --device names the GPU's profile
 * the costs are for (`loom plan --device D --costs F` checks it).
 * The model is compiled by compile's own pipeline (compile.c; every compile
 * flag means the same here) into a temporary folder, built with `make
 * PROFILE=1` (each kernel call and fused loop timed, runtime/rt_prof.c), fed
 * random inputs of the right shapes and dtypes, and run: a warm-up, then
 * --repeat N timed runs (training steps, or forward passes with --mode
 * infer). Each step's median over the runs is split over the nodes it runs
 * (a fused loop runs several) in proportion to their analytic costs, so the
 * nodes of a step sum to its time; costs.json holds them with the median
 * time of the whole run, for `--costs` (opt_costs_load). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"
#include "optimizer.h"
#include "rt.h"

static const char usage[] =
    "usage: loom profile MODEL.onnx --mode infer|train --target cpu -o COSTS.json [--repeat N]\n"
    "                    [--dim NAME=N]... [compile's training and memory flags]\n"
    "       loom profile MODEL.onnx --mode infer|train --target cuda --from PROFILE.json --device D\n"
    "                    -o COSTS.json [compile's flags, as the program was compiled]\n"
    "\n"
    "Measure the time of every node of the compiled program on this machine: compile\n"
    "the model as `loom compile` does (the same flags) into a temporary folder, build\n"
    "it with `make PROFILE=1` (LOOM_PREBUILT and CFLAGS in the environment reach make),\n"
    "run it on random inputs (integer inputs within the range the graph indexes with\n"
    "them, else 0), once to warm up and then N times, and write COSTS.json: each\n"
    "node's median seconds (a fused loop's time split over its nodes in proportion to\n"
    "their analytic costs) and the median time of a whole run. `loom plan --costs\n"
    "COSTS.json` and `loom compile --costs COSTS.json` use them instead of the\n"
    "analytic roofline. A failing build or run keeps the folder and names its log.\n"
    "\n"
    "  -o, --output FILE    the costs file to write\n"
    "  --from FILE          the step profile (train/infer --profile FILE of a program\n"
    "                       built with make PROFILE=1) measured on another machine, such\n"
    "                       as a GPU's: read instead of building and running here\n"
    "  --device D           with --from: the device profile the costs are for (h100-sxm,\n"
    "                       h200, ...; loom plan --device D --costs FILE checks it)\n"
    "  --repeat N           timed runs after the warm-up (default 20)\n"
    "  (see `loom compile --help` for --mode, --target, --dim and the training flags;\n"
    "  their errors are reported as compile's)\n";

typedef struct {
    const char *out;
    int repeat;
    int keep;      /* the folder holds a log worth keeping */
    const char *from;   /* --from: a step profile measured elsewhere */
    const char *target; /* cpu or cuda */
    const char *device; /* the costs' device: cpu, or --device with --from */
} Profile;

/* ---- processes and files ---- */

/* Runs argv with stdout and stderr appended to log; its exit status (128 +
 * signal when killed), or -1 with errno when it could not start. */
static int run_logged(char *const argv[], const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The last non-empty line of a log, for a message. */
static void last_line(const char *log, char *buf, size_t n)
{
    FILE *f = fopen(log, "r");
    char line[512];
    buf[0] = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0]) snprintf(buf, n, "%s", line);
    }
    if (f) fclose(f);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = ir_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- random inputs ---- */

static uint64_t next_random(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The values an integer input may hold, [0, bound): what the graph indexes
 * with it (Gather and GatherElements: the data's axis; a loss's labels: the
 * class count), seen through casts and views; the least over its uses; 0
 * when nothing says (the input is then all zeros). */
static int64_t index_bound(const IrGraph *g, const IrUses *u, int v, int depth)
{
    int64_t bound = -1;
    for (int k = u->start[v]; k < u->start[v + 1] && depth < 8; k++) {
        const IrNode *n = &g->nodes[u->node[k]];
        int64_t b = -1;
        if ((n->op == IR_OP_Gather || n->op == IR_OP_GatherElements) && ir_in(n, 1) == v) {
            const IrValue *data = &g->values[n->in[0]];
            int axis = ir_norm_axis(ir_attr_int(n, "axis", 0), data->rank);
            if (axis >= 0) b = data->dims[axis];
        } else if ((n->op == IR_OP_SoftmaxCrossEntropyLoss || n->op == IR_OP_NegativeLogLikelihoodLoss) &&
                   ir_in(n, 1) == v) {
            const IrValue *scores = &g->values[n->in[0]];
            if (scores->rank >= 2) b = scores->dims[1];
        } else if ((n->op == IR_OP_Cast || (ir_ops[n->op].flags & OPF_VIEW)) && ir_in(n, 0) == v) {
            int64_t through = index_bound(g, u, n->out[0], depth + 1);
            if (through > 0) b = through;
        }
        if (b > 0 && (bound < 0 || b < bound)) bound = b;
    }
    return bound > 0 ? bound : 0;
}

/* One graph input's random contents as .npy: floats in [-1, 1) (half types
 * in +-[0.5, 1)), booleans 0/1, integers in [0, index_bound). */
static int write_input(IrGraph *g, const IrUses *u, int v, const char *path, uint64_t *seed)
{
    const IrValue *val = &g->values[v];
    int64_t n = ir_value_numel(val), bound = ir_dtype_is_int(val->dtype) ? index_bound(g, u, v, 0) : 0;
    rt_tensor t = {.dtype = val->dtype == IR_BF16 ? RT_U16 : (rt_dtype)val->dtype, .rank = val->rank};
    memcpy(t.dims, val->dims, sizeof t.dims);
    t.nbytes = (size_t)ir_value_bytes(val);
    t.data = ir_xcalloc(t.nbytes ? t.nbytes : 1, 1);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = next_random(seed);
        double x = (double)(r >> 11) * 0x1p-53 * 2 - 1;
        int64_t k = bound > 0 ? (int64_t)(r % (uint64_t)bound) : 0;
        switch (val->dtype) {
        case IR_F32: ((float *)t.data)[i] = (float)x; break;
        case IR_F64: ((double *)t.data)[i] = x; break;
        case IR_F16: ((uint16_t *)t.data)[i] = (uint16_t)(0x3800 | (r & 0x83ff)); break;
        case IR_BF16: ((uint16_t *)t.data)[i] = (uint16_t)(0x3f00 | (r & 0x807f)); break;
        case IR_BOOL: ((uint8_t *)t.data)[i] = (uint8_t)(r & 1); break;
        case IR_I64: ((int64_t *)t.data)[i] = k; break;
        case IR_I32: ((int32_t *)t.data)[i] = (int32_t)k; break;
        case IR_U64: ((uint64_t *)t.data)[i] = (uint64_t)k; break;
        case IR_U32: ((uint32_t *)t.data)[i] = (uint32_t)k; break;
        case IR_I16:
        case IR_U16: ((uint16_t *)t.data)[i] = (uint16_t)k; break;
        case IR_I8:
        case IR_U8: ((uint8_t *)t.data)[i] = (uint8_t)k; break;
        default: break;
        }
    }
    int rc = rt_npy_write(path, &t) ? ir_fail(g, -1, "%s", rt_error()) : 0;
    free(t.data);
    return rc;
}

/* ---- the measurement ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The n numbers of a JSON array into x; -1 when it is not that. */
static int numbers(const OptJson *a, int n, double *x)
{
    if (!a || a->kind != OPT_JSON_ARR || a->n != n) return -1;
    int k = 0;
    for (const OptJson *e = a->child; e; e = e->next, k++) {
        if (e->kind != OPT_JSON_NUM || e->num < 0) return -1;
        x[k] = e->num;
    }
    return 0;
}

/* The median of x[0..n), which it sorts. */
static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

/* The nodes that start a step, in the program's step order (what PROF_STEP
 * numbers: codegen's steps in the stored order, the updates among them). */
static int step_roots(const IrGraph *g, const int *run_at, int *roots)
{
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead && run_at[i] == i) roots[n++] = i;
    return n;
}

/* Whether a step's op label ("Erf+Add") fits the group rooted at root. */
static int label_fits(const IrGraph *g, const int *run_at, int root, const char *label)
{
    int plus = 0, members = 0;
    for (const char *p = label; *p; p++) plus += *p == '+';
    for (int i = 0; i < g->nnodes; i++) members += !g->nodes[i].dead && run_at[i] == root;
    const char *last = strrchr(label, '+');
    return plus + 1 == members && !strcmp(last ? last + 1 : label, ir_ops[g->nodes[root].op].name);
}

/* Whether the step rooted at root runs only views (Reshape and the like: no work) */
static int view_only(const IrGraph *g, const int *run_at, int root)
{
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead && run_at[i] == root && !(ir_ops[g->nodes[i].op].flags & OPF_VIEW)) return 0;
    return 1;
}

/* What the runs measured. step_s is the sum of the steps' medians plus the
 * median time outside them (batch copies, the loop): on a busy machine a run
 * loses time to other processes in one step or another, which each step's
 * median leaves out but the median of whole runs does not, so the nodes
 * would otherwise not add up to the step. median_run_s is that plain median. */
typedef struct {
    double step_s, median_run_s;
} Measured;

/* profile.json (rt_prof_write) -> seconds per node and the step; sync: a
 * program that synchronizes a device at every profiled step (cuda) */
static int node_seconds(IrGraph *g, const int *run_at, const char *path, int repeat, int sync, double *sec,
                        Measured *m)
{
    char err[512];
    OptJson *j = opt_json_read_file(path, err, sizeof err);
    if (!j) return ir_fail(g, -1, "the program's step profile: %s", err);
    int *roots = ir_xmalloc((size_t)(g->nnodes ? g->nnodes : 1) * sizeof *roots);
    int nroots = step_roots(g, run_at, roots), rc = 0;
    double *run = ir_xmalloc((size_t)repeat * sizeof *run), *outside = ir_xmalloc((size_t)repeat * sizeof *outside);
    double *x = ir_xmalloc((size_t)repeat * sizeof *x), steps_s = 0;
    const OptJson *steps = opt_json_get(j, "steps");
    if (numbers(opt_json_get(j, "run_s"), repeat, run) || !steps || steps->kind != OPT_JSON_ARR ||
        steps->n != nroots) {
        rc = ir_fail(g, -1, "%s: not the step profile of this program (%d steps, %d runs expected)", path, nroots,
                     repeat);
        goto out;
    }
    memcpy(outside, run, (size_t)repeat * sizeof *run);
    OptCosts weights;
    OptDevice cpu;
    IR_ASSERT(opt_device_lookup("cpu", &cpu, err, sizeof err) == 0);
    opt_costs_analytic(g, &cpu, run_at, &weights);
    /* sync: what a step costs that does nothing (a Reshape's: a view), the
     * timing itself, taken off every step: a cuda program synchronizes the
     * device at every step when profiled (about 6 us a step on an H100),
     * which it does not when it trains (a cpu program's timing costs next
     * to nothing, and is left alone) */
    double *views = ir_xmalloc((size_t)(nroots ? nroots : 1) * sizeof *views), idle = 0;
    int nviews = 0, k = 0;
    for (const OptJson *s = steps->child; s && sync; s = s->next, k++)
        if (view_only(g, run_at, roots[k]) && !numbers(opt_json_get(s, "seconds"), repeat, x))
            views[nviews++] = median(x, repeat);
    if (nviews) idle = median(views, nviews);
    free(views);
    k = 0;
    for (const OptJson *s = steps->child; s; s = s->next, k++) {
        const OptJson *op = opt_json_get(s, "op");
        if (!op || op->kind != OPT_JSON_STR || !label_fits(g, run_at, roots[k], op->str) ||
            numbers(opt_json_get(s, "seconds"), repeat, x)) {
            rc = ir_fail(g, roots[k], "%s: step %d is not this node's step: the program and the graph disagree",
                         path, k);
            break;
        }
        for (int r = 0; r < repeat; r++) outside[r] -= x[r];
        double t = fmax(median(x, repeat) - idle, 0), total = 0;
        int members = 0;
        steps_s += t;
        for (int i = 0; i < g->nnodes; i++)
            if (!g->nodes[i].dead && run_at[i] == roots[k]) total += weights.seconds[i], members++;
        for (int i = 0; i < g->nnodes; i++)
            if (!g->nodes[i].dead && run_at[i] == roots[k])
                sec[i] = total > 0 ? t * weights.seconds[i] / total : t / members;
    }
    opt_costs_free(&weights);
    m->step_s = steps_s + fmax(median(outside, repeat), 0);
    m->median_run_s = median(run, repeat);
out:
    free(run);
    free(outside);
    free(x);
    free(roots);
    opt_json_free(j);
    return rc;
}

static int write_costs(IrGraph *g, const int *run_at, const Profile *p, int train, const double *sec,
                       const Measured *m)
{
    FILE *f = fopen(p->out, "w");
    if (!f) return ir_fail(g, -1, "cannot write %s: %s", p->out, strerror(errno));
    int *step = ir_xcalloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *step);
    int *roots = ir_xmalloc((size_t)(g->nnodes ? g->nnodes : 1) * sizeof *roots);
    int nroots = step_roots(g, run_at, roots);
    for (int k = 0; k < nroots; k++) step[roots[k]] = k;
    CliJson j;
    cli_json_init(&j, f);
    cli_json_object(&j, NULL, 0);
    cli_json_str(&j, "model", g->path);
    cli_json_str(&j, "mode", train ? "train" : "infer");
    cli_json_str(&j, "target", p->target);
    cli_json_str(&j, "device", p->device);
    cli_json_int(&j, "repeat", p->repeat);
    cli_json_num(&j, "step_s", m->step_s);
    cli_json_num(&j, "median_run_s", m->median_run_s);
    cli_json_array(&j, "nodes", 0);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        cli_json_object(&j, NULL, 1);
        cli_json_str(&j, "name", n->name);
        cli_json_str(&j, "op", ir_ops[n->op].name);
        cli_json_num(&j, "seconds", sec[i]);
        cli_json_int(&j, "step", step[run_at[i]]);
        cli_json_num(&j, "flops", ir_node_flops(g, i));
        cli_json_num(&j, "bytes", opt_node_bytes(g, i, NULL));
        cli_json_close(&j);
    }
    cli_json_close(&j);
    cli_json_close(&j);
    cli_json_end(&j);
    free(step);
    free(roots);
    if (ferror(f) | (fclose(f) != 0)) return ir_fail(g, -1, "cannot write %s: %s", p->out, strerror(errno));
    return 0;
}

/* Runs a program command; -1 with g->err naming the log's last line. */
static int run_step(IrGraph *g, Profile *p, char **argv, const char *log, const char *what)
{
    int st = run_logged(argv, log);
    if (st == 0) return 0;
    char last[512];
    last_line(log, last, sizeof last);
    p->keep = 1;
    if (st < 0) return ir_fail(g, -1, "cannot run %s: %s", argv[0], strerror(errno));
    return ir_fail(g, -1, "%s failed (exit %d): %s; the whole output is in %s", what, st,
                   last[0] ? last : "(no output)", log);
}

/* --from: the step profile a GPU machine wrote for this program (its runs:
 * the file's run count); the costs written as measure's */
static int measured_elsewhere(IrGraph *g, const int *run_at, Profile *p, int train)
{
    char err[512];
    OptJson *j = opt_json_read_file(p->from, err, sizeof err);
    if (!j) return ir_fail(g, -1, "--from: %s", err);
    const OptJson *runs = opt_json_get(j, "runs");
    int n = runs && runs->kind == OPT_JSON_NUM && runs->num >= 1 && runs->num <= 100000 ? (int)runs->num : 0;
    opt_json_free(j);
    if (!n)
        return ir_fail(g, -1, "%s: not a step profile (no \"runs\"): give the file a PROFILE=1 program wrote with "
                              "--profile", p->from);
    p->repeat = n;
    double *sec = ir_xcalloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *sec);
    Measured m = {0, 0};
    int rc = node_seconds(g, run_at, p->from, n, strcmp(p->target, "cpu") != 0, sec, &m);
    if (rc == 0) rc = write_costs(g, run_at, p, train, sec, &m);
    if (rc == 0)
        printf("%-9s %s: %d runs of %s on %s, %.4f ms a %s\n%-9s %s\n", "measured", p->from, n, p->target, p->device,
               m.step_s * 1e3, train ? "step" : "forward pass", "costs", p->out);
    free(sec);
    return rc;
}

/* What runs once compile has written the program folder. */
static int measure(IrGraph *g, const int *run_at, const char *dir, void *arg)
{
    Profile *p = arg;
    int train = 0, rc = 0;
    for (int i = 0; i < g->nnodes; i++) train |= g->nodes[i].phase == IR_UPDATE || g->nodes[i].phase == IR_BACKWARD;
    if (p->from) return measured_elsewhere(g, run_at, p, train);
    char *build_log = join(dir, "build.log"), *run_log = join(dir, "run.log"), *prof = join(dir, "profile.json");
    char **argv = ir_xcalloc((size_t)(2 * g->ninputs + 16), sizeof *argv);
    char **owned = ir_xcalloc((size_t)(g->ninputs + 1), sizeof *owned);
    char jobs[32], runs[32], steps[32];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(jobs, sizeof jobs, "-j%ld", cpus > 0 ? cpus : 1);
    snprintf(runs, sizeof runs, "%d", p->repeat);
    snprintf(steps, sizeof steps, "%d", p->repeat + 1);
    /* random inputs, named by position (input names may hold any character) */
    IrUses u = ir_uses_build(g);
    uint64_t seed = 1;
    int na = 0;
    argv[na++] = join(dir, train ? "train" : "infer");
    for (int i = 0; i < g->ninputs && rc == 0; i++) {
        char file[32];
        snprintf(file, sizeof file, "input%d.npy", i);
        char *path = join(dir, file);
        size_t n = strlen(g->values[g->inputs[i]].name) + strlen(path) + 2;
        owned[i] = ir_xmalloc(n);
        snprintf(owned[i], n, "%s=%s", g->values[g->inputs[i]].name, path);
        argv[na++] = train ? "--data" : "--input";
        argv[na++] = owned[i];
        rc = write_input(g, &u, g->inputs[i], path, &seed);
        free(path);
    }
    ir_uses_free(&u);
    if (train) {
        char *const tail[] = {"--steps", steps, "--print-every", steps, "--profile", prof};
        for (size_t k = 0; k < sizeof tail / sizeof *tail; k++) argv[na++] = tail[k];
    } else {
        char *const tail[] = {"--repeat", runs, "--profile", prof};
        for (size_t k = 0; k < sizeof tail / sizeof *tail; k++) argv[na++] = tail[k];
    }
    char *make[] = {"make", "-C", (char *)dir, "PROFILE=1", jobs, NULL};
    if (rc == 0) rc = run_step(g, p, make, build_log, "building the program (make PROFILE=1)");
    if (rc == 0) rc = run_step(g, p, argv, run_log, "running the program");
    double *sec = ir_xcalloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *sec);
    Measured m = {0, 0};
    if (rc == 0 && (rc = node_seconds(g, run_at, prof, p->repeat, 0, sec, &m))) p->keep = 1;
    if (rc == 0) rc = write_costs(g, run_at, p, train, sec, &m);
    if (rc == 0) {
        double sum = 0;
        int nodes = 0;
        for (int i = 0; i < g->nnodes; i++) sum += sec[i], nodes += !g->nodes[i].dead;
        printf("%-9s %d nodes, %d %s after a warm-up (median)\n", "measured", nodes, p->repeat,
               train ? "training steps" : "forward passes");
        printf("%-9s %.4f ms (the nodes sum to %.4f ms; median of whole runs %.4f ms)\n", train ? "step" : "forward",
               m.step_s * 1e3, sum * 1e3, m.median_run_s * 1e3);
        printf("%-9s %s\n", "costs", p->out);
    }
    free(sec);
    for (int i = 0; i < g->ninputs; i++) free(owned[i]);
    free(owned);
    free(argv[0]);
    free(argv);
    free(build_log);
    free(run_log);
    free(prof);
    return rc;
}

/* ---- the command ---- */

int cli_profile(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return CLI_OK;
        }
    Profile p = {.repeat = 20, .target = "cpu"};
    /* compile's argv: every flag but ours, then -o the temporary folder */
    char **cargv = ir_xcalloc((size_t)argc + 3, sizeof *cargv);
    int cargc = 0;
    cargv[cargc++] = "compile";
    for (int i = 1; i < argc; i++) {
        char *val = NULL, *end;
        int r;
        if ((r = cli_flag_value(argc, argv, &i, "-o", &val)) != 0 ||
            (r = cli_flag_value(argc, argv, &i, "--output", &val)) != 0) {
            if (r < 0) return free(cargv), cli_usage("profile", "-o needs a file");
            p.out = val;
        } else if ((r = cli_flag_value(argc, argv, &i, "--repeat", &val)) != 0) {
            errno = 0;
            long n = r > 0 ? strtol(val, &end, 10) : 0;
            if (r < 0 || errno || end == val || *end || n < 1 || n > 100000)
                return free(cargv), cli_usage("profile", "--repeat needs a count from 1 to 100000%s%s%s",
                                              r > 0 ? ", not '" : "", r > 0 ? val : "", r > 0 ? "'" : "");
            p.repeat = (int)n;
        } else if ((r = cli_flag_value(argc, argv, &i, "--from", &val)) != 0) {
            if (r < 0) return free(cargv), cli_usage("profile", "--from needs the step profile a program wrote");
            p.from = val;
        } else if ((r = cli_flag_value(argc, argv, &i, "--device", &val)) != 0) {
            if (r < 0) return free(cargv), cli_usage("profile", "--device needs a device profile's name");
            p.device = val;
        } else {
            if (!strcmp(argv[i], "--target") && i + 1 < argc) p.target = argv[i + 1];
            cargv[cargc++] = argv[i];
        }
    }
    if (!p.out) return free(cargv), cli_usage("profile", "no output file given (-o COSTS.json)");
    if (strcmp(p.target, "cpu") && !p.from)
        return free(cargv), cli_usage("profile", "--target %s: loom profile runs only cpu programs here; run the "
                                      "program built with make PROFILE=1 on its machine with --profile FILE and give "
                                      "FILE with --from", p.target);
    if (p.from && !p.device)
        return free(cargv), cli_usage("profile", "--from needs --device: the profile the measured costs are for "
                                      "(h100-sxm, h200, ...)");
    if (!p.device) p.device = "cpu";
    char derr[512];
    OptDevice dev;
    if (opt_device_lookup(p.device, &dev, derr, sizeof derr))
        return free(cargv), cli_usage("profile", "--device: %s", derr);
    const char *tmp = getenv("TMPDIR");
    char *dir = join(tmp && *tmp ? tmp : "/tmp", "loom-profile-XXXXXX");
    if (!mkdtemp(dir)) {
        char msg[512];
        snprintf(msg, sizeof msg, "cannot make a temporary folder %s: %s", dir, strerror(errno));
        free(cargv);
        free(dir);
        return cli_error(msg);
    }
    cargv[cargc++] = "-o";
    cargv[cargc++] = dir;
    cli_compile_on_done(measure, &p);
    int rc = cli_compile(cargc, cargv);
    cli_compile_on_done(NULL, NULL);
    if (!p.keep) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(cargv);
    free(dir);
    return rc;
}
