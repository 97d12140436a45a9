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

This module assembles the rows; the parts live beside it: :mod:`probe.imports.ooni_failures`
(failure strings → vocabulary), :mod:`probe.imports.ooni_readers` (tolerant field readers) and
:mod:`probe.imports.ooni_events` (events by redirect depth, and the DNS/TCP/TLS/HTTP steps).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from probe import failures as F
from probe.imports.ooni_events import BODY_PREFIX_BYTES as BODY_PREFIX_BYTES
from probe.imports.ooni_events import (
    _Dns,
    _Events,
    _Http,
    _http_legacy,
    _http_tagged,
    _infer_tls,
    _not_connected,
    _port_of,
    _Tcp,
    _tcp,
    _Tls,
    _tls,
)
from probe.imports.ooni_failures import _CERT_FAILURES
from probe.imports.ooni_failures import NOT_CONNECTED as NOT_CONNECTED
from probe.imports.ooni_failures import normalise_failure as normalise_failure
from probe.imports.ooni_readers import MAX_HEADERS as MAX_HEADERS
from probe.imports.ooni_readers import MAX_NOTE as MAX_NOTE
from probe.imports.ooni_readers import (
    _asn,
    _dict,
    _headers,
    _ip,
    _list,
    _Notes,
    _parse_time,
    _split_endpoint,
    _str,
)
from probe.records import Measurement, summarise_failure
from probe.schema import SCHEMA_VERSION
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

_CC_RE = re.compile(r"^[A-Z]{2}$")


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
