"""Hostile servers for robustness tests: bombs, floods, drips, garbage, bad certificates and
a misbehaving DNS server — each on its own loopback address, every byte chosen to hurt.

Not part of the demo.  :func:`run_hostile_world` starts them with a DNS server that answers
the hostile names (and misbehaves for the ``dns-*`` names), and yields the URLs by case name.
Raw trio sockets are used instead of h11 on purpose: most cases are not valid HTTP.
"""

from __future__ import annotations

import errno
import functools
import secrets
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import brotli
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import trio

from probe.lab.pki import LabPKI

ZONE = "hostile.test"
DNS_IP = "127.53.9.1"
GIB = 1 << 30


@functools.cache
def gzip_bomb() -> bytes:
    """~1 MiB of gzip that inflates to 1 GiB of zeros."""
    co = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    return b"".join(co.compress(block) for _ in range(GIB >> 20)) + co.flush()


@functools.cache
def brotli_bomb() -> bytes:
    """About a kilobyte of brotli that inflates to 1 GiB of zeros."""
    c = brotli.Compressor(quality=5)
    block = b"\0" * (1 << 20)
    return b"".join(c.process(block) for _ in range(GIB >> 20)) + c.finish()


Handler = Callable[["Conn"], Awaitable[None]]


@dataclass
class Conn:
    stream: trio.abc.Stream
    host: str
    port: int
    https_port: int
    http_port: int
    request: bytes = b""


def _head(status: str, headers: list[tuple[str, str]], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(c: Conn, data: bytes) -> None:
    await c.stream.send_all(data)


def page(title: bytes = b"Normal page") -> bytes:
    return b"<!doctype html><html><head><title>" + title + b"</title></head><body>ok</body></html>"


async def h_normal(c: Conn) -> None:
    body = page()
    await _send(c, _head("200 OK", [("Content-Type", "text/html")], len(body)) + body)


async def h_gzip_bomb(c: Conn) -> None:
    body = gzip_bomb()
    hdr = [("Content-Type", "text/html"), ("Content-Encoding", "gzip")]
    await _send(c, _head("200 OK", hdr, len(body)) + body)


async def h_brotli_bomb(c: Conn) -> None:
    body = brotli_bomb()
    hdr = [("Content-Type", "text/html"), ("Content-Encoding", "br")]
    await _send(c, _head("200 OK", hdr, len(body)) + body)


async def h_body_100mb(c: Conn) -> None:
    n = 100 << 20
    await _send(c, _head("200 OK", [("Content-Type", "application/octet-stream")], n))
    chunk = b"x" * (1 << 16)
    for _ in range(n >> 16):
        await _send(c, chunk)


async def h_headers_1mb(c: Conn) -> None:
    await _send(c, b"HTTP/1.1 200 OK\r\n")
    line = b"X-Fill: " + b"a" * 1000 + b"\r\n"
    for _ in range(1024):
        await _send(c, line)
    await _send(c, b"Content-Length: 0\r\n\r\n")


async def h_headers_10k(c: Conn) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H-%d: v\r\n" % i for i in range(10_000))
    await _send(c, head + b"Content-Length: 0\r\n\r\n")


async def h_drip(c: Conn) -> None:
    await _send(c, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    while True:
        await _send(c, b"a")
        await trio.sleep(1)


def _redirect(location: str) -> Handler:
    async def h(c: Conn) -> None:
        loc = location.format(host=c.host, http_port=c.http_port, https_port=c.https_port)
        await _send(c, _head("302 Found", [("Location", loc)], 0))

    return h


async def h_cross_scheme(c: Conn) -> None:
    # http -> https -> http -> ... forever
    if c.port == c.http_port:
        loc = f"https://{c.host}:{c.https_port}/"
    else:
        loc = f"http://{c.host}:{c.http_port}/"
    await _send(c, _head("302 Found", [("Location", loc)], 0))


async def h_bad_title(c: Conn) -> None:
    body = page(b"caf\xe9 \xff\xfe\x00 <b>bold</b>\x00 \x01end")
    hdr = [("Content-Type", "text/html; charset=utf-8"), ("X-Bytes", "caf\xe9 \xff")]
    await _send(c, _head("200 OK", hdr, len(body)) + body)


async def h_header_nul(c: Conn) -> None:
    await _send(c, b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 2\r\n\r\nok")


async def h_http09(c: Conn) -> None:
    await _send(c, b"<html><title>HTTP/0.9</title>no status line</html>")


async def h_garbage(c: Conn) -> None:
    await _send(c, b"\x16\x03\x01\xff garbage \xfe\r\n\r\n" + secrets.token_bytes(4096))


@dataclass(frozen=True)
class Case:
    name: str
    scheme: str
    handler: Handler
    cert: str = "valid"  # valid | expired | self_signed | wrong_name
    dns: str | None = None  # oversized | truncated | mismatched_id | garbage


CASES: tuple[Case, ...] = (
    Case("normal-http", "http", h_normal),
    Case("normal-https", "https", h_normal),
    Case("gzip-bomb", "https", h_gzip_bomb),
    Case("brotli-bomb", "http", h_brotli_bomb),
    Case("body-100mb", "http", h_body_100mb),
    Case("headers-1mb", "http", h_headers_1mb),
    Case("headers-10k", "https", h_headers_10k),
    Case("drip", "http", h_drip),
    Case("redirect-loop", "http", _redirect("http://{host}:{http_port}/again")),
    Case("redirect-cross-scheme", "http", h_cross_scheme),
    Case("redirect-file", "http", _redirect("file:///etc/passwd")),
    Case("redirect-ftp", "http", _redirect("ftp://files.hostile.test/x")),
    Case("redirect-private", "http", _redirect("http://10.1.2.3/admin")),
    Case("redirect-loopback", "http", _redirect("http://127.0.0.1:{http_port}/")),
    Case("redirect-linklocal", "http", _redirect("http://169.254.169.254/latest/meta-data/")),
    Case("bad-title", "http", h_bad_title),
    Case("header-nul", "http", h_header_nul),
    Case("http09", "http", h_http09),
    Case("garbage", "http", h_garbage),
    Case("tls-expired", "https", h_normal, cert="expired"),
    Case("tls-self-signed", "https", h_normal, cert="self_signed"),
    Case("tls-wrong-name", "https", h_normal, cert="wrong_name"),
    Case("dns-oversized", "http", h_normal, dns="oversized"),
    Case("dns-truncated", "http", h_normal, dns="truncated"),
    Case("dns-mismatched-id", "http", h_normal, dns="mismatched_id"),
    Case("dns-garbage", "http", h_normal, dns="garbage"),
)


def address_of(index: int) -> str:
    return f"127.30.0.{index + 1}"


@dataclass
class HostileWorld:
    ca_bundle: Path
    resolver: str  # IP:PORT
    urls: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)


async def _bind(ip: str, port: int = 0) -> trio.SocketListener:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await sock.bind((ip, port))
    sock.listen(256)
    return trio.SocketListener(sock)


async def _read_request(stream: trio.abc.Stream) -> bytes:
    buf = b""
    with trio.move_on_after(5):
        while b"\r\n\r\n" not in buf and len(buf) < 65536:
            data = await stream.receive_some(65536)
            if not data:
                break
            buf += data
    return buf


async def _serve_conn(
    raw: trio.SocketStream, case: Case, ctx: ssl.SSLContext | None, ports: tuple[int, int]
) -> None:
    stream: trio.abc.Stream = raw
    try:
        if ctx is not None:
            stream = trio.SSLStream(raw, ctx, server_side=True)
            with trio.fail_after(5):
                await stream.do_handshake()
        req = await _read_request(stream)
        port = raw.socket.getsockname()[1]
        host = f"{case.name}.{ZONE}"
        await case.handler(Conn(stream, host, port, ports[1], ports[0], req))
        with trio.move_on_after(1):
            await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
        pass
    finally:
        with trio.move_on_after(0.5) as cs:
            cs.shield = True
            await trio.aclose_forcefully(raw)


def _server_ctx(pki: LabPKI, case: Case) -> ssl.SSLContext:
    name = f"{case.name}.{ZONE}"
    if case.cert == "expired":
        return pki.expired_context([name])
    if case.cert == "self_signed":
        return pki.self_signed_context(name)
    if case.cert == "wrong_name":
        return pki.wrong_name_context()
    return pki.server_context([name])


def dns_reply(data: bytes, addresses: dict[str, str], cases: dict[str, Case]) -> bytes | None:
    """Pure: the (mis)behaving answer to one query, or None to stay silent."""
    try:
        q = dns.message.from_wire(data)
    except Exception:
        return None
    if not q.question:
        return None
    qname = q.question[0].name.to_text().rstrip(".").lower()
    label = qname.removesuffix("." + ZONE)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    case = cases.get(label)
    if case is None or q.question[0].rdtype != dns.rdatatype.A:
        if case is None:
            r.set_rcode(dns.rcode.NXDOMAIN)
        return r.to_wire()
    ip = addresses[label]
    if case.dns == "garbage":
        return secrets.token_bytes(64)
    if case.dns == "mismatched_id":
        r.id = (q.id + 1) % 65536
    if case.dns == "truncated":
        r.flags |= dns.flags.TC
        return r.to_wire()
    r.answer.append(dns.rrset.from_text_list(q.question[0].name, 60, "IN", "A", [ip]))
    if case.dns == "oversized":  # ~48 kB of junk glue after the real answer
        junk = [f"127.31.{i // 250}.{i % 250 + 1}" for i in range(3000)]
        r.additional.append(dns.rrset.from_text_list(f"junk.{ZONE}.", 60, "IN", "A", junk))
    return r.to_wire()


@asynccontextmanager
async def run_hostile_world(workdir: Path) -> AsyncIterator[HostileWorld]:
    """Start every hostile case and the DNS server; yield where they listen."""
    pki = LabPKI("res64 hostile lab")
    workdir.mkdir(parents=True, exist_ok=True)
    ca = pki.write_ca(workdir / "ca.pem")
    cases = {c.name: c for c in CASES}
    addresses = {c.name: address_of(i) for i, c in enumerate(CASES)}
    async with trio.open_nursery() as nursery:
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await udp.bind((DNS_IP, 0))
        world = HostileWorld(ca_bundle=ca, resolver=f"{DNS_IP}:{udp.getsockname()[1]}")
        for c in CASES:
            ip = addresses[c.name]
            http_l = await _bind(ip)
            https_l = await _bind(ip)
            ports = (http_l.socket.getsockname()[1], https_l.socket.getsockname()[1])
            ctx = _server_ctx(pki, c)
            for lst, tls in ((http_l, None), (https_l, ctx)):

                async def handle(s: trio.SocketStream, c=c, tls=tls, ports=ports) -> None:
                    await _serve_conn(s, c, tls, ports)

                nursery.start_soon(trio.serve_listeners, handle, [lst])
            port = ports[1] if c.scheme == "https" else ports[0]
            world.urls[c.name] = f"{c.scheme}://{c.name}.{ZONE}:{port}/"
            world.addresses[c.name] = ip

        async def serve_dns() -> None:
            with udp:
                while True:
                    try:
                        data, addr = await udp.recvfrom(4096)
                    except OSError as exc:
                        if exc.errno == errno.EBADF:
                            raise
                        continue
                    reply = dns_reply(data, addresses, cases)
                    if reply is not None:
                        with suppress(OSError):
                            await udp.sendto(reply, addr)

        nursery.start_soon(serve_dns)
        try:
            yield world
        finally:
            nursery.cancel_scope.cancel()
