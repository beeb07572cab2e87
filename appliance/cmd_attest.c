/* appliance attest: check attestations offline (verify). The export and
 * replay subcommands join this file when the generation path exists. */
#include "attest.h"
#include "audit.h"
#include "commands.h"
#include "image.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ATTEST_USAGE                                                                               \
    "appliance attest verify FILE --pubkey PEM [options] | replay FILE [options] | export "        \
    "[options]"
#define VERIFY_USAGE                                                                               \
    "appliance attest verify FILE --pubkey PEM [--prompt-file F --salt HEX] [--output-file F] "    \
    "[--json]"

/* Files the verifier reads whole; a bundle of many attestations stays far
 * below this. */
#define VERIFY_MAX_FILE (256u << 20)

static void attest_help(void)
{
    printf("usage: %s\n\n"
           "Subcommands:\n"
           "  verify   check a DSSE attestation, or every line of an exported bundle,\n"
           "           with the device's public key alone (no appliance home needed)\n"
           "  replay   rerun an attested generation in the sandbox and confirm the\n"
           "           output digest bit for bit\n"
           "  export   write attestations from the audit log, with the device key and\n"
           "           a signed checkpoint, as the bundle an auditor receives\n\n"
           "See 'appliance attest verify --help', 'appliance attest replay --help' and\n"
           "attest/PREDICATE.md.\n",
           ATTEST_USAGE);
}

static void verify_help(void)
{
    printf("usage: %s\n\n"
           "Checks FILE, one DSSE envelope or a JSON Lines bundle (attest/PREDICATE.md),\n"
           "against the device public key PEM: the Ed25519 signature over the DSSE PAE,\n"
           "the in-toto statement, the predicate type and version, and every predicate\n"
           "field. The envelope's keyid is not signed (DSSE), so it only reports\n"
           "whether it names the key; a signature by another key always fails.\n\n"
           "  --pubkey PEM       the device public key (device.pub.pem) you trust\n"
           "  --output-file F    check that F's exact bytes are the attested output\n"
           "  --prompt-file F    with --salt, check that SHA-256(salt || F's bytes) is the\n"
           "  --salt HEX         prompt commitment (the salt is in the audit export)\n"
           "  --json             print a result object on stdout\n\n"
           "The evidence options need a FILE holding exactly one attestation.\n"
           "Exit status: 0 when everything given checks out, 1 when something does not\n"
           "(one line names it), 2 for a wrong command line.\n",
           VERIFY_USAGE);
}

/* Reads a whole regular file (at most max bytes) into a malloc'd buffer. */
static int read_whole_file(const char *path, size_t max, char **out, size_t *out_len, char *err,
                           size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    *out = NULL;
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        snprintf(err, errlen, "%s is not a regular file of at most %zu bytes", path, max);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory reading %s", path);
        fclose(f);
        return -1;
    }
    size_t n = fread(buf, 1, size, f);
    int failed = ferror(f) || n != size;
    fclose(f);
    if (failed) {
        snprintf(err, errlen, "cannot read %s", path);
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

typedef struct verify_args {
    const char *file, *pubkey, *prompt_file, *salt_hex, *output_file;
    int json;
} verify_args;

/* What the record callback gathers: text lines for a success, or JSON. */
typedef struct verify_report {
    const verify_args *args;
    FILE *text;
    json_t *records;
} verify_report;

static json_t *verified_json(const attest_verified *v)
{
    const attest_sampling *s = &v->sampling;
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    return json_pack(
        "{s:s, s:b, s:s, s:s, s:b, s:b, s:{s:s, s:s, s:s}, s:{s:f, s:i, s:f, s:f, s:f, s:i, "
        "s:s, s:I}, s:I, s:I, s:s, s:{s:s, s:I, s:s, s:I, s:s}, s:s, s:{s:b, s:i, s:b, s:b, "
        "s:i, s:b}, s:{s:s, s:s, s:s}, s:s, s:s}",
        "keyid", v->keyid, "keyidMatches", v->keyid_matches, "outputSha256", v->output_sha256,
        "promptCommitment", v->prompt_commitment, "outputChecked", v->output_checked,
        "promptChecked", v->prompt_checked, "model", "name", v->model_name, "sha256",
        v->model_digest, "signer", v->model_signer, "sampling", "temperature",
        attest_float_decimal(s->temperature), "topK", (int)s->top_k, "topP",
        attest_float_decimal(s->top_p), "minP", attest_float_decimal(s->min_p), "repeatPenalty",
        attest_float_decimal(s->repeat_penalty), "repeatLastN", (int)s->repeat_last_n, "seed", seed,
        "maxTokens", (json_int_t)s->max_tokens, "promptTokens", (json_int_t)v->prompt_tokens,
        "outputTokens", (json_int_t)v->output_tokens, "finishReason", v->finish_reason, "audit",
        "logId", v->audit_log_id, "promptSeq", (json_int_t)v->prompt_entry.seq,
        "promptEntrySha3_256", v->prompt_entry.hash, "outputSeq", (json_int_t)v->output_entry.seq,
        "outputEntrySha3_256", v->output_entry.hash, "policySha256", v->policy_digest, "sandbox",
        "required", v->sandbox_required, "seccompMode", v->sandbox.seccomp_mode, "noNewPrivs",
        v->sandbox.no_new_privs, "networkNamespace", v->sandbox.net_namespace, "landlockAbi",
        v->sandbox.landlock_abi, "landlockEnforced", v->sandbox.landlock_enforced, "engine",
        "version", v->engine_version, "buildId", v->build_id, "kernels", v->kernels, "startedOn",
        v->started, "finishedOn", v->finished);
}

static void print_verified_text(FILE *out, size_t line, const attest_verified *v)
{
    fprintf(out, "attestation (line %zu): signature ok%s\n", line,
            v->keyid_matches ? "" : " (its keyid does not name this key; DSSE keyids are hints)");
    fprintf(out, "  output sha256 %s%s\n", v->output_sha256,
            v->output_checked ? " (matches the output file)" : "");
    fprintf(out, "  prompt commitment %s%s\n", v->prompt_commitment,
            v->prompt_checked ? " (matches the prompt and salt)" : "");
    fprintf(out, "  model %s sha256 %s, signer %s\n", v->model_name, v->model_digest,
            v->model_signer);
    fprintf(out, "  audit log %s, prompt entry %llu, output entry %llu; policy sha256 %s\n",
            v->audit_log_id, (unsigned long long)v->prompt_entry.seq,
            (unsigned long long)v->output_entry.seq, v->policy_digest);
    fprintf(out, "  sandbox: seccomp mode %d, no_new_privs %d, network namespace %d, landlock %s\n",
            v->sandbox.seccomp_mode, v->sandbox.no_new_privs, v->sandbox.net_namespace,
            v->sandbox.landlock_enforced ? "enforced" : "not enforced");
    fprintf(out, "  %s .. %s, %llu prompt + %llu output tokens (%s), seed %llu\n", v->started,
            v->finished, (unsigned long long)v->prompt_tokens, (unsigned long long)v->output_tokens,
            v->finish_reason, (unsigned long long)v->sampling.seed);
}

static void on_record(void *user, size_t line, const char *type, attest_status status,
                      const char *message, const attest_verified *v)
{
    verify_report *r = user;
    if (r->records) {
        json_t *rec = json_pack("{s:I, s:s, s:b, s:s?}", "line", (json_int_t)line, "type", type,
                                "ok", status == ATTEST_OK, "error", message);
        if (rec && v && status == ATTEST_OK)
            json_object_set_new(rec, "statement", verified_json(v));
        if (rec)
            json_array_append_new(r->records, rec);
        return;
    }
    if (status != ATTEST_OK || !r->text)
        return;
    if (v)
        print_verified_text(r->text, line, v);
    else
        fprintf(r->text, "%s (line %zu): ok\n", type, line);
}

/* Loads the evidence files named on the command line into expect. */
static int load_evidence(const verify_args *a, attest_expect *expect, uint8_t salt[32],
                         char **prompt, char **output, char *err, size_t errlen)
{
    size_t len = 0;
    memset(expect, 0, sizeof *expect);
    if (a->prompt_file) {
        if (read_whole_file(a->prompt_file, VERIFY_MAX_FILE, prompt, &len, err, errlen) != 0)
            return -1;
        expect->prompt = (const uint8_t *)*prompt;
        expect->prompt_len = len;
        expect->salt = salt;
    }
    if (a->output_file) {
        if (read_whole_file(a->output_file, VERIFY_MAX_FILE, output, &len, err, errlen) != 0)
            return -1;
        expect->output = (const uint8_t *)*output;
        expect->output_len = len;
    }
    return 0;
}

static int print_json_result(const verify_report *r, const attest_bundle_summary *s,
                             attest_status st, const char *err)
{
    json_t *result = json_pack(
        "{s:b, s:s, s:s, s:s?, s:I, s:I, s:I, s:I, s:O}", "ok", st == ATTEST_OK, "file",
        r->args->file, "status", attest_status_name(st), "error", st == ATTEST_OK ? NULL : err,
        "attestations", (json_int_t)s->attestations, "deviceKeys", (json_int_t)s->device_keys,
        "checkpoints", (json_int_t)s->checkpoints, "failed", (json_int_t)s->failed, "records",
        r->records);
    char *text = result ? json_dumps(result, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(result);
    if (!text)
        return -1;
    printf("%s\n", text);
    free(text);
    return 0;
}

/* Runs the verification once the command line is known to be well formed. */
/* A bundle's checkpoint line: a signed note of the audit log, which must be
 * signed by the same device key as the attestations. */
static int check_checkpoint_note(void *user, const char *note, size_t note_len,
                                 const uint8_t pk[32], char *err, size_t errlen)
{
    (void)user;
    return audit_checkpoint_verify_sig(note, note_len, pk, err, errlen) == AUDIT_OK ? 0 : -1;
}

static int verify_run(const verify_args *a, const uint8_t salt[32])
{
    char err[1024], fp[ATTEST_HEX_LEN], *file = NULL, *prompt = NULL, *output = NULL;
    size_t file_len = 0;
    uint8_t pk[32], salt_copy[32];
    attest_expect expect;
    attest_bundle_summary summary;
    char *text_buf = NULL;
    size_t text_len = 0;
    verify_report report = {a, NULL, NULL};
    int rc = EXIT_FAIL;
    memcpy(salt_copy, salt, sizeof salt_copy);
    memset(&summary, 0, sizeof summary);
    if (keys_load_ed25519_public(a->pubkey, pk, err, sizeof err) != 0 ||
        read_whole_file(a->file, VERIFY_MAX_FILE, &file, &file_len, err, sizeof err) != 0 ||
        load_evidence(a, &expect, salt_copy, &prompt, &output, err, sizeof err) != 0) {
        cli_error("attest", "verify %s: %s", a->file, err);
        goto out;
    }
    report.records = a->json ? json_array() : NULL;
    report.text = a->json ? NULL : open_memstream(&text_buf, &text_len);
    if (a->json ? !report.records : !report.text) {
        cli_error("attest", "verify %s: out of memory", a->file);
        goto out;
    }
    attest_bundle_opts opts = {pk, &expect, check_checkpoint_note, NULL, on_record, &report};
    attest_status st = attest_verify_bundle(file, file_len, &opts, &summary, err, sizeof err);
    if (report.text)
        fclose(report.text);
    report.text = NULL;
    if (a->json && print_json_result(&report, &summary, st, err) != 0)
        cli_error("attest", "verify %s: out of memory printing the result", a->file);
    if (st != ATTEST_OK) {
        cli_error("attest", "verify %s: %s", a->file, err);
        goto out;
    }
    if (!a->json) {
        attest_key_fingerprint(pk, fp);
        fputs(text_buf ? text_buf : "", stdout);
        printf("OK: %s: %zu attestation%s verified with device key %s\n", a->file,
               summary.attestations, summary.attestations == 1 ? "" : "s", fp);
    }
    rc = EXIT_OK;
out:
    if (report.text)
        fclose(report.text);
    free(text_buf);
    json_decref(report.records);
    sodium_memzero(salt_copy, sizeof salt_copy);
    free(file);
    free(prompt);
    free(output);
    return rc;
}

static int attest_verify_cmd(int argc, char **argv)
{
    static const struct option opts[] = {
        {"pubkey", required_argument, NULL, 'k'},
        {"prompt-file", required_argument, NULL, 'p'},
        {"salt", required_argument, NULL, 's'},
        {"output-file", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    verify_args a = {0};
    uint8_t salt[32] = {0};
    int c;
    opterr = 0;
    optind = 0; /* glibc: 0 re-initialises getopt for this argv */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            a.pubkey = optarg;
            break;
        case 'p':
            a.prompt_file = optarg;
            break;
        case 's':
            a.salt_hex = optarg;
            break;
        case 'o':
            a.output_file = optarg;
            break;
        case 'j':
            a.json = 1;
            break;
        case 'h':
            verify_help();
            return EXIT_OK;
        default:
            return cli_bad_option("attest verify", VERIFY_USAGE, argc, argv);
        }
    }
    if (optind >= argc)
        return cli_usage_error("attest verify", VERIFY_USAGE, "FILE is required");
    a.file = argv[optind++];
    if (optind < argc)
        return cli_usage_error("attest verify", VERIFY_USAGE, "unexpected argument '%s'",
                               argv[optind]);
    if (!a.pubkey)
        return cli_usage_error("attest verify", VERIFY_USAGE, "--pubkey is required");
    if (!a.prompt_file != !a.salt_hex)
        return cli_usage_error("attest verify", VERIFY_USAGE,
                               "--prompt-file and --salt go together");
    if (a.salt_hex && attest_hex32(a.salt_hex, salt) != 0)
        return cli_usage_error("attest verify", VERIFY_USAGE,
                               "--salt must be 64 hex digits (32 bytes)");
    int rc = verify_run(&a, salt);
    sodium_memzero(salt, sizeof salt);
    return rc;
}

int cmd_attest(const app_ctx *ctx, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("attest", ATTEST_USAGE, "a subcommand is required (verify)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        attest_help();
        return EXIT_OK;
    }
    if (strcmp(argv[1], "verify") == 0)
        return attest_verify_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "replay") == 0)
        return attest_replay_cmd(ctx, argc - 1, argv + 1);
    if (strcmp(argv[1], "export") == 0)
        return attest_export_cmd(ctx, argc - 1, argv + 1);
    return cli_usage_error("attest", ATTEST_USAGE,
                           "unknown subcommand '%s' (verify, replay, export)", argv[1]);
}
