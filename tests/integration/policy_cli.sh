# appliance policy: `show-sandbox` prints both seccomp filters rule by rule
# with their default actions; --help; usage errors exit 2 in one line.
# `models.load` accepts only what is implemented ("sealed-copy"): the
# DESIGN's "mapped-file" is a policy error naming its JSON path, in `policy
# check` and in every command that loads the policy.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"

expect_rc 0 "$APP" policy show-sandbox
S="$T/sandbox.txt"
cp "$T/out" "$S"
assert_grep "engine worker seccomp filter (default: kill the worker process (SIGSYS))" "$S"
assert_grep "monitor seccomp filter (default: allow)" "$S"
# The worker's allow list names its argument conditions; the monitor's deny list.
python3 - "$S" <<'PY' || fail "show-sandbox rules"
import re, sys
text = open(sys.argv[1]).read()
worker, monitor = text.split("monitor seccomp filter", 1)
def rules(part):
    return {m.group(1): m.group(2) for m in re.finditer(r"^  (\w+) +(.+?)  +", part, re.M)}
w, m = rules(worker), rules(monitor)
assert w["read"] == "allow if fd is the IPC socket", w["read"]
assert w["write"] == "allow if fd is the IPC socket or stderr", w["write"]
assert w["mmap"] == "allow if prot lacks PROT_EXEC", w["mmap"]
assert w["recvfrom"].startswith("allow if fd is the IPC socket and flags are MSG_DONTWAIT")
assert w["exit_group"] == "allow"
for forbidden in ("open", "openat", "socket", "connect", "execve", "ptrace", "fork", "clone"):
    assert forbidden not in w, forbidden + " is allowed in the worker"
assert m["connect"] == "deny (EPERM)" and m["execve"] == "deny (EPERM)", m
assert m["socket"] == "deny (EPERM) unless domain is AF_UNIX", m["socket"]
assert "ptrace" in m and "io_uring_setup" in m, m
assert "read" not in m and "write" not in m
PY
assert_grep "RLIMIT_CORE=0" "$S"
# It needs no home: the filters are the binary's own.
[ ! -e "$APPLIANCE_HOME" ] || fail "show-sandbox created a home"

expect_rc 0 "$APP" policy --help
assert_grep "show-sandbox" "$T/out"
assert_grep "usage: appliance policy" "$T/out"
# Usage errors: the error in the first line, then the usage; exit 2.
usage_error() {
    head -1 "$T/err" | grep -qF "appliance policy: $1" || fail "first line is not the error: $(cat "$T/err")"
    assert_grep "usage: appliance policy" "$T/err"
    [ ! -s "$T/out" ] || fail "a usage error printed to stdout"
}
expect_rc 2 "$APP" policy show-sandbox --bogus
usage_error "bad option '--bogus'"
expect_rc 2 "$APP" policy show-sandbox extra
usage_error "unexpected argument 'extra'"
expect_rc 2 "$APP" policy no-such-action
usage_error "unknown action 'no-such-action'"

# models.load: only the sealed copy.
H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
expect_rc 0 "$APP" policy show
assert_grep '"load": "sealed-copy"' "$T/out"
set_load() {
    python3 - "$1" "$2" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p.setdefault("models", {})["load"] = sys.argv[2]
json.dump(p, open(sys.argv[1], "w"), indent=2)
PY
}
cp "$H/policy.json" "$T/p.json"
set_load "$T/p.json" sealed-copy
expect_rc 0 "$APP" policy check "$T/p.json"
assert_grep "model loading      sealed-copy" "$T/out"
set_load "$T/p.json" mapped-file
expect_rc 1 "$APP" policy check "$T/p.json"
one_line "$T/err"
assert_grep '$.models.load: "mapped-file" is not supported' "$T/err"
assert_grep "sealed-copy" "$T/err"
# In the home's policy, generation refuses to start rather than ignore it.
cp "$T/p.json" "$H/policy.json"
expect_rc 1 "$APP" generate --synthetic tiny:q8_0 -p hi -n 1 --seed 1 -t 1
one_line "$T/err"
assert_grep '$.models.load' "$T/err"
[ ! -s "$T/out" ] || fail "generate ran under a policy it cannot honour"
done_ok
