/* The data-movement emitters both targets share: Transpose, Slice, Concat,
 * Split and Expand are strided copies, planned here once and written by the
 * target's copy printer (CgTarget.copy: k_copy_nd for cpu, lk_copy_nd for
 * cuda). */
#include "cg_impl.h"
#include "ops_impl.h"

static void strides_of(const IrValue *v, int64_t *s)
{
    int64_t st = 1;
    for (int d = v->rank - 1; d >= 0; d--) s[d] = st, st *= v->dims[d];
}

void cg_copy_values(CgCtx *c, int node, int tag, int dst, int64_t dst_off, const int64_t *dst_st, int src,
                    int64_t src_off, const int64_t *src_st, const int64_t *dims, int rank)
{
    char d[160], s[160];
    snprintf(d, sizeof d, "%s + %lld", c->var[dst], (long long)dst_off);
    snprintf(s, sizeof s, "%s + %lld", c->var[src], (long long)src_off);
    c->t->copy(c, node, tag, d, dst_st, s, src_st, dims, rank, ir_dtype_size(VAL(c, dst)->dtype));
}

void cg_emit_transpose(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *y = VAL(c, n->out[0]);
    int64_t cnt, xs[IR_MAX_RANK], ys[IR_MAX_RANK], src[IR_MAX_RANK];
    const int64_t *p = ir_attr_ints(n, "perm", &cnt);
    strides_of(x, xs);
    strides_of(y, ys);
    for (int d = 0; d < y->rank; d++) src[d] = xs[p ? p[d] : x->rank - 1 - d];
    cg_declare_outputs(c, node);
    cg_copy_values(c, node, 0, n->out[0], 0, ys, n->in[0], 0, src, y->dims, y->rank);
}

void cg_emit_slice(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *y = VAL(c, n->out[0]);
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK], xs[IR_MAX_RANK], ys[IR_MAX_RANK], off = 0;
    IR_ASSERT(ir_slice_params(c->g, node, start, step, len) == 0);
    strides_of(x, xs);
    strides_of(y, ys);
    for (int d = 0; d < x->rank; d++) off += start[d] * xs[d], xs[d] *= step[d];
    cg_declare_outputs(c, node);
    if (ir_value_numel(y) > 0) cg_copy_values(c, node, 0, n->out[0], 0, ys, n->in[0], off, xs, len, y->rank);
}

void cg_emit_concat(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *y = VAL(c, n->out[0]);
    int axis = ir_norm_axis(ir_attr_int(n, "axis", 0), y->rank);
    int64_t ys[IR_MAX_RANK], xs[IR_MAX_RANK], at = 0;
    strides_of(y, ys);
    cg_declare_outputs(c, node);
    for (int j = 0; j < n->nin; j++) {
        const IrValue *x = VAL(c, n->in[j]);
        strides_of(x, xs);
        if (ir_value_numel(x) > 0)
            cg_copy_values(c, node, j, n->out[0], at * ys[axis], ys, n->in[j], 0, xs, x->dims, x->rank);
        at += x->dims[axis];
    }
}

void cg_emit_split(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    int axis;
    const int64_t *sizes;
    IR_ASSERT(ir_split_sizes(c->g, node, &axis, &sizes) == 0);
    int64_t xs[IR_MAX_RANK], ys[IR_MAX_RANK], at = 0;
    strides_of(x, xs);
    cg_declare_outputs(c, node);
    for (int j = 0; j < n->nout; j++) {
        const IrValue *y = VAL(c, n->out[j]);
        strides_of(y, ys);
        if (ir_value_numel(y) > 0)
            cg_copy_values(c, node, j, n->out[j], 0, ys, n->in[0], at * xs[axis], xs, y->dims, y->rank);
        at += sizes[j];
    }
}

void cg_emit_expand(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *y = VAL(c, n->out[0]);
    int64_t xs[IR_MAX_RANK], ys[IR_MAX_RANK], st = 1;
    for (int d = y->rank - 1; d >= 0; d--) { // x's strides broadcast over y's dims (0 along a broadcast dim)
        int xd = d - (y->rank - x->rank);
        int64_t size = xd >= 0 ? x->dims[xd] : 1;
        xs[d] = size == 1 ? 0 : st;
        st *= size;
    }
    strides_of(y, ys);
    cg_declare_outputs(c, node);
    if (ir_value_numel(y) > 0) cg_copy_values(c, node, 0, n->out[0], 0, ys, n->in[0], 0, xs, y->dims, y->rank);
}
