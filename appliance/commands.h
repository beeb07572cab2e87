/* Entry points of the subcommands (internal to appliance/). */
#ifndef APPLIANCE_COMMANDS_H
#define APPLIANCE_COMMANDS_H
#include "cli.h"

int cmd_version(const app_ctx *ctx, int argc, char **argv);
int cmd_generate(const app_ctx *ctx, int argc, char **argv);
int cmd_bench(const app_ctx *ctx, int argc, char **argv);

#endif
