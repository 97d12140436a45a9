"""Read measurement datasets into compact columns (the I/O side of analysis).

A dataset is one or more Parquet files of the ``measurements`` table in the hive layout of
SPEC §7.  Inputs may be dataset roots (directories holding ``measurements/``), a
``measurements/`` directory (or any directory below it), or single Parquet files.

Reading happens in two passes, so that ten million rows fit in memory and stream fast:

1. :func:`read_dataset` reads every file once (worker threads, consecutive files in
   batches): it checks the file's metadata (``res64.table`` must be ``measurements``,
   ``res64.schema_version`` not newer than :data:`probe.schema.SCHEMA_VERSION`) and decodes
   only :data:`SCAN_COLUMNS`, strings as dictionary codes.  The result is one
   :class:`Columns`: integer codes into small dictionaries (:class:`Cat`), numpy arrays, and
   the ``measurement_id`` strings kept as Arrow.  ``campaign`` and ``probe_cc`` come from the
   partition directories when the files do not hold them.  A thread of its own hashes every
   file (SHA-256, reported in ``analysis.json``).
   With ``defer_pass=True`` (what :func:`analysis.pipeline.analyze` does) the columns that
   the verdicts only carry along (:data:`PASS_COLUMNS`: ``measurement_id``, vantage and
   target attributes) are left out of that pass and read by a background thread while the
   verdicts are computed, on the core they leave idle, and the hashing follows that pass;
   :meth:`Columns.complete` joins the columns in.  Each file is checked again (size,
   modification time, row count) before it is read, and once more when it is hashed.
2. A :class:`Fetcher` reads further columns (body prefixes, titles, control answers, ...) for
   the few rows that need them, by file and row group.

Checking and decoding one file or a batch of files (what the reading threads run) is in
:mod:`analysis.scan`; the in-memory column building (pieces, dictionary merging) in
:mod:`analysis.columns`.

Any unreadable, truncated or foreign file raises :class:`probe.errors.DatasetError` with a
one-line message naming it; with ``skip_bad=True`` it is listed in :attr:`Dataset.skipped`
instead.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.columns import (
    CAT_COLUMNS,
    PASS_COLUMNS,
    REQUIRED_COLUMNS,
    SCAN_COLUMNS,
    Cat,
    Columns,
    _Builder,
    columns_from_table,
)
from analysis.scan import (
    BATCH_FILES,
    DatasetFile,
    _batches,
    _BatchScan,
    _checked_columns,
    _open,
    _short,
    partition_values,
    pieces_by_schema,
    scan_batch,
    scan_file,
)
from probe.errors import DatasetError
from probe.schema import MEASUREMENTS

Progress = Callable[[str, int, int], None]


class Fetcher(Protocol):
    """Reads further columns for selected rows (second pass)."""

    def fetch(self, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """A table with ``columns`` for ``rows`` (global row numbers), in the order given."""
        ...


@dataclass
class Dataset:
    """The files read, those skipped, their first-pass columns and a fetcher for more."""

    files: list[DatasetFile]
    skipped: list[dict[str, str]]
    columns: Columns
    fetcher: Fetcher
    hasher: _Hasher | None = None

    def release(self) -> None:
        """Drop the columns (the largest part) once verdicts are computed."""
        self.columns = None  # type: ignore[assignment]

    def close(self) -> None:
        """Stop and wait for the background threads (after an error or an interruption)."""
        pending = getattr(self.columns, "pending", None)
        if isinstance(pending, _Deferred):
            pending.cancel()
        if self.hasher is not None:
            self.hasher.cancelled.set()
            if self.hasher.ident is not None:  # started
                self.hasher.join()

    def wait_hashes(self) -> list[DatasetFile]:
        """Wait for the background hashing; fill in ``sha256`` of every file.

        A file that changed between decoding and hashing raises :class:`DatasetError`.
        """
        if self.hasher is None:
            return self.files
        hasher, self.hasher = self.hasher, None
        hasher.begin()  # (normally started already, after the background pass)
        hasher.join()
        for k, info in enumerate(self.files):
            got = hasher.get(Path(info.path))
            if isinstance(got, DatasetError):
                raise got
            sha, size, mtime = got
            if size != info.size or mtime != info.mtime_ns:
                raise DatasetError(f"{info.path}: the file changed during the analysis")
            self.files[k] = replace(info, sha256=sha)
        return self.files


# -- discovery and background threads ---------------------------------------------------


def _visible(part: str) -> bool:
    return not part.startswith((".", "_"))


def discover(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every measurements Parquet file named by ``inputs``, sorted and without duplicates."""
    found: dict[Path, None] = {}
    for item in inputs:
        p = Path(item)
        if p.is_file():
            found[p] = None
            continue
        if not p.is_dir():
            raise DatasetError(f"{p}: no such file or directory")
        base = p / "measurements" if (p / "measurements").is_dir() else p
        files = [
            f
            for f in sorted(base.rglob("*.parquet"))
            if f.is_file() and all(_visible(part) for part in f.relative_to(base).parts)
        ]
        if not files:
            raise DatasetError(f"{p}: no measurement files (*.parquet) found")
        for f in files:
            found[f] = None
    return sorted(found)


def sha256_file(path: Path, buffer: bytearray | None = None) -> str:
    """SHA-256 of a file, read through a reusable buffer (no fresh memory per file)."""
    buf = buffer if buffer is not None else bytearray(4 << 20)
    view = memoryview(buf)
    h = hashlib.sha256()
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


class _Hasher(threading.Thread):
    """Hashes every input file in the background while the files are decoded."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__(name="res64-sha256", daemon=True)
        self.paths = list(paths)
        self.results: dict[Path, tuple[str, int, int] | DatasetError] = {}
        self.cancelled = threading.Event()
        self._starting = threading.Lock()

    def begin(self) -> None:
        """Start hashing unless started already (callable from any thread)."""
        with self._starting:
            if self.ident is None:
                self.start()

    def run(self) -> None:
        buf = bytearray(4 << 20)
        for p in self.paths:
            if self.cancelled.is_set():
                return
            try:
                st = p.stat()
                self.results[p] = (sha256_file(p, buf), st.st_size, st.st_mtime_ns)
            except OSError as exc:
                self.results[p] = DatasetError(f"{p}: cannot read ({_short(exc)})")

    def get(self, path: Path) -> tuple[str, int, int] | DatasetError:
        self.join()
        return self.results[path]


def _unchanged(info: DatasetFile) -> None:
    """Raise :class:`DatasetError` unless the file still has the size and time it had."""
    path = Path(info.path)
    try:
        st = path.stat()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({_short(exc)})") from None
    if st.st_size != info.size or st.st_mtime_ns != info.mtime_ns:
        raise DatasetError(f"{path}: the file changed during the analysis")


class _Deferred(threading.Thread):
    """Reads :data:`PASS_COLUMNS` of every file in the background (second decoding pass,
    while the verdicts are computed); calling it waits and returns the builder's parts."""

    def __init__(
        self, files: Sequence[DatasetFile], rows: int, then: Callable[[], None] | None = None
    ) -> None:
        super().__init__(name="res64-pass", daemon=True)
        self.files = list(files)
        self.rows = rows
        self.then = then  # started when the pass has succeeded (the hashing)
        self.parts: dict[str, object] = {}
        self.error: BaseException | None = None
        self.cancelled = threading.Event()

    def run(self) -> None:
        try:
            builder = _Builder(self.rows, PASS_COLUMNS)
            for b in range(0, len(self.files), BATCH_FILES):
                tables = []
                for info in self.files[b : b + BATCH_FILES]:
                    if self.cancelled.is_set():
                        raise DatasetError("reading cancelled")
                    tables.append((self._read(info), info))
                for piece in pieces_by_schema(tables, PASS_COLUMNS):
                    builder.add(piece)
            self.parts = builder.parts()
        except BaseException as exc:  # raised in the thread that waits
            self.error = exc
            return
        if self.then is not None and not self.cancelled.is_set():
            self.then()

    def cancel(self) -> None:
        """Stop after the file in hand and wait (no thread may outlive the analysis: one
        still inside Arrow when the interpreter exits would abort the process)."""
        self.cancelled.set()
        if self.is_alive():
            self.join()

    @staticmethod
    def _read(info: DatasetFile) -> pa.Table:
        """The pass-through columns of a file checked in the first pass (and unchanged)."""
        _unchanged(info)
        path = Path(info.path)
        try:
            with pa.OSFile(str(path)) as source:
                reader = _open(source, path)
                layout = _checked_columns(path, reader)  # the first pass's check, cached
                table = layout.read(reader, PASS_COLUMNS)
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read ({_short(exc)})") from None
        except pa.ArrowException as exc:
            raise DatasetError(f"{path}: cannot decode ({_short(exc)})") from None
        if table.num_rows != info.rows:
            raise DatasetError(f"{path}: the file changed during the analysis")
        return table

    def __call__(self) -> dict[str, object]:
        self.join()
        if self.error is not None:
            raise self.error
        return self.parts


# -- fetchers ---------------------------------------------------------------------------


def _null_column(name: str, n: int) -> pa.Array:
    return pa.nulls(n, MEASUREMENTS.field(name).type)


def _plain(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr


class TableFetcher:
    """A :class:`Fetcher` over an in-memory table."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def fetch(self, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
        idx = pa.array(np.asarray(rows, np.int64))
        out = {}
        for name in columns:
            if name in self.table.column_names:
                out[name] = _plain(self.table.column(name).take(idx))
            else:
                out[name] = _null_column(name, len(idx))
        return pa.table(out)


class FileFetcher:
    """A :class:`Fetcher` over the dataset files, reading only the row groups needed."""

    def __init__(self, files: Sequence[DatasetFile]) -> None:
        self.files = list(files)
        self.starts = np.zeros(len(self.files) + 1, np.int64)
        np.cumsum([f.rows for f in self.files], out=self.starts[1:])

    def _read(self, info: DatasetFile, local: np.ndarray, columns: Sequence[str]) -> pa.Table:
        path = Path(info.path)
        _unchanged(info)
        try:
            pf = pq.ParquetFile(str(path), pre_buffer=False)
            md = pf.metadata
            rg_rows = np.array([md.row_group(i).num_rows for i in range(md.num_row_groups)])
            rg_start = np.concatenate([[0], np.cumsum(rg_rows)])
            rg_of = np.searchsorted(rg_start, local, side="right") - 1
            needed = np.unique(rg_of)
            present = [c for c in columns if c in pf.schema_arrow.names]
            table = pf.read_row_groups(needed.tolist(), columns=present, use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"{path}: cannot decode ({_short(exc)})") from None
        base = np.zeros(len(rg_rows), np.int64)
        base[needed] = np.concatenate([[0], np.cumsum(rg_rows[needed])[:-1]])
        pos = base[rg_of] + (local - rg_start[rg_of])
        idx = pa.array(pos)
        out = {}
        for name in columns:
            if name in present:
                out[name] = _plain(table.column(name).take(idx))
            else:
                out[name] = _null_column(name, len(local))
        return pa.table(out)

    def fetch(self, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
        rows = np.asarray(rows, np.int64)
        empty = pa.table({name: _null_column(name, 0) for name in columns})
        if len(rows) == 0:
            return empty
        order = np.argsort(rows)  # equal rows fetch the same values: any order of ties
        srt = rows[order]
        fidx = np.searchsorted(self.starts, srt, side="right") - 1
        parts = []
        bounds = np.flatnonzero(np.diff(fidx)) + 1
        for chunk in np.split(np.arange(len(srt)), bounds):
            f = int(fidx[chunk[0]])
            parts.append(self._read(self.files[f], srt[chunk] - self.starts[f], columns))
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return table.take(pa.array(inverse))


# -- the whole dataset ------------------------------------------------------------------


def _in_threads(
    func: Callable[..., object], args: Sequence[tuple], threads: int
) -> Iterator[tuple[int, object]]:
    """``func(*args[i])`` in worker threads, yielded in order; errors are yielded, not raised."""
    if threads <= 1:
        for i, a in enumerate(args):
            try:
                yield i, func(*a)
            except DatasetError as exc:
                yield i, exc
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="res64-read") as pool:
        pending: list[tuple[int, Future[object]]] = []
        nxt = 0
        try:
            while nxt < len(args) or pending:
                while nxt < len(args) and len(pending) < 8 * threads:
                    pending.append((nxt, pool.submit(func, *args[nxt])))
                    nxt += 1
                i, fut = pending.pop(0)
                try:
                    yield i, fut.result()
                except DatasetError as exc:
                    yield i, exc
        finally:
            for _, fut in pending:
                fut.cancel()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reported when the file is scanned


def read_dataset(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    skip_bad: bool = False,
    threads: int = 2,
    progress: Progress | None = None,
    defer_hash: bool = False,
    defer_pass: bool = False,
) -> Dataset:
    """Discover, check and scan every file of ``inputs`` (first pass), then hash them.

    ``threads`` workers decode batches of files while the calling thread merges the string
    dictionaries.  The SHA-256 of every file is computed by a thread of its own; with
    ``defer_hash`` it keeps running after this returns (the caller computes meanwhile) until
    :meth:`Dataset.wait_hashes`.  With ``defer_pass`` the first pass leaves out
    :data:`PASS_COLUMNS`, which another thread reads afterwards, while the caller computes
    (:meth:`Columns.complete` waits for them); the hashing then follows that pass, in the
    same spare time, instead of competing with the first one.
    """
    paths = discover(inputs)
    hasher = _Hasher(paths)
    if not defer_pass:
        # hashing from the start, in the time the decoding threads leave idle (each of them
        # waits for the interpreter now and then); files found bad are hashed for nothing
        hasher.begin()
    skipped: list[dict[str, str]] = []
    sizes = [_size(p) for p in paths]
    total_bytes = sum(sizes)
    wanted = [c for c in SCAN_COLUMNS if not (defer_pass and c in PASS_COLUMNS)]
    # a generous guess of the rows; the untouched tail costs nothing
    builder = _Builder(total_bytes // 64, wanted)
    files: list[DatasetFile] = []
    batches = _batches(paths, sizes)
    done = 0
    for i, batch in _in_threads(scan_batch, [(b, wanted) for b in batches], threads):
        assert isinstance(batch, _BatchScan)
        for path, result in zip(batches[i], batch.results, strict=True):
            if isinstance(result, DatasetError):
                if not skip_bad:
                    hasher.cancelled.set()
                    raise result
                skipped.append({"path": str(path), "error": str(result)})
            else:
                files.append(result)
        for piece in batch.pieces:
            builder.add(piece)
        done += len(batches[i])
        if progress is not None:
            progress("read", done, len(paths))
    if not files:
        hasher.cancelled.set()
        raise DatasetError("no readable measurement files in the input")
    deferred = None
    if defer_pass:
        hasher.paths = [Path(f.path) for f in files]
        deferred = _Deferred(files, builder.out.n, then=hasher.begin)
        deferred.start()
    if deferred is None:
        columns = builder.finish()
    else:
        passed = dict.fromkeys(("measurement_id", "probe_asn", "http_verified"))
        columns = Columns(**builder.parts(), **passed, pending=deferred)
    ds = Dataset(files, skipped, columns, FileFetcher(files), hasher)
    if not defer_hash:
        ds.wait_hashes()
    return ds


__all__ = [
    "CAT_COLUMNS",
    "PASS_COLUMNS",
    "REQUIRED_COLUMNS",
    "SCAN_COLUMNS",
    "Cat",
    "Columns",
    "Dataset",
    "DatasetFile",
    "Fetcher",
    "FileFetcher",
    "TableFetcher",
    "columns_from_table",
    "discover",
    "partition_values",
    "read_dataset",
    "scan_file",
    "sha256_file",
]
