/* appliance image: sign, verify and inspect OpenSSF Model Signing bundles.
 * The flags are the OMS conformance-adapter flags, so the public suite can
 * drive this command. */
#include "commands.h"
#include "image.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IMAGE_USAGE "appliance image sign-model|verify-model|inspect [ARGS...] (--help for each)"
#define SIGN_USAGE                                                                                 \
    "appliance image sign-model --method key|certificate --model-path PATH\n"                      \
    "         --output-bundle OUT --private-key KEY [--signing-cert CERT]\n"                       \
    "         [--cert-chain CERT]... [--ignore-paths PATH]... [--shard-size BYTES]\n"              \
    "         [--single-file-name dot|basename]"
#define VERIFY_USAGE                                                                               \
    "appliance image verify-model --method key|certificate --model-path PATH\n"                    \
    "         --bundle B (--public-key PEM | --cert-chain CERT...)\n"                              \
    "         [--ignore-paths PATH]... [--ignore-unsigned-files]"
#define INSPECT_USAGE "appliance image inspect [--json] BUNDLE"

#define PROGRESS_MIN_BYTES (100ull * 1000 * 1000)

/* State of the terminal progress bar (only on a TTY, only for big models). */
typedef struct progress_bar {
    struct timespec start;
    int shown;
} progress_bar;

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void show_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_bar *bar = arg;
    double secs = seconds_since(&bar->start), rate, eta;
    char line[160];
    int filled;
    if (total < PROGRESS_MIN_BYTES)
        return;
    rate = secs > 0 ? (double)done / secs : 0;
    eta = rate > 0 ? (double)(total - done) / rate : 0;
    filled = total ? (int)(30.0 * (double)done / (double)total) : 30;
    snprintf(line, sizeof line, "\rhashing [%-30.*s] %.2f/%.2f GB  %.0f MB/s  ETA %.0fs ", filled,
             "##############################", (double)done / 1e9, (double)total / 1e9, rate / 1e6,
             eta);
    fputs(line, stderr);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
    bar->shown = 1;
}

static int parse_method(const char *cmd, const char *usage, const char *s, oms_method *m)
{
    if (strcmp(s, "key") == 0)
        *m = OMS_METHOD_KEY;
    else if (strcmp(s, "certificate") == 0)
        *m = OMS_METHOD_CERTIFICATE;
    else if (strcmp(s, "sigstore") == 0)
        return cli_usage_error(cmd, usage,
                               "--method sigstore needs Sigstore's online trust roots; this "
                               "offline appliance supports key and certificate");
    else
        return cli_usage_error(cmd, usage, "--method must be key or certificate, not '%s'", s);
    return 0;
}

static int sign_model(int argc, char **argv)
{
    static const struct option opts[] = {
        {"method", required_argument, NULL, 'm'},
        {"model-path", required_argument, NULL, 'p'},
        {"output-bundle", required_argument, NULL, 'o'},
        {"private-key", required_argument, NULL, 'k'},
        {"signing-cert", required_argument, NULL, 's'},
        {"cert-chain", required_argument, NULL, 'c'},
        {"ignore-paths", required_argument, NULL, 'i'},
        {"shard-size", required_argument, NULL, 'S'},
        {"single-file-name", required_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "image sign-model";
    const char **chain = calloc((size_t)argc + 1, sizeof *chain);
    const char **ign = calloc((size_t)argc + 1, sizeof *ign);
    oms_sign_opts o = {.method = OMS_METHOD_KEY};
    progress_bar bar = {0};
    const char *method = NULL;
    char err[512], root[65];
    size_t n_files = 0;
    int c, rc = EXIT_USAGE;
    if (!chain || !ign) {
        cli_error(cmd, "out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    o.chain_pems = chain;
    o.ignore_paths = ign;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'm':
            method = optarg;
            break;
        case 'p':
            o.model_path = optarg;
            break;
        case 'o':
            o.output_bundle = optarg;
            break;
        case 'k':
            o.private_key_pem = optarg;
            break;
        case 's':
            o.signing_cert_pem = optarg;
            break;
        case 'c':
            chain[o.n_chain_pems++] = optarg;
            break;
        case 'i':
            ign[o.n_ignore_paths++] = optarg;
            break;
        case 'S':
            o.shard_size = strtoull(optarg, &end, 10);
            if (*end || o.shard_size == 0) {
                rc = cli_usage_error(cmd, SIGN_USAGE, "--shard-size must be a positive integer");
                goto out;
            }
            break;
        case 'N':
            if (strcmp(optarg, "dot") != 0 && strcmp(optarg, "basename") != 0) {
                rc =
                    cli_usage_error(cmd, SIGN_USAGE,
                                    "--single-file-name must be dot or basename, not '%s'", optarg);
                goto out;
            }
            o.single_file_basename = strcmp(optarg, "basename") == 0;
            break;
        case 'h':
            printf("usage: %s\n\nHashes every file of the model (a directory or one file),\n"
                   "signs the OMS v1.0 statement with an EC P-256/P-384/P-521 key and\n"
                   "writes a Sigstore bundle. Relative --ignore-paths are relative to\n"
                   "the model root. --shard-size switches to shard serialization.\n"
                   "A single-file model's resource is named \".\" by default, as the\n"
                   "reference model_signing signer writes and its verifier requires;\n"
                   "--single-file-name basename follows OMS v1.0 6.1.2 item 5 instead\n"
                   "(image/OMS.md says why both exist).\n",
                   SIGN_USAGE);
            rc = EXIT_OK;
            goto out;
        default:
            rc = cli_bad_option(cmd, SIGN_USAGE, argc, argv);
            goto out;
        }
    }
    if (optind < argc) {
        rc = cli_usage_error(cmd, SIGN_USAGE, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!method || !o.model_path || !o.output_bundle || !o.private_key_pem) {
        rc = cli_usage_error(cmd, SIGN_USAGE,
                             "--method, --model-path, --output-bundle and --private-key are "
                             "required");
        goto out;
    }
    if ((rc = parse_method(cmd, SIGN_USAGE, method, &o.method)) != 0)
        goto out;
    if (o.method == OMS_METHOD_CERTIFICATE && !o.signing_cert_pem) {
        rc = cli_usage_error(cmd, SIGN_USAGE, "--method certificate needs --signing-cert");
        goto out;
    }
    if (isatty(STDERR_FILENO)) {
        clock_gettime(CLOCK_MONOTONIC, &bar.start);
        o.progress = show_progress;
        o.progress_arg = &bar;
    }
    if (oms_sign_model(&o, root, &n_files, err, sizeof err) != 0) {
        cli_error(cmd, "%s", err);
        rc = EXIT_FAIL;
        goto out;
    }
    printf("signed %zu resource%s of %s, root sha256:%s, bundle %s\n", n_files,
           n_files == 1 ? "" : "s", o.model_path, root, o.output_bundle);
    rc = EXIT_OK;
out:
    free(chain);
    free(ign);
    return rc;
}

static int verify_model(int argc, char **argv)
{
    static const struct option opts[] = {
        {"method", required_argument, NULL, 'm'},
        {"model-path", required_argument, NULL, 'p'},
        {"bundle", required_argument, NULL, 'b'},
        {"public-key", required_argument, NULL, 'k'},
        {"cert-chain", required_argument, NULL, 'c'},
        {"ignore-paths", required_argument, NULL, 'i'},
        {"ignore-unsigned-files", no_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "image verify-model";
    const char **cas = calloc((size_t)argc + 1, sizeof *cas);
    const char **ign = calloc((size_t)argc + 1, sizeof *ign);
    oms_trust trust = {0};
    oms_check_opts co = {0};
    oms_verified v;
    oms_method m = OMS_METHOD_KEY;
    progress_bar bar = {0};
    const char *method = NULL, *model = NULL, *bundle = NULL;
    char err[768];
    int c, rc = EXIT_USAGE;
    if (!cas || !ign) {
        cli_error(cmd, "out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    trust.ca_paths = cas;
    co.ignore_paths = ign;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            method = optarg;
            break;
        case 'p':
            model = optarg;
            break;
        case 'b':
            bundle = optarg;
            break;
        case 'k':
            trust.public_key_pem = optarg;
            break;
        case 'c':
            cas[trust.n_ca_paths++] = optarg;
            break;
        case 'i':
            ign[co.n_ignore_paths++] = optarg;
            break;
        case 'u':
            co.ignore_unsigned_files = true;
            break;
        case 'h':
            printf("usage: %s\n\nVerifies an OMS v1.0 bundle offline: the signature with the\n"
                   "given public key, or the bundle's certificate chain against the given\n"
                   "CA certificates (validity enforced), then every file's digest. Exits 0\n"
                   "only when all of it holds; otherwise prints the first problem.\n"
                   "Relative --ignore-paths are relative to the model root.\n",
                   VERIFY_USAGE);
            rc = EXIT_OK;
            goto out;
        default:
            rc = cli_bad_option(cmd, VERIFY_USAGE, argc, argv);
            goto out;
        }
    }
    if (optind < argc) {
        rc = cli_usage_error(cmd, VERIFY_USAGE, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!method || !model || !bundle) {
        rc = cli_usage_error(cmd, VERIFY_USAGE, "--method, --model-path and --bundle are required");
        goto out;
    }
    if ((rc = parse_method(cmd, VERIFY_USAGE, method, &m)) != 0)
        goto out;
    if (m == OMS_METHOD_KEY && (!trust.public_key_pem || trust.n_ca_paths)) {
        rc = cli_usage_error(cmd, VERIFY_USAGE,
                             "--method key needs --public-key (and no --cert-chain)");
        goto out;
    }
    if (m == OMS_METHOD_CERTIFICATE && (trust.public_key_pem || !trust.n_ca_paths)) {
        rc = cli_usage_error(cmd, VERIFY_USAGE,
                             "--method certificate needs --cert-chain (and no --public-key)");
        goto out;
    }
    if (isatty(STDERR_FILENO)) {
        clock_gettime(CLOCK_MONOTONIC, &bar.start);
        co.progress = show_progress;
        co.progress_arg = &bar;
    }
    if (oms_verify_model(model, bundle, m, &trust, &co, &v, err, sizeof err) != 0) {
        cli_error(cmd, "%s", err);
        rc = EXIT_FAIL;
        goto out;
    }
    printf("verified %s: %zu resource%s, root sha256:%s, signed by %s\n", model, v.n_resources,
           v.n_resources == 1 ? "" : "s", v.root_digest, v.signer);
    rc = EXIT_OK;
out:
    free(cas);
    free(ign);
    return rc;
}

static int print_inspect_json(const oms_bundle *b, const char *signer)
{
    const oms_manifest *m = &b->manifest;
    json_t *o = json_object(), *res = json_array();
    char hex[2 * OMS_DIGEST_MAX + 1];
    char *text;
    int bad = !o || !res;
    for (size_t i = 0; !bad && i < m->n_resources; i++) {
        json_t *r = json_object();
        for (size_t k = 0; k < m->resources[i].digest_len; k++)
            snprintf(hex + 2 * k, 3, "%02x", m->resources[i].digest[k]);
        bad = !r || json_object_set_new(r, "name", json_string(m->resources[i].name)) ||
              json_object_set_new(r, "digest", json_string(hex)) || json_array_append_new(res, r);
    }
    bad = bad || json_object_set_new(o, "method", json_string(oms_method_name(b->method)));
    bad = bad || json_object_set_new(o, "signer", json_string(signer));
    bad = bad || json_object_set_new(o, "verified", json_false());
    bad = bad || json_object_set_new(o, "model_name", json_string(m->model_name));
    bad = bad || json_object_set_new(o, "root_digest", json_string(m->root_digest));
    bad =
        bad || json_object_set_new(o, "serialization", json_string(m->shards ? "shards" : "files"));
    bad = bad || json_object_set_new(o, "hash_type", json_string(m->hash_type));
    bad = bad || json_object_set(o, "resources", res);
    text = bad ? NULL : json_dumps(o, JSON_INDENT(2));
    json_decref(res);
    json_decref(o);
    if (!text)
        return -1;
    puts(text);
    free(text);
    return 0;
}

static void print_inspect_text(const oms_bundle *b, const char *signer)
{
    const oms_manifest *m = &b->manifest;
    char hex[2 * OMS_DIGEST_MAX + 1];
    printf("bundle (signature NOT verified; use verify-model)\n");
    printf("method:        %s\n", oms_method_name(b->method));
    printf("signer:        %s\n", signer);
    printf("model name:    %s\n", m->model_name);
    printf("root digest:   sha256:%s\n", m->root_digest);
    printf("serialization: %s, %s", m->shards ? "shards" : "files", m->hash_type);
    if (m->shards)
        printf(", shard size %llu", (unsigned long long)m->shard_size);
    printf(", symlinks %s\n", m->allow_symlinks ? "followed" : "refused");
    printf("ignored paths:");
    for (size_t i = 0; i < m->n_ignore_paths; i++)
        printf(" %s", m->ignore_paths[i]);
    printf("\n%zu resource%s:\n", m->n_resources, m->n_resources == 1 ? "" : "s");
    for (size_t i = 0; i < m->n_resources; i++) {
        for (size_t k = 0; k < m->resources[i].digest_len; k++)
            snprintf(hex + 2 * k, 3, "%02x", m->resources[i].digest[k]);
        printf("  %s  %s\n", hex, m->resources[i].name);
    }
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (n == cap) {
            unsigned char *nb;
            cap = cap ? cap * 2 : 65536;
            if (cap > (64u << 20) || !(nb = realloc(buf, cap + 1))) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "image inspect";
    oms_bundle b;
    unsigned char *json;
    size_t len = 0;
    char err[512], signer[OMS_SIGNER_MAX];
    int c, as_json = 0, rc;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') {
            as_json = 1;
        } else if (c == 'h') {
            printf("usage: %s\n\nPrints what an OMS bundle claims (signer, model name, root\n"
                   "digest, files and digests) without verifying anything.\n",
                   INSPECT_USAGE);
            return EXIT_OK;
        } else {
            return cli_bad_option(cmd, INSPECT_USAGE, argc, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error(cmd, INSPECT_USAGE,
                               optind >= argc ? "no bundle given" : "more than one bundle given");
    if (!(json = slurp(argv[optind], &len))) {
        cli_error(cmd, "cannot read bundle %s", argv[optind]);
        return EXIT_FAIL;
    }
    rc = oms_bundle_parse(json, len, &b, err, sizeof err);
    free(json);
    if (rc != 0) {
        cli_error(cmd, "%s: %s", argv[optind], err);
        return EXIT_FAIL;
    }
    oms_bundle_describe_signer(&b, signer, sizeof signer);
    if (as_json) {
        rc = print_inspect_json(&b, signer) == 0 ? EXIT_OK : EXIT_FAIL;
        if (rc != EXIT_OK)
            cli_error(cmd, "cannot print the bundle as JSON");
    } else {
        print_inspect_text(&b, signer);
        rc = EXIT_OK;
    }
    oms_bundle_free(&b);
    return rc;
}

int cmd_image(const app_ctx *ctx, int argc, char **argv)
{
    const char *sub;
    (void)ctx;
    opterr = 0;
    if (argc < 2)
        return cli_usage_error("image", IMAGE_USAGE, "no subcommand given");
    sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        printf("usage: %s\n\nOpenSSF Model Signing (OMS v1.0) bundles, fully offline:\n"
               "  sign-model    hash a model and sign it into a bundle\n"
               "  verify-model  verify a model against a bundle\n"
               "  inspect       show what a bundle claims (no verification)\n",
               IMAGE_USAGE);
        return EXIT_OK;
    }
    optind = 0;
    if (strcmp(sub, "sign-model") == 0)
        return sign_model(argc - 1, argv + 1);
    if (strcmp(sub, "verify-model") == 0)
        return verify_model(argc - 1, argv + 1);
    if (strcmp(sub, "inspect") == 0)
        return inspect(argc - 1, argv + 1);
    return cli_usage_error("image", IMAGE_USAGE, "unknown subcommand '%s'", sub);
}
