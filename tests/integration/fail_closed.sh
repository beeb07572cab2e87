# Fail closed end to end (issue 4): `appliance generate` in a home whose
# audit log is missing, is garbage, is cut short, or is held by another
# writer past the busy timeout refuses in one line naming the audit log,
# exits 1 and prints no generated text; a log that is still there verifies
# afterwards. Runs without ../shared (a synthetic model, no home needed for
# the model itself).
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"

H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
DB="$H/audit/audit.db"
GEN="--synthetic tiny:q8_0 -p fail-closed -n 2 --seed 1 -t 1"

# A working home first, so each case below is a change of the log only.
expect_rc 0 "$APP" generate $GEN
cp "$DB" "$T/good.db"
[ ! -e "$DB-wal" ] || fail "the log was left with a WAL file after a clean close"

# refused LABEL WORD: the last run refused in one line naming the audit log
# (and WORD, the problem), with nothing on stdout.
refused() {
    one_line "$T/err"
    assert_grep "audit" "$T/err"
    assert_grep "$2" "$T/err"
    [ ! -s "$T/out" ] || fail "$1: the refused request printed output: $(cat "$T/out")"
}

# 1. Missing: the home has a policy but no log; never a silent fresh log.
rm -f "$DB" "$DB-wal" "$DB-shm"
expect_rc 1 "$APP" generate $GEN
refused missing "does not exist"
[ ! -e "$DB" ] || fail "generate created a new audit log in place of the missing one"
expect_rc 1 "$APP" generate $GEN --json
refused "missing (--json)" "does not exist"

# 2. Garbage bytes in place of the database.
head -c 8192 /dev/urandom >"$DB"
expect_rc 1 "$APP" generate $GEN
refused garbage "not a database"

# 3. Truncated: the real log cut to its first page.
head -c 4096 "$T/good.db" >"$DB"
expect_rc 1 "$APP" generate $GEN
refused truncated "malformed"

# 4. Locked: another process holds the write lock past the busy timeout.
cp "$T/good.db" "$DB"
expect_rc 0 "$APP" audit verify
before=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from entries").fetchone()[0])' "$DB")
python3 - "$DB" "$T/locked" "$T/release" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # the write lock, held until told to let go
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
db.execute("ROLLBACK")
PY
HOLDER=$!
i=0
while [ ! -e "$T/locked" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
[ -e "$T/locked" ] || fail "the lock holder never took the lock"
expect_rc 1 "$APP" generate $GEN
refused locked "locked"
touch "$T/release"
wait "$HOLDER" || fail "the lock holder failed"
# Nothing of the refused request is in the log, and the log verifies.
after=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from entries").fetchone()[0])' "$DB")
expect_rc 0 "$APP" audit verify
assert_grep "OK," "$T/out"
python3 "$APPLIANCE_SOURCE_DIR/audit/verify_log.py" "$DB" >/dev/null ||
    fail "verify_log.py rejects the log after the locked refusal"
[ "$before" = "$after" ] || fail "the refused request left entries: $before before, $after after"
# And once the lock is gone, generation works again.
expect_rc 0 "$APP" generate $GEN
[ -s "$T/out" ] || fail "no output after the lock was released"
done_ok
