/* The command table. Each command lives in its own cmd_*.c file. */
#include "cli.h"
#include "commands.h"

static const command table[] = {
    {"version", "print version and build id", cmd_version},
    {"image", "sign, verify and inspect model signatures (OMS)", cmd_image},
};

const command *commands_table(size_t *count)
{
    *count = sizeof table / sizeof table[0];
    return table;
}
