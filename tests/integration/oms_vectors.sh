#!/bin/sh
# Every OMS conformance case in ../shared/vectors/oms/cases must verify with
# `appliance image verify-model`, driven the way the suite's adapter drives
# it (see ../shared/vectors/README.md): the model is copied to a scratch
# folder, config.json's model_modifications are applied, and the flags come
# from config.json. Skips (77) when ../shared is absent.
set -u
: "${APPLIANCE_BIN:?}"
OMS="${APPLIANCE_SHARED_DIR:-}/vectors/oms"
if [ ! -d "$OMS/cases" ]; then
    echo "skip: $OMS/cases not found (no ../shared)"
    exit 77
fi
command -v python3 >/dev/null || { echo "python3 is needed to read config.json" >&2; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# Prints, one per line: the model source path, then "mod" lines
# (inject|tamper|delete <TAB> file <TAB> text-as-python-escaped), then the
# verify arguments with @MODEL@ standing for the scratch model path.
plan() {
    python3 - "$1" "$OMS/assets" <<'PY'
import json, os, sys
case, assets = sys.argv[1], sys.argv[2]
c = json.load(open(os.path.join(case, "config.json")))
base = case if c.get("model_relative_to") == "test_dir" else assets
print(os.path.join(base, c["model"]))
mods = c.get("model_modifications", {})
for kind in ("inject", "tamper"):
    for name, text in mods.get(kind, {}).items():
        print("mod\t%s\t%s\t%s" % (kind, name, text.encode("unicode_escape").decode()))
for name in mods.get("delete", []):
    print("mod\tdelete\t%s\t" % name)
v = c["verify"]
print("--method"); print(c["method"])
print("--bundle"); print(os.path.join(case, "bundle.sig"))
if "public_key" in v:
    print("--public-key"); print(os.path.join(assets, v["public_key"]))
for cert in v.get("cert_chain", []):
    print("--cert-chain"); print(os.path.join(assets, cert))
for p in v.get("ignore_paths", []):
    print("--ignore-paths"); print("@MODEL@/" + p)
if v.get("ignore_unsigned_files"):
    print("--ignore-unsigned-files")
PY
}

fail=0
count=0
single=0
for case in "$OMS"/cases/*/; do
    case=${case%/}
    name=$(basename "$case")
    count=$((count + 1))
    plan "$case" >"$tmp/plan" || { echo "FAIL $name: cannot read config.json"; fail=1; continue; }
    src=$(head -n 1 "$tmp/plan")
    kind=""
    # A model that is one file, not a folder (image/OMS.md, single files).
    if [ -f "$src" ]; then
        kind=" (single-file model)"
        single=$((single + 1))
    fi
    model="$tmp/$name/$(basename "$src")"
    mkdir -p "$tmp/$name"
    cp -R "$src" "$model" && chmod -R u+w "$model"
    grep '^mod	' "$tmp/plan" | while IFS='	' read -r _ kind file text; do
        if [ "$kind" = delete ]; then
            rm -f "$model/$file"
        else
            printf '%b' "$text" >"$model/$file"
        fi
    done
    set --
    while IFS= read -r line; do
        set -- "$@" "$(printf '%s' "$line" | sed "s#@MODEL@#$model#")"
    done <<LINES
$(tail -n +2 "$tmp/plan" | grep -v '^mod	')
LINES
    if out=$("$APPLIANCE_BIN" image verify-model --model-path "$model" "$@" 2>&1); then
        echo "ok   $name$kind"
    else
        echo "FAIL $name: $out"
        fail=1
    fi
done
echo "$count OMS conformance cases checked, $single of them single-file models"
[ "$count" -gt 0 ] || exit 1
exit $fail
