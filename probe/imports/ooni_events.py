"""The OONI event model and the steps drawn from it (pure: no I/O).

The test keys' ``queries``, ``tcp_connect``, ``tls_handshakes`` and ``requests`` grouped by
redirect depth (data-format 0.5 tags every event with ``depth=N``; everything is depth 0
before), and the DNS, TCP, TLS and HTTP results res64 would have recorded from them, including
the redirect chain (walked depth by depth in 0.5, rebuilt from the newest-first request list
before).  :mod:`probe.imports.ooni` assembles these into rows.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from probe import failures as F
from probe.imports.ooni_failures import _CERT_FAILURES, NOT_CONNECTED, normalise_failure
from probe.imports.ooni_readers import (
    _depth,
    _dict,
    _header,
    _headers,
    _host_key,
    _ip,
    _list,
    _maybe_binary,
    _Notes,
    _split_endpoint,
    _str,
    _tagged,
    _transport,
)
from probe.steps.body import extract_title
from probe.steps.tls import cert_info
from probe.targets import normalise_url

BODY_PREFIX_BYTES = 32 * 1024  # as the probe's default --body-bytes
_NON_SYSTEM_ENGINES = frozenset({"udp", "doh", "dot", "tcp", "doq", "quic"})


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
