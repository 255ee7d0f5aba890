/* Floating-point operation counts per node, for `loom inspect` and the
 * analytic cost model. Conventions:
 *   - a multiply-add counts 2;
 *   - MatMul, Gemm, Einsum: 2 per multiply-add over the whole iteration space
 *     (batch included); Gemm adds one per output element for its bias;
 *   - Conv: 2 * Cout * out_spatial * N * (Cin/group) * kernel, plus the bias;
 *     ConvTranspose counts the same products from the input side, and
 *     loom.ConvGradWeight those of its forward conv;
 *   - DFT: 5 n log2(n) per transform of length n, the usual FFT convention
 *     (what an FFT library runs, not the naive n^2 of the definition);
 *   - reductions and arg-reductions: one per input element; pooling: one per
 *     window element per output; global pooling: one per input element;
 *   - Resize: 0 for nearest (data movement), 2 per interpolation point per
 *     output element otherwise (2^d points linear, 4^d cubic, d = resized axes);
 *   - SoftmaxCrossEntropyLoss: 6 per score (softmax 5 + log), NLL: 1 per target;
 *   - loom.Attention: per (query, key) pair a causal query sees, 2 (D + Dv)
 *     for the two products and 6 for scale, mask and softmax; loom.AttentionGrad:
 *     per pair 2 (3 D + 2 Dv) (the scores again, dV, dP, dQ, dK) and 8, plus
 *     2 Dv per query (rowsum(dO * O));
 *   - loom.LinearCrossEntropy (x [N,D], w of D x C): the logits, dx and dw
 *     products (6 N D C) and 8 per score for the softmax and its gradient;
 *   - everything else: the op table's flops_per_elem times the output elements
 *     (times the extra operands of a variadic op); pure data movement is 0.
 * A node whose shapes are not known yet costs 0. */
#include <math.h>
#include <string.h>

#include "ops_impl.h"

static const IrValue *in_val(const IrGraph *g, const IrNode *n, int i)
{
    int v = ir_in(n, i);
    return v >= 0 && v < g->nvalues && g->values[v].rank >= 0 ? &g->values[v] : NULL;
}

static const IrValue *out_val(const IrGraph *g, const IrNode *n, int i)
{
    int v = i < n->nout ? n->out[i] : -1;
    return v >= 0 && v < g->nvalues && g->values[v].rank >= 0 ? &g->values[v] : NULL;
}

static double numel(const IrValue *v) { return (double)ir_value_numel(v); }

/* Product of dims [from, rank). */
static double dims_from(const IrValue *v, int from)
{
    double p = 1;
    for (int i = from; i < v->rank; i++) p *= (double)v->dims[i];
    return p;
}

static double einsum_flops(const IrGraph *g, int id)
{
    const IrNode *n = &g->nodes[id];
    for (int i = 0; i < n->nin; i++)
        if (!in_val(g, n, i)) return 0;
    /* the parser writes g->err when it rejects the equation; counting must not
     * change the graph, so the message is put back (graphs are never const
     * objects, so the cast is sound) */
    IrGraph *mg = (IrGraph *)g;
    char saved[sizeof g->err];
    memcpy(saved, g->err, sizeof saved);
    IrEinsum e;
    int rc = ir_einsum_parse(mg, id, &e);
    memcpy(mg->err, saved, sizeof saved);
    if (rc < 0) return 0;
    enum { NLABELS = sizeof e.size / sizeof *e.size };
    unsigned char used[NLABELS] = {0}, kept[NLABELS] = {0};
    for (int i = 0; i < e.nop; i++)
        for (int j = 0; j < e.rank[i]; j++) used[e.lab[i][j]] = 1;
    for (int j = 0; j < e.out_rank; j++) kept[e.out_lab[j]] = 1;
    double space = 1;
    int reduces = 0;
    for (int l = 0; l < NLABELS; l++) {
        if (!used[l]) continue;
        space *= (double)e.size[l];
        reduces |= !kept[l];
    }
    /* nop-1 multiplies per point of the iteration space, plus an add when summing */
    return space * ((e.nop - 1) + reduces);
}

static double conv_flops(const IrGraph *g, const IrNode *n, int transpose)
{
    const IrValue *x = in_val(g, n, 0), *w = in_val(g, n, 1), *y = out_val(g, n, 0);
    if (!x || !w || !y || w->rank < 2) return 0;
    /* w is (Cout, Cin/group, k...) for Conv and (Cin, Cout/group, k...) for
     * ConvTranspose: each output (input) element meets dims[1] * kernel weights */
    double per = (double)w->dims[1] * dims_from(w, 2);
    double f = 2 * (transpose ? numel(x) : numel(y)) * per;
    if (ir_in(n, 2) >= 0) f += numel(y);
    return f;
}

static double dft_flops(const IrGraph *g, const IrNode *n)
{
    const IrValue *x = in_val(g, n, 0), *y = out_val(g, n, 0);
    if (!x || !y || x->rank < 2) return 0;
    int64_t axis = ir_attr_int(n, "axis", 1);
    const IrValue *a = in_val(g, n, 2); /* opset 20 moved axis to an input */
    if (a && a->data && a->dtype == IR_I64 && ir_value_numel(a) == 1) axis = *(int64_t *)a->data;
    /* the last axis holds the real and imaginary parts; a negative axis
     * counts from the back of the full rank, so -2 is the signal's last axis */
    int64_t ax = axis < 0 ? axis + x->rank : axis;
    if (ax < 0 || ax >= x->rank - 1) return 0;
    double len = (double)x->dims[ax];
    const IrValue *dl = in_val(g, n, 1);
    if (dl && dl->data && ir_value_numel(dl) == 1) {
        if (dl->dtype == IR_I64) len = (double)*(int64_t *)dl->data;
        else if (dl->dtype == IR_I32) len = *(int32_t *)dl->data;
    }
    if (len < 2 || x->dims[ax] == 0 || x->dims[x->rank - 1] == 0) return 0;
    double transforms = numel(x) / ((double)x->dims[ax] * (double)x->dims[x->rank - 1]);
    return transforms * 5 * len * log2(len);
}

static double resize_flops(const IrGraph *g, const IrNode *n)
{
    const IrValue *x = in_val(g, n, 0), *y = out_val(g, n, 0);
    if (!x || !y || x->rank != y->rank) return 0;
    const char *mode = ir_attr_string(n, "mode", "nearest");
    if (strcmp(mode, "nearest") == 0) return 0;
    int resized = 0;
    for (int i = 0; i < x->rank; i++) resized += x->dims[i] != y->dims[i];
    double points = pow(strcmp(mode, "cubic") == 0 ? 4 : 2, resized);
    return numel(y) * 2 * points;
}

/* loom.Attention / AttentionGrad: Q [..,T,D], K [..,S,D], V [..,S,Dv] at inputs q.. */
static double attention_flops(const IrGraph *g, const IrNode *n, int q, int grad)
{
    const IrValue *Q = in_val(g, n, q), *K = in_val(g, n, q + 1), *V = in_val(g, n, q + 2);
    if (!Q || !K || !V || Q->rank < 2 || K->rank != Q->rank || V->rank != Q->rank) return 0;
    int r = Q->rank;
    double T = (double)Q->dims[r - 2], S = (double)K->dims[r - 2], D = (double)Q->dims[r - 1];
    double Dv = (double)V->dims[r - 1], mats = numel(Q) / (T * D > 0 ? T * D : 1), pairs = T * S;
    if (ir_attr_int(n, "causal", 0)) { /* query i sees keys j <= i + S - T */
        pairs = 0;
        for (int64_t i = 0; i < Q->dims[r - 2]; i++) {
            double seen = (double)i + S - T + 1;
            pairs += seen < 0 ? 0 : seen > S ? S : seen;
        }
    }
    if (!grad) return mats * pairs * (2 * (D + Dv) + 6);
    return mats * (pairs * (2 * (3 * D + 2 * Dv) + 8) + T * 2 * Dv);
}

double ir_node_flops(const IrGraph *g, int id)
{
    const IrNode *n = &g->nodes[id];
    const IrOpInfo *info = &ir_ops[n->op];
    const IrValue *a = in_val(g, n, 0), *b = in_val(g, n, 1), *y = out_val(g, n, 0);
    switch (n->op) {
    case IR_OP_MatMul:
        /* (..., M, K) x (..., K, N): K from a's last axis (a may be 1-D) */
        if (!a || !y || a->rank < 1) return 0;
        return 2 * numel(y) * (double)a->dims[a->rank - 1];
    case IR_OP_Gemm: {
        if (!a || !y || a->rank != 2) return 0;
        double k = (double)a->dims[ir_attr_int(n, "transA", 0) ? 0 : 1];
        return 2 * numel(y) * k + (ir_in(n, 2) >= 0 ? numel(y) : 0);
    }
    case IR_OP_Einsum: return einsum_flops(g, id);
    case IR_OP_Conv: return conv_flops(g, n, 0);
    case IR_OP_ConvTranspose: return conv_flops(g, n, 1);
    case IR_OP_ConvGradWeight: /* (dy, x) -> dw: the forward conv's products, summed into dw */
        return a && y && y->rank >= 2 ? 2 * numel(a) * dims_from(y, 1) : 0;
    case IR_OP_ReduceMean:
    case IR_OP_ReduceSum:
    case IR_OP_ReduceMax:
    case IR_OP_ReduceMin:
    case IR_OP_ReduceProd:
    case IR_OP_ReduceL1:
    case IR_OP_ReduceL2:
    case IR_OP_ReduceSumSquare:
    case IR_OP_ReduceLogSumExp:
    case IR_OP_ArgMax:
    case IR_OP_ArgMin:
    case IR_OP_GlobalAveragePool:
    case IR_OP_GlobalMaxPool: return a ? numel(a) : 0;
    case IR_OP_MaxPool:
    case IR_OP_AveragePool: {
        int64_t nk;
        const int64_t *k = ir_attr_ints(n, "kernel_shape", &nk);
        double window = 1;
        for (int64_t i = 0; i < nk; i++) window *= (double)k[i];
        return y ? numel(y) * window : 0;
    }
    case IR_OP_Resize: return resize_flops(g, n);
    case IR_OP_DFT: return dft_flops(g, n);
    case IR_OP_SoftmaxCrossEntropyLoss: return a ? 6 * numel(a) : 0;
    case IR_OP_NegativeLogLikelihoodLoss: return b ? numel(b) : 0;
    case IR_OP_Attention: return attention_flops(g, n, 0, 0);
    case IR_OP_AttentionGrad: return attention_flops(g, n, 1, 1);
    case IR_OP_LinearCrossEntropy: { /* three products of N x D x C, and softmax with its gradient per score */
        double N = a ? numel(a) / (double)a->dims[a->rank - 1] : 0, D = a ? (double)a->dims[a->rank - 1] : 0;
        double C = b ? numel(b) / D : 0;
        return 6 * N * D * C + 8 * N * C;
    }
    default: break;
    }
    if (!y || info->flops_per_elem == 0) return 0;
    /* a variadic op (Sum, Max, ...) combines its operands pairwise */
    double operands = info->max_in < 0 && n->nin > 2 ? n->nin - 1 : 1;
    return info->flops_per_elem * numel(y) * operands;
}
