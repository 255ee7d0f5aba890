/* Mixed precision (`--precision bf16`): matrix products in bfloat16.
 *
 * Every MatMul and Gemm whose operands are float32 reads bfloat16 copies of
 * them (a Cast node per value, shared by all the products that read it; a
 * constant is converted here instead) and writes a bfloat16 result that a
 * Cast widens back to the float32 value the rest of the graph reads. The
 * kernels accumulate in float32 (tensor cores, or sgemm on the cpu target),
 * so a product's only roundings are its operands' and its result's, as under
 * PyTorch's autocast. Everything else stays float32: normalizations, softmax,
 * the loss, the optimizer state and the master weights, which the casts read
 * anew every step. Gemm's C leaves the product and is added, in float32, to
 * the widened result (so its gradient is a float32 sum too).
 *
 * The pass runs on the forward graph, before autodiff (ir_build_training
 * calls it between the loss and the gradients), so the gradients follow from
 * the Casts' rule: a backward product runs in bf16 on bf16 gradients, and a
 * weight's bf16 gradient is widened into its float32 gradient. What backward
 * saves of a product is its bf16 operands: half the bytes of float32.
 *
 * loom.LinearCrossEntropy (a language model's head fused with its loss)
 * keeps float32 operands: it gets the attribute compute = 16 and its kernels
 * round the operands of its three products to bf16 themselves, accumulating
 * the weight's gradient in float32 across row blocks (codegen/kernels).
 * The fused loom.Attention keeps float32 operands too and gets compute = 16
 * (its gradient copies it): the cuda target's kernels run its products on
 * bf16 tensor cores (lk_attention_bf16), the cpu target's stay float32.
 *
 * After autodiff, ir_autocast_saved stores the widened results that
 * backward reads (llama's SiLU input is a product's result) as their bf16
 * sources: backward reads a Cast of the bf16 value of its own, placed before
 * the first such reader, so the float32 value dies after the forward and
 * backward keeps half the bytes. A widened result plus a parameter or a
 * constant (GPT-2's GELU input: a Gemm's product plus its bias) is computed
 * again the same way in backward, that Add over the backward Cast, so it is
 * the bias and the bf16 product that backward keeps. The same operations on
 * the same operands: the gradients do not change by a bit. */
#include <stdlib.h>
#include <string.h>

#include "grad.h"
#include "ops_impl.h"
#include "train.h"

#define V(id) (&g->values[id])

static int is_product(const IrGraph *g, int n)
{
    const IrNode *nd = &g->nodes[n];
    if (nd->op != IR_OP_MatMul && nd->op != IR_OP_Gemm) return 0;
    for (int j = 0; j < nd->nin; j++)
        if (nd->in[j] >= 0 && V(nd->in[j])->dtype != IR_F32) return 0;
    return V(nd->out[0])->dtype == IR_F32;
}

/* A new value shaped like v with dtype dt, named after v. */
static int value_like(IrGraph *g, int v, IrDType dt, const char *suffix)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", V(v)->name, suffix);
    int w = ir_value_new(g, ir_unique_name(g, name), IR_ACTIVATION);
    ir_value_set_shape(V(w), dt, V(v)->rank, V(v)->dims);
    return w;
}

/* Cast node from `in` to the existing value `out`; its id. */
static int cast_node(IrGraph *g, int in, int out)
{
    char name[512];
    snprintf(name, sizeof name, "Cast_%s", V(out)->name);
    int n = ir_node_new(g, IR_OP_Cast, ir_unique_name(g, name), 1, &in, 1, &out);
    ir_attr_set_int(g, n, "to", V(out)->dtype);
    return n;
}

/* The bf16 copy of v: a Cast node appended to order, or for a constant its
 * contents converted now by the folder (eval.c's rounding, the kernels'). */
static int low_copy(IrGraph *g, int v, int *order, int *count)
{
    int w = value_like(g, v, IR_BF16, "/bf16"), n = cast_node(g, v, w);
    if (V(v)->role != IR_CONST || !V(v)->data) {
        order[(*count)++] = n;
        return w;
    }
    IR_ASSERT(ir_ops[IR_OP_Cast].eval(g, n) == 0);
    V(w)->role = IR_CONST;
    g->nodes[n].dead = 1;
    return w;
}

int ir_autocast(IrGraph *g, IrDType low)
{
    IR_ASSERT(low == IR_BF16);
    int n0 = g->nnodes, nv0 = g->nvalues;
    int *order = ir_xmalloc((size_t)(6 * n0 + 8) * sizeof *order), count = 0;
    int *low_of = ir_xmalloc((size_t)(nv0 + 1) * sizeof *low_of);
    for (int v = 0; v < nv0; v++) low_of[v] = -1;
    for (int i = 0; i < n0; i++) {
        if (g->nodes[i].dead) continue;
        if ((g->nodes[i].op == IR_OP_LinearCrossEntropy || g->nodes[i].op == IR_OP_Attention) &&
            V(g->nodes[i].in[0])->dtype == IR_F32)
            ir_attr_set_int(g, i, "compute", IR_BF16); /* ONNX's number for bfloat16 */
        if (!is_product(g, i)) {
            order[count++] = i;
            continue;
        }
        for (int j = 0; j < 2; j++) {
            int v = g->nodes[i].in[j];
            if (low_of[v] < 0) low_of[v] = low_copy(g, v, order, &count);
            g->nodes[i].in[j] = low_of[v];
        }
        int y = g->nodes[i].out[0], c = ir_in(&g->nodes[i], 2);
        float beta = ir_attr_float(&g->nodes[i], "beta", 1);
        int y16 = value_like(g, y, IR_BF16, "/bf16");
        g->nodes[i].out[0] = y16;
        if (c >= 0) g->nodes[i].in[2] = -1;
        order[count++] = i;
        if (c < 0 || beta == 0) {
            order[count++] = cast_node(g, y16, y);
            continue;
        }
        /* y = widen(A B) + beta C, in float32 */
        int yf = value_like(g, y, IR_F32, "/f32");
        order[count++] = cast_node(g, y16, yf);
        if (beta != 1) {
            int b = ir_value_new(g, ir_unique_name(g, "autocast/beta"), IR_CONST);
            ir_value_set_shape(V(b), IR_F32, 0, NULL);
            float *p = ir_xmalloc(sizeof *p);
            *p = beta;
            ir_value_set_data(g, b, p);
            int cb = value_like(g, c, IR_F32, "/beta");
            order[count++] = ir_node_new(g, IR_OP_Mul, ir_unique_name(g, "Mul_beta"), 2, (int[]){c, b}, 1, &cb);
            c = cb;
        }
        order[count++] = ir_node_new(g, IR_OP_Add, ir_unique_name(g, "Add_bias"), 2, (int[]){yf, c}, 1, &y);
    }
    free(low_of);
    ir_reorder(g, order, count);
    free(order);
    /* the constants a conversion replaced, if nothing else reads them, go */
    ir_compact(g);
    return 0;
}

int ir_autocast_weights(IrGraph *g)
{
    IrUses u = ir_uses_build(g);
    int converted = 0, nv0 = g->nvalues;
    int *read_as = ir_xmalloc((size_t)(nv0 ? nv0 : 1) * sizeof *read_as); /* a Cast's result: the parameter */
    for (int v = 0; v < nv0; v++) read_as[v] = v;
    for (int p = 0; p < nv0; p++) {
        IrValue *pv = V(p);
        if (pv->role != IR_PARAM || pv->dtype != IR_F32 || !pv->data || pv->is_output || u.start[p] == u.start[p + 1])
            continue;
        int only_casts = 1;
        for (int k = u.start[p]; k < u.start[p + 1] && only_casts; k++) {
            const IrNode *n = &g->nodes[u.node[k]];
            only_casts = !n->dead && n->op == IR_OP_Cast && V(n->out[0])->dtype == IR_BF16;
        }
        if (!only_casts) continue;
        /* the first Cast's result, computed by the folder, becomes p's contents */
        int c = u.node[u.start[p]], w = g->nodes[c].out[0];
        IR_ASSERT(ir_ops[IR_OP_Cast].eval(g, c) == 0 && V(w)->data);
        void *data = V(w)->data;
        V(w)->data = NULL;
        ir_value_set_shape(pv, IR_BF16, pv->rank, pv->dims);
        ir_value_set_data(g, p, data);
        /* every Cast's readers read p */
        for (int k = u.start[p]; k < u.start[p + 1]; k++) {
            IrNode *n = &g->nodes[u.node[k]];
            read_as[n->out[0]] = p;
            n->dead = 1;
        }
        converted++;
    }
    ir_uses_free(&u);
    if (converted) {
        for (int i = 0; i < g->nnodes; i++)
            for (int j = 0; j < g->nodes[i].nin; j++)
                if (g->nodes[i].in[j] >= 0) g->nodes[i].in[j] = read_as[g->nodes[i].in[j]];
        ir_compact(g);
    }
    free(read_as);
    return converted;
}

/* The forward Cast that widens a bf16 value into v (float32), or -1. */
static int widening(const IrGraph *g, int v)
{
    int c = v >= 0 ? V(v)->producer : -1;
    if (c < 0 || g->nodes[c].op != IR_OP_Cast || g->nodes[c].phase != IR_FORWARD || V(v)->dtype != IR_F32 ||
        V(g->nodes[c].in[0])->dtype != IR_BF16 || V(v)->is_output)
        return -1;
    return c;
}

static int persistent(const IrGraph *g, int v)
{
    return v < 0 || V(v)->role == IR_PARAM || V(v)->role == IR_CONST;
}

/* Whether backward can compute v (float32) again from bf16 bytes and
 * values still there in backward: v is a widening, or a widened-again
 * value plus a parameter or a constant (a Gemm's bias added to its
 * product's result), or a view (Reshape...) of such a value. */
static int again_ok(const IrGraph *g, int v)
{
    if (widening(g, v) >= 0) return 1;
    int a = v >= 0 ? V(v)->producer : -1;
    if (a < 0 || g->nodes[a].phase != IR_FORWARD || V(v)->dtype != IR_F32 || V(v)->is_output) return 0;
    const IrNode *n = &g->nodes[a];
    if (n->op == IR_OP_Add && n->nin == 2)
        return (again_ok(g, n->in[0]) && persistent(g, n->in[1])) ||
               (again_ok(g, n->in[1]) && persistent(g, n->in[0]));
    if (!(ir_ops[n->op].flags & OPF_VIEW) || n->nout != 1 || !again_ok(g, n->in[0])) return 0;
    for (int j = 1; j < n->nin; j++)
        if (!persistent(g, n->in[j])) return 0;
    return 1;
}

/* Backward's copy of v (again_ok), memoized in again: a widening Cast of
 * its bf16 source, or v's Add or view run again over backward's copies.
 * The same operations on the same operands: the same bits. */
static int again_of(IrGraph *g, int v, int *again, int *order, int *count)
{
    if (again[v] >= 0) return again[v];
    int c = widening(g, v), n, w = value_like(g, v, IR_F32, "/again");
    if (c >= 0) {
        n = cast_node(g, g->nodes[c].in[0], w);
    } else {
        c = V(v)->producer;
        int nin = g->nodes[c].nin, in[8];
        IR_ASSERT(nin <= 8); /* an Add or a view */
        for (int j = 0; j < nin; j++) {
            int u = g->nodes[c].in[j];
            in[j] = u >= 0 && !persistent(g, u) ? again_of(g, u, again, order, count) : u;
        }
        char name[512];
        snprintf(name, sizeof name, "%s/again", g->nodes[c].name);
        n = ir_node_new(g, g->nodes[c].op, ir_unique_name(g, name), nin, in, 1, &w);
        grad_copy_attrs(g, n, c);
    }
    g->nodes[n].phase = IR_BACKWARD;
    g->nodes[n].fwd = c;
    order[(*count)++] = n;
    return again[v] = w;
}

int ir_autocast_saved(IrGraph *g)
{
    int n0 = g->nnodes, nv0 = g->nvalues, count = 0, changed = 0;
    int *order = ir_xmalloc((size_t)(3 * n0 + 1) * sizeof *order);
    int *again = ir_xmalloc((size_t)(nv0 + 1) * sizeof *again); /* backward's copy of a value, or -1 */
    for (int v = 0; v < nv0; v++) again[v] = -1;
    for (int i = 0; i < n0; i++) {
        if (g->nodes[i].dead) continue;
        if (g->nodes[i].phase == IR_BACKWARD)
            for (int j = 0; j < g->nodes[i].nin; j++) {
                int v = g->nodes[i].in[j];
                if (!again_ok(g, v)) continue;
                g->nodes[i].in[j] = again_of(g, v, again, order, &count);
                changed++;
            }
        order[count++] = i;
    }
    if (changed) ir_reorder(g, order, count);
    free(order);
    free(again);
    return 0;
}

/* Whether a reader of v, looking through views, is an elementwise op (which
 * codegen fuses with the widening Cast: there the Cast costs nothing). */
static int read_elementwise(const IrGraph *g, const IrUses *u, int v, int depth)
{
    for (int k = u->start[v]; k < u->start[v + 1]; k++) {
        const IrNode *n = &g->nodes[u->node[k]];
        if (n->dead) continue;
        unsigned f = ir_ops[n->op].flags;
        if ((f & (OPF_ELEMWISE | OPF_BROADCAST)) || n->op == IR_OP_ActivationGrad) return 1;
        if ((f & OPF_VIEW) && n->in[0] == v && depth < 8 && read_elementwise(g, u, n->out[0], depth + 1)) return 1;
    }
    return 0;
}

/* The Cast to `to` that alone reads node i's output y, directly or through
 * views each of which only the next reads (a gradient's Reshape back to its
 * input's shape, a product's operand reshaped), or -1; and not one whose
 * result an elementwise op reads when `fusable_ok` is 0. */
static int sole_cast(const IrGraph *g, const IrUses *u, int y, IrDType to, int fusable_ok, int *chain, int *nchain)
{
    *nchain = 0;
    if (V(y)->is_output || u->start[y + 1] - u->start[y] != 1) return -1;
    int c = u->node[u->start[y]], last = y;
    while ((ir_ops[g->nodes[c].op].flags & OPF_VIEW) && g->nodes[c].in[0] == last && g->nodes[c].nout == 1) {
        last = g->nodes[c].out[0];
        if (*nchain == 8 || V(last)->is_output || u->start[last + 1] - u->start[last] != 1) return -1;
        chain[(*nchain)++] = c, c = u->node[u->start[last]];
    }
    int z = g->nodes[c].out[0];
    if (g->nodes[c].dead || g->nodes[c].op != IR_OP_Cast || V(z)->dtype != to) return -1;
    return fusable_ok || !read_elementwise(g, u, z, 0) ? c : -1;
}

/* Node i writes the Cast c's result z itself, in its type (out_dtype): i's
 * output and the views between take z's type, the last view (or i) writes
 * z, and the Cast goes. */
static void absorb_cast(IrGraph *g, int i, int c, const int *chain, int nchain)
{
    int y = g->nodes[i].out[0], z = g->nodes[c].out[0];
    IrDType t = V(z)->dtype;
    ir_attr_set_int(g, i, "out_dtype", t);
    if (!nchain) {
        g->nodes[i].out[0] = z;
        V(z)->producer = i;
    } else {
        ir_value_set_shape(V(y), t, V(y)->rank, V(y)->dims);
        for (int k = 0; k + 1 < nchain; k++) {
            IrValue *m = V(g->nodes[chain[k]].out[0]);
            ir_value_set_shape(m, t, m->rank, m->dims);
        }
        g->nodes[chain[nchain - 1]].out[0] = z;
        V(z)->producer = chain[nchain - 1];
    }
    g->nodes[c].dead = 1;
}

/* Every node `candidate` accepts whose output alone a Cast to `to` reads
 * (sole_cast) absorbs that Cast; how many. */
static int absorb_casts(IrGraph *g, int (*candidate)(const IrGraph *, const IrNode *), IrDType to, int fusable_ok)
{
    IrUses u = ir_uses_build(g);
    int n = 0, chain[8], nchain;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].dead || !candidate(g, &g->nodes[i])) continue;
        int c = sole_cast(g, &u, g->nodes[i].out[0], to, fusable_ok, chain, &nchain);
        if (c < 0) continue;
        absorb_cast(g, i, c, chain, nchain);
        n++;
    }
    ir_uses_free(&u);
    if (n) ir_compact(g);
    return n;
}

/* a backward bf16 product without C */
static int bf16_backward_product(const IrGraph *g, const IrNode *p)
{
    return p->phase == IR_BACKWARD && (p->op == IR_OP_MatMul || p->op == IR_OP_Gemm) && ir_in(p, 2) < 0 &&
           V(p->in[0])->dtype == IR_BF16 && V(p->out[0])->dtype == IR_BF16;
}

/* a float32 layer or RMS norm */
static int f32_norm(const IrGraph *g, const IrNode *p)
{
    return (p->op == IR_OP_LayerNormalization || p->op == IR_OP_RMSNorm) && V(p->out[0])->dtype == IR_F32;
}

int ir_autocast_wide_results(IrGraph *g) { return absorb_casts(g, bf16_backward_product, IR_F32, 0); }

int ir_autocast_narrow_norms(IrGraph *g) { return absorb_casts(g, f32_norm, IR_BF16, 1); }
