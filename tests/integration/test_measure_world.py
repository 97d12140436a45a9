"""Every behaviour of the loopback world, measured by the real probe steps.

Each site of the catalogue world misbehaves for the IR vantage only; the US vantage must see
every working site normally.  Assertions name the exact step and failure string recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.config import Limits, MeasureConfig, Timeouts, Vantage
from probe.geo import open_geo
from probe.lab import catalogue_world, run_world
from probe.measure import Context, measure_target
from probe.runner import _resolvers
from probe.targets import load_targets

TIMEOUTS = Timeouts(dns=2.0, tcp=2.0, tls=1.5, http=3.0, target=10.0)
LIMITS = Limits(max_body_bytes=512 * 1024, max_raw_bytes=1024 * 1024)


@pytest.fixture
async def world(tmp_path: Path):
    async with run_world(catalogue_world(slow_delay_s=0.3), tmp_path / "world") as w:
        yield w


def _ctx(world, vantage_name: str, out: Path) -> Context:
    v = world.spec.vantage(vantage_name)
    cfg = MeasureConfig(
        out=str(out),
        vantage=Vantage("test-" + v.name, v.cc, v.asn, v.as_name, source_address=v.source_ip),
        resolver=world.resolver_arg(),
        control_resolver=world.control_resolver_arg(),
        ca_bundle=world.ca_bundle,
        timeouts=TIMEOUTS,
        limits=LIMITS,
        loopback_only=True,
    )
    resolver, control = _resolvers(cfg)
    geo = open_geo(None, world.overrides_csv, embedded=False)
    return Context(cfg=cfg, run_id="test", geo=geo, resolver=resolver, control=control)


async def _measure_all(world, vantage_name: str, tmp_path: Path) -> dict[str, object]:
    ctx = _ctx(world, vantage_name, tmp_path)
    by_url = {t.url: t for t in load_targets(world.targets_csv)}
    out = {}
    for name, url in world.site_urls.items():
        out[name] = await measure_target(ctx, by_url[url])
    return out


# site -> (failure_step, failure, extra checks) for the IR vantage
EXPECTED_IR = {
    "normal": (None, None),
    "slow": (None, None),
    "forbidden": (None, None),  # a 403 answer: no step failed
    "geoblock-cloudflare": (None, None),
    "geoblock-cloudfront": (None, None),
    "http-451": (None, None),
    "geo-redirect": (None, None),
    "sanctions-notice": (None, None),
    "challenge-cloudflare": (None, None),
    "national-blockpage": (None, None),
    "oversized": (None, None),
    "rst-on-connect": ("tls", "connection_reset"),
    "rst-after-clienthello": ("tls", "connection_reset"),
    "rst-after-clienthello-http": ("http", "connection_reset"),
    "drop": ("tls", "generic_timeout_error"),
    "drop-http": ("http", "generic_timeout_error"),
    "redirect-loop": ("http", "http_request_failed: too_many_redirects"),
    "down": ("tcp", "connection_refused"),
    "dns-nxdomain": ("dns", "dns_nxdomain_error"),
    "dns-bogus": (None, None),
    "dns-bogus-tls": ("tls", "ssl_unknown_authority"),  # self-signed block-page server
}


async def test_every_behaviour_from_the_affected_vantage(world, tmp_path):
    ms = await _measure_all(world, "ir-1", tmp_path)
    assert set(ms) == set(EXPECTED_IR), "catalogue world changed: update the table"
    for name, (step, failure) in EXPECTED_IR.items():
        m = ms[name]
        assert (m.failure_step, m.failure) == (step, failure), name
        assert m.probe_cc == "IR" and m.vantage_id == "test-ir-1"
        assert m.dns_control_failure is None and m.dns_control_answers, name

    def status(n):
        return ms[n].http_status

    assert status("normal") == 200 and ms["normal"].tls_cert_valid is True
    assert ms["normal"].http_title and ms["normal"].tls_version in ("TLSv1.3", "TLSv1.2")
    assert ms["normal"].server_cc == "US" and ms["normal"].server_asn
    assert status("geoblock-cloudflare") == 403
    assert b"has banned the country or region" in ms["geoblock-cloudflare"].http_body_prefix
    assert status("geoblock-cloudfront") == 403
    assert status("http-451") == 451
    link = dict((k.lower(), v) for k, v in json.loads(ms["http-451"].http_headers))["link"]
    assert 'rel="blocked-by"' in link
    geo = ms["geo-redirect"]
    assert geo.http_status == 200 and len(geo.http_redirects) == 1
    assert "/unavailable" in geo.http_redirects[0] and geo.http_final_url == geo.http_redirects[0]
    assert status("challenge-cloudflare") == 403
    assert b"10.10.34.34" in ms["national-blockpage"].http_body_prefix
    big = ms["oversized"]
    assert big.http_body_truncated is True and big.http_body_length == LIMITS.max_body_bytes
    assert len(big.http_body_prefix) == LIMITS.body_prefix_bytes
    loop = ms["redirect-loop"]
    assert len(loop.http_redirects) == LIMITS.max_redirects + 1
    # DNS: the system resolver lies, the control resolver does not
    bogus = ms["dns-bogus"]
    assert bogus.dns_answers != bogus.dns_control_answers
    assert bogus.dns_answers[0].startswith("127.66.")
    assert b"10.10.34.34" in (bogus.http_body_prefix or b"") or bogus.http_status
    tls_bogus = ms["dns-bogus-tls"]
    assert tls_bogus.tls_cert_valid is False and tls_bogus.http_verified is False
    assert tls_bogus.http_status is not None, "the page behind an invalid cert is still fetched"
    nx = ms["dns-nxdomain"]
    assert nx.dns_rcode == "NXDOMAIN" and nx.dns_control_answers and nx.server_ip is None
    assert json.loads(ms["down"].tcp_attempts)[0]["failure"] == "connection_refused"


async def test_the_unaffected_vantage_sees_every_working_site(world, tmp_path):
    ms = await _measure_all(world, "us-1", tmp_path)
    for name, m in ms.items():
        if name == "down":
            assert m.failure == "connection_refused"
        else:
            assert m.failure is None, (name, m.failure_step, m.failure)
            assert m.http_status == 200, name
        assert m.probe_cc == "US"


async def test_unreachable_resolvers_finish_within_timeouts(world, tmp_path):
    """Resolvers on loopback ports where nothing listens: DNS failures, no hang."""
    ctx = _ctx(world, "us-1", tmp_path)
    from probe.steps.dns import ResolverSpec

    ctx.resolver = ResolverSpec(host="127.0.0.9", port=9)
    ctx.control = ResolverSpec(host="127.0.0.9", port=9)
    t = load_targets(world.targets_csv)[0]
    m = await measure_target(ctx, t)
    assert m.failure_step == "dns"
    # ICMP port unreachable on loopback surfaces as refused, or as a timeout
    assert m.dns_failure in (
        "generic_timeout_error",
        "connection_refused",
        "dns_server_misbehaving",
    )
    assert m.duration_ms < (TIMEOUTS.dns + 1) * 1000
