/* Code generation: from a folded, lowered graph and its memory plan to a
 * standalone program folder (model.c, model.h, main.c, elemwise.h, Makefile,
 * the kernel and runtime sources, weights.safetensors).
 *
 * Two calls, with the memory planner between them:
 *   cg_select  checks that the target can emit every node (refusing the
 *              first it cannot, with the usual "FILE: node ..." message),
 *              groups elementwise chains into fused loops and asks each
 *              node's workspace; its result is the planner's request;
 *   cg_emit    writes the folder. */
#ifndef LOOM_CODEGEN_H
#define LOOM_CODEGEN_H

#include "ir.h"
#include "optimizer.h"

typedef struct CgTarget CgTarget;
extern const CgTarget cg_target_cpu;
extern const CgTarget cg_target_cuda; /* cg_cuda.c */

typedef struct {
    int *run_at;          /* per node: the last node of its fused group (itself if alone) */
    int64_t *ws_bytes;    /* per node: workspace bytes */
    unsigned char *static_only; /* per value: read only while compiling (a shape, axes) */
    int ngroups;          /* fused groups of two or more nodes */
    int nfused;           /* nodes inside those groups */
    unsigned *inplace_in; /* per node: the inputs whose bytes its output may take, a mask (OptMemRequest) */
    int64_t *pack_bytes;  /* per node: bytes of its weights prepared at start (OptMemRequest), or 0 */
    unsigned char *side_store; /* per node: its loop can store a narrowing's copy too (OptMemRequest) */
} CgSelect;

int cg_select(IrGraph *g, const CgTarget *t, CgSelect *sel);
void cg_select_free(CgSelect *sel);
/* The request opt_memplan takes for this selection. */
OptMemRequest cg_mem_request(const CgSelect *sel);

/* What a training program needs beyond its graph (ir/train.h): the compiled
 * schedule, which the program may override, and how the loss and the update
 * were made, for its --help. */
typedef struct {
    const char *loss;      /* "cross-entropy of 'logits' against 'target_y' (mean)" */
    const char *optimizer; /* "adamw lr 0.001 betas 0.9 0.999 ..." */
    float lr;
    int schedule;          /* 0 constant, 1 cosine (RT_SCHEDULE_*) */
    int64_t warmup;
} CgTrain;

/* Write the program for g into dir (created if absent): an inference
 * program (`infer`) when train is NULL, else a training program (`train`)
 * for the training graph g. */
int cg_emit(IrGraph *g, const CgTarget *t, const CgSelect *sel, const OptMemPlan *plan,
            const CgTrain *train, const char *dir);

#endif
