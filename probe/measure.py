"""One measurement of one target: DNS → TCP → TLS → HTTP, assembled into a Measurement row.

Each step records its failure as data; an overall budget (``Timeouts.target``) bounds the whole
measurement.  Nothing here writes files or keeps state between targets beyond :class:`Context`.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import trio

from probe import failures as F
from probe._version import __version__
from probe.config import MeasureConfig, is_loopback, redact_url
from probe.geo import GeoResolver
from probe.ids import new_id
from probe.records import (
    DnsResult,
    HttpResult,
    Measurement,
    TcpResult,
    TlsResult,
    summarise_failure,
)
from probe.schema import SCHEMA_VERSION
from probe.steps import dns as dns_step
from probe.steps import http as http_step
from probe.steps import tcp as tcp_step
from probe.steps import tls as tls_step
from probe.targets import Target

NON_LOOPBACK_REFUSED = F.unknown("non_loopback_destination_refused")


@dataclass
class Context:
    """Shared, read-only-after-start state of a run."""

    cfg: MeasureConfig
    run_id: str
    geo: GeoResolver
    resolver: dns_step.ResolverSpec | None
    control: dns_step.ResolverSpec | None
    verify_ctx: object = field(default=None)
    insecure_ctx: object = field(default=None)
    doh_client: httpx.AsyncClient | None = None
    # which addresses count as private for the redirect policy (tests substitute their own)
    private_check: Callable[[str], bool] = http_step.is_private
    data_source: str = "res64"
    capture_ttl: bool = False  # privileged: record SYN-ACK and RST/FIN TTLs (injection evidence)

    def __post_init__(self) -> None:
        if self.verify_ctx is None:
            self.verify_ctx = tls_step.verifying_context(self.cfg.ca_bundle)
        if self.insecure_ctx is None:
            self.insecure_ctx = tls_step.insecure_context()


def _resolver_allowed(spec: dns_step.ResolverSpec, loopback_only: bool) -> bool:
    if not loopback_only:
        return True
    if spec.doh_url:
        host = urlsplit(spec.doh_url).hostname or ""
        return host in ("localhost",) or is_loopback(host)
    return spec.host is not None and is_loopback(spec.host)


async def _dns(ctx: Context, spec: dns_step.ResolverSpec | None, hostname: str) -> DnsResult:
    if spec is None:
        return DnsResult(resolver=None, failure=F.unknown("no_resolver_configured"))
    if not _resolver_allowed(spec, ctx.cfg.loopback_only):
        return DnsResult(resolver=spec.label, failure=NON_LOOPBACK_REFUSED)
    return await dns_step.lookup(
        hostname,
        spec,
        timeout=ctx.cfg.timeouts.dns,
        source=ctx.cfg.vantage.source_address,
        doh_client=ctx.doh_client,
    )


class _Partial:
    """What a measurement has obtained so far (kept when the budget runs out)."""

    def __init__(self) -> None:
        self.step = "dns"
        self.dns: DnsResult | None = None
        self.control: DnsResult | None = None
        self.tcp: TcpResult | None = None
        self.tls: TlsResult | None = None
        self.http: HttpResult | None = None
        self.steps_hidden: tuple[str, ...] = ()
        self.synack_ttl: int | None = None
        self.rst_ttl: int | None = None


async def _run_steps(ctx: Context, target: Target, p: _Partial) -> None:
    cfg = ctx.cfg
    parts = urlsplit(target.url)
    scheme = parts.scheme
    port = parts.port or http_step.default_port(scheme)
    host = target.hostname
    source = cfg.vantage.source_address

    if cfg.proxy:
        # Through a proxy the vantage sees neither the DNS answer nor the TCP peer.
        p.steps_hidden = ("dns", "tcp") + (("tls",) if scheme == "http" else ())
        p.step = "http"
        opts = http_step.FetchOptions(
            ssl_context=ctx.verify_ctx,  # type: ignore[arg-type]
            limits=cfg.limits,
            timeout=cfg.timeouts.http,
            connect_timeout=cfg.timeouts.tcp,
            user_agent=cfg.user_agent,
            source=source,
        )
        p.http = await http_step.fetch(
            target.url,
            opts,
            resolve=_resolve_fn(ctx),
            handover=None,
            policy=http_step.Policy(loopback_only=False, origin_public=False),
            proxy=cfg.proxy,
        )
        return

    # DNS (system and control resolver at the same time)
    try:
        ipaddress.ip_address(host)
        p.dns = DnsResult(resolver=None, answers=(host,))
    except ValueError:
        async with trio.open_nursery() as nursery:

            async def system() -> None:
                p.dns = await _dns(ctx, ctx.resolver, host)

            async def control() -> None:
                if ctx.control is not None:
                    p.control = await _dns(ctx, ctx.control, host)

            nursery.start_soon(system)
            nursery.start_soon(control)
    assert p.dns is not None
    if p.dns.failure is not None:
        return

    if ctx.capture_ttl and p.dns.answers:
        from probe.transports.raw import ttl_watch

        async with ttl_watch(p.dns.answers[0], port) as watcher:
            try:
                await _connect_and_fetch(ctx, target, p, scheme, port, watcher)
            finally:
                p.synack_ttl = watcher.synack_ttl
                p.rst_ttl = watcher.closing_ttl
        return
    await _connect_and_fetch(ctx, target, p, scheme, port, None)


async def _connect_and_fetch(
    ctx: Context, target: Target, p: _Partial, scheme: str, port: int, watcher: object
) -> None:
    cfg = ctx.cfg
    host = target.hostname
    source = cfg.vantage.source_address
    assert p.dns is not None
    # TCP
    p.step = "tcp"
    p.tcp, stream = await tcp_step.connect_first(
        p.dns.answers,
        port,
        source=source,
        timeout=cfg.timeouts.tcp,
        loopback_only=cfg.loopback_only,
    )
    if stream is None:
        return
    ip = p.tcp.server_ip
    assert ip is not None
    if watcher is not None:
        watcher.bind(stream.socket.getsockname()[1])  # type: ignore[attr-defined]

    # TLS
    verified = True
    http_stream: trio.abc.Stream = stream
    if scheme == "https":
        p.step = "tls"
        ssl_stream, failure, ms = await tls_step.handshake(
            stream,
            host,
            ctx.verify_ctx,
            timeout=cfg.timeouts.tls,  # type: ignore[arg-type]
        )
        if ssl_stream is not None:
            p.tls = tls_step.result_from(ssl_stream, None, ms, True)
            http_stream = ssl_stream
        elif tls_step.is_cert_failure(failure):
            # Record the certificate and fetch the page anyway: a block page is evidence.
            verified = False
            try:
                raw = await tcp_step.open_connection(
                    ip, port, source=source, timeout=cfg.timeouts.tcp
                )
            except Exception as exc:
                p.tls = TlsResult(failure=failure, cert_valid=False, ms=ms)
                p.step = "http"
                p.http = HttpResult(failure=F.classify(exc), verified=False)
                return
            insecure, _f2, _ms2 = await tls_step.handshake(
                raw,
                host,
                ctx.insecure_ctx,
                timeout=cfg.timeouts.tls,  # type: ignore[arg-type]
            )
            p.tls = tls_step.result_from(insecure, failure, ms, False)
            if insecure is None:
                return
            http_stream = insecure
        else:
            p.tls = TlsResult(failure=failure, ms=ms)
            return

    # HTTP
    p.step = "http"
    opts = http_step.FetchOptions(
        ssl_context=ctx.verify_ctx if verified else ctx.insecure_ctx,  # type: ignore[arg-type]
        limits=cfg.limits,
        timeout=cfg.timeouts.http,
        connect_timeout=cfg.timeouts.tcp,
        user_agent=cfg.user_agent,
        source=source,
        verified=verified,
    )
    p.http = await http_step.fetch(
        target.url,
        opts,
        resolve=_resolve_fn(ctx),
        handover=(host.lower(), port, http_stream),
        policy=http_step.Policy(
            loopback_only=cfg.loopback_only,
            origin_public=not ctx.private_check(ip),
            private_check=ctx.private_check,
        ),
    )


def _resolve_fn(ctx: Context) -> http_step.Resolve:
    async def resolve(name: str) -> list[str]:
        r = await _dns(ctx, ctx.resolver, name)
        if r.failure is not None:
            raise http_step.PolicyRefusal(r.failure)
        return list(r.answers)

    return resolve


def _timeout_partial(p: _Partial) -> None:
    """The budget ran out during ``p.step``: record a timeout there."""
    t = F.GENERIC_TIMEOUT
    if p.step == "dns" and p.dns is None:
        p.dns = DnsResult(resolver=None, failure=t)
    elif p.step == "tcp" and p.tcp is None:
        p.tcp = TcpResult(None, 0, t, None)
    elif p.step == "tls" and p.tls is None:
        p.tls = TlsResult(failure=t)
    elif p.step == "http" and p.http is None:
        p.http = HttpResult(failure=t)


async def measure_target(ctx: Context, target: Target, rep: int = 0) -> Measurement:
    """Measure one target; never raises for network reasons."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    p = _Partial()
    with trio.move_on_after(ctx.cfg.timeouts.target) as scope:
        await _run_steps(ctx, target, p)
    if scope.cancelled_caught:
        _timeout_partial(p)
    return assemble(ctx, target, rep, started, (time.perf_counter() - t0) * 1000, p)


def assemble(
    ctx: Context, target: Target, rep: int, started: datetime, duration_ms: float, p: _Partial
) -> Measurement:
    """Pure: step results → one flat Measurement row."""
    cfg = ctx.cfg
    v = cfg.vantage
    dns, ctl, tcp, tls, http = p.dns, p.control, p.tcp, p.tls, p.http
    geo = ctx.geo.lookup(tcp.server_ip) if tcp and tcp.server_ip else None
    step, failure = summarise_failure(
        dns.failure if dns else None,
        tcp.failure if tcp else None,
        tls.failure if tls else None,
        http.failure if http else None,
    )
    return Measurement(
        measurement_id=new_id(),
        schema_version=SCHEMA_VERSION,
        software_version=__version__,
        campaign=cfg.campaign,
        run_id=ctx.run_id,
        started_at=started,
        duration_ms=round(duration_ms, 3),
        rep=rep,
        vantage_id=v.vantage_id,
        probe_cc=v.probe_cc,
        probe_asn=v.probe_asn,
        probe_as_name=v.probe_as_name,
        via_proxy=redact_url(cfg.proxy) if cfg.proxy else None,
        is_control=v.is_control,
        steps_hidden=p.steps_hidden,
        url=target.url,
        hostname=target.hostname,
        category_code=target.category_code,
        operator_cc=target.operator_cc,
        dns_resolver=dns.resolver if dns else None,
        dns_answers=dns.answers if dns else (),
        dns_failure=dns.failure if dns else None,
        dns_rcode=dns.rcode if dns else None,
        dns_ms=_r(dns.ms) if dns else None,
        dns_control_resolver=ctl.resolver if ctl else None,
        dns_control_answers=ctl.answers if ctl else (),
        dns_control_failure=ctl.failure if ctl else None,
        dns_control_ms=_r(ctl.ms) if ctl else None,
        server_ip=tcp.server_ip if tcp else None,
        server_port=tcp.server_port if tcp else None,
        server_cc=geo.cc if geo else None,
        server_asn=geo.asn if geo else None,
        server_as_name=geo.as_name if geo else None,
        tcp_failure=tcp.failure if tcp else None,
        tcp_ms=_r(tcp.ms) if tcp else None,
        tcp_attempts=json.dumps(
            [
                {"ip": a.ip, "port": a.port, "failure": a.failure, "ms": _r(a.ms)}
                for a in tcp.attempts
            ]
        )
        if tcp
        else None,
        tls_failure=tls.failure if tls else None,
        tls_version=tls.version if tls else None,
        tls_cert_issuer=tls.cert_issuer if tls else None,
        tls_cert_subject=tls.cert_subject if tls else None,
        tls_cert_valid=tls.cert_valid if tls else None,
        tls_cert_not_after=tls.cert_not_after if tls else None,
        tls_cert_sha256=tls.cert_sha256 if tls else None,
        tls_ms=_r(tls.ms) if tls else None,
        http_status=http.status if http else None,
        http_failure=http.failure if http else None,
        http_headers=http.headers if http else None,
        http_title=http.title if http else None,
        http_body_length=http.body_length if http else None,
        http_body_sha256=http.body_sha256 if http else None,
        http_body_prefix=http.body_prefix if http else None,
        http_body_truncated=http.body_truncated if http else None,
        http_final_url=http.final_url if http else None,
        http_redirects=http.redirects if http else (),
        http_verified=http.verified if http else None,
        http_ms=_r(http.ms) if http else None,
        synack_ttl=p.synack_ttl,
        rst_ttl=p.rst_ttl,
        failure_step=step,
        failure=failure,
        data_source=ctx.data_source,
    )


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
