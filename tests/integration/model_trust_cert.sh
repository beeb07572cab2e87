# Issue 5's negative cases at the level where they matter, `model add` and
# `generate` with a home: the certificate method through a trusted CA root
# (chain leaf -> intermediate in the bundle -> root in the policy), an
# expired signing certificate, a CA the policy does not trust, a bundle that
# verifies but for another model, and model files with unicode and special
# characters in their names. Each refusal is one line and audited.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
need_shared
A="$SHARED/vectors/oms/assets"
[ -d "$A/keys/certificate" ] || skip "no OMS certificate assets in ../shared"
H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
mkdir -p "$T/m"
M="$T/m/dreams.gguf"
cp "$SHARED/models/aidreams260K-f16.gguf" "$M"

# cert_sign MODEL OUT KEY CERT: certificate method, the intermediate in the bundle.
cert_sign() {
    "$APP" image sign-model --method certificate --model-path "$1" --output-bundle "$2" \
        --private-key "$3" --signing-cert "$4" \
        --cert-chain "$A/keys/certificate/int-ca-cert.pem" >/dev/null || fail "sign $1"
}
cert_sign "$M" "$T/good.sig" "$A/keys/certificate/signing-key.pem" \
    "$A/keys/certificate/signing-key-cert.pem"
cert_sign "$M" "$T/expired.sig" "$A/keys/expired/signing-key.pem" \
    "$A/keys/expired/signing-key-cert.pem"

# No CA trusted yet.
expect_rc 1 "$APP" model add "$M" --bundle "$T/good.sig"
assert_grep "no CA root is trusted by the policy" "$T/err"
one_line "$T/err"
# A CA the bundle does not chain to.
expect_rc 0 "$APP" trust add --ca-cert "$A/keys/wrong/wrong-ca-cert.pem"
expect_rc 1 "$APP" model add "$M" --bundle "$T/good.sig"
assert_grep "untrusted certificate" "$T/err"
one_line "$T/err"
# The right root: installed, the signer is the leaf's subject.
expect_rc 0 "$APP" trust add --ca-cert "$A/keys/certificate/ca-cert.pem"
expect_rc 1 "$APP" model add "$M" --bundle "$T/expired.sig" --name expired
assert_grep "certificate expired" "$T/err"
one_line "$T/err"
expect_rc 0 "$APP" model add "$M" --bundle "$T/good.sig"
assert_grep "signer      certificate" "$T/out"
expect_rc 0 "$APP" generate -m dreams.gguf -p "I dreamed" -n 2 --seed 1 -t 1

# A valid, trusted bundle, but for another model: refused, whatever the name.
cp "$SHARED/models/kq-f32.gguf" "$T/m/other.gguf"
expect_rc 1 "$APP" model add "$T/m/other.gguf" --bundle "$T/good.sig"
assert_grep "does not match the bundle" "$T/err"
one_line "$T/err"
expect_rc 1 "$APP" model show other.gguf

# Unicode and special characters in the model's file name: the file is
# signed and verified as any other (its resource is "." or, spec-style,
# the name itself); an installed name must be plain, so --name gives one;
# the path itself still finds the model by its bytes.
U="$T/m/modèle ü (v2) [\$x] 'q'.gguf"
cp "$SHARED/models/aidreams260K-f16.gguf" "$U"
cert_sign "$U" "$T/unicode.sig" "$A/keys/certificate/signing-key.pem" \
    "$A/keys/certificate/signing-key-cert.pem"
"$APP" image sign-model --method certificate --model-path "$U" --output-bundle "$T/unicode-b.sig" \
    --private-key "$A/keys/certificate/signing-key.pem" \
    --signing-cert "$A/keys/certificate/signing-key-cert.pem" \
    --cert-chain "$A/keys/certificate/int-ca-cert.pem" --single-file-name basename >/dev/null
expect_rc 0 "$APP" image inspect "$T/unicode-b.sig"
assert_grep "modèle ü (v2) [\$x] 'q'.gguf" "$T/out"
expect_rc 0 "$APP" image verify-model --method certificate --model-path "$U" \
    --bundle "$T/unicode-b.sig" --cert-chain "$A/keys/certificate/ca-cert.pem"
expect_rc 1 "$APP" model add "$U" --bundle "$T/unicode.sig"
assert_grep "must be 1-64 characters of [A-Za-z0-9._-]" "$T/err"
expect_rc 0 "$APP" model add "$U" --bundle "$T/unicode-b.sig" --name modele-v2
expect_rc 0 "$APP" generate -m modele-v2 -p "I dreamed" -n 2 --seed 1 -t 1
expect_rc 0 "$APP" generate -m "$U" -p "I dreamed" -n 2 --seed 1 -t 1
expect_rc 1 "$APP" model add "$U" --bundle "$T/unicode.sig" --name "bad/name"
expect_rc 1 "$APP" model add "$U" --bundle "$T/unicode.sig" --name "émoji"

# Removing the root revokes every model it vouched for, at once.
fp=$(openssl x509 -in "$A/keys/certificate/ca-cert.pem" -outform DER | sha256sum | cut -d' ' -f1)
expect_rc 0 "$APP" trust remove "$fp"
expect_rc 1 "$APP" generate -m modele-v2 -p "I dreamed" -n 2 --seed 1
assert_grep "refused by policy trust" "$T/err"
one_line "$T/err"
expect_rc 0 "$APP" audit show --kind refusal
[ "$(grep -c refusal "$T/out")" -ge 7 ] || fail "refusals not audited"
expect_rc 0 "$APP" audit verify
done_ok
