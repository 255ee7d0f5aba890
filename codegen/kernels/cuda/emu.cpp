/* The host emulation of CUDA (emu.h): the launch of a kernel as fibers, the
 * barriers and shuffles between them, and the part of the CUDA runtime API
 * that loom's programs call, over host memory. Built only by `make EMU=1`
 * and the cuda test tier, with g++ (never by nvcc). */
/* Fibers switch with _setjmp/_longjmp between their own stacks, which
 * glibc's fortified longjmp (a check meant for one stack) would refuse. */
#undef _FORTIFY_SOURCE
#include "emu.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

/* ---- device memory: host pages readable only while the device works ---- */

struct Alloc {
    char *p;
    size_t len;
};
static Alloc *allocs;
static int nallocs, cap_allocs;
static int device_depth; /* > 0: a kernel, copy or product is running */

static void protect_all(int prot)
{
    for (int i = 0; i < nallocs; i++)
        if (mprotect(allocs[i].p, allocs[i].len, prot)) {
            perror("loom emu: mprotect");
            abort();
        }
}

void loom_emu_device_enter(void)
{
    if (device_depth++ == 0) protect_all(PROT_READ | PROT_WRITE);
}

void loom_emu_device_leave(void)
{
    if (--device_depth == 0) protect_all(PROT_NONE);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char *a = (char *)si->si_addr;
    for (int i = 0; i < nallocs; i++)
        if (a >= allocs[i].p && a < allocs[i].p + allocs[i].len) {
            char msg[200];
            int n = snprintf(msg, sizeof msg,
                             "loom emu: host code touched device memory at %p (byte %ld of a cudaMalloc "
                             "block): a device pointer dereferenced outside a kernel\n",
                             (void *)a, (long)(a - allocs[i].p));
            if (write(2, msg, (size_t)n) < 0) {}
            _exit(134);
        }
    signal(sig, SIG_DFL); /* not ours: the ordinary crash */
}

static void install_fault_handler(void)
{
    static int done;
    if (done) return;
    done = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
}

/* ---- errors ---- */

static cudaError_t last_error = cudaSuccess;

static cudaError_t fail(cudaError_t e)
{
    last_error = e;
    return e;
}

extern "C" {

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "emulated error";
    }
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    default: return "cudaErrorUnknown";
    }
}

/* ---- memory ---- */

/* free and total bytes: LOOM_EMU_DEVICE_BYTES (a device of that size, less
 * what is allocated), else the host's available and total memory. */
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
    size_t used = 0;
    for (int i = 0; i < nallocs; i++) used += allocs[i].len;
    const char *env = getenv("LOOM_EMU_DEVICE_BYTES");
    if (env && *env) {
        size_t t = (size_t)strtoull(env, NULL, 10);
        *total_b = t;
        *free_b = t > used ? t - used : 0;
        return cudaSuccess;
    }
    size_t avail = 0, total = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) avail = (size_t)kb * 1024;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) total = (size_t)kb * 1024;
    }
    if (f) fclose(f);
    *free_b = avail;
    *total_b = total;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t size)
{
    install_fault_handler();
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = (size ? size + page - 1 : page) / page * page;
    void *m = mmap(NULL, len, device_depth ? PROT_READ | PROT_WRITE : PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
    if (nallocs == cap_allocs) {
        cap_allocs = cap_allocs ? 2 * cap_allocs : 16;
        allocs = (Alloc *)realloc(allocs, (size_t)cap_allocs * sizeof *allocs);
        if (!allocs) abort();
    }
    allocs[nallocs++] = Alloc{(char *)m, len};
    /* fresh device memory is garbage, not zeros: NaN bytes catch a read before a write */
    loom_emu_device_enter();
    memset(m, 0xff, len);
    loom_emu_device_leave();
    *p = m;
    return cudaSuccess;
}

/* pinned host memory: host memory (the emulator's copies are memmove) */
cudaError_t cudaHostAlloc(void **p, size_t size, unsigned flags)
{
    (void)flags;
    *p = malloc(size ? size : 1);
    return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    for (int i = 0; i < nallocs; i++)
        if (allocs[i].p == p) {
            munmap(allocs[i].p, allocs[i].len);
            allocs[i] = allocs[--nallocs];
            return cudaSuccess;
        }
    return fail(cudaErrorInvalidValue);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    (void)kind;
    loom_emu_device_enter();
    if (n) memmove(dst, src, n);
    loom_emu_device_leave();
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind, cudaStream_t s)
{
    (void)s;
    return cudaMemcpy(dst, src, n, kind);
}

cudaError_t cudaMemset(void *dst, int v, size_t n)
{
    loom_emu_device_enter();
    memset(dst, v, n);
    loom_emu_device_leave();
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int v, size_t n, cudaStream_t s)
{
    (void)s;
    return cudaMemset(dst, v, n);
}

/* ---- devices, streams, events: everything is done when its call returns ---- */

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int *d)
{
    *d = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

/* an H100's figure for the one attribute the kernels ask (lk_lince.cu: the
 * shared memory a block may opt into, cudaFuncSetAttribute's limit below);
 * any other: invalid */
cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr attr, int d)
{
    if (d != 0) return fail(cudaErrorInvalidDevice);
    if (attr != cudaDevAttrMaxSharedMemoryPerBlockOptin) return fail(cudaErrorInvalidValue);
    *v = 227 * 1024;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    (void)flags;
    *s = (cudaStream_t)malloc(1);
    return *s ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    free(s);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags)
{
    (void)s, (void)e, (void)flags;
    return cudaSuccess;
}

/* an event holds the time it was recorded */
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void)flags;
    *e = (cudaEvent_t)calloc(1, sizeof(double));
    return *e ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    free(e);
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    (void)s;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *(double *)(void *)e = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    (void)e;
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    *ms = (float)((*(double *)(void *)b - *(double *)(void *)a) * 1e3);
    return cudaSuccess;
}

} /* extern "C" */

/* ---- the launch ---- */

enum { T_READY, T_BARRIER, T_WARP, T_DONE };

struct Fiber {
    ucontext_t ctx; /* its first entry */
    jmp_buf jb;     /* where it yielded */
    int state, made;
    uint3 tid;
    int kind, arg, width; /* a pending shuffle */
    uint64_t value, result;
};

static struct {
    const char *kernel, *file;
    int line;
    void (*fn)(void *);
    void *ctx;
    Fiber *fib;
    int nfib, cap;
    char *stacks;
    size_t stack_bytes;
    int cur;
    int plain;     /* threads after 0 run as plain calls */
    int synced;    /* thread 0 met a barrier or shuffle */
    ucontext_t sched_uc;
    jmp_buf sched;
    char *smem;
} L;

static void die(const char *what)
{
    fprintf(stderr, "loom emu: kernel %s (launched at %s:%d), block (%u,%u,%u), thread (%u,%u,%u): %s\n",
            L.kernel, L.file, L.line, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y,
            threadIdx.z, what);
    abort();
}

/* A fiber lives for the program: it runs the kernel for one thread of a
 * block, then waits, done, until the scheduler gives it the next one. The
 * switches are _setjmp/_longjmp, which (unlike swapcontext) make no system
 * call to save the signal mask: they were three quarters of an emulated
 * program's time. */
static void fiber_main(void)
{
    for (;;) {
        L.fn(L.ctx);
        Fiber *f = &L.fib[L.cur];
        f->state = T_DONE;
        if (!_setjmp(f->jb)) _longjmp(L.sched, 1);
    }
}

/* Give control back to the scheduler in state s. */
static void yield(int s)
{
    if (L.plain) die("a barrier or shuffle that thread 0 of the block did not reach (divergent)");
    L.synced = 1;
    Fiber *f = &L.fib[L.cur];
    f->state = s;
    if (!_setjmp(f->jb)) _longjmp(L.sched, 1);
}

void __syncthreads(void) { yield(T_BARRIER); }

void __syncwarp(unsigned mask) { loom_emu_shfl(mask, 0, LOOM_SHFL_IDX, 0, 32); }

uint64_t loom_emu_shfl(unsigned mask, uint64_t v, int kind, int arg, int width)
{
    if (mask != 0xffffffffu) die("a shuffle or __syncwarp with a partial mask (the emulator takes full masks)");
    if (width < 1 || width > 32 || (width & (width - 1))) die("a shuffle width that is not a power of 2 up to 32");
    Fiber *f = &L.fib[L.cur];
    f->kind = kind, f->arg = arg, f->width = width, f->value = v;
    yield(T_WARP);
    return L.fib[L.cur].result;
}

void *loom_emu_dyn_smem(void) { return L.smem; }

/* Thread t of the block is ready to run the kernel from its start. */
static void start_fiber(int t)
{
    Fiber *f = &L.fib[t];
    if (!f->made) {
        getcontext(&f->ctx);
        f->ctx.uc_stack.ss_sp = L.stacks + (size_t)t * L.stack_bytes;
        f->ctx.uc_stack.ss_size = L.stack_bytes;
        f->ctx.uc_link = NULL; /* fiber_main never returns */
        makecontext(&f->ctx, fiber_main, 0);
    }
    f->state = T_READY;
}

/* Run thread t until it yields or finishes the kernel. */
static void resume(int t)
{
    Fiber *f = &L.fib[t];
    L.cur = t;
    threadIdx = f->tid;
    if (_setjmp(L.sched)) return;
    if (!f->made) {
        f->made = 1;
        swapcontext(&L.sched_uc, &f->ctx);
    }
    _longjmp(f->jb, 1);
}

/* The lanes of warp w have all arrived at a shuffle: each gets its source's value. */
static void exchange(int first, int n)
{
    for (int l = 0; l < n; l++) {
        Fiber *f = &L.fib[first + l];
        if (f->state != T_WARP) continue;
        int w = f->width, seg = l & ~(w - 1), src;
        switch (f->kind) {
        case LOOM_SHFL_XOR: src = l ^ f->arg; break;
        case LOOM_SHFL_DOWN: src = l + f->arg; break;
        case LOOM_SHFL_UP: src = l - f->arg; break;
        default: src = seg + (f->arg & (w - 1)); break;
        }
        int ok = src >= seg && src < seg + w && src < n && L.fib[first + src].state == T_WARP;
        if (f->kind == LOOM_SHFL_XOR && src >= seg + w) ok = 0;
        f->result = ok ? L.fib[first + src].value : f->value;
    }
    for (int l = 0; l < n; l++)
        if (L.fib[first + l].state == T_WARP) L.fib[first + l].state = T_READY;
}

static void run_block(int n)
{
    /* thread 0 first, alone: without a barrier or shuffle the rest are plain calls */
    L.synced = 0;
    L.plain = 0;
    start_fiber(0);
    resume(0);
    if (!L.synced && L.fib[0].state == T_DONE) {
        L.plain = 1;
        for (int t = 1; t < n; t++) {
            L.cur = t;
            threadIdx = L.fib[t].tid;
            L.fn(L.ctx);
        }
        L.plain = 0;
        return;
    }
    for (int t = 1; t < n; t++) start_fiber(t);
    for (;;) {
        for (int t = 0; t < n; t++)
            if (L.fib[t].state == T_READY) resume(t);
        int done = 0, bar = 0, released = 0;
        for (int t = 0; t < n; t++) done += L.fib[t].state == T_DONE, bar += L.fib[t].state == T_BARRIER;
        if (done == n) return;
        for (int w = 0; w < n; w += 32) {
            int m = n - w < 32 ? n - w : 32, arrived = 0, waiting = 0;
            for (int l = 0; l < m; l++) {
                int s = L.fib[w + l].state;
                arrived += s == T_WARP || s == T_DONE;
                waiting += s == T_WARP;
            }
            if (waiting && arrived == m) exchange(w, m), released = 1;
        }
        if (!released && bar && bar + done == n) {
            for (int t = 0; t < n; t++)
                if (L.fib[t].state == T_BARRIER) L.fib[t].state = T_READY;
            released = 1;
        }
        if (!released) {
            threadIdx = L.fib[0].tid;
            die("deadlock: some threads wait at __syncthreads while others of the block wait in a shuffle");
        }
    }
}

/* the kernels allowed more than 48 KiB of dynamic shared memory (cudaFuncSetAttribute) */
static struct { const void *fn; int bytes; } optin[64];
static int noptin;

static int smem_allowed(const void *kfn)
{
    for (int i = 0; i < noptin; i++)
        if (optin[i].fn == kfn) return optin[i].bytes;
    return 48 * 1024;
}

extern "C" cudaError_t cudaFuncSetAttribute(const void *fn, enum cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
    if (value < 0 || value > 227 * 1024) return fail(cudaErrorInvalidValue);
    for (int i = 0; i < noptin; i++)
        if (optin[i].fn == fn) return optin[i].bytes = value, cudaSuccess;
    if (noptin == (int)(sizeof optin / sizeof *optin)) return fail(cudaErrorInvalidValue);
    optin[noptin].fn = fn, optin[noptin++].bytes = value;
    return cudaSuccess;
}

cudaError_t loom_emu_run(const char *kernel, const void *kfn, const char *file, int line, dim3 grid, dim3 block,
                         size_t smem, cudaStream_t stream, void (*fn)(void *), void *ctx)
{
    (void)stream;
    long n = (long)block.x * block.y * block.z;
    if (n < 1 || n > 1024 || grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.y > 65535 || grid.z > 65535 ||
        smem > (size_t)smem_allowed(kfn)) {
        fprintf(stderr, "loom emu: kernel %s at %s:%d: launch of grid (%u,%u,%u) x block (%u,%u,%u) with %zu "
                        "bytes of shared memory is invalid on a GPU (dynamic shared memory above 48 KiB needs "
                        "cudaFuncSetAttribute(MaxDynamicSharedMemorySize) first, lk_smem_optin)\n", kernel, file, line, grid.x, grid.y,
                grid.z, block.x, block.y, block.z, smem);
        return fail(cudaErrorInvalidConfiguration);
    }
    L.kernel = kernel, L.file = file, L.line = line, L.fn = fn, L.ctx = ctx;
    if (!L.stacks) {
        L.stack_bytes = 256 * 1024;
        L.cap = 1024;
        L.stacks = (char *)mmap(NULL, L.stack_bytes * (size_t)L.cap, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        L.fib = (Fiber *)calloc((size_t)L.cap, sizeof *L.fib);
        if (L.stacks == MAP_FAILED || !L.fib) return fail(cudaErrorMemoryAllocation);
    }
    L.nfib = (int)n;
    L.smem = smem ? (char *)malloc(smem) : NULL;
    gridDim = grid;
    blockDim = block;
    for (int t = 0; t < n; t++)
        L.fib[t].tid = uint3{(unsigned)(t % block.x), (unsigned)(t / block.x % block.y),
                             (unsigned)(t / ((long)block.x * block.y))};
    loom_emu_device_enter();
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = uint3{x, y, z};
                if (L.smem) memset(L.smem, 0xff, smem); /* shared memory starts as garbage */
                run_block((int)n);
            }
    loom_emu_device_leave();
    free(L.smem);
    L.smem = NULL;
    return cudaSuccess;
}
