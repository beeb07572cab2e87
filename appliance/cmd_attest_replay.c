/* appliance attest replay: an auditor reruns a recorded generation in the
 * sandbox and confirms the output digest bit for bit. The engine is
 * deterministic for any thread count on the recorded kernel path. */
#include "admin.h"
#include "attest.h"
#include "chat_transcript.h"
#include "commands.h"
#include "generate_monitor.h"
#include "models.h"

#include <getopt.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPLAY_USAGE                                                                               \
    "appliance attest replay FILE --model MODEL --bundle BUNDLE --prompt-file F --salt HEX\n"      \
    "       [--pubkey DEVICE_PUB] [--publisher-key PEM | --cert-chain CA...] [-t THREADS]"

typedef struct replay_args {
    const char *file, *model, *bundle, *prompt_file, *salt_hex, *pubkey, *publisher_key;
    const char *ca[8];
    size_t n_ca;
    int threads;
} replay_args;

static void replay_help(void)
{
    printf("usage: %s\n\n"
           "Verifies the attestation FILE (device key: --pubkey, else the home's) with\n"
           "the prompt and its salt (from the officer's audit export), verifies MODEL\n"
           "against its OMS BUNDLE (publisher: --publisher-key / --cert-chain, else the\n"
           "home's trusted publishers) and that its root digest is the attested one,\n"
           "then reruns the generation in the sandbox with the recorded parameters,\n"
           "seed and kernel path, and compares the output's SHA-256 with the attested\n"
           "one. Nothing is written to any audit log. Exit 0 only when they match.\n"
           "A chat turn's prompt is its conversation transcript (appliance-chat-v1\n"
           "JSON, attest/PREDICATE.md): it is rendered again with its template; a turn\n"
           "the user stopped (finishReason stop) is rerun to its attested length.\n",
           REPLAY_USAGE);
}

static int parse_replay(int argc, char **argv, replay_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"bundle", required_argument, NULL, 'b'},
        {"prompt-file", required_argument, NULL, 'p'},
        {"salt", required_argument, NULL, 's'},
        {"pubkey", required_argument, NULL, 'k'},
        {"publisher-key", required_argument, NULL, 'P'},
        {"cert-chain", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t u;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            a->model = optarg;
            break;
        case 'b':
            a->bundle = optarg;
            break;
        case 'p':
            a->prompt_file = optarg;
            break;
        case 's':
            a->salt_hex = optarg;
            break;
        case 'k':
            a->pubkey = optarg;
            break;
        case 'P':
            a->publisher_key = optarg;
            break;
        case 'c':
            if (a->n_ca == 8)
                return cli_usage_error("attest replay", REPLAY_USAGE, "at most 8 --cert-chain");
            a->ca[a->n_ca++] = optarg;
            break;
        case 't':
            if (cli_parse_u64(optarg, 256, &u) != 0 || u == 0)
                return cli_usage_error("attest replay", REPLAY_USAGE, "invalid -t '%s'", optarg);
            a->threads = (int)u;
            break;
        case 'h':
            replay_help();
            return EXIT_OK;
        default:
            return cli_bad_option("attest replay", REPLAY_USAGE, argc, argv);
        }
    }
    if (argc - optind != 1 || !a->model || !a->bundle || !a->prompt_file || !a->salt_hex)
        return cli_usage_error("attest replay", REPLAY_USAGE,
                               "give FILE, --model, --bundle, --prompt-file and --salt");
    a->file = argv[optind];
    return -1;
}

/* The model's signed file digest and root digest, from a bundle verified
 * against the given publisher material or the home's trusted publishers. */
static int verify_model_bundle(const app_ctx *ctx, const replay_args *a, char sha[65],
                               char root[65], char *err, size_t errlen)
{
    size_t len;
    char *json = cli_read_file(a->bundle, 16u << 20, &len, err, errlen), signer[OMS_SIGNER_MAX];
    oms_bundle b;
    unsigned char d[OMS_DIGEST_MAX];
    size_t dl;
    const char *ht;
    if (!json)
        return -1;
    int rc = oms_bundle_parse((const unsigned char *)json, len, &b, err, errlen);
    free(json);
    if (rc != 0)
        return -1;
    if (a->publisher_key || a->n_ca) {
        oms_trust t = {
            .public_key_pem = a->publisher_key, .ca_paths = a->ca, .n_ca_paths = a->n_ca};
        rc = oms_bundle_verify(&b, a->publisher_key ? OMS_METHOD_KEY : OMS_METHOD_CERTIFICATE, &t,
                               signer, sizeof signer, err, errlen);
    } else {
        admin ad;
        rc = admin_open(ctx, NULL, "attest replay", &ad);
        if (rc == 0) {
            rc = trust_verify_bundle(&ad.pol, &ad.h, &b, signer, sizeof signer, err, errlen);
            admin_close(&ad);
        } else
            snprintf(err, errlen, "no publisher given and no appliance home to trust one");
    }
    if (rc == 0 && (oms_manifest_single_file(&b.manifest, d, &dl, &ht, err, errlen) != 0 ||
                    strcmp(ht, "sha256") != 0 || dl != 32)) {
        snprintf(err, errlen, "the bundle does not sign one sha256 model file");
        rc = -1;
    }
    if (rc == 0) {
        sodium_bin2hex(sha, 65, d, 32);
        snprintf(root, 65, "%s", b.manifest.root_digest);
    }
    oms_bundle_free(&b);
    return rc;
}

static int load_device_key(const app_ctx *ctx, const replay_args *a, uint8_t pk[32], char *err,
                           size_t errlen)
{
    char dir[HOME_PATH_CAP];
    home h;
    if (a->pubkey)
        return keys_load_ed25519_public(a->pubkey, pk, err, errlen);
    if (cli_resolve_home(ctx, NULL, dir, sizeof dir) != 0 ||
        home_layout(dir, &h, err, errlen) != 0) {
        snprintf(err, errlen, "no --pubkey and no appliance home");
        return -1;
    }
    return keys_load_ed25519_public(h.device_pub, pk, err, errlen);
}

/* The recorded request, rerun in the sandbox; a chat turn when chat is not
 * NULL (its transcript parsed from the prompt). */
static int rerun(const app_ctx *ctx, const replay_args *a, const attest_verified *v,
                 const char *prompt, const chat_transcript *chat, const char *sha, gen_outcome *out)
{
    gen_request req = {.model_path = a->model,
                       .prompt = prompt,
                       .kernels = v->kernels,
                       .max_tokens = v->sampling.max_tokens,
                       .threads = a->threads,
                       .reply_timeout_ms = 600000,
                       .replay = 1,
                       .expect_sha256 = sha};
    req.sampling = (engine_sampler_params){
        v->sampling.temperature,    v->sampling.top_k,         v->sampling.top_p, v->sampling.min_p,
        v->sampling.repeat_penalty, v->sampling.repeat_last_n, v->sampling.seed};
    gen_chat gc = {.cancel_fd = -1};
    if (chat) {
        gc.template_name = chat->template_name;
        gc.messages = chat->messages;
        gc.n_messages = chat->n_messages;
        gc.conversation_id = "";
        gc.user_bytes = chat->messages[chat->n_messages - 1].len;
        req.chat = &gc;
        /* A turn the user stopped is reproduced by its length: the engine
         * finishes the text the same way (engine_generate_params.cancel). */
        if (strcmp(v->finish_reason, "stop") == 0 && v->output_tokens <= UINT32_MAX)
            req.max_tokens = (uint32_t)v->output_tokens;
    }
    return generate_as_monitor(ctx, &req, NULL, NULL, out);
}

int attest_replay_cmd(const app_ctx *ctx, int argc, char **argv)
{
    replay_args a = {.threads = 1};
    int rc = parse_replay(argc, argv, &a);
    if (rc >= 0)
        return rc;
    char err[768], sha[65], root[65], got[65];
    uint8_t pk[32], salt[ATTEST_SALT_LEN], d[32];
    size_t env_len, prompt_len, salt_len;
    char *env = NULL, *prompt = NULL;
    attest_verified v;
    rc = EXIT_FAIL;
    if (sodium_hex2bin(salt, sizeof salt, a.salt_hex, strlen(a.salt_hex), NULL, &salt_len, NULL) !=
            0 ||
        salt_len != sizeof salt) {
        cli_error("attest replay", "--salt must be 64 hex digits");
        return EXIT_USAGE;
    }
    if (load_device_key(ctx, &a, pk, err, sizeof err) != 0 ||
        !(env = cli_read_file(a.file, 1u << 20, &env_len, err, sizeof err)) ||
        !(prompt = cli_read_file(a.prompt_file, 16u << 20, &prompt_len, err, sizeof err)))
        goto fail;
    attest_expect ex = {.prompt = (const uint8_t *)prompt, .prompt_len = prompt_len, .salt = salt};
    if (attest_verify(env, env_len, pk, &ex, &v, err, sizeof err) != ATTEST_OK)
        goto fail;
    if (verify_model_bundle(ctx, &a, sha, root, err, sizeof err) != 0)
        goto fail;
    if (strcmp(root, v.model_digest) != 0) {
        snprintf(err, sizeof err, "the bundle's model (root %s) is not the attested one (%s)", root,
                 v.model_digest);
        goto fail;
    }
    chat_transcript chat;
    int is_chat = chat_transcript_parse(prompt, prompt_len, &chat, err, sizeof err);
    if (is_chat < 0)
        goto fail;
    if (memchr(prompt, 0, prompt_len)) {
        snprintf(err, sizeof err, "the prompt file holds a NUL byte, which no prompt can");
        chat_transcript_free(&chat);
        goto fail;
    }
    gen_outcome out;
    rc = rerun(ctx, &a, &v, prompt, is_chat ? &chat : NULL, sha, &out);
    chat_transcript_free(&chat);
    if (rc != EXIT_OK) {
        rc = EXIT_FAIL;
        goto done; /* the monitor printed why */
    }
    rc = EXIT_FAIL;
    SHA256((const uint8_t *)out.result.text, out.result.text_len, d);
    sodium_bin2hex(got, sizeof got, d, sizeof d);
    if (sodium_memcmp(got, v.output_sha256, 64) == 0) {
        printf("replay matches: output sha256 %s (%zu tokens, seed %llu, kernels %s, %d "
               "thread%s%s)\n",
               got, out.result.n_tokens, (unsigned long long)v.sampling.seed, v.kernels, a.threads,
               a.threads == 1 ? "" : "s", is_chat ? ", chat turn" : "");
        rc = EXIT_OK;
    } else
        cli_error("attest replay", "replay differs: output sha256 %s, attested %s", got,
                  v.output_sha256);
    gen_outcome_free(&out);
    goto done;
fail:
    cli_error("attest replay", "%s", err);
done:
    free(env);
    free(prompt);
    return rc;
}
