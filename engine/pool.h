/* A fixed thread pool with a parallel-for (internal to engine/).
 *
 * All threads are created by pool_create and live until pool_destroy: the
 * sandbox forbids clone() once the pool exists, so nothing is created lazily.
 * pool_for splits [0, n) into contiguous chunks (starting at multiples of a
 * grain) that the threads claim as they go, the caller's thread included,
 * and returns when every chunk is done, acting as a barrier. Which thread
 * gets which chunk varies from call to call; results never depend on it as
 * long as the callback computes each output element in one thread, in a
 * fixed order. */
#ifndef ENGINE_POOL_H
#define ENGINE_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct pool pool;

/* Work on items [begin, end); thread is 0..pool_threads()-1, unique among the
 * threads running one pool_for call (use it to pick per-thread scratch). */
typedef void (*pool_fn)(void *arg, int64_t begin, int64_t end, int thread);

/* Creates n_threads - 1 workers (the caller is thread 0). n_threads in
 * [1, POOL_MAX_THREADS]. Returns NULL and fills err on failure. */
#define POOL_MAX_THREADS 256
pool *pool_create(int n_threads, char *err, size_t errlen);
/* Joins the workers and frees the pool; NULL is accepted. */
void pool_destroy(pool *p);
int pool_threads(const pool *p);

/* Runs fn over [0, n) split in ranges that are multiples of grain (>= 1),
 * except the last; a thread may get several ranges or none. Must not be
 * called from inside a callback. */
void pool_for(pool *p, int64_t n, int64_t grain, pool_fn fn, void *arg);

#endif
