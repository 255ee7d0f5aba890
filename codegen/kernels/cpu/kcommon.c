/* What the cpu kernels share: the run-time error message, which vector
 * instructions the register tiles use, and the bfloat16 array conversions of the kernels that compute a bfloat16 op in float32.
 *
 * A kernel that meets
 * bad data (an index out of range) records a message with k_fail and returns -1;
 * the generated program reads it back with k_error and decides what to do. The
 * buffer is thread-local so that kernels run from different threads (or the
 * thread pool's workers) never garble each other's message. This file
 * deliberately does not use libloomrt: the kernels are copied into generated
 * programs and stand alone. */
#include "kernels.h"
#include "ktile.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define K_ERR_LEN 512

static _Thread_local char k_err_buf[K_ERR_LEN];

const char *k_error(void) { return k_err_buf; }

int k_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k_err_buf, sizeof k_err_buf, fmt, ap);
    va_end(ap);
    return -1;
}

#if K_TILED
static atomic_int tiles512 = -1; // -1: not decided yet (two threads deciding at once agree)

int k_tiles_avx512(void)
{
    int v = atomic_load_explicit(&tiles512, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("LOOM_CPU_AVX512");
        v = __builtin_cpu_supports("avx512f") && !(e && strcmp(e, "0") == 0);
        atomic_store_explicit(&tiles512, v, memory_order_relaxed);
    }
    return v;
}

int k_tiles_set_avx512(int on)
{
    int v = on < 0 ? -1 : on && __builtin_cpu_supports("avx512f");
    atomic_store_explicit(&tiles512, v, memory_order_relaxed);
    return v > 0;
}
#else
int k_tiles_set_avx512(int on)
{
    (void)on;
    return 0;
}
#endif

/* ---- bfloat16 <-> float32 arrays ---- */

typedef struct {
    void *y;
    const void *x;
} Conv;

static void bf16_to_f32_chunk(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Conv *p = arg;
    const uint16_t *x = p->x;
    float *y = p->y;
    for (int64_t i = lo; i < hi; i++) { // bf16 is float32's upper half: widening is exact
        uint32_t u = (uint32_t)x[i] << 16;
        memcpy(&y[i], &u, sizeof u);
    }
}

/* Round to nearest even, NaN kept NaN (quiet, with its sign): the rounding
 * of lm_f32_to_bf16 in the fused loops' header (cg_elemwise.c) and of the
 * constant folder (ir/eval.c), so every bfloat16 a program stores agrees. */
uint16_t k_bf16_rne(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)(u >> 16 & 0x8000) | 0x7fc0;
    uint32_t h = u >> 16, rem = u & 0xffff;
    return (uint16_t)(h + (rem > 0x8000 || (rem == 0x8000 && (h & 1))));
}

static void f32_to_bf16_chunk(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Conv *p = arg;
    const float *x = p->x;
    uint16_t *y = p->y;
    for (int64_t i = lo; i < hi; i++) y[i] = k_bf16_rne(x[i]);
}

static void round_chunk(void *arg, int64_t lo, int64_t hi, int tid)
{
    float *x = ((const Conv *)arg)->y;
    for (int64_t i = lo; i < hi; i++) {
        uint32_t u = (uint32_t)k_bf16_rne(x[i]) << 16;
        memcpy(&x[i], &u, sizeof u);
    }
}

void k_bf16_to_f32(float *y, const uint16_t *x, int64_t n)
{
    Conv p = {y, x};
    k_par_for(n, n, bf16_to_f32_chunk, &p);
}

void k_f32_to_bf16(uint16_t *y, const float *x, int64_t n)
{
    Conv p = {y, x};
    k_par_for(n, n, f32_to_bf16_chunk, &p);
}

void k_bf16_round(float *x, int64_t n)
{
    Conv p = {x, x};
    k_par_for(n, n, round_chunk, &p);
}
