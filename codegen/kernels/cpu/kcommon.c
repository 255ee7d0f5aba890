/* What the cpu kernels share: the run-time error message. A kernel that meets
 * bad data (an index out of range) records a message with k_fail and returns -1;
 * the generated program reads it back with k_error and decides what to do. The
 * buffer is thread-local so that kernels run from different threads (or the
 * thread pool's workers) never garble each other's message. This file
 * deliberately does not use libloomrt: the kernels are copied into generated
 * programs and stand alone. */
#include "kernels.h"

#include <stdarg.h>
#include <stdio.h>

#define K_ERR_LEN 512

static _Thread_local char k_err_buf[K_ERR_LEN];

const char *k_error(void) { return k_err_buf; }

int k_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k_err_buf, sizeof k_err_buf, fmt, ap);
    va_end(ap);
    return -1;
}
