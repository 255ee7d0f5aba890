/* What the schedule optimizer's unit tests share: a training graph selected
 * for the cpu target (its fusion, workspaces and in-place outputs, as
 * cg_mem_request gives them to the planner) and costed by the cpu profile's
 * roofline, as `loom plan` does with its defaults. Include after check.h. */
#ifndef LOOM_TRAIN_FIXTURE_H
#define LOOM_TRAIN_FIXTURE_H

#include <string.h>

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

/* f over training graph g (taken): 0, or -1 (a failed check) when g cannot
 * be selected. */
static inline int fixture_of(Fixture *f, IrGraph *g)
{
    memset(f, 0, sizeof *f);
    f->g = g;
    if (cg_select(g, &cg_target_cpu, &f->sel)) {
        fprintf(stderr, "  %s: %s\n", g->path ? g->path : "graph", g->err);
        check_failed_ = 1;
        ir_graph_free(g);
        return -1;
    }
    f->req = cg_mem_request(&f->sel);
    OptDevice d;
    char err[256];
    IR_ASSERT(opt_device_lookup("cpu", &d, err, sizeof err) == 0);
    IR_ASSERT(opt_costs_analytic(g, &d, f->sel.run_at, &f->costs) == 0);
    return 0;
}

/* A zoo model (models/NAME/model.onnx) trained with cross-entropy against
 * target_y and AdamW; no_fold_bn_relu as --no-fold-bn-relu. */
static inline int fixture_zoo_as(Fixture *f, const char *path, int no_fold_bn_relu)
{
    IrGraph *g = ir_graph_new(path);
    IrTrainOptions o;
    ir_train_defaults(&o);
    o.loss_kind = IR_LOSS_CE;
    o.target = "target_y";
    o.no_fold_bn_relu = no_fold_bn_relu;
    if (onnx_load(g, NULL, 0) || onnx_fold_infer(g) || ir_build_training(g, &o)) {
        fprintf(stderr, "  %s: %s\n", path, g->err);
        check_failed_ = 1;
        ir_graph_free(g);
        memset(f, 0, sizeof *f);
        return -1;
    }
    return fixture_of(f, g);
}

static inline int fixture_zoo(Fixture *f, const char *path) { return fixture_zoo_as(f, path, 0); }

static inline void fixture_free(Fixture *f)
{
    opt_costs_free(&f->costs);
    cg_select_free(&f->sel);
    ir_graph_free(f->g);
}

#endif
