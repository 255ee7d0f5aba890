/* What the code generator's files share: the emission context, the target
 * interface (a table of per-op emitters indexed by IrOp, QBE/ggml style), and
 * small writers for C text. Internal to codegen/. */
#ifndef LOOM_CG_IMPL_H
#define LOOM_CG_IMPL_H

#include <stdio.h>

#include "codegen.h"
#include "kernels/cpu/kernels.h"

/* The state of writing model.c. */
typedef struct {
    IrGraph *g;
    const CgSelect *sel;
    const OptMemPlan *plan;
    FILE *f;
    char **var; /* per value: its C identifier */
    const CgTrain *train; /* a training program; NULL: inference */
    const struct CgTarget *t;
    FILE *kf;   /* the target's file of generated kernels (fused.cuh, loops.h), or NULL */
} CgCtx;

/* How a target emits one op. check returns NULL when the node can be
 * emitted, else the reason it cannot (a static string, or one written into
 * why); workspace (may be NULL) gives the scratch bytes; static_in is the
 * mask of input positions read only while compiling (shapes, axes). */
typedef struct {
    const char *(*check)(IrGraph *g, int node, char *why, size_t n);
    int64_t (*workspace)(IrGraph *g, int node);
    void (*emit)(CgCtx *c, int node);
    unsigned static_in;
    /* the input positions whose bytes output 0 may take when that input is
     * last read here, as a mask (bit j: input j; the kernel reads each
     * element of it before it writes the same one); 0: none */
    unsigned inplace;
    /* An inference program's weights input 1 in another layout, prepared
     * once at start into the weights blob (model_prepare): its bytes (0:
     * none; NULL: the op has none), and the call that prepares them. */
    int64_t (*pack)(IrGraph *g, int node);
    void (*emit_pack)(CgCtx *c, int node);
} CgOpEmitter;

/* The ops every target runs as fused elementwise groups (cg_elemwise.c has
 * their C expressions): one X(Op) an op, expanded into each target's table
 * with that target's group emitter, so adding an elementwise op is one entry
 * here (and its expression). */
#define CG_ELEMWISE_OPS(X) \
    X(Add) X(Sub) X(Mul) X(Div) X(Pow) X(Mod) X(PRelu) X(Min) X(Max) X(Sum) X(Mean) X(Where) \
    X(Equal) X(Less) X(LessOrEqual) X(Greater) X(GreaterOrEqual) X(And) X(Or) X(Xor) X(Not) \
    X(Neg) X(Abs) X(Sign) X(Relu) X(Sqrt) X(Reciprocal) X(Exp) X(Log) X(Sin) X(Cos) X(Tanh) \
    X(Erf) X(Floor) X(Ceil) X(Round) X(LeakyRelu) X(Elu) X(Selu) X(Sigmoid) X(HardSigmoid) \
    X(HardSwish) X(Softplus) X(Softsign) X(Gelu) X(Clip) X(Cast)

/* The ops that are views of their input 0 on every target (cg_emit_view),
 * with the mask of inputs read only while compiling: X(Op, static_in). */
#define CG_VIEW_OPS(X) X(Identity, 0) X(Reshape, 2) X(Flatten, 0) X(Squeeze, 2) X(Unsqueeze, 2)
#define CG_VIEW_ROW(op, static_in) [IR_OP_##op] = {NULL, NULL, cg_emit_view, static_in},

struct CgTarget {
    const char *name;
    const CgOpEmitter *ops; /* IR_NOPS entries; emit NULL: not supported */
    /* Groups of the target's own, after the elementwise ones (may be NULL):
     * sets run_at of nodes that run inside a later node's step. A step is
     * written by the emitter of its group's first node, given the root. */
    void (*fuse)(IrGraph *g, const IrUses *u, int *run_at);
    /* The program: the rt_device its main.c uses (rt.h); the embedded folder
     * that becomes its kernels/ ("kernels/" for cpu, "cuda/"); model.c's name
     * and opening (includes, profile macros); its Makefile; and the file of
     * generated kernels the emitters write to CgCtx.kf (NULL: none). */
    const char *device;
    const char *kernels;
    const char *model_name;
    const char *prelude;
    void (*makefile)(CgCtx *c, FILE *f);
    const char *kernel_file;
    /* its strided copy: dst[i.dst_st] = src[i.src_st] over dims (rank of
     * them; dst, src pointer expressions; tag numbers a node's copies) */
    void (*copy)(CgCtx *c, int node, int tag, const char *dst, const int64_t *dst_st, const char *src,
                 const int64_t *src_st, const int64_t *dims, int rank, int esize);
    /* Offload on a target with copy streams (NULL: each copy is its node's
     * own step): copy_out starts loom.ToHost node h's copy, written right
     * after the step that writes its input; copy_wait waits for loom.FromHost
     * node h's copy, written before the first step that reads it. */
    void (*copy_out)(CgCtx *c, int h);
    void (*copy_wait)(CgCtx *c, int h);
};

/* The k of loom.ToHost or loom.FromHost node h: how many nodes of its op come
 * before it (rt_cuda_copy_out's and rt_cuda_copy_in's copy numbers). */
int cg_copy_index(const IrGraph *g, int h);
/* The step that writes the bytes loom.ToHost node h reads (views followed to
 * their root's writer). */
int cg_copy_writer_step(const CgCtx *c, int h);

/* Shorthands of the emitters: a node and a value of the graph being
 * written; the C identifier of node n's input i or output j, or NULL when
 * it is omitted. */
#define NODE(c, node) (&(c)->g->nodes[node])
#define VAL(c, id) (&(c)->g->values[id])
#define IN_OR_NULL(c, n, i) (ir_in((n), (i)) >= 0 ? (c)->var[(n)->in[i]] : "NULL")
#define OUT_OR_NULL(c, n, j) ((j) < (n)->nout && (n)->out[j] >= 0 ? (c)->var[(n)->out[j]] : "NULL")

/* d[from] * ... * d[to - 1]; 1 when from >= to. */
static inline int64_t cg_prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int k = from; k < to; k++) p *= d[k];
    return p;
}

/* The cpu target's Makefile (cg_program.c). */
void cg_cpu_makefile(CgCtx *c, FILE *f);

/* ---- the cpu target (its table is in cg_cpu_ops.c) ---- */
void cg_emit_view(CgCtx *c, int node); /* a view: a pointer to its input's bytes */
/* cg_cpu_linalg.c */
/* Strides, dilations and start pads of a Conv/ConvTranspose/pooling node's
 * window over k spatial dims in -> out (kernel kern), auto_pad resolved. */
void cg_cpu_window(const IrNode *n, int k, const int64_t *in, const int64_t *out, const int64_t *kern,
                   int64_t *stride, int64_t *dil, int64_t *pad);
/* "static const KConv conv_<node> = {...};" */
void cg_cpu_kconv_decl(CgCtx *c, int node, const KConv *p);
/* The pooling window of node (its kernel_shape and window attributes) from x
 * (xdims) to y (ydims), and its "static const KPool pool_<node> = {...};". */
void cg_cpu_pool_params(IrGraph *g, int node, const int64_t *xdims, const int64_t *ydims, int rank,
                        KPool *p);
void cg_cpu_kpool_decl(CgCtx *c, int node, const KPool *p);
/* Resize's mode (0 nearest, 1 any other), coordinate transformation and
 * nearest rounding as k_resize_f32 numbers them. */
void cg_cpu_resize_modes(const IrNode *n, int *mode, int *coord_mode, int *nearest_mode);
const char *cg_cpu_matmul_check(IrGraph *g, int node, char *why, size_t n);
int64_t cg_cpu_matmul_ws(IrGraph *g, int node);
void cg_cpu_matmul_emit(CgCtx *c, int node);
const char *cg_cpu_gemm_check(IrGraph *g, int node, char *why, size_t n);
int64_t cg_cpu_gemm_ws(IrGraph *g, int node);
void cg_cpu_gemm_emit(CgCtx *c, int node);
const char *cg_cpu_einsum_check(IrGraph *g, int node, char *why, size_t n);
int64_t cg_cpu_einsum_ws(IrGraph *g, int node);
void cg_cpu_einsum_emit(CgCtx *c, int node);
/* An Einsum's steps, printed by the target (cg_cpu_linalg.c plans them):
 * the copies by CgTarget.copy; matmul: y (B x M x N) = a (B x M x K) * b
 * (B x K x N); sum: a one-operand Einsum's sum over the axes red[] marks
 * (NULL where the target refuses it: cg_einsum_sums says which need it). */
typedef struct {
    void (*matmul)(CgCtx *c, int node, const char *y, const char *a, const char *b, int64_t B, int64_t M,
                   int64_t N, int64_t K, IrDType t);
    void (*sum)(CgCtx *c, int node, const int *red);
} CgEinsumOps;
void cg_einsum_emit(CgCtx *c, int node, const CgEinsumOps *ops);
/* The cpu target's strided copy (its CgTarget.copy): k_copy_nd with the
 * stride and dims arrays declared static. */
void cg_cpu_copy_expr(CgCtx *c, int node, int tag, const char *dst, const int64_t *dst_st, const char *src,
                      const int64_t *src_st, const int64_t *dims, int rank, int esize);
/* The shared data-movement emitters (cg_move.c): strided copies by the
 * target's CgTarget.copy. cg_copy_values copies between values at element
 * offsets. */
void cg_copy_values(CgCtx *c, int node, int tag, int dst, int64_t dst_off, const int64_t *dst_st, int src,
                    int64_t src_off, const int64_t *src_st, const int64_t *dims, int rank);
void cg_emit_transpose(CgCtx *c, int node);
void cg_emit_slice(CgCtx *c, int node);
void cg_emit_concat(CgCtx *c, int node);
void cg_emit_split(CgCtx *c, int node);
void cg_emit_expand(CgCtx *c, int node);
int cg_einsum_sums(IrGraph *g, int node);
const char *cg_cpu_conv_check(IrGraph *g, int node, char *why, size_t n);
int64_t cg_cpu_conv_ws(IrGraph *g, int node);
int64_t cg_cpu_conv_pack(IrGraph *g, int node);
void cg_cpu_conv_emit_pack(CgCtx *c, int node);
/* Conv (or a Conv group's root: see cg_cpu_conv_fuse). */
void cg_cpu_conv_emit(CgCtx *c, int node);
/* The cpu target's fuse: a Conv and the BatchNormalization (inference),
 * residual Add and Relu after it as one step, the rest as the conv's
 * epilogue (k_conv_post_f32). */
void cg_cpu_conv_fuse(IrGraph *g, const IrUses *u, int *run_at);
const char *cg_cpu_pool_check(IrGraph *g, int node, char *why, size_t n);
void cg_cpu_pool_emit(CgCtx *c, int node);
void cg_cpu_global_pool_emit(CgCtx *c, int node);
const char *cg_cpu_resize_check(IrGraph *g, int node, char *why, size_t n);
void cg_cpu_resize_emit(CgCtx *c, int node);
const char *cg_cpu_dft_check(IrGraph *g, int node, char *why, size_t n);
void cg_cpu_dft_emit(CgCtx *c, int node);
/* A DFT node as the kernels see it: x [outer, n_in, inner, cin] transformed
 * along n_in at length (k_dft_f32, lk_dft_f32). */
typedef struct {
    int64_t outer, n_in, inner, length;
    int cin, onesided, inverse;
} CgDft;
void cg_dft_shape(IrGraph *g, int node, CgDft *d);
/* DFT's kernel arguments after its pointers, for both targets: "outer, n_in,
 * inner, cin, length, onesided, inverse" */
void cg_dft_args(CgCtx *c, int node, char *buf, size_t size);

/* cg_cpu_grad.c: loom's internal backward and optimizer-update ops */
const char *cg_cpu_grad_f32_check(IrGraph *g, int node, char *why, size_t n);
const char *cg_cpu_activation_grad_check(IrGraph *g, int node, char *why, size_t n);
void cg_cpu_activation_grad_emit(CgCtx *c, int node);
void cg_cpu_softmax_grad_emit(CgCtx *c, int node);
const char *cg_cpu_layernorm_grad_check(IrGraph *g, int node, char *why, size_t n);
int64_t cg_cpu_layernorm_grad_ws(IrGraph *g, int node);
void cg_cpu_layernorm_grad_emit(CgCtx *c, int node);
/* loom.RMSNormGrad: cg_cpu_layernorm_grad_check and _ws serve it too */
void cg_cpu_rmsnorm_grad_emit(CgCtx *c, int node);
void cg_cpu_batchnorm_grad_emit(CgCtx *c, int node);
const char *cg_cpu_groupnorm_grad_check(IrGraph *g, int node, char *why, size_t n);
int64_t cg_cpu_groupnorm_grad_ws(IrGraph *g, int node);
void cg_cpu_groupnorm_grad_emit(CgCtx *c, int node);
const char *cg_cpu_window_grad_check(IrGraph *g, int node, char *why, size_t n);
int64_t cg_cpu_conv_grad_weight_ws(IrGraph *g, int node);
void cg_cpu_conv_grad_weight_emit(CgCtx *c, int node);
int64_t cg_cpu_maxpool_grad_ws(IrGraph *g, int node);
void cg_cpu_pool_grad_emit(CgCtx *c, int node);
const char *cg_cpu_resize_grad_check(IrGraph *g, int node, char *why, size_t n);
void cg_cpu_resize_grad_emit(CgCtx *c, int node);
const char *cg_cpu_gather_grad_check(IrGraph *g, int node, char *why, size_t n);
void cg_cpu_gather_grad_emit(CgCtx *c, int node);
void cg_cpu_slice_grad_emit(CgCtx *c, int node);
const char *cg_cpu_loss_grad_check(IrGraph *g, int node, char *why, size_t n);
void cg_cpu_loss_grad_emit(CgCtx *c, int node);
void cg_cpu_global_norm_emit(CgCtx *c, int node);
const char *cg_cpu_update_check(IrGraph *g, int node, char *why, size_t n);
void cg_cpu_sgd_emit(CgCtx *c, int node);
void cg_cpu_adamw_emit(CgCtx *c, int node);
/* cg_cpu_attn.c: loom.Attention and loom.AttentionGrad */
const char *cg_cpu_attention_check(IrGraph *g, int node, char *why, size_t n);
int64_t cg_cpu_attention_ws(IrGraph *g, int node);
void cg_cpu_attention_emit(CgCtx *c, int node);
/* cg_cpu_lince.c: loom.LinearCrossEntropy */
const char *cg_cpu_linear_ce_check(IrGraph *g, int node, char *why, size_t n);
int64_t cg_cpu_linear_ce_ws(IrGraph *g, int node);
void cg_cpu_linear_ce_emit(CgCtx *c, int node);

/* ---- elementwise fusion (cg_elemwise.c) ---- */
/* Whether node is an elementwise op that fused loops handle, and whether its
 * dtypes are supported (NULL) or why not. */
int cg_is_elemwise(const IrNode *n);
/* Whether node is an inference BatchNormalization (running statistics, one
 * output) of a float32 tensor with a channel dim: such a node may open a
 * fused group (its consumer elementwise), its parameters read per channel. */
int cg_ew_batchnorm(const IrGraph *g, const IrNode *n);
/* Whether node is a loom.ActivationGrad of GELU over float32 values of one
 * shape: such a node joins fused groups as an elementwise op does (a bf16
 * program's backward casts and the GELU input made again, then the
 * gradient, in one loop), computed by the kernels' k_gelu_grad. */
int cg_ew_act_grad(const IrGraph *g, const IrNode *n);
const char *cg_elemwise_check(IrGraph *g, int node, char *why, size_t n);
/* The loop of the fused group whose last node is root. */
void cg_elemwise_emit(CgCtx *c, int root);
/* What a target's loop or kernel for a group is made of: the members, the
 * group's inputs (leaves) with their strides over the output's dims merged
 * where every leaf walks alike (r of them, size-1 dims dropped), and the
 * element counts. A loop over _i (r == 1), or over _o < outer and _j < inner
 * with _i = _o * inner + _j, holds cg_ew_index (r > 1: the leaves' bases
 * _b<k> from _o) and cg_ew_body (loads, one statement per member, the store
 * at _i), each line prefixed by ind, written to c->f. A low-bit narrowing
 * that joined the group (cg_select, opt_narrow_joins) is a side member:
 * its bfloat16 copy of a leaf with the output's dims is stored at _i too
 * (side: its output values, nside of them, after the root's). */
typedef struct {
    int vid;
    int chan;  /* a BatchNormalization's parameter: indexed by the output's dim 1 */
    int first; /* the first leaf of its value (a value may be two leaves: a parameter and an operand) */
    int64_t stride[IR_MAX_RANK]; /* over the merged output dims, in elements */
} CgEwLeaf;
typedef struct {
    int root, *mem, nmem;
    int *side, nside;
    CgEwLeaf *leaf;
    int nleaf, r;
    int64_t dims[IR_MAX_RANK], numel, inner, outer;
} CgEwPlan;
void cg_ew_plan(CgCtx *c, int root, CgEwPlan *p);
void cg_ew_plan_free(CgEwPlan *p);
void cg_ew_index(CgCtx *c, const CgEwPlan *p, const char *ind);
void cg_ew_body(CgCtx *c, const CgEwPlan *p, const char *ind);
/* The text of elemwise.h: float16/bfloat16 conversions, integer helpers. */
extern const char cg_elemwise_h[];

/* ---- C text (cg_emit.c) ---- */
const char *cg_ctype(IrDType t);          /* storage type: "float", "uint16_t", ... */
void cg_cstr(FILE *f, const char *s);     /* a C string literal, escaped */
/* A float as a C literal that reads back as the same float ("0.5f", "1.0f", "NAN"). */
const char *cg_float_lit(float x, char *buf, size_t n);
#define CG_FLT(x) cg_float_lit((x), (char[48]){0}, 48)
/* "(4,784)" */
const char *cg_dims(const IrValue *v, char *buf, size_t n);
/* "(float *)(arena + OFF_x)" or the weights equivalent: the typed pointer expression of value v */
void cg_ptr_expr(CgCtx *c, int vid, char *buf, size_t n);
/* Declares value vid's pointer variable, with a shape comment and a note. */
void cg_declare_value(CgCtx *c, int vid, const char *note);
/* Declares the pointer variable of every output of node. */
void cg_declare_outputs(CgCtx *c, int node);
/* "arena + N": the node's workspace */
void cg_ws_expr(CgCtx *c, int node, char *buf, size_t n);
/* A kernel returning int: on failure, the program reports the node and stops. */
void cg_check_call(CgCtx *c, int node, const char *call);
/* A static const int64_t array named NAME_<node> with n values; returns the name in buf. */
const char *cg_i64_array(CgCtx *c, int node, const char *what, const int64_t *v, int n, char *buf,
                         size_t len);

/* model.c's opening comment (`what` it holds), includes and profile macros. */
void cg_model_prelude(CgCtx *c, const CgTarget *t, const char *what);
/* One step of model.c: the comment naming node (and the nodes fused into
 * it), its kernel call or loop, and its profile mark numbered `step`. */
void cg_emit_step(CgCtx *c, const CgTarget *t, int node, int step);

/* ---- program files (cg_program.c) ---- */
int cg_write_program(CgCtx *c, const char *dir);
/* Whether value v is a root of the weights blob that weights.safetensors
 * holds (a parameter or constant, not optimizer state). */
int cg_is_weight(const CgCtx *c, int v);
/* One "{name, dtype, rank, {dims}, OFF_x / WOFF_x" of a driver table (the
 * caller closes the row). */
void cg_tensor_fields(CgCtx *c, FILE *f, int v);

/* ---- training programs (cg_train.c) ---- */
/* model.c: model_forward_backward and model_update. */
void cg_train_write_model(CgCtx *c, const CgTarget *t);
/* main.c: the tables of runtime/rt_train.h and main(). */
void cg_train_write_main(CgCtx *c, FILE *f);

/* ---- sources embedded at build time (build/gen/embedded.c) ---- */
typedef struct {
    const char *path; /* in the output folder: "kernels/kmove.c", "runtime/rt.h" */
    const unsigned char *data;
    size_t size;
} CgEmbeddedFile;
extern const CgEmbeddedFile cg_embedded_files[];
extern const int cg_nembedded_files;

#endif
