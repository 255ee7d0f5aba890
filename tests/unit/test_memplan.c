/* Unit tests of the memory planner (optimizer/memplan.c) on hand-built graphs
 * and on small random DAGs: no two buffers live at the same step share a
 * byte (checked byte by byte, step by step), views share their input's
 * bytes, intervals match a brute-force liveness, workspaces and fused
 * intermediates are placed as requested, and the arena is at least the
 * lower bound, which is the brute-force peak. On zoo training graphs
 * (ir/train.h) as codegen selects them: parameters and optimizer state
 * persist in the weights blob without sharing a byte, and every update's
 * output is its parameter's or state's bytes. An update stored between a
 * fused group's nodes that read its parameter splits the group (cg_select),
 * so that no read of the parameter runs after the update. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codegen.h"
#include "frontend.h"
#include "ir.h"
#include "optimizer.h"
#include "train.h"

static int value(IrGraph *g, const char *name, IrRole role, int64_t n)
{
    int v = ir_value_new(g, name, role);
    ir_value_set_shape(&g->values[v], IR_F32, 1, &n);
    if (role == IR_PARAM || role == IR_CONST) ir_value_set_data(g, v, ir_xcalloc((size_t)n, 4));
    return v;
}

static int node(IrGraph *g, IrOp op, int a, int b, int out)
{
    int in[2] = {a, b};
    int id = ir_node_new(g, op, ir_unique_name(g, "n"), b >= 0 ? 2 : 1, in, 1, &out);
    return id;
}

static void add_input(IrGraph *g, int v)
{
    g->inputs = ir_xrealloc(g->inputs, (size_t)(g->ninputs + 1) * sizeof(int));
    g->inputs[g->ninputs++] = v;
}

static void add_output(IrGraph *g, int v)
{
    g->outputs = ir_xrealloc(g->outputs, (size_t)(g->noutputs + 1) * sizeof(int));
    g->outputs[g->noutputs++] = v;
    g->values[v].is_output = 1;
}

static int ninplace_; /* in-place outputs check_plan saw */

static int64_t align64(int64_t n) { return (n + 63) / 64 * 64; }

/* Brute force: steps at which each arena value's bytes are in use, from the
 * graph alone; then every step's bytes, claimed by one buffer at most. */
static void check_plan(IrGraph *g, const OptMemRequest *req, const OptMemPlan *p)
{
    int nn = g->nnodes, nsteps = nn ? nn : 1;
    const int *run_at = req ? req->run_at : NULL;
    int *first = ir_xmalloc((size_t)g->nvalues * sizeof(int)), *last = ir_xmalloc((size_t)g->nvalues * sizeof(int));
    int *root = ir_xmalloc((size_t)g->nvalues * sizeof(int));
    for (int v = 0; v < g->nvalues; v++) {
        root[v] = v;
        int pr = g->values[v].producer;
        first[v] = last[v] = pr < 0 ? 0 : run_at ? run_at[pr] : pr;
    }
    for (int i = 0; i < nn; i++)
        if (ir_ops[g->nodes[i].op].flags & OPF_VIEW) root[g->nodes[i].out[0]] = root[g->nodes[i].in[0]];
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < g->nodes[i].nin; j++) {
            int r = root[g->nodes[i].in[j]], s = run_at ? run_at[i] : i;
            if (s > last[r]) last[r] = s;
        }
    for (int k = 0; k < g->noutputs; k++) last[root[g->outputs[k]]] = nsteps - 1;
    /* in place: where the plan gives a step's output an input's bytes (a
     * fused group's output: an input of any node of the group), that
     * input's buffer must be read last at the step, and the two are one */
    unsigned char *merged = ir_xcalloc((size_t)g->nvalues, 1);
    for (int i = 0; req && req->inplace_in && i < nn; i++) {
        int o = g->nodes[run_at ? run_at[i] : i].out[0], r = -1;
        for (int j = 0; j < g->nodes[i].nin && r < 0 && !merged[o]; j++) /* the input of the mask whose bytes o took */
            if ((req->inplace_in[i] >> j & 1) && p->values[o].alias == root[g->nodes[i].in[j]])
                r = root[g->nodes[i].in[j]];
        if (r < 0) continue;
        merged[o] = 1;
        CHECK_EQ_INT(last[r], run_at ? run_at[i] : i);
        CHECK(g->values[r].producer >= 0);
        if (last[o] > last[r]) last[r] = last[o];
        for (int v = 0; v < g->nvalues; v++)
            if (root[v] == o) root[v] = r;
        ninplace_++;
    }
    free(merged);
    int64_t peak = 0;
    for (int s = 0; s < nsteps; s++) {
        unsigned char *used = ir_xcalloc((size_t)p->arena_bytes + 1, 1);
        int64_t live = 0;
        for (int v = 0; v < g->nvalues; v++) {
            const OptSlice *sl = &p->values[v];
            if (sl->pool != OPT_POOL_ARENA || root[v] != v || s < first[v] || s > last[v]) continue;
            CHECK_EQ_INT(sl->first, first[v]);
            CHECK_EQ_INT(sl->last, last[v]);
            CHECK(sl->offset % OPT_ALIGN == 0);
            CHECK(sl->offset + sl->size <= p->arena_bytes);
            live += align64(sl->size);
            for (int64_t b = sl->offset; b < sl->offset + sl->size && b < p->arena_bytes; b++) {
                if (used[b]) {
                    CHECK(!"two live buffers share a byte");
                    break;
                }
                used[b] = 1;
            }
        }
        for (int i = 0; req && req->ws_bytes && i < nn; i++) {
            if (req->ws_bytes[i] <= 0 || (run_at ? run_at[i] : i) != s) continue;
            live += align64(req->ws_bytes[i]);
            for (int64_t b = p->ws_offset[i]; b < p->ws_offset[i] + req->ws_bytes[i]; b++) {
                if (used[b]) {
                    CHECK(!"a workspace shares a byte with a live buffer");
                    break;
                }
                used[b] = 1;
            }
        }
        if (live > peak) peak = live;
        free(used);
    }
    /* the planner places with and without the in-place merges and keeps the
     * smaller arena; its lower bound is the lower of the two placements' */
    CHECK(p->lower_bound <= peak && (p->lower_bound == peak || (req && req->inplace_in)));
    CHECK(p->arena_bytes >= peak);
    for (int v = 0; v < g->nvalues; v++)
        if (root[v] != v) {
            CHECK_EQ_INT(p->values[v].alias, root[v]);
            CHECK_EQ_INT(p->values[v].offset, p->values[root[v]].offset);
        }
    free(first);
    free(last);
    free(root);
}

/* x -> Relu -> a -> Relu -> b -> Reshape -> c -> Relu -> y, with a weight. */
static void test_chain_and_view(void)
{
    IrGraph *g = ir_graph_new("chain");
    int x = value(g, "x", IR_INPUT, 100), w = value(g, "w", IR_PARAM, 100);
    int a = value(g, "a", IR_ACTIVATION, 100), b = value(g, "b", IR_ACTIVATION, 100);
    int c = value(g, "c", IR_ACTIVATION, 100), y = value(g, "y", IR_ACTIVATION, 100);
    int shape = value(g, "shape", IR_CONST, 1);
    add_input(g, x);
    node(g, IR_OP_Add, x, w, a);
    node(g, IR_OP_Relu, a, -1, b);
    node(g, IR_OP_Reshape, b, shape, c);
    node(g, IR_OP_Relu, c, -1, y);
    add_output(g, y);
    OptMemPlan p;
    CHECK_EQ_INT(opt_memplan(g, NULL, &p), 0);
    check_plan(g, NULL, &p);
    CHECK_EQ_INT(p.values[w].pool, OPT_POOL_WEIGHTS);
    CHECK_EQ_INT(p.values[c].alias, b);
    CHECK_EQ_INT(p.values[b].last, 3); /* stretched to the view's use */
    CHECK_EQ_INT(p.values[x].first, 0);
    CHECK_EQ_INT(p.values[y].last, 3);
    /* two buffers at a time: x with a, a with b, b with y */
    CHECK_EQ_INT(p.arena_bytes, 2 * 448);
    CHECK_EQ_INT(p.lower_bound, 2 * 448);
    CHECK_EQ_INT(p.weights_bytes, 448 + 64);
    opt_memplan_free(&p);
    ir_graph_free(g);
}

/* Workspaces, a fused intermediate and a compile-time-only constant. */
static void test_request(void)
{
    IrGraph *g = ir_graph_new("request");
    int x = value(g, "x", IR_INPUT, 256), a = value(g, "a", IR_ACTIVATION, 256);
    int b = value(g, "b", IR_ACTIVATION, 256), y = value(g, "y", IR_ACTIVATION, 256);
    int axes = value(g, "axes", IR_CONST, 2);
    add_input(g, x);
    node(g, IR_OP_Conv, x, -1, a);  /* step 0, workspace */
    node(g, IR_OP_Relu, a, -1, b);  /* fused into node 2 */
    node(g, IR_OP_Add, b, x, y);    /* reads x at step 2: x must live to 2 */
    add_output(g, y);
    int64_t ws[3] = {1000, 0, 0};
    int run_at[3] = {0, 2, 2};
    unsigned char stat[6] = {0};
    stat[axes] = 1;
    OptMemRequest req = {.ws_bytes = ws, .run_at = run_at, .static_only = stat};
    OptMemPlan p;
    CHECK_EQ_INT(opt_memplan(g, &req, &p), 0);
    check_plan(g, &req, &p);
    CHECK_EQ_INT(p.values[b].pool, OPT_POOL_NONE);
    CHECK_EQ_INT(p.values[axes].pool, OPT_POOL_NONE);
    CHECK_EQ_INT(p.values[x].last, 2);
    CHECK_EQ_INT(p.values[a].last, 2);
    CHECK(p.ws_offset[0] >= 0);
    CHECK_EQ_INT(p.ws_offset[1], -1);
    CHECK_EQ_INT(p.weights_bytes, 0);
    opt_memplan_free(&p);
    ir_graph_free(g);
}

/* Small random DAGs: binary and unary nodes over earlier values, some views,
 * random sizes; several outputs. */
static void test_random_dags(void)
{
    unsigned seed = 12345;
    ninplace_ = 0;
#define RND(n) ((int)((seed = seed * 1103515245u + 12345u) >> 16) % (n))
    for (int trial = 0; trial < 300; trial++) {
        IrGraph *g = ir_graph_new("random");
        int nin = 1 + RND(3), nn = 1 + RND(14), vals[32], nv = 0;
        char name[32];
        for (int i = 0; i < nin; i++) {
            snprintf(name, sizeof name, "in%d", i);
            vals[nv] = value(g, name, IR_INPUT, 1 + RND(300));
            add_input(g, vals[nv++]);
        }
        int64_t *ws = ir_xcalloc((size_t)nn, sizeof *ws);
        for (int i = 0; i < nn; i++) {
            int a = vals[RND(nv)], kind = RND(4);
            snprintf(name, sizeof name, "v%d", i);
            if (kind == 0) {
                int out = ir_value_new(g, name, IR_ACTIVATION);
                ir_value_set_shape(&g->values[out], IR_F32, 1, &g->values[a].dims[0]);
                node(g, IR_OP_Reshape, a, -1, out);
                vals[nv++] = out;
            } else {
                int out = value(g, name, IR_ACTIVATION, 1 + RND(300));
                node(g, kind == 1 ? IR_OP_Relu : IR_OP_Add, a, kind == 1 ? -1 : vals[RND(nv)], out);
                vals[nv++] = out;
            }
            if (RND(4) == 0) ws[i] = 1 + RND(500);
        }
        add_output(g, vals[nv - 1]);
        if (nv - nin > 1 && RND(2)) add_output(g, vals[nin + RND(nv - nin - 1)]);
        unsigned *inplace = ir_xmalloc((size_t)nn * sizeof *inplace);
        for (int i = 0; i < nn; i++) /* over input 0, 1 or either, where it dies */
            inplace[i] = g->nodes[i].op == IR_OP_Reshape || !RND(2) ? 0
                         : g->nodes[i].nin > 1 && g->nodes[i].in[1] >= 0 ? 1 + (unsigned)RND(3) : 1;
        OptMemRequest req = {.ws_bytes = ws, .inplace_in = inplace};
        OptMemPlan p;
        CHECK_EQ_INT(opt_memplan(g, &req, &p), 0);
        check_plan(g, &req, &p);
        OptSchedule all;
        OptSimResult sim;
        opt_schedule_store_all(g, &all);
        CHECK_EQ_INT(opt_schedule_simulate(g, &all, NULL, &req, &sim), 0);
        CHECK_EQ_INT(sim.peak_bytes, p.lower_bound); /* the simulator counts as the planner */
        opt_schedule_free(&all);
        opt_memplan_free(&p);
        free(inplace);
        free(ws);
        ir_graph_free(g);
    }
#undef RND
    CHECK(ninplace_ > 20); /* outputs written over a dying input were planned and checked */
}

/* An empty graph: an input that is the output. */
static void test_passthrough(void)
{
    IrGraph *g = ir_graph_new("pass");
    int x = value(g, "x", IR_INPUT, 10);
    add_input(g, x);
    add_output(g, x);
    OptMemPlan p;
    CHECK_EQ_INT(opt_memplan(g, NULL, &p), 0);
    check_plan(g, NULL, &p);
    CHECK_EQ_INT(p.arena_bytes, 64);
    opt_memplan_free(&p);
    ir_graph_free(g);
}

/* A zoo model's training graph, selected for the cpu target and planned. */
static void train_plan(const char *model, IrLossKind loss, IrOptimizer opt, float momentum, float clip)
{
    char path[128];
    snprintf(path, sizeof path, "models/%s/model.onnx", model);
    IrGraph *g = ir_graph_new(path);
    IrTrainOptions o;
    ir_train_defaults(&o);
    o.loss_kind = loss;
    o.target = "target_y";
    o.optimizer = opt;
    o.momentum = momentum;
    o.clip_norm = clip;
    CgSelect sel;
    if (onnx_load(g, NULL, 0) || onnx_fold_infer(g) || ir_build_training(g, &o) ||
        cg_select(g, &cg_target_cpu, &sel)) {
        fprintf(stderr, "  %s: %s\n", model, g->err);
        check_failed_ = 1;
        ir_graph_free(g);
        return;
    }
    OptMemRequest req = cg_mem_request(&sel);
    OptMemPlan p;
    CHECK_EQ_INT(opt_memplan(g, &req, &p), 0);
    ninplace_ = 0;
    check_plan(g, &req, &p);
    CHECK(ninplace_ >= 1); /* the cross-entropy gradient over the logits */
    /* a BatchNormGrad's dx over x, where dy lives on (a residual block's
     * last normalization: its dy also flows down the skip) */
    int over_x = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead || n->op != IR_OP_BatchNormGrad || n->out[0] < 0) continue;
        int x = n->in[1];
        while (p.values[x].alias >= 0) x = p.values[x].alias;
        over_x += p.values[n->out[0]].alias == x;
    }
    if (!strcmp(model, "resnet_small")) CHECK(over_x >= 1);
    fprintf(stderr, "  %s: %d BatchNormGrad dx over x\n", model, over_x);
    /* the schedule's simulator counts what the planner counts */
    OptSchedule all;
    OptSimResult sim;
    opt_schedule_store_all(g, &all);
    CHECK_EQ_INT(opt_schedule_simulate(g, &all, NULL, &req, &sim), 0);
    CHECK_EQ_INT(sim.peak_bytes, p.lower_bound);
    opt_schedule_free(&all);
    /* the weights blob: roots one after the other, never overlapping */
    unsigned char *used = ir_xcalloc((size_t)p.weights_bytes + 1, 1);
    int nstate = 0, nupdates = 0;
    for (int v = 0; v < g->nvalues; v++) {
        const OptSlice *sl = &p.values[v];
        const IrValue *val = &g->values[v];
        if (val->role == IR_OPT_STATE || (val->role == IR_PARAM && ir_param_grad(g, v) >= 0)) {
            CHECK(sl->pool == OPT_POOL_WEIGHTS && sl->alias < 0);
            nstate += val->role == IR_OPT_STATE;
        }
        if (val->alias >= 0) { /* an update's output: its target's bytes */
            nupdates++;
            CHECK(sl->pool == OPT_POOL_WEIGHTS);
            CHECK_EQ_INT(sl->alias, val->alias);
            CHECK_EQ_INT(sl->offset, p.values[val->alias].offset);
        }
        if (sl->pool != OPT_POOL_WEIGHTS || sl->alias >= 0) continue;
        CHECK(sl->offset % OPT_ALIGN == 0 && sl->offset + sl->size <= p.weights_bytes);
        for (int64_t b = sl->offset; b < sl->offset + sl->size && b < p.weights_bytes; b++) {
            if (used[b]) {
                CHECK(!"two weights-blob values share a byte");
                break;
            }
            used[b] = 1;
        }
    }
    CHECK(nstate > 0 && nupdates > 0);
    printf("  %s: arena %lld (lower bound %lld), weights and state %lld, %d state values, %d in-place updates, "
           "%d outputs over their input\n", model, (long long)p.arena_bytes, (long long)p.lower_bound,
           (long long)p.weights_bytes, nstate, nupdates, ninplace_);
    free(used);
    opt_memplan_free(&p);
    cg_select_free(&sel);
    ir_graph_free(g);
}

static void test_training(void)
{
    train_plan("mlp", IR_LOSS_CE, IR_OPTIM_ADAMW, 0, 1.0f);
    train_plan("resnet_small", IR_LOSS_CE, IR_OPTIM_SGD, 0.9f, 0);
}

/* y = Mul(x, W) fuses into z = Relu(y) (one use, one shape), and the
 * update of W comes between (update_at 1) or after (2); W's update must
 * not run before the loop at the Relu reads W. */
static void fused_around_update(int update_at, int *mul_at, int *relu_at)
{
    IrGraph *g = ir_graph_new(NULL);
    int64_t n = 8;
    int x = value(g, "x", IR_INPUT, n), w = value(g, "W", IR_PARAM, n), gw = value(g, "grad/W", IR_INPUT, n);
    int m = value(g, "m/W", IR_OPT_STATE, n), v = value(g, "v/W", IR_OPT_STATE, n);
    int lr = ir_value_new(g, "opt/lr", IR_OPT_STATE), step = ir_value_new(g, "opt/step", IR_OPT_STATE);
    int loss = ir_value_new(g, "loss", IR_INPUT);
    ir_value_set_shape(&g->values[lr], IR_F32, 0, NULL);
    ir_value_set_shape(&g->values[step], IR_I64, 0, NULL);
    ir_value_set_shape(&g->values[loss], IR_F32, 0, NULL);
    add_input(g, x), add_input(g, gw), add_input(g, loss);
    int y = value(g, "y", IR_ACTIVATION, n), z = value(g, "z", IR_ACTIVATION, n);
    int nw = value(g, "next/W", IR_ACTIVATION, n), nm = value(g, "next/m/W", IR_ACTIVATION, n),
        nv = value(g, "next/v/W", IR_ACTIVATION, n);
    g->values[nw].alias = w, g->values[nm].alias = m, g->values[nv].alias = v;
    int order[3], nodes = 0;
    *mul_at = node(g, IR_OP_Mul, x, w, y);
    order[nodes++] = *mul_at;
    int in[7] = {w, gw, m, v, lr, step, loss}, out[3] = {nw, nm, nv};
    int up = ir_node_new(g, IR_OP_AdamW, "update/W", 7, in, 3, out);
    g->nodes[up].phase = IR_UPDATE;
    *relu_at = node(g, IR_OP_Relu, y, -1, z);
    if (update_at == 1) order[nodes++] = up, order[nodes++] = *relu_at;
    else order[nodes++] = *relu_at, order[nodes++] = up;
    ir_reorder(g, order, 3);
    *mul_at = 0;
    *relu_at = update_at == 1 ? 2 : 1;
    add_output(g, z);
    CgSelect sel;
    if (cg_select(g, &cg_target_cpu, &sel)) {
        fprintf(stderr, "  %s\n", g->err);
        check_failed_ = 1;
    } else {
        *mul_at = sel.run_at[*mul_at];
        *relu_at = sel.run_at[*relu_at];
        cg_select_free(&sel);
    }
    ir_graph_free(g);
}

static void test_update_splits_group(void)
{
    int mul, relu;
    fused_around_update(2, &mul, &relu); /* the update after the group: fused */
    CHECK_EQ_INT(mul, 1);
    CHECK_EQ_INT(relu, 1);
    fused_around_update(1, &mul, &relu); /* between: the Mul runs alone, before the update */
    CHECK_EQ_INT(mul, 0);
    CHECK_EQ_INT(relu, 2);
}

/* A fused group's intermediate is in registers only for its own run: a
 * rerun of the group's last node that reads it keeps it in memory from the
 * first run, and the simulator counts it as the planner of the program
 * that schedule becomes (where the node no longer fuses: two readers). */
static void test_rerun_reads_fused(void)
{
    IrGraph *g = ir_graph_new("rerun");
    int x = value(g, "x", IR_INPUT, 64), a = value(g, "a", IR_ACTIVATION, 1024); /* a: 4096 bytes */
    int y = value(g, "y", IR_ACTIVATION, 64), z = value(g, "z", IR_ACTIVATION, 64);
    add_input(g, x);
    int n0 = node(g, IR_OP_Relu, x, -1, a); /* fused into n1 */
    int n1 = node(g, IR_OP_Neg, a, -1, y);
    int n2 = node(g, IR_OP_Mul, y, x, z);
    add_output(g, z);
    int run_at[3] = {n1, n1, n2};
    OptMemRequest req = {.run_at = run_at};
    OptSchedule s = {0};
    OptSimResult sim;
    opt_schedule_push(&s, n0, OPT_RUN);
    opt_schedule_push(&s, n1, OPT_RUN);
    opt_schedule_push(&s, n2, OPT_RUN);
    CHECK_EQ_INT(opt_schedule_simulate(g, &s, NULL, &req, &sim), 0);
    CHECK_EQ_INT(sim.peak_bytes, 3 * 256); /* x, y, z: a in registers */
    opt_schedule_free(&s);
    s = (OptSchedule){0};
    opt_schedule_push(&s, n0, OPT_RUN);
    opt_schedule_push(&s, n1, OPT_RUN);
    opt_schedule_push(&s, n1, OPT_RERUN); /* reads a after the group ran */
    opt_schedule_push(&s, n2, OPT_RUN);
    CHECK_EQ_INT(opt_schedule_simulate(g, &s, NULL, &req, &sim), 0);
    CHECK_EQ_INT(sim.peak_bytes, 4096 + 2 * 256); /* a held from its write to the rerun, with x and y */
    IrGraph *c = ir_graph_copy(g);
    CgSelect sel;
    CHECK_EQ_INT(opt_schedule_apply(c, &s), 0);
    CHECK_EQ_INT(cg_select(c, &cg_target_cpu, &sel), 0);
    OptMemRequest creq = cg_mem_request(&sel);
    OptMemPlan p;
    CHECK_EQ_INT(opt_memplan(c, &creq, &p), 0);
    CHECK_EQ_INT(p.lower_bound, sim.peak_bytes);
    opt_memplan_free(&p);
    cg_select_free(&sel);
    ir_graph_free(c);
    opt_schedule_free(&s);
    ir_graph_free(g);
}

/* A fused node reads its inputs when its group's loop runs, at the group's
 * last node: with another node scheduled between the two (as remat's
 * reruns interleave), the input lives across it, in the simulator as in the
 * planner. */
static void test_group_apart(void)
{
    IrGraph *g = ir_graph_new("apart");
    int x = value(g, "x", IR_INPUT, 64), p = value(g, "p", IR_ACTIVATION, 1024);
    int a = value(g, "a", IR_ACTIVATION, 1024), q = value(g, "q", IR_ACTIVATION, 1024);
    int y = value(g, "y", IR_ACTIVATION, 64);
    add_input(g, x);
    int n0 = node(g, IR_OP_Relu, x, -1, p);
    node(g, IR_OP_Neg, p, -1, a); /* node 1, fused into n3 */
    int n2 = node(g, IR_OP_Sigmoid, x, -1, q);
    int n3 = node(g, IR_OP_Add, a, q, y);
    add_output(g, y);
    int run_at[4] = {n0, n3, n2, n3}; /* node 1 runs at n3 */
    OptMemRequest req = {.run_at = run_at};
    OptMemPlan plan;
    CHECK_EQ_INT(opt_memplan(g, &req, &plan), 0);
    CHECK_EQ_INT(plan.values[p].last, n3);
    OptSchedule s;
    OptSimResult sim;
    opt_schedule_store_all(g, &s);
    CHECK_EQ_INT(opt_schedule_simulate(g, &s, NULL, &req, &sim), 0);
    CHECK_EQ_INT(sim.peak_bytes, 4096 + 4096 + 256); /* p, q and y at n3 (x is last read at n2) */
    CHECK_EQ_INT(sim.peak_bytes, plan.lower_bound);
    opt_schedule_free(&s);
    opt_memplan_free(&plan);
    ir_graph_free(g);
}

int main(void)
{
    RUN(test_group_apart);
    RUN(test_rerun_reads_fused);
    RUN(test_update_splits_group);
    RUN(test_chain_and_view);
    RUN(test_request);
    RUN(test_random_dags);
    RUN(test_passthrough);
    RUN(test_training);
    return CHECK_DONE();
}
