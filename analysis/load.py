"""Read measurement datasets into compact columns (the I/O side of analysis).

A dataset is one or more Parquet files of the ``measurements`` table in the hive layout of
SPEC §7.  Inputs may be dataset roots (directories holding ``measurements/``), a
``measurements/`` directory (or any directory below it), or single Parquet files.

Reading happens in two passes, so that ten million rows fit in memory and stream fast:

1. :func:`read_dataset` reads every file once (worker threads): it hashes the bytes (SHA-256,
   reported in ``analysis.json``), checks the file's metadata (``res64.table`` must be
   ``measurements``, ``res64.schema_version`` not newer than :data:`probe.schema.SCHEMA_VERSION`)
   and decodes only :data:`SCAN_COLUMNS`, strings as dictionary codes.  The result is one
   :class:`Columns`: integer codes into small dictionaries (:class:`Cat`), numpy arrays, and the
   ``measurement_id`` strings kept as Arrow.  ``campaign`` and ``probe_cc`` come from the
   partition directories when the files do not hold them.
   With ``defer_pass=True`` (what :func:`analysis.pipeline.analyze` does) the columns that
   the verdicts only carry along (:data:`PASS_COLUMNS`: ``measurement_id``, vantage and
   target attributes) are left out of that pass and read by a background thread while the
   verdicts are computed, on the core they leave idle; :meth:`Columns.complete` joins them
   in.  Each file is checked again (size, modification time, row count) before it is read.
2. A :class:`Fetcher` reads further columns (body prefixes, titles, control answers, ...) for
   the few rows that need them, by file and row group.

The in-memory column building itself (pieces, dictionary merging) is in
:mod:`analysis.columns`.

Any unreadable, truncated or foreign file raises :class:`probe.errors.DatasetError` with a
one-line message naming it; with ``skip_bad=True`` it is listed in :attr:`Dataset.skipped`
instead.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

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
    _Piece,
    _piece,
    columns_from_table,
)
from probe.errors import DatasetError
from probe.schema import MEASUREMENTS, SCHEMA_VERSION

_BOOL3_COLUMNS = ("tls_cert_valid", "http_verified")
_PARTITION_KEYS = ("campaign", "probe_cc", "date")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DatasetFile:
    """One input file, as reported in ``analysis.json``."""

    path: str
    size: int
    sha256: str
    rows: int
    schema_version: int
    campaign: str | None
    probe_cc: str | None
    date: str | None
    mtime_ns: int = field(default=0, compare=False)

    def report(self) -> dict[str, object]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "rows": self.rows,
            "schema_version": self.schema_version,
        }


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


# -- discovery --------------------------------------------------------------------------


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


def partition_values(path: Path) -> dict[str, str]:
    """``campaign``, ``probe_cc`` and ``date`` from the hive directory names of ``path``."""
    out: dict[str, str] = {}
    for part in path.parts[:-1]:
        key, sep, value = part.partition("=")
        if sep and key in _PARTITION_KEYS:
            out[key] = unquote(value)
    return out


# -- one file ---------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def _check_metadata(path: Path, md: pq.FileMetaData) -> int:
    kv = md.metadata or {}
    table = kv.get(b"res64.table")
    if table is None:
        raise DatasetError(f"{path}: not a res64 measurements file (no res64 metadata)")
    if table != b"measurements":
        name = table.decode(errors="replace")[:40]
        raise DatasetError(f"{path}: holds the res64 table {name!r}, not 'measurements'")
    raw = kv.get(b"res64.schema_version", b"")
    try:
        version = int(raw)
    except ValueError:
        raise DatasetError(f"{path}: invalid res64.schema_version {raw[:20]!r}") from None
    if version > SCHEMA_VERSION:
        raise DatasetError(
            f"{path}: schema version {version} is newer than this software reads "
            f"({SCHEMA_VERSION}); upgrade res64-probe"
        )
    return version


def _compatible(name: str, actual: pa.DataType) -> bool:
    expected = MEASUREMENTS.field(name).type
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_list(expected):
        if not (pa.types.is_list(actual) or pa.types.is_large_list(actual)):
            return False
        value = actual.value_type
        if pa.types.is_dictionary(value):
            value = value.value_type
        return pa.types.is_string(value) or pa.types.is_large_string(value)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual)
    return actual == expected


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


# Dictionary-read paths of files written with probe.schema.file_schema (checked per file).
_DICT_PATHS = (
    *(c for c in CAT_COLUMNS if c not in _PARTITION_KEYS),
    "dns_answers.list.element",
)


def _open(source: pa.NativeFile, path: Path) -> pq.ParquetFile:
    """The file opened for reading its string columns as dictionaries.

    ``pre_buffer=False``: each column chunk is read where it is decoded, by the calling
    thread.  Arrow's default pre-buffering hands the reads to its I/O threads and waits for
    them, which for local files costs a quarter more CPU than it saves.
    """
    try:
        return pq.ParquetFile(source, read_dictionary=_DICT_PATHS, pre_buffer=False)
    except KeyError:
        pass  # a column is missing or the list element is named otherwise: look the paths up
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(
            f"{path}: not a readable Parquet file, truncated or corrupt ({_short(exc)})"
        ) from None
    try:
        md = pq.read_metadata(source)
        wanted = {*CAT_COLUMNS, "dns_answers"}
        paths = [md.schema.column(i).path for i in range(md.num_columns)]
        dict_paths = [p for p in paths if p.split(".", 1)[0] in wanted]
        return pq.ParquetFile(source, metadata=md, read_dictionary=dict_paths, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(
            f"{path}: not a readable Parquet file, truncated or corrupt ({_short(exc)})"
        ) from None


@dataclass
class _FileScan:
    file: DatasetFile
    piece: _Piece


class _SchemaChecks:
    """The :data:`SCAN_COLUMNS` a file holds, checked once per distinct file schema.

    A dataset's files nearly all share one schema; checking each file's Arrow schema again
    costs more than reading its smallest columns.  The key is the file's Parquet schema and
    its stored Arrow schema (``ARROW:schema``), from which the Arrow types derive.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.known: list[tuple[pq.ParquetSchema, bytes | None, list[str]]] = []
        self.lock = threading.Lock()

    def __call__(self, path: Path, pf: pq.ParquetFile) -> list[str]:
        md = pf.metadata
        blob = (md.metadata or {}).get(b"ARROW:schema")
        pschema = md.schema
        with self.lock:
            known = list(self.known)
        for schema, stored, present in known:
            if stored == blob and schema.equals(pschema):
                return present
        present = self._check(path, pf.schema_arrow)
        with self.lock:
            self.known = [(pschema, blob, present), *self.known][: self.size]
        return present

    @staticmethod
    def _check(path: Path, schema: pa.Schema) -> list[str]:
        present = [c for c in SCAN_COLUMNS if c in schema.names]
        for name in REQUIRED_COLUMNS:
            if name not in present:
                raise DatasetError(f"{path}: required column {name!r} is missing")
        for name in present:
            if not _compatible(name, schema.field(name).type):
                raise DatasetError(f"{path}: column {name!r} has type {schema.field(name).type}")
        return present


_checked_columns = _SchemaChecks()


def scan_file(path: Path, columns: Collection[str] = SCAN_COLUMNS) -> _FileScan:
    """Check the file and decode those of ``columns`` it holds (runs in worker threads).

    Every :data:`SCAN_COLUMNS` present is type-checked whatever ``columns`` asks for.  The
    SHA-256 is left empty here: :func:`read_dataset` hashes in a thread of its own.
    """
    table, info = _scan_table(path, columns)
    constants = {"campaign": info.campaign, "probe_cc": info.probe_cc}
    return _FileScan(info, _piece(table, constants, str(path), columns))


def _scan_table(path: Path, columns: Collection[str]) -> tuple[pa.Table, DatasetFile]:
    """The checked file's ``columns`` as a table, and what is known of the file."""
    try:
        st = path.stat()
        source = pa.OSFile(str(path))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({_short(exc)})") from None
    with source:
        pf = _open(source, path)
        version = _check_metadata(path, pf.metadata)
        present = _checked_columns(path, pf)
        try:
            table = pf.read(columns=[c for c in present if c in columns], use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"{path}: cannot decode ({_short(exc)})") from None
    part = partition_values(path)
    info = DatasetFile(
        path=str(path),
        size=st.st_size,
        sha256="",
        rows=pf.metadata.num_rows,
        schema_version=version,
        campaign=part.get("campaign"),
        probe_cc=part.get("probe_cc"),
        date=part.get("date"),
        mtime_ns=st.st_mtime_ns,
    )
    return table, info


@dataclass
class _BatchScan:
    """Consecutive files scanned together: per file its record or its error, in order, and
    the pieces of the good ones (one per run of files with the same columns)."""

    results: list[DatasetFile | DatasetError]
    pieces: list[_Piece]


def _partition_constants(
    tables: Sequence[pa.Table], infos: Sequence[DatasetFile], columns: Collection[str]
) -> list[tuple[str, int, np.ndarray, pa.Array]]:
    """Dictionary chunks of ``campaign`` / ``probe_cc`` from the partition directories, for
    the concatenated ``tables`` that lack the column (one chunk per run of equal values)."""
    out: list[tuple[str, int, np.ndarray, pa.Array]] = []
    for name in ("campaign", "probe_cc"):
        if name not in columns or name in tables[0].column_names:
            continue
        runs: list[tuple[str | None, int, int]] = []  # (value, offset, rows)
        offset = 0
        for table, info in zip(tables, infos, strict=True):
            value = getattr(info, name)
            if runs and runs[-1][0] == value:
                runs[-1] = (value, runs[-1][1], runs[-1][2] + table.num_rows)
            else:
                runs.append((value, offset, table.num_rows))
            offset += table.num_rows
        for value, start, n in runs:
            if value is None:  # an empty dictionary: every row null
                out.append((name, start, np.full(n, -1, np.int32), pa.array([], pa.string())))
            else:
                out.append((name, start, np.zeros(n, np.int32), pa.array([value], pa.string())))
    return out


def _batch_piece(
    tables: Sequence[pa.Table], infos: Sequence[DatasetFile], columns: Collection[str]
) -> _Piece:
    """One piece of several files' tables with the same schema (their dictionaries unified
    here, in the worker, so that the merging thread sees one per column)."""
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    piece = _piece(table, {}, infos[0].path, columns)
    piece.cats.extend(_partition_constants(tables, infos, columns))
    return piece


def scan_batch(paths: Sequence[Path], columns: Collection[str] = SCAN_COLUMNS) -> _BatchScan:
    """:func:`scan_file` for consecutive files at once (worker threads): fewer, larger
    pieces for the thread that merges them.  A bad file is reported in its place."""
    results: list[DatasetFile | DatasetError] = []
    pieces: list[_Piece] = []
    run: list[tuple[pa.Table, DatasetFile]] = []

    def close_run() -> None:
        if run:
            pieces.append(_batch_piece([t for t, _ in run], [i for _, i in run], columns))
            run.clear()

    for path in paths:
        try:
            table, info = _scan_table(path, columns)
        except DatasetError as exc:
            results.append(exc)
            continue
        if run and not run[0][0].schema.equals(table.schema):
            close_run()
        run.append((table, info))
        results.append(info)
    close_run()
    return _BatchScan(results, pieces)


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
            run: list[tuple[pa.Table, DatasetFile]] = []  # files with the same columns

            def flush() -> None:
                if run:
                    builder.add(
                        _batch_piece([t for t, _ in run], [i for _, i in run], PASS_COLUMNS)
                    )
                    run.clear()

            for info in self.files:
                if self.cancelled.is_set():
                    raise DatasetError("reading cancelled")
                table = self._read(info)
                if run and (len(run) >= BATCH_FILES or not run[0][0].schema.equals(table.schema)):
                    flush()
                run.append((table, info))
            flush()
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
                pf = _open(source, path)
                present = _checked_columns(path, pf)  # the first pass's check, cached
                table = pf.read(
                    columns=[c for c in present if c in PASS_COLUMNS], use_threads=False
                )
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


#: Files scanned together by a worker: up to this many, or this many bytes.
BATCH_FILES = 8
BATCH_BYTES = 16 << 20


def _batches(paths: Sequence[Path]) -> list[list[Path]]:
    """``paths`` in consecutive groups of up to :data:`BATCH_FILES` files or about
    :data:`BATCH_BYTES` bytes (a large file forms a group of its own)."""
    out: list[list[Path]] = []
    size = 0
    for p in paths:
        try:
            n = p.stat().st_size
        except OSError:
            n = 0  # reported when the file is scanned
        if not out or len(out[-1]) >= BATCH_FILES or size + n > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(p)
        size += n
    return out


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
    total_bytes = sum(p.stat().st_size for p in paths)
    wanted = [c for c in SCAN_COLUMNS if not (defer_pass and c in PASS_COLUMNS)]
    # a generous guess of the rows; the untouched tail costs nothing
    builder = _Builder(total_bytes // 64, wanted)
    files: list[DatasetFile] = []
    batches = _batches(paths)
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
