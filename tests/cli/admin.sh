#!/usr/bin/env bash
# Black-box: ipcx ring create/send/recv, ls, stat, rm, and their errors.
set -u
ipcx=$1
name="tcli$$"
fail() { echo "FAIL: $*" >&2; "$ipcx" rm "$name" >/dev/null 2>&1; exit 1; }
trap '"$ipcx" rm "$name" >/dev/null 2>&1' EXIT

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
# Bad names and missing objects.
"$ipcx" stat "a/b" 2>&1 | grep -q "Invalid argument" || fail "bad name not refused"
"$ipcx" stat "nope-$$" 2>&1 | grep -q "No such file" || fail "missing object"
# A foreign object in our namespace is reported, not trusted.
head -c 8192 /dev/urandom > "/dev/shm/ipcx.$name-junk"
"$ipcx" stat "$name-junk" 2>&1 | grep -q "not an ipcx object" || fail "junk accepted"
"$ipcx" ls | grep "$name-junk" | grep -q "not an ipcx object" || fail "ls trusts junk"
"$ipcx" rm "$name-junk" || fail "rm junk"
"$ipcx" rm "$name" || fail "rm"
[ -e "/dev/shm/ipcx.$name" ] && fail "rm left the object"
"$ipcx" rm "$name" 2>/dev/null && fail "rm of a missing object succeeded"
"$ipcx" frobnicate 2>/dev/null; [ $? -eq 2 ] || fail "unknown command must exit 2"
"$ipcx" bench --size 0x 2>/dev/null; [ $? -eq 2 ] || fail "bad bench size must exit 2"
echo "admin: ok"
