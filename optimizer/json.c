/* The JSON reader (json.h): recursive descent over the whole text, depth
 * bounded, one heap node per value. Numbers follow JSON's grammar exactly
 * (no leading '+', no hex, no NaN) before strtod converts them. */
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

typedef struct {
    const char *p, *end;
    int line;
    char *err;
    size_t nerr;
} Parser;

static OptJson *fail(Parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static OptJson *fail(Parser *ps, const char *fmt, ...)
{
    int k = snprintf(ps->err, ps->nerr, "line %d: ", ps->line);
    va_list ap;
    va_start(ap, fmt);
    if (k >= 0 && (size_t)k < ps->nerr) vsnprintf(ps->err + k, ps->nerr - (size_t)k, fmt, ap);
    va_end(ap);
    return NULL;
}

static void skip_space(Parser *ps)
{
    for (; ps->p < ps->end; ps->p++) {
        if (*ps->p == '\n') ps->line++;
        else if (*ps->p != ' ' && *ps->p != '\t' && *ps->p != '\r') break;
    }
}

/* What the parser found where it expected something, for messages. */
static const char *found(const Parser *ps, char *buf, size_t n)
{
    unsigned char c = ps->p < ps->end ? (unsigned char)*ps->p : 0;
    if (ps->p >= ps->end) snprintf(buf, n, "the end of the file");
    else if (c >= 0x20 && c < 0x7f) snprintf(buf, n, "'%c'", c);
    else snprintf(buf, n, "byte 0x%02x", c);
    return buf;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at ps->p (the opening quote): a heap copy with escapes decoded, or NULL. */
static char *parse_string(Parser *ps)
{
    const char *p = ps->p + 1;
    /* the decoded text is never longer than the source */
    const char *close = p;
    while (close < ps->end && *close != '"') close += *close == '\\' && close + 1 < ps->end ? 2 : 1;
    if (close >= ps->end) return fail(ps, "a string is not closed"), NULL;
    char *s = ir_xmalloc((size_t)(close - p) + 1), *o = s;
    while (p < close) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) {
            free(s);
            return fail(ps, "a string holds control byte 0x%02x; write it as \\u%04x", c, c), NULL;
        }
        if (c != '\\') {
            *o++ = (char)c;
            p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (close - p < 4 || hex4(p, &cp)) goto bad_u;
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) { /* a surrogate pair */
                if (close - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xdc00 ||
                    lo > 0xdfff)
                    goto bad_u;
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0) {
                goto bad_u;
            }
            o += put_utf8(o, cp);
            break;
        }
        default:
            free(s);
            return fail(ps, "unknown escape '\\%c' in a string", e), NULL;
        }
    }
    *o = 0;
    ps->p = close + 1;
    return s;
bad_u:
    free(s);
    return fail(ps, "bad \\u escape in a string (four hex digits, a whole surrogate pair, not \\u0000)"), NULL;
}

static int is_digit(const char *p, const char *end) { return p < end && *p >= '0' && *p <= '9'; }

static OptJson *parse_number(Parser *ps, OptJson *j)
{
    const char *p = ps->p, *end = ps->end;
    if (p < end && *p == '-') p++;
    if (!is_digit(p, end)) return fail(ps, "a number needs a digit");
    if (*p == '0') p++;
    else while (is_digit(p, end)) p++;
    if (p < end && *p == '.') {
        if (!is_digit(++p, end)) return fail(ps, "a number needs a digit after '.'");
        while (is_digit(p, end)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!is_digit(p, end)) return fail(ps, "a number needs a digit in its exponent");
        while (is_digit(p, end)) p++;
    }
    char buf[64];
    if ((size_t)(p - ps->p) >= sizeof buf) return fail(ps, "a number longer than %zu characters", sizeof buf - 1);
    memcpy(buf, ps->p, (size_t)(p - ps->p));
    buf[p - ps->p] = 0;
    errno = 0;
    j->num = strtod(buf, NULL);
    if (errno == ERANGE && (j->num > 1 || j->num < -1)) return fail(ps, "number %s is out of range", buf);
    j->kind = OPT_JSON_NUM;
    ps->p = p;
    return j;
}

static OptJson *parse_value(Parser *ps, int depth);

/* An array or object at ps->p; j is its node, filled in. */
static OptJson *parse_container(Parser *ps, OptJson *j, int depth)
{
    int obj = *ps->p == '{';
    char close = obj ? '}' : ']', buf[32];
    j->kind = obj ? OPT_JSON_OBJ : OPT_JSON_ARR;
    if (depth >= OPT_JSON_DEPTH) return fail(ps, "nested deeper than %d levels", OPT_JSON_DEPTH);
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return j;
    }
    OptJson **tail = &j->child;
    for (;;) {
        char *key = NULL;
        skip_space(ps);
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, "expected a member name in quotes, found %s", found(ps, buf, sizeof buf));
            if (!(key = parse_string(ps))) return NULL;
            skip_space(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                return fail(ps, "expected ':' after a member name, found %s", found(ps, buf, sizeof buf));
            }
            ps->p++;
        }
        OptJson *v = parse_value(ps, depth + 1);
        if (!v) {
            free(key);
            return NULL;
        }
        v->key = key;
        *tail = v;
        tail = &v->next;
        j->n++;
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return j;
        }
        return fail(ps, "expected ',' or '%c', found %s", close, found(ps, buf, sizeof buf));
    }
}

static int word(Parser *ps, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) return 0;
    ps->p += n;
    return 1;
}

/* One value at ps->p (after white space). On failure the partial tree is
 * freed and NULL returned. */
static OptJson *parse_value(Parser *ps, int depth)
{
    char buf[32];
    skip_space(ps);
    OptJson *j = ir_xcalloc(1, sizeof *j), *ok = j;
    j->line = ps->line;
    char c = ps->p < ps->end ? *ps->p : 0;
    if (c == '{' || c == '[') ok = parse_container(ps, j, depth);
    else if (c == '"') ok = (j->str = parse_string(ps)) ? (j->kind = OPT_JSON_STR, j) : NULL;
    else if (c == '-' || (c >= '0' && c <= '9')) ok = parse_number(ps, j);
    else if (word(ps, "true")) j->kind = OPT_JSON_BOOL, j->num = 1;
    else if (word(ps, "false")) j->kind = OPT_JSON_BOOL;
    else if (word(ps, "null")) j->kind = OPT_JSON_NULL;
    else ok = fail(ps, "expected a value, found %s", found(ps, buf, sizeof buf));
    if (!ok) {
        opt_json_free(j);
        return NULL;
    }
    return j;
}

OptJson *opt_json_parse(const char *text, size_t len, char *err, size_t nerr)
{
    Parser ps = {text, text + len, 1, err, nerr};
    OptJson *j = parse_value(&ps, 0);
    if (!j) return NULL;
    skip_space(&ps);
    if (ps.p < ps.end) {
        char buf[32];
        fail(&ps, "unexpected %s after the value", found(&ps, buf, sizeof buf));
        opt_json_free(j);
        return NULL;
    }
    return j;
}

OptJson *opt_json_read_file(const char *path, char *err, size_t nerr)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, nerr, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *text = ir_xmalloc(cap);
    for (size_t got; (got = fread(text + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) text = ir_xrealloc(text, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    OptJson *j = NULL;
    if (bad) {
        snprintf(err, nerr, "%s: cannot read: %s", path, strerror(errno));
    } else {
        char why[256];
        if (!(j = opt_json_parse(text, n, why, sizeof why))) snprintf(err, nerr, "%s: not valid JSON: %s", path, why);
    }
    free(text);
    return j;
}

void opt_json_free(OptJson *j)
{
    while (j) {
        OptJson *next = j->next;
        opt_json_free(j->child);
        free((char *)j->key);
        free((char *)j->str);
        free(j);
        j = next;
    }
}

const OptJson *opt_json_get(const OptJson *obj, const char *key)
{
    if (!obj || obj->kind != OPT_JSON_OBJ) return NULL;
    for (const OptJson *m = obj->child; m; m = m->next)
        if (!strcmp(m->key, key)) return m;
    return NULL;
}

const char *opt_json_kind_name(OptJsonKind k)
{
    static const char *const names[] = {"null", "boolean", "number", "string", "array", "object"};
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "?";
}
