/* The command table. Each command lives in its own cmd_*.c file. */
#include "cli.h"
#include "commands.h"

static const command table[] = {
    {"version", "print version and build id", cmd_version},
    {"generate", "generate text from a model and a prompt", cmd_generate},
    {"bench", "measure prefill and decode speed against the memory bound", cmd_bench},
};

const command *commands_table(size_t *count)
{
    *count = sizeof table / sizeof table[0];
    return table;
}
