/* The cpu normalization kernels (knorm.c) against references written plainly
 * here in double from the ONNX formulas: BatchNorm inference and training
 * (running statistics, population variance), LayerNorm with rows = 1 and
 * cols = 1 and its Mean / InvStdDev outputs, GroupNorm with groups = 1, = C and
 * between, loom.RMSNorm (rows, cols 1 and a row of zeros). Data sits on an offset so that a cancelling formula would show.
 * Tolerance: |a - b| / (|b| + 1) < 1e-5; results must not depend on threads. */
#include "check.h"
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}
static int64_t rnd_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }
static float rnd_f(void) { return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2 - 1); }
static float *rnd_vec(int64_t n, float offset, float spread) {
    float *v = malloc(sizeof(float) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++) v[i] = offset + spread * rnd_f();
    return v;
}

static int close_all(const float *a, const double *b, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) / (fabs(b[i]) + 1) < 1e-5)) {
            fprintf(stderr, "  %s[%lld] = %.9g, expected %.9g\n", what, (long long)i, a[i], b[i]);
            return 0;
        }
    return 1;
}

static void test_batchnorm(void) {
    for (int t = 0; t < 200; t++) {
        int64_t N = rnd_in(0, 4), C = rnd_in(1, 5), S = rnd_in(0, 9);
        if (t == 0) N = 8, C = 16, S = 1024; // threaded
        int64_t n = N * C * S;
        float *x = rnd_vec(n, 50, 2), *sc = rnd_vec(C, 1, 0.5f), *b = rnd_vec(C, 0, 1),
              *m = rnd_vec(C, 50, 1), *v = rnd_vec(C, 2, 1), *y = malloc(sizeof(float) * (size_t)(n + 1));
        double *r = malloc(sizeof(double) * (size_t)(n + 1));
        int nob = t % 3 == 0;
        k_batchnorm_f32(y, x, sc, nob ? NULL : b, m, v, N, C, S, 1e-5f);
        for (int64_t i = 0; i < n; i++) {
            int64_t c = i / S % C;
            r[i] = (x[i] - (double)m[c]) / sqrt((double)v[c] + 1e-5f) * sc[c] + (nob ? 0 : b[c]);
        }
        CHECK(close_all(y, r, n, "y"));
        free(x), free(sc), free(b), free(m), free(v), free(y), free(r);
    }
}

static void test_batchnorm_train(void) {
    for (int t = 0; t < 200; t++) {
        int64_t N = rnd_in(1, 4), C = rnd_in(1, 5), S = rnd_in(1, 9);
        if (t == 0) N = 8, C = 16, S = 1024;
        if (t == 1) N = 1, S = 1; // one element per channel: variance 0
        int64_t n = N * C * S;
        float mom = t % 2 ? 0.9f : 0.1f, eps = 1e-3f;
        float *x = rnd_vec(n, 30, 3), *sc = rnd_vec(C, 1, 0.5f), *b = rnd_vec(C, 0, 1),
              *m = rnd_vec(C, 0, 1), *v = rnd_vec(C, 2, 1), *y = malloc(sizeof(float) * (size_t)n),
              *rm = malloc(sizeof(float) * (size_t)C), *rv = malloc(sizeof(float) * (size_t)C);
        double *r = malloc(sizeof(double) * (size_t)n), *erm = malloc(sizeof(double) * (size_t)C),
               *erv = malloc(sizeof(double) * (size_t)C);
        k_batchnorm_train_f32(y, rm, rv, x, sc, b, m, v, N, C, S, eps, mom);
        for (int64_t c = 0; c < C; c++) {
            double s = 0, q = 0;
            for (int64_t i = 0; i < n; i++)
                if (i / S % C == c) s += x[i];
            double mean = s / (double)(N * S);
            for (int64_t i = 0; i < n; i++)
                if (i / S % C == c) q += (x[i] - mean) * (x[i] - mean);
            double var = q / (double)(N * S);
            for (int64_t i = 0; i < n; i++)
                if (i / S % C == c) r[i] = (x[i] - mean) / sqrt(var + eps) * sc[c] + b[c];
            erm[c] = m[c] * (double)mom + mean * (1 - (double)mom);
            erv[c] = v[c] * (double)mom + var * (1 - (double)mom);
        }
        if (!close_all(y, r, n, "y")) {
            fprintf(stderr, "  at N %lld C %lld S %lld\n", (long long)N, (long long)C, (long long)S);
            CHECK(0);
        }
        CHECK(close_all(rm, erm, C, "running_mean"));
        CHECK(close_all(rv, erv, C, "running_var"));
        // the running outputs are optional
        float *y2 = malloc(sizeof(float) * (size_t)n);
        k_batchnorm_train_f32(y2, NULL, NULL, x, sc, b, m, v, N, C, S, eps, mom);
        CHECK(memcmp(y, y2, sizeof(float) * (size_t)n) == 0);
        free(x), free(sc), free(b), free(m), free(v), free(y), free(y2), free(rm), free(rv), free(r),
            free(erm), free(erv);
    }
}

static void test_layernorm(void) {
    for (int t = 0; t < 300; t++) {
        int64_t rows = rnd_in(1, 6), cols = rnd_in(1, 40);
        if (t % 10 == 1) rows = 1;
        if (t % 10 == 2) cols = 1;
        if (t == 0) rows = 512, cols = 768;
        float *x = rnd_vec(rows * cols, 20, 1), *sc = rnd_vec(cols, 1, 0.5f), *b = rnd_vec(cols, 0, 1);
        float *y = malloc(sizeof(float) * (size_t)(rows * cols)), *mean = malloc(sizeof(float) * (size_t)rows),
              *is = malloc(sizeof(float) * (size_t)rows);
        double *r = malloc(sizeof(double) * (size_t)(rows * cols)), *em = malloc(sizeof(double) * (size_t)rows),
               *eis = malloc(sizeof(double) * (size_t)rows);
        int nob = t % 4 == 3;
        float eps = 1e-5f;
        k_layernorm_f32(y, t % 5 == 4 ? NULL : mean, t % 5 == 4 ? NULL : is, x, sc, nob ? NULL : b, rows,
                        cols, eps);
        for (int64_t i = 0; i < rows; i++) {
            double s = 0, q = 0;
            for (int64_t j = 0; j < cols; j++) s += x[i * cols + j];
            double mu = s / (double)cols;
            for (int64_t j = 0; j < cols; j++) q += (x[i * cols + j] - mu) * (x[i * cols + j] - mu);
            double inv = 1 / sqrt(q / (double)cols + eps);
            for (int64_t j = 0; j < cols; j++)
                r[i * cols + j] = (x[i * cols + j] - mu) * inv * sc[j] + (nob ? 0 : b[j]);
            em[i] = mu, eis[i] = inv;
        }
        CHECK(close_all(y, r, rows * cols, "y"));
        if (t % 5 != 4) {
            CHECK(close_all(mean, em, rows, "mean"));
            // inv_std is large (up to 1/sqrt(eps)) for constant rows: compare relatively
            for (int64_t i = 0; i < rows; i++) CHECK(fabs(is[i] - eis[i]) / eis[i] < 1e-6);
        }
        free(x), free(sc), free(b), free(y), free(mean), free(is), free(r), free(em), free(eis);
    }
}

/* LayerNormalization's rows four at a time (knorm.c's moments4, AVX-512)
 * give the bits of one row at a time (the AVX2/scalar statistics): every
 * row count around the groups of 4, widths with and without a tail past 8
 * lanes, and a large mean; at 1 and 3 threads (other row splits). */
static void test_layernorm_rows4_bits(void) {
    int64_t shapes[][2] = {{68, 64}, {5, 8}, {7, 13}, {3, 40}, {9, 1}, {12, 100}, {4, 7}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int64_t rows = shapes[t][0], cols = shapes[t][1], n = rows * cols;
        float *x = rnd_vec(n, t % 2 ? 300 : 0, 1), *sc = rnd_vec(cols, 1, 0.5f), *b = rnd_vec(cols, 0, 1);
        float *y[3], *mu[3], *is[3];
        for (int k = 0; k < 3; k++) { // AVX-512 at 1 and 3 threads, then one row at a time
            y[k] = malloc(sizeof(float) * (size_t)n), mu[k] = malloc(sizeof(float) * (size_t)rows);
            is[k] = malloc(sizeof(float) * (size_t)rows);
            k_set_threads(k == 1 ? 3 : 1);
            k_tiles_set_avx512(k < 2 ? 1 : 0);
            k_layernorm_f32(y[k], mu[k], is[k], x, sc, b, rows, cols, 1e-5f);
        }
        k_tiles_set_avx512(-1);
        k_set_threads(0);
        for (int k = 1; k < 3; k++) {
            int same = !memcmp(y[0], y[k], sizeof(float) * (size_t)n) &&
                       !memcmp(mu[0], mu[k], sizeof(float) * (size_t)rows) &&
                       !memcmp(is[0], is[k], sizeof(float) * (size_t)rows);
            if (!same) fprintf(stderr, "  %lld x %lld: run %d differs\n", (long long)rows, (long long)cols, k);
            CHECK(same);
        }
        for (int k = 0; k < 3; k++) free(y[k]), free(mu[k]), free(is[k]);
        free(x), free(sc), free(b);
    }
}

static void test_rmsnorm(void) {
    for (int t = 0; t < 300; t++) {
        int64_t rows = rnd_in(1, 6), cols = rnd_in(1, 40);
        if (t % 10 == 1) rows = 1;
        if (t % 10 == 2) cols = 1;
        if (t == 0) rows = 512, cols = 768;
        float *x = rnd_vec(rows * cols, t % 2 ? 3 : 0, 1), *sc = rnd_vec(cols, 1, 0.5f);
        if (t % 7 == 3)
            for (int64_t j = 0; j < cols; j++) x[j] = 0; /* a row of zeros: y = 0, r = 1 / sqrt(eps) */
        float *y = malloc(sizeof(float) * (size_t)(rows * cols));
        double *r = malloc(sizeof(double) * (size_t)(rows * cols));
        float eps = 1e-5f;
        k_rmsnorm_f32(y, x, sc, rows, cols, eps);
        for (int64_t i = 0; i < rows; i++) {
            double q = 0;
            for (int64_t j = 0; j < cols; j++) q += (double)x[i * cols + j] * x[i * cols + j];
            double inv = 1 / sqrt(q / (double)cols + eps);
            for (int64_t j = 0; j < cols; j++) r[i * cols + j] = x[i * cols + j] * inv * sc[j];
        }
        CHECK(close_all(y, r, rows * cols, "y"));
        free(x), free(sc), free(y), free(r);
    }
}

static void test_groupnorm(void) {
    for (int t = 0; t < 300; t++) {
        int64_t N = rnd_in(1, 3), G = rnd_in(1, 4), cpg = rnd_in(1, 3), S = rnd_in(1, 10);
        if (t % 3 == 0) cpg = 1; // InstanceNorm: groups = C
        if (t % 3 == 1) G = 1;   // one group: LayerNorm over (C, spatial)
        if (t == 0) N = 4, G = 32, cpg = 2, S = 4096;
        int64_t C = G * cpg, n = N * C * S;
        float eps = 1e-5f;
        float *x = rnd_vec(n, -40, 4), *sc = rnd_vec(C, 1, 0.5f), *b = rnd_vec(C, 0, 1),
              *y = malloc(sizeof(float) * (size_t)n);
        double *r = malloc(sizeof(double) * (size_t)n);
        k_groupnorm_f32(y, x, sc, b, N, C, G, S, eps);
        for (int64_t i = 0; i < N; i++)
            for (int64_t g = 0; g < G; g++) {
                int64_t base = (i * C + g * cpg) * S, len = cpg * S;
                double s = 0, q = 0;
                for (int64_t j = 0; j < len; j++) s += x[base + j];
                double mu = s / (double)len;
                for (int64_t j = 0; j < len; j++) q += (x[base + j] - mu) * (x[base + j] - mu);
                double inv = 1 / sqrt(q / (double)len + eps);
                for (int64_t j = 0; j < len; j++) {
                    int64_t c = g * cpg + j / S;
                    r[base + j] = (x[base + j] - mu) * inv * sc[c] + b[c];
                }
            }
        CHECK(close_all(y, r, n, "y"));
        free(x), free(sc), free(b), free(y), free(r);
    }
}

/* The same bits with one thread and with many. */
static void test_thread_invariance(void) {
    int64_t N = 4, C = 64, S = 2048, n = N * C * S;
    float *x = rnd_vec(n, 3, 2), *sc = rnd_vec(C * S, 1, 0.5f), *b = rnd_vec(C * S, 0, 1),
          *m = rnd_vec(C, 0, 1), *v = rnd_vec(C, 2, 1);
    float *y[2], *rm[2], *rv[2], *mu[2], *is[2], *g[2];
    int nt = k_threads();
    for (int k = 0; k < 2; k++) {
        k_set_threads(k == 0 ? 1 : (nt > 1 ? nt : 4));
        y[k] = malloc(sizeof(float) * (size_t)n), g[k] = malloc(sizeof(float) * (size_t)n);
        rm[k] = malloc(sizeof(float) * C), rv[k] = malloc(sizeof(float) * C);
        mu[k] = malloc(sizeof(float) * (size_t)N * C), is[k] = malloc(sizeof(float) * (size_t)N * C);
        k_batchnorm_train_f32(y[k], rm[k], rv[k], x, sc, b, m, v, N, C, S, 1e-5f, 0.9f);
        k_groupnorm_f32(g[k], x, sc, b, N, C, 8, S, 1e-5f);
    }
    CHECK(memcmp(y[0], y[1], sizeof(float) * (size_t)n) == 0);
    CHECK(memcmp(rm[0], rm[1], sizeof(float) * C) == 0 && memcmp(rv[0], rv[1], sizeof(float) * C) == 0);
    CHECK(memcmp(g[0], g[1], sizeof(float) * (size_t)n) == 0);
    for (int k = 0; k < 2; k++) {
        k_set_threads(k == 0 ? 1 : (nt > 1 ? nt : 4));
        k_layernorm_f32(y[k], mu[k], is[k], x, sc, b, N * C, S, 1e-5f);
    }
    CHECK(memcmp(y[0], y[1], sizeof(float) * (size_t)n) == 0);
    CHECK(memcmp(mu[0], mu[1], sizeof(float) * (size_t)(N * C)) == 0);
    for (int k = 0; k < 2; k++) {
        k_set_threads(k == 0 ? 1 : (nt > 1 ? nt : 4));
        k_rmsnorm_f32(y[k], x, sc, N * C, S, 1e-5f);
    }
    CHECK(memcmp(y[0], y[1], sizeof(float) * (size_t)n) == 0);
    k_set_threads(nt);
    for (int k = 0; k < 2; k++) free(y[k]), free(rm[k]), free(rv[k]), free(mu[k]), free(is[k]), free(g[k]);
    free(x), free(sc), free(b), free(m), free(v);
}

int main(void) {
    RUN(test_batchnorm);
    RUN(test_batchnorm_train);
    RUN(test_layernorm);
    RUN(test_layernorm_rows4_bits);
    RUN(test_rmsnorm);
    RUN(test_groupnorm);
    RUN(test_thread_invariance);
    return CHECK_DONE();
}
