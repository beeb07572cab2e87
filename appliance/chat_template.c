/* Chat templates rendered by code (chat_template.h): a token list built from
 * plain-text fragments and special-token ids.
 *
 * The layouts, with [X] a special token's id, S the system message, U a
 * user message and A an assistant message exactly as the engine produced
 * it; each layout ends with the opening of the next answer:
 *
 *   llama2   [BOS] "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]" A [EOS]
 *            [BOS] "[INST] U [/INST]" ...   (the system block in the first only)
 *   mistral  [BOS] "[INST] S\n\nU [/INST]" A [EOS] "[INST] U [/INST]" ...
 *   zephyr   [BOS] "<|system|>\nS" [EOS] "\n<|user|>\nU" [EOS] "\n<|assistant|>\n"
 *            A [EOS] "\n" ...   (TinyLlama-chat; its tags are plain text; BOS
 *            only when the model adds one)
 *   chatml   [BOS] [<|im_start|>] "system\nS" [<|im_end|>] "\n" [<|im_start|>]
 *            "user\nU" [<|im_end|>] "\n" [<|im_start|>] "assistant\n" A
 *            [<|im_end|>] "\n" ...   (BOS only when the model adds one)
 *   plain    [BOS] "System: S\nUser: U\nAssistant:" A "\n" ...   (BOS when the
 *            model adds one; the answer also stops at "\nUser:")
 *
 * Consecutive text is one fragment; a fragment that starts the input or
 * follows a special token gets SentencePiece's leading space where the
 * vocabulary uses one, as llama.cpp tokenizes rendered templates. */
#include "chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const template_names[CHAT_TEMPLATE_COUNT] = {"plain", "llama2", "zephyr",
                                                                "mistral", "chatml"};
static const char *const role_names[] = {"system", "user", "assistant"};

const char *chat_template_name(chat_template t)
{
    return (unsigned)t < CHAT_TEMPLATE_COUNT ? template_names[t] : "unknown";
}

int chat_template_from_name(const char *name, chat_template *t)
{
    for (int i = 0; i < CHAT_TEMPLATE_COUNT; i++)
        if (strcmp(name, template_names[i]) == 0) {
            *t = (chat_template)i;
            return 0;
        }
    return -1;
}

const char *chat_role_name(chat_role r)
{
    return (unsigned)r < 3 ? role_names[r] : "unknown";
}

int chat_role_from_name(const char *name, chat_role *r)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, role_names[i]) == 0) {
            *r = (chat_role)i;
            return 0;
        }
    return -1;
}

/* 1 when needle occurs in hay[0..n). */
static int contains(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return 1;
    return 0;
}

/* Case-insensitive contains, for model names. */
static int contains_ci(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i + k <= n; i++) {
        size_t j = 0;
        while (j < k && (hay[i + j] | 0x20) == (needle[j] | 0x20))
            j++;
        if (j == k)
            return 1;
    }
    return 0;
}

static int32_t special(const engine_model *m, const char *text)
{
    return engine_token_special(m, text, strlen(text));
}

static int has_chatml_tokens(const engine_model *m)
{
    return special(m, "<|im_start|>") >= 0 && special(m, "<|im_end|>") >= 0;
}

chat_template chat_template_detect(const engine_model *m, const char **source)
{
    size_t n;
    const char *jinja = engine_model_meta_str(m, "tokenizer.chat_template", &n);
    *source = "tokenizer.chat_template";
    if (jinja && contains(jinja, n, "<|im_start|>") && has_chatml_tokens(m))
        return CHAT_TEMPLATE_CHATML;
    if (jinja && contains(jinja, n, "<|user|>"))
        return CHAT_TEMPLATE_ZEPHYR;
    if (jinja && contains(jinja, n, "[INST]"))
        return contains(jinja, n, "<<SYS>>") ? CHAT_TEMPLATE_LLAMA2 : CHAT_TEMPLATE_MISTRAL;
    *source = "vocabulary";
    if (has_chatml_tokens(m))
        return CHAT_TEMPLATE_CHATML;
    engine_model_info info;
    engine_model_get_info(m, &info);
    size_t nl = strlen(info.name);
    *source = "model name";
    if (contains_ci(info.name, nl, "tinyllama") || contains_ci(info.name, nl, "zephyr"))
        return CHAT_TEMPLATE_ZEPHYR;
    if (contains_ci(info.name, nl, "mistral") || contains_ci(info.name, nl, "mixtral"))
        return CHAT_TEMPLATE_MISTRAL;
    if ((contains_ci(info.name, nl, "llama-2") || contains_ci(info.name, nl, "llama 2")) &&
        contains_ci(info.name, nl, "chat"))
        return CHAT_TEMPLATE_LLAMA2;
    *source = "fallback";
    return CHAT_TEMPLATE_PLAIN;
}

int chat_template_usable(const engine_model *m, chat_template t, char *err, size_t errlen)
{
    engine_model_info info;
    engine_model_get_info(m, &info);
    if ((unsigned)t >= CHAT_TEMPLATE_COUNT) {
        snprintf(err, errlen, "unknown chat template %d", (int)t);
        return -1;
    }
    if (t == CHAT_TEMPLATE_CHATML && !has_chatml_tokens(m)) {
        snprintf(err, errlen,
                 "the chatml template needs <|im_start|> and <|im_end|> as special tokens, "
                 "which this model's vocabulary lacks");
        return -1;
    }
    if (t != CHAT_TEMPLATE_PLAIN && t != CHAT_TEMPLATE_CHATML && info.eos < 0) {
        snprintf(err, errlen,
                 "the %s template needs an end-of-sequence token, which this model "
                 "lacks",
                 chat_template_name(t));
        return -1;
    }
    return 0;
}

/* ---- the token list: text fragments and special ids ---------------------- */

typedef struct builder {
    const engine_model *m;
    int32_t *ids;
    size_t n, cap;
    char *text; /* the plain text since the last special token */
    size_t tlen, tcap;
    int after_special; /* the pending text starts the input or follows a special */
    int failed;
    char *err;
    size_t errlen;
} builder;

static void grow_ids(builder *b, size_t more)
{
    if (b->failed || b->n + more <= b->cap)
        return;
    size_t cap = (b->n + more) * 2;
    int32_t *p = realloc(b->ids, cap * sizeof *p);
    if (!p) {
        b->failed = 1;
        snprintf(b->err, b->errlen, "out of memory rendering a conversation");
        return;
    }
    b->ids = p;
    b->cap = cap;
}

static void add_text(builder *b, const char *s, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (b->tlen + n + 1 > b->tcap) {
        size_t cap = (b->tlen + n + 1) * 2;
        char *p = realloc(b->text, cap);
        if (!p) {
            b->failed = 1;
            snprintf(b->err, b->errlen, "out of memory rendering a conversation");
            return;
        }
        b->text = p;
        b->tcap = cap;
    }
    memcpy(b->text + b->tlen, s, n);
    b->tlen += n;
}

static void add_str(builder *b, const char *s)
{
    add_text(b, s, strlen(s));
}

/* Tokenizes the pending text as one fragment. */
static void flush_text(builder *b)
{
    int32_t *ids;
    size_t n;
    if (b->failed || b->tlen == 0)
        return;
    if (engine_tokenize_fragment(b->m, b->text, b->tlen, b->after_special, &ids, &n, b->err,
                                 b->errlen) != 0) {
        b->failed = 1;
        return;
    }
    grow_ids(b, n);
    if (!b->failed)
        memcpy(b->ids + b->n, ids, n * sizeof *ids);
    if (!b->failed)
        b->n += n;
    free(ids);
    b->tlen = 0;
    b->after_special = 0;
}

static void add_special(builder *b, int32_t id)
{
    flush_text(b);
    grow_ids(b, 1);
    if (b->failed)
        return;
    b->ids[b->n++] = id;
    b->after_special = 1;
}

/* ---- the templates --------------------------------------------------------- */

static void add_bos(builder *b, int always)
{
    engine_model_info info;
    engine_model_get_info(b->m, &info);
    if (info.bos >= 0 && (always || info.add_bos))
        add_special(b, info.bos);
}

static int32_t eos_of(const engine_model *m)
{
    engine_model_info info;
    engine_model_get_info(m, &info);
    return info.eos;
}

static void add_msg(builder *b, const chat_message *msg)
{
    add_text(b, msg->content, msg->len);
}

/* Llama 2 and Mistral: [INST] blocks, each answer closed by EOS; Llama 2
 * opens every exchange with BOS, Mistral only the conversation. */
static void render_inst(builder *b, int llama2, const chat_message *msgs, size_t n)
{
    const chat_message *sys = n > 0 && msgs[0].role == CHAT_ROLE_SYSTEM ? &msgs[0] : NULL;
    int first = 1;
    for (size_t i = sys ? 1 : 0; i < n; i++) {
        if (msgs[i].role == CHAT_ROLE_ASSISTANT) {
            add_msg(b, &msgs[i]);
            add_special(b, eos_of(b->m));
            continue;
        }
        if (first || llama2)
            add_bos(b, 1);
        add_str(b, "[INST] ");
        if (first && sys && llama2) {
            add_str(b, "<<SYS>>\n");
            add_msg(b, sys);
            add_str(b, "\n<</SYS>>\n\n");
        } else if (first && sys) {
            add_msg(b, sys);
            add_str(b, "\n\n");
        }
        add_msg(b, &msgs[i]);
        add_str(b, " [/INST]");
        first = 0;
    }
}

static void render_zephyr(builder *b, const chat_message *msgs, size_t n)
{
    static const char *const tags[] = {"<|system|>\n", "<|user|>\n", "<|assistant|>\n"};
    add_bos(b, 0);
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].role != CHAT_ROLE_ASSISTANT)
            add_str(b, tags[msgs[i].role]);
        add_msg(b, &msgs[i]);
        add_special(b, eos_of(b->m));
        add_str(b, "\n");
        if (msgs[i].role == CHAT_ROLE_USER)
            add_str(b, tags[CHAT_ROLE_ASSISTANT]);
    }
}

static void render_chatml(builder *b, const chat_message *msgs, size_t n)
{
    int32_t start = special(b->m, "<|im_start|>"), end = special(b->m, "<|im_end|>");
    add_bos(b, 0);
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].role != CHAT_ROLE_ASSISTANT) {
            add_special(b, start);
            add_str(b, chat_role_name(msgs[i].role));
            add_str(b, "\n");
        }
        add_msg(b, &msgs[i]);
        add_special(b, end);
        add_str(b, "\n");
        if (msgs[i].role == CHAT_ROLE_USER) {
            add_special(b, start);
            add_str(b, "assistant\n");
        }
    }
}

static void render_plain(builder *b, const chat_message *msgs, size_t n)
{
    static const char *const tags[] = {"System: ", "User: ", ""};
    add_bos(b, 0);
    for (size_t i = 0; i < n; i++) {
        add_str(b, tags[msgs[i].role]);
        add_msg(b, &msgs[i]);
        add_str(b, "\n");
        if (msgs[i].role == CHAT_ROLE_USER)
            add_str(b, "Assistant:");
    }
}

/* System first if at all, then user/assistant alternating, user last. */
static int check_roles(const chat_message *msgs, size_t n, char *err, size_t errlen)
{
    size_t i = n > 0 && msgs[0].role == CHAT_ROLE_SYSTEM ? 1 : 0;
    if (i == n) {
        snprintf(err, errlen, "a conversation needs a user message");
        return -1;
    }
    for (size_t k = 0; i < n; i++, k++)
        if (msgs[i].role != (k % 2 ? CHAT_ROLE_ASSISTANT : CHAT_ROLE_USER)) {
            snprintf(err, errlen,
                     "message %zu is from the %s; a conversation alternates user and "
                     "assistant after an optional system message, ending with the user",
                     i, chat_role_name(msgs[i].role));
            return -1;
        }
    if (msgs[n - 1].role != CHAT_ROLE_USER) {
        snprintf(err, errlen, "a conversation to answer ends with a user message");
        return -1;
    }
    return 0;
}

int chat_template_render(const engine_model *m, chat_template t, const chat_message *msgs, size_t n,
                         int32_t **ids, size_t *n_ids, char *err, size_t errlen)
{
    *ids = NULL;
    *n_ids = 0;
    if (chat_template_usable(m, t, err, errlen) != 0 || check_roles(msgs, n, err, errlen) != 0)
        return -1;
    builder b = {.m = m, .after_special = 1, .err = err, .errlen = errlen};
    switch (t) {
    case CHAT_TEMPLATE_LLAMA2:
    case CHAT_TEMPLATE_MISTRAL:
        render_inst(&b, t == CHAT_TEMPLATE_LLAMA2, msgs, n);
        break;
    case CHAT_TEMPLATE_ZEPHYR:
        render_zephyr(&b, msgs, n);
        break;
    case CHAT_TEMPLATE_CHATML:
        render_chatml(&b, msgs, n);
        break;
    case CHAT_TEMPLATE_PLAIN:
        render_plain(&b, msgs, n);
        break;
    }
    flush_text(&b);
    free(b.text);
    if (b.failed) {
        free(b.ids);
        return -1;
    }
    *ids = b.ids;
    *n_ids = b.n;
    return 0;
}

size_t chat_template_end_tokens(const engine_model *m, chat_template t, int32_t *out, size_t cap)
{
    int32_t end = t == CHAT_TEMPLATE_CHATML ? special(m, "<|im_end|>") : -1;
    if (end < 0 || cap == 0)
        return 0;
    out[0] = end;
    return 1;
}

const char *const *chat_template_stops(chat_template t, size_t *n)
{
    static const char *const plain[] = {"\nUser:", NULL};
    static const char *const none[] = {NULL};
    *n = t == CHAT_TEMPLATE_PLAIN ? 1 : 0;
    return t == CHAT_TEMPLATE_PLAIN ? plain : none;
}
