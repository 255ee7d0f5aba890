/* Tests of the runtime's .npy reader and writer: a C round trip for every dtype,
 * files written by numpy (tests/unit/data, made by make_npy.py) read back with their
 * values and rewritten byte for byte, and refusals with a clear message for what the
 * runtime does not take (Fortran order, big-endian, strings, complex, truncation) and
 * for hostile headers, which must never crash the reader or make it over-allocate. */
#include "check.h"
#include "rt.h"
#include "tfiles.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *data(const char *name) {
    static char p[512];
    const char *root = getenv("LOOM_ROOT");
    snprintf(p, sizeof p, "%s/tests/unit/data/%s", root ? root : ".", name);
    return p;
}

/* A version 1.0 file with this header text (unpadded) and data. */
static void craft(const char *path, const char *header, const void *payload, size_t n) {
    size_t hlen = strlen(header);
    unsigned char *b = malloc(10 + hlen + n + 1);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hlen & 0xff);
    b[9] = (unsigned char)(hlen >> 8);
    memcpy(b + 10, header, hlen);
    if (n) memcpy(b + 10 + hlen, payload, n);
    write_bytes(path, b, 10 + hlen + n);
    free(b);
}

/* Reading must fail with a message that names the file and contains `what`. */
static void refused(const char *path, const char *what) {
    rt_tensor t;
    int rc = rt_npy_read(path, &t);
    CHECK_EQ_INT(rc, -1);
    CHECK(t.data == NULL);
    CHECK_STR_CONTAINS(rt_error(), path);
    CHECK_STR_CONTAINS(rt_error(), what);
    if (rc == 0) rt_tensor_free(&t);
}

static void test_roundtrip_every_dtype(void) {
    const rt_dtype all[] = {RT_F32, RT_F64, RT_F16, RT_I8,  RT_I16, RT_I32,
                            RT_I64, RT_U8,  RT_U16, RT_U32, RT_U64, RT_BOOL};
    const int64_t shapes[][3] = {{2, 3, 5}, {0, 0, 0}, {4, 0, 2}};
    const int ranks[] = {3, 0, 3};
    for (size_t d = 0; d < sizeof all / sizeof all[0]; d++)
        for (int s = 0; s < 3; s++) {
            rt_tensor t, u;
            CHECK(rt_tensor_alloc(&t, all[d], ranks[s], shapes[s]) == 0);
            unsigned char *p = t.data;
            for (size_t i = 0; i < t.nbytes; i++) p[i] = all[d] == RT_BOOL ? (unsigned char)(i % 3 == 0) : (unsigned char)(i * 37 + 11);
            const char *path = tmp("rt.npy");
            CHECK(rt_npy_write(path, &t) == 0);
            if (rt_npy_read(path, &u) != 0) {
                fprintf(stderr, "  %s: %s\n", rt_dtype_name(all[d]), rt_error());
                CHECK(0);
                rt_tensor_free(&t);
                continue;
            }
            CHECK_EQ_INT(u.dtype, all[d]);
            CHECK_EQ_INT(u.rank, ranks[s]);
            for (int i = 0; i < u.rank; i++) CHECK_EQ_INT(u.dims[i], shapes[s][i]);
            CHECK_EQ_INT(u.nbytes, t.nbytes);
            CHECK(memcmp(u.data, t.data, t.nbytes) == 0);
            CHECK(u.data != NULL);
            rt_tensor_free(&t);
            rt_tensor_free(&u);
            CHECK(t.data == NULL && u.data == NULL);
        }
    // the most dims the runtime carries
    int64_t d8[8] = {1, 2, 1, 2, 1, 2, 1, 3};
    rt_tensor t, u;
    CHECK(rt_tensor_alloc(&t, RT_I32, 8, d8) == 0);
    CHECK_EQ_INT(t.nbytes, 24 * 4);
    CHECK(rt_npy_write(tmp("r8.npy"), &t) == 0);
    CHECK(rt_npy_read(tmp("r8.npy"), &u) == 0);
    CHECK_EQ_INT(u.rank, 8);
    CHECK_EQ_INT(u.dims[7], 3);
    rt_tensor_free(&t);
    rt_tensor_free(&u);
}

static void test_read_numpy_files(void) {
    rt_tensor t;
    CHECK(rt_npy_read(data("np_f32_2x3.npy"), &t) == 0);
    CHECK_EQ_INT(t.dtype, RT_F32);
    CHECK_EQ_INT(t.rank, 2);
    CHECK_EQ_INT(t.dims[0], 2);
    CHECK_EQ_INT(t.dims[1], 3);
    for (int i = 0; i < 6; i++) CHECK(((float *)t.data)[i] == (float)i - 2.5f);
    rt_tensor_free(&t);

    CHECK(rt_npy_read(data("np_f64_scalar.npy"), &t) == 0);
    CHECK_EQ_INT(t.dtype, RT_F64);
    CHECK_EQ_INT(t.rank, 0);
    CHECK_EQ_INT(rt_tensor_numel(&t), 1);
    CHECK(*(double *)t.data == 3.25);
    rt_tensor_free(&t);

    CHECK(rt_npy_read(data("np_i64_0x4.npy"), &t) == 0);
    CHECK_EQ_INT(t.dtype, RT_I64);
    CHECK_EQ_INT(t.rank, 2);
    CHECK_EQ_INT(t.dims[0], 0);
    CHECK_EQ_INT(t.dims[1], 4);
    CHECK_EQ_INT(t.nbytes, 0);
    CHECK(t.data != NULL);
    rt_tensor_free(&t);

    CHECK(rt_npy_read(data("np_f16_3.npy"), &t) == 0);
    CHECK_EQ_INT(t.dtype, RT_F16);
    const uint16_t h[3] = {0x3c00, 0xc000, 0x3800};  // 1.0, -2.0, 0.5
    CHECK(t.nbytes == 6 && memcmp(t.data, h, 6) == 0);
    rt_tensor_free(&t);

    CHECK(rt_npy_read(data("np_b1_2x2.npy"), &t) == 0);
    CHECK_EQ_INT(t.dtype, RT_BOOL);
    CHECK(t.nbytes == 4 && memcmp(t.data, "\1\0\0\1", 4) == 0);
    rt_tensor_free(&t);

    CHECK(rt_npy_read(data("np_i8_4.npy"), &t) == 0);
    CHECK_EQ_INT(t.dtype, RT_I8);
    CHECK(t.nbytes == 4 && ((int8_t *)t.data)[0] == -128 && ((int8_t *)t.data)[3] == 127);
    rt_tensor_free(&t);

    CHECK(rt_npy_read(data("np_u32_2x1x2.npy"), &t) == 0);
    CHECK_EQ_INT(t.dtype, RT_U32);
    CHECK(t.rank == 3 && t.dims[1] == 1 && ((uint32_t *)t.data)[2] == 4294967295u);
    rt_tensor_free(&t);

    CHECK(rt_npy_read(data("np_i64_rank8.npy"), &t) == 0);
    CHECK(t.rank == 8 && t.dims[7] == 2 && ((int64_t *)t.data)[1] == 1);
    rt_tensor_free(&t);

    // format 2.0 and 3.0 headers (4-byte header length)
    CHECK(rt_npy_read(data("np_u8_v2.npy"), &t) == 0);
    CHECK_EQ_INT(t.dtype, RT_U8);
    CHECK(t.rank == 1 && t.dims[0] == 10 && ((uint8_t *)t.data)[9] == 9);
    rt_tensor_free(&t);
    CHECK(rt_npy_read(data("np_i16_v3.npy"), &t) == 0);
    CHECK_EQ_INT(t.dtype, RT_I16);
    CHECK(t.rank == 2 && ((int16_t *)t.data)[0] == -300 && ((int16_t *)t.data)[3] == 30000);
    rt_tensor_free(&t);
}

/* Reading a numpy file and writing it again gives numpy's bytes exactly. */
static void test_write_matches_numpy(void) {
    const char *files[] = {"np_f32_2x3.npy", "np_f64_scalar.npy", "np_i64_0x4.npy", "np_f16_3.npy",
                           "np_b1_2x2.npy",  "np_i8_4.npy",       "np_u32_2x1x2.npy", "np_i64_rank8.npy"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        rt_tensor t;
        CHECK(rt_npy_read(data(files[i]), &t) == 0);
        CHECK(rt_npy_write(tmp("same.npy"), &t) == 0);
        size_t na, nb;
        unsigned char *a = slurp(data(files[i]), &na), *b = slurp(tmp("same.npy"), &nb);
        CHECK(a && b);
        if (!(na == nb && memcmp(a, b, na) == 0)) {
            fprintf(stderr, "  %s: written bytes differ from numpy's (%zu vs %zu bytes)\n", files[i], nb, na);
            CHECK(0);
        }
        free(a);
        free(b);
        rt_tensor_free(&t);
    }
}

static void test_refuse_numpy_files(void) {
    refused(data("np_fortran.npy"), "Fortran-order arrays are not supported; save with np.ascontiguousarray");
    refused(data("np_bigendian.npy"), "big-endian data ('>f4') is not supported");
    refused(data("np_unicode.npy"), "unsupported dtype '<U2'");
    refused(data("np_complex.npy"), "unsupported dtype '<c8'");
    refused(data("np_truncated.npy"), "the file size does not match the header");
}

static void test_missing_empty_and_bad_magic(void) {
    refused(tmp("does-not-exist.npy"), "cannot open");
    write_bytes(tmp("empty.npy"), "", 0);
    refused(tmp("empty.npy"), "empty");
    write_bytes(tmp("text.npy"), "hello, world\n", 13);
    refused(tmp("text.npy"), "not an .npy file (bad magic)");
    write_bytes(tmp("short.npy"), "\x93NUM", 4);
    refused(tmp("short.npy"), "truncated");
    write_bytes(tmp("v4.npy"), "\x93NUMPY\x04\x00\x10\x00{}", 12);
    refused(tmp("v4.npy"), "unsupported .npy format version 4.0");
    refused(tmpdir, "not a regular file");
}

static void test_header_variants(void) {
    const float v[3] = {1, 2, 3};
    // keys in any order, odd spacing, double quotes, no trailing comma, no newline
    const char *ok[] = {
        "{'shape': (3,), 'fortran_order': False, 'descr': '<f4'}",
        "{ \"descr\" : \"<f4\" ,\t'shape':(3 ,),'fortran_order':False ,}   \n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3L,), }",
        "{'descr':'=f4','fortran_order':False,'shape':(1, 3,)}",
        "{'descr':'f4','fortran_order':False,'shape':(3, 1)}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        craft(tmp("var.npy"), ok[i], v, sizeof v);
        rt_tensor t;
        if (rt_npy_read(tmp("var.npy"), &t) != 0) {
            fprintf(stderr, "  header %s: %s\n", ok[i], rt_error());
            CHECK(0);
            continue;
        }
        CHECK_EQ_INT(t.dtype, RT_F32);
        CHECK_EQ_INT(rt_tensor_numel(&t), 3);
        CHECK(memcmp(t.data, v, sizeof v) == 0);
        rt_tensor_free(&t);
    }
    // one-byte dtypes have no byte order
    const char *bytes[] = {"{'descr':'|u1','fortran_order':False,'shape':(2,)}",
                           "{'descr':'<u1','fortran_order':False,'shape':(2,)}",
                           "{'descr':'>b1','fortran_order':False,'shape':(2,)}"};
    for (int i = 0; i < 3; i++) {
        craft(tmp("b.npy"), bytes[i], "\1\0", 2);
        rt_tensor t;
        CHECK(rt_npy_read(tmp("b.npy"), &t) == 0);
        CHECK_EQ_INT(t.nbytes, 2);
        rt_tensor_free(&t);
    }
}

/* Hostile or broken headers: each gets a message, none a crash or a huge allocation. */
static void test_malicious_headers(void) {
    const float v[4] = {0};
    const struct {
        const char *header, *says;
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }",
         "the file size does not match the header"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }",
         "the file size does not match the header"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "does not fit in 64 bits"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,4), }", "more than 8 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", "negative dim"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4), }", "',' after the only dim"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [4], }", "a shape tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), ", "a quoted string"},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (4,), }", "expected ',' or '}' after a value"},
        {"{'descr': '<f4', 'fortran_order': False}", "missing key 'shape'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'extra': 1}", "unexpected key 'extra'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", "'descr' appears twice"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (4,)}", "True or False"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (4,)}", "unsupported dtype '|O' (Python objects)"},
        {"{'descr': '<f16', 'fortran_order': False, 'shape': (4,)}", "unsupported dtype '<f16'"},
        {"{'descr': '<x4', 'fortran_order': False, 'shape': (4,)}", "unsupported dtype '<x4'"},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (4,)}", "has no byte order"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,)}", "structured"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} junk", "only padding after the header dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "(trailing bytes?)"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", "Fortran-order"},
        {"", "'{' to open the header dict"},
        {"{'descr': 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'}", "longer than"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        craft(tmp("bad.npy"), cases[i].header, v, sizeof v);
        refused(tmp("bad.npy"), cases[i].says);
    }
    // a NUL inside the header
    craft(tmp("nul.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", v, sizeof v);
    size_t n;
    unsigned char *b = slurp(tmp("nul.npy"), &n);
    b[20] = 0;
    write_bytes(tmp("nul.npy"), b, n);
    free(b);
    refused(tmp("nul.npy"), "malformed .npy header");
    // header lengths past the end of the file, in both header-length widths
    write_bytes(tmp("long1.npy"), "\x93NUMPY\x01\x00\xff\xff{'descr'", 17);
    refused(tmp("long1.npy"), "truncated: the header length is 65535 bytes");
    write_bytes(tmp("long2.npy"), "\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14);
    refused(tmp("long2.npy"), "truncated: the header length is 4294967295 bytes");
    write_bytes(tmp("cut2.npy"), "\x93NUMPY\x02\x00\x01", 9);
    refused(tmp("cut2.npy"), "truncated");
}

static void test_write_refusals(void) {
    rt_tensor t;
    int64_t dims[1] = {2};
    CHECK(rt_tensor_alloc(&t, RT_BF16, 1, dims) == 0);
    CHECK_EQ_INT(rt_npy_write(tmp("bf.npy"), &t), -1);
    CHECK_STR_CONTAINS(rt_error(), "numpy has no such dtype");
    CHECK(access(tmp("bf.npy"), F_OK) != 0);
    t.dtype = RT_F32;  // same bytes, but a float32 of 2 elements needs 8
    CHECK_EQ_INT(rt_npy_write(tmp("bf.npy"), &t), -1);
    CHECK_STR_CONTAINS(rt_error(), "holds 8 bytes, but nbytes is 4");
    rt_tensor_free(&t);
    // a write into a missing folder fails cleanly
    CHECK(rt_tensor_alloc(&t, RT_F32, 1, dims) == 0);
    CHECK_EQ_INT(rt_npy_write(tmp("no/such/dir/x.npy"), &t), -1);
    CHECK_STR_CONTAINS(rt_error(), "cannot create the temporary file");
    // and a good write leaves no temporary file behind
    CHECK(rt_npy_write(tmp("ok.npy"), &t) == 0);
    char tmpname[300];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", tmp("ok.npy"), (long)getpid());
    CHECK(access(tmpname, F_OK) != 0);
    rt_tensor_free(&t);
}

int main(void) {
    if (tfiles_init("loom_rt_npy") < 0) return 1;
    RUN(test_roundtrip_every_dtype);
    RUN(test_read_numpy_files);
    RUN(test_write_matches_numpy);
    RUN(test_refuse_numpy_files);
    RUN(test_missing_empty_and_bad_magic);
    RUN(test_header_variants);
    RUN(test_malicious_headers);
    RUN(test_write_refusals);
    tfiles_cleanup();
    return CHECK_DONE();
}
