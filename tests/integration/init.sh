# init / status / policy: the appliance home.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
H="$T/home"

expect_rc 1 "$APP" status --home "$H"
assert_grep "not initialised" "$T/out"

expect_rc 0 "$APP" init "$H"
assert_grep "initialised appliance home $H" "$T/out"
assert_grep "reviewer SECRET key" "$T/err"
for d in "$H" "$H/keys" "$H/audit" "$H/models" "$H/outbox"; do
    [ "$(stat -c %a "$d")" = 700 ] || fail "$d is not 0700"
done
[ "$(stat -c %a "$H/policy.json")" = 600 ] || fail "policy.json is not 0600"
[ "$(stat -c %a "$H/keys/device.key.pem")" = 600 ] || fail "device key is not 0600"
openssl pkey -pubin -in "$H/keys/reviewer.pub.pem" -noout
[ -f "$H/outbox/reviewer.key.pem" ] || fail "reviewer secret not in outbox"
# The audit log starts with an init entry naming the policy and keys.
expect_rc 0 "$APP" audit verify --home "$H"
assert_grep "OK, 1 entries" "$T/out"
expect_rc 0 "$APP" audit show --home "$H"
assert_grep "init" "$T/out"

# Re-running init changes nothing.
snap=$(cd "$H" && find . -type f -exec sha256sum {} + | sort)
expect_rc 0 "$APP" init "$H"
assert_grep "already initialised; nothing changed" "$T/out"
[ "$snap" = "$(cd "$H" && find . -type f -exec sha256sum {} + | sort)" ] || fail "re-init changed files"

# status: via --home, $APPLIANCE_HOME and the global flag all find it.
expect_rc 0 "$APP" status --home "$H"
assert_grep "policy digest     $(sha256sum "$H/policy.json" | cut -d' ' -f1)" "$T/out"
assert_grep "reviewer secret key still on this device" "$T/out"
expect_rc 0 env APPLIANCE_HOME="$H" "$APP" status --json
assert_grep "\"initialised\": true" "$T/out"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["device_key_fingerprint"])==64' "$T/out"
expect_rc 0 "$APP" --home "$H" policy digest
[ "$(cat "$T/out")" = "$(sha256sum "$H/policy.json" | cut -d' ' -f1)" ] || fail "policy digest differs from sha256sum"
expect_rc 0 env -u APPLIANCE_HOME HOME="$T/fakehome" sh -c "mkdir -p '$T/fakehome' && '$APP' init && '$APP' status"
[ -f "$T/fakehome/.appliance/policy.json" ] || fail "~/.appliance default not used"

# Moving the reviewer secret away silences the warning.
mv "$H/outbox/reviewer.key.pem" "$T/officer.key.pem"
expect_rc 0 "$APP" status --home "$H"
assert_no_grep "reviewer secret key still" "$T/out"

# init with an officer's existing reviewer key: no secret is made here.
"$APP" keygen --kind reviewer --out "$T" >/dev/null
expect_rc 0 "$APP" init "$T/home2" --reviewer-key "$T/reviewer.pub.pem"
[ ! -e "$T/home2/outbox/reviewer.key.pem" ] || fail "secret made despite --reviewer-key"
cmp -s "$T/reviewer.pub.pem" "$T/home2/keys/reviewer.pub.pem" || fail "reviewer key not installed"
"$APP" keygen --kind device --out "$T" >/dev/null
expect_rc 1 "$APP" init "$T/home3" --reviewer-key "$T/device.pub.pem"
assert_grep "is not a reviewer key" "$T/err"
one_line "$T/err"

# A home directory open to others is refused.
mkdir -m 755 "$T/open"
expect_rc 1 "$APP" init "$T/open"
assert_grep "accessible to other users" "$T/err"

# policy check: valid, and an invalid one names its JSON path.
expect_rc 0 "$APP" policy check "$H/policy.json"
assert_grep "valid" "$T/out"
assert_grep "sandbox            required" "$T/out"
printf '{"version":1,"limits":{"context":"big"}}' >"$T/bad.json"
expect_rc 1 "$APP" policy check "$T/bad.json"
assert_grep "$T/bad.json: \$.limits.context: expected an integer" "$T/err"
one_line "$T/err"
printf '{"version":1,"sandbox":{"required":true,"off":1}}' >"$T/bad2.json"
expect_rc 1 "$APP" policy check "$T/bad2.json"
assert_grep "\$.sandbox.off: unknown key" "$T/err"
# A broken home policy makes status fail loudly.
printf '{"version":1,"x":1}' >"$T/home2/policy.json"
expect_rc 1 "$APP" status --home "$T/home2"
assert_grep "\$.x: unknown key" "$T/out"
done_ok
