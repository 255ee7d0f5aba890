/* The step profile of a generated program built with -DLOOM_PROFILE: the
 * model's code adds each step's time here, and the driver prints the sums.
 * Steps are few (one per kernel call or fused loop) and numbered from 0, so
 * a growable array indexed by step is the whole data structure. A driver
 * that marks the end of each run (rt_prof_run_end) also keeps every run's
 * time of every step, which rt_prof_write puts in a file for `loom profile`. */
#include "rt.h"

#include <errno.h>
#include <string.h>

typedef struct {
    const char *name, *op;
    double seconds; /* over all runs since the reset */
    double run;     /* in the run going on */
} ProfStep;

static ProfStep *steps;
static int nsteps, used; /* allocated; one past the highest step added */

/* Per ended run: the step times (width of them, fixed at the first run) and the whole run. */
static double *history, *run_seconds;
static size_t history_cap;
static int nruns, nruns_cap, width;

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
    steps[step].run += seconds;
    if (step >= used) used = step + 1;
}

void rt_prof_reset(void)
{
    for (int i = 0; i < nsteps; i++) steps[i].seconds = steps[i].run = 0;
    nruns = 0;
}

void rt_prof_run_end(double seconds)
{
    if (nruns == 0) width = used;
    size_t need = (size_t)(nruns + 1) * (size_t)width;
    if (need > history_cap) {
        double *h = realloc(history, 2 * need * sizeof *h);
        if (!h) return; /* best effort, as rt_prof_add */
        history = h;
        history_cap = 2 * need;
    }
    if (nruns == nruns_cap) {
        double *r = realloc(run_seconds, (size_t)(2 * nruns + 16) * sizeof *r);
        if (!r) return;
        run_seconds = r;
        nruns_cap = 2 * nruns + 16;
    }
    for (int i = 0; i < width; i++) history[(size_t)nruns * (size_t)width + (size_t)i] = i < nsteps ? steps[i].run : 0;
    for (int i = 0; i < nsteps; i++) steps[i].run = 0;
    run_seconds[nruns++] = seconds;
}

/* The op labels are op names joined by '+' (identifiers and dots): no JSON
 * escaping needed. The node names are left out for that reason; loom knows
 * which node each step runs. */
int rt_prof_write(const char *path)
{
    if (used == 0) return rt_fail("%s: no step was timed: the program was not built with make PROFILE=1", path);
    if (nruns == 0) return rt_fail("%s: no run was timed", path);
    FILE *f = fopen(path, "w");
    if (!f) return rt_fail("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "{\"runs\": %d,\n \"run_s\": [", nruns);
    for (int r = 0; r < nruns; r++) fprintf(f, "%s%.9g", r ? ", " : "", run_seconds[r]);
    fprintf(f, "],\n \"steps\": [");
    for (int i = 0; i < width; i++) {
        const char *op = i < nsteps ? steps[i].op : NULL;
        fprintf(f, "%s\n  {\"op\": %s%s%s, \"seconds\": [", i ? "," : "", op ? "\"" : "", op ? op : "null",
                op ? "\"" : "");
        for (int r = 0; r < nruns; r++) fprintf(f, "%s%.9g", r ? ", " : "", history[(size_t)r * (size_t)width + (size_t)i]);
        fprintf(f, "]}");
    }
    fprintf(f, "\n]}\n");
    if (ferror(f) | (fclose(f) != 0)) return rt_fail("cannot write %s: %s", path, strerror(errno));
    return 0;
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
