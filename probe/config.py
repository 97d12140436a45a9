"""Frozen configuration objects, built once in :mod:`probe.cli` and passed down.

Nothing here reads files or the environment at import time.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from probe.errors import ConfigError

DEFAULT_CONTROL_RESOLVER = "1.1.1.1"
LOOPBACK_ONLY_ENV = "RES64_LOOPBACK_ONLY"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-step timeouts in seconds, plus a wall-clock budget for a whole target."""

    dns: float = 5.0
    tcp: float = 10.0
    tls: float = 10.0
    http: float = 20.0
    target: float = 60.0

    @classmethod
    def from_total(cls, timeout: float) -> Timeouts:
        """Scale every step from one ``--timeout`` value (the HTTP step's)."""
        if not timeout > 0:
            raise ConfigError(f"--timeout must be > 0 (got {timeout})")
        return cls(
            dns=min(5.0, timeout),
            tcp=min(10.0, timeout),
            tls=min(10.0, timeout),
            http=timeout,
            target=max(timeout * 3, timeout + 15.0),
        )


@dataclass(frozen=True, slots=True)
class Vantage:
    """Where the probe measures from. The source address is used, never stored."""

    vantage_id: str
    probe_cc: str = "ZZ"
    probe_asn: int | None = None
    probe_as_name: str | None = None
    source_address: str | None = None
    is_control: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what is read from the network (hostile peers)."""

    body_prefix_bytes: int = 32 * 1024
    max_body_bytes: int = 2 * 1024 * 1024  # decoded bytes read, hashed and counted
    max_raw_bytes: int = 4 * 1024 * 1024  # bytes on the wire (compressed)
    max_redirects: int = 10
    max_title_chars: int = 512


@dataclass(frozen=True, slots=True)
class MeasureConfig:
    """Everything one measurement run needs."""

    out: str
    vantage: Vantage
    campaign: str = "adhoc"
    resolver: str | None = None  # IP[:PORT]; None = system resolver from resolv.conf
    control_resolver: str | None = DEFAULT_CONTROL_RESOLVER  # IP[:PORT] or https URL; None = off
    proxy: str | None = None
    ca_bundle: Path | None = None
    geoip: Path | None = None
    geoip_overrides: Path | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)
    concurrency: int = 64
    per_host: int = 2
    repeat: int = 1
    interval: float = 0.0
    trace: str = "none"
    resume: bool = False
    quiet: bool = False
    user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) res64-probe"
    loopback_only: bool = False  # refuse every non-loopback destination (tests, demo)
    flush_records: int = 256
    flush_seconds: float = 30.0
    # controls measured alongside (SPEC §1): a second pass through a proxy abroad, and/or a
    # res64 helper service that measures the same URL from its own country
    control_proxy: str | None = None
    control_proxy_vantage: Vantage | None = None
    control_helper: str | None = None
    helper_token: str | None = field(default=None, repr=False)


def loopback_only_from_env() -> bool:
    """True when ``RES64_LOOPBACK_ONLY`` is set to a true value (tests and the demo)."""
    return os.environ.get(LOOPBACK_ONLY_ENV, "").lower() in ("1", "true", "yes")


def parse_host_port(value: str, default_port: int, what: str) -> tuple[str, int]:
    """Parse ``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or bare IPv6; ConfigError on anything else."""
    v = value.strip()
    host, port = v, default_port
    if v.startswith("["):
        end = v.find("]")
        if end < 0:
            raise ConfigError(f"{what}: bad address {value!r}")
        host = v[1:end]
        rest = v[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"{what}: bad address {value!r}")
            port = _port(rest[1:], value, what)
    elif v.count(":") == 1:
        host, p = v.split(":")
        port = _port(p, value, what)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not an IP address (IP[:PORT])") from None
    return host, port


def _port(p: str, value: str, what: str) -> int:
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise ConfigError(f"{what}: bad port in {value!r}")
    return int(p)


def validate_proxy(url: str) -> str:
    """Accept http://, https:// and socks5:// proxy URLs; return it unchanged."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise ConfigError(f"--proxy: expected http://, https:// or socks5://HOST:PORT, got {url!r}")
    return url


def redact_url(url: str) -> str:
    """A proxy URL without its credentials (what is stored in ``via_proxy``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{netloc}"


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False
