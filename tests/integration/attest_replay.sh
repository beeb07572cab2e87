# Replay: an auditor reruns an attested, sampled generation in the sandbox,
# at 1 and 2 threads, and gets the attested output digest bit for bit; a
# different model, prompt or salt is refused. Nothing is audited by replay.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
need_shared
H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"

# replay ATTESTATION NAME PROMPT_FILE SALT THREADS: the auditor's machine has
# no appliance home: the device key, model, bundle and publisher key are files.
replay() {
    "$APP" attest replay "$1" --model "$T/models/$2.gguf" --bundle "$T/$2.sig" \
        --prompt-file "$3" --salt "$4" --pubkey "$H/keys/device.pub.pem" \
        --publisher-key "$T/publisher/publisher.pub.pem" -t "$5"
}

# A real trained model and a synthetic one on a quantized (Q4_K/Q6_K) path.
PROMPT="Once upon a time"
printf '%s' "$PROMPT" >"$T/prompt.txt"
for m in aidreams260K-f16 kq-q4_k_m; do
    install_model "$H" "$SHARED/models/$m.gguf" "$m"
    APPLIANCE_HOME="$H" "$APP" generate $MODEL -p "$PROMPT" -n 32 --temp 0.9 --top-k 40 \
        --seed 42 -t 2 --json --attest "$T/$m.att" >"$T/gen.json" 2>"$T/err" ||
        fail "generate $m: $(cat "$T/err")"
    salt=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["audit"]["prompt_salt"])' \
        "$T/gen.json")
    entries=$(APPLIANCE_HOME="$H" "$APP" audit verify | sed -n 's/.*OK, \([0-9]*\) entries.*/\1/p')
    for threads in 1 2; do
        expect_rc 0 replay "$T/$m.att" "$m" "$T/prompt.txt" "$salt" "$threads"
        assert_grep "replay matches: output sha256" "$T/out"
    done
    # The digest replay reproduced is the attested subject.
    python3 - "$T/$m.att" "$T/out" <<'PY' || fail "replayed digest is not the attested subject"
import base64, json, sys
st = json.loads(base64.b64decode(json.load(open(sys.argv[1]))["payload"]))
want = st["subject"][0]["digest"]["sha256"]
assert want in open(sys.argv[2]).read(), want
PY
    # Replay wrote nothing to the device's log.
    after=$(APPLIANCE_HOME="$H" "$APP" audit verify | sed -n 's/.*OK, \([0-9]*\) entries.*/\1/p')
    [ "$entries" = "$after" ] || fail "replay changed the audit log ($entries -> $after)"
done

# Another model's file, a changed prompt, a malformed salt: refused.
expect_rc 1 replay "$T/aidreams260K-f16.att" kq-q4_k_m "$T/prompt.txt" "$salt" 1
one_line "$T/err"
printf 'Once upon a tim' >"$T/prompt2.txt"
expect_rc 1 replay "$T/kq-q4_k_m.att" kq-q4_k_m "$T/prompt2.txt" "$salt" 1
one_line "$T/err"
expect_rc 2 replay "$T/kq-q4_k_m.att" kq-q4_k_m "$T/prompt.txt" "abc" 1
done_ok
