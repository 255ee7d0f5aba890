/* Tests of the runtime's .safetensors reader and writer: the writer's bytes against a
 * file built by hand from the format's description, round trips of every dtype with
 * metadata and awkward names, atomic writes that leave no temporary file and never a
 * half-written one, and malformed files (bad JSON, offsets out of range, overlapping,
 * the wrong size, a header length past the end) refused with a message. A program's
 * bfloat16 weight loads a float32 tensor rounded to nearest even, NaN kept NaN. */
#include "check.h"
#include "rt.h"
#include "tfiles.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file whose header length field says hlen, then the header text, then ndata zero bytes. */
static void craft_len(const char *path, uint64_t hlen, const char *header, size_t ndata) {
    size_t n = strlen(header);
    unsigned char *b = calloc(1, 8 + n + ndata);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, header, n);
    write_bytes(path, b, 8 + n + ndata);
    free(b);
}

static void craft(const char *path, const char *header, size_t ndata) {
    craft_len(path, strlen(header), header, ndata);
}

static void refused(const char *path, const char *what) {
    rt_st_file *f = (rt_st_file *)1;
    int rc = rt_st_open(path, &f);
    CHECK_EQ_INT(rc, -1);
    CHECK(f == NULL);
    CHECK_STR_CONTAINS(rt_error(), path);
    CHECK_STR_CONTAINS(rt_error(), what);
    if (rc == 0) rt_st_close(f);
}

/* Is there a leftover "*.tmp.*" in the temporary folder? */
static int temp_files_left(void) {
    DIR *d = opendir(tmpdir);
    int found = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) found = 1;
    if (d) closedir(d);
    return found;
}

/* The writer's bytes equal a file built by hand from the format's description:
 * tensors sorted by name, metadata first and sorted by key, compact JSON, the header
 * padded with spaces to a multiple of 8, the data in name order. */
static void test_write_matches_hand_built(void) {
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"a \\\"q\\\"\\n\"},"
        "\"a\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
        "\"b\xc3\xa9\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
        "\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[16,16]}}   ";
    size_t hn = strlen(hdr);
    CHECK_EQ_INT(hn % 8, 0);
    unsigned char expected[512];
    for (int i = 0; i < 8; i++) expected[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(expected + 8, hdr, hn);
    int64_t seven = 7;
    float two[2] = {1.0f, 2.0f};
    memcpy(expected + 8 + hn, &seven, 8);
    memcpy(expected + 16 + hn, two, 8);
    size_t en = 24 + hn;

    rt_st_tensor ts[3] = {
        {.name = "b\xc3\xa9", .dtype = RT_F32, .rank = 1, .dims = {2}, .data = two, .nbytes = 8},
        {.name = "c", .dtype = RT_U8, .rank = 1, .dims = {0}, .data = NULL, .nbytes = 0},
        {.name = "a", .dtype = RT_I64, .rank = 0, .data = &seven, .nbytes = 8},
    };
    rt_st_meta meta[2] = {{"note", "a \"q\"\n"}, {"format", "pt"}};
    if (rt_st_write(tmp("hand.safetensors"), ts, 3, meta, 2) != 0) {
        fprintf(stderr, "  %s\n", rt_error());
        CHECK(0);
        return;
    }
    size_t n;
    unsigned char *got = slurp(tmp("hand.safetensors"), &n);
    CHECK_EQ_INT(n, en);
    if (got && n == en && memcmp(got, expected, n) != 0) {
        fprintf(stderr, "  written:  %.*s\n  expected: %.*s\n", (int)hn, (char *)got + 8, (int)hn, hdr);
        CHECK(0);
    }
    free(got);

    // and the hand-built file reads back
    write_bytes(tmp("hand2.safetensors"), expected, en);
    rt_st_file *f;
    CHECK(rt_st_open(tmp("hand2.safetensors"), &f) == 0);
    if (!f) return;
    CHECK_EQ_INT(rt_st_count(f), 3);
    CHECK(strcmp(rt_st_meta_find(f, "note"), "a \"q\"\n") == 0);
    CHECK(strcmp(rt_st_meta_find(f, "format"), "pt") == 0);
    CHECK(rt_st_meta_find(f, "nope") == NULL);
    CHECK_EQ_INT(rt_st_meta_count(f), 2);
    CHECK(strcmp(rt_st_meta_at(f, 0)->key, "format") == 0);
    const rt_st_tensor *b = rt_st_find(f, "b\xc3\xa9");
    CHECK(b && b->dtype == RT_F32 && b->rank == 1 && b->dims[0] == 2 && b->nbytes == 8);
    if (b) CHECK(memcmp(b->data, two, 8) == 0);
    const rt_st_tensor *a = rt_st_find(f, "a");
    CHECK(a && a->rank == 0 && *(const int64_t *)a->data == 7);
    CHECK(rt_st_find(f, "d") == NULL);
    CHECK(strcmp(rt_st_at(f, 0)->name, "a") == 0);
    CHECK(rt_st_at(f, 3) == NULL);
    rt_st_close(f);
}

static void test_roundtrip_every_dtype(void) {
    const rt_dtype all[] = {RT_F64, RT_F32, RT_F16,  RT_BF16, RT_I64, RT_I32,      RT_I16,   RT_I8,
                            RT_U64, RT_U32, RT_U16,  RT_U8,   RT_BOOL, RT_F8E4M3FN, RT_F8E5M2};
    enum { N = sizeof all / sizeof all[0] };
    rt_st_tensor ts[N + 2];
    unsigned char *bufs[N];
    char names[N][32];
    for (int i = 0; i < N; i++) {
        size_t es = rt_dtype_size(all[i]);
        bufs[i] = malloc(es * 6);
        for (size_t k = 0; k < es * 6; k++) bufs[i][k] = (unsigned char)(k * 13 + (size_t)i);
        if (all[i] == RT_BOOL)
            for (size_t k = 0; k < 6; k++) bufs[i][k] &= 1;
        // reverse-sorted names, so that the writer must reorder
        snprintf(names[i], sizeof names[i], "layer.%02d.%s", N - i, rt_dtype_name(all[i]));
        ts[i] = (rt_st_tensor){.name = names[i], .dtype = all[i], .rank = 2, .dims = {2, 3},
                               .data = bufs[i], .nbytes = es * 6};
    }
    float scalar = 0.5f;
    ts[N] = (rt_st_tensor){.name = "scalar", .dtype = RT_F32, .rank = 0, .data = &scalar, .nbytes = 4};
    ts[N + 1] = (rt_st_tensor){.name = "empty", .dtype = RT_F16, .rank = 3, .dims = {4, 0, 2}, .nbytes = 0};
    CHECK(rt_st_write(tmp("all.safetensors"), ts, N + 2, NULL, 0) == 0);
    CHECK(!temp_files_left());

    rt_st_file *f;
    if (rt_st_open(tmp("all.safetensors"), &f) != 0) {
        fprintf(stderr, "  %s\n", rt_error());
        CHECK(0);
    } else {
        CHECK_EQ_INT(rt_st_count(f), N + 2);
        CHECK_EQ_INT(rt_st_meta_count(f), 0);
        for (int i = 0; i < N + 2; i++) {
            const rt_st_tensor *t = rt_st_find(f, ts[i].name);
            CHECK(t != NULL);
            if (!t) continue;
            CHECK_EQ_INT(t->dtype, ts[i].dtype);
            CHECK_EQ_INT(t->rank, ts[i].rank);
            for (int d = 0; d < t->rank; d++) CHECK_EQ_INT(t->dims[d], ts[i].dims[d]);
            CHECK_EQ_INT(t->nbytes, ts[i].nbytes);
            if (t->nbytes) CHECK(memcmp(t->data, ts[i].data, t->nbytes) == 0);
        }
        // the order of rt_st_at is the data order, which the writer makes name order
        for (int i = 1; i < rt_st_count(f); i++)
            CHECK(strcmp(rt_st_at(f, i - 1)->name, rt_st_at(f, i)->name) < 0);
        // typed loads check dtype and shape
        float dst[6];
        int64_t d23[2] = {2, 3}, d32[2] = {3, 2};
        CHECK(rt_st_load(f, names[1], RT_F32, 2, d23, dst) == 0);
        CHECK(memcmp(dst, bufs[1], 24) == 0);
        CHECK_EQ_INT(rt_st_load(f, names[1], RT_F32, 2, d32, dst), -1);
        CHECK_STR_CONTAINS(rt_error(), "is float32 [2,3]; expected float32 [3,2]");
        CHECK_EQ_INT(rt_st_load(f, names[1], RT_I32, 2, d23, dst), -1);
        CHECK_STR_CONTAINS(rt_error(), "expected int32 [2,3]");
        CHECK_EQ_INT(rt_st_load(f, "missing", RT_F32, 2, d23, dst), -1);
        CHECK_STR_CONTAINS(rt_error(), "no tensor named 'missing'; the file has 17 tensors ('empty', 'layer.01");
        CHECK_STR_CONTAINS(rt_error(), tmp("all.safetensors"));
        rt_st_close(f);
    }
    for (int i = 0; i < N; i++) free(bufs[i]);
}

static void test_names_and_metadata_escaped(void) {
    const char *names[] = {"quote\"d", "back\\slash", "ctl\x01\x1f\t\n", "\xf0\x9f\x98\x80 emoji", "/"};
    rt_st_tensor ts[5];
    uint8_t v[5] = {1, 2, 3, 4, 5};
    for (int i = 0; i < 5; i++)
        ts[i] = (rt_st_tensor){.name = names[i], .dtype = RT_U8, .rank = 1, .dims = {1}, .data = &v[i], .nbytes = 1};
    rt_st_meta meta[2] = {{"k\"", "v\\\x7f"}, {"", ""}};
    CHECK(rt_st_write(tmp("esc.safetensors"), ts, 5, meta, 2) == 0);
    rt_st_file *f;
    CHECK(rt_st_open(tmp("esc.safetensors"), &f) == 0);
    if (!f) return;
    for (int i = 0; i < 5; i++) {
        const rt_st_tensor *t = rt_st_find(f, names[i]);
        CHECK(t && *(const uint8_t *)t->data == v[i]);
    }
    CHECK(strcmp(rt_st_meta_find(f, "k\""), "v\\\x7f") == 0);
    CHECK(strcmp(rt_st_meta_find(f, ""), "") == 0);
    rt_st_close(f);

    // JSON escapes a writer may use that ours does not: \/, \u with surrogate pairs
    craft(tmp("u.safetensors"),
          "{\"\\u00e9\\/\\ud83d\\ude00\\b\\f\\r\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    CHECK(rt_st_open(tmp("u.safetensors"), &f) == 0);
    if (!f) return;
    CHECK(rt_st_find(f, "\xc3\xa9/\xf0\x9f\x98\x80\b\f\r") != NULL);
    rt_st_close(f);

    // an empty file of tensors: just "{}" padded
    CHECK(rt_st_write(tmp("none.safetensors"), NULL, 0, NULL, 0) == 0);
    size_t n;
    unsigned char *b = slurp(tmp("none.safetensors"), &n);
    CHECK(n == 16 && b && memcmp(b, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
    free(b);
    CHECK(rt_st_open(tmp("none.safetensors"), &f) == 0);
    if (f) CHECK_EQ_INT(rt_st_count(f), 0);
    rt_st_close(f);
}

static void test_atomic_write(void) {
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    rt_st_tensor t = {.name = "w", .dtype = RT_F32, .rank = 1, .dims = {4}, .data = a, .nbytes = 16};
    const char *path = tmp("ckpt.safetensors");
    CHECK(rt_st_write(path, &t, 1, NULL, 0) == 0);
    CHECK(!temp_files_left());
    // overwriting replaces the file as a whole
    t.data = b;
    CHECK(rt_st_write(path, &t, 1, NULL, 0) == 0);
    CHECK(!temp_files_left());
    rt_st_file *f;
    CHECK(rt_st_open(path, &f) == 0);
    if (f) CHECK(memcmp(rt_st_find(f, "w")->data, b, 16) == 0);
    rt_st_close(f);
    // a refused write leaves the old file whole and no temporary behind
    rt_st_tensor bad[2] = {t, t};
    CHECK_EQ_INT(rt_st_write(path, bad, 2, NULL, 0), -1);
    CHECK_STR_CONTAINS(rt_error(), "two tensors named 'w'");
    CHECK(!temp_files_left());
    CHECK(rt_st_open(path, &f) == 0);
    rt_st_close(f);
    // a folder that does not exist
    CHECK_EQ_INT(rt_st_write(tmp("no/such.safetensors"), &t, 1, NULL, 0), -1);
    CHECK_STR_CONTAINS(rt_error(), "cannot create the temporary file");
    // a temporary that cannot be renamed over its target (a non-empty folder) is removed
    CHECK(mkdir(tmp("dir.safetensors"), 0700) == 0);
    CHECK(mkdir(tmp("dir.safetensors/x"), 0700) == 0);
    CHECK_EQ_INT(rt_st_write(tmp("dir.safetensors"), &t, 1, NULL, 0), -1);
    CHECK_STR_CONTAINS(rt_error(), "cannot rename");
    CHECK(!temp_files_left());
    rmdir(tmp("dir.safetensors/x"));
    rmdir(tmp("dir.safetensors"));
}

static void test_write_refusals(void) {
    float v[2] = {0};
    const struct {
        rt_st_tensor t;
        const char *says;
    } cases[] = {
        {{.name = "", .dtype = RT_F32, .rank = 1, .dims = {2}, .data = v, .nbytes = 8}, "empty name"},
        {{.name = NULL, .dtype = RT_F32, .rank = 1, .dims = {2}, .data = v, .nbytes = 8}, "empty name"},
        {{.name = "__metadata__", .dtype = RT_F32, .rank = 1, .dims = {2}, .data = v, .nbytes = 8}, "reserved"},
        {{.name = "x", .dtype = RT_UNDEFINED, .rank = 1, .dims = {2}, .data = v, .nbytes = 8}, "of dtype undefined"},
        {{.name = "x", .dtype = RT_F32, .rank = 9, .dims = {2}, .data = v, .nbytes = 8}, "rank 9"},
        {{.name = "x", .dtype = RT_F32, .rank = 1, .dims = {-2}, .data = v, .nbytes = 8}, "dim 0 = -2"},
        {{.name = "x", .dtype = RT_F32, .rank = 1, .dims = {2}, .data = v, .nbytes = 6}, "holds 8 bytes, but nbytes is 6"},
        {{.name = "x", .dtype = RT_F32, .rank = 1, .dims = {2}, .data = NULL, .nbytes = 8}, "data is NULL"},
        {{.name = "x", .dtype = RT_F32, .rank = 3, .dims = {INT64_MAX, INT64_MAX, 2}, .data = v, .nbytes = 8},
         "but nbytes is 8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ_INT(rt_st_write(tmp("r.safetensors"), &cases[i].t, 1, NULL, 0), -1);
        CHECK_STR_CONTAINS(rt_error(), cases[i].says);
    }
    rt_st_tensor ok = {.name = "x", .dtype = RT_F32, .rank = 1, .dims = {2}, .data = v, .nbytes = 8};
    rt_st_meta dup[2] = {{"k", "1"}, {"k", "2"}};
    CHECK_EQ_INT(rt_st_write(tmp("r.safetensors"), &ok, 1, dup, 2), -1);
    CHECK_STR_CONTAINS(rt_error(), "metadata key 'k' twice");
    rt_st_meta nul[1] = {{"k", NULL}};
    CHECK_EQ_INT(rt_st_write(tmp("r.safetensors"), &ok, 1, nul, 1), -1);
    CHECK_STR_CONTAINS(rt_error(), "NULL");
    CHECK(access(tmp("r.safetensors"), F_OK) != 0);
    CHECK(!temp_files_left());
}

#define E(name, rest) "{\"" name "\":{" rest "}}"
#define F32_2(off) "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" off

static void test_malformed(void) {
    const struct {
        const char *header;
        size_t ndata;
        const char *says;
    } cases[] = {
        // JSON syntax, with the byte offset
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "at byte 61: expected ',' or '}'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8, "expected a tensor name"},
        {"{'a':{}}", 0, "at byte 9: expected a tensor name (a string), found '''"},
        {"", 0, "expected '{' at the start of the header, found the end of the header"},
        {"[]", 0, "expected '{' at the start"},
        {"{} x", 0, "only spaces after the header's closing '}'"},
        {"{}\n\t {", 0, "only spaces after"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]"), 8, "not a fraction or exponent"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]"), 8, "not a fraction or exponent"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]"), 8, "a dim (a non-negative integer)"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]"), 8, "without leading zeros"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]"), 8, "a dim"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]"), 8, "']' after the two data_offsets"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]"), 8, "',' between the two data_offsets"},
        {E("a", "\"dtype\":F32,\"shape\":[2],\"data_offsets\":[0,8]"), 8, "a dtype string"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]"), 8,
         "does not fit in 64 bits"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,8]"), 8, "beyond 2^63 - 1"},
        {E("a\\x", F32_2("[0,8]")), 8, "an escape"},
        {E("a\\u12G4", F32_2("[0,8]")), 8, "4 hex digits after \\u"},
        {E("a\\udc00", F32_2("[0,8]")), 8, "a high surrogate before a low one"},
        {E("a\\ud800x", F32_2("[0,8]")), 8, "a \\u low surrogate after a high one"},
        {E("a\\u0000", F32_2("[0,8]")), 8, "\\u0000"},
        {E("a\xff", F32_2("[0,8]")), 8, "valid UTF-8"},
        {E("a\xc0\x80", F32_2("[0,8]")), 8, "valid UTF-8"},
        {E("a\xed\xa0\x80", F32_2("[0,8]")), 8, "valid UTF-8"},
        {E("a\x01", F32_2("[0,8]")), 8, "control characters must be escaped"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8, "found the end of the header"},
        {"{\"a", 0, "the closing '\"' of a string"},
        // fields
        {E("a", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1"), 8, "unknown field \"extra\""},
        {E("a", "\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 8, "has \"dtype\" twice"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[2]"), 8, "tensor 'a' has no \"data_offsets\""},
        {E("a", "\"dtype\":\"C64\",\"shape\":[2],\"data_offsets\":[0,8]"), 8, "unsupported dtype \"C64\""},
        {E("a", "\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]"), 8, "more than 8 dims"},
        {E("", F32_2("[0,8]")), 8, "empty name"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "a string value"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "\"__metadata__\" appears twice"},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "has key 'k' twice"},
        {"{\"a\":{" F32_2("[0,8]") "},\"a\":{" F32_2("[8,16]") "}}", 16, "tensor 'a' appears twice"},
        // layout
        {E("a", F32_2("[0,400]")), 8, "out of range: the data section is 8 bytes"},
        {E("a", F32_2("[18446744073709551615,8]")), 8, "the end is before the begin"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), 12, "(8 bytes), but shape [3] of F32 needs 12"},
        {E("a", "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]"), 8,
         "needs more than 18446744073709551615 bytes"},
        {"{\"a\":{" F32_2("[0,8]") "},\"b\":{" F32_2("[4,12]") "}}", 12, "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a'"},
        {"{\"a\":{" F32_2("[0,8]") "},\"b\":{" F32_2("[12,20]") "}}", 20, "a gap of 4 unused bytes before tensor 'b'"},
        {E("a", F32_2("[0,8]")), 9, "the file size does not match the header"},
        {E("a", F32_2("[0,8]")), 4, "out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        craft(tmp("bad.safetensors"), cases[i].header, cases[i].ndata);
        refused(tmp("bad.safetensors"), cases[i].says);
    }
    // the header length field, against the file
    craft_len(tmp("long.safetensors"), 1000, "{}", 0);
    refused(tmp("long.safetensors"), "the header length is 1000 bytes but the file has only 2 bytes after it");
    craft_len(tmp("huge.safetensors"), UINT64_MAX, "{}", 0);
    refused(tmp("huge.safetensors"), "the header length is 18446744073709551615 bytes");
    write_bytes(tmp("short.safetensors"), "\x02\0\0", 3);
    refused(tmp("short.safetensors"), "too short for the 8-byte header length");
    refused(tmp("missing.safetensors"), "cannot open for reading");
    // spaces and newlines around the JSON are fine
    craft(tmp("ws.safetensors"), " {\n \"a\" : { \"dtype\" : \"F32\" , \"shape\" : [ 2 ] , \"data_offsets\" : [ 0 , 8 ] } }\t\r\n", 8);
    rt_st_file *f;
    CHECK(rt_st_open(tmp("ws.safetensors"), &f) == 0);
    rt_st_close(f);
    // zero-size tensors may share an offset
    craft(tmp("z.safetensors"),
          "{\"z1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
          "\"z2\":{\"dtype\":\"I8\",\"shape\":[3,0],\"data_offsets\":[0,0]},"
          "\"a\":{" F32_2("[0,8]") "}}", 8);
    CHECK(rt_st_open(tmp("z.safetensors"), &f) == 0);
    if (f) CHECK_EQ_INT(rt_st_count(f), 3);
    rt_st_close(f);
}

static void test_load_weight(void) {
    /* 1 + 2^-8 and 1 + 3*2^-8 are ties (to 1 and to 1 + 2^-6: even), 1 + 2^-8 + 2^-20
     * rounds up, FLT_MAX overflows to inf, NaN stays NaN (sign kept), -0 and -inf pass */
    uint32_t bits[8] = {0x3f800000, 0x3f808000, 0x3f818000, 0x3f808008, 0x7f7fffff, 0xffc00001, 0x80000000, 0xff800000};
    uint16_t want[8] = {0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x7f80, 0xffc0, 0x8000, 0xff80};
    float x[8];
    memcpy(x, bits, sizeof x);
    int32_t ints[8] = {0};
    rt_st_tensor t[2] = {{.name = "w", .dtype = RT_F32, .rank = 2, .dims = {2, 4}, .data = x, .nbytes = 32},
                         {.name = "n", .dtype = RT_I32, .rank = 2, .dims = {2, 4}, .data = ints, .nbytes = 32}};
    CHECK(rt_st_write(tmp("w.safetensors"), t, 2, NULL, 0) == 0);
    rt_st_file *f;
    CHECK(rt_st_open(tmp("w.safetensors"), &f) == 0);
    if (!f) return;
    uint16_t got[8] = {0};
    int64_t dims[2] = {2, 4}, wrong[2] = {4, 2};
    CHECK_EQ_INT(rt_st_load_weight(f, "w", RT_BF16, 2, dims, got), 0);
    CHECK(memcmp(got, want, sizeof want) == 0);
    float back[8];
    CHECK_EQ_INT(rt_st_load_weight(f, "w", RT_F32, 2, dims, back), 0); /* its own dtype: as it is */
    CHECK(memcmp(back, x, sizeof x) == 0);
    CHECK_EQ_INT(rt_st_load_weight(f, "w", RT_BF16, 2, wrong, got), -1); /* another shape */
    CHECK_STR_CONTAINS(rt_error(), "expected bfloat16 [4,2]");
    CHECK_EQ_INT(rt_st_load_weight(f, "n", RT_BF16, 2, dims, got), -1); /* only float32 converts */
    CHECK_STR_CONTAINS(rt_error(), "tensor 'n' is int32");
    CHECK_EQ_INT(rt_st_load(f, "w", RT_BF16, 2, dims, got), -1); /* rt_st_load stays exact */
    rt_st_close(f);
}

int main(void) {
    if (tfiles_init("loom_rt_st") < 0) return 1;
    RUN(test_load_weight);
    RUN(test_write_matches_hand_built);
    RUN(test_roundtrip_every_dtype);
    RUN(test_names_and_metadata_escaped);
    RUN(test_atomic_write);
    RUN(test_write_refusals);
    RUN(test_malformed);
    tfiles_cleanup();
    return CHECK_DONE();
}
