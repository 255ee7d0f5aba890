/* Unit tests of the cpu DFT kernel (kdft.c) against the defining sum
 * computed in double with an exactly reduced angle per term: lengths 1, 2,
 * 8, 12, 17 and larger powers of two, real and complex input, onesided,
 * inverse (and a forward-inverse round trip), dft_length zero padding and
 * truncation, batch (outer) and inner axes. Error measure:
 * |got - want| / (|want| + 1) < 1e-5. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "kernels.h"

static const double PI = 3.14159265358979323846;

#define KRAND_SEED 0xD1B54A32D192ED03ull
#include "krand.h"

/* X[k] = scale * sum_{j < min(n_in, L)} x[j] exp(-+ 2 pi i j k / L). */
static void ref_dft(double *y, const float *x, int64_t outer, int64_t n_in, int64_t inner, int cin,
                    int64_t L, int onesided, int inverse)
{
    int64_t n_out = onesided ? L / 2 + 1 : L, n = n_in < L ? n_in : L;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            for (int64_t k = 0; k < n_out; k++) {
                double sr = 0, si = 0;
                for (int64_t j = 0; j < n; j++) {
                    const float *v = x + ((o * n_in + j) * inner + i) * cin;
                    double a = (inverse ? 2 : -2) * PI * (double)((j * k) % L) / (double)L;
                    double xr = v[0], xi = cin == 2 ? v[1] : 0;
                    sr += xr * cos(a) - xi * sin(a), si += xr * sin(a) + xi * cos(a);
                }
                double *d = y + ((o * n_out + k) * inner + i) * 2;
                d[0] = inverse ? sr / (double)L : sr, d[1] = inverse ? si / (double)L : si;
            }
}

static int dft_case(int64_t outer, int64_t n_in, int64_t inner, int cin, int64_t L, int onesided,
                    int inverse)
{
    int64_t n_out = onesided ? L / 2 + 1 : L, yn = outer * n_out * inner * 2;
    float *x = rand_f(outer * n_in * inner * cin), *y = rand_f(yn);
    double *want = malloc((size_t)yn * sizeof *want), e = 0;
    k_dft_f32(y, x, outer, n_in, inner, cin, L, onesided, inverse);
    ref_dft(want, x, outer, n_in, inner, cin, L, onesided, inverse);
    for (int64_t i = 0; i < yn; i++) {
        double d = fabs((double)y[i] - want[i]) / (fabs(want[i]) + 1);
        if (!(d <= e)) e = d;
    }
    int ok = e < 1e-5;
    if (!ok || getenv("DFT_VERBOSE"))
        fprintf(stderr, "  dft outer%lld n_in%lld inner%lld cin%d L%lld onesided%d inverse%d: err %g\n",
                (long long)outer, (long long)n_in, (long long)inner, cin, (long long)L, onesided,
                inverse, e);
    free(x), free(y), free(want);
    return ok;
}

static void test_dft_lengths(void)
{
    static const int64_t lens[] = {1, 2, 3, 4, 8, 12, 16, 17, 32, 64, 100, 256, 1024};
    for (size_t t = 0; t < sizeof lens / sizeof *lens; t++) {
        int64_t L = lens[t];
        for (int cin = 1; cin <= 2; cin++) {
            CHECK(dft_case(2, L, 1, cin, L, 0, 0));
            CHECK(dft_case(1, L, 3, cin, L, 0, 1));
            CHECK(dft_case(2, L, 2, cin, L, 1, 0)); // onesided (complex: first bins only)
        }
    }
}

static void test_dft_length_pad_truncate(void)
{
    // dft_length beyond the signal: zero padding; below it: truncation
    int64_t cases[][2] = {{5, 8}, {6, 17}, {12, 16}, {16, 12}, {20, 8}, {17, 2}, {3, 1}, {1, 32}};
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++)
        for (int cin = 1; cin <= 2; cin++)
            for (int os = 0; os < 2; os++) {
                CHECK(dft_case(2, cases[t][0], 3, cin, cases[t][1], os, 0));
                CHECK(dft_case(1, cases[t][0], 2, cin, cases[t][1], 0, 1));
            }
}

static void test_dft_round_trip(void)
{
    // inverse(forward(x)) == x, for a power of two and for other lengths
    static const int64_t lens[] = {1, 2, 8, 12, 17, 512};
    for (size_t t = 0; t < sizeof lens / sizeof *lens; t++) {
        int64_t L = lens[t], inner = 3;
        float *x = rand_f(L * inner * 2), *f = malloc((size_t)(L * inner * 2) * sizeof *f);
        float *b = malloc((size_t)(L * inner * 2) * sizeof *b);
        k_dft_f32(f, x, 1, L, inner, 2, L, 0, 0);
        k_dft_f32(b, f, 1, L, inner, 2, L, 0, 1);
        double e = 0;
        for (int64_t i = 0; i < L * inner * 2; i++) {
            double d = fabs((double)b[i] - x[i]) / (fabs((double)x[i]) + 1);
            if (d > e) e = d;
        }
        CHECK(e < 1e-5);
        free(x), free(f), free(b);
    }
}

static void test_dft_known(void)
{
    // a unit impulse transforms to all ones; a constant to one bin of n
    float x[8] = {1, 0, 0, 0, 0, 0, 0, 0}, y[16];
    k_dft_f32(y, x, 1, 8, 1, 1, 8, 0, 0);
    int ok = 1;
    for (int k = 0; k < 8; k++) ok &= y[2 * k] == 1 && y[2 * k + 1] == 0;
    CHECK(ok);
    float c[8] = {2, 2, 2, 2, 2, 2, 2, 2};
    k_dft_f32(y, c, 1, 8, 1, 1, 8, 1, 0);
    CHECK(y[0] == 16 && y[1] == 0);
    for (int k = 1; k <= 4; k++) CHECK(fabsf(y[2 * k]) < 1e-6f && fabsf(y[2 * k + 1]) < 1e-6f);
}

/* The same bits whatever the thread count. */
static void test_dft_threads_bitwise(void)
{
    int64_t outer = 6, n = 64, inner = 5, yn = outer * n * inner * 2;
    float *x = rand_f(outer * n * inner * 2), *y1 = rand_f(yn), *y2 = rand_f(yn);
    for (int t = 0; t < 2; t++) {
        k_set_threads(t ? 3 : 1);
        k_dft_f32(t ? y2 : y1, x, outer, n, inner, 2, n, 0, 0);
    }
    CHECK(memcmp(y1, y2, (size_t)yn * sizeof *y1) == 0);
    free(x), free(y1), free(y2);
    k_set_threads(0);
}

int main(void)
{
    RUN(test_dft_lengths);
    RUN(test_dft_length_pad_truncate);
    RUN(test_dft_round_trip);
    RUN(test_dft_known);
    RUN(test_dft_threads_bitwise);
    return CHECK_DONE();
}
