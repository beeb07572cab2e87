/* appliance trust: the model publishers this appliance trusts (in the
 * policy, so each change is a policy change, validated and audited). */
#include "admin.h"
#include "commands.h"
#include "models.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRUST_USAGE                                                                                \
    "appliance trust add (--publisher-key PEM | --ca-cert PEM) | list | remove FINGERPRINT "       \
    "[--home DIR]"

static void trust_help(void)
{
    printf("usage: %s\n\n"
           "Model publishers the policy trusts: EC public keys (OMS key method) and CA\n"
           "root certificates (OMS certificate method). Changes edit policy.json and\n"
           "are audited as policy_change with the old and new policy digests.\n"
           "  add --publisher-key PEM   trust a publisher's P-256/P-384/P-521 public key\n"
           "  add --ca-cert PEM         trust models signed by certificates under this root\n"
           "  list                      fingerprints (SHA-256 of the DER key or certificate)\n"
           "  remove FINGERPRINT        stop trusting one; installed models it signed are\n"
           "                            refused from then on\n",
           TRUST_USAGE);
}

static int trust_add(admin *a, const char *key, const char *cert)
{
    char fp[KEY_FINGERPRINT_HEX], desc[256], err[512], ofp[KEY_FINGERPRINT_HEX], odesc[256];
    policy_strings *list = key ? &a->pol.publisher_keys : &a->pol.ca_roots;
    char *pem =
        trust_load_pem(key ? key : cert, key == NULL, fp, desc, sizeof desc, err, sizeof err);
    if (!pem) {
        cli_error("trust", "%s", err);
        return EXIT_FAIL;
    }
    for (size_t i = 0; i < list->count; i++)
        if (trust_describe(list->items[i], ofp, odesc, sizeof odesc) == 0 && strcmp(ofp, fp) == 0) {
            printf("already trusted: %s %s\n", fp, desc);
            free(pem);
            return EXIT_OK;
        }
    char **grown = realloc(list->items, (list->count + 1) * sizeof *grown);
    if (!grown) {
        free(pem);
        cli_error("trust", "out of memory");
        return EXIT_FAIL;
    }
    list->items = grown;
    list->items[list->count++] = pem;
    char change[400];
    snprintf(change, sizeof change, "trust add %s %s (%s)", key ? "publisher-key" : "ca-cert", fp,
             desc);
    if (admin_save_policy(a, change) != 0)
        return EXIT_FAIL;
    printf("trusted %s %s\npolicy digest %s\n", fp, desc, a->digest);
    return EXIT_OK;
}

static void list_one(const char *kind, const policy_strings *s)
{
    char fp[KEY_FINGERPRINT_HEX], desc[256];
    for (size_t i = 0; i < s->count; i++) {
        if (trust_describe(s->items[i], fp, desc, sizeof desc) != 0)
            snprintf(fp, sizeof fp, "(unreadable entry %zu)", i);
        printf("%-14s %s  %s\n", kind, fp, desc);
    }
}

static int remove_from(policy_strings *s, const char *fp, char *desc, size_t desc_len)
{
    char f[KEY_FINGERPRINT_HEX];
    for (size_t i = 0; i < s->count; i++) {
        if (trust_describe(s->items[i], f, desc, desc_len) == 0 && strcmp(f, fp) == 0) {
            free(s->items[i]);
            memmove(&s->items[i], &s->items[i + 1], (s->count - i - 1) * sizeof *s->items);
            s->count--;
            return 1;
        }
    }
    return 0;
}

static int trust_remove(admin *a, const char *fp)
{
    char desc[256], change[400];
    if (!remove_from(&a->pol.publisher_keys, fp, desc, sizeof desc) &&
        !remove_from(&a->pol.ca_roots, fp, desc, sizeof desc)) {
        cli_error("trust", "nothing trusted has fingerprint %s (see 'appliance trust list')", fp);
        return EXIT_FAIL;
    }
    snprintf(change, sizeof change, "trust remove %s (%s)", fp, desc);
    if (admin_save_policy(a, change) != 0)
        return EXIT_FAIL;
    printf("no longer trusted: %s %s\npolicy digest %s\n", fp, desc, a->digest);
    return EXIT_OK;
}

int cmd_trust(const app_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"publisher-key", required_argument, NULL, 'k'},
        {"ca-cert", required_argument, NULL, 'c'},
        {"home", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL, *cert = NULL, *home_flag = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            trust_help();
            return EXIT_OK;
        }
        if (c == 'k')
            key = optarg;
        else if (c == 'c')
            cert = optarg;
        else if (c == 'H')
            home_flag = optarg;
        else
            return cli_bad_option("trust", TRUST_USAGE, argc, argv);
    }
    if (optind >= argc)
        return cli_usage_error("trust", TRUST_USAGE, "no action given");
    const char *action = argv[optind++];
    int add = strcmp(action, "add") == 0, list = strcmp(action, "list") == 0,
        rem = strcmp(action, "remove") == 0;
    if (!add && !list && !rem)
        return cli_usage_error("trust", TRUST_USAGE, "unknown action '%s'", action);
    if (add && !key == !cert)
        return cli_usage_error("trust", TRUST_USAGE, "add takes one --publisher-key or --ca-cert");
    if (rem && argc - optind != 1)
        return cli_usage_error("trust", TRUST_USAGE, "remove takes one FINGERPRINT");
    if (!rem && optind < argc)
        return cli_usage_error("trust", TRUST_USAGE, "unexpected argument '%s'", argv[optind]);
    admin a;
    if (admin_open(ctx, home_flag, "trust", &a) != 0)
        return EXIT_FAIL;
    int rc = EXIT_OK;
    if (add)
        rc = trust_add(&a, key, cert);
    else if (rem)
        rc = trust_remove(&a, argv[optind]);
    else {
        list_one("publisher-key", &a.pol.publisher_keys);
        list_one("ca-cert", &a.pol.ca_roots);
    }
    admin_close(&a);
    return rc;
}
