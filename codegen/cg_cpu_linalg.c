/* cpu emitters of the ops with the most arithmetic: MatMul (numpy batch
 * broadcasting resolved here into static per-batch offset arrays), Gemm,
 * Einsum (lowered to k_copy_nd transposes around one batched k_matmul),
 * Conv and ConvTranspose, pooling, Resize and DFT. Kernel parameters that
 * are structs are emitted as static const initializers. The convolution
 * workspace sizes come from the kernels themselves (k_conv_f32_ws), which
 * loom links for that purpose, so the planner and the kernel never disagree. */
#include <stdlib.h>
#include <string.h>

#include "cg_impl.h"
#include "kernels/cpu/kernels.h"
#include "ops_impl.h"
#include "train.h"

static int64_t align64(int64_t n) { return (n + 63) / 64 * 64; }

static void i64_list(FILE *f, const int64_t *v, int n)
{
    fputc('{', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ", %lld" : "%lld", (long long)v[i]);
    fputc('}', f);
}

/* ---- MatMul ---- */

const char *cg_cpu_matmul_check(IrGraph *g, int node, char *why, size_t n)
{
    IrDType t = g->values[g->nodes[node].in[0]].dtype;
    if (t == IR_F32 || t == IR_F64 || t == IR_BF16 || t == IR_I32 || t == IR_I64 || t == IR_U32 || t == IR_U64)
        return NULL;
    snprintf(why, n, "MatMul of %s (float32, float64, bfloat16, int32, int64, uint32, uint64 only)",
             ir_dtype_name(t));
    return why;
}

/* bfloat16: float32 copies of the operands and the result (k_matmul_bf16) */
int64_t cg_cpu_matmul_ws(IrGraph *g, int node)
{
    const IrNode *n = &g->nodes[node];
    if (g->values[n->in[0]].dtype != IR_BF16) return 0;
    if (g->values[n->out[0]].dtype == IR_F32) /* autocast's float32 result (k_matmul_bf16_f32out) */
        return (int64_t)k_matmul_bf16_f32out_ws(ir_value_numel(&g->values[n->in[0]]),
                                                ir_value_numel(&g->values[n->in[1]]));
    return (int64_t)k_matmul_bf16_ws(ir_value_numel(&g->values[n->in[0]]), ir_value_numel(&g->values[n->in[1]]),
                                     ir_value_numel(&g->values[n->out[0]]));
}

/* Per output batch, the element offset of operand v's matrix (v's batch dims
 * broadcast over the output's); returns 1 when they are simply consecutive. */
static int batch_offsets(const IrValue *v, int vb, const int64_t *ob, int orank, int64_t mat,
                         int64_t *off)
{
    int64_t st[IR_MAX_RANK], s = mat, nb = cg_prod(ob, 0, orank);
    for (int d = orank - 1; d >= 0; d--) {
        int vd = d - (orank - vb);
        int64_t size = vd >= 0 ? v->dims[vd] : 1;
        st[d] = size == 1 ? 0 : s;
        s *= size;
    }
    int dense = 1;
    for (int64_t b = 0; b < nb; b++) {
        int64_t rem = b, o = 0;
        for (int d = orank - 1; d >= 0; d--) {
            o += rem % ob[d] * st[d];
            rem /= ob[d];
        }
        off[b] = o;
        dense &= o == b * mat;
    }
    return dense;
}

void cg_cpu_matmul_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *a = VAL(c, n->in[0]), *b = VAL(c, n->in[1]), *y = VAL(c, n->out[0]);
    int64_t M = a->rank >= 2 ? a->dims[a->rank - 2] : 1, K = a->dims[a->rank - 1];
    int64_t N = b->rank >= 2 ? b->dims[b->rank - 1] : 1;
    int ab = a->rank > 2 ? a->rank - 2 : 0, bb = b->rank > 2 ? b->rank - 2 : 0;
    int orank = ab > bb ? ab : bb;
    int64_t ob[IR_MAX_RANK];
    /* the output's batch dims: all of y's but the matrix (or vector) dims */
    int mat_dims = (a->rank >= 2) + (b->rank >= 2);
    memcpy(ob, y->dims, sizeof(int64_t) * (size_t)(y->rank - mat_dims));
    IR_ASSERT(y->rank - mat_dims == orank);
    int64_t nb = cg_prod(ob, 0, orank);
    int64_t *aoff = ir_xmalloc((size_t)(nb ? nb : 1) * sizeof *aoff);
    int64_t *boff = ir_xmalloc((size_t)(nb ? nb : 1) * sizeof *boff);
    int adense = batch_offsets(a, ab, ob, orank, M * K, aoff);
    int bdense = batch_offsets(b, bb, ob, orank, K * N, boff);
    int bshared = cg_prod(b->dims, 0, bb) == 1;
    cg_declare_outputs(c, node);
    char an[64] = "NULL", bn[64] = "NULL";
    if (adense && bshared) {
        /* one weight for every batch: a single (batch*M x K) product */
        M *= nb;
        nb = 1;
    } else {
        if (!adense) cg_i64_array(c, node, "a_off", aoff, (int)nb, an, sizeof an);
        if (!bdense) cg_i64_array(c, node, "b_off", boff, (int)nb, bn, sizeof bn);
    }
    if (ir_value_numel(y) > 0) {
        char ws[64];
        if (a->dtype == IR_BF16) {
            cg_ws_expr(c, node, ws, sizeof ws);
            fprintf(c->f, "    k_matmul_bf16%s(%s, %s, %s, %lld, %lld, %lld, %lld, %s, %s, %lld, %lld, %s);\n",
                    y->dtype == IR_F32 ? "_f32out" : "", c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]],
                    (long long)nb, (long long)M, (long long)N, (long long)K, an, bn, (long long)ir_value_numel(a),
                    (long long)ir_value_numel(b), ws);
        } else if (a->dtype == IR_F32 || a->dtype == IR_F64)
            fprintf(c->f, "    k_matmul_%s(%s, %s, %s, %lld, %lld, %lld, %lld, %s, %s);\n",
                    a->dtype == IR_F32 ? "f32" : "f64", c->var[n->out[0]], c->var[n->in[0]],
                    c->var[n->in[1]], (long long)nb, (long long)M, (long long)N, (long long)K, an, bn);
        else
            fprintf(c->f, "    k_matmul_int(%s, %s, %s, %lld, %lld, %lld, %lld, %s, %s, %d);\n",
                    c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], (long long)nb, (long long)M,
                    (long long)N, (long long)K, an, bn, (int)a->dtype);
    }
    free(aoff);
    free(boff);
}

/* ---- Gemm ---- */

const char *cg_cpu_gemm_check(IrGraph *g, int node, char *why, size_t n)
{
    IrDType t = g->values[g->nodes[node].in[0]].dtype;
    if (t == IR_F32 || t == IR_BF16) return NULL;
    snprintf(why, n, "Gemm of %s (float32 and bfloat16 only)", ir_dtype_name(t));
    return why;
}

/* Gemm's (M, N, K) and the [rows, cols] its C broadcasts from (1, 1 without C). */
static void gemm_sizes(IrGraph *g, const IrNode *n, int64_t *M, int64_t *N, int64_t *K, int64_t *cr, int64_t *cc)
{
    const IrValue *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    int ta = ir_attr_int(n, "transA", 0) != 0, tb = ir_attr_int(n, "transB", 0) != 0;
    *M = a->dims[ta], *K = a->dims[!ta], *N = b->dims[!tb];
    *cr = *cc = 1;
    if (ir_in(n, 2) >= 0) {
        const IrValue *cv = &g->values[n->in[2]];
        if (cv->rank == 1) *cc = cv->dims[0];
        if (cv->rank == 2) *cr = cv->dims[0], *cc = cv->dims[1];
    }
}

/* bfloat16: float32 copies of the operands, C and the result (k_gemm_bf16) */
int64_t cg_cpu_gemm_ws(IrGraph *g, int node)
{
    const IrNode *n = &g->nodes[node];
    if (g->values[n->in[0]].dtype != IR_BF16) return 0;
    int64_t M, N, K, cr, cc;
    gemm_sizes(g, n, &M, &N, &K, &cr, &cc);
    if (g->values[n->out[0]].dtype == IR_F32) return (int64_t)k_gemm_bf16_f32out_ws(M, N, K); /* no C */
    return (int64_t)k_gemm_bf16_ws(M, N, K, ir_in(n, 2) >= 0 ? cr * cc : 0);
}

void cg_cpu_gemm_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int ta = ir_attr_int(n, "transA", 0) != 0, tb = ir_attr_int(n, "transB", 0) != 0;
    int64_t M, N, K, cr, cc;
    gemm_sizes(c->g, n, &M, &N, &K, &cr, &cc);
    int bf16 = VAL(c, n->in[0])->dtype == IR_BF16;
    char ws[72] = "";
    if (bf16 && c->plan->ws_offset[node] >= 0) { // none when every operand is empty
        ws[0] = ',', ws[1] = ' ';
        cg_ws_expr(c, node, ws + 2, sizeof ws - 2);
    } else if (bf16) {
        snprintf(ws, sizeof ws, ", NULL");
    }
    cg_declare_outputs(c, node);
    if (bf16 && VAL(c, n->out[0])->dtype == IR_F32) { /* autocast's float32 result, no C (ir_autocast_wide_results) */
        fprintf(c->f, "    k_gemm_bf16_f32out(%s, %s, %s, %lld, %lld, %lld, %d, %d, %s%s);\n", c->var[n->out[0]],
                c->var[n->in[0]], c->var[n->in[1]], (long long)M, (long long)N, (long long)K, ta, tb,
                CG_FLT(ir_attr_float(n, "alpha", 1.0f)), ws);
        return;
    }
    fprintf(c->f, "    k_gemm_%s(%s, %s, %s, %s, %lld, %lld, %lld, %d, %d, %s, %s, %lld, %lld%s);\n", bf16 ? "bf16" : "f32",
            c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]],
            IN_OR_NULL(c, n, 2), (long long)M, (long long)N, (long long)K, ta, tb,
            CG_FLT(ir_attr_float(n, "alpha", 1.0f)), CG_FLT(ir_attr_float(n, "beta", 1.0f)), (long long)cr, (long long)cc,
            ws);
}

/* ---- Einsum ----
 * Two operands: each label is a batch label (in both inputs and the
 * output), an M label (first input and output), an N label (second input and
 * output) or a K label (both inputs, summed). The inputs are copied into
 * [B..., M..., K...] and [B..., K..., N...] (skipped when already so), one
 * batched matmul gives [B..., M..., N...], copied to the output's order
 * (skipped when it is that order). One operand: a pure transpose, or a sum
 * over the labels the output drops (k_reduce) when the kept ones stay in order. */

typedef struct {
    IrEinsum e;
    int nb, nm, nn, nk;
    int b[IR_MAX_RANK], m[IR_MAX_RANK], n[IR_MAX_RANK], k[IR_MAX_RANK];
    int copy_a, copy_b, copy_y;
    int sums, permuted; /* one operand: labels summed away; kept labels out of order */
} EinPlan;

static int find_label(const int *lab, int rank, int l)
{
    for (int i = 0; i < rank; i++)
        if (lab[i] == l) return i;
    return -1;
}

static int count_label(const int *lab, int rank, int l)
{
    int k = 0;
    for (int i = 0; i < rank; i++) k += lab[i] == l;
    return k;
}

/* Whether operand op already lies as `order` (labels, n of them) with full sizes. */
static int in_order(const EinPlan *p, const IrValue *v, int op, const int *order, int n)
{
    if (v->rank != n) return 0;
    for (int i = 0; i < n; i++)
        if (p->e.lab[op][i] != order[i] || v->dims[i] != p->e.size[order[i]]) return 0;
    return 1;
}

static const char *ein_plan(IrGraph *g, int node, EinPlan *p)
{
    memset(p, 0, sizeof *p);
    if (ir_einsum_parse(g, node, &p->e) < 0) return "an Einsum equation that does not parse";
    IrEinsum *e = &p->e;
    for (int op = 0; op < e->nop; op++)
        for (int i = 0; i < e->rank[op]; i++)
            if (count_label(e->lab[op], e->rank[op], e->lab[op][i]) > 1)
                return "an Einsum with a repeated label in one operand (a diagonal)";
    if (e->nop == 1) {
        // summed labels: a reduction, when the kept ones are already in the output's order
        int kept = 0, sums = 0;
        for (int i = 0; i < e->rank[0]; i++) {
            int at = find_label(e->out_lab, e->out_rank, e->lab[0][i]);
            if (at < 0) {
                sums = 1;
                continue;
            }
            if (at != kept++) p->permuted = 1;
        }
        if (sums && p->permuted)
            return "a one-operand Einsum that sums a label and reorders the others (use ReduceSum "
                   "and Transpose)";
        if (sums && g->values[g->nodes[node].out[0]].dtype != IR_F32 &&
            g->values[g->nodes[node].out[0]].dtype != IR_F64 &&
            g->values[g->nodes[node].out[0]].dtype != IR_I32 &&
            g->values[g->nodes[node].out[0]].dtype != IR_I64)
            return "a one-operand Einsum that sums a label of a type other than float32, float64, int32, int64";
        p->sums = sums;
        return NULL;
    }
    if (e->nop != 2) return "an Einsum of more than two operands";
    const IrNode *nd = &g->nodes[node];
    for (int i = 0; i < e->out_rank; i++) {
        int l = e->out_lab[i], ia = find_label(e->lab[0], e->rank[0], l) >= 0,
            ib = find_label(e->lab[1], e->rank[1], l) >= 0;
        if (ia && ib) p->b[p->nb++] = l;
        else if (ia) p->m[p->nm++] = l;
        else p->n[p->nn++] = l;
    }
    for (int op = 0; op < 2; op++)
        for (int i = 0; i < e->rank[op]; i++) {
            int l = e->lab[op][i];
            if (find_label(e->out_lab, e->out_rank, l) >= 0) continue;
            if (find_label(e->lab[1 - op], e->rank[1 - op], l) < 0)
                return "an Einsum that sums a label of one operand only";
            if (op == 0) p->k[p->nk++] = l;
        }
    int order[3 * IR_MAX_RANK], n = 0;
    for (int i = 0; i < p->nb; i++) order[n++] = p->b[i];
    for (int i = 0; i < p->nm; i++) order[n++] = p->m[i];
    for (int i = 0; i < p->nk; i++) order[n++] = p->k[i];
    p->copy_a = !in_order(p, &g->values[nd->in[0]], 0, order, n);
    n = 0;
    for (int i = 0; i < p->nb; i++) order[n++] = p->b[i];
    for (int i = 0; i < p->nk; i++) order[n++] = p->k[i];
    for (int i = 0; i < p->nn; i++) order[n++] = p->n[i];
    p->copy_b = !in_order(p, &g->values[nd->in[1]], 1, order, n);
    n = 0;
    for (int i = 0; i < p->nb; i++) order[n++] = p->b[i];
    for (int i = 0; i < p->nm; i++) order[n++] = p->m[i];
    for (int i = 0; i < p->nn; i++) order[n++] = p->n[i];
    p->copy_y = memcmp(order, e->out_lab, sizeof(int) * (size_t)n) != 0;
    return NULL;
}

const char *cg_cpu_einsum_check(IrGraph *g, int node, char *why, size_t n)
{
    IrDType t = g->values[g->nodes[node].out[0]].dtype;
    if (t != IR_F32 && t != IR_F64) {
        snprintf(why, n, "Einsum of %s (float32 and float64 only)", ir_dtype_name(t));
        return why;
    }
    EinPlan p;
    return ein_plan(g, node, &p);
}

static int64_t labels_numel(const EinPlan *p, const int *l, int n)
{
    int64_t s = 1;
    for (int i = 0; i < n; i++) s *= p->e.size[l[i]];
    return s;
}

int64_t cg_cpu_einsum_ws(IrGraph *g, int node)
{
    EinPlan p;
    IR_ASSERT(ein_plan(g, node, &p) == NULL);
    if (p.e.nop == 1) return 0;
    int64_t es = ir_dtype_size(g->values[g->nodes[node].out[0]].dtype);
    int64_t B = labels_numel(&p, p.b, p.nb), M = labels_numel(&p, p.m, p.nm),
            N = labels_numel(&p, p.n, p.nn), K = labels_numel(&p, p.k, p.nk);
    return (p.copy_a ? align64(B * M * K * es) : 0) + (p.copy_b ? align64(B * K * N * es) : 0) +
           (p.copy_y ? align64(B * M * N * es) : 0);
}

/* Copy operand src (labels lab, dims) into dst laid out as `order`
 * (contiguous); with inverse, the other way: dst (as the op's labels) from
 * src laid out as order. Broadcast dims of size 1 read with stride 0. */
static void ein_copy(CgCtx *c, int node, int tag, const char *dst, const char *src, const EinPlan *p,
                     const int *lab, const int64_t *dims, int rank, const int *order, int n, int inverse,
                     int esize)
{
    int64_t vst[IR_MAX_RANK], ost[3 * IR_MAX_RANK], d[3 * IR_MAX_RANK], s1[3 * IR_MAX_RANK],
        s2[3 * IR_MAX_RANK], st = 1;
    for (int i = rank - 1; i >= 0; i--) vst[i] = st, st *= dims[i];
    st = 1;
    for (int i = n - 1; i >= 0; i--) ost[i] = st, st *= p->e.size[order[i]];
    for (int i = 0; i < n; i++) {
        int at = find_label(lab, rank, order[i]);
        d[i] = p->e.size[order[i]];
        s1[i] = ost[i];
        s2[i] = dims[at] == 1 ? 0 : vst[at];
    }
    if (inverse) c->t->copy(c, node, tag, dst, s2, src, s1, d, n, esize);
    else c->t->copy(c, node, tag, dst, s1, src, s2, d, n, esize);
}

/* The plan as calls: the operands copied into matmul order where they are
 * not, one batched product, the result copied to the output's order; the
 * target prints each step (its CgTarget.copy, ops->matmul). A one-operand Einsum is a copy, or a sum
 * (ops->sum) over the labels the output drops. */
void cg_einsum_emit(CgCtx *c, int node, const CgEinsumOps *ops)
{
    const IrNode *n = NODE(c, node);
    const IrValue *y = VAL(c, n->out[0]);
    int es = ir_dtype_size(y->dtype);
    EinPlan p;
    IR_ASSERT(ein_plan(c->g, node, &p) == NULL);
    cg_declare_outputs(c, node);
    const IrValue *a = VAL(c, n->in[0]);
    if (p.e.nop == 1 && p.sums) { // a sum over the labels the output drops (ReduceSum)
        int red[IR_MAX_RANK];
        for (int i = 0; i < a->rank; i++) red[i] = find_label(p.e.out_lab, p.e.out_rank, p.e.lab[0][i]) < 0;
        IR_ASSERT(ops->sum);
        ops->sum(c, node, red);
        return;
    }
    if (p.e.nop == 1) {
        ein_copy(c, node, 0, c->var[n->out[0]], c->var[n->in[0]], &p, p.e.lab[0], a->dims, a->rank,
                 p.e.out_lab, p.e.out_rank, 0, es);
        return;
    }
    const IrValue *b = VAL(c, n->in[1]);
    int64_t B = labels_numel(&p, p.b, p.nb), M = labels_numel(&p, p.m, p.nm),
            N = labels_numel(&p, p.n, p.nn), K = labels_numel(&p, p.k, p.nk);
    const char *t = cg_ctype(y->dtype);
    char ws[64], pa[160], pb[160], py[160];
    cg_ws_expr(c, node, ws, sizeof ws);
    int64_t at = 0;
    snprintf(pa, sizeof pa, "%s", c->var[n->in[0]]);
    snprintf(pb, sizeof pb, "%s", c->var[n->in[1]]);
    snprintf(py, sizeof py, "%s", c->var[n->out[0]]);
    int order[3 * IR_MAX_RANK], k = 0;
    if (p.copy_a) {
        snprintf(pa, sizeof pa, "(%s *)(%s + %lld)", t, ws, (long long)at);
        at += align64(B * M * K * es);
        k = 0;
        for (int i = 0; i < p.nb; i++) order[k++] = p.b[i];
        for (int i = 0; i < p.nm; i++) order[k++] = p.m[i];
        for (int i = 0; i < p.nk; i++) order[k++] = p.k[i];
        ein_copy(c, node, 0, pa, c->var[n->in[0]], &p, p.e.lab[0], a->dims, a->rank, order, k, 0, es);
    }
    if (p.copy_b) {
        snprintf(pb, sizeof pb, "(%s *)(%s + %lld)", t, ws, (long long)at);
        at += align64(B * K * N * es);
        k = 0;
        for (int i = 0; i < p.nb; i++) order[k++] = p.b[i];
        for (int i = 0; i < p.nk; i++) order[k++] = p.k[i];
        for (int i = 0; i < p.nn; i++) order[k++] = p.n[i];
        ein_copy(c, node, 1, pb, c->var[n->in[1]], &p, p.e.lab[1], b->dims, b->rank, order, k, 0, es);
    }
    if (p.copy_y) snprintf(py, sizeof py, "(%s *)(%s + %lld)", t, ws, (long long)at);
    ops->matmul(c, node, py, pa, pb, B, M, N, K, y->dtype);
    if (p.copy_y) {
        k = 0;
        for (int i = 0; i < p.nb; i++) order[k++] = p.b[i];
        for (int i = 0; i < p.nm; i++) order[k++] = p.m[i];
        for (int i = 0; i < p.nn; i++) order[k++] = p.n[i];
        ein_copy(c, node, 2, c->var[n->out[0]], py, &p, p.e.out_lab, y->dims, y->rank, order, k, 1, es);
    }
}

/* Whether the Einsum needs a one-operand sum (which the cuda target does not emit). */
int cg_einsum_sums(IrGraph *g, int node)
{
    EinPlan p;
    return ein_plan(g, node, &p) == NULL && p.e.nop == 1 && p.sums;
}

/* ---- the cpu target's steps ---- */

static void cpu_ein_matmul(CgCtx *c, int node, const char *y, const char *a, const char *b, int64_t B, int64_t M,
                           int64_t N, int64_t K, IrDType t)
{
    (void)node;
    fprintf(c->f, "    k_matmul_%s(%s, %s, %s, %lld, %lld, %lld, %lld, NULL, NULL);\n", t == IR_F32 ? "f32" : "f64", y,
            a, b, (long long)B, (long long)M, (long long)N, (long long)K);
}

static void cpu_ein_sum(CgCtx *c, int node, const int *red)
{
    const IrNode *n = NODE(c, node);
    const IrValue *a = VAL(c, n->in[0]), *y = VAL(c, n->out[0]);
    char dims[64];
    cg_i64_array(c, node, "dims", a->dims, a->rank, dims, sizeof dims);
    fprintf(c->f, "    static const int red_%d[%d] = {", node, a->rank ? a->rank : 1);
    for (int i = 0; i < a->rank; i++) fprintf(c->f, i ? ", %d" : "%d", red[i]);
    fprintf(c->f, "};\n    k_reduce(%s, %s, %s, %d, red_%d, 0, %d);\n", c->var[n->out[0]], c->var[n->in[0]], dims,
            a->rank, node, (int)y->dtype);
}

void cg_cpu_einsum_emit(CgCtx *c, int node)
{
    static const CgEinsumOps cpu = {cpu_ein_matmul, cpu_ein_sum};
    cg_einsum_emit(c, node, &cpu);
}

/* ---- windows: convolution and pooling ---- */

void cg_cpu_window(const IrNode *n, int k, const int64_t *in, const int64_t *out, const int64_t *kern,
                   int64_t *stride, int64_t *dil, int64_t *pad)
{
    int64_t cnt;
    const int64_t *s = ir_attr_ints(n, "strides", &cnt), *d = ir_attr_ints(n, "dilations", &cnt),
                  *p = ir_attr_ints(n, "pads", &cnt);
    const char *ap = ir_attr_string(n, "auto_pad", "NOTSET");
    int transposed = n->op == IR_OP_ConvTranspose;
    for (int i = 0; i < k; i++) {
        stride[i] = s ? s[i] : 1;
        dil[i] = d ? d[i] : 1;
        pad[i] = p ? p[i] : 0;
        if (!strcmp(ap, "VALID")) pad[i] = 0;
        int same_lower = !strcmp(ap, "SAME_LOWER"), same = same_lower || !strcmp(ap, "SAME_UPPER");
        int64_t ext = (kern[i] - 1) * dil[i] + 1, total;
        if (transposed) {
            /* the output size fixes the padding when it was given or implied;
             * SAME_UPPER (and NOTSET) put the odd unit at the end */
            if (!p || same) {
                const int64_t *op = ir_attr_ints(n, "output_padding", &cnt);
                total = stride[i] * (in[i] - 1) + (op ? op[i] : 0) + ext - out[i];
                if (total < 0) total = 0;
                pad[i] = same_lower ? total - total / 2 : total / 2;
            }
        } else if (same) {
            total = (out[i] - 1) * stride[i] + ext - in[i];
            if (total < 0) total = 0;
            pad[i] = same_lower ? total - total / 2 : total / 2;
        }
    }
}

/* Whether conv node's weights never change while the program runs: an
 * inference graph's parameters and constants (a training graph, one with a
 * loss, prepares none, not even a frozen parameter's). They are then
 * prepared once at start (model_prepare, k_conv_pack_f32). */
static int conv_weights_fixed(const IrGraph *g, int node)
{
    IrRole r = g->values[g->nodes[node].in[1]].role;
    return (r == IR_PARAM || r == IR_CONST) && ir_loss_value(g) < 0;
}

static void conv_params(IrGraph *g, int node, KConv *p)
{
    const IrNode *n = &g->nodes[node];
    const IrValue *x = &g->values[n->in[0]], *w = &g->values[n->in[1]], *y = &g->values[n->out[0]];
    memset(p, 0, sizeof *p);
    p->nd = x->rank - 2;
    p->N = x->dims[0];
    p->C = x->dims[1];
    p->M = y->dims[1];
    p->group = ir_attr_int(n, "group", 1);
    for (int i = 0; i < p->nd; i++) {
        p->in[i] = x->dims[2 + i];
        p->out[i] = y->dims[2 + i];
        p->k[i] = w->dims[2 + i];
    }
    cg_cpu_window(n, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    if (n->op == IR_OP_Conv && k_conv_pack_f32_bytes(p) > 0) p->packed = conv_weights_fixed(g, node);
}

/* ".in = {..}, .out = {..}, .k = {..},\n .stride = {..}, .dilation = {..}, .pad = {..}":
 * the window fields KConv and KPool share. */
static void window_fields(FILE *f, int nd, const int64_t *in, const int64_t *out, const int64_t *k,
                          const int64_t *stride, const int64_t *dilation, const int64_t *pad)
{
    fprintf(f, ".in = ");
    i64_list(f, in, nd);
    fprintf(f, ", .out = ");
    i64_list(f, out, nd);
    fprintf(f, ", .k = ");
    i64_list(f, k, nd);
    fprintf(f, ",\n        .stride = ");
    i64_list(f, stride, nd);
    fprintf(f, ", .dilation = ");
    i64_list(f, dilation, nd);
    fprintf(f, ", .pad = ");
    i64_list(f, pad, nd);
}

void cg_cpu_kconv_decl(CgCtx *c, int node, const KConv *p)
{
    FILE *f = c->f;
    fprintf(f, "    static const KConv conv_%d = {.nd = %d, .N = %lld, .C = %lld, .M = %lld, .group = %lld,\n"
               "        ", node, p->nd, (long long)p->N, (long long)p->C, (long long)p->M,
            (long long)p->group);
    window_fields(f, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    fprintf(f, "%s};\n", p->packed ? ", .packed = 1" : "");
}

const char *cg_cpu_conv_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[0]];
    if (x->dtype != IR_F32) {
        snprintf(why, n, "%s of %s (float32 only)", ir_ops[nd->op].name, ir_dtype_name(x->dtype));
        return why;
    }
    if (x->rank < 3 || x->rank > 5) return "a convolution over other than 1 to 3 spatial dims";
    return NULL;
}

int64_t cg_cpu_conv_ws(IrGraph *g, int node)
{
    KConv p;
    conv_params(g, node, &p);
    return (int64_t)(g->nodes[node].op == IR_OP_Conv ? k_conv_f32_ws(&p) : k_conv_transpose_f32_ws(&p));
}

int64_t cg_cpu_conv_pack(IrGraph *g, int node)
{
    if (g->nodes[node].op != IR_OP_Conv) return 0;
    KConv p;
    conv_params(g, node, &p);
    return p.packed ? (int64_t)k_conv_pack_f32_bytes(&p) : 0;
}

void cg_cpu_conv_emit_pack(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    KConv p;
    conv_params(c->g, node, &p);
    fprintf(c->f, "    // node '%s': the Winograd transform of %s\n", n->name, c->var[n->in[1]]);
    cg_cpu_kconv_decl(c, node, &p);
    fprintf(c->f, "    k_conv_pack_f32(weights + WOFF_PACK_%d, (const float *)(weights + WOFF_%s), &conv_%d);\n", node,
            c->var[n->in[1]], node);
}

/* The node that alone reads node's one output, as its input 0, if it has
 * op `op`, runs in the same phase and that output is no graph output; else -1. */
static int sole_reader(const IrGraph *g, const IrUses *u, int node, IrOp op)
{
    const IrNode *n = &g->nodes[node];
    if (n->nout != 1) return -1;
    int v = n->out[0];
    if (g->values[v].is_output || u->start[v + 1] - u->start[v] != 1) return -1;
    int r = u->node[u->start[v]];
    const IrNode *rn = &g->nodes[r];
    return rn->op == op && rn->in[0] == v && rn->phase == n->phase ? r : -1;
}

/* The Add that alone reads node's one output, when the other operand has
 * the same shape (no broadcasting) and the Add's elementwise group is the
 * Add alone or the Add and a Relu of it; else -1. */
static int residual_add(const IrGraph *g, const IrUses *u, const int *run_at, int node)
{
    const IrNode *n = &g->nodes[node];
    int v = n->out[0];
    if (g->values[v].is_output || u->start[v + 1] - u->start[v] != 1) return -1;
    int a = u->node[u->start[v]], root = run_at[a];
    const IrNode *an = &g->nodes[a], *rn = &g->nodes[root];
    if (an->op != IR_OP_Add || an->phase != n->phase || an->in[0] == an->in[1]) return -1;
    const IrValue *x = &g->values[v], *r = &g->values[an->in[an->in[0] == v]], *y = &g->values[an->out[0]];
    if (r->dtype != IR_F32 || r->rank != x->rank || y->rank != x->rank ||
        memcmp(r->dims, x->dims, (size_t)x->rank * sizeof *x->dims) ||
        memcmp(y->dims, x->dims, (size_t)x->rank * sizeof *x->dims))
        return -1;
    int members = 0;
    for (int k = 0; k <= root; k++) members += run_at[k] == root;
    if (root == a) return members == 1 ? a : -1;
    return members == 2 && rn->op == IR_OP_Relu && rn->in[0] == an->out[0] ? a : -1;
}

/* A float32 Conv whose output only an inference BatchNormalization reads,
 * whose output only a Relu, or an Add of a same-shaped tensor (alone or
 * followed by a Relu in its elementwise group) reads, runs as one step at
 * the last node (any step but the conv may be missing): k_conv_post_f32
 * applies them while the conv's outputs are in registers, the same bits as
 * the separate steps. The BatchNormalization reads its parameters at run
 * time, so a program given other weights (infer --weights) stays exact:
 * nothing is folded. A Relu already inside a larger elementwise group stays
 * there. Of two convs that meet at an Add (a residual block's two branches),
 * the first takes it. */
/* The inference BatchNormalization that alone reads conv i's output, or -1. */
static int epilogue_bn(const IrGraph *g, const IrUses *u, int i)
{
    int bn = sole_reader(g, u, i, IR_OP_BatchNormalization);
    return bn >= 0 && g->nodes[bn].nout == 1 && !ir_attr_int(&g->nodes[bn], "training_mode", 0) ? bn : -1;
}

void cg_cpu_conv_fuse(IrGraph *g, const IrUses *u, int *run_at)
{
    /* a BatchNormalization that a conv's epilogue can take leaves the
     * elementwise group it opened: the conv takes it (and what follows) */
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].op != IR_OP_Conv || g->nodes[i].dead || run_at[i] != i) continue;
        int bn = epilogue_bn(g, u, i);
        if (bn >= 0) run_at[bn] = bn;
    }
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].op != IR_OP_Conv || g->nodes[i].dead || run_at[i] != i) continue;
        int bn = epilogue_bn(g, u, i), last = bn >= 0 ? bn : i, add = -1;
        int relu = sole_reader(g, u, last, IR_OP_Relu);
        if (relu >= 0 && run_at[relu] == relu) last = relu;
        else if ((add = residual_add(g, u, run_at, last)) >= 0) last = run_at[add];
        if (last == i) continue;
        run_at[i] = last;
        if (bn >= 0) run_at[bn] = last;
    }
}

void cg_cpu_conv_emit(CgCtx *c, int node)
{
    // node is the conv, or the root of its group (cg_cpu_conv_fuse): a BatchNormalization, Add or Relu
    int conv = node, bn = -1, add = -1;
    for (int k = 0; k <= node; k++) {
        if (c->sel->run_at[k] != node) continue;
        if (NODE(c, k)->op == IR_OP_BatchNormalization) bn = k;
        else if (NODE(c, k)->op == IR_OP_Add) add = k;
        else if (NODE(c, k)->op == IR_OP_Conv && conv == node) conv = k;
    }
    const IrNode *n = NODE(c, conv), *root = NODE(c, node);
    KConv p;
    conv_params(c->g, conv, &p);
    FILE *f = c->f;
    char ws[64], post[24] = "";
    cg_declare_outputs(c, node);
    cg_cpu_kconv_decl(c, conv, &p);
    if (c->plan->ws_offset[conv] >= 0) cg_ws_expr(c, conv, ws, sizeof ws);
    else snprintf(ws, sizeof ws, "NULL");
    int64_t pack = c->plan->pack_offset[conv];
    if (conv != node || pack >= 0) { // the epilogue: BatchNormalization's inputs x, scale, bias, mean, var
        const IrNode *b = bn >= 0 ? NODE(c, bn) : NULL;
        fprintf(f, "    const KConvPost post_%d = {", conv);
        if (pack >= 0) fprintf(f, ".wpack = weights + WOFF_PACK_%d, ", conv);
        if (b)
            fprintf(f, ".bn_scale = %s, .bn_bias = %s, .bn_mean = %s, .bn_var = %s, .bn_eps = %s, ",
                    c->var[b->in[1]], c->var[b->in[2]], c->var[b->in[3]], c->var[b->in[4]],
                    CG_FLT(ir_attr_float(b, "epsilon", 1e-5f)));
        if (add >= 0) { // the Add's operand that is not the chain's value
            const IrNode *a = NODE(c, add);
            int chain = b ? b->out[0] : n->out[0];
            fprintf(f, ".residual = %s, ", c->var[a->in[a->in[0] == chain]]);
        }
        fprintf(f, ".relu = %d};\n", root->op == IR_OP_Relu);
        snprintf(post, sizeof post, "&post_%d, ", conv);
    }
    const char *fn = n->op == IR_OP_ConvTranspose ? "k_conv_transpose_f32" : *post ? "k_conv_post_f32" : "k_conv_f32";
    fprintf(f, "    %s(%s, %s, %s, %s, %s&conv_%d, %s);\n", fn, c->var[root->out[0]], c->var[n->in[0]],
            c->var[n->in[1]], IN_OR_NULL(c, n, 2), post, conv, ws);
}

const char *cg_cpu_pool_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[0]];
    int ints = nd->op == IR_OP_MaxPool && (x->dtype == IR_U8 || x->dtype == IR_I8);
    if (x->dtype != IR_F32 && !ints) {
        snprintf(why, n, "%s of %s (float32%s only)", ir_ops[nd->op].name, ir_dtype_name(x->dtype),
                 nd->op == IR_OP_MaxPool ? ", uint8, int8" : "");
        return why;
    }
    if (x->rank < 3 || x->rank > 5) return "pooling over other than 1 to 3 spatial dims";
    return NULL;
}

void cg_cpu_pool_params(IrGraph *g, int node, const int64_t *xdims, const int64_t *ydims, int rank,
                        KPool *p)
{
    const IrNode *n = &g->nodes[node];
    int64_t cnt;
    const int64_t *ks = ir_attr_ints(n, "kernel_shape", &cnt);
    memset(p, 0, sizeof *p);
    p->nd = rank - 2;
    p->NC = xdims[0] * xdims[1];
    for (int i = 0; i < p->nd; i++) p->in[i] = xdims[2 + i], p->out[i] = ydims[2 + i], p->k[i] = ks[i];
    cg_cpu_window(n, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    p->count_include_pad = ir_attr_int(n, "count_include_pad", 0) != 0;
    p->storage_order = ir_attr_int(n, "storage_order", 0) != 0;
}

void cg_cpu_kpool_decl(CgCtx *c, int node, const KPool *p)
{
    FILE *f = c->f;
    fprintf(f, "    static const KPool pool_%d = {.nd = %d, .NC = %lld, ", node, p->nd, (long long)p->NC);
    window_fields(f, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
    fprintf(f, ", .count_include_pad = %d, .storage_order = %d};\n", p->count_include_pad,
            p->storage_order);
}

void cg_cpu_pool_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *y = VAL(c, n->out[0]);
    FILE *f = c->f;
    KPool p;
    cg_cpu_pool_params(c->g, node, x->dims, y->dims, x->rank, &p);
    cg_declare_outputs(c, node);
    cg_cpu_kpool_decl(c, node, &p);
    if (n->op == IR_OP_MaxPool)
        fprintf(f, "    k_maxpool_%s(%s, %s, %s, &pool_%d);\n",
                x->dtype == IR_U8 ? "u8" : x->dtype == IR_I8 ? "i8" : "f32", c->var[n->out[0]],
                OUT_OR_NULL(c, n, 1), c->var[n->in[0]], node);
    else
        fprintf(f, "    k_avgpool_f32(%s, %s, &pool_%d);\n", c->var[n->out[0]], c->var[n->in[0]], node);
}

void cg_cpu_global_pool_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_global_pool_f32(%s, %s, %lld, %lld, %d);\n", c->var[n->out[0]], c->var[n->in[0]],
            (long long)(x->dims[0] * x->dims[1]), (long long)cg_prod(x->dims, 2, x->rank),
            n->op == IR_OP_GlobalMaxPool);
}

/* ---- Resize ---- */

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

const char *cg_cpu_resize_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    if (g->values[nd->in[0]].dtype != IR_F32) {
        snprintf(why, n, "Resize of %s (float32 only)", ir_dtype_name(g->values[nd->in[0]].dtype));
        return why;
    }
    if (strcmp(ir_attr_string(nd, "keep_aspect_ratio_policy", "stretch"), "stretch"))
        return "Resize with a keep_aspect_ratio_policy other than stretch";
    int64_t na;
    if (ir_attr_ints(nd, "axes", &na) &&
        !strcmp(ir_attr_string(nd, "coordinate_transformation_mode", ""), "tf_crop_and_resize"))
        return "Resize tf_crop_and_resize with axes";
    int roi = g->opset >= 11 ? ir_in(nd, 1) : -1;
    if (roi >= 0 && ir_value_numel(&g->values[roi]) > 0 && !g->values[roi].data)
        return "Resize with a roi computed at run time";
    return NULL;
}

void cg_cpu_resize_modes(const IrNode *n, int *mode, int *coord_mode, int *nearest_mode)
{
    static const char *const coord[] = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                                        "tf_crop_and_resize", "half_pixel_symmetric", "tf_half_pixel_for_nn"};
    static const char *const nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    *mode = strcmp(ir_attr_string(n, "mode", "nearest"), "nearest") != 0;
    *coord_mode = name_index(ir_attr_string(n, "coordinate_transformation_mode", "half_pixel"), coord, 7);
    *nearest_mode = name_index(ir_attr_string(n, "nearest_mode", "round_prefer_floor"), nearest, 4);
}

void cg_cpu_resize_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *y = VAL(c, n->out[0]);
    int r = x->rank, si = c->g->opset < 11 ? 1 : 2, roi = c->g->opset >= 11 ? ir_in(n, 1) : -1;
    int64_t na;
    const int64_t *axes = ir_attr_ints(n, "axes", &na);
    const IrValue *sc = ir_in(n, si) >= 0 ? VAL(c, n->in[si]) : NULL;
    if (sc && ir_value_numel(sc) == 0) sc = NULL;
    double scale[IR_MAX_RANK];
    for (int d = 0; d < r; d++) scale[d] = x->dims[d] ? (double)y->dims[d] / (double)x->dims[d] : 1;
    if (sc)
        for (int i = 0; i < ir_value_numel(sc); i++)
            scale[axes ? ir_norm_axis(axes[i], r) : i] = ((const float *)sc->data)[i];
    char xd[48], yd[48];
    cg_declare_outputs(c, node);
    cg_i64_array(c, node, "in", x->dims, r, xd, sizeof xd);
    cg_i64_array(c, node, "out", y->dims, r, yd, sizeof yd);
    fprintf(c->f, "    static const float scale_%d[%d] = {", node, r);
    for (int d = 0; d < r; d++) fprintf(c->f, d ? ", %s" : "%s", CG_FLT((float)scale[d]));
    fprintf(c->f, "};\n");
    const char *roi_arg = "NULL";
    char rn[32];
    if (roi >= 0 && ir_value_numel(VAL(c, roi)) == 2 * r) {
        const IrValue *rv = VAL(c, roi);
        fprintf(c->f, "    static const float roi_%d[%d] = {", node, 2 * r);
        for (int i = 0; i < 2 * r; i++)
            fprintf(c->f, i ? ", %s" : "%s",
                    CG_FLT(rv->dtype == IR_F64 ? (float)((const double *)rv->data)[i]
                                          : ((const float *)rv->data)[i]));
        fprintf(c->f, "};\n");
        snprintf(rn, sizeof rn, "roi_%d", node);
        roi_arg = rn;
    }
    int mode, coord, nearest;
    cg_cpu_resize_modes(n, &mode, &coord, &nearest);
    fprintf(c->f, "    k_resize_f32(%s, %s, %s, %s, %d, scale_%d, %s, %d, %d, %d, %s);\n", c->var[n->out[0]],
            c->var[n->in[0]], xd, yd, r, node, roi_arg, mode, coord, nearest,
            CG_FLT(ir_attr_float(n, "extrapolation_value", 0)));
}

/* ---- DFT ---- */

const char *cg_cpu_dft_check(IrGraph *g, int node, char *why, size_t n)
{
    IrDType t = g->values[g->nodes[node].in[0]].dtype;
    if (t == IR_F32) return NULL;
    snprintf(why, n, "DFT of %s (float32 only)", ir_dtype_name(t));
    return why;
}

void cg_dft_shape(IrGraph *g, int node, CgDft *d)
{
    const IrNode *n = &g->nodes[node];
    const IrValue *x = &g->values[n->in[0]];
    int64_t axis = ir_attr_int(n, "axis", 1);
    const int64_t *v;
    if (g->opset >= 20) axis = ir_in(n, 2) >= 0 && ir_const_ints(g, n->in[2], &v) == 1 ? v[0] : -2;
    int a = ir_norm_axis(axis, x->rank);
    d->outer = cg_prod(x->dims, 0, a);
    d->n_in = x->dims[a];
    d->inner = cg_prod(x->dims, a + 1, x->rank - 1);
    d->cin = (int)x->dims[x->rank - 1];
    d->length = x->dims[a];
    if (ir_in(n, 1) >= 0 && ir_const_ints(g, n->in[1], &v) == 1) d->length = v[0];
    d->onesided = ir_attr_int(n, "onesided", 0) != 0;
    d->inverse = ir_attr_int(n, "inverse", 0) != 0;
}

void cg_dft_args(CgCtx *c, int node, char *buf, size_t size)
{
    CgDft d;
    cg_dft_shape(c->g, node, &d);
    snprintf(buf, size, "%lld, %lld, %lld, %d, %lld, %d, %d", (long long)d.outer, (long long)d.n_in,
             (long long)d.inner, d.cin, (long long)d.length, d.onesided, d.inverse);
}

void cg_cpu_dft_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    char args[256];
    cg_dft_args(c, node, args, sizeof args);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_dft_f32(%s, %s, %s);\n", c->var[n->out[0]], c->var[n->in[0]], args);
}
