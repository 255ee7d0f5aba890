/* The one op table. Each row names an op once:
 *
 *   OP(Enum, onnx name, min in, max in, min out, max out, shape fn, eval fn, flops/elem, flags,
 *      attributes)
 *
 * max -1 means variadic. The shape function (ir/shape*.c) infers output dtypes
 * and shapes; the eval function (ir/eval.c) computes outputs from constant
 * inputs on the host for constant folding, or is NULL when the op is never
 * folded; flops/elem is the cost of one output element for the ops whose cost
 * is that simple (ir/flops.c handles the rest); attributes lists every
 * attribute the op takes in any opset as "name:kind" (kinds: i int, f float,
 * s string, t tensor, I ints, F floats, S strings), checked at import.
 * Adding an op means adding its row and the functions it names. Included from ir.h. */
#ifndef LOOM_OPS_H
#define LOOM_OPS_H

/* flags */
#define OPF_ELEMWISE 1u   /* unary elementwise: output i depends on input i only */
#define OPF_BROADCAST 2u  /* numpy-broadcasting n-ary elementwise */
#define OPF_SHAPE_ONLY 4u /* output depends on input shapes, not contents (Shape, Size) */
#define OPF_NO_GRAD 8u    /* outputs carry no gradient (comparisons, integer ops) */
#define OPF_VIEW 16u      /* output 0 is input 0's bytes under another shape (no copy) */
#define OPF_INTERNAL 32u  /* loom's own op ("loom.*", ir/train.h): built by autodiff and the
                           * optimizer update, never accepted from a model file */

#define IR_OPS(OP) \
    /* linear algebra and convolution */ \
    OP(MatMul, "MatMul", 2, 2, 1, 1, shape_matmul, eval_matmul, 0, 0, "") \
    OP(Gemm, "Gemm", 2, 3, 1, 1, shape_gemm, eval_gemm, 0, 0, "alpha:f beta:f transA:i transB:i") \
    OP(Einsum, "Einsum", 1, -1, 1, 1, shape_einsum, eval_einsum, 0, 0, "equation:s") \
    OP(Conv, "Conv", 2, 3, 1, 1, shape_conv, NULL, 0, 0, "auto_pad:s dilations:I group:i kernel_shape:I pads:I strides:I") \
    OP(ConvTranspose, "ConvTranspose", 2, 3, 1, 1, shape_conv_transpose, NULL, 0, 0, "auto_pad:s dilations:I group:i kernel_shape:I output_padding:I output_shape:I pads:I strides:I") \
    /* normalization */ \
    OP(BatchNormalization, "BatchNormalization", 5, 5, 1, 5, shape_batchnorm, NULL, 4, 0, "epsilon:f momentum:f training_mode:i spatial:i") \
    OP(LayerNormalization, "LayerNormalization", 2, 3, 1, 3, shape_layernorm, NULL, 8, 0, "axis:i epsilon:f stash_type:i") \
    OP(GroupNormalization, "GroupNormalization", 3, 3, 1, 1, shape_groupnorm, NULL, 8, 0, "epsilon:f num_groups:i stash_type:i") \
    OP(InstanceNormalization, "InstanceNormalization", 3, 3, 1, 1, shape_instnorm, NULL, 8, 0, "epsilon:f") \
    /* broadcasting arithmetic */ \
    OP(Add, "Add", 2, 2, 1, 1, shape_binary, eval_binary, 1, OPF_BROADCAST, "") \
    OP(Sub, "Sub", 2, 2, 1, 1, shape_binary, eval_binary, 1, OPF_BROADCAST, "") \
    OP(Mul, "Mul", 2, 2, 1, 1, shape_binary, eval_binary, 1, OPF_BROADCAST, "") \
    OP(Div, "Div", 2, 2, 1, 1, shape_binary, eval_binary, 1, OPF_BROADCAST, "") \
    OP(Pow, "Pow", 2, 2, 1, 1, shape_binary, eval_binary, 8, OPF_BROADCAST, "") \
    OP(Mod, "Mod", 2, 2, 1, 1, shape_binary, eval_binary, 1, OPF_BROADCAST, "fmod:i") \
    OP(PRelu, "PRelu", 2, 2, 1, 1, shape_binary, eval_binary, 2, OPF_BROADCAST, "") \
    OP(Min, "Min", 1, -1, 1, 1, shape_variadic, eval_binary, 1, OPF_BROADCAST, "") \
    OP(Max, "Max", 1, -1, 1, 1, shape_variadic, eval_binary, 1, OPF_BROADCAST, "") \
    OP(Sum, "Sum", 1, -1, 1, 1, shape_variadic, eval_binary, 1, OPF_BROADCAST, "") \
    OP(Mean, "Mean", 1, -1, 1, 1, shape_variadic, eval_binary, 1, OPF_BROADCAST, "") \
    OP(Where, "Where", 3, 3, 1, 1, shape_where, eval_where, 1, OPF_BROADCAST, "") \
    /* comparison and logic: boolean results, no gradient */ \
    OP(Equal, "Equal", 2, 2, 1, 1, shape_compare, eval_binary, 1, OPF_BROADCAST | OPF_NO_GRAD, "") \
    OP(Less, "Less", 2, 2, 1, 1, shape_compare, eval_binary, 1, OPF_BROADCAST | OPF_NO_GRAD, "") \
    OP(LessOrEqual, "LessOrEqual", 2, 2, 1, 1, shape_compare, eval_binary, 1, OPF_BROADCAST | OPF_NO_GRAD, "") \
    OP(Greater, "Greater", 2, 2, 1, 1, shape_compare, eval_binary, 1, OPF_BROADCAST | OPF_NO_GRAD, "") \
    OP(GreaterOrEqual, "GreaterOrEqual", 2, 2, 1, 1, shape_compare, eval_binary, 1, OPF_BROADCAST | OPF_NO_GRAD, "") \
    OP(And, "And", 2, 2, 1, 1, shape_logical, eval_binary, 1, OPF_BROADCAST | OPF_NO_GRAD, "") \
    OP(Or, "Or", 2, 2, 1, 1, shape_logical, eval_binary, 1, OPF_BROADCAST | OPF_NO_GRAD, "") \
    OP(Xor, "Xor", 2, 2, 1, 1, shape_logical, eval_binary, 1, OPF_BROADCAST | OPF_NO_GRAD, "") \
    OP(Not, "Not", 1, 1, 1, 1, shape_logical, eval_unary, 1, OPF_ELEMWISE | OPF_NO_GRAD, "") \
    /* unary elementwise */ \
    OP(Neg, "Neg", 1, 1, 1, 1, shape_unary, eval_unary, 1, OPF_ELEMWISE, "") \
    OP(Abs, "Abs", 1, 1, 1, 1, shape_unary, eval_unary, 1, OPF_ELEMWISE, "") \
    OP(Sign, "Sign", 1, 1, 1, 1, shape_unary, eval_unary, 1, OPF_ELEMWISE | OPF_NO_GRAD, "") \
    OP(Sqrt, "Sqrt", 1, 1, 1, 1, shape_unary, eval_unary, 4, OPF_ELEMWISE, "") \
    OP(Reciprocal, "Reciprocal", 1, 1, 1, 1, shape_unary, eval_unary, 1, OPF_ELEMWISE, "") \
    OP(Exp, "Exp", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "") \
    OP(Log, "Log", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "") \
    OP(Sin, "Sin", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "") \
    OP(Cos, "Cos", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "") \
    OP(Tanh, "Tanh", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "") \
    OP(Erf, "Erf", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "") \
    OP(Floor, "Floor", 1, 1, 1, 1, shape_unary, eval_unary, 1, OPF_ELEMWISE | OPF_NO_GRAD, "") \
    OP(Ceil, "Ceil", 1, 1, 1, 1, shape_unary, eval_unary, 1, OPF_ELEMWISE | OPF_NO_GRAD, "") \
    OP(Round, "Round", 1, 1, 1, 1, shape_unary, eval_unary, 1, OPF_ELEMWISE | OPF_NO_GRAD, "") \
    OP(Relu, "Relu", 1, 1, 1, 1, shape_unary, eval_unary, 1, OPF_ELEMWISE, "") \
    OP(LeakyRelu, "LeakyRelu", 1, 1, 1, 1, shape_unary, eval_unary, 2, OPF_ELEMWISE, "alpha:f") \
    OP(Elu, "Elu", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "alpha:f") \
    OP(Selu, "Selu", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "alpha:f gamma:f") \
    OP(Sigmoid, "Sigmoid", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "") \
    OP(HardSigmoid, "HardSigmoid", 1, 1, 1, 1, shape_unary, eval_unary, 3, OPF_ELEMWISE, "alpha:f beta:f") \
    OP(HardSwish, "HardSwish", 1, 1, 1, 1, shape_unary, eval_unary, 4, OPF_ELEMWISE, "") \
    OP(Softplus, "Softplus", 1, 1, 1, 1, shape_unary, eval_unary, 8, OPF_ELEMWISE, "") \
    OP(Softsign, "Softsign", 1, 1, 1, 1, shape_unary, eval_unary, 3, OPF_ELEMWISE, "") \
    OP(Gelu, "Gelu", 1, 1, 1, 1, shape_unary, eval_unary, 10, OPF_ELEMWISE, "approximate:s") \
    OP(Clip, "Clip", 1, 3, 1, 1, shape_unary, eval_clip, 2, 0, "min:f max:f") \
    OP(Cast, "Cast", 1, 1, 1, 1, shape_cast, eval_cast, 0, OPF_ELEMWISE, "to:i saturate:i") \
    OP(Identity, "Identity", 1, 1, 1, 1, shape_unary, eval_identity, 0, OPF_ELEMWISE | OPF_VIEW, "") \
    OP(Dropout, "Dropout", 1, 3, 1, 2, shape_dropout, NULL, 1, 0, "ratio:f seed:i") \
    /* softmax and reductions */ \
    OP(Softmax, "Softmax", 1, 1, 1, 1, shape_unary, NULL, 5, 0, "axis:i") \
    OP(LogSoftmax, "LogSoftmax", 1, 1, 1, 1, shape_unary, NULL, 5, 0, "axis:i") \
    OP(ReduceMean, "ReduceMean", 1, 2, 1, 1, shape_reduce, eval_reduce, 0, 0, "axes:I keepdims:i noop_with_empty_axes:i") \
    OP(ReduceSum, "ReduceSum", 1, 2, 1, 1, shape_reduce, eval_reduce, 0, 0, "axes:I keepdims:i noop_with_empty_axes:i") \
    OP(ReduceMax, "ReduceMax", 1, 2, 1, 1, shape_reduce, eval_reduce, 0, 0, "axes:I keepdims:i noop_with_empty_axes:i") \
    OP(ReduceMin, "ReduceMin", 1, 2, 1, 1, shape_reduce, eval_reduce, 0, 0, "axes:I keepdims:i noop_with_empty_axes:i") \
    OP(ReduceProd, "ReduceProd", 1, 2, 1, 1, shape_reduce, eval_reduce, 0, 0, "axes:I keepdims:i noop_with_empty_axes:i") \
    OP(ReduceL1, "ReduceL1", 1, 2, 1, 1, shape_reduce, eval_reduce, 0, 0, "axes:I keepdims:i noop_with_empty_axes:i") \
    OP(ReduceL2, "ReduceL2", 1, 2, 1, 1, shape_reduce, eval_reduce, 0, 0, "axes:I keepdims:i noop_with_empty_axes:i") \
    OP(ReduceSumSquare, "ReduceSumSquare", 1, 2, 1, 1, shape_reduce, eval_reduce, 0, 0, "axes:I keepdims:i noop_with_empty_axes:i") \
    OP(ReduceLogSumExp, "ReduceLogSumExp", 1, 2, 1, 1, shape_reduce, eval_reduce, 0, 0, "axes:I keepdims:i noop_with_empty_axes:i") \
    OP(ArgMax, "ArgMax", 1, 1, 1, 1, shape_argreduce, eval_reduce, 0, OPF_NO_GRAD, "axis:i keepdims:i select_last_index:i") \
    OP(ArgMin, "ArgMin", 1, 1, 1, 1, shape_argreduce, eval_reduce, 0, OPF_NO_GRAD, "axis:i keepdims:i select_last_index:i") \
    OP(CumSum, "CumSum", 2, 2, 1, 1, shape_unary, eval_cumsum, 1, 0, "exclusive:i reverse:i") \
    /* indexing */ \
    OP(Gather, "Gather", 2, 2, 1, 1, shape_gather, eval_gather, 0, 0, "axis:i") \
    OP(GatherElements, "GatherElements", 2, 2, 1, 1, shape_gather_elements, eval_gather_elements, 0, 0, "axis:i") \
    OP(ScatterND, "ScatterND", 3, 3, 1, 1, shape_scatternd, eval_scatternd, 0, 0, "reduction:s") \
    OP(Trilu, "Trilu", 1, 2, 1, 1, shape_unary, eval_trilu, 0, 0, "upper:i") \
    /* data movement */ \
    OP(Reshape, "Reshape", 2, 2, 1, 1, shape_reshape, eval_identity, 0, OPF_VIEW, "allowzero:i") \
    OP(Flatten, "Flatten", 1, 1, 1, 1, shape_flatten, eval_identity, 0, OPF_VIEW, "axis:i") \
    OP(Squeeze, "Squeeze", 1, 2, 1, 1, shape_squeeze, eval_identity, 0, OPF_VIEW, "axes:I") \
    OP(Unsqueeze, "Unsqueeze", 1, 2, 1, 1, shape_unsqueeze, eval_identity, 0, OPF_VIEW, "axes:I") \
    OP(Transpose, "Transpose", 1, 1, 1, 1, shape_transpose, eval_transpose, 0, 0, "perm:I") \
    OP(Concat, "Concat", 1, -1, 1, 1, shape_concat, eval_concat, 0, 0, "axis:i") \
    OP(Split, "Split", 1, 2, 1, -1, shape_split, eval_split, 0, 0, "axis:i num_outputs:i split:I") \
    OP(Slice, "Slice", 1, 5, 1, 1, shape_slice, eval_slice, 0, 0, "axes:I ends:I starts:I") \
    OP(Expand, "Expand", 2, 2, 1, 1, shape_expand, eval_expand, 0, 0, "") \
    OP(Tile, "Tile", 2, 2, 1, 1, shape_tile, eval_tile, 0, 0, "") \
    OP(Pad, "Pad", 1, 4, 1, 1, shape_pad, eval_pad, 0, 0, "mode:s pads:I value:f") \
    /* shape plumbing */ \
    OP(Shape, "Shape", 1, 1, 1, 1, shape_shape, eval_shape, 0, OPF_SHAPE_ONLY | OPF_NO_GRAD, "end:i start:i") \
    OP(Size, "Size", 1, 1, 1, 1, shape_size, eval_shape, 0, OPF_SHAPE_ONLY | OPF_NO_GRAD, "") \
    OP(Range, "Range", 3, 3, 1, 1, shape_range, eval_range, 0, OPF_NO_GRAD, "") \
    OP(ConstantOfShape, "ConstantOfShape", 1, 1, 1, 1, shape_constant_of_shape, eval_constant_of_shape, 0, OPF_NO_GRAD, "value:t") \
    /* pooling and resampling */ \
    OP(MaxPool, "MaxPool", 1, 1, 1, 2, shape_pool, NULL, 0, 0, "auto_pad:s ceil_mode:i dilations:I kernel_shape:I pads:I storage_order:i strides:I") \
    OP(AveragePool, "AveragePool", 1, 1, 1, 1, shape_pool, NULL, 0, 0, "auto_pad:s ceil_mode:i count_include_pad:i dilations:I kernel_shape:I pads:I strides:I") \
    OP(GlobalAveragePool, "GlobalAveragePool", 1, 1, 1, 1, shape_global_pool, NULL, 0, 0, "") \
    OP(GlobalMaxPool, "GlobalMaxPool", 1, 1, 1, 1, shape_global_pool, NULL, 0, 0, "") \
    OP(Resize, "Resize", 1, 4, 1, 1, shape_resize, NULL, 0, 0, "antialias:i axes:I coordinate_transformation_mode:s cubic_coeff_a:f exclude_outside:i extrapolation_value:f keep_aspect_ratio_policy:s mode:s nearest_mode:s") \
    /* spectral */ \
    OP(DFT, "DFT", 1, 3, 1, 1, shape_dft, NULL, 0, 0, "axis:i inverse:i onesided:i") \
    /* losses */ \
    OP(SoftmaxCrossEntropyLoss, "SoftmaxCrossEntropyLoss", 2, 3, 1, 2, shape_sce_loss, NULL, 0, 0, "ignore_index:i reduction:s") \
    OP(NegativeLogLikelihoodLoss, "NegativeLogLikelihoodLoss", 2, 3, 1, 1, shape_nll_loss, NULL, 0, 0, "ignore_index:i reduction:s") \
    /* internal: backward and optimizer-update ops (ir/train.h documents their operands) */ \
    OP(ActivationGrad, "loom.ActivationGrad", 2, 2, 1, 1, shape_grad_like, NULL, 4, OPF_INTERNAL | OPF_NO_GRAD, "act:s alpha:f beta:f gamma:f approximate:s") \
    OP(SoftmaxGrad, "loom.SoftmaxGrad", 2, 2, 1, 1, shape_grad_like, NULL, 4, OPF_INTERNAL | OPF_NO_GRAD, "axis:i") \
    OP(LogSoftmaxGrad, "loom.LogSoftmaxGrad", 2, 2, 1, 1, shape_grad_like, NULL, 4, OPF_INTERNAL | OPF_NO_GRAD, "axis:i") \
    OP(LayerNormGrad, "loom.LayerNormGrad", 3, 5, 1, 3, shape_layernorm_grad, NULL, 12, OPF_INTERNAL | OPF_NO_GRAD, "axis:i epsilon:f") \
    OP(BatchNormGrad, "loom.BatchNormGrad", 5, 6, 1, 3, shape_channel_norm_grad, NULL, 10, OPF_INTERNAL | OPF_NO_GRAD, "epsilon:f relu:i training_mode:i") \
    OP(GroupNormGrad, "loom.GroupNormGrad", 3, 3, 1, 3, shape_channel_norm_grad, NULL, 12, OPF_INTERNAL | OPF_NO_GRAD, "epsilon:f num_groups:i") \
    OP(InstanceNormGrad, "loom.InstanceNormGrad", 3, 3, 1, 3, shape_channel_norm_grad, NULL, 12, OPF_INTERNAL | OPF_NO_GRAD, "epsilon:f") \
    OP(ConvGradWeight, "loom.ConvGradWeight", 2, 6, 1, 1, shape_conv_grad_weight, NULL, 0, OPF_INTERNAL | OPF_NO_GRAD, "dilations:I epsilon:f group:i pads:I shape:I strides:I") \
    OP(MaxPoolGrad, "loom.MaxPoolGrad", 2, 7, 1, 1, shape_pool_grad, NULL, 0, OPF_INTERNAL | OPF_NO_GRAD, "auto_pad:s ceil_mode:i dilations:I epsilon:f kernel_shape:I pads:I storage_order:i strides:I") \
    OP(AveragePoolGrad, "loom.AveragePoolGrad", 1, 1, 1, 1, shape_pool_grad, NULL, 0, OPF_INTERNAL | OPF_NO_GRAD, "auto_pad:s ceil_mode:i count_include_pad:i dilations:I kernel_shape:I pads:I shape:I strides:I") \
    OP(ResizeGrad, "loom.ResizeGrad", 1, 1, 1, 1, shape_scatter_grad, NULL, 0, OPF_INTERNAL | OPF_NO_GRAD, "coordinate_transformation_mode:s cubic_coeff_a:f exclude_outside:i mode:s nearest_mode:s scales:F shape:I") \
    OP(GatherGrad, "loom.GatherGrad", 2, 2, 1, 1, shape_scatter_grad, NULL, 1, OPF_INTERNAL | OPF_NO_GRAD, "axis:i shape:I") \
    OP(GatherElementsGrad, "loom.GatherElementsGrad", 2, 2, 1, 1, shape_scatter_grad, NULL, 1, OPF_INTERNAL | OPF_NO_GRAD, "axis:i shape:I") \
    OP(SliceGrad, "loom.SliceGrad", 1, 1, 1, 1, shape_scatter_grad, NULL, 0, OPF_INTERNAL | OPF_NO_GRAD, "shape:I starts:I steps:I") \
    OP(SoftmaxCrossEntropyLossGrad, "loom.SoftmaxCrossEntropyLossGrad", 3, 5, 1, 1, shape_loss_grad, NULL, 4, OPF_INTERNAL | OPF_NO_GRAD, "ignore_index:i reduction:s") \
    OP(NegativeLogLikelihoodLossGrad, "loom.NegativeLogLikelihoodLossGrad", 2, 3, 1, 1, shape_loss_grad, NULL, 1, OPF_INTERNAL | OPF_NO_GRAD, "ignore_index:i reduction:s shape:I") \
    OP(GlobalNorm, "loom.GlobalNorm", 1, -1, 1, 1, shape_global_norm, NULL, 0, OPF_INTERNAL | OPF_NO_GRAD, "") \
    OP(SGD, "loom.SGD", 4, 6, 1, 2, shape_opt_update, NULL, 4, OPF_INTERNAL | OPF_NO_GRAD, "momentum:f nesterov:i weight_decay:f") \
    OP(AdamW, "loom.AdamW", 7, 8, 3, 3, shape_opt_update, NULL, 12, OPF_INTERNAL | OPF_NO_GRAD, "beta1:f beta2:f epsilon:f weight_decay:f") \
    /* internal: fused forward ops and their gradients (optimizer/fuse_attention.c builds them) */ \
    OP(Attention, "loom.Attention", 3, 4, 2, 2, shape_attention, NULL, 0, OPF_INTERNAL, "scale:f causal:i fill:f") \
    OP(AttentionGrad, "loom.AttentionGrad", 6, 7, 3, 3, shape_attention_grad, NULL, 0, OPF_INTERNAL | OPF_NO_GRAD, "scale:f causal:i fill:f") \
    /* internal: RMS normalization (optimizer/fuse_rmsnorm.c builds it from its elementwise form) */ \
    OP(RMSNorm, "loom.RMSNorm", 2, 2, 1, 1, shape_rmsnorm, NULL, 4, OPF_INTERNAL, "axis:i epsilon:f") \
    OP(RMSNormGrad, "loom.RMSNormGrad", 3, 3, 1, 2, shape_rmsnorm, NULL, 8, OPF_INTERNAL | OPF_NO_GRAD, "axis:i epsilon:f") \
    /* internal: a language model's head and its cross-entropy in one (ir/loss.c builds it) */ \
    OP(LinearCrossEntropy, "loom.LinearCrossEntropy", 3, 3, 3, 3, shape_linear_ce, NULL, 0, OPF_INTERNAL, "trans_w:i ignore_index:i reduction:s") \
    /* internal: offload (optimizer/schedule.c): a saved value's copy to host memory and back */ \
    OP(ToHost, "loom.ToHost", 1, 1, 1, 1, shape_host_copy, NULL, 0, OPF_INTERNAL | OPF_NO_GRAD, "") \
    OP(FromHost, "loom.FromHost", 1, 1, 1, 1, shape_host_copy, NULL, 0, OPF_INTERNAL | OPF_NO_GRAD, "")

typedef enum {
#define OP_ENUM(e, ...) IR_OP_##e,
    IR_OPS(OP_ENUM)
#undef OP_ENUM
    IR_NOPS
} IrOp;

typedef struct {
    const char *name;      /* ONNX op_type */
    int min_in, max_in;    /* max -1: variadic */
    int min_out, max_out;
    int (*shape)(IrGraph *g, int node);
    int (*eval)(IrGraph *g, int node);
    double flops_per_elem;
    unsigned flags;
    const char *attrs;
} IrOpInfo;

extern const IrOpInfo ir_ops[IR_NOPS];
/* The op with ONNX op_type `name`, or -1; loom's internal ops (OPF_INTERNAL)
 * are never found, so a model file cannot name them. */
int ir_op_lookup(const char *name);
/* How many ops a model may use (the table less the internal ones). */
int ir_op_count_onnx(void);

#endif
