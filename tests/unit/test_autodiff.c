/* The training graph (ir/train.h): loss, reverse-mode autodiff and the
 * optimizer update.
 *   - numeric: small float64 graphs of ops the host evaluator (ir/eval.c)
 *     computes, or that float64 references here compute (Conv, ConvTranspose
 *     and loom.ConvGradWeight, the global pools, Dropout with a fixed mask,
 *     DFT); the gradient nodes are evaluated and compared with central
 *     finite differences of the loss (relative error < 1e-6). Gradients that
 *     use other internal loom.* ops are checked for structure here; their
 *     numbers come with the cpu kernels (test_kcpu_grad.c).
 *   - coverage: every op the gradient table marks differentiable must have
 *     passed one of the two (test_every_grad_checked).
 *   - structure: every parameter gets exactly one gradient "grad/P" of its
 *     shape and dtype, frozen and unreachable ones none, the graph verifies,
 *     shapes re-infer, forward nodes are untouched; on hand graphs and on
 *     every zoo model.
 *   - refusals: an op without a gradient on the loss path, internal op names
 *     in a model. */
#include <math.h>
#include <regex.h>
#include <stdlib.h>

#include "check.h"
#include "frontend.h"
#include "ir.h"
#include "train.h"

#define D(...) ((int64_t[]){__VA_ARGS__})
#define I(...) ((int[]){__VA_ARGS__})
#define NI(...) (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int))

static uint64_t rng = 88172645463325252ull;
static double urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static IrGraph *G(void)
{
    IrGraph *g = ir_graph_new("t.onnx");
    g->opset = 17;
    return g;
}

/* A float64 value of `role` with random contents in [lo, lo + 1). */
static int fval(IrGraph *g, const char *name, IrRole role, int rank, const int64_t *dims, double lo)
{
    int v = ir_value_new(g, name, role);
    ir_value_set_shape(&g->values[v], IR_F64, rank, dims);
    int64_t n = ir_value_numel(&g->values[v]);
    double *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = lo + urand();
    ir_value_set_data(g, v, p);
    return v;
}
#define PARAM(name, lo, ...) fval(g, name, IR_PARAM, NI(__VA_ARGS__) ? (int)(sizeof(D(__VA_ARGS__)) / 8) : 0, D(__VA_ARGS__), lo)
#define CONSTF(name, lo, ...) fval(g, name, IR_CONST, (int)(sizeof(D(__VA_ARGS__)) / 8), D(__VA_ARGS__), lo)

static int ints(IrGraph *g, int n, const int64_t *v)
{
    int id = ir_value_new(g, ir_unique_name(g, "k"), IR_CONST);
    ir_value_set_shape(&g->values[id], IR_I64, 1, (int64_t[]){n});
    int64_t *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    memcpy(p, v, (size_t)n * sizeof *p);
    ir_value_set_data(g, id, p);
    return id;
}
#define INTS(...) ints(g, NI(__VA_ARGS__), D(__VA_ARGS__))

static int last_node;
/* A node with one output; returns the output value (attributes on last_node). */
static int mk(IrGraph *g, IrOp op, int nin, const int *in)
{
    int out = ir_value_new(g, ir_unique_name(g, "y"), IR_ACTIVATION);
    last_node = ir_node_new(g, op, NULL, nin, in, 1, &out);
    return out;
}
#define OP(op, ...) mk(g, IR_OP_##op, NI(__VA_ARGS__), I(__VA_ARGS__))
#define ATTR_I(name, v) ir_attr_set_int(g, last_node, name, v)
#define ATTR_IS(name, ...) ir_attr_set_ints(g, last_node, name, NI(__VA_ARGS__), D(__VA_ARGS__))

static int infer_all(IrGraph *g)
{
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead && ir_infer_node(g, i) < 0) return -1;
    return 0;
}

/* The scalar loss sum(y) as the model's output. */
static void set_loss(IrGraph *g, int y)
{
    int s = OP(ReduceSum, y);
    ATTR_I("keepdims", 0);
    g->outputs = realloc(g->outputs, (g->noutputs + 1) * sizeof(int));
    g->outputs[g->noutputs++] = s;
    g->values[s].is_output = 1;
}

/* ---- float64 references of the forward ops the evaluator lacks ---- */

/* The output of node i, allocated for its inferred shape, zeroed. */
static double *out_data(IrGraph *g, int i, int j)
{
    IrValue *y = &g->values[g->nodes[i].out[j]];
    double *p = calloc((size_t)(ir_value_numel(y) ? ir_value_numel(y) : 1), sizeof *p);
    ir_value_set_data(g, g->nodes[i].out[j], p);
    return p;
}

/* Conv and ConvTranspose over up to 3 spatial dims (explicit pads or auto_pad
 * SAME_UPPER): "lo" is the side the window slides over with the stride (Conv's
 * output, ConvTranspose's input); lo index o and tap t meet hi index
 * o * stride - pad + t * dilation. */
static void ref_conv(IrGraph *g, int i)
{
    const IrNode *n = &g->nodes[i];
    int tr = n->op == IR_OP_ConvTranspose, gw = n->op == IR_OP_ConvGradWeight;
    /* loom.ConvGradWeight (dy, x) -> dw: the same sums with dy as the lo side */
    const IrValue *xv = &g->values[n->in[gw ? 1 : 0]], *wv = &g->values[n->in[gw ? 0 : 1]];
    const IrValue *yv = &g->values[n->out[0]];
    if (gw) wv = yv, yv = &g->values[n->in[0]];
    const double *x = xv->data, *w = wv->data, *b = ir_in(n, 2) >= 0 ? g->values[n->in[2]].data : NULL;
    double *y = gw ? NULL : out_data(g, i, 0), *dw = gw ? out_data(g, i, 0) : NULL;
    const double *dy = gw ? yv->data : NULL;
    int k = xv->rank - 2;
    int64_t cnt, st[3] = {1, 1, 1}, dl[3] = {1, 1, 1}, pd[3] = {0, 0, 0}, ks[3] = {1, 1, 1};
    int64_t lo[3] = {1, 1, 1}, hi[3] = {1, 1, 1};
    const int64_t *a = ir_attr_ints(n, "strides", &cnt), *d = ir_attr_ints(n, "dilations", &cnt);
    const int64_t *p = ir_attr_ints(n, "pads", &cnt);
    const IrValue *lov = tr ? xv : yv, *hiv = tr ? yv : xv;
    for (int s = 0; s < k; s++) {
        st[s] = a ? a[s] : 1, dl[s] = d ? d[s] : 1, ks[s] = wv->dims[2 + s];
        lo[s] = lov->dims[2 + s], hi[s] = hiv->dims[2 + s];
        pd[s] = p ? p[s] : 0;
        if (!strcmp(ir_attr_string(n, "auto_pad", "NOTSET"), "SAME_UPPER")) {
            int64_t total = (lo[s] - 1) * st[s] + (ks[s] - 1) * dl[s] + 1 - hi[s];
            pd[s] = total > 0 ? total / 2 : 0;
        }
    }
    int64_t grp = ir_attr_int(n, "group", 1), N = xv->dims[0];
    int64_t Cl = tr ? xv->dims[1] : yv->dims[1], Ch = tr ? yv->dims[1] : xv->dims[1];
    int64_t Clg = Cl / grp, Chg = Ch / grp, L = lo[0] * lo[1] * lo[2], H = hi[0] * hi[1] * hi[2];
    int64_t K = ks[0] * ks[1] * ks[2];
    for (int64_t nn = 0; nn < N; nn++)
        for (int64_t cl = 0; cl < Cl; cl++)
            for (int64_t ch = (cl / Clg) * Chg; ch < (cl / Clg + 1) * Chg; ch++)
                for (int64_t o = 0; o < L; o++)
                    for (int64_t t = 0; t < K; t++) {
                        int64_t oi[3] = {o / (lo[1] * lo[2]), o / lo[2] % lo[1], o % lo[2]};
                        int64_t ti[3] = {t / (ks[1] * ks[2]), t / ks[2] % ks[1], t % ks[2]};
                        int64_t h = 0, ok = 1;
                        for (int s = 0; s < 3; s++) {
                            int64_t q = oi[s] * st[s] - pd[s] + ti[s] * dl[s];
                            ok &= q >= 0 && q < hi[s];
                            h = h * hi[s] + q;
                        }
                        if (!ok) continue;
                        int64_t wi = (cl * Chg + ch % Chg) * K + t; /* w is [Cl, Ch / group, taps] */
                        if (gw) {
                            dw[wi] += dy[(nn * Cl + cl) * L + o] * x[(nn * Ch + ch) * H + h];
                            continue;
                        }
                        double wt = w[wi];
                        if (tr) y[(nn * Ch + ch) * H + h] += x[(nn * Cl + cl) * L + o] * wt;
                        else y[(nn * Cl + cl) * L + o] += x[(nn * Ch + ch) * H + h] * wt;
                    }
    int64_t sp = tr ? H : L;
    for (int64_t j = 0; b && j < ir_value_numel(yv); j++) y[j] += b[j / sp % yv->dims[1]];
}
/* GlobalAveragePool, GlobalMaxPool over the spatial axes. */
static void ref_global_pool(IrGraph *g, int i)
{
    const IrNode *n = &g->nodes[i];
    const IrValue *xv = &g->values[n->in[0]];
    const double *x = xv->data;
    double *y = out_data(g, i, 0);
    int64_t S = ir_value_numel(xv) / (xv->dims[0] * xv->dims[1]);
    for (int64_t r = 0; r < xv->dims[0] * xv->dims[1]; r++) {
        double acc = n->op == IR_OP_GlobalMaxPool ? -INFINITY : 0;
        for (int64_t j = 0; j < S; j++)
            acc = n->op == IR_OP_GlobalMaxPool ? fmax(acc, x[r * S + j]) : acc + x[r * S + j] / (double)S;
        y[r] = acc;
    }
}

/* Dropout in training mode with a fixed mask (every third element dropped),
 * so that finite differences see the function the backward differentiates. */
static void ref_dropout(IrGraph *g, int i)
{
    const IrNode *n = &g->nodes[i];
    const IrValue *xv = &g->values[n->in[0]];
    const double *x = xv->data;
    double ratio = ir_attr_float(n, "ratio", 0.5f);
    double *y = out_data(g, i, 0);
    IrValue *mv = &g->values[n->out[1]];
    uint8_t *m = calloc((size_t)ir_value_numel(mv), 1);
    ir_value_set_data(g, n->out[1], m);
    for (int64_t j = 0; j < ir_value_numel(xv); j++) {
        m[j] = j % 3 != 0;
        y[j] = m[j] ? x[j] / (1 - ratio) : 0;
    }
}

/* DFT (opset 17: axis an attribute) of a real [..., n, 1] or complex [..., n, 2]
 * signal, zero-padded or cut to dft_length, onesided keeping L / 2 + 1 bins. */
static void ref_dft(IrGraph *g, int i)
{
    const IrNode *n = &g->nodes[i];
    const IrValue *xv = &g->values[n->in[0]], *yv = &g->values[n->out[0]];
    const double *x = xv->data;
    double *y = out_data(g, i, 0);
    int r = xv->rank, a = (int)ir_attr_int(n, "axis", 1), inv = ir_attr_int(n, "inverse", 0) != 0;
    if (a < 0) a += r;
    int64_t L = ir_in(n, 1) >= 0 ? ((const int64_t *)g->values[n->in[1]].data)[0] : xv->dims[a];
    int64_t nx = xv->dims[a], ny = yv->dims[a], cx = xv->dims[r - 1], outer = 1, inner = 1;
    for (int d = 0; d < a; d++) outer *= xv->dims[d];
    for (int d = a + 1; d < r - 1; d++) inner *= xv->dims[d];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++)
            for (int64_t k = 0; k < ny; k++) {
                double re = 0, im = 0;
                for (int64_t j = 0; j < nx && j < L; j++) {
                    const double *v = x + ((o * nx + j) * inner + in) * cx;
                    double ang = (inv ? 2 : -2) * M_PI * (double)(j * k % L) / (double)L;
                    double vi = cx == 2 ? v[1] : 0;
                    re += v[0] * cos(ang) - vi * sin(ang);
                    im += v[0] * sin(ang) + vi * cos(ang);
                }
                double *q = y + ((o * ny + k) * inner + in) * 2;
                q[0] = inv ? re / (double)L : re;
                q[1] = inv ? im / (double)L : im;
            }
}

/* The reference forward of node i, or -1 when the test has none. */
static int ref_eval(IrGraph *g, int i)
{
    switch (g->nodes[i].op) {
    case IR_OP_Conv: case IR_OP_ConvTranspose: case IR_OP_ConvGradWeight: ref_conv(g, i); return 0;
    case IR_OP_GlobalAveragePool: case IR_OP_GlobalMaxPool: ref_global_pool(g, i); return 0;
    case IR_OP_Dropout: ref_dropout(g, i); return 0;
    case IR_OP_DFT: ref_dft(g, i); return 0;
    default: return -1;
    }
}

/* Evaluate the nodes of the forward (and, when all, backward) phase. */
static int eval_nodes(IrGraph *g, int all)
{
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = &g->nodes[i];
        if (n->dead || n->phase == IR_UPDATE || (!all && n->phase != IR_FORWARD)) continue;
        if (ir_infer_node(g, i) < 0) return -1;
        if (!ir_ops[n->op].eval) {
            if (ref_eval(g, i) == 0) continue;
            snprintf(g->err, sizeof g->err, "node %s: %s has no evaluator", n->name,
                     ir_ops[n->op].name);
            return -1;
        }
        if (ir_ops[n->op].eval(g, i) < 0) return -1;
    }
    return 0;
}

static double loss_now(IrGraph *g)
{
    if (eval_nodes(g, 0) < 0) {
        fprintf(stderr, "  %s\n", g->err);
        return NAN;
    }
    return *(double *)g->values[ir_loss_value(g)].data;
}

/* ---- which differentiable ops have a numeric gradient check ---- */

/* covered[op]: COV_EVAL when a float64 finite-difference check here passed
 * on a graph whose backward includes op's gradient; COV_KERNEL when op's
 * gradient is an internal op whose kernel test_kcpu_grad.c checks against
 * finite differences of the forward kernel (plus forward ops the evaluator
 * computes). test_every_grad_checked fails for a differentiable op with
 * neither, so a new gradient rule cannot go unchecked. */
enum { COV_EVAL = 1, COV_KERNEL = 2 };
static unsigned char covered[IR_NOPS];

/* The internal ops test_kcpu_grad.c checks against finite differences. */
static int kernel_checked(IrOp op)
{
    switch (op) {
    case IR_OP_ActivationGrad: case IR_OP_SoftmaxGrad: case IR_OP_LogSoftmaxGrad:
    case IR_OP_LayerNormGrad: case IR_OP_BatchNormGrad: case IR_OP_GroupNormGrad:
    case IR_OP_InstanceNormGrad: case IR_OP_ConvGradWeight: case IR_OP_MaxPoolGrad:
    case IR_OP_AveragePoolGrad: case IR_OP_ResizeGrad: case IR_OP_GatherGrad:
    case IR_OP_GatherElementsGrad: case IR_OP_SliceGrad: case IR_OP_SoftmaxCrossEntropyLossGrad:
    case IR_OP_NegativeLogLikelihoodLossGrad:
    case IR_OP_RMSNormGrad:
    case IR_OP_AttentionGrad: /* test_attn.c */
        return 1;
    default: return 0;
    }
}

/* Mark the forward ops of a training graph whose backward nodes are all
 * kernel-checked internal ops or evaluator ops, at least one internal. */
static void note_kernel_checked(const IrGraph *g)
{
    for (int f = 0; f < g->nnodes; f++) {
        if (g->nodes[f].dead || g->nodes[f].phase != IR_FORWARD) continue;
        int internal = 0, other = 0;
        for (int i = 0; i < g->nnodes; i++) {
            const IrNode *n = &g->nodes[i];
            if (n->dead || n->phase != IR_BACKWARD || n->fwd != f) continue;
            if (kernel_checked(n->op)) internal++;
            else if (!ir_ops[n->op].eval) other++;
        }
        if (internal && !other) covered[g->nodes[f].op] |= COV_KERNEL;
    }
}

/* After a passing float64 check: mark the ops of the forward nodes on a
 * differentiable path from a trained parameter to the loss (nodes are in
 * topological order), whose gradients the check went through. */
static void note_eval_checked(const IrGraph *g)
{
    char *req = calloc((size_t)g->nvalues, 1), *need = calloc((size_t)g->nvalues, 1);
    for (int v = 0; v < g->nvalues; v++)
        req[v] = g->values[v].role == IR_PARAM && ir_param_grad(g, v) >= 0;
    need[ir_loss_value(g)] = 1;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < g->nnodes; k++) {
            const IrNode *n = &g->nodes[pass ? g->nnodes - 1 - k : k];
            if (n->dead || n->phase != IR_FORWARD) continue;
            int r = 0, d = 0;
            for (int i = 0; i < n->nin; i++) r |= n->in[i] >= 0 && req[n->in[i]] && ir_grad_input(n->op, i);
            for (int j = 0; j < n->nout; j++) d |= need[n->out[j]];
            if (!pass)
                for (int j = 0; r && j < n->nout; j++) req[n->out[j]] = 1;
            for (int i = 0; pass && d && i < n->nin; i++)
                if (n->in[i] >= 0 && ir_grad_input(n->op, i)) need[n->in[i]] = 1;
            if (pass && r && d) covered[n->op] |= COV_EVAL;
        }
    free(req);
    free(need);
}

/* Build the gradients of g (loss = its scalar output unless opts say more),
 * evaluate them and compare with central differences. Returns the number of
 * parameters checked. */
static int check_numeric(IrGraph *g, IrTrainOptions *o)
{
    IrTrainOptions dflt;
    if (!o) {
        ir_train_defaults(&dflt);
        dflt.optimizer = IR_OPTIM_NONE;
        o = &dflt;
    }
    if (infer_all(g) < 0 || ir_build_training(g, o) < 0 || ir_verify(g) < 0) {
        fprintf(stderr, "  %s\n", g->err);
        check_failed_ = 1;
        return 0;
    }
    if (eval_nodes(g, 1) < 0) {
        fprintf(stderr, "  %s\n", g->err);
        check_failed_ = 1;
        return 0;
    }
    int checked = 0, ok = 1;
    for (int p = 0; p < g->nvalues; p++) {
        if (g->values[p].role != IR_PARAM) continue;
        int gv = ir_param_grad(g, p);
        if (gv < 0) continue;
        checked++;
        CHECK_EQ_INT(g->values[gv].dtype, IR_F64);
        CHECK_EQ_INT(ir_value_numel(&g->values[gv]), ir_value_numel(&g->values[p]));
        int64_t n = ir_value_numel(&g->values[p]);
        double *an = malloc((size_t)n * sizeof *an);
        memcpy(an, g->values[gv].data, (size_t)n * sizeof *an);
        double *x = g->values[p].data;
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            x = g->values[p].data;
            double x0 = x[i], h = 1e-5 * (fabs(x0) > 1 ? fabs(x0) : 1);
            x[i] = x0 + h;
            double lp = loss_now(g);
            x = g->values[p].data;
            x[i] = x0 - h;
            double lm = loss_now(g);
            x = g->values[p].data;
            x[i] = x0;
            double fd = (lp - lm) / (2 * h);
            double den = fmax(fmax(fabs(fd), fabs(an[i])), 1e-2);
            double err = fabs(fd - an[i]) / den;
            if (!(err <= worst)) worst = err;
        }
        if (!(worst < 1e-6)) {
            fprintf(stderr, "  param %s: relative error %.3g\n", g->values[p].name, worst);
            check_failed_ = 1;
            ok = 0;
        }
        free(an);
    }
    if (ok) note_eval_checked(g);
    return checked;
}

/* ---- numeric checks ---- */

static void test_broadcast_arith(void)
{
    IrGraph *g = G();
    int x = CONSTF("x", -0.5, 2, 3);
    int w = PARAM("w", 0.5, 3), b = PARAM("b", -0.5, 1), s = PARAM("s", 1.0, 2, 1);
    int e = PARAM("e", 0.5, 1);
    int y = OP(Add, OP(Mul, x, w), b);            /* [2,3] */
    y = OP(Div, y, s);                            /* s broadcast over columns */
    y = OP(Sub, y, OP(Mul, w, w));                /* w fans out */
    int two = CONSTF("two", 2.0, 1);
    ((double *)g->values[two].data)[0] = 2;
    y = OP(Add, OP(Pow, y, two), OP(Pow, OP(Add, x, s), e)); /* x + s > 0 */
    y = OP(Sum, y, w, OP(Mean, b, y));
    set_loss(g, y);
    CHECK_EQ_INT(check_numeric(g, NULL), 4);
    ir_graph_free(g);
}

static void test_unary(void)
{
    IrGraph *g = G();
    int p = PARAM("p", 0.1, 2, 3);   /* in (0.1, 1.1): inside every domain */
    static const IrOp ops[] = {IR_OP_Neg, IR_OP_Abs, IR_OP_Sqrt, IR_OP_Reciprocal, IR_OP_Exp,
                               IR_OP_Log, IR_OP_Sin, IR_OP_Cos, IR_OP_Tanh, IR_OP_Erf,
                               IR_OP_Sigmoid, IR_OP_Softplus, IR_OP_Softsign, IR_OP_Identity};
    int acc = -1;
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        int y = mk(g, ops[i], 1, &p);
        acc = acc < 0 ? y : OP(Add, acc, OP(Mul, y, y));
    }
    set_loss(g, acc);
    CHECK_EQ_INT(check_numeric(g, NULL), 1);
    ir_graph_free(g);
}

static void test_matmul(void)
{
    IrGraph *g = G();
    int a = PARAM("a", -0.5, 2, 1, 3, 4), b = PARAM("b", -0.5, 5, 4, 2);
    int x = CONSTF("x", -0.5, 2, 3, 4), w = PARAM("w", -0.5, 4, 5);
    int v = PARAM("v", -0.5, 4), u = PARAM("u", -0.5, 4);
    int y1 = OP(MatMul, a, b);                    /* [2,5,3,2], both batch-broadcast */
    int y2 = OP(MatMul, x, w);                    /* [2,3,5], a matrix weight */
    int y3 = OP(MatMul, v, b);                    /* [5,2], a vector on the left */
    int y5 = OP(MatMul, x, v);                    /* [2,3], a vector on the right */
    int y6 = OP(MatMul, u, v);                    /* a dot product */
    int s = OP(Add, OP(ReduceSum, y1), OP(ReduceSum, y2));
    s = OP(Add, s, OP(Add, OP(ReduceSum, y3), OP(ReduceSum, OP(Mul, y5, y5))));
    s = OP(Add, s, OP(Mul, y6, y6));
    set_loss(g, OP(Mul, s, s));
    CHECK_EQ_INT(check_numeric(g, NULL), 5);
    ir_graph_free(g);
}

static void test_gemm(void)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            IrGraph *g = G();
            int a = ta ? PARAM("a", -0.5, 4, 3) : PARAM("a", -0.5, 3, 4);
            int b = tb ? PARAM("b", -0.5, 5, 4) : PARAM("b", -0.5, 4, 5);
            int cc = (ta + tb) % 2 ? PARAM("c", -0.5, 5) : PARAM("c", -0.5, 3, 1);
            int y = OP(Gemm, a, b, cc);
            ATTR_I("transA", ta);
            ATTR_I("transB", tb);
            ir_attr_set_float(g, last_node, "alpha", 0.7f);
            ir_attr_set_float(g, last_node, "beta", 1.5f);
            set_loss(g, OP(Mul, y, y));
            CHECK_EQ_INT(check_numeric(g, NULL), 3);
            ir_graph_free(g);
        }
}

static void test_einsum(void)
{
    IrGraph *g = G();
    int a = PARAM("a", -0.5, 2, 3, 4), b = PARAM("b", -0.5, 4, 5), c = PARAM("c", -0.5, 3, 6);
    int d = PARAM("d", -0.5, 1, 4, 5);
    int y1 = OP(Einsum, a, b);
    ir_attr_set_string(g, last_node, "equation", "bij,jk->bik");
    int y2 = OP(Einsum, c);
    ir_attr_set_string(g, last_node, "equation", "ij->i");  /* j only in the operand */
    int y3 = OP(Einsum, a, d);
    ir_attr_set_string(g, last_node, "equation", "...ij,...jk->...ik"); /* d broadcasts */
    int s = OP(Add, OP(ReduceSum, OP(Mul, y1, y1)), OP(ReduceSum, OP(Mul, y2, y2)));
    set_loss(g, OP(Add, s, OP(ReduceSum, OP(Mul, y3, y3))));
    CHECK_EQ_INT(check_numeric(g, NULL), 4);
    ir_graph_free(g);
}

static void test_movement(void)
{
    IrGraph *g = G();
    int p = PARAM("p", -0.5, 2, 3, 4), q = PARAM("q", -0.5, 3, 1), r = PARAM("r", -0.5, 2, 2);
    int t = OP(Transpose, p);
    ATTR_IS("perm", 2, 0, 1);                             /* [4,2,3] */
    int rs = OP(Reshape, t, INTS(8, 3));                  /* [8,3] */
    int cat = OP(Concat, rs, OP(Transpose, q));           /* [9,3]: q^T is [1,3] */
    ATTR_I("axis", 0);
    int sl = OP(Slice, cat, INTS(1, 0), INTS(7, 2), INTS(0, 1)); /* [6,2] */
    int ex = OP(Expand, q, INTS(2, 3, 5));                /* [2,3,5] */
    int tl = OP(Tile, r, INTS(2, 3));                     /* [4,6] */
    int pd = OP(Pad, r, INTS(1, 0, 0, 2));                /* [3,4] */
    int sq = OP(Squeeze, OP(Unsqueeze, r, INTS(0)), INTS(0));
    int fl = OP(Flatten, p);
    ATTR_I("axis", 2);                                    /* [6,4] */
    int cs = OP(CumSum, fl, INTS(1));
    int tr = OP(Trilu, OP(Reshape, sl, INTS(2, 6)));
    int sp1 = ir_value_new(g, "sp1", IR_ACTIVATION), sp2 = ir_value_new(g, "sp2", IR_ACTIVATION);
    ir_node_new(g, IR_OP_Split, "split", 2, I(p, INTS(1, 2)), 2, I(sp1, sp2));
    ir_attr_set_int(g, g->nnodes - 1, "axis", 1);
    int cond = ir_value_new(g, "cond", IR_CONST);
    ir_value_set_shape(&g->values[cond], IR_BOOL, 1, D(4));
    uint8_t *cd = malloc(4);
    cd[0] = 1, cd[1] = 0, cd[2] = 0, cd[3] = 1;
    ir_value_set_data(g, cond, cd);
    int wh = OP(Where, cond, OP(Reshape, sq, INTS(4)), OP(Reshape, r, INTS(4)));
    int s = OP(Add, OP(ReduceSum, OP(Mul, tr, tr)), OP(ReduceSum, OP(Mul, ex, ex)));
    s = OP(Add, s, OP(Add, OP(ReduceSum, OP(Mul, tl, tl)), OP(ReduceSum, OP(Mul, pd, pd))));
    s = OP(Add, s, OP(Add, OP(ReduceSum, OP(Mul, cs, cs)), OP(ReduceSum, OP(Mul, wh, wh))));
    s = OP(Add, s, OP(ReduceSum, OP(Mul, sp2, sp2))); /* sp1 unused: zeros in the Concat */
    (void)sp1;
    set_loss(g, s);
    CHECK_EQ_INT(check_numeric(g, NULL), 3);
    ir_graph_free(g);
}

static void test_reductions(void)
{
    IrGraph *g = G();
    int p = PARAM("p", 0.5, 3, 4);
    int lo = CONSTF("lo", 0.8, 1), hi = CONSTF("hi", 1.1, 1);
    static const IrOp ops[] = {IR_OP_ReduceMean, IR_OP_ReduceMax, IR_OP_ReduceMin, IR_OP_ReduceL1,
                               IR_OP_ReduceL2, IR_OP_ReduceSumSquare, IR_OP_ReduceLogSumExp,
                               IR_OP_ReduceProd, IR_OP_ReduceSum};
    int acc = -1;
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        int y;
        if (ops[i] == IR_OP_ReduceSum) { /* axes: an input from opset 13, for the others from 18 */
            y = OP(ReduceSum, p, INTS(0));
        } else {
            y = mk(g, ops[i], 1, &p);
            ATTR_IS("axes", i % 2 ? 0 : 1);
        }
        ATTR_I("keepdims", (int)(i % 3 != 0));
        int s = OP(ReduceSum, OP(Mul, y, y));
        acc = acc < 0 ? s : OP(Add, acc, s);
    }
    int m = OP(Max, p, OP(Mul, p, p), CONSTF("c", 0.4, 4));
    int n = OP(Min, p, OP(Sqrt, p));
    int cl = OP(Clip, p, OP(Reshape, lo, INTS()), OP(Reshape, hi, INTS()));
    acc = OP(Add, acc, OP(ReduceSum, OP(Mul, OP(Add, m, n), cl)));
    set_loss(g, acc);
    CHECK_EQ_INT(check_numeric(g, NULL), 1);
    ir_graph_free(g);
}

static void test_mse(void)
{
    IrGraph *g = G();
    int x = CONSTF("x", -0.5, 4, 3), w = PARAM("w", -0.5, 3, 2), b = PARAM("b", -0.5, 2);
    int y = OP(Add, OP(MatMul, x, w), b);
    g->outputs = malloc(sizeof(int));
    g->outputs[g->noutputs++] = y;
    g->values[y].is_output = 1;
    IrTrainOptions o;
    ir_train_defaults(&o);
    o.loss_kind = IR_LOSS_MSE;
    o.target = "t";
    o.optimizer = IR_OPTIM_NONE;
    CHECK(infer_all(g) == 0);
    CHECK(ir_add_loss(g, &o) == 0);
    int t = ir_value_find(g, "t");
    CHECK(t >= 0 && g->values[t].role == IR_INPUT && g->values[t].rank == 2);
    double *td = malloc(8 * sizeof *td);
    for (int i = 0; i < 8; i++) td[i] = urand();
    ir_value_set_data(g, t, td); /* a fed input, for the evaluator */
    /* the loss exists already: autodiff the rest */
    CHECK(ir_autodiff(g, NULL) == 0 && ir_verify(g) == 0);
    CHECK(eval_nodes(g, 1) == 0);
    for (int p = 0; p < g->nvalues; p++) {
        if (g->values[p].role != IR_PARAM) continue;
        int gv = ir_param_grad(g, p);
        CHECK(gv >= 0);
        double *x0 = g->values[p].data, *an = g->values[gv].data;
        for (int64_t i = 0; i < ir_value_numel(&g->values[p]); i++) {
            double v0 = x0[i], h = 1e-5, a = an[i];
            x0[i] = v0 + h;
            double lp = loss_now(g);
            x0 = g->values[p].data;
            x0[i] = v0 - h;
            double lm = loss_now(g);
            x0 = g->values[p].data;
            x0[i] = v0;
            CHECK(fabs((lp - lm) / (2 * h) - a) < 1e-6 * fmax(1e-2, fabs(a)));
            an = g->values[gv].data;
        }
    }
    ir_graph_free(g);
}

/* Conv and ConvTranspose: input gradients are the other op (float64
 * references above), weight gradients loom.ConvGradWeight, whose kernel
 * test_kcpu_grad.c checks; here the whole chain in float64. */
static void test_conv(void)
{
    IrGraph *g = G();
    int x = PARAM("x", -0.5, 1, 4, 6, 5);
    int w = PARAM("w", -0.5, 4, 2, 3, 2), b = PARAM("b", -0.5, 4);
    int y = OP(Conv, x, w, b);                            /* group 2, strided, uneven pads */
    ATTR_I("group", 2);
    ATTR_IS("strides", 2, 1);
    ATTR_IS("pads", 1, 0, 0, 1);                          /* [1,4,3,5] */
    int wt = PARAM("wt", -0.5, 4, 3, 2, 3), bt = PARAM("bt", -0.5, 3);
    int z = OP(ConvTranspose, y, wt, bt);
    ATTR_IS("strides", 2, 2);
    ATTR_IS("dilations", 1, 2);
    ATTR_IS("pads", 0, 1, 1, 0);                          /* [1,3,5,12] */
    int x1 = PARAM("x1", -0.5, 2, 3, 7), w1 = PARAM("w1", -0.5, 2, 3, 3);
    int y1 = OP(Conv, x1, w1);                            /* 1-D, dilated, SAME_UPPER */
    ATTR_IS("dilations", 2);
    ATTR_IS("strides", 2);
    ir_attr_set_string(g, last_node, "auto_pad", "SAME_UPPER");
    int s = OP(Add, OP(ReduceSum, OP(Mul, z, z)), OP(ReduceSum, OP(Mul, y1, y1)));
    set_loss(g, s);
    CHECK_EQ_INT(check_numeric(g, NULL), 7);
    ir_graph_free(g);
}

/* Forward ops without evaluators whose gradients are forward ops (float64
 * references above): the global pools, Dropout (a fixed mask), DFT; and
 * PRelu, Cast, ScatterND's data. */
static void test_more_forward_ops(void)
{
    IrGraph *g = G();
    int p = PARAM("p", -0.5, 2, 3, 2, 2), a = PARAM("a", 0.1, 3, 1, 1);
    int ga = OP(GlobalAveragePool, p), gm = OP(GlobalMaxPool, OP(Mul, p, p));
    int pr = OP(PRelu, p, a);
    int dr = OP(Dropout, p);
    ir_attr_set_float(g, last_node, "ratio", 0.25f);
    int cs = OP(Cast, p);
    ATTR_I("to", IR_F64);
    int q = PARAM("q", -0.5, 4, 3);
    int idx = ir_value_new(g, "sidx", IR_CONST);
    ir_value_set_shape(&g->values[idx], IR_I64, 2, D(2, 1));
    int64_t *ip = malloc(16);
    ip[0] = 2, ip[1] = 0;
    ir_value_set_data(g, idx, ip);
    int sc = OP(ScatterND, q, idx, CONSTF("upd", 0, 2, 3));
    int sg = PARAM("sig", -0.5, 2, 5, 1), sz = PARAM("sigc", -0.5, 2, 3, 4, 2);
    int f1 = OP(DFT, sg, INTS(8));                        /* real, onesided, padded to 8 */
    ATTR_I("onesided", 1);
    int f2 = OP(DFT, sz);                                 /* complex, inverse, axis 2 */
    ATTR_I("inverse", 1);
    ATTR_I("axis", 2);
    int acc = OP(ReduceSum, OP(Mul, ga, ga)), k = CONSTF("k", 0.5, 1);
    int parts[] = {gm, pr, dr, cs, sc, f1, f2};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) { /* sum y^2 (y + k): not quadratic */
        int t = OP(Mul, parts[i], parts[i]);
        acc = OP(Add, acc, OP(ReduceSum, OP(Mul, t, OP(Add, parts[i], k))));
    }
    set_loss(g, acc);
    CHECK_EQ_INT(check_numeric(g, NULL), 5);
    ir_graph_free(g);
}

/* ---- structure ---- */

static void test_freeze_and_unreachable(void)
{
    IrGraph *g = G();
    int a = PARAM("layer0.w", -0.5, 3, 3), b = PARAM("layer1.w", -0.5, 3, 3);
    PARAM("unused.w", -0.5, 3);
    int idx = ir_value_new(g, "ix", IR_CONST);
    ir_value_set_shape(&g->values[idx], IR_I64, 1, D(2));
    int64_t *ip = malloc(16);
    ip[0] = 0, ip[1] = 2;
    ir_value_set_data(g, idx, ip);
    int cst = OP(Cast, OP(ArgMax, a));                    /* an integer path: no gradient */
    ir_attr_set_int(g, last_node, "to", IR_F64);
    int y = OP(Add, OP(MatMul, b, b), OP(Reshape, cst, INTS(1, 3)));
    set_loss(g, y);
    IrTrainOptions o;
    ir_train_defaults(&o);
    o.optimizer = IR_OPTIM_NONE;
    o.freeze_regex = "^layer0\\.";
    CHECK(infer_all(g) == 0);
    CHECK(ir_build_training(g, &o) == 0);
    CHECK(ir_verify(g) == 0);
    CHECK(ir_param_grad(g, ir_value_find(g, "layer0.w")) < 0);
    CHECK(ir_param_grad(g, ir_value_find(g, "layer1.w")) >= 0);
    CHECK(ir_param_grad(g, ir_value_find(g, "unused.w")) < 0);
    CHECK(g->values[ir_value_find(g, "layer0.w")].role == IR_PARAM);
    ir_graph_free(g);

    /* everything frozen: nothing to train */
    g = G();
    a = PARAM("w", -0.5, 3);
    set_loss(g, OP(Mul, a, a));
    ir_train_defaults(&o);
    o.freeze_regex = "w";
    CHECK(infer_all(g) == 0);
    CHECK(ir_build_training(g, &o) < 0);
    CHECK_STR_CONTAINS(g->err, "nothing to train");
    ir_graph_free(g);

    g = G();
    a = PARAM("w", -0.5, 3);
    set_loss(g, OP(Mul, a, a));
    ir_train_defaults(&o);
    o.freeze_regex = "([";
    CHECK(infer_all(g) == 0);
    CHECK(ir_build_training(g, &o) < 0);
    CHECK_STR_CONTAINS(g->err, "regular expression");
    ir_graph_free(g);
}

static void test_refusals(void)
{
    IrGraph *g = G();
    int a = PARAM("w", 0.5, 3);
    int m = OP(Mod, a, CONSTF("k", 0.3, 3));
    ir_attr_set_int(g, last_node, "fmod", 1);
    const char *mod_name = g->nodes[last_node].name;
    set_loss(g, m);
    IrTrainOptions o;
    ir_train_defaults(&o);
    CHECK(infer_all(g) == 0);
    CHECK(ir_build_training(g, &o) < 0);
    CHECK_STR_CONTAINS(g->err, "Mod has no gradient");
    CHECK_STR_CONTAINS(g->err, mod_name);
    ir_graph_free(g);

    /* Round has zero gradient (as in PyTorch): its path carries none */
    g = G();
    a = PARAM("w", 0.5, 3);
    int b = PARAM("v", 0.5, 3);
    set_loss(g, OP(Add, OP(Round, a), b));
    ir_train_defaults(&o);
    CHECK(infer_all(g) == 0);
    CHECK(ir_build_training(g, &o) == 0);
    CHECK(ir_param_grad(g, ir_value_find(g, "w")) < 0);
    CHECK(ir_param_grad(g, ir_value_find(g, "v")) >= 0);
    ir_graph_free(g);

    /* no scalar output and no loss asked for */
    g = G();
    a = PARAM("w", 0.5, 3);
    int y = OP(Mul, a, a);
    g->outputs = malloc(sizeof(int));
    g->outputs[g->noutputs++] = y;
    CHECK(infer_all(g) == 0);
    CHECK(ir_build_training(g, &o) < 0);
    CHECK_STR_CONTAINS(g->err, "no scalar float output");
    ir_graph_free(g);

    /* a model cannot name internal ops */
    CHECK(ir_op_lookup("loom.AdamW") < 0);
    CHECK(ir_op_lookup("loom.SoftmaxGrad") < 0);
    CHECK(ir_op_lookup("AdamW") < 0);
    CHECK(ir_op_lookup("Softmax") == IR_OP_Softmax);
    CHECK(ir_ops[IR_OP_ConvGradWeight].flags & OPF_INTERNAL);
}

/* Ops whose gradients are internal: the nodes exist, shapes infer, verify. */
static void test_internal_grads(void)
{
    IrGraph *g = G();
    int x = CONSTF("x", -0.5, 2, 3, 8, 8);
    int w = PARAM("conv.w", -0.5, 4, 3, 3, 3), cb = PARAM("conv.b", -0.5, 4);
    int y = OP(Conv, x, w, cb);
    ATTR_IS("strides", 2, 2);
    ir_attr_set_string(g, last_node, "auto_pad", "SAME_UPPER");       /* [2,4,4,4] */
    int s = PARAM("bn.s", 0.5, 4), bb = PARAM("bn.b", -0.5, 4);
    int rm = PARAM("bn.mean", -0.5, 4), rv = PARAM("bn.var", 0.5, 4);
    y = OP(BatchNormalization, y, s, bb, rm, rv);
    y = OP(Relu, y);
    y = OP(MaxPool, y);
    ATTR_IS("kernel_shape", 2, 2);
    ATTR_IS("strides", 2, 2);                                         /* [2,4,2,2] */
    int wt = PARAM("convt.w", -0.5, 4, 2, 2, 2);
    y = OP(ConvTranspose, y, wt);
    ATTR_IS("strides", 2, 2);                                         /* [2,2,4,4] */
    y = OP(AveragePool, y);
    ATTR_IS("kernel_shape", 3, 3);
    ATTR_IS("pads", 1, 1, 1, 1);
    y = OP(Reshape, y, INTS(2, 2, 16));
    int ls = PARAM("ln.s", 0.5, 16), lb = PARAM("ln.b", -0.5, 16);
    y = OP(LayerNormalization, y, ls, lb);
    int rs = PARAM("rms.s", 0.5, 16);
    y = OP(RMSNorm, y, rs);
    ir_attr_set_int(g, last_node, "axis", -1);
    y = OP(Softmax, y);
    int emb = PARAM("emb", -0.5, 10, 16);
    int ids = ir_value_new(g, "ids", IR_CONST);
    ir_value_set_shape(&g->values[ids], IR_I64, 2, D(2, 2));
    int64_t *ip = malloc(32);
    ip[0] = 1, ip[1] = 3, ip[2] = 3, ip[3] = 9;
    ir_value_set_data(g, ids, ip);
    y = OP(Add, y, OP(Gather, emb, ids));
    y = OP(LogSoftmax, y);
    set_loss(g, y);
    IrTrainOptions o;
    ir_train_defaults(&o);
    CHECK(infer_all(g) == 0);
    if (ir_build_training(g, &o) < 0) {
        fprintf(stderr, "  %s\n", g->err);
        check_failed_ = 1;
    }
    CHECK(ir_verify(g) == 0);
    static const char *trained[] = {"conv.w", "conv.b", "bn.s", "bn.b", "convt.w", "ln.s",
                                    "ln.b", "rms.s", "emb"};
    for (size_t i = 0; i < sizeof trained / sizeof *trained; i++) {
        int p = ir_value_find(g, trained[i]), gv = ir_param_grad(g, p);
        CHECK(gv >= 0);
        if (gv < 0) continue;
        CHECK(g->values[gv].rank == g->values[p].rank &&
              !memcmp(g->values[gv].dims, g->values[p].dims, g->values[p].rank * sizeof(int64_t)));
    }
    /* running statistics are buffers: no gradient */
    CHECK(ir_param_grad(g, ir_value_find(g, "bn.mean")) < 0);
    CHECK(ir_param_grad(g, ir_value_find(g, "bn.var")) < 0);
    int seen[IR_NOPS] = {0};
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        seen[n->op]++;
        if (n->phase == IR_BACKWARD && n->fwd >= 0) CHECK(g->nodes[n->fwd].phase == IR_FORWARD);
    }
    note_kernel_checked(g);
    CHECK(seen[IR_OP_ConvGradWeight] == 2 && seen[IR_OP_BatchNormGrad] == 1);
    CHECK(seen[IR_OP_ActivationGrad] == 1 && seen[IR_OP_MaxPoolGrad] == 1);
    CHECK(seen[IR_OP_AveragePoolGrad] == 1 && seen[IR_OP_LayerNormGrad] == 1);
    CHECK(seen[IR_OP_SoftmaxGrad] == 1 && seen[IR_OP_LogSoftmaxGrad] == 1);
    CHECK(seen[IR_OP_GatherGrad] == 1 && seen[IR_OP_AdamW] == 9 && seen[IR_OP_RMSNormGrad] == 1);
    /* the input gradient of the ConvTranspose is a Conv, of the Conv nothing (x is constant) */
    CHECK(seen[IR_OP_Conv] == 2);
    int *saved, ns = ir_saved_values(g, &saved);
    CHECK(ns > 0);
    for (int i = 0; i < ns; i++) {
        int p = g->values[saved[i]].producer;
        CHECK(p < 0 || g->nodes[p].phase == IR_FORWARD);
    }
    free(saved);
    ir_graph_free(g);
}

/* The other ops whose gradients are internal: every activation, GroupNorm,
 * InstanceNorm, Resize, GatherElements, the losses; the nodes verify and
 * note_kernel_checked records them. */
static void test_internal_more(void)
{
    IrGraph *g = G();
    int p = PARAM("p", -0.5, 2, 4, 3, 3);
    int acc = -1;
    static const IrOp acts[] = {IR_OP_Relu, IR_OP_LeakyRelu, IR_OP_Elu, IR_OP_Selu,
                                IR_OP_HardSigmoid, IR_OP_HardSwish, IR_OP_Gelu};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        int y = mk(g, acts[i], 1, &p);
        acc = acc < 0 ? y : OP(Add, acc, y);
    }
    int gs = PARAM("gn.s", 0.5, 4), gb = PARAM("gn.b", -0.5, 4);
    acc = OP(GroupNormalization, acc, gs, gb);
    ATTR_I("num_groups", 2);
    acc = OP(InstanceNormalization, acc, PARAM("in.s", 0.5, 4), PARAM("in.b", -0.5, 4));
    int scales = ir_value_new(g, "scales", IR_CONST);
    ir_value_set_shape(&g->values[scales], IR_F32, 1, D(4));
    float *sc = malloc(4 * sizeof *sc);
    sc[0] = sc[1] = 1, sc[2] = sc[3] = 2;
    ir_value_set_data(g, scales, sc);
    int rs = OP(Resize, acc, -1, scales);                     /* [2,4,6,6] */
    ir_attr_set_string(g, last_node, "mode", "linear");
    int ge_idx = ir_value_new(g, "ge_idx", IR_CONST);
    ir_value_set_shape(&g->values[ge_idx], IR_I64, 4, D(2, 4, 6, 1));
    int64_t *ip = malloc(48 * sizeof *ip);
    for (int i = 0; i < 48; i++) ip[i] = i % 6;
    ir_value_set_data(g, ge_idx, ip);
    int ge = OP(GatherElements, rs, ge_idx);
    ATTR_I("axis", 3);                                        /* [2,4,6,1] */
    int logits = OP(Reshape, ge, INTS(2, 4, 6));
    int labels = ir_value_new(g, "labels", IR_CONST);
    ir_value_set_shape(&g->values[labels], IR_I64, 2, D(2, 6));
    int64_t *lp = malloc(12 * sizeof *lp);
    for (int i = 0; i < 12; i++) lp[i] = i % 4;
    ir_value_set_data(g, labels, lp);
    int sce = OP(SoftmaxCrossEntropyLoss, logits, labels);
    int nll = OP(NegativeLogLikelihoodLoss, OP(LogSoftmax, logits), labels);
    ATTR_I("axis", 1);
    set_loss(g, OP(Add, sce, nll));
    IrTrainOptions o;
    ir_train_defaults(&o);
    o.optimizer = IR_OPTIM_NONE;
    if (infer_all(g) < 0 || ir_build_training(g, &o) < 0 || ir_verify(g) < 0) {
        fprintf(stderr, "  %s\n", g->err);
        check_failed_ = 1;
    }
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].role == IR_PARAM) CHECK(ir_param_grad(g, v) >= 0);
    note_kernel_checked(g);
    ir_graph_free(g);
}

/* A float32 parameter [rows, cols] (the fused head is float32 only). */
static int param32(IrGraph *g, const char *name, int64_t rows, int64_t cols)
{
    int v = ir_value_new(g, name, IR_PARAM);
    ir_value_set_shape(&g->values[v], IR_F32, 2, (int64_t[]){rows, cols});
    float *p = malloc((size_t)(rows * cols) * sizeof *p);
    for (int64_t i = 0; i < rows * cols; i++) p[i] = (float)(urand() - 0.5);
    ir_value_set_data(g, v, p);
    return v;
}

/* loom.LinearCrossEntropy (ir/loss.c): cross-entropy appended to logits
 * that are a product x W nothing else reads becomes one node reading x and
 * W (a transposed matrix's own, trans_w), the product gone; x and W get
 * their gradients (the op's dx and dw scaled by the loss's gradient), and
 * dx, dw are what the backward saves. --no-fuse-head keeps the product. The
 * kernel's loss and gradients are checked against a float64 reference in
 * test_kcpu_lince.c. */
static void test_linear_ce_head(void)
{
    for (int tw = 0; tw < 3; tw++) { /* 0: W [D, C]; 1: Transpose of [C, D]; 2: not fused */
        IrGraph *g = G();
        int x = param32(g, "x", 6, 4), w = tw == 1 ? param32(g, "w", 5, 4) : param32(g, "w", 4, 5);
        int h = OP(Relu, x), y = OP(MatMul, h, tw == 1 ? OP(Transpose, w) : w);
        g->outputs = realloc(g->outputs, (g->noutputs + 1) * sizeof(int));
        g->outputs[g->noutputs++] = y;
        g->values[y].is_output = 1;
        IrTrainOptions o;
        ir_train_defaults(&o);
        o.loss_kind = IR_LOSS_CE;
        o.target = "t";
        o.no_fuse_head = tw == 2;
        CHECK(infer_all(g) == 0);
        if (ir_build_training(g, &o) < 0 || ir_verify(g) < 0) {
            fprintf(stderr, "  %s\n", g->err);
            check_failed_ = 1;
            ir_graph_free(g);
            return;
        }
        int nce = 0, nmm = 0, ce = -1;
        for (int i = 0; i < g->nnodes; i++) {
            const IrNode *n = &g->nodes[i];
            if (n->dead || n->phase != IR_FORWARD) continue;
            if (n->op == IR_OP_LinearCrossEntropy) nce++, ce = i;
            nmm += n->op == IR_OP_MatMul || n->op == IR_OP_Transpose;
        }
        CHECK_EQ_INT(nce, tw < 2);
        CHECK_EQ_INT(nmm, tw == 2);
        CHECK(ir_param_grad(g, ir_value_find(g, "x")) >= 0 && ir_param_grad(g, ir_value_find(g, "w")) >= 0);
        if (ce >= 0) {
            const IrNode *n = &g->nodes[ce];
            CHECK(ir_attr_int(n, "trans_w", -1) == tw && n->in[1] == ir_value_find(g, "w"));
            int *saved, ns = ir_saved_values(g, &saved), found = 0;
            for (int i = 0; i < ns; i++) found += saved[i] == n->out[1] || saved[i] == n->out[2];
            CHECK(found == 2);
            free(saved);
            covered[IR_OP_LinearCrossEntropy] |= COV_KERNEL;
        }
        ir_graph_free(g);
    }
}

/* Every op the gradient table marks differentiable has a numeric check, and
 * the table agrees with the op table's flags. */
/* loom.Attention (optimizer/fuse_attention.c makes it): its gradient is one
 * loom.AttentionGrad reading dO, Q, K, V, O, LSE and the mask, so the saved
 * tensors are Q, K, V, O and LSE (the mask is a constant); Q, K and V get
 * their gradients, the mask none. */
static void test_attention_grad(void)
{
    IrGraph *g = G();
    int x = PARAM("x", -0.5, 2, 3, 4), wk = PARAM("wk", -0.5, 2, 5, 4), wv = PARAM("wv", -0.5, 2, 5, 6);
    int q = OP(Relu, x), k = OP(Relu, wk), v = OP(Relu, wv); /* activations, as in a model */
    int mask = CONSTF("mask", -0.5, 3, 5);
    int outs[2] = {ir_value_new(g, "o", IR_ACTIVATION), ir_value_new(g, "lse", IR_ACTIVATION)};
    int fwd = ir_node_new(g, IR_OP_Attention, "attn", 4, I(q, k, v, mask), 2, outs);
    ir_attr_set_float(g, fwd, "scale", 0.5f);
    set_loss(g, outs[0]);
    IrTrainOptions o;
    ir_train_defaults(&o);
    CHECK(infer_all(g) == 0);
    CHECK(g->values[outs[1]].rank == 2 && g->values[outs[1]].dims[1] == 3);
    if (ir_build_training(g, &o) < 0) {
        fprintf(stderr, "  %s\n", g->err);
        check_failed_ = 1;
    }
    CHECK(ir_verify(g) == 0);
    int grads = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->op != IR_OP_AttentionGrad) continue;
        grads++;
        CHECK(n->nin == 7 && n->nout == 3 && ir_attr_float(n, "scale", 0) == 0.5f);
        CHECK(n->in[1] == ir_value_find(g, g->values[q].name) && n->in[6] == ir_value_find(g, "mask"));
        CHECK(n->in[4] == ir_value_find(g, "o") && n->in[5] == ir_value_find(g, "lse"));
    }
    CHECK(grads == 1);
    int *saved, ns = ir_saved_values(g, &saved), found = 0;
    for (int i = 0; i < ns; i++) {
        const char *name = g->values[saved[i]].name;
        found += !strcmp(name, "o") || !strcmp(name, "lse");
    }
    CHECK(found == 2);
    free(saved);
    static const char *trained[] = {"x", "wk", "wv"};
    for (int i = 0; i < 3; i++) CHECK(ir_param_grad(g, ir_value_find(g, trained[i])) >= 0);
    note_kernel_checked(g);
    for (int i = 0; i < g->nnodes; i++) /* 2 matrices x 15 pairs x (2 (D + Dv) + 6) */
        if (g->nodes[i].op == IR_OP_Attention) CHECK(ir_node_flops(g, i) == 2 * 15 * (2 * (4 + 6) + 6));
    ir_graph_free(g);
}

static void test_every_grad_checked(void)
{
    int n = 0;
    for (int op = 0; op < IR_NOPS; op++) {
        /* an op flagged OPF_NO_GRAD (every backward and update op) has no rule; an
         * internal op with one (a fused forward op: loom.Attention) needs its
         * check like any other */
        if (ir_ops[op].flags & OPF_NO_GRAD) {
            CHECK(!ir_op_has_grad((IrOp)op) && !ir_grad_input((IrOp)op, 0));
            continue;
        }
        if (!ir_op_has_grad((IrOp)op)) continue;
        n++;
        if (!covered[op]) {
            fprintf(stderr, "  %s has a gradient rule but no numeric gradient check\n", ir_ops[op].name);
            check_failed_ = 1;
        }
    }
    int ev = 0, kn = 0;
    for (int op = 0; op < IR_NOPS; op++) ev += (covered[op] & COV_EVAL) != 0, kn += covered[op] == COV_KERNEL;
    printf("  %d differentiable ops: %d checked in float64 here, %d only through their kernels:", n, ev, kn);
    for (int op = 0; op < IR_NOPS; op++)
        if (covered[op] == COV_KERNEL) printf(" %s", ir_ops[op].name);
    printf("\n");
    CHECK(ir_grad_input(IR_OP_Gather, 0) && !ir_grad_input(IR_OP_Gather, 1));
    CHECK(!ir_grad_input(IR_OP_Where, 0) && ir_grad_input(IR_OP_Where, 2));
    CHECK(ir_grad_input(IR_OP_Concat, 40) && !ir_op_has_grad(IR_OP_Mod));
}

/* A float32 value of `role`, zeros for a parameter (shapes are all the fold reads). */
static int f32v(IrGraph *g, const char *name, IrRole role, int rank, const int64_t *dims)
{
    int v = ir_value_new(g, name, role);
    ir_value_set_shape(&g->values[v], IR_F32, rank, dims);
    if (role == IR_PARAM) ir_value_set_data(g, v, calloc((size_t)ir_value_numel(&g->values[v]), sizeof(float)));
    return v;
}

/* x -> Conv -> BatchNormalization (inference form) -> Relu -> `after`: the
 * Relu's output; *z the Conv's output, *bias the BatchNormalization's */
static int conv_bn_relu(IrGraph *g, int x, int c, int m, const char *tag, int *z, int *bias)
{
    char nm[32];
    snprintf(nm, sizeof nm, "%s.w", tag);
    int w = f32v(g, nm, IR_PARAM, 4, D(m, c, 3, 3));
    *z = OP(Conv, x, w);
    ATTR_IS("pads", 1, 1, 1, 1);
    int v[4];
    for (int k = 0; k < 4; k++) {
        snprintf(nm, sizeof nm, "%s.bn%d", tag, k);
        v[k] = f32v(g, nm, IR_PARAM, 1, D(m));
    }
    *bias = v[1];
    return OP(Relu, OP(BatchNormalization, *z, v[0], v[1], v[2], v[3]));
}

/* ir_fold_bn_relu_grad on three float32 chains: A, Conv -> BN -> Relu ->
 * Conv, and B, Conv -> BN -> Relu -> MaxPool -> Conv, fold (no backward node
 * reads their Relu outputs; each BatchNormGrad has relu 1 and its bias, A's
 * second Conv's weight gradient and B's MaxPoolGrad read the first Conv's
 * output and the four vectors); C, whose Relu output a Mul by itself reads,
 * keeps it and its ActivationGrad. no_fold_bn_relu leaves all three as
 * autodiff made them. */
static void test_fold_bn_relu(void)
{
    for (int nofold = 0; nofold < 2; nofold++) {
        IrGraph *g = G();
        int x = f32v(g, "x", IR_INPUT, 4, D(2, 3, 6, 6)), za, zb, ba, bb;
        g->inputs = realloc(g->inputs, sizeof(int));
        g->inputs[g->ninputs++] = x;
        int ya = conv_bn_relu(g, x, 3, 4, "a", &za, &ba), yb = conv_bn_relu(g, x, 3, 4, "b", &zb, &bb), zc, bc;
        int yc = conv_bn_relu(g, x, 3, 4, "c", &zc, &bc);
        int ua = OP(Conv, ya, f32v(g, "a.w2", IR_PARAM, 4, D(5, 4, 3, 3)));
        int pb = OP(MaxPool, yb);
        ATTR_IS("kernel_shape", 2, 2);
        ATTR_IS("strides", 2, 2);
        int ub = OP(Conv, pb, f32v(g, "b.w2", IR_PARAM, 4, D(5, 4, 1, 1)));
        set_loss(g, OP(Add, OP(Add, OP(ReduceSum, ua), OP(ReduceSum, ub)), OP(ReduceSum, OP(Mul, yc, yc))));
        const char *za_name = g->values[za].name, *ba_name = g->values[ba].name;
        const char *zb_name = g->values[zb].name, *bb_name = g->values[bb].name;
        const char *ya_name = g->values[ya].name, *yb_name = g->values[yb].name, *yc_name = g->values[yc].name;
        IrTrainOptions o;
        ir_train_defaults(&o);
        o.optimizer = IR_OPTIM_NONE;
        o.no_fold_bn_relu = nofold;
        if (infer_all(g) < 0 || ir_build_training(g, &o) < 0 || ir_verify(g) < 0) {
            fprintf(stderr, "  %s\n", g->err);
            CHECK(0);
            ir_graph_free(g);
            return;
        }
        int acts = 0, relu_bng = 0, conv6 = 0, pool7 = 0, reads_ya = 0, reads_yb = 0, reads_yc = 0;
        int va = ir_value_find(g, za_name), vb = ir_value_find(g, ba_name);
        int vzb = ir_value_find(g, zb_name), vbb = ir_value_find(g, bb_name);
        int vya = ir_value_find(g, ya_name), vyb = ir_value_find(g, yb_name), vyc = ir_value_find(g, yc_name);
        for (int i = 0; i < g->nnodes; i++) {
            const IrNode *n = &g->nodes[i];
            if (n->dead) continue;
            acts += n->op == IR_OP_ActivationGrad;
            if (n->op == IR_OP_BatchNormGrad && ir_attr_int(n, "relu", 0)) {
                relu_bng++;
                CHECK(n->nin == 6 && ((n->in[1] == va && n->in[5] == vb) || (n->in[1] == vzb && n->in[5] == vbb)));
            }
            if (n->op == IR_OP_ConvGradWeight && n->nin == 6) {
                conv6++;
                CHECK(n->in[1] == va && n->in[3] == vb);
            }
            if (n->op == IR_OP_MaxPoolGrad && n->nin == 7) {
                pool7++;
                CHECK(n->in[1] == vzb && n->in[2] < 0 && n->in[4] == vbb);
            }
            for (int j = 0; n->phase != IR_FORWARD && j < n->nin; j++)
                reads_ya += n->in[j] == vya, reads_yb += n->in[j] == vyb, reads_yc += n->in[j] == vyc;
        }
        CHECK(va >= 0 && vb >= 0 && vzb >= 0 && vbb >= 0 && vya >= 0 && vyb >= 0 && vyc >= 0);
        CHECK_EQ_INT(acts, nofold ? 3 : 1);
        CHECK_EQ_INT(relu_bng, nofold ? 0 : 2);
        CHECK_EQ_INT(conv6, nofold ? 0 : 1);
        CHECK_EQ_INT(pool7, nofold ? 0 : 1);
        CHECK_EQ_INT(reads_ya, nofold ? 2 : 0);
        CHECK_EQ_INT(reads_yb, nofold ? 2 : 0);
        CHECK(reads_yc >= 2);
        ir_graph_free(g);
    }
}

static void test_update(void)
{
    for (int opt = 0; opt < 2; opt++) {
        IrGraph *g = G();
        int a = PARAM("w", -0.5, 3, 2), b = PARAM("b", -0.5, 2);
        int y = OP(Add, OP(MatMul, CONSTF("x", 0, 4, 3), a), b);
        set_loss(g, OP(Mul, y, y));
        IrTrainOptions o;
        ir_train_defaults(&o);
        o.optimizer = opt ? IR_OPTIM_SGD : IR_OPTIM_ADAMW;
        o.momentum = 0.9f;
        o.nesterov = 1;
        o.clip_norm = 1.0f;
        CHECK(infer_all(g) == 0);
        CHECK(ir_build_training(g, &o) == 0);
        CHECK(ir_verify(g) == 0);
        int lr = ir_value_find(g, "opt/lr");
        CHECK(lr >= 0 && g->values[lr].role == IR_OPT_STATE && g->values[lr].data);
        CHECK((ir_value_find(g, "opt/step") >= 0) == !opt);
        CHECK(ir_value_find(g, "opt/grad_norm") >= 0 && ir_value_find(g, "opt/clip_scale") >= 0);
        static const char *pn[] = {"w", "b"};
        for (int i = 0; i < 2; i++) {
            char buf[64];
            int p = ir_value_find(g, pn[i]);
            snprintf(buf, sizeof buf, "next/%s", pn[i]);
            int nx = ir_value_find(g, buf);
            CHECK(nx >= 0 && g->values[nx].alias == p);
            CHECK(g->nodes[g->values[nx].producer].phase == IR_UPDATE);
            CHECK_EQ_INT(g->nodes[g->values[nx].producer].op, opt ? IR_OP_SGD : IR_OP_AdamW);
            snprintf(buf, sizeof buf, opt ? "momentum/%s" : "m/%s", pn[i]);
            int st = ir_value_find(g, buf);
            CHECK(st >= 0 && g->values[st].role == IR_OPT_STATE);
            snprintf(buf, sizeof buf, opt ? "next/momentum/%s" : "next/m/%s", pn[i]);
            CHECK(ir_value_find(g, buf) >= 0 && g->values[ir_value_find(g, buf)].alias == st);
        }
        ir_graph_free(g);
    }
}

/* ---- the zoo ---- */

typedef struct {
    IrOp op;
    const char *name;
    int nin, nout;
    const char *io[16];
} NodeSnap;

static void zoo_one(const char *model, IrLossKind kind, const char *freeze)
{
    char path[256];
    snprintf(path, sizeof path, "models/%s/model.onnx", model);
    IrGraph *g = ir_graph_new(path);
    if (onnx_load(g, NULL, 0) < 0 || onnx_fold_infer(g) < 0) {
        fprintf(stderr, "  %s: %s\n", model, g->err);
        check_failed_ = 1;
        ir_graph_free(g);
        return;
    }
    int nf = g->nnodes;
    NodeSnap *snap = calloc((size_t)nf, sizeof *snap);
    for (int i = 0; i < nf; i++) {
        const IrNode *n = &g->nodes[i];
        snap[i].op = n->op;
        snap[i].name = n->name;
        snap[i].nin = n->nin;
        snap[i].nout = n->nout;
        for (int j = 0; j < n->nin + n->nout && j < 16; j++) {
            int v = j < n->nin ? n->in[j] : n->out[j - n->nin];
            snap[i].io[j] = v >= 0 ? g->values[v].name : NULL;
        }
    }
    int nparams = 0;
    for (int v = 0; v < g->nvalues; v++) nparams += g->values[v].role == IR_PARAM;
    IrTrainOptions o;
    ir_train_defaults(&o);
    o.loss_kind = kind;
    o.target = "target_y";
    o.freeze_regex = freeze;
    o.no_fuse_head = 1; /* the forward nodes stay as they are (test_linear_ce_head fuses the head) */
    if (ir_build_training(g, &o) < 0 || ir_verify(g) < 0) {
        fprintf(stderr, "  %s: %s\n", model, g->err);
        check_failed_ = 1;
        free(snap);
        ir_graph_free(g);
        return;
    }
    /* forward nodes: first, in order, untouched */
    for (int i = 0; i < nf; i++) {
        const IrNode *n = &g->nodes[i];
        int same = n->op == snap[i].op && !strcmp(n->name, snap[i].name) && n->nin == snap[i].nin &&
                   n->nout == snap[i].nout && n->phase == IR_FORWARD;
        for (int j = 0; same && j < n->nin + n->nout && j < 16; j++) {
            int v = j < n->nin ? n->in[j] : n->out[j - n->nin];
            same = (v < 0 && !snap[i].io[j]) || (v >= 0 && snap[i].io[j] &&
                                                  !strcmp(g->values[v].name, snap[i].io[j]));
        }
        if (!same) {
            fprintf(stderr, "  %s: forward node %d (%s) changed\n", model, i, snap[i].name);
            check_failed_ = 1;
            break;
        }
    }
    /* every trained parameter: one gradient of its shape and dtype, one update */
    int ngrad = 0, nparam_now = 0, nfrozen = 0;
    regex_t re;
    if (freeze) CHECK(regcomp(&re, freeze, REG_EXTENDED | REG_NOSUB) == 0);
    for (int p = 0; p < g->nvalues; p++) {
        const IrValue *pv = &g->values[p];
        if (pv->role != IR_PARAM) continue;
        nparam_now++;
        int gv = ir_param_grad(g, p);
        int frozen = freeze && regexec(&re, pv->name, 0, NULL, 0) == 0;
        nfrozen += frozen;
        if (frozen || strstr(pv->name, "running_")) {
            CHECK(gv < 0);
            continue;
        }
        if (gv < 0) {
            fprintf(stderr, "  %s: parameter %s has no gradient\n", model, pv->name);
            check_failed_ = 1;
            continue;
        }
        ngrad++;
        const IrValue *gq = &g->values[gv];
        CHECK(gq->dtype == pv->dtype && gq->rank == pv->rank &&
              !memcmp(gq->dims, pv->dims, pv->rank * sizeof(int64_t)));
        CHECK(g->nodes[gq->producer].phase == IR_BACKWARD);
        char buf[600];
        snprintf(buf, sizeof buf, "next/%s", pv->name);
        int nx = ir_value_find(g, buf);
        CHECK(nx >= 0 && g->values[nx].alias == p);
    }
    if (freeze) {
        CHECK(nfrozen > 0);
        regfree(&re);
    }
    CHECK_EQ_INT(nparam_now, nparams);
    int grads = 0;
    for (int v = 0; v < g->nvalues; v++) grads += g->values[v].role == IR_GRAD;
    CHECK_EQ_INT(grads, ngrad);
    CHECK(ngrad > 0);
    /* shapes re-infer to the same and the loss is a scalar */
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        IrValue before[8];
        int k = n->nout < 8 ? n->nout : 8;
        for (int j = 0; j < k; j++) before[j] = g->values[n->out[j]];
        if (ir_infer_node(g, i) < 0) {
            fprintf(stderr, "  %s: %s\n", model, g->err);
            check_failed_ = 1;
            break;
        }
        for (int j = 0; j < k; j++) {
            const IrValue *a = &g->values[n->out[j]];
            CHECK(a->dtype == before[j].dtype && a->rank == before[j].rank &&
                  !memcmp(a->dims, before[j].dims, a->rank * sizeof(int64_t)));
        }
        if (n->phase == IR_BACKWARD && n->fwd >= 0) CHECK(g->nodes[n->fwd].phase == IR_FORWARD);
        if (n->phase == IR_FORWARD) CHECK(i < nf || g->values[n->out[0]].role == IR_LOSS ||
                                          (kind != IR_LOSS_MODEL));
    }
    int loss = ir_loss_value(g);
    CHECK(loss >= 0 && ir_value_numel(&g->values[loss]) == 1);
    CHECK(ir_value_find(g, "target_y") >= 0 && g->values[ir_value_find(g, "target_y")].role == IR_INPUT);
    printf("  %s: %d nodes forward, %d in all; %d gradients, %d saved tensors\n", model, nf,
           g->nnodes, ngrad, ir_saved_values(g, NULL));
    free(snap);
    ir_graph_free(g);
}

static void test_zoo(void)
{
    static const struct {
        const char *name;
        IrLossKind kind;
    } zoo[] = {{"mlp", IR_LOSS_CE},       {"gpt2_tiny", IR_LOSS_CE}, {"llama_tiny", IR_LOSS_CE},
               {"resnet_small", IR_LOSS_CE}, {"vit_tiny", IR_LOSS_CE}, {"unet_small", IR_LOSS_MSE},
               {"fno_small", IR_LOSS_MSE}};
    for (size_t i = 0; i < sizeof zoo / sizeof *zoo; i++) zoo_one(zoo[i].name, zoo[i].kind, NULL);
}

static void test_zoo_freeze(void)
{
    zoo_one("gpt2_tiny", IR_LOSS_CE, "\\.h\\.0\\.");
    zoo_one("resnet_small", IR_LOSS_CE, "^blocks\\.0\\.");
}

int main(void)
{
    RUN(test_broadcast_arith);
    RUN(test_unary);
    RUN(test_matmul);
    RUN(test_gemm);
    RUN(test_einsum);
    RUN(test_movement);
    RUN(test_reductions);
    RUN(test_mse);
    RUN(test_conv);
    RUN(test_more_forward_ops);
    RUN(test_freeze_and_unreachable);
    RUN(test_refusals);
    RUN(test_internal_grads);
    RUN(test_internal_more);
    RUN(test_attention_grad);
    RUN(test_fold_bn_relu);
    RUN(test_linear_ce_head);
    RUN(test_update);
    RUN(test_zoo);
    RUN(test_zoo_freeze);
    RUN(test_every_grad_checked);
    return CHECK_DONE();
}
