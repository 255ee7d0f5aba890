/* `loom compile MODEL.onnx --mode infer|train --target cpu -o DIR`: the whole
 * compiler, one call per pass with the verifier between them (QBE's
 * func()): load, fold and infer shapes, fuse attention; then lower for inference, or build
 * the training graph (loss, autodiff, optimizer update: ir/train.h); select
 * kernels and fuse elementwise chains, plan memory, emit the program folder,
 * and write plan.json, the record of every decision the plan made. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "codegen.h"
#include "frontend.h"
#include "ir.h"
#include "optimizer.h"
#include "train.h"

static const char usage[] =
    "usage: loom compile MODEL.onnx --mode infer|train --target cpu|cuda -o DIR [--dim NAME=N]...\n"
    "                    [--dump-after PASS] [training flags]\n"
    "\n"
    "Compile an ONNX model into a standalone C program in DIR: model.c (the forward\n"
    "pass, or one training step, as straight-line kernel calls and fused loops),\n"
    "main.c (the `infer` or `train` command), model.h, a Makefile, the kernel and\n"
    "runtime sources, the weights (weights.safetensors) and the plan (plan.json).\n"
    "Build it with `make -C DIR`; run `DIR/infer --input NAME=FILE.npy --output\n"
    "NAME=FILE.npy`, or `DIR/train --data NAME=FILE.npy... --steps N`.\n"
    "\n"
    "  --mode MODE          infer, or train (loss, backward pass, optimizer update)\n"
    "  --target TARGET      cpu, or cuda (a program for nvcc; `make EMU=1` runs it on the CPU)\n"
    "  -o, --output DIR     the folder to write (created if absent)\n"
    "  --dim NAME=N         bind a symbolic dimension (a dim_param name, or\n"
    "                       INPUT:AXIS=N for an input axis); repeatable\n"
    "  --dump-after PASS    print the IR to stderr after PASS (load, fold, fuse,\n"
    "                       lower; train and remat for --mode train)\n"
    "  --no-fuse-attention  keep attention as the model writes it (MatMul, scale,\n"
    "                       mask, Softmax, MatMul) instead of one loom.Attention\n"
    "  --precision P        fp32 (the default), or bf16: matrix products read\n"
    "                       bfloat16 copies of their float32 operands, accumulate in\n"
    "                       float32 and write bfloat16 results that are widened back;\n"
    "                       weights, optimizer state, norms, softmax and the loss stay\n"
    "                       float32\n"
    "\n"
    "Memory (--mode train):\n"
    "  --budget BYTES       device memory for the program (weights, optimizer state\n"
    "                       and activations): 6GiB, 512MB, 123456789; activations are\n"
    "                       recomputed in backward to fit (`loom plan` shows the plan)\n"
    "  --device PROFILE     the hardware profile the cost model uses (`loom plan\n"
    "                       --help` lists them) or a JSON file; default cpu\n"
    "  --costs FILE         measured costs from `loom profile` instead\n"
    "  --offload M          auto (default: on for GPU profiles), on, off or only (no\n"
    "                       recomputation): saved activations may go to host\n"
    "                       memory and back to fit\n"
    "  --lowbit M           off (default) or bf16: saved float32 activations may be\n"
    "                       stored as bfloat16 between forward and backward to fit\n"
    "                       (half their bytes, two conversions each; the gradients\n"
    "                       change by bfloat16's rounding of those values)\n"
    "\n"
    "Training (--mode train; defaults are PyTorch's):\n"
    "  --loss KIND          model: the model's own scalar output (the default);\n"
    "                       ce: cross-entropy of the output's last axis against an\n"
    "                       int64 target input (mean over samples); mse: mean squared\n"
    "                       error against a target input shaped like the output\n"
    "  --loss-target NAME   the target input ce/mse add (default target)\n"
    "  --ignore-index N     ce: samples whose target is N count for nothing\n"
    "  --no-fuse-head       ce: keep the logits' product and the loss apart (by default\n"
    "                       a product x W whose result only the loss reads becomes one\n"
    "                       loom.LinearCrossEntropy, which never holds the logits)\n"
    "  --no-fold-bn-relu    keep the ReLU outputs a CNN's backward reads (by default the\n"
    "                       gradients of a BatchNormalization and the ReLU after it, and\n"
    "                       the next convolution's weight gradient, compute the ReLU's\n"
    "                       output from the normalization's input; same bits)\n"
    "  --fold-add-relu M    auto (default), on or off: whether a residual block's ReLU\n"
    "                       gradient reads the Add made again from the normalizations'\n"
    "                       inputs instead of the ReLU's output (less to keep under a\n"
    "                       --budget, more to read; same bits); auto: where the plan\n"
    "                       is faster (--budget below store-all)\n"
    "  --freeze REGEX       parameters whose names match (POSIX extended) stay fixed\n"
    "  --optimizer OPT      adamw (default) or sgd\n"
    "  --lr X               learning rate (default 0.001; the program may override)\n"
    "  --weight-decay X     default 0.01 for adamw (decoupled), 0 for sgd\n"
    "  --beta1 X, --beta2 X adamw's moment decays (default 0.9, 0.999)\n"
    "  --eps X              adamw's denominator term (default 1e-08)\n"
    "  --momentum X         sgd momentum (default 0)\n"
    "  --nesterov           sgd: Nesterov momentum (needs --momentum)\n"
    "  --clip-norm X        clip the gradients to global L2 norm X (default: no clipping)\n"
    "  --schedule S         constant (default) or cosine (decay to 0 over the run)\n"
    "  --warmup N           linear warm-up over the first N steps (default 0)\n";

static const char *const passes[] = {"load", "fold", "fuse", "lower", "train", "remat"};

typedef struct {
    CliModel m;
    const char *mode, *target, *out;
    IrTrainOptions t;
    int schedule;
    int64_t warmup;
    const char *train_flag; /* the first training flag given (refused with --mode infer) */
    int weight_decay_given;
    int no_fuse; /* --no-fuse-attention */
    int fold_add_relu; /* --fold-add-relu: 0 auto, 1 on, 2 off */
    CliPlanOptions p; /* --budget, --device, --costs; `loom plan`'s report flags */
} Options;

/* ---- plan.json ---- */

static const char *g_target = "cpu"; /* --target, for plan.json */
static const char *g_precision = "fp32"; /* --precision, for plan.json */

static void json_plan(CliJson *j, const IrGraph *g, const OptMemPlan *p, const CgSelect *sel, int train)
{
    cli_json_object(j, NULL, 0);
    cli_json_str(j, "model", g->path);
    cli_json_str(j, "mode", train ? "train" : "infer");
    cli_json_str(j, "target", g_target);
    cli_json_str(j, "precision", g_precision);
    cli_json_int(j, "arena_bytes", p->arena_bytes);
    cli_json_int(j, "lower_bound", p->lower_bound);
    cli_json_int(j, "weights_bytes", p->weights_bytes);
    cli_json_int(j, "prepared_bytes", p->pack_bytes);
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

static int write_plan(IrGraph *g, const char *dir, const OptMemPlan *p, const CgSelect *sel, int train)
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
        json_plan(&j, g, p, sel, train);
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
    if (!strcmp(o->mode, "train")) {
        int64_t state = 0;
        int trained = 0;
        for (int v = 0; v < g->nvalues; v++) {
            if (g->values[v].role == IR_OPT_STATE) state += ir_value_bytes(&g->values[v]);
            trained += g->values[v].role == IR_PARAM && ir_param_grad(g, v) >= 0;
        }
        printf("%-9s %s (%d parameters trained; optimizer state %s)\n", "weights",
               cli_fmt_bytes((double)p->weights_bytes, w, sizeof w), trained, cli_fmt_bytes((double)state, a, sizeof a));
    } else {
        printf("%-9s %s", "weights", cli_fmt_bytes((double)p->weights_bytes, w, sizeof w));
        if (p->pack_bytes) printf(" (%s of them prepared at start)", cli_fmt_bytes((double)p->pack_bytes, a, sizeof a));
        printf("\n");
    }
    printf("build with: make -C %s\n", o->out);
}

/* A training program takes batches along the first axis of every input. */
static int check_batched(IrGraph *g)
{
    const IrValue *first = &g->values[g->inputs[0]];
    for (int i = 0; i < g->ninputs; i++) {
        const IrValue *v = &g->values[g->inputs[i]];
        char a[128], b[128];
        if (v->rank < 1 || v->dims[0] != first->dims[0] || v->dims[0] < 1)
            return ir_fail(g, -1, "a training program draws batches along the first axis of every input, "
                           "but input '%s' is %s and input '%s' is %s; bind the batch dim to the same size "
                           "(--dim)", first->name, ir_shape_str(first, a, sizeof a), v->name,
                           ir_shape_str(v, b, sizeof b));
    }
    return 0;
}

/* What the program's --help says of the loss and the update. */
static void describe(const Options *o, char *loss, size_t nl, char *opt, size_t no)
{
    const IrTrainOptions *t = &o->t;
    if (t->loss_kind == IR_LOSS_MODEL)
        snprintf(loss, nl, "the model's scalar output%s%s", t->loss_output ? " " : "",
                 t->loss_output ? t->loss_output : "");
    else
        snprintf(loss, nl, "%s against the target input '%s'", t->loss_kind == IR_LOSS_CE
                 ? "cross-entropy (mean over samples)" : "mean squared error (mean over elements)", t->target);
    int k;
    if (t->optimizer == IR_OPTIM_ADAMW)
        k = snprintf(opt, no, "adamw, betas (%g, %g), eps %g, weight decay %g", (double)t->beta1,
                     (double)t->beta2, (double)t->eps, (double)t->weight_decay);
    else
        k = snprintf(opt, no, "sgd, momentum %g%s, weight decay %g", (double)t->momentum,
                     t->nesterov ? " (nesterov)" : "", (double)t->weight_decay);
    if (t->clip_norm > 0 && k > 0 && (size_t)k < no)
        snprintf(opt + k, no - (size_t)k, ", gradients clipped to norm %g", (double)t->clip_norm);
}

/* `loom profile` (profile.c) compiles as compile does, then builds and runs
 * the program: its function runs in place of the summary once the folder is
 * written. */
static CliCompiledFn compiled_fn;
static void *compiled_arg;

void cli_compile_on_done(CliCompiledFn fn, void *arg)
{
    compiled_fn = fn;
    compiled_arg = arg;
}

static int run_passes(IrGraph *g, const Options *o)
{
    int train = !strcmp(o->mode, "train");
    if (cli_load_model(g, &o->m)) return -1;
    if (opt_fuse_gelu(g) || opt_fuse_rmsnorm(g) || (!o->no_fuse && opt_fuse_attention(g)) || cli_checkpoint(g, &o->m, "fuse")) return -1;
    if (train) {
        if (ir_build_training(g, &o->t) || (o->fold_add_relu == 1 && ir_fold_add_relu_grad(g) < 0) ||
            cli_checkpoint(g, &o->m, "train") || check_batched(g))
            return -1;
    } else if (opt_lower_infer(g) || (o->t.precision && (ir_autocast(g, o->t.precision) || ir_autocast_weights(g) < 0 || ir_autocast_narrow_norms(g) < 0)) ||
               ir_sink_reshapes(g) < 0 || cli_checkpoint(g, &o->m, "lower")) {
        return -1;
    }
    const CgTarget *target = !strcmp(o->target, "cuda") ? &cg_target_cuda : &cg_target_cpu;
    CliPlanOptions p = o->p;
    p.target = target;
    /* the graph variant is auto's; bfloat16 matrix products: the graph as built */
    p.no_fold = o->t.no_fold_bn_relu || o->t.precision || o->fold_add_relu != 0;
    if (p.report) return cli_plan_report(g, &p);
    if (p.budget > 0 && (cli_plan_budget(g, &p) || cli_checkpoint(g, &o->m, "remat"))) return -1;
    CgSelect sel;
    g_target = o->target;
    if (cg_select(g, target, &sel)) {
        cg_select_free(&sel);
        return -1;
    }
    OptMemRequest req = cg_mem_request(&sel);
    OptMemPlan plan;
    char loss[256], opt[256];
    describe(o, loss, sizeof loss, opt, sizeof opt);
    CgTrain cfg = {loss, opt, o->t.lr, o->schedule, o->warmup};
    int rc = opt_memplan(g, &req, &plan);
    if (rc == 0) rc = cg_emit(g, target, &sel, &plan, train ? &cfg : NULL, o->out);
    if (rc == 0) rc = write_plan(g, o->out, &plan, &sel, train);
    if (rc == 0 && compiled_fn) rc = compiled_fn(g, sel.run_at, o->out, compiled_arg);
    else if (rc == 0) summary(g, o, &plan, &sel);
    opt_memplan_free(&plan);
    cg_select_free(&sel);
    return rc;
}

/* A float flag's value in the interval lo..hi (lo_open, hi_open: excluded;
 * hi 0: unbounded); else a usage error in *rc. */
static void float_arg(const char *flag, const char *v, double lo, int lo_open, double hi, int hi_open,
                      float *out, int *rc)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    int ok = !errno && end != v && !*end && isfinite(x) && (lo_open ? x > lo : x >= lo) &&
             (hi == 0 || (hi_open ? x < hi : x <= hi));
    if (!ok) {
        char range[64];
        if (hi == 0) snprintf(range, sizeof range, "%s %g", lo_open ? ">" : ">=", lo);
        else snprintf(range, sizeof range, "in %c%g, %g%c", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
        *rc = cli_usage("compile", "%s needs a number %s, not '%s'", flag, range, v);
        return;
    }
    *out = (float)x;
}

/* The training flags; returns 1 when argv[*i] was one (with *rc set). */
static int train_arg(int argc, char **argv, int *i, Options *o, int *rc)
{
    static const struct {
        const char *flag;
        double lo, hi; /* hi 0: unbounded */
        int lo_open, hi_open;
        size_t off;
    } floats[] = {
        {"--lr", 0, 0, 0, 0, offsetof(IrTrainOptions, lr)},
        {"--momentum", 0, 0, 0, 0, offsetof(IrTrainOptions, momentum)},
        {"--weight-decay", 0, 0, 0, 0, offsetof(IrTrainOptions, weight_decay)},
        {"--beta1", 0, 1, 0, 1, offsetof(IrTrainOptions, beta1)},
        {"--beta2", 0, 1, 0, 1, offsetof(IrTrainOptions, beta2)},
        {"--eps", 0, 0, 1, 0, offsetof(IrTrainOptions, eps)},
        {"--clip-norm", 0, 0, 1, 0, offsetof(IrTrainOptions, clip_norm)},
    };
    char *val = NULL, *end;
    const char *a = argv[*i];
    int r;
    *rc = CLI_OK;
    if (!strcmp(a, "--nesterov")) {
        o->t.nesterov = 1;
        o->train_flag = o->train_flag ? o->train_flag : a;
        return 1;
    }
    if (!strcmp(a, "--no-fuse-head")) {
        o->t.no_fuse_head = 1;
        o->train_flag = o->train_flag ? o->train_flag : a;
        return 1;
    }
    if (!strcmp(a, "--no-fold-bn-relu")) {
        o->t.no_fold_bn_relu = 1;
        o->train_flag = o->train_flag ? o->train_flag : a;
        return 1;
    }
    for (size_t k = 0; k < sizeof floats / sizeof *floats; k++) {
        if ((r = cli_flag_value(argc, argv, i, floats[k].flag, &val)) == 0) continue;
        o->train_flag = o->train_flag ? o->train_flag : floats[k].flag;
        if (r < 0) *rc = cli_usage("compile", "%s needs a value", floats[k].flag);
        else float_arg(floats[k].flag, val, floats[k].lo, floats[k].lo_open, floats[k].hi, floats[k].hi_open,
                       (float *)((char *)&o->t + floats[k].off), rc);
        o->weight_decay_given |= !strcmp(floats[k].flag, "--weight-decay");
        return 1;
    }
    static const char *const strs[] = {"--loss", "--loss-target", "--ignore-index", "--freeze", "--optimizer",
                                       "--schedule", "--warmup", "--fold-add-relu"};
    for (size_t k = 0; k < sizeof strs / sizeof *strs; k++) {
        if ((r = cli_flag_value(argc, argv, i, strs[k], &val)) == 0) continue;
        o->train_flag = o->train_flag ? o->train_flag : strs[k];
        if (r < 0) {
            *rc = cli_usage("compile", "%s needs a value", strs[k]);
            return 1;
        }
        switch (k) {
        case 0:
            if (!strcmp(val, "model")) o->t.loss_kind = IR_LOSS_MODEL;
            else if (!strcmp(val, "ce")) o->t.loss_kind = IR_LOSS_CE;
            else if (!strcmp(val, "mse")) o->t.loss_kind = IR_LOSS_MSE;
            else *rc = cli_usage("compile", "unknown loss '%s' (model, ce, mse)", val);
            break;
        case 1:
            if (!*val) *rc = cli_usage("compile", "--loss-target needs a name");
            o->t.target = val;
            break;
        case 2:
            errno = 0;
            o->t.ignore_index = strtoll(val, &end, 10);
            o->t.use_ignore_index = 1;
            if (errno || end == val || *end) *rc = cli_usage("compile", "--ignore-index needs an integer, not '%s'", val);
            break;
        case 3: o->t.freeze_regex = val; break;
        case 4:
            if (!strcmp(val, "adamw")) o->t.optimizer = IR_OPTIM_ADAMW;
            else if (!strcmp(val, "sgd")) o->t.optimizer = IR_OPTIM_SGD;
            else *rc = cli_usage("compile", "unknown optimizer '%s' (adamw, sgd)", val);
            break;
        case 5:
            if (!strcmp(val, "constant")) o->schedule = 0;
            else if (!strcmp(val, "cosine")) o->schedule = 1;
            else *rc = cli_usage("compile", "unknown schedule '%s' (constant, cosine)", val);
            break;
        case 7:
            if (!strcmp(val, "auto")) o->fold_add_relu = 0;
            else if (!strcmp(val, "on")) o->fold_add_relu = 1;
            else if (!strcmp(val, "off")) o->fold_add_relu = 2;
            else *rc = cli_usage("compile", "--fold-add-relu needs auto, on or off, not '%s'", val);
            break;
        default:
            errno = 0;
            o->warmup = strtoll(val, &end, 10);
            if (errno || end == val || *end || o->warmup < 0)
                *rc = cli_usage("compile", "--warmup needs a whole number of steps, not '%s'", val);
            break;
        }
        return 1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, Options *o)
{
    for (int i = 1; i < argc; i++) {
        char *a = argv[i], *val = NULL;
        int r, rc;
        if (cli_model_arg("compile", argc, argv, &i, &o->m, &rc)) {
            if (rc != CLI_OK) return rc;
        } else if (train_arg(argc, argv, &i, o, &rc)) {
            if (rc != CLI_OK) return rc;
        } else if (cli_plan_arg(o->p.report ? "plan" : "compile", argc, argv, &i, &o->p, &rc)) {
            if (rc != CLI_OK) return rc;
        } else if (!strcmp(a, "--no-fuse-attention")) {
            o->no_fuse = 1;
        } else if ((r = cli_flag_value(argc, argv, &i, "--precision", &val)) != 0) {
            if (r < 0) return cli_usage(o->p.report ? "plan" : "compile", "--precision needs a value: fp32 or bf16");
            if (!strcmp(val, "bf16")) o->t.precision = IR_BF16;
            else if (!strcmp(val, "fp32")) o->t.precision = 0;
            else return cli_usage(o->p.report ? "plan" : "compile", "unknown precision '%s' (fp32, bf16)", val);
            g_precision = o->t.precision ? "bf16" : "fp32";
        } else if ((r = cli_flag_value(argc, argv, &i, "--mode", &val)) != 0) {
            if (r < 0) return cli_usage("compile", "--mode needs a value: infer or train");
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
    const char *cmd = o->p.report ? "plan" : "compile";
    if (!o->m.path) return cli_usage(cmd, "no model given");
    if (o->p.report) {
        if (!o->mode) o->mode = "train";
        if (!o->target) o->target = "cpu";
        if (o->out) return cli_usage(cmd, "plan writes no folder; -o is compile's");
    }
    if (!o->mode) return cli_usage(cmd, "no --mode given: infer or train");
    if (!o->target) return cli_usage(cmd, "no --target given: cpu");
    if (!o->out && !o->p.report) return cli_usage(cmd, "no output folder given (-o DIR)");
    if (strcmp(o->mode, "infer") && strcmp(o->mode, "train"))
        return cli_usage(cmd, "unknown mode '%s' (infer, train)", o->mode);
    if (strcmp(o->target, "cpu") && strcmp(o->target, "cuda"))
        return cli_usage(cmd, "unknown target '%s' (cpu, cuda)", o->target);
    if (!strcmp(o->mode, "infer") && o->train_flag)
        return cli_usage(cmd, "%s is a training flag; it needs --mode train", o->train_flag);
    if (!o->p.report && !o->p.budget && (o->p.device || o->p.costs))
        return cli_usage(cmd, "%s weighs what to recompute under --budget; give a --budget too",
                         o->p.device ? "--device" : "--costs");
    if (!o->p.report && !o->p.budget && o->p.offload)
        return cli_usage(cmd, "--offload says how to fit a --budget; give a --budget too");
    if (!o->p.report && !o->p.budget && o->p.lowbit)
        return cli_usage(cmd, "--lowbit says how to fit a --budget; give a --budget too");
    if (!strcmp(o->mode, "infer") && (o->p.budget > 0 || o->p.report))
        return cli_usage(cmd, "%s plans a training step; it needs --mode train",
                         o->p.report ? "plan" : "--budget");
    if (o->t.optimizer == IR_OPTIM_SGD && !o->weight_decay_given) o->t.weight_decay = 0; /* torch.optim.SGD */
    if (o->t.optimizer != IR_OPTIM_SGD && (o->t.nesterov || o->t.momentum != 0))
        return cli_usage("compile", "--momentum and --nesterov are sgd's; add --optimizer sgd");
    if (o->t.nesterov && o->t.momentum == 0)
        return cli_usage("compile", "--nesterov needs a momentum (--momentum X with X > 0)");
    if (o->t.use_ignore_index && o->t.loss_kind != IR_LOSS_CE)
        return cli_usage("compile", "--ignore-index applies to --loss ce");
    return CLI_OK;
}

/* `loom compile` and `loom plan` take the same model and training flags;
 * plan stops after the schedule and reports it instead of writing a folder. */
static int compile_or_plan(int argc, char **argv, int report)
{
    Options o;
    memset(&o, 0, sizeof o);
    ir_train_defaults(&o.t);
    o.p.report = report;
    o.p.baseline = -1;
    if (cli_model_init(&o.m, argc, argv, report ? cli_plan_usage : usage, passes,
                       (int)(sizeof passes / sizeof *passes)))
        return CLI_OK;
    int rc = parse_args(argc, argv, &o);
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

int cli_compile(int argc, char **argv) { return compile_or_plan(argc, argv, 0); }

int cli_plan(int argc, char **argv) { return compile_or_plan(argc, argv, 1); }
