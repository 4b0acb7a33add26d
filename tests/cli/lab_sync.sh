#!/usr/bin/env bash
# ipcx lab: the synchronization and shared-memory experiments, black-box
# through --json.  Checks the JSON shape, the deterministic outcomes (aba,
# correctness of both producer-consumer solutions, page sizes read back, the
# hugetlb pool restored) and never a speed.
source "$(dirname "$0")/common.bash"

for e in spin-vs-sem producer-consumer aba hugepages priority-inversion; do
	"$ipcx" lab list | grep -q "^$e " || fail "lab list lacks $e"
done

run() {
	timeout 120 "$ipcx" lab run "$1" --json >"$tmp/$1.json" || fail "$1 exited $?: $(cat "$tmp/$1.json")"
	[ "$(wc -l <"$tmp/$1.json")" -eq 1 ] || fail "$1: not one JSON line"
	jq -e --arg n "$1" '
		.name == $n and (.claim | length > 20) and (.facts | length > 2) and
		(.verdict | IN("holds", "does not hold", "holds with corrections", "inconclusive")) and
		(has("error") | not)' "$tmp/$1.json" >/dev/null || fail "$1: JSON: $(cat "$tmp/$1.json")"
}
verdict() { jq -r .verdict "$tmp/$1.json"; }
fact() { jq -r --arg k "$2" '.facts[] | select(.key == $k) | .value' "$tmp/$1.json"; }

# aba: forced interleaving, so the outcome is the same every run.
run aba
[ "$(verdict aba)" = holds ] || fail "aba: $(cat "$tmp/aba.json")"
[ "$(fact aba "bare index: node B")" = "both on the stack and in use" ] || fail "aba: naive stack"
[[ $(fact aba "bare index: next pop returns") == "B -- already held by I"* ]] || fail "aba: pop"
[ "$(fact aba "index + version: stack after the schedule")" = C ] || fail "aba: fixed stack"

# producer-consumer: both solutions deliver everything once, in order.
run producer-consumer
[ "$(verdict producer-consumer)" != "does not hold" ] || fail "producer-consumer lost items"
n=$(jq '[.facts[] | select(.value | test("all delivered once, in order"))] | length' \
	"$tmp/producer-consumer.json")
[ "$n" -eq 9 ] || fail "producer-consumer: $n of 9 runs correct"

# hugepages: page sizes are read back; the pool is as it was.
pool=$(cat /proc/sys/vm/nr_hugepages)
run hugepages
[ "$(cat /proc/sys/vm/nr_hugepages)" = "$pool" ] || fail "hugepages left the pool changed"
[[ $(fact hugepages "4 KiB pages") == *"page size 4 KiB (read back)" ]] || fail "4 KiB row"
h=$(fact hugepages hugetlb)
[[ $h == *"page size 2048 KiB (read back)" || $h == unavailable* || $h == "not obtained"* ]] ||
	fail "hugetlb row: $h"
[ -n "$(fact hugepages "dTLB miss counter")" ] || grep -q "dTLB misses/access" "$tmp/hugepages.json" ||
	fail "hugepages says nothing about TLB counters"

# priority-inversion: real-time priorities or a statement why not.
run priority-inversion
case $(verdict priority-inversion) in
inconclusive) [ -n "$(fact priority-inversion SCHED_FIFO)" ] || fail "no reason given" ;;
*) [ -n "$(fact priority-inversion "H's wait with priority inheritance")" ] || fail "no wait" ;;
esac

# spin-vs-sem: every lock kind measured, no count mismatch.
run spin-vs-sem
for k in spin futex-mutex posix-sem sysv-sem; do
	jq -e --arg k "$k" '[.facts[] | select(.key | startswith("hand-off p50 " + $k + ", 1 CPU"))] | length == 1' \
		"$tmp/spin-vs-sem.json" >/dev/null || fail "spin-vs-sem: no hand-off for $k"
	jq -e --arg k "$k" '[.facts[] | select(.key | startswith($k + ", ")) | .value | test("acq/s")] | length == 3' \
		"$tmp/spin-vs-sem.json" >/dev/null || fail "spin-vs-sem: throughput rows for $k"
done
echo "lab sync: ok"
