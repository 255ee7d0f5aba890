/* Shape inference, part two: the neural-network ops whose shapes follow
 * their own rules: MatMul, Gemm, Einsum (and its equation parser, which the
 * evaluator shares), convolution and pooling windows, normalizations,
 * Resize, DFT and the two losses. Like shape.c, every function sets its
 * outputs through ir_shape_out and refuses bad types, shapes and the
 * attribute values loom does not implement with a message naming what it
 * does support. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops_impl.h"

#define V(id) (&g->values[id])
#define NODE (&g->nodes[node])

static IrValue *in_val(IrGraph *g, int node, int i)
{
    int vid = ir_in(NODE, i);
    return vid < 0 ? NULL : V(vid);
}

static int same_type(IrGraph *g, int node, int a, int b)
{
    if (V(NODE->in[a])->dtype != V(NODE->in[b])->dtype)
        return ir_fail(g, node, "inputs %d and %d must have the same type; got %s and %s", a, b,
                       IR_SHP(g, NODE->in[a]), IR_SHP(g, NODE->in[b]));
    return 0;
}

/* ---- matrix products ---- */

/* A product's result type: its operands', or float32 where autocast let a
 * bf16 product keep its float32 accumulation (out_dtype, set only by
 * ir_autocast_wide_results: the importer refuses attributes a model sets
 * that the op table does not list). */
static IrDType product_dtype(const IrNode *n, IrDType operands)
{
    return operands == IR_BF16 && ir_attr_int(n, "out_dtype", IR_BF16) == IR_F32 ? IR_F32 : operands;
}

int shape_matmul(IrGraph *g, int node)
{
    const IrValue *a = V(NODE->in[0]), *b = V(NODE->in[1]);
    if (same_type(g, node, 0, 1) < 0) return -1;
    if (!ir_dtype_is_float(a->dtype) && !ir_dtype_is_int(a->dtype))
        return ir_fail(g, node, "MatMul takes numeric tensors; got %s", IR_SHP(g, NODE->in[0]));
    if (a->rank < 1 || b->rank < 1)
        return ir_fail(g, node, "MatMul needs inputs of rank 1 or more; got %s and %s",
                       IR_SHP(g, NODE->in[0]), IR_SHP(g, NODE->in[1]));
    int64_t k1 = a->dims[a->rank - 1], k2 = b->dims[b->rank >= 2 ? b->rank - 2 : 0];
    if (k1 != k2)
        return ir_fail(g, node, "inner dimensions differ: %s times %s", IR_SHP(g, NODE->in[0]),
                       IR_SHP(g, NODE->in[1]));
    int ra = a->rank >= 2 ? a->rank - 2 : 0, rb = b->rank >= 2 ? b->rank - 2 : 0, r;
    int64_t d[IR_MAX_RANK + 2];
    if (ir_broadcast(ra, a->dims, rb, b->dims, &r, d) < 0)
        return ir_fail(g, node, "batch dimensions do not broadcast: %s and %s",
                       IR_SHP(g, NODE->in[0]), IR_SHP(g, NODE->in[1]));
    if (a->rank >= 2) d[r++] = a->dims[a->rank - 2];
    if (b->rank >= 2) d[r++] = b->dims[b->rank - 1];
    return ir_shape_out(g, node, 0, product_dtype(NODE, a->dtype), r, d);
}

int shape_gemm(IrGraph *g, int node)
{
    const IrValue *a = V(NODE->in[0]), *b = V(NODE->in[1]), *c = in_val(g, node, 2);
    if (same_type(g, node, 0, 1) < 0 || (c && same_type(g, node, 0, 2) < 0)) return -1;
    if (!ir_dtype_is_float(a->dtype) && !ir_dtype_is_int(a->dtype))
        return ir_fail(g, node, "Gemm takes numeric tensors; got %s", IR_SHP(g, NODE->in[0]));
    if (a->rank != 2 || b->rank != 2)
        return ir_fail(g, node, "Gemm needs two matrices; got %s and %s", IR_SHP(g, NODE->in[0]),
                       IR_SHP(g, NODE->in[1]));
    int ta = ir_attr_int(NODE, "transA", 0) != 0, tb = ir_attr_int(NODE, "transB", 0) != 0;
    int64_t m = a->dims[ta], k = a->dims[!ta], k2 = b->dims[tb], n = b->dims[!tb];
    if (k != k2)
        return ir_fail(g, node, "inner dimensions differ: %s%s times %s%s", IR_SHP(g, NODE->in[0]),
                       ta ? " (transposed)" : "", IR_SHP(g, NODE->in[1]), tb ? " (transposed)" : "");
    int64_t d[2] = {m, n}, t[IR_MAX_RANK];
    int r;
    if (c && (c->rank > 2 || ir_broadcast(c->rank, c->dims, 2, d, &r, t) < 0 || t[0] != m ||
              t[1] != n))
        return ir_fail(g, node, "C %s does not broadcast to the result [%lld,%lld]",
                       IR_SHP(g, NODE->in[2]), (long long)m, (long long)n);
    return ir_shape_out(g, node, 0, product_dtype(NODE, a->dtype), 2, d);
}

/* ---- Einsum ---- */

#define EIN_ELL 52 /* first label id of the ellipsis dims */
#define EIN_SUPPORTED                                                                         \
    "loom supports equations whose operands each name a dim at most once (letters, and '...' " \
    "for broadcast dims), with an explicit or implicit output"

static int ein_label(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return 26 + c - 'a';
    return -1;
}

static char ein_char(int l) { return l < 26 ? (char)('A' + l) : (char)('a' + l - 26); }

/* Parse one term (up to its end) into labels; ell_rank dims stand for "...". */
static int ein_term(IrGraph *g, int node, const char *eq, const char *s, const char *end,
                    int rank, int *lab, int *nlab, int *has_ell, int *ell_rank)
{
    int letters = 0, ell = 0;
    for (const char *p = s; p < end; p++) {
        if (*p == '.') {
            if (ell || end - p < 3 || p[1] != '.' || p[2] != '.')
                return ir_fail(g, node, "Einsum equation '%s' has a malformed '...'", eq);
            ell = 1;
            p += 2;
        } else if (ein_label(*p) >= 0) {
            letters++;
        } else {
            return ir_fail(g, node, "Einsum equation '%s' has the character '%c'; %s", eq, *p,
                           EIN_SUPPORTED);
        }
    }
    int er = rank < 0 ? 0 : rank - letters; /* rank < 0: the output, sized later */
    if (rank >= 0 && (er < 0 || (!ell && er != 0)))
        return ir_fail(g, node, "Einsum term '%.*s' names %d dims but its operand has rank %d",
                       (int)(end - s), s, letters, rank);
    if (rank < 0) er = ell ? *ell_rank : 0;
    if (letters + er > IR_MAX_RANK)
        return ir_fail(g, node, "Einsum term '%.*s' has more than %d dims", (int)(end - s), s,
                       IR_MAX_RANK);
    int n = 0;
    unsigned long long seen = 0;
    for (const char *p = s; p < end; p++) {
        if (*p == '.') {
            for (int i = 0; i < er; i++) lab[n++] = EIN_ELL + i;
            p += 2;
            continue;
        }
        int l = ein_label(*p);
        if (seen >> l & 1)
            return ir_fail(g, node, "Einsum equation '%s' is not supported (label '%c' repeats "
                           "within one term); %s", eq, *p, EIN_SUPPORTED);
        seen |= 1ull << l;
        lab[n++] = l;
    }
    *nlab = n;
    *has_ell = ell;
    if (rank >= 0) *ell_rank = er;
    return 0;
}

int ir_einsum_parse(IrGraph *g, int node, IrEinsum *e)
{
    const IrNode *n = NODE;
    const char *eq0 = ir_attr_string(n, "equation", NULL);
    if (!eq0) return ir_fail(g, node, "Einsum needs the attribute 'equation'");
    char eq[256];
    size_t k = 0;
    for (const char *p = eq0; *p; p++)
        if (*p != ' ') {
            if (k + 1 >= sizeof eq) return ir_fail(g, node, "Einsum equation is too long");
            eq[k++] = *p;
        }
    eq[k] = 0;
    memset(e, 0, sizeof *e);
    if (n->nin > IR_MAX_RANK + 1)
        return ir_fail(g, node, "Einsum with %d operands; loom supports up to %d", n->nin,
                       IR_MAX_RANK + 1);
    e->nop = n->nin;
    const char *arrow = strstr(eq, "->");
    const char *lhs_end = arrow ? arrow : eq + k;
    const char *s = eq;
    int ell_ranks[IR_MAX_RANK + 1], max_ell = 0, any_ell = 0;
    for (int i = 0; i < e->nop; i++) {
        const char *c = memchr(s, ',', lhs_end - s);
        const char *t = c ? c : lhs_end;
        if ((i < e->nop - 1) != (c != NULL))
            return ir_fail(g, node, "Einsum equation '%s' has a different number of terms than "
                           "the node's %d inputs", eq, e->nop);
        int has;
        if (ein_term(g, node, eq, s, t, V(n->in[i])->rank, e->lab[i], &e->rank[i], &has,
                     &ell_ranks[i]) < 0)
            return -1;
        any_ell |= has;
        if (ell_ranks[i] > max_ell) max_ell = ell_ranks[i];
        s = t + 1;
    }
    /* ellipsis dims align to the right: relabel each operand's to the last of max_ell */
    for (int i = 0; i < e->nop; i++)
        for (int j = 0; j < e->rank[i]; j++)
            if (e->lab[i][j] >= EIN_ELL) e->lab[i][j] += max_ell - ell_ranks[i];
    for (int l = 0; l < 60; l++) e->size[l] = -1;
    for (int i = 0; i < e->nop; i++)
        for (int j = 0; j < e->rank[i]; j++) {
            int l = e->lab[i][j];
            int64_t d = V(n->in[i])->dims[j];
            if (e->size[l] < 0 || e->size[l] == d) e->size[l] = d;
            else if (l >= EIN_ELL && (e->size[l] == 1 || d == 1)) e->size[l] = d > 1 ? d : e->size[l];
            else if (l >= EIN_ELL)
                return ir_fail(g, node, "Einsum '...' dims do not broadcast: %s and others",
                               IR_SHP(g, n->in[i]));
            else
                return ir_fail(g, node, "Einsum label '%c' has size %lld in operand %d but %lld "
                               "elsewhere", ein_char(l), (long long)d, i, (long long)e->size[l]);
        }
    if (arrow) {
        int has;
        int er = max_ell;
        if (ein_term(g, node, eq, arrow + 2, eq + k, -1, e->out_lab, &e->out_rank, &has, &er) < 0)
            return -1;
        if (any_ell && max_ell > 0 && !has)
            return ir_fail(g, node, "Einsum equation '%s' drops the '...' dims in its output; %s",
                           eq, EIN_SUPPORTED);
        for (int j = 0; j < e->out_rank; j++)
            if (e->out_lab[j] < EIN_ELL && e->size[e->out_lab[j]] < 0)
                return ir_fail(g, node, "Einsum output label '%c' is not in any input",
                               ein_char(e->out_lab[j]));
    } else {
        /* implicit output: the '...' dims, then labels used once, in ASCII order */
        int count[EIN_ELL] = {0};
        for (int i = 0; i < e->nop; i++)
            for (int j = 0; j < e->rank[i]; j++)
                if (e->lab[i][j] < EIN_ELL) count[e->lab[i][j]]++;
        for (int i = 0; i < max_ell; i++) e->out_lab[e->out_rank++] = EIN_ELL + i;
        for (int l = 0; l < EIN_ELL; l++)
            if (count[l] == 1) {
                if (e->out_rank == IR_MAX_RANK)
                    return ir_fail(g, node, "Einsum output rank exceeds %d", IR_MAX_RANK);
                e->out_lab[e->out_rank++] = l;
            }
    }
    return 0;
}

int shape_einsum(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    for (int i = 1; i < n->nin; i++)
        if (same_type(g, node, 0, i) < 0) return -1;
    IrDType dt = V(n->in[0])->dtype;
    if (!ir_dtype_is_float(dt) && !ir_dtype_is_int(dt))
        return ir_fail(g, node, "Einsum takes numeric tensors; got %s", IR_SHP(g, n->in[0]));
    IrEinsum e;
    if (ir_einsum_parse(g, node, &e) < 0) return -1;
    int64_t d[IR_MAX_RANK];
    for (int j = 0; j < e.out_rank; j++) d[j] = e.size[e.out_lab[j]];
    return ir_shape_out(g, node, 0, dt, e.out_rank, d);
}

/* ---- windows: convolution and pooling ---- */

/* A list attribute of k positive (or, for pads, non-negative) entries, or
 * the default dflt for every entry when absent. */
static int window_attr(IrGraph *g, int node, const char *name, int k, int64_t dflt, int64_t min,
                       int64_t *out)
{
    int64_t cnt;
    const int64_t *v = ir_attr_ints(NODE, name, &cnt);
    if (!v) {
        for (int i = 0; i < k; i++) out[i] = dflt;
        return 0;
    }
    if (cnt != k)
        return ir_fail(g, node, "%s has %lld entries; this node needs %d", name, (long long)cnt, k);
    for (int i = 0; i < k; i++) {
        if (v[i] < min || v[i] > ((int64_t)1 << 40))
            return ir_fail(g, node, "%s[%d] is %lld; it must be from %lld to 2^40", name, i,
                           (long long)v[i], (long long)min);
        out[i] = v[i];
    }
    return 0;
}

/* The auto_pad attribute: 0 NOTSET, 1 SAME_UPPER, 2 SAME_LOWER, 3 VALID. */
static int auto_pad(IrGraph *g, int node)
{
    const char *s = ir_attr_string(NODE, "auto_pad", "NOTSET");
    static const char *names[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) return i;
    return ir_fail(g, node, "auto_pad '%s' is not supported; loom supports NOTSET, SAME_UPPER, "
                   "SAME_LOWER and VALID", s);
}

/* Spatial output sizes of a convolution or pooling window over in[0..k). */
static int window_out(IrGraph *g, int node, int k, const int64_t *in, const int64_t *kern,
                      int ceil_mode, int64_t *out)
{
    int64_t strides[IR_MAX_RANK], dil[IR_MAX_RANK], pads[2 * IR_MAX_RANK];
    int ap = auto_pad(g, node);
    if (ap < 0 || window_attr(g, node, "strides", k, 1, 1, strides) < 0 ||
        window_attr(g, node, "dilations", k, 1, 1, dil) < 0 ||
        window_attr(g, node, "pads", 2 * k, 0, 0, pads) < 0)
        return -1;
    for (int i = 0; i < k; i++) {
        int64_t ek; /* the dilated kernel's extent */
        if (__builtin_mul_overflow(kern[i] - 1, dil[i], &ek) || ek > ((int64_t)1 << 56))
            return ir_fail(g, node, "kernel extent on spatial axis %d overflows", i);
        ek += 1;
        if (ap == 1 || ap == 2) {
            out[i] = (in[i] + strides[i] - 1) / strides[i];
            continue;
        }
        int64_t span = in[i] + (ap == 3 ? 0 : pads[i] + pads[k + i]);
        if (span < ek)
            return ir_fail(g, node, "the kernel (extent %lld with dilation) is larger than the "
                           "padded input (%lld) on spatial axis %d", (long long)ek,
                           (long long)span, i);
        int64_t o = (span - ek) / strides[i] + 1;
        if (ceil_mode && (span - ek) % strides[i]) {
            o++;
            /* a window may not start in the end padding (as PyTorch and ONNX do) */
            if ((o - 1) * strides[i] >= in[i] + (ap == 3 ? 0 : pads[i])) o--;
        }
        out[i] = o;
    }
    return 0;
}

/* Kernel dims from W[2..] checked against a kernel_shape attribute, if any. */
static int kernel_dims(IrGraph *g, int node, const IrValue *w, int k, int64_t *kern)
{
    int64_t cnt;
    const int64_t *ks = ir_attr_ints(NODE, "kernel_shape", &cnt);
    for (int i = 0; i < k; i++) {
        kern[i] = w->dims[2 + i];
        if (ks && (cnt != k || ks[i] != kern[i]))
            return ir_fail(g, node, "kernel_shape does not match the weight %s",
                           IR_SHP(g, NODE->in[1]));
    }
    return 0;
}

static int conv_common(IrGraph *g, int node, const IrValue **x, const IrValue **w, int64_t *group)
{
    *x = V(NODE->in[0]);
    *w = V(NODE->in[1]);
    if (same_type(g, node, 0, 1) < 0) return -1;
    if (!ir_dtype_is_float((*x)->dtype))
        return ir_fail(g, node, "takes float tensors; got %s", IR_SHP(g, NODE->in[0]));
    if ((*x)->rank < 3 || (*w)->rank != (*x)->rank)
        return ir_fail(g, node, "needs an input [N,C,spatial...] and a weight of the same rank; "
                       "got %s and %s", IR_SHP(g, NODE->in[0]), IR_SHP(g, NODE->in[1]));
    *group = ir_attr_int(NODE, "group", 1);
    if (*group < 1 || *group > ((int64_t)1 << 40))
        return ir_fail(g, node, "group is %lld; it must be positive", (long long)*group);
    return 0;
}

int shape_conv(IrGraph *g, int node)
{
    const IrValue *x, *w, *b = in_val(g, node, 2);
    int64_t group;
    if (conv_common(g, node, &x, &w, &group) < 0) return -1;
    int k = x->rank - 2;
    int64_t c = x->dims[1], m = w->dims[0];
    if (c % group || w->dims[1] * group != c)
        return ir_fail(g, node, "input channels %lld do not match the weight %s with group %lld "
                       "(need C = W[1] * group)", (long long)c, IR_SHP(g, NODE->in[1]),
                       (long long)group);
    if (m % group)
        return ir_fail(g, node, "output channels %lld are not divisible by group %lld",
                       (long long)m, (long long)group);
    if (b && (b->dtype != x->dtype || b->rank != 1 || b->dims[0] != m))
        return ir_fail(g, node, "bias %s must be %s[%lld]", IR_SHP(g, NODE->in[2]),
                       ir_dtype_name(x->dtype), (long long)m);
    int64_t kern[IR_MAX_RANK], d[IR_MAX_RANK];
    if (kernel_dims(g, node, w, k, kern) < 0) return -1;
    d[0] = x->dims[0];
    d[1] = m;
    if (window_out(g, node, k, x->dims + 2, kern, 0, d + 2) < 0) return -1;
    return ir_shape_out(g, node, 0, x->dtype, x->rank, d);
}

int shape_conv_transpose(IrGraph *g, int node)
{
    const IrValue *x, *w, *b = in_val(g, node, 2);
    int64_t group;
    if (conv_common(g, node, &x, &w, &group) < 0) return -1;
    int k = x->rank - 2;
    int64_t c = x->dims[1], m = w->dims[1] * group;
    if (w->dims[0] != c || c % group)
        return ir_fail(g, node, "input channels %lld do not match the weight %s with group %lld "
                       "(need C = W[0], divisible by group)", (long long)c, IR_SHP(g, NODE->in[1]),
                       (long long)group);
    if (b && (b->dtype != x->dtype || b->rank != 1 || b->dims[0] != m))
        return ir_fail(g, node, "bias %s must be %s[%lld]", IR_SHP(g, NODE->in[2]),
                       ir_dtype_name(x->dtype), (long long)m);
    int64_t kern[IR_MAX_RANK], strides[IR_MAX_RANK], dil[IR_MAX_RANK], pads[2 * IR_MAX_RANK],
        opad[IR_MAX_RANK], d[IR_MAX_RANK];
    int ap = auto_pad(g, node);
    if (ap < 0 || kernel_dims(g, node, w, k, kern) < 0 ||
        window_attr(g, node, "strides", k, 1, 1, strides) < 0 ||
        window_attr(g, node, "dilations", k, 1, 1, dil) < 0 ||
        window_attr(g, node, "pads", 2 * k, 0, 0, pads) < 0 ||
        window_attr(g, node, "output_padding", k, 0, 0, opad) < 0)
        return -1;
    d[0] = x->dims[0];
    d[1] = m;
    int64_t cnt;
    const int64_t *os = ir_attr_ints(NODE, "output_shape", &cnt);
    if (os) {
        if (cnt != k && cnt != k + 2)
            return ir_fail(g, node, "output_shape has %lld entries; this node needs %d",
                           (long long)cnt, k);
        for (int i = 0; i < k; i++) {
            d[2 + i] = os[cnt - k + i];
            if (d[2 + i] < 1 || d[2 + i] > ((int64_t)1 << 40))
                return ir_fail(g, node, "output_shape[%d] is %lld", i, (long long)d[2 + i]);
        }
        return ir_shape_out(g, node, 0, x->dtype, x->rank, d);
    }
    for (int i = 0; i < k; i++) {
        int64_t in = x->dims[2 + i], a, ext;
        /* stride * (in - 1) + output_padding + dilated kernel - pads */
        if (__builtin_mul_overflow(strides[i], ap == 1 || ap == 2 ? in : in - 1, &a) ||
            __builtin_mul_overflow(kern[i] - 1, dil[i], &ext) ||
            __builtin_add_overflow(a, ext, &a) || a > ((int64_t)1 << 56))
            return ir_fail(g, node, "spatial axis %d would overflow", i);
        if (ap == 1 || ap == 2) d[2 + i] = in * strides[i];
        else d[2 + i] = a + opad[i] + 1 - (ap == 3 ? 0 : pads[i] + pads[k + i]);
        if (d[2 + i] < 1)
            return ir_fail(g, node, "spatial axis %d would have size %lld (pads larger than the "
                           "output)", i, (long long)d[2 + i]);
    }
    return ir_shape_out(g, node, 0, x->dtype, x->rank, d);
}

int shape_pool(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    if (!ir_dtype_is_float(x->dtype) && !(NODE->op == IR_OP_MaxPool && ir_dtype_is_int(x->dtype)))
        return ir_fail(g, node, "takes a float tensor; got %s", IR_SHP(g, NODE->in[0]));
    if (x->rank < 3)
        return ir_fail(g, node, "needs an input [N,C,spatial...]; got %s", IR_SHP(g, NODE->in[0]));
    int k = x->rank - 2;
    int64_t kern[IR_MAX_RANK], d[IR_MAX_RANK], cnt;
    const int64_t *ks = ir_attr_ints(NODE, "kernel_shape", &cnt);
    if (!ks) return ir_fail(g, node, "pooling needs the attribute 'kernel_shape'");
    if (window_attr(g, node, "kernel_shape", k, 1, 1, kern) < 0) return -1;
    d[0] = x->dims[0];
    d[1] = x->dims[1];
    if (window_out(g, node, k, x->dims + 2, kern, ir_attr_int(NODE, "ceil_mode", 0) != 0, d + 2) < 0)
        return -1;
    if (ir_shape_out(g, node, 0, x->dtype, x->rank, d) < 0) return -1;
    return ir_shape_out(g, node, 1, IR_I64, x->rank, d);
}

int shape_global_pool(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    if (!ir_dtype_is_float(x->dtype) || x->rank < 3)
        return ir_fail(g, node, "needs a float input [N,C,spatial...]; got %s",
                       IR_SHP(g, NODE->in[0]));
    int64_t d[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) d[i] = i < 2 ? x->dims[i] : 1;
    return ir_shape_out(g, node, 0, x->dtype, x->rank, d);
}

/* ---- normalization ---- */

/* Input i, if present, must be dtype[len]; alt, when > 0, is a second allowed length. */
static int check_vec(IrGraph *g, int node, int i, const char *what, IrDType dt, int64_t len,
                     int64_t alt)
{
    const IrValue *v = in_val(g, node, i);
    if (!v) return 0;
    if (!ir_dtype_is_float(v->dtype) || v->rank != 1 || (v->dims[0] != len && v->dims[0] != alt))
        return ir_fail(g, node, "%s %s must be a float vector of %lld elements (input %s)", what,
                       IR_SHP(g, NODE->in[i]), (long long)len, ir_dtype_name(dt));
    return 0;
}

static int check_nc(IrGraph *g, int node, int min_rank)
{
    const IrValue *x = V(NODE->in[0]);
    if (!ir_dtype_is_float(x->dtype) || x->rank < min_rank)
        return ir_fail(g, node, "needs a float input [N,C,...] of rank %d or more; got %s",
                       min_rank, IR_SHP(g, NODE->in[0]));
    return 0;
}

int shape_batchnorm(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    if (check_nc(g, node, 2) < 0) return -1;
    if (ir_attr_int(NODE, "spatial", 1) != 1)
        return ir_fail(g, node, "BatchNormalization spatial=0 is not supported; loom supports "
                       "spatial=1 (per-channel statistics)");
    static const char *what[] = {"", "scale", "bias", "mean", "var"};
    int64_t c = x->dims[1];
    for (int i = 1; i < 5; i++)
        if (check_vec(g, node, i, what[i], x->dtype, c, -1) < 0) return -1;
    if (ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims) < 0) return -1;
    IrDType st = V(NODE->in[3])->dtype;
    for (int i = 1; i < NODE->nout; i++)
        if (ir_shape_out(g, node, i, st, 1, &c) < 0) return -1;
    return 0;
}

int shape_layernorm(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    if (!ir_dtype_is_float(x->dtype))
        return ir_fail(g, node, "takes a float tensor; got %s", IR_SHP(g, NODE->in[0]));
    int64_t axis = ir_attr_int(NODE, "axis", -1);
    int a = ir_norm_axis(axis, x->rank);
    if (a < 0)
        return ir_fail(g, node, "axis %lld is out of range for the input %s", (long long)axis,
                       IR_SHP(g, NODE->in[0]));
    for (int i = 1; i < 3; i++) {
        const IrValue *s = in_val(g, node, i);
        if (!s) continue;
        int r, ok = s->dtype == x->dtype && s->rank <= x->rank - a;
        int64_t t[IR_MAX_RANK];
        if (ok && ir_broadcast(s->rank, s->dims, x->rank - a, x->dims + a, &r, t) == 0)
            ok = !memcmp(t, x->dims + a, r * sizeof *t);
        else
            ok = 0;
        if (!ok)
            return ir_fail(g, node, "%s %s does not broadcast to the normalized dims of %s",
                           i == 1 ? "scale" : "bias", IR_SHP(g, NODE->in[i]),
                           IR_SHP(g, NODE->in[0]));
    }
    int64_t st = ir_attr_int(NODE, "stash_type", 1);
    if (st != IR_F32 && st != IR_F64 && st != IR_F16 && st != IR_BF16)
        return ir_fail(g, node, "stash_type %lld is not a float type", (long long)st);
    /* out_dtype bfloat16: autocast's rounding of the result (ir_autocast_narrow_norms; not an ONNX attribute) */
    IrDType yt = x->dtype == IR_F32 && ir_attr_int(NODE, "out_dtype", IR_F32) == IR_BF16 ? IR_BF16 : x->dtype;
    if (ir_shape_out(g, node, 0, yt, x->rank, x->dims) < 0) return -1;
    int64_t d[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) d[i] = i < a ? x->dims[i] : 1;
    if (ir_shape_out(g, node, 1, (IrDType)st, x->rank, d) < 0) return -1;
    return ir_shape_out(g, node, 2, (IrDType)st, x->rank, d);
}

int shape_groupnorm(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    if (check_nc(g, node, 2) < 0) return -1;
    int64_t ng = ir_attr_int(NODE, "num_groups", 0), c = x->dims[1];
    if (ng < 1 || c % ng)
        return ir_fail(g, node, "num_groups %lld must be positive and divide the %lld channels",
                       (long long)ng, (long long)c);
    /* scale and bias are per group in opset 18, per channel from 21 */
    if (check_vec(g, node, 1, "scale", x->dtype, c, ng) < 0 ||
        check_vec(g, node, 2, "bias", x->dtype, c, ng) < 0)
        return -1;
    return ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims);
}

int shape_instnorm(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]);
    if (check_nc(g, node, 3) < 0) return -1;
    if (check_vec(g, node, 1, "scale", x->dtype, x->dims[1], -1) < 0 ||
        check_vec(g, node, 2, "bias", x->dtype, x->dims[1], -1) < 0)
        return -1;
    return ir_shape_out(g, node, 0, x->dtype, x->rank, x->dims);
}

/* ---- Resize ---- */

static int one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list)) return 1;
    return 0;
}

int shape_resize(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    const char *mode = ir_attr_string(n, "mode", "nearest");
    if (strcmp(mode, "nearest") && strcmp(mode, "linear"))
        return ir_fail(g, node, "Resize mode '%s' is not supported; loom supports 'nearest' and "
                       "'linear'", mode);
    static const char *const ctm[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                      "align_corners", "asymmetric", "tf_half_pixel_for_nn",
                                      "tf_crop_and_resize", NULL};
    static const char *const nm[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil",
                                     NULL};
    static const char *const kar[] = {"stretch", "not_larger", "not_smaller", NULL};
    const char *c = ir_attr_string(n, "coordinate_transformation_mode", "half_pixel");
    const char *nmode = ir_attr_string(n, "nearest_mode", "round_prefer_floor");
    const char *policy = ir_attr_string(n, "keep_aspect_ratio_policy", "stretch");
    if (!one_of(c, ctm))
        return ir_fail(g, node, "coordinate_transformation_mode '%s' is unknown; ONNX defines "
                       "half_pixel, half_pixel_symmetric, pytorch_half_pixel, align_corners, "
                       "asymmetric, tf_half_pixel_for_nn and tf_crop_and_resize", c);
    if (!one_of(nmode, nm))
        return ir_fail(g, node, "nearest_mode '%s' is unknown; ONNX defines round_prefer_floor, "
                       "round_prefer_ceil, floor and ceil", nmode);
    if (!one_of(policy, kar))
        return ir_fail(g, node, "keep_aspect_ratio_policy '%s' is unknown; ONNX defines stretch, "
                       "not_larger and not_smaller", policy);
    if (ir_attr_int(n, "antialias", 0))
        return ir_fail(g, node, "Resize antialias=1 is not supported; loom supports antialias=0");
    int r = x->rank;
    int64_t na;
    const int64_t *axes_attr = ir_attr_ints(n, "axes", &na);
    int axes[IR_MAX_RANK];
    if (axes_attr) {
        unsigned char seen[IR_MAX_RANK] = {0};
        if (na < 1 || na > r) return ir_fail(g, node, "axes has %lld entries for rank %d", (long long)na, r);
        for (int i = 0; i < na; i++) {
            int a = ir_norm_axis(axes_attr[i], r);
            if (a < 0 || seen[a]++)
                return ir_fail(g, node, "axes entry %lld is out of range or repeated",
                               (long long)axes_attr[i]);
            axes[i] = a;
        }
    } else {
        na = r;
        for (int i = 0; i < r; i++) axes[i] = i;
    }
    int si = g->opset < 11 ? 1 : 2, zi = g->opset < 11 ? -1 : 3;
    const IrValue *sc = in_val(g, node, si), *sz = zi > 0 ? in_val(g, node, zi) : NULL;
    if (sc && ir_value_numel(sc) == 0) sc = NULL;
    if (sz && ir_value_numel(sz) == 0) sz = NULL;
    if (!sc == !sz)
        return ir_fail(g, node, "Resize needs exactly one of scales and sizes (non-empty)");
    int64_t d[IR_MAX_RANK];
    memcpy(d, x->dims, sizeof d);
    if (sc) {
        if (sc->dtype != IR_F32 || sc->rank != 1 || sc->dims[0] != na)
            return ir_fail(g, node, "scales must be float32[%lld]; got %s", (long long)na,
                           IR_SHP(g, n->in[si]));
        if (!sc->data)
            return ir_fail(g, node, "input %d (scales, '%s') must be a constant: loom needs "
                           "static shapes", si, sc->name);
        const float *s = sc->data;
        for (int i = 0; i < na; i++) {
            double o = floor((double)x->dims[axes[i]] * (double)s[i]);
            if (!(s[i] > 0) || !(o < (double)((int64_t)1 << 40)))
                return ir_fail(g, node, "scale %g of axis %d is not a usable positive number",
                               (double)s[i], axes[i]);
            d[axes[i]] = (int64_t)o;
        }
    } else {
        const int64_t *s;
        int64_t k = ir_need_ints(g, node, zi, "sizes", 1, &s);
        if (k < 0) return -1;
        if (k != na || sz->rank != 1)
            return ir_fail(g, node, "sizes has %lld entries; this node needs %lld", (long long)k,
                           (long long)na);
        for (int i = 0; i < na; i++)
            if (s[i] < 0) return ir_fail(g, node, "size %lld is negative", (long long)s[i]);
        if (!strcmp(policy, "stretch")) {
            for (int i = 0; i < na; i++) d[axes[i]] = s[i];
        } else {
            /* one scale for all axes, the smallest (not_larger) or largest */
            double best = 0;
            for (int i = 0; i < na; i++) {
                if (x->dims[axes[i]] == 0)
                    return ir_fail(g, node, "keep_aspect_ratio_policy '%s' needs non-empty dims", policy);
                double q = (double)s[i] / (double)x->dims[axes[i]];
                if (i == 0 || (policy[4] == 'l' ? q < best : q > best)) best = q;
            }
            for (int i = 0; i < na; i++) {
                double o = nearbyint(best * (double)x->dims[axes[i]]);
                if (!(o < (double)((int64_t)1 << 56)))
                    return ir_fail(g, node, "sizes give a dimension that is too large");
                d[axes[i]] = (int64_t)o;
            }
        }
    }
    return ir_shape_out(g, node, 0, x->dtype, r, d);
}

/* ---- DFT ---- */

int shape_dft(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    if (!ir_dtype_is_float(x->dtype) || x->rank < 2 || (x->dims[x->rank - 1] != 1 &&
                                                         x->dims[x->rank - 1] != 2))
        return ir_fail(g, node, "DFT needs a float signal [batch, ..., 1 or 2]; got %s",
                       IR_SHP(g, n->in[0]));
    int64_t axis;
    if (g->opset >= 20) {
        const int64_t *av;
        int64_t k = ir_need_ints(g, node, 2, "axis", 0, &av);
        if (k < 0) return -1;
        if (ir_in(n, 2) >= 0 && k != 1) return ir_fail(g, node, "axis must be a scalar");
        axis = ir_in(n, 2) >= 0 ? av[0] : -2;
    } else {
        axis = ir_attr_int(n, "axis", 1);
    }
    int a = ir_norm_axis(axis, x->rank);
    if (a < 0 || a == x->rank - 1 || a == 0)
        return ir_fail(g, node, "DFT axis %lld must name a signal dim of %s (not the batch or the "
                       "last, real/imaginary dim)", (long long)axis, IR_SHP(g, n->in[0]));
    int64_t len = x->dims[a];
    if (ir_in(n, 1) >= 0) {
        const int64_t *lv;
        int64_t k = ir_need_ints(g, node, 1, "dft_length", 1, &lv);
        if (k < 0) return -1;
        if (k != 1 || lv[0] < 1 || lv[0] > ((int64_t)1 << 40))
            return ir_fail(g, node, "dft_length must be one positive integer");
        len = lv[0];
    }
    int inverse = ir_attr_int(n, "inverse", 0) != 0, onesided = ir_attr_int(n, "onesided", 0) != 0;
    if (inverse && onesided)
        return ir_fail(g, node, "DFT with inverse=1 and onesided=1 is not supported; loom supports "
                       "onesided forward transforms and full inverse ones");
    int64_t d[IR_MAX_RANK];
    memcpy(d, x->dims, sizeof d);
    d[a] = onesided ? len / 2 + 1 : len;
    d[x->rank - 1] = 2;
    return ir_shape_out(g, node, 0, x->dtype, x->rank, d);
}

/* ---- losses ---- */

/* scores [N,C,d...], labels [N,d...], optional weight [C]; the loss output. */
static int loss_common(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *t = V(n->in[1]);
    const char *red = ir_attr_string(n, "reduction", "mean");
    if (strcmp(red, "none") && strcmp(red, "mean") && strcmp(red, "sum"))
        return ir_fail(g, node, "reduction '%s' is not supported; loom supports 'none', 'mean' "
                       "and 'sum'", red);
    if (!ir_dtype_is_float(x->dtype) || x->rank < 2)
        return ir_fail(g, node, "needs float scores [N,C,...]; got %s", IR_SHP(g, n->in[0]));
    if (t->dtype != IR_I32 && t->dtype != IR_I64)
        return ir_fail(g, node, "labels must be int32 or int64; got %s", IR_SHP(g, n->in[1]));
    int ok = t->rank == x->rank - 1 && t->dims[0] == x->dims[0];
    for (int i = 1; ok && i < t->rank; i++) ok = t->dims[i] == x->dims[i + 1];
    if (!ok)
        return ir_fail(g, node, "labels %s do not match scores %s (need [N,d...] for [N,C,d...])",
                       IR_SHP(g, n->in[1]), IR_SHP(g, n->in[0]));
    const IrValue *w = in_val(g, node, 2);
    if (w && (w->dtype != x->dtype || w->rank != 1 || w->dims[0] != x->dims[1]))
        return ir_fail(g, node, "weight %s must be %s[%lld]", IR_SHP(g, n->in[2]),
                       ir_dtype_name(x->dtype), (long long)x->dims[1]);
    if (!strcmp(red, "none")) return ir_shape_out(g, node, 0, x->dtype, t->rank, t->dims);
    return ir_shape_out(g, node, 0, x->dtype, 0, NULL);
}

int shape_sce_loss(IrGraph *g, int node)
{
    if (loss_common(g, node) < 0) return -1;
    const IrValue *x = V(NODE->in[0]);
    return ir_shape_out(g, node, 1, x->dtype, x->rank, x->dims);
}

int shape_nll_loss(IrGraph *g, int node) { return loss_common(g, node); }

/* ---- fused attention (optimizer/fuse_attention.c; ir/train.h) ---- */

/* (Q [..,T,D], K [..,S,D], V [..,S,Dv], [mask]) -> O [..,T,Dv], LSE [..,T]:
 * the leading dims equal in all three; the mask boolean or of Q's type, its
 * broadcast with the scores [..,T,S] the scores' shape. */
int ir_attention_check(IrGraph *g, int node, int q, int k, int v, int mask)
{
    const IrValue *Q = V(q), *K = V(k), *Vv = V(v);
    int r = Q->rank;
    if (!ir_dtype_is_float(Q->dtype) || K->dtype != Q->dtype || Vv->dtype != Q->dtype || r < 2 ||
        K->rank != r || Vv->rank != r || memcmp(K->dims, Q->dims, (r - 2) * sizeof *Q->dims) ||
        memcmp(Vv->dims, Q->dims, (r - 2) * sizeof *Q->dims) || K->dims[r - 1] != Q->dims[r - 1] ||
        Vv->dims[r - 2] != K->dims[r - 2])
        return ir_fail(g, node, "%s needs float Q [..,T,D], K [..,S,D] and V [..,S,Dv] of one type with "
                       "equal leading dims; got %s, %s, %s", ir_ops[NODE->op].name, IR_SHP(g, q), IR_SHP(g, k),
                       IR_SHP(g, v));
    if (mask < 0) return 0;
    const IrValue *M = V(mask);
    int64_t sd[IR_MAX_RANK], bd[IR_MAX_RANK];
    int rb;
    memcpy(sd, Q->dims, r * sizeof *sd);
    sd[r - 1] = K->dims[r - 2];
    if ((M->dtype != IR_BOOL && M->dtype != Q->dtype) || M->rank > r ||
        ir_broadcast(r, sd, M->rank, M->dims, &rb, bd) < 0 || memcmp(bd, sd, r * sizeof *sd))
        return ir_fail(g, node, "%s: the mask %s must be boolean or %s and broadcast to the scores "
                       "[..,T,S]", ir_ops[NODE->op].name, IR_SHP(g, mask), ir_dtype_name(Q->dtype));
    return 0;
}

int shape_attention(IrGraph *g, int node)
{
    const IrNode *n = NODE;
    if (ir_attention_check(g, node, n->in[0], n->in[1], n->in[2], ir_in(n, 3)) < 0) return -1;
    const IrValue *Q = V(n->in[0]);
    int64_t d[IR_MAX_RANK];
    int r = Q->rank;
    memcpy(d, Q->dims, r * sizeof *d);
    d[r - 1] = V(n->in[2])->dims[r - 1];
    if (ir_shape_out(g, node, 0, Q->dtype, r, d) < 0) return -1;
    return ir_shape_out(g, node, 1, Q->dtype, r - 1, Q->dims);
}
