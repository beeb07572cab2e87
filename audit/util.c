/* Small shared helpers of the audit module: errors, buffers, encodings, SHA3. */
#include "audit_internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int audit_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int audit_sqlite_fail(sqlite3 *db, int rc, const char *what, char *err, size_t errlen)
{
    int primary = rc & 0xff;
    int code = AUDIT_E_IO;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
        code = AUDIT_E_BUSY;
    else if (primary == SQLITE_NOMEM)
        code = AUDIT_E_NOMEM;
    else if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
        code = AUDIT_E_FORMAT;
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return audit_fail(err, errlen, code, "audit log: %s failed: %s", what, msg);
}

void abuf_put(abuf *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *nd = realloc(b->data, cap);
        if (!nd) {
            b->failed = 1;
            return;
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void abuf_puts(abuf *b, const char *s)
{
    abuf_put(b, s, strlen(s));
}

void abuf_printf(abuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = 1;
        return;
    }
    abuf_put(b, tmp, (size_t)n);
}

char *abuf_take(abuf *b, size_t *len)
{
    if (!b->failed)
        abuf_put(b, "", 0);
    if (b->failed) {
        free(b->data);
        memset(b, 0, sizeof *b);
        return NULL;
    }
    char *d = b->data;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof *b);
    return d;
}

int sha3_256_parts(const void *a, size_t alen, const void *b, size_t blen, const void *c,
                   size_t clen, uint8_t out[AUDIT_HASH_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int outlen = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha3_256(), NULL) == 1 &&
             (!a || EVP_DigestUpdate(ctx, a, alen) == 1) &&
             (!b || EVP_DigestUpdate(ctx, b, blen) == 1) &&
             (!c || EVP_DigestUpdate(ctx, c, clen) == 1) &&
             EVP_DigestFinal_ex(ctx, out, &outlen) == 1 && outlen == AUDIT_HASH_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

int audit_entry_hash(const uint8_t prev[AUDIT_HASH_LEN], const uint8_t *record, size_t len,
                     uint8_t out[AUDIT_HASH_LEN])
{
    /* An empty record still needs a non-NULL pointer for the third piece. */
    return sha3_256_parts(AUDIT_ENTRY_TAG, AUDIT_ENTRY_TAG_LEN, prev, AUDIT_HASH_LEN,
                          record ? (const void *)record : (const void *)"", len, out);
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *in, uint8_t *out, size_t n)
{
    if (strlen(in) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = 0;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

long b64_decode(const char *in, size_t inlen, uint8_t *out, size_t cap)
{
    if (inlen % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < inlen; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + k];
            if (c == '=' && i + 4 == inlen && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad) {
                return -1; /* data after padding */
            } else if ((v[k] = b64_value(c)) < 0) {
                return -1;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t take = 3 - (size_t)pad;
        if (o + take > cap)
            return -1;
        uint8_t bytes[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        /* Canonical encoding: the bits dropped by padding must be zero. */
        if ((pad == 1 && bytes[2]) || (pad == 2 && (bytes[1] || bytes[2])))
            return -1;
        memcpy(out + o, bytes, take);
        o += take;
    }
    return (long)o;
}

int audit_ts_valid(const char *ts)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (strlen(ts) != AUDIT_TS_LEN)
        return 0;
    for (size_t i = 0; i < AUDIT_TS_LEN; i++) {
        if (shape[i] == 'd' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != shape[i])
            return 0;
    }
    int mon = (ts[5] - '0') * 10 + ts[6] - '0', day = (ts[8] - '0') * 10 + ts[9] - '0';
    int hh = (ts[11] - '0') * 10 + ts[12] - '0', mm = (ts[14] - '0') * 10 + ts[15] - '0';
    int ss = (ts[17] - '0') * 10 + ts[18] - '0';
    return mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && hh < 24 && mm < 60 && ss < 61;
}
