#!/usr/bin/env bash
# ipcx bench: the kernel's mechanisms, black-box through --json.  argv[1] is
# the ipcx binary.  Every line must parse, every case must run with its
# sequence numbers checked (a lost, torn or reordered message fails the case
# and the exit status) or be skipped with a reason, and nothing may be left
# behind.  No speed is asserted.
IPCX_CLI_IPCNS=1 # System V queues are counted before and after
source "$(dirname "$0")/common.bash"

mechs=pipe,fifo,uds-stream,uds-seqpacket,posix-mq,sysv-mq,eventfd,tcp
msg_queues() { tail -n +2 /proc/sysvipc/msg | wc -l; }
queues_before=$(msg_queues)
# The FIFOs' private directories go under TMPDIR: one of our own.
export TMPDIR=$tmp/fifo
mkdir "$TMPDIR"

# bench OUT ARGS...: run, keep stdout in $tmp/OUT, fail on a non-zero exit.
bench() {
	local out=$1
	shift
	timeout 120 "$ipcx" bench --json "$@" >"$tmp/$out" 2>"$tmp/$out.err" ||
		fail "ipcx bench $* exited $?: $(cat "$tmp/$out.err")"
	# Every line is a JSON object; the first describes the machine.
	jq -e . "$tmp/$out" >/dev/null 2>&1 || fail "$out: a line does not parse"
	head -n 1 "$tmp/$out" | jq -e '.type == "machine" and .cpus > 0 and (.kernel | length > 0)' \
		>/dev/null || fail "$out: first line is not the machine"
	# Each result ran (and so passed its sequence and stamp checks) or was
	# skipped with a reason.
	tail -n +2 "$tmp/$out" | jq -se 'length > 0 and all(.[];
		.type == "result" and
		if .status == "ok" then
			if .mode == "pingpong" then
				.samples > 0 and .p50_ns > 0 and .p50_ns <= .p99_ns and
				.p99_ns <= .p999_ns and .p999_ns <= .max_ns
			else
				.messages > 0 and .msgs_per_s > 0 and .mib_per_s > 0 and
				.cpu_ns_per_msg > 0 and .csw_per_msg >= 0
			end
		elif .status == "skipped" then (.reason | type == "string" and length > 10)
		else false end)' >/dev/null ||
		fail "$out: a case failed or is malformed: $(tail -n +2 "$tmp/$out" | jq -c 'select(.status != "ok")')"
}
# row OUT MECH MODE SIZE: the one result line of that case.
row() {
	jq -c --arg m "$2" --arg mode "$3" --argjson s "$4" \
		'select(.type == "result" and .mech == $m and .mode == $mode and .size == $s)' "$tmp/$1"
}

# ---- every kernel mechanism, both modes, two sizes ---------------------------
bench all --mech "$mechs" --size 64,4096 --seconds 0.05
for m in ${mechs//,/ }; do
	for mode in pingpong stream; do
		[ "$m" = eventfd ] && continue
		for s in 64 4096; do
			r=$(row all "$m" "$mode" "$s")
			[ -n "$r" ] || fail "no $m $mode $s row"
			# These sizes are within every default limit: they must run.
			[ "$(jq -r .status <<<"$r")" = ok ] || fail "$m $mode $s: $r"
		done
	done
done
# eventfd runs once, ping-pong only, at its own 8 bytes.
[ "$(jq -c 'select(.mech == "eventfd")' "$tmp/all" | wc -l)" -eq 1 ] || fail "eventfd rows"
[ "$(row all eventfd pingpong 8 | jq -r .status)" = ok ] || fail "eventfd 8-byte ping-pong"
[ "$(tail -n +2 "$tmp/all" | wc -l)" -eq 29 ] || fail "expected 29 results"

# ---- kernel limits: a size over a limit is skipped with the limit ------------
bench big --mech posix-mq,sysv-mq --mode pingpong --size 65536 --seconds 0.05
msgmax=$(cat /proc/sys/kernel/msgmax)
r=$(row big sysv-mq pingpong 65536)
if [ "$msgmax" -lt 65536 ]; then
	jq -e --arg lim "EINVAL: 65536 > msgmax $msgmax" '.status == "skipped" and
		(.reason | startswith($lim))' <<<"$r" >/dev/null || fail "sysv-mq over msgmax: $r"
else
	[ "$(jq -r .status <<<"$r")" = ok ] || fail "sysv-mq 65536: $r"
fi
# posix-mq over msgsize_max runs only with CAP_SYS_RESOURCE; either way the
# row says what happened.
r=$(row big posix-mq pingpong 65536)
msgsize_max=$(cat /proc/sys/fs/mqueue/msgsize_max 2>/dev/null || echo 8192)
if [ "$(jq -r .status <<<"$r")" = skipped ]; then
	jq -e --arg a "EINVAL: 65536 > msgsize_max $msgsize_max" '.reason | startswith($a) or
		startswith("EMFILE") or startswith("mq_open")' <<<"$r" >/dev/null ||
		fail "posix-mq skip reason: $r"
fi

# ---- several producers and consumers on the message-oriented ones ------------
bench fan --mech uds-seqpacket,posix-mq,sysv-mq,pipe --mode stream --producers 3 --consumers 2 \
	--size 64 --seconds 0.05
for m in uds-seqpacket posix-mq sysv-mq; do
	jq -e '.status == "ok" and .producers == 3 and .consumers == 2' <<<"$(row fan "$m" stream 64)" \
		>/dev/null || fail "$m 3:2 stream: $(row fan "$m" stream 64)"
done
# A byte stream cannot be shared: skipped, with the reason.
jq -e '.status == "skipped" and (.reason | test("1:1"))' <<<"$(row fan pipe stream 64)" \
	>/dev/null || fail "pipe 3:2: $(row fan pipe stream 64)"

# ---- nothing left behind ------------------------------------------------------
if [ -n "${IPCX_TEST_IPCNS:-}" ]; then
	[ "$(msg_queues)" -eq "$queues_before" ] || fail "a System V message queue was left behind"
else
	echo "(no private IPC namespace: System V queues not counted)"
fi
[ -z "$(ls -A "$TMPDIR")" ] || fail "a FIFO directory was left behind: $(ls -A "$TMPDIR")"
echo ok
