/* Chat templates: a conversation (system, user and assistant messages)
 * becomes the token sequence a chat model was trained on (internal to
 * appliance/; the sandboxed worker renders, the monitor only names the
 * template).
 *
 * No Jinja is run: the known templates are recognised by their markers in
 * the model's tokenizer.chat_template, or by the model's vocabulary and
 * name, and rendered by code. Special tokens (BOS, EOS, <|im_start|>, ...)
 * come from the template side only, as ids; every message's text goes
 * through engine_tokenize_fragment, which never yields a special token, so
 * a user who types "<|im_start|>system" or "</s>" gets plain text.
 *
 * An assistant message is rendered as the exact text the engine produced
 * after the template's opening of the answer, then the template's end of
 * turn: re-rendering a conversation reproduces the tokens the engine saw,
 * so the KV cache of the previous turn is reused (engine_generate_tokens). */
#ifndef APPLIANCE_CHAT_TEMPLATE_H
#define APPLIANCE_CHAT_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

typedef enum {
    CHAT_TEMPLATE_PLAIN,   /* "User: ...\nAssistant:", for models without a chat format */
    CHAT_TEMPLATE_LLAMA2,  /* <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] answer</s> */
    CHAT_TEMPLATE_ZEPHYR,  /* TinyLlama-chat / Zephyr: <|user|>\n...</s>\n<|assistant|>\n */
    CHAT_TEMPLATE_MISTRAL, /* <s>[INST] ... [/INST] answer</s>[INST] ... (system joined to the
                              first user message) */
    CHAT_TEMPLATE_CHATML,  /* <|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n */
} chat_template;

#define CHAT_TEMPLATE_COUNT 5

typedef enum { CHAT_ROLE_SYSTEM, CHAT_ROLE_USER, CHAT_ROLE_ASSISTANT } chat_role;

typedef struct chat_message {
    chat_role role;
    const char *content; /* UTF-8, not necessarily NUL-terminated */
    size_t len;
} chat_message;

/* "plain", "llama2", "zephyr", "mistral", "chatml". */
const char *chat_template_name(chat_template t);
/* 0 and *t for a known name, else -1. */
int chat_template_from_name(const char *name, chat_template *t);
/* "system", "user", "assistant"; 0 and *r from such a name, else -1. */
const char *chat_role_name(chat_role r);
int chat_role_from_name(const char *name, chat_role *r);

/* Picks the template for m and says why in *source ("tokenizer.chat_template",
 * "vocabulary", "model name" or "fallback"): the markers of the Jinja text
 * first, then ChatML's special tokens in the vocabulary, then the model's
 * general.name; CHAT_TEMPLATE_PLAIN otherwise. ChatML is chosen only where
 * the vocabulary has <|im_start|> and <|im_end|> as special tokens. */
chat_template chat_template_detect(const engine_model *m, const char **source);

/* 0 when m can render t; else -1 with err (ChatML without its tokens). */
int chat_template_usable(const engine_model *m, chat_template t, char *err, size_t errlen);

/* Renders msgs (optionally one system message first, then user and
 * assistant alternating, ending with a user message) followed by the opening
 * of the assistant's answer. *ids is malloc'd (free it). Fails with err on a
 * wrong order of roles, invalid UTF-8 or a template m cannot render. */
int chat_template_render(const engine_model *m, chat_template t, const chat_message *msgs, size_t n,
                         int32_t **ids, size_t *n_ids, char *err, size_t errlen);

/* Ids besides EOS that end an answer (ChatML's <|im_end|>); returns how
 * many were written to out (at most cap). */
size_t chat_template_end_tokens(const engine_model *m, chat_template t, int32_t *out, size_t cap);

/* Stop strings of the template (the plain one stops at "\nUser:"), NULL-
 * terminated, as a static table. */
const char *const *chat_template_stops(chat_template t, size_t *n);

#endif
