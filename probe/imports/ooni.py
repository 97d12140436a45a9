"""OONI Web Connectivity measurements → ``measurements`` rows (pure: no I/O).

One OONI measurement becomes up to two rows:

* the probe's own view, mapped the way res64 itself would have measured the URL: the
  system resolver's answers (``dns_*``), a public resolver the probe also asked (DoH first,
  else UDP) as the control resolver (``dns_control_*``), the connect to the addresses the
  system resolver returned (``server_ip``, ``tcp_*``), the TLS handshake with that address
  (``tls_*``) and the HTTP fetch that followed redirects from there (``http_*``);
* OONI's test-helper view (the ``control`` block) as a dedicated control row: vantage
  ``ooni-th``, country ``ZZ``, ``is_control`` true.

Both formats in use are read: data-format 0.4 and older (``queries``, ``tcp_connect``,
``requests`` listed newest first) and 0.5 (adds ``tls_handshakes``, and tags every event with
``depth=N`` — the redirect depth — and ``classic`` when the address came from the system
resolver).  OONI's verdicts are kept in ``ooni_blocking`` / ``ooni_accessible`` for
:mod:`analysis.compare_ooni`; they are never used to decide anything here.

Parsing is tolerant in the manner of ``ripe.atlas.sagan``: a field of the wrong type is
ignored, what was wrong or inferred is written to ``import_note``, and the record is counted as
malformed.  Only a record that cannot be placed at all (not an object, no usable start time, no
URL) is refused, with a reason.  Nothing here raises on odd input.

Privacy: OONI's ``probe_ip`` is never read; the vantage is a pseudonym derived from the ASN
and the report id.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import ipaddress
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from probe import failures as F
from probe.records import Measurement, summarise_failure
from probe.schema import SCHEMA_VERSION
from probe.steps.body import clean_header_text, extract_title
from probe.steps.tls import cert_info
from probe.targets import normalise_url

__all__ = [
    "CONTROL_VANTAGE",
    "WEB_CONNECTIVITY",
    "OoniConversion",
    "blocking_text",
    "convert",
    "normalise_failure",
    "unwrap",
]

WEB_CONNECTIVITY = "web_connectivity"
CONTROL_VANTAGE = "ooni-th"
DATA_SOURCE = "ooni"

BODY_PREFIX_BYTES = 32 * 1024  # as the probe's default --body-bytes
MAX_HEADERS = 200
MAX_NOTE = 1000
_NON_SYSTEM_ENGINES = frozenset({"udp", "doh", "dot", "tcp", "doq", "quic"})
_CERT_FAILURES = frozenset(
    {F.SSL_INVALID_HOSTNAME, F.SSL_UNKNOWN_AUTHORITY, F.SSL_INVALID_CERTIFICATE}
)
_CC_RE = re.compile(r"^[A-Z]{2}$")
_ASN_RE = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)

# OONI failure strings outside SPEC §3, mapped to what res64 would have recorded.  Strings of the
# vocabulary pass unchanged; anything else becomes ``unknown_failure: <original>``.
_FAILURE_MAP: dict[str, str] = {
    # test-helper (control) vocabulary
    "dns_name_error": F.DNS_NXDOMAIN,
    "connection_refused_error": F.CONNECTION_REFUSED,
    "connection_reset_error": F.CONNECTION_RESET,
    "connection_aborted": F.CONNECTION_RESET,
    "timed_out": F.GENERIC_TIMEOUT,
    "dns_temporary_failure": F.DNS_MISBEHAVING,
    "dns_server_failure": F.DNS_MISBEHAVING,
    "dns_refused": F.DNS_REFUSED,
    "eof": F.EOF_ERROR,
    "android_dns_cache_no_data": F.DNS_NO_ANSWER,
    # HTTP failures: the probe's "http_request_failed: <reason>" form
    "http_invalid_redirect_url": f"{F.HTTP_REQUEST_FAILED}: invalid_redirect_url",
    "http_invalid_redirect_location_host": f"{F.HTTP_REQUEST_FAILED}: invalid_redirect_url",
    "http_unexpected_redirect_url": f"{F.HTTP_REQUEST_FAILED}: invalid_redirect_url",
    "http_unexpected_status_code": f"{F.HTTP_REQUEST_FAILED}: unexpected_status_code",
}
# substrings of free-text failures (old probes, Windows messages) → vocabulary
_FAILURE_SUBSTRINGS: tuple[tuple[str, str], ...] = (
    ("stopped after too many redirects", F.HTTP_TOO_MANY_REDIRECTS),
    ("certificate verify failed", F.SSL_INVALID_CERTIFICATE),
    ("certificate has expired", F.SSL_INVALID_CERTIFICATE),
    ("x509: certificate is valid for", F.SSL_INVALID_HOSTNAME),
    ("x509: certificate signed by unknown authority", F.SSL_UNKNOWN_AUTHORITY),
    ("network is unreachable", F.NETWORK_UNREACHABLE),
    ("no route to host", F.HOST_UNREACHABLE),
    ("actively refused", F.CONNECTION_REFUSED),
    ("connection refused", F.CONNECTION_REFUSED),
    ("forcibly closed by the remote host", F.CONNECTION_RESET),
    ("connection reset by peer", F.CONNECTION_RESET),
    ("i/o timeout", F.GENERIC_TIMEOUT),
    ("operation timed out", F.GENERIC_TIMEOUT),
    ("no such host", F.DNS_NXDOMAIN),
    ("server misbehaving", F.DNS_MISBEHAVING),
)


def normalise_failure(value: object) -> tuple[str | None, str | None]:
    """``(failure, note)``: an OONI failure value in the SPEC §3 vocabulary.

    ``note`` says what was changed (``None`` when the value passed unchanged).
    """
    if value is None or value is False or value == "":
        return None, None
    if not isinstance(value, str):
        return F.unknown(str(type(value).__name__)), f"non-string failure {value!r:.40}"
    v = value.strip()
    if v in F.FAILURES:
        return v, None
    mapped = _FAILURE_MAP.get(v)
    if mapped is not None:
        return mapped, f"failure {v!r} read as {mapped!r}"
    low = v.lower()
    for needle, to in _FAILURE_SUBSTRINGS:
        if needle in low:
            return to, f"failure {v[:60]!r} read as {to!r}"
    if low.startswith("ssl_error") or low.startswith("tls"):
        return F.SSL_FAILED_HANDSHAKE, f"failure {v[:60]!r} read as {F.SSL_FAILED_HANDSHAKE!r}"
    if F.is_failure_string(v):
        return v, None
    detail = v[len(F.UNKNOWN) :].lstrip(" :") if v.startswith(F.UNKNOWN) else v
    out = F.unknown(detail)
    return out, f"failure {v[:60]!r} kept as {out!r}"


def blocking_text(value: object) -> str | None:
    """OONI's ``blocking`` as a string: ``false``, ``dns``, ``tcp_ip``, ... (null → None)."""
    if value is None:
        return None
    if value is False:
        return "false"
    if value is True:
        return "true"
    return str(value)[:40]


@dataclass(frozen=True, slots=True)
class OoniConversion:
    """What one input record became."""

    test_name: str | None
    measurement: Measurement | None = None
    control: Measurement | None = None
    skipped: str | None = None
    """Set when the record is valid but not Web Connectivity (its test name)."""
    refused: str | None = None
    """Set when the record could not be imported at all (why)."""
    problems: tuple[str, ...] = ()
    """What was malformed (the record is counted as malformed when non-empty)."""

    @property
    def malformed(self) -> bool:
        return bool(self.problems) or self.refused is not None


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


def unwrap(raw: object) -> object:
    """The measurement inside API wrappers: ``{status, body}`` recordings, ``measurement_meta``
    answers (``raw_measurement`` as a JSON string) and ``raw_measurement`` answers."""
    for _ in range(3):
        if not isinstance(raw, dict):
            return raw
        if "raw_measurement" in raw:
            inner: object = raw["raw_measurement"]
        elif "body" in raw and "status" in raw and "test_keys" not in raw:
            inner = raw["body"]
        else:
            return raw
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except ValueError:
                return raw
        if isinstance(raw.get("measurement_uid"), str) and isinstance(inner, dict):
            inner.setdefault("measurement_uid", raw["measurement_uid"])
        raw = inner
    return raw


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


# --------------------------------------------------------------------------------------------
# DNS
# --------------------------------------------------------------------------------------------


@dataclass
class _Dns:
    resolver: str | None
    answers: tuple[str, ...] = ()
    failure: str | None = None


def _answers(q: Mapping[str, Any], notes: _Notes) -> tuple[list[str], list[str]]:
    """(A answers, AAAA answers) of one query; CNAME answers are followed, not stored."""
    v4: list[str] = []
    v6: list[str] = []
    for a in _list(q.get("answers")):
        if not isinstance(a, dict):
            notes.bad("dns answer")
            continue
        kind = a.get("answer_type")
        if kind == "A" or (kind is None and "ipv4" in a):
            ip = _ip(a.get("ipv4"))
            (v4.append(ip) if ip else notes.bad("A answer"))
        elif kind == "AAAA" or (kind is None and "ipv6" in a):
            ip = _ip(a.get("ipv6"))
            (v6.append(ip) if ip else notes.bad("AAAA answer"))
    return v4, v6


def _dns_result(queries: Sequence[Mapping[str, Any]], label: str | None, notes: _Notes) -> _Dns:
    """Combine the A/AAAA/ANY queries of one resolver like :func:`probe.steps.dns.interpret`:
    the A (or ANY) query decides the failure; AAAA only adds answers."""
    v4: list[str] = []
    v6: list[str] = []
    main: list[str | None] = []
    other: list[str | None] = []
    for q in queries:
        a4, a6 = _answers(q, notes)
        v4 += a4
        v6 += a6
        failure, why = normalise_failure(q.get("failure"))
        notes.info(why)
        (main if q.get("query_type") in ("A", "ANY", None) else other).append(failure)
    answers = tuple(dict.fromkeys(v4 + v6))
    failure = main[0] if main else next((f for f in other if f is not None), None)
    if failure == F.DNS_NO_ANSWER and answers:
        failure = None
    if failure is None and not answers:
        failure = F.DNS_NO_ANSWER
    return _Dns(resolver=label, answers=answers if failure is None else (), failure=failure)


def _is_system(q: Mapping[str, Any]) -> bool:
    engine = q.get("engine")
    return not (isinstance(engine, str) and engine.lower() in _NON_SYSTEM_ENGINES)


# --------------------------------------------------------------------------------------------
# the 0.4 / 0.5 event model, one redirect depth at a time
# --------------------------------------------------------------------------------------------


class _Events:
    """The test keys' events grouped by redirect depth (everything is depth 0 before 0.5)."""

    def __init__(self, tk: Mapping[str, Any], notes: _Notes) -> None:
        self.queries = [q for q in _list(tk.get("queries")) if isinstance(q, dict)]
        self.tcp = [t for t in _list(tk.get("tcp_connect")) if isinstance(t, dict)]
        self.tls = [t for t in _list(tk.get("tls_handshakes")) if isinstance(t, dict)]
        self.requests = [r for r in _list(tk.get("requests")) if isinstance(r, dict)]
        for key in ("queries", "tcp_connect", "tls_handshakes", "requests"):
            v = tk.get(key)
            if v is not None and not isinstance(v, list):
                notes.bad(f"test_keys.{key} is not a list")
            elif isinstance(v, list) and any(not isinstance(x, dict) for x in v):
                notes.bad(f"test_keys.{key} entry is not an object")
        items: Iterable[Mapping[str, Any]] = self.queries + self.tcp + self.tls + self.requests
        self.tagged = any(_depth(x) is not None for x in items)

    def at(self, items: Sequence[dict[str, Any]], depth: int) -> list[dict[str, Any]]:
        if not self.tagged:
            return list(items) if depth == 0 else []
        return [x for x in items if (_depth(x) or 0) == depth]

    def has_depth(self, depth: int) -> bool:
        return any(
            self.at(items, depth) for items in (self.queries, self.tcp, self.tls, self.requests)
        )

    def system_dns(self, host: str, depth: int, label: str | None, notes: _Notes) -> _Dns | None:
        qs = [
            q
            for q in self.at(self.queries, depth)
            if _is_system(q) and _host_key(_str(q.get("hostname"))) in (host, "")
        ]
        classic = [q for q in qs if _tagged(q, "classic")]
        qs = classic or qs
        if not qs:
            return None
        return _dns_result(qs, label, notes)

    def control_dns(self, host: str, notes: _Notes) -> _Dns | None:
        qs = [
            q
            for q in self.at(self.queries, 0)
            if not _is_system(q) and _host_key(_str(q.get("hostname"))) == host
        ]
        for engine in ("doh", "dot", "udp", "tcp"):
            picked = [q for q in qs if str(q.get("engine")).lower() == engine]
            if picked:
                addr = _str(picked[0].get("resolver_address")) or engine
                return _dns_result(picked, addr, notes)
        return None

    def connects(self, depth: int, ips: Sequence[str], port: int) -> list[dict[str, Any]]:
        """Connects to the system resolver's addresses on ``port``, in the resolver's order
        (the order in which the probe tries them)."""
        order = {ip: i for i, ip in enumerate(ips)}
        at = [t for t in self.at(self.tcp, depth) if _ip(t.get("ip")) in order]
        same_port = [t for t in at if t.get("port") == port]
        return sorted(same_port, key=lambda t: order.get(_ip(t.get("ip")) or "", 0))

    def handshake(self, depth: int, ip: str, port: int) -> dict[str, Any] | None:
        cands = self.at(self.tls, depth)
        for t in cands:
            tip, tport = _split_endpoint(t.get("address"))
            if tip is not None and _ip(tip) == ip and (tport in (None, port)):
                return t
        return None

    def request(self, depth: int, ips: Sequence[str], notes: _Notes) -> dict[str, Any] | None:
        reqs = [r for r in self.at(self.requests, depth) if _transport(r) == "tcp"]
        if not reqs:
            return None
        for r in reqs:
            if _tagged(r, "classic"):
                return r
        for r in reqs:
            ip, _ = _split_endpoint(r.get("address"))
            if ip is not None and _ip(ip) in ips:
                return r
        if ips and any(r.get("address") for r in reqs):
            notes.info("http fetched by OONI through an address the system resolver did not give")
        return reqs[0]


# --------------------------------------------------------------------------------------------
# TCP / TLS / HTTP of the probe's view
# --------------------------------------------------------------------------------------------


@dataclass
class _Tcp:
    server_ip: str | None = None
    failure: str | None = None
    attempts: str | None = None


NOT_CONNECTED = F.unknown("not_connected_by_ooni")


def _not_connected(ip: str, port: int) -> dict[str, Any]:
    return {"ip": ip, "port": port, "failure": NOT_CONNECTED, "ms": None}


def _tcp_status(t: Mapping[str, Any], notes: _Notes) -> str | None:
    status = _dict(t.get("status"))
    failure, why = normalise_failure(status.get("failure"))
    notes.info(why)
    if failure is None and status.get("success") is False:
        failure = F.unknown("connect_failed")
    return failure


def _tcp(
    entries: Sequence[Mapping[str, Any]], port: int, prefer: str | None, notes: _Notes
) -> _Tcp:
    attempts = []
    chosen: tuple[str, str | None] | None = None
    first: tuple[str, str | None] | None = None
    for t in entries:
        ip = _ip(t.get("ip"))
        if ip is None:
            notes.bad("tcp_connect ip")
            continue
        failure = _tcp_status(t, notes)
        attempts.append({"ip": ip, "port": port, "failure": failure, "ms": None})
        if first is None:
            first = (ip, failure)
        if failure is None and (chosen is None or ip == prefer):
            chosen = (ip, None)
    pick = chosen or first
    if pick is None:
        return _Tcp()
    return _Tcp(server_ip=pick[0], failure=pick[1], attempts=json.dumps(attempts))


@dataclass
class _Tls:
    failure: str | None = None
    version: str | None = None
    issuer: str | None = None
    subject: str | None = None
    valid: bool | None = None
    not_after: datetime | None = None
    sha256: str | None = None


def _tls(h: Mapping[str, Any], notes: _Notes) -> _Tls:
    failure, why = normalise_failure(h.get("failure"))
    notes.info(why)
    out = _Tls(failure=failure, version=_str(h.get("tls_version")))
    certs = _list(h.get("peer_certificates"))
    if certs:
        der = _maybe_binary(certs[0], "peer certificate", notes)
        info = cert_info(der)
        if info is not None:
            out.issuer, out.subject = info.issuer, info.subject
            out.not_after, out.sha256 = info.not_after, info.sha256
    if failure is None:
        out.valid = not bool(h.get("no_tls_verify"))
    elif failure in _CERT_FAILURES:
        out.valid = False
    return out


@dataclass
class _Http:
    failure: str | None = None
    status: int | None = None
    headers: str | None = None
    title: str | None = None
    body_length: int | None = None
    body_sha256: str | None = None
    body_prefix: bytes | None = None
    body_truncated: bool | None = None
    final_url: str | None = None
    redirects: list[str] = field(default_factory=list)
    verified: bool | None = None


def _req_url(r: Mapping[str, Any]) -> str | None:
    return _str(_dict(r.get("request")).get("url")) or _str(r.get("url"))


def _code(r: Mapping[str, Any]) -> int | None:
    code = _dict(r.get("response")).get("code")
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 999:
        return code
    return None


def _location(r: Mapping[str, Any], notes: _Notes) -> str | None:
    code = _code(r)
    if code is None or not 300 <= code < 400:
        return None
    loc = _header(_headers(_dict(r.get("response")), notes), "location")
    if not loc:
        return None
    try:
        return urljoin(_req_url(r) or "", loc.strip())[:2048]
    except ValueError:
        return None


def _fill_response(h: _Http, r: Mapping[str, Any], notes: _Notes) -> None:
    resp = _dict(r.get("response"))
    headers = _headers(resp, notes)
    h.status = _code(r)
    h.final_url = _req_url(r)
    h.headers = json.dumps([[k, v] for k, v in headers], ensure_ascii=False)
    body = _maybe_binary(resp.get("body"), "response body", notes)
    if body is not None:
        h.body_length = len(body)
        h.body_sha256 = hashlib.sha256(body).hexdigest()
        h.body_prefix = body[:BODY_PREFIX_BYTES]
        h.body_truncated = bool(resp.get("body_is_truncated")) or None
        h.title = extract_title(h.body_prefix, _header(headers, "content-type"))
    h.verified = True


def _legacy_chain(reqs: list[dict[str, Any]], notes: _Notes) -> list[dict[str, Any]]:
    """Requests in the order they were made.  OONI lists them newest first; the order is
    checked against the Location headers and kept when it already runs oldest first."""
    if len(reqs) < 2:
        return reqs
    fwd = sum(_location(a, notes) == _req_url(b) for a, b in itertools.pairwise(reqs))
    back = sum(_location(b, notes) == _req_url(a) for a, b in itertools.pairwise(reqs))
    if fwd > back:
        notes.info("requests listed oldest first")
        return reqs
    return list(reversed(reqs))


def _failure_before_request(
    ev: _Events, depth: int, host: str, port: int, https: bool, notes: _Notes
) -> str | None:
    """Why OONI made no request at redirect ``depth``: its DNS, connect or handshake failed."""
    dns = ev.system_dns(host, depth, None, notes)
    if dns is not None and dns.failure is not None:
        return dns.failure
    ips = list(dns.answers) if dns else []
    conns = ev.connects(depth, ips, port) if ips else ev.at(ev.tcp, depth)
    if conns:
        tcp = _tcp(conns, port, None, notes)
        if tcp.failure is not None:
            return tcp.failure
        if https and tcp.server_ip:
            hs = ev.handshake(depth, tcp.server_ip, port)
            if hs is not None:
                return _tls(hs, notes).failure
    return None


def _port_of(url: str) -> tuple[str, int, bool]:
    p = urlsplit(url)
    https = p.scheme == "https"
    try:
        port = p.port or (443 if https else 80)
    except ValueError:
        port = 443 if https else 80
    return _host_key(p.hostname), port, https


def _http_tagged(ev: _Events, first_ips: Sequence[str], notes: _Notes) -> _Http | None:
    """0.5: walk the redirect depths from 0; stop at the first failure."""
    h = _Http()
    chain: list[dict[str, Any]] = []
    depth, ips = 0, list(first_ips)
    while depth < 32:
        req = ev.request(depth, ips, notes)
        if req is None:
            if depth == 0:
                return None
            if not h.redirects:
                break
            host, port, https = _port_of(h.redirects[-1])
            h.failure = _failure_before_request(ev, depth, host, port, https, notes)
            if h.failure is None:
                notes.info(f"redirect at depth {depth} not recorded")
            break
        chain.append(req)
        failure, why = normalise_failure(req.get("failure"))
        notes.info(why)
        if failure is not None:
            h.failure = failure
            break
        loc = _location(req, notes)
        if loc is None or not ev.has_depth(depth + 1):
            break
        h.redirects.append(loc)
        depth += 1
        host, _port, _https = _port_of(loc)
        nxt = ev.system_dns(host, depth, None, notes)
        ips = list(nxt.answers) if nxt else []
    answered = [r for r in chain if _code(r) is not None]
    if answered:
        _fill_response(h, answered[-1], notes)
    return h


def _same_url(a: str | None, b: str) -> bool:
    try:
        return a is not None and normalise_url(a) == b
    except ValueError:
        return False


def _http_legacy(ev: _Events, url: str, notes: _Notes) -> _Http | None:
    chain = _legacy_chain(ev.requests, notes)
    if not chain:
        return None
    h = _Http()
    first = _req_url(chain[0])
    if first is not None and not _same_url(first, url):
        # old probes recorded only the last round trip: the first redirect is implied
        h.redirects.append(first[:2048])
        notes.info("first redirect implied by the request URL")
    for prev, cur in itertools.pairwise(chain):
        loc = _location(prev, notes)
        url = _req_url(cur)
        if loc is not None and url is not None:
            h.redirects.append(url)
        elif url is not None and url != _req_url(prev):
            notes.info("request list is not a redirect chain")
    failure, why = normalise_failure(chain[-1].get("failure"))
    notes.info(why)
    h.failure = failure
    answered = [r for r in chain if _code(r) is not None]
    if answered:
        _fill_response(h, answered[-1], notes)
    return h


# --------------------------------------------------------------------------------------------
# the two rows
# --------------------------------------------------------------------------------------------


def _record_id(raw: Mapping[str, Any]) -> str:
    uid = _str(raw.get("measurement_uid"))
    if uid is not None:
        return uid[:128]
    canon = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return "ooni-" + hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _vantage_id(asn: int | None, report_id: str | None) -> str:
    digest = hashlib.sha256((report_id or "").encode("utf-8", "replace")).hexdigest()[:12]
    return f"ooni-AS{asn if asn is not None else 0}-{digest}"


def _software(raw: Mapping[str, Any]) -> str:
    name = _str(raw.get("software_name")) or "ooni"
    ver = _str(raw.get("software_version")) or "?"
    tv = _str(raw.get("test_version")) or "?"
    return f"{name} {ver} (web_connectivity {tv})"[:120]


def convert(raw: object, *, campaign: str, run_id: str) -> OoniConversion:
    """Map one OONI measurement (any wrapper accepted) to its rows; never raises."""
    raw = unwrap(raw)
    if not isinstance(raw, dict):
        return OoniConversion(None, refused=f"not a JSON object ({type(raw).__name__})")
    test_name = _str(raw.get("test_name"))
    if test_name is None:
        return OoniConversion(None, refused="no test_name")
    if test_name != WEB_CONNECTIVITY:
        return OoniConversion(test_name, skipped=test_name)
    try:
        return _convert_wc(raw, campaign, run_id)
    except Exception as exc:  # a bug in this module must not stop an import of millions
        return OoniConversion(test_name, refused=f"internal error {type(exc).__name__}: {exc}")


@dataclass
class _View:
    """The probe's view of one measurement, step by step (what res64 would have recorded)."""

    dns: _Dns | None = None
    dns_failure: str | None = None
    tcp: _Tcp = field(default_factory=_Tcp)
    tls: _Tls | None = None
    http: _Http | None = None


def _probe_view(ev: _Events, tk: Mapping[str, Any], url: str, label: str, notes: _Notes) -> _View:
    """DNS → TCP → TLS → HTTP from the events, stopping at the first failed step."""
    host, port, https = _port_of(url)
    v = _View(dns=ev.system_dns(host, 0, label, notes))
    if _ip(host) is not None:
        v.dns = _Dns(resolver=None, answers=(_ip(host) or host,))
    if v.dns is None:
        v.dns_failure, why = normalise_failure(tk.get("dns_experiment_failure"))
        notes.info(why)
        if not ev.queries:
            notes.info("no DNS query recorded")
    else:
        v.dns_failure = v.dns.failure
    if v.dns_failure is not None:
        return v
    ips = list(v.dns.answers) if v.dns else []
    entries = ev.connects(0, ips, port) if ips else []
    if not entries and ev.at(ev.tcp, 0) and (ips or v.dns is None):
        # old probes: connects to another port, or no DNS record to filter with
        entries = [t for t in ev.at(ev.tcp, 0) if v.dns is None or _ip(t.get("ip")) in ips]
        if entries:
            notes.info("tcp_connect port differs from the URL's")
    first_req = ev.request(0, ips, _Notes())  # only to prefer the address it used
    prefer, _p = _split_endpoint(first_req.get("address")) if first_req else (None, None)
    v.tcp = _tcp(entries, port, _ip(prefer), notes)
    if not entries and ips and (ev.tagged or ev.tcp):
        # OONI did not connect to these addresses (it skips bogons): the probe's view ends
        # here, with the reason as an unknown_failure (never a blocking signal)
        v.tcp = _Tcp(ips[0], NOT_CONNECTED, json.dumps([_not_connected(ips[0], port)]))
        notes.info("OONI did not connect to the system resolver's addresses")
    if v.tcp.failure is not None:
        return v
    if https and v.tcp.server_ip is not None:
        hs = ev.handshake(0, v.tcp.server_ip, port)
        if hs is not None:
            v.tls = _tls(hs, notes)
    v.http = _http_tagged(ev, ips, notes) if ev.tagged else _http_legacy(ev, url, notes)
    if v.http is None:
        f, why = normalise_failure(tk.get("http_experiment_failure"))
        notes.info(why)
        if f is not None:
            v.http = _Http(failure=f)
    if https and v.tls is None and v.http is not None and not ev.tls:
        v.tls = _infer_tls(v.http, notes)
    if v.tls is not None and v.tls.failure is not None:
        v.http = None  # the probe does not fetch after a failed handshake
    return v


def _convert_wc(raw: dict[str, Any], campaign: str, run_id: str) -> OoniConversion:
    notes = _Notes()
    started = _parse_time(raw.get("measurement_start_time"))
    if started is None:
        started = _parse_time(raw.get("test_start_time"))
        if started is None:
            return OoniConversion(WEB_CONNECTIVITY, refused="no usable measurement_start_time")
        notes.bad("measurement_start_time missing: test_start_time used")
    raw_input = _str(raw.get("input"))
    if raw_input is None:
        return OoniConversion(WEB_CONNECTIVITY, refused="no input URL")
    try:
        url = normalise_url(raw_input)
    except ValueError as exc:
        return OoniConversion(WEB_CONNECTIVITY, refused=f"input URL not usable ({exc})")
    host, port, https = _port_of(url)

    cc = _str(raw.get("probe_cc"))
    if cc is None or not _CC_RE.match(cc):
        notes.bad(f"probe_cc {cc!r:.12}")
        cc = "ZZ"
    asn = _asn(raw.get("probe_asn"), notes)
    tk = raw.get("test_keys")
    if not isinstance(tk, dict):
        notes.bad("test_keys missing")
        tk = {}
    mid = _record_id(raw)
    runtime = raw.get("test_runtime")
    duration = (
        round(float(runtime) * 1000, 3)
        if isinstance(runtime, int | float) and not isinstance(runtime, bool) and runtime >= 0
        else None
    )
    ev = _Events(tk, notes)
    label = _str(tk.get("client_resolver")) or _str(raw.get("resolver_ip")) or "system"
    view = _probe_view(ev, tk, url, label, notes)
    dns, dns_failure, tcp, tls, http = view.dns, view.dns_failure, view.tcp, view.tls, view.http
    control_dns = ev.control_dns(host, notes)
    step, failure = summarise_failure(
        dns_failure,
        tcp.failure,
        tls.failure if tls else None,
        http.failure if http else None,
    )
    accessible = tk.get("accessible")
    m = Measurement(
        measurement_id=mid,
        schema_version=SCHEMA_VERSION,
        software_version=_software(raw),
        campaign=campaign,
        run_id=run_id,
        started_at=started,
        duration_ms=duration,
        vantage_id=_vantage_id(asn, _str(raw.get("report_id"))),
        probe_cc=cc,
        probe_asn=asn,
        probe_as_name=(_str(raw.get("probe_network_name")) or None),
        url=url,
        hostname=host,
        dns_resolver=dns.resolver if dns else None,
        dns_answers=dns.answers if dns else (),
        dns_failure=dns_failure,
        dns_control_resolver=control_dns.resolver if control_dns else None,
        dns_control_answers=control_dns.answers if control_dns else (),
        dns_control_failure=control_dns.failure if control_dns else None,
        server_ip=tcp.server_ip,
        server_port=port if tcp.server_ip else None,
        tcp_failure=tcp.failure,
        tcp_attempts=tcp.attempts,
        tls_failure=tls.failure if tls else None,
        tls_version=tls.version if tls else None,
        tls_cert_issuer=tls.issuer if tls else None,
        tls_cert_subject=tls.subject if tls else None,
        tls_cert_valid=tls.valid if tls else None,
        tls_cert_not_after=tls.not_after if tls else None,
        tls_cert_sha256=tls.sha256 if tls else None,
        **_http_fields(http),
        failure_step=step,
        failure=failure,
        data_source=DATA_SOURCE,
        ooni_blocking=blocking_text(tk.get("blocking")),
        ooni_accessible=accessible if isinstance(accessible, bool) else None,
        import_note=None,
    )
    control = _control_row(tk, m, https, port, notes)
    note = notes.text()
    m = _with_note(m, note)
    return OoniConversion(
        WEB_CONNECTIVITY, measurement=m, control=control, problems=tuple(notes.problems)
    )


def _infer_tls(http: _Http, notes: _Notes) -> _Tls | None:
    """Before 0.5 there is no handshake record: for an HTTPS URL a failure with no response at
    all happened during the handshake (certificate errors, resets and EOFs at that point)."""
    if http.status is not None or http.redirects:
        return _Tls(failure=None, valid=True)  # a response came: the handshake validated
    f = http.failure
    if f in _CERT_FAILURES or f in (F.SSL_FAILED_HANDSHAKE, F.CONNECTION_RESET, F.EOF_ERROR):
        notes.info("tls failure inferred from the request failure (no handshake record)")
        return _Tls(failure=f, valid=False if f in _CERT_FAILURES else None)
    return None


def _http_fields(h: _Http | None) -> dict[str, Any]:
    if h is None:
        return {}
    return {
        "http_status": h.status,
        "http_failure": h.failure,
        "http_headers": h.headers,
        "http_title": h.title,
        "http_body_length": h.body_length,
        "http_body_sha256": h.body_sha256,
        "http_body_prefix": h.body_prefix,
        "http_body_truncated": h.body_truncated,
        "http_final_url": h.final_url,
        "http_redirects": tuple(h.redirects),
        "http_verified": h.verified,
    }


def _with_note(m: Measurement, note: str | None) -> Measurement:
    return m if note == m.import_note else dataclasses.replace(m, import_note=note)


def _control_row(
    tk: Mapping[str, Any], m: Measurement, https: bool, port: int, notes: _Notes
) -> Measurement | None:
    """OONI's test helper view as a dedicated control measurement (vantage ``ooni-th``)."""
    ctl = tk.get("control")
    if not isinstance(ctl, dict) or not ctl:
        notes.info("no test-helper control")
        return None
    if tk.get("control_failure"):
        notes.info(f"test helper failed ({str(tk.get('control_failure'))[:40]}): no control")
        return None
    cn = _Notes()
    d = _dict(ctl.get("dns"))
    dns_failure, why = normalise_failure(d.get("failure"))
    cn.info(why)
    addrs = [a for a in (_ip(x) for x in _list(d.get("addrs"))) if a is not None]
    if dns_failure is None and not addrs and d:
        dns_failure = F.DNS_NO_ANSWER
    if _ip(m.hostname) is not None:
        addrs, dns_failure = [m.hostname or ""], None
    tcp = _Tcp()
    tls: _Tls | None = None
    http: _Http | None = None
    if dns_failure is None:
        attempts = []
        for ep, st in _dict(ctl.get("tcp_connect")).items():
            ip, p = _split_endpoint(ep)
            ip = _ip(ip)
            if ip is None or ip not in addrs or p != port or not isinstance(st, dict):
                continue
            f, why = normalise_failure(st.get("failure"))
            cn.info(why)
            if f is None and st.get("status") is False:
                f = F.unknown("connect_failed")
            attempts.append({"ip": ip, "port": port, "failure": f, "ms": None})
        ok = [a for a in attempts if a["failure"] is None]
        pick = ok[0] if ok else (attempts[0] if attempts else None)
        if pick is not None:
            tcp = _Tcp(pick["ip"], pick["failure"], json.dumps(attempts))
        if tcp.failure is None:
            if https and tcp.server_ip is not None:
                for ep, st in _dict(ctl.get("tls_handshake")).items():
                    ip, p = _split_endpoint(ep)
                    if _ip(ip) == tcp.server_ip and isinstance(st, dict):
                        f, why = normalise_failure(st.get("failure"))
                        cn.info(why)
                        tls = _Tls(failure=f, valid=True if f is None else None)
                        if f in _CERT_FAILURES:
                            tls.valid = False
                        break
            if tls is None or tls.failure is None:
                http = _control_http(_dict(ctl.get("http_request")), cn)
    step, failure = summarise_failure(
        dns_failure, tcp.failure, tls.failure if tls else None, http.failure if http else None
    )
    return Measurement(
        measurement_id=f"{m.measurement_id}.th",
        schema_version=SCHEMA_VERSION,
        software_version=m.software_version,
        campaign=m.campaign,
        run_id=m.run_id,
        started_at=m.started_at,
        vantage_id=CONTROL_VANTAGE,
        probe_cc="ZZ",
        is_control=True,
        url=m.url,
        hostname=m.hostname,
        dns_resolver=CONTROL_VANTAGE,
        dns_answers=tuple(dict.fromkeys(addrs)) if dns_failure is None else (),
        dns_failure=dns_failure,
        server_ip=tcp.server_ip,
        server_port=port if tcp.server_ip else None,
        tcp_failure=tcp.failure,
        tcp_attempts=tcp.attempts,
        tls_failure=tls.failure if tls else None,
        tls_cert_valid=tls.valid if tls else None,
        **_http_fields(http),
        failure_step=step,
        failure=failure,
        data_source=DATA_SOURCE,
        import_note=cn.text(),
    )


def _control_http(hr: Mapping[str, Any], notes: _Notes) -> _Http | None:
    if not hr:
        return None
    h = _Http()
    failure, why = normalise_failure(hr.get("failure"))
    notes.info(why)
    h.failure = failure
    code = hr.get("status_code")
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 999:
        h.status = code
    headers = _headers({"headers": hr.get("headers")}, notes) if hr.get("headers") else []
    if headers:
        h.headers = json.dumps([[k, v] for k, v in headers], ensure_ascii=False)
    title = hr.get("title")
    if isinstance(title, str) and title.strip():
        h.title = " ".join(title.split())[:512]
    length = hr.get("body_length")
    if isinstance(length, int) and not isinstance(length, bool) and length >= 0:
        h.body_length = length
    if h.status is not None:
        h.verified = True
    if h.failure is None and h.status is None:
        return None
    return h
