/* The optimizer update of the training graph (ir/train.h): one loom.SGD or
 * loom.AdamW node per trained parameter, phase IR_UPDATE, after an optional
 * clipping of all gradients to a global L2 norm (one loom.GlobalNorm over
 * every gradient, then a scale factor min(1, clip / (norm + 1e-6)) that the
 * updates multiply into the gradient, as torch.nn.utils.clip_grad_norm_ does,
 * so no gradient is rewritten). The learning rate and the step number are
 * state values the program sets before each step, so a schedule (constant,
 * cosine with warm-up) changes no node. Each update writes the parameter
 * and its state in place: its outputs are new values whose `alias` names
 * what they overwrite. It also reads the loss, so that a step whose loss is
 * not finite updates nothing. The updates are stored as early as they may
 * run (ir_update_order), so that each gradient dies at its update. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

#define V(id) (&g->values[id])

/* A state value `name` shaped like `like` (or a scalar of dt when like < 0). */
static int state_value(IrGraph *g, const char *name, int like, IrDType dt)
{
    if (ir_value_find(g, name) >= 0)
        return ir_fail(g, -1, "the model already has a value named '%s', the name of an "
                       "optimizer state; rename it", name);
    int v = ir_value_new(g, name, IR_OPT_STATE);
    if (like >= 0) ir_value_set_shape(V(v), V(like)->dtype, V(like)->rank, V(like)->dims);
    else ir_value_set_shape(V(v), dt, 0, NULL);
    return v;
}

/* A node of the update phase with outputs made here. */
static int update_node(IrGraph *g, IrOp op, const char *name, int nin, const int *in, int nout,
                       const char *const *out_names, const int *alias, int *node)
{
    int out[3];
    for (int j = 0; j < nout; j++) {
        if (ir_value_find(g, out_names[j]) >= 0)
            return ir_fail(g, -1, "the model already has a value named '%s', a name loom gives "
                           "the optimizer update; rename it", out_names[j]);
        out[j] = ir_value_new(g, out_names[j], IR_ACTIVATION);
        V(out[j])->alias = alias ? alias[j] : -1;
    }
    *node = ir_node_new(g, op, ir_unique_name(g, name), nin, in, nout, out);
    g->nodes[*node].phase = IR_UPDATE;
    return out[0];
}

/* A float32 scalar constant. */
static int scalar_f32(IrGraph *g, const char *base, float x)
{
    int v = ir_value_new(g, ir_unique_name(g, base), IR_CONST);
    ir_value_set_shape(V(v), IR_F32, 0, NULL);
    float *p = ir_xmalloc(sizeof *p);
    *p = x;
    ir_value_set_data(g, v, p);
    return v;
}

/* The gradient scale of clipping to the global norm `clip`. */
static int clip_scale(IrGraph *g, const int *grads, int n, float clip)
{
    int node;
    int norm = update_node(g, IR_OP_GlobalNorm, "opt/global_norm", n, grads, 1,
                           (const char *[]){"opt/grad_norm"}, NULL, &node);
    if (norm < 0 || ir_infer_node(g, node) < 0) return -1;
    int den = update_node(g, IR_OP_Add, "opt/clip", 2,
                          (int[]){norm, scalar_f32(g, "opt/eps", 1e-6f)}, 1,
                          (const char *[]){ir_unique_name(g, "opt/clip_den")}, NULL, &node);
    if (den < 0 || ir_infer_node(g, node) < 0) return -1;
    int coef = update_node(g, IR_OP_Div, "opt/clip", 2, (int[]){scalar_f32(g, "opt/clip_norm", clip), den},
                           1, (const char *[]){ir_unique_name(g, "opt/clip_coef")}, NULL, &node);
    if (coef < 0 || ir_infer_node(g, node) < 0) return -1;
    int s = update_node(g, IR_OP_Min, "opt/clip", 2, (int[]){coef, scalar_f32(g, "opt/one", 1)}, 1,
                        (const char *[]){"opt/clip_scale"}, NULL, &node);
    if (s < 0 || ir_infer_node(g, node) < 0) return -1;
    return s;
}

int ir_add_update(IrGraph *g, const IrTrainOptions *o)
{
    if (o->optimizer == IR_OPTIM_NONE) return 0;
    if (o->optimizer != IR_OPTIM_SGD && o->optimizer != IR_OPTIM_ADAMW)
        return ir_fail(g, -1, "unknown optimizer %d", (int)o->optimizer);
    int nv = g->nvalues, np = 0;
    int *params = ir_xmalloc((nv ? nv : 1) * sizeof(int));
    int *grads = ir_xmalloc((nv ? nv : 1) * sizeof(int));
    int rc = -1;
    for (int v = 0; v < nv; v++) {
        int gv = g->values[v].role == IR_PARAM ? ir_param_grad(g, v) : -1;
        if (gv < 0) continue;
        params[np] = v;
        grads[np++] = gv;
    }
    int adam = o->optimizer == IR_OPTIM_ADAMW, loss = ir_loss_value(g);
    IR_ASSERT(loss >= 0);
    int lr = state_value(g, "opt/lr", -1, IR_F32);
    if (lr < 0) goto out;
    float *lrv = ir_xmalloc(sizeof *lrv);
    *lrv = o->lr;
    ir_value_set_data(g, lr, lrv);
    int step = adam ? state_value(g, "opt/step", -1, IR_I64) : -1;
    if (adam && step < 0) goto out;
    int scale = -1;
    if (o->clip_norm > 0 && np > 0 && (scale = clip_scale(g, grads, np, o->clip_norm)) < 0) goto out;
    for (int i = 0; i < np; i++) {
        int p = params[i], gv = grads[i], node;
        const char *pn = V(p)->name;
        char names[3][560], sn[2][512];
        snprintf(names[0], sizeof names[0], "next/%s", pn);
        char un[512];
        snprintf(un, sizeof un, "update/%s", pn);
        if (adam) {
            snprintf(sn[0], sizeof sn[0], "m/%s", pn);
            snprintf(sn[1], sizeof sn[1], "v/%s", pn);
            int m = state_value(g, sn[0], p, IR_UNDEF), v = m < 0 ? -1 : state_value(g, sn[1], p, IR_UNDEF);
            if (v < 0) goto out;
            snprintf(names[1], sizeof names[1], "next/%s", sn[0]);
            snprintf(names[2], sizeof names[2], "next/%s", sn[1]);
            int in[8] = {p, gv, m, v, lr, step, loss, scale};
            if (update_node(g, IR_OP_AdamW, un, scale >= 0 ? 8 : 7, in, 3,
                            (const char *[]){names[0], names[1], names[2]}, (int[]){p, m, v},
                            &node) < 0)
                goto out;
            ir_attr_set_float(g, node, "beta1", o->beta1);
            ir_attr_set_float(g, node, "beta2", o->beta2);
            ir_attr_set_float(g, node, "epsilon", o->eps);
            ir_attr_set_float(g, node, "weight_decay", o->weight_decay);
        } else {
            int buf = -1;
            if (o->momentum != 0) {
                snprintf(sn[0], sizeof sn[0], "momentum/%s", pn);
                if ((buf = state_value(g, sn[0], p, IR_UNDEF)) < 0) goto out;
                snprintf(names[1], sizeof names[1], "next/%s", sn[0]);
            }
            int in[6] = {p, gv, lr, loss, buf, scale};
            if (update_node(g, IR_OP_SGD, un, scale >= 0 ? 6 : buf >= 0 ? 5 : 4, in,
                            buf >= 0 ? 2 : 1, (const char *[]){names[0], names[1]},
                            (int[]){p, buf}, &node) < 0)
                goto out;
            ir_attr_set_float(g, node, "momentum", o->momentum);
            ir_attr_set_float(g, node, "weight_decay", o->weight_decay);
            ir_attr_set_int(g, node, "nesterov", o->nesterov != 0);
        }
        if (ir_infer_node(g, node) < 0) goto out;
    }
    ir_place_updates(g);
    rc = 0;
out:
    free(params);
    free(grads);
    return rc;
}

void ir_update_order(const IrGraph *g, const int *nodes, int n, int *perm)
{
    int nv = g->nvalues;
    /* per value: the last position (among the other nodes) that writes it,
     * and the last that reads its storage; -1: none */
    int *wrote = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *wrote);
    int *read = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *read);
    int *store = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *store);
    /* per position of an update node: the position it follows */
    int *after = ir_xmalloc((size_t)(n ? n : 1) * sizeof *after);
    for (int v = 0; v < nv; v++) wrote[v] = read[v] = -1, store[v] = ir_view_root(g, v);
    for (int k = 0; k < n; k++) {
        const IrNode *nd = &g->nodes[nodes[k]];
        after[k] = -2; /* not an update */
        if (nd->phase == IR_UPDATE || nd->dead) continue;
        for (int j = 0; j < nd->nin; j++)
            if (nd->in[j] >= 0) read[store[nd->in[j]]] = k;
        for (int j = 0; j < nd->nout; j++)
            if (nd->out[j] >= 0) wrote[nd->out[j]] = k;
    }
    /* the updates in their given order (an update may read another's output:
     * clipping's scale), each after what it reads and after the last read of
     * what it overwrites; the positions of updates count as their anchors */
    for (int k = 0; k < n; k++) {
        const IrNode *nd = &g->nodes[nodes[k]];
        if (nd->phase != IR_UPDATE || nd->dead) continue;
        int at = -1;
        for (int j = 0; j < nd->nin; j++) {
            int v = nd->in[j];
            if (v >= 0 && wrote[v] > at) at = wrote[v];
        }
        for (int j = 0; j < nd->nout; j++) {
            int a = nd->out[j] >= 0 ? g->values[nd->out[j]].alias : -1;
            if (a >= 0 && read[store[a]] > at) at = read[store[a]];
        }
        after[k] = at;
        for (int j = 0; j < nd->nout; j++)
            if (nd->out[j] >= 0) wrote[nd->out[j]] = at;
        for (int j = 0; j < nd->nin; j++)
            if (nd->in[j] >= 0 && read[store[nd->in[j]]] < at) read[store[nd->in[j]]] = at;
    }
    /* the others in their order, each update right after its anchor (in the
     * given order among those of one anchor): a counting sort by anchor */
    int *first = ir_xcalloc((size_t)n + 2, sizeof *first), *byanchor = ir_xmalloc((size_t)(n ? n : 1) * sizeof *byanchor);
    for (int k = 0; k < n; k++)
        if (after[k] != -2) first[after[k] + 2]++;
    for (int k = 1; k <= n + 1; k++) first[k] += first[k - 1];
    for (int k = 0; k < n; k++)
        if (after[k] != -2) byanchor[first[after[k] + 1]++] = k;
    /* first[a + 1] is now the end of anchor a's run, first[a] its start */
    int m = 0;
    for (int q = 0; q < first[0]; q++) perm[m++] = byanchor[q];
    for (int k = 0; k < n; k++) {
        if (after[k] != -2) continue;
        perm[m++] = k;
        for (int q = first[k]; q < first[k + 1]; q++) perm[m++] = byanchor[q];
    }
    free(first);
    free(byanchor);
    IR_ASSERT(m == n);
    free(wrote);
    free(read);
    free(store);
    free(after);
}

void ir_place_updates(IrGraph *g)
{
    int n = g->nnodes;
    int *nodes = ir_xmalloc((size_t)(n ? n : 1) * sizeof *nodes), *perm = ir_xmalloc((size_t)(n ? n : 1) * sizeof *perm);
    for (int i = 0; i < n; i++) nodes[i] = i;
    ir_update_order(g, nodes, n, perm);
    ir_reorder(g, perm, n);
    free(nodes);
    free(perm);
}
