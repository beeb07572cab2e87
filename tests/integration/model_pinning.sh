# Model pinning (issue 5): with policy trust.pinned_models set, a model that
# is signed by a trusted publisher but whose OMS root digest is not pinned
# is refused at `model add` (one line citing the rule, an audit refusal),
# the pinned one installs and runs, and an installed model whose digest is
# later dropped from the pin list is refused by `generate` the same way.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
need_shared
H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
mkdir -p "$T/pub" "$T/m"
cp "$SHARED/models/aidreams260K-f16.gguf" "$T/m/dreams.gguf"
cp "$SHARED/models/kq-q4_0.gguf" "$T/m/other.gguf"
"$APP" keygen --kind publisher --out "$T/pub" >/dev/null
for m in dreams other; do
    "$APP" image sign-model --method key --model-path "$T/m/$m.gguf" --output-bundle "$T/$m.sig" \
        --private-key "$T/pub/publisher.key.pem" >/dev/null || fail "sign $m"
done
expect_rc 0 "$APP" trust add --publisher-key "$T/pub/publisher.pub.pem"

# The root digests, read from the bundles (not from the appliance's own log).
root_of() { "$APP" image inspect "$1" | grep "^root digest" | grep -oE "[0-9a-f]{64}"; }
DREAMS=$(root_of "$T/dreams.sig")
OTHER=$(root_of "$T/other.sig")
echo "$DREAMS" | grep -Eq '^[0-9a-f]{64}$' || fail "no root digest for dreams: '$DREAMS'"
[ "$DREAMS" != "$OTHER" ] || fail "two models with one root digest"

# pin DIGEST...: the policy's pin list becomes exactly these digests.
pin() {
    python3 - "$H/policy.json" "$@" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p.setdefault("trust", {})["pinned_models"] = sys.argv[2:]
json.dump(p, open(sys.argv[1], "w"), indent=2)
PY
}
refusals() { "$APP" audit show --kind refusal | grep -c " refusal " || true; }
# last_refusal_says FIELD TEXT: the newest refusal entry's body FIELD holds TEXT.
last_refusal_says() {
    "$APP" audit show --kind refusal --json >"$T/ref.json" || fail "audit show --json"
    python3 - "$T/ref.json" "$1" "$2" <<'PY' || fail "the last refusal's $1 does not say '$2'"
import json, sys
body = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]["body"]
assert sys.argv[3] in body.get(sys.argv[2], ""), body
PY
}

# Only "other" pinned: dreams is trusted and signed, and still refused.
pin "$OTHER"
expect_rc 0 "$APP" policy check "$H/policy.json"
assert_grep "1 pinned model(s)" "$T/out"
n0=$(refusals)
expect_rc 1 "$APP" model add "$T/m/dreams.gguf" --bundle "$T/dreams.sig" --name dreams
one_line "$T/err"
assert_grep "trust.pinned_models" "$T/err"
assert_grep "root digest $DREAMS is not pinned" "$T/err"
[ ! -s "$T/out" ] || fail "a refused model add printed output"
[ "$(refusals)" -eq $((n0 + 1)) ] || fail "the pin refusal of model add is not audited"
last_refusal_says reason "trust.pinned_models: root digest $DREAMS is not pinned"
expect_rc 0 "$APP" model list
assert_no_grep "dreams" "$T/out"

# Both pinned: dreams installs and runs.
pin "$OTHER" "$DREAMS"
expect_rc 0 "$APP" model add "$T/m/dreams.gguf" --bundle "$T/dreams.sig" --name dreams
assert_grep "root digest $DREAMS" "$T/out"
expect_rc 0 "$APP" generate -m dreams -p "I dreamed" -n 4 --greedy --seed 1 -t 1 --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["tokens"]) == 4, d' "$T/out" ||
    fail "the pinned model did not generate"

# Its digest dropped from the pin list later: the installed model no
# longer runs, refused in one line citing the rule, audited, no output.
pin "$OTHER"
n1=$(refusals)
expect_rc 1 "$APP" generate -m dreams -p "I dreamed" -n 4 --greedy --seed 1 -t 1
one_line "$T/err"
assert_grep "refused by policy trust.pinned_models: model dreams: root digest $DREAMS is not pinned" "$T/err"
[ ! -s "$T/out" ] || fail "the unpinned model produced output"
[ "$(refusals)" -eq $((n1 + 1)) ] || fail "the pin refusal of generate is not audited"
last_refusal_says rule "trust.pinned_models"
# By path too: the bytes are an installed model's, the pin still decides.
expect_rc 1 "$APP" generate -m "$T/m/dreams.gguf" -p "I dreamed" -n 4 --greedy --seed 1 -t 1
assert_grep "trust.pinned_models" "$T/err"
# An empty pin list means "any trusted model" again.
pin
expect_rc 0 "$APP" generate -m dreams -p "I dreamed" -n 4 --greedy --seed 1 -t 1
expect_rc 0 "$APP" audit verify
assert_grep "OK," "$T/out"
done_ok
