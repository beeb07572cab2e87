#!/bin/sh
# Signs and verifies every model folder of ../shared/vectors/oms/assets with
# the suite's own keys and certificates, checks which files the default
# exclusions leave in the bundle, and runs the suite's negative material
# (wrong key, wrong CA, expired certificate, self-signed leaf) through the
# binary. Skips (77) without ../shared.
set -u
: "${APPLIANCE_BIN:?}"
A="${APPLIANCE_SHARED_DIR:-}/vectors/oms/assets"
CASES="${APPLIANCE_SHARED_DIR:-}/vectors/oms/cases"
if [ ! -d "$A/models" ]; then
    echo "skip: $A not found (no ../shared)"
    exit 77
fi
T=$(mktemp -d) || exit 1
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
fail=0
app() { "$APPLIANCE_BIN" image "$@"; }
check() { # check NAME WANT-EXIT WANT-TEXT CMD...
    name=$1 want=$2 text=$3
    shift 3
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq "$want" ] && printf '%s' "$out" | grep -qF -- "$text"; then
        echo "ok   $name"
    else
        echo "FAIL $name: exit $rc (wanted $want, '$text'): $out"
        fail=1
    fi
}
KEY=$A/keys/certificate/signing-key.pem
PUB=$A/keys/certificate/signing-key-pub.pem

for src in "$A"/models/*; do
    m=$(basename "$src")
    cp -R "$src" "$T/$m" && chmod -R u+w "$T/$m"
    if [ "$m" = empty ]; then
        check "sign refuses model with nothing to sign" 1 "no files to sign" app sign-model \
            --method key --model-path "$T/$m" --output-bundle "$T/$m.sig" --private-key "$KEY"
        continue
    fi
    for curve in p384 p521; do
        check "$m sign ($curve)" 0 "signed" app sign-model --method key --model-path "$T/$m" \
            --output-bundle "$T/$m.$curve.sig" --private-key "$A/keys/$curve/signing-key.pem"
        check "$m verify ($curve)" 0 "verified" app verify-model --method key --model-path \
            "$T/$m" --bundle "$T/$m.$curve.sig" --public-key "$A/keys/$curve/signing-key-pub.pem"
    done
    check "$m certificate sign" 0 "signed" app sign-model --method certificate --model-path \
        "$T/$m" --output-bundle "$T/$m.cert.sig" --private-key "$KEY" \
        --signing-cert "$A/keys/certificate/signing-key-cert.pem" \
        --cert-chain "$A/keys/certificate/int-ca-cert.pem"
    check "$m certificate verify" 0 "verified" app verify-model --method certificate \
        --model-path "$T/$m" --bundle "$T/$m.cert.sig" --cert-chain "$A/keys/certificate/ca-cert.pem"
done

# The default exclusions leave exactly these files signed.
signed() { app inspect "$1" | sed -n 's/^  [0-9a-f]\{64\}  //p' | tr '\n' '|'; }
[ "$(signed "$T/with-git-dir.p384.sig")" = "model.bin|" ] ||
    { echo "FAIL with-git-dir signed: $(signed "$T/with-git-dir.p384.sig")"; fail=1; }
[ "$(signed "$T/with-dotfiles.p384.sig")" = ".config|.env.example|model.bin|" ] ||
    { echo "FAIL with-dotfiles signed: $(signed "$T/with-dotfiles.p384.sig")"; fail=1; }
[ "$(signed "$T/with-empty-file.p384.sig")" = "empty.bin|signme-1|" ] ||
    { echo "FAIL with-empty-file signed: $(signed "$T/with-empty-file.p384.sig")"; fail=1; }
# Our digests agree with the reference signers' for the same files.
ours=$(app inspect "$T/multi-file.p384.sig" | grep -E '^  [0-9a-f]{64}  ')
theirs=$(app inspect "$CASES/key-multi-file/bundle.sig" | grep -E '^  [0-9a-f]{64}  ')
[ "$ours" = "$theirs" ] || { echo "FAIL digests differ from the reference bundle"; fail=1; }
root_ours=$(app inspect "$T/multi-file.p384.sig" | grep '^root digest')
root_theirs=$(app inspect "$CASES/key-multi-file/bundle.sig" | grep '^root digest')
[ "$root_ours" = "$root_theirs" ] || { echo "FAIL root digest differs: $root_ours / $root_theirs"; fail=1; }

# The suite's negative material.
check "wrong key" 1 "wrong key" app verify-model --method key --model-path "$T/simple" \
    --bundle "$CASES/key-simple/bundle.sig" --public-key "$A/keys/wrong/wrong-key-pub.pem" \
    --ignore-paths "$T/simple/ignore-me"
check "wrong CA" 1 "untrusted certificate" app verify-model --method certificate \
    --model-path "$T/simple" --bundle "$CASES/certificate-simple/bundle.sig" \
    --cert-chain "$A/keys/wrong/wrong-ca-cert.pem" --ignore-paths "$T/simple/ignore-me"
check "expired signer signs" 0 "signed" app sign-model --method certificate --model-path \
    "$T/simple" --output-bundle "$T/expired.sig" --private-key "$A/keys/expired/signing-key.pem" \
    --signing-cert "$A/keys/expired/signing-key-cert.pem" \
    --cert-chain "$A/keys/certificate/int-ca-cert.pem"
check "expired certificate" 1 "certificate expired" app verify-model --method certificate \
    --model-path "$T/simple" --bundle "$T/expired.sig" --cert-chain "$A/keys/certificate/ca-cert.pem"
check "self-signed leaf signs" 0 "signed" app sign-model --method certificate --model-path \
    "$T/simple" --output-bundle "$T/self.sig" --private-key "$A/keys/self-signed/signing-key.pem" \
    --signing-cert "$A/keys/self-signed/signing-cert.pem"
check "self-signed leaf not trusted by the CA" 1 "untrusted certificate" app verify-model \
    --method certificate --model-path "$T/simple" --bundle "$T/self.sig" \
    --cert-chain "$A/keys/certificate/ca-cert.pem"
check "self-signed leaf trusted when pinned" 0 "verified" app verify-model --method certificate \
    --model-path "$T/simple" --bundle "$T/self.sig" --cert-chain "$A/keys/self-signed/signing-cert.pem"
exit $fail
