"""Campaign specification: a TOML file, validated into a frozen :class:`CampaignSpec` (pure).

Every error is a :class:`probe.errors.ConfigError` whose message starts ``FILE:LINE:``: syntax
errors carry tomllib's position, semantic errors the line of the offending key (found in the
text, since tomllib keeps no positions).  Relative paths are relative to the spec file.

Credentials are never read from a spec: keys that look like secrets are refused, and so are
URLs with a user or password in them.  Uploads take credentials from the environment or the
standard AWS configuration (``~/.aws``, ``AWS_PROFILE``).

``docs/campaign.example.toml`` documents every key.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from probe.config import DEFAULT_CONTROL_RESOLVER, parse_host_port, validate_proxy
from probe.errors import ConfigError

MAX_SPEC_BYTES = 1 << 20
MAX_TIMES = 10_000
TRACE_MODES = ("none", "failed", "all")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CC_RE = re.compile(r"^[A-Za-z]{2}$")
_VID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SECRET_WORDS = ("secret", "password", "passwd", "token", "credential", "access_key", "key_id")

CREDENTIALS_HINT = (
    "credentials are never read from a campaign spec: set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY in the environment (or an EnvironmentFile), or use ~/.aws/credentials "
    "with AWS_PROFILE or [upload] profile"
)


# --------------------------------------------------------------------------------------------
# The validated spec


@dataclass(frozen=True, slots=True)
class VantageSpec:
    """Where the campaign measures from (the same options as ``res64 measure``)."""

    country: str | None = None
    source_address: str | None = None
    proxy: str | None = None
    resolver: str | None = None
    control_resolver: str | None = DEFAULT_CONTROL_RESOLVER  # None = off
    ca_bundle: Path | None = None
    geoip: Path | None = None
    geoip_overrides: Path | None = None
    vantage_id: str | None = None
    discover: bool = True


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """Knobs of each run."""

    concurrency: int = 64
    per_host: int = 2
    timeout: float = 20.0
    body_bytes: int = 32 * 1024
    batch: int = 256


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """When runs happen.  Exactly one of ``interval``, ``times``, ``daily`` is set.

    - ``interval`` (seconds): run k is due at ``anchor + k * interval + jitter_k``; a run that
      starts late shifts the following ones (never two runs closer than the interval).
    - ``times``: absolute UTC instants, one run each.
    - ``daily``: times of day (UTC), one run at each, every day.

    ``jitter`` (seconds): a random delay in ``[0, jitter)`` added to each run, the same for a
    given campaign and run number (so a restart does not move it).  The campaign ends after
    ``runs`` completed runs or at ``until``, whichever comes first.  ``catch_up``: a run whose
    time passed while the host was down runs once, late (several missed runs of a ``times`` or
    ``daily`` schedule collapse into that one); with ``catch_up = false`` it is skipped.
    """

    interval: float | None = None
    times: tuple[datetime, ...] = ()
    daily: tuple[time, ...] = ()
    jitter: float = 0.0
    start: datetime | None = None
    runs: int | None = None
    until: datetime | None = None
    catch_up: bool = True

    @property
    def mode(self) -> str:
        if self.interval is not None:
            return "interval"
        return "times" if self.times else "daily"


@dataclass(frozen=True, slots=True)
class UploadSpec:
    """Where finished runs are copied (an fsspec URL; credentials from the environment)."""

    dest: str
    endpoint_url: str | None = None
    profile: str | None = None
    retries: int = 4
    retry_min: float = 30.0  # back-off between upload attempts after a failure (seconds)
    retry_max: float = 3600.0
    final_wait: float = 600.0  # after the last run, keep retrying pending uploads this long


@dataclass(frozen=True, slots=True)
class RetentionSpec:
    """Delete local Parquet files of runs uploaded more than ``local_days`` days ago."""

    local_days: float | None = None


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A validated campaign specification."""

    path: Path
    name: str
    targets: tuple[Path, ...]
    out: str
    data_dir: Path  # the local dataset the runs write (``out``, or a staging dir for a URL)
    state_dir: Path
    trace: str = "none"
    vantage: VantageSpec = field(default_factory=VantageSpec)
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    schedule: ScheduleSpec = field(default_factory=lambda: ScheduleSpec(interval=86400.0))
    upload: UploadSpec | None = None
    retention: RetentionSpec = field(default_factory=RetentionSpec)

    @property
    def out_is_url(self) -> bool:
        return is_url(self.out)


# --------------------------------------------------------------------------------------------
# Pure helpers


def is_url(value: str) -> bool:
    """True for ``scheme://...`` (an fsspec URL) other than ``file://``."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    return bool(m) and m.group(1).lower() != "file"


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"6h"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 6h or 1d")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s, 15m, 6h or 1d")
    text = value.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration such as 30s, 15m, 6h or 1d, got {value!r}")
    return total


def format_duration(seconds: float) -> str:
    """``3600`` → ``"1h"``, ``90`` → ``"1m30s"`` (for messages and status)."""
    s = round(seconds)
    if s <= 0:
        return f"{seconds:.2g}s"
    parts = []
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= n:
            parts.append(f"{s // n}{unit}")
            s %= n
    return "".join(parts)


_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER_RE = re.compile(rf"^\[\[?\s*({_DOTTED})\s*\]\]?")
_ASSIGN_RE = re.compile(rf"^({_DOTTED})\s*=")


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(_KEY, text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each dotted key path (and table header) to its first line number in ``text``."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        m = _HEADER_RE.match(s)
        if m:
            table = _split_dotted(m.group(1))
            lines.setdefault(table, n)
            continue
        m = _ASSIGN_RE.match(s)
        if m:
            key = table + _split_dotted(m.group(1))
            for i in range(len(table) + 1, len(key) + 1):
                lines.setdefault(key[:i], n)
    return lines


def _syntax_error(path: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    msg = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", msg)
    if m:
        return ConfigError(f"{path}:{m.group(1)}: {msg[: m.start()]} (column {m.group(2)})")
    m = re.search(r"\s*\(at end of document\)\s*$", msg)
    if m:
        n = max(1, len(getattr(exc, "doc", "").splitlines()) or 1)
        return ConfigError(f"{path}:{n}: {msg[: m.start()]} (at end of file)")
    return ConfigError(f"{path}:1: {msg}")


class _Reader:
    """Typed access to the parsed TOML with errors that name the key's line."""

    def __init__(self, data: dict[str, Any], text: str, path: str, base: Path) -> None:
        self.data = data
        self.lines = key_lines(text)
        self.path = path
        self.base = base

    def line(self, key: tuple[str, ...]) -> int:
        for i in range(len(key), 0, -1):
            if key[:i] in self.lines:
                return self.lines[key[:i]]
        return 1

    def error(self, key: tuple[str, ...], message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{self.line(key)}: {message}")

    def table(self, key: tuple[str, ...]) -> dict[str, Any]:
        node: Any = self.data
        for k in key:
            node = node.get(k, {}) if isinstance(node, dict) else {}
        if not isinstance(node, dict):
            raise self.error(key, f"{'.'.join(key)} must be a table")
        return node

    def check_keys(self, key: tuple[str, ...], allowed: Iterable[str]) -> None:
        allowed = set(allowed)
        for k in self.table(key):
            if k not in allowed:
                name = ".".join((*key, k))
                hint = ", ".join(sorted(allowed))
                raise self.error((*key, k), f"unknown key {name!r} (expected one of: {hint})")

    def get(self, key: tuple[str, ...]) -> Any:
        return self.table(key[:-1]).get(key[-1])

    def str_(self, key: tuple[str, ...], default: str | None = None) -> str | None:
        v = self.get(key)
        if v is None:
            return default
        if not isinstance(v, str) or not v.strip():
            raise self.error(key, f"{'.'.join(key)} must be a non-empty string")
        return v.strip()

    def bool_(self, key: tuple[str, ...], default: bool) -> bool:
        v = self.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.error(key, f"{'.'.join(key)} must be true or false")
        return v

    def int_(self, key: tuple[str, ...], default: int | None, lo: int, hi: int) -> int | None:
        v = self.get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.error(key, f"{'.'.join(key)} must be an integer from {lo} to {hi}")
        return v

    def duration(
        self, key: tuple[str, ...], default: float | None, lo: float = 0.0
    ) -> float | None:
        v = self.get(key)
        if v is None:
            return default
        try:
            s = parse_duration(v)
        except ValueError as exc:
            raise self.error(key, f"{'.'.join(key)}: {exc}") from None
        if s < lo:
            raise self.error(key, f"{'.'.join(key)} must be at least {format_duration(lo)}")
        return s

    def path_(self, key: tuple[str, ...], must_exist: bool = False) -> Path | None:
        v = self.str_(key)
        if v is None:
            return None
        p = Path(v).expanduser()
        p = p if p.is_absolute() else self.base / p
        if must_exist and not p.is_file():
            raise self.error(key, f"{'.'.join(key)}: {p} is not a readable file")
        return p

    def instant(self, key: tuple[str, ...], value: Any = None) -> datetime:
        v = self.get(key) if value is None else value
        if isinstance(v, datetime):
            return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        if isinstance(v, date):
            return datetime(v.year, v.month, v.day, tzinfo=UTC)
        if isinstance(v, str):
            try:
                d = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
        raise self.error(
            key, f"{'.'.join(key)} must be a date-time such as 2026-12-01T06:00:00Z (UTC)"
        )


def _check_no_secrets(r: _Reader, node: dict[str, Any], key: tuple[str, ...] = ()) -> None:
    for k, v in node.items():
        low = k.lower()
        if any(w in low for w in _SECRET_WORDS) or low in ("key", "aws_key"):
            raise r.error((*key, k), f"{'.'.join((*key, k))}: {CREDENTIALS_HINT}")
        if isinstance(v, dict):
            _check_no_secrets(r, v, (*key, k))


def _check_url(r: _Reader, key: tuple[str, ...], url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise r.error(key, f"{what}: a user or password in the URL; {CREDENTIALS_HINT}")
    return url


# --------------------------------------------------------------------------------------------
# Parsing


TOP_KEYS = ("name", "targets", "out", "trace", "state_dir", "staging_dir")
TABLES = ("vantage", "measure", "schedule", "upload", "retention")
VANTAGE_KEYS = (
    "country",
    "source_address",
    "proxy",
    "resolver",
    "control_resolver",
    "ca_bundle",
    "geoip",
    "geoip_overrides",
    "vantage_id",
    "discover",
)
MEASURE_KEYS = ("concurrency", "per_host", "timeout", "body_bytes", "batch")
SCHEDULE_KEYS = ("interval", "times", "jitter", "start", "runs", "until", "catch_up")
UPLOAD_KEYS = (
    "dest",
    "endpoint_url",
    "profile",
    "retries",
    "retry_min",
    "retry_max",
    "final_wait",
)
RETENTION_KEYS = ("local_days",)


def load_spec(path: str | Path, *, check_files: bool = True) -> CampaignSpec:
    """Read and validate a campaign spec file (ConfigError ``FILE:LINE: message``)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise ConfigError(f"{p}:1: file too large ({size} bytes; limit {MAX_SPEC_BYTES})")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such campaign spec") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{line}: not UTF-8 text") from None
    return parse_spec(text, p.resolve(), check_files=check_files)


def parse_spec(text: str, path: Path, *, check_files: bool = True) -> CampaignSpec:
    """Validate spec ``text`` read from ``path`` (used for messages and relative paths)."""
    shown = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(shown, exc) from None
    r = _Reader(data, text, shown, path.parent)
    _check_no_secrets(r, data)
    r.check_keys((), (*TOP_KEYS, *TABLES))

    name = r.str_(("name",))
    if name is None:
        raise r.error((), "missing key 'name' (the campaign name, e.g. name = \"weekly-global\")")
    if not _NAME_RE.match(name):
        raise r.error(("name",), "name: 1-64 characters from A-Z a-z 0-9 _ . -")

    targets = _targets(r, check_files)
    out = r.str_(("out",))
    if out is None:
        raise r.error((), "missing key 'out' (a dataset directory or an fsspec URL)")
    if out.lower().startswith("file://"):
        out = urlsplit(out).path
    if is_url(out):
        _check_url(r, ("out",), out, "out")
    trace = r.str_(("trace",), "none")
    if trace not in TRACE_MODES:
        raise r.error(("trace",), f"trace must be one of {', '.join(TRACE_MODES)}")

    vantage = _vantage(r, check_files)
    measure = _measure(r)
    schedule = _schedule(r)
    upload = _upload(r, out)
    retention = _retention(r, upload)

    if is_url(out):
        staging = r.path_(("staging_dir",))
        if staging is None:
            import platformdirs

            staging = Path(platformdirs.user_data_dir("res64")) / "campaigns" / name / "data"
        data_dir = staging
    else:
        if r.get(("staging_dir",)) is not None:
            raise r.error(("staging_dir",), "staging_dir is only used when out is a URL")
        o = Path(out).expanduser()
        data_dir = o if o.is_absolute() else path.parent / o
    state_dir = r.path_(("state_dir",)) or data_dir / "_campaign"

    return CampaignSpec(
        path=path,
        name=name,
        targets=targets,
        out=out if is_url(out) else str(data_dir),
        data_dir=data_dir,
        state_dir=state_dir,
        trace=trace or "none",
        vantage=vantage,
        measure=measure,
        schedule=schedule,
        upload=upload,
        retention=retention,
    )


def _targets(r: _Reader, check_files: bool) -> tuple[Path, ...]:
    v = r.get(("targets",))
    if v is None:
        raise r.error((), "missing key 'targets' (a target CSV file or a list of them)")
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise r.error(("targets",), "targets must be a file name or a list of file names")
    out = []
    for item in items:
        p = Path(item).expanduser()
        p = p if p.is_absolute() else r.base / p
        if check_files and not p.is_file():
            raise r.error(("targets",), f"targets: {p} is not a readable file")
        out.append(p)
    return tuple(out)


def _vantage(r: _Reader, check_files: bool) -> VantageSpec:
    t = ("vantage",)
    r.check_keys(t, VANTAGE_KEYS)
    country = r.str_((*t, "country"))
    if country is not None and not _CC_RE.match(country):
        raise r.error((*t, "country"), "vantage.country: an ISO 3166-1 alpha-2 code such as DE")
    src = r.str_((*t, "source_address"))
    if src is not None:
        try:
            ipaddress.ip_address(src)
        except ValueError:
            raise r.error((*t, "source_address"), f"{src!r} is not an IP address") from None
    proxy = r.str_((*t, "proxy"))
    if proxy is not None:
        try:
            validate_proxy(proxy)
        except ConfigError as exc:
            raise r.error((*t, "proxy"), str(exc).replace("--proxy", "vantage.proxy")) from None
    resolver = r.str_((*t, "resolver"))
    if resolver is not None:
        try:
            parse_host_port(resolver, 53, "vantage.resolver")
        except ConfigError as exc:
            raise r.error((*t, "resolver"), str(exc)) from None
    ctl = r.str_((*t, "control_resolver"), DEFAULT_CONTROL_RESOLVER)
    if ctl is not None and ctl.lower() == "none":
        ctl = None
    elif ctl is not None and ctl.startswith("https://"):
        _check_url(r, (*t, "control_resolver"), ctl, "vantage.control_resolver")
    elif ctl is not None:
        try:
            parse_host_port(ctl, 53, "vantage.control_resolver")
        except ConfigError as exc:
            raise r.error((*t, "control_resolver"), str(exc)) from None
    vid = r.str_((*t, "vantage_id"))
    if vid is not None and not _VID_RE.match(vid):
        raise r.error((*t, "vantage_id"), "vantage.vantage_id: 1-64 characters A-Z a-z 0-9 _ . -")
    return VantageSpec(
        country=country.upper() if country else None,
        source_address=src,
        proxy=proxy,
        resolver=resolver,
        control_resolver=ctl,
        ca_bundle=r.path_((*t, "ca_bundle"), must_exist=check_files),
        geoip=r.path_((*t, "geoip"), must_exist=check_files),
        geoip_overrides=r.path_((*t, "geoip_overrides"), must_exist=check_files),
        vantage_id=vid,
        discover=r.bool_((*t, "discover"), True),
    )


def _measure(r: _Reader) -> MeasureSpec:
    t = ("measure",)
    r.check_keys(t, MEASURE_KEYS)
    timeout = r.duration((*t, "timeout"), 20.0, lo=0.1)
    return MeasureSpec(
        concurrency=r.int_((*t, "concurrency"), 64, 1, 4096) or 64,
        per_host=r.int_((*t, "per_host"), 2, 1, 16) or 2,
        timeout=timeout if timeout is not None else 20.0,
        body_bytes=r.int_((*t, "body_bytes"), 32 * 1024, 0, 1 << 20) or 0,
        batch=r.int_((*t, "batch"), 256, 1, 100_000) or 256,
    )


def _schedule(r: _Reader) -> ScheduleSpec:
    t = ("schedule",)
    if "schedule" not in r.data:
        raise r.error((), 'missing table [schedule] (interval = "6h" and runs = N, or times)')
    r.check_keys(t, SCHEDULE_KEYS)
    tbl = r.table(t)
    interval = r.duration((*t, "interval"), None, lo=1.0)
    raw_times = tbl.get("times")
    if (interval is None) == (raw_times is None):
        raise r.error(t, "schedule: give either interval or times (not both)")
    times: list[datetime] = []
    daily: list[time] = []
    if raw_times is not None:
        if not isinstance(raw_times, list) or not raw_times:
            raise r.error((*t, "times"), "schedule.times must be a non-empty list")
        if len(raw_times) > MAX_TIMES:
            raise r.error((*t, "times"), f"schedule.times: at most {MAX_TIMES} entries")
        for v in raw_times:
            if isinstance(v, time):
                if v.tzinfo is not None:
                    raise r.error((*t, "times"), "schedule.times: times of day are UTC; no offset")
                daily.append(v)
            else:
                times.append(r.instant((*t, "times"), v))
        if times and daily:
            raise r.error(
                (*t, "times"),
                "schedule.times: either date-times (one run each) or times of day (daily), "
                "not both",
            )
        if len(set(times)) != len(times) or len(set(daily)) != len(daily):
            raise r.error((*t, "times"), "schedule.times: duplicate entries")
    jitter = r.duration((*t, "jitter"), 0.0) or 0.0
    if interval is not None and jitter >= interval:
        raise r.error((*t, "jitter"), "schedule.jitter must be shorter than the interval")
    start = r.instant((*t, "start")) if tbl.get("start") is not None else None
    until = r.instant((*t, "until")) if tbl.get("until") is not None else None
    runs = r.int_((*t, "runs"), None, 1, 10_000_000)
    if start is not None and times:
        raise r.error((*t, "start"), "schedule.start applies to interval and daily schedules")
    if start and until and until <= start:
        raise r.error((*t, "until"), "schedule.until must be after schedule.start")
    if runs is None and until is None and not times:
        raise r.error(t, "schedule: give runs = N or until = DATE-TIME (when does it end?)")
    return ScheduleSpec(
        interval=interval,
        times=tuple(sorted(times)),
        daily=tuple(sorted(daily)),
        jitter=jitter,
        start=start,
        runs=runs,
        until=until,
        catch_up=r.bool_((*t, "catch_up"), True),
    )


def _upload(r: _Reader, out: str) -> UploadSpec | None:
    t = ("upload",)
    r.check_keys(t, UPLOAD_KEYS)
    dest = r.str_((*t, "dest"))
    if dest is None and r.table(t):
        raise r.error(t, "upload: missing key 'dest' (e.g. s3://bucket/prefix)")
    if is_url(out):
        if dest is not None and dest.rstrip("/") != out.rstrip("/"):
            raise r.error(
                (*t, "dest"),
                "upload.dest: out is already a remote URL (runs are uploaded there); "
                "set out to a local directory to upload elsewhere",
            )
        dest = out
    if dest is None:
        return None
    if not is_url(dest) and not dest.startswith("/"):
        raise r.error((*t, "dest"), "upload.dest must be an fsspec URL or an absolute path")
    _check_url(r, (*t, "dest"), dest, "upload.dest")
    endpoint = r.str_((*t, "endpoint_url"))
    if endpoint is not None:
        _check_url(r, (*t, "endpoint_url"), endpoint, "upload.endpoint_url")
        if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
            raise r.error((*t, "endpoint_url"), "upload.endpoint_url must be http(s)://HOST[:PORT]")
    retry_min = r.duration((*t, "retry_min"), 30.0, lo=0.01) or 30.0
    retry_max = r.duration((*t, "retry_max"), 3600.0, lo=0.01) or 3600.0
    if retry_max < retry_min:
        raise r.error((*t, "retry_max"), "upload.retry_max must be at least retry_min")
    final_wait = r.duration((*t, "final_wait"), 600.0)
    return UploadSpec(
        dest=dest.rstrip("/"),
        endpoint_url=endpoint,
        profile=r.str_((*t, "profile")),
        retries=r.int_((*t, "retries"), 4, 0, 100) or 0,
        retry_min=retry_min,
        retry_max=retry_max,
        final_wait=final_wait if final_wait is not None else 600.0,
    )


def _retention(r: _Reader, upload: UploadSpec | None) -> RetentionSpec:
    t = ("retention",)
    r.check_keys(t, RETENTION_KEYS)
    v = r.get((*t, "local_days"))
    if v is None:
        return RetentionSpec()
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise r.error((*t, "local_days"), "retention.local_days must be a number of days >= 0")
    if upload is None:
        raise r.error(
            (*t, "local_days"),
            "retention.local_days deletes local files only once they are uploaded: "
            "set [upload] dest (or out to a URL)",
        )
    return RetentionSpec(local_days=float(v))
