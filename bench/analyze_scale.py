"""Benchmark: ``analyze`` on a large synthetic dataset, against DuckDB in the same run.

::

    python -m bench.analyze_scale                # 10 million measurements (cached in bench/out)
    python -m bench.analyze_scale --rows 200000  # a quick run

The dataset comes from :mod:`bench.synth` (deterministic, the real hive layout and file
schema, zstd) and is cached under ``bench/out/synth-<rows>/``.  The analysis runs in a
subprocess (``python -m analysis.pipeline``) whose wall time and peak RSS are measured
(``os.wait4`` gives that child's own resource usage).  The baseline, in another subprocess,
is DuckDB computing per-(country, URL) counts of accessible and failed measurements from the
same files (``read_parquet`` with ``hive_partitioning``).  Both rates are printed with their
ratio and the bar: at least one million rows per second end to end, at most 4 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.synth import SynthConfig, ensure_dataset

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"
BAR_ROWS_PER_SECOND = 1_000_000
BAR_RSS_BYTES = 4 << 30

_DUCKDB = """
import sys, time, duckdb
root = sys.argv[1]
t = time.perf_counter()
con = duckdb.connect()
rows = con.sql(f'''
    SELECT probe_cc, url,
           count(*) AS n,
           count(*) FILTER (WHERE failure IS NULL AND http_status BETWEEN 200 AND 399) AS ok,
           count(*) FILTER (WHERE failure IS NOT NULL) AS failed
    FROM read_parquet('{root}/measurements/**/*.parquet', hive_partitioning = true)
    WHERE NOT is_control
    GROUP BY ALL
''').fetchall()
files = f"{root}/measurements/**/*.parquet"
total = con.sql(f"SELECT count(*) FROM read_parquet('{files}')").fetchall()[0][0]
print(len(rows), total, time.perf_counter() - t)
"""


def _run(cmd: list[str]) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS bytes, exit status, stdout) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(err[-4000:])
    return wall, usage.ru_maxrss * 1024, proc.returncode, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=SynthConfig.rows)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-duckdb", action="store_true", help="skip the baseline")
    args = p.parse_args(argv)

    cfg = SynthConfig(rows=args.rows)
    data = args.out / f"synth-{args.rows}"
    t = time.perf_counter()
    summary = ensure_dataset(data, cfg)
    made = time.perf_counter() - t
    print(
        f"dataset: {summary.rows:,} rows, {summary.files} files, "
        f"{summary.bytes / 1e6:,.0f} MB ({data}; ready in {made:.1f} s)"
    )
    result = args.out / f"analysis-{args.rows}"
    shutil.rmtree(result, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "analysis.pipeline",
        str(data),
        "--out",
        str(result),
        "--threads",
        str(args.threads),
    ]
    wall, rss, status, out = _run(cmd)
    if status != 0:
        print(f"analysis failed (exit {status})")
        return 1
    rate = summary.rows / wall
    print(
        f"analyze : {wall:7.2f} s  {rate:12,.0f} rows/s  peak RSS {rss / 2**30:5.2f} GiB "
        f"(inside: {json.loads(out.splitlines()[-1])['seconds']:.2f} s)"
    )
    report: dict[str, object] = {
        "rows": summary.rows,
        "files": summary.files,
        "dataset_bytes": summary.bytes,
        "analyze_seconds": round(wall, 3),
        "analyze_rows_per_second": round(rate),
        "analyze_peak_rss_bytes": rss,
    }
    if not args.no_duckdb:
        dwall, drss, dstatus, dout = _run([sys.executable, "-c", _DUCKDB, str(data)])
        if dstatus == 0:
            groups, total, inner = dout.split()
            drate = int(total) / dwall
            print(
                f"duckdb  : {dwall:7.2f} s  {drate:12,.0f} rows/s  peak RSS "
                f"{drss / 2**30:5.2f} GiB ({groups} country-URL groups; query {float(inner):.2f} s)"
            )
            print(f"ratio   : analyze is {dwall / wall:.2f}x the speed of the DuckDB baseline")
            report.update(
                duckdb_seconds=round(dwall, 3),
                duckdb_rows_per_second=round(drate),
                duckdb_peak_rss_bytes=drss,
                ratio=round(dwall / wall, 3),
            )
        else:
            print("duckdb baseline failed")
    ok_rate = rate >= BAR_ROWS_PER_SECOND
    ok_rss = rss <= BAR_RSS_BYTES
    print(
        f"bar     : >= {BAR_ROWS_PER_SECOND:,} rows/s: {'PASS' if ok_rate else 'FAIL'}; "
        f"peak RSS <= 4 GiB: {'PASS' if ok_rss else 'FAIL'}"
    )
    report.update(bar_rate=ok_rate, bar_rss=ok_rss)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"analyze_scale-{args.rows}.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
