# appliance chat through the real binary over a pipe: several turns, /help,
# /reset, end of input; every turn audited with its conversation id and
# attested, a checkpoint at the end, `audit verify` passing, and
# `attest replay` of a second turn matching. Ctrl-C (SIGINT to the monitor)
# during an answer stops only that answer (test builds: a slowed worker);
# at the prompt it only prints a hint, a second one ends the session.
# Policy limits apply per turn.
. "$APPLIANCE_SOURCE_DIR/tests/lib.sh"

H="$T/home"
mkdir -p "$T/officer"
"$APP" keygen --kind reviewer --out "$T/officer" >/dev/null
"$APP" init "$H" --reviewer-key "$T/officer/reviewer.pub.pem" >/dev/null 2>&1 || fail "init"
export APPLIANCE_HOME="$H"
install_model "$H"

# Command line: unknown flags and templates are usage errors.
expect_rc 2 "$APP" chat $MODEL --bogus
one_line_usage() { head -1 "$T/err" | grep -q "appliance chat:" || fail "no one-line error"; }
one_line_usage
expect_rc 2 "$APP" chat $MODEL --template jinja
expect_rc 2 "$APP" chat $MODEL --temp abc
assert_grep "appliance chat: invalid value 'abc' for --temp" "$T/err"
expect_rc 2 "$APP" chat
expect_rc 0 "$APP" chat --help
assert_grep "/reset" "$T/out"
# A template the model cannot render: one clear line, exit 1.
expect_rc 1 sh -c '"$0" chat $1 --template chatml </dev/null' "$APP" "$MODEL"
assert_grep "appliance chat: the chatml template needs <|im_start|> and <|im_end|>" "$T/err"

# Three turns in two conversations, over a pipe.
printf 'Hello there\n/help\nHow are you?\n/reset\nAgain\n' >"$T/in"
expect_rc 0 sh -c '"$0" chat $1 -n 8 --seed 5 -t 2 --temp 0.8 --system "Be brief." <"$2"' \
    "$APP" "$MODEL" "$T/in"
assert_grep "/reset  start a new conversation" "$T/err"
assert_grep "[new conversation]" "$T/err"
assert_grep "[session ended: 3 turns answered]" "$T/err"
assert_grep "every turn audited" "$T/err"
[ "$(grep -c '' "$T/out")" -ge 3 ] || fail "expected three streamed answers"

expect_rc 0 "$APP" audit verify
expect_rc 0 "$APP" audit export --reviewer-key "$T/officer/reviewer.key.pem" --out "$T/open.jsonl"
python3 - "$T/open.jsonl" "$T" <<'PY' || fail "chat audit trail"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
entries = [r for r in rows if "kind" in r]
prompts = [e for e in entries if e["kind"] == "prompt"]
outputs = [e for e in entries if e["kind"] == "output"]
atts = [e for e in entries if e["kind"] == "attestation"]
assert len(prompts) == len(outputs) == len(atts) == 3, (len(prompts), len(outputs), len(atts))
chats = [p["record"]["body"]["chat"] for p in prompts]
assert chats[0]["conversation_id"] == chats[1]["conversation_id"] != chats[2]["conversation_id"], chats
assert [c["turn"] for c in chats] == [1, 2, 1], chats
# The prompt content is the transcript the engine was given.
t2 = json.loads(prompts[1]["text"])
assert t2["format"] == "appliance-chat-v1" and [m["role"] for m in t2["messages"]] == \
    ["system", "user", "assistant", "user"], t2
assert t2["messages"][0]["content"] == "Be brief." and t2["messages"][3]["content"] == "How are you?"
assert t2["messages"][2]["content"] == outputs[0]["text"], "history is not the first answer"
t3 = json.loads(prompts[2]["text"])
assert [m["role"] for m in t3["messages"]] == ["system", "user"], "reset kept the history"
for o in outputs:
    assert o["record"]["body"]["conversation_id"] in (chats[0]["conversation_id"], chats[2]["conversation_id"])
# The reset is audited; the session ends with a checkpoint.
starts = [e for e in entries if e["kind"] == "session_start"]
assert [s["record"]["body"]["event"] for s in starts] == ["chat_start", "chat_reset"], starts
last = [e["kind"] for e in entries if e["kind"] != "audit_read"]
assert last[-1] == "checkpoint", last[-3:]
# The second turn's evidence for replay.
open(sys.argv[2] + "/t2.json", "w").write(prompts[1]["text"])
open(sys.argv[2] + "/t2.salt", "w").write(prompts[1]["record"]["body"]["prompt_salt"])
open(sys.argv[2] + "/t2.att", "w").write(atts[1]["record"]["body"]["envelope"])
PY

# attest replay of the second turn (its transcript re-rendered) matches.
if [ -n "${BUNDLE:-}" ]; then
    expect_rc 0 "$APP" attest replay "$T/t2.att" --model "$T/models/demo.gguf" --bundle "$BUNDLE" \
        --prompt-file "$T/t2.json" --salt "$(cat "$T/t2.salt")" --pubkey "$H/keys/device.pub.pem" \
        --publisher-key "$T/publisher/publisher.pub.pem" -t 1
    assert_grep "replay matches" "$T/out"
    assert_grep "chat turn" "$T/out"
    # A transcript changed by one byte no longer opens the commitment.
    sed 's/How are you/How are yoU/' "$T/t2.json" >"$T/t2x.json"
    expect_rc 1 "$APP" attest replay "$T/t2.att" --model "$T/models/demo.gguf" --bundle "$BUNDLE" \
        --prompt-file "$T/t2x.json" --salt "$(cat "$T/t2.salt")" --pubkey "$H/keys/device.pub.pem" \
        --publisher-key "$T/publisher/publisher.pub.pem" -t 1
fi

# A full context is said at once, the next message is refused with the
# way out, and /reset gives a fresh conversation that is answered.
printf 'Tell me a long story\nMore\n/reset\nShort\n' >"$T/in"
expect_rc 0 sh -c '"$0" chat $1 -n 1000 --seed 5 -t 2 <"$2"' "$APP" "$MODEL" "$T/in"
assert_grep "tokens is full: /reset to start a new conversation]" "$T/err"
if [ -n "${BUNDLE:-}" ]; then
    assert_grep "[this message was not answered: the conversation fills the context, /reset" "$T/err"
else
    # The synthetic model's random bytes come back as U+FFFD, which the
    # history re-tokenizes into many more tokens than were generated: the
    # first answer may end by a stop string and still leave no room, so
    # the refusal names the other way out.
    assert_grep "[this message was not answered; if the conversation is too long, /reset]" "$T/err"
fi
assert_grep "[session ended: 2 turns answered, some not (see above)]" "$T/err"

# Policy limits per turn: a message over limits.max_prompt_bytes is refused
# citing the rule, and the session goes on.
python3 - "$H/policy.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["limits"]["max_prompt_bytes"] = 40
json.dump(p, open(sys.argv[1], "w"), indent=2)
PY
printf 'short one\n%s\nshort two\n' "$(printf 'x%.0s' $(seq 1 60))" >"$T/in"
expect_rc 0 sh -c '"$0" chat $1 -n 4 --seed 5 -t 2 <"$2"' "$APP" "$MODEL" "$T/in"
assert_grep "refused by policy limits.max_prompt_bytes: the message has 60 bytes, the limit is 40" "$T/err"
assert_grep "[session ended: 2 turns answered, some not (see above)]" "$T/err"
expect_rc 0 "$APP" audit verify

# Test builds only: a slowed worker, so SIGINT lands during an answer.
if ! "$APP" chat --test-token-delay-ms 1 --help >/dev/null 2>&1; then
    done_ok
    exit 0
fi
# A worker that crashes or breaks the sandbox mid-session: that turn ends
# with one clear error and is audited; a new worker answers the next turn.
printf 'first\n/test-crash\nsecond\nthird\n/test-socket\nfourth\nfifth\n' >"$T/in"
expect_rc 0 sh -c '"$0" chat $1 -n 4 --seed 5 -t 2 <"$2"' "$APP" "$MODEL" "$T/in"
assert_grep "appliance chat: the engine worker crashed (signal 11" "$T/err"
assert_grep "appliance chat: the engine worker broke the sandbox and was killed (SIGSYS)" "$T/err"
assert_grep "the engine will be restarted for the next one" "$T/err"
assert_grep "[session ended: 3 turns answered, some not (see above)]" "$T/err"
expect_rc 0 "$APP" audit verify
expect_rc 0 "$APP" audit show --kind sandbox_violation
assert_grep "sandbox_violation" "$T/out"

mkfifo "$T/fifo"
"$APP" chat $MODEL -n 200 --seed 5 -t 2 --test-token-delay-ms 40 <"$T/fifo" >"$T/chat.out" 2>"$T/chat.err" &
PID=$!
exec 3>"$T/fifo"
echo "Tell me a long story" >&3
i=0
while [ ! -s "$T/chat.out" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$T/chat.out" ] || fail "no answer streamed"
kill -INT "$PID" # the monitor, mid-answer
i=0
while ! grep -q "stopped by Ctrl-C" "$T/chat.err" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
assert_grep "[answer stopped by Ctrl-C]" "$T/chat.err"
kill -INT "$PID" # at the prompt: a hint only
i=0
while ! grep -q "Ctrl-C again" "$T/chat.err" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
assert_grep "[Ctrl-C again, Ctrl-D or /quit ends the session]" "$T/chat.err"
echo "And now?" >&3 # the session is still there
echo "/quit" >&3
exec 3>&-
set +e
wait "$PID"
rc=$?
set -e
TESTS_RUN=$((TESTS_RUN + 1))
[ "$rc" = 0 ] || { cat "$T/chat.err" >&2; fail "chat after SIGINT exited $rc"; }
assert_grep "[session ended: 2 turns answered]" "$T/chat.err"
expect_rc 0 "$APP" audit verify
expect_rc 0 "$APP" audit export --reviewer-key "$T/officer/reviewer.key.pem" --out "$T/open2.jsonl"
python3 - "$T/open2.jsonl" <<'PY' || fail "the stopped answer is not audited as cancelled"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
outs = [r["record"]["body"] for r in rows if r.get("kind") == "output"]
assert outs[-2]["finish_reason"] == "cancelled", outs[-2]
assert 0 < outs[-2]["token_count"] < 200, outs[-2]
assert outs[-1]["finish_reason"] != "cancelled", outs[-1]
prompts = [r for r in rows if r.get("kind") == "prompt"]
atts = [r for r in rows if r.get("kind") == "attestation"]
d = sys.argv[1].rsplit("/", 1)[0]
open(d + "/tc.json", "w").write(prompts[-2]["text"])
open(d + "/tc.salt", "w").write(prompts[-2]["record"]["body"]["prompt_salt"])
open(d + "/tc.att", "w").write(atts[-2]["record"]["body"]["envelope"])
PY
# The stopped turn is attested as "stop" and replays to its length.
if [ -n "${BUNDLE:-}" ]; then
    expect_rc 0 "$APP" attest replay "$T/tc.att" --model "$T/models/demo.gguf" --bundle "$BUNDLE" \
        --prompt-file "$T/tc.json" --salt "$(cat "$T/tc.salt")" --pubkey "$H/keys/device.pub.pem" \
        --publisher-key "$T/publisher/publisher.pub.pem" -t 2
    assert_grep "replay matches" "$T/out"
fi
done_ok
