/* Model enumeration and hashing for OMS: walks a model under an open
 * descriptor (never by path, so nothing can swap a component under us),
 * applies the ignore rules, and hashes files or shards in parallel threads
 * with large reads. */
#include "oms_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK  (4u << 20) /* bytes per read(): large reads keep SHA-NI busy */
#define MAX_DEPTH   64         /* directory depth (also stops symlink cycles) */
#define MAX_THREADS 16

/* A file found in the model. */
typedef struct found_file {
    char *rel;     /* canonical relative path (or the single file's name) */
    uint64_t size; /* size when enumerated */
} found_file;

typedef struct file_list {
    found_file *v;
    size_t n, cap;
} file_list;

/* One unit of hashing work: a whole file or one shard of it. */
typedef struct hash_job {
    size_t file;
    uint64_t start, end; /* end == UINT64_MAX: to EOF */
    oms_entry *entry;
} hash_job;

typedef struct walk_ctx {
    const oms_hash_req *req;
    file_list files;
    char *err;
    size_t errlen;
} walk_ctx;

static bool is_ignored(const oms_hash_req *req, const char *rel)
{
    for (size_t i = 0; i < req->n_ignore; i++) {
        size_t n = strlen(req->ignore[i]);
        if (strncmp(rel, req->ignore[i], n) == 0 && (rel[n] == 0 || rel[n] == '/'))
            return true;
    }
    return false;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool wanted(const oms_hash_req *req, const char *rel)
{
    if (!req->only_paths)
        return true;
    return bsearch(&rel, req->only_paths, req->n_only_paths, sizeof *req->only_paths,
                   cmp_str_ptr) != NULL;
}

static int add_file(walk_ctx *w, const char *rel, uint64_t size)
{
    if (w->files.n == w->files.cap) {
        size_t cap = w->files.cap ? w->files.cap * 2 : 64;
        found_file *v = realloc(w->files.v, cap * sizeof *v);
        if (!v)
            return oms_err(w->err, w->errlen, "out of memory listing the model");
        w->files.v = v;
        w->files.cap = cap;
    }
    if (!(w->files.v[w->files.n].rel = strdup(rel)))
        return oms_err(w->err, w->errlen, "out of memory listing the model");
    w->files.v[w->files.n++].size = size;
    return 0;
}

static int walk_dir(walk_ctx *w, int dfd, const char *prefix, int depth);

/* Handles one directory entry `name` of dfd whose model path is rel. */
static int walk_entry(walk_ctx *w, int dfd, const char *name, const char *rel, int depth)
{
    const oms_hash_req *req = w->req;
    struct stat st;
    if (is_ignored(req, rel))
        return 0;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return oms_err(w->err, w->errlen, "cannot stat model file '%s': %s", rel, strerror(errno));
    if (S_ISLNK(st.st_mode)) {
        if (!req->allow_symlinks)
            return oms_err(w->err, w->errlen,
                           "model contains the symbolic link '%s' and the serialization forbids "
                           "symlinks",
                           rel);
        if (fstatat(dfd, name, &st, 0) != 0)
            return oms_err(w->err, w->errlen, "symbolic link '%s' in the model is broken", rel);
    }
    if (S_ISDIR(st.st_mode)) {
        int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (req->allow_symlinks ? 0 : O_NOFOLLOW);
        int sub = openat(dfd, name, flags);
        int rc;
        if (sub < 0)
            return oms_err(w->err, w->errlen, "cannot open model directory '%s': %s", rel,
                           strerror(errno));
        rc = walk_dir(w, sub, rel, depth + 1);
        return rc;
    }
    if (!S_ISREG(st.st_mode))
        return oms_err(w->err, w->errlen, "'%s' in the model is not a regular file or directory",
                       rel);
    if (!oms_utf8_valid(rel)) {
        if (req->strict_names)
            return oms_err(w->err, w->errlen, "model file name '%s' is not valid UTF-8", rel);
        /* A verifier keeps it: it can match nothing, so it is reported as extra. */
    }
    if (!wanted(req, rel))
        return 0;
    return add_file(w, rel, (uint64_t)st.st_size);
}

/* Walks directory dfd (takes ownership and closes it). */
static int walk_dir(walk_ctx *w, int dfd, const char *prefix, int depth)
{
    DIR *d;
    struct dirent *de;
    int rc = 0;
    if (depth > MAX_DEPTH) {
        close(dfd);
        return oms_err(w->err, w->errlen, "model directory '%s' is nested too deeply (or loops)",
                       prefix ? prefix : ".");
    }
    if (!(d = fdopendir(dfd))) {
        close(dfd);
        return oms_err(w->err, w->errlen, "cannot read model directory '%s'",
                       prefix ? prefix : ".");
    }
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        char *rel;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (asprintf(&rel, "%s%s%s", prefix ? prefix : "", prefix ? "/" : "", de->d_name) < 0) {
            rc = oms_err(w->err, w->errlen, "out of memory listing the model");
            break;
        }
        rc = walk_entry(w, dirfd(d), de->d_name, rel, depth);
        free(rel);
    }
    if (rc == 0 && errno != 0)
        rc = oms_err(w->err, w->errlen, "cannot read model directory '%s'", prefix ? prefix : ".");
    closedir(d);
    return rc;
}

/* Opens rel beneath root_fd component by component; with follow false no
 * component may be a symbolic link. */
static int open_beneath(int root_fd, const char *rel, bool follow)
{
    char *copy = strdup(rel), *save = NULL, *part, *next;
    int fd = root_fd, nf = O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW);
    if (!copy)
        return -1;
    part = strtok_r(copy, "/", &save);
    while (part) {
        next = strtok_r(NULL, "/", &save);
        int sub = openat(fd, part, nf | (next ? O_DIRECTORY : 0));
        if (fd != root_fd)
            close(fd);
        if (sub < 0) {
            fd = -1;
            break;
        }
        fd = sub;
        part = next;
    }
    free(copy);
    return fd == root_fd ? -1 : fd;
}

typedef struct pool {
    const oms_hash_req *req;
    const EVP_MD *md;
    const file_list *files;
    hash_job *jobs;
    size_t n_jobs;
    atomic_size_t next;
    atomic_uint_fast64_t done_bytes;
    atomic_int failed;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned finished;
    char *err; /* first error, under lock */
    size_t errlen;
} pool;

static void pool_fail(pool *p, const char *fmt, const char *a, const char *b)
{
    pthread_mutex_lock(&p->lock);
    if (!atomic_exchange(&p->failed, 1))
        oms_err(p->err, p->errlen, fmt, a, b);
    pthread_mutex_unlock(&p->lock);
}

/* Hashes bytes [start, end) of fd (to EOF when end is UINT64_MAX). */
static int hash_range(pool *p, int fd, uint64_t start, uint64_t end, unsigned char *buf,
                      oms_entry *e)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint64_t off = start;
    unsigned int len = 0;
    int rc = -1;
    if (!ctx || EVP_DigestInit_ex(ctx, p->md, NULL) != 1)
        goto out;
    for (;;) {
        size_t want = READ_CHUNK;
        ssize_t n;
        if (end != UINT64_MAX && end - off < want)
            want = (size_t)(end - off);
        if (want == 0)
            break;
        n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0) {
            if (end != UINT64_MAX)
                goto out; /* the file shrank below the shard */
            break;
        }
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
            goto out;
        off += (uint64_t)n;
        atomic_fetch_add(&p->done_bytes, (uint64_t)n);
    }
    if (EVP_DigestFinal_ex(ctx, e->digest, &len) != 1)
        goto out;
    e->digest_len = len;
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

static void run_job(pool *p, hash_job *j, unsigned char *buf)
{
    const oms_hash_req *req = p->req;
    const char *rel = p->files->v[j->file].rel;
    int fd;
    struct stat st;
    if (req->file_name)
        fd = dup(req->root_fd);
    else
        fd = open_beneath(req->root_fd, rel, req->allow_symlinks);
    if (fd < 0) {
        pool_fail(p, "cannot open model file '%s'%s", rel, "");
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        pool_fail(p, "model file '%s' is no longer a regular file%s", rel, "");
    } else {
        if (j->start == 0 && j->end == UINT64_MAX)
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        if (hash_range(p, fd, j->start, j->end, buf, j->entry) != 0)
            pool_fail(p, "cannot read model file '%s'%s", rel, " (I/O error or file changed)");
    }
    close(fd);
}

static void *worker(void *arg)
{
    pool *p = arg;
    unsigned char *buf = malloc(READ_CHUNK);
    if (!buf) {
        pool_fail(p, "out of memory%s%s", "", "");
    } else {
        for (;;) {
            size_t i = atomic_fetch_add(&p->next, 1);
            if (i >= p->n_jobs || atomic_load(&p->failed))
                break;
            run_job(p, &p->jobs[i], buf);
        }
    }
    free(buf);
    pthread_mutex_lock(&p->lock);
    p->finished++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static unsigned pick_threads(unsigned asked, size_t n_jobs)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned t = asked ? asked : (cpus > 0 ? (unsigned)cpus : 1);
    if (t > MAX_THREADS)
        t = MAX_THREADS;
    if (t > n_jobs)
        t = (unsigned)n_jobs;
    return t ? t : 1;
}

/* Runs the jobs on worker threads; the calling thread reports progress. */
static int run_pool(pool *p, uint64_t total)
{
    unsigned n = pick_threads(p->req->threads, p->n_jobs), started = 0;
    pthread_t tids[MAX_THREADS];
    for (; started < n; started++)
        if (pthread_create(&tids[started], NULL, worker, p) != 0)
            break;
    if (started == 0)
        return oms_err(p->err, p->errlen, "cannot start hashing threads");
    pthread_mutex_lock(&p->lock);
    while (p->finished < started) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        if (p->req->progress && p->finished < started) {
            pthread_mutex_unlock(&p->lock);
            p->req->progress(p->req->progress_arg, atomic_load(&p->done_bytes), total);
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    if (p->req->progress)
        p->req->progress(p->req->progress_arg, atomic_load(&p->done_bytes), total);
    return atomic_load(&p->failed) ? -1 : 0;
}

void oms_entries_free(oms_entry *entries, size_t n)
{
    if (!entries)
        return;
    for (size_t i = 0; i < n; i++)
        free(entries[i].name);
    free(entries);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const oms_entry *)a)->name, ((const oms_entry *)b)->name);
}

/* Splits the files into jobs (one per file, or one per shard; empty files
 * have no shards) and names each entry. */
static int plan_jobs(const oms_hash_req *req, const file_list *fl, hash_job **jobs_out,
                     oms_entry **entries_out, size_t *n_out, char *err, size_t errlen)
{
    size_t n = 0, k = 0;
    hash_job *jobs;
    oms_entry *entries;
    for (size_t i = 0; i < fl->n; i++)
        n +=
            req->shard_size ? (size_t)((fl->v[i].size + req->shard_size - 1) / req->shard_size) : 1;
    jobs = calloc(n ? n : 1, sizeof *jobs);
    entries = calloc(n ? n : 1, sizeof *entries);
    if (!jobs || !entries) {
        free(jobs);
        free(entries);
        return oms_err(err, errlen, "out of memory planning the hashing");
    }
    for (size_t i = 0; i < fl->n; i++) {
        uint64_t size = fl->v[i].size, off = 0;
        do {
            if (req->shard_size && size == 0)
                break;
            hash_job *j = &jobs[k];
            j->file = i;
            j->entry = &entries[k];
            if (req->shard_size) {
                j->start = off;
                j->end = size - off > req->shard_size ? off + req->shard_size : size;
                if (asprintf(&entries[k].name, "%s:%llu:%llu", fl->v[i].rel,
                             (unsigned long long)j->start, (unsigned long long)j->end) < 0)
                    entries[k].name = NULL;
                off = j->end;
            } else {
                j->start = 0;
                j->end = UINT64_MAX;
                entries[k].name = strdup(fl->v[i].rel);
            }
            if (!entries[k].name) {
                *n_out = k;
                free(jobs);
                oms_entries_free(entries, k);
                return oms_err(err, errlen, "out of memory planning the hashing");
            }
            k++;
        } while (req->shard_size && off < size);
    }
    *jobs_out = jobs;
    *entries_out = entries;
    *n_out = k;
    return 0;
}

static int cmp_job_size(const void *a, const void *b, void *arg)
{
    const file_list *fl = arg;
    const hash_job *x = a, *y = b;
    uint64_t sx = x->end == UINT64_MAX ? fl->v[x->file].size : x->end - x->start;
    uint64_t sy = y->end == UINT64_MAX ? fl->v[y->file].size : y->end - y->start;
    return sx < sy ? 1 : sx > sy ? -1 : 0;
}

static void file_list_free(file_list *fl)
{
    for (size_t i = 0; i < fl->n; i++)
        free(fl->v[i].rel);
    free(fl->v);
}

static int enumerate(const oms_hash_req *req, walk_ctx *w)
{
    struct stat st;
    if (fstat(req->root_fd, &st) != 0)
        return oms_err(w->err, w->errlen, "cannot stat the model");
    if (S_ISREG(st.st_mode)) {
        if (!req->file_name)
            return oms_err(w->err, w->errlen, "the model is a file but has no name");
        return add_file(w, req->file_name, (uint64_t)st.st_size);
    }
    if (!S_ISDIR(st.st_mode))
        return oms_err(w->err, w->errlen, "the model is neither a regular file nor a directory");
    int dfd = openat(req->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return oms_err(w->err, w->errlen, "cannot open the model directory");
    return walk_dir(w, dfd, NULL, 0);
}

int oms_hash_model(const oms_hash_req *req, oms_entry **entries, size_t *n_entries, uint64_t *bytes,
                   char *err, size_t errlen)
{
    walk_ctx w = {.req = req, .err = err, .errlen = errlen};
    hash_job *jobs = NULL;
    oms_entry *ents = NULL;
    size_t n = 0;
    uint64_t total = 0;
    EVP_MD *md = oms_fetch_md(req->hash_type);
    int rc = -1;
    *entries = NULL;
    *n_entries = 0;
    if (!md)
        return oms_err(err, errlen, "unsupported hash type '%s'", req->hash_type);
    if (enumerate(req, &w) != 0 || plan_jobs(req, &w.files, &jobs, &ents, &n, err, errlen) != 0)
        goto out;
    for (size_t i = 0; i < w.files.n; i++)
        total += w.files.v[i].size;
    /* Largest first, so one big file does not start last. */
    qsort_r(jobs, n, sizeof *jobs, cmp_job_size, &w.files);
    if (n > 0) {
        pool p = {.req = req,
                  .md = md,
                  .files = &w.files,
                  .jobs = jobs,
                  .n_jobs = n,
                  .err = err,
                  .errlen = errlen};
        atomic_init(&p.next, 0);
        atomic_init(&p.done_bytes, 0);
        atomic_init(&p.failed, 0);
        pthread_mutex_init(&p.lock, NULL);
        pthread_cond_init(&p.cond, NULL);
        rc = run_pool(&p, total);
        pthread_mutex_destroy(&p.lock);
        pthread_cond_destroy(&p.cond);
        if (rc != 0)
            goto out;
        total = atomic_load(&p.done_bytes);
    }
    qsort(ents, n, sizeof *ents, cmp_entry);
    *entries = ents;
    *n_entries = n;
    ents = NULL;
    if (bytes)
        *bytes = total;
    rc = 0;
out:
    oms_entries_free(ents, n);
    free(jobs);
    file_list_free(&w.files);
    EVP_MD_free(md);
    return rc;
}
