# keygen: files the openssl CLI reads, modes, fingerprints, no overwrite.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
command -v openssl >/dev/null || skip "openssl CLI absent"

for kind in device reviewer publisher; do
    expect_rc 0 "$APP" keygen --kind $kind --out "$T"
    fp=$(sed -n 's/^fingerprint: //p' "$T/out")
    [ ${#fp} -eq 64 ] || fail "no fingerprint printed for $kind"
    [ "$(stat -c %a "$T/$kind.key.pem")" = 600 ] || fail "$kind secret key mode is not 0600"
    head -1 "$T/$kind.key.pem" | grep -qx -- "-----BEGIN PRIVATE KEY-----" || fail "$kind not PKCS#8"
    openssl pkey -in "$T/$kind.key.pem" -noout || fail "openssl cannot read $kind secret key"
    openssl pkey -pubin -in "$T/$kind.pub.pem" -noout || fail "openssl cannot read $kind public key"
    # The documented fingerprint: sha256 of the DER public key.
    want=$(openssl pkey -pubin -in "$T/$kind.pub.pem" -outform DER | sha256sum | cut -d' ' -f1)
    [ "$fp" = "$want" ] || fail "$kind fingerprint $fp != openssl's $want"
    # The secret key's public half is the published public key.
    openssl pkey -in "$T/$kind.key.pem" -pubout | cmp -s - "$T/$kind.pub.pem" ||
        fail "$kind public file does not match the secret key"
done
openssl pkey -in "$T/device.key.pem" -noout -text | grep -q ED25519 || fail "device is not Ed25519"
openssl pkey -in "$T/reviewer.key.pem" -noout -text | grep -q X25519 || fail "reviewer is not X25519"
openssl pkey -in "$T/publisher.key.pem" -noout -text | grep -q "prime256v1" || fail "publisher not P-256"

# An Ed25519 signature made with the secret key verifies with openssl alone.
printf 'payload' >"$T/msg"
openssl pkeyutl -sign -inkey "$T/device.key.pem" -rawin -in "$T/msg" -out "$T/sig"
openssl pkeyutl -verify -pubin -inkey "$T/device.pub.pem" -rawin -in "$T/msg" -sigfile "$T/sig" >/dev/null ||
    fail "device signature does not verify"

# Never overwrite without --force; with it, a new key.
before=$(sha256sum "$T/device.key.pem")
expect_rc 1 "$APP" keygen --kind device --out "$T"
assert_grep "already exists; use --force" "$T/err"
one_line "$T/err"
[ "$before" = "$(sha256sum "$T/device.key.pem")" ] || fail "device key changed without --force"
expect_rc 0 "$APP" keygen --kind device --out "$T" --force
[ "$before" != "$(sha256sum "$T/device.key.pem")" ] || fail "--force did not replace the key"
# No temporary files are left behind.
[ -z "$(ls "$T" | grep tmp || true)" ] || fail "temporary files left in $T"

expect_rc 2 "$APP" keygen --kind root --out "$T"
assert_grep "unknown kind 'root'" "$T/err"
expect_rc 2 "$APP" keygen --out "$T"
assert_grep "--kind is required" "$T/err"
expect_rc 2 "$APP" keygen --kind device
assert_grep "--out is required" "$T/err"
expect_rc 1 "$APP" keygen --kind device --out "$T/missing"
assert_grep "does not exist" "$T/err"
one_line "$T/err"
done_ok
