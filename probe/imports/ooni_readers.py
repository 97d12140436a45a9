"""Small tolerant readers of OONI measurement fields (pure: no I/O).

Each reader returns ``None`` (or an empty value) for a field of the wrong type instead of
raising, and reports what it tolerated to a :class:`_Notes`, which becomes the row's
``import_note``.  Used by :mod:`probe.imports.ooni` and :mod:`probe.imports.ooni_events`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from probe.steps.body import clean_header_text

MAX_HEADERS = 200
MAX_NOTE = 1000
_ASN_RE = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)


class _Notes:
    """Collects what a conversion tolerated (``problems``) or inferred (``infos``)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.infos: list[str] = []

    def bad(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def info(self, text: str | None) -> None:
        if text and text not in self.infos:
            self.infos.append(text)

    def text(self) -> str | None:
        parts = [f"malformed: {p}" for p in self.problems] + self.infos
        if not parts:
            return None
        s = "; ".join(parts)
        return s if len(s) <= MAX_NOTE else s[: MAX_NOTE - 3] + "..."


# --------------------------------------------------------------------------------------------
# small tolerant readers
# --------------------------------------------------------------------------------------------


def _dict(v: object) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def _str(v: object) -> str | None:
    return v if isinstance(v, str) and v else None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _asn(value: object, notes: _Notes) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    m = _ASN_RE.match(str(value).strip())
    if m is None:
        notes.bad(f"probe_asn {str(value)[:20]!r}")
        return None
    return int(m.group(1))


def _maybe_binary(value: object, what: str, notes: _Notes) -> bytes | None:
    """OONI's MaybeBinaryData: a UTF-8 string or ``{"format": "base64", "data": ...}``."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, dict) and value.get("format") == "base64":
        data = value.get("data")
        if isinstance(data, str):
            try:
                return base64.b64decode(data, validate=False)
            except (binascii.Error, ValueError):
                notes.bad(f"{what}: undecodable base64")
                return None
    notes.bad(f"{what}: unexpected {type(value).__name__}")
    return None


def _header_text(value: object, notes: _Notes) -> str | None:
    if isinstance(value, list):  # some versions: a list of values
        parts = [_header_text(v, notes) for v in value]
        return ", ".join(p for p in parts if p is not None)
    raw = _maybe_binary(value, "header value", notes)
    if raw is None:
        return None
    return clean_header_text(raw)


def _headers(resp: Mapping[str, Any], notes: _Notes) -> list[tuple[str, str]]:
    """Response headers as ``[(name, value)]``, from ``headers_list`` or the ``headers`` map."""
    out: list[tuple[str, str]] = []
    hl = resp.get("headers_list")
    if isinstance(hl, list) and hl:
        for pair in hl[:MAX_HEADERS]:
            if isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[0], str):
                value = _header_text(pair[1], notes)
                if value is not None:
                    name = clean_header_text(pair[0].encode("latin-1", "replace"), 256)
                    out.append((name, value))
            else:
                notes.bad("headers_list entry")
        return out
    hd = resp.get("headers")
    if isinstance(hd, dict):
        for name, v in list(hd.items())[:MAX_HEADERS]:
            value = _header_text(v, notes)
            if value is not None:
                out.append((clean_header_text(str(name).encode("latin-1", "replace"), 256), value))
    elif hd is not None:
        notes.bad("response headers")
    return out


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _host_key(host: str | None) -> str:
    h = (host or "").strip().lower().rstrip(".")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        return h.encode("idna").decode("ascii") if not h.isascii() else h
    except UnicodeError:
        return h


def _split_endpoint(address: object) -> tuple[str | None, int | None]:
    """``"1.2.3.4:443"`` / ``"[::1]:443"`` → (ip, port)."""
    if not isinstance(address, str) or not address:
        return None, None
    try:
        p = urlsplit("//" + address.replace("[scrubbed]", "scrubbed"))
        return p.hostname, p.port
    except ValueError:
        return None, None


def _ip(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _transport(r: Mapping[str, Any]) -> str:
    t = _dict(r.get("request")).get("x_transport") or r.get("network") or "tcp"
    return "udp" if t in ("quic", "udp") else "tcp"


def _depth(item: Mapping[str, Any]) -> int | None:
    for tag in _list(item.get("tags")):
        if isinstance(tag, str) and tag.startswith("depth="):
            try:
                return int(tag[6:])
            except ValueError:
                return None
    return None


def _tagged(item: Mapping[str, Any], tag: str) -> bool:
    return tag in _list(item.get("tags"))
