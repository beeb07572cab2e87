/* appliance attest export: the package an external auditor receives, as
 * JSON Lines (attest/PREDICATE.md): the device public key, the chosen
 * attestations from the audit log, and a signed checkpoint of the log that
 * covers them. The export itself is audited (audit_read). */
#include "admin.h"
#include "attest.h"
#include "commands.h"
#include "image.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_USAGE                                                                               \
    "appliance attest export (--request ID | --since TIME) [--out FILE] [--home DIR]"

typedef struct export_state {
    json_t *envelopes; /* array of strings */
    char err[256];
} export_state;

/* Takes the envelope out of an attestation entry's record. */
static int collect(const audit_entry *e, void *ctx)
{
    export_state *st = ctx;
    json_error_t je;
    json_t *rec = json_loadb((const char *)e->record, e->record_len, 0, &je);
    json_t *env = rec ? json_object_get(json_object_get(rec, "body"), "envelope") : NULL;
    int rc = 0;
    if (!json_is_string(env)) {
        snprintf(st->err, sizeof st->err, "audit entry %llu holds no envelope",
                 (unsigned long long)e->seq);
        rc = 1;
    } else
        json_array_append(st->envelopes, env);
    json_decref(rec);
    return rc;
}

static int write_bundle(FILE *out, admin *a, json_t *envelopes, const char *note, char *err,
                        size_t errlen)
{
    uint8_t pk[32];
    char *key_line = NULL, *cp_line = NULL;
    size_t i;
    json_t *v;
    int ok = keys_load_ed25519_public(a->h.device_pub, pk, err, errlen) == 0 &&
             attest_bundle_device_key_line(pk, &key_line, err, errlen) == ATTEST_OK &&
             attest_bundle_checkpoint_line(note, strlen(note), &cp_line, err, errlen) == ATTEST_OK;
    if (ok) {
        fprintf(out, "%s\n", key_line);
        json_array_foreach(envelopes, i, v) fprintf(out, "%s\n", json_string_value(v));
        fprintf(out, "%s\n", cp_line);
        ok = fflush(out) == 0 && !ferror(out);
        if (!ok)
            snprintf(err, errlen, "cannot write the bundle");
    }
    free(key_line);
    free(cp_line);
    return ok ? 0 : -1;
}

static int run_export(admin *a, const char *request, const char *since, const char *path)
{
    export_state st = {.envelopes = json_array()};
    audit_filter f = {.kind = "attestation", .request_id = request, .since = since};
    char err[512];
    int rc = EXIT_FAIL;
    if (audit_query(a->log, &f, collect, &st, err, sizeof err) != AUDIT_OK || st.err[0]) {
        cli_error("attest export", "%s", st.err[0] ? st.err : err);
        goto out;
    }
    if (json_array_size(st.envelopes) == 0) {
        cli_error("attest export", "no attestation matches %s %s", request ? "request" : "since",
                  request ? request : since);
        goto out;
    }
    if (admin_audit(a, AUDIT_KIND_AUDIT_READ,
                    json_pack("{s:s, s:{s:s?, s:s?}, s:I}", "command", "attest export", "filter",
                              "request_id", request, "since", since, "attestations",
                              (json_int_t)json_array_size(st.envelopes))) != 0)
        goto out;
    char *note = device_checkpoint(a->log, a->h.device_key, a->actor, err, sizeof err);
    if (!note) {
        cli_error("attest export", "cannot sign a checkpoint: %s", err);
        goto out;
    }
    FILE *out = path ? fopen(path, "w") : stdout;
    if (!out || write_bundle(out, a, st.envelopes, note, err, sizeof err) != 0)
        cli_error("attest export", "%s", out ? err : "cannot create the output file");
    else
        rc = EXIT_OK;
    if (out && out != stdout && fclose(out) != 0)
        rc = EXIT_FAIL;
    if (rc == EXIT_OK && path)
        fprintf(stderr, "exported %zu attestation(s) with the device key and a checkpoint to %s\n",
                json_array_size(st.envelopes), path);
    free(note);
out:
    json_decref(st.envelopes);
    return rc;
}

int attest_export_cmd(const app_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"request", required_argument, NULL, 'r'}, {"since", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},     {"home", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *request = NULL, *since = NULL, *path = NULL, *home_flag = NULL;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            request = optarg;
            break;
        case 's':
            since = optarg;
            break;
        case 'o':
            path = optarg;
            break;
        case 'H':
            home_flag = optarg;
            break;
        case 'h':
            printf("usage: %s\n\nWrites, as JSON Lines, the device public key, the attestations\n"
                   "of one request (or of every request since TIME, an RFC 3339 prefix such\n"
                   "as 2026-11-25) from the audit log, and a checkpoint of the log signed now\n"
                   "that covers them: what an external auditor verifies with\n"
                   "'appliance attest verify BUNDLE --pubkey device.pub.pem'.\n",
                   EXPORT_USAGE);
            return EXIT_OK;
        default:
            return cli_bad_option("attest export", EXPORT_USAGE, argc, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("attest export", EXPORT_USAGE, "unexpected argument '%s'",
                               argv[optind]);
    if (!request == !since)
        return cli_usage_error("attest export", EXPORT_USAGE, "give --request ID or --since TIME");
    admin a;
    if (admin_open(ctx, home_flag, "attest export", &a) != 0)
        return EXIT_FAIL;
    int rc = run_export(&a, request, since, path);
    admin_close(&a);
    return rc;
}
