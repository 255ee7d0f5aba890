/* How long OpenMP's idle workers spin before they sleep, for every program
 * loom generates. Between two parallel steps of a model the workers either
 * spin (and start the next step at once) or sleep (and are woken through the
 * kernel, tens of microseconds each time). Kernels go parallel only for steps
 * of about 100 us or more (K_PAR_WORK, kernels.h), so the gaps between
 * parallel steps are short and a worker that sleeps in them costs most of
 * what the second thread gains. Measured on 2 cores (median ms per run, 2
 * threads): resnet_small 1.63 at GOMP_SPINCOUNT=1000, 0.96 at 100000, 1.27 at
 * libgomp's 300000; fno_small 8.5 and 5.5; a model small enough to run on one
 * thread is unaffected (it opens no parallel region). */
#include "rt.h"

#include <stdlib.h>
#include <unistd.h>

void rt_omp_defaults(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", "100000", 0) == 0) execv("/proc/self/exe", argv);
    /* no /proc: run on with the default */
}
