#!/usr/bin/env bash
# scripts/bench-chart.sh turns `ipcx bench --json` into a PNG (skipped when
# gnuplot is missing).
set -u
ipcx=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
command -v gnuplot >/dev/null || { echo "no gnuplot: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
"$ipcx" bench --mech floor,ipcx-ring-adaptive --size 64 --seconds 0.05 --json > "$tmp/r.jsonl" || fail "bench"
"$src/scripts/bench-chart.sh" "$tmp/r.jsonl" "$tmp/c.png" >/dev/null || fail "chart"
[ "$(head -c 8 "$tmp/c.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "not a PNG"
[ "$(stat -c %s "$tmp/c.png")" -gt 10000 ] || fail "PNG too small to hold the chart"
# No rows of that size: a clear error, non-zero.
"$src/scripts/bench-chart.sh" "$tmp/r.jsonl" "$tmp/d.png" 12345 2>/dev/null && fail "empty chart accepted"
echo "chart: ok"
