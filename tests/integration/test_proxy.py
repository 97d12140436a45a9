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
        try:
            upstream = await trio.open_tcp_stream(addresses[host], int(port))
        except OSError:
            await client.send_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            return
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


async def test_control_proxy_pass_is_stored_as_control_records(tmp_path: Path):
    import pandas as pd

    from probe.runner import run_measurements

    spec = demo_world()
    async with run_world(spec, tmp_path / "w") as world, trio.open_nursery() as nursery:
        addresses = {s.hostname: s.address for s in spec.sites}
        (listener,) = await nursery.start(
            partial(trio.serve_tcp, connect_proxy(addresses, []), 0, host="127.0.0.1")
        )
        port = listener.socket.getsockname()[1]
        ir = spec.vantage("ir-1")
        cfg = MeasureConfig(
            out=str(tmp_path / "o"),
            vantage=Vantage("lone-ir", "IR", source_address=ir.source_ip),
            resolver=world.resolver_arg(),
            control_resolver=world.control_resolver_arg(),
            ca_bundle=world.ca_bundle,
            timeouts=Timeouts(dns=2, tcp=2, tls=2, http=4, target=10),
            loopback_only=True,
            control_proxy=f"http://127.0.0.1:{port}",
            control_proxy_vantage=Vantage("ctlproxy-de", "DE", is_control=True),
        )
        https = [u for u in world.urls if u.startswith("https://")][:3]
        s = await run_measurements(
            cfg, targets_from_urls(https), open_geo(None, world.overrides_csv, embedded=False),
            handle_signals=False,
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    assert s.measured == 3 and s.controls == 3
    df = pd.read_parquet(tmp_path / "o" / "measurements")
    ctl = df[df["is_control"]]
    assert len(ctl) == 3 and set(ctl["probe_cc"].astype(str)) == {"DE"}
    assert set(ctl["data_source"]) == {"control_proxy"}
    assert set(ctl["vantage_id"]) == {"ctlproxy-de"}
    own = df[~df["is_control"]]
    assert set(own["probe_cc"].astype(str)) == {"IR"} and set(own["data_source"]) == {"res64"}
