/* The cpu data movement kernels (kmove.c) against naive references written
 * plainly here: random shapes of rank 0 to 6 with size-1 and zero-size dims,
 * permuted, stepped, negative and broadcast (0) strides, odd element sizes,
 * every Pad mode with negative pads, Trilu both ways. Copies must be exact. */
#include "check.h"
#include "kernels.h"

#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}
static int64_t rnd_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }
static void rnd_bytes(void *p, size_t n) {
    for (size_t i = 0; i < n; i++) ((unsigned char *)p)[i] = (unsigned char)rnd();
}

static const int esizes[] = {1, 2, 4, 8, 3, 16};

/* Reference: one element at a time, the index walked by an odometer. */
static void ref_copy(char *dst, const int64_t *ds, const char *src, const int64_t *ss, const int64_t *dims,
                     int rank, int esize) {
    int64_t n = 1, idx[K_MAX_RANK] = {0};
    for (int k = 0; k < rank; k++) n *= dims[k];
    for (int64_t i = 0; i < n; i++) {
        int64_t d = 0, s = 0;
        for (int k = 0; k < rank; k++) d += idx[k] * ds[k], s += idx[k] * ss[k];
        memcpy(dst + d * esize, src + s * esize, (size_t)esize);
        for (int k = rank - 1; k >= 0; k--) {
            if (++idx[k] < dims[k]) break;
            idx[k] = 0;
        }
    }
}

/* One random copy: src strides from a permuted, stepped layout with some
 * reversed and broadcast dims; dst dense or padded (a Concat piece). */
static int copy_case(int rank, const int64_t *dims, int esize, int big) {
    int64_t ss[K_MAX_RANK], ds[K_MAX_RANK], perm[K_MAX_RANK];
    for (int k = 0; k < rank; k++) perm[k] = k;
    for (int k = rank - 1; k > 0; k--) {
        int j = (int)rnd_in(0, k);
        int64_t t = perm[k]; perm[k] = perm[j]; perm[j] = t;
    }
    // src: dense over dims in perm order, each dim stepped by 1 or 2
    int64_t acc = 1, smin = 0, smax = 0;
    for (int q = rank - 1; q >= 0; q--) {
        int k = (int)perm[q];
        int64_t step = big ? 1 : rnd_in(1, 2);
        ss[k] = acc * step;
        acc *= dims[k] * step + (big ? 0 : rnd_in(0, 1));
        if (!big && rnd() % 5 == 0) ss[k] = -ss[k];
        if (!big && rnd() % 6 == 0) ss[k] = 0;
    }
    for (int k = 0; k < rank; k++) {
        if (dims[k] == 0) continue;
        if (ss[k] < 0) smin += ss[k] * (dims[k] - 1);
        else smax += ss[k] * (dims[k] - 1);
    }
    // dst: dense, maybe with a wider last or random dim (writing one piece of a concat)
    int64_t dacc = 1, dmax = 0;
    for (int k = rank - 1; k >= 0; k--) {
        ds[k] = dacc;
        dacc *= dims[k] + (!big && rnd() % 3 == 0 ? rnd_in(1, 3) : 0);
    }
    for (int k = 0; k < rank; k++)
        if (dims[k] > 0) dmax += ds[k] * (dims[k] - 1);
    size_t sbytes = (size_t)(smax - smin + 1) * esize, dbytes = (size_t)(dmax + 1) * esize;
    char *src = malloc(sbytes), *d1 = malloc(dbytes), *d2 = malloc(dbytes);
    rnd_bytes(src, sbytes);
    rnd_bytes(d1, dbytes);
    memcpy(d2, d1, dbytes);
    const char *s0 = src - smin * esize;
    k_copy_nd(d1, ds, s0, ss, dims, rank, esize);
    ref_copy(d2, ds, s0, ss, dims, rank, esize);
    int ok = memcmp(d1, d2, dbytes) == 0;
    free(src), free(d1), free(d2);
    return ok;
}

static void test_copy_nd_random(void) {
    for (int t = 0; t < 3000; t++) {
        int rank = (int)rnd_in(0, 6);
        int64_t dims[K_MAX_RANK];
        for (int k = 0; k < rank; k++) {
            int r = (int)rnd_in(0, 9);
            dims[k] = r == 0 ? (rnd() % 4 == 0 ? 0 : 1) : rnd_in(1, 5);
        }
        int esize = esizes[rnd_in(0, 5)];
        if (!copy_case(rank, dims, esize, 0)) {
            fprintf(stderr, "  copy case %d failed: rank %d esize %d\n", t, rank, esize);
            CHECK(0);
            return;
        }
    }
}

/* Large copies take the threaded, memcpy-run and tiled-transpose paths. */
static void test_copy_nd_large(void) {
    int64_t shapes[][4] = {{300, 257, 1, 1}, {2, 3, 128, 129}, {64, 1, 700, 3}, {1, 1, 1, 100000}};
    for (int i = 0; i < 4; i++)
        for (int e = 0; e < 4; e++)
            for (int rep = 0; rep < 3; rep++) CHECK(copy_case(4, shapes[i], esizes[e], 1));
    // an explicit 2-d transpose of floats
    int64_t M = 513, N = 259;
    float *a = malloc(sizeof(float) * M * N), *b = malloc(sizeof(float) * M * N);
    for (int64_t i = 0; i < M * N; i++) a[i] = (float)i;
    int64_t dims[2] = {N, M}, dst_s[2] = {M, 1}, src_s[2] = {1, N};
    k_copy_nd(b, dst_s, a, src_s, dims, 2, 4);
    int ok = 1;
    for (int64_t i = 0; i < M && ok; i++)
        for (int64_t j = 0; j < N; j++) ok &= b[j * M + i] == a[i * N + j];
    CHECK(ok);
    // Expand: a row broadcast down 500 rows
    int64_t edims[2] = {500, N}, eds[2] = {N, 1}, ess[2] = {0, 1};
    k_copy_nd(b, eds, a, ess, edims, 2, 4);
    ok = 1;
    for (int64_t i = 0; i < 500 * N; i++) ok &= b[i] == a[i % N];
    CHECK(ok);
    free(a), free(b);
}

static void test_fill(void) {
    int64_t ns[] = {0, 1, 7, 1000, 300001};
    for (int i = 0; i < 5; i++)
        for (int e = 0; e < 6; e++) {
            int es = esizes[e];
            char v[16];
            rnd_bytes(v, sizeof v);
            char *buf = malloc((size_t)(ns[i] * es + 1));
            buf[ns[i] * es] = 0x5a; // a guard byte past the end
            k_fill(buf, v, ns[i], es);
            int ok = (unsigned char)buf[ns[i] * es] == 0x5a;
            for (int64_t j = 0; j < ns[i]; j++) ok &= memcmp(buf + j * es, v, (size_t)es) == 0;
            CHECK(ok);
            free(buf);
        }
}

/* Pad reference: crop by the negative pads, then pad the cropped array the
 * numpy way, reflecting or wrapping one step at a time until inside. */
static int64_t ref_pad_coord(int64_t j, int64_t n, int mode) {
    if (j >= 0 && j < n) return j;
    if (mode == 0) return -1;
    if (mode == 2) return j < 0 ? 0 : n - 1;
    if (mode == 3) {
        while (j < 0) j += n;
        while (j >= n) j -= n;
        return j;
    }
    if (n == 1) return 0;
    while (j < 0 || j >= n) {
        if (j < 0) j = -j;
        if (j >= n) j = 2 * (n - 1) - j;
    }
    return j;
}

static void test_pad(void) {
    for (int t = 0; t < 2000; t++) {
        int rank = (int)rnd_in(0, 4), mode = (int)rnd_in(0, 3), es = esizes[rnd_in(0, 5)];
        int64_t in[K_MAX_RANK], pads[2 * K_MAX_RANK], out[K_MAX_RANK], lo[K_MAX_RANK], n[K_MAX_RANK];
        int64_t nin = 1, nout = 1;
        for (int k = 0; k < rank; k++) {
            in[k] = rnd_in(mode == 0 && rnd() % 8 == 0 ? 0 : 1, 5);
            // pads in [-in+1, 5] so that at least one element is left in non-constant modes
            int64_t pb = rnd_in(mode == 0 ? -in[k] : 1 - in[k], 5);
            int64_t pe = rnd_in(-(in[k] + (pb < 0 ? pb : 0)) + (mode == 0 ? 0 : 1), 5);
            if (rnd() % 3 == 0) pb = pb < 0 ? pb : 0;
            pads[k] = pb, pads[rank + k] = pe;
            lo[k] = pb < 0 ? -pb : 0;
            n[k] = in[k] + (pb < 0 ? pb : 0) + (pe < 0 ? pe : 0);
            out[k] = in[k] + pb + pe;
            nin *= in[k], nout *= out[k];
        }
        char *x = malloc((size_t)(nin * es + 1)), *y = malloc((size_t)(nout * es + 1)),
             *r = malloc((size_t)(nout * es + 1)), v[16];
        rnd_bytes(x, (size_t)(nin * es));
        rnd_bytes(v, sizeof v);
        k_pad(y, x, in, rank, pads, mode, v, es);
        int64_t idx[K_MAX_RANK] = {0};
        for (int64_t i = 0; i < nout; i++) {
            int64_t off = 0, inside = 1, st = 1;
            for (int k = rank - 1; k >= 0; k--) {
                int64_t j = ref_pad_coord(idx[k] - (pads[k] > 0 ? pads[k] : 0), n[k], mode);
                if (j < 0) inside = 0;
                off += (j + lo[k]) * st;
                st *= in[k];
            }
            memcpy(r + i * es, inside ? x + off * es : v, (size_t)es);
            for (int k = rank - 1; k >= 0; k--) {
                if (++idx[k] < out[k]) break;
                idx[k] = 0;
            }
        }
        if (memcmp(y, r, (size_t)(nout * es)) != 0) {
            fprintf(stderr, "  pad case %d failed: rank %d mode %d\n", t, rank, mode);
            CHECK(0);
            t = 1 << 30;
        }
        free(x), free(y), free(r);
    }
    // a missing constant value pads with zeros
    float x[3] = {1, 2, 3}, y[6];
    int64_t in1[1] = {3}, p1[2] = {2, 1};
    k_pad(y, x, in1, 1, p1, 0, NULL, 4);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 1 && y[4] == 3 && y[5] == 0);
}

static void test_pad_large(void) {
    // threaded path: reflect of a [3, 200, 300] float tensor with cropping on one side
    int64_t in[3] = {3, 200, 300}, pads[6] = {1, 5, -7, 0, -3, 9};
    int64_t out[3] = {4, 202, 302};
    float *x = malloc(sizeof(float) * 3 * 200 * 300), *y = malloc(sizeof(float) * 4 * 202 * 302);
    for (int64_t i = 0; i < 3 * 200 * 300; i++) x[i] = (float)i;
    k_pad(y, x, in, 3, pads, 1, NULL, 4);
    int ok = 1;
    for (int64_t a = 0; a < out[0]; a++)
        for (int64_t b = 0; b < out[1]; b++)
            for (int64_t c = 0; c < out[2]; c++) {
                int64_t ja = ref_pad_coord(a - 1, 3, 1), jb = ref_pad_coord(b - 5, 197, 1) + 0,
                        jc = ref_pad_coord(c, 293, 1) + 7;
                ok &= y[(a * out[1] + b) * out[2] + c] == x[(ja * 200 + jb) * 300 + jc];
            }
    CHECK(ok);
    free(x), free(y);
}

static void test_trilu(void) {
    for (int t = 0; t < 500; t++) {
        int64_t batch = rnd_in(0, 3), rows = rnd_in(0, 7), cols = rnd_in(0, 7);
        int64_t k = rnd() % 10 == 0 ? (rnd() % 2 ? INT64_MAX : INT64_MIN) : rnd_in(-9, 9);
        int upper = (int)(rnd() % 2), es = esizes[rnd_in(0, 5)];
        size_t nb = (size_t)(batch * rows * cols * es);
        char *x = malloc(nb + 1), *y = malloc(nb + 1), *r = malloc(nb + 1);
        rnd_bytes(x, nb);
        for (int64_t b = 0; b < batch; b++)
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++) {
                    size_t off = (size_t)(((b * rows + i) * cols + j) * es);
                    // compare in double to keep k = INT64_MIN from overflowing j - i - k
                    double dj = (double)(j - i), dk = (double)k;
                    int keep = upper ? dj >= dk : dj <= dk;
                    if (keep) memcpy(r + off, x + off, (size_t)es);
                    else memset(r + off, 0, (size_t)es);
                }
        k_trilu(y, x, batch, rows, cols, k, upper, es);
        CHECK(memcmp(y, r, nb) == 0);
        k_trilu(x, x, batch, rows, cols, k, upper, es); // in place
        CHECK(memcmp(x, r, nb) == 0);
        free(x), free(y), free(r);
    }
}

int main(void) {
    RUN(test_copy_nd_random);
    RUN(test_copy_nd_large);
    RUN(test_fill);
    RUN(test_pad);
    RUN(test_pad_large);
    RUN(test_trilu);
    return CHECK_DONE();
}
