/* The command table. Each command lives in its own cmd_*.c file. */
#include "cli.h"
#include "commands.h"

static const command table[] = {
    {"init", "create the appliance home: keys, policy, audit and model places", cmd_init},
    {"status", "show the home, policy digest, key fingerprints and what exists", cmd_status},
    {"generate", "generate text from a model and a prompt", cmd_generate},
    {"chat", "talk with a model in the terminal, every turn audited", cmd_chat},
    {"bench", "measure prefill and decode speed against the memory bound", cmd_bench},
    {"model", "install, list and remove signed models", cmd_model},
    {"trust", "add, list and remove trusted model publishers", cmd_trust},
    {"image", "sign, verify and inspect model signatures (OMS)", cmd_image},
    {"audit", "verify, show, prove and checkpoint the audit log", cmd_audit},
    {"attest", "verify attestations offline with the device public key", cmd_attest},
    {"keygen", "make a device, reviewer or publisher key pair", cmd_keygen},
    {"policy", "validate, show and fingerprint the policy", cmd_policy},
    {"version", "print version and build id", cmd_version},
};

const command *commands_table(size_t *count)
{
    *count = sizeof table / sizeof table[0];
    return table;
}
