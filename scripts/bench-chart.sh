#!/usr/bin/env bash
# Chart ipcx bench results with gnuplot:
#   ipcx bench --json > results.jsonl
#   scripts/bench-chart.sh results.jsonl chart.png [SIZE]
# Two panels for one message size (default 64): ping-pong p50 and p99 one-way
# latency, and stream rate, one bar per mechanism, log scales.  The machine
# line of the results becomes the title.
set -euo pipefail
in=${1:?usage: bench-chart.sh RESULTS.jsonl OUT.png [SIZE]}
out=${2:?usage: bench-chart.sh RESULTS.jsonl OUT.png [SIZE]}
size=${3:-64}
command -v gnuplot >/dev/null || { echo "bench-chart: gnuplot is not installed (scripts/install-deps.sh)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$in" "$size" "$tmp" <<'PY'
import json, sys
src, size, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
title, lat, rate = "ipcx bench", [], []
for line in open(src):
    r = json.loads(line)
    if r.get("type") == "machine":
        title = f'{r["cpu_model"]}, {r["cpus"]} CPUs, {r["kernel"]}, virtualised: {r["virtualized"]}, {r["date"]}'
    elif r.get("status") == "ok" and r["size"] == size and r["producers"] == 1 and r["consumers"] == 1:
        if r["mode"] == "pingpong":
            lat.append((r["mech"], r["p50_ns"], r["p99_ns"]))
        else:
            rate.append((r["mech"], r["msgs_per_s"]))
with open(f"{tmp}/lat.dat", "w") as f:
    for m, p50, p99 in lat:
        f.write(f'"{m}" {p50} {p99}\n')
with open(f"{tmp}/rate.dat", "w") as f:
    for m, v in rate:
        f.write(f'"{m}" {v}\n')
with open(f"{tmp}/title", "w") as f:
    f.write(title.replace('"', "'"))
if not lat and not rate:
    sys.exit(f"bench-chart: no successful {size}-byte rows in {src}")
PY
title=$(cat "$tmp/title")
gnuplot <<GP
set terminal pngcairo size 1400,900 font ",10"
set output "$out"
set multiplot layout 2,1 title "ipcx bench, ${size}-byte messages\n{/*0.8 $title}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30 noenhanced
set logscale y
set grid ytics
set ylabel "one-way latency (ns), log scale"
set title "ping-pong: p50 and p99 (lower is better)"
plot "$tmp/lat.dat" using 2:xtic(1) title "p50", "" using 3 title "p99"
set ylabel "messages/s, log scale"
set title "stream, 1 producer : 1 consumer (higher is better)"
plot "$tmp/rate.dat" using 2:xtic(1) title "msgs/s" lc rgb "#3a7d44"
unset multiplot
GP
echo "bench-chart: wrote $out"
