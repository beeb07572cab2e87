/* appliance: one binary, git-style subcommands. */
#include "build_info.h"
#include "cli.h"
#include "engine.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define MAIN_USAGE "appliance [--home DIR] COMMAND [ARGS...]"

static void print_version(FILE *out)
{
    fprintf(out, "appliance %s\n", APPLIANCE_VERSION);
    fprintf(out, "build: commit %s, %s, %s\n", APPLIANCE_GIT_COMMIT, APPLIANCE_COMPILER,
            APPLIANCE_BUILD_TYPE);
    fprintf(out, "engine %s, kernels: %s\n", ENGINE_VERSION, engine_kernels_available());
}

static void print_help(FILE *out)
{
    size_t n;
    const command *cmds = commands_table(&n);
    fprintf(out, "usage: %s\n\n", MAIN_USAGE);
    fprintf(out, "An offline, sandboxed, audited LLM runtime.\n\nCommands:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(out, "\nGlobal options:\n"
                 "  --home DIR   appliance home (else $APPLIANCE_HOME, else ~/.appliance)\n"
                 "  --help       this text; 'appliance COMMAND --help' for one command\n"
                 "  --version    version and build id\n");
}

static const command *find_command(const char *name)
{
    size_t n;
    const command *cmds = commands_table(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    app_ctx ctx = {0};
    int c;
    /* '+' stops at the first non-option: the command and its own flags. */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            ctx.home_flag = optarg;
            break;
        case 'h':
            print_help(stdout);
            return EXIT_OK;
        case 'V':
            print_version(stdout);
            return EXIT_OK;
        default:
            return cli_bad_option(NULL, MAIN_USAGE, argc, argv);
        }
    }
    if (optind >= argc)
        return cli_usage_error(NULL, MAIN_USAGE, "no command given");
    const command *cmd = find_command(argv[optind]);
    if (!cmd)
        return cli_usage_error(NULL, MAIN_USAGE, "unknown command '%s'", argv[optind]);
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* re-initialise getopt for the command's own parser */
    return cmd->run(&ctx, sub_argc, sub_argv);
}
