/* Concurrency, fail-closed and crash behaviour on real files and processes:
 * N processes x M appends give one gap-free chain; a full disk, a read-only
 * file system and a lock held past the timeout make appends fail (and leave
 * a valid log); kill -9 at random points never leaves an invalid log. */
#include "test_audit_helpers.h"
#include "testutil.h"

#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WORKERS 4
#define APPENDS 50

static char *make_log(char *path, size_t cap)
{
    char *dir = test_mkdtemp();
    char err[256];
    audit_log *log = NULL;
    audit_open_opts o = {.create = 1};
    assert_non_null(dir);
    snprintf(path, cap, "%s/audit.db", dir);
    assert_int_equal(audit_open(&log, path, &o, err, sizeof err), AUDIT_OK);
    assert_int_equal(
        audit_append(log, AUDIT_KIND_INIT, "", "test", "{}", 2, NULL, NULL, err, sizeof err),
        AUDIT_OK);
    audit_close(log);
    return dir;
}

/* Child body: M appends on its own connection; exit status = failures. */
static void worker(const char *path, int id)
{
    char err[256], actor[16], body[64];
    audit_log *log = NULL;
    audit_open_opts o = {.busy_timeout_ms = 20000};
    int failures = 0;
    if (audit_open(&log, path, &o, err, sizeof err) != AUDIT_OK)
        _exit(100);
    snprintf(actor, sizeof actor, "w%d", id);
    for (int j = 0; j < APPENDS; j++) {
        snprintf(body, sizeof body, "{\"j\":%d}", j);
        if (audit_append(log, AUDIT_KIND_SESSION_START, "", actor, body, strlen(body), NULL, NULL,
                         err, sizeof err) != AUDIT_OK) {
            fprintf(stderr, "worker %d: %s\n", id, err);
            failures++;
        }
    }
    audit_close(log);
    _exit(failures > 99 ? 99 : failures);
}

typedef struct per_actor {
    int count[WORKERS];
    int last_j[WORKERS];
    int out_of_order;
} per_actor;

static int count_actor(const audit_entry *e, void *ctx)
{
    per_actor *p = ctx;
    int id, j;
    const char *rec = (const char *)e->record;
    const char *jp = strstr(rec, "\"j\":");
    if (sscanf(e->actor, "w%d", &id) == 1 && id >= 0 && id < WORKERS && jp &&
        sscanf(jp + 4, "%d", &j) == 1) {
        if (j != p->last_j[id] + 1)
            p->out_of_order++;
        p->last_j[id] = j;
        p->count[id]++;
    }
    return 0;
}

static void test_concurrent_processes_one_chain(void **state)
{
    (void)state;
    char path[4200], err[256];
    char *dir = make_log(path, sizeof path);
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            worker(path, i);
    }
    for (int i = 0; i < WORKERS; i++) {
        int st = 0;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    verdict v = c_verify(path, NULL, NULL);
    assert_string_equal(v.code, "ok");
    assert_int_equal(v.entries, 1 + WORKERS * APPENDS);
    verdict p = py_verify(path, NULL, NULL);
    assert_string_equal(p.code, "ok");
    assert_string_equal(p.head, v.head);
    per_actor pa;
    memset(&pa, 0, sizeof pa);
    for (int i = 0; i < WORKERS; i++)
        pa.last_j[i] = -1;
    audit_log *log = NULL;
    assert_int_equal(audit_open(&log, path, NULL, err, sizeof err), AUDIT_OK);
    assert_int_equal(audit_query(log, NULL, count_actor, &pa, err, sizeof err), AUDIT_OK);
    audit_close(log);
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pa.count[i], APPENDS);
    assert_int_equal(pa.out_of_order, 0);
    test_rmtree(dir);
}

static void test_lock_held_past_timeout_fails(void **state)
{
    (void)state;
    char path[4200], err[256];
    char *dir = make_log(path, sizeof path);
    sqlite3 *holder;
    assert_int_equal(sqlite3_open(path, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    audit_log *log = NULL;
    audit_open_opts o = {.busy_timeout_ms = 300};
    assert_int_equal(audit_open(&log, path, &o, err, sizeof err), AUDIT_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = audit_append(log, AUDIT_KIND_PROMPT, "r", "a", "{}", 2, NULL, NULL, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_int_equal(rc, AUDIT_E_BUSY);
    assert_non_null(strstr(err, "lock"));
    assert_true(ms >= 250 && ms < 5000);
    assert_int_equal(sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(holder);
    assert_int_equal(
        audit_append(log, AUDIT_KIND_PROMPT, "r", "a", "{}", 2, NULL, NULL, err, sizeof err),
        AUDIT_OK);
    audit_close(log);
    assert_string_equal(c_verify(path, NULL, NULL).code, "ok");
    test_rmtree(dir);
}

/* Appends 4 KiB bodies until one fails; returns the failing status, or 0. */
static int append_until_failure(audit_log *log, int max, char *err, size_t errlen)
{
    static char body[4200];
    memset(body, 0, sizeof body);
    memcpy(body, "{\"pad\":\"", 8);
    memset(body + 8, 'x', 4096);
    memcpy(body + 8 + 4096, "\"}", 2);
    for (int i = 0; i < max; i++) {
        int rc = audit_append(log, AUDIT_KIND_OUTPUT, "r", "a", body, strlen(body), NULL, NULL, err,
                              errlen);
        if (rc != AUDIT_OK)
            return rc;
    }
    return 0;
}

static void test_file_size_limit_fails_closed(void **state)
{
    (void)state;
    char path[4200];
    char *dir = make_log(path, sizeof path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256];
        audit_log *log = NULL;
        struct rlimit rl = {256 * 1024, 256 * 1024};
        signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of being killed */
        if (audit_open(&log, path, NULL, err, sizeof err) != AUDIT_OK ||
            setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(10);
        int rc = append_until_failure(log, 1000, err, sizeof err);
        fprintf(stderr, "size-limited append failed as expected: %s\n", err);
        audit_close(log);
        _exit(rc == AUDIT_E_IO ? 0 : 11);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    verdict v = c_verify(path, NULL, NULL);
    assert_string_equal(v.code, "ok");
    assert_true(v.entries > 1);
    assert_string_equal(py_verify(path, NULL, NULL).code, "ok");
    test_rmtree(dir);
}

/* In a private mount namespace: a 512 KiB tmpfs fills up, then turns
 * read-only. Exit status 0 when both fail closed and the log verifies. */
static int tmpfs_child(const char *mnt)
{
    char path[4200], err[256];
    audit_log *log = NULL;
    audit_open_opts o = {.create = 1};
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", mnt, "tmpfs", 0, "size=512k") != 0)
        return 77;
    snprintf(path, sizeof path, "%s/audit.db", mnt);
    if (audit_open(&log, path, &o, err, sizeof err) != AUDIT_OK)
        return 20;
    int rc = append_until_failure(log, 10000, err, sizeof err);
    fprintf(stderr, "disk-full append failed as expected: %s\n", err);
    audit_close(log);
    if (rc != AUDIT_E_IO && rc != AUDIT_E_FORMAT)
        return 21;
    verdict v = c_verify(path, NULL, NULL);
    if (!v.ok || v.entries < 2)
        return 22;
    if (mount("tmpfs", mnt, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=512k") != 0)
        return 23;
    rc = audit_open(&log, path, NULL, err, sizeof err);
    if (rc == AUDIT_OK) {
        rc = audit_append(log, AUDIT_KIND_PROMPT, "r", "a", "{}", 2, NULL, NULL, err, sizeof err);
        audit_close(log);
    }
    fprintf(stderr, "read-only file system refused: %s\n", err);
    if (rc == AUDIT_OK)
        return 24;
    /* An auditor can still verify the log where it lies, read-only. */
    if (!c_verify(path, NULL, NULL).ok || !py_verify(path, NULL, NULL).ok)
        return 25;
    return 0;
}

static void test_disk_full_and_read_only_fs_fail_closed(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(tmpfs_child(dir));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    test_rmtree(dir);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77)
        skip(); /* no privilege to mount a tmpfs here: RLIMIT_FSIZE covers disk full */
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Writer for the crash test: prompt/output pairs until killed. */
static void crash_writer(const char *path, int iteration)
{
    char err[256], rid[64];
    audit_log *log = NULL;
    if (audit_open(&log, path, NULL, err, sizeof err) != AUDIT_OK)
        _exit(1);
    for (int k = 0;; k++) {
        snprintf(rid, sizeof rid, "it%d-%d", iteration, k);
        if (audit_append(log, AUDIT_KIND_PROMPT, rid, "a", "{\"p\":1}", 7, NULL, NULL, err,
                         sizeof err) != AUDIT_OK ||
            audit_append(log, AUDIT_KIND_OUTPUT, rid, "a", "{\"o\":1}", 7, NULL, NULL, err,
                         sizeof err) != AUDIT_OK)
            _exit(2);
    }
}

static void test_kill_9_at_random_points(void **state)
{
    (void)state;
    char path[4200];
    char *dir = make_log(path, sizeof path);
    unsigned seed = (unsigned)time(NULL);
    for (int it = 0; it < 40; it++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            crash_writer(path, it);
        usleep((useconds_t)(2000 + rand_r(&seed) % 100000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st)); /* it was still writing when killed */
        verdict v = c_verify(path, NULL, NULL);
        if (!v.ok)
            fail_msg("iteration %d (seed %u): log invalid after kill -9: %s at %llu", it, seed,
                     v.code, v.seq);
    }
    verdict v = c_verify(path, NULL, NULL);
    verdict p = py_verify(path, NULL, NULL);
    assert_string_equal(p.code, "ok");
    assert_string_equal(p.incomplete, v.incomplete);
    /* Each kill can leave at most its own last prompt dangling. */
    int dangling = 0;
    for (const char *q = v.incomplete; (q = strchr(q, ' ')) != NULL; q++)
        dangling++;
    assert_true(dangling <= 40);
    fprintf(stderr, "crash test: 40 kills, %llu entries, %d kills left a dangling prompt\n",
            v.entries, dangling);
    test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_processes_one_chain),
        cmocka_unit_test(test_lock_held_past_timeout_fails),
        cmocka_unit_test(test_file_size_limit_fails_closed),
        cmocka_unit_test(test_disk_full_and_read_only_fs_fail_closed),
        cmocka_unit_test(test_kill_9_at_random_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
