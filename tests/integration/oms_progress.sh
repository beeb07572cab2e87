#!/bin/sh
# The hashing progress bar: shown on a terminal for models over 100 MB
# (bytes, rate, ETA), silent when stderr is not a terminal or the model is
# small. The terminal comes from script(1) (util-linux).
set -u
: "${APPLIANCE_BIN:?}"
if ! command -v script >/dev/null; then
    echo "skip: script(1) not installed, no pseudo-terminal to test with"
    exit 77
fi
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fail=0
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/k.pem" 2>/dev/null
openssl pkey -in "$T/k.pem" -pubout -out "$T/k.pub"
truncate -s 120M "$T/big.bin" # sparse: quick to hash, still over the threshold
printf 'small' >"$T/small.bin"
for m in big small; do
    "$APPLIANCE_BIN" image sign-model --method key --model-path "$T/$m.bin" \
        --output-bundle "$T/$m.sig" --private-key "$T/k.pem" >/dev/null 2>&1 ||
        { echo "FAIL sign $m"; exit 1; }
done
verify() { # verify MODEL: the command line, quoted for script -c
    printf '%s image verify-model --method key --model-path %s/%s.bin --bundle %s/%s.sig --public-key %s/k.pub' \
        "$APPLIANCE_BIN" "$T" "$1" "$T" "$1" "$T"
}
script -qec "$(verify big)" "$T/big.tty" >/dev/null 2>&1 </dev/null || { echo "FAIL verify big on a tty"; fail=1; }
if grep -q 'hashing \[#*' "$T/big.tty" && grep -q 'ETA' "$T/big.tty" && grep -q 'MB/s' "$T/big.tty"; then
    echo "ok   progress bar on a terminal for a 120 MB model"
else
    echo "FAIL no progress bar on a terminal: $(tr '\r' '\n' <"$T/big.tty" | head -3)"
    fail=1
fi
script -qec "$(verify small)" "$T/small.tty" >/dev/null 2>&1 </dev/null
if grep -q 'hashing' "$T/small.tty"; then
    echo "FAIL progress bar for a small model"
    fail=1
else
    echo "ok   no progress bar for a small model"
fi
err=$($(verify big) 2>&1 >/dev/null)
if [ -n "$err" ]; then
    echo "FAIL output on stderr without a terminal: $err"
    fail=1
else
    echo "ok   silent without a terminal"
fi
exit $fail
