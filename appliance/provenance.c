/* GGUF provenance: the key table, the worker's sanitiser and encoder, and
 * the monitor's strict decoder. See provenance.h for the contract. */
#include "provenance.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const provenance_key provenance_keys[PROVENANCE_KEYS] = {
    {"general.name", "name", 0},
    {"general.basename", "base name", 0},
    {"general.finetune", "finetune", 0},
    {"general.size_label", "size", 0},
    {"general.version", "version", 0},
    {"general.architecture", "architecture", 0},
    {"general.file_type", "file type", 1},
    {"general.author", "author", 0},
    {"general.organization", "organization", 0},
    {"general.quantized_by", "quantized by", 0},
    {"general.license", "license", 0},
    {"general.license.name", "license name", 0},
    {"general.license.link", "license link", 0},
    {"general.url", "url", 0},
    {"general.repo_url", "repository", 0},
    {"general.source.url", "source url", 0},
    {"general.source.repo_url", "source repository", 0},
    {"general.source.huggingface.repository", "source (Hugging Face)", 0},
    {"general.base_model.count", "base models", 1},
    {"general.base_model.0.name", "base model", 0},
    {"general.base_model.0.organization", "base model org", 0},
    {"general.base_model.0.repo_url", "base model repository", 0},
    {"general.base_model.1.name", "base model 2", 0},
    {"general.base_model.1.organization", "base model 2 org", 0},
    {"general.base_model.1.repo_url", "base model 2 repository", 0},
};

/* Decodes one UTF-8 character at s[0, len): its length (1-4) and code
 * point, or 0 when the bytes there are not well-formed UTF-8 (overlong
 * forms, surrogates and values past U+10FFFF included). */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned c = s[0];
    size_t need;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf)
        need = 1, *cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        need = 2, *cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 3, *cp = c & 0x07;
    else
        return 0;
    if (len <= need)
        return 0;
    for (size_t k = 1; k <= need; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[k] & 0x3f);
    }
    if ((need == 2 && *cp < 0x800) || (need == 3 && (*cp < 0x10000 || *cp > 0x10ffff)) ||
        (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return need + 1;
}

static int is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Embeddings, overrides and isolates reorder what a terminal shows
 * ("Trojan Source"), so a value could display as something it is not. */
static int is_bidi_control(uint32_t cp)
{
    return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e ||
           cp == 0x200f || cp == 0x061c;
}

int provenance_text_ok(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    if (len == 0 || len > PROVENANCE_VALUE_MAX)
        return 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (n == 0 || is_control(cp) || is_bidi_control(cp))
            return 0;
        i += n;
    }
    return 1;
}

size_t provenance_sanitize(const char *in, size_t len, char *out, size_t cap)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0, max = cap > PROVENANCE_VALUE_MAX ? PROVENANCE_VALUE_MAX : cap - 1;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        const char *piece = (const char *)s + i;
        size_t plen = n;
        if (n == 0 || is_bidi_control(cp)) {
            piece = replacement;
            plen = 3;
        } else if (is_control(cp)) {
            piece = " ";
            plen = 1;
        }
        if (o + plen > max)
            break; /* cut at a character boundary */
        if (!(plen == 1 && *piece == ' ' && (o == 0 || out[o - 1] == ' ')))
            memcpy(out + o, piece, plen), o += plen; /* no leading or doubled spaces */
        i += n ? n : 1;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = 0;
    return o;
}

void provenance_encode(const engine_model *m, ipc_writer *w)
{
    char values[PROVENANCE_KEYS][PROVENANCE_VALUE_MAX + 1];
    size_t lens[PROVENANCE_KEYS];
    uint32_t count = 0;
    for (size_t i = 0; i < PROVENANCE_KEYS; i++) {
        engine_meta_value v;
        engine_model_meta(m, provenance_keys[i].gguf_key, &v);
        lens[i] = 0;
        if (provenance_keys[i].integer && v.kind == ENGINE_META_UINT)
            lens[i] = (size_t)snprintf(values[i], sizeof values[i], "%" PRIu64, v.u);
        else if (!provenance_keys[i].integer && v.kind == ENGINE_META_STRING)
            lens[i] = provenance_sanitize(v.str, v.len, values[i], sizeof values[i]);
        count += lens[i] > 0;
    }
    ipc_put_u32(w, count);
    for (size_t i = 0; i < PROVENANCE_KEYS; i++)
        if (lens[i] > 0) {
            ipc_put_u8(w, (uint8_t)i);
            ipc_put_bytes(w, values[i], lens[i]);
        }
}

const char *provenance_file_type_name(uint64_t t)
{
    /* llama.cpp's llama_ftype (the values GGUF writers store). */
    static const struct {
        uint64_t value;
        const char *name;
    } names[] = {
        {0, "F32"},      {1, "F16"},      {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},
        {8, "Q5_0"},     {9, "Q5_1"},     {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"},
        {13, "Q3_K_L"},  {14, "Q4_K_S"},  {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"},
        {18, "Q6_K"},    {19, "IQ2_XXS"}, {20, "IQ2_XS"}, {21, "Q2_K_S"}, {22, "IQ3_XS"},
        {23, "IQ3_XXS"}, {24, "IQ1_S"},   {25, "IQ4_NL"}, {26, "IQ3_S"},  {27, "IQ3_M"},
        {28, "IQ2_S"},   {29, "IQ2_M"},   {30, "IQ4_XS"}, {31, "IQ1_M"},  {32, "BF16"},
        {36, "TQ1_0"},   {37, "TQ2_0"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].value == t)
            return names[i].name;
    return NULL;
}

/* An integer key's decimal text (1-20 digits, no sign, no leading zero)
 * into its display form. */
static int integer_display(size_t key, const uint8_t *p, size_t n, char *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20 || (n > 1 && p[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9' || v > (UINT64_MAX - (p[i] - '0')) / 10)
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    const char *name = strcmp(provenance_keys[key].gguf_key, "general.file_type") == 0
                           ? provenance_file_type_name(v)
                           : NULL;
    if (name)
        snprintf(out, PROVENANCE_VALUE_MAX + 1, "%s (%" PRIu64 ")", name, v);
    else
        snprintf(out, PROVENANCE_VALUE_MAX + 1, "%" PRIu64, v);
    return 0;
}

int provenance_decode(const uint8_t *payload, size_t len, model_provenance *out)
{
    ipc_reader r;
    uint32_t count;
    int last = -1;
    memset(out, 0, sizeof *out);
    ipc_reader_init(&r, payload, len);
    if (ipc_get_u32(&r, &count) != 0 || count > PROVENANCE_KEYS)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t key;
        const uint8_t *p;
        size_t n;
        if (ipc_get_u8(&r, &key) != 0 || key >= PROVENANCE_KEYS || (int)key <= last ||
            ipc_get_bytes(&r, &p, &n, PROVENANCE_VALUE_MAX) != 0 ||
            !provenance_text_ok((const char *)p, n))
            goto bad;
        last = key;
        out->item[out->n].key = key;
        if (provenance_keys[key].integer) {
            if (integer_display(key, p, n, out->item[out->n].value) != 0)
                goto bad;
        } else {
            memcpy(out->item[out->n].value, p, n);
            out->item[out->n].value[n] = 0;
        }
        out->n++;
    }
    if (ipc_reader_done(&r))
        return 0;
bad:
    memset(out, 0, sizeof *out);
    return -1;
}

const char *provenance_get(const model_provenance *p, const char *gguf_key)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(provenance_keys[p->item[i].key].gguf_key, gguf_key) == 0)
            return p->item[i].value;
    return NULL;
}

json_t *provenance_to_json(const model_provenance *p)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < p->n; i++)
        if (json_object_set_new(o, provenance_keys[p->item[i].key].gguf_key,
                                json_string(p->item[i].value)) != 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

void provenance_from_json(const json_t *o, model_provenance *out)
{
    memset(out, 0, sizeof *out);
    for (size_t k = 0; json_is_object(o) && k < PROVENANCE_KEYS; k++) {
        const json_t *v = json_object_get(o, provenance_keys[k].gguf_key);
        const char *s = json_string_value(v);
        if (!s || !provenance_text_ok(s, json_string_length(v)))
            continue;
        out->item[out->n].key = (uint8_t)k;
        memcpy(out->item[out->n].value, s, json_string_length(v) + 1);
        out->n++;
    }
}
