/* The monitor's side of the worker: start it, feed it, read what it says as
 * hostile, and reap it however it ends. */
#include "ipc.h"
#include "chat_template.h"
#include "provenance.h"
#include "worker.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TEXT_BYTES (16u << 20)
#define MAX_TOKENS     (1u << 20)

void worker_main(int sock, const worker_opts *o) __attribute__((noreturn));

size_t utf8_invalid_at(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i], need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3, cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= need)
            return i;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += need + 1;
    }
    return len;
}

#ifdef APPLIANCE_TEST_HOOKS
int worker_test_sandbox_unavailable(const char *which)
{
    const char *v = getenv("APPLIANCE_TEST_SANDBOX_UNAVAILABLE");
    return v && strcmp(v, which) == 0;
}
#endif

int utf8_valid(const char *s, size_t len)
{
    return utf8_invalid_at(s, len) == len;
}

/* Reaps the worker and says how it ended. */
static worker_status reap(worker *w, char *err, size_t errlen)
{
    int st = 0;
    worker_status ws = WORKER_CRASHED;
    if (w->pid > 0) {
        kill(w->pid, SIGKILL);
        while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) {
            ws = WORKER_SANDBOX_VIOLATION;
            snprintf(err, errlen, "the engine worker broke the sandbox and was killed (SIGSYS)");
        } else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL) {
            snprintf(err, errlen, "the engine worker crashed (signal %d: %s)", WTERMSIG(st),
                     strsignal(WTERMSIG(st)));
        } else if (WIFEXITED(st)) {
            snprintf(err, errlen, "the engine worker exited unexpectedly (status %d)",
                     WEXITSTATUS(st));
        }
    }
    if (w->sock >= 0)
        close(w->sock);
    w->sock = -1;
    w->pid = -1;
    return ws;
}

/* Receives one message; on time-out or a dead peer the worker is reaped and
 * the status says why. */
static worker_status receive(worker *w, uint8_t *type, uint8_t **payload, size_t *len, size_t max,
                             char *err, size_t errlen)
{
    ipc_recv_status st;
    char why[256];
    if (ipc_recv(w->sock, type, payload, len, max, w->opts.reply_timeout_ms, NULL, &st, why,
                 sizeof why) == 0)
        return WORKER_OK;
    if (st.timed_out) {
        reap(w, err, errlen);
        snprintf(err, errlen, "the engine worker did not answer within %d ms and was killed",
                 w->opts.reply_timeout_ms);
        return WORKER_TIMED_OUT;
    }
    if (st.eof)
        return reap(w, err, errlen);
    reap(w, err, errlen);
    snprintf(err, errlen, "the engine worker sent a malformed message (%s) and was killed", why);
    return WORKER_PROTOCOL_ERROR;
}

static worker_status protocol_error(worker *w, const char *what, char *err, size_t errlen)
{
    reap(w, err, errlen);
    snprintf(err, errlen, "the engine worker sent a malformed %s and was killed", what);
    return WORKER_PROTOCOL_ERROR;
}

/* A MSG_ERROR payload becomes the error text, made printable: it may quote
 * the hostile model file (a tensor's name, say), and it goes to a terminal. */
static void take_worker_error(const uint8_t *payload, size_t len, char *err, size_t errlen)
{
    char clean[PROVENANCE_VALUE_MAX + 1];
    if (provenance_sanitize((const char *)payload, len, clean, sizeof clean) == 0)
        snprintf(err, errlen, "the engine worker refused the request");
    else
        snprintf(err, errlen, "%s", clean);
}

static void copy_field(char *dst, size_t cap, const uint8_t *p, size_t n)
{
    snprintf(dst, cap, "%.*s", (int)n, (const char *)p);
}

static int decode_ready(worker *w, const uint8_t *payload, size_t len)
{
    ipc_reader r;
    uint32_t v[6];
    const uint8_t *notes, *arch, *name, *kernels;
    size_t nn, na, nm, nk;
    ipc_reader_init(&r, payload, len);
    for (int i = 0; i < 6; i++)
        ipc_get_u32(&r, &v[i]);
    ipc_get_bytes(&r, &notes, &nn, sizeof w->facts.notes - 1);
    ipc_get_bytes(&r, &arch, &na, sizeof w->model.arch - 1);
    ipc_get_bytes(&r, &name, &nm, sizeof w->model.name - 1);
    ipc_get_bytes(&r, &kernels, &nk, sizeof w->model.kernels - 1);
    ipc_get_u32(&r, &w->model.n_vocab);
    ipc_get_u32(&r, &w->model.n_ctx);
    if (!ipc_reader_done(&r) || !utf8_valid((const char *)notes, nn) ||
        (nm > 0 && !provenance_text_ok((const char *)name, nm)) || w->model.n_vocab == 0)
        return -1;
    w->facts = (sandbox_facts){.seccomp_mode = (int)v[0],
                               .no_new_privs = (int)v[1],
                               .net_namespace = (int)v[2],
                               .user_namespace = (int)v[3],
                               .landlock_abi = (int)v[4],
                               .landlock_enforced = (int)v[5]};
    copy_field(w->facts.notes, sizeof w->facts.notes, notes, nn);
    copy_field(w->model.arch, sizeof w->model.arch, arch, na);
    copy_field(w->model.name, sizeof w->model.name, name, nm);
    copy_field(w->model.kernels, sizeof w->model.kernels, kernels, nk);
    return 0;
}

static worker_status await_ready(worker *w, char *err, size_t errlen)
{
    uint8_t type, *payload;
    size_t len;
    worker_status ws = receive(w, &type, &payload, &len, 64 * 1024, err, errlen);
    if (ws != WORKER_OK)
        return ws;
    if (type == MSG_ERROR) {
        take_worker_error(payload, len, err, errlen);
        free(payload);
        char ignored[64];
        reap(w, ignored, sizeof ignored);
        return WORKER_REQUEST_FAILED;
    }
    if (type == MSG_NO_SANDBOX) { /* said before any model byte was parsed */
        char why[400];
        take_worker_error(payload, len, why, sizeof why);
        free(payload);
        reap(w, err, errlen);
        snprintf(err, errlen, "the engine worker's sandbox cannot be installed: %s", why);
        return WORKER_SANDBOX_UNAVAILABLE;
    }
    int ok = type == MSG_READY && decode_ready(w, payload, len) == 0;
    free(payload);
    if (!ok)
        return protocol_error(w, "ready message", err, errlen);
    /* Trust what the kernel shows, not what the worker says: seccomp,
     * no_new_privs and the network namespace come from /proc; Landlock has no
     * /proc view, so that part is the worker's word (and says so in notes). */
    memset(&w->observed, 0, sizeof w->observed);
    sandbox_read_status(w->pid, &w->observed);
    w->observed.user_namespace = w->facts.user_namespace;
    w->observed.landlock_abi = w->facts.landlock_abi;
    w->observed.landlock_enforced = w->facts.landlock_enforced;
    memcpy(w->observed.notes, w->facts.notes, sizeof w->observed.notes);
    if (w->opts.sandbox_required && w->observed.seccomp_mode != 2) {
        reap(w, err, errlen);
        snprintf(err, errlen,
                 "the engine worker is not under its seccomp filter (policy "
                 "sandbox.required)");
        return WORKER_SANDBOX_VIOLATION;
    }
    return WORKER_OK;
}

worker_status worker_start(worker *w, int model_fd, const worker_opts *o, char *err, size_t errlen)
{
    int sv[2];
    memset(w, 0, sizeof *w);
    w->pid = -1;
    w->sock = -1;
    w->opts = *o;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "cannot create the worker channel: %s", strerror(errno));
        return WORKER_CRASHED;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        snprintf(err, errlen, "cannot start the engine worker: %s", strerror(errno));
        return WORKER_CRASHED;
    }
    if (pid == 0) {
        close(sv[0]);
        worker_main(sv[1], o);
    }
    close(sv[1]);
    w->pid = pid;
    w->sock = sv[0];
    ipc_writer iw;
    ipc_writer_init(&iw);
    ipc_put_u32(&iw, (uint32_t)o->n_threads);
    ipc_put_u32(&iw, o->n_ctx);
    ipc_put_u32(&iw, o->ctx_cap);
    int sent =
        !iw.failed && ipc_send(w->sock, MSG_INIT, iw.data, iw.len, model_fd, err, errlen) == 0;
    ipc_writer_free(&iw);
    if (!sent)
        return reap(w, err, errlen);
    return await_ready(w, err, errlen);
}

static int encode_request(const worker_request *q, ipc_writer *w)
{
    ipc_writer_init(w);
    ipc_put_bytes(w, q->prompt, q->prompt_len);
    ipc_put_f64(w, q->sampling.temperature);
    ipc_put_u32(w, (uint32_t)q->sampling.top_k);
    ipc_put_f64(w, q->sampling.top_p);
    ipc_put_f64(w, q->sampling.min_p);
    ipc_put_f64(w, q->sampling.repeat_penalty);
    ipc_put_u32(w, (uint32_t)q->sampling.repeat_last_n);
    ipc_put_u64(w, q->sampling.seed);
    ipc_put_u32(w, q->max_tokens);
    ipc_put_u32(w, (uint32_t)q->n_stop);
    for (size_t i = 0; i < q->n_stop; i++)
        ipc_put_bytes(w, q->stop[i], strlen(q->stop[i]) + 1);
    return w->failed ? -1 : 0;
}

static int get_tokens(ipc_reader *r, uint32_t n_vocab, size_t max, int32_t **ids, size_t *n)
{
    uint32_t count, id;
    if (ipc_get_u32(r, &count) != 0 || count > max || count > (r->len - r->pos) / 4)
        return -1;
    *ids = malloc((count ? count : 1) * sizeof **ids);
    if (!*ids)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        if (ipc_get_u32(r, &id) != 0 || id >= n_vocab)
            return -1;
        (*ids)[i] = (int32_t)id;
    }
    *n = count;
    return 0;
}

/* Checks every field of MSG_DONE against what the request allowed. */
static int decode_done(const worker *w, const worker_request *q, const uint8_t *payload, size_t len,
                       worker_result *out)
{
    ipc_reader r;
    uint8_t finish;
    const uint8_t *text;
    size_t n;
    ipc_reader_init(&r, payload, len);
    if (get_tokens(&r, w->model.n_vocab, w->model.n_ctx, &out->prompt_tokens, &out->n_prompt) ||
        get_tokens(&r, w->model.n_vocab, q->max_tokens, &out->tokens, &out->n_tokens) ||
        ipc_get_u8(&r, &finish) || finish > ENGINE_FINISH_CANCELLED ||
        ipc_get_bytes(&r, &text, &n, MAX_TEXT_BYTES) || !utf8_valid((const char *)text, n) ||
        ipc_get_f64(&r, &out->prompt_ms) || ipc_get_f64(&r, &out->decode_ms) ||
        ipc_get_u32(&r, &out->n_decode_evals) || out->n_decode_evals > q->max_tokens ||
        !ipc_reader_done(&r) || !isfinite(out->prompt_ms) || !isfinite(out->decode_ms) ||
        out->prompt_ms < 0 || out->decode_ms < 0)
        return -1;
    out->finish = (engine_finish)finish;
    out->text = malloc(n + 1);
    if (!out->text)
        return -1;
    memcpy(out->text, text, n);
    out->text[n] = 0;
    out->text_len = n;
    return 0;
}

void worker_result_free(worker_result *r)
{
    free(r->prompt_tokens);
    free(r->tokens);
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* Waits until the worker has something to say. Meanwhile each time
 * cancel_fd is readable it is drained, and the first time the worker is
 * told to stop. A silent worker is reaped as receive() does. */
static worker_status await_reply(worker *w, int cancel_fd, int *cancel_sent, char *err,
                                 size_t errlen)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = w->sock, .events = POLLIN},
                              {.fd = cancel_fd, .events = POLLIN}};
        int rc = poll(p, 2, w->opts.reply_timeout_ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0) {
            reap(w, err, errlen);
            snprintf(err, errlen, "the engine worker did not answer within %d ms and was killed",
                     w->opts.reply_timeout_ms);
            return WORKER_TIMED_OUT;
        }
        if (rc > 0 && (p[1].revents & POLLIN)) {
            char drain[256];
            if (read(cancel_fd, drain, sizeof drain) < 0 && errno != EAGAIN && errno != EINTR)
                cancel_fd = -1; /* unreadable: stop watching it */
            if (!*cancel_sent && ipc_send(w->sock, MSG_CANCEL, NULL, 0, -1, err, errlen) != 0)
                return reap(w, err, errlen);
            *cancel_sent = 1;
        }
        if (rc < 0 || (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            return WORKER_OK; /* receive() reads it, or reports the failure */
    }
}

/* Streams MSG_TEXT pieces until MSG_DONE or MSG_ERROR; see worker_chat for
 * cancel_fd (-1: none). */
static worker_status read_replies(worker *w, const worker_request *req, worker_text_fn on_text,
                                  void *user, int cancel_fd, worker_result *out, char *err,
                                  size_t errlen)
{
    size_t streamed = 0;
    int cancel_sent = 0;
    for (;;) {
        uint8_t type, *payload;
        size_t len;
        worker_status ws =
            cancel_fd >= 0 ? await_reply(w, cancel_fd, &cancel_sent, err, errlen) : WORKER_OK;
        if (ws != WORKER_OK)
            return ws;
        ws = receive(w, &type, &payload, &len, MAX_TEXT_BYTES + 64 * 1024 + 8 * (size_t)MAX_TOKENS,
                     err, errlen);
        if (ws != WORKER_OK)
            return ws;
        if (type == MSG_TEXT) {
            streamed += len;
            /* Empty pieces are never sent; refusing them bounds the number
             * of pieces by MAX_TEXT_BYTES, so a worker cannot spin us. */
            int ok =
                len > 0 && utf8_valid((const char *)payload, len) && streamed <= MAX_TEXT_BYTES;
            if (ok && on_text)
                on_text(user, (const char *)payload, len);
            free(payload);
            if (!ok)
                return protocol_error(w, "text piece", err, errlen);
            continue;
        }
        if (type == MSG_ERROR || type == MSG_OVER_CONTEXT) {
            take_worker_error(payload, len, err, errlen);
            free(payload);
            return type == MSG_ERROR ? WORKER_REQUEST_FAILED : WORKER_OVER_CONTEXT;
        }
        int ok = type == MSG_DONE && decode_done(w, req, payload, len, out) == 0 &&
                 (out->finish != ENGINE_FINISH_CANCELLED || cancel_sent);
        free(payload);
        if (!ok) {
            worker_result_free(out);
            return protocol_error(w, "generation record", err, errlen);
        }
        return WORKER_OK;
    }
}

/* Sends one request of the given type to a running worker: WORKER_CRASHED
 * ("not running") when there is none, and a worker that cannot be written
 * to, or a request that could not be encoded (encoded 0), is reaped. */
static worker_status send_to_worker(worker *w, uint8_t type, int encoded, const void *data,
                                    size_t len, char *err, size_t errlen)
{
    if (w->pid <= 0) {
        snprintf(err, errlen, "the engine worker is not running");
        return WORKER_CRASHED;
    }
    if (!encoded || ipc_send(w->sock, type, data, len, -1, err, errlen) != 0)
        return reap(w, err, errlen);
    return WORKER_OK;
}

worker_status worker_generate(worker *w, const worker_request *req, worker_text_fn on_text,
                              void *user, worker_result *out, char *err, size_t errlen)
{
    ipc_writer iw;
    memset(out, 0, sizeof *out);
    const int encoded = encode_request(req, &iw) == 0;
    worker_status ws = send_to_worker(w, MSG_GENERATE, encoded, iw.data, iw.len, err, errlen);
    ipc_writer_free(&iw);
    if (ws != WORKER_OK)
        return ws;
    return read_replies(w, req, on_text, user, -1, out, err, errlen);
}

void worker_stop(worker *w)
{
    char err[128];
    if (w->pid <= 0)
        return;
    if (ipc_send(w->sock, MSG_SHUTDOWN, NULL, 0, -1, err, sizeof err) == 0) {
        /* Give it a moment to exit on its own, then make sure. */
        for (int i = 0; i < 100; i++) {
            int st;
            if (waitpid(w->pid, &st, WNOHANG) == w->pid) {
                w->pid = -1;
                break;
            }
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    reap(w, err, sizeof err);
}

worker_status worker_provoke(worker *w, violation v, const char *path, char *err, size_t errlen)
{
    ipc_writer iw;
    uint8_t type, *payload;
    size_t len;
    ipc_writer_init(&iw);
    ipc_put_u8(&iw, (uint8_t)v);
    ipc_put_bytes(&iw, path ? path : "", path ? strlen(path) + 1 : 1);
    int sent = !iw.failed && ipc_send(w->sock, MSG_VIOLATE, iw.data, iw.len, -1, err, errlen) == 0;
    ipc_writer_free(&iw);
    if (!sent)
        return reap(w, err, errlen);
    worker_status ws = receive(w, &type, &payload, &len, 4096, err, errlen);
    if (ws == WORKER_OK) { /* it answered instead of dying: the attempt was not stopped */
        free(payload);
        snprintf(err, errlen, "the worker survived a forbidden act");
    }
    return ws;
}

/* ---- chat ------------------------------------------------------------------ */

worker_status worker_chat_setup(worker *w, const char *wanted, char name[16], char source[32],
                                char *err, size_t errlen)
{
    uint8_t type, *payload;
    size_t len, nn, ns;
    const uint8_t *pn, *ps;
    chat_template t;
    wanted = wanted ? wanted : "";
    worker_status ws = send_to_worker(w, MSG_CHAT_SETUP, 1, wanted, strlen(wanted), err, errlen);
    if (ws != WORKER_OK)
        return ws;
    ws = receive(w, &type, &payload, &len, 4096, err, errlen);
    if (ws != WORKER_OK)
        return ws;
    if (type == MSG_ERROR) {
        take_worker_error(payload, len, err, errlen);
        free(payload);
        return WORKER_REQUEST_FAILED;
    }
    ipc_reader r;
    ipc_reader_init(&r, payload, len);
    int ok = type == MSG_CHAT_SETUP && ipc_get_bytes(&r, &pn, &nn, 15) == 0 &&
             ipc_get_bytes(&r, &ps, &ns, 31) == 0 && ipc_reader_done(&r);
    if (ok) {
        copy_field(name, 16, pn, nn);
        ok = chat_template_from_name(name, &t) == 0 && utf8_valid((const char *)ps, ns) &&
             !memchr(ps, '\n', ns);
        copy_field(source, 32, ps, ns);
    }
    free(payload);
    return ok ? WORKER_OK : protocol_error(w, "template answer", err, errlen);
}

/* MSG_CHAT: template, messages, the reset flag, the test delay, then a
 * generation request (its prompt empty). */
static int encode_chat(const worker_chat_request *q, ipc_writer *w)
{
    ipc_writer tail;
    worker_request gen = q->gen;
    if (!gen.prompt) {
        gen.prompt = "";
        gen.prompt_len = 0;
    }
    if (encode_request(&gen, &tail) != 0) {
        ipc_writer_free(&tail);
        return -1;
    }
    ipc_writer_init(w);
    ipc_put_bytes(w, q->template_name, strlen(q->template_name));
    ipc_put_u32(w, (uint32_t)q->n_messages);
    for (size_t i = 0; i < q->n_messages; i++) {
        ipc_put_u8(w, (uint8_t)q->messages[i].role);
        ipc_put_bytes(w, q->messages[i].content, q->messages[i].len);
    }
    ipc_put_u8(w, q->reset_cache ? 1 : 0);
    ipc_put_u32(w, q->test_token_delay_ms);
    ipc_put_bytes(w, tail.data, tail.len);
    ipc_writer_free(&tail);
    return w->failed ? -1 : 0;
}

worker_status worker_chat(worker *w, const worker_chat_request *req, worker_text_fn on_text,
                          void *user, int cancel_fd, worker_result *out, char *err, size_t errlen)
{
    ipc_writer iw;
    memset(out, 0, sizeof *out);
    const int encoded = encode_chat(req, &iw) == 0;
    worker_status ws = send_to_worker(w, MSG_CHAT, encoded, iw.data, iw.len, err, errlen);
    ipc_writer_free(&iw);
    if (ws != WORKER_OK)
        return ws;
    return read_replies(w, &req->gen, on_text, user, cancel_fd, out, err, errlen);
}

worker_status worker_provenance(worker *w, model_provenance *out, char *err, size_t errlen)
{
    uint8_t type, *payload;
    size_t len;
    memset(out, 0, sizeof *out);
    worker_status ws = send_to_worker(w, MSG_PROVENANCE_REQUEST, 1, NULL, 0, err, errlen);
    if (ws != WORKER_OK)
        return ws;
    ws = receive(w, &type, &payload, &len, 64 * 1024, err, errlen);
    if (ws != WORKER_OK)
        return ws;
    if (type == MSG_ERROR) {
        take_worker_error(payload, len, err, errlen);
        free(payload);
        return WORKER_REQUEST_FAILED;
    }
    int ok = type == MSG_PROVENANCE && provenance_decode(payload, len, out) == 0;
    free(payload);
    return ok ? WORKER_OK : protocol_error(w, "provenance message", err, errlen);
}

int worker_decode_ready(worker *w, const uint8_t *payload, size_t len)
{
    return decode_ready(w, payload, len);
}

int worker_decode_done(const worker *w, const worker_request *q, const uint8_t *payload, size_t len,
                       worker_result *out)
{
    return decode_done(w, q, payload, len, out);
}

void worker_error_text(const uint8_t *payload, size_t len, char *err, size_t errlen)
{
    take_worker_error(payload, len, err, errlen);
}
