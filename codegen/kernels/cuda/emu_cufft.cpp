/* The cuFFT calls loom's DFT uses (lk_dft.cu), emulated on the host for
 * `make EMU=1`: a plan holds what the real library is told (1-D, C2C or
 * R2C, the advanced layout's strides and distances, the batch), and an
 * execution computes the transform as cuFFT defines it (unnormalized,
 * exp(-2 pi i jk/n) forward and exp(+2 pi i jk/n) inverse; R2C writes bins
 * 0 .. n/2) by the direct sum in double, so that the callers' layout
 * bookkeeping runs for real. The plan asks for a work area (the batch's
 * complex data, or LOOM_EMU_CUFFT_WORK bytes where that is set, so that a
 * test can make it too large for the caller's reserve), an execution
 * without one fails as cuFFT's does, and each execution first fills the
 * work area with NaN bytes, so that a work area that overlaps live data
 * shows. Anything else is refused with CUFFT_NOT_SUPPORTED. */
#include "emu.h"

#include <cufft.h>
#include <math.h>
#include <stdlib.h>
#include <vector>

void loom_emu_device_enter(void);
void loom_emu_device_leave(void);

namespace {

struct FftPlan {
    int live, made, autoalloc;
    cufftType type;
    long long n, istride, idist, ostride, odist, batch;
    size_t work;
    void *area;
};

std::vector<FftPlan> fft_plans;
long fft_execs;

FftPlan *plan_of(cufftHandle h)
{
    if (h < 0 || (size_t)h >= fft_plans.size() || !fft_plans[(size_t)h].live) return nullptr;
    return &fft_plans[(size_t)h];
}

/* one batch's transform, bins [0, nk), from in (complex when cplx, else real) */
void transform(const FftPlan *p, const float *in, float *out, int cplx, int sign, long long nk)
{
    const double PI = 3.14159265358979323846;
    long long n = p->n;
    std::vector<double> re((size_t)nk), im((size_t)nk);
    for (long long k = 0; k < nk; k++) {
        double sr = 0, si = 0;
        for (long long j = 0; j < n; j++) {
            double a = sign * 2 * PI * (double)(j * k % n) / (double)n;
            const float *x = in + (cplx ? 2 : 1) * j * p->istride;
            double xr = x[0], xi = cplx ? x[1] : 0;
            sr += xr * cos(a) - xi * sin(a), si += xr * sin(a) + xi * cos(a);
        }
        re[(size_t)k] = sr, im[(size_t)k] = si;
    }
    for (long long k = 0; k < nk; k++) {
        float *y = out + 2 * k * p->ostride;
        y[0] = (float)re[(size_t)k], y[1] = (float)im[(size_t)k];
    }
}

cufftResult exec(cufftHandle h, const float *in, float *out, cufftType type, int sign)
{
    FftPlan *p = plan_of(h);
    if (!p || !p->made) return CUFFT_INVALID_PLAN;
    if (p->type != type) return CUFFT_INVALID_TYPE;
    if (p->work && !p->autoalloc && !p->area) return CUFFT_INVALID_VALUE; /* no work area given */
    int cplx = type == CUFFT_C2C;
    long long nk = cplx ? p->n : p->n / 2 + 1;
    fft_execs++;
    loom_emu_device_enter();
    if (p->work && !p->autoalloc) memset(p->area, 0xff, p->work);
    for (long long b = 0; b < p->batch; b++)
        transform(p, in + (cplx ? 2 : 1) * b * p->idist, out + 2 * b * p->odist, cplx, sign, nk);
    loom_emu_device_leave();
    return CUFFT_SUCCESS;
}

} // namespace

extern "C" {

/* the executions so far, for tests that check which path a caller took */
long loom_emu_cufft_execs(void) { return fft_execs; }

cufftResult cufftCreate(cufftHandle *h)
{
    fft_plans.push_back(FftPlan{1, 0, 1, CUFFT_C2C, 0, 0, 0, 0, 0, 0, 0, nullptr});
    *h = (cufftHandle)(fft_plans.size() - 1);
    return CUFFT_SUCCESS;
}

cufftResult cufftDestroy(cufftHandle h)
{
    FftPlan *p = plan_of(h);
    if (!p) return CUFFT_INVALID_PLAN;
    p->live = 0;
    return CUFFT_SUCCESS;
}

cufftResult cufftSetAutoAllocation(cufftHandle h, int autoalloc)
{
    FftPlan *p = plan_of(h);
    if (!p) return CUFFT_INVALID_PLAN;
    p->autoalloc = autoalloc;
    return CUFFT_SUCCESS;
}

cufftResult cufftMakePlanMany64(cufftHandle h, int rank, long long *n, long long *inembed, long long istride,
                                long long idist, long long *onembed, long long ostride, long long odist,
                                cufftType type, long long batch, size_t *work)
{
    FftPlan *p = plan_of(h);
    if (!p) return CUFFT_INVALID_PLAN;
    if (rank != 1 || !n || n[0] < 1 || batch < 1) return CUFFT_INVALID_SIZE;
    if (type != CUFFT_C2C && type != CUFFT_R2C) return CUFFT_NOT_SUPPORTED;
    if (!inembed || !onembed) istride = ostride = 1, idist = n[0], odist = type == CUFFT_C2C ? n[0] : n[0] / 2 + 1;
    p->type = type, p->n = n[0], p->istride = istride, p->idist = idist, p->ostride = ostride, p->odist = odist;
    p->batch = batch;
    const char *w = getenv("LOOM_EMU_CUFFT_WORK");
    p->work = w ? (size_t)strtoull(w, nullptr, 10) : (size_t)(batch * n[0]) * 8;
    p->made = 1;
    if (work) *work = p->work;
    return CUFFT_SUCCESS;
}

cufftResult cufftSetWorkArea(cufftHandle h, void *area)
{
    FftPlan *p = plan_of(h);
    if (!p) return CUFFT_INVALID_PLAN;
    p->area = area;
    return CUFFT_SUCCESS;
}

cufftResult cufftSetStream(cufftHandle h, cudaStream_t s)
{
    (void)s;
    return plan_of(h) ? CUFFT_SUCCESS : CUFFT_INVALID_PLAN;
}

cufftResult cufftExecC2C(cufftHandle h, cufftComplex *in, cufftComplex *out, int direction)
{
    if (direction != CUFFT_FORWARD && direction != CUFFT_INVERSE) return CUFFT_INVALID_VALUE;
    return exec(h, (const float *)in, (float *)out, CUFFT_C2C, direction == CUFFT_FORWARD ? -1 : 1);
}

cufftResult cufftExecR2C(cufftHandle h, cufftReal *in, cufftComplex *out)
{
    return exec(h, (const float *)in, (float *)out, CUFFT_R2C, -1);
}

} /* extern "C" */
