/* NumPy .npy files: the format in which generated programs take their data
 * (--data, --input) and give their outputs (--output).
 *
 * A file is the magic "\x93NUMPY", a version (1.0: 2-byte header length; 2.0 and 3.0:
 * 4-byte), a header that is a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and a newline, then the raw array. The reader parses that dict
 * itself (keys in any order, any spacing, trailing commas, Python 2 "3L" dims), takes
 * only little-endian C-order numeric and bool arrays, and checks every length against
 * the file's size before allocating, so that a hostile header cannot make it crash or
 * allocate more than the file holds. The writer reproduces numpy.save byte for byte. */
#include "rt.h"

#include <string.h>

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
#define NPY_ALIGN 64          // numpy pads the header so the data starts on this boundary
#define NPY_GROWTH_DIGITS 21  // numpy leaves room in the header for the first dim to grow
#define NPY_MAX_HEADER (1u << 20)

/* ---- dtypes -------------------------------------------------------------------------- */

/* The numpy type code of each dtype that has one ("f4" for float32). */
static const char *npy_code(rt_dtype t) {
    switch (t) {
    case RT_F16: return "f2";
    case RT_F32: return "f4";
    case RT_F64: return "f8";
    case RT_I8: return "i1";
    case RT_I16: return "i2";
    case RT_I32: return "i4";
    case RT_I64: return "i8";
    case RT_U8: return "u1";
    case RT_U16: return "u2";
    case RT_U32: return "u4";
    case RT_U64: return "u8";
    case RT_BOOL: return "b1";
    default: return NULL;
    }
}

static const rt_dtype npy_dtypes[] = {RT_F16, RT_F32, RT_F64, RT_I8,  RT_I16, RT_I32,
                                      RT_I64, RT_U8,  RT_U16, RT_U32, RT_U64, RT_BOOL};

#define NPY_SUPPORTED "f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1"

/* Maps a descr string ("<f4", "|b1") to a dtype, or explains why it cannot. */
static int npy_parse_descr(const char *path, const char *descr, rt_dtype *out) {
    const char *code = descr;
    char order = '=';
    if (*code == '<' || *code == '>' || *code == '|' || *code == '=') order = *code++;
    rt_dtype t = RT_UNDEFINED;
    for (size_t i = 0; i < sizeof npy_dtypes / sizeof npy_dtypes[0]; i++)
        if (strcmp(code, npy_code(npy_dtypes[i])) == 0) t = npy_dtypes[i];
    if (t == RT_UNDEFINED) {
        const char *what = "";
        switch (code[0]) {
        case 'U': case 'S': case 'a': what = " (strings)"; break;
        case 'O': what = " (Python objects)"; break;
        case 'c': what = " (complex numbers)"; break;
        case 'M': case 'm': what = " (dates or times)"; break;
        case 'V': what = " (raw or structured records)"; break;
        case 'f': what = " (this float width)"; break;
        }
        return rt_fail("%s: unsupported dtype '%s'%s; expected one of " NPY_SUPPORTED, path, descr, what);
    }
    // a single byte has no byte order, and numpy writes '|' for it
    if (rt_dtype_size(t) > 1) {
        if (order == '>')
            return rt_fail("%s: big-endian data ('%s') is not supported; expected little-endian "
                           "('<%s'): convert with arr.astype('<%s')", path, descr, code, code);
        if (order == '|')
            return rt_fail("%s: dtype '%s' has no byte order; expected '<%s'", path, descr, code);
    }
    *out = t;
    return 0;
}

/* ---- header parsing ------------------------------------------------------------------ */

/* A cursor over the header text; every read is bounds-checked against len. */
typedef struct {
    const char *path;
    const char *s;
    size_t len, at;
} npy_cursor;

static int peek(const npy_cursor *c) { return c->at < c->len ? (unsigned char)c->s[c->at] : -1; }

static void skip_ws(npy_cursor *c) {
    while (c->at < c->len && strchr(" \t\r\n", c->s[c->at]) && c->s[c->at]) c->at++;
}

static int syntax(const npy_cursor *c, const char *expected) {
    int ch = peek(c);
    char got[16];
    if (ch < 0) snprintf(got, sizeof got, "the end");
    else if (ch >= 0x20 && ch < 0x7f) snprintf(got, sizeof got, "'%c'", ch);
    else snprintf(got, sizeof got, "byte 0x%02x", ch);
    return rt_fail("%s: malformed .npy header: expected %s at header offset %zu, found %s", c->path,
                   expected, c->at, got);
}

static int expect_char(npy_cursor *c, char ch, const char *expected) {
    skip_ws(c);
    if (peek(c) != (unsigned char)ch) return syntax(c, expected);
    c->at++;
    return 0;
}

/* A Python string literal in single or double quotes, copied into out[cap]. */
static int parse_str(npy_cursor *c, char *out, size_t cap) {
    skip_ws(c);
    int q = peek(c);
    if (q != '\'' && q != '"') return syntax(c, "a quoted string");
    c->at++;
    size_t n = 0;
    for (;;) {
        int ch = peek(c);
        if (ch < 0 || ch == '\n') return syntax(c, "the closing quote of a string");
        c->at++;
        if (ch == q) break;
        if (ch == '\\') {
            ch = peek(c);
            if (ch < 0) return syntax(c, "an escaped character");
            c->at++;
        }
        if (n + 1 >= cap) return rt_fail("%s: malformed .npy header: a string at header offset %zu is "
                                         "longer than %zu characters", c->path, c->at, cap - 1);
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return 0;
}

/* A non-negative Python int (with an optional Python 2 'L' suffix). */
static int parse_dim(npy_cursor *c, int64_t *out) {
    skip_ws(c);
    if (peek(c) == '-') return rt_fail("%s: malformed .npy header: negative dim at header offset %zu",
                                       c->path, c->at);
    if (peek(c) < '0' || peek(c) > '9') return syntax(c, "a dim (a non-negative integer)");
    int64_t v = 0;
    while (peek(c) >= '0' && peek(c) <= '9') {
        int d = peek(c) - '0';
        if (v > (INT64_MAX - d) / 10)
            return rt_fail("%s: malformed .npy header: dim at header offset %zu does not fit in 64 bits",
                           c->path, c->at);
        v = v * 10 + d;
        c->at++;
    }
    if (peek(c) == 'L' || peek(c) == 'l') c->at++;
    *out = v;
    return 0;
}

/* A shape tuple: "()", "(3,)", "(3, 4)", "(3, 4,)". */
static int parse_shape(npy_cursor *c, int *rank, int64_t *dims) {
    if (expect_char(c, '(', "a shape tuple '(...)'") != 0) return -1;
    int n = 0, trailing_comma = 0;
    skip_ws(c);
    while (peek(c) != ')') {
        int64_t d = 0;
        if (parse_dim(c, &d) != 0) return -1;
        if (n == RT_MAX_RANK)
            return rt_fail("%s: the array has more than %d dimensions; the runtime supports at most %d",
                           c->path, RT_MAX_RANK, RT_MAX_RANK);
        dims[n++] = d;
        skip_ws(c);
        trailing_comma = 0;
        if (peek(c) == ',') {
            c->at++;
            trailing_comma = 1;
            skip_ws(c);
        } else if (peek(c) != ')') {
            return syntax(c, "',' or ')' in the shape");
        }
    }
    // in Python "(3)" is the int 3, not a tuple
    if (n == 1 && !trailing_comma) return syntax(c, "',' after the only dim of a shape (as in '(3,)')");
    c->at++;
    *rank = n;
    return 0;
}

static int parse_bool(npy_cursor *c, int *out) {
    skip_ws(c);
    if (c->len - c->at >= 4 && memcmp(c->s + c->at, "True", 4) == 0) {
        c->at += 4;
        *out = 1;
    } else if (c->len - c->at >= 5 && memcmp(c->s + c->at, "False", 5) == 0) {
        c->at += 5;
        *out = 0;
    } else {
        return syntax(c, "True or False");
    }
    return 0;
}

typedef struct {
    rt_dtype dtype;
    int fortran;
    int rank;
    int64_t dims[RT_MAX_RANK];
} npy_header;

static int parse_header(const char *path, const char *text, size_t len, npy_header *h) {
    npy_cursor c = {path, text, len, 0};
    char key[64], descr[64];
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (expect_char(&c, '{', "'{' to open the header dict") != 0) return -1;
    skip_ws(&c);
    while (peek(&c) != '}') {
        size_t key_at = c.at;
        if (parse_str(&c, key, sizeof key) != 0) return -1;
        if (expect_char(&c, ':', "':' after a key") != 0) return -1;
        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &seen_descr;
            skip_ws(&c);
            if (peek(&c) == '[')
                return rt_fail("%s: unsupported dtype: a structured array (a list of fields); expected "
                               "one of " NPY_SUPPORTED, path);
            if (parse_str(&c, descr, sizeof descr) != 0) return -1;
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &seen_fortran;
            if (parse_bool(&c, &h->fortran) != 0) return -1;
        } else if (strcmp(key, "shape") == 0) {
            seen = &seen_shape;
            if (parse_shape(&c, &h->rank, h->dims) != 0) return -1;
        } else {
            return rt_fail("%s: malformed .npy header: unexpected key '%s' at header offset %zu; expected "
                           "'descr', 'fortran_order' and 'shape'", path, key, key_at);
        }
        if (*seen) return rt_fail("%s: malformed .npy header: key '%s' appears twice", path, key);
        *seen = 1;
        skip_ws(&c);
        if (peek(&c) == ',') {
            c.at++;
            skip_ws(&c);
        } else if (peek(&c) != '}') {
            return syntax(&c, "',' or '}' after a value");
        }
    }
    c.at++;
    skip_ws(&c);
    if (c.at != len) return syntax(&c, "only padding after the header dict");
    if (!seen_descr || !seen_fortran || !seen_shape)
        return rt_fail("%s: malformed .npy header: missing key '%s'; expected 'descr', 'fortran_order' "
                       "and 'shape'", path, !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    if (npy_parse_descr(path, descr, &h->dtype) != 0) return -1;
    // numpy writes fortran_order=True only for arrays that are not also C-contiguous, so the
    // bytes really are in another order: refuse rather than transpose behind the user's back
    if (h->fortran)
        return rt_fail("%s: Fortran-order arrays are not supported; save with np.ascontiguousarray", path);
    return 0;
}

/* ---- reading ------------------------------------------------------------------------- */

static int read_fail(FILE *f, rt_tensor *out) {
    if (f) fclose(f);
    rt_tensor_free(out);
    return -1;
}

int rt_npy_read(const char *path, rt_tensor *out) {
    memset(out, 0, sizeof *out);
    FILE *f;
    uint64_t size;
    if (rt_file_open(path, &f, &size) != 0) return -1;

    // magic (6), version (2), header length (2 in 1.0, 4 in 2.0 and 3.0)
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, f);
    size_t cmp = got < 6 ? got : 6;
    if (got == 0) {
        rt_fail("%s: the file is empty; expected an .npy file", path);
        return read_fail(f, out);
    }
    if (memcmp(pre, npy_magic, cmp) != 0) {
        rt_fail("%s: not an .npy file (bad magic); expected it to start with \"\\x93NUMPY\"", path);
        return read_fail(f, out);
    }
    if (got < 10) {
        rt_fail("%s: truncated: the file ends inside the .npy preamble (%zu bytes)", path, got);
        return read_fail(f, out);
    }
    int major = pre[6], minor = pre[7];
    uint64_t hlen, prefix;
    if (major == 1 && minor == 0) {
        hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
        prefix = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (rt_file_read(f, pre + 10, 2, path, ".npy preamble") != 0) return read_fail(f, out);
        hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
        prefix = 12;
    } else {
        rt_fail("%s: unsupported .npy format version %d.%d; expected 1.0, 2.0 or 3.0", path, major, minor);
        return read_fail(f, out);
    }
    if (hlen > size - prefix) {
        rt_fail("%s: truncated: the header length is %llu bytes but only %llu bytes follow the preamble",
                path, (unsigned long long)hlen, (unsigned long long)(size - prefix));
        return read_fail(f, out);
    }
    if (hlen > NPY_MAX_HEADER) {
        rt_fail("%s: malformed .npy header: %llu bytes long; expected at most %u", path,
                (unsigned long long)hlen, NPY_MAX_HEADER);
        return read_fail(f, out);
    }
    char *text = malloc(hlen ? hlen : 1);
    if (!text) {
        rt_fail("%s: out of memory reading the header", path);
        return read_fail(f, out);
    }
    npy_header h = {0};
    int rc = rt_file_read(f, text, hlen, path, "header");
    if (rc == 0) rc = parse_header(path, text, hlen, &h);
    free(text);
    if (rc != 0) return read_fail(f, out);

    uint64_t avail = size - prefix - hlen;
    uint64_t need = rt_nbytes(h.dtype, h.rank, h.dims);
    if (need != avail) {
        char shape[200], needs[48];
        rt_shape_str(shape, sizeof shape, h.rank, h.dims);
        if (need == UINT64_MAX) snprintf(needs, sizeof needs, "more than 2^64");
        else snprintf(needs, sizeof needs, "%llu", (unsigned long long)need);
        rt_fail("%s: the file size does not match the header: shape %s of %s needs %s bytes of data, "
                "the file has %llu after its %llu-byte header%s", path, shape, rt_dtype_name(h.dtype),
                needs, (unsigned long long)avail, (unsigned long long)(prefix + hlen),
                need > avail ? " (truncated?)" : " (trailing bytes?)");
        return read_fail(f, out);
    }
    if (rt_tensor_alloc(out, h.dtype, h.rank, h.dims) != 0) {
        char msg[RT_ERR_LEN];
        snprintf(msg, sizeof msg, "%s", rt_error());
        rt_fail("%s: %s", path, msg);
        return read_fail(f, out);
    }
    if (rt_file_read(f, out->data, out->nbytes, path, "data") != 0) return read_fail(f, out);
    fclose(f);
    return 0;
}

/* ---- writing ------------------------------------------------------------------------- */

int rt_npy_write(const char *path, const rt_tensor *t) {
    const char *code = npy_code(t->dtype);
    if (!code) return rt_fail("%s: cannot write a %s tensor as .npy: numpy has no such dtype; expected one of "
                              NPY_SUPPORTED, path, rt_dtype_name(t->dtype));
    if (t->rank < 0 || t->rank > RT_MAX_RANK)
        return rt_fail("%s: cannot write a tensor of rank %d; expected 0 to %d", path, t->rank, RT_MAX_RANK);
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] < 0) return rt_fail("%s: cannot write a tensor with dim %d = %lld", path, i,
                                           (long long)t->dims[i]);
    uint64_t need = rt_nbytes(t->dtype, t->rank, t->dims);
    if (need != t->nbytes || (need > 0 && !t->data)) {
        char shape[200];
        return rt_fail("%s: cannot write: a %s tensor of shape %s holds %llu bytes, but nbytes is %zu%s", path,
                       rt_dtype_name(t->dtype), rt_shape_str(shape, sizeof shape, t->rank, t->dims),
                       (unsigned long long)need, t->nbytes, t->data ? "" : " and data is NULL");
    }

    // the dict as Python's repr writes it, keys sorted, as numpy.save does
    char dict[512];
    size_t n = (size_t)snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': (",
                                rt_dtype_size(t->dtype) == 1 ? '|' : '<', code);
    for (int i = 0; i < t->rank; i++)
        n += (size_t)snprintf(dict + n, sizeof dict - n, i ? ", %lld" : "%lld", (long long)t->dims[i]);
    n += (size_t)snprintf(dict + n, sizeof dict - n, "%s), }", t->rank == 1 ? "," : "");
    if (t->rank > 0) {
        int digits = snprintf(NULL, 0, "%lld", (long long)t->dims[0]);
        for (int i = digits; i < NPY_GROWTH_DIGITS; i++) dict[n++] = ' ';
    }

    // version 1.0 unless the padded header overflows its 2-byte length
    size_t hlen = n + 1, lenbytes = 2;
    size_t pad = NPY_ALIGN - (sizeof npy_magic + 2 + lenbytes + hlen) % NPY_ALIGN;
    if (hlen + pad > 0xffff) {
        lenbytes = 4;
        pad = NPY_ALIGN - (sizeof npy_magic + 2 + lenbytes + hlen) % NPY_ALIGN;
    }
    size_t total = hlen + pad;
    unsigned char head[sizeof npy_magic + 4 + sizeof dict + NPY_ALIGN + 1];
    size_t at = 0;
    memcpy(head, npy_magic, sizeof npy_magic);
    at += sizeof npy_magic;
    head[at++] = lenbytes == 2 ? 1 : 2;
    head[at++] = 0;
    for (size_t i = 0; i < lenbytes; i++) head[at++] = (unsigned char)(total >> (8 * i));
    memcpy(head + at, dict, n);
    at += n;
    memset(head + at, ' ', pad);
    at += pad;
    head[at++] = '\n';

    rt_atomic_file a;
    if (rt_atomic_open(&a, path) != 0) return -1;
    if (rt_atomic_write(&a, head, at) != 0 || rt_atomic_write(&a, t->data, t->nbytes) != 0) {
        rt_atomic_abort(&a);
        return -1;
    }
    return rt_atomic_commit(&a);
}
