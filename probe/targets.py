"""Target lists: parse and validate target CSVs into :class:`Target` records (pure).

A target list is a CSV file with a header row (SPEC §8 "Target CSV")::

    url,category_code,operator_cc,notes
    https://github.com/,HOST,US,developer platform

``url`` is required; ``category_code``, ``operator_cc`` and ``notes`` are optional; any other
column (the Citizen Lab test-list format adds ``category_description``, ``date_added``,
``source``) is accepted and ignored.

Every URL is normalised (:func:`normalise_url`) so that the same site is always written the
same way in the dataset: scheme and host lower-case, host in IDNA (punycode) form, default port
dropped, empty path ``/``, fragment dropped.  Duplicates (after normalisation) are dropped,
keeping the first.  Bad rows never crash the parser: each gives a ``FILE:LINE: reason`` entry
and the first :data:`MAX_REPORTED_ERRORS` of them are raised together as one
:class:`~probe.errors.TargetError`.

Nothing here touches the network: host names are checked syntactically, never resolved.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from probe.errors import TargetError

MAX_REPORTED_ERRORS = 20
"""How many ``FILE:LINE: reason`` entries one :class:`TargetError` lists."""

MAX_LINE_CHARS = 20_000
"""A physical line longer than this is an error for that line."""

MAX_FILE_BYTES = 1 << 30
"""Target files larger than this (1 GiB) are refused outright."""

DEFAULT_PORTS = {"http": 80, "https": 443}

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_ASCII_HOST_RE = re.compile(r"[a-z0-9_\-]+(?:\.[a-z0-9_\-]+)*\.?")
_CATEGORY_RE = re.compile(r"[A-Z0-9_]{1,32}")
# Fast path: URLs that are already (almost) normal — lower-case ASCII host, no port, no
# fragment, nothing to escape.  Anything else goes through the full rules.
_FAST_RE = re.compile(
    r"(https?)://([a-z0-9_\-]{1,63}(?:\.[a-z0-9_\-]{1,63})*)"
    r"(/[A-Za-z0-9/:@!$&'()*+,;=\-._~%]*)?(?:\?([A-Za-z0-9/:@!$&'()*+,;=\-._~%?]*))?"
)
_SCHEMELESS_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:(?!\d)")
_HOST_BAD_RE = re.compile(r"[\x00-\x20\x7f]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Characters kept as they are in the path and the query (RFC 3986 pchar + "%"): everything
# else (spaces, non-ASCII, quotes, braces...) is percent-encoded, so normalising is idempotent.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True, slots=True)
class Target:
    """One target: a normalised URL and what the list says about it."""

    url: str
    """Normalised URL (see :func:`normalise_url`)."""
    hostname: str
    """Lower-case host in IDNA (punycode) form; an IPv6 literal without brackets."""
    category_code: str | None
    """Citizen Lab category code (upper-case), e.g. ``NEWS``, ``HOST``."""
    operator_cc: str | None
    """ISO 3166-1 alpha-2 country of the site's operator (upper-case)."""
    notes: str | None
    line: int | None
    """1-based line in the source file; ``None`` for URLs given on the command line."""

    @property
    def scheme(self) -> str:
        """``http`` or ``https``."""
        return self.url.split(":", 1)[0]


# --------------------------------------------------------------------------------------------
# URL normalisation
# --------------------------------------------------------------------------------------------


def normalise_url(raw: str) -> str:
    """Return the normalised form of ``raw``; raise :class:`ValueError` with a short reason.

    Rules: surrounding whitespace stripped; a bare host name gets ``https://``; only ``http``
    and ``https``; scheme and host lower-case; an internationalised host becomes punycode;
    user info (``user:pass@``) and whitespace in the host are rejected; a non-default port is
    kept, the default one (80/443) dropped; an empty path becomes ``/``; the query is kept and
    the fragment dropped; an IPv6 literal stays in brackets.  Idempotent.
    """
    return _normalise(raw)[0]


def _normalise(raw: str) -> tuple[str, str]:
    """Normalise ``raw``; return ``(url, hostname)``."""
    if not isinstance(raw, str):
        raise ValueError("URL is not a string")
    s = raw.strip()
    m = _FAST_RE.fullmatch(s)
    if m is not None:
        scheme, host, path, query = m.groups()
        if len(host) <= 253 and "xn--" not in host and not host[-1].isdigit():
            url = f"{scheme}://{host}{path or '/'}"
            return (url + "?" + query if query else url), host
    if not s:
        raise ValueError("empty URL")
    if _SCHEME_RE.match(s) is None:
        if s.startswith("//"):
            s = "https:" + s
        elif _SCHEMELESS_RE.match(s):
            # "ftp:x", "mailto:a@b" — a scheme without "//", not "host:port".
            raise ValueError(f"unsupported URL {s[:40]!r} (expected http:// or https://)")
        else:
            s = "https://" + s
    scheme, _, rest = s.partition("://")
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported scheme {scheme!r} (only http and https)")

    # Split authority / path / query / fragment by hand: urllib.parse.urlsplit silently drops
    # tabs and newlines and accepts things we want to reject.
    end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1 and i < end:
            end = i
    authority, tail = rest[:end], rest[end:]
    tail, _, _fragment = tail.partition("#")
    path, _, query = tail.partition("?")

    host, port = _split_authority(authority)
    hostname, host_in_url = _normalise_host(host)

    if port is not None and port == DEFAULT_PORTS[scheme]:
        port = None
    if _CONTROL_RE.search(tail):  # spaces are fine (percent-encoded below), controls are not
        raise ValueError("control character in URL")
    path = quote(path, safe=_PATH_SAFE) if path else "/"
    if not path.startswith("/"):
        path = "/" + path
    query = quote(query, safe=_QUERY_SAFE)
    url = f"{scheme}://{host_in_url}"
    if port is not None:
        url += f":{port}"
    url += path
    if query:
        url += "?" + query
    return url, hostname


def _split_authority(authority: str) -> tuple[str, int | None]:
    """Split ``host[:port]``; reject user info and bad ports."""
    if "@" in authority:
        raise ValueError("user info (user:password@) is not allowed in a target URL")
    if not authority:
        raise ValueError("no host in URL")
    port_text: str | None = None
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            raise ValueError("unterminated IPv6 literal")
        host = authority[: close + 1]
        after = authority[close + 1 :]
        if after:
            if not after.startswith(":"):
                raise ValueError("junk after IPv6 literal")
            port_text = after[1:]
    elif ":" in authority:
        host, _, port_text = authority.rpartition(":")
        if ":" in host:
            raise ValueError("IPv6 literal must be in brackets")
    else:
        host = authority
    port: int | None = None
    if port_text:  # "host:" (empty port) means the default port
        if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
            raise ValueError(f"invalid port {port_text[:12]!r}")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} out of range")
    return host, port


def _normalise_host(host: str) -> tuple[str, str]:
    """Return ``(hostname, host as written in the URL)``."""
    if not host:
        raise ValueError("no host in URL")
    if _HOST_BAD_RE.search(host):
        raise ValueError("whitespace or control character in host")
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            raise ValueError("IPv6 zone identifiers are not allowed")
        try:
            addr6 = ipaddress.IPv6Address(inner)
        except ValueError:
            raise ValueError(f"invalid IPv6 literal {host[:48]!r}") from None
        text = str(addr6)
        return text, f"[{text}]"
    lowered = host.lower()
    if lowered.isascii():
        if _ASCII_HOST_RE.fullmatch(lowered) is None:
            raise ValueError(f"invalid host name {host[:64]!r}")
        ascii_host = lowered
        if "xn--" in ascii_host:
            try:  # reject punycode that does not decode
                ascii_host.encode("ascii").decode("idna")
            except UnicodeError:
                raise ValueError(f"invalid punycode host {host[:64]!r}") from None
    else:
        try:
            ascii_host = lowered.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"invalid internationalised host {host[:64]!r}") from None
        if _ASCII_HOST_RE.fullmatch(ascii_host) is None:
            raise ValueError(f"invalid host name {host[:64]!r}")
    labels = ascii_host.rstrip(".").split(".")
    if len(ascii_host) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        raise ValueError(f"invalid host name length {host[:64]!r}")
    if labels[-1].isdigit():
        # A host whose last label is numeric is an IPv4 address (WHATWG URL): check it.
        try:
            ascii_host = str(ipaddress.IPv4Address(ascii_host.rstrip(".")))
        except ValueError:
            raise ValueError(f"invalid IPv4 address {host[:64]!r}") from None
    return ascii_host, ascii_host


# --------------------------------------------------------------------------------------------
# CSV parsing
# --------------------------------------------------------------------------------------------


class _Errors:
    """Collects ``SOURCE:LINE: reason`` messages; keeps the first few, counts them all."""

    __slots__ = ("count", "kept", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.count = 0
        self.kept: list[str] = []

    def add(self, line: int | None, reason: str) -> None:
        self.count += 1
        if len(self.kept) < MAX_REPORTED_ERRORS:
            where = f"{self.source}:{line}" if line is not None else self.source
            self.kept.append(f"{where}: {reason}")

    def raise_if_any(self, what: str = "invalid row") -> None:
        if not self.count:
            return
        plural = "s" if self.count != 1 else ""
        head = f"{self.source}: {self.count} {what}{plural}"
        if self.count > len(self.kept):
            head += f" (showing the first {len(self.kept)})"
        raise TargetError("\n".join([head + ":", *("  " + k for k in self.kept)]))


def load_targets(path: str | Path, *, max_rows: int = 2_000_000) -> list[Target]:
    """Read a target CSV file; raise :class:`TargetError` naming the file (and line)."""
    p = Path(path)
    name = str(path)
    try:
        if p.is_dir():
            raise TargetError(f"{name}: is a directory, not a target list")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TargetError(f"{name}: file too large ({size} bytes; limit {MAX_FILE_BYTES})")
        data = p.read_bytes()
    except FileNotFoundError:
        raise TargetError(f"{name}: no such file") from None
    except PermissionError:
        raise TargetError(f"{name}: permission denied") from None
    except OSError as exc:
        raise TargetError(f"{name}: cannot read: {exc.strerror or exc}") from None
    return _parse(_decode(data, name), name, max_rows=max_rows)


def _decode(data: bytes, source: str) -> str:
    """Decode a text file: UTF-8 (BOM optional), else Latin-1; refuse binary data."""
    if b"\x00" in data:
        raise TargetError(f"{source}: binary file (contains NUL bytes), expected a CSV text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        # Latin-1 decodes anything; C0 controls other than tab/CR/LF mean it is not text.
        if any(c in text for c in _BINARY_CONTROLS):
            raise TargetError(
                f"{source}: binary file (not UTF-8 or Latin-1 text), expected a CSV text file"
            ) from None
    if not text.strip():
        raise TargetError(f"{source}: empty file (expected a header row with a 'url' column)")
    return text


_BINARY_CONTROLS = frozenset(chr(c) for c in range(32) if chr(c) not in "\t\r\n\x0c")


def parse_targets(
    text: str, source: str = "<string>", *, max_rows: int = 2_000_000
) -> list[Target]:
    """Parse the text of a target CSV; raise :class:`TargetError` on any invalid row."""
    if "\x00" in text:
        raise TargetError(f"{source}: binary data (contains NUL characters)")
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise TargetError(f"{source}: empty file (expected a header row with a 'url' column)")
    return _parse(text, source, max_rows=max_rows)


def _has_long_line(text: str) -> bool:
    """Whether a line of ``text`` (without its line ending) exceeds :data:`MAX_LINE_CHARS`."""
    if len(text) <= MAX_LINE_CHARS:
        return False
    for chunk in text.split("\n"):
        if len(chunk) > MAX_LINE_CHARS and any(
            len(part) > MAX_LINE_CHARS for part in chunk.split("\r")
        ):
            return True
    return False


def _physical_lines(text: str, long_lines: list[int]) -> Iterator[str]:
    """Yield the lines of ``text``; a line over :data:`MAX_LINE_CHARS` becomes empty."""
    for n, line in enumerate(io.StringIO(text, newline=""), start=1):
        if len(line) > MAX_LINE_CHARS and len(line.rstrip("\r\n")) > MAX_LINE_CHARS:
            long_lines.append(n)
            yield "\n"
        else:
            yield line


def _parse(text: str, source: str, *, max_rows: int) -> list[Target]:
    errors = _Errors(source)
    long_lines: list[int] = []
    if not _has_long_line(text):
        lines: Iterable[str] = io.StringIO(text, newline="")
    else:
        lines = _physical_lines(text, long_lines)
    reader = csv.reader(lines, strict=False)

    header: list[str] | None = None
    while header is None:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise TargetError(f"{source}:{reader.line_num}: unreadable header: {exc}") from None
        if long_lines:
            raise TargetError(f"{source}:{long_lines[0]}: header line too long")
        if any(cell.strip() for cell in row):
            header = [cell.strip().lower() for cell in row]
    if header is None:
        raise TargetError(f"{source}: empty file (expected a header row with a 'url' column)")
    header_line = reader.line_num
    if "url" not in header:
        found = ", ".join(repr(h) for h in header[:8] if h) or "nothing"
        raise TargetError(
            f"{source}:{header_line}: header has no 'url' column (found {found}); "
            "expected url,category_code,operator_cc,notes"
        )
    i_url = header.index("url")
    i_cat = header.index("category_code") if "category_code" in header else -1
    i_cc = header.index("operator_cc") if "operator_cc" in header else -1
    i_notes = header.index("notes") if "notes" in header else -1

    width = max(i_url, i_cat, i_cc, i_notes) + 1
    targets: list[Target] = []
    seen: set[str] = set()
    # Few distinct category/country values: validate each once.
    categories: dict[str, str | None] = {}
    countries: dict[str, str | None] = {}
    nrows = 0
    prev_end = header_line
    long_reported = 0
    while True:
        try:
            for row in reader:
                line = prev_end + 1
                prev_end = reader.line_num
                if long_lines and long_reported < len(long_lines):
                    for n in long_lines[long_reported:]:
                        errors.add(n, f"line longer than {MAX_LINE_CHARS} characters")
                    long_reported = len(long_lines)
                if len(row) < width:
                    if not any(row):
                        continue
                    row += [""] * (width - len(row))
                raw = row[i_url]
                if not raw or raw.isspace():
                    if any(cell.strip() for cell in row):
                        errors.add(line, "empty url")
                    continue
                nrows += 1
                if nrows > max_rows:
                    raise TargetError(f"{source}: more than {max_rows} targets (the limit)")
                try:
                    url, hostname = _normalise(raw)
                except ValueError as exc:
                    errors.add(line, f"{exc} (url {_clip(raw)})")
                    continue
                try:
                    cat_raw = row[i_cat] if i_cat >= 0 else ""
                    category = categories.get(cat_raw, _MISSING)
                    if category is _MISSING:
                        category = categories[cat_raw] = _category(cat_raw)
                    cc_raw = row[i_cc] if i_cc >= 0 else ""
                    operator_cc = countries.get(cc_raw, _MISSING)
                    if operator_cc is _MISSING:
                        operator_cc = countries[cc_raw] = _country(cc_raw)
                except ValueError as exc:
                    errors.add(line, str(exc))
                    continue
                if url in seen:
                    continue
                seen.add(url)
                notes = row[i_notes].strip() or None if i_notes >= 0 else None
                targets.append(Target(url, hostname, category, operator_cc, notes, line))
            break
        except csv.Error as exc:
            errors.add(reader.line_num, f"malformed CSV: {exc}")
            prev_end = reader.line_num
    for n in long_lines[long_reported:]:
        errors.add(n, f"line longer than {MAX_LINE_CHARS} characters")
    errors.raise_if_any()
    return targets


_MISSING: Any = object()


def _clip(raw: str, n: int = 60) -> str:
    raw = raw.strip()
    return repr(raw if len(raw) <= n else raw[:n] + "…")


def _category(value: str) -> str | None:
    value = value.strip().upper()
    if not value:
        return None
    if _CATEGORY_RE.fullmatch(value) is None:
        raise ValueError(f"invalid category_code {_clip(value, 20)}")
    return value


def _country(value: str) -> str | None:
    value = value.strip().upper()
    if not value:
        return None
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise ValueError(f"operator_cc must be a 2-letter ISO country code, not {_clip(value, 20)}")
    return value


def targets_from_urls(urls: Sequence[str]) -> list[Target]:
    """Targets from URLs given on the command line (no category, no operator country)."""
    errors = _Errors("command line")
    out: list[Target] = []
    seen: set[str] = set()
    for raw in urls:
        try:
            url, hostname = _normalise(raw)
        except ValueError as exc:
            errors.add(None, f"URL {_clip(str(raw))}: {exc}")
            continue
        if url not in seen:
            seen.add(url)
            out.append(Target(url, hostname, None, None, None, None))
    errors.raise_if_any("invalid URL")
    return out


# --------------------------------------------------------------------------------------------
# Summaries and hashes
# --------------------------------------------------------------------------------------------

NONE_KEY = "(none)"
"""Key used in :func:`summarise` counts for a missing category or operator country."""


def summarise(targets: Sequence[Target]) -> dict[str, Any]:
    """Counts for ``res64 targets check``: total, by category_code, operator_cc and scheme.

    Each ``by_*`` mapping is sorted by decreasing count, then key; a missing value is counted
    under :data:`NONE_KEY`.
    """

    def ordered(counter: Counter[str]) -> dict[str, int]:
        return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))

    return {
        "total": len(targets),
        "by_category_code": ordered(Counter(t.category_code or NONE_KEY for t in targets)),
        "by_operator_cc": ordered(Counter(t.operator_cc or NONE_KEY for t in targets)),
        "by_scheme": ordered(Counter(t.scheme for t in targets)),
    }


def targets_sha256(targets: Iterable[Target]) -> str:
    """SHA-256 (hex) of the normalised list, for the run manifest.

    Covers, in order, each target's ``url``, ``category_code``, ``operator_cc`` and ``notes``
    (one JSON array per line), not line numbers: the same list reformatted hashes the same.
    """
    h = hashlib.sha256()
    for t in targets:
        h.update(json.dumps([t.url, t.category_code, t.operator_cc, t.notes]).encode())
        h.update(b"\n")
    return h.hexdigest()


__all__ = [
    "Target",
    "load_targets",
    "normalise_url",
    "parse_targets",
    "summarise",
    "targets_from_urls",
    "targets_sha256",
]
