/* Timing and memory figures for the progress lines of generated programs: a monotonic
 * clock (immune to wall-clock adjustments, so step times are never negative) and the
 * process's peak resident memory, to set against what the plan predicted. */
#include "rt.h"

#include <sys/resource.h>
#include <time.h>

double rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

size_t rt_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
    return (size_t)ru.ru_maxrss;  // bytes on macOS
#else
    return (size_t)ru.ru_maxrss * 1024;  // KiB on Linux and the BSDs
#endif
}
