#!/bin/sh
# appliance audit verify/show/prove/check-proof/checkpoint on a log that an
# independent writer (Python, following audit/FORMAT.md only) created; then
# tampering, truncation and a kept checkpoint, with verify_log.py alongside.
set -eu
BIN=${APPLIANCE_BIN:?APPLIANCE_BIN not set}
SRC=${APPLIANCE_SOURCE_DIR:?APPLIANCE_SOURCE_DIR not set}
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
command -v openssl >/dev/null || { echo "skip: openssl not installed"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. A log written by a second implementation of the format.
"$PY" - "$T/a.db" <<'PYEOF'
import hashlib, json, os, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.executescript("""
PRAGMA journal_mode=WAL;
CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;
CREATE TABLE entries(seq INTEGER PRIMARY KEY CHECK (seq >= 1), ts TEXT NOT NULL,
  kind TEXT NOT NULL, request_id TEXT NOT NULL, actor TEXT NOT NULL, record BLOB NOT NULL,
  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
  hash BLOB NOT NULL CHECK (length(hash) = 32)) STRICT;
""")
log_id = os.urandom(16).hex()
con.executemany("INSERT INTO meta VALUES (?, ?)", [("format", "appliance-audit"),
    ("format_version", "1"), ("log_id", log_id), ("hash", "sha3-256")])
prev = bytes(32)
events = [("init", "", {}), ("session_start", "", {"pid": 7}),
          ("prompt", "req-1", {"content": {"mode": "plaintext", "text": "caf\u00e9 \"q\"\n"}}),
          ("output", "req-1", {"tokens": 5}), ("prompt", "req-2", {"seed": 1})]
for seq, (kind, rid, body) in enumerate(events, 1):
    ts = "2026-11-25T10:00:%02d.000Z" % seq
    rec = {"seq": seq, "ts": ts, "kind": kind, "request_id": rid, "actor": "py",
           "log_id": log_id, "body": body}
    raw = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    h = hashlib.sha3_256(b"APPLIANCE-AUDIT-ENTRY-V1\x00" + prev + raw).digest()
    con.execute("INSERT INTO entries VALUES (?,?,?,?,?,?,?,?)", (seq, ts, kind, rid, "py", raw, prev, h))
    prev = h
con.commit()
PYEOF

"$BIN" audit verify --db "$T/a.db" > "$T/out" || fail "verify of the Python-written log"
grep -q "OK, 5 entries" "$T/out" || fail "verify output: $(cat "$T/out")"
grep -q "incomplete: request req-2" "$T/out" || fail "req-2 should be incomplete"
"$BIN" audit verify --db "$T/a.db" --json > "$T/out.json"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] and d["entries"]==5 and d["incomplete"]==["req-2"], d' "$T/out.json" \
    || fail "verify --json"

# Without --db the log is <home>/audit/audit.db.
mkdir -p "$T/home/audit" && cp "$T/a.db" "$T/home/audit/audit.db"
APPLIANCE_HOME="$T/home" "$BIN" audit verify | grep -q "OK, 5 entries" || fail "default db in the home"
"$BIN" --home "$T/home" audit verify | grep -q "OK, 5 entries" || fail "--home before audit"

# 2. Checkpoint with a device key made by openssl; stored in the log, printed.
openssl genpkey -algorithm ed25519 -out "$T/device.pem" 2>/dev/null
chmod 600 "$T/device.pem" # secret keys readable by others are refused
openssl pkey -in "$T/device.pem" -pubout -out "$T/device.pub.pem"
"$BIN" audit checkpoint --db "$T/a.db" --key "$T/device.pem" > "$T/cp.txt" || fail "checkpoint"
head -2 "$T/cp.txt" | tail -1 | grep -qx 5 || fail "checkpoint size: $(cat "$T/cp.txt")"
grep -q "^— appliance.audit/" "$T/cp.txt" || fail "signature line"
# The signed-note signature is plain Ed25519 over the text: openssl checks it.
"$PY" - "$T/cp.txt" "$T" <<'PYEOF'
import base64, sys
note = open(sys.argv[1], "rb").read()
text, _, sigs = note.rpartition(b"\n\n")
open(sys.argv[2] + "/cp.msg", "wb").write(text + b"\n")
open(sys.argv[2] + "/cp.sig", "wb").write(base64.b64decode(sigs.split(b" ")[2])[4:])
PYEOF
openssl pkeyutl -verify -pubin -inkey "$T/device.pub.pem" -rawin -in "$T/cp.msg" \
    -sigfile "$T/cp.sig" >/dev/null || fail "openssl does not verify the checkpoint signature"
"$BIN" audit verify --db "$T/a.db" --checkpoint "$T/cp.txt" --pubkey "$T/device.pub.pem" > "$T/out" \
    || fail "verify against checkpoint: $(cat "$T/out")"
grep -q "1 checkpoints verified" "$T/out" || fail "in-log checkpoint not counted"
"$PY" "$SRC/audit/verify_log.py" "$T/a.db" --checkpoint "$T/cp.txt" --pubkey "$T/device.pub.pem" \
    > "$T/py" || fail "verify_log.py: $(cat "$T/py")"

# 3. show (records an audit_read first), filters, JSON lines.
"$BIN" audit show --db "$T/a.db" --kind prompt > "$T/show" || fail "show"
[ "$(grep -c ' prompt ' "$T/show")" = 2 ] || fail "show --kind prompt: $(cat "$T/show")"
"$BIN" audit show --db "$T/a.db" --request-id req-1 --json > "$T/show.jsonl"
[ "$(wc -l < "$T/show.jsonl")" = 2 ] || fail "show --request-id"
"$BIN" audit show --db "$T/a.db" --kind audit_read --json | grep -q '"command":"show"' \
    || fail "show did not record an audit_read entry"
"$BIN" audit show --db "$T/a.db" --since 2999 | grep -q prompt && fail "--since filter"
"$BIN" audit verify --db "$T/a.db" >/dev/null || fail "verify after show"

# 4. Inclusion proof, checked without the log; tampered proof rejected.
"$BIN" audit prove --db "$T/a.db" --seq 3 --checkpoint "$T/cp.txt" > "$T/proof.json" || fail "prove"
"$BIN" audit check-proof --proof "$T/proof.json" --pubkey "$T/device.pub.pem" | grep -q OK \
    || fail "check-proof"
sed 's/"leaf_index": 2/"leaf_index": 3/' "$T/proof.json" > "$T/bad.json"
"$BIN" audit check-proof --proof "$T/bad.json" >/dev/null && fail "tampered proof accepted"
"$BIN" audit prove --db "$T/a.db" --seq 99 2>/dev/null && fail "prove of a missing entry"

# 4b. Consistency: a later checkpoint extends the first one.
"$BIN" audit checkpoint --db "$T/a.db" --key "$T/device.pem" > "$T/cp2.txt" || fail "checkpoint 2"
"$BIN" audit prove --db "$T/a.db" --from-checkpoint "$T/cp.txt" --checkpoint "$T/cp2.txt" \
    > "$T/cons.json" || fail "consistency proof"
grep -q '"old_size": 5' "$T/cons.json" || fail "consistency proof sizes"
"$BIN" audit check-proof --proof "$T/cons.json" --pubkey "$T/device.pub.pem" | grep -q OK \
    || fail "check-proof of the consistency proof"
"$BIN" audit prove --db "$T/a.db" --seq 1 --from-checkpoint "$T/cp.txt" 2>/dev/null \
    && fail "--seq with --from-checkpoint accepted"

# 5. Tampering and truncation: both verifiers name the entry.
cp "$T/a.db" "$T/t.db"
sqlite3 "$T/t.db" "DROP TRIGGER IF EXISTS entries_no_update; UPDATE entries SET actor='mallory' WHERE seq=4;" 2>/dev/null \
    || "$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("UPDATE entries SET actor=? WHERE seq=4", ("mallory",)); c.commit()' "$T/t.db"
set +e
"$BIN" audit verify --db "$T/t.db" > "$T/out"; rc=$?
"$PY" "$SRC/audit/verify_log.py" "$T/t.db" > "$T/py"; prc=$?
set -e
[ $rc = 1 ] && [ $prc = 1 ] || fail "tampered log: exit $rc / $prc"
grep -q "FAILED at entry 4: column" "$T/out" || fail "C verdict: $(cat "$T/out")"
grep -q "^FAIL 4 column" "$T/py" || fail "Python verdict: $(cat "$T/py")"
"$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("DELETE FROM entries WHERE seq > 3"); c.commit()' "$T/a.db"
set +e
"$BIN" audit verify --db "$T/a.db" --checkpoint "$T/cp.txt" --pubkey "$T/device.pub.pem" > "$T/out"; rc=$?
set -e
[ $rc = 1 ] && grep -q "FAILED at entry 4: truncated" "$T/out" || fail "truncation: $(cat "$T/out")"

# 5b. The minimal verifier printed in FORMAT.md agrees too.
sed -n '/minimal-verifier-begin/,/minimal-verifier-end/p' "$SRC/audit/FORMAT.md" \
    | sed '1,2d;$d' | sed '$d' > "$T/minimal.py"
"$PY" "$T/minimal.py" "$T/a.db" | grep -q "^ok 3 entries" || fail "FORMAT.md minimal verifier (good)"
"$PY" "$T/minimal.py" "$T/t.db" 2>&1 | grep -q "^FAIL 4 column" || fail "FORMAT.md minimal verifier (tampered)"

# 6. Usage errors exit 2 with one line and usage.
set +e
"$BIN" audit verify --bogus 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "usage:" "$T/err" || fail "bad option: exit $rc"
"$BIN" audit frobnicate 2>/dev/null; [ $? = 2 ] || fail "unknown audit command"
"$BIN" audit prove --db "$T/a.db" 2>/dev/null; [ $? = 2 ] || fail "prove without --seq"
"$BIN" audit show --db "$T/a.db" --kind nonsense 2>/dev/null; [ $? = 2 ] || fail "bad kind"
"$BIN" audit verify --db "$T/missing.db" 2>/dev/null; [ $? = 1 ] || fail "missing db"
set -e
"$BIN" audit --help | grep -q checkpoint || fail "audit --help"
"$BIN" audit bench --count 32 --dir "$T" | grep -q "group-commit writer" || fail "audit bench"
for sub in verify show prove check-proof checkpoint bench; do
    "$BIN" audit $sub --help | grep -q "^usage: appliance audit $sub" || fail "$sub --help"
done
echo "audit CLI: ok"
