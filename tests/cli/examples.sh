#!/usr/bin/env bash
# The examples build (CMake builds them next to the tool) and do what they say.
set -u
dir=$(dirname "$1")/examples
fail() { echo "FAIL: $*" >&2; exit 1; }
out=$(timeout 20 "$dir/ring_pingpong") || fail "ring_pingpong exited $?"
[ "$(echo "$out" | wc -l)" -eq 3 ] || fail "ring_pingpong printed: $out"
echo "$out" | grep -q 'hello #3 -> pong for "hello #3"' || fail "ring_pingpong printed: $out"
for ex in "$dir"/*; do
	case $(basename "$ex") in ring_pingpong) continue ;; esac
	[ -x "$ex" ] || continue
	timeout 60 "$ex" >/dev/null || fail "$(basename "$ex") exited $?"
done
echo "examples: ok"
