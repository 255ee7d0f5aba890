/* The exact whole-graph rematerialization baseline (optimizer.h): Checkmate's
 * mixed integer program (Jain et al., "Checkmate: Breaking the Memory Wall
 * with Optimal Tensor Rematerialization", MLSys 2020), solved by lp_solve.
 *
 * Stages. The live nodes but the updates, in their stored order, are the
 * stages t = 0..T-1; stage t runs node t and, before it, any forward nodes
 * again, and after it the parameter updates anchored there: an update runs
 * after its gradient's writer and after the last stage that may read its
 * parameter (a rerun's included), as opt_schedule_place_updates places it
 * then. (Updates as stages of their own made the program twice as large:
 * every copy held across one needed a column there.) Binaries:
 * R[t][j], node j runs in stage t (R[j][j] = 1; a backward or update node
 * runs only in its own stage; a forward node may run again in any later
 * stage up to the last one that could read what it writes), and S[t][v],
 * a copy of value v written in an earlier stage is held when stage t starts.
 * Constraints: a node reads each input from this stage's run of its
 * producer or from a held copy (R[t][j] <= R[t][p] + S[t][v]); a copy is
 * held into stage t+1 only if it was held or written in stage t. Objective:
 * the seconds of every run, so of the forward reruns.
 *
 * Memory, per value as the simulator counts it (opt_schedule_simulate is the
 * reference): aligned bytes; none for weights-pool values, views (their
 * root's bytes) and values a fused loop keeps in registers (written by a
 * fused node, read only inside its group); graph inputs held until the last
 * stage that may read them; graph outputs from their write to the end.
 * Inside stage t, U[t][k] bounds the bytes live while node k runs:
 *   U[t][first] >= inputs + outputs + sum_v M_v S[t][v] + M_out(first) R[t][first]
 *   U[t][k]     >= U[t][k'] - sum_v M_v FREE[t][v][k'] + M_out(k) R[t][k]
 * (k' the stage's node before k), and U[t][k] + workspace(k) R[t][k] is at
 * most the budget. FREE[t][v][k] frees v after k: k runs, no later reader of
 * v runs in the stage and v is not held into t+1. Checkmate's product is
 * linearized disaggregated (FREE <= R[t][k], FREE <= 1 - S[t+1][v], FREE <=
 * 1 - R[t][j] per later reader j) and FREE is continuous: freeing only
 * relaxes the memory rows, so the solver frees wherever it may, and a
 * smaller FREE only overstates the bytes.
 *
 * Where a schedule's liveness is more than a value per node, the program
 * counts at least what the simulator counts, so every schedule it accepts
 * fits by the simulator (checked on each answer):
 * - A view shares its root's bytes: a read of a view also reads the root
 *   (held or rerun in that stage), and a held view may not outlive a rerun
 *   of its root (S[t][view] + R[t][root's writer] <= 1), so every read sees
 *   the root copy the program counts.
 * - A value kept in registers may be held only until its group's last node
 *   has run; a rerun of the group's consumer later reruns the chain, as the
 *   fused loop does (a copy held longer would need a real buffer).
 * - A copy held and written again in one stage is counted twice; a graph
 *   input counts for the whole stage of its last possible reader.
 *
 * A fused node reads its inputs when its group's loop runs, at the
 * group's last node (the simulator counts so): its reads are filed under
 * that node for the frees, and in that node's own stage the node needs its
 * members' inputs from outside the group. (This made the 3-layer chain of
 * test_checkmate take seconds where it took 0.02 s; it is what the
 * schedules' memory is.)
 *
 * The program grows as T^2 (R, S, FREE, U per stage) and its LP relaxation
 * is weak (memory "half held" costs half the bytes), so lp_solve's branch
 * and bound proves optimality in seconds on a few thousand variables at
 * tight budgets, may not within minutes at looser ones, and finds no
 * schedule at all in 5 minutes on 37000 (vit_tiny); the program is refused
 * above ILP_MAX_VARS variables (bench/results/remat_ilp.md). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"

#include <lpsolve/lp_lib.h>

enum { ILP_MAX_VARS = 20000 };

/* What a rerun costs beyond its node's seconds, in microseconds: a node of
 * no cost (a view) is not rerun for nothing. */
#define ILP_EPS_US 1e-4

typedef struct {
    const IrGraph *g;
    const OptMemRequest *req;
    int T;
    int *node_at;   /* stage -> node */
    int *pos;       /* node -> stage, -1 when dead */
    int *late;      /* node -> the last stage it may run in */
    /* per value */
    int *owner;     /* whose bytes: itself, a view's root, -1 for none (weights pool) */
    int64_t *units; /* owners: bytes in OPT_ALIGN units */
    unsigned char *held_out; /* owners of graph outputs: held from the write to the end */
    int *rd_start, *rd;      /* the nodes reading v, in stage order */
    int *use_start, *use;    /* owners: the nodes reading it or a view of it, in stage order */
    int *s_first, *s_last, *s_col; /* S[t][v] is column s_col + t - s_first for t in [s_first, s_last] */
    int *r_col;     /* forward nodes: R[t][j] is column r_col + t - pos - 1 for t in (pos, late] */
    int nbin;       /* R and S columns: 1..nbin */
    int *list, *idx; /* scratch: a stage's nodes; node -> index in it or -1 */
    int *ustart, *unodes; /* the updates anchored at stage t: unodes[ustart[t] .. ustart[t+1]) */
} Model;

/* The nodes stage t runs for certain, in order: node t, then its updates. */
static int own_count(const Model *m, int t) { return 1 + (m->ustart ? m->ustart[t + 1] - m->ustart[t] : 0); }
static int own_node(const Model *m, int t, int i) { return i ? m->unodes[m->ustart[t] + i - 1] : m->node_at[t]; }

static int recomputable(const Model *m, int j) { return m->g->nodes[j].phase == IR_FORWARD; }

/* R[t][j]: its column, or 0 with *one telling whether it is 1 for certain. */
static int r_term(const Model *m, int t, int j, int *one)
{
    *one = m->pos[j] == t;
    if (*one || !recomputable(m, j) || t < m->pos[j] || t > m->late[j]) return 0;
    return m->r_col[j] + (t - m->pos[j] - 1);
}

/* S[t][v]: its column, or 0 with *one telling whether it is held for certain. */
static int s_term(const Model *m, int t, int v, int *one)
{
    int p = m->g->values[v].producer;
    *one = m->owner[v] == v && m->held_out[v] && p >= 0 && t > m->pos[p];
    if (*one || t < m->s_first[v] || t > m->s_last[v]) return 0;
    return m->s_col[v] + (t - m->s_first[v]);
}

/* ---- rows ---- */

typedef struct {
    int n, cap;
    int *col;
    REAL *val;
    double konst; /* the terms fixed to 1, moved to the right-hand side */
} Row;

static void row_add(Row *r, int col, double c)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->col = ir_xrealloc(r->col, (size_t)r->cap * sizeof *r->col);
        r->val = ir_xrealloc(r->val, (size_t)r->cap * sizeof *r->val);
    }
    r->col[r->n] = col;
    r->val[r->n++] = c;
}

static void row_r(Row *r, const Model *m, int t, int j, double c)
{
    int one, col = r_term(m, t, j, &one);
    if (col) row_add(r, col, c);
    else if (one) r->konst += c;
}

static void row_s(Row *r, const Model *m, int t, int v, double c)
{
    int one, col = s_term(m, t, v, &one);
    if (col) row_add(r, col, c);
    else if (one) r->konst += c;
}

/* sum + konst  TYPE  rhs; a row without variables holds by construction. */
static void row_emit(lprec *lp, Row *r, int type, double rhs)
{
    if (r->n) add_constraintex(lp, r->n, r->val, r->col, type, rhs - r->konst);
    else IR_ASSERT(type == LE ? r->konst <= rhs : r->konst >= rhs);
    r->n = 0;
    r->konst = 0;
}

/* ---- the model's shape ---- */

/* rd (who reads each value) and use (who reads each owner's bytes), in stage order. */
static void readers(Model *m)
{
    const IrGraph *g = m->g;
    const int *run_at = m->req ? m->req->run_at : NULL;
    int nv = g->nvalues;
    m->rd_start = ir_xcalloc((size_t)nv + 1, sizeof *m->rd_start);
    m->use_start = ir_xcalloc((size_t)nv + 1, sizeof *m->use_start);
    int *rfill = NULL, *ufill = NULL;
    for (int pass = 0; pass < 2; pass++) {
        if (pass) {
            for (int v = 0; v < nv; v++) m->rd_start[v + 1] += m->rd_start[v], m->use_start[v + 1] += m->use_start[v];
            rfill = ir_xmalloc((size_t)nv * sizeof *rfill), ufill = ir_xmalloc((size_t)nv * sizeof *ufill);
            memcpy(rfill, m->rd_start, (size_t)nv * sizeof *rfill);
            memcpy(ufill, m->use_start, (size_t)nv * sizeof *ufill);
            m->rd = ir_xmalloc((size_t)(m->rd_start[nv] + 1) * sizeof *m->rd);
            m->use = ir_xmalloc((size_t)(m->use_start[nv] + 1) * sizeof *m->use);
        }
        for (int t = 0; t < m->T; t++) {
            for (int q = 0; q < own_count(m, t); q++) {
                int j = own_node(m, t, q);
                const IrNode *n = &g->nodes[j];
                /* a fused node reads when its group's loop runs, at the
                 * group's last node: the bytes it reads live until then */
                int at = run_at && run_at[j] != j && m->pos[run_at[j]] >= 0 ? run_at[j] : j;
                for (int a = 0; a < n->nin; a++) {
                    int v = n->in[a], dup_v = 0, dup_o = 0;
                    if (v < 0) continue;
                    for (int b = 0; b < a; b++) {
                        dup_v |= n->in[b] == v;
                        dup_o |= n->in[b] >= 0 && m->owner[n->in[b]] == m->owner[v];
                    }
                    if (!dup_v) {
                        if (pass) m->rd[rfill[v]++] = j;
                        else m->rd_start[v + 1]++;
                    }
                    if (m->owner[v] >= 0 && !dup_o) {
                        if (pass) m->use[ufill[m->owner[v]]++] = at;
                        else m->use_start[m->owner[v] + 1]++;
                    }
                }
            }
        }
    }
    /* the owners' readers in stage order again (a group's last node may
     * come after readers stored after its members), each once */
    int w = 0;
    for (int v = 0; v < nv; v++) {
        int a0 = m->use_start[v], a1 = m->use_start[v + 1];
        for (int a = a0 + 1; a < a1; a++)
            for (int b = a; b > a0 && m->pos[m->use[b - 1]] > m->pos[m->use[b]]; b--) {
                int x = m->use[b];
                m->use[b] = m->use[b - 1], m->use[b - 1] = x;
            }
        m->use_start[v] = w;
        for (int a = a0; a < a1; a++)
            if (a == a0 || m->use[a] != m->use[w - 1]) m->use[w++] = m->use[a];
    }
    m->use_start[nv] = w;
    free(rfill);
    free(ufill);
}

static void readers_free(Model *m)
{
    free(m->rd_start), free(m->rd), free(m->use_start), free(m->use);
    m->rd_start = m->rd = m->use_start = m->use = NULL;
}

/* Anchors each update at the stage after which it runs: the latest of its
 * inputs' writers (an update before it for clipping's scale) and of the
 * last stages the readers of what it overwrites may run in (late, so a
 * rerun reading the parameter comes before the update). */
static void anchor_updates(Model *m)
{
    const IrGraph *g = m->g;
    int nn = g->nnodes, nv = g->nvalues;
    int *store = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *store), *lastread = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *lastread);
    for (int v = 0; v < nv; v++) store[v] = ir_view_root(g, v), lastread[v] = -1;
    for (int t = 0; t < m->T; t++) {
        const IrNode *n = &g->nodes[m->node_at[t]];
        for (int a = 0; a < n->nin; a++) {
            int v = n->in[a] >= 0 ? store[n->in[a]] : -1;
            if (v >= 0 && m->late[m->node_at[t]] > lastread[v]) lastread[v] = m->late[m->node_at[t]];
        }
    }
    m->ustart = ir_xcalloc((size_t)m->T + 2, sizeof *m->ustart);
    m->unodes = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *m->unodes);
    int nu = 0;
    for (int i = 0; i < nn; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->phase != IR_UPDATE) continue;
        int at = 0;
        for (int a = 0; a < n->nin; a++) {
            int p = n->in[a] >= 0 ? g->values[n->in[a]].producer : -1;
            if (p >= 0 && m->pos[p] > at) at = m->pos[p];
        }
        for (int o = 0; o < n->nout; o++) {
            int w = n->out[o] >= 0 ? g->values[n->out[o]].alias : -1;
            if (w >= 0 && lastread[store[w]] > at) at = lastread[store[w]];
        }
        m->pos[i] = m->late[i] = at;
        m->unodes[nu++] = i;
        m->ustart[at + 2]++;
    }
    /* a counting sort by anchor, stable (stored order within an anchor) */
    for (int t = 0; t <= m->T; t++) m->ustart[t + 1] += m->ustart[t];
    int *sorted = ir_xmalloc((size_t)(nu ? nu : 1) * sizeof *sorted);
    for (int k = 0; k < nu; k++) sorted[m->ustart[m->pos[m->unodes[k]] + 1]++] = m->unodes[k];
    memcpy(m->unodes, sorted, (size_t)nu * sizeof *sorted);
    free(sorted);
    free(store);
    free(lastread);
}

static int last_reader(const Model *m, const int *start, const int *list, int v)
{
    int last = -1;
    for (int u = start[v]; u < start[v + 1]; u++)
        if (m->late[list[u]] > last) last = m->late[list[u]];
    return last;
}

static void model_init(Model *m, const IrGraph *g, const OptMemRequest *req)
{
    memset(m, 0, sizeof *m);
    m->g = g;
    m->req = req;
    int nn = g->nnodes, nv = g->nvalues;
    m->node_at = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *m->node_at);
    m->pos = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *m->pos);
    for (int i = 0; i < nn; i++) {
        m->pos[i] = -1;
        if (!g->nodes[i].dead && g->nodes[i].phase != IR_UPDATE) m->pos[i] = m->T, m->node_at[m->T++] = i;
    }
    /* the simulator's buffers: views share their input's, the weights pool none */
    m->owner = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *m->owner);
    for (int v = 0; v < nv; v++) m->owner[v] = opt_persistent(g, req, v) ? -1 : v;
    for (int t = 0; t < m->T; t++) {
        const IrNode *n = &g->nodes[m->node_at[t]];
        if ((ir_ops[n->op].flags & OPF_VIEW) && n->in[0] >= 0 && n->out[0] >= 0 && m->owner[n->out[0]] >= 0)
            m->owner[n->out[0]] = m->owner[n->in[0]];
    }
    readers(m);
    /* bytes, none for what a fused loop keeps in registers */
    m->units = ir_xcalloc((size_t)(nv ? nv : 1), sizeof *m->units);
    m->held_out = ir_xcalloc((size_t)(nv ? nv : 1), 1);
    const int *run_at = req ? req->run_at : NULL;
    for (int v = 0; v < nv; v++) {
        if (m->owner[v] != v) continue;
        int p = g->values[v].producer;
        int reg = p >= 0 && run_at && run_at[p] != p;
        for (int u = m->use_start[v]; u < m->use_start[v + 1] && reg; u++) reg = run_at[m->use[u]] == run_at[p];
        if (!reg) m->units[v] = (ir_value_bytes(&g->values[v]) + OPT_ALIGN - 1) / OPT_ALIGN;
    }
    for (int i = 0; i < g->noutputs; i++)
        if (m->owner[g->outputs[i]] >= 0) m->held_out[m->owner[g->outputs[i]]] = 1;
    /* the last stage each node may run in: a forward node's, the last of its
     * readers' (through views: a backward view's readers read the root) */
    m->late = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *m->late);
    for (int t = m->T - 1; t >= 0; t--) {
        int j = m->node_at[t];
        const IrNode *n = &g->nodes[j];
        m->late[j] = t;
        for (int k = 0; k < n->nout && recomputable(m, j); k++) {
            int v = n->out[k];
            if (v < 0) continue;
            int last = m->owner[v] == v ? last_reader(m, m->use_start, m->use, v) : last_reader(m, m->rd_start, m->rd, v);
            if (last > m->late[j]) m->late[j] = last;
        }
    }
    /* the updates read no forward value, so late holds without them; then
     * the readers again, the updates among them */
    anchor_updates(m);
    readers_free(m);
    readers(m);
    m->list = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *m->list);
    m->idx = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *m->idx);
    for (int i = 0; i < nn; i++) m->idx[i] = -1;
}

/* The binaries' columns: R, then S. */
static void model_columns(Model *m)
{
    const IrGraph *g = m->g;
    const int *run_at = m->req ? m->req->run_at : NULL;
    int nv = g->nvalues, col = 1;
    m->r_col = ir_xcalloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *m->r_col);
    for (int t = 0; t < m->T; t++) {
        int j = m->node_at[t];
        if (!recomputable(m, j) || m->late[j] <= t) continue;
        m->r_col[j] = col;
        col += m->late[j] - t;
    }
    m->s_first = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *m->s_first);
    m->s_last = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *m->s_last);
    m->s_col = ir_xcalloc((size_t)(nv ? nv : 1), sizeof *m->s_col);
    for (int v = 0; v < nv; v++) {
        int p = g->values[v].producer, o = m->owner[v];
        m->s_first[v] = 1, m->s_last[v] = 0; /* no variables */
        if (o < 0 || p < 0 || m->pos[p] < 0 || (o == v && m->held_out[v])) continue;
        int last = o == v ? last_reader(m, m->use_start, m->use, v) : last_reader(m, m->rd_start, m->rd, v);
        /* registers hold a value only until its group's last node has run */
        if (o == v && !m->units[v] && run_at && run_at[p] != p && m->pos[run_at[p]] < last) last = m->pos[run_at[p]];
        m->s_first[v] = m->pos[p] + 1;
        m->s_last[v] = last;
        if (last >= m->s_first[v]) m->s_col[v] = col, col += last - m->pos[p];
    }
    m->nbin = col - 1;
}

/* The nodes that may run in stage t, in order (the forward nodes whose
 * reruns reach t, then node t), indexed in m->idx. */
static int stage_nodes(Model *m, int t)
{
    int n = 0;
    for (int s = 0; s <= t; s++) {
        int j = m->node_at[s];
        if (s == t || (recomputable(m, j) && m->late[j] >= t)) m->idx[j] = n, m->list[n++] = j;
    }
    for (int q = 1; q < own_count(m, t); q++) {
        int j = own_node(m, t, q);
        m->idx[j] = n, m->list[n++] = j;
    }
    return n;
}

static void stage_clear(Model *m, int n)
{
    for (int i = 0; i < n; i++) m->idx[m->list[i]] = -1;
}

/* Whether v may be freed after its writer or reader k in stage t: not
 * when a node that runs for certain after k in the stage (node t, its
 * updates) reads it. */
static int may_free(const Model *m, int t, int v, int k)
{
    for (int u = m->use_start[v]; u < m->use_start[v + 1]; u++) {
        int j = m->use[u];
        if (m->pos[j] == t && m->idx[j] > m->idx[k]) return 0; /* node t or one of its updates */
    }
    return 1;
}

/* Stage t's FREE[t][v][k]: per owner v of bytes, each node k of the stage
 * that writes or reads it. Counts them; with lp, gives them the columns
 * from col on with their rows, and files each under k in fk (CSR by the
 * stage index of k: fk_start[n+1]). */
static int stage_frees(Model *m, int t, int n, lprec *lp, int col, Row *row, int *fk_start, int *fk_v, int *fk_col)
{
    const IrGraph *g = m->g;
    int count = 0, one;
    if (fk_start) memset(fk_start, 0, (size_t)(n + 1) * sizeof *fk_start);
    for (int pass = 0; pass < (lp ? 2 : 1); pass++) {
        int *fill = NULL;
        if (pass) {
            for (int i = 0; i < n; i++) fk_start[i + 1] += fk_start[i];
            fill = ir_xmalloc((size_t)(n ? n : 1) * sizeof *fill);
            memcpy(fill, fk_start, (size_t)n * sizeof *fill);
        }
        for (int v = 0; v < g->nvalues; v++) {
            int p = g->values[v].producer;
            if (m->owner[v] != v || !m->units[v] || m->held_out[v] || p < 0 || m->pos[p] < 0 || m->pos[p] > t) continue;
            int s_next = t + 1 < m->T ? s_term(m, t + 1, v, &one) : 0;
            /* the writer, then the readers, in stage order */
            for (int u = m->use_start[v] - 1; u < m->use_start[v + 1]; u++) {
                int k = u < m->use_start[v] ? p : m->use[u];
                if (m->idx[k] < 0 || !may_free(m, t, v, k)) continue;
                if (!lp) {
                    count++;
                    continue;
                }
                if (!pass) {
                    fk_start[m->idx[k] + 1]++;
                    continue;
                }
                int c = col + count++;
                fk_v[fill[m->idx[k]]] = v;
                fk_col[fill[m->idx[k]]++] = c;
                row_add(row, c, 1);
                row_r(row, m, t, k, -1);
                row_emit(lp, row, LE, 0);
                if (s_next) {
                    row_add(row, c, 1);
                    row_add(row, s_next, 1);
                    row_emit(lp, row, LE, 1);
                }
                for (int w = u + 1; w < m->use_start[v + 1]; w++) {
                    if (m->idx[m->use[w]] < 0 || m->use[w] == k) continue;
                    row_add(row, c, 1);
                    row_r(row, m, t, m->use[w], 1);
                    row_emit(lp, row, LE, 1);
                }
            }
        }
        free(fill);
    }
    return count;
}

/* The bytes a run of k writes, in units. */
static int64_t out_units(const Model *m, int k)
{
    const IrNode *n = &m->g->nodes[k];
    int64_t s = 0;
    for (int j = 0; j < n->nout; j++)
        if (n->out[j] >= 0 && m->owner[n->out[j]] == n->out[j]) s += m->units[n->out[j]];
    return s;
}

static void model_free(Model *m)
{
    free(m->node_at), free(m->pos), free(m->late), free(m->owner), free(m->units), free(m->held_out);
    free(m->rd_start), free(m->rd), free(m->use_start), free(m->use);
    free(m->s_first), free(m->s_last), free(m->s_col), free(m->r_col), free(m->list), free(m->idx);
    free(m->ustart), free(m->unodes);
}

/* ---- the program ---- */

static void add_rows(Model *m, lprec *lp, const double *node_s, int64_t budget_units, double bound_us)
{
    const IrGraph *g = m->g;
    const int64_t *ws = m->req ? m->req->ws_bytes : NULL;
    Row row = {0};
    /* the objective: microseconds of the reruns */
    for (int t = 0; t < m->T; t++) {
        int j = m->node_at[t];
        if (!m->r_col[j]) continue;
        for (int s = t + 1; s <= m->late[j]; s++)
            row_add(&row, m->r_col[j] + s - t - 1, 1e6 * (node_s ? node_s[j] : 0) + ILP_EPS_US);
    }
    set_obj_fnex(lp, row.n, row.val, row.col);
    /* a bound on it as a row (lp_solve's set_obj_bound ended in its
     * ACCURACYERROR where the bound was below the relaxation's optimum) */
    if (bound_us > 0) add_constraintex(lp, row.n, row.val, row.col, LE, bound_us);
    row.n = 0;
    for (int c = 1; c <= m->nbin; c++) set_binary(lp, c, TRUE);
    /* the inputs of each node that may run in each stage; in its own stage
     * a group's last node also needs its members' inputs from outside the
     * group, which the loop reads when it runs (a group's first run spans
     * the stages of its nodes: those inputs are held until the last one's;
     * a rerun runs the group in one stage, its members' own rows hold) */
    const int *run_at = m->req ? m->req->run_at : NULL;
    for (int t = 0; t < m->T; t++) {
        int n = stage_nodes(m, t);
        for (int i = 0; i < n; i++) {
            int k = m->list[i];
            for (int j = run_at && m->pos[k] == t ? 0 : k; j <= k; j++) {
                if (j != k && (run_at[j] != k || m->pos[j] < 0)) continue;
                const IrNode *node = &g->nodes[j];
                for (int a = 0; a < node->nin; a++) {
                    int v = node->in[a], o = v >= 0 ? m->owner[v] : -1;
                    if (o < 0) continue;
                    int pv = g->values[v].producer;
                    if (j != k && pv >= 0 && run_at[pv] == k) continue; /* made inside the group */
                    int deps[2] = {v, o};
                    for (int d = 0; d < (o == v ? 1 : 2); d++) {
                        int p = g->values[deps[d]].producer;
                        if (p < 0) continue; /* a graph input: held throughout */
                        row_r(&row, m, t, k, 1);
                        row_r(&row, m, t, p, -1);
                        row_s(&row, m, t, deps[d], -1);
                        row_emit(lp, &row, LE, 0);
                    }
                }
            }
        }
        stage_clear(m, n);
    }
    /* a copy is held into t+1 only when held or written in t; a held view
     * not across a rerun of its root */
    for (int v = 0; v < g->nvalues; v++) {
        int p = g->values[v].producer, o = m->owner[v], one;
        int po = o >= 0 && o != v ? g->values[o].producer : -1;
        for (int t = m->s_first[v]; t <= m->s_last[v]; t++) {
            if (t > m->s_first[v]) {
                row_s(&row, m, t, v, 1);
                row_s(&row, m, t - 1, v, -1);
                row_r(&row, m, t - 1, p, -1);
                row_emit(lp, &row, LE, 0);
            }
            if (po >= 0 && r_term(m, t, po, &one)) {
                row_s(&row, m, t, v, 1);
                row_r(&row, m, t, po, 1);
                row_emit(lp, &row, LE, 1);
            }
        }
    }
    /* memory, stage by stage: U columns then FREE columns per stage */
    int col = m->nbin + 1;
    int *fk_start = ir_xmalloc(((size_t)m->T + 1) * sizeof *fk_start), *fk_v = NULL, *fk_col = NULL;
    for (int t = 0; t < m->T; t++) {
        int n = stage_nodes(m, t), ucol = col;
        col += n;
        int nf = stage_frees(m, t, n, NULL, 0, NULL, NULL, NULL, NULL);
        fk_v = ir_xrealloc(fk_v, (size_t)(nf + 1) * sizeof *fk_v);
        fk_col = ir_xrealloc(fk_col, (size_t)(nf + 1) * sizeof *fk_col);
        stage_frees(m, t, n, lp, col, &row, fk_start, fk_v, fk_col);
        for (int c = col; c < col + nf; c++) set_bounds(lp, c, 0, 1);
        col += nf;
        /* held when the stage starts: graph inputs still to be read, graph
         * outputs already written, copies held */
        double held = 0;
        for (int v = 0; v < g->nvalues; v++) {
            if (m->owner[v] != v || !m->units[v]) continue;
            if (g->values[v].producer < 0) {
                if (last_reader(m, m->use_start, m->use, v) >= t || m->held_out[v]) held += (double)m->units[v];
                continue;
            }
            row_s(&row, m, t, v, -(double)m->units[v]);
        }
        for (int i = 0; i < n; i++) {
            int k = m->list[i];
            row_add(&row, ucol + i, 1);
            if (i) {
                row_add(&row, ucol + i - 1, -1);
                for (int f = fk_start[i - 1]; f < fk_start[i]; f++)
                    row_add(&row, fk_col[f], (double)m->units[fk_v[f]]);
            }
            row_r(&row, m, t, k, -(double)out_units(m, k));
            row_emit(lp, &row, GE, i ? 0 : held);
            int64_t w = ws ? (ws[k] + OPT_ALIGN - 1) / OPT_ALIGN : 0;
            row_add(&row, ucol + i, 1);
            if (w) row_r(&row, m, t, k, (double)w);
            row_emit(lp, &row, LE, (double)budget_units);
        }
        stage_clear(m, n);
    }
    free(fk_start), free(fk_v), free(fk_col);
    free(row.col), free(row.val);
}

/* U and FREE columns beyond the binaries. */
static int64_t continuous_count(Model *m)
{
    int64_t c = 0;
    for (int t = 0; t < m->T; t++) {
        int n = stage_nodes(m, t);
        c += n + stage_frees(m, t, n, NULL, 0, NULL, NULL, NULL, NULL);
        stage_clear(m, n);
    }
    return c;
}

double opt_remat_ilp_cost(const OptSchedule *s, const double *node_s)
{
    double us = 0;
    for (int i = 0; i < s->n; i++)
        if (s->ins[i].kind == OPT_RERUN) us += 1e6 * (node_s ? node_s[s->ins[i].node] : 0) + ILP_EPS_US;
    return us;
}

int opt_remat_ilp(const IrGraph *g, const double *node_s, const OptMemRequest *req, int64_t arena_budget,
                  double time_limit_s, double bound_us, OptSchedule *out, OptSimResult *sim, char *why,
                  size_t nwhy)
{
    /* no rerun is the least any schedule costs: when store-all fits, it is optimal */
    opt_schedule_store_all(g, out);
    IR_ASSERT(opt_schedule_simulate(g, out, node_s, req, sim) == 0);
    if (sim->peak_bytes <= arena_budget) {
        snprintf(why, nwhy, "optimal: store-all fits (no program solved)");
        return 0;
    }
    opt_schedule_free(out);
    memset(sim, 0, sizeof *sim);
    Model m;
    model_init(&m, g, req);
    model_columns(&m);
    int64_t ncont = continuous_count(&m), nvars = m.nbin + ncont;
    if (nvars > ILP_MAX_VARS) {
        snprintf(why, nwhy, "the exact program would have %lld variables (%d binary) over %d stages, above the "
                 "limit of %d (lp_solve finds no schedule in minutes at that size); use the default solver (rotor)",
                 (long long)nvars, m.nbin, m.T, (int)ILP_MAX_VARS);
        model_free(&m);
        return -1;
    }
    lprec *lp = make_lp(0, (int)nvars);
    IR_ASSERT(lp);
    set_verbose(lp, NEUTRAL);
    set_add_rowmode(lp, TRUE);
    add_rows(&m, lp, node_s, arena_budget / OPT_ALIGN, bound_us);
    set_add_rowmode(lp, FALSE);
    set_minim(lp);
    set_break_at_first(lp, FALSE);
    set_timeout(lp, (long)ceil(time_limit_s > 1 ? time_limit_s : 1));
    /* lp_solve's default (the lowest-indexed fractional column, depth first)
     * often finds no schedule at all in minutes; the most fractional column
     * first finds good ones early (bench/results/remat_ilp.md) */
    set_bb_rule(lp, NODE_FRACTIONSELECT);
    int st = solve(lp), rc;
    double secs = time_elapsed(lp);
    int rows = get_Nrows(lp);
    if (st == INFEASIBLE && bound_us > 0) {
        snprintf(why, nwhy, "no schedule fits %lld arena bytes with reruns under %.4g us (%lld variables, %d rows, "
                 "%.3g s)", (long long)arena_budget, bound_us, (long long)nvars, rows, secs);
        rc = 1;
    } else if (st == INFEASIBLE) {
        snprintf(why, nwhy, "no schedule fits %lld arena bytes (%lld variables, %d rows, %.3g s)",
                 (long long)arena_budget, (long long)nvars, rows, secs);
        rc = 1;
    } else if (st == OPTIMAL || st == PRESOLVED || st == SUBOPTIMAL) {
        REAL *x;
        get_ptr_variables(lp, &x);
        int *runs = ir_xcalloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *runs);
        for (int t = 0; t < m.T; t++) {
            int n = stage_nodes(&m, t);
            for (int i = 0; i < n; i++) {
                int k = m.list[i], one, c = r_term(&m, t, k, &one);
                if (!one && !(c && x[c - 1] > 0.5)) continue;
                opt_schedule_push(out, k, runs[k]++ ? OPT_RERUN : OPT_RUN);
            }
            stage_clear(&m, n);
        }
        free(runs);
        opt_schedule_place_updates(g, out);
        IR_ASSERT(opt_schedule_simulate(g, out, node_s, req, sim) == 0);
        IR_ASSERT(sim->peak_bytes <= arena_budget);
        double best = get_objective(lp);
        if (st == SUBOPTIMAL) /* the root relaxation (real_solution) bounds the optimum from below */
            snprintf(why, nwhy, "time limit of %.0f s hit: the best schedule found, %.4g us of reruns, at most "
                     "%.3g%% above the optimum by the LP bound (%lld variables, %d rows)", time_limit_s, best,
                     best > 0 ? 100 * (best - lp->real_solution) / best : 0.0, (long long)nvars, rows);
        else
            snprintf(why, nwhy, "optimal: %.4g us of reruns (%lld variables, %d binary, %d rows, %.3g s)", best,
                     (long long)nvars, m.nbin, rows, secs);
        rc = st == SUBOPTIMAL ? 2 : 0;
    } else if (st == TIMEOUT) {
        snprintf(why, nwhy, "time limit of %.0f s hit before any schedule was found (%lld variables, %d rows)",
                 time_limit_s, (long long)nvars, rows);
        rc = 2;
    } else {
        snprintf(why, nwhy, "lp_solve failed (status %d) on %lld variables, %d rows", st, (long long)nvars, rows);
        rc = -1;
    }
    delete_lp(lp);
    model_free(&m);
    return rc;
}
