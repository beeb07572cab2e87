#!/bin/sh
# appliance generate end to end: greedy JSON output on the real aidreams260K
# model matches the reference vectors token for token; bad flags exit 2; a
# bad model path exits 1 with one line; invalid UTF-8 exits 1.
set -u
app=${APPLIANCE_BIN:?}
shared=${APPLIANCE_SHARED_DIR:-}
model=$shared/models/aidreams260K-f16.gguf
vectors=$shared/vectors/engine/aidreams260K-f16.p1.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# usage errors: exit 2, no model needed
"$app" generate --no-such-flag >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] || fail "unknown flag exited $rc, want 2"
grep -q "no-such-flag" "$tmp/err" || fail "unknown flag not named: $(cat "$tmp/err")"
"$app" generate -m x.gguf >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "missing -p exited $rc, want 2"
"$app" generate -m x.gguf -p hi -n -3 >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "-n -3 exited $rc, want 2"
"$app" generate -m x.gguf -p hi --top-p 1.5 >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "--top-p 1.5 exited $rc, want 2"
"$app" generate -m x.gguf -p hi extra >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "extra argument exited $rc, want 2"
"$app" bench --bogus >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "bench --bogus exited $rc, want 2"
"$app" generate --help | grep -q "^usage: appliance generate" || fail "generate --help"
"$app" bench --help | grep -q "^usage: appliance bench" || fail "bench --help"

# a model path that does not exist: exit 1, exactly one line naming it
"$app" generate -m "$tmp/missing.gguf" -p hi --seed 1 >"$tmp/out" 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "missing model exited $rc, want 1"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "missing model: want one line, got: $(cat "$tmp/err")"
grep -q "missing.gguf" "$tmp/err" || fail "missing model not named: $(cat "$tmp/err")"

# synthetic bench runs without ../shared
"$app" bench --synthetic tiny:q4_0 -p 16 -n 4 -r 1 -t 2 --json >"$tmp/bench.json" 2>"$tmp/err" ||
    fail "bench --synthetic tiny:q4_0: $(cat "$tmp/err")"
python3 - "$tmp/bench.json" <<'PY' || fail "bench JSON shape"
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("model", "threads", "prefill", "decode", "bandwidth_gb_s",
          "decode_bound_tokens_per_s", "decode_fraction_of_bound", "kernels"):
    assert k in d, k
for k in ("prefill", "decode"):
    assert set(d[k]) == {"tokens", "tokens_per_s"}, d[k]
    assert set(d[k]["tokens_per_s"]) == {"median", "min", "max"}
    assert d[k]["tokens_per_s"]["median"] > 0
assert d["prefill"]["tokens"] == 16 and d["decode"]["tokens"] == 4
PY

if [ -z "$shared" ] || [ ! -f "$model" ] || [ ! -f "$vectors" ]; then
    echo "skipped: ../shared (APPLIANCE_SHARED_DIR) with aidreams260K-f16 is absent"
    exit 77
fi

# greedy --json: the reference tokens, BOS included in prompt_tokens
"$app" generate -m "$model" -p "I dreamed" --greedy -n 64 -t 2 --json >"$tmp/gen.json" \
    2>"$tmp/err" || fail "generate: $(cat "$tmp/err")"
python3 - "$tmp/gen.json" "$vectors" <<'PY' || fail "generate JSON differs from the vectors"
import json, sys
g = json.load(open(sys.argv[1]))
v = json.load(open(sys.argv[2]))
assert g["prompt_tokens"] == v["prompt_tokens"], (g["prompt_tokens"], v["prompt_tokens"])
assert g["tokens"] == v["greedy_tokens"], (g["tokens"], v["greedy_tokens"])
assert g["text"] == v["greedy_text"], (g["text"], v["greedy_text"])
assert g["finish_reason"] == "length"
for k in ("load_ms", "prompt_ms", "decode_ms", "prefill_tokens_per_s", "decode_tokens_per_s"):
    assert g["timings"][k] >= 0, k
assert isinstance(g["seed"], int)
PY

# streaming text mode prints the same text; a given seed replays exactly
"$app" generate -m "$model" -p "I dreamed" --greedy -n 64 -t 1 >"$tmp/text" 2>/dev/null ||
    fail "generate text mode"
python3 -c "import json,sys; t=open(sys.argv[1]).read(); g=json.load(open(sys.argv[2])); assert t == g['text'] + '\n'" \
    "$tmp/text" "$tmp/gen.json" || fail "streamed text differs from the JSON text"
"$app" generate -m "$model" -p "Once upon a time" --seed 42 -n 40 -t 1 --json >"$tmp/a.json" 2>/dev/null
"$app" generate -m "$model" -p "Once upon a time" --seed 42 -n 40 -t 2 --json >"$tmp/b.json" 2>/dev/null
python3 -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert a['tokens'] == b['tokens'] and a['seed'] == b['seed'] == 42" \
    "$tmp/a.json" "$tmp/b.json" || fail "seeded sampling differs between 1 and 2 threads"

# invalid UTF-8 prompt: exit 1 with one line
"$app" generate -m "$model" -p "$(printf 'bad \377 byte')" --seed 1 >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "invalid UTF-8 exited $rc, want 1"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "invalid UTF-8: want one line, got: $(cat "$tmp/err")"
echo "ok"
