#include "ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* One datagram with a descriptor attached: sendmsg (the monitor only). */
static int send_frame_with_fd(int sock, const uint8_t *frame, size_t n, int fd)
{
    struct iovec iov = {(void *)frame, n};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    memset(&ctl, 0, sizeof ctl);
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t sent;
    do
        sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    return sent == (ssize_t)n ? 0 : -1;
}

/* One datagram: header + chunk in one buffer. Without a descriptor it goes
 * out with write(), the only send call the worker's filter allows; processes
 * using this ignore SIGPIPE so a vanished peer is an error, not a death. */
static int send_frame(int sock, uint8_t *frame, uint8_t type, uint16_t flags, const uint8_t *chunk,
                      size_t n, int fd, char *err, size_t errlen)
{
    frame[0] = IPC_VERSION;
    frame[1] = type;
    put_le(frame + 2, flags, 2);
    put_le(frame + 4, n, 4);
    if (n)
        memcpy(frame + IPC_HEADER, chunk, n);
    int ok;
    if (fd >= 0) {
        ok = send_frame_with_fd(sock, frame, IPC_HEADER + n, fd) == 0;
    } else {
        ssize_t sent;
        do
            sent = write(sock, frame, IPC_HEADER + n);
        while (sent < 0 && errno == EINTR);
        ok = sent == (ssize_t)(IPC_HEADER + n);
    }
    if (!ok)
        snprintf(err, errlen, "ipc: send failed: %s", strerror(errno));
    return ok ? 0 : -1;
}

int ipc_send(int sock, uint8_t type, const void *payload, size_t len, int fd_to_pass, char *err,
             size_t errlen)
{
    const uint8_t *p = payload;
    size_t off = 0;
    uint8_t *frame = malloc(IPC_HEADER + IPC_FRAME_PAYLOAD);
    int rc = 0;
    if (!frame) {
        snprintf(err, errlen, "ipc: out of memory");
        return -1;
    }
    do {
        size_t n = len - off > IPC_FRAME_PAYLOAD ? IPC_FRAME_PAYLOAD : len - off;
        uint16_t flags = off + n < len ? IPC_MORE : 0;
        rc = send_frame(sock, frame, type, flags, p + off, n, off == 0 ? fd_to_pass : -1, err,
                        errlen);
        off += n;
    } while (rc == 0 && off < len);
    free(frame);
    return rc;
}

static int wait_readable(int sock, int timeout_ms)
{
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    int rc;
    do
        rc = poll(&pfd, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    return rc;
}

/* Takes a descriptor out of the control data; closes any the caller did
 * not ask for, so a hostile peer cannot leak descriptors into us. */
static void take_fds(struct msghdr *msg, int *fd_out)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (fd_out && *fd_out < 0)
                *fd_out = fd;
            else
                close(fd);
        }
    }
}

/* Receives one frame into buf (capacity IPC_HEADER + IPC_FRAME_PAYLOAD).
 * Returns its size, 0 on end of stream, -1 on error, -2 on time-out. */
static ssize_t recv_frame(int sock, uint8_t *buf, int timeout_ms, int *fd_out, int want_fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } ctl;
    struct iovec iov = {buf, IPC_HEADER + IPC_FRAME_PAYLOAD};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;
    if (timeout_ms >= 0) {
        int rc = wait_readable(sock, timeout_ms);
        if (rc == 0)
            return -2;
        if (rc < 0)
            return -1;
    }
    if (!want_fd) /* the sandboxed worker reads with read(): recvmsg is not allowed */
        do
            n = read(sock, buf, IPC_HEADER + IPC_FRAME_PAYLOAD);
        while (n < 0 && errno == EINTR);
    else {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof ctl.buf;
        do
            n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n >= 0)
            take_fds(&msg, fd_out);
        if (n >= 0 && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
            return -1;
    }
    return n;
}

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "ipc: %s", msg);
    return -1;
}

/* Appends a frame's chunk to the message, after checking its header. */
static int accept_frame(const uint8_t *buf, ssize_t n, int first, uint8_t *type, uint16_t *flags,
                        size_t *chunk)
{
    if (n < IPC_HEADER || buf[0] != IPC_VERSION)
        return -1;
    *flags = (uint16_t)get_le(buf + 2, 2);
    *chunk = (size_t)get_le(buf + 4, 4);
    if (*chunk != (size_t)n - IPC_HEADER || (*flags & ~IPC_MORE))
        return -1;
    /* Senders fill every frame but the last: a short MORE frame would let a
     * peer keep us reading empty frames forever. */
    if ((*flags & IPC_MORE) && *chunk != IPC_FRAME_PAYLOAD)
        return -1;
    if (!first && buf[1] != *type)
        return -1;
    *type = buf[1];
    return 0;
}

int ipc_recv(int sock, uint8_t *type, uint8_t **payload, size_t *len, size_t max_len,
             int timeout_ms, int *fd_out, ipc_recv_status *st, char *err, size_t errlen)
{
    uint8_t *frame = malloc(IPC_HEADER + IPC_FRAME_PAYLOAD), *msg = NULL;
    size_t total = 0;
    uint16_t flags = IPC_MORE;
    int rc = -1;
    if (st)
        memset(st, 0, sizeof *st);
    if (fd_out)
        *fd_out = -1;
    if (!frame)
        return fail(err, errlen, "out of memory");
    for (int first = 1; flags & IPC_MORE; first = 0) {
        size_t chunk;
        ssize_t n = recv_frame(sock, frame, timeout_ms, fd_out, fd_out != NULL);
        if (n == -2 || n == 0) {
            if (st)
                *(n == 0 ? &st->eof : &st->timed_out) = 1;
            fail(err, errlen, n == 0 ? "the peer closed the channel" : "timed out");
            goto out;
        }
        if (n < 0 || accept_frame(frame, n, first, type, &flags, &chunk) != 0) {
            fail(err, errlen,
                 n < 0 ? "receive failed" : "malformed frame (version, length, flags or type)");
            goto out;
        }
        if (chunk > max_len - total) {
            fail(err, errlen, "message larger than allowed");
            goto out;
        }
        uint8_t *grown = realloc(msg, total + chunk + 1);
        if (!grown) {
            fail(err, errlen, "out of memory");
            goto out;
        }
        msg = grown;
        memcpy(msg + total, frame + IPC_HEADER, chunk);
        total += chunk;
    }
    msg[total] = 0;
    *payload = msg;
    *len = total;
    msg = NULL;
    rc = 0;
out:
    free(msg);
    free(frame);
    if (rc != 0 && fd_out && *fd_out >= 0) {
        close(*fd_out);
        *fd_out = -1;
    }
    return rc;
}

/* ---- payload builder and reader ---------------------------------------- */

void ipc_writer_init(ipc_writer *w)
{
    memset(w, 0, sizeof *w);
}

void ipc_writer_free(ipc_writer *w)
{
    free(w->data);
    memset(w, 0, sizeof *w);
}

static uint8_t *reserve(ipc_writer *w, size_t n)
{
    if (w->failed)
        return NULL;
    if (n > SIZE_MAX / 2 - w->len) {
        w->failed = 1;
        return NULL;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *d = realloc(w->data, cap);
        if (!d) {
            w->failed = 1;
            return NULL;
        }
        w->data = d;
        w->cap = cap;
    }
    uint8_t *p = w->data + w->len;
    w->len += n;
    return p;
}

void ipc_put_u8(ipc_writer *w, uint8_t v)
{
    uint8_t *p = reserve(w, 1);
    if (p)
        *p = v;
}

void ipc_put_u32(ipc_writer *w, uint32_t v)
{
    uint8_t *p = reserve(w, 4);
    if (p)
        put_le(p, v, 4);
}

void ipc_put_u64(ipc_writer *w, uint64_t v)
{
    uint8_t *p = reserve(w, 8);
    if (p)
        put_le(p, v, 8);
}

void ipc_put_f64(ipc_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    ipc_put_u64(w, bits);
}

void ipc_put_bytes(ipc_writer *w, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        w->failed = 1;
        return;
    }
    ipc_put_u32(w, (uint32_t)n);
    uint8_t *dst = reserve(w, n);
    if (dst && n)
        memcpy(dst, p, n);
}

void ipc_reader_init(ipc_reader *r, const void *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->failed = 0;
}

static const uint8_t *take(ipc_reader *r, size_t n)
{
    if (r->failed || n > r->len - r->pos) {
        r->failed = 1;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

int ipc_get_u8(ipc_reader *r, uint8_t *v)
{
    const uint8_t *p = take(r, 1);
    if (!p)
        return -1;
    *v = *p;
    return 0;
}

int ipc_get_u32(ipc_reader *r, uint32_t *v)
{
    const uint8_t *p = take(r, 4);
    if (!p)
        return -1;
    *v = (uint32_t)get_le(p, 4);
    return 0;
}

int ipc_get_u64(ipc_reader *r, uint64_t *v)
{
    const uint8_t *p = take(r, 8);
    if (!p)
        return -1;
    *v = get_le(p, 8);
    return 0;
}

int ipc_get_f64(ipc_reader *r, double *v)
{
    uint64_t bits;
    if (ipc_get_u64(r, &bits) != 0)
        return -1;
    memcpy(v, &bits, sizeof bits);
    return 0;
}

int ipc_get_bytes(ipc_reader *r, const uint8_t **p, size_t *n, size_t max)
{
    uint32_t len;
    if (ipc_get_u32(r, &len) != 0)
        return -1;
    if (len > max) {
        r->failed = 1;
        return -1;
    }
    *p = take(r, len);
    *n = len;
    return *p || len == 0 ? 0 : -1;
}

int ipc_reader_done(const ipc_reader *r)
{
    return !r->failed && r->pos == r->len;
}
