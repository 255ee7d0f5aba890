/* The optimizer: passes over the IR that decide how a program runs (today the
 * inference lowering and the memory plan; later the cost model, remat, offload
 * and the schedule). Each pass takes the graph and returns 0, or -1 with the
 * message in g->err. */
#ifndef LOOM_OPTIMIZER_H
#define LOOM_OPTIMIZER_H

#include "ir.h"

/* ---- inference lowering (lower_infer.c) ----
 * Rewrites what only training needs into its inference form: Dropout becomes
 * an Identity view (its mask, when read, a constant all-true tensor). */
int opt_lower_infer(IrGraph *g);

/* ---- memory plan (memplan.c) ----
 * Every value a node computes, and every graph input, gets a slice of one
 * arena; parameters and constants get a slice of the weights blob. In a
 * training graph (ir/train.h) the weights blob is the persistent memory: the
 * parameters, the constants, then the optimizer state (IR_OPT_STATE: "m/P",
 * "v/P", "momentum/P", "opt/lr", "opt/step"), none of which shares bytes with
 * anything else; an update's output "next/X" (IrValue.alias = X) is a slice
 * aliasing X (OptSlice.alias), so the update writes X in place. Activations
 * and gradients ("grad/P") live in the arena, reused over time. */

#define OPT_ALIGN 64 /* every slice starts on this many bytes */

typedef enum {
    OPT_POOL_NONE = 0, /* no bytes: a fused intermediate kept in registers, a static constant */
    OPT_POOL_ARENA,    /* activations and graph inputs, reused over time */
    OPT_POOL_WEIGHTS,  /* parameters, constants and optimizer state: persistent */
} OptPool;

const char *opt_pool_name(OptPool p); /* "none", "arena", "weights" */

typedef struct {
    OptPool pool;
    int64_t offset; /* bytes from the start of the pool; -1 in OPT_POOL_NONE */
    int64_t size;   /* the value's bytes (unaligned) */
    int alias;      /* the value whose bytes a view or an in-place update shares (the
                     * root of a chain), or -1 */
    int first, last; /* live steps (node indices), inclusive; arena buffers only */
} OptSlice;

/* What codegen asks of the planner besides the graph. Every array may be
 * NULL: no workspaces, every node at its own step, every constant read. */
typedef struct {
    const int64_t *ws_bytes; /* per node: scratch bytes it needs while it runs */
    /* Per node i: the node whose step it runs in, i itself or the last node of the
     * fused group it belongs to. Outputs of a node that runs in another node's
     * step are kept in registers and get no bytes. */
    const int *run_at;
    /* Per value, may be NULL: a constant only read while compiling (a shape,
     * axes), which gets no bytes. */
    const unsigned char *static_only;
} OptMemRequest;

typedef struct {
    int nvalues, nnodes;
    OptSlice *values;   /* nvalues */
    int64_t *ws_offset; /* nnodes: arena offset of each node's workspace, -1 if none */
    int64_t arena_bytes;
    int64_t lower_bound; /* the most aligned bytes live at any step */
    int64_t weights_bytes;
} OptMemPlan;

/* Plan g, whose nodes must be stored in topological order (as onnx_fold_infer
 * leaves them). Views (ops flagged OPF_VIEW) share their input's bytes.
 * Placement is greedy by size: largest first, each at the lowest aligned
 * offset that overlaps no placed buffer live at the same time. */
int opt_memplan(IrGraph *g, const OptMemRequest *req, OptMemPlan *plan);
void opt_memplan_free(OptMemPlan *plan);

#endif
