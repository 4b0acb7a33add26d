#!/usr/bin/env bash
# Black-box: ipcx mq create/send/recv/stat, priorities, a persistent mailbox
# recovered after its shared memory is removed, and the errors.
set -u
ipcx=$1
name="tclimq$$"
dir=$(mktemp -d /var/tmp/ipcx-cli-mq.XXXXXX)
cleanup() { "$ipcx" rm "$name" "$name-p" "$name-x" >/dev/null 2>&1; rm -rf "$dir"; }
fail() { echo "FAIL: $*" >&2; cleanup; exit 1; }
trap cleanup EXIT

"$ipcx" mq create "$name" --depth 3 --max-msg 64 --full fail >/dev/null || fail "create"
[ "$(stat -c %a /dev/shm/ipcx.$name)" = 600 ] || fail "mode is not 0600"
"$ipcx" mq create "$name" 2>/dev/null && fail "second create must fail"
"$ipcx" mq send "$name" --prio 1 low || fail "send low"
"$ipcx" mq send "$name" --prio 9 high "also high" || fail "send high"
err=$("$ipcx" mq send "$name" one-too-many 2>&1) && fail "send to a full mailbox succeeded"
echo "$err" | grep -q "mailbox full" || fail "unclear full error: $err"
"$ipcx" mq send "$name" --prio 64 x 2>/dev/null && fail "priority 64 accepted"
"$ipcx" mq send "$name" "$(head -c 65 /dev/zero | tr '\0' a)" 2>&1 | grep -q "larger than" ||
	fail "oversize message not refused clearly"
"$ipcx" ls | grep -q "^$name *mq" || fail "ls does not list the mailbox"
"$ipcx" mq stat "$name" | grep -q "queued: *3 of 3" || fail "stat: $("$ipcx" mq stat "$name")"
"$ipcx" mq stat "$name" --json | python3 -c "
import json, sys
a = json.loads(sys.stdin.read())
assert a['depth'] == 3 and a['per_prio'] == {'9': 2, '1': 1} and a['full'] == 'fail', a
" || fail "stat --json"
out=$("$ipcx" mq recv "$name" --prio)
[ "$out" = "$(printf '9 high\n9 also high\n1 low')" ] || fail "recv order: $out"
err=$("$ipcx" mq recv "$name" --count 1 --timeout 50 2>&1) && fail "empty recv succeeded"
echo "$err" | grep -q "deadline expired" || fail "unclear timeout message: $err"
"$ipcx" mq stat "nope-$$" 2>&1 | grep -q "No such file" || fail "missing mailbox"
"$ipcx" mq stat "a/b" 2>&1 | grep -q "Invalid argument" || fail "bad name"
"$ipcx" mq create "$name-x" --full sideways 2>/dev/null && fail "bad policy accepted"

# Persistent: survives the loss of its shared memory.
"$ipcx" mq create "$name-p" --log "$dir/p.log" --sync always >/dev/null || fail "create persistent"
"$ipcx" mq send "$name-p" --prio 2 first second || fail "send persistent"
"$ipcx" mq recv "$name-p" --count 1 >/dev/null || fail "recv persistent"
"$ipcx" rm "$name-p" || fail "rm persistent"
"$ipcx" mq create "$name-p" --log "$dir/p.log" | grep -q "1 messages recovered" || fail "recovery"
[ "$("$ipcx" mq recv "$name-p")" = second ] || fail "recovered the wrong message"
"$ipcx" rm "$name-p"
echo "not a mailbox log, just text, long enough to hold a header and then some more" > "$dir/junk"
err=$("$ipcx" mq create "$name-p" --log "$dir/junk" 2>&1) && fail "junk log accepted"
echo "$err" | grep -q "not an ipcx object" || fail "unclear junk-log error: $err"
err=$("$ipcx" mq create "$name-p" --log /dev/shm/ipcx-cli-not-durable.log 2>&1) && fail "tmpfs log accepted"
echo "$err" | grep -q "real file system" || fail "unclear tmpfs error: $err"
[ -e /dev/shm/ipcx-cli-not-durable.log ] && fail "tmpfs log left behind"
# A relative log path is stored absolute, so other processes find the log.
(cd "$dir" && "$ipcx" mq create "$name-p" --log rel.log >/dev/null) || fail "create with a relative log"
"$ipcx" mq stat "$name-p" | grep -q "log: *$dir/rel.log" || fail "log path not absolute"
"$ipcx" mq send "$name-p" from-elsewhere || fail "send with a relative log"
"$ipcx" rm "$name-p"
"$ipcx" rm "$name" || fail "rm"
exit 0
