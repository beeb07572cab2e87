# Worker lockdown facts (issue 6), read by this test from /proc while a real
# engine worker serves `appliance chat` (fed through a fifo, so the worker
# stays up between turns), never from the binary's own JSON: RLIMIT_CORE 0,
# seccomp mode 2 and no_new_privs, no descriptors but the IPC socket and
# stderr, not dumpable, a network namespace of its own; and the monitor
# under its seccomp filter too.
#
# Not dumpable shows as /proc/PID files owned by root instead of the
# process's user; so when this test runs as root, the appliance itself runs
# as the unprivileged user nobody (setpriv) and the test, as root, reads it.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"
need_shared

RUN=""
if [ "$(id -u)" = 0 ]; then
    command -v setpriv >/dev/null || skip "running as root without setpriv"
    RUN="setpriv --reuid=65534 --regid=65534 --clear-groups --"
    chmod 0755 "$T"
    mkdir -p "$T/u"
    chown 65534:65534 "$T/u"
else
    mkdir -p "$T/u"
fi
U="$T/u"
app() { $RUN "$APP" "$@"; }
H="$U/home"
app init "$H" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
$RUN cp "$SHARED/models/aidreams260K-f16.gguf" "$U/dreams.gguf"
app keygen --kind publisher --out "$U" >/dev/null || fail "keygen"
app image sign-model --method key --model-path "$U/dreams.gguf" --output-bundle "$U/dreams.sig" \
    --private-key "$U/publisher.key.pem" >/dev/null || fail "sign"
app trust add --publisher-key "$U/publisher.pub.pem" >/dev/null || fail "trust add"
app model add "$U/dreams.gguf" --bundle "$U/dreams.sig" --name dreams >/dev/null || fail "model add"

mkfifo "$T/fifo"
$RUN "$APP" chat -m dreams -n 4 --seed 5 -t 2 <"$T/fifo" >"$T/chat.out" 2>"$T/chat.err" &
MON=$!
exec 3>"$T/fifo"
echo "Hello there" >&3
# The first answer has streamed: the worker is up (and stays up, waiting
# for the next turn, until the fifo closes).
i=0
while [ ! -s "$T/chat.out" ] && [ $i -lt 600 ] && kill -0 "$MON" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
[ -s "$T/chat.out" ] || { cat "$T/chat.err" >&2; fail "no answer streamed"; }
WORKER=$(pgrep -P "$MON" | head -1)
[ -n "$WORKER" ] || fail "the monitor $MON has no worker child"
[ "$(pgrep -P "$MON" | wc -l)" -eq 1 ] || fail "the monitor has more than one child"
echo "monitor $MON, worker $WORKER"

field() { sed -n "s/^$1:[[:space:]]*//p" "/proc/$2/status"; }
TESTS_RUN=$((TESTS_RUN + 1))
# Core dumps off: soft and hard limit 0.
core=$(grep "^Max core file size" "/proc/$WORKER/limits" | awk '{print $5, $6}')
[ "$core" = "0 0" ] || fail "worker RLIMIT_CORE is '$core', want '0 0'"
# The seccomp filter and no_new_privs, as the kernel reports them.
[ "$(field Seccomp "$WORKER")" = 2 ] || fail "worker Seccomp is $(field Seccomp "$WORKER")"
[ "$(field NoNewPrivs "$WORKER")" = 1 ] || fail "worker NoNewPrivs is $(field NoNewPrivs "$WORKER")"
[ "$(field Seccomp "$MON")" = 2 ] || fail "monitor Seccomp is $(field Seccomp "$MON")"
# Not dumpable: its /proc files belong to root, not to the user it runs as.
uid=$(field Uid "$WORKER" | awk '{print $1}')
if [ "$uid" != 0 ]; then
    [ "$(stat -c %u "/proc/$WORKER/status")" = 0 ] ||
        fail "worker /proc/$WORKER is owned by uid $(stat -c %u "/proc/$WORKER/status"): dumpable"
    [ "$(stat -c %u "/proc/$MON/status")" = "$uid" ] ||
        echo "note: the monitor is not dumpable either"
else
    echo "note: the appliance runs as root here, the dumpable flag is not visible"
fi
# A non-dumpable process's descriptors and namespaces are readable by root
# only (ptrace access); as another user the test can read just the above.
if [ "$(id -u)" != 0 ]; then
    echo "note: not root, the worker's fd and ns/net are unreadable (it is not dumpable): not checked"
    fds="unread" wnet="unread" mnet="unread"
else
    # Descriptors: the IPC socket and stderr only (the same stderr as the monitor's).
    fds=$(ls "/proc/$WORKER/fd" | sort -n | tr '\n' ' ')
    n=0
    for fd in $(ls "/proc/$WORKER/fd"); do
        target=$(readlink "/proc/$WORKER/fd/$fd")
        if [ "$fd" = 2 ]; then
            [ "$target" = "$(readlink "/proc/$MON/fd/2")" ] || fail "worker fd 2 is $target, not the monitor's stderr"
        else
            case "$target" in
            socket:*) n=$((n + 1)) ;;
            *) fail "worker fd $fd is open on $target (descriptors: $fds)" ;;
            esac
        fi
    done
    [ "$n" -eq 1 ] || fail "worker has $n sockets open, want 1 (descriptors: $fds)"
    [ -e "/proc/$WORKER/fd/2" ] || fail "worker has no stderr (descriptors: $fds)"
    # A network namespace of its own (an empty one), not the monitor's.
    wnet=$(readlink "/proc/$WORKER/ns/net")
    mnet=$(readlink "/proc/$MON/ns/net")
    [ -n "$wnet" ] && [ "$wnet" != "$mnet" ] || fail "worker network namespace $wnet is the monitor's $mnet"
fi
echo "worker: core 0, Seccomp 2, NoNewPrivs 1, fds $fds, net $wnet (monitor $mnet)"

echo "/quit" >&3
exec 3>&-
set +e
wait "$MON"
rc=$?
set -e
[ "$rc" = 0 ] || { cat "$T/chat.err" >&2; fail "chat exited $rc"; }
assert_grep "[session ended: 1 turn answered]" "$T/chat.err"
done_ok
