"""Traceroute throughput in the network-namespace world, against scamper in the same run.

Builds the lab world of ``tests/lab/world.py`` (root only), then traces ``--targets``
addresses of the server namespace's AnyIP range (203.0.113.0/24; 5 hops from vantage A,
one of them a ``*`` hop) from vantage A at ``--pps`` packets per second: first with
res64 (``python -m tests.lab.entry trace``), then with scamper (TCP, 2 tries, 1 s wait,
gap limit 5: the same stopping rule).  Prints wall time and packets of both, the ratio, and
whether the hop lists are identical.  Every namespace is removed at the end.

    sudo python bench/trace_throughput.py [--targets 200] [--pps 200]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.lab import world as W

BAR = 1.2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--pps", type=int, default=200)
    args = ap.parse_args()
    why = W.missing_tools()
    if why is not None:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    net = ipaddress.ip_network(W.BENCH_NET)
    ips = [str(ip) for ip in list(net.hosts())[: args.targets]]
    with (
        tempfile.TemporaryDirectory(prefix="res64-trace-bench-") as td,
        W.world_context(Path(td)) as world,
    ):
        t0 = time.perf_counter()
        text = world.python(
            "vA", "tests.lab.entry", "trace", str(Path(td) / "out"), str(world.overrides),
            "IR", str(args.pps), "tcp", "443", *ips, timeout=600,
        )  # fmt: skip
        ours_proc = time.perf_counter() - t0
        ours = json.loads(text)

        t0 = time.perf_counter()
        p = subprocess.run(
            world.exec_args("vA", "scamper", "-O", "json", "-p", str(args.pps), "-c",
                            "trace -P tcp -d 443 -q 2 -w 1 -g 5", "-i", *ips),
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        scamper_wall = time.perf_counter() - t0
    ref: dict[str, set[tuple[int, str]]] = {}
    scamper_packets = 0
    for line in p.stdout.splitlines():
        doc = json.loads(line)
        if doc.get("type") == "trace":
            ref[doc["dst"]] = {(h["probe_ttl"], h["addr"]) for h in doc.get("hops", [])}
            scamper_packets += int(doc.get("probe_count", 0))
    mine = {
        dst: {(ttl, ip) for ttl, ip, kind, *_ in hops if kind != "none"}
        for dst, hops in ours["hops"].items()
    }
    same = mine == ref and len(mine) == len(ips)
    differing = sorted(d for d in set(mine) | set(ref) if mine.get(d) != ref.get(d))
    ratio_trace = ours["wall_s"] / scamper_wall
    ratio_proc = ours_proc / scamper_wall
    print(f"destinations          {len(ips)} at {args.pps} pps, from vantage A (5 hops, one '*')")
    print(f"res64   wall (trace)  {ours['wall_s']:.2f} s   packets {ours['packets_sent']}")
    print(f"res64   wall (process, python start-up and Parquet included)  {ours_proc:.2f} s")
    print(f"scamper wall (process) {scamper_wall:.2f} s   packets {scamper_packets}")
    print(f"ratio res64/scamper   {ratio_trace:.2f} (trace)  {ratio_proc:.2f} (process)")
    print(f"hop lists identical   {same}" + (f" (differ: {differing[:5]})" if differing else ""))
    ok = same and ratio_proc <= BAR
    print(f"bar (<= {BAR}x scamper's wall time, identical hop lists): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
