# audit export for the compliance officer: sealed content stays sealed on
# the laptop and opens only with the reviewer's secret key; the export ends
# with the chain head and a checkpoint signed at export time, and is itself
# recorded (audit_read).
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
mkdir -p "$T/officer"
"$APP" keygen --kind reviewer --out "$T/officer" >/dev/null
H="$T/home"
"$APP" init "$H" --reviewer-key "$T/officer/reviewer.pub.pem" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
expect_rc 0 "$APP" generate --synthetic tiny:q8_0 -p "patient reports chest pain" -n 4 --seed 1

expect_rc 0 "$APP" audit export --out "$T/sealed.jsonl"
assert_no_grep "chest pain" "$T/sealed.jsonl"
expect_rc 0 "$APP" audit export --reviewer-key "$T/officer/reviewer.key.pem" --out "$T/open.jsonl"
assert_grep "patient reports chest pain" "$T/open.jsonl"
python3 - "$T/open.jsonl" <<'PY' || fail "export shape"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
head, cp = lines[-2], lines[-1]
assert head["type"] == "export_head" and len(head["head"]) == 64, head
assert cp["type"] == "checkpoint" and cp["note"].startswith("appliance.audit/"), cp
entries = lines[:-2]
assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1)), "gap in export"
assert any(e["kind"] == "output" and e.get("text") is not None for e in entries)
PY
# The signed checkpoint in the export is one the log still extends.
python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])["note"], end="")' \
    "$T/open.jsonl" >"$T/cp.txt"
expect_rc 0 "$APP" audit verify --checkpoint "$T/cp.txt" --pubkey "$H/keys/device.pub.pem"
# CSV, filtered; every export is recorded.
expect_rc 0 "$APP" audit export --format csv --kind prompt --reviewer-key "$T/officer/reviewer.key.pem"
head -1 "$T/out" | grep -q "^seq,ts,kind,request_id,actor,hash,text,body" || fail "csv header"
assert_grep '"patient reports chest pain"' "$T/out"
expect_rc 0 "$APP" audit show --kind audit_read
[ "$(grep -c "audit export" "$T/out")" -ge 3 ] || fail "exports not recorded"
# The device key is not the reviewer key: it opens nothing.
expect_rc 1 "$APP" audit export --reviewer-key "$H/keys/device.key.pem"
one_line "$T/err"
expect_rc 2 "$APP" audit export --format xml
expect_rc 0 "$APP" audit verify
done_ok
