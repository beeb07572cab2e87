# The sandbox proven through the real binary: a generation runs in a worker
# under its seccomp filter (and the monitor under its own), and a worker
# ordered (test builds only) to do what a compromised one would try is
# killed with SIGSYS; the monitor survives, says so in one line, and audits
# it; the log still verifies.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"

H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
install_model "$H"

# A normal generation: both processes filtered, as /proc shows them.
expect_rc 0 "$APP" generate $MODEL -p "I dreamed" -n 8 --greedy --json -t 2
python3 - "$T/out" <<'PY' || fail "sandbox facts of a live generation"
import json, sys
d = json.load(open(sys.argv[1]))
s = d["sandbox"]
assert s["seccomp_mode"] == 2, s          # the worker, from /proc/PID/status
assert s["no_new_privs"] is True, s
assert s["monitor_seccomp_mode"] == 2, s  # the monitor, from /proc/self/status
assert d["audit"]["output_seq"] == d["audit"]["prompt_seq"] + 1, d
PY
# Sealed by default: the prompt text is not in the database.
if grep -aq "I dreamed" "$H/audit/audit.db" "$H/audit/audit.db-wal" 2>/dev/null; then
    fail "the prompt is stored in plain text"
fi

# Hostile model files (the GGUF fuzz corpus) are parsed only inside the
# worker: each ends in one line and exit 1, never a monitor crash or hang.
for f in "$APPLIANCE_SOURCE_DIR"/tests/fuzz/corpus/fuzz_gguf/*; do
    set +e
    APPLIANCE_HOME="$T/no-home" timeout 60 "$APP" generate -m "$f" -p x -n 2 --seed 1 -t 2 >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    TESTS_RUN=$((TESTS_RUN + 1))
    [ "$rc" = 1 ] || fail "hostile model $(basename "$f"): exit $rc, expected 1"
    one_line "$T/err"
done

# Test builds only: the hidden --test-violate flag.
if ! "$APP" generate --test-violate socket -p x --synthetic tiny:q8_0 -n 1 2>&1 |
    grep -q "SIGSYS\|sandbox"; then
    skip "this build has no test hooks (release builds never do)"
fi

for act in socket connect open-audit-db execve read-device-key; do
    expect_rc 1 "$APP" generate $MODEL -p "attempt $act" -n 4 -t 2 --seed 1 --test-violate $act
    assert_grep "the engine worker broke the sandbox and was killed (SIGSYS)" "$T/err"
    one_line "$T/err"
done
expect_rc 1 "$APP" generate $MODEL -p "crash" -n 4 -t 2 --seed 1 --test-violate crash
assert_grep "the engine worker crashed (signal 11" "$T/err"
expect_rc 1 "$APP" generate $MODEL -p "hang" -n 4 -t 2 --seed 1 --test-violate hang --test-reply-timeout 500
assert_grep "did not answer within 500 ms and was killed" "$T/err"

# Each violation is in the log (5 SIGSYS + the one from the probe above),
# the crash and the hang as errors; the chain still verifies, with the
# interrupted requests listed as incomplete rather than as tampering.
expect_rc 0 "$APP" audit show --kind sandbox_violation
n=$(grep -c "sandbox_violation" "$T/out")
[ "$n" -ge 5 ] || fail "expected at least 5 sandbox_violation entries, got $n"
expect_rc 0 "$APP" audit show --kind error
[ "$(grep -c " error " "$T/out")" -ge 2 ] || fail "crash and hang not audited as errors"
expect_rc 0 "$APP" audit verify
assert_grep "OK," "$T/out"
assert_grep "incomplete" "$T/out"
# And the appliance still works afterwards: a fresh worker per request.
expect_rc 0 "$APP" generate $MODEL -p "after" -n 4 --greedy -t 2

# limits.requests_per_minute, per actor, counted from the audit log.
python3 - "$H/policy.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["limits"]["requests_per_minute"] = 1
json.dump(p, open(sys.argv[1], "w"), indent=2)
PY
expect_rc 1 "$APP" generate $MODEL -p "one too many" -n 2 --seed 1
assert_grep "refused by policy limits.requests_per_minute" "$T/err"
one_line "$T/err"
done_ok
