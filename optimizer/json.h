/* loom's one JSON reader (cli/json.c is the writer): the hardware-profile
 * override files, costs.json and the step profile a program writes are read
 * through it. A document is parsed whole into a tree; every node records the
 * line it starts on, so a message can say where a file is wrong. Strings are
 * NUL-terminated after decoding escapes (\u escapes to UTF-8; a \u0000 is
 * refused, as no name loom handles can hold it); other bytes pass through as
 * they are, so names written by a program round-trip. Nesting deeper than
 * OPT_JSON_DEPTH is refused rather than recursed into. */
#ifndef LOOM_JSON_H
#define LOOM_JSON_H

#include <stddef.h>

#define OPT_JSON_DEPTH 64

typedef enum {
    OPT_JSON_NULL,
    OPT_JSON_BOOL,
    OPT_JSON_NUM,
    OPT_JSON_STR,
    OPT_JSON_ARR,
    OPT_JSON_OBJ,
} OptJsonKind;

typedef struct OptJson OptJson;
struct OptJson {
    OptJsonKind kind;
    const char *key;  /* a member of an object: its key; else NULL */
    const char *str;  /* OPT_JSON_STR */
    double num;       /* OPT_JSON_NUM; OPT_JSON_BOOL: 0 or 1 */
    OptJson *child;   /* OPT_JSON_ARR, OPT_JSON_OBJ: the first element or member */
    OptJson *next;    /* the next element or member of the parent */
    int n;            /* OPT_JSON_ARR, OPT_JSON_OBJ: how many children */
    int line;         /* 1-based line where the value starts */
};

/* Parse text[0..len) as one JSON value (surrounding white space allowed).
 * Returns the root, or NULL with "line N: what is wrong" in err. */
OptJson *opt_json_parse(const char *text, size_t len, char *err, size_t nerr);
/* Read and parse a file: NULL with "PATH: ..." in err when it cannot be
 * read or is not JSON. */
OptJson *opt_json_read_file(const char *path, char *err, size_t nerr);
void opt_json_free(OptJson *j);

/* The member `key` of object obj, or NULL (also when obj is not an object). */
const OptJson *opt_json_get(const OptJson *obj, const char *key);
const char *opt_json_kind_name(OptJsonKind k); /* "null", "boolean", "number", ... */

#endif
