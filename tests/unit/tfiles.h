/* Scratch files for the runtime unit tests: a temporary folder the test
 * creates (tmpdir), paths in it, and whole-file writes and reads. Include
 * after check.h. */
#ifndef LOOM_TFILES_H
#define LOOM_TFILES_H

#include <stdio.h>
#include <stdlib.h>

static char tmpdir[64];

/* A path in tmpdir; four rotating buffers, so a call may use a few at once. */
static const char *tmp(const char *name) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(b, 1, n, f) == n);
    fclose(f);
}

/* The whole file into a malloc'd buffer (NULL if missing). */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

#endif
