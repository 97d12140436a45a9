"""Rolling Parquet files in hive partitions, with a run manifest (SPEC §7).

Layout::

    OUT/measurements/campaign=<c>/probe_cc=<CC>/date=<YYYY-MM-DD>/part-<run_id>-<n>.parquet
    OUT/hops/campaign=<c>/probe_cc=<CC>/date=<YYYY-MM-DD>/part-<run_id>-<n>.parquet
    OUT/runs/<run_id>.json

Every file is written to a hidden temporary name in its final directory, fsynced, then renamed:
readers never see a partial file, and an interrupted run loses at most the batch in flight.
The manifest is rewritten atomically after every file.  ``--resume`` finds an unfinished run
with the same campaign and target list and continues it: the files on disk are the truth (a file
renamed just before a crash, but not yet in the manifest, is adopted).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from probe._version import __version__
from probe.errors import StoreError
from probe.schema import SCHEMA_VERSION, file_schema, table_schema

_PART_RE = re.compile(r"^part-(?P<run>[A-Za-z0-9TZ_-]+)-(?P<n>\d{5})\.parquet$")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _safe_part(value: str | None) -> str:
    """A partition value safe in a path (campaign names come from users)."""
    v = (value or "ZZ").strip()
    v = re.sub(r"[^A-Za-z0-9_.-]", "_", v)[:64]
    return v or "_"


def partition_dir(out: Path, table: str, campaign: str, probe_cc: str | None, date: str) -> Path:
    return (
        out
        / table
        / f"campaign={_safe_part(campaign)}"
        / f"probe_cc={_safe_part(probe_cc)}"
        / f"date={date}"
    )


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "disk full (no space left on device)"
    return exc.strerror or str(exc)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreError(f"cannot write {path}: {_why(exc)}") from exc


@dataclass
class FileEntry:
    path: str  # relative to OUT
    table: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    """``OUT/runs/<run_id>.json``: what a run is, and every file it wrote."""

    run_id: str
    campaign: str
    started_at: str
    config: dict[str, Any]
    targets: dict[str, Any]
    status: str = "running"  # running | complete | interrupted | failed
    finished_at: str | None = None
    software_version: str = __version__
    schema_version: int = SCHEMA_VERSION
    counts: dict[str, Any] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)
    resumed: int = 0

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["files"] = [f.__dict__ for f in self.files]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        d = dict(d)
        d["files"] = [FileEntry(**f) for f in d.get("files", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, out: Path) -> None:
        runs = out / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.to_json(), indent=2, sort_keys=True, default=str).encode()
        _atomic_write_bytes(runs / f"{self.run_id}.json", data)


def load_manifest(path: Path) -> Manifest:
    try:
        return Manifest.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise StoreError(f"{path}: unreadable run manifest ({exc})") from exc


class DatasetWriter:
    """Buffers rows and writes them as Parquet files; one instance per run and table."""

    def __init__(
        self,
        out: Path,
        table: str,
        campaign: str,
        run_id: str,
        manifest: Manifest,
        first_part: int = 0,
    ) -> None:
        self.out = out
        self.table = table
        self.campaign = campaign
        self.run_id = run_id
        self.manifest = manifest
        self._next = first_part
        self._schema = table_schema(table)
        self._file_schema = file_schema(table)

    def write_rows(self, rows: Sequence[dict[str, Any]]) -> list[FileEntry]:
        """Write ``rows`` (dicts of table columns): one file per (probe_cc, date) group.

        Blocking (call it from a worker thread); updates and saves the manifest.
        """
        groups: dict[tuple[str | None, str], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            ts: datetime = r["started_at"]
            groups[(r.get("probe_cc"), ts.astimezone(UTC).strftime("%Y-%m-%d"))].append(r)
        written = []
        for (cc, date), grp in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
            written.append(self._write_file(cc, date, grp))
        self.manifest.save(self.out)
        return written

    def _write_file(self, cc: str | None, date: str, rows: list[dict[str, Any]]) -> FileEntry:
        d = partition_dir(self.out, self.table, self.campaign, cc, date)
        name = f"part-{self.run_id}-{self._next:05d}.parquet"
        self._next += 1
        tmp = d / f".{name}.tmp"
        final = d / name
        try:
            d.mkdir(parents=True, exist_ok=True)
            tbl = pa.Table.from_pylist(rows, schema=self._schema)
            tbl = tbl.select(self._file_schema.names).replace_schema_metadata(self._schema.metadata)
            with tmp.open("wb") as f:
                pq.write_table(tbl, f, compression="zstd", row_group_size=len(rows) or 1)
                f.flush()
                os.fsync(f.fileno())
            size = tmp.stat().st_size
            digest = sha256_file(tmp)
            os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot write {final}: {_why(exc)}") from exc
        entry = FileEntry(
            path=str(final.relative_to(self.out)),
            table=self.table,
            rows=len(rows),
            bytes=size,
            sha256=digest,
        )
        self.manifest.files.append(entry)
        return entry


def run_files(out: Path, run_id: str, table: str = "measurements") -> list[Path]:
    """Every complete file a run wrote (from the directory tree, not the manifest)."""
    root = out / table
    if not root.exists():
        return []
    return sorted(
        p
        for p in root.glob(f"campaign=*/probe_cc=*/date=*/part-{run_id}-*.parquet")
        if _PART_RE.match(p.name)
    )


def part_number(path: Path) -> int:
    m = _PART_RE.match(path.name)
    return int(m.group("n")) if m else -1


def iter_manifests(out: Path) -> Iterator[Manifest]:
    """Every readable run manifest under ``out/runs`` (unreadable ones are passed over)."""
    runs = out / "runs"
    if not runs.is_dir():
        return
    for p in sorted(runs.glob("*.json")):
        try:
            yield load_manifest(p)
        except StoreError:
            continue


def find_resumable(out: Path, campaign: str, targets_sha256: str) -> Manifest | None:
    """The newest unfinished run of ``campaign`` over the same target list, if any."""
    best: Manifest | None = None
    for m in iter_manifests(out):
        if m.status == "complete" or m.campaign != campaign:
            continue
        if m.targets.get("sha256") != targets_sha256:
            continue
        if best is None or m.started_at > best.started_at:
            best = m
    return best


def reconcile(out: Path, manifest: Manifest) -> tuple[set[tuple[int, str]], int]:
    """Make the manifest list exactly the run's complete files on disk.

    Returns the ``(rep, url)`` keys already measured and the next free part number.
    """
    entries: list[FileEntry] = []
    done: set[tuple[int, str]] = set()
    nxt = 0
    known = {f.path: f for f in manifest.files}
    for table in ("measurements", "hops"):
        for p in run_files(out, manifest.run_id, table):
            rel = str(p.relative_to(out))
            try:
                meta = pq.read_metadata(p)
                if table == "measurements":
                    t = pq.read_table(p, columns=["rep", "url", "is_control"])
                    done.update(
                        (rep, url)
                        for rep, url, ctl in zip(
                            t.column("rep").to_pylist(),
                            t.column("url").to_pylist(),
                            t.column("is_control").to_pylist(),
                            strict=True,
                        )
                        if not ctl  # a target is done when the vantage's own row is stored
                    )
            except Exception:
                # cannot happen for renamed files unless the disk lied; keep it out of the run
                continue
            nxt = max(nxt, part_number(p) + 1)
            e = known.get(rel) or FileEntry(
                rel, table, meta.num_rows, p.stat().st_size, sha256_file(p)
            )
            entries.append(e)
    manifest.files = entries
    return done, nxt


def update_counts(manifest: Manifest, rows: Iterable[dict[str, Any]]) -> None:
    c = manifest.counts
    for r in rows:
        c["measurements"] = c.get("measurements", 0) + 1
        step = r.get("failure_step") or "ok"
        by = c.setdefault("by_failure_step", {})
        by[step] = by.get(step, 0) + 1
