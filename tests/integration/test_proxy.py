"""Measuring through a proxy: the proxy hides DNS and TCP from the vantage, and says so."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import trio

from probe.config import MeasureConfig, Timeouts, Vantage
from probe.geo import open_geo
from probe.lab import demo_world, run_world
from probe.measure import Context, measure_target
from probe.runner import _resolvers
from probe.targets import targets_from_urls


async def _pipe(src: trio.abc.Stream, dst: trio.abc.Stream) -> None:
    try:
        while data := await src.receive_some(65536):
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.move_on_after(1):
            await dst.aclose()


def connect_proxy(addresses: dict[str, str], seen: list[str]):
    """A minimal HTTP CONNECT proxy that resolves lab names from a fixed table."""

    async def handler(client: trio.SocketStream) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 8192:
            chunk = await client.receive_some(4096)
            if not chunk:
                return
            buf += chunk
        line = buf.split(b"\r\n", 1)[0].decode()
        method, target, _ = line.split(" ", 2)
        seen.append(line)
        host, port = target.rsplit(":", 1)
        if method != "CONNECT" or host not in addresses:
            await client.send_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            return
        upstream = await trio.open_tcp_stream(addresses[host], int(port))
        await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        async with trio.open_nursery() as n:
            n.start_soon(_pipe, client, upstream)
            n.start_soon(_pipe, upstream, client)

    return handler


async def test_https_through_a_connect_proxy(tmp_path: Path):
    spec = demo_world()
    async with run_world(spec, tmp_path / "w") as world, trio.open_nursery() as nursery:
        addresses = {s.hostname: s.address for s in spec.sites}
        seen: list[str] = []
        (listener,) = await nursery.start(
            partial(trio.serve_tcp, connect_proxy(addresses, seen), 0, host="127.0.0.1")
        )
        port = listener.socket.getsockname()[1]
        proxy = f"http://user:secret@127.0.0.1:{port}"
        cfg = MeasureConfig(
            out=str(tmp_path / "o"),
            vantage=Vantage("px", "DE"),
            resolver=world.resolver_arg(),
            control_resolver=None,
            proxy=proxy,
            ca_bundle=world.ca_bundle,
            timeouts=Timeouts(dns=2, tcp=2, tls=2, http=4, target=10),
            loopback_only=True,
        )
        res, ctl = _resolvers(cfg)
        ctx = Context(cfg, "r", open_geo(None, None, embedded=False), res, ctl)
        url = world.url_for("open-news") if "open-news" in world.site_urls else world.urls[0]
        if urlsplit(url).scheme != "https":
            url = next(u for u in world.urls if u.startswith("https://"))
        (target,) = targets_from_urls([url])
        m = await measure_target(ctx, target)
        nursery.cancel_scope.cancel()
    assert m.failure is None, m.failure
    assert m.http_status == 200 and m.http_verified is True
    assert m.via_proxy == f"http://127.0.0.1:{port}", "credentials must not be stored"
    assert m.steps_hidden == ("dns", "tcp")
    assert m.dns_answers == () and m.server_ip is None
    assert seen and seen[0].startswith("CONNECT ")
