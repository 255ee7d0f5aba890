/* Host evaluation of ops on constant inputs, for constant folding (the
 * eval_* functions the op table names), and the readers of constant
 * contents that shape inference uses (ir_const_ints, ir_const_scalar).
 *
 * Every element is loaded into a Num of one of four compute kinds: float32
 * (also for float16 and bfloat16, rounded back on store), float64, int64 (all
 * signed ints, uint8..uint32 and bool) and uint64. Arithmetic happens in that
 * kind, so float32 elementwise folds compute in float exactly as a float
 * kernel would, and integer folds are exact (wrapping on overflow, truncating
 * division). Sums of many float32 terms (reductions, matrix products) are the
 * exception: they accumulate in double and round once (see ld_wide).
 * Data movement ops copy raw elements through one strided walker. Anything
 * the evaluator cannot compute exactly fails with a message, never a guess. */
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "ops_impl.h"

#define V(id) (&g->values[id])
#define NODE (&g->nodes[node])
#define OPNAME (ir_ops[NODE->op].name)

typedef enum { K_F, K_D, K_I, K_U } Kind;
typedef union {
    float f;
    double d;
    int64_t i;
    uint64_t u;
} Num;

static Kind kind_of(IrDType t)
{
    switch (t) {
    case IR_F32: case IR_F16: case IR_BF16: return K_F;
    case IR_F64: return K_D;
    case IR_U64: return K_U;
    default: return K_I;
    }
}

/* ---- 16-bit floats: IEEE half (5 exponent bits) and bfloat16 (8) ---- */

static double half_decode(uint16_t h, int ebits, int mbits)
{
    int bias = (1 << (ebits - 1)) - 1;
    int e = (h >> mbits) & ((1 << ebits) - 1);
    int m = h & ((1 << mbits) - 1);
    double s = h >> 15 ? -1.0 : 1.0, x;
    if (e == (1 << ebits) - 1) x = m ? NAN : INFINITY;
    else if (e == 0) x = ldexp((double)m, 1 - bias - mbits);
    else x = ldexp((double)(m | 1 << mbits), e - bias - mbits);
    return s * x;
}

/* Round x to the nearest (ties to even) 16-bit float. */
static uint16_t half_encode(double x, int ebits, int mbits)
{
    int bias = (1 << (ebits - 1)) - 1, emax = (1 << ebits) - 1;
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    if (isnan(x)) return sign | (uint16_t)(emax << mbits) | (uint16_t)(1 << (mbits - 1));
    x = fabs(x);
    if (isinf(x)) return sign | (uint16_t)(emax << mbits);
    if (x == 0) return sign;
    int e;
    frexp(x, &e);
    e -= 1; /* x = 1.f * 2^e */
    if (e < 1 - bias) e = 1 - bias; /* subnormal: the quantum is fixed */
    double q = rint(ldexp(x, mbits - e));
    if (q >= ldexp(1.0, mbits + 1)) q /= 2, e++;
    if (e + bias >= emax) return sign | (uint16_t)(emax << mbits);
    if (q < ldexp(1.0, mbits)) return sign | (uint16_t)q; /* subnormal (or zero) */
    return sign | (uint16_t)((e + bias) << mbits) | (uint16_t)((int64_t)q - (1 << mbits));
}

/* ---- element access ---- */

static Num ld(const void *p, IrDType t, int64_t i)
{
    Num v;
    switch (t) {
    case IR_F32: v.f = ((const float *)p)[i]; break;
    case IR_F16: v.f = (float)half_decode(((const uint16_t *)p)[i], 5, 10); break;
    case IR_BF16: v.f = (float)half_decode(((const uint16_t *)p)[i], 8, 7); break;
    case IR_F64: v.d = ((const double *)p)[i]; break;
    case IR_U8: v.i = ((const uint8_t *)p)[i]; break;
    case IR_I8: v.i = ((const int8_t *)p)[i]; break;
    case IR_U16: v.i = ((const uint16_t *)p)[i]; break;
    case IR_I16: v.i = ((const int16_t *)p)[i]; break;
    case IR_U32: v.i = ((const uint32_t *)p)[i]; break;
    case IR_I32: v.i = ((const int32_t *)p)[i]; break;
    case IR_I64: v.i = ((const int64_t *)p)[i]; break;
    case IR_U64: v.u = ((const uint64_t *)p)[i]; break;
    case IR_BOOL: v.i = ((const uint8_t *)p)[i] != 0; break;
    default: IR_ASSERT(!"ld: unsupported dtype");
    }
    return v;
}

/* Store v (of t's kind); integers wrap to the width of t. */
static void st(void *p, IrDType t, int64_t i, Num v)
{
    switch (t) {
    case IR_F32: ((float *)p)[i] = v.f; break;
    case IR_F16: ((uint16_t *)p)[i] = half_encode(v.f, 5, 10); break;
    case IR_BF16: ((uint16_t *)p)[i] = half_encode(v.f, 8, 7); break;
    case IR_F64: ((double *)p)[i] = v.d; break;
    case IR_U8: ((uint8_t *)p)[i] = (uint8_t)v.i; break;
    case IR_I8: ((int8_t *)p)[i] = (int8_t)v.i; break;
    case IR_U16: ((uint16_t *)p)[i] = (uint16_t)v.i; break;
    case IR_I16: ((int16_t *)p)[i] = (int16_t)v.i; break;
    case IR_U32: ((uint32_t *)p)[i] = (uint32_t)v.i; break;
    case IR_I32: ((int32_t *)p)[i] = (int32_t)v.i; break;
    case IR_I64: ((int64_t *)p)[i] = v.i; break;
    case IR_U64: ((uint64_t *)p)[i] = v.u; break;
    case IR_BOOL: ((uint8_t *)p)[i] = v.i != 0; break;
    default: IR_ASSERT(!"st: unsupported dtype");
    }
}

static double to_double(Num v, Kind k)
{
    return k == K_F ? v.f : k == K_D ? v.d : k == K_I ? (double)v.i : (double)v.u;
}

/* Convert v from kind `from` to the kind of dtype `to`; -1 when a float does
 * not fit the integer type (ONNX leaves the result undefined). */
static int convert(Num v, Kind from, IrDType to, Num *r)
{
    Kind k = kind_of(to);
    if (from == k) {
        *r = v;
        if (to == IR_BOOL) r->i = v.i != 0;
        return 0;
    }
    if (from == K_F || from == K_D) {
        double x = to_double(v, from);
        if (k == K_F) r->f = (float)x;
        else if (k == K_D) r->d = x;
        else if (to == IR_BOOL) r->i = x != 0;
        else if (k == K_U && x > -1 && x < 18446744073709551616.0) r->u = (uint64_t)x;
        else if (k == K_I && x > -9223372036854775809.0 && x < 9223372036854775808.0) {
            r->i = (int64_t)x;
            int64_t lo = to == IR_I8 ? INT8_MIN : to == IR_I16 ? INT16_MIN : to == IR_I32 ? INT32_MIN : 0;
            int64_t hi = to == IR_I8 ? INT8_MAX : to == IR_I16 ? INT16_MAX : to == IR_I32 ? INT32_MAX
                       : to == IR_U8 ? UINT8_MAX : to == IR_U16 ? UINT16_MAX : to == IR_U32 ? UINT32_MAX
                       : INT64_MAX;
            if (to != IR_I64 && (r->i < lo || r->i > hi)) return -1;
        } else return -1;
        return 0;
    }
    /* from an integer kind */
    if (k == K_F) r->f = from == K_I ? (float)v.i : (float)v.u;
    else if (k == K_D) r->d = from == K_I ? (double)v.i : (double)v.u;
    else if (to == IR_BOOL) r->i = v.i != 0;
    else r->i = v.i; /* K_I <-> K_U: the same 64 bits, wrapped on store */
    return 0;
}

static int64_t *strides_of(const IrValue *v, int64_t *s)
{
    int64_t acc = 1;
    for (int d = v->rank - 1; d >= 0; d--) s[d] = acc, acc *= v->dims[d];
    return s;
}

/* Strides of in broadcast against an output of rank r and dims od: 0 on
 * broadcast dims. */
static void bcast_strides(const IrValue *in, int r, int64_t *st_out)
{
    int off = r - in->rank;
    int64_t s = 1;
    for (int d = r - 1; d >= 0; d--) {
        if (d < off) {
            st_out[d] = 0;
            continue;
        }
        int64_t n = in->dims[d - off];
        st_out[d] = n == 1 ? 0 : s;
        s *= n;
    }
}

/* Advance a multi-index over dims by one element, keeping n offsets, each
 * with its own strides, in step. */
static void step_idx(int rank, const int64_t *dims, int64_t *idx, int n, int64_t *off,
                     int64_t (*strd)[IR_MAX_RANK])
{
    for (int d = rank - 1; d >= 0; d--) {
        idx[d]++;
        for (int k = 0; k < n; k++) off[k] += strd[k][d];
        if (idx[d] < dims[d]) return;
        for (int k = 0; k < n; k++) off[k] -= strd[k][d] * dims[d];
        idx[d] = 0;
    }
}

static void *out_alloc(IrGraph *g, int vid)
{
    return ir_xmalloc((size_t)ir_value_bytes(V(vid)));
}

/* Every present input has contents (Shape and Size excepted). */
static int need_data(IrGraph *g, int node)
{
    for (int i = 0; i < NODE->nin; i++) {
        int vid = NODE->in[i];
        if (vid >= 0 && !V(vid)->data)
            return ir_fail(g, node, "cannot fold: input %d '%s' is not a constant", i, V(vid)->name);
        if (vid >= 0 && (V(vid)->dtype == IR_STRING || !ir_dtype_size(V(vid)->dtype)))
            return ir_fail(g, node, "cannot fold tensors of type %s", ir_dtype_name(V(vid)->dtype));
    }
    return 0;
}

/* ---- constants for shape inference ---- */

int64_t ir_const_ints(IrGraph *g, int vid, const int64_t **out)
{
    if (vid < 0 || vid >= g->nvalues) return -1;
    const IrValue *v = V(vid);
    if (!v->data || v->rank < 0 || (!ir_dtype_is_int(v->dtype) && v->dtype != IR_BOOL)) return -1;
    int64_t n = ir_value_numel(v);
    int64_t *p = ir_alloc(g, (size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = ld(v->data, v->dtype, i).i;
    *out = p;
    return n;
}

int ir_const_scalar(IrGraph *g, int vid, double *out)
{
    if (vid < 0 || vid >= g->nvalues) return -1;
    const IrValue *v = V(vid);
    if (!v->data || v->rank < 0 || ir_value_numel(v) != 1 || !ir_dtype_size(v->dtype) ||
        v->dtype == IR_STRING || v->dtype == IR_C64 || v->dtype == IR_C128)
        return -1;
    *out = to_double(ld(v->data, v->dtype, 0), kind_of(v->dtype));
    return 0;
}

/* ---- scalar functions ---- */

typedef struct {
    float alpha, beta, gamma;
    int tanh_gelu;
} UnParams;

/* Unary float math, written once for float and double (tgmath picks expf or
 * exp from the argument type; constants are cast so float stays float). */
#define FLOAT_UNARY(NAME, T)                                                               \
    static T NAME(IrOp op, T x, const UnParams *p)                                        \
    {                                                                                      \
        switch (op) {                                                                      \
        case IR_OP_Neg: return -x;                                                         \
        case IR_OP_Abs: return fabs(x);                                                    \
        case IR_OP_Sign: return x > 0 ? (T)1 : x < 0 ? (T)-1 : x;                          \
        case IR_OP_Sqrt: return sqrt(x);                                                   \
        case IR_OP_Reciprocal: return (T)1 / x;                                            \
        case IR_OP_Exp: return exp(x);                                                     \
        case IR_OP_Log: return log(x);                                                     \
        case IR_OP_Sin: return sin(x);                                                     \
        case IR_OP_Cos: return cos(x);                                                     \
        case IR_OP_Tanh: return tanh(x);                                                   \
        case IR_OP_Erf: return erf(x);                                                     \
        case IR_OP_Floor: return floor(x);                                                 \
        case IR_OP_Ceil: return ceil(x);                                                   \
        case IR_OP_Round: return rint(x); /* ties to even */                               \
        case IR_OP_Relu: return x > 0 ? x : (T)0;                                          \
        case IR_OP_LeakyRelu: return x >= 0 ? x : (T)p->alpha * x;                         \
        case IR_OP_Elu: return x >= 0 ? x : (T)p->alpha * (exp(x) - (T)1);                 \
        case IR_OP_Selu:                                                                   \
            return x > 0 ? (T)p->gamma * x : (T)p->gamma * ((T)p->alpha * exp(x) - (T)p->alpha); \
        case IR_OP_Sigmoid: return (T)1 / ((T)1 + exp(-x));                                \
        case IR_OP_HardSigmoid: return fmax((T)0, fmin((T)1, (T)p->alpha * x + (T)p->beta)); \
        case IR_OP_HardSwish: return x * fmax((T)0, fmin((T)1, x / (T)6 + (T)0.5));        \
        case IR_OP_Softplus: return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));            \
        case IR_OP_Softsign: return x / ((T)1 + fabs(x));                                  \
        case IR_OP_Gelu:                                                                   \
            if (p->tanh_gelu)                                                              \
                return (T)0.5 * x *                                                        \
                       ((T)1 + tanh((T)0.7978845608028654 * (x + (T)0.044715 * x * x * x))); \
            return (T)0.5 * x * ((T)1 + erf(x * (T)0.7071067811865476));                   \
        default: return x; /* Identity */                                                  \
        }                                                                                  \
    }
FLOAT_UNARY(unary_f, float)
FLOAT_UNARY(unary_d, double)

/* Binary float arithmetic, for float and double. */
#define FLOAT_BINARY(NAME, T)                                                              \
    static T NAME(IrOp op, T a, T b)                                                       \
    {                                                                                      \
        switch (op) {                                                                      \
        case IR_OP_Add: case IR_OP_Sum: case IR_OP_Mean: return a + b;                     \
        case IR_OP_Sub: return a - b;                                                      \
        case IR_OP_Mul: return a * b;                                                      \
        case IR_OP_Div: return a / b;                                                      \
        case IR_OP_Pow: return pow(a, b);                                                  \
        case IR_OP_Mod: return fmod(a, b);                                                 \
        case IR_OP_PRelu: return a < 0 ? a * b : a;                                        \
        case IR_OP_Min: return isnan(a) || isnan(b) ? a + b : a < b ? a : b;               \
        case IR_OP_Max: return isnan(a) || isnan(b) ? a + b : a > b ? a : b;               \
        default: IR_ASSERT(!"not a float binary op"); return 0;                            \
        }                                                                                  \
    }
FLOAT_BINARY(binary_f, float)
FLOAT_BINARY(binary_d, double)

static uint64_t upow(uint64_t a, uint64_t b)
{
    uint64_t r = 1;
    for (; b; b >>= 1, a *= a)
        if (b & 1) r *= a;
    return r;
}

/* Integer arithmetic on int64 (signed) or uint64 (unsigned); wraps on
 * overflow; -1 on division by zero. */
static int binary_int(IrOp op, int uns, int fmod_, Num a, Num b, Num *r)
{
    uint64_t x = a.u, y = b.u;
    switch (op) {
    case IR_OP_Add: case IR_OP_Sum: case IR_OP_Mean: r->u = x + y; return 0;
    case IR_OP_Sub: r->u = x - y; return 0;
    case IR_OP_Mul: r->u = x * y; return 0;
    case IR_OP_PRelu: r->u = !uns && a.i < 0 ? x * y : x; return 0;
    case IR_OP_Min: *r = (uns ? x < y : a.i < b.i) ? a : b; return 0;
    case IR_OP_Max: *r = (uns ? x > y : a.i > b.i) ? a : b; return 0;
    case IR_OP_Pow:
        if (uns || b.i >= 0) r->u = upow(x, y);
        else r->i = a.i == 1 ? 1 : a.i == -1 ? ((y & 1) ? -1 : 1) : 0; /* truncated 1/a^-b */
        return 0;
    case IR_OP_Div: case IR_OP_Mod:
        if (y == 0) return -1;
        if (uns) r->u = op == IR_OP_Div ? x / y : x % y;
        else if (a.i == INT64_MIN && b.i == -1) r->i = op == IR_OP_Div ? INT64_MIN : 0;
        else if (op == IR_OP_Div) r->i = a.i / b.i;
        else {
            r->i = a.i % b.i;
            /* fmod=0: the result takes the divisor's sign, as in Python */
            if (!fmod_ && r->i != 0 && (r->i < 0) != (b.i < 0)) r->i += b.i;
        }
        return 0;
    default: IR_ASSERT(!"not an integer binary op"); return -1;
    }
}

/* -1, 0 or 1 comparing a with b; 2 when unordered (NaN). */
static int compare(Kind k, Num a, Num b)
{
    switch (k) {
    case K_F: return a.f < b.f ? -1 : a.f > b.f ? 1 : a.f == b.f ? 0 : 2;
    case K_D: return a.d < b.d ? -1 : a.d > b.d ? 1 : a.d == b.d ? 0 : 2;
    case K_I: return a.i < b.i ? -1 : a.i > b.i;
    default: return a.u < b.u ? -1 : a.u > b.u;
    }
}

/* a op b for every op eval_binary folds; the result of comparisons and
 * logic is a bool in r->i. */
static int binary_num(IrOp op, Kind k, int fmod_, Num a, Num b, Num *r)
{
    int c;
    switch (op) {
    case IR_OP_Equal: r->i = compare(k, a, b) == 0; return 0;
    case IR_OP_Less: r->i = compare(k, a, b) == -1; return 0;
    case IR_OP_LessOrEqual: c = compare(k, a, b); r->i = c == -1 || c == 0; return 0;
    case IR_OP_Greater: r->i = compare(k, a, b) == 1; return 0;
    case IR_OP_GreaterOrEqual: c = compare(k, a, b); r->i = c == 1 || c == 0; return 0;
    case IR_OP_And: r->i = a.i && b.i; return 0;
    case IR_OP_Or: r->i = a.i || b.i; return 0;
    case IR_OP_Xor: r->i = !a.i != !b.i; return 0;
    default: break;
    }
    if (k == K_F) r->f = binary_f(op, a.f, b.f);
    else if (k == K_D) r->d = binary_d(op, a.d, b.d);
    else return binary_int(op, k == K_U, fmod_, a, b, r);
    return 0;
}

/* ---- elementwise ---- */

int eval_binary(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *o = V(n->out[0]), *a = V(n->in[0]);
    Kind k = kind_of(a->dtype);
    int fmod_ = ir_attr_int(n, "fmod", 0) != 0;
    int64_t numel = ir_value_numel(o), sd[2][IR_MAX_RANK], off[2], idx[IR_MAX_RANK];
    Num *acc = ir_xmalloc((size_t)(numel ? numel : 1) * sizeof *acc);
    memset(idx, 0, sizeof idx);
    off[0] = 0;
    bcast_strides(a, o->rank, sd[0]);
    for (int64_t i = 0; i < numel; i++, step_idx(o->rank, o->dims, idx, 1, off, sd))
        acc[i] = ld(a->data, a->dtype, off[0]);
    int count = 1;
    for (int j = 1; j < n->nin; j++) {
        if (n->in[j] < 0) continue;
        count++;
        const IrValue *b = V(n->in[j]);
        Kind kb = kind_of(b->dtype);
        memset(idx, 0, sizeof idx);
        off[0] = 0;
        bcast_strides(b, o->rank, sd[0]);
        for (int64_t i = 0; i < numel; i++, step_idx(o->rank, o->dims, idx, 1, off, sd)) {
            Num y = ld(b->data, b->dtype, off[0]), r;
            if (kb != k) {
                /* Pow with an exponent of another type: an integer base with
                 * a float exponent is computed in double and truncated */
                if ((k == K_I || k == K_U) && (kb == K_F || kb == K_D)) {
                    Num t = {.d = pow(to_double(acc[i], k), to_double(y, kb))};
                    if (convert(t, K_D, a->dtype, &acc[i]) < 0) {
                        free(acc);
                        return ir_fail(g, node, "cannot fold: Pow result out of the range of %s",
                                       ir_dtype_name(a->dtype));
                    }
                    continue;
                }
                convert(y, kb, k == K_F ? IR_F32 : k == K_D ? IR_F64 : k == K_U ? IR_U64 : IR_I64, &y);
            }
            if (binary_num(n->op, k, fmod_, acc[i], y, &r) < 0) {
                free(acc);
                return ir_fail(g, node, "cannot fold: integer division by zero");
            }
            acc[i] = r;
        }
    }
    if (n->op == IR_OP_Mean)
        for (int64_t i = 0; i < numel; i++) {
            if (k == K_F) acc[i].f /= (float)count;
            else if (k == K_D) acc[i].d /= count;
            else if (k == K_I) acc[i].i /= count;
            else acc[i].u /= (uint64_t)count;
        }
    void *out = out_alloc(g, n->out[0]);
    for (int64_t i = 0; i < numel; i++) st(out, o->dtype, i, acc[i]);
    free(acc);
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_where(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *o = V(n->out[0]);
    size_t es = (size_t)ir_dtype_size(o->dtype);
    int64_t numel = ir_value_numel(o), sd[3][IR_MAX_RANK], off[3] = {0}, idx[IR_MAX_RANK] = {0};
    for (int j = 0; j < 3; j++) bcast_strides(V(n->in[j]), o->rank, sd[j]);
    char *out = out_alloc(g, n->out[0]);
    const uint8_t *c = V(n->in[0])->data;
    for (int64_t i = 0; i < numel; i++, step_idx(o->rank, o->dims, idx, 3, off, sd)) {
        int pick = c[off[0]] ? 1 : 2;
        memcpy(out + i * es, (const char *)V(n->in[pick])->data + off[pick] * es, es);
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_unary(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *o = V(n->out[0]);
    Kind k = kind_of(x->dtype);
    IrOp op = n->op;
    UnParams p = {
        .alpha = ir_attr_float(n, "alpha", op == IR_OP_LeakyRelu ? 0.01f
                                           : op == IR_OP_HardSigmoid ? 0.2f
                                           : op == IR_OP_Selu ? 1.67326319217681884765625f : 1.0f),
        .beta = ir_attr_float(n, "beta", 0.5f),
        .gamma = ir_attr_float(n, "gamma", 1.05070102214813232421875f),
        .tanh_gelu = !strcmp(ir_attr_string(n, "approximate", "none"), "tanh"),
    };
    if (k != K_F && k != K_D && op != IR_OP_Neg && op != IR_OP_Abs && op != IR_OP_Sign &&
        op != IR_OP_Relu && op != IR_OP_Not)
        return ir_fail(g, node, "cannot fold %s of %s", OPNAME, ir_dtype_name(x->dtype));
    int64_t numel = ir_value_numel(x);
    void *out = out_alloc(g, n->out[0]);
    for (int64_t i = 0; i < numel; i++) {
        Num v = ld(x->data, x->dtype, i);
        if (k == K_F) v.f = unary_f(op, v.f, &p);
        else if (k == K_D) v.d = unary_d(op, v.d, &p);
        else if (op == IR_OP_Not) v.i = !v.i;
        else if (k == K_U) v.u = op == IR_OP_Neg ? 0 - v.u : op == IR_OP_Sign ? v.u != 0 : v.u;
        else if (op == IR_OP_Neg || (op == IR_OP_Abs && v.i < 0)) v.u = 0 - v.u;
        else if (op == IR_OP_Sign) v.i = (v.i > 0) - (v.i < 0);
        else if (op == IR_OP_Relu && v.i < 0) v.i = 0;
        st(out, o->dtype, i, v);
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_clip(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    Kind k = kind_of(x->dtype);
    Num lo, hi;
    int has_lo, has_hi;
    if (g->opset < 11) {
        if (k != K_F && k != K_D) return ir_fail(g, node, "cannot fold Clip of %s", ir_dtype_name(x->dtype));
        has_lo = ir_attr_find(n, "min") != NULL, has_hi = ir_attr_find(n, "max") != NULL;
        Num a = {.f = ir_attr_float(n, "min", 0)}, b = {.f = ir_attr_float(n, "max", 0)};
        convert(a, K_F, x->dtype, &lo);
        convert(b, K_F, x->dtype, &hi);
    } else {
        has_lo = ir_in(n, 1) >= 0, has_hi = ir_in(n, 2) >= 0;
        if (has_lo) lo = ld(V(n->in[1])->data, x->dtype, 0);
        if (has_hi) hi = ld(V(n->in[2])->data, x->dtype, 0);
    }
    int64_t numel = ir_value_numel(x);
    void *out = out_alloc(g, n->out[0]);
    for (int64_t i = 0; i < numel; i++) {
        Num v = ld(x->data, x->dtype, i);
        if (has_lo && compare(k, v, lo) == -1) v = lo;
        if (has_hi && compare(k, v, hi) == 1) v = hi;
        st(out, x->dtype, i, v);
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_cast(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *o = V(n->out[0]);
    Kind k = kind_of(x->dtype);
    int64_t numel = ir_value_numel(x);
    void *out = out_alloc(g, n->out[0]);
    for (int64_t i = 0; i < numel; i++) {
        Num v = ld(x->data, x->dtype, i), r;
        if (convert(v, k, o->dtype, &r) < 0) {
            free(out);
            return ir_fail(g, node, "cannot fold: Cast of %g to %s is out of range (ONNX leaves "
                           "it undefined)", to_double(v, k), ir_dtype_name(o->dtype));
        }
        st(out, o->dtype, i, r);
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

/* Identity, Reshape, Flatten, Squeeze, Unsqueeze: the same bytes. */
int eval_identity(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrValue *x = V(NODE->in[0]);
    IR_ASSERT(ir_value_bytes(x) == ir_value_bytes(V(NODE->out[0])));
    void *out = out_alloc(g, NODE->out[0]);
    memcpy(out, x->data, (size_t)ir_value_bytes(x));
    ir_value_set_data(g, NODE->out[0], out);
    return 0;
}

/* ---- reductions ---- */

/* Element i, widened to double when it is a float32-kind float: sums of many
 * float32 terms (reductions, matrix products) accumulate in double and round
 * once, since a kernel's summation order is unspecified and this gives the
 * correctly rounded result in almost every case. */
static Num ld_wide(const void *p, IrDType t, int64_t i)
{
    Num v = ld(p, t, i);
    if (kind_of(t) == K_F) v.d = v.f;
    return v;
}

/* Accumulate x into a (kind k) for reduce op `op`; first marks a's first element. */
static void reduce_step(IrOp op, Kind k, Num *a, Num x, int first)
{
    if (op == IR_OP_ReduceMax || op == IR_OP_ReduceMin) {
        /* NaN, once met, stays */
        int c = compare(k, x, *a), a_nan = !first && compare(k, *a, *a) == 2;
        if (first || (!a_nan && (c == 2 || (op == IR_OP_ReduceMax ? c == 1 : c == -1)))) *a = x;
        return;
    }
    if (op == IR_OP_ReduceL1) {
        if (k == K_F) x.f = fabs(x.f);
        else if (k == K_D) x.d = fabs(x.d);
        else if (k == K_I && x.i < 0) x.u = 0 - x.u;
    }
    Num r;
    if (op == IR_OP_ReduceSumSquare || op == IR_OP_ReduceL2) binary_num(IR_OP_Mul, k, 0, x, x, &x);
    binary_num(op == IR_OP_ReduceProd ? IR_OP_Mul : IR_OP_Add, k, 0, *a, x, &r);
    *a = r;
}

int eval_reduce(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *o = V(n->out[0]);
    IrOp op = n->op;
    /* float32 (and 16-bit) sums accumulate in double, rounded once at the end */
    Kind xk = kind_of(x->dtype), k = xk == K_F ? K_D : xk;
    if (op == IR_OP_ReduceLogSumExp && k != K_D)
        return ir_fail(g, node, "cannot fold ReduceLogSumExp of %s", ir_dtype_name(x->dtype));
    unsigned char mask[IR_MAX_RANK];
    int noop = 0;
    if (op == IR_OP_ArgMax || op == IR_OP_ArgMin) {
        memset(mask, 0, sizeof mask);
        mask[ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank)] = 1;
    } else if (ir_reduce_axes(g, node, mask, &noop) < 0) {
        return -1;
    }
    if (noop) return eval_identity(g, node);
    /* the output offset of each input element: reduced dims have stride 0 */
    int64_t onum = ir_value_numel(o), xnum = ir_value_numel(x), sd[1][IR_MAX_RANK];
    int64_t off[1] = {0}, idx[IR_MAX_RANK] = {0}, acc_s = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        sd[0][d] = mask[d] ? 0 : acc_s;
        if (!mask[d]) acc_s *= x->dims[d];
    }
    int64_t cnt = onum ? xnum / onum : 0, *arg = NULL;
    Num *acc = ir_xcalloc((size_t)(onum ? onum : 1), sizeof *acc), *mx = NULL;
    unsigned char *seen = ir_xcalloc((size_t)(onum ? onum : 1), 1);
    if (op == IR_OP_ArgMax || op == IR_OP_ArgMin) arg = ir_xcalloc((size_t)(onum ? onum : 1), sizeof *arg);
    if (op == IR_OP_ReduceLogSumExp) {
        /* log(sum(exp(x - max))) + max, as kernels compute it */
        mx = ir_xcalloc((size_t)(onum ? onum : 1), sizeof *mx);
        for (int64_t i = 0; i < xnum; i++, step_idx(x->rank, x->dims, idx, 1, off, sd)) {
            reduce_step(IR_OP_ReduceMax, k, &mx[off[0]], ld_wide(x->data, x->dtype, i), !seen[off[0]]);
            seen[off[0]] = 1;
        }
        memset(seen, 0, (size_t)(onum ? onum : 1));
    }
    if (op == IR_OP_ReduceProd)
        for (int64_t i = 0; i < onum; i++)
            acc[i] = k == K_F ? (Num){.f = 1} : k == K_D ? (Num){.d = 1} : (Num){.i = 1};
    int last = ir_attr_int(n, "select_last_index", 0) != 0;
    int ax = arg ? ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank) : 0;
    memset(idx, 0, sizeof idx);
    off[0] = 0;
    for (int64_t i = 0; i < xnum; i++, step_idx(x->rank, x->dims, idx, 1, off, sd)) {
        Num v = ld_wide(x->data, x->dtype, i);
        int64_t j = off[0];
        if (arg) {
            int c = seen[j] ? compare(k, v, acc[j]) : 1;
            int better = op == IR_OP_ArgMax ? c == 1 : c == -1;
            if (!seen[j] || better || (last && c == 0)) acc[j] = v, arg[j] = idx[ax];
        } else if (mx) {
            v.d = exp(v.d - mx[j].d);
            reduce_step(IR_OP_ReduceSum, k, &acc[j], v, !seen[j]);
        } else {
            reduce_step(op, k, &acc[j], v, !seen[j]);
        }
        seen[j] = 1;
    }
    void *out = out_alloc(g, n->out[0]);
    int fail = 0;
    for (int64_t j = 0; j < onum; j++) {
        Num r = acc[j];
        if (arg) {
            r.i = arg[j];
        } else if (!seen[j] && (op == IR_OP_ReduceMax || op == IR_OP_ReduceMin)) {
            /* over nothing: the identity of max (lowest value) or min */
            int mxop = op == IR_OP_ReduceMax;
            if (k == K_F) r.f = mxop ? -INFINITY : INFINITY;
            else if (k == K_D) r.d = mxop ? -INFINITY : INFINITY;
            else fail = 1;
        } else if (op == IR_OP_ReduceMean) {
            if (k == K_F) r.f /= (float)cnt;
            else if (k == K_D) r.d /= (double)cnt;
            else if (cnt) r.i = k == K_I ? r.i / cnt : (int64_t)(r.u / (uint64_t)cnt);
            else fail = 1;
        } else if (op == IR_OP_ReduceL2) {
            if (k == K_F) r.f = sqrt(r.f);
            else if (k == K_D) r.d = sqrt(r.d);
            else fail = 1;
        } else if (mx) {
            r.d = seen[j] ? log(r.d) + mx[j].d : -INFINITY;
        }
        if (xk == K_F && !arg) r.f = (float)r.d;
        st(out, o->dtype, j, r);
    }
    free(acc), free(seen), free(arg), free(mx);
    if (fail) {
        free(out);
        return ir_fail(g, node, "cannot fold %s of %s here (empty or non-integral result)", OPNAME,
                       ir_dtype_name(x->dtype));
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_cumsum(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    Kind k = kind_of(x->dtype);
    const int64_t *axv;
    int a = ir_const_ints(g, n->in[1], &axv) == 1 ? ir_norm_axis(axv[0], x->rank) : -1;
    if (a < 0) return ir_fail(g, node, "axis must be one integer in range for %s", IR_SHP(g, n->in[0]));
    int excl = ir_attr_int(n, "exclusive", 0) != 0, rev = ir_attr_int(n, "reverse", 0) != 0;
    int64_t outer = 1, inner = 1, len = x->dims[a];
    for (int d = 0; d < a; d++) outer *= x->dims[d];
    for (int d = a + 1; d < x->rank; d++) inner *= x->dims[d];
    void *out = out_alloc(g, n->out[0]);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            Num acc = {0};
            for (int64_t t = 0; t < len; t++) {
                int64_t e = (o * len + (rev ? len - 1 - t : t)) * inner + in;
                Num v = ld(x->data, x->dtype, e), r;
                if (excl) st(out, x->dtype, e, acc);
                binary_num(IR_OP_Add, k, 0, acc, v, &r);
                acc = r;
                if (!excl) st(out, x->dtype, e, acc);
            }
        }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

/* ---- indexing ---- */

/* Index j of an index tensor, wrapped into [0, size); -1 if out of range. */
static int64_t index_at(const IrValue *iv, int64_t j, int64_t size)
{
    Num v = ld(iv->data, iv->dtype, j);
    int64_t i = iv->dtype == IR_U64 && v.u > INT64_MAX ? -size - 1 : v.i;
    if (i < 0) i += size;
    return i < 0 || i >= size ? -1 : i;
}

int eval_gather(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *iv = V(n->in[1]);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank);
    size_t es = (size_t)ir_dtype_size(x->dtype);
    int64_t outer = 1, inner = 1, ni = ir_value_numel(iv), len = x->dims[a];
    for (int d = 0; d < a; d++) outer *= x->dims[d];
    for (int d = a + 1; d < x->rank; d++) inner *= x->dims[d];
    char *out = out_alloc(g, n->out[0]);
    for (int64_t j = 0; j < ni; j++) {
        int64_t s = index_at(iv, j, len);
        if (s < 0) {
            free(out);
            return ir_fail(g, node, "index %lld is out of range for axis %d of size %lld",
                           (long long)ld(iv->data, iv->dtype, j).i, a, (long long)len);
        }
        for (int64_t o = 0; o < outer; o++)
            memcpy(out + ((o * ni + j) * inner) * es,
                   (const char *)x->data + ((o * len + s) * inner) * es, inner * es);
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_gather_elements(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *iv = V(n->in[1]);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank);
    size_t es = (size_t)ir_dtype_size(x->dtype);
    int64_t xs[IR_MAX_RANK], idx[IR_MAX_RANK] = {0}, num = ir_value_numel(iv);
    strides_of(x, xs);
    char *out = out_alloc(g, n->out[0]);
    for (int64_t i = 0; i < num; i++, step_idx(iv->rank, iv->dims, idx, 0, NULL, NULL)) {
        int64_t s = index_at(iv, i, x->dims[a]), src = 0;
        for (int d = 0; d < x->rank; d++) {
            int64_t p = d == a ? s : idx[d];
            if (p < 0 || p >= x->dims[d]) {
                free(out);
                return ir_fail(g, node, "index %lld at element %lld is out of range of the data %s",
                               (long long)ld(iv->data, iv->dtype, i).i, (long long)i,
                               IR_SHP(g, n->in[0]));
            }
            src += p * xs[d];
        }
        memcpy(out + i * es, (const char *)x->data + src * es, es);
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_scatternd(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *iv = V(n->in[1]), *up = V(n->in[2]);
    const char *red = ir_attr_string(n, "reduction", "none");
    IrOp rop = !strcmp(red, "add") ? IR_OP_Add : !strcmp(red, "mul") ? IR_OP_Mul
             : !strcmp(red, "max") ? IR_OP_Max : !strcmp(red, "min") ? IR_OP_Min : IR_OP_Identity;
    Kind k = kind_of(x->dtype);
    size_t es = (size_t)ir_dtype_size(x->dtype);
    int kd = (int)iv->dims[iv->rank - 1];
    int64_t xs[IR_MAX_RANK], nup = ir_value_numel(iv) / kd, slice = 1;
    strides_of(x, xs);
    for (int d = kd; d < x->rank; d++) slice *= x->dims[d];
    char *out = out_alloc(g, n->out[0]);
    memcpy(out, x->data, (size_t)ir_value_bytes(x));
    for (int64_t u = 0; u < nup; u++) {
        int64_t base = 0;
        for (int d = 0; d < kd; d++) {
            int64_t p = index_at(iv, u * kd + d, x->dims[d]);
            if (p < 0) {
                free(out);
                return ir_fail(g, node, "index %lld is out of range for axis %d of the data %s",
                               (long long)ld(iv->data, iv->dtype, u * kd + d).i, d,
                               IR_SHP(g, n->in[0]));
            }
            base += p * xs[d];
        }
        if (rop == IR_OP_Identity) {
            memcpy(out + base * es, (const char *)up->data + u * slice * es, slice * es);
            continue;
        }
        for (int64_t e = 0; e < slice; e++) {
            Num r;
            binary_num(rop, k, 0, ld(out, x->dtype, base + e), ld(up->data, x->dtype, u * slice + e), &r);
            st(out, x->dtype, base + e, r);
        }
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_trilu(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    int64_t kk = 0;
    const int64_t *kv;
    if (ir_in(n, 1) >= 0 && ir_const_ints(g, n->in[1], &kv) == 1) kk = kv[0];
    int upper = ir_attr_int(n, "upper", 1) != 0;
    size_t es = (size_t)ir_dtype_size(x->dtype);
    int64_t rows = x->dims[x->rank - 2], cols = x->dims[x->rank - 1], num = ir_value_numel(x);
    char *out = out_alloc(g, n->out[0]);
    memcpy(out, x->data, (size_t)ir_value_bytes(x));
    for (int64_t e = 0; e < num; e++) {
        int64_t j = e % cols, i = (e / cols) % rows;
        int keep = upper ? j - i >= kk : j - i <= kk;
        if (!keep) memset(out + e * es, 0, es);
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

/* ---- data movement ---- */

/* out[i] = in[base + sum idx[d] * strd[d]] over the output's dims. */
static void *strided_copy(IrGraph *g, int vin, int vout, int64_t base, int64_t *strd)
{
    const IrValue *x = V(vin), *o = V(vout);
    size_t es = (size_t)ir_dtype_size(x->dtype);
    int64_t num = ir_value_numel(o), off[1] = {base}, idx[IR_MAX_RANK] = {0}, sd[1][IR_MAX_RANK];
    memcpy(sd[0], strd, sizeof sd[0]);
    char *out = out_alloc(g, vout);
    for (int64_t i = 0; i < num; i++, step_idx(o->rank, o->dims, idx, 1, off, sd))
        memcpy(out + i * es, (const char *)x->data + off[0] * es, es);
    return out;
}

int eval_transpose(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrValue *x = V(NODE->in[0]);
    int64_t xs[IR_MAX_RANK], sd[IR_MAX_RANK], k;
    const int64_t *perm = ir_attr_ints(NODE, "perm", &k);
    strides_of(x, xs);
    for (int d = 0; d < x->rank; d++) sd[d] = xs[perm ? perm[d] : x->rank - 1 - d];
    ir_value_set_data(g, NODE->out[0], strided_copy(g, NODE->in[0], NODE->out[0], 0, sd));
    return 0;
}

int eval_expand(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    int64_t sd[IR_MAX_RANK];
    bcast_strides(V(NODE->in[0]), V(NODE->out[0])->rank, sd);
    ir_value_set_data(g, NODE->out[0], strided_copy(g, NODE->in[0], NODE->out[0], 0, sd));
    return 0;
}

int eval_slice(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrValue *x = V(NODE->in[0]);
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK], xs[IR_MAX_RANK], base = 0;
    if (ir_slice_params(g, node, start, step, len) < 0) return -1;
    strides_of(x, xs);
    for (int d = 0; d < x->rank; d++) {
        if (len[d] <= 1) step[d] = 1; /* a huge step over one element must not overflow */
        if (len[d] > 0) base += start[d] * xs[d];
        xs[d] *= step[d];
    }
    ir_value_set_data(g, NODE->out[0], strided_copy(g, NODE->in[0], NODE->out[0], base, xs));
    return 0;
}

/* Concat and Split move blocks: outer (dims before the axis) by the axis
 * extent times inner (dims after). */
static int64_t outer_of(const IrValue *v, int a)
{
    int64_t r = 1;
    for (int d = 0; d < a; d++) r *= v->dims[d];
    return r;
}

int eval_concat(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *o = V(n->out[0]);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), o->rank);
    size_t es = (size_t)ir_dtype_size(o->dtype);
    int64_t outer = outer_of(o, a), row = ir_value_numel(o) / (outer ? outer : 1), at = 0;
    char *out = out_alloc(g, n->out[0]);
    for (int j = 0; j < n->nin; j++) {
        if (n->in[j] < 0) continue;
        const IrValue *x = V(n->in[j]);
        int64_t xrow = outer ? ir_value_numel(x) / outer : 0;
        for (int64_t t = 0; t < outer; t++)
            memcpy(out + (t * row + at) * es, (const char *)x->data + t * xrow * es, xrow * es);
        at += xrow;
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_split(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]);
    int a;
    const int64_t *sizes;
    if (ir_split_sizes(g, node, &a, &sizes) < 0) return -1;
    size_t es = (size_t)ir_dtype_size(x->dtype);
    int64_t outer = outer_of(x, a), row = outer ? ir_value_numel(x) / outer : 0, at = 0;
    int64_t inner = x->dims[a] ? row / x->dims[a] : 0;
    for (int j = 0; j < n->nout; j++) {
        int64_t orow = sizes[j] * inner;
        if (n->out[j] >= 0) {
            char *out = out_alloc(g, n->out[j]);
            for (int64_t t = 0; t < outer; t++)
                memcpy(out + t * orow * es, (const char *)x->data + (t * row + at) * es, orow * es);
            ir_value_set_data(g, n->out[j], out);
        }
        at += orow;
    }
    return 0;
}

int eval_tile(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrValue *x = V(NODE->in[0]), *o = V(NODE->out[0]);
    size_t es = (size_t)ir_dtype_size(x->dtype);
    int64_t xs[IR_MAX_RANK], idx[IR_MAX_RANK] = {0}, num = ir_value_numel(o);
    strides_of(x, xs);
    char *out = out_alloc(g, NODE->out[0]);
    for (int64_t i = 0; i < num; i++, step_idx(o->rank, o->dims, idx, 0, NULL, NULL)) {
        int64_t src = 0;
        for (int d = 0; d < x->rank; d++) src += idx[d] % x->dims[d] * xs[d];
        memcpy(out + i * es, (const char *)x->data + src * es, es);
    }
    ir_value_set_data(g, NODE->out[0], out);
    return 0;
}

int eval_pad(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *x = V(n->in[0]), *o = V(n->out[0]);
    int64_t pads[2 * IR_MAX_RANK];
    int mode;
    if (ir_pad_params(g, node, pads, &mode) < 0) return -1;
    size_t es = (size_t)ir_dtype_size(x->dtype);
    char cval[16] = {0};
    if (g->opset < 11) {
        Num f = {.f = ir_attr_float(n, "value", 0)}, c;
        if (convert(f, K_F, x->dtype, &c) < 0)
            return ir_fail(g, node, "cannot fold: pad value does not fit %s", ir_dtype_name(x->dtype));
        st(cval, x->dtype, 0, c);
    } else if (ir_in(n, 2) >= 0) {
        memcpy(cval, V(n->in[2])->data, es);
    }
    int64_t xs[IR_MAX_RANK], idx[IR_MAX_RANK] = {0}, num = ir_value_numel(o);
    strides_of(x, xs);
    char *out = out_alloc(g, n->out[0]);
    for (int64_t i = 0; i < num; i++, step_idx(o->rank, o->dims, idx, 0, NULL, NULL)) {
        int64_t src = 0;
        int outside = 0;
        for (int d = 0; d < x->rank; d++) {
            int64_t dim = x->dims[d], j = idx[d] - pads[d];
            if (j < 0 || j >= dim) {
                if (mode == 0) outside = 1;
                else if (mode == 1) j = j < 0 ? -j : 2 * (dim - 1) - j;
                else if (mode == 2) j = j < 0 ? 0 : dim - 1;
                else j = (j % dim + dim) % dim;
            }
            src += j * xs[d];
        }
        memcpy(out + i * es, outside ? cval : (const char *)x->data + src * es, es);
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

/* ---- shape plumbing ---- */

/* Shape and Size: from the input's inferred shape; its contents are not needed. */
int eval_shape(IrGraph *g, int node)
{
    const IrValue *x = V(NODE->in[0]), *o = V(NODE->out[0]);
    int64_t *out = out_alloc(g, NODE->out[0]);
    if (NODE->op == IR_OP_Size) {
        out[0] = ir_value_numel(x);
    } else {
        int64_t r = x->rank, s = ir_attr_int(NODE, "start", 0);
        if (s < 0) s += r;
        s = s < 0 ? 0 : s > r ? r : s;
        for (int64_t i = 0; i < o->dims[0]; i++) out[i] = x->dims[s + i];
    }
    ir_value_set_data(g, NODE->out[0], out);
    return 0;
}

int eval_range(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *o = V(n->out[0]);
    Kind k = kind_of(o->dtype);
    Num s = ld(V(n->in[0])->data, o->dtype, 0), dl = ld(V(n->in[2])->data, o->dtype, 0);
    void *out = out_alloc(g, n->out[0]);
    for (int64_t i = 0; i < o->dims[0]; i++) {
        Num v;
        /* output[i] = start + i * delta, in the element type */
        if (k == K_F) v.f = s.f + (float)i * dl.f;
        else if (k == K_D) v.d = s.d + (double)i * dl.d;
        else v.u = s.u + (uint64_t)i * dl.u;
        st(out, o->dtype, i, v);
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_constant_of_shape(IrGraph *g, int node)
{
    const IrValue *o = V(NODE->out[0]);
    const IrAttr *a = ir_attr_find(NODE, "value");
    size_t es = (size_t)ir_dtype_size(o->dtype);
    int64_t num = ir_value_numel(o);
    char *out = out_alloc(g, NODE->out[0]);
    if (!a) memset(out, 0, num * es);
    else
        for (int64_t i = 0; i < num; i++) memcpy(out + i * es, V(a->u.tensor)->data, es);
    ir_value_set_data(g, NODE->out[0], out);
    return 0;
}

/* ---- matrix products ---- */

/* acc += a * b in kind k (integers wrap); float32-kind products and sums
 * are formed in double (see ld_wide) and rounded by the caller. */
static void mul_add(Kind k, Num *acc, Num a, Num b)
{
    if (k == K_F) acc->d += (double)a.f * (double)b.f;
    else if (k == K_D) acc->d += a.d * b.d;
    else acc->u += a.u * b.u;
}

int eval_matmul(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *a = V(n->in[0]), *b = V(n->in[1]), *o = V(n->out[0]);
    Kind k = kind_of(a->dtype);
    /* view 1-D operands as [1,K] and [K,1]; the batch dims broadcast */
    int64_t m = a->rank >= 2 ? a->dims[a->rank - 2] : 1, kk = a->dims[a->rank - 1];
    int64_t nn = b->rank >= 2 ? b->dims[b->rank - 1] : 1;
    IrValue ab = *a, bb = *b, ob = *o;
    ab.rank = a->rank >= 2 ? a->rank - 2 : 0;
    bb.rank = b->rank >= 2 ? b->rank - 2 : 0;
    ob.rank = ab.rank > bb.rank ? ab.rank : bb.rank;
    int64_t sd[2][IR_MAX_RANK], off[2] = {0}, idx[IR_MAX_RANK] = {0};
    bcast_strides(&ab, ob.rank, sd[0]);
    bcast_strides(&bb, ob.rank, sd[1]);
    int64_t nbatch = 1;
    for (int d = 0; d < ob.rank; d++) nbatch *= (ob.dims[d] = o->dims[d]);
    void *out = out_alloc(g, n->out[0]);
    for (int64_t t = 0; t < nbatch; t++, step_idx(ob.rank, ob.dims, idx, 2, off, sd))
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < nn; j++) {
                Num acc = {0};
                for (int64_t p = 0; p < kk; p++)
                    mul_add(k, &acc, ld(a->data, a->dtype, off[0] * m * kk + i * kk + p),
                            ld(b->data, b->dtype, off[1] * kk * nn + p * nn + j));
                if (k == K_F) acc.f = (float)acc.d;
                st(out, o->dtype, (t * m + i) * nn + j, acc);
            }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_gemm(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *a = V(n->in[0]), *b = V(n->in[1]), *o = V(n->out[0]);
    const IrValue *c = ir_in(n, 2) >= 0 ? V(n->in[2]) : NULL;
    Kind k = kind_of(a->dtype);
    float alpha = ir_attr_float(n, "alpha", 1), beta = ir_attr_float(n, "beta", 1);
    if ((k == K_I || k == K_U) && (alpha != 1 || beta != 1))
        return ir_fail(g, node, "cannot fold an integer Gemm with alpha or beta other than 1");
    int ta = ir_attr_int(n, "transA", 0) != 0, tb = ir_attr_int(n, "transB", 0) != 0;
    int64_t m = o->dims[0], nn = o->dims[1], kk = a->dims[ta ? 0 : 1];
    int64_t cs[1][IR_MAX_RANK], coff[1] = {0}, idx[IR_MAX_RANK] = {0};
    if (c) bcast_strides(c, 2, cs[0]);
    void *out = out_alloc(g, n->out[0]);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < nn; j++, c ? step_idx(2, o->dims, idx, 1, coff, cs) : (void)0) {
            Num acc = {0};
            for (int64_t p = 0; p < kk; p++)
                mul_add(k, &acc, ld(a->data, a->dtype, ta ? p * m + i : i * kk + p),
                        ld(b->data, b->dtype, tb ? j * kk + p : p * nn + j));
            if (k == K_F || k == K_D) acc.d *= (double)alpha;
            if (c) {
                Num cv = ld_wide(c->data, c->dtype, coff[0]);
                if (k == K_F || k == K_D) acc.d += (double)beta * cv.d;
                else acc.u += cv.u;
            }
            if (k == K_F) acc.f = (float)acc.d;
            st(out, o->dtype, i * nn + j, acc);
        }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}

int eval_einsum(IrGraph *g, int node)
{
    if (need_data(g, node) < 0) return -1;
    const IrNode *n = NODE;
    const IrValue *o = V(n->out[0]);
    IrEinsum e;
    if (ir_einsum_parse(g, node, &e) < 0) return -1;
    /* loop labels: the output's, then the summed ones */
    int lab[60], nl = 0, used[60] = {0};
    for (int j = 0; j < e.out_rank; j++) lab[nl++] = e.out_lab[j], used[e.out_lab[j]] = 1;
    int nout_l = nl;
    for (int i = 0; i < e.nop; i++)
        for (int j = 0; j < e.rank[i]; j++)
            if (!used[e.lab[i][j]]) used[e.lab[i][j]] = 1, lab[nl++] = e.lab[i][j];
    if (nl > IR_MAX_RANK * 2) return ir_fail(g, node, "cannot fold an Einsum over %d labels", nl);
    /* per operand, the stride of each loop label (0 where absent or broadcast) */
    int64_t sd[IR_MAX_RANK + 1][2 * IR_MAX_RANK], dims[2 * IR_MAX_RANK];
    memset(sd, 0, sizeof sd);
    for (int l = 0; l < nl; l++) dims[l] = e.size[lab[l]];
    for (int i = 0; i < e.nop; i++) {
        const IrValue *x = V(n->in[i]);
        int64_t xs[IR_MAX_RANK];
        strides_of(x, xs);
        for (int j = 0; j < e.rank[i]; j++)
            for (int l = 0; l < nl; l++)
                if (lab[l] == e.lab[i][j] && x->dims[j] != 1) sd[i][l] = xs[j];
    }
    Kind ok = kind_of(o->dtype), k = ok == K_F ? K_D : ok;
    int64_t onum = ir_value_numel(o), inner = 1;
    for (int l = nout_l; l < nl; l++) inner *= dims[l];
    void *out = out_alloc(g, n->out[0]);
    int64_t idx[2 * IR_MAX_RANK] = {0};
    for (int64_t t = 0; t < onum; t++) {
        Num acc = {0};
        for (int64_t s = 0; s < inner; s++) {
            /* the summed labels' index from s; the output's from t via idx */
            int64_t rem = s;
            for (int l = nl - 1; l >= nout_l; l--) idx[l] = rem % dims[l], rem /= dims[l];
            Num prod;
            for (int i = 0; i < e.nop; i++) {
                int64_t off = 0;
                for (int l = 0; l < nl; l++) off += idx[l] * sd[i][l];
                Num v = ld_wide(V(n->in[i])->data, V(n->in[i])->dtype, off);
                if (i == 0) prod = v;
                else binary_num(IR_OP_Mul, k, 0, prod, v, &prod);
            }
            binary_num(IR_OP_Add, k, 0, acc, prod, &acc);
        }
        if (ok == K_F) acc.f = (float)acc.d;
        st(out, o->dtype, t, acc);
        for (int l = nout_l - 1; l >= 0; l--) {
            if (++idx[l] < dims[l]) break;
            idx[l] = 0;
        }
    }
    ir_value_set_data(g, n->out[0], out);
    return 0;
}
