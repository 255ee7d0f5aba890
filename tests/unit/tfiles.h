/* Scratch files for the runtime unit tests: a temporary folder (tmpdir,
 * made by tfiles_init, removed by tfiles_cleanup), paths in it, and
 * whole-file writes and reads. Include
 * after check.h. */
#ifndef LOOM_TFILES_H
#define LOOM_TFILES_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The whole file into a malloc'd buffer (NULL if missing); inline, as not every
 * test reads files back. */
static inline unsigned char *slurp(const char *path, size_t *n) {
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

/* Make tmpdir, /tmp/PREFIX_XXXXXX; 0, or -1 with a message. */
static int tfiles_init(const char *prefix) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s_XXXXXX", prefix);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

/* Remove tmpdir and what the tests left in it. */
static void tfiles_cleanup(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) remove(tmp(e->d_name));
    closedir(d);
    rmdir(tmpdir);
}

#endif
