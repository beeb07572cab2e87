/* appliance keygen: make a key pair of one of the three roles. */
#include "commands.h"
#include "image.h"

#include <getopt.h>
#include <stdio.h>

#define KEYGEN_USAGE "appliance keygen --kind device|reviewer|publisher --out DIR [--force]"

static void keygen_help(void)
{
    printf("usage: %s\n\n"
           "Makes a key pair: DIR/KIND.key.pem (secret, PKCS#8 PEM, mode 0600) and\n"
           "DIR/KIND.pub.pem (SubjectPublicKeyInfo PEM); `openssl pkey` reads both.\n"
           "Existing files are never replaced without --force.\n\n"
           "Kinds and the role each plays:\n"
           "  device     Ed25519. Held by the appliance (never by the sandboxed worker);\n"
           "             signs attestations and audit checkpoints. Auditors verify with\n"
           "             the public half.\n"
           "  reviewer   X25519. The compliance officer's key: sealed audit content is\n"
           "             encrypted to the public half; the secret half belongs OFF the\n"
           "             device, with the officer.\n"
           "  publisher  EC P-256. A model publisher's key: signs OMS model bundles;\n"
           "             the appliance trusts the public half through its policy.\n\n"
           "Prints the fingerprint: the hex SHA-256 of the DER public key, as\n"
           "  openssl pkey -pubin -in KIND.pub.pem -outform DER | sha256sum\n",
           KEYGEN_USAGE);
}

int cmd_keygen(const app_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"kind", required_argument, NULL, 'k'},
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *kind_name = NULL, *out = NULL;
    int force = 0, c;
    (void)ctx;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "k:o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            kind_name = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            keygen_help();
            return EXIT_OK;
        default:
            return cli_bad_option("keygen", KEYGEN_USAGE, argc, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("keygen", KEYGEN_USAGE, "unexpected argument '%s'", argv[optind]);
    key_kind kind;
    if (!kind_name)
        return cli_usage_error("keygen", KEYGEN_USAGE, "--kind is required");
    if (key_kind_parse(kind_name, &kind) != 0)
        return cli_usage_error("keygen", KEYGEN_USAGE,
                               "unknown kind '%s' (device, reviewer or publisher)", kind_name);
    if (!out)
        return cli_usage_error("keygen", KEYGEN_USAGE, "--out is required");

    char fp[KEY_FINGERPRINT_HEX], sec[4096], pub[4096], err[512];
    if (keys_generate(kind, out, force, fp, sec, pub, err, sizeof err) != 0) {
        cli_error("keygen", "%s", err);
        return EXIT_FAIL;
    }
    printf("%s key: %s (secret), %s (public)\nfingerprint: %s\n", kind_name, sec, pub, fp);
    return EXIT_OK;
}
