/* libloomrt: the runtime library that every program loom generates links.
 *
 * This header is its whole public interface: error reporting, dtypes, host tensors,
 * .npy and .safetensors I/O, atomic file writes, and timing. It depends on nothing
 * else in loom (not ir/, frontend/ or cli/), only on C11 and POSIX.
 *
 * Errors follow llm.c: a function that can fail returns 0 on success and -1 on
 * failure, after writing a message into a thread-local buffer that rt_error() returns.
 * The message names the file, says what is wrong and what was expected. Library code
 * never exits; a generated program wraps calls in RT_CHECK, which prints file:line,
 * the call and the message, and exits 1. */
#ifndef LOOM_RT_H
#define LOOM_RT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Files are little-endian and the runtime moves tensor bytes with memcpy. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libloomrt supports little-endian hosts only"
#endif

#ifdef __cplusplus /* the cuda target's model.cu and kernels are C++ */
extern "C" {
#endif

/* ---- errors ---------------------------------------------------------------------- */

#define RT_ERR_LEN 512

/* The message of the last failure on this thread ("" if none). */
const char *rt_error(void);
/* Formats a message into the error buffer and returns -1, so that library code can
 * write `return rt_fail("%s: ...", path);`. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
int rt_fail(const char *fmt, ...);

/* 0 when the machine can give the program its arena and weights blob
 * (the kernel's available memory, and what an address-space limit leaves);
 * else -1 with a message naming the bytes needed and available. */
int rt_memory_check(int64_t arena_bytes, int64_t weights_bytes);

/* ---- devices: where a program's arena and weights blob live -----------------------
 * The drivers (the generated `infer` main.c, rt_train_main) reach the arena and the
 * weights blob only through these hooks, so that one driver serves every target:
 * rt_device_host (host memory, memcpy; the cpu target) and rt_device_cuda
 * (rt_cuda.h: device memory, copies ordered with the compute stream). */
typedef struct {
    const char *name;
    int (*init)(void);
    /* 0 when the arena and the weights blob fit, else -1 naming the bytes needed
     * and available and what to do */
    int (*memory_check)(int64_t arena_bytes, int64_t weights_bytes);
    /* zeroed memory of bytes (rounded up to 64), or NULL with rt_error() */
    char *(*alloc)(int64_t bytes);
    void (*release)(char *p);
    /* dst (the device's) <- n bytes of host memory src, which may be reused when
     * upload returns; host dst <- device src, complete (with every step queued
     * before it) when download returns */
    int (*upload)(char *dst, const void *src, size_t n);
    int (*download)(void *dst, const char *src, size_t n);
    int (*sync)(void); /* returns when the device has done all it was given */
    /* zeroed host memory the device copies to and from at the link's full rate
     * (pinned on a GPU): offload's host pool; NULL with rt_error() */
    char *(*alloc_host)(int64_t bytes);
    void (*release_host)(char *p);
} rt_device;

extern const rt_device rt_device_host;

/* For generated programs: a call that returns non-zero stops the program. */
#define RT_CHECK(call)                                                                \
    do {                                                                              \
        if ((call) != 0) {                                                            \
            fprintf(stderr, "%s:%d: %s failed:\n  %s\n", __FILE__, __LINE__, #call,    \
                    rt_error());                                                      \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

/* ---- dtypes ---------------------------------------------------------------------- */

/* Numbered as ONNX TensorProto.DataType, so an ONNX dtype converts by a cast. */
typedef enum {
    RT_UNDEFINED = 0,
    RT_F32 = 1,
    RT_U8 = 2,
    RT_I8 = 3,
    RT_U16 = 4,
    RT_I16 = 5,
    RT_I32 = 6,
    RT_I64 = 7,
    RT_BOOL = 9,
    RT_F16 = 10,
    RT_F64 = 11,
    RT_U32 = 12,
    RT_U64 = 13,
    RT_BF16 = 16,
    RT_F8E4M3FN = 17,
    RT_F8E5M2 = 19,
} rt_dtype;

/* Bytes per element; 0 for RT_UNDEFINED and numbers that are not a supported dtype. */
size_t rt_dtype_size(rt_dtype t);
/* A lower-case name ("float32", "bfloat16", ...); "invalid" for an unknown number. */
const char *rt_dtype_name(rt_dtype t);

/* ---- host tensors ---------------------------------------------------------------- */

#define RT_MAX_RANK 8

/* A dense C-order array in host memory. data is owned (malloc) and nbytes equals
 * numel * rt_dtype_size(dtype); rank 0 is a scalar with one element. */
typedef struct {
    rt_dtype dtype;
    int rank;
    int64_t dims[RT_MAX_RANK];
    void *data;
    size_t nbytes;
} rt_tensor;

/* Bytes that an array of this dtype and shape takes (dims must be >= 0); UINT64_MAX
 * when that overflows, which no real array reaches, so a hostile shape cannot wrap
 * around to a small size. */
uint64_t rt_nbytes(rt_dtype dtype, int rank, const int64_t *dims);
/* Number of elements (1 for a scalar, 0 when any dim is 0). */
int64_t rt_tensor_numel(const rt_tensor *t);
/* Fills *t with a zeroed tensor of this dtype and shape. Fails on a bad dtype, a rank
 * over RT_MAX_RANK, a negative dim, or a size that does not fit in memory. */
int rt_tensor_alloc(rt_tensor *t, rt_dtype dtype, int rank, const int64_t *dims);
/* Frees data and zeroes *t; safe on a zeroed or already freed tensor. */
void rt_tensor_free(rt_tensor *t);
/* Writes "[2,3,4]" into buf (always terminated, truncated if small); returns buf. */
char *rt_shape_str(char *buf, size_t len, int rank, const int64_t *dims);

/* ---- files ----------------------------------------------------------------------- */

/* Opens a regular file for binary reading and returns its size in bytes. */
int rt_file_open(const char *path, FILE **f, uint64_t *size);
/* Reads exactly len bytes; a short read is reported as the file being truncated
 * inside `what` ("header", "data of tensor 'w'", ...). */
int rt_file_read(FILE *f, void *buf, size_t len, const char *path, const char *what);

/* A file written under a temporary name "PATH.tmp.<pid>" and renamed over PATH only
 * when complete, so that a crash never leaves PATH half-written. */
typedef struct {
    FILE *f;
    char *path;
    char *tmp;
} rt_atomic_file;

int rt_atomic_open(rt_atomic_file *a, const char *path);
int rt_atomic_write(rt_atomic_file *a, const void *buf, size_t len);
/* Flushes, fsyncs, closes and renames over the target; on any failure removes the
 * temporary file. Either way *a is released. */
int rt_atomic_commit(rt_atomic_file *a);
/* Gives up: closes and removes the temporary file. Safe on a released *a. */
void rt_atomic_abort(rt_atomic_file *a);

/* ---- .npy ------------------------------------------------------------------------ */

/* Reads a NumPy .npy file (format 1.0, 2.0 or 3.0) holding a little-endian C-order
 * array of f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 or b1 into *out (which the caller frees
 * with rt_tensor_free). On failure *out is zeroed and the message names the file. */
int rt_npy_read(const char *path, rt_tensor *out);
/* Writes t as .npy, byte-identical to numpy.save: format 1.0 when the header fits,
 * else 2.0. The write is atomic. bfloat16 and float8 have no numpy dtype: refused. */
int rt_npy_write(const char *path, const rt_tensor *t);

/* ---- .safetensors ---------------------------------------------------------------- */

/* One tensor of a safetensors file. For reading, data points into the loaded file and
 * name into its parsed header; both live until rt_st_close. For writing, the caller's. */
typedef struct {
    const char *name;
    rt_dtype dtype;
    int rank;
    int64_t dims[RT_MAX_RANK];
    const void *data;
    size_t nbytes;
} rt_st_tensor;

/* A "__metadata__" entry: both strings. */
typedef struct {
    const char *key;
    const char *value;
} rt_st_meta;

/* A loaded file: the header parsed and checked, the data section in memory. */
typedef struct rt_st_file rt_st_file;

/* Loads and validates the whole file: the header is strict JSON, every tensor's
 * offsets lie in the data section, match its shape and dtype, and the tensors tile
 * the data section exactly (no overlap, no gap, nothing after). */
int rt_st_open(const char *path, rt_st_file **out);
void rt_st_close(rt_st_file *f);
/* Tensors in the order of their data offsets. */
int rt_st_count(const rt_st_file *f);
const rt_st_tensor *rt_st_at(const rt_st_file *f, int i);
/* NULL when absent (and no message is set). */
const rt_st_tensor *rt_st_find(const rt_st_file *f, const char *name);
/* Copies tensor `name` into dst after checking it exists with exactly this dtype and
 * shape; the message names the file, the tensor and the mismatch. */
int rt_st_load(const rt_st_file *f, const char *name, rt_dtype dtype, int rank,
               const int64_t *dims, void *dst);
/* rt_st_load for a program's weight: where the program holds a bfloat16
 * copy of a float32 parameter (compiled with --precision bf16), a float32
 * tensor of that name and shape is also taken, rounded to the nearest
 * bfloat16 (ties to even, NaN kept NaN), as the compiler rounded it. */
int rt_st_load_weight(const rt_st_file *f, const char *name, rt_dtype dtype, int rank,
                      const int64_t *dims, void *dst);
int rt_st_meta_count(const rt_st_file *f);
const rt_st_meta *rt_st_meta_at(const rt_st_file *f, int i);
/* NULL when absent. */
const char *rt_st_meta_find(const rt_st_file *f, const char *key);
/* Writes tensors (and metadata, if nmeta > 0) as a safetensors file, atomically.
 * Layout is deterministic: tensors sorted by name (bytewise), their data in that
 * order, no gaps; the header is compact JSON with "__metadata__" first, padded with
 * spaces to a multiple of 8 bytes. Names must be unique and non-empty, and each
 * tensor's nbytes must match its shape and dtype. */
int rt_st_write(const char *path, const rt_st_tensor *tensors, int n, const rt_st_meta *meta,
                int nmeta);

/* ---- time and memory ------------------------------------------------------------- */

/* Seconds on a monotonic clock (only differences mean anything). */
double rt_now(void);
/* The most resident memory this process has used so far, in bytes (0 if unknown). */
size_t rt_peak_rss(void);

/* ---- random draws of a training step (rt_train.c) ---------------------------------
 * The key that Dropout masks are drawn from (k_dropout_f32): the train driver
 * sets it before each step from --seed and the step number, so a re-run or
 * resumed step draws the same masks. 0 in programs that do not train. */
extern uint64_t rt_train_rng_key;

/* ---- threads (rt_threads.c) -------------------------------------------------------
 * The programs' thread count, checked before anything runs: 0 when
 * OMP_NUM_THREADS is unset or a whole number from 1 to 255 (the kernels'
 * pool, kernels/kpar.c, reads it), else -1 with a message saying what to give. */
int rt_threads_check(void);

/* ---- step profile (rt_prof.c) ------------------------------------------------------
 * A program built with -DLOOM_PROFILE (`make PROFILE=1`) adds the time of each
 * step of its model (one kernel call or fused loop) with rt_prof_add; the
 * driver prints the table with rt_prof_report. `step` numbers the steps from 0;
 * name and op are string literals. */
void rt_prof_add(int step, const char *name, const char *op, double seconds);
void rt_prof_reset(void); /* forgets every run so far (a warm-up) */
/* Ends one timed run of `seconds` (the whole step or forward pass): each step's
 * time in it is kept apart for rt_prof_write. */
void rt_prof_run_end(double seconds);
/* Writes the kept runs as JSON for `loom profile`: {"runs": R, "run_s": [R
 * seconds], "steps": [{"op": "Erf+Add", "seconds": [R seconds]}, ...]}, step k
 * at index k. -1 (rt_error) when nothing was timed: not a PROFILE=1 build. */
int rt_prof_write(const char *path);
/* One line per step, slowest first: ms per run, share of the total, op and
 * node name; `runs` is the number of runs the sums cover. */
void rt_prof_report(FILE *f, int runs);

#ifdef __cplusplus
}
#endif

#endif
