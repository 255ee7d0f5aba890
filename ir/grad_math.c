/* Gradient rules, part one: elementwise ops (unary, broadcasting binary,
 * variadic, Where, Clip, Cast, Dropout), reductions, CumSum, the matrix
 * products (MatMul, Gemm, Einsum) and data movement (Reshape and its kin,
 * Transpose, Concat, Split, Slice, Expand, Tile, Pad, Trilu, ScatterND).
 * Every gradient here is written with forward ops of the table, so it
 * evaluates and constant-folds like any forward node; the piecewise
 * activations go to one internal op, loom.ActivationGrad. A broadcasting op
 * sums each input's gradient back to that input's shape (grad_unbroadcast).
 * The rule for each op follows PyTorch's derivative where one is defined at a
 * kink (relu'(0) = 0, |x|'(0) = 0, ties of Max/Min/ReduceMax share the
 * gradient equally, clip passes it where min <= x <= max). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#define LOOM_GRAD_RULES
#include "grad.h"


/* ---- elementwise ---- */

GRAD_RULE(unary)
{
    int gy = dy[0];
    const int *in = N->in;
    int x = in[0], y = N->out[0];
    IrDType dt = DT(x);
    int r;
    switch (N->op) {
    case IR_OP_Identity: r = gy; break;
    case IR_OP_Neg: r = GOP(c, Neg, gy); break;
    case IR_OP_Abs: r = GOP(c, Mul, gy, GOP(c, Sign, x)); break;
    case IR_OP_Sqrt: r = GOP(c, Div, gy, GOP(c, Mul, y, grad_scalar(c, dt, 2))); break;
    case IR_OP_Reciprocal: r = GOP(c, Neg, GOP(c, Mul, gy, GOP(c, Mul, y, y))); break;
    case IR_OP_Exp: r = GOP(c, Mul, gy, y); break;
    case IR_OP_Log: r = GOP(c, Div, gy, x); break;
    case IR_OP_Sin: r = GOP(c, Mul, gy, GOP(c, Cos, x)); break;
    case IR_OP_Cos: r = GOP(c, Neg, GOP(c, Mul, gy, GOP(c, Sin, x))); break;
    case IR_OP_Tanh:
        r = GOP(c, Mul, gy, GOP(c, Sub, grad_scalar(c, dt, 1), GOP(c, Mul, y, y)));
        break;
    case IR_OP_Sigmoid:
        r = GOP(c, Mul, gy, GOP(c, Mul, y, GOP(c, Sub, grad_scalar(c, dt, 1), y)));
        break;
    case IR_OP_Erf: {
        /* 2/sqrt(pi) exp(-x^2) */
        int e = GOP(c, Exp, GOP(c, Neg, GOP(c, Mul, x, x)));
        r = GOP(c, Mul, gy, GOP(c, Mul, e, grad_scalar(c, dt, 1.1283791670955126)));
        break;
    }
    case IR_OP_Softplus: r = GOP(c, Mul, gy, GOP(c, Sigmoid, x)); break;
    case IR_OP_Softsign: {
        int t = GOP(c, Add, grad_scalar(c, dt, 1), GOP(c, Abs, x));
        r = GOP(c, Div, gy, GOP(c, Mul, t, t));
        break;
    }
    case IR_OP_Relu: case IR_OP_LeakyRelu: case IR_OP_Elu: case IR_OP_Selu:
    case IR_OP_HardSigmoid: case IR_OP_HardSwish: case IR_OP_Gelu: {
        int fwd = c->node;
        /* Relu's and (alpha >= 0) LeakyRelu's slope depends only on the sign,
         * and y > 0 exactly where x > 0: read y, the value the next op (a
         * conv's weight gradient, say) keeps anyway, so that x need not be
         * kept for backward (a BatchNormalization's output in a CNN). The
         * same bits either way. */
        int v = N->op == IR_OP_Relu || (N->op == IR_OP_LeakyRelu && ir_attr_float(N, "alpha", 0.01f) >= 0) ? y : x;
        int n = grad_begin(c, IR_OP_ActivationGrad, 2, (int[]){gy, v}, 1);
        grad_copy_attrs(G, n, fwd);
        ir_attr_set_string(G, n, "act", ir_ops[G->nodes[fwd].op].name);
        r = grad_end(c, n);
        break;
    }
    case IR_OP_Cast:
        if (!ir_dtype_is_float(dt)) return 0;
        if (DT(gy) == dt) {
            r = gy;
        } else {
            int n = grad_begin(c, IR_OP_Cast, 1, &gy, 1);
            ir_attr_set_int(G, n, "to", dt);
            r = grad_end(c, n);
        }
        break;
    default: IR_ASSERT(!"an op without a unary rule in the gradient table"); return -1;
    }
    GIVE(0, r);
    return 0;
}

/* Clip: the gradient passes where min <= x <= max (bounds are inputs from
 * opset 11, attributes before). */
GRAD_RULE(clip)
{
    int gy = dy[0];
    const int *in = N->in;
    int x = in[0];
    IrDType dt = DT(x);
    int lo = ir_in(N, 1), hi = ir_in(N, 2);
    if (G->opset < 11) {
        const IrAttr *a = ir_attr_find(N, "min"), *b = ir_attr_find(N, "max");
        lo = a ? grad_scalar(c, dt, a->u.f) : -1;
        hi = b ? grad_scalar(c, dt, b->u.f) : -1;
    }
    int cond = -1;
    if (lo >= 0) cond = GOP(c, GreaterOrEqual, x, lo);
    if (hi >= 0) {
        int h = GOP(c, LessOrEqual, x, hi);
        cond = cond >= 0 ? GOP(c, And, cond, h) : h;
    }
    GIVE(0, cond >= 0 ? grad_select(c, cond, gy) : gy);
    return 0;
}

/* Dropout in training mode (autodiff set it so): dy where the mask kept the
 * element, scaled by 1 / (1 - ratio). */
GRAD_RULE(dropout)
{
    int gy = dy[0];
    const int *in = N->in;
    int mask = N->nout > 1 ? N->out[1] : -1;
    IR_ASSERT(mask >= 0);
    double ratio = ir_attr_float(N, "ratio", 0.5f);
    if (ir_in(N, 1) >= 0 && ir_const_scalar(G, in[1], &ratio) < 0)
        return ir_fail(G, c->node, "the ratio '%s' must be a constant to train through Dropout",
                       V(in[1])->name);
    IrDType dt = DT(gy);
    int kept = DT(mask) == IR_BOOL ? grad_select(c, mask, gy) : GOP(c, Mul, gy, mask);
    GIVE(0, GOP(c, Mul, kept, grad_scalar(c, dt, ratio < 1 ? 1 / (1 - ratio) : 0)));
    return 0;
}

GRAD_RULE(where)
{
    int gy = dy[0];
    const int *in = N->in;
    int cond = in[0];
    if (want[1]) GIVE(1, grad_unbroadcast(c, grad_select(c, cond, gy), in[1]));
    if (want[2])
        GIVE(2, grad_unbroadcast(c, GOP(c, Where, cond, grad_scalar(c, DT(gy), 0), gy), in[2]));
    return 0;
}

GRAD_RULE(binary)
{
    int gy = dy[0];
    const int *in = N->in;
    int a = in[0], b = in[1], y = N->out[0];
    IrDType dt = DT(gy);
    switch (N->op) {
    case IR_OP_Add:
        if (want[0]) GIVE(0, grad_unbroadcast(c, gy, a));
        if (want[1]) GIVE(1, grad_unbroadcast(c, gy, b));
        return 0;
    case IR_OP_Sub:
        if (want[0]) GIVE(0, grad_unbroadcast(c, gy, a));
        if (want[1]) GIVE(1, grad_unbroadcast(c, GOP(c, Neg, gy), b));
        return 0;
    case IR_OP_Mul:
        if (want[0]) GIVE(0, grad_unbroadcast(c, GOP(c, Mul, gy, b), a));
        if (want[1]) GIVE(1, grad_unbroadcast(c, GOP(c, Mul, gy, a), b));
        return 0;
    case IR_OP_Div:
        if (want[0]) GIVE(0, grad_unbroadcast(c, GOP(c, Div, gy, b), a));
        if (want[1])
            GIVE(1, grad_unbroadcast(c, GOP(c, Neg, GOP(c, Div, GOP(c, Mul, gy, y), b)), b));
        return 0;
    case IR_OP_Pow: {
        if (want[0]) {
            /* b * a^(b-1); the common constant exponents need no Pow */
            double e;
            int d;
            if (ir_const_scalar(G, b, &e) == 0 && ir_value_numel(V(b)) == 1 && (e == 1 || e == 2)) {
                d = e == 1 ? gy : GOP(c, Mul, gy, GOP(c, Mul, a, grad_scalar(c, dt, 2)));
            } else {
                int bf = b;
                if (DT(b) != dt) {
                    int n = grad_begin(c, IR_OP_Cast, 1, &b, 1);
                    ir_attr_set_int(G, n, "to", dt);
                    bf = grad_end(c, n);
                }
                int p = GOP(c, Pow, a, GOP(c, Sub, bf, grad_scalar(c, dt, 1)));
                d = GOP(c, Mul, gy, GOP(c, Mul, bf, p));
            }
            GIVE(0, grad_unbroadcast(c, d, a));
        }
        if (want[1]) GIVE(1, grad_unbroadcast(c, GOP(c, Mul, gy, GOP(c, Mul, y, GOP(c, Log, a))), b));
        return 0;
    }
    case IR_OP_PRelu: {
        int pos = GOP(c, Greater, a, grad_scalar(c, dt, 0));
        if (want[0]) GIVE(0, GOP(c, Where, pos, gy, GOP(c, Mul, gy, b)));
        if (want[1])
            GIVE(1, grad_unbroadcast(c, GOP(c, Where, pos, grad_scalar(c, dt, 0), GOP(c, Mul, gy, a)),
                                     b));
        return 0;
    }
    default: IR_ASSERT(!"an op without a binary rule in the gradient table"); return -1;
    }
}

/* Sum, Mean, Max, Min over any number of broadcasting inputs. */
GRAD_RULE(variadic)
{
    int gy = dy[0];
    const int *in = N->in;
    int nin = N->nin, y = N->out[0];
    IrOp op = N->op;
    IrDType dt = DT(gy);
    if (op == IR_OP_Sum || op == IR_OP_Mean || nin == 1) {
        int s = op == IR_OP_Mean && nin > 1 ? GOP(c, Mul, gy, grad_scalar(c, dt, 1.0 / nin)) : gy;
        for (int i = 0; i < nin; i++)
            if (want[i]) GIVE(i, grad_unbroadcast(c, s, in[i]));
        return 0;
    }
    /* Max/Min: to the inputs equal to the result, shared among ties */
    int eq[64], cnt = -1;
    for (int i = 0; i < nin; i++) {
        int e = GOP(c, Equal, in[i], y);
        int k = grad_begin(c, IR_OP_Cast, 1, &e, 1);
        ir_attr_set_int(G, k, "to", dt);
        eq[i] = grad_end(c, k);
        cnt = cnt < 0 ? eq[i] : GOP(c, Add, cnt, eq[i]);
    }
    int share = GOP(c, Div, gy, cnt);
    for (int i = 0; i < nin; i++)
        if (want[i]) GIVE(i, grad_unbroadcast(c, GOP(c, Mul, share, eq[i]), in[i]));
    return 0;
}

/* ---- reductions ---- */

GRAD_RULE(reduce)
{
    int gy = dy[0];
    const int *in = N->in;
    int x = in[0], y = N->out[0];
    IrOp op = N->op;
    IrDType dt = DT(x);
    unsigned char mask[IR_MAX_RANK];
    int noop;
    if (ir_reduce_axes(G, c->node, mask, &noop) < 0) return -1;
    if (noop) {
        GIVE(0, gy);
        return 0;
    }
    /* the result's shape with the reduced axes kept as 1 */
    int r = V(x)->rank;
    int64_t kd[IR_MAX_RANK];
    double count = 1;
    for (int d = 0; d < r; d++) {
        kd[d] = mask[d] ? 1 : V(x)->dims[d];
        if (mask[d]) count *= (double)V(x)->dims[d];
    }
    int gk = grad_reshape(c, gy, r, kd);
    int res;
    switch (op) {
    case IR_OP_ReduceSum: res = grad_expand_like(c, gk, x); break;
    case IR_OP_ReduceMean:
        res = GOP(c, Mul, grad_expand_like(c, gk, x), grad_scalar(c, dt, count > 0 ? 1 / count : 0));
        break;
    case IR_OP_ReduceMax: case IR_OP_ReduceMin: {
        int e = GOP(c, Equal, x, grad_reshape(c, y, r, kd));
        int k = grad_begin(c, IR_OP_Cast, 1, &e, 1);
        ir_attr_set_int(G, k, "to", dt);
        int ef = grad_end(c, k);
        int cnt = grad_reduce_sum(c, ef, mask, 1);
        res = GOP(c, Mul, ef, GOP(c, Div, gk, cnt));
        break;
    }
    case IR_OP_ReduceProd: res = GOP(c, Div, GOP(c, Mul, gk, grad_reshape(c, y, r, kd)), x); break;
    case IR_OP_ReduceL1: res = GOP(c, Mul, gk, GOP(c, Sign, x)); break;
    case IR_OP_ReduceL2: res = GOP(c, Div, GOP(c, Mul, gk, x), grad_reshape(c, y, r, kd)); break;
    case IR_OP_ReduceSumSquare: res = GOP(c, Mul, GOP(c, Mul, gk, x), grad_scalar(c, dt, 2)); break;
    case IR_OP_ReduceLogSumExp:
        res = GOP(c, Mul, gk, GOP(c, Exp, GOP(c, Sub, x, grad_reshape(c, y, r, kd))));
        break;
    default: IR_ASSERT(!"an op without a reduction rule in the gradient table"); return -1;
    }
    GIVE(0, grad_expand_like(c, res, x));
    return 0;
}

GRAD_RULE(cumsum)
{
    int gy = dy[0];
    const int *in = N->in;
    int fwd = c->node;
    int n = grad_begin(c, IR_OP_CumSum, 2, (int[]){gy, in[1]}, 1);
    grad_copy_attrs(G, n, fwd);
    ir_attr_set_int(G, n, "reverse", !ir_attr_int(&G->nodes[fwd], "reverse", 0));
    GIVE(0, grad_end(c, n));
    return 0;
}

/* ---- matrix products ---- */

static int gemm(GradCtx *c, int a, int b, int ta, int tb, float alpha)
{
    if (a < 0 || b < 0) return -1;
    int n = grad_begin(c, IR_OP_Gemm, 2, (int[]){a, b}, 1);
    if (ta) ir_attr_set_int(G, n, "transA", 1);
    if (tb) ir_attr_set_int(G, n, "transB", 1);
    if (alpha != 1) ir_attr_set_float(G, n, "alpha", alpha);
    return grad_end(c, n);
}

/* Swap the last two axes. */
static int transpose_last2(GradCtx *c, int x)
{
    int r = V(x)->rank;
    int64_t perm[IR_MAX_RANK];
    for (int i = 0; i < r; i++) perm[i] = i;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return grad_transpose(c, x, perm);
}

GRAD_RULE(matmul)
{
    int gy = dy[0];
    const int *in = N->in;
    int a = in[0], b = in[1];
    int ra = V(a)->rank, rb = V(b)->rank;
    if (ra == 1 && rb == 1) { /* a dot product */
        if (want[0]) GIVE(0, GOP(c, Mul, gy, b));
        if (want[1]) GIVE(1, GOP(c, Mul, gy, a));
        return 0;
    }
    /* view a as [..., M, K], b as [..., K, N], the result as [batch..., M, N] */
    int64_t ad[IR_MAX_RANK], bd[IR_MAX_RANK], yd[IR_MAX_RANK + 2];
    int ra2 = ra < 2 ? 2 : ra, rb2 = rb < 2 ? 2 : rb;
    if (ra == 1) ad[0] = 1, ad[1] = V(a)->dims[0];
    else memcpy(ad, V(a)->dims, ra * sizeof *ad);
    if (rb == 1) bd[0] = V(b)->dims[0], bd[1] = 1;
    else memcpy(bd, V(b)->dims, rb * sizeof *bd);
    int yr = V(gy)->rank - (ra >= 2) - (rb >= 2);
    memcpy(yd, V(gy)->dims, yr * sizeof *yd);
    yd[yr] = ad[ra2 - 2];
    yd[yr + 1] = bd[rb2 - 1];
    int a2 = grad_reshape(c, a, ra2, ad), b2 = grad_reshape(c, b, rb2, bd);
    int g2 = grad_reshape(c, gy, yr + 2, yd);
    if (rb2 == 2) {
        /* b is a matrix: fold a's batch into its rows and use two Gemms */
        int64_t k = ad[ra2 - 1], nn = bd[1], rows = ir_value_numel(V(a2)) / (k ? k : 1);
        int64_t gf_d[2] = {rows, nn}, af_d[2] = {rows, k};
        int gf = grad_reshape(c, g2, 2, gf_d);
        if (want[0]) GIVE(0, grad_reshape_like(c, gemm(c, gf, b2, 0, 1, 1), a));
        if (want[1]) GIVE(1, grad_reshape_like(c, gemm(c, grad_reshape(c, a2, 2, af_d), gf, 1, 0, 1), b));
        return 0;
    }
    if (want[0]) {
        int d = GOP(c, MatMul, g2, transpose_last2(c, b2));
        GIVE(0, grad_reshape_like(c, grad_unbroadcast(c, d, a2), a));
    }
    if (want[1]) {
        int d = GOP(c, MatMul, transpose_last2(c, a2), g2);
        GIVE(1, grad_reshape_like(c, grad_unbroadcast(c, d, b2), b));
    }
    return 0;
}

GRAD_RULE(gemm)
{
    int gy = dy[0];
    const int *in = N->in;
    int a = in[0], b = in[1];
    int ta = ir_attr_int(N, "transA", 0) != 0, tb = ir_attr_int(N, "transB", 0) != 0;
    float alpha = ir_attr_float(N, "alpha", 1), beta = ir_attr_float(N, "beta", 1);
    if (want[0]) GIVE(0, ta ? gemm(c, b, gy, tb, 1, alpha) : gemm(c, gy, b, 0, !tb, alpha));
    if (want[1]) GIVE(1, tb ? gemm(c, gy, a, 1, ta, alpha) : gemm(c, a, gy, !ta, 0, alpha));
    if (ir_in(N, 2) >= 0 && want[2]) {
        int s = beta == 1 ? gy : GOP(c, Mul, gy, grad_scalar(c, DT(gy), beta));
        GIVE(2, grad_unbroadcast(c, s, in[2]));
    }
    return 0;
}

/* Einsum: operand i's gradient is the Einsum of dy with the other operands
 * onto i's labels; labels only operand i has are summed away forward, so
 * their gradient is broadcast back; '...' dims operand i broadcast are summed. */
GRAD_RULE(einsum)
{
    int gy = dy[0];
    const int *in = N->in;
    IrEinsum e;
    if (ir_einsum_parse(G, c->node, &e) < 0) return -1;
    char ch[60];
    unsigned long long used = 0;
    for (int l = 0; l < 52; l++) ch[l] = l < 26 ? (char)('A' + l) : (char)('a' + l - 26);
    for (int i = 0; i < e.nop; i++)
        for (int j = 0; j < e.rank[i]; j++)
            if (e.lab[i][j] < 52) used |= 1ull << e.lab[i][j];
    for (int l = 52, free_l = 51; l < 60; l++) { /* letters for the '...' dims */
        while (free_l >= 0 && (used >> free_l & 1)) free_l--;
        if (free_l < 0) return ir_fail(G, c->node, "Einsum gradient: no free label for '...' dims");
        ch[l] = ch[free_l];
        used |= 1ull << free_l;
    }
    for (int i = 0; i < e.nop; i++) {
        if (!want[i]) continue;
        char avail[60] = {0};
        for (int j = 0; j < e.out_rank; j++) avail[e.out_lab[j]] = 1;
        for (int k = 0; k < e.nop; k++)
            for (int j = 0; k != i && j < e.rank[k]; j++) avail[e.lab[k][j]] = 1;
        char eq[256];
        int p = 0, ops[IR_MAX_RANK + 1], nops = 0;
        ops[nops++] = gy;
        for (int j = 0; j < e.out_rank; j++) eq[p++] = ch[e.out_lab[j]];
        for (int k = 0; k < e.nop; k++) {
            if (k == i) continue;
            eq[p++] = ',';
            /* '...' dims an operand broadcasts are widened: its labels are letters here */
            int64_t full[IR_MAX_RANK];
            for (int j = 0; j < e.rank[k]; j++) {
                eq[p++] = ch[e.lab[k][j]];
                full[j] = e.size[e.lab[k][j]];
            }
            int o = in[k];
            if (memcmp(full, V(o)->dims, e.rank[k] * sizeof *full))
                o = GOP(c, Expand, o, grad_ints(c, e.rank[k], full));
            ops[nops++] = o;
        }
        eq[p++] = '-', eq[p++] = '>';
        int64_t rd[IR_MAX_RANK], kd[IR_MAX_RANK];
        int rr = 0;
        unsigned char bmask[IR_MAX_RANK] = {0};
        int any_b = 0, any_missing = 0;
        for (int j = 0; j < e.rank[i]; j++) {
            int l = e.lab[i][j];
            int64_t od = V(in[i])->dims[j];
            kd[j] = avail[l] ? od : 1;
            if (!avail[l]) {
                any_missing = 1;
                continue;
            }
            eq[p++] = ch[l];
            bmask[rr] = od == 1 && e.size[l] != 1;
            any_b |= bmask[rr];
            rd[rr++] = e.size[l];
        }
        eq[p] = 0;
        (void)rd;
        int n = grad_begin(c, IR_OP_Einsum, nops, ops, 1);
        ir_attr_set_string(G, n, "equation", eq);
        int r = grad_end(c, n);
        if (r < 0) return -1;
        if (any_b) r = grad_reduce_sum(c, r, bmask, 1);
        if (any_missing) r = grad_expand_like(c, grad_reshape(c, r, e.rank[i], kd), in[i]);
        GIVE(i, r);
    }
    return 0;
}

/* ---- data movement ---- */

/* Reshape, Flatten, Squeeze, Unsqueeze: the gradient takes the input's shape back. */
GRAD_RULE(reshape)
{
    const int *in = N->in;
    GIVE(0, grad_reshape_like(c, dy[0], in[0]));
    return 0;
}

GRAD_RULE(expand)
{
    const int *in = N->in;
    GIVE(0, grad_unbroadcast(c, dy[0], in[0]));
    return 0;
}

GRAD_RULE(transpose)
{
    int gy = dy[0];
    const int *in = N->in;
    int r = V(in[0])->rank;
    int64_t k, inv[IR_MAX_RANK];
    const int64_t *perm = ir_attr_ints(N, "perm", &k);
    for (int i = 0; i < r; i++) inv[perm ? perm[i] : r - 1 - i] = i;
    GIVE(0, grad_transpose(c, gy, inv));
    return 0;
}

GRAD_RULE(concat)
{
    int gy = dy[0];
    const int *in = N->in;
    int nin = N->nin;
    int a = ir_norm_axis(ir_attr_int(N, "axis", 0), V(gy)->rank);
    int64_t off = 0;
    for (int i = 0; i < nin; i++) {
        if (in[i] < 0) continue;
        int64_t len = V(in[i])->dims[a];
        if (want[i]) GIVE(i, grad_slice_axis(c, gy, a, off, off + len));
        off += len;
    }
    return 0;
}

GRAD_RULE(split)
{
    const int *in = N->in, *out = N->out;
    int nout = N->nout;
    if (nout == 1) {
        GIVE(0, dy[0]);
        return 0;
    }
    int a;
    const int64_t *sizes;
    if (ir_split_sizes(G, c->node, &a, &sizes) < 0) return -1;
    int parts[64];
    for (int j = 0; j < nout; j++) parts[j] = dy[j] >= 0 ? dy[j] : grad_zeros_like(c, out[j]);
    int n = grad_begin(c, IR_OP_Concat, nout, parts, 1);
    ir_attr_set_int(G, n, "axis", a);
    GIVE(0, grad_end(c, n));
    return 0;
}

GRAD_RULE(slice)
{
    int gy = dy[0];
    const int *in = N->in;
    int x = in[0], r = V(x)->rank;
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK], pads[2 * IR_MAX_RANK];
    if (ir_slice_params(G, c->node, start, step, len) < 0) return -1;
    int unit = 1;
    for (int d = 0; d < r; d++) unit &= step[d] == 1 || len[d] <= 1;
    if (unit) {
        for (int d = 0; d < r; d++) {
            pads[d] = len[d] ? start[d] : 0;
            pads[r + d] = V(x)->dims[d] - pads[d] - len[d];
        }
        GIVE(0, grad_pad(c, gy, pads));
        return 0;
    }
    int n = grad_begin(c, IR_OP_SliceGrad, 1, &gy, 1);
    ir_attr_set_ints(G, n, "starts", r, start);
    ir_attr_set_ints(G, n, "steps", r, step);
    ir_attr_set_ints(G, n, "shape", r, V(x)->dims);
    GIVE(0, grad_end(c, n));
    return 0;
}

/* Tile: view the result as [r0, d0, r1, d1, ...] (repeated axes only) and
 * sum over the repeats. */
GRAD_RULE(tile)
{
    int gy = dy[0];
    const int *in = N->in;
    int x = in[0], r = V(x)->rank;
    const int64_t *rep;
    if (ir_need_ints(G, c->node, 1, "repeats", 1, &rep) < 0) return -1;
    int64_t d[IR_MAX_RANK];
    unsigned char mask[IR_MAX_RANK] = {0};
    int k = 0;
    for (int i = 0; i < r; i++) {
        if (rep[i] != 1) {
            if (k == IR_MAX_RANK) return ir_fail(G, c->node, "the Tile gradient needs rank %d or less "
                                                 "after splitting the repeated axes", IR_MAX_RANK);
            mask[k] = 1;
            d[k++] = rep[i];
        }
        if (k == IR_MAX_RANK) return ir_fail(G, c->node, "the Tile gradient needs rank %d or less "
                                             "after splitting the repeated axes", IR_MAX_RANK);
        d[k++] = V(x)->dims[i];
    }
    int s = grad_reduce_sum(c, grad_reshape(c, gy, k, d), mask, 0);
    GIVE(0, grad_reshape_like(c, s, x));
    return 0;
}

GRAD_RULE(pad)
{
    int gy = dy[0];
    const int *in = N->in;
    int r = V(in[0])->rank, mode;
    int64_t pads[2 * IR_MAX_RANK];
    if (ir_pad_params(G, c->node, pads, &mode) < 0) return -1;
    if (mode != 0)
        return ir_fail(G, c->node, "the gradient of Pad mode '%s' is not supported; loom "
                       "differentiates constant padding", ir_attr_string(N, "mode", "constant"));
    for (int i = 0; i < 2 * r; i++) pads[i] = -pads[i];
    GIVE(0, grad_pad(c, gy, pads));
    return 0;
}

GRAD_RULE(trilu)
{
    int gy = dy[0];
    int fwd = c->node;
    const int *in = N->in;
    int k = ir_in(N, 1);
    int n = grad_begin(c, IR_OP_Trilu, k >= 0 ? 2 : 1, (int[]){gy, k}, 1);
    grad_copy_attrs(G, n, fwd);
    GIVE(0, grad_end(c, n));
    return 0;
}

GRAD_RULE(scatternd)
{
    int gy = dy[0];
    const int *in = N->in;
    const char *red = ir_attr_string(N, "reduction", "none");
    int none = !strcmp(red, "none");
    if (none || !strcmp(red, "add")) {
        if (want[0])
            GIVE(0, none ? GOP(c, ScatterND, gy, in[1], grad_zeros_like(c, in[2])) : gy);
        if (!want[2]) return 0;
    }
    return ir_fail(G, c->node, "ScatterND has a gradient only for its data input (reduction "
                   "'none' or 'add'); here the loss depends on its %s", want[2] ? "updates" : "data");
}
