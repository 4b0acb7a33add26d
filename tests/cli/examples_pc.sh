#!/usr/bin/env bash
# The producer-consumer examples: the semaphore bounded buffer and the same
# workload on the ipcx queue, for several N x M shapes; each checks that every
# item arrived once and in order per producer and exits non-zero otherwise.
set -euo pipefail
dir="$(dirname "$1")/examples"
[ -x "$dir/bounded_buffer" ] && [ -x "$dir/queue_pc" ] || { echo "examples not built"; exit 77; }
for shape in "1 1 200000" "3 2 100000" "2 5 50000" "8 8 10000"; do
	for ex in bounded_buffer queue_pc; do
		# shellcheck disable=SC2086
		out=$(timeout 60 "$dir/$ex" $shape) || { echo "FAIL: $ex $shape: $out"; exit 1; }
		echo "$out"
		grep -q "all delivered once, in order" <<<"$out"
	done
done
# A wrong shape is a usage error, not a hang.
set +e
"$dir/queue_pc" 0 1 >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: bad usage accepted"; exit 1; }
echo ok
