"""One measurements file, or a batch of consecutive files: checks and decoding.

This is what the reading threads of :func:`analysis.load.read_dataset` run.  A file is
opened with its string columns read as dictionaries (:func:`_open`), its ``res64`` metadata
and column types are checked (once per distinct file schema: :class:`_SchemaChecks`), and
the requested columns are decoded into a :class:`analysis.columns._Piece`.  Consecutive
files are scanned together (:func:`scan_batch`, up to :data:`BATCH_FILES` files or
:data:`BATCH_BYTES` bytes): files with the same columns become one piece whose dictionaries
Arrow has already unified, so the thread that merges pieces sees one dictionary per column
and batch instead of one per file.  A bad file is reported in its place, as a
:class:`probe.errors.DatasetError` naming it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

try:  # the reader under pq.ParquetFile, without its Python-side index of the schema's paths
    from pyarrow._parquet import ParquetReader as _ArrowReader
except ImportError:  # pragma: no cover - a pyarrow that moved it: go through ParquetFile
    _ArrowReader = None

from analysis.columns import CAT_COLUMNS, REQUIRED_COLUMNS, SCAN_COLUMNS, _Piece, _piece
from probe.errors import DatasetError
from probe.schema import MEASUREMENTS, SCHEMA_VERSION

_PARTITION_KEYS = ("campaign", "probe_cc", "date")


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


# Dictionary-read paths of files written with probe.schema.file_schema (checked per file).
_DICT_PATHS = (
    *(c for c in CAT_COLUMNS if c not in _PARTITION_KEYS),
    "dns_answers.list.element",
)


def _reader(source: pa.NativeFile, **options: Any) -> Any:
    """pyarrow's Parquet reader for ``source`` (``metadata``, ``read_dictionary``, ...)."""
    if _ArrowReader is None:  # pragma: no cover
        return pq.ParquetFile(source, **options).reader
    reader = _ArrowReader()
    reader.open(source, **options)
    return reader


def _open(source: pa.NativeFile, path: Path) -> Any:
    """The file opened for reading its string columns as dictionaries: pyarrow's reader
    (``metadata``, ``schema_arrow``, ``read_all``), read with :func:`_read_columns`.

    ``pre_buffer=False``: each column chunk is read where it is decoded, by the calling
    thread.  Arrow's default pre-buffering hands the reads to its I/O threads and waits for
    them, which for local files costs a quarter more CPU than it saves.  Not through
    ``pq.ParquetFile``: it indexes the paths of every column in Python on each opening,
    which, holding the interpreter lock, costs more than decoding a small column.
    """
    try:
        return _reader(source, read_dictionary=_DICT_PATHS, pre_buffer=False)
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
        return _reader(source, metadata=md, read_dictionary=dict_paths, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(
            f"{path}: not a readable Parquet file, truncated or corrupt ({_short(exc)})"
        ) from None


@dataclass
class _FileScan:
    file: DatasetFile
    piece: _Piece


@dataclass(frozen=True)
class _Layout:
    """The :data:`SCAN_COLUMNS` a file holds, and the Parquet leaf columns of each."""

    present: list[str]
    leaves: dict[str, list[int]]

    def read(self, reader: Any, columns: Collection[str]) -> pa.Table:
        """Those of ``columns`` the file holds, decoded by the calling thread."""
        indices = [i for c in self.present if c in columns for i in self.leaves[c]]
        return reader.read_all(column_indices=indices, use_threads=False)


class _SchemaChecks:
    """The :data:`SCAN_COLUMNS` a file holds, checked once per distinct file schema.

    A dataset's files nearly all share one schema; checking each file's Arrow schema again
    costs more than reading its smallest columns.  The key is the file's Parquet schema and
    its stored Arrow schema (``ARROW:schema``), from which the Arrow types derive.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.known: list[tuple[pq.ParquetSchema, bytes | None, _Layout]] = []
        self.lock = threading.Lock()

    def __call__(self, path: Path, reader: Any) -> _Layout:
        md = reader.metadata
        blob = (md.metadata or {}).get(b"ARROW:schema")
        pschema = md.schema
        with self.lock:
            known = list(self.known)
        for schema, stored, layout in known:
            if stored == blob and schema.equals(pschema):
                return layout
        present = self._check(path, reader.schema_arrow)
        leaves: dict[str, list[int]] = {}
        for i in range(md.num_columns):
            leaves.setdefault(pschema.column(i).path.split(".", 1)[0], []).append(i)
        layout = _Layout(present, leaves)
        with self.lock:
            self.known = [(pschema, blob, layout), *self.known][: self.size]
        return layout

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
        reader = _open(source, path)
        md = reader.metadata
        version = _check_metadata(path, md)
        layout = _checked_columns(path, reader)
        try:
            table = layout.read(reader, columns)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"{path}: cannot decode ({_short(exc)})") from None
    part = partition_values(path)
    info = DatasetFile(
        path=str(path),
        size=st.st_size,
        sha256="",
        rows=md.num_rows,
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


def pieces_by_schema(
    tables: Sequence[tuple[pa.Table, DatasetFile]], columns: Collection[str]
) -> list[_Piece]:
    """One piece per run of consecutive files whose tables have the same columns."""
    pieces: list[_Piece] = []
    start = 0
    for k in range(1, len(tables) + 1):
        if k == len(tables) or not tables[k][0].schema.equals(tables[start][0].schema):
            run = tables[start:k]
            pieces.append(_batch_piece([t for t, _ in run], [i for _, i in run], columns))
            start = k
    return pieces


def scan_batch(paths: Sequence[Path], columns: Collection[str] = SCAN_COLUMNS) -> _BatchScan:
    """:func:`scan_file` for consecutive files at once (worker threads): fewer, larger
    pieces for the thread that merges them.  A bad file is reported in its place."""
    results: list[DatasetFile | DatasetError] = []
    tables: list[tuple[pa.Table, DatasetFile]] = []
    for path in paths:
        try:
            table, info = _scan_table(path, columns)
        except DatasetError as exc:
            results.append(exc)
            continue
        tables.append((table, info))
        results.append(info)
    return _BatchScan(results, pieces_by_schema(tables, columns))


#: Files scanned together by a worker: up to this many, or this many bytes.
BATCH_FILES = 8
BATCH_BYTES = 16 << 20


def _batches(paths: Sequence[Path], sizes: Sequence[int]) -> list[list[Path]]:
    """``paths`` in consecutive groups of up to :data:`BATCH_FILES` files or about
    :data:`BATCH_BYTES` bytes (a large file forms a group of its own)."""
    out: list[list[Path]] = []
    size = 0
    for p, n in zip(paths, sizes, strict=True):
        if not out or len(out[-1]) >= BATCH_FILES or size + n > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(p)
        size += n
    return out
