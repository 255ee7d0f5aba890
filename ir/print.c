/* The text form of the IR, for `loom inspect --ir`, `--dump-after` and the
 * golden tests (so it must be deterministic: no addresses, no hash order).
 *
 *   # graph mlp from model.onnx, opset 17
 *   input %x: float32[4,8]
 *   param @fc1.weight: float32[16,8]
 *   const $shape: int64[2] = [4, 16]
 *   %h: float32[4,16] = Gemm(%x, @fc1.weight, @fc1.bias) {transB=1}  # node fc1
 *   output %h
 *
 * The sigil of a value reference says its role: @ parameter, $ constant, %
 * everything else (inputs and computed values). Declarations come first: graph
 * inputs in model order, then every other value no live node computes, in id
 * order; then the live nodes in topological order; then the graph outputs.
 * Names made of letters, digits and _.:/- print bare; any other name prints in
 * double quotes with C escapes, so every line stays one line. */
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ---- names and strings ---- */

static int is_bare_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == ':' || c == '/' || c == '-';
}

/* Writes s into buf like snprintf (returns the full length): bare when every
 * byte is a bare character and force_quote is off, else quoted and escaped. */
static size_t quote(const char *s, int force_quote, char *buf, size_t n)
{
    size_t k = 0;
    int bare = !force_quote && *s;
    for (const char *p = s; *p && bare; p++) bare = is_bare_char((unsigned char)*p);
#define PUT(ch)                          \
    do {                                 \
        if (k + 1 < n) buf[k] = (ch);    \
        k++;                             \
    } while (0)
    if (!bare) PUT('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (bare || (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')) {
            PUT(c);
        } else if (c == '"' || c == '\\') {
            PUT('\\');
            PUT(c);
        } else if (c == '\n') {
            PUT('\\');
            PUT('n');
        } else if (c == '\t') {
            PUT('\\');
            PUT('t');
        } else {
            static const char hex[] = "0123456789abcdef";
            PUT('\\');
            PUT('x');
            PUT(hex[c >> 4]);
            PUT(hex[c & 15]);
        }
    }
    if (!bare) PUT('"');
#undef PUT
    if (n) buf[k < n ? k : n - 1] = 0;
    return k;
}

const char *ir_name_str(const char *name, char *buf, size_t n)
{
    if (!n) return buf;
    size_t len = quote(name ? name : "", 0, buf, n);
    if (len >= n && n > 4) memcpy(buf + n - 4, "...", 4); /* truncated: say so */
    return buf;
}

static void put_quoted(FILE *f, const char *s, int force_quote)
{
    char small[256];
    size_t len = quote(s ? s : "", force_quote, small, sizeof small);
    if (len < sizeof small) {
        fputs(small, f);
        return;
    }
    char *big = ir_xmalloc(len + 1);
    quote(s, force_quote, big, len + 1);
    fputs(big, f);
    free(big);
}

/* A reference to value v, with the sigil of its role. */
static void put_ref(const IrGraph *g, FILE *f, int v)
{
    if (v < 0 || v >= g->nvalues) {
        fprintf(f, v == -1 ? "_" : "%%<bad id %d>", v);
        return;
    }
    const IrValue *val = &g->values[v];
    fputc(val->role == IR_PARAM ? '@' : val->role == IR_CONST ? '$' : '%', f);
    put_quoted(f, val->name, 0);
}

/* ---- shapes and contents ---- */

const char *ir_shape_str(const IrValue *v, char *buf, size_t n)
{
    if (!n) return buf;
    const char *dt = v->dtype == IR_UNDEF ? "?" : ir_dtype_name(v->dtype);
    if (v->rank < 0) {
        snprintf(buf, n, v->dtype == IR_UNDEF ? "?" : "%s[...]", dt);
        return buf;
    }
    size_t k = (size_t)snprintf(buf, n, "%s[", dt);
    for (int i = 0; i < v->rank && k < n; i++) {
        if (v->dims[i] < 0)
            k += (size_t)snprintf(buf + k, n - k, i ? ",?" : "?");
        else
            k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)v->dims[i]);
    }
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static void put_shape(FILE *f, const IrValue *v)
{
    char buf[16 + IR_MAX_RANK * 21];
    fputs(ir_shape_str(v, buf, sizeof buf), f);
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man) { /* subnormal: normalize */
        exp = 113;
        while (!(man & 1024)) man <<= 1, exp--;
        bits = sign | (exp << 23) | ((man & 1023) << 13);
    } else {
        bits = sign;
    }
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* Element i of v's contents, printed as the model would write it. */
static void put_elem(FILE *f, const IrValue *v, int64_t i)
{
    const void *d = v->data;
    switch (v->dtype) {
    case IR_F32: fprintf(f, "%g", ((const float *)d)[i]); break;
    case IR_F64: fprintf(f, "%g", ((const double *)d)[i]); break;
    case IR_F16: fprintf(f, "%g", half_to_float(((const uint16_t *)d)[i])); break;
    case IR_BF16: fprintf(f, "%g", bf16_to_float(((const uint16_t *)d)[i])); break;
    case IR_I8: fprintf(f, "%d", ((const int8_t *)d)[i]); break;
    case IR_U8: fprintf(f, "%u", ((const uint8_t *)d)[i]); break;
    case IR_I16: fprintf(f, "%d", ((const int16_t *)d)[i]); break;
    case IR_U16: fprintf(f, "%u", ((const uint16_t *)d)[i]); break;
    case IR_I32: fprintf(f, "%ld", (long)((const int32_t *)d)[i]); break;
    case IR_U32: fprintf(f, "%lu", (unsigned long)((const uint32_t *)d)[i]); break;
    case IR_I64: fprintf(f, "%lld", (long long)((const int64_t *)d)[i]); break;
    case IR_U64: fprintf(f, "%llu", (unsigned long long)((const uint64_t *)d)[i]); break;
    case IR_BOOL: fputs(((const uint8_t *)d)[i] ? "true" : "false", f); break;
    default: fputc('?', f); break;
    }
}

/* A constant's contents when they are short enough to read: " = [4, 16]". */
static void put_contents(FILE *f, const IrValue *v)
{
    enum { SHOWN = 8 };
    if (!v->data || v->rank < 0 || ir_dtype_size(v->dtype) == 0 || v->dtype == IR_C64 ||
        v->dtype == IR_C128)
        return;
    int64_t n = ir_value_numel(v);
    fputs(" = ", f);
    if (v->rank == 0) {
        put_elem(f, v, 0);
        return;
    }
    fputc('[', f);
    for (int64_t i = 0; i < n && i < SHOWN; i++) {
        if (i) fputs(", ", f);
        put_elem(f, v, i);
    }
    if (n > SHOWN) fputs(", ...", f);
    fputc(']', f);
}

/* ---- nodes ---- */

static void put_attr(const IrGraph *g, FILE *f, const IrAttr *a)
{
    put_quoted(f, a->name, 0);
    fputc('=', f);
    switch (a->kind) {
    case IR_ATTR_INT: fprintf(f, "%lld", (long long)a->u.i); break;
    case IR_ATTR_FLOAT: fprintf(f, "%g", a->u.f); break;
    case IR_ATTR_STRING: put_quoted(f, a->u.s, 1); break;
    case IR_ATTR_TENSOR: put_ref(g, f, a->u.tensor); break;
    case IR_ATTR_INTS:
    case IR_ATTR_FLOATS:
    case IR_ATTR_STRINGS:
        fputc('[', f);
        for (int64_t i = 0; i < a->n; i++) {
            if (i) fputs(", ", f);
            if (a->kind == IR_ATTR_INTS)
                fprintf(f, "%lld", (long long)a->u.is[i]);
            else if (a->kind == IR_ATTR_FLOATS)
                fprintf(f, "%g", a->u.fs[i]);
            else
                put_quoted(f, a->u.ss[i], 1);
        }
        fputc(']', f);
        break;
    default: fprintf(f, "<kind %d>", (int)a->kind); break;
    }
}

static void put_node(const IrGraph *g, FILE *f, int id)
{
    static const char *phase[] = {"", ", backward", ", update", ", recompute", ", offload", ", low-bit"};
    const IrNode *n = &g->nodes[id];
    for (int j = 0; j < n->nout; j++) {
        if (j) fputs(", ", f);
        put_ref(g, f, n->out[j]);
        if (n->out[j] >= 0 && n->out[j] < g->nvalues) {
            fputs(": ", f);
            put_shape(f, &g->values[n->out[j]]);
        }
    }
    fprintf(f, " = %s(", (unsigned)n->op < IR_NOPS ? ir_ops[n->op].name : "?");
    for (int j = 0; j < n->nin; j++) {
        if (j) fputs(", ", f);
        put_ref(g, f, n->in[j]);
    }
    fputc(')', f);
    for (int j = 0; j < n->nattr; j++) {
        fputs(j ? ", " : " {", f);
        put_attr(g, f, &n->attr[j]);
    }
    if (n->nattr) fputc('}', f);
    fputs("  # node ", f);
    put_quoted(f, n->name, 0);
    fprintf(f, "%s\n", (unsigned)n->phase <= IR_LOWBIT ? phase[n->phase] : "");
}

/* ---- the graph ---- */

static void put_decl(const IrGraph *g, FILE *f, int v)
{
    const IrValue *val = &g->values[v];
    fprintf(f, "%s ", ir_role_name(val->role));
    put_ref(g, f, v);
    fputs(": ", f);
    put_shape(f, val);
    if (val->role == IR_CONST) put_contents(f, val);
    fputc('\n', f);
}

/* Whether ir_topo_order can walk g: it trusts every id. */
static int ids_in_range(const IrGraph *g)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] < -1 || n->in[j] >= g->nvalues) return 0;
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] < 0 || n->out[j] >= g->nvalues) return 0;
    }
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].producer < -1 || g->values[v].producer >= g->nnodes) return 0;
    return 1;
}

void ir_print(const IrGraph *g, FILE *f)
{
    fputs("# graph ", f);
    put_quoted(f, g->graph_name, 0);
    fputs(" from ", f);
    put_quoted(f, g->path, 0);
    fprintf(f, ", opset %d\n", g->opset);

    char *declared = ir_xcalloc(g->nvalues ? g->nvalues : 1, 1);
    for (int i = 0; i < g->ninputs; i++) {
        int v = g->inputs[i];
        if (v < 0 || v >= g->nvalues || declared[v]) continue;
        declared[v] = 1;
        put_decl(g, f, v);
    }
    for (int v = 0; v < g->nvalues; v++) {
        int p = g->values[v].producer;
        if (!declared[v] && (p < 0 || p >= g->nnodes || g->nodes[p].dead)) put_decl(g, f, v);
    }
    free(declared);

    int *order = ir_xmalloc((g->nnodes ? g->nnodes : 1) * sizeof *order);
    int n = -1;
    if (ids_in_range(g)) {
        /* ir_topo_order writes g->err when it finds a cycle; the printer must not
         * change the graph, so the message is put back. Graphs are heap objects,
         * never const, so the cast is sound. */
        IrGraph *mg = (IrGraph *)g;
        char saved[sizeof g->err];
        memcpy(saved, g->err, sizeof saved);
        n = ir_topo_order(mg, order);
        memcpy(mg->err, saved, sizeof saved);
    }
    if (n < 0) {
        fputs("# not a valid DAG: nodes in id order\n", f);
        n = 0;
        for (int i = 0; i < g->nnodes; i++)
            if (!g->nodes[i].dead) order[n++] = i;
    }
    for (int i = 0; i < n; i++) put_node(g, f, order[i]);
    free(order);

    for (int i = 0; i < g->noutputs; i++) {
        fputs("output ", f);
        put_ref(g, f, g->outputs[i]);
        fputc('\n', f);
    }
}
