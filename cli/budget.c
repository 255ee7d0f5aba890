/* Fitting a training graph into a device memory budget: the passes between
 * the training graph and code generation that `loom compile --budget` and
 * `loom plan` share.
 *
 * The budget is the device's bytes for the whole program: the weights blob
 * (parameters, optimizer state) and the arena (activations, gradients,
 * workspaces). The weights are fixed, so the arena gets the rest. The remat
 * solver (optimizer/remat.c) knows candidate schedules with their simulated
 * arena peaks; those that fit are tried in order of simulated time on a copy
 * of the graph with the target's selection and the memory planner, and the first
 * whose placement fits is taken. The most frugal schedule the solver knows
 * is the last resort; when even that does not fit, the budget is refused
 * naming the least feasible one. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "codegen.h"
#include "optimizer.h"
#include "train.h"

/* Solve times are this process's CPU seconds (the solver runs on one
 * thread), so that a loaded machine does not inflate them. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Schedule s applied to a copy of f's graph, with the target's selection
 * (its fusion, its workspaces) and the memory planner's placement. */
typedef struct {
    IrGraph *g;
    CgSelect sel;
    OptMemRequest req;
    OptMemPlan plan;
} Placed;

/* 0 with *p (placed_free frees it), or -1 with f's graph's err. */
static int place(const CliFit *f, const OptSchedule *s, Placed *p)
{
    memset(p, 0, sizeof *p);
    p->g = ir_graph_copy(f->g);
    int rc = opt_schedule_apply(p->g, s);
    if (rc == 0 && (rc = cg_select(p->g, f->target, &p->sel)) == 0) {
        p->req = cg_mem_request(&p->sel);
        if ((rc = opt_memplan(p->g, &p->req, &p->plan)) != 0) cg_select_free(&p->sel);
    }
    if (rc) {
        memcpy(f->g->err, p->g->err, sizeof f->g->err);
        ir_graph_free(p->g);
    }
    return rc;
}

static void placed_free(Placed *p)
{
    opt_memplan_free(&p->plan);
    cg_select_free(&p->sel);
    ir_graph_free(p->g);
}

/* The real arena bytes of schedule s on f's graph, as placed. */
static int real_arena(const CliFit *f, const OptSchedule *s, int64_t *arena)
{
    Placed p;
    if (place(f, s, &p)) return -1;
    *arena = p.plan.arena_bytes;
    placed_free(&p);
    return 0;
}

int cli_fit_peak(const CliFit *f, const OptSchedule *s, CliPeak *out)
{
    static const char *phases[] = {"forward", "backward", "update", "recompute", "offload", "low-bit"};
    memset(out, 0, sizeof *out);
    Placed pl;
    if (place(f, s, &pl)) return -1;
    const IrGraph *c = pl.g;
    const OptMemPlan *p = &pl.plan;
    /* the step of the most bytes live: buffers (roots) and its workspace */
    int nn = c->nnodes, at = 0;
    int64_t *live = ir_xcalloc((size_t)(nn ? nn : 1) + 1, sizeof *live), best = -1, run = 0;
    for (int v = 0; v < c->nvalues; v++) {
        const OptSlice *sl = &p->values[v];
        if (sl->pool != OPT_POOL_ARENA || sl->alias >= 0 || sl->size <= 0) continue;
        int64_t bytes = (sl->size + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN;
        live[sl->first] += bytes;
        live[sl->last + 1] -= bytes;
    }
    for (int k = 0; k < nn; k++) {
        run += live[k];
        int64_t ws = pl.req.ws_bytes && p->ws_offset[k] >= 0 ? pl.req.ws_bytes[k] : 0;
        if (run + ws > best) best = run + ws, at = k, out->ws_bytes = ws;
    }
    free(live);
    const IrNode *n = &c->nodes[at];
    snprintf(out->node, sizeof out->node, "%s", n->name ? n->name : ir_ops[n->op].name);
    out->phase = (unsigned)n->phase < sizeof phases / sizeof *phases ? phases[n->phase] : "";
    out->live_bytes = best;
    for (int v = 0; v < c->nvalues; v++) { /* the largest live there, kept sorted */
        const OptSlice *sl = &p->values[v];
        if (sl->pool != OPT_POOL_ARENA || sl->alias >= 0 || sl->size <= 0 || sl->first > at || sl->last < at)
            continue;
        int i = out->n < CLI_PEAK_TOP ? out->n++ : CLI_PEAK_TOP;
        if (i == CLI_PEAK_TOP) {
            out->more++;
            if (sl->size <= out->top[CLI_PEAK_TOP - 1].bytes) continue;
            i = CLI_PEAK_TOP - 1;
        }
        for (; i > 0 && out->top[i - 1].bytes < sl->size; i--) out->top[i] = out->top[i - 1];
        snprintf(out->top[i].name, sizeof out->top[i].name, "%s", c->values[v].name);
        out->top[i].bytes = sl->size;
    }
    placed_free(&pl);
    return 0;
}

int cli_fit_init(IrGraph *g, const CgTarget *target, const char *device, const char *costs_path, int offload,
                 int lowbit, CliFit *f)
{
    memset(f, 0, sizeof *f);
    f->g = g;
    f->target = target ? target : &cg_target_cpu;
    if (cg_select(g, f->target, &f->sel)) return -1;
    f->req = cg_mem_request(&f->sel);
    char err[512];
    if (opt_device_lookup(device ? device : "cpu", &f->device, err, sizeof err))
        return ir_fail(g, -1, "--device: %s", err);
    f->link = opt_device_link(&f->device);
    f->offload_only = offload == CLI_OFFLOAD_ONLY;
    f->offload = f->offload_only || offload == CLI_OFFLOAD_ON || (offload == CLI_OFFLOAD_AUTO && f->link.overlap);
    f->lowbit = lowbit != 0;
    if (costs_path ? opt_costs_load(g, costs_path, &f->device, f->sel.run_at, &f->costs)
                   : opt_costs_analytic(g, &f->device, f->sel.run_at, &f->costs))
        return -1;
    const double *node_s = f->node_s = f->costs.seconds;
    OptMemPlan p;
    if (opt_memplan(g, &f->req, &p)) return -1;
    f->weights_bytes = p.weights_bytes;
    f->store_all_arena = p.arena_bytes;
    opt_memplan_free(&p);
    /* the activation memory store-all keeps for backward: the saved values'
     * buffers (a view's is its root's), each once, parameters and
     * constants not counted */
    int *saved, ns = ir_saved_values(g, &saved);
    unsigned char *seen = ir_xcalloc((size_t)(g->nvalues ? g->nvalues : 1), 1);
    for (int i = 0; i < ns; i++) {
        int v = ir_view_root(g, saved[i]);
        if (seen[v] || opt_persistent(g, &f->req, v)) continue;
        seen[v] = 1;
        f->saved_bytes += (ir_value_bytes(&g->values[v]) + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN;
    }
    free(seen);
    free(saved);
    OptSchedule all;
    OptSimResult sim;
    opt_schedule_store_all(g, &all);
    opt_schedule_simulate(g, &all, node_s, &f->req, &sim);
    opt_schedule_free(&all);
    f->store_all_step_s = sim.step_s;
    return 0;
}

/* The solver's tables, built when a budget first needs them (a budget that
 * store-all fits does not). */
static OptRemat *table(CliFit *f)
{
    if (!f->remat) {
        double t0 = cpu_now();
        f->remat = opt_remat_new_link(f->g, f->node_s, &f->req, f->offload ? &f->link : NULL);
        f->table_s = cpu_now() - t0;
    }
    return f->remat;
}

void cli_fit_free(CliFit *f)
{
    if (f->alt) {
        IrGraph *g = f->alt->g;
        cli_fit_free(f->alt);
        free(f->alt);
        ir_graph_free(g);
    }
    opt_remat_free(f->remat);
    opt_costs_free(&f->costs);
    cg_select_free(&f->sel);
    if (f->least) opt_schedule_free(f->least);
    free(f->least);
    memset(f, 0, sizeof *f);
}

/* The least feasible budget: the most frugal schedule, placed for real.
 * The planner may place a schedule above its simulated peak, by more for
 * one than another (refined schedules most), so the schedules are placed
 * in order of simulated peak while one could still come out lower: at most
 * LEAST_TRIES, and the tables' own most frugal one always (the least
 * budget before refinement, so refinement never raises it). */
enum { LEAST_TRIES = 4 };
/* What opt_offload may add to f's plans. */
static unsigned fit_moves(const CliFit *f)
{
    return (f->offload ? OPT_MOVE_HOST : 0u) | (f->lowbit ? OPT_MOVE_BF16 : 0u);
}
/* The most values one offload plan copies out (GPT-2 124M saves about ten
 * per block). */
enum { OFFLOAD_MOVES = 1024 };
static int least_one(CliFit *f, int64_t *bytes)
{
    if (f->least_bytes) {
        *bytes = f->least_bytes;
        return 0;
    }
    OptSchedule s, best = {0};
    OptSimResult sim, best_sim = {0};
    int64_t arena, best_arena = INT64_MAX;
    int refined, tries = 0, table_tried = 0;
    if (f->offload_only) { /* store-all is where the copies start from */
        opt_schedule_store_all(f->g, &best);
        opt_schedule_simulate(f->g, &best, f->node_s, &f->req, &best_sim);
        best_arena = f->store_all_arena;
    }
    for (int k = 0; !f->offload_only && !opt_remat_frugal(table(f), k, &s, &sim, &refined); k++) {
        if (sim.peak_bytes >= best_arena) { /* none further on could place lower */
            opt_schedule_free(&s);
            break;
        }
        if (tries >= LEAST_TRIES && (refined || table_tried)) {
            opt_schedule_free(&s);
            if (table_tried) break;
            continue;
        }
        tries++;
        table_tried |= !refined;
        if (real_arena(f, &s, &arena)) {
            opt_schedule_free(&s);
            opt_schedule_free(&best);
            return -1;
        }
        if (arena < best_arena) {
            opt_schedule_free(&best);
            best = s, best_sim = sim, best_arena = arena;
        } else {
            opt_schedule_free(&s);
        }
    }
    s = best, sim = best_sim, arena = best_arena;
    if (fit_moves(f)) { /* the most frugal schedule's copies out, as many as lower its peak */
        OptSchedule o;
        OptSimResult osim;
        int64_t oarena;
        if (!opt_offload(f->g, f->node_s, &f->req, &f->link, &s, 0, OFFLOAD_MOVES, fit_moves(f), &o, &osim)) {
            if (real_arena(f, &o, &oarena)) {
                opt_schedule_free(&o);
                opt_schedule_free(&s);
                return -1;
            }
            if (oarena < arena) {
                opt_schedule_free(&s);
                s = o, sim = osim, arena = oarena;
            } else {
                opt_schedule_free(&o);
            }
        }
    }
    if (arena >= f->store_all_arena) { /* no schedule beats keeping everything */
        opt_schedule_free(&s);
        opt_schedule_store_all(f->g, &s);
        opt_schedule_simulate(f->g, &s, f->node_s, &f->req, &sim);
        arena = f->store_all_arena;
    }
    f->least_bytes = f->weights_bytes + arena;
    f->least = ir_xmalloc(sizeof *f->least);
    *f->least = s;
    f->least_sim = sim;
    f->least_arena = arena;
    *bytes = f->least_bytes;
    return 0;
}

/* The fastest schedule among the solver's candidates that the planner
 * places within room: the candidates peaking (simulated) within room, in
 * order of simulated time, placed one after another until one fits (a
 * placement is never below the simulated peak, often a little above). So a
 * larger room, which admits a superset, never gets a slower schedule, as
 * long as fewer than FIT_TRIES faster ones fail to place. 0 with out's
 * schedule, simulation and arena set, 1 when none of the first FIT_TRIES
 * fits, -1 on error. */
enum { FIT_TRIES = 256 };
static int fit_from(CliFit *f, int64_t room, CliFitResult *out)
{
    for (int k = 0; k < FIT_TRIES; k++) {
        OptSchedule s;
        OptSimResult sim;
        int64_t arena;
        if (opt_remat_ranked(table(f), room, 1, k, &s, &sim)) return 1;
        if (real_arena(f, &s, &arena)) {
            opt_schedule_free(&s);
            return -1;
        }
        if (arena <= room) {
            out->sched = s;
            out->sim = sim;
            out->arena = arena;
            return 0;
        }
        opt_schedule_free(&s);
    }
    return 1;
}

/* Offload on top of recomputation: seeds that peak above room get copies
 * out until they fit (opt_offload); each result whose simulated time beats
 * out's (when out has a schedule) is placed, and when the planner places it
 * above room, made again for the next lower target of one fixed grid
 * (store-all's arena times TARGET_STEP^j), until one places within room or
 * the copies make it slower than out's; the fastest placed within room
 * replaces out's. The seeds are store-all and the solver's plans for the
 * rooms of another fixed grid (store-all's arena times SEED_STEP^j) from
 * SEED_SPAN times room down to the least feasible arena: those below room
 * too, since the planner may place such a plan above room where copies
 * bring it within. Neither grid moves with the budget, so a larger budget
 * keeps every seed of a smaller one (MAX_SEEDS covers the grid); the copies
 * a seed gets for a target are the first of those it gets for a lower one
 * (the greedy is the same until it stops), so no slower; and a target that
 * placed a seed within the smaller budget's room is tried for the larger
 * budget too unless a higher one placed first. So more budget does not get
 * a slower plan. Then the priced tables' schedules (opt_remat_priced:
 * chosen with some checkpoints on the host) extracted at levels up to
 * PRICED_SPAN times room, fastest first: a larger room's include a
 * smaller one's. A priced table plans copies the link cannot all carry
 * (it prices each copy, not their sum), so where the copies get stuck above
 * room (opt_offload_stuck), the seed is repaired: the value
 * live there whose rerun costs least per byte is dropped and made again
 * (opt_refine_drop_at), at most REPAIR_STEPS times, each step a seed of its
 * own. A repair goes the same way whatever the room and stops only where
 * its seed is no faster than the plan in hand, which no later step beats
 * (so a step that placed within a smaller room is tried for a larger one,
 * unless a plan at least as fast came first). 0 (out replaced or not), -1
 * on error. */
#define SEED_STEP 0.96
#define SEED_SPAN 3.0
#define PRICED_SPAN 1.6
#define TARGET_STEP 0.995
enum { MAX_SEEDS = 128,   /* 0.96^128 < 0.6% of store-all */
       REPAIR_STEPS = 64 }; /* ResNet-50 at 1/5 fits after about 25 */

/* seed with copies placed within room, on targets from room down the
 * fixed grid: out replaced when the placed plan is faster than out's
 * (priced: whether seed is a priced table's). 0 (replaced or not), -1 on
 * error. */
static int place_seed(CliFit *f, int64_t room, const OptSchedule *seed, int priced, CliFitResult *out)
{
    int64_t target = room;
    double grid = (double)f->store_all_arena;
    while (target > 0) {
        OptSchedule s;
        OptSimResult sim;
        int64_t arena;
        if (opt_offload(f->g, f->node_s, &f->req, &f->link, seed, target, OFFLOAD_MOVES, fit_moves(f), &s, &sim))
            return 0;
        if (out->sched.n && sim.step_s >= out->sim.step_s) {
            opt_schedule_free(&s);
            return 0;
        }
        if (real_arena(f, &s, &arena)) {
            opt_schedule_free(&s);
            return -1;
        }
        if (arena <= room) {
            opt_schedule_free(&out->sched);
            out->sched = s, out->sim = sim, out->arena = arena;
            out->priced = priced;
            return 0;
        }
        opt_schedule_free(&s);
        while (grid >= (double)target) grid *= TARGET_STEP;
        target = (int64_t)grid;
    }
    return 0;
}

/* A schedule's fingerprint (FNV-1a over its instructions). */
static uint64_t fingerprint(const OptSchedule *s)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)s->ins;
    for (size_t i = 0; i < (size_t)s->n * sizeof *s->ins; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h ^ (uint64_t)s->n;
}

/* The schedules repairs went through in one fit: another seed's repair
 * that reaches one goes the same way from there (often: one step of one
 * seed is another seed). */
typedef struct {
    uint64_t *h;
    int n, cap;
} Seen;

static int seen_add(Seen *v, uint64_t h)
{
    for (int i = 0; i < v->n; i++)
        if (v->h[i] == h) return 1;
    if (v->n == v->cap) v->h = ir_xrealloc(v->h, (size_t)(v->cap = v->cap ? 2 * v->cap : 64) * sizeof *v->h);
    v->h[v->n++] = h;
    return 0;
}

/* A priced seed and its repairs (fit_offload's comment), each placed. */
static int place_repaired(CliFit *f, int64_t room, const OptSchedule *seed, Seen *seen, CliFitResult *out)
{
    OptSchedule cur = opt_schedule_copy(seed);
    int rc = 0;
    for (int step = 0; step <= REPAIR_STEPS; step++) {
        OptSimResult sim;
        OptSchedule s, next;
        int at;
        if (seen_add(seen, fingerprint(&cur)) || opt_schedule_simulate(f->g, &cur, f->node_s, &f->req, &sim) ||
            (out->sched.n && sim.step_s >= out->sim.step_s)) /* copies never make a plan faster */
            break;
        /* where the copies get stuck above room; when they do not, placed,
         * and where they would get stuck going on (as they do for a room
         * they cannot reach: the greedy is the same until it stops) */
        if (!opt_offload_stuck(f->g, f->node_s, &f->req, &f->link, &cur, room, OFFLOAD_MOVES, fit_moves(f), &s, &sim,
                               &at)) {
            opt_schedule_free(&s);
            if ((rc = place_seed(f, room, &cur, 1, out))) break;
            if (!opt_offload_stuck(f->g, f->node_s, &f->req, &f->link, &cur, 1, OFFLOAD_MOVES, fit_moves(f), &s, &sim,
                                   &at)) {
                opt_schedule_free(&s);
                break;
            }
        }
        if (at < 0 || step == REPAIR_STEPS || opt_refine_drop_at(opt_remat_refiner(f->remat), &cur, at, &next)) break;
        opt_schedule_free(&cur);
        cur = next;
    }
    opt_schedule_free(&cur);
    return rc;
}

static int fit_offload(CliFit *f, int64_t room, CliFitResult *out)
{
    int cap = 1 + MAX_SEEDS, nseeds = 0, rc = 0;
    OptSchedule *seeds = ir_xmalloc((size_t)cap * sizeof *seeds);
    double *seed_s = ir_xmalloc((size_t)cap * sizeof *seed_s);
    seed_s[nseeds] = f->store_all_step_s;
    opt_schedule_store_all(f->g, &seeds[nseeds++]);
    double sr = (double)f->store_all_arena;
    for (int j = 1; !f->offload_only && nseeds < 1 + MAX_SEEDS; j++) {
        sr *= SEED_STEP;
        if (sr < (double)f->least_arena) break;
        OptSimResult sim;
        if (sr <= SEED_SPAN * (double)room && !opt_remat_solve(table(f), (int64_t)sr, 1, &seeds[nseeds], &sim))
            seed_s[nseeds++] = sim.step_s;
    }
    int ngrid = nseeds; /* the priced tables' from here */
    for (int k = 0; !f->offload_only && f->remat; k++) {
        OptSimResult sim;
        if (nseeds == cap) {
            cap *= 2;
            seeds = ir_xrealloc(seeds, (size_t)cap * sizeof *seeds);
            seed_s = ir_xrealloc(seed_s, (size_t)cap * sizeof *seed_s);
        }
        if (opt_remat_priced(f->remat, (int64_t)(PRICED_SPAN * (double)room), k, &seeds[nseeds], &sim)) break;
        seed_s[nseeds++] = sim.step_s;
    }
    Seen seen = {0};
    for (int i = 0; i < nseeds && rc == 0; i++) {
        if (out->sched.n && seed_s[i] >= out->sim.step_s) continue; /* copies never make a plan faster */
        rc = i < ngrid ? place_seed(f, room, &seeds[i], 0, out) : place_repaired(f, room, &seeds[i], &seen, out);
    }
    free(seen.h);
    for (int i = 0; i < nseeds; i++) opt_schedule_free(&seeds[i]);
    free(seeds);
    free(seed_s);
    return rc;
}

static int refuse(CliFit *f, int64_t budget, int64_t least);

static int fit_one(CliFit *f, int64_t budget, CliFitResult *out)
{
    memset(out, 0, sizeof *out);
    double t0 = cpu_now();
    out->budget = budget;
    out->fit = f;
    int64_t room = budget - f->weights_bytes, least;
    if (room < f->store_all_arena && least_one(f, &least)) return -1;
    if (room < f->store_all_arena && budget < least) return refuse(f, budget, least);
    if (room >= f->store_all_arena) { /* everything fits: keep all */
        opt_schedule_store_all(f->g, &out->sched);
        opt_schedule_simulate(f->g, &out->sched, f->node_s, &f->req, &out->sim);
        out->arena = f->store_all_arena;
        out->solve_s = cpu_now() - t0 + f->table_s;
        return 0;
    }
    int rc = f->offload_only ? 1 : fit_from(f, room, out); /* 1: out untouched, no schedule */
    if (rc >= 0 && fit_moves(f)) {
        if (fit_offload(f, room, out)) rc = -1;
        else if (out->sched.n) rc = 0;
    }
    if (rc < 0) {
        cli_fit_result_free(out);
        return -1;
    }
    if (rc == 1) { /* the most frugal schedule, which fits since budget >= least */
        out->sched = opt_schedule_copy(f->least);
        out->sim = f->least_sim;
        out->arena = f->least_arena;
    }
    out->solve_s = cpu_now() - t0 + f->table_s;
    return 0;
}

int cli_fit_least(CliFit *f, int64_t *bytes)
{
    int64_t alt;
    if (least_one(f, bytes)) return -1;
    if (f->alt && least_one(f->alt, &alt) == 0 && alt < *bytes) *bytes = alt;
    return 0;
}

void cli_fit_variant(CliFit *f, const char *device, const char *costs_path, int offload)
{
    IrGraph *c = ir_graph_copy(f->g);
    CliFit *v = ir_xcalloc(1, sizeof *v);
    if (ir_fold_add_relu_grad(c) > 0 && cli_fit_init(c, f->target, device, costs_path, offload, f->lowbit, v) == 0) {
        f->alt = v;
        return;
    }
    cli_fit_free(v);
    free(v);
    ir_graph_free(c);
}

/* Below store-all, both graphs where f has a variant: the faster plan
 * (f's when they tie), each where the budget is not below its least. */
int cli_fit(CliFit *f, int64_t budget, CliFitResult *out)
{
    int64_t least, least_alt;
    if (!f->alt || budget - f->weights_bytes >= f->store_all_arena) return fit_one(f, budget, out);
    if (least_one(f, &least) || least_one(f->alt, &least_alt)) return -1;
    if (budget < least && budget < least_alt) return refuse(f, budget, least < least_alt ? least : least_alt);
    CliFitResult a;
    if (budget < least) return fit_one(f->alt, budget, out);
    if (fit_one(f, budget, out)) return -1;
    if (budget < least_alt) return 0;
    if (fit_one(f->alt, budget, &a)) {
        cli_fit_result_free(out);
        return -1;
    }
    out->solve_s += a.solve_s;
    a.solve_s = out->solve_s;
    if (a.sim.step_s < out->sim.step_s) {
        cli_fit_result_free(out);
        *out = a;
    } else {
        cli_fit_result_free(&a);
    }
    return 0;
}

static int refuse(CliFit *f, int64_t budget, int64_t least)
{
    char a[32], b[32], w[32], r[32];
    return ir_fail(f->g, -1, "a budget of %s (%lld bytes) is below the least feasible one for this model: "
                   "%s (%lld bytes: weights and optimizer state %s, activations at least %s); give "
                   "--budget %lld or more", cli_fmt_bytes((double)budget, a, sizeof a), (long long)budget,
                   cli_fmt_bytes((double)least, b, sizeof b), (long long)least,
                   cli_fmt_bytes((double)f->weights_bytes, w, sizeof w),
                   cli_fmt_bytes((double)(least - f->weights_bytes), r, sizeof r), (long long)least);
}

int cli_fit_baseline(CliFit *f, OptRematBaseline b, CliFitResult *out)
{
    memset(out, 0, sizeof *out);
    double t0 = cpu_now();
    opt_remat_baseline(table(f), b, &out->sched, &out->sim);
    if (real_arena(f, &out->sched, &out->arena)) return -1;
    out->budget = f->weights_bytes + out->arena;
    out->solve_s = cpu_now() - t0 + f->table_s;
    return 0;
}

/* Rotor's recomputation plan at the budget (no offload: the program has
 * none), or 1 when it has none. */
static int rotor_plan(CliFit *f, int64_t budget, CliFitResult *out)
{
    int offload = f->offload, only = f->offload_only, lowbit = f->lowbit;
    f->offload = f->offload_only = f->lowbit = 0;
    char saved[sizeof f->g->err];
    memcpy(saved, f->g->err, sizeof saved);
    int rc = fit_one(f, budget, out);
    f->offload = offload, f->offload_only = only, f->lowbit = lowbit;
    memcpy(f->g->err, saved, sizeof saved); // its refusal is not this command's
    return rc ? 1 : 0;
}

/* As cli_fit, with the exact program in place of the table: while the
 * planner's arena comes out above the room, the program is solved again for
 * a peak that much lower. Rotor's plan at the budget is the incumbent: the
 * program looks only for schedules whose reruns cost less than rotor's by
 * more than CLI_ILP_TOL of rotor's step, and when lp_solve proves there is
 * none, the result is rotor's plan, proven within that of the optimum. */
int cli_fit_ilp(CliFit *f, int64_t budget, double time_limit_s, CliFitResult *out)
{
    memset(out, 0, sizeof *out);
    double t0 = cpu_now();
    int64_t room = budget - f->weights_bytes, target = room;
    char b[32];
    CliFitResult rot;
    double bound_us = 0, rot_us = 0;
    int timed_out = 0;
    int have_rot = rotor_plan(f, budget, &rot) == 0;
    if (have_rot) {
        rot_us = opt_remat_ilp_cost(&rot.sched, f->node_s);
        bound_us = rot_us - CLI_ILP_TOL * 1e6 * rot.sim.step_s;
        if (bound_us <= 0) { /* no schedule reruns less than nothing */
            *out = rot;
            out->solve_s = cpu_now() - t0;
            if (rot_us == 0)
                snprintf(out->note, sizeof out->note, "optimal: rotor's plan reruns nothing (no program solved)");
            else
                snprintf(out->note, sizeof out->note,
                         "optimal within %.0f%%: rotor's plan reruns %.4g us, under %.0f%% of its step (no program "
                         "solved)", 100 * CLI_ILP_TOL, rot_us, 100 * CLI_ILP_TOL);
            return 0;
        }
    }
    out->budget = budget;
    snprintf(out->note, sizeof out->note, "the weights and optimizer state alone need more");
    for (int attempt = 0; attempt < 4 && target > 0; attempt++) {
        int rc = opt_remat_ilp(f->g, f->node_s, &f->req, target, time_limit_s > 0 ? time_limit_s : CLI_ILP_SECONDS,
                               bound_us, &out->sched, &out->sim, out->note, sizeof out->note);
        if (rc < 0) {
            if (have_rot) cli_fit_result_free(&rot);
            return ir_fail(f->g, -1, "--solver ilp: %s", out->note);
        }
        /* proven: nothing beats rotor's plan by more than the tolerance (only at the room itself:
         * a retry's lower peak is a smaller space, whose emptiness proves nothing at the budget) */
        if (rc == 1 && have_rot && target == room) {
            char why[sizeof out->note];
            snprintf(why, sizeof why, "%s", out->note);
            opt_schedule_free(&out->sched);
            *out = rot;
            out->solve_s = cpu_now() - t0;
            snprintf(out->note, sizeof out->note,
                     "optimal within %.0f%%: rotor's plan (%.4g us of reruns), proven: %.380s", 100 * CLI_ILP_TOL,
                     rot_us, why);
            return 0;
        }
        if (!out->sched.n) {
            timed_out = rc == 2;
            break;
        }
        if (real_arena(f, &out->sched, &out->arena)) {
            if (have_rot) cli_fit_result_free(&rot);
            return -1;
        }
        out->solve_s = cpu_now() - t0;
        if (out->arena <= room) {
            if (have_rot) cli_fit_result_free(&rot);
            return 0;
        }
        target = out->sim.peak_bytes - (out->arena - room);
        opt_schedule_free(&out->sched);
    }
    if (have_rot) { /* nothing better found (or none placed within the room), nothing proven */
        double secs = time_limit_s > 0 ? time_limit_s : CLI_ILP_SECONDS;
        opt_schedule_free(&out->sched);
        *out = rot;
        out->solve_s = cpu_now() - t0;
        if (timed_out)
            snprintf(out->note, sizeof out->note,
                     "time limit of %.0f s hit: no schedule faster than rotor's plan (%.4g us of reruns) by over "
                     "%.0f%% found, none ruled out; the plan is rotor's", secs, rot_us, 100 * CLI_ILP_TOL);
        else
            snprintf(out->note, sizeof out->note,
                     "no schedule faster than rotor's plan (%.4g us of reruns) by over %.0f%% fits once placed, "
                     "none ruled out; the plan is rotor's", rot_us, 100 * CLI_ILP_TOL);
        return 0;
    }
    return ir_fail(f->g, -1, "--solver ilp: no schedule for a budget of %s: %s",
                   cli_fmt_bytes((double)budget, b, sizeof b), out->note);
}

void cli_fit_result_free(CliFitResult *r) { opt_schedule_free(&r->sched); }

int cli_parse_bytes(const char *s, int64_t *out)
{
    char *end;
    double x = strtod(s, &end);
    if (end == s || !isfinite(x) || x <= 0) return -1;
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {{"", 1},          {"B", 1},          {"K", 1e3},     {"KB", 1e3},
                 {"KiB", 1024.0},  {"M", 1e6},        {"MB", 1e6},    {"MiB", 1048576.0},
                 {"G", 1e9},       {"GB", 1e9},       {"GiB", 1073741824.0},
                 {"T", 1e12},      {"TB", 1e12},      {"TiB", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcmp(end, units[i].suffix)) {
            double b = x * units[i].mult;
            if (b >= 9.2e18) return -1;
            *out = (int64_t)llround(b);
            return *out > 0 ? 0 : -1;
        }
    return -1;
}
