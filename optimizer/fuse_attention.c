/* Attention fusion: the eager pattern an exporter writes for scaled
 * dot-product attention,
 *
 *   MatMul(Q, KT) -> [Mul or Div by a constant scalar]
 *                 -> [Where(constant bool mask, x, constant fill) or Add(x, constant mask)]
 *                 -> Softmax(last axis) -> MatMul(P, V)
 *
 * with Identity views anywhere between, every intermediate read once and no
 * graph output, becomes one loom.Attention(Q, K, V, [mask]) -> O, LSE
 * (ir/train.h). Its kernels never hold the [.., T, S] scores of the whole
 * problem, and its gradient (one loom.AttentionGrad) reads O and LSE, not
 * the probabilities: on GPT-2 124M at batch 8 each eager layer keeps several
 * 403 MB [8,12,1024,1024] tensors for backward.
 *
 * K [.., S, D] is what the op reads; the exporters give KT [.., D, S]. When
 * KT is a Transpose, the transposes compose: a Transpose that swaps the last
 * two axes disappears (K is its input), another one read only here writes K
 * instead (its perm with the last two entries swapped); else the first
 * MatMul becomes a Transpose of KT. A constant mask that is exactly the
 * causal pattern (key j for query i iff j <= i + S - T, S >= T; hidden
 * places at -1e30 or below, kept ones at 0 for an additive mask) becomes
 * causal = 1 and is dropped; any other constant mask stays an input.
 *
 * The fused op computes the same function within float rounding, not bit
 * for bit: the scale multiplies inside the product (a Div by c becomes a
 * product by 1/c), and the kernels sum in another order. Runs in both modes
 * after folding (compile, plan and profile share the pipeline); `compile
 * --no-fuse-attention` keeps the eager graph. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"

#define V(id) (&g->values[id])

typedef struct {
    int mm1, mm2, sm;      /* the two products and the softmax */
    int dead[16], ndead;   /* scale, mask, softmax and views: removed */
    int q, kt, v, mask;    /* values; mask -1: none */
    int mask_kind;         /* 0 none, 1 additive, 2 boolean (Where) */
    double scale;
    float fill;
} Match;

/* The one node reading v (v no graph output), or -1. */
static int sole_use(const IrGraph *g, const IrUses *u, int v)
{
    if (g->values[v].is_output || u->start[v + 1] - u->start[v] != 1) return -1;
    return u->node[u->start[v]];
}

/* The next node after value *v past Identity views (recorded as dead, *v
 * moved to the last view's output), or -1 when a value on the way is read
 * by more than one node or is a graph output. */
static int next_node(const IrGraph *g, const IrUses *u, int *v, Match *m)
{
    for (;;) {
        int n = sole_use(g, u, *v);
        if (n < 0 || g->nodes[n].op != IR_OP_Identity) return n;
        if (m->ndead == (int)(sizeof m->dead / sizeof *m->dead)) return -1;
        m->dead[m->ndead++] = n;
        *v = g->nodes[n].out[0];
    }
}

static int same_dims(const IrValue *a, const IrValue *b)
{
    return a->rank == b->rank && !memcmp(a->dims, b->dims, a->rank * sizeof *a->dims);
}

/* A constant whose contents loom knows (not a parameter: a float
 * initializer is trainable). */
static int is_const(const IrGraph *g, int v) { return v >= 0 && V(v)->role == IR_CONST && V(v)->data; }

/* A float32 scalar constant's value. */
static int const_scalar(IrGraph *g, int v, double *x)
{
    return is_const(g, v) && V(v)->dtype == IR_F32 && ir_value_numel(V(v)) == 1 &&
           ir_const_scalar(g, v, x) == 0;
}

static int match(IrGraph *g, const IrUses *u, int mm1, Match *m)
{
    memset(m, 0, sizeof *m);
    m->mm1 = mm1, m->mask = -1, m->scale = 1;
    const IrNode *n1 = &g->nodes[mm1];
    m->q = n1->in[0], m->kt = n1->in[1];
    const IrValue *q = V(m->q), *kt = V(m->kt), *s = V(n1->out[0]);
    int r = q->rank;
    if (r < 2 || kt->rank != r || q->dtype != IR_F32 || kt->dtype != IR_F32 ||
        memcmp(q->dims, kt->dims, (r - 2) * sizeof *q->dims))
        return 0;
    int y = n1->out[0], n = next_node(g, u, &y, m);
    if (n < 0) return 0;
    const IrNode *nd = &g->nodes[n];
    if ((nd->op == IR_OP_Mul || nd->op == IR_OP_Div) && same_dims(V(nd->out[0]), s)) {
        int other = nd->in[0] == y ? nd->in[1] : nd->in[0];
        double c;
        if ((nd->op == IR_OP_Div && nd->in[0] != y) || !const_scalar(g, other, &c) || c == 0 || !isfinite(c))
            return 0;
        m->scale = nd->op == IR_OP_Mul ? c : 1 / c;
        m->dead[m->ndead++] = n;
        y = nd->out[0];
        if ((n = next_node(g, u, &y, m)) < 0) return 0;
        nd = &g->nodes[n];
    }
    if (nd->op == IR_OP_Where && same_dims(V(nd->out[0]), s)) {
        double fill;
        if (nd->in[1] != y || !is_const(g, nd->in[0]) || V(nd->in[0])->dtype != IR_BOOL ||
            !const_scalar(g, nd->in[2], &fill))
            return 0;
        m->mask = nd->in[0], m->mask_kind = 2, m->fill = (float)fill;
    } else if (nd->op == IR_OP_Add && same_dims(V(nd->out[0]), s)) {
        int other = nd->in[0] == y ? nd->in[1] : nd->in[0];
        if (!is_const(g, other) || V(other)->dtype != IR_F32) return 0;
        m->mask = other, m->mask_kind = 1;
    }
    if (m->mask_kind) {
        m->dead[m->ndead++] = n;
        y = nd->out[0];
        if ((n = next_node(g, u, &y, m)) < 0) return 0;
        nd = &g->nodes[n];
    }
    /* Softmax over the last axis (before opset 13, over the axes from `axis` on) */
    if (nd->op != IR_OP_Softmax ||
        ir_norm_axis(ir_attr_int(nd, "axis", g->opset < 13 ? 1 : -1), r) != r - 1)
        return 0;
    m->sm = n;
    m->dead[m->ndead++] = n;
    y = nd->out[0];
    if ((n = next_node(g, u, &y, m)) < 0) return 0;
    nd = &g->nodes[n];
    if (nd->op != IR_OP_MatMul || nd->in[0] != y || nd->in[1] == y) return 0;
    m->mm2 = n, m->v = nd->in[1];
    const IrValue *v = V(m->v);
    return v->rank == r && v->dtype == IR_F32 && !memcmp(v->dims, q->dims, (r - 2) * sizeof *q->dims) &&
           v->dims[r - 2] == kt->dims[r - 1];
}

/* Whether the constant mask is the causal pattern of scores [.., T, S]:
 * query t sees key s iff s <= t + S - T (S >= T), the hidden places at -1e30
 * or below (boolean: the fill), the others kept as they are (additive: 0). */
static int causal_mask(const IrGraph *g, const Match *m, int64_t T, int64_t S)
{
    const IrValue *mk = V(m->mask);
    if (S < T || mk->rank < 2 || mk->dims[mk->rank - 2] != T || mk->dims[mk->rank - 1] != S) return 0;
    if (m->mask_kind == 2 && !(m->fill <= -1e30f)) return 0;
    int64_t n = ir_value_numel(mk);
    for (int64_t e = 0; e < n; e++) {
        int64_t t = e / S % T, s = e % S;
        int seen = s <= t + S - T;
        if (m->mask_kind == 2 && ((const unsigned char *)mk->data)[e] != seen) return 0;
        if (m->mask_kind == 1) {
            float x = ((const float *)mk->data)[e];
            if (seen ? x != 0.0f : !(x <= -1e30f)) return 0;
        }
    }
    return 1;
}

/* A name for the fused node: the products' common scope + "Attention"
 * ("/h.0/attn/MatMul", "/h.0/attn/MatMul_1" -> "/h.0/attn/Attention"). */
static const char *fused_name(IrGraph *g, const char *a, const char *b)
{
    size_t k = 0, cut = 0;
    while (a[k] && a[k] == b[k]) {
        if (a[k] == '/') cut = k + 1;
        k++;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%.*sAttention", (int)cut, a);
    return ir_strdup(g, buf);
}

/* K [.., S, D] from KT [.., D, S]: see the file's comment. */
static int key_value(IrGraph *g, const IrUses *u, Match *m)
{
    int r = V(m->kt)->rank, p = V(m->kt)->producer;
    int64_t perm[IR_MAX_RANK];
    if (p >= 0 && g->nodes[p].op == IR_OP_Transpose) {
        int64_t np;
        const int64_t *pa = ir_attr_ints(&g->nodes[p], "perm", &np);
        for (int d = 0; d < r; d++) perm[d] = pa && np == r ? pa[d] : r - 1 - d;
        int64_t t = perm[r - 1];
        perm[r - 1] = perm[r - 2], perm[r - 2] = t;
        int identity = 1;
        for (int d = 0; d < r; d++) identity &= perm[d] == d;
        int only_here = sole_use(g, u, m->kt) == m->mm1;
        if (identity) {
            if (only_here) g->nodes[p].dead = 1;
            g->nodes[m->mm1].dead = 1;
            return g->nodes[p].in[0];
        }
        if (only_here) { /* the Transpose writes K itself */
            ir_attr_set_ints(g, p, "perm", r, perm);
            IrValue *k = V(m->kt);
            t = k->dims[r - 1];
            k->dims[r - 1] = k->dims[r - 2], k->dims[r - 2] = t;
            k->decl_rank = -1;
            g->nodes[m->mm1].dead = 1;
            return m->kt;
        }
    }
    /* the first product becomes K = Transpose(KT) */
    char name[512];
    snprintf(name, sizeof name, "%s/T", V(m->kt)->name);
    int k = ir_value_new(g, ir_value_find(g, name) < 0 ? ir_strdup(g, name) : ir_unique_name(g, name),
                         IR_ACTIVATION);
    IrValue *kv = V(k), *ktv = V(m->kt);
    ir_value_set_shape(kv, ktv->dtype, r, ktv->dims);
    kv->dims[r - 1] = ktv->dims[r - 2], kv->dims[r - 2] = ktv->dims[r - 1];
    kv->producer = m->mm1;
    IrNode *n = &g->nodes[m->mm1];
    n->op = IR_OP_Transpose;
    n->nin = 1, n->in[0] = m->kt;
    n->out[0] = k;
    snprintf(name, sizeof name, "%s/KTranspose", n->name);
    n->name = ir_strdup(g, name);
    for (int d = 0; d < r; d++) perm[d] = d;
    perm[r - 1] = r - 2, perm[r - 2] = r - 1;
    ir_attr_set_ints(g, m->mm1, "perm", r, perm);
    return k;
}

static int rewrite(IrGraph *g, const IrUses *u, Match *m)
{
    const IrValue *q = V(m->q);
    int r = q->rank;
    int64_t T = q->dims[r - 2], S = V(m->v)->dims[r - 2];
    int causal = m->mask_kind && causal_mask(g, m, T, S);
    int k = key_value(g, u, m), kp = V(k)->producer;
    if (kp >= 0 && !g->nodes[kp].dead && g->nodes[kp].op == IR_OP_Transpose && ir_infer_node(g, kp) < 0)
        return -1;
    for (int i = 0; i < m->ndead; i++) g->nodes[m->dead[i]].dead = 1;
    /* the second product becomes the fused node, writing its output O and a new LSE */
    char name[512];
    int o = g->nodes[m->mm2].out[0];
    snprintf(name, sizeof name, "%s/lse", V(o)->name);
    int lse = ir_value_new(g, ir_value_find(g, name) < 0 ? ir_strdup(g, name) : ir_unique_name(g, name),
                           IR_ACTIVATION);
    ir_value_set_shape(V(lse), IR_F32, r - 1, V(m->q)->dims);
    V(lse)->producer = m->mm2;
    int nin = m->mask_kind && !causal ? 4 : 3;
    int *in = ir_alloc(g, 4 * sizeof *in), *out = ir_alloc(g, 2 * sizeof *out);
    in[0] = m->q, in[1] = k, in[2] = m->v, in[3] = nin == 4 ? m->mask : -1;
    out[0] = o, out[1] = lse;
    IrNode *n = &g->nodes[m->mm2];
    n->op = IR_OP_Attention;
    n->name = fused_name(g, g->nodes[m->mm1].name, n->name);
    n->in = in, n->nin = nin;
    n->out = out, n->nout = 2;
    n->nattr = 0;
    ir_attr_set_float(g, m->mm2, "scale", (float)m->scale);
    if (causal) ir_attr_set_int(g, m->mm2, "causal", 1);
    if (nin == 4 && m->mask_kind == 2) ir_attr_set_float(g, m->mm2, "fill", m->fill);
    return ir_infer_node(g, m->mm2);
}

int opt_fuse_attention(IrGraph *g)
{
    int fused = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].dead || g->nodes[i].op != IR_OP_MatMul || g->nodes[i].phase != IR_FORWARD) continue;
        IrUses u = ir_uses_build(g); /* anew: each rewrite changes the uses */
        Match m;
        int rc = match(g, &u, i, &m) ? rewrite(g, &u, &m) : 1;
        ir_uses_free(&u);
        if (rc < 0) return -1;
        fused += rc == 0;
    }
    if (fused) ir_compact(g); /* the scores, probabilities and dropped masks */
    return 0;
}
