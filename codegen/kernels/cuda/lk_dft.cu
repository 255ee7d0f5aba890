/* ONNX DFT (lk.cuh) on the GPU, by the direct sum: a thread per output bin
 * sums its line's samples in double with the twiddle advanced by a
 * double-precision recurrence, as kdft.c's dft_direct (k reduced mod length
 * first, for an exact angle); the inverse scales the float result by
 * 1/length as kdft.c does. O(length * bins) a line, which is cheap at the
 * lengths of a spectral layer (tens of points) and slow at thousands: cuFFT
 * is the fast path still to take. */
#include "lk.cuh"

static __global__ void dft_direct(float *y, const float *x, int64_t outer, int64_t n_in, int64_t inner, int cin,
                                  int64_t L, int64_t n_out, int inverse)
{
    // y (outer, n_out, inner, 2): a thread per (o, k, i)
    const double PI = 3.14159265358979323846;
    int64_t total = outer * n_out * inner, n = n_in < L ? n_in : L, xst = inner * cin;
    int sign = inverse ? 1 : -1;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e % inner, k = e / inner % n_out, o = e / inner / n_out;
        const float *xs = x + (o * n_in * inner + i) * cin;
        double a = sign * 2 * PI * (double)(k % L) / (double)L;
        double c1 = cos(a), s1 = sin(a), wr = 1, wi = 0, sr = 0, si = 0;
        for (int64_t j = 0; j < n; j++) {
            double xr = xs[j * xst], xi = cin == 2 ? xs[j * xst + 1] : 0;
            sr += xr * wr - xi * wi, si += xr * wi + xi * wr;
            double t = wr * c1 - wi * s1;
            wi = wr * s1 + wi * c1, wr = t;
        }
        float yr = (float)sr, yi = (float)si;
        if (inverse) {
            float sc = (float)(1.0 / (double)L);
            yr *= sc, yi *= sc;
        }
        y[2 * e] = yr, y[2 * e + 1] = yi;
    }
}

int lk_dft_f32(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t n_in, int64_t inner, int cin,
               int64_t length, int onesided, int inverse)
{
    int64_t n_out = onesided ? length / 2 + 1 : length, total = outer * n_out * inner;
    if (total == 0) return 0;
    return LOOM_LAUNCH(dft_direct, lk_blocks(total), LK_THREADS, 0, s, y, x, outer, n_in, inner, cin, length, n_out,
                       inverse);
}
