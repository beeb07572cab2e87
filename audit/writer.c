/* Group commit: threads append through one writer; whoever finds no commit
 * in flight becomes the leader and commits everything queued so far in one
 * transaction (one fsync), then wakes the others with their results. */
#include "audit_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* One caller's request, living on its stack until `done`. */
typedef struct pending {
    const audit_append_req *req;
    json_t *body;
    uint64_t seq;
    uint8_t hash[AUDIT_HASH_LEN];
    int rc, done;
    char err[256];
    struct pending *next;
} pending;

struct audit_writer {
    audit_log *log;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pending *head, *tail; /* waiting for the next group */
    int committing;       /* a leader is inside commit_group */
};

int audit_writer_open(audit_writer **out, const char *path, const audit_open_opts *opts, char *err,
                      size_t errlen)
{
    *out = NULL;
    audit_writer *w = calloc(1, sizeof *w);
    if (!w)
        return audit_fail(err, errlen, AUDIT_E_NOMEM, "audit writer: out of memory");
    int rc = audit_open(&w->log, path, opts, err, errlen);
    if (rc != AUDIT_OK) {
        free(w);
        return rc;
    }
    if (pthread_mutex_init(&w->mu, NULL) != 0 || pthread_cond_init(&w->cv, NULL) != 0) {
        audit_close(w->log);
        free(w);
        return audit_fail(err, errlen, AUDIT_E_NOMEM, "audit writer: cannot create a lock");
    }
    *out = w;
    return AUDIT_OK;
}

void audit_writer_close(audit_writer *w)
{
    if (!w)
        return;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    audit_close(w->log);
    free(w);
}

audit_log *audit_writer_log(audit_writer *w)
{
    return w->log;
}

/* Commits a group all-or-nothing; fills each member's rc/seq/hash/err.
 * Runs without the mutex: members are not read by their owners until done. */
static void commit_group(audit_log *log, pending *group)
{
    char err[256] = "";
    int rc = audit_begin_immediate(log, err, sizeof err);
    for (pending *p = group; rc == AUDIT_OK && p; p = p->next)
        rc = audit_append_locked(log, p->req->kind, p->req->request_id, p->req->actor, p->body,
                                 &p->seq, p->hash, err, sizeof err);
    if (rc == AUDIT_OK)
        rc = audit_commit(log, err, sizeof err);
    else
        audit_rollback(log);
    for (pending *p = group; p; p = p->next) {
        p->rc = rc;
        if (rc != AUDIT_OK)
            snprintf(p->err, sizeof p->err, "%s", err);
    }
}

/* Waits until p is durable or failed, leading a group commit when free. */
static void run_until_done(audit_writer *w, pending *p)
{
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = p;
    else
        w->head = p;
    w->tail = p;
    while (!p->done) {
        if (w->committing) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        pending *group = w->head;
        w->head = w->tail = NULL;
        w->committing = 1;
        pthread_mutex_unlock(&w->mu);
        commit_group(w->log, group);
        pthread_mutex_lock(&w->mu);
        w->committing = 0;
        for (pending *q = group; q;) {
            pending *next = q->next; /* q may be freed by its owner once done */
            q->done = 1;
            q = next;
        }
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

int audit_writer_append(audit_writer *w, const audit_append_req *req, uint64_t *out_seq,
                        uint8_t out_hash[AUDIT_HASH_LEN], char *err, size_t errlen)
{
    if (w->log->read_only)
        return audit_fail(err, errlen, AUDIT_E_IO, "audit append: the log is open read-only");
    pending p = {.req = req};
    p.body = audit_parse_body(w->log, req, err, errlen);
    if (!p.body)
        return AUDIT_E_INVALID;
    run_until_done(w, &p);
    json_decref(p.body);
    if (p.rc != AUDIT_OK)
        return audit_fail(err, errlen, p.rc, "%s", p.err);
    if (out_seq)
        *out_seq = p.seq;
    if (out_hash)
        memcpy(out_hash, p.hash, AUDIT_HASH_LEN);
    return AUDIT_OK;
}
