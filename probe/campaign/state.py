"""The campaign state file: which runs are done, which one is under way, what is left to upload.

``STATE_DIR/<campaign>.state.json`` is rewritten atomically (temporary file, fsync, rename) after
every transition, so a process killed at any moment finds either the old or the new state.  A
lock file (``flock``) keeps a second process from running the same campaign at once.

The dataclasses and their JSON form are pure; :func:`load_state`, :func:`save_state` and
:class:`CampaignLock` do the I/O.  Transitions live in :mod:`probe.campaign.schedule`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from probe.errors import ConfigError, StoreError

STATE_VERSION = 1
MAX_ERRORS = 20
MAX_STATE_BYTES = 64 << 20


def _ts(d: datetime | None) -> str | None:
    return d.isoformat() if d is not None else None


def _dt(s: Any) -> datetime | None:
    return datetime.fromisoformat(s) if isinstance(s, str) and s else None


@dataclass
class RunRecord:
    """One schedule slot that is over: ``complete`` (a run), or ``missed`` (skipped)."""

    slot: int
    status: str  # complete | missed
    nominal: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_id: str | None = None
    measured: int = 0
    interrupted: int = 0  # how many times it was interrupted and resumed
    uploaded_at: datetime | None = None
    pruned_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "status": self.status,
            "nominal": _ts(self.nominal),
            "started_at": _ts(self.started_at),
            "finished_at": _ts(self.finished_at),
            "run_id": self.run_id,
            "measured": self.measured,
            "interrupted": self.interrupted,
            "uploaded_at": _ts(self.uploaded_at),
            "pruned_at": _ts(self.pruned_at),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunRecord:
        nominal = _dt(d.get("nominal"))
        if nominal is None:
            raise ValueError("run record without nominal time")
        return cls(
            slot=int(d["slot"]),
            status=str(d["status"]),
            nominal=nominal,
            started_at=_dt(d.get("started_at")),
            finished_at=_dt(d.get("finished_at")),
            run_id=d.get("run_id"),
            measured=int(d.get("measured") or 0),
            interrupted=int(d.get("interrupted") or 0),
            uploaded_at=_dt(d.get("uploaded_at")),
            pruned_at=_dt(d.get("pruned_at")),
        )


@dataclass
class CurrentRun:
    """The slot being measured; still set after a crash or an interruption."""

    slot: int
    nominal: datetime
    started_at: datetime  # when this slot was first started (its run's manifest is newer)
    attempts: int = 1
    run_id: str | None = None  # known once the run has written its manifest

    def to_json(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "nominal": _ts(self.nominal),
            "started_at": _ts(self.started_at),
            "attempts": self.attempts,
            "run_id": self.run_id,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CurrentRun:
        nominal, started = _dt(d.get("nominal")), _dt(d.get("started_at"))
        if nominal is None or started is None:
            raise ValueError("current run without times")
        return cls(
            slot=int(d["slot"]),
            nominal=nominal,
            started_at=started,
            attempts=int(d.get("attempts") or 1),
            run_id=d.get("run_id"),
        )


@dataclass
class ErrorRecord:
    at: datetime
    where: str  # run | upload | prune
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"at": _ts(self.at), "where": self.where, "message": self.message}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ErrorRecord:
        at = _dt(d.get("at"))
        if at is None:
            raise ValueError("error record without time")
        return cls(at=at, where=str(d.get("where", "")), message=str(d.get("message", "")))


@dataclass
class CampaignState:
    """Everything a restarted campaign process needs to continue."""

    campaign: str
    anchor: datetime | None = None  # time origin of an interval schedule
    runs: list[RunRecord] = field(default_factory=list)
    current: CurrentRun | None = None
    errors: list[ErrorRecord] = field(default_factory=list)
    upload_failures: int = 0  # consecutive failed upload attempts
    upload_next_at: datetime | None = None  # no upload attempt before this time
    version: int = STATE_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "campaign": self.campaign,
            "anchor": _ts(self.anchor),
            "runs": [r.to_json() for r in self.runs],
            "current": self.current.to_json() if self.current else None,
            "errors": [e.to_json() for e in self.errors],
            "upload_failures": self.upload_failures,
            "upload_next_at": _ts(self.upload_next_at),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CampaignState:
        if int(d.get("version", 0)) > STATE_VERSION:
            raise ValueError(f"state version {d.get('version')} is newer than this res64")
        cur = d.get("current")
        return cls(
            campaign=str(d["campaign"]),
            anchor=_dt(d.get("anchor")),
            runs=[RunRecord.from_json(r) for r in d.get("runs", [])],
            current=CurrentRun.from_json(cur) if cur else None,
            errors=[ErrorRecord.from_json(e) for e in d.get("errors", [])][-MAX_ERRORS:],
            upload_failures=int(d.get("upload_failures") or 0),
            upload_next_at=_dt(d.get("upload_next_at")),
        )


def state_path(state_dir: Path, campaign: str) -> Path:
    return state_dir / f"{campaign}.state.json"


def load_state(state_dir: Path, campaign: str) -> CampaignState:
    """The saved state, or a fresh one when there is none."""
    p = state_path(state_dir, campaign)
    try:
        if p.stat().st_size > MAX_STATE_BYTES:
            raise ConfigError(f"{p}: state file too large")
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return CampaignState(campaign=campaign)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{p}: unreadable campaign state ({exc})") from exc
    try:
        st = CampaignState.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{p}: invalid campaign state ({exc})") from exc
    if st.campaign != campaign:
        raise ConfigError(f"{p}: state of campaign {st.campaign!r}, not {campaign!r}")
    return st


def save_state(state_dir: Path, state: CampaignState) -> None:
    """Write the state atomically (tmp + fsync + rename + fsync of the directory)."""
    p = state_path(state_dir, state.campaign)
    tmp = p.with_name(f".{p.name}.tmp")
    data = json.dumps(state.to_json(), indent=1, sort_keys=True).encode()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        with contextlib.suppress(OSError):
            fd = os.open(state_dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreError(f"cannot write campaign state {p}: {exc.strerror or exc}") from exc


class CampaignLock:
    """An exclusive ``flock`` on ``STATE_DIR/<campaign>.lock`` (released on exit or death)."""

    def __init__(self, state_dir: Path, campaign: str) -> None:
        self.path = state_dir / f"{campaign}.lock"
        self._fd: int | None = None

    def __enter__(self) -> CampaignLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise ConfigError(
                f"campaign is already running (pid {holder or '?'}; lock {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
