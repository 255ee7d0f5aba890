/* A minimal streaming JSON writer for the `--json` outputs. Its one subtle
 * duty is strings: value names come from the model file and may hold quotes,
 * backslashes, control characters and arbitrary bytes, and the output must
 * still be valid JSON, so bytes that are not valid UTF-8 become U+FFFD. */
#include <math.h>

#include "cli.h"
#include "ir.h"

/* The length of the valid UTF-8 sequence at p (2 to 4), or 0: rejects stray
 * continuation bytes, overlong forms, surrogates and code points past U+10FFFF. */
static int utf8_len(const unsigned char *p)
{
    unsigned c = p[0], cp, min;
    int n;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the terminating NUL */
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else if (c >= 0x80) {
            int n = utf8_len(p);
            if (n) {
                fwrite(p, 1, (size_t)n, f);
                p += n;
                continue;
            }
            fputs("\\ufffd", f);
        } else {
            fputc((int)c, f);
        }
        p++;
    }
    fputc('"', f);
}

void cli_json_init(CliJson *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->count[0] = 0;
}

/* The separator, indentation and key before an item. */
static void item(CliJson *j, const char *key)
{
    if (j->depth > 0) {
        int d = j->depth - 1;
        if (j->count[d]++) fputc(',', j->f);
        if (j->flat[d]) {
            if (j->count[d] > 1) fputc(' ', j->f);
        } else {
            fprintf(j->f, "\n%*s", 2 * j->depth, "");
        }
    }
    IR_ASSERT(!key == !(j->depth > 0 && j->closer[j->depth - 1] == '}'));
    if (key) {
        put_string(j->f, key);
        fputs(": ", j->f);
    }
}

static void open_container(CliJson *j, const char *key, int flat, char opener, char closer)
{
    item(j, key);
    IR_ASSERT(j->depth < CLI_JSON_DEPTH);
    fputc(opener, j->f);
    j->count[j->depth] = 0;
    j->closer[j->depth] = closer;
    /* a container inside a flat one is flat too */
    j->flat[j->depth] = flat || (j->depth > 0 && j->flat[j->depth - 1]);
    j->depth++;
}

void cli_json_object(CliJson *j, const char *key, int flat) { open_container(j, key, flat, '{', '}'); }

void cli_json_array(CliJson *j, const char *key, int flat) { open_container(j, key, flat, '[', ']'); }

void cli_json_close(CliJson *j)
{
    IR_ASSERT(j->depth > 0);
    int d = --j->depth;
    if (j->count[d] && !j->flat[d]) fprintf(j->f, "\n%*s", 2 * d, "");
    fputc(j->closer[d], j->f);
}

void cli_json_str(CliJson *j, const char *key, const char *s)
{
    item(j, key);
    if (s)
        put_string(j->f, s);
    else
        fputs("null", j->f);
}

void cli_json_int(CliJson *j, const char *key, int64_t v)
{
    item(j, key);
    fprintf(j->f, "%lld", (long long)v);
}

void cli_json_num(CliJson *j, const char *key, double v)
{
    item(j, key);
    if (!isfinite(v))
        fputs("null", j->f);
    else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact as an integer */
        fprintf(j->f, "%.0f", v);
    else
        fprintf(j->f, "%.17g", v);
}

void cli_json_null(CliJson *j, const char *key)
{
    item(j, key);
    fputs("null", j->f);
}

void cli_json_end(CliJson *j)
{
    IR_ASSERT(j->depth == 0);
    fputc('\n', j->f);
}
