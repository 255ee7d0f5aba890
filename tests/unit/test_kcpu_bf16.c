/* Unit tests of the cpu kernels' bfloat16 forms: the array conversions
 * (kcommon.c) and MatMul / Gemm in bfloat16 (klinalg.c).
 *
 * Two checks per product, on random shapes (size-1 dims, transposes, batch
 * offsets that broadcast, Gemm's C broadcast with alpha and beta):
 *  - bit for bit against the definition: the inputs widened, the float32
 *    kernel (k_matmul_f32 / k_gemm_f32), each result rounded to bfloat16 by
 *    this file's own rounding (written in double arithmetic, not with the
 *    kernels' bit trick);
 *  - against a naive double-precision product of the same bfloat16 inputs:
 *    |got - want| <= one bfloat16 ulp of want + gamma_K * sum |a b| with
 *    gamma_K = K * 2^-24, the textbook bound of float32 accumulation. An
 *    exact "within 1 ulp" alone would be flaky: where the sum cancels, float32
 *    accumulation moves the result by more than an ulp of the tiny result.
 * The rounding is also checked alone on ties, NaN, infinities, overflow and
 * subnormals, since a truncating conversion stays within one ulp. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels.h"

#define KRAND_SEED 0x2545f4914f6cdd1dull
#include "krand.h"

static float widen(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round-to-nearest-even by comparing distances in double: of the two
 * bfloat16 values around x (the truncation and the next one away from
 * zero), the nearer, the even one on a tie; NaN gives a quiet NaN. */
static uint16_t ref_round(float x)
{
    if (isnan(x)) return (uint16_t)(signbit(x) ? 0xffc0 : 0x7fc0);
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    if ((lo & 0x7fff) == 0x7f80) return lo; /* infinity */
    double dl = fabs((double)x - widen(lo));
    /* above the largest finite bfloat16 the next value is infinity, at 2^128 for rounding */
    double dh = (hi & 0x7fff) == 0x7f80 ? ldexp(1.0, 128) - fabs((double)x) : fabs(widen(hi) - (double)x);
    if (dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1) ? hi : lo;
}

static uint16_t *rand_bf16(int64_t n)
{
    uint16_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = ref_round(frand() * 2);
    return p;
}

static float *widened(const uint16_t *x, int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = widen(x[i]);
    return p;
}

/* one bfloat16 ulp at |w| (the spacing of the binade w is in) */
static double ulp_at(double w)
{
    int e;
    frexp(w == 0 ? 1e-38 : w, &e);
    return ldexp(1.0, e - 8);
}

static void test_convert(void)
{
    static const struct { uint32_t f; uint16_t h; } cases[] = {
        {0x3f800000, 0x3f80}, /* 1 */
        {0x3f808000, 0x3f80}, /* a tie, to even (down) */
        {0x3f818000, 0x3f82}, /* a tie, to even (up) */
        {0x3f808001, 0x3f81}, /* above the tie */
        {0x3f807fff, 0x3f80}, /* below it */
        {0xbf808001, 0xbf81}, /* negative */
        {0x7f7fffff, 0x7f80}, /* the largest float rounds to infinity */
        {0x7f800000, 0x7f80}, {0xff800000, 0xff80}, /* infinities */
        {0x7fc00000, 0x7fc0}, {0x7f800001, 0x7fc0}, {0xff800001, 0xffc0}, /* NaNs stay NaN */
        {0x00000000, 0x0000}, {0x80000000, 0x8000},
        {0x00018000, 0x0002}, {0x00008000, 0x0000}, /* subnormals: ties to even */
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    float x[32];
    uint16_t y[32];
    for (int i = 0; i < n; i++) memcpy(&x[i], &cases[i].f, sizeof x[i]);
    k_f32_to_bf16(y, x, n);
    for (int i = 0; i < n; i++) {
        if (y[i] != cases[i].h) fprintf(stderr, "  0x%08x -> 0x%04x, want 0x%04x\n", cases[i].f, y[i], cases[i].h);
        CHECK_EQ_INT(y[i], cases[i].h);
        CHECK_EQ_INT(ref_round(x[i]), cases[i].h); /* the reference agrees on them too */
    }
    // random values, and enough of them for the pool's threads (K_PAR_WORK)
    int64_t m = 3 * K_PAR_WORK;
    float *r = malloc((size_t)m * sizeof *r), *back = malloc((size_t)m * sizeof *back);
    uint16_t *h = malloc((size_t)m * sizeof *h);
    for (int64_t i = 0; i < m; i++) r[i] = ldexpf(frand(), (int)irand(-130, 127));
    k_set_threads(3);
    k_f32_to_bf16(h, r, m);
    k_bf16_to_f32(back, h, m);
    k_set_threads(0);
    int64_t bad = 0;
    for (int64_t i = 0; i < m; i++) bad += h[i] != ref_round(r[i]) || back[i] != widen(h[i]);
    if (bad) fprintf(stderr, "  %lld of %lld conversions differ\n", (long long)bad, (long long)m);
    CHECK(bad == 0);
    free(r), free(back), free(h);
}

/* got against the definition (bits) and against want in double with the
 * bound above; mag[i] = sum |a b| of the element. */
static int check_product(const char *what, const uint16_t *got, const float *y32, const double *want,
                         const double *mag, int64_t n, int64_t K)
{
    int64_t bits = 0, far = 0;
    for (int64_t i = 0; i < n; i++) {
        bits += got[i] != ref_round(y32[i]);
        double d = fabs((double)widen(got[i]) - want[i]);
        far += !(d <= ulp_at(fabs(want[i])) + (double)K * 0x1p-24 * mag[i]);
    }
    if (bits || far) fprintf(stderr, "  %s: %lld not the rounded float32 result, %lld off the double one\n", what,
                             (long long)bits, (long long)far);
    return bits == 0 && far == 0;
}

static void one_matmul(int64_t ab0, int64_t ab1, int64_t bb0, int64_t bb1, int64_t M, int64_t N, int64_t K)
{
    int64_t o0 = ab0 > bb0 ? ab0 : bb0, o1 = ab1 > bb1 ? ab1 : bb1, batch = o0 * o1, ao[64], bo[64];
    for (int64_t i = 0; i < o0; i++) // numpy broadcasting: the offsets the kernel contract asks for
        for (int64_t j = 0; j < o1; j++) {
            ao[i * o1 + j] = ((ab0 == 1 ? 0 : i) * ab1 + (ab1 == 1 ? 0 : j)) * M * K;
            bo[i * o1 + j] = ((bb0 == 1 ? 0 : i) * bb1 + (bb1 == 1 ? 0 : j)) * K * N;
        }
    int64_t na = ab0 * ab1 * M * K, nb = bb0 * bb1 * K * N, ny = batch * M * N;
    uint16_t *a = rand_bf16(na), *b = rand_bf16(nb), *y = rand_bf16(ny);
    float *a32 = widened(a, na), *b32 = widened(b, nb), *y32 = malloc((size_t)ny * sizeof *y32);
    double *want = malloc((size_t)ny * sizeof *want), *mag = malloc((size_t)ny * sizeof *mag);
    void *ws = malloc(k_matmul_bf16_ws(na, nb, ny));
    k_matmul_bf16(y, a, b, batch, M, N, K, ao, bo, na, nb, ws);
    k_matmul_f32(y32, a32, b32, batch, M, N, K, ao, bo);
    for (int64_t i = 0; i < batch; i++)
        for (int64_t r = 0; r < M; r++)
            for (int64_t c = 0; c < N; c++) {
                double s = 0, m = 0;
                for (int64_t k = 0; k < K; k++) {
                    double p = (double)a32[ao[i] + r * K + k] * b32[bo[i] + k * N + c];
                    s += p, m += fabs(p);
                }
                want[(i * M + r) * N + c] = s, mag[(i * M + r) * N + c] = m;
            }
    char what[128];
    snprintf(what, sizeof what, "matmul [%lld,%lld]x[%lld,%lld] M%lld N%lld K%lld", (long long)ab0, (long long)ab1,
             (long long)bb0, (long long)bb1, (long long)M, (long long)N, (long long)K);
    CHECK(check_product(what, y, y32, want, mag, ny, K));
    /* the float32 result autocast may keep: the same sums, not rounded */
    float *yw = malloc((size_t)(ny + 1) * sizeof *yw);
    void *ws2 = malloc(k_matmul_bf16_f32out_ws(na, nb) + 1);
    k_matmul_bf16_f32out(yw, a, b, batch, M, N, K, ao, bo, na, nb, ws2);
    CHECK(memcmp(yw, y32, (size_t)ny * sizeof *yw) == 0);
    free(yw), free(ws2);
    free(a), free(b), free(y), free(a32), free(b32), free(y32), free(want), free(mag), free(ws);
}

static void test_matmul_bf16(void)
{
    one_matmul(1, 1, 1, 1, 1, 1, 1);
    one_matmul(1, 1, 1, 1, 7, 1, 5);     // matrix times vector
    one_matmul(1, 1, 1, 1, 1, 9, 4);     // vector times matrix
    one_matmul(2, 3, 2, 3, 5, 6, 7);     // dense batch
    one_matmul(2, 1, 1, 3, 4, 5, 3);     // both sides broadcast
    one_matmul(1, 1, 4, 2, 3, 8, 6);     // a shared by every batch
    one_matmul(3, 4, 1, 1, 6, 2, 9);     // b shared (a weight)
    one_matmul(2, 2, 2, 2, 3, 4, 0);     // K = 0: zeros
    one_matmul(1, 1, 1, 1, 300, 900, 24); // the conversions large enough for threads
    for (int t = 0; t < 25; t++) {        // random shapes; each batch dim matches or is 1
        int64_t a0 = irand(1, 3), a1 = irand(1, 3);
        int64_t b0 = irand(0, 1) ? 1 : a0, b1 = irand(0, 1) ? 1 : a1;
        if (irand(0, 1)) a1 = 1, b1 = irand(1, 3);
        one_matmul(a0, a1, b0, b1, irand(1, 17), irand(1, 17), irand(1, 90));
    }
}

static void one_gemm(int64_t M, int64_t N, int64_t K, int ta, int tb, float alpha, float beta, int64_t cr,
                     int64_t cc)
{
    int64_t nc = cr * cc;
    uint16_t *a = rand_bf16(M * K), *b = rand_bf16(K * N), *c = nc ? rand_bf16(nc) : NULL, *y = rand_bf16(M * N);
    float *a32 = widened(a, M * K), *b32 = widened(b, K * N), *c32 = c ? widened(c, nc) : NULL;
    float *y32 = malloc((size_t)(M * N) * sizeof *y32);
    double *want = malloc((size_t)(M * N) * sizeof *want), *mag = malloc((size_t)(M * N) * sizeof *mag);
    void *ws = malloc(k_gemm_bf16_ws(M, N, K, nc));
    k_gemm_bf16(y, a, b, c, M, N, K, ta, tb, alpha, beta, cr, cc, ws);
    k_gemm_f32(y32, a32, b32, c32, M, N, K, ta, tb, alpha, beta, cr, cc);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, m = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)(ta ? a32[k * M + i] : a32[i * K + k]) * (tb ? b32[j * K + k] : b32[k * N + j]);
                s += p, m += fabs(p);
            }
            double cv = c ? (double)beta * c32[(cr == 1 ? 0 : i) * cc + (cc == 1 ? 0 : j)] : 0;
            want[i * N + j] = alpha * s + cv;
            mag[i * N + j] = fabs(alpha) * m + fabs(cv);
        }
    char what[128];
    snprintf(what, sizeof what, "gemm M%lld N%lld K%lld ta%d tb%d alpha %g beta %g c[%lld,%lld]", (long long)M,
             (long long)N, (long long)K, ta, tb, alpha, beta, (long long)cr, (long long)cc);
    CHECK(check_product(what, y, y32, want, mag, M * N, K + 2));
    if (!c) { /* the float32 result autocast may keep (no C): k_gemm_f32's, not rounded */
        float *yw = malloc((size_t)(M * N + 1) * sizeof *yw);
        void *ws2 = malloc(k_gemm_bf16_f32out_ws(M, N, K) + 1);
        k_gemm_bf16_f32out(yw, a, b, M, N, K, ta, tb, alpha, ws2);
        CHECK(memcmp(yw, y32, (size_t)(M * N) * sizeof *yw) == 0);
        free(yw), free(ws2);
    }
    free(a), free(b), free(c), free(y), free(a32), free(b32), free(c32), free(y32), free(want), free(mag), free(ws);
}

static void test_gemm_bf16(void)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            one_gemm(5, 7, 3, ta, tb, 1.0f, 1.0f, 0, 0);    // no C (autodiff's backward Gemms)
            one_gemm(5, 7, 3, ta, tb, 0.5f, 2.0f, 5, 7);
            one_gemm(6, 4, 9, ta, tb, -1.5f, 0.25f, 1, 4);  // a bias row
            one_gemm(6, 4, 9, ta, tb, 2.0f, -1.0f, 6, 1);
            one_gemm(1, 1, 1, ta, tb, 1.0f, 3.0f, 1, 1);
            one_gemm(1, 33, 17, ta, tb, 1.0f, 0.0f, 0, 0);  // one row
            one_gemm(70, 90, 80, ta, tb, 0.75f, 0.5f, 1, 90);
        }
    one_gemm(4, 3, 0, 0, 0, 1.0f, 2.0f, 1, 3); // K = 0: beta * C only
    one_gemm(4, 3, 0, 1, 1, 1.0f, 2.0f, 0, 0);
    for (int t = 0; t < 20; t++) {
        int64_t M = irand(1, 20), N = irand(1, 20), form = irand(0, 3);
        int64_t cr = form == 0 ? 0 : form == 1 ? 1 : M, cc = form == 0 ? 0 : form == 3 ? 1 : N;
        one_gemm(M, N, irand(1, 60), (int)irand(0, 1), (int)irand(0, 1), frand() * 2, frand() * 2, cr, cc);
    }
}

/* A norm written in bfloat16 is the float32 kernel's result rounded, bit
 * for bit (the statistics too): what the bf16 Cast it replaces stored. */
static void test_norm_bf16out(void)
{
    const int64_t rows = 37, cols = 129;
    float *x = malloc(rows * cols * sizeof *x), *sc = malloc(cols * sizeof *sc), *b = malloc(cols * sizeof *b);
    float *y = malloc(rows * cols * sizeof *y), *m = malloc(rows * sizeof *m), *is = malloc(rows * sizeof *is);
    float *m2 = malloc(rows * sizeof *m2), *is2 = malloc(rows * sizeof *is2);
    uint16_t *want = malloc(rows * cols * sizeof *want), *got = malloc(rows * cols * sizeof *got);
    for (int64_t i = 0; i < rows * cols; i++) x[i] = widen((uint16_t)(0x3f00 + (i * 2654435761u >> 20) % 0x900)) - 3.0f;
    for (int64_t i = 0; i < cols; i++) sc[i] = 0.5f + (float)(i % 7) / 5.0f, b[i] = (float)(i % 5) / 3.0f - 0.6f;
    k_layernorm_f32(y, m, is, x, sc, b, rows, cols, 1e-5f);
    k_f32_to_bf16(want, y, rows * cols);
    k_layernorm_f32_bf16out(got, m2, is2, x, sc, b, rows, cols, 1e-5f);
    CHECK(memcmp(got, want, rows * cols * sizeof *got) == 0);
    CHECK(memcmp(m, m2, rows * sizeof *m) == 0 && memcmp(is, is2, rows * sizeof *is) == 0);
    k_rmsnorm_f32(y, x, sc, rows, cols, 1e-6f);
    k_f32_to_bf16(want, y, rows * cols);
    k_rmsnorm_f32_bf16out(got, x, sc, rows, cols, 1e-6f);
    CHECK(memcmp(got, want, rows * cols * sizeof *got) == 0);
    free(x), free(sc), free(b), free(y), free(m), free(is), free(m2), free(is2), free(want), free(got);
}

int main(void)
{
    RUN(test_convert);
    RUN(test_matmul_bf16);
    RUN(test_gemm_bf16);
    RUN(test_norm_bf16out);
    return CHECK_DONE();
}
