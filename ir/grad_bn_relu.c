/* The backward of a CNN's BatchNormalization and ReLU reads the
 * normalization's input, not the ReLU's output (ir_fold_bn_relu_grad,
 * train.h).
 *
 * A convolution block's forward is z = Conv(..), y = Relu(BatchNormalization
 * (z)) with the statistics given (inference form, training_mode 0), and y
 * feeds the next convolution. Autodiff's backward reads y twice: the ReLU's
 * gradient (loom.ActivationGrad, whose slope is y > 0) and the next
 * convolution's weight gradient (loom.ConvGradWeight (dy, y)); the
 * BatchNormalization's gradient reads z. So the store-all program keeps both
 * z and y of every block, two tensors of one size, for backward.
 *
 * y is a per-element function of z and four per-channel vectors that are
 * parameters, so backward can make it again as it reads it:
 *   - loom.BatchNormGrad with relu 1 and the forward's bias as input 5 takes
 *     the ReLU's output gradient and masks it where BatchNormalization(z) is
 *     not positive, as ActivationGrad did (the ActivationGrad goes);
 *   - loom.ConvGradWeight (dy, z, scale, bias, mean, var) reads
 *     Relu(BatchNormalization(z)) for its x, computed as its columns are
 *     gathered, and loom.MaxPoolGrad (dy, z, -1, scale, bias, mean, var)
 *     finds the maxima of its windows in it (a ResNet's stem pools its
 *     first ReLU).
 * Then nothing in backward reads y: it dies after the next convolution's
 * forward, and a ResNet's saved activations lose what the ReLUs inside its
 * blocks and its stem write (ResNet-50: 2,573 -> 2,074 MiB saved for
 * backward); a block's output, a ReLU of an Add, stays. The kernels compute BatchNormalization and
 * ReLU with the forward's float operations (kmath.h, k_bn_relu), so on the
 * cpu target every value and gradient is bit for bit the unfolded graph's
 * (tests/fusion/run.sh checks it; --no-fold-bn-relu keeps the graph as
 * autodiff made it).
 *
 * The fold applies to a Relu whose input is a float32 BatchNormalization of
 * that form read by nothing else, when every backward node that reads the
 * Relu's output is its ActivationGrad (whose output only the
 * BatchNormalization's gradient reads), a ConvGradWeight or a MaxPoolGrad
 * (without indices) reading it as x; any other backward reader (a Mul's
 * gradient, say) needs y kept, and that Relu's graph stays as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad.h"
#include "ir.h"
#include "ops.h"
#include "train.h"

#define V(v) (&g->values[v])

static int is_f32(const IrGraph *g, int v) { return v >= 0 && V(v)->dtype == IR_F32; }

/* How many nodes read v (uses u). */
static int nreaders(const IrUses *u, int v) { return u->start[v + 1] - u->start[v]; }

/* Node ids read from u for v: u->node[u->start[v] .. start[v+1]). */
#define READERS(u, v, k) for (int k##_i = (u)->start[v], k; k##_i < (u)->start[(v) + 1] && ((k = (u)->node[k##_i]), 1); k##_i++)

/* The BatchNormalization whose output Relu r reads, when the fold's
 * conditions on the forward side hold; else -1. */
static int folded_bn(const IrGraph *g, const IrUses *u, int r)
{
    const IrNode *R = &g->nodes[r];
    if (R->op != IR_OP_Relu || R->phase != IR_FORWARD || R->nin != 1 || R->nout != 1) return -1;
    int t = R->in[0], y = R->out[0];
    if (t < 0 || y < 0 || V(t)->is_output || V(y)->is_output || nreaders(u, t) != 1) return -1;
    int b = V(t)->producer;
    const IrNode *B = b >= 0 ? &g->nodes[b] : NULL;
    if (!B || B->op != IR_OP_BatchNormalization || B->phase != IR_FORWARD || B->nout != 1 || B->nin != 5 ||
        ir_attr_int(B, "training_mode", 0) || !is_f32(g, t) || !is_f32(g, y))
        return -1;
    for (int j = 0; j < 5; j++)
        if (!is_f32(g, B->in[j]) || (j > 0 && V(B->in[j])->rank != 1)) return -1;
    return V(B->in[0])->rank >= 3 ? b : -1;
}

/* Relu r over BatchNormalization b: its ActivationGrad (set *act) and
 * BatchNormGrad (*bng), and the count of ConvGradWeight and MaxPoolGrad
 * readers; -1 when a backward reader of y is something else. */
static int backward_readers(const IrGraph *g, const IrUses *u, int r, int b, int *act, int *bng)
{
    int y = g->nodes[r].out[0], convs = 0;
    *act = *bng = -1;
    READERS(u, y, k) {
        const IrNode *K = &g->nodes[k];
        if (K->phase == IR_FORWARD) continue;
        if (((K->op == IR_OP_ConvGradWeight && K->nin == 2) ||
             (K->op == IR_OP_MaxPoolGrad && (K->nin == 2 || (K->nin == 3 && K->in[2] < 0)))) &&
            K->in[1] == y && K->in[0] != y) {
            convs++;
            continue;
        }
        if (K->op != IR_OP_ActivationGrad || K->fwd != r || K->in[1] != y || K->in[0] == y ||
            strcmp(ir_attr_string(K, "act", ""), "Relu") || *act >= 0)
            return -1;
        int d = K->out[0];
        if (d < 0 || V(d)->is_output || nreaders(u, d) != 1) return -1;
        int q = u->node[u->start[d]];
        const IrNode *Q = &g->nodes[q];
        if (Q->op != IR_OP_BatchNormGrad || Q->fwd != b || Q->nin != 5 || Q->in[0] != d ||
            Q->in[1] != g->nodes[b].in[0] || ir_attr_int(Q, "training_mode", 0) || ir_attr_int(Q, "relu", 0))
            return -1;
        *act = k, *bng = q;
    }
    return *act >= 0 ? convs : -1;
}

/* node's inputs replaced by the n in `in` */
static void set_inputs(IrGraph *g, int node, int n, const int *in)
{
    IrNode *N = &g->nodes[node];
    if (n > N->nin) N->in = ir_alloc(g, (size_t)n * sizeof(int));
    memcpy(N->in, in, (size_t)n * sizeof(int));
    N->nin = n;
}

/* ---- a ReLU of an Add (a residual block's output) ----
 * Its ActivationGrad reads y, whose sign is the Add's: so it may read the
 * Add again instead, made in backward from the Add's operands, an operand
 * that is an inference BatchNormalization read by nothing else made again
 * from that normalization's input. Codegen fuses the two (or three) nodes
 * into the ActivationGrad's loop, which then reads what the
 * BatchNormalizations' gradients read anyway (the convolution outputs) and
 * the skip, which the next convolution's weight gradient reads anyway; y
 * itself is no longer read for the mask, so a schedule may drop it once the
 * next block's backward is done, and recomputes no 98 MiB tensor (ResNet-50
 * at 56 x 56) to get the mask of the block before. The operations are the
 * forward's (the same BatchNormalization and Add, in float), so the mask,
 * and every gradient, is the unfolded graph's bit for bit. */

/* Whether value v is read by a node that is not a forward one (backward
 * keeps it anyway). */
static int read_in_backward(const IrGraph *g, const IrUses *u, int v)
{
    READERS(u, v, k)
        if (g->nodes[k].phase != IR_FORWARD) return 1;
    return 0;
}

/* The inference BatchNormalization writing p and read only by the Add, whose
 * input backward keeps anyway; else -1. */
static int refoldable_bn(const IrGraph *g, const IrUses *u, int p)
{
    int b = V(p)->producer;
    const IrNode *B = b >= 0 ? &g->nodes[b] : NULL;
    if (!B || B->op != IR_OP_BatchNormalization || B->phase != IR_FORWARD || B->nout != 1 || B->nin != 5 ||
        ir_attr_int(B, "training_mode", 0) || nreaders(u, p) != 1 || V(p)->is_output)
        return -1;
    for (int j = 0; j < 5; j++)
        if (!is_f32(g, B->in[j]) || (j > 0 && V(B->in[j])->rank != 1)) return -1;
    return V(B->in[0])->rank >= 3 && read_in_backward(g, u, B->in[0]) ? b : -1;
}

/* A node like forward node f reading in, writing a new value like f's
 * output, for backward: part of the gradient of forward node r (fwd). */
static int again(IrGraph *g, int f, const int *in, int r)
{
    const IrNode *F = &g->nodes[f];
    char name[512];
    snprintf(name, sizeof name, "bwd/%s", V(F->out[0])->name);
    int v = ir_value_new(g, ir_unique_name(g, name), IR_ACTIVATION);
    ir_value_set_shape(V(v), V(F->out[0])->dtype, V(F->out[0])->rank, V(F->out[0])->dims);
    snprintf(name, sizeof name, "bwd/%s", g->nodes[f].name ? g->nodes[f].name : ir_ops[F->op].name);
    int n = ir_node_new(g, F->op, ir_unique_name(g, name), F->nin, in, 1, &v);
    grad_copy_attrs(g, n, f);
    g->nodes[n].phase = IR_BACKWARD;
    g->nodes[n].fwd = r;
    return n;
}

int ir_fold_add_relu_grad(IrGraph *g)
{
    int nn = g->nnodes, count = 0, rc = 0;
    IrUses u = ir_uses_build(g);
    int *before = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *before); /* per node: the first new node to run before it */
    int *nbefore = ir_xcalloc((size_t)(nn ? nn : 1), sizeof *nbefore);
    for (int r = 0; r < nn && !rc; r++) {
        const IrNode *R = &g->nodes[r];
        if (R->dead || R->op != IR_OP_Relu || R->phase != IR_FORWARD || R->nin != 1 || R->nout != 1) continue;
        int t = R->in[0], y = R->out[0];
        if (t < 0 || y < 0 || !is_f32(g, t) || !is_f32(g, y) || V(t)->is_output || nreaders(&u, t) != 1) continue;
        int a = V(t)->producer;
        const IrNode *A = a >= 0 ? &g->nodes[a] : NULL;
        if (!A || A->op != IR_OP_Add || A->phase != IR_FORWARD || A->nin != 2 || A->nout != 1) continue;
        int act = -1, ok = 1;
        READERS(&u, y, k) {
            const IrNode *K = &g->nodes[k];
            if (K->op == IR_OP_ActivationGrad && K->fwd == r && K->nin == 2 && K->in[1] == y && K->in[0] != y &&
                !strcmp(ir_attr_string(K, "act", ""), "Relu"))
                ok &= act < 0, act = k;
        }
        int bn[2] = {-1, -1};
        for (int j = 0; j < 2 && ok; j++) {
            int p = A->in[j];
            ok = p >= 0 && is_f32(g, p) && V(p)->rank == V(t)->rank &&
                 !memcmp(V(p)->dims, V(t)->dims, (size_t)V(t)->rank * sizeof *V(t)->dims);
            if (ok && (bn[j] = refoldable_bn(g, &u, p)) < 0) ok = read_in_backward(g, &u, p);
        }
        if (!ok || act < 0) continue;
        int first = g->nnodes, in[2] = {A->in[0], A->in[1]}; /* A moves as nodes are added */
        for (int j = 0; j < 2; j++)
            if (bn[j] >= 0) {
                int k = again(g, bn[j], g->nodes[bn[j]].in, r); /* g->nodes moves */
                in[j] = g->nodes[k].out[0];
            }
        int add = again(g, a, in, r);
        for (int k = first; k <= add && !rc; k++)
            if (ir_infer_node(g, k) < 0) rc = -1;
        g->nodes[act].in[1] = g->nodes[add].out[0];
        before[act] = first, nbefore[act] = add - first + 1;
        count++;
    }
    ir_uses_free(&u);
    if (count && !rc) { /* the new nodes right before their ActivationGrads */
        int *order = ir_xmalloc((size_t)g->nnodes * sizeof *order), n = 0;
        for (int i = 0; i < nn; i++) {
            for (int k = 0; k < nbefore[i]; k++) order[n++] = before[i] + k;
            order[n++] = i;
        }
        ir_reorder(g, order, n);
        free(order);
    }
    free(before);
    free(nbefore);
    return rc ? -1 : count;
}

int ir_fold_bn_relu_grad(IrGraph *g)
{
    IrUses u = ir_uses_build(g);
    int folded = 0, rc = 0;
    for (int r = 0; r < g->nnodes && !rc; r++) {
        if (g->nodes[r].dead) continue;
        int b = folded_bn(g, &u, r), act, bng;
        if (b < 0 || backward_readers(g, &u, r, b, &act, &bng) < 0) continue;
        const IrNode *B = &g->nodes[b];
        int z = B->in[0], y = g->nodes[r].out[0];
        const int *p = B->in; /* x, scale, bias, mean, var */
        float eps = ir_attr_float(B, "epsilon", 1e-5f);
        READERS(&u, y, k) {
            IrNode *K = &g->nodes[k];
            if (K->phase == IR_FORWARD || K->op == IR_OP_ActivationGrad) continue;
            if (K->op == IR_OP_MaxPoolGrad) set_inputs(g, k, 7, (int[]){K->in[0], z, -1, p[1], p[2], p[3], p[4]});
            else set_inputs(g, k, 6, (int[]){K->in[0], z, p[1], p[2], p[3], p[4]});
            ir_attr_set_float(g, k, "epsilon", eps);
            if (ir_infer_node(g, k) < 0) rc = -1;
        }
        const IrNode *Q = &g->nodes[bng];
        set_inputs(g, bng, 6, (int[]){g->nodes[act].in[0], Q->in[1], Q->in[2], Q->in[3], Q->in[4], p[2]});
        ir_attr_set_int(g, bng, "relu", 1);
        g->nodes[act].dead = 1;
        if (ir_infer_node(g, bng) < 0) rc = -1;
        folded++;
    }
    ir_uses_free(&u);
    if (folded) ir_compact(g);
    return rc;
}
