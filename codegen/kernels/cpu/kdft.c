/* The discrete Fourier transform (ONNX DFT, float32) for the cpu target.
 * Power-of-two lengths use an iterative radix-2 FFT that runs in place in
 * the output slot of each transform (the kernel has no workspace): the input
 * is gathered straight into bit-reversed order, zero-padded or truncated to
 * dft_length on the way. A onesided transform of real input keeps only
 * length/2 + 1 bins, too few for a length-point FFT, so it runs a half-length
 * complex FFT of the even/odd samples packed as re/im and untangles it in
 * place. Other lengths use the direct O(n * bins) sum in double. Twiddles
 * come from a double-precision recurrence restarted at every stage (direct
 * sum: every bin), which keeps the error near float32 rounding. Each
 * transform is one thread's work. */
#include <math.h>

#include "kernels.h"

static const double PI = 3.14159265358979323846;

static int is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

static int64_t bit_reverse(int64_t j, int bits)
{
    int64_t r = 0;
    for (int b = 0; b < bits; b++, j >>= 1) r = (r << 1) | (j & 1);
    return r;
}

/* Radix-2 decimation in time over n complex values at base[k * st] (re, im),
 * already in bit-reversed order; sign -1 forward, +1 inverse (unscaled). */
static void fft_inplace(float *base, int64_t st, int64_t n, int sign)
{
    for (int64_t h = 1; h < n; h *= 2) {
        // w_j = exp(sign * i * pi * j / h), by recurrence from w_1
        double c1 = cos(PI / (double)h), s1 = sign * sin(PI / (double)h);
        double wr = 1, wi = 0;
        for (int64_t j = 0; j < h; j++) {
            for (int64_t b = j; b < n; b += 2 * h) {
                float *p = base + b * st, *q = base + (b + h) * st;
                double tr = wr * q[0] - wi * q[1], ti = wr * q[1] + wi * q[0];
                double pr = p[0], pi = p[1];
                p[0] = (float)(pr + tr), p[1] = (float)(pi + ti);
                q[0] = (float)(pr - tr), q[1] = (float)(pi - ti);
            }
            double t = wr * c1 - wi * s1;
            wi = wr * s1 + wi * c1, wr = t;
        }
    }
}

/* Bins k < n_out of the length-L transform of xs (n samples, the rest zero),
 * summed directly in double. */
static void dft_direct(float *ys, int64_t yst, const float *xs, int64_t xst, int cin, int64_t n,
                       int64_t L, int64_t n_out, int sign)
{
    for (int64_t k = 0; k < n_out; k++) {
        // step exp(sign * 2 pi i k / L), k reduced mod L first for an exact angle
        double a = sign * 2 * PI * (double)(k % L) / (double)L;
        double c1 = cos(a), s1 = sin(a), wr = 1, wi = 0, sr = 0, si = 0;
        for (int64_t j = 0; j < n; j++) {
            double xr = xs[j * xst], xi = cin == 2 ? xs[j * xst + 1] : 0;
            sr += xr * wr - xi * wi, si += xr * wi + xi * wr;
            double t = wr * c1 - wi * s1;
            wi = wr * s1 + wi * c1, wr = t;
        }
        ys[k * yst] = (float)sr, ys[k * yst + 1] = (float)si;
    }
}

typedef struct {
    float *y;
    const float *x;
    int64_t n_in, inner, L;
    int cin, onesided, inverse;
} Dft;

/* Transforms [lo, hi) of the outer * inner ones. */
static void dft_lines(void *arg, int64_t lo, int64_t hi, int tid)
{
    const Dft *a = arg;
    float *y = a->y;
    const float *x = a->x;
    int64_t n_in = a->n_in, inner = a->inner, L = a->L, n_out = a->onesided ? L / 2 + 1 : L;
    int64_t n = n_in < L ? n_in : L;
    int cin = a->cin, inverse = a->inverse, sign = inverse ? 1 : -1;
    int64_t xst = inner * cin, yst = inner * 2; // element strides along the transform axis
    int full = is_pow2(L) && n_out == L, half = is_pow2(L) && n_out < L && cin == 1;
    for (int64_t line = lo; line < hi; line++) {
        int64_t o = line / inner, i = line % inner;
        const float *xs = x + (o * n_in * inner + i) * cin;
        float *ys = y + (o * n_out * inner + i) * 2;
        if (full) {
            int bits = 0;
            while ((int64_t)1 << bits < L) bits++;
            for (int64_t j = 0; j < L; j++) {
                float *d = ys + bit_reverse(j, bits) * yst;
                d[0] = j < n ? xs[j * xst] : 0;
                d[1] = j < n && cin == 2 ? xs[j * xst + 1] : 0;
            }
            fft_inplace(ys, yst, L, sign);
        } else if (half) {
            // z[j] = x[2j] + i x[2j+1], FFT of length h, then with
            // E = (Z[k] + conj Z[h-k]) / 2, O = (Z[k] - conj Z[h-k]) / 2i:
            // X[k] = E + W^k O and X[h-k] = conj(E - W^k O), W = exp(sign 2 pi i / L)
            int64_t h = L / 2;
            int bits = 0;
            while ((int64_t)1 << bits < h) bits++;
            for (int64_t j = 0; j < h; j++) {
                float *d = ys + bit_reverse(j, bits) * yst;
                d[0] = 2 * j < n ? xs[2 * j * xst] : 0;
                d[1] = 2 * j + 1 < n ? xs[(2 * j + 1) * xst] : 0;
            }
            fft_inplace(ys, yst, h, sign);
            double z0r = ys[0], z0i = ys[1];
            ys[0] = (float)(z0r + z0i), ys[1] = 0;
            ys[h * yst] = (float)(z0r - z0i), ys[h * yst + 1] = 0;
            for (int64_t k = 1; k <= h / 2; k++) {
                float *p = ys + k * yst, *q = ys + (h - k) * yst;
                double ar = p[0], ai = p[1], br = q[0], bi = -q[1]; // Z[k], conj Z[h-k]
                double er = (ar + br) / 2, ei = (ai + bi) / 2;
                double or_ = (ai - bi) / 2, oi = -(ar - br) / 2;     // (a - b) / 2i
                double ang = sign * 2 * PI * (double)k / (double)L;
                double wr = cos(ang), wi = sin(ang);
                double tr = wr * or_ - wi * oi, ti = wr * oi + wi * or_;
                p[0] = (float)(er + tr), p[1] = (float)(ei + ti);
                if (q != p) q[0] = (float)(er - tr), q[1] = (float)-(ei - ti);
            }
        } else {
            dft_direct(ys, yst, xs, xst, cin, n, L, n_out, sign);
        }
        if (inverse) {
            float s = (float)(1.0 / (double)L);
            for (int64_t k = 0; k < n_out; k++) ys[k * yst] *= s, ys[k * yst + 1] *= s;
        }
    }
}

void k_dft_f32(float *y, const float *x, int64_t outer, int64_t n_in, int64_t inner, int cin,
               int64_t length, int onesided, int inverse)
{
    // x is (outer, n_in, inner, cin), y is (outer, n_out, inner, 2)
    Dft a = {y, x, n_in, inner, length, cin, onesided, inverse};
    k_par_for(outer * inner, outer * inner * length * 8, dft_lines, &a);
}
