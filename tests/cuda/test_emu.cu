/* The host emulator (codegen/kernels/cuda/emu.h) against plain loops:
 * kernels that use __shared__ arrays, __syncthreads, every warp shuffle,
 * dynamic shared memory and atomicAdd must compute what the loop computes,
 * and host code that touches device memory must be stopped (the tensor
 * cores' products, lk_mma.cuh, are shuffles the emulator runs as any:
 * tests/gpu/test_kernels.cu checks their layout against a GPU's). Built by
 * tests/cuda/run.sh with g++ -DLOOM_EMU (and by nvcc, compile only, so the
 * kernels stay real CUDA). Prints PASS/FAIL lines. */
#include "lk.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void check(const char *name, int ok)
{
    printf("%s %s\n", ok ? "PASS" : "FAIL", name);
    failures += !ok;
}

/* each block reverses its slice of x through shared memory, then writes the
 * block's sum: a tree in shared memory, a barrier per level */
static __global__ void reverse_and_sum(float *y, float *sums, const float *x)
{
    __shared__ float buf[128];
    int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    buf[t] = x[base + t];
    __syncthreads();
    y[base + t] = buf[blockDim.x - 1 - t];
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) buf[t] += buf[t + s];
        __syncthreads();
    }
    if (t == 0) sums[blockIdx.x] = buf[0];
}

/* per warp: a butterfly sum (xor), a tree sum (down), an inclusive scan (up),
 * lane 5's value to all (idx), and an 8-wide segmented xor */
static __global__ void shuffles(int *out, const int *x)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x, v = x[i], lane = threadIdx.x & 31;
    int bfly = v, tree = v, scan = v;
    for (int o = 16; o > 0; o >>= 1) bfly += __shfl_xor_sync(0xffffffffu, bfly, o);
    for (int o = 16; o > 0; o >>= 1) tree += __shfl_down_sync(0xffffffffu, tree, o);
    for (int o = 1; o < 32; o <<= 1) {
        int u = __shfl_up_sync(0xffffffffu, scan, o);
        if (lane >= o) scan += u;
    }
    int b5 = __shfl_sync(0xffffffffu, v, 5);
    int seg = v;
    for (int o = 4; o > 0; o >>= 1) seg += __shfl_xor_sync(0xffffffffu, seg, o, 8);
    out[5 * i] = bfly, out[5 * i + 1] = tree, out[5 * i + 2] = scan, out[5 * i + 3] = b5, out[5 * i + 4] = seg;
}

/* dynamic shared memory: each thread writes its slot, reads its neighbour's */
static __global__ void rotate(float *y, const float *x)
{
    LOOM_DYN_SHARED(float, s);
    int t = threadIdx.x, n = blockDim.x;
    s[t] = x[blockIdx.x * n + t];
    __syncthreads();
    y[blockIdx.x * n + t] = s[(t + 1) % n];
}

static __global__ void histogram(int *h, const int *x, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) atomicAdd(&h[x[i]], 1);
}

template <class T> static T *dev(const T *h, size_t n)
{
    void *p;
    if (cudaMalloc(&p, n * sizeof(T)) || cudaMemcpy(p, h, n * sizeof(T), cudaMemcpyHostToDevice)) abort();
    return (T *)p;
}

template <class T> static void host(T *h, const T *d, size_t n)
{
    if (cudaMemcpy(h, d, n * sizeof(T), cudaMemcpyDeviceToHost)) abort();
}

int main(void)
{
    cudaStream_t s = 0;
    enum { B = 6, T = 128 };
    float x[B * T], y[B * T], sums[B];
    for (int i = 0; i < B * T; i++) x[i] = (float)((i * 37) % 101) - 50;
    float *dx = dev(x, B * T), *dy = dev(y, B * T), *ds = dev(sums, B);
    int ok = LOOM_LAUNCH(reverse_and_sum, B, T, 0, s, dy, ds, dx) == 0;
    host(y, dy, B * T), host(sums, ds, B);
    for (int b = 0; b < B; b++) {
        float want = 0;
        for (int t = 0; t < T; t++) want += x[b * T + t], ok &= y[b * T + t] == x[b * T + T - 1 - t];
        ok &= sums[b] == want;
    }
    check("emu_shared_syncthreads", ok);

    enum { W = 96 }; /* three warps in a block, two blocks */
    int xi[2 * W], out[2 * W * 5];
    for (int i = 0; i < 2 * W; i++) xi[i] = (i * 7919) % 61 - 30;
    int *dxi = dev(xi, 2 * W), *dout = dev(out, 2 * W * 5);
    ok = LOOM_LAUNCH(shuffles, 2, W, 0, s, dout, dxi) == 0;
    host(out, dout, 2 * W * 5);
    for (int i = 0; i < 2 * W; i++) {
        int w0 = i / 32 * 32, lane = i % 32, sum = 0, tail = 0, scan = 0, seg = 0;
        for (int l = 0; l < 32; l++) sum += xi[w0 + l];
        for (int l = lane; l < 32; l++) tail += xi[w0 + l]; /* down: lane gets the sum from itself up */
        for (int l = 0; l <= lane; l++) scan += xi[w0 + l];
        for (int l = lane / 8 * 8; l < lane / 8 * 8 + 8; l++) seg += xi[w0 + l];
        /* the tree with shfl_down: only lane 0's is the warp sum; each lane's
         * is the sum of the lanes its offsets reached, which the loop below recomputes */
        int tv[32];
        for (int l = 0; l < 32; l++) tv[l] = xi[w0 + l];
        for (int o = 16; o > 0; o >>= 1) {
            int nv[32];
            for (int l = 0; l < 32; l++) nv[l] = tv[l] + (l + o < 32 ? tv[l + o] : tv[l]);
            for (int l = 0; l < 32; l++) tv[l] = nv[l];
        }
        (void)tail;
        ok &= out[5 * i] == sum && out[5 * i + 1] == tv[lane] && out[5 * i + 2] == scan &&
              out[5 * i + 3] == xi[w0 + 5] && out[5 * i + 4] == seg;
    }
    check("emu_warp_shuffles", ok);

    ok = LOOM_LAUNCH(rotate, B, T, T * sizeof(float), s, dy, dx) == 0;
    host(y, dy, B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) ok &= y[b * T + t] == x[b * T + (t + 1) % T];
    check("emu_dynamic_shared", ok);

    enum { N = 1000, K = 7 };
    int hx[N], hist[K] = {0}, want[K] = {0};
    for (int i = 0; i < N; i++) hx[i] = (i * i) % K, want[hx[i]]++;
    int *dhx = dev(hx, N), *dh = dev(hist, K);
    ok = LOOM_LAUNCH(histogram, 3, 64, 0, s, dh, dhx, (int)N) == 0;
    host(hist, dh, K);
    for (int k = 0; k < K; k++) ok &= hist[k] == want[k];
    check("emu_atomic_add", ok);


#ifdef LOOM_EMU
    /* host code reading device memory is stopped, as a GPU program would crash */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", 1);
        dup2(fd, 2);
        volatile float v = dx[3];
        (void)v;
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    check("emu_host_touch_refused", WIFEXITED(st) && WEXITSTATUS(st) == 134);
#endif
    return failures ? 1 : 0;
}
