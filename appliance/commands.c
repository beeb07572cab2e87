/* The command table. Each command lives in its own cmd_*.c file. */
#include "cli.h"
#include "commands.h"

static const command table[] = {
    {"version", "print version and build id", cmd_version},
    {"audit", "verify, show, prove and checkpoint the audit log", cmd_audit},
};

const command *commands_table(size_t *count)
{
    *count = sizeof table / sizeof table[0];
    return table;
}
