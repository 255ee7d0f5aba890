/* File helpers shared by the readers and writers of libloomrt: opening a regular file
 * for reading with its size known up front (so that headers can be checked against it
 * before anything is allocated), and atomic writes (write "PATH.tmp.<pid>", fsync,
 * rename over PATH) so that a crash or a full disk never leaves a half-written
 * checkpoint or output where a complete one is expected. */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rt_file_open(const char *path, FILE **out, uint64_t *size) {
    *out = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return rt_fail("%s: cannot open for reading: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return rt_fail("%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return rt_fail("%s: not a regular file (a directory or device?); expected a data file", path);
    }
    *out = f;
    *size = (uint64_t)st.st_size;
    return 0;
}

int rt_file_read(FILE *f, void *buf, size_t len, const char *path, const char *what) {
    if (len == 0) return 0;
    size_t got = fread(buf, 1, len, f);
    if (got == len) return 0;
    if (ferror(f)) return rt_fail("%s: read error in the %s: %s", path, what, strerror(errno));
    return rt_fail("%s: truncated: the file ends inside the %s (%zu of %zu bytes read)", path, what,
                   got, len);
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void release(rt_atomic_file *a) {
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

int rt_atomic_open(rt_atomic_file *a, const char *path) {
    memset(a, 0, sizeof *a);
    size_t n = strlen(path) + 32;
    a->path = str_dup(path);
    a->tmp = malloc(n);
    if (!a->path || !a->tmp) {
        release(a);
        return rt_fail("%s: out of memory opening for writing", path);
    }
    // the pid keeps two processes writing the same file from sharing a temporary
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int e = errno;
        rt_fail("%s: cannot create the temporary file %s: %s", path, a->tmp, strerror(e));
        release(a);
        return -1;
    }
    return 0;
}

int rt_atomic_write(rt_atomic_file *a, const void *buf, size_t len) {
    if (len == 0) return 0;
    if (fwrite(buf, 1, len, a->f) != len)
        return rt_fail("%s: write to %s failed: %s", a->path, a->tmp, strerror(errno));
    return 0;
}

void rt_atomic_abort(rt_atomic_file *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) remove(a->tmp);
    release(a);
}

/* Makes the rename itself durable. Best effort: some file systems refuse fsync on a
 * directory, and the data is already safe under one name or the other. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int rt_atomic_commit(rt_atomic_file *a) {
    int rc = 0;
    if (fflush(a->f) != 0) rc = rt_fail("%s: write to %s failed: %s", a->path, a->tmp, strerror(errno));
    else if (fsync(fileno(a->f)) != 0)
        rc = rt_fail("%s: fsync of %s failed: %s", a->path, a->tmp, strerror(errno));
    int closed = fclose(a->f);
    a->f = NULL;
    if (rc == 0 && closed != 0) rc = rt_fail("%s: closing %s failed: %s", a->path, a->tmp, strerror(errno));
    if (rc == 0 && rename(a->tmp, a->path) != 0)
        rc = rt_fail("%s: cannot rename %s over it: %s", a->path, a->tmp, strerror(errno));
    if (rc != 0) {
        rt_atomic_abort(a);
        return -1;
    }
    sync_parent_dir(a->path);
    release(a);
    return 0;
}
