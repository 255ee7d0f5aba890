/* Offload (optimizer.h, "offload"): copies of saved values to host memory
 * and back, added to a schedule so that its device memory peak falls to a
 * budget, in the style of pofo (Beaumont et al., "Optimal GPU-CPU
 * offloading strategies for deep neural network training").
 *
 * A value's device copy that is idle across the peak (written before it,
 * read again only after it) can leave: its copy out starts when it is
 * written, and its bytes are free from the first instruction whose start
 * finds that copy done (and that comes after the copy's last read before
 * the gap); its copy back starts as late as lets it arrive before the read
 * after the gap, the copies back queued on their stream latest first. On a
 * device whose copies run beside compute (OptLink.overlap) that costs no
 * compute time while the link keeps up; on one where they do not (the cpu
 * target), a copy out right after the last read and a copy back right
 * before the next, each bytes / bw of compute.
 *
 * The greedy: simulate; at the peak, try the idle device copies largest
 * first (at most MAX_TRIES) and take the first that, with every chosen
 * copy's transfers placed again, is away at the peak (out before it, back
 * after it) while every copy that was away there still is; repeat until
 * the peak fits or none can be taken (the link is full up to the peak).
 * Without overlap, the largest each time. The greedy is the same whatever
 * the room until it stops, so the copies for a larger room are the first
 * of those for a smaller one.
 *
 * Low-bit storage (OPT_MOVE_BF16) is the fallback of each step: when no
 * copy to the host can be taken (the link is full up to the peak, or
 * offload is off), the largest float32 activation (a forward node's
 * output, first run or rerun) idle across the peak is
 * narrowed to bfloat16 right after its last read before the gap and
 * widened right before its next read: half its bytes stay on the device,
 * and the two conversions cost compute (opt_lowbit_s). Where that last
 * read is a loop that can store the copy, the narrowing goes right before
 * the loop's instruction and joins it, a store of 2 bytes an element
 * (opt_narrow_joins); where every read after the gap takes a bfloat16
 * operand, the widening is done at use and costs nothing
 * (opt_widen_at_use). So the copies cost different seconds per byte
 * saved: the greedy takes the cheapest per byte, the largest of equals. */
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"

/* A device copy of the seed: the value its later reads name (itself or one
 * view of it), what it weighs, who wrote it and the seed instructions that
 * read it, in order. */
typedef struct {
    int value, writer, nreads, cap;
    int *reads;  /* where each read runs (its group's last instruction) */
    int *raw;    /* the first instruction of each read (a node of the group) */
    int64_t bytes;
    int ok;      /* can be offloaded at all */
    int narrowable; /* a float32 activation: can be stored as bfloat16 */
} Copy;

/* A chosen offload: copy, the gap (after seed instruction a, before d, the
 * first instruction of the read after it: a node of that reader's group),
 * and where its two instructions go (TO_HOST or NARROW after seed
 * instruction b, FROM_HOST or WIDEN before seed instruction c). */
typedef struct {
    int copy, a, d, b, c;
    int64_t bytes;
    double dur; /* the copy's time on the link */
    int bf16;   /* stored as bfloat16 on the device, not copied to the host */
    int joined; /* bf16: narrowed inside the loop of the read at a (opt_narrow_joins) */
} Move;

struct Ctx {
    const IrGraph *g;
    const double *node_s;
    const OptMemRequest *req;
    const OptLink *link;
    const OptSchedule *seed;
    double *start, *end; /* the seed's timeline */
    Copy *copies;
    int ncopies;
    Move *moves;
    int nmoves;
};

/* A read at seed instruction k (where the reader's loop runs), the reads
 * kept in order, each once. */
static void add_read(Copy *c, int k, int raw)
{
    int i = c->nreads;
    while (i > 0 && c->reads[i - 1] > k) i--;
    if (i > 0 && c->reads[i - 1] == k) {
        if (raw < c->raw[i - 1]) c->raw[i - 1] = raw;
        return;
    }
    if (c->nreads == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->reads = ir_xrealloc(c->reads, (size_t)c->cap * sizeof *c->reads);
        c->raw = ir_xrealloc(c->raw, (size_t)c->cap * sizeof *c->raw);
    }
    memmove(c->reads + i + 1, c->reads + i, (size_t)(c->nreads - i) * sizeof *c->reads);
    memmove(c->raw + i + 1, c->raw + i, (size_t)(c->nreads - i) * sizeof *c->raw);
    c->reads[i] = k;
    c->raw[i] = raw;
    c->nreads++;
}

/* The device copies of the seed and their reads. A copy whose reads name
 * more than one value (itself and a view, two views) cannot leave: a copy
 * back is one value's, and the other names would still read the old bytes. */
static void find_copies(struct Ctx *x)
{
    const IrGraph *g = x->g;
    const OptSchedule *s = x->seed;
    int nv = g->nvalues;
    int *cur = ir_xmalloc((size_t)(nv ? nv : 1) * sizeof *cur);
    for (int v = 0; v < nv; v++) cur[v] = -1;
    int cap = 256;
    x->copies = ir_xcalloc((size_t)cap, sizeof *x->copies);
    x->ncopies = 0;
    unsigned char *is_out = ir_xcalloc((size_t)(nv ? nv : 1), 1);
    for (int i = 0; i < g->noutputs; i++) is_out[g->outputs[i]] = 1;
    int *runs_at = opt_schedule_group_ends(g, s, x->req); /* where a fused node reads */
    for (int k = 0; k < s->n; k++) {
        const IrNode *n = &g->nodes[s->ins[k].node];
        int node = s->ins[k].node;
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j];
            if (v < 0 || cur[v] < 0) continue;
            Copy *c = &x->copies[cur[v]];
            if (c->value < 0) c->value = v;
            else if (c->value != v) c->ok = 0;
            add_read(c, runs_at ? runs_at[k] : k, k);
        }
        int fused = x->req && x->req->run_at && x->req->run_at[node] != node;
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0 || opt_persistent(g, x->req, v)) continue;
            if (j == 0 && (ir_ops[n->op].flags & OPF_VIEW) && n->in[0] >= 0) {
                cur[v] = cur[n->in[0]];
                continue;
            }
            if (x->ncopies == cap)
                x->copies = ir_xrealloc(x->copies, (size_t)(cap *= 2) * sizeof *x->copies);
            Copy *c = &x->copies[x->ncopies];
            /* stored as bfloat16: only an activation, a forward node's float32 output */
            int act = n->phase == IR_FORWARD && g->values[v].dtype == IR_F32;
            *c = (Copy){-1, k, 0, 0, NULL, NULL, ir_value_bytes(&g->values[v]), !fused && !is_out[v], act};
            cur[v] = x->ncopies++;
        }
    }
    free(runs_at);
    free(is_out);
    free(cur);
}

/* Where each move's instructions go, from the seed's timeline: copies out
 * in the order their values were written, each done at (and freeing from)
 * the first instruction after its gap opens that ends no sooner; copies
 * back latest first, each as late as lets it end before its read and
 * before the next one on the stream starts. A move whose copy cannot be out
 * before its gap closes gets b = -1 (dropped). */
static void place_moves(struct Ctx *x)
{
    int n = x->nmoves, ns = x->seed->n;
    for (int i = 0; i < n; i++) /* on compute, where the gap is */
        if (x->moves[i].bf16 || !x->link->overlap) x->moves[i].b = x->moves[i].a, x->moves[i].c = x->moves[i].d;
    if (!x->link->overlap) return;
    Move *m = x->moves;
    for (int i = 1; i < n; i++) /* by writer, then gap: the order the copies out start in */
        for (int j = i; j > 0; j--) {
            int wa = x->copies[m[j - 1].copy].writer, wb = x->copies[m[j].copy].writer;
            if (wa < wb || (wa == wb && m[j - 1].a <= m[j].a)) break;
            Move t = m[j];
            m[j] = m[j - 1], m[j - 1] = t;
        }
    double free_t = 0;
    for (int i = 0; i < n; i++) {
        if (m[i].bf16) continue;
        int w = x->copies[m[i].copy].writer;
        double at = x->end[w] > free_t ? x->end[w] : free_t, fin = at + m[i].dur;
        free_t = fin;
        int lo = m[i].a, hi = m[i].d - 1; /* the first b in [a, d - 1) whose end is >= fin (times only grow) */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (x->end[mid] < fin) lo = mid + 1;
            else hi = mid;
        }
        m[i].b = lo < m[i].d - 1 ? lo : -1;
    }
    /* copies back: latest read first */
    int *order = ir_xmalloc((size_t)(n ? n : 1) * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort by d descending: n is small */
        for (int j = i; j > 0 && m[order[j]].d > m[order[j - 1]].d; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    double next_start = x->end[ns - 1] + 1e30;
    for (int q = 0; q < n; q++) {
        Move *mv = &m[order[q]];
        if (mv->b < 0 || mv->bf16) continue;
        int d = mv->d;
        double fin = x->start[d] < next_start ? x->start[d] : next_start, latest = fin - mv->dur;
        int lo = mv->b + 1, hi = d; /* the last c in (b, d] that starts by latest, else b + 1 */
        while (lo < hi) {
            int mid = lo + (hi - lo + 1) / 2;
            if (x->start[mid] > latest) hi = mid - 1;
            else lo = mid;
        }
        int c = lo;
        mv->c = c;
        next_start = x->start[c] < latest ? x->start[c] : latest;
    }
    free(order);
}

/* The seed with the moves' instructions; map[k]: the seed instruction at or
 * before instruction k of the result. The moves at each seed instruction
 * (copies back before it, joined narrowings right before it, the others
 * after it) are listed first, in move order, so that this is linear. */
static void build(const struct Ctx *x, OptSchedule *out, int *map)
{
    const OptSchedule *s = x->seed;
    int ns = s->n, nm = x->nmoves;
    int *head = ir_xmalloc((size_t)(3 * ns + 1) * sizeof *head), *next = ir_xmalloc((size_t)(3 * nm + 1) * sizeof *next);
    for (int k = 0; k < 3 * ns; k++) head[k] = -1;
    for (int i = nm - 1; i >= 0; i--) { /* list l of instruction k: head[3 k + l], next[3 i + l] */
        const Move *m = &x->moves[i];
        if (m->b >= 0 && m->c >= 0 && m->c < ns) next[3 * i] = head[3 * m->c], head[3 * m->c] = i;
        if (m->b >= 0 && m->b < ns) {
            int l = m->joined ? 1 : 2;
            next[3 * i + l] = head[3 * m->b + l], head[3 * m->b + l] = i;
        }
    }
    memset(out, 0, sizeof *out);
    for (int k = 0; k < ns; k++) {
        for (int i = head[3 * k]; i >= 0; i = next[3 * i]) {
            if (map) map[out->n] = k;
            opt_schedule_push_copy(out, x->moves[i].bf16 ? OPT_WIDEN : OPT_FROM_HOST, x->copies[x->moves[i].copy].value);
        }
        for (int i = head[3 * k + 1]; i >= 0; i = next[3 * i + 1]) { /* right before the loop it joins */
            if (map) map[out->n] = k;
            opt_schedule_push_copy(out, OPT_NARROW, x->copies[x->moves[i].copy].value);
        }
        if (map) map[out->n] = k;
        opt_schedule_push(out, s->ins[k].node, s->ins[k].kind);
        for (int i = head[3 * k + 2]; i >= 0; i = next[3 * i + 2]) {
            if (map) map[out->n] = k;
            opt_schedule_push_copy(out, x->moves[i].bf16 ? OPT_NARROW : OPT_TO_HOST, x->copies[x->moves[i].copy].value);
        }
    }
    free(head);
    free(next);
}

/* Whether copy c's narrowing after seed instruction a joins the loop
 * there (opt_narrow_joins): the read at a is that loop's last node. */
static int joins(const struct Ctx *x, const Copy *c, int a)
{
    return opt_narrow_joins(x->g, x->req, c->value, x->seed->ins[a].node);
}

/* What storing copy c as bfloat16 across the gap (a, d) costs on compute:
 * its narrowing (inside the loop of the read at a where it can join it)
 * and its widening (nothing where the reads after d take the bfloat16
 * copy). */
static double conversions_s(const struct Ctx *x, const Copy *c, int a, int d)
{
    int64_t numel = ir_value_numel(&x->g->values[c->value]);
    return opt_lowbit_s(x->link, numel, joins(x, c, a)) +
           (opt_widen_at_use(x->g, x->seed, c->value, d) ? 0 : opt_lowbit_s(x->link, numel, 0));
}

/* Whether a read of copy c from seed instruction d on is not a backward
 * node's (a rerun of a forward node): a bfloat16 copy would put its
 * rounding into the activations that rerun makes again, and a
 * normalization after it amplifies that (unet_small: an instance norm's
 * statistics recomputed from a convolution of the rounded ReLU output put
 * gradients off by 8%), where a gradient read takes it in sums bounded by
 * the rounding. Such a copy stays float32. */
static int read_by_rerun(const struct Ctx *x, const Copy *c, int d)
{
    for (int i = 0; i < c->nreads; i++)
        if (c->raw[i] >= d && x->g->nodes[x->seed->ins[c->raw[i]].node].phase != IR_BACKWARD) return 1;
    return 0;
}

/* Whether move m is away from the device at seed instruction p: its copy
 * out done before p, its copy back started after. */
static int away(const Move *m, int p) { return m->b >= 0 && m->b < p && m->c > p; }

static int by_bytes_desc(const void *pa, const void *pb)
{
    const Move *a = pa, *b = pb;
    return a->bytes != b->bytes ? (a->bytes < b->bytes) - (a->bytes > b->bytes) : a->copy - b->copy;
}

/* The candidates one greedy step tries, largest first. */
enum { MAX_TRIES = 64 };

/* The gap of copy c around seed instruction p: the read (or write) before
 * p (where it runs) and the first instruction of the read after it; 0 when
 * c is not idle across p. */
static int gap_at(const Copy *c, int p, int *a, int *d)
{
    if (!c->ok || c->value < 0 || c->writer >= p) return 0;
    int before = c->writer;
    for (int i = 0; i < c->nreads; i++) {
        if (c->reads[i] == p) return 0;
        if (c->reads[i] > p) {
            if (c->raw[i] <= p) return 0; /* a group reading it runs across p */
            *a = before, *d = c->raw[i];
            return 1;
        }
        before = c->reads[i];
    }
    return 0; /* dead at p */
}

int opt_offload(const IrGraph *g, const double *node_s, const OptMemRequest *req, const OptLink *link,
                const OptSchedule *seed, int64_t room, int max_moves, unsigned moves, OptSchedule *out,
                OptSimResult *sim)
{
    return opt_offload_stuck(g, node_s, req, link, seed, room, max_moves, moves, out, sim, NULL);
}

int opt_offload_stuck(const IrGraph *g, const double *node_s, const OptMemRequest *req, const OptLink *link,
                      const OptSchedule *seed, int64_t room, int max_moves, unsigned moves, OptSchedule *out,
                      OptSimResult *sim, int *stuck)
{
    int64_t stuck_peak = 0;
    if (stuck) *stuck = -1;
    int to_host = (moves & OPT_MOVE_HOST) && link && link->bw > 0;
    int to_bf16 = (moves & OPT_MOVE_BF16) && link && link->mem_bw > 0;
    if (!seed->n || (!to_host && !to_bf16)) return 1;
    for (int k = 0; k < seed->n; k++)
        if (seed->ins[k].kind != OPT_RUN && seed->ins[k].kind != OPT_RERUN) return 1;
    struct Ctx x = {g, node_s, req, link, seed, NULL, NULL, NULL, 0, NULL, 0};
    x.start = ir_xmalloc((size_t)seed->n * sizeof *x.start);
    x.end = ir_xmalloc((size_t)seed->n * sizeof *x.end);
    OptSimResult r;
    int rc = 1;
    if (opt_schedule_timeline(g, seed, node_s, req, link, &r, x.start, x.end)) goto done;
    find_copies(&x);
    unsigned char *taken = ir_xcalloc((size_t)(x.ncopies ? x.ncopies : 1), 1);
    x.moves = ir_xmalloc((size_t)(max_moves > 0 ? max_moves : 1) * sizeof *x.moves);
    int *map = ir_xmalloc((size_t)(2 * max_moves + seed->n + 1) * sizeof *map);
    Move *cand = ir_xmalloc((size_t)(x.ncopies ? x.ncopies : 1) * sizeof *cand);
    unsigned char *was_away = ir_xcalloc((size_t)(x.ncopies ? x.ncopies : 1), 1);
    OptSchedule s = {0}, low = {0};
    OptSimResult low_sim = {0};
    for (;;) {
        place_moves(&x);
        opt_schedule_free(&s);
        build(&x, &s, map);
        if (opt_schedule_timeline(g, &s, node_s, req, link, &r, NULL, NULL)) break;
        if (r.peak_bytes <= room) {
            *out = s;
            *sim = r;
            s.ins = NULL;
            rc = 0;
            break;
        }
        if (room <= 0 && (!low.n || r.peak_bytes < low_sim.peak_bytes)) { /* as low as it goes */
            opt_schedule_free(&low);
            low = s, low_sim = r;
            s = (OptSchedule){0};
        }
        int p = map[r.peak_at], ncand = 0;
        if (stuck && (*stuck < 0 || r.peak_bytes < stuck_peak)) *stuck = p, stuck_peak = r.peak_bytes;
        if (x.nmoves == max_moves) break;
        /* the copies idle across the peak, largest first */
        for (int i = 0; i < x.ncopies; i++) {
            int a, d;
            if (taken[i] || !gap_at(&x.copies[i], p, &a, &d)) continue;
            int64_t bytes = x.copies[i].bytes;
            cand[ncand++] = (Move){i, a, d, 0, 0, bytes, to_host ? (double)bytes / link->bw : 0, 0, 0};
        }
        qsort(cand, (size_t)ncand, sizeof *cand, by_bytes_desc);
        int took = 0;
        if (to_host && !link->overlap) { /* every copy costs its time: the largest */
            took = ncand > 0;
            if (took) x.moves[x.nmoves++] = cand[0];
        }
        /* with overlap: the largest that is away at the peak (out before, back
         * after) with the link as the moves already taken load it, and that
         * leaves every move away at the peak still away */
        for (int j = 0; j < x.nmoves; j++) was_away[x.moves[j].copy] = away(&x.moves[j], p);
        for (int q = 0; to_host && link->overlap && q < ncand && q < MAX_TRIES && !took; q++) {
            x.moves[x.nmoves++] = cand[q];
            place_moves(&x);
            int ok = 1, at = -1;
            for (int j = 0; j < x.nmoves && ok; j++) {
                if (x.moves[j].copy == cand[q].copy) at = j, ok = away(&x.moves[j], p);
                else ok = !was_away[x.moves[j].copy] || away(&x.moves[j], p);
            }
            if (ok) took = 1;
            else x.moves[at < 0 ? x.nmoves - 1 : at] = x.moves[x.nmoves - 1], x.nmoves--;
        }
        /* the float32 copy whose conversions cost least per byte saved, as
         * bfloat16 (the largest of those that cost alike) */
        int best = -1;
        double best_s = 0;
        for (int q = 0; to_bf16 && !took && q < ncand; q++) {
            const Copy *c = &x.copies[cand[q].copy];
            if (!c->narrowable || read_by_rerun(&x, c, cand[q].d)) continue;
            double sec = conversions_s(&x, c, cand[q].a, cand[q].d) / (double)c->bytes;
            if (best < 0 || sec < best_s * (1 - 1e-9)) best = q, best_s = sec;
        }
        if (best >= 0) {
            cand[best].bf16 = took = 1;
            cand[best].joined = joins(&x, &x.copies[cand[best].copy], cand[best].a);
            x.moves[x.nmoves++] = cand[best];
        }
        if (!took) break;
        for (int j = 0; j < x.nmoves; j++) taken[x.moves[j].copy] = 1;
    }
    opt_schedule_free(&s);
    if (stuck && rc == 0) *stuck = -1;
    if (rc && room <= 0 && low.n) {
        *out = low, *sim = low_sim;
        low.ins = NULL;
        rc = 0;
    }
    opt_schedule_free(&low);
    free(map);
    free(cand);
    free(was_away);
    free(taken);
    for (int i = 0; i < x.ncopies; i++) free(x.copies[i].reads), free(x.copies[i].raw);
    free(x.copies);
    free(x.moves);
done:
    free(x.start);
    free(x.end);
    return rc;
}
