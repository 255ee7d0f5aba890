/* The cuda target: model.cu, a driver that runs each step of the same
 * selection, fusion and memory plan as the cpu target on the GPU (one kernel
 * launch or cuBLASLt product per step, on the compute stream, each under the
 * comment naming its ONNX node and shapes), fused.cuh (a __global__ kernel
 * per fused elementwise group, from the expression table the cpu loops use,
 * cg_elemwise.c), main.c (the shared `infer` driver or the train tables,
 * over rt_device_cuda) and a Makefile for nvcc, or g++ and the host
 * emulator with `make EMU=1` (kernels/emu.h).
 *
 * The kernels are codegen/kernels/cuda/ (lk.cuh). An op without a cuda
 * emitter here is refused by cg_select, naming the node and the op, never
 * emitted wrong. */
#include <string.h>

#include "cg_impl.h"
#include "ops_impl.h"

#define NODE(c, node) (&(c)->g->nodes[node])
#define VAL(c, id) (&(c)->g->values[id])
#define IN_OR_NULL(c, n, i) (ir_in((n), (i)) >= 0 ? (c)->var[(n)->in[i]] : "NULL")
#define OUT_OR_NULL(c, n, j) ((j) < (n)->nout && (n)->out[j] >= 0 ? (c)->var[(n)->out[j]] : "NULL")

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= d[i];
    return p;
}

/* A launcher call that returns non-zero stops the pass, naming the node. */
static void launch_check(CgCtx *c, int node, const char *call)
{
    fprintf(c->f, "    if (%s)\n        return node_fail(", call);
    cg_cstr(c->f, NODE(c, node)->name);
    fprintf(c->f, ", \"%s\");\n", ir_ops[NODE(c, node)->op].name);
}

static const char *f32_only(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    for (int j = 0; j < nd->nin; j++) {
        int v = nd->in[j];
        if (v >= 0 && g->values[v].dtype != IR_F32 && g->values[v].dtype != IR_I64) {
            snprintf(why, n, "%s of %s (float32 only, for now)", ir_ops[nd->op].name,
                     ir_dtype_name(g->values[v].dtype));
            return why;
        }
    }
    return NULL;
}

/* ---- elementwise groups: a kernel in fused.cuh, a launch in model.cu ---- */

static void emit_elemwise(CgCtx *c, int root)
{
    IrGraph *g = c->g;
    CgEwPlan p;
    cg_ew_plan(c, root, &p);
    int out = g->nodes[root].out[0];
    FILE *drv = c->f;
    c->f = c->kf;
    fprintf(c->f, "\n/* the fused loop ending at node %d (%s), one thread per element */\n"
                  "static __global__ void ew_%d(%s *%s", root, ir_ops[g->nodes[root].op].name, root,
            cg_ctype(g->values[out].dtype), c->var[out]);
    for (int k = 0; k < p.nleaf; k++)
        fprintf(c->f, ", const %s *%s", cg_ctype(g->values[p.leaf[k].vid].dtype), c->var[p.leaf[k].vid]);
    fprintf(c->f, ")\n{\n    for (int64_t _i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; _i < %lld;\n"
                  "         _i += (int64_t)gridDim.x * blockDim.x) {\n", (long long)p.numel);
    if (p.r > 1) {
        fprintf(c->f, "        const int64_t _o = _i / %lld, _j = _i %% %lld;\n", (long long)p.inner,
                (long long)p.inner);
        cg_ew_index(c, &p, "        ");
    }
    cg_ew_body(c, &p, "        ");
    fprintf(c->f, "    }\n}\n");
    c->f = drv;
    cg_declare_outputs(c, root);
    char call[4096];
    size_t k = (size_t)snprintf(call, sizeof call, "LOOM_LAUNCH(ew_%d, lk_blocks(%lld), LK_THREADS, 0, STREAM, %s", root,
                                (long long)p.numel, c->var[out]);
    for (int l = 0; l < p.nleaf && k < sizeof call; l++)
        k += (size_t)snprintf(call + k, sizeof call - k, ", %s", c->var[p.leaf[l].vid]);
    if (k < sizeof call) snprintf(call + k, sizeof call - k, ")");
    IR_ASSERT(k < sizeof call - 1);
    launch_check(c, root, call);
    cg_ew_plan_free(&p);
}

static const char *check_elemwise(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    for (int j = 0; j < nd->nin + nd->nout; j++) {
        int v = j < nd->nin ? nd->in[j] : nd->out[j - nd->nin];
        if (v >= 0 && (g->values[v].dtype == IR_F64 || g->values[v].dtype == IR_F16 ||
                       g->values[v].dtype == IR_BF16)) {
            snprintf(why, n, "elementwise ops on %s (not yet by the cuda target)",
                     ir_dtype_name(g->values[v].dtype));
            return why;
        }
    }
    return cg_elemwise_check(g, node, why, n);
}

/* ---- products ---- */

static void emit_gemm(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *a = VAL(c, n->in[0]), *b = VAL(c, n->in[1]);
    int ta = ir_attr_int(n, "transA", 0) != 0, tb = ir_attr_int(n, "transB", 0) != 0;
    int64_t M = a->dims[ta], K = a->dims[!ta], N = b->dims[!tb], cr = 1, cc = 1;
    float alpha = ir_attr_float(n, "alpha", 1.0f), beta = ir_attr_float(n, "beta", 1.0f);
    int has_c = ir_in(n, 2) >= 0 && beta != 0;
    if (has_c) {
        const IrValue *cv = VAL(c, n->in[2]);
        if (cv->rank == 1) cc = cv->dims[0];
        if (cv->rank == 2) cr = cv->dims[0], cc = cv->dims[1];
    }
    /* a C of one row and beta 1 is cuBLASLt's bias epilogue; any other C is
     * broadcast into y first and accumulated with beta */
    int bias = has_c && cr == 1 && cc == N && beta == 1.0f;
    char call[768];
    cg_declare_outputs(c, node);
    if (has_c && !bias) {
        snprintf(call, sizeof call, "lk_broadcast2d_f32(STREAM, %s, %s, %lld, %lld, %lld, %lld)", c->var[n->out[0]],
                 c->var[n->in[2]], (long long)M, (long long)N, (long long)cr, (long long)cc);
        launch_check(c, node, call);
    }
    snprintf(call, sizeof call, "lk_gemm_f32(STREAM, %s, %s, %s, %s, 1, %lld, %lld, %lld, %d, %d, %s, %s, 0, 0, 0)",
             c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], bias ? c->var[n->in[2]] : "NULL", (long long)M,
             (long long)N, (long long)K, ta, tb, CG_FLT(alpha), has_c && !bias ? CG_FLT(beta) : "0.0f");
    launch_check(c, node, call);
}

/* MatMul of [batch..., M, K] by [batch..., K, N]: one product when b is a
 * matrix (a's batches are rows), else strided batches, a matrix operand at
 * stride 0. Other broadcasts and vector operands are not yet done. */
static int matmul_shape(const IrValue *a, const IrValue *b, const IrValue *y, int64_t *batch, int64_t *sa, int64_t *sb,
                        int64_t *M)
{
    if (a->rank < 2 || b->rank < 2) return -1;
    int64_t K = a->dims[a->rank - 1], N = b->dims[b->rank - 1];
    *M = a->dims[a->rank - 2];
    int64_t ba = prod(a->dims, 0, a->rank - 2), bb = prod(b->dims, 0, b->rank - 2);
    int64_t by = prod(y->dims, 0, y->rank - 2);
    if (bb == 1) { /* every batch of a times one matrix: a's batches are more rows */
        *M *= ba, *batch = 1, *sa = *sb = 0;
        return 0;
    }
    if (ba == 1) {
        *batch = by, *sa = 0, *sb = K * N;
        return bb == by ? 0 : -1;
    }
    if (a->rank != b->rank || memcmp(a->dims, b->dims, (size_t)(a->rank - 2) * sizeof *a->dims)) return -1;
    *batch = ba, *sa = *M * K, *sb = K * N;
    return 0;
}

static const char *check_matmul(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const char *no = f32_only(g, node, why, n);
    if (no) return no;
    int64_t batch, sa, sb, M;
    if (matmul_shape(&g->values[nd->in[0]], &g->values[nd->in[1]], &g->values[nd->out[0]], &batch, &sa, &sb, &M))
        return "MatMul with vector operands or broadcast batch dims (not yet by the cuda target)";
    return NULL;
}

static void emit_matmul(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *a = VAL(c, n->in[0]), *b = VAL(c, n->in[1]), *y = VAL(c, n->out[0]);
    int64_t batch, sa, sb, M, K = a->dims[a->rank - 1], N = b->dims[b->rank - 1];
    IR_ASSERT(matmul_shape(a, b, y, &batch, &sa, &sb, &M) == 0);
    char call[768];
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "lk_gemm_f32(STREAM, %s, %s, %s, NULL, %lld, %lld, %lld, %lld, 0, 0, 1.0f, 0.0f, %lld, "
             "%lld, %lld)", c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], (long long)batch, (long long)M,
             (long long)N, (long long)K, (long long)sa, (long long)sb, (long long)(M * N));
    launch_check(c, node, call);
}

/* ---- reductions: ReduceSum and ReduceMean over contiguous axes ---- */

/* x's dims as [outer, len, inner] with len the reduced ones, or -1. */
static int reduce_split(IrGraph *g, int node, int64_t *outer, int64_t *len, int64_t *inner, int *noop)
{
    const IrValue *x = &g->values[g->nodes[node].in[0]];
    unsigned char mask[IR_MAX_RANK];
    if (ir_reduce_axes(g, node, mask, noop)) return -1;
    int first = -1, last = -1;
    for (int k = 0; k < x->rank; k++)
        if (mask[k] && x->dims[k] != 1) {
            if (first < 0) first = k;
            else if (last != k - 1) {
                for (int q = last + 1; q < k; q++)
                    if (x->dims[q] != 1) return -1;
            }
            last = k;
        }
    if (first < 0) first = last = 0, *len = 1;
    else *len = prod(x->dims, first, last + 1);
    *outer = prod(x->dims, 0, first);
    *inner = prod(x->dims, last + 1, x->rank);
    if (first == 0 && last == 0 && *len == 1) *outer = 1, *inner = prod(x->dims, 0, x->rank);
    return 0;
}

static const char *check_reduce(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    if (g->values[nd->in[0]].dtype != IR_F32) {
        snprintf(why, n, "%s of %s (float32 only, for now)", ir_ops[nd->op].name,
                 ir_dtype_name(g->values[nd->in[0]].dtype));
        return why;
    }
    int64_t o, l, i;
    int noop;
    if (reduce_split(g, node, &o, &l, &i, &noop)) return "a reduction over axes that are not contiguous (not yet by the cuda target)";
    return NULL;
}

static void emit_reduce(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int64_t outer, len, inner;
    int noop;
    IR_ASSERT(reduce_split(c->g, node, &outer, &len, &inner, &noop) == 0);
    char call[512];
    cg_declare_outputs(c, node);
    if (noop) {
        fprintf(c->f, "    if (RT_CUDA(cudaMemcpyAsync(%s, %s, %lld, cudaMemcpyDeviceToDevice, STREAM)))\n"
                      "        return node_fail(", c->var[n->out[0]], c->var[n->in[0]],
                (long long)ir_value_bytes(VAL(c, n->in[0])));
        cg_cstr(c->f, n->name);
        fprintf(c->f, ", \"%s\");\n", ir_ops[n->op].name);
        return;
    }
    snprintf(call, sizeof call, "lk_reduce_f32(STREAM, %s, %s, %lld, %lld, %lld, %d)", c->var[n->out[0]],
             c->var[n->in[0]], (long long)outer, (long long)len, (long long)inner, n->op == IR_OP_ReduceMean);
    launch_check(c, node, call);
}

/* ---- the loss and its gradient ---- */

static int reduction(const IrNode *n)
{
    const char *red = ir_attr_string(n, "reduction", "mean");
    return !strcmp(red, "none") ? 0 : !strcmp(red, "sum") ? 1 : 2;
}

static const char *check_sce(IrGraph *g, int node, char *why, size_t len)
{
    const IrNode *n = &g->nodes[node];
    int grad = n->op == IR_OP_SoftmaxCrossEntropyLossGrad;
    const IrValue *x = &g->values[n->in[grad ? 1 : 0]];
    int weight = ir_in(n, grad ? 3 : 2) >= 0, log_prob = grad ? ir_in(n, 4) >= 0 : n->nout > 1 && n->out[1] >= 0;
    if (g->values[n->in[grad ? 2 : 1]].dtype != IR_I64 || x->dtype != IR_F32) return "a loss with targets other than int64 or logits other than float32";
    if (x->rank != 2 || reduction(n) == 0 || weight || log_prob)
        return "SoftmaxCrossEntropyLoss other than of [N, C] logits, reduced by mean or sum, without weights or "
               "log_prob (not yet by the cuda target)";
    return NULL;
}

static int64_t sce_ws(IrGraph *g, int node)
{
    const IrNode *n = &g->nodes[node];
    const IrValue *x = &g->values[n->in[n->op == IR_OP_SoftmaxCrossEntropyLossGrad ? 1 : 0]];
    return (int64_t)(2 * x->dims[0] + 1) * 8; /* lk_sce_loss_ws */
}

static void emit_sce(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int grad = n->op == IR_OP_SoftmaxCrossEntropyLossGrad;
    const IrValue *x = VAL(c, n->in[grad ? 1 : 0]);
    char call[768], ws[64];
    cg_ws_expr(c, node, ws, sizeof ws);
    cg_declare_outputs(c, node);
    if (grad)
        snprintf(call, sizeof call, "lk_sce_loss_grad_f32(STREAM, %s, %s, %s, %s, %lld, %lld, %d, %lld, %d, %s)",
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], (long long)x->dims[0],
                 (long long)x->dims[1], reduction(n), (long long)ir_attr_int(n, "ignore_index", 0),
                 ir_attr_find(n, "ignore_index") != NULL, ws);
    else
        snprintf(call, sizeof call, "lk_sce_loss_f32(STREAM, %s, %s, %s, %lld, %lld, %d, %lld, %d, %s)",
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], (long long)x->dims[0], (long long)x->dims[1],
                 reduction(n), (long long)ir_attr_int(n, "ignore_index", 0), ir_attr_find(n, "ignore_index") != NULL,
                 ws);
    launch_check(c, node, call);
}

/* ---- optimizer updates ---- */

static const char *check_update(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    for (int j = 0; j < nd->nout; j++)
        if (g->values[nd->out[j]].alias < 0) return "an optimizer update that does not write in place";
    return f32_only(g, node, why, n);
}

static void emit_adamw(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    char call[768];
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "lk_adamw_f32(STREAM, %s, %s, %s, %s, %s, %s, %s, %lld, %s, %s, %s, %s)",
             c->var[n->out[0]], c->var[n->out[1]], c->var[n->out[2]], c->var[n->in[1]], c->var[n->in[4]],
             c->var[n->in[5]], IN_OR_NULL(c, n, 6), (long long)ir_value_numel(VAL(c, n->in[0])),
             CG_FLT(ir_attr_float(n, "beta1", 0.9f)), CG_FLT(ir_attr_float(n, "beta2", 0.999f)),
             CG_FLT(ir_attr_float(n, "epsilon", 1e-8f)), CG_FLT(ir_attr_float(n, "weight_decay", 0.01f)));
    launch_check(c, node, call);
}

static void emit_sgd(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    char call[768];
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "lk_sgd_f32(STREAM, %s, %s, %s, %s, %s, %lld, %s, %s, %d)", c->var[n->out[0]],
             OUT_OR_NULL(c, n, 1), c->var[n->in[1]], c->var[n->in[2]], IN_OR_NULL(c, n, 4),
             (long long)ir_value_numel(VAL(c, n->in[0])), CG_FLT(ir_attr_float(n, "momentum", 0)),
             CG_FLT(ir_attr_float(n, "weight_decay", 0)), ir_attr_int(n, "nesterov", 0) != 0);
    launch_check(c, node, call);
}

/* ---- the table ---- */

#define ELEM {check_elemwise, NULL, emit_elemwise, 0}
#define VIEW(static_in) {NULL, NULL, cg_emit_view, static_in}

static const CgOpEmitter cuda_ops[IR_NOPS] = {
    [IR_OP_MatMul] = {check_matmul, NULL, emit_matmul, 0},
    [IR_OP_Gemm] = {f32_only, NULL, emit_gemm, 0},
    [IR_OP_Add] = ELEM, [IR_OP_Sub] = ELEM, [IR_OP_Mul] = ELEM, [IR_OP_Div] = ELEM,
    [IR_OP_Pow] = ELEM, [IR_OP_Mod] = ELEM, [IR_OP_PRelu] = ELEM, [IR_OP_Min] = ELEM,
    [IR_OP_Max] = ELEM, [IR_OP_Sum] = ELEM, [IR_OP_Mean] = ELEM, [IR_OP_Where] = ELEM,
    [IR_OP_Equal] = ELEM, [IR_OP_Less] = ELEM, [IR_OP_LessOrEqual] = ELEM, [IR_OP_Greater] = ELEM,
    [IR_OP_GreaterOrEqual] = ELEM, [IR_OP_And] = ELEM, [IR_OP_Or] = ELEM, [IR_OP_Xor] = ELEM,
    [IR_OP_Not] = ELEM, [IR_OP_Neg] = ELEM, [IR_OP_Abs] = ELEM, [IR_OP_Sign] = ELEM,
    [IR_OP_Relu] = ELEM, [IR_OP_Sqrt] = ELEM, [IR_OP_Reciprocal] = ELEM, [IR_OP_Exp] = ELEM,
    [IR_OP_Log] = ELEM, [IR_OP_Sin] = ELEM, [IR_OP_Cos] = ELEM, [IR_OP_Tanh] = ELEM,
    [IR_OP_Erf] = ELEM, [IR_OP_Floor] = ELEM, [IR_OP_Ceil] = ELEM, [IR_OP_Round] = ELEM,
    [IR_OP_LeakyRelu] = ELEM, [IR_OP_Elu] = ELEM, [IR_OP_Selu] = ELEM, [IR_OP_Sigmoid] = ELEM,
    [IR_OP_HardSigmoid] = ELEM, [IR_OP_HardSwish] = ELEM, [IR_OP_Softplus] = ELEM,
    [IR_OP_Softsign] = ELEM, [IR_OP_Gelu] = ELEM, [IR_OP_Clip] = ELEM, [IR_OP_Cast] = ELEM,
    [IR_OP_Identity] = VIEW(0),
    [IR_OP_Reshape] = VIEW(2),
    [IR_OP_Flatten] = VIEW(0),
    [IR_OP_Squeeze] = VIEW(2),
    [IR_OP_Unsqueeze] = VIEW(2),
    [IR_OP_ReduceSum] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceMean] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_SoftmaxCrossEntropyLoss] = {check_sce, sce_ws, emit_sce, 0},
    [IR_OP_SoftmaxCrossEntropyLossGrad] = {check_sce, sce_ws, emit_sce, 0},
    [IR_OP_SGD] = {check_update, NULL, emit_sgd, 0},
    [IR_OP_AdamW] = {check_update, NULL, emit_adamw, 0},
};

static const char cuda_prelude[] =
    "#include <stdint.h>\n\n#include \"lk.cuh\"\n#include \"elemwise.h\"\n"
    "extern \"C\" {\n#include \"model.h\"\n}\n#include \"rt.h\"\n#include \"rt_cuda.h\"\n\n"
    "#include \"fused.cuh\"\n\n"
    "/* every step runs on the compute stream, in order */\n"
    "#define STREAM (rt_cuda_stream())\n\n"
    "/* A step that failed: its node, op and the launcher's message (file, line, CUDA error, hint). */\n"
    "static int node_fail(const char *node, const char *op)\n{\n"
    "    char m[RT_ERR_LEN];\n    snprintf(m, sizeof m, \"%s\", rt_error());\n"
    "    return rt_fail(\"node %s (%s): %s\", node, op, m);\n}\n\n"
    "/* `make PROFILE=1` times every step (rt_prof_add), waiting for the GPU after each. */\n"
    "#ifdef LOOM_PROFILE\n"
    "#define PROF_START() double _pt = (rt_device_cuda.sync(), rt_now())\n"
    "#define PROF_STEP(k, name, op) \\\n"
    "    (rt_device_cuda.sync(), rt_prof_add((k), (name), (op), rt_now() - _pt), _pt = rt_now())\n"
    "#else\n#define PROF_START() ((void)0)\n#define PROF_STEP(k, name, op) ((void)0)\n#endif\n\n";

static void cuda_makefile(CgCtx *c, FILE *f)
{
    const char *prog = c->train ? "train" : "infer";
    fprintf(f,
            "# Builds `%s` for the GPU, generated by loom (the cuda target).\n"
            "#   make                  nvcc for sm_80 and sm_90 (A100, H100); ARCH=sm_XY for one other\n"
            "#   make ARCH=sm_90       one architecture (a faster build)\n"
            "#   make EMU=1            no GPU: g++ and the host emulator (kernels/emu.h) run the same\n"
            "#                         kernels and cuBLASLt calls on the CPU, slowly, to check them\n"
            "#   make PROFILE=1        times every step (`infer --repeat N` prints the table)\n"
            "#   make LOOM_PREBUILT=DIR  links DIR/libloomk_cuda.a (or, with EMU=1, libloomk_cuda_emu.a:\n"
            "#                         the kernels, rt_cuda and the emulator) and DIR/libloomrt.a instead\n"
            "#                         of compiling the copies here (tests/cuda builds them once)\n"
            "CUDA ?= /usr/local/cuda\n"
            "NVCC ?= $(CUDA)/bin/nvcc\n"
            "CC ?= cc\n"
            "CXX ?= g++\n"
            "CFLAGS ?= -O2\n"
            "ifdef ARCH\n"
            "GENCODE := -gencode arch=compute_$(ARCH:sm_%%=%%),code=$(ARCH)\n"
            "else\n"
            "GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90\n"
            "endif\n"
            "DEFS := -D_GNU_SOURCE -Ikernels -Iruntime -I.\n"
            "ifdef PROFILE\n"
            "DEFS += -DLOOM_PROFILE\n"
            "endif\n"
            "ifdef LOOM_PREBUILT\n"
            "CU_SRC := model.cu\n"
            "LIBS := $(LOOM_PREBUILT)/libloomk_cuda$(if $(EMU),_emu).a $(LOOM_PREBUILT)/libloomrt.a\n"
            "else\n"
            "CU_SRC := model.cu runtime/rt_cuda.cu $(wildcard kernels/lk_*.cu)\n"
            "LIBS := $(patsubst %%.c,%%.o,$(wildcard runtime/*.c))\n"
            "endif\n"
            "ifdef EMU\n"
            "CU_OBJ := $(CU_SRC:.cu=.emu.o) $(if $(LOOM_PREBUILT),,kernels/emu.emu.o kernels/emu_cublaslt.emu.o)\n"
            "LINK := $(CXX)\n"
            "LDLIBS := -lm\n"
            "else\n"
            "CU_OBJ := $(CU_SRC:.cu=.o)\n"
            "LINK := $(NVCC) $(GENCODE)\n"
            "LDLIBS := -L$(CUDA)/lib64 -lcublasLt -lcudart -lm\n"
            "endif\n"
            "C_OBJ := main.o\n"
            "\n"
            "%s: $(C_OBJ) $(CU_OBJ) $(LIBS)\n"
            "\t$(LINK) $(C_OBJ) $(CU_OBJ) $(LIBS) $(LDLIBS) -lgomp -o $@\n"
            "\n"
            "%%.o: %%.c\n"
            "\t$(CC) -std=c11 -fopenmp $(DEFS) -isystem $(CUDA)/include $(CFLAGS) -c $< -o $@\n"
            "%%.o: %%.cu\n"
            "\t$(NVCC) -std=c++17 $(GENCODE) $(DEFS) $(CFLAGS) -x cu -c $< -o $@\n"
            "%%.emu.o: %%.cu\n"
            "\t$(CXX) -std=c++17 -DLOOM_EMU $(DEFS) -isystem $(CUDA)/include $(CFLAGS) -g -x c++ -c $< -o $@\n"
            "%%.emu.o: %%.cpp\n"
            "\t$(CXX) -std=c++17 -DLOOM_EMU $(DEFS) -isystem $(CUDA)/include $(CFLAGS) -g -c $< -o $@\n"
            "\n"
            "$(C_OBJ) $(CU_OBJ) $(filter %%.o,$(LIBS)): model.h $(wildcard kernels/*.cuh kernels/*.h runtime/*.h) elemwise.h fused.cuh\n"
            "\n"
            "clean:\n"
            "\trm -f %s *.o kernels/*.o runtime/*.o\n"
            "\n"
            ".PHONY: clean\n",
            prog, prog, prog);
}

const CgTarget cg_target_cuda = {"cuda", cuda_ops, NULL, "rt_device_cuda", "cuda/", "model.cu",
                                 cuda_prelude, cuda_makefile, "fused.cuh"};
