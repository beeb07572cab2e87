# Policy refusals cite their rule: a generate request over limits.max_new_tokens,
# limits.context or limits.max_prompt_bytes, or one that cannot have the
# sandbox that sandbox.required asks for (test builds simulate a kernel
# without seccomp), is refused in one line naming the rule's JSON path,
# prints nothing, and leaves an audit `refusal` entry naming the rule and no
# prompt entry (except a prompt whose tokens and -n overflow limits.context:
# only the worker counts tokens, after the prompt is audited). A prompt that
# is not UTF-8 says where. Runs on a synthetic
# model: no ../shared needed.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
GEN="--synthetic tiny:q8_0 --seed 1 -t 1"

set_policy() { # set_policy SECTION KEY JSON-VALUE
    python3 - "$H/policy.json" "$@" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p.setdefault(sys.argv[2], {})[sys.argv[3]] = json.loads(sys.argv[4])
json.dump(p, open(sys.argv[1], "w"), indent=2)
PY
}
count() { "$APP" audit show --kind "$1" | grep -c " $1 " || true; }

# refused RULE TEXT CMD...: exit 1, one line "refused by policy RULE: TEXT",
# no output, one more refusal entry naming RULE, no new prompt entry.
refused() {
    rule=$1 text=$2
    shift 2
    r0=$(count refusal)
    p0=$(count prompt)
    expect_rc 1 "$@"
    one_line "$T/err"
    assert_grep "refused by policy $rule: $text" "$T/err"
    [ ! -s "$T/out" ] || fail "$rule: the refused request printed output"
    [ "$(count refusal)" -eq $((r0 + 1)) ] || fail "$rule: no refusal entry"
    [ "$(count prompt)" -eq $((p0 + ${PROMPT_LOGGED:-0})) ] ||
        fail "$rule: prompt entries went from $p0 to $(count prompt)"
    "$APP" audit show --kind refusal --json >"$T/refusals.json" 2>"$T/err" ||
        fail "audit show --json: $(cat "$T/err")"
    python3 - "$T/refusals.json" "$rule" <<'PY' || fail "$rule: the refusal entry does not name the rule"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
last = rows[-1]
body = last.get("body") or json.loads(last.get("body_json", "{}"))
assert body.get("rule") == sys.argv[2], last
PY
}

expect_rc 0 "$APP" generate $GEN -p "a first request" -n 4

set_policy limits max_new_tokens 8
expect_rc 0 "$APP" generate $GEN -p "at the limit" -n 8
refused limits.max_new_tokens "9 new tokens asked, the limit is 8" "$APP" generate $GEN -p "over" -n 9

set_policy limits context 64
expect_rc 0 "$APP" generate $GEN -p "within the context" -n 4 -c 64
refused limits.context "a context of 65 tokens asked, the limit is 64" \
    "$APP" generate $GEN -p "a bigger context" -n 4 -c 65
# A prompt whose tokens and -n do not fit the context the policy allows.
# Only the worker can count tokens, and it sees a prompt only after the
# prompt is audited: so this refusal follows the request's prompt entry.
long=$(python3 -c 'print("a long prompt for a small context " * 10)')
PROMPT_LOGGED=1
refused limits.context "the prompt's" "$APP" generate $GEN -p "$long" -n 8
PROMPT_LOGGED=0
python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]["body"]["reason"]; assert r.endswith("and 8 new tokens exceed the context of 64 tokens"), r' \
    "$T/refusals.json" || fail "the limits.context refusal does not say why"
# A context the user chose smaller (-c) only ends the answer early.
expect_rc 0 "$APP" generate $GEN -p "hello there" -n 8 -c 20 --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["finish_reason"] == "length" and 0 < len(d["tokens"]) < 8, d' \
    "$T/out" || fail "-c smaller than the policy's context did not just end the answer early"

set_policy limits max_prompt_bytes 16
expect_rc 0 "$APP" generate $GEN -p "sixteen bytes ok" -n 2
refused limits.max_prompt_bytes "the prompt has 17 bytes, the limit is 16" \
    "$APP" generate $GEN -p "seventeen bytes!!" -n 2

# Invalid UTF-8 is not a policy rule: it says what and where, and is audited.
r0=$(count refusal)
expect_rc 1 "$APP" generate $GEN -p "$(printf 'ok \303\050 x')" -n 2
one_line "$T/err"
assert_grep "appliance generate: prompt: invalid UTF-8 at byte 3" "$T/err"
[ "$(count refusal)" -eq $((r0 + 1)) ] || fail "the invalid UTF-8 refusal is not audited"
expect_rc 1 "$APP" generate $GEN -p "$(printf '\377')" -n 2
assert_grep "prompt: invalid UTF-8 at byte 0" "$T/err"

expect_rc 0 "$APP" audit verify
assert_grep "OK," "$T/out"

# sandbox.required: test builds only (release builds have no way to fake it).
if ! "$APP" generate --test-violate socket -p x --synthetic tiny:q8_0 -n 1 2>&1 |
    grep -q "SIGSYS\|sandbox"; then
    done_ok
    exit 0
fi
export APPLIANCE_TEST_SANDBOX_UNAVAILABLE=worker
refused sandbox.required \
    "the engine worker's sandbox cannot be installed: seccomp is unavailable (simulated" \
    "$APP" generate $GEN -p "no sandbox" -n 2
export APPLIANCE_TEST_SANDBOX_UNAVAILABLE=monitor
refused sandbox.required \
    "the monitor's seccomp filter cannot be installed: seccomp is unavailable (simulated" \
    "$APP" generate $GEN -p "no sandbox" -n 2
# With sandbox.required false the request runs, and says it ran unfiltered.
set_policy sandbox required false
export APPLIANCE_TEST_SANDBOX_UNAVAILABLE=worker
expect_rc 0 "$APP" generate $GEN -p "unsandboxed" -n 2 --json
python3 - "$T/out" <<'PY' || fail "an unsandboxed run does not say so"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["sandbox"]["seccomp_mode"] == 0, d["sandbox"]
assert d["sandbox"]["monitor_seccomp_mode"] == 2, d["sandbox"]
PY
unset APPLIANCE_TEST_SANDBOX_UNAVAILABLE
expect_rc 0 "$APP" audit verify
assert_grep "OK," "$T/out"
done_ok
