# Shared helpers for the integration tests (sourced, not run by ctest).
# Each test runs the real binary ($APPLIANCE_BIN) in a private temp dir.
set -eu
APP=${APPLIANCE_BIN:?APPLIANCE_BIN must point at the appliance binary}
SHARED=${APPLIANCE_SHARED_DIR:-}
T=$(mktemp -d "${TMPDIR:-/tmp}/appliance-it-XXXXXX")
trap 'rm -rf "$T"' EXIT
# Hermetic: no test touches the user's own ~/.appliance unless it sets a home.
export APPLIANCE_HOME="$T/no-home"
TESTS_RUN=0

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

skip() {
    echo "SKIP: $*"
    exit 77
}

# expect_rc CODE CMD...: runs CMD, keeps stdout in $T/out and stderr in $T/err,
# and fails unless it exits with CODE.
expect_rc() {
    want=$1
    shift
    set +e
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    set -e
    TESTS_RUN=$((TESTS_RUN + 1))
    if [ "$got" != "$want" ]; then
        echo "--- stdout" >&2; cat "$T/out" >&2
        echo "--- stderr" >&2; cat "$T/err" >&2
        fail "expected exit $want, got $got: $*"
    fi
}

# assert_grep PATTERN FILE: fixed-string search.
assert_grep() {
    grep -qF -- "$1" "$2" || { echo "--- $2" >&2; cat "$2" >&2; fail "'$1' not in $2"; }
}

assert_no_grep() {
    if grep -qF -- "$1" "$2"; then fail "'$1' unexpectedly in $2"; fi
}

# one_line FILE: the error output is exactly one line.
one_line() {
    n=$(wc -l <"$1")
    [ "$n" -eq 1 ] || { cat "$1" >&2; fail "expected a one-line error in $1, got $n lines"; }
}

need_shared() {
    [ -n "$SHARED" ] && [ -d "$SHARED" ] || skip "../shared is absent (models and vectors)"
}

done_ok() {
    echo "$TESTS_RUN passed, 0 failed"
}

# install_model HOME [MODEL_FILE [NAME]]: signs MODEL_FILE (default: the
# shared aidreams model) with a fresh publisher key, trusts the key and
# installs the model as NAME (default "demo") in HOME; sets MODEL to the
# generate flags that run it and BUNDLE to its bundle. Without ../shared,
# MODEL is a synthetic model (made in memory, no file to sign).
install_model() {
    im_src=${2:-$SHARED/models/aidreams260K-f16.gguf}
    name=${3:-demo}
    if [ -n "$SHARED" ] && [ -f "$im_src" ]; then
        mkdir -p "$T/publisher" "$T/models"
        cp "$im_src" "$T/models/$name.gguf"
        [ -f "$T/publisher/publisher.key.pem" ] ||
            "$APP" keygen --kind publisher --out "$T/publisher" >/dev/null
        BUNDLE="$T/$name.sig"
        "$APP" image sign-model --method key --model-path "$T/models/$name.gguf" \
            --output-bundle "$BUNDLE" --private-key "$T/publisher/publisher.key.pem" >/dev/null
        "$APP" trust add --home "$1" --publisher-key "$T/publisher/publisher.pub.pem" >/dev/null
        "$APP" model add --home "$1" "$T/models/$name.gguf" --bundle "$BUNDLE" --name "$name" \
            >/dev/null || fail "model add $name"
        MODEL="-m $name"
    else
        MODEL="--synthetic tiny:q8_0"
    fi
}
