/* The log itself: schema, open/create, durable appends, reads. */
#include "audit_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const kind_names[AUDIT_KIND_COUNT] = {
    "init",    "session_start",     "model_load",    "prompt",     "output",     "attestation",
    "refusal", "sandbox_violation", "policy_change", "audit_read", "checkpoint", "error",
};

const char *audit_kind_name(audit_kind kind)
{
    return (unsigned)kind < AUDIT_KIND_COUNT ? kind_names[kind] : NULL;
}

int audit_kind_from_name(const char *name, audit_kind *out)
{
    for (int k = 0; k < AUDIT_KIND_COUNT; k++) {
        if (name && strcmp(name, kind_names[k]) == 0) {
            *out = (audit_kind)k;
            return AUDIT_OK;
        }
    }
    return AUDIT_E_INVALID;
}

/* The schema (FORMAT.md). The insert trigger keeps seq dense and prev_hash
 * linked even for writers that bypass this library. */
static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;"
    "CREATE TABLE entries("
    " seq INTEGER PRIMARY KEY CHECK (seq >= 1),"
    " ts TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " request_id TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " record BLOB NOT NULL,"
    " prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),"
    " hash BLOB NOT NULL CHECK (length(hash) = 32)) STRICT;"
    "CREATE INDEX entries_request ON entries(request_id);"
    "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries"
    " BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;"
    "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries"
    " BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;"
    "CREATE TRIGGER entries_chain BEFORE INSERT ON entries"
    " WHEN NEW.seq IS NOT (SELECT IFNULL(MAX(seq), 0) + 1 FROM entries)"
    "  OR NEW.prev_hash IS NOT IFNULL((SELECT hash FROM entries WHERE seq = NEW.seq - 1),"
    "     zeroblob(32))"
    " BEGIN SELECT RAISE(ABORT, 'audit entries must extend the chain'); END;"
    "CREATE TRIGGER meta_no_update BEFORE UPDATE ON meta"
    " BEGIN SELECT RAISE(ABORT, 'audit meta is append-only'); END;"
    "CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta"
    " BEGIN SELECT RAISE(ABORT, 'audit meta is append-only'); END;";

static int exec_sql(audit_log *log, const char *sql, const char *what, char *err, size_t errlen)
{
    int rc = sqlite3_exec(log->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? AUDIT_OK : audit_sqlite_fail(log->db, rc, what, err, errlen);
}

int audit_begin_immediate(audit_log *log, char *err, size_t errlen)
{
    return exec_sql(log, "BEGIN IMMEDIATE", "taking the write lock", err, errlen);
}

int audit_commit(audit_log *log, char *err, size_t errlen)
{
    int rc = exec_sql(log, "COMMIT", "commit", err, errlen);
    if (rc != AUDIT_OK)
        audit_rollback(log);
    return rc;
}

void audit_rollback(audit_log *log)
{
    if (!sqlite3_get_autocommit(log->db))
        (void)sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Reads one meta value into buf; AUDIT_E_FORMAT when absent. */
static int meta_get(audit_log *log, const char *key, char *buf, size_t cap, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(log->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return audit_fail(err, errlen, AUDIT_E_FORMAT,
                          "audit log: the file is not an audit log (no meta table): %s",
                          sqlite3_errmsg(log->db));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int out = AUDIT_OK;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (!v || strlen(v) >= cap)
            out = audit_fail(err, errlen, AUDIT_E_FORMAT, "audit log: meta '%s' is malformed", key);
        else
            strcpy(buf, v);
    } else if (rc == SQLITE_DONE) {
        out = audit_fail(err, errlen, AUDIT_E_FORMAT, "audit log: meta '%s' is missing", key);
    } else {
        out = audit_sqlite_fail(log->db, rc, "reading meta", err, errlen);
    }
    sqlite3_finalize(st);
    return out;
}

static int create_schema(audit_log *log, char *err, size_t errlen)
{
    uint8_t id[16];
    char hex[33], sql[512];
    randombytes_buf(id, sizeof id);
    hex_encode(id, sizeof id, hex);
    snprintf(sql, sizeof sql,
             "INSERT INTO meta(key, value) VALUES ('format', 'appliance-audit'),"
             " ('format_version', '%d'), ('log_id', '%s'), ('hash', 'sha3-256');",
             AUDIT_FORMAT_VERSION, hex);
    int rc = audit_begin_immediate(log, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    /* Another process may have created it between our check and the lock;
     * any other database is not ours to add tables to. */
    sqlite3_stmt *st = NULL;
    int exists = 0, others = 0;
    if (sqlite3_prepare_v2(
            log->db, "SELECT count(*) FILTER (WHERE name = 'meta'), count(*) FROM sqlite_master",
            -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        exists = sqlite3_column_int(st, 0);
        others = sqlite3_column_int(st, 1) - exists;
    }
    sqlite3_finalize(st);
    if (!exists && others) {
        audit_rollback(log);
        return audit_fail(err, errlen, AUDIT_E_FORMAT,
                          "audit log: the file is another SQLite database, not an audit log");
    }
    if (!exists) {
        rc = exec_sql(log, schema_sql, "creating the schema", err, errlen);
        if (rc == AUDIT_OK)
            rc = exec_sql(log, sql, "writing meta", err, errlen);
    }
    if (rc != AUDIT_OK) {
        audit_rollback(log);
        return rc;
    }
    return audit_commit(log, err, errlen);
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* SQLite's busy handler for a locked log: retries after 50-100 us, the
 * pause doubling to at most 1-2 ms (random within each step, so waiting
 * processes do not wake in step), until busy_timeout_ms have passed since
 * the first attempt; returns 0 to give up (the caller sees SQLITE_BUSY).
 * sqlite3_busy_timeout's own handler sleeps 1, 2, 5, ... up to 100 ms
 * between attempts, so the lock lay free while its waiters slept and
 * several processes appending at once committed fewer entries per second
 * than one process alone. */
static int busy_wait(void *ctx, int attempts)
{
    audit_log *log = ctx;
    double now = monotonic_s();
    if (attempts == 0)
        log->busy_since = now;
    if ((now - log->busy_since) * 1e3 >= log->busy_timeout_ms)
        return 0;
    uint32_t step_us = 50u << (attempts < 5 ? attempts : 5); /* 50 us .. 1.6 ms */
    struct timespec pause = {0, (long)(step_us + randombytes_uniform(step_us)) * 1000};
    nanosleep(&pause, NULL);
    return 1;
}

static int configure_connection(audit_log *log, int ms, char *err, size_t errlen)
{
    log->busy_timeout_ms = ms;
    int rc = sqlite3_busy_handler(log->db, busy_wait, log);
    if (rc != SQLITE_OK)
        return audit_sqlite_fail(log->db, rc, "setting the busy handler", err, errlen);
    rc = exec_sql(log, "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; PRAGMA synchronous=FULL;",
                  "setting pragmas", err, errlen);
    if (rc != AUDIT_OK || log->read_only)
        return rc;
    /* journal_mode returns a row; WAL is persistent in the file once set. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(log->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int ok = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (!ok)
        return audit_fail(err, errlen, rc == SQLITE_BUSY ? AUDIT_E_BUSY : AUDIT_E_IO,
                          "audit log: could not switch to WAL mode: %s", sqlite3_errmsg(log->db));
    return AUDIT_OK;
}

static int check_meta(audit_log *log, char *err, size_t errlen)
{
    char buf[64];
    int rc = meta_get(log, "format", buf, sizeof buf, err, errlen);
    if (rc == AUDIT_OK && strcmp(buf, "appliance-audit") != 0)
        rc = audit_fail(err, errlen, AUDIT_E_FORMAT, "audit log: meta format is '%s'", buf);
    if (rc == AUDIT_OK)
        rc = meta_get(log, "format_version", buf, sizeof buf, err, errlen);
    if (rc == AUDIT_OK && atoi(buf) != AUDIT_FORMAT_VERSION)
        rc = audit_fail(err, errlen, AUDIT_E_FORMAT,
                        "audit log: format version %s is not supported (this build reads %d)", buf,
                        AUDIT_FORMAT_VERSION);
    if (rc == AUDIT_OK)
        rc = meta_get(log, "log_id", log->log_id, sizeof log->log_id, err, errlen);
    uint8_t id[16];
    if (rc == AUDIT_OK && hex_decode(log->log_id, id, sizeof id) != 0)
        rc = audit_fail(err, errlen, AUDIT_E_FORMAT, "audit log: meta log_id is malformed");
    snprintf(log->origin, sizeof log->origin, "appliance.audit/%s/sha3-256", log->log_id);
    return rc;
}

static int schema_present(audit_log *log)
{
    sqlite3_stmt *st = NULL;
    int present = 0;
    if (sqlite3_prepare_v2(log->db, "SELECT 1 FROM sqlite_master WHERE name = 'meta'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        present = 1;
    sqlite3_finalize(st);
    return present;
}

/* Opens, configures and checks one connection; on failure log->db is
 * closed again. `name` is a path, or a file: URI when flags has URI. */
static int open_connection(audit_log *log, const char *name, int flags, const audit_open_opts *o,
                           char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(name, &log->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = audit_fail(err, errlen, AUDIT_E_IO, "audit log %s: cannot open: %s", name,
                        log->db ? sqlite3_errmsg(log->db) : sqlite3_errstr(rc));
    } else {
        rc = configure_connection(log, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000, err,
                                  errlen);
        if (rc == AUDIT_OK && o->create && !o->read_only && !schema_present(log))
            rc = create_schema(log, err, errlen);
        if (rc == AUDIT_OK)
            rc = check_meta(log, err, errlen);
    }
    if (rc != AUDIT_OK) {
        sqlite3_close(log->db);
        log->db = NULL;
    }
    return rc;
}

/* "file:" URI for path with immutable=1: reads a WAL-mode copy on read-only
 * media, where SQLite cannot create the -shm file. NULL when too long. */
static char *immutable_uri(const char *path)
{
    abuf b = {0};
    abuf_puts(&b, "file:");
    for (const char *p = path; *p; p++) {
        if (*p == '%' || *p == '?' || *p == '#')
            abuf_printf(&b, "%%%02X", (unsigned char)*p);
        else
            abuf_put(&b, p, 1);
    }
    abuf_puts(&b, "?immutable=1");
    return abuf_take(&b, NULL);
}

int audit_open(audit_log **out, const char *path, const audit_open_opts *opts, char *err,
               size_t errlen)
{
    audit_open_opts def = {0};
    if (!opts)
        opts = &def;
    *out = NULL;
    if (sodium_init() < 0)
        return audit_fail(err, errlen, AUDIT_E_CRYPTO, "audit log: libsodium failed to start");
    struct stat st;
    if (!opts->create && stat(path, &st) != 0)
        return audit_fail(err, errlen, AUDIT_E_NOTFOUND, "audit log %s does not exist", path);
    audit_log *log = calloc(1, sizeof *log);
    if (!log)
        return audit_fail(err, errlen, AUDIT_E_NOMEM, "audit log: out of memory");
    log->read_only = opts->read_only;
    int flags = opts->read_only ? SQLITE_OPEN_READONLY
                                : SQLITE_OPEN_READWRITE | (opts->create ? SQLITE_OPEN_CREATE : 0);
    int rc = open_connection(log, path, flags, opts, err, errlen);
    if (rc == AUDIT_E_IO && opts->read_only) {
        /* A copy on read-only media: nobody writes it, so read it as immutable. */
        char *uri = immutable_uri(path);
        if (uri)
            rc = open_connection(log, uri, flags | SQLITE_OPEN_URI, opts, err, errlen);
        free(uri);
    }
    if (rc != AUDIT_OK) {
        audit_close(log);
        return rc;
    }
    *out = log;
    return AUDIT_OK;
}

void audit_close(audit_log *log)
{
    if (!log)
        return;
    sqlite3_close(log->db);
    free(log);
}

const char *audit_log_id(const audit_log *log)
{
    return log->log_id;
}

const char *audit_log_origin(const audit_log *log)
{
    return log->origin;
}

/* Current UTC time as RFC 3339 with milliseconds. */
static void now_rfc3339(char out[AUDIT_TS_LEN + 1])
{
    struct timespec ts;
    struct tm tm;
    char buf[64]; /* room for any int the compiler imagines; years are 4 digits */
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000));
    memcpy(out, buf, AUDIT_TS_LEN);
    out[AUDIT_TS_LEN] = 0;
}

/* The last entry's seq, hash and ts (seq 0, zero hash, "" when empty). */
static int read_tail(audit_log *log, uint64_t *seq, uint8_t hash[AUDIT_HASH_LEN],
                     char ts[AUDIT_TS_LEN + 1], char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        log->db, "SELECT seq, hash, ts FROM entries ORDER BY seq DESC LIMIT 1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return audit_sqlite_fail(log->db, rc, "reading the chain head", err, errlen);
    *seq = 0;
    memset(hash, 0, AUDIT_HASH_LEN);
    ts[0] = 0;
    rc = sqlite3_step(st);
    int out = AUDIT_OK;
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 2);
        if (sqlite3_column_bytes(st, 1) != AUDIT_HASH_LEN || !t || strlen(t) > AUDIT_TS_LEN) {
            out = audit_fail(err, errlen, AUDIT_E_FORMAT,
                             "audit log: the last entry is malformed; run 'audit verify'");
        } else {
            *seq = (uint64_t)sqlite3_column_int64(st, 0);
            memcpy(hash, sqlite3_column_blob(st, 1), AUDIT_HASH_LEN);
            strcpy(ts, t);
        }
    } else if (rc != SQLITE_DONE) {
        out = audit_sqlite_fail(log->db, rc, "reading the chain head", err, errlen);
    }
    sqlite3_finalize(st);
    return out;
}

/* Builds the canonical record for an entry. Takes a reference to body. */
static char *build_record(audit_log *log, uint64_t seq, const char *ts, audit_kind kind,
                          const char *request_id, const char *actor, json_t *body, size_t *len)
{
    json_t *rec = json_object();
    abuf b = {0};
    int ok = rec && json_object_set_new(rec, "seq", json_integer((json_int_t)seq)) == 0 &&
             json_object_set_new(rec, "ts", json_string(ts)) == 0 &&
             json_object_set_new(rec, "kind", json_string(audit_kind_name(kind))) == 0 &&
             json_object_set_new(rec, "request_id", json_string(request_id)) == 0 &&
             json_object_set_new(rec, "actor", json_string(actor)) == 0 &&
             json_object_set_new(rec, "log_id", json_string(log->log_id)) == 0 &&
             json_object_set(rec, "body", body) == 0 && canon_dump(rec, &b) == 0;
    json_decref(rec);
    if (!ok) {
        free(b.data);
        return NULL;
    }
    return abuf_take(&b, len);
}

static int insert_entry(audit_log *log, uint64_t seq, const char *ts, audit_kind kind,
                        const char *request_id, const char *actor, const char *record, size_t len,
                        const uint8_t prev[AUDIT_HASH_LEN], const uint8_t hash[AUDIT_HASH_LEN],
                        char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(log->db,
                                "INSERT INTO entries(seq, ts, kind, request_id, actor, record,"
                                " prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return audit_sqlite_fail(log->db, rc, "preparing the append", err, errlen);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    sqlite3_bind_text(st, 2, ts, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, audit_kind_name(kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, request_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, actor, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, record, (int)len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, prev, AUDIT_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 8, hash, AUDIT_HASH_LEN, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int out =
        rc == SQLITE_DONE ? AUDIT_OK : audit_sqlite_fail(log->db, rc, "appending", err, errlen);
    sqlite3_finalize(st);
    return out;
}

static int valid_text(const char *s)
{
    json_t *v = s ? json_string(s) : NULL; /* json_string checks UTF-8 */
    json_decref(v);
    return v != NULL;
}

int audit_append_locked(audit_log *log, audit_kind kind, const char *request_id, const char *actor,
                        json_t *body, uint64_t *out_seq, uint8_t out_hash[AUDIT_HASH_LEN],
                        char *err, size_t errlen)
{
    uint64_t last_seq;
    uint8_t prev[AUDIT_HASH_LEN], hash[AUDIT_HASH_LEN];
    char last_ts[AUDIT_TS_LEN + 1], ts[AUDIT_TS_LEN + 1];
    int rc = read_tail(log, &last_seq, prev, last_ts, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    now_rfc3339(ts);
    /* Timestamps never go backwards: a clock stepped back is clamped to the
     * last entry's time (verify flags a decrease as tampering). */
    if (strcmp(ts, last_ts) < 0)
        strcpy(ts, last_ts);
    size_t len = 0;
    char *record = build_record(log, last_seq + 1, ts, kind, request_id, actor, body, &len);
    if (!record)
        return audit_fail(err, errlen, AUDIT_E_NOMEM, "audit log: cannot build the record");
    if (audit_entry_hash(prev, (const uint8_t *)record, len, hash) != 0) {
        free(record);
        return audit_fail(err, errlen, AUDIT_E_CRYPTO, "audit log: SHA3-256 is unavailable");
    }
    rc = insert_entry(log, last_seq + 1, ts, kind, request_id, actor, record, len, prev, hash, err,
                      errlen);
    free(record);
    if (rc == AUDIT_OK && out_seq)
        *out_seq = last_seq + 1;
    if (rc == AUDIT_OK && out_hash)
        memcpy(out_hash, hash, AUDIT_HASH_LEN);
    return rc;
}

json_t *audit_parse_body(audit_log *log, const audit_append_req *r, char *err, size_t errlen)
{
    if (!audit_kind_name(r->kind)) {
        audit_fail(err, errlen, AUDIT_E_INVALID, "audit append: unknown entry kind %d",
                   (int)r->kind);
        return NULL;
    }
    if (!valid_text(r->request_id) || !valid_text(r->actor)) {
        audit_fail(err, errlen, AUDIT_E_INVALID,
                   "audit append: request id and actor must be UTF-8 strings");
        return NULL;
    }
    json_t *body = canon_parse_object(r->body_json, r->body_len, err, errlen);
    abuf probe = {0};
    if (body && canon_dump(body, &probe) != 0) {
        json_decref(body);
        body = NULL;
        audit_fail(err, errlen, AUDIT_E_INVALID,
                   "audit append: body numbers must be integers (no fractions)");
    }
    free(probe.data);
    return body;
}

int audit_append_batch(audit_log *log, const audit_append_req *reqs, size_t n,
                       uint64_t *out_first_seq, char *err, size_t errlen)
{
    if (log->read_only)
        return audit_fail(err, errlen, AUDIT_E_IO, "audit append: the log is open read-only");
    json_t **bodies = calloc(n ? n : 1, sizeof *bodies);
    if (!bodies)
        return audit_fail(err, errlen, AUDIT_E_NOMEM, "audit append: out of memory");
    int rc = AUDIT_OK;
    for (size_t i = 0; i < n && rc == AUDIT_OK; i++)
        if (!(bodies[i] = audit_parse_body(log, &reqs[i], err, errlen)))
            rc = AUDIT_E_INVALID;
    if (rc == AUDIT_OK)
        rc = audit_begin_immediate(log, err, errlen);
    if (rc == AUDIT_OK) {
        for (size_t i = 0; i < n && rc == AUDIT_OK; i++) {
            uint64_t seq = 0;
            rc = audit_append_locked(log, reqs[i].kind, reqs[i].request_id, reqs[i].actor,
                                     bodies[i], &seq, NULL, err, errlen);
            if (i == 0 && out_first_seq)
                *out_first_seq = seq;
        }
        if (rc == AUDIT_OK)
            rc = audit_commit(log, err, errlen);
        else
            audit_rollback(log);
    }
    for (size_t i = 0; i < n; i++)
        json_decref(bodies[i]);
    free(bodies);
    return rc;
}

int audit_append(audit_log *log, audit_kind kind, const char *request_id, const char *actor,
                 const char *body_json, size_t body_len, uint64_t *out_seq,
                 uint8_t out_hash[AUDIT_HASH_LEN], char *err, size_t errlen)
{
    audit_append_req r = {kind, request_id, actor, body_json, body_len};
    if (log->read_only)
        return audit_fail(err, errlen, AUDIT_E_IO, "audit append: the log is open read-only");
    json_t *body = audit_parse_body(log, &r, err, errlen);
    if (!body)
        return AUDIT_E_INVALID;
    int rc = audit_begin_immediate(log, err, errlen);
    if (rc == AUDIT_OK) {
        rc =
            audit_append_locked(log, kind, request_id, actor, body, out_seq, out_hash, err, errlen);
        if (rc == AUDIT_OK)
            rc = audit_commit(log, err, errlen);
        else
            audit_rollback(log);
    }
    json_decref(body);
    return rc;
}

int audit_head(audit_log *log, uint64_t *out_count, uint8_t out_head[AUDIT_HASH_LEN], char *err,
               size_t errlen)
{
    char ts[AUDIT_TS_LEN + 1];
    return read_tail(log, out_count, out_head, ts, err, errlen);
}

int audit_entries_since_checkpoint(audit_log *log, uint64_t *out, char *err, size_t errlen)
{
    uint64_t count;
    uint8_t head[AUDIT_HASH_LEN];
    int rc = audit_head(log, &count, head, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    /* Walks back from the end by rowid: at most one interval of rows. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(
        log->db, "SELECT seq FROM entries WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1", -1,
        &st, NULL);
    if (rc != SQLITE_OK)
        return audit_sqlite_fail(log->db, rc, "finding the last checkpoint", err, errlen);
    rc = sqlite3_step(st);
    uint64_t last = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return audit_sqlite_fail(log->db, rc, "finding the last checkpoint", err, errlen);
    *out = count - last;
    return AUDIT_OK;
}

int audit_load_hashes(audit_log *log, uint64_t n, uint8_t (**out)[AUDIT_HASH_LEN], char *err,
                      size_t errlen)
{
    *out = NULL;
    uint8_t(*h)[AUDIT_HASH_LEN] = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        return audit_fail(err, errlen, AUDIT_E_NOMEM, "audit log: out of memory for %llu hashes",
                          (unsigned long long)n);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        log->db, "SELECT seq, hash FROM entries WHERE seq <= ?1 ORDER BY seq", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        free(h);
        return audit_sqlite_fail(log->db, rc, "reading hashes", err, errlen);
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)n);
    uint64_t i = 0;
    int out_rc = AUDIT_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((uint64_t)sqlite3_column_int64(st, 0) != i + 1 ||
            sqlite3_column_bytes(st, 1) != AUDIT_HASH_LEN) {
            out_rc = audit_fail(err, errlen, AUDIT_E_FORMAT,
                                "audit log: entry %llu is missing or malformed; run 'audit verify'",
                                (unsigned long long)(i + 1));
            break;
        }
        memcpy(h[i++], sqlite3_column_blob(st, 1), AUDIT_HASH_LEN);
    }
    if (out_rc == AUDIT_OK && rc != SQLITE_DONE)
        out_rc = audit_sqlite_fail(log->db, rc, "reading hashes", err, errlen);
    if (out_rc == AUDIT_OK && i != n)
        out_rc =
            audit_fail(err, errlen, AUDIT_E_INVALID, "audit log has %llu entries, fewer than %llu",
                       (unsigned long long)i, (unsigned long long)n);
    sqlite3_finalize(st);
    if (out_rc != AUDIT_OK)
        free(h);
    else
        *out = h;
    return out_rc;
}

static void bind_filter(sqlite3_stmt *st, const audit_filter *f)
{
    sqlite3_bind_int64(st, 1, (sqlite3_int64)f->seq_min);
    sqlite3_bind_int64(st, 2, f->seq_max ? (sqlite3_int64)f->seq_max : INT64_MAX);
    sqlite3_bind_text(st, 3, f->since, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, f->until, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, f->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, f->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, f->request_id, -1, SQLITE_STATIC);
}

static int row_to_entry(sqlite3_stmt *st, audit_entry *e)
{
    const char *ts = (const char *)sqlite3_column_text(st, 1);
    memset(e, 0, sizeof *e);
    e->seq = (uint64_t)sqlite3_column_int64(st, 0);
    snprintf(e->ts, sizeof e->ts, "%s", ts ? ts : "");
    e->kind = (const char *)sqlite3_column_text(st, 2);
    e->request_id = (const char *)sqlite3_column_text(st, 3);
    e->actor = (const char *)sqlite3_column_text(st, 4);
    e->record = sqlite3_column_blob(st, 5);
    e->record_len = (size_t)sqlite3_column_bytes(st, 5);
    if (sqlite3_column_bytes(st, 6) == AUDIT_HASH_LEN)
        memcpy(e->prev_hash, sqlite3_column_blob(st, 6), AUDIT_HASH_LEN);
    if (sqlite3_column_bytes(st, 7) == AUDIT_HASH_LEN)
        memcpy(e->hash, sqlite3_column_blob(st, 7), AUDIT_HASH_LEN);
    if (!e->kind || !e->request_id || !e->actor)
        return -1;
    if (!e->record)
        e->record = (const uint8_t *)"";
    return 0;
}

int audit_query(audit_log *log, const audit_filter *filter,
                int (*visit)(const audit_entry *entry, void *ctx), void *ctx, char *err,
                size_t errlen)
{
    audit_filter none = {0};
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        log->db,
        "SELECT seq, ts, kind, request_id, actor, record, prev_hash, hash FROM entries"
        " WHERE seq >= ?1 AND seq <= ?2 AND (?3 IS NULL OR ts >= ?3) AND (?4 IS NULL OR ts < ?4)"
        " AND (?5 IS NULL OR kind = ?5) AND (?6 IS NULL OR actor = ?6)"
        " AND (?7 IS NULL OR request_id = ?7) ORDER BY seq",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return audit_sqlite_fail(log->db, rc, "querying entries", err, errlen);
    bind_filter(st, filter ? filter : &none);
    int out = AUDIT_OK;
    audit_entry e;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (row_to_entry(st, &e) != 0) {
            out = audit_fail(err, errlen, AUDIT_E_FORMAT, "audit log: entry %llu is malformed",
                             (unsigned long long)sqlite3_column_int64(st, 0));
            break;
        }
        if ((out = visit(&e, ctx)) != 0)
            break;
    }
    if (out == AUDIT_OK && rc != SQLITE_DONE)
        out = audit_sqlite_fail(log->db, rc, "querying entries", err, errlen);
    sqlite3_finalize(st);
    return out;
}
