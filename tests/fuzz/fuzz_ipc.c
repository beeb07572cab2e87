/* libFuzzer target for what the monitor parses from the sandboxed worker:
 * the input is a sequence of datagrams that a hostile worker writes into a
 * real SOCK_SEQPACKET socketpair; the monitor side receives them with
 * ipc_recv (version byte, length, MORE flag, type continuity, message size
 * limit) and hands each message to the decoder the monitor runs for its
 * type: READY, DONE, ERROR and PROVENANCE. Besides "no crash", it checks
 * the promises the monitor relies on: decoded text that can reach a
 * terminal is printable, and decoded token ids are inside the vocabulary.
 *
 * Input: repeated [u16 LE n][n bytes], one datagram each. n = 0xffff is
 * shorthand for a full frame: the next 8 bytes are its header, then one
 * byte that fills its IPC_FRAME_PAYLOAD payload bytes (so MORE chains of
 * full frames are reachable without 64 KiB inputs). */
#include "appliance/ipc.h"
#include "appliance/provenance.h"
#include "appliance/worker.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_DATAGRAMS 64

/* Writes the input's datagrams (as many as the socket takes); returns how
 * many were written. */
static int write_datagrams(int sock, const uint8_t *data, size_t size, uint8_t *frame)
{
    int sent = 0;
    size_t pos = 0;
    while (sent < MAX_DATAGRAMS && size - pos >= 2) {
        size_t n = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
        const uint8_t *bytes = data + pos + 2;
        pos += 2;
        if (n == 0xffff) {
            if (size - pos < IPC_HEADER + 1)
                break;
            memcpy(frame, data + pos, IPC_HEADER);
            memset(frame + IPC_HEADER, data[pos + IPC_HEADER], IPC_FRAME_PAYLOAD);
            bytes = frame;
            n = IPC_HEADER + IPC_FRAME_PAYLOAD;
            pos += IPC_HEADER + 1;
        } else {
            if (n > size - pos)
                n = size - pos;
            pos += n;
        }
        if (write(sock, bytes, n) != (ssize_t)n)
            break; /* full (EAGAIN) or refused: stop here, as a blocked peer would */
        sent++;
    }
    return sent;
}

static void check_ready(worker *w, const uint8_t *p, size_t len)
{
    worker fresh;
    memset(&fresh, 0, sizeof fresh);
    if (worker_decode_ready(&fresh, p, len) != 0)
        return;
    size_t n = strlen(fresh.model.name);
    if ((n && !provenance_text_ok(fresh.model.name, n)) || fresh.model.n_vocab == 0)
        abort();
    w->model = fresh.model; /* later DONE messages are checked against it */
}

static void check_done(const worker *w, const uint8_t *p, size_t len)
{
    worker_request q = {.max_tokens = 64};
    worker_result r;
    memset(&r, 0, sizeof r);
    if (worker_decode_done(w, &q, p, len, &r) == 0) {
        if (r.n_tokens > q.max_tokens || !utf8_valid(r.text, r.text_len))
            abort();
        for (size_t i = 0; i < r.n_tokens; i++)
            if (r.tokens[i] < 0 || (uint32_t)r.tokens[i] >= w->model.n_vocab)
                abort();
    }
    worker_result_free(&r);
}

static void check_error(const uint8_t *p, size_t len)
{
    char err[512];
    worker_error_text(p, len, err, sizeof err);
    if (!provenance_text_ok(err, strlen(err)))
        abort();
}

static void check_provenance(const uint8_t *p, size_t len)
{
    model_provenance prov;
    if (provenance_decode(p, len, &prov) != 0)
        return;
    for (size_t i = 0; i < prov.n; i++)
        if (prov.item[i].key >= PROVENANCE_KEYS ||
            !provenance_text_ok(prov.item[i].value, strlen(prov.item[i].value)))
            abort();
}

/* Receives every message the datagrams make and decodes it by type. */
static void receive_all(int sock)
{
    worker w;
    memset(&w, 0, sizeof w);
    w.model.n_vocab = 320;
    w.model.n_ctx = 128;
    for (int i = 0; i < MAX_DATAGRAMS; i++) {
        uint8_t type, *payload = NULL;
        size_t len;
        ipc_recv_status st;
        char err[256];
        if (ipc_recv(sock, &type, &payload, &len, 1u << 20, 0, NULL, &st, err, sizeof err) != 0) {
            if (st.eof || st.timed_out)
                return;
            continue; /* the monitor would kill the worker; keep reading to cover more */
        }
        if (payload[len] != 0) /* ipc_recv promises a NUL after the payload */
            abort();
        if (type == MSG_READY)
            check_ready(&w, payload, len);
        else if (type == MSG_DONE)
            check_done(&w, payload, len);
        else if (type == MSG_ERROR)
            check_error(payload, len);
        else if (type == MSG_PROVENANCE)
            check_provenance(payload, len);
        free(payload);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    uint8_t *frame = malloc(IPC_HEADER + IPC_FRAME_PAYLOAD);
    if (!frame || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) != 0) {
        free(frame);
        return 0;
    }
    /* Room for several full frames (root may raise the limit; others keep
     * the default and simply send fewer). */
    int sz = 4 << 20;
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    write_datagrams(sv[0], data, size, frame);
    close(sv[0]); /* the worker is gone: the monitor reads what is queued, then EOF */
    receive_all(sv[1]);
    close(sv[1]);
    free(frame);
    return 0;
}
