/* appliance status: what the home holds, and what is still missing. */
#include "commands.h"
#include "home.h"
#include "image.h"
#include "policy.h"

#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define STATUS_USAGE "appliance status [--home DIR] [--json]"

typedef struct {
    int initialised;
    int policy_ok;
    char policy_digest[POLICY_DIGEST_HEX];
    char policy_error[512];
    char device_fp[KEY_FINGERPRINT_HEX];
    char reviewer_fp[KEY_FINGERPRINT_HEX];
    int reviewer_secret_on_device;
    int audit_db_exists;
    int models;
} home_status;

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void gather(const home *h, home_status *s)
{
    char err[512];
    policy p;
    memset(s, 0, sizeof *s);
    s->initialised = home_is_initialised(h);
    if (s->initialised) {
        s->policy_ok = policy_load_file(h->policy, &p, s->policy_digest, s->policy_error,
                                        sizeof s->policy_error) == 0;
        if (s->policy_ok)
            policy_free(&p);
    }
    if (keys_fingerprint_file(h->device_pub, s->device_fp, err, sizeof err) != 0)
        s->device_fp[0] = 0;
    if (keys_fingerprint_file(h->reviewer_pub, s->reviewer_fp, err, sizeof err) != 0)
        s->reviewer_fp[0] = 0;
    s->reviewer_secret_on_device = file_exists(h->reviewer_secret);
    s->audit_db_exists = file_exists(h->audit_db);
    s->models = count_entries(h->models);
}

static json_t *opt_string(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static int print_json(const home *h, const home_status *s)
{
    json_t *o =
        json_pack("{s:s, s:b, s:o, s:o, s:o, s:o, s:b, s:b, s:i}", "home", h->dir, "initialised",
                  s->initialised, "policy_digest", opt_string(s->policy_ok ? s->policy_digest : ""),
                  "policy_error", opt_string(s->policy_error), "device_key_fingerprint",
                  opt_string(s->device_fp), "reviewer_key_fingerprint", opt_string(s->reviewer_fp),
                  "reviewer_secret_on_device", s->reviewer_secret_on_device, "audit_db",
                  s->audit_db_exists, "installed_models", s->models);
    if (!o || json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        json_decref(o);
        return EXIT_FAIL;
    }
    json_decref(o);
    putchar('\n');
    return EXIT_OK;
}

static void print_text(const home *h, const home_status *s)
{
    printf("home              %s%s\n", h->dir,
           s->initialised ? "" : " (not initialised: run 'appliance init')");
    if (s->initialised)
        printf("policy            %s\npolicy digest     %s\n", h->policy,
               s->policy_ok ? s->policy_digest : s->policy_error);
    printf("device key        %s\n", s->device_fp[0] ? s->device_fp : "missing");
    printf("reviewer key      %s\n", s->reviewer_fp[0] ? s->reviewer_fp : "missing");
    if (s->reviewer_secret_on_device)
        printf("WARNING           reviewer secret key still on this device: %s\n"
               "                  move it to the compliance officer and delete it here\n",
               h->reviewer_secret);
    printf("audit log         %s\n", s->audit_db_exists ? h->audit_db : "none yet");
    printf("installed models  %d\n", s->models);
}

int cmd_status(const app_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *home_flag = NULL;
    int json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            home_flag = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            printf("usage: %s\n\nShows the appliance home, the policy digest, the keys'\n"
                   "fingerprints and what exists so far. Exit 1 when the home is not\n"
                   "initialised or its policy is invalid.\n",
                   STATUS_USAGE);
            return EXIT_OK;
        default:
            return cli_bad_option("status", STATUS_USAGE, argc, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("status", STATUS_USAGE, "unexpected argument '%s'", argv[optind]);
    char dir[HOME_PATH_CAP], err[512];
    home h;
    home_status s;
    if (cli_resolve_home(ctx, home_flag, dir, sizeof dir) != 0 ||
        home_layout(dir, &h, err, sizeof err) != 0) {
        cli_error("status", "cannot determine the appliance home (set --home or $APPLIANCE_HOME)");
        return EXIT_FAIL;
    }
    gather(&h, &s);
    int rc = json ? print_json(&h, &s) : (print_text(&h, &s), EXIT_OK);
    return (rc == EXIT_OK && s.initialised && s.policy_ok) ? EXIT_OK : EXIT_FAIL;
}
