/* Per-value refinement of a remat schedule (optimizer.h, opt_refine_new).
 *
 * Rotor's table (remat.c) decides per stage: a stage keeps part of what its
 * backward reads, and the state that crosses a cut (a checkpoint) is held
 * from the forward run that writes it to the backward of the next stage that
 * reads it. Checkmate's program (checkmate.c) decides per value, and on a
 * CNN that is worth a lot: a BatchNormalization or ReLU output that a
 * convolution's weight gradient reads late in the backward can be dropped
 * after its last forward read and written again from the convolution output
 * that the BatchNormalization gradient keeps anyway, at the cost of one
 * elementwise pass (resnet_small at its least budget: the program reruns
 * four such nodes, 168 us, where rotor's stages reran 10 nodes, 678 us;
 * bench/results/remat_ilp.md).
 *
 * The refinement walks down from a schedule, one value at a time, on the
 * simulator (opt_schedule_simulate is the truth): at the instruction where
 * the arena peaks, every copy that is live there but not read there could
 * die after its last read before the peak, if its producer ran again just
 * before the copy's next read after the peak. What that rerun reads must be
 * at hand then without crossing the peak: a copy live across the peak (or
 * written after it), a graph input or a weight; anything else is rerun too,
 * back to such values (the closure), and views of the copy read after the
 * rerun are made again. Of those drops, the one of fewest rerun seconds per
 * byte is taken if the simulated peak falls (or stays, having moved to
 * another instruction); else the next of MAX_TRIES is tried. Reruns whose
 * copies nothing reads are removed (opt_refine_prune, which every table
 * schedule goes through too: a stage re-run to rebuild what its backward
 * reads also writes its state, which no later stage reads any more). Every
 * step's schedule is handed to the caller, which keeps those no other
 * candidate beats in both time and peak.
 *
 * A rerun reads the copies the schedule says and runs the same kernel, so
 * the result is bit for bit the unlimited program's, as for rotor's reruns. */
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"

enum { MAX_TRIES = 8 };

/* A binding of a value to a buffer at an instruction: a node's output makes
 * a new copy (copy = the binding's own index), a view's output names its
 * input's copy; a read of a value sees its latest binding. */
typedef struct {
    int value, at;  /* the value bound, the instruction (-1: a graph input) */
    int copy;       /* the binding that made the copy (itself, unless a view) */
    int prev;       /* the value's previous binding, -1 */
    int reads;      /* reads of this binding */
    int last, next; /* copies: the last read, the first read after the peak (-1) */
    int at_peak;    /* copies: read by the peak instruction */
} Bind;

/* A refiner: the scan of one schedule's bindings and reads, per-graph
 * tables, and scratch for a step. */
struct OptRefine {
    const IrGraph *g;
    const OptMemRequest *req;
    const double *node_s;
    int nb, capb;
    Bind *b;
    int *latest;     /* per value: its latest binding after the whole schedule */
    int *rd, caprd;  /* per read (instruction, input) in order: the binding read, -1 */
    unsigned char *pers; /* per value: opt_persistent */
    unsigned char *mark; /* per node: in the closure */
    int *marked, nmarked; /* the marked nodes */
    struct OptRefine *aux; /* a second scan, for the schedule a step makes */
};
typedef OptRefine Scan;

static int persistent(const Scan *sc, int v) { return sc->pers[v]; }

static int bind_new(Scan *sc, int v, int at, int copy)
{
    if (sc->nb == sc->capb) {
        sc->capb = sc->capb ? 2 * sc->capb : 256;
        sc->b = ir_xrealloc(sc->b, (size_t)sc->capb * sizeof *sc->b);
    }
    int i = sc->nb++;
    sc->b[i] = (Bind){v, at, copy < 0 ? i : copy, sc->latest[v], 0, at, -1, 0};
    sc->latest[v] = i;
    return i;
}

/* Binds every value of schedule s, counts reads, and for each copy its last
 * read and its first read after instruction `peak`. The bindings are made
 * in instruction order, the graph inputs' first. */
static void scan(Scan *sc, const OptSchedule *s, int peak)
{
    const IrGraph *g = sc->g;
    sc->nb = 0;
    for (int v = 0; v < g->nvalues; v++) sc->latest[v] = -1;
    for (int i = 0; i < g->ninputs; i++)
        if (sc->latest[g->inputs[i]] < 0) bind_new(sc, g->inputs[i], -1, -1);
    for (int k = 0, nrd = 0; k < s->n; k++) {
        const IrNode *n = &g->nodes[s->ins[k].node];
        if (nrd + n->nin > sc->caprd) {
            sc->caprd = 2 * (nrd + n->nin) + 256;
            sc->rd = ir_xrealloc(sc->rd, (size_t)sc->caprd * sizeof *sc->rd);
        }
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j], bi = v >= 0 && !persistent(sc, v) ? sc->latest[v] : -1;
            sc->rd[nrd++] = bi;
            if (bi < 0) continue;
            Bind *c = &sc->b[sc->b[bi].copy];
            sc->b[bi].reads++;
            c->last = k;
            if (k == peak) c->at_peak = 1;
            if (k > peak && c->next < 0) c->next = k;
        }
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0 || persistent(sc, v)) continue;
            int view = j == 0 && (ir_ops[n->op].flags & OPF_VIEW) && n->in[0] >= 0 && sc->latest[n->in[0]] >= 0;
            bind_new(sc, v, k, view ? sc->b[sc->latest[n->in[0]]].copy : -1);
        }
    }
    for (int i = 0; i < g->noutputs; i++) {
        int bi = sc->latest[g->outputs[i]];
        if (bi >= 0) sc->b[sc->b[bi].copy].last = s->n;
    }
}

/* The binding of value v that an instruction at q reads. */
static int bind_before(const Scan *sc, int v, int q)
{
    int bi = sc->latest[v];
    while (bi >= 0 && sc->b[bi].at >= q) bi = sc->b[bi].prev;
    return bi;
}

static void mark(Scan *sc, int node)
{
    if (sc->mark[node]) return;
    sc->mark[node] = 1;
    sc->marked[sc->nmarked++] = node;
}

static void unmark(Scan *sc)
{
    for (int i = 0; i < sc->nmarked; i++) sc->mark[sc->marked[i]] = 0;
    sc->nmarked = 0;
}

/* Marks the nodes to rerun before instruction q so that value v is written
 * again from what is at hand there without crossing the peak (the copy
 * `drop` is not), and adds their seconds to *sec. 0, or -1 when something
 * that is not a forward node would have to run again. */
static int closure(Scan *sc, int v, int q, int peak, int drop, double *sec)
{
    const IrGraph *g = sc->g;
    int p = g->values[v].producer;
    if (p < 0 || g->nodes[p].phase != IR_FORWARD) return -1;
    if (sc->mark[p]) return 0;
    mark(sc, p);
    *sec += sc->node_s ? sc->node_s[p] : 0;
    const IrNode *n = &g->nodes[p];
    for (int j = 0; j < n->nin; j++) {
        int u = n->in[j];
        if (u < 0 || persistent(sc, u)) continue;
        int bi = bind_before(sc, u, q);
        if (bi < 0) return -1;
        const Bind *c = &sc->b[sc->b[bi].copy];
        if (c->at < 0 || (c->copy != drop && (c->at > peak || c->last >= peak))) continue; /* at hand */
        if (closure(sc, u, q, peak, drop, sec)) return -1;
    }
    return 0;
}

/* Views of copy `drop` made before q and read at or after it: their view
 * nodes run again after the producer (marked too). sc holds the scan of s. */
static void rebind_views(Scan *sc, const OptSchedule *s, int drop, int q)
{
    const IrGraph *g = sc->g;
    for (int k = 0, r = 0; k < s->n; k++) {
        const IrNode *n = &g->nodes[s->ins[k].node];
        for (int j = 0; j < n->nin; j++, r++) {
            int bi = sc->rd[r];
            if (k < q || bi < 0 || sc->b[bi].copy != drop || sc->b[bi].at >= q) continue;
            for (int w = n->in[j]; w != sc->b[drop].value;) {
                int p = g->values[w].producer;
                IR_ASSERT(p >= 0 && (ir_ops[g->nodes[p].op].flags & OPF_VIEW));
                mark(sc, p);
                w = g->nodes[p].in[0];
            }
        }
    }
}

/* s with the marked nodes rerun (in stored order, which is topological)
 * before instruction q. */
static void insert_reruns(const Scan *sc, const OptSchedule *s, int q, OptSchedule *out)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < q; k++) opt_schedule_push(out, s->ins[k].node, s->ins[k].kind);
    for (int i = 0; i < sc->g->nnodes; i++)
        if (sc->mark[i]) opt_schedule_push(out, i, OPT_RERUN);
    for (int k = q; k < s->n; k++) opt_schedule_push(out, s->ins[k].node, s->ins[k].kind);
    opt_schedule_place_updates(sc->g, out); /* a rerun may read a parameter updated before q */
}

/* Removes the reruns none of whose outputs is read. Last to first, so that
 * a rerun read only by a removed one goes too. */
static void drop_dead(Scan *sc, OptSchedule *s)
{
    const IrGraph *g = sc->g;
    scan(sc, s, -1);
    int nrd = 0, bi = sc->nb;
    for (int k = 0; k < s->n; k++) nrd += g->nodes[s->ins[k].node].nin;
    unsigned char *gone = ir_xcalloc((size_t)(s->n ? s->n : 1), 1);
    for (int k = s->n - 1; k >= 0; k--) {
        const IrNode *n = &g->nodes[s->ins[k].node];
        int read = 0, any = 0;
        nrd -= n->nin;
        for (; bi > 0 && sc->b[bi - 1].at == k; bi--) any = 1, read |= sc->b[bi - 1].reads > 0;
        if (s->ins[k].kind != OPT_RERUN || !any || read) continue;
        gone[k] = 1;
        for (int j = 0; j < n->nin; j++)
            if (sc->rd[nrd + j] >= 0) sc->b[sc->rd[nrd + j]].reads--;
    }
    int m = 0;
    for (int k = 0; k < s->n; k++)
        if (!gone[k]) s->ins[m++] = s->ins[k];
    s->n = m;
    free(gone);
}

static Scan *scan_new(const IrGraph *g, const double *node_s, const OptMemRequest *req, unsigned char *pers)
{
    int nv = g->nvalues, nn = g->nnodes;
    Scan *sc = ir_xcalloc(1, sizeof *sc);
    sc->g = g, sc->req = req, sc->node_s = node_s, sc->pers = pers;
    sc->latest = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *sc->latest);
    sc->mark = ir_xcalloc((size_t)(nn ? nn : 1), 1);
    sc->marked = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *sc->marked);
    return sc;
}

static void scan_free(Scan *sc)
{
    free(sc->b);
    free(sc->rd);
    free(sc->latest);
    free(sc->mark);
    free(sc->marked);
    free(sc);
}

OptRefine *opt_refine_new(const IrGraph *g, const double *node_s, const OptMemRequest *req)
{
    unsigned char *pers = ir_xmalloc((size_t)(g->nvalues ? g->nvalues : 1));
    for (int v = 0; v < g->nvalues; v++) pers[v] = (unsigned char)opt_persistent(g, req, v);
    Scan *sc = scan_new(g, node_s, req, pers);
    sc->aux = scan_new(g, node_s, req, pers);
    return sc;
}

void opt_refine_free(OptRefine *sc)
{
    if (!sc) return;
    free(sc->pers);
    scan_free(sc->aux);
    scan_free(sc);
}

void opt_refine_prune(OptRefine *sc, OptSchedule *s) { drop_dead(sc, s); }

typedef struct {
    double key; /* rerun seconds per byte */
    int copy;
} Drop;

static int by_key(const void *a, const void *b)
{
    const Drop *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : (x->copy > y->copy) - (x->copy < y->copy);
}

/* The drops at instruction P of cur: the copies live across P but not read
 * there whose rerun before their next read after P reads only what is at
 * hand, by rerun seconds per byte; their count, in sc's drops. */
static int drops_at(OptRefine *sc, const OptSchedule *cur, int P, Drop **drops)
{
    const IrGraph *g = sc->g;
    scan(sc, cur, P);
    int nd = 0;
    *drops = ir_xrealloc(*drops, (size_t)(sc->nb + 1) * sizeof **drops);
    for (int c = 0; c < sc->nb; c++) {
        const Bind *b = &sc->b[c];
        if (b->copy != c || b->at < 0 || b->at >= P || b->at_peak || b->next < 0 || b->next >= cur->n) continue;
        if (g->values[b->value].is_output) continue;
        double sec = 0;
        int bad = closure(sc, b->value, b->next, P, c, &sec);
        unmark(sc);
        if (bad) continue;
        double bytes = (double)ir_value_bytes(&g->values[b->value]) + 1;
        (*drops)[nd++] = (Drop){sec / bytes, c};
    }
    qsort(*drops, (size_t)nd, sizeof **drops, by_key);
    return nd;
}

/* cur with drop d (of drops_at's scan at P) taken: the copy dies after its
 * last read before P, and its producer (with what it needs) runs again
 * before its next read; dead reruns removed. */
static void take_drop(OptRefine *sc, const OptSchedule *cur, int P, const Drop *d, OptSchedule *next)
{
    const Bind *b = &sc->b[d->copy];
    int q = b->next;
    double sec = 0;
    closure(sc, b->value, q, P, d->copy, &sec);
    rebind_views(sc, cur, d->copy, q);
    insert_reruns(sc, cur, q, next);
    unmark(sc);
    drop_dead(sc->aux, next);
}

int opt_refine_drop_at(OptRefine *sc, const OptSchedule *s, int at, OptSchedule *out)
{
    Drop *drops = NULL;
    int nd = drops_at(sc, s, at, &drops);
    if (nd) take_drop(sc, s, at, &drops[0], out);
    free(drops);
    return nd ? 0 : 1;
}

int opt_refine_descend(OptRefine *sc, const OptSchedule *seed, int max_steps,
                       void (*emit)(void *ctx, OptSchedule *s, const OptSimResult *sim), void *ctx)
{
    const IrGraph *g = sc->g;
    const OptMemRequest *req = sc->req;
    const double *node_s = sc->node_s;
    int steps = 0;
    OptSchedule cur = opt_schedule_copy(seed);
    OptSimResult sim;
    Drop *drops = NULL;
    if (opt_schedule_simulate(g, &cur, node_s, req, &sim)) goto out;
    for (; steps < max_steps; steps++) {
        int P = sim.peak_at;
        int nd = drops_at(sc, &cur, P, &drops), taken = 0;
        for (int t = 0; t < nd && t < MAX_TRIES && !taken; t++) {
            OptSchedule next;
            take_drop(sc, &cur, P, &drops[t], &next);
            OptSimResult ns;
            if (!opt_schedule_simulate(g, &next, node_s, req, &ns) &&
                (ns.peak_bytes < sim.peak_bytes || (ns.peak_bytes == sim.peak_bytes && ns.peak_at != P))) {
                opt_schedule_free(&cur);
                cur = next;
                sim = ns;
                taken = 1;
                emit(ctx, &cur, &sim);
            } else {
                opt_schedule_free(&next);
            }
        }
        if (!taken) break;
    }
out:
    free(drops);
    opt_schedule_free(&cur);
    return steps;
}
