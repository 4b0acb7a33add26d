#!/usr/bin/env bash
# Black-box: ipcx bench runs the floor and ring rows, prints JSON and CSV with
# the promised fields, and every case passes its sequence checks.
set -u
ipcx=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
mechs=floor,ipcx-ring-spin,ipcx-ring-adaptive,ipcx-ring-block,ipcx-ring-zerocopy
"$ipcx" bench --mech $mechs --size 64,65536 --seconds 0.05 --json > /tmp/ipcx-bench-$$.json ||
	fail "bench exited $?"
python3 - /tmp/ipcx-bench-$$.json <<'PY' || fail "bad JSON"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
m = lines[0]
assert m["type"] == "machine" and m["cpus"] >= 1 and m["kernel"] and "virtualized" in m, m
rows = lines[1:]
assert len(rows) == 5 * 2 * 2, len(rows)
for r in rows:
    assert r["status"] == "ok", r
    if r["mode"] == "pingpong":
        assert 0 < r["p50_ns"] <= r["p99_ns"] <= r["p999_ns"] <= r["max_ns"], r
    else:
        assert r["msgs_per_s"] > 0 and r["mib_per_s"] > 0 and r["cpu_ns_per_msg"] > 0, r
        assert r["csw_per_msg"] >= 0, r
PY
rm -f /tmp/ipcx-bench-$$.json
"$ipcx" bench --mech floor --size 64 --seconds 0.05 --csv | python3 -c "
import csv, sys
rows = list(csv.DictReader(l for l in sys.stdin if not l.startswith('#')))
assert len(rows) == 2 and all(r['status'] == 'ok' for r in rows), rows
" || fail "bad CSV"
"$ipcx" bench --mech floor --size 64 --mode pingpong --seconds 0.05 | grep -q "^floor .*64 B" ||
	fail "table"
# --repeat: the median of the rounds, and every round's figure beside it;
# in-place rows say so.
"$ipcx" bench --mech floor,ipcx-ring-zerocopy --size 64 --seconds 0.05 --repeat 3 --json | python3 -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin][1:]
assert len(rows) == 4, rows
for r in rows:
    k = 'round_p50_ns' if r['mode'] == 'pingpong' else 'round_msgs_per_s'
    v = r[k]
    assert len(v) == 3 and sorted(v)[1] == r[k.replace('round_', '')], r
    assert r.get('in_place', False) == (r['mech'] == 'ipcx-ring-zerocopy'), r
" || fail "rounds or in_place"
# Too-small messages cannot carry the check stamp: skipped with the reason.
"$ipcx" bench --mech floor --size 8 --seconds 0.05 --json | grep -q '"status":"skipped","reason":"messages under' ||
	fail "no skip reason"
"$ipcx" bench --mech no-such-mech 2>/dev/null; [ $? -eq 2 ] || fail "unknown mech must exit 2"
echo "bench smoke: ok"
