/* Tests of the runtime's foundations: the dtype table against ONNX's numbering,
 * host tensor allocation and its refusals, shape strings, RT_CHECK's report and exit
 * status, atomic files, the monotonic clock and the peak-RSS reader. */
#include "check.h"
#include "rt.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_dtypes_match_onnx(void) {
    // TensorProto.DataType numbers, sizes and names
    const struct {
        int onnx;
        size_t size;
        const char *name;
    } want[] = {{1, 4, "float32"},  {2, 1, "uint8"},   {3, 1, "int8"},    {4, 2, "uint16"},
                {5, 2, "int16"},    {6, 4, "int32"},   {7, 8, "int64"},   {9, 1, "bool"},
                {10, 2, "float16"}, {11, 8, "float64"}, {12, 4, "uint32"}, {13, 8, "uint64"},
                {16, 2, "bfloat16"}, {17, 1, "float8e4m3fn"}, {19, 1, "float8e5m2"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_EQ_INT(rt_dtype_size((rt_dtype)want[i].onnx), want[i].size);
        CHECK(strcmp(rt_dtype_name((rt_dtype)want[i].onnx), want[i].name) == 0);
    }
    CHECK_EQ_INT(RT_F32, 1);
    CHECK_EQ_INT(RT_BF16, 16);
    // strings (8), complex (14, 15) and out-of-range numbers are not runtime dtypes
    const int none[] = {0, 8, 14, 15, 18, 99, -1};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) CHECK_EQ_INT(rt_dtype_size((rt_dtype)none[i]), 0);
    CHECK(strcmp(rt_dtype_name((rt_dtype)8), "invalid") == 0);
}

static void test_tensor_alloc(void) {
    rt_tensor t;
    int64_t d[3] = {2, 3, 4};
    CHECK(rt_tensor_alloc(&t, RT_F64, 3, d) == 0);
    CHECK_EQ_INT(t.nbytes, 2 * 3 * 4 * 8);
    CHECK_EQ_INT(rt_tensor_numel(&t), 24);
    CHECK(((double *)t.data)[23] == 0.0);
    rt_tensor_free(&t);
    rt_tensor_free(&t);  // twice is harmless
    CHECK(rt_tensor_alloc(&t, RT_I8, 0, NULL) == 0);
    CHECK_EQ_INT(t.nbytes, 1);
    CHECK_EQ_INT(rt_tensor_numel(&t), 1);
    rt_tensor_free(&t);

    int64_t big[3] = {INT64_MAX, INT64_MAX, 0};
    CHECK(rt_tensor_alloc(&t, RT_F32, 3, big) == 0);  // a zero dim: no bytes, no overflow
    CHECK_EQ_INT(t.nbytes, 0);
    CHECK(t.data != NULL);
    rt_tensor_free(&t);
    big[2] = 2;
    CHECK_EQ_INT(rt_tensor_alloc(&t, RT_F32, 3, big), -1);
    CHECK_STR_CONTAINS(rt_error(), "its size overflows");
    CHECK(t.data == NULL);
    int64_t neg[1] = {-1};
    CHECK_EQ_INT(rt_tensor_alloc(&t, RT_F32, 1, neg), -1);
    CHECK_STR_CONTAINS(rt_error(), "dim 0 = -1");
    CHECK_EQ_INT(rt_tensor_alloc(&t, RT_F32, 9, d), -1);
    CHECK_STR_CONTAINS(rt_error(), "rank 9: expected 0 to 8");
    CHECK_EQ_INT(rt_tensor_alloc(&t, (rt_dtype)8, 1, d), -1);
    CHECK_STR_CONTAINS(rt_error(), "not a supported dtype");
    CHECK(rt_nbytes(RT_F32, 3, big) == UINT64_MAX);  // saturates, never wraps
    big[2] = 0;
    CHECK(rt_nbytes(RT_F32, 3, big) == 0);
    int64_t d2[2] = {3, 5};
    CHECK(rt_nbytes(RT_F16, 2, d2) == 30);
    CHECK(rt_nbytes(RT_I64, 0, NULL) == 8);
}

static void test_shape_str(void) {
    char b[64];
    int64_t d[3] = {2, 30, 400};
    CHECK(strcmp(rt_shape_str(b, sizeof b, 3, d), "[2,30,400]") == 0);
    CHECK(strcmp(rt_shape_str(b, sizeof b, 0, d), "[]") == 0);
    CHECK(strcmp(rt_shape_str(b, 6, 3, d), "[2,30") == 0);  // truncated, terminated
    CHECK(strcmp(rt_shape_str(b, 1, 3, d), "") == 0);
}

/* RT_CHECK on a failing call prints file:line, the call and the message, and exits 1. */
static void test_rt_check_exits(void) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        rt_tensor t;
        RT_CHECK(rt_npy_read("/nonexistent/x.npy", &t));
        _exit(0);
    }
    close(fds[1]);
    char out[1024] = "";
    size_t n = 0;
    ssize_t k;
    while (n < sizeof out - 1 && (k = read(fds[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)k;
    out[n] = '\0';
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CHECK_STR_CONTAINS(out, "test_rt_core.c:");
    CHECK_STR_CONTAINS(out, "rt_npy_read(\"/nonexistent/x.npy\", &t) failed:");
    CHECK_STR_CONTAINS(out, "/nonexistent/x.npy: cannot open for reading: No such file or directory");
}

static void test_atomic_file(void) {
    char dir[] = "/tmp/loom_rt_core_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64], tmpname[96];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
    rt_atomic_file a;
    CHECK(rt_atomic_open(&a, path) == 0);
    CHECK(rt_atomic_write(&a, "hello", 5) == 0);
    CHECK(access(tmpname, F_OK) == 0);  // written under the temporary name
    CHECK(access(path, F_OK) != 0);     // nothing at the target yet
    CHECK(rt_atomic_commit(&a) == 0);
    CHECK(access(tmpname, F_OK) != 0);
    FILE *f = fopen(path, "rb");
    char b[8] = "";
    CHECK(f && fread(b, 1, 8, f) == 5 && memcmp(b, "hello", 5) == 0);
    if (f) fclose(f);
    // an abandoned write leaves the old file as it was
    CHECK(rt_atomic_open(&a, path) == 0);
    CHECK(rt_atomic_write(&a, "bye", 3) == 0);
    rt_atomic_abort(&a);
    rt_atomic_abort(&a);  // twice is harmless
    CHECK(access(tmpname, F_OK) != 0);
    f = fopen(path, "rb");
    CHECK(f && fread(b, 1, 8, f) == 5 && memcmp(b, "hello", 5) == 0);
    if (f) fclose(f);
    remove(path);
    rmdir(dir);
}

static void test_clock_and_rss(void) {
    double t0 = rt_now();
    usleep(20000);
    double t1 = rt_now();
    CHECK(t1 - t0 >= 0.015 && t1 - t0 < 5.0);
    size_t r0 = rt_peak_rss();
    CHECK(r0 > 1024 * 1024);  // any process has touched more than a MiB
    size_t n = 64u << 20;
    char *p = malloc(n);
    CHECK(p != NULL);
    if (p) memset(p, 1, n);
    size_t r1 = rt_peak_rss();
    CHECK(r1 >= r0 + n / 2);  // the touched pages count
    free(p);
    CHECK(rt_peak_rss() >= r1);  // a peak never goes down
}

int main(void) {
    RUN(test_dtypes_match_onnx);
    RUN(test_tensor_alloc);
    RUN(test_shape_str);
    RUN(test_rt_check_exits);
    RUN(test_atomic_file);
    RUN(test_clock_and_rss);
    return CHECK_DONE();
}
