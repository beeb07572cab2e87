# Verify before load: only installed models whose OMS bundle verifies
# against the policy's trusted publishers run; a changed file, a revoked
# publisher or an unknown model is refused, in one line, and audited.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
need_shared
H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
mkdir -p "$T/pub" "$T/other" "$T/m"
cp "$SHARED/models/aidreams260K-f16.gguf" "$T/m/dreams.gguf"
"$APP" keygen --kind publisher --out "$T/pub" >/dev/null
"$APP" keygen --kind publisher --out "$T/other" >/dev/null
"$APP" image sign-model --method key --model-path "$T/m/dreams.gguf" --output-bundle "$T/d.sig" \
    --private-key "$T/pub/publisher.key.pem" >/dev/null

# Not trusted yet: refused and audited.
expect_rc 1 "$APP" model add "$T/m/dreams.gguf" --bundle "$T/d.sig"
assert_grep "no trusted publisher key verifies the bundle" "$T/err"
one_line "$T/err"
# Another publisher's key does not help.
expect_rc 0 "$APP" trust add --publisher-key "$T/other/publisher.pub.pem"
expect_rc 1 "$APP" model add "$T/m/dreams.gguf" --bundle "$T/d.sig"
# The right one does; the change is a policy change with both digests.
before=$(sha256sum "$H/policy.json" | cut -d' ' -f1)
expect_rc 0 "$APP" trust add --publisher-key "$T/pub/publisher.pub.pem"
after=$(sha256sum "$H/policy.json" | cut -d' ' -f1)
expect_rc 0 "$APP" audit show --kind policy_change
assert_grep "policy_change" "$T/out"
expect_rc 0 "$APP" policy check "$H/policy.json"
assert_grep "2 key(s)" "$T/out"
[ "$before" != "$after" ] || fail "trust add did not change the policy"
fp=$(openssl pkey -pubin -in "$T/pub/publisher.pub.pem" -outform DER | sha256sum | cut -d' ' -f1)
expect_rc 0 "$APP" trust list
assert_grep "$fp" "$T/out"

expect_rc 0 "$APP" model add "$T/m/dreams.gguf" --bundle "$T/d.sig"
assert_grep "installed dreams.gguf" "$T/out"
expect_rc 1 "$APP" model add "$T/m/dreams.gguf" --bundle "$T/d.sig"
assert_grep "already installed" "$T/err"
expect_rc 0 "$APP" model list
assert_grep "dreams.gguf" "$T/out"

# Runs by name and by path; the attestation names the root digest and signer.
expect_rc 0 "$APP" generate -m dreams.gguf -p "I dreamed" -n 4 --seed 1 -t 2 --json
expect_rc 0 "$APP" generate -m "$T/m/dreams.gguf" -p "I dreamed" -n 4 --seed 1 -t 2
# A copy elsewhere with the same bytes is the same installed model.
cp "$T/m/dreams.gguf" "$T/copy.gguf"
expect_rc 0 "$APP" generate -m "$T/copy.gguf" -p "I dreamed" -n 2 --seed 1 -t 2

# One byte changed after installation: refused, whatever name is used.
printf 'x' | dd of="$T/m/dreams.gguf" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect_rc 1 "$APP" generate -m dreams.gguf -p "I dreamed" -n 2 --seed 1
assert_grep "changed since it was signed" "$T/err"
one_line "$T/err"
expect_rc 1 "$APP" generate -m "$T/m/dreams.gguf" -p "I dreamed" -n 2 --seed 1
assert_grep "is not an installed model" "$T/err"
one_line "$T/err"
# An unrelated file is not installed.
expect_rc 1 "$APP" generate -m "$SHARED/models/kq-f32.gguf" -p "x" -n 2 --seed 1
assert_grep "is not an installed model" "$T/err"

# Revoking the publisher takes effect at once for the (unchanged) copy.
expect_rc 0 "$APP" trust remove "$fp"
expect_rc 1 "$APP" generate -m "$T/copy.gguf" -p "I dreamed" -n 2 --seed 1
assert_grep "no trusted publisher key verifies the bundle" "$T/err"
expect_rc 0 "$APP" audit show --kind refusal
[ "$(grep -c refusal "$T/out")" -ge 5 ] || fail "refusals not audited"
expect_rc 0 "$APP" model remove dreams.gguf
expect_rc 1 "$APP" model remove dreams.gguf
expect_rc 0 "$APP" audit verify
expect_rc 2 "$APP" model add "$T/copy.gguf"
assert_grep "add needs --bundle" "$T/err"
expect_rc 2 "$APP" trust add
done_ok
