"""Benchmark: the pandas engine against the Dask engine (2-worker LocalCluster), same run.

::

    python -m bench.analyze_dask                # 10 million measurements (cached in bench/out)
    python -m bench.analyze_dask --rows 200000  # a quick run

The dataset comes from :mod:`bench.synth` (cached under ``bench/out/synth-<rows>/``).  Each
engine runs in a subprocess of its own.  The pandas engine is ``python -m analysis.pipeline``;
its wall time and peak RSS come from ``os.wait4``.  The Dask run starts a
``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` on 127.0.0.1 and calls
``analyze(..., engine="dask")``; it reports its own peak RSS (the driver) and each worker's
(``getrusage`` inside the worker, via ``Client.run``).  Both times, every peak and the ratio
are printed, and the counts of both ``analysis.json`` are checked equal.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.synth import SynthConfig, ensure_dataset

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"


def _run(cmd: list[str]) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS bytes of the child, exit status, stdout) of one child process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if rc != 0:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace")[-4000:])
    return wall, usage.ru_maxrss * 1024, rc, out


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def dask_child(data: Path, result: Path) -> int:
    """The Dask run (in its own process): one JSON line with times and peaks."""
    from distributed import Client, LocalCluster

    from analysis.pipeline import analyze

    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        res = analyze([data], result, engine="dask", scheduler=cluster.scheduler_address)
        seconds = time.perf_counter() - t1
        workers = client.run(_peak_rss)
    print(
        json.dumps(
            {
                "rows": res.counts["measurements"],
                "seconds": round(seconds, 3),
                "cluster_start_seconds": round(started, 3),
                "driver_peak_rss_bytes": _peak_rss(),
                "worker_peak_rss_bytes": sorted(workers.values()),
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=SynthConfig.rows)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--dask-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.dask_child:
        return dask_child(*args.dask_child)

    data = args.out / f"synth-{args.rows}"
    t = time.perf_counter()
    summary = ensure_dataset(data, SynthConfig(rows=args.rows))
    print(
        f"dataset: {summary.rows:,} rows, {summary.files} files, "
        f"{summary.bytes / 1e6:,.0f} MB ({data}; ready in {time.perf_counter() - t:.1f} s)"
    )
    gib = 2**30
    res_pd = args.out / f"analysis-{args.rows}-pandas"
    res_dk = args.out / f"analysis-{args.rows}-dask"
    for d in (res_pd, res_dk):
        shutil.rmtree(d, ignore_errors=True)

    cmd = [sys.executable, "-m", "analysis.pipeline", str(data), "--out", str(res_pd)]
    pd_wall, pd_rss, status, _ = _run(cmd)
    if status != 0:
        print(f"pandas engine failed (exit {status})")
        return 1
    print(f"pandas : {pd_wall:7.2f} s  peak RSS {pd_rss / gib:5.2f} GiB (one process)")

    cmd = [sys.executable, "-m", "bench.analyze_dask", "--rows", str(args.rows)]
    cmd += ["--out", str(args.out), "--dask-child", str(data), str(res_dk)]
    dk_wall, _, status, out = _run(cmd)
    if status != 0:
        print(f"dask engine failed (exit {status})")
        return 1
    info = json.loads(out.splitlines()[-1])
    workers = ", ".join(f"{w / gib:.2f}" for w in info["worker_peak_rss_bytes"])
    print(
        f"dask   : {info['seconds']:7.2f} s  analysis (+{info['cluster_start_seconds']:.2f} s "
        f"cluster start; {dk_wall:.2f} s process)  peak RSS driver "
        f"{info['driver_peak_rss_bytes'] / gib:.2f} GiB, workers {workers} GiB"
    )
    ratio = pd_wall / info["seconds"]
    print(f"ratio  : dask is {ratio:.2f}x the speed of pandas (pandas s / dask analysis s)")

    same = (
        json.loads((res_pd / "analysis.json").read_text())["counts"]
        == json.loads((res_dk / "analysis.json").read_text())["counts"]
    )
    print(f"counts : {'identical' if same else 'DIFFERENT'}")
    report = {
        "rows": summary.rows,
        "files": summary.files,
        "pandas_seconds": round(pd_wall, 3),
        "pandas_peak_rss_bytes": pd_rss,
        "dask_seconds": info["seconds"],
        "dask_process_seconds": round(dk_wall, 3),
        "dask_cluster_start_seconds": info["cluster_start_seconds"],
        "dask_driver_peak_rss_bytes": info["driver_peak_rss_bytes"],
        "dask_worker_peak_rss_bytes": info["worker_peak_rss_bytes"],
        "ratio": round(ratio, 3),
        "counts_identical": same,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"analyze_dask-{args.rows}.json").write_text(json.dumps(report, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
