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
        if (v >= 0 && g->values[v].dtype == IR_BF16 && opt_reads_bf16(g, node, j)) continue; /* widened at use */
        if (v >= 0 && g->values[v].dtype != IR_F32 && g->values[v].dtype != IR_I64) {
            snprintf(why, n, "%s of %s (float32 only, for now)", ir_ops[nd->op].name,
                     ir_dtype_name(g->values[v].dtype));
            return why;
        }
    }
    return NULL;
}

/* ---- elementwise groups: a kernel in fused.cuh, a launch in model.cu ---- */

/* One thread per element. Below 2^31 elements the row index of a broadcast
 * is a 32-bit division (by a constant: a multiply), about 4% off GPT-2's
 * bias Adds on an H100; four elements a thread, their loads all in flight
 * before the stores, was measured too and gained nothing (the casts 5%
 * slower). */
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
    for (int m = 0; m < p.nside; m++) fprintf(c->f, ", %s *%s", cg_ctype(g->values[p.side[m]].dtype), c->var[p.side[m]]);
    for (int k = 0; k < p.nleaf; k++)
        if (p.leaf[k].first)
            fprintf(c->f, ", const %s *%s", cg_ctype(g->values[p.leaf[k].vid].dtype), c->var[p.leaf[k].vid]);
    fprintf(c->f, ")\n{\n    for (int64_t _i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; _i < %lld;\n"
                  "         _i += (int64_t)gridDim.x * blockDim.x) {\n", (long long)p.numel);
    if (p.r > 1) {
        if (p.numel < ((int64_t)1 << 31))
            fprintf(c->f, "        const int64_t _o = (uint32_t)_i / %lldu, _j = (uint32_t)_i %% %lldu;\n",
                    (long long)p.inner, (long long)p.inner);
        else
            fprintf(c->f, "        const int64_t _o = _i / %lld, _j = _i %% %lld;\n", (long long)p.inner,
                    (long long)p.inner);
        cg_ew_index(c, &p, "        ");
    }
    cg_ew_body(c, &p, "        ");
    fprintf(c->f, "    }\n}\n");
    c->f = drv;
    cg_declare_outputs(c, root);
    for (int m = 0; m < p.nside; m++) cg_declare_value(c, p.side[m], ", bfloat16 (low-bit storage)");
    char call[4096];
    size_t k = (size_t)snprintf(call, sizeof call, "LOOM_LAUNCH(ew_%d, lk_blocks(%lld), LK_THREADS, 0, STREAM, %s", root,
                                (long long)p.numel, c->var[out]);
    for (int m = 0; m < p.nside && k < sizeof call; m++)
        k += (size_t)snprintf(call + k, sizeof call - k, ", %s", c->var[p.side[m]]);
    for (int l = 0; l < p.nleaf && k < sizeof call; l++)
        if (p.leaf[l].first) k += (size_t)snprintf(call + k, sizeof call - k, ", %s", c->var[p.leaf[l].vid]);
    if (k < sizeof call) snprintf(call + k, sizeof call - k, ")");
    IR_ASSERT(k < sizeof call - 1);
    launch_check(c, root, call);
    cg_ew_plan_free(&p);
}

/* float16 and bfloat16 load and store through elemwise.h's __host__ __device__
 * conversions, computing in float as the cpu loops do */
static const char *check_elemwise(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    for (int j = 0; j < nd->nin + nd->nout; j++) {
        int v = j < nd->nin ? nd->in[j] : nd->out[j - nd->nin];
        if (v >= 0 && g->values[v].dtype == IR_F64) {
            snprintf(why, n, "elementwise ops on %s (not yet by the cuda target)",
                     ir_dtype_name(g->values[v].dtype));
            return why;
        }
    }
    return cg_elemwise_check(g, node, why, n);
}

/* LkAttn's fields (lk.cuh), as the compiler computes them */
typedef struct {
    int64_t BH, T, S, D, Dv;
    float scale, fill;
    int causal, mask_kind, nb;
    int64_t mask_st, mask_ss, bdims[8], bstride[8];
} LkAttnParams;

/* ---- products ---- */

/* float32 operands (as f32_only), or bfloat16 ones throughout (lk_gemm_bf16)
 * but for a float32 result autocast kept (lk_gemm_bf16_f32out) */
static const char *f32_or_bf16(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    if (g->values[nd->in[0]].dtype != IR_BF16) return f32_only(g, node, why, n);
    for (int j = 0; j < nd->nin + nd->nout; j++) {
        int v = j < nd->nin ? nd->in[j] : nd->out[j - nd->nin];
        if (j == nd->nin && g->values[v].dtype == IR_F32 && ir_attr_int(nd, "out_dtype", IR_BF16) == IR_F32) continue;
        if (v >= 0 && g->values[v].dtype != IR_BF16) {
            snprintf(why, n, "%s of bfloat16 with a %s operand", ir_ops[nd->op].name, ir_dtype_name(g->values[v].dtype));
            return why;
        }
    }
    return NULL;
}

static const char *check_gemm(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const char *no = f32_or_bf16(g, node, why, n);
    if (no) return no;
    if (g->values[nd->in[0]].dtype == IR_BF16 && ir_in(nd, 2) >= 0)
        return "Gemm of bfloat16 with a C input (not yet by the cuda target: add it after the Gemm)";
    return NULL;
}

static void emit_gemm(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *a = VAL(c, n->in[0]), *b = VAL(c, n->in[1]);
    int ta = ir_attr_int(n, "transA", 0) != 0, tb = ir_attr_int(n, "transB", 0) != 0;
    int64_t M = a->dims[ta], K = a->dims[!ta], N = b->dims[!tb], cr = 1, cc = 1;
    float alpha = ir_attr_float(n, "alpha", 1.0f), beta = ir_attr_float(n, "beta", 1.0f);
    char call[768];
    if (a->dtype == IR_BF16) { // no C (check_gemm)
        cg_declare_outputs(c, node);
        snprintf(call, sizeof call, "lk_gemm_bf16%s(STREAM, %s, %s, %s, 1, %lld, %lld, %lld, %d, %d, %s, 0.0f, 0, 0, 0)",
                 VAL(c, n->out[0])->dtype == IR_F32 ? "_f32out" : "", c->var[n->out[0]], c->var[n->in[0]],
                 c->var[n->in[1]], (long long)M, (long long)N, (long long)K, ta, tb, CG_FLT(alpha));
        launch_check(c, node, call);
        return;
    }
    int has_c = ir_in(n, 2) >= 0 && beta != 0;
    if (has_c) {
        const IrValue *cv = VAL(c, n->in[2]);
        if (cv->rank == 1) cc = cv->dims[0];
        if (cv->rank == 2) cr = cv->dims[0], cc = cv->dims[1];
    }
    /* a C of one row and beta 1 is cuBLASLt's bias epilogue; any other C is
     * broadcast into y first and accumulated with beta */
    int bias = has_c && cr == 1 && cc == N && beta == 1.0f;
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
    int64_t ba = cg_prod(a->dims, 0, a->rank - 2), bb = cg_prod(b->dims, 0, b->rank - 2);
    int64_t by = cg_prod(y->dims, 0, y->rank - 2);
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
    const char *no = f32_or_bf16(g, node, why, n);
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
    int bf16 = a->dtype == IR_BF16;
    snprintf(call, sizeof call, "lk_gemm_%s(STREAM, %s, %s, %s, %s%lld, %lld, %lld, %lld, 0, 0, 1.0f, 0.0f, %lld, "
             "%lld, %lld)", !bf16 ? "f32" : y->dtype == IR_F32 ? "bf16_f32out" : "bf16", c->var[n->out[0]],
             c->var[n->in[0]], c->var[n->in[1]],
             bf16 ? "" : "NULL, ", (long long)batch, (long long)M, (long long)N, (long long)K, (long long)sa,
             (long long)sb, (long long)(M * N));
    launch_check(c, node, call);
}

/* ---- reductions: ReduceSum and ReduceMean (contiguous axes as [outer, len, inner]; others by lk_reduce_axes_f32) ---- */

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
    else *len = cg_prod(x->dims, first, last + 1);
    *outer = cg_prod(x->dims, 0, first);
    *inner = cg_prod(x->dims, last + 1, x->rank);
    if (first == 0 && last == 0 && *len == 1) *outer = 1, *inner = cg_prod(x->dims, 0, x->rank);
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
    if (g->values[nd->in[0]].rank > 8) return "a reduction of rank over 8 (not yet by the cuda target)";
    return NULL;
}

static void emit_reduce(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int64_t outer, len, inner;
    int noop;
    char call[512];
    cg_declare_outputs(c, node);
    if (reduce_split(c->g, node, &outer, &len, &inner, &noop)) {
        // axes apart (a conv bias's gradient: N and the spatial dims): the general kernel
        const IrValue *x = VAL(c, n->in[0]);
        unsigned char mask[IR_MAX_RANK];
        IR_ASSERT(ir_reduce_axes(c->g, node, mask, &noop) == 0);
        fprintf(c->f, "    static const LkNd red_%d = {{", node);
        for (int k = 0; k < x->rank; k++) fprintf(c->f, k ? ", %lld" : "%lld", (long long)x->dims[k]);
        fprintf(c->f, "}, {");
        for (int k = 0; k < x->rank; k++) fprintf(c->f, k ? ", %d" : "%d", mask[k] != 0);
        fprintf(c->f, "}, {0}, %d, 4};\n", x->rank);
        snprintf(call, sizeof call, "lk_reduce_axes_f32(STREAM, %s, %s, &red_%d, %d)", c->var[n->out[0]],
                 c->var[n->in[0]], node, n->op == IR_OP_ReduceMean);
        launch_check(c, node, call);
        return;
    }
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

/* ---- data movement: one lk_copy_nd per piece (kmove.c's k_copy_nd shapes) ---- */

static void strides_of(const int64_t *dims, int rank, int64_t *s)
{
    int64_t st = 1;
    for (int d = rank - 1; d >= 0; d--) s[d] = st, st *= dims[d];
}

static const char *sized_only(IrGraph *g, int node, char *why, size_t n)
{
    IrDType t = g->values[g->nodes[node].out[0]].dtype;
    if (ir_dtype_size(t) > 0 && t != IR_STRING) return NULL;
    snprintf(why, n, "%s of %s", ir_ops[g->nodes[node].op].name, ir_dtype_name(t));
    return why;
}

/* dst[i.dst_st] = src[i.src_st] over dims (dst, src: pointer expressions): a static LkNd and the launch */
static void copy_expr(CgCtx *c, int node, int tag, const char *dst, const int64_t *dst_st, const char *src,
                      const int64_t *src_st, const int64_t *dims, int rank, int esize)
{
    IR_ASSERT(rank <= 8);
    fprintf(c->f, "    static const LkNd nd_%d_%d = {{", node, tag);
    for (int k = 0; k < rank; k++) fprintf(c->f, k ? ", %lld" : "%lld", (long long)dims[k]);
    fprintf(c->f, "}, {");
    for (int k = 0; k < rank; k++) fprintf(c->f, k ? ", %lld" : "%lld", (long long)dst_st[k]);
    fprintf(c->f, "}, {");
    for (int k = 0; k < rank; k++) fprintf(c->f, k ? ", %lld" : "%lld", (long long)src_st[k]);
    fprintf(c->f, "}, %d, %d};\n", rank, esize);
    char call[768];
    snprintf(call, sizeof call, "lk_copy_nd(STREAM, %s, %s, &nd_%d_%d)", dst, src, node, tag);
    launch_check(c, node, call);
}


/* Pad: the constant is input 2 (read on the device), the opset < 11
 * attribute or zero, the last two as bytes in the LkPad */
static void emit_pad(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]), *y = VAL(c, n->out[0]);
    int64_t pads[2 * IR_MAX_RANK];
    int mode, es = ir_dtype_size(y->dtype);
    unsigned char val[16] = {0};
    IR_ASSERT(ir_pad_params(c->g, node, pads, &mode) == 0 && es <= 16);
    if (ir_in(n, 2) < 0 && ir_attr_find(n, "value")) {
        double d = (double)ir_attr_float(n, "value", 0);
        float f = (float)d;
        if (x->dtype == IR_F64) memcpy(val, &d, sizeof d);
        else memcpy(val, &f, sizeof f);
    }
    cg_declare_outputs(c, node);
    fprintf(c->f, "    static const LkPad pad_%d = {{", node);
    for (int k = 0; k < x->rank; k++) fprintf(c->f, k ? ", %lld" : "%lld", (long long)x->dims[k]);
    fprintf(c->f, "}, {");
    for (int k = 0; k < 2 * x->rank; k++) fprintf(c->f, k ? ", %lld" : "%lld", (long long)pads[k]);
    fprintf(c->f, "}, %d, %d, %d, {", x->rank, mode, es);
    for (int k = 0; k < es; k++) fprintf(c->f, k ? ", %d" : "%d", (int)(signed char)val[k]);
    fprintf(c->f, "}};\n");
    char call[512];
    snprintf(call, sizeof call, "lk_pad(STREAM, %s, %s, &pad_%d, %s)", c->var[n->out[0]], c->var[n->in[0]], node,
             IN_OR_NULL(c, n, 2));
    launch_check(c, node, call);
}

/* The "shape" attribute of a gradient node (the forward input's dims) into d; its rank. */
static int shape_attr(const IrNode *n, int64_t *d)
{
    int64_t k;
    const int64_t *s = ir_attr_ints(n, "shape", &k);
    IR_ASSERT(s && k <= IR_MAX_RANK);
    memcpy(d, s, (size_t)k * sizeof *d);
    return (int)k;
}

/* loom.SliceGrad: dx zeroed, then dy copied to starts + i * steps */
static void emit_slice_grad(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *dy = VAL(c, n->in[0]);
    int64_t xd[IR_MAX_RANK], xs[IR_MAX_RANK], ys[IR_MAX_RANK], ns, off = 0;
    int r = shape_attr(n, xd);
    const int64_t *starts = ir_attr_ints(n, "starts", &ns), *steps = ir_attr_ints(n, "steps", &ns);
    strides_of(xd, r, xs);
    strides_of(dy->dims, r, ys);
    for (int d = 0; d < r; d++) off += starts[d] * xs[d], xs[d] *= steps[d];
    cg_declare_outputs(c, node);
    fprintf(c->f, "    if (RT_CUDA(cudaMemsetAsync(%s, 0, %lld, STREAM)))\n        return node_fail(",
            c->var[n->out[0]], (long long)ir_value_bytes(VAL(c, n->out[0])));
    cg_cstr(c->f, n->name);
    fprintf(c->f, ", \"%s\");\n", ir_ops[n->op].name);
    if (ir_value_numel(dy) > 0) cg_copy_values(c, node, 0, n->out[0], off, xs, n->in[0], 0, ys, dy->dims, r);
}

/* ---- convolution (lk_conv.cu) ---- */

/* A Conv's window, or (loom.ConvGradWeight: dy, x, w's dims in "shape") its forward's */
static void conv_params(IrGraph *g, int node, KConv *p)
{
    const IrNode *n = &g->nodes[node];
    int grad = n->op == IR_OP_ConvGradWeight;
    const IrValue *x = &g->values[n->in[grad]], *y = &g->values[grad ? n->in[0] : n->out[0]];
    int64_t w[IR_MAX_RANK];
    if (grad) shape_attr(n, w);
    else memcpy(w, g->values[n->in[1]].dims, sizeof w);
    memset(p, 0, sizeof *p);
    p->nd = x->rank - 2;
    p->N = x->dims[0], p->C = x->dims[1], p->M = y->dims[1];
    p->group = ir_attr_int(n, "group", 1);
    for (int i = 0; i < p->nd; i++) p->in[i] = x->dims[2 + i], p->out[i] = y->dims[2 + i], p->k[i] = w[2 + i];
    cg_cpu_window(n, p->nd, p->in, p->out, p->k, p->stride, p->dilation, p->pad);
}

static const char *check_conv(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[nd->op == IR_OP_ConvGradWeight]];
    if (x->rank < 3 || x->rank > 5) return "a convolution over other than 1 to 3 spatial dims";
    return f32_only(g, node, why, n);
}

/* The products' form (lk_conv.cu) for group 1: the columns of nb images at
 * a time, as many as fit CONV_COLS_CAP floats (4 MiB; at least one image:
 * with 16 MiB, ResNet-50's least feasible budget rose from 715 to 777 MiB,
 * `loom plan --target cuda`; at 4 MiB it stays 715); none needed
 * for a 1x1 window at stride 1 with no pad (the weight gradient: unless it
 * applies a BatchNormalization and ReLU to x). Grouped convolutions keep
 * the direct kernels (nb 0): a product per group would be tiny. The floats
 * of columns an image: LkConv's comment in lk.cuh; lk_conv_f32_ws counts
 * them on the kernels' side, checked against this count by lk_ws_check. */
#define CONV_COLS_CAP ((int64_t)1 << 20)
static int64_t conv_cols(IrGraph *g, int node, int64_t *nb)
{
    const IrNode *n = &g->nodes[node];
    KConv p;
    conv_params(g, node, &p);
    *nb = 0;
    if (p.group != 1 || p.N == 0) return 0;
    int64_t ksz = 1, isz = 1, osz = 1;
    int pointwise = 1;
    for (int d = 0; d < p.nd; d++) {
        ksz *= p.k[d], isz *= p.in[d], osz *= p.out[d];
        pointwise &= p.k[d] == 1 && p.stride[d] == 1 && p.pad[d] == 0 && p.in[d] == p.out[d];
    }
    if (n->op == IR_OP_ConvGradWeight && n->nin == 6) pointwise = 0;
    int64_t per = pointwise ? 0 : n->op == IR_OP_ConvTranspose ? p.M * ksz * isz : p.C * ksz * osz;
    *nb = per ? CONV_COLS_CAP / per : p.N;
    *nb = *nb < 1 ? 1 : *nb > p.N ? p.N : *nb;
    return *nb * per;
}

static int64_t conv_ws(IrGraph *g, int node)
{
    int64_t nb;
    return conv_cols(g, node, &nb) * 4;
}

static void i64_list(FILE *f, const int64_t *v, int n)
{
    fprintf(f, "{");
    for (int k = 0; k < n; k++) fprintf(f, k ? ", %lld" : "%lld", (long long)v[k]);
    fprintf(f, "}");
}

static void emit_conv(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    KConv p;
    conv_params(c->g, node, &p);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    static const LkConv conv_%d = {%d, %lld, %lld, %lld, %lld, ", node, p.nd, (long long)p.N,
            (long long)p.C, (long long)p.M, (long long)p.group);
    const int64_t *f[6] = {p.in, p.out, p.k, p.stride, p.dilation, p.pad};
    for (int k = 0; k < 6; k++) {
        i64_list(c->f, f[k], p.nd);
        fprintf(c->f, ", ");
    }
    int64_t nb;
    char ws[128] = "NULL", check[160] = "";
    if (conv_cols(c->g, node, &nb)) {
        cg_ws_expr(c, node, ws, sizeof ws);
        snprintf(check, sizeof check, "lk_ws_check(lk_conv_f32_ws(&conv_%d, %d, %d), %lld) ||\n        ", node,
                 n->op == IR_OP_ConvTranspose, n->op == IR_OP_ConvGradWeight && n->nin == 6,
                 (long long)c->sel->ws_bytes[node]);
    }
    fprintf(c->f, "%lld};\n", (long long)nb);
    char call[2048];
    if (n->op == IR_OP_ConvGradWeight && n->nin == 6) // x read as Relu(BatchNormalization(x)) (ir_fold_bn_relu_grad)
        snprintf(call, sizeof call, "%slk_conv_grad_weight_bn_relu_%s(STREAM, %s, %s, %s, %s, %s, %s, %s, %s, &conv_%d, %s)",
                 check, VAL(c, n->in[1])->dtype == IR_BF16 ? "bf16x" : "f32", c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], c->var[n->in[3]],
                 c->var[n->in[4]], c->var[n->in[5]], CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)), node, ws);
    else if (n->op == IR_OP_ConvGradWeight)
        snprintf(call, sizeof call, "%slk_conv_grad_weight_f32(STREAM, %s, %s, %s, &conv_%d, %s)", check, c->var[n->out[0]],
                 c->var[n->in[0]], c->var[n->in[1]], node, ws);
    else
        snprintf(call, sizeof call, "%slk_conv%s_f32(STREAM, %s, %s, %s, %s, &conv_%d, %s)", check,
                 n->op == IR_OP_ConvTranspose ? "_transpose" : "", c->var[n->out[0]], c->var[n->in[0]],
                 c->var[n->in[1]], IN_OR_NULL(c, n, 2), node, ws);
    launch_check(c, node, call);
}

/* ---- batch normalization (inference form), activation gradients, global pooling ---- */

static const char *check_batchnorm(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    if (ir_attr_int(nd, "training_mode", 0))
        return "BatchNormalization with batch statistics (training_mode 1; not yet by the cuda target)";
    if (nd->op == IR_OP_BatchNormalization && nd->nout > 1)
        return "BatchNormalization with the extra outputs of opsets before 14";
    return f32_only(g, node, why, n);
}

static void emit_batchnorm(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    if (n->op != IR_OP_BatchNormalization && n->op != IR_OP_BatchNormGrad) { // it opens node's group
        emit_elemwise(c, node);
        return;
    }
    int grad = n->op == IR_OP_BatchNormGrad;
    const IrValue *x = VAL(c, n->in[grad]);
    long long N = (long long)x->dims[0], C = (long long)(x->rank > 1 ? x->dims[1] : 1);
    long long sp = (long long)cg_prod(x->dims, 2, x->rank);
    char call[2048];
    cg_declare_outputs(c, node);
    const char *xt = x->dtype == IR_BF16 ? "bf16x" : "f32"; // bf16x: low-bit storage, widened at use
    if (grad && ir_attr_int(n, "relu", 0)) // dy is Relu's (ir_fold_bn_relu_grad)
        snprintf(call, sizeof call,
                 "lk_batchnorm_relu_grad_%s(STREAM, %s, %s, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %s)", xt,
                 OUT_OR_NULL(c, n, 0), OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]], c->var[n->in[1]],
                 c->var[n->in[2]], c->var[n->in[5]], c->var[n->in[3]], c->var[n->in[4]], N, C, sp,
                 CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
    else if (grad)
        snprintf(call, sizeof call, "lk_batchnorm_grad_%s(STREAM, %s, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %s)", xt,
                 OUT_OR_NULL(c, n, 0), OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]], c->var[n->in[1]],
                 IN_OR_NULL(c, n, 2), c->var[n->in[3]], c->var[n->in[4]], N, C, sp,
                 CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
    else
        snprintf(call, sizeof call, "lk_batchnorm_f32(STREAM, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %s)",
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], c->var[n->in[3]],
                 c->var[n->in[4]], N, C, sp, CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
    launch_check(c, node, call);
}

/* loom.ActivationGrad: the act attribute and ONNX's defaults, as cg_cpu_grad.c reads them */
static void emit_activation_grad(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    if (n->op != IR_OP_ActivationGrad) { // it opens node's fused group (cg_ew_act_grad)
        emit_elemwise(c, node);
        return;
    }
    const char *act = ir_attr_string(n, "act", "");
    int kind = K_ACT_RELU;
    float alpha = 0, beta = 0, gamma = 0;
    if (!strcmp(act, "LeakyRelu")) {
        kind = K_ACT_LEAKY_RELU, alpha = ir_attr_float(n, "alpha", 0.01f);
    } else if (!strcmp(act, "Elu")) {
        kind = K_ACT_ELU, alpha = ir_attr_float(n, "alpha", 1.0f);
    } else if (!strcmp(act, "Selu")) {
        kind = K_ACT_SELU, alpha = ir_attr_float(n, "alpha", 1.67326319217681884765625f);
        gamma = ir_attr_float(n, "gamma", 1.05070102214813232421875f);
    } else if (!strcmp(act, "HardSigmoid")) {
        kind = K_ACT_HARD_SIGMOID, alpha = ir_attr_float(n, "alpha", 0.2f), beta = ir_attr_float(n, "beta", 0.5f);
    } else if (!strcmp(act, "HardSwish")) {
        kind = K_ACT_HARD_SWISH;
    } else if (!strcmp(act, "Gelu")) {
        kind = strcmp(ir_attr_string(n, "approximate", "none"), "tanh") ? K_ACT_GELU : K_ACT_GELU_TANH;
    }
    char call[512];
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "lk_activation_grad_f32(STREAM, %s, %s, %s, %lld, %d, %s, %s, %s)", c->var[n->out[0]],
             c->var[n->in[0]], c->var[n->in[1]], (long long)ir_value_numel(VAL(c, n->out[0])), kind, CG_FLT(alpha),
             CG_FLT(beta), CG_FLT(gamma));
    launch_check(c, node, call);
}

/* GlobalAveragePool: the mean over each (n, c)'s spatial elements */
static void emit_global_avg_pool(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *x = VAL(c, n->in[0]);
    char call[512];
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "lk_reduce_f32(STREAM, %s, %s, %lld, %lld, 1, 1)", c->var[n->out[0]], c->var[n->in[0]],
             (long long)cg_prod(x->dims, 0, 2), (long long)cg_prod(x->dims, 2, x->rank));
    launch_check(c, node, call);
}

/* ---- MaxPool and its gradient (lk_pool.cu) ---- */

static const char *check_maxpool(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[nd->op == IR_OP_MaxPoolGrad]];
    if (nd->op == IR_OP_MaxPool && nd->nout > 1 && nd->out[1] >= 0)
        return "MaxPool with its Indices output (not yet by the cuda target)";
    if (x->rank < 3 || x->rank > 5) return "pooling over other than 1 to 3 spatial dims";
    if (cg_prod(x->dims, 2, x->rank) > INT32_MAX) return "pooling over 2^31 or more elements per (n, c)";
    return f32_only(g, node, why, n);
}

static void maxpool_params(IrGraph *g, int node, KPool *p)
{
    const IrNode *n = &g->nodes[node];
    int grad = n->op == IR_OP_MaxPoolGrad;
    const IrValue *x = &g->values[n->in[grad]], *y = &g->values[grad ? n->in[0] : n->out[0]];
    cg_cpu_pool_params(g, node, x->dims, y->dims, x->rank, p);
}

static int64_t maxpool_grad_ws(IrGraph *g, int node)
{
    KPool p;
    maxpool_params(g, node, &p);
    int64_t n = p.NC;
    for (int d = 0; d < p.nd; d++) n *= p.out[d];
    return n * 4; /* lk_maxpool_grad_f32_ws: an int32 offset in its row per output */
}

static void emit_maxpool(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    KPool p;
    char call[2048], ws[64];
    maxpool_params(c->g, node, &p);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    static const LkPool pool_%d = {%d, %lld, ", node, p.nd, (long long)p.NC);
    const int64_t *f[6] = {p.in, p.out, p.k, p.stride, p.dilation, p.pad};
    for (int k = 0; k < 6; k++) {
        i64_list(c->f, f[k], p.nd);
        fprintf(c->f, k < 5 ? ", " : "};\n");
    }
    if (n->op == IR_OP_MaxPoolGrad && n->nin == 7) { // maxima of Relu(BatchNormalization(x)) (ir_fold_bn_relu_grad)
        cg_ws_expr(c, node, ws, sizeof ws);
        snprintf(call, sizeof call, "lk_maxpool_grad_bn_relu_f32(STREAM, %s, %s, %s, %s, %s, %s, %s, %s, %lld, &pool_%d, %s)",
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[3]], c->var[n->in[4]],
                 c->var[n->in[5]], c->var[n->in[6]], CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)),
                 (long long)VAL(c, n->in[1])->dims[1], node, ws);
    } else if (n->op == IR_OP_MaxPoolGrad) {
        cg_ws_expr(c, node, ws, sizeof ws);
        snprintf(call, sizeof call, "lk_maxpool_grad_f32(STREAM, %s, %s, %s, &pool_%d, %s)", c->var[n->out[0]],
                 c->var[n->in[0]], c->var[n->in[1]], node, ws);
    } else {
        snprintf(call, sizeof call, "lk_maxpool_f32(STREAM, %s, %s, &pool_%d)", c->var[n->out[0]], c->var[n->in[0]],
                 node);
    }
    launch_check(c, node, call);
}

/* ---- group and instance normalization ---- */

static int64_t groups_of(const IrNode *n, const IrValue *x)
{
    return n->op == IR_OP_GroupNormalization || n->op == IR_OP_GroupNormGrad ? ir_attr_int(n, "num_groups", 1)
                                                                              : x->dims[1];
}

static const char *check_groupnorm(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    int grad = nd->op == IR_OP_GroupNormGrad || nd->op == IR_OP_InstanceNormGrad;
    const IrValue *x = &g->values[nd->in[grad]];
    int64_t groups = groups_of(nd, x);
    if (x->rank < 2 || ir_value_numel(&g->values[nd->in[grad ? 2 : 1]]) != x->dims[1] || groups <= 0 ||
        x->dims[1] % groups)
        return "a group norm with a scale per group, or groups that do not divide the channels";
    return f32_only(g, node, why, n);
}

static int64_t groupnorm_grad_ws(IrGraph *g, int node)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[1]];
    return 2 * x->dims[0] * groups_of(nd, x) * 8; /* lk_groupnorm_grad_f32_ws */
}

static void emit_groupnorm(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int grad = n->op == IR_OP_GroupNormGrad || n->op == IR_OP_InstanceNormGrad;
    const IrValue *x = VAL(c, n->in[grad]);
    long long N = (long long)x->dims[0], C = (long long)x->dims[1], G = (long long)groups_of(n, x);
    long long sp = (long long)cg_prod(x->dims, 2, x->rank);
    char call[768], ws[64];
    cg_declare_outputs(c, node);
    if (grad) {
        cg_ws_expr(c, node, ws, sizeof ws);
        snprintf(call, sizeof call, "lk_groupnorm_grad_f32(STREAM, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %lld, %s, %s)",
                 OUT_OR_NULL(c, n, 0), OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]], c->var[n->in[1]],
                 c->var[n->in[2]], N, C, G, sp, CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)), ws);
    } else {
        snprintf(call, sizeof call, "lk_groupnorm_f32(STREAM, %s, %s, %s, %s, %lld, %lld, %lld, %lld, %s)",
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], N, C, G, sp,
                 CG_FLT(ir_attr_float(n, "epsilon", 1e-5f)));
    }
    launch_check(c, node, call);
}

/* ---- indexing ---- */

/* loom.GatherGrad: the rows of dx along the gathered axis, and the indices */
static void gather_grad_rows(const IrGraph *g, const IrNode *nd, int64_t *len, int64_t *nidx)
{
    int64_t xd[IR_MAX_RANK];
    int r = shape_attr(nd, xd);
    *len = xd[ir_norm_axis(ir_attr_int(nd, "axis", 0), r)];
    *nidx = ir_value_numel(&g->values[nd->in[1]]);
}

static const char *check_index(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    IrDType t = g->values[nd->in[1]].dtype;
    if (t != IR_I64 && t != IR_I32) {
        snprintf(why, n, "%s with %s indices (int32 and int64 only)", ir_ops[nd->op].name, ir_dtype_name(t));
        return why;
    }
    if (nd->op != IR_OP_GatherGrad) return sized_only(g, node, why, n);
    int64_t len, nidx;
    gather_grad_rows(g, nd, &len, &nidx);
    if (len >= INT32_MAX || nidx >= INT32_MAX) { // lk_gather_grad_f32 groups the indices by row in int32
        snprintf(why, n, "%s with %lld rows and %lld indices (under 2^31 each on the cuda target)",
                 ir_ops[nd->op].name, (long long)len, (long long)nidx);
        return why;
    }
    return f32_only(g, node, why, n);
}

static int64_t gather_grad_ws(IrGraph *g, int node)
{
    int64_t len, nidx;
    gather_grad_rows(g, &g->nodes[node], &len, &nidx);
    return (2 * len + 2 + 2 * nidx) * 4; /* lk_gather_grad_f32_ws */
}

static void emit_gather(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    const IrValue *idx = VAL(c, n->in[1]);
    int64_t xd[IR_MAX_RANK];
    int grad = n->op == IR_OP_GatherGrad, r;
    if (grad) r = shape_attr(n, xd);
    else r = VAL(c, n->in[0])->rank, memcpy(xd, VAL(c, n->in[0])->dims, (size_t)r * sizeof *xd);
    int axis = ir_norm_axis(ir_attr_int(n, "axis", 0), r);
    char call[640], ws[128];
    cg_declare_outputs(c, node);
    if (grad) {
        cg_ws_expr(c, node, ws, sizeof ws);
        snprintf(call, sizeof call, "lk_ws_check(lk_gather_grad_f32_ws(%lld, %lld), %lld) ||\n        "
                 "lk_gather_grad_f32(STREAM, %s, %s, %s, %d, %lld, %lld, %lld, %lld, %s)",
                 (long long)xd[axis], (long long)ir_value_numel(idx), (long long)c->sel->ws_bytes[node],
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], idx->dtype == IR_I32,
                 (long long)cg_prod(xd, 0, axis), (long long)xd[axis], (long long)ir_value_numel(idx),
                 (long long)cg_prod(xd, axis + 1, r), ws);
    }
    else
        snprintf(call, sizeof call, "lk_gather(STREAM, %s, %s, %s, %d, %lld, %lld, %lld, %lld, %d)", c->var[n->out[0]],
                 c->var[n->in[0]], c->var[n->in[1]], idx->dtype == IR_I32, (long long)cg_prod(xd, 0, axis),
                 (long long)xd[axis], (long long)ir_value_numel(idx), (long long)cg_prod(xd, axis + 1, r),
                 ir_dtype_size(VAL(c, n->out[0])->dtype));
    launch_check(c, node, call);
}

/* ---- normalization ---- */

static const char *check_layernorm(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    int grad = nd->op == IR_OP_LayerNormGrad || nd->op == IR_OP_RMSNormGrad;
    const IrValue *x = &g->values[nd->in[grad]];
    int axis = ir_norm_axis(ir_attr_int(nd, "axis", -1), x->rank);
    int64_t cols = cg_prod(x->dims, axis, x->rank);
    for (int j = grad ? 2 : 1; j < (grad ? 3 : nd->nin); j++)
        if (nd->in[j] >= 0 && ir_value_numel(&g->values[nd->in[j]]) != cols) {
            snprintf(why, n, "%s with a broadcast scale or bias (not yet by the cuda target)", ir_ops[nd->op].name);
            return why;
        }
    return f32_only(g, node, why, n);
}

static int64_t layernorm_grad_ws(IrGraph *g, int node)
{
    const IrNode *nd = &g->nodes[node];
    const IrValue *x = &g->values[nd->in[1]];
    int axis = ir_norm_axis(ir_attr_int(nd, "axis", -1), x->rank);
    int64_t rows = cg_prod(x->dims, 0, axis), cols = cg_prod(x->dims, axis, x->rank);
    return (2 * rows + 2 * ((rows + 127) / 128) * cols) * 8; /* lk_layernorm_grad_f32_ws: NORM_CHUNK 128 */
}

/* LayerNormalization, loom.RMSNorm and their gradients */
static void emit_layernorm(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int grad = n->op == IR_OP_LayerNormGrad || n->op == IR_OP_RMSNormGrad;
    const IrValue *x = VAL(c, n->in[grad]);
    int axis = ir_norm_axis(ir_attr_int(n, "axis", -1), x->rank);
    long long rows = (long long)cg_prod(x->dims, 0, axis), cols = (long long)cg_prod(x->dims, axis, x->rank);
    const char *eps = CG_FLT(ir_attr_float(n, "epsilon", 1e-5f));
    const char *bf16out = VAL(c, n->out[0])->dtype == IR_BF16 ? "_bf16out" : ""; /* ir_autocast_narrow_norms */
    char call[768], ws[64];
    cg_declare_outputs(c, node);
    if (grad) cg_ws_expr(c, node, ws, sizeof ws);
    switch (n->op) {
    case IR_OP_LayerNormGrad:
        snprintf(call, sizeof call, "lk_layernorm_grad_f32(STREAM, %s, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %s, %s)",
                 c->var[n->out[0]], OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]], c->var[n->in[1]],
                 c->var[n->in[2]], IN_OR_NULL(c, n, 3), IN_OR_NULL(c, n, 4), rows, cols, eps, ws);
        break;
    case IR_OP_RMSNormGrad:
        snprintf(call, sizeof call, "lk_rmsnorm_grad_f32(STREAM, %s, %s, %s, %s, %s, %lld, %lld, %s, %s)",
                 c->var[n->out[0]], OUT_OR_NULL(c, n, 1), c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], rows,
                 cols, eps, ws);
        break;
    case IR_OP_RMSNorm:
        snprintf(call, sizeof call, "lk_rmsnorm_f32%s(STREAM, %s, %s, %s, %lld, %lld, %s)", bf16out,
                 c->var[n->out[0]], c->var[n->in[0]], c->var[n->in[1]], rows, cols, eps);
        break;
    default:
        snprintf(call, sizeof call, "lk_layernorm_f32%s(STREAM, %s, %s, %s, %s, %s, %s, %lld, %lld, %s)", bf16out,
                 c->var[n->out[0]], OUT_OR_NULL(c, n, 1), OUT_OR_NULL(c, n, 2), c->var[n->in[0]], c->var[n->in[1]],
                 IN_OR_NULL(c, n, 2), rows, cols, eps);
    }
    launch_check(c, node, call);
}

/* ---- fused attention (lk_attn.cu) ---- */

/* The kernel's parameters of node n: KAttn's, with the mask's strides over
 * Q's leading dims in place of cg_cpu_attn.c's table of offsets. */
static void attn_params(const IrGraph *g, const IrNode *n, LkAttnParams *p)
{
    int grad = n->op == IR_OP_AttentionGrad;
    const IrValue *q = &g->values[n->in[grad]], *v = &g->values[n->in[grad + 2]];
    int r = q->rank, mi = ir_in(n, grad ? 6 : 3);
    memset(p, 0, sizeof *p);
    p->BH = cg_prod(q->dims, 0, r - 2);
    p->T = q->dims[r - 2], p->D = q->dims[r - 1];
    p->S = v->dims[r - 2], p->Dv = v->dims[r - 1];
    p->scale = ir_attr_float(n, "scale", 1.0f);
    p->causal = ir_attr_int(n, "causal", 0) != 0;
    p->nb = r - 2;
    memcpy(p->bdims, q->dims, (size_t)(r - 2) * sizeof *p->bdims);
    if (mi < 0) return;
    const IrValue *m = &g->values[mi];
    p->mask_kind = m->dtype == IR_BOOL ? 2 : 1; /* LK_ATTN_MASK_KEEP, _ADD */
    p->fill = ir_attr_float(n, "fill", 0.0f);
    int64_t st = 1, ms[IR_MAX_RANK];
    for (int d = r - 1; d >= 0; d--) { // the mask's dense strides aligned to the scores, 0 where it broadcasts
        int k = d - (r - m->rank);
        int64_t md = k >= 0 ? m->dims[k] : 1;
        ms[d] = md == 1 ? 0 : st;
        st *= md;
    }
    p->mask_st = ms[r - 2], p->mask_ss = ms[r - 1];
    memcpy(p->bstride, ms, (size_t)(r - 2) * sizeof *p->bstride);
}

static const char *check_attention(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    for (int i = 0; i < nd->nin; i++) {
        IrDType t = nd->in[i] >= 0 ? g->values[nd->in[i]].dtype : IR_F32;
        if (t != IR_F32 && t != IR_BOOL) {
            snprintf(why, n, "%s with a %s input (float32 only)", ir_ops[nd->op].name, ir_dtype_name(t));
            return why;
        }
    }
    LkAttnParams p;
    attn_params(g, nd, &p);
    if (p.nb > 8) return "attention over more than 8 leading dims (not yet by the cuda target)";
    if (nd->op == IR_OP_AttentionGrad && (p.D > 256 || p.Dv > 256)) {
        snprintf(why, n, "%s with heads of %lld/%lld (the cuda kernel takes at most 256)", ir_ops[nd->op].name,
                 (long long)p.D, (long long)p.Dv);
        return why;
    }
    return NULL;
}

static int64_t attention_ws(IrGraph *g, int node)
{
    LkAttnParams p;
    if (g->nodes[node].op != IR_OP_AttentionGrad) return 0;
    attn_params(g, &g->nodes[node], &p);
    return p.BH * p.T * 4; /* lk_attention_grad_f32_ws: Di per row */
}

static void emit_attention(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int grad = n->op == IR_OP_AttentionGrad, mi = ir_in(n, grad ? 6 : 3);
    LkAttnParams p;
    attn_params(c->g, n, &p);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    static const LkAttn attn_%d = {.BH = %lld, .T = %lld, .S = %lld, .D = %lld, .Dv = %lld,\n"
                  "        .scale = %s, .causal = %d, .mask_kind = %d, .fill = %s, .mask_st = %lld, .mask_ss = %lld,\n"
                  "        .nb = %d, .bdims = {", node, (long long)p.BH, (long long)p.T, (long long)p.S,
            (long long)p.D, (long long)p.Dv, CG_FLT(p.scale), p.causal, p.mask_kind, CG_FLT(p.fill),
            (long long)p.mask_st, (long long)p.mask_ss, p.nb);
    for (int k = 0; k < p.nb; k++) fprintf(c->f, k ? ", %lld" : "%lld", (long long)p.bdims[k]);
    fprintf(c->f, "}, .bstride = {");
    for (int k = 0; k < p.nb; k++) fprintf(c->f, k ? ", %lld" : "%lld", (long long)p.bstride[k]);
    fprintf(c->f, "}};\n");
    char call[768], ws[64];
    const char *mask = mi >= 0 ? c->var[mi] : "NULL";
    const char *prec = ir_attr_int(n, "compute", IR_F32) == IR_BF16 ? "bf16" : "f32"; /* ir/autocast.c */
    if (grad) {
        cg_ws_expr(c, node, ws, sizeof ws);
        snprintf(call, sizeof call, "lk_attention_grad_%s(STREAM, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, &attn_%d, %s)",
                 prec, c->var[n->out[0]], c->var[n->out[1]], c->var[n->out[2]], c->var[n->in[0]], c->var[n->in[1]],
                 c->var[n->in[2]], c->var[n->in[3]], c->var[n->in[4]], c->var[n->in[5]], mask, node, ws);
    } else {
        snprintf(call, sizeof call, "lk_attention_%s(STREAM, %s, %s, %s, %s, %s, %s, &attn_%d)", prec, c->var[n->out[0]],
                 c->var[n->out[1]], c->var[n->in[0]], c->var[n->in[1]], c->var[n->in[2]], mask, node);
    }
    launch_check(c, node, call);
}

/* ---- softmax and its gradient ---- */

static void emit_softmax(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int grad = n->op == IR_OP_SoftmaxGrad || n->op == IR_OP_LogSoftmaxGrad;
    int is_log = n->op == IR_OP_LogSoftmax || n->op == IR_OP_LogSoftmaxGrad;
    const IrValue *x = VAL(c, n->in[grad]);
    /* before opset 13 the forward coerces its input to 2-D at axis (cg_cpu_ops.c's reading) */
    int new_form = grad || c->g->opset >= 13;
    int axis = ir_norm_axis(ir_attr_int(n, "axis", new_form ? -1 : 1), x->rank);
    int64_t outer = cg_prod(x->dims, 0, axis);
    int64_t len = new_form ? x->dims[axis] : cg_prod(x->dims, axis, x->rank);
    int64_t inner = new_form ? cg_prod(x->dims, axis + 1, x->rank) : 1;
    char call[512];
    cg_declare_outputs(c, node);
    if (grad)
        snprintf(call, sizeof call, "lk_softmax_grad_f32(STREAM, %s, %s, %s, %lld, %lld, %lld, %d)", c->var[n->out[0]],
                 c->var[n->in[0]], c->var[n->in[1]], (long long)outer, (long long)len, (long long)inner, is_log);
    else
        snprintf(call, sizeof call, "lk_softmax_f32(STREAM, %s, %s, %lld, %lld, %lld, %d)", c->var[n->out[0]],
                 c->var[n->in[0]], (long long)outer, (long long)len, (long long)inner, is_log);
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

/* ---- loom.LinearCrossEntropy: the head's product and its loss, a block of rows at a time ---- */

static const char *check_linear_ce(IrGraph *g, int node, char *why, size_t n)
{
    const IrNode *nd = &g->nodes[node];
    if (g->values[nd->in[0]].dtype != IR_F32 || g->values[nd->in[1]].dtype != IR_F32 ||
        g->values[nd->in[2]].dtype != IR_I64) {
        snprintf(why, n, "%s with %s x and %s targets (float32 and int64 only)", ir_ops[nd->op].name,
                 ir_dtype_name(g->values[nd->in[0]].dtype), ir_dtype_name(g->values[nd->in[2]].dtype));
        return why;
    }
    return NULL;
}

/* N, D, C of node's product (x [N, D]; w [D, C], or [C, D] with trans_w) */
static void linear_ce_dims(const IrGraph *g, const IrNode *n, int64_t *N, int64_t *D, int64_t *C)
{
    const IrValue *x = &g->values[n->in[0]], *w = &g->values[n->in[1]];
    *N = x->dims[0], *D = x->dims[1], *C = w->dims[ir_attr_int(n, "trans_w", 0) ? 0 : 1];
}

static int64_t linear_ce_ws(IrGraph *g, int node)
{
    int64_t N, D, C, r;
    linear_ce_dims(g, &g->nodes[node], &N, &D, &C);
    r = ((int64_t)1 << 23) / (C > 0 ? C : 1); /* lk_lince.cu's block_rows: rows of a block */
    r = r < 1024 ? 1024 : r;
    r = r < N ? r : N;
    int64_t f32 = ((r + 2) * 8 + 255) / 256 * 256 + r * C * 4;
    if (ir_attr_int(&g->nodes[node], "compute", IR_F32) != IR_BF16) return f32;
    /* lk_linear_ce_bf16_ws: Cp classes; the statistics, the logits, g, x_b,
     * W (bf16), and dW's padded accumulator when Cp > C, each at 256 bytes */
#define UP256(n) (((n) + 255) / 256 * 256)
    int64_t Cp = (C + 127) / 128 * 128;
    return ((r + 2) * 8 + 255) / 256 * 256 + UP256(r * Cp * 4) + UP256(r * Cp * 2) + UP256(r * D * 2) +
           UP256(Cp * D * 2) + (Cp > C ? Cp * D * 4 : 0);
#undef UP256
}

static void emit_linear_ce(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int64_t N, D, C;
    char ws[64], call[1024];
    linear_ce_dims(c->g, n, &N, &D, &C);
    cg_ws_expr(c, node, ws, sizeof ws);
    cg_declare_outputs(c, node);
    int bf16 = ir_attr_int(n, "compute", IR_F32) == IR_BF16;
    char need[160];
    if (bf16) snprintf(need, sizeof need, "lk_linear_ce_bf16_ws(%lld, %lld, %lld)", (long long)N, (long long)D, (long long)C);
    else snprintf(need, sizeof need, "lk_linear_ce_f32_ws(%lld, %lld)", (long long)N, (long long)C);
    snprintf(call, sizeof call, "lk_ws_check(%s, %lld) ||\n        "
             "lk_linear_ce_%s(STREAM, %s, %s, %s, %s, %s, %d, %s, %lld, %lld, %lld, %d, %lld, %d, %s)",
             need, (long long)c->sel->ws_bytes[node], bf16 ? "bf16" : "f32", c->var[n->out[0]], c->var[n->out[1]], c->var[n->out[2]], c->var[n->in[0]], c->var[n->in[1]],
             (int)(ir_attr_int(n, "trans_w", 0) != 0), c->var[n->in[2]], (long long)N, (long long)D, (long long)C,
             strcmp(ir_attr_string(n, "reduction", "mean"), "sum") != 0, (long long)ir_attr_int(n, "ignore_index", 0),
             ir_attr_find(n, "ignore_index") != NULL, ws);
    launch_check(c, node, call);
}

/* ---- Einsum: cg_einsum_emit's plan, its copies by lk_copy_nd and its product by cuBLASLt ---- */

static const char *check_einsum(IrGraph *g, int node, char *why, size_t n)
{
    const char *r = cg_cpu_einsum_check(g, node, why, n);
    if (r) return r;
    if (g->values[g->nodes[node].out[0]].dtype != IR_F32) {
        snprintf(why, n, "Einsum of %s (float32 only)", ir_dtype_name(g->values[g->nodes[node].out[0]].dtype));
        return why;
    }
    if (cg_einsum_sums(g, node)) return "a one-operand Einsum that sums labels (use ReduceSum)";
    return NULL;
}

static void cuda_ein_matmul(CgCtx *c, int node, const char *y, const char *a, const char *b, int64_t B, int64_t M,
                            int64_t N, int64_t K, IrDType t)
{
    IR_ASSERT(t == IR_F32);
    char call[768];
    snprintf(call, sizeof call, "lk_gemm_f32(STREAM, %s, %s, %s, NULL, %lld, %lld, %lld, %lld, 0, 0, 1.0f, 0.0f, %lld, "
             "%lld, %lld)", y, a, b, (long long)B, (long long)M, (long long)N, (long long)K, (long long)(M * K),
             (long long)(K * N), (long long)(M * N));
    launch_check(c, node, call);
}

static void emit_einsum(CgCtx *c, int node)
{
    static const CgEinsumOps cuda = {cuda_ein_matmul, NULL};
    cg_einsum_emit(c, node, &cuda);
}

/* ---- DFT (lk_dft.cu) ---- */

/* cuFFT's work area, as lk_dft_f32_ws counts it (the generated program checks
 * the two agree): the zero-padded signal where it is shorter than the
 * transform (256-byte aligned), then, from a 256-byte boundary, the
 * transform's complex data, four times over for a length with a prime
 * factor above 7 (Bluestein's algorithm in cuFFT); none for complex input
 * with onesided set, which the direct sum computes. */
static int64_t dft_ws(IrGraph *g, int node)
{
    CgDft d;
    cg_dft_shape(g, node, &d);
    if (d.cin == 2 && d.onesided) return 0;
    int64_t rest = d.length;
    for (int f = 2; f <= 7; f++)
        while (rest % f == 0) rest /= f;
    int64_t pad = d.n_in < d.length ? (d.outer * d.length * d.inner * d.cin * 4 + 255) / 256 * 256 : 0;
    return pad + 256 + d.outer * d.inner * d.length * 8 * (rest == 1 ? 1 : 4);
}

static void emit_dft(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    char args[256], call[1024], ws[128] = "NULL"; /* none: complex onesided input, the direct sum */
    cg_dft_args(c, node, args, sizeof args);
    if (c->sel->ws_bytes[node] > 0) cg_ws_expr(c, node, ws, sizeof ws);
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "lk_ws_check(lk_dft_f32_ws(%s), %lld) ||\n        lk_dft_f32(STREAM, %s, %s, %s, %s)",
             args, (long long)c->sel->ws_bytes[node], c->var[n->out[0]], c->var[n->in[0]], args, ws);
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
    snprintf(call, sizeof call, "lk_adamw_f32(STREAM, %s, %s, %s, %s, %s, %s, %s, %s, %lld, %s, %s, %s, %s)",
             c->var[n->out[0]], c->var[n->out[1]], c->var[n->out[2]], c->var[n->in[1]], c->var[n->in[4]],
             c->var[n->in[5]], c->var[n->in[6]], IN_OR_NULL(c, n, 7), (long long)ir_value_numel(VAL(c, n->in[0])),
             CG_FLT(ir_attr_float(n, "beta1", 0.9f)), CG_FLT(ir_attr_float(n, "beta2", 0.999f)),
             CG_FLT(ir_attr_float(n, "epsilon", 1e-8f)), CG_FLT(ir_attr_float(n, "weight_decay", 0.01f)));
    launch_check(c, node, call);
}

static void emit_sgd(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    char call[768];
    cg_declare_outputs(c, node);
    snprintf(call, sizeof call, "lk_sgd_f32(STREAM, %s, %s, %s, %s, %s, %s, %lld, %s, %s, %d)", c->var[n->out[0]],
             OUT_OR_NULL(c, n, 1), c->var[n->in[1]], c->var[n->in[2]], c->var[n->in[3]], IN_OR_NULL(c, n, 5),
             (long long)ir_value_numel(VAL(c, n->in[0])), CG_FLT(ir_attr_float(n, "momentum", 0)),
             CG_FLT(ir_attr_float(n, "weight_decay", 0)), ir_attr_int(n, "nesterov", 0) != 0);
    launch_check(c, node, call);
}

/* ---- the table ---- */

#define ELEM_ROW(op) [IR_OP_##op] = {check_elemwise, NULL, emit_elemwise, 0},

/* ---- offload: copies on their own streams (rt_cuda_copy_*), timed as the schedule's simulator times them ---- */

static void host_call(CgCtx *c, int node, const char *call)
{
    fprintf(c->f, "    if (%s)\n        return node_fail(", call);
    cg_cstr(c->f, NODE(c, node)->name);
    fprintf(c->f, ", \"%s\");\n", ir_ops[NODE(c, node)->op].name);
}

/* after the step that writes loom.ToHost h's input: its copy out starts */
static void copy_out(CgCtx *c, int h)
{
    const IrNode *n = NODE(c, h);
    char host[256], dev[256], call[768];
    cg_ptr_expr(c, n->out[0], host, sizeof host);
    cg_ptr_expr(c, n->in[0], dev, sizeof dev);
    fprintf(c->f, "    // offload: %s starts on its way to host memory (copy out %d)\n", c->var[n->in[0]],
            cg_copy_index(c->g, h));
    snprintf(call, sizeof call, "rt_cuda_copy_out(%d, %s, %s, %lld)", cg_copy_index(c->g, h), host, dev,
             (long long)ir_value_bytes(VAL(c, n->in[0])));
    host_call(c, h, call);
}

/* before the first step that reads loom.FromHost h's output */
static void copy_wait(CgCtx *c, int h)
{
    char call[64];
    fprintf(c->f, "    // offload: %s must be back (copy in %d)\n", c->var[NODE(c, h)->out[0]], cg_copy_index(c->g, h));
    snprintf(call, sizeof call, "rt_cuda_copy_in_wait(%d)", cg_copy_index(c->g, h));
    host_call(c, h, call);
}

static void emit_to_host(CgCtx *c, int node)
{
    char call[64];
    cg_declare_outputs(c, node);
    fprintf(c->f, "    // offload: compute waits for the copy out; %s's device bytes are free after this step\n",
            c->var[NODE(c, node)->in[0]]);
    snprintf(call, sizeof call, "rt_cuda_copy_out_wait(%d)", cg_copy_index(c->g, node));
    host_call(c, node, call);
}

static void emit_from_host(CgCtx *c, int node)
{
    const IrNode *n = NODE(c, node);
    int src = c->g->values[n->in[0]].producer;
    char call[768];
    IR_ASSERT(src >= 0 && c->g->nodes[src].op == IR_OP_ToHost);
    cg_declare_outputs(c, node);
    fprintf(c->f, "    // offload: the copy back in starts (its readers wait for it)\n");
    snprintf(call, sizeof call, "rt_cuda_copy_in(%d, %d, %s, %s, %lld)", cg_copy_index(c->g, node),
             cg_copy_index(c->g, src), c->var[n->out[0]], c->var[n->in[0]], (long long)ir_value_bytes(VAL(c, n->out[0])));
    host_call(c, node, call);
}

static const CgOpEmitter cuda_ops[IR_NOPS] = {
    [IR_OP_ToHost] = {NULL, NULL, emit_to_host, 0},
    [IR_OP_FromHost] = {NULL, NULL, emit_from_host, 0},
    [IR_OP_MatMul] = {check_matmul, NULL, emit_matmul, 0},
    [IR_OP_Gemm] = {check_gemm, NULL, emit_gemm, 0},
    CG_ELEMWISE_OPS(ELEM_ROW)
    CG_VIEW_OPS(CG_VIEW_ROW)
    [IR_OP_Transpose] = {sized_only, NULL, cg_emit_transpose, 0},
    [IR_OP_Slice] = {sized_only, NULL, cg_emit_slice, 2 | 4 | 8 | 16},
    [IR_OP_Concat] = {sized_only, NULL, cg_emit_concat, 0},
    [IR_OP_Split] = {sized_only, NULL, cg_emit_split, 2},
    [IR_OP_Expand] = {sized_only, NULL, cg_emit_expand, 2},
    [IR_OP_Pad] = {sized_only, NULL, emit_pad, 2 | 8},
    [IR_OP_SliceGrad] = {f32_only, NULL, emit_slice_grad, 0},
    [IR_OP_Conv] = {check_conv, conv_ws, emit_conv, 0},
    [IR_OP_ConvGradWeight] = {check_conv, conv_ws, emit_conv, 0},
    [IR_OP_ConvTranspose] = {check_conv, conv_ws, emit_conv, 0},
    [IR_OP_BatchNormalization] = {check_batchnorm, NULL, emit_batchnorm, 0},
    /* dx over dy: lk_batchnorm_grad_f32 sums dy before it writes dx */
    [IR_OP_BatchNormGrad] = {check_batchnorm, NULL, emit_batchnorm, 0, 3}, /* dx over dy or x */
    [IR_OP_ActivationGrad] = {cg_cpu_activation_grad_check, NULL, emit_activation_grad, 0, 3}, /* dx over dy or x */
    [IR_OP_GlobalAveragePool] = {f32_only, NULL, emit_global_avg_pool, 0},
    [IR_OP_MaxPool] = {check_maxpool, NULL, emit_maxpool, 0},
    [IR_OP_MaxPoolGrad] = {check_maxpool, maxpool_grad_ws, emit_maxpool, 0},
    [IR_OP_GroupNormalization] = {check_groupnorm, NULL, emit_groupnorm, 0},
    [IR_OP_InstanceNormalization] = {check_groupnorm, NULL, emit_groupnorm, 0},
    [IR_OP_GroupNormGrad] = {check_groupnorm, groupnorm_grad_ws, emit_groupnorm, 0},
    [IR_OP_InstanceNormGrad] = {check_groupnorm, groupnorm_grad_ws, emit_groupnorm, 0},
    [IR_OP_Gather] = {check_index, NULL, emit_gather, 0},
    [IR_OP_GatherGrad] = {check_index, gather_grad_ws, emit_gather, 0},
    [IR_OP_LayerNormalization] = {check_layernorm, NULL, emit_layernorm, 0},
    [IR_OP_LayerNormGrad] = {check_layernorm, layernorm_grad_ws, emit_layernorm, 0},
    [IR_OP_RMSNorm] = {check_layernorm, NULL, emit_layernorm, 0},
    [IR_OP_RMSNormGrad] = {check_layernorm, layernorm_grad_ws, emit_layernorm, 0},
    [IR_OP_Softmax] = {f32_only, NULL, emit_softmax, 0},
    [IR_OP_LogSoftmax] = {f32_only, NULL, emit_softmax, 0},
    [IR_OP_SoftmaxGrad] = {f32_only, NULL, emit_softmax, 0},
    [IR_OP_LogSoftmaxGrad] = {f32_only, NULL, emit_softmax, 0},
    [IR_OP_Attention] = {check_attention, NULL, emit_attention, 0},
    [IR_OP_AttentionGrad] = {check_attention, attention_ws, emit_attention, 0},
    [IR_OP_ReduceSum] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_ReduceMean] = {check_reduce, NULL, emit_reduce, 2},
    [IR_OP_SoftmaxCrossEntropyLoss] = {check_sce, sce_ws, emit_sce, 0},
    [IR_OP_SoftmaxCrossEntropyLossGrad] = {check_sce, sce_ws, emit_sce, 0},
    [IR_OP_LinearCrossEntropy] = {check_linear_ce, linear_ce_ws, emit_linear_ce, 0},
    [IR_OP_DFT] = {cg_cpu_dft_check, dft_ws, emit_dft, 2 | 4},
    [IR_OP_Einsum] = {check_einsum, cg_cpu_einsum_ws, emit_einsum, 0},
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
            "CU_OBJ := $(CU_SRC:.cu=.emu.o) $(if $(LOOM_PREBUILT),,kernels/emu.emu.o kernels/emu_cublaslt.emu.o kernels/emu_cufft.emu.o)\n"
            "LINK := $(CXX)\n"
            "LDLIBS := -lm\n"
            "else\n"
            "CU_OBJ := $(CU_SRC:.cu=.o)\n"
            "LINK := $(NVCC) $(GENCODE)\n"
            "LDLIBS := -L$(CUDA)/lib64 -lcublasLt -lcufft -lcudart -lm\n"
            "endif\n"
            "C_OBJ := main.o\n"
            "\n"
            "%s: $(C_OBJ) $(CU_OBJ) $(LIBS)\n"
            "\t$(LINK) $(C_OBJ) $(CU_OBJ) $(LIBS) $(LDLIBS) -lpthread -o $@\n"
            "\n"
            "%%.o: %%.c\n"
            "\t$(CC) -std=c11 -pthread $(DEFS) -isystem $(CUDA)/include $(CFLAGS) -c $< -o $@\n"
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
                                 cuda_prelude, cuda_makefile, "fused.cuh", copy_expr, copy_out, copy_wait};
