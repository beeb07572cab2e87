# attest verify: a genuine attestation verifies with `appliance attest verify`
# and with the openssl CLI alone; every tampering is rejected with a one-line
# reason; the keyid only selects the key; envelopes signed by openssl itself
# (over statements we break on purpose) get their own messages.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
command -v openssl >/dev/null || skip "openssl CLI absent"
command -v python3 >/dev/null || skip "python3 absent"
# The test-only signer is built beside the unit tests.
SIGNER="$(dirname "$(dirname "$APP")")/tests/test_attest_sign"
[ -x "$SIGNER" ] || fail "test helper $SIGNER is missing"

mkdir "$T/keys" "$T/other"
expect_rc 0 "$APP" keygen --kind device --out "$T/keys"
fp=$(sed -n 's/^fingerprint: //p' "$T/out")
expect_rc 0 "$APP" keygen --kind device --out "$T/other"
PUB="$T/keys/device.pub.pem"
KEY="$T/keys/device.key.pem"

printf 'Summarise: biopsy shows benign tissue.' >"$T/prompt.txt"
printf 'The biopsy is benign.' >"$T/output.txt"
salt=$(openssl rand -hex 32)
"$SIGNER" write "$KEY" "$T/prompt.txt" "$salt" "$T/output.txt" "$T/att.json" ||
    fail "the test signer could not write an attestation"
ATT="$T/att.json"

# --- the appliance verifier ---------------------------------------------------
expect_rc 0 "$APP" attest verify "$ATT" --pubkey "$PUB"
assert_grep "OK: $ATT: 1 attestation verified with device key $fp" "$T/out"
assert_grep "signature ok" "$T/out"
expect_rc 0 "$APP" attest verify "$ATT" --pubkey "$PUB" --prompt-file "$T/prompt.txt" \
    --salt "$salt" --output-file "$T/output.txt"
assert_grep "(matches the output file)" "$T/out"
assert_grep "(matches the prompt and salt)" "$T/out"
expect_rc 0 "$APP" attest verify --json "$ATT" --pubkey "$PUB" --output-file "$T/output.txt"
python3 - "$T/out" <<'EOF' || fail "--json result is not the documented object"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True and r["status"] == "ok" and r["attestations"] == 1, r
s = r["records"][0]["statement"]
assert s["outputChecked"] is True and s["promptChecked"] is False, s
assert s["sampling"]["seed"] == "1234" and s["sampling"]["temperature"] == 0.7, s
EOF

# --- the openssl CLI alone (the recipe of attest/PREDICATE.md) ---------------
sed -n 's/.*"payload":"\([^"]*\)".*/\1/p' "$ATT" | base64 -d >"$T/payload.bin"
sed -n 's/.*"sig":"\([^"]*\)".*/\1/p' "$ATT" | base64 -d >"$T/sig.bin"
type=application/vnd.in-toto+json
printf 'DSSEv1 %d %s %d ' ${#type} "$type" "$(wc -c <"$T/payload.bin")" >"$T/pae.bin"
cat "$T/payload.bin" >>"$T/pae.bin"
openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$T/pae.bin" -sigfile "$T/sig.bin" \
    >"$T/ossl" || fail "openssl does not verify the attestation"
assert_grep "Signature Verified Successfully" "$T/ossl"
# The subject is sha256sum of the output; the commitment SHA-256(salt || prompt).
out_digest=$(sha256sum "$T/output.txt" | cut -d' ' -f1)
assert_grep "\"subject\":[{\"digest\":{\"sha256\":\"$out_digest\"},\"name\":\"output\"}]" \
    "$T/payload.bin"
commit=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1]) + open(sys.argv[2],"rb").read()).hexdigest())' \
    "$salt" "$T/prompt.txt")
assert_grep "\"commitment\":{\"sha256\":\"$commit\"}" "$T/payload.bin"
# openssl rejects a PAE with one byte changed.
sed 's/"tokens":5/"tokens":6/' "$T/pae.bin" >"$T/pae-bad.bin"
cmp -s "$T/pae.bin" "$T/pae-bad.bin" && fail "the PAE edit changed nothing"
if openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$T/pae-bad.bin" \
    -sigfile "$T/sig.bin" >/dev/null 2>&1; then
    fail "openssl verified a tampered PAE"
fi

# envelope JSON with the given payload bytes (file) signed by openssl with KEY.
openssl_envelope() { # payload_file key out [payloadType]
    ptype=${4:-application/vnd.in-toto+json}
    printf 'DSSEv1 %d %s %d ' ${#ptype} "$ptype" "$(wc -c <"$1")" >"$T/pae.tmp"
    cat "$1" >>"$T/pae.tmp"
    openssl pkeyutl -sign -inkey "$2" -rawin -in "$T/pae.tmp" -out "$T/sig.tmp"
    printf '{"payload":"%s","payloadType":"%s","signatures":[{"keyid":"%s","sig":"%s"}]}\n' \
        "$(base64 -w0 "$1")" "$ptype" "$fp" "$(base64 -w0 "$T/sig.tmp")" >"$3"
}

# An envelope signed by openssl over our payload verifies with our verifier.
openssl_envelope "$T/payload.bin" "$KEY" "$T/ossl.json"
expect_rc 0 "$APP" attest verify "$T/ossl.json" --pubkey "$PUB" --output-file "$T/output.txt"

# reject FILE TEXT: verify fails with exit 1 and one line containing TEXT.
reject() {
    expect_rc 1 "$APP" attest verify "$1" --pubkey "$PUB"
    assert_grep "$2" "$T/err"
    one_line "$T/err"
}

# --- tampering with what DSSE authenticates -----------------------------------
sed 's/"tokens":5/"tokens":6/' "$T/payload.bin" >"$T/payload-bad.bin"
sed "s|\"payload\":\"[^\"]*\"|\"payload\":\"$(base64 -w0 "$T/payload-bad.bin")\"|" "$ATT" >"$T/t1.json"
reject "$T/t1.json" "signature does not verify with the given public key"
sed 's|"payloadType":"application/vnd.in-toto+json"|"payloadType":"application/json"|' "$ATT" >"$T/t2.json"
reject "$T/t2.json" 'envelope payloadType is "application/json"'
# One signature byte: change the first base64 character.
sig=$(sed -n 's/.*"sig":"\([^"]*\)".*/\1/p' "$ATT")
first=$(printf '%s' "$sig" | cut -c1)
[ "$first" = A ] && repl=B || repl=A
sed "s|\"sig\":\"$first|\"sig\":\"$repl|" "$ATT" >"$T/t3.json"
reject "$T/t3.json" "signature does not verify"
# keyid is not authenticated: changing it only changes what it names.
sed "s|\"keyid\":\"$fp\"|\"keyid\":\"not-this-key\"|" "$ATT" >"$T/t4.json"
expect_rc 0 "$APP" attest verify "$T/t4.json" --pubkey "$PUB"
assert_grep "its keyid does not name this key" "$T/out"
# Another device's key does not verify it, whatever the keyid says.
expect_rc 1 "$APP" attest verify "$ATT" --pubkey "$T/other/device.pub.pem"
assert_grep "signature does not verify with the given public key" "$T/err"
one_line "$T/err"
openssl_envelope "$T/payload.bin" "$T/other/device.key.pem" "$T/t5.json"
reject "$T/t5.json" "signature does not verify"

# --- evidence -----------------------------------------------------------------
printf 'Summarise: biopsy shows benign tissuE.' >"$T/prompt2.txt"
expect_rc 1 "$APP" attest verify "$ATT" --pubkey "$PUB" --prompt-file "$T/prompt2.txt" --salt "$salt"
assert_grep "prompt commitment mismatch" "$T/err"
one_line "$T/err"
printf 'The biopsy is benign.\n' >"$T/output2.txt"
expect_rc 1 "$APP" attest verify "$ATT" --pubkey "$PUB" --output-file "$T/output2.txt"
assert_grep "output digest mismatch" "$T/err"
one_line "$T/err"
expect_rc 1 "$APP" attest verify --json "$ATT" --pubkey "$PUB" --output-file "$T/output2.txt"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"] is False and r["status"]=="output", r' "$T/out" ||
    fail "--json does not report the output mismatch"

# --- malformed envelopes, each with its own message ---------------------------
printf 'not json\n' >"$T/m1.json"
reject "$T/m1.json" "not JSON"
sed 's|"payload":"[^"]*",||' "$ATT" >"$T/m2.json"
reject "$T/m2.json" "envelope has no payload"
sed 's|,"signatures":\[.*\]||' "$ATT" >"$T/m3.json"
reject "$T/m3.json" "envelope has no signatures"
sed 's|"payload":"|"payload":"!!|' "$ATT" >"$T/m4.json"
reject "$T/m4.json" "envelope payload is not valid base64"
sed 's|"sig":"|"sig":"%|' "$ATT" >"$T/m5.json"
reject "$T/m5.json" "signature 1 sig is not valid base64"
# Statements signed properly (by openssl) but wrong inside.
edit_and_sign() { # sed-expression out
    sed "$1" "$T/payload.bin" >"$T/edit.bin"
    cmp -s "$T/edit.bin" "$T/payload.bin" && fail "edit '$1' changed nothing"
    openssl_envelope "$T/edit.bin" "$KEY" "$2"
}
edit_and_sign 's|Statement/v1|Statement/v0.1|' "$T/s1.json"
reject "$T/s1.json" 'statement _type is "https://in-toto.io/Statement/v0.1"'
edit_and_sign 's|generation/v1|generation/v2|' "$T/s2.json"
reject "$T/s2.json" 'predicate version "v2" is not supported (this verifier reads v1)'
edit_and_sign 's|https://appliance.local/attestation/generation/v1|https://slsa.dev/provenance/v1|' "$T/s3.json"
reject "$T/s3.json" 'predicateType "https://slsa.dev/provenance/v1" is not an appliance generation attestation'
edit_and_sign 's|"kernels":"scalar",||' "$T/s4.json"
reject "$T/s4.json" "statement field predicate.engine.kernels is missing"
# The payloadType is part of what is signed: openssl signing a PAE with another
# type still fails the envelope check.
openssl_envelope "$T/payload.bin" "$KEY" "$T/s5.json" application/json
reject "$T/s5.json" 'payloadType is "application/json"'

# --- bundles --------------------------------------------------------------------
pem=$(awk '{printf "%s\\n", $0}' "$PUB")
printf '{"type":"device_key","fingerprint":"%s","pem":"%s"}\n' "$fp" "$pem" >"$T/bundle.jsonl"
cat "$ATT" "$T/ossl.json" >>"$T/bundle.jsonl"
expect_rc 0 "$APP" attest verify "$T/bundle.jsonl" --pubkey "$PUB"
assert_grep "2 attestations verified" "$T/out"
assert_grep "device_key (line 1): ok" "$T/out"
expect_rc 1 "$APP" attest verify "$T/bundle.jsonl" --pubkey "$T/other/device.pub.pem"
assert_grep "line 1: the bundle's device key" "$T/err"
one_line "$T/err"
expect_rc 1 "$APP" attest verify "$T/bundle.jsonl" --pubkey "$PUB" --output-file "$T/output.txt"
assert_grep "needs exactly one attestation, the file holds 2" "$T/err"
cat "$T/bundle.jsonl" "$T/t1.json" >"$T/bundle2.jsonl"
reject "$T/bundle2.jsonl" "line 4: signature does not verify"
# Checkpoint records are checked by the audit module's verifier: a real
# checkpoint signed by the device key passes, a forged note does not.
printf '{"type":"checkpoint","note":"x"}\n' | cat "$T/bundle.jsonl" - >"$T/bundle3.jsonl"
reject "$T/bundle3.jsonl" "line 4: "
"$APP" init "$T/home" >/dev/null 2>&1 || fail "init"
"$APP" audit checkpoint --db "$T/home/audit/audit.db" --key "$KEY" >"$T/note.txt" 2>"$T/err" ||
    fail "audit checkpoint failed: $(cat "$T/err")"
python3 -c 'import json,sys; print(json.dumps({"type":"checkpoint","note":open(sys.argv[1]).read()}))' \
    "$T/note.txt" | cat "$T/bundle.jsonl" - >"$T/bundle4.jsonl"
expect_rc 0 "$APP" attest verify "$T/bundle4.jsonl" --pubkey "$PUB"
assert_grep "2 attestations verified" "$T/out"
expect_rc 1 "$APP" attest verify "$T/bundle4.jsonl" --pubkey "$T/other/device.pub.pem"

# --- the command line --------------------------------------------------------------
expect_rc 0 "$APP" attest --help
assert_grep "verify" "$T/out"
expect_rc 0 "$APP" attest verify --help
assert_grep "--output-file" "$T/out"
expect_rc 2 "$APP" attest
assert_grep "a subcommand is required" "$T/err"
expect_rc 2 "$APP" attest sign "$ATT"
assert_grep "unknown subcommand 'sign'" "$T/err"
expect_rc 2 "$APP" attest verify --pubkey "$PUB"
assert_grep "FILE is required" "$T/err"
expect_rc 2 "$APP" attest verify "$ATT"
assert_grep "--pubkey is required" "$T/err"
expect_rc 2 "$APP" attest verify "$ATT" --pubkey "$PUB" --salt "$salt"
assert_grep "--prompt-file and --salt go together" "$T/err"
expect_rc 2 "$APP" attest verify "$ATT" --pubkey "$PUB" --prompt-file "$T/prompt.txt" --salt abc
assert_grep "--salt must be 64 hex digits" "$T/err"
expect_rc 2 "$APP" attest verify "$ATT" --pubkey "$PUB" --frobnicate
assert_grep "bad option '--frobnicate'" "$T/err"
expect_rc 2 "$APP" attest verify "$ATT" extra --pubkey "$PUB"
assert_grep "unexpected argument 'extra'" "$T/err"
expect_rc 1 "$APP" attest verify "$T/missing.json" --pubkey "$PUB"
assert_grep "cannot open" "$T/err"
one_line "$T/err"
done_ok
