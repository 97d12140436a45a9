"""DNS step: A and AAAA lookups of one name through one resolver (UDP, TCP on truncation, DoH).

I/O is :func:`lookup`; :func:`interpret` turns the two DNS responses into a :class:`DnsResult`
(pure, unit-tested).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import dns.asyncbackend
import dns.asyncquery
import dns.exception
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
MAX_ANSWERS = 64  # stored per lookup; a hostile resolver may send thousands


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
        answers=tuple(seen)[:MAX_ANSWERS],
        failure=failure,
        rcode=dns.rcode.to_text(rcode),
        ms=ms,
    )


async def _exchange_udp(
    queries: list[dns.message.Message], spec: ResolverSpec, timeout: float, source: str | None
) -> dict[int, dns.message.Message | BaseException]:
    """Send every query on one connected UDP socket; collect the matching responses.

    Responses from elsewhere, with an unknown id or a question that does not match, are
    ignored (spoofing and garbage); an unanswered query is sent once more halfway through.
    Truncated answers are retried over TCP.
    """
    assert spec.host is not None
    fam = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
    pending = {q.id: q for q in queries}
    wires = {q.id: q.to_wire() for q in queries}
    out: dict[int, dns.message.Message | BaseException] = {}
    with trio.socket.socket(fam, socket.SOCK_DGRAM) as sock:
        if source:
            await sock.bind((source, 0))
        await sock.connect((spec.host, spec.port))
        for w in wires.values():
            await sock.send(w)
        deadline = trio.current_time() + timeout
        resend_at = trio.current_time() + timeout / 2
        while pending:
            with trio.move_on_at(min(deadline, resend_at) if resend_at else deadline):
                try:
                    data = await sock.recv(MAX_DNS_RESPONSE)
                except OSError as exc:
                    for qid in pending:
                        out[qid] = exc
                    return out
                try:
                    r = dns.message.from_wire(data, ignore_trailing=True)
                except Exception:
                    continue  # garbage: keep waiting for the real answer
                q = pending.get(r.id)
                if q is None or not q.is_response(r):
                    continue
                del pending[r.id]
                out[r.id] = r
                continue
            now = trio.current_time()
            if now >= deadline:
                break
            resend_at = 0.0
            for qid in pending:
                await sock.send(wires[qid])
    for qid in pending:
        out[qid] = dns.exception.Timeout()
    backend = dns.asyncbackend.get_backend("trio")
    for q in queries:
        r = out.get(q.id)
        if isinstance(r, dns.message.Message) and r.flags & dns.flags.TC:
            try:
                out[q.id] = await dns.asyncquery.tcp(
                    q, spec.host, timeout=timeout, port=spec.port, source=source, backend=backend
                )
            except Exception as exc:
                out[q.id] = exc
    return out


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

    queries = {rdtype: dns.message.make_query(qname, rdtype) for rdtype in results}
    if queries[dns.rdatatype.A].id == queries[dns.rdatatype.AAAA].id:
        queries[dns.rdatatype.AAAA].id ^= 0x5A5A

    async def one_doh(rdtype: int) -> None:
        try:
            if doh_client is None:
                raise RuntimeError("DoH resolver without an HTTP client")
            results[rdtype] = await _query_doh(queries[rdtype], spec, timeout, doh_client)
        except Exception as exc:  # recorded as data
            results[rdtype] = exc

    with trio.move_on_after(timeout + 0.5) as scope:
        if spec.doh_url:
            async with trio.open_nursery() as nursery:
                for rdtype in results:
                    nursery.start_soon(one_doh, rdtype)
        else:
            try:
                got = await _exchange_udp(list(queries.values()), spec, timeout, source)
            except Exception as exc:
                got = {q.id: exc for q in queries.values()}
            for rdtype, q in queries.items():
                results[rdtype] = got.get(q.id)
    ms = (time.perf_counter() - t0) * 1000
    if scope.cancelled_caught and results[dns.rdatatype.A] is None:
        return DnsResult(resolver=spec.label, failure=F.GENERIC_TIMEOUT, ms=ms)
    return interpret(spec.label, results[dns.rdatatype.A], results[dns.rdatatype.AAAA], ms)
