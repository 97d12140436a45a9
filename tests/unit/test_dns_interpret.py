"""DNS responses → DnsResult (pure)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from probe.config import parse_host_port
from probe.errors import ConfigError
from probe.steps.dns import ResolverSpec, interpret


def _response(qtype: str, rcode: int = dns.rcode.NOERROR, answers: list[str] = ()):
    q = dns.message.make_query("site.test", qtype)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if answers:
        r.answer.append(dns.rrset.from_text_list("site.test.", 60, "IN", qtype, list(answers)))
    return r


def test_a_and_aaaa_answers_in_order():
    a = _response("A", answers=["192.0.2.2", "192.0.2.1"])
    aaaa = _response("AAAA", answers=["2001:db8::1"])
    r = interpret("127.0.0.1:53", a, aaaa, 3.0)
    assert r.answers == ("192.0.2.2", "192.0.2.1", "2001:db8::1")
    assert r.failure is None and r.rcode == "NOERROR" and r.ms == 3.0


@pytest.mark.parametrize(
    ("rcode", "failure"),
    [
        (dns.rcode.NXDOMAIN, "dns_nxdomain_error"),
        (dns.rcode.REFUSED, "dns_refused_error"),
        (dns.rcode.SERVFAIL, "dns_server_misbehaving"),
    ],
)
def test_rcodes(rcode, failure):
    r = interpret("x", _response("A", rcode), _response("AAAA", rcode), 1.0)
    assert r.failure == failure and r.answers == ()


def test_noerror_without_addresses_is_no_answer():
    assert interpret("x", _response("A"), _response("AAAA"), 1).failure == "dns_no_answer"


def test_aaaa_only_answers_count():
    r = interpret("x", _response("A"), _response("AAAA", answers=["2001:db8::5"]), 1)
    assert r.failure is None and r.answers == ("2001:db8::5",)


def test_exception_instead_of_response_is_classified():
    r = interpret("x", TimeoutError(), None, 5000.0)
    assert r.failure == "generic_timeout_error" and r.answers == ()


def test_cname_chain_keeps_only_addresses():
    a = _response("A")
    a.answer.append(dns.rrset.from_text("site.test.", 60, "IN", "CNAME", "edge.cdn.test."))
    a.answer.append(dns.rrset.from_text("edge.cdn.test.", 60, "IN", "A", "198.51.100.7"))
    assert interpret("x", a, None, 1).answers == ("198.51.100.7",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", 53)),
        ("192.0.2.1:5353", ("192.0.2.1", 5353)),
        ("[2001:db8::1]:53", ("2001:db8::1", 53)),
        ("2001:db8::1", ("2001:db8::1", 53)),
    ],
)
def test_resolver_addresses(value, expected):
    assert parse_host_port(value, 53, "--resolver") == expected


@pytest.mark.parametrize("value", ["dns.google", "1.2.3.4:0", "1.2.3.4:x", "[::1", "1.2.3:53"])
def test_bad_resolver_addresses(value):
    with pytest.raises(ConfigError):
        parse_host_port(value, 53, "--resolver")


def test_doh_resolver_spec():
    s = ResolverSpec.parse("https://127.0.0.1:8443/dns-query")
    assert s.doh_url and s.label == "https://127.0.0.1:8443/dns-query"
    assert ResolverSpec.parse("127.0.0.1:5353").label == "127.0.0.1:5353"


async def test_doh_lookup_through_a_mock_transport():
    import httpx

    from probe.steps.dns import lookup

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = dns.message.from_wire(request.content)
        seen.append((request.headers["content-type"], q.question[0].rdtype))
        r = dns.message.make_response(q)
        if q.question[0].rdtype == dns.rdatatype.A:
            r.answer.append(
                dns.rrset.from_text_list(q.question[0].name, 60, "IN", "A", ["192.0.2.9"])
            )
        return httpx.Response(200, content=r.to_wire(),
                              headers={"content-type": "application/dns-message"})  # fmt: skip

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        spec = ResolverSpec.parse("https://doh.test/dns-query")
        r = await lookup("site.test", spec, timeout=2, doh_client=client)
    assert r.failure is None and r.answers == ("192.0.2.9",)
    assert r.resolver == "https://doh.test/dns-query"
    assert sorted(t for _, t in seen) == [dns.rdatatype.A, dns.rdatatype.AAAA]
    assert all(ct == "application/dns-message" for ct, _ in seen)


async def test_doh_error_status_is_a_dns_failure():
    import httpx

    from probe.steps.dns import lookup

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda req: httpx.Response(503))
    ) as client:
        r = await lookup("site.test", ResolverSpec.parse("https://doh.test/q"), timeout=2,
                         doh_client=client)  # fmt: skip
    assert r.failure == "dns_server_misbehaving"
