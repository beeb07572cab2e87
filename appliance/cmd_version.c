#include "build_info.h"
#include "commands.h"
#include "engine.h"

#include <getopt.h>

#define VERSION_USAGE "appliance version [--help]"

int cmd_version(const app_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    (void)ctx;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("usage: %s\nPrints the version, the git commit and compiler of this build,\n"
                   "the kernel sets this CPU can run, and the result of checking each SIMD set\n"
                   "against the scalar reference, bit for bit (exit 1 if one differs).\n",
                   VERSION_USAGE);
            return EXIT_OK;
        }
        return cli_bad_option("version", VERSION_USAGE, argc, argv);
    }
    if (optind < argc)
        return cli_usage_error("version", VERSION_USAGE, "unexpected argument '%s'", argv[optind]);
    printf("appliance %s\nbuild: commit %s, %s, %s\nengine %s, kernels: %s\n", APPLIANCE_VERSION,
           APPLIANCE_GIT_COMMIT, APPLIANCE_COMPILER, APPLIANCE_BUILD_TYPE, ENGINE_VERSION,
           engine_kernels_available());
    char report[1024];
    const int failed = engine_kernels_self_check(report, sizeof report);
    printf("%s", report);
    if (failed) {
        fprintf(stderr, "appliance version: a kernel set differs from the scalar reference; "
                        "models load with the best set that agrees\n");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}
