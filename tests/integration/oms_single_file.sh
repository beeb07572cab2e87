# Single-file models across implementations (image/OMS.md, "Single-file
# models"): bundles the appliance signs for one file pass the reference
# model_signing verifier's rules, and bundles made by the reference signer's
# rules (resource ".", files and shards) or by the Go signer's and the
# spec's (the basename) pass the appliance's verify-model and model add.
# tests/oms_reference_rules.py states those rules with their source.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
command -v openssl >/dev/null || skip "openssl is needed to sign and check as the reference does"
REF="python3 $APPLIANCE_SOURCE_DIR/tests/oms_reference_rules.py"
mkdir -p "$T/k" "$T/m"
"$APP" keygen --kind publisher --out "$T/k" >/dev/null
KEY="$T/k/publisher.key.pem"
PUB="$T/k/publisher.pub.pem"
if [ -n "$SHARED" ] && [ -f "$SHARED/models/aidreams260K-f16.gguf" ]; then
    cp "$SHARED/models/aidreams260K-f16.gguf" "$T/m/model.gguf"
else
    head -c 200000 /dev/urandom >"$T/m/model.gguf" # no ../shared: any bytes do for OMS
fi

# Appliance -> reference rules: the default names the resource "." and
# passes; the spec's basename (--single-file-name basename) is what the
# reference verifier refuses, which is why it is not the default.
expect_rc 0 "$APP" image sign-model --method key --model-path "$T/m/model.gguf" \
    --output-bundle "$T/ours.sig" --private-key "$KEY"
expect_rc 0 $REF verify "$T/m/model.gguf" "$PUB" "$T/ours.sig"
assert_grep "reference rules accept" "$T/out"
expect_rc 0 "$APP" image inspect "$T/ours.sig"
assert_grep "model.gguf" "$T/out"
expect_rc 0 "$APP" image sign-model --method key --model-path "$T/m/model.gguf" \
    --output-bundle "$T/ours-shards.sig" --private-key "$KEY" --shard-size 65536
expect_rc 0 $REF verify "$T/m/model.gguf" "$PUB" "$T/ours-shards.sig"
expect_rc 0 "$APP" image sign-model --method key --model-path "$T/m/model.gguf" \
    --output-bundle "$T/ours-basename.sig" --private-key "$KEY" --single-file-name basename
expect_rc 1 $REF verify "$T/m/model.gguf" "$PUB" "$T/ours-basename.sig"
assert_grep "Signature mismatch" "$T/out"
expect_rc 2 "$APP" image sign-model --method key --model-path "$T/m/model.gguf" \
    --output-bundle "$T/x.sig" --private-key "$KEY" --single-file-name whatever
# The reference rules are not a rubber stamp: a changed byte fails them.
cp "$T/m/model.gguf" "$T/changed.gguf"
printf 'x' | dd of="$T/changed.gguf" bs=1 seek=1000 conv=notrunc 2>/dev/null
expect_rc 1 $REF verify "$T/changed.gguf" "$PUB" "$T/ours.sig"

# Reference rules -> appliance: ".", ".:start:end" shards, and the basename.
$REF sign "$T/m/model.gguf" "$KEY" "$T/ref.sig" || fail "reference-rule signing"
$REF sign "$T/m/model.gguf" "$KEY" "$T/ref-shards.sig" --shard-size 50000 || fail "shards"
$REF sign "$T/m/model.gguf" "$KEY" "$T/ref-basename.sig" --basename || fail "basename"
for b in ref ref-shards ref-basename; do
    expect_rc 0 "$APP" image verify-model --method key --model-path "$T/m/model.gguf" \
        --bundle "$T/$b.sig" --public-key "$PUB"
    # A renamed copy is the same model: its content is what was signed.
    cp "$T/m/model.gguf" "$T/renamed-$b.bin"
    expect_rc 0 "$APP" image verify-model --method key --model-path "$T/renamed-$b.bin" \
        --bundle "$T/$b.sig" --public-key "$PUB"
    expect_rc 1 "$APP" image verify-model --method key --model-path "$T/changed.gguf" \
        --bundle "$T/$b.sig" --public-key "$PUB"
    one_line "$T/err"
done
expect_rc 0 "$APP" image inspect "$T/ref.sig"
assert_grep "." "$T/out"

# And the reference's bundle installs the model (only one-file "files"
# bundles do: the appliance loads a file whose one digest it compares).
if [ -n "$SHARED" ] && [ -f "$SHARED/models/aidreams260K-f16.gguf" ]; then
    H="$T/home"
    "$APP" init "$H" >/dev/null 2>&1 || fail "init"
    export APPLIANCE_HOME="$H"
    expect_rc 0 "$APP" trust add --publisher-key "$PUB"
    expect_rc 0 "$APP" model add "$T/m/model.gguf" --bundle "$T/ref.sig" --name ref
    expect_rc 0 "$APP" model add "$T/m/model.gguf" --bundle "$T/ref-basename.sig" --name go
    expect_rc 1 "$APP" model add "$T/m/model.gguf" --bundle "$T/ref-shards.sig" --name shards
    assert_grep "in shards" "$T/err"
    expect_rc 0 "$APP" generate -m ref -p "I dreamed" -n 2 --seed 1 -t 1
fi
done_ok
