# The command line: help, version, unknown commands and bad flags.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"

expect_rc 0 "$APP" --help
for c in init status keygen policy version; do assert_grep "  $c " "$T/out"; done

# Every listed command has --help that exits 0 and prints a usage line.
for c in $("$APP" --help | awk '/^Commands:/{on=1; next} /^$/{on=0} on{print $1}'); do
    expect_rc 0 "$APP" "$c" --help
    assert_grep "usage: appliance $c" "$T/out"
done

expect_rc 0 "$APP" --version
assert_grep "appliance 0." "$T/out"
assert_grep "build: commit " "$T/out"
assert_grep "kernels: scalar" "$T/out"
# `version` also checks every SIMD kernel set against scalar, bit for bit
expect_rc 0 "$APP" version
if grep -q "kernels: scalar ." "$T/out"; then
    assert_grep "bit-identical to scalar in 177 cases" "$T/out"
fi

expect_rc 2 "$APP"
assert_grep "no command given" "$T/err"
expect_rc 2 "$APP" frobnicate
assert_grep "appliance: unknown command 'frobnicate'" "$T/err"
assert_grep "usage: appliance" "$T/err"
expect_rc 2 "$APP" --frob
assert_grep "bad option '--frob'" "$T/err"
expect_rc 2 "$APP" keygen --bogus
assert_grep "appliance keygen: bad option '--bogus'" "$T/err"
expect_rc 2 "$APP" keygen --kind
assert_grep "appliance keygen: bad option '--kind' or missing argument" "$T/err"
expect_rc 2 "$APP" keygen -z
assert_grep "bad option '-z'" "$T/err"
expect_rc 2 "$APP" status extra
assert_grep "unexpected argument 'extra'" "$T/err"
expect_rc 2 "$APP" policy
expect_rc 2 "$APP" policy frob
assert_grep "unknown action 'frob'" "$T/err"
done_ok
