"""Compact in-memory columns of measurements (what the verdicts are computed from).

:func:`analysis.load.read_dataset` decodes every file into a :class:`_Piece` (numbers as
numpy, strings as per-file dictionary indices) and a :class:`_Builder` collects the pieces
into one :class:`Columns`: integer codes into small merged dictionaries (:class:`Cat`), numpy
arrays, and the ``measurement_id`` strings kept as Arrow.  A builder may collect only some of
the columns: the pass-through columns (:data:`PASS_COLUMNS`) are read in the background while
the verdicts are computed, and :meth:`Columns.complete` joins them in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from probe.errors import DatasetError

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
#: Columns the verdicts only carry into their frame (never look at): they can be read while
#: the verdicts are computed.
PASS_COLUMNS: tuple[str, ...] = (
    "measurement_id",
    "probe_asn",
    "probe_as_name",
    "vantage_id",
    "category_code",
    "operator_cc",
    "server_cc",
    "http_verified",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("measurement_id", "started_at", "url")

#: Numeric arrays of a builder: (name, dtype, fill for a file without the column, source).
_NUMERIC: tuple[tuple[str, type, int, str], ...] = (
    ("t", np.int64, 0, "started_at"),
    ("is_control", np.bool_, 0, "is_control"),
    ("probe_asn", np.uint32, 0, "probe_asn"),
    ("server_asn", np.uint32, 0, "server_asn"),
    ("http_status", np.int16, -1, "http_status"),
    ("tls_cert_valid", np.int8, -1, "tls_cert_valid"),
    ("http_verified", np.int8, -1, "http_verified"),
    ("dns_lengths", np.int32, 0, "dns_answers"),
)


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
    """The first-pass columns of every measurement, compact and aligned by row.

    When ``pending`` is set, the :data:`PASS_COLUMNS` (``measurement_id``, ``probe_asn``,
    ``http_verified`` and their string columns in ``cats``) are still being read: they are
    ``None`` / absent until :meth:`complete` is called.
    """

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
    pending: Callable[[], dict[str, Any]] | None = None

    def cat(self, name: str) -> Cat:
        return self.cats[name]

    def complete(self) -> Columns:
        """Wait for the columns read in the background and join them in (a read error,
        e.g. a file changed since the first pass, is raised here)."""
        if self.pending is not None:
            parts = self.pending()
            self.pending = None
            if parts.pop("n") != self.n:
                raise DatasetError("the input files changed during the analysis")
            self.cats.update(parts.pop("cats"))
            for name, value in parts.items():
                setattr(self, name, value)
        return self


class _Arrays:
    """Growable numeric columns (capacity doubles; the unused tail is never touched)."""

    def __init__(self, capacity: int, spec: Collection[tuple[str, type, int]]) -> None:
        self.n = 0
        self.spec = tuple(spec)
        self.capacity = max(capacity, 1024)
        self.arrays = {name: np.zeros(self.capacity, dtype) for name, dtype, _ in self.spec}

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
    """The columns of one file: numbers as numpy, strings still to be merged."""

    n: int
    mid: pa.Array | None
    nums: dict[str, np.ndarray]
    cats: list[tuple[str, int, np.ndarray, pa.Array]]  # (column, offset, indices, dictionary)
    dns_vals: list[tuple[np.ndarray, pa.Array]]


def _dict_chunks(col: pa.ChunkedArray) -> Iterator[tuple[int, np.ndarray, pa.Array]]:
    """(offset, indices, dictionary) of every chunk of a string or dictionary column.

    Dictionary chunks (the files of a batch) are concatenated first: Arrow unifies their
    dictionaries, so one dictionary per column comes out of a batch, not one per file.
    """
    chunks = col.chunks
    if len(chunks) > 1 and all(pa.types.is_dictionary(c.type) for c in chunks):
        chunks = [pa.concat_arrays(chunks)]
    pos = 0
    for chunk in chunks:
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


def _piece(
    table: pa.Table,
    constants: dict[str, str | None],
    origin: str,
    columns: Collection[str] = SCAN_COLUMNS,
) -> _Piece:
    """The ``columns`` of ``table`` (one file, or an in-memory table) that it holds; the
    constants stand for ``campaign`` / ``probe_cc`` when the table lacks them."""
    n = table.num_rows
    names = set(table.column_names) & set(columns)
    mid_arr = None
    if "measurement_id" in names:
        mid = table.column("measurement_id")
        mid_arr = mid.combine_chunks() if mid.num_chunks != 1 else mid.chunk(0)
        if pa.types.is_dictionary(mid_arr.type):
            mid_arr = mid_arr.cast(mid_arr.type.value_type)
        if not pa.types.is_string(mid_arr.type):
            mid_arr = mid_arr.cast(pa.string())
    nums: dict[str, np.ndarray] = {}
    if "started_at" in names:
        ts = table.column("started_at")
        if ts.null_count:
            raise DatasetError(f"{origin}: {ts.null_count} rows without started_at")
        ts_arr = ts.combine_chunks() if ts.num_chunks != 1 else ts.chunk(0)
        if ts_arr.type.unit != "us":
            ts_arr = ts_arr.cast(pa.timestamp("us", tz="UTC"))
        nums["t"] = ts_arr.cast(pa.int64()).to_numpy(zero_copy_only=False)
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
        elif name in columns and constants.get(name) is not None:
            const = pa.array([constants[name]], pa.string())
            cats.append((name, 0, np.zeros(n, np.int32), const))

    dns_vals: list[tuple[np.ndarray, pa.Array]] = []
    if "dns_answers" in names:
        lengths, flats = [], []
        for chunk in table.column("dns_answers").chunks:
            length = pc.list_value_length(chunk)
            if length.null_count:
                length = length.fill_null(0)
            lengths.append(length.to_numpy(zero_copy_only=False))
            flats.append(chunk.flatten())
        if flats:
            flat = pa.chunked_array(flats, flats[0].type)
            dns_vals.extend((idx, d) for _, idx, d in _dict_chunks(flat))
        nums["dns_lengths"] = np.concatenate(lengths) if len(lengths) != 1 else lengths[0]
    return _Piece(n, mid_arr, nums, cats, dns_vals)


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
        target = None
        if self.arrays is not None:
            target = self.arrays.arrays[self.name]
            if len(self.values) > np.iinfo(target.dtype).max:  # codes outgrow int16
                target = self.arrays.arrays[self.name] = target.astype(np.int32)
        dtype = target.dtype if target is not None else np.int32
        for k, (start, idx, _) in enumerate(self.pending, start=len(head)):
            # merged codes of the chunk's dictionary, then -1: a null (-1) index picks that
            local = encoded.chunk(k).indices.to_numpy(zero_copy_only=False)
            lookup = np.empty(len(local) + 1, dtype)
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
            return codes.astype(dtype, copy=False)
    return codes.astype(np.int32, copy=False)


class _Builder:
    """Collects the pieces of every file into one :class:`Columns` (or, for a subset of the
    columns, into the parts that :meth:`Columns.complete` joins in)."""

    def __init__(self, capacity: int, columns: Collection[str] = SCAN_COLUMNS) -> None:
        self.columns = frozenset(columns)
        spec = [(name, dtype, fill) for name, dtype, fill, src in _NUMERIC if src in self.columns]
        cat_names = [c for c in CAT_COLUMNS if c in self.columns]
        # string codes start as int16 (pandas' type for up to 32,767 categories, so most are
        # kept as built); a merger widens its array if the dictionary outgrows that
        spec += [(f"cat:{name}", np.int16, -1) for name in cat_names]
        self.out = _Arrays(capacity, spec)
        self.mids: list[pa.Array] = []
        self.cats = {name: _DictMerger(self.out, f"cat:{name}") for name in cat_names}
        self.dns = _DictMerger()

    def add(self, piece: _Piece) -> None:
        # grow first: a pending merge writes into the arrays that ``reserve`` may replace
        if self.out.n + piece.n > self.out.capacity:
            for merger in self.cats.values():
                merger.flush()
        start = self.out.reserve(piece.n)
        stop = start + piece.n
        provided = {f"cat:{c[0]}" for c in piece.cats}
        for name, _, fill in self.out.spec:
            arr = self.out.arrays[name]
            if name in piece.nums:
                arr[start:stop] = piece.nums[name]
            elif name not in provided:  # string columns are written by their merger
                arr[start:stop] = fill
        if "measurement_id" in self.columns:
            if piece.mid is None:
                raise DatasetError("a file without measurement_id")  # pragma: no cover
            self.mids.append(piece.mid)
        for name, offset, idx, dictionary in piece.cats:
            self.cats[name].add(idx, dictionary, start + offset)
        for idx, dictionary in piece.dns_vals:
            self.dns.add(idx, dictionary)

    def parts(self) -> dict[str, Any]:
        """The collected columns, by :class:`Columns` field name."""
        out = self.out
        parts: dict[str, Any] = {"n": out.n, "cats": {n: m.finish() for n, m in self.cats.items()}}
        if "measurement_id" in self.columns:
            parts["measurement_id"] = pa.chunked_array(self.mids, pa.string())
        for name, _, _, src in _NUMERIC:
            if src in self.columns and name != "dns_lengths":
                parts["started_at" if name == "t" else name] = out.get(name)
        if "dns_answers" in self.columns:
            offsets = np.zeros(out.n + 1, np.int64)
            np.cumsum(out.get("dns_lengths"), out=offsets[1:])
            parts["dns_offsets"] = offsets
            parts["dns_answers"] = self.dns.finish()
        return parts

    def finish(self) -> Columns:
        return Columns(**self.parts())


def columns_from_table(table: pa.Table) -> Columns:
    """:class:`Columns` of an in-memory measurements table (tests, small imports)."""
    for req in REQUIRED_COLUMNS:
        if req not in table.column_names:
            raise DatasetError(f"table: required column {req!r} is missing")
    builder = _Builder(table.num_rows)
    builder.add(_piece(table, {}, "table"))
    return builder.finish()
