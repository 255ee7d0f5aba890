/* cpu emitter of loom.LinearCrossEntropy (ir/loss.c): one call of
 * k_linear_ce_f32, or k_linear_ce_bf16 when the node's compute is bfloat16
 * (ir/autocast.c), from kernels/cpu/klince.c, whose block of logits is the
 * node's workspace, so the memory planner counts it. */
#include <string.h>

#include "cg_impl.h"

const char *cg_cpu_linear_ce_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    if (g->values[nd->in[0]].dtype != IR_F32 || g->values[nd->in[2]].dtype != IR_I64) {
        snprintf(why, n, "%s with %s x and %s targets (float32 and int64 only)", ir_ops[nd->op].name,
                 ir_dtype_name(g->values[nd->in[0]].dtype), ir_dtype_name(g->values[nd->in[2]].dtype));
        return why;
    }
    return NULL;
}

/* N and C of node's product (x [N, D]; w [D, C], or [C, D] with trans_w) */
static void dims(const IrGraph *g, const IrNode *n, int64_t *N, int64_t *D, int64_t *C)
{
    const IrValue *x = &g->values[n->in[0]], *w = &g->values[n->in[1]];
    *N = x->dims[0], *D = x->dims[1];
    *C = w->dims[ir_attr_int(n, "trans_w", 0) ? 0 : 1];
}

int64_t cg_cpu_linear_ce_ws(IrGraph *g, int node)
{
    int64_t N, D, C;
    dims(g, &g->nodes[node], &N, &D, &C);
    return (int64_t)(ir_attr_int(&g->nodes[node], "compute", IR_F32) == IR_BF16 ? k_linear_ce_bf16_ws(N, D, C)
                                                                                : k_linear_ce_f32_ws(N, C));
}

void cg_cpu_linear_ce_emit(CgCtx *c, int node)
{
    const IrNode *n = &c->g->nodes[node];
    int64_t N, D, C;
    char ws[64], call[768];
    dims(c->g, n, &N, &D, &C);
    cg_ws_expr(c, node, ws, sizeof ws);
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "k_linear_ce_%s(%s, %s, %s, %s, %s, %d, %s, %lld, %lld, %lld, %d, %lld, %d, %s)",
             ir_attr_int(n, "compute", IR_F32) == IR_BF16 ? "bf16" : "f32", c->var[n->out[0]], c->var[n->out[1]], c->var[n->out[2]], c->var[n->in[0]], c->var[n->in[1]],
             (int)(ir_attr_int(n, "trans_w", 0) != 0), c->var[n->in[2]], (long long)N, (long long)D,
             (long long)C, strcmp(ir_attr_string(n, "reduction", "mean"), "sum") != 0,
             (long long)ir_attr_int(n, "ignore_index", 0), ir_attr_find(n, "ignore_index") != NULL, ws);
    cg_check_call(c, node, call);
}
