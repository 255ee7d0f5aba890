/* Internal to ir/: what the autodiff driver (autodiff.c) shares with the
 * gradient rules (grad_math.c: elementwise, broadcasting, reductions, matrix
 * products, data movement; grad_nn.c: normalization, softmax, convolution,
 * pooling, Resize, DFT, indexing, losses). A rule builds the backward nodes of
 * one forward node from the gradients of its outputs and gives each input
 * that wants one its gradient (grad_give); the driver sums what several
 * consumers give one value. */
#ifndef LOOM_GRAD_H
#define LOOM_GRAD_H

#include "ops_impl.h"

typedef struct {
    IrGraph *g;
    int node;        /* the forward node being differentiated: fwd of the nodes built */
    IrPhase phase;   /* of the nodes built: IR_BACKWARD (IR_FORWARD for the loss) */
    const char *tag; /* name prefix of the values built: "bwd/<node>" */
    /* per value: the partial gradients given so far */
    int **part;
    int *npart, *cappart;
    int *total;      /* the summed gradient, once made (-1 before) */
    int *given;      /* how many times a value was given as a gradient */
    int ngiven;      /* entries of given (it grows with the graph) */
    char *active;    /* carries a gradient toward the loss */
} GradCtx;

/* A rule: dy[j] is the gradient of output j (-1: none, i.e. zero); want[i]
 * says whether input i needs one. The driver calls it when some output has a
 * gradient (for an op whose other outputs carry none, that is dy[0]) and some
 * input wants one. Returns 0, or -1 with g->err (a form of the op the rule
 * cannot differentiate is refused there, naming it). Which op has which rule,
 * and which of its inputs get gradients, is the table in autodiff.c. */
#define GRAD_RULE(name)                                                          \
    int grad_rule_##name(GradCtx *c, const int *dy __attribute__((unused)),    \
                         const char *want __attribute__((unused)))
/* Shorthands of the rules' bodies, for the files that define LOOM_GRAD_RULES
 * before including this (c is the GradCtx, `in` the node's inputs): the graph,
 * the node, a value, its dtype, and giving input i the gradient gv (made for
 * the input's shape), returning -1 from the rule on failure. */
#ifdef LOOM_GRAD_RULES
#define G (c->g)
#define N (&c->g->nodes[c->node])
#define V(id) (&c->g->values[id])
#define DT(id) (c->g->values[id].dtype)
#define GIVE(i, gv) \
    do { if (grad_give(c, in[i], (gv)) < 0) return -1; } while (0)
#endif

/* grad_math.c */
GRAD_RULE(unary); GRAD_RULE(clip); GRAD_RULE(dropout); GRAD_RULE(where); GRAD_RULE(binary);
GRAD_RULE(variadic); GRAD_RULE(reduce); GRAD_RULE(cumsum); GRAD_RULE(matmul); GRAD_RULE(gemm);
GRAD_RULE(einsum); GRAD_RULE(reshape); GRAD_RULE(expand); GRAD_RULE(transpose); GRAD_RULE(concat);
GRAD_RULE(split); GRAD_RULE(slice); GRAD_RULE(tile); GRAD_RULE(pad); GRAD_RULE(trilu);
GRAD_RULE(scatternd);
/* grad_nn.c */
GRAD_RULE(softmax); GRAD_RULE(norm); GRAD_RULE(conv); GRAD_RULE(pool); GRAD_RULE(resize);
GRAD_RULE(dft); GRAD_RULE(gather); GRAD_RULE(loss); GRAD_RULE(attention);
/* loss.c */
GRAD_RULE(linear_ce);

/* Give value v (an input of the node) the partial gradient gv. */
int grad_give(GradCtx *c, int v, int gv);

/* Building nodes: grad_begin makes the node and its nout new output values
 * (out may be NULL); set attributes, then grad_end infers the output shapes
 * and folds the node when every input is a constant. grad_end returns the
 * node's first output value, or -1 with g->err. */
int grad_begin(GradCtx *c, IrOp op, int nin, const int *in, int nout);
int grad_end(GradCtx *c, int node);
/* One node without attributes: its first output value, or -1. */
int grad_op(GradCtx *c, IrOp op, int nin, const int *in);
#define GOP(c, op, ...) \
    grad_op((c), IR_OP_##op, sizeof((int[]){__VA_ARGS__}) / sizeof(int), (int[]){__VA_ARGS__})
/* Output i of node. */
#define GOUT(c, node, i) ((c)->g->nodes[node].out[i])

/* Copy every attribute of node src to node dst. */
void grad_copy_attrs(IrGraph *g, int dst, int src);

/* Constants: a scalar of type dt, an int64 vector. */
int grad_scalar(GradCtx *c, IrDType dt, double x);
int grad_ints(GradCtx *c, int n, const int64_t *v);

/* Shape helpers, honoring the graph's opset for ops whose operands moved
 * from attributes to inputs. */
int grad_reshape(GradCtx *c, int x, int rank, const int64_t *dims);
int grad_reshape_like(GradCtx *c, int x, int like);
int grad_transpose(GradCtx *c, int x, const int64_t *perm); /* perm NULL: reverse */
/* ReduceSum over the axes with mask[d] set. */
int grad_reduce_sum(GradCtx *c, int x, const unsigned char *mask, int keepdims);
/* Sum a broadcast result's gradient back to the shape of `like`. */
int grad_unbroadcast(GradCtx *c, int gy, int like);
/* x broadcast to the dims of `like` (no node when they already agree). */
int grad_expand_like(GradCtx *c, int x, int like);
/* Where(cond, x, 0): x where cond holds, else zero. */
int grad_select(GradCtx *c, int cond, int x);
/* Zeros shaped like `like`. */
int grad_zeros_like(GradCtx *c, int like);
/* Pad (constant zeros; negative pads crop) by pads[2*rank] as ONNX orders them. */
int grad_pad(GradCtx *c, int x, const int64_t *pads);
/* Slice along one axis [start, end). */
int grad_slice_axis(GradCtx *c, int x, int axis, int64_t start, int64_t end);

#endif
