#!/bin/sh
# appliance bench --audit and --sandbox: the flags parse, bad values and
# combinations are usage errors (exit 2), and tiny runs print well-formed
# JSON with every field. No timing is asserted: this machine is shared.
set -u
app=${APPLIANCE_BIN:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

usage_error() { # usage_error WHAT ARGS...: exit 2 and a usage line on stderr
    what=$1
    shift
    "$app" bench "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ $rc -eq 2 ] || fail "$what: exit $rc, want 2 ($(cat "$tmp/err"))"
    grep -q "^usage: appliance bench" "$tmp/err" || fail "$what: no usage line: $(cat "$tmp/err")"
    [ ! -s "$tmp/out" ] || fail "$what: printed on stdout: $(cat "$tmp/out")"
}

usage_error "--sandbox maybe" --sandbox maybe
usage_error "--sandbox without a value" --sandbox
usage_error "--audit with --sandbox" --audit --sandbox on
usage_error "--db without --audit" --sandbox on --db "$tmp/x.db"
usage_error "--audit with -m" --audit -m "$tmp/x.gguf"
usage_error "--audit with -p" --audit -p 8
usage_error "--sandbox with -p" --sandbox on -p 8
usage_error "--sandbox with -m and --synthetic" --sandbox on -m x.gguf --synthetic tiny:q4_0
usage_error "--sandbox -n 0" --sandbox compare -n 0
usage_error "--audit -r 0" --audit -r 0
usage_error "--audit with an argument" --audit extra
usage_error "--audit=1" --audit=1
"$app" bench --help >"$tmp/help" || fail "bench --help"
grep -q -- "--audit" "$tmp/help" || fail "--help does not mention --audit"
grep -q -- "--sandbox on|off|compare" "$tmp/help" || fail "--help does not mention --sandbox"

# --db: the folder must exist; the file itself is never created
"$app" bench --audit --db "$tmp/no/such/dir/audit.db" -r 1 >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] || fail "--db in a missing folder: exit $rc, want 1"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "--db in a missing folder: want one line: $(cat "$tmp/err")"

# the audit benchmark: a home that does not exist yet is measured on its
# nearest existing folder; the scratch folder is gone afterwards
mkdir "$tmp/base"
APPLIANCE_HOME="$tmp/base/home" "$app" bench --audit --synthetic tiny:q4_0 -n 4 -r 1 --json \
    >"$tmp/audit.json" 2>"$tmp/err" || fail "bench --audit: $(cat "$tmp/err")"
[ -z "$(ls -A "$tmp/base")" ] || fail "the scratch folder was left behind: $(ls -A "$tmp/base")"
python3 - "$tmp/audit.json" "$tmp/base" <<'PY' || fail "bench --audit JSON shape"
import json, sys
d = json.load(open(sys.argv[1]))
def stats(s):
    assert set(s) == {"median", "min", "max"}, s
    assert s["min"] <= s["median"] <= s["max"], s
    return s["median"]
assert d["benchmark"] == "audit" and d["reps"] == 1
assert d["folder"].startswith(sys.argv[2] + "/.appliance-bench-"), d["folder"]
assert isinstance(d["filesystem"], str) and d["filesystem"]
assert set(d["sync_per_s"]) == {"fdatasync", "fsync", "fdatasync_appending"}
for v in d["sync_per_s"].values():
    assert stats(v) > 0
a = d["appends"]
assert a["durability"] == "WAL, synchronous=FULL" and a["record_bytes"] > 500
for k, writers in (("single", 1), ("processes", 16), ("group_commit_threads", 16)):
    assert a[k]["writers"] == writers and stats(a[k]["per_s"]) > 0, a[k]
    assert isinstance(a[k]["met"], bool)
assert a["batch"]["entries_per_transaction"] == 8 and stats(a["batch"]["per_s"]) > 0
assert a["concurrent_logs_verified"] is True
c = d["checkpoint"]
assert c["log_entries"] > 0 and stats(c["sign_ms"]) > 0 and c["interval"] == 100
assert c["entries_per_request"] == 3 and c["amortised_ms_per_request"] > 0
r = d["request"]
assert r["model"] == "tiny:q4_0" and r["tokens"] == 4 and r["reps"] == 1 and r["threads"] >= 1
assert stats(r["wall_ms"]) > stats(r["generation_ms"]) > 0
parts = ("open", "limits", "prompt", "output", "attestation", "checkpoint_check", "close")
assert set(r["audit_ms"]) == set(parts) | {"checkpoint_amortised", "total"}
for p in parts:
    assert stats(r["audit_ms"][p]) >= 0, p
assert stats(r["audit_ms"]["prompt"]) > 0 and stats(r["audit_ms"]["attestation"]) > 0
total = sum(r["audit_ms"][p]["median"] for p in parts) + r["audit_ms"]["checkpoint_amortised"]
assert abs(stats(r["audit_ms"]["total"]) - total) < 1e-6 * max(1, total) + 1e-9, (total, r)
assert 0 < stats(r["audit_fraction"]) < 1
assert stats(r["audit_fraction_of_generation"]) > stats(r["audit_fraction"])
t = d["targets"]
assert t["appends_per_s"] == 1000 and t["audit_fraction"] == 0.02
assert isinstance(t["appends_met"], bool) and isinstance(t["audit_fraction_met"], bool)
assert isinstance(t["note"], str) and len(t["note"]) > 20
PY

# --db: measured in that file's folder, and the file is not created
mkdir "$tmp/dbdir"
"$app" bench --audit --db "$tmp/dbdir/audit.db" --synthetic tiny:q4_0 -n 2 -r 1 >"$tmp/text" \
    2>"$tmp/err" || fail "bench --audit --db: $(cat "$tmp/err")"
grep -q "in $tmp/dbdir/.appliance-bench-" "$tmp/text" || fail "--db folder not used: $(cat "$tmp/text")"
grep -q "^note: " "$tmp/text" || fail "no note in the text report"
[ -z "$(ls -A "$tmp/dbdir")" ] || fail "--db left files: $(ls -A "$tmp/dbdir")"

# the sandbox benchmark: compare alternates and gives the overhead
"$app" bench --sandbox compare --synthetic tiny:q4_0 -n 4 -r 2 -t 2 --json >"$tmp/sb.json" \
    2>"$tmp/err" || fail "bench --sandbox compare: $(cat "$tmp/err")"
"$app" bench --sandbox on --synthetic tiny:q4_0 -n 4 -r 1 --json >"$tmp/on.json" \
    2>"$tmp/err" || fail "bench --sandbox on: $(cat "$tmp/err")"
"$app" bench --sandbox off --sandbox on --synthetic tiny:q4_0 -n 4 -r 1 >"$tmp/both.txt" \
    2>"$tmp/err" || fail "bench --sandbox off --sandbox on: $(cat "$tmp/err")"
grep -q "overhead" "$tmp/both.txt" || fail "on and off given apart do not compare"
python3 - "$tmp/sb.json" "$tmp/on.json" <<'PY' || fail "bench --sandbox JSON shape"
import json, sys
def stats(s):
    assert set(s) == {"median", "min", "max"}, s
    assert s["min"] <= s["median"] <= s["max"], s
    return s["median"]
def mode(m):
    keys = {"load_ms", "generation_ms", "cpu_ms", "outside_eval_ms", "decode_tokens_per_s",
            "tokens", "prompt_tokens", "text_pieces"}
    assert set(m) == keys, m
    assert m["load_ms"] > 0 and stats(m["generation_ms"]) > 0 and stats(m["cpu_ms"]) > 0
    assert stats(m["generation_ms"]) > stats(m["outside_eval_ms"]) >= 0
    assert stats(m["decode_tokens_per_s"]) > 0 and m["prompt_tokens"] > 1
    assert 0 < m["tokens"] <= 4 and m["text_pieces"] >= 1
d = json.load(open(sys.argv[1]))
assert d["benchmark"] == "sandbox" and d["model"] == "tiny:q4_0"
assert d["threads"] == 2 and d["tokens"] == 4 and d["reps"] == 2
assert 0 < d["generated"] <= 4
assert d["order"] == "on,off alternating" and d["seal_ms"] > 0
mode(d["on"])
mode(d["off"])
o = d["overhead"]
assert set(o) == {"percent", "paired_percent", "cpu_percent", "cpu_paired_percent",
                  "outside_eval_extra_ms",
                  "outside_eval_extra_percent", "target_percent", "met", "verdict"}, o
assert o["target_percent"] == 1 and isinstance(o["met"], bool)
assert o["percent"] > -100 and o["verdict"].startswith("met" if o["met"] else "NOT met")
stats(o["paired_percent"])
stats(o["cpu_paired_percent"])
# greedy, same engine, same prompt: the sandbox changes nothing in the output
assert d["tokens_identical"] is True
one = json.load(open(sys.argv[2]))
assert one["order"] == "on" and one["off"] is None and one["overhead"] is None
assert one["tokens_identical"] is None
mode(one["on"])
PY
exit 0
