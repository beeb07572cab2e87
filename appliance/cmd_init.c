/* appliance init: create the appliance home (keys, policy, places for the
 * audit log and models), owner-only. Safe to re-run: an initialised home is
 * left exactly as it is. */
#include "audit.h"
#include "build_info.h"
#include "commands.h"
#include "home.h"
#include "image.h"
#include "policy.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INIT_USAGE "appliance init [DIR] [--reviewer-key PUB.pem]"

static void init_help(void)
{
    printf("usage: %s\n\n"
           "Creates the appliance home DIR (else --home, $APPLIANCE_HOME, ~/.appliance):\n"
           "  policy.json  the policy (defaults: sealed audit content, sandbox required)\n"
           "  keys/        the device's Ed25519 key pair and the reviewer's public key\n"
           "  audit/       the audit database\n"
           "  models/      installed models\n"
           "all readable by the owner only. Audit content is sealed to the compliance\n"
           "officer's X25519 key: give it with --reviewer-key, or init makes a pair and\n"
           "puts the secret half in DIR/outbox/, which must then be moved off this\n"
           "device. Re-running init on an existing home changes nothing.\n",
           INIT_USAGE);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The device key pair: made once, reused when an interrupted init left it. */
static int ensure_device_key(const home *h, char fp[KEY_FINGERPRINT_HEX], char *err, size_t n)
{
    if (exists(h->device_key) && exists(h->device_pub))
        return keys_fingerprint_file(h->device_pub, fp, err, n);
    return keys_generate(KEY_DEVICE, h->keys, 1, fp, NULL, NULL, err, n);
}

/* The reviewer's public key: installed from --reviewer-key, or a fresh pair
 * whose secret half waits in the outbox for the compliance officer. */
static int ensure_reviewer_key(const home *h, const char *given, char fp[KEY_FINGERPRINT_HEX],
                               int *made_secret, char *err, size_t n)
{
    char tmp_pub[HOME_PATH_CAP];
    *made_secret = 0;
    if (given)
        return keys_install_public(KEY_REVIEWER, given, h->reviewer_pub, fp, err, n);
    if (exists(h->reviewer_pub))
        return keys_fingerprint_file(h->reviewer_pub, fp, err, n);
    if (home_make_private_dir(h->outbox, err, n) != 0 ||
        keys_generate(KEY_REVIEWER, h->outbox, 1, fp, NULL, tmp_pub, err, n) != 0)
        return -1;
    if (rename(tmp_pub, h->reviewer_pub) != 0) {
        snprintf(err, n, "cannot move %s into %s", tmp_pub, h->keys);
        return -1;
    }
    *made_secret = 1;
    return 0;
}

static void print_reviewer_warning(const home *h)
{
    fprintf(stderr,
            "\n"
            "*** IMPORTANT: the reviewer SECRET key was written to\n"
            "***   %s\n"
            "*** It belongs to the compliance officer. Move it OFF this device, then\n"
            "*** delete it here: while it stays, this laptop can read back every\n"
            "*** sealed prompt and output in its audit log.\n\n",
            h->reviewer_secret);
}

static int write_initial_policy(const home *h, char digest[POLICY_DIGEST_HEX], char *err, size_t n)
{
    policy p;
    if (policy_defaults(&p) != 0) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    free(p.reviewer_key);
    p.reviewer_key = strdup("keys/reviewer.pub.pem");
    int rc = p.reviewer_key ? policy_write_file(&p, h->policy, digest, err, n) : -1;
    policy_free(&p);
    return rc;
}

/* The log's first entry says who set the appliance up, under which policy
 * and with which keys. */
static int create_audit_log(const home *h, const char *digest, const char *dev_fp,
                            const char *rev_fp, char *err, size_t n)
{
    audit_open_opts o = {.create = 1};
    audit_log *log = NULL;
    char actor[128];
    cli_actor(actor, sizeof actor);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "policy_digest", digest,
                             "device_key_fingerprint", dev_fp, "reviewer_key_fingerprint", rev_fp,
                             "appliance_version", APPLIANCE_VERSION, "build", APPLIANCE_GIT_COMMIT);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    int rc = -1;
    if (!text)
        snprintf(err, n, "out of memory");
    else if (audit_open(&log, h->audit_db, &o, err, n) == AUDIT_OK &&
             audit_append(log, AUDIT_KIND_INIT, "", actor, text, strlen(text), NULL, NULL, err,
                          n) == AUDIT_OK)
        rc = 0;
    audit_close(log);
    free(text);
    return rc;
}

static int run_init(const home *h, const char *reviewer_key)
{
    char err[512], dev_fp[KEY_FINGERPRINT_HEX], rev_fp[KEY_FINGERPRINT_HEX],
        digest[POLICY_DIGEST_HEX];
    int made_secret = 0;
    umask(077);
    if (home_make_private_dir(h->dir, err, sizeof err) != 0 ||
        home_make_private_dir(h->keys, err, sizeof err) != 0 ||
        home_make_private_dir(h->audit, err, sizeof err) != 0 ||
        home_make_private_dir(h->models, err, sizeof err) != 0 ||
        ensure_device_key(h, dev_fp, err, sizeof err) != 0 ||
        ensure_reviewer_key(h, reviewer_key, rev_fp, &made_secret, err, sizeof err) != 0 ||
        write_initial_policy(h, digest, err, sizeof err) != 0) {
        cli_error("init", "%s", err);
        return EXIT_FAIL;
    }
    /* policy.json marks a finished init: without its audit log, take it back. */
    if (create_audit_log(h, digest, dev_fp, rev_fp, err, sizeof err) != 0) {
        unlink(h->policy);
        cli_error("init", "cannot create the audit log: %s", err);
        return EXIT_FAIL;
    }
    printf("initialised appliance home %s\n", h->dir);
    printf("  device key       %s\n  fingerprint      %s\n", h->device_pub, dev_fp);
    printf("  reviewer key     %s\n  fingerprint      %s\n", h->reviewer_pub, rev_fp);
    printf("  policy           %s\n  policy digest    %s\n", h->policy, digest);
    printf("  audit log        %s\n", h->audit_db);
    if (made_secret)
        print_reviewer_warning(h);
    return EXIT_OK;
}

int cmd_init(const app_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"reviewer-key", required_argument, NULL, 'r'},
        {"home", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *reviewer_key = NULL, *home_flag = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            reviewer_key = optarg;
            break;
        case 'H':
            home_flag = optarg;
            break;
        case 'h':
            init_help();
            return EXIT_OK;
        default:
            return cli_bad_option("init", INIT_USAGE, argc, argv);
        }
    }
    if (argc - optind > 1)
        return cli_usage_error("init", INIT_USAGE, "unexpected argument '%s'", argv[optind + 1]);
    if (optind < argc)
        home_flag = argv[optind];

    char dir[HOME_PATH_CAP], err[512];
    home h;
    if (cli_resolve_home(ctx, home_flag, dir, sizeof dir) != 0 ||
        home_layout(dir, &h, err, sizeof err) != 0) {
        cli_error("init", "cannot determine the appliance home (set --home or $APPLIANCE_HOME)");
        return EXIT_FAIL;
    }
    if (home_is_initialised(&h)) {
        printf("appliance home %s is already initialised; nothing changed\n", h.dir);
        return EXIT_OK;
    }
    return run_init(&h, reviewer_key);
}
