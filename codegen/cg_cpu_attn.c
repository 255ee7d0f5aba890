/* cpu emitters of fused attention: loom.Attention (k_attention_f32) and its
 * gradient loom.AttentionGrad (k_attention_grad_f32), kernels/cpu/kattn.c.
 * The leading dims of Q, K and V (equal, ir/shape_nn.c checks) are one batch
 * of BH matrices; a mask's broadcast over them becomes a static table of
 * each matrix's offset into the mask, its broadcast over rows and keys
 * strides of 0. The kernels' per-thread workspace is declared through the
 * emitter's workspace hook, so the memory planner counts it. */
#include <stdlib.h>
#include <string.h>

#include "cg_impl.h"
#include "ops_impl.h"

/* The kernel's parameters of node n (forward or gradient); returns the
 * per-matrix offsets into the mask (malloc'ed, BH of them), or NULL when
 * all are 0 (p->mask_off is left NULL: the emitted table's name goes there). */
static int64_t *attn_params(const IrGraph *g, const IrNode *n, KAttn *p)
{
    int grad = n->op == IR_OP_AttentionGrad;
    const IrValue *q = &g->values[n->in[grad]], *v = &g->values[n->in[grad + 2]];
    int r = q->rank, mi = ir_in(n, grad ? 6 : 3);
    memset(p, 0, sizeof *p);
    p->BH = 1;
    for (int d = 0; d < r - 2; d++) p->BH *= q->dims[d];
    p->T = q->dims[r - 2], p->D = q->dims[r - 1];
    p->S = v->dims[r - 2], p->Dv = v->dims[r - 1];
    p->scale = ir_attr_float(n, "scale", 1.0f);
    p->causal = ir_attr_int(n, "causal", 0) != 0;
    if (mi < 0) return NULL;
    const IrValue *m = &g->values[mi];
    p->mask_kind = m->dtype == IR_BOOL ? K_ATTN_MASK_KEEP : K_ATTN_MASK_ADD;
    p->fill = ir_attr_float(n, "fill", 0.0f);
    /* the mask's dims and dense strides aligned to the scores' rank, 0 where it broadcasts */
    int64_t md[IR_MAX_RANK], ms[IR_MAX_RANK], st = 1;
    for (int d = r - 1; d >= 0; d--) {
        int k = d - (r - m->rank);
        md[d] = k >= 0 ? m->dims[k] : 1;
        ms[d] = md[d] == 1 ? 0 : st;
        st *= md[d];
    }
    p->mask_st = ms[r - 2], p->mask_ss = ms[r - 1];
    int any = 0;
    int64_t *off = ir_xmalloc((size_t)(p->BH ? p->BH : 1) * sizeof *off);
    for (int64_t b = 0; b < p->BH; b++) {
        int64_t rest = b, o = 0;
        for (int d = r - 3; d >= 0; d--) {
            o += rest % q->dims[d] * ms[d];
            rest /= q->dims[d];
        }
        off[b] = o;
        any |= o != 0;
    }
    if (!any) {
        free(off);
        off = NULL;
    }
    return off;
}

const char *cg_cpu_attention_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    for (int i = 0; i < nd->nin; i++) {
        IrDType t = nd->in[i] >= 0 ? g->values[nd->in[i]].dtype : IR_F32;
        if (t != IR_F32 && t != IR_BOOL) {
            snprintf(why, n, "%s with a %s input (float32 only)", ir_ops[nd->op].name, ir_dtype_name(t));
            return why;
        }
    }
    return NULL;
}

int64_t cg_cpu_attention_ws(IrGraph *g, int node)
{
    const IrNode *n = &g->nodes[node];
    KAttn p;
    free(attn_params(g, n, &p));
    return (int64_t)(n->op == IR_OP_Attention ? k_attention_f32_ws(&p) : k_attention_grad_f32_ws(&p));
}

/* "static const KAttn attn_<node> = {...};" and its offset table */
static void attn_decl(CgCtx *c, int node)
{
    const IrNode *n = &c->g->nodes[node];
    KAttn p;
    char name[64] = "NULL";
    int64_t *off = attn_params(c->g, n, &p);
    if (off) cg_i64_array(c, node, "mask_off", off, (int)p.BH, name, sizeof name);
    free(off);
    fprintf(c->f, "    static const KAttn attn_%d = {.BH = %lld, .T = %lld, .S = %lld, .D = %lld, .Dv = %lld,\n"
                  "        .scale = %s, .causal = %d, .mask_kind = %d, .fill = %s, .mask_off = %s,\n"
                  "        .mask_st = %lld, .mask_ss = %lld};\n",
            node, (long long)p.BH, (long long)p.T, (long long)p.S, (long long)p.D, (long long)p.Dv,
            CG_FLT(p.scale), p.causal, p.mask_kind, CG_FLT(p.fill), name, (long long)p.mask_st,
            (long long)p.mask_ss);
}

static const char *ws_or_null(CgCtx *c, int node, char *buf, size_t n)
{
    if (c->plan->ws_offset[node] >= 0) cg_ws_expr(c, node, buf, n);
    else snprintf(buf, n, "NULL");
    return buf;
}

void cg_cpu_attention_emit(CgCtx *c, int node)
{
    const IrNode *n = &c->g->nodes[node];
    char ws[64];
    int mi = ir_in(n, n->op == IR_OP_Attention ? 3 : 6);
    const char *mask = mi >= 0 ? c->var[mi] : "NULL";
    cg_declare_outputs(c, node);
    attn_decl(c, node);
    if (n->op == IR_OP_Attention)
        fprintf(c->f, "    k_attention_f32(%s, %s, %s, %s, %s, %s, &attn_%d, %s);\n", c->var[n->out[0]],
                c->var[n->out[1]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], mask, node,
                ws_or_null(c, node, ws, sizeof ws));
    else
        fprintf(c->f, "    k_attention_grad_f32(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, &attn_%d, %s);\n",
                c->var[n->out[0]], c->var[n->out[1]], c->var[n->out[2]], c->var[n->in[0]], c->var[n->in[1]],
                c->var[n->in[2]], c->var[n->in[3]], c->var[n->in[4]], c->var[n->in[5]], mask, node,
                ws_or_null(c, node, ws, sizeof ws));
}
