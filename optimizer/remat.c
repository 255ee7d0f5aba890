/* Rematerialization under a byte budget (optimizer.h), in the style of rotor.
 *
 * Stages. The forward nodes, in their stored order, are cut after the
 * positions where the bytes crossing the cut (forward values written before
 * it and read after it) are a local minimum; when there are more than
 * MAX_STAGES such cuts, some are dropped (two ways, two partitions, whose
 * schedules are pooled with those of a third partition at the blocks, where
 * a single value crosses, and with the baselines': see cut_stages and
 * opt_remat_new). Stage k's state a_k
 * is what crosses the cut after it; a value that crosses several cuts (a
 * skip connection) is in each of those states. Backward nodes belong to the
 * stage of the forward node they differentiate, moved earlier when they read
 * a gradient written by an earlier-run (lower) stage's backward, so that
 * running the stages' backward blocks from the last stage down keeps
 * every read after its write; a sum of partial gradients moves the other
 * way, to the stage that writes its last part, when every other reader of
 * a part runs before it there.
 *
 * The dynamic program (Beaumont, Eyraud-Dubois, Herrmann, Joly, Shilova,
 * "Optimal checkpointing for heterogeneous chains", 2019). C(s, t, m) is the
 * least time to run the backward of stages s..t given the input state a_{s-1}
 * and the gradient of a_t, with m bytes besides a_{s-1}:
 *   C(s, s, m)  = uf_s + ub_s                     when stage s fits in m;
 *   C(s, t, m)  = min( uf_s + C(s+1, t, m - xb_s - x_s) + ub_s,     keep all of s
 *                      min over s < s' <= t of                      checkpoint a_{s'-1}
 *                        uf_s + ... + uf_{s'-1} + C(s', t, m - x_{s'-1}) + C(s, s'-1, m) )
 * with the memory each step needs (stored activations xb, states x,
 * gradients d, the transient peak inside a stage's forward ovf and backward
 * ovb) checked against m. Memory is counted in slots (1/SLOTS of the
 * store-all peak), rounded up.
 *
 * The model is an estimate (it counts a skip value once per state it
 * crosses, and transients stage by stage), so the table is not trusted for
 * memory: for a budget, solve extracts the table's schedule at every memory
 * level, prunes its dead reruns, simulates each on the real graph, and
 * keeps the fastest that fits. The store-all schedule is always a
 * candidate. The table decides per stage; the candidates no other beats in
 * both time and peak are then refined per value (remat_refine.c: a copy
 * live at the peak dropped and its producer run again before its next
 * read), and each refinement step joins the candidates. A larger budget
 * admits a superset of candidates, so it never gets a slower schedule.
 *
 * Priced tables (opt_remat_new_link, a link whose copies run beside
 * compute). The table above keeps every checkpoint on the device, so
 * offload can only trim the peak of a schedule chosen without it: a
 * checkpoint of the early stages that waits through the rest of the step
 * stays on the device while the later stages are recomputed for want of
 * its bytes. A priced table has two more choices, in the style of pofo
 * (Beaumont et al., 2021):
 *   checkpoint a_{s'-1} with a_{s-1} on the host while s'..t run:
 *     fw + C(s', t, m - x_{s'-1} + x_{s-1}) + C(s, s'-1, m) + pen(x_{s-1});
 *   keep option o of stage s with what it keeps on the host while
 *     s+1..t run: uf_s + C(s+1, t, m - x_s) + ub_s + rc + pen(xb).
 * A copy of b bytes takes tau = b / bw each way; pen(b) is price * tau plus
 * whatever of tau the part running meanwhile cannot hide (its forward for
 * the copy out, the rest for the copy back), and the copy back needs its
 * bytes while the last stages of that part run (those whose backward spans
 * tau), which must fit m. The copies share one link, which the table does
 * not model: the price (LINK_PRICE) stands for that, and cli/budget.c
 * recomputes where the copies get stuck. The table's schedules are not
 * candidates of the table above (without their copies they peak above
 * their level): opt_remat_priced gives them, as seeds that opt_offload
 * puts copies in (cli/budget.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"

#include <lpsolve/lp_lib.h>

enum { MAX_STAGES = 64, SLOTS = 400, MLEVELS = 2 * SLOTS + 1, MAX_OPTS = 8, REFINE_STEPS = 64, REFINE_SEEDS = 16,
       REFINE_WORK = 4000000 };
/* The price of a second of link time in the priced table. The table
 * prices each copy, not their sum on the one link, so a low price buys
 * plans whose copies the link cannot all carry; cli/budget.c repairs those
 * (recomputing where the copies get stuck), which a high price leaves
 * little to do. ResNet-50 at 1/5 of store-all with bfloat16 storage
 * (h100-sxm): 0 -> +21.9%, 0.05 -> +19.0% (GPT-2 124M's solve 3.8 s),
 * 0.1 -> +19.1% (0.8 s), 0.2 -> +22.8%; 0.1 with more prices beside it
 * (0.25, 0.6; up to six from 0.1 to 1) gave the same plans at 32, 64 and
 * 128 GB/s. Without the repairs 0.15 was best (+23.1%). */
#define LINK_PRICE 0.1

/* A way to run a stage forward keeping part of what its backward reads: the
 * rest is recomputed just before the backward (from the stage's input and
 * what is kept). Option 0 keeps everything. */
typedef struct {
    int64_t xb;        /* bytes kept for the backward */
    double rc;         /* seconds of recomputation before the backward */
    int *fwd, nfwd;    /* the forward nodes a rerun of the stage runs */
    int *pre, npre;    /* the nodes rerun before the backward */
} Option;

typedef struct {
    int first, last;   /* forward positions [first, last] */
    double uf, ub;     /* seconds: forward, backward */
    int64_t x, xb, xs, d, ovf, ovb; /* bytes (see the file comment) */
    Option opt[MAX_OPTS];
    int nopt;
} Stage;

struct OptRemat {
    const IrGraph *g;
    const double *node_s;
    const OptMemRequest *req;
    int nfwd, *fwd;         /* forward nodes in order */
    int *pos, *lastfwd;     /* per node: its forward position; per value: the last forward position reading it */
    int rule;               /* how the current stages were cut (cut_stages) */
    int stages;             /* the most stages a table had */
    int *stage_of;          /* per node: its stage (0-based), -1 for update nodes */
    int L;
    Stage *st;
    int64_t slot;
    float *cost;            /* [s][t][m], s <= t, INFINITY when infeasible */
    short *choice;          /* -o (0 included): keep option o of s; s'+1 (>= 2): checkpoint before stage s' */
    int *root;              /* per value: the value whose bytes it is (views) */
    int *xbstage;           /* per value: the stage whose backward alone reads it (xb), or -1 */
    unsigned char *xsroot;  /* per value: in its stage's state and read by its backward */
    unsigned char *needed;  /* scratch per value */
    /* per stage: the backward nodes, and the forward nodes a rerun runs
     * (keeping only the state, or everything backward reads), in order */
    int **bwd, *nbwd, **rerun, *nrerun;
    unsigned char *bread;   /* per value: read by a backward node */
    int *runs;              /* scratch per node */
    int64_t storeall_peak, min_peak;
    /* per stage of the current partition: its shape (stage_shape), and how
     * many stages of all partitions took an identical earlier stage's options */
    int64_t **shape;
    int *nshape, copied;
    /* the distinct schedules of the table's memory levels, simulated */
    int ncand, capcand;
    int ntable;              /* candidates [0, ntable) are the tables' and the baselines' */
    OptRefine *refine;
    OptSchedule last_given;  /* the last schedule add_candidate was given */
    OptSchedule *cand;
    OptSimResult *cand_sim;
    /* the priced tables' schedules (none without a link that overlaps) */
    double link_bw;          /* bytes per second each way; 0: no priced tables */
    int npriced, cappriced;
    OptSchedule *priced;
    OptSimResult *priced_sim;
    int64_t *priced_level;   /* the memory level each was extracted at, in bytes */
};

#define IDX(r, s, t, m) ((((size_t)(s) * (r)->L + (size_t)(t)) * MLEVELS) + (size_t)(m))

static int64_t slots_of(const OptRemat *r, int64_t bytes) { return (bytes + r->slot - 1) / r->slot; }

/* The bytes a view-free value v owns: 0 for views (their root owns them). */
static int is_view_out(const IrGraph *g, int v)
{
    int p = g->values[v].producer;
    return p >= 0 && (ir_ops[g->nodes[p].op].flags & OPF_VIEW) && g->nodes[p].out[0] == v;
}

/* ---- stages ---- */

static void cut_stages(OptRemat *r, const int *pos, const int *lastfwd, int rule)
{
    const IrGraph *g = r->g;
    int F = r->nfwd;
    int64_t *cb = ir_xcalloc((size_t)F + 1, sizeof *cb);
    for (int v = 0; v < g->nvalues; v++) {
        int p = g->values[v].producer;
        if (p < 0 || pos[p] < 0 || opt_persistent(g, r->req, v) || is_view_out(g, v)) continue;
        if (lastfwd[v] > pos[p]) {
            cb[pos[p]] += ir_value_bytes(&g->values[v]);
            cb[lastfwd[v]] -= ir_value_bytes(&g->values[v]);
        }
    }
    for (int p = 1; p < F; p++) cb[p] += cb[p - 1];
    /* candidate cuts: after position p, 0 <= p < F-1, at local minima of the
     * crossing bytes */
    int *cut = ir_xmalloc((size_t)(F ? F : 1) * sizeof *cut), nc = 0;
    if (rule == 2) {
        /* the baselines' blocks: where exactly one value crosses (a residual
         * stream, a block's input), however many */
        int *ncross = ir_xcalloc((size_t)F + 1, sizeof *ncross);
        for (int v = 0; v < g->nvalues; v++) {
            int p = g->values[v].producer;
            if (p < 0 || pos[p] < 0 || opt_persistent(g, r->req, v) || is_view_out(g, v) || lastfwd[v] <= pos[p]) continue;
            ncross[pos[p]]++;
            ncross[lastfwd[v]]--;
        }
        for (int p = 1; p < F; p++) ncross[p] += ncross[p - 1];
        for (int p = 0; p + 1 < F; p++)
            if (ncross[p] == 1) cut[nc++] = p;
        free(ncross);
    } else {
        for (int p = 0; p + 1 < F; p++)
            if ((p == 0 || cb[p] <= cb[p - 1]) && cb[p] <= cb[p + 1]) cut[nc++] = p;
    }
    /* too many (rules 0 and 1): rule 0 merges the neighbouring stages that write the fewest
     * bytes together (drops the cut between them), so that the stages where
     * most memory is written stay fine-grained; rule 1 drops the cuts that
     * the most bytes cross, keeping the cheapest checkpoints */
    int64_t *wsum = ir_xcalloc((size_t)F + 1, sizeof *wsum);
    for (int p = 0; p < F; p++) {
        const IrNode *n = &g->nodes[r->fwd[p]];
        int64_t w = 0;
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] >= 0 && !opt_persistent(g, r->req, n->out[j]) && !is_view_out(g, n->out[j]))
                w += ir_value_bytes(&g->values[n->out[j]]);
        wsum[p + 1] = wsum[p] + w;
    }
    while (rule != 2 && nc > MAX_STAGES - 1) {
        int best = 0;
        int64_t bw = INT64_MAX;
        for (int i = 0; i < nc; i++) {
            int lo = i ? cut[i - 1] + 1 : 0, hi = i + 1 < nc ? cut[i + 1] : F - 1;
            int64_t w = rule == 0 ? wsum[hi + 1] - wsum[lo] : -cb[cut[i]];
            if (w < bw || (w == bw && (rule == 0 ? cb[cut[i]] > cb[cut[best]] : hi - lo < bw))) bw = w, best = i;
        }
        memmove(cut + best, cut + best + 1, (size_t)(nc - best - 1) * sizeof *cut);
        nc--;
    }
    free(wsum);
    r->L = nc + 1;
    r->st = ir_xcalloc((size_t)r->L, sizeof *r->st);
    for (int k = 0; k < r->L; k++) {
        r->st[k].first = k ? cut[k - 1] + 1 : 0;
        r->st[k].last = k < nc ? cut[k] : F - 1;
        r->st[k].x = k < nc ? cb[cut[k]] : 0;
    }
    free(cut);
    free(cb);
}

/* Per stage: times, stored bytes, gradients and transients. */
static void measure_stages(OptRemat *r, const int *pos, const int *lastfwd)
{
    const IrGraph *g = r->g;
    const OptMemRequest *req = r->req;
    int nn = g->nnodes, nv = g->nvalues;
    /* stage of each node: forward by position, backward by the rule above */
    r->stage_of = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *r->stage_of);
    IrUses u = ir_uses_build(g);
    for (int i = 0, k = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        r->stage_of[i] = -1;
        if (n->dead || n->phase == IR_UPDATE) continue;
        if (pos[i] >= 0) {
            while (pos[i] > r->st[k].last) k++;
            r->stage_of[i] = k;
            continue;
        }
        int s = n->fwd >= 0 && r->stage_of[n->fwd] >= 0 ? r->stage_of[n->fwd] : r->L - 1;
        /* a node that reads only gradients and writes no more bytes than
         * they weigh, a sum of a value's partial gradients: as soon as the
         * last of them is written (the latest stage of their writers), so
         * that one buffer waits for the rest of the backward instead of all
         * of them, when every other reader of a part runs before it there
         * (so the parts die at it) */
        int only_grads = 1, early = INT32_MAX;
        int64_t in_bytes = 0, out_bytes = 0;
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j], p = v >= 0 ? g->values[v].producer : -1;
            if (p >= 0 && pos[p] < 0 && r->stage_of[p] >= 0 && r->stage_of[p] < s) s = r->stage_of[p];
            if (p < 0 || pos[p] >= 0 || r->stage_of[p] < 0 || g->values[v].is_output) only_grads = 0;
            else if (r->stage_of[p] < early) early = r->stage_of[p];
            if (v >= 0) in_bytes += ir_value_bytes(&g->values[v]);
        }
        for (int j = 0; j < n->nin && only_grads; j++)
            for (int q = u.start[n->in[j]]; q < u.start[n->in[j] + 1]; q++) {
                int rd = u.node[q];
                if (rd != i && (rd > i || pos[rd] >= 0 || r->stage_of[rd] < early)) only_grads = 0;
            }
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] >= 0) out_bytes += ir_value_bytes(&g->values[n->out[j]]);
        if (only_grads && early != INT32_MAX && early > s && out_bytes <= in_bytes) s = early;
        r->stage_of[i] = s;
    }
    ir_uses_free(&u);
    for (int i = 0; i < nn; i++) {
        if (g->nodes[i].dead || r->stage_of[i] < 0) continue;
        double t = r->node_s ? r->node_s[i] : 0;
        if (pos[i] >= 0) r->st[r->stage_of[i]].uf += t;
        else r->st[r->stage_of[i]].ub += t;
    }
    /* the stage of the last backward read of each value, and whether a
     * backward node reads it at all */
    int *bmin = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *bmin), *bmax = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *bmax);
    for (int v = 0; v < nv; v++) bmin[v] = INT32_MAX, bmax[v] = -1;
    int *root = r->root = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *root);
    r->xbstage = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *r->xbstage);
    r->xsroot = ir_xcalloc((size_t)(nv ? nv : 1), 1);
    for (int v = 0; v < nv; v++) root[v] = v, r->xbstage[v] = -1;
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        if (!n->dead && (ir_ops[n->op].flags & OPF_VIEW) && n->in[0] >= 0) root[n->out[0]] = root[n->in[0]];
    }
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        int s = r->stage_of[i] < 0 ? -1 : r->stage_of[i];
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j] >= 0 ? root[n->in[j]] : -1;
            if (v < 0 || pos[i] >= 0) continue;
            if (s < 0) s = 0; /* an update reads it: live to the end */
            if (s < bmin[v]) bmin[v] = s;
            if (s > bmax[v]) bmax[v] = s;
        }
    }
    /* what stays live across stages whatever the schedule (graph inputs and
     * outputs, parameters' gradients, values read by backward blocks far from
     * their stage) is not modelled: the table's memory levels are relative,
     * and the simulator counts those bytes for every candidate */
    for (int v = 0; v < nv; v++) {
        if (root[v] != v || opt_persistent(g, req, v)) continue;
        int p = g->values[v].producer;
        if (p < 0 || pos[p] < 0 || (g->values[v].is_output && g->values[v].role != IR_LOSS)) continue;
        int64_t b = (ir_value_bytes(&g->values[v]) + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN;
        int k = r->stage_of[p];
        Stage *S = &r->st[k];
        int crosses = lastfwd[v] > S->last;
        if (crosses && ir_dtype_is_float(g->values[v].dtype)) S->d += b;
        if (bmin[v] == k && bmax[v] == k) {
            if (crosses) S->xs += b, r->xsroot[v] = 1;
            else S->xb += b, r->xbstage[v] = k;
        }
    }
    /* transients: the most bytes of a stage's own temporaries live at once,
     * with the workspace of the node running */
    for (int k = 0; k < r->L; k++) {
        Stage *S = &r->st[k];
        for (int phase = 0; phase < 2; phase++) {
            int64_t live = 0, peak = 0;
            for (int i = 0; i < nn; i++) {
                const IrNode *n = &g->nodes[i];
                if (n->dead || r->stage_of[i] != k || (pos[i] >= 0) != (phase == 0)) continue;
                int64_t ws = req && req->ws_bytes ? req->ws_bytes[i] : 0;
                for (int j = 0; j < n->nout; j++) {
                    int v = n->out[j];
                    if (v < 0 || root[v] != v || opt_persistent(g, req, v)) continue;
                    if (req && req->run_at && req->run_at[i] != i) continue;
                    live += ir_value_bytes(&g->values[v]);
                }
                if (live + ws > peak) peak = live + ws;
                /* values whose last read is this node die here (approximately:
                 * a temporary read once) */
                for (int j = 0; j < n->nin; j++) {
                    int v = n->in[j] >= 0 ? root[n->in[j]] : -1;
                    int p = v >= 0 ? g->values[v].producer : -1;
                    if (p < 0 || r->stage_of[p] != k || (pos[p] >= 0) != (phase == 0) || opt_persistent(g, req, v))
                        continue;
                    live -= ir_value_bytes(&g->values[v]);
                    if (live < 0) live = 0;
                }
            }
            if (phase == 0) S->ovf = peak;
            else S->ovb = peak;
        }
    }
    free(bmin);
    free(bmax);
}

/* ---- the dynamic program ---- */

/* The most memory (slots) any stage from `from` on needs with its input,
 * up to the one whose backward, with theirs, spans tau seconds: what a
 * copy back over that time must fit beside. */
static int64_t tail_need(const OptRemat *r, const int64_t *ball, const int64_t *x, int from, int to, double tau)
{
    int64_t need = 0;
    double t = 0;
    for (int k = from; k <= to; k++) {
        if (ball[k] + x[k] > need) need = ball[k] + x[k];
        t += r->st[k].ub;
        if (t >= tau) break;
    }
    return need;
}

/* The copies' penalty (the file comment): price * tau, and what of tau the
 * part running meanwhile (tf seconds of forward, tr in all) cannot hide. */
static double copy_pen(double price, double tau, double tf, double tr)
{
    return price * tau + (tau > tf ? tau - tf : 0) + (tau > tr - tf ? tau - (tr - tf) : 0);
}

/* The table; price < 0: without the priced choices. */
static void solve_table(OptRemat *r, double price)
{
    int L = r->L;
    size_t n = (size_t)L * L * MLEVELS;
    r->cost = ir_xmalloc(n * sizeof *r->cost);
    r->choice = ir_xcalloc(n, sizeof *r->choice);
    for (size_t i = 0; i < n; i++) r->cost[i] = INFINITY;
    /* in slots */
    int64_t *x = ir_xmalloc((size_t)(L + 1) * sizeof *x), *xb = ir_xmalloc((size_t)L * sizeof *xb),
            *d = ir_xmalloc((size_t)(L + 1) * sizeof *d),
            *ball = ir_xmalloc((size_t)L * sizeof *ball), *fck = ir_xmalloc((size_t)L * sizeof *fck);
    /* x[k+1] is the state after stage k (x[0]: the graph inputs, live throughout) */
    x[0] = 0;
    d[0] = 0;
    for (int k = 0; k < L; k++) {
        const Stage *S = &r->st[k];
        x[k + 1] = slots_of(r, S->x);
        d[k + 1] = slots_of(r, S->d);
        xb[k] = slots_of(r, S->xb + S->xs);
    }
    for (int k = 0; k < L; k++) {
        const Stage *S = &r->st[k];
        ball[k] = xb[k] + d[k + 1] + d[k] + slots_of(r, S->ovb);        /* B of k */
        fck[k] = x[k + 1] + slots_of(r, S->ovf);                        /* F of k, besides its input */
    }
    double *ufsum = ir_xmalloc((size_t)(L + 1) * sizeof *ufsum);
    ufsum[0] = 0;
    for (int k = 0; k < L; k++) ufsum[k + 1] = ufsum[k] + r->st[k].uf;
    /* by chain length, so that every sub-chain is solved before it is read;
     * for one (s, t), option by option over all memory levels (contiguous) */
    for (int len = 0; len < L; len++) {
        for (int s = 0; s + len < L; s++) {
            int t = s + len;
            int64_t dt = d[t + 1];
            float *best = &r->cost[IDX(r, s, t, 0)];
            short *ch = &r->choice[IDX(r, s, t, 0)];
            /* keep (part of) what stage s's backward reads: F s, the rest of
             * the chain, the recomputation of the rest, B s */
            const Stage *S = &r->st[s];
            for (int o = 0; o < S->nopt; o++) {
                int64_t xbo = slots_of(r, S->opt[o].xb + S->xs);
                int64_t f = dt + xbo + x[s + 1] + slots_of(r, S->ovf);
                int64_t need = f > ball[s] ? f : ball[s];
                double keep = S->uf + S->ub + S->opt[o].rc;
                int64_t drop = xbo + x[s + 1];
                for (int64_t m = need; m < MLEVELS; m++) {
                    double c = keep;
                    if (s < t) c = m - drop >= 0 ? c + r->cost[IDX(r, s + 1, t, m - drop)] : INFINITY;
                    if (c < best[m]) best[m] = (float)c, ch[m] = (short)-o;
                }
                /* priced: what option o keeps on the host while s+1..t run
                 * (choice -(o + MAX_OPTS)) */
                int64_t away = slots_of(r, S->opt[o].xb) - 1; /* never more than it frees */
                if (price < 0 || s == t || away <= 0) continue;
                double tau = (double)S->opt[o].xb / r->link_bw, tf = ufsum[t + 1] - ufsum[s + 1];
                int64_t lo = tail_need(r, ball, x, s + 1, t, tau) + xbo;
                for (int64_t m = lo > need ? lo : need; m < MLEVELS; m++) {
                    int64_t mr = m - drop + away < MLEVELS ? m - drop + away : MLEVELS - 1;
                    if (mr < 0) continue;
                    double tr = r->cost[IDX(r, s + 1, t, mr)], c = keep + tr + copy_pen(price, tau, tf, tr);
                    if (c < best[m]) best[m] = (float)c, ch[m] = (short)(-o - MAX_OPTS);
                }
            }
            /* checkpoint the state before stage s2: forward s..s2-1 keeping a_{s-1},
             * then the chain s2..t, then s..s2-1 again */
            int64_t fmem = 0;
            for (int s2 = s + 1; s2 <= t; s2++) {
                int64_t fk = fck[s2 - 1] + (s2 - 1 > s ? x[s2 - 1] : 0);
                if (fk > fmem) fmem = fk;
                int64_t lo = dt + fmem > x[s2] ? dt + fmem : x[s2];
                double fw = ufsum[s2] - ufsum[s];
                const float *right = &r->cost[IDX(r, s2, t, 0)], *left = &r->cost[IDX(r, s, s2 - 1, 0)];
                for (int64_t m = lo; m < MLEVELS; m++) {
                    double c = fw + right[m - x[s2]] + left[m];
                    if (c < best[m]) best[m] = (float)c, ch[m] = (short)(s2 + 1);
                }
                /* priced: a_{s-1} on the host while s2..t run (choice s2 + 1 + L) */
                if (price < 0 || s == 0) continue;
                double tau = (double)r->st[s - 1].x / r->link_bw, tf = ufsum[t + 1] - ufsum[s2];
                int64_t lo2 = tail_need(r, ball, x, s2, t, tau);
                for (int64_t m = lo > lo2 ? lo : lo2; m < MLEVELS; m++) {
                    int64_t mr = m - x[s2] + x[s] < MLEVELS ? m - x[s2] + x[s] : MLEVELS - 1;
                    if (mr < 0) continue;
                    double tr = right[mr], c = fw + tr + left[m] + copy_pen(price, tau, tf, tr);
                    if (c < best[m]) best[m] = (float)c, ch[m] = (short)(s2 + 1 + L);
                }
            }
        }
    }
    free(x), free(xb), free(d), free(ball), free(fck), free(ufsum);
}

/* ---- schedules from the table ---- */

/* The nodes of stage k that write the values marked in r->needed, and those
 * that write their inputs in turn, back to the stage's input or to a value
 * `avail` marks (NULL: none); in stored order. Consumes r->needed. */
static int *closure(OptRemat *r, int k, const unsigned char *avail, int *count)
{
    const IrGraph *g = r->g;
    const Stage *S = &r->st[k];
    int *list = ir_xmalloc((size_t)(S->last - S->first + 1) * sizeof *list), n = 0;
    for (int p = S->last; p >= S->first; p--) {
        const IrNode *node = &g->nodes[r->fwd[p]];
        int need = 0;
        for (int j = 0; j < node->nout; j++) need |= node->out[j] >= 0 && r->needed[node->out[j]];
        if (!need) continue;
        for (int j = 0; j < node->nin; j++)
            if (node->in[j] >= 0 && !(avail && avail[node->in[j]])) r->needed[node->in[j]] = 1;
        list[n++] = r->fwd[p];
    }
    for (int a = 0, b = n - 1; a < b; a++, b--) {
        int t = list[a];
        list[a] = list[b];
        list[b] = t;
    }
    memset(r->needed, 0, (size_t)g->nvalues);
    *count = n;
    return list;
}

/* Marks in r->needed the values of stage k that later forward stages read. */
static void need_state(OptRemat *r, int k)
{
    const IrGraph *g = r->g;
    for (int p = r->st[k].last + 1; p < r->nfwd; p++) {
        const IrNode *n = &g->nodes[r->fwd[p]];
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0) r->needed[n->in[j]] = 1;
    }
}

static int by_key(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] > y[1]) - (x[1] < y[1]);
}

/* The option of stage k that keeps the stored values `kept` marks: the bytes
 * kept, and the nodes (closure) that recompute the rest before the backward
 * and that a rerun of the stage runs. */
static Option make_option(OptRemat *r, int k, const unsigned char *kept, unsigned char *avail)
{
    const IrGraph *g = r->g;
    const Stage *S = &r->st[k];
    Option o;
    memset(&o, 0, sizeof o);
    /* what is at hand before the backward: the kept values, the state it reads, views of them */
    for (int p = S->first; p <= S->last; p++) {
        const IrNode *n = &g->nodes[r->fwd[p]];
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0) continue;
            int rt = r->root[v];
            avail[v] = kept[rt] || r->xsroot[rt];
            if (kept[rt] && v == rt) o.xb += (ir_value_bytes(&g->values[v]) + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN;
        }
    }
    for (int p = S->first; p <= S->last; p++) {
        const IrNode *n = &g->nodes[r->fwd[p]];
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v >= 0 && r->bread[v] && r->xbstage[r->root[v]] == k && !avail[v]) r->needed[v] = 1;
        }
    }
    o.pre = closure(r, k, avail, &o.npre);
    for (int i = 0; i < o.npre; i++) o.rc += r->node_s ? r->node_s[o.pre[i]] : 0;
    need_state(r, k);
    for (int p = S->first; p <= S->last; p++) {
        const IrNode *n = &g->nodes[r->fwd[p]];
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v >= 0 && r->bread[v] && avail[v]) r->needed[v] = 1;
        }
    }
    o.fwd = closure(r, k, NULL, &o.nfwd);
    return o;
}

/* The stored values to keep that recompute least within `cap` bytes, by a
 * small integer program (lp_solve): binaries keep_v per stored value and
 * rec_j per node of the stage; every value the backward reads is kept or its
 * node reruns; a rerun node's inputs from the stage are kept, state, or
 * rerun too; minimize the rerun seconds. Marks the choice in kept; 0, or -1
 * when lp_solve finds nothing. */
static int ilp_keep(OptRemat *r, int k, const int *vals, int nvals, int64_t cap, unsigned char *kept)
{
    const IrGraph *g = r->g;
    const Stage *S = &r->st[k];
    int nsn = S->last - S->first + 1, ncol = nvals + nsn;
    int *col_of = ir_xmalloc((size_t)(g->nvalues ? g->nvalues : 1) * sizeof *col_of);
    for (int i = 0; i < nvals; i++) col_of[vals[i]] = i + 1; /* only read for stored roots */
    lprec *lp = make_lp(0, ncol);
    int rc = -1;
    if (!lp) goto out;
    set_verbose(lp, NEUTRAL);
    set_add_rowmode(lp, TRUE);
    double val[3];
    int col[3];
    /* bytes kept */
    double *bytes = ir_xmalloc((size_t)nvals * sizeof *bytes);
    int *cols = ir_xmalloc((size_t)nvals * sizeof *cols);
    for (int i = 0; i < nvals; i++) bytes[i] = (double)ir_value_bytes(&g->values[vals[i]]), cols[i] = i + 1;
    add_constraintex(lp, nvals, bytes, cols, LE, (double)cap);
#define IN_STAGE(v) (g->values[v].producer >= 0 && r->pos[g->values[v].producer] >= S->first && \
                     r->pos[g->values[v].producer] <= S->last)
#define REC(node) (nvals + 1 + r->pos[node] - S->first)
    for (int p = S->first; p <= S->last; p++) {
        const IrNode *n = &g->nodes[r->fwd[p]];
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0 || !r->bread[v] || r->xbstage[r->root[v]] != k) continue;
            /* read by the backward: kept or recomputed */
            col[0] = col_of[r->root[v]], val[0] = 1, col[1] = REC(r->fwd[p]), val[1] = 1;
            add_constraintex(lp, 2, val, col, GE, 1);
        }
        for (int j = 0; j < n->nin; j++) {
            int u = n->in[j];
            if (u < 0 || !IN_STAGE(u) || r->xsroot[r->root[u]]) continue;
            /* a rerun needs its input: kept, or its node rerun */
            int m = 0;
            col[m] = REC(r->fwd[p]), val[m++] = 1;
            col[m] = REC(g->values[u].producer), val[m++] = -1;
            if (r->xbstage[r->root[u]] == k) col[m] = col_of[r->root[u]], val[m++] = -1;
            add_constraintex(lp, m, val, col, LE, 0);
        }
    }
#undef REC
#undef IN_STAGE
    set_add_rowmode(lp, FALSE);
    double *obj = ir_xcalloc((size_t)ncol + 1, sizeof *obj), total = 0;
    for (int i = 0; i < nvals; i++) total += bytes[i];
    for (int p = S->first; p <= S->last; p++) obj[nvals + 1 + p - S->first] = r->node_s ? r->node_s[r->fwd[p]] : 1;
    for (int i = 0; i < nvals; i++) obj[i + 1] = 1e-9 * bytes[i] / (total + 1); /* among equals, fewer bytes */
    set_obj_fn(lp, obj);
    set_minim(lp);
    for (int c = 1; c <= ncol; c++) set_binary(lp, c, TRUE);
    set_timeout(lp, 2);
    int st = solve(lp);
    if (st == OPTIMAL || st == SUBOPTIMAL) {
        REAL *x;
        get_ptr_variables(lp, &x);
        for (int i = 0; i < nvals; i++) kept[vals[i]] = x[i] > 0.5;
        rc = 0;
    }
    free(obj);
    free(bytes);
    free(cols);
    delete_lp(lp);
out:
    free(col_of);
    return rc;
}

/* The options of stage k. With at most ENUM_VALS stored values, every subset
 * kept; else the stored values dropped one more at a time in order of
 * recomputation seconds per byte, cheapest first (elementwise results before
 * products), and, with at most ILP_VALS, the integer program's best at caps
 * of 1/8 .. 7/8 of the stored bytes (bigger programs took lp_solve seconds
 * each on ResNet-50's merged stages). The options no other beats in both bytes and seconds are
 * kept, at most MAX_OPTS (evenly spread); option 0 keeps everything. */
enum { ENUM_VALS = 8, ILP_VALS = 24 };
static void solve_options(OptRemat *r, int k)
{
    const IrGraph *g = r->g;
    Stage *S = &r->st[k];
    int nv = g->nvalues;
    /* the stored roots of the stage: (seconds per byte, value) */
    int nvals = 0;
    double *key = ir_xmalloc((size_t)(S->last - S->first + 2) * 4 * sizeof *key);
    for (int p = S->first; p <= S->last; p++) {
        const IrNode *n = &g->nodes[r->fwd[p]];
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0 || r->xbstage[v] != k || nvals >= 2 * (S->last - S->first + 1)) continue;
            double b = (double)ir_value_bytes(&g->values[v]) + 1;
            key[2 * nvals] = (r->node_s ? r->node_s[r->fwd[p]] : 0) / b;
            key[2 * nvals + 1] = v;
            nvals++;
        }
    }
    qsort(key, (size_t)nvals, 2 * sizeof *key, by_key);
    int *vals = ir_xmalloc((size_t)(nvals ? nvals : 1) * sizeof *vals);
    int64_t total = 0;
    for (int i = 0; i < nvals; i++) vals[i] = (int)key[2 * i + 1], total += ir_value_bytes(&g->values[vals[i]]);
    unsigned char *kept = ir_xcalloc((size_t)(nv ? nv : 1), 1), *avail = ir_xcalloc((size_t)(nv ? nv : 1), 1);
    int cap = nvals <= ENUM_VALS ? (1 << nvals) : nvals + 1 + 7, nall = 0;
    Option *all = ir_xmalloc((size_t)cap * sizeof *all);
    if (nvals <= ENUM_VALS) {
        for (int mask = (1 << nvals) - 1; mask >= 0; mask--) { /* all kept first */
            for (int i = 0; i < nvals; i++) kept[vals[i]] = mask >> i & 1;
            all[nall++] = make_option(r, k, kept, avail);
        }
    } else {
        for (int drop = 0; drop <= nvals; drop++) {
            for (int i = 0; i < nvals; i++) kept[vals[i]] = i >= drop;
            all[nall++] = make_option(r, k, kept, avail);
        }
        for (int e = 1; e < 8 && nvals <= ILP_VALS; e++) {
            memset(kept, 0, (size_t)nv);
            if (ilp_keep(r, k, vals, nvals, total * e / 8, kept) == 0) all[nall++] = make_option(r, k, kept, avail);
        }
    }
    /* the undominated ones, most bytes first (option 0 keeps everything) */
    int nkeep = 0;
    for (int i = 0; i < nall; i++) {
        int dominated = 0;
        for (int j = 0; j < nall && !dominated; j++)
            dominated = j != i && all[j].xb <= all[i].xb && all[j].rc <= all[i].rc &&
                        (all[j].xb < all[i].xb || all[j].rc < all[i].rc || j < i);
        if (i == 0 || !dominated) all[nkeep++] = all[i];
        else free(all[i].pre), free(all[i].fwd);
    }
    /* most bytes first */
    for (int i = 2; i < nkeep; i++)
        for (int j = i; j > 1 && all[j].xb > all[j - 1].xb; j--) {
            Option t = all[j];
            all[j] = all[j - 1];
            all[j - 1] = t;
        }
    for (int i = 0; i < MAX_OPTS && i < nkeep; i++) {
        int at = nkeep <= MAX_OPTS ? i : (int)((int64_t)i * (nkeep - 1) / (MAX_OPTS - 1));
        S->opt[S->nopt++] = all[at];
        all[at].pre = all[at].fwd = NULL;
    }
    for (int i = 0; i < nkeep; i++) free(all[i].pre), free(all[i].fwd);
    free(all);
    free(vals);
    free(kept);
    free(avail);
    free(key);
}

/* The shape of stage k, all its options depend on: per forward node its op,
 * seconds and where each input comes from (a node of the stage, by offset and
 * output, or the n-th distinct value from outside it); per output its bytes,
 * the value it views, whether the backward reads it, whether it is stored
 * for this stage's backward or in its state, and whether a later stage reads
 * it. Two stages of one shape (a transformer's blocks) have the same options
 * up to the node ids, so the second copies the first's (stage_options). */
static int64_t *stage_shape(OptRemat *r, int k, const int *lastdirect, int *len)
{
    const IrGraph *g = r->g;
    const Stage *S = &r->st[k];
    int cap = 64, n = 0, next = 0;
    int64_t *out = ir_xmalloc((size_t)cap * sizeof *out);
    int *ext = NULL;
#define PUT(x) (n == cap ? (out = ir_xrealloc(out, (size_t)(cap *= 2) * sizeof *out)) : out, out[n++] = (x))
    /* where a value comes from, relative to the stage */
#define FROM(v, code)                                                                     \
    do {                                                                                  \
        int pr_ = (v) >= 0 ? g->values[v].producer : -1, e_;                              \
        if ((v) < 0) (code) = -1;                                                         \
        else if (pr_ >= 0 && r->pos[pr_] >= S->first && r->pos[pr_] <= S->last) {        \
            int o_ = 0;                                                                   \
            while (g->nodes[pr_].out[o_] != (v)) o_++;                                   \
            (code) = ((int64_t)1 << 40) | (int64_t)(r->pos[pr_] - S->first) << 8 | o_;    \
        } else {                                                                          \
            for (e_ = 0; e_ < next && ext[e_] != (v); e_++) {}                            \
            if (e_ == next) ext = ir_xrealloc(ext, (size_t)(next + 1) * sizeof *ext), ext[next++] = (v); \
            (code) = ((int64_t)2 << 40) | e_;                                             \
        }                                                                                 \
    } while (0)
    for (int p = S->first; p <= S->last; p++) {
        const IrNode *nd = &g->nodes[r->fwd[p]];
        int64_t t, code;
        double sec = r->node_s ? r->node_s[r->fwd[p]] : 0;
        memcpy(&t, &sec, sizeof t);
        PUT(nd->op), PUT(nd->nin), PUT(nd->nout), PUT(t);
        for (int j = 0; j < nd->nin; j++) {
            FROM(nd->in[j], code);
            PUT(code);
        }
        for (int j = 0; j < nd->nout; j++) {
            int v = nd->out[j];
            if (v < 0) {
                PUT(-1);
                continue;
            }
            FROM(r->root[v], code);
            PUT(ir_value_bytes(&g->values[v])), PUT(code);
            PUT(r->bread[v] | (r->xbstage[v] == k) << 1 | (r->xbstage[r->root[v]] == k) << 2 |
                r->xsroot[r->root[v]] << 3 | (lastdirect[v] > S->last) << 4 | (r->root[v] == v) << 5);
        }
    }
#undef FROM
#undef PUT
    free(ext);
    *len = n;
    return out;
}

/* The options of stage k: copied from an earlier stage of the same shape
 * (node ids moved by the distance between the two), else solved. */
static void stage_options(OptRemat *r, int k, const int *lastdirect)
{
    r->shape[k] = stage_shape(r, k, lastdirect, &r->nshape[k]);
    for (int k0 = 0; k0 < k; k0++) {
        if (r->nshape[k0] != r->nshape[k] || memcmp(r->shape[k0], r->shape[k], (size_t)r->nshape[k] * sizeof **r->shape))
            continue;
        const Stage *S0 = &r->st[k0];
        Stage *S = &r->st[k];
        int shift = S->first - S0->first;
        for (int o = 0; o < S0->nopt; o++) {
            Option c = S0->opt[o];
            c.fwd = ir_xmalloc((size_t)(c.nfwd ? c.nfwd : 1) * sizeof *c.fwd);
            c.pre = ir_xmalloc((size_t)(c.npre ? c.npre : 1) * sizeof *c.pre);
            for (int i = 0; i < c.nfwd; i++) c.fwd[i] = r->fwd[r->pos[S0->opt[o].fwd[i]] + shift];
            for (int i = 0; i < c.npre; i++) c.pre[i] = r->fwd[r->pos[S0->opt[o].pre[i]] + shift];
            S->opt[S->nopt++] = c;
        }
        r->copied++;
        return;
    }
    solve_options(r, k);
}

/* Stage k forward: its first run runs every node; a rerun runs what the
 * state needs (o < 0) or what option o keeps as well. */
static void run_forward(OptRemat *r, OptSchedule *s, int k, int o)
{
    const Stage *S = &r->st[k];
    if (!r->runs[r->fwd[S->first]]) {
        for (int p = S->first; p <= S->last; p++) {
            opt_schedule_push(s, r->fwd[p], OPT_RUN);
            r->runs[r->fwd[p]]++;
        }
        return;
    }
    const int *list = o < 0 ? r->rerun[k] : S->opt[o].fwd;
    int n = o < 0 ? r->nrerun[k] : S->opt[o].nfwd;
    for (int i = 0; i < n; i++) opt_schedule_push(s, list[i], OPT_RERUN);
}

/* Stage k backward under option o: what it dropped, then the backward nodes. */
static void run_backward(OptRemat *r, OptSchedule *s, int k, int o)
{
    const Option *opt = &r->st[k].opt[o];
    for (int i = 0; i < opt->npre; i++) opt_schedule_push(s, opt->pre[i], OPT_RERUN);
    for (int i = 0; i < r->nbwd[k]; i++) opt_schedule_push(s, r->bwd[k][i], OPT_RUN);
}


static void extract(OptRemat *r, OptSchedule *s, int a, int b, int m)
{
    if (a > b) return;
    short ch = r->choice[IDX(r, a, b, m)];
    if (ch <= 0) {
        int o = -ch, host = o >= MAX_OPTS; /* priced: what it keeps on the host meanwhile */
        if (host) o -= MAX_OPTS;
        run_forward(r, s, a, o);
        if (a < b) {
            int64_t rest = m - slots_of(r, r->st[a].opt[o].xb + r->st[a].xs) - slots_of(r, r->st[a].x);
            if (host) rest += slots_of(r, r->st[a].opt[o].xb) - 1;
            extract(r, s, a + 1, b, (int)(rest < MLEVELS ? rest : MLEVELS - 1));
        }
        run_backward(r, s, a, o);
        return;
    }
    int host = ch > r->L, s2 = host ? ch - 1 - r->L : ch - 1; /* priced: a_{a-1} on the host meanwhile */
    for (int k = a; k < s2; k++) run_forward(r, s, k, -1);
    int64_t mr = m - slots_of(r, r->st[s2 - 1].x) + (host ? slots_of(r, r->st[a - 1].x) : 0);
    extract(r, s, s2, b, (int)(mr < MLEVELS ? mr : MLEVELS - 1));
    extract(r, s, a, s2 - 1, m);
}

/* The table's schedule for memory level m (which must be feasible). */
static void schedule_at(OptRemat *r, int m, OptSchedule *s)
{
    memset(s, 0, sizeof *s);
    memset(r->runs, 0, (size_t)r->g->nnodes * sizeof *r->runs);
    extract(r, s, 0, r->L - 1, m);
    for (int i = 0; i < r->g->nnodes; i++)
        if (!r->g->nodes[i].dead && r->g->nodes[i].phase == IR_UPDATE) opt_schedule_push(s, i, OPT_RUN);
    opt_schedule_place_updates(r->g, s);
}

static void build_partition(OptRemat *r, int rule);

/* Adds schedule s (taken) with its simulation to the candidates; with
 * `frontier`, only when no candidate is as fast and peaks as low (a
 * refinement step others beat could never be chosen). */
static void add_simulated(OptRemat *r, OptSchedule *s, const OptSimResult *sim, int frontier)
{
    for (int i = 0; i < r->ncand && frontier; i++) {
        const OptSimResult *c = &r->cand_sim[i];
        if (c->step_s <= sim->step_s && c->peak_bytes <= sim->peak_bytes) {
            opt_schedule_free(s);
            return;
        }
    }
    if (r->ncand == r->capcand) {
        r->capcand *= 2;
        r->cand = ir_xrealloc(r->cand, (size_t)r->capcand * sizeof *r->cand);
        r->cand_sim = ir_xrealloc(r->cand_sim, (size_t)r->capcand * sizeof *r->cand_sim);
    }
    r->cand[r->ncand] = *s;
    r->cand_sim[r->ncand++] = *sim;
    if (sim->peak_bytes < r->min_peak) r->min_peak = sim->peak_bytes;
}

/* Adds schedule s (taken), without its dead reruns, unless it equals the
 * last one given or does not simulate. */
static void add_candidate(OptRemat *r, OptSchedule *s)
{
    OptSchedule *prev = &r->last_given;
    OptSimResult sim;
    if (opt_schedule_equal(prev, s)) {
        opt_schedule_free(s);
        return;
    }
    opt_schedule_free(prev);
    *prev = opt_schedule_copy(s);
    opt_refine_prune(r->refine, s);
    if (opt_schedule_simulate(r->g, s, r->node_s, r->req, &sim)) {
        opt_schedule_free(s);
        return;
    }
    add_simulated(r, s, &sim, 0);
}

/* opt_refine_descend's steps join the candidates (a copy of each). */
static void add_refined(void *ctx, OptSchedule *s, const OptSimResult *sim)
{
    OptSchedule c = opt_schedule_copy(s);
    add_simulated(ctx, &c, sim, 1);
}

/* The candidates no other beats in both time and peak (the frontier), at
 * most REFINE_SEEDS of them evenly over it, each refined value by value
 * (opt_refine_descend) for at most REFINE_STEPS steps, and at most
 * REFINE_WORK instructions' worth of steps over all of them (a step costs
 * a few passes over the schedule: a 25000-instruction schedule gets 10
 * steps per seed); every step joins the candidates. */
static void refine_frontier(OptRemat *r)
{
    int nfront = 0;
    int *front = ir_xmalloc((size_t)(r->ncand ? r->ncand : 1) * sizeof *front);
    for (int i = 0; i < r->ncand; i++) {
        const OptSimResult *c = &r->cand_sim[i];
        int beaten = 0;
        for (int j = 0; j < r->ncand && !beaten; j++) {
            const OptSimResult *d = &r->cand_sim[j];
            beaten = d->step_s <= c->step_s && d->peak_bytes <= c->peak_bytes &&
                     (d->step_s < c->step_s || d->peak_bytes < c->peak_bytes || j < i);
        }
        if (!beaten) front[nfront++] = i;
    }
    /* by peak (the frontier's times fall as the peaks rise) */
    for (int i = 1; i < nfront; i++)
        for (int j = i; j > 0 && r->cand_sim[front[j]].peak_bytes < r->cand_sim[front[j - 1]].peak_bytes; j--) {
            int t = front[j];
            front[j] = front[j - 1];
            front[j - 1] = t;
        }
    int nseed = nfront < REFINE_SEEDS ? nfront : REFINE_SEEDS;
    OptSchedule *seed = ir_xmalloc((size_t)(nseed ? nseed : 1) * sizeof *seed);
    for (int k = 0; k < nseed; k++) { /* copies: the candidates move as steps join them */
        int i = front[nseed == nfront ? k : (int)((int64_t)k * (nfront - 1) / (nseed > 1 ? nseed - 1 : 1))];
        seed[k] = opt_schedule_copy(&r->cand[i]);
    }
    free(front);
    for (int i = 0; i < nseed; i++) {
        int64_t steps = REFINE_WORK / nseed / (seed[i].n ? seed[i].n : 1);
        if (steps > REFINE_STEPS) steps = REFINE_STEPS;
        opt_refine_descend(r->refine, &seed[i], (int)steps, add_refined, r);
        opt_schedule_free(&seed[i]);
    }
    free(seed);
}

/* ---- baselines ---- */

/* Segments ending after the stages marked in `ends`: one forward pass that
 * keeps what crosses segment boundaries, then per segment from the last, its
 * stages run forward again keeping everything and their backward (the last
 * segment keeps its first run's values: nothing to recompute). */
static void segments(OptRemat *r, const unsigned char *ends, OptSchedule *s)
{
    memset(s, 0, sizeof *s);
    memset(r->runs, 0, (size_t)r->g->nnodes * sizeof *r->runs);
    for (int k = 0; k < r->L; k++) run_forward(r, s, k, -1);
    for (int hi = r->L - 1; hi >= 0;) {
        int lo = hi;
        while (lo > 0 && !ends[lo - 1]) lo--;
        if (hi < r->L - 1)
            for (int k = lo; k <= hi; k++) run_forward(r, s, k, 0);
        for (int k = hi; k >= lo; k--) run_backward(r, s, k, 0);
        hi = lo - 1;
    }
    for (int i = 0; i < r->g->nnodes; i++)
        if (!r->g->nodes[i].dead && r->g->nodes[i].phase == IR_UPDATE) opt_schedule_push(s, i, OPT_RUN);
    opt_schedule_place_updates(r->g, s);
}

const char *opt_remat_baseline_name(OptRematBaseline b)
{
    static const char *const names[] = {"store-all", "blocks", "sqrt"};
    return (unsigned)b < sizeof names / sizeof *names ? names[b] : "?";
}

void opt_remat_baseline(OptRemat *r, OptRematBaseline b, OptSchedule *s, OptSimResult *sim)
{
    if (b != OPT_BASE_STORE_ALL && r->nfwd > 0 && r->rule != 2) build_partition(r, 2);
    if (b == OPT_BASE_STORE_ALL || r->L < 2) {
        opt_schedule_store_all(r->g, s);
    } else {
        /* blocks: a segment per block; sqrt: ceil(sqrt(blocks)) even segments */
        unsigned char *ends = ir_xcalloc((size_t)r->L, 1);
        int n = b == OPT_BASE_BLOCKS ? r->L : (int)ceil(sqrt((double)r->L));
        for (int j = 1; j < n; j++) ends[(int64_t)r->L * j / n - 1] = 1;
        segments(r, ends, s);
        free(ends);
    }
    opt_schedule_simulate(r->g, s, r->node_s, r->req, sim);
}

static void free_partition(OptRemat *r);

/* Cuts the forward nodes into stages by `rule` (cut_stages) and measures
 * them: backward blocks, reruns, options. */
static void build_partition(OptRemat *r, int rule)
{
    const IrGraph *g = r->g;
    int nn = g->nnodes;
    free_partition(r);
    r->rule = rule;
    cut_stages(r, r->pos, r->lastfwd, rule);
    measure_stages(r, r->pos, r->lastfwd);
    r->slot = r->storeall_peak / SLOTS + 1;
    r->bwd = ir_xcalloc((size_t)r->L, sizeof *r->bwd);
    r->nbwd = ir_xcalloc((size_t)r->L, sizeof *r->nbwd);
    for (int i = 0; i < nn; i++)
        if (!g->nodes[i].dead && g->nodes[i].phase == IR_BACKWARD) r->nbwd[r->stage_of[i]]++;
    for (int k = 0; k < r->L; k++) r->bwd[k] = ir_xmalloc((size_t)(r->nbwd[k] + 1) * sizeof **r->bwd), r->nbwd[k] = 0;
    for (int i = 0; i < nn; i++)
        if (!g->nodes[i].dead && g->nodes[i].phase == IR_BACKWARD) r->bwd[r->stage_of[i]][r->nbwd[r->stage_of[i]]++] = i;
    r->rerun = ir_xcalloc((size_t)r->L, sizeof *r->rerun);
    r->nrerun = ir_xcalloc((size_t)r->L, sizeof *r->nrerun);
    memset(r->needed, 0, (size_t)g->nvalues);
    /* per value: the last forward position reading it directly (need_state's
     * question, for the stages' shapes) */
    int *lastdirect = ir_xmalloc((size_t)(g->nvalues ? g->nvalues : 1) * sizeof *lastdirect);
    for (int v = 0; v < g->nvalues; v++) lastdirect[v] = -1;
    for (int p = 0; p < r->nfwd; p++) {
        const IrNode *n = &g->nodes[r->fwd[p]];
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0) lastdirect[n->in[j]] = p;
    }
    r->shape = ir_xcalloc((size_t)r->L, sizeof *r->shape);
    r->nshape = ir_xcalloc((size_t)r->L, sizeof *r->nshape);
    for (int k = 0; k < r->L; k++) {
        need_state(r, k);
        r->rerun[k] = closure(r, k, NULL, &r->nrerun[k]);
        stage_options(r, k, lastdirect);
    }
    free(lastdirect);
}

/* Forgets the stages, their options and the table. */
static void free_partition(OptRemat *r)
{
    for (int k = 0; k < r->L && r->bwd; k++) {
        free(r->bwd[k]);
        free(r->rerun[k]);
        for (int o = 0; o < r->st[k].nopt; o++) free(r->st[k].opt[o].fwd), free(r->st[k].opt[o].pre);
        if (r->shape) free(r->shape[k]);
    }
    free(r->shape), free(r->nshape);
    r->shape = NULL, r->nshape = NULL;
    free(r->stage_of), free(r->st), free(r->cost), free(r->choice);
    free(r->bwd), free(r->nbwd), free(r->rerun), free(r->nrerun);
    free(r->root), free(r->xbstage), free(r->xsroot);
    r->stage_of = NULL, r->st = NULL, r->cost = NULL, r->choice = NULL;
    r->bwd = NULL, r->nbwd = NULL, r->rerun = NULL, r->nrerun = NULL;
    r->root = NULL, r->xbstage = NULL, r->xsroot = NULL;
    r->L = 0;
}

OptRemat *opt_remat_new(const IrGraph *g, const double *node_s, const OptMemRequest *req)
{
    return opt_remat_new_link(g, node_s, req, NULL);
}

/* Whether schedule s is a priced schedule already (the blocks partition's
 * table is solved once per graph, but levels may share a schedule). Not
 * whether it is a candidate: the offload pass seeds only a few of those
 * (cli/budget.c), and one the priced table gives may be the seed that
 * fits. */
static int known(const OptRemat *r, const OptSchedule *s, const OptSimResult *sim)
{
    for (int i = 0; i < r->npriced; i++)
        if (r->priced_sim[i].step_s == sim->step_s && opt_schedule_equal(&r->priced[i], s)) return 1;
    return 0;
}

/* A priced table's schedules at every memory level that are not known
 * already, with their simulations. */
static void add_priced(OptRemat *r)
{
    OptSchedule prev = {0};
    for (int m = 0; m < MLEVELS; m++) {
        if (!isfinite(r->cost[IDX(r, 0, r->L - 1, m)])) continue;
        OptSchedule s;
        OptSimResult sim;
        schedule_at(r, m, &s);
        if (opt_schedule_equal(&prev, &s)) {
            opt_schedule_free(&s);
            continue;
        }
        opt_schedule_free(&prev);
        prev = opt_schedule_copy(&s);
        opt_refine_prune(r->refine, &s);
        if (opt_schedule_simulate(r->g, &s, r->node_s, r->req, &sim) || known(r, &s, &sim)) {
            opt_schedule_free(&s);
            continue;
        }
        if (r->npriced == r->cappriced) {
            r->cappriced = r->cappriced ? 2 * r->cappriced : 64;
            r->priced = ir_xrealloc(r->priced, (size_t)r->cappriced * sizeof *r->priced);
            r->priced_sim = ir_xrealloc(r->priced_sim, (size_t)r->cappriced * sizeof *r->priced_sim);
            r->priced_level = ir_xrealloc(r->priced_level, (size_t)r->cappriced * sizeof *r->priced_level);
        }
        r->priced[r->npriced] = s;
        r->priced_sim[r->npriced] = sim;
        r->priced_level[r->npriced++] = (int64_t)m * r->slot;
    }
    opt_schedule_free(&prev);
}

OptRemat *opt_remat_new_link(const IrGraph *g, const double *node_s, const OptMemRequest *req, const OptLink *link)
{
    OptRemat *r = ir_xcalloc(1, sizeof *r);
    r->g = g;
    r->link_bw = link && link->overlap && link->bw > 0 ? link->bw : 0;
    r->node_s = node_s;
    r->req = req;
    int nn = g->nnodes, nv = g->nvalues;
    int *pos = r->pos = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *pos);
    r->fwd = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *r->fwd);
    for (int i = 0; i < nn; i++) {
        pos[i] = -1;
        if (!g->nodes[i].dead && g->nodes[i].phase == IR_FORWARD) {
            pos[i] = r->nfwd;
            r->fwd[r->nfwd++] = i;
        }
    }
    /* the last forward position reading each value (views stretch their root) */
    int *lastfwd = r->lastfwd = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *lastfwd);
    for (int v = 0; v < nv; v++) lastfwd[v] = -1;
    for (int p = r->nfwd - 1; p >= 0; p--) {
        const IrNode *n = &g->nodes[r->fwd[p]];
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v >= 0 && g->values[v].is_output && g->values[v].role != IR_LOSS) lastfwd[v] = r->nfwd;
        }
        if ((ir_ops[n->op].flags & OPF_VIEW) && n->in[0] >= 0 && lastfwd[n->out[0]] > lastfwd[n->in[0]])
            lastfwd[n->in[0]] = lastfwd[n->out[0]];
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0 && lastfwd[n->in[j]] < p) lastfwd[n->in[j]] = p;
    }
    r->needed = ir_xmalloc((size_t)(nv ? nv : 1));
    r->bread = ir_xcalloc((size_t)(nv ? nv : 1), 1);
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->phase != IR_BACKWARD) continue;
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0) r->bread[n->in[j]] = 1;
    }
    r->runs = ir_xcalloc((size_t)(nn ? nn : 1), sizeof *r->runs);
    r->refine = opt_refine_new(g, node_s, req);
    r->capcand = 3 * MLEVELS + 3;
    r->cand = ir_xmalloc((size_t)r->capcand * sizeof *r->cand);
    r->cand_sim = ir_xmalloc((size_t)r->capcand * sizeof *r->cand_sim);
    /* candidate 0: store-all */
    opt_schedule_store_all(g, &r->cand[0]);
    opt_schedule_simulate(g, &r->cand[0], node_s, req, &r->cand_sim[0]);
    r->ncand = 1;
    r->storeall_peak = r->min_peak = r->cand_sim[0].peak_bytes;
    /* the candidates: the tables of two partitions into stages, then the
     * table over the blocks (when they are few enough) and the baselines */
    for (int rule = 0; rule < 3 && r->nfwd > 0; rule++) {
        build_partition(r, rule);
        if (r->L <= MAX_STAGES) {
            if (r->L > r->stages) r->stages = r->L;
            solve_table(r, -1);
            for (int m = 0; m < MLEVELS; m++) {
                if (!isfinite(r->cost[IDX(r, 0, r->L - 1, m)])) continue;
                OptSchedule s;
                schedule_at(r, m, &s);
                add_candidate(r, &s);
            }
            /* priced tables over the blocks: their states are single values
             * (a block's output), what a copy moves whole; over the finer
             * partitions they found no faster plan for ResNet-50 or GPT-2
             * 124M, at four times the solve time */
            if (r->link_bw > 0 && rule == 2) {
                free(r->cost), free(r->choice);
                solve_table(r, LINK_PRICE);
                add_priced(r);
            }
        }
    }
    for (int b = OPT_BASE_BLOCKS; b <= OPT_BASE_SQRT && r->nfwd > 0; b++) {
        OptSchedule s;
        OptSimResult sim;
        opt_remat_baseline(r, (OptRematBaseline)b, &s, &sim);
        add_candidate(r, &s);
    }
    r->ntable = r->ncand;
    refine_frontier(r);
    return r;
}

void opt_remat_free(OptRemat *r)
{
    if (!r) return;
    for (int i = 0; i < r->npriced; i++) opt_schedule_free(&r->priced[i]);
    free(r->priced), free(r->priced_sim), free(r->priced_level);
    free_partition(r);
    free(r->fwd);
    free(r->pos);
    free(r->lastfwd);
    free(r->needed);
    free(r->bread);
    free(r->runs);
    opt_refine_free(r->refine);
    opt_schedule_free(&r->last_given);
    for (int i = 0; i < r->ncand; i++) opt_schedule_free(&r->cand[i]);
    free(r->cand);
    free(r->cand_sim);
    free(r);
}

int opt_remat_stages(const OptRemat *r) { return r->stages; }

int64_t opt_remat_min_peak(const OptRemat *r) { return r->min_peak; }

int opt_remat_copied(const OptRemat *r) { return r->copied; }


/* A candidate as the orders below see it. */
typedef struct {
    int64_t peak;
    int refined;
    double step_s;
    int i;
} Ranked;

/* opt_remat_frugal's order: simulated peak, the tables' before the
 * refined, then time, then index. */
static int by_frugal(const void *a, const void *b)
{
    const Ranked *x = a, *y = b;
    if (x->peak != y->peak) return x->peak < y->peak ? -1 : 1;
    if (x->refined != y->refined) return x->refined - y->refined;
    if (x->step_s != y->step_s) return x->step_s < y->step_s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* opt_remat_ranked's order: time, then peak, then index. */
static int by_time(const void *a, const void *b)
{
    const Ranked *x = a, *y = b;
    if (x->step_s != y->step_s) return x->step_s < y->step_s ? -1 : 1;
    if (x->peak != y->peak) return x->peak < y->peak ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static Ranked ranked(const OptRemat *r, int i)
{
    return (Ranked){r->cand_sim[i].peak_bytes, i >= r->ntable, r->cand_sim[i].step_s, i};
}

int opt_remat_frugal(const OptRemat *r, int k, OptSchedule *out, OptSimResult *sim, int *refined)
{
    if (k < 0 || k >= r->ncand) return 1;
    Ranked *order = ir_xmalloc((size_t)r->ncand * sizeof *order);
    for (int i = 0; i < r->ncand; i++) order[i] = ranked(r, i);
    qsort(order, (size_t)r->ncand, sizeof *order, by_frugal);
    int i = order[k].i;
    free(order);
    *out = opt_schedule_copy(&r->cand[i]);
    *sim = r->cand_sim[i];
    *refined = i >= r->ntable;
    return 0;
}

/* The k-th of fit[0..m) in by_time's order, a copy of schedules[i] with
 * sims[i] for its index i; frees fit. 0, or 1 past the last. */
static int kth_fastest(Ranked *fit, int m, int k, const OptSchedule *schedules, const OptSimResult *sims,
                       OptSchedule *out, OptSimResult *sim)
{
    int rc = k < 0 || k >= m;
    if (!rc) {
        qsort(fit, (size_t)m, sizeof *fit, by_time);
        *out = opt_schedule_copy(&schedules[fit[k].i]);
        *sim = sims[fit[k].i];
    }
    free(fit);
    return rc;
}

int opt_remat_ranked(OptRemat *r, int64_t arena_bytes, int refined, int k, OptSchedule *out, OptSimResult *sim)
{
    int n = refined ? r->ncand : r->ntable, m = 0;
    Ranked *fit = ir_xmalloc((size_t)(n ? n : 1) * sizeof *fit);
    for (int i = 0; i < n; i++)
        if (r->cand_sim[i].peak_bytes <= arena_bytes) fit[m++] = ranked(r, i);
    return kth_fastest(fit, m, k, r->cand, r->cand_sim, out, sim);
}

int opt_remat_solve(OptRemat *r, int64_t arena_bytes, int refined, OptSchedule *out, OptSimResult *sim)
{
    return opt_remat_ranked(r, arena_bytes, refined, 0, out, sim);
}

int opt_remat_priced(const OptRemat *r, int64_t level, int k, OptSchedule *out, OptSimResult *sim)
{
    int m = 0;
    Ranked *fit = ir_xmalloc((size_t)(r->npriced ? r->npriced : 1) * sizeof *fit);
    for (int i = 0; i < r->npriced; i++)
        if (r->priced_level[i] <= level) fit[m++] = (Ranked){r->priced_sim[i].peak_bytes, 0, r->priced_sim[i].step_s, i};
    return kth_fastest(fit, m, k, r->priced, r->priced_sim, out, sim);
}

OptRefine *opt_remat_refiner(OptRemat *r) { return r->refine; }
