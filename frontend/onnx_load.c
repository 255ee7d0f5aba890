/* ONNX import: read a model file, check its wire format (pbcheck.c), unpack it
 * with the protobuf-c parser generated at build time from the system's
 * onnx.proto, and build the IR: values for graph inputs (with symbolic dims
 * bound from --dim), initializers (raw, typed or external data), Constant
 * nodes and tensor attributes; nodes with their attributes checked against
 * the op table; the shapes the model declares, kept for checking inference.
 * Every refusal names the file, the node, the op and the opset. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frontend.h"
#include "onnx.pb-c.h"
#include "pbcheck.h"

#define ONNX_MIN_OPSET 7
#define ONNX_MAX_OPSET 20

typedef struct {
    IrGraph *g;
    const OnnxDim *dims;
    int ndims;
    char *dim_used;
    const char *dir; /* the model's folder, for external data */
} Loader;

static const char *str(const char *s) { return s ? s : ""; }

/* "node 'name' (Op, opset N)" for an ONNX node, for messages. */
static int node_fail(Loader *L, const Onnx__NodeProto *np, int index, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int node_fail(Loader *L, const Onnx__NodeProto *np, int index, const char *fmt, ...)
{
    IrGraph *g = L->g;
    char where[512];
    if (np->name && *np->name)
        snprintf(where, sizeof where, "node '%s' (%s, opset %d)", np->name, str(np->op_type), g->opset);
    else
        snprintf(where, sizeof where, "node #%d (%s, opset %d)", index, str(np->op_type), g->opset);
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ir_fail(g, -1, "%s: %s", where, msg);
}

/* ---- files ---- */

static int read_file(IrGraph *g, const char *path, uint8_t **out, size_t *len)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return ir_fail(g, -1, "cannot open the model: %s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return ir_fail(g, -1, "is a directory; give the path of an .onnx file");
    if (!S_ISREG(st.st_mode)) return ir_fail(g, -1, "not a regular file; give an .onnx file");
    if (st.st_size == 0) return ir_fail(g, -1, "the file is empty; not an ONNX model");
    FILE *f = fopen(path, "rb");
    if (!f) return ir_fail(g, -1, "cannot open the model: %s", strerror(errno));
    uint8_t *buf = ir_xmalloc((size_t)st.st_size);
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        free(buf);
        return ir_fail(g, -1, "read %zu of %lld bytes of the model", n, (long long)st.st_size);
    }
    *out = buf;
    *len = n;
    return 0;
}

/* ---- tensors ---- */

/* The element count, or -1 for a negative dim or when the non-zero dims
 * multiply past 2^50 (an empty tensor's strides must stay in range too). */
static int64_t checked_numel(int rank, const int64_t *dims)
{
    int64_t n = 1, nz = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] && nz > (INT64_C(1) << 50) / dims[i]) return -1;
        if (dims[i]) nz *= dims[i];
        n *= dims[i];
    }
    return n;
}

/* A relative path inside the model's folder: no absolute paths, no "..". */
static int safe_location(const char *loc)
{
    if (!*loc || loc[0] == '/') return 0;
    for (const char *p = loc; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!e) break;
        p = e + 1;
    }
    return 1;
}

static int load_external(Loader *L, Onnx__TensorProto *t, const char *what, int64_t need,
                         void **data)
{
    IrGraph *g = L->g;
    const char *loc = NULL;
    int64_t offset = 0, length = -1;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const char *k = str(t->external_data[i]->key), *v = str(t->external_data[i]->value);
        char *end;
        if (strcmp(k, "location") == 0) {
            loc = v;
        } else if (strcmp(k, "offset") == 0 || strcmp(k, "length") == 0) {
            errno = 0;
            long long x = strtoll(v, &end, 10);
            if (errno || *end || x < 0)
                return ir_fail(g, -1, "%s: external data %s '%s' is not a non-negative integer",
                               what, k, v);
            if (k[0] == 'o') offset = x; else length = x;
        }
    }
    if (!loc) return ir_fail(g, -1, "%s: external data without a 'location'", what);
    if (!safe_location(loc))
        return ir_fail(g, -1,
                       "%s: external data location '%s' must be a relative path inside the "
                       "model's folder",
                       what, loc);
    if (length >= 0 && length != need)
        return ir_fail(g, -1, "%s: external data length %lld, but its shape and dtype need %lld bytes",
                       what, (long long)length, (long long)need);
    size_t plen = strlen(L->dir) + strlen(loc) + 2;
    char *path = ir_xmalloc(plen);
    snprintf(path, plen, "%s/%s", L->dir, loc);
    FILE *f = fopen(path, "rb");
    if (!f) {
        ir_fail(g, -1, "%s: cannot open external data file '%s': %s", what, path, strerror(errno));
        free(path);
        return -1;
    }
    uint8_t *buf = ir_xmalloc((size_t)need);
    size_t got = 0;
    if (fseeko(f, (off_t)offset, SEEK_SET) == 0) got = fread(buf, 1, (size_t)need, f);
    fclose(f);
    if ((int64_t)got != need) {
        ir_fail(g, -1,
                "%s: external data file '%s' holds %zu bytes from offset %lld; the tensor needs "
                "%lld",
                what, path, got, (long long)offset, (long long)need);
        free(path);
        free(buf);
        return -1;
    }
    free(path);
    *data = buf;
    return 0;
}

/* Make a constant or parameter value from a TensorProto: shape, dtype and
 * contents (raw_data, the typed fields, or external data). The raw_data
 * block is taken over, not copied. */
static int tensor_value(Loader *L, Onnx__TensorProto *t, const char *name, IrRole role,
                        const char *what, int *vid_out)
{
    IrGraph *g = L->g;
    IrDType dt = (IrDType)t->data_type;
    if (!t->has_data_type || dt <= IR_UNDEF || dt >= IR_NDTYPE)
        return ir_fail(g, -1, "%s: unknown data type %d", what, (int)t->data_type);
    if (dt == IR_STRING || dt == IR_C64 || dt == IR_C128)
        return ir_fail(g, -1,
                       "%s: %s tensors are not supported; loom supports float, integer and bool "
                       "tensors",
                       what, ir_dtype_name(dt));
    if (t->n_dims > IR_MAX_RANK)
        return ir_fail(g, -1, "%s: rank %zu; loom supports ranks up to %d", what, t->n_dims,
                       IR_MAX_RANK);
    if (t->segment) return ir_fail(g, -1, "%s: segmented tensors are not supported", what);
    int64_t numel = checked_numel((int)t->n_dims, t->dims);
    if (numel < 0)
        return ir_fail(g, -1, "%s: invalid dims (negative, or too many elements)", what);
    int esize = ir_dtype_size(dt);
    int64_t need = numel * esize;
    void *data = NULL;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        if (load_external(L, t, what, need, &data) < 0) return -1;
    } else if (t->has_raw_data) {
        if ((int64_t)t->raw_data.len != need)
            return ir_fail(g, -1, "%s: raw_data has %zu bytes; %s with %lld elements needs %lld",
                           what, t->raw_data.len, ir_dtype_name(dt), (long long)numel,
                           (long long)need);
        if (need == 0) {
            data = ir_xmalloc(1);
        } else {
            data = t->raw_data.data; /* take it: freed by the graph, not by protobuf-c */
            t->raw_data.data = NULL;
            t->raw_data.len = 0;
            t->has_raw_data = 0;
        }
    } else {
        size_t have;
        switch (dt) {
        case IR_F32: have = t->n_float_data; break;
        case IR_F64: have = t->n_double_data; break;
        case IR_I64: have = t->n_int64_data; break;
        case IR_U32: case IR_U64: have = t->n_uint64_data; break;
        default: have = t->n_int32_data; break;
        }
        if ((int64_t)have != numel)
            return ir_fail(g, -1, "%s: holds %zu values; its shape needs %lld", what, have,
                           (long long)numel);
        data = ir_xmalloc((size_t)(need ? need : 1));
        for (int64_t i = 0; i < numel; i++) {
            char *d = (char *)data + i * esize;
            switch (dt) {
            case IR_F32: memcpy(d, &t->float_data[i], 4); break;
            case IR_F64: memcpy(d, &t->double_data[i], 8); break;
            case IR_I64: memcpy(d, &t->int64_data[i], 8); break;
            case IR_U64: memcpy(d, &t->uint64_data[i], 8); break;
            case IR_U32: { uint32_t x = (uint32_t)t->uint64_data[i]; memcpy(d, &x, 4); break; }
            case IR_I32: memcpy(d, &t->int32_data[i], 4); break;
            case IR_I16: case IR_U16: case IR_F16: case IR_BF16: {
                uint16_t x = (uint16_t)t->int32_data[i];
                memcpy(d, &x, 2);
                break;
            }
            case IR_BOOL: *(uint8_t *)d = t->int32_data[i] != 0; break;
            default: *(uint8_t *)d = (uint8_t)t->int32_data[i]; break; /* int8, uint8 */
            }
        }
    }
    if (ir_value_find(g, name) >= 0) {
        free(data);
        return ir_fail(g, -1, "%s: the name '%s' is defined twice", what, name);
    }
    int vid = ir_value_new(g, name, role);
    ir_value_set_shape(&g->values[vid], dt, (int)t->n_dims, t->dims);
    ir_value_set_data(g, vid, data);
    *vid_out = vid;
    return 0;
}

/* ---- declared types and shapes ---- */

static const OnnxDim *find_dim(Loader *L, const char *name)
{
    for (int i = 0; i < L->ndims; i++)
        if (strcmp(L->dims[i].name, name) == 0) {
            L->dim_used[i] = 1;
            return &L->dims[i];
        }
    return NULL;
}

/* Read a ValueInfo's tensor type. For graph inputs every dim must end up
 * static (bound from --dim); elsewhere an unknown dim is -1. */
static int read_type(Loader *L, const Onnx__ValueInfoProto *vi, int is_input, IrDType *dt,
                     int *rank, int64_t *dims)
{
    IrGraph *g = L->g;
    const char *name = str(vi->name);
    const Onnx__TypeProto *tp = vi->type;
    if (!tp) {
        if (is_input) return ir_fail(g, -1, "input '%s' has no type", name);
        *dt = IR_UNDEF;
        *rank = -1;
        return 0;
    }
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return ir_fail(g, -1,
                       "'%s' is a sequence, map, optional or sparse value, which is not "
                       "supported; loom supports dense tensors",
                       name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    *dt = tt->has_elem_type ? (IrDType)tt->elem_type : IR_UNDEF;
    if (*dt < IR_UNDEF || *dt >= IR_NDTYPE)
        return ir_fail(g, -1, "'%s' has unknown element type %d", name, (int)tt->elem_type);
    if (is_input && (*dt == IR_UNDEF || *dt == IR_STRING || *dt == IR_C64 || *dt == IR_C128))
        return ir_fail(g, -1,
                       "input '%s' has element type %s, which is not supported; loom supports "
                       "float, integer and bool inputs",
                       name, ir_dtype_name(*dt));
    if (!tt->shape) {
        if (is_input)
            return ir_fail(g, -1, "input '%s' has no shape; loom compiles static shapes only", name);
        *rank = -1;
        return 0;
    }
    if (tt->shape->n_dim > IR_MAX_RANK)
        return ir_fail(g, -1, "'%s' has rank %zu; loom supports ranks up to %d", name,
                       tt->shape->n_dim, IR_MAX_RANK);
    *rank = (int)tt->shape->n_dim;
    for (int i = 0; i < *rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        char axis_key[600];
        snprintf(axis_key, sizeof axis_key, "%s:%d", name, i);
        const OnnxDim *b = find_dim(L, axis_key);
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param &&
            *d->dim_param) {
            const OnnxDim *bp = find_dim(L, d->dim_param);
            if (!b) b = bp;
            if (b) {
                dims[i] = b->value;
            } else if (is_input) {
                return ir_fail(g, -1,
                               "input '%s' dim %d is symbolic ('%s'): bind it with --dim %s=N", name,
                               i, d->dim_param, d->dim_param);
            } else {
                dims[i] = -1;
            }
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return ir_fail(g, -1, "'%s' dim %d is negative (%lld)", name, i,
                               (long long)d->dim_value);
            if (b && b->value != d->dim_value)
                return ir_fail(g, -1, "--dim %s=%lld conflicts with the model's size %lld for '%s' "
                                      "dim %d",
                               b->name, (long long)b->value, (long long)d->dim_value, name, i);
            dims[i] = d->dim_value;
        } else if (b) {
            dims[i] = b->value;
        } else if (is_input) {
            return ir_fail(g, -1, "input '%s' dim %d has no size: bind it with --dim %s:%d=N", name,
                           i, name, i);
        } else {
            dims[i] = -1;
        }
    }
    int known = 1;
    for (int i = 0; i < *rank; i++) known &= dims[i] >= 0;
    if (known && checked_numel(*rank, dims) < 0)
        return ir_fail(g, -1, "'%s' is declared with more than 2^50 elements (its non-zero dims)", name);
    return 0;
}

/* ---- nodes ---- */

static char attr_kind_code(int type)
{
    switch (type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return 'f';
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return 'i';
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: return 's';
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: return 't';
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: return 'F';
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: return 'I';
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: return 'S';
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: return 'g';
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: return 'G';
    default: return '?';
    }
}

static const char *attr_kind_name(char k)
{
    switch (k) {
    case 'f': return "float";
    case 'i': return "int";
    case 's': return "string";
    case 't': return "tensor";
    case 'F': return "floats";
    case 'I': return "ints";
    case 'S': return "strings";
    case 'g': return "graph";
    case 'G': return "graphs";
    default: return "unknown";
    }
}

/* The attribute's type; old producers leave `type` unset, so fall back to
 * whichever field holds a value. */
static char attr_kind(const Onnx__AttributeProto *a)
{
    if (a->has_type && a->type) return attr_kind_code(a->type);
    if (a->has_f) return 'f';
    if (a->has_i) return 'i';
    if (a->has_s) return 's';
    if (a->t) return 't';
    if (a->g) return 'g';
    if (a->n_floats) return 'F';
    if (a->n_ints) return 'I';
    if (a->n_strings) return 'S';
    return '?';
}

/* The kind the op's row declares for attribute `name`, or 0 if it takes none by that name. */
static char spec_kind(const char *spec, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = spec; *p;) {
        while (*p == ' ') p++;
        const char *colon = strchr(p, ':');
        if (!colon) break;
        if ((size_t)(colon - p) == n && strncmp(p, name, n) == 0) return colon[1];
        p = colon + 2;
    }
    return 0;
}

static int add_attrs(Loader *L, const Onnx__NodeProto *np, int index, int node)
{
    IrGraph *g = L->g;
    const char *spec = ir_ops[g->nodes[node].op].attrs;
    for (size_t i = 0; i < np->n_attribute; i++) {
        Onnx__AttributeProto *a = np->attribute[i];
        const char *name = str(a->name);
        if (a->ref_attr_name && *a->ref_attr_name)
            return node_fail(L, np, index, "attribute '%s' refers to a function attribute; loom "
                                           "does not support ONNX functions", name);
        char want = spec_kind(spec, name), have = attr_kind(a);
        if (!want)
            return node_fail(L, np, index, "unknown attribute '%s'; %s takes %s", name,
                             str(np->op_type), *spec ? spec : "no attributes");
        if (want != have)
            return node_fail(L, np, index, "attribute '%s' is a %s; it must be a %s", name,
                             attr_kind_name(have), attr_kind_name(want));
        switch (want) {
        case 'f': ir_attr_set_float(g, node, name, a->f); break;
        case 'i': ir_attr_set_int(g, node, name, a->i); break;
        case 's':
            ir_attr_set_string(g, node, name,
                               ir_strndup(g, (const char *)a->s.data, a->s.data ? a->s.len : 0));
            break;
        case 'F': ir_attr_set_floats(g, node, name, (int64_t)a->n_floats, a->floats); break;
        case 'I': ir_attr_set_ints(g, node, name, (int64_t)a->n_ints, a->ints); break;
        case 'S': {
            const char **v = ir_alloc(g, (a->n_strings + 1) * sizeof *v);
            for (size_t k = 0; k < a->n_strings; k++)
                v[k] = ir_strndup(g, (const char *)a->strings[k].data, a->strings[k].len);
            ir_attr_set_strings(g, node, name, (int64_t)a->n_strings, v);
            break;
        }
        case 't': {
            char what[600];
            snprintf(what, sizeof what, "node '%s' attribute '%s'", g->nodes[node].name, name);
            char base[600];
            snprintf(base, sizeof base, "%s.%s", g->nodes[node].name, name);
            int vid;
            if (!a->t) return node_fail(L, np, index, "attribute '%s' holds no tensor", name);
            if (tensor_value(L, a->t, ir_unique_name(g, base), IR_CONST, what, &vid) < 0) return -1;
            ir_attr_set_tensor(g, node, name, vid);
            break;
        }
        default: IR_ASSERT(0);
        }
    }
    return 0;
}

/* A Constant node becomes a constant value, not a node. */
static int load_constant(Loader *L, Onnx__NodeProto *np, int index)
{
    IrGraph *g = L->g;
    if (np->n_output != 1 || !np->output[0] || !*np->output[0])
        return node_fail(L, np, index, "a Constant node must have exactly one named output");
    if (np->n_attribute != 1)
        return node_fail(L, np, index, "a Constant node must have exactly one attribute, has %zu",
                         np->n_attribute);
    const char *out = np->output[0];
    if (ir_value_find(g, out) >= 0)
        return node_fail(L, np, index, "output '%s' is defined twice", out);
    Onnx__AttributeProto *a = np->attribute[0];
    const char *an = str(a->name);
    char k = attr_kind(a);
    char what[600];
    snprintf(what, sizeof what, "Constant '%s'", out);
    if (strcmp(an, "value") == 0 && k == 't' && a->t) {
        int vid;
        return tensor_value(L, a->t, out, IR_CONST, what, &vid);
    }
    IrDType dt;
    int rank = 0;
    int64_t n = 1;
    const void *src;
    if (strcmp(an, "value_float") == 0 && k == 'f') {
        dt = IR_F32, src = &a->f;
    } else if (strcmp(an, "value_int") == 0 && k == 'i') {
        dt = IR_I64, src = &a->i;
    } else if (strcmp(an, "value_floats") == 0 && k == 'F') {
        dt = IR_F32, rank = 1, n = (int64_t)a->n_floats, src = a->floats;
    } else if (strcmp(an, "value_ints") == 0 && k == 'I') {
        dt = IR_I64, rank = 1, n = (int64_t)a->n_ints, src = a->ints;
    } else if (strncmp(an, "value_string", 12) == 0 || strcmp(an, "sparse_value") == 0) {
        return node_fail(L, np, index, "'%s' constants are not supported; loom supports value, "
                                       "value_float(s) and value_int(s)", an);
    } else {
        return node_fail(L, np, index, "attribute '%s' (%s) is not a Constant attribute", an,
                         attr_kind_name(k));
    }
    int vid = ir_value_new(g, out, IR_CONST);
    ir_value_set_shape(&g->values[vid], dt, rank, &n);
    void *data = ir_xmalloc((size_t)(n ? n : 1) * ir_dtype_size(dt));
    memcpy(data, src, (size_t)n * ir_dtype_size(dt));
    ir_value_set_data(g, vid, data);
    return 0;
}

static int is_default_domain(const char *d) { return !d || !*d || strcmp(d, "ai.onnx") == 0; }

static int load_nodes(Loader *L, Onnx__GraphProto *gp)
{
    IrGraph *g = L->g;
    /* First the values every node defines, so that inputs may refer to values
     * defined by later nodes (the order is fixed by topological sort later). */
    int *first_out = ir_xmalloc((gp->n_node + 1) * sizeof(int));
    int rc = -1;
    for (size_t i = 0; i < gp->n_node; i++) {
        Onnx__NodeProto *np = gp->node[i];
        const char *op = str(np->op_type);
        first_out[i] = g->nvalues;
        if (!is_default_domain(np->domain)) {
            node_fail(L, np, (int)i, "op '%s' from domain '%s' is not supported; loom supports "
                                     "the standard ai.onnx operators (docs/ops.md, `loom ops`)",
                      op, np->domain);
            goto out;
        }
        if (strcmp(op, "Constant") == 0) {
            if (load_constant(L, np, (int)i) < 0) goto out;
            continue;
        }
        if (ir_op_lookup(op) < 0) {
            node_fail(L, np, (int)i,
                      "unsupported op '%s'; loom supports %d ai.onnx operators, listed by `loom "
                      "ops` and in docs/ops.md",
                      op, ir_op_count_onnx() + 1 /* Constant */);
            goto out;
        }
        for (size_t k = 0; k < np->n_output; k++) {
            const char *o = str(np->output[k]);
            if (!*o) continue; /* an omitted optional output */
            int prev = ir_value_find(g, o);
            if (prev >= 0) {
                node_fail(L, np, (int)i, "output '%s' is already defined (%s)", o,
                          g->values[prev].role == IR_INPUT    ? "by a graph input"
                          : g->values[prev].role == IR_PARAM ||
                                  g->values[prev].data ? "by an initializer or constant"
                                                       : "by another node");
                goto out;
            }
            ir_value_new(g, o, IR_ACTIVATION);
        }
    }
    for (size_t i = 0; i < gp->n_node; i++) {
        Onnx__NodeProto *np = gp->node[i];
        const char *op = str(np->op_type);
        if (strcmp(op, "Constant") == 0) continue;
        IrOp o = (IrOp)ir_op_lookup(op);
        const IrOpInfo *info = &ir_ops[o];
        if ((int)np->n_input < info->min_in || (info->max_in >= 0 && (int)np->n_input > info->max_in)) {
            if (info->max_in < 0)
                node_fail(L, np, (int)i, "%s takes at least %d inputs, got %zu", op, info->min_in,
                          np->n_input);
            else
                node_fail(L, np, (int)i, "%s takes %d to %d inputs, got %zu", op, info->min_in,
                          info->max_in, np->n_input);
            goto out;
        }
        if ((int)np->n_output < info->min_out ||
            (info->max_out >= 0 && (int)np->n_output > info->max_out)) {
            node_fail(L, np, (int)i, "%s has %d to %d outputs, got %zu", op, info->min_out,
                      info->max_out < 0 ? INT_MAX : info->max_out, np->n_output);
            goto out;
        }
        int *in = ir_alloc(g, (np->n_input + 1) * sizeof(int));
        int *outs = ir_alloc(g, (np->n_output + 1) * sizeof(int));
        for (size_t k = 0; k < np->n_input; k++) {
            const char *name = str(np->input[k]);
            if (!*name) {
                in[k] = -1;
                continue;
            }
            in[k] = ir_value_find(g, name);
            if (in[k] < 0) {
                node_fail(L, np, (int)i,
                          "input %zu reads '%s', which no node, graph input, initializer or "
                          "Constant defines",
                          k, name);
                goto out;
            }
        }
        /* drop trailing omitted inputs so that nin counts what is there */
        int nin = (int)np->n_input;
        while (nin > 0 && in[nin - 1] < 0) nin--;
        if (nin < info->min_in) {
            node_fail(L, np, (int)i, "required input %d is empty", nin);
            goto out;
        }
        for (size_t k = 0; k < np->n_output; k++) {
            const char *name = str(np->output[k]);
            if (*name) {
                outs[k] = ir_value_find(g, name);
            } else {
                char base[600];
                snprintf(base, sizeof base, "%s.unused%zu", np->name && *np->name ? np->name : op, k);
                outs[k] = ir_value_new(g, ir_unique_name(g, base), IR_ACTIVATION);
            }
        }
        int node = ir_node_new(g, o, np->name, nin, in, (int)np->n_output, outs);
        g->nodes[node].onnx_index = (int)i;
        if (add_attrs(L, np, (int)i, node) < 0) goto out;
    }
    rc = 0;
out:
    free(first_out);
    return rc;
}

/* ---- the graph ---- */

static int load_graph(Loader *L, Onnx__GraphProto *gp)
{
    IrGraph *g = L->g;
    g->graph_name = ir_strdup(g, str(gp->name));
    if (gp->n_sparse_initializer)
        return ir_fail(g, -1, "sparse initializers are not supported; store them dense");
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *t = gp->initializer[i];
        const char *name = str(t->name);
        if (!*name) return ir_fail(g, -1, "initializer #%zu has no name", i);
        char what[600];
        snprintf(what, sizeof what, "initializer '%s'", name);
        IrDType dt = (IrDType)t->data_type;
        int vid;
        if (tensor_value(L, t, name, ir_dtype_is_float(dt) ? IR_PARAM : IR_CONST, what, &vid) < 0)
            return -1;
    }
    g->inputs = ir_xmalloc((gp->n_input + 1) * sizeof(int));
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        const char *name = str(vi->name);
        if (!*name) return ir_fail(g, -1, "graph input #%zu has no name", i);
        /* Before IR version 4 initializers were also listed as inputs: the
         * initializer is the value. */
        int prev = ir_value_find(g, name);
        if (prev >= 0) {
            if (g->values[prev].role == IR_INPUT)
                return ir_fail(g, -1, "graph input '%s' is listed twice", name);
            continue;
        }
        IrDType dt;
        int rank;
        int64_t dims[IR_MAX_RANK];
        if (read_type(L, vi, 1, &dt, &rank, dims) < 0) return -1;
        int vid = ir_value_new(g, name, IR_INPUT);
        ir_value_set_shape(&g->values[vid], dt, rank, dims);
        g->inputs[g->ninputs++] = vid;
    }
    if (load_nodes(L, gp) < 0) return -1;
    /* declared shapes: value_info and outputs */
    for (size_t i = 0; i < gp->n_value_info + gp->n_output; i++) {
        int is_out = i >= gp->n_value_info;
        const Onnx__ValueInfoProto *vi = is_out ? gp->output[i - gp->n_value_info] : gp->value_info[i];
        const char *name = str(vi->name);
        int vid = ir_value_find(g, name);
        if (vid < 0) {
            if (is_out)
                return ir_fail(g, -1, "graph output '%s' is produced by no node, input or "
                                      "initializer", name);
            continue; /* value_info about a value nothing defines: harmless, ignored */
        }
        IrValue *v = &g->values[vid];
        if (is_out) {
            if (v->is_output) return ir_fail(g, -1, "graph output '%s' is listed twice", name);
            v->is_output = 1;
        }
        IrDType dt;
        int rank;
        int64_t dims[IR_MAX_RANK];
        if (read_type(L, vi, 0, &dt, &rank, dims) < 0) return -1;
        v->decl_dtype = dt;
        v->decl_rank = rank;
        for (int k = 0; k < rank; k++) v->decl_dims[k] = dims[k];
    }
    if (gp->n_output == 0) return ir_fail(g, -1, "the graph has no outputs");
    g->outputs = ir_xmalloc(gp->n_output * sizeof(int));
    for (size_t i = 0; i < gp->n_output; i++) g->outputs[g->noutputs++] = ir_value_find(g, gp->output[i]->name);
    return 0;
}

int onnx_load(IrGraph *g, const OnnxDim *dims, int ndims)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (read_file(g, g->path, &buf, &len) < 0) return -1;
    int rc = onnx_load_bytes(g, buf, len, dims, ndims);
    free(buf);
    return rc;
}

int onnx_load_bytes(IrGraph *g, const uint8_t *buf, size_t len, const OnnxDim *dims, int ndims)
{
    char err[512];
    if (pb_check(buf, len, err, sizeof err) < 0) return ir_fail(g, -1, "%s", err);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (!m)
        return ir_fail(g, -1, "not a valid ONNX model: the protobuf parser rejected it (a field "
                              "has the wrong type or a required field is missing)");
    int rc = -1;
    char *dir = NULL;
    Loader L = {g, dims, ndims, ir_xcalloc(ndims + 1, 1), NULL};
    if (!m->graph) {
        ir_fail(g, -1, "not an ONNX model: it has no graph");
        goto out;
    }
    g->ir_version = m->has_ir_version ? m->ir_version : 0;
    g->producer = ir_strdup(g, str(m->producer_name));
    g->opset = 0;
    for (size_t i = 0; i < m->n_opset_import; i++)
        if (is_default_domain(m->opset_import[i]->domain)) g->opset = (int)m->opset_import[i]->version;
    if (g->opset == 0) {
        char doms[256] = "";
        size_t k = 0;
        for (size_t i = 0; i < m->n_opset_import && k < sizeof doms - 64; i++)
            k += (size_t)snprintf(doms + k, sizeof doms - k, "%s'%s'", i ? ", " : "",
                                  str(m->opset_import[i]->domain));
        ir_fail(g, -1,
                "the model imports no ai.onnx opset, only the domains [%s], which are not "
                "supported; loom reads the standard ai.onnx domain",
                doms);
        goto out;
    }
    if (g->opset < ONNX_MIN_OPSET || g->opset > ONNX_MAX_OPSET) {
        ir_fail(g, -1,
                "ai.onnx opset %d is not supported; loom reads opsets %d to %d (re-export the "
                "model with opset_version=17)",
                g->opset, ONNX_MIN_OPSET, ONNX_MAX_OPSET);
        goto out;
    }
    const char *slash = strrchr(g->path, '/');
    dir = slash ? strndup(g->path, (size_t)(slash - g->path)) : strdup(".");
    if (slash == g->path) {
        free(dir);
        dir = strdup("/");
    }
    L.dir = dir;
    if (load_graph(&L, m->graph) < 0) goto out;
    for (int i = 0; i < ndims; i++)
        if (!L.dim_used[i]) {
            ir_fail(g, -1,
                    "--dim %s matches no symbolic dimension or input axis of the model",
                    dims[i].name);
            goto out;
        }
    rc = 0;
out:
    free(dir);
    free(L.dim_used);
    onnx__model_proto__free_unpacked(m, NULL);
    return rc;
}

int onnx_load_tensor_file(IrGraph *g, const char *path, const char *name, int *vid)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[512];
    if (read_file(g, path, &buf, &len) < 0) return -1;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!t) return ir_fail(g, -1, "%s: not a serialized ONNX TensorProto", path);
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    Loader L = {g, NULL, 0, NULL, dir};
    snprintf(err, sizeof err, "tensor file '%s'", path);
    int rc = tensor_value(&L, t, name, IR_CONST, err, vid);
    free(dir);
    onnx__tensor_proto__free_unpacked(t, NULL);
    return rc;
}

int onnx_parse_dim(char *arg, OnnxDim *d)
{
    char *eq = strrchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(eq + 1, &end, 10);
    if (errno || *end || v < 0 || v > (INT64_C(1) << 40)) return -1;
    *eq = 0;
    d->name = arg;
    d->value = v;
    return 0;
}
