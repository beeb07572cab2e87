/* Framed messages between the monitor and the sandboxed worker over a
 * socketpair(AF_UNIX, SOCK_SEQPACKET) (internal to appliance/).
 *
 * A frame is one datagram: an 8-byte header (version, type, flags, payload
 * length, little-endian) and at most IPC_FRAME_PAYLOAD bytes. A message
 * longer than one frame is sent as several frames of the same type, all but
 * the last flagged IPC_MORE. The receiver bounds the whole message by a
 * caller-given limit, so a hostile peer cannot make it allocate more.
 *
 * Payloads are built with ipc_writer and read with ipc_reader, whose every
 * get is bounds-checked: the monitor treats each worker message as hostile. */
#ifndef APPLIANCE_IPC_H
#define APPLIANCE_IPC_H

#include <stddef.h>
#include <stdint.h>

#define IPC_VERSION       1
#define IPC_HEADER        8
#define IPC_FRAME_PAYLOAD (64 * 1024)
#define IPC_MORE          0x1

/* Sends one message; passes fd_to_pass (>= 0) with the first frame. */
int ipc_send(int sock, uint8_t type, const void *payload, size_t len, int fd_to_pass, char *err,
             size_t errlen);

/* Receives one message of at most max_len bytes into a malloc'd *payload
 * (NUL-terminated for convenience; free it). timeout_ms < 0 waits forever
 * (the worker, which may not poll); otherwise the monitor gives up after
 * that long without a frame. A received descriptor, if any, lands in
 * *fd_out (else -1; pass NULL to refuse descriptors). Returns 0, or -1 with
 * err; *timed_out / *eof tell those cases apart when non-NULL. */
typedef struct ipc_recv_status {
    int timed_out;
    int eof;
} ipc_recv_status;

int ipc_recv(int sock, uint8_t *type, uint8_t **payload, size_t *len, size_t max_len,
             int timeout_ms, int *fd_out, ipc_recv_status *st, char *err, size_t errlen);

/* Growable payload builder. On allocation failure it remembers the error
 * and every later put is a no-op; check w->failed once at the end. */
typedef struct ipc_writer {
    uint8_t *data;
    size_t len, cap;
    int failed;
} ipc_writer;

void ipc_writer_init(ipc_writer *w);
void ipc_writer_free(ipc_writer *w);
void ipc_put_u8(ipc_writer *w, uint8_t v);
void ipc_put_u32(ipc_writer *w, uint32_t v);
void ipc_put_u64(ipc_writer *w, uint64_t v);
void ipc_put_f64(ipc_writer *w, double v);
/* u32 length, then the bytes. */
void ipc_put_bytes(ipc_writer *w, const void *p, size_t n);

/* Bounds-checked payload reader: each get returns 0, or -1 (and sets
 * r->failed) when the payload is too short. */
typedef struct ipc_reader {
    const uint8_t *data;
    size_t len, pos;
    int failed;
} ipc_reader;

void ipc_reader_init(ipc_reader *r, const void *data, size_t len);
int ipc_get_u8(ipc_reader *r, uint8_t *v);
int ipc_get_u32(ipc_reader *r, uint32_t *v);
int ipc_get_u64(ipc_reader *r, uint64_t *v);
int ipc_get_f64(ipc_reader *r, double *v);
/* Points *p into the payload (no copy) for a length-prefixed field of at
 * most max bytes. */
int ipc_get_bytes(ipc_reader *r, const uint8_t **p, size_t *n, size_t max);
/* 1 when every byte was consumed and nothing failed. */
int ipc_reader_done(const ipc_reader *r);

#endif
