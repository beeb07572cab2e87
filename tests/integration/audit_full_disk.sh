# Fail closed: when the audit log's file system is full, generation is
# refused in one line (the engine never sees the prompt) and the log that
# is there still verifies. Needs root to mount a tiny tmpfs; skips otherwise.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
cp "$H/audit/audit.db" "$T/audit.db"
mount -t tmpfs -o size=160k,mode=0700 tmpfs "$H/audit" 2>/dev/null ||
    skip "cannot mount a tmpfs here (needs root)"
trap 'umount "$H/audit" 2>/dev/null; rm -rf "$T"' EXIT
cp "$T/audit.db" "$H/audit/audit.db"

refused=0
for i in $(seq 1 200); do
    set +e
    "$APP" generate --synthetic tiny:q8_0 -p "prompt number $i, long enough to take room" \
        -n 2 --seed 1 -t 1 >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    if [ "$rc" != 0 ]; then
        refused=1
        break
    fi
done
[ "$refused" = 1 ] || fail "160 KiB never filled up"
one_line "$T/err"
grep -q "audit" "$T/err" || fail "refusal does not name the audit log: $(cat "$T/err")"
echo "refused after $i requests: $(cat "$T/err")"
# Nothing was generated for the refused request, and the log still verifies.
[ ! -s "$T/out" ] || fail "the refused request produced output"
expect_rc 0 "$APP" audit verify
assert_grep "OK," "$T/out"
python3 "$APPLIANCE_SOURCE_DIR/audit/verify_log.py" "$H/audit/audit.db" >/dev/null ||
    fail "verify_log.py rejects the log after the disk filled"
done_ok
