/* The emitter core: selection (can the target emit every node, which
 * elementwise chains fuse, how much workspace each node needs) and model.c,
 * the forward pass as straight-line code in the manner of llm.c: one kernel
 * call or fused loop per step, each under a comment naming the ONNX node, its
 * op and its shapes, over named pointers into the arena and the weights
 * (cg_train.c writes a training program's model.c from the same steps). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cg_impl.h"

/* ---- selection ---- */

/* Whether node n sums gradients: a backward Add or Sum of values that
 * backward nodes write. */
static int is_gradient_sum(const IrGraph *g, const IrNode *n)
{
    if (n->phase != IR_BACKWARD || (n->op != IR_OP_Add && n->op != IR_OP_Sum)) return 0;
    for (int j = 0; j < n->nin; j++) {
        int p = n->in[j] >= 0 ? g->values[n->in[j]].producer : -1;
        if (p < 0 || g->nodes[p].phase != IR_BACKWARD) return 0;
    }
    return 1;
}

/* Whether p's only output can live in a register of its one consumer's loop.
 * An inference BatchNormalization may join its consumer's loop too (a CNN's
 * BatchNormalization and ReLU in one pass, forward and when rerun), though
 * nothing joins it: it opens its group. GELU's ActivationGrad joins and is
 * joined as an elementwise op (cg_ew_act_grad). */
static int fuses_into(IrGraph *g, const IrUses *u, int p, int *consumer)
{
    const IrNode *n = &g->nodes[p];
    if (!(cg_is_elemwise(n) || cg_ew_batchnorm(g, n) || cg_ew_act_grad(g, n)) || n->nout != 1) return 0;
    int v = n->out[0];
    if (g->values[v].is_output || u->start[v + 1] - u->start[v] != 1) return 0;
    int c = u->node[u->start[v]];
    const IrNode *cn = &g->nodes[c];
    if (!cg_is_elemwise(cn) && !cg_ew_act_grad(g, cn)) return 0;
    /* a low-bit storage conversion joins no chain: its copy is in memory
     * across the gap (a narrowing may become a side store of the loop
     * right after it instead: join_narrowings) */
    if (n->phase == IR_LOWBIT || cn->phase == IR_LOWBIT) return 0;
    /* a sum of a value's partial gradients joins no loop either: the remat
     * solver runs it as soon as its last part is written (measure_stages),
     * so that one buffer waits instead of all the parts, where a loop
     * would run it with its consumer, after that stage's recomputation */
    if (is_gradient_sum(g, n)) return 0;
    const IrValue *a = &g->values[v], *b = &g->values[cn->out[0]];
    if (a->rank != b->rank || memcmp(a->dims, b->dims, (size_t)a->rank * sizeof *a->dims)) return 0;
    /* Clip's bounds of opset < 11 are attributes; its bound inputs are scalars anyway */
    /* reruns (a schedule applied) fuse as the nodes they run again do: a
     * rerun whose output lost its other readers (they read the forward
     * copy) could join a longer loop than the schedule's simulator counts,
     * holding every input of the chain at once (ResNet-50: a block's rerun
     * output joining the next block's Add held three 98 MiB inputs) */
    if (n->phase == IR_RECOMPUTE || cn->phase == IR_RECOMPUTE) {
        int fc;
        if (n->phase != IR_RECOMPUTE || cn->phase != IR_RECOMPUTE || n->fwd < 0 || cn->fwd < 0 ||
            !fuses_into(g, u, n->fwd, &fc) || fc != cn->fwd)
            return 0;
    }
    *consumer = c;
    return 1;
}

/* The group ending at `root` as single nodes again. */
static void split_group(const IrGraph *g, int *run_at, int root)
{
    for (int i = 0; i < g->nnodes; i++)
        if (run_at[i] == root) run_at[i] = i;
}

/* Splits the groups that end after update node `up` while holding a node
 * that reads value v (or a view of it), which the update overwrites. */
static void split_readers(const IrGraph *g, const IrUses *u, int *run_at, int up, int v)
{
    for (int k = u->start[v]; k < u->start[v + 1]; k++) {
        int r = u->node[k];
        const IrNode *n = &g->nodes[r];
        if (r < up && run_at[r] > up) split_group(g, run_at, run_at[r]);
        if ((ir_ops[n->op].flags & OPF_VIEW) && n->in[0] == v && n->out[0] >= 0)
            split_readers(g, u, run_at, up, n->out[0]);
    }
}

/* An update runs right after the last node it depends on (ir_update_order
 * places it among nodes, not groups), so a group that would run after it
 * while holding such a node (one writing what the update reads, or reading
 * what it overwrites) is split into single nodes. */
static void split_for_updates(const IrGraph *g, const IrUses *u, int *run_at)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->phase != IR_UPDATE) continue;
        for (int j = 0; j < n->nin; j++) {
            int p = n->in[j] >= 0 ? g->values[n->in[j]].producer : -1;
            if (p >= 0 && p < i && run_at[p] > i) split_group(g, run_at, run_at[p]);
        }
        for (int j = 0; j < n->nout; j++) {
            int a = n->out[j] >= 0 ? g->values[n->out[j]].alias : -1;
            if (a >= 0) split_readers(g, u, run_at, i, a);
        }
    }
}

/* Low-bit storage: which loops can store a bfloat16 copy of an input
 * beside their output (an elementwise group's last node that runs alone or
 * ends its group and does not write over an input: both targets' loops,
 * cg_ew_body), and each narrowing Cast right before such a loop that
 * opt_narrow_joins lets join it becomes one of its side stores. */
static void join_narrowings(const IrGraph *g, CgSelect *sel)
{
    int nn = g->nnodes;
    sel->side_store = ir_xcalloc((size_t)(nn ? nn : 1), 1);
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        sel->side_store[i] = !n->dead && sel->run_at[i] == i && cg_is_elemwise(n) && n->nout == 1 &&
                             n->out[0] >= 0 && !sel->inplace_in[i];
    }
    OptMemRequest req = cg_mem_request(sel);
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->phase != IR_LOWBIT || n->op != IR_OP_Cast || sel->run_at[i] != i || n->nout != 1 ||
            n->out[0] < 0 || g->values[n->out[0]].dtype != IR_BF16 || n->in[0] < 0)
            continue;
        int next = i + 1;
        while (next < nn && g->nodes[next].dead) next++;
        if (next < nn && opt_narrow_joins(g, &req, n->in[0], next)) sel->run_at[i] = next;
    }
}

/* A fused elementwise loop reads element k of each of its leaves (the
 * inputs of its nodes that no node of the group writes) before it writes
 * element k of its output, so the output may take the bytes of any leaf of
 * its dtype and element count that dies there. The mask goes on the node
 * that reads the leaf (OptMemRequest.inplace_in). Not a group that a
 * kernel opens (a convolution and its epilogue: the convolution reads its
 * input around each output element), nor a loop that stores a side copy
 * (join_narrowings). */
static void group_in_place(const IrGraph *g, CgSelect *sel)
{
    int nn = g->nnodes;
    /* per group's last node: it has other nodes; one of them is no
     * elementwise step of the loop (a side store, or a kernel that opens
     * the group: a convolution with its epilogue reads its input around
     * each output element) */
    unsigned char *grouped = ir_xcalloc((size_t)(nn ? nn : 1), 1), *other = ir_xcalloc((size_t)(nn ? nn : 1), 1);
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        int r = sel->run_at[i];
        if (n->dead) continue;
        grouped[r] |= r != i;
        other[r] |= n->phase == IR_LOWBIT || !(cg_is_elemwise(n) || cg_ew_batchnorm(g, n) || cg_ew_act_grad(g, n));
    }
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i], *root = &g->nodes[sel->run_at[i]];
        int r = sel->run_at[i], y = root->nout ? root->out[0] : -1;
        if (n->dead || !grouped[r] || other[r] || y < 0) continue;
        unsigned m = 0;
        for (int j = 0; j < n->nin && j < 32; j++) {
            int v = n->in[j], p = v >= 0 ? g->values[v].producer : -1;
            if (v < 0 || (p >= 0 && sel->run_at[p] == r)) continue; /* written in the group: registers */
            if (g->values[v].dtype == g->values[y].dtype && ir_value_numel(&g->values[v]) == ir_value_numel(&g->values[y]))
                m |= 1u << j;
        }
        sel->inplace_in[i] = m;
    }
    free(grouped);
    free(other);
}

int cg_select(IrGraph *g, const CgTarget *t, CgSelect *sel)
{
    memset(sel, 0, sizeof *sel);
    int nn = g->nnodes, nv = g->nvalues;
    sel->run_at = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *sel->run_at);
    sel->ws_bytes = ir_xcalloc((size_t)(nn ? nn : 1), sizeof *sel->ws_bytes);
    sel->static_only = ir_xcalloc((size_t)(nv ? nv : 1), 1);
    sel->inplace_in = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *sel->inplace_in);
    sel->pack_bytes = ir_xcalloc((size_t)(nn ? nn : 1), sizeof *sel->pack_bytes);
    unsigned char *runtime = ir_xcalloc((size_t)(nv ? nv : 1), 1);
    char why[256];
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        const CgOpEmitter *e = &t->ops[n->op];
        const char *no;
        if (!e->emit) {
            free(runtime);
            return ir_fail(g, i, "%s is not supported by the %s target yet%s", ir_ops[n->op].name, t->name,
                           strcmp(t->name, "cpu") ? " (--target cpu runs every op loom supports)" : "");
        }
        if (e->check && (no = e->check(g, i, why, sizeof why)) != NULL) {
            free(runtime);
            return ir_fail(g, i, "not supported by the %s target: %s", t->name, no);
        }
        if (e->workspace) sel->ws_bytes[i] = e->workspace(g, i);
        if (e->pack && !n->dead) sel->pack_bytes[i] = e->pack(g, i);
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0 && !(j < 32 && (e->static_in >> j & 1))) runtime[n->in[j]] = 1;
    }
    for (int v = 0; v < nv; v++) {
        const IrValue *val = &g->values[v];
        sel->static_only[v] = (val->role == IR_PARAM || val->role == IR_CONST) && !runtime[v] &&
                              !val->is_output;
    }
    free(runtime);
    /* fusion, from the last node back so that a consumer's group is known */
    IrUses u = ir_uses_build(g);
    for (int i = nn - 1; i >= 0; i--) {
        int c;
        sel->run_at[i] = fuses_into(g, &u, i, &c) ? sel->run_at[c] : i;
    }
    if (t->fuse) t->fuse(g, &u, sel->run_at);
    split_for_updates(g, &u, sel->run_at);
    ir_uses_free(&u);
    /* in place, a node that runs alone: over the inputs its target's table
     * names, or an elementwise node over its first input that has the
     * output's dtype and element count (so element k of one is element k
     * of the other: each is read just before it is written); a fused loop's
     * below (group_in_place). Any such input of an elementwise node would
     * do: offering them all lowers each schedule's simulated peak, but the
     * remat search, greedy, then found some plans better and some worse
     * (2026-11-27, before group_in_place: gpt2_tiny at 1/3 +61% against
     * +76%, llama_tiny's offload plan at 1/3 +25.8% against +23.6%), so the
     * first it is. */
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        unsigned m = t->ops[n->op].inplace;
        int ew = !m && cg_is_elemwise(n) && n->nout == 1 && n->out[0] >= 0;
        for (int k = 0; ew && !m && k < n->nin && k < 32; k++) {
            const IrValue *a = n->in[k] >= 0 ? &g->values[n->in[k]] : NULL, *y = &g->values[n->out[0]];
            if (a && a->dtype == y->dtype && ir_value_numel(a) == ir_value_numel(y)) m = 1u << k;
        }
        for (int k = 0; k < n->nin && k < 32; k++)
            if (n->in[k] < 0) m &= ~(1u << k);
        sel->inplace_in[i] = m;
    }
    for (int i = 0; i < nn; i++)
        if (sel->run_at[i] != i) sel->inplace_in[i] = sel->inplace_in[sel->run_at[i]] = 0;
    join_narrowings(g, sel);
    group_in_place(g, sel);
    for (int i = 0; i < nn; i++) {
        if (sel->run_at[i] == i) continue;
        sel->nfused++;
        /* count a group once, at its first fused member */
        int first = 1;
        for (int k = 0; k < i && first; k++) first = sel->run_at[k] != sel->run_at[i];
        sel->ngroups += first;
    }
    return 0;
}

void cg_select_free(CgSelect *sel)
{
    free(sel->run_at);
    free(sel->ws_bytes);
    free(sel->static_only);
    free(sel->inplace_in);
    free(sel->pack_bytes);
    free(sel->side_store);
    memset(sel, 0, sizeof *sel);
}

OptMemRequest cg_mem_request(const CgSelect *sel)
{
    return (OptMemRequest){sel->ws_bytes, sel->run_at, sel->static_only, sel->inplace_in, sel->pack_bytes,
                           sel->side_store};
}

/* ---- C text ---- */

const char *cg_ctype(IrDType t)
{
    switch (t) {
    case IR_F32: return "float";
    case IR_F64: return "double";
    case IR_F16: case IR_BF16: case IR_U16: return "uint16_t";
    case IR_I8: return "int8_t";
    case IR_U8: case IR_BOOL: return "uint8_t";
    case IR_I16: return "int16_t";
    case IR_I32: return "int32_t";
    case IR_U32: return "uint32_t";
    case IR_I64: return "int64_t";
    case IR_U64: return "uint64_t";
    default: return "char";
    }
}

void cg_cstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\' || *p == '?') fprintf(f, "\\%c", *p); /* '?': no trigraphs */
        else if (*p < 0x20 || *p >= 0x7f) fprintf(f, "\\%03o", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* A name inside a // comment: one line, printable. */
static void comment_name(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fputc(*p < 0x20 || *p == 0x7f || *p == '\\' ? '?' : *p, f);
}

const char *cg_dims(const IrValue *v, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < v->rank && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ",%lld" : "%lld", (long long)v->dims[d]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

void cg_ptr_expr(CgCtx *c, int vid, char *buf, size_t n)
{
    const OptSlice *s = &c->plan->values[vid];
    const char *t = cg_ctype(c->g->values[vid].dtype);
    if (s->pool == OPT_POOL_WEIGHTS)
        snprintf(buf, n, "(%s%s *)(weights + WOFF_%s)", c->train ? "" : "const ", t, c->var[vid]);
    else if (s->pool == OPT_POOL_HOST)
        snprintf(buf, n, "(%s *)(model_host + HOFF_%s)", t, c->var[vid]);
    else
        snprintf(buf, n, "(%s *)(arena + OFF_%s)", t, c->var[vid]);
}

void cg_declare_value(CgCtx *c, int vid, const char *note)
{
    char ptr[256], dims[160];
    const IrValue *v = &c->g->values[vid];
    cg_ptr_expr(c, vid, ptr, sizeof ptr);
    fprintf(c->f, "    %s%s *%s = %s; // %s is %s%s\n",
            c->plan->values[vid].pool == OPT_POOL_WEIGHTS && !c->train ? "const " : "", cg_ctype(v->dtype),
            c->var[vid], ptr, c->var[vid], cg_dims(v, dims, sizeof dims), note);
}

void cg_declare_outputs(CgCtx *c, int node)
{
    const IrNode *n = &c->g->nodes[node];
    for (int j = 0; j < n->nout; j++) cg_declare_value(c, n->out[j], "");
}

void cg_ws_expr(CgCtx *c, int node, char *buf, size_t n)
{
    snprintf(buf, n, "(arena + %lld)", (long long)c->plan->ws_offset[node]);
}

void cg_check_call(CgCtx *c, int node, const char *call)
{
    fprintf(c->f, "    if (%s)\n        return rt_fail(\"node %%s (%%s): %%s\", ", call);
    cg_cstr(c->f, c->g->nodes[node].name);
    fprintf(c->f, ", \"%s\", k_error());\n", ir_ops[c->g->nodes[node].op].name);
}

const char *cg_i64_array(CgCtx *c, int node, const char *what, const int64_t *v, int n, char *buf,
                         size_t len)
{
    snprintf(buf, len, "%s_%d", what, node);
    fprintf(c->f, "    static const int64_t %s[%d] = {", buf, n ? n : 1);
    for (int i = 0; i < n; i++) fprintf(c->f, i ? ", %lld" : "%lld", (long long)v[i]);
    fprintf(c->f, n ? "};\n" : "0};\n");
    return buf;
}

/* ---- identifiers ---- */

static const char *const reserved[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "int8_t", "uint8_t", "int16_t", "uint16_t",
    "int32_t", "uint32_t", "int64_t", "uint64_t", "size_t", "exp", "log", "sin", "cos", "tanh",
    "erf", "sqrt", "fabs", "floor", "ceil", "rint", "fmax", "fmin", "log1p", "pow", "fmod",
    "isnan", "arena", "weights", "model_run", "model_prepare", "main", "NULL", "NAN", "INFINITY", "errno",
    "probe", "grad", "model_step", "threadIdx", "blockIdx", "blockDim", "gridDim",
    "warpSize", "stream",
};

/* A C identifier for a value name: "/h.0/attn/MatMul_output_0" -> "h_0_attn_MatMul". */
static char *c_ident(const char *name)
{
    size_t len = strlen(name);
    const char *suffix = "_output_0";
    if (len > strlen(suffix) && !strcmp(name + len - strlen(suffix), suffix)) len -= strlen(suffix);
    if (len > 72) len = 72;
    char *id = ir_xmalloc(len + 8);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = isalnum((unsigned char)name[i]) ? name[i] : '_';
        if (ch == '_' && (k == 0 || id[k - 1] == '_')) continue;
        id[k++] = ch;
    }
    while (k && id[k - 1] == '_') k--;
    id[k] = 0;
    int bad = k == 0 || isdigit((unsigned char)id[0]) || !strncmp(id, "k_", 2) ||
              !strncmp(id, "lm_", 3) || !strncmp(id, "lk_", 3) || !strncmp(id, "ew_", 3) || !strncmp(id, "rt_", 3) || !strncmp(id, "OFF_", 4) ||
              !strncmp(id, "WOFF_", 5) || !strncmp(id, "MODEL_", 6);
    for (size_t r = 0; r < sizeof reserved / sizeof *reserved && !bad; r++) bad = !strcmp(id, reserved[r]);
    if (bad) {
        memmove(id + 2, id, k + 1);
        id[0] = 'v', id[1] = '_';
    }
    return id;
}

/* Identifiers for every value, unique (a clash gets _2, _3, ...). */
static char **name_values(const IrGraph *g)
{
    char **var = ir_xcalloc((size_t)(g->nvalues ? g->nvalues : 1), sizeof *var);
    for (int i = 0; i < g->nvalues; i++) {
        char *id = c_ident(g->values[i].name);
        for (int suffix = 2;; suffix++) {
            int clash = 0;
            for (int j = 0; j < i && !clash; j++) clash = !strcmp(var[j], id);
            if (!clash) break;
            char *base = c_ident(g->values[i].name);
            id = ir_xrealloc(id, strlen(base) + 16);
            snprintf(id, strlen(base) + 16, "%s_%d", base, suffix);
            free(base);
        }
        var[i] = id;
    }
    return var;
}

/* ---- model.c ---- */

static void node_comment(CgCtx *c, int node, const char *lead)
{
    const IrGraph *g = c->g;
    const IrNode *n = &g->nodes[node];
    char shape[16 + IR_MAX_RANK * 21];
    fprintf(c->f, "    // %snode '", lead);
    comment_name(c->f, n->name);
    fprintf(c->f, "' %s: ", ir_ops[n->op].name);
    int first = 1;
    for (int j = 0; j < n->nin; j++) {
        if (n->in[j] < 0) continue;
        fprintf(c->f, "%s%s", first ? "" : ", ", ir_shape_str(&g->values[n->in[j]], shape, sizeof shape));
        first = 0;
    }
    fprintf(c->f, " ->");
    for (int j = 0; j < n->nout; j++)
        fprintf(c->f, "%s %s", j ? "," : "", ir_shape_str(&g->values[n->out[j]], shape, sizeof shape));
    fputc('\n', c->f);
}

void cg_model_prelude(CgCtx *c, const CgTarget *t, const char *what)
{
    FILE *f = c->f;
    fprintf(f, "/* %s of ", what);
    comment_name(f, c->g->path);
    fprintf(f, ", generated by loom for the %s target:\n"
               " * one step per node (a fused loop per group of elementwise nodes), in\n"
               " * topological order, over one arena of activations and the weights blob\n"
               " * (offsets in model.h). */\n", t->name);
    fputs(t->prelude, f);
}

void cg_emit_step(CgCtx *c, const CgTarget *t, int node, int step)
{
    IrGraph *g = c->g;
    FILE *f = c->f;
    const IrNode *n = &g->nodes[node];
    fputc('\n', f);
    int fused = 0, lead = node; // lead: the group's first node, whose emitter writes the step
    for (int k = 0; k < node; k++)
        if (c->sel->run_at[k] == node) {
            if (!fused) lead = k;
            node_comment(c, k, fused++ ? "       " : "fused: ");
        }
    node_comment(c, node, fused ? "       " : "");
    for (int k = 0; k <= node; k++) {
        const IrNode *m = &g->nodes[k];
        if (c->sel->run_at[k] != node || m->phase != IR_LOWBIT || m->nout != 1 || m->out[0] < 0) continue;
        if (g->values[m->out[0]].dtype != IR_BF16)
            fprintf(f, "    // low-bit storage: widened back to float32 for backward (the bfloat16 copy's rounding stays in it)\n");
        else {
            fprintf(f, "    // low-bit storage: '");
            comment_name(f, g->values[m->in[0]].name);
            fprintf(f, "' kept as bfloat16 until backward reads it%s\n",
                    k == node ? " (its float32 copy is free after this)" : ", stored by this loop as it loads it");
        }
    }
    t->ops[g->nodes[lead].op].emit(c, node);
    fprintf(f, "    PROF_STEP(%d, ", step);
    cg_cstr(f, n->name);
    fputs(", \"", f);
    for (int k = 0; k < node; k++)
        if (c->sel->run_at[k] == node) fprintf(f, "%s+", ir_ops[g->nodes[k].op].name);
    fprintf(f, "%s\");\n", ir_ops[n->op].name);
}

static void write_model(CgCtx *c, const CgTarget *t)
{
    IrGraph *g = c->g;
    FILE *f = c->f;
    cg_model_prelude(c, t, "The forward pass");
    fprintf(f, "int model_run(char *arena, const char *weights)\n{\n");
    fprintf(f, "    (void)arena;\n    (void)weights;\n");
    fprintf(f, "    // inputs\n");
    for (int i = 0; i < g->ninputs; i++) cg_declare_value(c, g->inputs[i], "");
    fprintf(f, "    // parameters and constants\n");
    for (int v = 0; v < g->nvalues; v++)
        if (c->plan->values[v].pool == OPT_POOL_WEIGHTS && c->plan->values[v].alias < 0)
            cg_declare_value(c, v, "");
    fprintf(f, "    PROF_START();\n");
    int step = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (c->sel->run_at[i] == i) cg_emit_step(c, t, i, step++);
    fprintf(f, "    return 0;\n}\n");
    if (c->train) return;
    fprintf(f, "\nint model_prepare(char *weights)\n{\n    (void)weights;\n");
    for (int i = 0; i < g->nnodes; i++)
        if (c->plan->pack_offset[i] >= 0) t->ops[g->nodes[i].op].emit_pack(c, i);
    fprintf(f, "    return 0;\n}\n");
}

int cg_emit(IrGraph *g, const CgTarget *t, const CgSelect *sel, const OptMemPlan *plan,
            const CgTrain *train, const char *dir)
{
    CgCtx c = {.g = g, .sel = sel, .plan = plan, .train = train, .t = t};
    c.var = name_values(g);
    int rc = cg_write_program(&c, dir);
    if (rc == 0) {
        size_t n = strlen(dir) + 32;
        char *path = ir_xmalloc(n), *kpath = ir_xmalloc(n);
        snprintf(path, n, "%s/%s", dir, t->model_name);
        if (t->kernel_file) snprintf(kpath, n, "%s/%s", dir, t->kernel_file);
        c.f = fopen(path, "w");
        if (t->kernel_file && c.f && !(c.kf = fopen(kpath, "w"))) {
            rc = ir_fail(g, -1, "cannot write %s: %s", kpath, strerror(errno));
        } else if (!c.f) {
            rc = ir_fail(g, -1, "cannot write %s: %s", path, strerror(errno));
        } else {
            if (c.kf)
                fprintf(c.kf, "/* The generated kernels of %s (fused elementwise groups), written\n"
                              " * by loom; %s runs them. */\n", t->model_name, t->model_name);
            if (train) cg_train_write_model(&c, t);
            else write_model(&c, t);
            if (c.kf && (ferror(c.kf) | (fclose(c.kf) != 0)))
                rc = ir_fail(g, -1, "cannot write %s: %s", kpath, strerror(errno));
        }
        if (c.f && fclose(c.f) != 0) rc = ir_fail(g, -1, "cannot write %s: %s", path, strerror(errno));
        free(path);
        free(kpath);
    }
    for (int i = 0; i < g->nvalues; i++) free(c.var[i]);
    free(c.var);
    return rc;
}
