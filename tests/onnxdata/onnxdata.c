/* The tool behind the tiers that use the ONNX backend test data, whose models
 * come with inputs and expected outputs as serialized TensorProto (.pb) files.
 *   onnxdata scan DIR...            import every DIR/NAME/model.onnx and compare
 *       the inferred output shapes with test_data_set_0/output_N.pb; one line per
 *       model: "DIR ok|unsupported|mismatch|error OPS... | MESSAGE", OPS being the
 *       op types the model uses (for docs/ops.md), MESSAGE loom's error if any
 *   onnxdata io TESTDIR             the op types the model uses ("ops A B ..."),
 *       its graph inputs and outputs in order ("in NAME", "out NAME") and the
 *       --dim bindings its test data implies ("dim INPUT:AXIS=N")
 *   onnxdata npy IN.pb OUT.npy      convert, for an infer program's --input
 *   onnxdata compare GOT.npy WANT.pb  compare as ONNX's runner does: floats
 *       within atol 1e-7 + rtol 1e-3 * |want| (NaN equals NaN), the rest exactly
 * Exit 0 on success, 1 on a difference or an error (with a message), 2 on usage. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "onnx.pb-c.h"
#include "rt.h"

/* The whole file, malloc'd (NULL if it cannot be read). */
static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(buf, 1, len > 0 ? (size_t)len : 0, f);
    fclose(f);
    return buf;
}

static Onnx__TensorProto *read_tensor(const char *path)
{
    size_t n;
    uint8_t *buf = read_all(path, &n);
    if (!buf) return NULL;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, n, buf);
    free(buf);
    return t;
}

/* Dimension bindings "INPUT:AXIS=N" for every axis of every graph input,
 * from the shapes of the test's input_K.pb, as a user binds symbolic dims. */
typedef struct {
    OnnxDim d[64];
    char names[64][300];
    int n;
} Bindings;

static void bind_inputs(const Onnx__ModelProto *m, const char *dir, Bindings *b)
{
    int k = 0;
    for (size_t i = 0; m->graph && i < m->graph->n_input; i++) {
        const char *name = m->graph->input[i]->name;
        int is_init = 0;
        for (size_t j = 0; j < m->graph->n_initializer; j++)
            is_init |= strcmp(m->graph->initializer[j]->name, name) == 0;
        if (is_init) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, k++);
        Onnx__TensorProto *t = read_tensor(path);
        if (!t) continue;
        /* only the axes the model leaves symbolic or unsized */
        const Onnx__TypeProto *tp = m->graph->input[i]->type;
        const Onnx__TensorShapeProto *sh =
            tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? tp->tensor_type->shape : NULL;
        for (size_t a = 0; sh && a < t->n_dims && a < sh->n_dim && b->n < 64; a++) {
            if (sh->dim[a]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) continue;
            snprintf(b->names[b->n], sizeof b->names[0], "%s:%zu", name, a);
            b->d[b->n].name = b->names[b->n];
            b->d[b->n].value = t->dims[a];
            b->n++;
        }
        onnx__tensor_proto__free_unpacked(t, NULL);
    }
}

/* The op types named in the model file, read without loom (so that a model
 * loom refuses still counts toward its ops), and the input bindings. */
static void list_ops(const char *path, const char *dir, char *out, size_t n, Bindings *b)
{
    out[0] = 0;
    size_t got;
    uint8_t *buf = read_all(path, &got);
    if (!buf) return;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, got, buf);
    free(buf);
    if (!m) return;
    bind_inputs(m, dir, b);
    size_t used = 0;
    for (size_t i = 0; m->graph && i < m->graph->n_node; i++) {
        const char *op = m->graph->node[i]->op_type;
        char key[128];
        snprintf(key, sizeof key, " %s ", op);
        char padded[8192];
        snprintf(padded, sizeof padded, " %s ", out);
        if (strstr(padded, key)) continue;
        int k = snprintf(out + used, n - used, "%s%s", used ? " " : "", op);
        if (k < 0 || (size_t)k >= n - used) break;
        used += (size_t)k;
    }
    onnx__model_proto__free_unpacked(m, NULL);
}

static void one(const char *dir)
{
    char path[4096], ops[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    static Bindings b;
    b.n = 0;
    list_ops(path, dir, ops, sizeof ops, &b);
    IrGraph *g = ir_graph_new(path);
    const char *status = "ok";
    char msg[1200] = "";
    if (onnx_load(g, b.d, b.n) < 0 || ir_verify(g) < 0 || onnx_fold_infer(g) < 0 || ir_verify(g) < 0) {
        /* a refusal of a form loom does not implement, as opposed to a failure */
        int refused = strstr(g->err, "not supported") || strstr(g->err, "unsupported") ||
                      strstr(g->err, "must be a constant");
        status = refused ? "unsupported" : "error";
        snprintf(msg, sizeof msg, "%s", g->err);
    } else {
        for (int i = 0; i < g->noutputs; i++) {
            snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, i);
            Onnx__TensorProto *t = read_tensor(path);
            if (!t) continue; /* no expected output stored */
            const IrValue *v = &g->values[g->outputs[i]];
            /* the test data of ONNX 1.12 stores bfloat16 results as uint16 */
            int dt = t->data_type == IR_U16 && v->dtype == IR_BF16 ? IR_BF16 : t->data_type;
            int same = v->rank == (int)t->n_dims && (!t->has_data_type || (int)v->dtype == dt);
            for (int k = 0; same && k < v->rank; k++) same = v->dims[k] == t->dims[k];
            if (!same) {
                char got[256];
                status = "mismatch";
                int k = snprintf(msg, sizeof msg, "output %d '%s': inferred %s, expected %s[", i,
                                 v->name, ir_shape_str(v, got, sizeof got),
                                 ir_dtype_name((IrDType)t->data_type));
                for (size_t d = 0; d < t->n_dims && k < (int)sizeof msg - 32; d++)
                    k += snprintf(msg + k, sizeof msg - k, "%s%lld", d ? "," : "", (long long)t->dims[d]);
                snprintf(msg + k, sizeof msg - k, "]");
            }
            onnx__tensor_proto__free_unpacked(t, NULL);
            if (!same) break;
        }
    }
    /* messages are one line */
    for (char *p = msg; *p; p++)
        if (*p == '\n') *p = ' ';
    printf("%s %s %s | %s\n", dir, status, ops, msg);
    ir_graph_free(g);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static double elem(const void *p, int64_t i, IrDType t)
{
    switch (t) {
    case IR_F32: return ((const float *)p)[i];
    case IR_F64: return ((const double *)p)[i];
    case IR_I8: return ((const int8_t *)p)[i];
    case IR_U8: case IR_BOOL: return ((const uint8_t *)p)[i];
    case IR_I16: return ((const int16_t *)p)[i];
    case IR_U16: return ((const uint16_t *)p)[i];
    case IR_I32: return ((const int32_t *)p)[i];
    case IR_U32: return ((const uint32_t *)p)[i];
    case IR_I64: return (double)((const int64_t *)p)[i];
    case IR_U64: return (double)((const uint64_t *)p)[i];
    case IR_F16: case IR_BF16: {
        uint16_t h = ((const uint16_t *)p)[i];
        uint32_t bits;
        if (t == IR_BF16) {
            bits = (uint32_t)h << 16;
        } else {
            uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
            if (e == 31) bits = sign | 0x7f800000u | (m << 13);
            else if (e) bits = sign | ((e + 112) << 23) | (m << 13);
            else if (!m) bits = sign;
            else {
                float f = ldexpf((float)m, -24);
                memcpy(&bits, &f, 4);
                bits |= sign;
            }
        }
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    default: return NAN;
    }
}

static int convert_or_compare(int argc, char **argv)
{
    int to_npy = strcmp(argv[1], "npy") == 0;
    const char *pb = to_npy ? argv[2] : argv[3];
    IrGraph *g = ir_graph_new(pb);
    int vid, rc = 1;
    rt_tensor got = {0};
    if (onnx_load_tensor_file(g, pb, "t", &vid) < 0) {
        fprintf(stderr, "%s\n", g->err);
        goto out;
    }
    const IrValue *v = &g->values[vid];
    if (to_npy) {
        rt_tensor t = {(rt_dtype)v->dtype, v->rank, {0}, v->data, (size_t)ir_value_bytes(v)};
        for (int k = 0; k < v->rank; k++) t.dims[k] = v->dims[k];
        if (rt_npy_write(argv[3], &t) < 0) fprintf(stderr, "%s\n", rt_error());
        else rc = 0;
        goto out;
    }
    if (rt_npy_read(argv[2], &got) < 0) {
        fprintf(stderr, "%s\n", rt_error());
        goto out;
    }
    /* ONNX 1.12's test data stores bfloat16 results as uint16 */
    IrDType want_t = v->dtype == IR_U16 && got.dtype == (rt_dtype)IR_BF16 ? IR_BF16 : v->dtype;
    int same_shape = got.rank == v->rank && (int)got.dtype == (int)want_t;
    for (int k = 0; same_shape && k < v->rank; k++) same_shape = got.dims[k] == v->dims[k];
    if (!same_shape) {
        char s[128];
        fprintf(stderr, "shape or dtype differs: got %s rank %d, want %s\n", rt_dtype_name(got.dtype),
                got.rank, ir_shape_str(v, s, sizeof s));
        goto out;
    }
    int64_t n = ir_value_numel(v), bad = 0, first = -1;
    double worst = 0;
    int is_float = ir_dtype_is_float(want_t);
    for (int64_t i = 0; i < n; i++) {
        double a = elem(got.data, i, want_t), b = elem(v->data, i, want_t);
        int ok;
        if (is_float) {
            ok = (isnan(a) && isnan(b)) || a == b || fabs(a - b) <= 1e-7 + 1e-3 * fabs(b);
            if (!isnan(a) && !isnan(b) && !isinf(b)) worst = fmax(worst, fabs(a - b) / (fabs(b) + 1e-7));
        } else {
            ok = memcmp((const char *)got.data + i * ir_dtype_size(want_t),
                        (const char *)v->data + i * ir_dtype_size(want_t), ir_dtype_size(want_t)) == 0;
        }
        if (!ok && bad++ == 0) first = i;
    }
    if (bad) {
        fprintf(stderr, "%lld of %lld elements differ; first at %lld: got %g, want %g (worst rel %.3g)\n",
                (long long)bad, (long long)n, (long long)first, elem(got.data, first, want_t),
                elem(v->data, first, want_t), worst);
        goto out;
    }
    rc = 0;
out:
    rt_tensor_free(&got);
    ir_graph_free(g);
    return rc;
}
static int scan(int argc, char **argv)
{
    for (int a = 2; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            fprintf(stderr, "onnxdata: cannot open %s\n", argv[a]);
            return 2;
        }
        char **names = NULL;
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            names = realloc(names, (n + 1) * sizeof *names);
            size_t len = strlen(argv[a]) + strlen(e->d_name) + 2;
            names[n] = malloc(len);
            snprintf(names[n++], len, "%s/%s", argv[a], e->d_name);
        }
        closedir(d);
        qsort(names, n, sizeof *names, cmp);
        for (size_t i = 0; i < n; i++) {
            one(names[i]);
            fflush(stdout);
            free(names[i]);
        }
        free(names);
    }
    return 0;
}

/* The graph's inputs and outputs and the dims its test data binds. */
static int io(const char *dir)
{
    char path[4096], ops[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    static Bindings b;
    b.n = 0;
    list_ops(path, dir, ops, sizeof ops, &b);
    IrGraph *g = ir_graph_new(path);
    int ok = onnx_load(g, b.d, b.n) == 0;
    if (!ok) fprintf(stderr, "%s\n", g->err);
    if (ok) printf("ops %s\n", ops);
    for (int i = 0; ok && i < b.n; i++) printf("dim %s=%lld\n", b.d[i].name, (long long)b.d[i].value);
    for (int i = 0; ok && i < g->ninputs; i++) printf("in %s\n", g->values[g->inputs[i]].name);
    for (int i = 0; ok && i < g->noutputs; i++) printf("out %s\n", g->values[g->outputs[i]].name);
    ir_graph_free(g);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "scan") == 0) return scan(argc, argv);
    if (argc == 3 && strcmp(argv[1], "io") == 0) return io(argv[2]);
    if (argc == 4 && (strcmp(argv[1], "npy") == 0 || strcmp(argv[1], "compare") == 0))
        return convert_or_compare(argc, argv);
    fprintf(stderr, "usage: onnxdata scan DIR... | io TESTDIR | npy IN.pb OUT.npy | compare GOT.npy WANT.pb\n");
    return 2;
}
