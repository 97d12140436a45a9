"""Typed rows produced by the probe.

Every measurement step returns a small frozen result (:class:`DnsResult`, :class:`TcpResult`,
:class:`TlsResult`, :class:`HttpResult`); :func:`probe.runner` assembles them into one flat
:class:`Measurement` row whose fields carry layer prefixes (``dns_``, ``tcp_``, ``tls_``,
``http_``), exactly the columns of the ``measurements`` table (see :mod:`probe.schema`).
Traceroutes produce :class:`Hop` rows (table ``hops``).

Failures are data: ``None`` means the step succeeded, otherwise an OONI failure string
(:mod:`probe.failures`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Failure = str | None


@dataclass(frozen=True, slots=True)
class DnsResult:
    """One lookup (A then AAAA) of one hostname through one resolver."""

    resolver: str | None
    answers: tuple[str, ...] = ()
    failure: Failure = None
    rcode: str | None = None
    ms: float | None = None


@dataclass(frozen=True, slots=True)
class TcpAttempt:
    """A connect attempt to one resolved address."""

    ip: str
    port: int
    failure: Failure
    ms: float | None


@dataclass(frozen=True, slots=True)
class TcpResult:
    """The connect step: every address tried, and the one measured further."""

    server_ip: str | None
    server_port: int
    failure: Failure
    ms: float | None
    attempts: tuple[TcpAttempt, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsResult:
    """The TLS handshake with SNI, validated against the trusted CAs."""

    failure: Failure
    version: str | None = None
    cert_issuer: str | None = None
    cert_subject: str | None = None
    cert_valid: bool | None = None
    cert_not_after: datetime | None = None
    cert_sha256: str | None = None
    ms: float | None = None


@dataclass(frozen=True, slots=True)
class HttpResult:
    """The HTTP(S) GET, following at most the configured number of redirects."""

    failure: Failure
    status: int | None = None
    headers: str | None = None  # JSON list of [name, value] pairs of the final response
    title: str | None = None
    body_length: int | None = None
    body_sha256: str | None = None
    body_prefix: bytes | None = None
    body_truncated: bool | None = None
    final_url: str | None = None
    redirects: tuple[str, ...] = ()
    verified: bool | None = None  # fetched with certificate validation on
    ms: float | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    """One row of the ``measurements`` table (SPEC §4). Field order = column order."""

    # identity
    measurement_id: str
    schema_version: int
    software_version: str
    campaign: str
    run_id: str
    started_at: datetime
    duration_ms: float | None = None
    rep: int = 0
    # vantage
    vantage_id: str | None = None
    probe_cc: str | None = None
    probe_asn: int | None = None
    probe_as_name: str | None = None
    via_proxy: str | None = None
    is_control: bool = False
    steps_hidden: tuple[str, ...] = ()
    # target
    url: str = ""
    hostname: str | None = None
    category_code: str | None = None
    operator_cc: str | None = None
    # dns
    dns_resolver: str | None = None
    dns_answers: tuple[str, ...] = ()
    dns_failure: Failure = None
    dns_rcode: str | None = None
    dns_ms: float | None = None
    dns_control_resolver: str | None = None
    dns_control_answers: tuple[str, ...] = ()
    dns_control_failure: Failure = None
    dns_control_ms: float | None = None
    # tcp
    server_ip: str | None = None
    server_port: int | None = None
    server_cc: str | None = None
    server_asn: int | None = None
    server_as_name: str | None = None
    tcp_failure: Failure = None
    tcp_ms: float | None = None
    tcp_attempts: str | None = None  # JSON list of {"ip","port","failure","ms"}
    synack_ttl: int | None = None
    rst_ttl: int | None = None
    # tls
    tls_failure: Failure = None
    tls_version: str | None = None
    tls_cert_issuer: str | None = None
    tls_cert_subject: str | None = None
    tls_cert_valid: bool | None = None
    tls_cert_not_after: datetime | None = None
    tls_cert_sha256: str | None = None
    tls_ms: float | None = None
    # http
    http_status: int | None = None
    http_failure: Failure = None
    http_headers: str | None = None
    http_title: str | None = None
    http_body_length: int | None = None
    http_body_sha256: str | None = None
    http_body_prefix: bytes | None = None
    http_body_truncated: bool | None = None
    http_final_url: str | None = None
    http_redirects: tuple[str, ...] = ()
    http_verified: bool | None = None
    http_ms: float | None = None
    # summary
    failure_step: str | None = None
    failure: Failure = None
    # provenance of imported or delegated records
    data_source: str = "res64"  # res64 | helper | control_proxy | ooni
    ooni_blocking: str | None = None
    ooni_accessible: bool | None = None
    import_note: str | None = None

    def as_row(self) -> dict[str, Any]:
        """A plain dict (tuples become lists) ready for :func:`pyarrow.Table.from_pylist`."""
        row = {}
        for f in MEASUREMENT_FIELDS:
            v = getattr(self, f)
            row[f] = list(v) if isinstance(v, tuple) else v
        return row


@dataclass(frozen=True, slots=True)
class Hop:
    """One row of the ``hops`` table: one TTL of one traceroute."""

    trace_id: str
    vantage_id: str | None
    probe_cc: str | None
    started_at: datetime
    dst_ip: str
    dst_port: int | None
    proto: str
    ttl: int
    measurement_id: str | None = None
    campaign: str = ""
    run_id: str = ""
    hop_ip: str | None = None
    rtt_ms: float | None = None
    reply_kind: str = "none"  # time_exceeded | synack | rst | unreachable | none
    reply_ttl: int | None = None
    hop_cc: str | None = None
    hop_asn: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def as_row(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in HOP_FIELDS}


MEASUREMENT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Measurement))
HOP_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Hop) if f.name != "extra")

STEPS: tuple[str, ...] = ("dns", "tcp", "tls", "http")


def summarise_failure(
    dns: Failure, tcp: Failure, tls: Failure, http: Failure
) -> tuple[str | None, Failure]:
    """``(failure_step, failure)``: the first step that failed, in pipeline order."""
    for step, value in zip(STEPS, (dns, tcp, tls, http), strict=True):
        if value is not None:
            return step, value
    return None, None
