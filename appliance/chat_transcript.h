/* The committed form of a chat turn (internal to appliance/): the
 * conversation the engine was given, as canonical JSON. It is the "prompt"
 * of a chat turn everywhere a prompt is recorded: the prompt audit entry's
 * content and the attestation's prompt commitment (attest/PREDICATE.md,
 * "Chat turns"), so `attest replay` can render it again with the same
 * template and get the same tokens.
 *
 *   {"format":"appliance-chat-v1","messages":[{"content":C,"role":R},...],
 *    "template":T}
 *
 * on one line: keys sorted, no whitespace, UTF-8 as is (only '"', '\\' and
 * control characters escaped, "/" not escaped), as jansson writes with
 * JSON_COMPACT | JSON_SORT_KEYS. R is system, user or assistant; T a
 * chat_template_name. */
#ifndef APPLIANCE_CHAT_TRANSCRIPT_H
#define APPLIANCE_CHAT_TRANSCRIPT_H

#include <stddef.h>

#include "chat_template.h"

#define CHAT_TRANSCRIPT_FORMAT "appliance-chat-v1"

/* The canonical JSON of a conversation (malloc'd, NUL-terminated); NULL on
 * out of memory or text that is not valid UTF-8 or holds a NUL. */
char *chat_transcript_json(const char *template_name, const chat_message *msgs, size_t n,
                           size_t *len);

typedef struct chat_transcript {
    char template_name[16];
    chat_message *messages; /* contents point into the parsed document */
    size_t n_messages;
    void *doc; /* the parsed JSON, owned */
} chat_transcript;

/* Reads text as a transcript. Returns 1 when it is one, exactly in
 * canonical form (filled; free with chat_transcript_free); 0 when it does
 * not claim to be one (no "format" of ours: a plain prompt); -1 with err
 * when it claims to be one but is not canonical or not valid. */
int chat_transcript_parse(const char *text, size_t len, chat_transcript *t, char *err,
                          size_t errlen);
void chat_transcript_free(chat_transcript *t);

#endif
