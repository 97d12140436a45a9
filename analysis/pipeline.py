"""``analyze()``: measurement datasets in, evidence out (the analysis side that writes files).

::

    read_dataset (analysis.load)        files → compact columns (+ SHA-256 of every file)
    compute_verdicts (analysis.verdicts) → one verdict per measurement (rule_id, status, ...)
    attribute (analysis.attribution)     → locus, responsible_cc (+ localisations, optional)
    targets / pairs (analysis.evidence)  → the SPEC §6 tables
    write (analysis.outputs)             → verdicts.parquet, targets.parquet + .csv,
                                           pairs.parquet + .csv, analysis.json

Every output file is written to a temporary name and renamed when complete; the big ones in
threads of their own while the evidence tables are computed.  :func:`memory_tuning`
(:mod:`analysis.memory`) keeps freed memory in the process meanwhile.
``analysis.json`` names every input file with its size and SHA-256, the rules and fingerprint
versions, the window, counts, the period, the vantages (counts per country and per AS, never
addresses), the software version, when and by which command it was generated.

``python -m analysis.pipeline DATASET ... --out DIR`` runs it without the CLI (benchmarks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import evidence, rules
from analysis.attribution import attribute
from analysis.evidence import pairs_for_display
from analysis.load import Dataset, read_dataset
from analysis.memory import memory_tuning
from analysis.outputs import (
    OUTPUTS,
    VERDICT_COLUMNS,
    _atomic,
    _Background,
    _digest,
    _write_csv,
    _write_digested,
    _write_parquet,
    _write_targets_pairs,
)
from analysis.verdicts import FingerprintMatcher, Verdicts, compute_verdicts
from probe._version import __version__
from probe.errors import StoreError

Progress = Callable[[str, int, int], None]
__all__ = ["OUTPUTS", "VERDICT_COLUMNS", "AnalysisResult", "Evidence", "analyze", "memory_tuning"]


@dataclass
class AnalysisResult:
    """What :func:`analyze` produced."""

    out_dir: Path
    targets: pd.DataFrame
    pairs: pd.DataFrame
    counts: dict[str, Any]
    paths: dict[str, Path]
    skipped: list[dict[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def _window_text(window: timedelta) -> str:
    seconds = window.total_seconds()
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _counts_of(codes: np.ndarray, names: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(codes.astype(np.int64) + 1, minlength=len(names) + 1)[1:]  # -1: null
    return {str(names[i]): int(c) for i, c in enumerate(counts) if c}


def _cat_counts(series: pd.Series, mask: np.ndarray | None = None) -> dict[str, int]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        return _counts_of(
            codes if mask is None else codes[mask], [str(c) for c in series.cat.categories]
        )
    s = series if mask is None else series[mask]
    return {str(k): int(v) for k, v in s.value_counts(dropna=True).items()}


def _distinct_pairs(a: np.ndarray, b: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs of two code arrays (``0 <= b < nb``), as two arrays."""
    key = a.astype(np.int64) * nb + b
    if len(key) and int(key.max()) < 1 << 24:  # small code spaces: count, do not sort
        seen = np.flatnonzero(np.bincount(key))
    else:
        seen = pd.unique(key)
    return seen // nb, seen % nb


def _vantages(frame: pd.DataFrame) -> dict[str, Any]:
    """Vantage counts per country and per AS (ordinary vantages; never addresses)."""
    controls = frame["is_control"].to_numpy(bool)
    vids = frame["vantage_id"].cat.codes.to_numpy()
    own = ~controls & (vids >= 0)
    vid = vids[own].astype(np.int64)
    cc_names = [str(c) for c in frame["probe_cc"].cat.categories]
    cc = frame["probe_cc"].cat.codes.to_numpy()[own].astype(np.int64) + 1  # -1 (none): 0
    _, c_of = _distinct_pairs(vid, cc, len(cc_names) + 1)
    countries = np.bincount(c_of, minlength=len(cc_names) + 1)
    asn = frame["probe_asn"].to_numpy(dtype="float64", na_value=np.nan)[own]
    known = ~np.isnan(asn)
    a_codes, a_values = pd.factorize(asn[known])
    _, a_of = _distinct_pairs(vid[known], a_codes.astype(np.int64), max(len(a_values), 1))
    asns = np.bincount(a_of, minlength=len(a_values))
    ctrl_sources = vids[controls]
    return {
        "count": int(np.count_nonzero(np.bincount(vid))) if len(vid) else 0,
        "countries": {
            # a vantage without a country is counted under the last name, as before
            cc_names[c - 1]: int(countries[c])
            for c in sorted(range(len(countries)), key=lambda c: c - 1)
            if countries[c]
        },
        "asns": {str(int(a_values[k])): int(asns[k]) for k in np.argsort(a_values) if asns[k]},
        "control_records": int(controls.sum()),
        "control_sources": int(np.count_nonzero(np.bincount(ctrl_sources[ctrl_sources >= 0]))),
    }


def _iso(ts: Any) -> str | None:
    if ts is None or ts is pd.NaT:
        return None
    return pd.Timestamp(ts).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def analyze(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    window: timedelta = timedelta(hours=24),
    skip_bad: bool = False,
    fingerprints: FingerprintMatcher | None = None,
    progress: Progress | None = None,
    command: list[str] | None = None,
    localisations: pd.DataFrame | None = None,
    threads: int = 2,
    tune_memory: bool = True,
    engine: str = "pandas",
    scheduler: str | None = None,
    release_memory: bool = True,
) -> AnalysisResult:
    """Analyse the datasets ``inputs`` and write the evidence files into ``out_dir``.

    ``progress(stage, done, total)`` is called as the work advances.  A truncated, foreign or
    too new Parquet file raises :class:`probe.errors.DatasetError` naming it; with
    ``skip_bad`` it is skipped and listed in ``analysis.json["skipped"]``.  ``localisations``
    (from the routing analysis) refine unknown loci (:func:`analysis.attribution.attribute`).
    ``tune_memory`` applies :func:`memory_tuning` for the duration of the call; with
    ``release_memory=False`` (a command that ends right after) the heap is not trimmed.
    ``engine="dask"`` runs the same analysis on a Dask cluster (``scheduler``
    ``tcp://HOST:PORT``, else two local worker processes): :mod:`analysis.engine_dask`.
    """
    # -- engine dispatch (analysis.engine_dask) ------------------------------------------
    if engine != "pandas" or scheduler is not None:
        from probe.errors import ConfigError

        if engine == "pandas":
            raise ConfigError("--scheduler needs --engine dask")
        if engine != "dask":
            raise ConfigError(f"unknown engine {engine!r} (expected pandas or dask)")
        from analysis.engine_dask import analyze_dask

        return analyze_dask(
            inputs,
            out_dir,
            window=window,
            skip_bad=skip_bad,
            fingerprints=fingerprints,
            progress=progress,
            command=command,
            localisations=localisations,
            scheduler=scheduler,
        )
    # -- end of engine dispatch ------------------------------------------------------------
    with memory_tuning(tune_memory, trim=release_memory):
        return _analyze(
            inputs,
            out_dir,
            window=window,
            skip_bad=skip_bad,
            fingerprints=fingerprints,
            progress=progress,
            command=command,
            localisations=localisations,
            threads=threads,
        )


def _analyze(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    window: timedelta,
    skip_bad: bool,
    fingerprints: FingerprintMatcher | None,
    progress: Progress | None,
    command: list[str] | None,
    localisations: pd.DataFrame | None,
    threads: int,
) -> AnalysisResult:
    if window.total_seconds() <= 0:
        from probe.errors import ConfigError

        raise ConfigError("--window must be positive")
    from analysis.remote import localise_inputs

    inputs, remote_origin = localise_inputs([str(i) for i in inputs])
    hops_df = read_hops(inputs)
    ds = read_dataset(
        inputs,
        skip_bad=skip_bad,
        threads=threads,
        progress=progress,
        defer_hash=True,
        defer_pass=True,
    )
    try:
        if fingerprints is None:
            from analysis.fingerprints import load_fingerprints

            fingerprints = load_fingerprints()
        v: Verdicts = compute_verdicts(
            ds.columns,
            fingerprints=fingerprints,
            fetch=ds.fetcher,
            window=window,
            progress=progress,
        )
    except BaseException:
        ds.close()  # the background readers stop before the error goes up
        raise
    ds.release()  # the compact columns are no longer needed: free them before the evidence
    try:
        return _evidence(
            ds,
            v,
            out_dir,
            hops_df=hops_df,
            remote_origin=remote_origin,
            window=window,
            fingerprints=fingerprints,
            progress=progress,
            command=command,
            localisations=localisations,
        )
    finally:
        ds.close()  # (the hashing is done by then, unless an error came first)


def _evidence(
    ds: Dataset,
    v: Verdicts,
    out_dir: str | os.PathLike[str],
    *,
    hops_df: pd.DataFrame | None,
    remote_origin: dict[str, str],
    window: timedelta,
    fingerprints: FingerprintMatcher,
    progress: Progress | None,
    command: list[str] | None,
    localisations: pd.DataFrame | None,
) -> AnalysisResult:
    """Attribution, the evidence tables and every output file, from computed verdicts."""
    if progress is not None:
        progress("evidence", 0, 1)
    if localisations is None and hops_df is not None:
        from analysis.routes import localisations as localise

        localisations = localise(hops_df, v.frame)
    frame = attribute(v.frame, localisations)

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{out}: cannot create ({exc.strerror or exc})") from None
    paths: dict[str, Path] = {"verdicts.parquet": out / "verdicts.parquet"}
    for name in ("targets.parquet", "targets.csv", "pairs.parquet", "pairs.csv"):
        paths[name] = out / name
    # The big file is written (and hashed) in the background while the evidence tables are
    # computed; the targets files too, once the table exists, while the pairs are.
    keep = [c for c in VERDICT_COLUMNS if c in frame.columns]
    writers = [
        _Background(
            _write_digested,
            [paths["verdicts.parquet"]],
            _write_parquet,
            frame[keep],
            paths["verdicts.parquet"],
            "verdicts",
        )
    ]
    try:
        if progress is not None:
            progress("targets", 0, 1)
        targets_df = evidence.targets(frame, v.controls)
        # its two files in two threads: the verdicts writer is the only one still busy
        # by the time the pairs are done, so one thread would finish alone on one core
        tpq, tcsv = paths["targets.parquet"], paths["targets.csv"]
        writers.append(
            _Background(_write_digested, [tpq], _write_parquet, targets_df, tpq, "targets")
        )
        writers.append(_Background(_write_digested, [tcsv], _write_csv, targets_df, tcsv))
        if progress is not None:
            progress("pairs", 0, 1)
        pairs_df = evidence.pairs(targets_df, frame)
        if progress is not None:
            progress("write", 0, 1)
        _write_targets_pairs(pairs_df, out, "pairs")
        summary = frame_summary(frame)  # while the other files are still being written
    except BaseException:
        for w in writers:  # no thread outlives the call; the main thread's error is raised
            with contextlib.suppress(BaseException):
                w.result()
        raise
    if progress is not None:
        progress("wait-verdicts", 0, 1)
    digests: dict[Path, dict[str, Any]] = {}
    for w in writers:
        digests.update(w.result())
    files = ds.wait_hashes()  # hashed meanwhile, in the time the other threads left idle
    n_localised = 0 if localisations is None else len(localisations)
    return finish(
        out,
        paths,
        frame=frame,
        targets_df=targets_df,
        pairs_df=pairs_df,
        hops_df=hops_df,
        files=files,
        skipped=ds.skipped,
        remote_origin=remote_origin,
        n_localised=n_localised,
        window=window,
        fingerprints=fingerprints,
        command=command,
        progress=progress,
        summary=summary,
        digests=digests,
    )


def frame_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """What ``analysis.json`` reports of the verdicts themselves: the counts by status,
    mechanism, confidence and rule, the period and the vantages."""
    st = frame["status"]
    denied = (st == "denied").to_numpy(bool)
    t = frame["started_at"]
    return {
        "counts": {
            "measurements": len(frame),
            "control_records": int(frame["is_control"].sum()),
            "status": _cat_counts(st),
            "mechanism": _cat_counts(frame["mechanism"]),
            "mechanism_denied": _cat_counts(frame["mechanism"], denied),
            "confidence": _cat_counts(frame["confidence"], denied),
            "rule": _cat_counts(frame["rule_id"]),
        },
        "period": {
            "first": _iso(t.min()) if len(t) else None,
            "last": _iso(t.max()) if len(t) else None,
        },
        "vantages": _vantages(frame),
    }


@dataclass
class Evidence:
    """Verdicts (attributed) and evidence tables of an in-memory analysis."""

    verdicts: pd.DataFrame
    targets: pd.DataFrame
    pairs: pd.DataFrame


def finish(
    out: Path,
    paths: dict[str, Path],
    *,
    frame: pd.DataFrame,
    targets_df: pd.DataFrame,
    pairs_df: pd.DataFrame,
    hops_df: pd.DataFrame | None,
    files: list[Any],
    skipped: list[dict[str, str]],
    remote_origin: dict[str, str],
    n_localised: int,
    window: timedelta,
    fingerprints: FingerprintMatcher | None,
    command: list[str] | None,
    progress: Progress | None,
    engine: str = "pandas",
    summary: dict[str, Any] | None = None,
    digests: dict[Path, dict[str, Any]] | None = None,
) -> AnalysisResult:
    """The routes table, counts and ``analysis.json`` (shared by every engine).

    ``summary`` is :func:`frame_summary` of ``frame`` when the caller computed it already
    (the pandas engine does, while ``verdicts.parquet`` is still being written);
    ``digests`` the size and SHA-256 of outputs already hashed by their writers.
    """
    if hops_df is not None:
        from analysis.routes import routes_table

        paths["routes.parquet"], paths["routes.csv"] = _write_targets_pairs(
            routes_table(hops_df), out, "routes"
        )

    if summary is None:
        summary = frame_summary(frame)
    counts: dict[str, Any] = {
        **summary["counts"],
        "targets": {str(k): int(n) for k, n in targets_df["status"].value_counts().items()},
        "pairs": len(pairs_df),
        "files": len(files),
        "skipped_files": len(skipped),
        "hops": 0 if hops_df is None else len(hops_df),
        "localised": n_localised,
    }
    meta: dict[str, Any] = {
        "tool": "res64-probe analyze",
        "software_version": __version__,
        "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "command": list(command) if command is not None else None,
        "rules_version": rules.RULES_VERSION,
        "fingerprints_version": getattr(fingerprints, "version", None),
        "window": {"seconds": window.total_seconds(), "text": _window_text(window)},
        "inputs": [f.report() for f in files],
        "remote_inputs": remote_origin,
        "skipped": skipped,
        "period": summary["period"],
        "vantages": summary["vantages"],
        "counts": counts,
        "outputs": {name: (digests or {}).get(p) or _digest(p) for name, p in paths.items()},
        "rules": rules.rule_table(),
    }
    if engine != "pandas":
        meta["engine"] = engine
    if progress is not None:
        progress("json", 0, 1)
    paths["analysis.json"] = out / "analysis.json"
    text = json.dumps(meta, indent=1, ensure_ascii=False, default=str)
    _atomic(paths["analysis.json"], lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    if progress is not None:
        progress("write", 1, 1)
    return AnalysisResult(
        out_dir=out,
        targets=targets_df,
        pairs=pairs_df,
        counts=counts,
        paths=paths,
        skipped=skipped,
        meta=meta,
    )


def read_hops(inputs: Iterable[str]) -> pd.DataFrame | None:
    """The ``hops`` tables next to the given datasets (None when there is none)."""
    frames = []
    for item in inputs:
        p = Path(item)
        root = p.parent if p.name == "measurements" else p
        hops = root / "hops"
        if p.is_dir() and hops.is_dir() and any(hops.rglob("*.parquet")):
            try:
                df = pd.read_parquet(hops)
            except Exception as exc:
                from probe.errors import DatasetError

                raise DatasetError(f"{hops}: unreadable hops table ({exc})") from None
            for col in ("campaign", "probe_cc", "date"):
                if col in df:
                    df[col] = df[col].astype(str)
            frames.append(df)
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def analyze_table(
    table: pa.Table,
    *,
    window: timedelta = timedelta(hours=24),
    fingerprints: FingerprintMatcher | None = None,
    localisations: pd.DataFrame | None = None,
) -> Evidence:
    """Analyse an in-memory ``measurements`` table (``MEASUREMENTS`` schema, or the file
    schema plus ``campaign``/``probe_cc``) without writing anything: tests, small imports."""
    from analysis.load import TableFetcher, columns_from_table

    if fingerprints is None:
        from analysis.fingerprints import load_fingerprints

        fingerprints = load_fingerprints()
    v = compute_verdicts(
        columns_from_table(table),
        fingerprints=fingerprints,
        fetch=TableFetcher(table),
        window=window,
    )
    frame = attribute(v.frame, localisations)
    targets_df = evidence.targets(frame, v.controls)
    return Evidence(frame, targets_df, evidence.pairs(targets_df, frame))


# -- a small runner (benchmarks, debugging) ----------------------------------------------


def parse_window(value: str) -> timedelta:
    """``24h``, ``90m``, ``2d``, ``3600s`` or plain hours."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value.lower())
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 24h, got {value!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "": "hours"}[m.group(2)]
    return timedelta(**{unit: float(m.group(1))})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m analysis.pipeline", description=__doc__.split("\n")[0]
    )
    p.add_argument("inputs", nargs="+", help="dataset roots, measurements/ directories or files")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--window", type=parse_window, default=timedelta(hours=24))
    p.add_argument("--skip-bad", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    from probe.errors import ProbeError

    start = time.perf_counter()
    stages: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        stages.setdefault(stage, time.perf_counter() - start)

    try:
        res = analyze(
            args.inputs,
            args.out,
            window=args.window,
            skip_bad=args.skip_bad,
            command=["python", "-m", "analysis.pipeline", *(argv or sys.argv[1:])],
            threads=args.threads,
            progress=progress,
            release_memory=False,  # the process ends here
        )
    except ProbeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    n = res.counts["measurements"]
    print(
        json.dumps(
            {
                "rows": n,
                "seconds": round(elapsed, 3),
                "rows_per_second": round(n / elapsed, 1),
                "stages_started_at": {k: round(v, 2) for k, v in stages.items()},
            }
        )
    )
    for row in pairs_for_display(res.pairs)[:20]:
        print("  ".join(f"{k}={v}" for k, v in row.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
