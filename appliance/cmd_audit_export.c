/* appliance audit export: the trail for the compliance officer, as JSON
 * Lines or CSV. Sealed prompts and outputs are opened only with the
 * officer's reviewer secret key (--reviewer-key), which never needs to live
 * on the device. The export carries the chain head and a checkpoint signed
 * at export time, so the officer can later prove what was exported; the
 * export itself is recorded first (audit_read). */
#include "admin.h"
#include "commands.h"
#include "image.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_USAGE                                                                               \
    "appliance audit export [--format jsonl|csv] [--reviewer-key KEY] [--since T] [--until T]\n"   \
    "       [--kind K] [--request-id ID] [--out FILE] [--home DIR]"

typedef struct export_ctx {
    FILE *out;
    int csv;
    const uint8_t *rpk, *rsk; /* reviewer key pair, or NULL */
    size_t count;
    char err[256];
} export_ctx;

/* The plain text of an entry's "content", when the reviewer key opens it
 * (or it is plaintext); NULL otherwise. */
static char *open_content(const export_ctx *x, json_t *body)
{
    json_t *content = json_object_get(body, "content");
    char *json = content ? json_dumps(content, JSON_COMPACT) : NULL, *text = NULL, err[128];
    size_t len;
    if (json && audit_content_decode(json, strlen(json), x->rpk, x->rsk, &text, &len, err,
                                     sizeof err) != AUDIT_OK)
        text = NULL;
    free(json);
    return text;
}

static void csv_field(FILE *f, const char *s, int last)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputs(last ? "\"\r\n" : "\",", f);
}

static int export_entry(const audit_entry *e, void *ctx)
{
    export_ctx *x = ctx;
    char hash[65], prev[65];
    json_t *rec = json_loadb((const char *)e->record, e->record_len, 0, NULL);
    if (!rec) {
        snprintf(x->err, sizeof x->err, "entry %llu: record is not JSON",
                 (unsigned long long)e->seq);
        return 1;
    }
    char *text = open_content(x, json_object_get(rec, "body"));
    sodium_bin2hex(hash, sizeof hash, e->hash, AUDIT_HASH_LEN);
    sodium_bin2hex(prev, sizeof prev, e->prev_hash, AUDIT_HASH_LEN);
    if (x->csv) {
        char seq[24],
            *body = json_dumps(json_object_get(rec, "body"), JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(seq, sizeof seq, "%llu", (unsigned long long)e->seq);
        const char *f[] = {seq,      e->ts, e->kind,          e->request_id,
                           e->actor, hash,  text ? text : "", body ? body : ""};
        for (int i = 0; i < 8; i++)
            csv_field(x->out, f[i], i == 7);
        free(body);
    } else {
        json_t *line =
            json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:s?}", "seq", (json_int_t)e->seq,
                      "ts", e->ts, "kind", e->kind, "request_id", e->request_id, "actor", e->actor,
                      "hash", hash, "prev_hash", prev, "record", rec, "text", text);
        char *s = line ? json_dumps(line, JSON_COMPACT) : NULL;
        if (s)
            fprintf(x->out, "%s\n", s);
        free(s);
        json_decref(line);
    }
    free(text);
    json_decref(rec);
    x->count++;
    return ferror(x->out) ? (snprintf(x->err, sizeof x->err, "write failed"), 1) : 0;
}

/* The chain head and a checkpoint signed now: what the officer keeps. */
static int export_trailer(admin *a, export_ctx *x, char *err, size_t errlen)
{
    uint64_t n;
    uint8_t head[AUDIT_HASH_LEN];
    char hex[65];
    char *note = device_checkpoint(a->log, a->h.device_key, a->actor, err, errlen);
    int ok = note && audit_head(a->log, &n, head, err, errlen) == AUDIT_OK;
    if (ok) {
        sodium_bin2hex(hex, sizeof hex, head, sizeof head);
        if (x->csv) {
            const char *h[] = {"", "", "export_head", "", "", hex, "", ""};
            const char *c[] = {"", "", "checkpoint", "", "", "", note, ""};
            for (int i = 0; i < 8; i++)
                csv_field(x->out, h[i], i == 7);
            for (int i = 0; i < 8; i++)
                csv_field(x->out, c[i], i == 7);
        } else {
            json_t *t = json_pack("{s:s, s:s, s:I, s:s, s:I}", "type", "export_head", "log_id",
                                  audit_log_id(a->log), "entries", (json_int_t)n, "head", hex,
                                  "exported", (json_int_t)x->count);
            char *s = json_dumps(t, JSON_COMPACT);
            fprintf(x->out, "%s\n", s ? s : "{}");
            free(s);
            json_decref(t);
            t = json_pack("{s:s, s:s}", "type", "checkpoint", "note", note);
            s = json_dumps(t, JSON_COMPACT);
            fprintf(x->out, "%s\n", s ? s : "{}");
            free(s);
            json_decref(t);
        }
    }
    free(note);
    return ok ? 0 : -1;
}

static int run(admin *a, export_ctx *x, const audit_filter *f, const char *path)
{
    char err[512];
    json_t *flt =
        json_pack("{s:s?, s:s?, s:s?, s:s?, s:s}", "since", f->since, "until", f->until, "kind",
                  f->kind, "request_id", f->request_id, "format", x->csv ? "csv" : "jsonl");
    if (admin_audit(a, AUDIT_KIND_AUDIT_READ,
                    json_pack("{s:s, s:o, s:b}", "command", "audit export", "filter", flt,
                              "decrypted", x->rsk != NULL)) != 0)
        return EXIT_FAIL;
    x->out = path ? fopen(path, "w") : stdout;
    if (!x->out) {
        cli_error("audit export", "cannot create %s", path);
        return EXIT_FAIL;
    }
    if (x->csv)
        fputs("seq,ts,kind,request_id,actor,hash,text,body\r\n", x->out);
    int rc = audit_query(a->log, f, export_entry, x, err, sizeof err);
    if (rc != AUDIT_OK || x->err[0])
        cli_error("audit export", "%s", x->err[0] ? x->err : err);
    else if (export_trailer(a, x, err, sizeof err) != 0)
        cli_error("audit export", "cannot sign the export's checkpoint: %s", err);
    else
        rc = 0;
    if (x->out != stdout && fclose(x->out) != 0)
        rc = -1;
    if (rc == 0 && path)
        fprintf(stderr, "exported %zu entries, the chain head and a signed checkpoint to %s\n",
                x->count, path);
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}

int audit_export_cmd(const app_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'}, {"reviewer-key", required_argument, NULL, 'r'},
        {"since", required_argument, NULL, 's'},  {"until", required_argument, NULL, 'u'},
        {"kind", required_argument, NULL, 'k'},   {"request-id", required_argument, NULL, 'q'},
        {"out", required_argument, NULL, 'o'},    {"home", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *format = "jsonl", *rkey = NULL, *path = NULL, *home_flag = NULL;
    audit_filter f = {0};
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'r':
            rkey = optarg;
            break;
        case 's':
            f.since = optarg;
            break;
        case 'u':
            f.until = optarg;
            break;
        case 'k':
            f.kind = optarg;
            break;
        case 'q':
            f.request_id = optarg;
            break;
        case 'o':
            path = optarg;
            break;
        case 'H':
            home_flag = optarg;
            break;
        case 'h':
            printf("usage: %s\n\nExports entries (filtered) as JSON Lines or CSV, then the chain\n"
                   "head and a checkpoint signed now. Sealed prompts and outputs are opened\n"
                   "only with the reviewer's secret key (--reviewer-key, the compliance\n"
                   "officer's); without it they stay sealed. The export is audited first.\n",
                   EXPORT_USAGE);
            return EXIT_OK;
        default:
            return cli_bad_option("audit export", EXPORT_USAGE, argc, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("audit export", EXPORT_USAGE, "unexpected argument '%s'",
                               argv[optind]);
    if (strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0)
        return cli_usage_error("audit export", EXPORT_USAGE, "--format is jsonl or csv");
    export_ctx x = {.csv = strcmp(format, "csv") == 0};
    uint8_t *keys = NULL; /* reviewer secret (32) then public (32), in secret memory */
    char err[512];
    if (rkey) {
        keys = secret_alloc(64, err, sizeof err);
        if (!keys || keys_load_x25519_secret(rkey, keys, err, sizeof err) != 0 ||
            crypto_scalarmult_base(keys + 32, keys) != 0) {
            cli_error("audit export", "%s", err);
            secret_free(keys, 64);
            return EXIT_FAIL;
        }
        x.rsk = keys;
        x.rpk = keys + 32;
    }
    admin a;
    int rc = EXIT_FAIL;
    if (admin_open(ctx, home_flag, "audit export", &a) == 0) {
        rc = run(&a, &x, &f, path);
        admin_close(&a);
    }
    secret_free(keys, 64);
    return rc;
}
