/* The runtime's foundations: the thread-local error message, the dtype table
 * (numbered as ONNX TensorProto.DataType) and host tensors. Everything else in
 * libloomrt reports failures through rt_fail and describes arrays with rt_tensor. */
#include "rt.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static _Thread_local char err_buf[RT_ERR_LEN];

/* A failing program exits without the libraries' destructors: under a
 * `ulimit -v` too small for OpenBLAS's buffer, OpenBLAS's own thread asks
 * for it again forever, and OpenBLAS's destructor waits for that thread, so
 * the program's refusal would hang after its message. Registered before main
 * (after the loader's destructor list), so it runs first; success exits
 * normally. */
static void exit_on_failure(int status, void *arg)
{
    (void)arg;
    if (status != 0) {
        fflush(NULL);
        _exit(status);
    }
}

__attribute__((constructor)) static void install_exit_on_failure(void) { on_exit(exit_on_failure, NULL); }

const char *rt_error(void) { return err_buf; }

int rt_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return -1;
}

size_t rt_dtype_size(rt_dtype t) {
    switch (t) {
    case RT_U8: case RT_I8: case RT_BOOL: case RT_F8E4M3FN: case RT_F8E5M2: return 1;
    case RT_U16: case RT_I16: case RT_F16: case RT_BF16: return 2;
    case RT_F32: case RT_I32: case RT_U32: return 4;
    case RT_F64: case RT_I64: case RT_U64: return 8;
    case RT_UNDEFINED: break;
    }
    return 0;
}

const char *rt_dtype_name(rt_dtype t) {
    switch (t) {
    case RT_F32: return "float32";
    case RT_U8: return "uint8";
    case RT_I8: return "int8";
    case RT_U16: return "uint16";
    case RT_I16: return "int16";
    case RT_I32: return "int32";
    case RT_I64: return "int64";
    case RT_BOOL: return "bool";
    case RT_F16: return "float16";
    case RT_F64: return "float64";
    case RT_U32: return "uint32";
    case RT_U64: return "uint64";
    case RT_BF16: return "bfloat16";
    case RT_F8E4M3FN: return "float8e4m3fn";
    case RT_F8E5M2: return "float8e5m2";
    case RT_UNDEFINED: return "undefined";
    }
    return "invalid";
}

int64_t rt_tensor_numel(const rt_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

uint64_t rt_nbytes(rt_dtype dtype, int rank, const int64_t *dims) {
    uint64_t n = rt_dtype_size(dtype);
    for (int i = 0; i < rank; i++) {
        // saturated stays saturated unless a later dim is 0, which makes the true size 0
        if (dims[i] != 0 && n > UINT64_MAX / (uint64_t)dims[i]) n = UINT64_MAX;
        else n *= (uint64_t)dims[i];
    }
    return n;
}

int rt_tensor_alloc(rt_tensor *t, rt_dtype dtype, int rank, const int64_t *dims) {
    memset(t, 0, sizeof *t);
    if (rt_dtype_size(dtype) == 0)
        return rt_fail("cannot allocate a tensor of dtype %d: not a supported dtype", (int)dtype);
    if (rank < 0 || rank > RT_MAX_RANK)
        return rt_fail("cannot allocate a tensor of rank %d: expected 0 to %d", rank, RT_MAX_RANK);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0)
            return rt_fail("cannot allocate a tensor with dim %d = %lld: dims must be >= 0", i, (long long)dims[i]);
    uint64_t nbytes = rt_nbytes(dtype, rank, dims);
    char s[200];
    if (nbytes > SIZE_MAX / 2)
        return rt_fail("cannot allocate a %s tensor of shape %s: its size overflows", rt_dtype_name(dtype),
                       rt_shape_str(s, sizeof s, rank, dims));
    // malloc(0) may return NULL; keep data non-NULL so that NULL always means "no tensor"
    void *data = calloc(nbytes ? (size_t)nbytes : 1, 1);
    if (!data)
        return rt_fail("out of memory allocating %llu bytes for a %s tensor of shape %s",
                       (unsigned long long)nbytes, rt_dtype_name(dtype), rt_shape_str(s, sizeof s, rank, dims));
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    t->data = data;
    t->nbytes = (size_t)nbytes;
    return 0;
}

void rt_tensor_free(rt_tensor *t) {
    if (!t) return;
    free(t->data);
    memset(t, 0, sizeof *t);
}

char *rt_shape_str(char *buf, size_t len, int rank, const int64_t *dims) {
    if (len == 0) return buf;
    // snprintf returns the length it wanted, so `at` may pass len: then stop writing
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, i ? ",%lld" : "%lld", (long long)dims[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
    return buf;
}

/* The "KEY: N kB" line of a /proc file, in bytes, or -1. */
static int64_t proc_kb(const char *path, const char *key)
{
    int64_t v = -1;
    char line[256];
    size_t n = strlen(key);
    long long kb;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, "%lld", &kb) == 1) v = (int64_t)kb * 1024;
    fclose(f);
    return v;
}

/* The address space `ulimit -v` (RLIMIT_AS) leaves this process, or -1
 * when there is no limit. */
static int64_t address_space_left(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return -1;
    int64_t used = proc_kb("/proc/self/status", "VmSize");
    if (used < 0) used = 0;
    return (int64_t)rl.rlim_cur > used ? (int64_t)rl.rlim_cur - used : 0;
}

/* The threads the kernels' pool will run: OMP_NUM_THREADS (rt_threads_check
 * has refused a bad one), else the CPUs this process may use. */
static int pool_threads(void)
{
    const char *s = getenv("OMP_NUM_THREADS");
    if (s && atoi(s) > 0) return atoi(s);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return 1;
}

/* Address space the program may map after this check, besides its arena
 * and weights: OpenBLAS's buffer (128 MiB in Debian's build) on the calling
 * thread, mapped at the first product, and per further thread another
 * buffer (OpenBLAS's own threads map theirs while the program starts, a
 * pool worker at its first product) and a stack. Under a `ulimit -v` that
 * cannot hold them OpenBLAS asks for its buffer again forever, a hang, so
 * the check counts them. resnet_small's training program on 2 threads:
 * VmPeak 459 MB; it ran under 500 MB and hung under 450 MB. */
static int64_t address_space_reserve(int threads)
{
    return ((int64_t)144 << 20) + (int64_t)(threads - 1) * ((int64_t)264 << 20);
}

int rt_memory_check(int64_t arena_bytes, int64_t weights_bytes)
{
    int64_t need = arena_bytes + weights_bytes, avail = proc_kb("/proc/meminfo", "MemAvailable");
    if (avail >= 0 && need > avail)
        return rt_fail("the program needs %lld bytes of memory (arena %lld, weights and optimizer state %lld), "
                       "but %lld are available; free memory, or compile with a smaller --budget (loom plan "
                       "shows the least feasible one)", (long long)need, (long long)arena_bytes,
                       (long long)weights_bytes, (long long)avail);
    int64_t left = address_space_left();
    int threads = pool_threads();
    int64_t reserve = address_space_reserve(threads);
    if (left >= 0 && need + reserve > left)
        return rt_fail("the program needs %lld bytes of memory (arena %lld, weights and optimizer state %lld) "
                       "and %lld of address space for OpenBLAS's buffers and %d thread%s, but `ulimit -v` "
                       "leaves %lld; raise the limit, run fewer threads (OMP_NUM_THREADS=1 needs %lld), or "
                       "compile with a smaller --budget", (long long)need, (long long)arena_bytes,
                       (long long)weights_bytes, (long long)reserve, threads, threads == 1 ? "" : "s",
                       (long long)left, (long long)(need + address_space_reserve(1)));
    return 0;
}

/* ---- the host device: the cpu target's arena and weights are host memory ---- */

static int host_init(void) { return 0; }

static char *host_alloc(int64_t bytes)
{
    size_t n = (size_t)(bytes + 63) / 64 * 64;
    char *p = aligned_alloc(64, n ? n : 64);
    if (!p) {
        rt_fail("out of memory (%lld bytes)", (long long)bytes);
        return NULL;
    }
    memset(p, 0, n ? n : 64);
    return p;
}

static void host_release(char *p) { free(p); }

static int host_upload(char *dst, const void *src, size_t n)
{
    if (n) memcpy(dst, src, n);
    return 0;
}

static int host_download(void *dst, const char *src, size_t n)
{
    if (n) memcpy(dst, src, n);
    return 0;
}

static int host_sync(void) { return 0; }

const rt_device rt_device_host = {"cpu", host_init, rt_memory_check, host_alloc, host_release, host_upload,
                                  host_download, host_sync, host_alloc, host_release};
