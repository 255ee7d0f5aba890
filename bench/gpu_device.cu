/* A hardware profile measured on this machine's GPU, as bench/cpu_device.c
 * measures the cpu one: it prints, on stdout, a device file (docs/cli.md,
 * "hardware profiles") based on the built-in profile of this GPU, which
 * `loom plan` and `loom compile` take with --device FILE, and on stderr
 * each figure with how it was taken.
 *
 *   nvcc -std=c++17 -O2 -arch=sm_90 -D_GNU_SOURCE -Icodegen/kernels/cuda -Iruntime bench/gpu_device.cu \
 *        codegen/kernels/cuda/lk_gemm.cu runtime/rt_cuda.cu build/rel/libloomrt.a -lcublasLt -lcudart \
 *        -o gpu_device
 *   ./gpu_device [--base NAME] > device.json
 *
 * tests/gpu/run.sh builds and runs it. Every figure is the median of 7
 * timed rounds after a warm-up, timed with CUDA events on the stream that
 * runs the work:
 *   mem_bw      a copy kernel over 1 GiB (16 bytes a thread, as the
 *               generated loops' widest loads), counting read and write
 *   link_bw     pinned host memory <-> device, 256 MiB a copy, the way
 *               offload copies (rt_cuda_copy_out / _in: cudaMemcpyAsync on
 *               their own streams): the slower direction while the other
 *               direction and a kernel on the compute stream run too, which
 *               is how a training step's copies meet each other and the
 *               step's work; each direction alone is printed beside it
 *   launch_s    the time per kernel of 2000 empty kernels launched back to
 *               back from the host (host issue and the GPU's gap together)
 *   flops_bf16  a cuBLASLt product of 8192 x 8192 x 8192 in bfloat16 with
 *               fp32 accumulation (lk_gemm_bf16, as the programs call it)
 *   flops_f32   the same product in float32 (CUBLAS_COMPUTE_32F, no TF32)
 *   mem_bytes   cudaMemGetInfo's total
 * The other fields stay the base profile's. The base is the built-in
 * profile that cudaGetDeviceProperties's name matches (H100 PCIe, H100
 * (SXM), H200, A100 by its memory size), or --base NAME. */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>

#include "lk.cuh"

#define ROUNDS 7
#define CHECK(call) \
    do { if (RT_CUDA(call)) { fprintf(stderr, "gpu_device: %s\n", rt_error()); exit(1); } } while (0)

static __global__ void copy16(float4 *y, const float4 *x, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = x[i];
}

static __global__ void empty_kernel(void) {}

static double median(double *t, int n)
{
    std::sort(t, t + n);
    return t[n / 2];
}

/* seconds of one round of `work` on stream s, by events */
template <class F> static double event_time(cudaStream_t s, F work)
{
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    double t[ROUNDS];
    work(); /* warm-up */
    for (int r = 0; r < ROUNDS; r++) {
        CHECK(cudaEventRecord(a, s));
        work();
        CHECK(cudaEventRecord(b, s));
        CHECK(cudaEventSynchronize(b));
        float ms;
        CHECK(cudaEventElapsedTime(&ms, a, b));
        t[r] = ms * 1e-3;
    }
    cudaEventDestroy(a), cudaEventDestroy(b);
    return median(t, ROUNDS);
}

static const char *base_of(const cudaDeviceProp &p)
{
    if (strstr(p.name, "H200")) return "h200";
    if (strstr(p.name, "H100")) return strstr(p.name, "PCIe") ? "h100-pcie" : "h100-sxm";
    if (strstr(p.name, "A100")) return p.totalGlobalMem > ((size_t)60 << 30) ? "a100-80gb" : "a100-40gb";
    return NULL;
}

int main(int argc, char **argv)
{
    const char *base = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--base") && i + 1 < argc) base = argv[++i];
        else return fprintf(stderr, "usage: gpu_device [--base NAME] > device.json\n"), 2;
    }
    if (rt_device_cuda.init()) return fprintf(stderr, "gpu_device: %s\n", rt_error()), 1;
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    if (!base) base = base_of(prop);
    if (!base)
        return fprintf(stderr, "gpu_device: no built-in profile matches '%s': give --base NAME (a100-40gb, "
                       "a100-80gb, h100-sxm, h100-pcie, h200)\n", prop.name), 1;
    cudaStream_t s = rt_cuda_stream(), up, down;
    CHECK(cudaStreamCreateWithFlags(&up, cudaStreamNonBlocking));
    CHECK(cudaStreamCreateWithFlags(&down, cudaStreamNonBlocking));

    /* device memory */
    const int64_t nbytes = (int64_t)1 << 30, n4 = nbytes / 16;
    float4 *x, *y;
    CHECK(cudaMalloc(&x, nbytes));
    CHECK(cudaMalloc(&y, nbytes));
    CHECK(cudaMemset(x, 0, nbytes));
    int sms = prop.multiProcessorCount;
    double t_copy = event_time(s, [&] { copy16<<<sms * 8, 256, 0, s>>>(y, x, n4); });
    double mem_bw = 2.0 * nbytes / t_copy;
    fprintf(stderr, "mem_bw      %.0f GB/s: a copy kernel over 1 GiB, %.3f ms (read + write)\n", mem_bw / 1e9,
            t_copy * 1e3);

    /* the host link: pinned buffers, each direction alone, then both at once beside a kernel */
    const size_t lbytes = (size_t)256 << 20;
    void *h_out, *h_in, *d_out, *d_in;
    CHECK(cudaHostAlloc(&h_out, lbytes, cudaHostAllocDefault));
    CHECK(cudaHostAlloc(&h_in, lbytes, cudaHostAllocDefault));
    memset(h_in, 0, lbytes);
    CHECK(cudaMalloc(&d_out, lbytes));
    CHECK(cudaMalloc(&d_in, lbytes));
    double t_d2h = event_time(down, [&] { CHECK(cudaMemcpyAsync(h_out, d_out, lbytes, cudaMemcpyDeviceToHost, down)); });
    double t_h2d = event_time(up, [&] { CHECK(cudaMemcpyAsync(d_in, h_in, lbytes, cudaMemcpyHostToDevice, up)); });
    /* both directions and a memory-bound kernel at once: each copy's own time, by events on its stream */
    double td[ROUNDS], tu[ROUNDS];
    cudaEvent_t e[6];
    for (int i = 0; i < 6; i++) CHECK(cudaEventCreate(&e[i]));
    int64_t busy = n4 / 4; /* a kernel that outlasts the copies: 64 copies of a quarter GiB */
    for (int r = -1; r < ROUNDS; r++) {
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaEventRecord(e[4], s));
        for (int k = 0; k < 64; k++) copy16<<<sms * 8, 256, 0, s>>>(y, x, busy);
        CHECK(cudaStreamWaitEvent(down, e[4], 0));
        CHECK(cudaStreamWaitEvent(up, e[4], 0));
        CHECK(cudaEventRecord(e[0], down));
        CHECK(cudaMemcpyAsync(h_out, d_out, lbytes, cudaMemcpyDeviceToHost, down));
        CHECK(cudaEventRecord(e[1], down));
        CHECK(cudaEventRecord(e[2], up));
        CHECK(cudaMemcpyAsync(d_in, h_in, lbytes, cudaMemcpyHostToDevice, up));
        CHECK(cudaEventRecord(e[3], up));
        CHECK(cudaEventRecord(e[5], s));
        CHECK(cudaDeviceSynchronize());
        float a, b, k;
        CHECK(cudaEventElapsedTime(&a, e[0], e[1]));
        CHECK(cudaEventElapsedTime(&b, e[2], e[3]));
        CHECK(cudaEventElapsedTime(&k, e[4], e[5]));
        if (r >= 0) td[r] = a * 1e-3, tu[r] = b * 1e-3;
        if (r == ROUNDS - 1 && k < std::max(a, b))
            fprintf(stderr, "            (the kernel beside the copies ended first: %.2f ms against %.2f / %.2f)\n", k,
                    a, b);
    }
    double both_d2h = lbytes / median(td, ROUNDS), both_h2d = lbytes / median(tu, ROUNDS);
    double link_bw = std::min(both_d2h, both_h2d);
    fprintf(stderr, "link_bw     %.1f GB/s: pinned copies of 256 MiB, both directions and a kernel at once "
            "(device->host %.1f, host->device %.1f GB/s); alone: device->host %.1f, host->device %.1f GB/s\n",
            link_bw / 1e9, both_d2h / 1e9, both_h2d / 1e9, lbytes / t_d2h / 1e9, lbytes / t_h2d / 1e9);

    /* launches, back to back from the host */
    const int nl = 2000;
    double tl[ROUNDS];
    for (int r = -1; r < ROUNDS; r++) {
        CHECK(cudaStreamSynchronize(s));
        double t0 = rt_now();
        for (int k = 0; k < nl; k++) empty_kernel<<<1, 32, 0, s>>>();
        CHECK(cudaStreamSynchronize(s));
        if (r >= 0) tl[r] = (rt_now() - t0) / nl;
    }
    double launch_s = median(tl, ROUNDS);
    fprintf(stderr, "launch_s    %.2f us: %d empty kernels launched back to back, wall time each\n", launch_s * 1e6, nl);

    /* products */
    const int64_t G = 8192;
    uint16_t *a16, *b16, *y16;
    float *a32, *b32, *y32;
    CHECK(cudaMalloc(&a16, G * G * 2));
    CHECK(cudaMalloc(&b16, G * G * 2));
    CHECK(cudaMalloc(&y16, G * G * 2));
    CHECK(cudaMemset(a16, 0x3c, G * G * 2)); /* bf16 0x3c3c: about 0.0115, no overflow in the sums */
    CHECK(cudaMemset(b16, 0x3c, G * G * 2));
    double t16 = event_time(s, [&] {
        if (lk_gemm_bf16(s, y16, a16, b16, 1, G, G, G, 0, 0, 1.0f, 0.0f, 0, 0, 0))
            fprintf(stderr, "gpu_device: %s\n", rt_error()), exit(1);
    });
    cudaFree(a16), cudaFree(b16), cudaFree(y16);
    CHECK(cudaMalloc(&a32, G * G * 4));
    CHECK(cudaMalloc(&b32, G * G * 4));
    CHECK(cudaMalloc(&y32, G * G * 4));
    CHECK(cudaMemset(a32, 0, G * G * 4));
    CHECK(cudaMemset(b32, 0, G * G * 4));
    double t32 = event_time(s, [&] {
        if (lk_gemm_f32(s, y32, a32, b32, NULL, 1, G, G, G, 0, 0, 1.0f, 0.0f, 0, 0, 0))
            fprintf(stderr, "gpu_device: %s\n", rt_error()), exit(1);
    });
    double fl = 2.0 * G * G * G, flops_bf16 = fl / t16, flops_f32 = fl / t32;
    fprintf(stderr, "flops_bf16  %.1f TFLOP/s: cuBLASLt, 8192^3 in bfloat16, fp32 accumulation, %.3f ms\n",
            flops_bf16 / 1e12, t16 * 1e3);
    fprintf(stderr, "flops_f32   %.1f TFLOP/s: cuBLASLt, 8192^3 in float32 (no TF32), %.3f ms\n", flops_f32 / 1e12,
            t32 * 1e3);
    size_t free_b, total_b;
    CHECK(cudaMemGetInfo(&free_b, &total_b));
    fprintf(stderr, "mem_bytes   %zu: cudaMemGetInfo's total\n", total_b);

    printf("{\n  \"base\": \"%s\",\n  \"name\": \"%s-measured\",\n", base, base);
    printf("  \"what\": \"%s, measured by bench/gpu_device.cu\",\n", prop.name);
    printf("  \"mem_bw\": %.4g,\n  \"link_bw\": %.4g,\n  \"launch_s\": %.4g,\n", mem_bw, link_bw, launch_s);
    printf("  \"flops_bf16\": %.4g,\n  \"flops_f32\": %.4g,\n  \"mem_bytes\": %zu\n}\n", flops_bf16, flops_f32, total_b);
    return 0;
}
