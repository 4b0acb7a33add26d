#!/usr/bin/env bash
# ipcx lab: the shm-lifecycle and atomic-xchg experiments, black-box through
# --json.  argv[1] is the ipcx binary.  Checks the JSON shape and the facts
# and verdicts this machine (Linux) must give; what depends on timing (how
# many unprotected updates get lost) is only bounded.
IPCX_CLI_IPCNS=1 # System V segments are counted before and after
source "$(dirname "$0")/common.bash"

shm_segments() { tail -n +2 /proc/sysvipc/shm | wc -l; }
segs_before=$(shm_segments)

# The list names both experiments.
"$ipcx" lab list >"$tmp/list"
grep -q '^shm-lifecycle ' "$tmp/list" || fail "lab list lacks shm-lifecycle"
grep -q '^atomic-xchg ' "$tmp/list" || fail "lab list lacks atomic-xchg"

# fact NAME KEY: the value of one fact of the experiment's JSON object.
fact() { jq -er --arg k "$2" '.facts[] | select(.key == $k) | .value' "$tmp/$1.json"; }

check_shape() {
	local name=$1
	[ "$(wc -l <"$tmp/$name.json")" -eq 1 ] || fail "$name: not one JSON line"
	jq -e --arg n "$name" '
		.name == $n and (.claim | type == "string" and length > 20) and
		(.facts | type == "array" and length > 3) and
		all(.facts[]; (.key | type == "string") and has("value")) and
		(.verdict | type == "string") and (has("error") | not)' \
		"$tmp/$name.json" >/dev/null || fail "$name: JSON shape: $(cat "$tmp/$name.json")"
}

# ---- shm-lifecycle ----------------------------------------------------------
# In the background to learn its pid, which names its POSIX object.
"$ipcx" lab run shm-lifecycle --json >"$tmp/shm-lifecycle.json" &
pid=$!
wait $pid || fail "shm-lifecycle exited $?"
check_shape shm-lifecycle
f() { fact shm-lifecycle "$1" || fail "shm-lifecycle: no fact '$1'"; }
[[ $(f "sysv: IPC_STAT after IPC_RMID") == "key 0x00000000, mode 1600, nattch 2" ]] ||
	fail "IPC_STAT after IPC_RMID: $(f "sysv: IPC_STAT after IPC_RMID")"
[[ $(f "sysv: ipcs -m after IPC_RMID") == "key 0x00000000, perms 600, nattch 2, status dest"* ]] ||
	fail "ipcs -m view: $(f "sysv: ipcs -m after IPC_RMID")"
[[ $(f "sysv: other process writes after IPC_RMID") == "seen by this one"* ]] || fail "sysv sharing"
[[ $(f "sysv: shmget(key) after IPC_RMID") == ENOENT* ]] || fail "shmget(key) after IPC_RMID"
[[ $(f "sysv: new shmat(id) after IPC_RMID") == "succeeds (Linux-specific); same memory: yes" ]] ||
	fail "new shmat after IPC_RMID: $(f "sysv: new shmat(id) after IPC_RMID")"
[[ $(f "sysv: after the last detach") == destroyed* ]] || fail "segment not destroyed"
[[ $(f "posix: name after shm_unlink") == gone* ]] || fail "POSIX name survived shm_unlink"
[[ $(f "posix: open descriptor after shm_unlink") == "valid, st_nlink 0" ]] || fail "st_nlink"
[[ $(f "posix: the mapping in /proc/self/maps") == /dev/shm/ipcx.lab-shm-*" (deleted)" ]] ||
	fail "maps: $(f "posix: the mapping in /proc/self/maps")"
[[ $(f "posix: other process writes after shm_unlink") == "seen by this one"* ]] ||
	fail "posix sharing"
[[ $(f "posix: shm_open(O_CREAT|O_EXCL) of the same name") == "creates a new, separate object" ]] ||
	fail "name reuse"
jq -e '.verdict == "holds with corrections" and (.statement | test("shmat\\(\\) by id still succeeds"))' \
	"$tmp/shm-lifecycle.json" >/dev/null || fail "shm-lifecycle verdict: $(jq -c '[.verdict, .statement]' "$tmp/shm-lifecycle.json")"
# Nothing left behind.
if [ -n "${IPCX_TEST_IPCNS:-}" ]; then
	[ "$(shm_segments)" -eq "$segs_before" ] || fail "a System V segment was left behind"
else
	echo "(no private IPC namespace: System V segments not counted)"
fi
[ ! -e "/dev/shm/ipcx.lab-shm-$pid" ] || fail "the POSIX object was left behind"

# ---- atomic-xchg ------------------------------------------------------------
"$ipcx" lab run atomic-xchg --json >"$tmp/atomic-xchg.json" || fail "atomic-xchg exited $?"
check_shape atomic-xchg
g() { fact atomic-xchg "$1" || fail "atomic-xchg: no fact '$1'"; }
expected=$(g "expected count")
[ "$expected" -gt 0 ] || fail "expected count $expected"
# Unprotected: how many are lost depends on timing, but never more than all
# of them, and the count and the lost updates must add up.
unprot=$(g "unprotected count")
[ "$unprot" -le "$expected" ] && [ "$unprot" -gt 0 ] || fail "unprotected count $unprot of $expected"
[ $((unprot + $(g "unprotected lost updates"))) -eq "$expected" ] || fail "unprotected arithmetic"
# A spinlock loses nothing.
[ "$(g "xchg spinlock count")" -eq "$expected" ] || fail "xchg spinlock count $(g "xchg spinlock count")"
[ "$(g "xchg spinlock lost updates")" -eq 0 ] || fail "xchg spinlock lost updates"
if [ "$(uname -m)" = x86_64 ] || [ "$(uname -m)" = i686 ]; then
	[[ $(g instruction) == "x86 xchg"* ]] || fail "instruction: $(g instruction)"
	[ "$(g "lock xchg spinlock count")" -eq "$expected" ] || fail "lock xchg spinlock count"
	[ "$(g "lock xchg spinlock lost updates")" -eq 0 ] || fail "lock xchg spinlock lost updates"
	for k in "xchg uncontended" "lock xchg uncontended" "xchg spinlock time per increment" \
		"lock xchg spinlock time per increment"; do
		jq -e --arg k "$k" '.facts[] | select(.key == $k) | .unit == "ns" and .value > 0' \
			"$tmp/atomic-xchg.json" >/dev/null || fail "fact '$k' is not a positive ns figure"
	done
	jq -e '.verdict == "holds with corrections" and
		(.statement | test("lock prefix is not needed"))' "$tmp/atomic-xchg.json" >/dev/null ||
		fail "atomic-xchg verdict: $(jq -c '[.verdict, .statement]' "$tmp/atomic-xchg.json")"
else
	[[ $(g instruction) == "C11 atomic_exchange"* ]] || fail "instruction: $(g instruction)"
fi

# Text output of both, and an unknown experiment is a usage error.
"$ipcx" lab run shm-lifecycle | grep -q '^verdict: holds with corrections' || fail "text output"
set +e
"$ipcx" lab run no-such-experiment >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown experiment should exit 2"
echo "ok"
