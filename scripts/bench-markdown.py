#!/usr/bin/env python3
"""Turn `ipcx bench --json` output into the Markdown tables of the README.

    ipcx bench --json > results.jsonl
    scripts/bench-markdown.py results.jsonl [SIZE ...]

Ratios are taken within the run: `vs floor` is latency / floor's (lower is
better) or rate / floor's; `vs pipe` is how many times better than pipe.
With several rounds each ratio is the median of the rounds' own ratios (as
`ipcx bench` prints them), so that machine drift between rounds cancels.
"""
import json
import sys


def ns(v):
    if v < 1e3:
        return f"{v:.0f} ns"
    if v < 1e6:
        return f"{v / 1e3:.1f} µs"
    return f"{v / 1e6:.2f} ms"


def rate(v):
    if v >= 1e6:
        return f"{v / 1e6:.1f} M/s"
    if v >= 1e3:
        return f"{v / 1e3:.0f} k/s"
    return f"{v:.0f}/s"


def paired(a, b, inverse):
    """Median over rounds of a/b (b/a if inverse), the headline figure of
    each mode; the ratio of the medians when the rounds are not there."""
    key = "round_p50_ns" if a["mode"] == "pingpong" else "round_msgs_per_s"
    med = "p50_ns" if a["mode"] == "pingpong" else "msgs_per_s"
    xs, ys = a.get(key, [a[med]]), b.get(key, [b[med]])
    rs = sorted((y / x if inverse else x / y) for x, y in zip(xs, ys) if x > 0 and y > 0)
    if not rs:
        return None
    m = len(rs)
    return rs[m // 2] if m % 2 else (rs[m // 2 - 1] + rs[m // 2]) / 2


def human(size):
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows, machine = [], None
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if r.get("type") == "machine":
            machine = r
        else:
            rows.append(r)
    sizes = [int(s) for s in sys.argv[2:]] or sorted({r["size"] for r in rows})
    if machine:
        print(f'Measured {machine["date"]} on {machine["cpu_model"]}, {machine["cpus"]} CPUs, '
              f'{machine["kernel"]}, virtualised: {machine["virtualized"]}; '
              f'{machine["seconds"]} s per case, median of {machine["repeat"]} run(s).\n')

    def ref(name, mode, size):
        for r in rows:
            if (r["mech"], r["mode"], r["size"], r["producers"], r["consumers"]) == (name, mode, size, 1, 1) \
                    and r["status"] == "ok":
                return r
        return None

    any_in_place = False
    for size in sizes:
        pp = [r for r in rows if r["mode"] == "pingpong" and r["size"] == size]
        st = [r for r in rows if r["mode"] == "stream" and r["size"] == size]
        if pp:
            fl, pi = ref("floor", "pingpong", size), ref("pipe", "pingpong", size)
            print(f"**Ping-pong, {human(size)}** (one-way latency = round trip / 2)\n")
            print("| mechanism | p50 | p99 | p99.9 | vs floor | vs pipe |")
            print("|---|---:|---:|---:|---:|---:|")
            for r in pp:
                if r["status"] != "ok":
                    print(f'| {r["mech"]} | {r["status"]}: {r.get("reason", "")} | | | | |')
                    continue
                vf = f'{paired(r, fl, False):.2f}×' if fl else ""
                vp = f'{paired(r, pi, True):.0f}×' if pi else ""
                print(f'| {r["mech"]} | {ns(r["p50_ns"])} | {ns(r["p99_ns"])} | {ns(r["p999_ns"])} | {vf} | {vp} |')
            print()
        if st:
            fl, pi = ref("floor", "stream", size), ref("pipe", "stream", size)
            print(f"**Stream, {human(size)}**\n")
            print("| mechanism | P:C | messages/s | MiB/s | CPU per message | vs floor | vs pipe |")
            print("|---|---|---:|---:|---:|---:|---:|")
            for r in st:
                pc = f'{r["producers"]}:{r["consumers"]}'
                if r["status"] != "ok":
                    print(f'| {r["mech"]} | {pc} | {r["status"]}: {r.get("reason", "")} | | | | |')
                    continue
                vf = f'{paired(r, fl, False):.2f}×' if fl else ""
                vp = f'{paired(r, pi, False):.1f}×' if pi else ""
                mark = "*" if r.get("in_place") else ""
                any_in_place = any_in_place or bool(mark)
                print(f'| {r["mech"]} | {pc} | {rate(r["msgs_per_s"])} | {r["mib_per_s"]:.0f}{mark} | '
                      f'{ns(r["cpu_ns_per_msg"])} | {vf} | {vp} |')
            print()
    if any_in_place:
        print("\\* handed over in place, not copied: MiB/s counts the bytes made available, not bytes moved.\n")


if __name__ == "__main__":
    main()
