/* Unit tests of offload (optimizer.h: OPT_TO_HOST / OPT_FROM_HOST in a
 * schedule, opt_schedule_timeline, opt_schedule_apply, the host pool of
 * opt_memplan, and the greedy opt_offload) on the zoo's gpt2_tiny, trained
 * with cross-entropy and AdamW, selected for the cpu target and costed by
 * the cpu roofline.
 *
 * One saved value moved by hand checks the timing rules exactly: with
 * copies on the compute thread (the cpu target) each copy costs bytes / bw
 * of step time; with copy engines a copy out that starts at the value's
 * writer is free when the compute before its OPT_TO_HOST outlasts it, and
 * a copy back issued just before its read stalls compute by its whole
 * duration. The value's buffer leaves the device between the two, and the
 * rewritten graph holds a loom.ToHost into the host pool and a
 * loom.FromHost whose output backward reads. Then the greedy: it reaches a
 * room between its least and store-all, with a fast link without any
 * stall (the step time is store-all's), a smaller room needs at least as
 * many copies, and a link too slow for any copy to be out by the peak
 * leaves it nothing to do.
 *
 * Low-bit storage (OPT_NARROW / OPT_WIDEN) the same way: by hand, each
 * conversion costs opt_lowbit_s of compute and the value's bytes give way
 * to a bfloat16 copy of half of them across the gap; the rewritten graph
 * holds two Casts (phase IR_LOWBIT) that codegen runs as passes of their
 * own; and the greedy with OPT_MOVE_BF16 alone reaches a room between its
 * least and store-all, narrowing float32 activations only, at a cost. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train_fixture.h"
#include "codegen.h"
#include "frontend.h"
#include "ir.h"
#include "optimizer.h"
#include "train.h"

static int fixture(Fixture *f) { return fixture_zoo(f, "models/gpt2_tiny/model.onnx"); }

/* The largest saved value that is a node's own buffer (not a view, not
 * fused, not an output), read once in forward after its writer and later in
 * backward: its value id, and in store-all order the index of its writer,
 * its last forward read and its first backward read. */
static int pick_saved(const Fixture *f, const OptSchedule *s, int *w, int *last_fwd, int *first_bwd)
{
    const IrGraph *g = f->g;
    int best = -1;
    int64_t best_bytes = 0;
    for (int v = 0; v < g->nvalues; v++) {
        int p = g->values[v].producer;
        if (p < 0 || g->nodes[p].phase != IR_FORWARD || f->sel.run_at[p] != p || opt_persistent(g, &f->req, v) ||
            (ir_ops[g->nodes[p].op].flags & OPF_VIEW))
            continue;
        int kw = -1, kf = -1, kb = -1, other_name = 0;
        for (int k = 0; k < s->n; k++) {
            const IrNode *n = &g->nodes[s->ins[k].node];
            if (s->ins[k].node == p) kw = k;
            for (int j = 0; j < n->nin; j++) {
                int u = n->in[j];
                if (u < 0) continue;
                int r = u; /* a view of v names v's bytes too: such values are skipped */
                while (g->values[r].producer >= 0 && (ir_ops[g->nodes[g->values[r].producer].op].flags & OPF_VIEW))
                    r = g->nodes[g->values[r].producer].in[0];
                if (r != v) continue;
                other_name |= u != v;
                if (n->phase == IR_FORWARD) kf = k;
                else if (kb < 0) kb = k;
            }
        }
        int64_t bytes = ir_value_bytes(&g->values[v]);
        if (!other_name && kw >= 0 && kf > kw && kb > kf + 2 && bytes > best_bytes)
            best = v, best_bytes = bytes, *w = kw, *last_fwd = kf, *first_bwd = kb;
    }
    return best;
}

/* s with TO_HOST v after instruction `out_after` (none: -1) and FROM_HOST v
 * before `back_before` (bf16: NARROW and WIDEN instead). */
static void with_move(const OptSchedule *s, int v, int out_after, int back_before, int bf16, OptSchedule *o)
{
    memset(o, 0, sizeof *o);
    for (int k = 0; k < s->n; k++) {
        if (k == back_before) opt_schedule_push_copy(o, bf16 ? OPT_WIDEN : OPT_FROM_HOST, v);
        opt_schedule_push(o, s->ins[k].node, s->ins[k].kind);
        if (k == out_after) opt_schedule_push_copy(o, bf16 ? OPT_NARROW : OPT_TO_HOST, v);
    }
}
static void with_copy(const OptSchedule *s, int v, int out_after, int back_before, OptSchedule *o)
{
    with_move(s, v, out_after, back_before, 0, o);
}

/* The fixture, its store-all schedule and pick_saved's value; -1 (a
 * failure recorded, the fixture and schedule freed) when there is none. */
static int saved_setup(Fixture *f, OptSchedule *all, int *w, int *kf, int *kb)
{
    if (fixture(f)) return -1;
    opt_schedule_store_all(f->g, all);
    int v = pick_saved(f, all, w, kf, kb);
    CHECK(v >= 0);
    if (v < 0) {
        opt_schedule_free(all);
        fixture_free(f);
    }
    return v;
}

static void test_timeline(void)
{
    Fixture f;
    OptSchedule all, s;
    OptSimResult base, r;
    int w, kf, kb, v = saved_setup(&f, &all, &w, &kf, &kb);
    if (v < 0) return;
    const IrGraph *g = f.g;
    CHECK(opt_schedule_simulate(g, &all, f.costs.seconds, &f.req, &base) == 0);
    int64_t bytes = ir_value_bytes(&g->values[v]);
    with_copy(&all, v, kf, kb, &s);
    CHECK_EQ_INT(opt_schedule_copies(&s), 2);
    /* no link: refused, naming the copies */
    CHECK(opt_schedule_simulate(g, &s, f.costs.seconds, &f.req, &r) == -1);
    CHECK_STR_CONTAINS(g->err, "no host link");
    /* copies on the compute thread: each costs its time */
    OptLink sync = {.bw = 1e9, .overlap = 0};
    double *start = malloc((size_t)s.n * sizeof *start);
    CHECK(opt_schedule_timeline(g, &s, f.costs.seconds, &f.req, &sync, &r, start, NULL) == 0);
    double dur = (double)bytes / sync.bw;
    CHECK(fabs(r.step_s - (base.step_s + 2 * dur)) <= 1e-12 * base.step_s + 1e-15);
    CHECK_EQ_INT(r.host_bytes, bytes);
    CHECK(r.stall_s == 0);
    CHECK(r.peak_bytes <= base.peak_bytes);
    /* copy engines, a link fast enough that the copy out is done before its
     * TO_HOST: only the copy back stalls, its read waiting all of it */
    double fwd = start[kf + 1] - start[w + 1]; /* compute between the writer's end and the TO_HOST */
    OptLink fast = {.bw = (double)bytes / (0.5 * fwd), .overlap = 1};
    CHECK(opt_schedule_timeline(g, &s, f.costs.seconds, &f.req, &fast, &r, NULL, NULL) == 0);
    dur = (double)bytes / fast.bw;
    CHECK(fabs(r.stall_s - dur) <= 1e-9 * dur);
    CHECK(fabs(r.step_s - (base.step_s + dur)) <= 1e-9 * base.step_s);
    /* a link so slow that the TO_HOST waits for the copy out too */
    OptLink slow = {.bw = (double)bytes / (4 * fwd), .overlap = 1};
    CHECK(opt_schedule_timeline(g, &s, f.costs.seconds, &f.req, &slow, &r, NULL, NULL) == 0);
    CHECK(r.stall_s > (double)bytes / slow.bw);
    free(start);
    opt_schedule_free(&s);
    /* a copy back with no copy out before it is refused */
    with_copy(&all, v, -1, kb, &s);
    CHECK(opt_schedule_timeline(g, &s, f.costs.seconds, &f.req, &sync, &r, NULL, NULL) == -1);
    CHECK_STR_CONTAINS(g->err, "has no host copy there");
    opt_schedule_free(&s);
    opt_schedule_free(&all);
    fixture_free(&f);
}

static void test_apply(void)
{
    Fixture f;
    OptSchedule all, s;
    int w, kf, kb, v = saved_setup(&f, &all, &w, &kf, &kb);
    if (v < 0) return;
    IrGraph *g = f.g;
    with_copy(&all, v, kf, kb, &s);
    char name[512];
    snprintf(name, sizeof name, "%s", g->values[v].name);
    CHECK(opt_schedule_apply(g, &s) == 0);
    CHECK(ir_verify(g) == 0);
    int to = -1, from = -1;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].op == IR_OP_ToHost) to = i;
        if (g->nodes[i].op == IR_OP_FromHost) from = i;
    }
    CHECK(to >= 0 && from > to);
    if (to >= 0 && from > to) {
        CHECK(g->nodes[to].phase == IR_OFFLOAD && g->nodes[from].phase == IR_OFFLOAD);
        CHECK_EQ_INT(g->nodes[to].in[0], v);
        int h = g->nodes[to].out[0], back = g->nodes[from].out[0];
        CHECK_EQ_INT(g->nodes[from].in[0], h);
        char want[600];
        snprintf(want, sizeof want, "offload/%s", name);
        CHECK(!strcmp(g->values[back].name, want));
        /* backward reads the copy back; nothing after the ToHost reads the value */
        int reads_back = 0, reads_v = 0;
        for (int i = to + 1; i < g->nnodes; i++)
            for (int j = 0; j < g->nodes[i].nin; j++) {
                reads_back |= g->nodes[i].in[j] == back && g->nodes[i].phase == IR_BACKWARD;
                reads_v |= g->nodes[i].in[j] == v;
            }
        CHECK(reads_back && !reads_v);
        /* the planner: the host copy in the host pool, the value's buffer
         * free from the step after its ToHost */
        CgSelect sel;
        CHECK(cg_select(g, &cg_target_cpu, &sel) == 0);
        OptMemRequest req = cg_mem_request(&sel);
        OptMemPlan p;
        CHECK(opt_memplan(g, &req, &p) == 0);
        CHECK(p.values[h].pool == OPT_POOL_HOST && p.values[h].offset == 0);
        CHECK_EQ_INT(p.host_bytes, (ir_value_bytes(&g->values[v]) + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN);
        CHECK(!strcmp(opt_pool_name(OPT_POOL_HOST), "host"));
        CHECK(p.values[back].pool == OPT_POOL_ARENA);
        CHECK_EQ_INT(p.values[v].last, to);
        opt_memplan_free(&p);
        cg_select_free(&sel);
    }
    opt_schedule_free(&s);
    opt_schedule_free(&all);
    fixture_free(&f);
}

static void test_greedy(void)
{
    Fixture f;
    if (fixture(&f)) return;
    const IrGraph *g = f.g;
    const double *node_s = f.costs.seconds;
    OptSchedule all, s, s2;
    OptSimResult base, r, r2;
    opt_schedule_store_all(g, &all);
    CHECK(opt_schedule_simulate(g, &all, node_s, &f.req, &base) == 0);
    OptLink fast = {.bw = 1e15, .overlap = 1}; /* every copy done at once */
    /* as low as it goes */
    CHECK(opt_offload(g, node_s, &f.req, &fast, &all, 0, 1024, OPT_MOVE_HOST, &s, &r) == 0);
    int64_t least = r.peak_bytes;
    CHECK(least < base.peak_bytes);
    CHECK(opt_schedule_copies(&s) > 0 && opt_schedule_copies(&s) % 2 == 0);
    opt_schedule_free(&s);
    /* halfway: reached, no stall, store-all's time */
    int64_t room = (least + base.peak_bytes) / 2;
    CHECK(opt_offload(g, node_s, &f.req, &fast, &all, room, 1024, OPT_MOVE_HOST, &s, &r) == 0);
    CHECK(r.peak_bytes <= room);
    CHECK(r.stall_s == 0);
    CHECK(fabs(r.step_s - base.step_s) <= 1e-9 * base.step_s);
    OptSimResult again;
    CHECK(opt_schedule_timeline(g, &s, node_s, &f.req, &fast, &again, NULL, NULL) == 0);
    CHECK_EQ_INT(again.peak_bytes, r.peak_bytes);
    /* less room: at least as many copies */
    CHECK(opt_offload(g, node_s, &f.req, &fast, &all, (least + room) / 2, 1024, OPT_MOVE_HOST, &s2, &r2) == 0);
    CHECK(opt_schedule_copies(&s2) >= opt_schedule_copies(&s));
    CHECK(r2.peak_bytes <= (least + room) / 2);
    opt_schedule_free(&s2);
    /* the schedule applies and verifies */
    IrGraph *c = ir_graph_copy(g);
    CHECK(opt_schedule_apply(c, &s) == 0 && ir_verify(c) == 0);
    ir_graph_free(c);
    opt_schedule_free(&s);
    /* a link that moves nothing in time: no copy can be away at the peak */
    OptLink crawl = {.bw = 1.0, .overlap = 1};
    CHECK(opt_offload(g, node_s, &f.req, &crawl, &all, room, 1024, OPT_MOVE_HOST, &s, &r) == 1);
    /* on the compute thread every copy fits, at its cost */
    OptLink sync = {.bw = 1e9, .overlap = 0};
    CHECK(opt_offload(g, node_s, &f.req, &sync, &all, room, 1024, OPT_MOVE_HOST, &s, &r) == 0);
    CHECK(r.peak_bytes <= room && r.step_s > base.step_s);
    opt_schedule_free(&s);
    opt_schedule_free(&all);
    fixture_free(&f);
}

static int64_t aligned(int64_t n) { return (n + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN; }

/* The device's memory for low-bit conversions: 100 GB/s, 1 TFLOP/s, 5 us. */
static const OptLink lowbit_link = {.bw = 1e9, .overlap = 0, .mem_bw = 1e11, .vec_flops = 1e12, .launch_s = 5e-6};

static void test_lowbit_timeline(void)
{
    Fixture f;
    OptSchedule all, s;
    OptSimResult base, r;
    int w, kf, kb, v = saved_setup(&f, &all, &w, &kf, &kb);
    if (v < 0) return;
    const IrGraph *g = f.g;
    CHECK(opt_schedule_simulate(g, &all, f.costs.seconds, &f.req, &base) == 0);
    int64_t bytes = ir_value_bytes(&g->values[v]), numel = ir_value_numel(&g->values[v]);
    CHECK(g->values[v].dtype == IR_F32);
    with_move(&all, v, kf, kb, 1, &s);
    CHECK_EQ_INT(opt_schedule_copies(&s), 0); /* no host copies */
    /* no device memory rate: refused */
    OptLink none = {.bw = 1e9, .overlap = 0};
    CHECK(opt_schedule_timeline(g, &s, f.costs.seconds, &f.req, &none, &r, NULL, NULL) == -1);
    CHECK_STR_CONTAINS(g->err, "no device memory rate");
    CHECK(opt_schedule_simulate(g, &s, f.costs.seconds, &f.req, &r) == -1);
    /* two conversions of compute, each a Cast's roofline */
    double conv = opt_lowbit_s(&lowbit_link, numel, 0);
    CHECK(fabs(conv - (fmax((double)numel / 1e12, 6.0 * (double)numel / 1e11) + 5e-6)) <= 1e-15);
    CHECK(opt_schedule_timeline(g, &s, f.costs.seconds, &f.req, &lowbit_link, &r, NULL, NULL) == 0);
    CHECK(fabs(r.step_s - (base.step_s + 2 * conv)) <= 1e-12 * base.step_s + 1e-15);
    CHECK(fabs(r.lowbit_s - 2 * conv) <= 1e-15);
    CHECK_EQ_INT(r.lowbit_bytes, bytes);
    CHECK_EQ_INT(r.host_bytes, 0);
    CHECK(r.stall_s == 0);
    /* where store-all peaks with v live and idle, half of v's bytes are gone */
    if (base.peak_at > kf && base.peak_at < kb)
        CHECK(r.peak_bytes <= base.peak_bytes - aligned(bytes) + aligned(2 * numel));
    CHECK(r.peak_bytes <= base.peak_bytes);
    opt_schedule_free(&s);
    /* a widening with no narrowing before it is refused */
    with_move(&all, v, -1, kb, 1, &s);
    CHECK(opt_schedule_timeline(g, &s, f.costs.seconds, &f.req, &lowbit_link, &r, NULL, NULL) == -1);
    CHECK_STR_CONTAINS(g->err, "has no bfloat16 copy there");
    opt_schedule_free(&s);
    /* only float32 values narrow: gpt2_tiny's token ids are int64 */
    int ids = g->inputs[0];
    CHECK(g->values[ids].dtype != IR_F32);
    with_move(&all, ids, 0, all.n - 1, 1, &s);
    CHECK(opt_schedule_timeline(g, &s, f.costs.seconds, &f.req, &lowbit_link, &r, NULL, NULL) == -1);
    CHECK_STR_CONTAINS(g->err, "is not float32");
    opt_schedule_free(&s);
    opt_schedule_free(&all);
    fixture_free(&f);
}

static void test_lowbit_apply(void)
{
    Fixture f;
    OptSchedule all, s;
    int w, kf, kb, v = saved_setup(&f, &all, &w, &kf, &kb);
    if (v < 0) return;
    IrGraph *g = f.g;
    with_move(&all, v, kf, kb, 1, &s);
    /* gpt2_tiny's backward reads it as float32: the widening is a Cast */
    CHECK_EQ_INT(s.ins[kb + 1].kind, OPT_WIDEN);
    CHECK(!opt_widen_at_use(g, &s, v, kb + 2));
    char name[512];
    snprintf(name, sizeof name, "%s", g->values[v].name);
    int64_t bytes = ir_value_bytes(&g->values[v]);
    CHECK(opt_schedule_apply(g, &s) == 0);
    CHECK(ir_verify(g) == 0);
    int nar = -1, wid = -1;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == IR_OP_Cast && g->nodes[i].phase == IR_LOWBIT) {
            if (nar < 0) nar = i;
            else wid = i;
        }
    CHECK(nar >= 0 && wid > nar);
    if (nar >= 0 && wid > nar) {
        int low = g->nodes[nar].out[0], back = g->nodes[wid].out[0];
        char want[600];
        snprintf(want, sizeof want, "narrow/%s", name);
        CHECK(!strcmp(g->nodes[nar].name, want));
        CHECK_EQ_INT(g->nodes[nar].in[0], v);
        CHECK(g->values[low].dtype == IR_BF16 && ir_value_bytes(&g->values[low]) == bytes / 2);
        CHECK_EQ_INT(ir_attr_int(&g->nodes[nar], "to", 0), 16);
        CHECK_EQ_INT(g->nodes[wid].in[0], low);
        CHECK_EQ_INT(ir_attr_int(&g->nodes[wid], "to", 0), 1);
        snprintf(want, sizeof want, "lowbit/%s", name);
        CHECK(!strcmp(g->values[back].name, want) && g->values[back].dtype == IR_F32);
        /* backward reads the widened copy; nothing after the narrowing reads v */
        int reads_back = 0, reads_v = 0;
        for (int i = nar + 1; i < g->nnodes; i++)
            for (int j = 0; j < g->nodes[i].nin; j++) {
                reads_back |= g->nodes[i].in[j] == back && g->nodes[i].phase == IR_BACKWARD;
                reads_v |= g->nodes[i].in[j] == v;
            }
        CHECK(reads_back && !reads_v);
        /* both Casts run as steps of their own; v's buffer dies at the
         * narrowing, the bfloat16 copy at the widening */
        CgSelect sel;
        CHECK(cg_select(g, &cg_target_cpu, &sel) == 0);
        CHECK_EQ_INT(sel.run_at[nar], nar);
        CHECK_EQ_INT(sel.run_at[wid], wid);
        OptMemRequest req = cg_mem_request(&sel);
        OptMemPlan p;
        CHECK(opt_memplan(g, &req, &p) == 0);
        CHECK(p.values[low].pool == OPT_POOL_ARENA && p.values[back].pool == OPT_POOL_ARENA);
        CHECK_EQ_INT(p.values[v].last, nar);
        CHECK_EQ_INT(p.values[low].first, nar);
        CHECK_EQ_INT(p.values[low].last, wid);
        opt_memplan_free(&p);
        cg_select_free(&sel);
    }
    opt_schedule_free(&s);
    opt_schedule_free(&all);
    fixture_free(&f);
}

/* Low-bit storage at less than a pass each way, on resnet_small, whose
 * convolutions' outputs backward reads only as a BatchNormGrad's x or a
 * ConvGradWeight's (opt_reads_bf16): the narrowing right before the
 * forward loop that reads the value joins it (a store of 2 bytes an
 * element, no pass, no launch), the widening is done at use (nothing: the
 * readers take the bfloat16 copy, which lives until the last of them), the
 * rewritten graph has one Cast, fused into that loop as a side store, and
 * the planner gives its copy bytes from the loop to the last reader. */
static void test_lowbit_fused(void)
{
    Fixture f;
    if (fixture_zoo(&f, "models/resnet_small/model.onnx")) return;
    IrGraph *g = f.g;
    OptSchedule all, s;
    OptSimResult base, r;
    opt_schedule_store_all(g, &all);
    CHECK(opt_schedule_simulate(g, &all, f.costs.seconds, &f.req, &base) == 0);
    /* the largest forward output with a loop to join and readers that take bfloat16 */
    int v = -1, kw = -1, kr = -1, kb = -1;
    int64_t best = 0;
    for (int k = 0; k < all.n; k++) {
        const IrNode *n = &g->nodes[all.ins[k].node];
        if (n->phase != IR_FORWARD || n->nout != 1 || n->out[0] < 0) continue;
        int u = n->out[0], j = -1, b = -1;
        for (int q = k + 1; q < all.n && (j < 0 || b < 0); q++) {
            const IrNode *m = &g->nodes[all.ins[q].node];
            if (j < 0 && m->phase == IR_FORWARD && opt_narrow_joins(g, &f.req, u, all.ins[q].node)) j = q;
            for (int i = 0; b < 0 && i < m->nin; i++)
                if (m->in[i] == u && m->phase == IR_BACKWARD) b = q;
        }
        if (j > 0 && b > j && opt_widen_at_use(g, &all, u, b) && ir_value_bytes(&g->values[u]) > best)
            v = u, kw = k, kr = j, kb = b, best = ir_value_bytes(&g->values[u]);
    }
    CHECK(v >= 0);
    if (v < 0) goto done;
    int root = all.ins[kr].node;
    int64_t bytes = ir_value_bytes(&g->values[v]), numel = ir_value_numel(&g->values[v]);
    /* the conditions: a loop that may store the copy and reads v whole */
    OptMemRequest bare = f.req;
    bare.side_store = NULL;
    CHECK(!opt_narrow_joins(g, &bare, v, root));
    CHECK(!opt_narrow_joins(g, &f.req, v, all.ins[kb].node));
    /* a widening before a read that must see float32 is not at use: the
     * forward reads v as a BatchNormalization's input */
    CHECK(!opt_widen_at_use(g, &all, v, kw + 1));
    memset(&s, 0, sizeof s);
    for (int k = 0; k < all.n; k++) {
        if (k == kb) opt_schedule_push_copy(&s, OPT_WIDEN, v);
        if (k == kr) opt_schedule_push_copy(&s, OPT_NARROW, v);
        opt_schedule_push(&s, all.ins[k].node, all.ins[k].kind);
    }
    double joined = opt_lowbit_s(&lowbit_link, numel, 1);
    CHECK(fabs(joined - fmax((double)numel / 1e12, 2.0 * (double)numel / 1e11)) <= 1e-15);
    CHECK(joined < opt_lowbit_s(&lowbit_link, numel, 0));
    CHECK(opt_schedule_timeline(g, &s, f.costs.seconds, &f.req, &lowbit_link, &r, NULL, NULL) == 0);
    CHECK(fabs(r.lowbit_s - joined) <= 1e-15);
    CHECK(fabs(r.step_s - (base.step_s + joined)) <= 1e-12 * base.step_s + 1e-15);
    CHECK_EQ_INT(r.lowbit_bytes, bytes);
    CHECK(r.peak_bytes <= base.peak_bytes);
    if (base.peak_at > kr && base.peak_at < kb)
        CHECK(r.peak_bytes <= base.peak_bytes - aligned(bytes) + aligned(2 * numel));
    /* the narrowing placed after the loop is a pass of its own */
    OptSchedule late;
    with_move(&all, v, kr, kb, 1, &late);
    OptSimResult lr;
    CHECK(opt_schedule_timeline(g, &late, f.costs.seconds, &f.req, &lowbit_link, &lr, NULL, NULL) == 0);
    CHECK(fabs(lr.lowbit_s - opt_lowbit_s(&lowbit_link, numel, 0)) <= 1e-15);
    opt_schedule_free(&late);
    /* rewritten: one Cast, right before the loop; the readers take its copy */
    IrGraph *c = ir_graph_copy(g);
    CHECK(opt_schedule_apply(c, &s) == 0 && ir_verify(c) == 0);
    int nar = -1, ncast = 0, readers = 0, last = -1;
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i].phase == IR_LOWBIT) nar = i, ncast++;
    CHECK_EQ_INT(ncast, 1);
    if (ncast == 1) {
        int low = c->nodes[nar].out[0], rt = nar + 1;
        CHECK(c->values[low].dtype == IR_BF16 && c->nodes[nar].in[0] == v);
        CHECK(!strcmp(c->nodes[rt].name, g->nodes[root].name));
        for (int i = 0; i < c->nnodes; i++)
            for (int j = 0; j < c->nodes[i].nin; j++) {
                if (c->nodes[i].in[j] == low && i != nar) {
                    readers++, last = i;
                    CHECK(c->nodes[i].phase == IR_BACKWARD && opt_reads_bf16(c, i, j));
                }
                if (c->nodes[i].in[j] == v) CHECK(i <= rt);
            }
        CHECK(readers > 0);
        CgSelect sel;
        CHECK(cg_select(c, &cg_target_cpu, &sel) == 0);
        CHECK_EQ_INT(sel.run_at[nar], rt);
        CHECK(sel.side_store[rt]);
        OptMemRequest req = cg_mem_request(&sel);
        OptMemPlan p;
        CHECK(opt_memplan(c, &req, &p) == 0);
        CHECK(p.values[low].pool == OPT_POOL_ARENA && p.values[low].size == bytes / 2);
        CHECK_EQ_INT(p.values[low].first, rt);
        CHECK_EQ_INT(p.values[low].last, sel.run_at[last]);
        CHECK_EQ_INT(p.values[v].last, rt);
        opt_memplan_free(&p);
        cg_select_free(&sel);
    }
    ir_graph_free(c);
    opt_schedule_free(&s);
done:
    opt_schedule_free(&all);
    fixture_free(&f);
}

static void test_lowbit_greedy(void)
{
    Fixture f;
    if (fixture(&f)) return;
    const IrGraph *g = f.g;
    const double *node_s = f.costs.seconds;
    OptSchedule all, s;
    OptSimResult base, r;
    opt_schedule_store_all(g, &all);
    CHECK(opt_schedule_simulate(g, &all, node_s, &f.req, &base) == 0);
    /* without a device memory rate there is nothing it may do */
    OptLink none = {.bw = 1e9, .overlap = 0};
    CHECK(opt_offload(g, node_s, &f.req, &none, &all, 0, 1024, OPT_MOVE_BF16, &s, &r) == 1);
    /* as low as it goes, then halfway to store-all */
    CHECK(opt_offload(g, node_s, &f.req, &lowbit_link, &all, 0, 1024, OPT_MOVE_BF16, &s, &r) == 0);
    int64_t least = r.peak_bytes;
    CHECK(least < base.peak_bytes);
    opt_schedule_free(&s);
    int64_t room = (least + base.peak_bytes) / 2;
    CHECK(opt_offload(g, node_s, &f.req, &lowbit_link, &all, room, 1024, OPT_MOVE_BF16, &s, &r) == 0);
    CHECK(r.peak_bytes <= room && r.step_s > base.step_s && r.lowbit_s > 0);
    CHECK_EQ_INT(opt_schedule_copies(&s), 0);
    int narrow = 0, widen = 0;
    int64_t moved = 0;
    for (int k = 0; k < s.n; k++) {
        if (s.ins[k].kind == OPT_WIDEN) widen++;
        if (s.ins[k].kind != OPT_NARROW) continue;
        narrow++;
        const IrValue *val = &g->values[s.ins[k].value];
        moved += ir_value_bytes(val);
        /* a float32 activation: a forward node's output */
        CHECK(val->dtype == IR_F32 && val->producer >= 0 && g->nodes[val->producer].phase == IR_FORWARD);
    }
    CHECK(narrow > 0 && narrow == widen);
    CHECK_EQ_INT(r.lowbit_bytes, moved);
    OptSimResult again;
    CHECK(opt_schedule_timeline(g, &s, node_s, &f.req, &lowbit_link, &again, NULL, NULL) == 0);
    CHECK_EQ_INT(again.peak_bytes, r.peak_bytes);
    IrGraph *c = ir_graph_copy(g);
    CHECK(opt_schedule_apply(c, &s) == 0 && ir_verify(c) == 0);
    ir_graph_free(c);
    opt_schedule_free(&s);
    /* copies to the host first: with a link that has everything away at
     * once, the same room needs no bfloat16 copy */
    OptLink both = {.bw = 1e15, .overlap = 1, .mem_bw = 1e11, .vec_flops = 1e12, .launch_s = 5e-6};
    CHECK(opt_offload(g, node_s, &f.req, &both, &all, room, 1024, OPT_MOVE_HOST | OPT_MOVE_BF16, &s, &r) == 0);
    CHECK(r.peak_bytes <= room && r.lowbit_bytes == 0 && r.host_bytes > 0);
    opt_schedule_free(&s);
    opt_schedule_free(&all);
    fixture_free(&f);
}

/* On a remat schedule, as low as it goes with bfloat16 copies: no copy is
 * widened for a rerun (its rounding would enter the activations the rerun
 * makes again); every read of a widened copy is a backward node's, though
 * the schedule reruns forward nodes that read saved activations. */
static void test_lowbit_not_for_reruns(void)
{
    Fixture f;
    if (fixture(&f)) return;
    const IrGraph *g = f.g;
    const double *node_s = f.costs.seconds;
    OptRemat *rm = opt_remat_new(g, node_s, &f.req);
    OptSchedule all;
    OptSimResult base;
    opt_schedule_store_all(g, &all);
    CHECK(opt_schedule_simulate(g, &all, node_s, &f.req, &base) == 0);
    int64_t lo = opt_remat_min_peak(rm);
    int rerun_reads = 0, widened = 0; /* over the seeds: reruns reading a forward float32 activation; widenings */
    for (int q = 1; q < 8; q++) { /* remat plans from the least peak toward store-all */
        OptSchedule seed, s;
        OptSimResult sim, r;
        if (opt_remat_solve(rm, lo + (base.peak_bytes - lo) * q / 8, 1, &seed, &sim)) continue;
        for (int k = 0; k < seed.n; k++) {
            const IrNode *n = &g->nodes[seed.ins[k].node];
            for (int j = 0; seed.ins[k].kind == OPT_RERUN && j < n->nin; j++) {
                int v = n->in[j], p = v >= 0 ? g->values[v].producer : -1;
                rerun_reads += p >= 0 && g->nodes[p].phase == IR_FORWARD && g->values[v].dtype == IR_F32;
            }
        }
        if (opt_offload(g, node_s, &f.req, &lowbit_link, &seed, 0, 1024, OPT_MOVE_BF16, &s, &r) == 0) {
            for (int k = 0; k < s.n; k++) {
                if (s.ins[k].kind != OPT_WIDEN) continue;
                int v = s.ins[k].value;
                widened++;
                for (int i = k + 1; i < s.n; i++) {
                    if (s.ins[i].kind != OPT_RUN && s.ins[i].kind != OPT_RERUN) continue;
                    const IrNode *n = &g->nodes[s.ins[i].node];
                    int writes = 0;
                    for (int j = 0; j < n->nout; j++) writes |= n->out[j] == v;
                    if (writes) break; /* a new copy from here */
                    for (int j = 0; j < n->nin; j++)
                        if (n->in[j] == v) CHECK(s.ins[i].kind == OPT_RUN && n->phase == IR_BACKWARD);
                }
            }
            opt_schedule_free(&s);
        }
        opt_schedule_free(&seed);
    }
    CHECK(rerun_reads > 0 && widened > 0);
    opt_schedule_free(&all);
    opt_remat_free(rm);
    fixture_free(&f);
}

/* The remat solver's priced tables (opt_remat_new_link): none without a
 * link whose copies run beside compute; with one, their schedules come in
 * order of time and apply, and a higher level lists a superset. With
 * copies that cost nothing, what a table of checkpoints kept on the device
 * would recompute stays: at a level halfway from the least peak to
 * store-all's, the fastest priced schedule beats every copy-free candidate
 * peaking there, needs copies to get there, and opt_offload puts them in. */
static void test_priced_tables(void)
{
    Fixture f;
    if (fixture(&f)) return;
    const IrGraph *g = f.g;
    const double *node_s = f.costs.seconds;
    OptLink fast = {.bw = 1e15, .overlap = 1}, sync = {.bw = 1e9, .overlap = 0};
    OptSchedule s, o, c, all;
    OptSimResult sim, osim, csim, base;
    OptRemat *plain = opt_remat_new(g, node_s, &f.req), *nolap = opt_remat_new_link(g, node_s, &f.req, &sync);
    CHECK(opt_remat_priced(plain, INT64_MAX, 0, &s, &sim) == 1);
    CHECK(opt_remat_priced(nolap, INT64_MAX, 0, &s, &sim) == 1);
    opt_remat_free(plain);
    opt_remat_free(nolap);
    OptRemat *r = opt_remat_new_link(g, node_s, &f.req, &fast);
    int n = 0;
    double prev = 0;
    for (; !opt_remat_priced(r, INT64_MAX, n, &s, &sim); n++) {
        CHECK(sim.step_s >= prev);
        prev = sim.step_s;
        IrGraph *cp = ir_graph_copy(g);
        CHECK(opt_schedule_apply(cp, &s) == 0 && ir_verify(cp) == 0);
        ir_graph_free(cp);
        opt_schedule_free(&s);
    }
    CHECK(n > 0);
    opt_schedule_store_all(g, &all);
    CHECK(opt_schedule_simulate(g, &all, node_s, &f.req, &base) == 0);
    int64_t least = opt_remat_min_peak(r), level = (least + base.peak_bytes) / 2;
    int below = 0; /* how many a level lists: never fewer at a higher one, all of them at any */
    for (int q = 0; q <= 8; q++) {
        int count = 0;
        for (; !opt_remat_priced(r, least + (base.peak_bytes - least) * q / 4, count, &s, &sim); count++)
            opt_schedule_free(&s);
        CHECK(count >= below && count <= n);
        below = count;
    }
    CHECK(below > 0);
    CHECK(opt_remat_priced(r, level, 0, &s, &sim) == 0);
    CHECK(opt_remat_solve(r, level, 1, &o, &osim) == 0);
    CHECK(sim.step_s < osim.step_s);
    CHECK(sim.peak_bytes > level);
    CHECK(opt_offload(g, node_s, &f.req, &fast, &s, level, 1024, OPT_MOVE_HOST, &c, &csim) == 0);
    CHECK(csim.peak_bytes <= level && csim.step_s < osim.step_s);
    opt_schedule_free(&c);
    opt_schedule_free(&o);
    opt_schedule_free(&s);
    opt_schedule_free(&all);
    opt_remat_free(r);
    fixture_free(&f);
}

/* Where copies get stuck (opt_offload_stuck) and a recomputation there
 * (opt_refine_drop_at), the two halves of cli/budget.c's repair of a
 * priced seed. A link that moves nothing in time leaves store-all's peak
 * where it is, for any room it cannot reach; a link that has everything
 * away at once reaches a room and reports no stuck point; a drop at the
 * stuck instruction reruns what it drops, keeps the schedule valid, costs
 * time and lowers that peak. */
static void test_repair(void)
{
    Fixture f;
    if (fixture(&f)) return;
    const IrGraph *g = f.g;
    const double *node_s = f.costs.seconds;
    OptSchedule all, s, next;
    OptSimResult base, r;
    opt_schedule_store_all(g, &all);
    CHECK(opt_schedule_simulate(g, &all, node_s, &f.req, &base) == 0);
    OptLink crawl = {.bw = 1.0, .overlap = 1}, fast = {.bw = 1e15, .overlap = 1};
    int at = 0, at2 = 0;
    CHECK(opt_offload_stuck(g, node_s, &f.req, &crawl, &all, base.peak_bytes / 2, 1024, OPT_MOVE_HOST, &s, &r, &at) == 1);
    CHECK(opt_offload_stuck(g, node_s, &f.req, &crawl, &all, 1, 1024, OPT_MOVE_HOST, &s, &r, &at2) == 1);
    CHECK_EQ_INT(at, base.peak_at);
    CHECK_EQ_INT(at2, at);
    CHECK(opt_offload_stuck(g, node_s, &f.req, &fast, &all, base.peak_bytes * 3 / 4, 1024, OPT_MOVE_HOST, &s, &r,
                            &at2) == 0);
    CHECK(at2 == -1 && r.peak_bytes <= base.peak_bytes * 3 / 4);
    opt_schedule_free(&s);
    OptRefine *rf = opt_refine_new(g, node_s, &f.req);
    CHECK(opt_refine_drop_at(rf, &all, at, &next) == 0);
    int reruns = 0;
    for (int k = 0; k < next.n; k++) reruns += next.ins[k].kind == OPT_RERUN;
    CHECK(reruns > 0);
    IrGraph *c = ir_graph_copy(g);
    CHECK(opt_schedule_apply(c, &next) == 0 && ir_verify(c) == 0);
    ir_graph_free(c);
    OptSimResult nr;
    CHECK(opt_schedule_simulate(g, &next, node_s, &f.req, &nr) == 0);
    CHECK(nr.step_s > base.step_s && nr.peak_bytes <= base.peak_bytes);
    CHECK(nr.peak_bytes < base.peak_bytes || nr.peak_at != base.peak_at);
    opt_schedule_free(&next);
    /* nothing to drop at the first instruction: nothing is live across it */
    CHECK(opt_refine_drop_at(rf, &all, 0, &next) == 1);
    opt_refine_free(rf);
    opt_schedule_free(&all);
    fixture_free(&f);
}

int main(void)
{
    RUN(test_timeline);
    RUN(test_apply);
    RUN(test_greedy);
    RUN(test_lowbit_timeline);
    RUN(test_lowbit_apply);
    RUN(test_lowbit_fused);
    RUN(test_lowbit_greedy);
    RUN(test_lowbit_not_for_reruns);
    RUN(test_priced_tables);
    RUN(test_repair);
    return CHECK_DONE();
}
