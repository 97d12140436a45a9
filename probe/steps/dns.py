"""DNS step: A and AAAA lookups of one name through one resolver (UDP, TCP on truncation, DoH).

I/O is :func:`lookup`; :func:`interpret` turns the two DNS responses into a :class:`DnsResult`
(pure, unit-tested).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dns.asyncbackend
import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
import httpx
import trio

from probe import failures as F
from probe.config import parse_host_port
from probe.records import DnsResult

MAX_DNS_RESPONSE = 65535


@dataclass(frozen=True, slots=True)
class ResolverSpec:
    """Where to send queries: a UDP/TCP resolver address or a DNS-over-HTTPS URL."""

    host: str | None = None
    port: int = 53
    doh_url: str | None = None

    @property
    def label(self) -> str:
        if self.doh_url:
            return self.doh_url
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port != 53 else str(self.host)

    @classmethod
    def parse(cls, value: str, what: str = "--resolver") -> ResolverSpec:
        if value.startswith("https://"):
            return cls(doh_url=value)
        host, port = parse_host_port(value, 53, what)
        return cls(host=host, port=port)


def system_resolver() -> ResolverSpec | None:
    """The first nameserver of /etc/resolv.conf (None when there is none)."""
    try:
        r = dns.resolver.Resolver(configure=True)
    except (dns.resolver.NoResolverConfiguration, OSError):
        return None
    for ns in r.nameservers:
        ns = str(ns)
        if ns.startswith("https://"):
            return ResolverSpec(doh_url=ns)
        return ResolverSpec(host=ns, port=int(r.port or 53))
    return None


def _rcode_failure(rcode: int) -> str | None:
    if rcode == dns.rcode.NOERROR:
        return None
    if rcode == dns.rcode.NXDOMAIN:
        return F.DNS_NXDOMAIN
    if rcode == dns.rcode.REFUSED:
        return F.DNS_REFUSED
    return F.DNS_MISBEHAVING


def answers_of(msg: dns.message.Message, rdtype: int) -> list[str]:
    """Addresses of type ``rdtype`` in the answer section (following CNAMEs in it)."""
    out: list[str] = []
    for rrset in msg.answer:
        if rrset.rdtype == rdtype:
            out.extend(rd.to_text() for rd in rrset)
    return out


def interpret(
    resolver: str | None,
    a: dns.message.Message | BaseException | None,
    aaaa: dns.message.Message | BaseException | None,
    ms: float | None,
) -> DnsResult:
    """Pure: two responses (or the exceptions raised) → one :class:`DnsResult`.

    The A response decides the failure; AAAA only adds answers (many names have none).
    """
    if isinstance(a, BaseException) or a is None:
        failure = F.classify(a) if isinstance(a, BaseException) else F.DNS_MISBEHAVING
        return DnsResult(resolver=resolver, failure=failure, ms=ms)
    rcode = a.rcode()
    answers = answers_of(a, dns.rdatatype.A)
    if isinstance(aaaa, dns.message.Message) and aaaa.rcode() == dns.rcode.NOERROR:
        answers += answers_of(aaaa, dns.rdatatype.AAAA)
    failure = _rcode_failure(rcode)
    if failure is None and not answers:
        failure = F.DNS_NO_ANSWER
    # de-duplicate, keep order
    seen: dict[str, None] = dict.fromkeys(answers)
    return DnsResult(
        resolver=resolver,
        answers=tuple(seen),
        failure=failure,
        rcode=dns.rcode.to_text(rcode),
        ms=ms,
    )


async def _query_udp_tcp(
    q: dns.message.Message, spec: ResolverSpec, timeout: float, source: str | None
) -> dns.message.Message:
    backend = dns.asyncbackend.get_backend("trio")
    assert spec.host is not None
    r = await dns.asyncquery.udp(
        q, spec.host, timeout=timeout, port=spec.port, source=source, backend=backend,
        ignore_unexpected=True, ignore_trailing=True,
    )
    if r.flags & dns.flags.TC:
        r = await dns.asyncquery.tcp(
            q, spec.host, timeout=timeout, port=spec.port, source=source, backend=backend
        )
    return r


async def _query_doh(
    q: dns.message.Message, spec: ResolverSpec, timeout: float, client: httpx.AsyncClient
) -> dns.message.Message:
    assert spec.doh_url is not None
    resp = await client.post(
        spec.doh_url,
        content=q.to_wire(),
        headers={"content-type": "application/dns-message", "accept": "application/dns-message"},
        timeout=timeout,
    )
    if resp.status_code != 200:
        raise dns.exception.DNSException(f"DoH status {resp.status_code}")
    if len(resp.content) > MAX_DNS_RESPONSE:
        raise dns.exception.DNSException("DoH response too large")
    r = dns.message.from_wire(resp.content, ignore_trailing=True)
    if r.id != q.id:
        raise dns.exception.DNSException("DoH response id mismatch")
    return r


async def lookup(
    hostname: str,
    spec: ResolverSpec,
    *,
    timeout: float,
    source: str | None = None,
    doh_client: httpx.AsyncClient | None = None,
) -> DnsResult:
    """Resolve ``hostname`` (A and AAAA, concurrently) within ``timeout`` seconds overall."""
    t0 = time.perf_counter()
    results: dict[int, dns.message.Message | BaseException | None] = {
        dns.rdatatype.A: None,
        dns.rdatatype.AAAA: None,
    }
    try:
        qname = dns.name.from_text(hostname)
    except dns.exception.DNSException as exc:
        return DnsResult(resolver=spec.label, failure=F.unknown(f"bad_name {type(exc).__name__}"))

    async def one(rdtype: int) -> None:
        q = dns.message.make_query(qname, rdtype)
        try:
            if spec.doh_url:
                if doh_client is None:
                    raise RuntimeError("DoH resolver without an HTTP client")
                results[rdtype] = await _query_doh(q, spec, timeout, doh_client)
            else:
                results[rdtype] = await _query_udp_tcp(q, spec, timeout, source)
        except Exception as exc:  # recorded as data
            results[rdtype] = exc

    with trio.move_on_after(timeout + 0.5) as scope:
        async with trio.open_nursery() as nursery:
            for rdtype in results:
                nursery.start_soon(one, rdtype)
    ms = (time.perf_counter() - t0) * 1000
    if scope.cancelled_caught and results[dns.rdatatype.A] is None:
        return DnsResult(resolver=spec.label, failure=F.GENERIC_TIMEOUT, ms=ms)
    return interpret(spec.label, results[dns.rdatatype.A], results[dns.rdatatype.AAAA], ms)

