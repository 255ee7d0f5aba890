/* A training program (`DIR/train`): model.c with one training step as one
 * straight-line function, and main.c, the tables that describe the model
 * to the runtime's training driver (runtime/rt_train.h).
 *
 * model_step runs the nodes of the training graph (ir/train.h) in their
 * stored order, one step per node or fused group as for inference: forward
 * and loss, backward (with the recomputations a budget adds), and each
 * parameter's update (clipping first, when asked) where the schedule put
 * it: right after backward's last use of the parameter and of its gradient
 * (ir_update_order), so a gradient's bytes are free from there. The update
 * writes the parameter and its state in place in the weights blob, and
 * nothing when the loss is not finite. After every step that writes float32
 * values the driver's probe may look at them (only when a loss came out
 * non-finite, to name the first bad tensor); just before each update its
 * `grad` hook may read the gradient (--dump-grads). */
#include <stdlib.h>
#include <string.h>

#include "cg_impl.h"
#include "train.h"

/* Declares, once each, the values the steps read but do not write: graph
 * inputs and weights-blob values. */
static void declare_reads(CgCtx *c, unsigned char *declared)
{
    const IrGraph *g = c->g;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j];
            if (v < 0 || declared[v] || c->plan->values[v].pool == OPT_POOL_NONE || g->values[v].producer >= 0)
                continue;
            declared[v] = 1;
            cg_declare_value(c, v, "");
        }
    }
}

/* Whether value v is a float32 buffer a step writes (probed on a non-finite loss). */
static int checkable(const CgCtx *c, int v)
{
    const OptSlice *s = &c->plan->values[v];
    return s->pool == OPT_POOL_ARENA && s->alias < 0 && c->g->values[v].dtype == IR_F32;
}

static int step_checkable(const CgCtx *c, int node)
{
    const IrNode *n = &c->g->nodes[node];
    if (n->phase == IR_OFFLOAD) return 0; /* a copy back may still be on its way */
    for (int j = 0; j < n->nout; j++)
        if (n->out[j] >= 0 && checkable(c, n->out[j])) return 1;
    return 0;
}

/* Per value: a trained parameter's index in main.c's params table, or -1. */
static int *param_index(const IrGraph *g)
{
    int *idx = ir_xmalloc((size_t)(g->nvalues ? g->nvalues : 1) * sizeof *idx);
    for (int v = 0, k = 0; v < g->nvalues; v++)
        idx[v] = g->values[v].role == IR_PARAM && ir_param_grad(g, v) >= 0 ? k++ : -1;
    return idx;
}

int cg_copy_index(const IrGraph *g, int h)
{
    int k = 0;
    for (int i = 0; i < h; i++) k += g->nodes[i].op == g->nodes[h].op;
    return k;
}

int cg_copy_writer_step(const CgCtx *c, int h)
{
    const IrGraph *g = c->g;
    int v = g->nodes[h].in[0], p = g->values[v].producer;
    while (p >= 0 && (ir_ops[g->nodes[p].op].flags & OPF_VIEW) && g->nodes[p].in[0] >= 0)
        v = g->nodes[p].in[0], p = g->values[v].producer;
    return p >= 0 ? c->sel->run_at[p] : -1;
}

/* Before step i on a target with copy streams: the waits for the copies
 * back that a node of the step reads first (waited marks them). */
static void copy_waits(CgCtx *c, const CgTarget *t, int i, unsigned char *waited)
{
    const IrGraph *g = c->g;
    for (int k = 0; k <= i; k++) {
        if (c->sel->run_at[k] != i) continue;
        const IrNode *n = &g->nodes[k];
        for (int j = 0; j < n->nin; j++) {
            int p = n->in[j] >= 0 ? g->values[n->in[j]].producer : -1;
            if (p < 0 || g->nodes[p].op != IR_OP_FromHost || waited[p]) continue;
            waited[p] = 1;
            t->copy_wait(c, p);
        }
    }
}

void cg_train_write_model(CgCtx *c, const CgTarget *t)
{
    IrGraph *g = c->g;
    FILE *f = c->f;
    unsigned char *declared = ir_xcalloc((size_t)(g->nvalues ? g->nvalues : 1), 1);
    unsigned char *waited = ir_xcalloc((size_t)(g->nnodes ? g->nnodes : 1), 1);
    int *pidx = param_index(g);
    cg_model_prelude(c, t, "One training step");
    fprintf(f, "char *model_host; /* the host pool (MODEL_HOST_BYTES), set by the driver */\n\n");
    fprintf(f, "int model_step(char *arena, char *weights, int (*probe)(int step), int (*grad)(int param))\n{\n");
    fprintf(f, "    (void)arena;\n    (void)weights;\n    (void)probe;\n    (void)grad;\n");
    fprintf(f, "    // inputs, parameters, constants, optimizer state\n");
    declare_reads(c, declared);
    fprintf(f, "    PROF_START();\n");
    int step = 0, phase = -1;
    /* offload on a target with copy streams: each loom.ToHost's copy starts
     * after its input's writer step (to_at; graph inputs' first), and the
     * steps reading a loom.FromHost's output wait for it (copy_waits) */
    int nto = 0, nfrom = 0, *to = ir_xmalloc((size_t)(g->nnodes ? g->nnodes : 1) * sizeof *to);
    int *to_at = ir_xmalloc((size_t)(g->nnodes ? g->nnodes : 1) * sizeof *to_at);
    for (int h = 0; t->copy_out && h < g->nnodes; h++) {
        nfrom += g->nodes[h].op == IR_OP_FromHost;
        if (g->nodes[h].op != IR_OP_ToHost) continue;
        to[nto] = h, to_at[nto] = cg_copy_writer_step(c, h);
        if (to_at[nto] < 0) t->copy_out(c, h);
        nto++;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (c->sel->run_at[i] != i) continue;
        if (n->phase != IR_UPDATE && n->phase != IR_OFFLOAD && n->phase != IR_LOWBIT && (int)n->phase != phase) {
            phase = (int)n->phase;
            fprintf(f, "\n    // ---- %s ----\n", phase == IR_FORWARD ? "forward and loss"
                       : phase == IR_RECOMPUTE ? "recompute (remat: the schedule runs these forward nodes again)"
                       : "backward, each parameter updated once backward is done with it");
        }
        int p = n->phase == IR_UPDATE && n->nout > 0 && n->out[0] >= 0 && g->values[n->out[0]].alias >= 0
                    ? pidx[g->values[n->out[0]].alias] : -1;
        if (p >= 0) fprintf(f, "    if (grad && grad(%d)) return 1; // the gradient before the update (--dump-grads)\n", p);
        if (nfrom && t->copy_wait) copy_waits(c, t, i, waited);
        cg_emit_step(c, t, i, step++);
        for (int k = 0; k < nto; k++)
            if (to_at[k] == i) t->copy_out(c, to[k]);
        if (n->phase != IR_UPDATE && step_checkable(c, i)) fprintf(f, "    if (probe && probe(%d)) return 1;\n", i);
    }
    fprintf(f, "    return 0;\n}\n");
    free(pidx);
    free(declared);
    free(waited);
    free(to);
    free(to_at);
}

/* ---- main.c ---- */

/* FNV-1a over the names, dtypes and shapes of the inputs and the state: what
 * a checkpoint must agree on to be resumed. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_value(uint64_t h, const IrValue *v)
{
    int dt = (int)v->dtype;
    h = fnv(h, v->name, strlen(v->name) + 1);
    h = fnv(h, &dt, sizeof dt);
    h = fnv(h, &v->rank, sizeof v->rank);
    return fnv(h, v->dims, (size_t)v->rank * sizeof *v->dims);
}

/* Parameters (every one, trained or not) and optimizer state: a checkpoint. */
static int is_state(const CgCtx *c, int v)
{
    IrRole r = c->g->values[v].role;
    return c->plan->values[v].pool == OPT_POOL_WEIGHTS && c->plan->values[v].alias < 0 &&
           (r == IR_PARAM || r == IR_OPT_STATE);
}

static void row(CgCtx *c, FILE *f, int v) { cg_tensor_fields(c, f, v), fprintf(f, "},\n"); }

void cg_train_write_main(CgCtx *c, FILE *f)
{
    IrGraph *g = c->g;
    const CgTrain *tr = c->train;
    uint64_t h = 0xcbf29ce484222325ull;
    int nstate = 0, nparams = 0, nchecks = 0, nweights = 0;
    fprintf(f, "/* train: trains the model on .npy data (runtime/rt_train.c is the driver).\n"
               " * Generated by loom; `train --help` lists the data inputs. */\n"
               "#include <stdint.h>\n\n#include \"model.h\"\n#include \"rt.h\"\n#include \"rt_train.h\"\n%s\n",
            strcmp(c->t->device, "rt_device_host") ? "#include \"rt_cuda.h\"\n" : "");
    fprintf(f, "/* data inputs, each [batch, ...] in the arena */\nstatic const rt_train_tensor inputs[] = {\n");
    for (int i = 0; i < g->ninputs; i++) {
        row(c, f, g->inputs[i]);
        h = hash_value(h, VAL(c, g->inputs[i]));
    }
    fprintf(f, "    {0},\n};\n\n/* read from weights.safetensors */\nstatic const rt_train_tensor weights[] = {\n");
    for (int v = 0; v < g->nvalues; v++)
        if (cg_is_weight(c, v)) row(c, f, v), nweights++;
    fprintf(f, "    {0},\n};\n\n/* a checkpoint: every parameter, the optimizer state */\n"
               "static const rt_train_tensor state[] = {\n");
    for (int pass = 0; pass < 2; pass++)
        for (int v = 0; v < g->nvalues; v++)
            if (is_state(c, v) && (g->values[v].role == IR_OPT_STATE) == pass) {
                row(c, f, v);
                h = hash_value(h, VAL(c, v));
                nstate++;
            }
    fprintf(f, "    {0},\n};\n\n/* trained parameters and their gradients */\nstatic const rt_train_tensor params[] = {\n");
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].role == IR_PARAM && ir_param_grad(g, v) >= 0) row(c, f, v), nparams++;
    fprintf(f, "    {0},\n};\n\nstatic const int64_t grad_offset[] = {\n");
    for (int v = 0; v < g->nvalues; v++) {
        int gv = g->values[v].role == IR_PARAM ? ir_param_grad(g, v) : -1;
        if (gv < 0) continue;
        IR_ASSERT(c->plan->values[gv].pool == OPT_POOL_ARENA);
        fprintf(f, "    OFF_%s,\n", c->var[gv]);
    }
    fprintf(f, "    0,\n};\n\n/* float32 values of forward and backward, by step: probed on a non-finite loss */\n"
               "static const rt_train_check checks[] = {\n");
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (c->sel->run_at[i] != i || n->phase == IR_UPDATE || !step_checkable(c, i)) continue;
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0 || !checkable(c, v)) continue;
            const IrValue *val = VAL(c, v);
            fprintf(f, "    {");
            cg_cstr(f, val->name);
            fputs(", ", f);
            cg_cstr(f, n->name);
            fprintf(f, ", \"%s\", %d, %d, {", ir_ops[n->op].name, i, val->rank);
            for (int d = 0; d < val->rank; d++) fprintf(f, d ? ", %lld" : "%lld", (long long)val->dims[d]);
            fprintf(f, "%s}, OFF_%s},\n", val->rank ? "" : "0", c->var[v]);
            nchecks++;
        }
    }
    int lr = ir_value_find(g, "opt/lr"), st = ir_value_find(g, "opt/step"), loss = ir_loss_value(g);
    IR_ASSERT(lr >= 0 && loss >= 0 && g->ninputs > 0);
    fprintf(f, "    {0},\n};\n\nstatic const rt_train_model model = {\n    .model = ");
    cg_cstr(f, g->path);
    fprintf(f, ",\n    .fingerprint = \"%016llx\",\n    .loss = ", (unsigned long long)h);
    cg_cstr(f, tr->loss);
    fprintf(f, ",\n    .optimizer = ");
    cg_cstr(f, tr->optimizer);
    fprintf(f, ",\n    .arena_bytes = MODEL_ARENA_BYTES,\n    .weights_bytes = MODEL_WEIGHTS_BYTES,\n"
               "    .host_bytes = MODEL_HOST_BYTES,\n    .host = &model_host,\n"
               "    .batch = %lld,\n", (long long)g->values[g->inputs[0]].dims[0]);
    fprintf(f, "    .inputs = inputs,\n    .ninputs = %d,\n    .weights = weights,\n    .nweights = %d,\n"
               "    .state = state,\n    .nstate = %d,\n    .params = params,\n    .grad_offset = grad_offset,\n"
               "    .nparams = %d,\n    .checks = checks,\n    .nchecks = %d,\n",
            g->ninputs, nweights, nstate, nparams, nchecks);
    fprintf(f, "    .loss_offset = OFF_%s,\n    .lr_offset = WOFF_%s,\n", c->var[loss], c->var[lr]);
    if (st >= 0) fprintf(f, "    .step_offset = WOFF_%s,\n", c->var[st]);
    else fprintf(f, "    .step_offset = -1,\n");
    fprintf(f, "    .lr = %s,\n    .schedule = %d,\n    .warmup = %lld,\n", CG_FLT(tr->lr), tr->schedule,
            (long long)tr->warmup);
    fprintf(f, "    .step = model_step,\n"
               "    .device = &%s,\n};\n\n", c->t->device);
    fprintf(f, "int main(int argc, char **argv) { return rt_train_main(&model, argc, argv); }\n");
}
