# Replay: an auditor reruns an attested, sampled generation in the sandbox,
# at 1 and 2 threads, and gets the attested output digest bit for bit; a
# different model, prompt or salt is refused. Nothing is audited by replay.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
need_shared
H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
install_model "$H"
PROMPT="Once upon a time"
printf '%s' "$PROMPT" >"$T/prompt.txt"
APPLIANCE_HOME="$H" "$APP" generate $MODEL -p "$PROMPT" -n 32 --temp 0.9 --top-k 40 --seed 42 \
    -t 2 --json --attest "$T/att.json" >"$T/gen.json" 2>"$T/err" || fail "generate: $(cat "$T/err")"
salt=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["audit"]["prompt_salt"])' \
    "$T/gen.json")
entries=$(APPLIANCE_HOME="$H" "$APP" audit verify | sed -n 's/.*OK, \([0-9]*\) entries.*/\1/p')

# The auditor's machine has no appliance home: keys and model come as files.
replay() {
    "$APP" attest replay "$T/att.json" --model "$1" --bundle "$T/demo.sig" \
        --prompt-file "$2" --salt "$3" --pubkey "$H/keys/device.pub.pem" \
        --publisher-key "$T/publisher/publisher.pub.pem" -t "$4"
}
for threads in 1 2; do
    expect_rc 0 replay "$T/models/demo.gguf" "$T/prompt.txt" "$salt" "$threads"
    assert_grep "replay matches: output sha256" "$T/out"
done
# The attested output digest is the one replay reproduced.
python3 - "$T/att.json" "$T/out" <<'PY' || fail "replayed digest is not the attested subject"
import base64, json, sys
st = json.loads(base64.b64decode(json.load(open(sys.argv[1]))["payload"]))
want = st["subject"][0]["digest"]["sha256"]
assert want in open(sys.argv[2]).read(), want
PY

cp "$SHARED/models/aidreams260K-f32.gguf" "$T/other.gguf"
expect_rc 1 replay "$T/other.gguf" "$T/prompt.txt" "$salt" 1
assert_grep "does not match its bundle" "$T/err"
one_line "$T/err"
printf 'Once upon a tim' >"$T/prompt2.txt"
expect_rc 1 replay "$T/models/demo.gguf" "$T/prompt2.txt" "$salt" 1
one_line "$T/err"
expect_rc 2 replay "$T/models/demo.gguf" "$T/prompt.txt" "abc" 1

# Replay wrote nothing to the device's log.
after=$(APPLIANCE_HOME="$H" "$APP" audit verify | sed -n 's/.*OK, \([0-9]*\) entries.*/\1/p')
[ "$entries" = "$after" ] || fail "replay changed the audit log ($entries -> $after entries)"
done_ok
