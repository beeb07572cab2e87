/* The sandboxed engine worker: the only process that parses model bytes and
 * prompts. It holds no key, no database, no path; after start-up its only
 * channel is the IPC socket. */
#include "chat_template.h"
#include "ipc.h"
#include "provenance.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WORKER_MAX_REQUEST (32u << 20)

/* Ends the worker with the raw system call: no at-exit handlers run inside
 * the filter (a sanitizer's leak check would need ptrace, which it lacks). */
__attribute__((noreturn)) static void worker_exit(int code)
{
    syscall(SYS_exit_group, code);
    __builtin_unreachable();
}

static void send_error(int sock, const char *msg)
{
    char err[128];
    ipc_send(sock, MSG_ERROR, msg, strlen(msg), -1, err, sizeof err);
}

typedef struct {
    int sock;
    const void *model_bytes;
    size_t model_size;
    engine_model *model;
    engine_ctx *ctx;
    engine_threads *pool;
    sandbox_facts facts;
    uint32_t n_ctx;   /* the context allocated */
    uint32_t ctx_cap; /* policy limits.context */
} worker_state;

/* Receives MSG_INIT and maps the model it carries (no parsing yet). */
static int receive_model(worker_state *s, worker_opts *o, char *err, size_t errlen)
{
    uint8_t type, *payload = NULL;
    size_t len;
    int fd = -1;
    struct stat st;
    if (ipc_recv(s->sock, &type, &payload, &len, 4096, -1, &fd, NULL, err, errlen) != 0)
        return -1;
    ipc_reader r;
    uint32_t threads, n_ctx, cap;
    ipc_reader_init(&r, payload, len);
    int ok = type == MSG_INIT && fd >= 0 && ipc_get_u32(&r, &threads) == 0 &&
             ipc_get_u32(&r, &n_ctx) == 0 && ipc_get_u32(&r, &cap) == 0 && ipc_reader_done(&r);
    free(payload);
    if (!ok || fstat(fd, &st) != 0 || st.st_size <= 0) {
        snprintf(err, errlen, "worker: bad start-up message or model descriptor");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    o->n_threads = (int)threads;
    o->n_ctx = n_ctx;
    o->ctx_cap = cap;
    s->model_size = (size_t)st.st_size;
    s->model_bytes = mmap(NULL, s->model_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (s->model_bytes == MAP_FAILED) {
        snprintf(err, errlen, "worker: cannot map the model: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* no_new_privs and the seccomp filter. Returns 0 when they are in place or
 * the policy lets the worker run without them; -1 with err when they cannot
 * be installed and policy sandbox.required asks for them. */
static int lock_down(worker_state *s, const worker_opts *o, char *err, size_t errlen)
{
#ifdef APPLIANCE_TEST_HOOKS
    if (worker_test_sandbox_unavailable("worker")) {
        snprintf(err, errlen,
                 "seccomp is unavailable (simulated by APPLIANCE_TEST_SANDBOX_UNAVAILABLE)");
        return o->sandbox_required ? -1 : 0;
    }
#endif
    if (sandbox_worker_lockdown(s->sock, &s->facts, err, errlen) != 0 && o->sandbox_required)
        return -1;
    return 0;
}

enum { START_FAILED = -1, START_NO_SANDBOX = -2 };

/* DESIGN.md's order: isolate, pool, seccomp, then parse. Returns 0,
 * START_NO_SANDBOX when the sandbox cannot be installed (nothing parsed),
 * or START_FAILED, with err. */
static int start_up(worker_state *s, const worker_opts *o, char *err, size_t errlen)
{
    int keep[] = {s->sock, STDERR_FILENO};
    /* A fault in the worker ends it at once: no handler (a sanitizer's, say)
     * runs code in a process that may be compromised. */
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        signal(fatal[i], SIG_DFL);
    if (sandbox_worker_isolate(keep, 2, &s->facts, err, errlen) != 0)
        return -1;
    if (!(s->pool = engine_threads_new(o->n_threads, err, errlen)))
        return -1;
    if (lock_down(s, o, err, errlen) != 0)
        return START_NO_SANDBOX;
    if (!(s->model = engine_model_load(s->model_bytes, s->model_size, o->kernels, err, errlen)))
        return -1;
    engine_ctx_params cp;
    engine_model_info info;
    engine_model_get_info(s->model, &info);
    engine_ctx_defaults(&cp);
    cp.n_ctx =
        o->n_ctx ? o->n_ctx : (info.n_ctx_train < o->ctx_cap ? info.n_ctx_train : o->ctx_cap);
    cp.threads = s->pool;
    s->n_ctx = cp.n_ctx;
    s->ctx_cap = o->ctx_cap;
    s->ctx = engine_ctx_new(s->model, &cp, err, errlen);
    return s->ctx ? 0 : -1;
}

static int send_ready(worker_state *s)
{
    engine_model_info info;
    ipc_writer w;
    char err[128];
    char name[sizeof((worker_model_info *)0)->name];
    engine_model_get_info(s->model, &info);
    /* general.name is the file's bytes (and cut at 127 bytes): the monitor
     * accepts printable UTF-8 only. */
    size_t name_len = provenance_sanitize(info.name, strlen(info.name), name, sizeof name);
    ipc_writer_init(&w);
    ipc_put_u32(&w, (uint32_t)s->facts.seccomp_mode);
    ipc_put_u32(&w, (uint32_t)s->facts.no_new_privs);
    ipc_put_u32(&w, (uint32_t)s->facts.net_namespace);
    ipc_put_u32(&w, (uint32_t)s->facts.user_namespace);
    ipc_put_u32(&w, (uint32_t)s->facts.landlock_abi);
    ipc_put_u32(&w, (uint32_t)s->facts.landlock_enforced);
    ipc_put_bytes(&w, s->facts.notes, strlen(s->facts.notes));
    ipc_put_bytes(&w, info.arch, strlen(info.arch));
    ipc_put_bytes(&w, name, name_len);
    ipc_put_bytes(&w, info.kernels, strlen(info.kernels));
    ipc_put_u32(&w, info.n_vocab);
    ipc_put_u32(&w, engine_ctx_size(s->ctx));
    int rc = w.failed ? -1 : ipc_send(s->sock, MSG_READY, w.data, w.len, -1, err, sizeof err);
    ipc_writer_free(&w);
    return rc;
}

static int stream_text(void *user, const char *text, size_t len)
{
    char err[128];
    return ipc_send(*(int *)user, MSG_TEXT, text, len, -1, err, sizeof err) != 0;
}

static void put_tokens(ipc_writer *w, const int32_t *ids, size_t n)
{
    ipc_put_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        ipc_put_u32(w, (uint32_t)ids[i]);
}

static int send_done(int sock, const engine_generation *g)
{
    ipc_writer w;
    char err[128];
    ipc_writer_init(&w);
    put_tokens(&w, g->prompt_tokens, g->n_prompt);
    put_tokens(&w, g->tokens, g->n_tokens);
    ipc_put_u8(&w, (uint8_t)g->finish);
    ipc_put_bytes(&w, g->text, g->text_len);
    ipc_put_f64(&w, g->prompt_ms);
    ipc_put_f64(&w, g->decode_ms);
    ipc_put_u32(&w, g->n_decode_evals);
    int rc = w.failed ? -1 : ipc_send(sock, MSG_DONE, w.data, w.len, -1, err, sizeof err);
    ipc_writer_free(&w);
    return rc;
}

/* Decodes MSG_GENERATE. Stop strings point into the payload. */
static int decode_request(const uint8_t *payload, size_t len, worker_request *req,
                          const char **stops, size_t max_stops)
{
    ipc_reader r;
    const uint8_t *p;
    size_t n;
    uint32_t top_k, last_n, max_tokens, n_stop;
    double temp, top_p, min_p, penalty;
    ipc_reader_init(&r, payload, len);
    ipc_get_bytes(&r, &p, &n, WORKER_MAX_REQUEST);
    req->prompt = (const char *)p;
    req->prompt_len = n;
    ipc_get_f64(&r, &temp);
    ipc_get_u32(&r, &top_k);
    ipc_get_f64(&r, &top_p);
    ipc_get_f64(&r, &min_p);
    ipc_get_f64(&r, &penalty);
    ipc_get_u32(&r, &last_n);
    ipc_get_u64(&r, &req->sampling.seed);
    ipc_get_u32(&r, &max_tokens);
    if (ipc_get_u32(&r, &n_stop) != 0 || n_stop > max_stops)
        return -1;
    for (uint32_t i = 0; i < n_stop; i++) {
        if (ipc_get_bytes(&r, &p, &n, 1024) != 0 || n == 0 || p[n - 1] != 0)
            return -1;
        stops[i] = (const char *)p; /* sent with its NUL */
    }
    req->sampling.temperature = (float)temp;
    req->sampling.top_k = (int32_t)top_k;
    req->sampling.top_p = (float)top_p;
    req->sampling.min_p = (float)min_p;
    req->sampling.repeat_penalty = (float)penalty;
    req->sampling.repeat_last_n = (int32_t)last_n;
    req->max_tokens = max_tokens;
    req->stop = stops;
    req->n_stop = n_stop;
    return ipc_reader_done(&r) ? 0 : -1;
}

/* 1 (with why) when the context the policy allows is what bounds this
 * request and the prompt's tokens plus max_tokens do not fit in it: policy
 * limits.context refuses such a request rather than cut its answer short.
 * A context the user chose smaller (-c), or the model's own, only ends the
 * answer early (finish "length"). */
static int over_policy_context(const worker_state *s, const worker_request *q, char *why,
                               size_t len)
{
    engine_model_info info;
    int32_t *ids = NULL;
    size_t n = 0;
    engine_model_get_info(s->model, &info);
    if (s->n_ctx != s->ctx_cap ||
        engine_tokenize(s->model, q->prompt, q->prompt_len, info.add_bos, &ids, &n, why, len) != 0)
        return 0; /* not policy-bound, or engine_generate reports the error */
    free(ids);
    if ((uint64_t)n + q->max_tokens <= s->ctx_cap)
        return 0;
    snprintf(why, len, "the prompt's %zu tokens and %u new tokens exceed the context of %u tokens",
             n, q->max_tokens, s->ctx_cap);
    return 1;
}

static void serve_generate(worker_state *s, const uint8_t *payload, size_t len)
{
    worker_request req;
    const char *stops[16];
    engine_generate_params gp;
    engine_generation g;
    char err[512];
    memset(&req, 0, sizeof req);
    if (decode_request(payload, len, &req, stops, 16) != 0) {
        send_error(s->sock, "malformed generation request");
        return;
    }
    if (over_policy_context(s, &req, err, sizeof err)) {
        char ignored[128];
        ipc_send(s->sock, MSG_OVER_CONTEXT, err, strlen(err), -1, ignored, sizeof ignored);
        return;
    }
    memset(&gp, 0, sizeof gp);
    gp.sampling = req.sampling;
    gp.max_tokens = req.max_tokens;
    gp.stop = req.stop;
    gp.n_stop = req.n_stop;
    if (engine_generate(s->ctx, req.prompt, req.prompt_len, &gp, stream_text, &s->sock, &g, err,
                        sizeof err) != 0) {
        send_error(s->sock, err);
        return;
    }
    send_done(s->sock, &g);
    engine_generation_free(&g);
}

/* ---- chat ------------------------------------------------------------------ */

/* MSG_CHAT_SETUP: the template wanted ("" = detect), answered with the
 * template chosen and why. */
static void serve_chat_setup(worker_state *s, const uint8_t *payload, size_t len)
{
    char wanted[16], err[256];
    const char *source = "--template";
    chat_template t;
    snprintf(wanted, sizeof wanted, "%.*s", (int)(len < 15 ? len : 15), (const char *)payload);
    if (len == 0)
        t = chat_template_detect(s->model, &source);
    else if (len > 15 || chat_template_from_name(wanted, &t) != 0) {
        send_error(s->sock,
                   "unknown chat template (known: plain, llama2, zephyr, mistral, chatml)");
        return;
    }
    if (chat_template_usable(s->model, t, err, sizeof err) != 0) {
        send_error(s->sock, err);
        return;
    }
    ipc_writer w;
    ipc_writer_init(&w);
    ipc_put_bytes(&w, chat_template_name(t), strlen(chat_template_name(t)));
    ipc_put_bytes(&w, source, strlen(source));
    if (!w.failed)
        ipc_send(s->sock, MSG_CHAT_SETUP, w.data, w.len, -1, err, sizeof err);
    ipc_writer_free(&w);
}

/* A decoded MSG_CHAT; strings point into the payload. */
typedef struct chat_turn {
    chat_template tmpl;
    chat_message *msgs;
    size_t n_msgs;
    uint8_t reset_cache;
    uint32_t delay_ms;
    worker_request req;
    const char *stops[16];
} chat_turn;

static int decode_chat(const uint8_t *payload, size_t len, chat_turn *t)
{
    ipc_reader r;
    const uint8_t *p;
    size_t n;
    uint32_t count;
    char name[16];
    ipc_reader_init(&r, payload, len);
    if (ipc_get_bytes(&r, &p, &n, 15) != 0)
        return -1;
    snprintf(name, sizeof name, "%.*s", (int)n, (const char *)p);
    if (chat_template_from_name(name, &t->tmpl) != 0 || ipc_get_u32(&r, &count) != 0 ||
        count == 0 || count > (r.len - r.pos) / 5 || !(t->msgs = calloc(count, sizeof *t->msgs)))
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t role;
        if (ipc_get_u8(&r, &role) != 0 || role > CHAT_ROLE_ASSISTANT ||
            ipc_get_bytes(&r, &p, &n, WORKER_MAX_REQUEST) != 0)
            return -1;
        t->msgs[i] = (chat_message){(chat_role)role, (const char *)p, n};
    }
    t->n_msgs = count;
    if (ipc_get_u8(&r, &t->reset_cache) != 0 || t->reset_cache > 1 ||
        ipc_get_u32(&r, &t->delay_ms) != 0 || ipc_get_bytes(&r, &p, &n, WORKER_MAX_REQUEST) != 0 ||
        !ipc_reader_done(&r))
        return -1;
    return decode_request(p, n, &t->req, t->stops, 16);
}

typedef struct cancel_poll {
    int sock;
    uint32_t delay_ms;
} cancel_poll;

/* The engine's cancel hook: a non-blocking look at the IPC socket between
 * tokens (recvfrom with MSG_DONTWAIT on that socket is all the filter
 * allows for it). Anything there during an answer is the monitor's
 * MSG_CANCEL; end of stream means the monitor is gone: stop either way. */
static int cancel_requested(void *user)
{
    cancel_poll *c = user;
    uint8_t frame[IPC_HEADER + 16];
#ifdef APPLIANCE_TEST_HOOKS
    if (c->delay_ms) { /* test builds: a slow model, so a test can interrupt it */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do
            clock_gettime(CLOCK_MONOTONIC, &t1);
        while ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 <
               (long)c->delay_ms);
    }
#endif
    ssize_t n = recvfrom(c->sock, frame, sizeof frame, MSG_DONTWAIT, NULL, NULL);
    return n >= 0;
}

static void serve_chat(worker_state *s, const uint8_t *payload, size_t len)
{
    chat_turn t;
    engine_generate_params gp;
    engine_generation g;
    int32_t *ids = NULL, ends[4];
    size_t n_ids;
    char err[512];
    memset(&t, 0, sizeof t);
    if (decode_chat(payload, len, &t) != 0) {
        free(t.msgs);
        send_error(s->sock, "malformed chat request");
        return;
    }
    if (chat_template_render(s->model, t.tmpl, t.msgs, t.n_msgs, &ids, &n_ids, err, sizeof err) !=
        0) {
        free(t.msgs);
        send_error(s->sock, err);
        return;
    }
    cancel_poll cp = {s->sock, t.delay_ms};
    if (t.reset_cache)
        engine_ctx_reset(s->ctx);
    memset(&gp, 0, sizeof gp);
    gp.sampling = t.req.sampling;
    gp.max_tokens = t.req.max_tokens;
    gp.stop = chat_template_stops(t.tmpl, &gp.n_stop);
    gp.end_tokens = ends;
    gp.n_end_tokens = chat_template_end_tokens(s->model, t.tmpl, ends, 4);
    gp.cancel = cancel_requested;
    gp.cancel_user = &cp;
    int rc =
        engine_generate_tokens(s->ctx, ids, n_ids, &gp, stream_text, &s->sock, &g, err, sizeof err);
    free(ids);
    free(t.msgs);
    if (rc != 0) {
        send_error(s->sock, err);
        return;
    }
    send_done(s->sock, &g);
    engine_generation_free(&g);
}

/* The model's GGUF provenance, made printable here (provenance.h). */
static void serve_provenance(worker_state *s)
{
    ipc_writer w;
    char err[128];
    ipc_writer_init(&w);
    provenance_encode(s->model, &w);
    if (w.failed)
        send_error(s->sock, "out of memory describing the model");
    else
        ipc_send(s->sock, MSG_PROVENANCE, w.data, w.len, -1, err, sizeof err);
    ipc_writer_free(&w);
}

#ifdef APPLIANCE_TEST_HOOKS
/* Test builds only: do what a compromised worker would try. */
static void attempt_violation(const uint8_t *payload, size_t len)
{
    ipc_reader r;
    uint8_t v = 0;
    const uint8_t *path;
    size_t n;
    ipc_reader_init(&r, payload, len);
    ipc_get_u8(&r, &v);
    ipc_get_bytes(&r, &path, &n, 4096); /* the audit DB or key path, for the file attempts */
    switch (v) {
    case VIOLATE_SOCKET_INET:
        socket(AF_INET, SOCK_STREAM, 0);
        break;
    case VIOLATE_CONNECT: {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
        connect(0, (struct sockaddr *)&a, sizeof a);
        break;
    }
    case VIOLATE_OPEN_AUDIT_DB:
    case VIOLATE_READ_DEVICE_KEY:
        syscall(SYS_openat, AT_FDCWD, (const char *)path, O_RDONLY);
        break;
    case VIOLATE_EXECVE: {
        char *argv[] = {"/bin/sh", NULL};
        execve("/bin/sh", argv, NULL);
        break;
    }
    case VIOLATE_CRASH: { /* an invalid write, as a memory-safety bug would make */
        volatile uintptr_t bad = 8;
        *(volatile int *)bad = 1;
        break;
    }
    case VIOLATE_HANG:
        for (;;)
            sched_yield();
    }
}
#endif

__attribute__((noreturn)) void worker_main(int sock, const worker_opts *given)
{
    worker_state s;
    worker_opts o = *given;
    char err[512];
    memset(&s, 0, sizeof s);
    s.sock = sock;
    int rc = receive_model(&s, &o, err, sizeof err) != 0 ? START_FAILED
                                                         : start_up(&s, &o, err, sizeof err);
    if (rc == START_NO_SANDBOX) {
        char ignored[128];
        ipc_send(sock, MSG_NO_SANDBOX, err, strlen(err), -1, ignored, sizeof ignored);
        worker_exit(1);
    }
    if (rc != 0) {
        send_error(sock, err);
        worker_exit(1);
    }
    if (send_ready(&s) != 0)
        worker_exit(1);
    for (;;) {
        uint8_t type, *payload;
        size_t len;
        if (ipc_recv(sock, &type, &payload, &len, WORKER_MAX_REQUEST, -1, NULL, NULL, err,
                     sizeof err) != 0)
            worker_exit(0); /* the monitor is gone */
        if (type == MSG_GENERATE)
            serve_generate(&s, payload, len);
        else if (type == MSG_CHAT)
            serve_chat(&s, payload, len);
        else if (type == MSG_CHAT_SETUP)
            serve_chat_setup(&s, payload, len);
        else if (type == MSG_CANCEL)
            ; /* it arrived after the answer had ended: nothing to stop */
        else if (type == MSG_PROVENANCE_REQUEST)
            serve_provenance(&s);
#ifdef APPLIANCE_TEST_HOOKS
        else if (type == MSG_VIOLATE)
            attempt_violation(payload, len);
#endif
        else if (type == MSG_SHUTDOWN) {
            free(payload);
            worker_exit(0);
        } else
            send_error(sock, "unknown request");
        free(payload);
    }
}
