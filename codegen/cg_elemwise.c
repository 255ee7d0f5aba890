/* Elementwise ops as generated loops: every unary, binary and variadic
 * elementwise op, comparisons, logic, Where, Clip and Cast. A fused group (a
 * chain whose intermediates have one consumer and the output's shape, chosen
 * in cg_select) becomes one loop over the output: its inputs are loaded once
 * per element, every node of the group is one local variable, and only the
 * last node's result is stored.
 *
 * The arithmetic is that of the constant folder (ir/eval.c), so a folded
 * constant and a computed value agree bit for bit: values are held in one of
 * four register kinds (float for float32/float16/bfloat16, double, int64_t
 * for signed ints, uint8..uint32 and bool, uint64_t), float math goes through
 * <tgmath.h> exactly as in eval.c, integers wrap (computed on 64 bits and
 * truncated to the value's width after each node), float16 and bfloat16
 * intermediates are rounded to their width after each node. The C expression
 * of every op is in one table, `exprs`, below.
 *
 * Broadcasting is index arithmetic decided here: the output's dims are merged
 * where every input is either contiguous or broadcast across the pair, and
 * size-1 dims dropped. What is left is either one flat loop (every input
 * full-size or a scalar) or an outer loop over all dims but the last, which
 * computes each input's base offset, and an inner loop over the last. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cg_impl.h"
#include "kernels/cpu/kernels.h"

/* ---- register kinds ---- */

typedef enum { RK_F, RK_D, RK_I, RK_U } RegKind;

static RegKind reg_kind(IrDType t)
{
    switch (t) {
    case IR_F32: case IR_F16: case IR_BF16: return RK_F;
    case IR_F64: return RK_D;
    case IR_U64: return RK_U;
    default: return RK_I;
    }
}

static const char *reg_type(RegKind k)
{
    static const char *const names[] = {"float", "double", "int64_t", "uint64_t"};
    return names[k];
}

static int dtype_ok(IrDType t)
{
    switch (t) {
    case IR_F32: case IR_F16: case IR_BF16: case IR_F64: case IR_U8: case IR_I8: case IR_U16:
    case IR_I16: case IR_U32: case IR_I32: case IR_I64: case IR_U64: case IR_BOOL: return 1;
    default: return 0;
    }
}

/* ---- the expression table ----
 * Templates: %a %b %c are the operands, %T the register type, %A %B %G the
 * alpha, beta and gamma attributes, %E %H %R exp, tanh and erf: on float
 * registers kmath.h's vectorizable k_expf, k_tanhf, k_erff (within 8 ulp of
 * libm's, which the constant folder uses), on double registers libm's. f is for float and double registers, i
 * for int64_t (signed ints, narrower unsigned ints and bool), u for uint64_t;
 * NULL where the op does not take that kind. f_alt is Gelu's tanh form. */
typedef struct {
    const char *f, *i, *u, *f_alt;
} Expr;

#define WRAP(op) "(int64_t)((uint64_t)%a " op " (uint64_t)%b)"
#define CMP(op) {"(int64_t)(%a " op " %b)", "(int64_t)(%a " op " %b)", "(int64_t)(%a " op " %b)", NULL}

static const Expr exprs[IR_NOPS] = {
    [IR_OP_Add] = {"%a + %b", WRAP("+"), "%a + %b", NULL},
    [IR_OP_Sum] = {"%a + %b", WRAP("+"), "%a + %b", NULL},
    [IR_OP_Mean] = {"%a + %b", WRAP("+"), "%a + %b", NULL},
    [IR_OP_Sub] = {"%a - %b", WRAP("-"), "%a - %b", NULL},
    [IR_OP_Mul] = {"%a * %b", WRAP("*"), "%a * %b", NULL},
    [IR_OP_Div] = {"%a / %b", "lm_idiv(%a, %b)", "(%b ? %a / %b : 0)", NULL},
    [IR_OP_Pow] = {"pow(%a, %b)", "lm_ipow(%a, %b)", "lm_upow(%a, %b)", NULL},
    [IR_OP_Mod] = {"fmod(%a, %b)", "lm_imod(%a, %b, %A)", "(%b ? %a % %b : 0)", NULL},
    [IR_OP_PRelu] = {"(%a < 0 ? %a * %b : %a)", "(%a < 0 ? " WRAP("*") " : %a)", "%a", NULL},
    [IR_OP_Min] = {"(isnan(%a) || isnan(%b) ? %a + %b : %a < %b ? %a : %b)", "(%a < %b ? %a : %b)",
                   "(%a < %b ? %a : %b)", NULL},
    [IR_OP_Max] = {"(isnan(%a) || isnan(%b) ? %a + %b : %a > %b ? %a : %b)", "(%a > %b ? %a : %b)",
                   "(%a > %b ? %a : %b)", NULL},
    [IR_OP_Where] = {"(%a ? %b : %c)", "(%a ? %b : %c)", "(%a ? %b : %c)", NULL},
    [IR_OP_Equal] = CMP("=="),
    [IR_OP_Less] = CMP("<"),
    [IR_OP_LessOrEqual] = CMP("<="),
    [IR_OP_Greater] = CMP(">"),
    [IR_OP_GreaterOrEqual] = CMP(">="),
    [IR_OP_And] = {NULL, "(int64_t)(%a && %b)", NULL, NULL},
    [IR_OP_Or] = {NULL, "(int64_t)(%a || %b)", NULL, NULL},
    [IR_OP_Xor] = {NULL, "(int64_t)(!%a != !%b)", NULL, NULL},
    [IR_OP_Not] = {NULL, "(int64_t)!%a", NULL, NULL},
    [IR_OP_Neg] = {"-%a", "(int64_t)(0 - (uint64_t)%a)", "0 - %a", NULL},
    [IR_OP_Abs] = {"fabs(%a)", "(%a < 0 ? (int64_t)(0 - (uint64_t)%a) : %a)", "%a", NULL},
    [IR_OP_Sign] = {"(%a > 0 ? (%T)1 : %a < 0 ? (%T)-1 : %a)", "(int64_t)((%a > 0) - (%a < 0))",
                    "(uint64_t)(%a != 0)", NULL},
    [IR_OP_Relu] = {"(%a > 0 ? %a : (%T)0)", "(%a < 0 ? 0 : %a)", "%a", NULL},
    [IR_OP_Sqrt] = {"sqrt(%a)", NULL, NULL, NULL},
    [IR_OP_Reciprocal] = {"(%T)1 / %a", NULL, NULL, NULL},
    [IR_OP_Exp] = {"%E(%a)", NULL, NULL, NULL},
    [IR_OP_Log] = {"log(%a)", NULL, NULL, NULL},
    [IR_OP_Sin] = {"sin(%a)", NULL, NULL, NULL},
    [IR_OP_Cos] = {"cos(%a)", NULL, NULL, NULL},
    [IR_OP_Tanh] = {"%H(%a)", NULL, NULL, NULL},
    [IR_OP_Erf] = {"%R(%a)", NULL, NULL, NULL},
    [IR_OP_Floor] = {"floor(%a)", NULL, NULL, NULL},
    [IR_OP_Ceil] = {"ceil(%a)", NULL, NULL, NULL},
    [IR_OP_Round] = {"rint(%a)", NULL, NULL, NULL}, /* ties to even */
    [IR_OP_LeakyRelu] = {"(%a >= 0 ? %a : (%T)%A * %a)", NULL, NULL, NULL},
    [IR_OP_Elu] = {"(%a >= 0 ? %a : (%T)%A * (%E(%a) - (%T)1))", NULL, NULL, NULL},
    [IR_OP_Selu] = {"(%a > 0 ? (%T)%G * %a : (%T)%G * ((%T)%A * %E(%a) - (%T)%A))", NULL, NULL, NULL},
    [IR_OP_Sigmoid] = {"(%T)1 / ((%T)1 + %E(-%a))", NULL, NULL, NULL},
    [IR_OP_HardSigmoid] = {"fmax((%T)0, fmin((%T)1, (%T)%A * %a + (%T)%B))", NULL, NULL, NULL},
    [IR_OP_HardSwish] = {"%a * fmax((%T)0, fmin((%T)1, %a / (%T)6 + (%T)0.5))", NULL, NULL, NULL},
    [IR_OP_Softplus] = {"(%a > 0 ? %a + log1p(exp(-%a)) : log1p(exp(%a)))", NULL, NULL, NULL},
    [IR_OP_Softsign] = {"%a / ((%T)1 + fabs(%a))", NULL, NULL, NULL},
    [IR_OP_Gelu] = {"(%T)0.5 * %a * ((%T)1 + %R(%a * (%T)0.7071067811865476))", NULL, NULL,
                    "(%T)0.5 * %a * ((%T)1 + %H((%T)0.7978845608028654 * (%a + (%T)0.044715 * %a * %a * %a)))"},
};

const char cg_elemwise_h[] =
    "/* Helpers of the generated elementwise loops: float16 and bfloat16\n"
    " * conversions (round to nearest even), and integer division, modulo and\n"
    " * power with ONNX's semantics on 64-bit registers (wrapping; division by\n"
    " * zero gives 0, as numpy does). Generated by loom. */\n"
    "#ifndef LOOM_ELEMWISE_H\n"
    "#define LOOM_ELEMWISE_H\n"
    "\n"
    "#include <math.h>\n"
    "#include <stdint.h>\n"
    "#include <string.h>\n"
    "\n"
    "/* LM_FN: a cuda program defines it __host__ __device__ (kernels/lk.cuh) */\n"
    "#ifndef LM_FN\n"
    "#define LM_FN static inline\n"
    "#include \"kmath.h\"\n"
    "#endif\n"
    "\n"
    "LM_FN float lm_f16_to_f32(uint16_t h)\n"
    "{\n"
    "    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, x;\n"
    "    if (e == 0) {\n"
    "        float r = ldexpf((float)m, -24); /* zero or subnormal */\n"
    "        return sign ? -r : r;\n"
    "    }\n"
    "    x = sign | (e == 0x1f ? 0x7f800000u | m << 13 : (e + 112) << 23 | m << 13);\n"
    "    float r;\n"
    "    memcpy(&r, &x, 4);\n"
    "    return r;\n"
    "}\n"
    "\n"
    "LM_FN uint16_t lm_f32_to_f16(float f)\n"
    "{\n"
    "    uint32_t x;\n"
    "    memcpy(&x, &f, 4);\n"
    "    uint16_t sign = (uint16_t)(x >> 16 & 0x8000);\n"
    "    uint32_t ax = x & 0x7fffffff;\n"
    "    if (ax > 0x7f800000) return sign | 0x7e00;   /* NaN */\n"
    "    if (ax >= 0x477ff000) return sign | 0x7c00;  /* rounds to infinity */\n"
    "    if (ax < 0x38800000) {                       /* below 2^-14: a subnormal half */\n"
    "        float a;\n"
    "        memcpy(&a, &ax, 4);\n"
    "        return sign | (uint16_t)rintf(a * 16777216.0f);\n"
    "    }\n"
    "    uint32_t h = (((ax >> 23) - 112) << 10) | ((ax >> 13) & 0x3ff), rem = ax & 0x1fff;\n"
    "    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;\n"
    "    return sign | (uint16_t)h;\n"
    "}\n"
    "\n"
    "LM_FN float lm_bf16_to_f32(uint16_t h)\n"
    "{\n"
    "    uint32_t x = (uint32_t)h << 16;\n"
    "    float r;\n"
    "    memcpy(&r, &x, 4);\n"
    "    return r;\n"
    "}\n"
    "\n"
    "LM_FN uint16_t lm_f32_to_bf16(float f)\n"
    "{\n"
    "    uint32_t x;\n"
    "    memcpy(&x, &f, 4);\n"
    "    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)(x >> 16 & 0x8000) | 0x7fc0; /* NaN */\n"
    "    uint32_t h = x >> 16, rem = x & 0xffff;\n"
    "    if (rem > 0x8000 || (rem == 0x8000 && (h & 1))) h++;\n"
    "    return (uint16_t)h;\n"
    "}\n"
    "\n"
    "LM_FN float lm_f16_round(float f) { return lm_f16_to_f32(lm_f32_to_f16(f)); }\n"
    "LM_FN float lm_bf16_round(float f) { return lm_bf16_to_f32(lm_f32_to_bf16(f)); }\n"
    "\n"
    "LM_FN int64_t lm_idiv(int64_t a, int64_t b)\n"
    "{\n"
    "    if (b == 0) return 0;\n"
    "    if (a == INT64_MIN && b == -1) return INT64_MIN;\n"
    "    return a / b;\n"
    "}\n"
    "\n"
    "/* fmod 0: the result takes the divisor's sign (Python); 1: the dividend's (C). */\n"
    "LM_FN int64_t lm_imod(int64_t a, int64_t b, int fmod_)\n"
    "{\n"
    "    if (b == 0 || (a == INT64_MIN && b == -1)) return 0;\n"
    "    int64_t r = a % b;\n"
    "    if (!fmod_ && r != 0 && (r < 0) != (b < 0)) r += b;\n"
    "    return r;\n"
    "}\n"
    "\n"
    "LM_FN uint64_t lm_upow(uint64_t a, uint64_t b)\n"
    "{\n"
    "    uint64_t r = 1;\n"
    "    for (; b; b >>= 1, a *= a)\n"
    "        if (b & 1) r *= a;\n"
    "    return r;\n"
    "}\n"
    "\n"
    "/* A negative exponent truncates 1 / a^-b toward zero. */\n"
    "LM_FN int64_t lm_ipow(int64_t a, int64_t b)\n"
    "{\n"
    "    if (b >= 0) return (int64_t)lm_upow((uint64_t)a, (uint64_t)b);\n"
    "    return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;\n"
    "}\n"
    "\n"
    "/* Float to integer; out of range (undefined in ONNX) gives the minimum. */\n"
    "LM_FN int64_t lm_f2i(double x)\n"
    "{\n"
    "    return x > -9223372036854775809.0 && x < 9223372036854775808.0 ? (int64_t)x : INT64_MIN;\n"
    "}\n"
    "\n"
    "LM_FN uint64_t lm_f2u(double x)\n"
    "{\n"
    "    return x > -1 && x < 18446744073709551616.0 ? (uint64_t)x : 0;\n"
    "}\n"
    "\n"
    "#endif\n";

/* ---- which nodes ---- */

int cg_is_elemwise(const IrNode *n)
{
    unsigned f = ir_ops[n->op].flags;
    return !(f & OPF_VIEW) && ((f & (OPF_ELEMWISE | OPF_BROADCAST)) || n->op == IR_OP_Clip);
}

int cg_ew_batchnorm(const IrGraph *g, const IrNode *n)
{
    if (n->op != IR_OP_BatchNormalization || n->nout != 1 || n->out[0] < 0 || n->nin < 5 ||
        ir_attr_int(n, "training_mode", 0))
        return 0;
    for (int j = 0; j < 5; j++)
        if (n->in[j] < 0 || g->values[n->in[j]].dtype != IR_F32) return 0;
    const IrValue *x = &g->values[n->in[0]];
    return x->rank >= 2 && g->values[n->out[0]].dtype == IR_F32;
}

int cg_ew_act_grad(const IrGraph *g, const IrNode *n)
{
    const char *act = ir_attr_string(n, "act", "");
    if (n->op != IR_OP_ActivationGrad || n->nin != 2 || n->nout != 1 || n->out[0] < 0 || n->in[0] < 0 ||
        n->in[1] < 0 || (strcmp(act, "Gelu") && strcmp(act, "Relu")))
        return 0;
    const IrValue *y = &g->values[n->out[0]];
    for (int j = 0; j < 2; j++) {
        const IrValue *a = &g->values[n->in[j]];
        if (a->dtype != IR_F32 || a->rank != y->rank || memcmp(a->dims, y->dims, (size_t)a->rank * sizeof *a->dims))
            return 0;
    }
    return y->dtype == IR_F32;
}

const char *cg_elemwise_check(IrGraph *g, int node, char *why, size_t len)
{
    const IrNode *n = &g->nodes[node];
    for (int j = 0; j < n->nin + n->nout; j++) {
        int v = j < n->nin ? n->in[j] : n->out[j - n->nin];
        if (v >= 0 && !dtype_ok(g->values[v].dtype)) {
            snprintf(why, len, "elementwise ops on %s", ir_dtype_name(g->values[v].dtype));
            return why;
        }
    }
    if (n->op == IR_OP_Cast || n->op == IR_OP_Clip) return NULL;
    RegKind k = reg_kind(g->values[n->in[n->op == IR_OP_Where ? 1 : 0]].dtype);
    const Expr *e = &exprs[n->op];
    const char *t = k == RK_F || k == RK_D ? e->f : k == RK_I ? e->i : e->u;
    if (!t) {
        snprintf(why, len, "%s on %s", ir_ops[n->op].name,
                 ir_dtype_name(g->values[n->in[0]].dtype));
        return why;
    }
    return NULL;
}

/* ---- text of one node ---- */

const char *cg_float_lit(float x, char *buf, size_t n)
{
    if (isnan(x)) snprintf(buf, n, "NAN");
    else if (isinf(x)) snprintf(buf, n, x > 0 ? "INFINITY" : "-INFINITY");
    else {
        snprintf(buf, n, "%.9g", x);
        if (!strpbrk(buf, ".e")) strncat(buf, ".0", n - strlen(buf) - 1);
        strncat(buf, "f", n - strlen(buf) - 1);
    }
    return buf;
}

typedef struct {
    const char *op[4];   /* operand registers */
    const char *type;    /* register type */
    char alpha[40], beta[40], gamma[40];
    int fast;            /* float registers: %E %H %R are kmath.h's */
} Subst;

static void expand(FILE *f, const char *t, const Subst *s)
{
    for (; *t; t++) {
        if (*t != '%') {
            fputc(*t, f);
            continue;
        }
        switch (*++t) {
        case 'a': fputs(s->op[0], f); break;
        case 'b': fputs(s->op[1], f); break;
        case 'c': fputs(s->op[2], f); break;
        case 'T': fputs(s->type, f); break;
        case 'A': fputs(s->alpha, f); break;
        case 'B': fputs(s->beta, f); break;
        case 'G': fputs(s->gamma, f); break;
        case 'E': fputs(s->fast ? "k_expf" : "exp", f); break;
        case 'H': fputs(s->fast ? "k_tanhf" : "tanh", f); break;
        case 'R': fputs(s->fast ? "k_erff" : "erf", f); break;
        default: fputc('%', f), fputc(*t, f); break; /* the C operator % */
        }
    }
}

/* Register r of kind `from` converted to a value of dtype `to`, as eval.c's convert. */
static const char *convert(char *buf, size_t n, const char *r, RegKind from, IrDType to)
{
    RegKind k = reg_kind(to);
    if (to == IR_BOOL) snprintf(buf, n, "(int64_t)(%s != 0)", r);
    else if (from == k) snprintf(buf, n, "%s", r);
    else if (k == RK_F) snprintf(buf, n, "(float)%s", r);
    else if (k == RK_D) snprintf(buf, n, "(double)%s", r);
    else if (from == RK_F || from == RK_D)
        snprintf(buf, n, k == RK_U ? "lm_f2u((double)%s)" : "lm_f2i((double)%s)", r);
    else snprintf(buf, n, k == RK_U ? "(uint64_t)%s" : "(int64_t)%s", r);
    return buf;
}

/* Wrap an intermediate result to its dtype's width, as storing and loading it would. */
static const char *narrow(IrDType t)
{
    switch (t) {
    case IR_F16: return "lm_f16_round";
    case IR_BF16: return "lm_bf16_round";
    case IR_I8: return "(int64_t)(int8_t)";
    case IR_U8: return "(int64_t)(uint8_t)";
    case IR_I16: return "(int64_t)(int16_t)";
    case IR_U16: return "(int64_t)(uint16_t)";
    case IR_I32: return "(int64_t)(int32_t)";
    case IR_U32: return "(int64_t)(uint32_t)";
    default: return "";
    }
}

static int is_variadic(IrOp op)
{
    return op == IR_OP_Min || op == IR_OP_Max || op == IR_OP_Sum || op == IR_OP_Mean;
}

/* 2 or 3 when v is a float or integer constant whose every element is that
 * exponent, else 0. */
static int const_small_power(const IrValue *v)
{
    if (!v->data || ir_value_numel(v) < 1) return 0;
    int e = 0;
    for (int64_t i = 0; i < ir_value_numel(v); i++) {
        double x = v->dtype == IR_F32 ? ((const float *)v->data)[i]
                 : v->dtype == IR_F64 ? ((const double *)v->data)[i]
                 : v->dtype == IR_I64 ? (double)((const int64_t *)v->data)[i]
                 : v->dtype == IR_I32 ? (double)((const int32_t *)v->data)[i] : 0;
        if ((x != 2 && x != 3) || (e && x != e)) return 0;
        e = (int)x;
    }
    return e;
}

/* The expression of a node that is neither Cast, Clip nor variadic. */
static void expr_text(CgCtx *c, const IrNode *n, const char **opnd, RegKind k)
{
    IrGraph *g = c->g;
    Subst s = {.op = {opnd[0], opnd[1], opnd[2], NULL}, .type = reg_type(k), .fast = k == RK_F};
    cg_float_lit(ir_attr_float(n, "alpha", n->op == IR_OP_LeakyRelu ? 0.01f
                                        : n->op == IR_OP_HardSigmoid ? 0.2f
                                        : n->op == IR_OP_Selu ? 1.67326319217681884765625f : 1.0f),
              s.alpha, sizeof s.alpha);
    cg_float_lit(ir_attr_float(n, "beta", 0.5f), s.beta, sizeof s.beta);
    cg_float_lit(ir_attr_float(n, "gamma", 1.05070102214813232421875f), s.gamma, sizeof s.gamma);
    if (n->op == IR_OP_Mod) snprintf(s.alpha, sizeof s.alpha, "%d", ir_attr_int(n, "fmod", 0) != 0);
    const Expr *e = &exprs[n->op];
    const char *t = k == RK_F || k == RK_D ? e->f : k == RK_I ? e->i : e->u;
    if (n->op == IR_OP_Gelu && !strcmp(ir_attr_string(n, "approximate", "none"), "tanh")) t = e->f_alt;
    /* Pow's exponent may be of another kind: converted to the base's, except
     * that an integer base with a float exponent is computed in double */
    char conv[160];
    if (n->op == IR_OP_Pow) {
        RegKind kb = reg_kind(g->values[n->in[1]].dtype);
        if ((k == RK_I || k == RK_U) && (kb == RK_F || kb == RK_D)) {
            fprintf(c->f, k == RK_U ? "lm_f2u(pow((double)%s, (double)%s))"
                                    : "lm_f2i(pow((double)%s, (double)%s))", opnd[0], opnd[1]);
            return;
        }
        if (kb != k)
            s.op[1] = convert(conv, sizeof conv, opnd[1], kb,
                              k == RK_F ? IR_F32 : k == RK_D ? IR_F64 : k == RK_U ? IR_U64 : IR_I64);
        /* a constant square or cube is products (GELU's x^3, RMSNorm's x^2): a
         * libm pow call per element was a fifth of a small llama's time; x*x
         * is pow's correctly rounded square, x*x*x within 2 ulp of the cube */
        int pw = (k == RK_F || k == RK_D) ? const_small_power(&g->values[n->in[1]]) : 0;
        if (pw) t = pw == 2 ? "(%a * %a)" : "(%a * %a * %a)";
    }
    expand(c->f, t, &s);
}

/* "const T dst = <node's expression>;" over operand registers. */
static void node_stmt(CgCtx *c, int node, const char **opnd, const char *dst, int is_root,
                      const char *ind)
{
    IrGraph *g = c->g;
    const IrNode *n = &g->nodes[node];
    FILE *f = c->f;
    IrDType out = g->values[n->out[0]].dtype;
    RegKind ko = reg_kind(out), k = reg_kind(g->values[n->in[n->op == IR_OP_Where ? 1 : 0]].dtype);
    const char *wrap = is_root ? "" : narrow(out);
    if (is_variadic(n->op)) {
        /* a left fold into an accumulator, then Mean's division */
        int count = 0;
        fprintf(f, "%s%s %s_acc = %s;\n", ind, reg_type(k), dst, opnd[0]);
        for (int j = 1; j < n->nin; j++) {
            if (n->in[j] < 0) continue;
            char acc[64];
            snprintf(acc, sizeof acc, "%s_acc", dst);
            const char *pair[3] = {acc, opnd[j], NULL};
            fprintf(f, "%s%s = ", ind, acc);
            expr_text(c, n, pair, k);
            fprintf(f, ";\n");
            count++;
        }
        fprintf(f, "%sconst %s %s = %s(%s_acc", ind, reg_type(ko), dst, wrap, dst);
        if (n->op == IR_OP_Mean)
            fprintf(f, " / (%s)%d", reg_type(k), count + 1);
        fprintf(f, "); // %s\n", ir_ops[n->op].name);
        return;
    }
    fprintf(f, "%sconst %s %s = %s(", ind, reg_type(ko), dst, wrap);
    if (n->op == IR_OP_ActivationGrad && !strcmp(ir_attr_string(n, "act", ""), "Relu")) {
        /* ReLU's gradient: dy where x > 0, as k_activation_grad_f32 (dy times
         * 1 or 0, the product exact in float as in its double) */
        fprintf(f, "%s * (float)(%s > 0)", opnd[0], opnd[1]);
    } else if (n->op == IR_OP_ActivationGrad) {
        /* GELU's gradient, the kernels' k_gelu_grad: dy * f'(x) */
        fprintf(f, "%s * k_gelu_grad(%s, %d)", opnd[0], opnd[1],
                !strcmp(ir_attr_string(n, "approximate", "none"), "tanh"));
    } else if (n->op == IR_OP_BatchNormalization) {
        /* k_batchnorm_f32's arithmetic, operation for operation: (x - mean) *
         * a + bias, a = scale / sqrt(var + eps) (opnd[5]: a, computed once
         * per row by cg_ew_index, or NULL) */
        if (opnd[5]) fprintf(f, "(%s - %s) * %s + %s", opnd[0], opnd[3], opnd[5], opnd[2]);
        else
            fprintf(f, "(%s - %s) * (%s / sqrt(%s + %s)) + %s", opnd[0], opnd[3], opnd[1], opnd[4],
                    CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)), opnd[2]);
    } else if (n->op == IR_OP_Cast) {
        char buf[160];
        fputs(convert(buf, sizeof buf, opnd[0], reg_kind(g->values[n->in[0]].dtype), out), f);
    } else if (n->op == IR_OP_Clip) {
        /* bounds: inputs 1 and 2 (opset 11+) or the min/max attributes */
        char lo[48] = "", hi[48] = "";
        if (g->opset < 11) {
            if (ir_attr_find(n, "min")) cg_float_lit(ir_attr_float(n, "min", 0), lo, sizeof lo);
            if (ir_attr_find(n, "max")) cg_float_lit(ir_attr_float(n, "max", 0), hi, sizeof hi);
        } else {
            if (ir_in(n, 1) >= 0) snprintf(lo, sizeof lo, "%s", opnd[1]);
            if (ir_in(n, 2) >= 0) snprintf(hi, sizeof hi, "%s", opnd[2]);
        }
        const char *a = opnd[0];
        if (*lo && *hi)
            fprintf(f, "(%s < %s ? %s : %s) > %s ? %s : (%s < %s ? %s : %s)", a, lo, lo, a, hi, hi, a, lo,
                    lo, a);
        else if (*lo) fprintf(f, "%s < %s ? %s : %s", a, lo, lo, a);
        else if (*hi) fprintf(f, "%s > %s ? %s : %s", a, hi, hi, a);
        else fputs(a, f);
    } else {
        expr_text(c, n, opnd, k);
    }
    fprintf(f, "); // %s\n", ir_ops[n->op].name);
}

/* ---- the loop of a group ---- */

static const char *load_fmt(IrDType t)
{
    switch (t) {
    case IR_F16: return "lm_f16_to_f32(%s[%s])";
    case IR_BF16: return "lm_bf16_to_f32(%s[%s])";
    case IR_F32: case IR_F64: case IR_I64: case IR_U64: return "%s[%s]";
    case IR_BOOL: return "(int64_t)(%s[%s] != 0)";
    default: return "(int64_t)%s[%s]";
    }
}

static const char *store_fmt(IrDType t)
{
    switch (t) {
    case IR_F16: return "lm_f32_to_f16(%s)";
    case IR_BF16: return "lm_f32_to_bf16(%s)";
    case IR_BOOL: return "(uint8_t)(%s != 0)";
    case IR_I8: return "(int8_t)%s";
    case IR_U8: return "(uint8_t)%s";
    case IR_I16: return "(int16_t)%s";
    case IR_U16: return "(uint16_t)%s";
    case IR_I32: return "(int32_t)%s";
    case IR_U32: return "(uint32_t)%s";
    default: return "%s";
    }
}

void cg_ew_plan(CgCtx *c, int root, CgEwPlan *p)
{
    IrGraph *g = c->g;
    const IrValue *out = &g->values[g->nodes[root].out[0]];
    memset(p, 0, sizeof *p);
    p->root = root;
    p->mem = ir_xmalloc((size_t)(root + 1) * sizeof *p->mem);
    p->side = ir_xmalloc((size_t)(root + 1) * sizeof *p->side);
    for (int i = 0; i <= root; i++)
        if (c->sel->run_at[i] == root) {
            p->mem[p->nmem++] = i;
            if (i != root && g->nodes[i].phase == IR_LOWBIT) p->side[p->nside++] = g->nodes[i].out[0];
        }
    /* the group's inputs, each once, and the output dims they broadcast over */
    int cap = 0;
    for (int m = 0; m < p->nmem; m++) cap += g->nodes[p->mem[m]].nin;
    CgEwLeaf *leaf = p->leaf = ir_xcalloc((size_t)(cap ? cap : 1), sizeof *leaf);
    int rank = out->rank, nleaf = 0;
    int64_t *dims = p->dims;
    memcpy(dims, out->dims, sizeof p->dims);
    for (int m = 0; m < p->nmem; m++) {
        const IrNode *n = &g->nodes[p->mem[m]];
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j], pr = g->values[v < 0 ? 0 : v].producer, known = 0, first = 1;
            if (v < 0 || (pr >= 0 && c->sel->run_at[pr] == root)) continue;
            if (n->op == IR_OP_Clip && g->opset < 11 && j > 0) continue;
            int chan = n->op == IR_OP_BatchNormalization && j > 0;
            for (int k = 0; k < nleaf; k++) {
                known |= leaf[k].vid == v && leaf[k].chan == chan;
                first &= leaf[k].vid != v;
            }
            if (known) continue;
            const IrValue *lv = &g->values[v];
            leaf[nleaf].vid = v;
            leaf[nleaf].chan = chan;
            leaf[nleaf].first = first;
            if (chan) { // one per channel, the output's dim 1
                for (int d = 0; d < rank; d++) leaf[nleaf].stride[d] = d == 1 && dims[1] > 1;
            } else {
                int64_t st = 1;
                for (int d = rank - 1; d >= 0; d--) {
                    int ld = d - (rank - lv->rank);
                    int64_t size = ld >= 0 ? lv->dims[ld] : 1;
                    leaf[nleaf].stride[d] = size == 1 ? 0 : st;
                    st *= size;
                }
            }
            nleaf++;
        }
    }
    /* merge dims: drop size-1 dims, join neighbours every leaf walks alike */
    int r = 0;
    for (int d = 0; d < rank; d++) {
        if (dims[d] == 1) continue;
        int join = r > 0;
        for (int k = 0; k < nleaf && join; k++)
            join = leaf[k].stride[r - 1] == leaf[k].stride[d] * dims[d];
        if (join) {
            dims[r - 1] *= dims[d];
            for (int k = 0; k < nleaf; k++) leaf[k].stride[r - 1] = leaf[k].stride[d];
        } else {
            dims[r] = dims[d];
            for (int k = 0; k < nleaf; k++) leaf[k].stride[r] = leaf[k].stride[d];
            r++;
        }
    }
    if (r == 0) {
        dims[0] = 1;
        for (int k = 0; k < nleaf; k++) leaf[k].stride[0] = 0;
        r = 1;
    }
    p->nleaf = nleaf;
    p->r = r;
    p->numel = ir_value_numel(out);
    p->inner = dims[r - 1];
    p->outer = p->numel / (p->inner ? p->inner : 1);
}

void cg_ew_plan_free(CgEwPlan *p)
{
    free(p->mem);
    free(p->side);
    free(p->leaf);
}

/* Whether leaf k is the same for a whole inner loop (loaded once per outer
 * row by cg_ew_index: the compiler cannot hoist a load past the stores,
 * which may alias it). */
static int row_invariant(const CgEwPlan *p, int k)
{
    return p->r > 1 && !p->leaf[k].stride[p->r - 1];
}

/* The leaf of input j of member node n (BatchNormalization's parameters are
 * per-channel leaves of their own), or -1. */
static int leaf_of(const CgEwPlan *p, const IrNode *n, int j)
{
    int chan = n->op == IR_OP_BatchNormalization && j > 0;
    for (int k = 0; k < p->nleaf; k++)
        if (p->leaf[k].vid == n->in[j] && p->leaf[k].chan == chan) return k;
    return -1;
}

/* Whether member m is a BatchNormalization whose factor scale / sqrt(var +
 * eps) is the same for a whole inner loop (cg_ew_index computes it). */
static int bn_factor_hoisted(const IrGraph *g, const CgEwPlan *p, int m)
{
    const IrNode *n = &g->nodes[p->mem[m]];
    if (n->op != IR_OP_BatchNormalization) return 0;
    int s = leaf_of(p, n, 1), v = leaf_of(p, n, 4);
    return s >= 0 && v >= 0 && row_invariant(p, s) && row_invariant(p, v);
}

static void leaf_load(CgCtx *c, const CgEwPlan *p, int k, const char *idx, const char *ind)
{
    const IrValue *lv = &c->g->values[p->leaf[k].vid];
    fprintf(c->f, "%sconst %s _l%d = ", ind, reg_type(reg_kind(lv->dtype)), k);
    fprintf(c->f, load_fmt(lv->dtype), c->var[p->leaf[k].vid], idx);
    fprintf(c->f, ";\n");
}

void cg_ew_index(CgCtx *c, const CgEwPlan *p, const char *ind)
{
    FILE *f = c->f;
    fprintf(f, "%sint64_t _q = _o;\n", ind);
    for (int d = p->r - 2; d >= 0; d--) {
        if (d > 0)
            fprintf(f, "%sconst int64_t _d%d = _q %% %lld; _q /= %lld;\n", ind, d, (long long)p->dims[d],
                    (long long)p->dims[d]);
        else
            fprintf(f, "%sconst int64_t _d0 = _q;\n", ind);
    }
    for (int k = 0; k < p->nleaf; k++) {
        fprintf(f, "%sconst int64_t _b%d = 0", ind, k);
        for (int d = 0; d < p->r - 1; d++)
            if (p->leaf[k].stride[d]) fprintf(f, " + _d%d * %lld", d, (long long)p->leaf[k].stride[d]);
        fprintf(f, ";\n");
    }
    for (int k = 0; k < p->nleaf; k++) {
        if (!row_invariant(p, k)) continue;
        char idx[32];
        snprintf(idx, sizeof idx, "_b%d", k);
        leaf_load(c, p, k, idx, ind);
    }
    for (int m = 0; m < p->nmem; m++) {
        if (!bn_factor_hoisted(c->g, p, m)) continue;
        const IrNode *n = &c->g->nodes[p->mem[m]];
        fprintf(f, "%sconst float _a%d = _l%d / sqrt(_l%d + %s);\n", ind, m, leaf_of(p, n, 1),
                leaf_of(p, n, 4), CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
    }
}

void cg_ew_body(CgCtx *c, const CgEwPlan *p, const char *ind)
{
    IrGraph *g = c->g;
    FILE *f = c->f;
    const IrValue *out = &g->values[g->nodes[p->root].out[0]];
    for (int k = 0; k < p->nleaf; k++) {
        if (row_invariant(p, k)) continue; // loaded by cg_ew_index
        char idx[64];
        if (p->r == 1) snprintf(idx, sizeof idx, "%s", p->leaf[k].stride[0] ? "_i" : "0");
        else snprintf(idx, sizeof idx, "_b%d + _j", k);
        leaf_load(c, p, k, idx, ind);
    }
    char (*reg)[16] = ir_xmalloc((size_t)p->nmem * sizeof *reg);
    for (int m = 0; m < p->nmem; m++) {
        const IrNode *n = &g->nodes[p->mem[m]];
        const char *opnd[IR_MAX_RANK];
        char names[IR_MAX_RANK][16], factor[16];
        IR_ASSERT(n->nin <= IR_MAX_RANK);
        for (int j = 0; j < IR_MAX_RANK; j++) opnd[j] = j < n->nin ? "0" : NULL;
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j], k = v >= 0 ? leaf_of(p, n, j) : -1;
            if (k >= 0) snprintf(names[j], sizeof names[j], "_l%d", k), opnd[j] = names[j];
            for (int q = 0; q < m && v >= 0; q++)
                if (g->nodes[p->mem[q]].out[0] == v) opnd[j] = reg[q];
        }
        if (n->op == IR_OP_BatchNormalization)
            opnd[5] = bn_factor_hoisted(g, p, m) ? (snprintf(factor, sizeof factor, "_a%d", m), factor) : NULL;
        snprintf(reg[m], sizeof reg[m], "_t%d", m);
        /* a side member is stored as a root is, so as a lone Cast's loop stores it */
        node_stmt(c, p->mem[m], opnd, reg[m], m == p->nmem - 1 || n->phase == IR_LOWBIT, ind);
    }
    char st[64];
    snprintf(st, sizeof st, store_fmt(out->dtype), reg[p->nmem - 1]);
    fprintf(f, "%s%s[_i] = %s;\n", ind, c->var[g->nodes[p->root].out[0]], st);
    for (int m = 0; m < p->nmem - 1; m++) {
        const IrNode *n = &g->nodes[p->mem[m]];
        if (n->phase != IR_LOWBIT) continue;
        snprintf(st, sizeof st, store_fmt(g->values[n->out[0]].dtype), reg[m]);
        fprintf(f, "%s%s[_i] = %s; // low-bit storage\n", ind, c->var[n->out[0]], st);
    }
    free(reg);
}

/* Element operations per element of a fused loop, its work for the thread
 * threshold: one, plus EW_CALL_WORK for each member whose float expression
 * calls exp, tanh, erf or another libm function. Vectorized, a loop of plain
 * arithmetic costs about one element operation per element whatever its
 * length in nodes (an add over 32768 floats took 5.6 us on one core), and
 * each such call about six (k_expf, k_tanhf or a GELU over the same floats:
 * 32 to 34 us). */
enum { EW_CALL_WORK = 5 };

static int calls_fn(const char *t)
{
    static const char *fn[] = {"%E", "%H", "%R", "log", "sin(", "cos(", "pow(", "fmod("};
    for (size_t k = 0; t && k < sizeof fn / sizeof *fn; k++)
        if (strstr(t, fn[k])) return 1;
    return 0;
}

static int64_t ew_elem_work(const IrGraph *g, const CgEwPlan *p)
{
    int64_t w = 1;
    for (int m = 0; m < p->nmem; m++) {
        const IrNode *n = &g->nodes[p->mem[m]];
        if (n->op == IR_OP_ActivationGrad) { // k_gelu_grad: an exp, erf or tanh; ReLU's: a compare
            w += strcmp(ir_attr_string(n, "act", ""), "Relu") ? EW_CALL_WORK : 0;
            continue;
        }
        const char *t = exprs[n->op].f;
        if (n->op == IR_OP_Gelu && !strcmp(ir_attr_string(n, "approximate", "none"), "tanh"))
            t = exprs[n->op].f_alt;
        if (calls_fn(t)) w += EW_CALL_WORK;
    }
    return w;
}

/* A loop of at least K_PAR_WORK element operations (ew_elem_work per element),
 * the kernels' thread threshold (kernels.h), runs on the kernels' thread
 * pool. Its body becomes a function ew_loop_<root> of the
 * outer index range [_lo, _hi) in the target's loop file (c->kf, loops.h,
 * included by model.c), called through k_par_for with the pointers of its
 * leaves and output; a shorter loop stays inline. */
void cg_elemwise_emit(CgCtx *c, int root)
{
    IrGraph *g = c->g;
    FILE *f = c->f;
    CgEwPlan p;
    cg_ew_plan(c, root, &p);
    cg_declare_outputs(c, root);
    for (int m = 0; m < p.nside; m++) cg_declare_value(c, p.side[m], ", bfloat16 (low-bit storage)");
    int64_t work = p.numel * ew_elem_work(g, &p);
    int par = work >= K_PAR_WORK && c->kf;
    int ov = g->nodes[root].out[0];
    long long n = (long long)(p.r == 1 ? p.numel : p.outer);
    char hi[32];
    snprintf(hi, sizeof hi, "%lld", n);
    if (par) {
        fprintf(f, "    {\n        void *const _args[] = {");
        for (int k = 0; k < p.nleaf; k++) fprintf(f, "(void *)%s, ", c->var[p.leaf[k].vid]);
        fprintf(f, "%s", c->var[ov]);
        for (int m = 0; m < p.nside; m++) fprintf(f, ", %s", c->var[p.side[m]]);
        fprintf(f, "};\n        k_par_for(%lld, %lld, ew_loop_%d, (void *)_args);\n    }\n", n, (long long)work, root);
        c->f = c->kf;
        fprintf(c->f, "\n/* %s [_lo, _hi) of the fused loop whose step in %s calls it */\n"
                      "static void ew_loop_%d(void *_arg, int64_t _lo, int64_t _hi, int _tid)\n{\n"
                      "    void *const *_args = _arg;\n    (void)_tid;\n",
                p.r == 1 ? "elements" : "outer rows", c->t->model_name, root);
        for (int k = 0; k < p.nleaf; k++)
            if (p.leaf[k].first)
                fprintf(c->f, "    const %s *%s = _args[%d];\n", cg_ctype(g->values[p.leaf[k].vid].dtype),
                        c->var[p.leaf[k].vid], k);
        fprintf(c->f, "    %s *%s = _args[%d];\n", cg_ctype(g->values[ov].dtype), c->var[ov], p.nleaf);
        for (int m = 0; m < p.nside; m++)
            fprintf(c->f, "    %s *%s = _args[%d];\n", cg_ctype(g->values[p.side[m]].dtype), c->var[p.side[m]],
                    p.nleaf + 1 + m);
        snprintf(hi, sizeof hi, "_hi");
    }
    const char *lo = par ? "_lo" : "0";
    if (p.r == 1) {
        fprintf(c->f, "    for (int64_t _i = %s; _i < %s; _i++) {\n", lo, hi);
    } else {
        /* the outer index decomposed into the merged dims, then each leaf's base */
        fprintf(c->f, "    for (int64_t _o = %s; _o < %s; _o++) {\n", lo, hi);
        cg_ew_index(c, &p, "        ");
        fprintf(c->f, "        for (int64_t _j = 0; _j < %lld; _j++) {\n", (long long)p.inner);
        fprintf(c->f, "            const int64_t _i = _o * %lld + _j;\n", (long long)p.inner);
    }
    cg_ew_body(c, &p, p.r == 1 ? "        " : "            ");
    if (p.r > 1) fprintf(c->f, "        }\n");
    fprintf(c->f, "    }\n");
    if (par) {
        fprintf(c->f, "}\n");
        c->f = f;
    }
    cg_ew_plan_free(&p);
}
