/* The figures of the "cpu" hardware profile (optimizer/hwprofile.c), measured
 * on the machine that runs this:
 *
 *   cc -O3 -march=native -fopenmp bench/cpu_device.c -lopenblas -o build/cpu_device
 *   GOMP_SPINCOUNT=100000 build/cpu_device > cpu.json   # a device file based on "cpu"
 *
 * It prints, on stdout, a device override file (docs/cli.md, "hardware
 * profiles") based on "cpu", and on stderr each figure with how it was taken.
 * Every figure is the median of 7 timed rounds after a warm-up, on all the
 * threads OpenMP gives (as generated programs run), each thread working on its
 * own block the way loom's kernels split work:
 *   flops_f32   cblas_sgemm of 1536x1536x1536, rows split over the threads,
 *               OpenBLAS on each calling thread (what k_sgemm does)
 *   flops_f64   the same with cblas_dgemm
 *   vec_flops   a fused elementwise loop, y = ((a x + b) x + c) x + d (6 FLOP
 *               per element), over 16 KiB per thread, in cache
 *   mem_bw      a STREAM triad, a[i] = b[i] + s c[i], over 3 x 128 MiB,
 *               counting the 3 x 4 bytes each element moves
 *   link_bw     memcpy of 256 MiB on one thread (bytes copied per second)
 *   launch_s    an empty OpenMP parallel region (workers spinning, as the
 *               programs set GOMP_SPINCOUNT)
 *   mem_bytes   sysconf: physical pages x page size
 * There is no half-precision or int8 matrix unit on a plain x86 core that loom
 * uses: its cpu kernels widen to float32, so those peaks are the float32 one. */
#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 7

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median over ROUNDS of the seconds fn(arg) takes, after one warm-up. */
static double median_time(void (*fn)(void *), void *arg)
{
    double t[ROUNDS];
    fn(arg);
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now();
        fn(arg);
        t[r] = now() - t0;
    }
    qsort(t, ROUNDS, sizeof *t, cmp);
    return t[ROUNDS / 2];
}

enum { GEMM_N = 1536 };

typedef struct {
    void *a, *b, *y;
} Gemm;

static void sgemm(void *p)
{
    Gemm *g = p;
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int lo = GEMM_N * t / nt, hi = GEMM_N * (t + 1) / nt;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hi - lo, GEMM_N, GEMM_N, 1.0f,
                    (float *)g->a + (size_t)lo * GEMM_N, GEMM_N, g->b, GEMM_N, 0.0f,
                    (float *)g->y + (size_t)lo * GEMM_N, GEMM_N);
    }
}

static void dgemm(void *p)
{
    Gemm *g = p;
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int lo = GEMM_N * t / nt, hi = GEMM_N * (t + 1) / nt;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hi - lo, GEMM_N, GEMM_N, 1.0,
                    (double *)g->a + (size_t)lo * GEMM_N, GEMM_N, g->b, GEMM_N, 0.0,
                    (double *)g->y + (size_t)lo * GEMM_N, GEMM_N);
    }
}

enum { VEC_N = 4096, VEC_REPS = 4000 };

static void vec(void *p)
{
    float *buf = p;
#pragma omp parallel
    {
        float *x = buf + (size_t)omp_get_thread_num() * 2 * VEC_N, *y = x + VEC_N;
        for (int r = 0; r < VEC_REPS; r++) {
            // y is (VEC_N): a cubic of x, 6 FLOP per element
            for (int i = 0; i < VEC_N; i++) y[i] = ((0.5f * x[i] + 0.25f) * x[i] + 0.125f) * x[i] + 1.0f;
            __asm__ volatile("" : : "r"(y) : "memory"); // keep every round
        }
    }
}

enum { STREAM_N = 32 << 20 };

static void triad(void *p)
{
    float *a = p, *b = a + STREAM_N, *c = b + STREAM_N;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < STREAM_N; i++) a[i] = b[i] + 3.0f * c[i];
}

enum { COPY_BYTES = 256 << 20 };

static void copy(void *p)
{
    char *src = p;
    memcpy(src + COPY_BYTES, src, COPY_BYTES);
}

enum { REGIONS = 100000 };

static void regions(void *p)
{
    int *sink = p;
    for (int r = 0; r < REGIONS; r++) {
#pragma omp parallel
        {
            if (omp_get_thread_num() == 0) (*sink)++;
        }
    }
}

int main(void)
{
    if (!getenv("GOMP_SPINCOUNT") && !getenv("OMP_WAIT_POLICY"))
        fprintf(stderr, "note: the programs run with GOMP_SPINCOUNT=100000; set it for their launch cost\n");
    openblas_set_num_threads(1);
    int threads = omp_get_max_threads();
    size_t gemm_bytes = (size_t)GEMM_N * GEMM_N * sizeof(double);
    Gemm g = {malloc(gemm_bytes), malloc(gemm_bytes), malloc(gemm_bytes)};
    float *vbuf = malloc((size_t)threads * 2 * VEC_N * sizeof *vbuf);
    float *sbuf = malloc((size_t)3 * STREAM_N * sizeof *sbuf);
    char *cbuf = malloc((size_t)2 * COPY_BYTES);
    int sink = 0;
    if (!g.a || !g.b || !g.y || !vbuf || !sbuf || !cbuf) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)GEMM_N * GEMM_N; i++) {
        ((double *)g.a)[i] = (double)(i % 7) * 0.1;
        ((double *)g.b)[i] = (double)(i % 5) * 0.1;
    }
    for (size_t i = 0; i < (size_t)threads * 2 * VEC_N; i++) vbuf[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)3 * STREAM_N; i++) sbuf[i] = 1.0f;
    memset(cbuf, 1, (size_t)2 * COPY_BYTES);

    double gemm_flops = 2.0 * GEMM_N * GEMM_N * GEMM_N;
    double f64 = gemm_flops / median_time(dgemm, &g);
    for (size_t i = 0; i < (size_t)GEMM_N * GEMM_N; i++) {
        ((float *)g.a)[i] = (float)(i % 7) * 0.1f;
        ((float *)g.b)[i] = (float)(i % 5) * 0.1f;
    }
    double f32 = gemm_flops / median_time(sgemm, &g);
    double vflops = 6.0 * VEC_N * VEC_REPS * threads / median_time(vec, vbuf);
    double bw = 12.0 * STREAM_N / median_time(triad, sbuf);
    double link = (double)COPY_BYTES / median_time(copy, cbuf);
    double launch = median_time(regions, &sink) / REGIONS;
    long long mem = (long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGE_SIZE);

    fprintf(stderr, "threads    %d\n", threads);
    fprintf(stderr, "sgemm      %.1f GFLOP/s (%dx%dx%d)\n", f32 * 1e-9, GEMM_N, GEMM_N, GEMM_N);
    fprintf(stderr, "dgemm      %.1f GFLOP/s\n", f64 * 1e-9);
    fprintf(stderr, "vector     %.1f GFLOP/s (fused cubic in cache)\n", vflops * 1e-9);
    fprintf(stderr, "triad      %.2f GB/s\n", bw * 1e-9);
    fprintf(stderr, "memcpy     %.2f GB/s\n", link * 1e-9);
    fprintf(stderr, "region     %.3f us\n", launch * 1e6);
    fprintf(stderr, "memory     %lld bytes\n", mem);
    printf("{\n  \"base\": \"cpu\",\n");
    printf("  \"what\": \"this machine, %d threads, measured by bench/cpu_device.c\",\n", threads);
    printf("  \"flops_f32\": %.4g,\n  \"flops_bf16\": %.4g,\n  \"flops_f16\": %.4g,\n", f32, f32, f32);
    printf("  \"flops_f64\": %.4g,\n  \"flops_i8\": %.4g,\n  \"vec_flops_f32\": %.4g,\n", f64, f32, vflops);
    printf("  \"mem_bw\": %.4g,\n  \"link_bw\": %.4g,\n  \"launch_s\": %.3g,\n  \"mem_bytes\": %lld\n}\n", bw,
           link, launch, mem);
    free(g.a);
    free(g.b);
    free(g.y);
    free(vbuf);
    free(sbuf);
    free(cbuf);
    return sink == 0; /* the regions ran */
}
