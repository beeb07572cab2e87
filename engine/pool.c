/* Thread pool: workers spin briefly on a generation counter (a decode step
 * issues hundreds of short parallel-fors, so sleeping each time would cost
 * more than the work), then block on a condition variable so an idle pool
 * costs no CPU.
 *
 * Work is handed out in chunks that threads claim from a shared counter,
 * large ones first (guided scheduling): when one thread is slowed down (a
 * busy machine preempts it, or its rows cost more), the others take more
 * chunks instead of waiting for it at the barrier. Which thread computes an
 * item never changes the item's result (pool.h). */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spin iterations before sleeping: ~50-100 us, longer than the gap between two
 * parallel-fors of one forward pass, far shorter than a human pause. Every
 * POOL_YIELD_EVERY iterations the spinner yields, so that on an
 * oversubscribed CPU the thread it waits for gets to run. */
#define POOL_SPIN        20000
#define POOL_YIELD_EVERY 512

static void spin_pause(int i)
{
    if (i % POOL_YIELD_EVERY == POOL_YIELD_EVERY - 1)
        sched_yield();
    else
        cpu_relax();
}

typedef struct worker {
    pool *p;
    int index;
    pthread_t thread;
} worker;

struct pool {
    int n_threads;
    worker *workers; /* n_threads - 1 of them */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* generation changed or stopping */
    pthread_cond_t done; /* pending reached zero */
    atomic_uint_fast64_t generation;
    atomic_int pending; /* workers still running the current job */
    atomic_int stop;
    /* The current job: written by the caller before generation is bumped. */
    pool_fn fn;
    void *arg;
    int64_t n, grain;
    int64_t min_chunk;        /* smallest chunk worth a claim, a multiple of grain */
    atomic_int_fast64_t next; /* first unclaimed item */
};

/* Rounds v up to a multiple of grain. */
static int64_t round_up(int64_t v, int64_t grain)
{
    return (v + grain - 1) / grain * grain;
}

/* Claims the next chunk: half of an even share of what remains, at least
 * min_chunk (the last one may be shorter). Chunk starts are multiples of the
 * grain because every chunk but the last is a multiple of it. Returns 0 when
 * nothing is left. */
static int claim_chunk(pool *p, int64_t *begin, int64_t *end)
{
    int_fast64_t cur = atomic_load_explicit(&p->next, memory_order_relaxed);
    for (;;) {
        if (cur >= p->n)
            return 0;
        int64_t size = round_up((p->n - cur) / (2 * p->n_threads), p->grain);
        if (size < p->min_chunk)
            size = p->min_chunk;
        int64_t stop = p->n - cur < size ? p->n : cur + size;
        if (atomic_compare_exchange_weak_explicit(&p->next, &cur, stop, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *begin = cur;
            *end = stop;
            return 1;
        }
    }
}

static void run_share(pool *p, int t)
{
    int64_t b, e;
    while (claim_chunk(p, &b, &e))
        p->fn(p->arg, b, e, t);
}

/* Waits until the generation differs from seen (or stop); returns the new one. */
static uint_fast64_t wait_for_job(pool *p, uint_fast64_t seen)
{
    for (int i = 0; i < POOL_SPIN; i++) {
        uint_fast64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen || atomic_load(&p->stop))
            return g;
        spin_pause(i);
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return atomic_load_explicit(&p->generation, memory_order_acquire);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pool *p = w->p;
    uint_fast64_t seen = 0;
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        run_share(p, w->index);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void start_barrier_noop(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)arg, (void)begin, (void)end, (void)thread;
}

pool *pool_create(int n_threads, char *err, size_t errlen)
{
    if (n_threads < 1 || n_threads > POOL_MAX_THREADS) {
        snprintf(err, errlen, "thread count %d is outside [1, %d]", n_threads, POOL_MAX_THREADS);
        return NULL;
    }
    pool *p = calloc(1, sizeof *p);
    if (!p || (n_threads > 1 && !(p->workers = calloc((size_t)n_threads - 1, sizeof(worker))))) {
        free(p);
        snprintf(err, errlen, "out of memory creating a pool of %d threads", n_threads);
        return NULL;
    }
    p->n_threads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->next, 0);
    for (int i = 1; i < n_threads; i++) {
        worker *w = &p->workers[i - 1];
        w->p = p;
        w->index = i;
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            snprintf(err, errlen, "cannot create worker thread %d of %d: %s", i, n_threads,
                     strerror(rc));
            pool_destroy(p);
            return NULL;
        }
        p->n_threads = i + 1; /* pool_destroy joins only the threads that exist */
    }
    /* One empty round: returns only when every thread has run, so each has
     * finished its start-up system calls (rseq, set_robust_list, ...) before
     * the caller installs a seccomp filter that would forbid them. */
    pool_for(p, p->n_threads, 1, start_barrier_noop, NULL);
    return p;
}

void pool_destroy(pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->workers[i - 1].thread, NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int pool_threads(const pool *p)
{
    return p->n_threads;
}

void pool_for(pool *p, int64_t n, int64_t grain, pool_fn fn, void *arg)
{
    if (n <= 0)
        return;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->grain = grain < 1 ? 1 : grain;
    if (p->n_threads == 1 || n <= p->grain) {
        fn(arg, 0, n, 0);
        return;
    }
    /* at most about 4 claims per thread after the large first ones */
    p->min_chunk =
        round_up((n + 8 * (int64_t)p->n_threads - 1) / (8 * (int64_t)p->n_threads), p->grain);
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    /* The mutex orders the job fields before the bump for sleeping workers;
     * the release store does it for spinning ones. */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_share(p, 0);
    for (int i = 0; i < POOL_SPIN; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        spin_pause(i);
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
