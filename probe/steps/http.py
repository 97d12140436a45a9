"""HTTP step: GET with httpx over the connection the TCP/TLS steps measured.

The first request reuses the already established stream (so HTTP measures *the same IP*);
redirects open new connections through :class:`_Backend`, which resolves names with the
probe's own resolver, binds the source address, and refuses destinations the policy forbids
(non-loopback in loopback-only mode; private addresses reached from a public origin).
Redirects are followed by hand so that each hop is checked and recorded.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
import trio
from httpcore._backends.trio import TrioStream

from probe import failures as F
from probe.config import Limits
from probe.records import HttpResult
from probe.steps.body import (
    BodyAccumulator,
    BodyDecodingError,
    clean_header_text,
    extract_title,
)
from probe.steps.tcp import open_connection

MAX_HEADERS_STORED = 200
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

Resolve = Callable[[str], Awaitable[list[str]]]


class PolicyRefusal(Exception):
    """A destination the probe must not contact; ``failure`` is recorded."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


def is_private(ip: str) -> bool:
    """Loopback, private, link-local, CGNAT, unspecified or reserved addresses."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return True
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return (
        a.is_private
        or a.is_loopback
        or a.is_link_local
        or a.is_reserved
        or a.is_unspecified
        or a.is_multicast
        or (a.version == 4 and a in ipaddress.ip_network("100.64.0.0/10"))
    )


class _Stream(TrioStream):
    """httpcore stream over a trio stream that may already speak TLS."""

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if isinstance(self._stream, trio.SSLStream):
            return self  # handed over after our own measured handshake
        return await super().start_tls(ssl_context, server_hostname, timeout)


@dataclass
class Policy:
    """Where redirects may lead."""

    loopback_only: bool = False
    origin_public: bool = True
    private_check: Callable[[str], bool] = is_private


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(
        self,
        handover: tuple[str, int, trio.abc.Stream] | None,
        resolve: Resolve,
        source: str | None,
        policy: Policy,
        connect_timeout: float,
    ) -> None:
        self._handover = handover
        self._resolve = resolve
        self._source = source
        self._policy = policy
        self._timeout = connect_timeout

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._handover is not None:
            h_host, h_port, stream = self._handover
            if h_host == host.lower() and h_port == port:
                self._handover = None
                return _Stream(stream)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            addresses = await self._resolve(host)
            if not addresses:
                raise PolicyRefusal(F.DNS_NXDOMAIN) from None
        ip = addresses[0]
        # never become a scanner of the operator's LAN: a public site may not send us inward
        if self._policy.origin_public and self._policy.private_check(ip):
            raise PolicyRefusal(F.HTTP_REDIRECT_PRIVATE)
        if self._policy.loopback_only and not ipaddress.ip_address(ip).is_loopback:
            raise PolicyRefusal(F.unknown("non_loopback_destination_refused"))
        stream = await open_connection(ip, port, source=self._source, timeout=self._timeout)
        return _Stream(stream)

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise PolicyRefusal(F.unknown("unix_socket_refused"))

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


class _Transport(httpx.AsyncBaseTransport):
    """httpx transport over an httpcore pool with our network backend."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool = pool
        self._inner = httpx.AsyncHTTPTransport.__new__(httpx.AsyncHTTPTransport)
        self._inner._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._pool.aclose()


def headers_json(raw: list[tuple[bytes, bytes]]) -> str:
    pairs = [[clean_header_text(k, 256), clean_header_text(v)] for k, v in raw[:MAX_HEADERS_STORED]]
    return json.dumps(pairs, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class FetchOptions:
    ssl_context: ssl.SSLContext
    limits: Limits
    timeout: float
    connect_timeout: float
    user_agent: str
    source: str | None = None
    verified: bool = True


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


async def fetch(
    url: str,
    opts: FetchOptions,
    *,
    resolve: Resolve,
    handover: tuple[str, int, trio.abc.Stream] | None,
    policy: Policy,
    proxy: str | None = None,
) -> HttpResult:
    """GET ``url``; never raises for network reasons (failures are recorded)."""
    t0 = time.perf_counter()
    chain: list[str] = []
    state: dict[str, Any] = {}
    failure: str | None = None
    if proxy is not None:
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(
            verify=opts.ssl_context, proxy=proxy, local_address=opts.source, retries=0
        )
    else:
        pool = httpcore.AsyncConnectionPool(
            ssl_context=opts.ssl_context,
            max_connections=4,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_Backend(handover, resolve, opts.source, policy, opts.connect_timeout),
        )
        transport = _Transport(pool)
    client = httpx.AsyncClient(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(opts.timeout, connect=opts.connect_timeout),
        headers={
            "User-Agent": opts.user_agent,
            "Accept": ACCEPT,
            "Accept-Language": "en-US,en;q=0.9",
            "Accept-Encoding": "gzip, deflate, br",
        },
    )
    try:
        with trio.fail_after(opts.timeout):
            failure = await _follow(client, url, opts, chain, state)
    except PolicyRefusal as exc:
        failure = exc.failure
    except BodyDecodingError:
        failure = F.HTTP_DECODING_ERROR
    except Exception as exc:
        refusal = _find_refusal(exc)
        failure = refusal.failure if refusal else F.classify(exc)
    finally:
        with trio.move_on_after(2) as cs:
            cs.shield = True
            await client.aclose()
    ms = (time.perf_counter() - t0) * 1000
    body: BodyAccumulator | None = state.get("body")
    return HttpResult(
        failure=failure,
        status=state.get("status"),
        headers=state.get("headers"),
        title=state.get("title"),
        body_length=body.length if body else None,
        body_sha256=body.sha256 if body else None,
        body_prefix=body.prefix if body else None,
        body_truncated=body.truncated if body else None,
        final_url=state.get("final_url"),
        redirects=tuple(chain),
        verified=opts.verified,
        ms=ms,
    )


def _find_refusal(exc: BaseException) -> PolicyRefusal | None:
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, PolicyRefusal):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    opts: FetchOptions,
    chain: list[str],
    state: dict[str, Any],
) -> str | None:
    request = client.build_request("GET", url)
    for _ in range(opts.limits.max_redirects + 1):
        response = await client.send(request, stream=True)
        try:
            state["status"] = response.status_code
            state["headers"] = headers_json(response.headers.raw)
            state["final_url"] = str(response.url)
            nxt = response.next_request
            if nxt is None:
                await _read_body(response, opts, state)
                return None
        finally:
            await response.aclose()
        if nxt.url.scheme not in ("http", "https"):
            chain.append(str(nxt.url)[:2048])
            return F.HTTP_REDIRECT_SCHEME
        chain.append(str(nxt.url)[:2048])
        request = nxt
    return F.HTTP_TOO_MANY_REDIRECTS


async def _read_body(response: httpx.Response, opts: FetchOptions, state: dict[str, Any]) -> None:
    lim = opts.limits
    acc = BodyAccumulator(
        response.headers.get("content-encoding"), lim.max_body_bytes, lim.body_prefix_bytes
    )
    state["body"] = acc
    raw_total = 0
    async for chunk in response.aiter_raw():
        raw_total += len(chunk)
        acc.feed(chunk)
        if acc.full or raw_total >= lim.max_raw_bytes:
            acc.truncated = True
            break
    state["title"] = extract_title(acc.prefix, response.headers.get("content-type"))


def default_port(scheme: str) -> int:
    return _default_port(scheme)
