"""Who is measuring: the pseudonymous vantage id and the vantage's country and network.

The vantage's public address is looked up in GeoIP and then forgotten: it is never stored.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from pathlib import Path

import httpx
import platformdirs

from probe.config import Vantage
from probe.errors import ConfigError
from probe.geo import GeoResolver
from probe.ids import new_vantage_id

CONFIG_DIR_ENV = "RES64_CONFIG_DIR"
ECHO_SERVICES = ("https://api.ipify.org", "https://icanhazip.com", "https://ifconfig.co/ip")
_CC_RE = re.compile(r"^[A-Z]{2}$")
_VID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def config_dir() -> Path:
    env = os.environ.get(CONFIG_DIR_ENV)
    return Path(env) if env else Path(platformdirs.user_config_dir("res64"))


def persistent_vantage_id(directory: Path | None = None) -> str:
    """The vantage id stored in the user's config dir, created on first use."""
    d = directory or config_dir()
    f = d / "vantage_id"
    with contextlib.suppress(OSError):
        v = f.read_text().strip()
        if _VID_RE.match(v):
            return v
    v = new_vantage_id()
    try:
        d.mkdir(parents=True, exist_ok=True)
        f.write_text(v + "\n")
    except OSError:
        pass  # an unwritable config dir only costs persistence
    return v


def validate_country(cc: str) -> str:
    c = cc.strip().upper()
    if not _CC_RE.match(c):
        raise ConfigError(f"--country: expected an ISO 3166-1 alpha-2 code such as DE, got {cc!r}")
    return c


def validate_vantage_id(v: str) -> str:
    if not _VID_RE.match(v):
        raise ConfigError("--vantage-id: 1-64 characters from A-Z a-z 0-9 _ . -")
    return v


def discover_public_ip(
    timeout: float = 5.0, source: str | None = None, proxy: str | None = None
) -> str | None:
    """Ask IP-echo services for the public address (of the vantage, or of a proxy's exit).

    The address is only looked up in GeoIP, never stored.
    """
    transport = httpx.HTTPTransport(local_address=source, proxy=proxy) if source or proxy else None
    with httpx.Client(timeout=timeout, transport=transport, trust_env=False) as client:
        for url in ECHO_SERVICES:
            try:
                text = client.get(url).text.strip()[:64]
                ipaddress.ip_address(text)
                return text
            except (httpx.HTTPError, ValueError):
                continue
    return None


def resolve_vantage(
    geo: GeoResolver,
    *,
    country: str | None,
    source_address: str | None,
    vantage_id: str | None,
    discover: bool,
    is_control: bool = False,
) -> Vantage:
    """SPEC §8: ``--country``, else GeoIP of the public address, else of the source address."""
    if source_address is not None:
        try:
            ipaddress.ip_address(source_address)
        except ValueError:
            msg = f"--source-address: {source_address!r} is not an IP address"
            raise ConfigError(msg) from None
    info = None
    if discover:
        public = discover_public_ip(source=source_address)
        if public:
            info = geo.lookup(public)
        del public
    if (info is None or info.cc is None) and source_address:
        info = geo.lookup(source_address)
    cc = validate_country(country) if country else (info.cc if info and info.cc else "ZZ")
    return Vantage(
        vantage_id=validate_vantage_id(vantage_id) if vantage_id else persistent_vantage_id(),
        probe_cc=cc,
        probe_asn=info.asn if info else None,
        probe_as_name=info.as_name if info else None,
        source_address=source_address,
        is_control=is_control,
    )
