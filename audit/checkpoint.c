/* Signed checkpoints: C2SP tlog-checkpoint text in a C2SP signed note, Ed25519. */
#include "audit_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define EM_DASH_SPACE "\xe2\x80\x94 " /* U+2014 then a space: a signature line */

void audit_note_key_id(const char *key_name, const uint8_t pk[32], uint8_t id[4])
{
    uint8_t md[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state c;
    static const uint8_t sep_and_type[2] = {0x0a, 0x01}; /* newline, Ed25519 */
    crypto_hash_sha256_init(&c);
    crypto_hash_sha256_update(&c, (const uint8_t *)key_name, strlen(key_name));
    crypto_hash_sha256_update(&c, sep_and_type, sizeof sep_and_type);
    crypto_hash_sha256_update(&c, pk, 32);
    crypto_hash_sha256_final(&c, md);
    memcpy(id, md, 4);
}

char *checkpoint_note_text(const char *origin, uint64_t size, const uint8_t root[AUDIT_HASH_LEN],
                           const uint8_t head[AUDIT_HASH_LEN], size_t *len)
{
    char b64root[64], b64head[64];
    abuf b = {0};
    b64_encode(root, AUDIT_HASH_LEN, b64root);
    b64_encode(head, AUDIT_HASH_LEN, b64head);
    abuf_printf(&b, "%s\n%llu\n%s\nchain-head %s\n", origin, (unsigned long long)size, b64root,
                b64head);
    return abuf_take(&b, len);
}

/* Appends "— name base64(keyid||sig)\n" for the text to make a signed note. */
static char *sign_note(const char *text, size_t len, const char *key_name, const uint8_t sk[64])
{
    uint8_t blob[4 + crypto_sign_BYTES];
    char b64[128];
    audit_note_key_id(key_name, sk + 32, blob);
    if (crypto_sign_detached(blob + 4, NULL, (const uint8_t *)text, len, sk) != 0)
        return NULL;
    b64_encode(blob, sizeof blob, b64);
    abuf b = {0};
    abuf_put(&b, text, len);
    abuf_printf(&b, "\n" EM_DASH_SPACE "%s %s\n", key_name, b64);
    return abuf_take(&b, NULL);
}

static json_t *checkpoint_body(const char *note, const uint8_t pk[32], uint64_t size,
                               const uint8_t root[AUDIT_HASH_LEN])
{
    char b64pk[64], b64root[64];
    b64_encode(pk, 32, b64pk);
    b64_encode(root, AUDIT_HASH_LEN, b64root);
    return json_pack("{s:s, s:s, s:I, s:s}", "checkpoint", note, "public_key", b64pk, "tree_size",
                     (json_int_t)size, "root", b64root);
}

/* Under the write lock: the note over every current entry, then its entry. */
static int checkpoint_locked(audit_log *log, const uint8_t sk[64], const char *actor,
                             char **out_note, uint64_t *out_seq, char *err, size_t errlen)
{
    uint64_t size;
    uint8_t head[AUDIT_HASH_LEN], root[AUDIT_HASH_LEN];
    int rc = audit_head(log, &size, head, err, errlen);
    if (rc == AUDIT_OK)
        rc = audit_log_root(log, size, root, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    size_t len;
    char *text = checkpoint_note_text(log->origin, size, root, head, &len);
    char *note = text ? sign_note(text, len, log->origin, sk) : NULL;
    free(text);
    json_t *body = note ? checkpoint_body(note, sk + 32, size, root) : NULL;
    if (!body) {
        free(note);
        return audit_fail(err, errlen, AUDIT_E_CRYPTO, "checkpoint: signing failed");
    }
    rc = audit_append_locked(log, AUDIT_KIND_CHECKPOINT, "", actor, body, out_seq, NULL, err,
                             errlen);
    json_decref(body);
    if (rc == AUDIT_OK)
        *out_note = note;
    else
        free(note);
    return rc;
}

int audit_checkpoint_create(audit_log *log, const uint8_t sk[64], const char *actor,
                            char **out_note, uint64_t *out_seq, char *err, size_t errlen)
{
    *out_note = NULL;
    if (log->read_only)
        return audit_fail(err, errlen, AUDIT_E_IO, "checkpoint: the log is open read-only");
    int rc = audit_begin_immediate(log, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    rc = checkpoint_locked(log, sk, actor ? actor : "", out_note, out_seq, err, errlen);
    if (rc == AUDIT_OK)
        rc = audit_commit(log, err, errlen);
    else
        audit_rollback(log);
    if (rc != AUDIT_OK) {
        free(*out_note);
        *out_note = NULL;
    }
    return rc;
}

/* Splits a note into its text (with final newline) and signature block. */
static int split_note(const char *note, size_t len, size_t *text_len, const char **sigs,
                      size_t *sigs_len)
{
    /* Signed notes are UTF-8 without control characters other than newline. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)note[i] < 0x20 && note[i] != '\n')
            return -1;
    if (len < 2 || note[len - 1] != '\n')
        return -1;
    /* The signatures follow the last blank line. */
    for (size_t i = len - 1; i-- > 0;) {
        if (note[i] == '\n' && note[i + 1] == '\n') {
            *text_len = i + 1;
            *sigs = note + i + 2;
            *sigs_len = len - (i + 2);
            return *sigs_len ? 0 : -1;
        }
    }
    return -1;
}

/* Parses the first signature line of the block. */
static int parse_sig_line(const char *line, size_t n, audit_checkpoint *cp)
{
    size_t dash = strlen(EM_DASH_SPACE);
    if (n < dash || memcmp(line, EM_DASH_SPACE, dash) != 0)
        return -1;
    const char *name = line + dash, *end = line + n;
    const char *sp = memchr(name, ' ', (size_t)(end - name));
    if (!sp || sp == name || (size_t)(sp - name) >= sizeof cp->key_name)
        return -1;
    memcpy(cp->key_name, name, (size_t)(sp - name));
    cp->key_name[sp - name] = 0;
    uint8_t blob[4 + 64 + 1];
    if (b64_decode(sp + 1, (size_t)(end - sp - 1), blob, sizeof blob) != 4 + 64)
        return -1;
    memcpy(cp->key_id, blob, 4);
    memcpy(cp->signature, blob + 4, 64);
    return 0;
}

/* Reads "<decimal>\n" without leading zeros into *v. */
static int parse_size_line(const char *s, size_t n, uint64_t *v)
{
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *v = x;
    return 0;
}

static int parse_body_lines(const char *text, size_t len, audit_checkpoint *cp)
{
    const char *line = text, *end = text + len;
    int idx = 0, have_head = 0;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = (size_t)(nl - line);
        if (idx == 0) {
            if (n == 0 || n >= sizeof cp->origin)
                return -1;
            memcpy(cp->origin, line, n);
            cp->origin[n] = 0;
        } else if (idx == 1) {
            if (parse_size_line(line, n, &cp->tree_size) != 0)
                return -1;
        } else if (idx == 2) {
            if (b64_decode(line, n, cp->root, AUDIT_HASH_LEN) != AUDIT_HASH_LEN)
                return -1;
        } else if (n > 11 && memcmp(line, "chain-head ", 11) == 0) {
            if (b64_decode(line + 11, n - 11, cp->chain_head, AUDIT_HASH_LEN) != AUDIT_HASH_LEN)
                return -1;
            have_head = 1;
        }
        line = nl + 1;
        idx++;
    }
    return idx >= 3 && have_head ? 0 : -1;
}

int audit_checkpoint_parse(const char *note, size_t len, audit_checkpoint *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *sigs;
    size_t text_len, sigs_len;
    if (split_note(note, len, &out->text_len, &sigs, &sigs_len) != 0)
        return audit_fail(err, errlen, AUDIT_E_INVALID,
                          "checkpoint is not a signed note (text, blank line, signatures)");
    text_len = out->text_len;
    if (parse_body_lines(note, text_len, out) != 0)
        return audit_fail(err, errlen, AUDIT_E_INVALID,
                          "checkpoint text is malformed (origin, size, root, chain-head)");
    const char *nl = memchr(sigs, '\n', sigs_len);
    if (!nl || parse_sig_line(sigs, (size_t)(nl - sigs), out) != 0)
        return audit_fail(err, errlen, AUDIT_E_INVALID, "checkpoint signature line is malformed");
    return AUDIT_OK;
}

int audit_checkpoint_verify_sig(const char *note, size_t len, const uint8_t pk[32], char *err,
                                size_t errlen)
{
    audit_checkpoint cp;
    int rc = audit_checkpoint_parse(note, len, &cp, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    uint8_t want[4];
    audit_note_key_id(cp.key_name, pk, want);
    if (memcmp(want, cp.key_id, 4) != 0)
        return audit_fail(err, errlen, AUDIT_E_CRYPTO,
                          "checkpoint key id %02x%02x%02x%02x does not match the given key "
                          "(%02x%02x%02x%02x)",
                          cp.key_id[0], cp.key_id[1], cp.key_id[2], cp.key_id[3], want[0], want[1],
                          want[2], want[3]);
    if (crypto_sign_verify_detached(cp.signature, (const uint8_t *)note, cp.text_len, pk) != 0)
        return audit_fail(err, errlen, AUDIT_E_CRYPTO,
                          "checkpoint signature by '%s' does not verify", cp.key_name);
    return AUDIT_OK;
}
