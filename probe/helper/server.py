"""The control helper: a small HTTPS service that measures URLs for a lone vantage.

A vantage in one country needs controls from another country (SPEC §1, §5).  A helper runs in
that other country and measures the URLs it is sent with exactly the probe's steps
(:func:`probe.measure.measure_target`), from its own vantage (``is_control=True``), and streams
the rows back as they finish.

Why trio + h11 and no web framework: both are already dependencies (the probe and the lab world
use them); the service has two endpoints, must stream chunked JSON lines while measurements
finish, and must bound everything a client controls — header bytes and time (including the TLS
handshake), body bytes and time, the time each write may block — which h11's sans-I/O state
machine makes explicit.  No ASGI server, thread pool or extra package is needed.

Protocol (version 1)::

    GET  /v1/health                    no auth → 200 {"service", "version", "schema_version",
                                                      "country", "asn"}
    POST /v1/measure                   Authorization: Bearer TOKEN
         {"urls": ["https://example.org/", ...]}       (JSON, at most max_urls URLs)
      → 200 application/x-ndjson, chunked transfer encoding:
         one Measurement row per line (Measurement.as_row(); bytes as base64 strings,
         datetimes as ISO-8601), empty heartbeat lines while measuring, and a last line
         {"summary": {"requested", "measured", "refused": {url: reason}, ...}}
      errors: {"error": CODE, "message": TEXT} with 400 (bad JSON or URLs), 401 (no or wrong
      token), 404, 405, 408 (body too slow), 413 (body too large / too many URLs), 429 (rate
      limit, with Retry-After), 431 (headers too large).

The request parsing and the response lines are pure and live in :mod:`probe.helper.wire`.

Targets whose host is (or resolves, through the helper's resolver, to any) private, loopback,
link-local or reserved address are refused unless ``allow_private`` is set; a measurement that
ended up connecting to such an address anyway (DNS rebinding) is withheld too.  Logs identify
clients only by the short hash of their token, never by address.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import math
import re
import ssl
import stat
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import h11
import httpx
import trio

from probe._version import __version__
from probe.config import MeasureConfig, is_loopback
from probe.errors import ConfigError
from probe.geo import GeoResolver, open_geo
from probe.helper.auth import RateLimiter, TokenSet, parse_tokens
from probe.helper.wire import MAX_MESSAGE_CHARS
from probe.helper.wire import encode_value as encode_value
from probe.helper.wire import parse_measure_request as parse_measure_request
from probe.helper.wire import record_line as record_line
from probe.helper.wire import summary_line as summary_line
from probe.ids import new_run_id
from probe.measure import Context, measure_target
from probe.records import Measurement
from probe.schema import SCHEMA_VERSION
from probe.steps import dns as dns_step
from probe.steps import http as http_step
from probe.targets import Target

log = logging.getLogger("probe.helper")

SERVICE = "res64-helper"
MEASURE_PATH = b"/v1/measure"
HEALTH_PATH = b"/v1/health"
NDJSON = "application/x-ndjson"
RECV_BYTES = 16 * 1024
MAX_TOKEN_FILE_BYTES = 1 << 20
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20

_CLIENT_GONE = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
    OSError,
    h11.LocalProtocolError,
)


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class HelperConfig:
    """Everything ``serve_helper`` needs; built once by the CLI (or a test).

    ``measure`` configures the measurements (resolvers, timeouts, limits, concurrency, per-host
    politeness); its ``vantage`` is the helper's own and is forced to ``is_control=True``.
    TLS comes from ``ssl_context`` or from ``tls_cert``/``tls_key``; without TLS the helper
    only listens on a loopback address (e.g. behind a TLS-terminating reverse proxy).
    """

    measure: MeasureConfig
    tokens: tuple[str, ...] = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    allow_private: bool = False
    rate_per_minute: int = 600  # URLs per token per minute (token bucket, burst = one minute)
    max_urls: int = 100  # URLs per request
    max_body_bytes: int = 256 * 1024
    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0  # TLS handshake + request line + headers
    body_timeout: float = 30.0  # the whole request body
    send_timeout: float = 60.0  # one write to a client that stopped reading
    heartbeat: float = 15.0  # an empty line when no record was sent for this long
    max_connections: int = 64  # further connections are closed at once
    geo: GeoResolver | None = field(default=None, repr=False)  # default: open_geo(measure...)

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"--listen: bad port {self.port}")
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            raise ConfigError(f"--listen: {self.host!r} is not an IP address") from None
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        no_tls = self.ssl_context is None and self.tls_cert is None
        if no_tls and not is_loopback(self.host):
            raise ConfigError(
                "the helper needs --tls-cert and --tls-key unless it listens on a loopback "
                "address (tokens must not cross the network in clear text)"
            )
        for name in ("rate_per_minute", "max_urls", "max_body_bytes", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"helper: {name} must be positive")
        for name in ("header_timeout", "body_timeout", "send_timeout", "heartbeat"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"helper: {name} must be > 0")
        if self.max_connections < 1:
            raise ConfigError("helper: max_connections must be positive")
        if not self.tokens:
            raise ConfigError("the helper needs at least one token (--token-file)")


def load_tokens(path: Path) -> tuple[str, ...]:
    """Read a token file (see :mod:`probe.helper.auth`); :class:`ConfigError` if unusable.

    Warns (log) when the file is readable by other users.
    """
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"--token-file {path}: not a regular file")
        if st.st_size > MAX_TOKEN_FILE_BYTES:
            raise ConfigError(f"--token-file {path}: larger than {MAX_TOKEN_FILE_BYTES} bytes")
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--token-file {path}: no such file") from None
    except PermissionError:
        raise ConfigError(f"--token-file {path}: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--token-file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"--token-file {path}: cannot read ({exc.strerror})") from None
    if st.st_mode & 0o077:
        log.warning("token file %s is readable by other users (chmod 600 it)", path)
    return parse_tokens(text, f"--token-file {path}")


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS ≥ 1.2 server context from PEM files (the key may sit in the certificate file)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--tls-cert/--tls-key: cannot load {cert} and {key}: {exc}") from None
    return ctx


# --------------------------------------------------------------------------------------------
# Target policy (pure)


def refusal_reason(
    target: Target, addresses: Sequence[str], is_private: Callable[[str], bool]
) -> str | None:
    """Pure: why a target must not be measured (``None``: go ahead).

    ``addresses`` are the host itself (an IP literal) or every answer of the helper's resolver.
    """
    if target.hostname in ("localhost",) or target.hostname.endswith(".localhost"):
        return "private_target"
    if any(is_private(a) for a in addresses):
        return "private_target"
    return None


# --------------------------------------------------------------------------------------------
# The service


@dataclass
class _Result:
    url: str
    measurement: Measurement | None = None
    refused: str | None = None


class _Helper:
    """Connection handling and measuring; one instance per ``serve_helper`` call."""

    def __init__(self, cfg: HelperConfig, ctx: Context, ssl_context: ssl.SSLContext | None):
        self.cfg = cfg
        self.ctx = ctx
        self.ssl_context = ssl_context
        self.tokens = TokenSet(cfg.tokens)
        self.rate = RateLimiter(cfg.rate_per_minute)
        self.connections = trio.CapacityLimiter(cfg.max_connections)
        self.measuring = trio.CapacityLimiter(max(1, cfg.measure.concurrency))

    # -- connections -----------------------------------------------------------------------

    async def handle(self, raw: trio.SocketStream) -> None:
        """serve_listeners handler: never raises (a bad client must not stop the service)."""
        try:
            self.connections.acquire_nowait()
        except trio.WouldBlock:
            log.warning(
                "connection limit (%d) reached: closing a new connection",
                self.cfg.max_connections,
            )
            await trio.aclose_forcefully(raw)
            return
        stream: trio.abc.Stream = raw
        try:
            if self.ssl_context is not None:
                stream = trio.SSLStream(raw, self.ssl_context, server_side=True)
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.cfg.max_header_bytes)
            while await self._one_request(conn, stream):
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (*_CLIENT_GONE, h11.RemoteProtocolError):
            log.debug("connection error", exc_info=True)
        except Exception:
            log.exception("helper: request handler failed")
        finally:
            self.connections.release()
            await trio.aclose_forcefully(stream)

    async def _one_request(self, conn: h11.Connection, stream: trio.abc.Stream) -> bool:
        """Serve one request; True when the connection may carry another one."""
        event: object = None
        with trio.move_on_after(self.cfg.header_timeout):
            try:
                event = await _next_event(conn, stream)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                code = "headers_too_large" if status == 431 else "bad_request"
                await self._error(conn, stream, status, code, "malformed HTTP request")
                return False
        if not isinstance(event, h11.Request):
            return False  # closed, or too slow to send its headers: just close
        path = event.target.split(b"?", 1)[0]
        headers = {k.lower(): v for k, v in event.headers}
        if path != MEASURE_PATH or event.method != b"POST":
            # Only /v1/measure reads a body: finish this request (a bounded one) or hang up.
            with trio.move_on_after(self.cfg.body_timeout):
                if await self._read_body(conn, stream, limit=RECV_BYTES) is not None:
                    return await self._route(conn, stream, event, path, headers)
            return False
        return await self._route(conn, stream, event, path, headers)

    async def _route(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        event: h11.Request,
        path: bytes,
        headers: Mapping[bytes, bytes],
    ) -> bool:
        if path == HEALTH_PATH:
            if event.method != b"GET":
                return await self._error(conn, stream, 405, "method_not_allowed", "use GET")
            return await self._health(conn, stream)
        if path == MEASURE_PATH:
            if event.method != b"POST":
                return await self._error(conn, stream, 405, "method_not_allowed", "use POST")
            return await self._measure(conn, stream, headers)
        return await self._error(conn, stream, 404, "not_found", "unknown path")

    async def _send(self, stream: trio.abc.Stream, data: bytes) -> None:
        with trio.fail_after(self.cfg.send_timeout):
            await stream.send_all(data)

    async def _json(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        status: int,
        obj: Mapping[str, Any],
        extra: Sequence[tuple[str, str]] = (),
    ) -> bool:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return False
        body = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Server", SERVICE),
            *extra,
        ]
        data = conn.send(
            h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase)
        )
        data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        await self._send(stream, data)
        return status < 400

    async def _error(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        status: int,
        code: str,
        message: str,
        extra: Sequence[tuple[str, str]] = (),
        *,
        linger: bool = True,
    ) -> bool:
        """Answer an error and ask for the connection to be closed (returns False)."""
        obj = {"error": code, "message": message[:MAX_MESSAGE_CHARS]}
        await self._json(conn, stream, status, obj, [*extra, ("Connection", "close")])
        if linger and conn.their_state is h11.SEND_BODY:
            await _linger(stream)
        return False

    async def _health(self, conn: h11.Connection, stream: trio.abc.Stream) -> bool:
        v = self.ctx.cfg.vantage
        return await self._json(
            conn,
            stream,
            200,
            {
                "service": SERVICE,
                "version": __version__,
                "schema_version": SCHEMA_VERSION,
                "country": v.probe_cc,
                "asn": v.probe_asn,
            },
        )

    # -- POST /v1/measure --------------------------------------------------------------------

    async def _measure(
        self, conn: h11.Connection, stream: trio.abc.Stream, headers: Mapping[bytes, bytes]
    ) -> bool:
        tid = self.tokens.check(headers.get(b"authorization"))
        if tid is None:
            log.info("measure: refused a request without a valid token")
            return await self._error(
                conn,
                stream,
                401,
                "unauthorized",
                "a valid bearer token is required",
                [("WWW-Authenticate", 'Bearer realm="res64-helper"')],
            )
        length = headers.get(b"content-length")
        if length is not None and (len(length) > 15 or int(length) > self.cfg.max_body_bytes):
            return await self._error(
                conn, stream, 413, "body_too_large", f"at most {self.cfg.max_body_bytes} bytes"
            )
        body: bytes | None = None
        with trio.move_on_after(self.cfg.body_timeout) as scope:
            body = await self._read_body(conn, stream)
        if scope.cancelled_caught:
            return await self._error(
                conn, stream, 408, "request_timeout", "body too slow", linger=False
            )
        if body is None:
            return await self._error(
                conn, stream, 413, "body_too_large", f"at most {self.cfg.max_body_bytes} bytes"
            )
        parsed = parse_measure_request(body, self.cfg.max_urls)
        if isinstance(parsed, tuple):
            status, code, message = parsed
            log.info("measure: %s sent a bad request (%s)", tid, code)
            return await self._error(conn, stream, status, code, message)
        targets = parsed
        wait = self.rate.take(tid, len(targets), trio.current_time())
        if wait > 0:
            log.info("measure: %s is over its rate limit (%d URLs asked)", tid, len(targets))
            extra = [] if math.isinf(wait) else [("Retry-After", str(math.ceil(wait)))]
            message = f"rate limit: {self.cfg.rate_per_minute} URLs per minute per token" + (
                "" if extra else "; this request alone exceeds it"
            )
            return await self._error(conn, stream, 429, "rate_limited", message, extra)
        log.info("measure: %s asked for %d URLs", tid, len(targets))
        return await self._stream(conn, stream, tid, targets)

    async def _read_body(
        self, conn: h11.Connection, stream: trio.abc.Stream, limit: int | None = None
    ) -> bytes | None:
        """The request body, or None when it exceeds ``limit`` (``max_body_bytes``)."""
        limit = self.cfg.max_body_bytes if limit is None else limit
        if conn.they_are_waiting_for_100_continue:
            await self._send(stream, conn.send(h11.InformationalResponse(status_code=100)))
        buf = bytearray()
        while True:
            event = await _next_event(conn, stream)
            if isinstance(event, h11.Data):
                buf += event.data
                if len(buf) > limit:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return bytes(buf)
            else:
                raise trio.BrokenResourceError("connection closed during the request body")

    async def _stream(
        self, conn: h11.Connection, stream: trio.abc.Stream, tid: str, targets: list[Target]
    ) -> bool:
        t0 = time.perf_counter()
        measured = 0
        refused: dict[str, str] = {}
        send_ch, recv_ch = trio.open_memory_channel[_Result](len(targets))
        host_sems: dict[str, trio.Semaphore] = {}
        client_gone = False
        async with trio.open_nursery() as nursery:
            async with send_ch:
                for t in targets:
                    sem = host_sems.setdefault(t.hostname, trio.Semaphore(self.ctx.cfg.per_host))
                    nursery.start_soon(self._measure_one, t, sem, send_ch.clone())
            try:
                await self._send(
                    stream,
                    conn.send(
                        h11.Response(
                            status_code=200,
                            reason="OK",
                            headers=[
                                ("Content-Type", NDJSON),
                                ("Transfer-Encoding", "chunked"),
                                ("Cache-Control", "no-store"),
                                ("X-Content-Type-Options", "nosniff"),
                                ("Server", SERVICE),
                            ],
                        )
                    ),
                )
                async with recv_ch:
                    while True:
                        res: _Result | None = None
                        with trio.move_on_after(self.cfg.heartbeat):
                            try:
                                res = await recv_ch.receive()
                            except trio.EndOfChannel:
                                break
                        if res is None:
                            await self._send(stream, conn.send(h11.Data(data=b"\n")))
                        elif res.measurement is not None:
                            measured += 1
                            line = record_line(res.measurement)
                            await self._send(stream, conn.send(h11.Data(data=line)))
                        else:
                            refused[res.url] = res.refused or "internal_error"
                summary = {
                    "requested": len(targets),
                    "measured": measured,
                    "refused": refused,
                    "version": __version__,
                    "schema_version": SCHEMA_VERSION,
                    "country": self.ctx.cfg.vantage.probe_cc,
                    "seconds": round(time.perf_counter() - t0, 3),
                }
                data = conn.send(h11.Data(data=summary_line(summary)))
                await self._send(stream, data + conn.send(h11.EndOfMessage()))
            except _CLIENT_GONE:
                client_gone = True
                nursery.cancel_scope.cancel()
        if refused:
            self.rate.refund(tid, len(refused))
        log.info(
            "measure: %s %s: %d measured, %d refused",
            tid,
            "client went away" if client_gone else "done",
            measured,
            len(refused),
        )
        return not client_gone

    async def _measure_one(
        self, target: Target, sem: trio.Semaphore, send_ch: trio.MemorySendChannel[_Result]
    ) -> None:
        async with send_ch:
            res = _Result(target.url)
            try:
                async with self.measuring, sem:
                    res.refused = await self._refusal(target)
                    if res.refused is None:
                        m = await measure_target(self.ctx, target)
                        if not self.cfg.allow_private and m.server_ip and _private(m.server_ip):
                            res.refused = "private_address"  # resolved differently: rebinding
                        else:
                            res.measurement = m
            except Exception:
                log.exception("measure: internal error on one target")
                res.refused = "internal_error"
            with contextlib.suppress(trio.BrokenResourceError):
                await send_ch.send(res)

    async def _refusal(self, target: Target) -> str | None:
        if self.cfg.allow_private:
            return None
        host = target.hostname
        try:
            ipaddress.ip_address(host)
            addresses: tuple[str, ...] = (host,)
        except ValueError:
            addresses = await self._resolve(host)
        return refusal_reason(target, addresses, _private)

    async def _resolve(self, host: str) -> tuple[str, ...]:
        """Every answer of the helper's resolver for ``host`` (empty when it has none)."""
        spec = self.ctx.resolver
        cfg = self.ctx.cfg
        if spec is None:
            return ()
        if cfg.loopback_only and not (spec.host is not None and is_loopback(spec.host)):
            return ()  # measure_target refuses this resolver too
        r = await dns_step.lookup(
            host,
            spec,
            timeout=cfg.timeouts.dns,
            source=cfg.vantage.source_address,
            doh_client=self.ctx.doh_client,
        )
        return r.answers


def _private(ip: str) -> bool:
    return http_step.is_private(ip)


async def _linger(stream: trio.abc.Stream) -> None:
    """Read and drop what a client still sends after an early error response (bounded), so
    that closing does not reset the connection before the client has read the response."""
    left = LINGER_BYTES
    with trio.move_on_after(LINGER_SECONDS):
        while left > 0:
            data = await stream.receive_some(RECV_BYTES)
            if not data:
                return
            left -= len(data)


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(RECV_BYTES))
            continue
        return event


# --------------------------------------------------------------------------------------------
# Start-up


def _resolvers(
    cfg: MeasureConfig,
) -> tuple[dns_step.ResolverSpec | None, dns_step.ResolverSpec | None]:
    res = (
        dns_step.ResolverSpec.parse(cfg.resolver, "--resolver")
        if cfg.resolver
        else dns_step.system_resolver()
    )
    ctl = (
        dns_step.ResolverSpec.parse(cfg.control_resolver, "--control-resolver")
        if cfg.control_resolver
        else None
    )
    return res, ctl


@contextlib.asynccontextmanager
async def _context(cfg: HelperConfig) -> AsyncIterator[Context]:
    mcfg = cfg.measure
    if not mcfg.vantage.is_control:
        mcfg = dataclasses.replace(mcfg, vantage=dataclasses.replace(mcfg.vantage, is_control=True))
    geo = cfg.geo or open_geo(mcfg.geoip, mcfg.geoip_overrides)
    resolver, control = _resolvers(mcfg)
    doh_client = None
    if control is not None and control.doh_url:
        verify: str | bool = str(mcfg.ca_bundle) if mcfg.ca_bundle else True
        doh_client = httpx.AsyncClient(trust_env=False, verify=verify)
    try:
        yield Context(
            cfg=mcfg,
            run_id=new_run_id(),
            geo=geo,
            resolver=resolver,
            control=control,
            doh_client=doh_client,
        )
    finally:
        if doh_client is not None:
            with trio.CancelScope(shield=True):
                await doh_client.aclose()


async def serve_helper(
    cfg: HelperConfig,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the helper until cancelled; report the bound ``(host, port)`` once listening.

    Raises :class:`ConfigError` (before listening) for an unusable TLS key pair, and
    ``OSError`` when the address cannot be bound.
    """
    ssl_context = cfg.ssl_context
    if ssl_context is None and cfg.tls_cert is not None and cfg.tls_key is not None:
        ssl_context = server_ssl_context(cfg.tls_cert, cfg.tls_key)
    async with _context(cfg) as ctx:
        helper = _Helper(cfg, ctx, ssl_context)
        listeners = await trio.open_tcp_listeners(cfg.port, host=cfg.host)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, helper.handle, listeners)
                host, port = listeners[0].socket.getsockname()[:2]
                log.info(
                    "helper listening on %s:%d (%s, country %s)",
                    host,
                    port,
                    "TLS" if ssl_context else "plain HTTP",
                    ctx.cfg.vantage.probe_cc,
                )
                task_status.started((host, port))
        finally:
            for listener in listeners:
                with contextlib.suppress(Exception):
                    await trio.aclose_forcefully(listener)


# --------------------------------------------------------------------------------------------
# Deployment

_SAFE_ARG = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def _systemd_quote(arg: str) -> str:
    if any(c in arg for c in "\n\r\x00"):
        raise ConfigError("systemd unit: arguments cannot contain line breaks or NUL")
    if not _SAFE_ARG.fullmatch(arg):
        arg = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg.replace("%", "%%").replace("$", "$$")


def systemd_unit(argv: list[str], user: str) -> str:
    """A hardened systemd service unit running ``argv`` (absolute program path first) as
    ``user``; what ``res64 helper serve ... --print-systemd`` prints."""
    if not argv or not argv[0].startswith("/"):
        raise ConfigError("systemd unit: the command must start with an absolute path")
    if not _USER_RE.fullmatch(user):
        raise ConfigError(f"systemd unit: {user!r} is not a valid user name")
    exec_start = " ".join(_systemd_quote(a) for a in argv)
    return f"""\
# /etc/systemd/system/res64-helper.service
# Install: save this file, then `systemctl daemon-reload && systemctl enable --now res64-helper`
[Unit]
Description=res64-probe control helper (measures URLs for vantages in other countries)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
ExecStart={exec_start}
Restart=on-failure
RestartSec=5
Environment=PYTHONUNBUFFERED=1
Environment=RES64_CONFIG_DIR=/var/lib/res64-helper
StateDirectory=res64-helper
# Bind to ports below 1024 (e.g. 443) without running as root, and nothing else.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
UMask=0077
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""


__all__ = [
    "HelperConfig",
    "encode_value",
    "load_tokens",
    "parse_measure_request",
    "record_line",
    "refusal_reason",
    "serve_helper",
    "server_ssl_context",
    "summary_line",
    "systemd_unit",
]
