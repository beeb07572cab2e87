/* appliance policy: validate, show and fingerprint the policy file. */
#include "commands.h"
#include "home.h"
#include "policy.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_USAGE "appliance policy check FILE | digest | show | show-sandbox [--home DIR]"

static void policy_help(void)
{
    printf("usage: %s\n\n"
           "  check FILE   validate a policy file strictly (unknown keys and wrong\n"
           "               types are errors naming the JSON path) and summarise it\n"
           "  digest       print the digest of the home's policy: the SHA-256 of the\n"
           "               file's bytes, as recorded in audit entries and attestations\n"
           "  show         print the home's policy with every default filled in\n"
           "  show-sandbox print the seccomp filters of the worker and the monitor,\n"
           "               rule by rule, as they are loaded\n",
           POLICY_USAGE);
}

static void print_summary(const policy *p, const char *digest)
{
    printf("policy digest      %s\n", digest);
    printf("trusted publishers %zu key(s), %zu CA root(s), %zu pinned model(s)\n",
           p->publisher_keys.count, p->ca_roots.count, p->pinned_models.count);
    printf("model loading      %s\n", model_load_mode_name(p->model_load));
    printf("limits             prompt %lld bytes, %lld new tokens, context %lld, %lld req/min\n",
           (long long)p->max_prompt_bytes, (long long)p->max_new_tokens, (long long)p->context,
           (long long)p->requests_per_minute);
    printf("audit content      %s (reviewer key %s), checkpoint every %lld entries\n",
           audit_content_mode_name(p->audit_content), p->reviewer_key,
           (long long)p->checkpoint_interval);
    printf("sandbox            %s\n", p->sandbox_required ? "required" : "optional");
    printf("users              %zu\n", p->n_users);
}

/* One rule a line in three columns: system call, action, why; the action
 * column is as wide as the filter's longest action, so columns never run
 * into each other. */
static void print_filter(sandbox_filter f, const char *title)
{
    int width = 0;
    for (size_t i = 0; i < sandbox_filter_size(f); i++) {
        int n = (int)strlen(sandbox_filter_rule(f, i).action);
        width = n > width ? n : width;
    }
    printf("%s (default: %s)\n", title, sandbox_filter_default(f));
    for (size_t i = 0; i < sandbox_filter_size(f); i++) {
        sandbox_rule r = sandbox_filter_rule(f, i);
        printf("  %-16s %-*s  %s\n", r.syscall, width, r.action, r.why);
    }
}

static void show_sandbox(void)
{
    print_filter(SANDBOX_WORKER, "engine worker seccomp filter");
    printf("  before the filter: RLIMIT_CORE=0, not dumpable, every descriptor but the IPC\n"
           "  socket and stderr closed, an empty network namespace, Landlock with no\n"
           "  file-system rights, no_new_privs; the filter is synchronised to all threads.\n\n");
    print_filter(SANDBOX_MONITOR, "monitor seccomp filter");
}

static int load_or_report(const char *path, policy *p, char digest[POLICY_DIGEST_HEX])
{
    char err[768];
    if (policy_load_file(path, p, digest, err, sizeof err) != 0) {
        cli_error("policy", "%s", err);
        return -1;
    }
    return 0;
}

static int run_action(const char *action, const char *path)
{
    policy p;
    char digest[POLICY_DIGEST_HEX];
    if (load_or_report(path, &p, digest) != 0)
        return EXIT_FAIL;
    if (strcmp(action, "check") == 0) {
        printf("%s: valid\n", path);
        print_summary(&p, digest);
    } else if (strcmp(action, "digest") == 0) {
        printf("%s\n", digest);
    } else {
        char *text = policy_to_json(&p);
        if (text)
            fputs(text, stdout);
        free(text);
    }
    policy_free(&p);
    return EXIT_OK;
}

int cmd_policy(const app_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *home_flag = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            home_flag = optarg;
            break;
        case 'h':
            policy_help();
            return EXIT_OK;
        default:
            return cli_bad_option("policy", POLICY_USAGE, argc, argv);
        }
    }
    if (optind >= argc)
        return cli_usage_error("policy", POLICY_USAGE, "no action given");
    const char *action = argv[optind++];
    if (strcmp(action, "check") == 0) {
        if (argc - optind != 1)
            return cli_usage_error("policy", POLICY_USAGE, "check takes one FILE");
        return run_action(action, argv[optind]);
    }
    if (strcmp(action, "show-sandbox") == 0) {
        if (optind < argc)
            return cli_usage_error("policy", POLICY_USAGE, "unexpected argument '%s'",
                                   argv[optind]);
        show_sandbox();
        return EXIT_OK;
    }
    if (strcmp(action, "digest") != 0 && strcmp(action, "show") != 0)
        return cli_usage_error("policy", POLICY_USAGE, "unknown action '%s'", action);
    if (optind < argc)
        return cli_usage_error("policy", POLICY_USAGE, "unexpected argument '%s'", argv[optind]);
    char dir[HOME_PATH_CAP], err[512];
    home h;
    if (cli_resolve_home(ctx, home_flag, dir, sizeof dir) != 0 ||
        home_layout(dir, &h, err, sizeof err) != 0) {
        cli_error("policy", "cannot determine the appliance home (set --home or $APPLIANCE_HOME)");
        return EXIT_FAIL;
    }
    return run_action(action, h.policy);
}
