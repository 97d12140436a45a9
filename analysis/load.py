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
2. A :class:`Fetcher` reads further columns (body prefixes, titles, control answers, ...) for
   the few rows that need them, by file and row group.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from probe.errors import DatasetError
from probe.schema import MEASUREMENTS, SCHEMA_VERSION

#: Columns read for every row in the first pass.
SCAN_COLUMNS: tuple[str, ...] = (
    "measurement_id",
    "started_at",
    "campaign",
    "probe_cc",
    "vantage_id",
    "probe_asn",
    "probe_as_name",
    "is_control",
    "url",
    "category_code",
    "operator_cc",
    "dns_answers",
    "server_cc",
    "server_asn",
    "tls_cert_valid",
    "http_status",
    "http_headers",
    "http_body_sha256",
    "http_verified",
    "failure_step",
    "failure",
)
#: String columns kept as dictionary codes.
CAT_COLUMNS: tuple[str, ...] = (
    "campaign",
    "probe_cc",
    "vantage_id",
    "probe_as_name",
    "url",
    "category_code",
    "operator_cc",
    "server_cc",
    "http_headers",
    "http_body_sha256",
    "failure_step",
    "failure",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("measurement_id", "started_at", "url")
_BOOL3_COLUMNS = ("tls_cert_valid", "http_verified")
_PARTITION_KEYS = ("campaign", "probe_cc", "date")

Progress = Callable[[str, int, int], None]


# -- compact columns --------------------------------------------------------------------


@dataclass
class Cat:
    """A string column as integer codes (``-1`` = null) into unique ``values``."""

    codes: np.ndarray
    values: pa.Array

    def names(self) -> list[str]:
        return self.values.to_pylist()

    def decode(self, rows: np.ndarray | None = None) -> list[str | None]:
        """Python strings for ``rows`` (all rows when ``None``); meant for small selections."""
        codes = self.codes if rows is None else self.codes[rows]
        names = self.names()
        return [names[c] if c >= 0 else None for c in codes.tolist()]


@dataclass
class Columns:
    """The first-pass columns of every measurement, compact and aligned by row."""

    n: int
    measurement_id: pa.ChunkedArray
    started_at: np.ndarray  # int64 microseconds since the epoch, UTC
    is_control: np.ndarray  # bool
    probe_asn: np.ndarray  # uint32, 0 = null (AS 0 is reserved)
    server_asn: np.ndarray  # uint32, 0 = null
    http_status: np.ndarray  # int16, -1 = null
    tls_cert_valid: np.ndarray  # int8: -1 null, 0 false, 1 true
    http_verified: np.ndarray  # int8: -1 null, 0 false, 1 true
    cats: dict[str, Cat]
    dns_offsets: np.ndarray  # int64, n + 1 offsets into dns_answers.codes
    dns_answers: Cat  # one entry per answer

    def cat(self, name: str) -> Cat:
        return self.cats[name]


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

    def wait_hashes(self) -> list[DatasetFile]:
        """Wait for the background hashing; fill in ``sha256`` of every file.

        A file that changed between decoding and hashing raises :class:`DatasetError`.
        """
        if self.hasher is None:
            return self.files
        hasher, self.hasher = self.hasher, None
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


class _Arrays:
    """Growable numeric columns (capacity doubles; the unused tail is never touched)."""

    _SPEC: tuple[tuple[str, type, int], ...] = (
        ("t", np.int64, 0),
        ("is_control", np.bool_, 0),
        ("probe_asn", np.uint32, 0),
        ("server_asn", np.uint32, 0),
        ("http_status", np.int16, -1),
        ("tls_cert_valid", np.int8, -1),
        ("http_verified", np.int8, -1),
        ("dns_lengths", np.int32, 0),
        *((f"cat:{name}", np.int32, -1) for name in CAT_COLUMNS),
    )

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.capacity = max(capacity, 1024)
        self.arrays = {name: np.zeros(self.capacity, dtype) for name, dtype, _ in self._SPEC}

    def reserve(self, n: int) -> int:
        """Room for ``n`` more rows; returns the start row of the new slice."""
        start = self.n
        if start + n > self.capacity:
            capacity = max(2 * self.capacity, start + n)
            for name, arr in self.arrays.items():
                grown = np.zeros(capacity, arr.dtype)
                grown[:start] = arr[:start]
                self.arrays[name] = grown
            self.capacity = capacity
        self.n = start + n
        return start

    def get(self, name: str) -> np.ndarray:
        return self.arrays[name][: self.n]


@dataclass
class _Piece:
    """The first-pass columns of one file: numbers as numpy, strings still to be merged."""

    n: int
    mid: pa.Array
    nums: dict[str, np.ndarray]
    cats: list[tuple[str, int, np.ndarray, pa.Array]]  # (column, offset, indices, dictionary)
    dns_vals: list[tuple[np.ndarray, pa.Array]]


def _dict_chunks(col: pa.ChunkedArray) -> Iterator[tuple[int, np.ndarray, pa.Array]]:
    """(offset, indices, dictionary) of every chunk of a string or dictionary column."""
    pos = 0
    for chunk in col.chunks:
        n = len(chunk)
        if not pa.types.is_dictionary(chunk.type):
            if pa.types.is_large_string(chunk.type):
                chunk = chunk.cast(pa.string())
            chunk = chunk.dictionary_encode()
        dictionary = chunk.dictionary
        if pa.types.is_large_string(dictionary.type):
            dictionary = dictionary.cast(pa.string())
        indices = chunk.indices
        if indices.null_count:
            indices = indices.fill_null(-1)
        idx = indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        yield pos, idx, dictionary
        pos += n


def _to_numpy(col: pa.ChunkedArray, fill: int) -> np.ndarray:
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.int8())
    if arr.null_count:
        arr = arr.fill_null(fill)
    return arr.to_numpy(zero_copy_only=False)


def _piece(table: pa.Table, constants: dict[str, str | None], origin: str) -> _Piece:
    """The first-pass columns of ``table`` (one file, or an in-memory table)."""
    n = table.num_rows
    names = set(table.column_names)
    for req in REQUIRED_COLUMNS:
        if req not in names:
            raise DatasetError(f"{origin}: required column {req!r} is missing")
    mid = table.column("measurement_id")
    mid_arr = mid.combine_chunks() if mid.num_chunks != 1 else mid.chunk(0)
    if pa.types.is_dictionary(mid_arr.type):
        mid_arr = mid_arr.cast(mid_arr.type.value_type)
    if not pa.types.is_string(mid_arr.type):
        mid_arr = mid_arr.cast(pa.string())
    ts = table.column("started_at")
    if ts.null_count:
        raise DatasetError(f"{origin}: {ts.null_count} rows without started_at")
    ts_arr = ts.combine_chunks() if ts.num_chunks != 1 else ts.chunk(0)
    if ts_arr.type.unit != "us":
        ts_arr = ts_arr.cast(pa.timestamp("us", tz="UTC"))
    nums = {"t": ts_arr.cast(pa.int64()).to_numpy(zero_copy_only=False)}
    for name in ("http_status", "tls_cert_valid", "http_verified"):
        if name in names:
            nums[name] = _to_numpy(table.column(name), -1)
    for name in ("probe_asn", "server_asn"):
        if name in names:
            asn = _to_numpy(table.column(name), 0).astype(np.int64, copy=False)
            nums[name] = np.where((asn > 0) & (asn <= 0xFFFFFFFF), asn, 0).astype(np.uint32)
    if "is_control" in names:
        nums["is_control"] = _to_numpy(table.column("is_control"), 0) == 1

    cats: list[tuple[str, int, np.ndarray, pa.Array]] = []
    for name in CAT_COLUMNS:
        if name in names:
            cats.extend((name, *chunk) for chunk in _dict_chunks(table.column(name)))
        elif constants.get(name) is not None:
            const = pa.array([constants[name]], pa.string())
            cats.append((name, 0, np.zeros(n, np.int32), const))

    dns_vals: list[tuple[np.ndarray, pa.Array]] = []
    if "dns_answers" in names:
        lengths = []
        for chunk in table.column("dns_answers").chunks:
            length = pc.list_value_length(chunk)
            if length.null_count:
                length = length.fill_null(0)
            lengths.append(length.to_numpy(zero_copy_only=False))
            flat = chunk.flatten()
            dns_vals.extend((idx, d) for _, idx, d in _dict_chunks(pa.chunked_array([flat])))
        nums["dns_lengths"] = np.concatenate(lengths) if len(lengths) != 1 else lengths[0]
    return _Piece(n, mid_arr, nums, cats, dns_vals)


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

    def run(self) -> None:
        buf = bytearray(4 << 20)
        for p in self.paths:
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
    try:
        return pq.ParquetFile(source, read_dictionary=_DICT_PATHS)
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
        return pq.ParquetFile(source, metadata=md, read_dictionary=dict_paths)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(
            f"{path}: not a readable Parquet file, truncated or corrupt ({_short(exc)})"
        ) from None


@dataclass
class _FileScan:
    file: DatasetFile
    piece: _Piece


def scan_file(path: Path) -> _FileScan:
    """Check and decode the first-pass columns of one file (runs in worker threads).

    The SHA-256 is left empty here: :func:`read_dataset` hashes in a thread of its own.
    """
    try:
        st = path.stat()
        source = pa.OSFile(str(path))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({_short(exc)})") from None
    with source:
        pf = _open(source, path)
        version = _check_metadata(path, pf.metadata)
        schema = pf.schema_arrow
        present = [c for c in SCAN_COLUMNS if c in schema.names]
        for name in REQUIRED_COLUMNS:
            if name not in present:
                raise DatasetError(f"{path}: required column {name!r} is missing")
        for name in present:
            if not _compatible(name, schema.field(name).type):
                raise DatasetError(f"{path}: column {name!r} has type {schema.field(name).type}")
        try:
            table = pf.read(columns=present, use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"{path}: cannot decode ({_short(exc)})") from None
    part = partition_values(path)
    constants = {k: part.get(k) for k in ("campaign", "probe_cc")}
    piece = _piece(table, constants, str(path))
    info = DatasetFile(
        path=str(path),
        size=st.st_size,
        sha256="",
        rows=table.num_rows,
        schema_version=version,
        campaign=part.get("campaign"),
        probe_cc=part.get("probe_cc"),
        date=part.get("date"),
        mtime_ns=st.st_mtime_ns,
    )
    return _FileScan(info, piece)


# -- merging strings --------------------------------------------------------------------


class _DictMerger:
    """Maps per-chunk dictionary indices to codes into one growing dictionary.

    Dictionaries are merged in batches (Arrow's ``dictionary_encode`` over the concatenated
    dictionaries, the merged one first so that earlier codes stay valid); a batch is merged
    once it is as large as the merged dictionary, which keeps the total work linear.
    """

    def __init__(self, arrays: _Arrays | None = None, name: str = "") -> None:
        self.arrays = arrays
        self.name = name
        self.values: pa.Array = pa.array([], pa.string())
        self.pending: list[tuple[int, np.ndarray, pa.Array]] = []
        self.pending_bytes = 0
        self.pending_rows = 0
        self.parts: list[np.ndarray] = []  # codes in order, when not writing into ``arrays``

    def add(self, idx: np.ndarray, dictionary: pa.Array, start: int = 0) -> None:
        if self.arrays is None:
            start = len(self.parts)
            self.parts.append(np.full(len(idx), -1, np.int32))
        if len(dictionary) == 0:  # every value null
            if self.arrays is not None:
                self.arrays.arrays[self.name][start : start + len(idx)] = -1
            return
        self.pending.append((start, idx, dictionary))
        self.pending_bytes += dictionary.nbytes
        self.pending_rows += len(idx)
        if self.pending_bytes >= max(32 << 20, self.values.nbytes) or self.pending_rows >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        # The merged values go first, so they keep their codes; every chunk of the result
        # shares one dictionary.  (Empty chunks would be dropped: there are none.)
        head = [self.values] if len(self.values) else []
        chunks = [*head, *(d for _, _, d in self.pending)]
        encoded = pc.dictionary_encode(pa.chunked_array(chunks, pa.string()))
        if encoded.num_chunks != len(chunks):  # pragma: no cover - defensive
            raise RuntimeError("dictionary_encode changed the number of chunks")
        self.values = encoded.chunk(0).dictionary
        target = self.arrays.arrays[self.name] if self.arrays is not None else None
        for k, (start, idx, _) in enumerate(self.pending, start=len(head)):
            # merged codes of the chunk's dictionary, then -1: a null (-1) index picks that
            local = encoded.chunk(k).indices.to_numpy(zero_copy_only=False)
            lookup = np.empty(len(local) + 1, np.int32)
            lookup[:-1] = local
            lookup[-1] = -1
            out = target[start : start + len(idx)] if target is not None else self.parts[start]
            np.take(lookup, idx, out=out, mode="wrap")  # indices are in [-1, len(local))
        self.pending = []
        self.pending_bytes = 0
        self.pending_rows = 0

    def finish(self) -> Cat:
        self.flush()
        if self.arrays is not None:
            return Cat(_compact_codes(self.arrays.get(self.name), len(self.values)), self.values)
        codes = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int32)
        return Cat(codes.astype(np.int32, copy=False), self.values)


def _compact_codes(codes: np.ndarray, n_values: int) -> np.ndarray:
    """Codes in the smallest signed type that holds them (the one pandas categoricals use,
    so that the verdict frame shares them instead of copying)."""
    for dtype in (np.int8, np.int16):
        if n_values < np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes


class _Builder:
    """Collects the pieces of every file into one :class:`Columns`."""

    def __init__(self, capacity: int) -> None:
        self.out = _Arrays(capacity)
        self.mids: list[pa.Array] = []
        self.cats = {name: _DictMerger(self.out, f"cat:{name}") for name in CAT_COLUMNS}
        self.dns = _DictMerger()

    def add(self, piece: _Piece) -> None:
        # grow first: a pending merge writes into the arrays that ``reserve`` may replace
        if self.out.n + piece.n > self.out.capacity:
            for merger in self.cats.values():
                merger.flush()
        start = self.out.reserve(piece.n)
        stop = start + piece.n
        provided = {f"cat:{c[0]}" for c in piece.cats}
        for name, _, fill in _Arrays._SPEC:
            arr = self.out.arrays[name]
            if name in piece.nums:
                arr[start:stop] = piece.nums[name]
            elif name not in provided:  # string columns are written by their merger
                arr[start:stop] = fill
        self.mids.append(piece.mid)
        for name, offset, idx, dictionary in piece.cats:
            self.cats[name].add(idx, dictionary, start + offset)
        for idx, dictionary in piece.dns_vals:
            self.dns.add(idx, dictionary)

    def finish(self) -> Columns:
        cats = {name: m.finish() for name, m in self.cats.items()}
        out = self.out
        lengths = out.get("dns_lengths")
        offsets = np.zeros(out.n + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Columns(
            n=out.n,
            measurement_id=pa.chunked_array(self.mids, pa.string()),
            started_at=out.get("t"),
            is_control=out.get("is_control"),
            probe_asn=out.get("probe_asn"),
            server_asn=out.get("server_asn"),
            http_status=out.get("http_status"),
            tls_cert_valid=out.get("tls_cert_valid"),
            http_verified=out.get("http_verified"),
            cats=cats,
            dns_offsets=offsets,
            dns_answers=self.dns.finish(),
        )


def columns_from_table(table: pa.Table) -> Columns:
    """:class:`Columns` of an in-memory measurements table (tests, small imports)."""
    builder = _Builder(table.num_rows)
    builder.add(_piece(table, {}, "table"))
    return builder.finish()


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
        try:
            st = path.stat()
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read ({_short(exc)})") from None
        if st.st_size != info.size or st.st_mtime_ns != info.mtime_ns:
            raise DatasetError(f"{path}: the file changed during the analysis")
        try:
            pf = pq.ParquetFile(str(path))
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
        order = np.argsort(rows, kind="stable")
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


def read_dataset(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    skip_bad: bool = False,
    threads: int = 2,
    progress: Progress | None = None,
    defer_hash: bool = False,
) -> Dataset:
    """Discover, check and scan every file of ``inputs`` (first pass), then hash them.

    ``threads`` workers decode the files while the calling thread merges the string
    dictionaries.  The SHA-256 of every file is computed by a thread of its own once the
    files are decoded; with ``defer_hash`` it keeps running after this returns (the caller
    computes meanwhile) until :meth:`Dataset.wait_hashes`.
    """
    paths = discover(inputs)
    skipped: list[dict[str, str]] = []
    total_bytes = sum(p.stat().st_size for p in paths)
    builder = _Builder(total_bytes // 64)  # a generous guess; the untouched tail costs nothing
    files: list[DatasetFile] = []
    for i, result in _in_threads(scan_file, [(p,) for p in paths], threads):
        if isinstance(result, DatasetError):
            if not skip_bad:
                raise result
            skipped.append({"path": str(paths[i]), "error": str(result)})
        else:
            assert isinstance(result, _FileScan)
            builder.add(result.piece)
            files.append(result.file)
        if progress is not None:
            progress("read", i + 1, len(paths))
    if not files:
        raise DatasetError("no readable measurement files in the input")
    hasher = _Hasher([Path(f.path) for f in files])
    hasher.start()
    columns = builder.finish()
    ds = Dataset(files, skipped, columns, FileFetcher(files), hasher)
    if not defer_hash:
        ds.wait_hashes()
    return ds


__all__ = [
    "CAT_COLUMNS",
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
