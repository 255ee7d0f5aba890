/* The cpu target: its table of per-op emitters (indexed by IrOp) and the
 * emitters of data movement, indexing, normalization, softmax, reductions and
 * losses. Linear algebra, convolution, pooling, resampling and spectral ops
 * are in cg_cpu_linalg.c; elementwise ops in cg_elemwise.c; loom's internal
 * backward and optimizer ops in cg_cpu_grad.c. Each emitter
 * writes one kernel call of codegen/kernels/cpu/kernels.h (with its constant
 * arguments as static arrays) after declaring its outputs' pointers. */
#include <stdlib.h>
#include <string.h>

#include "cg_impl.h"
#include "kernels/cpu/kernels.h"
#include "ops_impl.h"

/* ---- helpers shared by the emitters of this file ---- */

static void strides_of(const IrValue *v, int64_t *s)
{
    int64_t st = 1;
    for (int d = v->rank - 1; d >= 0; d--) s[d] = st, st *= v->dims[d];
}

void cg_cpu_copy_expr(CgCtx *c, int node, int tag, const char *dst, const int64_t *dst_st, const char *src,
                      const int64_t *src_st, const int64_t *dims, int rank, int esize)
{
    char a[64], b[64], d[64], what[32];
    snprintf(what, sizeof what, "dst%d", tag);
    cg_i64_array(c, node, what, dst_st, rank, a, sizeof a);
    snprintf(what, sizeof what, "src%d", tag);
    cg_i64_array(c, node, what, src_st, rank, b, sizeof b);
    snprintf(what, sizeof what, "dims%d", tag);
    cg_i64_array(c, node, what, dims, rank, d, sizeof d);
    fprintf(c->f, "    k_copy_nd(%s, %s, %s, %s, %s, %d, %d);\n", dst, a, src, b, d, rank, esize);
}

static const char *float32_only(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    IrDType t = g->values[nd->in[0]].dtype;
    if (t == IR_F32) return NULL;
    snprintf(why, n, "%s of %s (float32 only)", ir_ops[nd->op].name, ir_dtype_name(t));
    return why;
}

/* Kernels that move bytes take any dtype with a size. */
static const char *sized_only(IrGraph *g, int node, char *why, size_t n)
{
    IrDType t = g->values[g->nodes[node].out[0]].dtype;
    if (ir_dtype_size(t) > 0 && t != IR_STRING) return NULL;
    snprintf(why, n, "%s of %s", ir_ops[g->nodes[node].op].name, ir_dtype_name(t));
    return why;
}

/* ---- views ---- */

void cg_emit_view(CgCtx *c, int node)
{
    char note[200];
    snprintf(note, sizeof note, ", the bytes of %s", c->var[NODE(c, node)->in[0]]);
    cg_declare_value(c, NODE(c, node)->out[0], note);
}

/* ---- data movement ---- */

static const char *check_tile(IrGraph *g, int node, char *why, size_t n)
{
    if (g->values[g->nodes[node].in[0]].rank * 2 <= K_MAX_RANK) return sized_only(g, node, why, n);
    snprintf(why, n, "Tile of rank over %d", K_MAX_RANK / 2);
    return why;
}

/* Tile as one copy over (repeat, dim) pairs: the output index of dim d is
 * r * in[d] + i, the input's i. */
static void emit_tile(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *y = VAL(c, n->out[0]);
    int64_t xs[IR_MAX_RANK], ys[IR_MAX_RANK], dims[K_MAX_RANK], dst[K_MAX_RANK], src[K_MAX_RANK];
    strides_of(x, xs);
    strides_of(y, ys);
    for (int d = 0; d < x->rank; d++) {
        dims[2 * d] = x->dims[d] ? y->dims[d] / x->dims[d] : 0;
        dims[2 * d + 1] = x->dims[d];
        dst[2 * d] = x->dims[d] * ys[d];
        dst[2 * d + 1] = ys[d];
        src[2 * d] = 0;
        src[2 * d + 1] = xs[d];
    }
    cg_declare_outputs(c, node);
    if (ir_value_numel(y) > 0) cg_copy_values(c, node, 0, n->out[0], 0, dst, n->in[0], 0, src, dims, 2 * x->rank);
}

static void emit_pad(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *y = VAL(c, n->out[0]);
    int64_t pads[2 * IR_MAX_RANK];
    int mode;
    char a[64], d[64], v[64];
    IR_ASSERT(ir_pad_params(c->g, node, pads, &mode) == 0);
    cg_declare_outputs(c, node);
    cg_i64_array(c, node, "pads", pads, 2 * x->rank, a, sizeof a);
    cg_i64_array(c, node, "dims", x->dims, x->rank, d, sizeof d);
    /* the fill value: input 2 (read at run time), the opset < 11 attribute, or zero */
    if (ir_in(n, 2) >= 0) {
        snprintf(v, sizeof v, "%s", c->var[n->in[2]]);
    } else if (ir_attr_find(n, "value")) {
        fprintf(c->f, "    static const %s pad_value_%d = %.17g;\n", x->dtype == IR_F64 ? "double" : "float",
                node, (double)ir_attr_float(n, "value", 0));
        snprintf(v, sizeof v, "&pad_value_%d", node);
    } else {
        fprintf(c->f, "    static const char pad_zero_%d[16] = {0};\n", node);
        snprintf(v, sizeof v, "pad_zero_%d", node);
    }
    fprintf(c->f, "    k_pad(%s, %s, %s, %d, %s, %d, %s, %d);\n", c->var[n->out[0]], c->var[n->in[0]], d,
            x->rank, a, mode, v, ir_dtype_size(y->dtype));
}

/* ---- indexing ---- */

static const char *check_index(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    IrDType t = g->values[nd->in[1]].dtype;
    if (t != IR_I64 && t != IR_I32) {
        snprintf(why, n, "%s with %s indices (int32 and int64 only)", ir_ops[nd->op].name, ir_dtype_name(t));
        return why;
    }
    return sized_only(g, node, why, n);
}

static void emit_gather(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *idx = VAL(c, n->in[1]), *y = VAL(c, n->out[0]);
    int axis = ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank);
    char call[512];
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "k_gather(%s, %s, %s, %d, %lld, %lld, %lld, %lld, %d)", c->var[n->out[0]],
             c->var[n->in[0]], c->var[n->in[1]], idx->dtype == IR_I32, (long long)cg_prod(x->dims, 0, axis),
             (long long)x->dims[axis], (long long)ir_value_numel(idx),
             (long long)cg_prod(x->dims, axis + 1, x->rank), ir_dtype_size(y->dtype));
    cg_check_call(c, node, call);
}

static void emit_gather_elements(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *idx = VAL(c, n->in[1]);
    char xd[64], dd[64], call[512];
    cg_declare_outputs(c, node);
    cg_i64_array(c, node, "xdims", x->dims, x->rank, xd, sizeof xd);
    cg_i64_array(c, node, "dims", idx->dims, idx->rank, dd, sizeof dd);
    snprintf(call, sizeof call, "k_gather_elements(%s, %s, %s, %s, %d, %s, %d, %d, %d)", c->var[n->out[0]],
             c->var[n->in[0]], xd, c->var[n->in[1]], idx->dtype == IR_I32, dd, idx->rank,
             ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank), ir_dtype_size(x->dtype));
    cg_check_call(c, node, call);
}

static const char *check_scatternd(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const char *red = ir_attr_string(nd, "reduction", "none");
    IrDType t = g->values[nd->in[0]].dtype;
    if (g->values[nd->in[1]].dtype != IR_I64) return "ScatterND with indices other than int64";
    if (strcmp(red, "none") && t != IR_F32 && t != IR_F64 && t != IR_I32 && t != IR_I64) {
        snprintf(why, n, "ScatterND reduction '%s' on %s", red, ir_dtype_name(t));
        return why;
    }
    return sized_only(g, node, why, n);
}

static void emit_scatternd(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *idx = VAL(c, n->in[1]);
    static const char *const reds[] = {"none", "add", "mul", "max", "min"};
    const char *red = ir_attr_string(n, "reduction", "none");
    int r = 0;
    for (int k = 0; k < 5; k++)
        if (!strcmp(red, reds[k])) r = k;
    int k = (int)idx->dims[idx->rank - 1];
    char xd[64], call[512];
    cg_declare_outputs(c, node);
    fprintf(c->f, "    memcpy(%s, %s, %lld);\n", c->var[n->out[0]], c->var[n->in[0]],
            (long long)ir_value_bytes(x));
    cg_i64_array(c, node, "dims", x->dims, x->rank, xd, sizeof xd);
    snprintf(call, sizeof call, "k_scatternd(%s, %s, %d, %s, %lld, %d, %s, %lld, %d, %d)", c->var[n->out[0]], xd,
             x->rank, c->var[n->in[1]], (long long)(ir_value_numel(idx) / (k ? k : 1)), k,
             c->var[n->in[2]], (long long)cg_prod(x->dims, k, x->rank), r, (int)x->dtype);
    cg_check_call(c, node, call);
}

/* k (input 1) is read at run time: it may be a graph input. */
static void emit_trilu(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    char k[160] = "0";
    if (ir_in(n, 1) >= 0)
        snprintf(k, sizeof k, VAL(c, n->in[1])->dtype == IR_I64 ? "%s[0]" : "(int64_t)%s[0]", c->var[n->in[1]]);
    int r = x->rank;
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_trilu(%s, %s, %lld, %lld, %lld, %s, %d, %d);\n", c->var[n->out[0]],
            c->var[n->in[0]], (long long)cg_prod(x->dims, 0, r - 2), (long long)x->dims[r - 2],
            (long long)x->dims[r - 1], k, ir_attr_int(n, "upper", 1) != 0, ir_dtype_size(x->dtype));
}

static void emit_const_of_shape(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *y = VAL(c, n->out[0]);
    const IrAttr *a = ir_attr_find(n, "value");
    const unsigned char *bytes = a ? c->g->values[a->u.tensor].data : NULL;
    int es = ir_dtype_size(y->dtype);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    static const unsigned char fill_%d[%d] = {", node, es);
    for (int k = 0; k < es; k++) fprintf(c->f, k ? ", %u" : "%u", bytes ? bytes[k] : 0);
    fprintf(c->f, "};\n    k_fill(%s, fill_%d, %lld, %d);\n", c->var[n->out[0]], node,
            (long long)ir_value_numel(y), es);
}

/* ---- normalization ---- */

static const char *check_layernorm(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[0]];
    int axis = ir_norm_axis(ir_attr_int(nd, "axis", -1), x->rank);
    int64_t cols = cg_prod(x->dims, axis, x->rank);
    for (int j = 1; j < nd->nin; j++)
        if (nd->in[j] >= 0 && ir_value_numel(&g->values[nd->in[j]]) != cols) {
            snprintf(why, n, "%s with a broadcast scale or bias", ir_ops[nd->op].name);
            return why;
        }
    return float32_only(g, node, why, n);
}

static void emit_rmsnorm(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    int axis = ir_norm_axis(ir_attr_int(n, "axis", -1), x->rank);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_rmsnorm_f32%s(%s, %s, %s, %lld, %lld, %s);\n",
            VAL(c, n->out[0])->dtype == IR_BF16 ? "_bf16out" : "", c->var[n->out[0]], c->var[n->in[0]],
            c->var[n->in[1]], (long long)cg_prod(x->dims, 0, axis), (long long)cg_prod(x->dims, axis, x->rank),
            CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
}

static void emit_layernorm(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    int axis = ir_norm_axis(ir_attr_int(n, "axis", -1), x->rank);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_layernorm_f32%s(%s, %s, %s, %s, %s, %s, %lld, %lld, %s);\n",
            VAL(c, n->out[0])->dtype == IR_BF16 ? "_bf16out" : "", c->var[n->out[0]],
            OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2),
            c->var[n->in[0]], c->var[n->in[1]], IN_OR_NULL(c, n, 2),
            (long long)cg_prod(x->dims, 0, axis), (long long)cg_prod(x->dims, axis, x->rank),
            CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
}

/* Training mode (opset 14+) normalizes with the batch statistics and may write
 * the updated running statistics; older opsets' extra outputs meant other
 * things and are refused. */
static const char *check_batchnorm(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    if (ir_attr_int(nd, "training_mode", 0) ? g->opset < 14 || nd->nout > 3 : nd->nout > 1)
        return "BatchNormalization with the extra outputs of opsets before 14";
    return float32_only(g, node, why, n);
}

static void emit_batchnorm(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    if (n->op != IR_OP_BatchNormalization) { // it opens node's fused group
        cg_elemwise_emit(c, node);
        return;
    }
    const IrValue *x = VAL(c, n->in[0]);
    long long N = (long long)x->dims[0], C = (long long)(x->rank > 1 ? x->dims[1] : 1);
    long long spatial = (long long)cg_prod(x->dims, 2, x->rank);
    cg_declare_outputs(c, node);
    if (ir_attr_int(n, "training_mode", 0)) {
        fprintf(c->f,
                "    k_batchnorm_train_f32(%s, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %s, %s);\n",
                c->var[n->out[0]], OUT_OR_NULL(c, n, 1),
                OUT_OR_NULL(c, n, 2), c->var[n->in[0]], c->var[n->in[1]],
                c->var[n->in[2]], c->var[n->in[3]], c->var[n->in[4]], N, C, spatial,
                CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)), CG_FLT(ir_attr_float(n, "momentum", 0.9f)));
        return;
    }
    fprintf(c->f, "    k_batchnorm_f32(%s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %s);\n",
            c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], c->var[n->in[3]],
            c->var[n->in[4]], N, C, spatial, CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
}

static const char *check_groupnorm(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[0]];
    if (nd->op == IR_OP_GroupNormalization && ir_value_numel(&g->values[nd->in[1]]) != x->dims[1])
        return "GroupNormalization with a scale per group (opset 18); per channel only";
    return float32_only(g, node, why, n);
}

static void emit_groupnorm(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    int64_t C = x->dims[1];
    int64_t groups = n->op == IR_OP_GroupNormalization ? ir_attr_int(n, "num_groups", 1) : C;
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_groupnorm_f32(%s, %s, %s, %s, %lld, %lld, %lld, %lld, %s);\n", c->var[n->out[0]],
            c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], (long long)x->dims[0], (long long)C,
            (long long)groups, (long long)cg_prod(x->dims, 2, x->rank), CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
}

/* ---- softmax, reductions, scans ---- */

static void emit_softmax(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    int new_form = c->g->opset >= 13;
    int axis = ir_norm_axis(ir_attr_int(n, "axis", new_form ? -1 : 1), x->rank);
    int64_t outer = cg_prod(x->dims, 0, axis);
    /* before opset 13 the input is coerced to 2-D at axis */
    int64_t len = new_form ? x->dims[axis] : cg_prod(x->dims, axis, x->rank);
    int64_t inner = new_form ? cg_prod(x->dims, axis + 1, x->rank) : 1;
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_softmax_f32(%s, %s, %lld, %lld, %lld, %d);\n", c->var[n->out[0]], c->var[n->in[0]],
            (long long)outer, (long long)len, (long long)inner, n->op == IR_OP_LogSoftmax);
}

static const char *check_reduce(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    IrDType t = g->values[nd->in[0]].dtype;
    if (t == IR_F32 || t == IR_F64 || t == IR_I32 || t == IR_I64) return NULL;
    snprintf(why, n, "%s of %s (float32, float64, int32, int64 only)", ir_ops[nd->op].name, ir_dtype_name(t));
    return why;
}

static void emit_reduce(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    unsigned char mask[IR_MAX_RANK];
    int noop;
    IR_ASSERT(ir_reduce_axes(c->g, node, mask, &noop) == 0);
    static const IrOp kinds[] = {IR_OP_ReduceSum, IR_OP_ReduceMean, IR_OP_ReduceMax, IR_OP_ReduceMin,
                                 IR_OP_ReduceProd, IR_OP_ReduceL1, IR_OP_ReduceL2,
                                 IR_OP_ReduceSumSquare, IR_OP_ReduceLogSumExp};
    int kind = 0;
    for (int k = 0; k < 9; k++)
        if (kinds[k] == n->op) kind = k;
    char d[64];
    cg_declare_outputs(c, node);
    if (noop) {
        fprintf(c->f, "    memcpy(%s, %s, %lld);\n", c->var[n->out[0]], c->var[n->in[0]],
                (long long)ir_value_bytes(x));
        return;
    }
    cg_i64_array(c, node, "dims", x->dims, x->rank, d, sizeof d);
    fprintf(c->f, "    static const int axes_%d[%d] = {", node, x->rank ? x->rank : 1);
    for (int k = 0; k < x->rank; k++) fprintf(c->f, k ? ", %d" : "%d", mask[k]);
    fprintf(c->f, "%s};\n", x->rank ? "" : "0");
    fprintf(c->f, "    k_reduce(%s, %s, %s, %d, axes_%d, %d, %d);\n", c->var[n->out[0]], c->var[n->in[0]], d,
            x->rank, node, kind, (int)x->dtype);
}

static void emit_argreduce(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    int axis = ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_argreduce(%s, %s, %lld, %lld, %lld, %d, %d, %d);\n", c->var[n->out[0]],
            c->var[n->in[0]], (long long)cg_prod(x->dims, 0, axis), (long long)x->dims[axis],
            (long long)cg_prod(x->dims, axis + 1, x->rank), n->op == IR_OP_ArgMax,
            ir_attr_int(n, "select_last_index", 0) != 0, (int)x->dtype);
}

static void emit_cumsum(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    int excl = ir_attr_int(n, "exclusive", 0) != 0, rev = ir_attr_int(n, "reverse", 0) != 0;
    double a;
    cg_declare_outputs(c, node);
    if (ir_const_scalar(c->g, n->in[1], &a) == 0) {
        int axis = ir_norm_axis((int64_t)a, x->rank);
        fprintf(c->f, "    k_cumsum(%s, %s, %lld, %lld, %lld, %d, %d, %d);\n", c->var[n->out[0]],
                c->var[n->in[0]], (long long)cg_prod(x->dims, 0, axis), (long long)x->dims[axis],
                (long long)cg_prod(x->dims, axis + 1, x->rank), excl, rev, (int)x->dtype);
        return;
    }
    // the axis is a graph input: the split of the dims around it is made at run time
    char dims[64];
    cg_i64_array(c, node, "dims", x->dims, x->rank, dims, sizeof dims);
    fprintf(c->f, "    int64_t ax_%d = (int64_t)%s[0], outer_%d = 1, inner_%d = 1;\n", node,
            c->var[n->in[1]], node, node);
    fprintf(c->f, "    if (ax_%d < -%d || ax_%d >= %d)\n        return rt_fail(\"node %%s (CumSum): axis %%lld "
                  "is out of range for rank %d\", ", node, x->rank, node, x->rank, x->rank);
    cg_cstr(c->f, n->name);
    fprintf(c->f, ", (long long)ax_%d);\n", node);
    fprintf(c->f, "    if (ax_%d < 0) ax_%d += %d;\n", node, node, x->rank);
    fprintf(c->f, "    for (int64_t k = 0; k < %d; k++) {\n"
                  "        if (k < ax_%d) outer_%d *= %s[k];\n"
                  "        if (k > ax_%d) inner_%d *= %s[k];\n    }\n",
            x->rank, node, node, dims, node, node, dims);
    fprintf(c->f, "    k_cumsum(%s, %s, outer_%d, %s[ax_%d], inner_%d, %d, %d, %d);\n", c->var[n->out[0]],
            c->var[n->in[0]], node, dims, node, node, excl, rev, (int)x->dtype);
}

static const char *check_cumsum(IrGraph *g, int node, char *why, size_t n)
{
    double a;
    const IrValue *ax = &g->values[g->nodes[node].in[1]];
    if (ir_const_scalar(g, g->nodes[node].in[1], &a) < 0) {
        if (ax->rank > 1 || ir_value_numel(ax) != 1 || (ax->dtype != IR_I32 && ax->dtype != IR_I64))
            return "CumSum whose axis is not one int32 or int64 value";
        if (g->values[g->nodes[node].in[0]].rank < 1) return "CumSum of a scalar";
    }
    return check_reduce(g, node, why, n);
}

/* ---- Dropout (training graphs; inference lowers it to a view) ---- */

static const char *check_dropout(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    double ratio = 0.5, train = 0;
    (void)why, (void)n;
    if (g->values[nd->in[0]].dtype != IR_F32) return "Dropout of other than float32";
    if (ir_in(nd, 1) >= 0 && ir_const_scalar(g, nd->in[1], &ratio) < 0)
        return "Dropout with a ratio computed at run time";
    if (!(ratio >= 0 && ratio < 1)) return "Dropout with a ratio outside [0, 1)";
    if (ir_in(nd, 2) >= 0 && ir_const_scalar(g, nd->in[2], &train) < 0)
        return "Dropout with a training_mode computed at run time";
    if (nd->nout > 1 && g->values[nd->out[1]].dtype != IR_BOOL)
        return "a Dropout mask of other than bool (opset < 10)";
    return NULL;
}

static void emit_dropout(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    double ratio = 0.5, train = 0;
    if (ir_in(n, 1) >= 0) IR_ASSERT(ir_const_scalar(c->g, n->in[1], &ratio) == 0);
    if (ir_in(n, 2) >= 0) IR_ASSERT(ir_const_scalar(c->g, n->in[2], &train) == 0);
    cg_declare_outputs(c, node);
    // training_mode false: ratio 0, everything kept (the mask all true)
    fprintf(c->f, "    k_dropout_f32(%s, %s, %s, %lld, %s, rt_train_rng_key, %dull); // masks from --seed and the step\n",
            c->var[n->out[0]], OUT_OR_NULL(c, n, 1), c->var[n->in[0]],
            (long long)ir_value_numel(VAL(c, n->in[0])), CG_FLT(train != 0 ? (float)ratio : 0.0f), node);
}

/* ---- losses ---- */

static const char *check_loss(IrGraph *g, int node, char *why, size_t n)
{
    if (g->values[g->nodes[node].in[1]].dtype != IR_I64) return "a loss with targets other than int64";
    return float32_only(g, node, why, n);
}

static void emit_loss(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    const char *red = ir_attr_string(n, "reduction", "mean");
    int r = !strcmp(red, "none") ? 0 : !strcmp(red, "sum") ? 1 : 2;
    int sce = n->op == IR_OP_SoftmaxCrossEntropyLoss;
    char call[640];
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "%s(%s, %s%s%s, %s, %s, %lld, %lld, %lld, %d, %lld, %d)",
             sce ? "k_sce_loss_f32" : "k_nll_loss_f32", c->var[n->out[0]],
             sce ? OUT_OR_NULL(c, n, 1) : "", sce ? ", " : "", c->var[n->in[0]],
             c->var[n->in[1]], IN_OR_NULL(c, n, 2), (long long)x->dims[0],
             (long long)(x->rank > 1 ? x->dims[1] : 1), (long long)cg_prod(x->dims, 2, x->rank), r,
             (long long)ir_attr_int(n, "ignore_index", 0), ir_attr_find(n, "ignore_index") != NULL);
    cg_check_call(c, node, call);
}

/* loom.ToHost, loom.FromHost: on the cpu target host and "device" memory are
 * the same memory, so a copy is a copy, in the step the schedule puts it. */
static void emit_host_copy(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int64_t dims[1] = {ir_value_numel(VAL(c, n->out[0]))}, st[1] = {1};
    cg_declare_outputs(c, node);
    fprintf(c->f, n->op == IR_OP_ToHost ? "    // offload: to host memory; %s's arena bytes are free after this step\n"
                                        : "    // offload: back from host memory for backward (was %s)\n",
            c->var[n->op == IR_OP_ToHost ? n->in[0] : n->out[0]]);
    if (dims[0] > 0) cg_copy_values(c, node, 0, n->out[0], 0, st, n->in[0], 0, st, dims, 1);
}

/* ---- the table ---- */

#define ELEM_ROW(op) [IR_OP_##op] = {cg_elemwise_check, NULL, cg_elemwise_emit, 0},

static const CgOpEmitter cpu_ops[IR_NOPS] = {
    [IR_OP_MatMul] = {cg_cpu_matmul_check, cg_cpu_matmul_ws, cg_cpu_matmul_emit, 0},
    [IR_OP_Gemm] = {cg_cpu_gemm_check, cg_cpu_gemm_ws, cg_cpu_gemm_emit, 0},
    [IR_OP_Einsum] = {cg_cpu_einsum_check, cg_cpu_einsum_ws, cg_cpu_einsum_emit, 0},
    [IR_OP_Conv] = {cg_cpu_conv_check, cg_cpu_conv_ws, cg_cpu_conv_emit, 0, 0, cg_cpu_conv_pack, cg_cpu_conv_emit_pack},
    [IR_OP_ConvTranspose] = {cg_cpu_conv_check, cg_cpu_conv_ws, cg_cpu_conv_emit, 0},
    [IR_OP_BatchNormalization] = {check_batchnorm, NULL, emit_batchnorm, 0},
    [IR_OP_LayerNormalization] = {check_layernorm, NULL, emit_layernorm, 0},
    [IR_OP_GroupNormalization] = {check_groupnorm, NULL, emit_groupnorm, 0},
    [IR_OP_InstanceNormalization] = {check_groupnorm, NULL, emit_groupnorm, 0},
    CG_ELEMWISE_OPS(ELEM_ROW)
    CG_VIEW_OPS(CG_VIEW_ROW)
    [IR_OP_Dropout] = {check_dropout, NULL, emit_dropout, 6},
    [IR_OP_Softmax] = {float32_only, NULL, emit_softmax, 0},
    [IR_OP_LogSoftmax] = {float32_only, NULL, emit_softmax, 0},
    [IR_OP_ReduceMean] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceSum] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceMax] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceMin] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceProd] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceL1] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceL2] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceSumSquare] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceLogSumExp] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ArgMax] = {check_reduce, NULL, emit_argreduce, 0},
    [IR_OP_ArgMin] = {check_reduce, NULL, emit_argreduce, 0},
    [IR_OP_CumSum] = {check_cumsum, NULL, emit_cumsum, 2},
    [IR_OP_Gather] = {check_index, NULL, emit_gather, 0},
    [IR_OP_GatherElements] = {check_index, NULL, emit_gather_elements, 0},
    [IR_OP_ScatterND] = {check_scatternd, NULL, emit_scatternd, 0},
    [IR_OP_Trilu] = {sized_only, NULL, emit_trilu, 0},
    [IR_OP_Transpose] = {sized_only, NULL, cg_emit_transpose, 0},
    [IR_OP_Concat] = {sized_only, NULL, cg_emit_concat, 0},
    [IR_OP_Split] = {sized_only, NULL, cg_emit_split, 2},
    [IR_OP_Slice] = {sized_only, NULL, cg_emit_slice, 2 | 4 | 8 | 16},
    [IR_OP_Expand] = {sized_only, NULL, cg_emit_expand, 2},
    [IR_OP_Tile] = {check_tile, NULL, emit_tile, 2},
    [IR_OP_Pad] = {sized_only, NULL, emit_pad, 2 | 8},
    [IR_OP_ConstantOfShape] = {sized_only, NULL, emit_const_of_shape, 1},
    [IR_OP_MaxPool] = {cg_cpu_pool_check, NULL, cg_cpu_pool_emit, 0},
    [IR_OP_AveragePool] = {cg_cpu_pool_check, NULL, cg_cpu_pool_emit, 0},
    [IR_OP_GlobalAveragePool] = {float32_only, NULL, cg_cpu_global_pool_emit, 0},
    [IR_OP_GlobalMaxPool] = {float32_only, NULL, cg_cpu_global_pool_emit, 0},
    [IR_OP_Resize] = {cg_cpu_resize_check, NULL, cg_cpu_resize_emit, 2 | 4 | 8},
    [IR_OP_DFT] = {cg_cpu_dft_check, NULL, cg_cpu_dft_emit, 2 | 4},
    [IR_OP_SoftmaxCrossEntropyLoss] = {check_loss, NULL, emit_loss, 0},
    [IR_OP_NegativeLogLikelihoodLoss] = {check_loss, NULL, emit_loss, 0},
    /* internal backward and optimizer ops (cg_cpu_grad.c) */
    [IR_OP_ActivationGrad] = {cg_cpu_activation_grad_check, NULL, cg_cpu_activation_grad_emit, 0, 3}, /* dx over dy or x */
    [IR_OP_SoftmaxGrad] = {cg_cpu_grad_f32_check, NULL, cg_cpu_softmax_grad_emit, 0},
    [IR_OP_LogSoftmaxGrad] = {cg_cpu_grad_f32_check, NULL, cg_cpu_softmax_grad_emit, 0},
    [IR_OP_LayerNormGrad] = {cg_cpu_layernorm_grad_check, cg_cpu_layernorm_grad_ws, cg_cpu_layernorm_grad_emit, 0},
    /* dx over dy: each channel's sums read dy before its dx is written */
    [IR_OP_BatchNormGrad] = {cg_cpu_grad_f32_check, NULL, cg_cpu_batchnorm_grad_emit, 0, 3}, /* dx over dy or x */
    [IR_OP_GroupNormGrad] = {cg_cpu_groupnorm_grad_check, cg_cpu_groupnorm_grad_ws, cg_cpu_groupnorm_grad_emit, 0},
    [IR_OP_InstanceNormGrad] = {cg_cpu_groupnorm_grad_check, cg_cpu_groupnorm_grad_ws, cg_cpu_groupnorm_grad_emit, 0},
    [IR_OP_ConvGradWeight] = {cg_cpu_window_grad_check, cg_cpu_conv_grad_weight_ws, cg_cpu_conv_grad_weight_emit, 0},
    [IR_OP_MaxPoolGrad] = {cg_cpu_window_grad_check, cg_cpu_maxpool_grad_ws, cg_cpu_pool_grad_emit, 0},
    [IR_OP_AveragePoolGrad] = {cg_cpu_window_grad_check, NULL, cg_cpu_pool_grad_emit, 0},
    [IR_OP_ResizeGrad] = {cg_cpu_resize_grad_check, NULL, cg_cpu_resize_grad_emit, 0},
    [IR_OP_GatherGrad] = {cg_cpu_gather_grad_check, NULL, cg_cpu_gather_grad_emit, 0},
    [IR_OP_GatherElementsGrad] = {cg_cpu_gather_grad_check, NULL, cg_cpu_gather_grad_emit, 0},
    [IR_OP_SliceGrad] = {cg_cpu_grad_f32_check, NULL, cg_cpu_slice_grad_emit, 0},
    [IR_OP_SoftmaxCrossEntropyLossGrad] = {cg_cpu_loss_grad_check, NULL, cg_cpu_loss_grad_emit, 0, 2}, /* dx over x */
    [IR_OP_NegativeLogLikelihoodLossGrad] = {cg_cpu_loss_grad_check, NULL, cg_cpu_loss_grad_emit, 0},
    [IR_OP_GlobalNorm] = {cg_cpu_grad_f32_check, NULL, cg_cpu_global_norm_emit, 0},
    [IR_OP_SGD] = {cg_cpu_update_check, NULL, cg_cpu_sgd_emit, 0},
    [IR_OP_AdamW] = {cg_cpu_update_check, NULL, cg_cpu_adamw_emit, 0},
    [IR_OP_Attention] = {cg_cpu_attention_check, cg_cpu_attention_ws, cg_cpu_attention_emit, 0},
    [IR_OP_AttentionGrad] = {cg_cpu_attention_check, cg_cpu_attention_ws, cg_cpu_attention_emit, 0},
    [IR_OP_LinearCrossEntropy] = {cg_cpu_linear_ce_check, cg_cpu_linear_ce_ws, cg_cpu_linear_ce_emit, 0},
    [IR_OP_RMSNorm] = {check_layernorm, NULL, emit_rmsnorm, 0},
    [IR_OP_RMSNormGrad] = {cg_cpu_layernorm_grad_check, cg_cpu_layernorm_grad_ws, cg_cpu_rmsnorm_grad_emit, 0},
    [IR_OP_ToHost] = {NULL, NULL, emit_host_copy, 0},
    [IR_OP_FromHost] = {NULL, NULL, emit_host_copy, 0},
};

static const char cpu_prelude[] =
    "#include <stdint.h>\n#include <tgmath.h>\n\n#include \"elemwise.h\"\n"
    "#include \"kernels.h\"\n#include \"model.h\"\n#include \"rt.h\"\n\n"
    "#include \"loops.h\" /* the fused loops that run on the kernels' threads */\n\n"
    "/* `make PROFILE=1` times every step (rt_prof_add); `infer --repeat N` prints them. */\n"
    "#ifdef LOOM_PROFILE\n"
    "#define PROF_START() double _pt = rt_now()\n"
    "#define PROF_STEP(k, name, op) (rt_prof_add((k), (name), (op), rt_now() - _pt), _pt = rt_now())\n"
    "#else\n#define PROF_START() ((void)0)\n#define PROF_STEP(k, name, op) ((void)0)\n#endif\n\n";

const CgTarget cg_target_cpu = {"cpu", cpu_ops, cg_cpu_conv_fuse, "rt_device_host", "kernels/", "model.c",
                                cpu_prelude, cg_cpu_makefile, "loops.h", cg_cpu_copy_expr, NULL, NULL};
