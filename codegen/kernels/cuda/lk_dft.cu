/* ONNX DFT (lk.cuh) on the GPU: through cuFFT, or by the direct sum.
 *
 * cuFFT. Each line of x [outer, n_in, inner, cin] along the transform axis
 * is one of a batch of 1-D transforms, in cuFFT's advanced layout (element
 * stride inner, and between lines either n_in * inner, the batch running
 * over `outer` and one execution per inner index, or 1, the batch running
 * over `inner` and one execution per outer index: whichever executes
 * fewer times). Complex input (cin 2) with every bin is a C2C transform,
 * forward or inverse. Real input (cin 1) is an R2C transform, which writes
 * bins 0 .. length/2; a full output then gets the rest as the conjugates of
 * those (x real: X[L-k] = conj X[k]), and an inverse one is the conjugate
 * of the forward transform (x real). An inverse is scaled by 1/length after
 * the transform, as kdft.c does. A signal shorter than length is copied,
 * zero-padded, into the workspace first; a longer one is truncated by the
 * layout alone (cuFFT reads the first length samples of each line).
 *
 * The plans are made at a shape's first call and kept for the program's
 * life, without cuFFT's own work area (cufftSetAutoAllocation 0): each call
 * gives it the workspace the memory plan reserved (lk_dft_f32_ws: the
 * transform's complex data once, four times for a length with a prime
 * factor above 7, which cuFFT computes by Bluestein's algorithm, from a
 * 256-byte boundary). Where the
 * plan wants more than that, or cuFFT cannot plan the shape, the direct
 * kernel below runs instead, and the program says so once per shape on
 * stderr. cuFFT's twiddle tables live in device memory it allocates itself
 * at plan time, outside the arena (a few floats per point of length).
 *
 * The direct sum: a thread per output bin sums its line's samples in double
 * with the twiddle advanced by a double-precision recurrence, as kdft.c's
 * dft_direct (k reduced mod length first, for an exact angle); the inverse
 * scales the float result by 1/length as kdft.c does. O(length * bins) a
 * line: it serves complex input with onesided set (no cuFFT form writes
 * only half of a complex transform's bins in place) and the fallback. */
#include "lk.cuh"

#include <cufft.h>
#include <stdio.h>

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

static int direct(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t n_in, int64_t inner, int cin,
                  int64_t L, int64_t n_out, int inverse)
{
    int64_t total = outer * n_out * inner;
    return LOOM_LAUNCH(dft_direct, lk_blocks(total), LK_THREADS, 0, s, y, x, outer, n_in, inner, cin, L, n_out,
                       inverse);
}

/* xp [outer, L, inner, cin]: x's first min(n_in, L) samples of each line, then zeros */
static __global__ void dft_pad(float *xp, const float *x, int64_t outer, int64_t n_in, int64_t inner, int cin,
                               int64_t L)
{
    int64_t row = inner * cin, total = outer * L * row;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = e % row, j = e / row % L, o = e / row / L;
        xp[e] = j < n_in ? x[(o * n_in + j) * row + r] : 0.0f;
    }
}

/* After an R2C transform into y [outer, n_out, inner, 2], which wrote bins
 * 0 .. L/2: a thread per (o, k <= L/2, i) takes bin k, conjugates it for an
 * inverse, scales it by `scale`, writes it back and, for a full output,
 * writes its conjugate to bin L - k (bins above L/2, which no thread reads).
 * After a C2C inverse (half 0): the scaling alone, over every bin. */
static __global__ void dft_finish(float *y, int64_t outer, int64_t n_out, int64_t inner, int64_t L, int half,
                                  int conj, float scale)
{
    int64_t nk = half ? L / 2 + 1 : n_out, total = outer * nk * inner;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e % inner, k = e / inner % nk, o = e / inner / nk;
        float *p = y + ((o * n_out + k) * inner + i) * 2;
        float re = p[0], im = conj ? -p[1] : p[1];
        p[0] = re * scale, p[1] = im * scale;
        if (half && n_out == L && k > 0 && L - k > L / 2) {
            float *q = y + ((o * n_out + (L - k)) * inner + i) * 2;
            q[0] = re * scale, q[1] = -im * scale;
        }
    }
}

/* ---- cuFFT plans ---- */

/* A line's transform as cuFFT is told it: type, length, batch, strides and
 * distances (in the input's and the output's own elements), and how many
 * executions, each `ishift`/`oshift` elements on from the one before. */
typedef struct {
    cufftType type;
    long long L, batch, istride, idist, ostride, odist, execs, ishift, oshift;
    cufftHandle h;
    size_t work;
    int ok; /* planned, and its work area fits the reserve */
} Plan;

#define PLANS 64 /* past this many shapes, the direct kernel runs */
static Plan plans[PLANS];
static int nplans;

static int smooth(int64_t L)
{
    for (int64_t f = 2; f <= 7; f++)
        while (L % f == 0) L /= f;
    return L == 1;
}

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

/* the zero-padded copy of x, when the signal is shorter than the transform */
static size_t pad_bytes(int64_t outer, int64_t n_in, int64_t inner, int cin, int64_t L)
{
    return n_in < L ? align256((size_t)(outer * L * inner * cin) * sizeof(float)) : 0;
}

static int uses_fft(int cin, int onesided) { return cin == 1 || !onesided; }

size_t lk_dft_f32_ws(int64_t outer, int64_t n_in, int64_t inner, int cin, int64_t length, int onesided, int inverse)
{
    (void)inverse;
    if (!uses_fft(cin, onesided)) return 0;
    size_t data = (size_t)(outer * inner * length) * 2 * sizeof(float);
    return pad_bytes(outer, n_in, inner, cin, length) + 256 + (smooth(length) ? data : 4 * data);
}

static const char *fft_error(cufftResult r)
{
    switch (r) {
    case CUFFT_ALLOC_FAILED: return "out of memory";
    case CUFFT_INVALID_SIZE: return "invalid size";
    case CUFFT_INVALID_VALUE: return "invalid value";
    case CUFFT_NOT_SUPPORTED: return "not supported";
    case CUFFT_EXEC_FAILED: return "execution failed";
    case CUFFT_SETUP_FAILED: return "setup failed (check the GPU and driver)";
    case CUFFT_UNALIGNED_DATA: return "unaligned data";
    default: return "error";
    }
}

/* The plan for key's shape, made at its first call; NULL when the direct
 * kernel is to run (cuFFT could not plan it, its work area is above
 * reserve, or the table is full). */
static Plan *plan_for(const Plan *key, size_t reserve)
{
    for (int i = 0; i < nplans; i++) {
        Plan *p = &plans[i];
        if (p->type == key->type && p->L == key->L && p->batch == key->batch && p->istride == key->istride &&
            p->idist == key->idist && p->ostride == key->ostride && p->odist == key->odist)
            return p->ok && p->work <= reserve ? p : NULL;
    }
    if (nplans == PLANS) return NULL;
    Plan *p = &plans[nplans++];
    *p = *key;
    p->h = CUFFT_PLAN_NULL;
    long long n = p->L, inembed = p->L, onembed = p->L; /* 1-D: only their presence counts (advanced layout) */
    cufftResult r = cufftCreate(&p->h);
    if (r == CUFFT_SUCCESS) r = cufftSetAutoAllocation(p->h, 0);
    if (r == CUFFT_SUCCESS)
        r = cufftMakePlanMany64(p->h, 1, &n, &inembed, p->istride, p->idist, &onembed, p->ostride, p->odist, p->type,
                                p->batch, &p->work);
    p->ok = r == CUFFT_SUCCESS;
    if (!p->ok && p->h != CUFFT_PLAN_NULL) cufftDestroy(p->h), p->h = CUFFT_PLAN_NULL;
    if (!p->ok)
        fprintf(stderr, "loom: DFT of length %lld x %lld: cuFFT could not plan it (%s); the direct sum runs instead\n",
                n, p->batch, fft_error(r));
    else if (p->work > reserve)
        fprintf(stderr, "loom: DFT of length %lld x %lld: cuFFT wants %zu bytes of work area and the plan has %zu; "
                "the direct sum runs instead\n", n, p->batch, p->work, reserve);
    return p->ok && p->work <= reserve ? p : NULL;
}

static int fft_check(cufftResult r, int line, const char *call)
{
    if (r == CUFFT_SUCCESS) return 0;
    return rt_fail("%s:%d: %s: cuFFT: %s", __FILE__, line, call, fft_error(r));
}
#define FFT(call) fft_check((call), __LINE__, #call)

int lk_dft_f32(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t n_in, int64_t inner, int cin,
               int64_t length, int onesided, int inverse, void *ws)
{
    int64_t L = length, n_out = onesided ? L / 2 + 1 : L, total = outer * n_out * inner;
    if (total == 0) return 0;
    if (!uses_fft(cin, onesided)) return direct(s, y, x, outer, n_in, inner, cin, L, n_out, inverse);
    size_t pad = pad_bytes(outer, n_in, inner, cin, L);
    size_t reserve = lk_dft_f32_ws(outer, n_in, inner, cin, L, onesided, inverse) - pad - 256;
    void *work = (void *)(((uintptr_t)ws + pad + 255) / 256 * 256); /* 256-aligned, as cudaMalloc's */
    Plan key = {};
    key.type = cin == 2 ? CUFFT_C2C : CUFFT_R2C;
    key.L = L;
    int64_t n_line = n_in < L ? L : n_in; /* samples a line holds where cuFFT reads it */
    if (inner <= outer) /* the batch over outer; an execution per inner index */
        key.batch = outer, key.idist = n_line * inner, key.odist = n_out * inner, key.execs = inner;
    else /* the batch over inner; an execution per outer index */
        key.batch = inner, key.idist = 1, key.odist = 1, key.execs = outer;
    key.istride = key.ostride = inner;
    key.ishift = inner <= outer ? 1 : n_line * inner;
    key.oshift = inner <= outer ? 1 : n_out * inner;
    Plan *p = plan_for(&key, reserve);
    if (!p) return direct(s, y, x, outer, n_in, inner, cin, L, n_out, inverse);
    const float *src = x;
    if (pad) {
        float *xp = (float *)ws;
        if (LOOM_LAUNCH(dft_pad, lk_blocks(outer * L * inner * cin), LK_THREADS, 0, s, xp, x, outer, n_in, inner,
                        cin, L))
            return -1;
        src = xp;
    }
    if (FFT(cufftSetStream(p->h, s)) || FFT(cufftSetWorkArea(p->h, work))) return -1;
    for (long long e = 0; e < key.execs; e++) {
        /* elements of the input's type (complex or real) and of the output's (complex) */
        float *in = (float *)src + e * key.ishift * cin, *out = y + e * key.oshift * 2;
        if (cin == 2 ? FFT(cufftExecC2C(p->h, (cufftComplex *)in, (cufftComplex *)out,
                                         inverse ? CUFFT_INVERSE : CUFFT_FORWARD))
                     : FFT(cufftExecR2C(p->h, (cufftReal *)in, (cufftComplex *)out)))
            return -1;
    }
    int half = cin == 1, conj = cin == 1 && inverse;
    if (!inverse && !(half && n_out == L)) return 0; /* cuFFT wrote every bin as it stays */
    float scale = inverse ? (float)(1.0 / (double)L) : 1.0f;
    int64_t nk = half ? L / 2 + 1 : n_out;
    return LOOM_LAUNCH(dft_finish, lk_blocks(outer * nk * inner), LK_THREADS, 0, s, y, outer, n_out, inner, L, half,
                       conj, scale);
}
