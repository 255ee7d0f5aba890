/* The thread pool of the cpu kernels and of the generated loops: every
 * parallel step of a loom program goes through k_par_for / k_par_split.
 *
 * A parallel step is cut into a fixed list of chunks (how many depends on
 * the step's size, never on the thread count or on who runs which chunk, so
 * results are the same bits on any number of threads). The calling thread
 * and the workers claim chunks one at a time from one atomic word (the
 * caller from the front, the workers from the back); the caller runs
 * chunks like any worker and, when none is left to claim, waits
 * only for the chunks another thread has claimed and not finished. A worker
 * that another process holds off its core therefore costs at most the chunk
 * it is in (the caller takes every chunk it has not started), where an
 * OpenMP fork-join region waited at its closing barrier for every worker
 * (on the shared 2-core machine two threads then ran no faster than one).
 *
 * Workers are started on the first parallel step, spin for SPIN_NS after
 * each step (the next step then starts at once: a wake-up through the
 * kernel costs tens of microseconds) and then sleep on a condition variable.
 * Threads: OMP_NUM_THREADS if set (the variable users already set for
 * threaded numeric code), else the CPUs this process may run on;
 * OMP_WAIT_POLICY=passive makes idle workers sleep at once. A parallel step
 * started inside a chunk, or from a second thread while the pool is busy,
 * runs its chunks on its own thread. */
#include "kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long an idle worker spins before it sleeps. */
#define SPIN_NS 300000
/* At most this many threads (the state word's limit field). */
#define MAX_THREADS 255
/* At most this many chunks per step (the state word's chunk fields). */
#define MAX_CHUNKS 0xffff

/* The state word: generation (24 bits) | threads that may claim (8) |
 * the chunks not yet claimed, [lo, hi) (16 bits each). The calling thread
 * claims from the front (lo + 1), the workers from the back (hi - 1): on
 * two threads the caller runs the first chunks and the worker the last ones
 * of every step, so consecutive steps over the same images or rows find
 * them in the same core's cache (when both claimed from the front, which
 * thread got which chunk changed from step to step: whole resnet_small runs
 * took 0.97x the time, a median over 20 noisy pairs). A claim is a
 * compare-and-swap, so it can only take a chunk of the step that is current
 * when it succeeds; the step's other fields are read after the claim. */
#define ST_HI(s) ((int64_t)((s) & 0xffff))
#define ST_LO(s) ((int64_t)(((s) >> 16) & 0xffff))
#define ST_LIMIT(s) ((int)(((s) >> 32) & 0xff))
#define ST_GEN(s) ((uint32_t)((s) >> 40))

static _Atomic uint64_t state;
static atomic_int done;     /* chunks of the current step finished */
static atomic_int sleepers; /* workers asleep or about to be */
static atomic_flag busy = ATOMIC_FLAG_INIT;

/* The current step, written by its caller before it publishes the state. */
static KParBody job_body;
static void *job_arg;
static int64_t job_n, job_chunks;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

static int nthreads;  /* threads a step may use; 0: not yet read */
static int nstarted;  /* workers running (thread ids 1..nstarted) */
static int spin_ns = SPIN_NS;
static uint32_t generation;

static _Thread_local int my_tid;  /* 0: the calling thread; workers 1.. */
static _Thread_local int in_step; /* running a chunk */

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cpus(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void read_env(void)
{
    if (nthreads) return;
    const char *s = getenv("OMP_NUM_THREADS");
    char *end;
    long n = s ? strtol(s, &end, 10) : 0;
    nthreads = n >= 1 ? (int)(n < MAX_THREADS ? n : MAX_THREADS) : cpus();
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    const char *w = getenv("OMP_WAIT_POLICY");
    if (w && (w[0] == 'p' || w[0] == 'P')) spin_ns = 0;
}

int k_threads(void)
{
    pthread_mutex_lock(&lock);
    read_env();
    int n = nthreads;
    pthread_mutex_unlock(&lock);
    return n;
}

void k_set_threads(int n)
{
    pthread_mutex_lock(&lock);
    nthreads = n > MAX_THREADS ? MAX_THREADS : n > 0 ? n : 0;
    read_env(); // n <= 0: the default again
    pthread_mutex_unlock(&lock);
}

/* Claims the next chunk that thread tid may take (the caller: the first
 * left; a worker: the last) and runs it, chunk c of
 * the step being [n * c / chunks, n * (c + 1) / chunks); 0 when none is
 * left to it. */
static int run_next(int tid)
{
    uint64_t s = atomic_load_explicit(&state, memory_order_acquire);
    while (tid < ST_LIMIT(s) && ST_LO(s) < ST_HI(s)) {
        uint64_t claimed = tid == 0 ? s + ((uint64_t)1 << 16) : s - 1;
        if (atomic_compare_exchange_weak_explicit(&state, &s, claimed, memory_order_acquire,
                                                  memory_order_acquire)) {
            // the step cannot end (nor its fields change) before this chunk is done
            int64_t c = tid == 0 ? ST_LO(s) : ST_HI(s) - 1, chunks = job_chunks, n = job_n;
            job_body(job_arg, n * c / chunks, n * (c + 1) / chunks, tid);
            atomic_fetch_add_explicit(&done, 1, memory_order_release);
            return 1;
        }
    }
    return 0;
}

static void *worker(void *arg)
{
    my_tid = (int)(intptr_t)arg;
    in_step = 1; // a step started from a chunk runs on its own thread
    uint32_t seen = ST_GEN(atomic_load(&state));
    for (;;) {
        uint64_t s;
        int64_t t0 = now_ns();
        for (int i = 0;; i++) { // spin, then sleep, until a new step is published
            s = atomic_load_explicit(&state, memory_order_acquire);
            if (ST_GEN(s) != seen) break;
            if ((i & 63) == 63 && now_ns() - t0 >= spin_ns) {
                pthread_mutex_lock(&lock);
                atomic_fetch_add(&sleepers, 1);
                while (ST_GEN(s = atomic_load(&state)) == seen) pthread_cond_wait(&wake, &lock);
                atomic_fetch_sub(&sleepers, 1);
                pthread_mutex_unlock(&lock);
                break;
            }
            CPU_RELAX();
        }
        seen = ST_GEN(s);
        while (run_next(my_tid)) {}
    }
    return NULL;
}

/* Workers up to thread id n - 1 (under lock); fewer if the system refuses.
 * OpenBLAS's own idle pool goes first (k_blas_serial): it would spin beside them. */
static void start_workers(int n)
{
    if (nstarted < n - 1) k_blas_serial();
    while (nstarted < n - 1) {
        pthread_attr_t a;
        pthread_t t;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &a, worker, (void *)(intptr_t)(nstarted + 1));
        pthread_attr_destroy(&a);
        if (rc != 0) break;
        nstarted++;
    }
}

/* The step's chunks one after another on this thread: the same split. */
static void run_serial(int64_t n, int64_t chunks, KParBody body, void *arg)
{
    for (int64_t c = 0; c < chunks; c++) body(arg, n * c / chunks, n * (c + 1) / chunks, my_tid);
}

void k_par_split(int64_t n, int64_t chunks, int slots, KParBody body, void *arg)
{
    if (n <= 0) return;
    if (chunks > n) chunks = n;
    if (chunks > MAX_CHUNKS) chunks = MAX_CHUNKS;
    if (chunks < 1) chunks = 1;
    if (chunks == 1 || in_step || atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) {
        run_serial(n, chunks, body, arg);
        return;
    }
    pthread_mutex_lock(&lock);
    read_env();
    int limit = nthreads;
    if (slots > 0 && slots < limit) limit = slots;
    if (limit > 1) start_workers(limit);
    if (limit > nstarted + 1) limit = nstarted + 1;
    pthread_mutex_unlock(&lock);
    if (limit <= 1) {
        atomic_flag_clear_explicit(&busy, memory_order_release);
        run_serial(n, chunks, body, arg);
        return;
    }
    job_body = body, job_arg = arg, job_n = n, job_chunks = chunks;
    atomic_store_explicit(&done, 0, memory_order_relaxed);
    generation = (generation + 1) & 0xffffff;
    atomic_store(&state, (uint64_t)generation << 40 | (uint64_t)limit << 32 | (uint64_t)chunks);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&lock);
    }
    in_step = 1;
    while (run_next(0)) {}
    in_step = 0;
    // what is left is chunks that workers claimed and are running
    for (int i = 0; atomic_load_explicit(&done, memory_order_acquire) < chunks; i++) {
        if (i >= 4096) sched_yield(); // the worker may be waiting for this core
        else CPU_RELAX();
    }
    atomic_flag_clear_explicit(&busy, memory_order_release);
}

int64_t k_par_chunks(int64_t n, int64_t work)
{
    if (work < K_PAR_WORK || n <= 1) return 1;
    int64_t chunks = work / K_PAR_GRAIN;
    chunks = chunks > K_PAR_CHUNKS ? K_PAR_CHUNKS : chunks < 2 ? 2 : chunks;
    return chunks < n ? chunks : n;
}

void k_par_for(int64_t n, int64_t work, KParBody body, void *arg)
{
    if (n <= 0) return;
    int64_t chunks = k_par_chunks(n, work);
    if (chunks == 1) body(arg, 0, n, my_tid);
    else k_par_split(n, chunks, 0, body, arg);
}
