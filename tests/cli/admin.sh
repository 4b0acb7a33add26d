#!/usr/bin/env bash
# Black-box: ipcx ring create/send/recv, ls, stat, rm, and their errors.
set -u
ipcx=$1
name="tcli$$"
cleanup() { "$ipcx" rm "$name" "$name-ring" "$name-queue" "$name-mq" >/dev/null 2>&1; }
fail() { echo "FAIL: $*" >&2; cleanup; exit 1; }
trap cleanup EXIT

"$ipcx" ring create "$name" 64k >/dev/null || fail "ring create"
[ "$(stat -c %a /dev/shm/ipcx.$name)" = 600 ] || fail "mode is not 0600"
"$ipcx" ring create "$name" 2>/dev/null && fail "second create must fail (O_EXCL)"
"$ipcx" ring send "$name" one "two words" three || fail "ring send"
"$ipcx" ls | grep -q "^$name *ring" || fail "ls does not list the ring"
"$ipcx" ls --json | python3 -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin]
r = [x for x in rows if x['name'] == '$name'][0]
assert r['kind'] == 'ring' and r['mode'] == '0600', r
" || fail "ls --json"
"$ipcx" stat "$name" | grep -q "queued: *[1-9]" || fail "stat shows nothing queued"
out=$("$ipcx" ring recv "$name" --timeout 200)
[ "$out" = "$(printf 'one\ntwo words\nthree')" ] || fail "recv got: $out"
# Nothing left and the producer has closed: said so, status 1.
err=$("$ipcx" ring recv "$name" --timeout 50 2>&1) && fail "empty recv succeeded"
echo "$err" | grep -q "peer closed" || fail "unclear message: $err"
# A ring no producer ever opened: the receive times out.
"$ipcx" ring create "$name-2" >/dev/null || fail "create 2"
err=$("$ipcx" ring recv "$name-2" --timeout 50 2>&1) && fail "empty recv succeeded"
echo "$err" | grep -q "deadline expired" || fail "unclear timeout message: $err"
"$ipcx" rm "$name-2" || fail "rm 2"
# send and recv by kind: a ring, a queue and a mailbox, each with its own
# command's options; what has no send says so.
for kind in ring queue mq; do
	"$ipcx" $kind create "$name-$kind" >/dev/null || fail "$kind create"
	"$ipcx" send "$name-$kind" x "y z" || fail "send to a $kind"
done
[ "$("$ipcx" recv "$name-ring" --timeout 200)" = "$(printf 'x\ny z')" ] || fail "recv from a ring"
[ "$("$ipcx" recv "$name-queue" --timeout 100 --count 2)" = "$(printf 'x\ny z')" ] ||
	fail "recv from a queue"
"$ipcx" send "$name-mq" --prio 7 urgent || fail "send --prio to a mailbox"
[ "$("$ipcx" recv "$name-mq" --prio)" = "$(printf '7 urgent\n0 x\n0 y z')" ] ||
	fail "recv from a mailbox"
"$ipcx" rm "$name-ring" "$name-queue" "$name-mq" || fail "rm by kind"
err=$("$ipcx" send "nope-$$" x 2>&1) && fail "send to a missing object succeeded"
echo "$err" | grep -q "No such file" || fail "unclear message: $err"
"$ipcx" recv 2>/dev/null; [ $? -eq 2 ] || fail "recv without NAME must exit 2"
# Bad names and missing objects.
"$ipcx" stat "a/b" 2>&1 | grep -q "Invalid argument" || fail "bad name not refused"
"$ipcx" stat "nope-$$" 2>&1 | grep -q "No such file" || fail "missing object"
# A foreign object in our namespace is reported, not trusted.
head -c 8192 /dev/urandom > "/dev/shm/ipcx.$name-junk"
"$ipcx" stat "$name-junk" 2>&1 | grep -q "not an ipcx object" || fail "junk accepted"
"$ipcx" send "$name-junk" x 2>&1 | grep -q "not an ipcx object" || fail "send to junk"
"$ipcx" ls | grep "$name-junk" | grep -q "not an ipcx object" || fail "ls trusts junk"
"$ipcx" rm "$name-junk" || fail "rm junk"
"$ipcx" rm "$name" || fail "rm"
[ -e "/dev/shm/ipcx.$name" ] && fail "rm left the object"
"$ipcx" rm "$name" 2>/dev/null && fail "rm of a missing object succeeded"
"$ipcx" frobnicate 2>/dev/null; [ $? -eq 2 ] || fail "unknown command must exit 2"
"$ipcx" bench --size 0x 2>/dev/null; [ $? -eq 2 ] || fail "bad bench size must exit 2"
echo "admin: ok"
