/* Prototypes of the functions the op table (ops.h) names. Internal to ir/. */
#ifndef LOOM_OPS_IMPL_H
#define LOOM_OPS_IMPL_H

#include "ir.h"

/* shape inference: shape.c (elementwise, data movement), shape_nn.c (the rest) */
int shape_matmul(IrGraph *g, int node);
int shape_gemm(IrGraph *g, int node);
int shape_einsum(IrGraph *g, int node);
int shape_conv(IrGraph *g, int node);
int shape_conv_transpose(IrGraph *g, int node);
int shape_batchnorm(IrGraph *g, int node);
int shape_layernorm(IrGraph *g, int node);
int shape_groupnorm(IrGraph *g, int node);
int shape_instnorm(IrGraph *g, int node);
int shape_binary(IrGraph *g, int node);
int shape_variadic(IrGraph *g, int node);
int shape_where(IrGraph *g, int node);
int shape_compare(IrGraph *g, int node);
int shape_logical(IrGraph *g, int node);
int shape_unary(IrGraph *g, int node);
int shape_cast(IrGraph *g, int node);
int shape_dropout(IrGraph *g, int node);
int shape_reduce(IrGraph *g, int node);
int shape_argreduce(IrGraph *g, int node);
int shape_gather(IrGraph *g, int node);
int shape_gather_elements(IrGraph *g, int node);
int shape_scatternd(IrGraph *g, int node);
int shape_reshape(IrGraph *g, int node);
int shape_flatten(IrGraph *g, int node);
int shape_squeeze(IrGraph *g, int node);
int shape_unsqueeze(IrGraph *g, int node);
int shape_transpose(IrGraph *g, int node);
int shape_concat(IrGraph *g, int node);
int shape_split(IrGraph *g, int node);
int shape_slice(IrGraph *g, int node);
int shape_expand(IrGraph *g, int node);
int shape_tile(IrGraph *g, int node);
int shape_pad(IrGraph *g, int node);
int shape_shape(IrGraph *g, int node);
int shape_size(IrGraph *g, int node);
int shape_range(IrGraph *g, int node);
int shape_constant_of_shape(IrGraph *g, int node);
int shape_pool(IrGraph *g, int node);
int shape_global_pool(IrGraph *g, int node);
int shape_resize(IrGraph *g, int node);
int shape_dft(IrGraph *g, int node);
int shape_sce_loss(IrGraph *g, int node);
int shape_nll_loss(IrGraph *g, int node);
int shape_attention(IrGraph *g, int node);
/* internal backward and optimizer-update ops: shape_grad.c */
int shape_grad_like(IrGraph *g, int node);
int shape_host_copy(IrGraph *g, int node);
int shape_rmsnorm(IrGraph *g, int node);
int shape_layernorm_grad(IrGraph *g, int node);
int shape_channel_norm_grad(IrGraph *g, int node);
int shape_conv_grad_weight(IrGraph *g, int node);
int shape_pool_grad(IrGraph *g, int node);
int shape_scatter_grad(IrGraph *g, int node);
int shape_loss_grad(IrGraph *g, int node);
int shape_global_norm(IrGraph *g, int node);
int shape_opt_update(IrGraph *g, int node);
int shape_attention_grad(IrGraph *g, int node);
int shape_linear_ce(IrGraph *g, int node); /* loss.c */

/* Helpers shared by shape*.c and eval.c. */
/* Set output i of node to dt[dims] after checking rank, dims and element count;
 * an omitted output (id -1 or past nout) is skipped. */
int ir_shape_out(IrGraph *g, int node, int i, IrDType dt, int rank, const int64_t *dims);
/* Input i of node as a constant integer list; fails naming `what` when absent
 * (if required) or not constant. Returns the count, 0 with *out NULL when an
 * optional input is omitted. */
int64_t ir_need_ints(IrGraph *g, int node, int i, const char *what, int required,
                     const int64_t **out);
/* Per-dim start, step and length of a Slice over its input (rank entries). */
int ir_slice_params(IrGraph *g, int node, int64_t *start, int64_t *step, int64_t *len);
/* Pad: begin/end pads per dim (pads[d], pads[rank + d]) and the mode
 * (0 constant, 1 reflect, 2 edge, 3 wrap). */
int ir_pad_params(IrGraph *g, int node, int64_t *pads, int *mode);
/* Reduce*: which dims are reduced (mask[d] = 1); *noop set when the node
 * passes its input through (empty axes with noop_with_empty_axes). */
int ir_reduce_axes(IrGraph *g, int node, unsigned char *mask, int *noop);
/* loom.Attention's operands Q, K, V and mask (-1: none) as shape_attention
 * wants them (shape_nn.c; shape_grad.c checks AttentionGrad's with it). */
int ir_attention_check(IrGraph *g, int node, int q, int k, int v, int mask);
/* Split: the axis and the size of each output (nout entries, arena). */
int ir_split_sizes(IrGraph *g, int node, int *axis, const int64_t **sizes);
/* Einsum, parsed: per operand the label of each dim (letters as 0..51,
 * ellipsis dims as 52..59), the output labels, and the size of every label. */
typedef struct {
    int nop;
    int rank[IR_MAX_RANK + 1];      /* operands beyond this many are refused */
    int lab[IR_MAX_RANK + 1][IR_MAX_RANK];
    int out_rank;
    int out_lab[IR_MAX_RANK];
    int64_t size[60];
} IrEinsum;
int ir_einsum_parse(IrGraph *g, int node, IrEinsum *e);
/* "float32[2,3]" of value vid, in a buffer that lives to the end of the statement. */
#define IR_SHP(g, vid) ir_shape_str(&(g)->values[vid], (char[128]){0}, 128)

/* host evaluation for constant folding: eval.c */
int eval_matmul(IrGraph *g, int node);
int eval_gemm(IrGraph *g, int node);
int eval_einsum(IrGraph *g, int node);
int eval_binary(IrGraph *g, int node);
int eval_where(IrGraph *g, int node);
int eval_unary(IrGraph *g, int node);
int eval_clip(IrGraph *g, int node);
int eval_cast(IrGraph *g, int node);
int eval_identity(IrGraph *g, int node);
int eval_reduce(IrGraph *g, int node);
int eval_cumsum(IrGraph *g, int node);
int eval_gather(IrGraph *g, int node);
int eval_gather_elements(IrGraph *g, int node);
int eval_scatternd(IrGraph *g, int node);
int eval_trilu(IrGraph *g, int node);
int eval_transpose(IrGraph *g, int node);
int eval_concat(IrGraph *g, int node);
int eval_split(IrGraph *g, int node);
int eval_slice(IrGraph *g, int node);
int eval_expand(IrGraph *g, int node);
int eval_tile(IrGraph *g, int node);
int eval_pad(IrGraph *g, int node);
int eval_shape(IrGraph *g, int node);
int eval_range(IrGraph *g, int node);
int eval_constant_of_shape(IrGraph *g, int node);

#endif
