"""Reading public-data files and writing what they hold as a res64 dataset.

The I/O half of the importers: :func:`iter_json` reads JSON, JSON arrays and JSON Lines
(optionally gzip-compressed, as OONI publishes them) one record at a time; :class:`ImportRun`
writes the converted rows with :class:`probe.store.DatasetWriter` in the hive layout of
SPEC §7, skips records already in the dataset (same ``measurement_id`` / ``trace_id`` in the
same campaign), and keeps a run manifest ``OUT/runs/<run_id>.json`` that names every input file
with its SHA-256.  The mapping itself is pure and lives in :mod:`probe.imports.ooni` and
:mod:`probe.imports.atlas`.

Errors a user can fix (a missing input file, an unwritable output) raise
:class:`probe.errors.DatasetError` / :class:`probe.errors.StoreError` with one-line messages;
bad records inside readable files are counted and reported, never fatal.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq

from probe.errors import ConfigError, DatasetError
from probe.ids import new_run_id
from probe.imports import atlas as atlas_map
from probe.imports import ooni as ooni_map
from probe.records import Hop, Measurement
from probe.store import DatasetWriter, Manifest, partition_dir, sha256_file

__all__ = [
    "ImportRun",
    "ImportSummary",
    "JsonProblem",
    "import_atlas_files",
    "import_ooni_files",
    "iter_json",
]

MAX_RECORD_BYTES = 64 << 20  # one JSON line / document
MAX_DOCUMENT_BYTES = 256 << 20  # a whole-file JSON document (array or pretty-printed object)
BATCH_ROWS = 2000  # rows carry body prefixes (≤ 32 KiB): bounded memory
MAX_PROBLEMS = 50


@dataclass(frozen=True, slots=True)
class JsonProblem:
    """A record of a file that could not be read as JSON."""

    where: str
    reason: str


def _open(path: Path) -> IO[bytes]:
    f = path.open("rb")
    head = f.peek(2)[:2] if isinstance(f, io.BufferedReader) else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def iter_json(path: Path) -> Iterator[tuple[str, object | JsonProblem]]:
    """``(where, record)`` for every record of ``path``; unreadable parts as :class:`JsonProblem`.

    A file is a JSON array (each element a record), one JSON document, or JSON Lines; gzip is
    recognised by its magic bytes.  ``where`` is ``name:line`` (or ``name[i]`` in an array).
    """
    name = path.name
    try:
        with _open(path) as f:
            first = _first_char(f)
            if first is None:
                return
            if first == b"[":
                yield from _iter_document(f, name, array=True)
                return
            yield from _iter_lines(f, name)
    except (OSError, EOFError, zlib.error) as exc:
        yield name, JsonProblem(name, f"unreadable ({type(exc).__name__}: {exc})")


def _first_char(f: IO[bytes]) -> bytes | None:
    """The first non-blank byte, leaving the stream rewound (gzip streams are re-seekable)."""
    while True:
        chunk = f.read(4096)
        if not chunk:
            return None
        stripped = chunk.lstrip()
        if stripped:
            f.seek(0)
            return stripped[:1]


def _iter_document(f: IO[bytes], name: str, *, array: bool) -> Iterator[tuple[str, object]]:
    data = f.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        yield name, JsonProblem(name, f"JSON document larger than {MAX_DOCUMENT_BYTES >> 20} MiB")
        return
    try:
        doc = json.loads(data)
    except ValueError as exc:
        yield name, JsonProblem(name, f"invalid JSON ({exc})")
        return
    if array and isinstance(doc, list):
        for i, item in enumerate(doc):
            yield f"{name}[{i}]", item
    else:
        yield name, doc


def _iter_lines(f: IO[bytes], name: str) -> Iterator[tuple[str, object]]:
    lineno = 0
    for raw in f:
        lineno += 1
        if len(raw) > MAX_RECORD_BYTES:
            yield f"{name}:{lineno}", JsonProblem(f"{name}:{lineno}", "record too large")
            continue
        text = raw.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            if lineno == 1:
                doc = _whole_document(f)
                if doc is not None:  # not JSON Lines: one pretty-printed document
                    yield name, doc
                    return
                f.seek(0)
                f.readline()  # go on with line 2
            yield f"{name}:{lineno}", JsonProblem(f"{name}:{lineno}", f"invalid JSON ({exc})")
            continue
        yield f"{name}:{lineno}", obj


def _whole_document(f: IO[bytes]) -> object | None:
    f.seek(0)
    data = f.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# summary and writer
# --------------------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    """What an import read and wrote (also stored as the manifest's ``counts``)."""

    source: str
    out: Path
    campaign: str
    run_id: str
    files: int = 0
    records: int = 0
    measurements: int = 0
    controls: int = 0
    traces: int = 0
    hops: int = 0
    malformed: int = 0
    """Records imported with something malformed flagged in ``import_note``."""
    refused: int = 0
    """Records that could not be imported at all (not JSON, no start time, no URL...)."""
    duplicates: int = 0
    """Records already in the dataset (same id, same campaign): not written again."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Valid records of other test / result types, by type."""
    unavailable: int = 0
    """API: measurements listed by the search but whose raw data could not be fetched."""
    problems: list[str] = field(default_factory=list)
    """The first problems, one line each (``file:line: reason``)."""
    manifest_path: Path | None = None

    def problem(self, where: str, reason: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{where}: {reason}"[:300])

    def counts(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "measurements": self.measurements,
            "controls": self.controls,
            "traces": self.traces,
            "hops": self.hops,
            "malformed": self.malformed,
            "refused": self.refused,
            "duplicates": self.duplicates,
            "skipped": dict(sorted(self.skipped.items())),
            "unavailable": self.unavailable,
        }

    def rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` lines for a console table; zero counts are left out."""
        out = [("output", str(self.out)), ("campaign", self.campaign), ("run", self.run_id)]
        labels = [
            ("files read", self.files),
            ("records read", self.records),
            ("measurements written", self.measurements),
            ("control measurements written", self.controls),
            ("traceroutes written", self.traces),
            ("hops written", self.hops),
            ("malformed (flagged in import_note)", self.malformed),
            ("refused", self.refused),
            ("already in the dataset", self.duplicates),
            ("not fetched (API)", self.unavailable),
        ]
        out += [(k, str(v)) for k, v in labels if v]
        for kind, n in sorted(self.skipped.items()):
            out.append((f"skipped: {kind}", str(n)))
        return out


def _existing_ids(out: Path, table: str, campaign: str, column: str) -> set[str]:
    """Ids already stored in ``out`` for ``campaign`` (re-imports do not duplicate rows)."""
    root = partition_dir(out, table, campaign, "x", "x").parent.parent
    ids: set[str] = set()
    if not root.is_dir():
        return ids
    for p in sorted(root.glob("probe_cc=*/date=*/*.parquet")):
        try:
            ids.update(pq.read_table(p, columns=[column]).column(column).to_pylist())
        except Exception as exc:
            raise DatasetError(f"{p}: unreadable Parquet file in the output ({exc})") from exc
    return ids


class ImportRun:
    """One import: a run id, a manifest, buffered writers, de-duplication."""

    def __init__(self, out: Path, campaign: str, source: str, config: dict[str, Any]) -> None:
        if not campaign or not campaign.strip():
            raise DatasetError("campaign name must not be empty")
        self.out = out
        self.campaign = campaign
        now = datetime.now(UTC)
        self.run_id = new_run_id(now)
        self.summary = ImportSummary(source=source, out=out, campaign=campaign, run_id=self.run_id)
        self.manifest = Manifest(
            run_id=self.run_id,
            campaign=campaign,
            started_at=now.isoformat(),
            config={"command": f"import {source}", "data_source": source, **config},
            targets={},
        )
        self._writers: dict[str, DatasetWriter] = {}
        self._buffers: dict[str, list[dict[str, Any]]] = {"measurements": [], "hops": []}
        self._seen: dict[str, set[str]] = {}

    def _writer(self, table: str) -> DatasetWriter:
        w = self._writers.get(table)
        if w is None:
            part = len(self.manifest.files)  # part numbers stay unique across tables
            w = DatasetWriter(self.out, table, self.campaign, self.run_id, self.manifest, part)
            self._writers[table] = w
        return w

    def seen(self, table: str) -> set[str]:
        if table not in self._seen:
            column = "measurement_id" if table == "measurements" else "trace_id"
            self._seen[table] = _existing_ids(self.out, table, self.campaign, column)
        return self._seen[table]

    def add_measurements(self, rows: Sequence[Measurement]) -> bool:
        """Buffer the rows of one record; False (nothing written) when already stored."""
        seen = self.seen("measurements")
        if not rows or rows[0].measurement_id in seen:
            return False
        for m in rows:
            seen.add(m.measurement_id)
            self._buffers["measurements"].append(m.as_row())
        self._maybe_flush("measurements")
        return True

    def add_hops(self, trace: str, hops: Sequence[Hop]) -> bool:
        seen = self.seen("hops")
        if trace in seen:
            return False
        seen.add(trace)
        self._buffers["hops"].extend(h.as_row() for h in hops)
        self._maybe_flush("hops")
        return True

    def _maybe_flush(self, table: str, force: bool = False) -> None:
        buf = self._buffers[table]
        if buf and (force or len(buf) >= BATCH_ROWS):
            self._writer(table).write_rows(buf)
            self._buffers[table] = []

    def finish(self, status: str = "complete") -> ImportSummary:
        try:
            for table in self._buffers:
                self._maybe_flush(table, force=True)
        finally:
            self.manifest.status = status
            self.manifest.finished_at = datetime.now(UTC).isoformat()
            self.manifest.counts = self.summary.counts()
            self.manifest.save(self.out)
        self.summary.manifest_path = self.out / "runs" / f"{self.run_id}.json"
        return self.summary


def _check_inputs(paths: Sequence[Path]) -> list[dict[str, Any]]:
    if not paths:
        raise DatasetError("no input file given")
    described = []
    for p in paths:
        if not p.is_file():
            raise DatasetError(f"{p}: no such file")
        try:
            described.append({"name": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)})
        except OSError as exc:
            raise DatasetError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    return described


# --------------------------------------------------------------------------------------------
# OONI files
# --------------------------------------------------------------------------------------------


def add_ooni_record(run: ImportRun, where: str, raw: object) -> None:
    """Convert one OONI record and buffer its rows, counting what happened."""
    s = run.summary
    s.records += 1
    if isinstance(raw, JsonProblem):
        s.refused += 1
        s.problem(raw.where, raw.reason)
        return
    conv = ooni_map.convert(raw, campaign=run.campaign, run_id=run.run_id)
    if conv.skipped is not None:
        s.skipped[conv.skipped] += 1
        return
    if conv.refused is not None or conv.measurement is None:
        s.refused += 1
        s.problem(where, conv.refused or "not imported")
        return
    rows = [conv.measurement] + ([conv.control] if conv.control is not None else [])
    if not run.add_measurements(rows):
        s.duplicates += 1
        return
    s.measurements += 1
    s.controls += conv.control is not None
    if conv.problems:
        s.malformed += 1
        s.problem(where, "; ".join(conv.problems))


def import_ooni_files(paths: Sequence[Path], out: Path, *, campaign: str = "ooni") -> ImportSummary:
    """Import OONI measurement files (JSON, JSON Lines, ``.jsonl.gz``) into dataset ``out``."""
    paths = [Path(p) for p in paths]
    inputs = _check_inputs(paths)
    run = ImportRun(out, campaign, "ooni", {"inputs": inputs})
    status = "failed"
    try:
        for p in paths:
            run.summary.files += 1
            for where, raw in iter_json(p):
                add_ooni_record(run, where, raw)
        status = "complete"
    finally:
        summary = run.finish(status)
    return summary


# --------------------------------------------------------------------------------------------
# RIPE Atlas files
# --------------------------------------------------------------------------------------------


def _atlas_results(raw: object) -> tuple[list[object], object | None]:
    """A measurement dump ``{meta_data, results, probes}`` → (results, probe metadata)."""
    if isinstance(raw, dict) and isinstance(raw.get("results"), list) and "type" not in raw:
        return list(raw["results"]), raw.get("probes")
    return [raw], None


def load_probe_meta(path: Path) -> dict[int, atlas_map.ProbeInfo]:
    """Probe metadata from a file (Atlas API page, list of probes, JSONL, or a dump)."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such probe-metadata file")
    probes: dict[int, atlas_map.ProbeInfo] = {}
    for _where, obj in iter_json(path):
        if isinstance(obj, JsonProblem):
            raise DatasetError(f"{obj.where}: probe metadata {obj.reason}")
        probes.update(atlas_map.probes_from_json(obj))
    if not probes:
        raise DatasetError(
            f"{path}: no probe metadata (expected objects with 'id' and 'country_code')"
        )
    return probes


def import_atlas_files(
    paths: Sequence[Path],
    out: Path,
    *,
    probe_cc: str | None = None,
    probe_meta: Path | None = None,
    campaign: str = "atlas",
) -> ImportSummary:
    """Import RIPE Atlas traceroute results (JSON, JSON Lines, dumps) into ``out``'s hops."""
    if probe_cc is not None:
        probe_cc = probe_cc.strip().upper()
        if len(probe_cc) != 2 or not probe_cc.isalpha():
            raise ConfigError(f"--probe-cc {probe_cc!r}: expected a two-letter country code")
    paths = [Path(p) for p in paths]
    inputs = _check_inputs(paths)
    probes = load_probe_meta(probe_meta) if probe_meta is not None else {}
    config: dict[str, Any] = {"inputs": inputs, "probe_cc": probe_cc}
    if probe_meta is not None:
        config["probe_meta"] = {"name": probe_meta.name, "sha256": sha256_file(probe_meta)}
    run = ImportRun(out, campaign, "atlas", config)
    s = run.summary
    status = "failed"
    try:
        for p in paths:
            s.files += 1
            for where, raw in iter_json(p):
                if isinstance(raw, JsonProblem):
                    s.records += 1
                    s.refused += 1
                    s.problem(raw.where, raw.reason)
                    continue
                results, meta = _atlas_results(raw)
                local = dict(probes)
                if meta is not None:
                    # the file's own probe list, unless the user gave metadata
                    local = {**atlas_map.probes_from_json(meta), **probes}
                for i, res in enumerate(results):
                    _add_atlas(
                        run, f"{where}#{i}" if len(results) > 1 else where, res, local, probe_cc
                    )
        status = "complete"
    finally:
        summary = run.finish(status)
    return summary


def _add_atlas(
    run: ImportRun,
    where: str,
    raw: object,
    probes: dict[int, atlas_map.ProbeInfo],
    probe_cc: str | None,
) -> None:
    s = run.summary
    s.records += 1
    conv = atlas_map.convert(
        raw, campaign=run.campaign, run_id=run.run_id, probes=probes, probe_cc=probe_cc
    )
    if conv.skipped is not None:
        s.skipped[conv.skipped] += 1
        return
    if conv.refused is not None or conv.trace_id is None:
        s.refused += 1
        s.problem(where, conv.refused or "not imported")
        return
    if not run.add_hops(conv.trace_id, conv.hops):
        s.duplicates += 1
        return
    s.traces += 1
    s.hops += len(conv.hops)
    if conv.problems:
        s.malformed += 1
        s.problem(where, "; ".join(conv.problems))
