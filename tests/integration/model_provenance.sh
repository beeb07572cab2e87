# GGUF provenance in model records: `model add` has the sandboxed worker read
# general.* from the verified sealed copy; the record, `model list`, `model
# show` and the audit install entry carry it; hostile values (terminal
# escapes, invalid UTF-8, bidirectional overrides, over-long text) never
# reach the terminal or the record as such; a model the worker cannot read,
# or a worker that misbehaves, is refused in one line and audited.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
need_shared
H="$T/home"
"$APP" init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
mkdir -p "$T/pub" "$T/m"
"$APP" keygen --kind publisher --out "$T/pub" >/dev/null
expect_rc 0 "$APP" trust add --publisher-key "$T/pub/publisher.pub.pem"
SET_META="python3 $APPLIANCE_SOURCE_DIR/tests/gguf_set_meta.py"
long=$(printf 'u%.0s' $(seq 1 400))

# sign_add FILE NAME: signs FILE and installs it as NAME (output in $T/out).
sign_add() {
    "$APP" image sign-model --method key --model-path "$1" --output-bundle "$1.sig" \
        --private-key "$T/pub/publisher.key.pem" >/dev/null || fail "sign $1"
    expect_rc "${3:-0}" "$APP" model add "$1" --bundle "$1.sig" --name "$2"
}

$SET_META "$SHARED/models/kq-q4_k_m.gguf" "$T/m/prov.gguf" \
    'general.name=Evil\x1b[31mRED\x1b]0;title\x07 model' \
    'general.license=apache-2.0' \
    'general.source.url=https://example.org/models/prov' \
    'general.author=Zoë Ünïcode 模型' \
    'general.organization=\xff\xfeOrg' \
    'general.quantized_by=A\u202eevil' \
    "general.repo_url=https://example.org/$long" \
    'general.version=v1.0' \
    'general.base_model.count:u32=1' \
    'general.base_model.0.name=Llama-2-7b' \
    'general.description=not recorded'
sign_add "$T/m/prov.gguf" prov
assert_grep "license                apache-2.0" "$T/out"
assert_grep "source url             https://example.org/models/prov" "$T/out"
assert_grep "author                 Zoë Ünïcode 模型" "$T/out"
assert_grep "file type              Q4_K_M (15)" "$T/out"
assert_grep "base models            1" "$T/out"
assert_grep "base model             Llama-2-7b" "$T/out"
# Escapes and bell became spaces; invalid bytes and the override U+FFFD.
assert_grep "name                   Evil [31mRED ]0;title model" "$T/out"
assert_grep "organization           ��Org" "$T/out"
assert_grep "quantized by           A�evil" "$T/out"
assert_no_grep "not recorded" "$T/out"

# Nothing but printable text anywhere the provenance is shown or kept.
expect_rc 0 "$APP" model show prov
cp "$T/out" "$T/show"
expect_rc 0 "$APP" model list
cat "$T/out" >>"$T/show"
assert_grep "Evil [31mRED ]0;title model, license apache-2.0" "$T/out"
expect_rc 0 "$APP" audit show --kind model_load --json
cat "$T/out" >>"$T/show"
cat "$H/models/prov.json" >>"$T/show"
python3 - "$T/show" "$H/models/prov.json" "$T/out" <<'PY' || fail "provenance not clean"
import json, sys, unicodedata
text = open(sys.argv[1], encoding="utf-8").read()
bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f
       or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"]
assert not bad, bad
rec = json.load(open(sys.argv[2]))["provenance"]
assert rec["general.license"] == "apache-2.0", rec
assert rec["general.source.url"] == "https://example.org/models/prov", rec
assert len(rec["general.repo_url"].encode()) == 256, rec  # cut, at a character boundary
assert "general.description" not in rec, rec
entry = json.loads(open(sys.argv[3]).readline())
assert entry["body"]["provenance"] == rec, (entry, rec)
PY

# A model without provenance keys installs with what little it has; a
# record written before provenance existed still shows.
sign_add "$T/m/prov.gguf" plain-copy
python3 - "$H/models/plain-copy.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); del r["provenance"]
json.dump(r, open(sys.argv[1], "w"))
PY
expect_rc 0 "$APP" model show plain-copy
assert_grep "(no GGUF provenance recorded)" "$T/out"
# A record edited by hand to hold an escape is not printed as such.
python3 - "$H/models/plain-copy.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); r["provenance"] = {"general.name": "x\u001b[2Jy", "general.license": "mit"}
json.dump(r, open(sys.argv[1], "w"))
PY
expect_rc 0 "$APP" model show plain-copy
assert_grep "license                mit" "$T/out"
assert_no_grep "[2J" "$T/out"

# Signed but not a model the engine can read: the worker says so, the
# monitor refuses in one line and audits the refusal; nothing installed.
head -c 4000 "$SHARED/models/kq-q4_k_m.gguf" >"$T/m/broken.gguf"
sign_add "$T/m/broken.gguf" broken 1
assert_grep "the sandboxed engine could not read the model" "$T/err"
one_line "$T/err"
expect_rc 1 "$APP" model show broken
expect_rc 0 "$APP" audit show --kind refusal
assert_grep "model add" "$T/out"

# Hostile model files (the GGUF fuzz corpus), signed and trusted: the
# monitor never crashes or hangs; each is refused in one line or installed.
i=0
for f in "$APPLIANCE_SOURCE_DIR"/tests/fuzz/corpus/fuzz_gguf/*; do
    i=$((i + 1))
    cp "$f" "$T/m/hostile$i.gguf"
    "$APP" image sign-model --method key --model-path "$T/m/hostile$i.gguf" \
        --output-bundle "$T/m/hostile$i.sig" --private-key "$T/pub/publisher.key.pem" >/dev/null
    set +e
    timeout 60 "$APP" model add "$T/m/hostile$i.gguf" --bundle "$T/m/hostile$i.sig" \
        >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    TESTS_RUN=$((TESTS_RUN + 1))
    case $rc in
    0) ;;
    1) one_line "$T/err" ;;
    *) fail "hostile model $(basename "$f"): model add exit $rc" ;;
    esac
done

# Test builds only: a worker that breaks its sandbox or crashes instead of
# answering. The first is audited as a sandbox violation.
cp "$SHARED/models/aidreams260K-f16.gguf" "$T/m/victim.gguf"
"$APP" image sign-model --method key --model-path "$T/m/victim.gguf" \
    --output-bundle "$T/m/victim.sig" --private-key "$T/pub/publisher.key.pem" >/dev/null
set +e
APPLIANCE_TEST_ADD_VIOLATE=socket "$APP" model add "$T/m/victim.gguf" --bundle "$T/m/victim.sig" \
    >"$T/out" 2>"$T/err"
rc=$?
set -e
if [ "$rc" = 0 ]; then
    echo "note: this build has no test hooks; the violation cases are not run"
    expect_rc 0 "$APP" model remove victim.gguf
else
    [ "$rc" = 1 ] || fail "model add under a violating worker: exit $rc"
    assert_grep "broke the sandbox and was killed (SIGSYS)" "$T/err"
    one_line "$T/err"
    expect_rc 0 "$APP" audit show --kind sandbox_violation
    assert_grep "model add" "$T/out"
    set +e
    APPLIANCE_TEST_ADD_VIOLATE=crash "$APP" model add "$T/m/victim.gguf" \
        --bundle "$T/m/victim.sig" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "model add under a crashing worker: exit $rc"
    assert_grep "the engine worker crashed (signal 11" "$T/err"
    one_line "$T/err"
    expect_rc 1 "$APP" model show victim.gguf
fi
# A model over 100 MB shows how its copy-while-hashing goes, on a terminal
# only (script(1) gives one); a sparse file is quick and not a GGUF.
truncate -s 120M "$T/m/big.gguf"
"$APP" image sign-model --method key --model-path "$T/m/big.gguf" --output-bundle "$T/m/big.sig" \
    --private-key "$T/pub/publisher.key.pem" >/dev/null
if command -v script >/dev/null; then
    script -qec "'$APP' model add '$T/m/big.gguf' --bundle '$T/m/big.sig'" "$T/big.tty" \
        >/dev/null 2>&1 </dev/null || true
    assert_grep "verifying model: 126 / 126 MB" "$T/big.tty"
    assert_grep "ETA" "$T/big.tty"
fi
expect_rc 1 "$APP" model add "$T/m/big.gguf" --bundle "$T/m/big.sig"
assert_no_grep "verifying model" "$T/err"
one_line "$T/err"
expect_rc 0 "$APP" audit verify
done_ok
