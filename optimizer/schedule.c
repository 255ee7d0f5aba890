/* The schedule (optimizer.h): the order a device runs the nodes in, with
 * the recomputations remat adds, how much it costs (simulate), and the
 * rewrite that turns it into an ordinary graph (apply).
 *
 * A schedule names copies, not buffers: the k-th run of a node writes the
 * k-th copy of its outputs, and a read sees the latest copy. That is enough
 * to say everything rotor-style remat needs (keep a checkpoint, run a
 * segment forward again, read the recomputed activations in backward), and
 * it keeps the rewritten graph in SSA form, so the memory planner and the
 * code generator treat a recomputed value like any other. On the cpu target
 * a rerun executes the same kernel on the same bits as the first run, so
 * recomputation changes no bit of the result. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"
#include "train.h"

void opt_schedule_push(OptSchedule *s, int node, OptInstrKind kind)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->ins = ir_xrealloc(s->ins, (size_t)s->cap * sizeof *s->ins);
    }
    s->ins[s->n++] = (OptInstr){node, kind, -1};
}

void opt_schedule_push_copy(OptSchedule *s, OptInstrKind kind, int value)
{
    opt_schedule_push(s, -1, kind);
    s->ins[s->n - 1].value = value;
}

int opt_schedule_copies(const OptSchedule *s)
{
    int n = 0;
    for (int k = 0; k < s->n; k++) n += s->ins[k].kind == OPT_TO_HOST || s->ins[k].kind == OPT_FROM_HOST;
    return n;
}

int opt_instr_is_move(OptInstrKind k)
{
    return k == OPT_TO_HOST || k == OPT_FROM_HOST || k == OPT_NARROW || k == OPT_WIDEN;
}

OptLink opt_device_link(const OptDevice *d)
{
    return (OptLink){d->link_bw, d->copy_overlap != 0, d->mem_bw, d->vec_flops_f32, d->launch_s};
}

double opt_lowbit_s(const OptLink *link, int64_t numel, int joined)
{
    /* a Cast's roofline (cost.c): an instruction per element written, or
     * the bytes of both copies (4 + 2 per element), and a launch; joined,
     * the loop loads the float32 copy anyway and launches once */
    double n = (double)numel, work = link->vec_flops > 0 ? n / link->vec_flops : 0;
    return joined ? fmax(work, 2.0 * n / link->mem_bw) : fmax(work, 6.0 * n / link->mem_bw) + link->launch_s;
}

int opt_narrow_joins(const IrGraph *g, const OptMemRequest *req, int v, int root)
{
    if (!req || !req->side_store || !req->run_at || v < 0 || root < 0 || root >= g->nnodes ||
        req->run_at[root] != root || !req->side_store[root] || g->nodes[root].nout < 1 || g->nodes[root].out[0] < 0)
        return 0;
    const IrValue *a = &g->values[v], *y = &g->values[g->nodes[root].out[0]];
    if (a->dtype != IR_F32 || a->rank != y->rank || memcmp(a->dims, y->dims, (size_t)a->rank * sizeof *a->dims))
        return 0;
    for (int i = 0; i <= root; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || req->run_at[i] != root || n->phase == IR_LOWBIT) continue;
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] == v) return 1;
    }
    return 0;
}

int opt_reads_bf16(const IrGraph *g, int node, int j)
{
    const IrNode *n = &g->nodes[node];
    if (j != 1 || j >= n->nin) return 0;
    if (n->op == IR_OP_BatchNormGrad) return !ir_attr_int(n, "training_mode", 0);
    return n->op == IR_OP_ConvGradWeight && n->nin == 6;
}

int opt_widen_at_use(const IrGraph *g, const OptSchedule *s, int v, int from)
{
    int reads = 0;
    for (int q = from; q < s->n; q++) {
        const OptInstr *in = &s->ins[q];
        if (opt_instr_is_move(in->kind)) {
            if (in->value == v) return 0; /* copied or converted again: widen it */
            continue;
        }
        const IrNode *n = &g->nodes[in->node];
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] == v) {
                if (!opt_reads_bf16(g, in->node, j)) return 0;
                reads++;
            }
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] == v) return reads > 0;
    }
    return reads > 0;
}

void opt_schedule_free(OptSchedule *s)
{
    free(s->ins);
    memset(s, 0, sizeof *s);
}

OptSchedule opt_schedule_copy(const OptSchedule *s)
{
    OptSchedule c = {s->n, s->n, ir_xmalloc((size_t)(s->n ? s->n : 1) * sizeof *s->ins)};
    memcpy(c.ins, s->ins, (size_t)s->n * sizeof *s->ins);
    return c;
}

int opt_schedule_equal(const OptSchedule *a, const OptSchedule *b)
{
    return a->n == b->n && !memcmp(a->ins, b->ins, (size_t)a->n * sizeof *a->ins);
}

void opt_schedule_store_all(const IrGraph *g, OptSchedule *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead) opt_schedule_push(s, i, OPT_RUN);
}

void opt_schedule_place_updates(const IrGraph *g, OptSchedule *s)
{
    int n = s->n;
    int *nodes = ir_xmalloc((size_t)(n ? n : 1) * sizeof *nodes), *perm = ir_xmalloc((size_t)(n ? n : 1) * sizeof *perm);
    for (int k = 0; k < n; k++) nodes[k] = s->ins[k].node;
    ir_update_order(g, nodes, n, perm);
    OptInstr *ins = ir_xmalloc((size_t)(s->cap ? s->cap : 1) * sizeof *ins);
    for (int k = 0; k < n; k++) ins[k] = s->ins[perm[k]];
    free(s->ins);
    s->ins = ins;
    free(nodes);
    free(perm);
}

int opt_persistent(const IrGraph *g, const OptMemRequest *req, int v)
{
    const IrValue *val = &g->values[v];
    return val->role == IR_PARAM || val->role == IR_CONST || val->role == IR_OPT_STATE ||
           val->alias >= 0 || (req && req->static_only && req->static_only[v]);
}

static int64_t align_up(int64_t n) { return (n + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN; }

typedef struct {
    int64_t size;
    int first, last;
    int group;        /* the fused group of its writer (run_at), or -1 */
    int until;        /* the instruction of that group's last node (the loop's run) */
    int outside_read; /* read by a node outside that run of the group */
    double ready;     /* a copy back from the host: when it is done (0: at once) */
} SimBuf;

/* The most bytes of bufs live at one instruction, workspaces included, and
 * where (r->peak_bytes, r->peak_at). */
static void peak_of(const SimBuf *buf, int nb, const int64_t *ws_at, int nsteps, OptSimResult *r)
{
    int64_t *delta = ir_xcalloc((size_t)nsteps + 1, sizeof *delta);
    for (int b = 0; b < nb; b++) {
        if (!buf[b].outside_read) continue; /* kept in registers by its fused loop */
        delta[buf[b].first] += buf[b].size;
        delta[buf[b].last + 1] -= buf[b].size;
    }
    int64_t live = 0;
    r->peak_bytes = 0;
    r->peak_at = 0;
    for (int k = 0; k < nsteps; k++) {
        live += delta[k];
        if (live + ws_at[k] > r->peak_bytes) {
            r->peak_bytes = live + ws_at[k];
            r->peak_at = k;
        }
    }
    free(delta);
}

int opt_schedule_simulate(const IrGraph *g, const OptSchedule *s, const double *node_s,
                          const OptMemRequest *req, OptSimResult *r)
{
    return opt_schedule_timeline(g, s, node_s, req, NULL, r, NULL, NULL);
}

int *opt_schedule_group_ends(const IrGraph *g, const OptSchedule *s, const OptMemRequest *req)
{
    if (!req || !req->run_at) return NULL;
    int nn = g->nnodes;
    int *next = ir_xmalloc((size_t)(nn ? nn : 1) * sizeof *next);
    int *end = ir_xmalloc((size_t)(s->n ? s->n : 1) * sizeof *end);
    for (int i = 0; i < nn; i++) next[i] = -1;
    for (int k = s->n - 1; k >= 0; k--) {
        const OptInstr *in = &s->ins[k];
        end[k] = k;
        if (opt_instr_is_move(in->kind)) continue;
        int root = req->run_at[in->node];
        if (root != in->node && next[root] >= 0) end[k] = next[root];
        next[in->node] = k;
    }
    free(next);
    return end;
}

int opt_schedule_timeline(const IrGraph *g, const OptSchedule *s, const double *node_s, const OptMemRequest *req,
                          const OptLink *link, OptSimResult *r, double *start_s, double *end_s)
{
    memset(r, 0, sizeof *r);
    enum { NONE = -1, PERSISTENT = -2 };
    int nv = g->nvalues, nsteps = s->n ? s->n : 1;
    int *cur = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *cur);
    int *low = NULL; /* per value: its bfloat16 copy's buffer, or -1 (low-bit storage) */
    int nb = 0, capb = 256;
    SimBuf *buf = ir_xmalloc((size_t)capb * sizeof *buf);
    int64_t *ws_at = ir_xcalloc((size_t)nsteps, sizeof *ws_at);
    for (int v = 0; v < nv; v++) cur[v] = opt_persistent(g, req, v) ? PERSISTENT : NONE;
#define NEWBUF(bytes, at, grp)                                                       \
    (nb == capb ? (buf = ir_xrealloc(buf, (size_t)(capb *= 2) * sizeof *buf)) : buf, \
     buf[nb] = (SimBuf){align_up(bytes), (at), (at), (grp), (at), 0, 0}, nb++)
    for (int i = 0; i < g->ninputs; i++) {
        int v = g->inputs[i];
        if (cur[v] == NONE) cur[v] = NEWBUF(ir_value_bytes(&g->values[v]), 0, -1);
        if (cur[v] >= 0) buf[cur[v]].outside_read = 1; /* in memory, read or not */
    }
    int ninput_bufs = nb; /* graph inputs are never written over */
    /* in place: the buffers each instruction's output may take, in the
     * order they were read (cand_buf[q], taken at instruction cand_at[q]:
     * a fused node's reads count at its group's loop, whose output takes
     * them), and the buffer each instruction writes (out_buf, -1) */
    const unsigned *inplace = req ? req->inplace_in : NULL;
    int *out_buf = inplace ? ir_xmalloc((size_t)nsteps * sizeof *out_buf) : NULL;
    int *cand_at = NULL, *cand_buf = NULL, ncand = 0, cap_cand = 0, *in_at = NULL, *in_list = NULL;
    /* copies: per value, when its host copy is complete (-1: none); with
     * overlap, the copies out that start after each instruction (a list
     * threaded through next_out, by the writer of the copied buffer) */
    int ncopies = opt_schedule_copies(s), rc = 0;
    double *host_done = NULL, t = 0, d2h_free = 0, h2d_free = 0;
    int *first_out = NULL, *next_out = NULL, *group_end = NULL;
    if (ncopies) {
        if (!link || !(link->bw > 0)) {
            rc = ir_fail((IrGraph *)g, -1, "schedule: %d copies to or from the host, but no host link to time them",
                         ncopies);
            goto out;
        }
        host_done = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *host_done);
        for (int v = 0; v < nv; v++) host_done[v] = -1;
        first_out = ir_xmalloc((size_t)nsteps * sizeof *first_out);
        next_out = ir_xmalloc((size_t)nsteps * sizeof *next_out);
        for (int k = 0; k < nsteps; k++) first_out[k] = next_out[k] = -1;
        if (link->overlap) { /* who wrote each copy out's buffer: the issue points */
            int *wrote = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *wrote);
            for (int v = 0; v < nv; v++) wrote[v] = -1;
            for (int k = 0; k < s->n; k++) {
                const OptInstr *in = &s->ins[k];
                if (in->kind == OPT_FROM_HOST || in->kind == OPT_NARROW) {
                    continue; /* the value's bytes are those its host copy came from; a narrowing writes another */
                } else if (in->kind == OPT_WIDEN) {
                    wrote[in->value] = k;
                } else if (in->kind == OPT_TO_HOST) {
                    int w = wrote[in->value];
                    if (w >= 0) { /* append: the stream runs them in issue order, then schedule order */
                        int *at = &first_out[w];
                        while (*at >= 0) at = &next_out[*at];
                        *at = k;
                    }
                } else {
                    const IrNode *n = &g->nodes[in->node];
                    for (int j = 0; j < n->nout; j++)
                        if (n->out[j] >= 0)
                            wrote[n->out[j]] = j == 0 && (ir_ops[n->op].flags & OPF_VIEW) && n->in[0] >= 0
                                                   ? wrote[n->in[0]] : k;
                }
            }
            free(wrote);
        }
    }
    /* where each fused node's loop runs: its reads are there (its inputs
     * live across whatever the schedule puts between a group's nodes), and
     * a value it writes is in registers only for readers up to there (a
     * later run of the group, a rerun, reads a copy in memory) */
    group_end = opt_schedule_group_ends(g, s, req);
    for (int k = 0; k < s->n; k++) {
        const OptInstr *ins = &s->ins[k];
        if (inplace) out_buf[k] = -1;
        if (ins->kind == OPT_NARROW || ins->kind == OPT_WIDEN) {
            int v = ins->value, narrow = ins->kind == OPT_NARROW;
            if (!low) {
                low = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *low);
                for (int i = 0; i < nv; i++) low[i] = -1;
            }
            if (v < 0 || v >= nv || (narrow ? cur[v] < 0 : low[v] < 0) || g->values[v].dtype != IR_F32 ||
                !link || !(link->mem_bw > 0)) {
                rc = ir_fail((IrGraph *)g, -1, "schedule: instruction %d %s '%s', which %s", k,
                             narrow ? "narrows" : "widens", v >= 0 && v < nv ? g->values[v].name : "?",
                             !link || !(link->mem_bw > 0) ? "no device memory rate times"
                             : v >= 0 && v < nv && g->values[v].dtype != IR_F32 ? "is not float32"
                             : narrow ? "has no device copy there" : "has no bfloat16 copy there");
                goto out;
            }
            SimBuf *b = &buf[narrow ? cur[v] : low[v]];
            if (k > b->last) b->last = k;
            b->outside_read = 1;
            if (b->ready > t) r->stall_s += b->ready - t, t = b->ready;
            if (start_s) start_s[k] = t;
            int64_t numel = ir_value_numel(&g->values[v]);
            int at_use = !narrow && opt_widen_at_use(g, s, v, k + 1);
            double dur = at_use ? 0
                                : opt_lowbit_s(link, numel, narrow && k + 1 < s->n && !opt_instr_is_move(s->ins[k + 1].kind) &&
                                                                opt_narrow_joins(g, req, v, s->ins[k + 1].node));
            t += dur, r->lowbit_s += dur;
            if (narrow) {
                low[v] = NEWBUF(2 * numel, k, -1);
                buf[low[v]].outside_read = 1;
                r->lowbit_bytes += ir_value_bytes(&g->values[v]);
            } else if (at_use) { /* the reads after it load the bfloat16 copy */
                cur[v] = low[v];
            } else {
                cur[v] = NEWBUF(ir_value_bytes(&g->values[v]), k, -1);
                buf[cur[v]].outside_read = 1;
            }
            if (end_s) end_s[k] = t;
            continue;
        }
        if (ins->kind == OPT_TO_HOST || ins->kind == OPT_FROM_HOST) {
            int v = ins->value;
            if (v < 0 || v >= nv || cur[v] < 0 || (ins->kind == OPT_FROM_HOST && host_done[v] < 0)) {
                rc = ir_fail((IrGraph *)g, -1, "schedule: instruction %d copies '%s' %s, which %s", k,
                             v >= 0 && v < nv ? g->values[v].name : "?",
                             ins->kind == OPT_TO_HOST ? "to the host" : "from the host",
                             ins->kind == OPT_TO_HOST ? "has no device copy there" : "has no host copy there");
                goto out;
            }
            double dur = (double)ir_value_bytes(&g->values[v]) / link->bw;
            if (start_s) start_s[k] = t;
            if (ins->kind == OPT_TO_HOST) {
                SimBuf *b = &buf[cur[v]];
                if (k > b->last) b->last = k;
                r->host_bytes += ir_value_bytes(&g->values[v]);
                if (!link->overlap) host_done[v] = t += dur;
                else if (host_done[v] < 0) host_done[v] = t; /* its writer ran before the link was known */
                if (host_done[v] > t) r->stall_s += host_done[v] - t, t = host_done[v];
            } else {
                cur[v] = NEWBUF(ir_value_bytes(&g->values[v]), k, -1);
                buf[cur[v]].outside_read = 1;
                if (link->overlap) {
                    double at = t > h2d_free ? t : h2d_free;
                    if (host_done[v] > at) at = host_done[v];
                    buf[cur[v]].ready = h2d_free = at + dur;
                } else {
                    t += dur;
                }
            }
            if (end_s) end_s[k] = t;
            continue;
        }
        int node = ins->node;
        const IrNode *n = &g->nodes[node];
        int group = req && req->run_at ? req->run_at[node] : node;
        for (int j = 0; inplace && j < n->nin && j < 32; j++) {
            int v = n->in[j];
            if (!(inplace[node] >> j & 1) || v < 0 || cur[v] < ninput_bufs) continue;
            if (ncand == cap_cand) {
                cap_cand = cap_cand ? 2 * cap_cand : 64;
                cand_at = ir_xrealloc(cand_at, (size_t)cap_cand * sizeof *cand_at);
                cand_buf = ir_xrealloc(cand_buf, (size_t)cap_cand * sizeof *cand_buf);
            }
            cand_at[ncand] = group_end && group_end[k] > k ? group_end[k] : k;
            cand_buf[ncand++] = cur[v];
        }
        if (ins->kind == OPT_RERUN) r->reruns++;
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j];
            if (v < 0 || cur[v] == PERSISTENT) continue;
            if (cur[v] == NONE) {
                rc = ir_fail((IrGraph *)g, node, "schedule: instruction %d reads '%s' before any "
                             "instruction writes it", k, g->values[v].name);
                goto out;
            }
            SimBuf *b = &buf[cur[v]];
            /* a fused node reads when its group's loop runs */
            int at = group_end && group_end[k] > k ? group_end[k] : k;
            if (at > b->last) b->last = at;
            b->outside_read |= b->group != group || k > b->until;
            if (b->ready > t) r->stall_s += b->ready - t, t = b->ready; /* a copy back not done yet */
        }
        if (start_s) start_s[k] = t;
        if (node_s) t += node_s[node];
        if (req && req->ws_bytes) ws_at[k] += align_up(req->ws_bytes[node]);
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0 || cur[v] == PERSISTENT) continue;
            if (j == 0 && (ir_ops[n->op].flags & OPF_VIEW) && n->in[0] >= 0) {
                cur[v] = cur[n->in[0]]; /* a view shares its input's bytes */
                continue;
            }
            int fused = req && req->run_at && req->run_at[node] != node;
            cur[v] = NEWBUF(ir_value_bytes(&g->values[v]), k, fused ? group : -1);
            if (!fused) buf[cur[v]].outside_read = 1;
            else if (group_end) buf[cur[v]].until = group_end[k];
            if (inplace && j == 0 && group == node) out_buf[k] = cur[v];
        }
        if (end_s) end_s[k] = t;
        for (int q = first_out ? first_out[k] : -1; q >= 0; q = next_out[q]) { /* copies out start */
            int v = s->ins[q].value;
            double at = t > d2h_free ? t : d2h_free;
            host_done[v] = d2h_free = at + (double)ir_value_bytes(&g->values[v]) / link->bw;
        }
    }
    r->step_s = t;
    for (int i = 0; i < g->noutputs; i++) {
        int v = g->outputs[i];
        if (cur[v] >= 0) buf[cur[v]].last = nsteps - 1;
    }
    /* the peak without in place, then with, as the memory planner does it
     * (the output's buffer joins the input's when that input is last read
     * here); the planner keeps the placement of either, so the lower peak
     * counts */
    peak_of(buf, nb, ws_at, nsteps, r);
    /* into[b]: the buffer that merged output b joined, so that a later
     * in-place read of b reads that one (followed to its end) */
    int *into = inplace ? ir_xmalloc((size_t)(nb ? nb : 1) * sizeof *into) : NULL;
    for (int b = 0; inplace && b < nb; b++) into[b] = -1;
    /* the candidates by instruction, in their order: in_list[in_at[k] ..
     * in_at[k + 1]) (a counting sort) */
    if (inplace) {
        in_at = ir_xcalloc((size_t)nsteps + 1, sizeof *in_at);
        in_list = ir_xmalloc((size_t)(ncand ? ncand : 1) * sizeof *in_list);
        int *fill = ir_xmalloc((size_t)nsteps * sizeof *fill);
        for (int q = 0; q < ncand; q++) in_at[cand_at[q] + 1]++;
        for (int k = 0; k < nsteps; k++) in_at[k + 1] += in_at[k];
        memcpy(fill, in_at, (size_t)nsteps * sizeof *fill);
        for (int q = 0; q < ncand; q++) in_list[fill[cand_at[q]]++] = cand_buf[q];
        free(fill);
    }
    for (int k = 0; inplace && k < s->n; k++) {
        int bo = out_buf[k];
        for (int q = in_at[k]; bo >= 0 && q < in_at[k + 1]; q++) {
            int bi = in_list[q];
            while (into[bi] >= 0) bi = into[bi];
            if (buf[bi].last != k || buf[bo].size > buf[bi].size) continue;
            if (buf[bo].last > buf[bi].last) buf[bi].last = buf[bo].last;
            buf[bo].size = 0;
            into[bo] = bi;
            break;
        }
    }
    free(into);
    if (inplace) {
        OptSimResult merged = *r;
        peak_of(buf, nb, ws_at, nsteps, &merged);
        if (merged.peak_bytes < r->peak_bytes) r->peak_bytes = merged.peak_bytes, r->peak_at = merged.peak_at;
    }
out:
#undef NEWBUF
    free(group_end);
    free(low);
    free(in_at);
    free(in_list);
    free(cand_at);
    free(cand_buf);
    free(out_buf);
    free(cur);
    free(buf);
    free(ws_at);
    free(host_done);
    free(first_out);
    free(next_out);
    return rc;
}

/* opt_schedule_apply's state: per value of the growing graph, its latest
 * device copy (cur), whether that has been written, and its host and
 * bfloat16 copies (-1: none). */
typedef struct {
    int *cur, *host, *low;
    unsigned char *written;
    int nv;
} Apply;

/* A new value like v named PREFIX/NAME (of dtype dt); the arrays grown to cover it. */
static int copy_value(IrGraph *g, int v, const char *prefix, IrDType dt, Apply *a)
{
    char base[512];
    snprintf(base, sizeof base, "%s/%s", prefix, g->values[v].name);
    const char *name = ir_value_find(g, base) < 0 ? base : ir_unique_name(g, base);
    int c = ir_value_new(g, name, IR_ACTIVATION);
    const IrValue *src = &g->values[v];
    ir_value_set_shape(&g->values[c], dt, src->rank, src->dims);
    size_t n = (size_t)g->nvalues;
    a->cur = ir_xrealloc(a->cur, n * sizeof *a->cur);
    a->written = ir_xrealloc(a->written, n);
    a->host = ir_xrealloc(a->host, n * sizeof *a->host);
    a->low = ir_xrealloc(a->low, n * sizeof *a->low);
    for (int i = a->nv; i < g->nvalues; i++) a->cur[i] = i, a->written[i] = 1, a->host[i] = a->low[i] = -1;
    a->nv = g->nvalues;
    return c;
}

enum { NO_NODE = -2 };

/* Instruction k of s, an OPT_TO_HOST or OPT_FROM_HOST, as a loom.ToHost or
 * loom.FromHost node, an OPT_NARROW or OPT_WIDEN as a Cast: its id, NO_NODE
 * for a widening at use, or -1 with g->err. */
static int apply_move(IrGraph *g, const OptSchedule *s, int k, Apply *a)
{
    const OptInstr *ins = &s->ins[k];
    int v = ins->value, to = ins->kind == OPT_TO_HOST, narrow = ins->kind == OPT_NARROW;
    if (ins->kind == OPT_NARROW || ins->kind == OPT_WIDEN) {
        if (v < 0 || v >= a->nv || (narrow ? !a->written[a->cur[v]] : a->low[v] < 0) || g->values[v].dtype != IR_F32)
            return ir_fail(g, -1, "schedule: instruction %d %s %s, which %s", k,
                           narrow ? "narrows" : "widens", v >= 0 && v < a->nv ? g->values[v].name : "a value that does not exist",
                           v >= 0 && v < a->nv && g->values[v].dtype != IR_F32 ? "is not float32"
                           : narrow ? "has no device copy there" : "has no bfloat16 copy there");
        if (!narrow && opt_widen_at_use(g, s, v, k + 1)) { /* the readers load the bfloat16 copy */
            a->cur[v] = a->low[v];
            return NO_NODE;
        }
        char name[512];
        snprintf(name, sizeof name, "%s/%s", narrow ? "narrow" : "widen", g->values[v].name);
        int in = narrow ? a->cur[v] : a->low[v];
        int out = copy_value(g, v, narrow ? "bf16" : "lowbit", narrow ? IR_BF16 : IR_F32, a);
        int id = ir_node_new(g, IR_OP_Cast, name, 1, &in, 1, &out);
        ir_attr_set_int(g, id, "to", narrow ? 16 : 1); /* TensorProto: BFLOAT16, FLOAT */
        g->nodes[id].phase = IR_LOWBIT;
        if (narrow) a->low[v] = out;
        else a->cur[v] = out;
        return id;
    }
    if (v < 0 || v >= a->nv || (to ? !a->written[a->cur[v]] : a->host[v] < 0))
        return ir_fail(g, -1, "schedule: instruction %d copies %s %s, which has no %s copy there", k,
                       v >= 0 && v < a->nv ? g->values[v].name : "a value that does not exist",
                       to ? "to the host" : "from the host", to ? "device" : "host");
    char name[512];
    snprintf(name, sizeof name, "%s/%s", to ? "to_host" : "from_host", g->values[v].name);
    int in = to ? a->cur[v] : a->host[v];
    int out = copy_value(g, v, to ? "host" : "offload", g->values[v].dtype, a);
    int id = ir_node_new(g, to ? IR_OP_ToHost : IR_OP_FromHost, name, 1, &in, 1, &out);
    g->nodes[id].phase = IR_OFFLOAD;
    if (to) a->host[v] = out;
    else a->cur[v] = out;
    return id;
}

int opt_schedule_apply(IrGraph *g, const OptSchedule *s)
{
    int nv = g->nvalues, nn = g->nnodes, rc = -1;
    Apply a = {ir_xmalloc((size_t)(nv ? nv : 1) * sizeof(int)), ir_xmalloc((size_t)(nv ? nv : 1) * sizeof(int)),
               ir_xmalloc((size_t)(nv ? nv : 1) * sizeof(int)), ir_xcalloc((size_t)(nv ? nv : 1), 1), nv};
    int *runs = ir_xcalloc((size_t)(nn ? nn : 1), sizeof *runs);
    int *order = ir_xmalloc((size_t)(s->n ? s->n : 1) * sizeof *order), no = 0;
    for (int v = 0; v < nv; v++) {
        a.cur[v] = v;
        a.host[v] = a.low[v] = -1;
        a.written[v] = g->values[v].producer < 0;
    }
    for (int k = 0; k < s->n; k++) {
        int node = s->ins[k].node;
        if (opt_instr_is_move(s->ins[k].kind)) {
            int id = apply_move(g, s, k, &a);
            if (id == NO_NODE) continue;
            if (id < 0) goto out;
            order[no++] = id;
            continue;
        }
        if (node < 0 || node >= nn || g->nodes[node].dead) {
            ir_fail(g, -1, "schedule: instruction %d runs node %d, which does not exist", k, node);
            goto out;
        }
        IrNode n = g->nodes[node]; /* a copy: ir_node_new may move the array */
        int rerun = s->ins[k].kind == OPT_RERUN;
        if (rerun ? n.phase != IR_FORWARD || !runs[node] : runs[node]) {
            ir_fail(g, node, rerun ? "schedule: instruction %d recomputes a node that is not a forward "
                    "node, or before its first run" : "schedule: instruction %d runs the node twice", k);
            goto out;
        }
        runs[node]++;
        int in[64], out[64];
        IR_ASSERT(n.nin <= 64 && n.nout <= 64);
        for (int j = 0; j < n.nin; j++) {
            int v = n.in[j];
            in[j] = v < 0 ? v : a.cur[v];
            if (v >= 0 && !a.written[in[j]]) {
                ir_fail(g, node, "schedule: instruction %d reads '%s' before any instruction writes it",
                        k, g->values[v].name);
                goto out;
            }
        }
        if (!rerun) {
            memcpy(g->nodes[node].in, in, (size_t)n.nin * sizeof *in);
            for (int j = 0; j < n.nout; j++)
                if (n.out[j] >= 0) a.written[n.out[j]] = 1;
            order[no++] = node;
            continue;
        }
        for (int j = 0; j < n.nout; j++)
            out[j] = n.out[j] < 0 ? -1 : copy_value(g, n.out[j], "remat", g->values[n.out[j]].dtype, &a);
        int id = ir_node_new(g, n.op, n.name, n.nin, in, n.nout, out);
        IrNode *c = &g->nodes[id];
        c->nattr = n.nattr;
        c->attr = n.attr;
        c->phase = IR_RECOMPUTE;
        c->fwd = node;
        c->onnx_index = n.onnx_index;
        for (int j = 0; j < n.nout; j++)
            if (n.out[j] >= 0) a.cur[n.out[j]] = out[j];
        order[no++] = id;
    }
    for (int i = 0; i < nn; i++)
        if (!g->nodes[i].dead && !runs[i]) {
            ir_fail(g, i, "schedule: the node never runs");
            goto out;
        }
    ir_reorder(g, order, no);
    rc = 0;
out:
    free(a.cur);
    free(a.host);
    free(a.low);
    free(a.written);
    free(runs);
    free(order);
    return rc;
}
