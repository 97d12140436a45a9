"""The lab's HTTP/HTTPS servers (trio + h11): behaviours keyed on the client's source address.

One :class:`Endpoint` is one listening (address, port): the sites sharing that address and
scheme, or a national block-page server (which sniffs TLS vs plain HTTP on every port).
:class:`LabWeb` serves connections:

* connection-level behaviours (``rst_on_connect``, ``rst_after_clienthello``, ``drop``) are
  those of the endpoint's first site (the demo world puts one site per address);
* HTTP-level behaviours use the site named by the ``Host`` header (any of the endpoint's sites,
  so one address can serve thousands of names in the bulk world).

:func:`plan_response` (pure) decides what to answer; the I/O around it is bounded: 64 kB of
request headers, a 10 s header timeout, a per-connection deadline, a cap on open connections.
Every response carries ``Connection: close``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import socket
import ssl
import struct
import urllib.parse
from dataclasses import dataclass, field

import h11
import trio

from probe.lab import pages
from probe.lab.pages import Page
from probe.lab.pki import LabPKI
from probe.lab.world import Site, WorldSpec

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
RECV_BYTES = 16 * 1024
HEADER_TIMEOUT_S = 10.0
CONNECTION_DEADLINE_S = 120.0
DROP_DEADLINE_S = 600.0  # a dropped connection stays open until the client leaves (or this)
DROP_MAX_BYTES = 32 * 1024 * 1024
MAX_CONNECTIONS = 4096
OVERSIZED_BYTES = 20 * 1024 * 1024
_CHUNK = (b"<!-- lab oversized filler -->" * 2260)[: 64 * 1024]
_TLS_HANDSHAKE = 0x16
LISTEN_BACKLOG = 1024


@dataclass(frozen=True)
class Plan:
    """What to do with one request: send ``page`` (after ``delay_s``), or a raw action."""

    action: str  # 'respond' | 'reset' | 'drop' | 'oversized'
    page: Page | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    host: str  # Host header as sent (may carry a port); '' when absent


@dataclass
class Endpoint:
    """One listening address: its sites (by hostname) or a block-page country."""

    address: str
    scheme: str  # 'http' | 'https' | 'sniff' (block-page servers)
    sites: dict[str, Site] = field(default_factory=dict)
    blockpage_cc: str | None = None
    port: int = 0
    ssl_context: ssl.SSLContext | None = None

    @property
    def default_site(self) -> Site | None:
        return next(iter(self.sites.values()), None)


def plan_response(
    site: Site, behaviour: str, cc: str | None, req: Request, scheme: str, normal: Page
) -> Plan:
    """Pure: the response of ``site`` showing ``behaviour`` to a client of country ``cc``."""
    host = req.host or site.hostname
    path = urllib.parse.urlsplit(req.target).path
    if path == "/unavailable" and "geo_redirect" in site.behaviours.values():
        region = urllib.parse.parse_qs(urllib.parse.urlsplit(req.target).query).get("region")
        return Plan("respond", pages.unavailable_page((region or [cc or "ZZ"])[0][:8]))
    match behaviour:
        case "geoblock_cloudflare":
            page = pages.cloudflare_1009(site.hostname, cc or "XX", pages.cloudflare_ray())
        case "geoblock_cloudfront":
            page = pages.cloudfront_geoblock()
        case "http_451":
            page = pages.legal_451(site.hostname)
        case "geo_redirect":
            page = pages.redirect(f"{scheme}://{host}/unavailable?region={cc or 'ZZ'}")
        case "sanctions_notice":
            page = pages.sanctions_notice(site.hostname)
        case "challenge_cloudflare":
            page = pages.cloudflare_challenge(site.hostname, pages.cloudflare_ray())
        case "national_blockpage":
            page = pages.national_blockpage(cc or "ZZ")
        case "forbidden":
            page = pages.forbidden(site.hostname, site.title)
        case "redirect_loop":
            target = req.target if req.target.startswith("/") else "/"
            page = pages.redirect(f"{scheme}://{host}{target}")
        case "slow":
            return Plan("respond", normal, delay_s=site.delay_s)
        case "oversized":
            return Plan("oversized")
        case "rst_on_connect" | "rst_after_clienthello":
            return Plan("reset")
        case "drop":
            return Plan("drop")
        case _:
            page = normal
    return Plan("respond", page)


class LabWeb:
    """Serves every web endpoint of one world."""

    def __init__(self, spec: WorldSpec) -> None:
        self.spec = spec
        self._ccs = {v.source_ip: v.cc for v in spec.vantages}
        self._normal = {s.hostname: pages.normal_page(s.hostname, s.title) for s in spec.sites}
        self._limiter = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def start(
        self, nursery: trio.Nursery, pki: LabPKI
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Bind and serve every endpoint in ``nursery``; return (site URLs, block-page addresses).

        Returns once every socket listens.  Site endpoints prefer the scheme's lab port and fall
        back to an ephemeral one; block-page servers listen on every port a site uses.
        """
        endpoints = plan_endpoints(self.spec)
        for ep in endpoints:
            if ep.scheme == "https":
                ep.ssl_context = pki.server_context(list(ep.sites))
            site = next(iter(ep.sites.values()))
            await self._serve_endpoint(nursery, ep, site.preferred_port, fallback=True)
        port_of = {(ep.address, ep.scheme): ep.port for ep in endpoints}
        site_urls = {
            s.name: s.url(port_of.get((s.address, s.scheme), s.preferred_port))
            for s in self.spec.sites
        }
        ports = sorted({ep.port for ep in endpoints})
        blockpages = {}
        for cc in self.spec.blockpage_countries():
            address = self.spec.blockpage_address(cc)
            blockpages[cc] = address
            ctx = pki.self_signed_context(f"blocked.{cc.lower()}.invalid")
            for port in ports:
                ep = Endpoint(address, "sniff", blockpage_cc=cc, ssl_context=ctx)
                await self._serve_endpoint(nursery, ep, port, fallback=False)
        return site_urls, blockpages

    async def _serve_endpoint(
        self, nursery: trio.Nursery, ep: Endpoint, port: int, *, fallback: bool
    ) -> None:
        listener = await bind_tcp(ep.address, port, fallback=fallback)
        ep.port = listener.socket.getsockname()[1]
        await nursery.start(trio.serve_listeners, functools.partial(self.handle, ep), [listener])

    # -- connection handling ------------------------------------------------------------------

    async def handle(self, ep: Endpoint, raw: trio.SocketStream) -> None:
        """serve_listeners handler: never raises (a bad client must not stop the server)."""
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            await _reset(raw)
            return
        try:
            try:
                peer = raw.socket.getpeername()[0]
            except OSError:
                return
            cc = self._ccs.get(peer)
            await self._serve(ep, raw, cc)
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            trio.TooSlowError,
            OSError,
            h11.ProtocolError,
        ):
            log.debug("web: connection error on %s", ep.address, exc_info=True)
        except Exception:
            log.exception("web: handler failed on %s:%s", ep.address, ep.port)
        finally:
            self._limiter.release()
            await trio.aclose_forcefully(raw)

    async def _serve(self, ep: Endpoint, raw: trio.SocketStream, cc: str | None) -> None:
        site = ep.default_site
        beh = site.behaviour_for(cc) if site is not None else "normal"
        if beh == "rst_on_connect":
            await _reset(raw)
            return
        if beh == "drop":
            with trio.move_on_after(DROP_DEADLINE_S):
                await _drain(raw)
            return
        stream: trio.abc.Stream = raw
        tls = ep.scheme == "https"
        with trio.move_on_after(CONNECTION_DEADLINE_S):
            if ep.scheme == "sniff":
                first = b""
                with trio.move_on_after(HEADER_TIMEOUT_S):
                    first = await raw.receive_some(RECV_BYTES)
                if not first:
                    return
                tls = first[0] == _TLS_HANDSHAKE
                stream = _PrefixedStream(raw, first)
            if tls:
                if beh == "rst_after_clienthello":
                    with trio.move_on_after(HEADER_TIMEOUT_S):
                        await raw.receive_some(RECV_BYTES)
                    await _reset(raw)
                    return
                assert ep.ssl_context is not None
                stream = trio.SSLStream(stream, ep.ssl_context, server_side=True)
                with trio.fail_after(HEADER_TIMEOUT_S):
                    await stream.do_handshake()
            await self._http(ep, stream, raw, cc, "https" if tls else "http")
            if isinstance(stream, trio.SSLStream):
                with trio.move_on_after(1):
                    await stream.aclose()

    async def _http(
        self,
        ep: Endpoint,
        stream: trio.abc.Stream,
        raw: trio.SocketStream,
        cc: str | None,
        scheme: str,
    ) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        try:
            with trio.fail_after(HEADER_TIMEOUT_S):
                req = await _read_request(conn, stream)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            reason = "Request Header Fields Too Large" if status == 431 else "Bad Request"
            await _send_page(conn, stream, pages.simple(status, reason))
            return
        except trio.TooSlowError:
            return
        if req is None:
            return
        if ep.blockpage_cc is not None:
            plan = Plan("respond", pages.national_blockpage(ep.blockpage_cc))
        else:
            host = req.host.rsplit(":", 1)[0].rstrip(".").lower() if req.host else ""
            site = ep.sites.get(host) or ep.default_site
            if site is None:
                plan = Plan("respond", pages.simple(404, "Not Found"))
            else:
                beh = site.behaviour_for(cc)
                plan = plan_response(site, beh, cc, req, scheme, self._normal[site.hostname])
        if plan.action == "reset":
            await _reset(raw)
        elif plan.action == "drop":
            with trio.move_on_after(DROP_DEADLINE_S):
                await _drain(stream)
        elif plan.action == "oversized":
            await _send_oversized(conn, stream, head=req.method == "HEAD")
        else:
            if plan.delay_s:
                await trio.sleep(plan.delay_s)  # the `slow` behaviour itself, not synchronisation
            assert plan.page is not None
            await _send_page(conn, stream, plan.page, head=req.method == "HEAD")


# -- helpers ----------------------------------------------------------------------------------


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> Request | None:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(RECV_BYTES))
            continue
        if isinstance(event, h11.Request):
            headers = {k: v for k, v in event.headers}
            return Request(
                event.method.decode("ascii", "replace"),
                event.target.decode("ascii", "replace"),
                headers.get(b"host", b"").decode("ascii", "replace"),
            )
        return None  # ConnectionClosed or anything unexpected


def _response_headers(page: Page, length: int) -> list[tuple[str, str]]:
    return [*page.headers, ("Content-Length", str(length)), ("Connection", "close")]


async def _send_page(
    conn: h11.Connection, stream: trio.abc.Stream, page: Page, *, head: bool = False
) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    data = conn.send(
        h11.Response(
            status_code=page.status,
            reason=page.reason,
            headers=_response_headers(page, len(page.body)),
        )
    )
    if not head:
        data += conn.send(h11.Data(data=page.body))
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)


async def _send_oversized(conn: h11.Connection, stream: trio.abc.Stream, *, head: bool) -> None:
    page = pages.oversized_head()
    await stream.send_all(
        conn.send(h11.Response(status_code=200, headers=_response_headers(page, OVERSIZED_BYTES)))
    )
    if head:
        return
    left = OVERSIZED_BYTES  # streamed from one precomputed chunk, never held in memory
    while left > 0:
        n = min(left, len(_CHUNK))
        await stream.send_all(_CHUNK if n == len(_CHUNK) else _CHUNK[:n])
        left -= n


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    """Read and discard until the client closes (bounded)."""
    total = 0
    while total < DROP_MAX_BYTES:
        data = await stream.receive_some(RECV_BYTES)
        if not data:
            return
        total += len(data)


async def _reset(raw: trio.SocketStream) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
    with contextlib.suppress(OSError):
        raw.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await trio.aclose_forcefully(raw)


class _PrefixedStream(trio.abc.Stream):
    """A stream that first replays bytes already read (to sniff TLS vs HTTP)."""

    def __init__(self, inner: trio.SocketStream, prefix: bytes) -> None:
        self._inner = inner
        self._prefix = prefix

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            n = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            await trio.lowlevel.checkpoint()
            return data
        return await self._inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def bind_tcp(ip: str, preferred_port: int, *, fallback: bool = True) -> trio.SocketListener:
    """A listener on ``ip:preferred_port``, or (``fallback``) on an ephemeral port if busy."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    try:
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        try:
            await sock.bind((ip, preferred_port))
        except OSError as exc:
            if not fallback or exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            await sock.bind((ip, 0))
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


def plan_endpoints(spec: WorldSpec) -> list[Endpoint]:
    """Pure: the site endpoints of ``spec`` (one per address and scheme; down sites unbound)."""
    eps: dict[tuple[str, str], Endpoint] = {}
    for s in spec.sites:
        if s.is_down:
            continue
        ep = eps.setdefault((s.address, s.scheme), Endpoint(s.address, s.scheme))
        ep.sites[s.hostname] = s
    return list(eps.values())
