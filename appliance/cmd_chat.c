/* appliance chat: a conversation with a model in a terminal. One monitor
 * and one sandboxed worker serve the whole session; every turn is audited
 * and attested as a generation is; a signed checkpoint closes the session.
 *
 * Ctrl-C is read from a signalfd (SIGINT stays blocked, also in the
 * worker), so no handler and no global flag exist: during an answer it
 * stops that answer, at the prompt it only says how to leave. */
#include "chat_template.h"
#include "chat_transcript.h"
#include "commands.h"
#include "engine.h"
#include "generate_monitor.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define CHAT_USAGE                                                                                 \
    "appliance chat (-m MODEL | --synthetic SPEC) [-n N] [--temp T] [--top-k K] [--top-p P]\n"     \
    "       [--min-p M] [--repeat-penalty R] [--seed S] [--greedy] [-t THREADS] [-c CTX]\n"        \
    "       [--kernels NAME] [--system TEXT] [--template NAME]"

#define CHAT_HELP                                                                                  \
    "A conversation with MODEL in the terminal: type a message and Enter; the answer\n"            \
    "streams as it is generated. The model is verified and loaded once, in a sandboxed\n"          \
    "worker; with an appliance home every turn is audited (prompt before, output and a\n"          \
    "signed attestation after) and a signed audit checkpoint closes the session.\n"                \
    "  -m, --model MODEL       an installed model (name or file)\n"                                \
    "  -n, --n-predict N       new tokens per answer at most (default 256)\n"                      \
    "      --temp, --top-k, --top-p, --min-p, --repeat-penalty, --seed, --greedy,\n"               \
    "      -t, -c, --kernels   as for generate (one seed for every turn)\n"                        \
    "      --system TEXT       a system message that opens every conversation\n"                   \
    "      --template NAME     plain, llama2, zephyr, mistral or chatml (default: the\n"           \
    "                          model's, from tokenizer.chat_template or its vocabulary)\n"         \
    "In the chat: /help, /reset (a new conversation), /quit; Ctrl-D ends the session;\n"           \
    "Ctrl-C stops an answer, and at the prompt a second Ctrl-C ends the session.\n"

#define CHAT_COMMANDS                                                                              \
    "/help   this text\n"                                                                          \
    "/reset  start a new conversation (the model forgets this one)\n"                              \
    "/quit   end the session (so does Ctrl-D)\n"                                                   \
    "Ctrl-C  stop the answer being written\n"

#define MAX_LINE (4u << 20)

typedef struct chat_opts {
    cli_run_opts run;
    const char *system, *template_name;
    uint32_t test_delay_ms;
} chat_opts;

enum {
    OPT_SYSTEM = CLI_OPT_RUN_END,
    OPT_TEMPLATE,
    OPT_TEST_DELAY,
};

static int bad_value(const char *flag, const char *value)
{
    return cli_usage_error("chat", CHAT_USAGE, "invalid value '%s' for %s", value, flag);
}

/* A request for one of this session's worker calls (opening, or a turn). */
static gen_request chat_request(const chat_opts *o, const gen_chat *chat)
{
    gen_request req = gen_request_for_run(&o->run);
    req.reply_timeout_ms = 120000;
    req.chat = chat;
    return req;
}

/* Parses argv into o; returns -1 when done, else an exit code to return. */
static int parse_chat_args(int argc, char **argv, chat_opts *o)
{
    static const struct option opts[] = {
        CLI_RUN_OPTIONS,
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"template", required_argument, NULL, OPT_TEMPLATE},
#ifdef APPLIANCE_TEST_HOOKS
        {"test-token-delay-ms", required_argument, NULL, OPT_TEST_DELAY},
#endif
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    chat_template t;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_RUN_SHORT "h", opts, NULL)) != -1) {
        const char *flag;
        int s = cli_parse_run_flag(c, optarg, &o->run, &flag);
        if (s < 0)
            return bad_value(flag, optarg);
        if (s > 0)
            continue;
        switch (c) {
        case OPT_SYSTEM:
            o->system = optarg;
            break;
        case OPT_TEMPLATE:
            if (chat_template_from_name(optarg, &t) != 0)
                return cli_usage_error("chat", CHAT_USAGE,
                                       "unknown template '%s' (plain, llama2, zephyr, mistral, "
                                       "chatml)",
                                       optarg);
            o->template_name = optarg;
            break;
        case OPT_TEST_DELAY: {
            uint64_t u;
            if (cli_parse_u64(optarg, 10000, &u))
                return bad_value("--test-token-delay-ms", optarg);
            o->test_delay_ms = (uint32_t)u;
            break;
        }
        case 'h':
            printf("usage: %s\n%s", CHAT_USAGE, CHAT_HELP);
            return EXIT_OK;
        default:
            return cli_bad_option("chat", CHAT_USAGE, argc, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("chat", CHAT_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!o->run.model == !o->run.synthetic)
        return cli_usage_error("chat", CHAT_USAGE,
                               "give exactly one of -m MODEL and --synthetic SPEC");
    return -1;
}

/* ---- input: lines from stdin, Ctrl-C from the signalfd --------------------- */

typedef struct line_reader {
    char *buf;
    size_t len, cap;
    int eof;
} line_reader;

typedef enum { INPUT_LINE, INPUT_EOF, INPUT_INTERRUPT, INPUT_ERROR } input_event;

/* Moves the first complete line (without its newline) out of r into *line
 * (malloc'd); 1 when there was one, 0 when not, -1 on out of memory. */
static int take_line(line_reader *r, char **line, size_t *len)
{
    char *nl = r->len ? memchr(r->buf, '\n', r->len) : NULL;
    size_t n = nl ? (size_t)(nl - r->buf) : r->len;
    if (!nl && !(r->eof && r->len > 0))
        return 0;
    if (!(*line = malloc(n + 1)))
        return -1;
    memcpy(*line, r->buf, n);
    (*line)[n] = 0;
    *len = n;
    if (n > 0 && (*line)[n - 1] == '\r')
        (*line)[--*len] = 0;
    size_t used = nl ? n + 1 : n;
    memmove(r->buf, r->buf + used, r->len - used);
    r->len -= used;
    return 1;
}

/* Reads what stdin has now into r. */
static int fill(line_reader *r)
{
    if (r->cap - r->len < 4096) {
        size_t cap = r->cap ? r->cap * 2 : 8192;
        if (cap > MAX_LINE + 8192)
            return -1; /* a line longer than any message may be */
        char *b = realloc(r->buf, cap);
        if (!b)
            return -1;
        r->buf = b;
        r->cap = cap;
    }
    ssize_t n;
    do
        n = read(STDIN_FILENO, r->buf + r->len, r->cap - r->len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if (n == 0)
        r->eof = 1;
    r->len += (size_t)n;
    return 0;
}

/* Waits for a line of input or a Ctrl-C. */
static input_event next_input(line_reader *r, int sig_fd, char **line, size_t *len)
{
    for (;;) {
        int got = take_line(r, line, len);
        if (got != 0)
            return got > 0 ? INPUT_LINE : INPUT_ERROR;
        if (r->eof)
            return INPUT_EOF;
        struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                              {.fd = sig_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return INPUT_ERROR;
        }
        if (p[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sig_fd, &si, sizeof si) > 0)
                return INPUT_INTERRUPT;
        }
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && fill(r) != 0)
            return INPUT_ERROR;
    }
}

/* ---- the conversation -------------------------------------------------------- */

typedef struct chat_session {
    gen_session *gs;
    const chat_opts *o;
    char template_name[16];
    chat_message *msgs; /* contents malloc'd */
    size_t n_msgs, cap_msgs;
    char conversation_id[33];
    uint32_t turn;
    int fresh_cache;  /* the next turn starts from an empty KV cache */
    int context_full; /* the last answer filled the context */
    int sig_fd;
    int interactive;
    int test_violation; /* test builds: the next turn's worker attempts this act */
    unsigned turns_done, turns_failed;
} chat_session;

static int new_conversation_id(chat_session *c)
{
    uint8_t id[16];
    if (getrandom(id, sizeof id, 0) != sizeof id) {
        cli_error("chat", "cannot draw a conversation id: %s", strerror(errno));
        return -1;
    }
    sodium_bin2hex(c->conversation_id, sizeof c->conversation_id, id, sizeof id);
    c->turn = 0;
    return 0;
}

static int push_message(chat_session *c, chat_role role, const char *text, size_t len)
{
    if (c->n_msgs == c->cap_msgs) {
        size_t cap = c->cap_msgs ? c->cap_msgs * 2 : 16;
        chat_message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m)
            return -1;
        c->msgs = m;
        c->cap_msgs = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, text, len);
    copy[len] = 0;
    c->msgs[c->n_msgs++] = (chat_message){role, copy, len};
    return 0;
}

static void pop_message(chat_session *c)
{
    if (c->n_msgs > 0)
        free((void *)c->msgs[--c->n_msgs].content);
}

/* Forgets the conversation but its system message. */
static void clear_history(chat_session *c)
{
    size_t keep = c->o->system ? 1 : 0;
    while (c->n_msgs > keep)
        pop_message(c);
}

static int stream_stdout(void *user, const char *text, size_t len)
{
    (void)user;
    if (fwrite(text, 1, len, stdout) != len)
        return 1;
    fflush(stdout);
    return 0;
}

/* What the user should know after an answer; remembers a full context. */
static void after_answer(chat_session *c, const gen_outcome *g)
{
    const worker_result *r = &g->result;
    const worker *w = gen_session_worker(c->gs);
    printf("\n");
    fflush(stdout);
    if (r->finish == ENGINE_FINISH_CANCELLED)
        fprintf(stderr, "[answer stopped by Ctrl-C]\n");
    c->context_full = r->finish == ENGINE_FINISH_LENGTH && w->pid > 0 &&
                      r->n_prompt + r->n_tokens + 1 >= w->model.n_ctx;
    if (c->context_full)
        fprintf(stderr,
                "[the context of %u tokens is full: /reset to start a new "
                "conversation]\n",
                w->model.n_ctx);
}

/* One user message: audited, answered, and kept in the history if it was. */
static int run_turn(chat_session *c, const char *text, size_t len)
{
    const chat_opts *o = c->o;
    size_t json_len;
    if (memchr(text, 0, len) || push_message(c, CHAT_ROLE_USER, text, len) != 0) {
        cli_error("chat", "the message holds a NUL byte or memory ran out; not sent");
        return EXIT_FAIL;
    }
    char *json = chat_transcript_json(c->template_name, c->msgs, c->n_msgs, &json_len);
    if (!json) {
        pop_message(c);
        cli_error("chat", "the message is not valid UTF-8; not sent");
        return EXIT_FAIL;
    }
    gen_chat gc = {.template_name = c->template_name,
                   .messages = c->msgs,
                   .n_messages = c->n_msgs,
                   .conversation_id = c->conversation_id,
                   .turn = c->turn + 1,
                   .user_bytes = len,
                   .cancel_fd = c->sig_fd,
                   .fresh_cache = c->fresh_cache,
                   .test_token_delay_ms = o->test_delay_ms};
    gen_request req = chat_request(o, &gc);
    req.prompt = json;
    req.test_violation = c->test_violation;
    c->test_violation = 0;
    gen_outcome g;
    int rc = gen_session_run(c->gs, &req, stream_stdout, NULL, &g);
    free(json);
    if (rc == EXIT_OK &&
        push_message(c, CHAT_ROLE_ASSISTANT, g.result.text, g.result.text_len) != 0) {
        cli_error("chat", "out of memory keeping the answer; the conversation starts anew");
        clear_history(c);
        rc = EXIT_FAIL;
    } else if (rc == EXIT_OK) {
        c->turn++;
        c->fresh_cache = 0;
        c->turns_done++;
        after_answer(c, &g);
    } else {
        pop_message(c); /* not answered: the next message takes its place */
        c->turns_failed++;
        fprintf(stderr, "[this message was not answered%s]\n",
                gen_session_worker(c->gs)->pid <= 0
                    ? "; the engine will be restarted for the next one"
                : c->context_full ? ": the conversation fills the context, /reset to start a "
                                    "new one"
                                  : "; if the conversation is too long, /reset");
    }
    gen_outcome_free(&g);
    return rc;
}

/* /reset: a new conversation, audited, and a fresh KV cache next turn. */
static void reset_conversation(chat_session *c)
{
    char old[33];
    memcpy(old, c->conversation_id, sizeof old);
    clear_history(c);
    if (new_conversation_id(c) != 0)
        return;
    c->fresh_cache = 1;
    c->context_full = 0;
    gen_session_audit(c->gs, AUDIT_KIND_SESSION_START, c->conversation_id,
                      json_pack("{s:s, s:s, s:s}", "event", "chat_reset", "conversation_id",
                                c->conversation_id, "previous_conversation_id", old));
    fprintf(stderr, "[new conversation]\n");
}

/* A line that starts with '/': 1 to go on, 0 to end the session. */
static int run_command(chat_session *c, const char *line)
{
    if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0)
        return 0;
    if (strcmp(line, "/help") == 0)
        fputs(CHAT_COMMANDS, stderr);
    else if (strcmp(line, "/reset") == 0)
        reset_conversation(c);
#ifdef APPLIANCE_TEST_HOOKS
    else if (strcmp(line, "/test-crash") == 0) /* test builds: the next turn's worker crashes */
        c->test_violation = VIOLATE_CRASH;
    else if (strcmp(line, "/test-socket") == 0) /* ... or breaks the sandbox */
        c->test_violation = VIOLATE_SOCKET_INET;
#endif
    else
        fprintf(stderr, "[unknown command %.40s: /help lists them]\n", line);
    return 1;
}

static void prompt(const chat_session *c)
{
    if (c->interactive) {
        fputs("> ", stdout);
        fflush(stdout);
    }
}

/* The read-answer loop, until /quit, end of input or a second Ctrl-C. */
static int converse(chat_session *c)
{
    line_reader r = {0};
    int interrupts = 0, rc = EXIT_OK;
    for (;;) {
        char *line = NULL;
        size_t len = 0;
        prompt(c);
        input_event ev = next_input(&r, c->sig_fd, &line, &len);
        if (ev == INPUT_EOF) {
            if (c->interactive)
                printf("\n");
            break;
        }
        if (ev == INPUT_ERROR) {
            cli_error("chat", "cannot read the input (a line over %u bytes, or a read error)",
                      MAX_LINE);
            rc = EXIT_FAIL;
            break;
        }
        if (ev == INPUT_INTERRUPT) {
            if (++interrupts >= 2)
                break;
            fprintf(stderr, "\n[Ctrl-C again, Ctrl-D or /quit ends the session]\n");
            continue;
        }
        interrupts = 0;
        int go_on = 1;
        if (line[0] == '/')
            go_on = run_command(c, line);
        else if (len > 0)
            run_turn(c, line, len);
        free(line);
        if (!go_on)
            break;
    }
    free(r.buf);
    return rc;
}

/* ---- the session ------------------------------------------------------------- */

/* SIGINT blocked in this process (and so in the worker it forks) and read
 * from a descriptor instead. Its disposition is reset first: a shell starts
 * background jobs with SIGINT ignored, and an ignored signal never reaches
 * a signalfd. */
static int interrupt_fd(void)
{
    sigset_t set;
    signal(SIGINT, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int start_chat(const app_ctx *ctx, chat_session *c, const chat_opts *o)
{
    char name[16], source[32], err[512];
    gen_chat open_chat = {.cancel_fd = -1};
    gen_request req = chat_request(o, &open_chat);
    if (gen_session_open(ctx, &req, &c->gs) != EXIT_OK)
        return -1;
    worker *w = gen_session_worker(c->gs);
    if (worker_chat_setup(w, o->template_name, name, source, err, sizeof err) != WORKER_OK) {
        cli_error("chat", "%s", err);
        return -1;
    }
    memcpy(c->template_name, name, sizeof name);
    if (new_conversation_id(c) != 0 ||
        (o->system && push_message(c, CHAT_ROLE_SYSTEM, o->system, strlen(o->system)) != 0))
        return -1;
    if (gen_session_audit(c->gs, AUDIT_KIND_SESSION_START, c->conversation_id,
                          json_pack("{s:s, s:s, s:s, s:s}", "event", "chat_start",
                                    "conversation_id", c->conversation_id, "template", name,
                                    "model", w->model.name)) != EXIT_OK)
        return -1;
    fprintf(stderr,
            "chat with %s (template %s, from %s; context %u tokens; sandbox: seccomp %d)%s\n"
            "/help for commands, /quit or Ctrl-D to end\n",
            o->run.model ? o->run.model : o->run.synthetic, name, source, w->model.n_ctx,
            w->observed.seccomp_mode,
            gen_session_has_log(c->gs) ? ", every turn audited"
                                       : "; NOT audited: no appliance home (run 'appliance init')");
    return 0;
}

int cmd_chat(const app_ctx *ctx, int argc, char **argv)
{
    chat_opts o = {0};
    cli_run_defaults(&o.run);
    int rc = parse_chat_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if ((rc = cli_run_seed("chat", &o.run)) != EXIT_OK)
        return rc;
    chat_session c = {.o = &o, .interactive = isatty(STDIN_FILENO)};
    if ((c.sig_fd = interrupt_fd()) < 0) {
        cli_error("chat", "cannot watch for Ctrl-C: %s", strerror(errno));
        return EXIT_FAIL;
    }
    rc = start_chat(ctx, &c, &o) == 0 ? converse(&c) : EXIT_FAIL;
    int clean = rc == EXIT_OK && c.gs;
    gen_session_close(c.gs, clean);
    if (clean)
        fprintf(stderr, "[session ended: %u turn%s answered%s]\n", c.turns_done,
                c.turns_done == 1 ? "" : "s", c.turns_failed ? ", some not (see above)" : "");
    clear_history(&c);
    pop_message(&c);
    free(c.msgs);
    close(c.sig_fd);
    if (fflush(stdout) != 0)
        rc = EXIT_FAIL;
    return rc;
}
