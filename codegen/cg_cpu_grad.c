/* cpu emitters of loom's internal ops (ir/train.h): the backward ops that
 * autodiff builds (activation, softmax, normalization, convolution weight,
 * pooling, Resize, Gather, Slice and loss gradients) and the optimizer
 * update (global norm, SGD, AdamW). Each writes one call of the kernels of
 * codegen/kernels/cpu/kgrad.c or kgrad_nn.c; window geometry comes from the
 * helpers the forward emitters use (cg_cpu_linalg.c), so a gradient and its
 * forward op cannot disagree on padding. An update writes in place: its
 * outputs ("next/X") have X's bytes (the memory plan aliases them), so the
 * kernel is given the output pointers. */
#include <string.h>

#include "cg_impl.h"
#include "ops_impl.h"

/* Every float operand float32: the kgrad kernels' type. */
const char *cg_cpu_grad_f32_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    for (int j = 0; j < nd->nout; j++) {
        IrDType t = g->values[nd->out[j]].dtype;
        if (t != IR_F32 && ir_dtype_is_float(t)) {
            snprintf(why, n, "%s of %s (float32 only)", ir_ops[nd->op].name, ir_dtype_name(t));
            return why;
        }
    }
    for (int i = 0; i < nd->nin; i++) {
        IrDType t = nd->in[i] >= 0 ? g->values[nd->in[i]].dtype : IR_F32;
        if (t == IR_BF16 && opt_reads_bf16(g, node, i)) continue; /* low-bit storage, widened at use */
        if (t != IR_F32 && ir_dtype_is_float(t)) {
            snprintf(why, n, "%s with a %s input (float32 only)", ir_ops[nd->op].name, ir_dtype_name(t));
            return why;
        }
    }
    return NULL;
}

/* The "shape" attribute (the forward input's dims) into d; its rank. */
static int shape_attr(const IrNode *n, int64_t *d)
{
    int64_t k;
    const int64_t *s = ir_attr_ints(n, "shape", &k);
    IR_ASSERT(s && k <= IR_MAX_RANK);
    memcpy(d, s, (size_t)k * sizeof *d);
    return (int)k;
}

static const char *ws_arg(CgCtx *c, int node, char *buf, size_t n)
{
    if (c->plan->ws_offset[node] >= 0) cg_ws_expr(c, node, buf, n);
    else snprintf(buf, n, "NULL");
    return buf;
}

/* ---- activations and softmax ---- */

const char *cg_cpu_activation_grad_check(IrGraph *g, int node, char *why, size_t n)
{
    const char *act = ir_attr_string(&g->nodes[node], "act", "");
    static const char *const known[] = {"Relu", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "HardSwish", "Gelu"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(act, known[i])) return cg_cpu_grad_f32_check(g, node, why, n);
    snprintf(why, n, "loom.ActivationGrad of '%s'", act);
    return why;
}

void cg_cpu_activation_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    if (n->op != IR_OP_ActivationGrad) { // it opens node's fused group (cg_ew_act_grad)
        cg_elemwise_emit(c, node);
        return;
    }
    const char *act = ir_attr_string(n, "act", "");
    const char *kind = "K_ACT_RELU";
    /* ONNX's attribute defaults, as the forward loops (cg_elemwise.c) use them */
    float alpha = 0, beta = 0, gamma = 0;
    if (!strcmp(act, "LeakyRelu")) {
        kind = "K_ACT_LEAKY_RELU", alpha = ir_attr_float(n, "alpha", 0.01f);
    } else if (!strcmp(act, "Elu")) {
        kind = "K_ACT_ELU", alpha = ir_attr_float(n, "alpha", 1.0f);
    } else if (!strcmp(act, "Selu")) {
        kind = "K_ACT_SELU", alpha = ir_attr_float(n, "alpha", 1.67326319217681884765625f);
        gamma = ir_attr_float(n, "gamma", 1.05070102214813232421875f);
    } else if (!strcmp(act, "HardSigmoid")) {
        kind = "K_ACT_HARD_SIGMOID", alpha = ir_attr_float(n, "alpha", 0.2f);
        beta = ir_attr_float(n, "beta", 0.5f);
    } else if (!strcmp(act, "HardSwish")) {
        kind = "K_ACT_HARD_SWISH";
    } else if (!strcmp(act, "Gelu")) {
        kind = strcmp(ir_attr_string(n, "approximate", "none"), "tanh") ? "K_ACT_GELU" : "K_ACT_GELU_TANH";
    }
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_activation_grad_f32(%s, %s, %s, %lld, %s, %s, %s, %s);\n", c->var[n->out[0]],
            c->var[n->in[0]], c->var[n->in[1]], (long long)ir_value_numel(VAL(c, n->out[0])), kind,
            CG_FLT(alpha), CG_FLT(beta), CG_FLT(gamma));
}

void cg_cpu_softmax_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *y = VAL(c, n->in[1]);
    int a = ir_norm_axis(ir_attr_int(n, "axis", -1), y->rank);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_softmax_grad_f32(%s, %s, %s, %lld, %lld, %lld, %d);\n", c->var[n->out[0]],
            c->var[n->in[0]], c->var[n->in[1]], (long long)cg_prod(y->dims, 0, a), (long long)y->dims[a],
            (long long)cg_prod(y->dims, a + 1, y->rank), n->op == IR_OP_LogSoftmaxGrad);
}

/* ---- normalization ---- */

const char *cg_cpu_layernorm_grad_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[1]];
    int a = ir_norm_axis(ir_attr_int(nd, "axis", -1), x->rank);
    if (ir_value_numel(&g->values[nd->in[2]]) != cg_prod(x->dims, a, x->rank)) {
        snprintf(why, n, "%s with a broadcast scale", ir_ops[nd->op].name);
        return why;
    }
    return cg_cpu_grad_f32_check(g, node, why, n);
}

int64_t cg_cpu_layernorm_grad_ws(IrGraph *g, int node)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[1]];
    int a = ir_norm_axis(ir_attr_int(nd, "axis", -1), x->rank);
    return (int64_t)k_layernorm_grad_f32_ws(cg_prod(x->dims, 0, a));
}

void cg_cpu_layernorm_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[1]);
    int a = ir_norm_axis(ir_attr_int(n, "axis", -1), x->rank);
    char ws[64];
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_layernorm_grad_f32(%s, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %s, %s);\n",
            c->var[n->out[0]], OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]],
            c->var[n->in[1]], c->var[n->in[2]], IN_OR_NULL(c, n, 3), IN_OR_NULL(c, n, 4),
            (long long)cg_prod(x->dims, 0, a), (long long)cg_prod(x->dims, a, x->rank),
            CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)), ws_arg(c, node, ws, sizeof ws));
}

void cg_cpu_rmsnorm_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[1]);
    int a = ir_norm_axis(ir_attr_int(n, "axis", -1), x->rank);
    char ws[64];
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_rmsnorm_grad_f32(%s, %s, %s, %s, %s, %lld, %lld, %s, %s);\n", c->var[n->out[0]],
            OUT_OR_NULL(c, n, 1), c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]],
            (long long)cg_prod(x->dims, 0, a), (long long)cg_prod(x->dims, a, x->rank),
            CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)), ws_arg(c, node, ws, sizeof ws));
}

void cg_cpu_batchnorm_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[1]);
    cg_declare_outputs(c, node);
    const char *xt = x->dtype == IR_BF16 ? "bf16x" : "f32"; // bf16x: low-bit storage, widened at use
    if (ir_attr_int(n, "relu", 0)) { // the gradient of Relu(BatchNormalization(x)) (ir_fold_bn_relu_grad)
        fprintf(c->f, "    k_batchnorm_relu_grad_%s(%s, %s, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %s);\n", xt,
                c->var[n->out[0]], OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]],
                c->var[n->in[1]], c->var[n->in[2]], c->var[n->in[5]], c->var[n->in[3]], c->var[n->in[4]],
                (long long)x->dims[0], (long long)x->dims[1], (long long)cg_prod(x->dims, 2, x->rank),
                CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
        return;
    }
    if (x->dtype == IR_BF16) { // given statistics only (opt_reads_bf16)
        fprintf(c->f, "    k_batchnorm_grad_bf16x(%s, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %s);\n",
                c->var[n->out[0]], OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]],
                c->var[n->in[1]], IN_OR_NULL(c, n, 2), c->var[n->in[3]], c->var[n->in[4]], (long long)x->dims[0],
                (long long)(x->rank > 1 ? x->dims[1] : 1), (long long)cg_prod(x->dims, 2, x->rank),
                CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
        return;
    }
    fprintf(c->f, "    k_batchnorm_grad_f32(%s, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %s, %d);\n",
            c->var[n->out[0]], OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]],
            c->var[n->in[1]], c->var[n->in[2]], c->var[n->in[3]], c->var[n->in[4]], (long long)x->dims[0],
            (long long)(x->rank > 1 ? x->dims[1] : 1), (long long)cg_prod(x->dims, 2, x->rank),
            CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)), ir_attr_int(n, "training_mode", 0) != 0);
}

static int64_t groups_of(const IrNode *n, const IrValue *x)
{
    return n->op == IR_OP_GroupNormGrad ? ir_attr_int(n, "num_groups", 1) : x->dims[1];
}

const char *cg_cpu_groupnorm_grad_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[1]];
    int64_t groups = groups_of(nd, x);
    if (ir_value_numel(&g->values[nd->in[2]]) != x->dims[1] || groups <= 0 || x->dims[1] % groups)
        return "a group norm gradient with a scale per group, or groups that do not divide the channels";
    return cg_cpu_grad_f32_check(g, node, why, n);
}

int64_t cg_cpu_groupnorm_grad_ws(IrGraph *g, int node)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[1]];
    return (int64_t)k_groupnorm_grad_f32_ws(x->dims[0], groups_of(nd, x));
}

void cg_cpu_groupnorm_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[1]);
    char ws[64];
    cg_declare_outputs(c, node);
    fprintf(c->f, "    k_groupnorm_grad_f32(%s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %lld, %s, %s);\n",
            c->var[n->out[0]], OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]],
            c->var[n->in[1]], c->var[n->in[2]], (long long)x->dims[0], (long long)x->dims[1],
            (long long)groups_of(n, x), (long long)cg_prod(x->dims, 2, x->rank),
            CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)), ws_arg(c, node, ws, sizeof ws));
}

/* ---- convolution and pooling ---- */

/* The forward Conv of a loom.ConvGradWeight (dy, x) -> dw: x -> dy through dw. */
static void conv_grad_params(IrGraph *g, int node, KConv *p)
{
    const IrNode *n = &g->nodes[node];
    const IrValue *dy = &g->values[n->in[0]], *x = &g->values[n->in[1]];
    int64_t w[IR_MAX_RANK];
    shape_attr(n, w);
    memset(p, 0, sizeof *p);
    p->nd = x->rank - 2;
    p->N = x->dims[0];
    p->C = x->dims[1];
    p->M = dy->dims[1];
    p->group = ir_attr_int(n, "group", 1);
    for (int i = 0; i < p->nd; i++) {
        p->in[i] = x->dims[2 + i];
        p->out[i] = dy->dims[2 + i];
        p->k[i] = w[2 + i];
    }
    cg_cpu_window(n, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
}

const char *cg_cpu_window_grad_check(IrGraph *g, int node, char *why, size_t n)
{
    int r = g->values[g->nodes[node].in[0]].rank;
    if (r < 3 || r > 5) return "a window gradient over other than 1 to 3 spatial dims";
    return cg_cpu_grad_f32_check(g, node, why, n);
}

int64_t cg_cpu_conv_grad_weight_ws(IrGraph *g, int node)
{
    KConv p;
    conv_grad_params(g, node, &p);
    return (int64_t)(g->nodes[node].nin == 6 ? k_conv_grad_weight_bn_relu_f32_ws(&p) : k_conv_grad_weight_f32_ws(&p));
}

void cg_cpu_conv_grad_weight_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    KConv p;
    char ws[64];
    conv_grad_params(c->g, node, &p);
    cg_declare_outputs(c, node);
    cg_cpu_kconv_decl(c, node, &p);
    if (n->nin == 6) // x's place taken by Relu(BatchNormalization(x)) (ir_fold_bn_relu_grad)
        fprintf(c->f, "    k_conv_grad_weight_bn_relu_%s(%s, %s, %s, %s, %s, %s, %s, %s, &conv_%d, %s);\n",
                VAL(c, n->in[1])->dtype == IR_BF16 ? "bf16x" : "f32", // low-bit storage
                c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], c->var[n->in[3]],
                c->var[n->in[4]], c->var[n->in[5]], CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)), node,
                ws_arg(c, node, ws, sizeof ws));
    else
        fprintf(c->f, "    k_conv_grad_weight_f32(%s, %s, %s, &conv_%d, %s);\n", c->var[n->out[0]],
                c->var[n->in[0]], c->var[n->in[1]], node, ws_arg(c, node, ws, sizeof ws));
}

/* The forward pooling window of a MaxPoolGrad (x = input 1) or an
 * AveragePoolGrad (x's dims in "shape"), to dy. */
static void pool_grad_params(IrGraph *g, int node, KPool *p)
{
    const IrNode *n = &g->nodes[node];
    const IrValue *dy = &g->values[n->in[0]];
    int64_t xd[IR_MAX_RANK];
    if (n->op == IR_OP_MaxPoolGrad) memcpy(xd, g->values[n->in[1]].dims, sizeof xd);
    else shape_attr(n, xd);
    cg_cpu_pool_params(g, node, xd, dy->dims, dy->rank, p);
}

int64_t cg_cpu_maxpool_grad_ws(IrGraph *g, int node)
{
    KPool p;
    pool_grad_params(g, node, &p);
    return (int64_t)(g->nodes[node].nin == 7 ? k_maxpool_grad_bn_relu_f32_ws(&p) : k_maxpool_grad_f32_ws(&p));
}

void cg_cpu_pool_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    KPool p;
    char ws[64];
    pool_grad_params(c->g, node, &p);
    cg_declare_outputs(c, node);
    cg_cpu_kpool_decl(c, node, &p);
    if (n->op == IR_OP_MaxPoolGrad && n->nin == 7) // maxima of Relu(BatchNormalization(x)) (ir_fold_bn_relu_grad)
        fprintf(c->f, "    k_maxpool_grad_bn_relu_f32(%s, %s, %s, %s, %s, %s, %s, %s, %lld, &pool_%d, %s);\n",
                c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[3]], c->var[n->in[4]],
                c->var[n->in[5]], c->var[n->in[6]], CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)),
                (long long)VAL(c, n->in[1])->dims[1], node, ws_arg(c, node, ws, sizeof ws));
    else if (n->op == IR_OP_MaxPoolGrad)
        fprintf(c->f, "    k_maxpool_grad_f32(%s, %s, %s, &pool_%d, %s);\n", c->var[n->out[0]],
                c->var[n->in[0]], c->var[n->in[1]], node, ws_arg(c, node, ws, sizeof ws));
    else
        fprintf(c->f, "    k_avgpool_grad_f32(%s, %s, &pool_%d);\n", c->var[n->out[0]], c->var[n->in[0]],
                node);
}

/* ---- Resize, Gather, GatherElements, Slice ---- */

const char *cg_cpu_resize_grad_check(IrGraph *g, int node, char *why, size_t n)
{
    const char *mode = ir_attr_string(&g->nodes[node], "mode", "nearest");
    const char *coord = ir_attr_string(&g->nodes[node], "coordinate_transformation_mode", "half_pixel");
    if (strcmp(mode, "nearest") && strcmp(mode, "linear")) {
        snprintf(why, n, "loom.ResizeGrad of mode '%s' (nearest and linear only)", mode);
        return why;
    }
    if (!strcmp(coord, "tf_crop_and_resize")) return "loom.ResizeGrad of tf_crop_and_resize";
    return cg_cpu_grad_f32_check(g, node, why, n);
}

void cg_cpu_resize_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *dy = VAL(c, n->in[0]);
    int64_t xd[IR_MAX_RANK], ns;
    int r = shape_attr(n, xd), mode, coord, nearest;
    const float *scales = ir_attr_floats(n, "scales", &ns);
    char a[48], b[48];
    cg_cpu_resize_modes(n, &mode, &coord, &nearest);
    cg_declare_outputs(c, node);
    cg_i64_array(c, node, "in", xd, r, a, sizeof a);
    cg_i64_array(c, node, "out", dy->dims, r, b, sizeof b);
    fprintf(c->f, "    static const float scale_%d[%d] = {", node, r);
    for (int d = 0; d < r; d++) fprintf(c->f, d ? ", %s" : "%s", CG_FLT(scales[d]));
    fprintf(c->f, "};\n    k_resize_grad_f32(%s, %s, %s, %s, %d, scale_%d, %d, %d, %d);\n",
            c->var[n->out[0]], c->var[n->in[0]], a, b, r, node, mode, coord, nearest);
}

const char *cg_cpu_gather_grad_check(IrGraph *g, int node, char *why, size_t n)
{
    IrDType t = g->values[g->nodes[node].in[1]].dtype;
    if (t != IR_I64 && t != IR_I32) {
        snprintf(why, n, "%s with %s indices (int32 and int64 only)", ir_ops[g->nodes[node].op].name,
                 ir_dtype_name(t));
        return why;
    }
    return cg_cpu_grad_f32_check(g, node, why, n);
}

void cg_cpu_gather_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *idx = VAL(c, n->in[1]);
    int64_t xd[IR_MAX_RANK];
    int r = shape_attr(n, xd), axis = ir_norm_axis(ir_attr_int(n, "axis", 0), r);
    char call[512];
    cg_declare_outputs(c, node);
    if (n->op == IR_OP_GatherGrad) {
        snprintf(call, sizeof call, "k_gather_grad_f32(%s, %s, %s, %d, %lld, %lld, %lld, %lld)",
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], idx->dtype == IR_I32,
                 (long long)cg_prod(xd, 0, axis), (long long)xd[axis], (long long)ir_value_numel(idx),
                 (long long)cg_prod(xd, axis + 1, r));
    } else {
        char a[48], b[48];
        cg_i64_array(c, node, "xdims", xd, r, a, sizeof a);
        cg_i64_array(c, node, "dims", idx->dims, idx->rank, b, sizeof b);
        snprintf(call, sizeof call, "k_gather_elements_grad_f32(%s, %s, %s, %s, %d, %s, %d, %d)",
                 c->var[n->out[0]], a, c->var[n->in[0]], c->var[n->in[1]], idx->dtype == IR_I32, b,
                 idx->rank, axis);
    }
    cg_check_call(c, node, call);
}

void cg_cpu_slice_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *dy = VAL(c, n->in[0]);
    int64_t xd[IR_MAX_RANK], ns;
    int r = shape_attr(n, xd);
    const int64_t *starts = ir_attr_ints(n, "starts", &ns), *steps = ir_attr_ints(n, "steps", &ns);
    char a[48], b[48], s0[48], s1[48];
    cg_declare_outputs(c, node);
    cg_i64_array(c, node, "xdims", xd, r, a, sizeof a);
    cg_i64_array(c, node, "dims", dy->dims, r, b, sizeof b);
    cg_i64_array(c, node, "starts", starts, r, s0, sizeof s0);
    cg_i64_array(c, node, "steps", steps, r, s1, sizeof s1);
    fprintf(c->f, "    k_slice_grad_f32(%s, %s, %s, %s, %d, %s, %s);\n", c->var[n->out[0]], a,
            c->var[n->in[0]], b, r, s0, s1);
}

/* ---- losses ---- */

const char *cg_cpu_loss_grad_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    int li = nd->op == IR_OP_SoftmaxCrossEntropyLossGrad ? 2 : 1;
    if (g->values[nd->in[li]].dtype != IR_I64) return "a loss gradient with targets other than int64";
    return cg_cpu_grad_f32_check(g, node, why, n);
}

void cg_cpu_loss_grad_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->out[0]);
    const char *red = ir_attr_string(n, "reduction", "mean");
    int r = !strcmp(red, "none") ? 0 : !strcmp(red, "sum") ? 1 : 2;
    int has_ignore = ir_attr_find(n, "ignore_index") != NULL;
    long long N = (long long)x->dims[0], C = (long long)(x->rank > 1 ? x->dims[1] : 1);
    long long d = (long long)cg_prod(x->dims, 2, x->rank), ig = (long long)ir_attr_int(n, "ignore_index", 0);
    char call[640];
    cg_declare_outputs(c, node);
    if (n->op == IR_OP_SoftmaxCrossEntropyLossGrad)
        snprintf(call, sizeof call, "k_sce_loss_grad_f32(%s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %d, %lld, %d)",
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], IN_OR_NULL(c, n, 4),
                 c->var[n->in[2]], IN_OR_NULL(c, n, 3), N, C, d, r, ig, has_ignore);
    else
        snprintf(call, sizeof call, "k_nll_loss_grad_f32(%s, %s, %s, %s, %lld, %lld, %lld, %d, %lld, %d)",
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], IN_OR_NULL(c, n, 2), N, C, d, r,
                 ig, has_ignore);
    cg_check_call(c, node, call);
}

/* ---- the optimizer update ---- */

void cg_cpu_global_norm_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    const float *norm_in_%d[%d] = {", node, n->nin);
    for (int i = 0; i < n->nin; i++) fprintf(c->f, i ? ", %s" : "%s", c->var[n->in[i]]);
    fprintf(c->f, "};\n    static const int64_t norm_n_%d[%d] = {", node, n->nin);
    for (int i = 0; i < n->nin; i++)
        fprintf(c->f, i ? ", %lld" : "%lld", (long long)ir_value_numel(VAL(c, n->in[i])));
    fprintf(c->f, "};\n    k_global_norm_f32(%s, norm_in_%d, norm_n_%d, %d);\n", c->var[n->out[0]], node,
            node, n->nin);
}

const char *cg_cpu_update_check(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    for (int j = 0; j < nd->nout; j++)
        if (g->values[nd->out[j]].alias < 0) return "an optimizer update that does not write in place";
    return cg_cpu_grad_f32_check(g, node, why, n);
}

/* The scalar input i as a C expression ("opt_lr[0]"): read when the update runs. */
static const char *scalar_arg(CgCtx *c, const IrNode *n, int i, char *buf, size_t len)
{
    snprintf(buf, len, "%s[0]", c->var[n->in[i]]);
    return buf;
}

void cg_cpu_sgd_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    char lr[160];
    cg_declare_outputs(c, node);
    fprintf(c->f, "    if (isfinite(%s[0])) // no update when the loss is not finite\n", c->var[n->in[3]]);
    fprintf(c->f, "        k_sgd_f32(%s, %s, %s, %s, %s, %lld, %s, %s, %d);\n", c->var[n->out[0]],
            OUT_OR_NULL(c, n, 1), c->var[n->in[1]], scalar_arg(c, n, 2, lr, sizeof lr), IN_OR_NULL(c, n, 5),
            (long long)ir_value_numel(VAL(c, n->in[0])), CG_FLT(ir_attr_float(n, "momentum", 0)),
            CG_FLT(ir_attr_float(n, "weight_decay", 0)), ir_attr_int(n, "nesterov", 0) != 0);
}

void cg_cpu_adamw_emit(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    char lr[160], step[160];
    cg_declare_outputs(c, node);
    fprintf(c->f, "    if (isfinite(%s[0])) // no update when the loss is not finite\n", c->var[n->in[6]]);
    fprintf(c->f, "        k_adamw_f32(%s, %s, %s, %s, %s, %s, %s, %lld, %s, %s, %s, %s);\n", c->var[n->out[0]],
            c->var[n->out[1]], c->var[n->out[2]], c->var[n->in[1]], scalar_arg(c, n, 4, lr, sizeof lr),
            scalar_arg(c, n, 5, step, sizeof step), IN_OR_NULL(c, n, 7),
            (long long)ir_value_numel(VAL(c, n->in[0])), CG_FLT(ir_attr_float(n, "beta1", 0.9f)),
            CG_FLT(ir_attr_float(n, "beta2", 0.999f)), CG_FLT(ir_attr_float(n, "epsilon", 1e-8f)),
            CG_FLT(ir_attr_float(n, "weight_decay", 0.01f)));
}
