#!/usr/bin/env bash
# ipcx lab: the mailbox experiments (mq-limits, mq-overhead, mq-priority,
# mq-persistence), black-box through --json: the shape, the facts Linux must
# give, and nothing left behind.  Timing-dependent figures are only bounded.
source "$(dirname "$0")/common.bash"

"$ipcx" lab list >"$tmp/list"
for e in mq-limits mq-overhead mq-priority mq-persistence; do
	grep -q "^$e " "$tmp/list" || fail "lab list lacks $e"
done
fact() { jq -er --arg k "$2" '.facts[] | select(.key == $k) | .value' "$tmp/$1.json" ||
	fail "$1: no fact '$2'"; }
run() {
	"$ipcx" lab run "$1" --json >"$tmp/$1.json" || fail "$1 exited $?"
	jq -e --arg n "$1" '.name == $n and (.claim | length > 20) and (.facts | length > 3) and
		(.verdict | type == "string") and (has("error") | not)' "$tmp/$1.json" >/dev/null ||
		fail "$1: JSON shape: $(cat "$tmp/$1.json")"
}

run mq-limits
[[ $(fact mq-limits "sysv msgsnd of msgmax bytes") == accepted ]] || fail "msgmax bytes refused"
[[ $(fact mq-limits "sysv msgsnd of msgmax + 1 bytes") == "Invalid argument" ]] ||
	fail "msgmax + 1: $(fact mq-limits "sysv msgsnd of msgmax + 1 bytes")"
[[ $(fact mq-limits "posix queue of 4: non-blocking sends accepted") == "4, then Resource temporarily unavailable" ]] ||
	fail "posix full queue: $(fact mq-limits "posix queue of 4: non-blocking sends accepted")"
[[ $(fact mq-limits "posix mq_receive with a 63-byte buffer (8-byte message queued)") == "Message too long" ]] ||
	fail "posix short receive buffer"
jq -e '.verdict == "holds with corrections" and (.statement | test("BYTES"))' "$tmp/mq-limits.json" \
	>/dev/null || fail "mq-limits verdict"

run mq-overhead
charge=$(fact mq-overhead "posix: charged per message slot beyond the payload")
[[ $charge =~ ^[0-9]+\ bytes ]] && [ "${charge%% *}" -gt 0 ] || fail "posix charge: $charge"
[[ $(fact mq-overhead "sysv: bytes counted against msgmnb for 64-byte messages") == *"= 64.0 per message" ]] ||
	fail "sysv charge"
[[ $(fact mq-overhead "ipcx: log bytes per 64-byte message sent / received") == "96 / 32"* ]] ||
	fail "ipcx log bytes: $(fact mq-overhead "ipcx: log bytes per 64-byte message sent / received")"

run mq-priority
[[ $(fact mq-priority "ipcx: priority/index received (sent 3,1,7,1,7,0,3)") == "7/2 7/4 3/0 3/6 1/1 1/3 0/5 " ]] ||
	fail "ipcx priority order"
[[ $(fact mq-priority "posix mq: priority/index received") == "7/2 7/4 3/0 3/6 1/1 1/3 0/5 " ]] ||
	fail "posix priority order"
jq -e '.verdict | test("holds")' "$tmp/mq-priority.json" >/dev/null || fail "mq-priority verdict"

run mq-persistence
for mode in none batch always; do
	f=$(fact mq-persistence "kill -9 after 100 ms, sync $mode")
	[[ $f =~ ^([0-9]+)\ acknowledged,\ ([0-9]+)\ recovered ]] || fail "crash $mode: $f"
	acked=${BASH_REMATCH[1]} rec=${BASH_REMATCH[2]}
	[ "$rec" -ge "$acked" ] && [ "$rec" -le $((acked + 1)) ] || fail "crash $mode: $f"
done
jq -e '.verdict == "holds with corrections"' "$tmp/mq-persistence.json" >/dev/null ||
	fail "mq-persistence verdict: $(jq -c .verdict "$tmp/mq-persistence.json")"

ls /dev/shm | grep -q "^ipcx\.lab-" && fail "a lab mailbox was left behind: $(ls /dev/shm | grep '^ipcx\.lab-')"
ls /var/tmp | grep -q "^ipcx-lab-" && fail "a lab log was left behind"
echo "lab mq: ok"
