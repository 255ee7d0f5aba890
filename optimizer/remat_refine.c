/* Pruning of remat schedules (optimizer.h, opt_refine_new).
 *
 * Rotor's table (remat.c) runs a stage forward again to rebuild what its
 * backward reads, and that re-run writes the stage's state too, which the
 * later stage it fed, already done, no longer reads: a rerun whose copies
 * nothing reads before they are written again. opt_refine_prune removes
 * such reruns from a schedule, last to first, so that a rerun read only by
 * a removed one goes too (on the unit test's 4-layer chain a 112 us
 * product at rotor's least budget, the whole of its gap to Checkmate's
 * proven optimum). Removing a rerun nothing reads changes no result and
 * lowers no one's memory but its own copies'. */
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"

/* A binding of a value to a buffer at an instruction: a node's output makes
 * a new copy (copy = the binding's own index), a view's output names its
 * input's copy; a read of a value sees its latest binding. */
typedef struct {
    int value, at;  /* the value bound, the instruction (-1: a graph input) */
    int copy;       /* the binding that made the copy (itself, unless a view) */
    int prev;       /* the value's previous binding, -1 */
    int reads;      /* reads of this binding */
} Bind;

/* A refiner: the scan of one schedule's bindings and reads, and per-graph
 * tables. */
struct OptRefine {
    const IrGraph *g;
    const OptMemRequest *req;
    int nb, capb;
    Bind *b;
    int *latest;     /* per value: its latest binding after the whole schedule */
    int *rd, caprd;  /* per read (instruction, input) in order: the binding read, -1 */
    unsigned char *pers; /* per value: opt_persistent */
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
    sc->b[i] = (Bind){v, at, copy < 0 ? i : copy, sc->latest[v], 0};
    sc->latest[v] = i;
    return i;
}

/* Binds every value of schedule s and counts the reads of each binding.
 * The bindings are made in instruction order, the graph inputs' first. */
static void scan(Scan *sc, const OptSchedule *s)
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
            if (bi >= 0) sc->b[bi].reads++;
        }
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0 || persistent(sc, v)) continue;
            int view = j == 0 && (ir_ops[n->op].flags & OPF_VIEW) && n->in[0] >= 0 && sc->latest[n->in[0]] >= 0;
            bind_new(sc, v, k, view ? sc->b[sc->latest[n->in[0]]].copy : -1);
        }
    }
}

/* Removes the reruns none of whose outputs is read. Last to first, so that
 * a rerun read only by a removed one goes too. */
static void drop_dead(Scan *sc, OptSchedule *s)
{
    const IrGraph *g = sc->g;
    scan(sc, s);
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

OptRefine *opt_refine_new(const IrGraph *g, const OptMemRequest *req)
{
    Scan *sc = ir_xcalloc(1, sizeof *sc);
    sc->g = g, sc->req = req;
    sc->latest = ir_xmalloc((size_t)(g->nvalues ? g->nvalues : 1) * sizeof *sc->latest);
    sc->pers = ir_xmalloc((size_t)(g->nvalues ? g->nvalues : 1));
    for (int v = 0; v < g->nvalues; v++) sc->pers[v] = (unsigned char)opt_persistent(g, req, v);
    return sc;
}

void opt_refine_free(OptRefine *sc)
{
    if (!sc) return;
    free(sc->b);
    free(sc->rd);
    free(sc->latest);
    free(sc->pers);
    free(sc);
}

void opt_refine_prune(OptRefine *sc, OptSchedule *s) { drop_dead(sc, s); }
