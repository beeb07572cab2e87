# The example in attest/PREDICATE.md is real: its envelope verifies with
# `appliance attest verify` (with the prompt, salt and output it names) and
# with the openssl recipe printed there.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
command -v openssl >/dev/null || skip "openssl CLI absent"
DOC="$APPLIANCE_SOURCE_DIR/attest/PREDICATE.md"
[ -f "$DOC" ] || fail "$DOC is missing"

sed -n '/^    -----BEGIN PUBLIC KEY-----$/,/^    -----END PUBLIC KEY-----$/s/^    //p' "$DOC" >"$T/device.pub.pem"
grep '^    {"payload":"' "$DOC" | sed 's/^    //' >"$T/att.json"
[ "$(wc -l <"$T/att.json")" -eq 1 ] || fail "PREDICATE.md should hold exactly one example envelope"
printf 'Summarise: biopsy shows benign tissue.' >"$T/prompt.txt"
printf 'The biopsy is benign.' >"$T/output.txt"
salt=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

expect_rc 0 "$APP" attest verify "$T/att.json" --pubkey "$T/device.pub.pem" \
    --prompt-file "$T/prompt.txt" --salt "$salt" --output-file "$T/output.txt"
assert_grep "(matches the prompt and salt)" "$T/out"
# The keyid is the documented fingerprint of the example key.
fp=$(openssl pkey -pubin -in "$T/device.pub.pem" -outform DER | sha256sum | cut -d' ' -f1)
assert_grep "\"keyid\":\"$fp\"" "$T/att.json"

# The recipe, step by step, from the directory of the files.
cd "$T"
sed -n 's/.*"payload":"\([^"]*\)".*/\1/p' att.json | base64 -d > payload.bin
sed -n 's/.*"sig":"\([^"]*\)".*/\1/p' att.json | base64 -d > sig.bin
printf 'DSSEv1 28 application/vnd.in-toto+json %d ' "$(wc -c < payload.bin)" > pae.bin
cat payload.bin >> pae.bin
openssl pkeyutl -verify -pubin -inkey device.pub.pem -rawin -in pae.bin -sigfile sig.bin >ossl ||
    fail "openssl does not verify the documented example"
assert_grep "Signature Verified Successfully" ossl
assert_grep "$(sha256sum output.txt | cut -d' ' -f1)" payload.bin
TESTS_RUN=$((TESTS_RUN + 1))
done_ok
