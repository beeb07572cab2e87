/* Canonical JSON of a conversation (chat_transcript.h). */
#include "chat_transcript.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dump_canonical(json_t *doc, size_t *len)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (text && len)
        *len = strlen(text);
    return text;
}

char *chat_transcript_json(const char *template_name, const chat_message *msgs, size_t n,
                           size_t *len)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        if (memchr(msgs[i].content, 0, msgs[i].len)) {
            json_decref(list);
            return NULL;
        }
        json_t *text = json_stringn(msgs[i].content, msgs[i].len); /* NULL: not UTF-8 */
        json_t *m =
            text ? json_pack("{s:o, s:s}", "content", text, "role", chat_role_name(msgs[i].role))
                 : NULL;
        if (!m || json_array_append_new(list, m) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    json_t *doc = list ? json_pack("{s:s, s:o, s:s}", "format", CHAT_TRANSCRIPT_FORMAT, "messages",
                                   list, "template", template_name)
                       : NULL;
    char *out = doc ? dump_canonical(doc, len) : NULL;
    json_decref(doc);
    return out;
}

static int bad(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "the chat transcript is invalid: %s", what);
    return -1;
}

/* Fills t->messages from the "messages" array of {content, role} objects. */
static int take_messages(json_t *list, chat_transcript *t, char *err, size_t errlen)
{
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n == 0)
        return bad(err, errlen, "\"messages\" is not a non-empty array");
    if (!(t->messages = calloc(n, sizeof *t->messages)))
        return bad(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(list, i), *c = json_object_get(m, "content");
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!json_is_object(m) || json_object_size(m) != 2 || !json_is_string(c) || !role ||
            chat_role_from_name(role, &t->messages[i].role) != 0)
            return bad(err, errlen, "a message is not {\"content\": text, \"role\": role}");
        t->messages[i].content = json_string_value(c);
        t->messages[i].len = json_string_length(c);
    }
    t->n_messages = n;
    return 0;
}

int chat_transcript_parse(const char *text, size_t len, chat_transcript *t, char *err,
                          size_t errlen)
{
    json_error_t je;
    memset(t, 0, sizeof *t);
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    const char *format = json_string_value(json_object_get(doc, "format"));
    if (!json_is_object(doc) || !format || strcmp(format, CHAT_TRANSCRIPT_FORMAT) != 0) {
        json_decref(doc);
        return 0;
    }
    t->doc = doc;
    const char *tmpl = json_string_value(json_object_get(doc, "template"));
    chat_template id;
    if (json_object_size(doc) != 3 || !tmpl || chat_template_from_name(tmpl, &id) != 0) {
        chat_transcript_free(t);
        return bad(err, errlen, "it needs exactly format, messages and a known template");
    }
    snprintf(t->template_name, sizeof t->template_name, "%s", tmpl);
    if (take_messages(json_object_get(doc, "messages"), t, err, errlen) != 0) {
        chat_transcript_free(t);
        return -1;
    }
    /* One text per conversation: only the canonical bytes are accepted. */
    size_t clen;
    char *canon = dump_canonical(doc, &clen);
    int same = canon && clen == len && memcmp(canon, text, len) == 0;
    free(canon);
    if (!same) {
        chat_transcript_free(t);
        return bad(err, errlen, "it is not in canonical form (compact, keys sorted)");
    }
    return 1;
}

void chat_transcript_free(chat_transcript *t)
{
    free(t->messages);
    json_decref(t->doc);
    memset(t, 0, sizeof *t);
}
