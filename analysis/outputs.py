"""The output files of an analysis: their columns, how they are written and hashed.

Every file is written to a temporary name and renamed when complete (:func:`_atomic`); the
writers run in threads of their own (:class:`_Background`) and hash what they wrote while it
is still in the page cache (:func:`_write_digested`), for ``analysis.json``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import evidence, rules
from analysis.load import sha256_file
from probe.errors import StoreError

OUTPUTS = (
    "verdicts.parquet",
    "targets.parquet",
    "targets.csv",
    "pairs.parquet",
    "pairs.csv",
    "analysis.json",
)


#: Columns of ``verdicts.parquet`` (the in-memory frame has a few more, e.g. operator_cc).
VERDICT_COLUMNS: tuple[str, ...] = (
    "measurement_id",
    "started_at",
    "campaign",
    "probe_cc",
    "probe_asn",
    "probe_as_name",
    "vantage_id",
    "is_control",
    "url",
    "category_code",
    "http_status",
    "http_title",
    "failure",
    "fingerprint_id",
    "rule_id",
    "observation",
    "mechanism",
    "explicit",
    "status",
    "confidence",
    "locus",
    "responsible_cc",
    "locus_rule_id",
    "n_controls_ok",
    "controls_two_countries",
    "hop_asn",
)


class _Background:
    """Runs ``func(*args)`` in a thread; :meth:`result` joins, re-raises its error or
    returns its value."""

    def __init__(self, func: Callable[..., Any], *args: object) -> None:
        self.error: BaseException | None = None
        self.value: Any = None

        def run() -> None:
            try:
                self.value = func(*args)
            except BaseException as exc:  # re-raised in the caller's thread
                self.error = exc

        self.thread = threading.Thread(target=run, name="res64-write", daemon=True)
        self.thread.start()

    def result(self) -> Any:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def _digest(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of an output file, as ``analysis.json`` lists them."""
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def _write_digested(
    paths: Sequence[Path], write: Callable[..., Any], *args: Any
) -> dict[Path, dict[str, Any]]:
    """``write(*args)``, then the digests of ``paths`` (run in a writer thread, so that each
    output is hashed while it is still in the page cache and off the main thread)."""
    write(*args)
    return {p: _digest(p) for p in paths}


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: Verdict columns that every verdict has: stored as required (not nullable) Parquet
#: columns, which saves writing a definition level per value.
VERDICT_REQUIRED: frozenset[str] = frozenset(
    {
        "measurement_id",
        "started_at",
        "probe_cc",
        "is_control",
        "url",
        "rule_id",
        "observation",
        "mechanism",
        "explicit",
        "status",
        "n_controls_ok",
        "controls_two_countries",
    }
)


def _table(frame: pd.DataFrame, name: str) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta.pop(b"pandas", None)
    meta.update(
        {
            b"res64.table": name.encode(),
            b"res64.rules_version": str(rules.RULES_VERSION).encode(),
        }
    )
    if name == "verdicts":  # (a column with a null after all simply stays nullable)
        fields = [
            f.with_nullable(f.name not in VERDICT_REQUIRED or table.column(f.name).null_count > 0)
            for f in table.schema
        ]
        table = table.cast(pa.schema(fields))
    return table.replace_schema_metadata(meta)


def _write_parquet(frame: pd.DataFrame, path: Path, name: str) -> None:
    table = _table(frame, name)
    dict_cols = [
        f.name for f in table.schema if pa.types.is_dictionary(f.type) or f.name.endswith("_cc")
    ]
    # Min/max statistics for numbers and times (row-group pruning by period, status code,
    # ...).  Not for the dictionary-coded text columns: their rows are in no useful order,
    # so the statistics would prune nothing, and computing them is a third of the time it
    # takes to write ten million verdicts.  Nor for measurement_id (unique, unordered).
    stats_cols = [
        f.name
        for f in table.schema
        if f.name != "measurement_id"
        and not pa.types.is_dictionary(f.type)
        and not pa.types.is_string(f.type)
    ]

    # Unique identifiers as their lengths (delta-coded) then their bytes: smaller and
    # quicker to write than the plain encoding; every Parquet reader reads it.
    encodings = (
        {"measurement_id": "DELTA_LENGTH_BYTE_ARRAY"}
        if "measurement_id" in table.column_names and "measurement_id" not in dict_cols
        else None
    )

    def write(tmp: Path) -> None:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=1,
            use_dictionary=dict_cols or False,
            write_statistics=stats_cols or False,
            column_encoding=encodings,
        )

    _atomic(path, write)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    _atomic(path, lambda tmp: evidence.write_csv(df, tmp))


def _write_targets_pairs(df: pd.DataFrame, out: Path, stem: str) -> tuple[Path, Path]:
    pq_path, csv_path = out / f"{stem}.parquet", out / f"{stem}.csv"
    _write_parquet(df, pq_path, stem)
    _write_csv(df, csv_path)
    return pq_path, csv_path
