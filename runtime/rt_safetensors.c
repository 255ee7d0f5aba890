/* .safetensors files: the format of a generated program's initial weights,
 * checkpoints (--save, --resume) and gradient dumps (--dump-grads).
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON mapping each
 * tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 * (offsets into the data section that follows) plus an optional "__metadata__" object
 * of string values, then the data section. The reader holds the same rules as the
 * reference Rust library: strict JSON (a small parser here, integers only, valid UTF-8,
 * no duplicate keys, no unknown fields), and tensors that tile the data section exactly.
 * Every failure names the file and, for syntax, the byte offset in it.
 *
 * The writer's layout is deterministic, so that the same tensors give the same bytes:
 * tensors sorted by name (bytewise strcmp) with their data in that order, metadata
 * sorted by key and written first, compact JSON escaped as serde_json does, padded with
 * spaces to a multiple of 8 bytes. (The Python library orders tensors by dtype
 * alignment, then name; any order is valid, and name order is easier to read.) */
#include "rt.h"

#include <string.h>

#define ST_MAX_HEADER 100000000u  // the reference library's limit on the header length

struct rt_st_file {
    char *path;
    char *strings;        // unescaped names, dtypes and metadata, NUL-terminated
    unsigned char *data;  // the data section
    size_t data_len;
    rt_st_tensor *tensors;  // in data-offset order
    int n;
    const rt_st_tensor **by_name;  // sorted by name, for lookups
    rt_st_meta *meta;               // sorted by key
    int nmeta;
};

/* ---- dtypes -------------------------------------------------------------------------- */

static const struct {
    rt_dtype dtype;
    const char *name;
} st_dtypes[] = {
    {RT_F64, "F64"}, {RT_F32, "F32"}, {RT_F16, "F16"},       {RT_BF16, "BF16"},
    {RT_I64, "I64"}, {RT_I32, "I32"}, {RT_I16, "I16"},       {RT_I8, "I8"},
    {RT_U64, "U64"}, {RT_U32, "U32"}, {RT_U16, "U16"},       {RT_U8, "U8"},
    {RT_BOOL, "BOOL"}, {RT_F8E4M3FN, "F8_E4M3"}, {RT_F8E5M2, "F8_E5M2"},
};
#define ST_NDTYPES (int)(sizeof st_dtypes / sizeof st_dtypes[0])
#define ST_SUPPORTED "F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2"

static const char *st_dtype_name(rt_dtype t) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (st_dtypes[i].dtype == t) return st_dtypes[i].name;
    return NULL;
}

/* ---- JSON header parsing ------------------------------------------------------------- */

/* A cursor over the header; offsets in messages count from the start of the file. */
typedef struct {
    const char *path;
    const unsigned char *s;
    size_t len, at;
    char *arena;  // strings are unescaped here; never outgrows the header's length
    size_t arena_at;
} json;

static void ws(json *j) {
    while (j->at < j->len && (j->s[j->at] == ' ' || j->s[j->at] == '\t' || j->s[j->at] == '\n' ||
                              j->s[j->at] == '\r'))
        j->at++;
}

static int peek(const json *j) { return j->at < j->len ? j->s[j->at] : -1; }

static int jerr(const json *j, const char *expected) {
    int ch = peek(j);
    char got[24];
    if (ch < 0) snprintf(got, sizeof got, "the end of the header");
    else if (ch >= 0x20 && ch < 0x7f) snprintf(got, sizeof got, "'%c'", ch);
    else snprintf(got, sizeof got, "byte 0x%02x", ch);
    return rt_fail("%s: malformed safetensors header at byte %zu: expected %s, found %s", j->path,
                   8 + j->at, expected, got);
}

static int expect(json *j, char ch, const char *expected) {
    ws(j);
    if (peek(j) != (unsigned char)ch) return jerr(j, expected);
    j->at++;
    return 0;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(json *j, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(peek(j));
        if (h < 0) return jerr(j, "4 hex digits after \\u");
        v = v << 4 | (unsigned)h;
        j->at++;
    }
    *out = v;
    return 0;
}

static void put_utf8(json *j, unsigned cp) {
    unsigned char *o = (unsigned char *)j->arena + j->arena_at;
    int extra = cp < 0x80 ? 0 : cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
    static const unsigned char lead[4] = {0x00, 0xc0, 0xe0, 0xf0};
    // the lead byte carries the top bits, each continuation byte the next 6
    o[0] = (unsigned char)(lead[extra] | cp >> (6 * extra));
    for (int k = 1; k <= extra; k++) o[k] = (unsigned char)(0x80 | (cp >> (6 * (extra - k)) & 0x3f));
    j->arena_at += (size_t)extra + 1;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (overlong forms and surrogates
 * are invalid, as in RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* A JSON string, unescaped into the arena; *out points at it. */
static int jstring(json *j, const char **out, const char *expected) {
    ws(j);
    if (peek(j) != '"') return jerr(j, expected);
    j->at++;
    char *start = j->arena + j->arena_at;
    for (;;) {
        int c = peek(j);
        if (c < 0) return jerr(j, "the closing '\"' of a string");
        if (c == '"') {
            j->at++;
            break;
        }
        if (c < 0x20) return jerr(j, "a string character (control characters must be escaped)");
        if (c == '\\') {
            j->at++;
            int e = peek(j);
            const char *simple = strchr("\"\\/bfnrt", e > 0 ? e : 'x');
            if (e > 0 && simple) {
                static const char to[] = "\"\\/\b\f\n\r\t";
                j->arena[j->arena_at++] = to[simple - "\"\\/bfnrt"];
                j->at++;
                continue;
            }
            if (e != 'u') return jerr(j, "an escape (one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
            j->at++;
            unsigned cp;
            if (hex4(j, &cp) != 0) return -1;
            if (cp >= 0xdc00 && cp <= 0xdfff) return jerr(j, "a high surrogate before a low one");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (peek(j) != '\\' || j->at + 1 >= j->len || j->s[j->at + 1] != 'u')
                    return jerr(j, "a \\u low surrogate after a high one");
                j->at += 2;
                if (hex4(j, &lo) != 0) return -1;
                if (lo < 0xdc00 || lo > 0xdfff) return jerr(j, "a low surrogate (\\udc00 to \\udfff)");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0) return rt_fail("%s: unsupported safetensors header at byte %zu: a string holds "
                                        "\\u0000, which names cannot contain", j->path, 8 + j->at);
            // an escape is at least 6 header bytes and yields at most 4, so the arena keeps up
            put_utf8(j, cp);
            continue;
        }
        size_t len = 1;
        if (c >= 0x80 && (len = utf8_len(j->s + j->at, j->len - j->at)) == 0)
            return jerr(j, "valid UTF-8 in a string");
        memcpy(j->arena + j->arena_at, j->s + j->at, len);
        j->arena_at += len;
        j->at += len;
    }
    j->arena[j->arena_at++] = '\0';
    *out = start;
    return 0;
}

/* A non-negative JSON integer (no sign, fraction or exponent: sizes and offsets). */
static int juint(json *j, uint64_t *out, const char *expected) {
    ws(j);
    size_t start = j->at;
    int c = peek(j);
    if (c < '0' || c > '9') return jerr(j, expected);
    uint64_t v = 0;
    while ((c = peek(j)) >= '0' && c <= '9') {
        if (v > (UINT64_MAX - (unsigned)(c - '0')) / 10)
            return rt_fail("%s: malformed safetensors header at byte %zu: the integer does not fit in 64 bits",
                           j->path, 8 + start);
        v = v * 10 + (unsigned)(c - '0');
        j->at++;
    }
    if (j->s[start] == '0' && j->at - start > 1) {
        j->at = start;
        return jerr(j, "an integer without leading zeros");
    }
    if (c == '.' || c == 'e' || c == 'E') return jerr(j, "an integer (not a fraction or exponent)");
    *out = v;
    return 0;
}

/* After a member or element: ',' (then another must follow) or the closing bracket.
 * Returns 1 to go on, 0 at the end, -1 on error. */
static int next_or_end(json *j, char close, const char *expected) {
    ws(j);
    if (peek(j) == ',') {
        j->at++;
        return 1;
    }
    if (peek(j) == (unsigned char)close) {
        j->at++;
        return 0;
    }
    return jerr(j, expected);
}

static int parse_meta(json *j, rt_st_meta **meta, int *nmeta, int *cap) {
    if (expect(j, '{', "'{' to open \"__metadata__\"") != 0) return -1;
    ws(j);
    if (peek(j) == '}') {
        j->at++;
        return 0;
    }
    for (;;) {
        const char *key, *value;
        if (jstring(j, &key, "a string key in \"__metadata__\"") != 0) return -1;
        if (expect(j, ':', "':' after a key") != 0) return -1;
        if (jstring(j, &value, "a string value (\"__metadata__\" maps strings to strings)") != 0) return -1;
        if (*nmeta == *cap) {
            int ncap = *cap ? *cap * 2 : 8;
            rt_st_meta *m = realloc(*meta, (size_t)ncap * sizeof *m);
            if (!m) return rt_fail("%s: out of memory reading the header", j->path);
            *meta = m;
            *cap = ncap;
        }
        (*meta)[(*nmeta)++] = (rt_st_meta){key, value};
        int more = next_or_end(j, '}', "',' or '}' in \"__metadata__\"");
        if (more <= 0) return more;
    }
}

/* One tensor's {"dtype", "shape", "data_offsets"}; the offsets go to begin/end. */
static int parse_entry(json *j, rt_st_tensor *t, uint64_t *begin, uint64_t *end) {
    int seen_dtype = 0, seen_shape = 0, seen_offsets = 0;
    if (expect(j, '{', "'{' to open a tensor's entry") != 0) return -1;
    for (;;) {
        const char *key;
        size_t key_at = j->at;
        if (jstring(j, &key, "a key of a tensor's entry (\"dtype\", \"shape\" or \"data_offsets\")") != 0)
            return -1;
        int *seen = strcmp(key, "dtype") == 0 ? &seen_dtype
                    : strcmp(key, "shape") == 0 ? &seen_shape
                    : strcmp(key, "data_offsets") == 0 ? &seen_offsets : NULL;
        if (!seen)
            return rt_fail("%s: malformed safetensors header at byte %zu: tensor '%s' has an unknown field "
                           "\"%s\"; expected \"dtype\", \"shape\" and \"data_offsets\"", j->path, 8 + key_at,
                           t->name, key);
        if (*seen)
            return rt_fail("%s: malformed safetensors header at byte %zu: tensor '%s' has \"%s\" twice",
                           j->path, 8 + key_at, t->name, key);
        *seen = 1;
        if (expect(j, ':', "':' after a key") != 0) return -1;
        if (seen == &seen_dtype) {
            const char *name;
            size_t at = j->at;
            if (jstring(j, &name, "a dtype string such as \"F32\"") != 0) return -1;
            t->dtype = RT_UNDEFINED;
            for (int i = 0; i < ST_NDTYPES; i++)
                if (strcmp(name, st_dtypes[i].name) == 0) t->dtype = st_dtypes[i].dtype;
            if (t->dtype == RT_UNDEFINED)
                return rt_fail("%s: tensor '%s' has unsupported dtype \"%s\" (at byte %zu); expected one of "
                               ST_SUPPORTED, j->path, t->name, name, 8 + at);
        } else if (seen == &seen_shape) {
            if (expect(j, '[', "'[' to open a shape") != 0) return -1;
            ws(j);
            if (peek(j) == ']') j->at++;
            else
                for (int more = 1; more > 0;) {
                    uint64_t d;
                    if (juint(j, &d, "a dim (a non-negative integer)") != 0) return -1;
                    if (t->rank == RT_MAX_RANK)
                        return rt_fail("%s: tensor '%s' has more than %d dims; the runtime supports at most %d",
                                       j->path, t->name, RT_MAX_RANK, RT_MAX_RANK);
                    if (d > INT64_MAX)
                        return rt_fail("%s: tensor '%s' has a dim of %llu, beyond 2^63 - 1", j->path, t->name,
                                       (unsigned long long)d);
                    t->dims[t->rank++] = (int64_t)d;
                    if ((more = next_or_end(j, ']', "',' or ']' in a shape")) < 0) return -1;
                }
        } else {
            if (expect(j, '[', "'[' to open data_offsets") != 0) return -1;
            if (juint(j, begin, "a begin offset") != 0) return -1;
            if (expect(j, ',', "',' between the two data_offsets") != 0) return -1;
            if (juint(j, end, "an end offset") != 0) return -1;
            if (expect(j, ']', "']' after the two data_offsets") != 0) return -1;
        }
        int more = next_or_end(j, '}', "',' or '}' in a tensor's entry");
        if (more < 0) return -1;
        if (more == 0) break;
    }
    if (!seen_dtype || !seen_shape || !seen_offsets)
        return rt_fail("%s: tensor '%s' has no \"%s\"; expected \"dtype\", \"shape\" and \"data_offsets\"",
                       j->path, t->name, !seen_dtype ? "dtype" : !seen_shape ? "shape" : "data_offsets");
    return 0;
}

/* ---- loading ------------------------------------------------------------------------- */

typedef struct {
    rt_st_tensor t;
    uint64_t begin, end;
} st_slot;

static int slot_by_offset(const void *a, const void *b) {
    const st_slot *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

static int tensor_by_name(const void *a, const void *b) {
    return strcmp((*(const rt_st_tensor *const *)a)->name, (*(const rt_st_tensor *const *)b)->name);
}

static int meta_by_key(const void *a, const void *b) {
    return strcmp(((const rt_st_meta *)a)->key, ((const rt_st_meta *)b)->key);
}

/* Parses the header into slots and metadata; checks only the syntax and the fields. */
static int parse_header(json *j, st_slot **slots, int *n, rt_st_file *f) {
    int cap = 0, mcap = 0, seen_meta = 0;
    if (expect(j, '{', "'{' at the start of the header") != 0) return -1;
    ws(j);
    if (peek(j) == '}') j->at++;
    else
        for (;;) {
            const char *name;
            size_t at = j->at;
            if (jstring(j, &name, "a tensor name (a string)") != 0) return -1;
            if (expect(j, ':', "':' after a key") != 0) return -1;
            if (strcmp(name, "__metadata__") == 0) {
                if (seen_meta++)
                    return rt_fail("%s: malformed safetensors header at byte %zu: \"__metadata__\" appears twice",
                                   j->path, 8 + at);
                if (parse_meta(j, &f->meta, &f->nmeta, &mcap) != 0) return -1;
            } else {
                if (name[0] == '\0')
                    return rt_fail("%s: malformed safetensors header at byte %zu: a tensor has an empty name",
                                   j->path, 8 + at);
                if (*n == cap) {
                    int ncap = cap ? cap * 2 : 16;
                    st_slot *s = realloc(*slots, (size_t)ncap * sizeof *s);
                    if (!s) return rt_fail("%s: out of memory reading the header", j->path);
                    *slots = s;
                    cap = ncap;
                }
                st_slot *s = &(*slots)[(*n)++];
                memset(s, 0, sizeof *s);
                s->t.name = name;
                if (parse_entry(j, &s->t, &s->begin, &s->end) != 0) return -1;
            }
            int more = next_or_end(j, '}', "',' or '}' after a tensor's entry");
            if (more < 0) return -1;
            if (more == 0) break;
        }
    ws(j);
    if (j->at != j->len) return jerr(j, "only spaces after the header's closing '}'");
    return 0;
}

/* Checks that the tensors, in offset order, tile the data section exactly. */
static int check_layout(const char *path, st_slot *slots, int n, uint64_t data_len) {
    if (n > 0) qsort(slots, (size_t)n, sizeof *slots, slot_by_offset);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        st_slot *s = &slots[i];
        char shape[200];
        rt_shape_str(shape, sizeof shape, s->t.rank, s->t.dims);
        if (s->end < s->begin)
            return rt_fail("%s: tensor '%s' has data_offsets [%llu, %llu]: the end is before the begin", path,
                           s->t.name, (unsigned long long)s->begin, (unsigned long long)s->end);
        if (s->end > data_len)
            return rt_fail("%s: tensor '%s' has data_offsets [%llu, %llu], out of range: the data section is "
                           "%llu bytes (truncated file?)", path, s->t.name, (unsigned long long)s->begin,
                           (unsigned long long)s->end, (unsigned long long)data_len);
        uint64_t need = rt_nbytes(s->t.dtype, s->t.rank, s->t.dims);
        if (s->end - s->begin != need)
            return rt_fail("%s: tensor '%s' has data_offsets [%llu, %llu] (%llu bytes), but shape %s of %s needs "
                           "%s%llu bytes", path, s->t.name, (unsigned long long)s->begin,
                           (unsigned long long)s->end, (unsigned long long)(s->end - s->begin), shape,
                           st_dtype_name(s->t.dtype), need == UINT64_MAX ? "more than " : "",
                           (unsigned long long)need);
        if (s->begin < at)
            return rt_fail("%s: tensor '%s' (data_offsets [%llu, %llu]) overlaps tensor '%s', which ends at %llu",
                           path, s->t.name, (unsigned long long)s->begin, (unsigned long long)s->end,
                           slots[i - 1].t.name, (unsigned long long)at);
        if (s->begin > at)
            return rt_fail("%s: a gap of %llu unused bytes before tensor '%s' (data_offsets [%llu, %llu]); "
                           "expected tensors to tile the data section", path,
                           (unsigned long long)(s->begin - at), s->t.name, (unsigned long long)s->begin,
                           (unsigned long long)s->end);
        at = s->end;
    }
    if (at != data_len)
        return rt_fail("%s: the file size does not match the header: its tensors end at byte %llu of the data "
                       "section, which is %llu bytes (trailing bytes?)", path, (unsigned long long)at,
                       (unsigned long long)data_len);
    return 0;
}

/* Finds two equal names among sorted neighbours. */
static int check_unique(rt_st_file *f) {
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return rt_fail("%s: malformed safetensors header: tensor '%s' appears twice", f->path,
                           f->by_name[i]->name);
    for (int i = 1; i < f->nmeta; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return rt_fail("%s: malformed safetensors header: \"__metadata__\" has key '%s' twice", f->path,
                           f->meta[i].key);
    return 0;
}

void rt_st_close(rt_st_file *f) {
    if (!f) return;
    free(f->path);
    free(f->strings);
    free(f->data);
    free(f->tensors);
    free(f->by_name);
    free(f->meta);
    free(f);
}

int rt_st_open(const char *path, rt_st_file **out) {
    *out = NULL;
    FILE *fp;
    uint64_t size;
    if (rt_file_open(path, &fp, &size) != 0) return -1;
    rt_st_file *f = calloc(1, sizeof *f);
    size_t plen = strlen(path) + 1;
    if (!f || !(f->path = malloc(plen))) {
        free(f);
        fclose(fp);
        return rt_fail("%s: out of memory opening", path);
    }
    memcpy(f->path, path, plen);
    unsigned char *header = NULL;
    st_slot *slots = NULL;
    int n = 0, rc = -1;

    unsigned char lenbuf[8];
    if (size < 8) {
        rt_fail("%s: truncated: %llu bytes, too short for the 8-byte header length of a safetensors file", path,
                (unsigned long long)size);
        goto done;
    }
    if (rt_file_read(fp, lenbuf, 8, path, "header length") != 0) goto done;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)lenbuf[i] << (8 * i);
    if (hlen > size - 8) {
        rt_fail("%s: the header length is %llu bytes but the file has only %llu bytes after it (truncated, or "
                "not a safetensors file)", path, (unsigned long long)hlen, (unsigned long long)(size - 8));
        goto done;
    }
    if (hlen > ST_MAX_HEADER) {
        rt_fail("%s: the header is %llu bytes long; expected at most %u", path, (unsigned long long)hlen,
                ST_MAX_HEADER);
        goto done;
    }
    header = malloc(hlen ? hlen : 1);
    f->strings = malloc(hlen + 1);
    if (!header || !f->strings) {
        rt_fail("%s: out of memory reading the header", path);
        goto done;
    }
    if (rt_file_read(fp, header, hlen, path, "header") != 0) goto done;
    json j = {path, header, hlen, 0, f->strings, 0};
    if (parse_header(&j, &slots, &n, f) != 0) goto done;

    f->data_len = (size_t)(size - 8 - hlen);
    if (check_layout(path, slots, n, f->data_len) != 0) goto done;
    f->data = malloc(f->data_len ? f->data_len : 1);
    f->tensors = malloc((size_t)(n ? n : 1) * sizeof *f->tensors);
    f->by_name = malloc((size_t)(n ? n : 1) * sizeof *f->by_name);
    if (!f->data || !f->tensors || !f->by_name) {
        rt_fail("%s: out of memory reading %zu bytes of tensor data", path, f->data_len);
        goto done;
    }
    f->n = n;
    for (int i = 0; i < n; i++) {
        f->tensors[i] = slots[i].t;
        f->tensors[i].data = f->data + slots[i].begin;
        f->tensors[i].nbytes = (size_t)(slots[i].end - slots[i].begin);
        f->by_name[i] = &f->tensors[i];
    }
    qsort(f->by_name, (size_t)n, sizeof *f->by_name, tensor_by_name);
    if (f->nmeta) qsort(f->meta, (size_t)f->nmeta, sizeof *f->meta, meta_by_key);
    if (check_unique(f) != 0) goto done;
    if (rt_file_read(fp, f->data, f->data_len, path, "data section") != 0) goto done;
    rc = 0;
done:
    fclose(fp);
    free(header);
    free(slots);
    if (rc == 0) *out = f;
    else rt_st_close(f);
    return rc;
}

int rt_st_count(const rt_st_file *f) { return f->n; }

const rt_st_tensor *rt_st_at(const rt_st_file *f, int i) { return i >= 0 && i < f->n ? &f->tensors[i] : NULL; }

const rt_st_tensor *rt_st_find(const rt_st_file *f, const char *name) {
    rt_st_tensor key = {.name = name};
    const rt_st_tensor *pkey = &key;
    const rt_st_tensor **hit = bsearch(&pkey, f->by_name, (size_t)f->n, sizeof *f->by_name, tensor_by_name);
    return hit ? *hit : NULL;
}

int rt_st_load(const rt_st_file *f, const char *name, rt_dtype dtype, int rank, const int64_t *dims,
               void *dst) {
    const rt_st_tensor *t = rt_st_find(f, name);
    if (!t) {
        char some[160] = "";
        size_t at = 0;
        for (int i = 0; i < f->n && i < 3 && at < sizeof some; i++)
            at += (size_t)snprintf(some + at, sizeof some - at, "%s'%s'", i ? ", " : "", f->by_name[i]->name);
        return rt_fail("%s: no tensor named '%s'; the file has %d tensor%s%s%s%s", f->path, name, f->n,
                       f->n == 1 ? "" : "s", f->n ? " (" : "", some, f->n > 3 ? ", ...)" : f->n ? ")" : "");
    }
    char want[200], have[200];
    rt_shape_str(want, sizeof want, rank, dims);
    rt_shape_str(have, sizeof have, t->rank, t->dims);
    int same = t->dtype == dtype && t->rank == rank;
    for (int i = 0; same && i < rank; i++) same = t->dims[i] == dims[i];
    if (!same)
        return rt_fail("%s: tensor '%s' is %s %s; expected %s %s", f->path, name, rt_dtype_name(t->dtype), have,
                       rt_dtype_name(dtype), want);
    if (t->nbytes) memcpy(dst, t->data, t->nbytes);
    return 0;
}

/* float32 -> bfloat16, round to nearest even, NaN kept a quiet NaN: the
 * rounding of ir/eval.c's Cast and of the kernels (k_f32_to_bf16). */
static uint16_t f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16 & 0x8000u) | 0x7fc0u);
    return (uint16_t)((x + 0x7fffu + (x >> 16 & 1u)) >> 16);
}

int rt_st_load_weight(const rt_st_file *f, const char *name, rt_dtype dtype, int rank, const int64_t *dims,
                      void *dst) {
    const rt_st_tensor *t = rt_st_find(f, name);
    int widened = t && dtype == RT_BF16 && t->dtype == RT_F32 && t->rank == rank;
    for (int i = 0; widened && i < rank; i++) widened = t->dims[i] == dims[i];
    if (!widened) return rt_st_load(f, name, dtype, rank, dims, dst);
    size_t n = t->nbytes / 4;
    uint16_t *y = dst;
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, (const char *)t->data + 4 * i, sizeof v);
        y[i] = f32_to_bf16(v);
    }
    return 0;
}

int rt_st_meta_count(const rt_st_file *f) { return f->nmeta; }

const rt_st_meta *rt_st_meta_at(const rt_st_file *f, int i) { return i >= 0 && i < f->nmeta ? &f->meta[i] : NULL; }

const char *rt_st_meta_find(const rt_st_file *f, const char *key) {
    if (f->nmeta == 0) return NULL;  // bsearch may not take a NULL array
    rt_st_meta k = {key, NULL};
    const rt_st_meta *hit = bsearch(&k, f->meta, (size_t)f->nmeta, sizeof *f->meta, meta_by_key);
    return hit ? hit->value : NULL;
}

/* ---- writing ------------------------------------------------------------------------- */

/* A growable byte buffer for the header; `failed` latches an allocation failure. */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n) ncap *= 2;
        char *p = realloc(b->s, ncap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static void putu(buf *b, uint64_t v) {
    char s[24];
    put(b, s, (size_t)snprintf(s, sizeof s, "%llu", (unsigned long long)v));
}

/* A JSON string, escaped as serde_json does: \" \\ \b \f \n \r \t, other control
 * characters as \u00xx, everything else (UTF-8 included) as is. */
static void put_jstring(buf *b, const char *s) {
    put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *e = NULL;
        char u[8];
        switch (*p) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default:
            if (*p < 0x20) snprintf(u, sizeof u, "\\u%04x", *p), e = u;
        }
        if (e) puts_(b, e);
        else put(b, (const char *)p, 1);
    }
    put(b, "\"", 1);
}

static int meta_ptr_by_key(const void *a, const void *b) {
    return meta_by_key(*(const rt_st_meta *const *)a, *(const rt_st_meta *const *)b);
}

static int check_tensor(const char *path, const rt_st_tensor *t) {
    if (!t->name || !t->name[0]) return rt_fail("%s: cannot write a tensor with an empty name", path);
    if (strcmp(t->name, "__metadata__") == 0)
        return rt_fail("%s: cannot write a tensor named \"__metadata__\": the name is reserved", path);
    if (!st_dtype_name(t->dtype))
        return rt_fail("%s: cannot write tensor '%s' of dtype %s; expected one of " ST_SUPPORTED, path, t->name,
                       rt_dtype_name(t->dtype));
    if (t->rank < 0 || t->rank > RT_MAX_RANK)
        return rt_fail("%s: cannot write tensor '%s' of rank %d; expected 0 to %d", path, t->name, t->rank,
                       RT_MAX_RANK);
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] < 0)
            return rt_fail("%s: cannot write tensor '%s' with dim %d = %lld", path, t->name, i,
                           (long long)t->dims[i]);
    uint64_t need = rt_nbytes(t->dtype, t->rank, t->dims);
    if (need != t->nbytes || (need > 0 && !t->data)) {
        char shape[200];
        return rt_fail("%s: cannot write tensor '%s': shape %s of %s holds %llu bytes, but nbytes is %zu%s", path,
                       t->name, rt_shape_str(shape, sizeof shape, t->rank, t->dims), rt_dtype_name(t->dtype),
                       (unsigned long long)need, t->nbytes, t->data ? "" : " and data is NULL");
    }
    return 0;
}

int rt_st_write(const char *path, const rt_st_tensor *tensors, int n, const rt_st_meta *meta, int nmeta) {
    if (n < 0 || nmeta < 0) return rt_fail("%s: cannot write %d tensors and %d metadata entries", path, n, nmeta);
    for (int i = 0; i < n; i++)
        if (check_tensor(path, &tensors[i]) != 0) return -1;
    for (int i = 0; i < nmeta; i++)
        if (!meta[i].key || !meta[i].value)
            return rt_fail("%s: cannot write metadata entry %d: its key or value is NULL", path, i);
    // sort pointers, not the caller's arrays
    const rt_st_tensor **ord = malloc((size_t)(n ? n : 1) * sizeof *ord);
    const rt_st_meta **mord = malloc((size_t)(nmeta ? nmeta : 1) * sizeof *mord);
    buf h = {0};
    rt_atomic_file a = {0};
    int rc = -1;
    if (!ord || !mord) {
        rt_fail("%s: out of memory writing", path);
        goto done;
    }
    for (int i = 0; i < n; i++) ord[i] = &tensors[i];
    for (int i = 0; i < nmeta; i++) mord[i] = &meta[i];
    qsort(ord, (size_t)n, sizeof *ord, tensor_by_name);
    qsort(mord, (size_t)nmeta, sizeof *mord, meta_ptr_by_key);
    for (int i = 1; i < n; i++)
        if (strcmp(ord[i - 1]->name, ord[i]->name) == 0) {
            rt_fail("%s: cannot write two tensors named '%s'", path, ord[i]->name);
            goto done;
        }
    for (int i = 1; i < nmeta; i++)
        if (strcmp(mord[i - 1]->key, mord[i]->key) == 0) {
            rt_fail("%s: cannot write metadata key '%s' twice", path, mord[i]->key);
            goto done;
        }

    // {"__metadata__":{"k":"v"},"name":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},...}
    put(&h, "{", 1);
    if (nmeta > 0) {
        puts_(&h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i) put(&h, ",", 1);
            put_jstring(&h, mord[i]->key);
            put(&h, ":", 1);
            put_jstring(&h, mord[i]->value);
        }
        put(&h, "}", 1);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const rt_st_tensor *t = ord[i];
        if (i || nmeta > 0) put(&h, ",", 1);
        put_jstring(&h, t->name);
        puts_(&h, ":{\"dtype\":\"");
        puts_(&h, st_dtype_name(t->dtype));
        puts_(&h, "\",\"shape\":[");
        for (int d = 0; d < t->rank; d++) {
            if (d) put(&h, ",", 1);
            putu(&h, (uint64_t)t->dims[d]);
        }
        puts_(&h, "],\"data_offsets\":[");
        putu(&h, offset);
        put(&h, ",", 1);
        putu(&h, offset + t->nbytes);
        puts_(&h, "]}");
        offset += t->nbytes;
    }
    put(&h, "}", 1);
    // the data section starts 8-byte aligned, as the reference writer makes it
    while (!h.failed && h.len % 8) put(&h, " ", 1);
    if (h.failed) {
        rt_fail("%s: out of memory building the header", path);
        goto done;
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)h.len >> (8 * i));

    if (rt_atomic_open(&a, path) != 0) goto done;
    if (rt_atomic_write(&a, lenbuf, 8) != 0 || rt_atomic_write(&a, h.s, h.len) != 0) goto done;
    for (int i = 0; i < n; i++)
        if (rt_atomic_write(&a, ord[i]->data, ord[i]->nbytes) != 0) goto done;
    rc = rt_atomic_commit(&a);
done:
    if (rc != 0) rt_atomic_abort(&a);
    free(ord);
    free(mord);
    free(h.s);
    return rc;
}
