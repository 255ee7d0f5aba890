/* The training graph: the forward graph, then a scalar loss, then the
 * backward nodes that reverse-mode autodiff builds, then the optimizer
 * update. All of it is ordinary IR (ir.h): values, nodes from the one op
 * table (forward ops where a gradient is exactly expressible with them, the
 * internal "loom.*" ops of ops.h where a fused backward kernel is the sane
 * implementation), nodes stored in topological order. Codegen, the memory
 * planner and the schedule optimizer read it like any other graph.
 *
 * What the passes add, and how to find it:
 *   loss       one float scalar value with role IR_LOSS, also a graph output.
 *              With IR_LOSS_CE / IR_LOSS_MSE a graph input for the target is
 *              added (opts.target) and the loss nodes are forward nodes.
 *   gradients  backward nodes have phase IR_BACKWARD and fwd = the forward
 *              node they differentiate (for a value that is read by several
 *              nodes, the partial gradients are summed by a node whose fwd is
 *              the value's producer, or -1 for a parameter). The gradient of
 *              trainable parameter P is the value "grad/P" (role IR_GRAD, P's
 *              shape and dtype; ir_param_grad). The accumulated gradient of
 *              an activation A, where one is needed, is "grad/A" (role
 *              IR_ACTIVATION); other backward temporaries are "bwd/..."
 *              names. Forward values that backward nodes read are the saved
 *              tensors (ir_saved_values), what remat and offload act on.
 *   parameters float initializers (IR_PARAM) with a differentiable path to the
 *              loss that the freeze pattern does not match. The others keep
 *              role IR_PARAM but get no gradient and no state: they are
 *              constants for training purposes.
 *   update     nodes of phase IR_UPDATE, one per parameter (loom.SGD or
 *              loom.AdamW), after an optional gradient clipping by global norm
 *              (loom.GlobalNorm, then a scale factor every update reads).
 *              Each reads the loss and writes nothing when it is not finite.
 *              They are stored among the backward nodes, each right after the
 *              last node it depends on (ir_update_order).
 *              Update nodes overwrite in place: each output is a new value
 *              "next/X" (role IR_ACTIVATION) whose `alias` is the value X it
 *              overwrites (the parameter or a state value), so a program
 *              writes it into X's bytes. They are not graph outputs; a pass
 *              that drops dead nodes must keep IR_UPDATE nodes.
 *   state      values of role IR_OPT_STATE, no producer, initialized by the
 *              program: zeros, unless the value holds contents (data):
 *                "m/P", "v/P"     AdamW moments, P's shape and dtype
 *                "momentum/P"     SGD momentum buffer (momentum != 0)
 *                "opt/lr"         float32 scalar, the learning rate; data =
 *                                 the compiled lr; the program sets it every
 *                                 step from its schedule (constant, cosine
 *                                 with warm-up), so schedules need no nodes
 *                "opt/step"       int64 scalar, the number of this update
 *                                 (1 at the first); set by the program
 *
 * Internal ops (inputs -> outputs; attributes as the forward op's unless said;
 * "shape" is the forward input's dims where the gradient cannot infer them):
 *   loom.ActivationGrad (dy, x) -> dx          act = Relu, LeakyRelu, Elu, Selu,
 *                                              HardSigmoid, HardSwish or Gelu
 *   loom.SoftmaxGrad (dy, y) -> dx             dx = y * (dy - sum(dy * y)) over axis
 *   loom.LogSoftmaxGrad (dy, y) -> dx          dx = dy - exp(y) * sum(dy) over axis
 *   loom.LayerNormGrad (dy, x, scale, [mean], [inv_std]) -> dx, dscale, dbias
 *                                              statistics recomputed from x when
 *                                              mean/inv_std are omitted; dscale,
 *                                              dbias have the dims x.dims[axis:]
 *   loom.BatchNormGrad (dy, x, scale, mean, var, [bias]) -> dx, dscale, dbias
 *                                              training_mode 1: batch statistics
 *                                              of x; 0: the given mean and var.
 *                                              relu 1 (training_mode 0, bias
 *                                              given): dy is the gradient of
 *                                              Relu(BatchNormalization(x)),
 *                                              masked where the normalization
 *                                              is not positive
 *   loom.GroupNormGrad / loom.InstanceNormGrad (dy, x, scale) -> dx, dscale, dbias
 *   loom.ConvGradWeight (dy, x, [scale, bias, mean, var]) -> dw
 *                                              explicit pads, shape = w's dims;
 *                                              with the four vectors (and
 *                                              epsilon) the forward read
 *                                              Relu(BatchNormalization(x)),
 *                                              training_mode 0, and the kernel
 *                                              computes it from x as it reads it
 *   loom.MaxPoolGrad (dy, x, [indices], [scale, bias, mean, var]) -> dx
 *                                              dy to each window's maximum; with
 *                                              the four vectors (no indices) the
 *                                              forward pooled Relu(Batch-
 *                                              Normalization(x)), as ConvGradWeight
 *   loom.AveragePoolGrad (dy) -> dx            shape = x's dims
 *   loom.ResizeGrad (dy) -> dx                 the adjoint of the nearest/linear
 *                                              interpolation; scales resolved
 *                                              per axis (out / in for sizes)
 *   loom.GatherGrad (dy, indices) -> dx        scatter-add along axis into zeros
 *   loom.GatherElementsGrad (dy, indices) -> dx
 *   loom.SliceGrad (dy) -> dx                  zeros with dy written at
 *                                              starts + i * steps (per dim)
 *   loom.SoftmaxCrossEntropyLossGrad (dloss, scores, labels, [weight], [log_prob])
 *   loom.NegativeLogLikelihoodLossGrad (dloss, labels, [weight]) -> dinput
 *   loom.GlobalNorm (g1, ..., gn) -> float32 scalar sqrt(sum of squares)
 *   loom.SGD (param, grad, lr, loss, [momentum_buf], [grad_scale]) -> param', [buf']
 *        g = grad * grad_scale + weight_decay * param; buf' = momentum * buf + g;
 *        g = nesterov ? g + momentum * buf' : buf' (momentum != 0);
 *        param' = param - lr * g                         (torch.optim.SGD)
 *   loom.AdamW (param, grad, m, v, lr, step, loss, [grad_scale]) -> param', m', v'
 *        g = grad * grad_scale; p = param * (1 - lr * weight_decay);
 *        m' = b1 m + (1 - b1) g; v' = b2 v + (1 - b2) g^2;
 *        param' = p - lr * (m' / (1 - b1^step)) / (sqrt(v' / (1 - b2^step)) + eps)
 *                                                        (torch.optim.AdamW)
 *
 * Fused forward ops (optimizer/fuse_attention.c builds them from the model's
 * own nodes, before the training graph; phase IR_FORWARD, with a gradient):
 *   loom.Attention (Q [..,T,D], K [..,S,D], V [..,S,Dv], [mask]) -> O [..,T,Dv], LSE [..,T]
 *        Z = scale * Q K^T; mask: float, Z += mask; boolean, Z = mask ? Z : fill;
 *        causal: key j hidden from query i unless j <= i + (S - T) (as -inf);
 *        P = softmax(Z) over keys; O = P V; LSE = max + log(sum exp(Z - max))
 *        per row (-inf, and O = 0, for a row that sees no key). The leading
 *        dims of Q, K, V are equal; the mask broadcasts to [..,T,S].
 *        Attributes scale (float), causal (int), fill (float, boolean mask).
 *   loom.AttentionGrad (dO, Q, K, V, O, LSE, [mask]) -> dQ, dK, dV
 *        P = exp(Z - LSE); dV = P^T dO; dP = dO V^T; Di = rowsum(dO * O);
 *        dS = P * (dP - Di), 0 where a boolean mask put fill (no function of
 *        Q, K); dQ = scale * dS K; dK = scale * dS^T Q. Its operands are what
 *        the backward saves: O and LSE, never the [..,T,S] probabilities. A
 *        kernel may recompute P's row statistics from the scores instead of
 *        LSE (the cpu one does: codegen/kernels/cpu/kattn.c).
 * A language model's head and its loss (ir/loss.c builds it for --loss ce
 * when the logits are a product x W that nothing else reads; --no-fuse-head
 * keeps them apart; phase IR_FORWARD, with a gradient):
 *   loom.LinearCrossEntropy (x [N, D], w, targets [N]) -> loss [], dx [N, D], dw
 *        logits = x w (w [D, C]), or x w^T with trans_w (w [C, D]); loss the
 *        cross-entropy of the logits' rows against the targets (reduction
 *        mean over the rows not ignored, or sum; ignore_index); dx and dw its
 *        gradients for an upstream gradient of 1, computed in the same pass
 *        a block of rows at a time, so the logits are never held whole. Its
 *        gradient rule scales dx and dw by the loss's gradient (two Mul).
 * RMS normalization (optimizer/fuse_rmsnorm.c builds it from x * (1 /
 * sqrt(mean(x^2) + eps)) * scale written out in elementwise ops, as LLaMA
 * exports it; phase IR_FORWARD, with a gradient):
 *   loom.RMSNorm (x, scale) -> y      y = x * r * scale over the last dims from
 *        axis, r = 1 / sqrt(mean(x^2) + epsilon) per row (the mean in double)
 *   loom.RMSNormGrad (dy, x, scale) -> dx, [dscale]
 *        dx = r * (g - xhat * mean(g * xhat)), g = dy * scale, xhat = x * r;
 *        dscale = the sum over rows of dy * xhat
 * Offload (optimizer/schedule.c writes them from a schedule's copies; phase
 * IR_OFFLOAD, no gradient):
 *   loom.ToHost (x) -> h       h, in host memory (OPT_POOL_HOST), holds x's
 *        bytes once the node is done; the copy may start as soon as x is
 *        written (the cuda target issues it on a copy stream right after x's
 *        writer), the node is where the device copy's bytes may be reused
 *   loom.FromHost (h) -> x'    a new device copy of the value h holds; the
 *        copy starts at the node, the first reader of x' waits for it */
#ifndef LOOM_TRAIN_H
#define LOOM_TRAIN_H

#include "ir.h"

typedef enum {
    IR_LOSS_MODEL = 0, /* the model's own scalar float output */
    IR_LOSS_CE,        /* cross-entropy of logits [N,C] or [N,...,C] (last axis classes)
                        * against integer class targets, mean over the non-ignored samples */
    IR_LOSS_MSE,       /* mean squared error against a target shaped like the output */
} IrLossKind;

typedef enum {
    IR_OPTIM_NONE = 0, /* gradients only, no update nodes */
    IR_OPTIM_SGD,
    IR_OPTIM_ADAMW,
} IrOptimizer;

typedef struct {
    IrLossKind loss_kind;
    /* The graph output that is the loss (IR_LOSS_MODEL) or that the loss is
     * computed from; NULL: the only output (for IR_LOSS_MODEL, the only scalar
     * float output). */
    const char *loss_output;
    const char *target;        /* CE/MSE: name of the target input to add ("target") */
    int use_ignore_index;      /* CE: skip samples whose target is ignore_index */
    int no_fuse_head;          /* CE: never fuse the logits' product into the loss (ir/loss.c) */
    int no_fold_bn_relu;       /* keep the ReLU outputs a CNN's backward reads (ir_fold_bn_relu_grad) */
    int64_t ignore_index;
    const char *freeze_regex;  /* POSIX extended regex over parameter names, or NULL */
    IrOptimizer optimizer;
    float lr;                  /* compiled default of opt/lr */
    float momentum, weight_decay;
    int nesterov;
    float beta1, beta2, eps;
    float clip_norm;           /* clip gradients to this global L2 norm; 0: no clipping */
    IrDType precision;         /* IR_BF16: matrix products in bfloat16 (ir_autocast); 0: float32 */
} IrTrainOptions;

/* PyTorch's defaults: IR_LOSS_MODEL, target "target", AdamW with lr 1e-3,
 * betas 0.9/0.999, eps 1e-8, weight decay 0.01; SGD momentum 0, no clipping. */
void ir_train_defaults(IrTrainOptions *o);

/* The whole construction: ir_add_loss, ir_autodiff, ir_fold_bn_relu_grad
 * (unless no_fold_bn_relu), ir_add_update. The graph
 * must be shape-inferred with nodes in topological order (onnx_fold_infer).
 * The loss is then the graph's one output: a training program writes none of
 * the model's outputs, so they die after their last read (a language
 * model's logits after the loss's gradient) rather than at the step's end.
 * Returns 0, or -1 with g->err (a model whose loss depends on an op without a
 * gradient is refused naming the node and op). */
int ir_build_training(IrGraph *g, const IrTrainOptions *o);

/* The passes, for tests and tools (each verifies nothing; ir_verify after). */
int ir_add_loss(IrGraph *g, const IrTrainOptions *o);            /* loss.c */
int ir_autodiff(IrGraph *g, const char *freeze_regex);           /* autodiff.c */
int ir_add_update(IrGraph *g, const IrTrainOptions *o);          /* update.c */
/* A CNN's backward reads a BatchNormalization's input where it read the
 * ReLU after it: loom.BatchNormGrad with relu 1 takes the ReLU's gradient,
 * loom.ConvGradWeight (dy, x, scale, bias, mean, var) the ReLU's output as
 * it computes it, so that the ReLU's output need not be kept for backward
 * (grad_bn_relu.c says when it applies). Values and gradients do not change
 * by a bit. */
int ir_fold_bn_relu_grad(IrGraph *g);                             /* grad_bn_relu.c */
/* A ReLU of an Add (a residual block's output): its ActivationGrad reads
 * the Add made again in backward from the Add's operands (an inference
 * BatchNormalization read only by the Add made again from its input)
 * instead of the ReLU's output, bit for bit the same mask. Less memory
 * under recomputation (the block output need not be kept or made again
 * for it), more reads in backward: a plan option, not part of
 * ir_build_training (cli/budget.c fits both graphs and keeps the faster).
 * Returns how many it folded, or -1 (g->err). */
int ir_fold_add_relu_grad(IrGraph *g);                            /* grad_bn_relu.c */

/* Mixed precision (autocast.c): every float32 MatMul and Gemm reads bf16
 * casts of its operands and writes a bf16 result widened back to float32;
 * loom.LinearCrossEntropy gets compute = 16. ir_build_training runs it between
 * the loss and autodiff when opts.precision is IR_BF16; compile runs it on an
 * inference graph. low must be IR_BF16. Returns 0. */
int ir_autocast(IrGraph *g, IrDType low);
/* On an inference graph after ir_autocast: a float32 parameter that only
 * bf16 Casts read becomes a bf16 parameter holding the Casts' result (the
 * folder's rounding, the kernels'), the Casts gone: the weights are stored
 * and cast once, at compile time, instead of on every run. It keeps its
 * name (a program's --weights converts a float32 tensor of that name the
 * same way). Returns how many parameters it converted. */
int ir_autocast_weights(IrGraph *g);
/* After autodiff (ir_build_training runs it with ir_autocast): a float32
 * value that a forward Cast widened from bf16 and a backward node reads is
 * read there through a backward Cast of the bf16 value instead, so backward
 * saves the bf16 bytes. Returns 0. */
int ir_autocast_saved(IrGraph *g);
/* After ir_autocast_saved: a backward product (MatMul, or Gemm without C)
 * whose bf16 result only a Cast to float32 reads, and whose widened value no
 * elementwise op reads (one would fuse the Cast into its loop for free), writes
 * the float32 result itself (attribute out_dtype = float32, the Cast gone):
 * a transformer's input and weight gradients, read by LayerNormGrad, a
 * transpose or the optimizer. The product accumulates in float32 either way,
 * so this only skips its result's rounding to bf16 (the gradient is no less
 * exact than before) and a pass over its bytes. Returns how many. */
int ir_autocast_wide_results(IrGraph *g);
/* A LayerNormalization or loom.RMSNorm whose float32 output only a Cast to
 * bf16 reads (through views: a product's operand) writes the bf16 result
 * itself (out_dtype = bfloat16, the Cast gone): the norm computes each
 * element in float32 as before and rounds it as the Cast did, so no value
 * changes, and a pass over the row's bytes goes. ir_build_training runs it
 * after ir_autocast_wide_results, compile on an inference graph after
 * ir_autocast_weights. Returns how many. */
int ir_autocast_narrow_norms(IrGraph *g);

/* Which ops autodiff differentiates (autodiff.c's gradient table, which
 * `loom ops` and docs/ops.md print): ir_op_has_grad says that op has a
 * gradient rule (ops flagged OPF_NO_GRAD carry none, and a loss that depends
 * on a trained parameter through an op without a rule is refused);
 * ir_grad_input that the rule gives its input i a gradient (when that input
 * is a float tensor; indices, shapes, axes and the like get none). */
int ir_op_has_grad(IrOp op);
int ir_grad_input(IrOp op, int i);

/* The loss value (role IR_LOSS), or -1. */
int ir_loss_value(const IrGraph *g);
/* The gradient "grad/P" of parameter `param`, or -1 when P is not trained. */
int ir_param_grad(const IrGraph *g, int param);
/* The saved tensors: forward values (activations, graph inputs, parameters)
 * read by backward nodes, in value-id order. Returns the count and, when out
 * is not NULL, sets *out to a malloc'ed array (free it). */
int ir_saved_values(const IrGraph *g, int **out);

/* Where the update nodes run: each as early as it may, right after the last
 * of the nodes that write its inputs (its gradient, clipping's scale) and of
 * those that read a value it overwrites (its parameter or state, or a view
 * of one), so that a parameter is updated as soon as backward is done with
 * it and its gradient's bytes are free from there. nodes[0..n) is a run
 * order (a recomputed node appears again); perm[0..n) gets the new order as
 * positions in nodes: the other nodes in their order, the updates of one
 * anchor in theirs. ir_add_update stores the graph's nodes in this order
 * (ir_place_updates); the schedule optimizer places its schedules' updates
 * the same way. With clipping, every update follows the global norm, so
 * all of them come after the whole backward. */
void ir_update_order(const IrGraph *g, const int *nodes, int n, int *perm);
void ir_place_updates(IrGraph *g);

#endif
