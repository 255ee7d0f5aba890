/* The `loom` command: main.c dispatches to one function per subcommand, each
 * in its own file (inspect.c, ops.c, ...); this header declares them and the
 * few helpers they share: exit codes and messages (util.c), human-readable
 * numbers (util.c) and a small JSON writer (json.c). Library code returns a
 * status and a message in g->err; only these functions decide to exit. */
#ifndef LOOM_CLI_H
#define LOOM_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "codegen.h"
#include "frontend.h"
#include "optimizer.h"

#define LOOM_VERSION "0.1.0"

/* Exit codes. */
enum {
    CLI_OK = 0,    /* success */
    CLI_ERROR = 1, /* the input is bad: a malformed or unsupported model, a missing file */
    CLI_USAGE = 2, /* the command line is bad: unknown command or flag, missing argument */
};

/* A subcommand: argv[0] is its name, argc counts it. Returns the exit code. */
typedef int (*CliCommandFn)(int argc, char **argv);
int cli_compile(int argc, char **argv);
/* `loom profile` runs compile's pipeline (compile.c) and then fn, in place of
 * compile's summary, with the graph, which node's step each node runs in
 * (run_at, as cg_select made it) and the program folder; fn returns 0, or -1
 * with g->err. */
typedef int (*CliCompiledFn)(IrGraph *g, const int *run_at, const char *dir, void *arg);
void cli_compile_on_done(CliCompiledFn fn, void *arg);
int cli_profile(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_ops(int argc, char **argv);

/* ---- messages and arguments (util.c) ---- */
/* "loom CMD: MESSAGE; see 'loom CMD --help'" on stderr (cmd NULL: plain
 * "loom"); returns CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "loom: error: MESSAGE" on stderr as one line (control characters escaped);
 * returns CLI_ERROR. */
int cli_error(const char *msg);
int cli_is_help(const char *arg); /* "-h" or "--help" */
/* Whether argv[*i] is `flag` taking a value, as "--flag VALUE" or
 * "--flag=VALUE": 0 no; 1 yes, *val set and *i advanced past a separate
 * value; -1 yes but the value is missing. */
int cli_flag_value(int argc, char **argv, int *i, const char *flag, char **val);
/* What every command that reads a model takes: the model path, --dim and
 * --dump-after (which names one of `passes`). */
typedef struct {
    const char *path;
    OnnxDim *dims; /* room for argc bindings */
    int ndims;
    const char *dump_after;
    const char *const *passes;
    int npasses;
} CliModel;
/* When argv[*i] is one of those (a flag or the model path), consumes it and
 * returns 1 with *rc = CLI_OK or the usage error; else returns 0. */
int cli_model_arg(const char *cmd, int argc, char **argv, int *i, CliModel *m, int *rc);
/* Start a command's CliModel: room for argc --dim bindings and the passes
 * --dump-after may name. Returns 1 (after printing `usage`) when argv asks
 * for help, else 0. Free m->dims when done. */
int cli_model_init(CliModel *m, int argc, char **argv, const char *usage,
                   const char *const *passes, int npasses);
/* Between passes: the verifier, then the IR on stderr if `pass` is the one
 * --dump-after names. 0, or -1 with g->err. */
int cli_checkpoint(IrGraph *g, const CliModel *m, const char *pass);
/* The front of every pipeline: load and fold, each followed by a checkpoint. */
int cli_load_model(IrGraph *g, const CliModel *m);
/* Flushes stdout; CLI_ERROR with a message if any output was lost, else rc. */
int cli_finish(int rc);

/* Human-readable numbers, three significant digits: "1.50 KiB", "12.3M",
 * "1.23 GFLOP"; exact below the first unit ("512 B", "212", "96 FLOP"). */
const char *cli_fmt_bytes(double bytes, char *buf, size_t n);
const char *cli_fmt_count(double count, char *buf, size_t n);
const char *cli_fmt_flops(double flops, char *buf, size_t n);

/* ---- JSON (json.c) ----
 * A streaming writer: containers nest, commas and indentation are placed for
 * the caller. Inside an object every item has a key; in an array or at the
 * top, key is NULL. A "flat" container is written on one line. */
#define CLI_JSON_DEPTH 16
typedef struct {
    FILE *f;
    int depth;
    int count[CLI_JSON_DEPTH];          /* items written into each open container */
    char closer[CLI_JSON_DEPTH];        /* '}' or ']' */
    unsigned char flat[CLI_JSON_DEPTH];
} CliJson;

void cli_json_init(CliJson *j, FILE *f);
void cli_json_object(CliJson *j, const char *key, int flat);
void cli_json_array(CliJson *j, const char *key, int flat);
void cli_json_close(CliJson *j);
void cli_json_str(CliJson *j, const char *key, const char *s); /* NULL writes null */
void cli_json_int(CliJson *j, const char *key, int64_t v);
/* Integral values print exactly, others with 17 digits; inf and nan as null. */
void cli_json_num(CliJson *j, const char *key, double v);
void cli_json_null(CliJson *j, const char *key);
void cli_json_end(CliJson *j); /* after the top-level value: a newline */

/* ---- memory budgets (budget.c) ----
 * What `loom compile --budget` and `loom plan` share: the store-all figures
 * of a training graph, the remat solver's table, and fitting a budget. */
typedef struct CliFit {
    IrGraph *g;
    const CgTarget *target;   /* whose selection (fusion, workspaces) the plans are placed with */
    OptDevice device;
    OptCosts costs;
    const double *node_s;     /* seconds per node of g (costs.seconds) */
    CgSelect sel;             /* the store-all selection */
    OptMemRequest req;
    int64_t weights_bytes;    /* parameters, constants, optimizer state */
    int64_t store_all_arena;  /* the planner's arena keeping everything */
    int64_t saved_bytes;      /* the activations backward reads (ir_saved_values): aligned, each buffer once */
    double store_all_step_s;  /* simulated */
    OptRemat *remat;          /* the solver's tables, built when a budget needs them */
    double table_s;           /* building the solver's table */
    /* the least feasible budget, once asked */
    int64_t least_bytes, least_arena;
    OptSchedule *least;
    OptSimResult least_sim;
    int offload;              /* plans may copy saved values to host memory and back */
    int offload_only;         /* ... and never recompute */
    int lowbit;               /* plans may store saved float32 values as bfloat16 (--lowbit bf16) */
    OptLink link;
    /* a variant of g fitted beside it (cli_fit_variant): g with
     * ir_fold_add_relu_grad, whose graph it owns; or NULL */
    struct CliFit *alt;
} CliFit;

typedef struct {
    int64_t budget;
    OptSchedule sched;
    OptSimResult sim;         /* predicted step time; simulated peak */
    int64_t arena;            /* the memory planner's arena for sched */
    double solve_s;
    char note[512];           /* cli_fit_ilp: the exact program's status, else empty */
    const CliFit *fit;        /* whose graph sched is for: the CliFit fitted, or its alt */
    int priced;               /* sched is a priced table's schedule with copies (opt_remat_priced) */
} CliFitResult;

/* The store-all selection and plan of g, its costs on the device profile
 * (NULL: cpu) or from a `loom profile` file (NULL: analytic), the table. */
/* offload: CLI_OFFLOAD_AUTO (where the device's copies overlap compute: a
 * GPU profile), _ON, _OFF, or _ONLY (offload without recomputation: the
 * baseline that shows what copies alone do, and what tests the copies on a
 * cpu target, where they are never faster). */
enum { CLI_OFFLOAD_AUTO = 0, CLI_OFFLOAD_ON, CLI_OFFLOAD_OFF, CLI_OFFLOAD_ONLY };
/* lowbit: 1 lets plans store saved float32 activations as bfloat16 between
 * their forward and backward reads (opt_offload's OPT_MOVE_BF16), which
 * changes the gradients by bfloat16's rounding of those values. */
int cli_fit_init(IrGraph *g, const CgTarget *target, const char *device, const char *costs_path, int offload,
                 int lowbit, CliFit *f);
/* Fits, beside f's graph, a copy of it with ir_fold_add_relu_grad (a
 * residual block's ReLU gradient reading the Add made again: less memory
 * under recomputation, more reads), with f's settings: cli_fit then keeps
 * whichever plan is faster below store-all (out->fit says which graph),
 * and the least feasible budget is the lower. Nothing when nothing folds
 * or the copy cannot be fitted (measured costs name no node it adds). */
void cli_fit_variant(CliFit *f, const char *device, const char *costs_path, int offload);
/* 0 with the schedule; -1 with g->err (a budget below the least feasible
 * one names it). */
int cli_fit(CliFit *f, int64_t budget, CliFitResult *out);
void cli_fit_result_free(CliFitResult *r);
/* A baseline's schedule over the same stages, placed; its budget is what it
 * needs. */
int cli_fit_baseline(CliFit *f, OptRematBaseline b, CliFitResult *out);
/* The exact program (optimizer/checkmate.c) for the arena the budget leaves,
 * placed; lp_solve stops after time_limit_s (0: CLI_ILP_SECONDS) with the
 * best schedule found, noted. It looks only for schedules faster than
 * rotor's plan at the budget by more than CLI_ILP_TOL of its step; when
 * it proves there is none, the result is rotor's plan, noted as within that
 * of the optimum, and when it finds none in the time (or none that fits
 * once placed), rotor's plan, so noted. -1 with g->err when the program is
 * refused (too large), or when rotor has no plan at the budget and the
 * program finds none. */
#define CLI_ILP_SECONDS 300
#define CLI_ILP_TOL 0.01
int cli_fit_ilp(CliFit *f, int64_t budget, double time_limit_s, CliFitResult *out);
/* What is live where schedule s, placed by the memory planner, holds the
 * most bytes: that step's node (name, phase), the bytes live there (buffers
 * and the step's workspace) and the largest buffers, largest first. */
enum { CLI_PEAK_TOP = 8 };
typedef struct {
    char node[160];
    const char *phase;        /* "forward", "backward", "update", "recompute", "offload", "low-bit" */
    int64_t live_bytes, ws_bytes;
    int n, more;              /* buffers listed in top; live beside them */
    struct {
        char name[160];
        int64_t bytes;
    } top[CLI_PEAK_TOP];
} CliPeak;
int cli_fit_peak(const CliFit *f, const OptSchedule *s, CliPeak *out);
/* The least feasible budget: the most frugal schedule the solver knows,
 * placed by the memory planner, plus the weights. */
int cli_fit_least(CliFit *f, int64_t *bytes);
void cli_fit_free(CliFit *f);
/* "6GiB", "512MB", "123456789": bytes (> 0); -1 when not a size. */
int cli_parse_bytes(const char *s, int64_t *out);

/* ---- `loom plan` and compile's memory flags (plan.c) ---- */
typedef struct {
    int report;            /* `loom plan`: report, write nothing */
    int64_t budget;        /* --budget; 0: none (plan: store-all) */
    const char *device;    /* --device */
    const char *costs;     /* --costs */
    int json, sweep;       /* --json, --sweep */
    const char *svg;       /* --svg FILE (with --sweep) */
    int baseline;          /* --solver: -1 rotor (default), else an OptRematBaseline */
    int ilp;               /* --solver ilp */
    double ilp_seconds;    /* --ilp-seconds; 0: CLI_ILP_SECONDS */
    int offload;           /* --offload: CLI_OFFLOAD_AUTO, _ON, _OFF */
    int lowbit;            /* --lowbit bf16: 1; off: 0 */
    const CgTarget *target; /* --target (NULL: cpu): the program the plan is for */
    int no_fold;           /* --no-fold-bn-relu: no graph variant either (cli_fit_variant) */
} CliPlanOptions;
extern const char cli_plan_usage[];
/* When argv[*i] is one of the flags above, consumes it and returns 1 with
 * *rc = CLI_OK or the usage error; else 0. */
int cli_plan_arg(const char *cmd, int argc, char **argv, int *i, CliPlanOptions *p, int *rc);
/* compile --budget: fit g (a training graph) into p->budget and rewrite it
 * into the chosen schedule (folding it first where the plan is the folded
 * variant's); prints one line on what was recomputed. */
int cli_plan_budget(IrGraph *g, const CliPlanOptions *p);
/* `loom plan`: the report (text or JSON), or the sweep. */
int cli_plan_report(IrGraph *g, const CliPlanOptions *p);
int cli_plan(int argc, char **argv);

#endif
