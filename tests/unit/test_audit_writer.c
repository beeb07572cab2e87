/* Group commit from many threads: every append gets its own seq, the chain
 * stays gap-free, bad bodies fail alone, and write failures fail closed. */
#include "test_audit_helpers.h"
#include "testutil.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define THREADS    8
#define PER_THREAD 60

typedef struct job {
    audit_writer *w;
    int id, appends, failures;
    uint64_t seqs[PER_THREAD];
    const char *body;
} job;

static void *append_many(void *arg)
{
    job *j = arg;
    char actor[16], err[256], body[4300];
    snprintf(actor, sizeof actor, "t%d", j->id);
    for (int i = 0; i < j->appends; i++) {
        if (j->body)
            snprintf(body, sizeof body, "%s", j->body);
        else
            snprintf(body, sizeof body, "{\"i\":%d}", i);
        audit_append_req r = {AUDIT_KIND_OUTPUT, "", actor, body, strlen(body)};
        uint64_t seq = 0;
        if (audit_writer_append(j->w, &r, &seq, NULL, err, sizeof err) != AUDIT_OK) {
            j->failures++;
            if (j->body)
                break; /* fail-closed run: stop at the first refusal */
            continue;
        }
        j->seqs[i] = seq;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_threads_share_commits_and_keep_one_chain(void **state)
{
    (void)state;
    char *dir = test_mkdtemp(), path[4200], err[256];
    snprintf(path, sizeof path, "%s/a.db", dir);
    audit_writer *w = NULL;
    audit_open_opts o = {.create = 1};
    assert_int_equal(audit_writer_open(&w, path, &o, err, sizeof err), AUDIT_OK);
    job jobs[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){.w = w, .id = i, .appends = PER_THREAD};
        assert_int_equal(pthread_create(&th[i], NULL, append_many, &jobs[i]), 0);
    }
    /* A bad body from the main thread fails alone, meanwhile. */
    audit_append_req bad = {AUDIT_KIND_OUTPUT, "", "main", "{\"x\":1.5}", 9};
    assert_int_equal(audit_writer_append(w, &bad, NULL, NULL, err, sizeof err), AUDIT_E_INVALID);
    uint64_t all[THREADS * PER_THREAD];
    size_t n = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].failures, 0);
        for (int k = 0; k < PER_THREAD; k++) {
            if (k)
                assert_true(jobs[i].seqs[k] > jobs[i].seqs[k - 1]);
            all[n++] = jobs[i].seqs[k];
        }
    }
    qsort(all, n, sizeof all[0], cmp_u64);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(all[k], k + 1); /* distinct, dense */
    audit_writer_close(w);
    verdict v = c_verify(path, NULL, NULL);
    assert_string_equal(v.code, "ok");
    assert_int_equal(v.entries, THREADS * PER_THREAD);
    assert_string_equal(py_verify(path, NULL, NULL).code, "ok");
    test_rmtree(dir);
}

/* Child: threads append 4 KiB bodies under a file size limit. Exit 0 when
 * every thread was refused at some point and no refusal was lost. */
static int size_limited_threads(const char *path)
{
    char err[256], pad[4200];
    audit_writer *w = NULL;
    struct rlimit rl = {256 * 1024, 256 * 1024};
    signal(SIGXFSZ, SIG_IGN);
    if (audit_writer_open(&w, path, NULL, err, sizeof err) != AUDIT_OK ||
        setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 10;
    snprintf(pad, sizeof pad, "{\"pad\":\"%04096d\"}", 0);
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){.w = w, .id = i, .appends = 600, .body = pad};
        if (pthread_create(&th[i], NULL, append_many, &jobs[i]) != 0)
            return 11;
    }
    int refused = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        refused += jobs[i].failures;
    }
    audit_writer_close(w);
    return refused == 4 ? 0 : 12;
}

static void test_threads_fail_closed_when_disk_is_full(void **state)
{
    (void)state;
    char *dir = test_mkdtemp(), path[4200], err[256];
    snprintf(path, sizeof path, "%s/a.db", dir);
    audit_log *log = NULL;
    audit_open_opts o = {.create = 1};
    assert_int_equal(audit_open(&log, path, &o, err, sizeof err), AUDIT_OK);
    audit_close(log);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(size_limited_threads(path));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    verdict v = c_verify(path, NULL, NULL);
    assert_string_equal(v.code, "ok");
    assert_true(v.entries > 0);
    test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_share_commits_and_keep_one_chain),
        cmocka_unit_test(test_threads_fail_closed_when_disk_is_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
