/* The cost model (optimizer.h, "cost model"): seconds per node, from the
 * roofline over a hardware profile or from the times `loom profile` measured.
 *
 * A measured file (costs.json) names each node with its op, FLOPs and bytes
 * (the bytes counted without fusion, so that a file measured on one fusion
 * still describes the same nodes): a node matches an entry when all four
 * agree, and a file whose entries disagree is for another model or other
 * shapes, refused rather than half-used. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "optimizer.h"

/* Whether value v lives in registers inside a fused loop (its producer runs
 * in another node's step, and is not a low-bit narrowing that joined the
 * loop to store its copy: opt_narrow_joins). */
static int in_registers(const IrGraph *g, int v, const int *run_at)
{
    int p = g->values[v].producer;
    return run_at && p >= 0 && run_at[p] != p && g->nodes[p].phase != IR_LOWBIT;
}

double opt_node_bytes(const IrGraph *g, int id, const int *run_at)
{
    const IrNode *n = &g->nodes[id];
    if (ir_ops[n->op].flags & OPF_VIEW) return 0;
    double out = 0, in = 0;
    for (int j = 0; j < n->nout; j++)
        if (n->out[j] >= 0 && !in_registers(g, n->out[j], run_at)) out += (double)ir_value_bytes(&g->values[n->out[j]]);
    double first_out = n->nout > 0 && n->out[0] >= 0 ? (double)ir_value_bytes(&g->values[n->out[0]]) : 0;
    /* a low-bit narrowing in a loop stores its copy of what the loop loads */
    if (run_at && run_at[id] != id && n->phase == IR_LOWBIT) return out;
    for (int j = 0; j < n->nin; j++) {
        int v = n->in[j], seen = 0;
        for (int k = 0; k < j; k++) seen |= n->in[k] == v;
        if (v < 0 || seen || in_registers(g, v, run_at)) continue;
        double b = (double)ir_value_bytes(&g->values[v]);
        /* these read only the elements they write */
        if (j == 0 && (n->op == IR_OP_Gather || n->op == IR_OP_GatherElements || n->op == IR_OP_Slice))
            b = fmin(b, first_out);
        in += b;
    }
    return in + out;
}

static int is_matrix_op(IrOp op)
{
    return op == IR_OP_MatMul || op == IR_OP_Gemm || op == IR_OP_Einsum || op == IR_OP_Conv ||
           op == IR_OP_ConvTranspose || op == IR_OP_ConvGradWeight || op == IR_OP_LinearCrossEntropy;
}

static double peak(const IrGraph *g, const IrNode *n, const OptDevice *d)
{
    if (!is_matrix_op(n->op)) return d->vec_flops_f32;
    int v = ir_in(n, 0);
    switch (v >= 0 ? g->values[v].dtype : IR_F32) {
    case IR_BF16: return d->flops_bf16;
    case IR_F16: return d->flops_f16;
    case IR_F64: return d->flops_f64;
    case IR_I8:
    case IR_U8: return d->flops_i8;
    default: return d->flops_f32;
    }
}

static double roofline(const IrGraph *g, int id, const OptDevice *d, const int *run_at)
{
    const IrNode *n = &g->nodes[id];
    if (n->dead || (ir_ops[n->op].flags & OPF_VIEW)) return 0;
    if (n->op == IR_OP_ToHost || n->op == IR_OP_FromHost) /* the link's time, or a copy engine's */
        return d->launch_s + (d->copy_overlap ? 0 : (double)ir_value_bytes(&g->values[n->out[0]]) / d->link_bw);
    /* an element written costs an instruction even where no FLOP is counted (a
     * Cast, a copy): what keeps a conversion inside a fused loop from costing 0 */
    double elems = 0;
    for (int j = 0; j < n->nout; j++)
        if (n->out[j] >= 0) elems += (double)ir_value_numel(&g->values[n->out[j]]);
    double work = fmax(ir_node_flops(g, id), elems), bytes = opt_node_bytes(g, id, run_at);
    if (work == 0 && bytes == 0) return 0;
    double t = fmax(work / peak(g, n, d), bytes / d->mem_bw);
    return t + (!run_at || run_at[id] == id ? d->launch_s : 0);
}

static void costs_init(const IrGraph *g, OptCosts *c)
{
    c->nnodes = g->nnodes;
    c->seconds = ir_xcalloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *c->seconds);
    c->source[0] = 0;
}

int opt_costs_analytic(const IrGraph *g, const OptDevice *d, const int *run_at, OptCosts *c)
{
    costs_init(g, c);
    for (int i = 0; i < g->nnodes; i++) c->seconds[i] = roofline(g, i, d, run_at);
    snprintf(c->source, sizeof c->source, "analytic roofline, %s", d->name);
    return 0;
}

void opt_costs_free(OptCosts *c)
{
    free(c->seconds);
    c->seconds = NULL;
    c->nnodes = 0;
}

/* ---- measured costs ---- */

/* A node run again by remat: it has its forward node's name (and fwd). */
static int is_recompute(const IrGraph *g, int i)
{
    const IrNode *n = &g->nodes[i];
    return n->phase != IR_FORWARD && n->fwd >= 0 && !strcmp(n->name, g->nodes[n->fwd].name);
}

typedef struct {
    const char *name, *op;
    double seconds, flops, bytes;
    int line, order; /* order: position in the file */
} Entry;

static int entry_cmp(const void *pa, const void *pb)
{
    const Entry *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    return c ? c : a->order - b->order;
}

static const IrGraph *sort_graph; /* qsort has no context argument */

static int node_cmp(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb;
    int c = strcmp(sort_graph->nodes[a].name, sort_graph->nodes[b].name);
    return c ? c : a - b;
}

/* Whether two counts differ by more than rounding in a JSON round trip. */
static int differ(double a, double b) { return fabs(a - b) > 1e-9 * fmax(fabs(a), fabs(b)); }

static const char *str_member(const OptJson *o, const char *key)
{
    const OptJson *m = opt_json_get(o, key);
    return m && m->kind == OPT_JSON_STR ? m->str : NULL;
}

static int num_member(const OptJson *o, const char *key, double *out)
{
    const OptJson *m = opt_json_get(o, key);
    if (!m || m->kind != OPT_JSON_NUM || !isfinite(m->num) || m->num < 0) return -1;
    *out = m->num;
    return 0;
}

/* The entries of a costs file's "nodes"; -1 with g->err. */
static int read_entries(IrGraph *g, const char *path, const OptJson *j, const OptDevice *d, Entry **out, int *count)
{
    const char *device = str_member(j, "device"), *mode = str_member(j, "mode");
    const OptJson *nodes = opt_json_get(j, "nodes");
    int train = 0;
    for (int i = 0; i < g->nnodes; i++) train |= g->nodes[i].phase == IR_BACKWARD || g->nodes[i].phase == IR_UPDATE;
    if (j->kind != OPT_JSON_OBJ || !device || !mode || !nodes || nodes->kind != OPT_JSON_ARR)
        return ir_fail(g, -1, "%s: not a costs file: want an object with \"device\", \"mode\" and \"nodes\" "
                       "(what loom profile writes)", path);
    if (strcmp(device, d->name))
        return ir_fail(g, -1, "%s: measured on device '%s', but the costs are wanted for '%s'", path, device,
                       d->name);
    if (strcmp(mode, train ? "train" : "infer"))
        return ir_fail(g, -1, "%s: measured with --mode %s, but this is %s graph; run loom profile --mode %s", path,
                       mode, train ? "a training" : "an inference", train ? "train" : "infer");
    Entry *e = ir_xcalloc((size_t)(nodes->n ? nodes->n : 1), sizeof *e);
    int n = 0;
    for (const OptJson *m = nodes->child; m; m = m->next, n++) {
        e[n].name = str_member(m, "name");
        e[n].op = str_member(m, "op");
        e[n].line = m->line;
        e[n].order = n;
        if (!e[n].name || !e[n].op || num_member(m, "seconds", &e[n].seconds) ||
            num_member(m, "flops", &e[n].flops) || num_member(m, "bytes", &e[n].bytes)) {
            free(e);
            return ir_fail(g, -1, "%s: line %d: a node needs \"name\" and \"op\" (strings) and \"seconds\", "
                           "\"flops\" and \"bytes\" (numbers >= 0)", path, m->line);
        }
    }
    *out = e;
    *count = n;
    return 0;
}

/* Match the nodes (recomputations aside) to the entries: match[node] = the
 * entry, or -1. Returns how many nodes are matched; -1 with g->err when a
 * matched pair disagrees. */
static int match_entries(IrGraph *g, const char *path, Entry *e, int ne, int *match)
{
    int *ids = ir_xmalloc((size_t)(g->nnodes ? g->nnodes : 1) * sizeof *ids), nn = 0, matched = 0;
    for (int i = 0; i < g->nnodes; i++) {
        match[i] = -1;
        if (!g->nodes[i].dead && !is_recompute(g, i)) ids[nn++] = i;
    }
    sort_graph = g;
    qsort(ids, (size_t)nn, sizeof *ids, node_cmp);
    qsort(e, (size_t)ne, sizeof *e, entry_cmp);
    int rc = 0;
    for (int a = 0, b = 0; a < nn && b < ne && rc == 0;) {
        int id = ids[a];
        const IrNode *n = &g->nodes[id];
        int c = strcmp(n->name, e[b].name);
        if (c < 0) {
            a++;
        } else if (c > 0) {
            b++;
        } else {
            char what[32] = "";
            double flops = ir_node_flops(g, id), bytes = opt_node_bytes(g, id, NULL);
            if (strcmp(ir_ops[n->op].name, e[b].op))
                rc = ir_fail(g, id, "%s: line %d: measured as a %s node, but here it is a %s: the file is for "
                             "another model; run loom profile again", path, e[b].line, e[b].op, ir_ops[n->op].name);
            else if (differ(flops, e[b].flops) || differ(bytes, e[b].bytes))
                snprintf(what, sizeof what, "%s", differ(flops, e[b].flops) ? "FLOPs" : "bytes");
            if (what[0])
                rc = ir_fail(g, id, "%s: line %d: measured with other shapes (%s %.17g there, %.17g here); run "
                             "loom profile again with the same --dim bindings", path, e[b].line, what,
                             what[0] == 'F' ? e[b].flops : e[b].bytes, what[0] == 'F' ? flops : bytes);
            match[id] = b;
            matched++;
            a++;
            b++;
        }
    }
    free(ids);
    return rc ? -1 : matched;
}

int opt_costs_load(IrGraph *g, const char *costs_json, const OptDevice *d, const int *run_at, OptCosts *c)
{
    char err[sizeof g->err];
    OptJson *j = opt_json_read_file(costs_json, err, sizeof err);
    if (!j) return ir_fail(g, -1, "%s", err);
    Entry *e = NULL;
    int ne = 0, *match = ir_xmalloc((size_t)(g->nnodes ? g->nnodes : 1) * sizeof *match);
    int matched = read_entries(g, costs_json, j, d, &e, &ne) ? -1 : match_entries(g, costs_json, e, ne, match);
    int nodes = 0, first_missing = -1;
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead && !is_recompute(g, i)) {
            nodes++;
            if (first_missing < 0 && match[i] < 0) first_missing = i;
        }
    int missing = nodes - matched;
    if (matched >= 0 && (2 * missing > nodes || 2 * (ne - matched) > ne)) {
        ir_fail(g, -1, "%s: %d of the %d nodes are not in the file and %d of its %d entries name no node here "
                "(first missing: '%s'): it was measured for another model; run loom profile again", costs_json,
                missing, nodes, ne - matched, ne, first_missing >= 0 ? g->nodes[first_missing].name : "none");
        matched = -1;
    }
    if (matched >= 0) {
        costs_init(g, c);
        double measured = 0, analytic = 0;
        for (int i = 0; i < g->nnodes; i++)
            if (match[i] >= 0) {
                c->seconds[i] = e[match[i]].seconds;
                double a = roofline(g, i, d, run_at);
                if (a > 0) measured += c->seconds[i], analytic += a;
            }
        double ratio = analytic > 0 && measured > 0 ? measured / analytic : 1;
        for (int i = 0; i < g->nnodes; i++)
            if (match[i] < 0 && !g->nodes[i].dead && !is_recompute(g, i)) c->seconds[i] = ratio * roofline(g, i, d, run_at);
        for (int i = 0; i < g->nnodes; i++)
            if (!g->nodes[i].dead && is_recompute(g, i)) c->seconds[i] = c->seconds[g->nodes[i].fwd];
        char est[64] = "", unused[48] = "";
        if (missing) snprintf(est, sizeof est, "; %d estimated: analytic x %.3g", missing, ratio);
        if (ne > matched) snprintf(unused, sizeof unused, "; file entries unused: %d", ne - matched);
        snprintf(c->source, sizeof c->source, "measured, %s (%d of %d nodes%s%s)", costs_json, matched, nodes, est,
                 unused);
    }
    free(match);
    free(e);
    opt_json_free(j);
    return matched >= 0 ? 0 : -1;
}
