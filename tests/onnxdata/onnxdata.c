/* Import every model.onnx of the ONNX backend test data and compare the shapes
 * loom infers for the graph outputs with the shapes of the expected outputs
 * (test_data_set_0/output_N.pb). Prints one line per model:
 *   DIR ok|unsupported|mismatch|error OPS... | MESSAGE
 * where OPS are the op types the model uses (for docs/ops.md) and MESSAGE is
 * loom's error, if any. Usage: onnxdata DIR... */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "onnx.pb-c.h"

static Onnx__TensorProto *read_tensor(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, got, buf);
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
    FILE *f = fopen(path, "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
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

int main(int argc, char **argv)
{
    for (int a = 1; a < argc; a++) {
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
