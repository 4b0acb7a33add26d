#!/usr/bin/env bash
# ipcx bench: the ipcx-queue rows (1:1, 2:2, ping-pong) and the lock hand-off
# rows pass their sequence checks; lock rows skip sizes they do not carry.
# 0.2 s per case: a spinning hand-off whose peer is preempted on a loaded
# machine can stall for tens of milliseconds, longer than a 50 ms window.
source "$(dirname "$0")/common.bash"
mechs=ipcx-queue,lock-spin,lock-futex,lock-sem,lock-sysv
"$ipcx" bench --mech $mechs --size 64,4096 --seconds 0.2 --json >"$tmp/a.json" ||
	fail "bench exited $?: $(cat "$tmp/a.json")"
jq -se '
	.[1:] as $rows |
	($rows | length) == 12 and
	all($rows[]; .mech != "ipcx-queue" or .status == "ok") and
	all($rows[]; ((.mech | startswith("lock-")) | not) or .mode == "pingpong") and
	all($rows[]; ((.mech | startswith("lock-")) | not) or
	             (.size == 64 and .status == "ok" and .p50_ns > 0) or
	             (.size == 4096 and .status == "skipped"))' "$tmp/a.json" >/dev/null ||
	fail "rows: $(cat "$tmp/a.json")"
"$ipcx" bench --mech ipcx-queue --mode stream --size 64 --producers 2 --consumers 2 --seconds 0.05 \
	--json >"$tmp/b.json" || fail "2:2 exited $?"
jq -se '.[1] | .status == "ok" and .producers == 2 and .consumers == 2 and .msgs_per_s > 0' \
	"$tmp/b.json" >/dev/null || fail "2:2: $(cat "$tmp/b.json")"
echo "bench sync: ok"
