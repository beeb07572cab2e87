/* Helpers shared by the audit unit tests: verifier runs (C and Python) and
 * direct SQL edits that play the attacker. Header-only, static functions. */
#ifndef AUDIT_TEST_HELPERS_H
#define AUDIT_TEST_HELPERS_H

#include "audit/audit.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What a verifier concluded: ok, or the first bad seq and its code word. */
typedef struct verdict {
    int ok;
    unsigned long long seq;
    char code[32];
    unsigned long long entries;
    char head[65];
    char incomplete[512]; /* space-separated request ids */
} verdict;

/* Path of audit/verify_log.py: from APPLIANCE_SOURCE_DIR, else from __FILE__. */
static inline const char *verify_script(char *buf, size_t cap)
{
    const char *src = getenv("APPLIANCE_SOURCE_DIR");
    if (src && *src) {
        snprintf(buf, cap, "%s/audit/verify_log.py", src);
        return buf;
    }
    snprintf(buf, cap, "%s", __FILE__);
    char *cut = strstr(buf, "/tests/unit/");
    if (cut)
        snprintf(cut, cap - (size_t)(cut - buf), "/audit/verify_log.py");
    return buf;
}

static inline verdict c_verify(const char *path, const char *checkpoint, const uint8_t *pk)
{
    verdict v = {0};
    audit_log *log = NULL;
    char err[256];
    audit_open_opts ro = {.read_only = 1};
    if (audit_open(&log, path, &ro, err, sizeof err) != AUDIT_OK) {
        snprintf(v.code, sizeof v.code, "open");
        return v;
    }
    audit_verify_opts o = {checkpoint, checkpoint ? strlen(checkpoint) : 0, pk};
    audit_verify_result r;
    if (audit_verify(log, &o, &r, err, sizeof err) != AUDIT_OK) {
        snprintf(v.code, sizeof v.code, "error");
        audit_close(log);
        return v;
    }
    v.ok = r.ok;
    v.seq = r.first_bad_seq;
    v.entries = r.entries;
    snprintf(v.code, sizeof v.code, "%s", r.ok ? "ok" : audit_failure_code(r.failure));
    for (int i = 0; i < 32; i++)
        snprintf(v.head + 2 * i, 3, "%02x", r.head[i]);
    for (size_t i = 0; i < r.n_incomplete; i++) {
        strncat(v.incomplete, r.incomplete[i], sizeof v.incomplete - strlen(v.incomplete) - 2);
        strcat(v.incomplete, " ");
    }
    audit_verify_result_free(&r);
    audit_close(log);
    return v;
}

/* The system Python (scripts/setup installs python3); a version manager's
 * shim in PATH would only add start-up time. */
static inline const char *python_bin(void)
{
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

/* Runs verify_log.py; checkpoint_file / pem_file may be NULL. */
static inline verdict py_verify(const char *path, const char *checkpoint_file, const char *pem_file)
{
    verdict v = {0};
    char script[4096], cmd[16384], line[1024];
    snprintf(cmd, sizeof cmd, "%s '%s' '%s'%s%s%s%s%s%s 2>&1", python_bin(),
             verify_script(script, sizeof script), path, checkpoint_file ? " --checkpoint '" : "",
             checkpoint_file ? checkpoint_file : "", checkpoint_file ? "'" : "",
             pem_file ? " --pubkey '" : "", pem_file ? pem_file : "", pem_file ? "'" : "");
    FILE *p = popen(cmd, "r");
    if (!p)
        return v;
    while (fgets(line, sizeof line, p)) {
        char id[256];
        if (sscanf(line, "FAIL %llu %31[a-z]:", &v.seq, v.code) == 2) {
            v.ok = 0;
        } else if (sscanf(line, "ok %llu entries, head %64s", &v.entries, v.head) == 2) {
            v.ok = 1;
            snprintf(v.code, sizeof v.code, "ok");
        } else if (sscanf(line, "incomplete %255s", id) == 1) {
            strncat(v.incomplete, id, sizeof v.incomplete - strlen(v.incomplete) - 2);
            strcat(v.incomplete, " ");
        } else {
            fprintf(stderr, "verify_log.py: %s", line);
        }
    }
    pclose(p);
    return v;
}

/* Runs SQL on the file directly, after dropping the append-only triggers. */
static inline int attack_sql(const char *path, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    int rc = sqlite3_exec(db,
                          "DROP TRIGGER IF EXISTS entries_no_update;"
                          "DROP TRIGGER IF EXISTS entries_no_delete;"
                          "DROP TRIGGER IF EXISTS entries_chain;"
                          "DROP TRIGGER IF EXISTS meta_no_update;"
                          "DROP TRIGGER IF EXISTS meta_no_delete;",
                          NULL, NULL, &msg);
    if (rc == SQLITE_OK && sql)
        rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "attack_sql: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* The attacker's own SHA3-256 chain step, written from FORMAT.md. */
static inline void forge_hash(const uint8_t prev[32], const char *rec, size_t len, uint8_t out[32])
{
    static const char tag[] = "APPLIANCE-AUDIT-ENTRY-V1"; /* plus its NUL */
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 0;
    EVP_DigestInit_ex(c, EVP_sha3_256(), NULL);
    EVP_DigestUpdate(c, tag, sizeof tag);
    EVP_DigestUpdate(c, prev, 32);
    EVP_DigestUpdate(c, rec, len);
    EVP_DigestFinal_ex(c, out, &n);
    EVP_MD_CTX_free(c);
}

/* Re-chains rows from `from` on, after letting edit() change each record
 * object (edit may be NULL); the rows keep valid hashes: a careful forger. */
static inline int rechain(const char *path, unsigned long long from,
                          void (*edit)(json_t *rec, unsigned long long seq))
{
    sqlite3 *db;
    sqlite3_stmt *sel, *upd;
    if (attack_sql(path, NULL) != 0 || sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    uint8_t prev[32] = {0};
    sqlite3_prepare_v2(db, "SELECT seq, record, hash FROM entries ORDER BY seq", -1, &sel, NULL);
    sqlite3_prepare_v2(db,
                       "UPDATE entries SET record = ?1, ts = ?2, prev_hash = ?3, hash = ?4"
                       " WHERE seq = ?5",
                       -1, &upd, NULL);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    while (sqlite3_step(sel) == SQLITE_ROW) {
        unsigned long long seq = (unsigned long long)sqlite3_column_int64(sel, 0);
        if (seq < from) {
            memcpy(prev, sqlite3_column_blob(sel, 2), 32);
            continue;
        }
        json_t *rec =
            json_loadb(sqlite3_column_blob(sel, 1), (size_t)sqlite3_column_bytes(sel, 1), 0, NULL);
        if (edit)
            edit(rec, seq);
        /* ASCII records without control characters other than \n: jansson's
         * compact sorted output is the canonical form. */
        char *bytes = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
        uint8_t h[32];
        forge_hash(prev, bytes, strlen(bytes), h);
        sqlite3_bind_blob(upd, 1, bytes, (int)strlen(bytes), SQLITE_TRANSIENT);
        sqlite3_bind_text(upd, 2, json_string_value(json_object_get(rec, "ts")), -1,
                          SQLITE_TRANSIENT);
        sqlite3_bind_blob(upd, 3, prev, 32, SQLITE_TRANSIENT);
        sqlite3_bind_blob(upd, 4, h, 32, SQLITE_TRANSIENT);
        sqlite3_bind_int64(upd, 5, (sqlite3_int64)seq);
        sqlite3_step(upd);
        sqlite3_reset(upd);
        memcpy(prev, h, 32);
        free(bytes);
        json_decref(rec);
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Copies the database (with its WAL content) with VACUUM INTO. */
static inline int copy_db(const char *from, const char *to)
{
    sqlite3 *db;
    char sql[8400];
    remove(to);
    snprintf(sql, sizeof sql, "VACUUM INTO '%s'", to);
    if (sqlite3_open(from, &db) != SQLITE_OK)
        return -1;
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static inline int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Writes an Ed25519 public key as a SubjectPublicKeyInfo PEM file. */
static inline int write_pubkey_pem(const char *path, const uint8_t pk[32])
{
    static const uint8_t prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                       0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
    uint8_t der[44];
    char b64[80], pem[200];
    memcpy(der, prefix, 12);
    memcpy(der + 12, pk, 32);
    sodium_bin2base64(b64, sizeof b64, der, sizeof der, sodium_base64_VARIANT_ORIGINAL);
    snprintf(pem, sizeof pem, "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n", b64);
    return write_text(path, pem);
}

#endif
