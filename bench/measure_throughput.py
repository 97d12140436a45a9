"""Throughput of ``res64 measure`` on the loopback world, against curl in the same run.

2,000 targets (half HTTPS) served by the bulk lab world in a separate process; the probe runs
at concurrency 100 from one vantage.  As a baseline, the same URLs are fetched by ``curl``
driven in parallel (``xargs -P 100``), pinned to the same addresses (``--resolve``), the same
source address and the same CA.  Prints measurements/s, probe CPU ms per measurement, peak RSS
and the ratio to curl.  Only loopback traffic.

    python bench/measure_throughput.py [--targets 2000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import child_env, lab_process, world_flags


def _run_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, int]:
    """(wall s, cpu s of the process tree, peak RSS KiB of the largest process, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(err[-2000:], file=sys.stderr)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=100)
    args = ap.parse_args()
    if not shutil.which("curl") or not shutil.which("xargs"):
        print("curl and xargs are needed for the baseline", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="res64-bench-") as td:
        tmp = Path(td)
        with lab_process(tmp / "world", world="bulk", bulk_n=args.targets) as w:
            vantage = w["vantages"][0]
            site_ip = {s["hostname"]: s["address"] for s in w["spec"]["sites"]}
            with open(w["targets_csv"]) as fh:
                urls = [r["url"] for r in csv.DictReader(fh)]

            # --- baseline: curl, same URLs, same addresses, same source, same CA ---
            argfile = tmp / "curl-args.txt"
            with argfile.open("w") as f:
                for u in urls:
                    p = urlsplit(u)
                    f.write(
                        f"-s -o /dev/null --max-time 10 --cacert {w['ca_bundle']} "
                        f"--interface {vantage['source_ip']} --compressed "
                        f"--resolve {p.hostname}:{p.port}:{site_ip[p.hostname]} {u}\n"
                    )
            curl_cmd = ["xargs", "-a", str(argfile), "-P", str(args.concurrency), "-L", "1", "curl"]

            # --- res64 measure ---
            out = tmp / "out"
            probe_cmd = [
                sys.executable, "-m", "probe.cli", "measure", w["targets_csv"], "--out", str(out),
                "-q", "--concurrency", str(args.concurrency), "--timeout", "10",
                *world_flags(w, vantage),
            ]  # fmt: skip
            env = child_env(tmp)
            # warm-up of both (page cache, imports), then alternate
            _run_timed(curl_cmd)
            results = {"res64": [], "curl": []}
            for _ in range(2):
                shutil.rmtree(out, ignore_errors=True)
                results["res64"].append(_run_timed(probe_cmd, env))
                results["curl"].append(_run_timed(curl_cmd))
            import pandas as pd

            df = pd.read_parquet(out / "measurements")
            ok = int(df["failure"].isna().sum())
    n = args.targets
    best = {k: min(v, key=lambda r: r[0]) for k, v in results.items()}
    pw, pcpu, prss, pcode = best["res64"]
    cw, ccpu, crss, _ = best["curl"]
    print(f"targets: {n} (half https), concurrency {args.concurrency}, world in its own process")
    print(f"res64 measure: {n / pw:8.1f} measurements/s  wall {pw:6.2f} s  "
          f"cpu {pcpu * 1000 / n:5.2f} ms/measurement  peak RSS {prss / 1024:6.1f} MiB  "
          f"ok {ok}/{n}  exit {pcode}")  # fmt: skip
    print(f"curl (xargs):  {n / cw:8.1f} fetches/s       wall {cw:6.2f} s  "
          f"cpu {ccpu * 1000 / n:5.2f} ms/fetch        "
          f"peak RSS {crss / 1024:6.1f} MiB (one curl)")  # fmt: skip
    print(f"ratio res64/curl throughput: {(n / pw) / (n / cw):.2f}x  (best of 2 runs each)")
    print("note: res64 does 4 DNS queries (system + control resolver, A + AAAA), TCP, TLS and "
          "HTTP per target; curl skips DNS (--resolve).")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
