"""The Dask execution layer of ``analyze()``: the same analysis, partitioned by hostname.

A verdict depends only on the measurements of the same URL (controls are other countries'
measurements of that URL within the window) and DNS consistency compares answers for the same
hostname, so splitting the measurements by hostname gives exactly the verdicts of the whole.

::

    driver                                  worker k of N (one Dask task each)
    ------                                  ----------------------------------
    discover inputs, read hops              scan every file (first pass, as read_dataset)
    submit N tasks ───────────────────────► keep rows with crc32(hostname) % N == k
    hash the input files meanwhile          compute_verdicts → localise → attribute → targets
    gather ◄─────────────────────────────── (global row numbers, verdict frame, targets)
    verdicts in file order, targets sorted
    pairs on the whole frame, write the same files as the pandas engine

The analysis functions are the pandas engine's own (:func:`analysis.verdicts.compute_verdicts`,
:func:`analysis.attribution.attribute`, :func:`analysis.evidence.targets` and
:func:`analysis.evidence.pairs`); only where they run differs.  Without ``scheduler`` a
:class:`distributed.LocalCluster` of two worker processes on 127.0.0.1 is started for the call.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import evidence
from analysis.attribution import attribute
from analysis.load import (
    Cat,
    Columns,
    DatasetFile,
    Fetcher,
    FileFetcher,
    _Builder,
    discover,
    scan_file,
    sha256_file,
)
from analysis.memory import memory_tuning
from analysis.outputs import VERDICT_COLUMNS, _Background, _write_parquet, _write_targets_pairs
from analysis.pipeline import AnalysisResult, Progress, finish, read_hops
from analysis.verdicts import FingerprintMatcher, compute_verdicts, hostname_of
from probe.errors import ConfigError, DatasetError, StoreError

#: Worker processes of the cluster started when no scheduler is given.
LOCAL_WORKERS = 2


# -- pure helpers -----------------------------------------------------------------------


def hostname_parts(url: Cat, n_parts: int) -> np.ndarray:
    """The part (``crc32(hostname) % n_parts``) of every row; rows without URL count as ``""``."""
    names = url.names()
    keys = [zlib.crc32(hostname_of(u or "").encode()) % n_parts for u in names]
    keys.append(zlib.crc32(b"") % n_parts)
    table = np.asarray(keys, np.int64)
    codes = url.codes.astype(np.int64)
    return table[np.where(codes < 0, len(names), codes)]


def subset_columns(cols: Columns, rows: np.ndarray) -> Columns:
    """The rows ``rows`` (increasing row numbers) of ``cols``; dictionaries are kept whole."""
    rows = np.asarray(rows, np.int64)
    lengths = np.diff(cols.dns_offsets)[rows]
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts = cols.dns_offsets[:-1][rows]
    answer_idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return Columns(
        n=len(rows),
        measurement_id=cols.measurement_id.take(pa.array(rows)),
        started_at=cols.started_at[rows],
        is_control=cols.is_control[rows],
        probe_asn=cols.probe_asn[rows],
        server_asn=cols.server_asn[rows],
        http_status=cols.http_status[rows],
        tls_cert_valid=cols.tls_cert_valid[rows],
        http_verified=cols.http_verified[rows],
        cats={name: Cat(c.codes[rows], c.values) for name, c in cols.cats.items()},
        dns_offsets=offsets,
        dns_answers=Cat(cols.dns_answers.codes[answer_idx], cols.dns_answers.values),
    )


class SubsetFetcher:
    """A :class:`analysis.load.Fetcher` for a subset: local row numbers → the inner fetcher's."""

    def __init__(self, inner: Fetcher, rows: np.ndarray) -> None:
        self.inner = inner
        self.rows = np.asarray(rows, np.int64)

    def fetch(self, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
        return self.inner.fetch(self.rows[np.asarray(rows, np.int64)], columns)


def concat_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """``frames`` one below the other; categorical columns keep a (united) categorical dtype."""
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    cols: dict[str, Any] = {}
    for name in frames[0].columns:
        parts = [f[name] for f in frames]
        if all(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
            cols[name] = pd.api.types.union_categoricals([p.array for p in parts])
        else:
            cols[name] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(cols)


# -- the worker's task ------------------------------------------------------------------


@dataclass
class PartResult:
    """What one worker sends back (``rows`` are global row numbers, increasing)."""

    rows: np.ndarray
    frame: pd.DataFrame | None
    targets: pd.DataFrame | None
    files: list[DatasetFile]
    skipped: list[dict[str, str]]
    n_localised: int


def _scan(inputs: Sequence[str], skip_bad: bool) -> tuple[Columns, list[DatasetFile], list]:
    """The first pass of :func:`analysis.load.read_dataset`, without hashing (the driver does)."""
    paths = discover(inputs)
    builder = _Builder(sum(p.stat().st_size for p in paths) // 64)
    files: list[DatasetFile] = []
    skipped: list[dict[str, str]] = []
    for path in paths:
        try:
            scan = scan_file(path)
        except DatasetError as exc:
            if not skip_bad:
                raise
            skipped.append({"path": str(path), "error": str(exc)})
            continue
        builder.add(scan.piece)
        files.append(scan.file)
    if not files:
        raise DatasetError("no readable measurement files in the input")
    return builder.finish(), files, skipped


def analyze_part(
    inputs: Sequence[str],
    part: int,
    n_parts: int,
    *,
    window: timedelta,
    skip_bad: bool,
    fingerprints: FingerprintMatcher | None,
    localisations: pd.DataFrame | None,
    hops: pd.DataFrame | None,
) -> PartResult:
    """Verdicts and targets of the hostnames of part ``part`` (runs on a worker)."""
    with memory_tuning():
        cols, files, skipped = _scan(inputs, skip_bad)
        rows = np.flatnonzero(hostname_parts(cols.cats["url"], n_parts) == part)
        if not len(rows):
            return PartResult(rows, None, None, files, skipped, 0)
        sub = subset_columns(cols, rows)
        del cols
        if fingerprints is None:
            from analysis.fingerprints import load_fingerprints

            fingerprints = load_fingerprints()
        v = compute_verdicts(
            sub,
            fingerprints=fingerprints,
            fetch=SubsetFetcher(FileFetcher(files), rows),
            window=window,
        )
        del sub
        n_localised = 0
        if localisations is None and hops is not None:
            from analysis.routes import localisations as localise

            localisations = localise(hops, v.frame)
            n_localised = len(localisations)
        frame = attribute(v.frame, localisations)
        targets_df = evidence.targets(frame, v.controls)
        keep = [c for c in VERDICT_COLUMNS if c in frame.columns]
        return PartResult(rows, frame[keep], targets_df, files, skipped, n_localised)


# -- the driver -------------------------------------------------------------------------


@contextlib.contextmanager
def dask_client(scheduler: str | None) -> Iterator[Any]:
    """A client of ``scheduler`` (``tcp://HOST:PORT``), else of a local two-process cluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--engine dask needs Dask: pip install 'res64-probe[dask]'") from None
    if scheduler:
        with Client(scheduler, timeout=30) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=LOCAL_WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _hash_files(paths: Sequence[Path]) -> dict[str, tuple[str, int, int] | DatasetError]:
    out: dict[str, tuple[str, int, int] | DatasetError] = {}
    for p in paths:
        try:
            st = p.stat()
            out[str(p)] = (sha256_file(p), st.st_size, st.st_mtime_ns)
        except OSError as exc:
            out[str(p)] = DatasetError(f"{p}: cannot read ({exc.strerror or exc})")
    return out


def analyze_dask(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    window: timedelta = timedelta(hours=24),
    skip_bad: bool = False,
    fingerprints: FingerprintMatcher | None = None,
    progress: Progress | None = None,
    command: list[str] | None = None,
    localisations: pd.DataFrame | None = None,
    scheduler: str | None = None,
) -> AnalysisResult:
    """:func:`analysis.pipeline.analyze` on a Dask cluster (same outputs, same files)."""
    if window.total_seconds() <= 0:
        raise ConfigError("--window must be positive")
    from analysis.remote import localise_inputs

    inputs, remote_origin = localise_inputs([str(i) for i in inputs])
    hops_df = read_hops(inputs)
    paths = discover(inputs)
    hashes: dict[str, Any] = {}
    hasher = _Background(lambda: hashes.update(_hash_files(paths)))
    if progress is not None:
        progress("read", 0, len(paths))
    with dask_client(scheduler) as client:
        n_parts = max(1, len(client.scheduler_info().get("workers", {})))
        futures = [
            client.submit(
                analyze_part,
                list(inputs),
                k,
                n_parts,
                window=window,
                skip_bad=skip_bad,
                fingerprints=fingerprints,
                localisations=localisations,
                hops=hops_df,
                pure=False,
            )
            for k in range(n_parts)
        ]
        results: list[PartResult] = client.gather(futures)
    hasher.result()
    if progress is not None:
        progress("evidence", 0, 1)
    files, skipped = results[0].files, results[0].skipped
    for k, info in enumerate(files):
        got = hashes.get(info.path)
        if isinstance(got, DatasetError):
            raise got
        if got is None or got[1] != info.size or got[2] != info.mtime_ns:
            raise DatasetError(f"{info.path}: the file changed during the analysis")
        files[k] = replace(info, sha256=got[0])

    done = [r for r in results if r.frame is not None]
    rows = np.concatenate([r.rows for r in done])
    frame = concat_frames([r.frame for r in done])  # type: ignore[misc]
    frame = frame.iloc[np.argsort(rows, kind="stable")].reset_index(drop=True)
    targets_df = pd.concat([r.targets for r in done], ignore_index=True)
    targets_df = targets_df.sort_values(["affected_cc", "url"], kind="stable")
    targets_df = targets_df.reset_index(drop=True)
    pairs_df = evidence.pairs(targets_df, frame)
    n_localised = (
        len(localisations) if localisations is not None else sum(r.n_localised for r in done)
    )
    return _write(
        Path(out_dir),
        frame=frame,
        targets_df=targets_df,
        pairs_df=pairs_df,
        hops_df=hops_df,
        files=files,
        skipped=skipped,
        remote_origin=remote_origin,
        n_localised=n_localised,
        window=window,
        fingerprints=fingerprints,
        command=command,
        progress=progress,
    )


def _write(
    out: Path,
    *,
    frame: pd.DataFrame,
    targets_df: pd.DataFrame,
    pairs_df: pd.DataFrame,
    hops_df: pd.DataFrame | None,
    files: list[DatasetFile],
    skipped: list[dict[str, str]],
    remote_origin: Any,
    n_localised: int,
    window: timedelta,
    fingerprints: FingerprintMatcher | None,
    command: list[str] | None,
    progress: Progress | None,
) -> AnalysisResult:
    """The output files of :func:`analysis.pipeline.analyze` (same names, same contents)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{out}: cannot create ({exc.strerror or exc})") from None
    if fingerprints is None:
        from analysis.fingerprints import load_fingerprints

        fingerprints = load_fingerprints()
    if progress is not None:
        progress("write", 0, 1)
    paths: dict[str, Path] = {"verdicts.parquet": out / "verdicts.parquet"}
    keep = [c for c in VERDICT_COLUMNS if c in frame.columns]
    _write_parquet(frame[keep], paths["verdicts.parquet"], "verdicts")
    paths["targets.parquet"], paths["targets.csv"] = _write_targets_pairs(
        targets_df, out, "targets"
    )
    paths["pairs.parquet"], paths["pairs.csv"] = _write_targets_pairs(pairs_df, out, "pairs")
    return finish(
        out,
        paths,
        frame=frame,
        targets_df=targets_df,
        pairs_df=pairs_df,
        hops_df=hops_df,
        files=files,
        skipped=skipped,
        remote_origin=remote_origin,
        n_localised=n_localised,
        window=window,
        fingerprints=fingerprints,
        command=command,
        progress=progress,
        engine="dask",
    )


__all__ = [
    "LOCAL_WORKERS",
    "PartResult",
    "SubsetFetcher",
    "analyze_dask",
    "analyze_part",
    "concat_frames",
    "dask_client",
    "hostname_parts",
    "subset_columns",
]
