/* The step profile of a generated program built with -DLOOM_PROFILE: the
 * model's code adds each step's time here, and the driver prints the sums.
 * Steps are few (one per kernel call or fused loop) and numbered from 0, so
 * a growable array indexed by step is the whole data structure. */
#include "rt.h"

#include <string.h>

typedef struct {
    const char *name, *op;
    double seconds;
} ProfStep;

static ProfStep *steps;
static int nsteps;

void rt_prof_add(int step, const char *name, const char *op, double seconds)
{
    if (step < 0) return;
    if (step >= nsteps) {
        int n = step + 64;
        ProfStep *p = realloc(steps, (size_t)n * sizeof *p);
        if (!p) return; /* a profile is best effort: never fail the run */
        memset(p + nsteps, 0, (size_t)(n - nsteps) * sizeof *p);
        steps = p;
        nsteps = n;
    }
    steps[step].name = name;
    steps[step].op = op;
    steps[step].seconds += seconds;
}

void rt_prof_reset(void)
{
    for (int i = 0; i < nsteps; i++) steps[i].seconds = 0;
}

static int slower_first(const void *a, const void *b)
{
    double x = ((const ProfStep *)a)->seconds, y = ((const ProfStep *)b)->seconds;
    return (x < y) - (x > y);
}

void rt_prof_report(FILE *f, int runs)
{
    int n = 0;
    double total = 0;
    ProfStep *s = malloc((size_t)(nsteps ? nsteps : 1) * sizeof *s);
    if (!s || runs < 1) {
        free(s);
        return;
    }
    for (int i = 0; i < nsteps; i++)
        if (steps[i].op) {
            s[n++] = steps[i];
            total += steps[i].seconds;
        }
    qsort(s, (size_t)n, sizeof *s, slower_first);
    fprintf(f, "profile: %d steps, %.4f ms per run (sum of steps), %d runs\n", n, total * 1e3 / runs,
            runs);
    fprintf(f, "%10s %6s %6s  %-22s %s\n", "ms/run", "%", "cum%", "op", "node");
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s[i].seconds;
        fprintf(f, "%10.4f %6.1f %6.1f  %-22s %s\n", s[i].seconds * 1e3 / runs,
                total > 0 ? 100 * s[i].seconds / total : 0, total > 0 ? 100 * cum / total : 0, s[i].op,
                s[i].name);
    }
    free(s);
}
