/* Entry points of the subcommands (internal to appliance/). */
#ifndef APPLIANCE_COMMANDS_H
#define APPLIANCE_COMMANDS_H
#include "cli.h"

int cmd_init(const app_ctx *ctx, int argc, char **argv);
int cmd_status(const app_ctx *ctx, int argc, char **argv);
int cmd_image(const app_ctx *ctx, int argc, char **argv);
int cmd_audit(const app_ctx *ctx, int argc, char **argv);
int cmd_attest(const app_ctx *ctx, int argc, char **argv);
int attest_replay_cmd(const app_ctx *ctx, int argc, char **argv);
int attest_export_cmd(const app_ctx *ctx, int argc, char **argv);
int audit_export_cmd(const app_ctx *ctx, int argc, char **argv);
int cmd_keygen(const app_ctx *ctx, int argc, char **argv);
int cmd_policy(const app_ctx *ctx, int argc, char **argv);
int cmd_version(const app_ctx *ctx, int argc, char **argv);
int cmd_generate(const app_ctx *ctx, int argc, char **argv);
int cmd_chat(const app_ctx *ctx, int argc, char **argv);
int cmd_bench(const app_ctx *ctx, int argc, char **argv);
int cmd_model(const app_ctx *ctx, int argc, char **argv);
int cmd_trust(const app_ctx *ctx, int argc, char **argv);

#endif
