/* Small helpers of the OMS code: errors, base64/hex, path canonicalisation. */
#include "oms_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const oms_default_ignores[4] = {".git", ".gitattributes", ".github", ".gitignore"};

int oms_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

unsigned char *oms_b64_decode(const char *text, size_t *len)
{
    size_t tlen = strlen(text);
    size_t cap = tlen / 4 * 3 + 3;
    unsigned char *bin = malloc(cap + 1);
    size_t n = 0;
    const char *end = NULL;
    if (!bin)
        return NULL;
    /* DSSE and protobuf JSON allow standard or URL-safe base64, padded or
     * not; the whole string must decode (no trailing junk). */
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        if (sodium_base642bin(bin, cap, text, tlen, NULL, &n, &end, variants[v]) == 0 &&
            end == text + tlen) {
            bin[n] = 0;
            *len = n;
            return bin;
        }
    }
    free(bin);
    return NULL;
}

char *oms_b64_encode(const unsigned char *bin, size_t len)
{
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(cap);
    if (!out)
        return NULL;
    sodium_bin2base64(out, cap, bin, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

void oms_hex(const unsigned char *bin, size_t len, char *out)
{
    sodium_bin2hex(out, 2 * len + 1, bin, len);
}

char *oms_canonical_relpath(const char *path)
{
    size_t n = strlen(path);
    char *out = malloc(n + 1);
    size_t o = 0;
    const char *p = path;
    if (!out)
        return NULL;
    if (n == 0 || path[0] == '/')
        goto bad;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t clen = slash ? (size_t)(slash - p) : strlen(p);
        if (clen == 2 && p[0] == '.' && p[1] == '.')
            goto bad;
        if (clen > 0 && !(clen == 1 && p[0] == '.')) {
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, clen);
            o += clen;
        }
        p += clen;
        if (*p == '/')
            p++;
    }
    if (o == 0)
        goto bad;
    out[o] = 0;
    return out;
bad:
    free(out);
    return NULL;
}

bool oms_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int extra;
        unsigned cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            extra = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        /* Reject overlong forms, surrogates and values beyond Unicode. */
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += extra + 1;
    }
    return true;
}

EVP_MD *oms_fetch_md(const char *hash_type)
{
    if (strcmp(hash_type, "sha256") == 0)
        return EVP_MD_fetch(NULL, "SHA2-256", NULL);
    if (strcmp(hash_type, "blake2b") == 0)
        return EVP_MD_fetch(NULL, "BLAKE2B-512", NULL);
    return NULL;
}

const char *oms_method_name(oms_method m)
{
    switch (m) {
    case OMS_METHOD_KEY:
        return "key";
    case OMS_METHOD_CERTIFICATE:
        return "certificate";
    case OMS_METHOD_SIGSTORE:
        return "sigstore";
    }
    return "unknown";
}
