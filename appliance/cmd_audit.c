/* appliance audit verify|show|prove|check-proof|checkpoint|bench: the audit
 * log from the command line. Library work lives in audit/; this file parses
 * flags, loads key files and prints. */
#include "audit.h"
#include "commands.h"
#include "home.h"
#include "image.h"

#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <pwd.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AUDIT_USAGE                                                                                \
    "appliance audit verify|show|prove|check-proof|checkpoint|bench [OPTIONS] (see --help)"
#define VERIFY_USAGE                                                                               \
    "appliance audit verify [--home DIR | --db DB] [--checkpoint FILE] [--pubkey PEM] [--json]"
#define SHOW_USAGE                                                                                 \
    "appliance audit show [--home DIR | --db DB] [--since TIME] [--until TIME] [--kind KIND] "     \
    "[--actor NAME]\n"                                                                             \
    "       [--request-id ID] [--from SEQ] [--to SEQ] [--json]"
#define PROVE_USAGE                                                                                \
    "appliance audit prove [--home DIR | --db DB] (--seq N | --from-checkpoint OLD) "              \
    "[--checkpoint FILE]"
#define CHECKPROOF_USAGE "appliance audit check-proof --proof FILE [--pubkey PEM]"
#define CHECKPOINT_USAGE "appliance audit checkpoint [--home DIR | --db DB] [--key DEVICE_KEY_PEM]"
#define BENCH_USAGE      "appliance audit bench [--count N] [--dir DIR]"

/* Flags shared by the subcommands; each uses the ones its usage names. */
typedef struct audit_args {
    const char *home, *db, *checkpoint, *pubkey, *key, *proof, *dir, *from_checkpoint;
    audit_filter filter;
    uint64_t seq;
    long count;
    int json;
} audit_args;

enum {
    OPT_DB = 1000,
    OPT_CHECKPOINT,
    OPT_PUBKEY,
    OPT_KEY,
    OPT_PROOF,
    OPT_DIR,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_KIND,
    OPT_ACTOR,
    OPT_REQUEST,
    OPT_FROM,
    OPT_TO,
    OPT_SEQ,
    OPT_COUNT,
    OPT_JSON,
    OPT_FROM_CHECKPOINT,
    OPT_HOME,
};

/* Parses argv with the options whose ids appear in `allowed` (0-terminated).
 * Returns -1 when help was printed, EXIT_USAGE on a bad command line. */
static int parse_args(const char *sub, const char *usage, const char *help, const int *allowed,
                      int argc, char **argv, audit_args *a)
{
    static const struct option all[] = {
        {"help", no_argument, NULL, 'h'},
        {"db", required_argument, NULL, OPT_DB},
        {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
        {"pubkey", required_argument, NULL, OPT_PUBKEY},
        {"key", required_argument, NULL, OPT_KEY},
        {"proof", required_argument, NULL, OPT_PROOF},
        {"dir", required_argument, NULL, OPT_DIR},
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"kind", required_argument, NULL, OPT_KIND},
        {"actor", required_argument, NULL, OPT_ACTOR},
        {"request-id", required_argument, NULL, OPT_REQUEST},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"seq", required_argument, NULL, OPT_SEQ},
        {"count", required_argument, NULL, OPT_COUNT},
        {"json", no_argument, NULL, OPT_JSON},
        {"from-checkpoint", required_argument, NULL, OPT_FROM_CHECKPOINT},
        {"home", required_argument, NULL, OPT_HOME},
        {NULL, 0, NULL, 0},
    };
    char cmd[64];
    int c;
    snprintf(cmd, sizeof cmd, "audit %s", sub);
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", all, NULL)) != -1) {
        if (c == 'h') {
            printf("usage: %s\n%s", usage, help);
            return -1;
        }
        if (c == OPT_HOME) { /* every subcommand finds the home the same way */
            a->home = optarg;
            continue;
        }
        int ok = 0;
        for (const int *p = allowed; *p; p++)
            ok |= *p == c;
        if (!ok)
            return cli_bad_option(cmd, usage, argc, argv);
        uint64_t n = 0;
        switch (c) {
        case OPT_DB:
            a->db = optarg;
            break;
        case OPT_CHECKPOINT:
            a->checkpoint = optarg;
            break;
        case OPT_PUBKEY:
            a->pubkey = optarg;
            break;
        case OPT_KEY:
            a->key = optarg;
            break;
        case OPT_PROOF:
            a->proof = optarg;
            break;
        case OPT_FROM_CHECKPOINT:
            a->from_checkpoint = optarg;
            break;
        case OPT_DIR:
            a->dir = optarg;
            break;
        case OPT_SINCE:
            a->filter.since = optarg;
            break;
        case OPT_UNTIL:
            a->filter.until = optarg;
            break;
        case OPT_KIND: {
            audit_kind k;
            if (audit_kind_from_name(optarg, &k) != AUDIT_OK)
                return cli_usage_error(cmd, usage, "unknown kind '%s'", optarg);
            a->filter.kind = optarg;
            break;
        }
        case OPT_ACTOR:
            a->filter.actor = optarg;
            break;
        case OPT_REQUEST:
            a->filter.request_id = optarg;
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_FROM:
        case OPT_TO:
        case OPT_SEQ:
        case OPT_COUNT:
            if (cli_parse_u64(optarg, INT64_MAX, &n) != 0 || n == 0)
                return cli_usage_error(cmd, usage, "'%s' is not a positive number", optarg);
            if (c == OPT_FROM)
                a->filter.seq_min = n;
            else if (c == OPT_TO)
                a->filter.seq_max = n;
            else if (c == OPT_SEQ)
                a->seq = n;
            else
                a->count = (long)n;
            break;
        }
    }
    if (optind < argc)
        return cli_usage_error(cmd, usage, "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* --db, else the appliance home's audit database (home.h). */
static int resolve_db(const app_ctx *ctx, const audit_args *a, char *buf, size_t cap)
{
    char dir[HOME_PATH_CAP], err[256];
    home h;
    if (a->db) {
        snprintf(buf, cap, "%s", a->db);
        return 0;
    }
    if (cli_resolve_home(ctx, a->home, dir, sizeof dir) != 0 ||
        home_layout(dir, &h, err, sizeof err) != 0)
        return -1;
    return (size_t)snprintf(buf, cap, "%s", h.audit_db) < cap ? 0 : -1;
}

/* --key, else the appliance home's device key. */
static int resolve_device_key(const app_ctx *ctx, const audit_args *a, char *buf, size_t cap)
{
    char dir[HOME_PATH_CAP], err[256];
    home h;
    if (a->key) {
        snprintf(buf, cap, "%s", a->key);
        return 0;
    }
    if (cli_resolve_home(ctx, a->home, dir, sizeof dir) != 0 ||
        home_layout(dir, &h, err, sizeof err) != 0 || !home_is_initialised(&h))
        return -1;
    return (size_t)snprintf(buf, cap, "%s", h.device_key) < cap ? 0 : -1;
}

/* Checkpoints and proofs are small text files; the callers say which one
 * could not be read. */
static char *read_file(const char *path, size_t *len)
{
    size_t n;
    char err[8];
    char *buf = cli_read_file(path, 16u << 20, &n, err, sizeof err);
    if (buf && len)
        *len = n;
    return buf;
}

/* An Ed25519 key file: the secret one as libsodium's 64 bytes, the public
 * one as 32 (either may be a private key's file: its public half is used). */
static int load_ed25519_pem(const char *path, int secret, uint8_t out[64], char *err, size_t errlen)
{
    return secret ? keys_load_ed25519_secret(path, out, err, errlen)
                  : keys_load_ed25519_public(path, out, err, errlen);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void print_verify_json(const char *db, const audit_log *log, const audit_verify_result *r)
{
    char head[65];
    hex(r->head, 32, head);
    json_t *inc = json_array();
    for (size_t i = 0; i < r->n_incomplete; i++)
        json_array_append_new(inc, json_string(r->incomplete[i]));
    json_t *o =
        json_pack("{s:s, s:s, s:b, s:I, s:s, s:I, s:o, s:o, s:o, s:o, s:b}", "db", db, "log_id",
                  audit_log_id(log), "ok", r->ok, "entries", (json_int_t)r->entries, "head", head,
                  "checkpoints", (json_int_t)r->checkpoints, "failure",
                  r->ok ? json_null() : json_string(audit_failure_code(r->failure)),
                  "first_bad_seq", r->ok ? json_null() : json_integer((json_int_t)r->first_bad_seq),
                  "reason", r->ok ? json_null() : json_string(r->reason), "incomplete", inc,
                  "triggers_missing", r->triggers_missing);
    char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(o);
}

static void print_verify_text(const char *db, const audit_verify_result *r, const audit_args *a)
{
    char head[65];
    hex(r->head, 32, head);
    if (r->ok) {
        printf("audit log %s: OK, %llu entries, %llu checkpoints verified, head %s\n", db,
               (unsigned long long)r->entries, (unsigned long long)r->checkpoints, head);
        if (a->checkpoint)
            printf("checkpoint %s: the log extends it; signature checked with %s\n", a->checkpoint,
                   r->checkpoint_key_from_log ? "the key recorded in the log (pass --pubkey to pin "
                                                "the device key)"
                                              : "the given key");
    } else {
        printf("audit log %s: FAILED at entry %llu: %s: %s\n", db,
               (unsigned long long)r->first_bad_seq, audit_failure_code(r->failure), r->reason);
    }
    for (size_t i = 0; i < r->n_incomplete; i++)
        printf("incomplete: request %s has a prompt but no output\n", r->incomplete[i]);
    if (r->triggers_missing)
        printf("warning: the append-only triggers have been dropped\n");
}

static int open_log(const char *cmd, const char *db, int read_only, audit_log **log)
{
    char err[256];
    audit_open_opts o = {.read_only = read_only};
    if (audit_open(log, db, &o, err, sizeof err) != AUDIT_OK) {
        cli_error(cmd, "%s", err);
        return -1;
    }
    return 0;
}

static int audit_verify_cmd(const app_ctx *ctx, int argc, char **argv)
{
    static const int allowed[] = {OPT_DB, OPT_CHECKPOINT, OPT_PUBKEY, OPT_JSON, 0};
    audit_args a = {0};
    int rc = parse_args("verify", VERIFY_USAGE,
                        "Re-verifies the whole hash chain, every in-log checkpoint and, with\n"
                        "--checkpoint, that the log still extends a checkpoint you kept (its\n"
                        "signature checked with --pubkey, else with the key the log records).\n"
                        "Exit 0 when everything verifies (incomplete requests are listed),\n"
                        "1 on the first failure (entry number and reason), 2 on usage errors.\n",
                        allowed, argc, argv, &a);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    char db[4200], err[256];
    uint8_t pk[64];
    if (resolve_db(ctx, &a, db, sizeof db) != 0)
        return cli_usage_error("audit verify", VERIFY_USAGE, "no --db and no appliance home");
    if (a.pubkey && load_ed25519_pem(a.pubkey, 0, pk, err, sizeof err) != 0) {
        cli_error("audit verify", "%s", err);
        return EXIT_FAIL;
    }
    size_t cplen = 0;
    char *cp = a.checkpoint ? read_file(a.checkpoint, &cplen) : NULL;
    if (a.checkpoint && !cp) {
        cli_error("audit verify", "cannot read checkpoint %s", a.checkpoint);
        return EXIT_FAIL;
    }
    audit_log *log = NULL;
    if (open_log("audit verify", db, 1, &log) != 0) {
        free(cp);
        return EXIT_FAIL;
    }
    audit_verify_opts o = {cp, cplen, a.pubkey ? pk : NULL};
    audit_verify_result r;
    rc = audit_verify(log, &o, &r, err, sizeof err);
    if (rc != AUDIT_OK) {
        cli_error("audit verify", "%s", err);
    } else {
        if (a.json)
            print_verify_json(db, log, &r);
        else
            print_verify_text(db, &r, &a);
        rc = r.ok ? 0 : 1;
        audit_verify_result_free(&r);
    }
    audit_close(log);
    free(cp);
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}

/* Who is reading: the local user name (the CLI has no other identity yet). */
/* Reading the trail is itself recorded, before anything is shown. */
static int record_read(audit_log *log, const audit_filter *f, char *err, size_t errlen)
{
    char actor[128];
    cli_actor(actor, sizeof actor);
    json_t *flt = json_object();
    if (f->since)
        json_object_set_new(flt, "since", json_string(f->since));
    if (f->until)
        json_object_set_new(flt, "until", json_string(f->until));
    if (f->kind)
        json_object_set_new(flt, "kind", json_string(f->kind));
    if (f->actor)
        json_object_set_new(flt, "actor", json_string(f->actor));
    if (f->request_id)
        json_object_set_new(flt, "request_id", json_string(f->request_id));
    if (f->seq_min)
        json_object_set_new(flt, "from", json_integer((json_int_t)f->seq_min));
    if (f->seq_max)
        json_object_set_new(flt, "to", json_integer((json_int_t)f->seq_max));
    json_t *body = json_pack("{s:s, s:o}", "command", "show", "filter", flt);
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s)
        return AUDIT_E_NOMEM;
    int rc =
        audit_append(log, AUDIT_KIND_AUDIT_READ, "", actor, s, strlen(s), NULL, NULL, err, errlen);
    free(s);
    return rc;
}

static int show_row(const audit_entry *e, void *ctx)
{
    const audit_args *a = ctx;
    if (a->json) {
        printf("%.*s\n", (int)e->record_len, (const char *)e->record);
        return 0;
    }
    /* The body, shortened to keep one line per entry. */
    json_t *rec = json_loadb((const char *)e->record, e->record_len, 0, NULL);
    char *body =
        rec ? json_dumps(json_object_get(rec, "body"), JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(rec);
    int blen = body ? (int)strlen(body) : 0;
    printf("%6llu  %s  %-17s %-20s %-14s %.*s%s\n", (unsigned long long)e->seq, e->ts, e->kind,
           e->actor, *e->request_id ? e->request_id : "-", blen > 60 ? 57 : blen, body ? body : "?",
           blen > 60 ? "..." : "");
    free(body);
    return 0;
}

static int audit_show_cmd(const app_ctx *ctx, int argc, char **argv)
{
    static const int allowed[] = {OPT_DB,      OPT_SINCE, OPT_UNTIL, OPT_KIND, OPT_ACTOR,
                                  OPT_REQUEST, OPT_FROM,  OPT_TO,    OPT_JSON, 0};
    audit_args a = {0};
    int rc = parse_args("show", SHOW_USAGE,
                        "Prints entries as a table (or their records as JSON lines with --json),\n"
                        "filtered by time range (RFC 3339 prefixes: --since 2026-11-25), kind,\n"
                        "actor, request id or sequence range. Sealed content stays sealed.\n"
                        "Reading is itself recorded first as an audit_read entry; if that\n"
                        "cannot be written, nothing is shown.\n",
                        allowed, argc, argv, &a);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    char db[4200], err[256];
    if (resolve_db(ctx, &a, db, sizeof db) != 0)
        return cli_usage_error("audit show", SHOW_USAGE, "no --db and no appliance home");
    audit_log *log = NULL;
    if (open_log("audit show", db, 0, &log) != 0)
        return EXIT_FAIL;
    rc = record_read(log, &a.filter, err, sizeof err);
    if (rc != AUDIT_OK) {
        cli_error("audit show", "refusing to show: cannot record the read: %s", err);
        audit_close(log);
        return EXIT_FAIL;
    }
    if (!a.json)
        printf("%6s  %-24s  %-17s %-20s %-14s %s\n", "seq", "time (UTC)", "kind", "actor",
               "request", "body");
    rc = audit_query(log, &a.filter, show_row, &a, err, sizeof err);
    if (rc != AUDIT_OK)
        cli_error("audit show", "%s", err);
    audit_close(log);
    return rc == AUDIT_OK ? EXIT_OK : EXIT_FAIL;
}

/* Keeps the note of the last checkpoint entry that covers `want` entries. */
typedef struct latest_cp {
    uint64_t want;
    char *note;
} latest_cp;

static int keep_checkpoint(const audit_entry *e, void *ctx)
{
    latest_cp *l = ctx;
    json_t *rec = json_loadb((const char *)e->record, e->record_len, 0, NULL);
    json_t *body = json_object_get(rec, "body");
    const char *note = json_string_value(json_object_get(body, "checkpoint"));
    json_int_t size = json_integer_value(json_object_get(body, "tree_size"));
    if (note && size >= 0 && (uint64_t)size >= l->want) {
        free(l->note);
        l->note = strdup(note);
    }
    json_decref(rec);
    return 0;
}

/* The proof itself, once the log is open: consistency or inclusion. */
/* The proof itself, once the log is open: consistency or inclusion. `cp`
 * is the --checkpoint note or NULL (caller-owned). */
static int print_proof(audit_log *log, const audit_args *a, const char *cp, char *err,
                       size_t errlen)
{
    char *proof = NULL, *found = NULL;
    int rc;
    if (a->from_checkpoint) {
        char *old = read_file(a->from_checkpoint, NULL);
        if (!old) {
            snprintf(err, errlen, "cannot read checkpoint %s", a->from_checkpoint);
            return AUDIT_E_IO;
        }
        rc = audit_prove_consistency(log, old, cp, &proof, err, errlen);
        free(old);
    } else {
        if (!cp) {
            latest_cp l = {a->seq, NULL};
            audit_filter f = {.kind = "checkpoint"};
            if (audit_query(log, &f, keep_checkpoint, &l, err, errlen) == AUDIT_OK)
                cp = found = l.note;
            else
                free(l.note);
        }
        rc = audit_prove(log, a->seq, 0, cp, &proof, err, errlen);
    }
    if (rc == AUDIT_OK)
        printf("%s\n", proof);
    free(proof);
    free(found);
    return rc;
}

static int audit_prove_cmd(const app_ctx *ctx, int argc, char **argv)
{
    static const int allowed[] = {OPT_DB, OPT_SEQ, OPT_CHECKPOINT, OPT_FROM_CHECKPOINT, 0};
    audit_args a = {0};
    int rc = parse_args(
        "prove", PROVE_USAGE,
        "With --seq: an RFC 6962 inclusion proof (JSON, audit/FORMAT.md section 7) that\n"
        "entry N is in the log, against the tree of --checkpoint when given, else of the\n"
        "latest checkpoint stored in the log that covers N (either is embedded), else of\n"
        "the whole current log (unsigned).\n"
        "With --from-checkpoint: a consistency proof that the tree of --checkpoint (else\n"
        "the whole current log) extends the older checkpoint: nothing before it changed.\n"
        "Check either without the log with 'appliance audit check-proof'.\n",
        allowed, argc, argv, &a);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (!a.seq == !a.from_checkpoint)
        return cli_usage_error("audit prove", PROVE_USAGE,
                               "give exactly one of --seq and --from-checkpoint");
    char db[4200], err[256];
    if (resolve_db(ctx, &a, db, sizeof db) != 0)
        return cli_usage_error("audit prove", PROVE_USAGE, "no --db and no appliance home");
    char *cp = a.checkpoint ? read_file(a.checkpoint, NULL) : NULL;
    if (a.checkpoint && !cp) {
        cli_error("audit prove", "cannot read checkpoint %s", a.checkpoint);
        return EXIT_FAIL;
    }
    audit_log *log = NULL;
    if (open_log("audit prove", db, 1, &log) != 0) {
        free(cp);
        return EXIT_FAIL;
    }
    rc = print_proof(log, &a, cp, err, sizeof err);
    if (rc != AUDIT_OK)
        cli_error("audit prove", "%s", err);
    free(cp);
    audit_close(log);
    return rc == AUDIT_OK ? EXIT_OK : EXIT_FAIL;
}

static int audit_check_proof_cmd(const app_ctx *ctx, int argc, char **argv)
{
    static const int allowed[] = {OPT_PROOF, OPT_PUBKEY, 0};
    audit_args a = {0};
    (void)ctx;
    int rc = parse_args("check-proof", CHECKPROOF_USAGE,
                        "Checks a proof from 'appliance audit prove' on its own. Inclusion: the\n"
                        "entry hash from its record, the audit path to the root, and the embedded\n"
                        "checkpoint. Consistency: the path between the two trees and both\n"
                        "checkpoints. Signatures are checked with --pubkey.\n",
                        allowed, argc, argv, &a);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (!a.proof)
        return cli_usage_error("audit check-proof", CHECKPROOF_USAGE, "--proof is required");
    char err[256];
    uint8_t pk[64];
    if (a.pubkey && load_ed25519_pem(a.pubkey, 0, pk, err, sizeof err) != 0) {
        cli_error("audit check-proof", "%s", err);
        return EXIT_FAIL;
    }
    size_t len;
    char *doc = read_file(a.proof, &len);
    if (!doc) {
        cli_error("audit check-proof", "cannot read %s", a.proof);
        return EXIT_FAIL;
    }
    rc = audit_proof_verify(doc, len, a.pubkey ? pk : NULL, err, sizeof err);
    free(doc);
    if (rc != AUDIT_OK) {
        printf("proof %s: FAILED: %s\n", a.proof, err);
        return EXIT_FAIL;
    }
    printf("proof %s: OK%s\n", a.proof,
           a.pubkey ? ", checkpoint signed by the given key"
                    : " (no key given: signature unchecked)");
    return EXIT_OK;
}

static int audit_checkpoint_cmd(const app_ctx *ctx, int argc, char **argv)
{
    static const int allowed[] = {OPT_DB, OPT_KEY, 0};
    audit_args a = {0};
    int rc = parse_args("checkpoint", CHECKPOINT_USAGE,
                        "Signs a checkpoint (C2SP signed note) over every entry now with the\n"
                        "device Ed25519 key, stores it in the log and prints it. Keep it: a\n"
                        "later 'audit verify --checkpoint' detects truncation and rollback.\n",
                        allowed, argc, argv, &a);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    char db[4200], err[256], key[4200];
    if (resolve_device_key(ctx, &a, key, sizeof key) != 0)
        return cli_usage_error("audit checkpoint", CHECKPOINT_USAGE,
                               "no --key and no initialised appliance home");
    if (resolve_db(ctx, &a, db, sizeof db) != 0)
        return cli_usage_error("audit checkpoint", CHECKPOINT_USAGE,
                               "no --db and no appliance home");
    uint8_t *sk = sodium_init() >= 0 ? sodium_malloc(64) : NULL;
    if (!sk || load_ed25519_pem(key, 1, sk, err, sizeof err) != 0) {
        cli_error("audit checkpoint", "%s", sk ? err : "out of secure memory");
        sodium_free(sk);
        return EXIT_FAIL;
    }
    audit_log *log = NULL;
    if (open_log("audit checkpoint", db, 0, &log) != 0) {
        sodium_free(sk);
        return EXIT_FAIL;
    }
    char *note = NULL, actor[128];
    uint64_t seq;
    cli_actor(actor, sizeof actor);
    rc = audit_checkpoint_create(log, sk, actor, &note, &seq, err, sizeof err);
    sodium_free(sk);
    audit_close(log);
    if (rc != AUDIT_OK) {
        cli_error("audit checkpoint", "%s", err);
        return EXIT_FAIL;
    }
    fputs(note, stdout);
    free(note);
    return EXIT_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char bench_body[] = "{\"model\":\"sha256:0123456789abcdef0123456789abcdef\","
                                 "\"policy\":\"sha256:fedcba9876543210\",\"seed\":42,"
                                 "\"params\":{\"temperature_milli\":700,\"top_k\":40},"
                                 "\"content\":{\"mode\":\"digest\",\"digest\":\"00\"}}";

static audit_append_req bench_req(long i)
{
    return (audit_append_req){i % 2 ? AUDIT_KIND_OUTPUT : AUDIT_KIND_PROMPT, "bench", "bench",
                              bench_body, sizeof bench_body - 1};
}

/* One append, one transaction, one fsync: the latency a lone caller sees. */
static int bench_single(audit_log *log, long count, char *err, size_t errlen)
{
    int rc = AUDIT_OK;
    for (long i = 0; rc == AUDIT_OK && i < count; i++) {
        audit_append_req r = bench_req(i);
        rc = audit_append(log, r.kind, r.request_id, r.actor, r.body_json, r.body_len, NULL, NULL,
                          err, errlen);
    }
    return rc;
}

/* Batches of 16 entries per transaction (audit_append_batch). */
static int bench_batch(audit_log *log, long count, char *err, size_t errlen)
{
    audit_append_req batch[16];
    for (int i = 0; i < 16; i++)
        batch[i] = bench_req(i);
    int rc = AUDIT_OK;
    for (long i = 0; rc == AUDIT_OK && i < count; i += 16)
        rc = audit_append_batch(log, batch, 16, NULL, err, errlen);
    return rc;
}

typedef struct bench_thread {
    audit_writer *w;
    long count;
    int rc;
} bench_thread;

static void *bench_thread_main(void *arg)
{
    bench_thread *t = arg;
    char err[256];
    for (long i = 0; t->rc == AUDIT_OK && i < t->count; i++) {
        audit_append_req r = bench_req(i);
        t->rc = audit_writer_append(t->w, &r, NULL, NULL, err, sizeof err);
    }
    return NULL;
}

/* 16 threads appending one entry at a time through one group-commit writer. */
static int bench_threads(const char *db, long count, char *err, size_t errlen)
{
    enum { THREADS = 16 };
    audit_writer *w = NULL;
    int rc = audit_writer_open(&w, db, NULL, err, errlen);
    bench_thread t[THREADS];
    pthread_t th[THREADS];
    int started = 0;
    for (; rc == AUDIT_OK && started < THREADS; started++) {
        t[started] = (bench_thread){w, (count + THREADS - 1) / THREADS, AUDIT_OK};
        if (pthread_create(&th[started], NULL, bench_thread_main, &t[started]) != 0)
            rc = AUDIT_E_NOMEM;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (rc == AUDIT_OK && t[i].rc != AUDIT_OK)
            rc = t[i].rc;
    }
    if (rc != AUDIT_OK && !*err)
        snprintf(err, errlen, "a bench thread failed");
    audit_writer_close(w);
    return rc;
}

static void remove_bench_dir(const char *dir)
{
    static const char *const files[] = {"audit.db", "audit.db-wal", "audit.db-shm"};
    char path[8500];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);
    }
    rmdir(dir);
}

/* Durable appends per second on a fresh log in --dir (default $TMPDIR). */
static int audit_bench_cmd(const app_ctx *ctx, int argc, char **argv)
{
    static const int allowed[] = {OPT_COUNT, OPT_DIR, 0};
    audit_args a = {.count = 2000};
    (void)ctx;
    int rc = parse_args("bench", BENCH_USAGE,
                        "Measures durable appends per second (WAL, synchronous=FULL) on a fresh\n"
                        "log in DIR (default $TMPDIR or /tmp), then deletes it: one caller with\n"
                        "one transaction and fsync per append, batches of 16 per transaction,\n"
                        "and 16 threads through one group-commit writer; then full-verify speed.\n",
                        allowed, argc, argv, &a);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    const char *base = a.dir ? a.dir : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[4096], db[4200], err[256] = "";
    snprintf(dir, sizeof dir, "%s/appliance-audit-bench-XXXXXX", base);
    if (!mkdtemp(dir)) {
        cli_error("audit bench", "cannot create a directory under %s", base);
        return EXIT_FAIL;
    }
    snprintf(db, sizeof db, "%s/audit.db", dir);
    audit_log *log = NULL;
    audit_open_opts o = {.create = 1};
    double t[5] = {now_seconds()};
    rc = audit_open(&log, db, &o, err, sizeof err);
    if (rc == AUDIT_OK)
        rc = bench_single(log, a.count, err, sizeof err);
    t[1] = now_seconds();
    if (rc == AUDIT_OK)
        rc = bench_batch(log, a.count, err, sizeof err);
    t[2] = now_seconds();
    if (rc == AUDIT_OK)
        rc = bench_threads(db, a.count, err, sizeof err);
    t[3] = now_seconds();
    audit_verify_result r = {0};
    if (rc == AUDIT_OK)
        rc = audit_verify(log, NULL, &r, err, sizeof err);
    t[4] = now_seconds();
    audit_close(log);
    remove_bench_dir(dir);
    if (rc != AUDIT_OK || !r.ok) {
        cli_error("audit bench", "%s", rc != AUDIT_OK ? err : "the bench log did not verify");
        audit_verify_result_free(&r);
        return EXIT_FAIL;
    }
    audit_verify_result_free(&r);
    long batched = (a.count + 15) / 16 * 16, threaded = (a.count + 15) / 16 * 16;
    printf("audit bench: one caller, one fsync per append: %.0f appends/s (%.2f ms each)\n",
           (double)a.count / (t[1] - t[0]), (t[1] - t[0]) * 1e3 / (double)a.count);
    printf("audit bench: batches of 16 per transaction:    %.0f appends/s\n",
           (double)batched / (t[2] - t[1]));
    printf("audit bench: 16 threads, group-commit writer:   %.0f appends/s\n",
           (double)threaded / (t[3] - t[2]));
    printf("audit bench: full verify: %.0f entries/s (%llu entries)\n",
           (double)r.entries / (t[4] - t[3]), (unsigned long long)r.entries);
    return EXIT_OK;
}

typedef struct audit_sub {
    const char *name;
    int (*run)(const app_ctx *ctx, int argc, char **argv);
    const char *summary;
} audit_sub;

static const audit_sub subs[] = {
    {"verify", audit_verify_cmd, "re-verify the chain (and a kept checkpoint)"},
    {"show", audit_show_cmd, "print entries, filtered (recorded as audit_read)"},
    {"export", audit_export_cmd, "export entries as JSON Lines or CSV for the officer"},
    {"prove", audit_prove_cmd, "print an inclusion proof for one entry"},
    {"check-proof", audit_check_proof_cmd, "check an inclusion proof without the log"},
    {"checkpoint", audit_checkpoint_cmd, "sign, store and print a checkpoint now"},
    {"bench", audit_bench_cmd, "measure durable appends per second"},
};

int cmd_audit(const app_ctx *ctx, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("audit", AUDIT_USAGE, "no audit command given");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("usage: %s\nThe hash-chained audit log (format: audit/FORMAT.md).\n\n", AUDIT_USAGE);
        for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
            printf("  %-12s %s\n", subs[i].name, subs[i].summary);
        printf("\nWithout --db the log is <home>/audit/audit.db.\n");
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].run(ctx, argc - 1, argv + 1);
    return cli_usage_error("audit", AUDIT_USAGE, "unknown audit command '%s'", argv[1]);
}
