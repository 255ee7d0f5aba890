/* The thread count of every program loom generates, checked before anything
 * runs. The kernels' pool (kernels/kpar.c) reads OMP_NUM_THREADS itself, the
 * variable users already set for threaded numeric code, and falls back to
 * every CPU the process may use when it is unset; a value it cannot use
 * would silently run on all of them, so the programs refuse it here with a
 * message instead. */
#include "rt.h"

#include <errno.h>
#include <stdlib.h>

int rt_threads_check(void)
{
    const char *s = getenv("OMP_NUM_THREADS");
    if (!s) return 0;
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (end == s || *end || errno || n < 1 || n > 255)
        return rt_fail("OMP_NUM_THREADS='%s' is not a thread count: give a whole number from 1 to 255, "
                       "or unset it to use every CPU",
                       s);
    return 0;
}
