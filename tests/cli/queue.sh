#!/usr/bin/env bash
# Black-box: ipcx queue create/send/recv, stat of a queue, and their errors.
set -u
ipcx=$1
name="tcliq$$"
fail() { echo "FAIL: $*" >&2; "$ipcx" rm "$name" >/dev/null 2>&1; exit 1; }
trap '"$ipcx" rm "$name" >/dev/null 2>&1' EXIT

out=$("$ipcx" queue create "$name" 16 32) || fail "queue create"
echo "$out" | grep -q "16 slots, messages up to 32 bytes" || fail "create said: $out"
[ "$(stat -c %a /dev/shm/ipcx.$name)" = 600 ] || fail "mode is not 0600"
"$ipcx" queue create "$name" 2>/dev/null && fail "second create must fail (O_EXCL)"
"$ipcx" ls | grep -q "^$name *queue" || fail "ls does not list the queue"
"$ipcx" queue send "$name" one "two words" three || fail "queue send"
st=$("$ipcx" stat "$name") || fail "stat"
echo "$st" | grep -q "^slots: *16$" || fail "stat slots: $st"
echo "$st" | grep -q "^queued: *3$" || fail "stat queued: $st"
echo "$st" | grep -q "^producers: *0$" || fail "the sender's entry outlived it: $st"
# A message longer than the slots: refused, named, nothing queued.
err=$("$ipcx" queue send "$name" "$(printf 'x%.0s' $(seq 33))" 2>&1) && fail "oversize send succeeded"
echo "$err" | grep -q "message larger than" || fail "unclear oversize message: $err"
out=$("$ipcx" queue recv "$name" --timeout 200)
[ "$out" = "$(printf 'one\ntwo words\nthree')" ] || fail "recv got: $out"
"$ipcx" stat "$name" | grep -q "^queued: *0$" || fail "stat after recv"
# Empty, and every producer that attached has gone: end of stream, status 1.
err=$("$ipcx" queue recv "$name" --timeout 50 2>&1) && fail "empty recv succeeded"
echo "$err" | grep -q "ipcx queue recv: $name:" || fail "unclear message: $err"
"$ipcx" queue recv "nope-$$" --timeout 50 2>&1 | grep -q "No such file" || fail "missing queue"
"$ipcx" queue 2>&1 | grep -q "usage" || fail "no usage"
"$ipcx" rm "$name" || fail "rm"
[ -e "/dev/shm/ipcx.$name" ] && fail "rm left the object"
echo "queue admin: ok"
