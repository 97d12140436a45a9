"""The loopback lab world, observed with plain clients bound to vantage source addresses.

Every client here connects to IP literals on 127/8 (names are resolved through the lab's own
DNS servers or taken from the world spec); nothing uses the system resolver.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import ssl
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import h11
import pytest
import trio
import trio.testing

from probe.lab import (
    LabPKI,
    RunningWorld,
    catalogue_world,
    client_context,
    demo_world,
    overrides_csv_text,
    run_world,
)
from probe.lab.dns_server import LabDns
from probe.lab.web import OVERSIZED_BYTES, Request, plan_response
from probe.lab.world import (
    ANY_CC,
    BEHAVIOURS,
    MECHANISMS,
    bulk_world,
    spec_from_dict,
    spec_to_dict,
)

US, DE, CU, IR = "127.10.1.1", "127.10.3.1", "127.10.4.1", "127.10.5.1"
REPO = Path(__file__).resolve().parents[2]


# -- plain clients ------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes  # first max_body bytes
    length: int  # bytes received in total


async def connect(
    url: str, source: str, ca: Path | None, *, ip: str, server_hostname: str | None = None
) -> trio.abc.Stream:
    """TCP (+ TLS validated against ``ca``) to ``ip`` at the URL's port, from ``source``."""
    u = urllib.parse.urlsplit(url)
    assert u.port is not None and u.hostname is not None
    stream: trio.abc.Stream = await trio.open_tcp_stream(ip, u.port, local_address=source)
    if u.scheme == "https":
        assert ca is not None
        tls = trio.SSLStream(
            stream, client_context(ca), server_hostname=server_hostname or u.hostname
        )
        try:
            await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return tls
    return stream


async def get(
    world: RunningWorld,
    url: str,
    source: str,
    *,
    ip: str | None = None,
    max_body: int = 1 << 16,
    raw_request: bytes | None = None,
) -> Resp:
    """One GET of ``url`` from ``source`` (to the site's address unless ``ip`` is given)."""
    u = urllib.parse.urlsplit(url)
    site_ip = ip or next(s.address for s in world.spec.sites if s.hostname == u.hostname)
    stream = await connect(url, source, world.ca_bundle, ip=site_ip)
    conn = h11.Connection(h11.CLIENT)
    async with stream:
        if raw_request is not None:
            await stream.send_all(raw_request)
        else:
            req = h11.Request(
                method="GET",
                target=(u.path or "/") + (f"?{u.query}" if u.query else ""),
                headers=[("Host", u.netloc), ("Connection", "close")],
            )
            await stream.send_all(conn.send(req) + conn.send(h11.EndOfMessage()))
        resp: Resp | None = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                resp = Resp(event.status_code, event.reason.decode(), headers, b"", 0)
            elif isinstance(event, h11.Data):
                assert resp is not None
                resp.length += len(event.data)
                if len(resp.body) < max_body:
                    resp.body += bytes(event.data)[: max_body - len(resp.body)]
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                assert resp is not None
                return resp


async def query(
    server: tuple[str, int], name: str, source: str, rdtype: str = "A"
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(q, server[0], port=server[1], source=source, timeout=3)


def answers(msg: dns.message.Message) -> list[str]:
    return [rr.address for rrset in msg.answer for rr in rrset]


@pytest.fixture
async def world(tmp_path: Path):
    async with run_world(demo_world(), tmp_path / "demo") as w:
        yield w


@pytest.fixture
async def catalogue(tmp_path: Path):
    async with run_world(catalogue_world("IR"), tmp_path / "cat") as w:
        yield w


# -- pure spec ------------------------------------------------------------------------------------


def test_demo_ground_truth_is_complete_and_conservative() -> None:
    spec = demo_world()
    assert len(spec.sites) >= 13
    pairs = [(e.probe_cc, e.site) for e in spec.expectations]
    assert sorted(pairs) == sorted(
        (cc, s.name) for cc in ("CU", "DE", "IR", "US") for s in spec.sites
    )
    for e in spec.expectations:
        assert e.mechanism in MECHANISMS
        if e.probe_cc in ("US", "DE"):
            assert e.status != "denied", e
        if e.status == "denied":
            assert e.locus != "unknown" or e.responsible_cc is None
            assert e.locus != "local" or e.responsible_cc == e.probe_cc
        if e.status != "denied":
            assert e.responsible_cc is None
    down = {e.status for e in spec.expectations if e.site == "defunct-shop"}
    assert down == {"down"}
    challenge = [e for e in spec.expectations if e.site == "bot-guarded" and e.probe_cc == "IR"]
    assert challenge[0].status == "inconclusive"
    # ground truth and behaviours agree: interfered pairs are never 'accessible', others are
    for e in spec.expectations:
        site = spec.site(e.site)
        interfered = site.behaviour_for(e.probe_cc) not in ("normal", "slow")
        interfered |= site.dns_for(e.probe_cc) is not None
        assert (e.status != "accessible") == interfered, e
    assert len({e.site for e in spec.expectations if e.status == "denied"}) == 10
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_spec_validation_and_csvs() -> None:
    spec = demo_world()
    csv = overrides_csv_text(spec)
    assert "127.10.5.1/32,IR,64505,Lab Mobile IR" in csv
    assert "127.66.3.1/32,IR," in csv  # the IR block-page server
    assert "127.20.0.4/32,DE,64511,Lab Hosting DE" in csv
    bad = spec_from_dict({**spec_to_dict(spec), "sites": [
        {**spec_to_dict(spec)["sites"][0], "behaviours": {"IR": "down"}}
    ]})  # fmt: skip
    with pytest.raises(ValueError, match="down"):
        bad.validate()
    bulk = bulk_world(20)
    assert len({s.address for s in bulk.sites}) == 8
    assert {s.scheme for s in bulk.sites} == {"http", "https"}
    assert all(s.behaviour_for("US") == "normal" for s in bulk.sites)


def test_plan_response_is_pure() -> None:
    spec = demo_world()
    site = spec.site("video-stream")
    page = _page()
    normal = plan_response(site, "normal", "US", Request("GET", "/", "x:1"), "https", page)
    assert normal.page is page
    redirect = plan_response(site, "geo_redirect", "IR", Request("GET", "/", "h:1"), "https", page)
    assert redirect.page is not None
    assert dict(redirect.page.headers)["Location"] == "https://h:1/unavailable?region=IR"
    assert (
        plan_response(site, "drop", "CU", Request("GET", "/", ""), "https", page).action == "drop"
    )


def _page():  # a sentinel page for plan_response
    from probe.lab.pages import Page

    return Page(200, "OK", (), b"sentinel")


def test_dns_responder_ignores_garbage() -> None:
    server = LabDns(demo_world(), truthful=False)
    for junk in (b"", b"\x00", b"\xff" * 11, os.urandom(600), b"\x12\x34" + b"\x00" * 40):
        server.respond(junk, IR)  # must not raise
    assert server.respond(b"\x00" * 5, IR) is None
    q = dns.message.make_query("social-chat.lab.test", "A")
    q.flags |= dns.flags.QR  # a response: never answered
    assert server.respond(q.to_wire(), IR) is None


async def _handshake(server_ctx: ssl.SSLContext, ca: Path, name: str) -> BaseException | None:
    """TLS over an in-memory pipe; the client's verification error (None if it succeeded)."""
    client_raw, server_raw = trio.testing.memory_stream_pair()
    server = trio.SSLStream(server_raw, server_ctx, server_side=True)
    client = trio.SSLStream(client_raw, client_context(ca), server_hostname=name)
    error = None

    async def serve() -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            await server.do_handshake()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        try:
            await client.do_handshake()
        except trio.BrokenResourceError as exc:
            error = exc.__cause__
        await trio.aclose_forcefully(client)
    return error


async def test_pki_good_and_bad_certificates(tmp_path: Path) -> None:
    pki = LabPKI()
    ca = pki.write_ca(tmp_path / "ca.pem")
    assert (
        await _handshake(pki.server_context(["a.lab.test", "b.lab.test"]), ca, "b.lab.test") is None
    )
    wrong = await _handshake(pki.wrong_name_context(), ca, "a.lab.test")
    assert isinstance(wrong, ssl.SSLCertVerificationError) and wrong.verify_code == 62
    expired = await _handshake(pki.expired_context(["a.lab.test"]), ca, "a.lab.test")
    assert isinstance(expired, ssl.SSLCertVerificationError) and expired.verify_code == 10
    selfsigned = await _handshake(pki.self_signed_context("a.lab.test"), ca, "a.lab.test")
    assert isinstance(selfsigned, ssl.SSLCertVerificationError)
    assert selfsigned.verify_code == 18  # self-signed certificate
    other = await _handshake(LabPKI().server_context(["a.lab.test"]), ca, "a.lab.test")
    assert isinstance(other, ssl.SSLCertVerificationError)  # another CA: unknown authority


# -- DNS ------------------------------------------------------------------------------------------


async def test_dns_per_source(world: RunningWorld) -> None:
    spec = world.spec
    chat = spec.site("social-chat")
    us = await query(world.dns, "social-chat.lab.test", US)
    assert us.rcode() == dns.rcode.NOERROR and answers(us) == [chat.address]
    assert us.flags & dns.flags.AA
    ir = await query(world.dns, "social-chat.lab.test", IR)
    assert ir.rcode() == dns.rcode.NXDOMAIN
    control = await query(world.control_dns, "social-chat.lab.test", IR)
    assert answers(control) == [chat.address]
    # bogus: the IR resolver points at the IR block-page server; the control does not
    bogus = await query(world.dns, "human-rights.lab.test", IR)
    assert answers(bogus) == [world.blockpages["IR"]] == ["127.66.3.1"]
    truthful = await query(world.control_dns, "human-rights.lab.test", IR)
    assert answers(truthful) == [spec.site("human-rights").address]
    # no AAAA in the lab: NOERROR, empty answer
    aaaa = await query(world.dns, "open-news.lab.test", US, "AAAA")
    assert aaaa.rcode() == dns.rcode.NOERROR and aaaa.answer == []
    unknown = await query(world.control_dns, "no-such-site.lab.test", US)
    assert unknown.rcode() == dns.rcode.NXDOMAIN
    outside = await query(world.control_dns, "example.com", US)
    assert outside.rcode() == dns.rcode.REFUSED
    # a down site still resolves (the server is down, not the name)
    down = await query(world.dns, "defunct-shop.lab.test", IR)
    assert answers(down) == [spec.site("defunct-shop").address]


async def test_dns_survives_garbage(world: RunningWorld) -> None:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        await sock.bind((IR, 0))
        for junk in (b"\x00", b"garbage" * 50, os.urandom(3000), b"\x00" * 12):
            await sock.sendto(junk, world.dns)
        q = dns.message.make_query("open-news.lab.test", "A")
        await sock.sendto(q.to_wire(), world.dns)
        with trio.fail_after(5):
            while True:
                data, _ = await sock.recvfrom(4096)
                try:
                    reply = dns.message.from_wire(data)
                except dns.exception.DNSException:
                    continue
                if reply.id == q.id:
                    break
    assert answers(reply) == [world.spec.site("open-news").address]


# -- web: the demo world --------------------------------------------------------------------------


async def test_normal_from_us_everywhere(world: RunningWorld) -> None:
    for site in world.spec.sites:
        if site.is_down or site.behaviour_for("US") == "slow":
            continue
        r = await get(world, world.url_for(site.name), US)
        assert r.status == 200, site.name
        assert f"<title>{site.title}</title>".encode() in r.body
        assert 2000 <= r.length <= 8192


async def test_geoblocks_seen_from_affected_vantages(world: RunningWorld) -> None:
    url = world.url_for
    cf = await get(world, url("dev-platform"), IR)
    assert cf.status == 403 and cf.headers["server"] == "cloudflare"
    assert cf.headers["cf-ray"].endswith("-FRA")
    for phrase in (
        b"Error 1009",
        b"Access denied",
        b"The owner of this website (dev-platform.lab.test) has banned the country or region "
        b"your IP address is in (IR) from accessing this website.",
    ):
        assert phrase in cf.body
    assert b"(CU)" in (await get(world, url("dev-platform"), CU)).body
    assert (await get(world, url("dev-platform"), DE)).status == 200

    front = await get(world, url("cloud-docs"), CU)
    assert front.status == 403 and front.headers["server"] == "CloudFront"
    assert front.headers["x-cache"] == "Error from cloudfront"
    assert b"configured to block access from your country" in front.body
    assert b"Generated by cloudfront (CloudFront)" in front.body
    assert (await get(world, url("cloud-docs"), IR)).status == 200

    legal = await get(world, url("legal-archive"), IR)
    assert legal.status == 451 and legal.reason == "Unavailable For Legal Reasons"
    assert legal.headers["link"] == '<https://authority.example/notice>; rel="blocked-by"'

    sanctions = await get(world, url("science-tools"), IR)
    assert sanctions.status == 403
    assert b"Due to U.S. trade control laws and sanctions" in sanctions.body

    challenge = await get(world, url("bot-guarded"), IR)
    assert challenge.status == 403 and challenge.headers["cf-mitigated"] == "challenge"
    assert b"<title>Just a moment...</title>" in challenge.body
    assert b"Checking your browser" in challenge.body


async def test_geo_redirect(world: RunningWorld) -> None:
    url = world.url_for("video-stream")
    r = await get(world, url, CU)
    assert r.status == 302
    assert r.headers["location"] == url + "unavailable?region=CU"
    landing = await get(world, r.headers["location"], CU)
    assert landing.status == 200
    assert b"This service is not available in your country/region" in landing.body
    assert (await get(world, url, US)).status == 200


async def test_national_blockpage_and_bogus_dns(world: RunningWorld) -> None:
    blog = await get(world, world.url_for("political-blog"), IR)
    assert blog.status == 200
    assert b'iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy"' in blog.body
    assert (await get(world, world.url_for("political-blog"), US)).status == 200
    # follow the IR resolver's bogus answer: the block-page server answers for any name
    ip = answers(await query(world.dns, "human-rights.lab.test", IR))[0]
    page = await get(world, world.url_for("human-rights"), IR, ip=ip)
    assert page.status == 200 and b"10.10.34.34" in page.body
    # over HTTPS the block-page server's certificate is not valid for the site
    https_port = urllib.parse.urlsplit(world.url_for("open-news")).port
    with pytest.raises(trio.BrokenResourceError) as info:
        await connect(f"https://open-news.lab.test:{https_port}/", IR, world.ca_bundle, ip=ip)
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_tls_reset_and_drop(world: RunningWorld) -> None:
    with pytest.raises(trio.BrokenResourceError) as info:
        await get(world, world.url_for("vpn-service"), IR)
    cause = info.value.__cause__
    assert isinstance(cause, ConnectionResetError) or "reset" in str(cause).lower(), cause
    assert (await get(world, world.url_for("vpn-service"), US)).status == 200
    # drop: the handshake never completes; the client's timeout is the observation
    with trio.move_on_after(1.0) as scope:
        await get(world, world.url_for("exchange-rates"), CU)
    assert scope.cancelled_caught
    assert (await get(world, world.url_for("exchange-rates"), US)).status == 200


async def test_down_refuses(world: RunningWorld) -> None:
    site = world.spec.site("defunct-shop")
    with pytest.raises(OSError) as info:
        await get(world, world.url_for("defunct-shop"), US)
    # trio reports every failed attempt in the cause: here a single refused connect
    causes = getattr(info.value.__cause__, "exceptions", [info.value.__cause__])
    assert [e.errno for e in causes] == [errno.ECONNREFUSED]
    assert site.address not in {s.address for s in world.spec.sites if s is not site}


async def test_certificates(world: RunningWorld) -> None:
    url = world.url_for("open-news")
    stream = await connect(url, US, world.ca_bundle, ip=world.spec.site("open-news").address)
    assert isinstance(stream, trio.SSLStream)
    cert = stream.getpeercert()
    assert ("DNS", "open-news.lab.test") in cert["subjectAltName"]
    await stream.aclose()
    # the same server does not hold a certificate for another name
    with pytest.raises(trio.BrokenResourceError) as info:
        await connect(url, US, world.ca_bundle, ip="127.20.0.1", server_hostname="x.lab.test")
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_world_json_round_trips(world: RunningWorld) -> None:
    loaded = RunningWorld.load(world.world_json)
    assert loaded == world
    assert world.resolver_arg() == f"{world.dns[0]}:{world.dns[1]}"
    assert world.dns[0] == "127.53.0.1" and world.control_dns[0] == "127.53.0.2"
    exp = world.expectations()
    assert {e.url for e in exp} == set(world.urls)
    assert world.targets_csv.read_text().count("\n") == len(world.spec.sites) + 1
    assert world.ca_bundle.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


async def test_second_world_falls_back_to_other_ports(world: RunningWorld, tmp_path: Path) -> None:
    async with run_world(demo_world(), tmp_path / "second") as other:
        assert other.dns != world.dns
        down = world.url_for("defunct-shop")  # never bound: same URL in both worlds
        assert set(other.urls).isdisjoint(set(world.urls) - {down})
        r = await get(other, other.url_for("dev-platform"), CU)
        assert r.status == 403
        ip = answers(await query(other.dns, "human-rights.lab.test", IR))[0]
        page = await get(other, other.url_for("human-rights"), IR, ip=ip)
        assert b"10.10.34.34" in page.body


# -- web: the catalogue world (behaviours outside the demo) ---------------------------------------


async def test_catalogue_behaviours(catalogue: RunningWorld) -> None:
    w = catalogue
    assert {s.behaviour_for("IR") for s in w.spec.sites} | {"down"} >= BEHAVIOURS - {"normal"}
    with pytest.raises(trio.BrokenResourceError):  # RST instead of a TLS handshake
        await get(w, w.url_for("rst-on-connect"), IR)
    with pytest.raises((trio.BrokenResourceError, ConnectionResetError)):
        await get(w, w.url_for("rst-after-clienthello-http"), IR)
    big = await get(w, w.url_for("oversized"), IR, max_body=1024)
    assert big.status == 200 and big.length == OVERSIZED_BYTES
    assert int(big.headers["content-length"]) == OVERSIZED_BYTES
    loop = await get(w, w.url_for("redirect-loop"), IR)
    assert loop.status == 302 and loop.headers["location"] == w.url_for("redirect-loop")
    slow = await get(w, w.url_for("slow"), IR)
    assert slow.status == 200
    with trio.move_on_after(1.0) as scope:
        await get(w, w.url_for("drop-http"), IR)
    assert scope.cancelled_caught
    for name in ("rst-on-connect", "oversized", "redirect-loop", "drop-http"):
        assert (await get(w, w.url_for(name), US)).status == 200, name


async def test_server_survives_bad_requests(catalogue: RunningWorld) -> None:
    w = catalogue
    url = w.url_for("national-blockpage")  # a plain-HTTP site
    bad = await get(w, url, US, raw_request=b"\x16\x03\x01 not http\r\n\r\n")
    assert bad.status == 400
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    try:
        r = await get(w, url, US, raw_request=huge)
    except trio.BrokenResourceError:
        pass  # the server closed with unread bytes: a reset may overtake its 431
    else:
        assert r.status == 431
    # an idle connection does not block anybody else
    address = w.spec.site("national-blockpage").address
    idle = await trio.open_tcp_stream(address, urllib.parse.urlsplit(url).port or 0)
    async with idle:
        assert (await get(w, url, US)).status == 200
    assert (await get(w, url, IR)).status == 200


async def test_bulk_world_serves_any_host(tmp_path: Path) -> None:
    async with run_world(bulk_world(40), tmp_path / "bulk") as w:
        for name in ("bulk-00001", "bulk-00002", "bulk-00017", "bulk-00040"):
            r = await get(w, w.url_for(name), US)
            assert r.status == 200 and f"Bulk site {int(name[5:])}".encode() in r.body
        assert len(w.urls) == 40 and all(e.status == "accessible" for e in w.expectations())
        assert ANY_CC not in {e.probe_cc for e in w.expectations()}


# -- the serve command ----------------------------------------------------------------------------


async def test_serve_subprocess_ready_and_sigterm(tmp_path: Path) -> None:
    workdir = tmp_path / "served"
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "probe.lab", "serve", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        buf = b""
        with trio.fail_after(20):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some(1024)
                assert chunk, "serve exited before READY"
                buf += chunk
        line = buf.split(b"\n")[0].decode()
        assert line == f"READY {workdir.resolve() / 'world.json'}"
        served = RunningWorld.load(Path(line.split(" ", 1)[1]))
        ir = await query(served.dns, "social-chat.lab.test", IR)
        assert ir.rcode() == dns.rcode.NXDOMAIN
        r = await get(served, served.url_for("dev-platform"), IR)
        assert r.status == 403
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if proc.stdout is not None:
            await proc.stdout.aclose()
