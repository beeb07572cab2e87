# Every audited generation is attested: generate --attest writes the DSSE
# envelope that also follows the output entry in the audit log; the auditor
# checks it with appliance attest verify and with the openssl CLI alone.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
command -v openssl >/dev/null || skip "openssl CLI absent"
MODEL="--synthetic tiny:q8_0"
PROMPT="Summarise: the patient reports mild headache."

# Without a home there is no device key: --attest is refused in one line.
expect_rc 1 "$APP" generate $MODEL -p "$PROMPT" -n 4 --seed 1 --attest "$T/a.json"
assert_grep "--attest needs an appliance home" "$T/err"
one_line "$T/err"

H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
install_model "$H"
expect_rc 0 "$APP" generate $MODEL -p "$PROMPT" -n 12 --seed 5 -t 2 --json --attest "$T/att.json"
cp "$T/out" "$T/gen.json"
python3 - "$T/out" "$T" <<'PY' || fail "reading the generate result"
import json, sys
d = json.load(open(sys.argv[1]))
a = d["audit"]
assert a["attestation_seq"] == a["output_seq"] + 1 == a["prompt_seq"] + 2, a
open(sys.argv[2] + "/output.txt", "wb").write(d["text"].encode())
open(sys.argv[2] + "/salt.txt", "w").write(a["prompt_salt"])
PY
printf '%s' "$PROMPT" >"$T/prompt.txt"
PUB="$H/keys/device.pub.pem"
# The salt is in the prompt entry of the log (where the officer finds it).
python3 - "$H/audit/audit.db" "$(cat "$T/salt.txt")" <<'PY' || fail "salt not in the prompt entry"
import json, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT record FROM entries WHERE kind='prompt'")
body = json.loads(next(rows)[0])["body"]
assert body["prompt_salt"] == sys.argv[2], body
assert len(body["model"]["root_digest"]) == 64 and body["model"]["signer"], body
PY
expect_rc 0 "$APP" attest verify "$T/att.json" --pubkey "$PUB" --prompt-file "$T/prompt.txt" \
    --salt "$(cat "$T/salt.txt")" --output-file "$T/output.txt"
assert_grep "1 attestation verified" "$T/out"
assert_grep "matches the prompt and salt" "$T/out"

# A one-character change of the prompt fails the commitment.
printf '%s' "$PROMPT" | sed 's/mild/wild/' >"$T/prompt2.txt"
expect_rc 1 "$APP" attest verify "$T/att.json" --pubkey "$PUB" --prompt-file "$T/prompt2.txt" \
    --salt "$(cat "$T/salt.txt")"
one_line "$T/err"

# The auditor without our code: the DSSE PAE rebuilt with printf, checked by openssl.
python3 - "$T/att.json" "$T" <<'PY'
import base64, json, sys
env = json.load(open(sys.argv[1]))
payload = base64.b64decode(env["payload"])
t = env["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
open(sys.argv[2] + "/pae.bin", "wb").write(pae)
open(sys.argv[2] + "/sig.bin", "wb").write(base64.b64decode(env["signatures"][0]["sig"]))
PY
openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$T/pae.bin" -sigfile "$T/sig.bin" \
    >/dev/null || fail "openssl does not verify the attestation"
printf 'X' | dd of="$T/pae.bin" bs=1 seek=40 conv=notrunc 2>/dev/null
if openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$T/pae.bin" -sigfile "$T/sig.bin" \
    >/dev/null 2>&1; then
    fail "openssl verified a changed payload"
fi

# The officer exports it (with the device key and a signed checkpoint) for the
# auditor, who verifies every line with the device key alone.
rid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["request_id"])' "$T/gen.json" 2>/dev/null ||
    true)
expect_rc 0 "$APP" attest export --since 2000-01-01 --out "$T/bundle.jsonl"
[ "$(wc -l <"$T/bundle.jsonl")" -eq 3 ] || fail "bundle: device key, 1 attestation, checkpoint"
expect_rc 0 "$APP" attest verify "$T/bundle.jsonl" --pubkey "$PUB"
assert_grep "checkpoint (line 3): ok" "$T/out"
assert_grep "1 attestation verified" "$T/out"
expect_rc 1 "$APP" attest export --request no-such-request
assert_grep "no attestation matches request no-such-request" "$T/err"
one_line "$T/err"
expect_rc 2 "$APP" attest export
expect_rc 0 "$APP" audit show --kind audit_read
assert_grep "attest export" "$T/out"

# A signed checkpoint every audit.checkpoint_interval entries (policy).
python3 - "$H/policy.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["audit"]["checkpoint_interval"] = 4
json.dump(p, open(sys.argv[1], "w"), indent=2)
PY
for i in 1 2; do
    expect_rc 0 "$APP" generate $MODEL -p "$PROMPT" -n 2 --seed $i -t 1
done
expect_rc 0 "$APP" audit show --kind checkpoint
[ "$(grep -c " checkpoint " "$T/out")" -ge 2 ] || fail "no periodic checkpoints"
expect_rc 0 "$APP" audit verify --pubkey "$PUB"
assert_grep "checkpoints verified" "$T/out"

# The same envelope is the attestation entry of the audit log.
expect_rc 0 "$APP" audit show --kind attestation
assert_grep "attestation" "$T/out"
expect_rc 0 "$APP" audit verify
done_ok
