/* Dropout in training mode (float32): each element is kept with probability
 * 1 - ratio and scaled by 1 / (1 - ratio), or zeroed; the mask says which.
 * The draw of element i is a hash of (key, salt, i) — a counter-based
 * generator, so the masks depend on nothing but the key (a function of the
 * program's --seed and the step: rt_train_rng_key), the node (salt) and the
 * position: the same on any thread count, on a re-run of a step, and after a
 * resume. */
#include "kernels.h"

/* splitmix64's finalizer: a bijective mix of 64 bits. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    float *y;
    uint8_t *mask;
    const float *x;
    float ratio, scale;
    uint64_t base;
} Dropout;

static void dropout_elems(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Dropout *a = arg;
    float *y = a->y, ratio = a->ratio, scale = a->scale;
    uint8_t *mask = a->mask;
    const float *x = a->x;
    uint64_t base = a->base;
    for (int64_t i = lo; i < hi; i++) {
        // 24 random bits as a float in [0, 1): exact, so u >= ratio is the same everywhere
        float u = (float)(mix64(base + (uint64_t)i) >> 40) * (1.0f / 16777216.0f);
        int keep = u >= ratio;
        y[i] = keep ? x[i] * scale : 0.0f;
        if (mask) mask[i] = (uint8_t)keep;
    }
}

void k_dropout_f32(float *y, uint8_t *mask, const float *x, int64_t n, float ratio, uint64_t key,
                   uint64_t salt)
{
    Dropout a = {y, mask, x, ratio, ratio < 1.0f ? 1.0f / (1.0f - ratio) : 0.0f,
                 mix64(key ^ mix64(salt + 0x9e3779b97f4a7c15ull))};
    k_par_for(n, n, dropout_elems, &a);
}
