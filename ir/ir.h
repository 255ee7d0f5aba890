/* The IR: one graph owning flat arrays of values and nodes, referred to by
 * integer id. Every pass reads and writes this structure; nothing else is
 * shared between the frontend, the optimizer and codegen.
 *
 * Ownership: strings, attribute arrays and node operand lists live in the
 * graph's bump arena and die with the graph. Constant and parameter contents
 * (IrValue.data) are separate heap blocks owned by the graph (freed by
 * ir_graph_free), because they can be large and are replaced by folding. */
#ifndef LOOM_IR_H
#define LOOM_IR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define IR_MAX_RANK 8

typedef struct IrGraph IrGraph;

/* Element types. The numbers are ONNX's TensorProto.DataType, so the
 * frontend needs no mapping table. */
#define IR_DTYPES(X)                  \
    X(UNDEF, 0, 0, "undefined")       \
    X(F32, 1, 4, "float32")           \
    X(U8, 2, 1, "uint8")              \
    X(I8, 3, 1, "int8")               \
    X(U16, 4, 2, "uint16")            \
    X(I16, 5, 2, "int16")             \
    X(I32, 6, 4, "int32")             \
    X(I64, 7, 8, "int64")             \
    X(STRING, 8, 0, "string")         \
    X(BOOL, 9, 1, "bool")             \
    X(F16, 10, 2, "float16")          \
    X(F64, 11, 8, "float64")          \
    X(U32, 12, 4, "uint32")           \
    X(U64, 13, 8, "uint64")           \
    X(C64, 14, 8, "complex64")        \
    X(C128, 15, 16, "complex128")     \
    X(BF16, 16, 2, "bfloat16")

typedef enum {
#define X(e, n, sz, s) IR_##e = n,
    IR_DTYPES(X)
#undef X
    IR_NDTYPE
} IrDType;

int ir_dtype_size(IrDType t);           /* bytes per element; 0 for string/undefined */
const char *ir_dtype_name(IrDType t);   /* "float32", ... ; "?" when out of range */
int ir_dtype_is_float(IrDType t);       /* f16, bf16, f32, f64 */
int ir_dtype_is_int(IrDType t);         /* signed and unsigned integers, not bool */

/* What a value is for. Gradients, optimizer state and the loss come with the
 * training graph (ir/train.h). */
typedef enum {
    IR_ACTIVATION = 0, /* computed by a node */
    IR_INPUT,          /* graph input fed at run time */
    IR_PARAM,          /* float initializer (a parameter when it reaches the loss) */
    IR_CONST,          /* constant: non-float initializer, Constant node, folded value */
    IR_GRAD,
    IR_OPT_STATE,
    IR_LOSS,
} IrRole;

const char *ir_role_name(IrRole r);

typedef struct {
    const char *name;  /* interned */
    IrDType dtype;     /* IR_UNDEF until inferred */
    int rank;          /* -1 until inferred */
    int64_t dims[IR_MAX_RANK];
    IrRole role;
    int producer;      /* node id, or -1 for inputs, initializers and constants */
    int is_output;     /* a graph output */
    void *data;        /* contents of a constant or parameter (heap, owned), else NULL */
    /* Shape the model declared (value_info, graph output); decl_rank -1 if none.
     * A declared dim of -1 is unknown. Inference is checked against it. */
    int decl_rank;
    IrDType decl_dtype;
    int64_t decl_dims[IR_MAX_RANK];
    /* Training (ir/train.h): an optimizer update's output names the parameter
     * or state value whose bytes it overwrites in place; -1 otherwise. */
    int alias;
} IrValue;

/* Attributes, as ONNX types them. */
typedef enum {
    IR_ATTR_FLOAT = 1,
    IR_ATTR_INT,
    IR_ATTR_STRING,
    IR_ATTR_TENSOR,
    IR_ATTR_FLOATS,
    IR_ATTR_INTS,
    IR_ATTR_STRINGS,
} IrAttrKind;

typedef struct {
    const char *name;
    IrAttrKind kind;
    int64_t n;          /* element count for the list kinds */
    union {
        float f;
        int64_t i;
        const char *s;  /* interned; strings may hold NUL-free text only */
        float *fs;
        int64_t *is;
        const char **ss;
        int tensor;     /* value id of a constant holding the tensor */
    } u;
} IrAttr;

/* The one op table. */
#include "ops.h"

typedef enum {
    IR_FORWARD = 0,
    IR_BACKWARD,
    IR_UPDATE,
    IR_RECOMPUTE, /* a forward node run again in backward (remat: optimizer/schedule.c) */
    IR_OFFLOAD,   /* a copy to host memory or back (loom.ToHost, loom.FromHost: schedule.c) */
    IR_LOWBIT,    /* a saved value's Cast to bfloat16 or back (low-bit storage: schedule.c) */
} IrPhase;

typedef struct {
    IrOp op;
    const char *name;  /* ONNX node name, or a generated one ("Relu_12") */
    int nin, nout;
    int *in;           /* value ids; -1 for an omitted optional input */
    int *out;
    int nattr;
    IrAttr *attr;
    IrPhase phase;
    int onnx_index;    /* index of the ONNX node it came from, -1 if none */
    int fwd;           /* backward node: the forward node it differentiates; recompute
                        * node: the forward node it runs again; else -1 */
    int dead;          /* removed by a pass; skipped everywhere, reclaimed by ir_compact */
} IrNode;

typedef struct IrArenaBlock IrArenaBlock;

struct IrGraph {
    IrValue *values;
    int nvalues, cap_values;
    IrNode *nodes;
    int nnodes, cap_nodes;
    int *inputs;   /* graph inputs fed at run time, in model order */
    int ninputs;
    int *outputs;
    int noutputs;
    /* Where the model came from, for messages. */
    const char *path;
    const char *graph_name;
    int opset;               /* ai.onnx opset */
    int64_t ir_version;
    const char *producer;
    IrArenaBlock *arena;
    struct IrNameMap *names; /* name -> value id */
    char err[1024];          /* the last error, formatted with its location */
};

/* ---- graph construction (graph.c) ---- */
IrGraph *ir_graph_new(const char *path);
void ir_graph_free(IrGraph *g);
void *ir_alloc(IrGraph *g, size_t n);             /* zeroed, arena-owned */
const char *ir_strdup(IrGraph *g, const char *s);
const char *ir_strndup(IrGraph *g, const char *s, size_t n);

/* A new value; the name must be unique (ir_value_find first). */
int ir_value_new(IrGraph *g, const char *name, IrRole role);
int ir_value_find(const IrGraph *g, const char *name); /* -1 if absent */
/* A fresh name derived from base ("x" -> "x__1") that no value has. */
const char *ir_unique_name(IrGraph *g, const char *base);
void ir_value_set_shape(IrValue *v, IrDType dt, int rank, const int64_t *dims);
int64_t ir_value_numel(const IrValue *v);        /* product of dims; rank 0 is 1 */
int64_t ir_value_bytes(const IrValue *v);
/* Give v the contents `data` (heap block, ownership moves to the graph). */
void ir_value_set_data(IrGraph *g, int vid, void *data);

int ir_node_new(IrGraph *g, IrOp op, const char *name, int nin, const int *in, int nout,
                const int *out);
/* Attributes are added after ir_node_new; the graph copies arrays and strings. */
void ir_attr_set_int(IrGraph *g, int node, const char *name, int64_t v);
void ir_attr_set_float(IrGraph *g, int node, const char *name, float v);
void ir_attr_set_string(IrGraph *g, int node, const char *name, const char *v);
void ir_attr_set_ints(IrGraph *g, int node, const char *name, int64_t n, const int64_t *v);
void ir_attr_set_floats(IrGraph *g, int node, const char *name, int64_t n, const float *v);
void ir_attr_set_strings(IrGraph *g, int node, const char *name, int64_t n, const char **v);
void ir_attr_set_tensor(IrGraph *g, int node, const char *name, int value);

const IrAttr *ir_attr_find(const IrNode *n, const char *name);
int64_t ir_attr_int(const IrNode *n, const char *name, int64_t dflt);
float ir_attr_float(const IrNode *n, const char *name, float dflt);
const char *ir_attr_string(const IrNode *n, const char *name, const char *dflt);
/* List attributes: returns the array and sets *count, or NULL with *count = 0. */
const int64_t *ir_attr_ints(const IrNode *n, const char *name, int64_t *count);
const float *ir_attr_floats(const IrNode *n, const char *name, int64_t *count);

/* The input value of node n at position i, or -1 when absent or omitted. */
static inline int ir_in(const IrNode *n, int i) { return i < n->nin ? n->in[i] : -1; }

/* Drop dead nodes and the values nothing references; renumbers ids. */
void ir_compact(IrGraph *g);

/* The value whose bytes v is: v itself, or for the output of a view op
 * (Reshape, Identity, ...: OPF_VIEW) the value it views, transitively. */
int ir_view_root(const IrGraph *g, int v);

/* Store the nodes order[0..count) in that order (the others are dropped) and
 * set every value's producer anew. */
void ir_reorder(IrGraph *g, const int *order, int count);

/* Values a and b trade names (a pass that moves a value to another node keeps
 * each node's output named after it). */
void ir_value_swap_names(IrGraph *g, int a, int b);

/* Every Reshape whose output only a unary elementwise op reads moves below
 * that op (sink_reshape.c), so that codegen can fuse the elementwise ops on
 * either side of it; the values computed are the same. Returns how many
 * moved, or -1 (g->err) on a cycle. */
int ir_sink_reshapes(IrGraph *g);

/* A copy of g to try a rewrite on (selection, memory planning): values,
 * nodes, inputs and outputs are its own, and the contents of constants and
 * parameters up to IR_COPY_DATA_MAX bytes (the scalars, shapes and axes those
 * passes read); bigger ones have data NULL. Attribute contents and the path
 * are shared with g, so free the copy before g. */
#define IR_COPY_DATA_MAX (1 << 20)
IrGraph *ir_graph_copy(const IrGraph *g);

/* Node ids in an order where every producer precedes its consumers. Returns
 * the count written to order (nnodes live nodes), or -1 with g->err set when
 * the graph has a cycle. */
int ir_topo_order(IrGraph *g, int *order);

/* Uses: for each value, the nodes that read it (compressed rows). Built on
 * demand because passes rewrite the graph; free with ir_uses_free. */
typedef struct {
    int *start; /* nvalues + 1 offsets into node */
    int *node;
} IrUses;
IrUses ir_uses_build(const IrGraph *g);
void ir_uses_free(IrUses *u);

/* ---- errors ----
 * ir_fail formats "FILE: node 'NAME' (OP, opset N): message" into g->err and
 * returns -1, so a failing check reads `return ir_fail(g, node, "...")`.
 * node -1 omits the node part. */
int ir_fail(IrGraph *g, int node, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int ir_vfail(IrGraph *g, int node, const char *fmt, va_list ap);

/* Internal invariants: abort with file:line. */
#define IR_ASSERT(c)                                                                    \
    ((c) ? (void)0 : ir_assert_fail(__FILE__, __LINE__, #c))
void ir_assert_fail(const char *file, int line, const char *cond) __attribute__((noreturn));
void *ir_xmalloc(size_t n);   /* malloc that aborts with a message on failure */
void *ir_xcalloc(size_t n, size_t m);
void *ir_xrealloc(void *p, size_t n);

/* ---- shapes (shape.c and friends) ---- */
/* Infer dtype and shape of every output of node n from its inputs. */
int ir_infer_node(IrGraph *g, int n);
/* Check every inferred value against the shape the model declared. */
int ir_check_declared(IrGraph *g);
/* Numpy-style broadcast of a and b into out; -1 when they do not broadcast. */
int ir_broadcast(int ra, const int64_t *a, int rb, const int64_t *b, int *rout, int64_t *out);
/* Normalize axis into [0, rank); -1 when out of range. */
int ir_norm_axis(int64_t axis, int rank);
/* Read a constant integer tensor (any int dtype) as int64: returns the element
 * count and sets *out to an arena copy, or -1 if v is not a known constant. */
int64_t ir_const_ints(IrGraph *g, int vid, const int64_t **out);
/* Read a constant scalar as double; returns 0 and sets *out, -1 if not constant. */
int ir_const_scalar(IrGraph *g, int vid, double *out);

/* ---- verifier (verify.c) ----
 * Structural checks that must hold after every pass; returns -1 with g->err. */
int ir_verify(IrGraph *g);

/* ---- printer (print.c) ---- */
#include <stdio.h>
void ir_print(const IrGraph *g, FILE *f);
/* "float32[2,3]" into buf ("float32[]" a scalar, "float32[...]" unknown rank,
 * "?" nothing known). */
const char *ir_shape_str(const IrValue *v, char *buf, size_t n);
/* A value or node name as the printer shows it: bare when made of letters,
 * digits and _.:/-, else double-quoted with C escapes (always one line);
 * ends in "..." when buf is too small. */
const char *ir_name_str(const char *name, char *buf, size_t n);

/* ---- costs (flops.c) ---- */
/* Floating-point operations of one execution of node n (multiply-add = 2). */
double ir_node_flops(const IrGraph *g, int n);

#endif
