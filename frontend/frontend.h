/* The ONNX frontend: load a model file into the IR, then fold constants and
 * infer every shape. Two passes, each `int pass(IrGraph *)`-like, returning 0
 * or -1 with the message (file, node, op, opset) in g->err. */
#ifndef LOOM_FRONTEND_H
#define LOOM_FRONTEND_H

#include "ir.h"

/* A binding of a symbolic dimension from `--dim`: either a dim_param name
 * ("batch=8") or an input axis ("input_ids:0=8"). */
typedef struct {
    const char *name;
    int64_t value;
} OnnxDim;

/* Parse the file at g->path into g: values for inputs, initializers and
 * constants, nodes with validated attributes, declared shapes. Symbolic input
 * dims are bound from dims; an unbound one is an error naming it. */
int onnx_load(IrGraph *g, const OnnxDim *dims, int ndims);
/* The same from a model already in memory; g->path names it in messages and
 * locates external data. */
int onnx_load_bytes(IrGraph *g, const uint8_t *buf, size_t len, const OnnxDim *dims, int ndims);

/* Put nodes in topological order, infer shapes node by node, fold every node
 * whose inputs are all constant (and Shape/Size of known shapes) into a
 * constant, drop what no output needs, and check inferred shapes against the
 * declared ones. */
int onnx_fold_infer(IrGraph *g);

/* Read a serialized TensorProto file (the ONNX test data stores inputs and
 * outputs so) into a new constant value `name`; sets *vid. */
int onnx_load_tensor_file(IrGraph *g, const char *path, const char *name, int *vid);

/* Parse "NAME=N" or "INPUT:AXIS=N" into d (strings point into arg). */
int onnx_parse_dim(char *arg, OnnxDim *d);

#endif
