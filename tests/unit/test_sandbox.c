/* The sandbox, proven rather than trusted: real child processes are locked
 * down exactly as the worker is, then try what a compromised worker would
 * try. Each attempt must kill the child with SIGSYS; allowed work must
 * succeed. The monitor filter must refuse network and exec but allow the
 * rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policy/policy.h"

typedef void (*child_action)(int ipc);

/* A thread made before lockdown, like the engine's pool; on request it
 * makes a forbidden call, proving the filter reached it too (TSYNC). */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int up, go;
} pool_thread;

static void *pool_thread_main(void *arg)
{
    pool_thread *t = arg;
    pthread_mutex_lock(&t->mu);
    t->up = 1; /* start-up system calls done (as pool_create waits for) */
    pthread_cond_broadcast(&t->cv);
    while (!t->go)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    return NULL;
}

static void send_msg(int ipc, const void *m, size_t n)
{
    if (write(ipc, m, n) != (ssize_t)n)
        _exit(90);
}

/* Child side: lock down like the worker, report facts, wait for "go", act. */
static void child_main(int ipc, child_action action, int with_thread)
{
    int keep[] = {ipc, 2};
    sandbox_facts facts;
    char err[256], go;
    static pool_thread t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t th;
    if (sandbox_worker_isolate(keep, 2, &facts, err, sizeof err) != 0)
        _exit(91);
    if (with_thread) {
        /* Like pool_create: wait until the thread runs, so its start-up
         * system calls (rseq, set_robust_list, a sanitizer's sigaltstack)
         * are not made under the filter. Without this the test raced: on a
         * loaded machine the thread was killed while starting, before the
         * child reported its facts. */
        if (pthread_create(&th, NULL, pool_thread_main, &t) != 0)
            _exit(92);
        pthread_mutex_lock(&t.mu);
        while (!t.up)
            pthread_cond_wait(&t.cv, &t.mu);
        pthread_mutex_unlock(&t.mu);
    }
    if (sandbox_worker_lockdown(ipc, &facts, err, sizeof err) != 0)
        _exit(93);
    send_msg(ipc, &facts, sizeof facts);
    if (read(ipc, &go, 1) != 1)
        _exit(94);
    if (with_thread) {
        pthread_mutex_lock(&t.mu);
        t.go = 1;
        pthread_cond_signal(&t.cv);
        pthread_mutex_unlock(&t.mu);
        for (;;)
            sched_yield(); /* the thread's forbidden call ends the process */
    }
    action(ipc);
    send_msg(ipc, "survived", 8);
    /* As the worker does: end with the raw system call, so no at-exit work
     * of a sanitizer runtime (LeakSanitizer's ptrace, ASan's sigaltstack)
     * runs inside the filter. */
    syscall(SYS_exit_group, 0);
}

typedef struct {
    int status;
    sandbox_facts facts; /* what the child reported */
    sandbox_facts seen;  /* what /proc showed the parent */
    char last[16];
} child_result;

static void run_child(child_action action, int with_thread, child_result *r)
{
    int sv[2];
    char go = 'g';
    memset(r, 0, sizeof *r);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        child_main(sv[1], action, with_thread);
    }
    close(sv[1]);
    assert_int_equal(read(sv[0], &r->facts, sizeof r->facts), (ssize_t)sizeof r->facts);
    assert_int_equal(sandbox_read_status(pid, &r->seen), 0);
    assert_int_equal(write(sv[0], &go, 1), 1);
    ssize_t n = read(sv[0], r->last, sizeof r->last - 1);
    r->last[n > 0 ? n : 0] = 0;
    assert_int_equal(waitpid(pid, &r->status, 0), pid);
    close(sv[0]);
}

static void expect_killed_by_sigsys(child_action action, const char *what)
{
    child_result r;
    run_child(action, 0, &r);
    if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGSYS)
        fail_msg("%s: expected death by SIGSYS, got status 0x%x (last message '%s')", what,
                 r.status, r.last);
}

/* ---- what a compromised worker might try -------------------------------- */

static void try_socket_inet(int ipc)
{
    (void)ipc;
    socket(AF_INET, SOCK_STREAM, 0);
}

static void try_connect(int ipc)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(ipc, (struct sockaddr *)&a, sizeof a);
}

static void try_openat(int ipc)
{
    (void)ipc;
    syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
}

static void try_execve(int ipc)
{
    char *argv[] = {"/bin/true", NULL};
    (void)ipc;
    execve("/bin/true", argv, NULL);
}

static void try_exec_mapping(int ipc)
{
    (void)ipc;
    mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void *noop(void *a)
{
    return a;
}

static void try_new_thread(int ipc)
{
    pthread_t t;
    (void)ipc;
    pthread_create(&t, NULL, noop, NULL);
}

static void try_ptrace(int ipc)
{
    (void)ipc;
    syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL);
}

static void try_write_other_fd(int ipc)
{
    syscall(SYS_write, ipc + 1, "x", 1);
}

static void try_kill_parent(int ipc)
{
    (void)ipc;
    syscall(SYS_kill, 1, 0);
}

/* The chat worker's look for a cancel is recvfrom(ipc, MSG_DONTWAIT) only:
 * a blocking receive, or one on another descriptor, is not allowed. */
static void try_blocking_recvfrom(int ipc)
{
    char b[8];
    syscall(SYS_recvfrom, ipc, b, sizeof b, 0, NULL, NULL);
}

static void try_recvfrom_other_fd(int ipc)
{
    char b[8];
    syscall(SYS_recvfrom, ipc + 1, b, sizeof b, MSG_DONTWAIT, NULL, NULL);
}

static void do_allowed_work(int ipc)
{
    /* Memory in every allowed way, then a message on the IPC socket. */
    size_t n = 8 << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(95);
    memset(p, 1, n);
    if (mprotect(p, 4096, PROT_READ) != 0 || munmap(p, n) != 0)
        _exit(96);
    char *q = malloc(1 << 20);
    if (!q)
        _exit(97);
    memset(q, 2, 1 << 20);
    free(q);
    char b[8]; /* nothing is waiting: the non-blocking look says so */
    if (syscall(SYS_recvfrom, ipc, b, sizeof b, MSG_DONTWAIT, NULL, NULL) != -1 || errno != EAGAIN)
        _exit(98);
    send_msg(ipc, "ok", 2);
}

static void test_forbidden_calls_kill_the_worker(void **state)
{
    (void)state;
    expect_killed_by_sigsys(try_socket_inet, "socket(AF_INET)");
    expect_killed_by_sigsys(try_connect, "connect");
    expect_killed_by_sigsys(try_openat, "openat /etc/passwd");
    expect_killed_by_sigsys(try_execve, "execve");
    expect_killed_by_sigsys(try_exec_mapping, "mmap PROT_EXEC");
    expect_killed_by_sigsys(try_new_thread, "thread creation after lockdown");
    expect_killed_by_sigsys(try_ptrace, "ptrace");
    expect_killed_by_sigsys(try_write_other_fd, "write to another descriptor");
    expect_killed_by_sigsys(try_kill_parent, "kill");
    expect_killed_by_sigsys(try_blocking_recvfrom, "blocking recvfrom");
    expect_killed_by_sigsys(try_recvfrom_other_fd, "recvfrom on another descriptor");
}

static void test_allowed_work_survives_and_facts_are_real(void **state)
{
    child_result r;
    (void)state;
    run_child(do_allowed_work, 0, &r);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 0);
    /* The parent sees filter mode and no_new_privs in /proc, as reported. */
    assert_int_equal(r.seen.seccomp_mode, 2);
    assert_int_equal(r.seen.no_new_privs, 1);
    assert_int_equal(r.facts.seccomp_mode, 2);
    /* Namespaces and Landlock are either in force or explained. */
    if (!r.facts.net_namespace)
        assert_non_null(strstr(r.facts.notes, "network namespace"));
    if (!r.facts.landlock_enforced)
        assert_non_null(strstr(r.facts.notes, "Landlock"));
    print_message("worker facts: seccomp=%d nnp=%d netns=%d userns=%d landlock abi=%d "
                  "enforced=%d notes='%s'\n",
                  r.facts.seccomp_mode, r.facts.no_new_privs, r.facts.net_namespace,
                  r.facts.user_namespace, r.facts.landlock_abi, r.facts.landlock_enforced,
                  r.facts.notes);
}

static void test_filter_reaches_threads_made_before_it(void **state)
{
    child_result r;
    (void)state;
    run_child(do_allowed_work, 1, &r);
    assert_true(WIFSIGNALED(r.status));
    assert_int_equal(WTERMSIG(r.status), SIGSYS);
}

/* The monitor filter: network and exec refused with EPERM, the rest works. */
static int monitor_child(void)
{
    char err[256];
    int u;
    if (sandbox_monitor_lockdown(err, sizeof err) != 0)
        return 10;
    if (socket(AF_INET, SOCK_STREAM, 0) != -1 || errno != EPERM)
        return 11;
    if (socket(AF_INET6, SOCK_DGRAM, 0) != -1 || errno != EPERM)
        return 12;
    if (socket(AF_NETLINK, SOCK_RAW, 0) != -1 || errno != EPERM)
        return 13;
    if ((u = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
        return 14;
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "/nonexistent.sock"};
    if (connect(u, (struct sockaddr *)&a, sizeof a) != -1 || errno != EPERM)
        return 15;
    close(u);
    char *argv[] = {"/bin/true", NULL};
    if (execve("/bin/true", argv, NULL) != -1 || errno != EPERM)
        return 16;
    if (syscall(SYS_io_uring_setup, 1, NULL) != -1 || errno != EPERM)
        return 17;
    pid_t p = fork(); /* starting a new worker must still work */
    if (p == 0)
        _exit(0);
    int st;
    if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st))
        return 18;
    int fd = open("/dev/null", O_RDONLY); /* the monitor owns files */
    if (fd < 0)
        return 19;
    close(fd);
    return 0;
}

static void test_monitor_filter_denies_network_and_exec(void **state)
{
    int st;
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(monitor_child());
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_rule_tables_describe_the_filters(void **state)
{
    (void)state;
    size_t n = sandbox_filter_size(SANDBOX_WORKER);
    int saw_read = 0, saw_mmap = 0;
    for (size_t i = 0; i < n; i++) {
        sandbox_rule r = sandbox_filter_rule(SANDBOX_WORKER, i);
        saw_read |= strcmp(r.syscall, "read") == 0 && strstr(r.action, "IPC") != NULL;
        saw_mmap |= strcmp(r.syscall, "mmap") == 0 && strstr(r.action, "PROT_EXEC") != NULL;
        assert_null(strstr(r.syscall, "open"));
        assert_null(strstr(r.syscall, "socket"));
        assert_null(strstr(r.syscall, "clone"));
    }
    assert_true(saw_read && saw_mmap);
    assert_non_null(strstr(sandbox_filter_default(SANDBOX_WORKER), "kill"));
    assert_string_equal(sandbox_filter_default(SANDBOX_MONITOR), "allow");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forbidden_calls_kill_the_worker),
        cmocka_unit_test(test_allowed_work_survives_and_facts_are_real),
        cmocka_unit_test(test_filter_reaches_threads_made_before_it),
        cmocka_unit_test(test_monitor_filter_denies_network_and_exec),
        cmocka_unit_test(test_rule_tables_describe_the_filters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
