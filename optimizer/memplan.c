/* The memory planner: gives every buffer of an inference program a slice of
 * one arena, reusing bytes across time (XLA/TVM buffer assignment).
 *
 * A buffer is an activation, a graph input or a node's workspace. Its live
 * interval is in steps (one per node, in the stored topological order, a fused
 * group running at the step of its last node): from the step that writes it
 * (0 for graph inputs) to the last step that reads it (the end for graph
 * outputs). A view (Reshape, Squeeze, ...) is no buffer of its own: it shares
 * the bytes of the value it views and stretches that buffer's interval to its
 * own last use. Placement is greedy by size: the largest buffer first, each at
 * the lowest aligned offset that overlaps no placed buffer whose interval
 * intersects its own. The lower bound is the most aligned bytes live at one
 * step; no placement can beat it, and the report compares the two.
 * Parameters and constants are not planned over time: they are laid out one
 * after the other in the weights blob, followed by the optimizer state of a
 * training graph (moments, momentum buffers, learning rate, step), which must
 * persist from one step to the next. An optimizer update writes in place:
 * its output "next/X" (IrValue.alias = X) is given X's bytes. So may a node
 * whose kernel can write over an input (OptMemRequest.inplace_in: a loss
 * gradient over the logits, an elementwise op over an operand of its
 * output's dtype and size) when that input dies there: the arena is placed
 * with those outputs merged into their inputs and without, and the smaller
 * placement is kept. */
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"

const char *opt_pool_name(OptPool p)
{
    static const char *const names[] = {"none", "arena", "weights", "host"};
    return (unsigned)p < sizeof names / sizeof *names ? names[p] : "?";
}

static int64_t align_up(int64_t n) { return (n + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN; }

typedef struct {
    int64_t size; /* aligned */
    int first, last;
    int64_t *offset; /* where the placement goes: a value's or a workspace's offset */
} Buffer;

static int by_size_desc(const void *pa, const void *pb)
{
    const Buffer *a = pa, *b = pb;
    if (a->size != b->size) return a->size > b->size ? -1 : 1;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return a->last < b->last ? -1 : a->last > b->last;
}

/* Greedy placement of bufs (sorted largest first); returns the arena size.
 * The placed buffers are kept sorted by offset (equal offsets in the order
 * placed), as compact records walked in order: each new buffer skips those
 * not live at the same time and takes the first gap that fits. */
typedef struct {
    int64_t off, end;
    int first, last;
} Spot;

static int64_t place(Buffer *bufs, int n)
{
    Spot *placed = ir_xmalloc((size_t)(n ? n : 1) * sizeof *placed);
    int64_t arena = 0;
    for (int i = 0; i < n; i++) {
        Buffer *b = &bufs[i];
        int64_t at = 0;
        int first = b->first, last = b->last;
        for (int j = 0; j < i; j++) {
            const Spot *p = &placed[j];
            if (p->first > last || first > p->last) continue;
            if (p->off >= at + b->size) break; /* the gap before it fits */
            if (p->end > at) at = p->end;
        }
        *b->offset = at;
        if (at + b->size > arena) arena = at + b->size;
        /* insert by offset (after equals: stable) */
        int lo = 0, hi = i;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (placed[mid].off <= at) lo = mid + 1;
            else hi = mid;
        }
        memmove(placed + lo + 1, placed + lo, (size_t)(i - lo) * sizeof *placed);
        placed[lo] = (Spot){at, at + b->size, first, last};
    }
    free(placed);
    return arena;
}

/* The most bytes live at any step of nsteps. */
static int64_t lower_bound(const Buffer *bufs, int n, int nsteps)
{
    int64_t *delta = ir_xcalloc((size_t)nsteps + 1, sizeof *delta), cur = 0, best = 0;
    for (int i = 0; i < n; i++) {
        delta[bufs[i].first] += bufs[i].size;
        delta[bufs[i].last + 1] -= bufs[i].size;
    }
    for (int s = 0; s < nsteps; s++) {
        cur += delta[s];
        if (cur > best) best = cur;
    }
    free(delta);
    return best;
}

/* In place (inplace[i] != 0): the first output of node i's step (its
 * group's last node) takes the bytes of the first input of i's mask whose
 * buffer that step reads last, the two intervals merged (of a group, the
 * first such input of its nodes in order). Returns how many outputs were
 * merged. */
static int merge_inplace(const IrGraph *g, const unsigned *inplace, const int *run_at, OptSlice *vals)
{
    int merged = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        int step = run_at ? run_at[i] : i; /* a fused node's group: its last node writes */
        const IrNode *o = &g->nodes[step];
        if (n->dead || !inplace[i] || o->nout < 1 || o->out[0] < 0) continue;
        OptSlice *s = &vals[o->out[0]];
        for (int j = 0; j < n->nin && j < 32 && s->pool == OPT_POOL_ARENA && s->alias < 0; j++) {
            if (!(inplace[i] >> j & 1) || n->in[j] < 0) continue;
            int root = n->in[j];
            while (vals[root].alias >= 0) root = vals[root].alias;
            OptSlice *r = &vals[root];
            if (r->pool != OPT_POOL_ARENA || g->values[root].producer < 0 || r->last != step ||
                align_up(s->size) > align_up(r->size))
                continue;
            s->alias = root;
            if (s->last > r->last) r->last = s->last;
            merged++;
        }
    }
    for (int i = 0; merged && i < g->nvalues; i++) /* views of such an output: to the root */
        while (vals[i].alias >= 0 && vals[vals[i].alias].alias >= 0) vals[i].alias = vals[vals[i].alias].alias;
    return merged;
}

/* Places the arena roots of vals and the workspaces (ws_offset): the arena
 * and the lower bound. */
static void place_all(const IrGraph *g, const int64_t *ws, const int *run_at, OptSlice *vals, int64_t *ws_offset,
                      int64_t *arena, int64_t *lb)
{
    int nv = g->nvalues, nn = g->nnodes;
    Buffer *bufs = ir_xmalloc((size_t)(nv + nn + 1) * sizeof *bufs);
    int nb = 0;
    for (int i = 0; i < nv; i++) {
        OptSlice *s = &vals[i];
        if (s->pool != OPT_POOL_ARENA || s->alias >= 0) continue;
        bufs[nb++] = (Buffer){align_up(s->size), s->first, s->last, &s->offset};
    }
    for (int i = 0; i < nn; i++) {
        ws_offset[i] = -1;
        if (ws && ws[i] > 0 && !g->nodes[i].dead)
            bufs[nb++] = (Buffer){align_up(ws[i]), run_at ? run_at[i] : i, run_at ? run_at[i] : i, &ws_offset[i]};
    }
    qsort(bufs, (size_t)nb, sizeof *bufs, by_size_desc);
    *arena = place(bufs, nb);
    *lb = lower_bound(bufs, nb, nn ? nn : 1);
    free(bufs);
}

int opt_memplan(IrGraph *g, const OptMemRequest *req, OptMemPlan *plan)
{
    memset(plan, 0, sizeof *plan);
    int nv = g->nvalues, nn = g->nnodes, nsteps = nn ? nn : 1;
    plan->nvalues = nv;
    plan->nnodes = nn;
    plan->values = ir_xcalloc((size_t)(nv ? nv : 1), sizeof *plan->values);
    plan->ws_offset = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *plan->ws_offset);
    const int64_t *ws = req ? req->ws_bytes : NULL;
    const int *run_at = req ? req->run_at : NULL;
    const unsigned char *static_only = req ? req->static_only : NULL;
#define STEP(node) (run_at ? run_at[node] : (node))

    /* pools, aliases and the step that writes each value */
    for (int i = 0; i < nv; i++) {
        IrValue *v = &g->values[i];
        OptSlice *s = &plan->values[i];
        s->size = ir_value_bytes(v);
        s->alias = -1;
        s->offset = -1;
        if (static_only && static_only[i]) {
            s->pool = OPT_POOL_NONE;
        } else if (v->role == IR_PARAM || v->role == IR_CONST || v->role == IR_OPT_STATE) {
            s->pool = OPT_POOL_WEIGHTS;
            s->offset = plan->weights_bytes;
            plan->weights_bytes += align_up(s->size);
        } else if (v->alias >= 0) {
            s->pool = OPT_POOL_NONE; /* an in-place update's output: resolved below */
        } else if (v->producer >= 0 && g->nodes[v->producer].op == IR_OP_ToHost) {
            s->pool = OPT_POOL_HOST; /* no reuse: offload copies are few and large */
            s->offset = plan->host_bytes;
            plan->host_bytes += align_up(s->size);
        } else if (v->producer < 0) {
            s->pool = OPT_POOL_ARENA; /* a graph input */
            s->first = s->last = 0;
        } else {
            /* a fused node's output is in registers, but a low-bit
             * narrowing's that joined a loop (opt_narrow_joins) is stored */
            s->pool = STEP(v->producer) == v->producer || g->nodes[v->producer].phase == IR_LOWBIT ? OPT_POOL_ARENA
                                                                                                  : OPT_POOL_NONE;
            s->first = s->last = STEP(v->producer);
        }
    }
    /* prepared weights (req->pack_bytes): after every value of the pool */
    plan->pack_offset = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *plan->pack_offset);
    for (int i = 0; i < nn; i++) {
        plan->pack_offset[i] = -1;
        if (!req || !req->pack_bytes || req->pack_bytes[i] <= 0 || g->nodes[i].dead) continue;
        plan->pack_offset[i] = plan->weights_bytes;
        plan->pack_bytes += align_up(req->pack_bytes[i]);
        plan->weights_bytes += align_up(req->pack_bytes[i]);
    }
    /* in-place updates: "next/X" is X's bytes (X persists: weights pool) */
    for (int i = 0; i < nv; i++) {
        int root = g->values[i].alias;
        if (root < 0) continue;
        while (g->values[root].alias >= 0) root = g->values[root].alias;
        OptSlice *s = &plan->values[i], *r = &plan->values[root];
        IR_ASSERT(r->pool == OPT_POOL_WEIGHTS && s->size == r->size);
        s->alias = root;
        s->pool = r->pool;
        s->offset = r->offset;
    }
    /* views, in topological order so that a chain resolves to its root */
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || !(ir_ops[n->op].flags & OPF_VIEW)) continue;
        IR_ASSERT(n->nout == 1 && n->in[0] >= 0);
        int root = n->in[0];
        if (plan->values[root].alias >= 0) root = plan->values[root].alias;
        OptSlice *s = &plan->values[n->out[0]], *r = &plan->values[root];
        IR_ASSERT(r->pool != OPT_POOL_NONE);
        s->alias = root;
        s->pool = r->pool;
        s->offset = r->offset;
    }
    /* live intervals of the roots */
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        for (int j = 0; j < n->nin; j++) {
            if (n->in[j] < 0) continue;
            OptSlice *s = &plan->values[n->in[j]];
            if (s->alias >= 0) s = &plan->values[s->alias];
            if (STEP(i) > s->last) s->last = STEP(i);
        }
    }
    for (int i = 0; i < g->noutputs; i++) {
        OptSlice *s = &plan->values[g->outputs[i]];
        if (s->alias >= 0) s = &plan->values[s->alias];
        s->last = nsteps - 1;
    }

#undef STEP
    /* in place (req->inplace_in) or not: merging an output into its input's
     * buffer lowers the bytes live at once, but the longer buffer can place
     * worse (vit_tiny's inference arena: 153 KiB merged, 138 not), so both
     * are placed and the smaller arena is kept; the lower bound is the
     * merged one, the lower of the two */
    const unsigned *inplace = req ? req->inplace_in : NULL;
    int64_t lb;
    place_all(g, ws, run_at, plan->values, plan->ws_offset, &plan->arena_bytes, &plan->lower_bound);
    if (inplace) {
        OptSlice *merged = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *merged);
        int64_t *ws_offset = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *ws_offset), arena;
        memcpy(merged, plan->values, (size_t)nv * sizeof *merged);
        if (merge_inplace(g, inplace, run_at, merged)) {
            place_all(g, ws, run_at, merged, ws_offset, &arena, &lb);
            if (lb < plan->lower_bound) plan->lower_bound = lb;
            if (arena <= plan->arena_bytes) {
                OptSlice *t = plan->values;
                int64_t *tw = plan->ws_offset;
                plan->values = merged, plan->ws_offset = ws_offset, plan->arena_bytes = arena;
                merged = t, ws_offset = tw;
            }
        }
        free(merged);
        free(ws_offset);
    }
    /* views take their root's offset now that roots are placed */
    for (int i = 0; i < nv; i++) {
        OptSlice *s = &plan->values[i];
        if (s->alias >= 0) {
            const OptSlice *r = &plan->values[s->alias];
            s->offset = r->offset;
            s->first = r->first;
            s->last = r->last;
        }
    }
    return 0;
}

void opt_memplan_free(OptMemPlan *plan)
{
    free(plan->values);
    free(plan->ws_offset);
    free(plan->pack_offset);
    memset(plan, 0, sizeof *plan);
}
