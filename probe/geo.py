"""IP address → (country, AS number, AS name).

Three sources, in order of precedence:

1. **overrides** — a CSV file ``prefix,cc,asn,as_name`` (``--geoip-overrides``); the longest
   matching prefix wins, IPv4 and IPv6.  An override is returned as it is (even with empty
   fields) and applies to any address, private ones included: the loopback demo world maps
   ``127.x`` addresses to countries this way.
2. **MaxMind DB files** (``--geoip FILE.mmdb``), read with the ``maxminddb`` package.  Both
   MaxMind/DB-IP shapes (``country.iso_code``, ``autonomous_system_number``,
   ``autonomous_system_organization``) and flat shapes (``country_code``, ``asn``,
   ``as_name``) are understood.  Several files can be given (say a country and an ASN file).
3. **the embedded database** of the ``geoip2fast`` package (MaxMind GeoLite2 country and AS
   names, IPv4 and IPv6).  It gives the AS *name* but not the AS *number*, so ``asn`` stays
   ``None`` from this source.  It is loaded lazily, on the first lookup that needs it, once
   per process (geoip2fast keeps its tables in module globals): about 0.2 s and ~110 MiB of
   memory on the reference machine.

The databases are asked about public unicast addresses only: private, loopback, link-local,
multicast and reserved addresses give no country, AS number or AS name from them.  Between the
databases, the country and the (AS number, AS name) pair are each taken from the first source
that has them; ``GeoInfo.source`` names the source of the country (or, without a country, of
the AS data).

:meth:`GeoResolver.lookup` never raises; lookups are cached (bounded) and thread-safe.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from probe.errors import GeoError

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REPORTED_ERRORS = 20
MAX_OVERRIDES = 1_000_000
DEFAULT_CACHE_SIZE = 65_536
EMBEDDED_DATA_FILE = "geoip2fast-asn-ipv6.dat.gz"
"""The geoip2fast data file used: country + AS name, IPv4 and IPv6."""

_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")


@dataclass(frozen=True, slots=True)
class GeoInfo:
    """What is known about one address; all ``None`` when nothing is."""

    cc: str | None
    """ISO 3166-1 alpha-2 country code, upper-case."""
    asn: int | None
    as_name: str | None
    source: str | None
    """``'override'``, ``'mmdb'``, ``'embedded'`` or ``None``."""


NO_INFO = GeoInfo(None, None, None, None)


@dataclass(frozen=True, slots=True)
class Override:
    """One row of an override file."""

    network: IPNetwork
    cc: str | None
    asn: int | None
    as_name: str | None
    line: int | None = None

    @property
    def info(self) -> GeoInfo:
        return GeoInfo(self.cc, self.asn, self.as_name, "override")


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def parse_ip(text: str | IPAddress) -> IPAddress | None:
    """Parse an address (``[v6]`` brackets and ``%zone`` allowed); ``None`` if invalid.

    An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is returned as the IPv4 address.
    """
    if isinstance(text, ipaddress.IPv4Address):
        return text
    if isinstance(text, ipaddress.IPv6Address):
        addr: IPAddress = text
    else:
        if not isinstance(text, str) or len(text) > 64:
            return None
        s = text.strip()
        if s.startswith("[") and s.endswith("]"):
            s = s[1:-1]
        s = s.partition("%")[0]
        try:
            addr = ipaddress.ip_address(s)
        except ValueError:
            return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:
            addr = ipaddress.IPv6Address(int(addr))
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return mapped
    return addr


def is_public(addr: IPAddress) -> bool:
    """Whether databases may know ``addr``: global unicast, not reserved or multicast."""
    if addr.is_multicast or addr.is_reserved or not addr.is_global:
        return False
    return addr.version == 4 or addr in _GLOBAL_UNICAST_V6


def _country(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha():
        return value.upper()
    return None


def _asn(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2**32 else None
    if isinstance(value, str):
        s = value.strip()
        if s[:2].upper() == "AS":
            s = s[2:]
        if s.isascii() and s.isdigit() and len(s) <= 10:
            n = int(s)
            return n if n < 2**32 else None
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def record_fields(record: Any) -> tuple[str | None, int | None, str | None]:
    """``(cc, asn, as_name)`` from a MaxMind DB record of any common shape."""
    if not isinstance(record, dict):
        return None, None, None
    cc = None
    country = record.get("country")
    if isinstance(country, dict):
        cc = _country(country.get("iso_code"))
    if cc is None:
        cc = _country(record.get("country_code"))
    if cc is None and isinstance(country, str):
        cc = _country(country)
    if cc is None:
        registered = record.get("registered_country")
        if isinstance(registered, dict):
            cc = _country(registered.get("iso_code"))
    asn = _asn(record.get("autonomous_system_number"))
    if asn is None:
        asn = _asn(record.get("asn"))
    name = None
    for key in ("autonomous_system_organization", "as_name", "as_organization", "asn_name"):
        name = _text(record.get(key))
        if name is not None:
            break
    return cc, asn, name


class _PrefixTable:
    """Longest-prefix match: one dict per prefix length, probed from the longest down."""

    def __init__(self, overrides: Iterable[Override]) -> None:
        tables: dict[tuple[int, int], dict[int, GeoInfo]] = {}
        self._count = 0
        for ov in overrides:
            net = ov.network
            bits = net.max_prefixlen
            key = int(net.network_address) >> (bits - net.prefixlen)
            table = tables.setdefault((net.version, net.prefixlen), {})
            if key not in table:  # the first of two identical prefixes wins
                table[key] = ov.info
                self._count += 1
        self._levels: dict[int, list[tuple[int, dict[int, GeoInfo]]]] = {
            version: sorted(
                ((plen, t) for (v, plen), t in tables.items() if v == version),
                key=lambda item: -item[0],
            )
            for version in (4, 6)
        }

    def __len__(self) -> int:
        return self._count

    def match(self, addr: IPAddress) -> GeoInfo | None:
        bits = addr.max_prefixlen
        n = int(addr)
        for plen, table in self._levels[addr.version]:
            hit = table.get(n >> (bits - plen))
            if hit is not None:
                return hit
        return None


# --------------------------------------------------------------------------------------------
# Override files
# --------------------------------------------------------------------------------------------

_OVERRIDE_COLUMNS = ("prefix", "cc", "asn", "as_name")


def _cell(cells: list[str], columns: dict[str, int], name: str) -> str:
    i = columns.get(name, -1)
    return cells[i] if 0 <= i < len(cells) else ""


def load_overrides(path: str | Path) -> list[Override]:
    """Read an override CSV (``prefix,cc,asn,as_name``); raise :class:`GeoError` naming
    ``FILE:LINE`` for bad rows.

    The header row is optional (without it the columns are positional).  Blank lines and lines
    starting with ``#`` are skipped.  ``asn`` may be written ``64500`` or ``AS64500``.  A prefix
    with host bits set (``10.0.0.1/8``) or given twice is an error.
    """
    name = str(path)
    p = Path(path)
    try:
        if p.is_dir():
            raise GeoError(f"{name}: is a directory, not a GeoIP override file")
        data = p.read_bytes()
    except FileNotFoundError:
        raise GeoError(f"{name}: no such GeoIP override file") from None
    except PermissionError:
        raise GeoError(f"{name}: permission denied") from None
    except OSError as exc:
        raise GeoError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise GeoError(f"{name}: binary file (contains NUL bytes), expected CSV text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_overrides(text, name)


def parse_overrides(text: str, source: str = "<string>") -> list[Override]:
    """Parse the text of an override CSV (see :func:`load_overrides`)."""
    errors: list[str] = []
    nerrors = 0

    def bad(line: int, reason: str) -> None:
        nonlocal nerrors
        nerrors += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(f"{source}:{line}: {reason}")

    if not text.strip():
        raise GeoError(f"{source}: empty file (expected prefix,cc,asn,as_name rows)")
    reader = csv.reader(io.StringIO(text, newline=""))
    columns: dict[str, int] | None = None
    out: list[Override] = []
    first_line: dict[IPNetwork, int] = {}
    prev_end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad(reader.line_num, f"malformed CSV: {exc}")
            prev_end = reader.line_num
            continue
        line = prev_end + 1
        prev_end = reader.line_num
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if columns is None:
            lowered = [c.lower() for c in cells]
            if "prefix" in lowered:
                columns = {c: lowered.index(c) for c in _OVERRIDE_COLUMNS if c in lowered}
                continue
            columns = {c: i for i, c in enumerate(_OVERRIDE_COLUMNS)}
        if len(out) >= MAX_OVERRIDES:
            raise GeoError(f"{source}: more than {MAX_OVERRIDES} overrides (the limit)")

        prefix = _cell(cells, columns, "prefix")
        if not prefix:
            bad(line, "empty prefix")
            continue
        try:
            network = ipaddress.ip_network(prefix, strict=True)
        except ValueError as exc:
            if "host bits set" in str(exc):
                fixed = ipaddress.ip_network(prefix, strict=False)
                bad(line, f"host bits set in prefix {prefix!r} (did you mean {fixed}?)")
            else:
                bad(line, f"invalid prefix {prefix[:50]!r}")
            continue
        cc_text = _cell(cells, columns, "cc")
        asn_text = _cell(cells, columns, "asn")
        as_name = _cell(cells, columns, "as_name")
        cc = _country(cc_text)
        if cc_text and cc is None:
            bad(line, f"cc must be a 2-letter ISO country code, not {cc_text[:20]!r}")
            continue
        asn = _asn(asn_text)
        if asn_text and asn is None:
            bad(line, f"invalid asn {asn_text[:20]!r} (expected 64500 or AS64500)")
            continue
        if network in first_line:
            bad(line, f"duplicate prefix {network} (first on line {first_line[network]})")
            continue
        first_line[network] = line
        out.append(Override(network, cc, asn, as_name or None, line))
    if nerrors:
        head = f"{source}: {nerrors} invalid override row{'s' if nerrors != 1 else ''}"
        if nerrors > len(errors):
            head += f" (showing the first {len(errors)})"
        raise GeoError("\n".join([head + ":", *("  " + e for e in errors)]))
    return out


# --------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------


class EmbeddedDb(Protocol):
    """What the resolver needs from the embedded database."""

    def lookup(self, ip: str) -> tuple[str | None, str | None]:
        """``(cc, as_name)`` of a public address."""
        ...


class _Geoip2fastDb:
    """The geoip2fast country + AS-name database (one instance per process)."""

    def __init__(self) -> None:
        # geoip2fast sets PYTHONWARNINGS/PYTHONIOENCODING in os.environ when imported, which
        # would leak into every subprocess we start: put the environment back as it was.
        saved = {k: os.environ.get(k) for k in ("PYTHONWARNINGS", "PYTHONIOENCODING")}
        try:
            import geoip2fast
            from geoip2fast import GeoIP2Fast
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        data_file = Path(geoip2fast.__file__).parent / EMBEDDED_DATA_FILE
        started = time.perf_counter()
        self._db = GeoIP2Fast(geoip2fast_data_file=str(data_file))
        self.load_seconds = time.perf_counter() - started
        self.version = getattr(geoip2fast, "__version__", None)
        self.data_file = EMBEDDED_DATA_FILE
        self.source_info = str(getattr(self._db, "source_info", "") or "") or None

    def lookup(self, ip: str) -> tuple[str | None, str | None]:
        result = self._db.lookup(ip)
        if getattr(result, "is_private", False):
            return None, None
        cc = _country(result.country_code)
        name = _text(getattr(result, "asn_name", None))
        if name is not None and name.startswith("<"):
            name = None
        return cc, name


_embedded_lock = threading.Lock()
_embedded_instance: list[_Geoip2fastDb] = []  # the process-wide instance, once loaded


def _load_geoip2fast() -> _Geoip2fastDb:
    with _embedded_lock:
        if not _embedded_instance:
            db = _Geoip2fastDb()
            log.debug("embedded GeoIP database loaded in %.3f s", db.load_seconds)
            _embedded_instance.append(db)
        return _embedded_instance[0]


def embedded_available() -> bool:
    """Whether the embedded database (package ``geoip2fast``) is installed."""
    return importlib.util.find_spec("geoip2fast") is not None


def _open_mmdb(path: str | Path) -> Any:
    import maxminddb

    name = str(path)
    p = Path(path)
    if p.is_dir():
        raise GeoError(f"{name}: is a directory, not a MaxMind DB (.mmdb) file")
    try:
        return maxminddb.open_database(name)
    except FileNotFoundError:
        raise GeoError(f"{name}: no such GeoIP database file") from None
    except PermissionError:
        raise GeoError(f"{name}: permission denied") from None
    except (maxminddb.InvalidDatabaseError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GeoError(f"{name}: not a valid MaxMind DB (.mmdb) file: {detail}") from None
    except OSError as exc:
        raise GeoError(f"{name}: cannot read: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------------
# The resolver
# --------------------------------------------------------------------------------------------


class GeoResolver:
    """Looks addresses up in overrides, then MaxMind DB files, then the embedded database.

    Build it with :func:`open_geo`.  Thread-safe after construction; :meth:`lookup` never
    raises and is cached (``cache_size`` entries, least recently used evicted).
    """

    def __init__(
        self,
        overrides: Sequence[Override] = (),
        mmdb_readers: Sequence[Any] = (),
        *,
        embedded: bool = True,
        embedded_loader: Callable[[], EmbeddedDb] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        mmdb_paths: Sequence[str] = (),
        overrides_path: str | None = None,
    ) -> None:
        self._table = _PrefixTable(overrides)
        self._readers = tuple(mmdb_readers)
        self._mmdb_paths = tuple(mmdb_paths)
        self._overrides_path = overrides_path
        self._use_embedded = embedded
        self._embedded_loader = embedded_loader or _load_geoip2fast
        self._embedded: EmbeddedDb | None = None
        self._embedded_error: str | None = None
        self._lock = threading.Lock()
        self._cached = functools.lru_cache(maxsize=cache_size)(self._lookup_uncached)

    # -- public ---------------------------------------------------------------------------

    def lookup(self, ip: str | IPAddress) -> GeoInfo:
        """Country, AS number and AS name of ``ip``; all ``None`` when unknown or invalid."""
        if isinstance(ip, str):
            if len(ip) > 64:  # no address is that long; keep junk out of the cache
                return NO_INFO
        elif not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return NO_INFO
        try:
            return self._cached(ip)
        except Exception:  # never raise: a bad address, a corrupt database...
            log.debug("geo lookup of %r failed", ip, exc_info=True)
            return NO_INFO

    @property
    def override_count(self) -> int:
        return len(self._table)

    @property
    def embedded_loaded(self) -> bool:
        return self._embedded is not None

    @property
    def embedded_error(self) -> str | None:
        """Why the embedded database could not be loaded (``None`` if it could, or was not
        needed yet)."""
        return self._embedded_error

    def describe(self) -> dict[str, Any]:
        """What this resolver uses, for run manifests (does not load the embedded database)."""
        mmdb = []
        for path, reader in zip(self._mmdb_paths, self._readers, strict=False):
            meta = getattr(reader, "metadata", None)
            entry: dict[str, Any] = {"path": path}
            try:
                m = meta() if callable(meta) else None
                entry["database_type"] = getattr(m, "database_type", None)
                entry["build_epoch"] = getattr(m, "build_epoch", None)
            except Exception:
                pass
            mmdb.append(entry)
        embedded: dict[str, Any] | None = None
        if self._use_embedded:
            embedded = {"package": "geoip2fast", "data_file": EMBEDDED_DATA_FILE}
            db = self._embedded
            if db is not None:
                for key in ("version", "source_info", "load_seconds"):
                    if hasattr(db, key):
                        embedded[key] = getattr(db, key)
            if self._embedded_error:
                embedded["error"] = self._embedded_error
        return {
            "overrides": {"path": self._overrides_path, "count": len(self._table)},
            "mmdb": mmdb,
            "embedded": embedded,
        }

    def cache_clear(self) -> None:
        self._cached.cache_clear()

    def close(self) -> None:
        """Close the MaxMind DB files; later lookups only see overrides and embedded data."""
        readers, self._readers = self._readers, ()
        for reader in readers:
            try:
                reader.close()
            except Exception:
                log.debug("closing a MaxMind DB reader failed", exc_info=True)
        self._cached.cache_clear()

    def __enter__(self) -> GeoResolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _embedded_db(self) -> EmbeddedDb | None:
        if self._embedded is not None or not self._use_embedded:
            return self._embedded
        with self._lock:
            if self._embedded is None and self._embedded_error is None:
                try:
                    self._embedded = self._embedded_loader()
                except Exception as exc:
                    self._embedded_error = f"{type(exc).__name__}: {exc}"
                    log.error("embedded GeoIP database unavailable: %s", self._embedded_error)
            return self._embedded

    def _lookup_uncached(self, ip: str) -> GeoInfo:
        addr = parse_ip(ip)
        if addr is None:
            return NO_INFO
        hit = self._table.match(addr)
        if hit is not None:
            return hit
        if not is_public(addr):
            return NO_INFO
        text = str(addr)
        cc: str | None = None
        asn: int | None = None
        as_name: str | None = None
        cc_source: str | None = None
        as_source: str | None = None
        for reader in self._readers:
            try:
                record = reader.get(text)
            except Exception:
                log.debug("MaxMind DB lookup of %s failed", text, exc_info=True)
                continue
            r_cc, r_asn, r_name = record_fields(record)
            if cc is None and r_cc is not None:
                cc, cc_source = r_cc, "mmdb"
            if as_source is None and (r_asn is not None or r_name is not None):
                asn, as_name, as_source = r_asn, r_name, "mmdb"
        if cc is None or as_source is None:
            db = self._embedded_db()
            if db is not None:
                e_cc, e_name = db.lookup(text)
                if cc is None and e_cc is not None:
                    cc, cc_source = e_cc, "embedded"
                if as_source is None and e_name is not None:
                    as_name, as_source = e_name, "embedded"
        source = cc_source or as_source
        if source is None:
            return NO_INFO
        return GeoInfo(cc, asn, as_name, source)


def open_geo(
    mmdb: str | Path | Sequence[str | Path] | None = None,
    overrides: str | Path | None = None,
    *,
    embedded: bool = True,
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> GeoResolver:
    """Build a :class:`GeoResolver`; raise :class:`GeoError` for an unreadable file.

    ``mmdb`` is one ``.mmdb`` path or several (e.g. a country and an ASN database).
    ``embedded`` enables the geoip2fast database as the last resort (loaded on first use).
    """
    if embedded and not embedded_available():
        raise GeoError(
            "the embedded GeoIP database needs the geoip2fast package "
            "(install it, or pass --geoip FILE.mmdb)"
        )
    override_rows = load_overrides(overrides) if overrides is not None else []
    if mmdb is None:
        paths: list[str | Path] = []
    elif isinstance(mmdb, str | Path):
        paths = [mmdb]
    else:
        paths = list(mmdb)
    readers: list[Any] = []
    try:
        for path in paths:
            readers.append(_open_mmdb(path))
    except GeoError:
        for reader in readers:
            reader.close()
        raise
    return GeoResolver(
        override_rows,
        readers,
        embedded=embedded,
        cache_size=cache_size,
        mmdb_paths=[str(p) for p in paths],
        overrides_path=str(overrides) if overrides is not None else None,
    )


__all__ = [
    "NO_INFO",
    "GeoInfo",
    "GeoResolver",
    "Override",
    "is_public",
    "load_overrides",
    "open_geo",
    "parse_ip",
    "parse_overrides",
    "record_fields",
]
