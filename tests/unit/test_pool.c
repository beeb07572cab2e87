/* Thread pool: every item is visited exactly once, ranges respect the grain,
 * thread indexes are valid, and many back-to-back calls act as barriers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/pool.h"

typedef struct {
    int *hits; /* per item */
    int64_t grain;
    int n_threads;
    int bad_range; /* set when a range is not grain-aligned or thread is out of range */
} visit_state;

static void visit(void *arg, int64_t begin, int64_t end, int thread)
{
    visit_state *s = arg;
    if (begin % s->grain != 0 || thread < 0 || thread >= s->n_threads)
        s->bad_range = 1;
    for (int64_t i = begin; i < end; i++)
        s->hits[i]++;
}

static void check_cover(pool *p, int n_threads, int64_t n, int64_t grain)
{
    visit_state s = {calloc((size_t)n + 1, sizeof(int)), grain, n_threads, 0};
    assert_non_null(s.hits);
    pool_for(p, n, grain, visit, &s);
    for (int64_t i = 0; i < n; i++)
        assert_int_equal(s.hits[i], 1);
    assert_int_equal(s.hits[n], 0);
    assert_int_equal(s.bad_range, 0);
    free(s.hits);
}

static void test_cover_all_sizes(void **state)
{
    (void)state;
    char err[256];
    for (int t = 1; t <= 4; t++) {
        pool *p = pool_create(t, err, sizeof err);
        assert_non_null(p);
        assert_int_equal(pool_threads(p), t);
        for (int64_t n = 1; n < 40; n++)
            for (int64_t g = 1; g <= 16; g *= 2)
                check_cover(p, t, n, g);
        check_cover(p, t, 100000, 64);
        pool_destroy(p);
    }
}

/* Step k adds k to every element; any missing barrier would let a worker read
 * a stale value and break the closed form. */
typedef struct {
    int64_t *v;
    int64_t k;
} step_state;

static void step(void *arg, int64_t begin, int64_t end, int thread)
{
    step_state *s = arg;
    (void)thread;
    for (int64_t i = begin; i < end; i++)
        s->v[i] += s->k;
}

static void test_barrier_many_calls(void **state)
{
    (void)state;
    char err[256];
    pool *p = pool_create(3, err, sizeof err);
    assert_non_null(p);
    int64_t v[257] = {0};
    step_state s = {v, 0};
    for (int64_t k = 1; k <= 500; k++) {
        s.k = k;
        pool_for(p, 257, 1, step, &s);
    }
    for (int i = 0; i < 257; i++)
        assert_int_equal(v[i], 500 * 501 / 2);
    pool_destroy(p);
}

static void test_bad_thread_count(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(pool_create(0, err, sizeof err));
    assert_non_null(strstr(err, "thread count 0"));
    assert_null(pool_create(POOL_MAX_THREADS + 1, err, sizeof err));
    pool_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cover_all_sizes),
        cmocka_unit_test(test_barrier_many_calls),
        cmocka_unit_test(test_bad_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
