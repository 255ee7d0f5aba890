/* The runtime's foundations: the thread-local error message, the dtype table
 * (numbered as ONNX TensorProto.DataType) and host tensors. Everything else in
 * libloomrt reports failures through rt_fail and describes arrays with rt_tensor. */
#include "rt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static _Thread_local char err_buf[RT_ERR_LEN];

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

/* The bytes this process may still allocate: the kernel's MemAvailable, and
 * under an address-space limit (ulimit -v) what is left of it. */
static int64_t available_bytes(void)
{
    int64_t avail = -1;
    char line[256];
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) avail = (int64_t)kb * 1024;
        fclose(f);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        int64_t used = 0;
        long long kb;
        if ((f = fopen("/proc/self/status", "r")) != NULL) {
            while (fgets(line, sizeof line, f))
                if (sscanf(line, "VmSize: %lld kB", &kb) == 1) used = (int64_t)kb * 1024;
            fclose(f);
        }
        int64_t left = (int64_t)rl.rlim_cur - used;
        if (left < 0) left = 0;
        if (avail < 0 || left < avail) avail = left;
    }
    return avail;
}

int rt_memory_check(int64_t arena_bytes, int64_t weights_bytes)
{
    int64_t need = arena_bytes + weights_bytes, avail = available_bytes();
    if (avail < 0 || need <= avail) return 0;
    return rt_fail("the program needs %lld bytes of memory (arena %lld, weights and optimizer state %lld), "
                   "but %lld are available; free memory, or compile with a smaller --budget (loom plan "
                   "shows the least feasible one)", (long long)need, (long long)arena_bytes,
                   (long long)weights_bytes, (long long)avail);
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
                                  host_download, host_sync};
