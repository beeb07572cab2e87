/* Process sandboxing: Landlock, namespaces, rlimits and seccomp filters.
 *
 * Each filter is one table below: a reviewer audits the sandbox by reading
 * it, and `appliance policy show-sandbox` prints the same table, so what is
 * shown is what is loaded. */
#include "policy.h"

/* libseccomp's SCMP_An() macros leave a field of struct scmp_arg_cmp to its
 * default on purpose; clang warns about that where GCC does not. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Argument conditions a rule can carry. */
typedef enum {
    ARG_ANY,           /* no condition */
    ARG_FD_IPC,        /* arg0 == the IPC socket */
    ARG_FD_IPC_ERR,    /* arg0 == the IPC socket or stderr */
    ARG_FD_IPC_NOWAIT, /* arg0 == the IPC socket and arg3 (flags) == MSG_DONTWAIT */
    ARG_PROT_NO_EXEC,  /* arg2 (prot) without PROT_EXEC */
    ARG_NOT_AF_UNIX,   /* arg0 (domain) != AF_UNIX */
} arg_rule;

typedef struct {
    int nr;
    const char *name;
    arg_rule arg;
    const char *why;
} filter_entry;

/* The worker: everything not listed kills the whole process. */
static const filter_entry worker_allow[] = {
    {SCMP_SYS(read), "read", ARG_FD_IPC, "requests from the monitor"},
    {SCMP_SYS(write), "write", ARG_FD_IPC_ERR, "tokens to the monitor; diagnostics to stderr"},
    {SCMP_SYS(recvfrom), "recvfrom", ARG_FD_IPC_NOWAIT,
     "a look for the monitor's cancel between tokens"},
    {SCMP_SYS(mmap), "mmap", ARG_PROT_NO_EXEC, "memory for activations, never executable"},
    {SCMP_SYS(mprotect), "mprotect", ARG_PROT_NO_EXEC, "allocator guard pages, never executable"},
    {SCMP_SYS(munmap), "munmap", ARG_ANY, "free memory"},
    {SCMP_SYS(madvise), "madvise", ARG_ANY, "allocator and model paging hints"},
    {SCMP_SYS(mremap), "mremap", ARG_ANY, "growing buffers"},
    {SCMP_SYS(brk), "brk", ARG_ANY, "heap"},
    {SCMP_SYS(futex), "futex", ARG_ANY, "thread pool wake-ups"},
    {SCMP_SYS(sched_yield), "sched_yield", ARG_ANY, "thread pool spinning"},
    {SCMP_SYS(clock_gettime), "clock_gettime", ARG_ANY, "timings"},
    {SCMP_SYS(sysinfo), "sysinfo", ARG_ANY, "glibc qsort sizes its buffer by RAM (read-only)"},
    {SCMP_SYS(rt_sigreturn), "rt_sigreturn", ARG_ANY, "return from a signal handler"},
    {SCMP_SYS(rt_sigprocmask), "rt_sigprocmask", ARG_ANY, "thread start/exit in libc"},
    {SCMP_SYS(exit), "exit", ARG_ANY, "a thread ends"},
    {SCMP_SYS(exit_group), "exit_group", ARG_ANY, "the worker ends"},
};

/* The monitor: everything not listed is allowed (it owns files and keys). */
static const filter_entry monitor_deny[] = {
    {SCMP_SYS(connect), "connect", ARG_ANY, "no outgoing connection, ever"},
    {SCMP_SYS(socket), "socket", ARG_NOT_AF_UNIX, "only local (AF_UNIX) sockets"},
    {SCMP_SYS(execve), "execve", ARG_ANY, "no other program runs in the appliance"},
    {SCMP_SYS(execveat), "execveat", ARG_ANY, "no other program runs in the appliance"},
    {SCMP_SYS(io_uring_setup), "io_uring_setup", ARG_ANY, "io_uring can connect without a syscall"},
    {SCMP_SYS(ptrace), "ptrace", ARG_ANY, "no inspecting the worker's memory"},
};

#define N_WORKER  (sizeof worker_allow / sizeof worker_allow[0])
#define N_MONITOR (sizeof monitor_deny / sizeof monitor_deny[0])

static const char *arg_text(arg_rule arg, int deny)
{
    switch (arg) {
    case ARG_FD_IPC:
        return "allow if fd is the IPC socket";
    case ARG_FD_IPC_ERR:
        return "allow if fd is the IPC socket or stderr";
    case ARG_FD_IPC_NOWAIT:
        return "allow if fd is the IPC socket and flags are MSG_DONTWAIT";
    case ARG_PROT_NO_EXEC:
        return "allow if prot lacks PROT_EXEC";
    case ARG_NOT_AF_UNIX:
        return "deny (EPERM) unless domain is AF_UNIX";
    case ARG_ANY:
        break;
    }
    return deny ? "deny (EPERM)" : "allow";
}

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const filter_entry *e, int ipc_fd)
{
    switch (e->arg) {
    case ARG_ANY:
        return seccomp_rule_add(ctx, action, e->nr, 0);
    case ARG_FD_IPC:
        return seccomp_rule_add(ctx, action, e->nr, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)ipc_fd));
    case ARG_FD_IPC_ERR: {
        int rc =
            seccomp_rule_add(ctx, action, e->nr, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)ipc_fd));
        return rc ? rc : seccomp_rule_add(ctx, action, e->nr, 1, SCMP_A0(SCMP_CMP_EQ, 2));
    }
    case ARG_FD_IPC_NOWAIT:
        return seccomp_rule_add(ctx, action, e->nr, 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)ipc_fd),
                                SCMP_A3(SCMP_CMP_EQ, MSG_DONTWAIT));
    case ARG_PROT_NO_EXEC:
        return seccomp_rule_add(ctx, action, e->nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    case ARG_NOT_AF_UNIX:
        return seccomp_rule_add(ctx, action, e->nr, 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX));
    }
    return -EINVAL;
}

/* Builds and loads one filter; every thread gets it (TSYNC). */
static int load_filter(uint32_t default_action, uint32_t rule_action, const filter_entry *table,
                       size_t n, int ipc_fd, char *err, size_t errlen)
{
    scmp_filter_ctx ctx = seccomp_init(default_action);
    int rc;
    if (!ctx) {
        snprintf(err, errlen, "seccomp: cannot create a filter");
        return -1;
    }
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = add_rule(ctx, rule_action, &table[i], ipc_fd);
        if (rc != 0)
            snprintf(err, errlen, "seccomp: cannot add the rule for %s: %s", table[i].name,
                     strerror(-rc));
    }
    if (rc == 0 && (rc = seccomp_load(ctx)) != 0)
        snprintf(err, errlen, "seccomp: the kernel refused the filter: %s", strerror(-rc));
    seccomp_release(ctx);
    return rc == 0 ? 0 : -1;
}

/* 1 when process pid is in another network namespace than this one. */
static int in_other_netns(pid_t pid)
{
    char path[64], mine[64] = "", theirs[64] = "";
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    if (readlink("/proc/self/ns/net", mine, sizeof mine - 1) < 0 ||
        readlink(path, theirs, sizeof theirs - 1) < 0)
        return 0;
    return strcmp(mine, theirs) != 0;
}

int sandbox_read_status(pid_t pid, sandbox_facts *facts)
{
    if (pid != 0)
        facts->net_namespace = in_other_netns(pid);
    char path[64], line[256];
    if (pid == 0)
        snprintf(path, sizeof path, "/proc/self/status");
    else
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "Seccomp: %d", &facts->seccomp_mode);
        sscanf(line, "NoNewPrivs: %d", &facts->no_new_privs);
    }
    fclose(f);
    return 0;
}

static void add_note(sandbox_facts *facts, const char *note)
{
    size_t used = strlen(facts->notes);
    snprintf(facts->notes + used, sizeof facts->notes - used, "%s%s", used ? "; " : "", note);
}

/* Closes every descriptor except the kept ones. */
static int close_other_fds(const int *keep, size_t n_keep)
{
    DIR *d = opendir("/proc/self/fd");
    int fds[1024], n = 0;
    struct dirent *e;
    if (!d)
        return -1;
    /* Collect first: closing while reading the directory would close its fd. */
    while ((e = readdir(d)) != NULL && n < 1024) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end == 0 && e->d_name[0] != 0 && fd != dirfd(d))
            fds[n++] = (int)fd;
    }
    int complete = e == NULL;
    closedir(d);
    for (int i = 0; i < n; i++) {
        int kept = 0;
        for (size_t k = 0; k < n_keep; k++)
            kept |= keep[k] == fds[i];
        if (!kept)
            close(fds[i]);
    }
    return complete ? 0 : -1;
}

/* An empty network namespace; unprivileged processes need a user namespace
 * to be allowed to make one. */
static void enter_empty_netns(sandbox_facts *facts)
{
    if (unshare(CLONE_NEWNET) == 0) {
        facts->net_namespace = 1;
        return;
    }
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) {
        facts->net_namespace = facts->user_namespace = 1;
        return;
    }
    add_note(facts, "network namespace unavailable (unprivileged user namespaces are off)");
}

/* Landlock with every file-system right handled and none granted: no path
 * can be opened, executed, created or removed. */
static void apply_landlock(sandbox_facts *facts)
{
    static const uint64_t rights_by_abi[] = {
        0,
        (1ULL << 13) - 1, /* ABI 1: execute .. make_sym */
        (1ULL << 14) - 1, /* ABI 2: + refer */
        (1ULL << 15) - 1, /* ABI 3: + truncate */
        (1ULL << 15) - 1, /* ABI 4: network rights only */
        (1ULL << 16) - 1, /* ABI 5+: + ioctl_dev */
    };
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi <= 0) {
        add_note(facts, "Landlock unavailable in this kernel");
        return;
    }
    facts->landlock_abi = (int)abi;
    struct landlock_ruleset_attr attr = {
        .handled_access_fs = rights_by_abi[abi < 5 ? abi : 5],
    };
    int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (fd < 0) {
        add_note(facts, "Landlock ruleset refused");
        return;
    }
    /* Landlock requires no_new_privs (or CAP_SYS_ADMIN): set it now; it is
     * inherited by the pool threads created later. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
        syscall(SYS_landlock_restrict_self, fd, 0) == 0)
        facts->landlock_enforced = 1;
    else
        add_note(facts, "Landlock restriction refused");
    close(fd);
}

int sandbox_worker_isolate(const int *keep, size_t n_keep, sandbox_facts *facts, char *err,
                           size_t errlen)
{
    struct rlimit zero = {0, 0};
    memset(facts, 0, sizeof *facts);
    if (setrlimit(RLIMIT_CORE, &zero) != 0) {
        snprintf(err, errlen, "sandbox: cannot disable core dumps: %s", strerror(errno));
        return -1;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        snprintf(err, errlen, "sandbox: cannot make the worker non-dumpable: %s", strerror(errno));
        return -1;
    }
    if (close_other_fds(keep, n_keep) != 0) {
        snprintf(err, errlen, "sandbox: cannot close inherited descriptors");
        return -1;
    }
    enter_empty_netns(facts);
    apply_landlock(facts);
    return 0;
}

int sandbox_worker_lockdown(int ipc_fd, sandbox_facts *facts, char *err, size_t errlen)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "sandbox: cannot set no_new_privs: %s", strerror(errno));
        return -1;
    }
    facts->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
    if (load_filter(SCMP_ACT_KILL_PROCESS, SCMP_ACT_ALLOW, worker_allow, N_WORKER, ipc_fd, err,
                    errlen) != 0)
        return -1;
    /* From here /proc cannot be read (no open): the filter is what was just
     * loaded. The monitor confirms both from /proc/PID/status. */
    facts->seccomp_mode = 2;
    return 0;
}

int sandbox_monitor_lockdown(char *err, size_t errlen)
{
    return load_filter(SCMP_ACT_ALLOW, SCMP_ACT_ERRNO(EPERM), monitor_deny, N_MONITOR, -1, err,
                       errlen);
}

/* The printable tables, read from the filters themselves. */
size_t sandbox_filter_size(sandbox_filter f)
{
    return f == SANDBOX_WORKER ? N_WORKER : N_MONITOR;
}

sandbox_rule sandbox_filter_rule(sandbox_filter f, size_t i)
{
    int deny = f == SANDBOX_MONITOR;
    const filter_entry *e = deny ? &monitor_deny[i] : &worker_allow[i];
    return (sandbox_rule){e->name, arg_text(e->arg, deny), e->why};
}

const char *sandbox_filter_default(sandbox_filter f)
{
    return f == SANDBOX_WORKER ? "kill the worker process (SIGSYS)" : "allow";
}
