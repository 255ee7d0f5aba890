/* The training driver of a generated program (`DIR/train`): everything a
 * training run does around the model's step, in one place that every
 * program shares. The generated main.c describes its model with an
 * rt_train_model (the tables of its data inputs, weights, persistent state
 * and trained parameters, with their offsets in the arena and the weights
 * blob, and the two functions model.c defines) and calls rt_train_main.
 *
 * A run: parse the command line (docs/cli.md, `train --help`); load every
 * --data .npy (first axis = samples) and check its per-sample shape and
 * dtype; load weights.safetensors, or a --resume checkpoint; then per step
 * copy the next batch into the arena (samples in order, wrapping around, or
 * in a per-epoch permutation with --shuffle), set the learning rate of the
 * schedule and the step number, run forward+backward, check the loss, run
 * the update; log, print and save as asked. A non-finite loss stops the run
 * after naming the first non-finite tensor: the parameters, the batch, then
 * the step is run again with a probe after every kernel.
 *
 * Determinism: the data order is a function of (seed, step) and the kernels
 * give the same bits at any thread count, so a run resumed from a
 * checkpoint written at step k continues bit for bit as the run that
 * wrote it. Depends on rt.h only. */
#ifndef LOOM_RT_TRAIN_H
#define LOOM_RT_TRAIN_H

#include <stdint.h>

#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor at a fixed place in the arena or the weights blob. */
typedef struct {
    const char *name;
    rt_dtype dtype;
    int rank;
    int64_t dims[RT_MAX_RANK];
    int64_t offset; /* bytes from the start of its pool */
} rt_train_tensor;

/* A float32 value a node writes during forward+backward, checked for
 * non-finite numbers when a loss is not finite. */
typedef struct {
    const char *name, *node, *op;
    int step;       /* the model step (node index) after which it is complete */
    int rank;
    int64_t dims[RT_MAX_RANK];
    int64_t offset; /* in the arena */
} rt_train_check;

enum { RT_SCHEDULE_CONSTANT, RT_SCHEDULE_COSINE };

typedef struct {
    const char *model;       /* the ONNX file it was compiled from (for --help) */
    const char *fingerprint; /* names, dtypes and shapes of inputs and state: checkpoints carry it */
    const char *loss;        /* how the loss is made, for --help */
    const char *optimizer;   /* the update and its hyperparameters, for --help */
    int64_t arena_bytes, weights_bytes;
    int64_t host_bytes;      /* offload's host pool (0: none), allocated into *host */
    char **host;
    int64_t batch;           /* samples per step: the first dim of every data input */
    const rt_train_tensor *inputs; /* data inputs (arena), each [batch, ...] */
    int ninputs;
    const rt_train_tensor *weights; /* parameters and constants of weights.safetensors */
    int nweights;
    const rt_train_tensor *state;   /* what a checkpoint holds: every parameter, the optimizer state */
    int nstate;
    const rt_train_tensor *params;  /* trained parameters (weights blob) */
    const int64_t *grad_offset;     /* their gradients' arena offsets */
    int nparams;
    const rt_train_check *checks;   /* in step order */
    int nchecks;
    int64_t loss_offset;            /* the float32 loss in the arena */
    int64_t lr_offset;              /* opt/lr, float32 in the weights blob */
    int64_t step_offset;            /* opt/step, int64 in the weights blob; -1 if none */
    float lr;                       /* compiled defaults, overridable at run time */
    int schedule;
    int64_t warmup;
    /* model.c: one training step on the batch in the arena: forward, loss,
     * backward, and each parameter's update as soon as backward is done with
     * it (none when the loss is not finite). probe, when not NULL, is called
     * after every step that writes float32 values; grad, when not NULL, just
     * before the update of params[param], whose gradient is then in the arena
     * at grad_offset[param]. Either stops the pass by returning non-zero (the
     * pass then returns 1). 0, or -1 with rt_error(). */
    int (*step)(char *arena, char *weights, int (*probe)(int step), int (*grad)(int param));
    /* where the arena and the weights blob live (rt.h); NULL: rt_device_host */
    const rt_device *device;
} rt_train_model;

/* The whole `train` command; returns the exit code (0, 1 bad input or a
 * failed run, 2 bad command line). */
int rt_train_main(const rt_train_model *m, int argc, char **argv);

/* The learning rate of step `step` (from 1): linear warm-up from base/warmup
 * over the first `warmup` steps, then constant or cosine decay to 0 at step
 * `total`. Computed in double. */
double rt_train_lr(double base, int schedule, int64_t warmup, int64_t total, int64_t step);
/* The order of n samples in epoch `epoch` under seed: a Fisher-Yates shuffle
 * driven by splitmix64 of (seed, epoch). */
void rt_train_permutation(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch);

#ifdef __cplusplus
}
#endif

#endif
