/* Fuzz target: a chat transcript comes from an auditor's file (attest
 * replay --prompt-file). The parser must accept or refuse any bytes without
 * crashing, and what it accepts must be exactly the canonical text that
 * chat_transcript_json writes for the same conversation. */
#include "appliance/chat_transcript.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    chat_transcript t;
    char err[256];
    size_t len;
    if (chat_transcript_parse((const char *)data, size, &t, err, sizeof err) != 1)
        return 0;
    char *again = chat_transcript_json(t.template_name, t.messages, t.n_messages, &len);
    if (!again || len != size || memcmp(again, data, size) != 0)
        abort();
    free(again);
    chat_transcript_free(&t);
    return 0;
}
