/* The optimizer: passes over the IR that decide how a program runs: the
 * inference lowering and fusions, the cost model, the memory plan, the
 * schedule and its simulator, remat and offload. Each pass takes the graph
 * and returns 0, or -1 with the message in g->err. */
#ifndef LOOM_OPTIMIZER_H
#define LOOM_OPTIMIZER_H

#include "ir.h"

/* ---- inference lowering (lower_infer.c) ----
 * Rewrites what only training needs into its inference form: Dropout becomes
 * an Identity view (its mask, when read, a constant all-true tensor). */
int opt_lower_infer(IrGraph *g);

/* ---- attention fusion (fuse_attention.c) ----
 * MatMul, scale, mask, Softmax, MatMul chains become loom.Attention
 * (ir/train.h); run after folding in both modes. */
int opt_fuse_attention(IrGraph *g);
/* ---- GELU fusion (fuse_gelu.c) ----
 * GELU written out in elementwise ops (its tanh and erf forms, as PyTorch
 * exports them before opset 20) becomes one Gelu node; run with it. */
int opt_fuse_gelu(IrGraph *g);
/* ---- RMSNorm fusion (fuse_rmsnorm.c) ----
 * x * (1 / sqrt(mean(x^2) + eps)) * weight over the last axis, written out
 * in elementwise ops (LLaMA's RMSNorm as PyTorch exports it), becomes one
 * loom.RMSNorm; run with opt_fuse_gelu. */
int opt_fuse_rmsnorm(IrGraph *g);

/* ---- cost model (hwprofile.c, cost.c) ----
 * Seconds per node on a device, which the schedule optimizer adds up. Two
 * sources, used the same way: the analytic roofline over a hardware profile
 * (the default), or the times `loom profile` measured by running the
 * program on this machine (costs.json, docs/cli.md).
 *
 * Hardware profiles: a built-in table ("cpu": this machine, measured by
 * bench/cpu_device.c; GPUs: datasheet figures, dense, without sparsity),
 * or a JSON file overriding fields of a built-in one ("base": "h100-sxm"). */
typedef struct {
    char name[48];           /* "cpu", "a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200" */
    char what[128];          /* one line: the part and where the figures come from */
    /* dense peak FLOP/s of matrix products per dtype (tensor cores where the part has
     * them; f32 is the plain FP32 rate: TF32 tensor cores round the inputs, which loom
     * does not do on its own) */
    double flops_f32, flops_bf16, flops_f16, flops_f64, flops_i8;
    double vec_flops_f32;    /* FLOP/s of everything else (CUDA cores, SIMD) */
    double mem_bw;           /* device memory, bytes/s */
    double link_bw;          /* host<->device, bytes/s each way (cpu: memcpy bandwidth) */
    double launch_s;         /* fixed cost per kernel */
    int64_t mem_bytes;       /* device memory */
    double copy_overlap;     /* 1: host copies run on copy engines beside compute (GPUs);
                              * 0: on the compute thread (cpu: "host" is the same memory) */
} OptDevice;

int opt_device_count(void);
const OptDevice *opt_device_at(int i);
/* A built-in profile by name, or a JSON file (a path ending in .json or
 * holding a '/'): {"base": NAME, and any OptDevice field to override}; "name"
 * defaults to the base's. 0, or -1 with a message naming the file and the
 * field in err. */
int opt_device_lookup(const char *name_or_json_path, OptDevice *out, char *err, size_t nerr);

/* Per node id: seconds of one run; source says where they come from. */
typedef struct {
    int nnodes;
    double *seconds;
    char source[160];
} OptCosts;

/* The bytes node n moves through device memory: its inputs and outputs,
 * except values kept in registers inside a fused group (run_at, as in
 * OptMemRequest; NULL: no fusion); Gather, GatherElements and Slice read
 * at most as much of their data as they write; a low-bit narrowing fused
 * into a loop moves only what it stores (the loop loads its input). Views
 * (OPF_VIEW) move 0. */
double opt_node_bytes(const IrGraph *g, int n, const int *run_at);
/* The roofline: per node max(work / peak, bytes / mem_bw) + launch_s, work
 * the node's FLOPs (ir_node_flops) but at least one per output element, the
 * peak the matrix rate of the node's dtype for MatMul, Gemm, Einsum, Conv,
 * ConvTranspose and loom.ConvGradWeight, else vec_flops_f32. launch_s once per
 * step: a node fused into another's loop (run_at) adds none. Views and nodes
 * with no work and no bytes cost 0. */
int opt_costs_analytic(const IrGraph *g, const OptDevice *d, const int *run_at, OptCosts *c);
/* Measured costs from a file `loom profile` wrote. Nodes are matched by name
 * (the k-th node of a name to the k-th entry of that name) and checked by op,
 * FLOPs and bytes; a recomputation (a non-forward node with its forward
 * node's name, fwd) costs what its forward node costs. A node the file
 * lacks gets its analytic cost times the file's measured/analytic ratio over
 * the nodes it has, counted in source, as are the file's entries that name no
 * node here (a recomputation's, from a file measured under --budget).
 * Refused (-1, g->err naming the file):
 * unreadable or malformed, another device or mode, an op, FLOP or byte count
 * that differs (another model, or other shapes), or more than half of the
 * nodes missing. */
int opt_costs_load(IrGraph *g, const char *costs_json, const OptDevice *d, const int *run_at, OptCosts *c);
void opt_costs_free(OptCosts *c);

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
    OPT_POOL_HOST,     /* host copies of offloaded values (loom.ToHost's outputs) */
} OptPool;

const char *opt_pool_name(OptPool p); /* "none", "arena", "weights", "host" */

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
     * step are kept in registers and get no bytes, but for a low-bit
     * narrowing's (phase IR_LOWBIT), which its loop stores (side_store). */
    const int *run_at;
    /* Per value, may be NULL: a constant only read while compiling (a shape,
     * axes), which gets no bytes. */
    const unsigned char *static_only;
    /* Per node, may be NULL: the input positions whose bytes the node's
     * first output may take, as a mask (bit j: input j; 0: none), when that
     * input's buffer is read for the last time by this node and is at least
     * as large (the kernel supports it). Of several such inputs the first
     * that dies there is taken. A graph input is never written over. */
    const unsigned *inplace_in;
    /* Per node, may be NULL: bytes of its constant weights in another layout,
     * prepared once when the program starts (a conv's Winograd transform);
     * they go in the weights pool after every value. */
    const int64_t *pack_bytes;
    /* Per node, may be NULL: 1 when the node's step is a generated
     * elementwise loop over its output (the last node of its fused group)
     * that can also store a bfloat16 copy of a float32 input it loads
     * whole, so that a low-bit narrowing can join it (opt_narrow_joins). */
    const unsigned char *side_store;
} OptMemRequest;

typedef struct {
    int nvalues, nnodes;
    OptSlice *values;   /* nvalues */
    int64_t *ws_offset; /* nnodes: arena offset of each node's workspace, -1 if none */
    int64_t arena_bytes;
    int64_t lower_bound; /* the most aligned bytes live at any step */
    int64_t weights_bytes; /* packs included */
    int64_t host_bytes;  /* the host pool: each loom.ToHost output its own slice */
    int64_t *pack_offset; /* nnodes: weights-pool offset of each node's prepared weights, -1 if none */
    int64_t pack_bytes;   /* their bytes in all (aligned) */
} OptMemPlan;

/* Plan g, whose nodes must be stored in topological order (as onnx_fold_infer
 * leaves them). Views (ops flagged OPF_VIEW) share their input's bytes.
 * Placement is greedy by size: largest first, each at the lowest aligned
 * offset that overlaps no placed buffer live at the same time. */
int opt_memplan(IrGraph *g, const OptMemRequest *req, OptMemPlan *plan);
void opt_memplan_free(OptMemPlan *plan);

/* ---- the schedule (schedule.c) ----
 * One device's work in order: a list of instructions on the compute stream,
 * each running one node of the graph. Every live node runs exactly once as
 * OPT_RUN; a forward node may also run again as OPT_RERUN (a recomputation,
 * "remat"), which writes a new copy of its outputs. An instruction reads, of
 * each input, the copy its latest run wrote, so a schedule fixes both the
 * order and which copy each read sees. Frees are implicit: a copy dies after
 * its last read (opt_schedule_simulate; the memory planner later places
 * the buffers of the materialized graph). Copies to the host and back are
 * offload's kinds, bfloat16 copies on the device low-bit storage's (below);
 * communication is for later work. */

typedef enum { OPT_RUN = 0, OPT_RERUN, OPT_TO_HOST, OPT_FROM_HOST, OPT_NARROW, OPT_WIDEN } OptInstrKind;

/* Offload (DESIGN.md: Optimizer) adds two kinds that name a value, not a
 * node (node -1):
 *   OPT_TO_HOST v    the host copy of v's latest device copy is complete
 *                    here. The copy starts right after the instruction that
 *                    wrote that device copy (on a copy stream of its own
 *                    where the device has one: OptLink.overlap), so this is
 *                    where compute waits for it, and after it the device
 *                    copy may die.
 *   OPT_FROM_HOST v  a new device copy of v from its host copy starts here;
 *                    reads after it see that copy and wait for it.
 * Low-bit storage (DESIGN.md: Optimizer) adds two more, run on compute:
 *   OPT_NARROW v     a bfloat16 copy of v's latest device copy (a float32
 *                    value) is written here, half its bytes; after it the
 *                    float32 copy may die.
 *   OPT_WIDEN v      a new float32 device copy of v from its bfloat16 copy
 *                    is written here; reads after it see that copy.
 * Each costs a pass over both copies (OptLink.mem_bw) and changes v's bits
 * by bfloat16's rounding (round to nearest even: a relative error of at
 * most 2^-9), so a plan has them only when asked (`--lowbit bf16`).
 * The solvers' schedules have none; opt_offload adds them last. */
typedef struct {
    int node;
    OptInstrKind kind;
    int value; /* OPT_TO_HOST, OPT_FROM_HOST, OPT_NARROW, OPT_WIDEN: the value; else -1 */
} OptInstr;

typedef struct {
    int n, cap;
    OptInstr *ins;
} OptSchedule;

void opt_schedule_push(OptSchedule *s, int node, OptInstrKind kind);
void opt_schedule_push_copy(OptSchedule *s, OptInstrKind kind, int value);
/* The copies of s (OPT_TO_HOST and OPT_FROM_HOST instructions). */
int opt_schedule_copies(const OptSchedule *s);
/* Whether instruction kind k names a value, not a node (the copies, the
 * low-bit conversions). */
int opt_instr_is_move(OptInstrKind k);
/* Per instruction of s: the instruction where its node runs, which for a
 * node of a fused group (req->run_at) is that of the group's last node
 * after it (where the loop reads the node's inputs; a schedule may put
 * other instructions between a group's nodes); else itself. NULL when req
 * has no run_at; the caller frees it. */
int *opt_schedule_group_ends(const IrGraph *g, const OptSchedule *s, const OptMemRequest *req);
/* A value that takes no arena bytes: weights-pool values (parameters,
 * constants, optimizer state), in-place updates, compile-time constants
 * (req->static_only; req may be NULL). */
int opt_persistent(const IrGraph *g, const OptMemRequest *req, int v);
void opt_schedule_free(OptSchedule *s);
OptSchedule opt_schedule_copy(const OptSchedule *s); /* free it with opt_schedule_free */
int opt_schedule_equal(const OptSchedule *a, const OptSchedule *b); /* the same instructions */
/* Every live node once, in the stored order: the store-all schedule (the
 * training graph is stored with its updates placed, ir_place_updates). */
void opt_schedule_store_all(const IrGraph *g, OptSchedule *s);
/* Moves s's update nodes (IR_UPDATE) to where ir_update_order puts them:
 * each right after the last instruction it depends on, recomputations
 * reading its parameter included. Every schedule a solver makes ends
 * with this, so that a gradient dies at its parameter's update. */
void opt_schedule_place_updates(const IrGraph *g, OptSchedule *s);

/* What a schedule costs: the step time over per-node seconds (a rerun costs
 * its node's time), and the most arena bytes live at once, counted the way
 * the memory planner counts them (aligned buffers, views sharing their
 * root, workspaces while their node runs, values fused into their consumer
 * (run_at) kept in registers while only their group reads them). */
typedef struct {
    double step_s;
    int64_t peak_bytes;
    int peak_at;   /* the instruction where the peak is reached */
    int reruns;    /* OPT_RERUN instructions */
    int64_t host_bytes; /* bytes copied to the host (each OPT_TO_HOST's value) */
    double stall_s;     /* compute time spent waiting for copies */
    int64_t lowbit_bytes; /* float32 bytes stored as bfloat16 (each OPT_NARROW's value) */
    double lowbit_s;      /* compute time spent narrowing and widening */
} OptSimResult;

int opt_schedule_simulate(const IrGraph *g, const OptSchedule *s, const double *node_s,
                          const OptMemRequest *req, OptSimResult *r);

/* The link between device and host memory, for schedules with copies:
 * bytes per second each way, and whether copies run on copy engines beside
 * compute (a GPU: one stream each way, ordered with compute by events) or
 * on the compute thread (the cpu target, where they are memcpy). */
typedef struct {
    double bw;
    int overlap;
    /* the device's memory rate, vector rate and launch cost, at which a
     * low-bit conversion (OPT_NARROW, OPT_WIDEN) runs on compute: as the
     * analytic roofline prices a Cast; 0: schedules may not have them */
    double mem_bw, vec_flops, launch_s;
} OptLink;
OptLink opt_device_link(const OptDevice *d);
/* The seconds one conversion of a float32 value of numel elements to
 * bfloat16 or back takes on compute (link->mem_bw > 0): a pass of its own
 * (joined 0), or (joined 1) a narrowing inside a loop that loads the value
 * anyway, which only stores the 2 bytes an element more. */
double opt_lowbit_s(const OptLink *link, int64_t numel, int joined);
/* Low-bit storage at less than a pass each way (DESIGN.md: "widened at
 * use"). A narrowing of v right before the instruction of node `root`
 * joins root's loop when req->side_store says that loop can store the
 * copy, the loop's group reads v, and v (float32) has the dims of root's
 * output: the narrowing is then a store inside the loop (codegen fuses the
 * Cast there, cg_select). */
int opt_narrow_joins(const IrGraph *g, const OptMemRequest *req, int v, int root);
/* Whether input j of `node` may be a bfloat16 copy of a float32 value that
 * the kernel widens as it loads it (bit for bit what a Cast to float32
 * before it gives): loom.BatchNormGrad's x with the given statistics, and
 * the x of loom.ConvGradWeight (dy, x, scale, bias, mean, var). Every
 * target implements these forms. */
int opt_reads_bf16(const IrGraph *g, int node, int j);
/* Whether an OPT_WIDEN of v right before instruction `from` of s is done
 * at use: v is read from there on, and every read up to the next
 * instruction that writes v or moves it is one that opt_reads_bf16 allows.
 * Then no float32 copy is made: the reads see the bfloat16 copy, which
 * stays live until the last of them, and the widening costs nothing
 * (opt_schedule_timeline, opt_schedule_apply). */
int opt_widen_at_use(const IrGraph *g, const OptSchedule *s, int v, int from);

/* opt_schedule_simulate for a schedule that may hold copies (link NULL: it
 * must not). With overlap a copy to the host runs on its stream from the
 * end of its value's writer, one after another in that order; compute
 * waits for it at its OPT_TO_HOST; a copy back runs on the other stream
 * from its OPT_FROM_HOST (once its copy out is done), and the first read
 * waits for it; without, each copy is bytes / bw of compute time at its
 * instruction. start_s, when not NULL (s->n entries), gets the time each
 * instruction starts at, end_s (may be NULL) the time it ends. A host
 * copy's bytes are not device memory; a bfloat16 copy's are (half of its
 * value's), from its OPT_NARROW to its last OPT_WIDEN (to its last read
 * when widened at use), and each conversion costs opt_lowbit_s of compute
 * (joined where opt_narrow_joins, nothing where opt_widen_at_use). */
int opt_schedule_timeline(const IrGraph *g, const OptSchedule *s, const double *node_s, const OptMemRequest *req,
                          const OptLink *link, OptSimResult *r, double *start_s, double *end_s);

/* Rewrite g so that its stored node order is the schedule: each OPT_RERUN
 * becomes a new node (phase IR_RECOMPUTE, fwd = the node it recomputes, the
 * same name and attributes) writing new values "remat/NAME"; every input is
 * rewired to the copy the schedule says it reads. Codegen and the memory
 * planner then need nothing new. Returns 0, or -1 with g->err when the
 * schedule is not valid for g (a node missing or run twice, a read before
 * any copy exists). An OPT_TO_HOST of v becomes a loom.ToHost node (phase
 * IR_OFFLOAD) reading v's latest copy and writing "host/NAME" (host pool),
 * an OPT_FROM_HOST a loom.FromHost node writing a new device copy
 * "offload/NAME" that later reads see (ir/train.h). An OPT_NARROW of v
 * becomes a Cast to bfloat16 (phase IR_LOWBIT, named "narrow/NAME")
 * writing "bf16/NAME", an OPT_WIDEN a Cast back to float32 ("widen/NAME")
 * writing a new device copy "lowbit/NAME" that later reads see, or nothing
 * where it is done at use (opt_widen_at_use): later reads see "bf16/NAME". */
int opt_schedule_apply(IrGraph *g, const OptSchedule *s);

/* ---- rematerialization (remat.c) ----
 * A solver in the style of rotor (Beaumont et al., "Optimal checkpointing for
 * heterogeneous chains"): the forward graph is cut into a chain of stages
 * at the points where the fewest bytes cross (a transformer's blocks, a
 * CNN's layers); a dynamic program over (first stage, last stage, memory)
 * picks, for each stage, whether its first forward run keeps what its
 * backward reads, or keeps only a checkpoint and runs the stage again later,
 * possibly several times. Values that cross more than one cut (U-Net skips)
 * belong to every state they cross. The table is built once per graph and
 * then answers any budget: a solve tries the table's schedules at every
 * memory level, and the refinements of the best of them value by value
 * (opt_refine_descend below), simulates each (opt_schedule_simulate: the
 * real order, the real buffers), and returns the fastest whose peak fits. */

typedef struct OptRemat OptRemat;

/* node_s: seconds per node (the cost model); req: the store-all selection's
 * request (fusion, workspaces), as for opt_memplan. g must be a training
 * graph (ir/train.h) stored in topological order. */
OptRemat *opt_remat_new(const IrGraph *g, const double *node_s, const OptMemRequest *req);
/* The same, and where link's copies run beside compute (link->overlap),
 * priced tables too (remat.c): schedules chosen as if some checkpoints and
 * kept values were on the host while later stages run, for opt_offload to
 * put the copies in; opt_remat_priced gives them. link may be NULL. */
OptRemat *opt_remat_new_link(const IrGraph *g, const double *node_s, const OptMemRequest *req, const OptLink *link);
/* The k-th (from 0), in order of simulated time, of the priced tables'
 * schedules extracted at a memory level of at most `level` bytes (the
 * table's level: what it counts on the device with the copies away, not
 * the simulated peak, which has none); 0, or 1 past the last. */
int opt_remat_priced(const OptRemat *r, int64_t level, int k, OptSchedule *out, OptSimResult *sim);
void opt_remat_free(OptRemat *r);
int opt_remat_stages(const OptRemat *r); /* the most stages one of its tables has */
/* The schedule of least simulated time whose simulated arena peak is at most
 * arena_bytes, among every candidate (refined: 1) or among the tables' own
 * (0: without opt_refine_descend's steps); 0, or 1 when none fits (out
 * untouched). */
int opt_remat_solve(OptRemat *r, int64_t arena_bytes, int refined, OptSchedule *out, OptSimResult *sim);
/* The k-th (from 0) of those schedules in order of simulated time (then
 * peak): opt_remat_solve is k = 0. 0, or 1 past the last. */
int opt_remat_ranked(OptRemat *r, int64_t arena_bytes, int refined, int k, OptSchedule *out, OptSimResult *sim);
/* The least simulated arena peak among the schedules the solver knows. */
int64_t opt_remat_min_peak(const OptRemat *r);
/* The k-th schedule in order of simulated peak (the tables' before the
 * refined among equal peaks, then the faster), and whether it is a
 * refinement's: 0, or 1 past the last. The memory planner may place a
 * schedule above its simulated peak, by more for one than another (more
 * for refined ones, whose short reruns sit between long-lived buffers), so
 * the least feasible budget tries a few in this order. */
int opt_remat_frugal(const OptRemat *r, int k, OptSchedule *out, OptSimResult *sim, int *refined);
/* How many stages (over its tables) took the options of an earlier stage of
 * the same shape instead of solving their own (a transformer's blocks). */
int opt_remat_copied(const OptRemat *r);

/* Per-value refinement (remat_refine.c), a refiner per graph (node_s and
 * req as for opt_remat_new, which uses one on its candidates).
 * opt_refine_descend: from schedule `seed`, at most max_steps times, drop
 * the copy live at the simulated peak whose rerun (just before its next
 * read, from what is at hand there) costs the fewest seconds per byte, when
 * that lowers the peak (or moves it at equal height); each step's schedule
 * and simulation go to emit (which copies what it keeps); returns the steps
 * taken. opt_refine_prune: removes the reruns none of whose outputs is read
 * before it is written again (a stage run again to rebuild what its
 * backward reads need not write its state for a later stage already
 * done). */
typedef struct OptRefine OptRefine;
OptRefine *opt_refine_new(const IrGraph *g, const double *node_s, const OptMemRequest *req);
void opt_refine_free(OptRefine *f);
int opt_refine_descend(OptRefine *f, const OptSchedule *seed, int max_steps,
                       void (*emit)(void *ctx, OptSchedule *s, const OptSimResult *sim), void *ctx);
void opt_refine_prune(OptRefine *f, OptSchedule *s);
/* One step of opt_refine_descend at instruction `at` instead of the
 * simulated peak, whatever the peak does then: the copy live across `at`
 * (not read there) whose rerun costs the fewest seconds per byte dies
 * after its last read before it and is made again before its next read.
 * For a peak the simulator does not see: where a schedule with copies to
 * the host gets stuck (cli/budget.c). 0 with out, 1 when no copy there can
 * be dropped. */
int opt_refine_drop_at(OptRefine *f, const OptSchedule *s, int at, OptSchedule *out);
/* The refiner r uses on its candidates. */
OptRefine *opt_remat_refiner(OptRemat *r);

/* Baselines to compare with: keep everything; checkpoint every block (a
 * block ends where a single value crosses: a residual stream, a block's
 * input), each segment recomputed once before its backward (PyTorch's
 * checkpoint per block); the same at ceil(sqrt(blocks)) even segments of
 * blocks (Chen et al.'s sqrt(n)). Call after the solves: it re-cuts the
 * stages. */
typedef enum { OPT_BASE_STORE_ALL = 0, OPT_BASE_BLOCKS, OPT_BASE_SQRT } OptRematBaseline;
const char *opt_remat_baseline_name(OptRematBaseline b);
void opt_remat_baseline(OptRemat *r, OptRematBaseline b, OptSchedule *s, OptSimResult *sim);

/* ---- offload and low-bit storage (offload.c) ----
 * Adds copies to host memory and back (OPT_TO_HOST, OPT_FROM_HOST; moves
 * OPT_MOVE_HOST) or bfloat16 copies on the device (OPT_NARROW, OPT_WIDEN;
 * moves OPT_MOVE_BF16) to seed, a schedule without any, until its
 * simulated peak is at most room: at the peak, a value's device copy idle
 * across it leaves after its last read before and comes back before its
 * next read. A copy to the host is placed on the link's streams so that
 * compute waits as little as the link allows, and is taken while the link
 * can have it away at the peak; where it cannot, a float32 activation (a
 * forward node's output) gets a bfloat16 copy instead (half the bytes, two
 * conversions of compute) (offload.c says how). At
 * most max_moves values leave. 0 with out and sim
 * (opt_schedule_timeline's), or 1 when the peak cannot reach room that way
 * (out untouched). room <= 0: as low as it goes, the schedule of the
 * lowest peak found (1 only when seed cannot be timed). */
enum { OPT_MOVE_HOST = 1, OPT_MOVE_BF16 = 2 };
int opt_offload(const IrGraph *g, const double *node_s, const OptMemRequest *req, const OptLink *link,
                const OptSchedule *seed, int64_t room, int max_moves, unsigned moves, OptSchedule *out,
                OptSimResult *sim);
/* As opt_offload; where it returns 1, *stuck is the seed instruction of
 * the lowest peak its copies reached, above room (a recomputation there
 * could make room: cli/budget.c repairs seeds so), the same for every
 * room they cannot reach (the greedy is the same until it stops); else
 * -1. */
int opt_offload_stuck(const IrGraph *g, const double *node_s, const OptMemRequest *req, const OptLink *link,
                      const OptSchedule *seed, int64_t room, int max_moves, unsigned moves, OptSchedule *out,
                      OptSimResult *sim, int *stuck);

/* ---- the exact baseline (checkmate.c) ----
 * Checkmate's whole-graph integer program (Jain et al., MLSys 2020) over the
 * stored node order, solved with lp_solve: every forward node may run again
 * in any later stage, any value may be kept across any stage, and memory is
 * counted the way the simulator counts it (never less). out is the optimal
 * schedule (its first run of a node OPT_RUN, later ones OPT_RERUN), sim its
 * simulation (peak <= arena_budget). Returns 0 (optimal), 1 (no schedule
 * fits), 2 (time limit hit: the best schedule found, or out->n == 0 when
 * none was), -1 (the program is too large to build, or lp_solve failed);
 * why says which, with the program's size, and for 2 the gap to the LP
 * bound. bound_us > 0: only schedules whose reruns cost less than bound_us
 * microseconds (the objective's units) are looked for, which prunes the
 * search; 1 then means that none exists (a schedule known to cost
 * bound_us plus a tolerance is then within that tolerance of the optimum). */
int opt_remat_ilp(const IrGraph *g, const double *node_s, const OptMemRequest *req, int64_t arena_budget,
                  double time_limit_s, double bound_us, OptSchedule *out, OptSimResult *sim, char *why,
                  size_t nwhy);
/* A schedule's objective in opt_remat_ilp's units: microseconds of its reruns. */
double opt_remat_ilp_cost(const OptSchedule *s, const double *node_s);

#endif
