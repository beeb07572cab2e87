/* appliance bench --audit: what the audit log costs.
 *
 * 1. The raw durable-write rate of the file system that holds the log: 4 KiB
 *    rewritten in place and fdatasync'd (and fsync'd), as often as it goes.
 *    One durable append can be no faster than one of these.
 * 2. Durable appends per second with the log's real settings (WAL,
 *    synchronous=FULL), each committed before the call returns: one writer,
 *    one entry per transaction; several processes doing the same at once;
 *    several threads of one process through the group commit (audit_writer);
 *    and batches (audit_append_batch). The concurrent logs are re-verified.
 * 3. The audit share of full generate requests: greedy generations on a
 *    synthetic model through the real monitor and sandboxed worker, in a
 *    scratch home made by `appliance init`, with each audit step timed by the
 *    monitor (gen_audit_times) against the request's wall time; the signed
 *    checkpoint is timed apart and amortised over its policy interval.
 *
 * Everything is written in a scratch folder on the measured file system
 * (inside the home, or --db's folder), removed afterwards. */
#include "admin.h"
#include "bench.h"
#include "commands.h"
#include "generate_monitor.h"
#include "home.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long each throughput figure is measured, per repetition. */
#define MEASURE_SECONDS 1.0
/* Concurrent writers (processes or threads) and entries per batch. */
#define WRITERS 16
#define BATCH   8
/* A generate request appends a prompt, an output and an attestation entry. */
#define ENTRIES_PER_REQUEST 3
/* Issue 4's targets. */
#define TARGET_APPENDS_PER_S  1000.0
#define TARGET_AUDIT_FRACTION 0.02

/* The scratch folder and what lives in it. */
typedef struct scratch {
    char dir[HOME_PATH_CAP];
    char fs[32]; /* file system type, as far as we know its magic number */
    char home[HOME_PATH_CAP + 16];
} scratch;

typedef struct append_results {
    bench_stats single, processes, threads, batch;
    size_t record_bytes;
    uint64_t checkpoint_log_entries;
    char checkpoint_log[HOME_PATH_CAP + 32];
} append_results;

typedef struct request_results {
    uint32_t reps, tokens;
    bench_stats wall, generation, open, limits, prompt, output, attestation, checkpoint_check,
        close, total, fraction, fraction_of_generation;
    bench_stats checkpoint_sign;
    uint64_t checkpoint_interval;
    double checkpoint_amortised;
} request_results;

/* ---- the scratch folder ---- */

/* Names of the file systems one meets on Linux (statfs f_type). */
static const struct {
    unsigned long magic;
    const char *name;
} fs_names[] = {
    {0xEF53, "ext4"},      {0x58465342, "xfs"},     {0x9123683E, "btrfs"},
    {0x01021994, "tmpfs"}, {0x794C7630, "overlay"}, {0x6969, "nfs"},
    {0x2FC12FC1, "zfs"},   {0xF2F52010, "f2fs"},    {0x65735546, "fuse"},
};

static void fs_name(const char *dir, char *out, size_t cap)
{
    struct statfs sf;
    snprintf(out, cap, "unknown");
    if (statfs(dir, &sf) != 0)
        return;
    snprintf(out, cap, "0x%lx", (unsigned long)sf.f_type);
    for (size_t i = 0; i < sizeof fs_names / sizeof fs_names[0]; i++)
        if ((unsigned long)sf.f_type == fs_names[i].magic)
            snprintf(out, cap, "%s", fs_names[i].name);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Cuts dir at its last slash ("a/b" -> "a", "/a" -> "/", "a" -> "."). */
static void parent_of(char *dir)
{
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
}

/* The measured folder: --db's folder, else the home, else the home's nearest
 * existing ancestor (same file system as the home will be, in practice). */
static int measured_folder(const app_ctx *ctx, const bench_opts *o, char *dir, size_t cap,
                           char *err, size_t errlen)
{
    if (o->db) {
        snprintf(dir, cap, "%s", o->db);
        parent_of(dir);
        if (!is_dir(dir)) {
            snprintf(err, errlen, "the folder of --db %s does not exist", o->db);
            return -1;
        }
        return 0;
    }
    if (cli_resolve_home(ctx, NULL, dir, cap) != 0) {
        snprintf(err, errlen,
                 "cannot determine the appliance home (set --home or "
                 "$APPLIANCE_HOME, or give --db)");
        return -1;
    }
    while (!is_dir(dir) && strcmp(dir, "/") != 0 && strcmp(dir, ".") != 0)
        parent_of(dir);
    return 0;
}

static int open_scratch(const app_ctx *ctx, const bench_opts *o, scratch *s, char *err,
                        size_t errlen)
{
    char base[HOME_PATH_CAP];
    if (measured_folder(ctx, o, base, sizeof base, err, errlen) != 0)
        return -1;
    if (snprintf(s->dir, sizeof s->dir, "%s/.appliance-bench-XXXXXX", base) >= (int)sizeof s->dir) {
        snprintf(err, errlen, "the folder name %s is too long", base);
        return -1;
    }
    if (!mkdtemp(s->dir)) {
        snprintf(err, errlen, "cannot create a scratch folder in %s: %s", base, strerror(errno));
        return -1;
    }
    fs_name(s->dir, s->fs, sizeof s->fs);
    snprintf(s->home, sizeof s->home, "%s/home", s->dir);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 ? -1 : 0;
}

/* Removes the scratch folder and everything in it (best effort, said once). */
static void close_scratch(const scratch *s)
{
    if (s->dir[0] && nftw(s->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "appliance bench: warning: could not remove %s\n", s->dir);
}

/* ---- the raw fsync rate ---- */

/* The three probes: a block rewritten in place and fdatasync'd (what a
 * commit to a WAL that is being reused costs), the same with fsync, and a
 * block appended and fdatasync'd (a growing WAL: the size changes too). */
typedef enum { SYNC_DATA_IN_PLACE, SYNC_FULL_IN_PLACE, SYNC_DATA_APPEND, SYNC_PROBES } sync_probe;

/* Runs one probe on a fresh file in dir for `seconds`: completed durable
 * 4 KiB writes per second, or -1 with err. */
static double sync_rate(const char *dir, sync_probe probe, double seconds, char *err, size_t errlen)
{
    char path[HOME_PATH_CAP + 32], block[4096];
    snprintf(path, sizeof path, "%s/sync-probe", dir);
    memset(block, 0xA5, sizeof block);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    /* The first write allocates the block: not what is measured. */
    int ok = pwrite(fd, block, sizeof block, 0) == (ssize_t)sizeof block && fsync(fd) == 0;
    uint64_t n = 0;
    double t0 = bench_now_s(), t = t0;
    while (ok && t - t0 < seconds) {
        off_t at = probe == SYNC_DATA_APPEND ? (off_t)(n + 1) * (off_t)sizeof block : 0;
        block[0] = (char)n;
        ok = pwrite(fd, block, sizeof block, at) == (ssize_t)sizeof block &&
             (probe == SYNC_FULL_IN_PLACE ? fsync(fd) : fdatasync(fd)) == 0;
        n++;
        t = bench_now_s();
    }
    if (!ok)
        snprintf(err, errlen, "writing %s failed: %s", path, strerror(errno));
    close(fd);
    unlink(path);
    return ok ? (double)n / (t - t0) : -1;
}

/* ---- durable appends ---- */

/* A body the size of a real prompt or output entry: metadata and ~600
 * bytes of sealed content. *out is malloc'd JSON. */
static char *entry_body(void)
{
    char text[601];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = 0;
    json_t *b =
        json_pack("{s:{s:s, s:s}, s:s, s:i, s:s, s:{s:I, s:I}}", "content", "mode", "sealed",
                  "sealed", text, "finish_reason", "length", "token_count", 128, "model_sha256",
                  "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592", "timings_us",
                  "prompt", (json_int_t)2541307, "decode", (json_int_t)22445668);
    char *s = b ? json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(b);
    return s;
}

static audit_append_req entry_req(const char *body)
{
    return (audit_append_req){AUDIT_KIND_OUTPUT, "bench", "local:bench", body, strlen(body)};
}

static int open_log(const char *path, audit_log **log, char *err, size_t errlen)
{
    audit_open_opts oo = {.create = 1};
    return audit_open(log, path, &oo, err, errlen) == AUDIT_OK ? 0 : -1;
}

/* One writer, one entry per durable transaction, for `seconds`. */
static double single_rate(const char *path, const char *body, double seconds, char *err,
                          size_t errlen)
{
    audit_log *log = NULL;
    audit_append_req r = entry_req(body);
    if (open_log(path, &log, err, errlen) != 0)
        return -1;
    uint64_t n = 0;
    int ok = 1;
    double t0 = bench_now_s(), t = t0;
    while (ok && t - t0 < seconds) {
        ok = audit_append(log, r.kind, r.request_id, r.actor, r.body_json, r.body_len, NULL, NULL,
                          err, errlen) == AUDIT_OK;
        n++;
        t = bench_now_s();
    }
    audit_close(log);
    return ok ? (double)n / (t - t0) : -1;
}

/* Entries of batch-sized durable transactions, for `seconds`. */
static double batch_rate(const char *path, const char *body, double seconds, char *err,
                         size_t errlen)
{
    audit_log *log = NULL;
    audit_append_req reqs[BATCH];
    for (int i = 0; i < BATCH; i++)
        reqs[i] = entry_req(body);
    if (open_log(path, &log, err, errlen) != 0)
        return -1;
    uint64_t n = 0, first;
    int ok = 1;
    double t0 = bench_now_s(), t = t0;
    while (ok && t - t0 < seconds) {
        ok = audit_append_batch(log, reqs, BATCH, &first, err, errlen) == AUDIT_OK;
        n += BATCH;
        t = bench_now_s();
    }
    audit_close(log);
    return ok ? (double)n / (t - t0) : -1;
}

/* What one appending process tells the parent. */
typedef struct child_report {
    int64_t count; /* -1 on failure */
    double end;
    char err[256];
} child_report;

/* A child process: opens the log, says ready, waits for the start (EOF on
 * go_fd), appends one entry per transaction for `seconds`, reports. */
__attribute__((noreturn)) static void append_child(const char *path, const char *body,
                                                   double seconds, int ready_fd, int go_fd,
                                                   int report_fd)
{
    child_report rep = {0};
    audit_log *log = NULL;
    audit_open_opts oo = {0};
    audit_append_req r = entry_req(body);
    char c = 1;
    int ok = audit_open(&log, path, &oo, rep.err, sizeof rep.err) == AUDIT_OK;
    if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 0)
        _exit(1);
    double t0 = bench_now_s();
    while (ok && bench_now_s() - t0 < seconds) {
        ok = audit_append(log, r.kind, r.request_id, r.actor, r.body_json, r.body_len, NULL, NULL,
                          rep.err, sizeof rep.err) == AUDIT_OK;
        rep.count++;
    }
    rep.end = bench_now_s();
    if (!ok)
        rep.count = -1;
    audit_close(log);
    _exit(write(report_fd, &rep, sizeof rep) == (ssize_t)sizeof rep ? 0 : 1);
}

/* Collects the children's reports and reaps them; the total, or -1. */
static double collect_children(const pid_t *pids, int n, int report_fd, double t0, char *err,
                               size_t errlen)
{
    double end = t0, total = 0;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        child_report rep;
        if (read(report_fd, &rep, sizeof rep) != (ssize_t)sizeof rep) {
            if (ok)
                snprintf(err, errlen, "an appending process died without a report");
            ok = 0;
        } else if (rep.count < 0) {
            if (ok)
                snprintf(err, errlen, "an appending process failed: %.200s", rep.err);
            ok = 0;
        } else {
            total += (double)rep.count;
            end = rep.end > end ? rep.end : end;
        }
    }
    for (int i = 0; i < n; i++)
        while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
    return ok && end > t0 ? total / (end - t0) : -1;
}

/* WRITERS processes, each appending one entry per transaction to one log. */
static double process_rate(const char *path, const char *body, double seconds, char *err,
                           size_t errlen)
{
    audit_log *log = NULL;
    int ready[2], go[2], report[2];
    pid_t pids[WRITERS];
    int n = 0;
    if (open_log(path, &log, err, errlen) != 0) /* creates it once, before the race */
        return -1;
    audit_close(log);
    if (pipe(ready) != 0 || pipe(go) != 0 || pipe(report) != 0) {
        snprintf(err, errlen, "cannot create pipes: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    for (; n < WRITERS; n++) {
        if ((pids[n] = fork()) < 0)
            break;
        if (pids[n] == 0) {
            close(go[1]);
            append_child(path, body, seconds, ready[1], go[0], report[1]);
        }
    }
    close(ready[1]);
    close(go[0]);
    close(report[1]);
    char c;
    for (int i = 0; i < n; i++)
        if (read(ready[0], &c, 1) != 1)
            break;
    double t0 = bench_now_s();
    close(go[1]); /* everyone starts now */
    double rate = collect_children(pids, n, report[0], t0, err, errlen);
    close(ready[0]);
    close(report[0]);
    if (n < WRITERS) {
        snprintf(err, errlen, "cannot start %d appending processes: %s", WRITERS, strerror(errno));
        return -1;
    }
    return rate;
}

typedef struct thread_job {
    audit_writer *w;
    const char *body;
    double deadline;
    uint64_t count;
    int rc;
    char err[256];
} thread_job;

static void *append_thread(void *arg)
{
    thread_job *j = arg;
    audit_append_req r = entry_req(j->body);
    while (j->rc == AUDIT_OK && bench_now_s() < j->deadline) {
        j->rc = audit_writer_append(j->w, &r, NULL, NULL, j->err, sizeof j->err);
        j->count++;
    }
    return NULL;
}

/* WRITERS threads of this process appending through one group-commit
 * writer: one transaction and one fsync per group. */
static double thread_rate(const char *path, const char *body, double seconds, char *err,
                          size_t errlen)
{
    audit_writer *w = NULL;
    audit_open_opts oo = {.create = 1};
    thread_job jobs[WRITERS];
    pthread_t th[WRITERS];
    int started = 0;
    if (audit_writer_open(&w, path, &oo, err, errlen) != AUDIT_OK)
        return -1;
    double t0 = bench_now_s();
    for (; started < WRITERS; started++) {
        jobs[started] = (thread_job){.w = w, .body = body, .deadline = t0 + seconds};
        if (pthread_create(&th[started], NULL, append_thread, &jobs[started]) != 0)
            break;
    }
    double total = 0;
    int ok = started == WRITERS;
    if (!ok)
        snprintf(err, errlen, "cannot start %d appending threads", WRITERS);
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].rc != AUDIT_OK && ok) {
            snprintf(err, errlen, "%s", jobs[i].err);
            ok = 0;
        }
        total += (double)jobs[i].count;
    }
    double t = bench_now_s();
    audit_writer_close(w);
    return ok ? total / (t - t0) : -1;
}

/* Re-verifies a log that concurrent writers built: one gap-free valid chain. */
static int verify_log(const char *path, uint64_t *entries, char *err, size_t errlen)
{
    audit_log *log = NULL;
    audit_open_opts oo = {.read_only = 1};
    audit_verify_result res;
    memset(&res, 0, sizeof res);
    if (audit_open(&log, path, &oo, err, errlen) != AUDIT_OK)
        return -1;
    int rc = audit_verify(log, NULL, &res, err, errlen) == AUDIT_OK ? 0 : -1;
    if (rc == 0 && !res.ok) {
        snprintf(err, errlen, "the log %s built by concurrent writers does not verify: %s", path,
                 res.reason);
        rc = -1;
    }
    *entries = res.entries;
    audit_verify_result_free(&res);
    audit_close(log);
    return rc;
}

static int record_size(const audit_entry *e, void *ctx)
{
    *(size_t *)ctx = e->record_len;
    return 1; /* the first one is enough */
}

/* Bytes of one entry's canonical record, as the log stores it. */
static size_t first_record_bytes(const char *path)
{
    audit_log *log = NULL;
    audit_open_opts oo = {.read_only = 1};
    audit_filter f = {.seq_min = 1, .seq_max = 1};
    size_t n = 0;
    char err[256];
    if (audit_open(&log, path, &oo, err, sizeof err) == AUDIT_OK)
        audit_query(log, &f, record_size, &n, err, sizeof err);
    audit_close(log);
    return n;
}

/* One repetition of the four append measurements, each on a fresh log. */
static int append_rep(const scratch *s, uint32_t rep, const char *body, double v[4], char *err,
                      size_t errlen)
{
    char path[4][HOME_PATH_CAP + 32];
    static const char *const names[4] = {"single", "processes", "threads", "batch"};
    for (int i = 0; i < 4; i++)
        snprintf(path[i], sizeof path[i], "%s/%s-%u.db", s->dir, names[i], rep);
    v[0] = single_rate(path[0], body, MEASURE_SECONDS, err, errlen);
    v[1] = v[0] < 0 ? -1 : process_rate(path[1], body, MEASURE_SECONDS, err, errlen);
    v[2] = v[1] < 0 ? -1 : thread_rate(path[2], body, MEASURE_SECONDS, err, errlen);
    v[3] = v[2] < 0 ? -1 : batch_rate(path[3], body, MEASURE_SECONDS, err, errlen);
    return v[3] < 0 ? -1 : 0;
}

static int measure_appends(const scratch *s, uint32_t reps, append_results *r, char *err,
                           size_t errlen)
{
    char *body = entry_body();
    double *v = calloc((size_t)reps * 4, sizeof *v);
    int rc = -1;
    if (!body || !v) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < reps; i++)
        if (append_rep(s, i, body, &v[4 * i], err, errlen) != 0)
            goto done;
    double col[4][BENCH_MAX_REPS];
    for (uint32_t i = 0; i < reps; i++)
        for (int k = 0; k < 4; k++)
            col[k][i] = v[4 * i + k];
    r->single = bench_summarize(col[0], reps);
    r->processes = bench_summarize(col[1], reps);
    r->threads = bench_summarize(col[2], reps);
    r->batch = bench_summarize(col[3], reps);
    /* The concurrent logs of the last repetition must be valid chains. */
    uint64_t n_proc, n_thr;
    char path[HOME_PATH_CAP + 32];
    snprintf(path, sizeof path, "%s/processes-%u.db", s->dir, reps - 1);
    if (verify_log(path, &n_proc, err, errlen) != 0)
        goto done;
    snprintf(r->checkpoint_log, sizeof r->checkpoint_log, "%s/threads-%u.db", s->dir, reps - 1);
    if (verify_log(r->checkpoint_log, &n_thr, err, errlen) != 0)
        goto done;
    r->checkpoint_log_entries = n_thr;
    snprintf(path, sizeof path, "%s/single-0.db", s->dir);
    r->record_bytes = first_record_bytes(path);
    rc = 0;
done:
    free(body);
    free(v);
    return rc;
}

/* ---- the audit share of generate requests ---- */

/* Runs `appliance init HOME` in a child whose stdout is discarded and whose
 * stderr goes to init.log in the scratch folder; 0, or -1 with the child's
 * last error line. */
static int init_home(const scratch *s, char *err, size_t errlen)
{
    char log[HOME_PATH_CAP + 32];
    snprintf(log, sizeof log, "%s/init.log", s->dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        int out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        char *argv[] = {"init", (char *)s->home, NULL};
        app_ctx none = {0};
        if (null < 0 || out < 0 || dup2(null, STDOUT_FILENO) < 0 || dup2(out, STDERR_FILENO) < 0)
            _exit(EXIT_FAIL);
        optind = 0; /* a fresh getopt for the command */
        _exit(cmd_init(&none, 2, argv));
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == EXIT_OK)
        return 0;
    size_t len = 0;
    char why[256];
    char *text = cli_read_file(log, 64 * 1024, &len, why, sizeof why);
    while (text && len > 0 && text[len - 1] == '\n')
        text[--len] = 0;
    const char *last = text ? strrchr(text, '\n') : NULL;
    snprintf(err, errlen, "cannot initialise the scratch home %s: %s", s->home,
             text && len ? (last ? last + 1 : text) : "init did not run");
    free(text);
    return -1;
}

/* The scratch home's policy admits the benchmark: no per-minute limit in
 * the way of many repetitions, room for -n tokens. The change is audited
 * like any other. Returns the checkpoint interval, or -1. */
static int64_t admit_benchmark(const scratch *s, uint32_t n_gen)
{
    app_ctx c = {.home_flag = s->home};
    admin a;
    if (admin_open(&c, NULL, "bench", &a) != 0)
        return -1;
    a.pol.requests_per_minute = 1000000;
    if (a.pol.max_new_tokens < (int64_t)n_gen)
        a.pol.max_new_tokens = n_gen;
    int64_t interval = a.pol.checkpoint_interval;
    int rc = admin_save_policy(&a, "bench --audit: scratch home admits the benchmark's requests");
    admin_close(&a);
    return rc == 0 ? interval : -1;
}

/* What one request's process tells the parent. */
typedef struct request_report {
    int rc;
    double wall_ms, generation_ms;
    uint32_t tokens;
    gen_audit_times t;
} request_report;

/* A child process: one generate request, exactly as `appliance generate
 * --greedy -n N` on the scratch home runs it (the monitor locks itself down,
 * so it runs in a process of its own). */
__attribute__((noreturn)) static void request_child(const scratch *s, const bench_opts *o,
                                                    int report_fd)
{
    app_ctx c = {.home_flag = s->home};
    gen_request req = {.synthetic = o->synthetic,
                       .prompt = BENCH_PROMPT,
                       .kernels = o->kernels,
                       .max_tokens = o->n_gen,
                       .threads = o->threads,
                       .reply_timeout_ms = 600000};
    gen_outcome g;
    request_report rep = {0};
    engine_sampler_defaults(&req.sampling);
    req.sampling.temperature = 0;
    double t0 = bench_now_s();
    rep.rc = generate_as_monitor(&c, &req, NULL, NULL, &g);
    rep.wall_ms = (bench_now_s() - t0) * 1e3;
    rep.generation_ms = g.result.prompt_ms + g.result.decode_ms;
    rep.tokens = (uint32_t)g.result.n_tokens;
    rep.t = g.audit_times;
    gen_outcome_free(&g);
    _exit(write(report_fd, &rep, sizeof rep) == (ssize_t)sizeof rep ? rep.rc : EXIT_FAIL);
}

static int run_request(const scratch *s, const bench_opts *o, request_report *rep, char *err,
                       size_t errlen)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, errlen, "cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        request_child(s, o, fds[1]);
    }
    close(fds[1]);
    ssize_t got = pid > 0 ? read(fds[0], rep, sizeof *rep) : -1;
    close(fds[0]);
    while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof *rep || rep->rc != EXIT_OK) {
        snprintf(err, errlen, "the generate request on the scratch home failed%s",
                 got == (ssize_t)sizeof *rep ? " (its error is above)" : "");
        return -1;
    }
    return 0;
}

/* A request's audit time: the monitor's steps, plus `extra` (the amortised
 * checkpoint and closing the log, which the benchmark times itself). */
static double audit_ms_of(const request_report *r, double extra)
{
    const gen_audit_times *t = &r->t;
    return t->open_ms + t->limits_ms + t->prompt_ms + t->output_ms + t->attestation_ms +
           t->checkpoint_ms + extra;
}

/* What closing the log costs at the end of a request: the scratch home's
 * log opened, a request's entries appended, then closed, which folds the
 * WAL into the database (two syncs) and removes it; `reps` times. */
static int time_closes(const scratch *s, uint32_t reps, bench_stats *out, char *err, size_t errlen)
{
    home h;
    double v[BENCH_MAX_REPS];
    char *body = entry_body();
    audit_append_req r = entry_req(body ? body : "{}");
    int rc = body && home_layout(s->home, &h, err, errlen) == 0 ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && i < reps; i++) {
        audit_log *log = NULL;
        audit_open_opts oo = {0};
        rc = audit_open(&log, h.audit_db, &oo, err, errlen) == AUDIT_OK ? 0 : -1;
        for (int k = 0; rc == 0 && k < ENTRIES_PER_REQUEST; k++)
            rc = audit_append(log, r.kind, r.request_id, r.actor, r.body_json, r.body_len, NULL,
                              NULL, err, errlen) == AUDIT_OK
                     ? 0
                     : -1;
        double t0 = bench_now_s();
        audit_close(log);
        v[i] = (bench_now_s() - t0) * 1e3;
    }
    if (!body)
        snprintf(err, errlen, "out of memory");
    free(body);
    *out = bench_summarize(v, rc == 0 ? reps : 0);
    return rc;
}

/* Signs `reps` checkpoints of the last group-commit scratch log (thousands
 * of entries) with the scratch home's device key: what a periodic
 * checkpoint costs at that log size (it grows with the log: the Merkle root
 * is recomputed over every entry hash). */
static int time_checkpoints(const scratch *s, const append_results *a, uint32_t reps,
                            bench_stats *out, char *err, size_t errlen)
{
    home h;
    audit_log *log = NULL;
    double v[BENCH_MAX_REPS];
    if (home_layout(s->home, &h, err, errlen) != 0 ||
        open_log(a->checkpoint_log, &log, err, errlen))
        return -1;
    uint32_t i = 0;
    for (; i < reps; i++) {
        double t0 = bench_now_s();
        char *note = device_checkpoint(log, h.device_key, "local:bench", err, errlen);
        v[i] = (bench_now_s() - t0) * 1e3;
        if (!note)
            break;
        free(note);
    }
    audit_close(log);
    *out = bench_summarize(v, reps);
    return i == reps ? 0 : -1;
}

/* The per-request figures, one column each, summarised into r. */
enum { COLUMNS = 11 };
static void summarize_requests(const request_report *rep, uint32_t n, request_results *r)
{
    double(*c)[BENCH_MAX_REPS] = calloc(COLUMNS, sizeof *c);
    bench_stats *dst[COLUMNS] = {&r->wall,
                                 &r->generation,
                                 &r->open,
                                 &r->limits,
                                 &r->prompt,
                                 &r->output,
                                 &r->attestation,
                                 &r->checkpoint_check,
                                 &r->total,
                                 &r->fraction,
                                 &r->fraction_of_generation};
    for (uint32_t i = 0; c && i < n; i++) {
        const gen_audit_times *t = &rep[i].t;
        double audit = audit_ms_of(&rep[i], r->checkpoint_amortised + r->close.median);
        double v[COLUMNS] = {rep[i].wall_ms,
                             rep[i].generation_ms,
                             t->open_ms,
                             t->limits_ms,
                             t->prompt_ms,
                             t->output_ms,
                             t->attestation_ms,
                             t->checkpoint_ms,
                             audit,
                             audit / rep[i].wall_ms,
                             audit / rep[i].generation_ms};
        for (int k = 0; k < COLUMNS; k++)
            c[k][i] = v[k];
    }
    for (int k = 0; c && k < COLUMNS; k++)
        *dst[k] = bench_summarize(c[k], n);
    free(c);
    r->tokens = rep[0].tokens;
    r->reps = n;
}

static int measure_requests(const scratch *s, const bench_opts *o, const append_results *a,
                            request_results *r, char *err, size_t errlen)
{
    /* On the stack, not the heap: each request's child runs a leak check
     * (sanitizer builds) that would count this parent's heap as its own. */
    request_report rep[BENCH_MAX_REPS];
    int64_t interval;
    if (init_home(s, err, errlen) != 0)
        return -1;
    if ((interval = admit_benchmark(s, o->n_gen)) < 0) {
        snprintf(err, errlen, "cannot adjust the scratch home's policy (its error is above)");
        return -1;
    }
    for (uint32_t i = 0; i < o->reps; i++)
        if (run_request(s, o, &rep[i], err, errlen) != 0)
            return -1;
    if (time_checkpoints(s, a, o->reps, &r->checkpoint_sign, err, errlen) != 0 ||
        time_closes(s, o->reps, &r->close, err, errlen) != 0)
        return -1;
    r->checkpoint_interval = (uint64_t)interval;
    r->checkpoint_amortised = r->checkpoint_sign.median * ENTRIES_PER_REQUEST / (double)interval;
    summarize_requests(rep, o->reps, r);
    return 0;
}

/* ---- the report ---- */

typedef struct audit_report {
    const scratch *s;
    const bench_opts *o;
    bench_stats sync[SYNC_PROBES];
    append_results a;
    request_results q;
} audit_report;

/* One honest sentence on which append figure meets the target, and why the
 * others cannot on this disk. */
static void targets_note(const audit_report *r, char *out, size_t cap)
{
    const append_results *a = &r->a;
    if (a->single.median >= TARGET_APPENDS_PER_S) {
        snprintf(out, cap,
                 "one writer alone reaches %.0f durable appends/s: the target holds for every "
                 "writer",
                 a->single.median);
        return;
    }
    snprintf(out, cap,
             "every durable append waits for one fdatasync of the WAL, and this file system "
             "completes %.0f per second in place (%.0f appending, as a growing WAL does), so one "
             "writer committing one entry per transaction "
             "(%.0f/s) cannot reach %.0f/s here, nor can %d processes that take turns on the "
             "log's lock (%.0f/s); %d threads sharing each fdatasync through the group commit "
             "(%.0f/s) and batches of %d (%.0f/s) %s the target",
             r->sync[SYNC_DATA_IN_PLACE].median, r->sync[SYNC_DATA_APPEND].median, a->single.median,
             TARGET_APPENDS_PER_S, WRITERS, a->processes.median, WRITERS, a->threads.median, BATCH,
             a->batch.median,
             a->threads.median >= TARGET_APPENDS_PER_S && a->batch.median >= TARGET_APPENDS_PER_S
                 ? "meet"
                 : "are what can meet");
}

static json_t *rate_json(int writers, const bench_stats *s)
{
    return json_pack("{s:i, s:o, s:b}", "writers", writers, "per_s", bench_stats_json(s), "met",
                     s->median >= TARGET_APPENDS_PER_S);
}

static json_t *appends_json(const audit_report *r)
{
    const append_results *a = &r->a;
    return json_pack("{s:I, s:s, s:o, s:o, s:o, s:{s:i, s:o, s:b}, s:b}", "record_bytes",
                     (json_int_t)a->record_bytes, "durability", "WAL, synchronous=FULL", "single",
                     rate_json(1, &a->single), "processes", rate_json(WRITERS, &a->processes),
                     "group_commit_threads", rate_json(WRITERS, &a->threads), "batch",
                     "entries_per_transaction", BATCH, "per_s", bench_stats_json(&a->batch), "met",
                     a->batch.median >= TARGET_APPENDS_PER_S, "concurrent_logs_verified", 1);
}

static json_t *request_json(const audit_report *r)
{
    const request_results *q = &r->q;
    return json_pack(
        "{s:s, s:i, s:i, s:i, s:o, s:o, s:{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:f, s:o}, s:o, s:o}",
        "model", r->o->synthetic, "tokens", (int)q->tokens, "threads", r->o->threads, "reps",
        (int)q->reps, "wall_ms", bench_stats_json(&q->wall), "generation_ms",
        bench_stats_json(&q->generation), "audit_ms", "open", bench_stats_json(&q->open), "limits",
        bench_stats_json(&q->limits), "prompt", bench_stats_json(&q->prompt), "output",
        bench_stats_json(&q->output), "attestation", bench_stats_json(&q->attestation),
        "checkpoint_check", bench_stats_json(&q->checkpoint_check), "close",
        bench_stats_json(&q->close), "checkpoint_amortised", q->checkpoint_amortised, "total",
        bench_stats_json(&q->total), "audit_fraction", bench_stats_json(&q->fraction),
        "audit_fraction_of_generation", bench_stats_json(&q->fraction_of_generation));
}

static int print_audit_json(const audit_report *r)
{
    char note[1024];
    targets_note(r, note, sizeof note);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:f, s:i, s:{s:o, s:o, s:o}, s:o, s:{s:I, s:o, s:I, s:i, s:f}, s:o, "
        "s:{s:f, s:f, s:b, s:b, s:s}}",
        "benchmark", "audit", "folder", r->s->dir, "filesystem", r->s->fs, "seconds_per_figure",
        MEASURE_SECONDS, "reps", (int)r->o->reps, "sync_per_s", "fdatasync",
        bench_stats_json(&r->sync[SYNC_DATA_IN_PLACE]), "fsync",
        bench_stats_json(&r->sync[SYNC_FULL_IN_PLACE]), "fdatasync_appending",
        bench_stats_json(&r->sync[SYNC_DATA_APPEND]), "appends", appends_json(r), "checkpoint",
        "log_entries", (json_int_t)r->a.checkpoint_log_entries, "sign_ms",
        bench_stats_json(&r->q.checkpoint_sign), "interval", (json_int_t)r->q.checkpoint_interval,
        "entries_per_request", ENTRIES_PER_REQUEST, "amortised_ms_per_request",
        r->q.checkpoint_amortised, "request", request_json(r), "targets", "appends_per_s",
        TARGET_APPENDS_PER_S, "audit_fraction", TARGET_AUDIT_FRACTION, "appends_met",
        r->a.single.median >= TARGET_APPENDS_PER_S || r->a.threads.median >= TARGET_APPENDS_PER_S,
        "audit_fraction_met", r->q.fraction.median < TARGET_AUDIT_FRACTION, "note", note);
    return bench_print_json(j);
}

static void print_rate(const char *what, const bench_stats *s)
{
    printf("  %-40s %7.0f/s (min %.0f, max %.0f)%s\n", what, s->median, s->min, s->max,
           s->median >= TARGET_APPENDS_PER_S ? "  meets 1000/s" : "  below 1000/s");
}

static void print_audit_text(const audit_report *r)
{
    const append_results *a = &r->a;
    const request_results *q = &r->q;
    char note[1024], what[64];
    printf("audit benchmark in %s (%s), %.0f s per figure, %u reps\n", r->s->dir, r->s->fs,
           MEASURE_SECONDS, r->o->reps);
    const bench_stats *d = &r->sync[SYNC_DATA_IN_PLACE];
    printf("raw durable 4 KiB writes: fdatasync %.0f/s (min %.0f, max %.0f), fsync %.0f/s, "
           "fdatasync appending %.0f/s\n",
           d->median, d->min, d->max, r->sync[SYNC_FULL_IN_PLACE].median,
           r->sync[SYNC_DATA_APPEND].median);
    printf("durable appends (WAL, synchronous=FULL, %zu-byte records):\n", a->record_bytes);
    print_rate("1 writer, 1 entry per transaction", &a->single);
    snprintf(what, sizeof what, "%d processes, 1 entry per transaction", WRITERS);
    print_rate(what, &a->processes);
    snprintf(what, sizeof what, "%d threads, group commit", WRITERS);
    print_rate(what, &a->threads);
    snprintf(what, sizeof what, "batches of %d entries", BATCH);
    print_rate(what, &a->batch);
    printf("  the concurrent logs re-verify as one gap-free chain each\n");
    printf("signed checkpoint over %llu entries: %.1f ms; one per %llu entries = %.3f ms per "
           "request\n",
           (unsigned long long)a->checkpoint_log_entries, q->checkpoint_sign.median,
           (unsigned long long)q->checkpoint_interval, q->checkpoint_amortised);
    printf("generate requests: %s, %u tokens greedy, %d threads, %u reps (scratch home)\n",
           r->o->synthetic, q->tokens, r->o->threads, q->reps);
    printf("  wall %.0f ms (min %.0f, max %.0f); generation %.0f ms\n", q->wall.median, q->wall.min,
           q->wall.max, q->generation.median);
    printf("  audit ms: open %.2f, limits %.2f, prompt %.2f, output %.2f, attestation %.2f, "
           "checkpoint check %.2f + amortised %.3f, close %.2f = %.2f\n",
           q->open.median, q->limits.median, q->prompt.median, q->output.median,
           q->attestation.median, q->checkpoint_check.median, q->checkpoint_amortised,
           q->close.median, q->total.median);
    printf("  audit share %.3f%% of the request (min %.3f%%, max %.3f%%), %.3f%% of the "
           "generation; target < 2%%: %s\n",
           100 * q->fraction.median, 100 * q->fraction.min, 100 * q->fraction.max,
           100 * q->fraction_of_generation.median,
           q->fraction.median < TARGET_AUDIT_FRACTION ? "met" : "NOT met");
    targets_note(r, note, sizeof note);
    printf("note: %s\n", note);
}

/* ---- the command ---- */

static int measure_sync(const scratch *s, uint32_t reps, audit_report *r, char *err, size_t errlen)
{
    double v[SYNC_PROBES][BENCH_MAX_REPS];
    for (uint32_t i = 0; i < reps; i++)
        for (int p = 0; p < SYNC_PROBES; p++)
            if ((v[p][i] = sync_rate(s->dir, (sync_probe)p, MEASURE_SECONDS, err, errlen)) < 0)
                return -1;
    for (int p = 0; p < SYNC_PROBES; p++)
        r->sync[p] = bench_summarize(v[p], reps);
    return 0;
}

int bench_audit(const app_ctx *ctx, const bench_opts *given)
{
    bench_opts o = *given;
    scratch s;
    audit_report r;
    char err[768];
    memset(&s, 0, sizeof s);
    memset(&r, 0, sizeof r);
    if (!o.synthetic)
        o.synthetic = "tinyllama:q4_0";
    r.s = &s;
    r.o = &o;
    int rc = EXIT_FAIL;
    if (open_scratch(ctx, &o, &s, err, sizeof err) != 0 ||
        measure_sync(&s, o.reps, &r, err, sizeof err) != 0 ||
        measure_appends(&s, o.reps, &r.a, err, sizeof err) != 0 ||
        measure_requests(&s, &o, &r.a, &r.q, err, sizeof err) != 0) {
        cli_error("bench", "%s", err);
        goto done;
    }
    if (o.json ? print_audit_json(&r) : (print_audit_text(&r), 0)) {
        cli_error("bench", "cannot write the JSON result");
        goto done;
    }
    rc = EXIT_OK;
done:
    close_scratch(&s);
    return rc;
}
