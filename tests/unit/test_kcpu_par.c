/* The kernels' thread pool (kpar.c): every iteration of a parallel step runs
 * exactly once, in the chunks the step's size gives whatever the thread
 * count; thread ids stay under the slots a step allows; a step inside a
 * chunk runs on that chunk's thread; a step from a second thread while the
 * pool is busy runs on that thread; small steps never leave the caller; a
 * chunk held up (its thread off the core) still leaves every iteration run
 * once when the step returns; the caller's chunks are the step's first;
 * once the workers start, OpenBLAS's own idle pool is shut down. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "kernels.h"

typedef struct {
    int64_t n;
    _Atomic int *hits;      /* per iteration: times run */
    _Atomic int64_t *lo_of; /* per iteration: lo of the chunk that ran it */
    _Atomic int *tid_of;    /* per iteration: the thread that ran it */
    _Atomic int max_tid;
    int nested;             /* run a nested step from each chunk */
    _Atomic int nested_bad;
    _Atomic int64_t sleep_ns; /* the first chunk to see it sleeps this long */
} Seen;

/* want[0]: the thread id expected; want[1]: set on a wrong one; want[2]: iterations run */
static void nested_body(void *arg, int64_t lo, int64_t hi, int tid)
{
    int *want = arg;
    if (tid != want[0]) want[1] = 1;
    want[2] += (int)(hi - lo);
}

static void body(void *arg, int64_t lo, int64_t hi, int tid)
{
    Seen *s = arg;
    int64_t ns = atomic_exchange(&s->sleep_ns, 0);
    if (ns) nanosleep(&(struct timespec){0, (long)ns}, NULL);
    for (int64_t i = lo; i < hi; i++) {
        atomic_fetch_add(&s->hits[i], 1);
        atomic_store(&s->lo_of[i], lo);
        atomic_store(&s->tid_of[i], tid);
    }
    int m = atomic_load(&s->max_tid);
    while (tid > m && !atomic_compare_exchange_weak(&s->max_tid, &m, tid)) {}
    if (s->nested) { // a whole step of its own, on this thread
        int want[3] = {tid, 0, 0};
        k_par_for(1000, 100 * K_PAR_WORK, nested_body, want);
        if (want[1] || want[2] != 1000) atomic_store(&s->nested_bad, 1);
    }
}

static Seen *seen_new(int64_t n)
{
    Seen *s = calloc(1, sizeof *s);
    s->n = n;
    s->hits = calloc((size_t)n, sizeof *s->hits);
    s->lo_of = calloc((size_t)n, sizeof *s->lo_of);
    s->tid_of = calloc((size_t)n, sizeof *s->tid_of);
    return s;
}

static void seen_free(Seen *s) { free(s->hits), free(s->lo_of), free(s->tid_of), free(s); }

static int all_once(const Seen *s)
{
    for (int64_t i = 0; i < s->n; i++)
        if (atomic_load(&s->hits[i]) != 1) return 0;
    return 1;
}

static void test_par_every_iteration_once(void)
{
    int64_t sizes[] = {1, 2, 7, 64, 1000, 100003};
    for (int t = 1; t <= 4; t++) {
        k_set_threads(t);
        CHECK_EQ_INT(k_threads(), t);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            Seen *s = seen_new(sizes[k]);
            k_par_for(s->n, 64 * K_PAR_WORK, body, s);
            CHECK(all_once(s));
            CHECK(atomic_load(&s->max_tid) < t);
            seen_free(s);
        }
    }
}

/* The chunk boundaries are the same at 1 and 3 threads. */
static void test_par_split_fixed(void)
{
    int64_t n = 5000;
    int64_t *lo1 = malloc((size_t)n * sizeof *lo1);
    for (int t = 1; t <= 3; t += 2) {
        k_set_threads(t);
        for (int rep = 0; rep < 20; rep++) {
            Seen *s = seen_new(n);
            k_par_split(n, 37, 0, body, s);
            CHECK(all_once(s));
            int same = 1;
            for (int64_t i = 0; i < n; i++) {
                int64_t lo = atomic_load(&s->lo_of[i]);
                if (t == 1 && rep == 0) lo1[i] = lo;
                else same &= lo == lo1[i];
            }
            CHECK(same);
            seen_free(s);
        }
    }
    free(lo1);
}

/* The caller claims chunks from the front and the workers from the back
 * (kpar.c: consecutive steps keep their chunks on the same cores), so
 * whatever the timing, the iterations the caller ran are a prefix of the
 * step and the workers' the rest. */
static void test_par_caller_front(void)
{
    k_set_threads(3);
    for (int rep = 0; rep < 50; rep++) {
        Seen *s = seen_new(4000);
        k_par_split(s->n, 40, 0, body, s);
        CHECK(all_once(s));
        int64_t i = 0;
        while (i < s->n && atomic_load(&s->tid_of[i]) == 0) i++;
        int suffix = 1;
        for (; i < s->n; i++) suffix &= atomic_load(&s->tid_of[i]) != 0;
        CHECK(suffix);
        seen_free(s);
    }
    k_set_threads(0);
}

static void test_par_small_stays(void)
{
    k_set_threads(4);
    Seen *s = seen_new(100);
    k_par_for(s->n, K_PAR_WORK - 1, body, s);
    CHECK(all_once(s));
    CHECK_EQ_INT(atomic_load(&s->max_tid), 0);
    for (int64_t i = 0; i < s->n; i++) CHECK_EQ_INT(atomic_load(&s->lo_of[i]), 0); // one call
    seen_free(s);
}

static void test_par_slots(void)
{
    k_set_threads(4);
    for (int rep = 0; rep < 50; rep++) {
        Seen *s = seen_new(64);
        k_par_split(s->n, 64, 2, body, s);
        CHECK(all_once(s));
        CHECK(atomic_load(&s->max_tid) < 2);
        seen_free(s);
    }
}

static void test_par_nested(void)
{
    k_set_threads(3);
    Seen *s = seen_new(300);
    s->nested = 1;
    k_par_split(s->n, 30, 0, body, s);
    CHECK(all_once(s));
    CHECK(!atomic_load(&s->nested_bad));
    seen_free(s);
}

/* A chunk held up (a worker off its core) delays only its own step; steps
 * from two threads at once both complete. */
static void *other_thread(void *arg)
{
    Seen *s = arg;
    for (int rep = 0; rep < 200; rep++) {
        for (int64_t i = 0; i < s->n; i++) atomic_store(&s->hits[i], 0);
        k_par_split(s->n, 16, 0, body, s);
        if (!all_once(s)) return arg;
    }
    return NULL;
}

static void test_par_held_and_concurrent(void)
{
    k_set_threads(2);
    Seen *s = seen_new(1000);
    atomic_store(&s->sleep_ns, 20000000); // 20 ms in the first chunk taken
    k_par_split(s->n, 100, 0, body, s);
    CHECK(all_once(s));
    Seen *a = seen_new(4000), *b = seen_new(4000);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, a) == 0);
    void *bad = other_thread(b);
    void *bad2;
    pthread_join(t, &bad2);
    CHECK(bad == NULL && bad2 == NULL);
    seen_free(s), seen_free(a), seen_free(b);
}

/* OpenBLAS's own thread pool (started when the library loads, where the
 * machine has more than one core) is shut down when this pool's workers
 * start (klinalg.c, k_blas_serial): its flag blas_server_avail, which its
 * shutdown clears, reads 0 after a parallel step on two threads. Skipped
 * where the library exports no such flag (another BLAS). */
extern int blas_server_avail __attribute__((weak));

static void test_par_blas_pool_shut(void)
{
    if (!&blas_server_avail) {
        printf("  (this BLAS has no blas_server_avail: skipped)\n");
        return;
    }
    k_set_threads(2);
    Seen *s = seen_new(4096);
    k_par_for(s->n, 64 * K_PAR_WORK, body, s);
    CHECK(all_once(s));
    CHECK(blas_server_avail == 0);
    seen_free(s);
    k_set_threads(0);
}

int main(void)
{
    RUN(test_par_blas_pool_shut);
    RUN(test_par_every_iteration_once);
    RUN(test_par_split_fixed);
    RUN(test_par_caller_front);
    RUN(test_par_small_stays);
    RUN(test_par_slots);
    RUN(test_par_nested);
    RUN(test_par_held_and_concurrent);
    return CHECK_DONE();
}
