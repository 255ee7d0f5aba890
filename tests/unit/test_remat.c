/* Unit tests of the remat solver (optimizer/remat.c) and its pruning
 * (optimizer/remat_refine.c) on the zoo's resnet_small, trained with
 * cross-entropy and AdamW, selected for the cpu target and costed by the
 * cpu roofline, as `loom plan` does: pruning removes a rerun nothing reads
 * (and one read only by such a rerun) and keeps one that is read; more
 * budget never gives a slower schedule. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codegen.h"
#include "frontend.h"
#include "ir.h"
#include "optimizer.h"
#include "train.h"

typedef struct {
    IrGraph *g;
    CgSelect sel;
    OptMemRequest req;
    OptCosts costs;
} Fixture;

static int fixture(Fixture *f)
{
    memset(f, 0, sizeof *f);
    f->g = ir_graph_new("models/resnet_small/model.onnx");
    IrTrainOptions o;
    ir_train_defaults(&o);
    o.loss_kind = IR_LOSS_CE;
    o.target = "target_y";
    if (onnx_load(f->g, NULL, 0) || onnx_fold_infer(f->g) || ir_build_training(f->g, &o) ||
        cg_select(f->g, &cg_target_cpu, &f->sel)) {
        fprintf(stderr, "  resnet_small: %s\n", f->g->err);
        check_failed_ = 1;
        ir_graph_free(f->g);
        return -1;
    }
    f->req = cg_mem_request(&f->sel);
    OptDevice d;
    char err[256];
    IR_ASSERT(opt_device_lookup("cpu", &d, err, sizeof err) == 0);
    IR_ASSERT(opt_costs_analytic(f->g, &d, f->sel.run_at, &f->costs) == 0);
    return 0;
}

static void fixture_free(Fixture *f)
{
    opt_costs_free(&f->costs);
    cg_select_free(&f->sel);
    ir_graph_free(f->g);
}

static int node_named(const IrGraph *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].name && !strcmp(g->nodes[i].name, name)) return i;
    IR_ASSERT(!"no such node");
    return -1;
}

/* Store-all, with each group of forward nodes (-1 ends a group, -2 the
 * list) run again just before the first backward node that reads one of
 * the group's outputs. */
static void with_reruns(const IrGraph *g, const int *groups, OptSchedule *s)
{
    OptSchedule all;
    opt_schedule_store_all(g, &all);
    memset(s, 0, sizeof *s);
    unsigned char done[64] = {0};
    for (int k = 0; k < all.n; k++) {
        const IrNode *n = &g->nodes[all.ins[k].node];
        for (int a = 0, gi = 0; n->phase == IR_BACKWARD && groups[a] != -2; gi++) {
            int b = a, reads = 0;
            for (; groups[b] >= 0; b++)
                for (int j = 0; j < n->nin; j++)
                    reads |= n->in[j] >= 0 && n->in[j] == g->nodes[groups[b]].out[0];
            if (reads && !done[gi])
                for (int c = a; c < b; c++) opt_schedule_push(s, groups[c], OPT_RERUN);
            done[gi] |= reads;
            a = b + 1;
        }
        opt_schedule_push(s, all.ins[k].node, all.ins[k].kind);
    }
    opt_schedule_free(&all);
}

static int applies(const IrGraph *g, const OptSchedule *s)
{
    IrGraph *c = ir_graph_copy(g);
    int ok = opt_schedule_apply(c, s) == 0 && ir_verify(c) == 0;
    ir_graph_free(c);
    return ok;
}

/* A rerun nothing reads goes, with the reruns only it reads; one that is
 * read stays. */
static void test_prune(void)
{
    Fixture f;
    if (fixture(&f)) return;
    const IrGraph *g = f.g;
    OptRefine *rf = opt_refine_new(g, &f.req);
    int conv = node_named(g, "/stem/stem.0/Conv"), bn = node_named(g, "/stem/stem.1/BatchNormalization");
    OptSchedule all, s;
    opt_schedule_store_all(g, &all);
    memset(&s, 0, sizeof s);
    for (int k = 0; k < all.n; k++) {
        if (g->nodes[all.ins[k].node].phase == IR_UPDATE && s.n && g->nodes[s.ins[s.n - 1].node].phase != IR_UPDATE) {
            opt_schedule_push(&s, conv, OPT_RERUN); /* read only by the BatchNormalization rerun */
            opt_schedule_push(&s, bn, OPT_RERUN);   /* read by nothing */
        }
        opt_schedule_push(&s, all.ins[k].node, all.ins[k].kind);
    }
    CHECK_EQ_INT(s.n, all.n + 2);
    opt_refine_prune(rf, &s);
    CHECK_EQ_INT(s.n, all.n);
    CHECK(!memcmp(s.ins, all.ins, (size_t)all.n * sizeof *all.ins));
    opt_schedule_free(&s);
    int groups[] = {node_named(g, "/stem/stem.1/BatchNormalization"), node_named(g, "/stem/stem.2/Relu"), -1, -2};
    with_reruns(g, groups, &s);
    int n = s.n;
    opt_refine_prune(rf, &s);
    CHECK_EQ_INT(s.n, n);
    CHECK(applies(g, &s));
    opt_schedule_free(&s);
    opt_schedule_free(&all);
    opt_refine_free(rf);
    fixture_free(&f);
}

/* Over budgets from the least simulated peak to store-all's, the solver's
 * schedule never gets slower and always fits. */
static void test_monotone(void)
{
    Fixture f;
    if (fixture(&f)) return;
    OptRemat *r = opt_remat_new(f.g, f.costs.seconds, &f.req);
    OptSchedule all;
    OptSimResult asim;
    opt_schedule_store_all(f.g, &all);
    opt_schedule_simulate(f.g, &all, f.costs.seconds, &f.req, &asim);
    int64_t lo = opt_remat_min_peak(r), hi = asim.peak_bytes;
    CHECK(lo < hi);
    double prev = 1e30;
    for (int i = 0; i <= 32; i++) {
        int64_t b = lo + (hi - lo) * i / 32;
        OptSchedule s;
        OptSimResult sim;
        CHECK_EQ_INT(opt_remat_solve(r, b, &s, &sim), 0);
        CHECK(sim.peak_bytes <= b);
        CHECK(sim.step_s <= prev);
        prev = sim.step_s;
        opt_schedule_free(&s);
    }
    CHECK(prev == asim.step_s);
    opt_schedule_free(&all);
    opt_remat_free(r);
    fixture_free(&f);
}

int main(void)
{
    RUN(test_prune);
    RUN(test_monotone);
    return CHECK_DONE();
}
