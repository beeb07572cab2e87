/* Canonical JSON: the exact byte layout of audit records (FORMAT.md).
 *
 * The layout equals Python's json.dumps(v, sort_keys=True, separators=(",",
 * ":"), ensure_ascii=False).encode("utf-8") for the values we allow, so an
 * auditor's script can re-derive it with the standard library. */
#include "audit_internal.h"

#include <stdlib.h>
#include <string.h>

static void dump_string(const char *s, size_t n, abuf *out)
{
    static const char digits[] = "0123456789abcdef";
    abuf_put(out, "\"", 1);
    size_t run = 0; /* bytes copied verbatim are flushed in runs */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        default:
            if (c < 0x20) {
                memcpy(u, "\\u00", 4);
                u[4] = digits[c >> 4];
                u[5] = digits[c & 15];
                u[6] = 0;
                esc = u;
            }
        }
        if (!esc)
            continue;
        abuf_put(out, s + run, i - run);
        abuf_puts(out, esc);
        run = i + 1;
    }
    abuf_put(out, s + run, n - run);
    abuf_put(out, "\"", 1);
}

static int key_cmp(const void *a, const void *b)
{
    /* strcmp compares bytes as unsigned char: UTF-8 byte order equals code
     * point order, which is Python's sort order for str keys. */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int dump_object(const json_t *v, abuf *out)
{
    size_t n = json_object_size(v), i = 0;
    const char **keys = n ? malloc(n * sizeof *keys) : NULL;
    const char *key;
    json_t *val;
    if (n && !keys)
        return -1;
    json_object_foreach((json_t *)v, key, val) keys[i++] = key;
    if (n)
        qsort(keys, n, sizeof *keys, key_cmp);
    abuf_put(out, "{", 1);
    int rc = 0;
    for (i = 0; i < n && rc == 0; i++) {
        if (i)
            abuf_put(out, ",", 1);
        dump_string(keys[i], strlen(keys[i]), out);
        abuf_put(out, ":", 1);
        rc = canon_dump(json_object_get(v, keys[i]), out);
    }
    abuf_put(out, "}", 1);
    free(keys);
    return rc;
}

int canon_dump(const json_t *v, abuf *out)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return dump_object(v, out);
    case JSON_ARRAY: {
        abuf_put(out, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                abuf_put(out, ",", 1);
            if (canon_dump(json_array_get(v, i), out) != 0)
                return -1;
        }
        abuf_put(out, "]", 1);
        return 0;
    }
    case JSON_STRING:
        dump_string(json_string_value(v), json_string_length(v), out);
        return 0;
    case JSON_INTEGER:
        abuf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    case JSON_TRUE:
        abuf_puts(out, "true");
        return 0;
    case JSON_FALSE:
        abuf_puts(out, "false");
        return 0;
    case JSON_NULL:
        abuf_puts(out, "null");
        return 0;
    default: /* JSON_REAL: floats have no single canonical spelling */
        return -1;
    }
}

json_t *canon_parse_object(const char *bytes, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *v = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        audit_fail(err, errlen, AUDIT_E_INVALID, "body is not valid JSON: %s at offset %d",
                   jerr.text, jerr.position);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        audit_fail(err, errlen, AUDIT_E_INVALID, "body must be a JSON object");
        return NULL;
    }
    return v;
}

int canon_is_canonical(const uint8_t *bytes, size_t len, json_t **out_obj)
{
    json_t *v = canon_parse_object((const char *)bytes, len, NULL, 0);
    abuf b = {0};
    int same = 0;
    if (v && canon_dump(v, &b) == 0 && !b.failed)
        same = b.len == len && memcmp(b.data, bytes, len) == 0;
    free(b.data);
    if (same && out_obj)
        *out_obj = v;
    else
        json_decref(v);
    return same;
}
